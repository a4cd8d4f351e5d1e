//! Device time of the timed operations (launches, copies, memsets: [`super::proto::is_timed`]).
//!
//! The ring thread brackets each timed operation with two events on its stream — a start event
//! recorded before the operation, an end event after it — taken from a pool of reusable events
//! (timing on; `CU_EVENT_BLOCKING_SYNC`, so waiting for one sleeps rather than spins), and hands
//! `(seq, start, end)` to the **timing thread of the operation's engine** (compute, host-to-device,
//! device-to-host) through that engine's queue. Each timing thread takes its engine's operations
//! in submission order, waits for each end event (`cuEventSynchronize`), reads
//! `cuEventElapsedTime`, puts both events back in the pool and posts `OP_DONE{seq, device_ns}` on
//! the notify ring. One thread per engine, because an engine runs its work in order but engines
//! run side by side: with one thread for all, a download's completion waited behind an upload
//! submitted before it and still running, the download engine's window stayed full meanwhile,
//! and chunked copies of a two-stream pipeline lost about 10 % to it
//! (docs/benchmarks-transfers.md). On the CPU device the events carry its modelled timestamps,
//! so `device_ns` is the modelled time (`docs/cpu-device.md`, "Events").
//!
//! Every timed record gets exactly one `OP_DONE`. It has no time ([`NO_DEVICE_TIME`]) when the
//! operation failed at submission, when an event call failed (a sticky context error), or when
//! waiting for its end event failed (the context faulted). `device_ns` runs from the later of
//! the start event and the end of the engine's previous timed operation to the end event: a
//! wait for the engine behind another stream's timed work is not counted, but a wait behind
//! untimed work (a streamed copy's runs) is, and so is any pause of this worker between
//! recording the start event and submitting the operation (the cost model caps what one such
//! sample teaches it: `scheduler/cost.rs`).
//!
//! In steady state nothing is allocated per operation: events come from the pool and the queue
//! keeps its capacity. The ring thread never waits for the timing thread: past [`QUEUE_LIMIT`]
//! waiting operations (the device is far behind) an operation is not timed — a host function on
//! its stream posts its `OP_DONE` without a time when the stream reaches it — because the
//! operation the timing thread waits for may itself wait for a record still in the command ring
//! (a gated host function opens with `HOST_FN_DONE`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use gpushare_client::ring::record::OpDone;
use gpushare_client::ring::{Command, Producer};

use super::driver::{Driver, Event, Stream};
use super::proto::{NO_DEVICE_TIME, UNMEASURED_DEVICE_TIME};

/// Most timed operations waiting for the timing thread (see the module documentation).
pub const QUEUE_LIMIT: usize = 1 << 16;
/// `CU_EVENT_BLOCKING_SYNC`: the timing thread sleeps in `cuEventSynchronize` (timing stays on).
const EVENT_FLAGS: u32 = 1;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A timed operation on its way to the timing thread: its start and end events, or `None`
/// when it has no time.
struct Pending {
    seq: u64,
    /// Engine index: 0 compute, 1 host-to-device, 2 device-to-host.
    engine: usize,
    events: Option<(Arc<Event>, Arc<Event>)>,
}

/// The queue to the timing thread.
#[derive(Default)]
struct Queue {
    items: VecDeque<Pending>,
    /// The timing thread waits on `ready` (the ring thread wakes it only then).
    sleeping: bool,
}

/// One engine's queue and the condition its timing thread sleeps on.
#[derive(Default)]
struct Lane {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// What the ring thread and the timing threads share.
struct Shared {
    drv: Arc<Driver>,
    notify: Arc<Mutex<Producer>>,
    /// Per engine: 0 compute, 1 host-to-device, 2 device-to-host.
    lanes: [Lane; 3],
    pool: Mutex<Vec<Arc<Event>>>,
    warned: AtomicBool,
}

/// The ring thread's end: brackets timed operations with events and queues them.
pub struct Timer {
    shared: Arc<Shared>,
}

impl Timer {
    /// Starts the timing threads (one per engine), which post `OP_DONE` records on `notify`.
    pub fn spawn(drv: Arc<Driver>, notify: Arc<Mutex<Producer>>) -> std::io::Result<Timer> {
        let shared = Arc::new(Shared {
            drv,
            notify,
            lanes: Default::default(),
            pool: Mutex::default(),
            warned: AtomicBool::new(false),
        });
        for engine in 0..shared.lanes.len() {
            let theirs = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("gpushare-wtime{engine}"))
                .spawn(move || theirs.run(engine))?;
        }
        Ok(Timer { shared })
    }

