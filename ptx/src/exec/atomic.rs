//! Atomic / reduction instructions (`atom`, `red`) on global, shared and
//! generic addresses, plus `cvta`, `isspacep` and `cp.async`.

use super::mem::{classify, rd, sp, win_check, wr, Gen};
use super::program::{lanes, Cx, Fault, Inst, LANES, NONE, R};
use super::raw::HostSpan;
use super::{GENERIC_LOCAL_BASE, GENERIC_PARAM_BASE, GENERIC_SHARED_BASE};

macro_rules! for_lanes {
    ($m:expr, |$l:ident| $body:block) => {
        if $m == super::program::FULL {
            for $l in 0..LANES $body
        } else {
            for $l in lanes($m) $body
        }
    };
}

/// Atomic operation codes (aux bits 0..8).
pub(crate) mod aop {
    pub const ADD: u32 = 0;
    pub const MIN: u32 = 1;
    pub const MAX: u32 = 2;
    pub const INC: u32 = 3;
    pub const DEC: u32 = 4;
    pub const AND: u32 = 5;
    pub const OR: u32 = 6;
    pub const XOR: u32 = 7;
    pub const EXCH: u32 = 8;
    pub const CAS: u32 = 9;
    /// Value kinds in aux bits 8..12.
    pub const K_U32: u32 = 0;
    pub const K_S32: u32 = 1;
    pub const K_F32: u32 = 2;
    pub const K_U64: u32 = 3;
    pub const K_S64: u32 = 4;
    pub const K_F64: u32 = 5;
    pub const K_F16X2: u32 = 6;
    pub const K_BF16X2: u32 = 7;
    /// Space in aux bits 12..16 (see `sp`).
    pub const SPACE_SHIFT: u32 = 12;
}

/// New value for an atomic, or `None` to leave memory unchanged.
pub(crate) fn atom_new(op: u32, kind: u32, old: u64, b: u64, c: u64) -> Option<u64> {
    use aop::*;
    let is64 = matches!(kind, K_U64 | K_S64 | K_F64);
    let w = |v: u64| if is64 { v } else { v as u32 as u64 };
    Some(match op {
        ADD => match kind {
            K_F32 => (f32::from_bits(old as u32) + f32::from_bits(b as u32)).to_bits() as u64,
            K_F64 => (f64::from_bits(old) + f64::from_bits(b)).to_bits(),
            K_F16X2 | K_BF16X2 => {
                let aux = if kind == K_BF16X2 {
                    super::half::hop::BF16
                } else {
                    0
                };
                let hi = half_add(old >> 16, b >> 16, aux);
                let lo = half_add(old, b, aux);
                (hi << 16) | lo
            }
            _ => w(old.wrapping_add(b)),
        },
        MIN | MAX => {
            let less = match kind {
                K_S32 => (b as i32) < (old as i32),
                K_S64 => (b as i64) < (old as i64),
                K_U64 => b < old,
                _ => (b as u32) < (old as u32),
            };
            let take_b = if op == MIN {
                less
            } else {
                !less && w(b) != w(old)
            };
            if take_b {
                w(b)
            } else {
                return None;
            }
        }
        INC => {
            let (o, bb) = (old as u32, b as u32);
            (if o >= bb { 0 } else { o + 1 }) as u64
        }
        DEC => {
            let (o, bb) = (old as u32, b as u32);
            (if o == 0 || o > bb { bb } else { o - 1 }) as u64
        }
        AND => w(old & b),
        OR => w(old | b),
        XOR => w(old ^ b),
        EXCH => w(b),
        _ => {
            if w(old) == w(b) {
                w(c)
            } else {
                return None;
            }
        }
    })
}

fn half_add(a: u64, b: u64, aux: u32) -> u64 {
    super::half::half_add_bits(a as u16, b as u16, aux) as u64
}

