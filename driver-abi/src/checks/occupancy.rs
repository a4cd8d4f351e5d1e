//! The occupancy calculator behind `cuOccupancy*`, written once for both libraries: how many
//! blocks of a kernel one SM holds, from the kernel's attributes ([`KernelUsage`]) and the
//! device's limits ([`SmLimits`], what `cuDeviceGetAttribute` reports).
//!
//! The rules are those of NVIDIA's occupancy calculator for compute capability 8.x/9.x; the
//! resident blocks per SM are the smallest of four limits:
//! - **warps**: `max_threads_per_sm / warp_size` warps, a block taking `ceil(threads / warp)`;
//! - **blocks**: `max_blocks_per_sm`;
//! - **registers**: allocated per warp, `regs_per_thread × warp_size` rounded up to
//!   [`REG_ALLOC_UNIT`]; the SM's registers are split into [`SUB_PARTITIONS`] partitions, each
//!   holding whole warps; a block whose registers (its warps rounded up to the partitions) exceed
//!   the per-block register file cannot launch;
//! - **shared memory**: static + dynamic + the driver's reserved bytes per block, rounded up to
//!   [`SMEM_ALLOC_UNIT`], against the SM's shared memory; a block above the per-block limit (the
//!   default 48 KiB, or up to the opt-in limit when the kernel's
//!   `MAX_DYNAMIC_SHARED_SIZE_BYTES` was raised) cannot launch.
//!
//! Local memory does not limit occupancy (as in NVIDIA's calculator). The L1/shared carveout is
//! not modelled: the SM's whole shared memory is available. `CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE`
//! has no effect (no partitioned global caching on these architectures).

use crate::cuda_h::CUoccupancyB2DSize;
use crate::error::{CuError, CuResult};

/// Registers are allocated to a warp in units of this many.
pub const REG_ALLOC_UNIT: u32 = 256;
/// Register file partitions per SM.
pub const SUB_PARTITIONS: u32 = 4;
/// Shared memory is allocated to a block in units of this many bytes.
pub const SMEM_ALLOC_UNIT: u32 = 128;
/// Registers a thread may use at most.
pub const MAX_REGS_PER_THREAD: u32 = 255;

/// What the device offers per SM and per block (device attributes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmLimits {
    /// `CU_DEVICE_ATTRIBUTE_WARP_SIZE`
    pub warp_size: u32,
    /// `CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK`
    pub max_threads_per_block: u32,
    /// `CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR`
    pub max_threads_per_sm: u32,
    /// `CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR`
    pub max_blocks_per_sm: u32,
    /// `CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR`
    pub regs_per_sm: u32,
    /// `CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK`
    pub regs_per_block: u32,
    /// `CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR`
    pub shared_per_sm: u32,
    /// `CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK` (the default per-block limit)
    pub shared_per_block: u32,
    /// `CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`
    pub shared_per_block_optin: u32,
    /// `CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK`
    pub reserved_shared_per_block: u32,
    /// `CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT`
    pub sm_count: u32,
}

impl SmLimits {
    /// The limits from a device-attribute lookup (`attr(CU_DEVICE_ATTRIBUTE_*)`).
    pub fn from_attributes(attr: impl Fn(i32) -> CuResult<i32>) -> CuResult<SmLimits> {
        let get = |a: i32| attr(a).map(|v| u32::try_from(v).unwrap_or(0));
        Ok(SmLimits {
            warp_size: get(10)?.max(1),
            max_threads_per_block: get(1)?,
            max_threads_per_sm: get(39)?,
            max_blocks_per_sm: get(106)?,
            regs_per_sm: get(82)?,
            regs_per_block: get(12)?,
            shared_per_sm: get(81)?,
            shared_per_block: get(8)?,
            shared_per_block_optin: get(97)?,
            reserved_shared_per_block: get(111)?,
            sm_count: get(16)?,
        })
    }
}

/// What a kernel uses (function attributes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelUsage {
    /// `CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK`
    pub max_threads_per_block: u32,
    /// `CU_FUNC_ATTRIBUTE_NUM_REGS`
    pub regs_per_thread: u32,
    /// `CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES`
    pub static_shared: u32,
    /// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`
    pub max_dynamic_shared: u32,
}

