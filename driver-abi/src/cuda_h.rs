//! Structures and enumerator values from NVIDIA's `cuda.h` (12.9) that both driver libraries use:
//! one definition, so the CPU device and the shim read the caller's structures identically.

use std::ffi::c_void;

use crate::sys::{CUdeviceptr, CUstream};

/// Every `CU_CTX_*` flag a context accepts (scheduling, map host, local-memory resize, coredump,
/// sync memops).
pub const CTX_FLAGS_MASK: u32 = 0x07 | 0x08 | 0x10 | 0x20 | 0x40 | 0x80;

/// `CUuuid`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CUuuid {
    /// The 16 bytes.
    pub bytes: [u8; 16],
}

/// `CU_MEMORYTYPE_HOST`
pub const MEMORYTYPE_HOST: u32 = 1;
/// `CU_MEMORYTYPE_DEVICE`
pub const MEMORYTYPE_DEVICE: u32 = 2;
/// `CU_MEMORYTYPE_ARRAY`
pub const MEMORYTYPE_ARRAY: u32 = 3;
/// `CU_MEMORYTYPE_UNIFIED`
pub const MEMORYTYPE_UNIFIED: u32 = 4;

/// `CUDA_MEMCPY2D`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)]
pub struct CudaMemcpy2D {
    pub src_x_in_bytes: usize,
    pub src_y: usize,
    pub src_memory_type: u32,
    pub src_host: *const c_void,
    pub src_device: CUdeviceptr,
    pub src_array: *mut c_void,
    pub src_pitch: usize,
    pub dst_x_in_bytes: usize,
    pub dst_y: usize,
    pub dst_memory_type: u32,
    pub dst_host: *mut c_void,
    pub dst_device: CUdeviceptr,
    pub dst_array: *mut c_void,
    pub dst_pitch: usize,
    pub width_in_bytes: usize,
    pub height: usize,
}

/// `CU_LAUNCH_PARAM_END`
pub const LAUNCH_PARAM_END: usize = 0x00;
/// `CU_LAUNCH_PARAM_BUFFER_POINTER`
pub const LAUNCH_PARAM_BUFFER_POINTER: usize = 0x01;
/// `CU_LAUNCH_PARAM_BUFFER_SIZE`
pub const LAUNCH_PARAM_BUFFER_SIZE: usize = 0x02;

/// `CUlaunchConfig`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CuLaunchConfig {
    /// `gridDimX/Y/Z`
    pub grid: [u32; 3],
    /// `blockDimX/Y/Z`
    pub block: [u32; 3],
    /// `sharedMemBytes`
    pub shared: u32,
    /// `hStream`
    pub stream: CUstream,
    /// `attrs`
    pub attrs: *mut c_void,
    /// `numAttrs`
    pub num_attrs: u32,
}

/// A `cuLaunchKernel` `extra` list, read: the `CU_LAUNCH_PARAM_BUFFER_POINTER` value and the
/// size `CU_LAUNCH_PARAM_BUFFER_SIZE` points to (`None` when absent).
///
/// # Safety
/// `extra` must be a key/value list terminated by `CU_LAUNCH_PARAM_END`, as CUDA requires.
pub unsafe fn read_launch_extra(
    extra: *mut *mut c_void,
) -> Result<(*const u8, Option<usize>), String> {
    let (mut ptr, mut size): (*const u8, Option<usize>) = (std::ptr::null(), None);
    let mut i = 0;
    loop {
        // SAFETY: `extra` is a key/value list terminated by CU_LAUNCH_PARAM_END.
        let key = unsafe { extra.add(i).read() } as usize;
        match key {
            LAUNCH_PARAM_END => break,
            // SAFETY: every key but END is followed by its value.
            LAUNCH_PARAM_BUFFER_POINTER => ptr = unsafe { extra.add(i + 1).read() }.cast(),
            LAUNCH_PARAM_BUFFER_SIZE => {
                // SAFETY: as above; the value points to a size_t.
                let sp = unsafe { extra.add(i + 1).read() }.cast::<usize>();
                if sp.is_null() {
                    return Err("NULL CU_LAUNCH_PARAM_BUFFER_SIZE".into());
                }
                // SAFETY: non-null pointer to the buffer size.
                size = Some(unsafe { sp.read_unaligned() });
            }
            other => return Err(format!("unknown extra key {other:#x}")),
        }
        i += 2;
    }
    Ok((ptr, size))
}

