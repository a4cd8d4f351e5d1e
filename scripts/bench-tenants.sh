#!/usr/bin/env bash
# Tenants benchmark (issue 12, items 5(d) and 4), tenants = tests/c/bench_tenants.c, CPU device
# with pacing (GPUSHARE_CPU_PACING=1, `small` profile: copies and kernels last their modelled time).
#
#  throughput  N = 1, 2, 4 tenants through `gpushare run`, all at once, each batch after batch on
#              one stream: upload MIB MiB, a busy_sleep kernel of KERNEL_US µs, download MIB MiB,
#              wait; from pinned (cuMemAllocHost) and from pageable (malloc) memory. One broker
#              per scheduler ([scheduler] policy = "fair", the default, and "fifo"), isolation
#              "shared" (one worker, one modelled device). Prints aggregate batches/s, Jain's index
#              over the tenants' batches/s, and fair / fifo.
#  wake        completion-to-wake latency (bench_tenants --wake): a tenant alone on an idle device
#              waits for a tiny kernel (cuEventSynchronize, cuStreamSynchronize) and for a 1 ms
#              kernel (wall time minus the events' elapsed time), back to back (gap 0) and with
#              2 ms of sleep between iterations; directly on the CPU device (the in-process floor)
#              and through the shim + broker.
#
# Usage: scripts/bench-tenants.sh [SECONDS per run, default 3] [REPS, default 1] [PARTS, default
#        "throughput wake"]. Environment: MIB (default 2), KERNEL_US (default 1500), TENANTS
#        (default "1 2 4"), MEMORY (default "pinned pageable"), WAKE_N (default 2000).
# Builds what it needs unless GPUSHARE_BENCH_NO_BUILD=1. Nothing is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-3}
reps=${2:-1}
only=${3:-throughput wake}
mib=${MIB:-2}
kernel_us=${KERNEL_US:-1500}
counts=${TENANTS:-1 2 4}
memories=${MEMORY:-pinned pageable}
wake_n=${WAKE_N:-2000}
want() { case " $only " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

. "$root/scripts/lib/bench-broker.sh"
bench_prepare bench-tenants bench_tenants
unset GPUSHARE_LOG
tenants=()
cleanup() {
    for p in "${tenants[@]}"; do kill "$p" 2>/dev/null || true; done
    stop_broker
    [ "${GPUSHARE_BENCH_KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

# start_broker POLICY: a broker with [scheduler] policy = POLICY.
start_broker() { start_broker_with "[scheduler]\npolicy = \"$1\"" warn; }

# wait_tenants: waits for the tenants started since the last call (never for the broker).
wait_tenants() {
    local failed=0
    for p in "${tenants[@]}"; do wait "$p" || failed=$?; done
    tenants=()
    if [ "$failed" != 0 ]; then
        echo "bench-tenants: a tenant failed (exit $failed); broker log:" >&2
        tail -n 30 "$work/broker.log" >&2
        exit 1
    fi
}

field() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

if want throughput; then
    results=$work/results.txt # rep policy memory N aggregate jain
    : >"$results"
    echo "bench-tenants: throughput, ${secs} s per run, $reps rep(s), $mib MiB up + ${kernel_us} us kernel + $mib MiB down per batch" >&2
    for rep in $(seq "$reps"); do
        # The in-process floor: one tenant directly on the CPU device (no shim, no broker).
        for mem in $memories; do
            pageable=0
            [ "$mem" = pageable ] && pageable=1
            LD_LIBRARY_PATH=$work/lib "$work/bench_tenants" --seconds "$secs" --mib "$mib" \
                --kernel-us "$kernel_us" --pageable "$pageable" >"$work/direct.out"
            echo "$rep direct $mem 1 $(field "$work/direct.out" batches_per_s) 1 -" >>"$results"
            echo "  rep $rep direct   $mem N=1: $(field "$work/direct.out" batches_per_s) batches/s" >&2
        done
        for policy in fair fifo; do
            start_broker "$policy"
            for mem in $memories; do
                pageable=0
                [ "$mem" = pageable ] && pageable=1
                for n in $counts; do
                    # All tenants measure the same interval: it starts once every one is connected.
                    start=$(awk -v t="$(date +%s.%N)" -v n="$n" 'BEGIN { printf "%.3f", t + 1.5 + 0.4 * n }')
                    for i in $(seq "$n"); do
                        "$rel/gpushare" run --socket "$work/sock" --name "t$i" -- "$work/bench_tenants" \
                            --seconds "$secs" --mib "$mib" --kernel-us "$kernel_us" --pageable "$pageable" \
                            --start-at "$start" >"$work/t$i.out" &
                        tenants+=($!)
                    done
                    wait_tenants
                    rates=
                    for i in $(seq "$n"); do rates="$rates $(field "$work/t$i.out" batches_per_s)"; done
                    echo "$rep $policy $mem $n $rates" | awk '{ s = 0; q = 0; for (i = 5; i <= NF; i++) { s += $i; q += $i * $i }
                        printf "%s %s %s %s %.2f %.4f %s\n", $1, $2, $3, $4, s, s * s / ($4 * q), substr($0, index($0, $5)) }' >>"$results"
                    tail -n 1 "$results" | awk '{ printf "  rep %s %-4s %-8s N=%s: aggregate %7.2f batches/s, Jain %.4f, per tenant:", $1, $2, $3, $4, $5, $6
                        for (i = 7; i <= NF; i++) printf " %s", $i; printf "\n" }' >&2
                done
            done
        done
    done
    stop_broker
    echo
    echo "== throughput: aggregate batches/s (range over $reps rep(s)), Jain's index, fair / fifo"
    for mem in $memories; do
        awk -v m="$mem" '$2 == "direct" && $3 == m { if (lo == "" || $5 < lo) lo = $5; if (hi == "" || $5 > hi) hi = $5 }
            END { printf "direct (in-process), 1 tenant, %s: %.1f-%.1f batches/s\n", m, lo, hi }' "$results"
    done
    printf '%-9s %2s  %-17s %-17s %-15s %-15s %s\n' memory N "fair batches/s" "fifo batches/s" "Jain fair" "Jain fifo" "fair/fifo"
    for mem in $memories; do
        for n in $counts; do
            awk -v m="$mem" -v n="$n" '
                function lo(a, b) { return a == "" || b < a ? b : a }
                function hi(a, b) { return a == "" || b > a ? b : a }
                $3 == m && $4 == n { agg[$2, $1] = $5
                    amin[$2] = lo(amin[$2], $5); amax[$2] = hi(amax[$2], $5)
                    jmin[$2] = lo(jmin[$2], $6); jmax[$2] = hi(jmax[$2], $6); reps[$1] = 1 }
                END {
                    for (r in reps) if ((("fair", r) in agg) && (("fifo", r) in agg)) {
                        x = agg["fair", r] / agg["fifo", r]; rmin = lo(rmin, x); rmax = hi(rmax, x) }
                    printf "%-9s %2s  %-17s %-17s %-15s %-15s %.3f-%.3f\n", m, n,
                        sprintf("%.1f-%.1f", amin["fair"], amax["fair"]), sprintf("%.1f-%.1f", amin["fifo"], amax["fifo"]),
                        sprintf("%.4f-%.4f", jmin["fair"], jmax["fair"]), sprintf("%.4f-%.4f", jmin["fifo"], jmax["fifo"]), rmin, rmax }' "$results"
        done
    done
fi

if want wake; then
    echo "bench-tenants: wake latency, $wake_n iterations per figure" >&2
    for g in 0 2000; do
        LD_LIBRARY_PATH=$work/lib "$work/bench_tenants" --wake "$wake_n" --gap-us "$g" >"$work/direct$g.out"
    done
    start_broker fair
    for g in 0 2000; do
        "$rel/gpushare" run --socket "$work/sock" --name wake -- "$work/bench_tenants" \
            --wake "$wake_n" --gap-us "$g" >"$work/shim$g.out" &
        tenants+=($!)
        wait_tenants
    done
    stop_broker
    echo
    echo "== wake: completion-to-wake latency, µs (gap = sleep between iterations)"
    printf '%-24s %12s %12s %12s %12s\n' figure "direct gap 0" "shim gap 0" "direct 2 ms" "shim 2 ms"
    awk '{ k = $1; if (!(k in seen)) { seen[k] = 1; order[++n] = k } v[FILENAME, k] = $2 }
         END { for (i = 1; i <= n; i++) { k = order[i]
                   printf "%-24s %12s %12s %12s %12s\n", k, v[ARGV[1], k], v[ARGV[2], k], v[ARGV[3], k], v[ARGV[4], k] } }' \
        "$work/direct0.out" "$work/shim0.out" "$work/direct2000.out" "$work/shim2000.out"
fi
