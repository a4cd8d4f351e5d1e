//! gpushare broker: the only process that talks to the GPU.
//!
//! Tenants (through the shim and the `gpushare-client` protocol) connect over a Unix socket;
//! each gets a session with its own shared-memory region, handle tables and memory accounting.
//! Their asynchronous commands arrive in the region's command ring, are resolved and checked by
//! the session, ordered across tenants by the [`scheduler`], and submitted to the device through
//! the [`device`] layer (cudarc's driver API types, the real driver or the CPU device).
//!
//! Modules:
//! - [`device`]: the driver (the only `unsafe` code).
//! - [`handles`], [`memory`]: per-tenant handle tables and memory ownership.
//! - [`work`], [`scheduler`]: device operations and their submission order.
//! - [`env`](mod@env): what every session shares (device, scheduler, configuration, shutdown flag).
//! - [`session`]: one tenant or admin connection (threads, ring, requests), and the registry of
//!   live sessions.
//! - [`broker`]: the listener, status and shutdown.
//! - [`policy`], [`paths`], [`admin`], [`run`], [`logging`]: configuration and the CLI's
//!   helpers.

#![deny(unsafe_code)]

pub mod admin;
pub mod broker;
#[allow(unsafe_code)]
pub mod device;
pub mod env;
pub mod handles;
pub mod logging;
pub mod memory;
pub mod paths;
pub mod policy;
pub mod run;
pub mod scheduler;
pub mod session;
pub mod work;

pub use broker::{Broker, BrokerConfig, BrokerError, StopHandle};
pub use device::DeviceChoice;
