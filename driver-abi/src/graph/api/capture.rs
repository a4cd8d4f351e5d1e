//! The stream-capture entry points, over [`crate::graph::capture`].

use super::{default_edges, handle, id, ids};
use crate::error::{CuError, CuResult};
use crate::graph::capture;
use crate::graph::cuda::{
    CUgraph, CUgraphNode, EdgeData, CAPTURE_MODE_GLOBAL, SET_CAPTURE_DEPENDENCIES,
};
use crate::graph::store::with_store;
use crate::surface::{DefaultStream, Flags, OptOut, Out, Stream};
use crate::sys::CUstream;

/// `cuStreamBeginCapture_v2`
pub fn stream_begin_capture<L: Stream>(stream: CUstream, mode: i32, ds: DefaultStream) -> CuResult {
    capture::begin::<L>(stream, ds, mode, None, Vec::new())
}

/// `cuStreamBeginCapture` (global mode).
pub fn stream_begin_capture_v1<L: Stream>(stream: CUstream, ds: DefaultStream) -> CuResult {
    stream_begin_capture::<L>(stream, CAPTURE_MODE_GLOBAL, ds)
}

/// `cuStreamBeginCaptureToGraph`
///
/// # Safety
/// `deps` / `edge_data` NULL or valid for `n` entries.
pub unsafe fn stream_begin_capture_to_graph<L: Stream>(
    stream: CUstream,
    graph: CUgraph,
    deps: *const CUgraphNode,
    edge_data: *const EdgeData,
    n: usize,
    mode: i32,
    ds: DefaultStream,
) -> CuResult {
    // SAFETY: forwarded.
    let deps = unsafe {
        default_edges(edge_data, n)?;
        ids(deps, n)?
    };
    let graph = id(graph);
    let own = with_store(|s| {
        s.graph(graph).is_ok() && deps.iter().all(|d| s.node_graph.get(d) == Some(&graph))
    });
    if !own {
        return Err(CuError::INVALID_VALUE);
    }
    capture::begin::<L>(stream, ds, mode, Some(graph), deps)
}

/// `cuStreamEndCapture`
pub fn stream_end_capture(
    stream: CUstream,
    graph: Out<'_, CUgraph>,
    ds: DefaultStream,
) -> CuResult {
    match capture::end(stream, ds) {
        Ok(g) => graph.write(handle(g)),
        Err(e) => {
            graph.write(std::ptr::null_mut())?;
            Err(e)
        }
    }
}

/// `cuStreamIsCapturing`
pub fn stream_is_capturing<L: Stream>(
    stream: CUstream,
    status: Out<'_, i32>,
    ds: DefaultStream,
) -> CuResult {
    let mut flags = 0;
    L::stream_get_flags(stream, Out::to(&mut flags), ds)?;
    status.write(capture::status(stream, ds).status)
}

/// `cuStreamGetCaptureInfo` (status and id).
pub fn stream_get_capture_info_v1<L: Stream>(
    stream: CUstream,
    status: Out<'_, i32>,
    id_out: OptOut<'_, u64>,
    ds: DefaultStream,
) -> CuResult {
    stream_get_capture_info_v3::<L>(
        stream,
        status,
        id_out,
        OptOut::none(),
        OptOut::none(),
        OptOut::none(),
        OptOut::none(),
        ds,
    )
}

/// `cuStreamGetCaptureInfo_v2`
pub fn stream_get_capture_info<L: Stream>(
    stream: CUstream,
    status: Out<'_, i32>,
    id_out: OptOut<'_, u64>,
    graph: OptOut<'_, CUgraph>,
    deps: OptOut<'_, *const CUgraphNode>,
    n: OptOut<'_, usize>,
    ds: DefaultStream,
) -> CuResult {
    stream_get_capture_info_v3::<L>(stream, status, id_out, graph, deps, OptOut::none(), n, ds)
}

/// `cuStreamGetCaptureInfo_v3`: the outputs past `status` are written only while capturing
/// (edge data: NULL, meaning all default).
#[allow(clippy::too_many_arguments)]
pub fn stream_get_capture_info_v3<L: Stream>(
    stream: CUstream,
    status: Out<'_, i32>,
    id_out: OptOut<'_, u64>,
    graph: OptOut<'_, CUgraph>,
    deps: OptOut<'_, *const CUgraphNode>,
    edge_data: OptOut<'_, *const EdgeData>,
    n: OptOut<'_, usize>,
    ds: DefaultStream,
) -> CuResult {
    let mut flags = 0;
    L::stream_get_flags(stream, Out::to(&mut flags), ds)?;
    let st = capture::status(stream, ds);
    status.write(st.status)?;
    if let Some(g) = st.graph {
        id_out.write(st.id)?;
        graph.write(handle(g))?;
        deps.write(st.deps.cast())?;
        edge_data.write(std::ptr::null())?;
        n.write(st.count)?;
    }
    Ok(())
}

/// `cuStreamUpdateCaptureDependencies`
///
/// # Safety
/// `deps` NULL or valid for `n` handles.
pub unsafe fn stream_update_capture_dependencies(
    stream: CUstream,
    deps: *mut CUgraphNode,
    n: usize,
    flags: Flags<1>,
    ds: DefaultStream,
) -> CuResult {
    // SAFETY: forwarded.
    let deps = unsafe { ids(deps, n) }?;
    capture::update_dependencies(stream, ds, &deps, flags.bits() == SET_CAPTURE_DEPENDENCIES)
}

/// `cuStreamUpdateCaptureDependencies_v2`
///
/// # Safety
/// `deps` / `edge_data` NULL or valid for `n` entries.
pub unsafe fn stream_update_capture_dependencies_v2(
    stream: CUstream,
    deps: *mut CUgraphNode,
    edge_data: *const EdgeData,
    n: usize,
    flags: Flags<1>,
    ds: DefaultStream,
) -> CuResult {
    // SAFETY: forwarded.
    unsafe {
        default_edges(edge_data, n)?;
        stream_update_capture_dependencies(stream, deps, n, flags, ds)
    }
}

/// `cuThreadExchangeStreamCaptureMode`
///
/// # Safety
/// `mode` NULL or valid for a read and a write.
pub unsafe fn thread_exchange_stream_capture_mode(mode: *mut i32) -> CuResult {
    if mode.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    // SAFETY: non-NULL, valid per the contract.
    let previous = capture::exchange_mode(unsafe { mode.read() })?;
    // SAFETY: as above.
    unsafe { mode.write(previous) };
    Ok(())
}
