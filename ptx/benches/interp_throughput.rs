//! Interpreter throughput benchmark: NVRTC-compiled tiled SGEMM (16x16 tiles,
//! shared memory, `__syncthreads`) at 256^3 and 512^3, checked against a CPU
//! reference. Prints thread-instructions/s and wall time for 1 worker thread
//! and for all cores. Run with `cargo bench -p gpushare-ptx`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use gpushare_ptx::{launch, ExecOptions, LaunchConfig, Module};
use std::time::Instant;

fn sgemm_ref(a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    let mut c = vec![0f32; n * n];
    for i in 0..n {
        for t in 0..n {
            let av = a[i * n + t];
            for j in 0..n {
                c[i * n + j] = av.mul_add(b[t * n + j], c[i * n + j]);
            }
        }
    }
    c
}

fn bench(m: &Module, n: usize, workers: usize, reference: &[f32], a: &[f32], b: &[f32]) {
    let k = m.kernel("sgemm_tiled").expect("kernel");
    let mut mem = VecMem::new(3 * n * n * 4 + 4096);
    let (pa, pb) = (mem.alloc_f32(a), mem.alloc_f32(b));
    let pc = mem.alloc(n * n * 4);
    let ni = n as i32;
    let params = pack(
        k,
        &[
            Arg::U64(pa),
            Arg::U64(pb),
            Arg::U64(pc),
            Arg::I32(ni),
            Arg::I32(ni),
            Arg::I32(ni),
        ],
    );
    let cfg = LaunchConfig {
        grid: [(n / 16) as u32, (n / 16) as u32, 1],
        block: [16, 16, 1],
        dynamic_shared_bytes: 0,
    };
    let opts = ExecOptions {
        worker_threads: workers,
        ..Default::default()
    };
    let t0 = Instant::now();
    let st = launch(m, k, &cfg, &params, &[], &mem, &opts).expect("launch");
    let dt = t0.elapsed().as_secs_f64();
    let c = mem.read_f32(pc, n * n);
    let mut max_err = 0f32;
    for i in 0..n * n {
        max_err = max_err.max((c[i] - reference[i]).abs() / (1.0 + reference[i].abs()));
    }
    assert!(
        max_err < 1e-4,
        "SGEMM {n} result mismatch: max rel err {max_err}"
    );
    println!(
        "sgemm {n:>3}x{n}x{n}  workers {workers:>2}: {:>8.1} ms  {:>7.1} M thread-instr/s  ({} thread-instr, {} warp-instr, max rel err {max_err:.1e})",
        dt * 1e3,
        st.thread_instructions as f64 / dt / 1e6,
        st.thread_instructions,
        st.warp_instructions,
    );
}

fn main() {
    let ptx = fixture("sgemm.ptx");
    let m = Module::load(&ptx).expect("load");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let only_small = std::env::args().any(|a| a == "--quick");
    for &n in &[256usize, 512] {
        if only_small && n > 256 {
            continue;
        }
        let mut r = Rng(1234 + n as u64);
        let a: Vec<f32> = (0..n * n).map(|_| r.f32()).collect();
        let b: Vec<f32> = (0..n * n).map(|_| r.f32()).collect();
        let reference = sgemm_ref(&a, &b, n);
        bench(&m, n, 1, &reference, &a, &b);
        if cores > 1 {
            bench(&m, n, cores, &reference, &a, &b);
        }
    }
}
