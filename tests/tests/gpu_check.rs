//! `scripts/gpu-check.sh`, the one-shot check for a real GPU (docs/gpu-check.md), proved on the
//! CPU device: `prepare --from` bundles the release binaries already built (the same directory
//! as the `gpushare` this suite finds), then `run --device cpu` runs every step against the CPU
//! device with short benchmark settings. The report must list every step of the script, and
//! every step must have passed or been skipped with a reason; the steps that need neither a GPU
//! nor PyTorch nor the Python venv must have passed.
//!
//! Prerequisite: `cargo build --release --workspace --bins --lib` (the broker, the shim, the CPU
//! device and the cudarc MLP), as `scripts/test.sh` does. Takes under a minute on two idle
//! cores.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use gpushare_tests::broker::{gpushare_bin, run_command};
use gpushare_tests::{cuda_include_dir, exclusive, repo_root, work_dir, RunOutput};

/// Bound on `prepare` (copies, strips, compiles about 25 C programs).
const PREPARE: Duration = Duration::from_secs(180);
/// Bound on `run --device cpu` (about 40 s on two idle cores).
const RUN: Duration = Duration::from_secs(400);

/// Steps that need a GPU-less machine nothing beyond this repository's build: they must pass.
const MUST_PASS: &[&str] = &[
    "env",
    "broker",
    "e2e-programs",
    "four-tenants",
    "isolation-groups",
    "isolation-handles",
    "sigkill-tenant",
    "broker-death",
    "corpus",
    "bench-sched",
    "bench-latency",
    "bench-dedup",
    "bench-pipeline",
    "bench-shim",
    "bench-floor",
];

fn script(args: &[&str], timeout: Duration) -> RunOutput {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/gpu-check.sh"))
        .args(args)
        .current_dir(repo_root())
        .env_remove("OUT")
        .env_remove("GPU_CHECK_SKIP")
        .env_remove("GPU_CHECK_BUDGET");
    run_command(cmd, timeout)
}

/// The step names of the script's `STEPS` table.
fn declared_steps() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("scripts/gpu-check.sh"))
        .expect("read scripts/gpu-check.sh");
    let table = text
        .split_once("STEPS=(\n")
        .and_then(|(_, rest)| rest.split_once("\n)"))
        .expect("a STEPS=( ... ) table in scripts/gpu-check.sh")
        .0;
    table
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `(step, result, note)` of each row of the report's summary table.
fn summary(report: &str) -> Vec<(String, String, String)> {
    report
        .lines()
        .filter(|l| l.starts_with("| ["))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let name = cells[0].trim_start_matches('[').split(']').next().unwrap();
            (name.to_string(), cells[1].to_string(), cells[4].to_string())
        })
        .collect()
}

#[test]
fn gpu_check_runs_every_step_on_the_cpu_device() {
    let _g = exclusive(); // broker-death measures how fast a tenant notices
    let _ = cuda_include_dir(); // .deps/cuda (scripts/setup-cuda-deps.sh)
    let release = gpushare_bin().parent().expect("gpushare's directory");
    let bundle = work_dir().join("gpu-bundle");
    let out = work_dir().join("gpu-check-out");
    let path = |p: &Path| p.to_str().expect("UTF-8 path").to_string();
    let prep = script(
        &[
            "prepare",
            "--from",
            &path(release),
            "--bundle",
            &path(&bundle),
        ],
        PREPARE,
    );
    assert!(prep.success(), "gpu-check.sh prepare failed\n{prep}");
    assert!(prep.stdout.contains("carry:"), "{prep}");

    let run = script(
        &[
            "run",
            "--device",
            "cpu",
            "--bundle",
            &path(&bundle),
            "--out",
            &path(&out),
        ],
        RUN,
    );
    println!("{run}");
    let report = std::fs::read_to_string(out.join("gpu-report.md"))
        .unwrap_or_else(|e| panic!("no report ({e})\n{run}"));
    let rows = summary(&report);
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        declared_steps(),
        "the report lists every step\n{report}"
    );
    for (name, result, note) in &rows {
        match result.as_str() {
            "PASSED" => {}
            "SKIPPED" if !MUST_PASS.contains(&name.as_str()) => {
                assert!(!note.is_empty(), "{name} was skipped without a reason")
            }
            _ => panic!("step {name}: {result} {note}\n{report}\n{run}"),
        }
    }
    assert!(
        run.success(),
        "every step passed, yet the exit status is not 0\n{run}"
    );
    assert!(out.join("logs/e2e-programs.log").is_file());
}
