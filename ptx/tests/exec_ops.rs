//! Instruction-coverage tests: integer ops, float math (libdevice sequences),
//! half/bfloat16 conversions and packed half arithmetic, all from NVRTC PTX.

mod common;
use common::*;
use gpushare_ptx::Module;

#[test]
fn integer_ops() {
    let m = Module::load(&fixture("misc.ptx")).unwrap();
    let mut r = Rng(99);
    let mut a: Vec<i32> = (0..256).map(|_| r.next_u32() as i32).collect();
    a[0] = 0;
    a[1] = -1;
    a[2] = i32::MIN;
    a[3] = i32::MAX;
    a[4] = 12345;
    a[5] = -98765;
    let n = a.len();
    let mut mem = VecMem::new(1 << 20);
    let pa = mem.alloc_i32(&a);
    let po = mem.alloc(n * 8 * 4);
    run(
        &m,
        "int_ops",
        cfg([2, 1, 1], [128, 1, 1]),
        &[Arg::U64(pa), Arg::U64(po), Arg::I32(n as i32)],
        &mem,
        1,
    )
    .unwrap();
    let got = mem.read_i32(po, n * 8);
    for (i, &x) in a.iter().enumerate() {
        let u = x as u32;
        let d = 7 + (i as i32 % 5);
        let ffs = if x == 0 {
            0
        } else {
            x.trailing_zeros() as i32 + 1
        };
        let mulhi = ((x as i64 * 123_456_789i64) >> 32) as i32;
        let umulhi = ((u as u64 * 987_654_321u64) >> 32) as u32 as i32;
        let bp = {
            let bytes = ((0x1234_5678u64) << 32) | u as u64;
            let sel = [5u64, 1, 7, 3];
            sel.iter().enumerate().fold(0u32, |acc, (k, s)| {
                acc | (((bytes >> (s * 8)) & 0xff) as u32) << (k * 8)
            })
        };
        let want = [
            x.wrapping_div(d),
            x.wrapping_rem(d),
            (u / d as u32) as i32,
            u.count_ones() as i32 + (x.leading_zeros() as i32) * 64,
            (u.reverse_bits() as i32) ^ ffs,
            mulhi.wrapping_add(umulhi),
            x.min(d * 1000)
                .wrapping_add(x.max(-d * 1000))
                .wrapping_add(x.wrapping_abs()),
            bp as i32,
        ];
        assert_eq!(&got[i * 8..i * 8 + 8], &want, "x = {x} (i = {i})");
    }
}

#[test]
fn float_math_library() {
    let m = Module::load(&fixture("misc.ptx")).unwrap();
    let mut xs: Vec<f32> = (0..200).map(|i| (i as f32 - 100.0) * 0.173).collect();
    xs.extend([0.0, -0.0, 1e-3, 12345.678, -98765.4, 3.5, -2.5, 0.5]);
    let n = xs.len();
    let mut mem = VecMem::new(1 << 20);
    let globals = load_globals(&m, &mut mem);
    let px = mem.alloc_f32(&xs);
    let po = mem.alloc(n * 8 * 4);
    let args = [Arg::U64(px), Arg::U64(po), Arg::I32(n as i32)];
    run_g(
        &m,
        "float_math",
        cfg([2, 1, 1], [128, 1, 1]),
        &args,
        &mem,
        2,
        &globals,
    )
    .unwrap();
    let got = mem.read_f32(po, n * 8);
    let close = |g: f32, w: f64, tol: f64, what: &str, x: f32| {
        let ok = g as f64 == w || ((g as f64) - w).abs() <= tol * (1.0 + w.abs());
        assert!(ok, "{what}({x}): got {g}, want {w}");
    };
    for (i, &x) in xs.iter().enumerate() {
        let o = &got[i * 8..i * 8 + 8];
        let xd = x as f64;
        close(o[0], xd.sin() + xd.cos(), 2e-6, "sin+cos", x);
        close(o[1], xd.exp() + (xd.abs() + 1.0).ln(), 2e-5, "expf+logf", x);
        close(o[2], xd.tanh(), 2e-6, "tanh", x);
        close(
            o[3],
            1.0 / (xd.abs() + 1.0).sqrt() + xd.abs().sqrt(),
            2e-6,
            "rsqrt+sqrt",
            x,
        );
        let ints = (x as i32) as f32
            + (x.abs() as u32) as f32
            + x.round_ties_even()
            + x.floor()
            + x.ceil()
            + x.trunc();
        close(o[4], ints as f64, 1e-6, "rounding", x);
        let sat = x.clamp(0.0, 1.0);
        let v5 = 2f32.copysign(x) + x.min(0.5) + sat;
        close(o[5], v5 as f64, 1e-7, "copysign/min/sat", x);
        close(o[6], (x / x.mul_add(x, 1.0)) as f64, 1e-7, "div", x);
        close(o[7], (xd.abs() + 0.5).powf(1.7), 2e-6, "powf", x);
    }
}

