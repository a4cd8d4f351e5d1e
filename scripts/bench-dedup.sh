#!/usr/bin/env bash
# Deduplication benchmark (issue 11): tenants running tests/c/dedup.c ("model weights": one
# allocation, uploaded, kept) through `gpushare run` against a broker on the CPU device. Prints:
#   a) N tenants of the same 256 MiB weights: device memory used with N tenants / with one
#   b) seed 000's scenario on a 1 GiB device: how many tenants of a 200 MiB model load, with
#      and without dedup, and their aggregate kernel throughput (200 reading kernels each)
#   c) load time of tenant 2 against tenant 1 (its upload skipped), and tenant 1's load time
#      with dedup against without (the hashing overhead), best of 3
#   d) kernel time once mapped (200 kernels reading the weights): shared against private
# Usage: scripts/bench-dedup.sh [TENANTS for a), default 8] [SCENARIOS, default "a b c d"].
# GPUSHARE_BENCH_ISOLATION (default "shared": one worker for everyone) sets the policy's
# isolation: "tenant" puts every tenant in its own worker, so sharing goes across isolation
# groups (a copy exported by one worker, imported by the others). b) needs one worker (its 1 GiB
# is per CPU device, i.e. per worker) and is skipped otherwise.
# Nothing is asserted (tests/tests/dedup.rs asserts the behaviour).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
n=${1:-8}
only=${2:-a b c d}
want() { case " $only " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

scripts/setup-cuda-deps.sh >/dev/null
if [ "${GPUSHARE_BENCH_NO_BUILD:-0}" != 1 ]; then
    cargo build --release -p gpushare-cpu -p gpushare-broker -p gpushare-shim
fi
rel=${CARGO_TARGET_DIR:-$root/target}/release
work=$(mktemp -d /tmp/gpushare-bench-dedup.XXXXXX)
broker_pid=
pids=()
stop_all() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    if [ -n "$broker_pid" ]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
        broker_pid=
    fi
}
trap 'stop_all; [ "${GPUSHARE_BENCH_KEEP:-0}" = 1 ] || rm -rf "$work"' EXIT

mkdir -p "$work/lib"
ln -s "$rel/libgpushare_cpu.so" "$work/lib/libcuda.so.1"
ln -s libcuda.so.1 "$work/lib/libcuda.so"
gcc -std=gnu11 -O2 -Wall -Werror -I "$root/.deps/cuda/nvidia/cuda_runtime/include" -I tests/c \
    tests/c/dedup.c -o "$work/dedup" -L "$work/lib" -lcuda -lm
gcc -O2 -Wall -Werror -I "$root/.deps/cuda/nvidia/cuda_runtime/include" examples/mlp/mlp.c \
    -o "$work/mlp" -L "$work/lib" -lcuda -lm

unset GPUSHARE_CPU_THREADS LD_PRELOAD GPUSHARE_CPU_PACING
export GPUSHARE_KERNELS_DIR=$root/examples/kernels
export GPUSHARE_CPU_LIB=$rel/libgpushare_cpu.so GPUSHARE_SHIM_LIB=$rel/libgpushare_shim.so
export TMPDIR=$work
MIB=$((1 << 20))
isolation=${GPUSHARE_BENCH_ISOLATION:-shared}
echo "isolation = \"$isolation\""

# start_broker POLICY_TEXT [DEVICE_MEMORY]: workers per the isolation asked for.
start_broker() {
    stop_all
    printf '[default]\nisolation = "%s"\n%b\n' "$isolation" "$1" >"$work/policy.toml"
    rm -f "$work/sock"
    GPUSHARE_CPU_MEMORY=${2:-} GPUSHARE_LOG=${GPUSHARE_BENCH_LOG:-warn} "$rel/gpushare" broker \
        --device cpu --socket "$work/sock" --policy "$work/policy.toml" 2>>"$work/broker.log" &
    broker_pid=$!
    for _ in $(seq 600); do
        [ -S "$work/sock" ] && return 0
        sleep 0.05
    done
    echo "bench-dedup: the broker did not start" >&2
    cat "$work/broker.log" >&2
    exit 1
}

