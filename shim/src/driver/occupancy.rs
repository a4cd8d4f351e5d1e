//! The occupancy calculator (`cuOccupancy*`), local: the shared rules of
//! [`gpushare_driver_abi::checks::occupancy`] over the device snapshot's attributes and the
//! kernel's (its launch limits cached at lookup; its register count asked of the broker, as
//! `cuFuncGetAttribute` does).

use std::sync::atomic::Ordering;

use gpushare_driver_abi::checks::occupancy::{self, KernelUsage, SmLimits};
use gpushare_driver_abi::surface::prelude::*;

use super::module::function_attribute;
use crate::runtime::{current, runtime};
use crate::Shim;

/// `CU_FUNC_ATTRIBUTE_NUM_REGS`
const ATTR_NUM_REGS: i32 = 4;

/// The device's limits and the kernel's usage for `func` (on the current context's device).
fn inputs(func: CUfunction) -> CuResult<occupancy::Inputs> {
    let rt = runtime()?;
    let dev = rt.device(current()?.device)?;
    rt.sticky()?;
    let f = rt.function(func as usize as u64)?;
    let sm = SmLimits::from_attributes(|a| dev.attribute(a).ok_or(CuError::INVALID_VALUE))?;
    let usage = KernelUsage {
        max_threads_per_block: f.max_threads,
        regs_per_thread: function_attribute(rt, f.handle, ATTR_NUM_REGS)?.max(0) as u32,
        static_shared: f.static_shared,
        max_dynamic_shared: f.max_dynamic_shared.load(Ordering::Relaxed),
    };
    Ok((sm, usage))
}

gpushare_driver_abi::implement! {
    impl Occupancy for Shim {
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
