//! What both driver libraries do identically with a caller's arguments, written once: the
//! argument checks of contexts, configs, PCI bus ids, pitched allocations and VMM descriptors
//! (here), and in the submodules the geometry of copies and memsets ([`copy`]), kernel argument
//! packing and launch limits ([`launch`]), the deprecated execution control's per-function state
//! ([`legacy`]), managed-memory hints ([`managed`]), the occupancy calculator ([`occupancy`]), pointer-attribute values by C width
//! ([`pointer`](mod@pointer)) and the JIT log options of module loads ([`jit`]).
//!
//! A check answers with the `CUresult` CUDA gives and logs why (target `gpushare::api`, never
//! unwinding into the caller); what a library must decide itself (which devices exist, where a
//! pointer lives) it passes in.

use std::ffi::c_void;

use crate::cuda_h::{
    CUmemAccessDesc, CUmemAllocationProp, CUmemLocation, CuLaunchConfig, ALLOCATION_TYPE_PINNED,
    CTX_FLAGS_MASK, HANDLE_POSIX_FD, HANDLE_UNSUPPORTED, LOCATION_DEVICE, LOCATION_HOST_TYPES,
};
use crate::error::{CuError, CuResult};

pub mod copy;
pub mod jit;
pub mod launch;
pub mod legacy;
pub mod managed;
pub mod occupancy;
pub mod pointer;

/// Logs a debug line about a rejected argument.
pub(crate) fn debug(msg: std::fmt::Arguments<'_>) {
    crate::export::log_quietly(|| tracing::debug!(target: "gpushare::api", "{msg}"));
}

/// Logs a warning about an argument gpushare does not support.
pub(crate) fn warn(msg: std::fmt::Arguments<'_>) {
    crate::export::log_quietly(|| tracing::warn!(target: "gpushare::api", "{msg}"));
}

/// `CU_CTX_*` flags (`cuCtxCreate`, `cuCtxSetFlags`, `cuDevicePrimaryCtxSetFlags`): any bit
/// outside [`CTX_FLAGS_MASK`] is `INVALID_VALUE`.
pub fn ctx_flags(flags: u32) -> CuResult {
    if flags & !CTX_FLAGS_MASK != 0 {
        debug(format_args!("context flags {flags:#x} have unknown bits"));
        return Err(CuError::INVALID_VALUE);
    }
    Ok(())
}

/// `cuCtxCreate_v3`'s execution-affinity parameters: a negative count, or a count without an
/// array, is `INVALID_VALUE`; any parameter at all is `NOT_SUPPORTED`.
pub fn ctx_affinity_params(params: *mut c_void, num_params: i32) -> CuResult {
    if num_params < 0 || (num_params > 0 && params.is_null()) {
        return Err(CuError::INVALID_VALUE);
    }
    if num_params > 0 {
        warn(format_args!(
            "cuCtxCreate_v3: execution-affinity parameters are not supported"
        ));
        return Err(CuError::NOT_SUPPORTED);
    }
    Ok(())
}

/// `cuCtxCreate_v4`'s `CUctxCreateParams` (execution affinity, CIG): NULL or empty, else
/// `NOT_SUPPORTED`.
///
/// # Safety
/// `params` must be NULL or point to a `CUctxCreateParams` (three pointer-sized fields).
pub unsafe fn ctx_create_params(params: *mut [usize; 3]) -> CuResult {
    if params.is_null() {
        return Ok(());
    }
    // SAFETY: non-NULL, and the caller passes a CUctxCreateParams; read unaligned because C
    // callers sometimes pass packed structures.
    let p = unsafe { params.read_unaligned() };
    if p[0] != 0 || p[2] != 0 {
        warn(format_args!(
            "cuCtxCreate_v4: execution affinity and CIG parameters are not supported"
        ));
        return Err(CuError::NOT_SUPPORTED);
    }
    Ok(())
}

/// A `CUfunc_cache` value (`cuCtxSetCacheConfig`, `cuFuncSetCacheConfig`,
/// `cuKernelSetCacheConfig`): 0 (PREFER_NONE) to 3 (PREFER_EQUAL).
pub fn cache_config(config: i32) -> CuResult {
    if (0..=3).contains(&config) {
        Ok(())
    } else {
        Err(CuError::INVALID_VALUE)
    }
}

