//! Lowering of integer arithmetic and logic, plus the opcode-family dispatch
//! (floating point and comparisons live in `fparith`).

use super::{invalid, unsupported, Frame, KLower, Res, I};
use crate::exec::int::*;
use crate::exec::misc::*;
use crate::exec::program::{h1, h2, h3, Class, ExecFn, NONE};
use crate::parse::ast::AstInst;
use crate::types::{Mods, Ty};

macro_rules! int_pick {
    ($h:ident, $op:ident, $ty:expr) => {
        match $ty {
            Ty::U16 | Ty::B16 => Some($h::<$op<u16>> as ExecFn),
            Ty::S16 => Some($h::<$op<i16>> as ExecFn),
            Ty::U32 | Ty::B32 => Some($h::<$op<u32>> as ExecFn),
            Ty::S32 => Some($h::<$op<i32>> as ExecFn),
            Ty::U64 | Ty::B64 => Some($h::<$op<u64>> as ExecFn),
            Ty::S64 => Some($h::<$op<i64>> as ExecFn),
            _ => None,
        }
    };
}

/// Reject unconsumed modifiers.
pub(crate) fn finish(m: &Mods<'_>, ai: &AstInst) -> Res<()> {
    let rest = m.rest();
    if rest.is_empty() {
        Ok(())
    } else {
        unsupported(ai, format!("unsupported modifier(s) .{}", rest.join(" .")))
    }
}

pub(crate) fn nargs(ai: &AstInst, n: usize) -> Res<()> {
    if ai.args.len() == n {
        Ok(())
    } else {
        invalid(
            ai.line,
            format!(
                "`{}` expects {n} operands, got {}",
                ai.opcode(),
                ai.args.len()
            ),
        )
    }
}

/// The single type modifier of an instruction.
pub(crate) fn one_type(m: &mut Mods<'_>, ai: &AstInst) -> Res<Ty> {
    let t = m.types();
    match t.as_slice() {
        [t] => Ok(*t),
        _ => invalid(
            ai.line,
            format!("`{}` needs exactly one type modifier", ai.opcode()),
        ),
    }
}

/// Handler of an integer op (`None` where the type is not supported) and its source
/// types ([`Ty::Pred`] standing for "the instruction type").
type IntPick = (Option<ExecFn>, Vec<Ty>);

/// `add`/`sub`, with `.sat` on `.s32`.
fn int_add_sub(op: &str, m: &mut Mods<'_>, ty: Ty) -> IntPick {
    let p = Ty::Pred;
    let sat = m.has("sat");
    let f = match (op, sat, ty) {
        ("add", false, _) => int_pick!(h2, Add, ty),
        ("sub", false, _) => int_pick!(h2, Sub, ty),
        ("add", true, Ty::S32) => Some(h2::<AddSat<i32>> as ExecFn),
        ("sub", true, Ty::S32) => Some(h2::<SubSat<i32>> as ExecFn),
        _ => None,
    };
    (f, vec![p, p])
}

/// `mul`/`mad` in their `.lo`, `.hi` and `.wide` forms.
fn int_mul_mad(op: &str, m: &mut Mods<'_>, ty: Ty) -> IntPick {
    let p = Ty::Pred;
    let mode = m.one_of(&["lo", "hi", "wide"]).unwrap_or("lo");
    let three = op == "mad";
    let f = match (mode, three) {
        ("lo", false) => int_pick!(h2, MulLo, ty),
        ("hi", false) => int_pick!(h2, MulHi, ty),
        ("wide", false) => match ty {
            Ty::U16 => Some(h2::<MulWide<u16>> as ExecFn),
            Ty::S16 => Some(h2::<MulWide<i16>> as ExecFn),
            Ty::U32 => Some(h2::<MulWide<u32>> as ExecFn),
            Ty::S32 => Some(h2::<MulWide<i32>> as ExecFn),
            _ => None,
        },
        ("lo", true) => int_pick!(h3, MadLo, ty),
        ("hi", true) => int_pick!(h3, MadHi, ty),
        _ => match ty {
            Ty::U16 => Some(h3::<MadWide<u16>> as ExecFn),
            Ty::S16 => Some(h3::<MadWide<i16>> as ExecFn),
            Ty::U32 => Some(h3::<MadWide<u32>> as ExecFn),
            Ty::S32 => Some(h3::<MadWide<i32>> as ExecFn),
            _ => None,
        },
    };
    let wide_ty = match ty {
        Ty::U16 => Ty::U32,
        Ty::S16 => Ty::S32,
        Ty::U32 => Ty::U64,
        _ => Ty::S64,
    };
    let c = if mode == "wide" { wide_ty } else { p };
    (f, if three { vec![p, p, c] } else { vec![p, p] })
}

