//! Real Python CUDA clients, unmodified, directly on the CPU device and through shim + broker:
//! numba-cuda, cuda-core (NVRTC + the driver linker), CuPy and PyCUDA (`tests/python/*.py`, each
//! checking its results against numpy and exiting non-zero on a mismatch) must succeed both ways
//! and print the same lines; numba-cuda's own test modules (`tests/python/numba-modules.txt`) run both ways
//! as a report whose total pass count must not drop below `tests/python/numba-floor.txt`.
//!
//! The same numba-cuda, cuda-core and CuPy programs also run on CUDA 13 libraries (the `cu13_*`
//! tests: cuda-bindings 13.x, cupy-cuda13x, the CUDA 13.0 NVRTC and NVVM), both ways, identical;
//! `tests/python/versions.py` prints the driver and runtime versions each venv's clients see.
//!
//! The venvs `.deps/py` (CUDA 12.9) and `.deps/py13` (CUDA 13) come from
//! `scripts/setup-python-deps.sh` (pinned wheels from PyPI, `tests/python/requirements.txt` and
//! `requirements-cu13.txt`), run once per test process. Prerequisite: `cargo build --release
//! --workspace --bins --lib` (the CPU device, the shim and `gpushare`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use gpushare_tests::broker::{first_difference, tail, Broker};
use gpushare_tests::{repo_root, run_program, run_setup_script, shared, work_dir, RunOutput};

/// Bound on one example program run (each takes a few seconds).
const PROGRAM: Duration = Duration::from_secs(300);
/// Bound on one run of numba-cuda's test modules (about 35 s on an idle 2-core machine).
const SUITE: Duration = Duration::from_secs(900);

/// Which venv's python runs a program.
#[derive(Clone, Copy, Debug)]
enum Venv {
    /// `.deps/py`: CUDA 12.9 libraries (`tests/python/requirements.txt`).
    Cu12,
    /// `.deps/py13`: CUDA 13 libraries (`tests/python/requirements-cu13.txt`).
    Cu13,
}

impl Venv {
    /// The venv's python, after `scripts/setup-python-deps.sh` (once per process; it builds both
    /// venvs and prints their pythons, `.deps/py`'s then `.deps/py13`'s).
    fn python(self) -> &'static Path {
        static PYS: OnceLock<[PathBuf; 2]> = OnceLock::new();
        let pys = PYS.get_or_init(|| {
            let script = "scripts/setup-python-deps.sh";
            let out = run_setup_script("setup-python-deps.sh");
            let lines: Vec<&str> = out
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let [cu12, cu13] = lines[..] else {
                panic!(
                    "{script} printed {} lines, not two pythons:\n{out}",
                    lines.len()
                );
            };
            let pys = [PathBuf::from(cu12), PathBuf::from(cu13)];
            for py in &pys {
                assert!(py.is_file(), "{script} printed no python: {py:?}");
            }
            pys
        });
        match self {
            Venv::Cu12 => &pys[0],
            Venv::Cu13 => &pys[1],
        }
    }

    /// CuPy's kernel cache directory name (one per venv: different NVRTC, different kernels).
    fn cupy_cache(self) -> &'static str {
        match self {
            Venv::Cu12 => "cupy-cache",
            Venv::Cu13 => "cupy-cache-cu13",
        }
    }
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
fn env(venv: Venv) -> Vec<(&'static str, String)> {
    vec![
        ("CUPY_COMPILE_WITH_PTX", "1".into()),
        (
            "CUPY_CACHE_DIR",
            work_dir()
                .join(venv.cupy_cache())
                .to_string_lossy()
                .into_owned(),
        ),
        ("PYTHONDONTWRITEBYTECODE", "1".into()),
    ]
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Runs `tests/python/<name>` with `venv`'s python directly on the CPU device and through a
/// broker; returns both.
fn both_ways(venv: Venv, name: &str, args: &[&str], timeout: Duration) -> (RunOutput, RunOutput) {
    let py = venv.python();
    let env = env(venv);
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

/// An example program run with `venv`'s python: succeeds both ways with identical standard
/// output, which is returned.
fn identical(venv: Venv, name: &str) -> String {
    let _g = shared();
    let (direct, shim) = both_ways(venv, name, &[], PROGRAM);
    assert!(
        direct.success(),
        "{name} ({venv:?}) failed directly\n{direct}"
    );
    assert!(
        shim.success(),
        "{name} ({venv:?}) failed through the shim\n{shim}"
    );
    assert_eq!(
        direct.stdout,
        shim.stdout,
        "{name} ({venv:?}): outputs differ; first difference: {}",
        first_difference(&direct.stdout, &shim.stdout)
    );
    direct.stdout
}

#[test]
fn numba_kernels_devices_functions_shared_memory_atomics_streams_events() {
    identical(Venv::Cu12, "numba_kernels.py");
}

#[test]
fn cuda_core_nvrtc_linker_launch() {
    identical(Venv::Cu12, "cuda_core_linker.py");
}

#[test]
fn cupy_ufuncs_cub_reductions_scans_sort_raw_kernels() {
    identical(Venv::Cu12, "cupy_ops.py");
}

#[test]
fn pycuda_nvrtc_ptx_legacy_launches_streams_events() {
    identical(Venv::Cu12, "pycuda_ptx.py");
}

#[test]
fn cu13_numba_kernels_devices_functions_shared_memory_atomics_streams_events() {
    identical(Venv::Cu13, "numba_kernels.py");
}

#[test]
fn cu13_cuda_core_nvrtc_linker_launch() {
    identical(Venv::Cu13, "cuda_core_linker.py");
}

#[test]
fn cu13_cupy_ufuncs_cub_reductions_scans_sort_raw_kernels() {
    identical(Venv::Cu13, "cupy_ops.py");
}

/// `tests/python/versions.py`'s `<what>: <value>` line.
fn version_line<'a>(out: &'a str, what: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(what)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {what:?} line in versions.py's output\n{out}"))
}

/// The versions each venv's clients see, the same both ways: the CPU device's driver version
/// (13000, CUDA 13.0) through cuda-bindings, CuPy and numba; the CUDA major of each venv's
/// cuda-bindings, NVRTC and CuPy build.
#[test]
fn versions_seen_by_the_cuda_12_and_13_clients() {
    for (venv, major) in [(Venv::Cu12, "12"), (Venv::Cu13, "13")] {
        let out = identical(venv, "versions.py");
        for what in [
            "cuda.bindings cuDriverGetVersion",
            "cupy driverGetVersion",
            "numba driver.get_version",
        ] {
            assert_eq!(version_line(&out, what), "13000", "{venv:?}: {what}\n{out}");
        }
        for what in [
            "cuda.bindings",
            "nvrtcVersion",
            "cupy runtimeGetVersion",
            "numba runtime.get_version",
        ] {
            let v = version_line(&out, what);
            assert!(
                v.starts_with(major),
                "{venv:?}: {what} is {v}, not CUDA {major}.x\n{out}"
            );
        }
    }
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
    let (direct, shim) = both_ways(Venv::Cu12, "numba_suite.py", &[], SUITE);
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
