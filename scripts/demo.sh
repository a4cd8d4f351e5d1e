#!/usr/bin/env bash
# The main job on a machine without a GPU: builds gpushare, then runs several unmodified CUDA
# programs ("tenants") on the CPU device — the MLP inference example in C (driver API, kernels from
# examples/kernels) and a cudarc program — printing each tenant's results.
#
# Each program loads target/release/libgpushare_cpu.so as its libcuda.so.1. (The broker and shim,
# which will let these tenants share one device, are the next milestone: see docs/architecture.md.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-cuda-deps.sh
cargo build --release -q -p gpushare-cpu -p gpushare-example-cudarc -p gpushare-example-cudarc-mlp
work=target/release/demo
mkdir -p "$work/lib"
ln -sf ../../libgpushare_cpu.so "$work/lib/libcuda.so.1"
ln -sf libcuda.so.1 "$work/lib/libcuda.so"
gcc -O2 -Wall -Wextra -Werror -I .deps/cuda/nvidia/cuda_runtime/include examples/mlp/mlp.c \
  -L "$work/lib" -lcuda -lm -o "$work/mlp"
export LD_LIBRARY_PATH="$PWD/$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
tenants=${TENANTS:-4}
echo "== $tenants MLP tenants on the CPU device (profile ${GPUSHARE_CPU_PROFILE:-h200})"
pids=()
for i in $(seq 1 "$tenants"); do
  "$work/mlp" examples/kernels --name "tenant-$i" --batches 3 >"$work/tenant-$i.out" 2>&1 &
  pids+=($!)
done
status=0
for i in $(seq 1 "$tenants"); do
  if ! wait "${pids[$((i - 1))]}"; then status=1; fi
  cat "$work/tenant-$i.out"
done
echo "== cudarc tenant"
target/release/gpushare-example-cudarc || status=1
if [ $status -eq 0 ]; then echo "== all tenants finished and match their CPU references"; fi
exit $status
