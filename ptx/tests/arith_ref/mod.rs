//! Reference arithmetic for `arith_table`: exact values as big integers (`±mag · 2^exp`,
//! `mag` with 32-bit limbs), one rounding into the destination format. Independent of the
//! interpreter's code: sums are aligned without any sticky shortcut, quotients come from
//! long division, square roots from a bit-by-bit search.
#![allow(dead_code)]

use std::cmp::Ordering;

/// Unsigned big integer, little-endian 32-bit limbs, no trailing zero limbs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Big(Vec<u32>);

impl Big {
    pub fn from_u128(mut v: u128) -> Big {
        let mut l = Vec::new();
        while v != 0 {
            l.push(v as u32);
            v >>= 32;
        }
        Big(l)
    }
    pub fn is_zero(&self) -> bool {
        self.0.is_empty()
    }
    fn trim(mut self) -> Big {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
        self
    }
    pub fn bitlen(&self) -> i64 {
        match self.0.last() {
            None => 0,
            Some(&top) => self.0.len() as i64 * 32 - top.leading_zeros() as i64,
        }
    }
    pub fn bit(&self, i: i64) -> bool {
        let (w, b) = ((i / 32) as usize, i % 32);
        i >= 0 && w < self.0.len() && (self.0[w] >> b) & 1 != 0
    }
    pub fn shl(&self, n: i64) -> Big {
        let (w, b) = ((n / 32) as usize, (n % 32) as u32);
        let mut l = vec![0u32; w];
        let mut carry = 0u32;
        for &x in &self.0 {
            l.push((x << b) | carry);
            carry = if b == 0 { 0 } else { x >> (32 - b) };
        }
        l.push(carry);
        Big(l).trim()
    }
    /// `self >> n` and whether any 1 bit was shifted out.
    pub fn shr(&self, n: i64) -> (Big, bool) {
        let lost = (0..n.min(self.bitlen())).any(|i| self.bit(i));
        let mut out = Big(vec![]);
        for i in (n..self.bitlen()).rev() {
            out = out.shl(1);
            if self.bit(i) {
                out = out.add(&Big::from_u128(1));
            }
        }
        (out, lost)
    }
    pub fn add(&self, o: &Big) -> Big {
        let n = self.0.len().max(o.0.len());
        let mut l = Vec::with_capacity(n + 1);
        let mut c = 0u64;
        for i in 0..n {
            let s = *self.0.get(i).unwrap_or(&0) as u64 + *o.0.get(i).unwrap_or(&0) as u64 + c;
            l.push(s as u32);
            c = s >> 32;
        }
        l.push(c as u32);
        Big(l).trim()
    }
    /// `self - o`, requires `self >= o`.
    pub fn sub(&self, o: &Big) -> Big {
        let mut l = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let d = self.0[i] as i64 - *o.0.get(i).unwrap_or(&0) as i64 - borrow;
            borrow = (d < 0) as i64;
            l.push((d + (borrow << 32)) as u32);
        }
        assert_eq!(borrow, 0, "Big::sub underflow");
        Big(l).trim()
    }
    pub fn mul(&self, o: &Big) -> Big {
        let mut l = vec![0u64; self.0.len() + o.0.len() + 1];
        for (i, &x) in self.0.iter().enumerate() {
            let mut c = 0u64;
            for (j, &y) in o.0.iter().enumerate() {
                let t = l[i + j] + x as u64 * y as u64 + c;
                l[i + j] = t & 0xffff_ffff;
                c = t >> 32;
            }
            let mut k = i + o.0.len();
            while c != 0 {
                let t = l[k] + c;
                l[k] = t & 0xffff_ffff;
                c = t >> 32;
                k += 1;
            }
        }
        Big(l.into_iter().map(|x| x as u32).collect()).trim()
    }
    pub fn cmp(&self, o: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }
    /// Division by a nonzero `u64`: quotient and whether the remainder is nonzero.
    pub fn div_small(&self, d: u64) -> (Big, bool) {
        let mut q = vec![0u32; self.0.len()];
        let mut r = 0u128;
        for i in (0..self.0.len()).rev() {
            let cur = (r << 32) | self.0[i] as u128;
            q[i] = (cur / d as u128) as u32;
            r = cur % d as u128;
        }
        (Big(q).trim(), r != 0)
    }
    /// Integer square root and whether it is inexact (bit-by-bit).
    pub fn isqrt(&self) -> (Big, bool) {
        let mut root = Big(vec![]);
        for i in (0..=self.bitlen() / 2 + 1).rev() {
            let cand = root.add(&Big::from_u128(1).shl(i));
            if cand.mul(&cand).cmp(self) != Ordering::Greater {
                root = cand;
            }
        }
        let exact = root.mul(&root).cmp(self) == Ordering::Equal;
        (root, !exact)
    }
}

