//! Stream memory-operation waits (`cuStreamWaitValue32`/`64`) and the wake-up of stream writes
//! (`cuStreamWriteValue32`): work behind a wait runs only once the word meets the condition, other
//! streams go on meanwhile, and a write wakes whoever sleeps on its word. Waits are observed through
//! `cuStreamQuery` and copied bytes, polled with deadlines so that a broken wait fails a test
//! instead of hanging it.
//!
//! The tests share the primary context and the device's threads, so they run one at a time.

mod common;
mod cuda;

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;
use gpushare_cpu_device::sys::{CUcontext, CUstream};
use gpushare_os::futex::{futex_wait, futex_wake};

const NON_BLOCKING: u32 = 1;
const GEQ: u32 = 0;
const EQ: u32 = 1;
const AND: u32 = 2;
const NOR: u32 = 3;
const FLUSH: u32 = 1 << 30;
const INVALID_VALUE: u32 = 1;
const NOT_READY: u32 = 600;

static SERIAL: Mutex<()> = Mutex::new(());

/// The primary context current; holds the lock that serialises the tests.
fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    setup();
    guard
}

/// The 32-bit word at a device address (device addresses are host addresses on the CPU device).
fn word(addr: u64) -> &'static AtomicU32 {
    // SAFETY: the tests pass 4-byte aligned device or pinned memory they never free.
    unsafe { AtomicU32::from_ptr(addr as *mut u32) }
}

/// Stores `v` in the word at `addr` from the host and wakes its futex waiters.
fn set_word(addr: u64, v: u32) {
    word(addr).store(v, SeqCst);
    futex_wake(word(addr), u32::MAX).unwrap();
}

fn wait32(s: CUstream, addr: u64, value: u32, flags: u32) -> u32 {
    // SAFETY: plain driver call.
    unsafe { cuda::cuStreamWaitValue32_v2(s, addr, value, flags) }
}

fn query(s: CUstream) -> u32 {
    // SAFETY: valid stream.
    unsafe { cuda::cuStreamQuery(s) }
}

