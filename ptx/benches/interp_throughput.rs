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

/// On-CPU time of the calling thread in seconds (Linux schedstat), to factor out
/// time spent waiting for a CPU on a loaded machine.
fn thread_cpu_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
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
    let c0 = thread_cpu_s();
    let t0 = Instant::now();
    let st = launch(m, k, &cfg, &params, &[], &mem, &opts).expect("launch");
    let dt = t0.elapsed().as_secs_f64();
    let cpu = match (c0, thread_cpu_s()) {
        (Some(a), Some(b)) if workers == 1 => format!(
            "  [on-CPU {:.1} ms = {:.1} M thread-instr/s]",
            (b - a) * 1e3,
            st.thread_instructions as f64 / (b - a) / 1e6
        ),
        _ => String::new(),
    };
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
        "sgemm {n:>3}x{n}x{n}  workers {workers:>2}: {:>8.1} ms  {:>7.1} M thread-instr/s  ({} thread-instr, {} warp-instr, max rel err {max_err:.1e}){cpu}",
        dt * 1e3,
        st.thread_instructions as f64 / dt / 1e6,
        st.thread_instructions,
        st.warp_instructions,
    );
}

/// A loop of 64 copies of `body` (operating on %r1..%r4 / %f1..%f4 / shared at [%rd9]),
/// iterated `%r9` times by every thread.
fn micro_ptx(body: &str) -> String {
    let mut unrolled = String::new();
    for _ in 0..64 {
        unrolled.push_str(body);
        unrolled.push('\n');
    }
    format!(
        r#".version 8.0
.target sm_90
.address_size 64
.visible .entry micro(.param .u64 out, .param .u32 iters)
{{
	.reg .pred %p<2>;
	.reg .b32 %r<12>;
	.reg .f32 %f<8>;
	.reg .b64 %rd<12>;
	.shared .align 4 .b8 sm[4096];
	ld.param.u32 %r9, [iters];
	mov.u32 %r1, %tid.x;
	mov.u32 %r2, 3;
	mov.u32 %r3, 5;
	mov.u32 %r4, 7;
	cvt.rn.f32.u32 %f1, %r1;
	mov.f32 %f2, 0f3F800000;
	mov.f32 %f3, 0f3F000000;
	mov.u64 %rd9, sm;
	mul.wide.u32 %rd8, %r1, 4;
	add.s64 %rd9, %rd9, %rd8;
	mov.u32 %r10, 0;
$Lloop:
{unrolled}
	add.s32 %r10, %r10, 1;
	setp.lt.u32 %p1, %r10, %r9;
	@%p1 bra $Lloop;
	ld.param.u64 %rd1, [out];
	cvta.to.global.u64 %rd1, %rd1;
	mul.wide.u32 %rd2, %r1, 4;
	add.s64 %rd3, %rd1, %rd2;
	add.u32 %r5, %r1, %r2;
	cvt.rzi.u32.f32 %r6, %f1;
	add.u32 %r5, %r5, %r6;
	st.global.u32 [%rd3], %r5;
	ret;
}}
"#
    )
}

fn micro(name: &str, body: &str) {
    let m = Module::load(&micro_ptx(body)).expect("micro ptx");
    let k = m.kernel("micro").expect("kernel");
    let mut mem = VecMem::new(1 << 16);
    let out = mem.alloc(256 * 4);
    let iters = 200u32;
    let params = pack(k, &[Arg::U64(out), Arg::U32(iters)]);
    let cfg = LaunchConfig {
        grid: [8, 1, 1],
        block: [256, 1, 1],
        dynamic_shared_bytes: 0,
    };
    let opts = ExecOptions::default();
    let c0 = thread_cpu_s();
    let t0 = Instant::now();
    let st = launch(&m, k, &cfg, &params, &[], &mem, &opts).expect("launch");
    let dt = match (c0, thread_cpu_s()) {
        (Some(a), Some(b)) => b - a,
        _ => t0.elapsed().as_secs_f64(),
    };
    println!(
        "micro {name:<14} {:>6.2} ns/warp-instr  {:>7.1} M thread-instr/s",
        dt * 1e9 / st.warp_instructions as f64,
        st.thread_instructions as f64 / dt / 1e6
    );
}

fn main() {
    if std::env::args().any(|a| a == "--micro") {
        micro("add.s32", "\tadd.s32 %r2, %r2, %r3;");
        micro("mad.lo.s32", "\tmad.lo.s32 %r2, %r2, %r3, %r4;");
        micro("fma.rn.f32", "\tfma.rn.f32 %f1, %f1, %f2, %f3;");
        micro(
            "setp+selp",
            "\tsetp.lt.s32 %p1, %r2, %r3;\n\tselp.b32 %r2, %r3, %r4, %p1;",
        );
        micro("ld.shared.f32", "\tld.shared.f32 %f4, [%rd9+64];");
        micro("st.shared.f32", "\tst.shared.f32 [%rd9+64], %f1;");
        micro("cvt.rn.f32.s32", "\tcvt.rn.f32.s32 %f4, %r2;");
        micro("mov.u32", "\tmov.u32 %r2, %r3;");
        return;
    }
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
