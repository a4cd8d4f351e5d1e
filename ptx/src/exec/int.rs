//! Integer and bit-manipulation lane operations.

use super::program::{Op1, Op2, Op3};
use std::marker::PhantomData;

/// Integer element types stored zero-extended in 64-bit register slots.
pub(crate) trait IntT: Copy + Ord + Eq + 'static {
    const BITS: u32;
    const SIGNED: bool;
    fn from_r(v: u64) -> Self;
    fn to_r(self) -> u64;
    fn to_i128(self) -> i128;
    fn from_i128(v: i128) -> Self;
    fn wadd(self, o: Self) -> Self;
    fn wsub(self, o: Self) -> Self;
    fn wmul(self, o: Self) -> Self;
    fn wneg(self) -> Self;
    /// High half of the full product.
    fn mul_hi(self, o: Self) -> Self;
    fn div_(self, o: Self) -> Self;
    fn rem_(self, o: Self) -> Self;
    fn min_v() -> Self;
    fn to_f32(self) -> f32;
    fn to_f64(self) -> f64;
    /// Saturating conversion from an integral f64 (NaN → 0).
    fn from_f64_sat(v: f64) -> Self;
    fn max_v() -> Self;
}

macro_rules! int_t {
    ($t:ty, $u:ty, $signed:expr) => {
        impl IntT for $t {
            const BITS: u32 = <$t>::BITS;
            const SIGNED: bool = $signed;
            #[inline(always)]
            fn from_r(v: u64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_r(self) -> u64 {
                self as $u as u64
            }
            #[inline(always)]
            fn to_i128(self) -> i128 {
                self as i128
            }
            #[inline(always)]
            fn from_i128(v: i128) -> Self {
                v as $t
            }
            #[inline(always)]
            fn wadd(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn wsub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline(always)]
            fn wmul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline(always)]
            fn wneg(self) -> Self {
                self.wrapping_neg()
            }
            #[inline(always)]
            fn mul_hi(self, o: Self) -> Self {
                if $signed {
                    ((self as i128).wrapping_mul(o as i128) >> <$t>::BITS) as $t
                } else {
                    ((self as u128).wrapping_mul(o as u128) >> <$t>::BITS) as $t
                }
            }
            #[inline(always)]
            fn div_(self, o: Self) -> Self {
                // Division by zero yields all ones (matches hardware for unsigned).
                if o == 0 {
                    !0
                } else {
                    self.wrapping_div(o)
                }
            }
            #[inline(always)]
            fn rem_(self, o: Self) -> Self {
                if o == 0 {
                    self
                } else {
                    self.wrapping_rem(o)
                }
            }
            fn min_v() -> Self {
                <$t>::MIN
            }
            #[inline(always)]
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn from_f64_sat(v: f64) -> Self {
                v as $t
            }
            fn max_v() -> Self {
                <$t>::MAX
            }
        }
    };
}
int_t!(u8, u8, false);
int_t!(i8, u8, true);
int_t!(u16, u16, false);
int_t!(i16, u16, true);
int_t!(u32, u32, false);
int_t!(i32, u32, true);
int_t!(u64, u64, false);
int_t!(i64, u64, true);

macro_rules! op2 {
    ($name:ident, |$a:ident, $b:ident| $body:expr) => {
        pub(crate) struct $name<T>(PhantomData<T>);
        impl<T: IntT> Op2 for $name<T> {
            #[inline(always)]
            fn f(a: u64, b: u64) -> u64 {
                let $a = T::from_r(a);
                let $b = T::from_r(b);
                $body
            }
        }
    };
}
macro_rules! op1 {
    ($name:ident, |$a:ident| $body:expr) => {
        pub(crate) struct $name<T>(PhantomData<T>);
        impl<T: IntT> Op1 for $name<T> {
            #[inline(always)]
            fn f(a: u64) -> u64 {
                let $a = T::from_r(a);
                $body
            }
        }
    };
}

op2!(Add, |a, b| a.wadd(b).to_r());
op2!(Sub, |a, b| a.wsub(b).to_r());
op2!(MulLo, |a, b| a.wmul(b).to_r());
op2!(MulHi, |a, b| a.mul_hi(b).to_r());
op2!(Min, |a, b| a.min(b).to_r());
op2!(Max, |a, b| a.max(b).to_r());
op2!(Div, |a, b| a.div_(b).to_r());
op2!(Rem, |a, b| a.rem_(b).to_r());
op2!(AddSat, |a, b| T::from_i128(
    (a.to_i128() + b.to_i128()).clamp(T::min_v().to_i128(), T::max_v().to_i128())
)
.to_r());
op2!(SubSat, |a, b| T::from_i128(
    (a.to_i128() - b.to_i128()).clamp(T::min_v().to_i128(), T::max_v().to_i128())
)
.to_r());
op2!(MulWide, |a, b| a.to_i128().wrapping_mul(b.to_i128()) as u64
    & wide_mask(T::BITS));