/// An exact value `±mag · 2^exp`, or a special.
#[derive(Clone, Debug)]
pub enum Val {
    Nan,
    Inf(bool),
    Fin { neg: bool, mag: Big, exp: i64 },
}

/// Binary format: exponent and explicit mantissa bits.
#[derive(Clone, Copy, Debug)]
pub struct Fmt {
    pub e: u32,
    pub m: u32,
}
pub const F16: Fmt = Fmt { e: 5, m: 10 };
pub const BF16: Fmt = Fmt { e: 8, m: 7 };
pub const F32: Fmt = Fmt { e: 8, m: 23 };
pub const F64: Fmt = Fmt { e: 11, m: 52 };

impl Fmt {
    fn bias(self) -> i64 {
        (1i64 << (self.e - 1)) - 1
    }
    pub fn inf(self, neg: bool) -> u64 {
        ((neg as u64) << (self.e + self.m)) | (((1u64 << self.e) - 1) << self.m)
    }
    pub fn nan(self) -> u64 {
        (1u64 << (self.e + self.m)) - 1
    }
    pub fn is_nan(self, b: u64) -> bool {
        let mask = (1u64 << (self.e + self.m)) - 1;
        b & mask > self.inf(false)
    }
    pub fn sign(self) -> u64 {
        1 << (self.e + self.m)
    }
    pub fn is_sub_or_zero(self, b: u64) -> bool {
        b & (((1u64 << self.e) - 1) << self.m) == 0
    }
    pub fn decode(self, b: u64) -> Val {
        let neg = b & self.sign() != 0;
        let e = ((b >> self.m) & ((1 << self.e) - 1)) as i64;
        let f = b & ((1u64 << self.m) - 1);
        if e == (1 << self.e) - 1 {
            return if f == 0 { Val::Inf(neg) } else { Val::Nan };
        }
        let (sig, exp) = if e == 0 {
            (f, 1 - self.bias() - self.m as i64)
        } else {
            (f | 1 << self.m, e - self.bias() - self.m as i64)
        };
        Val::Fin {
            neg,
            mag: Big::from_u128(sig as u128),
            exp,
        }
    }
}

/// Rounding mode: 0 rn, 1 rz, 2 rm, 3 rp.
pub fn round(neg: bool, mag: &Big, exp: i64, sticky: bool, f: Fmt, r: u8) -> u64 {
    let sign = if neg { f.sign() } else { 0 };
    if mag.is_zero() {
        assert!(!sticky);
        return sign;
    }
    let top = exp + mag.bitlen() - 1;
    let emin = 1 - f.bias();
    let qexp = top.max(emin) - f.m as i64;
    let (mut q, rem_gt_half, rem_eq_half, inexact) = if qexp <= exp {
        (mag.shl(exp - qexp), false, false, sticky)
    } else {
        let sh = qexp - exp;
        let (q, lost) = mag.shr(sh);
        let half_bit = mag.bit(sh - 1);
        let below = mag.shr(sh - 1).1 || sticky;
        (q, half_bit && below, half_bit && !below, lost || sticky)
    };
    let up = match r {
        0 => rem_gt_half || (rem_eq_half && q.bit(0)),
        1 => false,
        2 => inexact && neg,
        _ => inexact && !neg,
    };
    if up {
        q = q.add(&Big::from_u128(1));
    }
    // q < 2^(m+2) here; encode (a carry into the next binade falls out of the sum).
    let qv = q.0.iter().rev().fold(0u128, |a, &l| (a << 32) | l as u128);
    // Normal: (biased exponent - 1) << m plus q (which holds the hidden bit); subnormal: q.
    let bits = if top < emin {
        qv
    } else {
        (((top + f.bias() - 1) as u128) << f.m) + qv
    };
    if bits >= f.inf(false) as u128 {
        let to_inf = match r {
            0 => true,
            1 => false,
            2 => neg,
            _ => !neg,
        };
        return sign
            | if to_inf {
                f.inf(false)
            } else {
                f.inf(false) - 1
            };
    }
    sign | bits as u64
}

fn fin(neg: bool, mag: Big, exp: i64) -> Val {
    Val::Fin { neg, mag, exp }
}

