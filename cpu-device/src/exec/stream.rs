//! Streams: created streams, each context's legacy default stream and per-thread default streams,
//! and how a `CUstream` argument resolves to one of them.
//!
//! Special handles: `NULL` is the legacy default stream (the per-thread default stream in `_ptsz`
//! / `_ptds` entry points), `CU_STREAM_LEGACY` (0x1) and `CU_STREAM_PER_THREAD` (0x2). A per-thread
//! default stream exists per host thread and context; it is a blocking stream (it synchronises with
//! the legacy stream but not with other threads' per-thread streams).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use super::op::OpState;
use super::timing::StreamClass;
use super::Executor;
use crate::context::Context;
use crate::error::{CuError, CuResult};
use crate::sys::{CU_STREAM_LEGACY, CU_STREAM_PER_THREAD};

pub use gpushare_driver_abi::cuda_h::CU_STREAM_NON_BLOCKING;
/// Least (numerically greatest) stream priority.
pub const PRIORITY_LEAST: i32 = gpushare_driver_abi::cuda_h::STREAM_PRIORITY_LEAST;
/// Greatest (numerically least) stream priority.
pub const PRIORITY_GREATEST: i32 = gpushare_driver_abi::cuda_h::STREAM_PRIORITY_GREATEST;

/// What kind of stream this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// The context's legacy default stream.
    Legacy,
    /// A per-thread default stream.
    PerThread,
    /// Created with `cuStreamCreate*`.
    Created,
}

/// A stream: a FIFO of operations on one context.
pub struct Stream {
    /// Unique key (the timing model's stream id, and `cuStreamGetId`).
    pub key: u64,
    /// Owning context.
    pub ctx: u64,
    /// `CU_STREAM_*` flags.
    pub flags: u32,
    /// Priority, clamped to `[-5, 0]`.
    pub priority: i32,
    /// Legacy, per-thread or created.
    pub kind: StreamKind,
    /// The most recently submitted op (updated under the executor's queue lock).
    pub(crate) last: Mutex<Option<Arc<OpState>>>,
}

impl Stream {
    /// How this stream synchronises with the legacy stream.
    pub fn class(&self) -> StreamClass {
        match self.kind {
            StreamKind::Legacy => StreamClass::Legacy,
            _ if self.flags & CU_STREAM_NON_BLOCKING != 0 => StreamClass::NonBlocking,
            _ => StreamClass::Blocking,
        }
    }

    /// The last submitted op, if any.
    pub fn last_op(&self) -> Option<Arc<OpState>> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

/// Per-context executor state: the legacy and per-thread streams and the last submitted op.
pub struct CtxStreams {
    /// The legacy default stream.
    pub legacy: Arc<Stream>,
    /// Per-thread default streams, by host thread.
    per_thread: Mutex<HashMap<ThreadId, Arc<Stream>>>,
    /// The context's most recently submitted op (updated under the executor's queue lock).
    pub(crate) last: Mutex<Option<Arc<OpState>>>,
}

impl CtxStreams {
    /// Every stream this state owns (legacy and per-thread).
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        let mut v = vec![Arc::clone(&self.legacy)];
        if let Ok(m) = self.per_thread.lock() {
            v.extend(m.values().cloned());
        }
        v
    }
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(16);

/// A fresh stream key.
pub fn next_key() -> u64 {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}

impl Stream {
    /// A stream object (not yet registered anywhere).
    pub fn new(ctx: u64, flags: u32, priority: i32, kind: StreamKind) -> Self {
        Stream {
            key: next_key(),
            ctx,
            flags,
            priority: priority.clamp(PRIORITY_GREATEST, PRIORITY_LEAST),
            kind,
            last: Mutex::new(None),
        }
    }
}

impl Executor {
    /// The executor state of context `ctx`, created on first use.
    pub(crate) fn ctx_streams(&self, ctx: u64) -> Arc<CtxStreams> {
        self.contexts
            .entry(ctx)
            .or_insert_with(|| {
                Arc::new(CtxStreams {
                    legacy: Arc::new(Stream::new(ctx, 0, 0, StreamKind::Legacy)),
                    per_thread: Mutex::new(HashMap::new()),
                    last: Mutex::new(None),
                })
            })
            .clone()
    }

    /// The calling thread's per-thread default stream in `ctx`.
    pub(crate) fn per_thread_stream(&self, ctx: u64) -> CuResult<Arc<Stream>> {
        let cs = self.ctx_streams(ctx);
        let mut m = cs.per_thread.lock().map_err(|_| CuError::UNKNOWN)?;
        Ok(Arc::clone(
            m.entry(std::thread::current().id())
                .or_insert_with(|| Arc::new(Stream::new(ctx, 0, 0, StreamKind::PerThread))),
        ))
    }

    /// Resolves a `CUstream` for work submitted in `ctx` (the current context). `per_thread` says
    /// what NULL means (true in `_ptsz`/`_ptds` entry points). Created streams must belong to `ctx`;
    /// anything else is `INVALID_HANDLE`.
    pub fn resolve_stream(
        &self,
        ctx: &Context,
        raw: u64,
        per_thread: bool,
    ) -> CuResult<Arc<Stream>> {
        match raw {
            0 if per_thread => self.per_thread_stream(ctx.id()),
            0 | CU_STREAM_LEGACY => Ok(Arc::clone(&self.ctx_streams(ctx.id()).legacy)),
            CU_STREAM_PER_THREAD => self.per_thread_stream(ctx.id()),
            h => {
                let s = self.streams.get(h).ok_or_else(|| {
                    tracing::warn!("invalid stream handle {h:#x}");
                    CuError::INVALID_HANDLE
                })?;
                if s.ctx != ctx.id() {
                    tracing::warn!("stream {h:#x} belongs to another context");
                    return Err(CuError::INVALID_HANDLE);
                }
                Ok(s)
            }
        }
    }

    /// Resolves a created stream handle regardless of the current context (for queries,
    /// synchronisation and getters, which CUDA allows on any live stream).
    pub fn created_stream(&self, raw: u64) -> CuResult<Arc<Stream>> {
        self.streams.get(raw).ok_or_else(|| {
            tracing::warn!("invalid stream handle {raw:#x}");
            CuError::INVALID_HANDLE
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_priority_clamp() {
        let s = Stream::new(1, CU_STREAM_NON_BLOCKING, -9, StreamKind::Created);
        assert_eq!(s.class(), StreamClass::NonBlocking);
        assert_eq!(s.priority, -5);
        let b = Stream::new(1, 0, 3, StreamKind::Created);
        assert_eq!(b.class(), StreamClass::Blocking);
        assert_eq!(b.priority, 0);
        assert_ne!(s.key, b.key);
        let l = Stream::new(1, 0, 0, StreamKind::Legacy);
        assert_eq!(l.class(), StreamClass::Legacy);
        let p = Stream::new(1, 0, 0, StreamKind::PerThread);
        assert_eq!(p.class(), StreamClass::Blocking);
    }
}
