//! Lowered program representation shared by the lowering pass and the
//! interpreter: [`Inst`], [`Program`], the per-warp handler context [`Cx`].

use super::raw::with_simd;
use super::{GlobalMemory, TimeSource};

/// Lanes per warp.
pub(crate) const LANES: usize = 32;
/// Mask with every lane set.
pub(crate) const FULL: u32 = u32::MAX;
/// `Inst::guard` value for an unpredicated instruction.
pub(crate) const NO_GUARD: u32 = u32::MAX;
/// Bit in a predicate reference that requests negation.
pub(crate) const PRED_NEG: u32 = 1 << 31;
/// Unused operand slot.
pub(crate) const NONE: u32 = u32::MAX;

/// One lane-vector register: 32 lanes of 64-bit storage.
pub(crate) type Reg = [u64; LANES];

/// Result of an instruction handler.
pub(crate) type R = Result<(), Fault>;

/// Instruction handler: executes `inst` for the lanes in `mask`.
pub(crate) type ExecFn = fn(&Inst, &mut Cx<'_>, u32) -> R;

/// A runtime fault raised by a handler (converted to [`crate::ExecError`] by the warp loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Illegal(u64),
    Misaligned(u64),
    Trap,
    /// Illegal instruction; the code indexes [`ILLEGAL_MSG`].
    IllegalInst(u8),
}

/// Messages of [`Fault::IllegalInst`] (kept out of the enum so that handler results
/// fit in two registers).
pub(crate) const ILLEGAL_MSG: [&str; 3] = [
    "fell off the end of the program",
    "brx.idx index out of range",
    "barrier id out of range",
];

/// How the warp loop treats an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ctl {
    /// Call the handler, advance.
    Op,
    /// Branch to `imm`; `aux` = 1 for `.uni`.
    Bra,
    /// Indirect branch through table `aux` indexed by register `r[1]`.
    Brx,
    /// Lanes exit.
    Exit,
    /// Barrier: `aux` = kind, `r` = (dest, id reg, count reg, pred).
    Bar,
    /// Trap (fault).
    Trap,
}

/// Statistics class of an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Class {
    Int = 0,
    Fp32,
    Fp64,
    Sfu,
    GlobalLd,
    GlobalSt,
    Shared,
    Local,
    Atomic,
    Control,
    Misc,
}
/// Number of [`Class`] values.
pub(crate) const NCLASS: usize = 11;

/// One lowered instruction. All value operands are register indices.
#[derive(Clone)]
pub(crate) struct Inst {
    pub f: ExecFn,
    /// Usually destination, a, b, c.
    pub r: [u32; 4],
    /// Extra operands (vector elements, second destination, ...).
    pub x: [u32; 4],
    /// Address offset, branch target, or handler constant.
    pub imm: i64,
    /// Handler-specific flags.
    pub aux: u32,
    /// Guard predicate (`NO_GUARD` or index | `PRED_NEG`).
    pub guard: u32,
    pub ctl: Ctl,
    pub class: Class,
}

/// How a register of the prefix is initialised for each warp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Init {
    /// Same value in every lane.
    Const(u64),
    /// Device address of module global `idx` plus addend (generic / global space).
    GlobalAddr(u32, i64),
    /// Special register.
    Special(Special),
}

/// Special registers materialised at warp start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Special {
    Tid(u8),
    Ntid(u8),
    Ctaid(u8),
    Nctaid(u8),
    LaneId,
    WarpId,
    NWarpId,
    SmId,
    NSmId,
    GridId,
    LaneMaskEq,
    LaneMaskLt,
    LaneMaskLe,
    LaneMaskGt,
    LaneMaskGe,
    DynSmem,
    TotalSmem,
    /// Shared-space address where dynamic shared memory starts.
    DynSharedBase,
    Zero,
    One,
}

/// A lowered kernel.
pub(crate) struct Program {
    pub code: Vec<Inst>,
    /// Source line and text of each instruction (for error messages).
    pub text: Vec<(u32, std::sync::Arc<str>)>,
    pub nregs: u32,
    pub npreds: u32,
    /// Registers initialised at warp start.
    pub inits: Vec<(u32, Init)>,
    /// `brx.idx` tables (pcs).
    pub tables: Vec<Vec<u32>>,
    pub local_bytes: u32,
    pub static_shared: u32,
}

/// Per-launch environment shared by all warps.
pub(crate) struct Env<'a> {
    pub mem: &'a dyn GlobalMemory,
    pub params: &'a [u8],
    pub time: &'a TimeSource,
    pub t0: std::time::Instant,
    pub printf: Option<super::PrintfSink>,
}

/// Per-warp mutable state visible to handlers besides registers.
pub(crate) struct WarpMisc {
    pub sleep_ns: [u64; LANES],
    pub clock: u64,
}

/// Counters accumulated by handlers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub class: [u64; NCLASS],
    pub warp_insts: u64,
    pub ld_bytes: u64,
    pub st_bytes: u64,
}

/// Handler context: everything an instruction may touch.
pub(crate) struct Cx<'a> {
    pub regs: &'a mut [Reg],
    pub preds: &'a mut [u32],
    pub shared: &'a mut [u8],
    /// This warp's local memory: lane `l` owns `[l*lstride, (l+1)*lstride)`.
    pub local: &'a mut [u8],
    pub lstride: usize,
    pub env: &'a Env<'a>,
    pub misc: &'a mut WarpMisc,
    pub cnt: &'a mut Counters,
}

