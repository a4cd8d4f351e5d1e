//! Copies over modelled time ([`super::sim`]'s device: one compute and two copy engines): copies
//! never wait behind another tenant's compute, and a bulk upload is cut into chunks so that
//! another tenant's small copy waits for at most a chunk or two of it, not for all of it.

use super::cost::{Engine, Nanos};
use super::queue::{QueueConfig, MIN_COPY_CHUNK, MIN_COPY_CHUNK_NS};
use super::sim::{idle, params, saturate, Sim, SimJob, MS, US};
use super::TenantId;
use crate::policy::Priority;

/// Bytes per modelled nanosecond of a copy (`SimJob`'s transfer class: 10 bytes per ns).
const BYTES_PER_NS: u64 = 10;

fn copy(tenant: TenantId, bytes: u64, sliceable: bool, at: Nanos) -> SimJob {
    SimJob {
        tenant,
        kernel: None,
        engine: Engine::H2D,
        ns: bytes / BYTES_PER_NS,
        sliceable,
        submitted: at,
        last: true,
        stream: 0,
    }
}

fn push(sim: &mut Sim, job: SimJob) {
    let (tenant, at) = (job.tenant, job.submitted);
    sim.tenants.get_mut(&tenant).expect("tenant").outstanding += 1;
    assert!(sim.q.push(tenant, job, at).is_ok());
}

#[test]
fn copies_do_not_wait_behind_another_tenants_compute() {
    let mut sim = Sim::new(QueueConfig::default());
    let n = Priority::Normal;
    sim.tenant(1, params(1, n, None), saturate(5 * MS, 1, false));
    sim.tenant(2, params(1, n, None), idle());
    sim.run(100 * MS);
    let start = sim.now;
    push(&mut sim, copy(2, 3_000_000, false, start));
    sim.run(start + 10 * MS);
    assert_eq!(
        sim.tenants[&2].latencies,
        vec![300 * US],
        "the copy engine was free"
    );
}

/// Tenant 1 uploads 512 MiB (weights) in one copy at time 0; tenant 2 (priority `small`)
/// uploads 64 KiB every 2 ms, each waited for. Returns tenant 2's worst latency and the
/// upload's end.
fn small_copies_beside_an_upload(small: Priority, cfg: QueueConfig) -> (Nanos, Nanos) {
    let mut sim = Sim::new(cfg);
    sim.tenant(1, params(1, Priority::Normal, None), idle());
    sim.tenant(2, params(1, small, None), idle());
    // Teach the model the engine's bandwidth first, as a tenant's earlier copies would.
    push(&mut sim, copy(2, 4 << 20, false, 0));
    sim.run(MS);
    let upload = copy(1, 512 << 20, true, sim.now);
    push(&mut sim, upload);
    let mut at = sim.now + 100 * US + 7;
    for _ in 0..20 {
        sim.run(at);
        push(&mut sim, copy(2, 64 << 10, false, at));
        at += 2 * MS;
    }
    sim.run(at + 200 * MS);
    assert_eq!(sim.tenants[&1].latencies.len(), 1, "the upload finished");
    let l = &sim.tenants[&2].latencies;
    assert_eq!(l.len(), 21, "every small copy finished");
    (
        *l[1..].iter().max().expect("samples"),
        sim.tenants[&1].latencies[0],
    )
}

#[test]
fn a_high_priority_copy_waits_at_most_two_chunks_of_a_bulk_upload() {
    let own = (64 << 10) / BYTES_PER_NS;
    // A chunk: the floors in bytes and in time, in whole 64 KiB (`fair.rs`, `copy_chunks`).
    let chunk = MIN_COPY_CHUNK
        .max(MIN_COPY_CHUNK_NS * BYTES_PER_NS)
        .next_multiple_of(64 << 10)
        / BYTES_PER_NS;
    let cfg = QueueConfig::default();
    let (worst, upload) = small_copies_beside_an_upload(Priority::High, cfg);
    eprintln!(
        "sim: a 64 KiB high-priority copy beside a 512 MiB upload waits at most {} us \
         (own {} us, a chunk {} us; the upload takes {} ms)",
        worst / US,
        own / US,
        chunk / US,
        upload / MS
    );
    // The chunk running when it arrives, at most one queued behind it, then its own copy.
    assert!(worst <= 2 * chunk + own, "worst latency {worst} ns");
    // Chunking costs the upload nothing but the small copies' time.
    let alone = (512u64 << 20) / BYTES_PER_NS;
    assert!(upload <= alone + 21 * own + MS, "upload took {upload} ns");

    // Without cutting copies, the small copy waits for the whole upload.
    let uncut = QueueConfig {
        slicing: false,
        ..cfg
    };
    let (worst_uncut, _) = small_copies_beside_an_upload(Priority::High, uncut);
    assert!(worst_uncut >= 10 * MS, "uncut: {worst_uncut} ns");
}

