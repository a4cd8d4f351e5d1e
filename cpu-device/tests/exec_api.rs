//! In-process tests of the stream, event, copy and launch entry points (default h200 profile, no
//! pacing). Tests run in parallel threads, each with the primary context current.

mod common;
mod cuda;

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::Mutex;

use common::*;
use gpushare_cpu_device::exec::timing::{self, CopyKind};
use gpushare_cpu_device::profile::DeviceProfile;
use gpushare_cpu_device::sys::{CUcontext, CUevent, CUstream};

const INVALID_VALUE: u32 = 1;
const INVALID_HANDLE: u32 = 400;
const ILLEGAL_ADDRESS: u32 = 700;

fn new_event(flags: u32) -> CUevent {
    let mut e: CUevent = null_mut();
    // SAFETY: valid out-pointer.
    ok(unsafe { cuda::cuEventCreate(&mut e, flags) });
    e
}

fn htod(dst: u64, src: &[f32]) {
    // SAFETY: `src` is a live host buffer of the given size.
    ok(unsafe { cuda::cuMemcpyHtoD_v2(dst, src.as_ptr().cast(), std::mem::size_of_val(src)) });
}

fn dtoh(dst: &mut [f32], src: u64) {
    // SAFETY: `dst` is a live host buffer of the given size.
    ok(unsafe { cuda::cuMemcpyDtoH_v2(dst.as_mut_ptr().cast(), src, std::mem::size_of_val(dst)) });
}

/// Buffers a, b, c of `n` floats with a[i] = i, b[i] = 2i.
fn vector_inputs(n: usize) -> (u64, u64, u64) {
    let (a, b, c) = (alloc(n * 4), alloc(n * 4), alloc(n * 4));
    let ha: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let hb: Vec<f32> = (0..n).map(|i| 2.0 * i as f32).collect();
    htod(a, &ha);
    htod(b, &hb);
    (a, b, c)
}

fn check_sum(c: u64, n: usize) {
    let mut hc = vec![0f32; n];
    dtoh(&mut hc, c);
    for (i, v) in hc.iter().enumerate() {
        assert_eq!(*v, 3.0 * i as f32, "c[{i}]");
    }
}

#[test]
fn vector_add_with_kernel_params() {
    setup();
    let m = load("vector_add");
    let f = function(m, "vector_add");
    let n = 1000usize;
    let (mut a, mut b, mut c) = vector_inputs(n);
    let mut nn = n as i32;
    ok(launch1d(
        f,
        4,
        256,
        null_mut(),
        &mut [arg(&mut a), arg(&mut b), arg(&mut c), arg(&mut nn)],
    ));
    check_sum(c, n);
    // Bad shapes are rejected at submission.
    err(
        launch1d(
            f,
            0,
            256,
            null_mut(),
            &mut [arg(&mut a), arg(&mut b), arg(&mut c), arg(&mut nn)],
        ),
        INVALID_VALUE,
    );
    err(
        launch1d(
            f,
            1,
            2048,
            null_mut(),
            &mut [arg(&mut a), arg(&mut b), arg(&mut c), arg(&mut nn)],
        ),
        INVALID_VALUE,
    );
    // SAFETY: both argument forms NULL for a kernel with parameters.
    err(
        unsafe {
            cuda::cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, null_mut(), null_mut(), null_mut())
        },
        INVALID_VALUE,
    );
    // SAFETY: 1 MiB of dynamic shared memory is over the limit; arguments are valid.
    let r = unsafe {
        let mut args = [arg(&mut a), arg(&mut b), arg(&mut c), arg(&mut nn)];
        cuda::cuLaunchKernel(
            f,
            1,
            1,
            1,
            32,
            1,
            1,
            1 << 20,
            null_mut(),
            args.as_mut_ptr(),
            null_mut(),
        )
    };
    err(r, INVALID_VALUE);
}

