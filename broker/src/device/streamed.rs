//! Streamed copies on the broker's side (`STREAMED_COPY`; the channel's layout and protocol
//! are `gpushare_client::shm::channel`'s): the copy and its channel, the runs of its pieces
//! pushed to the worker, and the watch that aborts a copy its tenant stopped feeding.
//!
//! A streamed copy holds its stream, on the worker, at the channel's words: the device waits for
//! the tenant to hand each piece over. A tenant that stops (stopped, killed, reading its source
//! from a slow disk, or hostile) would hold its stream for ever, and on the CPU device a kernel
//! queued behind it holds the worker's executor; so every accepted copy is watched
//! ([`StreamedCopies`], checked by the worker's supervisor every 20 ms) until its commands
//! complete, and aborted
//! - when its tenant's count has not grown for [`STALL_LIMIT`] while the device waits for it
//!   (judged from the channel's device count), or while the copy is overdue: [`STALL_LIMIT`]
//!   plus [`PER_PIECE`] a piece since its first run was sent to the worker (the counts live in
//!   the tenant's memory, so a hostile tenant could fake the device's; the deadline is the
//!   broker's own);
//! - at once when its tenant's session ends.
//!
//! A copy whose tenant has handed every piece over (the watch saw its count reach the last) is
//! never aborted for a stall: the device no longer waits on the tenant, and the tenant may have
//! returned (an upload) or let go of the channel (a download).
//!
//! Aborting sets the state word and raises the tenant's count to the copy's last piece, which
//! releases every wait of the device; the watch raises it again on every look until the copy's
//! commands complete (a tenant that resumes, or a hostile one, may lower it). The remaining
//! pieces carry whatever the slots hold, into the tenant's own memory only; the tenant, if it
//! is still there, sees the abort and copies the same bytes again the ordinary way (a copy
//! aborted for a slow source still arrives). The state word is the tenant's to write too, so
//! the watch keeps its own record of what it did.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpushare_client::ring::record::{StreamedCopy as StreamedRecord, STREAMED_HTOD};
use gpushare_client::ring::Command;
use gpushare_client::shm::channel::{
    self, device_waits_for, reached, Channel, CHANNEL_BYTES, PIECE,
};

use super::{DResult, Device, HostMem, Origin, Stream};

/// Longest the device may wait on a tenant that hands no piece over before the copy is aborted.
pub const STALL_LIMIT: Duration = Duration::from_secs(2);
/// Time allowed per piece on top of [`STALL_LIMIT`], from the copy's first run on (100 MB/s).
pub const PER_PIECE: Duration = Duration::from_millis(10);

/// One streamed copy (shared by its runs' operations and the watch).
pub struct StreamedCopy {
    /// The tenant's session.
    pub session: u64,
    /// Host to device (else device to host).
    pub htod: bool,
    /// Device address of the copy's first byte.
    pub dev: u64,
    /// Bytes.
    pub len: u64,
    host: HostMem,
    channel: Channel,
    /// The watch's view: see [`Watched`].
    watched: Mutex<Watched>,
}

/// What the watch knows of a copy.
struct Watched {
    /// The tenant's highest count seen, and when it was first seen.
    seen: (u32, Instant),
    /// When its first run was sent to the worker.
    sent: Option<Instant>,
    /// The broker aborted it.
    aborted: bool,
    /// The copy's commands completed: its channel may be freed and reused at any time, so
    /// nothing may touch its words any more.
    finished: bool,
}

impl std::fmt::Debug for StreamedCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StreamedCopy({} bytes, session {})",
            self.len, self.session
        )
    }
}

impl StreamedCopy {
    /// The copy whose channel is `host` (a [`CHANNEL_BYTES`] span of a tenant's staging).
    pub fn new(session: u64, htod: bool, dev: u64, len: u64, host: HostMem) -> Option<Self> {
        if host.len() as u64 != CHANNEL_BYTES {
            return None;
        }
        let at = usize::try_from(host.offset()).ok()?;
        let channel = Channel::at(host.attachment().mapping(), at).ok()?;
        Some(StreamedCopy {
            session,
            htod,
            dev,
            len,
            host,
            channel,
            watched: Mutex::new(Watched {
                seen: (0, Instant::now()),
                sent: None,
                aborted: false,
                finished: false,
            }),
        })
    }

    /// The copy's pieces.
    pub fn pieces(&self) -> u64 {
        channel::pieces(self.len)
    }

    /// The channel (its first piece's bytes, for deduplication's probe).
    pub fn host(&self) -> &HostMem {
        &self.host
    }

    /// Tells the tenant the broker's answer ([`StreamedCopies::settle`]).
    fn settle(&self, state: u32) {
        self.channel.settle(state, self.pieces());
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The copy's commands completed (its batch's marker ran): the watch lets go of it before
    /// its channel is freed. Whether the copy was not aborted (its tenant frees an aborted
    /// copy's channel).
    pub fn finish(&self) -> bool {
        let mut w = self.watched();
        w.finished = true;
        !w.aborted
    }

