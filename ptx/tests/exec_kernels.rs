//! Execution tests: shared memory, barriers, shuffles, atomics, f64, calls,
//! divergence, 3D grids, struct parameters, nanosleep.

mod common;
use common::*;
use gpushare_ptx::Module;

fn sgemm_ref(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0f32;
            for t in 0..k {
                acc = a[i * k + t].mul_add(b[t * n + j], acc);
            }
            c[i * n + j] = acc;
        }
    }
    c
}

#[test]
fn tiled_sgemm() {
    let m = Module::load(&fixture("sgemm.ptx")).unwrap();
    let k = m.kernel("sgemm_tiled").unwrap();
    assert_eq!(k.static_shared_bytes(), 2048);
    for &(mm, nn, kk, workers) in &[(64usize, 48usize, 40usize, 1usize), (33, 17, 70, 3)] {
        let mut r = Rng(42);
        let a: Vec<f32> = (0..mm * kk).map(|_| r.f32()).collect();
        let b: Vec<f32> = (0..kk * nn).map(|_| r.f32()).collect();
        let mut mem = VecMem::new(1 << 20);
        let (pa, pb) = (mem.alloc_f32(&a), mem.alloc_f32(&b));
        let pc = mem.alloc(mm * nn * 4);
        let c = cfg(
            [(nn as u32).div_ceil(16), (mm as u32).div_ceil(16), 1],
            [16, 16, 1],
        );
        let args = [
            Arg::U64(pa),
            Arg::U64(pb),
            Arg::U64(pc),
            Arg::I32(mm as i32),
            Arg::I32(nn as i32),
            Arg::I32(kk as i32),
        ];
        let st = run(&m, "sgemm_tiled", c, &args, &mem, workers).unwrap();
        let got = mem.read_f32(pc, mm * nn);
        let want = sgemm_ref(&a, &b, mm, nn, kk);
        for i in 0..mm * nn {
            assert!(
                (got[i] - want[i]).abs() <= 1e-4 * (1.0 + want[i].abs()),
                "{i}: {} vs {}",
                got[i],
                want[i]
            );
        }
        assert!(st.shared_accesses > 0 && st.fp32 > 0);
    }
}

#[test]
fn row_softmax_with_shuffles() {
    let m = Module::load(&fixture("softmax.ptx")).unwrap();
    let (rows, cols) = (19usize, 100usize);
    let mut r = Rng(3);
    let x: Vec<f32> = (0..rows * cols).map(|_| r.f32() * 4.0).collect();
    let mut mem = VecMem::new(1 << 20);
    let px = mem.alloc_f32(&x);
    let po = mem.alloc(rows * cols * 4);
    // 4 warps (rows) per block
    let c = cfg([(rows as u32).div_ceil(4), 1, 1], [128, 1, 1]);
    run(
        &m,
        "row_softmax",
        c,
        &[
            Arg::U64(px),
            Arg::U64(po),
            Arg::I32(rows as i32),
            Arg::I32(cols as i32),
        ],
        &mem,
        2,
    )
    .unwrap();
    let got = mem.read_f32(po, rows * cols);
    for row in 0..rows {
        let xs = &x[row * cols..(row + 1) * cols];
        let mx = xs.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = xs.iter().map(|v| (v - mx).exp()).sum();
        for c in 0..cols {
            let want = (xs[c] - mx).exp() / s;
            let g = got[row * cols + c];
            assert!(
                (g - want).abs() <= 1e-5 + 1e-4 * want,
                "row {row} col {c}: {g} vs {want}"
            );
        }
    }
}

#[test]
fn reduction_with_atomic_add() {
    let m = Module::load(&fixture("softmax.ptx")).unwrap();
    let n = 10_000usize;
    let x: Vec<f32> = (0..n).map(|i| ((i % 13) as f32) * 0.25).collect();
    let mut mem = VecMem::new(1 << 20);
    let px = mem.alloc_f32(&x);
    let po = mem.alloc_f32(&[0.0]);
    let c = cfg([(n as u32).div_ceil(256), 1, 1], [256, 1, 1]);
    let st = run(
        &m,
        "reduce_sum",
        c,
        &[Arg::U64(px), Arg::U64(po), Arg::I32(n as i32)],
        &mem,
        4,
    )
    .unwrap();
    let got = mem.read_f32(po, 1)[0];
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    assert!((got as f64 - want).abs() < 1e-3 * want, "{got} vs {want}");
    assert_eq!(st.atomics, (n as u64).div_ceil(256));
}

