//! Pacing (`GPUSHARE_CPU_PACING=1`, small profile): completions become visible at their modelled
//! end, so a nanosleep kernel is observably pending, and host functions run at their modelled start.
//! One test function, because the driver reads the environment once per process.

mod common;
mod cuda;

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use common::*;
use gpushare_cpu_device::state;
use gpushare_cpu_device::sys::{CUevent, CUstream};

const NOT_READY: u32 = 600;

static HOST_FN_AT: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn stamp(_: *mut c_void) {
    HOST_FN_AT.store(state::driver().unwrap().now_ns(), Ordering::SeqCst);
}

#[test]
fn paced_completion_follows_the_model() {
    std::env::set_var("GPUSHARE_CPU_PACING", "1");
    std::env::set_var("GPUSHARE_CPU_PROFILE", "small");
    setup();
    let f = function(load("busy_sleep"), "busy_sleep");
    let out = alloc(4 * 64);
    let mut s: CUstream = null_mut();
    let (mut start, mut end): (CUevent, CUevent) = (null_mut(), null_mut());
    // SAFETY: valid out-pointers.
    unsafe {
        ok(cuda::cuStreamCreate(&mut s, 1));
        ok(cuda::cuEventCreate(&mut start, 0));
        ok(cuda::cuEventCreate(&mut end, 0));
        ok(cuda::cuEventRecord(start, s));
    }
    // 100 ms of modelled sleep: 100 x 1 ms (the most one nanosleep may take) per thread.
    let (mut p, mut ns, mut iters, mut n) = (out, 1_000_000u32, 100i32, 64i32);
    let t0 = Instant::now();
    ok(launch1d(
        f,
        1,
        64,
        s,
        &mut [arg(&mut p), arg(&mut ns), arg(&mut iters), arg(&mut n)],
    ));
    // SAFETY: valid handles and callback.
    unsafe {
        ok(cuda::cuEventRecord(end, s));
        ok(cuda::cuLaunchHostFunc(s, Some(stamp), null_mut()));
        err(cuda::cuStreamQuery(s), NOT_READY);
        err(cuda::cuEventQuery(end), NOT_READY);
        let mut ms = 0f32;
        err(cuda::cuEventElapsedTime(&mut ms, start, end), NOT_READY);
        ok(cuda::cuEventSynchronize(end));
        let waited = t0.elapsed().as_secs_f64() * 1e3;
        assert!(
            waited >= 95.0,
            "event completed after {waited} ms of wall time, model says 100 ms"
        );
        ok(cuda::cuEventElapsedTime(&mut ms, start, end));
        assert!((100.0..150.0).contains(&ms), "elapsed {ms} ms");
        ok(cuda::cuStreamSynchronize(s));
        ok(cuda::cuStreamQuery(s));
    }
    // The host function ran no earlier than the kernel's modelled end.
    let d = state::driver().unwrap();
    let kernel_end = d
        .exec
        .events
        .get(end as u64)
        .unwrap()
        .recorded()
        .unwrap()
        .span()
        .end;
    let host_at = HOST_FN_AT.load(Ordering::SeqCst);
    assert!(
        host_at >= kernel_end,
        "host function ran at {host_at} ns, before the kernel's end {kernel_end} ns"
    );
    // Context synchronisation waits for the model too.
    ok(launch1d(
        f,
        1,
        64,
        null_mut(),
        &mut [arg(&mut p), arg(&mut ns), arg(&mut iters), arg(&mut n)],
    ));
    let t1 = Instant::now();
    // SAFETY: plain driver call.
    ok(unsafe { cuda::cuCtxSynchronize() });
    assert!(t1.elapsed().as_secs_f64() * 1e3 >= 95.0);
}
