//! Building graphs: adding nodes of each kind, reading and changing a node's parameters.

use super::{handle, id, ids};
use crate::error::{CuError, CuResult};
use crate::graph::cuda::{
    node_type, CUgraph, CUgraphNode, ChildGraphNodeParams, EdgeData, HostNodeParams,
    KernelNodeParams, KernelNodeParamsV1, Memcpy3D, MemsetNodeParams, NodeParams,
};
use crate::graph::node::{host_from, kernel_from, memcpy_from, memset_from, NodeKind};
use crate::graph::store::{with_store, Id, Store};
use crate::graph::GraphHost;
use crate::surface::{In, Out};
use crate::sys::{CUcontext, CUevent};

/// Adds a node built by `kind` after the `n` dependencies at `deps`.
///
/// # Safety
/// `deps` is NULL or valid for `n` handles.
unsafe fn add(
    node: Out<'_, CUgraphNode>,
    graph: CUgraph,
    deps: *const CUgraphNode,
    n: usize,
    kind: CuResult<NodeKind>,
) -> CuResult {
    // SAFETY: forwarded.
    let deps = unsafe { ids(deps, n) }?;
    let kind = kind?;
    let new = with_store(|s| s.add_node(id(graph), &deps, kind))?;
    node.write(handle(new))
}

/// `cuGraphAddKernelNode_v2`
///
/// # Safety
/// `deps` as [`add`]; the parameters' arguments as `cuLaunchKernel` requires.
pub unsafe fn graph_add_kernel_node<L: GraphHost>(
    node: Out<'_, CUgraphNode>,
    graph: CUgraph,
    deps: *const CUgraphNode,
    n: usize,
    params: In<KernelNodeParams>,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe {
        add(
            node,
            graph,
            deps,
            n,
            kernel_from::<L>(&params).map(NodeKind::Kernel),
        )
    }
}

/// `cuGraphAddKernelNode` (v1 parameters).
///
/// # Safety
/// As [`graph_add_kernel_node`].
pub unsafe fn graph_add_kernel_node_v1<L: GraphHost>(
    node: Out<'_, CUgraphNode>,
    graph: CUgraph,
    deps: *const CUgraphNode,
    n: usize,
    params: In<KernelNodeParamsV1>,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { graph_add_kernel_node::<L>(node, graph, deps, n, In(params.0.into())) }
}

/// `cuGraphAddMemcpyNode`
///
/// # Safety
/// As [`add`].
pub unsafe fn graph_add_memcpy_node(
    node: Out<'_, CUgraphNode>,
    graph: CUgraph,
    deps: *const CUgraphNode,
    n: usize,
    params: In<Memcpy3D>,
    _ctx: CUcontext,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe {
        add(
            node,
            graph,
            deps,
            n,
            memcpy_from(&params).map(NodeKind::Memcpy),
        )
    }
}

/// `cuGraphAddMemsetNode`
///
/// # Safety
/// As [`add`].
pub unsafe fn graph_add_memset_node(
    node: Out<'_, CUgraphNode>,
    graph: CUgraph,
    deps: *const CUgraphNode,
    n: usize,
    params: In<MemsetNodeParams>,
    _ctx: CUcontext,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe {
        add(
            node,
            graph,
            deps,
            n,
            memset_from(&params).map(NodeKind::Memset),
        )
    }
}

/// `cuGraphAddHostNode`
///
/// # Safety
/// As [`add`].
pub unsafe fn graph_add_host_node(
    node: Out<'_, CUgraphNode>,
    graph: CUgraph,
    deps: *const CUgraphNode,
    n: usize,
    params: In<HostNodeParams>,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { add(node, graph, deps, n, host_from(&params).map(NodeKind::Host)) }
}

/// `cuGraphAddEmptyNode`
///
/// # Safety
/// As [`add`].
pub unsafe fn graph_add_empty_node(
    node: Out<'_, CUgraphNode>,
    graph: CUgraph,
    deps: *const CUgraphNode,
    n: usize,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { add(node, graph, deps, n, Ok(NodeKind::Empty)) }
}

