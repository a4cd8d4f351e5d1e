//! The examples run unmodified on the CPU device and give the CPU reference's answers.
//! (Through shim + broker they must print the same lines; that comparison joins when the shim exists.)

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use gpushare_tests::{
    cuda_include_dir, kernels_dir, lib_dir, repo_root, run_program, shared, work_dir,
};

/// Compiles examples/mlp/mlp.c against NVIDIA's cuda.h and the CPU device's libcuda.
fn build_mlp() -> PathBuf {
    let exe = work_dir().join("bin").join("example-mlp");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let out = Command::new("gcc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(cuda_include_dir())
        .arg(repo_root().join("examples/mlp/mlp.c"))
        .arg("-L")
        .arg(lib_dir())
        .args(["-lcuda", "-lm", "-o"])
        .arg(&exe)
        .output()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "gcc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

#[test]
fn mlp_matches_the_cpu_reference_and_is_deterministic() {
    let _guard = shared();
    let exe = build_mlp();
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
