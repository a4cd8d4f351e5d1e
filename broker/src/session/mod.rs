//! Sessions: one per connection. A tenant session owns a shared-memory region, handle tables and
//! memory accounting, and runs three threads:
//!
//! - the **socket thread** ([`socket`]): handshake, socket-lane requests, `Goodbye`, end of
//!   stream; it supervises the others and frees everything when the session ends;
//! - the **ring thread** ([`ring`]): consumes the command ring in order; asynchronous commands
//!   are resolved, checked and queued in the scheduler; CALL records go to the executor;
//! - the **executor** ([`exec`]): runs synchronous requests one at a time, each after the
//!   tenant's earlier commands have been submitted; it may block (synchronisation) without
//!   stopping the ring thread, which must keep consuming (e.g. `HOST_FN_DONE` records).
//!
//! Admin sessions have only the socket thread. [`Tenant`] is the state those threads, the
//! dispatcher (as a [`crate::scheduler::JobSink`]) and host-function callbacks share.
//!
//! Completion tracking (stream slots, `retired`) is in `completion`, queueing work in the
//! scheduler in `submit`, and freeing a finished session's resources in `teardown`.

mod completion;
pub mod exec;
mod exec_mem;
mod exec_misc;
pub mod ring;
pub mod socket;
pub mod state;
mod submit;
mod teardown;

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use gpushare_client::code::{self, CuCode};
use gpushare_client::frame;
use gpushare_client::proto::{BrokerMessage, ReplyEnvelope};
use gpushare_client::ring::record::{AsyncError, HostFnReady};
use gpushare_client::shm::{Region, ReplySlots, SessionState, ShmLayout, Staging};
use gpushare_client::{Command, Producer};

use crate::broker::Env;
use crate::device::HostRegistration;
use completion::Completion;
use state::TenantState;

/// Commands per batch before a marker is forced.
pub const BATCH_MAX: u64 = 256;
/// How long a socket-lane request waits for the ring to reach its fence.
pub const FENCE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a host function waits for the tenant's `HOST_FN_DONE`.
pub const HOST_FN_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors that end a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The tenant broke the protocol; the session is closed.
    #[error("protocol violation: {0}")]
    Violation(String),
    /// The session is closing.
    #[error("the session is closed")]
    Closed,
    /// Setting the session up failed.
    #[error("session setup failed: {0}")]
    Setup(String),
}

/// Who is on the other end.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    /// Session id.
    pub id: u64,
    /// Name from `Hello`.
    pub name: String,
    /// Peer process id (`SO_PEERCRED`).
    pub pid: u32,
    /// Peer user id.
    pub uid: u32,
    /// Peer group id.
    pub gid: u32,
    /// Scheduling weight (policy).
    pub weight: u32,
}

/// Where a reply goes.
#[derive(Clone, Copy, Debug)]
pub enum ReplyTo {
    /// A reply slot of the region (CALL records).
    Slot {
        /// Slot index.
        slot: u32,
        /// Ticket to publish.
        ticket: u64,
    },
    /// The socket (socket-lane requests).
    Socket,
}

#[derive(Default)]
struct Progress {
    enqueued: u64,
    submitted: u64,
    processed: u64,
    ring_done: bool,
    calls_pending: u64,
}

