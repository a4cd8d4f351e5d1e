//! Isolation groups end to end: tenants (`tests/c/group_faults.c`, through the shim) on a
//! `gpushare broker --device cpu` with a policy file. Each scenario shows what reaches the
//! faulting group, that another group continues bit-exact (a victim re-reads its memory and runs
//! a kernel), and that the broker serves new sessions of the faulted group.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gpushare_tests::broker::{Broker, Proc};
use gpushare_tests::{compile_c, RunOutput};

/// Bound on one tenant run.
const RUN: Duration = Duration::from_secs(60);
/// Bound on waits for a line or a status change.
const SETTLE: Duration = Duration::from_secs(20);

fn exe() -> PathBuf {
    compile_c("group_faults")
}

/// A victim tenant that printed its pointer.
struct Victim {
    p: Proc,
    /// Its device buffer's address (for intruders).
    ptr: String,
}

impl Victim {
    fn start(b: &Broker, name: &str) -> Victim {
        let mut p = b.spawn_tenant(name, &exe(), &["victim"], &[]);
        let line = p
            .wait_line(SETTLE, |l| l.starts_with("victim ptr="))
            .unwrap_or_else(|e| panic!("{e}\n--- broker ---\n{}", b.log_tail(40)));
        let ptr = line.trim_start_matches("victim ptr=").to_string();
        Victim { p, ptr }
    }

