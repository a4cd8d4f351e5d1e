//! The device as the broker sees it: a worker process (`gpushare worker`, see
//! [`crate::worker`]) that owns a CUDA context, reached through a [`Device`] — one per worker,
//! i.e. per isolation group. The broker itself loads no driver and holds no context: a device
//! fault, a hung kernel or a crash in the driver costs the worker, never the broker.
//!
//! [`Device`] keeps the shape the sessions and the dispatcher program against: synchronous
//! methods (allocate, load a module, synchronise, ...) are calls on the link's command ring,
//! answered in a reply slot (bounded spin, then futex); asynchronous ones (launch, copies,
//! memsets, event records and waits, completion markers) are records appended to the ring with
//! no reply — a later failure comes back on the notify ring and is reported to the operation's
//! [`Origin`]; a timed one (a launch, copy or memset) with an [`Origin::timing`] reports its
//! completion and device time to its [`CompletionSink`]. Handles ([`Stream`], [`Event`],
//! [`ModuleRaw`], [`FunctionRaw`]) are the worker's ids; streams and events are destroyed when
//! their last reference goes.
//!
//! Host memory reaches the worker by descriptor, never through the broker: a tenant's region
//! and its pinned host buffers are [`Attachment`]s (the memfd sent over the link's socket and
//! mapped by the worker); a [`HostMem`] names a span of one.
//!
//! When the worker dies (a crash, a signal, the watchdog), every waiting call returns the
//! link's death code, every timed operation in flight completes with no time, every pending
//! completion marker runs with it as its stream's failure (so the tenants' waits end with the
//! error), and every later call fails at once.

mod link;
mod marker_ledger;
mod ops;
mod peers;
mod spawn;
mod streamed;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use gpushare_client::os::Mapping;
use gpushare_client::proto::DeviceInfo;

pub use crate::worker::driver::{AccessFlags, DResult, DeviceChoice, DeviceError, VmmAlloc};
pub use link::{Link, WorkerState};
pub use peers::{PeerId, Peers};
pub use spawn::{worker_exe, WorkerConfig};
pub use streamed::{StreamedCopies, StreamedCopy, STALL_LIMIT};

pub use crate::worker::proto::is_timed;

use crate::worker::proto::WorkerRequest;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where an asynchronous operation's late failure is reported.
pub trait FailureSink: Send + Sync {
    /// The operation `op` with command sequence number `seq` failed on the device.
    fn failed(&self, seq: u64, op: &'static str, code: u32);
    /// Who owns the operation, for log lines.
    fn owner(&self) -> String;
}

/// Told when a timed operation (a kernel, copy or memset: [`is_timed`]) completed on the
/// device.
///
/// Each [`Timing`] given to an operation is told exactly once: by the link's events thread when
/// the worker reports the operation done (`OP_DONE`: in submission order per engine, the
/// engines independently of each other); on the submitting thread, with `None`, when the
/// submission fails (so do not hold a lock `completed` takes while submitting) and right after
/// the submission for an operation of a kind that is not timed; by the supervisor, with `None`,
/// when the worker dies. No lock of the link is held while it is told: it may take the
/// scheduler's lock and submit more work.
pub trait CompletionSink: Send + Sync {
    /// The operation the dispatcher numbered `ticket` completed after `device_ns` nanoseconds
    /// of device time (`None`: it failed, never ran, its time could not be read, or its worker
    /// died). The time is what events recorded around it on its stream measure (on the CPU
    /// device, its modelled time), so it includes any wait for its engine behind other streams.
    fn completed(&self, ticket: u64, device_ns: Option<u64>);

    /// The operation `ticket` ran but its device time was not measured (its completion came
    /// from a host function after it: a streamed copy's run, or an operation the worker did
    /// not time because its timing threads were far behind): its charge stays what was
    /// estimated, unlike `completed(ticket, None)`, which takes it back.
    fn completed_unmeasured(&self, ticket: u64);
}

/// Where a timed operation's completion goes.
#[derive(Clone)]
pub struct Timing {
    /// Told once, when the operation completed.
    pub sink: Arc<dyn CompletionSink>,
    /// The dispatcher's number for the operation.
    pub ticket: u64,
}

/// The owner of an asynchronous operation.
#[derive(Clone)]
pub struct Origin {
    /// Where its failure goes.
    pub sink: Arc<dyn FailureSink>,
    /// Its command sequence number (0: broker bookkeeping).
    pub seq: u64,
    /// Its name, for logs.
    pub op: &'static str,
    /// Where its completion and device time go, when the dispatcher asked.
    pub timing: Option<Timing>,
}

/// A region of the broker mapped by the worker: a tenant's region (staging area) or a host
/// buffer. Detached from the worker when the last reference goes.
pub struct Attachment {
    id: u32,
    map: Arc<Mapping>,
    link: Arc<Link>,
    /// Registered with the worker's driver (device-mapped: a stream can wait on its words).
    registered: bool,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Attachment({})", self.id)
    }
}

impl Attachment {
    /// The broker's own mapping.
    pub fn mapping(&self) -> &Arc<Mapping> {
        &self.map
    }

    /// Whether the worker's driver has it registered (device-mapped).
    pub fn is_registered(&self) -> bool {
        self.registered
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.link.detach(self.id);
    }
}

/// A span of an [`Attachment`] used by an asynchronous copy. Holding it keeps the attachment
/// (and so the worker's mapping) alive.
#[derive(Clone, Debug)]
pub struct HostMem {
    att: Arc<Attachment>,
    offset: u64,
    len: u64,
}