#[test]
fn vector_add_with_extra() {
    setup();
    let m = load("vector_add");
    let f = function(m, "vector_add");
    let n = 777usize;
    let (a, b, c) = vector_inputs(n);
    #[repr(C)]
    struct Args {
        a: u64,
        b: u64,
        c: u64,
        n: i32,
    }
    let args = Args {
        a,
        b,
        c,
        n: n as i32,
    };
    for size in [28usize, std::mem::size_of::<Args>()] {
        let mut size = size;
        let mut extra: [*mut c_void; 5] = [
            1 as _,
            (&args as *const Args).cast_mut().cast(),
            2 as _,
            arg(&mut size),
            null_mut(),
        ];
        // SAFETY: `extra` is a valid END-terminated list pointing at live values.
        ok(unsafe {
            cuda::cuLaunchKernel(
                f,
                4,
                1,
                1,
                256,
                1,
                1,
                0,
                null_mut(),
                null_mut(),
                extra.as_mut_ptr(),
            )
        });
        check_sum(c, n);
    }
    let mut small = 20usize;
    let mut extra: [*mut c_void; 5] = [
        1 as _,
        (&args as *const Args).cast_mut().cast(),
        2 as _,
        arg(&mut small),
        null_mut(),
    ];
    // SAFETY: as above, with a size that does not match the kernel.
    err(
        unsafe {
            cuda::cuLaunchKernel(
                f,
                4,
                1,
                1,
                256,
                1,
                1,
                0,
                null_mut(),
                null_mut(),
                extra.as_mut_ptr(),
            )
        },
        INVALID_VALUE,
    );
}

static ORDER: Mutex<Vec<u32>> = Mutex::new(Vec::new());

unsafe extern "C" fn push_tag(data: *mut c_void) {
    ORDER.lock().unwrap().push(data as usize as u32);
}

#[test]
fn host_functions_run_in_stream_order() {
    setup();
    let m = load("vector_add");
    let f = function(m, "vector_add");
    let s = new_stream(0);
    let n = 256usize;
    let (mut a, mut b, mut c) = vector_inputs(n);
    let mut nn = n as i32;
    let pinned = alloc_pinned(n * 4);
    // SAFETY: valid stream, callback and tags.
    unsafe {
        ok(cuda::cuLaunchHostFunc(s, Some(push_tag), 1 as _));
        ok(launch1d(
            f,
            1,
            256,
            s,
            &mut [arg(&mut a), arg(&mut b), arg(&mut c), arg(&mut nn)],
        ));
        ok(cuda::cuMemcpyDtoHAsync_v2(pinned.cast(), c, n * 4, s));
        ok(cuda::cuLaunchHostFunc(s, Some(push_tag), 2 as _));
        err(cuda::cuLaunchHostFunc(s, None, null_mut()), INVALID_VALUE);
        ok(cuda::cuStreamSynchronize(s));
        ok(cuda::cuStreamQuery(s));
    }
    assert_eq!(*ORDER.lock().unwrap(), vec![1, 2]);
    // SAFETY: the pinned buffer holds n floats, written by the completed copy.
    let out = unsafe { std::slice::from_raw_parts(pinned.cast::<f32>(), n) };
    assert!(out.iter().enumerate().all(|(i, v)| *v == 3.0 * i as f32));
    // SAFETY: valid stream.
    ok(unsafe { cuda::cuStreamDestroy_v2(s) });
}

/// Host function: after a pause, stores the value `data[0]` at the address `data[1]`.
unsafe extern "C" fn slow_store(data: *mut c_void) {
    std::thread::sleep(std::time::Duration::from_millis(20));
    let cell = data.cast::<[usize; 2]>();
    // SAFETY: the test passes a live [value, address of a u32] pair.
    unsafe { *((*cell)[1] as *mut u32) = (*cell)[0] as u32 };
}

