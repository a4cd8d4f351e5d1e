//! Host functions with pacing (`GPUSHARE_CPU_PACING=1`, small profile): they run on the
//! host-callback thread at their modelled start, so a host function waiting for a long kernel does
//! not hold back other streams' work, while everything that depends on it still waits for it
//! (later work of its stream, an event recorded after it, legacy-stream barriers, context
//! synchronisation). Orderings are asserted through flags and copied values, never wall time.
//!
//! The tests share the primary context and one host-callback thread, so they run one at a time.

mod common;
mod cuda;

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::*;
use gpushare_cpu_device::sys::{CUevent, CUstream};

const NON_BLOCKING: u32 = 1;

static SERIAL: Mutex<()> = Mutex::new(());

/// Pacing on, the primary context current; holds the lock that serialises the tests.
fn paced() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("GPUSHARE_CPU_PACING", "1");
    std::env::set_var("GPUSHARE_CPU_PROFILE", "small");
    setup();
    guard
}

/// Launches a kernel of `ms` milliseconds of modelled time (busy_sleep) on `s`.
fn sleep_kernel(s: CUstream, ms: i32) {
    let f = function(load("busy_sleep"), "busy_sleep");
    let (mut p, mut ns, mut iters, mut n) = (alloc(4 * 64), 1_000_000u32, ms, 64i32);
    ok(launch1d(
        f,
        1,
        64,
        s,
        &mut [arg(&mut p), arg(&mut ns), arg(&mut iters), arg(&mut n)],
    ));
}

/// Host function: stores the value `data` points at (a `[u32; 2]`: value, destination address).
unsafe extern "C" fn store(data: *mut c_void) {
    let cell = data.cast::<[usize; 2]>();
    // SAFETY: the tests pass a live [value, address of a u32] pair.
    unsafe { *((*cell)[1] as *mut u32) = (*cell)[0] as u32 };
}

/// Host function: sets the flag `data` points at.
unsafe extern "C" fn set_flag(data: *mut c_void) {
    // SAFETY: the tests pass a live AtomicU32.
    unsafe { (*data.cast::<AtomicU32>()).store(1, SeqCst) };
}

static A_RAN: AtomicU32 = AtomicU32::new(0);
static B_SAW_A: AtomicU32 = AtomicU32::new(u32::MAX);

/// Host function of stream B: records whether A's host function had run.
unsafe extern "C" fn note_a(_: *mut c_void) {
    B_SAW_A.store(A_RAN.load(SeqCst), SeqCst);
}

/// Copies the u32 at pinned `host` to device memory on `s`, synchronises `s`, returns the value.
fn through_device(host: *mut u8, s: CUstream) -> u32 {
    let dev = alloc(4);
    let mut v = 0u32;
    // SAFETY: `host` is 4 bytes of pinned memory, `dev` 4 bytes of device memory.
    unsafe {
        ok(cuda::cuMemcpyHtoDAsync_v2(dev, host.cast(), 4, s));
        ok(cuda::cuStreamSynchronize(s));
        ok(cuda::cuMemcpyDtoH_v2(arg(&mut v), dev, 4));
    }
    v
}

#[test]
fn host_function_does_not_hold_back_other_streams() {
    let _serial = paced();
    let (a, b) = (new_stream(NON_BLOCKING), new_stream(NON_BLOCKING));
    A_RAN.store(0, SeqCst);
    // A: 200 ms of modelled kernel, then a host function (modelled start: after the kernel).
    sleep_kernel(a, 200);
    let a_flag: *const AtomicU32 = &A_RAN;
    // SAFETY: valid stream, callback and static flag.
    ok(unsafe { cuda::cuLaunchHostFunc(a, Some(set_flag), a_flag as *mut c_void) });
    // B: a short copy and a host function, both modelled at once (the copy engine is idle).
    let (host, dev) = (alloc_pinned(4), alloc(4));
    // SAFETY: valid stream, buffers and callback.
    unsafe {
        ok(cuda::cuMemcpyHtoDAsync_v2(dev, host.cast(), 4, b));
        ok(cuda::cuLaunchHostFunc(b, Some(note_a), null_mut()));
        ok(cuda::cuStreamSynchronize(b));
        ok(cuda::cuStreamQuery(b));
    }
    assert_eq!(
        A_RAN.load(SeqCst),
        0,
        "B's work waited for A's host function"
    );
    assert_eq!(B_SAW_A.load(SeqCst), 0, "B's host function ran after A's");
    // SAFETY: valid stream.
    ok(unsafe { cuda::cuStreamSynchronize(a) });
    assert_eq!(A_RAN.load(SeqCst), 1);
}

