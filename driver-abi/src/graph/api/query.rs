//! Graph structure: creating, cloning and destroying graphs, edges, and the queries.

use super::{default_edges, fill, handle, id, ids};
use crate::error::{CuError, CuResult};
use crate::graph::cuda::{CUgraph, CUgraphNode, EdgeData};
use crate::graph::store::{with_store, GraphBody, Id, Store};
use crate::surface::{Flags, Out};

/// `cuGraphCreate`
pub fn graph_create(graph: Out<'_, CUgraph>, _flags: Flags<0>) -> CuResult {
    graph.write(handle(with_store(|s| s.create_graph())))
}

/// `cuGraphDestroy`: a child graph a node owns cannot be destroyed on its own.
pub fn graph_destroy(graph: CUgraph) -> CuResult {
    with_store(|s| {
        if s.owned.contains(&id(graph)) {
            return Err(CuError::INVALID_VALUE);
        }
        s.destroy_graph(id(graph))
    })
}

/// `cuGraphClone`
pub fn graph_clone(clone: Out<'_, CUgraph>, graph: CUgraph) -> CuResult {
    clone.write(handle(with_store(|s| s.clone_graph(id(graph)))?))
}

/// `cuGraphNodeFindInClone`
pub fn graph_node_find_in_clone(
    node: Out<'_, CUgraphNode>,
    original: CUgraphNode,
    clone: CUgraph,
) -> CuResult {
    let found = with_store(|s| {
        s.graph(id(clone))?
            .clone_of
            .get(&id(original))
            .copied()
            .ok_or(CuError::INVALID_VALUE)
    })?;
    node.write(handle(found))
}

/// `cuGraphNodeGetType`
pub fn graph_node_get_type(node: CUgraphNode, kind: Out<'_, i32>) -> CuResult {
    kind.write(with_store(|s| {
        s.node(id(node)).map(|(_, n)| n.kind.type_code())
    })?)
}

/// `cuGraphDestroyNode`
pub fn graph_destroy_node(node: CUgraphNode) -> CuResult {
    with_store(|s| s.destroy_node(id(node)))
}

/// Runs `f` on graph `graph`'s contents.
fn with_graph<T>(graph: CUgraph, f: impl FnOnce(&GraphBody) -> T) -> CuResult<T> {
    with_store(|s| s.graph(id(graph)).map(f))
}

fn handles(list: impl IntoIterator<Item = Id>) -> Vec<CUgraphNode> {
    list.into_iter().map(handle).collect()
}

/// `cuGraphGetNodes`
///
/// # Safety
/// As the array convention of [`fill`].
pub unsafe fn graph_get_nodes(graph: CUgraph, nodes: *mut CUgraphNode, n: *mut usize) -> CuResult {
    let list = with_graph(graph, |b| handles(b.nodes.iter().map(|n| n.id)))?;
    // SAFETY: forwarded.
    unsafe { fill(nodes, n, &list, std::ptr::null_mut()) }
}

/// `cuGraphGetRootNodes`
///
/// # Safety
/// As [`graph_get_nodes`].
pub unsafe fn graph_get_root_nodes(
    graph: CUgraph,
    nodes: *mut CUgraphNode,
    n: *mut usize,
) -> CuResult {
    let list = with_graph(graph, |b| {
        handles(b.nodes.iter().filter(|n| n.deps.is_empty()).map(|n| n.id))
    })?;
    // SAFETY: forwarded.
    unsafe { fill(nodes, n, &list, std::ptr::null_mut()) }
}