#[test]
fn atomics_all_kinds() {
    let m = Module::load(&fixture("softmax.ptx")).unwrap();
    let mut mem = VecMem::new(1 << 16);
    let counters = mem.alloc_i32(&[0, i32::MIN, i32::MAX, 0, 0, -1, 0, 5]);
    let u = mem.alloc_i32(&[0, 0]);
    let ull = mem.alloc(8);
    let d = mem.alloc_f64(&[0.0]);
    let (blocks, threads) = (5u32, 96u32);
    let total = (blocks * threads) as i32;
    run(
        &m,
        "atomic_mix",
        cfg([blocks, 1, 1], [threads, 1, 1]),
        &[Arg::U64(counters), Arg::U64(u), Arg::U64(ull), Arg::U64(d)],
        &mem,
        4,
    )
    .unwrap();
    let c = mem.read_i32(counters, 8);
    assert_eq!(c[0], total);
    assert_eq!(c[1], total - 1);
    assert_eq!(c[2], -(total - 1));
    let mut or = 0i32;
    let mut xor = 0i32;
    let mut and = -1i32;
    for t in 0..total {
        or |= 1 << (t % 31);
        xor ^= t;
        and &= !(1 << (t % 31));
    }
    assert_eq!(c[3], or);
    assert_eq!(c[4], xor);
    assert_eq!(c[5], and);
    // CAS chain: counters[6] goes 0 -> 1 -> 2 ... only when the thread with t == old succeeds
    assert!(c[6] >= 1, "cas {}", c[6]);
    assert_eq!(c[7], 42);
    let uu = mem.read_u32(u, 2);
    assert_eq!(uu[0], (total as u32) % 100);
    // atomicDec with limit 1000 from 0: 0 -> 1000 -> 999 ...
    assert_eq!(uu[1], 1000 - (total as u32 - 1));
    assert_eq!(mem.read_u64(ull, 1)[0], (0..total as u64).sum::<u64>());
    assert_eq!(mem.read_f64(d, 1)[0], 0.5 * total as f64);
}

#[test]
fn grid_3d() {
    let m = Module::load(&fixture("misc.ptx")).unwrap();
    let (nx, ny, nz) = (13usize, 9usize, 7usize);
    let mut mem = VecMem::new(1 << 20);
    let po = mem.alloc(nx * ny * nz * 4);
    let c = cfg([4, 3, 2], [4, 4, 4]);
    run(
        &m,
        "grid3d",
        c,
        &[
            Arg::U64(po),
            Arg::I32(nx as i32),
            Arg::I32(ny as i32),
            Arg::I32(nz as i32),
        ],
        &mem,
        2,
    )
    .unwrap();
    let got = mem.read_i32(po, nx * ny * nz);
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                assert_eq!(got[(z * ny + y) * nx + x], (x + 100 * y + 10000 * z) as i32);
            }
        }
    }
}

#[test]
fn struct_by_value_param() {
    let m = Module::load(&fixture("misc.ptx")).unwrap();
    let k = m.kernel("struct_param").unwrap();
    assert_eq!(k.params()[0].size, 64);
    assert_eq!(k.params()[0].align, 8);
    assert_eq!(k.params()[1].offset, 64);
    // struct Params { float scale; int n; double offset; int dims[3]; float coef[8]; }
    let n = 50i32;
    let dims = [7i32, -3, 11];
    let coef: Vec<f32> = (0..8).map(|i| i as f32 * 0.25).collect();
    let mut s = Vec::new();
    s.extend(1.5f32.to_le_bytes());
    s.extend(n.to_le_bytes());
    s.extend(0.75f64.to_le_bytes());
    for d in dims {
        s.extend(d.to_le_bytes());
    }
    for c in &coef {
        s.extend(c.to_le_bytes());
    }
    s.resize(64, 0);
    let mut mem = VecMem::new(1 << 16);
    let po = mem.alloc(64 * 4);
    run(
        &m,
        "struct_param",
        cfg([2, 1, 1], [32, 1, 1]),
        &[Arg::Bytes(s), Arg::U64(po)],
        &mem,
        1,
    )
    .unwrap();
    let got = mem.read_f32(po, n as usize);
    for i in 0..n as usize {
        let want = 1.5f32.mul_add(i as f32, 0.75) + dims[i % 3] as f32 + coef[i % 8];
        assert_eq!(got[i], want, "at {i}");
    }
}

