//! Exact floating-point arithmetic with any IEEE rounding mode: the path of every
//! `add/sub/mul/fma/mad/div/sqrt/rcp` with a directed rounding mode (`.rz .rm .rp`), with or
//! without `.ftz` / `.sat`, on f32 and f64.
//!
//! Operands are decoded into exact integer significands (`±sig · 2^exp`, `sig` in a `u128`),
//! the operation is carried out exactly — sums aligned with a sticky bit standing for
//! everything below 120 significant bits, products exact (106 bits), quotients and square
//! roots to more than 70 bits plus a sticky remainder bit — and the exact value is rounded
//! once into the destination format by [`round_parts`], which handles subnormal results,
//! overflow (to infinity or the largest finite value, per mode) and all four modes. No
//! intermediate rounding happens anywhere, so a fused multiply-add is rounded once, as the
//! ISA requires.
//!
//! Special values follow IEEE 754: NaN operands and invalid operations (`inf - inf`,
//! `0 * inf`, `0 / 0`, `inf / inf`, `sqrt` of a negative number) give the canonical NaN of
//! the format; an exact zero sum is `+0` except in round-toward-negative (`-0`) unless both
//! addends are zeros of the same sign.

use super::fround::{canon_nan, round_parts, Fmt, Rnd, F32, F64};
use super::program::{map1, map2, map3, Cx, Inst, R};

/// An exact finite value `(-1)^neg · sig · 2^exp`.
#[derive(Debug, Clone, Copy)]
struct Unp {
    neg: bool,
    sig: u128,
    exp: i32,
}

/// Decodes a finite f64 (every f32 converts to f64 exactly).
fn unpack(x: f64) -> Unp {
    let b = x.to_bits();
    let e = ((b >> 52) & 0x7ff) as i32;
    let m = (b & ((1u64 << 52) - 1)) as u128;
    let (sig, exp) = if e == 0 {
        (m, -1074)
    } else {
        (m | (1 << 52), e - 1075)
    };
    Unp {
        neg: b >> 63 != 0,
        sig,
        exp,
    }
}

fn bitlen(v: u128) -> i32 {
    128 - v.leading_zeros() as i32
}

/// Infinity of format `f` with the given sign.
fn inf_bits(neg: bool, f: Fmt) -> u64 {
    ((neg as u64) << (f.e + f.m)) | (((1u64 << f.e) - 1) << f.m)
}

/// Zero of format `f` with the given sign.
fn zero_bits(neg: bool, f: Fmt) -> u64 {
    (neg as u64) << (f.e + f.m)
}

/// Sign of an exact zero sum of addends with signs `xn`, `yn`.
fn zero_sum_neg(xn: bool, yn: bool, r: Rnd) -> bool {
    if xn == yn {
        xn
    } else {
        r == Rnd::Rm
    }
}

/// Rounds `v` (with `sticky`: a nonzero value below its last bit was dropped) into `f`.
fn round(v: Unp, sticky: bool, f: Fmt, r: Rnd) -> u64 {
    if sticky {
        debug_assert!(v.sig < 1 << 126);
        round_parts(v.neg, (v.sig << 1) | 1, v.exp - 1, f, r)
    } else {
        round_parts(v.neg, v.sig, v.exp, f, r)
    }
}