/// Packed `min`/`max` on the two 16-bit halves of a 32-bit register (`.s16x2`/`.u16x2`, PTX 8.0);
/// `RELU` clamps negative signed results to 0.
pub(crate) struct MinMax16x2<const SIGNED: bool, const MAX: bool, const RELU: bool>;
impl<const SIGNED: bool, const MAX: bool, const RELU: bool> Op2 for MinMax16x2<SIGNED, MAX, RELU> {
    #[inline(always)]
    fn f(a: u64, b: u64) -> u64 {
        let mut out = 0u64;
        for shift in [0u32, 16] {
            let (x, y) = ((a >> shift) as u16, (b >> shift) as u16);
            let r = if SIGNED {
                let (x, y) = (x as i16, y as i16);
                let v = if MAX { x.max(y) } else { x.min(y) };
                (if RELU { v.max(0) } else { v }) as u16
            } else if MAX {
                x.max(y)
            } else {
                x.min(y)
            };
            out |= u64::from(r) << shift;
        }
        out
    }
}
op1!(Neg, |a| a.wneg().to_r());
op1!(Abs, |a| (if a < T::from_i128(0) { a.wneg() } else { a })
    .to_r());
op1!(Popc, |a| (a.to_r().count_ones()) as u64);
op1!(Clz, |a| (a.to_r().leading_zeros() - (64 - T::BITS)) as u64);
op1!(Brev, |a| a.to_r().reverse_bits() >> (64 - T::BITS));
op1!(Not, |a| (!a.to_r()) & mask(T::BITS));
op1!(Cnot, |a| (a.to_r() == 0) as u64);
op1!(Mov, |a| a.to_r());

#[inline(always)]
fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}
#[inline(always)]
fn wide_mask(bits: u32) -> u64 {
    mask(bits * 2)
}

/// Bitwise ops on the raw register value masked to width `T`.
macro_rules! bit2 {
    ($name:ident, $op:tt) => {
        pub(crate) struct $name<T>(PhantomData<T>);
        impl<T: IntT> Op2 for $name<T> {
            #[inline(always)]
            fn f(a: u64, b: u64) -> u64 {
                (a $op b) & mask(T::BITS)
            }
        }
    };
}
bit2!(And, &);
bit2!(Or, |);
bit2!(Xor, ^);

/// `shl`: shift amount is an unsigned 32-bit value, clamped to the width.
pub(crate) struct Shl<T>(PhantomData<T>);
impl<T: IntT> Op2 for Shl<T> {
    #[inline(always)]
    fn f(a: u64, b: u64) -> u64 {
        let n = b as u32;
        if n >= T::BITS {
            0
        } else {
            (a << n) & mask(T::BITS)
        }
    }
}

/// `shr`: logical for unsigned/bit types, arithmetic for signed.
pub(crate) struct Shr<T>(PhantomData<T>);
impl<T: IntT> Op2 for Shr<T> {
    #[inline(always)]
    fn f(a: u64, b: u64) -> u64 {
        let n = (b as u32).min(T::BITS - 1 + (!T::SIGNED) as u32);
        if n >= T::BITS {
            return 0;
        }
        if T::SIGNED {
            let s = (T::from_r(a).to_i128() as i64) >> n;
            (s as u64) & mask(T::BITS)
        } else {
            (a & mask(T::BITS)) >> n
        }
    }
}

/// `mad.lo`: `a*b + c` truncated.
pub(crate) struct MadLo<T>(PhantomData<T>);
impl<T: IntT> Op3 for MadLo<T> {
    #[inline(always)]
    fn f(a: u64, b: u64, c: u64) -> u64 {
        T::from_r(a).wmul(T::from_r(b)).wadd(T::from_r(c)).to_r()
    }
}
/// `mad.hi`: high half of `a*b` plus `c`.
pub(crate) struct MadHi<T>(PhantomData<T>);
impl<T: IntT> Op3 for MadHi<T> {
    #[inline(always)]
    fn f(a: u64, b: u64, c: u64) -> u64 {
        T::from_r(a).mul_hi(T::from_r(b)).wadd(T::from_r(c)).to_r()
    }
}
/// `mad.wide`: double-width `a*b + c`.
pub(crate) struct MadWide<T>(PhantomData<T>);
impl<T: IntT> Op3 for MadWide<T> {
    #[inline(always)]
    fn f(a: u64, b: u64, c: u64) -> u64 {
        let p = T::from_r(a).to_i128().wrapping_mul(T::from_r(b).to_i128()) as u64;
        p.wrapping_add(c) & wide_mask(T::BITS)
    }
}
/// `sad`: `|a-b| + c`.
pub(crate) struct Sad<T>(PhantomData<T>);
impl<T: IntT> Op3 for Sad<T> {
    #[inline(always)]
    fn f(a: u64, b: u64, c: u64) -> u64 {
        let d = (T::from_r(a).to_i128() - T::from_r(b).to_i128()).unsigned_abs() as u64;
        d.wrapping_add(c) & mask(T::BITS)
    }
}

