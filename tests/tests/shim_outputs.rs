//! End-to-end test (a) of the remoting core: every program of the table — the MLP example, the
//! driver-API programs of `tests/c` and the libcudart programs — run directly on the CPU device
//! and through the shim against a `gpushare broker --device cpu` must print the same lines.
//! The libcudart entries run against libcudart 12.9 in the main table test, and against 13.0 and
//! the newest 13.x in tests of their own (`gpushare_tests::Cudart`).
//! The other end-to-end tests are in `tests/tests/shim.rs`.
//!
//! Prerequisites: `cargo build --release -p gpushare-cpu -p gpushare-broker -p gpushare-shim`
//! (fixtures: `gpushare_tests::broker`). Each entry starts its own broker on a private socket.
//!
//! Debugging aids (environment of `cargo test`):
//! * `GPUSHARE_E2E_PROGRAMS=launch,memory` limits the table to those entries;
//!   `GPUSHARE_E2E_INCLUDE_SKIPPED=1` also runs the entries skipped below (to see how they fail).
//! * `GPUSHARE_E2E_TENANT_LOG=debug` gives tenants `GPUSHARE_LOG=debug` (their standard error is
//!   then no longer checked for silence); `GPUSHARE_E2E_BROKER_LOG=debug` sets the brokers' level.
//! * A failing entry is re-run once with `GPUSHARE_LOG=debug` for tenant and broker, and the
//!   failure message carries both logs' tails.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use gpushare_tests::broker::{compile_mlp, first_difference, stderr_must_be_silent, tail, Broker};
use gpushare_tests::{
    compile_c, compile_cudart_c_for, exclusive, kernels_dir, run_program, shared, Cudart,
    H200_MEMORY,
};

/// Bound on one program run (direct or through the shim); each takes well under 5 s.
const RUN: Duration = Duration::from_secs(60);
/// Bound on the diagnostic re-run of a failed entry.
const DEBUG_RUN: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The program table (test a)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `tests/c/<source>.c`, driver API (`-lcuda`).
    Driver,
    /// `tests/c/<source>.c`, CUDA runtime (NVIDIA's libcudart, which loads `libcuda.so.1`).
    Cudart,
    /// `examples/mlp/mlp.c`; its first argument is the kernel directory.
    Mlp,
}

/// One program of the identical-output table.
#[derive(Clone, Copy, Debug)]
struct Program {
    /// Unique label (failures name it; `GPUSHARE_E2E_PROGRAMS` selects by it).
    name: &'static str,
    kind: Kind,
    source: &'static str,
    args: &'static [&'static str],
    /// Device environment: given to the direct run, and to both broker and tenant for the run
    /// through the shim (the device lives in the broker; some programs check the variables
    /// themselves).
    env: &'static [(&'static str, &'static str)],
    /// Lines containing one of these have their numbers masked before comparing (timings, free
    /// memory: legitimately different between runs).
    mask: &'static [&'static str],
    /// Lines starting with one of these are left out of the comparison (text that legitimately
    /// differs: the JIT log comes from the broker's device, not the tenant's).
    drop: &'static [&'static str],
    /// Timing-sensitive: run alone.
    exclusive: bool,
    /// Why the entry does not apply through a broker.
    skip: Option<&'static str>,
}

const fn prog(name: &'static str, kind: Kind, source: &'static str) -> Program {
    Program {
        name,
        kind,
        source,
        args: &[],
        env: &[],
        mask: &[],
        drop: &[],
        exclusive: false,
        skip: None,
    }
}

impl Program {
    const fn args(self, args: &'static [&'static str]) -> Self {
        Program { args, ..self }
    }
    const fn env(self, env: &'static [(&'static str, &'static str)]) -> Self {
        Program { env, ..self }
    }
    const fn mask(self, mask: &'static [&'static str]) -> Self {
        Program { mask, ..self }
    }
    const fn drop_lines(self, drop: &'static [&'static str]) -> Self {
        Program { drop, ..self }
    }
    const fn exclusive(self) -> Self {
        Program {
            exclusive: true,
            ..self
        }
    }
    const fn skip(self, why: &'static str) -> Self {
        Program {
            skip: Some(why),
            ..self
        }
    }
}