#[test]
fn an_equal_priority_copy_waits_at_most_a_quantum_of_a_bulk_upload() {
    let cfg = QueueConfig::default();
    let own = (64 << 10) / BYTES_PER_NS;
    let (worst, _) = small_copies_beside_an_upload(Priority::Normal, cfg);
    eprintln!(
        "sim: a 64 KiB copy of equal priority beside a 512 MiB upload waits at most {} us",
        worst / US
    );
    // A chunk of at most half a quantum runs, a quantum waits behind it, then its own copy.
    assert!(
        worst <= cfg.quantum + cfg.quantum / 2 + own,
        "worst latency {worst} ns"
    );
}

/// One tenant, two streams: kernels of 4 ms queued on stream 1 fill the compute engine's window;
/// a copy on stream 2, queued behind them, goes to its free copy engine at once.
#[test]
fn another_streams_copy_passes_kernels_waiting_for_the_compute_engine() {
    let mut sim = Sim::new(QueueConfig::default());
    sim.tenant(1, params(1, Priority::Normal, None), idle());
    let kernel = |at: Nanos| SimJob {
        stream: 1,
        ..Sim::kernel(1, "k", 4 * MS, 1, false, at)
    };
    let upload = |at: Nanos| SimJob {
        stream: 2,
        ..copy(1, 10_000_000, false, at)
    };
    // Teach the model both shapes.
    push(&mut sim, kernel(0));
    push(&mut sim, upload(0));
    sim.run(10 * MS);
    let at = sim.now;
    for _ in 0..4 {
        push(&mut sim, kernel(at));
    }
    push(&mut sim, upload(at));
    sim.run(at + 30 * MS);
    let l = &sim.tenants[&1].latencies;
    assert_eq!(l.len(), 7, "{l:?}");
    // The copy (1 ms) finished first, while the kernels ran one after another.
    let copy_latency = l[2];
    assert_eq!(copy_latency, MS, "the copy waited: {l:?}");
    assert_eq!(l[3..], [4 * MS, 8 * MS, 12 * MS, 16 * MS], "{l:?}");
}

/// Two tenants of equal weight keep the upload engine busy with 4 MiB copies; tenant 2's
/// completions carry no device time (a streamed copy's runs, completed by a host function) and
/// are charged their estimate. Returns the copies each completed in the first 100 ms.
fn uploads_measured_and_not() -> (usize, usize) {
    let mut sim = Sim::new(QueueConfig::default());
    sim.tenant(1, params(1, Priority::Normal, None), idle());
    sim.tenant(2, params(1, Priority::Normal, None), idle());
    sim.tenants.get_mut(&2).expect("tenant").unmeasured = true;
    // Teach the model the engine's bandwidth first, as earlier copies would.
    push(&mut sim, copy(1, 4 << 20, false, 0));
    sim.run(MS);
    let at = sim.now;
    for _ in 0..200 {
        push(&mut sim, copy(1, 4 << 20, false, at));
        push(&mut sim, copy(2, 4 << 20, false, at));
    }
    sim.run(at + 100 * MS);
    let done = |t: TenantId| sim.tenants[&t].latencies.len();
    (done(1) - 1, done(2))
}

#[test]
fn copies_whose_time_is_not_measured_are_still_charged() {
    let (measured, unmeasured) = uploads_measured_and_not();
    assert!(
        measured > 50,
        "the engine ran: {measured} and {unmeasured} copies"
    );
    let ratio = unmeasured as f64 / measured as f64;
    assert!(
        (0.8..=1.25).contains(&ratio),
        "equal weights, equal shares: {measured} measured copies against {unmeasured} unmeasured"
    );
}
