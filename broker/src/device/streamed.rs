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
//! Aborting sets the state word and the tenant's count to the copy's last piece (unless the count
//! already releases every wait: counts compare modulo 2³², so one past 2³¹ is behind them, and
//! is never taken for progress either), which releases every wait of the device; the watch does
//! it again on every look until the copy's commands complete (a tenant that resumes, or a
//! hostile one, may rewrite it; one that does so for ever holds its own stream until the
//! group's `kernel_timeout` watchdog acts). The remaining
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

/// What one look of the watch decides.
#[derive(Debug, PartialEq, Eq)]
enum Look {
    /// The copy's commands completed: forget it.
    Forget,
    /// Look again later.
    Keep,
    /// Abort it.
    Abort,
}

impl Watched {
    fn new(now: Instant) -> Self {
        Watched {
            seen: (0, now),
            sent: None,
            aborted: false,
            finished: false,
        }
    }

    /// One look at a copy of `pieces` pieces (host to device when `htod`) through its channel.
    fn look(&mut self, ch: &Channel, htod: bool, pieces: u64, now: Instant) -> Look {
        if self.finished {
            return Look::Forget;
        }
        let last = pieces as u32;
        if self.aborted || self.seen.0 >= last {
            // Keeps the device's waits released until the commands complete: after an abort, or
            // once the tenant has handed every piece over (it may have let go of the channel, so
            // the copy is never aborted then; a tenant that rewrites its count gets it back).
            ch.release_device(pieces);
            return Look::Keep;
        }
        let tenant = ch.tenant().load(Ordering::SeqCst);
        // Progress is a count that grew and stays within the copy (modulo 2^32 a larger one
        // is behind the device's waits: a hostile tenant's, to be treated as a stall).
        if tenant > self.seen.0 && tenant <= last {
            self.seen = (tenant, now);
            return Look::Keep;
        }
        let stalled = now.duration_since(self.seen.1) >= STALL_LIMIT;
        let allowed = STALL_LIMIT + PER_PIECE * u32::try_from(pieces).unwrap_or(u32::MAX);
        let overdue = self.sent.is_some_and(|t| now.duration_since(t) >= allowed);
        if stalled && (overdue || waits_on_tenant(ch, htod, pieces)) {
            Look::Abort
        } else {
            Look::Keep
        }
    }
}

/// Whether the device waits on the tenant now, by the channel's counts.
fn waits_on_tenant(ch: &Channel, htod: bool, pieces: u64) -> bool {
    let device = u64::from(ch.device().load(Ordering::SeqCst));
    let tenant = ch.tenant().load(Ordering::SeqCst);
    device < pieces && device_waits_for(htod, device).is_some_and(|t| !reached(tenant, t))
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
            watched: Mutex::new(Watched::new(Instant::now())),
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

    /// One look of the watch: (still to be watched, aborted now).
    fn check(&self, now: Instant) -> (bool, bool) {
        let mut w = self.watched();
        match w.look(&self.channel, self.htod, self.pieces(), now) {
            Look::Forget => (false, false),
            Look::Keep => (true, false),
            Look::Abort => {
                drop(w);
                (true, self.abort("its tenant handed no piece over for 2 s"))
            }
        }
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

    /// Forgets every copy of `session` once its streams were synchronised at teardown: their
    /// commands are over, and a copy whose finishing work was dropped with the session (its
    /// batch never closed) would otherwise stay watched, holding the tenant's staging mapped.
    pub fn forget_session(&self, session: u64) {
        self.list().retain(|c| {
            if c.session == session {
                c.watched().finished = true;
            }
            c.session != session
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_behind_the_waits_is_a_stall_not_progress() {
        let (ch, t0) = (Channel::anonymous().unwrap(), Instant::now());
        let mut w = Watched::new(t0);
        ch.tenant().store(3, Ordering::SeqCst);
        assert_eq!(w.look(&ch, true, 8, t0), Look::Keep);
        // Piece 2 was copied; the tenant then writes a count that compares as behind.
        ch.device().store(3, Ordering::SeqCst);
        ch.tenant().store(u32::MAX, Ordering::SeqCst);
        assert_eq!(
            w.look(&ch, true, 8, t0 + Duration::from_secs(1)),
            Look::Keep
        );
        assert_eq!(w.look(&ch, true, 8, t0 + STALL_LIMIT), Look::Abort);
    }

    #[test]
    fn a_copy_whose_tenant_handed_every_piece_over_is_never_aborted() {
        let (ch, t0) = (Channel::anonymous().unwrap(), Instant::now());
        let mut w = Watched::new(t0);
        w.sent = Some(t0);
        ch.tenant().store(8, Ordering::SeqCst);
        assert_eq!(w.look(&ch, true, 8, t0), Look::Keep);
        // Long overdue, the device still copying, the tenant rewriting its count: the watch
        // puts it back and keeps looking.
        ch.tenant().store(2, Ordering::SeqCst);
        assert_eq!(w.look(&ch, true, 8, t0 + STALL_LIMIT * 10), Look::Keep);
        assert_eq!(ch.tenant().load(Ordering::SeqCst), 8);
        w.finished = true;
        assert_eq!(w.look(&ch, true, 8, t0 + STALL_LIMIT * 10), Look::Forget);
    }

    #[test]
    fn a_download_whose_tenant_reads_on_is_not_a_stall() {
        let (ch, t0) = (Channel::anonymous().unwrap(), Instant::now());
        let mut w = Watched::new(t0);
        // The device has filled every slot and waits for the tenant to read piece 0 out.
        ch.device().store(4, Ordering::SeqCst);
        assert_eq!(w.look(&ch, false, 8, t0 + STALL_LIMIT), Look::Abort);
        let mut w = Watched::new(t0);
        ch.tenant().store(1, Ordering::SeqCst);
        assert_eq!(w.look(&ch, false, 8, t0 + STALL_LIMIT), Look::Keep);
    }
}
