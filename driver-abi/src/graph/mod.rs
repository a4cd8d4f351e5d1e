//! Stream capture and CUDA graphs, written once for both driver libraries over their family
//! traits (the `Graph` family of the surface; a library opts in with
//! [`implement_graphs!`](crate::implement_graphs)).
//!
//! Where a graph lives: in the process that builds it — the CPU device's process, or the
//! tenant's shim. A graph is a list of nodes with their dependencies ([`store`]); instantiation
//! orders them ([`exec`]); a launch submits each node, in that order, as the library's ordinary
//! stream work (a kernel node is a `cuLaunchKernel` with the node's packed arguments, a copy node
//! a `cuMemcpy2DAsync`, ...). Through the shim that means the broker never sees a graph: it sees
//! the kernels and copies of a launch as ordinary ring records, so the scheduler costs, orders
//! and slices them like any other work, and a graph cannot hold the device longer than the
//! same work submitted one call at a time. The price is one record per node per launch (no
//! driver-side graph launch on a real GPU) and the serialisation of a graph's independent
//! branches on the launch stream (docs/architecture.md, "Graphs").
//!
//! Capture ([`capture`]) records the work submitted to a capturing stream as nodes instead of
//! running it: both libraries ask [`capture::record`] before they submit stream work.
//!
//! - [`cuda`]: the structures of cuda.h the graph API reads and writes.
//! - [`node`]: what a node does, read from the caller's parameters.
//! - [`store`]: graphs, nodes and executable graphs, with their handles.
//! - [`exec`]: instantiation, update and launch.
//! - [`user_object`]: reference-counted user objects graphs keep alive.
//! - [`capture`]: stream capture state and its rules.
//! - [`api`]: the entry points, as the `Graph` family's methods call them.

pub mod api;
pub mod capture;
pub mod cuda;
pub mod exec;
mod implement;
pub mod node;
pub mod store;
pub mod user_object;

#[cfg(test)]
mod tests;

pub use exec::Replay;

/// What a library needs to host graphs: its stream operations (to replay nodes) and its
/// function parameter layouts (to pack kernel nodes' arguments).
pub trait GraphHost: Replay + crate::surface::Module + crate::surface::Device {}
impl<L: Replay + crate::surface::Module + crate::surface::Device> GraphHost for L {}
