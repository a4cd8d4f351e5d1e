//! A tenant's host function holds only its own stream (docs/architecture.md, "Broker and
//! workers": gates wait in the stream). Two tenants of one group through the shim, on a
//! `gpushare broker --device cpu`: one whose host function sleeps, one synchronising one small
//! memset after another, each of which waits for a completion marker on the worker.

use std::time::Duration;

use gpushare_tests::broker::Broker;
use gpushare_tests::{compile_c, shared};

const RUN: Duration = Duration::from_secs(60);

/// The second tenant's 50 synchronisations all complete while the first tenant's host function
/// still sleeps (5 s): its completion markers did not wait behind the other tenant's gate.
#[test]
fn a_sleeping_host_function_holds_only_its_own_stream() {
    let _g = shared();
    let broker = Broker::start(&[]);
    let exe = compile_c("hostfn_gate");
    let mut sleeper = broker.spawn_tenant("sleeper", &exe, &["sleep", "5000"], &[]);
    if let Err(e) = sleeper.wait_line(RUN, |l| l == "sleeping") {
        panic!("the host function did not start: {e}");
    }
    let worker = broker
        .spawn_tenant("worker", &exe, &["work", "50"], &[])
        .wait(RUN);
    let woke_first = sleeper.stdout().lines().any(|l| l == "woke");
    let s = sleeper.wait(RUN);
    assert_eq!(worker.code, Some(0), "the working tenant: {worker}");
    assert!(worker.stdout.contains("done"), "{worker}");
    assert!(
        !woke_first,
        "the working tenant finished only after the other tenant's host function returned \
         ({:?} after it started): its completions waited behind that gate",
        worker.elapsed
    );
    assert_eq!(s.code, Some(0), "the sleeping tenant: {s}");
    assert!(s.stdout.contains("woke"), "{s}");
}