impl HostMem {
    /// `[offset, offset + len)` of `att`; `None` when outside it.
    pub fn new(att: Arc<Attachment>, offset: usize, len: usize) -> Option<HostMem> {
        att.map.ptr_at(offset, len).ok()?;
        Some(HostMem {
            att,
            offset: offset as u64,
            len: len as u64,
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// The attachment the span is part of.
    pub fn attachment(&self) -> &Arc<Attachment> {
        &self.att
    }

    /// Offset of the span in its attachment.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// `[offset, offset + len)` of this span (`None` when it reaches past its end).
    pub fn sub(&self, offset: u64, len: u64) -> Option<HostMem> {
        offset.checked_add(len).filter(|&end| end <= self.len)?;
        Some(HostMem {
            att: Arc::clone(&self.att),
            offset: self.offset + offset,
            len,
        })
    }

    /// True for an empty range.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// BLAKE3 of `[offset, offset + len)` of the span (`None` outside it).
    pub fn hash(&self, offset: usize, len: usize) -> Option<crate::dedup::Hash> {
        self.with_copy(offset, len, crate::dedup::hash_bytes)
    }

    /// The prefix key ([`crate::dedup::prefix_key`]) of the granule of `granule` bytes at
    /// `offset` of the span (`None` outside it): only its first bytes are read.
    pub fn prefix_key(&self, offset: usize, granule: usize) -> Option<crate::dedup::Hash> {
        let len = granule.min(crate::dedup::PREFIX_LEN);
        self.with_copy(offset, len, crate::dedup::prefix_key)
    }

    /// `f` of a copy of `[offset, offset + len)` of the span (`None` outside it). The bytes are
    /// copied out first (into a buffer kept per thread): the memory is shared with the tenant.
    fn with_copy<T>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
        let end = offset.checked_add(len).filter(|&e| e <= self.len())?;
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|s| {
            let mut buf = s.borrow_mut();
            buf.resize(end - offset, 0);
            self.att
                .map
                .read(self.offset as usize + offset, &mut buf)
                .ok()?;
            Some(f(&buf))
        })
    }
}

/// A host buffer registered with the worker's driver (page-locked, device-mapped).
#[derive(Debug)]
pub struct HostRegistration {
    att: Arc<Attachment>,
    device_ptr: u64,
}

impl HostRegistration {
    /// The device address of the buffer's first byte.
    pub fn device_ptr(&self) -> u64 {
        self.device_ptr
    }

    /// The broker's mapping of the buffer.
    pub fn mapping(&self) -> &Arc<Mapping> {
        self.att.mapping()
    }

    /// The attachment (for copies from and to the buffer).
    pub fn attachment(&self) -> &Arc<Attachment> {
        &self.att
    }
}

/// A worker-side stream (always non-blocking), destroyed when the last reference goes.
/// Asynchronous copies park their [`HostMem`] here until the stream's next completion marker or
/// synchronisation.
pub struct Stream {
    dev: Arc<Device>,
    id: u64,
    /// CUDA stream priority, clamped to the device's range (lower is more urgent).
    priority: i32,
    keep: Mutex<Vec<HostMem>>,
    failed: Arc<AtomicU32>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stream({})", self.id)
    }
}

impl Stream {
    /// The worker's id, for logs.
    pub fn raw(&self) -> usize {
        self.id as usize
    }

    /// The device it belongs to.
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// Its CUDA priority (lower is more urgent; within the device's range).
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// The driver error that made a completion marker on this stream run early, if any.
    pub fn failure(&self) -> Option<u32> {
        match self.failed.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }

    fn keep(&self, m: HostMem) {
        lock(&self.keep).push(m);
    }

    fn take_kept(&self) -> Vec<HostMem> {
        std::mem::take(&mut *lock(&self.keep))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.dev.link.is_alive() {
            if let Err(e) = self.dev.call(
                "cuStreamDestroy",
                WorkerRequest::StreamDestroy { stream: self.id },
            ) {
                tracing::warn!("destroying stream {}: {e}", self.id);
            }
        }
    }
}

/// A worker-side event, destroyed when the last reference goes.
pub struct Event {
    dev: Arc<Device>,
    id: u64,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Event({})", self.id)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        if self.dev.link.is_alive() {
            if let Err(e) = self.dev.call(
                "cuEventDestroy",
                WorkerRequest::EventDestroy { event: self.id },
            ) {
                tracing::warn!("destroying event {}: {e}", self.id);
            }
        }
    }
}

/// A worker-side module id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModuleRaw(u64);
/// A worker-side function id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FunctionRaw(u64);

/// One worker: the link to it and what it said at start.
pub struct Device {
    link: Arc<Link>,
    info: DeviceInfo,
    driver_version: i32,
    granularity: u64,
    backend: String,
    priorities: (i32, i32),
    /// The worker's driver has stream memory operations (streamed copies).
    streamed_copies: bool,
    /// The worker's deduplicated copies (a leaf lock: taken with no other device lock, and
    /// after a tenant's tables when both are held).
    dedup: std::sync::Mutex<crate::dedup::ContentIndex>,
    /// The device's other workers (deduplication across groups) and its remap lock.
    peers: Arc<Peers>,
    /// This worker's id among them.
    peer_id: PeerId,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("group", &self.link.group())
            .field("backend", &self.backend)
            .finish()
    }
}

mod calls;
mod granules;
