//! Executable graphs: instantiation, parameter updates, launch.

use std::ffi::{c_char, c_void};

use super::{handle, id};
use crate::error::{CuError, CuResult};
use crate::graph::cuda::{
    CUgraph, CUgraphExec, CUgraphNode, ExecUpdateResultInfo, HostNodeParams, InstantiateParams,
    KernelNodeParams, KernelNodeParamsV1, Memcpy3D, MemsetNodeParams, UPDATE_SUCCESS,
};
use crate::graph::exec::{self, ExecGraph};
use crate::graph::node::{host_from, kernel_from, memcpy_from, memset_from, NodeKind};
use crate::graph::store::with_store;
use crate::graph::GraphHost;
use crate::surface::{DefaultStream, In, OptOut, Out};
use crate::sys::{write_c_string, CUcontext, CUdevice, CUevent, CUstream};

/// Instantiates `graph`, returning the new executable graph's id.
fn instantiate(graph: CUgraph, flags: u64) -> CuResult<usize> {
    with_store(|s| {
        let mut exec = ExecGraph::instantiate(s, id(graph), flags)?;
        exec.user_refs = s
            .graph(id(graph))?
            .user_refs
            .iter()
            .map(|(&o, &n)| (o, n))
            .collect();
        for &(object, n) in &exec.user_refs {
            s.user.retain(object, n)?;
        }
        let new = s.fresh();
        s.execs.insert(new, exec);
        Ok(new)
    })
}

/// `cuGraphInstantiateWithFlags`
pub fn graph_instantiate_with_flags(
    exec: Out<'_, CUgraphExec>,
    graph: CUgraph,
    flags: u64,
) -> CuResult {
    exec.write(handle(instantiate(graph, flags)?))
}

/// `cuGraphInstantiate` (CUDA 10 ABI): on failure the log buffer (if any) says why.
///
/// # Safety
/// `log` is NULL or valid for `log_size` bytes.
pub unsafe fn graph_instantiate_v1(
    exec: Out<'_, CUgraphExec>,
    graph: CUgraph,
    error_node: OptOut<'_, CUgraphNode>,
    log: *mut c_char,
    log_size: usize,
) -> CuResult {
    error_node.write(std::ptr::null_mut())?;
    match instantiate(graph, 0) {
        Ok(new) => exec.write(handle(new)),
        Err(e) => {
            if !log.is_null() && log_size > 0 {
                let len = i32::try_from(log_size).unwrap_or(i32::MAX);
                // SAFETY: `log` holds `log_size` bytes per the contract.
                let _ = unsafe {
                    write_c_string(
                        log,
                        len,
                        &format!("graph instantiation failed: {}", e.name()),
                    )
                };
            }
            Err(e)
        }
    }
}

/// `cuGraphInstantiateWithParams`: `result_out` is `CUDA_GRAPH_INSTANTIATE_SUCCESS` (0) or
/// `_ERROR` (1).
///
/// # Safety
/// `params` is NULL or a valid `CUDA_GRAPH_INSTANTIATE_PARAMS`.
pub unsafe fn graph_instantiate_with_params(
    exec: Out<'_, CUgraphExec>,
    graph: CUgraph,
    params: *mut InstantiateParams,
    _ds: DefaultStream,
) -> CuResult {
    if params.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: non-NULL, valid per the contract.
    let mut p = unsafe { params.read_unaligned() };
    let outcome = instantiate(graph, p.flags);
    p.err_node_out = std::ptr::null_mut();
    p.result_out = i32::from(outcome.is_err());
    // SAFETY: as above.
    unsafe { params.write_unaligned(p) };
    exec.write(handle(outcome?))
}

/// `cuGraphExecGetFlags`
pub fn graph_exec_get_flags(exec: CUgraphExec, flags: Out<'_, u64>) -> CuResult {
    flags.write(
        with_store(|s| s.execs.get(&id(exec)).map(|e| e.flags)).ok_or(CuError::INVALID_VALUE)?,
    )
}