fn f16_bits(x: f32) -> u16 {
    // reference round-to-nearest-even f32 -> f16
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = x.abs();
    if a.is_nan() {
        return 0x7fff;
    }
    if a >= 65520.0 {
        return sign | 0x7c00;
    }
    if a < 2f32.powi(-14) {
        let q = (a as f64 / 2f64.powi(-24)).round_ties_even() as u16;
        return sign | q;
    }
    let e = a.log2().floor() as i32;
    let e = if 2f32.powi(e) > a { e - 1 } else { e };
    let m = (a as f64 / 2f64.powi(e) - 1.0) * 1024.0;
    let mut q = m.round_ties_even() as u32;
    let mut e = e;
    if q == 1024 {
        q = 0;
        e += 1;
    }
    sign | (((e + 15) as u16) << 10) | q as u16
}

fn f16_val(h: u16) -> f32 {
    let s = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let e = ((h >> 10) & 0x1f) as i32;
    let m = (h & 0x3ff) as f32;
    s * if e == 0 {
        m * 2f32.powi(-24)
    } else if e == 31 {
        if m == 0.0 {
            f32::INFINITY
        } else {
            f32::NAN
        }
    } else {
        (1.0 + m / 1024.0) * 2f32.powi(e - 15)
    }
}

#[test]
fn half_precision() {
    let m = Module::load(&fixture("misc.ptx")).unwrap();
    let xs: Vec<f32> = vec![
        1.0, 0.1, -2.0, 65504.0, 1e6, 5.96e-8, 0.333, -1234.5, 3.25159, 1e-5, 0.0, -0.0, 7.25,
        100.0, -0.5, 2.0,
    ];
    let n = xs.len();
    let mut mem = VecMem::new(1 << 16);
    let px = mem.alloc_f32(&xs);
    let po = mem.alloc(n * 3 * 4);
    let ph = mem.alloc(n * 2);
    run(
        &m,
        "half_conv",
        cfg([1, 1, 1], [32, 1, 1]),
        &[Arg::U64(px), Arg::U64(po), Arg::U64(ph), Arg::I32(n as i32)],
        &mem,
        1,
    )
    .unwrap();
    let out = mem.read_f32(po, n * 3);
    let hb = mem.read(ph, n * 2);
    assert_eq!(u16::from_le_bytes([hb[0], hb[1]]), 0x3c00);
    assert_eq!(u16::from_le_bytes([hb[2], hb[3]]), 0x2e66);
    assert_eq!(u16::from_le_bytes([hb[6], hb[7]]), 0x7bff);
    assert_eq!(u16::from_le_bytes([hb[8], hb[9]]), 0x7c00);
    assert_eq!(u16::from_le_bytes([hb[10], hb[11]]), 0x0001);
    for (i, &x) in xs.iter().enumerate() {
        let h = u16::from_le_bytes([hb[2 * i], hb[2 * i + 1]]);
        assert_eq!(h, f16_bits(x), "f16 bits of {x}");
        assert_eq!(
            out[i * 3].to_bits(),
            f16_val(h).to_bits(),
            "half->float of {x}"
        );
        // s = (h2 + h2) * h2 with h2 = {lo: x, hi: 2x}, each op rounded to f16
        let lo = f16_val(f16_bits(x));
        let hi = f16_val(f16_bits(2.0 * x));
        let slo = f16_val(f16_bits(f16_val(f16_bits(lo + lo)) * lo));
        let shi = f16_val(f16_bits(f16_val(f16_bits(hi + hi)) * hi));
        let want = slo + shi;
        assert!(
            out[i * 3 + 1] == want || (want.is_nan() && out[i * 3 + 1].is_nan()),
            "half2 math of {x}: {} vs {want}",
            out[i * 3 + 1]
        );
        // bf16 round trip: round-to-nearest-even on the upper 16 bits
        let b = x.to_bits();
        let r = b.wrapping_add(0x7fff + ((b >> 16) & 1)) & 0xffff_0000;
        assert_eq!(out[i * 3 + 2].to_bits(), r, "bf16 of {x}");
    }
}

