//! Replies: every reply carries the request id and a `CUresult`-like code; the body holds the
//! returned values when the code is `SUCCESS` (and is `Empty` otherwise).

use serde::{Deserialize, Serialize};

use super::admin::{PolicyReloadReport, StatusReport};
use super::handshake::DeviceInfo;
use crate::code::{self, CuCode};

/// One kernel parameter: byte offset in the packed parameter buffer, and size. Parameters are in
/// declaration order; the shim copies `size` bytes from `kernelParams[i]` to `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// Offset in bytes (aligned to the parameter's own alignment).
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// A reply with its request id and result code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplyEnvelope {
    /// The request's id.
    pub id: u64,
    /// `CUresult` (0 = success).
    pub code: CuCode,
    /// Returned values.
    pub body: Reply,
}

impl ReplyEnvelope {
    /// A successful reply.
    pub fn ok(id: u64, body: Reply) -> ReplyEnvelope {
        ReplyEnvelope {
            id,
            code: code::SUCCESS,
            body,
        }
    }

    /// A failed reply (empty body).
    pub fn error(id: u64, code: CuCode) -> ReplyEnvelope {
        ReplyEnvelope {
            id,
            code,
            body: Reply::Empty,
        }
    }

    /// True when the code is `SUCCESS`.
    pub fn is_ok(&self) -> bool {
        self.code == code::SUCCESS
    }

    /// The body on success, the code otherwise.
    pub fn into_result(self) -> Result<Reply, CuCode> {
        if self.is_ok() {
            Ok(self.body)
        } else {
            Err(self.code)
        }
    }
}

/// Returned values, one variant per shape. New variants are only ever appended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Nothing returned (or an error).
    Empty,
    /// Answer to `Ping`.
    Pong,
    /// A device snapshot.
    Device(DeviceInfo),
    /// A context handle.
    Context {
        /// Handle.
        ctx: u64,
    },
    /// A 64-bit value (limit, granularity, pointer attribute).
    Value(u64),
    /// A 32-bit value (function attribute).
    Int(i32),
    /// Stream priority range.
    PriorityRange {
        /// Least priority (numerically greatest).
        least: i32,
        /// Greatest priority (numerically least).
        greatest: i32,
    },
    /// A device pointer (allocation or reservation).
    DevicePtr {
        /// Address.
        ptr: u64,
    },
    /// A pitched allocation.
    Pitched {
        /// Address.
        ptr: u64,
        /// Row pitch in bytes.
        pitch: u64,
    },
    /// Memory figures.
    MemInfo {
        /// Free bytes (for this tenant).
        free: u64,
        /// Total bytes (for this tenant).
        total: u64,
    },
    /// The allocation containing an address.
    AddressRange {
        /// Start.
        base: u64,
        /// Size.
        size: u64,
    },
    /// A registered host buffer.
    HostRegion {
        /// The device-visible address of the buffer's start (`cuMemHostGetDevicePointer`).
        device_ptr: u64,
    },
    /// A physical allocation handle (VMM).
    MemHandle {
        /// Handle.
        handle: u64,
    },
    /// A loaded module.
    Module {
        /// Handle.
        module: u64,
    },
    /// A kernel and the layout of its parameters.
    Function {
        /// Handle.
        function: u64,
        /// Parameters in order.
        params: Vec<ParamInfo>,
    },
    /// A module global.
    Global {
        /// Device address.
        ptr: u64,
        /// Size in bytes.
        size: u64,
    },
    /// A created stream.
    Stream {
        /// Handle.
        stream: u64,
        /// Stream completion slot in the region: holds the sequence number of the last completed
        /// command on this stream.
        completion_slot: u32,
    },
    /// A created event.
    Event {
        /// Handle.
        event: u64,
    },
    /// Milliseconds between two events.
    ElapsedMs(f32),
    /// Broker status (admin).
    Status(StatusReport),
    /// The outcome of a policy reload (admin).
    PolicyReload(PolicyReloadReport),
}
