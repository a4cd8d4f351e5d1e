//! Streamed pageable copies (`STREAMED_COPY`, docs/architecture.md "Copies") through the shim and
//! a broker on the CPU device: that they are used, that the broker declines what deduplication
//! must hash on its way, and that a tenant that stops feeding one costs no one else more than
//! the stall limit. Correctness of the bytes (direct against through the shim) is
//! `tests/c/streamed_copy.c` in `tests/tests/shim_outputs.rs`.
//!
//! Prerequisites: `cargo build --release -p gpushare-cpu -p gpushare-broker -p gpushare-shim`.

use std::thread;
use std::time::{Duration, Instant};

use gpushare_tests::broker::{fail_all, Broker};
use gpushare_tests::{compile_c, shared};

const RUN: Duration = Duration::from_secs(120);
const SETTLE: Duration = Duration::from_secs(20);

/// The group's worker's streamed-copy counts: run, declined, aborted.
fn streamed(broker: &Broker) -> [u64; 3] {
    let s = broker.status().expect("status");
    s.workers
        .iter()
        .fold([0; 3], |acc, w| [0, 1, 2].map(|i| acc[i] + w.streamed[i]))
}

/// `streamed_copy.c` through the shim: its large synchronous pageable copies are streamed (the
/// worker ran them), its repeated upload of resident content is declined (and still arrives:
/// the program checks its bytes), and nothing is aborted.
#[test]
fn large_pageable_copies_are_streamed_and_resident_uploads_declined() {
    let _g = shared();
    let broker = Broker::start(&[]);
    let exe = compile_c("streamed_copy");
    let out = broker
        .spawn_tenant("streamer", &exe, &[] as &[&str], &[])
        .wait(RUN);
    assert_eq!(out.code, Some(0), "streamed_copy through the shim: {out}");
    let [run, declined, aborted] = streamed(&broker);
    let mut failures = Vec::new();
    // 16 round trips, 5 single copies, 36 by threads, 3 over fresh memory: 60 streamed.
    if run < 55 {
        failures.push(format!("only {run} copies were streamed"));
    }
    if declined != 1 {
        failures.push(format!(
            "{declined} copies declined; the one repeated upload of resident content should be"
        ));
    }
    if aborted != 0 {
        failures.push(format!("{aborted} streamed copies aborted"));
    }
    fail_all(&failures);
}

/// A tenant stopped (SIGSTOP) in the middle of a streamed copy holds its stream on the worker;
/// the broker aborts the copy within the stall limit, the group's other tenant completes its
/// own copies meanwhile, and the stopped tenant, continued, copies the same bytes again the
/// ordinary way: it goes on looping with every byte checked (`shim_loop` exits 3 on a failed
/// call or a wrong byte).
#[test]
fn a_stalled_streamed_copy_is_aborted() {
    let _g = shared();
    let broker = Broker::start(&[]);
    let looper = compile_c("shim_loop");
    let copying = ["--alloc-mib", "256", "--copy", "1"];
    let mut victim = broker.spawn_tenant("stopped", &looper, &copying, &[]);
    if let Err(e) = victim.wait_line(RUN, |l| l == "ready") {
        panic!("the copier did not start looping: {e}");
    }
    // Stop it until a stop lands inside a copy (most of each iteration is copying).
    let mut aborted = false;
    for attempt in 0..8 {
        thread::sleep(Duration::from_millis(40 + 17 * attempt));
        victim.signal(libc::SIGSTOP);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(4) && streamed(&broker)[2] == 0 {
            thread::sleep(Duration::from_millis(50));
        }
        if streamed(&broker)[2] > 0 {
            aborted = true;
            break;
        }
        victim.signal(libc::SIGCONT);
    }
    let mut failures = Vec::new();
    if !aborted {
        failures.push("no stop of the copier ever stalled a streamed copy".to_string());
    }
    // The group's other tenant copies while the copier is still stopped.
    let other = broker
        .spawn_tenant(
            "other",
            &looper,
            &[&copying[..], &["--iters", "2"]].concat(),
            &[],
        )
        .wait(RUN);
    if other.code != Some(0) {
        failures.push(format!("the group's other tenant failed: {other}"));
    }
    victim.signal(libc::SIGCONT);
    // A few more iterations, each copying 256 MiB up and back and checking it.
    thread::sleep(Duration::from_secs(3));
    if !victim.running() {
        failures.push("the continued copier stopped by itself".to_string());
    }
    victim.signal(libc::SIGKILL);
    let v = victim.wait(SETTLE);
    if v.signal != Some(libc::SIGKILL)
        || v.stderr.contains("shim_loop")
        || v.stderr.contains("FAIL")
    {
        failures.push(format!("the continued copier failed: {v}"));
    }
    fail_all(&failures);
}
