#!/usr/bin/env bash
# One-shot check of gpushare on a real GPU (docs/gpu-check.md).
#
#   scripts/gpu-check.sh prepare [--bundle DIR] [--no-build | --from RELEASE_DIR]
#       On the development machine: builds (release) the broker, the shim, the CPU device, the
#       cudarc MLP, compiles the C programs against .deps/cuda's headers, and puts all of it,
#       stripped of debug info, with libcudart 12.9 and cuda.h, into ONE directory (default
#       gpu-bundle/), then prints the `carry` list and the command for the GPU machine.
#       --no-build: take the binaries already in ${CARGO_TARGET_DIR:-target}/release; --from:
#       take them from RELEASE_DIR.
#   scripts/gpu-check.sh run [--out DIR] [--device cuda|cpu] [--bundle DIR] [--steps "A B"]
#       On the GPU machine (no network needed): runs every step below, each under its own
#       timeout, the whole within GPU_CHECK_BUDGET seconds (default 480), and writes DIR/gpu-report.md
#       (DIR defaults to $OUT) with raw logs under DIR/logs/. A step's failure is recorded and the
#       next step runs; a step that needs something missing (no GPU, no torch) is SKIPPED with the
#       reason. --device cpu runs the same steps against the CPU device (the proof of the script
#       on a machine without a GPU; tests/tests/gpu_check.rs). Exit status 0 when no step failed.
#
# Environment: GPU_CHECK_BUDGET (seconds, default 480), GPU_CHECK_SKIP ("step step": recorded as
# SKIPPED), GPU_CHECK_PYTHON (python with torch/cupy/numba; default python3, or .deps/py's with
# --device cpu), GPU_CHECK_QUICK=1 (shortest benchmark settings; the default with --device cpu).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$ROOT/scripts/gpu-check.sh
HELPERS=$ROOT/scripts/gpu-check

# Steps in the order they run, with their time limits (seconds) and titles.
STEPS=(
    "env 45 environment: GPU, driver, Python packages"
    "broker 30 broker on the device, status, one tenant"
    "e2e-programs 120 C programs and the MLPs: identical output directly and through the shim"
    "four-tenants 60 four MLP tenants at once"
    "isolation-groups 60 a faulting tenant costs only its own isolation group"
    "isolation-handles 40 a tenant cannot use another tenant's pointers and handles"
    "dedup-groups 45 deduplication across isolation groups: one copy, exported and imported read-only"
    "sigkill-tenant 45 SIGKILL of a tenant: session ended, memory freed, others unharmed"
    "broker-death 30 the broker SIGKILLed: its tenant gets an error, no hang"
    "corpus 45 kernel corpus on the device against the CPU device"
    "torch 150 PyTorch directly and through the shim"
    "python-clients 120 numba-cuda, cuda-core, CuPy, PyCUDA directly and through the shim"
    "bench-sched 90 fairness and priority benchmark (scripts/bench-sched.sh)"
    "bench-latency 75 a latency tenant beside a model load (scripts/bench-sched.sh f)"
    "bench-dedup 90 deduplication benchmark (scripts/bench-dedup.sh)"
    "bench-pipeline 45 transfer overlap benchmark (scripts/bench-shim.sh --pipeline)"
    "bench-shim 45 launch and copy costs (scripts/bench-shim.sh)"
    "bench-floor 30 a streamed copy's hand-over in one process, directly (scripts/bench-shim.sh --streamed-floor)"
)

die() { echo "gpu-check: $*" >&2; exit 2; }

# ============================================================================================
# prepare (development machine)
# ============================================================================================

DRIVER_PROGRAMS="init_version context memory host_memory managed module launch legacy_launch
linker occupancy procaddress free_while_keying graph group_faults shim_isolation shim_loop
bench_sched dedup bench_pipeline bench_shim streamed_copy"
CUDART_PROGRAMS="cudart_launch cudart_register cudart_stream_event cudart_graph"
# The CUDA 13 runtimes the libcudart programs are also built against (<program>@<version>).
CUDART13_VERSIONS="13.0 13.5"

