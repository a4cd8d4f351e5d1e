# Shared by the scheduling benchmarks (scripts/bench-sched.sh, scripts/bench-tenants.sh); sourced
# with `root` (the checkout) set. `bench_prepare NAME PROGRAM` builds what is needed (unless
# GPUSHARE_BENCH_NO_BUILD=1), makes the scratch directory `$work`, compiles tests/c/PROGRAM.c
# against the CPU device into `$work/PROGRAM`, and sets the tenants' environment (small profile,
# pacing); `start_broker_with POLICY_TEXT LOG_LEVEL` starts one broker (isolation "shared": one
# worker, one modelled device for every tenant; GPUSHARE_BENCH_DEFAULTS: more `[default]` keys, e.g.
# `dedup = false`; GPUSHARE_BENCH_BROKER_WRAP: a command to start it under, e.g. `nice -n -15`) and
# waits for its socket; `stop_broker` stops it; `host_begin`/`host_report` (below) print what the
# host took during a phase.
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
    GPUSHARE_LOG=${GPUSHARE_BENCH_LOG:-$2} ${GPUSHARE_BENCH_BROKER_WRAP:-} "$rel/gpushare" broker --device cpu \
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

# host_begin: starts counting what the host took during a phase: the hypervisor's steal time
# (/proc/stat; a VM's vCPUs taken away, which no scheduling here can hide) and the CPU time of the
# broker and its workers. host_report LABEL (before the broker stops) prints both for the phase.
host_begin() {
    host_t0=$(date +%s.%N) host_steal0=$(host_steal_ticks) host_cpu0=$(broker_cpu_ticks)
}

host_report() {
    local t1 steal1 cpu1
    t1=$(date +%s.%N) steal1=$(host_steal_ticks) cpu1=$(broker_cpu_ticks)
    awk -v l="$1" -v t0="$host_t0" -v t1="$t1" -v s0="$host_steal0" -v s1="$steal1" \
        -v c0="$host_cpu0" -v c1="$cpu1" -v hz="$(getconf CLK_TCK)" -v n="$(nproc)" \
        'BEGIN { w = t1 - t0; printf "%s: host steal %.1f %% of %d CPUs over %.1f s; broker and workers used %.2f CPU s\n",
            l, 100 * (s1 - s0) / hz / (w * n), n, w, (c1 - c0) / hz }'
}

# host_steal_ticks: the steal column of /proc/stat's "cpu" line (0 where there is none).
host_steal_ticks() { awk '$1 == "cpu" { print ($9 == "" ? 0 : $9); exit }' /proc/stat; }

# broker_cpu_ticks: user + system ticks of the broker and its children (the workers) so far.
broker_cpu_ticks() {
    local p sum=0 t
    for p in $broker_pid $(pgrep -P "$broker_pid" 2>/dev/null); do
        # Fields after the ")" that ends the command name: utime and stime are the 12th and 13th.
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || t=0
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}
