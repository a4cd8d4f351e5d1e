//! `cvt` conversions (all int/float combinations, rounding modes, `.sat`,
//! `.ftz`) and half-precision (f16 / bf16, scalar and x2) arithmetic.

use super::fround::{self, round_f64, round_int, Fmt, Rnd};
use super::program::{lanes, Cx, Inst, Op1, R};
use crate::exec::int::IntT;
use crate::types::Ty;
use std::marker::PhantomData;

/// Integer → integer conversion by value (sign/zero extension or truncation).
pub(crate) struct CvtInt<D, S>(PhantomData<(D, S)>);
impl<D: IntT, S: IntT> Op1 for CvtInt<D, S> {
    #[inline(always)]
    fn f(a: u64) -> u64 {
        D::from_i128(S::from_r(a).to_i128()).to_r()
    }
}

/// Integer → f32 / f64 conversion with round-to-nearest (hardware `as` casts).
pub(crate) struct I2F<S, const F64: bool>(PhantomData<S>);
impl<S: IntT, const F64: bool> Op1 for I2F<S, F64> {
    #[inline(always)]
    fn f(a: u64) -> u64 {
        let v = S::from_r(a);
        if F64 {
            v.to_f64().to_bits()
        } else {
            v.to_f32().to_bits() as u64
        }
    }
}

/// Float → integer with integer rounding (0 rni, 1 rzi, 2 rmi, 3 rpi); saturating, NaN → 0.
pub(crate) struct F2I<D, const F64: bool, const RM: u8>(PhantomData<D>);
impl<D: IntT, const F64: bool, const RM: u8> Op1 for F2I<D, F64, RM> {
    #[inline(always)]
    fn f(a: u64) -> u64 {
        let x = if F64 {
            f64::from_bits(a)
        } else {
            f32::from_bits(a as u32) as f64
        };
        let r = match RM {
            0 => x.round_ties_even(),
            1 => x.trunc(),
            2 => x.floor(),
            _ => x.ceil(),
        };
        D::from_f64_sat(r).to_r()
    }
}

/// Float → float conversions: 0 f32→f64, 1 f64→f32 (rn), 2..=5 f32 round to integral
/// (rni, rzi, rmi, rpi), 6..=9 the same for f64.
pub(crate) struct F2F<const K: u8>;
impl<const K: u8> Op1 for F2F<K> {
    #[inline(always)]
    fn f(a: u64) -> u64 {
        let f = f32::from_bits(a as u32);
        let d = f64::from_bits(a);
        match K {
            0 => (f as f64).to_bits(),
            1 => {
                let r = d as f32;
                (if r.is_nan() {
                    f32::from_bits(0x7fff_ffff)
                } else {
                    r
                })
                .to_bits() as u64
            }
            2 => f.round_ties_even().to_bits() as u64,
            3 => f.trunc().to_bits() as u64,
            4 => f.floor().to_bits() as u64,
            5 => f.ceil().to_bits() as u64,
            6 => d.round_ties_even().to_bits(),
            7 => d.trunc().to_bits(),
            8 => d.floor().to_bits(),
            _ => d.ceil().to_bits(),
        }
    }
}

/// f32 → f16 with round-to-nearest-even (bit manipulation).
#[inline(always)]
pub(crate) fn f32_to_f16_rn(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let e = ((b >> 23) & 0xff) as i32;
    let m = b & 0x7f_ffff;
    if e == 0xff {
        return if m == 0 { sign | 0x7c00 } else { 0x7fff };
    }
    let e16 = e - 127 + 15;
    if e16 >= 31 {
        return sign | 0x7c00;
    }
    if e16 <= 0 {
        if e16 < -10 {
            return sign;
        }
        let full = m | 0x80_0000;
        let shift = (14 - e16) as u32;
        let q = full >> shift;
        let rem = full & ((1 << shift) - 1);
        let half = 1 << (shift - 1);
        let q = if rem > half || (rem == half && q & 1 == 1) {
            q + 1
        } else {
            q
        };
        return sign | q as u16;
    }
    let q = (((e16 as u32) << 10) | (m >> 13)) as u16;
    let rem = m & 0x1fff;
    let q = if rem > 0x1000 || (rem == 0x1000 && q & 1 == 1) {
        q + 1
    } else {
        q
    };
    sign | q
}

/// f16 → f32 (exact, bit manipulation).
#[inline(always)]
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let e = ((h >> 10) & 0x1f) as u32;
    let m = (h & 0x3ff) as u32;
    let bits = if e == 0 {
        if m == 0 {
            sign
        } else {
            return f32::from_bits(sign)
                + (m as f32) * (1.0 / 16_777_216.0) * if sign != 0 { -1.0 } else { 1.0 };
        }
    } else if e == 31 {
        sign | 0x7f80_0000 | (m << 13)
    } else {
        sign | ((e + 112) << 23) | (m << 13)
    };
    f32::from_bits(bits)
}

