//! The broker's end of one worker link: the command ring (with who owns each asynchronous
//! operation), synchronous calls in reply slots, completion markers, timed operations waiting
//! for their `OP_DONE`, the control socket, the worker's state and its death.
//!
//! Locks: `cmd` (the ring's producer) is held while pushing (which waits while the ring is full)
//! and takes `origins` (the owners of recent operations) and `timings` (timed operations in
//! flight) briefly; `origins`, `timings`, `markers`, `socket` and `state` are leaves. None is
//! held while waiting for a reply, while a marker's callback runs or while a
//! [`CompletionSink`](super::CompletionSink) is told (`completed` may take the scheduler's lock
//! and push to this or another link: the order is *scheduler → `cmd` → leaves*, and the link
//! never calls out holding one of its own). The events thread (which drains the notify ring the
//! worker may be waiting on) takes only leaves itself; a sink it calls may push, waiting while
//! the command ring is full — the worker's ring thread keeps draining it (it never waits for the
//! timing thread), so a scheduler should bound what it has in flight rather than fill the ring.
//!
//! Timed operations ([`is_timed`] records pushed with an [`Origin::timing`]): every [`Timing`]
//! handed to [`Link::push`] is told exactly once — by the events thread when the worker's
//! `OP_DONE{seq, device_ns}` arrives, with `None` when the push fails, and with `None` for each
//! still in flight when the worker dies. A `Timing` on an operation of another kind is told
//! `None` right after the push (nothing times it).

use std::collections::{HashMap, VecDeque};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpushare_client::code;
use gpushare_client::proto as wire;
use gpushare_client::ring::record::{Call, HostFnDone};
use gpushare_client::ring::{Command, Producer};
use gpushare_client::shm::{Region, ReplySlots, SessionState};
use gpushare_client::wait::{Cancel, WaitPolicy};

use super::marker_ledger::MarkerLedger;
use super::streamed::StreamedCopies;
use super::{lock, DResult, DeviceError, FailureSink, HostMem, Origin, Timing};
use crate::worker::proto::{
    is_timed, WorkerReply, WorkerRequest, GATED, NO_DEVICE_TIME, UNMEASURED_DEVICE_TIME,
};

mod socket;

/// Owners remembered for late failures: the most recent operations (an older one that fails is
/// logged without an owner; a context-fatal failure reaches every tenant of the group anyway,
/// through the completion markers).
const ORIGINS: usize = 1 << 16;
/// How long a synchronous call waits for a reply slot.
const SLOT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a worker is doing, for status and group placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerState {
    /// Serving.
    Running,
    /// Its context suffered a device fault: its tenants keep it until they leave, new
    /// sessions of the group get a fresh worker.
    Faulted(String),
    /// Gone: every call fails with `code`.
    Dead {
        /// The `CUresult` its tenants get.
        code: u32,
        /// Why.
        reason: String,
    },
}

/// A completion marker waiting for its stream.
struct Marker {
    origin: Option<Origin>,
    failed: Arc<AtomicU32>,
    kept: Vec<HostMem>,
    f: Box<dyn FnOnce() + Send>,
}

/// Counters for status.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Context-fatal device errors seen.
    pub faults: AtomicU64,
}

/// The broker's end of a worker link.
pub struct Link {
    group: String,
    pid: u32,
    region: Region,
    replies: ReplySlots,
    cancel: Cancel,
    cmd: Mutex<Producer>,
    origins: Mutex<VecDeque<(u64, Option<Origin>)>>,
    /// Timed operations waiting for their `OP_DONE`, by sequence number (not bounded: each
    /// leaves with its `OP_DONE` or the worker's death).
    timings: Mutex<HashMap<u64, Timing>>,
    socket: Mutex<UnixStream>,
    markers: Mutex<HashMap<u64, Marker>>,
    ledger: MarkerLedger,
    next_token: AtomicU64,
    next_ticket: AtomicU64,
    next_region: AtomicU32,
    state: Mutex<WorkerState>,
    dead: AtomicU32,
    closing: std::sync::atomic::AtomicBool,
    started: Instant,
    in_flight: AtomicU64,
    progress_ms: AtomicU64,
    timeout_ms: AtomicU64,
    /// Counters for status.
    pub counters: LinkCounters,
    /// Streamed copies running on the worker, watched for stalls.
    streamed: StreamedCopies,
}

