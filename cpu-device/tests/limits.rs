//! Hostile modules and honest capacity, in-process through the C layer: a module that nests
//! too deeply is `CUDA_ERROR_INVALID_PTX`, one whose variables exceed the free device memory is
//! `CUDA_ERROR_OUT_OF_MEMORY` before anything is allocated, and the process goes on working; the
//! device memory reported and allocatable follows the host cap or `GPUSHARE_CPU_MEMORY`.

mod common;
mod cuda;

use std::ffi::CString;
use std::ptr::null_mut;
use std::sync::Mutex;

use common::*;
use gpushare_cpu_device::profile::{host_memory, host_memory_cap, DeviceProfile, MEMORY_ENV};
use gpushare_cpu_device::sys::{CUlibrary, CUmodule};

const INVALID_VALUE: u32 = 1;
const OUT_OF_MEMORY: u32 = 2;
const INVALID_PTX: u32 = 218;
const HEADER: &str = ".version 8.0\n.target sm_90\n.address_size 64\n";

/// Free-memory comparisons need the device to themselves.
static LOCK: Mutex<()> = Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    setup();
    guard
}

fn load_text(text: &str) -> Result<CUmodule, u32> {
    let text = CString::new(text).unwrap();
    let mut m: CUmodule = null_mut();
    // SAFETY: NUL-terminated PTX text, valid out-pointer.
    match unsafe { cuda::cuModuleLoadData(&mut m, text.as_ptr().cast()) } {
        0 => Ok(m),
        e => Err(e),
    }
}

fn mem_info() -> (u64, u64) {
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: valid out-pointers.
    ok(unsafe { cuda::cuMemGetInfo_v2(&mut free, &mut total) });
    (free as u64, total as u64)
}

fn total_mem() -> u64 {
    let mut total = 0usize;
    // SAFETY: valid out-pointer, device 0.
    ok(unsafe { cuda::cuDeviceTotalMem_v2(&mut total, 0) });
    total as u64
}

/// The device still works: a corpus kernel loads, runs and computes the right thing.
fn still_alive() {
    let m = load("vector_add");
    let f = function(m, "vector_add");
    let n = 64usize;
    let (mut a, mut b, mut c) = (alloc(n * 4), alloc(n * 4), alloc(n * 4));
    let host: Vec<f32> = (0..n).map(|i| i as f32).collect();
    // SAFETY: buffers of n floats.
    unsafe {
        ok(cuda::cuMemcpyHtoD_v2(a, host.as_ptr().cast(), n * 4));
        ok(cuda::cuMemcpyHtoD_v2(b, host.as_ptr().cast(), n * 4));
    }
    let mut nn = n as i32;
    let args = &mut [arg(&mut a), arg(&mut b), arg(&mut c), arg(&mut nn)];
    ok(launch1d(f, 1, 64, null_mut(), args));
    let mut out = vec![0f32; n];
    // SAFETY: n floats into a buffer of n floats; live allocations and module.
    unsafe {
        ok(cuda::cuMemcpyDtoH_v2(out.as_mut_ptr().cast(), c, n * 4));
        for p in [a, b, c] {
            ok(cuda::cuMemFree_v2(p));
        }
        ok(cuda::cuModuleUnload(m));
    }
    assert!(out.iter().enumerate().all(|(i, &v)| v == 2.0 * i as f32));
}

fn kernel(body: &str) -> String {
    format!(
        "{HEADER}.visible .entry k()\n{{\n.reg .b32 %r<4>;\n.reg .b64 %rd<4>;\n{body}\nret;\n}}\n"
    )
}

