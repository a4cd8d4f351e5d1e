//! gpushare broker: the control plane of a GPU host.
//!
//! Tenants (through the shim and the `gpushare-client` protocol) connect over a Unix socket;
//! each gets a session with its own shared-memory region, handle tables and memory accounting.
//! Their asynchronous commands arrive in the region's command ring, are resolved and checked by
//! the session, ordered across tenants by the [`scheduler`], and submitted through the
//! [`device`] layer to the worker process of the tenant's isolation group ([`groups`]), which
//! owns a CUDA context (the real driver or the CPU device) and executes them ([`worker`]).
//!
//! Modules:
//! - [`device`]: a worker as the broker sees it (its link, calls, records, death).
//! - [`worker`]: the worker process (`gpushare worker`) and its driver layer (the only `unsafe`
//!   code).
//! - [`groups`]: which tenants share a worker; starting, replacing and retiring workers.
//! - [`handles`], [`memory`]: per-tenant handle tables and memory ownership.
//! - [`dedup`]: deduplication of uploaded device memory (content keys, the index, granules).
//! - [`work`], [`scheduler`]: device operations and their submission order.
//! - [`env`](mod@env): what every session shares (device, scheduler, configuration, shutdown flag).
//! - [`session`]: one tenant or admin connection (threads, ring, requests), and the registry of
//!   live sessions.
//! - [`broker`]: the listener, status and shutdown.
//! - [`policy`], [`reload`]: the policy file, and applying a new one while the broker runs
//!   (SIGHUP, `gpushare policy reload`).
//! - [`paths`], [`admin`], [`run`], [`profile`], [`logging`]: the CLI's helpers.

#![deny(unsafe_code)]

pub mod access;
pub mod admin;
pub mod broker;
pub mod dedup;
pub mod device;
pub mod env;
pub mod groups;
pub mod handles;
pub mod logging;
pub mod memory;
pub mod paths;
pub mod policy;
pub mod private_dir;
pub mod profile;
pub mod reload;
pub mod run;
pub mod scheduler;
pub mod session;
pub mod work;
#[allow(unsafe_code)]
pub mod worker;

pub use broker::{Broker, BrokerConfig, BrokerError, StopHandle};
pub use device::DeviceChoice;