/// `cuGraphAddEventRecordNode`
///
/// # Safety
/// As [`add`].
pub unsafe fn graph_add_event_record_node(
    node: Out<'_, CUgraphNode>,
    graph: CUgraph,
    deps: *const CUgraphNode,
    n: usize,
    event: CUevent,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe {
        add(
            node,
            graph,
            deps,
            n,
            event_kind(event, NodeKind::EventRecord),
        )
    }
}

/// `cuGraphAddEventWaitNode`
///
/// # Safety
/// As [`add`].
pub unsafe fn graph_add_event_wait_node(
    node: Out<'_, CUgraphNode>,
    graph: CUgraph,
    deps: *const CUgraphNode,
    n: usize,
    event: CUevent,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { add(node, graph, deps, n, event_kind(event, NodeKind::EventWait)) }
}

fn event_kind(event: CUevent, kind: fn(CUevent) -> NodeKind) -> CuResult<NodeKind> {
    if event.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    Ok(kind(event))
}

/// `cuGraphAddChildGraphNode`: the node gets its own copy of `child`.
///
/// # Safety
/// As [`add`].
pub unsafe fn graph_add_child_graph_node(
    node: Out<'_, CUgraphNode>,
    graph: CUgraph,
    deps: *const CUgraphNode,
    n: usize,
    child: CUgraph,
) -> CuResult {
    // SAFETY: forwarded.
    let deps = unsafe { ids(deps, n) }?;
    let new = with_store(|s| add_child(s, id(graph), &deps, id(child), false))?;
    node.write(handle(new))
}

/// Adds a child-graph node owning a copy of `child` (or, `moved`, `child` itself).
fn add_child(s: &mut Store, graph: Id, deps: &[Id], child: Id, moved: bool) -> CuResult<Id> {
    if child == graph || s.owned.contains(&child) {
        return Err(CuError::INVALID_VALUE);
    }
    s.graph(graph)?;
    let copy = if moved {
        s.graph(child).map(|_| child)?
    } else {
        s.clone_graph(child)?
    };
    s.owned.insert(copy);
    s.add_node(graph, deps, NodeKind::Child(copy))
        .inspect_err(|_| {
            s.owned.remove(&copy);
            if !moved {
                let _ = s.destroy_graph(copy);
            }
        })
}

/// `cuGraphAddNode`
///
/// # Safety
/// As [`add`]; `params` is NULL or a valid `CUgraphNodeParams`.
pub unsafe fn graph_add_node<L: GraphHost>(
    node: Out<'_, CUgraphNode>,
    graph: CUgraph,
    deps: *const CUgraphNode,
    n: usize,
    params: *mut NodeParams,
) -> CuResult {
    if params.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: non-NULL and valid per the contract.
    let p = unsafe { params.read_unaligned() };
    // SAFETY: forwarded.
    let deps = unsafe { ids(deps, n) }?;
    if p.kind == node_type::GRAPH {
        // SAFETY: a child-graph node's member is `CUDA_CHILD_GRAPH_NODE_PARAMS`.
        let c: ChildGraphNodeParams = unsafe { member(&p, 0) };
        let moved = c.ownership == 1;
        let new = with_store(|s| add_child(s, id(graph), &deps, id(c.graph), moved))?;
        return node.write(handle(new));
    }
    // SAFETY: the member read is the one `p.kind` names (the caller's contract).
    let kind = unsafe { node_kind::<L>(&p) }?;
    let new = with_store(|s| s.add_node(id(graph), &deps, kind))?;
    node.write(handle(new))
}

/// The union member of type `T` at byte `offset`.
///
/// # Safety
/// A `T` lies at `offset` in the member `p.kind` names (each is smaller than the 232-byte union).
unsafe fn member<T>(p: &NodeParams, offset: usize) -> T {
    // SAFETY: inside the union per the contract; unaligned reads tolerate packed callers.
    unsafe {
        p.body
            .as_ptr()
            .cast::<u8>()
            .add(offset)
            .cast::<T>()
            .read_unaligned()
    }
}

