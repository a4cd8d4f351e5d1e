//! Helpers shared by the in-process driver API tests: calling exported entry points, loading the
//! kernel corpus, allocating memory.
#![allow(dead_code)]

use std::ffi::{c_void, CString};
use std::ptr::null_mut;

use crate::cuda;
use gpushare_cpu_device::error::{name_of, CUresult};
use gpushare_cpu_device::state;
use gpushare_cpu_device::sys::{CUcontext, CUfunction, CUmodule, CUstream};

/// Asserts success, naming the error otherwise.
#[track_caller]
pub fn ok(r: CUresult) {
    assert_eq!(r, 0, "CUDA call failed: {}", name_of(r).unwrap_or("?"));
}

/// Asserts a specific error.
#[track_caller]
pub fn err(r: CUresult, want: CUresult) {
    assert_eq!(
        r,
        want,
        "got {}, want {}",
        name_of(r).unwrap_or("?"),
        name_of(want).unwrap_or("?")
    );
}

/// cuInit + the primary context made current on this thread.
pub fn setup() -> CUcontext {
    let mut ctx: CUcontext = null_mut();
    // SAFETY: plain driver calls with valid out-pointers.
    unsafe {
        ok(cuda::cuInit(0));
        ok(cuda::cuDevicePrimaryCtxRetain(&mut ctx, 0));
        ok(cuda::cuCtxSetCurrent(ctx));
    }
    ctx
}

/// A stream created with `flags` (`CU_STREAM_*`).
pub fn new_stream(flags: u32) -> CUstream {
    let mut s: CUstream = null_mut();
    // SAFETY: valid out-pointer.
    ok(unsafe { cuda::cuStreamCreate(&mut s, flags) });
    s
}

/// Handle of this thread's current context.
pub fn current_ctx() -> u64 {
    state::current_handle()
}

/// `n` bytes of device memory in the current context.
pub fn alloc(n: usize) -> u64 {
    state::driver()
        .unwrap()
        .memory
        .alloc(current_ctx(), n as u64)
        .unwrap()
}

/// `n` bytes of pinned host memory, as a pointer.
pub fn alloc_pinned(n: usize) -> *mut u8 {
    state::driver()
        .unwrap()
        .memory
        .host_alloc(current_ctx(), n as u64, 0)
        .unwrap() as *mut u8
}

/// The text of a corpus kernel, NUL-terminated.
pub fn corpus(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../examples/kernels/{name}.ptx",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.push(0);
    text
}

/// Loads a corpus kernel as a module of the current context.
pub fn load(name: &str) -> CUmodule {
    let text = corpus(name);
    let mut m: CUmodule = null_mut();
    // SAFETY: NUL-terminated PTX text, valid out-pointer.
    ok(unsafe { cuda::cuModuleLoadData(&mut m, text.as_ptr().cast()) });
    m
}

/// A function of a module.
pub fn function(m: CUmodule, name: &str) -> CUfunction {
    let mut f: CUfunction = null_mut();
    let cname = CString::new(name).unwrap();
    // SAFETY: valid handle, NUL-terminated name, valid out-pointer.
    ok(unsafe { cuda::cuModuleGetFunction(&mut f, m, cname.as_ptr()) });
    f
}

/// Launches `f` with `kernelParams` built from pointers to the values in `args`.
pub fn launch1d(
    f: CUfunction,
    grid: u32,
    block: u32,
    stream: CUstream,
    args: &mut [*mut c_void],
) -> CUresult {
    // SAFETY: `args` holds one pointer per kernel parameter, each to a live value.
    unsafe {
        cuda::cuLaunchKernel(
            f,
            grid,
            1,
            1,
            block,
            1,
            1,
            0,
            stream,
            args.as_mut_ptr(),
            null_mut(),
        )
    }
}

/// Pointer to a value, as kernelParams wants it.
pub fn arg<T>(v: &mut T) -> *mut c_void {
    (v as *mut T).cast()
}
