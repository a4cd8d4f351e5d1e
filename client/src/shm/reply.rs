//! Reply slots: where the broker puts the reply to a synchronous call made through the ring.
//!
//! Slot `i` starts at `reply_offset + i * (64 + reply_slot_size)`:
//!
//! ```text
//! +0   done   SeqWord  value = ticket of the call whose reply is in the slot
//! +16  owner  u32      0 free, 1 claimed by a tenant thread (tenant-private bookkeeping)
//! +20  len    u32      reply payload bytes
//! +64  data   [u8; reply_slot_size]  postcard ReplyEnvelope
//! ```
//!
//! Tenant: [`ReplySlots::claim`] a slot, push a CALL record naming the slot and a fresh ticket,
//! [`ReplySlots::wait`] until `done` holds the ticket (spin, then futex), copy the reply out,
//! [`ReplySlots::release`]. Broker: [`ReplySlots::complete`] writes the payload and `len`, then
//! publishes the ticket — waking the tenant only if it went to sleep. Tickets are unique per
//! session, so a stale reply can never be mistaken for the current one.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::os::{Mapping, OsError};
use crate::wait::{Cancel, SeqWord, WaitError, WaitPolicy};

/// Errors of the reply slots.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// A slot index outside the table.
    #[error("reply slot {0} does not exist")]
    BadSlot(u32),
    /// A reply longer than a slot.
    #[error("reply of {len} bytes exceeds the {max}-byte reply slot")]
    TooLarge {
        /// Reply bytes.
        len: usize,
        /// Slot size.
        max: usize,
    },
    /// Every slot stayed busy for the whole wait.
    #[error("no free reply slot")]
    NoFreeSlot,
    /// Waiting for the reply failed (timeout, closed session).
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// A shared-memory access failed.
    #[error(transparent)]
    Os(#[from] OsError),
}

/// The reply slot table of a region. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReplySlots {
    map: Arc<Mapping>,
    base: usize,
    stride: usize,
    size: usize,
    count: u32,
    hint: Arc<AtomicU32>,
}

impl ReplySlots {
    pub(crate) fn new(map: Arc<Mapping>, base: usize, size: usize, count: u32) -> ReplySlots {
        ReplySlots {
            map,
            base,
            stride: 64 + size,
            size,
            count,
            hint: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Number of slots.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Payload bytes per slot.
    pub fn slot_size(&self) -> usize {
        self.size
    }

    fn slot_base(&self, slot: u32) -> Result<usize, ReplyError> {
        if slot >= self.count {
            return Err(ReplyError::BadSlot(slot));
        }
        Ok(self.base + slot as usize * self.stride)
    }

    /// The `done` word of a slot (its value is the ticket of the reply it holds).
    pub fn done_word(&self, slot: u32) -> Result<SeqWord, ReplyError> {
        self.done(slot)
    }

    fn done(&self, slot: u32) -> Result<SeqWord, ReplyError> {
        Ok(SeqWord::at(&self.map, self.slot_base(slot)?)?)
    }

    /// Claims a free slot if there is one now.
    pub fn try_claim(&self) -> Option<u32> {
        let n = self.count;
        let start = self.hint.load(Ordering::Relaxed);
        (0..n).map(|k| (start + k) % n).find(|&i| {
            let claimed = self.slot_base(i).ok().and_then(|b| {
                let owner = self.map.atomic_ref::<AtomicU32>(b + 16).ok()?;
                owner
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .ok()
            });
            if claimed.is_some() {
                self.hint.store((i + 1) % n, Ordering::Relaxed);
            }
            claimed.is_some()
        })
    }

    /// Claims a free slot, sleeping in short steps (never spinning) while all are busy — which
    /// only happens with more concurrent synchronous calls than slots. Gives up after `timeout`.
    pub fn claim(&self, timeout: Duration, cancel: &Cancel) -> Result<u32, ReplyError> {
        let start = std::time::Instant::now();
        let mut nap = Duration::from_micros(10);
        loop {
            if let Some(slot) = self.try_claim() {
                return Ok(slot);
            }
            if cancel.is_cancelled() {
                return Err(ReplyError::Wait(WaitError::Cancelled));
            }
            if start.elapsed() >= timeout {
                return Err(ReplyError::NoFreeSlot);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
        }
    }

    /// Returns a claimed slot.
    pub fn release(&self, slot: u32) -> Result<(), ReplyError> {
        let b = self.slot_base(slot)?;
        self.map
            .atomic_ref::<AtomicU32>(b + 16)?
            .store(0, Ordering::Release);
        Ok(())
    }

    /// Waits until the slot holds the reply for `ticket`, then copies the payload into `out`
    /// (replacing its contents).
    pub fn wait(
        &self,
        slot: u32,
        ticket: u64,
        policy: &WaitPolicy,
        cancel: &Cancel,
        out: &mut Vec<u8>,
    ) -> Result<(), ReplyError> {
        let b = self.slot_base(slot)?;
        self.done(slot)?
            .wait_until_or(|v| v == ticket, policy, || cancel.is_cancelled())?;
        let len = self
            .map
            .atomic_ref::<AtomicU32>(b + 20)?
            .load(Ordering::Acquire) as usize;
        if len > self.size {
            return Err(ReplyError::TooLarge {
                len,
                max: self.size,
            });
        }
        out.clear();
        out.resize(len, 0);
        self.map.read(b + 64, out)?;
        Ok(())
    }

    /// True when the slot already holds the reply for `ticket` (non-blocking check).
    pub fn is_ready(&self, slot: u32, ticket: u64) -> bool {
        self.done(slot).is_ok_and(|d| d.load() == ticket)
    }

    /// Broker side: stores `reply` in `slot` and publishes `ticket`, waking the tenant if it is
    /// asleep.
    pub fn complete(&self, slot: u32, ticket: u64, reply: &[u8]) -> Result<(), ReplyError> {
        let b = self.slot_base(slot)?;
        if reply.len() > self.size {
            return Err(ReplyError::TooLarge {
                len: reply.len(),
                max: self.size,
            });
        }
        self.map.write(b + 64, reply)?;
        self.map
            .atomic_ref::<AtomicU32>(b + 20)?
            .store(reply.len() as u32, Ordering::Release);
        self.done(slot)?.publish(ticket);
        Ok(())
    }
}
