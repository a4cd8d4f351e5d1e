# The steps of scripts/gpu-check.sh (sourced by it; each runs as `gpu-check.sh __step NAME` with
# the helpers of that script: note, skip, fail, fenced, direct, start_broker, shim, wait_for).
# A step records what it saw with `note` (Markdown for the report), calls `fail` for each
# problem (the step then fails, but goes on), and `skip REASON` when it cannot run.
# shellcheck shell=bash

# ---- env ---------------------------------------------------------------------------------------

step_env() {
    note "| item | value |"
    note "|---|---|"
    if have_gpu; then
        local q
        q=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -1)
        echo "$q" >"$GC_STATE/gpu"
        note "| GPU (nvidia-smi) | $q |"
        nvidia-smi >"$W/nvidia-smi.txt" 2>&1
    else
        note "| GPU | none (nvidia-smi -L fails or is missing) |"
    fi
    note "| libcuda.so.1 | ${GC_REAL_LIBCUDA:-not in the ldconfig cache} |"
    note "| gcc | $(gcc --version 2>/dev/null | head -1 || echo missing) |"
    note "| nvcc | $(nvcc --version 2>/dev/null | tail -1 || echo missing) |"
    local py
    py=$(pick_python)
    note "| python | $py: $("$py" --version 2>&1) |"
    note "| packages | $("$py" "$HELPERS/versions.py" 2>&1 | tr '\n' ' ') |"
    timeout 15 "$py" -m pip list --disable-pip-version-check >"$W/pip-list.txt" 2>&1 || true
}

# pick_python: GPU_CHECK_PYTHON, else .deps/py's with --device cpu, else python3.
pick_python() {
    if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
        echo "$GPU_CHECK_PYTHON"
    elif [ "$GC_DEVICE" = cpu ] && [ -x "$ROOT/.deps/py/bin/python" ]; then
        echo "$ROOT/.deps/py/bin/python"
    else
        command -v python3 || echo python3
    fi
}

# ---- broker ------------------------------------------------------------------------------------

step_broker() {
    start_broker main || return
    status_of >"$W/status.txt"
    note "\`gpushare status\`:"
    fenced "$W/status.txt"
    grep -q "^device 0" "$W/status.txt" || fail "gpushare status shows no device 0"
    if [ "$GC_DEVICE" = cuda ] && grep -qi "cpu device" "$W/status.txt"; then
        fail "--device cuda, yet the broker reports the CPU device"
    fi
    shim one "$PROGS/mlp" "$KERNELS" --name one --batches 1 >"$W/mlp.out" 2>&1 ||
        fail "one MLP tenant failed (logs/broker/mlp.out)"
    fenced "$W/mlp.out"
}

# ---- e2e-programs ------------------------------------------------------------------------------

# label|program|arguments|masked line substring|dropped line prefix|environment
E2E_TABLE=(
    "mlp|mlp|@K --name e2e --batches 3|||"
    "init_version|init_version||||"
    "context|context||||"
    "memory|memory||cuMemGetInfo||"
    "host_memory|host_memory||||"
    "managed|managed||||"
    "module|module|||   (error log:|"
    "launch|launch||||"
    "legacy_launch|legacy_launch||||"
    "linker|linker||||"
    "occupancy|occupancy||||"
    "procaddress|procaddress||||"
    "free_while_keying|free_while_keying||||"
    "streamed_copy|streamed_copy||||"
    "cudart_launch|cudart_launch||||"
    "cudart_register|cudart_register||||"
    "cudart_register_eager|cudart_register||||CUDA_MODULE_LOADING=EAGER"
    "cudart_stream_event|cudart_stream_event||elapsed||"
    "cudart_graph|cudart_graph||||"
    "graph|graph||||"
    "mlp_graph|mlp|@K --name e2e --batches 100 --graph 1|||"
    "cudart_launch@13.0|cudart_launch@13.0||||"
    "cudart_stream_event@13.0|cudart_stream_event@13.0||elapsed||"
    "cudart_graph@13.0|cudart_graph@13.0||||"
    "cudart_register@13.0|cudart_register@13.0||||"
    "cudart_launch@13.5|cudart_launch@13.5||||"
    "cudart_graph@13.5|cudart_graph@13.5||||"
    "cudarc_mlp|@R/gpushare-example-cudarc-mlp|@K --name e2e --batches 3|||"
)

