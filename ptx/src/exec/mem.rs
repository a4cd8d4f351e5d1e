//! Memory instructions: `ld`, `st`, `atom`/`red`, `cvta`, `isspacep` over the
//! global, shared, local, param and generic state spaces.

use super::program::{lanes, Cx, Fault, Inst, FULL, LANES, NONE, R};
use super::raw::{self, HostSpan};
use super::{
    GENERIC_LOCAL_BASE, GENERIC_LOCAL_SIZE, GENERIC_PARAM_BASE, GENERIC_PARAM_SIZE,
    GENERIC_SHARED_BASE, GENERIC_SHARED_SIZE,
};

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
pub(super) fn rd(s: &[u8], a: usize, size: usize) -> u64 {
    match size {
        1 => s[a] as u64,
        2 => u16::from_le_bytes([s[a], s[a + 1]]) as u64,
        4 => u32::from_le_bytes(s[a..a + 4].try_into().unwrap_or([0; 4])) as u64,
        _ => u64::from_le_bytes(s[a..a + 8].try_into().unwrap_or([0; 8])),
    }
}

#[inline(always)]
pub(super) fn wr(s: &mut [u8], a: usize, size: usize, v: u64) {
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
pub(super) enum Gen {
    Shared(usize),
    Local(usize),
    Param(usize),
    Global(u64),
}

#[inline(always)]
pub(super) fn classify(a: u64) -> Gen {
    if a.wrapping_sub(GENERIC_SHARED_BASE) < GENERIC_SHARED_SIZE {
        Gen::Shared((a - GENERIC_SHARED_BASE) as usize)
    } else if a.wrapping_sub(GENERIC_LOCAL_BASE) < GENERIC_LOCAL_SIZE {
        Gen::Local((a - GENERIC_LOCAL_BASE) as usize)
    } else if a.wrapping_sub(GENERIC_PARAM_BASE) < GENERIC_PARAM_SIZE {
        Gen::Param((a - GENERIC_PARAM_BASE) as usize)
    } else {
        Gen::Global(a)
    }
}

pub(super) fn win_check(off: usize, bytes: usize, lim: usize, a: u64) -> R {
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
            Gen::Param(o) => {
                win_check(o, bytes, cx.env.params.len(), a[l])?;
                for k in 0..n {
                    if i.x[k] != NONE {
                        let v = rd(cx.env.params, o + k * SIZE, SIZE);
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
            // kernel parameters are read-only
            Gen::Param(_) => return Err(Fault::Illegal(a[l])),
        }
    }
    if gm != 0 {
        h_st_global::<SIZE>(i, cx, gm)?;
    }
    Ok(())
}
