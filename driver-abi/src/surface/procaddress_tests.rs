//! `cuGetProcAddress` through a generated layer (the test library's): resolution by version and
//! per-thread flag, misses, invalid arguments, stubs, and libcudart 12.9's and 13.x's start-up
//! lookups.

use std::ffi::{c_void, CString};

use super::tests::layer;
use crate::proc_table::{ProcEntry, PROC_TABLE};
use crate::procaddress::{
    Miss, Resolved, CU_GET_PROC_ADDRESS_SUCCESS, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND,
    CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT,
};

/// Resolves `base` as the layer's `cuGetProcAddress` does.
fn resolve(base: &str, version: i32, per_thread: bool) -> Result<Resolved, Miss> {
    layer::proc_resolver().resolve(base, version, per_thread)
}

/// Calls `cuGetProcAddress_v2`: (result, pfn, status).
fn lookup(symbol: &str, version: i32, flags: u64) -> (u32, usize, i32) {
    let name = CString::new(symbol).unwrap();
    let mut pfn: *mut c_void = std::ptr::dangling_mut();
    let mut status = -1;
    let (name, out) = (name.as_ptr(), &mut status);
    // SAFETY: valid NUL-terminated name and out-pointers.
    let rc = unsafe { layer::cuGetProcAddress_v2(name, &mut pfn, version, flags, out) };
    (rc, pfn as usize, status)
}

/// The address of an exported symbol, from the family tables or the stubs.
fn addr_of(symbol: &str) -> usize {
    layer::all_symbols()
        .find(|(e, _)| e.name == symbol)
        .map(|(e, _)| e.addr as usize)
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
            layer::cuGetProcAddress_v2(null, &mut pfn, 12090, 0, &mut status),
            1
        );
        let no_pfn = std::ptr::null_mut();
        assert_eq!(
            layer::cuGetProcAddress_v2(name.as_ptr(), no_pfn, 12090, 0, &mut status),
            1
        );
        pfn = std::ptr::dangling_mut();
        assert_eq!(
            layer::cuGetProcAddress_v2(null, &mut pfn, 12090, 0, &mut status),
            1
        );
        assert!(pfn.is_null());
        for flags in [3, 4, 1 << 40] {
            assert_eq!(
                layer::cuGetProcAddress_v2(name.as_ptr(), &mut pfn, 12090, flags, &mut status),
                1
            );
        }
        // A NULL status is allowed.
        let no_status = std::ptr::null_mut();
        assert_eq!(
            layer::cuGetProcAddress_v2(name.as_ptr(), &mut pfn, 12090, 0, no_status),
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
        let rc = unsafe { layer::cuGetProcAddress(name.as_ptr(), &mut pfn, 12090, 0) };
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
    assert!(layer::all_symbols().any(|(e, s)| e.addr as usize == pfn && !*s));
    assert!(!resolve("cuGLInit", 12090, false).unwrap().supported);
    // SAFETY: a stub takes no arguments and returns a CUresult.
    let stub: unsafe extern "C" fn() -> u32 = unsafe { std::mem::transmute(pfn) };
    // SAFETY: as above.
    assert_eq!(unsafe { stub() }, 801);
    assert!(
        resolve("cuDriverGetVersion", 12090, false)
            .unwrap()
            .supported
    );
}

#[test]
fn every_variant_resolves_to_itself() {
    for e in PROC_TABLE {
        let found = resolve(e.base, e.version, e.per_thread).map(|r| r.symbol);
        assert_eq!(found, Ok(e.symbol), "{}@{}", e.base, e.version);
    }
}

/// The recorded start-up lookup lists (`driver-abi/data/cudart-<version>-init-lookups.txt`:
/// `name version flags` per `cuGetProcAddress_v2` call, in call order) and their line counts.
pub(crate) const INIT_LOOKUPS: &[(&str, usize)] = &[
    ("cudart-12.9.79-init-lookups.txt", 418),
    ("cudart-13.0.96-init-lookups.txt", 439),
    ("cudart-13.5.37-init-lookups.txt", 457),
];

/// Parses one recorded list: (line, name, version, flags).
pub(crate) fn init_lookups(file: &str) -> Vec<(String, String, i32, u64)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("the start-up lookup list");
    let parse = |line: &str| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, version, flags] = fields[..] else {
            panic!("{file}: malformed line {line:?}");
        };
        let (version, flags) = (version.parse().unwrap(), flags.parse().unwrap());
        (line.to_string(), name.to_string(), version, flags)
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse)
        .collect()
}

#[test]
fn every_libcudart_start_up_lookup_resolves() {
    for &(file, want_lines) in INIT_LOOKUPS {
        let (mut lines, mut stubs) = (0, 0);
        for (line, name, version, flags) in init_lookups(file) {
            let (rc, pfn, status) = lookup(&name, version, flags);
            match expected(&name, version, flags == 2) {
                Ok(symbol) => {
                    assert_eq!(
                        (rc, pfn, status),
                        (0, addr_of(symbol), 0),
                        "{file}: {line} -> {symbol}"
                    );
                    if !resolve(&name, version, flags == 2).unwrap().supported {
                        stubs += 1;
                    }
                }
                Err(want) => assert_eq!((rc, pfn, status), (NOT_FOUND, 0, want), "{file}: {line}"),
            }
            lines += 1;
        }
        assert_eq!(lines, want_lines, "{file}");
        println!("{file}: {lines} lookups resolved, {stubs} of them to unsupported stubs");
    }
}

/// What CUDA 13's `cuda.h` maps the plain names to (`#define cuCtxCreate cuCtxCreate_v4`, ...),
/// and the context-taking `_v2`s 13.0 added: a 13.x runtime's lookup at its own version gets them.
#[test]
fn cuda_13_lookups_get_the_cuda_13_variants() {
    let want = [
        ("cuCtxCreate", "cuCtxCreate_v4"),
        ("cuMemAdvise", "cuMemAdvise_v2"),
        ("cuMemPrefetchAsync", "cuMemPrefetchAsync_v2"),
        ("cuDeviceGetUuid", "cuDeviceGetUuid_v2"),
        ("cuCtxGetDevice", "cuCtxGetDevice_v2"),
        ("cuCtxSynchronize", "cuCtxSynchronize_v2"),
        ("cuStreamGetCaptureInfo", "cuStreamGetCaptureInfo_v3"),
        ("cuMemcpyBatchAsync", "cuMemcpyBatchAsync_v2"),
    ];
    for (base, symbol) in want {
        for version in [13000, 13050] {
            assert_eq!(lookup(base, version, 0), ok(symbol), "{base}@{version}");
        }
    }
    // A 12.9 runtime still gets the 12.x ABI of the calls CUDA 13 changed.
    assert_eq!(lookup("cuCtxGetDevice", 12090, 0), ok("cuCtxGetDevice"));
    assert_eq!(lookup("cuCtxSynchronize", 12090, 0), ok("cuCtxSynchronize"));
    assert_eq!(
        lookup("cuLaunchHostFunc", 13000, 2),
        ok("cuLaunchHostFunc_ptsz")
    );
    assert_eq!(
        lookup("cuLaunchHostFunc", 13050, 2),
        ok("cuLaunchHostFunc_v2_ptsz")
    );
}