/// `cuGraphGetEdges_v2`: `from` and `to` both NULL (count) or both given.
///
/// # Safety
/// As [`fill`], for each of `from`, `to`, `edge_data`.
pub unsafe fn graph_get_edges_v2(
    graph: CUgraph,
    from: *mut CUgraphNode,
    to: *mut CUgraphNode,
    edge_data: *mut EdgeData,
    n: *mut usize,
) -> CuResult {
    if from.is_null() != to.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let edges = with_graph(graph, |b| b.edges())?;
    let (f, t): (Vec<Id>, Vec<Id>) = edges.into_iter().unzip();
    let (f, t) = (handles(f), handles(t));
    let count = f.len();
    // SAFETY: forwarded; each call reads and writes `*n` the same way.
    unsafe {
        let cap = if n.is_null() || from.is_null() {
            0
        } else {
            n.read()
        };
        fill(from, n, &f, std::ptr::null_mut())?;
        if !to.is_null() {
            n.write(cap);
            fill(to, n, &t, std::ptr::null_mut())?;
        }
        if !edge_data.is_null() && !from.is_null() {
            n.write(cap);
            fill(
                edge_data,
                n,
                &vec![EdgeData::default(); count],
                EdgeData::default(),
            )?;
        }
    }
    Ok(())
}

/// `cuGraphGetEdges`
///
/// # Safety
/// As [`graph_get_edges_v2`].
pub unsafe fn graph_get_edges(
    graph: CUgraph,
    from: *mut CUgraphNode,
    to: *mut CUgraphNode,
    n: *mut usize,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { graph_get_edges_v2(graph, from, to, std::ptr::null_mut(), n) }
}

/// A node's dependencies (`deps`) or dependents, with default edge data.
///
/// # Safety
/// As [`fill`].
unsafe fn neighbours(
    node: CUgraphNode,
    out: *mut CUgraphNode,
    edge_data: *mut EdgeData,
    n: *mut usize,
    deps: bool,
) -> CuResult {
    let list = with_store(|s| {
        let (g, node) = s.node(id(node))?;
        let list = if deps {
            node.deps.clone()
        } else {
            s.graph(g)?.dependents(node.id)
        };
        Ok::<_, CuError>(handles(list))
    })?;
    // SAFETY: forwarded.
    unsafe {
        let cap = if n.is_null() || out.is_null() {
            0
        } else {
            n.read()
        };
        fill(out, n, &list, std::ptr::null_mut())?;
        if !edge_data.is_null() && !out.is_null() {
            n.write(cap);
            fill(
                edge_data,
                n,
                &vec![EdgeData::default(); list.len()],
                EdgeData::default(),
            )?;
        }
    }
    Ok(())
}

/// `cuGraphNodeGetDependencies`
///
/// # Safety
/// As [`fill`].
pub unsafe fn graph_node_get_dependencies(
    node: CUgraphNode,
    deps: *mut CUgraphNode,
    n: *mut usize,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { neighbours(node, deps, std::ptr::null_mut(), n, true) }
}

/// `cuGraphNodeGetDependencies_v2`
///
/// # Safety
/// As [`fill`].
pub unsafe fn graph_node_get_dependencies_v2(
    node: CUgraphNode,
    deps: *mut CUgraphNode,
    edge_data: *mut EdgeData,
    n: *mut usize,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { neighbours(node, deps, edge_data, n, true) }
}

/// `cuGraphNodeGetDependentNodes`
///
/// # Safety
/// As [`fill`].
pub unsafe fn graph_node_get_dependent_nodes(
    node: CUgraphNode,
    nodes: *mut CUgraphNode,
    n: *mut usize,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { neighbours(node, nodes, std::ptr::null_mut(), n, false) }
}

/// `cuGraphNodeGetDependentNodes_v2`
///
/// # Safety
/// As [`fill`].
pub unsafe fn graph_node_get_dependent_nodes_v2(
    node: CUgraphNode,
    nodes: *mut CUgraphNode,
    edge_data: *mut EdgeData,
    n: *mut usize,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { neighbours(node, nodes, edge_data, n, false) }
}

/// The `n` edges `from[i] → to[i]`.
///
/// # Safety
/// `from`, `to` NULL or valid for `n` handles each.
unsafe fn edges(
    from: *const CUgraphNode,
    to: *const CUgraphNode,
    n: usize,
) -> CuResult<Vec<(Id, Id)>> {
    // SAFETY: forwarded.
    let (f, t) = unsafe { (ids(from, n)?, ids(to, n)?) };
    Ok(f.into_iter().zip(t).collect())
}

