//! The examples run unmodified on the CPU device and give the CPU reference's answers.
//! (Through shim + broker they print the same lines: `tests/tests/shim.rs`.)
//!
//! The cudarc MLP (`examples/cudarc-mlp`, binary `gpushare-example-cudarc-mlp`) is not built
//! here: build it (and the CPU device) first, e.g.
//!
//!     cargo build --release -p gpushare-cpu -p gpushare-example-cudarc-mlp

use std::path::{Path, PathBuf};
use std::time::Duration;

use gpushare_tests::{compile_mlp, find_build_output, kernels_dir, run_program, shared, work_dir};

/// The MLP's forward pass captured once into a CUDA graph (`--graph 1`) and replayed for 100
/// batches prints exactly what 100 eager batches print.
#[test]
fn mlp_captured_as_a_graph_and_replayed_100_times_matches_eager() {
    let _guard = shared();
    let exe = compile_mlp().to_path_buf();
    let kernels = kernels_dir();
    let kernels = kernels.to_str().unwrap();
    let run = |graph: &str| {
        let args = [kernels, "--name", "g", "--batches", "100", "--graph", graph];
        let out = run_program(&exe, &args, &[], Duration::from_secs(300));
        assert!(out.success(), "{out}");
        out.stdout
    };
    let (eager, replayed) = (run("0"), run("1"));
    assert_eq!(eager.lines().count(), 100, "{eager}");
    assert!(
        eager.lines().all(|l| l.ends_with("matches CPU reference")),
        "{eager}"
    );
    assert_eq!(eager, replayed, "graph replay differs from eager execution");
}

#[test]
fn mlp_matches_the_cpu_reference_and_is_deterministic() {
    let _guard = shared();
    let exe = compile_mlp().to_path_buf();
    let kernels = kernels_dir();
    let kernels = kernels.to_str().unwrap();
    let one = run_program(
        &exe,
        &[kernels, "--name", "t", "--batches", "3"],
        &[("GPUSHARE_CPU_THREADS", "1")],
        Duration::from_secs(120),
    );
    assert!(one.success(), "{one}");
    let lines: Vec<&str> = one.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{one}");
    assert!(
        lines.iter().all(|l| l.ends_with("matches CPU reference")),
        "{one}"
    );
    // Several host threads for the blocks: same answers, bit for bit.
    let four = run_program(
        &exe,
        &[kernels, "--name", "t", "--batches", "3"],
        &[("GPUSHARE_CPU_THREADS", "4")],
        Duration::from_secs(120),
    );
    assert!(four.success(), "{four}");
    assert_eq!(one.stdout, four.stdout);
}

const CUDARC_MLP: &str = "gpushare-example-cudarc-mlp";

/// The cudarc MLP from the target directory (built by cargo, not by this test).
fn cudarc_mlp() -> PathBuf {
    match find_build_output(CUDARC_MLP) {
        Ok(p) => p,
        Err(searched) => panic!(
            "{CUDARC_MLP} not found. Build it first:\n\n    cargo build --release -p {CUDARC_MLP}\n\nSearched:\n{}",
            searched
                .iter()
                .map(|p| format!("  {}", p.display()))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

#[test]
fn cudarc_mlp_prints_exactly_what_mlp_c_prints() {
    let _guard = shared();
    let c = compile_mlp().to_path_buf();
    let rust = cudarc_mlp();
    let kernels = kernels_dir();
    let kernels = kernels.to_str().unwrap();
    let run = |exe: &Path, args: &[&str]| {
        let out = run_program(
            exe,
            args,
            &[("GPUSHARE_CPU_THREADS", "2")],
            Duration::from_secs(120),
        );
        assert!(out.success(), "{out}");
        out
    };
    for args in [
        &[kernels, "--name", "cudarc", "--batches", "3"][..],
        // mlp.c's defaults (name "mlp", 4 batches) and its argument quirks: unknown flags are
        // skipped, the last occurrence wins, --batches goes through atoi.
        &[kernels][..],
        &[
            kernels,
            "--x",
            "y",
            "--batches",
            "9",
            "--batches",
            "2abc",
            "--name",
            "q",
        ][..],
    ] {
        let want = run(&c, args);
        let got = run(&rust, args);
        assert_eq!(
            got.stdout, want.stdout,
            "cudarc MLP and mlp.c disagree\n== mlp.c\n{want}\n== cudarc\n{got}"
        );
        assert!(!got.stdout.is_empty(), "{got}");
        assert!(
            got.stdout
                .lines()
                .all(|l| l.ends_with("matches CPU reference")),
            "{got}"
        );
    }
}

#[test]
fn cudarc_mlp_reports_bad_arguments_without_panicking() {
    let _guard = shared();
    let rust = cudarc_mlp();
    let missing = work_dir().join("no-such-kernels-dir");
    let out = run_program(
        &rust,
        &[missing.to_str().unwrap(), "--batches", "1"],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert!(out.stderr.contains("sgemm_tiled.ptx"), "{out}");
    assert!(!out.stderr.contains("panicked"), "{out}");
    // No arguments: usage, exit status 2 (as mlp.c).
    let out = run_program(&rust, &[], &[], Duration::from_secs(60));
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("usage:"), "{out}");
}