/// `mul24.lo`/`mad24.lo` (the `.hi` forms are not supported).
fn int_mul24(ai: &AstInst, m: &mut Mods<'_>, ty: Ty) -> Res<IntPick> {
    let p = Ty::Pred;
    if !m.has("lo") {
        return unsupported(ai, "only .lo form of mul24/mad24");
    }
    let three = ai.op == "mad24";
    let f = match (ty, three) {
        (Ty::U32, false) => Some(h2::<MulLo<u32>> as ExecFn),
        (Ty::S32, false) => Some(h2::<MulLo<i32>> as ExecFn),
        (Ty::U32, true) => Some(h3::<MadLo<u32>> as ExecFn),
        (Ty::S32, true) => Some(h3::<MadLo<i32>> as ExecFn),
        _ => None,
    };
    Ok((f, if three { vec![p, p, p] } else { vec![p, p] }))
}

/// The integer ops without special operand handling: division, min/max, unary,
/// bitwise, shifts, `sad` and `bfe`.
fn int_simple(ai: &AstInst, m: &mut Mods<'_>, ty: Ty) -> Res<IntPick> {
    let p = Ty::Pred;
    let u32t = Ty::U32;
    Ok(match ai.op.as_str() {
        "div" => (int_pick!(h2, Div, ty), vec![p, p]),
        "rem" => (int_pick!(h2, Rem, ty), vec![p, p]),
        "min" => {
            m.has("relu");
            (int_pick!(h2, Min, ty), vec![p, p])
        }
        "max" => {
            if m.has("relu") {
                return unsupported(ai, ".relu on integer max");
            }
            (int_pick!(h2, Max, ty), vec![p, p])
        }
        "abs" => (int_pick!(h1, Abs, ty), vec![p]),
        "neg" => (int_pick!(h1, Neg, ty), vec![p]),
        "not" => (int_pick!(h1, Not, ty), vec![p]),
        "cnot" => (int_pick!(h1, Cnot, ty), vec![p]),
        "popc" => (int_pick!(h1, Popc, ty), vec![p]),
        "clz" => (int_pick!(h1, Clz, ty), vec![p]),
        "brev" => (int_pick!(h1, Brev, ty), vec![p]),
        "and" => (int_pick!(h2, And, ty), vec![p, p]),
        "or" => (int_pick!(h2, Or, ty), vec![p, p]),
        "xor" => (int_pick!(h2, Xor, ty), vec![p, p]),
        "shl" => (int_pick!(h2, Shl, ty), vec![p, u32t]),
        "shr" => (int_pick!(h2, Shr, ty), vec![p, u32t]),
        "sad" => (int_pick!(h3, Sad, ty), vec![p, p, p]),
        "bfe" => (int_pick!(h3, Bfe, ty), vec![p, u32t, u32t]),
        _ => return unsupported(ai, "integer form"),
    })
}