/// The work a `CUgraphNodeParams` describes (every type but child graphs).
///
/// # Safety
/// `p`'s union holds the member `p.kind` names, whose pointers are valid as for the
/// type-specific calls (`cuGraphAddKernelNode`, ...).
unsafe fn node_kind<L: GraphHost>(p: &NodeParams) -> CuResult<NodeKind> {
    // SAFETY: each arm reads the member its type names: kernel parameters (the v3 layout is the
    // v2 one), `CUDA_MEMCPY_NODE_PARAMS` (flags, reserved, context, then the descriptor at 16),
    // the memset and host parameters (v2 begin with the v1 fields), an event handle.
    unsafe {
        Ok(match p.kind {
            node_type::KERNEL => NodeKind::Kernel(kernel_from::<L>(&member(p, 0))?),
            node_type::MEMCPY => NodeKind::Memcpy(memcpy_from(&member(p, 16))?),
            node_type::MEMSET => NodeKind::Memset(memset_from(&member(p, 0))?),
            node_type::HOST => NodeKind::Host(host_from(&member(p, 0))?),
            node_type::EMPTY => NodeKind::Empty,
            node_type::EVENT_RECORD => event_kind(member(p, 0), NodeKind::EventRecord)?,
            node_type::WAIT_EVENT => event_kind(member(p, 0), NodeKind::EventWait)?,
            other => {
                tracing::warn!("cuGraphAddNode: node type {other} is not supported");
                return Err(CuError::NOT_SUPPORTED);
            }
        })
    }
}

/// `cuGraphAddNode_v2`
///
/// # Safety
/// As [`graph_add_node`]; `edge_data` NULL or valid for `n` entries.
pub unsafe fn graph_add_node_v2<L: GraphHost>(
    node: Out<'_, CUgraphNode>,
    graph: CUgraph,
    deps: *const CUgraphNode,
    edge_data: *const EdgeData,
    n: usize,
    params: *mut NodeParams,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe {
        super::default_edges(edge_data, n)?;
        graph_add_node::<L>(node, graph, deps, n, params)
    }
}

/// Runs `f` on node `node`'s kind.
fn with_kind<T>(node: CUgraphNode, f: impl FnOnce(&mut NodeKind) -> CuResult<T>) -> CuResult<T> {
    with_store(|s| f(s.kind_mut(id(node))?))
}

/// Replaces node `node`'s kind with `new`, which must be of the same type.
fn set_kind(node: CUgraphNode, new: CuResult<NodeKind>) -> CuResult {
    let new = new?;
    with_kind(node, |k| {
        if k.type_code() != new.type_code() {
            return Err(CuError::INVALID_VALUE);
        }
        *k = new;
        Ok(())
    })
}

/// The parameters of kernel node `node` (`kernelParams` pointing into the node).
fn kernel_params(node: CUgraphNode) -> CuResult<KernelNodeParams> {
    with_kind(node, |k| match k {
        NodeKind::Kernel(k) => Ok(k.params()),
        _ => Err(CuError::INVALID_VALUE),
    })
}

/// `cuGraphKernelNodeGetParams_v2`
pub fn graph_kernel_node_get_params(
    node: CUgraphNode,
    params: Out<'_, KernelNodeParams>,
) -> CuResult {
    params.write(kernel_params(node)?)
}

/// `cuGraphKernelNodeGetParams` (v1 parameters).
pub fn graph_kernel_node_get_params_v1(
    node: CUgraphNode,
    params: Out<'_, KernelNodeParamsV1>,
) -> CuResult {
    params.write(kernel_params(node)?.base)
}

/// `cuGraphKernelNodeSetParams_v2`
///
/// # Safety
/// The parameters' arguments as `cuLaunchKernel` requires.
pub unsafe fn graph_kernel_node_set_params<L: GraphHost>(
    node: CUgraphNode,
    params: In<KernelNodeParams>,
) -> CuResult {
    // SAFETY: forwarded.
    set_kind(
        node,
        unsafe { kernel_from::<L>(&params) }.map(NodeKind::Kernel),
    )
}

