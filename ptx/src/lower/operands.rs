//! Operand resolution: registers, predicates, immediates (materialised as
//! constant registers), special registers and address operands.

use super::{invalid, unsupported, Frame, KLower, Res, Sym, VarLoc, I};
use crate::exec::fround::{round_f64, Rnd, BF16, F16};
use crate::exec::program::{Class, Init, Special, NONE, PRED_NEG};
use crate::parse::ast::{AstInst, Operand, Space};
use crate::types::Ty;

/// Encode an immediate operand for an instruction of type `ty`.
pub(crate) fn imm_bits(op: &Operand, ty: Ty) -> Option<u64> {
    let fl = |x: f64| -> u64 {
        match ty {
            Ty::F32 => (x as f32).to_bits() as u64,
            Ty::F64 => x.to_bits(),
            Ty::F16 => round_f64(x, F16, Rnd::Rn),
            Ty::Bf16 => round_f64(x, BF16, Rnd::Rn),
            _ => x as i64 as u64,
        }
    };
    let mask = |v: u64| -> u64 {
        let b = ty.bits();
        if (1..64).contains(&b) && !matches!(ty, Ty::Pred) {
            v & ((1u64 << b) - 1)
        } else {
            v
        }
    };
    Some(match *op {
        Operand::Int(v) if ty.is_float() => fl(v as f64),
        Operand::Int(v) => mask(v as i64 as u64),
        Operand::F32(b) if matches!(ty, Ty::F64 | Ty::F16 | Ty::Bf16) => {
            fl(f32::from_bits(b) as f64)
        }
        Operand::F32(b) => b as u64,
        Operand::F64(b) if matches!(ty, Ty::F32 | Ty::F16 | Ty::Bf16) => fl(f64::from_bits(b)),
        Operand::F64(b) => b,
        Operand::Float(x) => mask(fl(x)),
        _ => return None,
    })
}

fn special_of(name: &str) -> Option<Special> {
    let dim = |s: &str| -> Option<u8> {
        match s {
            "x" => Some(0),
            "y" => Some(1),
            "z" => Some(2),
            _ => None,
        }
    };
    let (base, comp) = match name.split_once('.') {
        Some((b, c)) => (b, dim(c)),
        None => (name, None),
    };
    Some(match (base, comp) {
        ("%tid", Some(d)) => Special::Tid(d),
        ("%ntid", Some(d)) => Special::Ntid(d),
        ("%ctaid", Some(d)) | ("%clusterid", Some(d)) => Special::Ctaid(d),
        ("%nctaid", Some(d)) | ("%nclusterid", Some(d)) => Special::Nctaid(d),
        ("%cluster_ctaid", Some(_)) | ("%cluster_ctarank", None) => Special::Zero,
        ("%cluster_nctaid", Some(_)) | ("%cluster_nctarank", None) => Special::One,
        ("%laneid", None) => Special::LaneId,
        ("%warpid", None) => Special::WarpId,
        ("%nwarpid", None) => Special::NWarpId,
        ("%smid", None) => Special::SmId,
        ("%nsmid", None) => Special::NSmId,
        ("%gridid", None) => Special::GridId,
        ("%lanemask_eq", None) => Special::LaneMaskEq,
        ("%lanemask_lt", None) => Special::LaneMaskLt,
        ("%lanemask_le", None) => Special::LaneMaskLe,
        ("%lanemask_gt", None) => Special::LaneMaskGt,
        ("%lanemask_ge", None) => Special::LaneMaskGe,
        ("%dynamic_smem_size", None) => Special::DynSmem,
        ("%total_smem_size", None) | ("%aggr_smem_size", None) => Special::TotalSmem,
        (b, None)
            if b.starts_with("%pm")
                || b.starts_with("%envreg")
                || b.starts_with("%reserved_smem") =>
        {
            Special::Zero
        }
        ("%current_graph_exec", None) => Special::Zero,
        _ => return None,
    })
}

/// Dynamic special registers read by an instruction (aux of `h_read_clock`).
fn clock_of(name: &str) -> Option<u32> {
    Some(match name {
        "%clock" => 0,
        "%clock_hi" => 1,
        "%clock64" => 2,
        "%globaltimer" => 3,
        "%globaltimer_lo" => 4,
        "%globaltimer_hi" => 5,
        _ => return None,
    })
}

