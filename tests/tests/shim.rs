//! End-to-end tests of the remoting core: unmodified CUDA programs run through the shim
//! (`libgpushare_shim.so`, SONAME `libcuda.so.1`) against a `gpushare broker --device cpu`, and are
//! compared with the same programs run directly on the CPU device.
//!
//! Prerequisites: `cargo build --release -p gpushare-cpu -p gpushare-broker -p gpushare-shim`
//! (fixtures: `gpushare_tests::broker`). Each test starts its own broker(s) on a private socket.
//!
//! Debugging aids (environment of `cargo test`):
//! * `GPUSHARE_E2E_PROGRAMS=launch,memory` limits the identical-output table to those entries;
//!   `GPUSHARE_E2E_INCLUDE_SKIPPED=1` also runs the entries skipped below (to see how they fail).
//! * `GPUSHARE_E2E_TENANT_LOG=debug` gives tenants `GPUSHARE_LOG=debug` (their standard error is
//!   then no longer checked for silence); `GPUSHARE_E2E_BROKER_LOG=debug` sets the brokers' level.
//! * A failing identical-output entry is re-run once with `GPUSHARE_LOG=debug` for tenant and
//!   broker, and the failure message carries both logs' tails.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use gpushare_tests::broker::{
    compile_mlp, run_command, shim_lib, shim_lib_dir, tenant_env, tenant_log, Broker, Proc,
};
use gpushare_tests::{
    compile_c, compile_cudart_c, exclusive, kernels_dir, lib_dir, run_program, shared, RunOutput,
};

/// Bound on one program run (direct or through the shim); each takes well under 5 s.
const RUN: Duration = Duration::from_secs(60);
/// Bound on the diagnostic re-run of a failed entry.
const DEBUG_RUN: Duration = Duration::from_secs(30);
/// Bound on waits for a broker-side effect (status, log lines).
const SETTLE: Duration = Duration::from_secs(20);
const MIB: u64 = 1 << 20;

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
const SMALL_PACED: &[(&str, &str)] = &[
    ("GPUSHARE_CPU_PROFILE", "small"),
    ("GPUSHARE_CPU_PACING", "1"),
];

/// Every program of `tests/c` (driver API and libcudart) and the MLP example.
const PROGRAMS: &[Program] = &[
    prog("mlp", Kind::Mlp, "mlp").args(&["--name", "e2e", "--batches", "3"]),
    prog("init_version", Kind::Driver, "init_version"),
    prog("device_h200", Kind::Driver, "device").args(&["h200"]),
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
    prog("host_memory", Kind::Driver, "host_memory").skip(
        "its second half registers malloc'd memory (cuMemHostRegister DEVICEMAP) for kernels to \
         dereference: private anonymous memory of the tenant, which a broker in another \
         process cannot map (the shim answers CUDA_ERROR_NOT_SUPPORTED); cuMemHostAlloc and \
         cuMemAllocHost memory is covered by bench_shim and the cudart programs",
    ),
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
    prog("stream_event", Kind::Driver, "stream_event")
        .env(SMALL_PACED)
        .mask(&[" ms"])
        .exclusive()
        .skip(
            "checks that streams run independently under pacing, but the CPU device's executor \
             runs a host function in submission order once its stream is ready, holding back \
             later work of other streams; the broker closes every batch with such a marker, so \
             a long kernel delays the other streams (a CPU-device limitation, reproduced \
             without a broker; docs/architecture.md)",
        ),
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
    prog("cudart_register", Kind::Cudart, "cudart_register"),
    prog("cudart_register_eager", Kind::Cudart, "cudart_register")
        .env(&[("CUDA_MODULE_LOADING", "EAGER")]),
];