/// `bfe`: extract `c` bits starting at `b` (sign-extended for signed types).
pub(crate) struct Bfe<T>(PhantomData<T>);
impl<T: IntT> Op3 for Bfe<T> {
    #[inline(always)]
    fn f(a: u64, b: u64, c: u64) -> u64 {
        let w = T::BITS;
        let pos = (b as u32) & 0xff;
        let len = (c as u32) & 0xff;
        let a = a & mask(w);
        let sbit = if T::SIGNED && len != 0 {
            let top = (pos + len - 1).min(w - 1);
            (a >> top) & 1 != 0
        } else {
            false
        };
        let mut r = 0u64;
        for i in 0..w {
            let bit = if i < len && pos + i < w {
                (a >> (pos + i)) & 1 != 0
            } else if i < len {
                T::SIGNED && (a >> (w - 1)) & 1 != 0
            } else {
                sbit
            };
            r |= (bit as u64) << i;
        }
        r & mask(w)
    }
}

/// `bfi`: insert `len` low bits of `a` into `b` at `pos` (operands a, b, pos=c, len in aux register).
pub(crate) fn bfi<T: IntT>(a: u64, b: u64, pos: u64, len: u64) -> u64 {
    let w = T::BITS;
    let pos = (pos as u32) & 0xff;
    let len = (len as u32) & 0xff;
    let mut r = b & mask(w);
    for i in 0..len {
        if pos + i >= w {
            break;
        }
        let bit = (a >> i) & 1;
        r = (r & !(1 << (pos + i))) | (bit << (pos + i));
    }
    r
}

/// `bfind`: position of the most significant non-sign bit (0xffffffff if none);
/// `shift` selects the `.shiftamt` form.
pub(crate) fn bfind<T: IntT>(a: u64, shift: bool) -> u64 {
    let w = T::BITS;
    let mut v = a & mask(w);
    if T::SIGNED && (v >> (w - 1)) & 1 != 0 {
        v = !v & mask(w);
    }
    if v == 0 {
        return 0xffff_ffff;
    }
    let pos = 63 - v.leading_zeros();
    (if shift { w - 1 - pos } else { pos }) as u64
}

/// `prmt.b32` with mode (0 = default, 1 = f4e, 2 = b4e, 3 = rc8, 4 = ecl, 5 = ecr, 6 = rc16).
pub(crate) fn prmt(a: u64, b: u64, c: u64, mode: u32) -> u64 {
    let bytes = ((b as u32 as u64) << 32) | (a as u32 as u64);
    let byte = |i: u64| ((bytes >> ((i & 7) * 8)) & 0xff) as u32;
    let c = c as u32;
    let r: u32 = match mode {
        0 => {
            let mut r = 0u32;
            for k in 0..4 {
                let sel = (c >> (k * 4)) & 0xf;
                let mut v = byte(sel as u64 & 7);
                if sel & 8 != 0 {
                    v = if v & 0x80 != 0 { 0xff } else { 0 };
                }
                r |= v << (k * 8);
            }
            r
        }
        _ => {
            let s = (c & 3) as u64;
            let sel: [u64; 4] = match mode {
                1 => [s, s + 1, s + 2, s + 3],
                2 => [s, (s + 7) & 7, (s + 6) & 7, (s + 5) & 7],
                3 => [s; 4],
                4 => match s {
                    0 => [0, 1, 2, 3],
                    1 => [1, 1, 2, 3],
                    2 => [2, 2, 2, 3],
                    _ => [3, 3, 3, 3],
                },
                5 => match s {
                    0 => [0, 0, 0, 0],
                    1 => [0, 1, 1, 1],
                    2 => [0, 1, 2, 2],
                    _ => [0, 1, 2, 3],
                },
                _ => {
                    let s2 = (s & 1) * 2;
                    [s2, s2 + 1, s2, s2 + 1]
                }
            };
            let mut r = 0u32;
            for (k, &sl) in sel.iter().enumerate() {
                r |= byte(sl) << (k * 8);
            }
            r
        }
    };
    r as u64
}

