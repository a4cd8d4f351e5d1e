//! In-process tests of module, library, kernel and function entry points.

mod common;
mod cuda;

use std::ffi::{c_char, c_void, CStr};
use std::ptr::null_mut;

use common::*;
use gpushare_cpu_device::exec::fatbin;
use gpushare_cpu_device::sys::{CUfunction, CUkernel, CUlibrary, CUmodule};

const INVALID_VALUE: u32 = 1;
const INVALID_IMAGE: u32 = 200;
const NO_BINARY_FOR_GPU: u32 = 209;
const INVALID_PTX: u32 = 218;
const FILE_NOT_FOUND: u32 = 301;
const INVALID_HANDLE: u32 = 400;
const NOT_FOUND: u32 = 500;

fn load_image(image: *const c_void) -> Result<CUmodule, u32> {
    let mut m: CUmodule = null_mut();
    // SAFETY: the tests pass valid images.
    match unsafe { cuda::cuModuleLoadData(&mut m, image) } {
        0 => Ok(m),
        e => Err(e),
    }
}

#[test]
fn images_of_every_kind() {
    setup();
    let ptx = corpus("vector_add");
    let fat = fatbin::build_fatbin(&ptx);
    let wrapper = fatbin::build_wrapper(fat.as_ptr());
    for (what, image) in [
        ("text", ptx.as_ptr()),
        ("fatbin", fat.as_ptr()),
        ("wrapper", wrapper.as_ptr()),
    ] {
        let m = load_image(image.cast()).unwrap_or_else(|e| panic!("{what}: error {e}"));
        function(m, "vector_add");
        // SAFETY: a live module.
        ok(unsafe { cuda::cuModuleUnload(m) });
    }
    let mut m: CUmodule = null_mut();
    // SAFETY: a fatbin image.
    ok(unsafe { cuda::cuModuleLoadFatBinary(&mut m, fat.as_ptr().cast()) });
    // SAFETY: live module, then a stale handle.
    unsafe {
        ok(cuda::cuModuleUnload(m));
        err(cuda::cuModuleUnload(m), INVALID_HANDLE);
    }
    let cubin =
        fatbin::build_fatbin_entries(&[(fatbin::KIND_ELF, 90, 1, b"\x7fELF\x02\x01\x01\0")]);
    assert_eq!(
        load_image(cubin.as_ptr().cast()).err(),
        Some(NO_BINARY_FOR_GPU)
    );
    assert_eq!(
        load_image(c"\x7fELF\x02\x01\x01".as_ptr().cast()).err(),
        Some(NO_BINARY_FOR_GPU)
    );
    let garbage = [0x01u8, 0x02, 0x03, 0xff, 0xfe, 0x80, 0x7f, 0x10, 0x00];
    assert_eq!(
        load_image(garbage.as_ptr().cast()).err(),
        Some(INVALID_IMAGE)
    );
    let path = c"/nonexistent/kernel.ptx";
    // SAFETY: NUL-terminated path.
    err(
        unsafe { cuda::cuModuleLoad(&mut m, path.as_ptr()) },
        FILE_NOT_FOUND,
    );
    let file = format!(
        "{}/../examples/kernels/saxpy.ptx\0",
        env!("CARGO_MANIFEST_DIR")
    );
    // SAFETY: NUL-terminated path.
    ok(unsafe { cuda::cuModuleLoad(&mut m, file.as_ptr().cast()) });
    function(m, "saxpy");
}