/// Half ↔ f32 conversions: 0 f16→f32, 1 f32→f16 (rn), 2 bf16→f32, 3 f32→bf16 (rn).
pub(crate) struct HCvt<const K: u8>;
impl<const K: u8> Op1 for HCvt<K> {
    #[inline(always)]
    fn f(a: u64) -> u64 {
        match K {
            0 => f16_to_f32(a as u16).to_bits() as u64,
            1 => f32_to_f16_rn(f32::from_bits(a as u32)) as u64,
            2 => (a & 0xffff) << 16,
            _ => {
                let b = a as u32;
                if f32::from_bits(b).is_nan() {
                    0x7fff
                } else {
                    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u64
                }
            }
        }
    }
}

/// Conversion parameters packed into `Inst::aux`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CvtSpec {
    pub dst: Ty,
    pub src: Ty,
    /// Rounding mode (rn/rz/rm/rp) for float results / integer rounding.
    pub rnd: Rnd,
    /// `.rni/.rzi/.rmi/.rpi` given.
    pub int_rnd: bool,
    pub ftz: bool,
    pub sat: bool,
}

impl CvtSpec {
    pub fn pack(self) -> u32 {
        (self.dst as u32)
            | ((self.src as u32) << 8)
            | ((self.rnd as u32) << 16)
            | ((self.int_rnd as u32) << 18)
            | ((self.ftz as u32) << 19)
            | ((self.sat as u32) << 20)
    }
    pub fn unpack(v: u32) -> CvtSpec {
        CvtSpec {
            dst: Ty::from_code(v as u8),
            src: Ty::from_code((v >> 8) as u8),
            rnd: Rnd::from_u8((v >> 16) as u8),
            int_rnd: (v >> 18) & 1 != 0,
            ftz: (v >> 19) & 1 != 0,
            sat: (v >> 20) & 1 != 0,
        }
    }
}

fn fmt_of(t: Ty) -> Fmt {
    match t {
        Ty::F16 | Ty::F16x2 => fround::F16,
        Ty::Bf16 | Ty::Bf16x2 => fround::BF16,
        Ty::F32 => fround::F32,
        _ => fround::F64,
    }
}

/// Decode a float register value of type `t` to f64 (exact).
pub(crate) fn float_in(v: u64, t: Ty, ftz: bool) -> f64 {
    match t {
        Ty::F16 => fround::f16_to_f64(v as u16),
        Ty::Bf16 => fround::bf16_to_f32(v as u16) as f64,
        Ty::F32 => {
            let f = f32::from_bits(v as u32);
            if ftz && f.is_subnormal() {
                0.0f32.copysign(f) as f64
            } else {
                f as f64
            }
        }
        _ => f64::from_bits(v),
    }
}

fn round_integral(x: f64, r: Rnd) -> f64 {
    match r {
        Rnd::Rn => x.round_ties_even(),
        Rnd::Rz => x.trunc(),
        Rnd::Rm => x.floor(),
        Rnd::Rp => x.ceil(),
    }
}

fn int_range(t: Ty) -> (i128, i128) {
    let bits = t.bits();
    if t.is_signed() {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    }
}

fn int_in(v: u64, t: Ty) -> i128 {
    let bits = t.bits();
    let m = if bits >= 64 {
        v
    } else {
        v & ((1u64 << bits) - 1)
    };
    if t.is_signed() && bits < 128 {
        let sh = 64 - bits;
        ((m << sh) as i64 >> sh) as i128
    } else {
        m as i128
    }
}

fn int_out(v: i128, t: Ty) -> u64 {
    let bits = t.bits();
    if bits >= 64 {
        v as u64
    } else {
        (v as u64) & ((1u64 << bits) - 1)
    }
}

/// Convert one value per `s`.
pub(crate) fn cvt_value(v: u64, s: CvtSpec) -> u64 {
    let sat01 = |x: f64| {
        if x.is_nan() || x <= 0.0 {
            0.0
        } else {
            x.min(1.0)
        }
    };
    if s.dst.is_int() {
        if s.src.is_int() {
            let x = int_in(v, s.src);
            let x = if s.sat {
                let (lo, hi) = int_range(s.dst);
                x.clamp(lo, hi)
            } else {
                x
            };
            return int_out(x, s.dst);
        }
        let x = float_in(v, s.src, s.ftz);
        if x.is_nan() {
            return 0;
        }
        let r = round_integral(x, s.rnd);
        let (lo, hi) = int_range(s.dst);
        let i = if r <= lo as f64 {
            lo
        } else if r >= hi as f64 {
            hi
        } else {
            r as i128
        };
        return int_out(i, s.dst);
    }
    let f = fmt_of(s.dst);
    let mut bits = if s.src.is_int() {
        round_int(int_in(v, s.src), f, s.rnd)
    } else {
        let mut x = float_in(v, s.src, s.ftz);
        if s.int_rnd {
            x = round_integral(x, s.rnd);
        }
        if s.sat {
            x = sat01(x);
        }
        if s.dst == Ty::F64 {
            if x.is_nan() {
                fround::canon_nan(f)
            } else {
                x.to_bits()
            }
        } else {
            round_f64(x, f, if s.int_rnd { Rnd::Rn } else { s.rnd })
        }
    };
    if s.dst == Ty::F32 && s.ftz && f32::from_bits(bits as u32).is_subnormal() {
        bits &= 0x8000_0000;
    }
    if s.sat && s.src.is_int() {
        let x = float_in(bits, s.dst, false);
        let y = sat01(x);
        if y != x {
            bits = match s.dst {
                Ty::F64 => y.to_bits(),
                _ => round_f64(y, f, Rnd::Rn),
            };
        }
    }
    bits
}