impl Cx<'_> {
    /// Predicate bits of a guard/predicate reference (handles negation).
    #[inline(always)]
    pub fn pred(&self, p: u32) -> u32 {
        let v = self.preds[(p & !PRED_NEG) as usize];
        if p & PRED_NEG != 0 {
            !v
        } else {
            v
        }
    }

    /// Masked update of predicate register `p`.
    #[inline(always)]
    pub fn set_pred(&mut self, p: u32, bits: u32, mask: u32) {
        if p != NONE {
            let r = &mut self.preds[p as usize];
            *r = (*r & !mask) | (bits & mask);
        }
    }
}

/// Pack 32 booleans (0/1 bytes) into a lane mask.
#[inline(always)]
pub(crate) fn pack_bools(b: &[u8; LANES]) -> u32 {
    let mut bits = 0u32;
    for c in 0..LANES / 8 {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[c * 8..c * 8 + 8]);
        let v = u64::from_le_bytes(x) & 0x0101_0101_0101_0101;
        bits |= ((v.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32) << (c * 8);
    }
    bits
}

/// Iterate over set bits of `m` (lane indices).
#[inline(always)]
pub(crate) fn lanes(mut m: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if m == 0 {
            None
        } else {
            let l = m.trailing_zeros() as usize;
            m &= m - 1;
            Some(l)
        }
    })
}

/// Lanes per chunk in the lane loops (small fixed-size copies stay in vector registers).
const CH: usize = 8;

#[inline(always)]
fn chunk(r: &Reg, c: usize) -> [u64; CH] {
    let mut v = [0u64; CH];
    v.copy_from_slice(&r[c * CH..c * CH + CH]);
    v
}

#[inline(always)]
fn store_chunk(d: &mut Reg, c: usize, m: u32, r: [u64; CH]) {
    let dv = &mut d[c * CH..c * CH + CH];
    if m == FULL {
        dv.copy_from_slice(&r);
    } else {
        let mc = m >> (c * CH);
        for l in 0..CH {
            if (mc >> l) & 1 != 0 {
                dv[l] = r[l];
            }
        }
    }
}

/// Apply `f` lane-wise: `d = f(a)`.
#[inline(always)]
pub(crate) fn map1(regs: &mut [Reg], d: u32, a: u32, m: u32, f: impl Fn(u64) -> u64) {
    for c in 0..LANES / CH {
        let av = chunk(&regs[a as usize], c);
        let mut r = [0u64; CH];
        for l in 0..CH {
            r[l] = f(av[l]);
        }
        store_chunk(&mut regs[d as usize], c, m, r);
    }
}

/// Apply `f` lane-wise: `d = f(a, b)`.
#[inline(always)]
pub(crate) fn map2(regs: &mut [Reg], d: u32, a: u32, b: u32, m: u32, f: impl Fn(u64, u64) -> u64) {
    for c in 0..LANES / CH {
        let av = chunk(&regs[a as usize], c);
        let bv = chunk(&regs[b as usize], c);
        let mut r = [0u64; CH];
        for l in 0..CH {
            r[l] = f(av[l], bv[l]);
        }
        store_chunk(&mut regs[d as usize], c, m, r);
    }
}

/// Apply `f` lane-wise: `d = f(a, b, c)`.
#[inline(always)]
pub(crate) fn map3(
    regs: &mut [Reg],
    d: u32,
    a: u32,
    b: u32,
    c: u32,
    m: u32,
    f: impl Fn(u64, u64, u64) -> u64,
) {
    for k in 0..LANES / CH {
        let av = chunk(&regs[a as usize], k);
        let bv = chunk(&regs[b as usize], k);
        let cv = chunk(&regs[c as usize], k);
        let mut r = [0u64; CH];
        for l in 0..CH {
            r[l] = f(av[l], bv[l], cv[l]);
        }
        store_chunk(&mut regs[d as usize], k, m, r);
    }
}

/// Unary lane operation on raw register bits.
pub(crate) trait Op1 {
    fn f(a: u64) -> u64;
}
/// Binary lane operation on raw register bits.
pub(crate) trait Op2 {
    fn f(a: u64, b: u64) -> u64;
}
/// Ternary lane operation on raw register bits.
pub(crate) trait Op3 {
    fn f(a: u64, b: u64, c: u64) -> u64;
}

/// Handler for an [`Op1`]: `r[0] = O(r[1])`.
pub(crate) fn h1<O: Op1>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    with_simd(
        #[inline(always)]
        || map1(cx.regs, i.r[0], i.r[1], m, O::f),
    );
    Ok(())
}
/// Handler for an [`Op2`]: `r[0] = O(r[1], r[2])`.
pub(crate) fn h2<O: Op2>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    with_simd(
        #[inline(always)]
        || map2(cx.regs, i.r[0], i.r[1], i.r[2], m, O::f),
    );
    Ok(())
}
/// Handler for an [`Op3`]: `r[0] = O(r[1], r[2], r[3])`.
pub(crate) fn h3<O: Op3>(i: &Inst, cx: &mut Cx<'_>, m: u32) -> R {
    with_simd(
        #[inline(always)]
        || map3(cx.regs, i.r[0], i.r[1], i.r[2], i.r[3], m, O::f),
    );
    Ok(())
}

/// Handler that does nothing (accepted no-op instructions).
pub(crate) fn h_nop(_: &Inst, _: &mut Cx<'_>, _: u32) -> R {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack() {
        let mut b = [0u8; LANES];
        for l in (0..LANES).step_by(3) {
            b[l] = 1;
        }
        let want: u32 = (0..LANES).step_by(3).map(|l| 1u32 << l).sum();
        assert_eq!(pack_bools(&b), want);
        assert_eq!(pack_bools(&[1; LANES]), u32::MAX);
    }
}
