//! What one graph node does ([`NodeKind`]), read once from the caller's parameter structures
//! into owned values: a kernel node's arguments are packed into the node's own buffer when it is
//! added (CUDA: the node owns a copy), so the caller's argument storage may go away; copies keep
//! the caller's host pointers, which must stay valid while the graph can run (as in CUDA).

use std::ffi::c_void;

use super::cuda::{
    HostNodeParams, KernelNodeParams, KernelNodeParamsV1, Memcpy3D, MemsetNodeParams,
};
use super::store::Id;
use crate::checks::copy::CopyShape;
use crate::checks::launch::pack_params;
use crate::cuda_h::{CUhostFn, CudaMemcpy2D, MEMORYTYPE_ARRAY, MEMORYTYPE_DEVICE, MEMORYTYPE_HOST};
use crate::error::{CuError, CuResult};
use crate::surface::{Module, OptOut};
use crate::sys::{CUdeviceptr, CUevent, CUfunction};

/// The largest alignment a kernel parameter may have (a C struct's tail padding in an `extra`
/// buffer rounds up to it).
const MAX_PARAM_ALIGN: usize = 16;

/// A kernel launch, its arguments already packed.
#[derive(Debug)]
pub struct KernelNode {
    /// The function (`CUfunction` or, cast, a `CUkernel`).
    pub func: CUfunction,
    /// `gridDim`
    pub grid: [u32; 3],
    /// `blockDim`
    pub block: [u32; 3],
    /// Dynamic shared memory per block.
    pub shared: u32,
    /// The packed parameter buffer.
    pub args: Vec<u8>,
    /// Each parameter's offset in `args` (for `cuGraphKernelNodeGetParams`).
    pub offsets: Vec<usize>,
    /// One pointer per parameter into `args`, handed out by `cuGraphKernelNodeGetParams`.
    arg_ptrs: Vec<usize>,
}

impl KernelNode {
    /// A node from packed arguments and the parameter offsets.
    pub fn new(
        func: CUfunction,
        grid: [u32; 3],
        block: [u32; 3],
        shared: u32,
        args: Vec<u8>,
        offsets: Vec<usize>,
    ) -> Self {
        let mut node = KernelNode {
            func,
            grid,
            block,
            shared,
            args,
            offsets,
            arg_ptrs: Vec::new(),
        };
        node.refresh_ptrs();
        node
    }

    /// Points `arg_ptrs` at this node's own buffer.
    fn refresh_ptrs(&mut self) {
        let base = self.args.as_ptr() as usize;
        self.arg_ptrs = self.offsets.iter().map(|o| base + o).collect();
    }

    /// The parameters as CUDA returns them: `kernelParams` points into the node's storage.
    pub fn params(&self) -> KernelNodeParams {
        KernelNodeParams::from(KernelNodeParamsV1 {
            func: self.func,
            grid: self.grid,
            block: self.block,
            shared: self.shared,
            kernel_params: self.arg_ptrs.as_ptr().cast_mut().cast(),
            extra: std::ptr::null_mut(),
        })
    }
}

impl Clone for KernelNode {
    fn clone(&self) -> Self {
        let (args, offsets) = (self.args.clone(), self.offsets.clone());
        KernelNode::new(self.func, self.grid, self.block, self.shared, args, offsets)
    }
}

/// A 2D memset (`width` elements of `element_size` bytes per row, `height` rows).
pub type MemsetNode = MemsetNodeParams;

/// A host function and its argument.
#[derive(Clone, Copy, Debug)]
pub struct HostNode {
    /// The function.
    pub func: CUhostFn,
    /// Its argument.
    pub data: *mut c_void,
}

/// What a node does.
#[derive(Clone, Debug)]
pub enum NodeKind {
    /// A kernel launch.
    Kernel(KernelNode),
    /// A copy: a 3D descriptor whose depth is 1 (run as a 2D copy).
    Memcpy(Memcpy3D),
    /// A memset.
    Memset(MemsetNode),
    /// A host function.
    Host(HostNode),
    /// A child graph (a copy the node owns).
    Child(Id),
    /// Nothing (a join point).
    Empty,
    /// Records an event.
    EventRecord(CUevent),
    /// Waits for an event.
    EventWait(CUevent),
}

