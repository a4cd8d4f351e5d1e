//! The declaration against the headers' symbol list, and the generated layer on a test library.

use std::collections::{BTreeMap, HashSet};

use super::prelude::*;
use super::*;
use crate::proc_table::{EXPORTED_SYMBOLS, PROC_TABLE};

const BUILT_IN: [&str; 5] = [
    "cuGetProcAddress",
    "cuGetProcAddress_v2",
    "cuGetExportTable",
    "cuGetErrorName",
    "cuGetErrorString",
];

/// Declared, built-in and undeclared symbols are exactly the exported symbols of libcuda 12.9 and
/// 13.x (the union of both headers'), each once.
#[test]
fn the_declaration_covers_every_exported_symbol_once() {
    let mut seen = HashSet::new();
    for s in ENTRIES
        .iter()
        .map(|e| e.symbol)
        .chain(BUILT_IN)
        .chain(UNDECLARED.iter().copied())
    {
        assert!(seen.insert(s), "{s} appears twice in the declaration");
    }
    let exported: HashSet<&str> = EXPORTED_SYMBOLS.iter().copied().collect();
    let extra: Vec<_> = seen.difference(&exported).collect();
    let missing: Vec<_> = exported.difference(&seen).collect();
    assert!(
        extra.is_empty(),
        "declared but not exported by libcuda: {extra:?}"
    );
    assert!(
        missing.is_empty(),
        "exported by libcuda but absent from the declaration: {missing:?}"
    );
}

/// The symbols of one method are variants of one base name (or its per-thread twin), as the
/// generated proc table knows them, so `cuGetProcAddress` and the declaration agree.
#[test]
fn a_methods_symbols_are_variants_of_one_call() {
    let base_of: BTreeMap<&str, &str> = PROC_TABLE.iter().map(|e| (e.symbol, e.base)).collect();
    let mut bases: BTreeMap<(&str, &str), HashSet<&str>> = BTreeMap::new();
    for e in ENTRIES {
        let base = base_of
            .get(e.symbol)
            .unwrap_or_else(|| panic!("{} has no proc-table entry", e.symbol));
        bases.entry((e.family, e.method)).or_default().insert(base);
    }
    for ((family, method), b) in bases {
        assert_eq!(b.len(), 1, "{family}::{method} mixes calls {b:?}");
    }
}

/// A library implementing two methods.
struct TestLib;

crate::implement! {
    impl Graph for TestLib {}
}

crate::implement! {
    impl Init for TestLib {
        fn driver_get_version(version: Out<'_, i32>) -> CuResult {
            version.write(4242)
        }
    }
}

crate::implement! {
    impl Memory for TestLib {
        fn mem_alloc(dptr: Out<'_, CUdeviceptr>, bytesize: usize) -> CuResult {
            dptr.write(0x1_0000_0000 + bytesize as u64)
        }
        fn mem_get_info(free: Out<'_, usize>, total: Out<'_, usize>) -> CuResult {
            free.write(1 << 40)?;
            total.write(1 << 41)
        }
    }
}

impl Device for TestLib {}
impl Context for TestLib {}
impl Stream for TestLib {}
impl Event for TestLib {}
impl HostMemory for TestLib {}
impl Pointer for TestLib {}
impl Vmm for TestLib {}
impl Copies for TestLib {}
impl Module for TestLib {}
impl Launch for TestLib {}
impl Occupancy for TestLib {}
impl Link for TestLib {}

pub(super) mod layer {
    crate::driver_exports!(super::TestLib, "the test library", unexported);
}

#[test]
fn the_generated_layer_converts_arguments_and_calls_the_library() {
    let mut v = 0;
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { layer::cuDriverGetVersion(&mut v) }, 0);
    assert_eq!(v, 4242);
    // SAFETY: a NULL out-pointer is what is under test; the conversion rejects it.
    let null = unsafe { layer::cuDriverGetVersion(std::ptr::null_mut()) };
    assert_eq!(null, 1, "NULL out-pointer: INVALID_VALUE");
    // SAFETY: no pointers.
    let init = unsafe { layer::cuInit(0) };
    assert_eq!(init, 801, "not implemented: NOT_SUPPORTED");
    // SAFETY: a stub reads no arguments.
    let stub = unsafe { layer::cuArrayCreate_v2() };
    assert_eq!(stub, 801, "undeclared: NOT_SUPPORTED");
    let mut p = 0u64;
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { layer::cuMemAlloc_v2(&mut p, 16) }, 0);
    assert_eq!(p, 0x1_0000_0010);
    // v1 ABI: the pointer does not fit in 32 bits.
    let mut p32 = 7u32;
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { layer::cuMemAlloc(&mut p32, 16) }, 801);
    assert_eq!(p32, 7, "nothing written");
    // v1 ABI: sizes are clamped.
    let (mut f, mut t) = (0u32, 0u32);
    // SAFETY: valid out-pointers.
    assert_eq!(unsafe { layer::cuMemGetInfo(&mut f, &mut t) }, 0);
    assert_eq!((f, t), (u32::MAX, u32::MAX));
}

#[test]
fn the_generated_layer_resolves_its_own_symbols() {
    let name = c"cuMemAlloc";
    let mut pfn: *mut c_void = std::ptr::null_mut();
    let mut status = -1;
    // SAFETY: a valid name and out-pointers.
    let rc = unsafe { layer::cuGetProcAddress_v2(name.as_ptr(), &mut pfn, 12090, 0, &mut status) };
    assert_eq!((rc, status), (0, 0));
    assert_eq!(pfn as usize, layer::cuMemAlloc_v2 as *const () as usize);
    let supported: Vec<&str> = layer::all_symbols()
        .filter(|(_, s)| *s)
        .map(|(e, _)| e.name)
        .collect();
    for want in [
        "cuDriverGetVersion",
        "cuMemAlloc_v2",
        "cuMemAlloc",
        "cuMemGetInfo",
        "cuGetProcAddress",
    ] {
        assert!(supported.contains(&want), "{want} should be supported");
    }
    assert!(!supported.contains(&"cuInit"));
    assert_eq!(layer::all_symbols().count(), EXPORTED_SYMBOLS.len());
}