    /// Records a start event on `stream` before a timed operation; `None` when it could not
    /// (the operation then has no time).
    pub fn start(&self, stream: &Stream) -> Option<Arc<Event>> {
        self.shared.record(stream)
    }

    /// After timed operation `seq` was submitted on `stream` (`ok`) or failed: records its end
    /// event and queues it for the timing thread.
    /// `engine`: 0 compute, 1 host-to-device, 2 device-to-host copies.
    pub fn finish(
        &self,
        seq: u64,
        engine: usize,
        stream: &Arc<Stream>,
        start: Option<Arc<Event>>,
        ok: bool,
    ) {
        let sh = &self.shared;
        let events = match start {
            Some(a) if ok => match sh.record(stream) {
                Some(b) => Some((a, b)),
                None => {
                    sh.put(a);
                    None
                }
            },
            Some(a) => {
                sh.put(a);
                None
            }
            None => None,
        };
        let engine = engine.min(2);
        if let Err(p) = sh.enqueue(Pending {
            seq,
            engine,
            events,
        }) {
            self.overflow(p, Some(stream));
        }
    }

    /// Timed operation `seq` never reached a stream (its stream is unknown): its `OP_DONE`,
    /// without a time, after those of the compute operations before it.
    pub fn failed(&self, seq: u64) {
        let p = Pending {
            seq,
            engine: 0,
            events: None,
        };
        if let Err(p) = self.shared.enqueue(p) {
            self.overflow(p, None);
        }
    }

    /// The queue is full: the operation's events go back to the pool and its `OP_DONE` (without
    /// a time) is posted by a host function once its stream reaches it.
    fn overflow(&self, p: Pending, stream: Option<&Arc<Stream>>) {
        let sh = &self.shared;
        if let Some((a, b)) = p.events {
            sh.put(a);
            sh.put(b);
        }
        if !sh.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "more than {QUEUE_LIMIT} timed operations outstanding; later ones go untimed \
                 until the device catches up"
            );
        }
        self.untimed(p.seq, stream);
    }

    /// Operation `seq`'s `OP_DONE`, without a time: posted by a host function once `stream`
    /// reaches it, as [`UNMEASURED_DEVICE_TIME`] (it ran: the scheduler keeps its charge), or at
    /// once as [`NO_DEVICE_TIME`] without a stream (it failed at submission). A streamed copy's
    /// runs go this way: they wait for their tenant, and an engine's timing thread waiting
    /// behind one would hold every later completion of that engine, other tenants' too.
    pub fn untimed(&self, seq: u64, stream: Option<&Arc<Stream>>) {
        let sh = &self.shared;
        let Some(s) = stream else {
            return post(&sh.notify, seq, NO_DEVICE_TIME);
        };
        let notify = Arc::clone(&sh.notify);
        // On failure the driver layer synchronises the stream and runs the function here.
        let _ = sh.drv.launch_host_fn(
            s,
            Box::new(move |_| post(&notify, seq, UNMEASURED_DEVICE_TIME)),
        );
    }
}

