//! Half-precision (f16 / bf16, scalar and packed x2) arithmetic and comparisons.
//! Values are computed in f32/f64 and rounded back to the half format.

use super::fround::{self, round_f64, Rnd};
use super::program::{lanes, Cx, Inst, FULL, LANES, NONE, R};

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
    pub const EX2: u32 = 8;
    pub const TANH: u32 = 9;
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
        // Exactly rounded (a fused multiply-add rounded once into the half format).
        hop::FMA => dec_bits(super::softfloat::fma(x, y, Some(z), fmt, Rnd::Rn), bf),
        hop::MIN => crate::exec::float::fmin(x, y),
        hop::MAX => crate::exec::float::fmax(x, y),
        hop::EX2 => (x as f32).exp2() as f64,
        _ => (x as f32).tanh() as f64,
    };
    if aux & hop::SAT != 0 {
        r = if r.is_nan() || r <= 0.0 {
            0.0
        } else {
            r.min(1.0)
        };
    }
    // `.relu`: negative results, -0 included, become +0; NaN stays (canonical) NaN.
    if aux & hop::RELU != 0 && r.is_sign_negative() && !r.is_nan() {
        r = 0.0;
    }
    let out = round_f64(r, fmt, Rnd::Rn) as u16;
    if aux & hop::FTZ != 0 && !bf && out & 0x7c00 == 0 {
        out & 0x8000
    } else {
        out
    }
}

/// Exact value of half-precision bits (f16, or bf16 when `bf`).
fn dec_bits(h: u64, bf: bool) -> f64 {
    if bf {
        fround::bf16_to_f32(h as u16) as f64
    } else {
        fround::f16_to_f64(h as u16)
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

/// Runtime float comparison (codes as in [`crate::exec::misc::FCmp`]).
pub(crate) fn fcmp_rt(op: u32, a: f64, b: f64) -> bool {
    let nan = a.is_nan() || b.is_nan();
    match op {
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

/// `aux` layout of [`h_hcmp`].
pub(crate) mod hc {
    /// Source is bf16 (else f16).
    pub const BF16: u32 = 1 << 4;
    /// Source is packed x2.
    pub const X2: u32 = 1 << 5;
    /// Combine op (0 none, 1 and, 2 or, 3 xor) in bits 6..8.
    pub const COMB_SHIFT: u32 = 6;
    /// `setp` (predicate results) instead of `set`.
    pub const SETP: u32 = 1 << 8;
    /// `set` destination kind in bits 9..11: 0 = 32-bit int, 1 = 16-bit int, 2 = f16, 3 = bf16.
    pub const DK_SHIFT: u32 = 9;
}

/// Half-precision `setp` / `set` (scalar or x2): compare `r[1]`, `r[2]`; `setp` writes
/// predicates `r[0]` (low half) and `x[0]` (high half, or complement when scalar);
/// `set` writes register `r[0]`; `x[1]` is the combine predicate.
pub(crate) fn h_hcmp(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let op = i.aux & 0xf;
    let bf = i.aux & hc::BF16 != 0;
    let x2 = i.aux & hc::X2 != 0;
    let comb = (i.aux >> hc::COMB_SHIFT) & 3;
    let dec = |h: u64| -> f64 {
        if bf {
            fround::bf16_to_f32(h as u16) as f64
        } else {
            fround::f16_to_f64(h as u16)
        }
    };
    let (a, b) = (cx.regs[i.r[1] as usize], cx.regs[i.r[2] as usize]);
    let (mut t0, mut t1) = (0u32, 0u32);
    for l in 0..LANES {
        t0 |= (fcmp_rt(op, dec(a[l]), dec(b[l])) as u32) << l;
        if x2 {
            t1 |= (fcmp_rt(op, dec(a[l] >> 16), dec(b[l] >> 16)) as u32) << l;
        }
    }
    let c = if comb != 0 { cx.pred(i.x[1]) } else { 0 };
    let combine = |t: u32| match comb {
        0 => t,
        1 => t & c,
        2 => t | c,
        _ => t ^ c,
    };
    if i.aux & hc::SETP != 0 {
        let q = if x2 { combine(t1) } else { combine(!t0) };
        cx.set_pred(i.r[0], combine(t0), m);
        if i.x[0] != NONE {
            cx.set_pred(i.x[0], q, m);
        }
        return Ok(());
    }
    let (t0, t1) = (combine(t0), combine(t1));
    let one: u64 = match (i.aux >> hc::DK_SHIFT) & 3 {
        0 => 0xffff_ffff,
        1 => 0xffff,
        2 => 0x3c00,
        _ => 0x3f80,
    };
    let d = &mut cx.regs[i.r[0] as usize];
    for l in lanes(m) {
        let lo = if (t0 >> l) & 1 != 0 { one } else { 0 };
        d[l] = if x2 {
            let hi = if (t1 >> l) & 1 != 0 { one } else { 0 };
            (hi << 16) | (lo & 0xffff)
        } else {
            lo
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves() {
        let one = 0x3c00u16;
        assert_eq!(half_one(hop::ADD, one, one, 0, 0), 0x4000);
        assert_eq!(half_one(hop::MUL, 0x4000, 0x4200, 0, 0), 0x4600);
        assert_eq!(half_one(hop::ADD, 0x3f80, 0x3f80, 0, hop::BF16), 0x4000);
    }
}