fn round_up(x: u64, unit: u64) -> u64 {
    x.div_ceil(unit) * unit
}

/// Blocks per SM the registers allow.
fn regs_limit(sm: &SmLimits, k: &KernelUsage, warps: u64) -> u64 {
    if k.regs_per_thread > MAX_REGS_PER_THREAD {
        return 0;
    }
    let per_warp = round_up(
        u64::from(k.regs_per_thread) * u64::from(sm.warp_size),
        u64::from(REG_ALLOC_UNIT),
    );
    if per_warp == 0 {
        return u64::MAX;
    }
    let parts = u64::from(SUB_PARTITIONS);
    // The hardware's per-block check assumes every partition gets as many warps.
    let assumed = per_warp * round_up(warps, parts);
    if assumed > u64::from(sm.regs_per_block) || per_warp * warps > u64::from(sm.regs_per_block) {
        return 0;
    }
    let warps_per_part = u64::from(sm.regs_per_sm) / parts / per_warp;
    warps_per_part * parts / warps
}

/// Blocks per SM the shared memory allows with `dynamic` bytes per block.
fn smem_limit(sm: &SmLimits, k: &KernelUsage, dynamic: u64) -> u64 {
    let reserved = u64::from(sm.reserved_shared_per_block);
    let static_ = u64::from(k.static_shared);
    let max_dynamic = u64::from(k.max_dynamic_shared);
    // The per-block limit: the default one, or what the kernel opted in to (capped by the device).
    let per_block = (static_ + max_dynamic)
        .max(u64::from(sm.shared_per_block))
        .min(u64::from(sm.shared_per_block_optin))
        + reserved;
    let allocated = round_up(static_ + reserved + dynamic, u64::from(SMEM_ALLOC_UNIT));
    if dynamic > max_dynamic || allocated > per_block {
        return 0;
    }
    match allocated {
        0 => u64::MAX,
        n => u64::from(sm.shared_per_sm) / n,
    }
}

/// Resident blocks per SM of `block_size` threads with `dynamic` bytes of dynamic shared memory
/// each (`cuOccupancyMaxActiveBlocksPerMultiprocessor`): 0 when such a block cannot run at all
/// (too many threads, registers or shared memory). A block size of 0 or less is `INVALID_VALUE`.
pub fn max_active_blocks(
    sm: &SmLimits,
    k: &KernelUsage,
    block_size: i32,
    dynamic: u64,
) -> CuResult<u32> {
    let threads = u32::try_from(block_size)
        .ok()
        .filter(|&t| t > 0)
        .ok_or(CuError::INVALID_VALUE)?;
    if threads > sm.max_threads_per_block.min(k.max_threads_per_block) {
        return Ok(0);
    }
    let warps = u64::from(threads.div_ceil(sm.warp_size));
    let by_warps = u64::from(sm.max_threads_per_sm / sm.warp_size) / warps;
    let limit = by_warps
        .min(u64::from(sm.max_blocks_per_sm))
        .min(regs_limit(sm, k, warps))
        .min(smem_limit(sm, k, dynamic));
    Ok(u32::try_from(limit).unwrap_or(u32::MAX))
}

/// `cuOccupancyMaxPotentialBlockSize`'s answer: the block size with the most resident threads
/// per SM (the largest such, trying multiples of the warp size downwards from the limit), and
/// the grid that fills every SM with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PotentialBlockSize {
    /// The minimum grid size for full occupancy: blocks per SM × SMs.
    pub min_grid_size: u32,
    /// The block size (0 when no block size can run).
    pub block_size: u32,
}

