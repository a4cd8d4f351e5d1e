//! Predicate-producing and selection instructions (`setp`, `set`, `selp`,
//! `slct`, predicate logic), register packing, special-register reads,
//! `nanosleep` and other small handlers.

use super::float::FloatT;
use super::int::IntT;
use super::program::{lanes, pack_bools, Cx, Inst, Op3, FULL, LANES, NONE, R};
use super::TimeSource;
use std::marker::PhantomData;

/// Lane comparison.
pub(crate) trait Cmp {
    fn f(a: u64, b: u64) -> bool;
}

/// Integer comparison: 0 eq, 1 ne, 2 lt, 3 le, 4 gt, 5 ge.
pub(crate) struct ICmp<T, const OP: u8>(PhantomData<T>);
impl<T: IntT, const OP: u8> Cmp for ICmp<T, OP> {
    #[inline(always)]
    fn f(a: u64, b: u64) -> bool {
        let (a, b) = (T::from_r(a), T::from_r(b));
        match OP {
            0 => a == b,
            1 => a != b,
            2 => a < b,
            3 => a <= b,
            4 => a > b,
            _ => a >= b,
        }
    }
}

/// Float comparison: 0..5 ordered eq..ge, 6..11 unordered equ..geu, 12 num, 13 nan.
pub(crate) struct FCmp<T, const OP: u8>(PhantomData<T>);
impl<T: FloatT, const OP: u8> Cmp for FCmp<T, OP> {
    #[inline(always)]
    fn f(a: u64, b: u64) -> bool {
        let (a, b) = (T::from_r(a), T::from_r(b));
        let nan = a.is_nan() || b.is_nan();
        match OP {
            0 => a == b,
            1 => !nan && a != b,
            2 => a < b,
            3 => a <= b,
            4 => a > b,
            5 => a >= b,
            6 => nan || a == b,
            7 => a != b,
            8 => nan || a < b,
            9 => nan || a <= b,
            10 => nan || a > b,
            11 => nan || a >= b,
            12 => !nan,
            _ => nan,
        }
    }
}

/// Write a comparison result with the optional `.and/.or/.xor` combine (aux 1..3)
/// with predicate `x[1]`, to `r[0]` and the complement destination `x[0]`.
#[inline(always)]
fn finish_pred(i: &Inst, cx: &mut Cx<'_>, m: u32, bits: u32) {
    if i.aux == 0 {
        cx.set_pred(i.r[0], bits, m);
        if i.x[0] != NONE {
            cx.set_pred(i.x[0], !bits, m);
        }
        return;
    }
    let c = cx.pred(i.x[1]);
    let (p, q) = match i.aux {
        1 => (bits & c, !bits & c),
        2 => (bits | c, !bits | c),
        _ => (bits ^ c, !bits ^ c),
    };
    cx.set_pred(i.r[0], p, m);
    if i.x[0] != NONE {
        cx.set_pred(i.x[0], q, m);
    }
}

/// `setp`: predicate `r[0]` = cmp(`r[1]`, `r[2]`).
pub(crate) fn h_setp<C: Cmp>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    super::raw::with_simd(
        #[inline(always)]
        || setp_impl::<C>(i, cx, m),
    )
}

#[inline(always)]
fn setp_impl<C: Cmp>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let av = &cx.regs[i.r[1] as usize];
    let bv = &cx.regs[i.r[2] as usize];
    let mut b = [0u8; LANES];
    for l in 0..LANES {
        b[l] = C::f(av[l], bv[l]) as u8;
    }
    let bits = pack_bools(&b);
    finish_pred(i, cx, m, bits);
    Ok(())
}