#[test]
fn half_math_library() {
    let m = Module::load(&fixture("half_math.ptx")).unwrap();
    let xs: Vec<f32> = vec![0.25, 0.5, 1.0, 1.5, 2.0, 3.0, -0.75, -2.5, 0.125, 4.0];
    let n = xs.len();
    let mut mem = VecMem::new(1 << 16);
    let hb: Vec<u8> = xs.iter().flat_map(|&x| f16_bits(x).to_le_bytes()).collect();
    let bb: Vec<u8> = xs
        .iter()
        .flat_map(|&x| ((x.to_bits() >> 16) as u16).to_le_bytes())
        .collect();
    let (pa, pb) = (mem.alloc(n * 2), mem.alloc(n * 2));
    mem.write(pa, &hb);
    mem.write(pb, &bb);
    let (po, pob) = (mem.alloc(n * 4), mem.alloc(n * 2));
    let args = [
        Arg::U64(pa),
        Arg::U64(po),
        Arg::U64(pb),
        Arg::U64(pob),
        Arg::I32(n as i32),
    ];
    run(&m, "half_math", cfg([1, 1, 1], [32, 1, 1]), &args, &mem, 1).unwrap();
    let o = mem.read(po, n * 4);
    let ob = mem.read(pob, n * 2);
    let h = |k: usize| f16_val(u16::from_le_bytes([o[2 * k], o[2 * k + 1]]));
    let close = |g: f32, w: f32, what: &str| {
        assert!(
            (g - w).abs() <= 0.01 * (1.0 + w.abs()),
            "{what}: {g} vs {w}"
        )
    };
    for (i, &x) in xs.iter().enumerate() {
        let mut y = x.exp() + x.abs().sqrt() * (1.0 / x) - (x.abs() + 1.0).ln();
        y = y.mul_add(x, x.max(0.5));
        if y > x {
            y = -y;
        }
        close(h(i), y, &format!("half chain x={x}"));
        let y16 = f16_val(f16_bits(y));
        close(h(n + i), x.exp() + y16.exp(), &format!("h2exp x={x}"));
        let z = f32::from_bits(((u16::from_le_bytes([ob[2 * i], ob[2 * i + 1]])) as u32) << 16);
        close(z, x.mul_add(x, 1.0) + x.exp(), &format!("bf16 x={x}"));
    }
}