    /// The broker is done with a download's channel ([`Channel::let_go`]): whether the tenant
    /// was too, so the broker frees it.
    pub fn let_go(&self) -> bool {
        self.channel.let_go()
    }

    /// Aborts the copy unless it finished, was aborted, or its tenant completed it first;
    /// whether it did.
    fn abort(&self, why: &str) -> bool {
        let mut w = self.watched();
        if w.finished || w.aborted {
            return false;
        }
        if !self.channel.abort(self.pieces()) {
            // The tenant handed the last piece over just now.
            w.seen = (self.pieces() as u32, Instant::now());
            return false;
        }
        w.aborted = true;
        tracing::warn!(
            session = self.session,
            "streamed copy of {} bytes aborted: {why}",
            self.len
        );
        true
    }

    /// Whether the device waits on the tenant now, by the channel's counts.
    fn waits_on_tenant(&self) -> bool {
        let device = u64::from(self.channel.device().load(Ordering::SeqCst));
        let tenant = self.channel.tenant().load(Ordering::SeqCst);
        device < self.pieces()
            && device_waits_for(self.htod, device).is_some_and(|t| !reached(tenant, t))
    }

    /// One look of the watch: (still to be watched, aborted now).
    fn check(&self, now: Instant) -> (bool, bool) {
        let mut w = self.watched();
        if w.finished {
            return (false, false);
        }
        let last = self.pieces() as u32;
        if w.aborted || w.seen.0 >= last {
            // Keeps the device's waits released until the commands complete: after an abort, or
            // once the tenant has handed every piece over (it may have let go of the channel, so
            // the copy is never aborted then; a tenant that lowers its count gets it back).
            self.channel.tenant().fetch_max(last, Ordering::SeqCst);
            return (true, false);
        }
        let tenant = self.channel.tenant().load(Ordering::SeqCst);
        if tenant > w.seen.0 {
            w.seen = (tenant, now);
            return (true, false);
        }
        let stalled = now.duration_since(w.seen.1) >= STALL_LIMIT;
        let allowed = STALL_LIMIT + PER_PIECE * u32::try_from(self.pieces()).unwrap_or(u32::MAX);
        let overdue = w.sent.is_some_and(|t| now.duration_since(t) >= allowed);
        if !(stalled && (overdue || self.waits_on_tenant())) {
            return (true, false);
        }
        drop(w);
        let aborted = self.abort("its tenant handed no piece over for 2 s");
        (true, aborted)
    }

    /// Its first run goes to the worker now.
    fn sent(&self) {
        self.watched().sent.get_or_insert_with(Instant::now);
    }
}

/// The streamed copies running on one worker, and how many it ran, declined and aborted.
#[derive(Default)]
pub struct StreamedCopies {
    running: Mutex<Vec<Arc<StreamedCopy>>>,
    accepted: AtomicU64,
    declined: AtomicU64,
    aborted: AtomicU64,
}

impl StreamedCopies {
    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Arc<StreamedCopy>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers `copy` (`ACCEPTED`: watches it until it is over, `DECLINED`, or `ABORTED` when
    /// its command failed) and counts the answer.
    pub fn settle(&self, copy: &Arc<StreamedCopy>, answer: u32) {
        let counter = match answer {
            channel::ACCEPTED => {
                self.list().push(Arc::clone(copy));
                &self.accepted
            }
            channel::DECLINED => &self.declined,
            _ => &self.aborted,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        copy.settle(answer);
    }

    /// Copies run, declined and aborted so far.
    pub fn counts(&self) -> [u64; 3] {
        [&self.accepted, &self.declined, &self.aborted].map(|c| c.load(Ordering::Relaxed))
    }

    /// One look at every copy: forgets those that are over, aborts stalled ones.
    pub fn check(&self) {
        let now = Instant::now();
        let mut aborted = 0;
        self.list().retain(|c| {
            let (keep, abort) = c.check(now);
            aborted += u64::from(abort);
            keep
        });
        self.aborted.fetch_add(aborted, Ordering::Relaxed);
    }

    /// Aborts every copy of `session` (its session ended); they stay watched until their
    /// commands complete.
    pub fn abort_session(&self, session: u64) {
        let aborted = self
            .list()
            .iter()
            .filter(|c| c.session == session && c.abort("its session ended"))
            .count();
        self.aborted.fetch_add(aborted as u64, Ordering::Relaxed);
    }
}

impl Device {
    /// Pushes the run of `copy`'s pieces from piece `first`, `len` bytes, on `s`.
    pub fn streamed_copy(
        &self,
        copy: &StreamedCopy,
        first: u64,
        len: u64,
        s: &Stream,
        origin: &Origin,
    ) -> DResult<()> {
        let rec = StreamedRecord {
            stream: s.id,
            device_ptr: copy.dev + first * PIECE,
            channel: copy.host.offset(),
            len,
            first_piece: first,
            host_region: copy.host.attachment().id,
            flags: if copy.htod { STREAMED_HTOD } else { 0 },
        };
        copy.sent();
        self.link
            .push(&Command::StreamedCopy(rec), Some(origin), "streamed copy")?;
        s.keep(copy.host.clone());
        Ok(())
    }
}