/// `cuGraphKernelNodeSetParams` (v1 parameters).
///
/// # Safety
/// As [`graph_kernel_node_set_params`].
pub unsafe fn graph_kernel_node_set_params_v1<L: GraphHost>(
    node: CUgraphNode,
    params: In<KernelNodeParamsV1>,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { graph_kernel_node_set_params::<L>(node, In(params.0.into())) }
}

/// `cuGraphMemcpyNodeGetParams`
pub fn graph_memcpy_node_get_params(node: CUgraphNode, params: Out<'_, Memcpy3D>) -> CuResult {
    params.write(with_kind(node, |k| match k {
        NodeKind::Memcpy(p) => Ok(*p),
        _ => Err(CuError::INVALID_VALUE),
    })?)
}

/// `cuGraphMemcpyNodeSetParams`
pub fn graph_memcpy_node_set_params(node: CUgraphNode, params: In<Memcpy3D>) -> CuResult {
    set_kind(node, memcpy_from(&params).map(NodeKind::Memcpy))
}

/// `cuGraphMemsetNodeGetParams`
pub fn graph_memset_node_get_params(
    node: CUgraphNode,
    params: Out<'_, MemsetNodeParams>,
) -> CuResult {
    params.write(with_kind(node, |k| match k {
        NodeKind::Memset(p) => Ok(*p),
        _ => Err(CuError::INVALID_VALUE),
    })?)
}

/// `cuGraphMemsetNodeSetParams`
pub fn graph_memset_node_set_params(node: CUgraphNode, params: In<MemsetNodeParams>) -> CuResult {
    set_kind(node, memset_from(&params).map(NodeKind::Memset))
}

/// `cuGraphHostNodeGetParams`
pub fn graph_host_node_get_params(node: CUgraphNode, params: Out<'_, HostNodeParams>) -> CuResult {
    params.write(with_kind(node, |k| match k {
        NodeKind::Host(h) => Ok(HostNodeParams {
            func: Some(h.func),
            data: h.data,
        }),
        _ => Err(CuError::INVALID_VALUE),
    })?)
}

/// `cuGraphHostNodeSetParams`
pub fn graph_host_node_set_params(node: CUgraphNode, params: In<HostNodeParams>) -> CuResult {
    set_kind(node, host_from(&params).map(NodeKind::Host))
}

/// `cuGraphChildGraphNodeGetGraph`
pub fn graph_child_graph_node_get_graph(node: CUgraphNode, graph: Out<'_, CUgraph>) -> CuResult {
    graph.write(handle(with_kind(node, |k| match k {
        NodeKind::Child(g) => Ok(*g),
        _ => Err(CuError::INVALID_VALUE),
    })?))
}

/// An event node's event (`record` or wait).
fn node_event(node: CUgraphNode, record: bool) -> CuResult<CUevent> {
    with_kind(node, |k| match (k, record) {
        (NodeKind::EventRecord(e), true) | (NodeKind::EventWait(e), false) => Ok(*e),
        _ => Err(CuError::INVALID_VALUE),
    })
}

/// `cuGraphEventRecordNodeGetEvent`
pub fn graph_event_record_node_get_event(node: CUgraphNode, event: Out<'_, CUevent>) -> CuResult {
    event.write(node_event(node, true)?)
}

/// `cuGraphEventRecordNodeSetEvent`
pub fn graph_event_record_node_set_event(node: CUgraphNode, event: CUevent) -> CuResult {
    set_kind(node, event_kind(event, NodeKind::EventRecord))
}

/// `cuGraphEventWaitNodeGetEvent`
pub fn graph_event_wait_node_get_event(node: CUgraphNode, event: Out<'_, CUevent>) -> CuResult {
    event.write(node_event(node, false)?)
}

/// `cuGraphEventWaitNodeSetEvent`
pub fn graph_event_wait_node_set_event(node: CUgraphNode, event: CUevent) -> CuResult {
    set_kind(node, event_kind(event, NodeKind::EventWait))
}