/// A tenant session's shared state (see the module documentation).
pub struct Tenant {
    /// Who it is.
    pub info: SessionInfo,
    /// Broker-wide state.
    pub env: Arc<Env>,
    /// The region.
    pub region: Region,
    /// The broker's own copy of the layout.
    pub layout: ShmLayout,
    /// The staging area.
    pub staging: Staging,
    /// The reply slots.
    pub replies: ReplySlots,
    notify: Mutex<Producer>,
    state: Mutex<Option<TenantState>>,
    staging_reg: Mutex<Option<HostRegistration>>,
    progress: Mutex<Progress>,
    progress_cv: Condvar,
    completion: Mutex<Completion>,
    host_fns: Mutex<HashMap<u64, bool>>,
    host_fn_cv: Condvar,
    closing: AtomicBool,
    draining: AtomicBool,
    writer: Mutex<Option<UnixStream>>,
    submitted_ops: AtomicU64,
    me: Weak<Tenant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Tenant {
    /// Sets up a tenant session: the region, the legacy stream, the staging registration, and
    /// a place in the scheduler. `writer` is a clone of the socket for replies and `Goodbye`.
    pub fn create(
        env: Arc<Env>,
        info: SessionInfo,
        region: Region,
        writer: UnixStream,
        quota: u64,
    ) -> Result<Arc<Tenant>, SessionError> {
        let setup =
            |what: &str, e: &dyn std::fmt::Display| SessionError::Setup(format!("{what}: {e}"));
        let layout = *region.layout();
        let mut notify = region
            .notify_producer()
            .map_err(|e| setup("notify ring", &e))?;
        notify.set_wait(
            gpushare_client::WaitPolicy::default().timeout(Duration::from_secs(5)),
            region.cancel(),
        );
        let dev = &env.dev;
        let legacy_stream = dev
            .stream_create(0, 0)
            .map_err(|e| setup("legacy stream", &e))?;
        let join = dev
            .event_create(state::JOIN_EVENT_FLAGS)
            .map_err(|e| setup("join event", &e))?;
        let legacy = state::TenantStream::new(
            legacy_stream,
            gpushare_client::shm::LEGACY_STREAM_SLOT,
            true,
            join,
        );
        let staging_reg = match dev.host_register(
            Arc::clone(region.mapping()),
            layout.staging_offset as usize,
            layout.staging_size() as usize,
        ) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(
                    session = info.id,
                    "staging area not registered with the driver ({e}); copies will be pageable"
                );
                None
            }
        };
        let st = TenantState::new(info.id, legacy, layout.stream_slots as u32, quota);
        env.sched.add_tenant(info.id, info.weight);
        Ok(Arc::new_cyclic(|me| Tenant {
            staging: region.staging(),
            replies: region.replies(),
            layout,
            region,
            info,
            env,
            notify: Mutex::new(notify),
            state: Mutex::new(Some(st)),
            staging_reg: Mutex::new(staging_reg),
            progress: Mutex::new(Progress::default()),
            progress_cv: Condvar::new(),
            completion: Mutex::new(Completion::default()),
            host_fns: Mutex::new(HashMap::new()),
            host_fn_cv: Condvar::new(),
            closing: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            writer: Mutex::new(Some(writer)),
            submitted_ops: AtomicU64::new(0),
            me: me.clone(),
        }))
    }

    /// The tenant's tables; `None` once the session has been torn down.
    pub fn state(&self) -> MutexGuard<'_, Option<TenantState>> {
        lock(&self.state)
    }

    /// True once the session is closing.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// True while the broker drains this session for shutdown.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    fn arc(&self) -> Option<Arc<Tenant>> {
        self.me.upgrade()
    }

    /// Records an asynchronous error of command `seq`: the sticky word (first error wins) and
    /// an `ASYNC_ERROR` notify record (dropped if the notify ring is full).
    pub fn async_error(&self, seq: u64, code: CuCode) {
        tracing::debug!(session = self.info.id, seq, code, "asynchronous error");
        let _ = self
            .region
            .async_error()
            .compare_publish(0, u64::from(code));
        let rec = Command::AsyncError(AsyncError {
            seq,
            code,
            reserved: 0,
        });
        if !matches!(lock(&self.notify).try_push(&rec), Ok(Some(_))) {
            tracing::debug!(
                session = self.info.id,
                "notify ring full; ASYNC_ERROR dropped"
            );
        }
    }

    /// The ring thread exited.
    pub fn set_ring_done(&self) {
        lock(&self.progress).ring_done = true;
        self.progress_cv.notify_all();
    }

    /// Operations queued so far (the executor's drain target).
    pub fn enqueued(&self) -> u64 {
        lock(&self.progress).enqueued
    }

    /// Counts a call handed to the executor (`+1`) or finished (`-1`).
    pub fn calls_pending(&self, delta: i64) {
        let mut p = lock(&self.progress);
        p.calls_pending = p.calls_pending.saturating_add_signed(delta);
        self.progress_cv.notify_all();
    }

    fn wait_progress(
        &self,
        mut done: impl FnMut(&Progress) -> bool,
        limit: Option<Instant>,
    ) -> bool {
        let mut p = lock(&self.progress);
        loop {
            if done(&p) {
                return true;
            }
            if self.is_closing() || limit.is_some_and(|l| Instant::now() >= l) {
                return false;
            }
            p = self
                .progress_cv
                .wait_timeout(p, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Waits until `target` operations have been submitted (false: the session closed).
    pub fn wait_submitted(&self, target: u64) -> bool {
        self.wait_progress(|p| p.submitted >= target, None)
    }

    /// Waits until the ring has been processed up to `fence`. A fence naming commands that never
    /// arrive (within [`FENCE_TIMEOUT`], or before the ring thread stopped) fails with
    /// `CUDA_ERROR_INVALID_VALUE`; only this tenant's executor waits meanwhile.
    pub fn wait_processed(&self, fence: u64) -> Result<(), CuCode> {
        let mut reached = false;
        self.wait_progress(
            |p| {
                reached = p.processed >= fence;
                reached || p.ring_done
            },
            Some(Instant::now() + FENCE_TIMEOUT),
        );
        if reached {
            Ok(())
        } else if self.is_closing() {
            Err(code::ERROR_DEINITIALIZED)
        } else {
            Err(code::ERROR_INVALID_VALUE)
        }
    }

    /// Waits (until `limit`) for the ring thread to stop, the executor to finish its calls and
    /// every command to complete: the drain before shutdown.
    pub fn wait_drained(&self, limit: Instant) -> bool {
        self.wait_progress(|p| p.ring_done && p.calls_pending == 0, Some(limit))
            && loop {
                if self.all_complete() {
                    break true;
                }
                if Instant::now() >= limit || self.is_closing() {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
    }

    /// Starts draining: the ring thread exits once the ring is empty.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
        if let Ok(w) =
            gpushare_client::SeqWord::at(self.region.mapping(), self.layout.cmd_ring_ctl as usize)
        {
            w.wake_all();
        }
    }

    /// Waits for the tenant's `HOST_FN_DONE` of `token` (false: timed out or closing).
    pub fn host_fn_wait(&self, token: u64) -> bool {
        let start = Instant::now();
        let mut m = lock(&self.host_fns);
        loop {
            if m.remove(&token).is_some() {
                return true;
            }
            if self.is_closing() || start.elapsed() >= HOST_FN_TIMEOUT {
                return false;
            }
            m = self
                .host_fn_cv
                .wait_timeout(m, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// The tenant ran host function `token`.
    pub fn host_fn_done(&self, token: u64) {
        lock(&self.host_fns).insert(token, true);
        self.host_fn_cv.notify_all();
    }

    /// Pushes `HOST_FN_READY` on the notify ring (waits a bounded time for space).
    pub fn notify_host_fn(&self, rec: HostFnReady) -> bool {
        lock(&self.notify).push(&Command::HostFnReady(rec)).is_ok()
    }

    /// Sends a reply where it belongs. A reply that does not fit its slot closes the session.
    pub fn reply(&self, to: ReplyTo, env: ReplyEnvelope) {
        match to {
            ReplyTo::Slot { slot, ticket } => {
                let bytes = match gpushare_client::proto::encode(&env) {
                    Ok(b) => b,
                    Err(e) => return self.violation(&format!("cannot encode reply: {e}")),
                };
                if let Err(e) = self.replies.complete(slot, ticket, &bytes) {
                    self.violation(&format!("reply to call {ticket}: {e}"));
                }
            }
            ReplyTo::Socket => self.send(&BrokerMessage::Reply(env)),
        }
    }

    /// Sends a message on the socket (errors: the socket thread notices the hang-up).
    pub fn send(&self, msg: &BrokerMessage) {
        if let Some(w) = lock(&self.writer).as_mut() {
            if let Err(e) = frame::send_message(w, msg) {
                tracing::debug!(session = self.info.id, "send failed: {e}");
            }
        }
    }

    /// Marks the session closed (`by`) and wakes everything waiting on it.
    pub fn close(&self, by: SessionState) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            self.region.close(by);
        }
        self.host_fn_cv.notify_all();
        self.progress_cv.notify_all();
    }

    /// Closes the session for `reason` (logged), telling the tenant with `Goodbye`.
    pub fn hang_up(&self, reason: &str) {
        self.send(&BrokerMessage::Goodbye {
            reason: reason.to_string(),
        });
        self.close(SessionState::ClosedByBroker);
        if let Some(w) = lock(&self.writer).as_ref() {
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Closes the session for a protocol violation.
    pub fn violation(&self, reason: &str) {
        tracing::warn!(
            session = self.info.id,
            tenant = %self.info.name,
            pid = self.info.pid,
            "closing session: protocol violation: {reason}"
        );
        self.hang_up(&format!("protocol violation: {reason}"));
    }

    /// Figures for `Status`: (queued, submitted, completed) operations.
    pub fn op_counts(&self) -> (u64, u64, u64) {
        let queued = self.env.sched.queued(self.info.id) as u64;
        let submitted = self.submitted_ops.load(Ordering::Relaxed);
        let completed = self.completed_ops();
        (queued, submitted, completed)
    }

    /// Device memory charged, quota, streams.
    pub fn memory_figures(&self) -> (u64, u64, u32) {
        match self.state().as_ref() {
            Some(st) => (
                st.memory.charged(),
                st.memory.quota(),
                st.streams.len() as u32,
            ),
            None => (0, 0, 0),
        }
    }
}