/// Whether the stream's work completes within `ms` milliseconds (polled: never hangs).
fn done_within(s: CUstream, ms: u64) -> bool {
    let t = Instant::now();
    loop {
        match query(s) {
            0 => return true,
            r => assert_eq!(r, NOT_READY),
        }
        if t.elapsed() > Duration::from_millis(ms) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether the stream is still busy after `ms` milliseconds.
fn still_waiting(s: CUstream, ms: u64) -> bool {
    std::thread::sleep(Duration::from_millis(ms));
    query(s) == NOT_READY
}

/// `n` bytes of the device memory at `dev`, through a synchronous copy (legacy stream).
fn read(dev: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    // SAFETY: `dev` holds `n` bytes of device memory; `v` has room for them.
    ok(unsafe { cuda::cuMemcpyDtoH_v2(v.as_mut_ptr().cast(), dev, n) });
    v
}

/// Device memory of `n` bytes, each `byte`.
fn filled(n: usize, byte: u8) -> u64 {
    let d = alloc(n);
    // SAFETY: `d` holds `n` bytes.
    ok(unsafe { cuda::cuMemsetD8_v2(d, byte, n) });
    d
}

#[test]
fn a_copy_behind_a_wait_runs_once_another_stream_writes_the_word() {
    let _serial = serial();
    let (a, b) = (new_stream(NON_BLOCKING), new_stream(NON_BLOCKING));
    let (flag, dst, src) = (filled(4, 0), filled(64, 0xAA), alloc_pinned(64));
    // SAFETY: 64 bytes of pinned memory.
    unsafe { std::ptr::write_bytes(src, 0x55, 64) };
    ok(wait32(a, flag, 1, GEQ));
    // SAFETY: valid stream and buffers.
    ok(unsafe { cuda::cuMemcpyHtoDAsync_v2(dst, src.cast(), 64, a) });
    let waited = still_waiting(a, 50);
    let before = read(dst, 64);
    // SAFETY: valid stream; `flag` is 4 bytes of device memory.
    ok(unsafe { cuda::cuStreamWriteValue32_v2(b, flag, 1, 0) });
    let done = done_within(a, 5000);
    assert!(waited, "the wait did not hold the stream");
    assert_eq!(
        before,
        vec![0xAA; 64],
        "the copy ran before the word was written"
    );
    assert!(done, "the stream write did not end the wait");
    assert_eq!(read(dst, 64), vec![0x55; 64]);
}

/// Host function: sets the flag `data` points at.
unsafe extern "C" fn set_flag(data: *mut c_void) {
    // SAFETY: the tests pass a live AtomicU32.
    unsafe { (*data.cast::<AtomicU32>()).store(1, SeqCst) };
}

#[test]
fn other_streams_run_while_a_stream_waits() {
    let _serial = serial();
    let (a, b) = (new_stream(NON_BLOCKING), new_stream(NON_BLOCKING));
    let flag = filled(4, 0);
    ok(wait32(a, flag, 1, GEQ));
    // B: memsets, a kernel, a host function and a memset deferred behind it.
    let n = 64usize;
    let f = function(load("vector_add"), "vector_add");
    let (mut x, mut y, mut z, mut nn) = (alloc(n * 4), alloc(n * 4), alloc(n * 4), n as i32);
    let (out, after_hostfn) = (alloc_pinned(n * 4), filled(4, 0));
    let ran = AtomicU32::new(0);
    // SAFETY: valid stream and buffers of n floats.
    unsafe {
        ok(cuda::cuMemsetD32Async(x, 1.0f32.to_bits(), n, b));
        ok(cuda::cuMemsetD32Async(y, 2.0f32.to_bits(), n, b));
    }
    let args = &mut [arg(&mut x), arg(&mut y), arg(&mut z), arg(&mut nn)];
    ok(launch1d(f, 1, 64, b, args));
    let ran_ptr: *const AtomicU32 = &ran;
    // SAFETY: valid handles; `ran` outlives the polling below, which sees the host function done.
    unsafe {
        ok(cuda::cuMemcpyDtoHAsync_v2(out.cast(), z, n * 4, b));
        ok(cuda::cuLaunchHostFunc(
            b,
            Some(set_flag),
            ran_ptr as *mut c_void,
        ));
        ok(cuda::cuMemsetD32Async(after_hostfn, 9, 1, b));
    }
    let b_done = done_within(b, 5000);
    let a_waiting = query(a) == NOT_READY;
    set_word(flag, 1);
    let a_done = done_within(a, 5000);
    assert!(b_done, "B's work waited for A's stream wait");
    assert!(a_waiting, "A's wait ended without the word being written");
    assert!(a_done, "the host write did not end A's wait");
    assert_eq!(ran.load(SeqCst), 1);
    assert_eq!(read(after_hostfn, 4), 9u32.to_ne_bytes());
    // SAFETY: `out` holds n floats written by the completed copy.
    let got = unsafe { std::slice::from_raw_parts(out.cast::<f32>(), n) };
    assert!(got.iter().all(|v| *v == 3.0), "{got:?}");
}

#[test]
fn a_kernel_behind_a_wait_sees_the_work_queued_before_it() {
    let _serial = serial();
    let s = new_stream(NON_BLOCKING);
    let n = 64usize;
    let f = function(load("vector_add"), "vector_add");
    let (mut x, mut y, mut z, mut nn) = (alloc(n * 4), alloc(n * 4), alloc(n * 4), n as i32);
    let flag = filled(4, 0);
    // SAFETY: buffers of n floats.
    unsafe {
        ok(cuda::cuMemsetD32_v2(x, 1.0f32.to_bits(), n));
        ok(cuda::cuMemsetD32_v2(y, 0, n));
    }
    ok(wait32(s, flag, 1, GEQ));
    // Deferred behind the wait; the kernel waits for both on the executor thread.
    // SAFETY: valid stream and buffer.
    ok(unsafe { cuda::cuMemsetD32Async(y, 4.0f32.to_bits(), n, s) });
    ok(launch1d(
        f,
        1,
        64,
        s,
        &mut [arg(&mut x), arg(&mut y), arg(&mut z), arg(&mut nn)],
    ));
    let waited = still_waiting(s, 50);
    set_word(flag, 1);
    let done = done_within(s, 5000);
    assert!(waited && done);
    let got = read(z, n * 4);
    assert!(got.chunks(4).all(|c| c == 5.0f32.to_ne_bytes()));
}

/// Waits on `s` for the word at `addr` (set to `initial`) against `value` under `flags`: the wait
/// must hold until the host stores `opening`, then end.
fn holds_until(s: CUstream, addr: u64, (initial, value, flags, opening): (u32, u32, u32, u32)) {
    set_word(addr, initial);
    ok(wait32(s, addr, value, flags));
    let waited = still_waiting(s, 20);
    set_word(addr, opening);
    let done = done_within(s, 5000);
    let case = format!("word {initial:#x} value {value:#x} flags {flags:#x} opening {opening:#x}");
    assert!(waited, "did not wait: {case}");
    assert!(done, "did not end: {case}");
}

#[test]
fn wait_conditions_follow_cuda_and_bad_arguments_are_refused() {
    let _serial = serial();
    let s = new_stream(NON_BLOCKING);
    let flag = filled(4, 0);
    holds_until(s, flag, (5, 6, EQ, 6));
    holds_until(s, flag, (0b0100, 0b0011, AND, 0b0010));
    holds_until(s, flag, (0xFFFF_0000, 0x0000_FFFF, NOR, 0x7FFF_0000));
    // GEQ compares the wrapped difference as signed; FLUSH is accepted.
    holds_until(s, flag, (0xFFFF_FFF0, 0x10, GEQ | FLUSH, 0x10));
    // Conditions that already hold.
    for (initial, value, flags) in [(5, 5, EQ), (5, 0xFFFF_FFF0, GEQ), (1, 3, AND), (0, 0, NOR)] {
        set_word(flag, initial);
        ok(wait32(s, flag, value, flags));
        assert!(done_within(s, 5000), "{initial:#x} {value:#x} {flags:#x}");
    }
    for bad in [4, 1 << 29, 1 << 31] {
        err(wait32(s, flag, 0, bad), INVALID_VALUE);
    }
    err(wait32(s, flag + 2, 0, GEQ), INVALID_VALUE);
    let on_stack = 0u32;
    err(
        wait32(s, &on_stack as *const u32 as u64, 0, GEQ),
        INVALID_VALUE,
    );
}

#[test]
fn wait_value64_compares_all_64_bits() {
    let _serial = serial();
    let s = new_stream(NON_BLOCKING);
    let w = filled(8, 0);
    // SAFETY: `w` is 8 bytes of device memory, 8-byte aligned, never freed.
    let w64 = unsafe { AtomicU64::from_ptr(w as *mut u64) };
    w64.store((1 << 32) - 1, SeqCst);
    // SAFETY: plain driver calls.
    unsafe {
        ok(cuda::cuStreamWaitValue64_v2(s, w, 1 << 32, GEQ));
        err(
            cuda::cuStreamWaitValue64_v2(s, w + 4, 0, GEQ),
            INVALID_VALUE,
        );
    }
    let waited = still_waiting(s, 20);
    w64.store(1 << 32, SeqCst);
    let done = done_within(s, 5000);
    assert!(waited && done);
}

#[test]
fn a_stream_write_wakes_a_thread_sleeping_on_registered_host_memory() {
    let _serial = serial();
    let (a, b) = (new_stream(NON_BLOCKING), new_stream(NON_BLOCKING));
    let mut buf = Box::new([0u32; 16]);
    let p = buf.as_mut_ptr();
    let mut dev = 0u64;
    // SAFETY: 64 bytes of host memory that outlive the registration.
    unsafe {
        ok(cuda::cuMemHostRegister_v2(p.cast(), 64, 0));
        ok(cuda::cuMemHostGetDevicePointer_v2(&mut dev, p.cast(), 0));
    }
    // SAFETY: `p` is 4-byte aligned and valid until `buf` drops at the end of the test.
    let w = unsafe { AtomicU32::from_ptr(p) };
    // A stream wait on registered memory too.
    ok(wait32(a, dev, 7, EQ));
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            // Sleeps until the word changes; a wake-up that never comes costs 5 s.
            while w.load(SeqCst) == 0 {
                futex_wait(w, 0, Some(Duration::from_secs(5))).unwrap();
            }
            tx.send((w.load(SeqCst), Instant::now())).unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        let written = Instant::now();
        // SAFETY: valid stream; `dev` is registered, writable host memory.
        ok(unsafe { cuda::cuStreamWriteValue32_v2(b, dev, 7, 0) });
        let (v, woke) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(v, 7);
        assert!(
            woke.duration_since(written) < Duration::from_secs(1),
            "the sleeper was not woken by the stream write"
        );
    });
    assert!(
        done_within(a, 5000),
        "the stream wait did not see the write"
    );
    assert!(done_within(b, 5000));
    // SAFETY: registered above.
    ok(unsafe { cuda::cuMemHostUnregister(p.cast()) });
    drop(buf);
}

