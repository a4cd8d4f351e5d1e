//! The asynchronous command ring: a single-producer single-consumer byte ring in shared memory.
//!
//! # Geometry
//!
//! A control block of two cache lines — `head` [`SeqWord`] at +0 (written by the producer),
//! `tail` [`SeqWord`] at +64 (written by the consumer) — and `capacity` data bytes (a power of
//! two). `head` and `tail` are monotonically increasing byte positions (u64, never wrapping in
//! practice); the byte at position `p` lives at `data + (p & (capacity - 1))`.
//!
//! # Records
//!
//! Records are length-prefixed and 8-aligned (see [`record`]). A record never wraps: when it does
//! not fit before the end of the data area, the producer first writes a PAD record filling the
//! rest, and the record starts at offset 0. Records are at most [`MAX_RECORD`] bytes; the
//! capacity is at least four times that.
//!
//! # Publication and wake-ups
//!
//! The producer writes the record bytes, then publishes the new head (a SeqCst store: Release for
//! the bytes, and the store-load order the sleeper check needs). It issues `FUTEX_WAKE` only when
//! the consumer announced it is sleeping, so the hot path has no system call. The consumer reads
//! `head` with Acquire, copies the record out of shared memory, publishes the new tail, and only
//! then validates and decodes the copy. A full ring makes the producer wait on `tail` (bounded
//! spin, then futex) — records are never dropped. An empty ring makes the consumer wait on `head`
//! the same way ("the doorbell").
//!
//! Every non-PAD record gets a sequence number, 1 for the first; both sides count, so the
//! producer knows the number of what it pushed (to wait for its completion) without it being
//! stored in the record.

pub mod record;

use std::sync::Arc;

use crate::os::{Mapping, OsError};
use crate::wait::{Cancel, SeqWord, WaitError, WaitPolicy};
use record::{kind, RecordHeader, FIXED_MAX};
pub use record::{Command, RecordError};

/// Largest record, header included (a launch with 4 KiB of parameters is 4152 bytes; calls carry
/// up to this much request payload).
pub const MAX_RECORD: usize = 16 << 10;
/// Size of a ring control block.
pub const RING_CTL_SIZE: usize = 128;

/// Errors of the ring.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// A record larger than [`MAX_RECORD`], or one that cannot be encoded.
    #[error(transparent)]
    Encode(RecordError),
    /// The consumer found a malformed record; it has been consumed. The session should be closed.
    #[error("malformed record #{seq}: {source}")]
    Record {
        /// Sequence number of the record.
        seq: u64,
        /// What was wrong.
        #[source]
        source: RecordError,
    },
    /// The shared positions or record framing are inconsistent (a peer wrote garbage).
    #[error("ring corrupt at position {pos}: {reason}")]
    Corrupt {
        /// Position where it was noticed.
        pos: u64,
        /// What was inconsistent.
        reason: &'static str,
    },
    /// Bad ring geometry (capacity, offsets).
    #[error("bad ring geometry: {0}")]
    Geometry(&'static str),
    /// Waiting for space or records failed (timeout, cancellation, futex).
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// A shared-memory access failed.
    #[error(transparent)]
    Os(#[from] OsError),
}

/// Where a ring lives inside a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingGeometry {
    /// Offset of the control block (64-aligned, [`RING_CTL_SIZE`] bytes).
    pub ctl: usize,
    /// Offset of the data area (8-aligned).
    pub data: usize,
    /// Data bytes: a power of two, at least `4 * MAX_RECORD`.
    pub capacity: u64,
}

/// State both ends share: the mapping and the two position words.
#[derive(Debug)]
struct RingShared {
    map: Arc<Mapping>,
    head: SeqWord,
    tail: SeqWord,
    data: usize,
    cap: u64,
    mask: u64,
}

impl RingShared {
    fn new(map: Arc<Mapping>, g: RingGeometry) -> Result<RingShared, RingError> {
        if !g.capacity.is_power_of_two() || g.capacity < 4 * MAX_RECORD as u64 {
            return Err(RingError::Geometry(
                "capacity must be a power of two >= 64 KiB",
            ));
        }
        if g.ctl & 63 != 0 || g.data & 7 != 0 {
            return Err(RingError::Geometry("misaligned control block or data area"));
        }
        let end = usize::try_from(g.capacity)
            .ok()
            .and_then(|c| g.data.checked_add(c));
        if end.is_none_or(|e| e > map.len()) || g.ctl + RING_CTL_SIZE > map.len() {
            return Err(RingError::Geometry("ring outside the mapping"));
        }
        Ok(RingShared {
            head: SeqWord::at(&map, g.ctl)?,
            tail: SeqWord::at(&map, g.ctl + 64)?,
            map,
            data: g.data,
            cap: g.capacity,
            mask: g.capacity - 1,
        })
    }