#[test]
fn later_work_of_the_stream_waits_for_its_host_function() {
    let _serial = paced();
    let s = new_stream(NON_BLOCKING);
    let host = alloc_pinned(4);
    // SAFETY: 4 bytes of pinned memory.
    unsafe { *host.cast::<u32>() = 1 };
    sleep_kernel(s, 30);
    let mut cell = [42usize, host as usize];
    let flag = AtomicU32::new(0);
    // SAFETY: valid stream and callbacks; `cell` and `flag` outlive the synchronisation below.
    unsafe {
        ok(cuda::cuLaunchHostFunc(s, Some(store), arg(&mut cell)));
        let flag_ptr: *const AtomicU32 = &flag;
        ok(cuda::cuLaunchHostFunc(
            s,
            Some(set_flag),
            flag_ptr as *mut c_void,
        ));
    }
    assert_eq!(
        through_device(host, s),
        42,
        "the copy ran before the host function"
    );
    assert_eq!(flag.load(SeqCst), 1);
}

/// Host function: fills the pinned `[f32; 64]` at `data` with 0, 1, 2, …
unsafe extern "C" fn fill_ramp(data: *mut c_void) {
    // SAFETY: the test passes 64 floats of pinned memory.
    let v = unsafe { std::slice::from_raw_parts_mut(data.cast::<f32>(), 64) };
    for (i, x) in v.iter_mut().enumerate() {
        *x = i as f32;
    }
}

#[test]
fn a_kernel_sees_a_copy_deferred_behind_a_host_function() {
    let _serial = paced();
    let s = new_stream(NON_BLOCKING);
    let f = function(load("vector_add"), "vector_add");
    let n = 64usize;
    let (host, out) = (alloc_pinned(n * 4), alloc_pinned(n * 4));
    let (mut a, mut b, mut c, mut nn) = (alloc(n * 4), alloc(n * 4), alloc(n * 4), n as i32);
    // 8 ms of modelled copy, so that the copy into `a` starts well after the host function.
    let big = 16 << 20;
    let (big_host, big_dev) = (alloc_pinned(big), alloc(big));
    sleep_kernel(s, 30);
    // SAFETY: valid handles; pinned buffers of n floats and of `big` bytes.
    unsafe {
        ok(cuda::cuMemsetD32_v2(b, 0, n));
        ok(cuda::cuLaunchHostFunc(s, Some(fill_ramp), host.cast()));
        // These run after the host function, on the host-callback thread.
        ok(cuda::cuMemcpyHtoDAsync_v2(big_dev, big_host.cast(), big, s));
        ok(cuda::cuMemcpyHtoDAsync_v2(a, host.cast(), n * 4, s));
        ok(cuda::cuMemsetD32Async(b, 2.0f32.to_bits(), n, s));
    }
    // The kernel waits for them on the executor.
    ok(launch1d(
        f,
        1,
        64,
        s,
        &mut [arg(&mut a), arg(&mut b), arg(&mut c), arg(&mut nn)],
    ));
    // SAFETY: valid handles and buffers.
    unsafe {
        ok(cuda::cuMemcpyDtoHAsync_v2(out.cast(), c, n * 4, s));
        ok(cuda::cuStreamSynchronize(s));
    }
    // SAFETY: `out` holds n floats written by the completed copy.
    let got = unsafe { std::slice::from_raw_parts(out.cast::<f32>(), n) };
    for (i, v) in got.iter().enumerate() {
        assert_eq!(*v, i as f32 + 2.0, "c[{i}]");
    }
}

