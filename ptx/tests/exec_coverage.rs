//! Broader instruction coverage from NVRTC output: warp collectives, 64-bit
//! integer ops, directed-rounding intrinsics, local arrays + switch tables,
//! vector types, printf, timers and barrier reductions.

mod common;
use common::*;
use gpushare_ptx::Module;

fn module() -> Module {
    Module::load(&fixture("coverage.ptx")).unwrap()
}

#[test]
fn warp_collectives() {
    let m = module();
    let mut mem = VecMem::new(1 << 16);
    let out = mem.alloc(64 * 13 * 4);
    run(
        &m,
        "warp_ops",
        cfg([1, 1, 1], [64, 1, 1]),
        &[Arg::U64(out)],
        &mem,
        1,
    )
    .unwrap();
    let o = mem.read_i32(out, 64 * 13);
    let v = |t: usize| (t * 7 + 3) as i32;
    let mut sums = [0i32; 4];
    let mut maxs = [-1i32; 4];
    for t in 0..64 {
        sums[t % 4] += t as i32;
        let k = (t + 1) % 4;
        maxs[k] = maxs[k].max(((t * 37) % 61) as i32);
    }
    let redmax: i32 = (0..32).map(|l| (l * 37) % 29).max().unwrap();
    for t in 0..64 {
        let lane = t % 32;
        let base = t - lane;
        let r = &o[t * 13..t * 13 + 13];
        assert_eq!(
            r[0],
            if lane % 16 >= 3 { v(t - 3) } else { v(t) },
            "shfl_up t={t}"
        );
        assert_eq!(
            r[1],
            if lane % 8 <= 2 { v(t + 5) } else { v(t) },
            "shfl_down t={t}"
        );
        assert_eq!(r[2], v(base + (lane & 16) + 9), "shfl_idx t={t}");
        assert_eq!(r[3], v(t ^ 6), "shfl_xor t={t}");
        assert_eq!(r[4], 1, "any");
        assert_eq!(r[5], 0, "all");
        let ballot: u32 = (0..32).filter(|l| l % 3 == 0).map(|l| 1u32 << l).sum();
        assert_eq!(r[6] as u32, ballot, "ballot");
        assert_eq!(r[7] as u32, 0xfu32 << (lane / 4 * 4), "match_any t={t}");
        assert_eq!(r[8], 496, "reduce_add");
        assert_eq!(r[9], redmax, "reduce_max");
        assert_eq!(r[10], sums[t % 4], "shared atomicAdd");
        assert_eq!(r[11], maxs[t % 4], "shared atomicMax");
        assert_eq!(r[12], lane as i32 + 3200, "lanemask_lt / activemask");
    }
}