// SAFETY: the raw pointers a node holds (host buffers, host-function arguments, the argument
// pointers into its own buffer) are the caller's values, only handed back to the driver
// functions that use them, as CUDA itself does from its own threads.
unsafe impl Send for NodeKind {}
// SAFETY: shared access only reads the pointer values (the pointees are never touched here).
unsafe impl Sync for NodeKind {}

impl NodeKind {
    /// The node a captured copy becomes.
    pub fn copy(r: &CopyShape) -> NodeKind {
        let side = |dev: bool| {
            if dev {
                MEMORYTYPE_DEVICE
            } else {
                MEMORYTYPE_HOST
            }
        };
        let (dst_host, dst_device) = if r.dst_dev { (0, r.dst) } else { (r.dst, 0) };
        let (src_host, src_device) = if r.src_dev { (0, r.src) } else { (r.src, 0) };
        NodeKind::Memcpy(memcpy_3d(&CudaMemcpy2D {
            src_x_in_bytes: 0,
            src_y: 0,
            src_memory_type: side(r.src_dev),
            src_host: src_host as *const c_void,
            src_device,
            src_array: std::ptr::null_mut(),
            src_pitch: r.src_pitch as usize,
            dst_x_in_bytes: 0,
            dst_y: 0,
            dst_memory_type: side(r.dst_dev),
            dst_host: dst_host as *mut c_void,
            dst_device,
            dst_array: std::ptr::null_mut(),
            dst_pitch: r.dst_pitch as usize,
            width_in_bytes: r.width as usize,
            height: r.height as usize,
        }))
    }

    /// The node a captured memset becomes: `height` rows of `width` elements of `elem` bytes.
    pub fn memset(
        dst: CUdeviceptr,
        pitch: u64,
        elem: u8,
        value: u32,
        width: u64,
        height: u64,
    ) -> NodeKind {
        NodeKind::Memset(MemsetNodeParams {
            dst,
            pitch: pitch as usize,
            value,
            element_size: u32::from(elem),
            width: width as usize,
            height: height as usize,
        })
    }

    /// The node a captured launch becomes: the packed arguments and each parameter's offset.
    pub fn kernel(
        func: CUfunction,
        grid: [u32; 3],
        block: [u32; 3],
        shared: u32,
        args: &[u8],
        offsets: Vec<usize>,
    ) -> NodeKind {
        NodeKind::Kernel(KernelNode::new(
            func,
            grid,
            block,
            shared,
            args.to_vec(),
            offsets,
        ))
    }

    /// `CUgraphNodeType` of this node.
    pub fn type_code(&self) -> i32 {
        use super::cuda::node_type::*;
        match self {
            NodeKind::Kernel(_) => KERNEL,
            NodeKind::Memcpy(_) => MEMCPY,
            NodeKind::Memset(_) => MEMSET,
            NodeKind::Host(_) => HOST,
            NodeKind::Child(_) => GRAPH,
            NodeKind::Empty => EMPTY,
            NodeKind::EventRecord(_) => EVENT_RECORD,
            NodeKind::EventWait(_) => WAIT_EVENT,
        }
    }
}

/// Reads a kernel node's parameters: the function (`func`, else `kern`), the shape, and the
/// arguments (`kernelParams` or `extra`) packed with the function's parameter layout, which `L`
/// reports (`cuFuncGetParamInfo`).
///
/// # Safety
/// `p.kernel_params` / `p.extra` are as `cuLaunchKernel` requires.
pub unsafe fn kernel_from<L: Module>(params: &KernelNodeParams) -> CuResult<KernelNode> {
    let p = &params.base;
    let func = if p.func.is_null() {
        params.kern
    } else {
        p.func
    };
    if func.is_null() {
        tracing::debug!("kernel node without a function");
        return Err(CuError::INVALID_VALUE);
    }
    let layout = param_layout::<L>(func)?;
    let need = layout.iter().map(|(o, s)| o + s).max().unwrap_or(0);
    let mut args = vec![0u8; need];
    // SAFETY: the caller's arguments, valid per the contract; `args` holds `need` bytes.
    unsafe {
        pack_params(
            layout.iter().copied(),
            need,
            MAX_PARAM_ALIGN,
            p.kernel_params,
            p.extra,
            &mut args,
        )
    }
    .map_err(|msg| {
        tracing::warn!("kernel node rejected: {msg}");
        CuError::INVALID_VALUE
    })?;
    let offsets = layout.iter().map(|(o, _)| *o).collect();
    Ok(KernelNode::new(
        func, p.grid, p.block, p.shared, args, offsets,
    ))
}