#[test]
fn f64_math() {
    let m = Module::load(&fixture("misc.ptx")).unwrap();
    let n = 300usize;
    let a: Vec<f64> = (0..n).map(|i| i as f64 * 0.37 - 40.0).collect();
    let mut mem = VecMem::new(1 << 16);
    let pa = mem.alloc_f64(&a);
    let pb = mem.alloc(n * 8);
    let st = run(
        &m,
        "f64_kernel",
        cfg([3, 1, 1], [128, 1, 1]),
        &[Arg::U64(pa), Arg::U64(pb), Arg::I32(n as i32)],
        &mem,
        1,
    )
    .unwrap();
    let got = mem.read_f64(pb, n);
    for i in 0..n {
        let x = a[i];
        let want =
            x.mul_add(x, 1.0).sqrt() / (x + 3.0) + x.mul_add(2.0, 0.25) - ((x * 7.3) as i64) as f64;
        assert_eq!(got[i], want, "at {i}");
    }
    assert!(st.fp64 > 0);
}

#[test]
fn nanosleep_is_recorded() {
    let m = Module::load(&fixture("misc.ptx")).unwrap();
    let mut mem = VecMem::new(1 << 16);
    let po = mem.alloc(64 * 4);
    let st = run(
        &m,
        "sleepy",
        cfg([3, 1, 1], [64, 1, 1]),
        &[Arg::U64(po), Arg::U32(100)],
        &mem,
        1,
    )
    .unwrap();
    assert_eq!(st.sleep_ns_max, 6400);
    assert_eq!(st.sleep_ns_block_max_sum, 3 * 6400);
    assert_eq!(mem.read_i32(po, 64), (0..64).collect::<Vec<_>>());
}

#[test]
fn divergent_branches() {
    let m = Module::load(&fixture("misc.ptx")).unwrap();
    let n = 200usize;
    let mut mem = VecMem::new(1 << 16);
    let po = mem.alloc(n * 4);
    run(
        &m,
        "divergent",
        cfg([4, 1, 1], [64, 1, 1]),
        &[Arg::U64(po), Arg::I32(n as i32)],
        &mem,
        1,
    )
    .unwrap();
    let got = mem.read_i32(po, n);
    let val = |i: i32| -> i32 {
        let mut v = i;
        if i % 3 == 0 {
            for k in 0..i % 7 {
                v += k * 3;
            }
        } else if i % 3 == 1 {
            v = -v;
            while v < 100 {
                v += 17 + (i & 5);
            }
        } else {
            v = v.wrapping_mul(v);
        }
        v
    };
    for w in 0..n.div_ceil(32) {
        let lanes: Vec<i32> = (w * 32..((w + 1) * 32).min(n)).map(|i| i as i32).collect();
        let mut ballot = 0u32;
        for (l, &i) in lanes.iter().enumerate() {
            if val(i) & 1 != 0 {
                ballot |= 1 << l;
            }
        }
        for &i in &lanes {
            assert_eq!(
                got[i as usize],
                val(i) + (ballot & 0xff) as i32,
                "thread {i}"
            );
        }
    }
}

#[test]
fn device_function_call() {
    let m = Module::load(&fixture("misc.ptx")).unwrap();
    let n = 100usize;
    let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.1).collect();
    let mut mem = VecMem::new(1 << 16);
    let pa = mem.alloc_f32(&a);
    let po = mem.alloc(n * 4);
    run(
        &m,
        "call_kernel",
        cfg([1, 1, 1], [128, 1, 1]),
        &[Arg::U64(pa), Arg::U64(po), Arg::I32(n as i32)],
        &mem,
        1,
    )
    .unwrap();
    let got = mem.read_f32(po, n);
    for i in 0..n {
        let mut r = a[i];
        for _ in 0..i % 5 {
            r = r.mul_add(0.5, 1.0);
        }
        assert_eq!(got[i], r, "at {i}");
    }
}

#[test]
fn grid_constant_param_generic_address() {
    let m = Module::load(&fixture("grid_constant.ptx")).unwrap();
    let mut blob = Vec::new();
    for k in 0..64 {
        blob.extend((k as f32 * 1.5).to_le_bytes());
    }
    blob.extend(1000i32.to_le_bytes());
    let mut mem = VecMem::new(1 << 16);
    let po = mem.alloc(64 * 4);
    run(
        &m,
        "grid_const",
        cfg([1, 1, 1], [64, 1, 1]),
        &[Arg::Bytes(blob), Arg::U64(po)],
        &mem,
        1,
    )
    .unwrap();
    let got = mem.read_f32(po, 64);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(*g, ((i * 7) % 64) as f32 * 1.5 + 1000.0);
    }
}