#[test]
fn int64_ops() {
    let m = module();
    let mut r = Rng(5);
    let mut a: Vec<i64> = (0..100)
        .map(|_| ((r.next_u32() as i64) << 32) ^ r.next_u32() as i64)
        .collect();
    a[0] = 0;
    a[1] = -1;
    a[2] = i64::MIN;
    a[3] = i64::MAX;
    a[4] = 1 << 40;
    let n = a.len();
    let mut mem = VecMem::new(1 << 16);
    let pa = mem.alloc(n * 8);
    let bytes: Vec<u8> = a.iter().flat_map(|x| x.to_le_bytes()).collect();
    mem.write(pa, &bytes);
    let po = mem.alloc(n * 10 * 8);
    run(
        &m,
        "int64_ops",
        cfg([1, 1, 1], [128, 1, 1]),
        &[Arg::U64(pa), Arg::U64(po), Arg::I32(n as i32)],
        &mem,
        1,
    )
    .unwrap();
    let got: Vec<i64> = mem
        .read_u64(po, n * 10)
        .into_iter()
        .map(|v| v as i64)
        .collect();
    for (i, &x) in a.iter().enumerate() {
        let u = x as u64;
        let d = (i as i64 % 13) + 3;
        let umulhi = ((u as u128 * 0x9E37_79B9_7F4A_7C15u128) >> 64) as u64;
        let mulhi = ((x as i128 * -7i128) >> 64) as i64;
        let ffs = if x == 0 {
            0
        } else {
            x.trailing_zeros() as i64 + 1
        };
        let (lo, hi) = (x as u32, (x >> 32) as u32);
        let cat = ((hi as u64) << 32) | lo as u64;
        let fl = ((cat << (i as u32 & 31)) >> 32) as u32;
        let fr = (cat >> (i as u32 * 3).min(32)) as u32;
        let sad = ((x as i32 as i64) - ((x >> 20) as i32 as i64)).unsigned_abs() as u32;
        let mul24 = ((x as i32) & 0xffff) * 77;
        let want = [
            x.wrapping_div(d),
            x.wrapping_rem(d),
            (u / (d as u64 * 1_000_003)) as i64,
            (umulhi as i64) ^ mulhi,
            u.count_ones() as i64 + 100 * x.leading_zeros() as i64 + 10000 * ffs,
            u.reverse_bits() as i64,
            (fl as i64).wrapping_add((fr as i64) << 32),
            (sad.wrapping_add(5).wrapping_add(mul24 as u32)) as i64,
            (x.max(-d) as u64).wrapping_add(u.min(12345)) as i64,
            x as i16 as i64 + (x >> 8) as i8 as i64 + (x >> 3) as u16 as i64,
        ];
        assert_eq!(&got[i * 10..i * 10 + 10], &want, "x = {x:#x} (i = {i})");
    }
}

