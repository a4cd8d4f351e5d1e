//! The driver entry points the broker calls, resolved from one loaded library.
//!
//! Types come from `cudarc::driver::sys` (the CUDA 12.9 headers as Rust); the symbols are
//! resolved here, with `libloading`, from the library [`super::loader`] picked — not through
//! cudarc's own lazy loader, whose first candidate name is `libcuda.so` (see `loader` for why).
//! Every entry point returns the raw `CUresult` as a `u32`, so a code the bindings do not name
//! can never become an invalid enum value.
//!
//! Required symbols missing from the library make loading fail with their names; optional ones
//! (`cuFuncGetParamInfo`, CUDA 12.4+; `cuStreamWaitValue32_v2`, CUDA 11.7+, which streamed copies
//! need) are `None` and the caller falls back.

use std::ffi::{c_char, c_int, c_uint, c_void};

use cudarc::driver::sys::{
    CUcontext, CUdevice, CUdeviceptr, CUevent, CUfunction, CUmemAccessDesc, CUmemAllocationProp,
    CUmodule, CUstream,
};
use libloading::Library;

/// A raw `CUresult`.
pub type Rc = u32;

/// Host function callback type (`CUhostFn`).
pub type HostFnPtr = unsafe extern "C" fn(*mut c_void);

macro_rules! driver_api {
    (
        required { $( $name:ident = $sym:literal : fn($($arg:ty),* $(,)?); )* }
        optional { $( $oname:ident = $osym:literal : fn($($oarg:ty),* $(,)?); )* }
    ) => {
        /// Resolved entry points (see the module documentation).
        pub struct Api {
            $( pub $name: unsafe extern "C" fn($($arg),*) -> Rc, )*
            $( pub $oname: Option<unsafe extern "C" fn($($oarg),*) -> Rc>, )*
            /// Keeps the library loaded while the pointers above are in use.
            _lib: Library,
        }

        impl Api {
            /// Resolves every entry point from `lib`; the names of missing required symbols are
            /// returned as the error.
            pub fn resolve(lib: Library) -> Result<Api, Vec<&'static str>> {
                let mut missing = Vec::new();
                $(
                    // SAFETY: the symbol, if present, is the CUDA driver entry point of that
                    // name, whose C signature is the one declared in the table above (from
                    // cuda.h 12.9). The pointer is kept no longer than `_lib`.
                    let $name = unsafe {
                        lib.get::<unsafe extern "C" fn($($arg),*) -> Rc>(concat!($sym, "\0").as_bytes())
                            .map(|s| *s)
                            .ok()
                    };
                    if $name.is_none() {
                        missing.push($sym);
                    }
                )*
                $(
                    // SAFETY: as above, for an optional entry point.
                    let $oname = unsafe {
                        lib.get::<unsafe extern "C" fn($($oarg),*) -> Rc>(concat!($osym, "\0").as_bytes())
                            .map(|s| *s)
                            .ok()
                    };
                )*
                if !missing.is_empty() {
                    return Err(missing);
                }
                Ok(Api {
                    $( $name: $name.ok_or_else(Vec::new)?, )*
                    $( $oname, )*
                    _lib: lib,
                })
            }
        }
    };
}