#[test]
fn host_function_writes_are_seen_by_later_copies() {
    setup();
    let s = new_stream(1);
    let host = alloc_pinned(4);
    let dev = alloc(4);
    let mut cell = [5usize, host as usize];
    let mut v = 0u32;
    // SAFETY: valid handles and buffers; `cell` outlives the synchronisation.
    unsafe {
        *host.cast::<u32>() = 1;
        ok(cuda::cuLaunchHostFunc(s, Some(slow_store), arg(&mut cell)));
        ok(cuda::cuMemcpyHtoDAsync_v2(dev, host.cast(), 4, s));
        ok(cuda::cuStreamSynchronize(s));
        ok(cuda::cuMemcpyDtoH_v2(arg(&mut v), dev, 4));
    }
    assert_eq!(v, 5, "the copy ran before the host function of its stream");
    // SAFETY: valid stream.
    ok(unsafe { cuda::cuStreamDestroy_v2(s) });
}

#[test]
fn event_time_is_the_modelled_copy_time() {
    setup();
    let s = new_stream(1);
    let (start, end) = (new_event(0), new_event(0));
    let bytes = 64 << 20;
    let host = alloc_pinned(bytes);
    let dev = alloc(bytes);
    // SAFETY: valid handles and buffers.
    unsafe {
        ok(cuda::cuEventRecord(start, s));
        ok(cuda::cuMemcpyHtoDAsync_v2(dev, host.cast(), bytes, s));
        ok(cuda::cuEventRecord(end, s));
        ok(cuda::cuEventSynchronize(end));
        ok(cuda::cuEventQuery(end));
    }
    let mut ms = 0f32;
    // SAFETY: valid out-pointer and events.
    ok(unsafe { cuda::cuEventElapsedTime(&mut ms, start, end) });
    let (_, want) = timing::copy_cost(
        &DeviceProfile::h200().rates,
        CopyKind::H2D,
        bytes as u64,
        true,
    );
    let want_ms = want as f32 / 1e6;
    // The elapsed time also holds the host-side gap between the two submissions.
    assert!(
        ms >= want_ms * 0.999 && ms < want_ms + 20.0,
        "elapsed {ms} ms, modelled copy {want_ms} ms"
    );
    let mut v2 = 0f32;
    // SAFETY: as above.
    ok(unsafe { cuda::cuEventElapsedTime_v2(&mut v2, start, end) });
    assert_eq!(ms, v2);
    // Never recorded, or created without timing: INVALID_HANDLE.
    let fresh = new_event(0);
    let untimed = new_event(2);
    // SAFETY: valid handles.
    unsafe {
        err(
            cuda::cuEventElapsedTime(&mut ms, start, fresh),
            INVALID_HANDLE,
        );
        ok(cuda::cuEventRecord(untimed, s));
        ok(cuda::cuEventSynchronize(untimed));
        err(
            cuda::cuEventElapsedTime(&mut ms, start, untimed),
            INVALID_HANDLE,
        );
        ok(cuda::cuEventQuery(fresh));
        err(cuda::cuEventCreate(&mut null_mut(), 4), 801);
        ok(cuda::cuEventDestroy_v2(fresh));
        err(cuda::cuEventQuery(fresh), INVALID_HANDLE);
    }
}

/// Records an event on `s` and returns it.
fn mark(s: CUstream) -> CUevent {
    let e = new_event(0);
    // SAFETY: valid handles.
    ok(unsafe { cuda::cuEventRecord(e, s) });
    e
}

fn ms_between(a: CUevent, b: CUevent) -> f32 {
    let mut ms = 0f32;
    // SAFETY: valid handles and out-pointer.
    unsafe {
        ok(cuda::cuEventSynchronize(b));
        ok(cuda::cuEventSynchronize(a));
        ok(cuda::cuEventElapsedTime(&mut ms, a, b));
    }
    ms
}

