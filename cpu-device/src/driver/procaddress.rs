//! Driver entry-point access: `cuGetProcAddress` (v1 and `_v2`) and `cuGetExportTable`.
//!
//! Resolution rules and the generated table are shared with the shim
//! ([`gpushare_driver_abi::procaddress`]); this module builds the CPU device's resolver once, over
//! [`super::all_exports`] and the stubs of [`super::unsupported`]. The hidden export tables are
//! [`gpushare_driver_abi::export_table`], bound to the CPU device's own entry points.

use std::ffi::{c_char, c_void};
use std::sync::OnceLock;

use gpushare_driver_abi::export_table::{self, DriverEntryPoints};
pub use gpushare_driver_abi::procaddress::*;

use super::device::CUuuid;
#[cfg(test)]
use super::proc_table::PROC_TABLE;
use crate::error::{CuError, CuResult};

/// The CPU device's resolver, built on first use.
fn resolver() -> &'static ProcResolver {
    static RESOLVER: OnceLock<ProcResolver> = OnceLock::new();
    RESOLVER.get_or_init(|| ProcResolver::new(super::all_exports(), super::unsupported::EXPORTS))
}

#[cfg(test)]
/// Resolves `base` as the CPU device's `cuGetProcAddress` does.
pub(crate) fn resolve(base: &str, version: i32, per_thread: bool) -> Result<Resolved, Miss> {
    resolver().resolve(base, version, per_thread)
}

/// The shared body of both `cuGetProcAddress` entry points.
///
/// # Safety
/// As [`ProcResolver::get_proc_address`].
unsafe fn get_proc_address(
    symbol: *const c_char,
    pfn: *mut *mut c_void,
    version: i32,
    flags: u64,
    status: *mut CUdriverProcAddressQueryResult,
) -> CuResult {
    // SAFETY: the caller's pointers, passed on under the same contract.
    unsafe { resolver().get_proc_address(symbol, pfn, version, flags, status) }
}

/// The CPU device's own exports as [`DriverEntryPoints`].
pub fn cpu_device_entry_points() -> DriverEntryPoints {
    use super::{context, device, init, module};
    DriverEntryPoints {
        driver_get_version: init::cuDriverGetVersion,
        device_get_count: device::cuDeviceGetCount,
        device_get_uuid: device::cuDeviceGetUuid,
        device_get_attribute: device::cuDeviceGetAttribute,
        primary_ctx_retain: context::cuDevicePrimaryCtxRetain,
        primary_ctx_release: context::cuDevicePrimaryCtxRelease_v2,
        ctx_get_current: context::cuCtxGetCurrent,
        module_load_data: module::cuModuleLoadData,
    }
}

