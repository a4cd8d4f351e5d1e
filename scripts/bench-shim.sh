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
# GPUSHARE_BENCH_ROUNDS=N: N rounds, directly and through the shim alternated (one broker), and
# per figure the medians and the median of each round's ratio (the host drifts between runs).
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

rounds=${GPUSHARE_BENCH_ROUNDS:-1}
case "$rounds" in
    '' | *[!0-9]* | 0) echo "bench-shim: GPUSHARE_BENCH_ROUNDS must be a positive whole number" >&2; exit 2 ;;
esac

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
# through_shim OUT ARGS...: bench_shim ARGS through `gpushare run`, its figures in $work/OUT.
through_shim() {
    local out=$1
    shift
    TMPDIR=$work GPUSHARE_SHIM_LIB=$rel/libgpushare_shim.so \
        "$rel/gpushare" run --socket "$work/sock" --name bench -- "$work/bench_shim" "$@" \
        >"$work/$out" || status=$?
}

# print_rounds: per figure, the median over the rounds directly and through the shim, and the
# median (and range) of each round's ratio, through the shim over directly.
print_rounds() {
    echo
    echo "over $rounds alternated rounds (medians; ratio: through the shim / directly, per round):"
    printf '%-22s %14s %16s  %-6s %s\n' figure direct "through the shim" unit "ratio (range)"
    for r in $(seq 1 "$rounds"); do
        awk -v r="$r" 'NR == FNR { d[$1] = $2; u[$1] = $3; next }
            ($1 in d) && d[$1] + 0 != 0 { print r, $1, d[$1], $2, $2 / d[$1], u[$1] }' \
            "$work/direct.$r.txt" "$work/shim.$r.txt"
    done | awk '
        function isort(a, n,    i, j, v) {
            for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
        }
        function median(a, n) { isort(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
        { k = $2; if (!(k in n)) order[++m] = k; i = ++n[k]; rat[k, i] = $5; dir[k, i] = $3
          shm[k, i] = $4; u[k] = $6 }
        END { for (j = 1; j <= m; j++) {
                  k = order[j]; c = n[k]
                  for (i = 1; i <= c; i++) { a[i] = rat[k, i]; b[i] = dir[k, i]; e[i] = shm[k, i] }
                  lo = hi = a[1]
                  for (i = 2; i <= c; i++) { if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i] }
                  printf "%-22s %14.2f %16.2f  %-6s %.2f (%.2f-%.2f)\n", k, median(b, c),
                      median(e, c), u[k], median(a, c), lo, hi
              } }'
}
through_shim shim.txt "$@"
# More rounds: direct and through the shim alternate (round 1 above), so that the host's drift
# (memory bandwidth moves by a third from one minute to the next here) falls on both alike.
for r in $(seq 2 "$rounds"); do
    echo "bench-shim: round $r of $rounds ..." >&2
    LD_LIBRARY_PATH=$work/lib "$work/bench_shim" "$@" >"$work/direct.$r.txt"
    through_shim "shim.$r.txt" "$@"
done

echo
[ "$rounds" = 1 ] || echo "round 1:"
printf '%-22s %14s %16s  %s\n' figure direct "through the shim" unit
awk 'NR == FNR { d[$1] = $2; u[$1] = $3; order[++n] = $1; next }
     { s[$1] = $2 }
     END { for (i = 1; i <= n; i++) {
               k = order[i]
               printf "%-22s %14s %16s  %s\n", k, d[k], (k in s ? s[k] : "-"), u[k]
           } }' \
    "$work/direct.txt" "$work/shim.txt"
if [ "$rounds" -gt 1 ]; then
    cp "$work/direct.txt" "$work/direct.1.txt"
    cp "$work/shim.txt" "$work/shim.1.txt"
    print_rounds
fi
if [ "$status" != 0 ]; then
    echo "bench-shim: the run through the shim failed (exit $status); broker log:" >&2
    cat "$work/broker.log" >&2
    exit "$status"
fi
