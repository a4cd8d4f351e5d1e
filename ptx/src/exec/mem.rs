//! Memory instructions: `ld`, `st`, `atom`/`red`, `cvta`, `isspacep` over the
//! global, shared, local, param and generic state spaces.

use super::program::{lanes, Cx, Fault, Inst, FULL, LANES, NONE, R};
use super::raw::{self, HostSpan};
use super::{GENERIC_LOCAL_BASE, GENERIC_LOCAL_SIZE, GENERIC_SHARED_BASE, GENERIC_SHARED_SIZE};

/// State-space codes used as const generic parameters.
pub(crate) mod sp {
    pub const GLOBAL: u8 = 0;
    pub const SHARED: u8 = 1;
    pub const LOCAL: u8 = 2;
    pub const PARAM: u8 = 3;
    pub const GENERIC: u8 = 4;
}

/// `aux` flags of ld/st.
pub(crate) mod lf {
    /// Sign-extend loaded value.
    pub const SIGNED: u32 = 1 << 4;
    /// Vector count in bits 5..9.
    pub const N_SHIFT: u32 = 5;
    /// Base register is 32-bit: zero-extend it.
    pub const ADDR32: u32 = 1 << 9;
    /// Destination register width (bits) in bits 16..24.
    pub const DW_SHIFT: u32 = 16;
}

macro_rules! for_lanes {
    ($m:expr, |$l:ident| $body:block) => {
        if $m == FULL {
            for $l in 0..LANES $body
        } else {
            for $l in lanes($m) $body
        }
    };
}

#[inline(always)]
fn addrs(i: &Inst, cx: &Cx<'_>) -> [u64; LANES] {
    let base = &cx.regs[i.r[1] as usize];
    let off = i.imm as u64;
    let mut a = [0u64; LANES];
    if i.aux & lf::ADDR32 != 0 {
        for l in 0..LANES {
            a[l] = (base[l] as u32 as u64).wrapping_add(off);
        }
    } else {
        for l in 0..LANES {
            a[l] = base[l].wrapping_add(off);
        }
    }
    a
}

#[inline(always)]
fn nvec(i: &Inst) -> usize {
    ((i.aux >> lf::N_SHIFT) & 0xf) as usize
}

#[inline(always)]
fn rd(s: &[u8], a: usize, size: usize) -> u64 {
    match size {
        1 => s[a] as u64,
        2 => u16::from_le_bytes([s[a], s[a + 1]]) as u64,
        4 => u32::from_le_bytes(s[a..a + 4].try_into().unwrap_or([0; 4])) as u64,
        _ => u64::from_le_bytes(s[a..a + 8].try_into().unwrap_or([0; 8])),
    }
}

#[inline(always)]
fn wr(s: &mut [u8], a: usize, size: usize, v: u64) {
    match size {
        1 => s[a] = v as u8,
        2 => s[a..a + 2].copy_from_slice(&(v as u16).to_le_bytes()),
        4 => s[a..a + 4].copy_from_slice(&(v as u32).to_le_bytes()),
        _ => s[a..a + 8].copy_from_slice(&v.to_le_bytes()),
    }
}

/// Sign-extend `v` of `size` bytes and mask to the destination width.
#[inline(always)]
fn ext(v: u64, size: usize, aux: u32) -> u64 {
    if aux & lf::SIGNED == 0 || size >= 8 {
        return v;
    }
    let sh = 64 - size as u32 * 8;
    let s = ((v << sh) as i64 >> sh) as u64;
    let dw = (aux >> lf::DW_SHIFT) & 0xff;
    if dw >= 64 || dw == 0 {
        s
    } else {
        s & ((1u64 << dw) - 1)
    }
}