impl Shared {
    /// An event from the pool (a new one when the pool is empty), recorded on `stream`.
    fn record(&self, stream: &Stream) -> Option<Arc<Event>> {
        let pooled = lock(&self.pool).pop();
        let e = match pooled {
            Some(e) => e,
            None => match self.drv.event_create(EVENT_FLAGS) {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!("timing event: {e}");
                    return None;
                }
            },
        };
        match self.drv.event_record(&e, stream, 0) {
            Ok(()) => Some(e),
            Err(err) => {
                tracing::debug!("timing event record: {err}");
                self.put(e);
                None
            }
        }
    }

    fn put(&self, e: Arc<Event>) {
        lock(&self.pool).push(e);
    }

    /// Queues `p` for its engine's timing thread; gives it back when that queue is full.
    fn enqueue(&self, p: Pending) -> Result<(), Pending> {
        let lane = &self.lanes[p.engine];
        let mut q = lock(&lane.queue);
        if q.items.len() >= QUEUE_LIMIT {
            return Err(p);
        }
        q.items.push_back(p);
        let wake = q.sleeping;
        drop(q);
        if wake {
            lane.ready.notify_one();
        }
        Ok(())
    }

    /// The next queued operation of engine `engine` (waits for one).
    fn next(&self, engine: usize) -> Pending {
        let lane = &self.lanes[engine];
        let mut q = lock(&lane.queue);
        loop {
            if let Some(p) = q.items.pop_front() {
                return p;
            }
            q.sleeping = true;
            q = lane.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            q.sleeping = false;
        }
    }

    /// The timing thread of engine `engine`: its operations in submission order. An
    /// operation's device time is from its start event — or from the end of the engine's
    /// previous operation, if that is later (it waited for the engine behind another stream's
    /// work, which is not its own time) — to its end event.
    fn run(&self, engine: usize) {
        let mut last_end: Option<Arc<Event>> = None;
        loop {
            let p = self.next(engine);
            let ns = match p.events {
                Some((a, b)) => {
                    let mut ns = self.measure(&a, &b);
                    if let Some(prev) = &last_end {
                        if ns != NO_DEVICE_TIME {
                            if let Ok(ms) = self.drv.event_elapsed(prev, &b) {
                                ns = ns.min(ns_of_ms(ms));
                            }
                        }
                    }
                    self.put(a);
                    if let Some(prev) = last_end.replace(b) {
                        self.put(prev);
                    }
                    ns
                }
                None => NO_DEVICE_TIME,
            };
            post(&self.notify, p.seq, ns);
        }
    }

    /// Waits for `end` and returns the nanoseconds from `start` to it.
    fn measure(&self, start: &Event, end: &Event) -> u64 {
        let elapsed = self
            .drv
            .event_synchronize(end)
            .and_then(|()| self.drv.event_elapsed(start, end));
        match elapsed {
            Ok(ms) => ns_of_ms(ms),
            Err(e) => {
                tracing::debug!("timing a device operation: {e}");
                NO_DEVICE_TIME
            }
        }
    }
}

/// `cuEventElapsedTime`'s milliseconds as nanoseconds (negative: 0; not finite: no time).
fn ns_of_ms(ms: f32) -> u64 {
    if !ms.is_finite() {
        return NO_DEVICE_TIME;
    }
    let ns = (f64::from(ms.max(0.0)) * 1e6).round();
    if ns >= (NO_DEVICE_TIME - 1) as f64 {
        NO_DEVICE_TIME - 1
    } else {
        ns as u64
    }
}

/// Posts `OP_DONE{seq, device_ns}` (waits while the notify ring is full).
fn post(notify: &Mutex<Producer>, seq: u64, device_ns: u64) {
    let rec = Command::OpDone(OpDone { seq, device_ns });
    if let Err(e) = lock(notify).push(&rec) {
        tracing::error!("notify ring: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_become_nanoseconds() {
        assert_eq!(ns_of_ms(1.5), 1_500_000);
        assert_eq!(ns_of_ms(0.0), 0);
        assert_eq!(ns_of_ms(-2.0), 0);
        assert_eq!(ns_of_ms(f32::NAN), NO_DEVICE_TIME);
        assert_eq!(ns_of_ms(f32::INFINITY), NO_DEVICE_TIME);
        assert!(ns_of_ms(f32::MAX) < NO_DEVICE_TIME);
    }
}
