//! Page-locked host memory: `cuMemHostAlloc`, `cuMemAllocHost`, `cuMemFreeHost`,
//! `cuMemHostGetDevicePointer`, `cuMemHostGetFlags`, `cuMemHostRegister`, `cuMemHostUnregister`.
//!
//! With unified addressing the device pointer of page-locked memory is its host pointer, for
//! every flag combination (including WRITECOMBINED, which changes nothing on a CPU). Allocations
//! and registrations belong to the current context and go away with it.

use std::ffi::c_void;

use gpushare_driver_abi::cuda_h::{CU_MEMHOSTALLOC_FLAGS, CU_MEMHOSTREGISTER_FLAGS};
use gpushare_driver_abi::surface::{Flags, Out};

use crate::error::CuResult;
use crate::state;
use crate::sys::CUdeviceptr;
use crate::CpuDevice;

fn host_alloc(pp: Out<'_, *mut c_void>, size: u64, flags: u32) -> CuResult {
    let (d, ctx) = state::current()?;
    pp.write(d.memory.host_alloc(ctx.id(), size, flags)? as *mut c_void)
}

gpushare_driver_abi::implement! {
    impl HostMemory for CpuDevice {
        /// Flags PORTABLE (1), DEVICEMAP (2), WRITECOMBINED (4).
        fn mem_host_alloc(pp: Out<'_, *mut c_void>, bytesize: usize, flags: Flags<{ CU_MEMHOSTALLOC_FLAGS }>) -> CuResult {
            host_alloc(pp, bytesize as u64, flags.bits())
        }

        fn mem_alloc_host(pp: Out<'_, *mut c_void>, bytesize: usize) -> CuResult {
            host_alloc(pp, bytesize as u64, 0)
        }

        /// After the current context's work drains.
        fn mem_free_host(p: *mut c_void) -> CuResult {
            let (d, ctx) = state::current()?;
            let _ = d.exec.synchronize_context(&ctx);
            d.memory.host_free(p as u64)
        }

        /// The host pointer itself (unified addressing; v1: it never fits in 32 bits here).
        fn mem_host_get_device_pointer(pdptr: Out<'_, CUdeviceptr>, p: *mut c_void, _flags: Flags<0>) -> CuResult {
            let (d, _) = state::current()?;
            pdptr.write(d.memory.host_device_pointer(p as u64)?)
        }

        /// The flags of a `cuMemHostAlloc`/`cuMemAllocHost` allocation.
        fn mem_host_get_flags(pflags: Out<'_, u32>, p: *mut c_void) -> CuResult {
            let (d, _) = state::current()?;
            pflags.write(d.memory.host_flags(p as u64)?)
        }

        /// Flags PORTABLE (1), DEVICEMAP (2), READ_ONLY (8); IOMEMORY (4) is not supported. The
        /// memory is used by later copies and kernels until unregistered.
        unsafe fn mem_host_register(p: *mut c_void, bytesize: usize, flags: Flags<{ CU_MEMHOSTREGISTER_FLAGS }>) -> CuResult {
            let (d, ctx) = state::current()?;
            d.memory.register(ctx.id(), p as u64, bytesize as u64, flags.bits())
        }

        /// `p` must be the pointer given to `cuMemHostRegister`; waits for the current context's
        /// work first.
        fn mem_host_unregister(p: *mut c_void) -> CuResult {
            let (d, ctx) = state::current()?;
            let _ = d.exec.synchronize_context(&ctx);
            d.memory.unregister(p as u64)
        }
    }
}