#[test]
fn ten_thousand_nested_parentheses_are_invalid_ptx() {
    let _g = exclusive();
    let parens = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let operand = kernel(&format!("add.s32 %r1, {parens}, 2;"));
    assert!(operand.len() > 20_000);
    assert_eq!(load_text(&operand).err(), Some(INVALID_PTX));
    let braces = format!("{}1{}", "{".repeat(10_000), "}".repeat(10_000));
    let init = format!("{HEADER}.global .b32 g[1] = {braces};\n");
    assert_eq!(load_text(&init).err(), Some(INVALID_PTX));
    let blocks = kernel(&format!("{}{}", "{".repeat(10_000), "}".repeat(10_000)));
    assert_eq!(load_text(&blocks).err(), Some(INVALID_PTX));
    // Through the library API too (parsed at load).
    let text = CString::new(operand).unwrap();
    let mut lib: CUlibrary = null_mut();
    // SAFETY: NUL-terminated PTX, no options, valid out-pointer.
    let r = unsafe {
        cuda::cuLibraryLoadData(
            &mut lib,
            text.as_ptr().cast(),
            null_mut(),
            null_mut(),
            0,
            null_mut(),
            null_mut(),
            0,
        )
    };
    err(r, INVALID_PTX);
    still_alive();
}

#[test]
fn a_64_gib_global_is_out_of_memory() {
    let _g = exclusive();
    let (free, total) = mem_info();
    // 64 GiB, or more than the device has where its memory is larger than that.
    let size = (64u64 << 30).max(total + (1 << 30));
    for decl in [
        format!(".global .b8 big[{size}];"),
        format!(".global .align 8 .u64 big[{}] = {{1, 2, 3}};", size / 8),
        format!(".const .b8 big[{size}];"),
        // Each fits, together they do not.
        format!(
            ".global .b8 a[{}];\n.global .b8 b[{}];",
            free / 2 + 4096,
            free / 2 + 4096
        ),
    ] {
        let src = format!("{HEADER}{decl}\n{}", kernel("").trim_start_matches(HEADER));
        assert_eq!(load_text(&src).err(), Some(OUT_OF_MEMORY), "{decl}");
        assert_eq!(mem_info().0, free, "nothing stays allocated after {decl}");
    }
    // Sizes whose total does not fit in 64 bits are malformed PTX.
    let half = i64::MAX;
    let src =
        format!("{HEADER}.global .b8 a[{half}];\n.global .b8 b[{half}];\n.global .b8 c[4];\n");
    assert_eq!(load_text(&src).err(), Some(INVALID_PTX));
    // A library parses at load and allocates its variables when first used in a context.
    let src = CString::new(format!("{HEADER}.global .b8 big[{size}];\n")).unwrap();
    let mut lib: CUlibrary = null_mut();
    let mut m: CUmodule = null_mut();
    // SAFETY: NUL-terminated PTX, no options, valid out-pointers; a live library.
    unsafe {
        let r = cuda::cuLibraryLoadData(
            &mut lib,
            src.as_ptr().cast(),
            null_mut(),
            null_mut(),
            0,
            null_mut(),
            null_mut(),
            0,
        );
        if r == 0 {
            err(cuda::cuLibraryGetModule(&mut m, lib), OUT_OF_MEMORY);
            ok(cuda::cuLibraryUnload(lib));
        } else {
            err(r, OUT_OF_MEMORY);
        }
    }
    assert_eq!(mem_info().0, free);
    still_alive();
}

#[test]
fn a_global_that_fits_is_allocated_and_freed() {
    let _g = exclusive();
    let (free, _) = mem_info();
    let size = 64u64 << 20;
    let src = format!(
        "{HEADER}.global .align 8 .u64 g[{}] = {{7, 8}};\n",
        size / 8
    );
    let m = load_text(&src).expect("a 64 MiB global fits");
    let (mut dptr, mut bytes) = (0u64, 0usize);
    // SAFETY: live module, NUL-terminated name, valid out-pointers.
    ok(unsafe { cuda::cuModuleGetGlobal_v2(&mut dptr, &mut bytes, m, c"g".as_ptr()) });
    assert_eq!(bytes as u64, size);
    assert!(mem_info().0 <= free - size);
    let mut head = [0u64; 2];
    let mut tail = 1u64;
    // SAFETY: reads inside the 64 MiB variable; then a live module.
    unsafe {
        ok(cuda::cuMemcpyDtoH_v2(head.as_mut_ptr().cast(), dptr, 16));
        ok(cuda::cuMemcpyDtoH_v2(
            (&mut tail as *mut u64).cast(),
            dptr + size - 8,
            8,
        ));
        ok(cuda::cuModuleUnload(m));
    }
    assert_eq!((head, tail), ([7, 8], 0), "initialised head, zero tail");
    assert_eq!(mem_info().0, free);
}

