#!/usr/bin/env bash
# Shim benchmark: runs tests/c/bench_shim.c (driver API) directly on the CPU device and through
# `gpushare run` (shim + a broker on the CPU device), and prints both sets of figures side by side:
# tenant-side cost of an async cuLaunchKernel, cuStreamQuery on an idle stream (p50/p99),
# cuMemcpyHtoD/DtoH bandwidth for pageable and pinned 64 MiB buffers, empty launches per second.
#
# Usage: scripts/bench-shim.sh [bench_shim options, e.g. --launches 2000 --copy-mib 32]
#        scripts/bench-shim.sh --pipeline [bench_pipeline options]   (tests/c/bench_pipeline.c:
#        seed 001's upload/kernel/download batches, one stream vs two, on the small profile with
#        pacing, so overlap is the CPU device's modelled engines')
#        scripts/bench-shim.sh --streamed-floor [--copy-mib M --copy-reps R]   (tests/c/
#        bench_streamed_floor.c, directly only: a streamed copy's hand-over in one process, the
#        floor of what the shim's streamed copies can reach on this driver)
#        scripts/bench-shim.sh --first-touch [--mib M --reps R]   (tests/c/bench_first_touch.c:
#        what the first touch of fresh pinned and device memory costs, 512 MiB by default)
# GPUSHARE_BENCH_POLICY=FILE: the broker's policy (e.g. [scheduler] policy = "fifo").
# Builds what it needs (release: gpushare-cpu, gpushare-broker, gpushare-shim) into
# ${CARGO_TARGET_DIR:-target} (GPUSHARE_BENCH_NO_BUILD=1: use what is there). Figures depend on the
# machine and its load; nothing is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

program=bench_shim
if [ "${1:-}" = --pipeline ]; then
    program=bench_pipeline
    shift
elif [ "${1:-}" = --streamed-floor ]; then
    program=bench_streamed_floor
    shift
elif [ "${1:-}" = --first-touch ]; then
    program=bench_first_touch
    shift
fi
scripts/setup-cuda-deps.sh >/dev/null
if [ "${GPUSHARE_BENCH_NO_BUILD:-0}" != 1 ]; then
    cargo build --release -p gpushare-cpu -p gpushare-broker -p gpushare-shim
fi
target=${CARGO_TARGET_DIR:-$root/target}
rel=$target/release
for f in libgpushare_cpu.so libgpushare_shim.so gpushare; do
    [ -e "$rel/$f" ] || { echo "bench-shim: $rel/$f is missing after the build" >&2; exit 1; }
done

work=$(mktemp -d /tmp/gpushare-bench-shim.XXXXXX)
broker_pid=
cleanup() {
    if [ -n "$broker_pid" ]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/lib"
ln -s "$rel/libgpushare_cpu.so" "$work/lib/libcuda.so.1"
ln -s libcuda.so.1 "$work/lib/libcuda.so"
gcc -std=gnu11 -O2 -Wall -Werror -I "$root/.deps/cuda/nvidia/cuda_runtime/include" -I tests/c \
    "tests/c/$program.c" -o "$work/bench_shim" -L "$work/lib" -lcuda -lm -lpthread

# Same conditions for both runs: default CPU-device profile, no pacing, no logging.
unset GPUSHARE_CPU_PROFILE GPUSHARE_CPU_PACING GPUSHARE_CPU_THREADS GPUSHARE_LOG LD_PRELOAD
if [ "$program" = bench_pipeline ]; then
    export GPUSHARE_CPU_PROFILE=small GPUSHARE_CPU_PACING=1
fi
export GPUSHARE_KERNELS_DIR=$root/examples/kernels

echo "bench-shim: direct on the CPU device ..." >&2
LD_LIBRARY_PATH=$work/lib "$work/bench_shim" "$@" >"$work/direct.txt"
if [ "$program" = bench_streamed_floor ]; then
    # A tenant's own stream waits are not forwarded: this one runs directly only.
    cat "$work/direct.txt"
    exit 0
fi

echo "bench-shim: through gpushare run (shim + broker on the CPU device) ..." >&2
GPUSHARE_CPU_LIB=$rel/libgpushare_cpu.so GPUSHARE_LOG=warn \
    "$rel/gpushare" broker --device cpu --socket "$work/sock" \
    ${GPUSHARE_BENCH_POLICY:+--policy "$GPUSHARE_BENCH_POLICY"} 2>"$work/broker.log" &
broker_pid=$!
for _ in $(seq 600); do
    [ -S "$work/sock" ] && break
    kill -0 "$broker_pid" 2>/dev/null || { cat "$work/broker.log" >&2; exit 1; }
    sleep 0.05
done
[ -S "$work/sock" ] || { echo "bench-shim: the broker did not start" >&2; cat "$work/broker.log" >&2; exit 1; }
# TMPDIR: a private library directory for `gpushare run`.
status=0
TMPDIR=$work GPUSHARE_SHIM_LIB=$rel/libgpushare_shim.so \
    "$rel/gpushare" run --socket "$work/sock" --name bench -- "$work/bench_shim" "$@" \
    >"$work/shim.txt" || status=$?

echo
printf '%-22s %14s %16s  %s\n' figure direct "through the shim" unit
awk 'NR == FNR { d[$1] = $2; u[$1] = $3; order[++n] = $1; next }
     { s[$1] = $2 }
     END { for (i = 1; i <= n; i++) {
               k = order[i]
               printf "%-22s %14s %16s  %s\n", k, d[k], (k in s ? s[k] : "-"), u[k]
           } }' \
    "$work/direct.txt" "$work/shim.txt"
if [ "$status" != 0 ]; then
    echo "bench-shim: the run through the shim failed (exit $status); broker log:" >&2
    cat "$work/broker.log" >&2
    exit "$status"
fi
