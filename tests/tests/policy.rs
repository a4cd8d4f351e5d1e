//! Live policy reload end to end: a `gpushare broker --device cpu --policy FILE` with a tenant
//! (`tests/c/group_faults.c victim`, through the shim) that keeps its session open. The file is
//! rewritten and reloaded with `gpushare policy reload` and with SIGHUP: the tenant's session
//! survives and keeps working, and `gpushare status` shows its new weight, priority and quota. A
//! bad file is refused with its line and column, and the old policy stays.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gpushare_client::proto::{StatusReport, TenantStatus};
use gpushare_tests::broker::{Broker, Proc};
use gpushare_tests::{compile_c, RunOutput};

/// Bound on one tenant run or admin command.
const RUN: Duration = Duration::from_secs(60);
/// Bound on waits for a line, a log line or a status change.
const SETTLE: Duration = Duration::from_secs(20);

fn exe() -> PathBuf {
    compile_c("group_faults")
}

fn policy(weight: u32, priority: &str, quota: &str) -> String {
    format!(
        "[default]\nweight = 1\n\n[tenants.resident]\nweight = {weight}\npriority = \"{priority}\"\n\
         memory_quota = \"{quota}\"\n"
    )
}

/// A bad file: its error is at line 5, column 10.
const BAD: &str = "[default]\nweight = 1\n\n[tenants.resident]\nweight = 0\n";

/// A tenant that holds its session open and checks its memory on request.
struct Resident {
    p: Proc,
    checks: usize,
}

impl Resident {
    fn start(b: &Broker) -> Resident {
        let mut p = b.spawn_tenant("resident", &exe(), &["victim"], &[]);
        p.wait_line(SETTLE, |l| l.starts_with("victim ptr="))
            .unwrap_or_else(|e| panic!("{e}\n--- broker ---\n{}", b.log_tail(40)));
        Resident { p, checks: 0 }
    }

    /// Asks for a check of its memory and a kernel run; asserts it succeeds.
    fn check(&mut self) {
        self.checks += 1;
        self.p.write_stdin("check\n");
        let start = Instant::now();
        loop {
            let out = self.p.stdout();
            let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("check")).collect();
            if lines.len() >= self.checks {
                assert_eq!(
                    lines[self.checks - 1],
                    "check ok",
                    "the session still works"
                );
                return;
            }
            assert!(
                start.elapsed() < SETTLE,
                "no check line:\n{out}\n{}",
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

fn resident(s: &StatusReport) -> Option<&TenantStatus> {
    s.tenants.iter().find(|t| t.name == "resident")
}

/// Waits until the status shows the resident tenant with `weight`, `priority` and `quota`.
fn wait_rules(b: &Broker, session: u64, weight: u32, priority: &str, quota: u64) {
    b.wait_status(
        &format!("weight {weight}, priority {priority}, quota {quota}"),
        SETTLE,
        |s| {
            resident(s).is_some_and(|t| {
                (t.session_id, t.weight, t.priority.as_str(), t.memory_quota)
                    == (session, weight, priority, quota)
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n--- broker ---\n{}", b.log_tail(30)));
}

/// Waits until the broker's log has `n` lines containing `what`.
fn wait_log(b: &Broker, what: &str, n: usize) -> String {
    let start = Instant::now();
    loop {
        let log = b.log_text();
        if log.lines().filter(|l| l.contains(what)).count() >= n {
            return log;
        }
        assert!(
            start.elapsed() < SETTLE,
            "the broker did not log {what:?} {n} times:\n{}",
            b.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn reload(b: &Broker) -> RunOutput {
    b.admin_command(&["policy", "reload"], RUN)
}

#[test]
fn reload_applies_new_rules_to_running_tenants_and_refuses_bad_files() {
    let b = Broker::start_with_policy(Some(&policy(2, "low", "64MiB")), &[]);
    let file = b.policy_file();
    let mut t = Resident::start(&b);
    let session = b
        .wait_status("the resident tenant", SETTLE, |s| resident(s).is_some())
        .map(|s| resident(&s).map_or(0, |t| t.session_id))
        .unwrap_or_else(|e| panic!("{e}"));
    wait_rules(&b, session, 2, "low", 64 << 20);

    // `gpushare policy reload`.
    std::fs::write(&file, policy(5, "high", "128MiB")).unwrap();
    let out = reload(&b);
    assert!(
        out.success() && out.stdout.contains("reloaded") && out.stdout.contains("1 running tenant"),
        "{out}\n{}",
        b.log_tail(20)
    );
    wait_rules(&b, session, 5, "high", 128 << 20);
    t.check();

    // SIGHUP.
    std::fs::write(&file, policy(7, "normal", "0")).unwrap();
    b.signal(libc::SIGHUP);
    wait_rules(&b, session, 7, "normal", 0);
    wait_log(&b, "policy reloaded", 2);
    t.check();

    // A bad file, by request: refused with its line and column; the old policy stays.
    std::fs::write(&file, BAD).unwrap();
    let out = reload(&b);
    let file_name = file.display().to_string();
    assert!(
        out.code == Some(1)
            && out.stderr.contains("policy reload refused")
            && out.stderr.contains(&file_name)
            && out.stderr.contains("line 5, column 10")
            && out.stderr.contains("the old policy stays"),
        "{out}"
    );
    // By SIGHUP: logged.
    b.signal(libc::SIGHUP);
    let log = wait_log(&b, "policy reload refused", 2);
    assert!(
        log.lines()
            .filter(|l| l.contains("policy reload refused"))
            .all(|l| l.contains("line 5, column 10")),
        "{}",
        b.log_tail(10)
    );
    wait_rules(&b, session, 7, "normal", 0);
    t.check();

    // A good file again: in force for the running tenant.
    std::fs::write(&file, policy(3, "low", "1GiB")).unwrap();
    assert!(reload(&b).success());
    wait_rules(&b, session, 3, "low", 1 << 30);
    t.check();
    let out = t.quit();
    assert!(
        out.success(),
        "the tenant's session survived every reload:\n{out}"
    );
}

#[test]
fn reload_without_a_policy_file_says_so() {
    let b = Broker::start(&[]);
    let out = reload(&b);
    assert!(
        out.code == Some(1) && out.stderr.contains("started without --policy"),
        "{out}"
    );
    b.signal(libc::SIGHUP);
    wait_log(&b, "no policy file to reload", 1);
    let s = b.status().unwrap_or_else(|e| panic!("{e}"));
    assert!(s.tenants.is_empty(), "the broker still answers");
}