/// Check alignment and bounds of every active lane against a window of `lim` bytes.
#[inline(always)]
fn check_window(a: &[u64; LANES], m: u32, bytes: u64, lim: u64) -> R {
    let mut bad = false;
    for_lanes!(m, |l| {
        bad |= (a[l] & (bytes - 1) != 0) | (a[l].wrapping_add(bytes) > lim) | (a[l] > lim);
    });
    if bad {
        for l in lanes(m) {
            if a[l] & (bytes - 1) != 0 {
                return Err(Fault::Misaligned(a[l]));
            }
            if a[l] > lim || a[l] + bytes > lim {
                return Err(Fault::Illegal(a[l]));
            }
        }
    }
    Ok(())
}

/// Translate the range touched by the active lanes; `None` if it must be done per lane.
#[inline(always)]
fn span_for(
    cx: &Cx<'_>,
    a: &[u64; LANES],
    m: u32,
    bytes: u64,
    write: bool,
) -> Result<Option<(HostSpan, u64)>, Fault> {
    let (mut lo, mut hi, mut mis) = (u64::MAX, 0u64, 0u64);
    for_lanes!(m, |l| {
        lo = lo.min(a[l]);
        hi = hi.max(a[l]);
        mis |= a[l];
    });
    if mis & (bytes - 1) != 0 {
        for l in lanes(m) {
            if a[l] & (bytes - 1) != 0 {
                return Err(Fault::Misaligned(a[l]));
            }
        }
    }
    let Some(end) = hi.checked_add(bytes) else {
        return Err(Fault::Illegal(hi));
    };
    match HostSpan::new(cx.env.mem, lo, end - lo, write) {
        Ok(s) => Ok(Some((s, lo))),
        Err(_) => Ok(None),
    }
}

/// Global (and const) load of `SIZE`-byte elements.
pub(crate) fn h_ld_global<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    raw::with_simd(
        #[inline(always)]
        || h_ld_global_impl::<SIZE>(i, cx, m),
    )
}

#[inline(always)]
fn h_ld_global_impl<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = addrs(i, cx);
    let n = nvec(i);
    let bytes = (SIZE * n) as u64;
    cx.cnt.ld_bytes += bytes * m.count_ones() as u64;
    if let Some((span, lo)) = span_for(cx, &a, m, bytes, false)? {
        for k in 0..n {
            let d = i.x[k];
            if d == NONE {
                continue;
            }
            let dv = &mut cx.regs[d as usize];
            for_lanes!(m, |l| {
                let off = (a[l] - lo) as usize + k * SIZE;
                dv[l] = ext(span.load(off, SIZE), SIZE, i.aux);
            });
        }
        return Ok(());
    }
    for l in lanes(m) {
        let span =
            HostSpan::new(cx.env.mem, a[l], bytes, false).map_err(|e| Fault::Illegal(e.addr))?;
        for k in 0..n {
            let d = i.x[k];
            if d != NONE {
                cx.regs[d as usize][l] = ext(span.load(k * SIZE, SIZE), SIZE, i.aux);
            }
        }
    }
    Ok(())
}

/// Global store of `SIZE`-byte elements.
pub(crate) fn h_st_global<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    raw::with_simd(
        #[inline(always)]
        || h_st_global_impl::<SIZE>(i, cx, m),
    )
}

#[inline(always)]
fn h_st_global_impl<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = addrs(i, cx);
    let n = nvec(i);
    let bytes = (SIZE * n) as u64;
    cx.cnt.st_bytes += bytes * m.count_ones() as u64;
    if let Some((span, lo)) = span_for(cx, &a, m, bytes, true)? {
        for k in 0..n {
            let sv = &cx.regs[i.x[k] as usize];
            for l in lanes(m) {
                span.store((a[l] - lo) as usize + k * SIZE, SIZE, sv[l]);
            }
        }
        return Ok(());
    }
    for l in lanes(m) {
        let span =
            HostSpan::new(cx.env.mem, a[l], bytes, true).map_err(|e| Fault::Illegal(e.addr))?;
        for k in 0..n {
            span.store(k * SIZE, SIZE, cx.regs[i.x[k] as usize][l]);
        }
    }
    Ok(())
}