#[test]
fn legacy_default_stream_semantics() {
    setup();
    let m = load("busy_sleep");
    let f = function(m, "busy_sleep");
    let out = alloc(4 * 32);
    let blocking = new_stream(0);
    let nonblocking = new_stream(1);
    let t0 = mark(blocking);
    // 20 ms of modelled sleep on the blocking stream.
    let (mut p, mut ns, mut iters, mut n) = (out, 1_000_000u32, 20i32, 32i32);
    ok(launch1d(
        f,
        1,
        32,
        blocking,
        &mut [arg(&mut p), arg(&mut ns), arg(&mut iters), arg(&mut n)],
    ));
    let after_kernel = mark(blocking);
    // Work on a non-blocking stream does not wait for it, work on the legacy stream does.
    let free = mark(nonblocking);
    let legacy = mark(null_mut());
    let legacy2 = mark(1 as CUstream);
    assert!(ms_between(t0, after_kernel) >= 20.0);
    assert!(
        ms_between(t0, free) < 10.0,
        "non-blocking stream waited for the blocking one"
    );
    assert!(
        ms_between(after_kernel, legacy) >= 0.0,
        "legacy stream did not wait"
    );
    assert!(
        ms_between(after_kernel, legacy2) >= 0.0,
        "CU_STREAM_LEGACY did not wait"
    );
    // A blocking stream waits for earlier legacy-stream work.
    ok(launch1d(
        f,
        1,
        32,
        null_mut(),
        &mut [arg(&mut p), arg(&mut ns), arg(&mut iters), arg(&mut n)],
    ));
    let legacy_done = mark(null_mut());
    let other = new_stream(0);
    let after_legacy = mark(other);
    assert!(
        ms_between(legacy_done, after_legacy) >= 0.0,
        "blocking stream did not wait for legacy work"
    );
    // The per-thread default stream is a blocking stream too.
    let per_thread = mark(2 as CUstream);
    assert!(ms_between(legacy_done, per_thread) >= 0.0);
    // SAFETY: valid handles.
    unsafe {
        ok(cuda::cuCtxSynchronize());
        for s in [blocking, nonblocking, other] {
            ok(cuda::cuStreamDestroy_v2(s));
        }
    }
}

#[test]
fn stream_handles_and_attributes() {
    let primary = setup();
    let s = new_stream(1);
    let (mut flags, mut prio, mut id, mut ctx) = (9u32, 9i32, 0u64, null_mut());
    // SAFETY: valid handles and out-pointers.
    unsafe {
        ok(cuda::cuStreamGetFlags(s, &mut flags));
        ok(cuda::cuStreamGetPriority(s, &mut prio));
        ok(cuda::cuStreamGetId(s, &mut id));
        ok(cuda::cuStreamGetCtx(s, &mut ctx));
        assert_eq!((flags, prio, ctx), (1, 0, primary));
        let mut hi: CUstream = null_mut();
        ok(cuda::cuStreamCreateWithPriority(&mut hi, 0, -100));
        ok(cuda::cuStreamGetPriority(hi, &mut prio));
        assert_eq!(prio, -5);
        ok(cuda::cuStreamGetCtx(null_mut(), &mut ctx));
        assert_eq!(ctx, primary);
        ok(cuda::cuStreamGetFlags_ptsz(null_mut(), &mut flags));
        assert_eq!(flags, 0);
        err(cuda::cuStreamCreate(&mut null_mut(), 4), INVALID_VALUE);
        ok(cuda::cuStreamDestroy_v2(hi));
        // Destroyed and made-up handles.
        err(cuda::cuStreamQuery(hi), INVALID_HANDLE);
        err(
            cuda::cuStreamSynchronize(0xdead_beef as CUstream),
            INVALID_HANDLE,
        );
        err(cuda::cuStreamDestroy_v2(hi), INVALID_HANDLE);
        // A stream of another context cannot take this context's work.
        let mut other: CUcontext = null_mut();
        ok(cuda::cuCtxCreate_v2(&mut other, 0, 0));
        let theirs = new_stream(0);
        ok(cuda::cuCtxSetCurrent(primary));
        let e = new_event(0);
        err(cuda::cuEventRecord(e, theirs), INVALID_HANDLE);
        ok(cuda::cuStreamQuery(theirs));
        ok(cuda::cuCtxDestroy_v2(other));
        err(cuda::cuStreamQuery(theirs), INVALID_HANDLE);
        ok(cuda::cuCtxSetCurrent(primary));
        ok(cuda::cuStreamDestroy_v2(s));
    }
}