impl KLower<'_> {
    /// Resolve a name in the current frame, then at module scope.
    pub fn lookup(&mut self, frame: &Frame, name: &str) -> Option<Sym> {
        for s in frame.scopes.iter().rev() {
            if let Some(v) = s.get(name) {
                return Some(*v);
            }
        }
        if let Some(&idx) = self.m.globals.get(name) {
            return Some(Sym::Var(VarLoc::Global(idx as u32)));
        }
        if let Some(d) = self.m.mvars.get(name).copied() {
            if d.space == Space::Shared {
                if d.linkage == crate::parse::ast::Linkage::Extern
                    || d.dims.iter().any(|x| x.is_none())
                {
                    self.dyn_shared = true;
                    return Some(Sym::Var(VarLoc::DynShared));
                }
                if let Some(&o) = self.shared_map.get(name) {
                    return Some(Sym::Var(VarLoc::Shared(o)));
                }
                let (_, size, align) = super::decl_layout(d).ok()?;
                let o = self.alloc_shared(size, align);
                self.shared_map.insert(name.to_string(), o);
                return Some(Sym::Var(VarLoc::Shared(o)));
            }
            if let Some(&o) = self.local_map.get(name) {
                return Some(Sym::Var(VarLoc::Local(o)));
            }
            let (_, size, align) = super::decl_layout(d).ok()?;
            let o = self.alloc_local(size, align);
            self.local_map.insert(name.to_string(), o);
            return Some(Sym::Var(VarLoc::Local(o)));
        }
        None
    }

    /// Register holding the address of a variable (in its own state space).
    pub fn var_addr(&mut self, loc: VarLoc) -> u32 {
        match loc {
            VarLoc::Param(o) | VarLoc::Local(o) | VarLoc::Shared(o) => self.const_reg(o as u64),
            VarLoc::DynShared => self.init_reg(Init::Special(Special::DynSharedBase)),
            VarLoc::Global(i) => self.init_reg(Init::GlobalAddr(i, 0)),
        }
    }

    /// Register holding the value of a source operand of type `ty`.
    pub fn src(&mut self, frame: &Frame, ai: &AstInst, op: &Operand, ty: Ty) -> Res<u32> {
        if let Some(v) = imm_bits(op, ty) {
            return Ok(self.const_reg(v));
        }
        match op {
            Operand::Name(n) => self.name_value(frame, ai, n),
            Operand::Addr {
                base: Some(n),
                offset,
            } => {
                let r = self.name_value(frame, ai, n)?;
                if *offset == 0 {
                    return Ok(r);
                }
                if let Some(Sym::Var(VarLoc::Global(i))) = self.lookup(frame, n) {
                    return Ok(self.init_reg(Init::GlobalAddr(i, *offset)));
                }
                let c = self.const_reg(*offset as u64);
                let t = self.new_reg(Ty::B64);
                self.emit(
                    I::new(
                        crate::exec::program::h2::<crate::exec::int::Add<u64>>,
                        Class::Int,
                    )
                    .r([t, r, c, NONE]),
                );
                Ok(t)
            }
            _ => invalid(ai.line, format!("bad source operand in `{}`", ai.opcode())),
        }
    }

    fn name_value(&mut self, frame: &Frame, ai: &AstInst, n: &str) -> Res<u32> {
        match self.lookup(frame, n) {
            Some(Sym::Reg(r, _)) => Ok(r),
            Some(Sym::Var(loc)) => Ok(self.var_addr(loc)),
            Some(Sym::Pred(_)) => invalid(
                ai.line,
                format!("predicate `{n}` used as a value in `{}`", ai.opcode()),
            ),
            None => {
                if let Some(s) = special_of(n) {
                    return Ok(self.init_reg(Init::Special(s)));
                }
                if let Some(k) = clock_of(n) {
                    let t = self.new_reg(Ty::B64);
                    self.emit(
                        I::new(crate::exec::misc::h_read_clock, Class::Int)
                            .r([t, NONE, NONE, NONE])
                            .aux(k),
                    );
                    return Ok(t);
                }
                if n.starts_with('%') && n.len() > 1 && special_base(n) {
                    return unsupported(ai, format!("special register {n}"));
                }
                invalid(
                    ai.line,
                    format!("undefined symbol `{n}` in `{}`", ai.opcode()),
                )
            }
        }
    }

    /// Destination register (`_` is a scratch sink).
    pub fn dst(&mut self, frame: &Frame, ai: &AstInst, op: &Operand) -> Res<u32> {
        match op {
            Operand::Name(n) if n == "_" => Ok(self.sink()),
            Operand::Name(n) => match self.lookup(frame, n) {
                Some(Sym::Reg(r, _)) => Ok(r),
                Some(_) => invalid(
                    ai.line,
                    format!("`{n}` is not a register in `{}`", ai.opcode()),
                ),
                None => invalid(
                    ai.line,
                    format!("undefined register `{n}` in `{}`", ai.opcode()),
                ),
            },
            _ => invalid(
                ai.line,
                format!("bad destination operand in `{}`", ai.opcode()),
            ),
        }
    }

    pub fn sink(&mut self) -> u32 {
        if let Some(s) = self.sink {
            return s;
        }
        let s = self.new_reg(Ty::B64);
        self.sink = Some(s);
        s
    }

    /// Declared type of a register operand, if it is one.
    pub fn reg_type(&mut self, frame: &Frame, op: &Operand) -> Option<Ty> {
        match op {
            Operand::Name(n) => match self.lookup(frame, n) {
                Some(Sym::Reg(_, t)) => Some(t),
                _ => None,
            },
            _ => None,
        }
    }

    /// Predicate source reference (may be negated with `!`); immediates 0/1 allowed.
    pub fn pred_src(&mut self, frame: &Frame, ai: &AstInst, op: &Operand) -> Res<u32> {
        let (n, neg) = match op {
            Operand::Name(n) => (n, false),
            Operand::Not(n) => (n, true),
            Operand::Int(v) => {
                let p = self.const_pred(*v != 0);
                return Ok(p);
            }
            _ => {
                return invalid(
                    ai.line,
                    format!("bad predicate operand in `{}`", ai.opcode()),
                )
            }
        };
        match self.lookup(frame, n) {
            Some(Sym::Pred(p)) => Ok(p | if neg { PRED_NEG } else { 0 }),
            _ => invalid(
                ai.line,
                format!("`{n}` is not a predicate in `{}`", ai.opcode()),
            ),
        }
    }

    /// A predicate register that always reads `v` (never written by the program).
    pub fn const_pred(&mut self, v: bool) -> u32 {
        let p = self.new_pred();
        if v {
            // a fresh predicate is 0 at warp start; negation gives all ones
            p | PRED_NEG
        } else {
            p
        }
    }

    /// Predicate destination (`_` allowed).
    pub fn pred_dst(&mut self, frame: &Frame, ai: &AstInst, op: &Operand) -> Res<u32> {
        match op {
            Operand::Name(n) if n == "_" => Ok(self.new_pred()),
            Operand::Name(n) => match self.lookup(frame, n) {
                Some(Sym::Pred(p)) => Ok(p),
                _ => invalid(
                    ai.line,
                    format!("`{n}` is not a predicate in `{}`", ai.opcode()),
                ),
            },
            _ => invalid(
                ai.line,
                format!("bad predicate destination in `{}`", ai.opcode()),
            ),
        }
    }

    /// Address operand: (base register, offset, base is 32-bit, variable if symbolic).
    pub fn addr(
        &mut self,
        frame: &Frame,
        ai: &AstInst,
        op: &Operand,
    ) -> Res<(u32, i64, bool, Option<VarLoc>)> {
        let Operand::Addr { base, offset } = op else {
            return invalid(
                ai.line,
                format!("expected address operand in `{}`", ai.opcode()),
            );
        };
        let Some(n) = base else {
            return Ok((self.const_reg(0), *offset, false, None));
        };
        match self.lookup(frame, n) {
            Some(Sym::Reg(r, t)) => Ok((r, *offset, t.bits() <= 32, None)),
            Some(Sym::Var(loc)) => {
                let r = self.var_addr(loc);
                Ok((r, *offset, false, Some(loc)))
            }
            Some(Sym::Pred(_)) => invalid(ai.line, format!("predicate `{n}` used as an address")),
            None => {
                if let Some(s) = special_of(n) {
                    return Ok((self.init_reg(Init::Special(s)), *offset, false, None));
                }
                invalid(
                    ai.line,
                    format!("undefined symbol `{n}` in address of `{}`", ai.opcode()),
                )
            }
        }
    }
}

/// Names that look like special registers (so an unknown one is "unsupported", not "undefined").
fn special_base(n: &str) -> bool {
    let b = n.split('.').next().unwrap_or(n);
    matches!(
        b,
        "%tid" | "%ntid" | "%ctaid" | "%nctaid" | "%is_explicit_cluster"
    )
}
