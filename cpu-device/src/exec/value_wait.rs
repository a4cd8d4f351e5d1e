//! Stream memory-operation waits (`cuStreamWaitValue32`/`64`) and the wake-up that stream writes
//! (`cuStreamWriteValue32`) give.
//!
//! A wait is an op deferred to the host-callback thread ([`super::callback`]) as a host function
//! is, so the work behind it on its stream waits for it as it waits behind a host function (copies,
//! memsets and event records are deferred behind it; a kernel waits for it on the executor
//! thread). Its modelled duration is 0. When its turn comes the callback thread checks the
//! condition; while it does not hold the wait is *parked*: the thread goes on with the deferred ops
//! that do not depend on it, and when it has none to run it sleeps on the word with a non-private
//! futex (the word may be shared with another process), at most [`RECHECK`] at a time, since a
//! writer need not wake anyone (a GPU does not). Every wake-up or timeout re-checks each parked
//! wait, and ends with an error those whose context is poisoned, destroyed or being destroyed
//! ([`Executor::release_context`]), so that a wait nobody satisfies cannot hang a context's
//! teardown.
//!
//! A stream write stores its word atomically, then wakes every futex waiter on it (a thread or
//! another process sleeping on the word, or this device's callback thread).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gpushare_os::futex::{futex_wait, futex_wake};

use super::op::OpState;
use super::Executor;
use crate::context::Context;
use crate::error::{CuError, CuResult};
use crate::memory::DeviceMemory;

/// Longest sleep between two checks of a parked wait.
pub(crate) const RECHECK: Duration = Duration::from_millis(1);

/// `CU_STREAM_WAIT_VALUE_FLUSH`: accepted and ignored (host and device share one memory).
pub(crate) const WAIT_FLUSH: u32 = 1 << 30;

/// The bits of a wait's flags that name its condition.
const CONDITION_MASK: u32 = 0x3;

/// A wait's condition (`CUstreamWaitValue_flags`), on the word read at the address and the value
/// given, both 32 or 64 bits wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
    /// `CU_STREAM_WAIT_VALUE_GEQ` (0): `(int)(*addr - value) >= 0`, wrapping.
    Geq,
    /// `CU_STREAM_WAIT_VALUE_EQ` (1): `*addr == value`.
    Eq,
    /// `CU_STREAM_WAIT_VALUE_AND` (2): `(*addr & value) != 0`.
    And,
    /// `CU_STREAM_WAIT_VALUE_NOR` (3): `~(*addr | value) != 0`.
    Nor,
}

impl Condition {
    /// The condition `flags` names; `None` when another bit than the condition and
    /// `CU_STREAM_WAIT_VALUE_FLUSH` is set.
    pub(crate) fn from_flags(flags: u32) -> Option<Self> {
        if flags & !(CONDITION_MASK | WAIT_FLUSH) != 0 {
            return None;
        }
        Some(match flags & CONDITION_MASK {
            0 => Condition::Geq,
            1 => Condition::Eq,
            2 => Condition::And,
            _ => Condition::Nor,
        })
    }

    /// Whether `word` meets the condition against `value` (64 bits wide when `wide`, else the low
    /// 32 bits of each).
    pub(crate) fn holds(self, word: u64, value: u64, wide: bool) -> bool {
        let mask = if wide { u64::MAX } else { u64::from(u32::MAX) };
        let (word, value) = (word & mask, value & mask);
        match self {
            Condition::Geq if wide => word.wrapping_sub(value) as i64 >= 0,
            Condition::Geq => (word as u32).wrapping_sub(value as u32) as i32 >= 0,
            Condition::Eq => word == value,
            Condition::And => word & value != 0,
            Condition::Nor => !(word | value) & mask != 0,
        }
    }
}

/// A stream wait: later work on its stream waits until the word at `addr` meets `cond`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ValueWait {
    /// Device address (device memory or registered host memory), aligned to the word's size.
    pub addr: u64,
    pub value: u64,
    pub cond: Condition,
    /// A 64-bit word (`cuStreamWaitValue64`).
    pub wide: bool,
}

impl ValueWait {
    fn len(&self) -> u64 {
        if self.wide {
            8
        } else {
            4
        }
    }

