//! The driver surface, declared once: every entry point either library exports with a signature,
//! grouped by API family.
//!
//! Each entry is
//!
//! ```text
//! /// doc
//! fn method(arg: ConvertedType, ...) [unsafe] { symbol [| twin] [, alias [| twin] [(raw C types)]]* }
//! ```
//!
//! - `method` is the family trait's method a library implements ([`super::traits`]); its
//!   arguments are already converted ([`super::args`]: `Out`, `OptOut`, `In`, `&str`, `Flags`).
//! - `symbol` is the exported C symbol; its C signature is each argument's
//!   [`CudaArg::Raw`](super::args::CudaArg) type.
//! - `| twin`: the `_ptds`/`_ptsz` twin. The method then takes a last argument
//!   `default_stream: DefaultStream` (`Legacy` through `symbol` and its aliases, `PerThread`
//!   through the twins); an alias may have its own twin only when `symbol` has one.
//! - `, alias`: another exported version of the same call (`cuCtxDestroy` and `_v2`); with
//!   `(raw C types)` it has another C signature (the v1 ABI's 32-bit sizes and pointers), converted
//!   to the same method arguments (widened; narrowed on output by [`Out`](super::args::Out)).
//! - `unsafe`: the method reads or writes raw memory the caller names (host buffers, arrays,
//!   callbacks), so it is an `unsafe fn` whose contract is the C caller's.
//!
//! `undeclared` lists every other symbol libcuda 12.9 exports: each is exported as a stub that
//! logs its name once and returns `CUDA_ERROR_NOT_SUPPORTED`. The symbols `cuGetProcAddress`,
//! `cuGetProcAddress_v2`, `cuGetExportTable`, `cuGetErrorName` and `cuGetErrorString` are built
//! into the generated layer (they depend on the surface, not on a library). A test checks that
//! declared, built-in and undeclared symbols are exactly the headers' exported symbols.
//!
//! Adding an entry point: move its symbol from `undeclared` into a family with its signature, and
//! implement the method in each library that supports it (one that does not gets the
//! NOT_SUPPORTED default).

