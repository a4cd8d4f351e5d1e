#!/usr/bin/env bash
# Records the cuGetProcAddress lookups a libcudart program makes, in call order, as
# `name version flags` lines: the lists driver-abi/data/cudart-<version>-init-lookups.txt, which
# the driver-abi and shim tests resolve line by line. libcudart looks every entry point up once,
# at start-up, whatever the program then calls.
#
#   scripts/record-init-lookups.sh PROGRAM [ARGS...] > driver-abi/data/cudart-<version>-init-lookups.txt
#
# PROGRAM is a libcudart program (e.g. tests/c/cudart_launch.c compiled as the harness does,
# target/gpushare-tests/bin/cudart_launch-cudart13.0); it runs on the CPU device
# (target/release/libgpushare_cpu.so, built first) with GPUSHARE_LOG=gpushare::api=trace, whose
# `cuGetProcAddress("name", version, flags) -> symbol` lines are kept.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
lib="$root/target/release/libgpushare_cpu.so"
[ -f "$lib" ] || { echo "build it first: cargo build --release -p gpushare-cpu" >&2; exit 1; }
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
ln -s "$lib" "$dir/libcuda.so.1"
GPUSHARE_LOG=gpushare::api=trace GPUSHARE_KERNELS_DIR="$root/examples/kernels" \
  LD_LIBRARY_PATH="$dir" "$@" 2>&1 >/dev/null |
  sed 's/\x1b\[[0-9;]*m//g' |
  sed -nE 's/.*cuGetProcAddress\("([A-Za-z0-9_]+)", ([0-9]+), ([0-9]+)\).*/\1 \2 \3/p'