/// `CUpointer_attribute` values.
#[allow(missing_docs)]
pub mod pointer_attribute {
    pub const CONTEXT: i32 = 1;
    pub const MEMORY_TYPE: i32 = 2;
    pub const DEVICE_POINTER: i32 = 3;
    pub const HOST_POINTER: i32 = 4;
    pub const P2P_TOKENS: i32 = 5;
    pub const SYNC_MEMOPS: i32 = 6;
    pub const BUFFER_ID: i32 = 7;
    pub const IS_MANAGED: i32 = 8;
    pub const DEVICE_ORDINAL: i32 = 9;
    pub const IS_LEGACY_CUDA_IPC_CAPABLE: i32 = 10;
    pub const RANGE_START_ADDR: i32 = 11;
    pub const RANGE_SIZE: i32 = 12;
    pub const MAPPED: i32 = 13;
    pub const ALLOWED_HANDLE_TYPES: i32 = 14;
    pub const IS_GPU_DIRECT_RDMA_CAPABLE: i32 = 15;
    pub const ACCESS_FLAGS: i32 = 16;
    pub const MEMPOOL_HANDLE: i32 = 17;
    pub const MAPPING_SIZE: i32 = 18;
    pub const MAPPING_BASE_ADDR: i32 = 19;
    pub const MEMORY_BLOCK_ID: i32 = 20;
    pub const IS_HW_DECOMPRESS_CAPABLE: i32 = 21;
}

/// Device ordinal reported for memory CUDA does not know (`cudaInvalidDeviceId`).
pub const NO_DEVICE: i32 = -2;

/// `CUmemLocation`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CUmemLocation {
    /// `CUmemLocationType`
    pub type_: i32,
    /// Device ordinal (for `CU_MEM_LOCATION_TYPE_DEVICE`).
    pub id: i32,
}

/// The anonymous `allocFlags` struct of `CUmemAllocationProp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CUmemAllocFlags {
    /// `CUmemAllocationCompType` hint (ignored: never compressible here).
    pub compression_type: u8,
    /// GPUDirect RDMA hint (ignored).
    pub gpu_direct_rdma_capable: u8,
    /// `CU_MEM_CREATE_USAGE_*` bits (ignored).
    pub usage: u16,
    /// Reserved.
    pub reserved: [u8; 4],
}

/// `CUmemAllocationProp`
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CUmemAllocationProp {
    /// `CUmemAllocationType` (must be PINNED).
    pub type_: i32,
    /// `CUmemAllocationHandleType` bits the allocation may be exported as.
    pub requested_handle_types: i32,
    /// Where the memory lives.
    pub location: CUmemLocation,
    /// Windows only; must be NULL.
    pub win32_handle_meta_data: *mut c_void,
    /// Hints.
    pub alloc_flags: CUmemAllocFlags,
}

/// `CUmemAccessDesc`
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CUmemAccessDesc {
    /// Who gets the access.
    pub location: CUmemLocation,
    /// `CUmemAccess_flags`
    pub flags: i32,
}

/// `CU_MEM_ALLOCATION_TYPE_PINNED`
pub const ALLOCATION_TYPE_PINNED: i32 = 1;
/// `CU_MEM_LOCATION_TYPE_DEVICE`
pub const LOCATION_DEVICE: i32 = 1;
/// `CU_MEM_LOCATION_TYPE_HOST`, `_HOST_NUMA`, `_HOST_NUMA_CURRENT`
pub const LOCATION_HOST_TYPES: [i32; 3] = [2, 3, 4];
/// `CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR`
pub const HANDLE_POSIX_FD: i32 = 0x1;
/// `CU_MEM_HANDLE_TYPE_WIN32 | _WIN32_KMT | _FABRIC`
pub const HANDLE_UNSUPPORTED: i32 = 0x2 | 0x4 | 0x8;

/// `CU_JIT_ERROR_LOG_BUFFER`
pub const JIT_ERROR_LOG_BUFFER: u32 = 5;
/// `CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES`
pub const JIT_ERROR_LOG_BUFFER_SIZE_BYTES: u32 = 6;
/// `CU_MODULE_EAGER_LOADING`
pub const MODULE_EAGER_LOADING: i32 = 1;
/// `CU_FUNCTION_LOADING_STATE_LOADED`
pub const FUNCTION_LOADED: i32 = 1;

/// `CUmemGenericAllocationHandle`
pub type CUmemGenericAllocationHandle = u64;
/// `CUjitOption`
pub type CUjitOption = u32;
/// `CUstreamCallback`
pub type CUstreamCallback = unsafe extern "C" fn(CUstream, crate::error::CUresult, *mut c_void);
/// `CUhostFn`
pub type CUhostFn = unsafe extern "C" fn(*mut c_void);
/// `CUoccupancyB2DSize`: the dynamic shared memory a block of the given size needs.
pub type CUoccupancyB2DSize = unsafe extern "C" fn(i32) -> usize;
/// `CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE` (the only `CUoccupancy_flags` bit).
pub const CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE: u32 = 0x1;

