//! Virtual memory management: `cuMemAddressReserve`/`Free`, `cuMemCreate`/`Release`,
//! `cuMemMap`/`Unmap`, `cuMemSetAccess`/`GetAccess`, `cuMemExportToShareableHandle`,
//! `cuMemImportFromShareableHandle`, `cuMemGetAllocationGranularity`,
//! `cuMemGetAllocationPropertiesFromHandle`, `cuMemRetainAllocationHandle`.
//!
//! Supported: pinned device allocations on device 0, exportable as POSIX file descriptors
//! (handle type 1) or not at all (0); Win32 and fabric handles are `NOT_SUPPORTED`. VMM objects
//! are process-wide: they are not owned by a context. See [`crate::memory`] for the mechanics.

use std::ffi::c_void;
use std::os::fd::IntoRawFd;

use crate::error::{CuError, CuResult};
use crate::memory::GRANULARITY;
use crate::state;
use crate::sys::CUdeviceptr;
use crate::CpuDevice;
use gpushare_driver_abi::checks;
use gpushare_driver_abi::cuda_h::CUmemGenericAllocationHandle;
pub use gpushare_driver_abi::cuda_h::{
    CUmemAccessDesc, CUmemAllocFlags, CUmemAllocationProp, CUmemLocation,
};
use gpushare_driver_abi::cuda_h::{
    ALLOCATION_TYPE_PINNED, HANDLE_POSIX_FD, HANDLE_UNSUPPORTED, LOCATION_DEVICE,
};
use gpushare_driver_abi::surface::{In, Out};

/// The CPU device has one device, ordinal 0.
fn has_device(dev: i32) -> bool {
    dev == 0
}

