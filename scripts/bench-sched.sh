#!/usr/bin/env bash
# Scheduling benchmark (issue 10): tenants running tests/c/bench_sched.c through `gpushare run`
# against a broker on the CPU device with pacing (GPUSHARE_CPU_PACING=1, `small` profile), so a
# kernel lasts its modelled time in wall-clock time. Prints, per scenario, each tenant's device
# time (launches x modelled kernel time) and the figures of issue 10 item 8:
#   a) two tenants, kernels 10x apart: Jain's index (equal weights), share ratio (weights 3:1)
#   b) overhead against FIFO: device utilisation, one tenant alone and four together
#   c) a high-priority tenant (1 ms kernels every 20 ms, each waited for): p99 alone and beside
#      a saturating normal tenant with 2 ms kernels of many blocks
#   d) max_share = 0.3 alone: the share it got
#   e) the cost model's prediction error over the runs (from the broker's session-end log)
#   f) (issue 12) a latency tenant (64 KiB up, 1 ms kernel, 64 KiB down every 20 ms, each
#      waited for): p99 alone and beside a tenant uploading 512 MiB of weights again and again,
#      with the latency tenant of high priority (starting with the loader, and in the loader's
#      steady state) and of equal priority (steady state) (run it with "f"; not in the default);
#      each phase also prints the hypervisor's steal time and the broker's and workers' CPU time
# Usage: scripts/bench-sched.sh [SECONDS per run, default 5] [SCENARIOS, default "a b c d"].
# GPUSHARE_BENCH_PHASES=1: f's latency tenant records events around its upload, kernel and
# download: f also prints the p99 of the requests' device-side spans (first event to last:
# queueing behind the loader, and pauses in submitting or forwarding the request's later records;
# not the time before the first event nor the wake-up after the last), and the tenant prints
# (stderr) where its slowest requests spent their time.
# GPUSHARE_BENCH_PAGEABLE=1: f's loader uploads from pageable memory with synchronous copies (what
# `tensor.cuda()` does without pinned memory; through the shim, streamed copies).
# GPUSHARE_BENCH_LAT_DELAY=S (whole seconds, default 3): in the steady-state phases f's latency
# tenant starts S seconds after the loader (which then runs SECONDS + S): past the loader's first
# seconds, when it fills 512 MiB of host memory and its first upload touches fresh device memory
# (docs/benchmarks-latency.md). 0: every phase starts both together.
# GPUSHARE_BENCH_START_PROBES=1: two more high-priority phases take the loader's start apart: the
# loader only preparing (allocating and filling its 512 MiB buffer, no uploads), and its first
# uploads without the preparation (prepared beforehand, uploading from the moment the latency tenant
# starts, LAT_DELAY s after it, at least 3).
# GPUSHARE_BENCH_F_POLICY=TEXT: more policy for f's phases beside the loader (printf %b escapes),
# e.g. '[tenants.loader]\ngroup = "bulk"' to give the loader a worker of its own.
# Nothing is asserted (the properties
# are asserted over modelled time by broker/src/scheduler/sim.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-5}
only=${2:-a b c d}
case "${GPUSHARE_BENCH_LAT_DELAY:-0}" in
    *[!0-9]*) echo "bench-sched: GPUSHARE_BENCH_LAT_DELAY must be whole seconds" >&2; exit 2 ;;
