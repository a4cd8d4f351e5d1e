//! Warp-level collective instructions: `shfl.sync`, `vote.sync`,
//! `activemask`, `match.sync`, `redux.sync`, `elect.sync`.

use super::program::{lanes, Cx, Inst, LANES, NONE, R};

/// `shfl.sync.mode.b32 r[0]|x[0], r[1], r[2], r[3], mask`; aux: 0 up, 1 down, 2 bfly, 3 idx.
pub(crate) fn h_shfl(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = cx.regs[i.r[1] as usize];
    let b = &cx.regs[i.r[2] as usize];
    let c = &cx.regs[i.r[3] as usize];
    let mut res = [0u64; LANES];
    let mut pbits = 0u32;
    for l in lanes(m) {
        let bval = (b[l] as u32 & 0x1f) as i32;
        let cv = c[l] as u32;
        let seg = ((cv >> 8) & 0x1f) as i32;
        let clamp = (cv & 0x1f) as i32;
        let li = l as i32;
        let max_lane = (li & seg) | (clamp & !seg);
        let min_lane = li & seg;
        let (j, ok) = match i.aux {
            0 => {
                let j = li - bval;
                (j, j >= max_lane)
            }
            1 => {
                let j = li + bval;
                (j, j <= max_lane)
            }
            2 => {
                let j = li ^ bval;
                (j, j <= max_lane)
            }
            _ => {
                let j = min_lane | (bval & !seg);
                (j, j <= max_lane)
            }
        };
        let src = if ok && (0..32).contains(&j) {
            j as usize
        } else {
            l
        };
        res[l] = a[src];
        pbits |= (ok as u32) << l;
    }
    let d = &mut cx.regs[i.r[0] as usize];
    for l in lanes(m) {
        d[l] = res[l] & 0xffff_ffff;
    }
    if i.x[0] != NONE {
        cx.set_pred(i.x[0], pbits, m);
    }
    Ok(())
}

/// `vote.sync`: aux 0 all, 1 any, 2 uni (pred dest `r[0]`), 3 ballot (reg dest); source pred `x[0]`.
pub(crate) fn h_vote(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let p = cx.pred(i.x[0]) & m;
    match i.aux {
        3 => {
            let d = &mut cx.regs[i.r[0] as usize];
            for l in lanes(m) {
                d[l] = p as u64;
            }
        }
        k => {
            let r = match k {
                0 => p == m,
                1 => p != 0,
                _ => p == 0 || p == m,
            };
            cx.set_pred(i.r[0], if r { u32::MAX } else { 0 }, m);
        }
    }
    Ok(())
}

/// `activemask.b32 r[0]`.
pub(crate) fn h_activemask(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let d = &mut cx.regs[i.r[0] as usize];
    for l in lanes(m) {
        d[l] = m as u64;
    }
    Ok(())
}

/// `match.sync.{any,all}.{b32,b64} r[0][|x[0]], r[1], mask`; aux 0 any, 1 all; bit 8 = 64-bit.
pub(crate) fn h_match(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = cx.regs[i.r[1] as usize];
    let w64 = i.aux & 0x100 != 0;
    let key = |l: usize| if w64 { a[l] } else { a[l] as u32 as u64 };
    let mut res = [0u64; LANES];
    let mut all_eq = true;
    let first = m.trailing_zeros() as usize;
    for l in lanes(m) {
        let mut s = 0u32;
        for j in lanes(m) {
            if key(j) == key(l) {
                s |= 1 << j;
            }
        }
        res[l] = s as u64;
        if first < LANES && key(l) != key(first) {
            all_eq = false;
        }
    }
    let any = i.aux & 0xff == 0;
    let d = &mut cx.regs[i.r[0] as usize];
    for l in lanes(m) {
        d[l] = if any {
            res[l]
        } else if all_eq {
            m as u64
        } else {
            0
        };
    }
    if i.x[0] != NONE {
        cx.set_pred(i.x[0], if all_eq { u32::MAX } else { 0 }, m);
    }
    Ok(())
}

/// `redux.sync.op.type r[0], r[1], mask`; aux: 0 add, 1 min.u32, 2 max.u32, 3 min.s32,
/// 4 max.s32, 5 and, 6 or, 7 xor.
pub(crate) fn h_redux(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let a = cx.regs[i.r[1] as usize];
    let mut acc: Option<u32> = None;
    for l in lanes(m) {
        let v = a[l] as u32;
        acc = Some(match (acc, i.aux) {
            (None, _) => v,
            (Some(x), 0) => x.wrapping_add(v),
            (Some(x), 1) => x.min(v),
            (Some(x), 2) => x.max(v),
            (Some(x), 3) => (x as i32).min(v as i32) as u32,
            (Some(x), 4) => (x as i32).max(v as i32) as u32,
            (Some(x), 5) => x & v,
            (Some(x), 6) => x | v,
            (Some(x), _) => x ^ v,
        });
    }
    let r = acc.unwrap_or(0) as u64;
    let d = &mut cx.regs[i.r[0] as usize];
    for l in lanes(m) {
        d[l] = r;
    }
    Ok(())
}

/// `elect.sync r[0]|x[0], mask`: leader = lowest active lane.
pub(crate) fn h_elect(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    let leader = m.trailing_zeros();
    if i.r[0] != NONE {
        let d = &mut cx.regs[i.r[0] as usize];
        for l in lanes(m) {
            d[l] = leader as u64;
        }
    }
    if i.x[0] != NONE {
        cx.set_pred(i.x[0], if leader < 32 { 1 << leader } else { 0 }, m);
    }
    Ok(())
}
