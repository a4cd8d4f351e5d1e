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
        Weights::start_in(b, name, (bytes, bytes), seed, upload)
    }

    /// A tenant uploading `bytes` into an allocation of `alloc` bytes.
    fn start_in(
        b: &Broker,
        name: &str,
        (bytes, alloc): (u64, u64),
        seed: u32,
        upload: &str,
    ) -> Weights {
        let args = [
            bytes.to_string(),
            seed.to_string(),
            upload.to_string(),
            alloc.to_string(),
        ];
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

fn skipped_of(s: &StatusReport, name: &str) -> u64 {
    let t = s.tenants.iter().find(|t| t.name == name);
    t.map_or(0, |t| t.skipped_upload_bytes)
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
    // 4 MiB + 100 KiB allocated, 4 MiB + 50 KiB uploaded: the last granule's bytes of the
    // allocation are only partly uploaded.
    let size = (4 * MIB + 50 * 1024, 4 * MIB + 100 * 1024);
    let mut a = Weights::start_in(&b, "a", size, 3, "whole");
    let mut c = Weights::start_in(&b, "c", size, 3, "whole");
    let s = wait_for(&b, "whole granules shared", |s| saved(s) == 4 * MIB);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(saved(&status(&b)), 4 * MIB, "not the partial one: {s:?}");
    assert_eq!(a.ask("check", "check"), "check ok");
    assert_eq!(c.ask("check", "check"), "check ok");
    a.quit();
    c.quit();
}

/// An allocation's last granule is shared when uploads covered the allocation's bytes of it
/// (the rest of the granule is no one's, and zero): allocations smaller than a granule — but
/// above the slab size, which are packed instead — are shared too.
#[test]
fn an_allocations_last_granule_is_shared_when_its_bytes_are_uploaded() {
    let b = Broker::start(&[]);
    let size = 4 * MIB + 100 * 1024;
    let mut a = Weights::start(&b, "a", size, 4, "whole");
    let mut c = Weights::start(&b, "c", size, 4, "pieces");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(saved(&status(&b)), 0, "cut differently: different keys");
    let mut d = Weights::start(&b, "d", size, 4, "whole");
    wait_for(&b, "three granules shared", |s| saved(s) == 6 * MIB);
    let mut small = Vec::new();
    for name in ["s1", "s2"] {
        small.push(Weights::start(&b, name, 512 * 1024, 4, "whole"));
    }
    wait_for(&b, "the small ones too", |s| saved(s) == 8 * MIB);
    for w in [&mut a, &mut c, &mut d].into_iter().chain(small.iter_mut()) {
        assert_eq!(w.ask("check", "check"), "check ok");
        assert_eq!(w.ask("read", "read"), "read ok");
    }
    // A granule's tail is no one's, but a store past the allocation can still put bytes
    // there: a copy whose tail is not all zeros is never shared (its verification fails).
    let mut t1 = Weights::start(&b, "t1", 640 * 1024, 5, "whole");
    assert_eq!(t1.ask("tail", "tail"), "tail CUDA_SUCCESS");
    let mut t2 = Weights::start(&b, "t2", 640 * 1024, 5, "whole");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        saved(&status(&b)),
        8 * MIB,
        "t1's copy holds more than its key"
    );
    let t3 = Weights::start(&b, "t3", 640 * 1024, 5, "whole");
    wait_for(&b, "t3 joins t2's copy", |s| saved(s) == 10 * MIB);
    assert_eq!(t2.ask("check", "check"), "check ok");
    assert_eq!(t1.ask("check", "check"), "check ok");
    for w in [t1, t2, t3] {
        w.quit();
    }
    // Writing a shared small allocation copies on write, as any other.
    assert_eq!(small[0].ask("memset", "write"), "write ok");
    assert_eq!(small[1].ask("check", "check"), "check ok");
    for w in [a, c, d].into_iter().chain(small) {
        w.quit();
    }
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

/// Every example through the shim — the MLP in C, the cudarc MLP and the cudarc vector add —
/// two tenants of each at once, with dedup on (within a group and across groups) and off: the
/// same output bit for bit, and as the direct run's. (The cudarc examples are built by cargo,
/// not by this test: `cargo build --release --workspace --bins`.)
#[test]
fn examples_print_the_same_with_dedup_on_and_off() {
    let kernels = gpushare_tests::kernels_dir().display().to_string();
    let mlp_args = vec![
        kernels,
        "--name".into(),
        "d".into(),
        "--batches".into(),
        "3".into(),
    ];
    let built = |bin: &str| {
        gpushare_tests::find_build_output(bin)
            .unwrap_or_else(|_| panic!("{bin} not built: cargo build --release -p {bin}"))
    };
    let examples = [
        (
            gpushare_tests::compile_mlp().to_path_buf(),
            mlp_args.clone(),
        ),
        (built("gpushare-example-cudarc-mlp"), mlp_args),
        (built("gpushare-example-cudarc"), Vec::new()),
    ];
    let policies = [
        "[default]\ndedup = true\n",
        "[default]\ndedup = true\nisolation = \"tenant\"\n",
        "[default]\ndedup = false\n",
    ];
    for (exe, args) in &examples {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let direct = gpushare_tests::run_program(exe, &args, &[], WAIT);
        assert!(direct.success(), "{direct}");
        for policy in policies {
            let b = Broker::start_with_policy(Some(policy), &[]);
            let runs: Vec<Proc> = ["one", "two"]
                .iter()
                .map(|n| b.spawn_tenant(n, exe, &args, &[]))
                .collect();
            for p in runs {
                let out = p.wait(WAIT);
                assert!(out.success(), "{} {policy}: {out:?}", exe.display());
                assert_eq!(out.stdout, direct.stdout, "{} {policy}", exe.display());
            }
        }
    }
}

/// Every session its own isolation group (its own worker).
const GROUP_PER_TENANT: &str = "[default]\nisolation = \"tenant\"\n";

fn group_of(s: &StatusReport, name: &str) -> String {
    s.tenants
        .iter()
        .find(|t| t.name == name)
        .map(|t| t.group.clone())
        .unwrap_or_default()
}

/// Tenants of different isolation groups (different workers) share one copy: the copy is
/// exported once by the worker that holds it and imported read-only by the others. A write
/// copies on write in the writer's group only; the copy outlives the worker that first held
/// it while another group still maps it.
#[test]
fn tenants_of_different_groups_share_one_copy() {
    let b = Broker::start_with_policy(Some(GROUP_PER_TENANT), &[]);
    let mut a = Weights::start(&b, "a", 16 * MIB, 21, "whole");
    let mut c = Weights::start(&b, "c", 16 * MIB, 21, "whole");
    let s = wait_for(&b, "16 MiB shared across groups", |s| {
        saved(s) == 16 * MIB && shared_of(s, "a") == 16 * MIB && shared_of(s, "c") == 16 * MIB
    });
    assert_ne!(group_of(&s, "a"), group_of(&s, "c"), "{s:?}");
    let mut d = Weights::start(&b, "d", 16 * MIB, 21, "async");
    wait_for(&b, "three groups, one copy", |s| {
        saved(s) == 32 * MIB && shared_of(s, "d") == 16 * MIB
    });
    for w in [&mut a, &mut c, &mut d] {
        assert_eq!(w.ask("check", "check"), "check ok");
        assert_eq!(w.ask("read", "read"), "read ok");
    }
    // A kernel writing c's weights (the whole allocation counts as written): copy-on-write
    // in group c; a and d keep the shared bytes.
    assert_eq!(c.ask("kernel", "write"), "write ok");
    wait_for(&b, "c's granules private", |s| {
        shared_of(s, "c") == 0 && saved(s) == 16 * MIB
    });
    for w in [&mut a, &mut d] {
        assert_eq!(w.ask("check", "check"), "check ok");
    }
    // The worker that first held the copy goes: d's import keeps the memory, and a tenant of
    // a new group imports it from d's worker.
    a.quit();
    wait_for(&b, "d alone on the copy", |s| {
        s.tenants.iter().all(|t| t.name != "a") && saved(s) == 0
    });
    assert_eq!(d.ask("check", "check"), "check ok");
    let mut e = Weights::start(&b, "e", 16 * MIB, 21, "whole");
    let s = wait_for(&b, "e joins d's copy", |s| {
        saved(s) == 16 * MIB && shared_of(s, "e") == 16 * MIB && shared_of(s, "d") == 16 * MIB
    });
    // Found by the prefix key d's import took from a's copy: e's upload is not copied.
    assert_eq!(skipped_of(&s, "e"), 16 * MIB, "{s:?}");
    for w in [&mut c, &mut d, &mut e] {
        assert_eq!(w.ask("check", "check"), "check ok");
        assert_eq!(w.ask("read", "read"), "read ok");
    }
    c.quit();
    d.quit();
    e.quit();
    wait_for(&b, "nothing saved", |s| {
        saved(s) == 0 && s.tenants.is_empty()
    });
}

/// A store the broker cannot see into a copy imported from another group faults in the
/// writer's group only: the group holding the copy keeps running with its bytes intact.
#[test]
fn a_hidden_store_into_another_groups_copy_faults_only_the_writer() {
    let b = Broker::start_with_policy(Some(GROUP_PER_TENANT), &[]);
    let mut a = Weights::start(&b, "a", 4 * MIB, 23, "whole");
    let mut writer = Weights::start(&b, "writer", 4 * MIB, 23, "whole");
    wait_for(&b, "4 MiB shared", |s| saved(s) == 4 * MIB);
    assert_eq!(
        writer.ask("hidden", "hidden"),
        "hidden CUDA_ERROR_ILLEGAL_ADDRESS"
    );
    wait_for(&b, "the fault counted", |s| s.devices[0].dedup_faults >= 1);
    assert_eq!(a.ask("check", "check"), "check ok");
    assert_eq!(a.ask("read", "read"), "read ok");
    drop(writer);
    a.quit();
}

/// SIGKILL of the tenant whose worker holds the copy, then of the importer: the others keep
/// their bytes, and nothing is left behind.
#[test]
fn killing_the_exporting_tenant_leaves_the_importers_intact() {
    let b = Broker::start_with_policy(Some(GROUP_PER_TENANT), &[]);
    let a = Weights::start(&b, "a", 8 * MIB, 25, "whole");
    let mut c = Weights::start(&b, "c", 8 * MIB, 25, "whole");
    let d = Weights::start(&b, "d", 8 * MIB, 25, "whole");
    wait_for(&b, "16 MiB saved", |s| saved(s) == 16 * MIB);
    a.p.signal(libc::SIGKILL);
    b.wait_session_freed("a", WAIT).expect("a's session freed");
    d.p.signal(libc::SIGKILL);
    b.wait_session_freed("d", WAIT).expect("d's session freed");
    let s = wait_for(&b, "c alone", |s| s.tenants.len() == 1 && saved(s) == 0);
    assert_eq!(shared_of(&s, "c"), 0);
    assert_eq!(c.ask("check", "check"), "check ok");
    assert_eq!(c.ask("read", "read"), "read ok");
    c.quit();
}

/// `dedup = "group"`: the tenant shares within its isolation group only — its copy is not
/// imported by another group, and it imports none.
#[test]
fn a_group_scoped_tenant_shares_only_within_its_group() {
    let policy = "[default]\nisolation = \"tenant\"\n[tenants.private]\ndedup = \"group\"\n";
    let b = Broker::start_with_policy(Some(policy), &[]);
    let mut private = Weights::start(&b, "private", 4 * MIB, 27, "whole");
    let mut a = Weights::start(&b, "a", 4 * MIB, 27, "whole");
    let mut c = Weights::start(&b, "c", 4 * MIB, 27, "whole");
    // a and c share (a's copy, imported by c); private keeps its own.
    let s = wait_for(&b, "a and c share", |s| saved(s) == 4 * MIB);
    assert_eq!(shared_of(&s, "private"), 0, "{s:?}");
    // A second group-scoped tenant, after the copy is resident elsewhere, imports nothing
    // (it loads the same weights, alone in its group).
    let mut later = Weights::start(&b, "private", 4 * MIB, 27, "whole");
    // Its keys are computed 100 ms after its upload; a join would follow at once.
    std::thread::sleep(Duration::from_millis(600));
    let s = status(&b);
    assert_eq!(saved(&s), 4 * MIB, "nothing more is shared: {s:?}");
    assert!(s
        .tenants
        .iter()
        .all(|t| t.name != "private" || t.shared_bytes == 0));
    for w in [&mut private, &mut a, &mut c, &mut later] {
        assert_eq!(w.ask("check", "check"), "check ok");
    }
    for w in [private, a, c, later] {
        w.quit();
    }
    wait_for(&b, "all gone", |s| s.tenants.is_empty());
    // In a group with a tenant that imported another group's copy, a group-scoped tenant does
    // not join the import (what it holds would be seen from the group it came from).
    let policy = "[tenants.ta]\ngroup = \"A\"\n[tenants.tb]\ngroup = \"B\"\n\
                  [tenants.private]\ngroup = \"B\"\ndedup = \"group\"\n";
    let b = Broker::start_with_policy(Some(policy), &[]);
    let ta = Weights::start(&b, "ta", 4 * MIB, 33, "whole");
    let tb = Weights::start(&b, "tb", 4 * MIB, 33, "whole");
    wait_for(&b, "tb imports ta's copy", |s| saved(s) == 4 * MIB);
    let mut g = Weights::start(&b, "private", 4 * MIB, 33, "whole");
    std::thread::sleep(Duration::from_millis(600));
    let s = status(&b);
    assert_eq!(
        saved(&s),
        4 * MIB,
        "the group-scoped tenant keeps its own: {s:?}"
    );
    assert_eq!(shared_of(&s, "private"), 0);
    assert_eq!(g.ask("check", "check"), "check ok");
    for w in [ta, tb, g] {
        w.quit();
    }
}

/// Small allocations are pieces of slabs: 200 of about 4 KiB each cost one granule of device
/// memory and of the quota (not 200), keep their bytes apart, and empty slabs are given back
/// (but one, kept for the next small allocations and not charged while empty).
#[test]
fn small_allocations_share_a_granule_and_fit_a_small_quota() {
    let b = Broker::start_with_policy(Some("[default]\nmemory_quota = \"8MiB\"\n"), &[]);
    let mut w = Weights::start(&b, "w", 4 * MIB, 29, "whole");
    let held = |b: &Broker| {
        status(b)
            .tenants
            .iter()
            .find(|t| t.name == "w")
            .map_or(0, |t| t.memory_bytes)
    };
    assert_eq!(held(&b), 4 * MIB);
    assert_eq!(w.ask("smalls 200", "smalls"), "smalls ok");
    assert_eq!(held(&b), 6 * MIB, "one slab of 2 MiB for 200 allocations");
    assert_eq!(w.ask("smalls 300", "smalls"), "smalls ok");
    assert_eq!(
        held(&b),
        8 * MIB,
        "a second slab; 500 granules would not fit the quota"
    );
    assert_eq!(
        w.ask("check", "check"),
        "check ok",
        "the weights are untouched"
    );
    assert_eq!(w.ask("freesmalls", "freesmalls"), "freesmalls done");
    assert_eq!(
        held(&b),
        4 * MIB,
        "empty slabs go, but one, kept uncharged for the next"
    );
    assert_eq!(w.ask("smalls 10", "smalls"), "smalls ok");
    assert_eq!(
        held(&b),
        6 * MIB,
        "the kept slab serves them, charged again"
    );
    w.quit();
    wait_for(&b, "everything freed", |s| s.tenants.is_empty());
}
