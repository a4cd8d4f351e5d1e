#!/usr/bin/env bash
# The main job on a machine without a GPU: builds gpushare, starts a broker on the CPU device, and
# runs several unmodified CUDA programs as its tenants through `gpushare run` — the MLP inference
# example in C (driver API) four times and its cudarc twin once — printing each tenant's results
# and the broker's view (`gpushare status`) while they run and after they leave.
#
#   TENANTS=N        number of C MLP tenants (default 4)
#   BATCHES=N        batches per tenant (default 6)
#   DEVICE=cpu|auto  broker device (default cpu; auto uses a real GPU when the driver loads)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-cuda-deps.sh
cargo build --release -q -p gpushare-cpu -p gpushare-broker -p gpushare-shim \
  -p gpushare-example-cudarc-mlp
bin=target/release
work=$bin/demo
mkdir -p "$work"
# Link against any libcuda.so.1 (the shim): at run time `gpushare run` supplies the library.
gcc -O2 -Wall -Wextra -Werror -I .deps/cuda/nvidia/cuda_runtime/include examples/mlp/mlp.c \
  "$bin/libgpushare_shim.so" -lm -o "$work/mlp"

sock="$PWD/$work/broker.sock"
rm -f "$sock"
"$bin/gpushare" broker --device "${DEVICE:-cpu}" --socket "$sock" >"$work/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "broker did not start:"; cat "$work/broker.log"; exit 1; }

tenants=${TENANTS:-4}
batches=${BATCHES:-6}
echo "== broker on $("$bin/gpushare" status --socket "$sock" | sed -n 2p | sed 's/^ *//')"
echo "== $tenants MLP tenants (C, driver API) and 1 cudarc MLP tenant through gpushare run"
pids=()
for i in $(seq 1 "$tenants"); do
  "$bin/gpushare" run --socket "$sock" --name "tenant-$i" -- \
    "$work/mlp" examples/kernels --name "tenant-$i" --batches "$batches" >"$work/tenant-$i.out" 2>&1 &
  pids+=($!)
done
"$bin/gpushare" run --socket "$sock" --name cudarc -- \
  "$bin/gpushare-example-cudarc-mlp" examples/kernels --name cudarc --batches "$batches" \
  >"$work/cudarc.out" 2>&1 &
pids+=($!)
sleep 0.3
echo "== broker's view while they run (gpushare status)"
"$bin/gpushare" status --socket "$sock" || true
status=0
for pid in "${pids[@]}"; do
  if ! wait "$pid"; then status=1; fi
done
for i in $(seq 1 "$tenants"); do cat "$work/tenant-$i.out"; done
cat "$work/cudarc.out"
echo "== broker's view after they left"
"$bin/gpushare" status --socket "$sock" || true
if [ $status -eq 0 ]; then echo "== all tenants finished and match their CPU references"; fi
exit $status
