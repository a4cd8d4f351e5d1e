//! A streamed copy's channel: a span of staging through which a synchronous pageable copy's
//! pieces go between the tenant and the device with no record per piece (`STREAMED_COPY`,
//! docs/protocol.md §6, "Streamed copies").
//!
//! ```text
//! +0      tenant  u32  pieces the tenant has written (to the device) or read out (from it)
//! +64     device  u32  pieces the device has copied out of (to it) or into (from it) the slots
//! +128    state   u32  PENDING, then ACCEPTED or DECLINED by the broker; then DONE by the
//!                      tenant or ABORTED by the broker, whichever comes first
//! +192    release u32  a download's two owners letting go of it (the second frees it)
//! +4096   SLOTS slots of PIECE bytes; piece k uses slot k mod SLOTS
//! ```
//!
//! Host to device, piece `k` is written by the tenant once `device ≥ k + 1 − SLOTS` and copied
//! by the device once `tenant ≥ k + 1`; device to host, the device fills piece `k` once
//! `tenant ≥ k + 1 − SLOTS` and the tenant reads it out once `device ≥ k + 1`. Counts compare
//! modulo 2³² (`cuStreamWaitValue32`'s `GEQ`). Each side wakes the other's futex on the word it
//! bumps (the CPU device's stream writes wake; a GPU's do not, so a waiter re-checks on a short
//! timeout). The words are on their own cache lines so the two sides do not share one.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::os::{futex_wait, futex_wake, Mapping, OsError, SharedAtomic};

/// Bytes per piece: small enough that the slots stay in the CPU's caches (on the CPU device both
/// copies then touch DRAM only for the application's and the device's bytes), large enough that
/// a hand-off's cost vanishes.
pub const PIECE: u64 = 1 << 20;
/// Slots: pieces one side may run ahead of the other.
pub const SLOTS: u64 = 4;
/// Bytes before the first slot.
pub const HEADER: u64 = 4096;
/// A channel's bytes in staging.
pub const CHANNEL_BYTES: u64 = HEADER + SLOTS * PIECE;

/// Offset of the tenant's count.
pub const TENANT_WORD: u64 = 0;
/// Offset of the device's count.
pub const DEVICE_WORD: u64 = 64;
/// Offset of the state word.
pub const STATE_WORD: u64 = 128;
/// Offset of the release word.
pub const RELEASE_WORD: u64 = 192;

/// Pieces an upload's tenant writes before it pushes the record (at most the copy's): the
/// broker's deduplication probe reads them (a first granule larger than this is not probed).
pub const PROBED_PIECES: u64 = 2;

/// [`STATE_WORD`]: the broker has not seen the record yet.
pub const PENDING: u32 = 0;
/// [`STATE_WORD`]: the copy is queued.
pub const ACCEPTED: u32 = 1;
/// [`STATE_WORD`]: the broker will not stream this copy (the tenant copies it another way).
pub const DECLINED: u32 = 2;
/// [`STATE_WORD`]: the broker gave up on the copy (a side stopped handing pieces over); the
/// device's waits were released and the copy's bytes are undefined.
pub const ABORTED: u32 = 3;
/// [`STATE_WORD`]: the tenant handed every piece over (written, or read out) while the copy was
/// accepted; from then on the broker never aborts it.
pub const DONE: u32 = 4;

/// The number of pieces of a `len`-byte copy.
pub fn pieces(len: u64) -> u64 {
    len.div_ceil(PIECE)
}

/// Offset of piece `k`'s slot from the channel's start.
pub fn slot(k: u64) -> u64 {
    HEADER + (k % SLOTS) * PIECE
}

/// Bytes of piece `k` of a `len`-byte copy.
pub fn piece_len(len: u64, k: u64) -> u64 {
    len.saturating_sub(k * PIECE).min(PIECE)
}

/// The tenant count the device waits for before piece `k` (`None`: no wait).
pub fn device_waits_for(htod: bool, k: u64) -> Option<u32> {
    if htod {
        Some((k + 1) as u32)
    } else {
        (k >= SLOTS).then(|| (k + 1 - SLOTS) as u32)
    }
}