#[test]
fn destroying_the_context_ends_a_pending_wait() {
    let _serial = serial();
    let primary = current_ctx() as CUcontext;
    let mut ctx: CUcontext = null_mut();
    // SAFETY: valid out-pointer; the new context becomes current on this thread.
    ok(unsafe { cuda::cuCtxCreate_v2(&mut ctx, 0, 0) });
    let s = new_stream(NON_BLOCKING);
    let (flag, buf) = (filled(4, 0), filled(4, 0));
    ok(wait32(s, flag, 1, GEQ));
    // SAFETY: valid stream and buffer.
    ok(unsafe { cuda::cuMemsetD8Async(buf, 1, 4, s) });
    let waited = still_waiting(s, 20);
    let (tx, rx) = mpsc::channel();
    let handle = ctx as usize;
    std::thread::spawn(move || {
        // SAFETY: a live context handle.
        let _ = tx.send(unsafe { cuda::cuCtxDestroy_v2(handle as CUcontext) });
    });
    let destroyed = rx.recv_timeout(Duration::from_secs(10));
    // SAFETY: the primary context is live.
    ok(unsafe { cuda::cuCtxSetCurrent(primary) });
    assert!(waited);
    assert_eq!(destroyed, Ok(0), "cuCtxDestroy hung behind a stream wait");
}

