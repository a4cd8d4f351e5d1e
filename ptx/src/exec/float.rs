//! Floating-point lane operations (f32 / f64), including the `.ftz` / `.sat`
//! wrappers and PTX min/max/NaN semantics.

use super::program::{Op1, Op2, Op3};
use std::marker::PhantomData;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// f32 / f64 stored in the low bits of a 64-bit register slot.
pub(crate) trait FloatT:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + 'static
{
    fn from_r(v: u64) -> Self;
    fn to_r(self) -> u64;
    fn fma(self, b: Self, c: Self) -> Self;
    fn sqrt(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn exp2(self) -> Self;
    fn log2(self) -> Self;
    fn tanh(self) -> Self;
    fn is_nan(self) -> bool;
    fn sign(self) -> bool;
    fn abs(self) -> Self;
    fn zero() -> Self;
    fn one() -> Self;
    fn canon_nan() -> Self;
    fn is_subnormal(self) -> bool;
    fn to_f64(self) -> f64;
    fn copysign(self, s: Self) -> Self;
}

macro_rules! float_t {
    ($t:ty, $bits:ty, $nan:expr) => {
        impl FloatT for $t {
            #[inline(always)]
            fn from_r(v: u64) -> Self {
                <$t>::from_bits(v as $bits)
            }
            #[inline(always)]
            fn to_r(self) -> u64 {
                self.to_bits() as u64
            }
            #[inline(always)]
            fn fma(self, b: Self, c: Self) -> Self {
                self.mul_add(b, c)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            fn exp2(self) -> Self {
                <$t>::exp2(self)
            }
            fn log2(self) -> Self {
                <$t>::log2(self)
            }
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline(always)]
            fn sign(self) -> bool {
                self.is_sign_negative()
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            fn zero() -> Self {
                0.0
            }
            fn one() -> Self {
                1.0
            }
            fn canon_nan() -> Self {
                <$t>::from_bits($nan)
            }
            #[inline(always)]
            fn is_subnormal(self) -> bool {
                self.is_subnormal()
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn copysign(self, s: Self) -> Self {
                <$t>::copysign(self, s)
            }
        }
    };
}
float_t!(f32, u32, 0x7fff_ffff);
float_t!(f64, u64, 0x7fff_ffff_ffff_ffff);

/// PTX `min`: NaN operands are ignored; `-0 < +0`.
#[inline(always)]
pub(crate) fn fmin<T: FloatT>(a: T, b: T) -> T {
    if a.is_nan() {
        if b.is_nan() {
            T::canon_nan()
        } else {
            b
        }
    } else if b.is_nan() || a < b || (a == b && a.sign()) {
        a
    } else {
        b
    }
}

/// PTX `max`: NaN operands are ignored; `+0 > -0`.
#[inline(always)]
pub(crate) fn fmax<T: FloatT>(a: T, b: T) -> T {
    if a.is_nan() {
        if b.is_nan() {
            T::canon_nan()
        } else {
            b
        }
    } else if b.is_nan() || a > b || (a == b && !a.sign()) {
        a
    } else {
        b
    }
}

/// Flush a subnormal to a zero of the same sign.
#[inline(always)]
pub(crate) fn ftz<T: FloatT>(v: T) -> T {
    if v.is_subnormal() {
        T::zero().copysign(v)
    } else {
        v
    }
}

/// Clamp to `[0, 1]`; NaN becomes 0.
#[inline(always)]
pub(crate) fn sat<T: FloatT>(v: T) -> T {
    if v.is_nan() || v <= T::zero() {
        T::zero()
    } else if v > T::one() {
        T::one()
    } else {
        v
    }
}

/// Float unary operation.
pub(crate) trait F1<T: FloatT> {
    fn f(a: T) -> T;
}
/// Float binary operation.
pub(crate) trait F2<T: FloatT> {
    fn f(a: T, b: T) -> T;
}
/// Float ternary operation.
pub(crate) trait F3<T: FloatT> {
    fn f(a: T, b: T, c: T) -> T;
}

macro_rules! f1 {
    ($name:ident, |$a:ident| $body:expr) => {
        pub(crate) struct $name;
        impl<T: FloatT> F1<T> for $name {
            #[inline(always)]
            fn f($a: T) -> T {
                $body
            }
        }
    };
}
macro_rules! f2 {
    ($name:ident, |$a:ident, $b:ident| $body:expr) => {
        pub(crate) struct $name;
        impl<T: FloatT> F2<T> for $name {
            #[inline(always)]
            fn f($a: T, $b: T) -> T {
                $body
            }
        }
    };
}

f2!(FAdd, |a, b| a + b);
f2!(FSub, |a, b| a - b);
f2!(FMul, |a, b| a * b);
f2!(FDiv, |a, b| a / b);
f2!(FMin, |a, b| fmin(a, b));
f2!(FMax, |a, b| fmax(a, b));
f2!(FMinNan, |a, b| if a.is_nan() || b.is_nan() {
    T::canon_nan()
} else {
    fmin(a, b)
});
f2!(FMaxNan, |a, b| if a.is_nan() || b.is_nan() {
    T::canon_nan()
} else {
    fmax(a, b)
});
// copysign d, a, b: sign of a, magnitude of b
f2!(FCopysign, |a, b| b.copysign(a));
f1!(FNeg, |a| -a);
f1!(FId, |a| a);
f1!(FAbs, |a| a.abs());
f1!(FSqrt, |a| a.sqrt());
f1!(FRcp, |a| T::one() / a);
f1!(FRsqrt, |a| T::one() / a.sqrt());
f1!(FSin, |a| a.sin());
f1!(FCos, |a| a.cos());
f1!(FLg2, |a| a.log2());
f1!(FEx2, |a| a.exp2());
f1!(FTanh, |a| a.tanh());

/// `fma` / `mad.rn`.
pub(crate) struct FFma;
impl<T: FloatT> F3<T> for FFma {
    #[inline(always)]
    fn f(a: T, b: T, c: T) -> T {
        a.fma(b, c)
    }
}

/// Lift a float op to a raw-register op, optionally with `.ftz` and `.sat`.
pub(crate) struct L<T, O, const FTZ: bool, const SAT: bool>(PhantomData<(T, O)>);

#[inline(always)]
fn post<T: FloatT, const FTZ: bool, const SAT: bool>(v: T) -> T {
    let v = if FTZ { ftz(v) } else { v };
    if SAT {
        sat(v)
    } else {
        v
    }
}
#[inline(always)]
fn pre<T: FloatT, const FTZ: bool>(v: u64) -> T {
    let v = T::from_r(v);
    if FTZ {
        ftz(v)
    } else {
        v
    }
}

impl<T: FloatT, O: F1<T>, const FTZ: bool, const SAT: bool> Op1 for L<T, O, FTZ, SAT> {
    #[inline(always)]
    fn f(a: u64) -> u64 {
        post::<T, FTZ, SAT>(O::f(pre::<T, FTZ>(a))).to_r()
    }
}
impl<T: FloatT, O: F2<T>, const FTZ: bool, const SAT: bool> Op2 for L<T, O, FTZ, SAT> {
    #[inline(always)]
    fn f(a: u64, b: u64) -> u64 {
        post::<T, FTZ, SAT>(O::f(pre::<T, FTZ>(a), pre::<T, FTZ>(b))).to_r()
    }
}
impl<T: FloatT, O: F3<T>, const FTZ: bool, const SAT: bool> Op3 for L<T, O, FTZ, SAT> {
    #[inline(always)]
    fn f(a: u64, b: u64, c: u64) -> u64 {
        post::<T, FTZ, SAT>(O::f(pre::<T, FTZ>(a), pre::<T, FTZ>(b), pre::<T, FTZ>(c))).to_r()
    }
}

/// `testp` classes: 0 finite, 1 infinite, 2 number, 3 notanumber, 4 normal, 5 subnormal.
pub(crate) fn testp<T: FloatT>(v: T, class: u32) -> bool {
    let f = v.to_f64();
    match class {
        0 => f.is_finite(),
        1 => f.is_infinite(),
        2 => !f.is_nan(),
        3 => f.is_nan(),
        4 => f.is_finite() && f != 0.0 && !v.is_subnormal(),
        _ => v.is_subnormal(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmax() {
        assert_eq!(fmin(f32::NAN, 1.0), 1.0);
        assert!(fmin(-0.0f32, 0.0).is_sign_negative());
        assert!(fmax(-0.0f32, 0.0).is_sign_positive());
        let r = <L<f32, FAbs, false, true> as Op1>::f((-2.5f32).to_bits() as u64);
        assert_eq!(f32::from_bits(r as u32), 1.0);
    }
}