# tenant NAME BYTES SEED: a dedup.c tenant fed from the fifo NAME.in, output in NAME.out.
# Returns once it loaded (or exited); prints nothing.
tenant() {
    local name=$1
    rm -f "$work/$name.in"
    mkfifo "$work/$name.in"
    "$rel/gpushare" run --socket "$work/sock" --name "$name" -- \
        "$work/dedup" "$2" "$3" whole <"$work/$name.in" >"$work/$name.out" 2>"$work/$name.err" &
    pids+=($!)
    exec {fd}>"$work/$name.in"
    eval "fd_$name=$fd"
    for _ in $(seq 1200); do
        grep -q '^loaded' "$work/$name.out" 2>/dev/null && return 0
        kill -0 "${pids[-1]}" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
say() { local fd_var="fd_$1"; echo "$2" >&"${!fd_var}"; }
answer() { # answer NAME PREFIX: waits for the latest line starting with PREFIX
    for _ in $(seq 2400); do
        if grep -q "^$2" "$work/$1.out"; then grep "^$2" "$work/$1.out" | tail -1 | awk '{ print $2 }'; return; fi
        sleep 0.05
    done
    echo "timeout"
}
loaded_ms() { awk '$1 == "loaded" { print $2 }' "$work/$1.out"; }
# used_mib: the device's used memory from `gpushare status`, in MiB.
used_mib() {
    "$rel/gpushare" status --socket "$work/sock" | awk '/^device 0:/ {
        for (i = 1; i <= NF; i++) if ($i == "used") { v = $(i - 2); u = $(i - 1) }
        f = (u == "GiB") ? 1024 : (u == "KiB") ? 1 / 1024 : (u == "B") ? 1 / 1048576 : 1
        printf "%.1f", v * f }'
}
# saved_mib: what deduplication saves on the device, from `gpushare status`, in MiB.
saved_mib() {
    "$rel/gpushare" status --socket "$work/sock" | awk '/^device 0:/ {
        for (i = 1; i <= NF; i++) if ($i == "saved") { v = $(i - 2); u = $(i - 1); sub(/^\(/, "", v) }
        f = (u == "GiB") ? 1024 : (u == "KiB") ? 1 / 1024 : (u == "B") ? 1 / 1048576 : 1
        printf "%.1f", v * f }'
}
settle() { sleep 1; }

if want a; then
    echo "== a) $n tenants of the same 256 MiB weights"
    start_broker ""
    tenant t1 $((256 * MIB)) 1
    settle
    one=$(used_mib)
    say t1 meminfo
    dev_one=$(answer t1 meminfo)
    for i in $(seq 2 "$n"); do tenant "t$i" $((256 * MIB)) 1; done
    settle
    all=$(used_mib)
    say t1 meminfo
    sleep 0.5
    dev_all=$(grep '^meminfo' "$work/t1.out" | tail -1 | awk '{ print $2 }')
    awk -v o="$one" -v a="$all" -v n="$n" 'BEGIN { printf "status: one tenant %.1f MiB, %d tenants %.1f MiB: %.3fx (goal <= 1.15x; without dedup %dx)\n", o, n, a, a / o, n }'
    awk -v o="$dev_one" -v a="$dev_all" -v n="$n" -v i="$isolation" 'BEGIN { printf "device (cuMemGetInfo%s): one tenant %.1f MiB, %d tenants %.1f MiB: %.3fx\n", (i == "shared") ? "" : " of tenant 1'"'"'s worker", o / 1048576, n, a / 1048576, a / o }'
    echo "== a) $n tenants of the MLP example (weights: 256 KiB + 1 KiB + 32 KiB allocations)"
    for policy in "dedup = false" "dedup = true"; do
        start_broker "$policy"
        mlp_used=()
        for count in 1 "$n"; do
            for i in $(seq 1 "$count"); do
                "$rel/gpushare" run --socket "$work/sock" --name "mlp$i" -- "$work/mlp" \
                    "$root/examples/kernels" --batches 1000000 >/dev/null 2>&1 &
                pids+=($!)
            done
            # Every tenant connected (status: a row named mlpN each); their weights load at once.
            for _ in $(seq 400); do
                k=$("$rel/gpushare" status --socket "$work/sock" | awk '$2 ~ /^mlp[0-9]+$/ { c++ } END { print c + 0 }')
                [ "$k" -ge "$count" ] && break
                sleep 0.05
            done
            sleep 1
            mlp_used+=("$(used_mib)")
            mlp_saved=$(saved_mib)
            for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
            for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
            pids=()
            sleep 0.5
        done
        awk -v o="${mlp_used[0]}" -v a="${mlp_used[1]}" -v n="$n" -v p="$policy" -v s="$mlp_saved" 'BEGIN { printf "%s: one tenant %.1f MiB, %d tenants %.1f MiB: %.2fx (%.1f MiB saved: %.1f MiB per tenant beyond the first)\n", p, o, n, a, a / o, s, s / (n - 1) }'
    done