    /// Asks for a check; returns its line.
    fn check(&mut self, n: usize) -> String {
        self.p.write_stdin("check\n");
        let counted = move |l: &str| l.starts_with("check");
        let start = Instant::now();
        loop {
            let lines: Vec<String> = self
                .p
                .stdout()
                .lines()
                .filter(|l| counted(l))
                .map(str::to_string)
                .collect();
            if lines.len() >= n {
                return lines[n - 1].clone();
            }
            assert!(
                start.elapsed() < SETTLE,
                "no check line:\n{}\n{}",
                self.p.stdout(),
                self.p.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn quit(mut self) -> RunOutput {
        self.p.write_stdin("quit\n");
        self.p.wait(RUN)
    }
}

fn run(b: &Broker, name: &str, args: &[&str]) -> RunOutput {
    b.run_tenant(name, &exe(), args, &[], RUN)
}

/// `RESULT` and `after` of a fault-mode run.
fn outcome(out: &RunOutput) -> (String, String) {
    let get = |key: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| panic!("no {key} line\n{out}"))
    };
    (get("RESULT "), get("after "))
}

/// A fresh session of the group `name` belongs to works, and how long it took.
fn fresh_session_works(b: &Broker, name: &str) -> Duration {
    let out = run(b, name, &["work"]);
    assert!(
        out.success() && out.stdout.contains("work ok"),
        "a new session of the group:\n{out}\n{}",
        b.log_tail(30)
    );
    out.elapsed
}

const TWO_GROUPS: &str = r#"
[tenants.victim]
group = "g1"
[tenants.bystander]
group = "g2"
[tenants.faulty]
group = "g2"
[tenants.fresh]
group = "g2"
[tenants.spinner]
group = "g2"
kernel_timeout = "1s"
"#;

#[test]
fn an_out_of_bounds_write_faults_only_its_group() {
    let b = Broker::start_with_policy(Some(TWO_GROUPS), &[]);
    let mut victim = Victim::start(&b, "victim");
    let mut bystander = Victim::start(&b, "bystander");
    assert_eq!(victim.check(1), "check ok");
    let out = run(&b, "faulty", &["oob"]);
    assert_eq!(
        outcome(&out),
        (
            "CUDA_ERROR_ILLEGAL_ADDRESS".into(),
            "CUDA_ERROR_ILLEGAL_ADDRESS".into()
        ),
        "{out}"
    );
    assert_eq!(victim.check(2), "check ok", "another group continues");
    let lost = bystander.check(1);
    assert!(
        lost.starts_with("check FAILED"),
        "a tenant of the faulted group shares its context: {lost}"
    );
    let log = b.log_text();
    assert!(
        log.contains("device fault") && log.contains("\"faulty\""),
        "a log line names the faulting tenant:\n{}",
        b.log_tail(30)
    );
    let took = fresh_session_works(&b, "fresh");
    println!("a new session of the faulted group ran its workload in {took:?}");
    assert_eq!(victim.check(3), "check ok");
    assert!(victim.quit().success());
    drop(bystander);
}

/// A kernel writing through a read-only mapping: the CUDA error (sticky
/// `CUDA_ERROR_ILLEGAL_ADDRESS`) for its group only.
#[test]
fn a_write_through_a_read_only_mapping_faults_only_its_group() {
    let b = Broker::start_with_policy(Some(TWO_GROUPS), &[]);
    let mut victim = Victim::start(&b, "victim");
    let out = run(&b, "faulty", &["readonly"]);
    assert_eq!(
        outcome(&out),
        (
            "CUDA_ERROR_ILLEGAL_ADDRESS".into(),
            "CUDA_ERROR_ILLEGAL_ADDRESS".into()
        ),
        "{out}"
    );
    assert_eq!(victim.check(1), "check ok", "another group continues");
    fresh_session_works(&b, "fresh");
}

/// A worker killed by SIGKILL, or aborting (SIGABRT, as an abort inside the driver or the PTX
/// interpreter would): `CUDA_ERROR_LAUNCH_FAILED` for its group, a replacement for new sessions.
#[test]
fn a_worker_killed_by_a_signal_costs_only_its_group() {
    let b = Broker::start_with_policy(Some(TWO_GROUPS), &[]);
    let mut victim = Victim::start(&b, "victim");
    for (round, signal) in [libc::SIGKILL, libc::SIGABRT].into_iter().enumerate() {
        let mut bystander = Victim::start(&b, "bystander");
        let status = b.status().expect("status");
        let g2 = status
            .workers
            .iter()
            .find(|w| w.group == "g2" && w.state == "running")
            .expect("g2's worker");
        // SAFETY: kill(2) on a worker process of our broker; it touches no memory of ours.
        unsafe { libc::kill(g2.pid as libc::pid_t, signal) };
        // The bystander asks only once the broker has seen the worker die: asked earlier, on a
        // loaded host its first call could still be served, and the error come one call later.
        let reason = format!("signal {signal}");
        b.wait_status("g2's worker seen dead", SETTLE, |s| {
            s.workers
                .iter()
                .any(|w| w.group == "g2" && w.last_fault.contains(&reason))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let lost = bystander.check(1);
        assert_eq!(
            lost,
            "check FAILED: CUDA_ERROR_LAUNCH_FAILED",
            "signal {signal}: {}",
            b.log_tail(20)
        );
        assert_eq!(victim.check(round + 1), "check ok");
        fresh_session_works(&b, "fresh");
        b.wait_status("g2's worker replaced", SETTLE, |s| {
            s.workers.iter().any(|w| {
                w.group == "g2" && w.restarts > round as u64 && w.last_fault.contains(&reason)
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let s = b.status().expect("status");
    assert!(
        s.workers.iter().any(|w| w.group == "g1" && w.restarts == 0),
        "{:#?}",
        s.workers
    );
    assert_eq!(victim.check(3), "check ok");
}

#[test]
fn an_endless_kernel_is_stopped_by_the_watchdog() {
    let b = Broker::start_with_policy(Some(TWO_GROUPS), &[]);
    let mut victim = Victim::start(&b, "victim");
    let out = run(&b, "spinner", &["spin"]);
    assert_eq!(
        outcome(&out),
        (
            "CUDA_ERROR_LAUNCH_TIMEOUT".into(),
            "CUDA_ERROR_LAUNCH_TIMEOUT".into()
        ),
        "{out}"
    );
    assert!(
        b.log_text().contains("kernel_timeout"),
        "{}",
        b.log_tail(20)
    );
    assert_eq!(victim.check(1), "check ok");
    fresh_session_works(&b, "fresh");
}

#[test]
fn hostile_modules_fail_their_load_and_spare_the_broker() {
    let b = Broker::start_with_policy(Some(TWO_GROUPS), &[]);
    let mut victim = Victim::start(&b, "victim");
    let mut bystander = Victim::start(&b, "bystander");
    let cases = [
        (&["nested", "10000"][..], "CUDA_ERROR_INVALID_PTX"),
        (&["huge"][..], "CUDA_ERROR_OUT_OF_MEMORY"),
    ];
    for (n, (args, load)) in cases.into_iter().enumerate() {
        let out = run(&b, "faulty", args);
        assert_eq!(
            outcome(&out),
            (load.to_string(), "CUDA_SUCCESS".to_string()),
            "{args:?}: a clean load error, the tenant's context still usable\n{out}"
        );
        assert_eq!(victim.check(n + 1), "check ok", "{args:?}");
        assert_eq!(
            bystander.check(n + 1),
            "check ok",
            "{args:?}: the group's worker survives"
        );
    }
    let s = b.status().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        s.workers.iter().all(|w| w.restarts == 0),
        "no worker was replaced: {:#?}",
        s.workers
    );
}

/// A kernel of another group given the victim's address (isolation by tenant): it cannot read or
/// write the victim's memory — the address is either unmapped in its worker (a fault in its own
/// group) or names memory of its own group.
#[test]
fn another_groups_address_reaches_nothing_of_the_victim() {
    let b = Broker::start_with_policy(Some("[default]\nisolation = \"tenant\"\n"), &[]);
    let mut victim = Victim::start(&b, "victim");
    let ptr = victim.ptr.clone();
    let peek = run(&b, "intruder", &["peek", &ptr]);
    let (read, _) = outcome(&peek);
    if read == "CUDA_SUCCESS" {
        let seen = peek
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("peeked "))
            .unwrap_or_else(|| panic!("{peek}"));
        assert!(
            seen.starts_with("0 of"),
            "the intruder read the victim's memory: {peek}"
        );
    } else {
        assert_eq!(read, "CUDA_ERROR_ILLEGAL_ADDRESS", "{peek}");
    }
    let poke = run(&b, "intruder", &["poke", &ptr]);
    let (write, _) = outcome(&poke);
    assert!(
        ["CUDA_SUCCESS", "CUDA_ERROR_ILLEGAL_ADDRESS"].contains(&write.as_str()),
        "{poke}"
    );
    assert_eq!(victim.check(1), "check ok", "the victim's bytes are intact");
}

/// Which workers serve two tenants under each isolation mode.
#[test]
fn each_isolation_mode_from_a_policy_file() {
    for (policy, distinct, groups) in [
        ("[default]\nisolation = \"tenant\"\n", 2, None),
        ("[default]\nisolation = \"uid\"\n", 1, Some("uid:")),
        ("[default]\nisolation = \"shared\"\n", 1, Some("shared")),
        (
            "[tenants.a]\ngroup = \"named\"\n[tenants.b]\ngroup = \"named\"\n",
            1,
            Some("named"),
        ),
    ] {
        let b = Broker::start_with_policy(Some(policy), &[]);
        let (mut va, mut vb) = (Victim::start(&b, "a"), Victim::start(&b, "b"));
        let s = b
            .wait_status("two tenants", SETTLE, |s| s.tenants.len() == 2)
            .unwrap_or_else(|e| panic!("{e}"));
        let busy: Vec<_> = s.workers.iter().filter(|w| w.tenants > 0).collect();
        assert_eq!(busy.len(), distinct, "{policy}: {:#?}", s.workers);
        assert_eq!(busy.iter().map(|w| w.tenants).sum::<u32>(), 2, "{policy}");
        if let Some(prefix) = groups {
            assert!(
                s.tenants.iter().all(|t| t.group.starts_with(prefix)),
                "{policy}: {:#?}",
                s.tenants
            );
        }
        assert_eq!(va.check(1), "check ok");
        assert_eq!(vb.check(1), "check ok");
        assert!(va.quit().success() && vb.quit().success());
    }
}
