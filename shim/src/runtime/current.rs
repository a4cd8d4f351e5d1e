//! The calling thread's view: its current-context stack and its per-thread default stream
//! (thread-locals, not shim-wide state), and the streams a `CUstream` argument names.
//!
//! While a thread (or, at exit, the process) tears its thread-locals down there is no stack:
//! `CUDA_ERROR_DEINITIALIZED`, never a panic.

use std::cell::RefCell;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use gpushare_client::proto::{Reply, Request};
use gpushare_driver_abi::error::{CuError, CuResult};
use gpushare_driver_abi::surface::DefaultStream;
use gpushare_driver_abi::sys::{CUstream, CU_STREAM_LEGACY, CU_STREAM_PER_THREAD};

use super::objects::{ContextState, StreamState};
use super::session::{runtime, Runtime};

thread_local! {
    static STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    static PER_THREAD_STREAM: RefCell<Option<Arc<StreamState>>> = const { RefCell::new(None) };
}

/// `CU_STREAM_NON_BLOCKING`: the only stream flag.
const CU_STREAM_NON_BLOCKING: u32 = gpushare_driver_abi::cuda_h::CU_STREAM_NON_BLOCKING;

/// Runs `f` on the calling thread's context stack.
pub fn stack<T>(f: impl FnOnce(&mut Vec<u64>) -> T) -> CuResult<T> {
    STACK
        .try_with(|s| s.try_borrow_mut().map(|mut s| f(&mut s)).ok())
        .ok()
        .flatten()
        .ok_or(CuError::DEINITIALIZED)
}

/// Runs `f` on the calling thread's per-thread default stream slot (see [`stack`]).
pub fn per_thread_slot<T>(f: impl FnOnce(&mut Option<Arc<StreamState>>) -> T) -> CuResult<T> {
    PER_THREAD_STREAM
        .try_with(|p| p.try_borrow_mut().map(|mut p| f(&mut p)).ok())
        .ok()
        .flatten()
        .ok_or(CuError::DEINITIALIZED)
}

/// The calling thread's current context.
#[inline]
pub fn current() -> CuResult<Arc<ContextState>> {
    let rt = runtime()?;
    let top = stack(|s| s.last().copied())?;
    let h = top.filter(|&h| h != 0).ok_or(CuError::INVALID_CONTEXT)?;
    rt.contexts
        .get(&h)
        .map(|c| c.clone())
        .ok_or(CuError::CONTEXT_IS_DESTROYED)
}

/// The handle of the calling thread's current context (0 if none).
pub fn current_ctx() -> u64 {
    current().map_or(0, |c| c.handle)
}

/// Fails with `INVALID_CONTEXT` unless the calling thread has a current context (cheap: a
/// thread-local read).
#[inline]
pub fn require_current() -> CuResult<&'static Runtime> {
    let rt = runtime()?;
    let has = stack(|s| s.last().is_some_and(|&h| h != 0))?;
    if has {
        Ok(rt)
    } else {
        Err(CuError::INVALID_CONTEXT)
    }
}

/// The runtime, if the calling thread has a current context that is not poisoned (the sticky
/// error otherwise), as the CPU device checks for memory and copy calls.
pub fn ctx_rt() -> CuResult<&'static Runtime> {
    let rt = require_current()?;
    rt.sticky()?;
    Ok(rt)
}

impl Runtime {
    /// The stream a `CUstream` argument names; NULL means the default stream `default_stream`
    /// says (the entry point's plain symbol: legacy; its `_ptsz`/`_ptds` twin: per-thread).
    #[inline]
    pub fn stream(
        &self,
        handle: CUstream,
        default_stream: DefaultStream,
    ) -> CuResult<Arc<StreamState>> {
        match handle as usize as u64 {
            0 if default_stream.per_thread() => self.per_thread_stream(),
            0 | CU_STREAM_LEGACY => Ok(self.legacy.clone()),
            CU_STREAM_PER_THREAD => self.per_thread_stream(),
            h => self
                .streams
                .get(&h)
                .map(|s| s.clone())
                .ok_or(CuError::INVALID_HANDLE),
        }
    }

    /// The calling thread's per-thread default stream (created on first use, as a blocking
    /// stream: it synchronises with the legacy default stream like CUDA's does).
    pub fn per_thread_stream(&self) -> CuResult<Arc<StreamState>> {
        if let Some(s) = per_thread_slot(|p| p.clone())? {
            return Ok(s);
        }
        let s = self.create_stream(0, 0)?;
        per_thread_slot(|p| *p = Some(s.clone()))?;
        Ok(s)
    }

    /// Creates a stream on the broker, in the current context, and registers it.
    pub fn create_stream(&self, flags: u32, priority: i32) -> CuResult<Arc<StreamState>> {
        if flags & !CU_STREAM_NON_BLOCKING != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        let (handle, slot) = match self.call(Request::StreamCreate { flags, priority })? {
            Reply::Stream {
                stream,
                completion_slot,
            } => (stream, completion_slot),
            _ => return Err(CuError::UNKNOWN),
        };
        let slot = self
            .region()
            .stream_slot(slot)
            .map_err(|_| CuError::UNKNOWN)?;
        let s = Arc::new(StreamState {
            handle,
            slot,
            last: AtomicU64::new(0),
            flags,
            priority,
            ctx: current_ctx(),
        });
        self.streams.insert(handle, s.clone());
        Ok(s)
    }
}
