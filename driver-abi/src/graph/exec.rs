//! Executable graphs: instantiation orders a graph's nodes topologically (creation order among
//! the ready ones, so a captured sequence replays in the order it was captured; child graphs
//! are flattened in place) into a list of steps; a launch submits the steps, in that order, to
//! the launch stream as ordinary stream work of the library ([`launch`]). On the CPU device the
//! executor runs them; through the shim each step is an ordinary ring record the broker's
//! scheduler sees, costs and interleaves with other tenants' work (docs/architecture.md,
//! "Graphs").
//!
//! One stream per launch serialises the graph's independent branches: the result is one of the
//! orders the graph allows, so outputs are the same; concurrency between branches is lost.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

use super::cuda::{self, ExecUpdateResultInfo};
use super::node::{memcpy_2d, NodeKind};
use super::store::{GraphBody, Id, Store};
use crate::cuda_h::{LAUNCH_PARAM_BUFFER_POINTER, LAUNCH_PARAM_BUFFER_SIZE, LAUNCH_PARAM_END};
use crate::error::{CuError, CuResult};
use crate::surface::{Copies, DefaultStream, Event, Flags, In, Launch, Stream};
use crate::sys::CUstream;

/// One step of a launch: a node's work.
#[derive(Clone, Debug)]
pub struct Step {
    /// The node it came from.
    pub node: Id,
    /// Its work (never a child graph: those are flattened).
    pub kind: NodeKind,
}

/// An instantiated graph.
#[derive(Clone, Debug)]
pub struct ExecGraph {
    /// Instantiation flags.
    pub flags: u64,
    /// References held on user objects (those of the graph at instantiation).
    pub user_refs: Vec<(Id, u32)>,
    /// The steps, in launch order (shared with launches in progress).
    pub steps: Arc<Vec<Step>>,
    /// The top-level nodes of the graph it was made from, in creation order.
    nodes: Vec<Id>,
    /// Its shape: each top-level node's type and dependencies (as positions).
    shape: Vec<(i32, Vec<usize>)>,
}

/// The graph's shape: per node, its type and its dependencies' positions.
fn shape_of(body: &GraphBody) -> Vec<(i32, Vec<usize>)> {
    let pos: HashMap<Id, usize> = body
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id, i))
        .collect();
    body.nodes
        .iter()
        .map(|n| (n.kind.type_code(), n.deps.iter().map(|d| pos[d]).collect()))
        .collect()
}

/// The nodes of `body` in launch order; a cycle is `INVALID_VALUE`.
fn topological(body: &GraphBody) -> CuResult<Vec<usize>> {
    let mut waiting: Vec<usize> = body.nodes.iter().map(|n| n.deps.len()).collect();
    let mut done = vec![false; body.nodes.len()];
    let mut order = Vec::with_capacity(body.nodes.len());
    while order.len() < body.nodes.len() {
        let Some(next) = (0..body.nodes.len()).find(|&i| !done[i] && waiting[i] == 0) else {
            tracing::warn!("graph instantiation: the graph has a cycle");
            return Err(CuError::INVALID_VALUE);
        };
        done[next] = true;
        order.push(next);
        let id = body.nodes[next].id;
        for (i, n) in body.nodes.iter().enumerate() {
            waiting[i] -= n.deps.iter().filter(|&&d| d == id).count();
        }
    }
    Ok(order)
}

/// Appends graph `id`'s steps, children flattened.
fn flatten(store: &Store, id: Id, steps: &mut Vec<Step>) -> CuResult {
    let body = store.graph(id)?;
    for i in topological(body)? {
        let node = &body.nodes[i];
        match &node.kind {
            NodeKind::Child(child) => flatten(store, *child, steps)?,
            kind => steps.push(Step {
                node: node.id,
                kind: kind.clone(),
            }),
        }
    }
    Ok(())
}

impl ExecGraph {
    /// Instantiates graph `id` with `flags`.
    pub fn instantiate(store: &Store, id: Id, flags: u64) -> CuResult<ExecGraph> {
        if flags & cuda::INSTANTIATE_FLAG_DEVICE_LAUNCH != 0 {
            tracing::warn!("graph instantiation: device launch is not supported");
            return Err(CuError::NOT_SUPPORTED);
        }
        if flags & !cuda::INSTANTIATE_FLAGS != 0 {
            return Err(CuError::INVALID_VALUE);
        }
        let mut steps = Vec::new();
        flatten(store, id, &mut steps)?;
        let body = store.graph(id)?;
        Ok(ExecGraph {
            flags,
            user_refs: Vec::new(),
            steps: Arc::new(steps),
            nodes: body.nodes.iter().map(|n| n.id).collect(),
            shape: shape_of(body),
        })
    }

