//! The shim's C layer as the generated surface builds it, checked in process (unexported).

use std::ffi::{c_void, CString};

use gpushare_driver_abi::proc_table::PROC_TABLE;
use gpushare_driver_abi::procaddress::ProcResolver;

mod cuda {
    gpushare_driver_abi::driver_exports!(crate::Shim, "the shim", unexported);
}

/// Every line of libcudart's start-up lookup lists (12.9, 13.0, the newest 13.x) resolves,
/// through the shim's `cuGetProcAddress_v2`, to the shim's export of the variant the generated
/// table names for that version and flags (or to NULL with the right status when there is none).
#[test]
fn every_libcudart_start_up_lookup_resolves_to_a_shim_function() {
    for file in [
        "cudart-12.9.79-init-lookups.txt",
        "cudart-13.0.96-init-lookups.txt",
        "cudart-13.5.37-init-lookups.txt",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../driver-abi/data")
            .join(file);
        let text = std::fs::read_to_string(&path).expect("the start-up lookup list");
        let (lines, implemented) = resolve_lookups(&text);
        assert!(lines >= 400, "{file}: only {lines} lines resolved");
        println!("{file}: {lines} lookups resolved, {implemented} to implemented shim functions");
    }
}

/// Checks each `name version flags` line of `text`: (lines resolved, how many to implemented
/// functions).
fn resolve_lookups(text: &str) -> (usize, usize) {
    let expected = ProcResolver::with_support(cuda::all_symbols().map(|(e, s)| (e, *s)));
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
            unsafe { cuda::cuGetProcAddress_v2(c.as_ptr(), &mut pfn, version, flags, &mut status) };
        let known = PROC_TABLE
            .iter()
            .any(|e| e.base == name && e.version <= version);
        if !known {
            assert_eq!((rc, pfn.is_null()), (500, true), "{line}");
            continue;
        }
        let want = expected.resolve(name, version, flags == 2).unwrap();
        let (export, supported) = cuda::all_symbols()
            .find(|(e, _)| e.name == want.symbol)
            .unwrap_or_else(|| panic!("{} is not exported by the shim", want.symbol));
        assert_eq!(
            (rc, pfn as usize, status),
            (0, export.addr as usize, 0),
            "{line}"
        );
        assert_eq!(*supported, want.supported, "{line}");
        if want.supported {
            implemented += 1;
        }
        lines += 1;
    }
    (lines, implemented)
}

/// The shim implements what it implemented before the surface (208 declared symbols, plus the 5
/// built-in ones), the 4 symbols of `cuStreamWriteValue32` and the 16 of the deprecated execution
/// control, `cuCtxAttach`/`cuCtxDetach`, the occupancy calculator, the linker,
/// `cuMemAllocManaged`, CUDA 13's `cuCtxGetDevice_v2`/`cuCtxSynchronize_v2`, and the 94 symbols
/// of stream capture, graphs and user objects, the 3 of graph memory and the 6 of
/// `cuMemAdvise`/`cuMemPrefetchAsync`
/// added since: no entry point is lost unnoticed
/// (docs/driver-entry-points.md lists them).
#[test]
fn the_shim_implements_its_entry_points() {
    let supported = cuda::all_symbols().filter(|(_, s)| *s).count();
    assert_eq!(supported, 347);
    for name in [
        "cuInit",
        "cuCtxGetDevice_v2",
        "cuCtxSynchronize_v2",
        "cuMemAlloc",
        "cuMemcpyHtoD_v2_ptds",
        "cuLaunchKernel_ptsz",
        "cuLaunchGrid",
        "cuOccupancyMaxPotentialBlockSize",
        "cuLinkCreate_v2",
        "cuStreamBeginCapture_v2_ptsz",
        "cuGraphLaunch",
    ] {
        assert!(
            cuda::all_symbols().any(|(e, s)| e.name == name && *s),
            "{name} is not implemented"
        );
    }
}

/// Arguments are converted before the shim runs: a NULL out-pointer is `INVALID_VALUE` and
/// unknown flags too, and before `cuInit` the shim answers `NOT_INITIALIZED`.
#[test]
fn arguments_are_converted_before_the_shim_runs() {
    let mut v = 0i32;
    // SAFETY: a live out-pointer.
    assert_eq!(unsafe { cuda::cuDriverGetVersion(&mut v) }, 0);
    assert!(v > 0);
    // SAFETY: a deliberate NULL, which the conversion rejects.
    let null = unsafe { cuda::cuDeviceGetCount(std::ptr::null_mut()) };
    assert_eq!(null, 1, "INVALID_VALUE");
    // SAFETY: no pointers.
    assert_eq!(unsafe { cuda::cuInit(1) }, 1, "cuInit flags must be 0");
    // SAFETY: a live out-pointer.
    let before_init = unsafe { cuda::cuDeviceGetCount(&mut v) };
    assert_eq!(before_init, 3, "NOT_INITIALIZED");
    let mut count = 0u32;
    // SAFETY: a live out-pointer; the module handle is never used (not implemented).
    let missing = unsafe { cuda::cuModuleGetFunctionCount(&mut count, std::ptr::null_mut()) };
    assert_eq!(missing, 801, "not implemented: NOT_SUPPORTED");
}
