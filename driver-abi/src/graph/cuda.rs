//! The graph and stream-capture structures and enumerator values of cuda.h (12.9) that the
//! graph entry points read and write.

use std::ffi::c_void;

use crate::cuda_h::CUhostFn;
use crate::sys::{CUcontext, CUdeviceptr, CUevent, CUfunction, CUkernel};

/// `CUgraph`
pub type CUgraph = *mut c_void;
/// `CUgraphNode`
pub type CUgraphNode = *mut c_void;
/// `CUgraphExec`
pub type CUgraphExec = *mut c_void;
/// `CUuserObject`
pub type CUuserObject = *mut c_void;

/// `CUgraphNodeType` values.
pub mod node_type {
    /// `CU_GRAPH_NODE_TYPE_KERNEL`
    pub const KERNEL: i32 = 0;
    /// `CU_GRAPH_NODE_TYPE_MEMCPY`
    pub const MEMCPY: i32 = 1;
    /// `CU_GRAPH_NODE_TYPE_MEMSET`
    pub const MEMSET: i32 = 2;
    /// `CU_GRAPH_NODE_TYPE_HOST`
    pub const HOST: i32 = 3;
    /// `CU_GRAPH_NODE_TYPE_GRAPH`
    pub const GRAPH: i32 = 4;
    /// `CU_GRAPH_NODE_TYPE_EMPTY`
    pub const EMPTY: i32 = 5;
    /// `CU_GRAPH_NODE_TYPE_WAIT_EVENT`
    pub const WAIT_EVENT: i32 = 6;
    /// `CU_GRAPH_NODE_TYPE_EVENT_RECORD`
    pub const EVENT_RECORD: i32 = 7;
}

/// `CUstreamCaptureStatus`: not capturing.
pub const CAPTURE_STATUS_NONE: i32 = 0;
/// `CU_STREAM_CAPTURE_STATUS_ACTIVE`
pub const CAPTURE_STATUS_ACTIVE: i32 = 1;
/// `CU_STREAM_CAPTURE_STATUS_INVALIDATED`
pub const CAPTURE_STATUS_INVALIDATED: i32 = 2;

/// `CU_STREAM_CAPTURE_MODE_GLOBAL`
pub const CAPTURE_MODE_GLOBAL: i32 = 0;
/// `CU_STREAM_CAPTURE_MODE_THREAD_LOCAL`
pub const CAPTURE_MODE_THREAD_LOCAL: i32 = 1;
/// `CU_STREAM_CAPTURE_MODE_RELAXED`
pub const CAPTURE_MODE_RELAXED: i32 = 2;

/// `CU_STREAM_ADD_CAPTURE_DEPENDENCIES` (`cuStreamUpdateCaptureDependencies`)
pub const ADD_CAPTURE_DEPENDENCIES: u32 = 0x0;
/// `CU_STREAM_SET_CAPTURE_DEPENDENCIES`
pub const SET_CAPTURE_DEPENDENCIES: u32 = 0x1;

/// `CUgraphInstantiate_flags` gpushare accepts: auto-free on launch (no allocation nodes, so
/// nothing to free), upload, use-node-priority. Device launch is not supported.
pub const INSTANTIATE_FLAGS: u64 = 0x1 | 0x2 | 0x8;
/// `CUDA_GRAPH_INSTANTIATE_FLAG_DEVICE_LAUNCH`
pub const INSTANTIATE_FLAG_DEVICE_LAUNCH: u64 = 0x4;

/// `CUgraphExecUpdateResult`: success.
pub const UPDATE_SUCCESS: i32 = 0;
/// `CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED`
pub const UPDATE_ERROR_TOPOLOGY_CHANGED: i32 = 2;
/// `CU_GRAPH_EXEC_UPDATE_ERROR_NODE_TYPE_CHANGED`
pub const UPDATE_ERROR_NODE_TYPE_CHANGED: i32 = 3;
/// `CU_GRAPH_EXEC_UPDATE_ERROR_PARAMETERS_CHANGED`
pub const UPDATE_ERROR_PARAMETERS_CHANGED: i32 = 5;
/// `CU_GRAPH_EXEC_UPDATE_ERROR_UNSUPPORTED_FUNCTION_CHANGE`
pub const UPDATE_ERROR_UNSUPPORTED_FUNCTION_CHANGE: i32 = 7;

