//! Devices: count, identity (name, UUID, PCI ids), memory size and attributes. There is one device,
//! ordinal 0, described by the active [`DeviceProfile`].

use std::ffi::c_char;

use gpushare_driver_abi::checks::pci_bus_id_matches;
use gpushare_driver_abi::cuda_h::CUuuid;
use gpushare_driver_abi::surface::Out;
use gpushare_driver_abi::sys::write_c_string;

use crate::error::{CuError, CuResult};
use crate::profile::DeviceProfile;
use crate::state::{self, Driver};
use crate::sys::CUdevice;
use crate::CpuDevice;

/// The driver, and a check that `dev` names the one device.
pub(crate) fn device(dev: CUdevice) -> CuResult<&'static Driver> {
    let driver = state::driver()?;
    if dev != 0 {
        return Err(CuError::INVALID_DEVICE);
    }
    Ok(driver)
}

/// `CU_DEVICE_ATTRIBUTE_GPU_PCI_DEVICE_ID`: the 16-bit PCI device id (H200: 0x2335) above the
/// 16-bit vendor id (NVIDIA: 0x10de).
const PCI_ID: i64 = 0x2335_10DE;

/// Value of a `CUdevice_attribute` for `p`, or `INVALID_VALUE` for an unknown attribute.
pub fn attribute(p: &DeviceProfile, attrib: i32) -> CuResult<i32> {
    let v: i64 = match attrib {
        1 => 1024,                             // MAX_THREADS_PER_BLOCK
        2 | 3 => 1024,                         // MAX_BLOCK_DIM_X/Y
        4 => 64,                               // MAX_BLOCK_DIM_Z
        5 => i32::MAX as i64,                  // MAX_GRID_DIM_X
        6 | 7 => 65535,                        // MAX_GRID_DIM_Y/Z
        8 => p.shared_per_block as i64,        // MAX_SHARED_MEMORY_PER_BLOCK
        9 => 65536,                            // TOTAL_CONSTANT_MEMORY
        10 => 32,                              // WARP_SIZE
        11 => i32::MAX as i64,                 // MAX_PITCH
        12 => 65536,                           // MAX_REGISTERS_PER_BLOCK
        13 => p.clock_khz as i64,              // CLOCK_RATE
        14 => 512,                             // TEXTURE_ALIGNMENT
        15 => 1,                               // GPU_OVERLAP
        16 => p.sm_count as i64,               // MULTIPROCESSOR_COUNT
        17 => 0,                               // KERNEL_EXEC_TIMEOUT
        18 => 0,                               // INTEGRATED
        19 => 1,                               // CAN_MAP_HOST_MEMORY
        20 => 0,                               // COMPUTE_MODE (default)
        21..=29 | 42..=49 | 51..=74 | 77 => 0, // textures and surfaces: not modelled
        30 => 512,                             // SURFACE_ALIGNMENT
        31 => 1,                               // CONCURRENT_KERNELS
        32 => 1,                               // ECC_ENABLED
        33 => p.pci.1 as i64,                  // PCI_BUS_ID
        34 => p.pci.2 as i64,                  // PCI_DEVICE_ID
        35 => 0,                               // TCC_DRIVER
        36 => p.memory_clock_khz as i64,       // MEMORY_CLOCK_RATE
        37 => p.memory_bus_width as i64,       // GLOBAL_MEMORY_BUS_WIDTH
        38 => p.l2_cache_bytes as i64,         // L2_CACHE_SIZE
        39 => p.max_threads_per_sm as i64,     // MAX_THREADS_PER_MULTIPROCESSOR
        40 => p.async_engines as i64,          // ASYNC_ENGINE_COUNT
        41 => 1,                               // UNIFIED_ADDRESSING
        50 => p.pci.0 as i64,                  // PCI_DOMAIN_ID
        75 => p.compute_capability.0 as i64,   // COMPUTE_CAPABILITY_MAJOR
        76 => p.compute_capability.1 as i64,   // COMPUTE_CAPABILITY_MINOR
        78 => 1,                               // STREAM_PRIORITIES_SUPPORTED
        79 | 80 => 1,                          // GLOBAL/LOCAL_L1_CACHE_SUPPORTED
        81 => p.shared_per_sm as i64,          // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
        82 => 65536,                           // MAX_REGISTERS_PER_MULTIPROCESSOR
        83 => 1,                               // MANAGED_MEMORY (host-visible arena mappings)
        84 | 85 => 0,                          // MULTI_GPU_BOARD(_GROUP_ID)
        86 => 0,                               // HOST_NATIVE_ATOMIC_SUPPORTED
        87 => 2,                               // SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO
        88 => 0,                               // PAGEABLE_MEMORY_ACCESS
        89 => 1,                               // CONCURRENT_MANAGED_ACCESS
        90 => 1,                               // COMPUTE_PREEMPTION_SUPPORTED
        91 => 1,                               // CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM
        92..=94 => 0,                          // stream memory operations (v1)
        95 | 96 => 0,                          // COOPERATIVE_(MULTI_DEVICE_)LAUNCH
        97 => p.shared_per_block_optin as i64, // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        98 => 0,                               // CAN_FLUSH_REMOTE_WRITES
        99 => 1,                               // HOST_REGISTER_SUPPORTED
        100 | 101 => 0,                        // pageable access through host page tables
        102 => 1,                              // VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED
        103 => 1,                              // HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED
        104 | 105 => 0,                        // Win32 handles
        106 => p.max_blocks_per_sm as i64,     // MAX_BLOCKS_PER_MULTIPROCESSOR
        107 => 0,                              // GENERIC_COMPRESSION_SUPPORTED
        108 | 109 => 0,                        // persisting L2 / access policy window
        110 => 0,                              // GPU_DIRECT_RDMA_WITH_CUDA_VMM_SUPPORTED
        111 => 1024,                           // RESERVED_SHARED_MEMORY_PER_BLOCK
        112 => 0,                              // SPARSE_CUDA_ARRAY_SUPPORTED
        113 => 1,                              // READ_ONLY_HOST_REGISTER_SUPPORTED
        114 => 0,                              // TIMELINE_SEMAPHORE_INTEROP_SUPPORTED
        115 => 0,                              // MEMORY_POOLS_SUPPORTED
        116..=118 => 0,                        // GPUDirect RDMA
        119 => 0,                              // MEMPOOL_SUPPORTED_HANDLE_TYPES
        _ => recent_attribute(attrib).ok_or(CuError::INVALID_VALUE)?,
    };
    Ok(v as i32)
}

