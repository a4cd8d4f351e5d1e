//! Deduplication's keys from the device's bytes against the tenant's own frees (docs/dedup.md,
//! "Content key"): a large upload is keyed by a broker thread after the tenant's uploads pause,
//! while the tenant goes on and may free the memory.

use std::time::Duration;

use gpushare_tests::broker::Broker;
use gpushare_tests::compile_c;

/// tests/c/free_while_keying.c frees 64 MiB uploads at 16 delays spread over the window in which
/// the broker reads their bytes back to key them, downloading them meanwhile. Read through the
/// tenant's addresses, a key read could pass the CPU device's address check, wait behind the
/// downloads, and run after the free had unmapped the memory: an illegal address that lost the
/// group's context (the test failed 3 runs of 4 so, the tenant's next call failing with
/// `CUDA_ERROR_ILLEGAL_ADDRESS`; first seen as a flaky `scripts/bench-shim.sh`). Read through
/// the worker's own mapping of each granule, which keeps it alive, every round and the final
/// kernel succeed.
#[test]
fn freeing_memory_while_it_is_keyed_loses_nothing() {
    let b = Broker::start(&[]);
    let out = b
        .spawn_tenant(
            "freer",
            &compile_c("free_while_keying"),
            &[] as &[&str],
            &[],
        )
        .wait(Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{out:?}\n{}", b.log_tail(30));
    assert!(out.stdout.contains("rounds 16"), "{out:?}");
    let log = b.log_text();
    assert!(
        !log.contains("context is lost") && !log.contains("no longer valid device memory"),
        "{}",
        b.log_tail(30)
    );
}