prepare() {
    local bundle=$ROOT/gpu-bundle build=1 rel=${CARGO_TARGET_DIR:-$ROOT/target}/release
    while [ $# -gt 0 ]; do
        case $1 in
            --bundle) bundle=$2; shift 2 ;;
            --no-build) build=0; shift ;;
            --from) rel=$2 build=0; shift 2 ;;
            *) die "prepare: unknown argument $1" ;;
        esac
    done
    "$ROOT/scripts/setup-cuda-deps.sh" >/dev/null || die "scripts/setup-cuda-deps.sh failed"
    [ "$build" = 1 ] && build_rust
    rm -rf "$bundle"
    mkdir -p "$bundle"/{release,progs,cuda/lib,stub} || die "cannot create $bundle"
    stage_binaries "$rel" "$bundle/release" || die "staging the binaries failed"
    stage_cuda "$bundle" || die "staging libcudart and cuda.h failed"
    compile_programs "$bundle" || die "compiling the C programs failed"
    write_manifest "$bundle"
    print_instructions "$bundle"
}

build_rust() {
    (cd "$ROOT" && cargo build --release -p gpushare-cpu -p gpushare-broker -p gpushare-shim \
        -p gpushare-example-cudarc-mlp) || die "cargo build failed"
}

# stage_binaries REL DEST: the four binaries, debug info stripped (symbols kept).
stage_binaries() {
    local f
    for f in gpushare libgpushare_cpu.so libgpushare_shim.so gpushare-example-cudarc-mlp; do
        [ -f "$1/$f" ] || { echo "missing $1/$f (build it, or drop --no-build)" >&2; return 1; }
        cp "$1/$f" "$2/$f" && chmod u+w "$2/$f" && strip --strip-debug "$2/$f" || return 1
    done
}

stage_cuda() {
    local deps=$ROOT/.deps/cuda/nvidia/cuda_runtime v
    for v in $CUDART13_VERSIONS; do
        mkdir -p "$1/cuda-$v/lib" &&
            cp "$ROOT/.deps/cuda-$v/nvidia/cu13/lib/libcudart.so.13" "$1/cuda-$v/lib/" || return 1
    done
    cp -r "$deps/include" "$1/cuda/include" &&
        cp "$deps/lib/libcudart.so.12" "$1/cuda/lib/" &&
        ln -sf ../release/libgpushare_cpu.so "$1/stub/libcuda.so.1" &&
        ln -sf libcuda.so.1 "$1/stub/libcuda.so"
}

# compile_programs BUNDLE: tests/c programs (driver API, libcudart), the MLP, the corpus runner.
compile_programs() {
    local b=$1 p inc=$1/cuda/include nvcc=$ROOT/.deps/cuda-nvcc/nvidia/cuda_nvcc/include
    local cc=(gcc -std=gnu11 -O2 -Wall -Werror -I "$inc" -I "$ROOT/tests/c")
    for p in $DRIVER_PROGRAMS; do
        "${cc[@]}" "$ROOT/tests/c/$p.c" -o "$b/progs/$p" -L "$b/stub" -lcuda -lpthread -ldl -lm || return 1
    done
    # shellcheck disable=SC2016 # $ORIGIN is for the dynamic loader
    for p in $CUDART_PROGRAMS; do
        "${cc[@]}" -I "$nvcc" "$ROOT/tests/c/$p.c" -o "$b/progs/$p" -L "$b/cuda/lib" \
            -Wl,-rpath,'$ORIGIN/../cuda/lib' -l:libcudart.so.12 -lpthread -ldl -lm || return 1
    done
    compile_cudart13 "$b" || return 1
    "${cc[@]}" "$HELPERS/corpus.c" -o "$b/progs/corpus" -L "$b/stub" -lcuda -lm || return 1
    gcc -O2 -Wall -Wextra -Werror -I "$inc" "$ROOT/examples/mlp/mlp.c" -o "$b/progs/mlp" \
        -L "$b/stub" -lcuda -lm
}

