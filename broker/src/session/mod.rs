//! Sessions: one per connection. A tenant session owns a shared-memory region, handle tables and
//! memory accounting, and runs three threads:
//!
//! - the **socket thread** ([`socket`]): handshake, socket-lane requests, `Goodbye`, end of
//!   stream; it supervises the others and frees everything when the session ends;
//! - the **ring thread** ([`ring`]): consumes the command ring in order; asynchronous commands
//!   are resolved, checked and queued in the scheduler; CALL records go to the executor;
//! - the **executor** ([`exec`]): runs synchronous requests one at a time, each after the
//!   tenant's earlier commands have been submitted; it may block (synchronisation) without
//!   stopping the ring thread, which must keep consuming (e.g. `HOST_FN_DONE` records).
//!
//! Admin sessions have only the socket thread. [`Tenant`] is the state those threads, the
//! dispatcher and host-function callbacks share (its lock order is documented in [`tenant`]);
//! [`Registry`] lists the live sessions.
//!
//! Modules, bottom up — each imports only modules listed before it:
//! [`error`]; [`state`] (the tenant's tables); [`limits`] (bounds on the objects a tenant
//! holds); [`granules`] (allocations of a tenant in deduplication); [`waits`] and
//! [`completion`] (what threads wait for, batches and `retired`);
//! [`tenant`]; [`host`] (host spans); [`dedup`] (what commands mean for deduplicated memory,
//! and the remaps); [`exec`] (the executor and the
//! request handlers, one module per API family); [`ring`]; [`registry`]; [`socket`]. This file
//! only re-exports.

pub mod admission;
pub mod completion;
pub mod dedup;
pub mod error;
pub mod exec;
pub mod granules;
pub mod host;
pub mod limits;
pub mod registry;
pub mod ring;
pub mod socket;
pub mod state;
pub mod tenant;
pub mod waits;

pub use completion::BATCH_MAX;
pub use error::SessionError;
pub use registry::Registry;
pub use tenant::{ReplyTo, SessionInfo, Tenant, FENCE_TIMEOUT, HOST_FN_TIMEOUT};