/// Adds or removes (`change`) the `n` edges `from[i] → to[i]` with default edge data.
///
/// # Safety
/// As [`edges`]; `edge_data` NULL or valid for `n` entries.
unsafe fn change_edges(
    graph: CUgraph,
    (from, to): (*const CUgraphNode, *const CUgraphNode),
    edge_data: *const EdgeData,
    n: usize,
    change: fn(&mut Store, Id, &[(Id, Id)]) -> CuResult,
) -> CuResult {
    // SAFETY: forwarded.
    let list = unsafe {
        default_edges(edge_data, n)?;
        edges(from, to, n)?
    };
    with_store(|s| change(s, id(graph), &list))
}

/// `cuGraphAddDependencies_v2`
///
/// # Safety
/// As [`change_edges`].
pub unsafe fn graph_add_dependencies_v2(
    graph: CUgraph,
    from: *const CUgraphNode,
    to: *const CUgraphNode,
    edge_data: *const EdgeData,
    n: usize,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { change_edges(graph, (from, to), edge_data, n, Store::add_edges) }
}

/// `cuGraphAddDependencies`
///
/// # Safety
/// As [`edges`].
pub unsafe fn graph_add_dependencies(
    graph: CUgraph,
    from: *const CUgraphNode,
    to: *const CUgraphNode,
    n: usize,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { graph_add_dependencies_v2(graph, from, to, std::ptr::null(), n) }
}

/// `cuGraphRemoveDependencies_v2`
///
/// # Safety
/// As [`change_edges`].
pub unsafe fn graph_remove_dependencies_v2(
    graph: CUgraph,
    from: *const CUgraphNode,
    to: *const CUgraphNode,
    edge_data: *const EdgeData,
    n: usize,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { change_edges(graph, (from, to), edge_data, n, Store::remove_edges) }
}

/// `cuGraphRemoveDependencies`
///
/// # Safety
/// As [`edges`].
pub unsafe fn graph_remove_dependencies(
    graph: CUgraph,
    from: *const CUgraphNode,
    to: *const CUgraphNode,
    n: usize,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe { graph_remove_dependencies_v2(graph, from, to, std::ptr::null(), n) }
}

/// `cuGraphNodeGetContainingGraph`
pub fn graph_node_get_containing_graph(node: CUgraphNode, graph: Out<'_, CUgraph>) -> CuResult {
    graph.write(handle(with_store(|s| s.node(id(node)).map(|(g, _)| g))?))
}

/// `cuGraphNodeGetLocalId`: the node's position among its graph's nodes, in creation order.
pub fn graph_node_get_local_id(node: CUgraphNode, local: Out<'_, u32>) -> CuResult {
    let pos = with_store(|s| {
        let (g, _) = s.node(id(node))?;
        let pos = s.graph(g)?.nodes.iter().position(|n| n.id == id(node));
        pos.ok_or(CuError::INVALID_VALUE)
    })?;
    local.write(u32::try_from(pos).map_err(|_| CuError::INVALID_VALUE)?)
}

/// `cuGraphNodeGetToolsId`: the handle's id, unique in the process.
pub fn graph_node_get_tools_id(node: CUgraphNode, tools: Out<'_, u64>) -> CuResult {
    with_store(|s| s.node(id(node)).map(|_| ()))?;
    tools.write(id(node) as u64)
}

/// A 32-bit id from a handle id (handles step by 16 from 0x100).
fn short_id(handle: Id) -> CuResult<u32> {
    u32::try_from(handle >> 4).map_err(|_| CuError::INVALID_VALUE)
}

/// `cuGraphGetId`
pub fn graph_get_id(graph: CUgraph, out: Out<'_, u32>) -> CuResult {
    with_graph(graph, |_| ())?;
    out.write(short_id(id(graph))?)
}

/// `cuGraphExecGetId`
pub fn graph_exec_get_id(exec: crate::graph::cuda::CUgraphExec, out: Out<'_, u32>) -> CuResult {
    with_store(|s| s.execs.contains_key(&id(exec)))
        .then_some(())
        .ok_or(CuError::INVALID_VALUE)?;
    out.write(short_id(id(exec))?)
}