/// Largest f32 <= v and smallest f32 >= v, for exact f64 `v` (binary search on bits).
fn f32_bounds(v: f64) -> (f32, f32) {
    let pos = |v: f64| -> (f32, f32) {
        let (mut lo, mut hi) = (0u32, 0x7f80_0000u32);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if f32::from_bits(mid) as f64 <= v {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let f = f32::from_bits(lo);
        if f as f64 == v {
            (f, f)
        } else {
            (f, f32::from_bits(lo + 1))
        }
    };
    if v >= 0.0 {
        pos(v)
    } else {
        let (a, b) = pos(-v);
        (-b, -a)
    }
}

fn f16_bounds(v: f64) -> (u16, u16) {
    let val = |h: u16| -> f64 {
        let e = ((h >> 10) & 0x1f) as i32;
        let m = (h & 0x3ff) as f64;
        if e == 0 {
            m * 2f64.powi(-24)
        } else {
            (1.0 + m / 1024.0) * 2f64.powi(e - 15)
        }
    };
    let pos = |v: f64| -> (u16, u16) {
        let mut lo = 0u16;
        while lo < 0x7c00 && val(lo + 1) <= v {
            lo += 1;
        }
        if val(lo) == v {
            (lo, lo)
        } else {
            (lo, lo + 1)
        }
    };
    if v >= 0.0 {
        pos(v)
    } else {
        let (a, b) = pos(-v);
        (b | 0x8000, a | 0x8000)
    }
}

fn step_f64(x: f64, up: bool) -> f64 {
    let b = x.to_bits();
    if x == 0.0 {
        return if up {
            f64::from_bits(1)
        } else {
            -f64::from_bits(1)
        };
    }
    f64::from_bits(if (x > 0.0) == up { b + 1 } else { b - 1 })
}

/// `v` rounded to f32 toward zero, up and down.
fn f32_rz(v: f64) -> f32 {
    let (lo, hi) = f32_bounds(v);
    if v >= 0.0 {
        lo
    } else {
        hi
    }
}

fn f32_ru(v: f64) -> f32 {
    f32_bounds(v).1
}

fn f32_rd(v: f64) -> f32 {
    f32_bounds(v).0
}

/// The outputs of `rounding_ops` over `n` threads: 12 f32, 6 f64 and 6 i32 per thread.
struct RoundingOutputs {
    f: Vec<f32>,
    d: Vec<f64>,
    k: Vec<i32>,
}

/// Runs `rounding_ops` on `a` (f32 inputs) and `b` (f64 inputs).
fn run_rounding_ops(a: &[f32], b: &[f64]) -> RoundingOutputs {
    let m = module();
    let n = a.len();
    let mut mem = VecMem::new(1 << 20);
    let (pa, pb) = (mem.alloc_f32(a), mem.alloc_f64(b));
    let (pf, pd, pi) = (
        mem.alloc(n * 12 * 4),
        mem.alloc(n * 6 * 8),
        mem.alloc(n * 6 * 4),
    );
    let args = [
        Arg::U64(pa),
        Arg::U64(pb),
        Arg::U64(pf),
        Arg::U64(pd),
        Arg::U64(pi),
        Arg::I32(n as i32),
    ];
    run(
        &m,
        "rounding_ops",
        cfg([1, 1, 1], [64, 1, 1]),
        &args,
        &mem,
        1,
    )
    .unwrap();
    RoundingOutputs {
        f: mem.read_f32(pf, n * 12),
        d: mem.read_f64(pd, n * 6),
        k: mem.read_i32(pi, n * 6),
    }
}

/// Thread `i`'s f32 results `o` from inputs `x`, `y` (f32) and `p` (f64).
fn check_f32_rounding(i: usize, x: f32, y: f32, p: f64, o: &[f32]) {
    let (xd, yd) = (x as f64, y as f64);
    assert_eq!(o[0], f32_rz(xd + yd), "fadd_rz {x} {y}");
    assert_eq!(o[1], f32_ru(xd + yd), "fadd_ru {x} {y}");
    assert_eq!(o[2], f32_rd(xd * yd), "fmul_rd {x} {y}");
    assert_eq!(o[3], f32_rz(xd * yd + 1.0), "fmaf_rz {x} {y}");
    assert_eq!(o[4], x / y, "fdiv_rn {x} {y}");
    let qn = x / y;
    let is_exact = (qn as f64) * yd == xd;
    let (lo, hi) = f32_bounds(xd / yd);
    assert!(
        o[5] == hi || (o[5] == lo && is_exact),
        "fdiv_ru {x} {y}: {} not in ({lo}, {hi})",
        o[5]
    );
    let (rlo, rhi) = f32_bounds(1.0 / yd);
    assert!(
        o[6] == rlo || (o[6] == rhi && rlo == rhi),
        "frcp_rd {y}: {}",
        o[6]
    );
    let s = (x.abs() as f64).sqrt();
    let (slo, shi) = f32_bounds(s);
    let sq_exact = (slo as f64) * (slo as f64) == x.abs() as f64;
    assert!(
        o[7] == shi || (sq_exact && o[7] == slo),
        "fsqrt_ru {x}: {} ({slo}, {shi})",
        o[7]
    );
    assert_eq!(
        o[8],
        f32_rz((i as i64 * 16_777_217) as i32 as f64),
        "int2float_rz"
    );
    let ll = i as i64 * 0x1_2345_6789;
    assert_eq!(o[9], f32_ru(ll as f64), "ll2float_ru {ll}");
    assert_eq!(o[10], f32_rd(p), "double2float_rd {p}");
    assert_eq!(o[11], (x * 0.5).clamp(0.0, 1.0), "saturate");
}

/// Thread `i`'s f64 results `dd` from inputs `p`, `q`.
fn check_f64_rounding(i: usize, p: f64, q: f64, dd: &[f64]) {
    let s = p + q;
    let e = (p - (s - (s - p))) + (q - (s - p));
    assert_eq!(
        dd[0],
        if e > 0.0 { step_f64(s, true) } else { s },
        "dadd_ru {p} {q}"
    );
    let pr = p * q;
    let pe = p.mul_add(q, -pr);
    let want = if (pr > 0.0 && pe < 0.0) || (pr < 0.0 && pe > 0.0) {
        step_f64(pr, pe > 0.0)
    } else {
        pr
    };
    assert_eq!(dd[1], want, "dmul_rz {p} {q}");
    let qq = p / q;
    let rem = (-qq).mul_add(q, p);
    let below = (rem < 0.0) == (q > 0.0) && rem != 0.0;
    assert_eq!(
        dd[2],
        if below { step_f64(qq, false) } else { qq },
        "ddiv_rd {p} {q}"
    );
    let sq = p.abs().sqrt();
    let srem = (-sq).mul_add(sq, p.abs());
    assert_eq!(
        dd[3],
        if srem > 0.0 { step_f64(sq, true) } else { sq },
        "dsqrt_ru {p}"
    );
    let fm = p.mul_add(q, 0.1);
    assert!(
        dd[4] == fm || dd[4] == step_f64(fm, false),
        "fma_rd {p} {q}: {} vs {fm}",
        dd[4]
    );
    assert_eq!(dd[5], (u64::MAX - i as u64) as f64, "ull2double_rn");
}

/// The integer and half results `kk` from inputs `x` (f32) and `p` (f64).
fn check_int_conversions(x: f32, p: f64, kk: &[i32]) {
    assert_eq!(kk[0], p.floor() as i32, "double2int_rd {p}");
    assert_eq!(kk[1], p.ceil() as i32, "double2int_ru {p}");
    assert_eq!(
        kk[2],
        (x * 3.3f32).round_ties_even() as i32,
        "float2int_rn {x}"
    );
    assert_eq!(kk[3], (x.abs() * 100.0) as u32 as i32, "float2uint_rz {x}");
    assert_eq!(
        kk[4],
        (x.to_bits() as i32) ^ ((p.to_bits() >> 32) as i32),
        "as_int ^ hiint"
    );
    let (hlo, hhi) = f16_bounds(x as f64);
    let hz = if x >= 0.0 { hlo } else { hhi };
    let hu = hhi;
    assert_eq!(
        kk[5],
        (hz as i32) | ((hu as i32) << 16),
        "float2half_rz/ru {x}"
    );
}

#[test]
fn directed_rounding_intrinsics() {
    let n = 64usize;
    let mut r = Rng(77);
    // multiples of 2^-8 below 64: products and sums are exact in f64
    let a: Vec<f32> = (0..n)
        .map(|_| ((r.next_u32() % 32768) as f32 - 16384.0) / 256.0)
        .map(|v| if v == 0.0 { 0.75 } else { v })
        .collect();
    let b: Vec<f64> = (0..n)
        .map(|_| (r.next_u32() as f64 - 2e9) / 3.7e4)
        .collect();
    let out = run_rounding_ops(&a, &b);
    for i in 0..n {
        let (x, y) = (a[i], a[(i + 1) % n]);
        let (p, q) = (b[i], b[(i + 1) % n]);
        check_f32_rounding(i, x, y, p, &out.f[i * 12..i * 12 + 12]);
        check_f64_rounding(i, p, q, &out.d[i * 6..i * 6 + 6]);
        check_int_conversions(x, p, &out.k[i * 6..i * 6 + 6]);
    }
}

#[test]
fn local_array_and_switch() {
    let m = module();
    let n = 200usize;
    let mut r = Rng(9);
    let inp: Vec<i32> = (0..n).map(|_| (r.next_u32() % 1000) as i32 - 500).collect();
    let mut mem = VecMem::new(1 << 16);
    let pi = mem.alloc_i32(&inp);
    let po = mem.alloc(n * 4);
    run(
        &m,
        "local_array",
        cfg([4, 1, 1], [64, 1, 1]),
        &[Arg::U64(pi), Arg::U64(po), Arg::I32(n as i32)],
        &mem,
        2,
    )
    .unwrap();
    let got = mem.read_i32(po, n);
    let classify = |v: i32| match v & 7 {
        0 => 10,
        1 => v * 3,
        2 => -v,
        3 => v ^ 0x55,
        4 => 44,
        5 => v + 1000,
        6 => v << 2,
        _ => 7,
    };
    for i in 0..n {
        let arr: Vec<i32> = (0..32).map(|k| inp[(i + k) % n] * (k as i32 + 1)).collect();
        let idx = (inp[i] & 31) as usize;
        let acc: i32 = (0..=idx).map(|k| arr[(k * 7 + idx) & 31]).sum();
        assert_eq!(got[i], acc + classify(inp[i]), "i = {i}");
    }
}

#[test]
fn vector_types() {
    let m = module();
    let n = 40usize;
    let a: Vec<f32> = (0..n * 4).map(|i| i as f32 * 0.5).collect();
    let c: Vec<u8> = (0..n * 4).map(|i| (i * 7 % 100) as u8).collect();
    let mut mem = VecMem::new(1 << 16);
    let pa = mem.alloc_f32(&a);
    let pb = mem.alloc(n * 16);
    let pc = mem.alloc(n * 4);
    mem.write(pc, &c);
    let pd = mem.alloc(n * 4);
    run(
        &m,
        "vec_types",
        cfg([1, 1, 1], [64, 1, 1]),
        &[
            Arg::U64(pa),
            Arg::U64(pb),
            Arg::U64(pc),
            Arg::U64(pd),
            Arg::I32(n as i32),
        ],
        &mem,
        1,
    )
    .unwrap();
    let b = mem.read_f32(pb, n * 4);
    let d = mem.read_i32(pd, n);
    for i in 0..n {
        let v = &a[i * 4..i * 4 + 4];
        assert_eq!(
            &b[i * 4..i * 4 + 4],
            &[v[3], v[2] * 2.0, v[1] + 1.0, v[0] - v[3]]
        );
        let ch = &c[i * 4..i * 4 + 4];
        assert_eq!(
            d[i],
            ch[0] as i32 * 1_000_000 + ch[1] as i32 * 10_000 + ch[2] as i32 * 100 + ch[3] as i32
        );
    }
}

#[test]
fn printf_timers_barriers() {
    let m = module();
    let mut mem = VecMem::new(1 << 16);
    let globals = load_globals(&m, &mut mem);
    let po = mem.alloc(64 * 4);
    let k = m.kernel("printf_kernel").unwrap();
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = text.clone();
    let opts = gpushare_ptx::ExecOptions {
        printf: Some(gpushare_ptx::PrintfSink(std::sync::Arc::new(
            move |s: &str| sink.lock().unwrap().push_str(s),
        ))),
        ..Default::default()
    };
    let c = cfg([1, 1, 1], [64, 1, 1]);
    gpushare_ptx::launch(&m, k, &c, &pack(k, &[Arg::U64(po)]), &globals, &mem, &opts).unwrap();
    assert_eq!(
        mem.read_i32(po, 64),
        (0..64).map(|t| t * 2).collect::<Vec<_>>()
    );
    let want: String = (0..64)
        .map(|t| format!("thread {t} of 64, value 1.500000\n"))
        .collect();
    assert_eq!(*text.lock().unwrap(), want);

    let pt = mem.alloc(32 * 3 * 8);
    run(
        &m,
        "timers",
        cfg([1, 1, 1], [32, 1, 1]),
        &[Arg::U64(pt)],
        &mem,
        1,
    )
    .unwrap();
    let t = mem.read_u64(pt, 96);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for l in 0..32 {
        assert!(
            t[l * 3] > 0 && t[l * 3] < 1000,
            "clock64 delta {}",
            t[l * 3]
        );
        assert!(
            t[l * 3 + 1] <= now && now - t[l * 3 + 1] < 60_000_000_000,
            "globaltimer"
        );
        assert_eq!(t[l * 3 + 2], 1);
    }

    let pb = mem.alloc(64 * 4);
    run(
        &m,
        "barrier_ops",
        cfg([1, 1, 1], [64, 1, 1]),
        &[Arg::U64(pb)],
        &mem,
        1,
    )
    .unwrap();
    let got = mem.read_i32(pb, 64);
    let count = (0..64).filter(|t| t % 3 == 0).count() as i32;
    for t in 0..64 {
        let buf = if t < 32 {
            t * t
        } else {
            (t - 32) * (t - 32) + 1
        };
        assert_eq!(
            got[t as usize],
            count * 10000 + 1000 + 100 + buf % 100,
            "t = {t}"
        );
    }
}
