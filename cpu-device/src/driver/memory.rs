//! Device memory management: `cuMemAlloc*`, `cuMemFree`, `cuMemGetInfo`, `cuMemGetAddressRange`,
//! `cuMemAllocPitch`, `cuMemAllocManaged`.
//!
//! The work is done by [`crate::memory::DeviceMemory`]; this module checks arguments, resolves
//! the current context (allocations belong to it) and writes results. The `v1` entry points use
//! the pre-3.2 ABI with 32-bit device pointers and sizes: sizes work, but a device pointer never
//! fits in 32 bits here (the arena lies high in the address space), so the calls that return one
//! fail with `NOT_SUPPORTED` and a log line (the generated layer's narrowing `Out`).

use gpushare_driver_abi::checks;
use gpushare_driver_abi::checks::managed::{self as hints, v1_location};
use gpushare_driver_abi::cuda_h::CUmemLocation;
use gpushare_driver_abi::graph::{capture, node::NodeKind};
use gpushare_driver_abi::surface::{DefaultStream, Flags, OptOut, Out};

use super::resolve::work_stream;

use crate::error::{CuError, CuResult};
use crate::state;
use crate::sys::{CUdevice, CUdeviceptr, CUstream};
use crate::CpuDevice;

/// `CU_MEM_ATTACH_GLOBAL`
const ATTACH_GLOBAL: u32 = 0x1;
/// `CU_MEM_ATTACH_HOST`
const ATTACH_HOST: u32 = 0x2;
/// Pitch alignment of `cuMemAllocPitch` (`CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT`-sized).
const PITCH_ALIGN: u64 = 512;

fn alloc(size: u64) -> CuResult<u64> {
    let (d, ctx) = state::current()?;
    d.memory.alloc(ctx.id(), size)
}

/// Frees a device allocation after the current context's work drains (as `cuMemFree` does on
/// hardware), so no queued copy or kernel still uses the pages.
pub(crate) fn free(ptr: u64) -> CuResult {
    let (d, ctx) = state::current()?;
    if ptr == 0 {
        return Ok(());
    }
    let _ = d.exec.synchronize_context(&ctx);
    d.memory.free(ptr)
}

fn address_range(ptr: u64) -> CuResult<(u64, u64)> {
    let (d, _) = state::current()?;
    d.memory.address_range(ptr)
}

/// Pitch and allocation for a `width` × `height` 2D array of `element_size`-byte elements.
fn alloc_pitch(width: u64, height: u64, element_size: u32) -> CuResult<(u64, u64)> {
    checks::alloc_pitch(width, height, element_size)?;
    let pitch = width
        .checked_add(PITCH_ALIGN - 1)
        .map(|w| w & !(PITCH_ALIGN - 1))
        .ok_or(CuError::INVALID_VALUE)?;
    let size = pitch.checked_mul(height).ok_or(CuError::OUT_OF_MEMORY)?;
    Ok((alloc(size)?, pitch))
}

/// Whether `[ptr, ptr + count)` lies in one managed allocation.
fn managed(ptr: u64, count: usize) -> CuResult<bool> {
    let d = state::driver()?;
    Ok(d.memory
        .pointer_info(ptr)
        .is_some_and(|i| i.managed && ptr + count as u64 <= i.range_start + i.range_size))
}

/// `cuMemPrefetchAsync`: managed memory is where host and device share it already, so a valid
/// prefetch is stream-ordered nothing (a node under capture).
fn prefetch(
    ptr: u64,
    count: usize,
    loc: CUmemLocation,
    stream: CUstream,
    ds: DefaultStream,
) -> CuResult {
    work_stream(stream, ds)?;
    hints::prefetch(count, loc, 1, managed(ptr, count)?)?;
    capture::record(stream, ds, || Ok(NodeKind::Empty)).unwrap_or(Ok(()))
}

gpushare_driver_abi::implement! {
    impl Memory for CpuDevice {
        /// Free and total device memory of the modelled device.
        fn mem_get_info(free: Out<'_, usize>, total: Out<'_, usize>) -> CuResult {
            let (d, _) = state::current()?;
            free.write(d.memory.free_bytes() as usize)?;
            total.write(d.memory.total_bytes() as usize)
        }

        /// v1: the arena lies above 4 GiB, so the pointer never fits (freed again, then
        /// `NOT_SUPPORTED`).
        fn mem_alloc(dptr: Out<'_, CUdeviceptr>, bytesize: usize) -> CuResult {
            let p = alloc(bytesize as u64)?;
            dptr.write(p).inspect_err(|_| {
                let _ = free(p);
            })
        }

        /// Rows padded to a multiple of 512 bytes.
        fn mem_alloc_pitch(dptr: Out<'_, CUdeviceptr>, pitch: Out<'_, usize>, width: usize, height: usize, element_size: u32) -> CuResult {
            let (p, row) = alloc_pitch(width as u64, height as u64, element_size)?;
            dptr.write(p).inspect_err(|_| {
                let _ = free(p);
            })?;
            pitch.write(row as usize)
        }

        /// `dptr` must be the base of a live allocation (0 is a no-op).
        fn mem_free(dptr: CUdeviceptr) -> CuResult {
            free(dptr)
        }

        /// Base and size of the allocation holding `dptr`; `NOT_FOUND` for addresses in no
        /// allocation.
        fn mem_get_address_range(pbase: OptOut<'_, CUdeviceptr>, psize: OptOut<'_, usize>, dptr: CUdeviceptr) -> CuResult {
            let (base, size) = address_range(dptr)?;
            pbase.write(base)?;
            psize.write(size as usize)
        }

        /// Device memory the host can use at the same address (device pointers are host
        /// addresses here, so there is nothing to migrate). Flags: `CU_MEM_ATTACH_GLOBAL` or
        /// `CU_MEM_ATTACH_HOST`.
        fn mem_alloc_managed(dptr: Out<'_, CUdeviceptr>, bytesize: usize, flags: u32) -> CuResult {
            if !matches!(flags, ATTACH_GLOBAL | ATTACH_HOST) {
                tracing::debug!("cuMemAllocManaged: flags {flags:#x} not GLOBAL/HOST");
                return Err(CuError::INVALID_VALUE);
            }
            let (d, ctx) = state::current()?;
            dptr.write(d.memory.alloc_managed(ctx.id(), bytesize as u64)?)
        }

        /// Checked, then nothing to do (host and device share managed memory).
        fn mem_advise(ptr: CUdeviceptr, count: usize, advice: i32, location: CUmemLocation) -> CuResult {
            state::current()?;
            hints::advise(count, advice, location, 1, managed(ptr, count)?)
        }

        fn mem_advise_v1(ptr: CUdeviceptr, count: usize, advice: i32, device: CUdevice) -> CuResult {
            state::current()?;
            hints::advise(count, advice, v1_location(device), 1, managed(ptr, count)?)
        }

        fn mem_prefetch_async(ptr: CUdeviceptr, count: usize, location: CUmemLocation, _flags: Flags<0>, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            prefetch(ptr, count, location, stream, default_stream)
        }

        fn mem_prefetch_async_v1(ptr: CUdeviceptr, count: usize, device: CUdevice, stream: CUstream, default_stream: DefaultStream) -> CuResult {
            prefetch(ptr, count, v1_location(device), stream, default_stream)
        }
    }
}
