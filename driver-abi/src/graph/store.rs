//! Graphs as the process holds them: each graph's nodes in creation order with their
//! dependencies, the handle tables (`CUgraph`, `CUgraphNode`, `CUgraphExec` are ids from one
//! counter, so a handle of one kind is never taken for another), and the structural operations
//! of the graph API (add, connect, disconnect, remove, clone, query). One store per process,
//! behind one lock ([`with_store`]); nothing here calls a driver function.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::exec::ExecGraph;
use super::node::NodeKind;
use super::user_object::{Destructor, UserObjects};
use crate::error::{CuError, CuResult};

/// A handle's id (the handle's value).
pub type Id = usize;

/// One node of a graph.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its handle.
    pub id: Id,
    /// What it does.
    pub kind: NodeKind,
    /// The nodes it depends on, in the order they were added.
    pub deps: Vec<Id>,
}

/// A graph's contents.
#[derive(Clone, Debug, Default)]
pub struct GraphBody {
    /// Nodes in creation order.
    pub nodes: Vec<Node>,
    /// For a clone: each original node's id → its copy's.
    pub clone_of: HashMap<Id, Id>,
    /// References this graph holds on user objects.
    pub user_refs: HashMap<Id, u32>,
}

impl GraphBody {
    /// The node with handle `id`.
    pub fn node(&self, id: Id) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    fn node_mut(&mut self, id: Id) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.id == id)
    }

    /// Every edge (from, to), in node order.
    pub fn edges(&self) -> Vec<(Id, Id)> {
        self.nodes
            .iter()
            .flat_map(|n| n.deps.iter().map(move |&d| (d, n.id)))
            .collect()
    }

    /// The nodes that depend on `id`.
    pub fn dependents(&self, id: Id) -> Vec<Id> {
        self.nodes
            .iter()
            .filter(|n| n.deps.contains(&id))
            .map(|n| n.id)
            .collect()
    }

    /// `ids` and everything they depend on, transitively.
    pub fn ancestors_of(&self, ids: &[Id]) -> HashSet<Id> {
        let mut seen: HashSet<Id> = HashSet::new();
        let mut todo = ids.to_vec();
        while let Some(id) = todo.pop() {
            if seen.insert(id) {
                todo.extend(self.node(id).map(|n| n.deps.clone()).unwrap_or_default());
            }
        }
        seen
    }
}

/// Every graph, node and executable graph of the process.
#[derive(Default)]
pub struct Store {
    next: Id,
    /// Graphs by handle.
    pub graphs: HashMap<Id, GraphBody>,
    /// Which graph each node belongs to.
    pub node_graph: HashMap<Id, Id>,
    /// Child graphs owned by a node (not destroyable by the caller).
    pub owned: HashSet<Id>,
    /// Executable graphs by handle.
    pub execs: HashMap<Id, ExecGraph>,
    /// User objects.
    pub user: UserObjects,
    /// Destructors of user objects whose last reference went, run once the lock is released.
    pub dying: Vec<Destructor>,
}

/// Runs `f` with the process's store.
pub fn with_store<T>(f: impl FnOnce(&mut Store) -> T) -> T {
    static STORE: OnceLock<Mutex<Store>> = OnceLock::new();
    let lock = STORE.get_or_init(|| {
        Mutex::new(Store {
            next: 0x100,
            ..Store::default()
        })
    });
    let mut guard: MutexGuard<'_, Store> = lock.lock().unwrap_or_else(|p| p.into_inner());
    let out = f(&mut guard);
    let dying = std::mem::take(&mut guard.dying);
    drop(guard);
    dying.into_iter().for_each(Destructor::spawn);
    out
}

impl Store {
    /// A fresh handle id.
    pub fn fresh(&mut self) -> Id {
        self.next += 0x10;
        self.next
    }

    /// A new empty graph.
    pub fn create_graph(&mut self) -> Id {
        let id = self.fresh();
        self.graphs.insert(id, GraphBody::default());
        id
    }

    /// The graph `id` (a caller's handle: unknown is `INVALID_VALUE`, as CUDA answers).
    pub fn graph(&self, id: Id) -> CuResult<&GraphBody> {
        self.graphs.get(&id).ok_or(CuError::INVALID_VALUE)
    }

    /// The graph `id`, to change.
    pub fn graph_mut(&mut self, id: Id) -> CuResult<&mut GraphBody> {
        self.graphs.get_mut(&id).ok_or(CuError::INVALID_VALUE)
    }

    /// The node `id` and its graph's id.
    pub fn node(&self, id: Id) -> CuResult<(Id, &Node)> {
        let g = *self.node_graph.get(&id).ok_or(CuError::INVALID_VALUE)?;
        Ok((g, self.graph(g)?.node(id).ok_or(CuError::INVALID_VALUE)?))
    }

    /// The node `id`'s kind, to change.
    pub fn kind_mut(&mut self, id: Id) -> CuResult<&mut NodeKind> {
        let g = *self.node_graph.get(&id).ok_or(CuError::INVALID_VALUE)?;
        let node = self.graphs.get_mut(&g).and_then(|b| b.node_mut(id));
        node.map(|n| &mut n.kind).ok_or(CuError::INVALID_VALUE)
    }