step_e2e_programs() {
    start_broker e2e || return
    note "| program | direct | through the shim | outputs |"
    note "|---|---|---|---|"
    local row
    for row in "${E2E_TABLE[@]}"; do e2e_one "$row"; done
    if cmp -s "$W/mlp.direct" "$W/cudarc_mlp.direct"; then
        note "" && note "The cudarc MLP prints exactly what mlp.c prints."
    else
        fail "the cudarc MLP and mlp.c print different lines"
    fi
}

# e2e_one ROW: one program of E2E_TABLE directly and through the shim.
e2e_one() {
    local label prog args mask drop envs rd rs
    IFS='|' read -r label prog args mask drop envs <<<"$1"
    prog=${prog/@R/$REL}
    [[ $prog == /* ]] || prog=$PROGS/$prog
    args=${args/@K/$KERNELS}
    # shellcheck disable=SC2086 # the table's arguments and environment are word lists
    timeout -k 2 60 env $envs bash -c 'direct "$@"' _ "$prog" $args >"$W/$label.direct" 2>"$W/$label.direct.err"
    rd=$?
    # shellcheck disable=SC2086
    timeout -k 2 60 env $envs "$REL/gpushare" run --socket "$SOCK" --name "$label" -- "$prog" $args \
        >"$W/$label.shim" 2>"$W/$label.shim.err"
    rs=$?
    local same=identical
    normalize "$W/$label.direct" "$mask" "$drop" >"$W/$label.direct.norm"
    normalize "$W/$label.shim" "$mask" "$drop" >"$W/$label.shim.norm"
    cmp -s "$W/$label.direct.norm" "$W/$label.shim.norm" || same="DIFFERENT ($(first_diff "$label"))"
    note "| $label | exit $rd | exit $rs | $same |"
    [ "$rd" = 0 ] || fail "$label failed directly (exit $rd): logs/$STEP/$label.direct.err"
    [ "$rs" = 0 ] || fail "$label failed through the shim (exit $rs): logs/$STEP/$label.shim.err"
    [ "$same" = identical ] || fail "$label: outputs differ"
}
export -f direct

# normalize FILE MASK DROP: FILE without lines starting with DROP, digits masked in lines
# containing MASK (timings, free memory).
normalize() {
    awk -v mask="$2" -v drop="$3" '
        drop != "" && index($0, drop) == 1 { next }
        mask != "" && index($0, mask) > 0 { gsub(/[0-9]+/, "#") }
        { print }' "$1"
}

first_diff() {
    diff "$W/$1.direct.norm" "$W/$1.shim.norm" | grep -m1 '^[<>]' | cut -c1-80 | tr '|' '/'
}

# ---- four-tenants ------------------------------------------------------------------------------

step_four_tenants() {
    local i pids=() batches=4
    direct "$PROGS/mlp" "$KERNELS" --name tenant --batches $batches >"$W/reference.out" 2>&1 ||
        fail "the direct reference run failed"
    start_broker four || return
    for i in 1 2 3 4; do
        shim_exec "tenant-$i" "$PROGS/mlp" "$KERNELS" --name tenant --batches $batches \
            >"$W/tenant-$i.out" 2>"$W/tenant-$i.err" &
        pids+=($!)
    done
    sleep 0.5
    status_of >"$W/status-while-running.txt"
    for i in 1 2 3 4; do
        wait "${pids[$((i - 1))]}" || fail "tenant-$i exited with an error"
        cmp -s "$W/reference.out" "$W/tenant-$i.out" || fail "tenant-$i printed other lines than the direct run"
    done
    note "Four MLP tenants ($batches batches each) at once; \`gpushare status\` while they ran:"
    fenced "$W/status-while-running.txt"
}

# ---- isolation-groups --------------------------------------------------------------------------

GROUPS_POLICY='[tenants.victim]\ngroup = "g1"\n[tenants.faulty]\ngroup = "g2"\n[tenants.fresh]\ngroup = "g2"'

step_isolation_groups() {
    start_broker groups "$GROUPS_POLICY" || return
    mkfifo "$S/victim.in"
    shim_exec victim "$PROGS/group_faults" victim <"$S/victim.in" >"$W/victim.out" 2>"$W/victim.err" &
    exec 3>"$S/victim.in"
    wait_for "$W/victim.out" '^victim ptr=' 30 || { fail "the victim did not start"; return; }
    victim_check 1 || fail "the victim's first check failed"
    shim faulty "$PROGS/group_faults" oob >"$W/faulty.out" 2>&1
    note "Faulting tenant (group g2, out-of-bounds write): \`$(grep -E '^(RESULT|after)' "$W/faulty.out" | tr '\n' ' ')\`"
    grep -q '^RESULT CUDA_ERROR' "$W/faulty.out" || fail "the out-of-bounds write was not reported as an error"
    victim_check 2 || fail "the victim (group g1) was hurt by the other group's fault"
    shim fresh "$PROGS/group_faults" work >"$W/fresh.out" 2>&1
    grep -q '^work ok' "$W/fresh.out" || fail "a new session of the faulted group g2 did not work"
    note "Victim (group g1) after the fault: \`$(grep '^check' "$W/victim.out" | tail -1)\`; new session of g2: \`$(tail -1 "$W/fresh.out")\`"
    echo quit >&3
    exec 3>&-
}

# victim_check N: asks the victim for a check, waits for its Nth check line, true if "check ok".
victim_check() {
    echo check >&3
    local _
    for _ in $(seq 400); do
        [ "$(grep -c '^check' "$W/victim.out")" -ge "$1" ] && break
        sleep 0.05
    done
    [ "$(grep '^check' "$W/victim.out" | sed -n "${1}p")" = "check ok" ]
}

# ---- isolation-handles -------------------------------------------------------------------------

INTRUDER_EXPECTS=(
    "DtoH from owner ptr=CUDA_ERROR_INVALID_VALUE" "HtoD to owner ptr=CUDA_ERROR_INVALID_VALUE"
    "memset owner ptr=CUDA_ERROR_INVALID_VALUE" "free owner ptr=CUDA_ERROR_INVALID_VALUE"
    "stream synchronize=CUDA_ERROR_INVALID_HANDLE" "stream query=CUDA_ERROR_INVALID_HANDLE"
    "event synchronize=CUDA_ERROR_INVALID_HANDLE" "event query=CUDA_ERROR_INVALID_HANDLE"
    "event record=CUDA_ERROR_INVALID_HANDLE" "module get function=CUDA_ERROR_INVALID_HANDLE"
    "launch owner function=CUDA_ERROR_INVALID_HANDLE" "context synchronize=CUDA_SUCCESS"
    "own memory=CUDA_SUCCESS" "DtoD owner ptr to own=CUDA_ERROR_INVALID_VALUE"
    "DtoD own to owner ptr=CUDA_ERROR_INVALID_VALUE"
)

step_isolation_handles() {
    start_broker handles || return
    mkfifo "$S/owner.in"
    shim_exec owner "$PROGS/shim_isolation" owner <"$S/owner.in" >"$W/owner.out" 2>"$W/owner.err" &
    local owner=$!
    exec 3>"$S/owner.in"
    wait_for "$W/owner.out" '^owner ptr=' 30 || { fail "the owner did not start"; return; }
    local values
    values=$(grep -m1 '^owner ptr=' "$W/owner.out" | tr ' ' '\n' | sed -n 's/^[a-z]*=//p' | tr '\n' ' ')
    # shellcheck disable=SC2086 # five values
    shim intruder "$PROGS/shim_isolation" intruder $values >"$W/intruder.out" 2>&1 ||
        fail "the intruder did not run to its end"
    check_intruder
    echo check >&3
    exec 3>&-
    wait "$owner"
    grep -q "owner data intact" "$W/owner.out" || fail "the owner's data or handles did not survive"
    note "Intruder's calls on the owner's values (through the shim):"
    fenced "$W/intruder.out"
}

check_intruder() {
    local e label want got
    for e in "${INTRUDER_EXPECTS[@]}"; do
        label=${e%=*} want=${e##*=}
        got=$(awk -v l="$label -> " 'index($0, l) == 1 { print substr($0, length(l) + 1); exit }' "$W/intruder.out")
        [ "$got" = "$want" ] || fail "intruder: $label -> ${got:-nothing}, expected $want"
    done
    local a s
    a=$(sed -n 's/^async HtoD -> //p' "$W/intruder.out")
    s=$(sed -n 's/^async HtoD sync -> //p' "$W/intruder.out")
    if [ "$a" != CUDA_ERROR_INVALID_VALUE ] && { [ "$a" != CUDA_SUCCESS ] || [ "$s" = CUDA_SUCCESS ]; }; then
        fail "intruder: async HtoD to the owner's pointer -> $a, then synchronize -> $s"
    fi
}

# ---- dedup-groups ------------------------------------------------------------------------------

# Two tenants in groups of their own upload the same 8 MiB: the second maps the first's copy,
# exported by its worker (cuMemExportToShareableHandle, POSIX fd) and imported read-only by the
# other's; both read their bytes back; a store the broker cannot see faults in the writer's
# group only.
step_dedup_groups() {
    start_broker dedup '[default]\nisolation = "tenant"' || return
    local name
    for name in holder importer; do
        mkfifo "$S/$name.in"
        shim_exec "$name" "$PROGS/dedup" $((8 << 20)) 31 whole <"$S/$name.in" \
            >"$W/$name.out" 2>"$W/$name.err" &
        if [ "$name" = holder ]; then exec 4>"$S/$name.in"; else exec 5>"$S/$name.in"; fi
        wait_for "$W/$name.out" '^loaded' 30 || { fail "$name did not load its weights"; return; }
    done
    local _ saved=""
    for _ in $(seq 100); do
        status_of >"$W/status.txt"
        saved=$(sed -n 's/^device 0:.*(\(.*\) saved by deduplication).*/\1/p' "$W/status.txt")
        [ "$saved" = "8.0 MiB" ] && break
        sleep 0.2
    done
    note "Device line with both tenants: \`$(grep '^device 0' "$W/status.txt")\`"
    [ "$saved" = "8.0 MiB" ] || fail "the two groups do not share one copy (saved: ${saved:-none})"
    echo check >&4
    echo check >&5
    wait_for "$W/holder.out" '^check' 30 && wait_for "$W/importer.out" '^check' 30
    grep -q '^check ok' "$W/holder.out" || fail "the holder's bytes are wrong"
    grep -q '^check ok' "$W/importer.out" || fail "the importer's bytes are wrong"
    echo hidden >&5
    wait_for "$W/importer.out" '^hidden' 30
    note "Hidden store into the imported copy: \`$(grep '^hidden' "$W/importer.out")\`"
    grep -q '^hidden CUDA_ERROR_ILLEGAL_ADDRESS' "$W/importer.out" ||
        fail "a store into the read-only imported copy did not fault"
    echo check >&4
    for _ in $(seq 400); do
        [ "$(grep -c '^check' "$W/holder.out")" -ge 2 ] && break
        sleep 0.05
    done
    [ "$(grep '^check' "$W/holder.out" | sed -n 2p)" = "check ok" ] ||
        fail "the holder's group was hurt by the importer's fault"
    echo quit >&4
    echo quit >&5
    exec 4>&- 5>&-
}

# ---- sigkill-tenant ----------------------------------------------------------------------------

step_sigkill_tenant() {
    start_broker sigkill || return
    status_of >"$W/status-before.txt"
    shim_exec victim "$PROGS/shim_loop" --alloc-mib 64 >"$W/victim.out" 2>"$W/victim.err" &
    local victim=$!
    wait_for "$W/victim.out" '^ready' 30 || { fail "the victim did not start looping"; return; }
    status_of >"$W/status-victim.txt"
    grep -q victim "$W/status-victim.txt" || fail "gpushare status does not list the victim"
    kill -9 "$victim"
    wait "$victim" 2>/dev/null
    local _ gone=0
    for _ in $(seq 100); do
        status_of >"$W/status-after.txt"
        grep -q victim "$W/status-after.txt" || { gone=1; break; }
        sleep 0.2
    done
    [ "$gone" = 1 ] || fail "the killed tenant's session is still listed 20 s later"
    note "Device line before, while the victim held 64 MiB, and after its SIGKILL:"
    note '```'
    note "$(grep -h '^device 0' "$W/status-before.txt" "$W/status-victim.txt" "$W/status-after.txt")"
    note '```'
    direct "$PROGS/mlp" "$KERNELS" --name after --batches 2 >"$W/reference.out" 2>&1
    shim after "$PROGS/mlp" "$KERNELS" --name after --batches 2 >"$W/after.out" 2>&1 ||
        fail "a tenant after the kill failed"
    cmp -s "$W/reference.out" "$W/after.out" || fail "a tenant after the kill printed other lines"
    [ "$(used_memory "$W/status-after.txt")" = "$(used_memory "$W/status-before.txt")" ] ||
        fail "device memory in use did not return to its level before the victim"
}

# used_memory STATUS_FILE: "N UNIT" used on device 0, as `gpushare status` prints it.
used_memory() { sed -n 's/^device 0:.* — \(.*\) used of .*/\1/p' "$1"; }

# ---- broker-death ------------------------------------------------------------------------------

step_broker_death() {
    start_broker death || return
    shim_exec orphan "$PROGS/shim_loop" --alloc-mib 8 >"$W/orphan.out" 2>"$W/orphan.err" &
    local orphan=$! t0 took rc
    wait_for "$W/orphan.out" '^ready' 30 || { fail "the tenant did not start looping"; return; }
    sleep 0.2
    t0=$(date +%s%N)
    kill -9 "$BROKER"
    timeout 20 tail --pid="$orphan" -f /dev/null
    kill -0 "$orphan" 2>/dev/null && { kill -9 "$orphan"; fail "the tenant still ran 20 s after the broker died"; }
    wait "$orphan"
    rc=$?
    took=$((($(date +%s%N) - t0) / 1000000))
    note "The tenant exited $took ms after the broker's SIGKILL, status $rc: \`$(tail -1 "$W/orphan.err")\`"
    [ "$rc" != 0 ] && [ "$rc" -lt 128 ] || fail "the tenant must exit with an error status (got $rc)"
    grep -q CUDA_ERROR "$W/orphan.err" || fail "the tenant reported no CUDA error"
    [ "$took" -le 2000 ] || fail "the tenant took $took ms (goal 2000 ms) to notice"
}

# ---- corpus ------------------------------------------------------------------------------------

step_corpus() {
    mkdir -p "$W/reference" "$W/device" "$W/shim"
    LD_LIBRARY_PATH=$GC_WORK/cpulib GPUSHARE_CPU_THREADS=1 "$PROGS/corpus" "$W/reference" \
        >"$W/reference.out" 2>&1 || fail "the corpus failed on the CPU device"
    direct "$PROGS/corpus" "$W/device" >"$W/device.out" 2>&1 || fail "the corpus failed on the device"
    start_broker corpus || return
    shim corpus "$PROGS/corpus" "$W/shim" >"$W/shim.out" 2>&1 || fail "the corpus failed through the shim"
    if [ "$GC_DEVICE" = cpu ]; then
        note "With --device cpu this compares the CPU device (1 host thread) with itself (all host threads): a check of the harness and of the interpreter's determinism, not of a GPU."
    fi
    note "Reference: the CPU device. Device: $GC_DEVICE, directly."
    python3 "$HELPERS/compare.py" "$W/reference" "$W/device" >"$W/compare.txt" 2>&1 ||
        fail "kernels differ beyond tolerance between the CPU device and the device"
    fenced "$W/compare.txt"
    python3 "$HELPERS/compare.py" "$W/device" "$W/shim" --rel 0 --abs 0 >"$W/compare-shim.txt" 2>&1 ||
        fail "the corpus through the shim differs from the direct run on the same device"
    note "Through the shim against directly on the same device (exact): \`$(tail -1 "$W/compare-shim.txt")\`"
}

# ---- torch -------------------------------------------------------------------------------------

step_torch() {
    local py
    py=$(pick_python)
    "$py" -c 'import torch' 2>"$W/import.err" || skip "torch is not importable by $py ($(tail -1 "$W/import.err"))"
    timeout -k 2 70 bash -c 'direct "$@"' _ "$py" "$HELPERS/torch_check.py" "$W/direct.json" \
        >"$W/direct.out" 2>&1 || fail "a check failed directly, or it timed out (logs/torch/direct.out)"
    start_broker torch || return
    timeout -k 2 70 "$REL/gpushare" run --socket "$SOCK" --name torch -- "$py" "$HELPERS/torch_check.py" \
        "$W/shim.json" >"$W/shim.out" 2>&1 ||
        fail "a check failed through the shim, or it timed out (logs/torch/shim.out)"
    "$py" "$HELPERS/torch_check.py" --compare "$W/direct.json" "$W/shim.json" >"$W/compare.txt" 2>&1 ||
        fail "the logits differ beyond 1e-3 relative, or a side has none"
    note "Directly:"
    fenced "$W/direct.out"
    note "Through the shim:"
    fenced "$W/shim.out"
    note "Direct against shim: \`$(cat "$W/compare.txt")\`"
}

# ---- python-clients ----------------------------------------------------------------------------

PY_PROGRAMS=("numba_kernels.py numba" "cuda_core_linker.py cuda.core" "cupy_ops.py cupy" "pycuda_ptx.py pycuda")

step_python_clients() {
    local py entry ran=0
    py=$(pick_python)
    export CUPY_COMPILE_WITH_PTX=1 CUPY_CACHE_DIR=$S/cupy-cache
    start_broker python || return
    note "Python: \`$py\`"
    note ""
    note "| program | direct | through the shim | outputs |"
    note "|---|---|---|---|"
    for entry in "${PY_PROGRAMS[@]}"; do
        # shellcheck disable=SC2086 # "SCRIPT MODULE"
        python_one "$py" $entry && ran=1
    done
    [ "$ran" = 1 ] || skip "none of numba, cuda.core, cupy, pycuda is importable by $py"
}

# python_one PYTHON SCRIPT MODULE: false when MODULE is missing (the program is skipped).
python_one() {
    local py=$1 script=$2 module=$3 rd rs same=identical
    if ! "$py" -c "import $module" 2>/dev/null; then
        note "| $script | skipped: no $module | | |"
        return 1
    fi
    timeout -k 2 90 bash -c 'direct "$@"' _ "$py" "$ROOT/tests/python/$script" >"$W/$script.direct" 2>"$W/$script.direct.err"
    rd=$?
    timeout -k 2 90 "$REL/gpushare" run --socket "$SOCK" --name "${script%.py}" -- "$py" "$ROOT/tests/python/$script" \
        >"$W/$script.shim" 2>"$W/$script.shim.err"
    rs=$?
    cmp -s "$W/$script.direct" "$W/$script.shim" || same=DIFFERENT
    note "| $script | exit $rd | exit $rs | $same |"
    [ "$rd" = 0 ] || fail "$script failed directly: logs/$STEP/$script.direct.err"
    [ "$rs" = 0 ] || fail "$script failed through the shim: logs/$STEP/$script.shim.err"
    [ "$same" = identical ] || fail "$script: outputs differ"
    return 0
}

# ---- benchmarks --------------------------------------------------------------------------------

# bench SCRIPT ARGS...: a bench script against the stand-in target directory (its broker on the
# device under test), its output into the report.
bench() {
    local script=$1
    shift
    note "\`scripts/$script $*\` (device: $GC_DEVICE):"
    GPUSHARE_BENCH_NO_BUILD=1 CARGO_TARGET_DIR=$GC_WORK/bench bash "$ROOT/scripts/$script" "$@" \
        >"$W/bench.out" 2>"$W/bench.err" || fail "scripts/$script failed (logs/$STEP/bench.err)"
    fenced "$W/bench.out"
    [ -s "$W/bench.out" ] || fail "scripts/$script printed nothing"
}

bench_ready() {
    command -v gcc >/dev/null || skip "no gcc here (the bench scripts compile their tenant)"
    [ "$GC_DEVICE" = cpu ] || [ -n "$GC_REAL_LIBCUDA" ] || skip "no libcuda.so.1 in ldconfig's cache"
}

step_bench_sched() {
    bench_ready
    if [ "$GC_QUICK" = 1 ]; then bench bench-sched.sh 1 "a d"; else bench bench-sched.sh 3 "a b c d"; fi
}

# Issue 12's figure (c): the high-priority latency tenant's p99 beside a 512 MiB upload loop,
# against alone (and at equal priority).
step_bench_latency() {
    bench_ready
    # PHASES: the device-side spans too (what the broker and the device made a request wait).
    if [ "$GC_QUICK" = 1 ]; then
        GPUSHARE_BENCH_PHASES=1 bench bench-sched.sh 1 "f"
    else
        GPUSHARE_BENCH_PHASES=1 bench bench-sched.sh 10 "f"
    fi
}

step_bench_dedup() {
    bench_ready
    if [ "$GC_QUICK" = 1 ]; then bench bench-dedup.sh 2 "a"; else bench bench-dedup.sh 8 "a c d"; fi
}

step_bench_pipeline() {
    bench_ready
    if [ "$GC_QUICK" = 1 ]; then
        bench bench-shim.sh --pipeline --batches 4 --mib 4 --kernel-us 2000
    else
        bench bench-shim.sh --pipeline --batches 16 --mib 32 --kernel-us 2000
    fi
}

step_bench_shim() {
    bench_ready
    if [ "$GC_QUICK" = 1 ]; then
        bench bench-shim.sh --launches 200 --batches 3 --queries 1000 --copy-mib 8 --copy-reps 2 \
            --rate-launches 500 --rate-reps 2
    else
        bench bench-shim.sh --launches 2000 --copy-mib 64 --copy-reps 5
    fi
}

step_bench_floor() {
    bench_ready
    if [ "$GC_QUICK" = 1 ]; then
        bench bench-shim.sh --streamed-floor --copy-mib 16 --copy-reps 3
    else
        bench bench-shim.sh --streamed-floor --copy-mib 64 --copy-reps 15
    fi
}