cuda_exports! {
    /// `cuGetProcAddress` (CUDA 11.3 ABI, no status out-parameter).
    fn cuGetProcAddress(symbol: *const c_char, pfn: *mut *mut c_void, cuda_version: i32, flags: u64) {
        // SAFETY: the caller's pointers, passed on under the same contract.
        unsafe { get_proc_address(symbol, pfn, cuda_version, flags, std::ptr::null_mut()) }
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
        unsafe { get_proc_address(symbol, pfn, cuda_version, flags, symbol_status) }
    }

    /// `cuGetExportTable`: the hidden tables libcudart needs (see [`export_table`]).
    fn cuGetExportTable(table: *mut *const c_void, id: *const CUuuid) {
        export_table::install(cpu_device_entry_points());
        // SAFETY: the caller's pointers, under the same contract; CUuuid is 16 plain bytes.
        let r = unsafe { export_table::get_export_table(table, id.cast()) };
        CuError::from_code(r).map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::proc_table::{ProcEntry, EXPORTED_SYMBOLS};
    use std::collections::HashSet;
    use std::ffi::CString;

    /// Calls `cuGetProcAddress_v2`: (result, pfn, status).
    fn lookup(symbol: &str, version: i32, flags: u64) -> (u32, usize, i32) {
        let name = CString::new(symbol).unwrap();
        let mut pfn: *mut c_void = std::ptr::dangling_mut();
        let mut status = -1;
        let (name, out) = (name.as_ptr(), &mut status);
        // SAFETY: valid NUL-terminated name and out-pointers.
        let rc = unsafe { cuGetProcAddress_v2(name, &mut pfn, version, flags, out) };
        (rc, pfn as usize, status)
    }

    /// The address of an exported symbol, from the family tables or the stubs.
    fn addr_of(symbol: &str) -> usize {
        super::super::all_exports()
            .chain(super::super::unsupported::EXPORTS)
            .find(|e| e.name == symbol)
            .map(|e| e.addr as usize)
            .unwrap_or_else(|| panic!("{symbol} is not exported"))
    }

    /// Reference resolution, straight from the generated table (linear scan).
    fn expected(base: &str, version: i32, per_thread: bool) -> Result<&'static str, i32> {
        let all: Vec<&ProcEntry> = PROC_TABLE.iter().filter(|e| e.base == base).collect();
        if all.is_empty() {
            return Err(CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
        }
        let legacy = all
            .iter()
            .filter(|e| !e.per_thread && e.version <= version)
            .max_by_key(|e| e.version)
            .ok_or(CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT)?;
        let pt = all
            .iter()
            .filter(|e| e.per_thread && e.version <= version)
            .filter(|e| {
                ["_ptds", "_ptsz"]
                    .map(|s| legacy.symbol.to_owned() + s)
                    .contains(&e.symbol.to_owned())
            })
            .max_by_key(|e| e.version);
        Ok(match pt {
            Some(pt) if per_thread => pt.symbol,
            _ => legacy.symbol,
        })
    }

    const NOT_FOUND: u32 = 500;

    /// What a successful lookup of `symbol` returns: (CUDA_SUCCESS, its address, SUCCESS).
    fn ok(symbol: &str) -> (u32, usize, i32) {
        (0, addr_of(symbol), CU_GET_PROC_ADDRESS_SUCCESS)
    }

    #[test]
    fn picks_the_newest_variant_for_the_version() {
        assert_eq!(lookup("cuMemAlloc", 12090, 0), ok("cuMemAlloc_v2"));
        assert_eq!(lookup("cuMemAlloc", 3020, 0), ok("cuMemAlloc_v2"));
        assert_eq!(lookup("cuMemAlloc", 3010, 0), ok("cuMemAlloc"));
        assert_eq!(lookup("cuMemAlloc", 2000, 0), ok("cuMemAlloc"));
        assert_eq!(lookup("cuGetProcAddress", 11030, 0), ok("cuGetProcAddress"));
        assert_eq!(
            lookup("cuGetProcAddress", 12090, 0),
            ok("cuGetProcAddress_v2")
        );
        assert_eq!(lookup("cuCtxCreate", 12090, 0), ok("cuCtxCreate_v4"));
        assert_eq!(lookup("cuCtxCreate", 3020, 0), ok("cuCtxCreate_v2"));
        let capture = "cuStreamGetCaptureInfo";
        assert_eq!(lookup(capture, 10010, 0), ok("cuStreamGetCaptureInfo"));
        assert_eq!(lookup(capture, 11030, 0), ok("cuStreamGetCaptureInfo_v2"));
        assert_eq!(lookup(capture, 12030, 0), ok("cuStreamGetCaptureInfo_v3"));
        let instantiate = "cuGraphInstantiate";
        assert_eq!(lookup(instantiate, 11000, 0), ok("cuGraphInstantiate_v2"));
        assert_eq!(
            lookup(instantiate, 12000, 0),
            ok("cuGraphInstantiateWithFlags")
        );
    }

    #[test]
    fn per_thread_flag_picks_the_ptds_form() {
        let copy = "cuMemcpyHtoDAsync";
        assert_eq!(lookup(copy, 12090, 2), ok("cuMemcpyHtoDAsync_v2_ptsz"));
        assert_eq!(lookup(copy, 7000, 2), ok("cuMemcpyHtoDAsync_v2_ptsz"));
        assert_eq!(lookup(copy, 12090, 0), ok("cuMemcpyHtoDAsync_v2"));
        assert_eq!(lookup(copy, 12090, 1), ok("cuMemcpyHtoDAsync_v2"));
        // No per-thread form yet at 3020: the legacy one.
        assert_eq!(lookup(copy, 3020, 2), ok("cuMemcpyHtoDAsync_v2"));
        assert_eq!(lookup("cuMemcpyHtoD", 7000, 2), ok("cuMemcpyHtoD_v2_ptds"));
        let capture = "cuStreamGetCaptureInfo";
        assert_eq!(
            lookup(capture, 12030, 2),
            ok("cuStreamGetCaptureInfo_v3_ptsz")
        );
        assert_eq!(
            lookup(capture, 11030, 2),
            ok("cuStreamGetCaptureInfo_v2_ptsz")
        );
        // A function without a per-thread form.
        assert_eq!(lookup("cuMemAlloc", 12090, 2), ok("cuMemAlloc_v2"));
    }

    #[test]
    fn misses_set_null_and_a_status() {
        let unknown = (NOT_FOUND, 0, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
        assert_eq!(lookup("cuNoSuchFunction", 12090, 0), unknown);
        assert_eq!(lookup("", 12090, 0), unknown);
        // Symbols are base names: a versioned name is not one.
        assert_eq!(lookup("cuMemAlloc_v2", 12090, 0), unknown);
        assert_eq!(lookup("cumemalloc", 12090, 0), unknown);
        let too_old = (NOT_FOUND, 0, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
        assert_eq!(lookup("cuGetProcAddress", 11020, 0), too_old);
        assert_eq!(lookup("cuMemAlloc", 0, 0), too_old);
        assert_eq!(lookup("cuMemAlloc", -1, 2), too_old);
    }

    #[test]
    fn invalid_arguments() {
        let mut pfn: *mut c_void = std::ptr::null_mut();
        let mut status = 0;
        let name = CString::new("cuInit").unwrap();
        // SAFETY: NULL arguments are what is under test; the others are valid.
        unsafe {
            let null = std::ptr::null();
            assert_eq!(
                cuGetProcAddress_v2(null, &mut pfn, 12090, 0, &mut status),
                1
            );
            let no_pfn = std::ptr::null_mut();
            assert_eq!(
                cuGetProcAddress_v2(name.as_ptr(), no_pfn, 12090, 0, &mut status),
                1
            );
            pfn = std::ptr::dangling_mut();
            assert_eq!(
                cuGetProcAddress_v2(null, &mut pfn, 12090, 0, &mut status),
                1
            );
            assert!(pfn.is_null());
            for flags in [3, 4, 1 << 40] {
                assert_eq!(
                    cuGetProcAddress_v2(name.as_ptr(), &mut pfn, 12090, flags, &mut status),
                    1
                );
            }
            // A NULL status is allowed.
            let no_status = std::ptr::null_mut();
            assert_eq!(
                cuGetProcAddress_v2(name.as_ptr(), &mut pfn, 12090, 0, no_status),
                0
            );
            assert_eq!(pfn as usize, addr_of("cuInit"));
        }
    }

    #[test]
    fn v1_resolves_like_v2() {
        let v1 = |symbol: &str| {
            let name = CString::new(symbol).unwrap();
            let mut pfn: *mut c_void = std::ptr::dangling_mut();
            // SAFETY: valid name and out-pointer.
            let rc = unsafe { cuGetProcAddress(name.as_ptr(), &mut pfn, 12090, 0) };
            (rc, pfn as usize)
        };
        assert_eq!(v1("cuMemAlloc"), (0, addr_of("cuMemAlloc_v2")));
        assert_eq!(v1("cuNoSuchFunction"), (NOT_FOUND, 0));
    }

    #[test]
    fn unsupported_variants_resolve_to_stubs_that_fail() {
        // GL interop will stay unsupported on the CPU device.
        let (rc, pfn, status) = lookup("cuGLInit", 12090, 0);
        assert_eq!((rc, status), (0, CU_GET_PROC_ADDRESS_SUCCESS));
        assert!(super::super::unsupported::EXPORTS
            .iter()
            .any(|e| e.addr as usize == pfn));
        assert!(!resolve("cuGLInit", 12090, false).unwrap().supported);
        // SAFETY: a stub takes no arguments and returns a CUresult.
        let stub: unsafe extern "C" fn() -> u32 = unsafe { std::mem::transmute(pfn) };
        // SAFETY: as above.
        assert_eq!(unsafe { stub() }, 801);
        assert!(resolve("cuInit", 12090, false).unwrap().supported);
    }

    #[test]
    fn every_exported_symbol_has_exactly_one_definition() {
        let mut names = HashSet::new();
        for e in super::super::all_exports().chain(super::super::unsupported::EXPORTS) {
            assert!(names.insert(e.name), "{} is defined twice", e.name);
        }
        for name in EXPORTED_SYMBOLS {
            assert!(
                names.contains(name),
                "{name} has neither an implementation nor a stub"
            );
        }
        let listed: HashSet<&str> = EXPORTED_SYMBOLS.iter().copied().collect();
        for e in super::super::unsupported::EXPORTS {
            assert!(
                listed.contains(e.name),
                "stub {} is not a driver symbol",
                e.name
            );
        }
        for e in PROC_TABLE {
            assert!(listed.contains(e.symbol), "{} is not exported", e.symbol);
            let found = resolve(e.base, e.version, e.per_thread).map(|r| r.symbol);
            assert_eq!(found, Ok(e.symbol), "{}@{}", e.base, e.version);
        }
    }

    #[test]
    fn every_libcudart_12_9_start_up_lookup_resolves() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../driver-abi/data/cudart-12.9.79-init-lookups.txt");
        let text = std::fs::read_to_string(&path).expect("the start-up lookup list");
        let (mut lines, mut stubs) = (0, 0);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, version, flags] = fields[..] else {
                panic!("malformed line {line:?}");
            };
            let (version, flags): (i32, u64) = (version.parse().unwrap(), flags.parse().unwrap());
            let (rc, pfn, status) = lookup(name, version, flags);
            match expected(name, version, flags == 2) {
                Ok(symbol) => {
                    assert_eq!(
                        (rc, pfn, status),
                        (0, addr_of(symbol), 0),
                        "{line} -> {symbol}"
                    );
                    if !resolve(name, version, flags == 2).unwrap().supported {
                        stubs += 1;
                    }
                }
                Err(want) => assert_eq!((rc, pfn, status), (NOT_FOUND, 0, want), "{line}"),
            }
            lines += 1;
        }
        assert_eq!(lines, 418);
        println!("{lines} lookups resolved, {stubs} of them to unsupported stubs");
    }

    #[test]
    fn generated_files_are_current() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let headers = root.join(".deps/cuda/nvidia/cuda_runtime/include/cudaTypedefs.h");
        if !headers.exists() {
            println!(
                "skipped: {} not found (scripts/setup-cuda-deps.sh)",
                headers.display()
            );
            return;
        }
        let script = root.join("scripts/gen-proc-table.py");
        let Ok(out) = std::process::Command::new("python3")
            .arg(&script)
            .arg("--check")
            .output()
        else {
            println!("skipped: python3 not available");
            return;
        };
        assert!(
            out.status.success(),
            "{}: run python3 scripts/gen-proc-table.py",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