/// The function's parameters, (offset, size) each, from `cuFuncGetParamInfo`.
pub fn param_layout<L: Module>(func: CUfunction) -> CuResult<Vec<(usize, usize)>> {
    let mut layout = Vec::new();
    loop {
        let (mut offset, mut size) = (0usize, 0usize);
        let (o, s) = (OptOut::to(&mut offset), OptOut::to(&mut size));
        match L::func_get_param_info(func, layout.len(), o, s) {
            Ok(()) => layout.push((offset, size)),
            Err(e) if e == CuError::INVALID_VALUE => return Ok(layout),
            Err(e) => return Err(e),
        }
    }
}

/// Checks a copy node's descriptor: no arrays, depth 1 (a 2D copy), which is what stream capture
/// and `cudaGraphAddMemcpyNode1D`/2D produce.
pub fn memcpy_from(p: &Memcpy3D) -> CuResult<Memcpy3D> {
    let array = p.src_memory_type == MEMORYTYPE_ARRAY || p.dst_memory_type == MEMORYTYPE_ARRAY;
    if array || p.depth > 1 || p.src_z != 0 || p.dst_z != 0 {
        tracing::warn!(
            "memcpy node: arrays and 3D copies are not supported (depth {})",
            p.depth
        );
        return Err(CuError::NOT_SUPPORTED);
    }
    if p.width_in_bytes == 0 || p.height == 0 || p.depth == 0 {
        return Err(CuError::INVALID_VALUE);
    }
    Ok(*p)
}

/// The 2D copy a node's descriptor describes.
pub fn memcpy_2d(p: &Memcpy3D) -> CudaMemcpy2D {
    CudaMemcpy2D {
        src_x_in_bytes: p.src_x_in_bytes,
        src_y: p.src_y,
        src_memory_type: p.src_memory_type,
        src_host: p.src_host,
        src_device: p.src_device,
        src_array: p.src_array,
        src_pitch: p.src_pitch,
        dst_x_in_bytes: p.dst_x_in_bytes,
        dst_y: p.dst_y,
        dst_memory_type: p.dst_memory_type,
        dst_host: p.dst_host,
        dst_device: p.dst_device,
        dst_array: p.dst_array,
        dst_pitch: p.dst_pitch,
        width_in_bytes: p.width_in_bytes,
        height: p.height,
    }
}

/// The 3D descriptor (depth 1) of a 2D copy, as a captured copy's node reports it.
pub fn memcpy_3d(p: &CudaMemcpy2D) -> Memcpy3D {
    Memcpy3D {
        src_x_in_bytes: p.src_x_in_bytes,
        src_y: p.src_y,
        src_z: 0,
        src_lod: 0,
        src_memory_type: p.src_memory_type,
        src_host: p.src_host,
        src_device: p.src_device,
        src_array: p.src_array,
        reserved0: std::ptr::null_mut(),
        src_pitch: p.src_pitch,
        src_height: p.height,
        dst_x_in_bytes: p.dst_x_in_bytes,
        dst_y: p.dst_y,
        dst_z: 0,
        dst_lod: 0,
        dst_memory_type: p.dst_memory_type,
        dst_host: p.dst_host,
        dst_device: p.dst_device,
        dst_array: p.dst_array,
        reserved1: std::ptr::null_mut(),
        dst_pitch: p.dst_pitch,
        dst_height: p.height,
        width_in_bytes: p.width_in_bytes,
        height: p.height,
        depth: 1,
    }
}

/// Checks a memset node: element size 1, 2 or 4; a pitch of at least a row when several rows.
pub fn memset_from(p: &MemsetNodeParams) -> CuResult<MemsetNode> {
    let row = p.width.checked_mul(p.element_size as usize);
    let ok = matches!(p.element_size, 1 | 2 | 4)
        && p.width > 0
        && p.height > 0
        && row.is_some_and(|row| p.height == 1 || p.pitch >= row);
    if !ok {
        tracing::debug!("memset node rejected: {p:?}");
        return Err(CuError::INVALID_VALUE);
    }
    Ok(*p)
}

/// Checks a host node: the function must be given.
pub fn host_from(p: &HostNodeParams) -> CuResult<HostNode> {
    let func = p.func.ok_or(CuError::INVALID_VALUE)?;
    Ok(HostNode { func, data: p.data })
}