/// `shf.{l,r}.{wrap,clamp}.b32`: funnel shift of `b:a` by `c`.
pub(crate) fn shf(a: u64, b: u64, c: u64, left: bool, wrap: bool) -> u64 {
    let n = if wrap {
        (c as u32) & 31
    } else {
        (c as u32).min(32)
    };
    let v = ((b as u32 as u64) << 32) | (a as u32 as u64);
    if left {
        ((v << n) >> 32) as u32 as u64
    } else {
        (v >> n) as u32 as u64
    }
}

/// Carry-propagating add/sub: returns (result, carry-out).
pub(crate) fn addc<T: IntT>(a: u64, b: u64, cin: bool, sub: bool) -> (u64, bool) {
    let w = T::BITS;
    let m = mask(w);
    let (a, b) = (a & m, b & m);
    if sub {
        // a - b - borrow; carry flag holds "no borrow" inverted like PTX (CC.CF = borrow)
        let full = (a as u128)
            .wrapping_sub(b as u128)
            .wrapping_sub(cin as u128);
        ((full as u64) & m, (full >> w) & 1 != 0)
    } else {
        let full = a as u128 + b as u128 + cin as u128;
        ((full as u64) & m, (full >> w) & 1 != 0)
    }
}

/// The `.lo` or `.hi` half of the product `a * b` of `bits`-wide operands (signed when
/// `signed`), as a zero-extended register value: the multiply part of `mad{c}.{lo,hi}`.
pub(crate) fn mul_part(a: u64, b: u64, bits: u32, signed: bool, hi: bool) -> u64 {
    let m = mask(bits);
    let (a, b) = (a & m, b & m);
    let full: u128 = if signed {
        let sx = |v: u64| ((v << (64 - bits)) as i64 >> (64 - bits)) as i128;
        sx(a).wrapping_mul(sx(b)) as u128
    } else {
        a as u128 * b as u128
    };
    let part = if hi { full >> bits } else { full };
    (part as u64) & m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_parts() {
        let n1 = (-1i32) as u32 as u64;
        assert_eq!(mul_part(n1, n1, 32, true, false), 1);
        assert_eq!(mul_part(n1, n1, 32, true, true), 0);
        assert_eq!(mul_part(n1, n1, 32, false, true), 0xffff_fffe);
        assert_eq!(mul_part(u64::MAX, 2, 64, false, true), 1);
        assert_eq!(mul_part(u64::MAX, 2, 64, true, true), u64::MAX);
    }

    #[test]
    fn basic_int() {
        assert_eq!(Add::<u32>::f(0xffff_ffff, 1), 0);
        assert_eq!(
            MulHi::<i32>::f((-5i32) as u32 as u64, 1_431_655_766),
            0xffff_fffe
        );
        assert_eq!(MulWide::<i32>::f((-3i32) as u32 as u64, 4), (-12i64) as u64);
        assert_eq!(Shr::<i32>::f(0x8000_0000, 40), 0xffff_ffff);
        assert_eq!(Shr::<u32>::f(0x8000_0000, 40), 0);
        assert_eq!(Bfe::<u32>::f(0xf0, 4, 4), 0xf);
        assert_eq!(Bfe::<i32>::f(0xf0, 4, 4), 0xffff_ffff);
        assert_eq!(Clz::<u32>::f(1), 31);
        assert_eq!(
            Div::<i32>::f((-7i32) as u32 as u64, 2),
            (-3i32) as u32 as u64
        );
        assert_eq!(bfind::<u32>(0x10, false), 4);
        assert_eq!(bfind::<u32>(0x10, true), 27);
        assert_eq!(prmt(0x4433_2211, 0x8877_6655, 0x3715, 0), 0x4488_2266);
        assert_eq!(bfi::<u64>(0xab, 0x1_0000_0000, 8, 8), 0x1_0000_ab00);
        // halves (hi, lo): (-2, 5) and (3, -7)
        let (a, b) = (0xfffe_0005u64, 0x0003_fff9u64);
        assert_eq!(MinMax16x2::<true, false, false>::f(a, b), 0xfffe_fff9);
        assert_eq!(MinMax16x2::<true, true, false>::f(a, b), 0x0003_0005);
        assert_eq!(MinMax16x2::<true, false, true>::f(a, b), 0);
        assert_eq!(MinMax16x2::<false, false, false>::f(a, b), 0x0003_0005);
        assert_eq!(MinMax16x2::<false, true, false>::f(a, b), 0xfffe_fff9);
    }
}
