//! Deduplication end to end (shim → broker → worker on the CPU device; docs/dedup.md): tenants
//! that upload the same weights share one copy (status shows it), every write path gives the
//! writer a private copy first and leaves the others' bytes alone, different content and
//! partial granules are never shared, the policy can take a tenant out, and a tenant killed
//! mid-run leaves the others intact and nothing behind.

use std::time::{Duration, Instant};

use gpushare_client::proto::StatusReport;
use gpushare_tests::broker::Broker;
use gpushare_tests::compile_c;
use gpushare_tests::process::Proc;

const MIB: u64 = 1 << 20;
const WAIT: Duration = Duration::from_secs(60);

/// A `tests/c/dedup.c` tenant that has loaded its weights.
struct Weights {
    p: Proc,
    asked: std::collections::HashMap<String, usize>,
}

impl Weights {
    fn start(b: &Broker, name: &str, bytes: u64, seed: u32, upload: &str) -> Weights {
        let args = [bytes.to_string(), seed.to_string(), upload.to_string()];
        let mut p = b.spawn_tenant(name, &compile_c("dedup"), &args, &[]);
        p.wait_line(WAIT, |l| l.starts_with("loaded"))
            .unwrap_or_else(|e| panic!("{name}: {e}\n--- broker ---\n{}", b.log_tail(40)));
        Weights {
            p,
            asked: Default::default(),
        }
    }