/// Words 0–9 of lane `t` of `misc_ops`: control flow, carries, bit fields, selects,
/// predicates and a predicated call.
fn check_misc_scalar_ops(t: u32, r: &[u32]) {
    assert_eq!(r[0], [100, 200, 300][(t % 3) as usize], "brx t={t}");
    let wide = t as u64 + 0xffff_ffff;
    assert_eq!(
        (r[1], r[2]),
        (wide as u32, (wide >> 32) as u32),
        "addc t={t}"
    );
    let x = t.wrapping_mul(0x1234567);
    assert_eq!(
        r[3],
        (((x >> 4) & 0xff) as u8 as i8) as i32 as u32,
        "bfe t={t}"
    );
    assert_eq!(r[4], if t >= 16 { 1 } else { 2 }, "slct t={t}");
    assert_eq!(r[5], if t < 5 { u32::MAX } else { 0 }, "set t={t}");
    assert_eq!(
        r[6],
        (t != 3) as u32 + if t == 0 { 2 } else { 0 },
        "testp t={t}"
    );
    let p6 = (t % 2 == 0) ^ (t < 8);
    assert_eq!(
        r[7],
        if p6 { 10 } else { 0 } + (t % 2 == 0) as u32,
        "pred logic t={t}"
    );
    assert_eq!(
        r[8],
        if t < 10 { t * t } else { 5 },
        "predicated call t={t}"
    );
    assert_eq!(r[9], 3, "isspacep t={t}");
}

/// Words 10–14 of lane `t` of `misc_ops`: warp collectives, f64 sign operations, byte
/// operations, a block reduction and sin/cos.
fn check_misc_warp_and_byte_ops(t: u32, r: &[u32]) {
    // match.all over 31 lanes of the same key -> mask 0x7fffffff; elect leader 0
    assert_eq!(
        r[10],
        if t == 0 { 1000u32 } else { 0 } ^ 0x7fff_ffff ^ 0x7fff_ffff,
        "collectives t={t}"
    );
    let d = t as i32 - 16;
    assert_eq!(r[11] as i32, d, "f64 sign ops t={t}");
    let x = t.wrapping_mul(0x1234567);
    let bytes_a = x.to_le_bytes();
    let bytes_b = 0x01FF_0102u32.to_le_bytes();
    let dp: i32 = 7
        + (0..4)
            .map(|k| bytes_a[k] as i32 * (bytes_b[k] as i8) as i32)
            .sum::<i32>();
    let cat = ((t as u64) << 32) | x as u64;
    let f4e = (0..4).fold(0u32, |acc, k| {
        acc | (((cat >> ((1 + k) * 8)) & 0xff) as u32) << (k * 8)
    });
    let bf = if x == 0 {
        u32::MAX
    } else {
        31 - x.leading_zeros()
    };
    assert_eq!(
        r[12],
        ((dp as u32) ^ f4e).wrapping_add(bf),
        "dp4a/prmt/bfind t={t}"
    );
    assert_eq!(r[13], 11, "bar.red.popc t={t}");
    let a = t as f32 * 0.1f32;
    assert!(
        (r[14] as i32 - ((a.sin() + a.cos()) * 1000.0).round() as i32).abs() <= 1,
        "sin/cos t={t}"
    );
}

#[test]
fn handwritten_ops() {
    let m = Module::load(&fixture("handwritten.ptx")).unwrap();
    let mut mem = VecMem::new(1 << 16);
    let po = mem.alloc(32 * 64);
    let st = run(
        &m,
        "misc_ops",
        cfg([1, 1, 1], [32, 1, 1]),
        &[Arg::U64(po)],
        &mem,
        1,
    )
    .unwrap();
    assert!(st.control > 0);
    let w = mem.read_u32(po, 32 * 16);
    for t in 0..32u32 {
        let r = &w[t as usize * 16..t as usize * 16 + 16];
        assert_eq!(r[15], 77, "t={t}");
        if t == 31 {
            assert!(r[..15].iter().all(|&v| v == 0), "lane 31 exited");
            continue;
        }
        check_misc_scalar_ops(t, r);
        check_misc_warp_and_byte_ops(t, r);
    }
}