    /// `cuGraphExecUpdate`: takes `graph`'s parameters when it has the same shape (node types
    /// and dependencies, by creation order); otherwise `GRAPH_EXEC_UPDATE_FAILURE` and `info`
    /// says why. Node handles of the graph this was instantiated from keep naming the steps.
    pub fn update(
        &mut self,
        store: &Store,
        graph: Id,
        info: &mut ExecUpdateResultInfo,
    ) -> CuResult {
        let body = store.graph(graph)?;
        let shape = shape_of(body);
        let mismatch =
            (0..shape.len().max(self.shape.len())).find(|&i| shape.get(i) != self.shape.get(i));
        if let Some(i) = mismatch {
            info.result = match (shape.get(i), self.shape.get(i)) {
                (Some((a, _)), Some((b, _))) if a != b => cuda::UPDATE_ERROR_NODE_TYPE_CHANGED,
                _ => cuda::UPDATE_ERROR_TOPOLOGY_CHANGED,
            };
            info.error_node = body
                .nodes
                .get(i)
                .map_or(std::ptr::null_mut(), |n| n.id as *mut c_void);
            return Err(CuError::GRAPH_EXEC_UPDATE_FAILURE);
        }
        let fresh = ExecGraph::instantiate(store, graph, self.flags)?;
        let rename: HashMap<Id, Id> = body
            .nodes
            .iter()
            .map(|n| n.id)
            .zip(self.nodes.iter().copied())
            .collect();
        let steps = fresh
            .steps
            .iter()
            .map(|s| Step {
                node: rename.get(&s.node).copied().unwrap_or(s.node),
                kind: s.kind.clone(),
            })
            .collect();
        self.steps = Arc::new(steps);
        info.result = cuda::UPDATE_SUCCESS;
        Ok(())
    }

    /// Replaces the work of top-level node `node` with `kind` (of the same type).
    pub fn set_node(&mut self, node: Id, kind: NodeKind) -> CuResult {
        let steps = Arc::make_mut(&mut self.steps);
        let step = steps
            .iter_mut()
            .find(|s| s.node == node)
            .ok_or(CuError::INVALID_VALUE)?;
        if step.kind.type_code() != kind.type_code() {
            return Err(CuError::INVALID_VALUE);
        }
        step.kind = kind;
        Ok(())
    }
}

/// The library operations a launch submits.
pub trait Replay: Launch + Copies + Event + Stream {}
impl<L: Launch + Copies + Event + Stream> Replay for L {}

/// Submits `steps` to `stream`, in order, through library `L`'s own stream operations.
///
/// # Safety
/// The host pointers and host functions in the steps are the ones their nodes were given,
/// valid while the graph can run (the caller's CUDA contract).
pub unsafe fn launch<L: Replay>(steps: &[Step], stream: CUstream, ds: DefaultStream) -> CuResult {
    for step in steps {
        // SAFETY: forwarded.
        unsafe { run_step::<L>(&step.kind, stream, ds) }?;
    }
    Ok(())
}

/// Submits one step.
///
/// # Safety
/// As [`launch`].
unsafe fn run_step<L: Replay>(kind: &NodeKind, stream: CUstream, ds: DefaultStream) -> CuResult {
    match kind {
        NodeKind::Kernel(k) => {
            let mut size = k.args.len();
            let mut extra = [
                LAUNCH_PARAM_BUFFER_POINTER as *mut c_void,
                k.args.as_ptr().cast_mut().cast(),
                LAUNCH_PARAM_BUFFER_SIZE as *mut c_void,
                (&mut size as *mut usize).cast(),
                LAUNCH_PARAM_END as *mut c_void,
            ];
            let extra = if k.offsets.is_empty() {
                std::ptr::null_mut()
            } else {
                extra.as_mut_ptr()
            };
            let [gx, gy, gz] = k.grid;
            let [bx, by, bz] = k.block;
            // SAFETY: `extra` names the node's packed arguments, alive during the call.
            unsafe {
                L::launch_kernel(
                    k.func,
                    gx,
                    gy,
                    gz,
                    bx,
                    by,
                    bz,
                    k.shared,
                    stream,
                    std::ptr::null_mut(),
                    extra,
                    ds,
                )
            }
        }
        // SAFETY: the node's host pointers, valid per the caller's contract.
        NodeKind::Memcpy(p) => unsafe { L::memcpy_2d_async(In(memcpy_2d(p)), stream, ds) },
        NodeKind::Memset(m) => {
            let row = m.width * m.element_size as usize;
            let pitch = if m.height == 1 {
                m.pitch.max(row)
            } else {
                m.pitch
            };
            match m.element_size {
                1 => {
                    L::memset_d2d8_async(m.dst, pitch, m.value as u8, m.width, m.height, stream, ds)
                }
                2 => L::memset_d2d16_async(
                    m.dst,
                    pitch,
                    m.value as u16,
                    m.width,
                    m.height,
                    stream,
                    ds,
                ),
                _ => L::memset_d2d32_async(m.dst, pitch, m.value, m.width, m.height, stream, ds),
            }
        }
        // SAFETY: the node's function and argument, as the caller gave them.
        NodeKind::Host(h) => unsafe { L::launch_host_func(stream, h.func, h.data, ds) },
        NodeKind::EventRecord(e) => L::event_record(*e, stream, ds),
        NodeKind::EventWait(e) => L::stream_wait_event(stream, *e, Flags(0), ds),
        NodeKind::Empty | NodeKind::Child(_) => Ok(()),
    }
}
