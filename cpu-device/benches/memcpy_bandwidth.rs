//! Copy bandwidth of the CPU device, through its exported driver API (in process).
//!
//! Prints, per direction and host-memory kind, the wall-clock bandwidth of the copy itself (what the
//! host CPU achieves moving the bytes) and the modelled bandwidth the timing model charges (event
//! elapsed time), for the active profile. Run: `cargo bench -p gpushare-cpu-device --bench memcpy_bandwidth`.

use std::ffi::c_void;
use std::ptr::null_mut;
use std::time::Instant;

/// The CPU device's generated C layer, in process.
mod cuda {
    gpushare_driver_abi::driver_exports!(
        gpushare_cpu_device::CpuDevice,
        "the CPU device",
        unexported
    );
}
use cuda::*;

fn check(what: &str, r: u32) {
    assert_eq!(r, 0, "{what} failed with CUresult {r}");
}

/// One measured direction: (label, bytes, closure issuing one async copy on `stream`).
struct Case<'a> {
    label: &'a str,
    run: Box<dyn Fn(*mut c_void) + 'a>,
}

fn measure(case: &Case<'_>, bytes: usize, reps: usize) {
    // SAFETY: plain driver API calls with valid out-pointers; handles come from the driver.
    unsafe {
        let mut stream = null_mut();
        check("cuStreamCreate", cuStreamCreate(&mut stream, 1));
        let (mut start, mut stop) = (null_mut(), null_mut());
        check("cuEventCreate", cuEventCreate(&mut start, 0));
        check("cuEventCreate", cuEventCreate(&mut stop, 0));
        (case.run)(stream); // warm-up: first touch of pages
        check("cuStreamSynchronize", cuStreamSynchronize(stream));
        let wall = Instant::now();
        check("cuEventRecord", cuEventRecord(start, stream));
        for _ in 0..reps {
            (case.run)(stream);
        }
        check("cuEventRecord", cuEventRecord(stop, stream));
        check("cuStreamSynchronize", cuStreamSynchronize(stream));
        let wall_s = wall.elapsed().as_secs_f64();
        let mut ms = 0f32;
        check(
            "cuEventElapsedTime",
            cuEventElapsedTime(&mut ms, start, stop),
        );
        let total = (bytes * reps) as f64;
        println!(
            "{:<28} {:>8} MiB  wall {:>7.2} GB/s   modelled {:>8.2} GB/s",
            case.label,
            bytes >> 20,
            total / wall_s / 1e9,
            total / (ms as f64 / 1e3) / 1e9
        );
        cuEventDestroy_v2(start);
        cuEventDestroy_v2(stop);
        cuStreamDestroy_v2(stream);
    }
}

fn main() {
    let bytes: usize = std::env::var("BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64 << 20);
    let reps = 8;
    // SAFETY: driver API calls with valid out-pointers; buffers are sized `bytes`.
    unsafe {
        check("cuInit", cuInit(0));
        let mut ctx = null_mut();
        check(
            "cuDevicePrimaryCtxRetain",
            cuDevicePrimaryCtxRetain(&mut ctx, 0),
        );
        check("cuCtxSetCurrent", cuCtxSetCurrent(ctx));
        let (mut dev_a, mut dev_b) = (0u64, 0u64);
        check("cuMemAlloc", cuMemAlloc_v2(&mut dev_a, bytes));
        check("cuMemAlloc", cuMemAlloc_v2(&mut dev_b, bytes));
        let mut pinned: *mut c_void = null_mut();
        check("cuMemAllocHost", cuMemAllocHost_v2(&mut pinned, bytes));
        std::ptr::write_bytes(pinned.cast::<u8>(), 1, bytes);
        let mut pageable = vec![1u8; bytes];
        let pageable_ptr = pageable.as_mut_ptr().cast::<c_void>();
        println!(
            "CPU device copy bandwidth (profile {}, {} copies of {} MiB each)",
            std::env::var("GPUSHARE_CPU_PROFILE").unwrap_or_else(|_| "h200".into()),
            reps,
            bytes >> 20
        );
        let cases = [
            Case {
                label: "HtoD pageable",
                run: Box::new(|s| {
                    check("HtoD", cuMemcpyHtoDAsync_v2(dev_a, pageable_ptr, bytes, s))
                }),
            },
            Case {
                label: "HtoD pinned",
                run: Box::new(|s| check("HtoD", cuMemcpyHtoDAsync_v2(dev_a, pinned, bytes, s))),
            },
            Case {
                label: "DtoH pageable",
                run: Box::new(|s| {
                    check("DtoH", cuMemcpyDtoHAsync_v2(pageable_ptr, dev_a, bytes, s))
                }),
            },
            Case {
                label: "DtoH pinned",
                run: Box::new(|s| check("DtoH", cuMemcpyDtoHAsync_v2(pinned, dev_a, bytes, s))),
            },
            Case {
                label: "DtoD",
                run: Box::new(|s| check("DtoD", cuMemcpyDtoDAsync_v2(dev_b, dev_a, bytes, s))),
            },
        ];
        for case in &cases {
            measure(case, bytes, reps);
        }
        drop(pageable);
    }
}