/// Exact sum of two terms (a zero magnitude for exact cancellation).
fn sum(a: (bool, &Big, i64), b: (bool, &Big, i64)) -> (bool, Big, i64) {
    let e = a.2.min(b.2);
    let x = a.1.shl(a.2 - e);
    let y = b.1.shl(b.2 - e);
    if a.0 == b.0 {
        return (a.0, x.add(&y), e);
    }
    match x.cmp(&y) {
        Ordering::Less => (b.0, y.sub(&x), e),
        _ => (a.0, x.sub(&y), e),
    }
}

/// `a * b + c` (or `a * b` when `c` is `None`) rounded into `f` with mode `r`.
pub fn fma(a: &Val, b: &Val, c: Option<&Val>, f: Fmt, r: u8) -> u64 {
    use Val::*;
    let prod = match (a, b) {
        (Nan, _) | (_, Nan) => return f.nan(),
        (Inf(_), Fin { mag, .. }) | (Fin { mag, .. }, Inf(_)) if mag.is_zero() => return f.nan(),
        (Inf(x), Inf(y)) => Inf(x != y),
        (Inf(x), Fin { neg, .. }) | (Fin { neg, .. }, Inf(x)) => Inf(x != neg),
        (
            Fin {
                neg: n1,
                mag: m1,
                exp: e1,
            },
            Fin {
                neg: n2,
                mag: m2,
                exp: e2,
            },
        ) => fin(n1 != n2, m1.mul(m2), e1 + e2),
    };
    let Some(c) = c else {
        return match prod {
            Inf(n) => f.inf(n),
            Fin { neg, mag, exp } => round(neg, &mag, exp, false, f, r),
            Nan => f.nan(),
        };
    };
    match (prod, c) {
        (_, Nan) => f.nan(),
        (Inf(x), Inf(y)) if x != *y => f.nan(),
        (Inf(x), _) => f.inf(x),
        (_, Inf(y)) => f.inf(*y),
        (
            Fin { neg, mag, exp },
            Fin {
                neg: cn,
                mag: cm,
                exp: ce,
            },
        ) => {
            if mag.is_zero() && cm.is_zero() {
                let zneg = if neg == *cn { neg } else { r == 2 };
                return if zneg { f.sign() } else { 0 };
            }
            let (sn, sm, se) = sum((neg, &mag, exp), (*cn, cm, *ce));
            if sm.is_zero() {
                return if r == 2 { f.sign() } else { 0 };
            }
            round(sn, &sm, se, false, f, r)
        }
        _ => unreachable!(),
    }
}

/// `a + b` rounded.
pub fn add(a: &Val, b: &Val, f: Fmt, r: u8) -> u64 {
    fma(a, &fin(false, Big::from_u128(1), 0), Some(b), f, r)
}

/// `a / b` rounded.
pub fn div(a: &Val, b: &Val, f: Fmt, r: u8) -> u64 {
    use Val::*;
    match (a, b) {
        (Nan, _) | (_, Nan) | (Inf(_), Inf(_)) => f.nan(),
        (Inf(x), Fin { neg, .. }) => f.inf(x != neg),
        (Fin { neg, .. }, Inf(y)) => {
            if neg != y {
                f.sign()
            } else {
                0
            }
        }
        (
            Fin {
                neg: n1,
                mag: m1,
                exp: e1,
            },
            Fin {
                neg: n2,
                mag: m2,
                exp: e2,
            },
        ) => {
            let neg = n1 != n2;
            match (m1.is_zero(), m2.is_zero()) {
                (true, true) => f.nan(),
                (true, false) => neg as u64 * f.sign(),
                (false, true) => f.inf(neg),
                _ => {
                    let d = m2.0.iter().rev().fold(0u64, |a, &l| (a << 32) | l as u64);
                    let k = 200;
                    let (q, inexact) = m1.shl(k).div_small(d);
                    round(neg, &q, e1 - e2 - k, inexact, f, r)
                }
            }
        }
    }
}

/// `sqrt(a)` rounded.
pub fn sqrt(a: &Val, f: Fmt, r: u8) -> u64 {
    match a {
        Val::Nan | Val::Inf(true) => f.nan(),
        Val::Inf(false) => f.inf(false),
        Val::Fin { neg, mag, exp } => {
            if mag.is_zero() {
                return *neg as u64 * f.sign();
            }
            if *neg {
                return f.nan();
            }
            let k = 240 + (exp & 1);
            let (s, inexact) = mag.shl(k).isqrt();
            round(false, &s, (exp - k) / 2, inexact, f, r)
        }
    }
}
