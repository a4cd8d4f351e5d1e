//! Isolation through the shim, end to end: a tenant given another tenant's device pointer and
//! handle values (`tests/c/shim_isolation.c`) can neither read, write, free nor synchronise on
//! them, and the owner's data and handles survive. The same program as two processes directly
//! on the CPU device is the reference: the expected codes are CUDA's behaviour for separate
//! contexts, not something made up for the shim. (Split from `tests/tests/shim.rs`.)

use std::time::Duration;

use gpushare_tests::broker::{direct_command, Broker, Proc};
use gpushare_tests::{compile_c, run_program, shared, RunOutput};

/// Bound on one program run (direct or through the shim); each takes well under 5 s.
const RUN: Duration = Duration::from_secs(60);

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