esac
want() { case " $only " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

. "$root/scripts/lib/bench-broker.sh"
bench_prepare bench-sched bench_sched
trap 'stop_broker; [ "${GPUSHARE_BENCH_KEEP:-0}" = 1 ] || rm -rf "$work"' EXIT

# start_broker POLICY_TEXT: a broker with that policy.
start_broker() { start_broker_with "$1" info; }

# wait_tenants: waits for the tenants started since the broker (never for the broker itself).
wait_tenants() {
    for p in "${tenants[@]}"; do wait "$p" || echo "bench-sched: a tenant failed (exit $?)" >&2; done
    tenants=()
}
tenants=()

# tenant NAME ARGS...: runs bench_sched as tenant NAME in the background, output in NAME.out.
tenant() {
    local name=$1
    shift
    "$rel/gpushare" run --socket "$work/sock" --name "$name" -- \
        "$work/bench_sched" --seconds "$secs" "$@" >"$work/$name.out" &
    tenants+=($!)
}

# device_s NAME NS BLOCKS_PER_WAVE... : modelled device seconds: launches x (5 µs + waves x ns).
device_s() {
    awk -v ns="$2" -v waves="${3:-1}" '$1 == "launches" { printf "%.3f", $2 * (5000 + waves * ns) / 1e9 }' "$work/$1.out"
}
elapsed() { awk '$1 == "elapsed_s" { print $2 }' "$work/$1.out"; }
field() { awk -v k="$2" '$1 == k { print $2 }' "$work/$1.out"; }

# Kernels of the `small` profile: 1 block = 1 wave; a nanosleep lasts at most 1 ms (PTX).
# Long many-block kernels: 320 blocks with 48 KiB of shared memory each = 4 blocks per SM = 20
# waves of 100 µs = 2 ms. Saturating tenants keep about 20 ms of work per synchronisation.
short="--ns 100000 --depth 200"
long="--ns 1000000 --depth 20"
wide="--ns 100000 --blocks 320 --shared 49152 --depth 10"

if want a; then
echo "== a) two tenants, kernels 10x apart (0.1 ms and 1 ms), equal weights"
start_broker ""
tenant short $short
tenant long $long
wait_tenants
a=$(device_s short 100000) b=$(device_s long 1000000)
awk -v a="$a" -v b="$b" 'BEGIN { printf "device s: short %.3f, long %.3f; shares %.3f / %.3f; Jain %.4f\n",
    a, b, a / (a + b), b / (a + b), (a + b)^2 / (2 * (a * a + b * b)) }'

echo "== a) the same with weights 3 (short) : 1 (long)"
start_broker '[tenants.short]\nweight = 3'
tenant short $short
tenant long $long
wait_tenants
a=$(device_s short 100000) b=$(device_s long 1000000)
awk -v a="$a" -v b="$b" 'BEGIN { printf "device s: short %.3f, long %.3f; ratio %.3f (goal 3 +- 5%%)\n", a, b, a / b }'
fi

want b && for policy in fifo fair; do
    echo "== b) overhead, [scheduler] policy = \"$policy\": one tenant, 1 ms kernels"
    start_broker "[scheduler]\npolicy = \"$policy\""
    tenant solo --ns 1000000
    wait_tenants
    awk -v d="$(device_s solo 1000000)" -v e="$(elapsed solo)" 'BEGIN { printf "utilisation %.4f\n", d / e }'
    echo "== b) overhead, [scheduler] policy = \"$policy\": four tenants, 1 ms kernels"
    start_broker "[scheduler]\npolicy = \"$policy\""
    for i in 1 2 3 4; do tenant "t$i" --ns 1000000; done
    wait_tenants
    sum=0
    for i in 1 2 3 4; do sum=$(awk -v s="$sum" -v d="$(device_s "t$i" 1000000)" 'BEGIN { print s + d }'); done
    awk -v d="$sum" -v e="$(elapsed t1)" 'BEGIN { printf "utilisation %.4f\n", d / e }'
done

if want c; then
echo "== c) high-priority tenant: 1 ms kernels every 20 ms, each waited for"
start_broker '[tenants.hi]\npriority = "high"'
tenant hi --ns 1000000 --period-us 20000
wait_tenants
alone=$(field hi lat_p99_us)
echo "alone: p50 $(field hi lat_p50_us) us, p99 $alone us"
start_broker '[tenants.hi]\npriority = "high"'
tenant hi --ns 1000000 --period-us 20000
tenant bulk $wide
wait_tenants
shared=$(field hi lat_p99_us)
awk -v a="$alone" -v s="$shared" -v p50="$(field hi lat_p50_us)" -v d="$(device_s bulk 100000 20)" -v e="$(elapsed bulk)" \
    'BEGIN { printf "beside a saturating tenant: p50 %s us, p99 %s us = %.2f x alone (goal <= 1.2); bulk tenant kept %.3f of the device\n", p50, s, s / a, d / e }'