impl Link {
    /// A link over a started worker's region and socket.
    pub(super) fn new(
        group: String,
        pid: u32,
        region: Region,
        socket: UnixStream,
    ) -> DResult<Link> {
        let err =
            |e: gpushare_client::shm::ShmError| DeviceError::Load(format!("worker link: {e}"));
        let producer = region.command_producer().map_err(err)?;
        Ok(Link {
            replies: region.replies(),
            cancel: region.cancel(),
            cmd: Mutex::new(producer),
            origins: Mutex::new(VecDeque::new()),
            timings: Mutex::new(HashMap::new()),
            socket: Mutex::new(socket),
            markers: Mutex::new(HashMap::new()),
            ledger: MarkerLedger::default(),
            next_token: AtomicU64::new(1),
            next_ticket: AtomicU64::new(1),
            next_region: AtomicU32::new(1),
            state: Mutex::new(WorkerState::Running),
            dead: AtomicU32::new(0),
            closing: std::sync::atomic::AtomicBool::new(false),
            started: Instant::now(),
            in_flight: AtomicU64::new(0),
            progress_ms: AtomicU64::new(0),
            timeout_ms: AtomicU64::new(0),
            counters: LinkCounters::default(),
            streamed: StreamedCopies::default(),
            group,
            pid,
            region,
        })
    }

    /// The streamed copies running on the worker.
    pub fn streamed(&self) -> &StreamedCopies {
        &self.streamed
    }

    /// The isolation group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The link region (the events thread reads its notify ring).
    pub(super) fn region(&self) -> &Region {
        &self.region
    }

    /// The worker's state.
    pub fn state(&self) -> WorkerState {
        lock(&self.state).clone()
    }

    /// False once the worker is dead.
    pub fn is_alive(&self) -> bool {
        self.dead.load(Ordering::Acquire) == 0
    }

    fn dead_error(&self, call: &'static str) -> DeviceError {
        DeviceError::Cuda {
            call,
            code: self.dead.load(Ordering::Acquire),
        }
    }