/// `set`: register `r[0]` = cmp ? (float dst: 1.0f, else all ones) : 0; aux bit 8 = f32 dest.
pub(crate) fn h_set<C: Cmp>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let av = cx.regs[i.r[1] as usize];
    let bv = cx.regs[i.r[2] as usize];
    let mut bits = 0u32;
    for l in 0..LANES {
        bits |= (C::f(av[l], bv[l]) as u32) << l;
    }
    let comb = i.aux & 0xff;
    if comb != 0 {
        let c = cx.pred(i.x[1]);
        bits = match comb {
            1 => bits & c,
            2 => bits | c,
            _ => bits ^ c,
        };
    }
    let one = if i.aux & 0x100 != 0 {
        1.0f32.to_bits() as u64
    } else {
        0xffff_ffff
    };
    let d = &mut cx.regs[i.r[0] as usize];
    for l in lanes(m) {
        d[l] = if (bits >> l) & 1 != 0 { one } else { 0 };
    }
    Ok(())
}

/// `selp`: `r[0] = pred(x[0]) ? r[1] : r[2]`.
pub(crate) fn h_selp(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    super::raw::with_simd(
        #[inline(always)]
        || selp_impl(i, cx, m),
    )
}

#[inline(always)]
fn selp_impl(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let p = cx.pred(i.x[0]);
    let av = cx.regs[i.r[1] as usize];
    let bv = cx.regs[i.r[2] as usize];
    let d = &mut cx.regs[i.r[0] as usize];
    if m == FULL {
        for l in 0..LANES {
            d[l] = if (p >> l) & 1 != 0 { av[l] } else { bv[l] };
        }
    } else {
        for l in lanes(m) {
            d[l] = if (p >> l) & 1 != 0 { av[l] } else { bv[l] };
        }
    }
    Ok(())
}

/// `slct`: `r[0] = r[3] >= 0 ? r[1] : r[2]`; aux 1 = f32 selector.
pub(crate) fn h_slct(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let f = i.aux == 1;
    crate::exec::program::map3(cx.regs, i.r[0], i.r[1], i.r[2], i.r[3], m, |a, b, c| {
        let ge = if f {
            f32::from_bits(c as u32) >= 0.0
        } else {
            c as u32 as i32 >= 0
        };
        if ge {
            a
        } else {
            b
        }
    });
    Ok(())
}

/// Predicate logic: aux 0 and, 1 or, 2 xor, 3 not, 4 mov; operands are pred refs.
pub(crate) fn h_plogic(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = cx.pred(i.r[1]);
    let v = match i.aux {
        0 => a & cx.pred(i.r[2]),
        1 => a | cx.pred(i.r[2]),
        2 => a ^ cx.pred(i.r[2]),
        3 => !a,
        _ => a,
    };
    cx.set_pred(i.r[0], v, m);
    Ok(())
}

/// Pack `x[0..n]` (each `aux` bits wide) into `r[0]`.
pub(crate) fn h_pack(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let w = i.aux & 0xff;
    let n = ((i.aux >> 8) & 0xf) as usize;
    let mask = if w >= 64 { u64::MAX } else { (1u64 << w) - 1 };
    let mut out = [0u64; LANES];
    for k in 0..n {
        let s = &cx.regs[i.x[k] as usize];
        for l in 0..LANES {
            out[l] |= (s[l] & mask) << (k as u32 * w);
        }
    }
    let d = &mut cx.regs[i.r[0] as usize];
    for l in lanes(m) {
        d[l] = out[l];
    }
    Ok(())
}

/// Unpack `r[1]` into `x[0..n]` (each `aux` bits wide; NONE = sink).
pub(crate) fn h_unpack(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let w = i.aux & 0xff;
    let n = ((i.aux >> 8) & 0xf) as usize;
    let mask = if w >= 64 { u64::MAX } else { (1u64 << w) - 1 };
    let a = cx.regs[i.r[1] as usize];
    for k in 0..n {
        if i.x[k] == NONE {
            continue;
        }
        let d = &mut cx.regs[i.x[k] as usize];
        for l in lanes(m) {
            d[l] = (a[l] >> (k as u32 * w)) & mask;
        }
    }
    Ok(())
}