const SMALL: &[(&str, &str)] = &[("GPUSHARE_CPU_PROFILE", "small")];
/// The h200 profile's own memory size, which the h200 device checks want.
const H200: &[(&str, &str)] = &[H200_MEMORY];
const SMALL_PACED: &[(&str, &str)] = &[
    ("GPUSHARE_CPU_PROFILE", "small"),
    ("GPUSHARE_CPU_PACING", "1"),
];

/// Every program of `tests/c` (driver API and libcudart) and the MLP example.
const PROGRAMS: &[Program] = &[
    prog("mlp", Kind::Mlp, "mlp").args(&["--name", "e2e", "--batches", "3"]),
    prog("mlp_graph", Kind::Mlp, "mlp").args(&[
        "--name",
        "e2e",
        "--batches",
        "100",
        "--graph",
        "1",
    ]),
    prog("init_version", Kind::Driver, "init_version"),
    prog("device_h200", Kind::Driver, "device")
        .args(&["h200"])
        .env(H200),
    prog("device_small", Kind::Driver, "device")
        .args(&["small"])
        .env(SMALL),
    prog("device_badprofile", Kind::Driver, "device")
        .args(&["badprofile"])
        .env(&[("GPUSHARE_CPU_PROFILE", "no-such-profile")])
        .skip(
            "an unknown GPUSHARE_CPU_PROFILE is the CPU device's own start-up error: a broker \
             given one does not start, so there is nothing to run a tenant against",
        ),
    prog("context", Kind::Driver, "context"),
    prog("memory", Kind::Driver, "memory").mask(&["cuMemGetInfo"]),
    prog("memory_small", Kind::Driver, "memory")
        .env(SMALL)
        .mask(&["cuMemGetInfo"]),
    prog("host_memory", Kind::Driver, "host_memory"),
    prog("managed", Kind::Driver, "managed"),
    prog("graph", Kind::Driver, "graph"),
    prog("copy_order", Kind::Driver, "copy_order").env(SMALL_PACED),
    prog("stream_batches", Kind::Driver, "stream_batches").env(SMALL_PACED),
    prog("streamed_copy", Kind::Driver, "streamed_copy"),
    prog("vmm", Kind::Driver, "vmm").skip(
        "exports physical memory with cuMemExportToShareableHandle(POSIX fd) — no protocol \
         request exists for it — and ends with a faulting kernel whose sticky error is, through \
         a broker, the shared context's (docs/architecture.md)",
    ),
    prog("vmm_two_process", Kind::Driver, "vmm_two_process").skip(
        "shares CPU-device memory between two processes through an exported POSIX fd: a CPU \
         device internal, not something a tenant of a broker can do",
    ),
    prog("module", Kind::Driver, "module").drop_lines(&["   (error log:"]),
    prog("launch", Kind::Driver, "launch"),
    prog("legacy_launch", Kind::Driver, "legacy_launch"),
    prog("linker", Kind::Driver, "linker"),
    prog("occupancy", Kind::Driver, "occupancy"),
    prog("stream_event", Kind::Driver, "stream_event")
        .env(SMALL_PACED)
        .mask(&[" ms"])
        .exclusive(),
    prog("timing", Kind::Driver, "timing")
        .env(SMALL_PACED)
        .skip(
            "asserts the CPU device's copy-engine model (pageable copies 4x slower than pinned); \
             through the broker every copy is staged in registered memory, so the model sees \
             pinned copies by design",
        ),
    prog("procaddress", Kind::Driver, "procaddress"),
    prog(
        "cudart_device_memory_h200",
        Kind::Cudart,
        "cudart_device_memory",
    )
    .args(&["h200"])
    .env(H200)
    .mask(&["cudaMemGetInfo"]),
    prog(
        "cudart_device_memory_small",
        Kind::Cudart,
        "cudart_device_memory",
    )
    .args(&["small"])
    .env(SMALL)
    .mask(&["cudaMemGetInfo"]),
    prog("cudart_stream_event", Kind::Cudart, "cudart_stream_event").mask(&["elapsed"]),
    prog("cudart_launch", Kind::Cudart, "cudart_launch"),
    prog("cudart_graph", Kind::Cudart, "cudart_graph"),
    prog("cudart_register", Kind::Cudart, "cudart_register"),
    prog("cudart_register_eager", Kind::Cudart, "cudart_register")
        .env(&[("CUDA_MODULE_LOADING", "EAGER")]),
];

