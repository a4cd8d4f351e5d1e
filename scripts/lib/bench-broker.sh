# Shared by the scheduling benchmarks (scripts/bench-sched.sh, scripts/bench-tenants.sh); sourced
# with `root` (the checkout) set. `bench_prepare NAME PROGRAM` builds what is needed (unless
# GPUSHARE_BENCH_NO_BUILD=1), makes the scratch directory `$work`, compiles tests/c/PROGRAM.c
# against the CPU device into `$work/PROGRAM`, and sets the tenants' environment (small profile,
# pacing); `start_broker_with POLICY_TEXT LOG_LEVEL` starts one broker (isolation "shared": one
# worker, one modelled device for every tenant; GPUSHARE_BENCH_DEFAULTS: more `[default]` keys, e.g.
# `dedup = false`) and waits for its socket; `stop_broker` stops it.
# shellcheck shell=bash

broker_pid=

bench_prepare() {
    bench_name=$1
    "$root/scripts/setup-cuda-deps.sh" >/dev/null
    if [ "${GPUSHARE_BENCH_NO_BUILD:-0}" != 1 ]; then
        (cd "$root" && cargo build --release -p gpushare-cpu -p gpushare-broker -p gpushare-shim)
    fi
    rel=${CARGO_TARGET_DIR:-$root/target}/release
    local f
    for f in libgpushare_cpu.so libgpushare_shim.so gpushare; do
        [ -e "$rel/$f" ] || { echo "$bench_name: $rel/$f is missing" >&2; exit 1; }
    done
    work=$(mktemp -d "/tmp/gpushare-$bench_name.XXXXXX")
    mkdir -p "$work/lib"
    ln -s "$rel/libgpushare_cpu.so" "$work/lib/libcuda.so.1"
    ln -s libcuda.so.1 "$work/lib/libcuda.so"
    gcc -std=gnu11 -O2 -Wall -Werror -I "$root/.deps/cuda/nvidia/cuda_runtime/include" \
        -I "$root/tests/c" "$root/tests/c/$2.c" -o "$work/$2" -L "$work/lib" -lcuda -lm
    unset GPUSHARE_CPU_THREADS LD_PRELOAD
    export GPUSHARE_KERNELS_DIR=$root/examples/kernels GPUSHARE_CPU_PROFILE=small
    export GPUSHARE_CPU_PACING=1 GPUSHARE_CPU_LIB=$rel/libgpushare_cpu.so
    export GPUSHARE_SHIM_LIB=$rel/libgpushare_shim.so TMPDIR=$work
}

stop_broker() {
    if [ -n "$broker_pid" ]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
        broker_pid=
    fi
}

start_broker_with() {
    stop_broker
    printf '[default]\nisolation = "shared"\n%b\n%b\n' "${GPUSHARE_BENCH_DEFAULTS:-}" "$1" \
        >"$work/policy.toml"
    rm -f "$work/sock"
    GPUSHARE_LOG=${GPUSHARE_BENCH_LOG:-$2} "$rel/gpushare" broker --device cpu \
        --socket "$work/sock" --policy "$work/policy.toml" 2>>"$work/broker.log" &
    broker_pid=$!
    for _ in $(seq 600); do
        [ -S "$work/sock" ] && return 0
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "$bench_name: the broker did not start" >&2
    cat "$work/broker.log" >&2
    exit 1
}
