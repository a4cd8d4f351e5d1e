//! [`implement_graphs!`](crate::implement_graphs): a library's `Graph` family, every method
//! delegating to [`crate::graph::api`] with the library as the graph host.

/// Implements the `Graph` family for `$lib` (a path to a type implementing the stream, copy,
/// event, launch and module families): `gpushare_driver_abi::implement_graphs!(crate::CpuDevice);`.
#[macro_export]
macro_rules! implement_graphs {
    ($lib:ty) => {
        // `cuGraphLaunch` is a safe method whose body replays the raw pointers the graph's nodes
        // were given (see its SAFETY comment).
        #[allow(clippy::not_unsafe_ptr_arg_deref)]
        const _: () = {
            #[allow(unused_imports)]
            use $crate::surface::prelude::*;
            $crate::implement! {
                impl Graph for $lib {
                fn stream_begin_capture(stream: CUstream, mode: i32, default_stream: DefaultStream) -> CuResult {
                    $crate::graph::api::stream_begin_capture::<$lib>(stream, mode, default_stream)
                }
                fn stream_begin_capture_v1(stream: CUstream, default_stream: DefaultStream) -> CuResult {
                    $crate::graph::api::stream_begin_capture_v1::<$lib>(stream, default_stream)
                }
                unsafe fn stream_begin_capture_to_graph(stream: CUstream, graph: CUgraph, deps: *const CUgraphNode, edge_data: *const EdgeData, n: usize, mode: i32, default_stream: DefaultStream) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::stream_begin_capture_to_graph::<$lib>(stream, graph, deps, edge_data, n, mode, default_stream) }
                }
                fn stream_end_capture(stream: CUstream, graph: Out<'_, CUgraph>, default_stream: DefaultStream) -> CuResult {
                    $crate::graph::api::stream_end_capture(stream, graph, default_stream)
                }
                fn stream_is_capturing(stream: CUstream, status: Out<'_, i32>, default_stream: DefaultStream) -> CuResult {
                    $crate::graph::api::stream_is_capturing::<$lib>(stream, status, default_stream)
                }
                fn stream_get_capture_info_v1(stream: CUstream, status: Out<'_, i32>, id: OptOut<'_, u64>, default_stream: DefaultStream) -> CuResult {
                    $crate::graph::api::stream_get_capture_info_v1::<$lib>(stream, status, id, default_stream)
                }
                fn stream_get_capture_info(stream: CUstream, status: Out<'_, i32>, id: OptOut<'_, u64>, graph: OptOut<'_, CUgraph>, deps: OptOut<'_, *const CUgraphNode>, n: OptOut<'_, usize>, default_stream: DefaultStream) -> CuResult {
                    $crate::graph::api::stream_get_capture_info::<$lib>(stream, status, id, graph, deps, n, default_stream)
                }
                fn stream_get_capture_info_v3(stream: CUstream, status: Out<'_, i32>, id: OptOut<'_, u64>, graph: OptOut<'_, CUgraph>, deps: OptOut<'_, *const CUgraphNode>, edge_data: OptOut<'_, *const EdgeData>, n: OptOut<'_, usize>, default_stream: DefaultStream) -> CuResult {
                    $crate::graph::api::stream_get_capture_info_v3::<$lib>(stream, status, id, graph, deps, edge_data, n, default_stream)
                }
                unsafe fn stream_update_capture_dependencies(stream: CUstream, deps: *mut CUgraphNode, n: usize, flags: Flags<1>, default_stream: DefaultStream) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::stream_update_capture_dependencies(stream, deps, n, flags, default_stream) }
                }
                unsafe fn stream_update_capture_dependencies_v2(stream: CUstream, deps: *mut CUgraphNode, edge_data: *const EdgeData, n: usize, flags: Flags<1>, default_stream: DefaultStream) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::stream_update_capture_dependencies_v2(stream, deps, edge_data, n, flags, default_stream) }
                }
                unsafe fn thread_exchange_stream_capture_mode(mode: *mut i32) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::thread_exchange_stream_capture_mode(mode) }
                }
                fn graph_create(graph: Out<'_, CUgraph>, flags: Flags<0>) -> CuResult {
                    $crate::graph::api::graph_create(graph, flags)
                }
                fn graph_destroy(graph: CUgraph) -> CuResult {
                    $crate::graph::api::graph_destroy(graph)
                }
                fn graph_clone(clone: Out<'_, CUgraph>, graph: CUgraph) -> CuResult {
                    $crate::graph::api::graph_clone(clone, graph)
                }
                fn graph_node_find_in_clone(node: Out<'_, CUgraphNode>, original: CUgraphNode, clone: CUgraph) -> CuResult {
                    $crate::graph::api::graph_node_find_in_clone(node, original, clone)
                }
                unsafe fn graph_add_kernel_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, params: In<KernelNodeParams>) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_add_kernel_node::<$lib>(node, graph, deps, n, params) }
                }
                unsafe fn graph_add_kernel_node_v1(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, params: In<KernelNodeParamsV1>) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_add_kernel_node_v1::<$lib>(node, graph, deps, n, params) }
                }
                fn graph_kernel_node_get_params(node: CUgraphNode, params: Out<'_, KernelNodeParams>) -> CuResult {
                    $crate::graph::api::graph_kernel_node_get_params(node, params)
                }
                fn graph_kernel_node_get_params_v1(node: CUgraphNode, params: Out<'_, KernelNodeParamsV1>) -> CuResult {
                    $crate::graph::api::graph_kernel_node_get_params_v1(node, params)
                }
                unsafe fn graph_kernel_node_set_params(node: CUgraphNode, params: In<KernelNodeParams>) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_kernel_node_set_params::<$lib>(node, params) }
                }
                unsafe fn graph_kernel_node_set_params_v1(node: CUgraphNode, params: In<KernelNodeParamsV1>) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_kernel_node_set_params_v1::<$lib>(node, params) }
                }
                unsafe fn graph_add_memcpy_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, params: In<Memcpy3D>, ctx: CUcontext) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_add_memcpy_node(node, graph, deps, n, params, ctx) }
                }
                fn graph_memcpy_node_get_params(node: CUgraphNode, params: Out<'_, Memcpy3D>) -> CuResult {
                    $crate::graph::api::graph_memcpy_node_get_params(node, params)
                }
                fn graph_memcpy_node_set_params(node: CUgraphNode, params: In<Memcpy3D>) -> CuResult {
                    $crate::graph::api::graph_memcpy_node_set_params(node, params)
                }
                unsafe fn graph_add_memset_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, params: In<MemsetNodeParams>, ctx: CUcontext) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_add_memset_node(node, graph, deps, n, params, ctx) }
                }
                fn graph_memset_node_get_params(node: CUgraphNode, params: Out<'_, MemsetNodeParams>) -> CuResult {
                    $crate::graph::api::graph_memset_node_get_params(node, params)
                }
                fn graph_memset_node_set_params(node: CUgraphNode, params: In<MemsetNodeParams>) -> CuResult {
                    $crate::graph::api::graph_memset_node_set_params(node, params)
                }
                unsafe fn graph_add_host_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, params: In<HostNodeParams>) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_add_host_node(node, graph, deps, n, params) }
                }
                fn graph_host_node_get_params(node: CUgraphNode, params: Out<'_, HostNodeParams>) -> CuResult {
                    $crate::graph::api::graph_host_node_get_params(node, params)
                }
                fn graph_host_node_set_params(node: CUgraphNode, params: In<HostNodeParams>) -> CuResult {
                    $crate::graph::api::graph_host_node_set_params(node, params)
                }
                unsafe fn graph_add_child_graph_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, child: CUgraph) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_add_child_graph_node(node, graph, deps, n, child) }
                }
                fn graph_child_graph_node_get_graph(node: CUgraphNode, graph: Out<'_, CUgraph>) -> CuResult {
                    $crate::graph::api::graph_child_graph_node_get_graph(node, graph)
                }
                unsafe fn graph_add_empty_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_add_empty_node(node, graph, deps, n) }
                }
                unsafe fn graph_add_event_record_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, event: CUevent) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_add_event_record_node(node, graph, deps, n, event) }
                }
                fn graph_event_record_node_get_event(node: CUgraphNode, event: Out<'_, CUevent>) -> CuResult {
                    $crate::graph::api::graph_event_record_node_get_event(node, event)
                }
                fn graph_event_record_node_set_event(node: CUgraphNode, event: CUevent) -> CuResult {
                    $crate::graph::api::graph_event_record_node_set_event(node, event)
                }
                unsafe fn graph_add_event_wait_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, event: CUevent) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_add_event_wait_node(node, graph, deps, n, event) }
                }
                fn graph_event_wait_node_get_event(node: CUgraphNode, event: Out<'_, CUevent>) -> CuResult {
                    $crate::graph::api::graph_event_wait_node_get_event(node, event)
                }
                fn graph_event_wait_node_set_event(node: CUgraphNode, event: CUevent) -> CuResult {
                    $crate::graph::api::graph_event_wait_node_set_event(node, event)
                }
                unsafe fn graph_add_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, params: *mut NodeParams) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_add_node::<$lib>(node, graph, deps, n, params) }
                }
                unsafe fn graph_add_node_v2(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, edge_data: *const EdgeData, n: usize, params: *mut NodeParams) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_add_node_v2::<$lib>(node, graph, deps, edge_data, n, params) }
                }
                fn graph_node_get_type(node: CUgraphNode, kind: Out<'_, i32>) -> CuResult {
                    $crate::graph::api::graph_node_get_type(node, kind)
                }
                unsafe fn graph_get_nodes(graph: CUgraph, nodes: *mut CUgraphNode, n: *mut usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_get_nodes(graph, nodes, n) }
                }
                unsafe fn graph_get_root_nodes(graph: CUgraph, nodes: *mut CUgraphNode, n: *mut usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_get_root_nodes(graph, nodes, n) }
                }
                unsafe fn graph_get_edges(graph: CUgraph, from: *mut CUgraphNode, to: *mut CUgraphNode, n: *mut usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_get_edges(graph, from, to, n) }
                }
                unsafe fn graph_get_edges_v2(graph: CUgraph, from: *mut CUgraphNode, to: *mut CUgraphNode, edge_data: *mut EdgeData, n: *mut usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_get_edges_v2(graph, from, to, edge_data, n) }
                }
                unsafe fn graph_node_get_dependencies(node: CUgraphNode, deps: *mut CUgraphNode, n: *mut usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_node_get_dependencies(node, deps, n) }
                }
                unsafe fn graph_node_get_dependencies_v2(node: CUgraphNode, deps: *mut CUgraphNode, edge_data: *mut EdgeData, n: *mut usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_node_get_dependencies_v2(node, deps, edge_data, n) }
                }
                unsafe fn graph_node_get_dependent_nodes(node: CUgraphNode, nodes: *mut CUgraphNode, n: *mut usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_node_get_dependent_nodes(node, nodes, n) }
                }
                unsafe fn graph_node_get_dependent_nodes_v2(node: CUgraphNode, nodes: *mut CUgraphNode, edge_data: *mut EdgeData, n: *mut usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_node_get_dependent_nodes_v2(node, nodes, edge_data, n) }
                }
                unsafe fn graph_add_dependencies(graph: CUgraph, from: *const CUgraphNode, to: *const CUgraphNode, n: usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_add_dependencies(graph, from, to, n) }
                }
                unsafe fn graph_add_dependencies_v2(graph: CUgraph, from: *const CUgraphNode, to: *const CUgraphNode, edge_data: *const EdgeData, n: usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_add_dependencies_v2(graph, from, to, edge_data, n) }
                }
                unsafe fn graph_remove_dependencies(graph: CUgraph, from: *const CUgraphNode, to: *const CUgraphNode, n: usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_remove_dependencies(graph, from, to, n) }
                }
                unsafe fn graph_remove_dependencies_v2(graph: CUgraph, from: *const CUgraphNode, to: *const CUgraphNode, edge_data: *const EdgeData, n: usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_remove_dependencies_v2(graph, from, to, edge_data, n) }
                }
                fn graph_destroy_node(node: CUgraphNode) -> CuResult {
                    $crate::graph::api::graph_destroy_node(node)
                }
                fn graph_instantiate_with_flags(exec: Out<'_, CUgraphExec>, graph: CUgraph, flags: u64) -> CuResult {
                    $crate::graph::api::graph_instantiate_with_flags(exec, graph, flags)
                }
                unsafe fn graph_instantiate_v1(exec: Out<'_, CUgraphExec>, graph: CUgraph, error_node: OptOut<'_, CUgraphNode>, log: *mut c_char, log_size: usize) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_instantiate_v1(exec, graph, error_node, log, log_size) }
                }
                unsafe fn graph_instantiate_with_params(exec: Out<'_, CUgraphExec>, graph: CUgraph, params: *mut InstantiateParams, default_stream: DefaultStream) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_instantiate_with_params(exec, graph, params, default_stream) }
                }
                fn graph_exec_get_flags(exec: CUgraphExec, flags: Out<'_, u64>) -> CuResult {
                    $crate::graph::api::graph_exec_get_flags(exec, flags)
                }
                unsafe fn graph_exec_kernel_node_set_params(exec: CUgraphExec, node: CUgraphNode, params: In<KernelNodeParams>) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_exec_kernel_node_set_params::<$lib>(exec, node, params) }
                }
                unsafe fn graph_exec_kernel_node_set_params_v1(exec: CUgraphExec, node: CUgraphNode, params: In<KernelNodeParamsV1>) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::graph_exec_kernel_node_set_params_v1::<$lib>(exec, node, params) }
                }
                fn graph_exec_memcpy_node_set_params(exec: CUgraphExec, node: CUgraphNode, params: In<Memcpy3D>, ctx: CUcontext) -> CuResult {
                    $crate::graph::api::graph_exec_memcpy_node_set_params(exec, node, params, ctx)
                }
                fn graph_exec_memset_node_set_params(exec: CUgraphExec, node: CUgraphNode, params: In<MemsetNodeParams>, ctx: CUcontext) -> CuResult {
                    $crate::graph::api::graph_exec_memset_node_set_params(exec, node, params, ctx)
                }
                fn graph_exec_host_node_set_params(exec: CUgraphExec, node: CUgraphNode, params: In<HostNodeParams>) -> CuResult {
                    $crate::graph::api::graph_exec_host_node_set_params(exec, node, params)
                }
                fn graph_exec_event_record_node_set_event(exec: CUgraphExec, node: CUgraphNode, event: CUevent) -> CuResult {
                    $crate::graph::api::graph_exec_event_record_node_set_event(exec, node, event)
                }
                fn graph_exec_event_wait_node_set_event(exec: CUgraphExec, node: CUgraphNode, event: CUevent) -> CuResult {
                    $crate::graph::api::graph_exec_event_wait_node_set_event(exec, node, event)
                }
                fn graph_exec_update(exec: CUgraphExec, graph: CUgraph, info: Out<'_, ExecUpdateResultInfo>) -> CuResult {
                    $crate::graph::api::graph_exec_update(exec, graph, info)
                }
                fn graph_exec_update_v1(exec: CUgraphExec, graph: CUgraph, error_node: Out<'_, CUgraphNode>, result: Out<'_, i32>) -> CuResult {
                    $crate::graph::api::graph_exec_update_v1(exec, graph, error_node, result)
                }
                fn graph_upload(exec: CUgraphExec, stream: CUstream, default_stream: DefaultStream) -> CuResult {
                    $crate::graph::api::graph_upload(exec, stream, default_stream)
                }
                fn graph_launch(exec: CUgraphExec, stream: CUstream, default_stream: DefaultStream) -> CuResult {
                    // SAFETY: the host pointers and functions in the graph's nodes are the ones
                    // the caller gave when building it, valid while the graph can run (CUDA's
                    // contract for graphs).
                    unsafe { $crate::graph::api::graph_launch::<$lib>(exec, stream, default_stream) }
                }
                fn graph_exec_destroy(exec: CUgraphExec) -> CuResult {
                    $crate::graph::api::graph_exec_destroy(exec)
                }
                fn graph_node_get_containing_graph(node: CUgraphNode, graph: Out<'_, CUgraph>) -> CuResult {
                    $crate::graph::api::graph_node_get_containing_graph(node, graph)
                }
                fn graph_node_get_local_id(node: CUgraphNode, id: Out<'_, u32>) -> CuResult {
                    $crate::graph::api::graph_node_get_local_id(node, id)
                }
                fn graph_node_get_tools_id(node: CUgraphNode, id: Out<'_, u64>) -> CuResult {
                    $crate::graph::api::graph_node_get_tools_id(node, id)
                }
                fn graph_get_id(graph: CUgraph, id: Out<'_, u32>) -> CuResult {
                    $crate::graph::api::graph_get_id(graph, id)
                }
                fn graph_exec_get_id(exec: CUgraphExec, id: Out<'_, u32>) -> CuResult {
                    $crate::graph::api::graph_exec_get_id(exec, id)
                }
                unsafe fn device_get_graph_mem_attribute(device: CUdevice, attr: i32, value: *mut c_void) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::device_get_graph_mem_attribute::<$lib>(device, attr, value) }
                }
                unsafe fn device_set_graph_mem_attribute(device: CUdevice, attr: i32, value: *mut c_void) -> CuResult {
                    // SAFETY: the C caller's contract, forwarded.
                    unsafe { $crate::graph::api::device_set_graph_mem_attribute::<$lib>(device, attr, value) }
                }
                fn device_graph_mem_trim(device: CUdevice) -> CuResult {
                    $crate::graph::api::device_graph_mem_trim::<$lib>(device)
                }
                fn user_object_create(object: Out<'_, CUuserObject>, ptr: *mut c_void, destroy: CUhostFn, initial: u32, flags: u32) -> CuResult {
                    $crate::graph::api::user_object_create(object, ptr, destroy, initial, flags)
                }
                fn user_object_retain(object: CUuserObject, count: u32) -> CuResult {
                    $crate::graph::api::user_object_retain(object, count)
                }
                fn user_object_release(object: CUuserObject, count: u32) -> CuResult {
                    $crate::graph::api::user_object_release(object, count)
                }
                fn graph_retain_user_object(graph: CUgraph, object: CUuserObject, count: u32, flags: u32) -> CuResult {
                    $crate::graph::api::graph_retain_user_object(graph, object, count, flags)
                }
                fn graph_release_user_object(graph: CUgraph, object: CUuserObject, count: u32) -> CuResult {
                    $crate::graph::api::graph_release_user_object(graph, object, count)
                }
                }
            }
        };
    };
}
