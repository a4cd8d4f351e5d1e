//! User objects: `cuUserObject*` and the graph references on them.

use super::{handle, id};
use crate::cuda_h::CUhostFn;
use crate::error::{CuError, CuResult};
use crate::graph::cuda::{CUgraph, CUuserObject};
use crate::graph::store::with_store;
use crate::graph::user_object::{GRAPH_USER_OBJECT_MOVE, NO_DESTRUCTOR_SYNC};
use crate::surface::Out;

/// `cuUserObjectCreate`: flags must be `CU_USER_OBJECT_NO_DESTRUCTOR_SYNC`.
pub fn user_object_create(
    object: Out<'_, CUuserObject>,
    ptr: *mut std::ffi::c_void,
    destroy: CUhostFn,
    initial: u32,
    flags: u32,
) -> CuResult {
    if flags != NO_DESTRUCTOR_SYNC {
        return Err(CuError::INVALID_VALUE);
    }
    let new = with_store(|s| {
        let new = s.fresh();
        s.user.create(new, destroy, ptr, initial).map(|_| new)
    })?;
    object.write(handle(new))
}

/// `cuUserObjectRetain`
pub fn user_object_retain(object: CUuserObject, count: u32) -> CuResult {
    with_store(|s| s.user.retain(id(object), count))
}

/// `cuUserObjectRelease`: the destructor runs (on its own thread) with the last reference.
pub fn user_object_release(object: CUuserObject, count: u32) -> CuResult {
    with_store(|s| {
        if let Some(d) = s.user.release(id(object), count)? {
            s.dying.push(d);
        }
        Ok(())
    })
}

/// `cuGraphRetainUserObject`: the graph takes `count` references (new ones, or with
/// `CU_GRAPH_USER_OBJECT_MOVE` the caller's).
pub fn graph_retain_user_object(
    graph: CUgraph,
    object: CUuserObject,
    count: u32,
    flags: u32,
) -> CuResult {
    if flags & !GRAPH_USER_OBJECT_MOVE != 0 || count == 0 {
        return Err(CuError::INVALID_VALUE);
    }
    with_store(|s| {
        s.graph(id(graph))?;
        if !s.user.contains(id(object)) {
            return Err(CuError::INVALID_VALUE);
        }
        if flags & GRAPH_USER_OBJECT_MOVE == 0 {
            s.user.retain(id(object), count)?;
        }
        *s.graph_mut(id(graph))?
            .user_refs
            .entry(id(object))
            .or_default() += count;
        Ok(())
    })
}

/// `cuGraphReleaseUserObject`: drops references the graph holds.
pub fn graph_release_user_object(graph: CUgraph, object: CUuserObject, count: u32) -> CuResult {
    with_store(|s| {
        let refs = &mut s.graph_mut(id(graph))?.user_refs;
        let held = refs
            .get_mut(&id(object))
            .filter(|held| **held >= count && count > 0);
        let held = held.ok_or(CuError::INVALID_VALUE)?;
        *held -= count;
        if *held == 0 {
            refs.remove(&id(object));
        }
        s.release_user_refs([(id(object), count)]);
        Ok(())
    })
}