/// Calls `$callback! { family ... undeclared { ... } }` with the whole surface.
#[macro_export]
#[doc(hidden)]
macro_rules! driver_surface {
    ($callback:path $(, $extra:tt)*) => {
        $callback! {
            $($extra)*
        /// Initialisation and version.
        family Init {
            /// `cuInit`: flags must be 0.
            fn init(flags: Flags<0>) { cuInit }
            /// `cuDriverGetVersion`: works before `cuInit`.
            fn driver_get_version(version: Out<'_, i32>) { cuDriverGetVersion }
        }

        /// Device enumeration and properties.
        family Device {
            /// `cuDeviceGetCount`
            fn device_get_count(count: Out<'_, i32>) { cuDeviceGetCount }
            /// `cuDeviceGet`
            fn device_get(dev: Out<'_, CUdevice>, ordinal: i32) { cuDeviceGet }
            /// `cuDeviceGetName`: `name` holds `len` bytes; the name is truncated and NUL-terminated.
            fn device_get_name(name: *mut c_char, len: i32, dev: CUdevice) unsafe { cuDeviceGetName }
            /// `cuDeviceTotalMem` (v1: clamped to 32 bits).
            fn device_total_mem(bytes: Out<'_, usize>, dev: CUdevice) { cuDeviceTotalMem_v2, cuDeviceTotalMem(*mut u32, CUdevice) }
            /// `cuDeviceGetAttribute`
            fn device_get_attribute(value: Out<'_, i32>, attrib: i32, dev: CUdevice) { cuDeviceGetAttribute }
            /// `cuDeviceComputeCapability` (deprecated, still exported).
            fn device_compute_capability(major: Out<'_, i32>, minor: Out<'_, i32>, dev: CUdevice) { cuDeviceComputeCapability }
            /// `cuDeviceGetUuid`
            fn device_get_uuid(uuid: Out<'_, CUuuid>, dev: CUdevice) { cuDeviceGetUuid_v2, cuDeviceGetUuid }
            /// `cuDeviceGetPCIBusId`: `bus_id` holds `len` bytes.
            fn device_get_pci_bus_id(bus_id: *mut c_char, len: i32, dev: CUdevice) unsafe { cuDeviceGetPCIBusId }
            /// `cuDeviceGetByPCIBusId`
            fn device_get_by_pci_bus_id(dev: Out<'_, CUdevice>, bus_id: &str) { cuDeviceGetByPCIBusId }
            /// `cuDeviceCanAccessPeer`
            fn device_can_access_peer(can: Out<'_, i32>, dev: CUdevice, peer: CUdevice) { cuDeviceCanAccessPeer }
            /// `cuDeviceGetP2PAttribute`
            fn device_get_p2p_attribute(value: Out<'_, i32>, attrib: i32, src: CUdevice, dst: CUdevice) { cuDeviceGetP2PAttribute }
        }

        /// Contexts: created, primary, the per-thread current-context stack, limits and configs.
        family Context {
            /// `cuCtxCreate`
            fn ctx_create(pctx: Out<'_, CUcontext>, flags: u32, dev: CUdevice) { cuCtxCreate_v2, cuCtxCreate }
            /// `cuCtxCreate_v3`: execution-affinity parameters (`num_params` of them).
            fn ctx_create_v3(pctx: Out<'_, CUcontext>, params: *mut c_void, num_params: i32, flags: u32, dev: CUdevice) { cuCtxCreate_v3 }
            /// `cuCtxCreate_v4`: `CUctxCreateParams` (three pointer-sized fields), or NULL.
            fn ctx_create_v4(pctx: Out<'_, CUcontext>, params: *mut [usize; 3], flags: u32, dev: CUdevice) unsafe { cuCtxCreate_v4 }
            /// `cuCtxDestroy`
            fn ctx_destroy(ctx: CUcontext) { cuCtxDestroy_v2, cuCtxDestroy }
            /// `cuCtxPushCurrent`
            fn ctx_push_current(ctx: CUcontext) { cuCtxPushCurrent_v2, cuCtxPushCurrent }
            /// `cuCtxPopCurrent`: `pctx` may be NULL.
            fn ctx_pop_current(pctx: OptOut<'_, CUcontext>) { cuCtxPopCurrent_v2, cuCtxPopCurrent }
            /// `cuCtxSetCurrent`: NULL pops.
            fn ctx_set_current(ctx: CUcontext) { cuCtxSetCurrent }
            /// `cuCtxGetCurrent`
            fn ctx_get_current(pctx: Out<'_, CUcontext>) { cuCtxGetCurrent }
            /// `cuCtxGetDevice`
            fn ctx_get_device(dev: Out<'_, CUdevice>) { cuCtxGetDevice }
            /// `cuCtxGetDevice_v2` (CUDA 13.0): the device of `ctx`, NULL meaning the current context.
            fn ctx_get_device_v2(dev: Out<'_, CUdevice>, ctx: CUcontext) { cuCtxGetDevice_v2 }
            /// `cuCtxGetFlags`
            fn ctx_get_flags(flags: Out<'_, u32>) { cuCtxGetFlags }
            /// `cuCtxSetFlags`
            fn ctx_set_flags(flags: u32) { cuCtxSetFlags }
            /// `cuCtxGetId`: NULL means the current context.
            fn ctx_get_id(ctx: CUcontext, id: Out<'_, u64>) { cuCtxGetId }
            /// `cuCtxGetApiVersion`: NULL means the current context.
            fn ctx_get_api_version(ctx: CUcontext, version: Out<'_, u32>) { cuCtxGetApiVersion }
            /// `cuCtxSynchronize`
            fn ctx_synchronize() { cuCtxSynchronize }
            /// `cuCtxSynchronize_v2` (CUDA 13.0): waits for `ctx`'s work, NULL meaning the current context.
            fn ctx_synchronize_v2(ctx: CUcontext) { cuCtxSynchronize_v2 }
            /// `cuCtxGetLimit`
            fn ctx_get_limit(value: Out<'_, usize>, limit: i32) { cuCtxGetLimit }
            /// `cuCtxSetLimit`
            fn ctx_set_limit(limit: i32, value: usize) { cuCtxSetLimit }
            /// `cuCtxGetCacheConfig`
            fn ctx_get_cache_config(config: Out<'_, i32>) { cuCtxGetCacheConfig }
            /// `cuCtxSetCacheConfig`
            fn ctx_set_cache_config(config: i32) { cuCtxSetCacheConfig }
            /// `cuCtxGetSharedMemConfig`
            fn ctx_get_shared_mem_config(config: Out<'_, i32>) { cuCtxGetSharedMemConfig }
            /// `cuCtxSetSharedMemConfig`
            fn ctx_set_shared_mem_config(config: i32) { cuCtxSetSharedMemConfig }
            /// `cuCtxGetStreamPriorityRange`: either pointer may be NULL.
            fn ctx_get_stream_priority_range(least: OptOut<'_, i32>, greatest: OptOut<'_, i32>) { cuCtxGetStreamPriorityRange }
            /// `cuCtxResetPersistingL2Cache`
            fn ctx_reset_persisting_l2_cache() { cuCtxResetPersistingL2Cache }
            /// `cuDevicePrimaryCtxRetain`
            fn device_primary_ctx_retain(pctx: Out<'_, CUcontext>, dev: CUdevice) { cuDevicePrimaryCtxRetain }
            /// `cuDevicePrimaryCtxRelease`
            fn device_primary_ctx_release(dev: CUdevice) { cuDevicePrimaryCtxRelease_v2, cuDevicePrimaryCtxRelease }
            /// `cuDevicePrimaryCtxReset`
            fn device_primary_ctx_reset(dev: CUdevice) { cuDevicePrimaryCtxReset_v2, cuDevicePrimaryCtxReset }
            /// `cuDevicePrimaryCtxSetFlags`
            fn device_primary_ctx_set_flags(dev: CUdevice, flags: u32) { cuDevicePrimaryCtxSetFlags_v2, cuDevicePrimaryCtxSetFlags }
            /// `cuDevicePrimaryCtxGetState`
            fn device_primary_ctx_get_state(dev: CUdevice, flags: Out<'_, u32>, active: Out<'_, i32>) { cuDevicePrimaryCtxGetState }
            /// `cuCtxAttach` (deprecated): flags must be 0; increments the current context's usage
            /// count and returns it.
            fn ctx_attach(pctx: Out<'_, CUcontext>, flags: Flags<0>) { cuCtxAttach }
            /// `cuCtxDetach` (deprecated): `ctx` must be current; decrements its usage count and
            /// destroys it at zero.
            fn ctx_detach(ctx: CUcontext) { cuCtxDetach }
        }

        /// Streams.
        family Stream {
            /// `cuStreamCreate`: flags `CU_STREAM_DEFAULT` or `CU_STREAM_NON_BLOCKING`.
            fn stream_create(stream: Out<'_, CUstream>, flags: Flags<{ CU_STREAM_NON_BLOCKING }>) { cuStreamCreate }
            /// `cuStreamCreateWithPriority`
            fn stream_create_with_priority(stream: Out<'_, CUstream>, flags: Flags<{ CU_STREAM_NON_BLOCKING }>, priority: i32) { cuStreamCreateWithPriority }
            /// `cuStreamDestroy`
            fn stream_destroy(stream: CUstream) { cuStreamDestroy_v2, cuStreamDestroy }
            /// `cuStreamQuery`
            fn stream_query(stream: CUstream) { cuStreamQuery | cuStreamQuery_ptsz }
            /// `cuStreamSynchronize`
            fn stream_synchronize(stream: CUstream) { cuStreamSynchronize | cuStreamSynchronize_ptsz }
            /// `cuStreamWaitEvent`
            fn stream_wait_event(stream: CUstream, event: CUevent, flags: Flags<{ CU_EVENT_WAIT_EXTERNAL }>) { cuStreamWaitEvent | cuStreamWaitEvent_ptsz }
            /// `cuStreamAddCallback`: the callback (NULL: `INVALID_VALUE`) runs later with `data`.
            fn stream_add_callback(stream: CUstream, callback: CUstreamCallback, data: *mut c_void, flags: Flags<0>) unsafe { cuStreamAddCallback | cuStreamAddCallback_ptsz }
            /// `cuStreamGetPriority`
            fn stream_get_priority(stream: CUstream, priority: Out<'_, i32>) { cuStreamGetPriority | cuStreamGetPriority_ptsz }
            /// `cuStreamGetFlags`
            fn stream_get_flags(stream: CUstream, flags: Out<'_, u32>) { cuStreamGetFlags | cuStreamGetFlags_ptsz }
            /// `cuStreamGetId`
            fn stream_get_id(stream: CUstream, id: Out<'_, u64>) { cuStreamGetId | cuStreamGetId_ptsz }
            /// `cuStreamGetDevice`
            fn stream_get_device(stream: CUstream, dev: Out<'_, CUdevice>) { cuStreamGetDevice | cuStreamGetDevice_ptsz }
            /// `cuStreamGetCtx`
            fn stream_get_ctx(stream: CUstream, pctx: Out<'_, CUcontext>) { cuStreamGetCtx | cuStreamGetCtx_ptsz }
            /// `cuStreamGetCtx_v2`: `pgreen` (a green context) may be NULL.
            fn stream_get_ctx_v2(stream: CUstream, pctx: Out<'_, CUcontext>, pgreen: OptOut<'_, *mut c_void>) { cuStreamGetCtx_v2 | cuStreamGetCtx_v2_ptsz }
            /// `cuStreamWriteValue32`: writes `value` to `addr` (4-byte aligned device memory) when
            /// the stream reaches it; `CU_STREAM_WRITE_VALUE_NO_MEMORY_BARRIER` may be given.
            fn stream_write_value32(stream: CUstream, addr: CUdeviceptr, value: u32, flags: Flags<{ CU_STREAM_WRITE_VALUE_NO_MEMORY_BARRIER }>) { cuStreamWriteValue32_v2 | cuStreamWriteValue32_v2_ptsz, cuStreamWriteValue32 | cuStreamWriteValue32_ptsz }
            /// `cuStreamIsCapturing`
            fn stream_is_capturing(stream: CUstream, status: Out<'_, i32>) { cuStreamIsCapturing | cuStreamIsCapturing_ptsz }
        }

        /// Events.
        family Event {
            /// `cuEventCreate`: `CU_EVENT_BLOCKING_SYNC | DISABLE_TIMING | INTERPROCESS`.
            fn event_create(event: Out<'_, CUevent>, flags: Flags<{ CU_EVENT_FLAGS }>) { cuEventCreate }
            /// `cuEventDestroy`
            fn event_destroy(event: CUevent) { cuEventDestroy_v2, cuEventDestroy }
            /// `cuEventRecord`
            fn event_record(event: CUevent, stream: CUstream) { cuEventRecord | cuEventRecord_ptsz }
            /// `cuEventRecordWithFlags`: `CU_EVENT_RECORD_DEFAULT` or `_EXTERNAL`.
            fn event_record_with_flags(event: CUevent, stream: CUstream, flags: Flags<{ CU_EVENT_RECORD_EXTERNAL }>) { cuEventRecordWithFlags | cuEventRecordWithFlags_ptsz }
            /// `cuEventQuery`
            fn event_query(event: CUevent) { cuEventQuery }
            /// `cuEventSynchronize`
            fn event_synchronize(event: CUevent) { cuEventSynchronize }
            /// `cuEventElapsedTime`
            fn event_elapsed_time(ms: Out<'_, f32>, start: CUevent, end: CUevent) { cuEventElapsedTime_v2, cuEventElapsedTime }
        }

        /// Device memory: allocation, release, queries.
        family Memory {
            /// `cuMemAlloc` (v1: a pointer that does not fit in 32 bits is `NOT_SUPPORTED`).
            fn mem_alloc(dptr: Out<'_, CUdeviceptr>, bytesize: usize) { cuMemAlloc_v2, cuMemAlloc(*mut u32, u32) }
            /// `cuMemAllocPitch`
            fn mem_alloc_pitch(dptr: Out<'_, CUdeviceptr>, pitch: Out<'_, usize>, width: usize, height: usize, element_size: u32) { cuMemAllocPitch_v2, cuMemAllocPitch(*mut u32, *mut u32, u32, u32, u32) }
            /// `cuMemAllocManaged`
            fn mem_alloc_managed(dptr: Out<'_, CUdeviceptr>, bytesize: usize, flags: u32) { cuMemAllocManaged }
            /// `cuMemFree`: 0 is a no-op.
            fn mem_free(dptr: CUdeviceptr) { cuMemFree_v2, cuMemFree(u32) }
            /// `cuMemGetInfo` (v1: clamped).
            fn mem_get_info(free: Out<'_, usize>, total: Out<'_, usize>) { cuMemGetInfo_v2, cuMemGetInfo(*mut u32, *mut u32) }
            /// `cuMemGetAddressRange`: either pointer may be NULL.
            fn mem_get_address_range(pbase: OptOut<'_, CUdeviceptr>, psize: OptOut<'_, usize>, dptr: CUdeviceptr) { cuMemGetAddressRange_v2, cuMemGetAddressRange(*mut u32, *mut u32, u32) }
        }

        /// Page-locked host memory.
        family HostMemory {
            /// `cuMemAllocHost`
            fn mem_alloc_host(pp: Out<'_, *mut c_void>, bytesize: usize) { cuMemAllocHost_v2, cuMemAllocHost(*mut *mut c_void, u32) }
            /// `cuMemHostAlloc`: `CU_MEMHOSTALLOC_PORTABLE | DEVICEMAP | WRITECOMBINED`.
            fn mem_host_alloc(pp: Out<'_, *mut c_void>, bytesize: usize, flags: Flags<{ CU_MEMHOSTALLOC_FLAGS }>) { cuMemHostAlloc }
            /// `cuMemFreeHost`
            fn mem_free_host(p: *mut c_void) { cuMemFreeHost }
            /// `cuMemHostGetDevicePointer`
            fn mem_host_get_device_pointer(pdptr: Out<'_, CUdeviceptr>, p: *mut c_void, flags: Flags<0>) { cuMemHostGetDevicePointer_v2, cuMemHostGetDevicePointer(*mut u32, *mut c_void, u32) }
            /// `cuMemHostGetFlags`
            fn mem_host_get_flags(pflags: Out<'_, u32>, p: *mut c_void) { cuMemHostGetFlags }
            /// `cuMemHostRegister`: `bytesize` bytes at `p` stay valid until unregistered.
            fn mem_host_register(p: *mut c_void, bytesize: usize, flags: Flags<{ CU_MEMHOSTREGISTER_FLAGS }>) unsafe { cuMemHostRegister_v2, cuMemHostRegister }
            /// `cuMemHostUnregister`
            fn mem_host_unregister(p: *mut c_void) { cuMemHostUnregister }
        }

        /// Pointer attributes.
        family Pointer {
            /// `cuPointerGetAttribute`: `data` is storage of the attribute's type.
            fn pointer_get_attribute(data: *mut c_void, attribute: i32, ptr: CUdeviceptr) unsafe { cuPointerGetAttribute }
            /// `cuPointerGetAttributes`: `num_attributes` attributes and data pointers.
            fn pointer_get_attributes(num_attributes: u32, attributes: *const i32, data: *mut *mut c_void, ptr: CUdeviceptr) unsafe { cuPointerGetAttributes }
            /// `cuPointerSetAttribute`: `value` points to the attribute's type.
            fn pointer_set_attribute(value: *const c_void, attribute: i32, ptr: CUdeviceptr) unsafe { cuPointerSetAttribute }
        }

        /// Virtual memory management: address reservations, physical allocations, mappings.
        family Vmm {
            /// `cuMemAddressReserve`
            fn mem_address_reserve(ptr: Out<'_, CUdeviceptr>, size: usize, alignment: usize, addr: CUdeviceptr, flags: u64) { cuMemAddressReserve }
            /// `cuMemAddressFree`
            fn mem_address_free(ptr: CUdeviceptr, size: usize) { cuMemAddressFree }
            /// `cuMemCreate`
            fn mem_create(handle: Out<'_, CUmemGenericAllocationHandle>, size: usize, prop: In<CUmemAllocationProp>, flags: u64) { cuMemCreate }
            /// `cuMemRelease`
            fn mem_release(handle: CUmemGenericAllocationHandle) { cuMemRelease }
            /// `cuMemMap`
            fn mem_map(ptr: CUdeviceptr, size: usize, offset: usize, handle: CUmemGenericAllocationHandle, flags: u64) { cuMemMap }
            /// `cuMemUnmap`
            fn mem_unmap(ptr: CUdeviceptr, size: usize) { cuMemUnmap }
            /// `cuMemSetAccess`: `count` descriptors at `desc`.
            fn mem_set_access(ptr: CUdeviceptr, size: usize, desc: *const CUmemAccessDesc, count: usize) unsafe { cuMemSetAccess }
            /// `cuMemGetAccess`
            fn mem_get_access(flags: Out<'_, u64>, location: In<CUmemLocation>, ptr: CUdeviceptr) { cuMemGetAccess }
            /// `cuMemGetAllocationGranularity`
            fn mem_get_allocation_granularity(granularity: Out<'_, usize>, prop: In<CUmemAllocationProp>, option: i32) { cuMemGetAllocationGranularity }
            /// `cuMemGetAllocationPropertiesFromHandle`
            fn mem_get_allocation_properties_from_handle(prop: Out<'_, CUmemAllocationProp>, handle: CUmemGenericAllocationHandle) { cuMemGetAllocationPropertiesFromHandle }
            /// `cuMemRetainAllocationHandle`: `addr` is a mapped device address.
            fn mem_retain_allocation_handle(handle: Out<'_, CUmemGenericAllocationHandle>, addr: *mut c_void) { cuMemRetainAllocationHandle }
            /// `cuMemExportToShareableHandle`: `shareable` is storage of the handle type's type.
            fn mem_export_to_shareable_handle(shareable: *mut c_void, handle: CUmemGenericAllocationHandle, handle_type: i32, flags: u64) unsafe { cuMemExportToShareableHandle }
            /// `cuMemImportFromShareableHandle`: `os_handle` carries the handle's value (a file
            /// descriptor for POSIX handles).
            fn mem_import_from_shareable_handle(handle: Out<'_, CUmemGenericAllocationHandle>, os_handle: *mut c_void, handle_type: i32) { cuMemImportFromShareableHandle }
        }

        /// Copies and memsets, synchronous and asynchronous.
        family Copies {
            /// `cuMemcpy`: direction from unified addressing.
            fn memcpy(dst: CUdeviceptr, src: CUdeviceptr, n: usize) unsafe { cuMemcpy | cuMemcpy_ptds }
            /// `cuMemcpyAsync`
            fn memcpy_async(dst: CUdeviceptr, src: CUdeviceptr, n: usize, stream: CUstream) unsafe { cuMemcpyAsync | cuMemcpyAsync_ptsz }
            /// `cuMemcpyHtoD`: `src` holds `n` bytes.
            fn memcpy_htod(dst: CUdeviceptr, src: *const c_void, n: usize) unsafe { cuMemcpyHtoD_v2 | cuMemcpyHtoD_v2_ptds }
            /// `cuMemcpyHtoDAsync`
            fn memcpy_htod_async(dst: CUdeviceptr, src: *const c_void, n: usize, stream: CUstream) unsafe { cuMemcpyHtoDAsync_v2 | cuMemcpyHtoDAsync_v2_ptsz }
            /// `cuMemcpyDtoH`: `dst` holds `n` bytes.
            fn memcpy_dtoh(dst: *mut c_void, src: CUdeviceptr, n: usize) unsafe { cuMemcpyDtoH_v2 | cuMemcpyDtoH_v2_ptds }
            /// `cuMemcpyDtoHAsync`
            fn memcpy_dtoh_async(dst: *mut c_void, src: CUdeviceptr, n: usize, stream: CUstream) unsafe { cuMemcpyDtoHAsync_v2 | cuMemcpyDtoHAsync_v2_ptsz }
            /// `cuMemcpyDtoD`
            fn memcpy_dtod(dst: CUdeviceptr, src: CUdeviceptr, n: usize) { cuMemcpyDtoD_v2 | cuMemcpyDtoD_v2_ptds }
            /// `cuMemcpyDtoDAsync`
            fn memcpy_dtod_async(dst: CUdeviceptr, src: CUdeviceptr, n: usize, stream: CUstream) { cuMemcpyDtoDAsync_v2 | cuMemcpyDtoDAsync_v2_ptsz }
            /// `cuMemcpyPeer`: one device, so a device-to-device copy.
            fn memcpy_peer(dst: CUdeviceptr, dst_ctx: CUcontext, src: CUdeviceptr, src_ctx: CUcontext, n: usize) { cuMemcpyPeer | cuMemcpyPeer_ptds }
            /// `cuMemcpyPeerAsync`
            fn memcpy_peer_async(dst: CUdeviceptr, dst_ctx: CUcontext, src: CUdeviceptr, src_ctx: CUcontext, n: usize, stream: CUstream) { cuMemcpyPeerAsync | cuMemcpyPeerAsync_ptsz }
            /// `cuMemcpy2D`: host memory the descriptor names is valid for its extent.
            fn memcpy_2d(p: In<CudaMemcpy2D>) unsafe { cuMemcpy2D_v2 | cuMemcpy2D_v2_ptds }
            /// `cuMemcpy2DUnaligned`
            fn memcpy_2d_unaligned(p: In<CudaMemcpy2D>) unsafe { cuMemcpy2DUnaligned_v2 | cuMemcpy2DUnaligned_v2_ptds }
            /// `cuMemcpy2DAsync`
            fn memcpy_2d_async(p: In<CudaMemcpy2D>, stream: CUstream) unsafe { cuMemcpy2DAsync_v2 | cuMemcpy2DAsync_v2_ptsz }
            /// `cuMemsetD8`
            fn memset_d8(dst: CUdeviceptr, value: u8, n: usize) { cuMemsetD8_v2 | cuMemsetD8_v2_ptds }
            /// `cuMemsetD16`
            fn memset_d16(dst: CUdeviceptr, value: u16, n: usize) { cuMemsetD16_v2 | cuMemsetD16_v2_ptds }
            /// `cuMemsetD32`
            fn memset_d32(dst: CUdeviceptr, value: u32, n: usize) { cuMemsetD32_v2 | cuMemsetD32_v2_ptds }
            /// `cuMemsetD8Async`
            fn memset_d8_async(dst: CUdeviceptr, value: u8, n: usize, stream: CUstream) { cuMemsetD8Async | cuMemsetD8Async_ptsz }
            /// `cuMemsetD16Async`
            fn memset_d16_async(dst: CUdeviceptr, value: u16, n: usize, stream: CUstream) { cuMemsetD16Async | cuMemsetD16Async_ptsz }
            /// `cuMemsetD32Async`
            fn memset_d32_async(dst: CUdeviceptr, value: u32, n: usize, stream: CUstream) { cuMemsetD32Async | cuMemsetD32Async_ptsz }
            /// `cuMemsetD2D8`
            fn memset_d2d8(dst: CUdeviceptr, pitch: usize, value: u8, width: usize, height: usize) { cuMemsetD2D8_v2 | cuMemsetD2D8_v2_ptds }
            /// `cuMemsetD2D16`
            fn memset_d2d16(dst: CUdeviceptr, pitch: usize, value: u16, width: usize, height: usize) { cuMemsetD2D16_v2 | cuMemsetD2D16_v2_ptds }
            /// `cuMemsetD2D32`
            fn memset_d2d32(dst: CUdeviceptr, pitch: usize, value: u32, width: usize, height: usize) { cuMemsetD2D32_v2 | cuMemsetD2D32_v2_ptds }
            /// `cuMemsetD2D8Async`
            fn memset_d2d8_async(dst: CUdeviceptr, pitch: usize, value: u8, width: usize, height: usize, stream: CUstream) { cuMemsetD2D8Async | cuMemsetD2D8Async_ptsz }
            /// `cuMemsetD2D16Async`
            fn memset_d2d16_async(dst: CUdeviceptr, pitch: usize, value: u16, width: usize, height: usize, stream: CUstream) { cuMemsetD2D16Async | cuMemsetD2D16Async_ptsz }
            /// `cuMemsetD2D32Async`
            fn memset_d2d32_async(dst: CUdeviceptr, pitch: usize, value: u32, width: usize, height: usize, stream: CUstream) { cuMemsetD2D32Async | cuMemsetD2D32Async_ptsz }
        }

        /// Modules, libraries, functions and kernels.
        family Module {
            /// `cuModuleLoad`: a file of PTX, cubin or fatbin.
            fn module_load(module: Out<'_, CUmodule>, path: &str) { cuModuleLoad }
            /// `cuModuleLoadData`: `image` is PTX text, a cubin or a fatbin (sized from its header).
            fn module_load_data(module: Out<'_, CUmodule>, image: *const c_void) unsafe { cuModuleLoadData }
            /// `cuModuleLoadDataEx`: `n` JIT options and values.
            fn module_load_data_ex(module: Out<'_, CUmodule>, image: *const c_void, n: u32, options: *const CUjitOption, values: *mut *mut c_void) unsafe { cuModuleLoadDataEx }
            /// `cuModuleLoadFatBinary`
            fn module_load_fat_binary(module: Out<'_, CUmodule>, fatbin: *const c_void) unsafe { cuModuleLoadFatBinary }
            /// `cuModuleUnload`
            fn module_unload(module: CUmodule) { cuModuleUnload }
            /// `cuModuleGetFunction`
            fn module_get_function(function: Out<'_, CUfunction>, module: CUmodule, name: &str) { cuModuleGetFunction }
            /// `cuModuleGetGlobal`: either out-pointer may be NULL.
            fn module_get_global(dptr: OptOut<'_, CUdeviceptr>, bytes: OptOut<'_, usize>, module: CUmodule, name: &str) { cuModuleGetGlobal_v2 }
            /// `cuModuleGetLoadingMode`
            fn module_get_loading_mode(mode: Out<'_, i32>) { cuModuleGetLoadingMode }
            /// `cuModuleGetFunctionCount`
            fn module_get_function_count(count: Out<'_, u32>, module: CUmodule) { cuModuleGetFunctionCount }
            /// `cuModuleEnumerateFunctions`: `functions` holds `n` entries.
            fn module_enumerate_functions(functions: *mut CUfunction, n: u32, module: CUmodule) unsafe { cuModuleEnumerateFunctions }
            /// `cuLibraryLoadData`: `n_jit` JIT and `n_lib` library options.
            fn library_load_data(library: Out<'_, CUlibrary>, code: *const c_void, jit_options: *mut CUjitOption, jit_values: *mut *mut c_void, n_jit: u32, lib_options: *mut i32, lib_values: *mut *mut c_void, n_lib: u32) unsafe { cuLibraryLoadData }
            /// `cuLibraryLoadFromFile`
            fn library_load_from_file(library: Out<'_, CUlibrary>, path: &str, jit_options: *mut CUjitOption, jit_values: *mut *mut c_void, n_jit: u32, lib_options: *mut i32, lib_values: *mut *mut c_void, n_lib: u32) unsafe { cuLibraryLoadFromFile }
            /// `cuLibraryUnload`
            fn library_unload(library: CUlibrary) { cuLibraryUnload }
            /// `cuLibraryGetKernel`
            fn library_get_kernel(kernel: Out<'_, CUkernel>, library: CUlibrary, name: &str) { cuLibraryGetKernel }
            /// `cuLibraryGetModule`
            fn library_get_module(module: Out<'_, CUmodule>, library: CUlibrary) { cuLibraryGetModule }
            /// `cuLibraryGetGlobal`: either out-pointer may be NULL.
            fn library_get_global(dptr: OptOut<'_, CUdeviceptr>, bytes: OptOut<'_, usize>, library: CUlibrary, name: &str) { cuLibraryGetGlobal }
            /// `cuLibraryGetKernelCount`
            fn library_get_kernel_count(count: Out<'_, u32>, library: CUlibrary) { cuLibraryGetKernelCount }
            /// `cuLibraryEnumerateKernels`: `kernels` holds `n` entries.
            fn library_enumerate_kernels(kernels: *mut CUkernel, n: u32, library: CUlibrary) unsafe { cuLibraryEnumerateKernels }
            /// `cuKernelGetFunction`
            fn kernel_get_function(function: Out<'_, CUfunction>, kernel: CUkernel) { cuKernelGetFunction }
            /// `cuKernelGetLibrary`
            fn kernel_get_library(library: Out<'_, CUlibrary>, kernel: CUkernel) { cuKernelGetLibrary }
            /// `cuKernelGetName`
            fn kernel_get_name(name: Out<'_, *const c_char>, kernel: CUkernel) { cuKernelGetName }
            /// `cuKernelGetAttribute`
            fn kernel_get_attribute(value: Out<'_, i32>, attrib: i32, kernel: CUkernel, dev: CUdevice) { cuKernelGetAttribute }
            /// `cuKernelSetAttribute`
            fn kernel_set_attribute(attrib: i32, value: i32, kernel: CUkernel, dev: CUdevice) { cuKernelSetAttribute }
            /// `cuKernelSetCacheConfig`
            fn kernel_set_cache_config(kernel: CUkernel, config: i32, dev: CUdevice) { cuKernelSetCacheConfig }
            /// `cuKernelGetParamInfo`: either out-pointer may be NULL.
            fn kernel_get_param_info(kernel: CUkernel, index: usize, offset: OptOut<'_, usize>, size: OptOut<'_, usize>) { cuKernelGetParamInfo }
            /// `cuFuncGetAttribute`
            fn func_get_attribute(value: Out<'_, i32>, attrib: i32, func: CUfunction) { cuFuncGetAttribute }
            /// `cuFuncSetAttribute`
            fn func_set_attribute(func: CUfunction, attrib: i32, value: i32) { cuFuncSetAttribute }
            /// `cuFuncSetCacheConfig`
            fn func_set_cache_config(func: CUfunction, config: i32) { cuFuncSetCacheConfig }
            /// `cuFuncSetSharedMemConfig`
            fn func_set_shared_mem_config(func: CUfunction, config: i32) { cuFuncSetSharedMemConfig }
            /// `cuFuncGetModule`
            fn func_get_module(module: Out<'_, CUmodule>, func: CUfunction) { cuFuncGetModule }
            /// `cuFuncGetName`
            fn func_get_name(name: Out<'_, *const c_char>, func: CUfunction) { cuFuncGetName }
            /// `cuFuncGetParamInfo`: either out-pointer may be NULL.
            fn func_get_param_info(func: CUfunction, index: usize, offset: OptOut<'_, usize>, size: OptOut<'_, usize>) { cuFuncGetParamInfo }
            /// `cuFuncIsLoaded`
            fn func_is_loaded(state: Out<'_, i32>, func: CUfunction) { cuFuncIsLoaded }
            /// `cuFuncLoad`
            fn func_load(func: CUfunction) { cuFuncLoad }
        }

        /// The driver linker: PTX inputs (and the PTX of fatbins) linked into one PTX image.
        family Link {
            /// `cuLinkCreate`: `n` JIT options; the log buffers they name are written until
            /// `cuLinkDestroy`.
            fn link_create(n: u32, options: *mut CUjitOption, values: *mut *mut c_void, state: Out<'_, CUlinkState>) unsafe { cuLinkCreate_v2, cuLinkCreate }
            /// `cuLinkAddData`: `size` bytes of an input of type `kind` (`CUjitInputType`); `name`
            /// may be NULL; `n` options for this input.
            fn link_add_data(state: CUlinkState, kind: u32, data: *mut c_void, size: usize, name: *const c_char, n: u32, options: *mut CUjitOption, values: *mut *mut c_void) unsafe { cuLinkAddData_v2, cuLinkAddData }
            /// `cuLinkAddFile`: the input is the file at `path`.
            fn link_add_file(state: CUlinkState, kind: u32, path: &str, n: u32, options: *mut CUjitOption, values: *mut *mut c_void) unsafe { cuLinkAddFile_v2, cuLinkAddFile }
            /// `cuLinkComplete`: the linked image and its size, valid until `cuLinkDestroy`.
            fn link_complete(state: CUlinkState, image: Out<'_, *mut c_void>, size: Out<'_, usize>) { cuLinkComplete }
            /// `cuLinkDestroy`
            fn link_destroy(state: CUlinkState) { cuLinkDestroy }
        }

        /// Kernel launches and host functions.
        family Launch {
            /// `cuLaunchKernel`: `params` points to one pointer per parameter, or `extra` is a
            /// `CU_LAUNCH_PARAM_*` list.
            fn launch_kernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void, extra: *mut *mut c_void) unsafe { cuLaunchKernel | cuLaunchKernel_ptsz }
            /// `cuLaunchKernelEx`
            fn launch_kernel_ex(config: In<CuLaunchConfig>, f: CUfunction, params: *mut *mut c_void, extra: *mut *mut c_void) unsafe { cuLaunchKernelEx | cuLaunchKernelEx_ptsz }
            /// `cuLaunchCooperativeKernel`
            fn launch_cooperative_kernel(f: CUfunction, gx: u32, gy: u32, gz: u32, bx: u32, by: u32, bz: u32, shared: u32, stream: CUstream, params: *mut *mut c_void) unsafe { cuLaunchCooperativeKernel | cuLaunchCooperativeKernel_ptsz }
            /// `cuLaunchHostFunc`: `func(data)` (NULL: `INVALID_VALUE`) runs when the stream reaches it.
            fn launch_host_func(stream: CUstream, func: CUhostFn, data: *mut c_void) unsafe { cuLaunchHostFunc | cuLaunchHostFunc_ptsz }
            /// `cuFuncSetBlockShape` (deprecated): the block of later `cuLaunch*` of `func`.
            fn func_set_block_shape(func: CUfunction, x: i32, y: i32, z: i32) { cuFuncSetBlockShape }
            /// `cuFuncSetSharedSize` (deprecated): dynamic shared memory of later `cuLaunch*`.
            fn func_set_shared_size(func: CUfunction, bytes: u32) { cuFuncSetSharedSize }
            /// `cuParamSetSize` (deprecated): the size of `func`'s parameter buffer.
            fn param_set_size(func: CUfunction, bytes: u32) { cuParamSetSize }
            /// `cuParamSeti` (deprecated): 4 bytes at `offset` of the parameter buffer.
            fn param_seti(func: CUfunction, offset: i32, value: u32) { cuParamSeti }
            /// `cuParamSetf` (deprecated): a float at `offset` of the parameter buffer.
            fn param_setf(func: CUfunction, offset: i32, value: f32) { cuParamSetf }
            /// `cuParamSetv` (deprecated): `bytes` bytes from `ptr` at `offset`.
            fn param_setv(func: CUfunction, offset: i32, ptr: *mut c_void, bytes: u32) unsafe { cuParamSetv }
            /// `cuParamSetTexRef` (deprecated): texture references are not modelled.
            fn param_set_tex_ref(func: CUfunction, texunit: i32, texref: *mut c_void) { cuParamSetTexRef }
            /// `cuLaunch` (deprecated): a 1 × 1 grid on the legacy default stream.
            fn launch(func: CUfunction) { cuLaunch }
            /// `cuLaunchGrid` (deprecated): a `width` × `height` grid on the legacy default stream.
            fn launch_grid(func: CUfunction, width: i32, height: i32) { cuLaunchGrid }
            /// `cuLaunchGridAsync` (deprecated): as `cuLaunchGrid`, on `stream`.
            fn launch_grid_async(func: CUfunction, width: i32, height: i32, stream: CUstream) { cuLaunchGridAsync }
        }

        /// The occupancy calculator.
        family Occupancy {
            /// `cuOccupancyMaxActiveBlocksPerMultiprocessor`
            fn occupancy_max_active_blocks(blocks: Out<'_, i32>, func: CUfunction, block_size: i32, dynamic_smem: usize) { cuOccupancyMaxActiveBlocksPerMultiprocessor }
            /// `cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags`
            fn occupancy_max_active_blocks_with_flags(blocks: Out<'_, i32>, func: CUfunction, block_size: i32, dynamic_smem: usize, flags: Flags<{ CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE }>) { cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags }
            /// `cuOccupancyMaxPotentialBlockSize`: `to_dynamic_smem` (may be NULL) gives the dynamic
            /// shared memory per block size, else `dynamic_smem`; `limit` 0 means none.
            fn occupancy_max_potential_block_size(min_grid: Out<'_, i32>, block_size: Out<'_, i32>, func: CUfunction, to_dynamic_smem: Option<CUoccupancyB2DSize>, dynamic_smem: usize, limit: i32) unsafe { cuOccupancyMaxPotentialBlockSize }
            /// `cuOccupancyMaxPotentialBlockSizeWithFlags`
            fn occupancy_max_potential_block_size_with_flags(min_grid: Out<'_, i32>, block_size: Out<'_, i32>, func: CUfunction, to_dynamic_smem: Option<CUoccupancyB2DSize>, dynamic_smem: usize, limit: i32, flags: Flags<{ CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE }>) unsafe { cuOccupancyMaxPotentialBlockSizeWithFlags }
            /// `cuOccupancyAvailableDynamicSMemPerBlock`
            fn occupancy_available_dynamic_smem(bytes: Out<'_, usize>, func: CUfunction, num_blocks: i32, block_size: i32) { cuOccupancyAvailableDynamicSMemPerBlock }
        }

            undeclared {
                cuArray3DCreate cuArray3DCreate_v2 cuArray3DGetDescriptor cuArray3DGetDescriptor_v2
                cuArrayCreate cuArrayCreate_v2 cuArrayDestroy cuArrayGetDescriptor
                cuArrayGetDescriptor_v2 cuArrayGetMemoryRequirements cuArrayGetPlane
                cuArrayGetSparseProperties cuCheckpointProcessCheckpoint
                cuCheckpointProcessGetRestoreThreadId cuCheckpointProcessGetState
                cuCheckpointProcessLock cuCheckpointProcessRestore cuCheckpointProcessUnlock
                cuCoredumpGetAttribute cuCoredumpGetAttributeGlobal cuCoredumpSetAttribute
                cuCoredumpSetAttributeGlobal cuCtxDisablePeerAccess
                cuCtxEnablePeerAccess cuCtxFromGreenCtx cuCtxGetDevResource cuCtxGetExecAffinity
                cuCtxRecordEvent cuCtxWaitEvent cuDestroyExternalMemory cuDestroyExternalSemaphore
                cuDevResourceGenerateDesc cuDevSmResourceSplitByCount cuDeviceGetDefaultMemPool
                cuDeviceGetDevResource cuDeviceGetExecAffinitySupport cuDeviceGetGraphMemAttribute
                cuDeviceGetLuid cuDeviceGetMemPool cuDeviceGetNvSciSyncAttributes
                cuDeviceGetProperties cuDeviceGetTexture1DLinearMaxWidth cuDeviceGraphMemTrim
                cuDeviceRegisterAsyncNotification cuDeviceSetGraphMemAttribute cuDeviceSetMemPool
                cuDeviceUnregisterAsyncNotification cuEGLStreamConsumerAcquireFrame
                cuEGLStreamConsumerConnect cuEGLStreamConsumerConnectWithFlags
                cuEGLStreamConsumerDisconnect cuEGLStreamConsumerReleaseFrame
                cuEGLStreamProducerConnect cuEGLStreamProducerDisconnect
                cuEGLStreamProducerPresentFrame cuEGLStreamProducerReturnFrame
                cuEventCreateFromEGLSync cuExternalMemoryGetMappedBuffer
                cuExternalMemoryGetMappedMipmappedArray cuFlushGPUDirectRDMAWrites
                cuGLCtxCreate cuGLCtxCreate_v2
                cuGLGetDevices cuGLGetDevices_v2 cuGLInit cuGLMapBufferObject
                cuGLMapBufferObjectAsync cuGLMapBufferObjectAsync_v2
                cuGLMapBufferObjectAsync_v2_ptsz cuGLMapBufferObject_v2 cuGLMapBufferObject_v2_ptds
                cuGLRegisterBufferObject cuGLSetBufferObjectMapFlags cuGLUnmapBufferObject
                cuGLUnmapBufferObjectAsync cuGLUnregisterBufferObject cuGraphAddBatchMemOpNode
                cuGraphAddChildGraphNode cuGraphAddDependencies cuGraphAddDependencies_v2
                cuGraphAddEmptyNode cuGraphAddEventRecordNode cuGraphAddEventWaitNode
                cuGraphAddExternalSemaphoresSignalNode cuGraphAddExternalSemaphoresWaitNode
                cuGraphAddHostNode cuGraphAddKernelNode cuGraphAddKernelNode_v2
                cuGraphAddMemAllocNode cuGraphAddMemFreeNode cuGraphAddMemcpyNode
                cuGraphAddMemsetNode cuGraphAddNode cuGraphAddNode_v2 cuGraphBatchMemOpNodeGetParams
                cuGraphBatchMemOpNodeSetParams cuGraphChildGraphNodeGetGraph cuGraphClone
                cuGraphConditionalHandleCreate cuGraphCreate cuGraphDebugDotPrint cuGraphDestroy
                cuGraphDestroyNode cuGraphEventRecordNodeGetEvent cuGraphEventRecordNodeSetEvent
                cuGraphEventWaitNodeGetEvent cuGraphEventWaitNodeSetEvent
                cuGraphExecBatchMemOpNodeSetParams cuGraphExecChildGraphNodeSetParams
                cuGraphExecDestroy cuGraphExecEventRecordNodeSetEvent
                cuGraphExecEventWaitNodeSetEvent cuGraphExecExternalSemaphoresSignalNodeSetParams
                cuGraphExecExternalSemaphoresWaitNodeSetParams cuGraphExecGetFlags
                cuGraphExecHostNodeSetParams cuGraphExecKernelNodeSetParams
                cuGraphExecKernelNodeSetParams_v2 cuGraphExecMemcpyNodeSetParams
                cuGraphExecMemsetNodeSetParams cuGraphExecNodeSetParams cuGraphExecUpdate
                cuGraphExecUpdate_v2 cuGraphExternalSemaphoresSignalNodeGetParams
                cuGraphExternalSemaphoresSignalNodeSetParams
                cuGraphExternalSemaphoresWaitNodeGetParams
                cuGraphExternalSemaphoresWaitNodeSetParams cuGraphGetEdges cuGraphGetEdges_v2
                cuGraphGetNodes cuGraphGetRootNodes cuGraphHostNodeGetParams
                cuGraphHostNodeSetParams cuGraphInstantiate cuGraphInstantiateWithFlags
                cuGraphInstantiateWithParams cuGraphInstantiateWithParams_ptsz cuGraphInstantiate_v2
                cuGraphKernelNodeCopyAttributes cuGraphKernelNodeGetAttribute
                cuGraphKernelNodeGetParams cuGraphKernelNodeGetParams_v2
                cuGraphKernelNodeSetAttribute cuGraphKernelNodeSetParams
                cuGraphKernelNodeSetParams_v2 cuGraphLaunch cuGraphLaunch_ptsz
                cuGraphMemAllocNodeGetParams cuGraphMemFreeNodeGetParams cuGraphMemcpyNodeGetParams
                cuGraphMemcpyNodeSetParams cuGraphMemsetNodeGetParams cuGraphMemsetNodeSetParams
                cuGraphNodeFindInClone cuGraphNodeGetDependencies cuGraphNodeGetDependencies_v2
                cuGraphNodeGetDependentNodes cuGraphNodeGetDependentNodes_v2 cuGraphNodeGetEnabled
                cuGraphNodeGetType cuGraphNodeSetEnabled cuGraphNodeSetParams
                cuGraphReleaseUserObject cuGraphRemoveDependencies cuGraphRemoveDependencies_v2
                cuGraphRetainUserObject cuGraphUpload cuGraphUpload_ptsz cuGraphicsEGLRegisterImage
                cuGraphicsGLRegisterBuffer cuGraphicsGLRegisterImage cuGraphicsMapResources
                cuGraphicsMapResources_ptsz cuGraphicsResourceGetMappedEglFrame
                cuGraphicsResourceGetMappedMipmappedArray cuGraphicsResourceGetMappedPointer
                cuGraphicsResourceGetMappedPointer_v2 cuGraphicsResourceSetMapFlags
                cuGraphicsResourceSetMapFlags_v2 cuGraphicsSubResourceGetMappedArray
                cuGraphicsUnmapResources cuGraphicsUnmapResources_ptsz cuGraphicsUnregisterResource
                cuGraphicsVDPAURegisterOutputSurface cuGraphicsVDPAURegisterVideoSurface
                cuGreenCtxCreate cuGreenCtxDestroy cuGreenCtxGetDevResource cuGreenCtxRecordEvent
                cuGreenCtxStreamCreate cuGreenCtxWaitEvent cuImportExternalMemory
                cuImportExternalSemaphore cuIpcCloseMemHandle cuIpcGetEventHandle cuIpcGetMemHandle
                cuIpcOpenEventHandle cuIpcOpenMemHandle cuIpcOpenMemHandle_v2
                cuLaunchCooperativeKernelMultiDevice
                cuLibraryGetManaged cuLibraryGetUnifiedFunction cuLogsCurrent cuLogsDumpToFile cuLogsDumpToMemory
                cuLogsRegisterCallback cuLogsUnregisterCallback cuMemAdvise cuMemAdvise_v2
                cuMemAllocAsync cuMemAllocAsync_ptsz cuMemAllocFromPoolAsync
                cuMemAllocFromPoolAsync_ptsz cuMemBatchDecompressAsync
                cuMemBatchDecompressAsync_ptsz cuMemFreeAsync cuMemFreeAsync_ptsz
                cuMemGetHandleForAddressRange cuMemMapArrayAsync cuMemMapArrayAsync_ptsz
                cuMemPoolCreate cuMemPoolDestroy cuMemPoolExportPointer
                cuMemPoolExportToShareableHandle cuMemPoolGetAccess cuMemPoolGetAttribute
                cuMemPoolImportFromShareableHandle cuMemPoolImportPointer cuMemPoolSetAccess
                cuMemPoolSetAttribute cuMemPoolTrimTo cuMemPrefetchAsync cuMemPrefetchAsync_ptsz
                cuMemPrefetchAsync_v2 cuMemPrefetchAsync_v2_ptsz cuMemRangeGetAttribute
                cuMemRangeGetAttributes cuMemcpy2D cuMemcpy2DAsync cuMemcpy2DUnaligned cuMemcpy3D
                cuMemcpy3DAsync cuMemcpy3DAsync_v2 cuMemcpy3DAsync_v2_ptsz cuMemcpy3DBatchAsync
                cuMemcpy3DBatchAsync_ptsz cuMemcpy3DPeer cuMemcpy3DPeerAsync
                cuMemcpy3DPeerAsync_ptsz cuMemcpy3DPeer_ptds cuMemcpy3D_v2 cuMemcpy3D_v2_ptds
                cuMemcpyAtoA cuMemcpyAtoA_v2 cuMemcpyAtoA_v2_ptds cuMemcpyAtoD cuMemcpyAtoD_v2
                cuMemcpyAtoD_v2_ptds cuMemcpyAtoH cuMemcpyAtoHAsync cuMemcpyAtoHAsync_v2
                cuMemcpyAtoHAsync_v2_ptsz cuMemcpyAtoH_v2 cuMemcpyAtoH_v2_ptds cuMemcpyBatchAsync
                cuMemcpyBatchAsync_ptsz cuMemcpyDtoA cuMemcpyDtoA_v2 cuMemcpyDtoA_v2_ptds
                cuMemcpyDtoD cuMemcpyDtoDAsync cuMemcpyDtoH cuMemcpyDtoHAsync cuMemcpyHtoA
                cuMemcpyHtoAAsync cuMemcpyHtoAAsync_v2 cuMemcpyHtoAAsync_v2_ptsz cuMemcpyHtoA_v2
                cuMemcpyHtoA_v2_ptds cuMemcpyHtoD cuMemcpyHtoDAsync cuMemsetD16 cuMemsetD2D16
                cuMemsetD2D32 cuMemsetD2D8 cuMemsetD32 cuMemsetD8 cuMipmappedArrayCreate
                cuMipmappedArrayDestroy cuMipmappedArrayGetLevel
                cuMipmappedArrayGetMemoryRequirements cuMipmappedArrayGetSparseProperties
                cuModuleGetGlobal cuModuleGetSurfRef cuModuleGetTexRef cuMulticastAddDevice
                cuMulticastBindAddr cuMulticastBindMem cuMulticastCreate cuMulticastGetGranularity
                cuMulticastUnbind
                cuOccupancyMaxActiveClusters
                cuOccupancyMaxPotentialClusterSize
                cuProfilerInitialize cuProfilerStart cuProfilerStop
                cuSignalExternalSemaphoresAsync cuSignalExternalSemaphoresAsync_ptsz
                cuStreamAttachMemAsync cuStreamAttachMemAsync_ptsz cuStreamBatchMemOp
                cuStreamBatchMemOp_ptsz cuStreamBatchMemOp_v2 cuStreamBatchMemOp_v2_ptsz
                cuStreamBeginCapture cuStreamBeginCaptureToGraph cuStreamBeginCaptureToGraph_ptsz
                cuStreamBeginCapture_ptsz cuStreamBeginCapture_v2 cuStreamBeginCapture_v2_ptsz
                cuStreamCopyAttributes cuStreamCopyAttributes_ptsz cuStreamEndCapture
                cuStreamEndCapture_ptsz cuStreamGetAttribute cuStreamGetAttribute_ptsz
                cuStreamGetCaptureInfo cuStreamGetCaptureInfo_ptsz cuStreamGetCaptureInfo_v2
                cuStreamGetCaptureInfo_v2_ptsz cuStreamGetCaptureInfo_v3
                cuStreamGetCaptureInfo_v3_ptsz cuStreamGetGreenCtx cuStreamSetAttribute
                cuStreamSetAttribute_ptsz cuStreamUpdateCaptureDependencies
                cuStreamUpdateCaptureDependencies_ptsz cuStreamUpdateCaptureDependencies_v2
                cuStreamUpdateCaptureDependencies_v2_ptsz cuStreamWaitValue32
                cuStreamWaitValue32_ptsz cuStreamWaitValue32_v2 cuStreamWaitValue32_v2_ptsz
                cuStreamWaitValue64 cuStreamWaitValue64_ptsz cuStreamWaitValue64_v2
                cuStreamWaitValue64_v2_ptsz
                cuStreamWriteValue64
                cuStreamWriteValue64_ptsz cuStreamWriteValue64_v2 cuStreamWriteValue64_v2_ptsz
                cuSurfObjectCreate cuSurfObjectDestroy cuSurfObjectGetResourceDesc cuSurfRefGetArray
                cuSurfRefSetArray cuTensorMapEncodeIm2col cuTensorMapEncodeIm2colWide
                cuTensorMapEncodeTiled cuTensorMapReplaceAddress cuTexObjectCreate
                cuTexObjectDestroy cuTexObjectGetResourceDesc cuTexObjectGetResourceViewDesc
                cuTexObjectGetTextureDesc cuTexRefCreate cuTexRefDestroy cuTexRefGetAddress
                cuTexRefGetAddressMode cuTexRefGetAddress_v2 cuTexRefGetArray cuTexRefGetBorderColor
                cuTexRefGetFilterMode cuTexRefGetFlags cuTexRefGetFormat cuTexRefGetMaxAnisotropy
                cuTexRefGetMipmapFilterMode cuTexRefGetMipmapLevelBias cuTexRefGetMipmapLevelClamp
                cuTexRefGetMipmappedArray cuTexRefSetAddress cuTexRefSetAddress2D
                cuTexRefSetAddress2D_v2 cuTexRefSetAddress2D_v3 cuTexRefSetAddressMode
                cuTexRefSetAddress_v2 cuTexRefSetArray cuTexRefSetBorderColor cuTexRefSetFilterMode
                cuTexRefSetFlags cuTexRefSetFormat cuTexRefSetMaxAnisotropy
                cuTexRefSetMipmapFilterMode cuTexRefSetMipmapLevelBias cuTexRefSetMipmapLevelClamp
                cuTexRefSetMipmappedArray cuThreadExchangeStreamCaptureMode cuUserObjectCreate
                cuUserObjectRelease cuUserObjectRetain cuVDPAUCtxCreate cuVDPAUCtxCreate_v2
                cuVDPAUGetDevice cuWaitExternalSemaphoresAsync cuWaitExternalSemaphoresAsync_ptsz
                // New in CUDA 13.x (13.0 to 13.5), not implemented:
                cuCheckpointOperationComplete cuCoredumpDeregisterCompleteCallback
                cuCoredumpDeregisterStartCallback cuCoredumpRegisterCompleteCallback
                cuCoredumpRegisterStartCallback cuDevSmResourceSplit cuDeviceGetCliqueCount
                cuDeviceGetCliqueInfo cuDeviceGetFabricClusterUuid cuDeviceGetHostAtomicCapabilities
                cuDeviceGetP2PAtomicCapabilities cuFabricCpyBatchAsync cuFabricCpyBatchAsync_ptsz
                cuFuncGetParamCount cuGraphAddNode_v3 cuGraphExecGetId cuGraphGetId
                cuGraphNodeGetContainingGraph cuGraphNodeGetLocalId cuGraphNodeGetParams
                cuGraphNodeGetToolsId cuGraphNodeSetParams_v2 cuGreenCtxGetId cuKernelGetParamCount
                cuLaunchHostFunc_v2 cuLaunchHostFunc_v2_ptsz cuLogicalEndpointAddDevice
                cuLogicalEndpointBindAddr cuLogicalEndpointBindMem cuLogicalEndpointCreate
                cuLogicalEndpointDestroy cuLogicalEndpointExport cuLogicalEndpointGetLimits
                cuLogicalEndpointIdRelease cuLogicalEndpointIdReserve cuLogicalEndpointImport
                cuLogicalEndpointQuery cuLogicalEndpointUnbind cuMemDiscardAndPrefetchBatchAsync
                cuMemDiscardAndPrefetchBatchAsync_ptsz cuMemDiscardBatchAsync
                cuMemDiscardBatchAsync_ptsz cuMemGetDefaultMemPool cuMemGetLocationInfo
                cuMemGetMemPool cuMemPrefetchBatchAsync cuMemPrefetchBatchAsync_ptsz cuMemSetMemPool
                cuMemcpy3DBatchAsync_v2 cuMemcpy3DBatchAsync_v2_ptsz cuMemcpy3DWithAttributesAsync
                cuMemcpy3DWithAttributesAsync_ptsz cuMemcpyBatchAsync_v2 cuMemcpyBatchAsync_v2_ptsz
                cuMemcpyWithAttributesAsync cuMemcpyWithAttributesAsync_ptsz cuMulticastBindAddr_v2
                cuMulticastBindMem_v2 cuStreamBeginCaptureToCig cuStreamBeginCaptureToCig_ptsz
                cuStreamBeginRecaptureToGraph cuStreamBeginRecaptureToGraph_ptsz
                cuStreamEndCaptureToCig cuStreamEndCaptureToCig_ptsz cuStreamGetDevResource
                cuStreamGetDevResource_ptsz cuTensorMapSetAllocationClass
            }
        }
    };
}