/// Exact sum of two nonzero values, as a value and a sticky bit (the result is
/// rounding-equivalent to the true sum for any format of at most 113 bits). A zero
/// significand means an exact zero.
fn add_exact(x: Unp, y: Unp) -> (Unp, bool) {
    let (mut a, mut b) = if x.exp + bitlen(x.sig) >= y.exp + bitlen(y.sig) {
        (x, y)
    } else {
        (y, x)
    };
    // Give `a` 120 significant bits; `b` (no higher top bit) is aligned to `a`'s exponent.
    let up = 120 - bitlen(a.sig);
    a.sig <<= up;
    a.exp -= up;
    let shift = b.exp - a.exp;
    let mut sticky = false;
    if shift >= 0 {
        b.sig <<= shift;
    } else if -shift >= 128 {
        sticky = true;
        b.sig = 0;
    } else {
        let s = (-shift) as u32;
        sticky = b.sig & ((1u128 << s) - 1) != 0;
        b.sig >>= s;
    }
    if a.neg == b.neg {
        let sig = (a.sig + b.sig) << 1 | sticky as u128;
        return (
            Unp {
                neg: a.neg,
                sig,
                exp: a.exp - 1,
            },
            false,
        );
    }
    if b.sig > a.sig {
        // Only possible without a sticky part (equal top bits).
        let sig = b.sig - a.sig;
        return (
            Unp {
                neg: b.neg,
                sig,
                exp: a.exp,
            },
            false,
        );
    }
    let sig = ((a.sig - b.sig) << 1) - sticky as u128;
    (
        Unp {
            neg: a.neg,
            sig,
            exp: a.exp - 1,
        },
        false,
    )
}

/// `a + b` rounded into `f` (operands are exact values of that format).
pub(crate) fn add(a: f64, b: f64, f: Fmt, r: Rnd) -> u64 {
    if a.is_nan() || b.is_nan() || (a.is_infinite() && b.is_infinite() && a != b) {
        return canon_nan(f);
    }
    if a.is_infinite() || b.is_infinite() {
        let neg = if a.is_infinite() { a < 0.0 } else { b < 0.0 };
        return inf_bits(neg, f);
    }
    let (x, y) = (unpack(a), unpack(b));
    if x.sig == 0 && y.sig == 0 {
        return zero_bits(zero_sum_neg(x.neg, y.neg, r), f);
    }
    if x.sig == 0 || y.sig == 0 {
        return round(if x.sig == 0 { y } else { x }, false, f, r);
    }
    let (s, sticky) = add_exact(x, y);
    if s.sig == 0 {
        return zero_bits(zero_sum_neg(x.neg, y.neg, r), f);
    }
    round(s, sticky, f, r)
}

/// `a * b + c` rounded once into `f`; `c = None` is a plain product.
pub(crate) fn fma(a: f64, b: f64, c: Option<f64>, f: Fmt, r: Rnd) -> u64 {
    let cv = c.unwrap_or(0.0);
    if a.is_nan() || b.is_nan() || cv.is_nan() {
        return canon_nan(f);
    }
    let pneg = a.is_sign_negative() != b.is_sign_negative();
    let pinf = a.is_infinite() || b.is_infinite();
    if pinf && (a == 0.0 || b == 0.0) {
        return canon_nan(f);
    }
    if pinf {
        if cv.is_infinite() && (cv < 0.0) != pneg {
            return canon_nan(f);
        }
        return inf_bits(pneg, f);
    }
    if cv.is_infinite() {
        return inf_bits(cv < 0.0, f);
    }
    let (x, y) = (unpack(a), unpack(b));
    let p = Unp {
        neg: pneg,
        sig: x.sig * y.sig,
        exp: x.exp + y.exp,
    };
    let Some(cv) = c else {
        return if p.sig == 0 {
            zero_bits(pneg, f)
        } else {
            round(p, false, f, r)
        };
    };
    let z = unpack(cv);
    if p.sig == 0 && z.sig == 0 {
        return zero_bits(zero_sum_neg(pneg, z.neg, r), f);
    }
    if p.sig == 0 || z.sig == 0 {
        return round(if p.sig == 0 { z } else { p }, false, f, r);
    }
    let (s, sticky) = add_exact(p, z);
    if s.sig == 0 {
        return zero_bits(zero_sum_neg(pneg, z.neg, r), f);
    }
    round(s, sticky, f, r)
}