/// A `CUsharedconfig` value (`cuCtxSetSharedMemConfig`, `cuFuncSetSharedMemConfig`): 0 to 2.
pub fn shared_mem_config(config: i32) -> CuResult {
    if (0..=2).contains(&config) {
        Ok(())
    } else {
        Err(CuError::INVALID_VALUE)
    }
}

/// `cuDeviceGetByPCIBusId`: whether the caller's `requested` id names the device whose id is
/// `ours` (`dddd:bb:dd.f`), in the full or the short (`bb:dd.f`) form, case-insensitive and
/// ignoring surrounding white space.
pub fn pci_bus_id_matches(requested: &str, ours: &str) -> bool {
    let text = requested.trim().to_ascii_lowercase();
    let ours = ours.to_ascii_lowercase();
    let short = ours.split_once(':').map_or("", |(_, rest)| rest);
    text == ours || text == short
}

/// `cuMemAllocPitch`: a non-zero extent of 4-, 8- or 16-byte elements, else `INVALID_VALUE`.
pub fn alloc_pitch(width: u64, height: u64, element_size: u32) -> CuResult {
    if !matches!(element_size, 4 | 8 | 16) || width == 0 || height == 0 {
        debug(format_args!(
            "cuMemAllocPitch({width}, {height}, {element_size}): zero extent or element size \
             not 4, 8 or 16"
        ));
        return Err(CuError::INVALID_VALUE);
    }
    Ok(())
}

/// `cuLaunchKernelEx`: launch attributes are accepted and ignored, but a count needs an array.
pub fn launch_config(config: &CuLaunchConfig) -> CuResult {
    if config.num_attrs > 0 {
        if config.attrs.is_null() {
            return Err(CuError::INVALID_VALUE);
        }
        debug(format_args!(
            "cuLaunchKernelEx: {} launch attributes ignored",
            config.num_attrs
        ));
    }
    Ok(())
}

/// `cuMemGetAllocationGranularity`'s option: MINIMUM (0) or RECOMMENDED (1).
pub fn granularity_option(option: i32) -> CuResult {
    if matches!(option, 0 | 1) {
        Ok(())
    } else {
        Err(CuError::INVALID_VALUE)
    }
}

/// A VMM allocation's location: a device `has_device` accepts; an unknown device is
/// `INVALID_DEVICE`, host locations are `NOT_SUPPORTED`, anything else `INVALID_VALUE`.
pub fn vmm_location(loc: &CUmemLocation, has_device: impl Fn(i32) -> bool) -> CuResult {
    match loc.type_ {
        LOCATION_DEVICE if has_device(loc.id) => Ok(()),
        LOCATION_DEVICE => Err(CuError::INVALID_DEVICE),
        t if LOCATION_HOST_TYPES.contains(&t) => {
            warn(format_args!(
                "host-located VMM allocations are not supported by gpushare"
            ));
            Err(CuError::NOT_SUPPORTED)
        }
        t => {
            debug(format_args!("CUmemLocation.type {t} is not valid"));
            Err(CuError::INVALID_VALUE)
        }
    }
}

/// A `CUmemAllocationProp` for `cuMemCreate`/`cuMemGetAllocationGranularity`: pinned memory on a
/// device `has_device` accepts, exportable as POSIX file descriptors or not at all. Returns the
/// requested handle types.
pub fn allocation_prop(
    prop: &CUmemAllocationProp,
    has_device: impl Fn(i32) -> bool,
) -> CuResult<u32> {
    if prop.type_ != ALLOCATION_TYPE_PINNED {
        debug(format_args!(
            "CUmemAllocationProp.type {} is not PINNED",
            prop.type_
        ));
        return Err(CuError::INVALID_VALUE);
    }
    vmm_location(&prop.location, has_device)?;
    let types = prop.requested_handle_types;
    if types & HANDLE_UNSUPPORTED != 0 {
        warn(format_args!(
            "requestedHandleTypes {types:#x}: only POSIX file descriptors are supported by gpushare"
        ));
        return Err(CuError::NOT_SUPPORTED);
    }
    if types & !HANDLE_POSIX_FD != 0 {
        debug(format_args!(
            "requestedHandleTypes {types:#x} has unknown bits"
        ));
        return Err(CuError::INVALID_VALUE);
    }
    Ok(types as u32)
}