fi

if want b && [ "$isolation" = shared ]; then
    for policy in "dedup = true" "dedup = false"; do
        echo "== b) 1 GiB device, tenants of a 200 MiB model, $policy"
        start_broker "$policy" 1GiB
        count=0
        for i in $(seq 1 24); do
            tenant "m$i" $((200 * MIB)) 3 || break
            count=$i
        done
        t0=$(date +%s.%N)
        for i in $(seq 1 "$count"); do say "m$i" bench; done
        for i in $(seq 1 "$count"); do answer "m$i" bench >/dev/null; done
        t1=$(date +%s.%N)
        awk -v c="$count" -v a="$t0" -v b="$t1" 'BEGIN { printf "tenants loaded: %d; aggregate: %.0f kernels/s (%d x 200 kernels in %.2f s)\n", c, c * 200 / (b - a), c, b - a }'
    done
fi

if want c; then
    echo "== c) load time of 256 MiB (one cuMemcpyHtoD), best of 3"
    best() { sort -g | head -1; }
    for policy in "dedup = false" "dedup = true"; do
        firsts=() seconds=() thirds=()
        for r in 1 2 3; do
            start_broker "$policy"
            tenant first $((256 * MIB)) 5
            settle
            tenant second $((256 * MIB)) 5
            settle
            tenant third $((256 * MIB)) 5
            firsts+=("$(loaded_ms first)") seconds+=("$(loaded_ms second)") thirds+=("$(loaded_ms third)")
        done
        f=$(printf '%s\n' "${firsts[@]}" | best) s=$(printf '%s\n' "${seconds[@]}" | best)
        th=$(printf '%s\n' "${thirds[@]}" | best)
        echo "$policy: tenant 1 $f ms, tenant 2 $s ms, tenant 3 $th ms"
        eval "first_${policy##* }=$f second_${policy##* }=$s third_${policy##* }=$th"
    done
    awk -v a="$first_false" -v b="$first_true" -v s="$second_true" -v t="$third_true" 'BEGIN {
        printf "hashing overhead on tenant 1: %+.1f %% (goal <= 10 %%); with dedup, tenant 2 / tenant 1: %.2f, tenant 3 / tenant 1: %.2f\n", (b / a - 1) * 100, s / b, t / b }'
fi

if want d; then
    echo "== d) 200 kernels reading 256 MiB weights, best of 5"
    for policy in "dedup = false" "dedup = true"; do
        start_broker "$policy"
        tenant x $((256 * MIB)) 6
        tenant y $((256 * MIB)) 6
        settle
        for r in 1 2 3 4 5; do say y bench; sleep 0.5; done
        for _ in $(seq 100); do [ "$(grep -c '^bench' "$work/y.out")" -ge 5 ] && break; sleep 0.1; done
        b=$(grep '^bench' "$work/y.out" | awk '{ print $2 }' | sort -g | head -1)
        echo "$policy: $b ms (used $(used_mib) MiB)"
    done
fi