/// `a / b` rounded into `f`.
pub(crate) fn div(a: f64, b: f64, f: Fmt, r: Rnd) -> u64 {
    let neg = a.is_sign_negative() != b.is_sign_negative();
    if a.is_nan() || b.is_nan() || (a == 0.0 && b == 0.0) {
        return canon_nan(f);
    }
    if a.is_infinite() {
        return if b.is_infinite() {
            canon_nan(f)
        } else {
            inf_bits(neg, f)
        };
    }
    if b.is_infinite() || a == 0.0 {
        return zero_bits(neg, f);
    }
    if b == 0.0 {
        return inf_bits(neg, f);
    }
    let (x, y) = (unpack(a), unpack(b));
    let up = 126 - bitlen(x.sig);
    let num = x.sig << up;
    let (q, rem) = (num / y.sig, num % y.sig);
    let v = Unp {
        neg,
        sig: q,
        exp: x.exp - up - y.exp,
    };
    round(v, rem != 0, f, r)
}

/// Integer square root: `(s, n - s²)` with `s = floor(sqrt(n))`.
fn isqrt(n: u128) -> (u128, u128) {
    let mut rem = n;
    let mut root = 0u128;
    let mut bit = 1u128 << 126;
    while bit > n {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    (root, rem)
}

/// `sqrt(a)` rounded into `f`.
pub(crate) fn sqrt(a: f64, f: Fmt, r: Rnd) -> u64 {
    if a.is_nan() || a < 0.0 {
        return canon_nan(f);
    }
    if a.is_infinite() {
        return inf_bits(false, f);
    }
    let x = unpack(a);
    if x.sig == 0 {
        return zero_bits(x.neg, f);
    }
    let mut up = 124 - bitlen(x.sig);
    if (x.exp - up) % 2 != 0 {
        up += 1;
    }
    let (root, rem) = isqrt(x.sig << up);
    let v = Unp {
        neg: false,
        sig: root,
        exp: (x.exp - up) / 2,
    };
    round(v, rem != 0, f, r)
}

/// `aux` layout of [`h_farith`] and the op codes of [`lane`].
pub(crate) mod fa {
    pub const ADD: u32 = 0;
    pub const SUB: u32 = 1;
    pub const MUL: u32 = 2;
    pub const DIV: u32 = 3;
    pub const FMA: u32 = 4;
    pub const SQRT: u32 = 5;
    pub const RCP: u32 = 6;
    /// Rounding mode ([`super::Rnd`] code) in bits 4..6.
    pub const RND_SHIFT: u32 = 4;
    /// `.ftz` (f32 only).
    pub const FTZ: u32 = 1 << 6;
    /// `.sat`.
    pub const SAT: u32 = 1 << 7;
    /// f64 operands (else f32).
    pub const F64: u32 = 1 << 8;
}

/// One lane of [`h_farith`]: operands and result are raw register values.
pub(crate) fn lane(aux: u32, a: u64, b: u64, c: u64) -> u64 {
    let r = Rnd::from_u8((aux >> fa::RND_SHIFT) as u8);
    let is64 = aux & fa::F64 != 0;
    let ftz = aux & fa::FTZ != 0 && !is64;
    let (f, dec): (Fmt, fn(u64, bool) -> f64) = if is64 {
        (F64, |v, _| f64::from_bits(v))
    } else {
        (F32, |v, ftz| {
            let x = f32::from_bits(v as u32);
            if ftz && x.is_subnormal() {
                0.0f32.copysign(x) as f64
            } else {
                x as f64
            }
        })
    };
    let (x, y, z) = (dec(a, ftz), dec(b, ftz), dec(c, ftz));
    let mut out = match aux & 0xf {
        fa::ADD => add(x, y, f, r),
        fa::SUB => add(x, -y, f, r),
        fa::MUL => fma(x, y, None, f, r),
        fa::DIV => div(x, y, f, r),
        fa::FMA => fma(x, y, Some(z), f, r),
        fa::SQRT => sqrt(x, f, r),
        _ => div(1.0, x, f, r),
    };
    let exp_mask = ((1u64 << f.e) - 1) << f.m;
    if ftz && out & exp_mask == 0 {
        out &= 1 << 31;
    }
    if aux & fa::SAT != 0 {
        out = saturate(out, f);
    }
    out
}

/// f32/f64 arithmetic with a directed rounding mode (and `.ftz` / `.sat`), exactly rounded:
/// `r[0] = op(r[1], r[2], r[3])` with the op and flags in `aux` ([`fa`]).
pub(crate) fn h_farith(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let aux = i.aux;
    let [d, a, b, c] = i.r;
    match aux & 0xf {
        fa::SQRT | fa::RCP => map1(cx.regs, d, a, m, |x| lane(aux, x, 0, 0)),
        fa::FMA => map3(cx.regs, d, a, b, c, m, |x, y, z| lane(aux, x, y, z)),
        _ => map2(cx.regs, d, a, b, m, |x, y| lane(aux, x, y, 0)),
    }
    Ok(())
}

/// `.sat`: clamp to `[+0, 1]`, NaN to `+0`.
fn saturate(bits: u64, f: Fmt) -> u64 {
    let one = ((1u64 << (f.e - 1)) - 1) << f.m;
    let sign = 1u64 << (f.e + f.m);
    let nan = bits & !sign > inf_bits(false, f);
    if nan || bits & sign != 0 {
        0
    } else if bits > one {
        one
    } else {
        bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32r(bits: u64) -> f32 {
        f32::from_bits(bits as u32)
    }

    #[test]
    fn directed_basics() {
        let third_dn = f32r(div(1.0, 3.0, F32, Rnd::Rm));
        let third_up = f32r(div(1.0, 3.0, F32, Rnd::Rp));
        assert_eq!(third_up.to_bits(), third_dn.to_bits() + 1);
        assert_eq!(f32r(add(1.0, 1e-10, F32, Rnd::Rp)).to_bits(), 0x3f80_0001);
        assert_eq!(f32r(add(1.0, -1e-10, F32, Rnd::Rz)).to_bits(), 0x3f7f_ffff);
        assert_eq!(add(1.0, -1.0, F32, Rnd::Rm), 0x8000_0000);
        assert_eq!(add(1.0, -1.0, F32, Rnd::Rn), 0);
        assert_eq!(fma(1.0, 1.0, Some(-1.0), F64, Rnd::Rm), 1 << 63);
        assert_eq!(
            fma(2.0, 3.0, Some(1.0), F32, Rnd::Rm),
            7.0f32.to_bits() as u64
        );
        assert_eq!(sqrt(2.0, F32, Rnd::Rn), 2f32.sqrt().to_bits() as u64);
        assert_eq!(sqrt(2.0, F64, Rnd::Rn), 2f64.sqrt().to_bits());
        assert_eq!(div(1.0, 3.0, F64, Rnd::Rn), (1.0f64 / 3.0).to_bits());
        // Overflow: to infinity or the largest finite value.
        assert_eq!(fma(f64::MAX, 2.0, None, F64, Rnd::Rz), f64::MAX.to_bits());
        assert_eq!(
            fma(f64::MAX, 2.0, None, F64, Rnd::Rn),
            f64::INFINITY.to_bits()
        );
        // Tiny residuals far below the f64 range still decide directed rounding.
        let tiny = f64::from_bits(1);
        assert_eq!(
            fma(1.0, 1.0, Some(tiny), F64, Rnd::Rp),
            1.0f64.next_up().to_bits()
        );
        assert_eq!(fma(tiny, 0.5, None, F64, Rnd::Rp), 1);
        assert_eq!(fma(tiny, 0.5, None, F64, Rnd::Rz), 0);
    }

    #[test]
    fn flags() {
        let sub = f32::from_bits(1).to_bits() as u64;
        let one = 1.0f32.to_bits() as u64;
        let aux = fa::MUL | (Rnd::Rp as u32) << fa::RND_SHIFT | fa::FTZ;
        assert_eq!(lane(aux, sub, one, 0), 0);
        assert_eq!(lane(aux | fa::SAT, 2.0f32.to_bits() as u64, one, 0), one);
        let nan = f32::NAN.to_bits() as u64;
        assert_eq!(lane(fa::ADD | fa::SAT, nan, one, 0), 0);
    }
}