    /// Reads the word: `Ok(None)` when the condition holds, else `Ok(Some(v))` with `v` the 32 bits
    /// at `addr` to sleep on; `ILLEGAL_ADDRESS` when the word is no longer device memory.
    pub(crate) fn check(&self, memory: &DeviceMemory) -> CuResult<Option<u32>> {
        let p = memory
            .device_range(self.addr, self.len(), false)
            .map_err(|_| {
                tracing::error!(
                    "a stream wait reads {:#x}, which is no longer valid device memory",
                    self.addr
                );
                CuError::ILLEGAL_ADDRESS
            })?;
        let (word, first) = if self.wide {
            // SAFETY: `p` was validated just now as `len()` bytes of device-accessible memory (an
            // allocation or a registered host range; freeing it while a stream waits on it is the
            // caller's error, as in CUDA) and is 8-byte aligned (checked at submission). It is
            // only loaded through, atomically: writers (other threads, another process, a device
            // op) race with the load as they race with a GPU's.
            let v = unsafe { AtomicU64::from_ptr(p.cast()) }.load(Ordering::Acquire);
            let b = v.to_ne_bytes();
            (v, u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        } else {
            // SAFETY: as above, 4 bytes, 4-byte aligned (checked at submission).
            let v = unsafe { AtomicU32::from_ptr(p.cast()) }.load(Ordering::Acquire);
            (u64::from(v), v)
        };
        Ok((!self.cond.holds(word, self.value, self.wide)).then_some(first))
    }

    /// Sleeps until the 32 bits at `addr` (the first half of a 64-bit word) no longer hold `seen`,
    /// someone wakes the word, or `timeout` passes.
    pub(crate) fn sleep(&self, memory: &DeviceMemory, seen: u32, timeout: Duration) {
        let Ok(p) = memory.device_range(self.addr, 4, false) else {
            std::thread::sleep(timeout);
            return;
        };
        // SAFETY: validated just now as 4 bytes of device-accessible memory, 4-byte aligned
        // (checked at submission); the futex call only hands its address to the kernel.
        let word = unsafe { AtomicU32::from_ptr(p.cast()) };
        if let Err(e) = futex_wait(word, seen, Some(timeout)) {
            tracing::debug!("stream wait on {:#x}: {e}", self.addr);
            std::thread::sleep(timeout);
        }
    }
}

/// `cuStreamWriteValue32`'s write: stores `value` in the 32-bit word at `addr` (release: the
/// stream's earlier writes are visible first), then wakes every futex waiter on it.
pub(crate) fn write_and_wake(memory: &DeviceMemory, addr: u64, value: u32) -> CuResult {
    let p = memory.device_range(addr, 4, true).map_err(|_| {
        tracing::error!("a stream write to {addr:#x}, which is no longer writable device memory");
        CuError::ILLEGAL_ADDRESS
    })?;
    // SAFETY: `p` was validated just now as 4 bytes of writable device-accessible memory (an
    // allocation or a registered host range) and is 4-byte aligned (checked at submission).
    let word = unsafe { AtomicU32::from_ptr(p.cast()) };
    word.store(value, Ordering::Release);
    wake_word(word);
    Ok(())
}

/// Wakes the futex waiters on the 32-bit word at `addr` if it is still device-accessible memory
/// (a parked wait's word: wakes the host-callback thread sleeping on it).
pub(crate) fn wake(memory: &DeviceMemory, addr: u64) {
    if let Ok(p) = memory.device_range(addr, 4, false) {
        // SAFETY: validated just now as 4 bytes of device-accessible memory; `addr` is a parked
        // wait's, checked 4-byte aligned at submission. Only its address reaches the kernel.
        wake_word(unsafe { AtomicU32::from_ptr(p.cast()) });
    }
}

fn wake_word(word: &AtomicU32) {
    if let Err(e) = futex_wake(word, u32::MAX) {
        tracing::debug!("futex wake after a stream write: {e}");
    }
}

/// A stream wait whose condition did not hold when its turn came (the host-callback thread's).
pub(crate) struct Parked {
    pub state: Arc<OpState>,
    pub ctx: Arc<Context>,
    pub wait: ValueWait,
}

impl Executor {
    /// Checks a stream wait: when its condition holds, or its context is poisoned, destroyed or
    /// being destroyed (the error poisons it, so the work behind the wait is skipped), completes
    /// it and returns `None`; else the value to sleep on.
    pub(crate) fn settle_wait(&self, p: &Parked) -> Option<u32> {
        let outcome = if !p.ctx.is_active() || self.closing.contains(&p.ctx.id()) {
            tracing::warn!(
                "a stream wait on {:#x} ends unsatisfied: its context is destroyed",
                p.wait.addr
            );
            Err(CuError::CONTEXT_IS_DESTROYED)
        } else if let Some(e) = p.ctx.sticky_error() {
            Err(e)
        } else {
            match p.wait.check(&self.memory) {
                Ok(Some(seen)) => return Some(seen),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            }
        };
        if let Err(e) = outcome {
            p.ctx.poison(e);
        }
        p.state.complete(outcome.err());
        None
    }

    /// Waits on the calling thread until `p` is settled (no host-callback thread to park it on).
    pub(crate) fn wait_inline(&self, p: &Parked) {
        while let Some(seen) = self.settle_wait(p) {
            p.wait.sleep(&self.memory, seen, RECHECK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Condition::{self, And, Eq, Geq, Nor};

    #[test]
    fn flags_name_a_condition_or_are_invalid() {
        assert_eq!(Condition::from_flags(0), Some(Geq));
        assert_eq!(Condition::from_flags(1), Some(Eq));
        assert_eq!(Condition::from_flags(2), Some(And));
        assert_eq!(Condition::from_flags(3 | 1 << 30), Some(Nor));
        assert_eq!(Condition::from_flags(4), None);
        assert_eq!(Condition::from_flags(1 << 31), None);
    }

    #[test]
    fn conditions_follow_cuda() {
        // GEQ compares the wrapped difference as signed.
        assert!(Geq.holds(5, 5, false) && !Geq.holds(4, 5, false));
        assert!(Geq.holds(5, 0xFFFF_FFF0, false) && !Geq.holds(0xFFFF_FFF0, 0x10, false));
        assert!(Geq.holds(1 << 32, (1 << 32) - 1, true) && !Geq.holds(1, 1 << 32, true));
        // A 32-bit wait ignores the high bits.
        assert!(Eq.holds(7 | 1 << 40, 7, false) && !Eq.holds(7 | 1 << 40, 7, true));
        assert!(And.holds(0b0110, 0b0011, false) && !And.holds(0b0100, 0b0011, false));
        assert!(!Nor.holds(0xFFFF_0000, 0x0000_FFFF, false));
        assert!(Nor.holds(0x7FFF_0000, 0x0000_FFFF, false));
        assert!(Nor.holds(0xFFFF_0000, 0x0000_FFFF, true));
    }
}