fn wfault(a: &[u64; LANES], f: raw::WinFault) -> Fault {
    if f.misaligned {
        Fault::Misaligned(a[f.lane])
    } else {
        Fault::Illegal(a[f.lane])
    }
}

/// Load from a block-local window (shared memory or the param buffer).
#[inline(always)]
fn ld_window<const SIZE: usize>(
    i: &Inst,
    regs: &mut [super::program::Reg],
    win: &[u8],
    a: &[u64; LANES],
    m: u32,
) -> R {
    let n = nvec(i);
    let align = (SIZE * n) as u64;
    for k in 0..n {
        let d = i.x[k];
        if d == NONE {
            continue;
        }
        let dv = &mut regs[d as usize];
        raw::gather::<SIZE>(win, a, m, k * SIZE, align, dv).map_err(|f| wfault(a, f))?;
        if i.aux & lf::SIGNED != 0 {
            for l in lanes(m) {
                dv[l] = ext(dv[l], SIZE, i.aux);
            }
        }
    }
    Ok(())
}

/// Shared-memory load.
pub(crate) fn h_ld_shared<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    raw::with_simd(
        #[inline(always)]
        || h_ld_shared_impl::<SIZE>(i, cx, m),
    )
}

#[inline(always)]
fn h_ld_shared_impl<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = addrs(i, cx);
    ld_window::<SIZE>(i, cx.regs, cx.shared, &a, m)
}

/// Shared-memory store.
pub(crate) fn h_st_shared<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    raw::with_simd(
        #[inline(always)]
        || h_st_shared_impl::<SIZE>(i, cx, m),
    )
}

#[inline(always)]
fn h_st_shared_impl<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = addrs(i, cx);
    let n = nvec(i);
    let align = (SIZE * n) as u64;
    for k in 0..n {
        let sv = &cx.regs[i.x[k] as usize];
        raw::scatter::<SIZE>(cx.shared, &a, m, k * SIZE, align, sv).map_err(|f| wfault(&a, f))?;
    }
    Ok(())
}

/// Local-memory load (per-thread window).
pub(crate) fn h_ld_local<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = addrs(i, cx);
    let n = nvec(i);
    check_window(&a, m, (SIZE * n) as u64, cx.lstride as u64)?;
    for k in 0..n {
        let d = i.x[k];
        if d == NONE {
            continue;
        }
        for l in lanes(m) {
            let v = rd(cx.local, l * cx.lstride + a[l] as usize + k * SIZE, SIZE);
            cx.regs[d as usize][l] = ext(v, SIZE, i.aux);
        }
    }
    Ok(())
}

/// Local-memory store.
pub(crate) fn h_st_local<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = addrs(i, cx);
    let n = nvec(i);
    check_window(&a, m, (SIZE * n) as u64, cx.lstride as u64)?;
    for k in 0..n {
        for l in lanes(m) {
            let v = cx.regs[i.x[k] as usize][l];
            wr(cx.local, l * cx.lstride + a[l] as usize + k * SIZE, SIZE, v);
        }
    }
    Ok(())
}

/// Kernel-parameter load (address in param space = offset in the param buffer).
pub(crate) fn h_ld_param<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    raw::with_simd(
        #[inline(always)]
        || h_ld_param_impl::<SIZE>(i, cx, m),
    )
}

#[inline(always)]
fn h_ld_param_impl<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = addrs(i, cx);
    ld_window::<SIZE>(i, cx.regs, cx.env.params, &a, m)
}

/// Where a generic address points.
enum Gen {
    Shared(usize),
    Local(usize),
    Global(u64),
}