driver_api! {
    required {
        init = "cuInit": fn(c_uint);
        driver_get_version = "cuDriverGetVersion": fn(*mut c_int);
        device_get_count = "cuDeviceGetCount": fn(*mut c_int);
        device_get = "cuDeviceGet": fn(*mut CUdevice, c_int);
        device_get_name = "cuDeviceGetName": fn(*mut c_char, c_int, CUdevice);
        device_get_uuid = "cuDeviceGetUuid": fn(*mut [u8; 16], CUdevice);
        device_total_mem = "cuDeviceTotalMem_v2": fn(*mut usize, CUdevice);
        device_get_attribute = "cuDeviceGetAttribute": fn(*mut c_int, c_int, CUdevice);
        device_get_pci_bus_id = "cuDeviceGetPCIBusId": fn(*mut c_char, c_int, CUdevice);
        primary_ctx_retain = "cuDevicePrimaryCtxRetain": fn(*mut CUcontext, CUdevice);
        ctx_set_current = "cuCtxSetCurrent": fn(CUcontext);
        ctx_get_limit = "cuCtxGetLimit": fn(*mut usize, c_uint);
        ctx_set_limit = "cuCtxSetLimit": fn(c_uint, usize);
        ctx_get_stream_priority_range = "cuCtxGetStreamPriorityRange": fn(*mut c_int, *mut c_int);
        mem_get_info = "cuMemGetInfo_v2": fn(*mut usize, *mut usize);
        mem_address_reserve = "cuMemAddressReserve": fn(*mut CUdeviceptr, usize, usize, CUdeviceptr, u64);
        mem_address_free = "cuMemAddressFree": fn(CUdeviceptr, usize);
        mem_create = "cuMemCreate": fn(*mut u64, usize, *const CUmemAllocationProp, u64);
        mem_release = "cuMemRelease": fn(u64);
        mem_map = "cuMemMap": fn(CUdeviceptr, usize, usize, u64, u64);
        mem_unmap = "cuMemUnmap": fn(CUdeviceptr, usize);
        mem_export_to_shareable_handle = "cuMemExportToShareableHandle": fn(*mut c_void, u64, c_int, u64);
        mem_import_from_shareable_handle = "cuMemImportFromShareableHandle": fn(*mut u64, *mut c_void, c_int);
        mem_set_access = "cuMemSetAccess": fn(CUdeviceptr, usize, *const CUmemAccessDesc, usize);
        mem_get_allocation_granularity = "cuMemGetAllocationGranularity": fn(*mut usize, *const CUmemAllocationProp, c_uint);
        memcpy_htod_async = "cuMemcpyHtoDAsync_v2": fn(CUdeviceptr, *const c_void, usize, CUstream);
        memcpy_dtoh_async = "cuMemcpyDtoHAsync_v2": fn(*mut c_void, CUdeviceptr, usize, CUstream);
        memcpy_dtod_async = "cuMemcpyDtoDAsync_v2": fn(CUdeviceptr, CUdeviceptr, usize, CUstream);
        memcpy_dtoh = "cuMemcpyDtoH_v2": fn(*mut c_void, CUdeviceptr, usize);
        memcpy_dtod = "cuMemcpyDtoD_v2": fn(CUdeviceptr, CUdeviceptr, usize);
        memset_d8_async = "cuMemsetD8Async": fn(CUdeviceptr, u8, usize, CUstream);
        memset_d16_async = "cuMemsetD16Async": fn(CUdeviceptr, u16, usize, CUstream);
        memset_d32_async = "cuMemsetD32Async": fn(CUdeviceptr, u32, usize, CUstream);
        memset_d2d8_async = "cuMemsetD2D8Async": fn(CUdeviceptr, usize, u8, usize, usize, CUstream);
        memset_d2d16_async = "cuMemsetD2D16Async": fn(CUdeviceptr, usize, u16, usize, usize, CUstream);
        memset_d2d32_async = "cuMemsetD2D32Async": fn(CUdeviceptr, usize, u32, usize, usize, CUstream);
        stream_write_value32 = "cuStreamWriteValue32_v2": fn(CUstream, CUdeviceptr, u32, c_uint);
        mem_host_register = "cuMemHostRegister_v2": fn(*mut c_void, usize, c_uint);
        mem_host_unregister = "cuMemHostUnregister": fn(*mut c_void);
        mem_host_get_device_pointer = "cuMemHostGetDevicePointer_v2": fn(*mut CUdeviceptr, *mut c_void, c_uint);
        module_load_data = "cuModuleLoadData": fn(*mut CUmodule, *const c_void);
        module_unload = "cuModuleUnload": fn(CUmodule);
        module_get_function = "cuModuleGetFunction": fn(*mut CUfunction, CUmodule, *const c_char);
        module_get_global = "cuModuleGetGlobal_v2": fn(*mut CUdeviceptr, *mut usize, CUmodule, *const c_char);
        func_get_attribute = "cuFuncGetAttribute": fn(*mut c_int, c_int, CUfunction);
        func_set_attribute = "cuFuncSetAttribute": fn(CUfunction, c_int, c_int);
        launch_kernel = "cuLaunchKernel": fn(CUfunction, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, CUstream, *mut *mut c_void, *mut *mut c_void);
        launch_host_func = "cuLaunchHostFunc": fn(CUstream, Option<HostFnPtr>, *mut c_void);
        stream_create_with_priority = "cuStreamCreateWithPriority": fn(*mut CUstream, c_uint, c_int);
        stream_destroy = "cuStreamDestroy_v2": fn(CUstream);
        stream_query = "cuStreamQuery": fn(CUstream);
        stream_synchronize = "cuStreamSynchronize": fn(CUstream);
        stream_wait_event = "cuStreamWaitEvent": fn(CUstream, CUevent, c_uint);
        event_create = "cuEventCreate": fn(*mut CUevent, c_uint);
        event_destroy = "cuEventDestroy_v2": fn(CUevent);
        event_record_with_flags = "cuEventRecordWithFlags": fn(CUevent, CUstream, c_uint);
        event_query = "cuEventQuery": fn(CUevent);
        event_synchronize = "cuEventSynchronize": fn(CUevent);
        event_elapsed_time = "cuEventElapsedTime": fn(*mut f32, CUevent, CUevent);
    }
    optional {
        func_get_param_info = "cuFuncGetParamInfo": fn(CUfunction, usize, *mut usize, *mut usize);
        stream_wait_value32 = "cuStreamWaitValue32_v2": fn(CUstream, CUdeviceptr, u32, c_uint);
    }
}