gpushare_driver_abi::implement! {
    impl Vmm for CpuDevice {
        /// 2 MiB, minimum and recommended.
        fn mem_get_allocation_granularity(granularity: Out<'_, usize>, prop: In<CUmemAllocationProp>, option: i32) -> CuResult {
            state::driver()?;
            checks::granularity_option(option)?;
            checks::allocation_prop(&prop, has_device)?;
            granularity.write(GRANULARITY as usize)
        }

        /// `addr` is a hint; flags must be 0.
        fn mem_address_reserve(ptr: Out<'_, CUdeviceptr>, size: usize, alignment: usize, addr: CUdeviceptr, flags: u64) -> CuResult {
            let d = state::driver()?;
            if flags != 0 {
                return Err(CuError::INVALID_VALUE);
            }
            ptr.write(d.memory.reserve(state::current_handle(), size as u64, alignment as u64, addr)?)
        }

        /// Exactly a reservation, with nothing mapped in it.
        fn mem_address_free(ptr: CUdeviceptr, size: usize) -> CuResult {
            state::driver()?.memory.address_free(ptr, size as u64)
        }

        /// Flags must be 0.
        fn mem_create(handle: Out<'_, CUmemGenericAllocationHandle>, size: usize, prop: In<CUmemAllocationProp>, flags: u64) -> CuResult {
            let d = state::driver()?;
            if flags != 0 {
                return Err(CuError::INVALID_VALUE);
            }
            let types = checks::allocation_prop(&prop, has_device)?;
            handle.write(d.memory.create(size as u64, types)?)
        }

        fn mem_release(handle: CUmemGenericAllocationHandle) -> CuResult {
            state::driver()?.memory.release(handle)
        }

        /// Offset and flags must be 0; no access until `cuMemSetAccess`.
        fn mem_map(ptr: CUdeviceptr, size: usize, offset: usize, handle: CUmemGenericAllocationHandle, flags: u64) -> CuResult {
            let d = state::driver()?;
            if flags != 0 {
                return Err(CuError::INVALID_VALUE);
            }
            d.memory.map(state::current_handle(), ptr, size as u64, offset as u64, handle)
        }

        /// Whole mappings only; waits for the current context's work first.
        fn mem_unmap(ptr: CUdeviceptr, size: usize) -> CuResult {
            let d = state::driver()?;
            if let Ok((_, ctx)) = state::current_unchecked() {
                let _ = d.exec.synchronize_context(&ctx);
            }
            d.memory.unmap(ptr, size as u64)
        }

        /// Device 0 with PROT_NONE (0), PROT_READ (1) or PROT_READWRITE (3).
        unsafe fn mem_set_access(ptr: CUdeviceptr, size: usize, desc: *const CUmemAccessDesc, count: usize) -> CuResult {
            let d = state::driver()?;
            // SAFETY: the caller passes NULL or `count` descriptors.
            let (perm, _) = unsafe { checks::access_descs(desc, count, has_device) }?;
            d.memory.set_access(ptr, size as u64, perm)
        }

        /// The device's access; host locations report none.
        fn mem_get_access(flags: Out<'_, u64>, location: In<CUmemLocation>, ptr: CUdeviceptr) -> CuResult {
            let d = state::driver()?;
            let perm = d.memory.access(ptr)?;
            flags.write(checks::location_access(&location, has_device, perm)?)
        }

        /// POSIX file descriptors only (an `int` the caller owns).
        unsafe fn mem_export_to_shareable_handle(shareable: *mut c_void, handle: CUmemGenericAllocationHandle, handle_type: i32, flags: u64) -> CuResult {
            let d = state::driver()?;
            if shareable.is_null() || flags != 0 {
                return Err(CuError::INVALID_VALUE);
            }
            match handle_type {
                HANDLE_POSIX_FD => {
                    let fd = d.memory.export_fd(handle)?;
                    // SAFETY: for POSIX_FILE_DESCRIPTOR the caller passes a pointer to an int.
                    unsafe { shareable.cast::<i32>().write_unaligned(fd.into_raw_fd()) };
                    Ok(())
                }
                t if t & HANDLE_UNSUPPORTED != 0 => {
                    tracing::warn!("cuMemExportToShareableHandle: handle type {t:#x} is not supported by the CPU device");
                    Err(CuError::NOT_SUPPORTED)
                }
                _ => Err(CuError::INVALID_VALUE),
            }
        }

        /// `os_handle` is the file descriptor cast to a pointer; the caller keeps its descriptor.
        fn mem_import_from_shareable_handle(handle: Out<'_, CUmemGenericAllocationHandle>, os_handle: *mut c_void, handle_type: i32) -> CuResult {
            let d = state::driver()?;
            match handle_type {
                HANDLE_POSIX_FD => {
                    let fd = i32::try_from(os_handle as usize).map_err(|_| CuError::INVALID_VALUE)?;
                    handle.write(d.memory.import_fd(fd)?)
                }
                t if t & HANDLE_UNSUPPORTED != 0 => {
                    tracing::warn!("cuMemImportFromShareableHandle: handle type {t:#x} is not supported by the CPU device");
                    Err(CuError::NOT_SUPPORTED)
                }
                _ => Err(CuError::INVALID_VALUE),
            }
        }

        fn mem_get_allocation_properties_from_handle(prop: Out<'_, CUmemAllocationProp>, handle: CUmemGenericAllocationHandle) -> CuResult {
            let d = state::driver()?;
            let (_, types) = d.memory.handle_properties(handle)?;
            prop.write(CUmemAllocationProp {
                type_: ALLOCATION_TYPE_PINNED,
                requested_handle_types: types as i32,
                location: CUmemLocation { type_: LOCATION_DEVICE, id: 0 },
                win32_handle_meta_data: std::ptr::null_mut(),
                alloc_flags: CUmemAllocFlags::default(),
            })
        }

        /// The handle mapped at `addr`, with a reference to release.
        fn mem_retain_allocation_handle(handle: Out<'_, CUmemGenericAllocationHandle>, addr: *mut c_void) -> CuResult {
            let d = state::driver()?;
            handle.write(d.memory.retain_handle(addr as u64)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{align_of, offset_of, size_of};

    use super::*;

    /// Layouts as cuda.h 12.9 defines them (checked with gcc: sizeof/offsetof on x86-64 Linux).
    #[test]
    fn struct_layouts_match_cuda_h() {
        assert_eq!(size_of::<CUmemLocation>(), 8);
        assert_eq!(offset_of!(CUmemLocation, id), 4);
        assert_eq!(
            (size_of::<CUmemAllocFlags>(), align_of::<CUmemAllocFlags>()),
            (8, 2)
        );
        assert_eq!(offset_of!(CUmemAllocFlags, gpu_direct_rdma_capable), 1);
        assert_eq!(offset_of!(CUmemAllocFlags, usage), 2);
        assert_eq!(offset_of!(CUmemAllocFlags, reserved), 4);
        assert_eq!(
            (
                size_of::<CUmemAllocationProp>(),
                align_of::<CUmemAllocationProp>()
            ),
            (32, 8)
        );
        assert_eq!(offset_of!(CUmemAllocationProp, requested_handle_types), 4);
        assert_eq!(offset_of!(CUmemAllocationProp, location), 8);
        assert_eq!(offset_of!(CUmemAllocationProp, win32_handle_meta_data), 16);
        assert_eq!(offset_of!(CUmemAllocationProp, alloc_flags), 24);
        assert_eq!(
            (size_of::<CUmemAccessDesc>(), align_of::<CUmemAccessDesc>()),
            (12, 4)
        );
        assert_eq!(offset_of!(CUmemAccessDesc, flags), 8);
    }

    /// The same layouts measured by a C compiler against the real header, where both exist.
    #[test]
    fn struct_layouts_match_the_c_compiler() {
        let include = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../.deps/cuda/nvidia/cuda_runtime/include"
        );
        if !std::path::Path::new(include).join("cuda.h").exists() {
            eprintln!("skipped: no cuda.h (run scripts/setup-cuda-deps.sh)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("gpushare-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("layout.c");
        std::fs::write(&src, concat!(
            "#include <stdio.h>\n#include <stddef.h>\n#include \"cuda.h\"\n",
            "int main(void) { printf(\"%zu %zu %zu %zu %zu %zu %zu %zu %zu\",\n",
            " sizeof(CUmemLocation), sizeof(CUmemAllocationProp), _Alignof(CUmemAllocationProp),\n",
            " offsetof(CUmemAllocationProp, location), offsetof(CUmemAllocationProp, win32HandleMetaData),\n",
            " offsetof(CUmemAllocationProp, allocFlags), offsetof(CUmemAllocationProp, allocFlags.usage),\n",
            " sizeof(CUmemAccessDesc), offsetof(CUmemAccessDesc, flags)); return 0; }\n",
        )).unwrap();
        let exe = dir.join("layout");
        let built = std::process::Command::new("cc")
            .args(["-I", include, "-o"])
            .arg(&exe)
            .arg(&src)
            .status();
        if !built.is_ok_and(|s| s.success()) {
            eprintln!("skipped: no working C compiler");
            return;
        }
        let out = std::process::Command::new(&exe).output().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let rust = [
            size_of::<CUmemLocation>(),
            size_of::<CUmemAllocationProp>(),
            align_of::<CUmemAllocationProp>(),
            offset_of!(CUmemAllocationProp, location),
            offset_of!(CUmemAllocationProp, win32_handle_meta_data),
            offset_of!(CUmemAllocationProp, alloc_flags),
            offset_of!(CUmemAllocationProp, alloc_flags) + offset_of!(CUmemAllocFlags, usage),
            size_of::<CUmemAccessDesc>(),
            offset_of!(CUmemAccessDesc, flags),
        ]
        .map(|v| v.to_string())
        .join(" ");
        assert_eq!(String::from_utf8_lossy(&out.stdout), rust);
    }
}
