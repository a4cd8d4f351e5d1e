//! The `Graph` family of the driver surface (stream capture, graphs, user objects, graph memory),
//! declared as [`super::decl`] describes; [`driver_surface!`](crate::driver_surface) hands its
//! families here, and this hands them on, with this one, to [`super::undeclared`].

/// Appends the `Graph` family to the families before it and hands all of them on.
#[macro_export]
#[doc(hidden)]
macro_rules! __surface_graph_family {
    ($callback:path [$($extra:tt)*] $($families:tt)*) => {
        $crate::__surface_undeclared! { $callback [$($extra)*] $($families)*
        /// Stream capture and graphs, implemented once for both libraries in
        /// [`crate::graph`] (`implement_graphs!`): nodes replay as the library's own stream work.
        family Graph {
            /// `cuStreamBeginCapture_v2`: `mode` is a `CUstreamCaptureMode`.
            fn stream_begin_capture(stream: CUstream, mode: i32) { cuStreamBeginCapture_v2 | cuStreamBeginCapture_v2_ptsz }
            /// `cuStreamBeginCapture` (CUDA 10.0 ABI): global mode.
            fn stream_begin_capture_v1(stream: CUstream) { cuStreamBeginCapture | cuStreamBeginCapture_ptsz }
            /// `cuStreamBeginCaptureToGraph`: capture into `graph`, after `n` dependencies
            /// (`edge_data` NULL or all zero).
            fn stream_begin_capture_to_graph(stream: CUstream, graph: CUgraph, deps: *const CUgraphNode, edge_data: *const EdgeData, n: usize, mode: i32) unsafe { cuStreamBeginCaptureToGraph | cuStreamBeginCaptureToGraph_ptsz }
            /// `cuStreamEndCapture`
            fn stream_end_capture(stream: CUstream, graph: Out<'_, CUgraph>) { cuStreamEndCapture | cuStreamEndCapture_ptsz }
            /// `cuStreamIsCapturing`
            fn stream_is_capturing(stream: CUstream, status: Out<'_, i32>) { cuStreamIsCapturing | cuStreamIsCapturing_ptsz }
            /// `cuStreamGetCaptureInfo` (CUDA 10.1 ABI): status and id.
            fn stream_get_capture_info_v1(stream: CUstream, status: Out<'_, i32>, id: OptOut<'_, u64>) { cuStreamGetCaptureInfo | cuStreamGetCaptureInfo_ptsz }
            /// `cuStreamGetCaptureInfo_v2`: every out-pointer but `status` may be NULL; the
            /// dependency array stays valid until the next capture call on the stream.
            fn stream_get_capture_info(stream: CUstream, status: Out<'_, i32>, id: OptOut<'_, u64>, graph: OptOut<'_, CUgraph>, deps: OptOut<'_, *const CUgraphNode>, n: OptOut<'_, usize>) { cuStreamGetCaptureInfo_v2 | cuStreamGetCaptureInfo_v2_ptsz }
            /// `cuStreamGetCaptureInfo_v3`: as `_v2`, with edge data (NULL: all edges default).
            fn stream_get_capture_info_v3(stream: CUstream, status: Out<'_, i32>, id: OptOut<'_, u64>, graph: OptOut<'_, CUgraph>, deps: OptOut<'_, *const CUgraphNode>, edge_data: OptOut<'_, *const EdgeData>, n: OptOut<'_, usize>) { cuStreamGetCaptureInfo_v3 | cuStreamGetCaptureInfo_v3_ptsz }
            /// `cuStreamUpdateCaptureDependencies`: flags add (0) or set (1).
            fn stream_update_capture_dependencies(stream: CUstream, deps: *mut CUgraphNode, n: usize, flags: Flags<1>) unsafe { cuStreamUpdateCaptureDependencies | cuStreamUpdateCaptureDependencies_ptsz }
            /// `cuStreamUpdateCaptureDependencies_v2`: with edge data (NULL or all zero).
            fn stream_update_capture_dependencies_v2(stream: CUstream, deps: *mut CUgraphNode, edge_data: *const EdgeData, n: usize, flags: Flags<1>) unsafe { cuStreamUpdateCaptureDependencies_v2 | cuStreamUpdateCaptureDependencies_v2_ptsz }
            /// `cuThreadExchangeStreamCaptureMode`: `mode` in, the previous mode out.
            fn thread_exchange_stream_capture_mode(mode: *mut i32) unsafe { cuThreadExchangeStreamCaptureMode }
            /// `cuGraphCreate`: flags must be 0.
            fn graph_create(graph: Out<'_, CUgraph>, flags: Flags<0>) { cuGraphCreate }
            /// `cuGraphDestroy`
            fn graph_destroy(graph: CUgraph) { cuGraphDestroy }
            /// `cuGraphClone`
            fn graph_clone(clone: Out<'_, CUgraph>, graph: CUgraph) { cuGraphClone }
            /// `cuGraphNodeFindInClone`
            fn graph_node_find_in_clone(node: Out<'_, CUgraphNode>, original: CUgraphNode, clone: CUgraph) { cuGraphNodeFindInClone }
            /// `cuGraphAddKernelNode_v2`: arguments are copied into the node.
            fn graph_add_kernel_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, params: In<KernelNodeParams>) unsafe { cuGraphAddKernelNode_v2 }
            /// `cuGraphAddKernelNode` (v1 parameters).
            fn graph_add_kernel_node_v1(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, params: In<KernelNodeParamsV1>) unsafe { cuGraphAddKernelNode }
            /// `cuGraphKernelNodeGetParams_v2`: `kernelParams` points into the node.
            fn graph_kernel_node_get_params(node: CUgraphNode, params: Out<'_, KernelNodeParams>) { cuGraphKernelNodeGetParams_v2 }
            /// `cuGraphKernelNodeGetParams` (v1 parameters).
            fn graph_kernel_node_get_params_v1(node: CUgraphNode, params: Out<'_, KernelNodeParamsV1>) { cuGraphKernelNodeGetParams }
            /// `cuGraphKernelNodeSetParams_v2`
            fn graph_kernel_node_set_params(node: CUgraphNode, params: In<KernelNodeParams>) unsafe { cuGraphKernelNodeSetParams_v2 }
            /// `cuGraphKernelNodeSetParams` (v1 parameters).
            fn graph_kernel_node_set_params_v1(node: CUgraphNode, params: In<KernelNodeParamsV1>) unsafe { cuGraphKernelNodeSetParams }
            /// `cuGraphAddMemcpyNode`: a 1D or 2D copy (depth 1, no arrays).
            fn graph_add_memcpy_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, params: In<Memcpy3D>, ctx: CUcontext) unsafe { cuGraphAddMemcpyNode }
            /// `cuGraphMemcpyNodeGetParams`
            fn graph_memcpy_node_get_params(node: CUgraphNode, params: Out<'_, Memcpy3D>) { cuGraphMemcpyNodeGetParams }
            /// `cuGraphMemcpyNodeSetParams`
            fn graph_memcpy_node_set_params(node: CUgraphNode, params: In<Memcpy3D>) { cuGraphMemcpyNodeSetParams }
            /// `cuGraphAddMemsetNode`
            fn graph_add_memset_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, params: In<MemsetNodeParams>, ctx: CUcontext) unsafe { cuGraphAddMemsetNode }
            /// `cuGraphMemsetNodeGetParams`
            fn graph_memset_node_get_params(node: CUgraphNode, params: Out<'_, MemsetNodeParams>) { cuGraphMemsetNodeGetParams }
            /// `cuGraphMemsetNodeSetParams`
            fn graph_memset_node_set_params(node: CUgraphNode, params: In<MemsetNodeParams>) { cuGraphMemsetNodeSetParams }
            /// `cuGraphAddHostNode`
            fn graph_add_host_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, params: In<HostNodeParams>) unsafe { cuGraphAddHostNode }
            /// `cuGraphHostNodeGetParams`
            fn graph_host_node_get_params(node: CUgraphNode, params: Out<'_, HostNodeParams>) { cuGraphHostNodeGetParams }
            /// `cuGraphHostNodeSetParams`
            fn graph_host_node_set_params(node: CUgraphNode, params: In<HostNodeParams>) { cuGraphHostNodeSetParams }
            /// `cuGraphAddChildGraphNode`: the child is copied into the node.
            fn graph_add_child_graph_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, child: CUgraph) unsafe { cuGraphAddChildGraphNode }
            /// `cuGraphChildGraphNodeGetGraph`: the node's own copy.
            fn graph_child_graph_node_get_graph(node: CUgraphNode, graph: Out<'_, CUgraph>) { cuGraphChildGraphNodeGetGraph }
            /// `cuGraphAddEmptyNode`
            fn graph_add_empty_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize) unsafe { cuGraphAddEmptyNode }
            /// `cuGraphAddEventRecordNode`
            fn graph_add_event_record_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, event: CUevent) unsafe { cuGraphAddEventRecordNode }
            /// `cuGraphEventRecordNodeGetEvent`
            fn graph_event_record_node_get_event(node: CUgraphNode, event: Out<'_, CUevent>) { cuGraphEventRecordNodeGetEvent }
            /// `cuGraphEventRecordNodeSetEvent`
            fn graph_event_record_node_set_event(node: CUgraphNode, event: CUevent) { cuGraphEventRecordNodeSetEvent }
            /// `cuGraphAddEventWaitNode`
            fn graph_add_event_wait_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, event: CUevent) unsafe { cuGraphAddEventWaitNode }
            /// `cuGraphEventWaitNodeGetEvent`
            fn graph_event_wait_node_get_event(node: CUgraphNode, event: Out<'_, CUevent>) { cuGraphEventWaitNodeGetEvent }
            /// `cuGraphEventWaitNodeSetEvent`
            fn graph_event_wait_node_set_event(node: CUgraphNode, event: CUevent) { cuGraphEventWaitNodeSetEvent }
            /// `cuGraphAddNode`: kernel, memcpy, memset, host, child graph, empty, event nodes.
            fn graph_add_node(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, n: usize, params: *mut NodeParams) unsafe { cuGraphAddNode }
            /// `cuGraphAddNode_v2`: with edge data (NULL or all zero).
            fn graph_add_node_v2(node: Out<'_, CUgraphNode>, graph: CUgraph, deps: *const CUgraphNode, edge_data: *const EdgeData, n: usize, params: *mut NodeParams) unsafe { cuGraphAddNode_v2, cuGraphAddNode_v3 }
            /// `cuGraphNodeGetContainingGraph` (CUDA 13)
            fn graph_node_get_containing_graph(node: CUgraphNode, graph: Out<'_, CUgraph>) { cuGraphNodeGetContainingGraph }
            /// `cuGraphNodeGetLocalId` (CUDA 13): the node's position in its graph's creation order.
            fn graph_node_get_local_id(node: CUgraphNode, id: Out<'_, u32>) { cuGraphNodeGetLocalId }
            /// `cuGraphNodeGetToolsId` (CUDA 13): unique in the process.
            fn graph_node_get_tools_id(node: CUgraphNode, id: Out<'_, u64>) { cuGraphNodeGetToolsId }
            /// `cuGraphGetId` (CUDA 13)
            fn graph_get_id(graph: CUgraph, id: Out<'_, u32>) { cuGraphGetId }
            /// `cuGraphExecGetId` (CUDA 13)
            fn graph_exec_get_id(exec: CUgraphExec, id: Out<'_, u32>) { cuGraphExecGetId }
            /// `cuGraphNodeGetType`
            fn graph_node_get_type(node: CUgraphNode, kind: Out<'_, i32>) { cuGraphNodeGetType }
            /// `cuGraphGetNodes`: `nodes` NULL asks the count; else `n` in is its capacity.
            fn graph_get_nodes(graph: CUgraph, nodes: *mut CUgraphNode, n: *mut usize) unsafe { cuGraphGetNodes }
            /// `cuGraphGetRootNodes`: as `cuGraphGetNodes`, nodes without dependencies.
            fn graph_get_root_nodes(graph: CUgraph, nodes: *mut CUgraphNode, n: *mut usize) unsafe { cuGraphGetRootNodes }
            /// `cuGraphGetEdges`: `from`/`to` both NULL ask the count.
            fn graph_get_edges(graph: CUgraph, from: *mut CUgraphNode, to: *mut CUgraphNode, n: *mut usize) unsafe { cuGraphGetEdges }
            /// `cuGraphGetEdges_v2`: with edge data (all default).
            fn graph_get_edges_v2(graph: CUgraph, from: *mut CUgraphNode, to: *mut CUgraphNode, edge_data: *mut EdgeData, n: *mut usize) unsafe { cuGraphGetEdges_v2 }
            /// `cuGraphNodeGetDependencies`
            fn graph_node_get_dependencies(node: CUgraphNode, deps: *mut CUgraphNode, n: *mut usize) unsafe { cuGraphNodeGetDependencies }
            /// `cuGraphNodeGetDependencies_v2`
            fn graph_node_get_dependencies_v2(node: CUgraphNode, deps: *mut CUgraphNode, edge_data: *mut EdgeData, n: *mut usize) unsafe { cuGraphNodeGetDependencies_v2 }
            /// `cuGraphNodeGetDependentNodes`
            fn graph_node_get_dependent_nodes(node: CUgraphNode, nodes: *mut CUgraphNode, n: *mut usize) unsafe { cuGraphNodeGetDependentNodes }
            /// `cuGraphNodeGetDependentNodes_v2`
            fn graph_node_get_dependent_nodes_v2(node: CUgraphNode, nodes: *mut CUgraphNode, edge_data: *mut EdgeData, n: *mut usize) unsafe { cuGraphNodeGetDependentNodes_v2 }
            /// `cuGraphAddDependencies`: `n` edges `from[i]` → `to[i]`.
            fn graph_add_dependencies(graph: CUgraph, from: *const CUgraphNode, to: *const CUgraphNode, n: usize) unsafe { cuGraphAddDependencies }
            /// `cuGraphAddDependencies_v2`: with edge data (NULL or all zero).
            fn graph_add_dependencies_v2(graph: CUgraph, from: *const CUgraphNode, to: *const CUgraphNode, edge_data: *const EdgeData, n: usize) unsafe { cuGraphAddDependencies_v2 }
            /// `cuGraphRemoveDependencies`
            fn graph_remove_dependencies(graph: CUgraph, from: *const CUgraphNode, to: *const CUgraphNode, n: usize) unsafe { cuGraphRemoveDependencies }
            /// `cuGraphRemoveDependencies_v2`
            fn graph_remove_dependencies_v2(graph: CUgraph, from: *const CUgraphNode, to: *const CUgraphNode, edge_data: *const EdgeData, n: usize) unsafe { cuGraphRemoveDependencies_v2 }
            /// `cuGraphDestroyNode`
            fn graph_destroy_node(node: CUgraphNode) { cuGraphDestroyNode }
            /// `cuGraphInstantiateWithFlags`
            fn graph_instantiate_with_flags(exec: Out<'_, CUgraphExec>, graph: CUgraph, flags: u64) { cuGraphInstantiateWithFlags }
            /// `cuGraphInstantiate` (CUDA 10 ABI): the error node and a log buffer (may be NULL).
            fn graph_instantiate_v1(exec: Out<'_, CUgraphExec>, graph: CUgraph, error_node: OptOut<'_, CUgraphNode>, log: *mut c_char, log_size: usize) unsafe { cuGraphInstantiate_v2, cuGraphInstantiate }
            /// `cuGraphInstantiateWithParams`: flags in, the result out.
            fn graph_instantiate_with_params(exec: Out<'_, CUgraphExec>, graph: CUgraph, params: *mut InstantiateParams) unsafe { cuGraphInstantiateWithParams | cuGraphInstantiateWithParams_ptsz }
            /// `cuGraphExecGetFlags`
            fn graph_exec_get_flags(exec: CUgraphExec, flags: Out<'_, u64>) { cuGraphExecGetFlags }
            /// `cuGraphExecKernelNodeSetParams_v2`: `node` is a node of the instantiated graph.
            fn graph_exec_kernel_node_set_params(exec: CUgraphExec, node: CUgraphNode, params: In<KernelNodeParams>) unsafe { cuGraphExecKernelNodeSetParams_v2 }
            /// `cuGraphExecKernelNodeSetParams` (v1 parameters).
            fn graph_exec_kernel_node_set_params_v1(exec: CUgraphExec, node: CUgraphNode, params: In<KernelNodeParamsV1>) unsafe { cuGraphExecKernelNodeSetParams }
            /// `cuGraphExecMemcpyNodeSetParams`
            fn graph_exec_memcpy_node_set_params(exec: CUgraphExec, node: CUgraphNode, params: In<Memcpy3D>, ctx: CUcontext) { cuGraphExecMemcpyNodeSetParams }
            /// `cuGraphExecMemsetNodeSetParams`
            fn graph_exec_memset_node_set_params(exec: CUgraphExec, node: CUgraphNode, params: In<MemsetNodeParams>, ctx: CUcontext) { cuGraphExecMemsetNodeSetParams }
            /// `cuGraphExecHostNodeSetParams`
            fn graph_exec_host_node_set_params(exec: CUgraphExec, node: CUgraphNode, params: In<HostNodeParams>) { cuGraphExecHostNodeSetParams }
            /// `cuGraphExecEventRecordNodeSetEvent`
            fn graph_exec_event_record_node_set_event(exec: CUgraphExec, node: CUgraphNode, event: CUevent) { cuGraphExecEventRecordNodeSetEvent }
            /// `cuGraphExecEventWaitNodeSetEvent`
            fn graph_exec_event_wait_node_set_event(exec: CUgraphExec, node: CUgraphNode, event: CUevent) { cuGraphExecEventWaitNodeSetEvent }
            /// `cuGraphExecUpdate_v2`: `info` says why an update failed.
            fn graph_exec_update(exec: CUgraphExec, graph: CUgraph, info: Out<'_, ExecUpdateResultInfo>) { cuGraphExecUpdate_v2 }
            /// `cuGraphExecUpdate` (CUDA 10.2 ABI): the error node and the result.
            fn graph_exec_update_v1(exec: CUgraphExec, graph: CUgraph, error_node: Out<'_, CUgraphNode>, result: Out<'_, i32>) { cuGraphExecUpdate }
            /// `cuGraphUpload`: nothing to upload; checks the handles.
            fn graph_upload(exec: CUgraphExec, stream: CUstream) { cuGraphUpload | cuGraphUpload_ptsz }
            /// `cuGraphLaunch`: the steps go to `stream` as ordinary work.
            fn graph_launch(exec: CUgraphExec, stream: CUstream) { cuGraphLaunch | cuGraphLaunch_ptsz }
            /// `cuGraphExecDestroy`
            fn graph_exec_destroy(exec: CUgraphExec) { cuGraphExecDestroy }
            /// `cuDeviceGetGraphMemAttribute`: `value` is a `cuuint64_t`.
            fn device_get_graph_mem_attribute(device: CUdevice, attr: i32, value: *mut c_void) unsafe { cuDeviceGetGraphMemAttribute }
            /// `cuDeviceSetGraphMemAttribute`: resets a high watermark (`value` 0).
            fn device_set_graph_mem_attribute(device: CUdevice, attr: i32, value: *mut c_void) unsafe { cuDeviceSetGraphMemAttribute }
            /// `cuDeviceGraphMemTrim`
            fn device_graph_mem_trim(device: CUdevice) { cuDeviceGraphMemTrim }
            /// `cuUserObjectCreate`: `destroy(ptr)` runs when the last reference goes; flags
            /// must be `CU_USER_OBJECT_NO_DESTRUCTOR_SYNC`.
            fn user_object_create(object: Out<'_, CUuserObject>, ptr: *mut c_void, destroy: CUhostFn, initial: u32, flags: u32) { cuUserObjectCreate }
            /// `cuUserObjectRetain`
            fn user_object_retain(object: CUuserObject, count: u32) { cuUserObjectRetain }
            /// `cuUserObjectRelease`
            fn user_object_release(object: CUuserObject, count: u32) { cuUserObjectRelease }
            /// `cuGraphRetainUserObject`: flags 0 or `CU_GRAPH_USER_OBJECT_MOVE`.
            fn graph_retain_user_object(graph: CUgraph, object: CUuserObject, count: u32, flags: u32) { cuGraphRetainUserObject }
            /// `cuGraphReleaseUserObject`
            fn graph_release_user_object(graph: CUgraph, object: CUuserObject, count: u32) { cuGraphReleaseUserObject }
        }
        }
    };
}
