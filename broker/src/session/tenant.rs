//! A tenant session's shared state, [`Tenant`]: what its socket thread, ring thread and executor,
//! the dispatcher (as a [`crate::scheduler::JobSink`]) and host-function callbacks share.
//!
//! Queueing work in the scheduler is in `tenant/submit.rs`, batches and their markers in
//! `tenant/batches.rs`, freeing a finished session's resources in `tenant/teardown.rs`.
//!
//! # Lock order
//!
//! A tenant's mutable state is behind these locks:
//!
//! 1. **`tables`** — the tenant's tables ([`TenantState`]: handles, streams, memory, host
//!    buffers), reached only through the guard [`Tenant::state`] returns (or
//!    `exec::support::with_state`). It is the *only* tenant lock under which other locks are
//!    taken: the ring thread, holding it, tracks each command (`completion`) and queues its
//!    operations (`progress`, then the scheduler's queue, which blocks while the tenant has too
//!    many jobs waiting); request handlers call the device while holding it.
//! 2. **Leaves**, each held only for a few instructions and never while another lock is taken:
//!    - `completion` ([`Completion`]: open batches, incomplete batches, `retired`) and
//!      `progress` ([`Progress`]: counters and their condition variable), and `host_fns`
//!      ([`HostFnsDone`] and its condition variable): by construction — their mutexes are
//!      private to their types, whose methods take no other lock and run no caller code;
//!    - `notify` (the notify ring's producer; `async_error`, `notify_host_fn`), `writer`
//!      (the socket's write half; `send`, `hang_up`) and `params` (the scheduling parameters in
//!      force; `params`, `apply_rules`): private to this file, locked only in those methods,
//!      which lock nothing else while holding them.
//!
//! So the order is `tables` → {`completion`, `progress`, scheduler queue, device}; every other
//! lock is a leaf. Nothing takes `tables` while holding any other tenant lock (a completion
//! marker, running on a driver thread, never takes it at all). The broker's registry lock is
//! never held while calling into a tenant ([`super::registry`]). Condition variables live with
//! their mutex, so a wait cannot use the wrong one.

mod batches;
mod submit;
mod teardown;

use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use gpushare_client::code::{self, CuCode};
use gpushare_client::frame;
use gpushare_client::proto::{BrokerMessage, ReplyEnvelope};
use gpushare_client::ring::record::{AsyncError, HostFnReady};
use gpushare_client::shm::{Region, ReplySlots, SessionState, ShmLayout, Staging};
use gpushare_client::{Command, Producer};

use std::os::fd::BorrowedFd;

use super::completion::Completion;
use super::error::SessionError;
use super::limits::Limiter;
use super::state::{self, TenantState};
use super::waits::{HostFnsDone, Progress};
use crate::device::{Attachment, Device};
use crate::env::Env;
use crate::groups::GroupKey;
use crate::policy::{DedupScope, Rules};
use crate::scheduler::TenantParams;

/// Where a new tenant's device work runs: its group's worker.
pub struct Placement {
    /// The worker.
    pub dev: Arc<Device>,
    /// The group.
    pub group: GroupKey,
    /// The tenant's `kernel_timeout`.
    pub timeout: Duration,
}

/// How long a socket-lane request waits for the ring to reach its fence.
pub const FENCE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a host function waits for the tenant's `HOST_FN_DONE`.
pub const HOST_FN_TIMEOUT: Duration = Duration::from_secs(30);

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

/// A tenant session's shared state (see the module documentation for its lock order).
pub struct Tenant {
    /// Who it is.
    pub info: SessionInfo,
    /// Broker-wide state.
    pub env: Arc<Env>,
    /// The worker of the tenant's isolation group.
    pub dev: Arc<Device>,
    /// The tenant's isolation group.
    pub group: GroupKey,
    /// Bounds on the objects the tenant holds, and its host functions in flight (atomics: no
    /// lock).
    pub limits: Limiter,
    /// The tenant's `kernel_timeout` (counted in its worker's watchdog).
    timeout: Duration,
    /// The region, as the worker maps it (copies name spans of it).
    pub attachment: Arc<Attachment>,
    /// Whether the tenant has left its group (once).
    left: AtomicBool,
    /// The region.
    pub region: Region,
    /// The broker's own copy of the layout.
    pub layout: ShmLayout,
    /// The staging area.
    pub staging: Staging,
    /// The reply slots.
    pub replies: ReplySlots,
    /// Lock level 1: the tables (`None` once torn down).
    tables: Mutex<Option<TenantState>>,
    /// Leaf: batches and `retired`.
    completion: Completion,
    /// Leaf: counters the executor, fences and the drain wait for.
    progress: Progress,
    /// Leaf: host functions the tenant ran.
    host_fns: HostFnsDone,
    /// Leaf: the notify ring's producer.
    notify: Mutex<Producer>,
    /// Leaf: the socket's write half.
    writer: Mutex<Option<UnixStream>>,
    /// Leaf: the scheduling parameters in force (the policy's, updated by a reload).
    params: Mutex<TenantParams>,
    closing: AtomicBool,
    draining: AtomicBool,
    submitted_ops: AtomicU64,
    /// Bytes of uploads deduplication did not copy (their content was resident).
    skipped_uploads: AtomicU64,
    /// Held while the tenant's exclusive work (deduplication's remaps) runs, and by teardown:
    /// no remap runs on memory being freed. Taken before `tables`.
    pub(crate) exclusive: Mutex<()>,
    /// A fault was logged as a likely store into read-only deduplicated memory (once).
    read_only_faulted: AtomicBool,
    /// Leaf: granules waiting for their keys from the device's bytes (`session::dedup`).
    pub(crate) key_queue: Mutex<crate::dedup::KeyQueue>,
    me: Weak<Tenant>,
}