    /// Sends `cmd` and returns the answer: the next line starting with `prefix`.
    fn ask(&mut self, cmd: &str, prefix: &str) -> String {
        let n = {
            let c = self.asked.entry(prefix.to_string()).or_default();
            *c += 1;
            *c
        };
        self.p.write_stdin(&format!("{cmd}\n"));
        let start = Instant::now();
        loop {
            let out = self.p.stdout();
            let lines: Vec<&str> = out.lines().filter(|l| l.starts_with(prefix)).collect();
            if lines.len() >= n {
                return lines[n - 1].to_string();
            }
            assert!(
                start.elapsed() < WAIT,
                "no answer to {cmd}:\n{out}\n{}",
                self.p.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn quit(mut self) {
        self.p.write_stdin("quit\n");
        let out = self.p.wait(WAIT);
        assert_eq!(out.code, Some(0), "{out:?}");
    }
}

fn saved(s: &StatusReport) -> u64 {
    s.devices[0].saved_mem
}

fn shared_of(s: &StatusReport, name: &str) -> u64 {
    s.tenants
        .iter()
        .find(|t| t.name == name)
        .map_or(0, |t| t.shared_bytes)
}

fn status(b: &Broker) -> StatusReport {
    b.status().expect("status")
}

/// Waits until the status satisfies `f` (remaps run after the upload returns).
fn wait_for(b: &Broker, what: &str, f: impl Fn(&StatusReport) -> bool) -> StatusReport {
    b.wait_status(what, Duration::from_secs(20), f)
        .unwrap_or_else(|e| panic!("{e}\n--- broker ---\n{}", b.log_tail(60)))
}

#[test]
fn tenants_uploading_the_same_weights_share_one_copy() {
    let b = Broker::start(&[]);
    for upload in ["whole", "pieces", "async"] {
        let mut a = Weights::start(&b, "a", 16 * MIB, 1, upload);
        assert_eq!(saved(&status(&b)), 0, "{upload}: one tenant shares nothing");
        let mut c = Weights::start(&b, "c", 16 * MIB, 1, upload);
        // Remaps finish after the uploads return: wait for all of them.
        let s = wait_for(&b, "16 MiB shared", |s| {
            saved(s) == 16 * MIB && shared_of(s, "a") == 16 * MIB && shared_of(s, "c") == 16 * MIB
        });
        assert_eq!(shared_of(&s, "a"), 16 * MIB, "{upload}: {s:?}");
        assert_eq!(shared_of(&s, "c"), 16 * MIB, "{upload}: {s:?}");
        let held: u64 = s.tenants.iter().map(|t| t.memory_bytes).sum();
        assert_eq!(s.devices[0].used_mem, held - 16 * MIB, "counted once");
        for w in [&mut a, &mut c] {
            assert_eq!(w.ask("check", "check"), "check ok", "{upload}");
            assert_eq!(w.ask("read", "read"), "read ok", "{upload}");
        }
        assert_eq!(
            saved(&status(&b)),
            16 * MIB,
            "{upload}: kernels that only read the weights keep them shared"
        );
        a.quit();
        let s = wait_for(&b, "nothing saved with one user", |s| saved(s) == 0);
        assert_eq!(shared_of(&s, "c"), 0);
        assert_eq!(
            c.ask("check", "check"),
            "check ok",
            "{upload}: the last user keeps it"
        );
        c.quit();
    }
}

#[test]
fn every_write_path_copies_on_write() {
    let b = Broker::start(&[]);
    for how in ["memset", "htod", "dtod", "kernel", "struct"] {
        let mut a = Weights::start(&b, "a", 8 * MIB, 7, "whole");
        let mut c = Weights::start(&b, "c", 8 * MIB, 7, "whole");
        wait_for(&b, "8 MiB shared", |s| saved(s) == 8 * MIB);
        assert_eq!(
            c.ask(how, "write"),
            "write ok",
            "{how}: the writer sees its write"
        );
        assert_eq!(
            a.ask("check", "check"),
            "check ok",
            "{how}: the other is intact"
        );
        assert_eq!(a.ask("read", "read"), "read ok", "{how}");
        let s = status(&b);
        assert!(
            saved(&s) < 8 * MIB,
            "{how}: the written granules are the writer's own now: {s:?}"
        );
        assert_eq!(c.ask("check", "check"), "check ok", "{how}");
        a.quit();
        c.quit();
    }
}

#[test]
fn different_content_and_partial_granules_are_never_shared() {
    let b = Broker::start(&[]);
    let a = Weights::start(&b, "a", 4 * MIB, 1, "whole");
    let c = Weights::start(&b, "c", 4 * MIB, 2, "whole");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(saved(&status(&b)), 0, "different seeds");
    a.quit();
    c.quit();
    // 4 MiB + 100 KiB: the last granule is only partly uploaded.
    let size = 4 * MIB + 100 * 1024;
    let mut a = Weights::start(&b, "a", size, 3, "whole");
    let mut c = Weights::start(&b, "c", size, 3, "whole");
    let s = wait_for(&b, "whole granules shared", |s| saved(s) == 4 * MIB);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(saved(&status(&b)), 4 * MIB, "not the partial one: {s:?}");
    assert_eq!(a.ask("check", "check"), "check ok");
    assert_eq!(c.ask("check", "check"), "check ok");
    a.quit();
    c.quit();
}

#[test]
fn the_policy_can_take_a_tenant_out_of_deduplication() {
    let b = Broker::start_with_policy(Some("[tenants.private]\ndedup = false\n"), &[]);
    let mut a = Weights::start(&b, "a", 4 * MIB, 5, "whole");
    let mut p = Weights::start(&b, "private", 4 * MIB, 5, "whole");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(saved(&status(&b)), 0);
    assert_eq!(p.ask("check", "check"), "check ok");
    assert_eq!(a.ask("check", "check"), "check ok");
    a.quit();
    p.quit();
}

#[test]
fn a_tenant_killed_mid_run_leaves_the_others_intact() {
    let b = Broker::start(&[]);
    let mut a = Weights::start(&b, "a", 8 * MIB, 9, "whole");
    let c = Weights::start(&b, "c", 8 * MIB, 9, "whole");
    wait_for(&b, "8 MiB shared", |s| saved(s) == 8 * MIB);
    c.p.signal(libc::SIGKILL);
    b.wait_session_freed("c", WAIT)
        .expect("the killed tenant's session is freed");
    let s = wait_for(&b, "nothing saved", |s| saved(s) == 0);
    assert_eq!(s.tenants.len(), 1);
    assert_eq!(a.ask("check", "check"), "check ok");
    assert_eq!(a.ask("read", "read"), "read ok");
    a.quit();
}

/// A store the broker cannot see (through a pointer kept in device memory) into shared weights
/// hits the read-only mapping: the writer gets `CUDA_ERROR_ILLEGAL_ADDRESS`, the broker logs the
/// tenant and its read-only granules and counts it. The same store works without dedup.
#[test]
fn a_store_the_broker_cannot_see_faults_and_is_named() {
    let b = Broker::start_with_policy(Some("[tenants.plain]\ndedup = false\n"), &[]);
    let mut plain = Weights::start(&b, "plain", 4 * MIB, 11, "whole");
    assert_eq!(plain.ask("hidden", "hidden"), "hidden CUDA_SUCCESS");
    plain.quit();
    let _a = Weights::start(&b, "a", 4 * MIB, 11, "whole");
    let mut writer = Weights::start(&b, "writer", 4 * MIB, 11, "whole");
    wait_for(&b, "4 MiB shared", |s| saved(s) == 4 * MIB);
    assert_eq!(
        writer.ask("hidden", "hidden"),
        "hidden CUDA_ERROR_ILLEGAL_ADDRESS"
    );
    let s = wait_for(&b, "the fault counted", |s| s.devices[0].dedup_faults >= 1);
    assert!(s.devices[0].dedup_faults >= 1);
    let log = b.log_text();
    let line = log
        .lines()
        .find(|l| {
            l.contains("maps deduplicated memory read-only") || l.contains("memory read-only:")
        })
        .unwrap_or_else(|| panic!("no fault line:\n{}", b.log_tail(40)));
    assert!(
        line.contains("tenant=writer") && line.contains("granules=0x"),
        "{line}"
    );
}

/// A tenant killed while it uploads (some granules joined, some not yet) leaves the other
/// tenant intact and the index consistent: a later tenant of the same weights shares again.
#[test]
fn a_tenant_killed_mid_upload_leaves_the_index_consistent() {
    let b = Broker::start(&[]);
    let size = 64 * MIB;
    let mut a = Weights::start(&b, "a", size, 13, "pieces");
    let args = [size.to_string(), "13".to_string(), "pieces".to_string()];
    let c = b.spawn_tenant("c", &compile_c("dedup"), &args, &[]);
    // Killed once its allocation exists and some of its granules are shared (64 KiB pieces:
    // the upload takes many calls).
    wait_for(&b, "c uploading", |s| {
        s.tenants
            .iter()
            .any(|t| t.name == "c" && t.memory_bytes >= size)
            && saved(s) > 0
    });
    assert!(
        !c.stdout().contains("loaded"),
        "the upload was still running"
    );
    c.signal(libc::SIGKILL);
    b.wait_session_freed("c", WAIT)
        .expect("the killed tenant's session is freed");
    wait_for(&b, "nothing saved", |s| {
        saved(s) == 0 && s.tenants.len() == 1
    });
    assert_eq!(a.ask("check", "check"), "check ok");
    let mut d = Weights::start(&b, "d", size, 13, "pieces");
    wait_for(&b, "shared again", |s| saved(s) == size);
    assert_eq!(d.ask("check", "check"), "check ok");
    assert_eq!(a.ask("read", "read"), "read ok");
    a.quit();
    d.quit();
}

/// The MLP example through the shim, two tenants at once, with dedup on and off: the same
/// output bit for bit (and as the direct run's).
#[test]
fn examples_print_the_same_with_dedup_on_and_off() {
    let exe = gpushare_tests::compile_mlp().to_path_buf();
    let kernels = gpushare_tests::kernels_dir().display().to_string();
    let args = [kernels.as_str(), "--name", "d", "--batches", "3"];
    let direct = gpushare_tests::run_program(&exe, &args, &[], WAIT);
    assert!(direct.success(), "{direct}");
    for policy in ["[default]\ndedup = true\n", "[default]\ndedup = false\n"] {
        let b = Broker::start_with_policy(Some(policy), &[]);
        let runs: Vec<Proc> = ["one", "two"]
            .iter()
            .map(|n| b.spawn_tenant(n, &exe, &args, &[]))
            .collect();
        for p in runs {
            let out = p.wait(WAIT);
            assert!(out.success(), "{policy}: {out:?}");
            assert_eq!(out.stdout, direct.stdout, "{policy}");
        }
    }
}
