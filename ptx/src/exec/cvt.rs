//! `cvt` conversions (all int/float combinations, rounding modes, `.sat`,
//! `.ftz`) and half-precision (f16 / bf16, scalar and x2) arithmetic.

use super::fround::{self, round_f64, round_int, Fmt, Rnd};
use super::program::{lanes, Cx, Inst, Op1, FULL, LANES, R};
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

/// Half-precision arithmetic op codes (in `aux` bits 0..4).
pub(crate) mod hop {
    pub const ADD: u32 = 0;
    pub const SUB: u32 = 1;
    pub const MUL: u32 = 2;
    pub const FMA: u32 = 3;
    pub const MIN: u32 = 4;
    pub const MAX: u32 = 5;
    pub const NEG: u32 = 6;
    pub const ABS: u32 = 7;
    /// aux flag: bf16 instead of f16
    pub const BF16: u32 = 1 << 8;
    /// aux flag: packed x2
    pub const X2: u32 = 1 << 9;
    pub const SAT: u32 = 1 << 10;
    pub const FTZ: u32 = 1 << 11;
    /// `.relu` (clamp negatives to 0)
    pub const RELU: u32 = 1 << 12;
}

fn half_one(op: u32, a: u16, b: u16, c: u16, aux: u32) -> u16 {
    let bf = aux & hop::BF16 != 0;
    let dec = |h: u16| -> f64 {
        let v = if bf {
            fround::bf16_to_f32(h) as f64
        } else {
            fround::f16_to_f64(h)
        };
        if aux & hop::FTZ != 0 && !bf && h & 0x7c00 == 0 {
            0.0f64.copysign(v)
        } else {
            v
        }
    };
    let fmt = if bf { fround::BF16 } else { fround::F16 };
    match op {
        hop::NEG => return a ^ 0x8000,
        hop::ABS => return a & 0x7fff,
        _ => {}
    }
    let (x, y, z) = (dec(a), dec(b), dec(c));
    let mut r = match op {
        hop::ADD => (x as f32 + y as f32) as f64,
        hop::SUB => (x as f32 - y as f32) as f64,
        hop::MUL => (x as f32 * y as f32) as f64,
        hop::FMA => x.mul_add(y, z),
        hop::MIN => crate::exec::float::fmin(x, y),
        _ => crate::exec::float::fmax(x, y),
    };
    if aux & hop::SAT != 0 {
        r = if r.is_nan() || r <= 0.0 {
            0.0
        } else {
            r.min(1.0)
        };
    }
    if aux & hop::RELU != 0 && (r < 0.0 || r.is_nan()) {
        r = if r.is_nan() { r } else { 0.0 };
    }
    let out = round_f64(r, fmt, Rnd::Rn) as u16;
    if aux & hop::FTZ != 0 && !bf && out & 0x7c00 == 0 {
        out & 0x8000
    } else {
        out
    }
}

/// Half (or bf16 with `hop::BF16` in `aux`) addition on raw bits.
pub(crate) fn half_add_bits(a: u16, b: u16, aux: u32) -> u16 {
    half_one(hop::ADD, a, b, 0, aux & hop::BF16)
}

/// f16/bf16 (x2) arithmetic: `r[0] = op(r[1], r[2], r[3])`.
pub(crate) fn h_half(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let op = i.aux & 0xff;
    let pair = i.aux & hop::X2 != 0;
    let a = cx.regs[i.r[1] as usize];
    let b = if i.r[2] != u32::MAX {
        cx.regs[i.r[2] as usize]
    } else {
        [0; LANES]
    };
    let c = if i.r[3] != u32::MAX {
        cx.regs[i.r[3] as usize]
    } else {
        [0; LANES]
    };
    let d = &mut cx.regs[i.r[0] as usize];
    let mm = if m == FULL { FULL } else { m };
    for l in lanes(mm) {
        let lo = half_one(op, a[l] as u16, b[l] as u16, c[l] as u16, i.aux) as u64;
        d[l] = if pair {
            let hi = half_one(
                op,
                (a[l] >> 16) as u16,
                (b[l] >> 16) as u16,
                (c[l] >> 16) as u16,
                i.aux,
            ) as u64;
            (hi << 16) | lo
        } else {
            lo
        };
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
    fn halves() {
        let one = 0x3c00u16;
        assert_eq!(half_one(hop::ADD, one, one, 0, 0), 0x4000);
        assert_eq!(half_one(hop::MUL, 0x4000, 0x4200, 0, 0), 0x4600);
        assert_eq!(half_one(hop::ADD, 0x3f80, 0x3f80, 0, hop::BF16), 0x4000);
    }
}