/// `cuOccupancyMaxPotentialBlockSize`: `block_size_limit` 0 means the device's and kernel's
/// limit; `dynamic_for(block_size)` is the dynamic shared memory a block of that size needs (the
/// caller's callback, or a constant). A negative limit is `INVALID_VALUE`.
pub fn max_potential_block_size(
    sm: &SmLimits,
    k: &KernelUsage,
    block_size_limit: i32,
    mut dynamic_for: impl FnMut(u32) -> u64,
) -> CuResult<PotentialBlockSize> {
    let limit = u32::try_from(block_size_limit).map_err(|_| CuError::INVALID_VALUE)?;
    let max = sm.max_threads_per_block.min(k.max_threads_per_block);
    let limit = if limit == 0 { max } else { limit.min(max) };
    let mut best = PotentialBlockSize {
        min_grid_size: 0,
        block_size: 0,
    };
    let mut best_threads = 0u64;
    let mut aligned = limit.next_multiple_of(sm.warp_size);
    while aligned > 0 {
        let size = aligned.min(limit);
        let blocks = max_active_blocks(sm, k, size as i32, dynamic_for(size))?;
        let threads = u64::from(size) * u64::from(blocks);
        if threads > best_threads {
            best_threads = threads;
            best = PotentialBlockSize {
                min_grid_size: blocks.saturating_mul(sm.sm_count),
                block_size: size,
            };
        }
        if best_threads == u64::from(sm.max_threads_per_sm) {
            break;
        }
        aligned -= sm.warp_size;
    }
    Ok(best)
}

/// [`max_potential_block_size`] with the C caller's `blockSizeToDynamicSMemSize` (NULL: `dynamic`
/// bytes for every block size).
///
/// # Safety
/// `to_dynamic` must be NULL or a function that may be called with any block size, as
/// `cuOccupancyMaxPotentialBlockSize` requires of its caller.
pub unsafe fn max_potential_block_size_with(
    sm: &SmLimits,
    k: &KernelUsage,
    limit: i32,
    to_dynamic: Option<CUoccupancyB2DSize>,
    dynamic: usize,
) -> CuResult<PotentialBlockSize> {
    max_potential_block_size(sm, k, limit, |size| match to_dynamic {
        // SAFETY: the caller's callback, callable per the contract; sizes are at most the block
        // size limit, so they fit in an int.
        Some(f) => (unsafe { f(size as i32) }) as u64,
        None => dynamic as u64,
    })
}

/// `cuOccupancyAvailableDynamicSMemPerBlock`: the most dynamic shared memory a block of
/// `block_size` threads may use so that `num_blocks` of them fit on one SM. `INVALID_VALUE` when
/// `num_blocks` is not positive or more than that many blocks cannot be resident anyway.
pub fn available_dynamic_smem(
    sm: &SmLimits,
    k: &KernelUsage,
    num_blocks: i32,
    block_size: i32,
) -> CuResult<u64> {
    let blocks = u32::try_from(num_blocks)
        .ok()
        .filter(|&b| b > 0)
        .ok_or(CuError::INVALID_VALUE)?;
    if max_active_blocks(sm, k, block_size, 0)? < blocks {
        return Err(CuError::INVALID_VALUE);
    }
    let reserved = u64::from(sm.reserved_shared_per_block);
    let per_block_limit = u64::from(sm.shared_per_block_optin) + reserved;
    let unit = u64::from(SMEM_ALLOC_UNIT);
    let share =
        (u64::from(sm.shared_per_sm) / u64::from(blocks) / unit * unit).min(per_block_limit);
    Ok(share
        .saturating_sub(reserved)
        .saturating_sub(u64::from(k.static_shared))
        .min(u64::from(k.max_dynamic_shared)))
}

/// The device's limits and a kernel's usage: what every occupancy query starts from.
pub type Inputs = (SmLimits, KernelUsage);

/// `cuOccupancyMaxActiveBlocksPerMultiprocessor(WithFlags)` into the caller's out-pointer.
pub fn write_max_active_blocks(
    blocks: crate::surface::Out<'_, i32>,
    (sm, k): Inputs,
    block_size: i32,
    dynamic: usize,
) -> CuResult {
    let n = max_active_blocks(&sm, &k, block_size, dynamic as u64)?;
    blocks.write(i32::try_from(n).unwrap_or(i32::MAX))
}

