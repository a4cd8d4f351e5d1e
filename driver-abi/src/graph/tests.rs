//! Unit tests of the graph store, instantiation and update, user objects and stream keys (the
//! entry points themselves are tested from C: `tests/c/graph.c`, `tests/c/cudart_graph.c`).

use std::ffi::c_void;

use super::capture::StreamKey;
use super::cuda::{self, ExecUpdateResultInfo};
use super::exec::ExecGraph;
use super::node::NodeKind;
use super::store::{Id, Store};
use super::user_object::UserObjects;
use crate::error::CuError;
use crate::surface::DefaultStream;

fn memset(value: u32) -> NodeKind {
    NodeKind::memset(0x1000, 4, 4, value, 1, 1)
}

/// The memset values of an executable graph's steps, in launch order.
fn order(e: &ExecGraph) -> Vec<u32> {
    e.steps
        .iter()
        .map(|s| match &s.kind {
            NodeKind::Memset(m) => m.value,
            _ => u32::MAX,
        })
        .collect()
}

#[test]
fn dependencies_must_be_nodes_of_the_graph_and_distinct() {
    let mut s = Store::default();
    let (g, h) = (s.create_graph(), s.create_graph());
    let a = s.add_node(g, &[], memset(1)).unwrap();
    let b = s.add_node(h, &[], memset(2)).unwrap();
    assert_eq!(s.add_node(g, &[b], memset(3)), Err(CuError::INVALID_VALUE));
    assert_eq!(
        s.add_node(g, &[a, a], memset(3)),
        Err(CuError::INVALID_VALUE)
    );
    let c = s.add_node(g, &[a], memset(3)).unwrap();
    assert_eq!(
        s.add_edges(g, &[(a, c)]),
        Err(CuError::INVALID_VALUE),
        "exists"
    );
    assert_eq!(
        s.remove_edges(g, &[(c, a)]),
        Err(CuError::INVALID_VALUE),
        "missing"
    );
    s.destroy_node(a).unwrap();
    assert!(s.graph(g).unwrap().node(c).unwrap().deps.is_empty());
    assert_eq!(s.node(a).map(|_| ()), Err(CuError::INVALID_VALUE));
}

#[test]
fn launch_order_is_topological_and_creation_ordered_among_ready_nodes() {
    let mut s = Store::default();
    let g = s.create_graph();
    let a = s.add_node(g, &[], memset(1)).unwrap();
    let b = s.add_node(g, &[], memset(2)).unwrap();
    let c = s.add_node(g, &[], memset(3)).unwrap();
    s.add_edges(g, &[(c, a)]).unwrap();
    let e = ExecGraph::instantiate(&s, g, 0).unwrap();
    assert_eq!(order(&e), [2, 3, 1]);
    s.add_edges(g, &[(a, b)]).unwrap();
    assert_eq!(order(&ExecGraph::instantiate(&s, g, 0).unwrap()), [3, 1, 2]);
    s.add_edges(g, &[(b, c)]).unwrap();
    let cycle = ExecGraph::instantiate(&s, g, 0).map(|_| ());
    assert_eq!(cycle, Err(CuError::INVALID_VALUE));
}

#[test]
fn child_graphs_are_copied_and_flattened() {
    let mut s = Store::default();
    let child = s.create_graph();
    s.add_node(child, &[], memset(7)).unwrap();
    s.add_node(child, &[], memset(8)).unwrap();
    let copy = s.clone_graph(child).unwrap();
    s.owned.insert(copy);
    let g = s.create_graph();
    let first = s.add_node(g, &[], memset(1)).unwrap();
    let node = s.add_node(g, &[first], NodeKind::Child(copy)).unwrap();
    s.add_node(g, &[node], memset(9)).unwrap();
    s.destroy_graph(child).unwrap();
    let e = ExecGraph::instantiate(&s, g, 0).unwrap();
    assert_eq!(order(&e), [1, 7, 8, 9]);
    s.destroy_graph(g).unwrap();
    assert!(
        s.graph(copy).is_err(),
        "the node's copy goes with its graph"
    );
}

