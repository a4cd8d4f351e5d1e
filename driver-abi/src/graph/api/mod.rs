//! The `Graph` family's entry points, generic over the library that hosts the graphs
//! ([`GraphHost`](super::GraphHost)): the methods [`implement_graphs!`](crate::implement_graphs)
//! generates call these.
//!
//! Handles are the store's ids; a handle the store does not know is `INVALID_VALUE` (CUDA's
//! answer for a bad graph or node). Arrays of handles are read once here.

mod build;
mod capture;
mod query;
mod run;
mod user;

pub use build::*;
pub use capture::*;
pub use query::*;
pub use run::*;
pub use user::*;

use std::ffi::c_void;

use super::cuda::{CUgraphNode, EdgeData};
use super::store::Id;
use crate::error::{CuError, CuResult};

/// A handle's id.
fn id<T>(handle: *mut T) -> Id {
    handle as usize
}

/// The handle of id `id`.
fn handle(id: Id) -> *mut c_void {
    id as *mut c_void
}

/// `n` handles at `ptr` (NULL only when `n` is 0).
///
/// # Safety
/// `ptr` is NULL or valid for reads of `n` handles.
unsafe fn ids(ptr: *const CUgraphNode, n: usize) -> CuResult<Vec<Id>> {
    match (ptr.is_null(), n) {
        (_, 0) => Ok(Vec::new()),
        (true, _) => Err(CuError::INVALID_VALUE),
        // SAFETY: non-NULL and valid for `n` handles per the caller's contract.
        (false, n) => Ok(unsafe { std::slice::from_raw_parts(ptr, n) }
            .iter()
            .map(|&h| id(h))
            .collect()),
    }
}

/// Edge data given with `n` edges: NULL or all zero (full dependencies; ports and programmatic
/// dependencies are not supported).
///
/// # Safety
/// `ptr` is NULL or valid for reads of `n` entries.
unsafe fn default_edges(ptr: *const EdgeData, n: usize) -> CuResult {
    if ptr.is_null() || n == 0 {
        return Ok(());
    }
    // SAFETY: valid for `n` entries per the caller's contract.
    let data = unsafe { std::slice::from_raw_parts(ptr, n) };
    if data.iter().any(|d| *d != EdgeData::default()) {
        tracing::warn!("graph edges with ports or programmatic dependencies are not supported");
        return Err(CuError::NOT_SUPPORTED);
    }
    Ok(())
}

/// The graph API's array convention: `out` NULL asks the count (written to `*n`); otherwise
/// `*n` is the capacity, that many entries are written (NULL past the end) and `*n` becomes the
/// number of entries written.
///
/// # Safety
/// `n` is NULL or valid for a read and a write; `out` is NULL or valid for `*n` writes.
unsafe fn fill<T: Copy>(out: *mut T, n: *mut usize, items: &[T], none: T) -> CuResult {
    if n.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    if out.is_null() {
        // SAFETY: non-NULL, valid for a write.
        unsafe { n.write(items.len()) };
        return Ok(());
    }
    // SAFETY: non-NULL, valid for a read.
    let cap = unsafe { n.read() };
    for i in 0..cap {
        // SAFETY: `out` holds `cap` entries.
        unsafe { out.add(i).write(items.get(i).copied().unwrap_or(none)) };
    }
    // SAFETY: as above.
    unsafe { n.write(cap.min(items.len())) };
    Ok(())
}
