//! How entry points cross the C ABI.
//!
//! [`cuda_exports!`] turns a list of Rust bodies returning [`CuResult`] into `#[no_mangle] extern "C"`
//! functions that catch panics (a panic never unwinds into the caller: it becomes
//! `CUDA_ERROR_UNKNOWN` with a log line), and records each export in the family's `EXPORTS` table,
//! which `cuGetProcAddress` and the unsupported-symbol list are built from.

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

/// Declares exported driver entry points.
///
/// ```ignore
/// cuda_exports! {
///     fn cuFoo(x: *mut i32) {
///         // body returning CuResult
///     }
/// }
/// ```
/// expands to `#[no_mangle] pub unsafe extern "C" fn cuFoo(x: *mut i32) -> CUresult` plus an entry in
/// this module's `EXPORTS`.
#[macro_export]
macro_rules! cuda_exports {
    ($( $(#[$meta:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) $body:block )*) => {
        $(
            $(#[$meta])*
            ///
            /// # Safety
            /// A C ABI entry point: pointer arguments must be valid as the CUDA driver API requires.
            #[no_mangle]
            #[allow(non_snake_case, clippy::missing_safety_doc)]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> $crate::error::CUresult {
                $crate::export::guard(stringify!($name), || -> $crate::error::CuResult { $body })
            }
        )*
        /// The entry points this module exports.
        pub(crate) const EXPORTS: &[$crate::export::Export] = &[
            $( $crate::export::Export { name: stringify!($name), addr: $name as *const () }, )*
        ];
    };
}