#[test]
fn memsets_and_device_copies() {
    setup();
    let n = 4096usize;
    let a = alloc(n);
    let b = alloc(n);
    let s = new_stream(0);
    let mut host = vec![0u8; n];
    // SAFETY: valid buffers and handles.
    unsafe {
        ok(cuda::cuMemsetD8_v2(a, 0xab, n));
        ok(cuda::cuMemsetD32Async(a + 64, 0x0102_0304, 4, s));
        ok(cuda::cuMemsetD16Async(a + 128, 0xbeef, 2, s));
        ok(cuda::cuMemcpyDtoDAsync_v2(b, a, n, s));
        ok(cuda::cuMemcpyDtoHAsync_v2(
            host.as_mut_ptr().cast(),
            b,
            n,
            s,
        ));
        ok(cuda::cuStreamSynchronize(s));
    }
    assert_eq!(host[0], 0xab);
    assert_eq!(&host[64..68], &0x0102_0304u32.to_ne_bytes());
    assert_eq!(&host[128..130], &0xbeefu16.to_ne_bytes());
    assert_eq!(host[132], 0xab);
    // SAFETY: ranges outside the allocation, and 2-D memset + unified copy within it.
    unsafe {
        err(cuda::cuMemsetD8_v2(a + 1, 0, n), INVALID_VALUE);
        err(
            cuda::cuMemcpyHtoD_v2(a, host.as_ptr().cast(), n + 1),
            INVALID_VALUE,
        );
        err(
            cuda::cuMemcpyDtoH_v2(host.as_mut_ptr().cast(), 0x10, 4),
            INVALID_VALUE,
        );
        ok(cuda::cuMemsetD2D8_v2(a, 64, 7, 16, 4));
        ok(cuda::cuMemcpy(host.as_mut_ptr() as u64, a, n));
    }
    for row in 0..4 {
        assert!(
            host[row * 64..row * 64 + 16].iter().all(|&x| x == 7),
            "row {row}"
        );
        assert_eq!(host[row * 64 + 16], 0xab);
    }
    // SAFETY: valid stream.
    ok(unsafe { cuda::cuStreamDestroy_v2(s) });
}

#[test]
fn a_faulting_kernel_poisons_its_context() {
    let primary = setup();
    let mut ctx: CUcontext = null_mut();
    // SAFETY: valid out-pointer; the new context becomes current on this thread.
    ok(unsafe { cuda::cuCtxCreate_v2(&mut ctx, 0, 0) });
    let m = load("oob_write");
    let f = function(m, "oob_write");
    let buf = alloc(64);
    let (mut p, mut index, mut value) = (buf, 1i64 << 40, 1.0f32);
    ok(launch1d(
        f,
        1,
        32,
        null_mut(),
        &mut [arg(&mut p), arg(&mut index), arg(&mut value)],
    ));
    // SAFETY: plain driver calls.
    unsafe {
        err(cuda::cuCtxSynchronize(), ILLEGAL_ADDRESS);
        err(cuda::cuStreamSynchronize(null_mut()), ILLEGAL_ADDRESS);
        err(
            launch1d(
                f,
                1,
                32,
                null_mut(),
                &mut [arg(&mut p), arg(&mut index), arg(&mut value)],
            ),
            ILLEGAL_ADDRESS,
        );
        err(cuda::cuMemsetD8_v2(buf, 0, 4), ILLEGAL_ADDRESS);
        ok(cuda::cuCtxDestroy_v2(ctx));
        // Other contexts are unaffected.
        ok(cuda::cuCtxSetCurrent(primary));
        ok(cuda::cuCtxSynchronize());
    }
}
