//! Lowering of data movement: `mov`, `cvt`, `cvta`, `ld`, `st`, `atom`,
//! `red`, `prefetch`, `isspacep`, `cp.async`.

use super::arith::{finish, nargs, one_type};
use super::{invalid, unsupported, Frame, KLower, Res, VarLoc, I};
use crate::exec::atomic::*;
use crate::exec::int::Mov;
use crate::exec::mem::*;
use crate::exec::misc::{h_pack, h_plogic, h_unpack};
use crate::exec::program::{h1, Class, ExecFn, NONE};
use crate::parse::ast::{AstInst, Operand};
use crate::types::{is_cache_or_order_mod, Mods, Ty};

macro_rules! mem_pick {
    ($h:ident, $size:expr) => {
        match $size {
            1 => Some($h::<1> as ExecFn),
            2 => Some($h::<2> as ExecFn),
            4 => Some($h::<4> as ExecFn),
            8 => Some($h::<8> as ExecFn),
            _ => None,
        }
    };
}

/// State space named by a modifier (`shared::cta` etc. accepted).
fn space_mod(m: &mut Mods<'_>) -> Option<&'static str> {
    m.one_of(&[
        "global",
        "const",
        "shared",
        "shared::cta",
        "shared::cluster",
        "local",
        "param",
        "param::entry",
        "param::func",
    ])
    .map(|s| match s {
        "shared::cta" | "shared::cluster" => "shared",
        "param::entry" | "param::func" => "param",
        s => s,
    })
}

fn vec_mod(m: &mut Mods<'_>) -> usize {
    match m.one_of(&["v2", "v4", "v8"]) {
        Some("v2") => 2,
        Some("v4") => 4,
        Some("v8") => 8,
        _ => 1,
    }
}

/// Handler space of a `ld`/`st`: from the space modifier `sp`, else from the addressed
/// variable `var` (a `.param` access outside the entry function is a local one).
fn ldst_space(ai: &AstInst, sp: Option<&str>, var: Option<VarLoc>, is_entry: bool) -> Res<u8> {
    Ok(match (sp, var) {
        (Some("param"), Some(VarLoc::Param(_))) => sp::PARAM,
        (Some("param"), Some(VarLoc::Local(_))) => sp::LOCAL,
        (Some("param"), _) => {
            if is_entry {
                sp::PARAM
            } else {
                sp::LOCAL
            }
        }
        (Some("global" | "const"), _) => sp::GLOBAL,
        (Some("shared"), _) => sp::SHARED,
        (Some("local"), _) => sp::LOCAL,
        (None, Some(VarLoc::Shared(_) | VarLoc::DynShared)) => sp::SHARED,
        (None, Some(VarLoc::Local(_))) => sp::LOCAL,
        (None, Some(VarLoc::Param(_))) => sp::PARAM,
        (None, _) => sp::GENERIC,
        _ => return unsupported(ai, "state space"),
    })
}

/// `ld`/`st` handler for `space` and element `size` (`None` for an unsupported size).
fn ldst_handler(load: bool, space: u8, size: u32) -> Option<ExecFn> {
    match (load, space) {
        (true, sp::GLOBAL) => mem_pick!(h_ld_global, size),
        (true, sp::SHARED) => mem_pick!(h_ld_shared, size),
        (true, sp::LOCAL) => mem_pick!(h_ld_local, size),
        (true, sp::PARAM) => mem_pick!(h_ld_param, size),
        (true, _) => mem_pick!(h_ld_generic, size),
        (false, sp::GLOBAL) => mem_pick!(h_st_global, size),
        (false, sp::SHARED) => mem_pick!(h_st_shared, size),
        (false, sp::LOCAL) => mem_pick!(h_st_local, size),
        (false, _) => mem_pick!(h_st_generic, size),
    }
}

impl KLower<'_> {
    pub(super) fn lower_data(&mut self, frame: &mut Frame, ai: &AstInst) -> Res<()> {
        match ai.op.as_str() {
            "mov" => self.lower_mov(frame, ai),
            "cvt" => self.lower_cvt(frame, ai),
            "cvta" => self.lower_cvta(frame, ai),
            "ld" | "ldu" => self.lower_ldst(frame, ai, true),
            "st" => self.lower_ldst(frame, ai, false),
            "atom" | "red" => self.lower_atom(frame, ai),
            "prefetch" | "prefetchu" => {
                let mut m = Mods::new(&ai.mods);
                space_mod(&mut m);
                m.ignore_if(|x| x.starts_with("L1") || x.starts_with("L2"));
                finish(&m, ai)?;
                nargs(ai, 1)?;
                self.addr(frame, ai, &ai.args[0])?;
                self.emit(I::new(crate::exec::program::h_nop, Class::Misc));
                Ok(())
            }
            "isspacep" => {
                let mut m = Mods::new(&ai.mods);
                let sp = space_mod(&mut m);
                finish(&m, ai)?;
                nargs(ai, 2)?;
                let aux = match sp {
                    Some("global") => 0,
                    Some("shared") => 1,
                    Some("local") => 2,
                    Some("param") => 3,
                    _ => return unsupported(ai, "space"),
                };
                let d = self.pred_dst(frame, ai, &ai.args[0])?;
                let a = self.src(frame, ai, &ai.args[1], Ty::U64)?;
                self.emit(
                    I::new(h_isspacep, Class::Int)
                        .r([d, a, NONE, NONE])
                        .aux(aux),
                );
                Ok(())
            }
            _ => self.lower_cp(frame, ai),
        }
    }

    fn lower_mov(&mut self, frame: &mut Frame, ai: &AstInst) -> Res<()> {
        let mut m = Mods::new(&ai.mods);
        let ty = one_type(&mut m, ai)?;
        finish(&m, ai)?;
        nargs(ai, 2)?;
        if ty == Ty::Pred {
            let d = self.pred_dst(frame, ai, &ai.args[0])?;
            let a = self.pred_src(frame, ai, &ai.args[1])?;
            self.emit(I::new(h_plogic, Class::Int).r([d, a, NONE, NONE]).aux(4));
            return Ok(());
        }
        match (&ai.args[0], &ai.args[1]) {
            (Operand::Vec(ds), src) => {
                let n = ds.len();
                if n == 0 || n > 4 || ty.bits() % n as u32 != 0 {
                    return invalid(ai.line, "bad vector unpack");
                }
                let a = self.src(frame, ai, src, ty)?;
                let mut x = [NONE; 4];
                for (k, d) in ds.iter().enumerate() {
                    x[k] = match d {
                        Operand::Name(n) if n == "_" => NONE,
                        d => self.dst(frame, ai, d)?,
                    };
                }
                let w = ty.bits() / n as u32;
                self.emit(
                    I::new(h_unpack, Class::Int)
                        .r([NONE, a, NONE, NONE])
                        .x(x)
                        .aux(w | (n as u32) << 8),
                );
            }
            (d, Operand::Vec(ss)) => {
                let n = ss.len();
                if n == 0 || n > 4 || ty.bits() % n as u32 != 0 {
                    return invalid(ai.line, "bad vector pack");
                }
                let w = ty.bits() / n as u32;
                let ety = match w {
                    8 => Ty::B8,
                    16 => Ty::B16,
                    32 => Ty::B32,
                    _ => Ty::B64,
                };
                let d = self.dst(frame, ai, d)?;
                let mut x = [NONE; 4];
                for (k, s) in ss.iter().enumerate() {
                    x[k] = self.src(frame, ai, s, ety)?;
                }
                self.emit(
                    I::new(h_pack, Class::Int)
                        .r([d, NONE, NONE, NONE])
                        .x(x)
                        .aux(w | (n as u32) << 8),
                );
            }
            (d, s) => {
                let d = self.dst(frame, ai, d)?;
                let a = self.src(frame, ai, s, ty)?;
                self.emit(I::new(h1::<Mov<u64>>, Class::Int).r([d, a, NONE, NONE]));
            }
        }
        Ok(())
    }

    fn lower_cvta(&mut self, frame: &mut Frame, ai: &AstInst) -> Res<()> {
        let mut m = Mods::new(&ai.mods);
        let to = m.has("to");
        let sp = space_mod(&mut m);
        let ty = one_type(&mut m, ai)?;
        finish(&m, ai)?;
        nargs(ai, 2)?;
        if ty.bits() != 64 {
            return unsupported(ai, "32-bit generic addresses");
        }
        let d = self.dst(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], Ty::U64)?;
        let aux = match (sp, to) {
            (Some("global" | "const"), _) => {
                self.emit(I::new(h1::<Mov<u64>>, Class::Int).r([d, a, NONE, NONE]));
                return Ok(());
            }
            (Some("shared"), false) => 0,
            (Some("shared"), true) => 1,
            (Some("local"), false) => 2,
            (Some("local"), true) => 3,
            (Some("param"), false) => 4,
            (Some("param"), true) => 5,
            _ => return unsupported(ai, "state space"),
        };
        self.emit(I::new(h_cvta, Class::Int).r([d, a, NONE, NONE]).aux(aux));
        Ok(())
    }

    /// `ld`/`ldu` (`load`) or `st`: scalar or vector access in a resolved state space.
    fn lower_ldst(&mut self, frame: &mut Frame, ai: &AstInst, load: bool) -> Res<()> {
        let mut m = Mods::new(&ai.mods);
        let sp = space_mod(&mut m);
        let n = vec_mod(&mut m);
        m.ignore_if(is_cache_or_order_mod);
        let ty = one_type(&mut m, ai)?;
        finish(&m, ai)?;
        if ai.args.len() == 3 {
            // trailing cache-policy operand
        } else {
            nargs(ai, 2)?;
        }
        let (data_op, addr_op) = if load {
            (&ai.args[0], &ai.args[1])
        } else {
            (&ai.args[1], &ai.args[0])
        };
        let size = ty.bytes();
        if n > 4 || size > 8 {
            return unsupported(ai, "vector or element size");
        }
        let (base, off, addr32, var) = self.addr(frame, ai, addr_op)?;
        let space = ldst_space(ai, sp, var, frame.is_entry)?;
        if space == sp::PARAM && !load {
            return unsupported(ai, "store to kernel parameter space");
        }
        let Some(f) = ldst_handler(load, space, size) else {
            return unsupported(ai, "element size");
        };
        let class = match (space, load) {
            (sp::SHARED, _) => Class::Shared,
            (sp::LOCAL | sp::PARAM, _) => Class::Local,
            (_, true) => Class::GlobalLd,
            (_, false) => Class::GlobalSt,
        };
        let (x, dw) = self.ldst_data_regs(frame, ai, data_op, n, load, ty)?;
        let mut aux = (n as u32) << lf::N_SHIFT;
        if ty.is_signed() {
            aux |= lf::SIGNED | (dw << lf::DW_SHIFT);
        }
        if addr32 {
            aux |= lf::ADDR32;
        }
        self.emit(
            I::new(f, class)
                .r([NONE, base, NONE, NONE])
                .x(x)
                .imm(off)
                .aux(aux),
        );
        Ok(())
    }

    /// Registers of the `n` data operands of a `ld`/`st` (`_` discards a loaded element),
    /// and the width in bits of the last typed load destination (64 if none).
    fn ldst_data_regs(
        &mut self,
        frame: &Frame,
        ai: &AstInst,
        data_op: &Operand,
        n: usize,
        load: bool,
        ty: Ty,
    ) -> Res<([u32; 4], u32)> {
        let elems: Vec<&Operand> = match data_op {
            Operand::Vec(v) => v.iter().collect(),
            o => vec![o],
        };
        if elems.len() != n {
            return invalid(
                ai.line,
                format!("`{}` expects {n} data operands", ai.opcode()),
            );
        }
        let mut x = [NONE; 4];
        let mut dw = 64;
        for (k, e) in elems.iter().enumerate() {
            x[k] = if load {
                match e {
                    Operand::Name(nm) if nm == "_" => NONE,
                    e => {
                        if let Some(t) = self.reg_type(frame, e) {
                            dw = t.bits();
                        }
                        self.dst(frame, ai, e)?
                    }
                }
            } else {
                self.src(frame, ai, e, ty)?
            };
        }
        Ok((x, dw))
    }

    fn lower_atom(&mut self, frame: &mut Frame, ai: &AstInst) -> Res<()> {
        let red = ai.op == "red";
        let mut m = Mods::new(&ai.mods);
        let sp = space_mod(&mut m);
        m.ignore_if(is_cache_or_order_mod);
        m.ignore(&["noftz"]);
        let op = match m.one_of(&[
            "add", "min", "max", "inc", "dec", "and", "or", "xor", "exch", "cas",
        ]) {
            Some("add") => aop::ADD,
            Some("min") => aop::MIN,
            Some("max") => aop::MAX,
            Some("inc") => aop::INC,
            Some("dec") => aop::DEC,
            Some("and") => aop::AND,
            Some("or") => aop::OR,
            Some("xor") => aop::XOR,
            Some("exch") => aop::EXCH,
            Some(_) => aop::CAS,
            None => return invalid(ai.line, "atom needs an operation"),
        };
        let ty = one_type(&mut m, ai)?;
        finish(&m, ai)?;
        let kind = match (ty, op) {
            (Ty::B32 | Ty::U32, _) => aop::K_U32,
            (Ty::S32, _) => aop::K_S32,
            (Ty::F32, aop::ADD | aop::EXCH) => aop::K_F32,
            (Ty::B64 | Ty::U64, _) => aop::K_U64,
            (Ty::S64, _) => aop::K_S64,
            (Ty::F64, aop::ADD | aop::EXCH) => aop::K_F64,
            (Ty::F16x2, aop::ADD) => aop::K_F16X2,
            (Ty::Bf16x2, aop::ADD) => aop::K_BF16X2,
            _ => return unsupported(ai, "operation/type combination"),
        };
        if matches!(op, aop::INC | aop::DEC) && kind != aop::K_U32 {
            return unsupported(ai, "inc/dec type");
        }
        let space = match sp {
            Some("global") => sp::GLOBAL,
            Some("shared") => sp::SHARED,
            None => sp::GENERIC,
            _ => return unsupported(ai, "state space"),
        };
        let need = if red { 2 } else { 3 } + (op == aop::CAS) as usize;
        nargs(ai, need)?;
        let (d, rest) = if red {
            (NONE, &ai.args[..])
        } else {
            (self.dst(frame, ai, &ai.args[0])?, &ai.args[1..])
        };
        let (base, off, addr32, var) = self.addr(frame, ai, &rest[0])?;
        let space = match (space, var) {
            (sp::GENERIC, Some(VarLoc::Shared(_) | VarLoc::DynShared)) => sp::SHARED,
            (s, _) => s,
        };
        let base = if addr32 {
            let t = self.new_reg(Ty::U64);
            self.emit(I::new(h1::<Mov<u32>>, Class::Int).r([t, base, NONE, NONE]));
            t
        } else {
            base
        };
        let b = self.src(frame, ai, &rest[1], ty)?;
        let c = if op == aop::CAS {
            self.src(frame, ai, &rest[2], ty)?
        } else {
            NONE
        };
        let aux = op | kind << 8 | (space as u32) << aop::SPACE_SHIFT;
        self.emit(
            I::new(h_atom, Class::Atomic)
                .r([d, base, b, c])
                .imm(off)
                .aux(aux),
        );
        Ok(())
    }

    fn lower_cp(&mut self, frame: &mut Frame, ai: &AstInst) -> Res<()> {
        let mut m = Mods::new(&ai.mods);
        if ai.op != "cp" || !m.has("async") {
            return unsupported(ai, "unknown instruction");
        }
        if m.has("commit_group") || m.has("wait_group") || m.has("wait_all") {
            finish(&m, ai)?;
            self.emit(I::new(crate::exec::program::h_nop, Class::Misc));
            return Ok(());
        }
        m.one_of(&["ca", "cg"]);
        let dst_sp = space_mod(&mut m);
        let src_sp = space_mod(&mut m);
        m.ignore_if(|x| x.starts_with("L2") || x.starts_with("L1"));
        finish(&m, ai)?;
        if dst_sp != Some("shared") || src_sp != Some("global") || !(3..=5).contains(&ai.args.len())
        {
            return unsupported(
                ai,
                "only cp.async.{ca,cg}.shared.global [dst], [src], size{, src-size}",
            );
        }
        let (db, doff, d32, _) = self.addr(frame, ai, &ai.args[0])?;
        let (sb, soff, s32, _) = self.addr(frame, ai, &ai.args[1])?;
        let Operand::Int(size) = ai.args[2] else {
            return invalid(ai.line, "cp.async size must be 4, 8 or 16");
        };
        if !matches!(size, 4 | 8 | 16) {
            return invalid(ai.line, "cp.async size must be 4, 8 or 16");
        }
        let hint = ai.mods.iter().any(|x| x == "L2::cache_hint");
        let srcsize = if ai.args.len() - hint as usize >= 4 {
            self.src(frame, ai, &ai.args[3], Ty::U32)?
        } else {
            self.const_reg(size as u64)
        };
        let zero = self.const_reg(0);
        let (db, sb) = (
            if d32 { self.widen32(db) } else { db },
            if s32 { self.widen32(sb) } else { sb },
        );
        // dst address = db + doff, src address = sb + soff (soff kept in x[1]).
        let so = self.const_reg(soff as u64);
        self.emit(
            I::new(h_cp_async, Class::GlobalLd)
                .r([zero, db, sb, srcsize])
                .x([so, NONE, NONE, NONE])
                .imm(doff)
                .aux(size as u32),
        );
        Ok(())
    }

    fn widen32(&mut self, r: u32) -> u32 {
        let t = self.new_reg(Ty::U64);
        self.emit(I::new(h1::<Mov<u32>>, Class::Int).r([t, r, NONE, NONE]));
        t
    }
}