/// `value ≥ target` modulo 2³² (`CU_STREAM_WAIT_VALUE_GEQ`).
pub fn reached(value: u32, target: u32) -> bool {
    (value.wrapping_sub(target) as i32) >= 0
}

/// Whether a tenant count of `value` satisfies every wait of the device on a copy whose last
/// piece is `last` (`1 ≤ last < 2³¹`; the waits are for 1 ..= `last`, compared modulo 2³²):
/// `last ≤ value ≤ 2³¹`. A larger count is *behind* the waits, not past them.
pub fn releases_all(value: u32, last: u32) -> bool {
    reached(value, last) && reached(value, 1)
}

/// Why a wait on a channel ended without its count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The broker declined the copy.
    #[error("the broker declined the streamed copy")]
    Declined,
    /// The broker aborted the copy.
    #[error("the broker aborted the streamed copy")]
    Aborted,
    /// The session closed or the tenant's context failed.
    #[error("the session closed or the context failed during a streamed copy")]
    Cancelled,
}

/// Longest futex sleep before a waiter re-checks (a GPU's stream writes wake no one).
const RECHECK: Duration = Duration::from_micros(100);
/// Spin before sleeping: about one piece's copy.
const SPIN: Duration = Duration::from_micros(30);

/// One channel, at a fixed offset of a region's mapping: handles to its four words.
#[derive(Clone, Debug)]
pub struct Channel {
    tenant: SharedAtomic<AtomicU32>,
    device: SharedAtomic<AtomicU32>,
    state: SharedAtomic<AtomicU32>,
    release: SharedAtomic<AtomicU32>,
}

impl Channel {
    /// The channel at `base` (an offset in `map`, 64-byte aligned, [`CHANNEL_BYTES`] long).
    pub fn at(map: &Arc<Mapping>, base: usize) -> Result<Channel, OsError> {
        map.ptr_at(base, CHANNEL_BYTES as usize)?;
        let word = |at: u64| map.atomic::<AtomicU32>(base + at as usize);
        Ok(Channel {
            tenant: word(TENANT_WORD)?,
            device: word(DEVICE_WORD)?,
            state: word(STATE_WORD)?,
            release: word(RELEASE_WORD)?,
        })
    }

    /// A channel of its own in anonymous memory, reset: no other process sees it (tests of
    /// either side's logic).
    pub fn anonymous() -> Result<Channel, OsError> {
        let map = Arc::new(Mapping::anonymous(CHANNEL_BYTES as usize)?);
        let ch = Channel::at(&map, 0)?;
        ch.reset();
        Ok(ch)
    }

    /// The tenant's count.
    pub fn tenant(&self) -> &AtomicU32 {
        &self.tenant
    }

    /// The device's count.
    pub fn device(&self) -> &AtomicU32 {
        &self.device
    }

    /// The state word.
    pub fn state(&self) -> &AtomicU32 {
        &self.state
    }

    /// Zeroes the counts, the state and the release word (the tenant, before it names the
    /// channel in a record).
    pub fn reset(&self) {
        for w in [self.tenant(), self.device(), self.state(), &self.release] {
            w.store(0, Ordering::SeqCst);
        }
    }

    /// One of an accepted download's two owners is done with its channel: the tenant once it
    /// has read every piece out, the broker once the copy's commands completed (the device's
    /// last write to the channel is behind it). Whether the caller was the second, which frees
    /// the channel: neither waits for the other.
    pub fn let_go(&self) -> bool {
        self.release.fetch_add(1, Ordering::AcqRel) == 1
    }

    /// Raises `word` to `value` (never lowers it: after an abort the broker has raised the
    /// tenant's count past the last piece) and wakes whoever sleeps on it.
    pub fn publish(word: &AtomicU32, value: u32) {
        word.fetch_max(value, Ordering::SeqCst);
        let _ = futex_wake(word, u32::MAX);
    }

    /// Ends the copy as `state` (the broker: [`ACCEPTED`], [`DECLINED`], or [`ABORTED`], which
    /// also releases every wait of the device on a copy of `pieces` pieces) and wakes the
    /// tenant.
    pub fn settle(&self, state: u32, pieces: u64) {
        if state == ABORTED {
            self.release_device(pieces);
        }
        self.state().store(state, Ordering::SeqCst);
        let _ = futex_wake(self.device(), u32::MAX);
        let _ = futex_wake(self.state(), u32::MAX);
    }