#[test]
fn update_takes_parameters_of_the_same_shape_only() {
    let mut s = Store::default();
    let g = s.create_graph();
    let a = s.add_node(g, &[], memset(1)).unwrap();
    s.add_node(g, &[a], memset(2)).unwrap();
    let mut e = ExecGraph::instantiate(&s, g, 0).unwrap();
    let mut info = ExecUpdateResultInfo {
        result: -1,
        error_node: std::ptr::null_mut(),
        error_from_node: std::ptr::null_mut(),
    };
    let h = s.create_graph();
    let x = s.add_node(h, &[], memset(10)).unwrap();
    s.add_node(h, &[x], memset(20)).unwrap();
    e.update(&s, h, &mut info).unwrap();
    assert_eq!(
        (info.result, order(&e)),
        (cuda::UPDATE_SUCCESS, vec![10, 20])
    );
    assert_eq!(
        e.steps[0].node, a,
        "steps keep the instantiated graph's node handles"
    );
    let k = s.create_graph();
    let y = s.add_node(k, &[], memset(1)).unwrap();
    s.add_node(k, &[y], NodeKind::Empty).unwrap();
    assert_eq!(
        e.update(&s, k, &mut info),
        Err(CuError::GRAPH_EXEC_UPDATE_FAILURE)
    );
    assert_eq!(info.result, cuda::UPDATE_ERROR_NODE_TYPE_CHANGED);
    s.add_node(h, &[], memset(3)).unwrap();
    assert_eq!(
        e.update(&s, h, &mut info),
        Err(CuError::GRAPH_EXEC_UPDATE_FAILURE)
    );
    assert_eq!(info.result, cuda::UPDATE_ERROR_TOPOLOGY_CHANGED);
    let instantiate = |flags| ExecGraph::instantiate(&s, g, flags).map(|_| ());
    assert_eq!(
        instantiate(cuda::INSTANTIATE_FLAG_DEVICE_LAUNCH),
        Err(CuError::NOT_SUPPORTED)
    );
    assert_eq!(instantiate(0x100), Err(CuError::INVALID_VALUE));
}

unsafe extern "C" fn nothing(_: *mut c_void) {}

#[test]
fn user_objects_are_destroyed_with_their_last_reference() {
    let mut u = UserObjects::default();
    let id: Id = 0x500;
    assert_eq!(
        u.create(id, nothing, std::ptr::null_mut(), 0),
        Err(CuError::INVALID_VALUE)
    );
    u.create(id, nothing, std::ptr::null_mut(), 2).unwrap();
    u.retain(id, 1).unwrap();
    assert!(u.release(id, 2).unwrap().is_none());
    assert_eq!(
        u.release(id, 2).map(|d| d.is_some()),
        Err(CuError::INVALID_VALUE)
    );
    assert!(u.release(id, 1).unwrap().is_some(), "the last reference");
    assert!(!u.contains(id));
}

#[test]
fn stream_keys_name_default_streams_as_cuda_does() {
    let (legacy, ptds) = (DefaultStream::Legacy, DefaultStream::PerThread);
    let me = StreamKey::PerThread(std::thread::current().id());
    assert_eq!(
        StreamKey::of(std::ptr::null_mut(), legacy),
        StreamKey::Legacy
    );
    assert_eq!(StreamKey::of(std::ptr::null_mut(), ptds), me);
    let handle = |v: usize| std::ptr::without_provenance_mut::<c_void>(v);
    assert_eq!(StreamKey::of(handle(1), ptds), StreamKey::Legacy);
    assert_eq!(StreamKey::of(handle(2), legacy), me);
    assert_eq!(StreamKey::of(handle(0x40), legacy), StreamKey::Handle(0x40));
}
