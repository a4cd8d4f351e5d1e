//! Deduplication's keys from the device's bytes (docs/dedup.md, "Content key"): a large upload
//! is keyed by a broker thread after the tenant's uploads pause, while the tenant goes on and may
//! free the memory; the prefix keys those reads give let a later upload of the same content skip
//! its copy.

use std::time::Duration;

use gpushare_client::proto::StatusReport;
use gpushare_tests::broker::Broker;
use gpushare_tests::compile_c;
use gpushare_tests::process::Proc;

const MIB: u64 = 1 << 20;
const WAIT: Duration = Duration::from_secs(60);

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

/// A `tests/c/dedup.c` tenant that uploaded 16 MiB of weights of `seed` with `how`.
fn load(b: &Broker, name: &str, seed: u32, how: &str) -> Proc {
    let args = [(16 * MIB).to_string(), seed.to_string(), how.to_string()];
    let mut p = b.spawn_tenant(name, &compile_c("dedup"), &args, &[]);
    p.wait_line(WAIT, |l| l.starts_with("loaded"))
        .unwrap_or_else(|e| panic!("{name}: {e}\n--- broker ---\n{}", b.log_tail(40)));
    p
}

/// The skipped upload bytes of the latest session named `name` (an earlier one may still be
/// leaving).
fn skipped(s: &StatusReport, name: &str) -> u64 {
    s.tenants
        .iter()
        .filter(|t| t.name == name)
        .max_by_key(|t| t.session_id)
        .map_or(u64::MAX, |t| t.skipped_upload_bytes)
}

/// A large upload is probed first by the prefix key of its first granule (64 KiB), which the
/// index knows for copies keyed from the device's bytes: once two tenants share the weights, a
/// third tenant's upload of them — one synchronous 16 MiB copy (streamed unless its first granule
/// is resident) or an asynchronous one — is not copied at all, and other content is.
#[test]
fn an_upload_of_resident_content_is_not_copied() {
    let b = Broker::start(&[]);
    for how in ["whole", "async"] {
        let a = load(&b, "a", 5, how);
        let c = load(&b, "c", 5, how);
        b.wait_status("16 MiB shared", WAIT, |s| {
            s.devices[0].saved_mem == 16 * MIB
        })
        .unwrap_or_else(|e| panic!("{how}: {e}\n--- broker ---\n{}", b.log_tail(60)));
        let d = load(&b, "d", 5, how);
        let other = load(&b, "other", 6, how);
        let s = b
            .wait_status("d's upload skipped", WAIT, |s| skipped(s, "d") == 16 * MIB)
            .unwrap_or_else(|e| panic!("{how}: {e}\n--- broker ---\n{}", b.log_tail(60)));
        assert_eq!(
            skipped(&s, "a"),
            0,
            "{how}: the first upload is copied: {s:?}"
        );
        assert_eq!(
            skipped(&s, "other"),
            0,
            "{how}: other content is copied: {s:?}"
        );
        for mut p in [a, c, d, other] {
            p.write_stdin("check\n");
            p.wait_line(WAIT, |l| l.starts_with("check"))
                .map(|l| assert_eq!(l, "check ok", "{how}"))
                .unwrap_or_else(|e| panic!("{how}: {e}"));
            p.write_stdin("quit\n");
            assert_eq!(p.wait(WAIT).code, Some(0), "{how}");
        }
    }
}