# compile_cudart13 BUNDLE: the libcudart programs against each CUDA 13 runtime's own headers.
compile_cudart13() {
    local b=$1 v p inc
    for v in $CUDART13_VERSIONS; do
        inc=$ROOT/.deps/cuda-$v/nvidia/cu13/include
        for p in $CUDART_PROGRAMS; do
            # shellcheck disable=SC2016 # $ORIGIN is for the dynamic loader
            gcc -std=gnu11 -O2 -Wall -Werror -I "$inc" -I "$ROOT/tests/c" "$ROOT/tests/c/$p.c" \
                -o "$b/progs/$p@$v" -L "$b/cuda-$v/lib" -Wl,-rpath,"\$ORIGIN/../cuda-$v/lib" \
                -l:libcudart.so.13 -lpthread -ldl -lm || return 1
        done
    done
}

# source_commit: HEAD, marked when the working tree differs from it; "unknown" outside git.
source_commit() {
    local head
    head=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null) || { echo unknown; return; }
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null && echo "$head" || echo "$head (with uncommitted changes)"
}

write_manifest() {
    {
        echo "commit $(source_commit)"
        echo "prepared $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -srm)"
        echo "size $(du -sh "$1" | cut -f1)"
    } >"$1/MANIFEST"
}

print_instructions() {
    local rel=${1#"$ROOT"/} mib
    mib=$(du -sm "$1" | cut -f1)
    cat <<EOF
gpu-check: bundle ready in $1 (${mib} MiB of the 64 MiB carry limit)
$(cat "$1/MANIFEST")

On the GPU machine (the device tool's run):
  carry:     ["$rel"]
  timeout_s: 540
  command:   scripts/gpu-check.sh run --bundle $rel --out "\$OUT"
The report comes back as \$OUT/gpu-report.md, raw logs under \$OUT/logs/.
EOF
    [ "$mib" -lt 60 ] || echo "gpu-check: WARNING: the bundle is ${mib} MiB, near the 64 MiB carry limit" >&2
}

# ============================================================================================
# run (GPU machine): the driver loop
# ============================================================================================

run_all() {
    local out=${OUT:-} device=cuda bundle=$ROOT/gpu-bundle only=""
    while [ $# -gt 0 ]; do
        case $1 in
            --out) out=$2; shift 2 ;;
            --device) device=$2; shift 2 ;;
            --bundle) bundle=$2; shift 2 ;;
            --steps) only=$2; shift 2 ;;
            *) die "run: unknown argument $1" ;;
        esac
    done
    [ -n "$out" ] || die "run: no --out and no \$OUT"
    case $device in cpu | cuda) ;; *) die "run: --device cpu or cuda" ;; esac
    [ -d "$bundle/release" ] || die "run: no bundle at $bundle (scripts/gpu-check.sh prepare)"
    mkdir -p "$out/logs" || die "cannot create $out/logs"
    GC_BUNDLE=$(cd "$bundle" && pwd) GC_OUT=$(cd "$out" && pwd)
    GC_WORK=$(mktemp -d /tmp/gpu-check.XXXXXX) || die "mktemp failed"
    export GC_DEVICE=$device GC_BUNDLE GC_ONLY=$only GC_OUT GC_WORK
    export GC_LOGS=$GC_OUT/logs GC_STATE=$GC_OUT/logs/.state
    trap 'rm -rf "$GC_WORK"' EXIT
    mkdir -p "$GC_STATE" && rm -f "$GC_STATE"/*
    local_setup
    run_steps
    write_report
}

# local_setup: a directory whose libcuda.so.1 is the CPU device (the "direct" runs of --device
# cpu), the benchmark scripts' stand-in target directory, and .deps/cuda's headers if absent.
local_setup() {
    mkdir -p "$GC_WORK/cpulib"
    ln -sf "$GC_BUNDLE/release/libgpushare_cpu.so" "$GC_WORK/cpulib/libcuda.so.1"
    ln -sf libcuda.so.1 "$GC_WORK/cpulib/libcuda.so"
    export GC_BUDGET=${GPU_CHECK_BUDGET:-480} GC_START=$SECONDS
    export GC_QUICK=${GPU_CHECK_QUICK:-$([ "$GC_DEVICE" = cpu ] && echo 1 || echo 0)}
    export GC_REAL_LIBCUDA
    GC_REAL_LIBCUDA=$(find_libcuda)
    provide_deps
    make_bench_target
}

# find_libcuda: the real driver's libcuda.so.1 (ldconfig's cache, else the usual directories).
find_libcuda() {
    local d
    ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 .*x86-64/ { print $NF; found = 1; exit } END { exit !found }' &&
        return 0
    for d in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib64 /usr/lib/wsl/lib; do
        [ -e "$d/libcuda.so.1" ] && { echo "$d/libcuda.so.1"; return 0; }
    done
    return 0
}

# provide_deps: the bench scripts compile their tenant with .deps/cuda's cuda.h and call
# scripts/setup-cuda-deps.sh, which does nothing when its stamps exist: without a network, give
# them the bundle's copy.
provide_deps() {
    local d=$ROOT/.deps
    [ -f "$d/cuda/.installed-12.9" ] && [ -f "$d/cuda-nvcc/.installed-12.9.86" ] && return 0
    mkdir -p "$d/cuda/nvidia/cuda_runtime" "$d/cuda-nvcc/nvidia/cuda_nvcc" || return 0
    [ -e "$d/cuda/nvidia/cuda_runtime/include" ] ||
        ln -s "$GC_BUNDLE/cuda/include" "$d/cuda/nvidia/cuda_runtime/include"
    [ -e "$d/cuda/nvidia/cuda_runtime/lib" ] ||
        ln -s "$GC_BUNDLE/cuda/lib" "$d/cuda/nvidia/cuda_runtime/lib"
    touch "$d/cuda/.installed-12.9" "$d/cuda-nvcc/.installed-12.9.86"
    echo "gpu-check: .deps/cuda provided from the bundle (no network here)" >&2
}

# make_bench_target: GC_WORK/bench/release, the CARGO_TARGET_DIR the bench scripts get. Its
# `gpushare` turns their `--device cpu` into --device $GC_DEVICE; with --device cuda its
# libgpushare_cpu.so is the real libcuda.so.1 (what their tenants link and their direct runs use).
make_bench_target() {
    local t=$GC_WORK/bench/release cpu=$GC_BUNDLE/release/libgpushare_cpu.so
    mkdir -p "$t"
    [ "$GC_DEVICE" = cuda ] && [ -n "$GC_REAL_LIBCUDA" ] && cpu=$GC_REAL_LIBCUDA
    ln -sf "$cpu" "$t/libgpushare_cpu.so"
    ln -sf "$GC_BUNDLE/release/libgpushare_shim.so" "$t/libgpushare_shim.so"
    cat >"$t/gpushare" <<EOF
#!/usr/bin/env bash
# gpu-check: the bench scripts' broker on the device under test.
args=()
prev=
for a in "\$@"; do
    if [ "\$prev" = --device ]; then a=$GC_DEVICE; fi
    args+=("\$a")
    prev=\$a
done
exec "$GC_BUNDLE/release/gpushare" "\${args[@]}"
EOF
    chmod +x "$t/gpushare"
}

run_steps() {
    local entry name limit left
    for entry in "${STEPS[@]}"; do
        read -r name limit _ <<<"$entry"
        if [ -n "$GC_ONLY" ] && [[ " $GC_ONLY " != *" $name "* ]]; then continue; fi
        left=$((GC_BUDGET - (SECONDS - GC_START)))
        if [[ " ${GPU_CHECK_SKIP:-} " == *" $name "* ]]; then
            record "$name" SKIPPED 0 "excluded by GPU_CHECK_SKIP"
        elif [ "$left" -lt 15 ]; then
            record "$name" SKIPPED 0 "out of time (the run's budget is ${GC_BUDGET} s)"
        else
            [ "$limit" -gt "$left" ] && limit=$left
            run_one "$name" "$limit"
        fi
    done
}

# run_one NAME LIMIT: the step in a process of its own (`gpu-check.sh __step NAME`) under
# timeout, which kills its process group (brokers, workers, tenants) when the limit passes.
run_one() {
    local name=$1 limit=$2 t0=$SECONDS rc status reason=""
    echo "gpu-check: $name (limit ${limit} s) ..." >&2
    timeout -k 5 "$limit" bash "$SELF" __step "$name" >"$GC_LOGS/$name.log" 2>&1 </dev/null
    rc=$?
    case $rc in
        0) status=PASSED ;;
        77) status=SKIPPED reason=$(cat "$GC_STATE/$name.skip" 2>/dev/null) ;;
        124 | 137) status=FAILED reason="timed out after ${limit} s" ;;
        *) status=FAILED reason="exit status $rc" ;;
    esac
    record "$name" "$status" $((SECONDS - t0)) "$reason"
    echo "gpu-check: $name $status${reason:+ ($reason)}" >&2
}

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$GC_STATE/results.tsv"; }

# ============================================================================================
# the report
# ============================================================================================

write_report() {
    local report=$GC_OUT/gpu-report.md passed failed skipped
    passed=$(awk -F'\t' '$2 == "PASSED"' "$GC_STATE/results.tsv" | wc -l)
    failed=$(awk -F'\t' '$2 == "FAILED"' "$GC_STATE/results.tsv" | wc -l)
    skipped=$(awk -F'\t' '$2 == "SKIPPED"' "$GC_STATE/results.tsv" | wc -l)
    {
        report_header
        echo "**$passed passed, $failed failed, $skipped skipped** in $((SECONDS - GC_START)) s."
        echo
        report_table
        report_sections
        report_folding
    } >"$report"
    echo "gpu-check: $passed passed, $failed failed, $skipped skipped; report: $report"
    [ "$failed" = 0 ]
}

report_header() {
    echo "# gpushare GPU check"
    echo
    echo "- device under test: \`$GC_DEVICE\`$([ "$GC_DEVICE" = cpu ] && echo ' (the CPU device: a proof of the script, not GPU figures)')"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host $(uname -n) ($(uname -srm))"
    echo "- GPU: $(cat "$GC_STATE/gpu" 2>/dev/null || echo 'none found')"
    sed 's/^/- bundle: /' "$GC_BUNDLE/MANIFEST" 2>/dev/null
    echo
}

report_table() {
    echo "| step | result | seconds | what | note |"
    echo "|---|---|---|---|---|"
    local name status secs reason
    while IFS=$'\t' read -r name status secs reason; do
        echo "| [$name](#$name) | $status | $secs | $(step_title "$name") | ${reason//|//} |"
    done <"$GC_STATE/results.tsv"
    echo
}

step_title() {
    local entry
    for entry in "${STEPS[@]}"; do
        [ "${entry%% *}" = "$1" ] && { echo "$entry" | cut -d' ' -f3-; return; }
    done
}

report_sections() {
    local name status secs reason
    while IFS=$'\t' read -r name status secs reason; do
        printf '<a id="%s"></a>\n## %s: %s\n\n' "$name" "$name" "$status"
        [ -n "$reason" ] && printf '%s\n\n' "$reason"
        [ -s "$GC_STATE/$name.detail" ] && { cat "$GC_STATE/$name.detail"; echo; }
        [ -f "$GC_LOGS/$name.log" ] && printf 'Log: %s' "\`logs/$name.log\`"
        [ -d "$GC_LOGS/$name" ] && printf ', files under %s' "\`logs/$name/\`"
        printf '\n\n'
    done <"$GC_STATE/results.tsv"
}

report_folding() {
    cat <<'EOF'
## Folding this report into the docs

- `docs/compatibility.md`: add a section "On a real GPU (<GPU name>, driver <version>)" with the
  e2e-programs table (which programs give identical output directly and through the shim), the
  isolation and failure steps, the corpus line (exact / within tolerance, and which kernels
  differ and by how much), and the torch and python-clients results (versions from the
  environment step; each failing check with its error).
- `docs/benchmarks.md`: under each benchmark, a "real GPU" column or paragraph with the figures
  of bench-sched, bench-latency, bench-dedup, bench-pipeline, bench-shim and bench-floor above
  (bench-latency in docs/benchmarks-latency.md), naming the GPU, the driver
  and the settings printed in each section (short runs: repeat a figure before quoting it as a
  goal met).
- README.md's status table: "GPU figures pending" becomes the measured state.
- Every FAILED step is an issue to file, with its log from `logs/`.
EOF
}

# ============================================================================================
# inside a step (`gpu-check.sh __step NAME`, under timeout)
# ============================================================================================

# Step outcome helpers: note appends Markdown to the step's section; skip ends it SKIPPED.
note() { printf '%s\n' "$*" >>"$GC_STATE/$STEP.detail"; }
skip() { echo "$*" >"$GC_STATE/$STEP.skip"; echo "SKIPPED: $*"; exit 77; }
fail() { FAILED=1; note "- FAILED: $*"; echo "FAILED: $*"; }
# fenced FILE: the file's content as a code block in the report.
fenced() { note '```'; note "$(cat "$1" 2>/dev/null)"; note '```'; }

step_main() {
    STEP=$1 FAILED=0
    W=$GC_LOGS/$STEP REL=$GC_BUNDLE/release PROGS=$GC_BUNDLE/progs KERNELS=$ROOT/examples/kernels
    S=$GC_WORK/$STEP # sockets: short paths (a socket path has at most 107 bytes)
    mkdir -p "$W" "$S"
    BROKERS=()
    trap step_cleanup EXIT
    trap 'exit 143' TERM INT
    unset GPUSHARE_CPU_PROFILE GPUSHARE_CPU_MEMORY GPUSHARE_CPU_PACING GPUSHARE_CPU_THREADS \
        GPUSHARE_LOG LD_PRELOAD GPUSHARE_SOCKET GPUSHARE_TENANT_NAME
    export GPUSHARE_KERNELS_DIR=$KERNELS TMPDIR=$S PYTHONDONTWRITEBYTECODE=1
    export GPUSHARE_CPU_LIB=$REL/libgpushare_cpu.so GPUSHARE_SHIM_LIB=$REL/libgpushare_shim.so
    [ "$STEP" = env ] || [ "$GC_DEVICE" = cpu ] || have_gpu || skip "no NVIDIA GPU (nvidia-smi -L fails)"
    "step_${STEP//-/_}"
    exit "$FAILED"
}

step_cleanup() {
    local p
    for p in "${BROKERS[@]}"; do kill -9 "$p" 2>/dev/null; done
    # The group's other members (tenants, workers) go with the step's process group.
    jobs -p | xargs -r kill -9 2>/dev/null
    wait 2>/dev/null
}

have_gpu() { nvidia-smi -L >/dev/null 2>&1; }

# direct CMD...: CMD on the device under test without gpushare.
direct() {
    if [ "$GC_DEVICE" = cpu ]; then
        LD_LIBRARY_PATH=$GC_WORK/cpulib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$@"
    else
        "$@"
    fi
}

# start_broker NAME [POLICY_TEXT]: a broker on the device under test; sets SOCK.
start_broker() {
    SOCK=$S/$1.sock
    local policy=()
    if [ -n "${2:-}" ]; then
        printf '%b\n' "$2" >"$W/$1.policy.toml"
        policy=(--policy "$W/$1.policy.toml")
    fi
    GPUSHARE_LOG=info "$REL/gpushare" broker --device "$GC_DEVICE" --socket "$SOCK" "${policy[@]}" \
        2>"$W/$1.broker.log" &
    BROKER=$!
    BROKERS+=("$BROKER")
    local _
    for _ in $(seq 400); do
        [ -S "$SOCK" ] && return 0
        kill -0 "$BROKER" 2>/dev/null || break
        sleep 0.05
    done
    fail "the broker $1 did not start (logs/$STEP/$1.broker.log)"
    return 1
}

# shim NAME CMD...: CMD as tenant NAME of the broker at $SOCK.
shim() {
    local name=$1
    shift
    "$REL/gpushare" run --socket "$SOCK" --name "$name" -- "$@"
}

# shim_exec NAME CMD...: as shim, replacing the calling (background) shell, so that `$!` of
# `shim_exec ... &` is the tenant itself (`gpushare run` execs CMD).
shim_exec() {
    local name=$1
    shift
    exec "$REL/gpushare" run --socket "$SOCK" --name "$name" -- "$@"
}

# wait_for FILE PATTERN SECONDS: until a line of FILE matches PATTERN (grep -E).
wait_for() {
    local _
    for _ in $(seq $(($3 * 20))); do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

status_of() { "$REL/gpushare" status --socket "$SOCK" 2>&1; }

# ---- steps -----------------------------------------------------------------------------------
# shellcheck source=scripts/gpu-check/steps.sh
source "$HELPERS/steps.sh"

# ============================================================================================

case ${1:-} in
    prepare) shift; prepare "$@" ;;
    run) shift; run_all "$@" ;;
    __step) step_main "$2" ;;
    *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF"; exit 2 ;;
esac