    /// Releases every wait of the device on a copy of `pieces` pieces (the broker, after an
    /// abort): the tenant's count becomes the last piece unless it releases every wait already
    /// ([`releases_all`]; a count the tenant wrote out of range is overwritten, and a tenant's
    /// concurrent raise cannot lower it), then whoever sleeps on it is woken.
    pub fn release_device(&self, pieces: u64) {
        let (word, last) = (self.tenant(), pieces as u32);
        if !releases_all(word.load(Ordering::SeqCst), last) {
            word.store(last, Ordering::SeqCst);
        }
        let _ = futex_wake(word, u32::MAX);
    }

    /// Aborts an accepted copy of `pieces` pieces (the broker): releases every wait of the
    /// device and wakes the tenant; `false`, doing nothing, when the tenant completed the copy
    /// first ([`DONE`] with its count at the last piece: the two agree on how the copy ended).
    pub fn abort(&self, pieces: u64) -> bool {
        let last = pieces as u32;
        match self
            .state()
            .compare_exchange(ACCEPTED, ABORTED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {}
            Err(DONE) if releases_all(self.tenant().load(Ordering::SeqCst), last) => return false,
            // A state the tenant wrote out of turn: the broker's word stands.
            Err(_) => {}
        }
        self.settle(ABORTED, pieces);
        true
    }