impl KLower<'_> {
    /// Dispatch on the opcode family.
    pub fn lower_op(&mut self, frame: &mut Frame, ai: &AstInst) -> Res<()> {
        match ai.op.as_str() {
            "add" | "sub" | "mul" | "mad" | "fma" | "div" | "rem" | "abs" | "neg" | "min"
            | "max" | "sad" | "popc" | "clz" | "brev" | "bfind" | "bfe" | "bfi" | "prmt"
            | "shf" | "shl" | "shr" | "and" | "or" | "xor" | "not" | "cnot" | "copysign"
            | "sqrt" | "rsqrt" | "rcp" | "sin" | "cos" | "lg2" | "ex2" | "tanh" | "testp"
            | "dp4a" | "dp2a" | "addc" | "subc" | "madc" | "mul24" | "mad24" | "setp" | "set"
            | "selp" | "slct" => self.lower_arith(frame, ai),
            "mov" | "cvt" | "cvta" | "ld" | "ldu" | "st" | "atom" | "red" | "prefetch"
            | "prefetchu" | "isspacep" | "cp" => self.lower_data(frame, ai),
            _ => self.lower_control(frame, ai),
        }
    }

    /// Lower an arithmetic, logic or comparison instruction: special forms first, then
    /// by operand type (half, float, integer).
    fn lower_arith(&mut self, frame: &mut Frame, ai: &AstInst) -> Res<()> {
        let mut m = Mods::new(&ai.mods);
        match ai.op.as_str() {
            "setp" | "set" => return self.lower_setp(frame, ai, m),
            "selp" => return self.lower_selp(frame, ai, m),
            "slct" => return self.lower_slct(frame, ai, m),
            "and" | "or" | "xor" | "not" | "cnot" if ai.mods.iter().any(|x| x == "pred") => {
                return self.lower_pred_logic(frame, ai, m)
            }
            "min" | "max" if ai.mods.iter().any(|x| x == "s16x2" || x == "u16x2") => {
                return self.lower_min_max_16x2(frame, ai, m)
            }
            "addc" | "subc" | "madc" => return self.lower_carry(frame, ai, m),
            "add" | "sub" | "mad" if ai.mods.iter().any(|x| x == "cc") => {
                return self.lower_carry(frame, ai, m)
            }
            _ => {}
        }
        let ty = if matches!(ai.op.as_str(), "dp4a" | "dp2a") {
            match m.first_type() {
                Some(t) => t,
                None => return invalid(ai.line, "missing type"),
            }
        } else {
            one_type(&mut m, ai)?
        };
        if super::fparith::is_half(ty) {
            return self.lower_half(frame, ai, m, ty);
        }
        if ty.is_float() {
            return self.lower_float(frame, ai, m, ty);
        }
        self.lower_int(frame, ai, m, ty)
    }

    /// `selp`: select between two sources on a predicate.
    fn lower_selp(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>) -> Res<()> {
        let ty = one_type(&mut m, ai)?;
        finish(&m, ai)?;
        nargs(ai, 4)?;
        let d = self.dst(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], ty)?;
        let b = self.src(frame, ai, &ai.args[2], ty)?;
        let p = self.pred_src(frame, ai, &ai.args[3])?;
        self.emit(
            I::new(h_selp, Class::Int)
                .r([d, a, b, NONE])
                .x([p, NONE, NONE, NONE]),
        );
        Ok(())
    }

    /// `slct`: select between two sources on the sign of a third.
    fn lower_slct(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>) -> Res<()> {
        m.has("ftz");
        let t = m.types();
        finish(&m, ai)?;
        nargs(ai, 4)?;
        let (dt, ct) = match t.as_slice() {
            [d, c] => (*d, *c),
            _ => return invalid(ai.line, "slct needs two types"),
        };
        let d = self.dst(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], dt)?;
        let b = self.src(frame, ai, &ai.args[2], dt)?;
        let c = self.src(frame, ai, &ai.args[3], ct)?;
        self.emit(
            I::new(h_slct, Class::Int)
                .r([d, a, b, c])
                .aux((ct == Ty::F32) as u32),
        );
        Ok(())
    }

    /// `and`/`or`/`xor`/`not`/`cnot` on `.pred` operands.
    fn lower_pred_logic(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>) -> Res<()> {
        m.types();
        finish(&m, ai)?;
        let n = if matches!(ai.op.as_str(), "not" | "cnot") {
            2
        } else {
            3
        };
        nargs(ai, n)?;
        let d = self.pred_dst(frame, ai, &ai.args[0])?;
        let a = self.pred_src(frame, ai, &ai.args[1])?;
        let b = if n == 3 {
            self.pred_src(frame, ai, &ai.args[2])?
        } else {
            NONE
        };
        let op = match ai.op.as_str() {
            "and" => 0,
            "or" => 1,
            "xor" => 2,
            _ => 3,
        };
        self.emit(I::new(h_plogic, Class::Int).r([d, a, b, NONE]).aux(op));
        Ok(())
    }

    pub(super) fn emit_n(
        &mut self,
        frame: &Frame,
        ai: &AstInst,
        f: ExecFn,
        class: Class,
        ty: Ty,
        srcs: &[Ty],
    ) -> Res<()> {
        nargs(ai, 1 + srcs.len())?;
        let d = self.dst(frame, ai, &ai.args[0])?;
        let mut r = [d, NONE, NONE, NONE];
        for (k, st) in srcs.iter().enumerate() {
            let t = if *st == Ty::Pred { ty } else { *st };
            r[k + 1] = self.src(frame, ai, &ai.args[k + 1], t)?;
        }
        self.emit(I::new(f, class).r(r));
        Ok(())
    }

    /// Lower an integer instruction of type `ty`.
    fn lower_int(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>, ty: Ty) -> Res<()> {
        let op = ai.op.as_str();
        let (f, srcs) = match op {
            "bfind" => return self.lower_bfind(frame, ai, m, ty),
            "bfi" => return self.lower_bfi(frame, ai, m, ty),
            "prmt" => return self.lower_prmt(frame, ai, m, ty),
            "shf" => return self.lower_shf(frame, ai, m, ty),
            "dp4a" => return self.lower_dp4a(frame, ai, m, ty),
            "dp2a" => return self.lower_dp2a(frame, ai, m, ty),
            "add" | "sub" => int_add_sub(op, &mut m, ty),
            "mul" | "mad" => int_mul_mad(op, &mut m, ty),
            "mul24" | "mad24" => int_mul24(ai, &mut m, ty)?,
            _ => int_simple(ai, &mut m, ty)?,
        };
        finish(&m, ai)?;
        let Some(f) = f else {
            return unsupported(ai, format!("type .{ty:?}").to_lowercase());
        };
        self.emit_n(frame, ai, f, Class::Int, ty, &srcs)
    }

    /// `bfind{.shiftamt}`: position of the most significant non-sign bit.
    fn lower_bfind(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>, ty: Ty) -> Res<()> {
        let shift = m.has("shiftamt");
        let f: Option<ExecFn> = match ty {
            Ty::U32 => Some(h_bfind::<u32>),
            Ty::S32 => Some(h_bfind::<i32>),
            Ty::U64 => Some(h_bfind::<u64>),
            Ty::S64 => Some(h_bfind::<i64>),
            _ => None,
        };
        finish(&m, ai)?;
        let Some(f) = f else {
            return unsupported(ai, "type");
        };
        nargs(ai, 2)?;
        let d = self.dst(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], ty)?;
        self.emit(
            I::new(f, Class::Int)
                .r([d, a, NONE, NONE])
                .aux(shift as u32),
        );
        Ok(())
    }

    /// `bfi`: bit-field insert.
    fn lower_bfi(&mut self, frame: &mut Frame, ai: &AstInst, m: Mods<'_>, ty: Ty) -> Res<()> {
        finish(&m, ai)?;
        nargs(ai, 5)?;
        let f: ExecFn = match ty {
            Ty::B32 | Ty::U32 | Ty::S32 => h_bfi::<u32>,
            Ty::B64 | Ty::U64 | Ty::S64 => h_bfi::<u64>,
            _ => return unsupported(ai, "type"),
        };
        let d = self.dst(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], ty)?;
        let b = self.src(frame, ai, &ai.args[2], ty)?;
        let c = self.src(frame, ai, &ai.args[3], Ty::U32)?;
        let e = self.src(frame, ai, &ai.args[4], Ty::U32)?;
        self.emit(
            I::new(f, Class::Int)
                .r([d, a, b, c])
                .x([e, NONE, NONE, NONE]),
        );
        Ok(())
    }

    /// `prmt{.mode}`: byte permute.
    fn lower_prmt(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>, ty: Ty) -> Res<()> {
        let mode = match m.one_of(&["f4e", "b4e", "rc8", "ecl", "ecr", "rc16"]) {
            None => 0,
            Some("f4e") => 1,
            Some("b4e") => 2,
            Some("rc8") => 3,
            Some("ecl") => 4,
            Some("ecr") => 5,
            Some(_) => 6,
        };
        finish(&m, ai)?;
        nargs(ai, 4)?;
        let d = self.dst(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], ty)?;
        let b = self.src(frame, ai, &ai.args[2], ty)?;
        let c = self.src(frame, ai, &ai.args[3], ty)?;
        self.emit(I::new(h_prmt, Class::Int).r([d, a, b, c]).aux(mode));
        Ok(())
    }

    /// `shf.{l,r}{.wrap,.clamp}`: funnel shift.
    fn lower_shf(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>, ty: Ty) -> Res<()> {
        let left = match m.one_of(&["l", "r"]) {
            Some("l") => 1,
            Some(_) => 0,
            None => return invalid(ai.line, "shf needs .l or .r"),
        };
        let wrap = if m.has("wrap") {
            2
        } else {
            m.has("clamp");
            0
        };
        finish(&m, ai)?;
        nargs(ai, 4)?;
        let d = self.dst(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], ty)?;
        let b = self.src(frame, ai, &ai.args[2], ty)?;
        let c = self.src(frame, ai, &ai.args[3], Ty::U32)?;
        self.emit(I::new(h_shf, Class::Int).r([d, a, b, c]).aux(left | wrap));
        Ok(())
    }

    /// `dp4a`: four-way byte dot product with accumulate.
    fn lower_dp4a(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>, ty: Ty) -> Res<()> {
        let t = {
            let mut v = vec![ty];
            v.extend(m.types());
            v
        };
        finish(&m, ai)?;
        let f: ExecFn = match t.as_slice() {
            [Ty::U32, Ty::U32] => h3::<Dp4a<false, false>>,
            [Ty::U32, Ty::S32] => h3::<Dp4a<false, true>>,
            [Ty::S32, Ty::U32] => h3::<Dp4a<true, false>>,
            [Ty::S32, Ty::S32] => h3::<Dp4a<true, true>>,
            _ => return unsupported(ai, "types"),
        };
        let b32 = [Ty::B32, Ty::B32, Ty::B32];
        self.emit_n(frame, ai, f, Class::Int, Ty::B32, &b32)
    }

    /// `dp2a.{lo,hi}`: two-way halfword-by-byte dot product with accumulate.
    fn lower_dp2a(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>, ty: Ty) -> Res<()> {
        let hi = match m.one_of(&["lo", "hi"]) {
            Some("hi") => true,
            Some(_) => false,
            None => return invalid(ai.line, "dp2a needs .lo or .hi"),
        };
        let t = {
            let mut v = vec![ty];
            v.extend(m.types());
            v
        };
        finish(&m, ai)?;
        let f: ExecFn = match (t.as_slice(), hi) {
            ([Ty::U32, Ty::U32], false) => h3::<Dp2a<false, false, false>>,
            ([Ty::U32, Ty::S32], false) => h3::<Dp2a<false, true, false>>,
            ([Ty::S32, Ty::U32], false) => h3::<Dp2a<true, false, false>>,
            ([Ty::S32, Ty::S32], false) => h3::<Dp2a<true, true, false>>,
            ([Ty::U32, Ty::U32], true) => h3::<Dp2a<false, false, true>>,
            ([Ty::U32, Ty::S32], true) => h3::<Dp2a<false, true, true>>,
            ([Ty::S32, Ty::U32], true) => h3::<Dp2a<true, false, true>>,
            ([Ty::S32, Ty::S32], true) => h3::<Dp2a<true, true, true>>,
            _ => return unsupported(ai, "types"),
        };
        let b32 = [Ty::B32, Ty::B32, Ty::B32];
        self.emit_n(frame, ai, f, Class::Int, Ty::B32, &b32)
    }

    /// `min`/`max` on packed halves: `.s16x2` (with `.relu`) or `.u16x2`.
    fn lower_min_max_16x2(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>) -> Res<()> {
        let signed = m.has("s16x2");
        m.has("u16x2");
        let relu = m.has("relu");
        finish(&m, ai)?;
        let f: ExecFn = match (signed, ai.op == "max", relu) {
            (true, false, false) => h2::<MinMax16x2<true, false, false>>,
            (true, false, true) => h2::<MinMax16x2<true, false, true>>,
            (true, true, false) => h2::<MinMax16x2<true, true, false>>,
            (true, true, true) => h2::<MinMax16x2<true, true, true>>,
            (false, false, false) => h2::<MinMax16x2<false, false, false>>,
            (false, true, false) => h2::<MinMax16x2<false, true, false>>,
            (false, _, true) => return invalid(ai.line, ".relu needs .s16x2"),
        };
        self.emit_n(frame, ai, f, Class::Int, Ty::B32, &[Ty::B32, Ty::B32])
    }

    /// `add.cc`, `addc`, `sub.cc`, `subc` (`.u32 .s32 .u64 .s64`), `mad{.lo,.hi}.cc` and
    /// `madc{.lo,.hi}{.cc}` (same types).
    fn lower_carry(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>) -> Res<()> {
        use crate::exec::misc::cc;
        let cc_out = m.has("cc");
        let mad = ai.op == "mad" || ai.op == "madc";
        let hi = if mad {
            match m.one_of(&["lo", "hi"]) {
                Some("hi") => true,
                Some(_) => false,
                None => return invalid(ai.line, format!("`{}` needs .lo or .hi", ai.opcode())),
            }
        } else {
            false
        };
        let ty = one_type(&mut m, ai)?;
        finish(&m, ai)?;
        if !matches!(ty, Ty::U32 | Ty::S32 | Ty::U64 | Ty::S64) {
            return unsupported(
                ai,
                "type (extended-precision arithmetic takes .u32 .s32 .u64 .s64)",
            );
        }
        let sub = ai.op.starts_with("sub");
        let cin = ai.op.ends_with('c');
        let carry = self.carry_pred();
        nargs(ai, if mad { 4 } else { 3 })?;
        let d = self.dst(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], ty)?;
        let b = self.src(frame, ai, &ai.args[2], ty)?;
        let c = if mad {
            self.src(frame, ai, &ai.args[3], ty)?
        } else {
            NONE
        };
        let flag = |on: bool, f: u32| if on { f } else { 0 };
        let aux = flag(sub, cc::SUB)
            | flag(cin, cc::CIN)
            | flag(cc_out, cc::COUT)
            | flag(ty.bits() == 64, cc::W64)
            | flag(mad, cc::MAD)
            | flag(hi, cc::HI)
            | flag(ty.is_signed(), cc::SIGNED);
        self.emit(
            I::new(h_addc, Class::Int)
                .r([d, a, b, c])
                .x([carry, NONE, NONE, NONE])
                .aux(aux),
        );
        Ok(())
    }

    /// Hidden predicate register holding the CC.CF carry flag.
    fn carry_pred(&mut self) -> u32 {
        match self.carry {
            Some(p) => p,
            None => {
                let p = self.new_pred();
                self.carry = Some(p);
                p
            }
        }
    }
}