/// Host time in nanoseconds for `%globaltimer`.
pub(crate) fn now_ns(cx: &Cx<'_>) -> u64 {
    match cx.env.time {
        TimeSource::Host => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
        TimeSource::Offset(v) => v.wrapping_add(cx.env.t0.elapsed().as_nanos() as u64),
        TimeSource::Custom(f) => f(),
    }
}

/// Dynamic special registers: aux 0 %clock, 1 %clock_hi, 2 %clock64, 3 %globaltimer,
/// 4 %globaltimer_lo, 5 %globaltimer_hi.
pub(crate) fn h_read_clock(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let clock = cx.misc.clock + cx.cnt.class.iter().sum::<u64>();
    let v = match i.aux {
        0 => clock as u32 as u64,
        1 => clock >> 32,
        2 => clock,
        3 => now_ns(cx),
        4 => now_ns(cx) as u32 as u64,
        _ => now_ns(cx) >> 32,
    };
    let d = &mut cx.regs[i.r[0] as usize];
    for l in lanes(m) {
        d[l] = v;
    }
    Ok(())
}

/// `nanosleep`: record the requested time per thread (no actual sleep).
pub(crate) fn h_nanosleep(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = cx.regs[i.r[1] as usize];
    for l in lanes(m) {
        let t = (a[l] as u32).min(1_000_000) as u64;
        cx.misc.sleep_ns[l] += t;
    }
    Ok(())
}

/// 4-operand integer ops: aux 0 = bfi (a, b, pos=r[3], len=x[0]).
pub(crate) fn h_bfi<T: IntT>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let (a, b, c, e) = (
        cx.regs[i.r[1] as usize],
        cx.regs[i.r[2] as usize],
        cx.regs[i.r[3] as usize],
        cx.regs[i.x[0] as usize],
    );
    let d = &mut cx.regs[i.r[0] as usize];
    for l in lanes(m) {
        d[l] = super::int::bfi::<T>(a[l], b[l], c[l], e[l]);
    }
    Ok(())
}

/// `bfind` (aux 1 = .shiftamt).
pub(crate) fn h_bfind<T: IntT>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let shift = i.aux == 1;
    crate::exec::program::map1(cx.regs, i.r[0], i.r[1], m, |a| {
        super::int::bfind::<T>(a, shift)
    });
    Ok(())
}

/// `prmt.b32` (aux = mode).
pub(crate) fn h_prmt(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let mode = i.aux;
    crate::exec::program::map3(cx.regs, i.r[0], i.r[1], i.r[2], i.r[3], m, |a, b, c| {
        super::int::prmt(a, b, c, mode)
    });
    Ok(())
}

/// `shf.{l,r}.{wrap,clamp}.b32` (aux bit0 = left, bit1 = wrap).
pub(crate) fn h_shf(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let (left, wrap) = (i.aux & 1 != 0, i.aux & 2 != 0);
    crate::exec::program::map3(cx.regs, i.r[0], i.r[1], i.r[2], i.r[3], m, |a, b, c| {
        super::int::shf(a, b, c, left, wrap)
    });
    Ok(())
}

/// `testp.class.type p, a` (aux = class | 0x100 for f64).
pub(crate) fn h_testp(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = &cx.regs[i.r[1] as usize];
    let class = i.aux & 0xff;
    let mut bits = 0u32;
    for l in 0..LANES {
        let t = if i.aux & 0x100 != 0 {
            super::float::testp(f64::from_bits(a[l]), class)
        } else {
            super::float::testp(f32::from_bits(a[l] as u32), class)
        };
        bits |= (t as u32) << l;
    }
    cx.set_pred(i.r[0], bits, m);
    Ok(())
}