/// `cuOccupancyMaxPotentialBlockSize(WithFlags)` into the caller's out-pointers
/// (minimum grid size, block size).
///
/// # Safety
/// `to_dynamic` is NULL or callable with a block size (the C caller's contract).
pub unsafe fn write_max_potential_block_size(
    (min_grid, block): (crate::surface::Out<'_, i32>, crate::surface::Out<'_, i32>),
    (sm, k): Inputs,
    to_dynamic: Option<CUoccupancyB2DSize>,
    dynamic: usize,
    limit: i32,
) -> CuResult {
    // SAFETY: the caller's callback, under the same contract.
    let p = unsafe { max_potential_block_size_with(&sm, &k, limit, to_dynamic, dynamic) }?;
    min_grid.write(i32::try_from(p.min_grid_size).unwrap_or(i32::MAX))?;
    block.write(p.block_size as i32)
}

/// `cuOccupancyAvailableDynamicSMemPerBlock` into the caller's out-pointer.
pub fn write_available_dynamic_smem(
    bytes: crate::surface::Out<'_, usize>,
    (sm, k): Inputs,
    num_blocks: i32,
    block_size: i32,
) -> CuResult {
    let n = available_dynamic_smem(&sm, &k, num_blocks, block_size)?;
    bytes.write(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An H100/H200 SM (compute capability 9.0).
    const H100: SmLimits = SmLimits {
        warp_size: 32,
        max_threads_per_block: 1024,
        max_threads_per_sm: 2048,
        max_blocks_per_sm: 32,
        regs_per_sm: 65536,
        regs_per_block: 65536,
        shared_per_sm: 228 * 1024,
        shared_per_block: 48 * 1024,
        shared_per_block_optin: 227 * 1024,
        reserved_shared_per_block: 1024,
        sm_count: 132,
    };

    fn kernel(regs: u32, static_shared: u32) -> KernelUsage {
        KernelUsage {
            max_threads_per_block: 1024,
            regs_per_thread: regs,
            static_shared,
            max_dynamic_shared: 48 * 1024 - static_shared,
        }
    }

    #[test]
    fn limited_by_threads_and_blocks() {
        let k = kernel(16, 0);
        // 2048 threads per SM: two blocks of 1024, eight of 256.
        assert_eq!(max_active_blocks(&H100, &k, 1024, 0), Ok(2));
        assert_eq!(max_active_blocks(&H100, &k, 256, 0), Ok(8));
        // 33 threads take two warps: 64 warps / 2.
        assert_eq!(max_active_blocks(&H100, &k, 33, 0), Ok(32));
        // 32-thread blocks: 64 by warps, but 32 blocks per SM at most.
        assert_eq!(max_active_blocks(&H100, &k, 32, 0), Ok(32));
        assert_eq!(max_active_blocks(&H100, &k, 1025, 0), Ok(0));
        assert_eq!(
            max_active_blocks(&H100, &k, 0, 0),
            Err(CuError::INVALID_VALUE)
        );
    }

    #[test]
    fn limited_by_registers() {
        // 64 regs × 32 = 2048 per warp; 16384 per partition → 8 warps each, 32 per SM:
        // 256-thread blocks (8 warps) → 4.
        assert_eq!(max_active_blocks(&H100, &kernel(64, 0), 256, 0), Ok(4));
        // 40 regs × 32 = 1280 per warp (a multiple of 256); 16384 / 1280 = 12 warps per
        // partition, 48 per SM; 128-thread blocks (4 warps) → 12.
        assert_eq!(max_active_blocks(&H100, &kernel(40, 0), 128, 0), Ok(12));
        // 33 regs → 1056 rounded up to 1280: the same.
        assert_eq!(max_active_blocks(&H100, &kernel(33, 0), 128, 0), Ok(12));
        // 255 regs → 8160 → 8192 per warp: 1024 threads (32 warps) need 262144 > 65536.
        assert_eq!(max_active_blocks(&H100, &kernel(255, 0), 1024, 0), Ok(0));
        // ... 256 threads (8 warps) need 65536: one block.
        assert_eq!(max_active_blocks(&H100, &kernel(255, 0), 256, 0), Ok(1));
        assert_eq!(max_active_blocks(&H100, &kernel(256, 0), 32, 0), Ok(0));
    }

    #[test]
    fn limited_by_shared_memory() {
        // 16 KiB static + 1 KiB reserved = 17408 per block: 233472 / 17408 = 13.
        assert_eq!(
            max_active_blocks(&H100, &kernel(16, 16 * 1024), 64, 0),
            Ok(13)
        );
        // 10000 dynamic + 1024 reserved = 11024 → 11136 (128-byte units): 20 blocks.
        assert_eq!(max_active_blocks(&H100, &kernel(16, 0), 64, 10_000), Ok(20));
        // Above the default 48 KiB per block without opting in: cannot run.
        assert_eq!(
            max_active_blocks(&H100, &kernel(16, 0), 64, 48 * 1024 + 1),
            Ok(0)
        );
        // Opted in to 100 KiB: two blocks of 100 KiB + 1 KiB.
        let mut k = kernel(16, 0);
        k.max_dynamic_shared = 100 * 1024;
        assert_eq!(max_active_blocks(&H100, &k, 64, 100 * 1024), Ok(2));
    }

    #[test]
    fn potential_block_size() {
        // Nothing limits but threads: the largest block that fills the SM.
        let k = kernel(16, 0);
        let p = max_potential_block_size(&H100, &k, 0, |_| 0).unwrap();
        assert_eq!(
            p,
            PotentialBlockSize {
                min_grid_size: 2 * 132,
                block_size: 1024
            }
        );
        // A limit that is not a multiple of the warp size is tried as given first (100: 4 warps,
        // 16 blocks, 1600 threads), then 96 (21 blocks, 2016), then 64 (32 blocks: full).
        let mut asked = Vec::new();
        let p = max_potential_block_size(&H100, &k, 100, |b| {
            asked.push(b);
            0
        })
        .unwrap();
        assert_eq!(asked, [100, 96, 64]);
        assert_eq!(
            p,
            PotentialBlockSize {
                min_grid_size: 32 * 132,
                block_size: 64
            }
        );
        // 64 regs: 1024 threads need 65536 registers, one block (1024 threads); 512-thread
        // blocks also give 1024 threads per SM (2 blocks): the first (largest) one wins.
        let p = max_potential_block_size(&H100, &kernel(64, 0), 0, |_| 0).unwrap();
        assert_eq!(p.block_size, 1024);
        assert_eq!(p.min_grid_size, 132);
        // A callback asking 64 bytes per thread: 1024 threads want 64 KiB (above 48 KiB: none);
        // 672 want 42 KiB (5 blocks by memory, 3 by warps: 2016 threads); 512 want 32 KiB +
        // 1 KiB reserved (6 blocks by memory, 4 by warps: 2048 threads, the SM full) → 512.
        let mut asked = Vec::new();
        let p = max_potential_block_size(&H100, &k, 0, |b| {
            asked.push(b);
            u64::from(b) * 64
        })
        .unwrap();
        assert_eq!(p.block_size, 512);
        assert_eq!(p.min_grid_size, 4 * 132);
        assert_eq!(asked[0], 1024, "the callback is asked for each size tried");
        assert_eq!(
            max_potential_block_size(&H100, &k, -1, |_| 0),
            Err(CuError::INVALID_VALUE)
        );
    }

    #[test]
    fn available_dynamic_shared_memory() {
        let k = kernel(16, 0);
        // One block: 48 KiB (the kernel's default dynamic limit).
        assert_eq!(available_dynamic_smem(&H100, &k, 1, 128), Ok(48 * 1024));
        // Eight blocks: 233472 / 8 = 29184 (a multiple of 128), less 1 KiB reserved.
        assert_eq!(available_dynamic_smem(&H100, &k, 8, 128), Ok(29184 - 1024));
        // With 4 KiB static: 4 KiB less.
        let k4 = kernel(16, 4096);
        assert_eq!(
            available_dynamic_smem(&H100, &k4, 8, 128),
            Ok(29184 - 1024 - 4096)
        );
        // Three 1024-thread blocks cannot be resident.
        assert_eq!(
            available_dynamic_smem(&H100, &k, 3, 1024),
            Err(CuError::INVALID_VALUE)
        );
        assert_eq!(
            available_dynamic_smem(&H100, &k, 0, 128),
            Err(CuError::INVALID_VALUE)
        );
    }
}