    #[inline]
    fn offset(&self, pos: u64) -> usize {
        self.data + (pos & self.mask) as usize
    }
}

/// The producing end (the tenant for the command ring, the broker for the notify ring).
#[derive(Debug)]
pub struct Producer {
    ring: RingShared,
    pos: u64,
    cached_tail: u64,
    seq: u64,
    policy: WaitPolicy,
    cancel: Cancel,
}

impl Producer {
    /// The producer of the ring at `geometry` in `map`. Resumes at the published head. There must
    /// be only one producer per ring (the region hands out one).
    pub fn new(map: Arc<Mapping>, geometry: RingGeometry) -> Result<Producer, RingError> {
        let ring = RingShared::new(map, geometry)?;
        let pos = ring.head.load();
        let cached_tail = ring.tail.load();
        Ok(Producer {
            ring,
            pos,
            cached_tail,
            seq: 0,
            policy: WaitPolicy::default(),
            cancel: Cancel::never(),
        })
    }

    /// Sets how a full ring is waited for.
    pub fn set_wait(&mut self, policy: WaitPolicy, cancel: Cancel) {
        self.policy = policy;
        self.cancel = cancel;
    }

    /// Sequence number of the last record pushed (0 before the first).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Published head position.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes needed to append `len` bytes at the current position (plus a PAD record if the
    /// record would cross the end).
    #[inline]
    fn needed(&self, len: usize) -> (u64, u64) {
        let to_end = self.ring.cap - (self.pos & self.ring.mask);
        let len = len as u64;
        if len <= to_end {
            (len, 0)
        } else {
            (to_end + len, to_end)
        }
    }

    #[inline]
    fn has_room(&self, tail: u64, need: u64) -> Result<bool, RingError> {
        let used = self.pos.wrapping_sub(tail);
        if used > self.ring.cap {
            return Err(RingError::Corrupt {
                pos: self.pos,
                reason: "tail ahead of head",
            });
        }
        Ok(self.ring.cap - used >= need)
    }

    /// Appends `cmd` if there is room now; `Ok(None)` when the ring is full.
    #[inline]
    pub fn try_push(&mut self, cmd: &Command<'_>) -> Result<Option<u64>, RingError> {
        self.push_inner(cmd, false)
    }

    /// Appends `cmd`, waiting (spin, then futex) while the ring is full. Returns its sequence
    /// number.
    #[inline]
    pub fn push(&mut self, cmd: &Command<'_>) -> Result<u64, RingError> {
        match self.push_inner(cmd, true)? {
            Some(seq) => Ok(seq),
            None => Err(RingError::Corrupt {
                pos: self.pos,
                reason: "no room after waiting",
            }),
        }
    }

    fn push_inner(&mut self, cmd: &Command<'_>, wait: bool) -> Result<Option<u64>, RingError> {
        let len = cmd.encoded_len();
        if len > MAX_RECORD {
            return Err(RingError::Encode(RecordError::TooLarge {
                len,
                max: MAX_RECORD,
            }));
        }
        let mut fixed = [0u8; FIXED_MAX];
        let fixed_len = cmd.encode_fixed(&mut fixed).map_err(RingError::Encode)?;
        let (need, pad) = self.needed(len);
        if !self.has_room(self.cached_tail, need)? {
            self.cached_tail = self.ring.tail.load();
            if !self.has_room(self.cached_tail, need)? {
                if !wait {
                    return Ok(None);
                }
                let (pos, cap) = (self.pos, self.ring.cap);
                let cancel = self.cancel.clone();
                self.cached_tail = self.ring.tail.wait_until_or(
                    |t| {
                        let used = pos.wrapping_sub(t);
                        used > cap || cap - used >= need
                    },
                    &self.policy,
                    || cancel.is_cancelled(),
                )?;
                if !self.has_room(self.cached_tail, need)? {
                    return Ok(None);
                }
            }
        }
        let mut at = self.pos;
        if pad > 0 {
            let pad_header = RecordHeader {
                len: pad as u32,
                kind: kind::PAD,
                flags: 0,
            };
            let mut b = [0u8; RecordHeader::SIZE];
            pad_header.write_to(&mut b);
            self.ring.map.write(self.ring.offset(at), &b)?;
            at += pad;
        }
        let off = self.ring.offset(at);
        self.ring.map.write(off, &fixed[..fixed_len])?;
        let var = cmd.variable();
        if !var.is_empty() {
            self.ring.map.write(off + fixed_len, var)?;
        }
        self.pos = at + len as u64;
        self.ring.head.publish(self.pos);
        self.seq += 1;
        Ok(Some(self.seq))
    }
}

/// A buffer a consumer copies one record into ([`MAX_RECORD`] bytes).
#[derive(Debug, Clone)]
pub struct RecordBuf(Box<[u8]>);