/// `aux` bits of [`h_addc`].
pub(crate) mod cc {
    /// Subtract (`sub.cc` / `subc`).
    pub const SUB: u32 = 1;
    /// Adds the carry flag (`addc` / `subc` / `madc`).
    pub const CIN: u32 = 2;
    /// Writes the carry flag (`.cc`).
    pub const COUT: u32 = 4;
    /// 64-bit operands (else 32-bit).
    pub const W64: u32 = 8;
    /// Multiply-add: `d = (a * b).{lo,hi} + c (+ CF)` with `c` in `r[3]`.
    pub const MAD: u32 = 16;
    /// `.hi` half of the product (else `.lo`).
    pub const HI: u32 = 32;
    /// Signed product (`.s32` / `.s64`).
    pub const SIGNED: u32 = 64;
}

/// Extended-precision integer arithmetic with the carry flag (`add.cc`, `addc`, `sub.cc`,
/// `subc`, `mad{.lo,.hi}.cc`, `madc{.lo,.hi}{.cc}`; flags in [`cc`]). The flag CC.CF lives in
/// predicate `x[0]`; for subtraction it is the borrow.
pub(crate) fn h_addc(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let sub = i.aux & cc::SUB != 0;
    let cin = if i.aux & cc::CIN != 0 {
        cx.preds[i.x[0] as usize]
    } else {
        0
    };
    let bits = if i.aux & cc::W64 != 0 { 64 } else { 32 };
    let mad = i.aux & cc::MAD != 0;
    let (hi, signed) = (i.aux & cc::HI != 0, i.aux & cc::SIGNED != 0);
    let (a, b) = (cx.regs[i.r[1] as usize], cx.regs[i.r[2] as usize]);
    let c = if mad { cx.regs[i.r[3] as usize] } else { a };
    let mut cout = 0u32;
    let d = &mut cx.regs[i.r[0] as usize];
    for l in lanes(m) {
        let ci = (cin >> l) & 1 != 0;
        let (x, y) = if mad {
            (super::int::mul_part(a[l], b[l], bits, signed, hi), c[l])
        } else {
            (a[l], b[l])
        };
        let (r, co) = if bits == 64 {
            super::int::addc::<u64>(x, y, ci, sub)
        } else {
            super::int::addc::<u32>(x, y, ci, sub)
        };
        d[l] = r;
        cout |= (co as u32) << l;
    }
    if i.aux & cc::COUT != 0 {
        cx.set_pred(i.x[0], cout, m);
    }
    Ok(())
}

/// `dp4a` with operand signedness (A_S, B_S).
pub(crate) struct Dp4a<const A_S: bool, const B_S: bool>;
impl<const A_S: bool, const B_S: bool> Op3 for Dp4a<A_S, B_S> {
    #[inline(always)]
    fn f(a: u64, b: u64, c: u64) -> u64 {
        let mut acc = c as u32 as i64;
        for k in 0..4 {
            let x = (a >> (8 * k)) as u8;
            let y = (b >> (8 * k)) as u8;
            let x = if A_S { x as i8 as i64 } else { x as i64 };
            let y = if B_S { y as i8 as i64 } else { y as i64 };
            acc += x * y;
        }
        acc as u32 as u64
    }
}

/// `dp2a.{lo,hi}` with operand signedness (A_S for the 16-bit halves, B_S for the bytes).
pub(crate) struct Dp2a<const A_S: bool, const B_S: bool, const HI: bool>;
impl<const A_S: bool, const B_S: bool, const HI: bool> Op3 for Dp2a<A_S, B_S, HI> {
    #[inline(always)]
    fn f(a: u64, b: u64, c: u64) -> u64 {
        let mut acc = c as u32 as i64;
        for k in 0..2 {
            let x = (a >> (16 * k)) as u16;
            let y = (b >> (8 * (k + 2 * HI as u64))) as u8;
            let x = if A_S { x as i16 as i64 } else { x as i64 };
            let y = if B_S { y as i8 as i64 } else { y as i64 };
            acc += x * y;
        }
        acc as u32 as u64
    }
}
