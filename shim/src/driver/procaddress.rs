//! `cuGetProcAddress` (v1 and `_v2`) and `cuGetExportTable`: the shared resolver and hidden
//! tables of `gpushare-driver-abi`, bound to the shim's own entry points.

use std::ffi::{c_char, c_void};
use std::sync::OnceLock;

use gpushare_driver_abi::error::CuError;
use gpushare_driver_abi::export_table::{self, DriverEntryPoints};
use gpushare_driver_abi::procaddress::{CUdriverProcAddressQueryResult, ProcResolver};

use super::device::CUuuid;

/// The shim's resolver, built on first use.
pub fn resolver() -> &'static ProcResolver {
    static RESOLVER: OnceLock<ProcResolver> = OnceLock::new();
    RESOLVER.get_or_init(|| ProcResolver::new(super::all_exports(), super::unsupported::EXPORTS))
}

/// The shim's exports as [`DriverEntryPoints`] for the hidden tables.
pub fn shim_entry_points() -> DriverEntryPoints {
    use super::{context, device, init, module};
    DriverEntryPoints {
        driver_get_version: init::cuDriverGetVersion,
        device_get_count: device::cuDeviceGetCount,
        device_get_uuid: device::cuDeviceGetUuid,
        device_get_attribute: device::cuDeviceGetAttribute,
        primary_ctx_retain: context::cuDevicePrimaryCtxRetain,
        primary_ctx_release: context::cuDevicePrimaryCtxRelease_v2,
        ctx_get_current: context::cuCtxGetCurrent,
        module_load_data: module::exports::cuModuleLoadData,
    }
}

cuda_exports! {
    /// `cuGetProcAddress` (CUDA 11.3 ABI, no status out-parameter).
    fn cuGetProcAddress(symbol: *const c_char, pfn: *mut *mut c_void, cuda_version: i32, flags: u64) {
        // SAFETY: the caller's pointers, passed on under the same contract.
        unsafe { resolver().get_proc_address(symbol, pfn, cuda_version, flags, std::ptr::null_mut()) }
    }

    /// `cuGetProcAddress_v2` (CUDA 12.0 ABI): also reports a `CUdriverProcAddressQueryResult`.
    fn cuGetProcAddress_v2(
        symbol: *const c_char,
        pfn: *mut *mut c_void,
        cuda_version: i32,
        flags: u64,
        symbol_status: *mut CUdriverProcAddressQueryResult,
    ) {
        // SAFETY: the caller's pointers, passed on under the same contract.
        unsafe { resolver().get_proc_address(symbol, pfn, cuda_version, flags, symbol_status) }
    }

    /// `cuGetExportTable`: the hidden tables libcudart needs (see [`export_table`]).
    fn cuGetExportTable(table: *mut *const c_void, id: *const CUuuid) {
        export_table::install(shim_entry_points());
        // SAFETY: the caller's pointers, under the same contract; CUuuid is 16 plain bytes.
        let r = unsafe { export_table::get_export_table(table, id.cast()) };
        CuError::from_code(r).map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpushare_driver_abi::proc_table::PROC_TABLE;
    use std::ffi::CString;

    /// Every line of libcudart 12.9's start-up lookup list resolves, through the shim's own
    /// `cuGetProcAddress_v2`, to the shim's export of the variant the generated table names for
    /// that version and flags (or to NULL with the right status when there is none).
    #[test]
    fn every_libcudart_12_9_start_up_lookup_resolves_to_a_shim_function() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../driver-abi/data/cudart-12.9.79-init-lookups.txt");
        let text = std::fs::read_to_string(&path).expect("the start-up lookup list");
        let exports: Vec<_> = super::super::all_exports()
            .chain(super::super::unsupported::EXPORTS)
            .collect();
        let (mut lines, mut implemented) = (0, 0);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, version, flags] = fields[..] else {
                panic!("malformed line {line:?}");
            };
            let (version, flags): (i32, u64) = (version.parse().unwrap(), flags.parse().unwrap());
            let c = CString::new(name).unwrap();
            let mut pfn: *mut c_void = std::ptr::dangling_mut();
            let mut status = -1;
            // SAFETY: a valid NUL-terminated name and out-pointers to live locals.
            let rc =
                unsafe { cuGetProcAddress_v2(c.as_ptr(), &mut pfn, version, flags, &mut status) };
            let known = PROC_TABLE
                .iter()
                .any(|e| e.base == name && e.version <= version);
            if !known {
                assert_eq!((rc, pfn.is_null()), (500, true), "{line}");
                continue;
            }
            let want = resolver().resolve(name, version, flags == 2).unwrap();
            let export = exports
                .iter()
                .find(|e| e.name == want.symbol)
                .unwrap_or_else(|| panic!("{} is not exported by the shim", want.symbol));
            assert_eq!(
                (rc, pfn as usize, status),
                (0, export.addr as usize, 0),
                "{line}"
            );
            if want.supported {
                implemented += 1;
            }
            lines += 1;
        }
        assert!(lines >= 400, "only {lines} lines resolved");
        println!("{lines} lookups resolved, {implemented} to implemented shim functions");
    }
}