impl RecordBuf {
    /// A buffer for the largest record.
    pub fn new() -> RecordBuf {
        RecordBuf(vec![0u8; MAX_RECORD].into_boxed_slice())
    }
}

impl Default for RecordBuf {
    fn default() -> Self {
        Self::new()
    }
}

/// A record taken off the ring, decoded from the consumer's private copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Popped<'b> {
    /// Sequence number (1 for the first record).
    pub seq: u64,
    /// The record.
    pub cmd: Command<'b>,
}

/// The consuming end (the broker for the command ring, the tenant for the notify ring).
#[derive(Debug)]
pub struct Consumer {
    ring: RingShared,
    pos: u64,
    cached_head: u64,
    seq: u64,
    policy: WaitPolicy,
    cancel: Cancel,
}

impl Consumer {
    /// The consumer of the ring at `geometry` in `map`. Resumes at the published tail. There must
    /// be only one consumer per ring.
    pub fn new(map: Arc<Mapping>, geometry: RingGeometry) -> Result<Consumer, RingError> {
        let ring = RingShared::new(map, geometry)?;
        let pos = ring.tail.load();
        Ok(Consumer {
            ring,
            pos,
            cached_head: pos,
            seq: 0,
            policy: WaitPolicy::default(),
            cancel: Cancel::never(),
        })
    }

    /// Sets how an empty ring is waited for in [`Consumer::pop`].
    pub fn set_wait(&mut self, policy: WaitPolicy, cancel: Cancel) {
        self.policy = policy;
        self.cancel = cancel;
    }

    /// Sequence number of the last record taken (0 before the first).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// True when no published record is waiting.
    pub fn is_empty(&self) -> bool {
        self.ring.head.load() == self.pos
    }

    /// Skips padding and returns the offset and length of the next published record, if any.
    fn next_record(&mut self) -> Result<Option<(usize, usize)>, RingError> {
        loop {
            if self.cached_head == self.pos {
                self.cached_head = self.ring.head.load();
                if self.cached_head == self.pos {
                    return Ok(None);
                }
            }
            let avail = self.cached_head.wrapping_sub(self.pos);
            if avail > self.ring.cap {
                return Err(self.corrupt("head out of range"));
            }
            let to_end = self.ring.cap - (self.pos & self.ring.mask);
            let off = self.ring.offset(self.pos);
            let mut hb = [0u8; RecordHeader::SIZE];
            self.ring.map.read(off, &mut hb)?;
            let header = RecordHeader::read_from(&hb).unwrap_or_default();
            let len = u64::from(header.len);
            if len < RecordHeader::SIZE as u64 || len % 8 != 0 || len > avail || len > to_end {
                return Err(self.corrupt("bad record length"));
            }
            if header.kind == kind::PAD {
                if len != to_end {
                    return Err(self.corrupt("padding does not reach the end"));
                }
                self.pos += len;
                continue;
            }
            if len > MAX_RECORD as u64 {
                return Err(self.corrupt("record larger than the maximum"));
            }
            return Ok(Some((off, len as usize)));
        }
    }

    /// Takes the next record if one is published; `Ok(None)` when the ring is empty.
    ///
    /// The record is copied into `buf` and the tail published before it is decoded; a malformed
    /// record is therefore consumed and reported as [`RingError::Record`].
    pub fn try_pop<'b>(&mut self, buf: &'b mut RecordBuf) -> Result<Option<Popped<'b>>, RingError> {
        let Some((off, len)) = self.next_record()? else {
            return Ok(None);
        };
        let bytes = &mut buf.0[..len];
        self.ring.map.read(off, bytes)?;
        self.pos += len as u64;
        self.ring.tail.publish(self.pos);
        self.seq += 1;
        let seq = self.seq;
        match Command::decode(bytes) {
            Ok(cmd) => Ok(Some(Popped { seq, cmd })),
            Err(source) => Err(RingError::Record { seq, source }),
        }
    }

    /// Takes the next record, waiting (spin, then futex on the head) while the ring is empty.
    pub fn pop<'b>(&mut self, buf: &'b mut RecordBuf) -> Result<Popped<'b>, RingError> {
        while self.next_record()?.is_none() {
            // Publish a tail that may have moved past padding, then sleep until the head moves.
            self.ring.tail.publish(self.pos);
            let pos = self.pos;
            let cancel = self.cancel.clone();
            self.cached_head = self.ring.head.wait_until_or(
                |h| h != pos,
                &self.policy,
                || cancel.is_cancelled(),
            )?;
        }
        match self.try_pop(buf)? {
            Some(p) => Ok(p),
            None => Err(self.corrupt("record vanished")),
        }
    }

    fn corrupt(&self, reason: &'static str) -> RingError {
        RingError::Corrupt {
            pos: self.pos,
            reason,
        }
    }
}

#[cfg(test)]
mod tests;