    /// The tenant has handed every piece over: waits for the broker's answer, then marks the
    /// copy [`DONE`] unless the broker aborted it first (then `Aborted`: the copy's bytes are
    /// undefined, and the channel is the tenant's to free once the command is complete).
    pub fn complete(&self, stop: &dyn Fn() -> bool) -> Result<(), ChannelError> {
        self.wait_settled(stop)?;
        match self
            .state()
            .compare_exchange(ACCEPTED, DONE, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) | Err(DONE) => Ok(()),
            Err(DECLINED) => Err(ChannelError::Declined),
            Err(_) => Err(ChannelError::Aborted),
        }
    }

    /// Waits until the device's count reaches `target` (the tenant); fails when the broker
    /// declines or aborts the copy or `stop` says so (the session closed, the tenant's context
    /// failed: a failed command never moves the count).
    pub fn wait_device(&self, target: u32, stop: &dyn Fn() -> bool) -> Result<(), ChannelError> {
        let (word, start) = (self.device(), Instant::now());
        loop {
            let seen = word.load(Ordering::SeqCst);
            match self.state().load(Ordering::SeqCst) {
                DECLINED => return Err(ChannelError::Declined),
                ABORTED => return Err(ChannelError::Aborted),
                _ => {}
            }
            if reached(seen, target) {
                return Ok(());
            }
            if stop() {
                return Err(ChannelError::Cancelled);
            }
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let _ = futex_wait(word, seen, Some(RECHECK));
        }
    }

    /// Waits until the broker has seen the record (the state leaves [`PENDING`]); `Ok` when it
    /// accepted it.
    pub fn wait_settled(&self, stop: &dyn Fn() -> bool) -> Result<(), ChannelError> {
        let word = self.state();
        loop {
            match word.load(Ordering::SeqCst) {
                ACCEPTED | DONE => return Ok(()),
                DECLINED => return Err(ChannelError::Declined),
                ABORTED => return Err(ChannelError::Aborted),
                seen => {
                    if stop() {
                        return Err(ChannelError::Cancelled);
                    }
                    let _ = futex_wait(word, seen, Some(RECHECK));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> Channel {
        Channel::anonymous().unwrap()
    }

    #[test]
    fn piece_arithmetic_covers_the_copy_once() {
        let len = 5 * PIECE + 7;
        assert_eq!(pieces(len), 6);
        let total: u64 = (0..pieces(len)).map(|k| piece_len(len, k)).sum();
        assert_eq!(total, len);
        assert_eq!(piece_len(len, 5), 7);
        assert_eq!(slot(SLOTS), slot(0));
        assert_ne!(slot(1), slot(0));
        assert!(slot(SLOTS - 1) + PIECE <= CHANNEL_BYTES);
    }

    #[test]
    fn the_device_waits_for_the_right_counts() {
        assert_eq!(device_waits_for(true, 0), Some(1));
        assert_eq!(device_waits_for(false, SLOTS - 1), None);
        assert_eq!(device_waits_for(false, SLOTS), Some(1));
        assert!(reached(5, 5) && reached(6, 5) && !reached(4, 5));
        assert!(reached(2, u32::MAX), "counts compare modulo 2^32");
    }

    #[test]
    fn an_abort_releases_a_waiting_tenant() {
        let ch = channel();
        let waiter = {
            let ch = ch.clone();
            std::thread::spawn(move || ch.wait_device(3, &|| false))
        };
        std::thread::sleep(Duration::from_millis(20));
        ch.settle(ABORTED, 9);
        assert_eq!(waiter.join().unwrap(), Err(ChannelError::Aborted));
        assert_eq!(ch.tenant().load(Ordering::SeqCst), 9);
        Channel::publish(ch.tenant(), 4);
        assert_eq!(
            ch.tenant().load(Ordering::SeqCst),
            9,
            "a late store never lowers it"
        );
    }

    #[test]
    fn the_device_count_releases_a_waiting_tenant() {
        let ch = channel();
        ch.settle(ACCEPTED, 4);
        let waiter = {
            let ch = ch.clone();
            std::thread::spawn(move || ch.wait_device(2, &|| false))
        };
        Channel::publish(ch.device(), 1);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!waiter.is_finished(), "one piece is not two");
        Channel::publish(ch.device(), 2);
        assert_eq!(waiter.join().unwrap(), Ok(()));
        assert_eq!(ch.wait_settled(&|| false), Ok(()));
    }

    #[test]
    fn the_tenant_and_the_broker_agree_on_how_a_copy_ended() {
        let ch = channel();
        ch.settle(ACCEPTED, 4);
        Channel::publish(ch.tenant(), 4);
        assert_eq!(ch.complete(&|| false), Ok(()));
        assert!(!ch.abort(4), "a completed copy is not aborted");
        assert_eq!(ch.state().load(Ordering::SeqCst), DONE);

        ch.reset();
        ch.settle(ACCEPTED, 4);
        assert!(ch.abort(4));
        assert_eq!(ch.complete(&|| false), Err(ChannelError::Aborted));

        // DONE written before every piece was handed over does not stop an abort, nor does a
        // count that compares as behind the device's waits.
        for bogus in [2, u32::MAX, 4 + (1 << 31) - 1] {
            ch.reset();
            ch.settle(ACCEPTED, 4);
            ch.tenant().store(bogus, Ordering::SeqCst);
            ch.state().store(DONE, Ordering::SeqCst);
            assert!(ch.abort(4), "count {bogus:#x}");
            assert_eq!(ch.state().load(Ordering::SeqCst), ABORTED);
            assert_eq!(ch.tenant().load(Ordering::SeqCst), 4, "count {bogus:#x}");
        }
    }

    #[test]
    fn only_counts_from_the_last_piece_to_two_to_the_31_release_every_wait() {
        assert!(releases_all(9, 9) && releases_all(1 << 31, 9));
        assert!(!releases_all(8, 9) && !releases_all(u32::MAX, 9));
        assert!(!releases_all((1 << 31) + 1, 9) && !releases_all(0, 9));
        let ch = channel();
        ch.tenant().store(u32::MAX, Ordering::SeqCst);
        ch.release_device(9);
        assert_eq!(ch.tenant().load(Ordering::SeqCst), 9);
        ch.tenant().store(12, Ordering::SeqCst);
        ch.release_device(9);
        assert_eq!(
            ch.tenant().load(Ordering::SeqCst),
            12,
            "a count past the last stays"
        );
    }

    #[test]
    fn exactly_the_second_owner_to_let_go_frees() {
        let ch = channel();
        for _ in 0..2 {
            ch.reset();
            let other = {
                let ch = ch.clone();
                std::thread::spawn(move || ch.let_go())
            };
            let mine = ch.let_go();
            assert!(mine != other.join().unwrap(), "one of the two frees");
        }
    }
}