#[test]
fn shared_local_and_register_limits_are_invalid_ptx() {
    let _g = exclusive();
    for body in [
        ".shared .b8 s[68719476736];\nmov.u64 %rd1, s;",
        ".shared .b8 s[300000];\nmov.u64 %rd1, s;",
        ".local .b8 l[68719476736];\nmov.u64 %rd1, l;",
        ".local .b8 l[1048576];\nmov.u64 %rd1, l;",
        ".reg .b32 %x<4000000000>;",
    ] {
        assert_eq!(load_text(&kernel(body)).err(), Some(INVALID_PTX), "{body}");
    }
    let params = format!("{HEADER}.visible .entry k(.param .b8 p[68719476736])\n{{\nret;\n}}\n");
    assert_eq!(load_text(&params).err(), Some(INVALID_PTX));
    still_alive();
}

#[test]
fn device_memory_follows_the_host_cap() {
    let _g = exclusive();
    let total = total_mem();
    assert_eq!(
        mem_info().1,
        total,
        "cuMemGetInfo and cuDeviceTotalMem agree"
    );
    let profile = DeviceProfile::from_env().unwrap();
    assert_eq!(total, profile.total_memory);
    if std::env::var_os(MEMORY_ENV).is_none() {
        let host = host_memory().expect("host memory");
        assert!(
            total <= host_memory_cap(host),
            "{total} over the cap of a {host}-byte host"
        );
        let named = DeviceProfile::by_name(profile.key).unwrap().total_memory;
        assert_eq!(total, named.min(host_memory_cap(host)));
    }
    let mut p = 0u64;
    // SAFETY: valid out-pointer.
    err(
        unsafe { cuda::cuMemAlloc_v2(&mut p, (total + (1 << 20)) as usize) },
        OUT_OF_MEMORY,
    );
}

/// `GPUSHARE_CPU_MEMORY` values and the device memory each gives (`None`: `cuInit` fails).
const ENV_CASES: &[(&str, Option<u64>)] = &[
    ("3GiB", Some(3 << 30)),
    ("1073741824", Some(1 << 30)),
    ("300GiB", Some(300 << 30)),
    ("lots", None),
    ("0", None),
];

#[test]
fn memory_size_from_the_environment() {
    let exe = std::env::current_exe().unwrap();
    for &(value, want) in ENV_CASES {
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "child_reports_memory",
                "--ignored",
                "--test-threads=1",
            ])
            .env(MEMORY_ENV, value)
            .env(
                "GPUSHARE_TEST_WANT_MEMORY",
                want.map_or("error".into(), |w| w.to_string()),
            )
            .env_remove("GPUSHARE_CPU_PROFILE")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{MEMORY_ENV}={value}: {stdout}\n{stderr}"
        );
    }
}

/// Run by [`memory_size_from_the_environment`] in a child process with `GPUSHARE_CPU_MEMORY` set.
#[test]
#[ignore = "runs in a child process of memory_size_from_the_environment"]
fn child_reports_memory() {
    let Ok(want) = std::env::var("GPUSHARE_TEST_WANT_MEMORY") else {
        return;
    };
    if want == "error" {
        // SAFETY: plain call.
        assert_eq!(unsafe { cuda::cuInit(0) }, INVALID_VALUE);
        return;
    }
    let want: u64 = want.parse().unwrap();
    setup();
    assert_eq!(total_mem(), want);
    assert_eq!(mem_info(), (want, want));
    let mut p = 0u64;
    // SAFETY: valid out-pointer.
    err(
        unsafe { cuda::cuMemAlloc_v2(&mut p, (want + 4096) as usize) },
        OUT_OF_MEMORY,
    );
}