/// Replaces the work of node `node` in `exec`.
fn set_exec_node(exec: CUgraphExec, node: CUgraphNode, kind: CuResult<NodeKind>) -> CuResult {
    let kind = kind?;
    with_store(|s| {
        s.execs
            .get_mut(&id(exec))
            .ok_or(CuError::INVALID_VALUE)?
            .set_node(id(node), kind)
    })
}

/// `cuGraphExecKernelNodeSetParams_v2`
///
/// # Safety
/// The parameters' arguments as `cuLaunchKernel` requires.
pub unsafe fn graph_exec_kernel_node_set_params<L: GraphHost>(
    exec: CUgraphExec,
    node: CUgraphNode,
    params: In<KernelNodeParams>,
) -> CuResult {
    // SAFETY: forwarded.
    set_exec_node(
        exec,
        node,
        unsafe { kernel_from::<L>(&params) }.map(NodeKind::Kernel),
    )
}

/// `cuGraphExecKernelNodeSetParams` (v1 parameters).
///
/// # Safety
/// As [`graph_exec_kernel_node_set_params`].
pub unsafe fn graph_exec_kernel_node_set_params_v1<L: GraphHost>(
    exec: CUgraphExec,
    node: CUgraphNode,
    params: In<KernelNodeParamsV1>,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { graph_exec_kernel_node_set_params::<L>(exec, node, In(params.0.into())) }
}

/// `cuGraphExecMemcpyNodeSetParams`
pub fn graph_exec_memcpy_node_set_params(
    exec: CUgraphExec,
    node: CUgraphNode,
    params: In<Memcpy3D>,
    _ctx: CUcontext,
) -> CuResult {
    set_exec_node(exec, node, memcpy_from(&params).map(NodeKind::Memcpy))
}

/// `cuGraphExecMemsetNodeSetParams`
pub fn graph_exec_memset_node_set_params(
    exec: CUgraphExec,
    node: CUgraphNode,
    params: In<MemsetNodeParams>,
    _ctx: CUcontext,
) -> CuResult {
    set_exec_node(exec, node, memset_from(&params).map(NodeKind::Memset))
}

/// `cuGraphExecHostNodeSetParams`
pub fn graph_exec_host_node_set_params(
    exec: CUgraphExec,
    node: CUgraphNode,
    params: In<HostNodeParams>,
) -> CuResult {
    set_exec_node(exec, node, host_from(&params).map(NodeKind::Host))
}

/// `cuGraphExecEventRecordNodeSetEvent`
pub fn graph_exec_event_record_node_set_event(
    exec: CUgraphExec,
    node: CUgraphNode,
    event: CUevent,
) -> CuResult {
    set_exec_node(exec, node, non_null(event).map(NodeKind::EventRecord))
}

/// `cuGraphExecEventWaitNodeSetEvent`
pub fn graph_exec_event_wait_node_set_event(
    exec: CUgraphExec,
    node: CUgraphNode,
    event: CUevent,
) -> CuResult {
    set_exec_node(exec, node, non_null(event).map(NodeKind::EventWait))
}

fn non_null(event: CUevent) -> CuResult<CUevent> {
    if event.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    Ok(event)
}

/// `cuGraphExecUpdate_v2`
pub fn graph_exec_update(
    exec: CUgraphExec,
    graph: CUgraph,
    info: Out<'_, ExecUpdateResultInfo>,
) -> CuResult {
    let mut result = ExecUpdateResultInfo {
        result: UPDATE_SUCCESS,
        error_node: std::ptr::null_mut(),
        error_from_node: std::ptr::null_mut(),
    };
    let outcome = with_store(|s| {
        let mut e = s
            .execs
            .get(&id(exec))
            .cloned()
            .ok_or(CuError::INVALID_VALUE)?;
        e.update(s, id(graph), &mut result)?;
        s.execs.insert(id(exec), e);
        Ok(())
    });
    info.write(result)?;
    outcome
}

/// `cuGraphExecUpdate` (CUDA 10.2 ABI).
pub fn graph_exec_update_v1(
    exec: CUgraphExec,
    graph: CUgraph,
    error_node: Out<'_, CUgraphNode>,
    result: Out<'_, i32>,
) -> CuResult {
    let mut info = ExecUpdateResultInfo {
        result: 0,
        error_node: std::ptr::null_mut(),
        error_from_node: std::ptr::null_mut(),
    };
    let outcome = graph_exec_update(exec, graph, Out::to(&mut info));
    error_node.write(info.error_node)?;
    result.write(info.result)?;
    outcome
}