/// `CU_STREAM_NON_BLOCKING`
pub const CU_STREAM_NON_BLOCKING: u32 = 0x1;
/// `CU_EVENT_BLOCKING_SYNC`
pub const CU_EVENT_BLOCKING_SYNC: u32 = 0x1;
/// `CU_EVENT_DISABLE_TIMING`
pub const CU_EVENT_DISABLE_TIMING: u32 = 0x2;
/// `CU_EVENT_INTERPROCESS`
pub const CU_EVENT_INTERPROCESS: u32 = 0x4;
/// Every `CU_EVENT_*` creation flag.
pub const CU_EVENT_FLAGS: u32 =
    CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS;
/// `CU_EVENT_RECORD_EXTERNAL` (the only `cuEventRecordWithFlags` flag besides DEFAULT, 0).
pub const CU_EVENT_RECORD_EXTERNAL: u32 = 0x1;
/// `CU_EVENT_WAIT_EXTERNAL` (the only `cuStreamWaitEvent` flag besides DEFAULT, 0).
pub const CU_EVENT_WAIT_EXTERNAL: u32 = 0x1;
/// `CU_STREAM_WRITE_VALUE_NO_MEMORY_BARRIER` (the only `cuStreamWriteValue32` flag besides
/// DEFAULT, 0).
pub const CU_STREAM_WRITE_VALUE_NO_MEMORY_BARRIER: u32 = 0x1;
/// `CU_MEMHOSTALLOC_PORTABLE`
pub const CU_MEMHOSTALLOC_PORTABLE: u32 = 0x1;
/// `CU_MEMHOSTALLOC_DEVICEMAP`
pub const CU_MEMHOSTALLOC_DEVICEMAP: u32 = 0x2;
/// `CU_MEMHOSTALLOC_WRITECOMBINED`
pub const CU_MEMHOSTALLOC_WRITECOMBINED: u32 = 0x4;
/// Every `CU_MEMHOSTALLOC_*` flag.
pub const CU_MEMHOSTALLOC_FLAGS: u32 =
    CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_WRITECOMBINED;
/// `CU_MEMHOSTREGISTER_PORTABLE`
pub const CU_MEMHOSTREGISTER_PORTABLE: u32 = 0x1;
/// `CU_MEMHOSTREGISTER_DEVICEMAP`
pub const CU_MEMHOSTREGISTER_DEVICEMAP: u32 = 0x2;
/// `CU_MEMHOSTREGISTER_IOMEMORY`
pub const CU_MEMHOSTREGISTER_IOMEMORY: u32 = 0x4;
/// `CU_MEMHOSTREGISTER_READ_ONLY`
pub const CU_MEMHOSTREGISTER_READ_ONLY: u32 = 0x8;
/// Every `CU_MEMHOSTREGISTER_*` flag.
pub const CU_MEMHOSTREGISTER_FLAGS: u32 = CU_MEMHOSTREGISTER_PORTABLE
    | CU_MEMHOSTREGISTER_DEVICEMAP
    | CU_MEMHOSTREGISTER_IOMEMORY
    | CU_MEMHOSTREGISTER_READ_ONLY;

/// The API version every context reports (`cuCtxGetApiVersion`: the 3.2+ API).
pub const CTX_API_VERSION: u32 = 3020;
/// `CU_FUNC_CACHE_PREFER_NONE`: the cache configuration reported (there is no L1/shared split).
pub const FUNC_CACHE_PREFER_NONE: i32 = 0;
/// `CU_SHARED_MEM_CONFIG_FOUR_BYTE_BANK_SIZE`: the shared-memory configuration reported.
pub const SHARED_MEM_FOUR_BYTE_BANKS: i32 = 1;
/// Stream priorities: least (numerically greatest) and greatest, as Hopper reports them.
pub const STREAM_PRIORITY_LEAST: i32 = 0;
/// See [`STREAM_PRIORITY_LEAST`].
pub const STREAM_PRIORITY_GREATEST: i32 = -5;

/// `CUlimit` values.
#[allow(missing_docs)]
pub mod limit {
    pub const STACK_SIZE: i32 = 0;
    pub const PRINTF_FIFO_SIZE: i32 = 1;
    pub const MALLOC_HEAP_SIZE: i32 = 2;
    pub const DEV_RUNTIME_SYNC_DEPTH: i32 = 3;
    pub const DEV_RUNTIME_PENDING_LAUNCH_COUNT: i32 = 4;
    pub const MAX_L2_FETCH_GRANULARITY: i32 = 5;
    pub const PERSISTING_L2_CACHE_SIZE: i32 = 6;
}