/// A tenant's memory figures (status).
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryFigures {
    /// Bytes charged to its quota.
    pub charged: u64,
    /// Its quota (0: none).
    pub quota: u64,
    /// Streams it created.
    pub streams: u32,
    /// Of `charged`, bytes mapped onto copies other tenants map too.
    pub shared: u64,
}

/// Locks a mutex (a poisoned one is still usable: its holder only panicked).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Tenant {
    /// Sets up a tenant session on its group's worker: the region attached to the worker (and
    /// registered with its driver when it can be), the legacy stream, and a place in the
    /// scheduler with the scheduling parameters and memory quota of its policy `rules`.
    /// `writer` is a clone of the socket for replies and `Goodbye`.
    pub fn create(
        env: Arc<Env>,
        info: SessionInfo,
        placement: Placement,
        region: (Region, BorrowedFd<'_>),
        writer: UnixStream,
        rules: &Rules,
    ) -> Result<Arc<Tenant>, SessionError> {
        let setup =
            |what: &str, e: &dyn std::fmt::Display| SessionError::Setup(format!("{what}: {e}"));
        let (region, fd) = region;
        let Placement {
            dev,
            group,
            timeout,
        } = placement;
        let layout = *region.layout();
        let mut notify = region
            .notify_producer()
            .map_err(|e| setup("notify ring", &e))?;
        notify.set_wait(
            gpushare_client::WaitPolicy::default().timeout(Duration::from_secs(5)),
            region.cancel(),
        );
        let attachment = dev
            .attach(fd, Arc::clone(region.mapping()))
            .map_err(|e| setup("attaching the region to the worker", &e))?;
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
        let slots = layout.stream_slots as u32;
        let mut st = TenantState::new(info.id, legacy, slots, rules.memory_quota);
        if rules.dedup != DedupScope::Off {
            let mut granules = crate::dedup::TenantGranules::new(dev.granularity());
            granules.across_groups = rules.dedup == DedupScope::Device;
            st.granules = Some(granules);
        }
        let params = TenantParams::from_rules(rules);
        env.sched.add_tenant(info.id, params);
        let limits = Limiter::new(info.id, &info.name, &rules.limits);
        Ok(Arc::new_cyclic(|me| Tenant {
            limits,
            staging: region.staging(),
            replies: region.replies(),
            layout,
            region,
            info,
            env,
            dev,
            group,
            timeout,
            attachment,
            left: AtomicBool::new(false),
            tables: Mutex::new(Some(st)),
            completion: Completion::default(),
            progress: Progress::default(),
            host_fns: HostFnsDone::default(),
            notify: Mutex::new(notify),
            writer: Mutex::new(Some(writer)),
            params: Mutex::new(params),
            closing: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            submitted_ops: AtomicU64::new(0),
            skipped_uploads: AtomicU64::new(0),
            exclusive: Mutex::new(()),
            read_only_faulted: AtomicBool::new(false),
            key_queue: Mutex::new(crate::dedup::KeyQueue::default()),
            me: me.clone(),
        }))
    }

    /// The scheduling parameters in force.
    pub fn params(&self) -> TenantParams {
        *lock(&self.params)
    }

    /// Applies new policy `rules` (a reload): the scheduling parameters (weight, priority,
    /// `max_share`), the memory quota and the object bounds, which new allocations and objects
    /// are checked against (what is held stays, even beyond a smaller bound). The isolation
    /// group and the kernel watchdog stay as the session started.
    pub fn apply_rules(&self, rules: &Rules) {
        let params = TenantParams::from_rules(rules);
        *lock(&self.params) = params;
        self.limits.set(&rules.limits);
        self.env.sched.set_params(self.info.id, params);
        if let Some(st) = self.state().as_mut() {
            st.memory.set_quota(rules.memory_quota);
        }
    }

    /// Leaves the tenant's group (once): its worker may be shut down.
    pub fn leave_group(&self) {
        if !self.left.swap(true, Ordering::AcqRel) {
            self.env.groups.leave(&self.group, &self.dev, self.timeout);
        }
    }

    /// The tenant's tables (lock level 1); `None` once the session has been torn down.
    pub fn state(&self) -> MutexGuard<'_, Option<TenantState>> {
        lock(&self.tables)
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

    /// A weak reference to this tenant (for work that outlives the call queueing it).
    pub(crate) fn weak(&self) -> Weak<Tenant> {
        self.me.clone()
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
        self.progress.set_ring_done();
    }

    /// Operations queued so far (the executor's drain target).
    pub fn enqueued(&self) -> u64 {
        self.progress.enqueued()
    }

    /// Counts a call handed to the executor (`+1`) or finished (`-1`).
    pub fn calls_pending(&self, delta: i64) {
        self.progress.add_calls_pending(delta);
    }

    /// Waits until `target` operations have been submitted (false: the session closed).
    pub fn wait_submitted(&self, target: u64) -> bool {
        self.progress.wait_submitted(target, &self.closing)
    }

    /// Waits until the ring has been processed up to `fence`. A fence naming commands that never
    /// arrive (within [`FENCE_TIMEOUT`], or before the ring thread stopped) fails with
    /// `CUDA_ERROR_INVALID_VALUE`; only this tenant's executor waits meanwhile.
    pub fn wait_processed(&self, fence: u64) -> Result<(), CuCode> {
        let limit = Instant::now() + FENCE_TIMEOUT;
        if self.progress.wait_processed(fence, &self.closing, limit) {
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
        self.progress.wait_ring_and_calls(&self.closing, limit)
            && loop {
                if self.completion.all_complete() {
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
        self.host_fns.wait(token, &self.closing, HOST_FN_TIMEOUT)
    }

    /// Host function `token` is about to be offered to the tenant (`HOST_FN_READY`): its
    /// `HOST_FN_DONE` is expected.
    pub fn host_fn_expect(&self, token: u64) {
        self.host_fns.expect(token);
    }

    /// The tenant ran host function `token` (an answer for a token no host function waits
    /// for — never offered, timed out, answered twice — is dropped).
    pub fn host_fn_done(&self, token: u64) {
        if !self.host_fns.done(token) {
            tracing::debug!(
                session = self.info.id,
                token,
                "HOST_FN_DONE for no waiting host function: dropped"
            );
        }
    }

    /// Host functions waiting for the tenant's `HOST_FN_DONE`.
    pub fn host_fns_waiting(&self) -> usize {
        self.host_fns.waiting()
    }

    /// Pushes `HOST_FN_READY` on the notify ring (waits a bounded time for space); when it
    /// cannot, the token is no longer expected.
    pub fn notify_host_fn(&self, rec: HostFnReady) -> bool {
        let sent = lock(&self.notify).push(&Command::HostFnReady(rec)).is_ok();
        if !sent {
            self.host_fns.forget(rec.token);
        }
        sent
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
        self.host_fns.wake_all();
        self.progress.wake_all();
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
        let completed = self.completion.completed_ops();
        (queued, submitted, completed)
    }

    /// Deduplication mapped resident copies in place of `bytes` of an upload, not copied.
    pub fn skipped_upload(&self, bytes: u64) {
        self.skipped_uploads.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes of uploads not copied since the session began ([`Tenant::skipped_upload`]).
    pub fn skipped_upload_bytes(&self) -> u64 {
        self.skipped_uploads.load(Ordering::Relaxed)
    }

    /// Device memory charged, quota, streams; its shared bytes from the device's deduplication
    /// `summary` (computed once per status report).
    pub fn memory_figures(&self, summary: &crate::dedup::Summary) -> MemoryFigures {
        let Some((charged, quota, streams)) = self.state().as_ref().map(|st| {
            (
                st.memory.charged(),
                st.memory.quota(),
                st.streams.len() as u32,
            )
        }) else {
            return MemoryFigures::default();
        };
        let shared = summary.shared.get(&self.info.id).copied().unwrap_or(0);
        MemoryFigures {
            charged,
            quota,
            streams,
            shared: shared * self.dev.granularity(),
        }
    }
}
