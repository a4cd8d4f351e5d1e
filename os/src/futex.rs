//! Futex wait and wake on a 32-bit word, across processes.
//!
//! The operations are **non-private** (no `FUTEX_PRIVATE_FLAG`): the kernel keys a non-private
//! futex on a `MAP_SHARED` mapping by file and offset, so a waiter in one process is woken by a
//! waker in another, each through its own mapping of the word. (On private memory they work as
//! usual, keyed by address.) The word is an `&AtomicU32`, in practice one handed out by
//! [`crate::Mapping::atomic`] or [`crate::Mapping::atomic_ref`].
//!
//! The protocol around them (a bounded spin, a waiter count, publish-then-wake) is the caller's:
//! see `gpushare_client::wait`.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex::{self, Flags, Timespec};

use crate::OsError;

/// Outcome of [`futex_wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FutexWait {
    /// Woken by `FUTEX_WAKE` (or spuriously).
    Woken,
    /// The word did not hold the expected value (`EAGAIN`): nothing to wait for.
    ValueChanged,
    /// The timeout elapsed.
    TimedOut,
    /// A signal interrupted the wait.
    Interrupted,
}

/// `FUTEX_WAIT` (non-private) on `word`: sleeps while it holds `expected`, at most `timeout`
/// (relative; `None` waits for ever).
pub fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) -> Result<FutexWait, OsError> {
    let ts = timeout.map(|t| Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    match futex::wait(word, Flags::empty(), expected, ts.as_ref()) {
        Ok(()) => Ok(FutexWait::Woken),
        Err(Errno::AGAIN) => Ok(FutexWait::ValueChanged),
        Err(Errno::TIMEDOUT) => Ok(FutexWait::TimedOut),
        Err(Errno::INTR) => Ok(FutexWait::Interrupted),
        Err(e) => Err(OsError::sys("futex(FUTEX_WAIT)", e)),
    }
}

/// `FUTEX_WAKE` (non-private) on `word`: wakes up to `count` waiters; returns how many woke.
pub fn futex_wake(word: &AtomicU32, count: u32) -> Result<u32, OsError> {
    let count = count.min(i32::MAX as u32);
    let woke = futex::wake(word, Flags::empty(), count)
        .map_err(|e| OsError::sys("futex(FUTEX_WAKE)", e))?;
    Ok(u32::try_from(woke).unwrap_or(u32::MAX))
}
