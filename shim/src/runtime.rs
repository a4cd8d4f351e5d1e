//! The shim's process-wide state: the broker session and what the shim remembers about the
//! tenant's objects so that hot-path calls need no round trip.
//!
//! [`init`] (from `cuInit`) connects once and starts the session's threads ([`threads`]); every
//! other entry point reaches the state through [`runtime`]. All shim-wide state is in the
//! [`Runtime`] ([`session`]): its tables of contexts, streams, events, kernels, modules, device
//! allocations, VMM objects ([`vmm`]), pinned and registered host memory and pointer attributes
//! ([`objects`] has their types, [`memory`] the address lookups). What is per thread — the
//! current-context stack and the per-thread default stream — is in [`current`](mod@current).
//!
//! Handles the application sees are the broker's opaque handle values (contexts, modules,
//! functions, streams, events), so the broker validates them; the shim keeps a table per kind
//! for what it must know locally (a kernel's parameter layout, a stream's completion slot, an
//! event's last record), and an unknown value is `CUDA_ERROR_INVALID_HANDLE` before anything is
//! sent.

use std::sync::Once;

use gpushare_driver_abi::error::CuResult;

pub mod current;
pub mod memory;
pub mod objects;
pub mod session;
pub mod threads;
pub mod vmm;

pub use current::{ctx_rt, current, current_ctx, require_current};
pub use objects::{
    Alloc, ContextState, EventState, FunctionInfo, HostAlloc, HostFnCall, HostMemory, ModuleState,
    Primary, StreamState,
};
pub use session::{runtime, Runtime, PROBE_INTERVAL};

/// `cuInit`: connects to the broker once (later calls return the first outcome) and starts the
/// session's threads.
pub fn init() -> CuResult<&'static Runtime> {
    let rt = session::connect_once()?;
    static THREADS: Once = Once::new();
    THREADS.call_once(|| threads::start(rt));
    Ok(rt)
}