#[test]
fn event_recorded_after_a_host_function_orders_other_streams() {
    let _serial = paced();
    let (a, b) = (new_stream(NON_BLOCKING), new_stream(NON_BLOCKING));
    let host = alloc_pinned(4);
    // SAFETY: 4 bytes of pinned memory.
    unsafe { *host.cast::<u32>() = 1 };
    let mut e: CUevent = null_mut();
    let mut cell = [7usize, host as usize];
    sleep_kernel(a, 30);
    // SAFETY: valid handles; `cell` outlives the synchronisation below.
    unsafe {
        ok(cuda::cuEventCreate(&mut e, 0));
        ok(cuda::cuLaunchHostFunc(a, Some(store), arg(&mut cell)));
        ok(cuda::cuEventRecord(e, a));
        ok(cuda::cuStreamWaitEvent(b, e, 0));
    }
    assert_eq!(
        through_device(host, b),
        7,
        "B's copy ran before A's host function"
    );
    // SAFETY: valid event.
    ok(unsafe { cuda::cuEventQuery(e) });
}

#[test]
fn legacy_stream_barriers_wait_for_host_functions() {
    let _serial = paced();
    let host = alloc_pinned(4);
    // A blocking stream's host function, then a synchronous copy (legacy stream).
    let blocking = new_stream(0);
    sleep_kernel(blocking, 30);
    let mut cell = [9usize, host as usize];
    let dev = alloc(4);
    let mut v = 0u32;
    // SAFETY: valid handles and buffers; `cell` outlives the synchronous copy.
    unsafe {
        ok(cuda::cuLaunchHostFunc(
            blocking,
            Some(store),
            arg(&mut cell),
        ));
        ok(cuda::cuMemcpyHtoD_v2(dev, host.cast(), 4));
        ok(cuda::cuMemcpyDtoH_v2(arg(&mut v), dev, 4));
    }
    assert_eq!(
        v, 9,
        "the legacy-stream copy ran before the blocking stream's host function"
    );
    // A legacy-stream host function, then a blocking stream's copy.
    sleep_kernel(null_mut(), 30);
    let mut cell = [11usize, host as usize];
    // SAFETY: valid callback; `cell` outlives the synchronisation in through_device.
    ok(unsafe { cuda::cuLaunchHostFunc(null_mut(), Some(store), arg(&mut cell)) });
    assert_eq!(
        through_device(host, new_stream(0)),
        11,
        "the blocking stream did not wait"
    );
}

static RELEASED: AtomicU32 = AtomicU32::new(0);
static SLOW_DONE: AtomicU32 = AtomicU32::new(0);

/// Host function that returns only once another thread sets RELEASED.
unsafe extern "C" fn slow(_: *mut c_void) {
    while RELEASED.load(SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    SLOW_DONE.store(1, SeqCst);
}

#[test]
fn context_synchronisation_waits_for_host_functions() {
    let _serial = paced();
    let (a, b) = (new_stream(NON_BLOCKING), new_stream(NON_BLOCKING));
    SLOW_DONE.store(0, SeqCst);
    RELEASED.store(0, SeqCst);
    // SAFETY: valid stream and callback.
    ok(unsafe { cuda::cuLaunchHostFunc(a, Some(slow), null_mut()) });
    // The context's last op is B's, done long before A's host function returns.
    let dev = alloc(4);
    // SAFETY: 4 bytes of device memory.
    ok(unsafe { cuda::cuMemsetD8Async(dev, 0, 4, b) });
    let release = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(50));
        RELEASED.store(1, SeqCst);
    });
    // SAFETY: plain driver call.
    ok(unsafe { cuda::cuCtxSynchronize() });
    assert_eq!(
        SLOW_DONE.load(SeqCst),
        1,
        "cuCtxSynchronize returned before a host function"
    );
    release.join().unwrap();
}
