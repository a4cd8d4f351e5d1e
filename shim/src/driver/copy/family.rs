//! The `Copies` family: each method names its call (for log lines), its direction and how it
//! waits; the work is the parent module's.

use gpushare_driver_abi::checks::copy::CopyShape;
use gpushare_driver_abi::surface::prelude::*;

use super::{copy, dtod, memset, memset_1d, peer, unified, Mode};
use crate::runtime::runtime;
use crate::Shim;

/// `Mode` of a synchronous or an asynchronous call.
fn sync(ds: DefaultStream) -> Mode {
    Mode::Sync(ds)
}

fn on(stream: CUstream, ds: DefaultStream) -> Mode {
    Mode::Async(stream, ds)
}

/// A `CUDA_MEMCPY2D` copy (`MEMORYTYPE_UNIFIED` sides classified by the shim's tables).
///
/// # Safety
/// The descriptor's host memory must be valid for its extent.
unsafe fn copy_2d(what: &str, p: &CudaMemcpy2D, mode: Mode) -> CuResult {
    let rt = runtime()?;
    let shape = CopyShape::from_2d(p, |a| super::is_device(rt, a))?;
    // SAFETY: the descriptor's host sides are valid per the contract.
    unsafe { copy(what, shape, mode) }
}

gpushare_driver_abi::implement! {
    impl Copies for Shim {
        /// `cuMemcpy`: direction from unified addressing; synchronous.
        unsafe fn memcpy(dst: CUdeviceptr, src: CUdeviceptr, n: usize, default_stream: DefaultStream) -> CuResult {
            // SAFETY: host sides are the caller's, valid for `n` bytes.
            unsafe { unified("cuMemcpy", dst, src, n, sync(default_stream)) }
        }

        /// `cuMemcpyAsync`
        unsafe fn memcpy_async(dst: CUdeviceptr, src: CUdeviceptr, n: usize, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            // SAFETY: host sides are the caller's, valid for `n` bytes.
            unsafe { unified("cuMemcpyAsync", dst, src, n, on(stream, default_stream)) }
        }

        /// `cuMemcpyHtoD`
        unsafe fn memcpy_htod(dst: CUdeviceptr, src: *const c_void, n: usize, default_stream: DefaultStream) -> CuResult {
            let r = CopyShape::linear(true, false, dst, src as u64, n as u64);
            // SAFETY: `src` holds `n` readable bytes per the caller.
            unsafe { copy("cuMemcpyHtoD", r, sync(default_stream)) }
        }

        /// `cuMemcpyHtoDAsync`
        unsafe fn memcpy_htod_async(dst: CUdeviceptr, src: *const c_void, n: usize, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            let r = CopyShape::linear(true, false, dst, src as u64, n as u64);
            // SAFETY: `src` holds `n` readable bytes per the caller.
            unsafe { copy("cuMemcpyHtoDAsync", r, on(stream, default_stream)) }
        }

        /// `cuMemcpyDtoH`
        unsafe fn memcpy_dtoh(dst: *mut c_void, src: CUdeviceptr, n: usize, default_stream: DefaultStream) -> CuResult {
            let r = CopyShape::linear(false, true, dst as u64, src, n as u64);
            // SAFETY: `dst` holds `n` writable bytes per the caller.
            unsafe { copy("cuMemcpyDtoH", r, sync(default_stream)) }
        }

        /// `cuMemcpyDtoHAsync`: returns once the bytes are there when `dst` is pageable.
        unsafe fn memcpy_dtoh_async(dst: *mut c_void, src: CUdeviceptr, n: usize, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            let r = CopyShape::linear(false, true, dst as u64, src, n as u64);
            // SAFETY: `dst` holds `n` writable bytes per the caller.
            unsafe { copy("cuMemcpyDtoHAsync", r, on(stream, default_stream)) }
        }

        /// `cuMemcpyDtoD`
        fn memcpy_dtod(dst: CUdeviceptr, src: CUdeviceptr, n: usize, default_stream: DefaultStream) -> CuResult {
            dtod("cuMemcpyDtoD", dst, src, n, sync(default_stream))
        }

        /// `cuMemcpyDtoDAsync`
        fn memcpy_dtod_async(dst: CUdeviceptr, src: CUdeviceptr, n: usize, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            dtod("cuMemcpyDtoDAsync", dst, src, n, on(stream, default_stream))
        }

        /// `cuMemcpyPeer`: one device, so a device-to-device copy.
        fn memcpy_peer(dst: CUdeviceptr, dst_ctx: CUcontext, src: CUdeviceptr, src_ctx: CUcontext, n: usize, default_stream: DefaultStream) -> CuResult {
            peer("cuMemcpyPeer", dst, dst_ctx, src, src_ctx, n, sync(default_stream))
        }

        /// `cuMemcpyPeerAsync`
        fn memcpy_peer_async(dst: CUdeviceptr, dst_ctx: CUcontext, src: CUdeviceptr, src_ctx: CUcontext, n: usize, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            peer("cuMemcpyPeerAsync", dst, dst_ctx, src, src_ctx, n, on(stream, default_stream))
        }

        /// `cuMemcpy2D`
        unsafe fn memcpy_2d(p: In<CudaMemcpy2D>, default_stream: DefaultStream) -> CuResult {
            // SAFETY: the descriptor's host memory is valid per the caller.
            unsafe { copy_2d("cuMemcpy2D", &p, sync(default_stream)) }
        }

        /// `cuMemcpy2DUnaligned`
        unsafe fn memcpy_2d_unaligned(p: In<CudaMemcpy2D>, default_stream: DefaultStream) -> CuResult {
            // SAFETY: the descriptor's host memory is valid per the caller.
            unsafe { copy_2d("cuMemcpy2DUnaligned", &p, sync(default_stream)) }
        }

        /// `cuMemcpy2DAsync`
        unsafe fn memcpy_2d_async(p: In<CudaMemcpy2D>, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            // SAFETY: the descriptor's host memory is valid per the caller.
            unsafe { copy_2d("cuMemcpy2DAsync", &p, on(stream, default_stream)) }
        }

        /// `cuMemsetD8`
        fn memset_d8(dst: CUdeviceptr, value: u8, n: usize, default_stream: DefaultStream) -> CuResult {
            memset_1d("cuMemsetD8", dst, 1, u32::from(value), n, sync(default_stream))
        }

        /// `cuMemsetD16`
        fn memset_d16(dst: CUdeviceptr, value: u16, n: usize, default_stream: DefaultStream) -> CuResult {
            memset_1d("cuMemsetD16", dst, 2, u32::from(value), n, sync(default_stream))
        }

        /// `cuMemsetD32`
        fn memset_d32(dst: CUdeviceptr, value: u32, n: usize, default_stream: DefaultStream) -> CuResult {
            memset_1d("cuMemsetD32", dst, 4, value, n, sync(default_stream))
        }

        /// `cuMemsetD8Async`
        fn memset_d8_async(dst: CUdeviceptr, value: u8, n: usize, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            memset_1d("cuMemsetD8Async", dst, 1, u32::from(value), n, on(stream, default_stream))
        }

        /// `cuMemsetD16Async`
        fn memset_d16_async(dst: CUdeviceptr, value: u16, n: usize, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            memset_1d("cuMemsetD16Async", dst, 2, u32::from(value), n, on(stream, default_stream))
        }

        /// `cuMemsetD32Async`
        fn memset_d32_async(dst: CUdeviceptr, value: u32, n: usize, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            memset_1d("cuMemsetD32Async", dst, 4, value, n, on(stream, default_stream))
        }

        /// `cuMemsetD2D8`
        fn memset_d2d8(dst: CUdeviceptr, pitch: usize, value: u8, width: usize, height: usize, default_stream: DefaultStream) -> CuResult {
            memset("cuMemsetD2D8", dst, pitch, 1, u32::from(value), (width, height), sync(default_stream))
        }

        /// `cuMemsetD2D16`
        fn memset_d2d16(dst: CUdeviceptr, pitch: usize, value: u16, width: usize, height: usize, default_stream: DefaultStream) -> CuResult {
            memset("cuMemsetD2D16", dst, pitch, 2, u32::from(value), (width, height), sync(default_stream))
        }

        /// `cuMemsetD2D32`
        fn memset_d2d32(dst: CUdeviceptr, pitch: usize, value: u32, width: usize, height: usize, default_stream: DefaultStream) -> CuResult {
            memset("cuMemsetD2D32", dst, pitch, 4, value, (width, height), sync(default_stream))
        }

        /// `cuMemsetD2D8Async`
        fn memset_d2d8_async(dst: CUdeviceptr, pitch: usize, value: u8, width: usize, height: usize, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            memset("cuMemsetD2D8Async", dst, pitch, 1, u32::from(value), (width, height), on(stream, default_stream))
        }

        /// `cuMemsetD2D16Async`
        fn memset_d2d16_async(dst: CUdeviceptr, pitch: usize, value: u16, width: usize, height: usize, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            memset("cuMemsetD2D16Async", dst, pitch, 2, u32::from(value), (width, height), on(stream, default_stream))
        }

        /// `cuMemsetD2D32Async`
        fn memset_d2d32_async(dst: CUdeviceptr, pitch: usize, value: u32, width: usize, height: usize, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            memset("cuMemsetD2D32Async", dst, pitch, 4, value, (width, height), on(stream, default_stream))
        }
    }
}