/// `cuMemSetAccess`'s descriptors: each names a device `has_device` accepts (else
/// `INVALID_DEVICE`) with PROT_NONE (0), PROT_READ (1) or PROT_READWRITE (3) (else
/// `INVALID_VALUE`). Returns the access the last one grants and the descriptors read.
///
/// # Safety
/// `desc` must be NULL or point to `count` descriptors.
pub unsafe fn access_descs(
    desc: *const CUmemAccessDesc,
    count: usize,
    has_device: impl Fn(i32) -> bool,
) -> CuResult<(u8, Vec<CUmemAccessDesc>)> {
    if desc.is_null() || count == 0 {
        return Err(CuError::INVALID_VALUE);
    }
    let mut perm = None;
    let mut all = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: the caller passes `count` descriptors; read unaligned (C callers sometimes pass
        // packed structures).
        let a = unsafe { desc.add(i).read_unaligned() };
        match a.location.type_ {
            LOCATION_DEVICE if !has_device(a.location.id) => return Err(CuError::INVALID_DEVICE),
            LOCATION_DEVICE if matches!(a.flags, 0 | 1 | 3) => perm = Some(a.flags as u8),
            _ => {
                debug(format_args!(
                    "cuMemSetAccess: location type {} / flags {} not supported for device memory",
                    a.location.type_, a.flags
                ));
                return Err(CuError::INVALID_VALUE);
            }
        }
        all.push(a);
    }
    Ok((perm.ok_or(CuError::INVALID_VALUE)?, all))
}

/// `cuMemGetAccess`: what `loc` may do with memory whose device access is `perm` — `perm` for a
/// device `has_device` accepts (else `INVALID_DEVICE`), nothing for host locations,
/// `INVALID_VALUE` for anything else.
pub fn location_access(
    loc: &CUmemLocation,
    has_device: impl Fn(i32) -> bool,
    perm: u8,
) -> CuResult<u64> {
    match loc.type_ {
        LOCATION_DEVICE if has_device(loc.id) => Ok(u64::from(perm)),
        LOCATION_DEVICE => Err(CuError::INVALID_DEVICE),
        t if LOCATION_HOST_TYPES.contains(&t) => Ok(0),
        _ => Err(CuError::INVALID_VALUE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_bus_ids_match_in_both_forms() {
        let ours = "0000:3B:00.0";
        assert!(pci_bus_id_matches(" 0000:3b:00.0 ", ours));
        assert!(pci_bus_id_matches("3B:00.0", ours));
        assert!(!pci_bus_id_matches("3b:00.1", ours));
        assert!(!pci_bus_id_matches("", ours));
    }

    #[test]
    fn access_of_a_location() {
        let dev = |t, id| CUmemLocation { type_: t, id };
        let only0 = |id| id == 0;
        assert_eq!(location_access(&dev(LOCATION_DEVICE, 0), only0, 3), Ok(3));
        assert_eq!(
            location_access(&dev(LOCATION_DEVICE, 1), only0, 3),
            Err(CuError::INVALID_DEVICE)
        );
        assert_eq!(location_access(&dev(2, 0), only0, 3), Ok(0));
        assert_eq!(
            location_access(&dev(9, 0), only0, 3),
            Err(CuError::INVALID_VALUE)
        );
    }

    #[test]
    fn affinity_parameters() {
        let mut x = 0u8;
        let p = (&mut x as *mut u8).cast();
        assert_eq!(ctx_affinity_params(std::ptr::null_mut(), 0), Ok(()));
        assert_eq!(
            ctx_affinity_params(std::ptr::null_mut(), 1),
            Err(CuError::INVALID_VALUE)
        );
        assert_eq!(ctx_affinity_params(p, -1), Err(CuError::INVALID_VALUE));
        assert_eq!(ctx_affinity_params(p, 1), Err(CuError::NOT_SUPPORTED));
    }
}
