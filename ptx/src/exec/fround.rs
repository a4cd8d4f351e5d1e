//! Software floating-point rounding: [`round_parts`] rounds an exact value
//! `±sig · 2^exp` into f64 / f32 / f16 / bf16 with any rounding mode (the
//! arithmetic of [`super::softfloat`] and the narrowing conversions of `cvt`).

/// IEEE rounding mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Rnd {
    /// Nearest, ties to even.
    Rn = 0,
    /// Toward zero.
    Rz = 1,
    /// Toward -inf.
    Rm = 2,
    /// Toward +inf.
    Rp = 3,
}

impl Rnd {
    pub fn from_u8(v: u8) -> Rnd {
        match v & 3 {
            0 => Rnd::Rn,
            1 => Rnd::Rz,
            2 => Rnd::Rm,
            _ => Rnd::Rp,
        }
    }
}

/// Binary format description: exponent bits, explicit mantissa bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fmt {
    pub e: u32,
    pub m: u32,
}
pub(crate) const F16: Fmt = Fmt { e: 5, m: 10 };
pub(crate) const BF16: Fmt = Fmt { e: 8, m: 7 };
pub(crate) const F32: Fmt = Fmt { e: 8, m: 23 };
pub(crate) const F64: Fmt = Fmt { e: 11, m: 52 };

/// Round `(-1)^neg * sig * 2^exp2` into format `f` with mode `r`; returns the bits.
pub(crate) fn round_parts(neg: bool, sig: u128, exp2: i32, f: Fmt, r: Rnd) -> u64 {
    let sign_bit = (neg as u64) << (f.e + f.m);
    if sig == 0 {
        return sign_bit;
    }
    let bias = (1i32 << (f.e - 1)) - 1;
    let emin = 1 - bias;
    let nb = 128 - sig.leading_zeros() as i32;
    let e = exp2 + nb - 1;
    let m = f.m as i32;
    let shift = if e >= emin {
        nb - 1 - m
    } else {
        nb - 1 - m + (emin - e)
    };
    let (mut q, rem_vs_half, inexact) = if shift <= 0 {
        (sig << (-shift) as u32, std::cmp::Ordering::Less, false)
    } else if shift >= 128 {
        (0u128, std::cmp::Ordering::Less, true)
    } else {
        let q = sig >> shift;
        let rem = sig & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        (q, rem.cmp(&half), rem != 0)
    };
    let inc = match r {
        Rnd::Rn => match rem_vs_half {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => q & 1 == 1,
            std::cmp::Ordering::Less => false,
        },
        Rnd::Rz => false,
        Rnd::Rm => inexact && neg,
        Rnd::Rp => inexact && !neg,
    };
    if inc {
        q += 1;
    }
    let bits: u128 = if e >= emin {
        (((e + bias - 1) as u128) << f.m) + q
    } else {
        q
    };
    let inf = ((1u128 << f.e) - 1) << f.m;
    if bits >= inf {
        let to_inf = match r {
            Rnd::Rn => true,
            Rnd::Rz => false,
            Rnd::Rm => neg,
            Rnd::Rp => !neg,
        };
        return sign_bit | if to_inf { inf as u64 } else { (inf - 1) as u64 };
    }
    sign_bit | bits as u64
}

/// Canonical quiet NaN of a format (all ones except the sign, as the GPU produces).
pub(crate) fn canon_nan(f: Fmt) -> u64 {
    (1u64 << (f.e + f.m)) - 1
}

/// Round an f64 into format `f`.
pub(crate) fn round_f64(x: f64, f: Fmt, r: Rnd) -> u64 {
    let b = x.to_bits();
    let neg = b >> 63 != 0;
    if x.is_nan() {
        return canon_nan(f);
    }
    if x.is_infinite() {
        return ((neg as u64) << (f.e + f.m)) | (((1u64 << f.e) - 1) << f.m);
    }
    let e = ((b >> 52) & 0x7ff) as i32;
    let m = b & ((1u64 << 52) - 1);
    let (sig, exp2) = if e == 0 {
        (m, -1074)
    } else {
        (m | (1 << 52), e - 1075)
    };
    round_parts(neg, sig as u128, exp2, f, r)
}

/// Round a signed/unsigned integer (given as i128) into format `f`.
pub(crate) fn round_int(v: i128, f: Fmt, r: Rnd) -> u64 {
    round_parts(v < 0, v.unsigned_abs(), 0, f, r)
}

/// Decode a half-precision value exactly.
pub(crate) fn f16_to_f64(h: u16) -> f64 {
    let neg = h >> 15 != 0;
    let e = ((h >> 10) & 0x1f) as i32;
    let m = (h & 0x3ff) as f64;
    let v = if e == 0 {
        m * (2f64).powi(-24)
    } else if e == 31 {
        if m == 0.0 {
            f64::INFINITY
        } else {
            f64::NAN
        }
    } else {
        (1.0 + m / 1024.0) * (2f64).powi(e - 15)
    };
    if neg {
        -v
    } else {
        v
    }
}

/// Decode a bfloat16 value exactly.
pub(crate) fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing() {
        assert_eq!(round_f64(1.0, F16, Rnd::Rn), 0x3c00);
        assert_eq!(round_f64(65520.0, F16, Rnd::Rn), 0x7c00);
        assert_eq!(round_f64(65520.0, F16, Rnd::Rz), 0x7bff);
        assert_eq!(round_f64(-2.0f64.powi(-24), F16, Rnd::Rn), 0x8001);
        assert_eq!(round_f64(2.0f64.powi(-26), F16, Rnd::Rp), 0x0001);
        assert_eq!(round_f64(0.1, F32, Rnd::Rn), (0.1f32).to_bits() as u64);
        assert_eq!(round_f64(1.0 + 2f64.powi(-30), F32, Rnd::Rp), 0x3f80_0001);
        assert_eq!(round_f64(f64::NAN, F16, Rnd::Rn), 0x7fff);
        assert_eq!(round_int(16_777_217, F32, Rnd::Rn), 0x4b80_0000);
        assert_eq!(round_int(16_777_217, F32, Rnd::Rp), 0x4b80_0001);
        assert_eq!(round_f64(1.0, BF16, Rnd::Rn), 0x3f80);
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        for x in [1.5f64, -3.25, 1e-3, 60000.0] {
            let h = round_f64(x, F16, Rnd::Rn) as u16;
            assert!((f16_to_f64(h) - x).abs() <= x.abs() * 1e-3);
        }
    }
}
