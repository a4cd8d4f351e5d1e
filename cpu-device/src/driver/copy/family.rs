//! The [`Copies`](gpushare_driver_abi::surface::Copies) family of the CPU device: each method
//! names the operation and how it waits; the work is in the parent module.

use std::ffi::c_void;

use gpushare_driver_abi::cuda_h::CudaMemcpy2D;
use gpushare_driver_abi::surface::{DefaultStream, In};

use super::{copy_2d, dtod, dtoh, htod, peer, set_1d, set_2d, unified, Mode};
use crate::error::CuResult;
use crate::sys::{CUcontext, CUdeviceptr, CUstream};
use crate::CpuDevice;

gpushare_driver_abi::implement! {
    impl Copies for CpuDevice {
        /// Direction from unified addressing; synchronous.
        unsafe fn memcpy(dst: CUdeviceptr, src: CUdeviceptr, n: usize, ds: DefaultStream) -> CuResult {
            unified("cuMemcpy", dst, src, n as u64, Mode::Sync(ds))
        }

        /// Direction from unified addressing.
        unsafe fn memcpy_async(dst: CUdeviceptr, src: CUdeviceptr, n: usize, stream: CUstream, ds: DefaultStream) -> CuResult {
            unified("cuMemcpyAsync", dst, src, n as u64, Mode::Async(stream, ds))
        }

        unsafe fn memcpy_htod(dst: CUdeviceptr, src: *const c_void, n: usize, ds: DefaultStream) -> CuResult {
            htod("cuMemcpyHtoD", dst, src, n, Mode::Sync(ds))
        }

        /// Pageable sources are staged at submission.
        unsafe fn memcpy_htod_async(dst: CUdeviceptr, src: *const c_void, n: usize, stream: CUstream, ds: DefaultStream) -> CuResult {
            htod("cuMemcpyHtoDAsync", dst, src, n, Mode::Async(stream, ds))
        }

        unsafe fn memcpy_dtoh(dst: *mut c_void, src: CUdeviceptr, n: usize, ds: DefaultStream) -> CuResult {
            dtoh("cuMemcpyDtoH", dst, src, n, Mode::Sync(ds))
        }

        /// Returns once complete when the destination is pageable.
        unsafe fn memcpy_dtoh_async(dst: *mut c_void, src: CUdeviceptr, n: usize, stream: CUstream, ds: DefaultStream) -> CuResult {
            dtoh("cuMemcpyDtoHAsync", dst, src, n, Mode::Async(stream, ds))
        }

        fn memcpy_dtod(dst: CUdeviceptr, src: CUdeviceptr, n: usize, ds: DefaultStream) -> CuResult {
            dtod("cuMemcpyDtoD", dst, src, n, Mode::Sync(ds))
        }

        fn memcpy_dtod_async(dst: CUdeviceptr, src: CUdeviceptr, n: usize, stream: CUstream, ds: DefaultStream) -> CuResult {
            dtod("cuMemcpyDtoDAsync", dst, src, n, Mode::Async(stream, ds))
        }

        /// One device, so a device-to-device copy.
        fn memcpy_peer(dst: CUdeviceptr, dst_ctx: CUcontext, src: CUdeviceptr, src_ctx: CUcontext, n: usize, ds: DefaultStream) -> CuResult {
            peer("cuMemcpyPeer", dst, dst_ctx, src, src_ctx, n as u64, Mode::Sync(ds))
        }

        fn memcpy_peer_async(dst: CUdeviceptr, dst_ctx: CUcontext, src: CUdeviceptr, src_ctx: CUcontext, n: usize, stream: CUstream, ds: DefaultStream) -> CuResult {
            peer("cuMemcpyPeerAsync", dst, dst_ctx, src, src_ctx, n as u64, Mode::Async(stream, ds))
        }

        unsafe fn memcpy_2d(p: In<CudaMemcpy2D>, ds: DefaultStream) -> CuResult {
            copy_2d("cuMemcpy2D", &p, Mode::Sync(ds))
        }

        unsafe fn memcpy_2d_unaligned(p: In<CudaMemcpy2D>, ds: DefaultStream) -> CuResult {
            copy_2d("cuMemcpy2DUnaligned", &p, Mode::Sync(ds))
        }

        unsafe fn memcpy_2d_async(p: In<CudaMemcpy2D>, stream: CUstream, ds: DefaultStream) -> CuResult {
            copy_2d("cuMemcpy2DAsync", &p, Mode::Async(stream, ds))
        }

        fn memset_d8(dst: CUdeviceptr, value: u8, n: usize, ds: DefaultStream) -> CuResult {
            set_1d("cuMemsetD8", dst, 1, u32::from(value), n, Mode::Sync(ds))
        }

        fn memset_d8_async(dst: CUdeviceptr, value: u8, n: usize, stream: CUstream, ds: DefaultStream) -> CuResult {
            set_1d("cuMemsetD8Async", dst, 1, u32::from(value), n, Mode::Async(stream, ds))
        }

        fn memset_d2d8(dst: CUdeviceptr, pitch: usize, value: u8, width: usize, height: usize, ds: DefaultStream) -> CuResult {
            set_2d("cuMemsetD2D8", dst, pitch, 1, u32::from(value), (width, height), Mode::Sync(ds))
        }

        fn memset_d2d8_async(dst: CUdeviceptr, pitch: usize, value: u8, width: usize, height: usize, stream: CUstream, ds: DefaultStream) -> CuResult {
            set_2d("cuMemsetD2D8Async", dst, pitch, 1, u32::from(value), (width, height), Mode::Async(stream, ds))
        }

        fn memset_d16(dst: CUdeviceptr, value: u16, n: usize, ds: DefaultStream) -> CuResult {
            set_1d("cuMemsetD16", dst, 2, u32::from(value), n, Mode::Sync(ds))
        }

        fn memset_d16_async(dst: CUdeviceptr, value: u16, n: usize, stream: CUstream, ds: DefaultStream) -> CuResult {
            set_1d("cuMemsetD16Async", dst, 2, u32::from(value), n, Mode::Async(stream, ds))
        }

        fn memset_d2d16(dst: CUdeviceptr, pitch: usize, value: u16, width: usize, height: usize, ds: DefaultStream) -> CuResult {
            set_2d("cuMemsetD2D16", dst, pitch, 2, u32::from(value), (width, height), Mode::Sync(ds))
        }

        fn memset_d2d16_async(dst: CUdeviceptr, pitch: usize, value: u16, width: usize, height: usize, stream: CUstream, ds: DefaultStream) -> CuResult {
            set_2d("cuMemsetD2D16Async", dst, pitch, 2, u32::from(value), (width, height), Mode::Async(stream, ds))
        }

        fn memset_d32(dst: CUdeviceptr, value: u32, n: usize, ds: DefaultStream) -> CuResult {
            set_1d("cuMemsetD32", dst, 4, value, n, Mode::Sync(ds))
        }

        fn memset_d32_async(dst: CUdeviceptr, value: u32, n: usize, stream: CUstream, ds: DefaultStream) -> CuResult {
            set_1d("cuMemsetD32Async", dst, 4, value, n, Mode::Async(stream, ds))
        }

        fn memset_d2d32(dst: CUdeviceptr, pitch: usize, value: u32, width: usize, height: usize, ds: DefaultStream) -> CuResult {
            set_2d("cuMemsetD2D32", dst, pitch, 4, value, (width, height), Mode::Sync(ds))
        }

        fn memset_d2d32_async(dst: CUdeviceptr, pitch: usize, value: u32, width: usize, height: usize, stream: CUstream, ds: DefaultStream) -> CuResult {
            set_2d("cuMemsetD2D32Async", dst, pitch, 4, value, (width, height), Mode::Async(stream, ds))
        }
    }
}
