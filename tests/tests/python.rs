//! Real Python CUDA clients, unmodified, directly on the CPU device and through shim + broker:
//! numba-cuda, cuda-core (NVRTC + the driver linker), CuPy and PyCUDA (`tests/python/*.py`, each
//! checking its results against numpy and exiting non-zero on a mismatch) must succeed both ways
//! and print the same lines; numba-cuda's own test modules (`tests/python/numba-modules.txt`) run both ways
//! as a report whose total pass count must not drop below `tests/python/numba-floor.txt`.
//!
//! The venv `.deps/py` comes from `scripts/setup-python-deps.sh` (pinned wheels from PyPI,
//! `tests/python/requirements.txt`), run once per test process. Prerequisite: `cargo build
//! --release --workspace --bins --lib` (the CPU device, the shim and `gpushare`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use gpushare_tests::broker::{first_difference, tail, Broker};
use gpushare_tests::{repo_root, run_program, run_setup_script, shared, work_dir, RunOutput};

/// Bound on one example program run (each takes a few seconds).
const PROGRAM: Duration = Duration::from_secs(300);
/// Bound on one run of numba-cuda's test modules (about 35 s on an idle 2-core machine).
const SUITE: Duration = Duration::from_secs(900);

/// The venv's python, after `scripts/setup-python-deps.sh` (once per process).
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let script = "scripts/setup-python-deps.sh";
        let out = run_setup_script("setup-python-deps.sh");
        let py = PathBuf::from(out.trim());
        assert!(py.is_file(), "{script} printed no python: {py:?}");
        py
    })
}

fn script(name: &str) -> String {
    repo_root()
        .join("tests/python")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Environment of both runs: CuPy compiles to PTX (the CPU device runs PTX, not SASS) and keeps
/// its kernel cache in the test's work directory.
fn env() -> Vec<(&'static str, String)> {
    vec![
        ("CUPY_COMPILE_WITH_PTX", "1".into()),
        (
            "CUPY_CACHE_DIR",
            work_dir().join("cupy-cache").to_string_lossy().into_owned(),
        ),
        ("PYTHONDONTWRITEBYTECODE", "1".into()),
    ]
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Runs `tests/python/<name>` directly on the CPU device and through a broker; returns both.
fn both_ways(name: &str, args: &[&str], timeout: Duration) -> (RunOutput, RunOutput) {
    let py = python();
    let env = env();
    let env = env_refs(&env);
    let mut argv = vec![script(name)];
    argv.extend(args.iter().map(|a| a.to_string()));
    let argv_refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let direct = run_program(py, &argv_refs, &env, timeout);
    println!("--- direct ---\n{direct}");
    let broker = Broker::start(&[]);
    let shim = broker.run_tenant(name, py, &argv, &env, timeout);
    println!("--- through the shim ---\n{shim}");
    (direct, shim)
}

/// An example program: succeeds both ways with identical standard output.
fn identical(name: &str) {
    let _g = shared();
    let (direct, shim) = both_ways(name, &[], PROGRAM);
    assert!(direct.success(), "{name} failed directly\n{direct}");
    assert!(shim.success(), "{name} failed through the shim\n{shim}");
    assert_eq!(
        direct.stdout,
        shim.stdout,
        "{name}: outputs differ; first difference: {}",
        first_difference(&direct.stdout, &shim.stdout)
    );
}

#[test]
fn numba_kernels_devices_functions_shared_memory_atomics_streams_events() {
    identical("numba_kernels.py");
}

#[test]
fn cuda_core_nvrtc_linker_launch() {
    identical("cuda_core_linker.py");
}

#[test]
fn cupy_ufuncs_cub_reductions_scans_sort_raw_kernels() {
    identical("cupy_ops.py");
}

#[test]
fn pycuda_nvrtc_ptx_legacy_launches_streams_events() {
    identical("pycuda_ptx.py");
}

/// `total passed P ...` of a numba_suite.py run.
fn total_passed(out: &RunOutput) -> u64 {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("total passed "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no total line in the numba suite's output\n{out}"))
}

#[test]
fn numba_cuda_test_modules_pass_count_floor() {
    let _g = shared();
    let floor: u64 = std::fs::read_to_string(repo_root().join("tests/python/numba-floor.txt"))
        .expect("read tests/python/numba-floor.txt")
        .trim()
        .parse()
        .expect("numba-floor.txt holds one number");
    let (direct, shim) = both_ways("numba_suite.py", &[], SUITE);
    for (how, out) in [("directly", &direct), ("through the shim", &shim)] {
        assert!(
            out.success(),
            "numba-cuda's test modules could not run {how}\n{out}"
        );
        let passed = total_passed(out);
        assert!(
            passed >= floor,
            "numba-cuda's test modules {how}: {passed} passed, below the floor {floor} \
             (tests/python/numba-floor.txt)\n{}",
            tail(&out.stdout, 40)
        );
    }
}