/// Attributes from CUDA 12 on (120 and above), none of which depends on the profile.
fn recent_attribute(attrib: i32) -> Option<i64> {
    Some(match attrib {
        120 => 0,        // CLUSTER_LAUNCH
        121..=125 => 0,  // deferred mapping, stream mem ops, DMA-BUF, IPC events
        126 => 1,        // MEM_SYNC_DOMAIN_COUNT
        127 | 128 => 0,  // tensor maps, fabric handles
        129 => 0,        // UNIFIED_FUNCTION_POINTERS
        130 => 0,        // NUMA_CONFIG: none
        131 | 134 => -1, // NUMA_ID, HOST_NUMA_ID
        132 | 133 => 0,  // MULTICAST_SUPPORTED, MPS_ENABLED
        135..=138 => 0,  // CIG, decompression
        139 => PCI_ID,   // GPU_PCI_DEVICE_ID (libcudart 13 asks at start-up)
        140 => 0,        // GPU_PCI_SUBSYSTEM_ID
        141..=143 => 0,  // host NUMA features
        144..=147 => 0,  // CUDA 13.0: host memory pools, host VMM, host DMA-BUF, partial atomics
        _ => return None,
    })
}

gpushare_driver_abi::implement! {
    impl Device for CpuDevice {
        /// One device.
        fn device_get_count(count: Out<'_, i32>) -> CuResult {
            state::driver()?;
            count.write(1)
        }

        /// Ordinal 0 only.
        fn device_get(dev: Out<'_, CUdevice>, ordinal: i32) -> CuResult {
            state::driver()?;
            if ordinal != 0 {
                return Err(CuError::INVALID_DEVICE);
            }
            dev.write(0)
        }

        /// The profile's name.
        unsafe fn device_get_name(name: *mut c_char, len: i32, dev: CUdevice) -> CuResult {
            let d = device(dev)?;
            // SAFETY: the caller's buffer holds `len` bytes.
            unsafe { write_c_string(name, len, d.profile.name) }
        }

        /// The profile's memory (capped by the host's, see `profile`).
        fn device_total_mem(bytes: Out<'_, usize>, dev: CUdevice) -> CuResult {
            bytes.write(device(dev)?.profile.total_memory as usize)
        }

        /// From the profile; an unknown attribute is `INVALID_VALUE`.
        fn device_get_attribute(value: Out<'_, i32>, attrib: i32, dev: CUdevice) -> CuResult {
            let d = device(dev)?;
            let v = attribute(&d.profile, attrib).inspect_err(|_| {
                tracing::debug!(target: "gpushare::api", "cuDeviceGetAttribute: unknown attribute {attrib}");
            })?;
            value.write(v)
        }

        /// From the profile.
        fn device_compute_capability(major: Out<'_, i32>, minor: Out<'_, i32>, dev: CUdevice) -> CuResult {
            let (ma, mi) = device(dev)?.profile.compute_capability;
            major.write(ma as i32)?;
            minor.write(mi as i32)
        }

        /// The profile's UUID.
        fn device_get_uuid(uuid: Out<'_, CUuuid>, dev: CUdevice) -> CuResult {
            uuid.write(CUuuid { bytes: device(dev)?.profile.uuid })
        }

        /// `"dddd:bb:dd.0"`.
        unsafe fn device_get_pci_bus_id(bus_id: *mut c_char, len: i32, dev: CUdevice) -> CuResult {
            let d = device(dev)?;
            // SAFETY: the caller's buffer holds `len` bytes.
            unsafe { write_c_string(bus_id, len, &d.profile.pci_bus_id()) }
        }

        /// Accepts `domain:bus:device.function` and `bus:device.function`, case-insensitive.
        fn device_get_by_pci_bus_id(dev: Out<'_, CUdevice>, bus_id: &str) -> CuResult {
            let d = state::driver()?;
            if !pci_bus_id_matches(bus_id, &d.profile.pci_bus_id()) {
                return Err(CuError::INVALID_DEVICE);
            }
            dev.write(0)
        }

        /// One device, so never.
        fn device_can_access_peer(can: Out<'_, i32>, dev: CUdevice, peer: CUdevice) -> CuResult {
            device(dev)?;
            device(peer)?;
            can.write(0)
        }

        /// There is no peer; a device is not its own peer.
        fn device_get_p2p_attribute(_value: Out<'_, i32>, _attrib: i32, src: CUdevice, dst: CUdevice) -> CuResult {
            device(src)?;
            device(dst)?;
            Err(CuError::INVALID_DEVICE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_follow_the_profile() {
        let p = DeviceProfile::h200();
        assert_eq!(attribute(&p, 16).unwrap(), 132);
        assert_eq!(attribute(&p, 75).unwrap(), 9);
        assert_eq!(attribute(&p, 76).unwrap(), 0);
        assert_eq!(attribute(&p, 10).unwrap(), 32);
        assert_eq!(attribute(&p, 9999), Err(CuError::INVALID_VALUE));
        assert_eq!(attribute(&DeviceProfile::small(), 16).unwrap(), 4);
    }
}