    /// Adds a node depending on `deps` (nodes of the same graph, no repeats).
    pub fn add_node(&mut self, graph: Id, deps: &[Id], kind: NodeKind) -> CuResult<Id> {
        self.check_deps(graph, deps)?;
        let id = self.fresh();
        let body = self.graph_mut(graph)?;
        body.nodes.push(Node {
            id,
            kind,
            deps: deps.to_vec(),
        });
        self.node_graph.insert(id, graph);
        Ok(id)
    }

    fn check_deps(&self, graph: Id, deps: &[Id]) -> CuResult {
        self.graph(graph)?;
        let mut seen = HashSet::new();
        for &d in deps {
            if self.node_graph.get(&d) != Some(&graph) || !seen.insert(d) {
                tracing::debug!("graph dependency {d:#x}: not a node of the graph, or repeated");
                return Err(CuError::INVALID_VALUE);
            }
        }
        Ok(())
    }

    /// Adds edges `from[i] → to[i]`; an existing edge or a foreign node is `INVALID_VALUE`.
    pub fn add_edges(&mut self, graph: Id, edges: &[(Id, Id)]) -> CuResult {
        let body = self.graph(graph)?;
        for &(from, to) in edges {
            let node = body.node(to).ok_or(CuError::INVALID_VALUE)?;
            if body.node(from).is_none() || from == to || node.deps.contains(&from) {
                return Err(CuError::INVALID_VALUE);
            }
        }
        let body = self.graph_mut(graph)?;
        for &(from, to) in edges {
            body.node_mut(to).expect("checked above").deps.push(from);
        }
        Ok(())
    }

    /// Removes edges; a missing edge is `INVALID_VALUE` (nothing is removed then).
    pub fn remove_edges(&mut self, graph: Id, edges: &[(Id, Id)]) -> CuResult {
        let body = self.graph_mut(graph)?;
        let present = edges
            .iter()
            .all(|&(from, to)| body.node(to).is_some_and(|n| n.deps.contains(&from)));
        if !present {
            return Err(CuError::INVALID_VALUE);
        }
        for &(from, to) in edges {
            body.node_mut(to)
                .expect("checked above")
                .deps
                .retain(|&d| d != from);
        }
        Ok(())
    }

    /// Removes a node and its edges.
    pub fn destroy_node(&mut self, id: Id) -> CuResult {
        let g = self.node_graph.remove(&id).ok_or(CuError::INVALID_VALUE)?;
        let body = self.graph_mut(g)?;
        let pos = body
            .nodes
            .iter()
            .position(|n| n.id == id)
            .ok_or(CuError::INVALID_VALUE)?;
        let node = body.nodes.remove(pos);
        for n in &mut body.nodes {
            n.deps.retain(|&d| d != id);
        }
        self.release_kind(&node.kind);
        Ok(())
    }

    /// Destroys a graph, its nodes and the child graphs they own.
    pub fn destroy_graph(&mut self, id: Id) -> CuResult {
        let body = self.graphs.remove(&id).ok_or(CuError::INVALID_VALUE)?;
        for node in &body.nodes {
            self.node_graph.remove(&node.id);
            self.release_kind(&node.kind);
        }
        self.release_user_refs(body.user_refs.iter().map(|(&o, &n)| (o, n)));
        Ok(())
    }

    /// Drops references on user objects; destructors of the ones left without any are queued.
    pub fn release_user_refs(&mut self, refs: impl IntoIterator<Item = (Id, u32)>) {
        for (object, n) in refs {
            if let Ok(Some(d)) = self.user.release(object, n) {
                self.dying.push(d);
            }
        }
    }

    fn release_kind(&mut self, kind: &NodeKind) {
        if let NodeKind::Child(child) = kind {
            self.owned.remove(child);
            let _ = self.destroy_graph(*child);
        }
    }

    /// A deep copy of graph `id` (child graphs copied too), with the original → copy node map.
    pub fn clone_graph(&mut self, id: Id) -> CuResult<Id> {
        let body = self.graph(id)?.clone();
        let copy = self.create_graph();
        let mut map = HashMap::new();
        for node in &body.nodes {
            let kind = self.clone_kind(&node.kind)?;
            let deps: Vec<Id> = node.deps.iter().map(|d| map[d]).collect();
            let new = self.add_node(copy, &deps, kind)?;
            map.insert(node.id, new);
        }
        let refs = body.user_refs.clone();
        for (&object, &n) in &refs {
            self.user.retain(object, n)?;
        }
        let clone = self.graph_mut(copy)?;
        clone.clone_of = map;
        clone.user_refs = refs;
        Ok(copy)
    }

    /// A node's kind for a copy of its graph: a child graph is copied.
    pub fn clone_kind(&mut self, kind: &NodeKind) -> CuResult<NodeKind> {
        Ok(match kind {
            NodeKind::Child(child) => {
                let copy = self.clone_graph(*child)?;
                self.owned.insert(copy);
                NodeKind::Child(copy)
            }
            other => other.clone(),
        })
    }
}
