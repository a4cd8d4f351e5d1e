//! How entry points cross the C ABI: the pieces the generated layer
//! ([`crate::surface::exports`]) calls.
//!
//! - [`guard`] runs an entry point's body and turns its [`CuResult`] into a `CUresult`; a panic
//!   never unwinds into the caller: it becomes `CUDA_ERROR_UNKNOWN` with a log line.
//! - [`not_supported`] is the body of every entry point a library does not implement.
//! - [`Export`] is one row of a layer's symbol table, which `cuGetProcAddress` resolves from.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use crate::error::{CUresult, CuError, CuResult};

/// One exported symbol: its C name and address.
#[derive(Clone, Copy, Debug)]
pub struct Export {
    /// The exported symbol name, e.g. `cuMemAlloc_v2`.
    pub name: &'static str,
    /// The function's address.
    pub addr: *const (),
}

// SAFETY: `addr` is the address of an `extern "C"` function: immutable code, valid for the life of
// the library, callable from any thread.
unsafe impl Sync for Export {}
// SAFETY: as above; the address is plain data.
unsafe impl Send for Export {}

/// Runs an entry point's body: converts its result to a code and catches panics.
#[inline]
pub fn guard(name: &'static str, body: impl FnOnce() -> CuResult) -> CUresult {
    log_quietly(crate::log::init);
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            log_quietly(|| tracing::debug!(target: "gpushare::api", "{name} -> {e}"));
            e.code()
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log_quietly(
                || tracing::error!(target: "gpushare::api", "internal error in {name}: {what}"),
            );
            CuError::UNKNOWN.code()
        }
    }
}

/// Runs a logging statement so that it can never unwind into the C caller: during process exit
/// (libcudart's atexit handlers call the driver) the subscriber's thread-locals may already be
/// destroyed, and touching them panics.
#[inline]
pub fn log_quietly(log: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(log));
}

/// Body of every exported entry point a library (`library`: "the CPU device", "the shim") does not
/// implement: logs the name once.
pub fn not_supported(name: &'static str, library: &'static str) -> CUresult {
    static SEEN: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    log_quietly(crate::log::init);
    let first = SEEN
        .lock()
        .map(|mut seen| seen.get_or_insert_with(HashSet::new).insert(name))
        .unwrap_or(false);
    if first {
        log_quietly(
            || tracing::warn!(target: "gpushare::api", "{name} is not supported by {library}"),
        );
    }
    CuError::NOT_SUPPORTED.code()
}