#[inline(always)]
fn classify(a: u64) -> Gen {
    if a.wrapping_sub(GENERIC_SHARED_BASE) < GENERIC_SHARED_SIZE {
        Gen::Shared((a - GENERIC_SHARED_BASE) as usize)
    } else if a.wrapping_sub(GENERIC_LOCAL_BASE) < GENERIC_LOCAL_SIZE {
        Gen::Local((a - GENERIC_LOCAL_BASE) as usize)
    } else {
        Gen::Global(a)
    }
}

fn win_check(off: usize, bytes: usize, lim: usize, a: u64) -> R {
    if off & (bytes - 1) != 0 {
        return Err(Fault::Misaligned(a));
    }
    if off.checked_add(bytes).is_none_or(|e| e > lim) {
        return Err(Fault::Illegal(a));
    }
    Ok(())
}

/// Generic-address load: shared / local windows, else global.
pub(crate) fn h_ld_generic<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = addrs(i, cx);
    let n = nvec(i);
    let bytes = SIZE * n;
    let mut gm = 0u32;
    for l in lanes(m) {
        match classify(a[l]) {
            Gen::Global(_) => gm |= 1 << l,
            Gen::Shared(o) => {
                win_check(o, bytes, cx.shared.len(), a[l])?;
                for k in 0..n {
                    if i.x[k] != NONE {
                        cx.regs[i.x[k] as usize][l] =
                            ext(rd(cx.shared, o + k * SIZE, SIZE), SIZE, i.aux);
                    }
                }
            }
            Gen::Local(o) => {
                win_check(o, bytes, cx.lstride, a[l])?;
                for k in 0..n {
                    if i.x[k] != NONE {
                        let v = rd(cx.local, l * cx.lstride + o + k * SIZE, SIZE);
                        cx.regs[i.x[k] as usize][l] = ext(v, SIZE, i.aux);
                    }
                }
            }
        }
    }
    if gm != 0 {
        h_ld_global::<SIZE>(i, cx, gm)?;
    }
    Ok(())
}

/// Generic-address store.
pub(crate) fn h_st_generic<const SIZE: usize>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = addrs(i, cx);
    let n = nvec(i);
    let bytes = SIZE * n;
    let mut gm = 0u32;
    for l in lanes(m) {
        match classify(a[l]) {
            Gen::Global(_) => gm |= 1 << l,
            Gen::Shared(o) => {
                win_check(o, bytes, cx.shared.len(), a[l])?;
                for k in 0..n {
                    let v = cx.regs[i.x[k] as usize][l];
                    wr(cx.shared, o + k * SIZE, SIZE, v);
                }
            }
            Gen::Local(o) => {
                win_check(o, bytes, cx.lstride, a[l])?;
                for k in 0..n {
                    let v = cx.regs[i.x[k] as usize][l];
                    wr(cx.local, l * cx.lstride + o + k * SIZE, SIZE, v);
                }
            }
        }
    }
    if gm != 0 {
        h_st_global::<SIZE>(i, cx, gm)?;
    }
    Ok(())
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
                    super::cvt::hop::BF16
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
    super::cvt::half_add_bits(a as u16, b as u16, aux) as u64
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

/// cvta conversions: aux 0 shared→generic, 1 generic→shared, 2 local→generic, 3 generic→local.
pub(crate) fn h_cvta(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let (base, to_generic) = match i.aux {
        0 => (GENERIC_SHARED_BASE, true),
        1 => (GENERIC_SHARED_BASE, false),
        2 => (GENERIC_LOCAL_BASE, true),
        _ => (GENERIC_LOCAL_BASE, false),
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

/// `isspacep.{global,shared,local}`: aux 0 global, 1 shared, 2 local; writes predicate `r[0]`.
pub(crate) fn h_isspacep(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = cx.regs[i.r[1] as usize];
    let mut bits = 0u32;
    for l in 0..LANES {
        let hit = match (classify(a[l]), i.aux) {
            (Gen::Global(_), 0) | (Gen::Shared(_), 1) | (Gen::Local(_), 2) => true,
            _ => false,
        };
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