    /// Sets the kernel watchdog (`Duration::ZERO`: off).
    pub fn set_timeout(&self, t: Duration) {
        self.timeout_ms.store(
            t.as_millis().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn progress(&self) {
        self.progress_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Whether work has been outstanding without progress for longer than the watchdog allows.
    pub(super) fn overdue(&self) -> Option<Duration> {
        let t = self.timeout_ms.load(Ordering::Relaxed);
        if t == 0 || self.in_flight.load(Ordering::Acquire) == 0 {
            return None;
        }
        let idle = self
            .now_ms()
            .saturating_sub(self.progress_ms.load(Ordering::Relaxed));
        (idle > t).then(|| Duration::from_millis(idle))
    }

    /// Appends an asynchronous operation, remembering its owner for a late failure and, for a
    /// timed one with [`Origin::timing`], where its completion goes (see the module
    /// documentation: the timing is told exactly once, even when this fails).
    pub(super) fn push(
        &self,
        cmd: &Command<'_>,
        origin: Option<&Origin>,
        call: &'static str,
    ) -> DResult<()> {
        let timing = origin.and_then(|o| o.timing.as_ref());
        let (timed, untimed) = match timing {
            Some(t) if is_timed(cmd) => (Some(t), None),
            t => (None, t),
        };
        let pushed = self.push_locked(cmd, origin, timed, call);
        // Told outside every lock of the link.
        if let Some(t) = untimed {
            t.sink.completed(t.ticket, None);
        }
        pushed.map_err(|(e, orphan)| {
            if let Some(t) = orphan {
                t.sink.completed(t.ticket, None);
            }
            e
        })
    }

    /// The push under `cmd`, recording `timed` for its `OP_DONE`; on error, the timing if it is
    /// now the caller's to tell.
    fn push_locked(
        &self,
        cmd: &Command<'_>,
        origin: Option<&Origin>,
        timed: Option<&Timing>,
        call: &'static str,
    ) -> Result<(), (DeviceError, Option<Timing>)> {
        if !self.is_alive() {
            return Err((self.dead_error(call), timed.cloned()));
        }
        let mut producer = lock(&self.cmd);
        let seq = producer.seq() + 1;
        // The owner is recorded before the push, under the producer's lock (the sequence number
        // is known: one producer), so a failure can never be reported before its owner is known;
        // the events thread takes only `origins`, never `cmd`, so a full ring cannot deadlock.
        {
            let mut origins = lock(&self.origins);
            if origins.len() == ORIGINS {
                origins.pop_front();
            }
            origins.push_back((seq, origin.cloned()));
        }
        if let Some(t) = timed {
            // Checked under `timings`: `die` marks the link dead before it drains them, so a
            // timing is either drained there or never recorded.
            let mut timings = lock(&self.timings);
            if !self.is_alive() {
                return Err((self.dead_error(call), Some(t.clone())));
            }
            timings.insert(seq, t.clone());
        }
        producer.push(cmd).map_err(|e| {
            tracing::error!(group = %self.group, "worker command ring: {e}");
            let err = DeviceError::Cuda {
                call,
                code: code::ERROR_LAUNCH_FAILED,
            };
            let timing = timed.and_then(|_| lock(&self.timings).remove(&seq));
            (err, timing)
        })?;
        Ok(())
    }

    /// The worker's `OP_DONE{seq, device_ns}` (the events thread): tells the operation's timing,
    /// if it has one. A completion is progress for the watchdog.
    pub(super) fn op_done(&self, seq: u64, device_ns: u64) {
        self.progress();
        let Some(t) = lock(&self.timings).remove(&seq) else {
            return;
        };
        match device_ns {
            UNMEASURED_DEVICE_TIME => t.sink.completed_unmeasured(t.ticket),
            NO_DEVICE_TIME => t.sink.completed(t.ticket, None),
            ns => t.sink.completed(t.ticket, Some(ns)),
        }
    }

    /// Timed operations waiting for their `OP_DONE` (for tests and status).
    pub fn timed_in_flight(&self) -> usize {
        lock(&self.timings).len()
    }

    /// The owner of the operation with command-ring sequence number `seq`, if remembered.
    pub(super) fn origin(&self, seq: u64) -> Option<Origin> {
        let origins = lock(&self.origins);
        let first = origins.front()?.0;
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        origins
            .get(i)
            .and_then(|(s, o)| if *s == seq { o.clone() } else { None })
    }

    /// A synchronous call: the request on the ring, the reply from its slot.
    pub(super) fn call(&self, call: &'static str, req: &WorkerRequest) -> DResult<WorkerReply> {
        if !self.is_alive() {
            return Err(self.dead_error(call));
        }
        let payload = wire::encode(req).map_err(|_| DeviceError::Invalid("request too large"))?;
        let slot = self
            .replies
            .claim(SLOT_TIMEOUT, &self.cancel)
            .map_err(|_| self.lost(call))?;
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let pushed = self.push(
            &Command::Call(Call {
                ticket,
                slot,
                payload: &payload,
            }),
            None,
            call,
        );
        let mut buf = Vec::new();
        let waited = pushed.and_then(|()| {
            self.replies
                .wait(slot, ticket, &WaitPolicy::default(), &self.cancel, &mut buf)
                .map_err(|_| self.lost(call))
        });
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.progress();
        // A slot whose reply never came is not reused (a late reply could land in it).
        if waited.is_ok() {
            let _ = self.replies.release(slot);
        }
        waited?;
        match wire::decode::<WorkerReply>(&buf) {
            Ok(WorkerReply::Failed(code)) => Err(DeviceError::Cuda { call, code }),
            Ok(r) => Ok(r),
            Err(_) => Err(DeviceError::Invalid("undecodable worker reply")),
        }
    }

    /// The error of a call whose reply will not come (the worker died or the link closed).
    fn lost(&self, call: &'static str) -> DeviceError {
        let code = match self.dead.load(Ordering::Acquire) {
            0 => code::ERROR_LAUNCH_FAILED,
            c => c,
        };
        DeviceError::Cuda { call, code }
    }

    /// Enqueues a completion marker on worker stream `stream`: `f` runs once the stream's
    /// earlier work completed (with `failed` set first if the stream could not run it), or when
    /// the worker dies.
    ///
    /// A `gate` holds the stream in the worker until `f` has returned (a tenant's host function:
    /// the stream's later work must see what it did); `f` then runs on a thread of its own, so a
    /// slow tenant never holds up the markers of the rest of the group.
    pub(super) fn marker(
        &self,
        stream: u64,
        failed: Arc<AtomicU32>,
        kept: Vec<HostMem>,
        f: Box<dyn FnOnce() + Send>,
        gate: bool,
        origin: Option<&Origin>,
    ) -> DResult<()> {
        let serial = self.next_token.fetch_add(1, Ordering::Relaxed);
        let token = if gate { serial | GATED } else { serial };
        lock(&self.markers).insert(
            token,
            Marker {
                origin: origin.cloned(),
                failed,
                kept,
                f,
            },
        );
        self.ledger.issued(serial, stream);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let rec = Command::HostFn(gpushare_client::ring::record::HostFn { stream, token });
        if let Err(e) = self.push(&rec, origin, "cuLaunchHostFunc") {
            // Not enqueued: the marker runs now, with the error.
            let code = match &e {
                DeviceError::Cuda { code, .. } => *code,
                _ => code::ERROR_LAUNCH_FAILED,
            };
            self.run_marker(token, code);
            return Err(e);
        }
        Ok(())
    }

    /// Runs marker `token` (its stream reached it, or it never will: `code` ≠ 0) on this
    /// thread.
    pub(super) fn run_marker(&self, token: u64, code: u32) {
        if let Some(m) = self.take_marker(token, code) {
            self.finish_marker(token, m);
        }
    }

    /// The worker reached marker `token` (the events thread): as [`Link::run_marker`], except
    /// that a gate's function runs on a thread of its own.
    pub(super) fn marker_reached(self: &Arc<Self>, token: u64, code: u32) {
        let Some(m) = self.take_marker(token, code) else {
            return;
        };
        if token & GATED == 0 {
            return self.finish_marker(token, m);
        }
        let slot = Arc::new(Mutex::new(Some(m)));
        let (link, mine) = (Arc::clone(self), Arc::clone(&slot));
        let spawned = std::thread::Builder::new()
            .name("gpushare-hostfn".into())
            .spawn(move || {
                if let Some(m) = lock(&mine).take() {
                    link.finish_marker(token, m);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(group = %self.group, "no thread for a host function ({e}); running it here");
            if let Some(m) = lock(&slot).take() {
                self.finish_marker(token, m);
            }
        }
    }

    /// Removes marker `token`, recording its stream's failure (`code` ≠ 0); the device made
    /// progress.
    fn take_marker(&self, token: u64, code: u32) -> Option<Marker> {
        let m = lock(&self.markers).remove(&token)?;
        if code != 0 {
            let _ = m
                .failed
                .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
            if code::is_context_fatal(code) && self.is_alive() {
                let owner = m
                    .origin
                    .as_ref()
                    .map_or_else(|| "a stream".to_string(), |o| o.sink.owner());
                self.note_fault(code, &format!("work of {owner}"));
            }
        }
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.progress();
        Some(m)
    }

    /// Runs a marker's function, releases what it kept, and opens its gate in the worker.
    fn finish_marker(&self, token: u64, m: Marker) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(m.f));
        drop(m.kept);
        if token & GATED != 0 && self.is_alive() {
            let done = Command::HostFnDone(HostFnDone { token });
            if let Err(e) = self.push(&done, None, "cuLaunchHostFunc") {
                tracing::warn!(group = %self.group, "opening a host function's gate: {e}");
            }
        }
        self.ledger.finished(token & !GATED);
    }

    /// The token the next marker gets: [`Link::wait_markers`] with it waits for every marker
    /// issued so far.
    pub(super) fn marker_horizon(&self) -> u64 {
        self.next_token.load(Ordering::Acquire)
    }

    /// Waits until the functions of the markers issued on worker stream `stream` before
    /// `horizon` ran (see [`MarkerLedger`]).
    pub(super) fn wait_markers(&self, stream: u64, horizon: u64) {
        self.ledger.wait(stream, horizon, || self.is_alive());
    }

    /// A context-fatal error reached the broker, first reported for `what` (best effort: the
    /// first tenant whose work or call reports it, usually the one whose work faulted). The
    /// first report per worker is logged as the fault; the worker is then `Faulted`.
    pub fn note_fault(&self, code: u32, what: &str) {
        let mut st = lock(&self.state);
        if *st != WorkerState::Running {
            return;
        }
        self.counters.faults.fetch_add(1, Ordering::Relaxed);
        let name = code::name(code).unwrap_or("a device fault");
        let reason = format!("{what} failed with {name}");
        tracing::error!(group = %self.group, pid = self.pid,
            "device fault: {reason}; the group's context is lost");
        *st = WorkerState::Faulted(reason);
    }

    /// An asynchronous operation failed on the device.
    pub(super) fn failed(&self, seq: u64, code: u32) {
        let origin = self.origin(seq);
        let owner = origin
            .as_ref()
            .map(|o| o.sink.owner())
            .unwrap_or_else(|| "an earlier operation".into());
        let op = origin.as_ref().map_or("operation", |o| o.op);
        if code::is_context_fatal(code) {
            self.note_fault(code, &format!("{op} of {owner}"));
        } else {
            tracing::warn!(group = %self.group, "{op} of {owner} failed with CUresult {code}");
        }
        if let Some(o) = origin {
            if o.seq != 0 {
                o.sink.failed(o.seq, o.op, code);
            }
        }
    }

    /// The worker is gone: calls fail with `code` from now on, waits end, markers run.
    pub(super) fn die(&self, code: u32, reason: String) {
        if self
            .dead
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        if self.closing.load(Ordering::Acquire) {
            tracing::info!(group = %self.group, pid = self.pid, "worker stopped ({reason})");
        } else {
            tracing::error!(group = %self.group, pid = self.pid, "worker lost: {reason}");
        }
        *lock(&self.state) = WorkerState::Dead { code, reason };
        self.region.close(SessionState::ClosedByBroker);
        // The scheduler first: no timed operation will complete now.
        let timings: Vec<Timing> = lock(&self.timings).drain().map(|(_, t)| t).collect();
        for t in timings {
            t.sink.completed(t.ticket, None);
        }
        let tokens: Vec<u64> = lock(&self.markers).keys().copied().collect();
        for t in tokens {
            self.run_marker(t, code);
        }
    }

    /// Ends the link: the worker sees the socket's end and exits.
    pub(super) fn shut_down(&self) {
        self.closing.store(true, Ordering::Release);
        let s = lock(&self.socket);
        let _ = s.shutdown(std::net::Shutdown::Both);
    }

    /// Outstanding markers and calls (for status).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }
}

impl FailureSink for () {
    fn failed(&self, _: u64, _: &'static str, _: u32) {}
    fn owner(&self) -> String {
        "the broker".into()
    }
}