/// `atom` / `red`: `r[0]` = old value (or NONE), `r[1]` address, `r[2]` b, `r[3]` c.
pub(crate) fn h_atom(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let op = i.aux & 0xff;
    let kind = (i.aux >> 8) & 0xf;
    let space = ((i.aux >> aop::SPACE_SHIFT) & 0xf) as u8;
    let is64 = matches!(kind, aop::K_U64 | aop::K_S64 | aop::K_F64);
    let size = if is64 { 8usize } else { 4 };
    let a = {
        let base = &cx.regs[i.r[1] as usize];
        let mut a = [0u64; LANES];
        for l in 0..LANES {
            a[l] = base[l].wrapping_add(i.imm as u64);
        }
        a
    };
    let bv = cx.regs[i.r[2] as usize];
    let cv = if i.r[3] != NONE {
        cx.regs[i.r[3] as usize]
    } else {
        [0; LANES]
    };
    for l in lanes(m) {
        let addr = a[l];
        let (b, c) = (bv[l], cv[l]);
        let target = match space {
            sp::SHARED => Gen::Shared(addr as usize),
            sp::GLOBAL => Gen::Global(addr),
            _ => classify(addr),
        };
        let old = match target {
            Gen::Shared(o) => {
                win_check(o, size, cx.shared.len(), addr)?;
                let old = rd(cx.shared, o, size);
                if let Some(n) = atom_new(op, kind, old, b, c) {
                    wr(cx.shared, o, size, n);
                }
                old
            }
            Gen::Local(o) => {
                win_check(o, size, cx.lstride, addr)?;
                let off = l * cx.lstride + o;
                let old = rd(cx.local, off, size);
                if let Some(n) = atom_new(op, kind, old, b, c) {
                    wr(cx.local, off, size, n);
                }
                old
            }
            Gen::Param(_) => return Err(Fault::Illegal(addr)),
            Gen::Global(g) => {
                if g & (size as u64 - 1) != 0 {
                    return Err(Fault::Misaligned(g));
                }
                let span = HostSpan::new(cx.env.mem, g, size as u64, true)
                    .map_err(|e| Fault::Illegal(e.addr))?;
                let r = if is64 {
                    span.rmw64(0, |o| atom_new(op, kind, o, b, c))
                } else {
                    span.rmw32(0, |o| atom_new(op, kind, o as u64, b, c).map(|v| v as u32))
                        .map(|v| v as u64)
                };
                r.ok_or(Fault::Misaligned(g))?
            }
        };
        if i.r[0] != NONE {
            cx.regs[i.r[0] as usize][l] = old;
        }
    }
    Ok(())
}

/// cvta conversions: aux 0 shared→generic, 1 generic→shared, 2 local→generic, 3 generic→local,
/// 4 param→generic, 5 generic→param.
pub(crate) fn h_cvta(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let (base, to_generic) = match i.aux {
        0 => (GENERIC_SHARED_BASE, true),
        1 => (GENERIC_SHARED_BASE, false),
        2 => (GENERIC_LOCAL_BASE, true),
        3 => (GENERIC_LOCAL_BASE, false),
        4 => (GENERIC_PARAM_BASE, true),
        _ => (GENERIC_PARAM_BASE, false),
    };
    let a = cx.regs[i.r[1] as usize];
    let d = &mut cx.regs[i.r[0] as usize];
    for_lanes!(m, |l| {
        d[l] = if to_generic {
            a[l].wrapping_add(base)
        } else {
            a[l].wrapping_sub(base)
        };
    });
    Ok(())
}

/// `isspacep.{global,shared,local,param}`: aux 0 global, 1 shared, 2 local, 3 param; writes
/// predicate `r[0]`.
pub(crate) fn h_isspacep(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = cx.regs[i.r[1] as usize];
    let mut bits = 0u32;
    for l in 0..LANES {
        let hit = matches!(
            (classify(a[l]), i.aux),
            (Gen::Global(_), 0) | (Gen::Shared(_), 1) | (Gen::Local(_), 2) | (Gen::Param(_), 3)
        );
        bits |= (hit as u32) << l;
    }
    cx.set_pred(i.r[0], bits, m);
    Ok(())
}

/// `cp.async` executed synchronously: copy `aux` bytes from global `r[2]+x[0]` to shared
/// `r[1]+imm`, reading only `r[3]` source bytes and zero-filling the rest.
pub(crate) fn h_cp_async(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let n = i.aux as usize;
    for l in lanes(m) {
        let dst = cx.regs[i.r[1] as usize][l].wrapping_add(i.imm as u64);
        let src = cx.regs[i.r[2] as usize][l].wrapping_add(cx.regs[i.x[0] as usize][l]);
        let srcn = (cx.regs[i.r[3] as usize][l] as usize).min(n);
        win_check(dst as usize, n, cx.shared.len(), dst)?;
        if dst > usize::MAX as u64 {
            return Err(Fault::Illegal(dst));
        }
        let d = dst as usize;
        if srcn > 0 {
            if src & (n as u64 - 1) != 0 {
                return Err(Fault::Misaligned(src));
            }
            let span = HostSpan::new(cx.env.mem, src, srcn as u64, false)
                .map_err(|e| Fault::Illegal(e.addr))?;
            for k in 0..srcn {
                cx.shared[d + k] = span.load(k, 1) as u8;
            }
            cx.cnt.ld_bytes += srcn as u64;
        }
        for k in srcn..n {
            cx.shared[d + k] = 0;
        }
    }
    Ok(())
}