fn executable(p: &Program, rt: Cudart) -> PathBuf {
    match p.kind {
        Kind::Driver => compile_c(p.source),
        Kind::Cudart => compile_cudart_c_for(p.source, rt),
        Kind::Mlp => compile_mlp().to_path_buf(),
    }
}

fn arguments(p: &Program) -> Vec<String> {
    let mut args = Vec::new();
    if p.kind == Kind::Mlp {
        args.push(kernels_dir().display().to_string());
    }
    args.extend(p.args.iter().map(|s| s.to_string()));
    args
}

/// `out` without the lines that start with one of `prefixes`.
fn drop_lines(out: &str, prefixes: &[&str]) -> String {
    out.lines()
        .filter(|l| !prefixes.iter().any(|p| l.starts_with(p)))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Masks the numbers of lines that contain one of `masks`.
fn normalize(out: &str, masks: &[&str]) -> String {
    out.lines()
        .map(|line| {
            if !masks.iter().any(|m| line.contains(m)) {
                return line.to_string();
            }
            let mut s = String::new();
            let mut in_number = false;
            for c in line.chars() {
                if c.is_ascii_digit() || (in_number && c == '.') {
                    if !in_number {
                        s.push('#');
                    }
                    in_number = true;
                } else {
                    in_number = false;
                    s.push(c);
                }
            }
            s
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs one table entry (a libcudart one against `rt`) directly and through the shim; `Err`
/// describes every problem.
fn check_program(p: &Program, rt: Cudart) -> Result<(), String> {
    let exe = executable(p, rt);
    let args = arguments(p);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let direct = run_program(&exe, &argv, p.env, RUN);
    if !direct.success() {
        return Err(format!(
            "the direct run on the CPU device failed (a problem of the program or the CPU device, \
             not of the shim)\n{direct}"
        ));
    }
    let broker = Broker::start(p.env);
    let name = format!("e2e-{}", label(p, rt));
    let shim = broker.run_tenant(&name, &exe, &args, p.env, RUN);
    let mut problems = Vec::new();
    if !shim.success() {
        problems.push("through the shim it did not exit 0".to_string());
    }
    let (want, got) = (
        normalize(&drop_lines(&direct.stdout, p.drop), p.mask),
        normalize(&drop_lines(&shim.stdout, p.drop), p.mask),
    );
    if want != got {
        problems.push(format!(
            "stdout differs; first difference: {}",
            first_difference(&want, &got)
        ));
    }
    if stderr_must_be_silent() && direct.stderr.trim().is_empty() && !shim.stderr.is_empty() {
        problems.push("standard error is not empty although GPUSHARE_LOG is unset".into());
    }
    if !broker.logged_sessions(&name).iter().any(|s| s.opened) {
        problems.push(format!("the broker logged no session of tenant {name:?}"));
    }
    if problems.is_empty() {
        println!(
            "{}: identical ({:.1?} direct, {:.1?} through the shim)",
            label(p, rt),
            direct.elapsed,
            shim.elapsed
        );
        return Ok(());
    }
    let broker_log = broker.log_tail(60);
    drop(broker);
    // Once more with debug logs on both sides, for the report.
    let mut env = p.env.to_vec();
    env.push(("GPUSHARE_LOG", "debug"));
    let debug_broker = Broker::start(&env);
    let debug = debug_broker.run_tenant(&name, &exe, &args, &env, DEBUG_RUN);
    Err(format!(
        "{}\n=== direct run ===\n{direct}\n=== through the shim ===\n{shim}\n\
         === broker log (tail) ===\n{broker_log}\n\
         === re-run with GPUSHARE_LOG=debug: exit {:?}{}, tenant stderr (tail) ===\n{}\n\
         === its broker log (tail) ===\n{}",
        problems.join("\n"),
        debug.code,
        if debug.timed_out { " (timed out)" } else { "" },
        tail(&debug.stderr, 120),
        debug_broker.log_tail(120)
    ))
}

/// An entry's label: its name, with the runtime for a libcudart entry on a 13.x runtime.
fn label(p: &Program, rt: Cudart) -> String {
    match p.kind {
        Kind::Cudart if rt != Cudart::V12_9 => format!("{}@cudart{}", p.name, rt.label()),
        _ => p.name.to_string(),
    }
}

/// Runs the selected entries of [`PROGRAMS`] on `workers` threads — libcudart entries against
/// `rt`, the others only when `rt` is 12.9 — and fails naming each failure.
fn run_table(select: impl Fn(&Program) -> bool, rt: Cudart, workers: usize) {
    let only: Option<Vec<String>> = std::env::var("GPUSHARE_E2E_PROGRAMS")
        .ok()
        .map(|s| s.split(',').map(|n| n.trim().to_string()).collect());
    let include_skipped = std::env::var_os("GPUSHARE_E2E_INCLUDE_SKIPPED").is_some();
    let mut queue = Vec::new();
    let applies = |p: &Program| p.kind == Kind::Cudart || rt == Cudart::V12_9;
    for p in PROGRAMS.iter().filter(|p| select(p) && applies(p)) {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == p.name))
        {
            continue;
        }
        match p.skip {
            Some(why) if !include_skipped => println!("{}: skipped: {why}", p.name),
            _ => queue.push(p),
        }
    }
    let queue = Mutex::new(queue.into_iter());
    let failures = Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some(p) = next else { break };
                let result = catch_unwind(AssertUnwindSafe(|| check_program(p, rt)))
                    .unwrap_or_else(|panic| {
                        Err(panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panicked".into()))
                    });
                if let Err(msg) = result {
                    failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((label(p, rt), msg));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    if !failures.is_empty() {
        let names: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
        let details: Vec<String> = failures
            .iter()
            .map(|(n, m)| format!("########## {n} ##########\n{m}"))
            .collect();
        panic!(
            "{} program(s) differ through the shim: {}\n\n{}",
            names.len(),
            names.join(", "),
            details.join("\n\n")
        );
    }
}

/// (a) Every applicable program prints the same through the shim as directly, and exits 0.
#[test]
fn identical_output_direct_and_through_the_shim() {
    let _g = shared();
    run_table(|p| !p.exclusive, Cudart::V12_9, 2);
}

/// (a) The libcudart programs built against libcudart 13.0: the same through the shim.
#[test]
fn identical_output_libcudart_13_0() {
    let _g = shared();
    run_table(|p| !p.exclusive, Cudart::V13_0, 2);
}

/// (a) The libcudart programs built against the newest 13.x runtime: the same through the shim.
#[test]
fn identical_output_libcudart_13_5() {
    let _g = shared();
    run_table(|p| !p.exclusive, Cudart::V13_5, 2);
}

/// (a) The timing-sensitive programs (paced CPU device), alone.
#[test]
fn identical_output_timing_sensitive_programs() {
    let _g = exclusive();
    run_table(|p| p.exclusive, Cudart::V12_9, 1);
}