/// `CUDA_KERNEL_NODE_PARAMS_v1`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)]
pub struct KernelNodeParamsV1 {
    pub func: CUfunction,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared: u32,
    pub kernel_params: *mut *mut c_void,
    pub extra: *mut *mut c_void,
}

/// `CUDA_KERNEL_NODE_PARAMS_v2` (and `_v3`, the same layout): the v1 fields, then `kern` (used
/// when `func` is NULL) and `ctx`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KernelNodeParams {
    /// The v1 fields.
    pub base: KernelNodeParamsV1,
    /// `kern`
    pub kern: CUkernel,
    /// `ctx`
    pub ctx: CUcontext,
}

impl From<KernelNodeParamsV1> for KernelNodeParams {
    fn from(base: KernelNodeParamsV1) -> Self {
        let (kern, ctx) = (std::ptr::null_mut(), std::ptr::null_mut());
        KernelNodeParams { base, kern, ctx }
    }
}

/// `CUDA_MEMSET_NODE_PARAMS` (v1; v2 adds a trailing context, read separately).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct MemsetNodeParams {
    pub dst: CUdeviceptr,
    pub pitch: usize,
    pub value: u32,
    pub element_size: u32,
    pub width: usize,
    pub height: usize,
}

/// `CUDA_HOST_NODE_PARAMS`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)]
pub struct HostNodeParams {
    pub func: Option<CUhostFn>,
    pub data: *mut c_void,
}

/// `CUDA_MEMCPY3D`
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Memcpy3D {
    pub src_x_in_bytes: usize,
    pub src_y: usize,
    pub src_z: usize,
    pub src_lod: usize,
    pub src_memory_type: u32,
    pub src_host: *const c_void,
    pub src_device: CUdeviceptr,
    pub src_array: *mut c_void,
    pub reserved0: *mut c_void,
    pub src_pitch: usize,
    pub src_height: usize,
    pub dst_x_in_bytes: usize,
    pub dst_y: usize,
    pub dst_z: usize,
    pub dst_lod: usize,
    pub dst_memory_type: u32,
    pub dst_host: *mut c_void,
    pub dst_device: CUdeviceptr,
    pub dst_array: *mut c_void,
    pub reserved1: *mut c_void,
    pub dst_pitch: usize,
    pub dst_height: usize,
    pub width_in_bytes: usize,
    pub height: usize,
    pub depth: usize,
}

/// `CUgraphExecUpdateResultInfo`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)]
pub struct ExecUpdateResultInfo {
    pub result: i32,
    pub error_node: CUgraphNode,
    pub error_from_node: CUgraphNode,
}

/// `CUDA_GRAPH_INSTANTIATE_PARAMS`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)]
pub struct InstantiateParams {
    pub flags: u64,
    pub upload_stream: *mut c_void,
    pub err_node_out: CUgraphNode,
    pub result_out: i32,
}

/// `CUgraphNodeParams`: the type, then a 232-byte union, then a reserved word.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NodeParams {
    /// `CUgraphNodeType`
    pub kind: i32,
    /// Must be zero.
    pub reserved0: [i32; 3],
    /// The union, read as the member `kind` names.
    pub body: [u64; 29],
    /// Must be zero.
    pub reserved2: i64,
}

/// `CUDA_CHILD_GRAPH_NODE_PARAMS`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)]
pub struct ChildGraphNodeParams {
    pub graph: CUgraph,
    pub ownership: i32,
}

/// `CUgraphEdgeData`: only the zero value (a full dependency) is supported.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeData {
    /// `from_port`, `to_port`, `type`, then 5 reserved bytes.
    pub bytes: [u8; 8],
}

/// An event handle in a node's parameters (`CUDA_EVENT_RECORD_NODE_PARAMS`,
/// `CUDA_EVENT_WAIT_NODE_PARAMS`).
pub type EventNodeParams = CUevent;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_cuda_h() {
        assert_eq!(std::mem::size_of::<KernelNodeParamsV1>(), 56);
        assert_eq!(std::mem::size_of::<KernelNodeParams>(), 72);
        assert_eq!(std::mem::size_of::<MemsetNodeParams>(), 40);
        assert_eq!(std::mem::size_of::<Memcpy3D>(), 200);
        assert_eq!(std::mem::size_of::<NodeParams>(), 256);
        assert_eq!(std::mem::size_of::<InstantiateParams>(), 32);
    }
}
