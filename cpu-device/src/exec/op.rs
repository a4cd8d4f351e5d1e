//! Completion records: one [`OpState`] per submitted operation, written once by the executor
//! thread (or, for host functions, stream callbacks and what waits on them, by the host-callback
//! thread) and read by waiters, streams (their last op) and events (their recorded marker).
//!
//! An op counts the threads waiting for it, so that its completion wakes waiters only when it
//! has some ([`super::Executor::publish`]): with one wake-up per completed op, a thread waiting
//! for an event woke for the copy and the other events before it too.

use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::timing::{Nanos, Span};
use crate::error::CuError;

/// A thread counted as waiting for an op ([`OpState::watch`]).
pub(crate) struct Watch<'a>(&'a OpState);

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Completion record of one submitted operation.
#[derive(Debug)]
pub struct OpState {
    /// Global submission sequence number.
    pub seq: u64,
    done: AtomicBool,
    start: AtomicU64,
    end: AtomicU64,
    horizon: AtomicU64,
    error: AtomicU32,
    waiters: AtomicU32,
}

impl OpState {
    pub(crate) fn new(seq: u64) -> Self {
        OpState {
            seq,
            done: AtomicBool::new(false),
            start: AtomicU64::new(0),
            end: AtomicU64::new(0),
            horizon: AtomicU64::new(0),
            error: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }

    /// True once the executor has run (or skipped) the op.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Modelled interval (valid once done).
    pub fn span(&self) -> Span {
        Span {
            start: self.start.load(Ordering::Acquire),
            end: self.end.load(Ordering::Acquire),
        }
    }

    /// Latest modelled end of any op of the same context up to and including this one.
    pub fn horizon(&self) -> Nanos {
        self.horizon.load(Ordering::Acquire)
    }

    /// The error the op failed with, if any.
    pub fn error(&self) -> Option<CuError> {
        CuError::from_code(self.error.load(Ordering::Acquire))
    }

    /// Counts a thread about to wait for the op, until the guard drops; the caller checks
    /// [`OpState::is_done`] after this. The fence pairs with the one in
    /// [`super::Executor::publish`] (Dekker): either the completer sees the count or the waiter
    /// sees the op done.
    pub(crate) fn watch(&self) -> Watch<'_> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        Watch(self)
    }

    /// Whether a thread waits for the op.
    pub(crate) fn is_watched(&self) -> bool {
        self.waiters.load(Ordering::SeqCst) != 0
    }

    /// Records the modelled interval and horizon before the op is done (an op handed to the
    /// host-callback thread: later ops, e.g. a stream wait on it, are modelled from its end).
    pub(crate) fn plan(&self, span: Span, horizon: Nanos) {
        self.start.store(span.start, Ordering::Release);
        self.end.store(span.end, Ordering::Release);
        self.horizon.store(horizon, Ordering::Release);
    }

    /// Marks the op done (after [`OpState::plan`]), with its error.
    pub(crate) fn complete(&self, error: Option<CuError>) {
        self.error
            .store(error.map_or(0, CuError::code), Ordering::Release);
        self.done.store(true, Ordering::Release);
    }

    pub(crate) fn finish(&self, span: Span, horizon: Nanos, error: Option<CuError>) {
        self.plan(span, horizon);
        self.complete(error);
    }
}
