//! The exported `cuMemcpy*`/`cuMemset*` entry points (bodies in the parent module).

use std::ffi::c_void;

use gpushare_driver_abi::sys::{CUcontext, CUdeviceptr, CUstream};

use super::{copy_2d, dtod, dtoh, htod, peer, set_1d, set_2d, unified, CudaMemcpy2D, Mode};

cuda_exports! {
    /// `cuMemcpy`: direction from unified addressing; synchronous.
    fn cuMemcpy(dst: CUdeviceptr, src: CUdeviceptr, n: usize) {
        unified("cuMemcpy", dst, src, n as u64, Mode::Sync(false))
    }

    /// `cuMemcpyHtoD_v2`
    fn cuMemcpyHtoD_v2(dst: CUdeviceptr, src: *const c_void, n: usize) {
        htod("cuMemcpyHtoD", dst, src, n, Mode::Sync(false))
    }

    /// `cuMemcpyDtoH_v2`
    fn cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, n: usize) {
        dtoh("cuMemcpyDtoH", dst, src, n, Mode::Sync(false))
    }

    /// `cuMemcpyDtoD_v2`
    fn cuMemcpyDtoD_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize) {
        dtod("cuMemcpyDtoD", dst, src, n, Mode::Sync(false))
    }

    /// `cuMemcpyPeer`: one device, so a device-to-device copy.
    fn cuMemcpyPeer(dst: CUdeviceptr, dst_ctx: CUcontext, src: CUdeviceptr, src_ctx: CUcontext, n: usize) {
        peer("cuMemcpyPeer", dst, dst_ctx, src, src_ctx, n as u64, Mode::Sync(false))
    }

    /// `cuMemcpy2D_v2`
    fn cuMemcpy2D_v2(p: *const CudaMemcpy2D) {
        copy_2d("cuMemcpy2D", p, Mode::Sync(false))
    }

    /// `cuMemcpy2DUnaligned_v2`
    fn cuMemcpy2DUnaligned_v2(p: *const CudaMemcpy2D) {
        copy_2d("cuMemcpy2DUnaligned", p, Mode::Sync(false))
    }

    /// `cuMemsetD8_v2`
    fn cuMemsetD8_v2(dst: CUdeviceptr, value: u8, n: usize) {
        set_1d("cuMemsetD8", dst, 1, u32::from(value), n, Mode::Sync(false))
    }

    /// `cuMemsetD2D8_v2`
    fn cuMemsetD2D8_v2(dst: CUdeviceptr, pitch: usize, value: u8, width: usize, height: usize) {
        set_2d("cuMemsetD2D8", dst, pitch, 1, u32::from(value), (width, height), Mode::Sync(false))
    }

    /// `cuMemsetD16_v2`
    fn cuMemsetD16_v2(dst: CUdeviceptr, value: u16, n: usize) {
        set_1d("cuMemsetD16", dst, 2, u32::from(value), n, Mode::Sync(false))
    }

    /// `cuMemsetD2D16_v2`
    fn cuMemsetD2D16_v2(dst: CUdeviceptr, pitch: usize, value: u16, width: usize, height: usize) {
        set_2d("cuMemsetD2D16", dst, pitch, 2, u32::from(value), (width, height), Mode::Sync(false))
    }

    /// `cuMemsetD32_v2`
    fn cuMemsetD32_v2(dst: CUdeviceptr, value: u32, n: usize) {
        set_1d("cuMemsetD32", dst, 4, value, n, Mode::Sync(false))
    }

    /// `cuMemsetD2D32_v2`
    fn cuMemsetD2D32_v2(dst: CUdeviceptr, pitch: usize, value: u32, width: usize, height: usize) {
        set_2d("cuMemsetD2D32", dst, pitch, 4, value, (width, height), Mode::Sync(false))
    }

    /// `cuMemcpy_ptds`: direction from unified addressing; synchronous.
    fn cuMemcpy_ptds(dst: CUdeviceptr, src: CUdeviceptr, n: usize) {
        unified("cuMemcpy", dst, src, n as u64, Mode::Sync(true))
    }

    /// `cuMemcpyHtoD_v2_ptds`
    fn cuMemcpyHtoD_v2_ptds(dst: CUdeviceptr, src: *const c_void, n: usize) {
        htod("cuMemcpyHtoD", dst, src, n, Mode::Sync(true))
    }

    /// `cuMemcpyDtoH_v2_ptds`
    fn cuMemcpyDtoH_v2_ptds(dst: *mut c_void, src: CUdeviceptr, n: usize) {
        dtoh("cuMemcpyDtoH", dst, src, n, Mode::Sync(true))
    }

    /// `cuMemcpyDtoD_v2_ptds`
    fn cuMemcpyDtoD_v2_ptds(dst: CUdeviceptr, src: CUdeviceptr, n: usize) {
        dtod("cuMemcpyDtoD", dst, src, n, Mode::Sync(true))
    }

    /// `cuMemcpyPeer_ptds`: one device, so a device-to-device copy.
    fn cuMemcpyPeer_ptds(dst: CUdeviceptr, dst_ctx: CUcontext, src: CUdeviceptr, src_ctx: CUcontext, n: usize) {
        peer("cuMemcpyPeer", dst, dst_ctx, src, src_ctx, n as u64, Mode::Sync(true))
    }

    /// `cuMemcpy2D_v2_ptds`
    fn cuMemcpy2D_v2_ptds(p: *const CudaMemcpy2D) {
        copy_2d("cuMemcpy2D", p, Mode::Sync(true))
    }

    /// `cuMemcpy2DUnaligned_v2_ptds`
    fn cuMemcpy2DUnaligned_v2_ptds(p: *const CudaMemcpy2D) {
        copy_2d("cuMemcpy2DUnaligned", p, Mode::Sync(true))
    }

    /// `cuMemsetD8_v2_ptds`
    fn cuMemsetD8_v2_ptds(dst: CUdeviceptr, value: u8, n: usize) {
        set_1d("cuMemsetD8", dst, 1, u32::from(value), n, Mode::Sync(true))
    }

    /// `cuMemsetD2D8_v2_ptds`
    fn cuMemsetD2D8_v2_ptds(dst: CUdeviceptr, pitch: usize, value: u8, width: usize, height: usize) {
        set_2d("cuMemsetD2D8", dst, pitch, 1, u32::from(value), (width, height), Mode::Sync(true))
    }

    /// `cuMemsetD16_v2_ptds`
    fn cuMemsetD16_v2_ptds(dst: CUdeviceptr, value: u16, n: usize) {
        set_1d("cuMemsetD16", dst, 2, u32::from(value), n, Mode::Sync(true))
    }

    /// `cuMemsetD2D16_v2_ptds`
    fn cuMemsetD2D16_v2_ptds(dst: CUdeviceptr, pitch: usize, value: u16, width: usize, height: usize) {
        set_2d("cuMemsetD2D16", dst, pitch, 2, u32::from(value), (width, height), Mode::Sync(true))
    }

    /// `cuMemsetD32_v2_ptds`
    fn cuMemsetD32_v2_ptds(dst: CUdeviceptr, value: u32, n: usize) {
        set_1d("cuMemsetD32", dst, 4, value, n, Mode::Sync(true))
    }

    /// `cuMemsetD2D32_v2_ptds`
    fn cuMemsetD2D32_v2_ptds(dst: CUdeviceptr, pitch: usize, value: u32, width: usize, height: usize) {
        set_2d("cuMemsetD2D32", dst, pitch, 4, value, (width, height), Mode::Sync(true))
    }

    /// `cuMemcpyAsync`
    fn cuMemcpyAsync(dst: CUdeviceptr, src: CUdeviceptr, n: usize, stream: CUstream) {
        unified("cuMemcpyAsync", dst, src, n as u64, Mode::Async(stream, false))
    }

    /// `cuMemcpyHtoDAsync_v2`
    fn cuMemcpyHtoDAsync_v2(dst: CUdeviceptr, src: *const c_void, n: usize, stream: CUstream) {
        htod("cuMemcpyHtoDAsync", dst, src, n, Mode::Async(stream, false))
    }

    /// `cuMemcpyDtoHAsync_v2`
    fn cuMemcpyDtoHAsync_v2(dst: *mut c_void, src: CUdeviceptr, n: usize, stream: CUstream) {
        dtoh("cuMemcpyDtoHAsync", dst, src, n, Mode::Async(stream, false))
    }

    /// `cuMemcpyDtoDAsync_v2`
    fn cuMemcpyDtoDAsync_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize, stream: CUstream) {
        dtod("cuMemcpyDtoDAsync", dst, src, n, Mode::Async(stream, false))
    }

    /// `cuMemcpyPeerAsync`
    fn cuMemcpyPeerAsync(dst: CUdeviceptr, dst_ctx: CUcontext, src: CUdeviceptr, src_ctx: CUcontext, n: usize, stream: CUstream) {
        peer("cuMemcpyPeerAsync", dst, dst_ctx, src, src_ctx, n as u64, Mode::Async(stream, false))
    }

    /// `cuMemcpy2DAsync_v2`
    fn cuMemcpy2DAsync_v2(p: *const CudaMemcpy2D, stream: CUstream) {
        copy_2d("cuMemcpy2DAsync", p, Mode::Async(stream, false))
    }

    /// `cuMemsetD8Async`
    fn cuMemsetD8Async(dst: CUdeviceptr, value: u8, n: usize, stream: CUstream) {
        set_1d("cuMemsetD8Async", dst, 1, u32::from(value), n, Mode::Async(stream, false))
    }

    /// `cuMemsetD2D8Async`
    fn cuMemsetD2D8Async(dst: CUdeviceptr, pitch: usize, value: u8, width: usize, height: usize, stream: CUstream) {
        set_2d("cuMemsetD2D8Async", dst, pitch, 1, u32::from(value), (width, height), Mode::Async(stream, false))
    }

    /// `cuMemsetD16Async`
    fn cuMemsetD16Async(dst: CUdeviceptr, value: u16, n: usize, stream: CUstream) {
        set_1d("cuMemsetD16Async", dst, 2, u32::from(value), n, Mode::Async(stream, false))
    }

    /// `cuMemsetD2D16Async`
    fn cuMemsetD2D16Async(dst: CUdeviceptr, pitch: usize, value: u16, width: usize, height: usize, stream: CUstream) {
        set_2d("cuMemsetD2D16Async", dst, pitch, 2, u32::from(value), (width, height), Mode::Async(stream, false))
    }

    /// `cuMemsetD32Async`
    fn cuMemsetD32Async(dst: CUdeviceptr, value: u32, n: usize, stream: CUstream) {
        set_1d("cuMemsetD32Async", dst, 4, value, n, Mode::Async(stream, false))
    }

    /// `cuMemsetD2D32Async`
    fn cuMemsetD2D32Async(dst: CUdeviceptr, pitch: usize, value: u32, width: usize, height: usize, stream: CUstream) {
        set_2d("cuMemsetD2D32Async", dst, pitch, 4, value, (width, height), Mode::Async(stream, false))
    }

    /// `cuMemcpyAsync_ptsz`
    fn cuMemcpyAsync_ptsz(dst: CUdeviceptr, src: CUdeviceptr, n: usize, stream: CUstream) {
        unified("cuMemcpyAsync", dst, src, n as u64, Mode::Async(stream, true))
    }

    /// `cuMemcpyHtoDAsync_v2_ptsz`
    fn cuMemcpyHtoDAsync_v2_ptsz(dst: CUdeviceptr, src: *const c_void, n: usize, stream: CUstream) {
        htod("cuMemcpyHtoDAsync", dst, src, n, Mode::Async(stream, true))
    }

    /// `cuMemcpyDtoHAsync_v2_ptsz`
    fn cuMemcpyDtoHAsync_v2_ptsz(dst: *mut c_void, src: CUdeviceptr, n: usize, stream: CUstream) {
        dtoh("cuMemcpyDtoHAsync", dst, src, n, Mode::Async(stream, true))
    }

    /// `cuMemcpyDtoDAsync_v2_ptsz`
    fn cuMemcpyDtoDAsync_v2_ptsz(dst: CUdeviceptr, src: CUdeviceptr, n: usize, stream: CUstream) {
        dtod("cuMemcpyDtoDAsync", dst, src, n, Mode::Async(stream, true))
    }

    /// `cuMemcpyPeerAsync_ptsz`
    fn cuMemcpyPeerAsync_ptsz(dst: CUdeviceptr, dst_ctx: CUcontext, src: CUdeviceptr, src_ctx: CUcontext, n: usize, stream: CUstream) {
        peer("cuMemcpyPeerAsync", dst, dst_ctx, src, src_ctx, n as u64, Mode::Async(stream, true))
    }

    /// `cuMemcpy2DAsync_v2_ptsz`
    fn cuMemcpy2DAsync_v2_ptsz(p: *const CudaMemcpy2D, stream: CUstream) {
        copy_2d("cuMemcpy2DAsync", p, Mode::Async(stream, true))
    }

    /// `cuMemsetD8Async_ptsz`
    fn cuMemsetD8Async_ptsz(dst: CUdeviceptr, value: u8, n: usize, stream: CUstream) {
        set_1d("cuMemsetD8Async", dst, 1, u32::from(value), n, Mode::Async(stream, true))
    }

    /// `cuMemsetD2D8Async_ptsz`
    fn cuMemsetD2D8Async_ptsz(dst: CUdeviceptr, pitch: usize, value: u8, width: usize, height: usize, stream: CUstream) {
        set_2d("cuMemsetD2D8Async", dst, pitch, 1, u32::from(value), (width, height), Mode::Async(stream, true))
    }

    /// `cuMemsetD16Async_ptsz`
    fn cuMemsetD16Async_ptsz(dst: CUdeviceptr, value: u16, n: usize, stream: CUstream) {
        set_1d("cuMemsetD16Async", dst, 2, u32::from(value), n, Mode::Async(stream, true))
    }

    /// `cuMemsetD2D16Async_ptsz`
    fn cuMemsetD2D16Async_ptsz(dst: CUdeviceptr, pitch: usize, value: u16, width: usize, height: usize, stream: CUstream) {
        set_2d("cuMemsetD2D16Async", dst, pitch, 2, u32::from(value), (width, height), Mode::Async(stream, true))
    }

    /// `cuMemsetD32Async_ptsz`
    fn cuMemsetD32Async_ptsz(dst: CUdeviceptr, value: u32, n: usize, stream: CUstream) {
        set_1d("cuMemsetD32Async", dst, 4, value, n, Mode::Async(stream, true))
    }

    /// `cuMemsetD2D32Async_ptsz`
    fn cuMemsetD2D32Async_ptsz(dst: CUdeviceptr, pitch: usize, value: u32, width: usize, height: usize, stream: CUstream) {
        set_2d("cuMemsetD2D32Async", dst, pitch, 4, value, (width, height), Mode::Async(stream, true))
    }

}