/// `cuGraphUpload`: nothing to upload (steps are submitted at launch).
pub fn graph_upload(exec: CUgraphExec, _stream: CUstream, _ds: DefaultStream) -> CuResult {
    with_store(|s| s.execs.contains_key(&id(exec)))
        .then_some(())
        .ok_or(CuError::INVALID_VALUE)
}

/// `cuGraphLaunch`: the steps, in order, as `L`'s stream work on `stream`.
///
/// # Safety
/// The host pointers and functions of the graph's nodes are valid (the caller's contract).
pub unsafe fn graph_launch<L: GraphHost>(
    exec: CUgraphExec,
    stream: CUstream,
    ds: DefaultStream,
) -> CuResult {
    let steps = with_store(|s| s.execs.get(&id(exec)).map(|e| e.steps.clone()))
        .ok_or(CuError::INVALID_VALUE)?;
    // SAFETY: forwarded.
    unsafe { exec::launch::<L>(&steps, stream, ds) }
}

/// `CU_GRAPH_MEM_ATTR_USED_MEM_HIGH`, `CU_GRAPH_MEM_ATTR_RESERVED_MEM_HIGH`: the settable ones.
const GRAPH_MEM_HIGH_WATERMARKS: [i32; 2] = [1, 3];

/// Checks `device` (`INVALID_DEVICE` when it does not exist) and a graph-memory attribute.
fn graph_mem_args<L: GraphHost>(device: CUdevice, attr: i32, value: *mut c_void) -> CuResult {
    let mut count = 0;
    L::device_get_count(Out::to(&mut count))?;
    if !(0..count).contains(&device) {
        return Err(CuError::INVALID_DEVICE);
    }
    if !(0..=3).contains(&attr) || value.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    Ok(())
}

/// `cuDeviceGetGraphMemAttribute`: graphs allocate no memory here (allocation nodes are not
/// supported), so every figure is 0.
///
/// # Safety
/// `value` is NULL or valid for a write of a `cuuint64_t`.
pub unsafe fn device_get_graph_mem_attribute<L: GraphHost>(
    device: CUdevice,
    attr: i32,
    value: *mut c_void,
) -> CuResult {
    graph_mem_args::<L>(device, attr, value)?;
    // SAFETY: non-NULL (checked), valid for a u64 per the contract.
    unsafe { value.cast::<u64>().write_unaligned(0) };
    Ok(())
}

/// `cuDeviceSetGraphMemAttribute`: only the high watermarks, and only reset to 0.
///
/// # Safety
/// `value` is NULL or valid for a read of a `cuuint64_t`.
pub unsafe fn device_set_graph_mem_attribute<L: GraphHost>(
    device: CUdevice,
    attr: i32,
    value: *mut c_void,
) -> CuResult {
    graph_mem_args::<L>(device, attr, value)?;
    // SAFETY: non-NULL (checked), valid for a u64 per the contract.
    let v = unsafe { value.cast::<u64>().read_unaligned() };
    if !GRAPH_MEM_HIGH_WATERMARKS.contains(&attr) || v != 0 {
        return Err(CuError::INVALID_VALUE);
    }
    Ok(())
}

/// `cuDeviceGraphMemTrim`: nothing is cached for graphs.
pub fn device_graph_mem_trim<L: GraphHost>(device: CUdevice) -> CuResult {
    let mut one = 0u64;
    // SAFETY: a local u64.
    unsafe { device_get_graph_mem_attribute::<L>(device, 0, (&mut one as *mut u64).cast()) }
}

/// `cuGraphExecDestroy`
pub fn graph_exec_destroy(exec: CUgraphExec) -> CuResult {
    with_store(|s| {
        let e = s.execs.remove(&id(exec)).ok_or(CuError::INVALID_VALUE)?;
        s.release_user_refs(e.user_refs);
        Ok(())
    })
}