fn executable(p: &Program) -> PathBuf {
    match p.kind {
        Kind::Driver => compile_c(p.source),
        Kind::Cudart => compile_cudart_c(p.source),
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

/// The first differing line of two outputs, for messages.
fn first_difference(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (w.get(i), g.get(i));
        if a != b {
            return format!(
                "line {}: direct {:?}, through the shim {:?}",
                i + 1,
                a.copied().unwrap_or("<none>"),
                b.copied().unwrap_or("<none>")
            );
        }
    }
    "none".into()
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// True when a tenant's standard error must be empty: `GPUSHARE_LOG` is not given to tenants.
fn stderr_must_be_silent() -> bool {
    tenant_log().is_none()
}

/// Runs one table entry directly and through the shim; `Err` describes every problem.
fn check_program(p: &Program) -> Result<(), String> {
    let exe = executable(p);
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
    let name = format!("e2e-{}", p.name);
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
            p.name, direct.elapsed, shim.elapsed
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

/// Runs the selected entries of [`PROGRAMS`] on `workers` threads and fails naming each failure.
fn run_table(select: impl Fn(&Program) -> bool, workers: usize) {
    let only: Option<Vec<String>> = std::env::var("GPUSHARE_E2E_PROGRAMS")
        .ok()
        .map(|s| s.split(',').map(|n| n.trim().to_string()).collect());
    let include_skipped = std::env::var_os("GPUSHARE_E2E_INCLUDE_SKIPPED").is_some();
    let mut queue = Vec::new();
    for p in PROGRAMS.iter().filter(|p| select(p)) {
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
                let result =
                    catch_unwind(AssertUnwindSafe(|| check_program(p))).unwrap_or_else(|panic| {
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
                        .push((p.name, msg));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    if !failures.is_empty() {
        let names: Vec<&str> = failures.iter().map(|(n, _)| *n).collect();
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
    run_table(|p| !p.exclusive, 2);
}

/// (a) The timing-sensitive programs (paced CPU device), alone.
#[test]
fn identical_output_timing_sensitive_programs() {
    let _g = exclusive();
    run_table(|p| p.exclusive, 1);
}

// ---------------------------------------------------------------------------------------------
// Helpers of the scenario tests
// ---------------------------------------------------------------------------------------------

fn mlp_args(name: &str, batches: u32) -> Vec<String> {
    vec![
        kernels_dir().display().to_string(),
        "--name".into(),
        name.into(),
        "--batches".into(),
        batches.to_string(),
    ]
}

/// The MLP run directly on the CPU device (must succeed): the reference output.
fn direct_mlp(name: &str, batches: u32) -> RunOutput {
    let args = mlp_args(name, batches);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_program(compile_mlp(), &argv, &[], RUN);
    assert!(out.success(), "direct MLP run failed\n{out}");
    assert_eq!(out.stdout.lines().count(), batches as usize, "{out}");
    out
}

/// A command that runs `exe` directly on the CPU device (as `run_program` does), for
/// background processes.
fn direct_command(exe: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    tenant_env(&mut cmd, &[]);
    cmd.env("LD_LIBRARY_PATH", lib_dir());
    cmd
}

/// Checks a tenant run: exit 0, stdout as the reference, silent standard error.
fn check_tenant(what: &str, got: &RunOutput, want: &RunOutput) -> Result<(), String> {
    let mut problems = Vec::new();
    if !got.success() {
        problems.push("did not exit 0".to_string());
    }
    if got.stdout != want.stdout {
        problems.push(format!(
            "stdout differs from the direct run: {}",
            first_difference(&want.stdout, &got.stdout)
        ));
    }
    if stderr_must_be_silent() && !got.stderr.is_empty() {
        problems.push("standard error is not empty although GPUSHARE_LOG is unset".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}: {}\n{got}", problems.join("; ")))
    }
}

/// Fails with every collected problem (the broker's log follows: `Broker` prints it on drop
/// during a panic).
fn fail_all(failures: &[String]) {
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------------------------
// (b) Both ways in
// ---------------------------------------------------------------------------------------------

/// Runs `p` to completion (bounded) while polling the broker's status; returns its output and the
/// largest `memory_bytes` the broker reported for a session of this very process (matched by
/// pid, which the broker takes from `SO_PEERCRED`) together with the session's name.
fn watch_tenant(broker: &Broker, mut p: Proc) -> (RunOutput, Option<(String, u64)>) {
    let pid = p.pid();
    let start = Instant::now();
    let mut seen: Option<(String, u64)> = None;
    while p.running() && start.elapsed() < RUN {
        if let Ok(s) = broker.status() {
            for t in s.tenants.iter().filter(|t| t.pid == pid) {
                if seen.as_ref().is_none_or(|(_, m)| t.memory_bytes > *m) {
                    seen = Some((t.name.clone(), t.memory_bytes));
                }
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    (p.wait(RUN), seen)
}

/// The MLP through `gpushare run` (LD_PRELOAD), through `LD_LIBRARY_PATH` alone, and with the
/// shim preloaded while a real `libcuda.so.1` (the CPU device) is first on `LD_LIBRARY_PATH`:
/// identical output each time, and the work went through the broker: while the MLP ran, the
/// broker showed a session of that very process (pid), under the tenant name, holding device
/// memory. (The MLP frees everything before it exits, so only a look during the run can tell;
/// 40 batches keep it running long enough for the status polls.)
#[test]
fn both_ways_in_reach_the_broker() {
    let _g = shared();
    let broker = Broker::start(&[]);
    let mlp = compile_mlp();
    let mut failures = Vec::new();
    for way in [
        "gpushare-run",
        "ld-library-path",
        "preload-over-real-libcuda",
    ] {
        let want = direct_mlp(way, 40);
        let args = mlp_args(way, 40);
        let tenant = match way {
            "gpushare-run" => broker.spawn_tenant(way, mlp, &args, &[]),
            _ => {
                let mut cmd = Command::new(mlp);
                cmd.args(&args);
                tenant_env(&mut cmd, &[]);
                cmd.env("GPUSHARE_SOCKET", broker.socket())
                    .env("GPUSHARE_TENANT_NAME", way);
                if way == "ld-library-path" {
                    cmd.env("LD_LIBRARY_PATH", shim_lib_dir());
                } else {
                    cmd.env("LD_PRELOAD", shim_lib())
                        .env("LD_LIBRARY_PATH", lib_dir());
                }
                Proc::spawn(cmd)
            }
        };
        let pid = tenant.pid();
        let (got, seen) = watch_tenant(&broker, tenant);
        if let Err(e) = check_tenant(way, &got, &want) {
            failures.push(e);
        }
        match seen {
            Some((name, mem)) if name == way && mem > 0 => {
                println!("{way}: the broker showed the process's session holding {mem} bytes");
            }
            Some((name, mem)) => failures.push(format!(
                "{way}: the broker showed a session of the process named {name:?} holding {mem} \
                 bytes (expected the name {way:?} and device memory)"
            )),
            None => failures.push(format!(
                "{way}: while it ran, the broker never showed a session of the process (pid \
                 {pid}): its CUDA calls did not go through the broker"
            )),
        }
        if !broker.logged_sessions(way).iter().any(|s| s.opened) {
            failures.push(format!("{way}: the broker logged no session of that name"));
        }
    }
    fail_all(&failures);
}

/// A libcudart program (the real `libcudart.so.12`, which `dlopen`s `libcuda.so.1`) reaches the
/// broker both ways in too, with the same output as directly on the CPU device.
#[test]
fn libcudart_program_both_ways_in() {
    let _g = shared();
    let broker = Broker::start(&[]);
    let exe = compile_cudart_c("cudart_launch");
    let kernels = kernels_dir().display().to_string();
    let env = [("GPUSHARE_KERNELS_DIR", kernels.as_str())];
    let direct = run_program(&exe, &[], &env, RUN);
    assert!(direct.success(), "direct run failed\n{direct}");
    let mut failures = Vec::new();
    for way in ["cudart-ld-library-path", "cudart-preload-over-real-libcuda"] {
        let mut cmd = Command::new(&exe);
        tenant_env(&mut cmd, &env);
        cmd.env("GPUSHARE_SOCKET", broker.socket())
            .env("GPUSHARE_TENANT_NAME", way);
        if way == "cudart-ld-library-path" {
            cmd.env("LD_LIBRARY_PATH", shim_lib_dir());
        } else {
            cmd.env("LD_PRELOAD", shim_lib())
                .env("LD_LIBRARY_PATH", lib_dir());
        }
        let got = run_command(cmd, RUN);
        if !got.success() || got.stdout != direct.stdout {
            failures.push(format!(
                "{way}: exit {:?}, first difference: {}\n{got}",
                got.code,
                first_difference(&direct.stdout, &got.stdout)
            ));
        }
        if !broker.logged_sessions(way).iter().any(|s| s.opened) {
            failures.push(format!(
                "{way}: the broker logged no session of that name: the program's CUDA calls did \
                 not go through the broker"
            ));
        }
    }
    fail_all(&failures);
}

// ---------------------------------------------------------------------------------------------
// (c) Four tenants at once
// ---------------------------------------------------------------------------------------------

#[test]
fn four_tenants_at_once() {
    let _g = shared();
    let broker = Broker::start(&[]);
    let mlp = compile_mlp();
    let names: Vec<String> = (0..4).map(|i| format!("tenant-{i}")).collect();
    let wants: Vec<RunOutput> = names.iter().map(|n| direct_mlp(n, 4)).collect();
    let procs: Vec<Proc> = names
        .iter()
        .map(|n| broker.spawn_tenant(n, mlp, &mlp_args(n, 4), &[]))
        .collect();
    let mut failures = Vec::new();
    for ((name, want), p) in names.iter().zip(&wants).zip(procs) {
        let got = p.wait(RUN);
        if let Err(e) = check_tenant(name, &got, want) {
            failures.push(e);
        }
        if !broker.logged_sessions(name).iter().any(|s| s.opened) {
            failures.push(format!("{name}: the broker logged no session for it"));
        }
    }
    fail_all(&failures);
}

// ---------------------------------------------------------------------------------------------
// (d) SIGKILL of a tenant
// ---------------------------------------------------------------------------------------------

/// A tenant holding 64 MiB is SIGKILLed mid-run while another tenant runs the MLP: the broker
/// ends the dead tenant's session, frees its memory (device memory in use returns to the
/// baseline), and the other tenant finishes with the right output.
#[test]
fn sigkill_of_a_tenant_frees_its_memory_and_spares_the_others() {
    let _g = shared();
    let broker = Broker::start(&[]);
    let baseline = broker.status().expect("status").devices[0].used_mem;
    let looper = compile_c("shim_loop");
    let want = direct_mlp("survivor", 150);

    let mut victim = broker.spawn_tenant("victim", &looper, &["--alloc-mib", "64"], &[]);
    if let Err(e) = victim.wait_line(RUN, |l| l == "ready") {
        panic!("the victim did not start looping: {e}");
    }
    let st = broker.wait_status("the victim holds its 64 MiB", SETTLE, |s| {
        s.tenants
            .iter()
            .any(|t| t.name == "victim" && t.memory_bytes >= 64 * MIB)
    });
    if let Err(e) = st {
        panic!("{e}");
    }

    let mut survivor =
        broker.spawn_tenant("survivor", compile_mlp(), &mlp_args("survivor", 150), &[]);
    // Its output is block-buffered (a pipe): watch the broker instead. The MLP uploads its
    // weights first and holds them to the end.
    if let Err(e) = broker.wait_status("the survivor holds device memory", RUN, |s| {
        s.tenants
            .iter()
            .any(|t| t.name == "survivor" && t.memory_bytes > 0)
    }) {
        panic!(
            "the survivor did not start: {e}\n{}{}",
            survivor.stdout(),
            survivor.stderr()
        );
    }
    assert!(
        survivor.running(),
        "the survivor finished before the victim was killed: make it run longer"
    );
    victim.signal(libc::SIGKILL);
    let v = victim.wait(SETTLE);
    assert_eq!(v.signal, Some(libc::SIGKILL), "victim: {v}");

    let mut failures = Vec::new();
    if let Err(e) = broker.wait_status("the victim's session ends", SETTLE, |s| {
        !s.tenants.iter().any(|t| t.name == "victim")
    }) {
        failures.push(e);
    }
    match broker.wait_session_freed("victim", SETTLE) {
        Ok(b) if b >= 64 * MIB => {}
        Ok(b) => failures.push(format!(
            "the broker freed only {b} bytes of the victim's (it held at least 64 MiB)"
        )),
        Err(e) => failures.push(e),
    }
    let got = survivor.wait(RUN);
    if let Err(e) = check_tenant("survivor", &got, &want) {
        failures.push(e);
    }
    if let Err(e) = broker.wait_status(
        &format!("device memory back to the baseline ({baseline} bytes) with no tenants"),
        SETTLE,
        |s| s.tenants.is_empty() && s.devices[0].used_mem == baseline,
    ) {
        failures.push(e);
    }
    fail_all(&failures);
}

// ---------------------------------------------------------------------------------------------
// (e) The broker dies
// ---------------------------------------------------------------------------------------------

/// A tenant looping on launch + synchronise must notice a SIGKILLed broker and exit by itself,
/// with an error, within 2 s.
#[test]
fn a_tenant_exits_within_2s_when_the_broker_is_killed() {
    let _g = exclusive(); // the 2 s bound is measured: nothing else runs meanwhile
    let mut broker = Broker::start(&[]);
    let looper = compile_c("shim_loop");
    let mut tenant = broker.spawn_tenant("orphan", &looper, &["--alloc-mib", "8"], &[]);
    if let Err(e) = tenant.wait_line(RUN, |l| l == "ready") {
        panic!("the tenant did not start looping: {e}");
    }
    thread::sleep(Duration::from_millis(200));
    assert!(tenant.running(), "the tenant stopped looping by itself");
    let killed = Instant::now();
    broker.kill();
    let out = tenant.wait(Duration::from_secs(30));
    let took = killed.elapsed();
    assert!(
        !out.timed_out,
        "the tenant still ran 30 s after the broker was killed\n{out}"
    );
    assert!(
        out.signal.is_none() && out.code.is_some_and(|c| c != 0),
        "the tenant must exit with an error status (not crash, not exit 0)\n{out}"
    );
    assert!(
        out.stderr.contains("shim_loop: iteration") && out.stderr.contains("CUDA_ERROR"),
        "the tenant must report the CUDA error it got\n{out}"
    );
    println!(
        "tenant exited {took:.2?} after the broker was killed: {}",
        out.stderr.trim()
    );
    assert!(
        took < Duration::from_secs(2),
        "the tenant took {took:.2?} (limit 2 s) to exit after the broker was killed\n{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// (f) Isolation
// ---------------------------------------------------------------------------------------------

const INVALID_VALUE: &str = "CUDA_ERROR_INVALID_VALUE";
const INVALID_HANDLE: &str = "CUDA_ERROR_INVALID_HANDLE";
const SUCCESS: &str = "CUDA_SUCCESS";

/// What the intruder of `shim_isolation.c` must get for each call.
const INTRUDER_EXPECTS: &[(&str, &str)] = &[
    ("DtoH from owner ptr", INVALID_VALUE),
    ("HtoD to owner ptr", INVALID_VALUE),
    ("memset owner ptr", INVALID_VALUE),
    ("free owner ptr", INVALID_VALUE),
    ("stream synchronize", INVALID_HANDLE),
    ("stream query", INVALID_HANDLE),
    ("event synchronize", INVALID_HANDLE),
    ("event query", INVALID_HANDLE),
    ("event record", INVALID_HANDLE),
    ("module get function", INVALID_HANDLE),
    ("launch owner function", INVALID_HANDLE),
    ("context synchronize", SUCCESS),
    ("own memory", SUCCESS),
    ("DtoD owner ptr to own", INVALID_VALUE),
    ("DtoD own to owner ptr", INVALID_VALUE),
];

/// The owner prints its values, the intruder tries them, the owner checks its data. `Err` lists
/// every deviation.
fn isolation_scenario(
    mut owner: Proc,
    run_intruder: impl FnOnce(&[&str]) -> RunOutput,
) -> Result<(), String> {
    let line = owner.wait_line(RUN, |l| l.starts_with("owner ptr="))?;
    let values: Vec<&str> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('=').map(|(_, v)| v))
        .collect();
    if values.len() != 5 {
        return Err(format!("cannot parse the owner's line {line:?}"));
    }
    let mut args = vec!["intruder"];
    args.extend(&values);
    let intruder = run_intruder(&args);
    let mut problems = Vec::new();
    if !intruder.success() || !intruder.stdout.contains("intruder done") {
        problems.push(format!(
            "the intruder did not run to its end (a crash or hang on a foreign value?)\n{intruder}"
        ));
    }
    let got = |label: &str| {
        intruder.stdout.lines().find_map(|l| {
            l.strip_prefix(label)
                .and_then(|r| r.strip_prefix(" -> "))
                .map(str::to_string)
        })
    };
    for (label, want) in INTRUDER_EXPECTS {
        match got(label) {
            Some(g) if g == *want => {}
            Some(g) => problems.push(format!("intruder: {label} -> {g}, expected {want}")),
            None => problems.push(format!("intruder: no result for {label:?}")),
        }
    }
    // An asynchronous copy to a foreign pointer: refused at the call, or reported by the next
    // synchronisation — never a silent success.
    match (
        got("async HtoD").as_deref(),
        got("async HtoD sync").as_deref(),
    ) {
        (Some(INVALID_VALUE), _) => {}
        (Some(SUCCESS), Some(s)) if s != SUCCESS => {}
        (a, s) => problems.push(format!(
            "intruder: async HtoD to the owner's pointer -> {a:?}, then synchronize -> {s:?}; \
             expected {INVALID_VALUE} at the call or an error at the synchronisation"
        )),
    }
    owner.write_stdin("check\n");
    let owner_out = owner.wait(RUN);
    if !owner_out.success() || !owner_out.stdout.contains("owner data intact") {
        problems.push(format!(
            "the owner's data or handles did not survive the intruder\n{owner_out}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n--- intruder stdout ---\n{}",
            problems.join("\n"),
            intruder.stdout
        ))
    }
}

/// Reference: two separate processes on the CPU device get the expected codes (so the
/// expectations are CUDA's behaviour for separate contexts, not something made up for the shim).
#[test]
fn isolation_program_on_the_cpu_device() {
    let _g = shared();
    let exe = compile_c("shim_isolation");
    let owner = Proc::spawn(direct_command(&exe, &["owner"]));
    if let Err(e) = isolation_scenario(owner, |args| run_program(&exe, args, &[], RUN)) {
        panic!("{e}");
    }
}

/// Tenant B, given tenant A's device pointer and handle values, can neither read, write, free
/// nor synchronise on them; A's data and handles are intact afterwards.
#[test]
fn isolation_through_the_shim() {
    let _g = shared();
    let exe = compile_c("shim_isolation");
    let broker = Broker::start(&[]);
    let owner = broker.spawn_tenant("owner", &exe, &["owner"], &[]);
    if let Err(e) = isolation_scenario(owner, |args| {
        broker.run_tenant("intruder", &exe, args, &[], RUN)
    }) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// (g) No broker, (h) no noise
// ---------------------------------------------------------------------------------------------

/// With `GPUSHARE_SOCKET` naming a socket nobody listens on, `cuInit` fails (promptly) and the
/// program's standard output holds only its own lines — whether the shim comes in by
/// `LD_LIBRARY_PATH` or by `LD_PRELOAD`.
#[test]
fn without_a_broker_cu_init_fails_promptly() {
    let _g = shared();
    let probe = compile_c("shim_probe");
    let missing = std::env::temp_dir()
        .join(format!("gpushare-e2e-nobroker-{}", std::process::id()))
        .join("sock");
    let mut failures = Vec::new();
    for way in ["ld-library-path", "preload"] {
        let mut cmd = Command::new(&probe);
        tenant_env(&mut cmd, &[]);
        cmd.env("GPUSHARE_SOCKET", &missing)
            .env("GPUSHARE_TENANT_NAME", "nobroker");
        if way == "preload" {
            cmd.env("LD_PRELOAD", shim_lib());
        } else {
            cmd.env("LD_LIBRARY_PATH", shim_lib_dir());
        }
        let out = run_command(cmd, Duration::from_secs(30));
        let lines: Vec<&str> = out.stdout.lines().collect();
        let ok = !out.timed_out
            && out.success()
            && lines.len() == 2
            && lines[0].starts_with("cuInit -> CUDA_ERROR_")
            && lines[1].starts_with("cuDeviceGetCount -> CUDA_ERROR_")
            && out.elapsed < Duration::from_secs(10);
        if !ok {
            failures.push(format!(
                "{way}: expected two lines, cuInit and cuDeviceGetCount failing, within 10 s\n{out}"
            ));
        } else {
            println!("{way}: {} ({:.2?})", lines.join("; "), out.elapsed);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A successful tenant prints exactly what it prints directly, and nothing on standard error
/// while `GPUSHARE_LOG` is unset.
#[test]
fn no_output_noise_without_gpushare_log() {
    let _g = shared();
    let broker = Broker::start(&[]);
    let want = direct_mlp("quiet", 2);
    let got = broker.run_tenant("quiet", compile_mlp(), &mlp_args("quiet", 2), &[], RUN);
    let mut failures = Vec::new();
    if let Err(e) = check_tenant("quiet", &got, &want) {
        failures.push(e);
    }
    if tenant_log().is_none() && !got.stderr.is_empty() {
        failures.push(format!("stderr must be empty: {:?}", got.stderr));
    }
    fail_all(&failures);
}

// ---------------------------------------------------------------------------------------------
// The benchmark program works (figures are printed, never asserted)
// ---------------------------------------------------------------------------------------------

const BENCH_KEYS: &[&str] = &[
    "launch_async_ns",
    "stream_query_p50_us",
    "stream_query_p99_us",
    "call_p50_us",
    "call_p99_us",
    "h2d_pageable_gbps",
    "d2h_pageable_gbps",
    "h2d_pinned_gbps",
    "d2h_pinned_gbps",
    "launches_per_s",
];

const BENCH_TINY: &[&str] = &[
    "--launches",
    "50",
    "--batches",
    "3",
    "--queries",
    "200",
    "--copy-mib",
    "1",
    "--copy-reps",
    "2",
    "--rate-launches",
    "200",
    "--rate-reps",
    "2",
];

/// Parses bench_shim's output: every key exactly once, each a finite positive number.
fn parse_bench(out: &RunOutput) -> Result<Vec<(String, f64)>, String> {
    if !out.success() {
        return Err(format!("bench_shim failed\n{out}"));
    }
    let mut figures = Vec::new();
    for line in out.stdout.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value), Some(_unit), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(format!("unexpected line {line:?}\n{out}"));
        };
        let v: f64 = value.parse().map_err(|e| format!("{line:?}: {e}\n{out}"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("{line:?}: not a finite non-negative figure\n{out}"));
        }
        figures.push((key.to_string(), v));
    }
    let keys: Vec<&str> = figures.iter().map(|(k, _)| k.as_str()).collect();
    if keys != BENCH_KEYS {
        return Err(format!("keys {keys:?}, expected {BENCH_KEYS:?}\n{out}"));
    }
    Ok(figures)
}

#[test]
fn bench_program_runs_directly_and_through_the_shim() {
    let _g = shared();
    let exe = compile_c("bench_shim");
    let direct =
        parse_bench(&run_program(&exe, BENCH_TINY, &[], RUN)).unwrap_or_else(|e| panic!("{e}"));
    let broker = Broker::start(&[]);
    let shim = parse_bench(&broker.run_tenant("bench", &exe, BENCH_TINY, &[], RUN))
        .unwrap_or_else(|e| panic!("through the shim: {e}"));
    for ((k, d), (_, s)) in direct.iter().zip(&shim) {
        println!("{k:<22} direct {d:>12.3}   through the shim {s:>12.3}");
    }
}