#[test]
fn invalid_ptx_fills_the_error_log() {
    setup();
    let bad = c".version 8.8\n.target sm_90\n.address_size 64\n.visible .entry broken()\n{\n\tnot_an_instruction.u32 %r1, 5;\n\tret;\n}\n";
    let mut info = [0u8; 256];
    let mut error = [0u8; 256];
    let options = [3u32, 4, 5, 6];
    let mut values: [*mut c_void; 4] = [
        info.as_mut_ptr().cast(),
        256 as _,
        error.as_mut_ptr().cast(),
        256 as _,
    ];
    let mut m: CUmodule = null_mut();
    // SAFETY: four options with valid buffers.
    let r = unsafe {
        cuda::cuModuleLoadDataEx(
            &mut m,
            bad.as_ptr().cast(),
            4,
            options.as_ptr(),
            values.as_mut_ptr(),
        )
    };
    err(r, INVALID_PTX);
    let log = CStr::from_bytes_until_nul(&error)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(!log.is_empty(), "empty JIT error log");
    assert_eq!(
        values[3] as usize,
        log.len() + 1,
        "bytes written reported back"
    );
    // Good PTX with the same options succeeds and leaves an empty error log.
    let good = corpus("vector_add");
    let mut values: [*mut c_void; 4] = [
        info.as_mut_ptr().cast(),
        256 as _,
        error.as_mut_ptr().cast(),
        256 as _,
    ];
    // SAFETY: as above.
    ok(unsafe {
        cuda::cuModuleLoadDataEx(
            &mut m,
            good.as_ptr().cast(),
            4,
            options.as_ptr(),
            values.as_mut_ptr(),
        )
    });
    assert_eq!(error[0], 0);
}

#[test]
fn globals_have_their_initialisers() {
    setup();
    let m = load("device_global");
    let (mut table, mut counter, mut tbytes, mut cbytes) = (0u64, 0u64, 0usize, 0usize);
    // SAFETY: live module, NUL-terminated names, valid out-pointers.
    unsafe {
        ok(cuda::cuModuleGetGlobal_v2(
            &mut table,
            &mut tbytes,
            m,
            c"dev_table".as_ptr(),
        ));
        ok(cuda::cuModuleGetGlobal_v2(
            &mut counter,
            &mut cbytes,
            m,
            c"dev_counter".as_ptr(),
        ));
        err(
            cuda::cuModuleGetGlobal_v2(&mut table, null_mut(), m, c"nope".as_ptr()),
            NOT_FOUND,
        );
    }
    assert_eq!((tbytes, cbytes), (64, 4));
    let mut v = 0i32;
    // SAFETY: 4-byte host buffer.
    ok(unsafe { cuda::cuMemcpyDtoH_v2(arg(&mut v), counter, 4) });
    assert_eq!(v, 7);
    let bump = function(m, "bump_counter");
    let mut delta = 5i32;
    ok(launch1d(bump, 1, 1, null_mut(), &mut [arg(&mut delta)]));
    // SAFETY: as above.
    ok(unsafe { cuda::cuMemcpyDtoH_v2(arg(&mut v), counter, 4) });
    assert_eq!(v, 12);
    // A second instance has its own copy.
    let m2 = load("device_global");
    let mut counter2 = 0u64;
    // SAFETY: as above.
    unsafe {
        ok(cuda::cuModuleGetGlobal_v2(
            &mut counter2,
            null_mut(),
            m2,
            c"dev_counter".as_ptr(),
        ));
        ok(cuda::cuMemcpyDtoH_v2(arg(&mut v), counter2, 4));
    }
    assert_ne!(counter, counter2);
    assert_eq!(v, 7);
}

fn param_info(f: CUfunction, i: usize) -> Result<(usize, usize), u32> {
    let (mut off, mut size) = (0, 0);
    // SAFETY: valid handle and out-pointers.
    match unsafe { cuda::cuFuncGetParamInfo(f, i, &mut off, &mut size) } {
        0 => Ok((off, size)),
        e => Err(e),
    }
}

fn attribute(f: CUfunction, a: i32) -> i32 {
    let mut v = -1;
    // SAFETY: valid handle and out-pointer.
    ok(unsafe { cuda::cuFuncGetAttribute(&mut v, a, f) });
    v
}