/// General `cvt` handler: `r[0] = cvt(r[1])` with the spec in `aux`.
pub(crate) fn h_cvt(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let s = CvtSpec::unpack(i.aux);
    let a = cx.regs[i.r[1] as usize];
    let d = &mut cx.regs[i.r[0] as usize];
    for l in lanes(m) {
        d[l] = cvt_value(a[l], s);
    }
    Ok(())
}

/// `cvt.rn.{f16x2,bf16x2}.f32 d, a, b`: `d = {hi: a, lo: b}`; aux = spec for one half.
pub(crate) fn h_cvt_pack2(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let s = CvtSpec::unpack(i.aux);
    let a = cx.regs[i.r[1] as usize];
    let b = cx.regs[i.r[2] as usize];
    let d = &mut cx.regs[i.r[0] as usize];
    for l in lanes(m) {
        d[l] = (cvt_value(a[l], s) << 16) | cvt_value(b[l], s);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dst: Ty, src: Ty, rnd: Rnd, int_rnd: bool, sat: bool) -> CvtSpec {
        CvtSpec {
            dst,
            src,
            rnd,
            int_rnd,
            ftz: false,
            sat,
        }
    }

    #[test]
    fn conversions() {
        let f = |x: f32| x.to_bits() as u64;
        assert_eq!(
            cvt_value(f(-3.7), spec(Ty::S32, Ty::F32, Rnd::Rz, true, false)),
            (-3i32) as u32 as u64
        );
        assert_eq!(
            cvt_value(f(-3.5), spec(Ty::S32, Ty::F32, Rnd::Rn, true, false)),
            (-4i32) as u32 as u64
        );
        assert_eq!(
            cvt_value(f(1e20), spec(Ty::S32, Ty::F32, Rnd::Rz, true, false)),
            i32::MAX as u64
        );
        assert_eq!(
            cvt_value(f(f32::NAN), spec(Ty::U32, Ty::F32, Rnd::Rz, true, false)),
            0
        );
        assert_eq!(
            cvt_value(f(-1.0), spec(Ty::U32, Ty::F32, Rnd::Rz, true, false)),
            0
        );
        assert_eq!(
            cvt_value(300, spec(Ty::U8, Ty::U32, Rnd::Rn, false, true)),
            255
        );
        assert_eq!(
            cvt_value(0xffff_ff80, spec(Ty::S64, Ty::S32, Rnd::Rn, false, false)),
            (-128i64) as u64
        );
        assert_eq!(
            cvt_value(f(2.5), spec(Ty::F32, Ty::F32, Rnd::Rn, false, true)),
            f(1.0)
        );
        assert_eq!(
            cvt_value(f(1.0), spec(Ty::F16, Ty::F32, Rnd::Rn, false, false)),
            0x3c00
        );
        assert_eq!(
            cvt_value(0x3c00, spec(Ty::F32, Ty::F16, Rnd::Rn, false, false)),
            f(1.0)
        );
        assert_eq!(
            cvt_value(f(2.5), spec(Ty::F32, Ty::F32, Rnd::Rn, true, false)),
            f(2.0)
        );
        assert_eq!(
            cvt_value(u64::MAX, spec(Ty::F32, Ty::U64, Rnd::Rn, false, false)),
            f(1.8446744e19)
        );
    }

    #[test]
    fn fast_half_conversions() {
        for bits in (0u32..0xffff_ffff).step_by(65_521) {
            let x = f32::from_bits(bits);
            let want = round_f64(x as f64, fround::F16, Rnd::Rn) as u16;
            let got = f32_to_f16_rn(x);
            assert!(
                got == want || (x.is_nan() && got == 0x7fff),
                "{x:e}: {got:#x} vs {want:#x}"
            );
        }
        for h in 0..=0xffffu16 {
            let a = f16_to_f32(h);
            let b = fround::f16_to_f64(h) as f32;
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{h:#x}"
            );
        }
    }
}