#[test]
fn waits_are_refused_while_capturing() {
    let _serial = serial();
    let s = new_stream(NON_BLOCKING);
    let flag = filled(4, 0);
    // SAFETY: plain driver calls on a valid stream.
    unsafe {
        ok(cuda::cuStreamBeginCapture_v2(s, 0));
        err(wait32(s, flag, 1, GEQ), 900);
        let mut g = null_mut();
        let _ = cuda::cuStreamEndCapture(s, &mut g);
    }
}

/// A streamed copy's shape: each piece waits for a host thread's count, is copied, and the
/// stream's count is written; the host thread sleeps on the stream's count between pieces.
#[test]
fn waits_and_writes_hand_pieces_over_with_a_host_thread() {
    let _serial = serial();
    let s = new_stream(NON_BLOCKING);
    const PIECES: u32 = 64;
    const LEN: usize = 256;
    let mut words = Box::new([0u32; 16]);
    let p = words.as_mut_ptr();
    let (src, dst) = (
        alloc_pinned(PIECES as usize * LEN),
        filled(PIECES as usize * LEN, 0),
    );
    // SAFETY: 64 bytes of host memory that outlive the registration.
    ok(unsafe { cuda::cuMemHostRegister_v2(p.cast(), 64, 0) });
    let (host_word, dev_word) = (p as u64, p as u64 + 4);
    for k in 0..PIECES {
        let off = k as usize * LEN;
        ok(wait32(s, host_word, k + 1, GEQ));
        // SAFETY: valid stream; both ranges lie in their buffers.
        unsafe {
            ok(cuda::cuMemcpyHtoDAsync_v2(
                dst + off as u64,
                src.add(off).cast(),
                LEN,
                s,
            ));
            ok(cuda::cuStreamWriteValue32_v2(s, dev_word, k + 1, 0));
        }
    }
    let t = Instant::now();
    let src_addr = src as usize;
    let handed = std::thread::spawn(move || {
        let (host, dev) = (word(host_word), word(dev_word));
        for k in 0..PIECES {
            let piece = (src_addr + k as usize * LEN) as *mut u8;
            // SAFETY: the piece lies in the pinned buffer; the stream reads it only after the
            // count below says it is written.
            unsafe { std::ptr::write_bytes(piece, k as u8 + 1, LEN) };
            host.store(k + 1, SeqCst);
            futex_wake(host, u32::MAX).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let seen = dev.load(SeqCst);
                if seen > k || Instant::now() > deadline {
                    break;
                }
                futex_wait(dev, seen, Some(Duration::from_millis(100))).unwrap();
            }
        }
        dev.load(SeqCst)
    });
    let last = handed.join().unwrap();
    let elapsed = t.elapsed();
    assert!(done_within(s, 5000));
    // SAFETY: registered above.
    ok(unsafe { cuda::cuMemHostUnregister(p.cast()) });
    drop(words);
    assert_eq!(
        last, PIECES,
        "the stream did not write its count for every piece"
    );
    let got = read(dst, PIECES as usize * LEN);
    for (k, piece) in got.chunks(LEN).enumerate() {
        assert!(piece.iter().all(|b| *b == k as u8 + 1), "piece {k}");
    }
    // Each write wakes the host thread at once (else it would sleep 100 ms a piece).
    assert!(
        elapsed < Duration::from_secs(3),
        "{PIECES} pieces took {elapsed:?}"
    );
}
