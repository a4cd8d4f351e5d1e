//! End-to-end tests of the remoting core: unmodified CUDA programs run through the shim
//! (`libgpushare_shim.so`, SONAME `libcuda.so.1`) against a `gpushare broker --device cpu`: both
//! ways in, several tenants, a killed tenant, a killed broker, no broker, no noise. Test (a),
//! identical output for every program, is `tests/tests/shim_outputs.rs`; isolation (f) is
//! `tests/tests/shim_isolation.rs`; the benchmark programs are run in
//! `tests/tests/bench_programs.rs`.
//!
//! Prerequisites: `cargo build --release -p gpushare-cpu -p gpushare-broker -p gpushare-shim`
//! (fixtures: `gpushare_tests::broker`). Each test starts its own broker(s) on a private socket.
//!
//! Debugging aids (environment of `cargo test`):
//! * `GPUSHARE_E2E_TENANT_LOG=debug` gives tenants `GPUSHARE_LOG=debug` (their standard error is
//!   then no longer checked for silence); `GPUSHARE_E2E_BROKER_LOG=debug` sets the brokers' level.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use gpushare_tests::broker::{
    compile_mlp, fail_all, first_difference, run_command, shim_lib, shim_lib_dir,
    stderr_must_be_silent, tenant_env, tenant_log, Broker, Proc,
};
use gpushare_tests::{
    compile_c, compile_cudart_c_for, exclusive, kernels_dir, lib_dir, run_program, shared, Cudart,
    RunOutput,
};

/// Bound on one program run (direct or through the shim); each takes well under 5 s.
const RUN: Duration = Duration::from_secs(60);
/// Bound on waits for a broker-side effect (status, log lines).
const SETTLE: Duration = Duration::from_secs(20);
const MIB: u64 = 1 << 20;

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

/// A libcudart program (the real `libcudart.so.12` and `.so.13`, which `dlopen` `libcuda.so.1`)
/// reaches the broker both ways in too, with the same output as directly on the CPU device.
#[test]
fn libcudart_program_both_ways_in() {
    let _g = shared();
    let broker = Broker::start(&[]);
    let kernels = kernels_dir().display().to_string();
    let env = [("GPUSHARE_KERNELS_DIR", kernels.as_str())];
    let mut failures = Vec::new();
    for (rt, way) in Cudart::ALL.iter().flat_map(|rt| {
        ["cudart-ld-library-path", "cudart-preload-over-real-libcuda"].map(|w| (*rt, w))
    }) {
        let exe = compile_cudart_c_for("cudart_launch", rt);
        let direct = run_program(&exe, &[], &env, RUN);
        let label = rt.label();
        assert!(direct.success(), "direct run ({label}) failed\n{direct}");
        let (through_path, way) = (way == "cudart-ld-library-path", format!("{way}-{label}"));
        let way = way.as_str();
        let mut cmd = Command::new(&exe);
        tenant_env(&mut cmd, &env);
        cmd.env("GPUSHARE_SOCKET", broker.socket())
            .env("GPUSHARE_TENANT_NAME", way);
        if through_path {
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

/// A tenant copying 256 MiB up and back in a loop (pageable: pipelined pieces through staging,
/// most of each iteration is copying) is SIGKILLed: its session ends, everything it held is
/// freed (device memory back to the baseline), and the next tenant's chunked copies work.
#[test]
fn sigkill_during_a_chunked_copy_frees_everything() {
    let _g = shared();
    let broker = Broker::start(&[]);
    let baseline = broker.status().expect("status").devices[0].used_mem;
    let looper = compile_c("shim_loop");
    let copying = ["--alloc-mib", "256", "--copy", "1"];
    let mut victim = broker.spawn_tenant("copier", &looper, &copying, &[]);
    if let Err(e) = victim.wait_line(RUN, |l| l == "ready") {
        panic!("the copier did not start looping: {e}");
    }
    // Some way into a later iteration's copies.
    thread::sleep(Duration::from_millis(150));
    assert!(victim.running(), "the copier stopped by itself");
    victim.signal(libc::SIGKILL);
    let v = victim.wait(SETTLE);
    assert_eq!(v.signal, Some(libc::SIGKILL), "copier: {v}");

    let mut failures = Vec::new();
    match broker.wait_session_freed("copier", SETTLE) {
        Ok(b) if b >= 256 * MIB => {}
        Ok(b) => failures.push(format!(
            "the broker freed only {b} bytes of the copier's (it held 256 MiB)"
        )),
        Err(e) => failures.push(e),
    }
    if let Err(e) = broker.wait_status(
        &format!("device memory back to the baseline ({baseline} bytes) with no tenants"),
        SETTLE,
        |s| s.tenants.is_empty() && s.devices[0].used_mem == baseline,
    ) {
        failures.push(e);
    }
    let next = broker.spawn_tenant(
        "next",
        &looper,
        &[&copying[..], &["--iters", "3"]].concat(),
        &[],
    );
    let out = next.wait(RUN);
    if out.code != Some(0) {
        failures.push(format!("the next copying tenant failed: {out}"));
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
