//! Contexts: a CUDA context's identity, flags, limits, activity and sticky error.
//!
//! A [`Context`] is plain data below both the executor ([`crate::exec`]) and the driver-global
//! state ([`crate::state`]): the executor runs work on behalf of contexts, the driver owns the
//! table of live ones and each thread's current-context stack.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::error::{CuError, CuResult};

/// A CUDA context. All resources (memory, streams, events, modules) belong to one.
pub struct Context {
    /// Handle value (set right after insertion in the table).
    pub handle: OnceLock<u64>,
    /// Device ordinal.
    pub device: i32,
    /// `CU_CTX_*` flags.
    pub flags: AtomicU32,
    /// True for the device's primary context.
    pub primary: bool,
    /// False once destroyed (or, for the primary context, released to zero or reset).
    active: AtomicBool,
    /// A sticky error (e.g. `ILLEGAL_ADDRESS` after a faulting kernel): every later call fails with it.
    sticky: AtomicU32,
    /// `cuCtxSetLimit` values.
    pub limits: Mutex<Limits>,
    /// Usage count (`cuCtxAttach`/`cuCtxDetach`): 1 at creation.
    pub usage: AtomicU32,
}

/// Context limits (`CUlimit`).
#[derive(Clone, Debug)]
pub struct Limits {
    /// `CU_LIMIT_STACK_SIZE`
    pub stack_size: u64,
    /// `CU_LIMIT_PRINTF_FIFO_SIZE`
    pub printf_fifo_size: u64,
    /// `CU_LIMIT_MALLOC_HEAP_SIZE`
    pub malloc_heap_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            stack_size: 1024,
            printf_fifo_size: 1 << 20,
            malloc_heap_size: 8 << 20,
        }
    }
}

impl Context {
    /// A new, active context.
    pub fn new(device: i32, flags: u32, primary: bool) -> Self {
        Context {
            handle: OnceLock::new(),
            device,
            flags: AtomicU32::new(flags),
            primary,
            active: AtomicBool::new(true),
            sticky: AtomicU32::new(0),
            limits: Mutex::new(Limits::default()),
            usage: AtomicU32::new(1),
        }
    }

    /// This context's handle value.
    pub fn id(&self) -> u64 {
        self.handle.get().copied().unwrap_or(0)
    }

    /// True until destroyed/deactivated.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Marks the context (in)active.
    pub fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Release);
    }

    /// Records a sticky error; the first one wins.
    pub fn poison(&self, error: CuError) {
        let _ = self
            .sticky
            .compare_exchange(0, error.code(), Ordering::AcqRel, Ordering::Acquire);
    }

    /// Clears the sticky error (only a primary-context reset does this).
    pub fn clear_poison(&self) {
        self.sticky.store(0, Ordering::Release);
    }

    /// The sticky error, if any.
    pub fn sticky_error(&self) -> Option<CuError> {
        CuError::from_code(self.sticky.load(Ordering::Acquire))
    }

    /// Fails with the sticky error if the context is poisoned, or `INVALID_CONTEXT` if inactive.
    pub fn check_usable(&self) -> CuResult {
        if !self.is_active() {
            return Err(CuError::INVALID_CONTEXT);
        }
        match self.sticky_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