fi
if want d; then
echo "== d) max_share = 0.3, alone, 1 ms kernels"
start_broker '[tenants.capped]\nmax_share = 0.3'
tenant capped --ns 1000000
wait_tenants
awk -v d="$(device_s capped 1000000)" -v e="$(elapsed capped)" 'BEGIN { printf "share %.4f (goal 0.3 +- 0.015)\n", d / e }'
fi
if want f; then
echo "== f) latency tenant (64 KiB up, 1 ms kernel, 64 KiB down every 20 ms) beside a 512 MiB upload loop"
request="--ns 1000000 --period-us 20000 --copy-kib 64 ${GPUSHARE_BENCH_PHASES:+--phases 1}"
start_broker '[tenants.lat]\npriority = "high"'
host_begin
tenant lat $request
wait_tenants
host_report alone
alone=$(field lat lat_p99_us) dev_alone=$(field lat dev_p99_us)
echo "alone: p50 $(field lat lat_p50_us) us, p99 $alone us${dev_alone:+; device side p99 $dev_alone us}"
# Phases beside the loader: "PRIORITY DELAY LOAD", the latency tenant starting DELAY s after it;
# LOAD: "upload" (prepares, then uploads at once), "prepare" (prepares only), "hold" (prepares,
# then uploads from DELAY s on).
steady=${GPUSHARE_BENCH_LAT_DELAY:-3}
phases=("high $steady upload" "high 0 upload" "normal $steady upload")
[ "$steady" = 0 ] && phases=("high 0 upload" "normal 0 upload")
if [ "${GPUSHARE_BENCH_START_PROBES:-0}" = 1 ]; then
    phases+=("high 0 prepare" "high $((steady > 3 ? steady : 3)) hold")
fi
for phase in "${phases[@]}"; do
    read -r prio delay load <<<"$phase"
    loader_args=(--upload-mib 512 ${GPUSHARE_BENCH_PAGEABLE:+--pageable 1})
    loader_secs=$((secs + delay))
    if [ "$load" = prepare ]; then
        label="$prio priority, beside the loader's preparation only (no uploads)"
        loader_args+=(--prepare-only 1)
    elif [ "$load" = hold ]; then
        label="$prio priority, from the loader's first upload (prepared before)"
        loader_args+=(--hold-s "$delay")
        loader_secs=$secs
    elif [ "$delay" = 0 ]; then
        label="$prio priority, from the loader's start"
    else
        label="$prio priority, loader's steady state (from $delay s)"
    fi
    start_broker "[tenants.lat]\npriority = \"$prio\"${GPUSHARE_BENCH_F_POLICY:+\n$GPUSHARE_BENCH_F_POLICY}"
    host_begin
    secs=$loader_secs tenant loader "${loader_args[@]}"
    [ "$delay" = 0 ] || sleep "$delay"
    tenant lat $request
    wait_tenants
    host_report "$label"
    awk -v a="$alone" -v s="$(field lat lat_p99_us)" -v p50="$(field lat lat_p50_us)" -v l="$label" \
        -v g="$(field loader upload_gbps)" -v u="$(field loader uploads)" \
        -v prep="$(field loader prepare_s)" \
        'BEGIN { printf "%s: p50 %s us, p99 %s us = %.2f x alone (goal <= 1.2); loader: prepared in %s s, %s uploads, %s GB/s\n", l, p50, s, s / a, prep, u, g }'
    if [ -n "$dev_alone" ]; then
        awk -v a="$dev_alone" -v s="$(field lat dev_p99_us)" -v l="$label" \
            'BEGIN { printf "%s, device side (first event to last): p99 %s us = %.2f x alone\n", l, s, s / a }'
    fi
done
fi
stop_broker

echo "== e) cost-model prediction error, per session (broker log)"
grep -o 'session ended.*prediction error [^ ]*' "$work/broker.log" | sed 's/.*tenant/tenant/' || true
