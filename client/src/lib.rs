//! gpushare client: the protocol and transport shared by the shim (tenant side), the broker and
//! admin tools. See `docs/protocol.md` for the wire formats and `../shared/design.md` for why.
//!
//! Two lanes connect a tenant to the broker:
//! - **Reply lane** — calls that return a value ([`proto::Request`] → [`proto::ReplyEnvelope`]),
//!   postcard-encoded. They travel either on the Unix socket in length-prefixed frames
//!   ([`frame`]) or, faster, as CALL records in the command ring with the reply written to a
//!   reply slot in shared memory ([`shm::ReplySlots`]).
//! - **Async lane** — calls CUDA defines as asynchronous (launch, async copies and memsets, event
//!   record, stream wait, host functions) are fixed-layout records appended to a single-producer
//!   single-consumer ring in shared memory ([`ring`]) with no system call and no reply.
//!
//! Bytes never go through the socket: bulk data is staged in the region's staging area
//! ([`shm::Staging`]) or in registered host buffers ([`shm::HostBuffer`]) and named by offset.
//! Waiting is a bounded spin followed by a futex sleep ([`wait`]), never unbounded polling.
//!
//! Modules, bottom up:
//! - [`os`]: memfd, `MAP_SHARED` mappings, futex, `SCM_RIGHTS`, `SO_PEERCRED` — a re-export of
//!   the `gpushare-os` crate, which holds all the `unsafe` code; this crate has none.
//! - [`fixed`]: `#[repr(C)]` structures with a checked little-endian encoding.
//! - [`code`]: `CUresult` codes.
//! - [`wait`]: [`wait::SeqWord`], spin-then-futex wake-ups across processes.
//! - [`ring`]: the command ring and its records.
//! - [`shm`]: the region layout, staging allocator, reply slots, host buffers.
//! - [`proto`]: control messages; [`frame`]: socket framing; [`handshake`]: Hello/Welcome.
//! - [`client`]: the tenant-side session the shim holds; [`paths`]: where the broker listens.

#![deny(unsafe_code)]

pub mod client;
pub mod code;
#[cfg(test)]
mod doc_tables;
pub mod fixed;
pub mod frame;
pub mod handshake;
pub mod os;
pub mod paths;
pub mod proto;
pub mod ring;
pub mod shm;
pub mod wait;

pub use client::{Client, ClientError, ClientOptions};
pub use proto::{
    BrokerMessage, ClientMessage, Hello, Reply, ReplyEnvelope, Request, RequestEnvelope, Welcome,
    MAX_FRAME, PROTOCOL_VERSION,
};
pub use ring::{Command, Consumer, Producer, RecordBuf};
pub use shm::{HostBuffer, Region, ShmConfig, ShmLayout};
pub use wait::{AdaptiveSpin, SeqWord, WaitPolicy};
