//! The occupancy calculator (`cuOccupancy*`): the shared rules of
//! [`gpushare_driver_abi::checks::occupancy`] over the modelled device's limits (the attributes
//! `cuDeviceGetAttribute` reports) and the kernel's attributes (what `cuFuncGetAttribute`
//! reports, with its current `MAX_DYNAMIC_SHARED_SIZE_BYTES`).

use gpushare_driver_abi::checks::occupancy::{self, KernelUsage, SmLimits};
use gpushare_driver_abi::cuda_h::{CUoccupancyB2DSize, CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE};
use gpushare_driver_abi::surface::{Flags, Out};

use super::device::attribute;
use crate::error::{CuError, CuResult};
use crate::state;
use crate::sys::CUfunction;
use crate::CpuDevice;

/// The device's limits and the kernel's usage for `func` (a `CUfunction`, or a `CUkernel`
/// resolved in the current context).
fn inputs(func: CUfunction) -> CuResult<occupancy::Inputs> {
    let (d, ctx) = state::current()?;
    let f = d.exec.resolve_function(&ctx, func as u64)?;
    let k = f.kernel()?;
    let max_dynamic = f
        .attrs
        .lock()
        .map_err(|_| CuError::UNKNOWN)?
        .max_dynamic_shared;
    let sm = SmLimits::from_attributes(|a| attribute(&d.profile, a))?;
    let usage = KernelUsage {
        max_threads_per_block: k.max_threads_per_block(),
        regs_per_thread: k.num_regs().min(255),
        static_shared: k.static_shared_bytes(),
        max_dynamic_shared: max_dynamic,
    };
    Ok((sm, usage))
}

gpushare_driver_abi::implement! {
    impl Occupancy for CpuDevice {
        fn occupancy_max_active_blocks(blocks: Out<'_, i32>, func: CUfunction, block_size: i32, dynamic_smem: usize) -> CuResult {
            occupancy::write_max_active_blocks(blocks, inputs(func)?, block_size, dynamic_smem)
        }

        /// The flag has no effect (no partitioned global caching to model).
        fn occupancy_max_active_blocks_with_flags(blocks: Out<'_, i32>, func: CUfunction, block_size: i32, dynamic_smem: usize, _flags: Flags<{ CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE }>) -> CuResult {
            occupancy::write_max_active_blocks(blocks, inputs(func)?, block_size, dynamic_smem)
        }

        unsafe fn occupancy_max_potential_block_size(min_grid: Out<'_, i32>, block_size: Out<'_, i32>, func: CUfunction, to_dynamic_smem: Option<CUoccupancyB2DSize>, dynamic_smem: usize, limit: i32) -> CuResult {
            // SAFETY: the caller's callback, as cuOccupancyMaxPotentialBlockSize requires.
            unsafe { occupancy::write_max_potential_block_size((min_grid, block_size), inputs(func)?, to_dynamic_smem, dynamic_smem, limit) }
        }

        unsafe fn occupancy_max_potential_block_size_with_flags(min_grid: Out<'_, i32>, block_size: Out<'_, i32>, func: CUfunction, to_dynamic_smem: Option<CUoccupancyB2DSize>, dynamic_smem: usize, limit: i32, _flags: Flags<{ CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE }>) -> CuResult {
            // SAFETY: the caller's callback, as cuOccupancyMaxPotentialBlockSize requires.
            unsafe { occupancy::write_max_potential_block_size((min_grid, block_size), inputs(func)?, to_dynamic_smem, dynamic_smem, limit) }
        }

        fn occupancy_available_dynamic_smem(bytes: Out<'_, usize>, func: CUfunction, num_blocks: i32, block_size: i32) -> CuResult {
            occupancy::write_available_dynamic_smem(bytes, inputs(func)?, num_blocks, block_size)
        }
    }
}
