//! Black-box conformance: one test per C program in `tests/c/` (see the comment at the top of
//! each program for the CUDA semantics it assumes). Each program links `-lcuda` against the CPU
//! device library and must exit 0.
//!
//! Prerequisite: `cargo build --release -p gpushare-cpu` (or `GPUSHARE_CPU_LIB=/path/libcuda.so.1`).

use std::time::Duration;

use gpushare_tests::{exclusive, run_c_test, shared, H200_MEMORY};

const SMALL_PACED: &[(&str, &str)] = &[
    ("GPUSHARE_CPU_PROFILE", "small"),
    ("GPUSHARE_CPU_PACING", "1"),
];

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn init_version() {
    let _g = shared();
    run_c_test("init_version", &[], &[], secs(60));
}

#[test]
fn device_h200_default_profile() {
    let _g = shared();
    run_c_test("device", &["h200"], &[H200_MEMORY], secs(60));
}

#[test]
fn device_h200_explicit_profile() {
    let _g = shared();
    run_c_test(
        "device",
        &["h200"],
        &[("GPUSHARE_CPU_PROFILE", "h200"), H200_MEMORY],
        secs(60),
    );
}

#[test]
fn device_small_profile() {
    let _g = shared();
    run_c_test(
        "device",
        &["small"],
        &[("GPUSHARE_CPU_PROFILE", "small")],
        secs(60),
    );
}

#[test]
fn device_unknown_profile() {
    let _g = shared();
    run_c_test(
        "device",
        &["badprofile"],
        &[("GPUSHARE_CPU_PROFILE", "no-such-profile")],
        secs(60),
    );
}

#[test]
fn context() {
    let _g = shared();
    run_c_test("context", &[], &[], secs(60));
}

#[test]
fn memory() {
    let _g = shared();
    run_c_test("memory", &[], &[], secs(120));
}

#[test]
fn memory_small_profile() {
    let _g = shared();
    run_c_test(
        "memory",
        &[],
        &[("GPUSHARE_CPU_PROFILE", "small")],
        secs(120),
    );
}

#[test]
fn host_memory() {
    let _g = shared();
    run_c_test("host_memory", &[], &[], secs(120));
}

/// Graphs built node by node and by stream capture, their queries, updates and error rules.
#[test]
fn graph() {
    let _g = shared();
    run_c_test("graph", &[], &[], secs(120));
}

#[test]
fn managed() {
    let _g = shared();
    run_c_test("managed", &[], &[], secs(120));
}

#[test]
fn copy_order() {
    let _g = shared();
    let paced = [
        ("GPUSHARE_CPU_PROFILE", "small"),
        ("GPUSHARE_CPU_PACING", "1"),
    ];
    run_c_test("copy_order", &[], &paced, secs(120));
}

#[test]
fn vmm() {
    let _g = shared();
    run_c_test("vmm", &[], &[], secs(120));
}

#[test]
fn vmm_two_process() {
    let _g = shared();
    run_c_test("vmm_two_process", &[], &[], secs(120));
}

#[test]
fn module() {
    let _g = shared();
    run_c_test("module", &[], &[], secs(120));
}

#[test]
fn launch_one_thread() {
    let _g = shared();
    run_c_test("launch", &[], &[("GPUSHARE_CPU_THREADS", "1")], secs(300));
}

#[test]
fn launch_four_threads() {
    let _g = shared();
    run_c_test("launch", &[], &[("GPUSHARE_CPU_THREADS", "4")], secs(300));
}

#[test]
fn legacy_launch() {
    let _g = shared();
    run_c_test("legacy_launch", &[], &[], secs(120));
}

#[test]
fn linker() {
    let _g = shared();
    run_c_test("linker", &[], &[], secs(120));
}

#[test]
fn occupancy() {
    let _g = shared();
    run_c_test("occupancy", &[], &[], secs(60));
}

#[test]
fn stream_event() {
    let _g = exclusive();
    run_c_test("stream_event", &[], SMALL_PACED, secs(120));
}

#[test]
fn timing() {
    let _g = exclusive();
    run_c_test("timing", &[], SMALL_PACED, secs(120));
}

#[test]
fn procaddress() {
    let _g = shared();
    run_c_test("procaddress", &[], &[], secs(60));
}