#[test]
fn function_parameters_and_attributes() {
    setup();
    let f = function(load("struct_param"), "struct_param");
    let want = [(0, 24), (24, 8), (32, 8), (40, 4)];
    for (i, w) in want.iter().enumerate() {
        assert_eq!(param_info(f, i), Ok(*w), "param {i}");
    }
    assert_eq!(param_info(f, 4), Err(INVALID_VALUE));
    let sgemm = function(load("sgemm_tiled"), "sgemm_tiled");
    assert_eq!(attribute(sgemm, 1), 2048, "static shared");
    assert_eq!(attribute(f, 0), 1024);
    assert_eq!(attribute(f, 1), 0);
    assert_eq!(attribute(f, 5), 90);
    assert_eq!(attribute(f, 8), 48 * 1024);
    // SAFETY: valid handle.
    unsafe {
        ok(cuda::cuFuncSetAttribute(f, 8, 100 * 1024));
        err(cuda::cuFuncSetAttribute(f, 8, 1 << 20), INVALID_VALUE);
        err(cuda::cuFuncSetAttribute(f, 0, 5), INVALID_VALUE);
        let mut v = 0;
        err(cuda::cuFuncGetAttribute(&mut v, 9999, f), INVALID_VALUE);
        ok(cuda::cuFuncSetCacheConfig(f, 1));
        let mut name: *const c_char = null_mut();
        ok(cuda::cuFuncGetName(&mut name, f));
        assert_eq!(CStr::from_ptr(name).to_str().unwrap(), "struct_param");
    }
    assert_eq!(attribute(f, 8), 100 * 1024);
}

#[test]
fn libraries_and_kernels() {
    setup();
    let ptx = corpus("vector_add");
    let mut lib: CUlibrary = null_mut();
    let mut k: CUkernel = null_mut();
    let mut f: CUfunction = null_mut();
    // SAFETY: valid image, names and out-pointers.
    unsafe {
        ok(cuda::cuLibraryLoadData(
            &mut lib,
            ptx.as_ptr().cast(),
            null_mut(),
            null_mut(),
            0,
            null_mut(),
            null_mut(),
            0,
        ));
        ok(cuda::cuLibraryGetKernel(
            &mut k,
            lib,
            c"vector_add".as_ptr(),
        ));
        err(
            cuda::cuLibraryGetKernel(&mut null_mut(), lib, c"nope".as_ptr()),
            NOT_FOUND,
        );
        let (mut off, mut size) = (0, 0);
        ok(cuda::cuKernelGetParamInfo(k, 3, &mut off, &mut size));
        assert_eq!((off, size), (24, 4));
        err(
            cuda::cuKernelGetParamInfo(k, 4, &mut off, &mut size),
            INVALID_VALUE,
        );
        ok(cuda::cuKernelGetFunction(&mut f, k));
        let mut count = 0u32;
        ok(cuda::cuLibraryGetKernelCount(&mut count, lib));
        assert_eq!(count, 1);
        let mut m: CUmodule = null_mut();
        ok(cuda::cuLibraryGetModule(&mut m, lib));
        let mut fm: CUmodule = null_mut();
        ok(cuda::cuFuncGetModule(&mut fm, f));
        assert_eq!(m, fm);
    }
    // The kernel handle works as a function, for launches and queries.
    let n = 100usize;
    let (mut a, mut b, mut c) = (alloc(n * 4), alloc(n * 4), alloc(n * 4));
    let host: Vec<f32> = (0..n).map(|i| i as f32).collect();
    // SAFETY: valid buffers.
    unsafe {
        ok(cuda::cuMemcpyHtoD_v2(a, host.as_ptr().cast(), n * 4));
        ok(cuda::cuMemcpyHtoD_v2(b, host.as_ptr().cast(), n * 4));
    }
    let mut nn = n as i32;
    ok(launch1d(
        k as CUfunction,
        1,
        128,
        null_mut(),
        &mut [arg(&mut a), arg(&mut b), arg(&mut c), arg(&mut nn)],
    ));
    let mut out = vec![0f32; n];
    // SAFETY: valid buffer.
    ok(unsafe { cuda::cuMemcpyDtoH_v2(out.as_mut_ptr().cast(), c, n * 4) });
    assert!(out.iter().enumerate().all(|(i, v)| *v == 2.0 * i as f32));
    assert_eq!(param_info(k as CUfunction, 0), Ok((0, 8)));
    // SAFETY: valid handles, then stale ones.
    unsafe {
        ok(cuda::cuLibraryUnload(lib));
        err(cuda::cuKernelGetFunction(&mut f, k), INVALID_HANDLE);
    }
}
