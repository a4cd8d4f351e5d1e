//! Lowering of arithmetic, logic, comparison and selection instructions.

use super::{invalid, unsupported, Frame, KLower, Res, I};
use crate::exec::cvt::{h_half, hop};
use crate::exec::float::*;
use crate::exec::int::*;
use crate::exec::misc::*;
use crate::exec::program::{h1, h2, h3, Class, ExecFn, NONE};
use crate::parse::ast::{AstInst, Operand};
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

macro_rules! flt_pick {
    ($h:ident, $op:ty, $ty:expr, $ftz:expr, $sat:expr) => {
        match ($ty, $ftz, $sat) {
            (Ty::F32, false, false) => Some($h::<L<f32, $op, false, false>> as ExecFn),
            (Ty::F32, true, false) => Some($h::<L<f32, $op, true, false>> as ExecFn),
            (Ty::F32, false, true) => Some($h::<L<f32, $op, false, true>> as ExecFn),
            (Ty::F32, true, true) => Some($h::<L<f32, $op, true, true>> as ExecFn),
            (Ty::F64, _, false) => Some($h::<L<f64, $op, false, false>> as ExecFn),
            (Ty::F64, _, true) => Some($h::<L<f64, $op, false, true>> as ExecFn),
            _ => None,
        }
    };
}

macro_rules! dir_pick {
    ($h:ident, $op:expr, $ty:expr, $r:expr) => {
        match ($ty, $r) {
            (Ty::F32, 1) => Some($h::<D32<$op, 1>> as ExecFn),
            (Ty::F32, 2) => Some($h::<D32<$op, 2>> as ExecFn),
            (Ty::F32, 3) => Some($h::<D32<$op, 3>> as ExecFn),
            (Ty::F64, 1) => Some($h::<D64<$op, 1>> as ExecFn),
            (Ty::F64, 2) => Some($h::<D64<$op, 2>> as ExecFn),
            (Ty::F64, 3) => Some($h::<D64<$op, 3>> as ExecFn),
            _ => None,
        }
    };
}

macro_rules! cmp_pick {
    ($h:ident, $cmp:ident, $t:ty, $op:expr) => {
        match $op {
            0 => $h::<$cmp<$t, 0>> as ExecFn,
            1 => $h::<$cmp<$t, 1>> as ExecFn,
            2 => $h::<$cmp<$t, 2>> as ExecFn,
            3 => $h::<$cmp<$t, 3>> as ExecFn,
            4 => $h::<$cmp<$t, 4>> as ExecFn,
            5 => $h::<$cmp<$t, 5>> as ExecFn,
            6 => $h::<$cmp<$t, 6>> as ExecFn,
            7 => $h::<$cmp<$t, 7>> as ExecFn,
            8 => $h::<$cmp<$t, 8>> as ExecFn,
            9 => $h::<$cmp<$t, 9>> as ExecFn,
            10 => $h::<$cmp<$t, 10>> as ExecFn,
            11 => $h::<$cmp<$t, 11>> as ExecFn,
            12 => $h::<$cmp<$t, 12>> as ExecFn,
            _ => $h::<$cmp<$t, 13>> as ExecFn,
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

fn rnd_mod(m: &mut Mods<'_>) -> Option<u8> {
    m.one_of(&["rn", "rz", "rm", "rp"]).map(|r| match r {
        "rn" => 0,
        "rz" => 1,
        "rm" => 2,
        _ => 3,
    })
}

fn is_half(t: Ty) -> bool {
    matches!(t, Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2)
}

fn fclass(t: Ty) -> Class {
    if t == Ty::F64 {
        Class::Fp64
    } else {
        Class::Fp32
    }
}

/// Comparison operator code for `setp`/`set` (see [`crate::exec::misc::FCmp`]).
fn cmp_code(m: &mut Mods<'_>, ty: Ty) -> Option<u8> {
    let c = m.one_of(&[
        "eq", "ne", "lt", "le", "gt", "ge", "lo", "ls", "hi", "hs", "equ", "neu", "ltu", "leu",
        "gtu", "geu", "num", "nan",
    ])?;
    Some(match c {
        "eq" => 0,
        "ne" => 1,
        "lt" | "lo" => 2,
        "le" | "ls" => 3,
        "gt" | "hi" => 4,
        "ge" | "hs" => 5,
        "equ" => 6,
        "neu" => 7,
        "ltu" => 8,
        "leu" => 9,
        "gtu" => 10,
        "geu" => 11,
        "num" => 12,
        _ => {
            let _ = ty;
            13
        }
    })
}

fn cmp_fn(setp: bool, ty: Ty, op: u8, unsigned_form: bool) -> Option<ExecFn> {
    let ty = if unsigned_form {
        match ty {
            Ty::S16 => Ty::U16,
            Ty::S32 => Ty::U32,
            Ty::S64 => Ty::U64,
            t => t,
        }
    } else {
        ty
    };
    if !ty.is_float() && op > 5 {
        return None;
    }
    Some(match (setp, ty) {
        (true, Ty::U16 | Ty::B16) => cmp_pick!(h_setp, ICmp, u16, op),
        (true, Ty::S16) => cmp_pick!(h_setp, ICmp, i16, op),
        (true, Ty::U32 | Ty::B32) => cmp_pick!(h_setp, ICmp, u32, op),
        (true, Ty::S32) => cmp_pick!(h_setp, ICmp, i32, op),
        (true, Ty::U64 | Ty::B64) => cmp_pick!(h_setp, ICmp, u64, op),
        (true, Ty::S64) => cmp_pick!(h_setp, ICmp, i64, op),
        (true, Ty::F32) => cmp_pick!(h_setp, FCmp, f32, op),
        (true, Ty::F64) => cmp_pick!(h_setp, FCmp, f64, op),
        (true, Ty::F16) => cmp_pick!(h_setp, HCmp, F16Tag, op),
        (true, Ty::Bf16) => cmp_pick!(h_setp, HCmp, Bf16Tag, op),
        (false, Ty::U16 | Ty::B16) => cmp_pick!(h_set, ICmp, u16, op),
        (false, Ty::S16) => cmp_pick!(h_set, ICmp, i16, op),
        (false, Ty::U32 | Ty::B32) => cmp_pick!(h_set, ICmp, u32, op),
        (false, Ty::S32) => cmp_pick!(h_set, ICmp, i32, op),
        (false, Ty::U64 | Ty::B64) => cmp_pick!(h_set, ICmp, u64, op),
        (false, Ty::S64) => cmp_pick!(h_set, ICmp, i64, op),
        (false, Ty::F32) => cmp_pick!(h_set, FCmp, f32, op),
        (false, Ty::F64) => cmp_pick!(h_set, FCmp, f64, op),
        _ => return None,
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
            | "dp4a" | "addc" | "subc" | "madc" | "mul24" | "mad24" | "setp" | "set" | "selp"
            | "slct" => self.lower_arith(frame, ai),
            "mov" | "cvt" | "cvta" | "ld" | "ldu" | "st" | "atom" | "red" | "prefetch"
            | "prefetchu" | "isspacep" | "cp" => self.lower_data(frame, ai),
            _ => self.lower_control(frame, ai),
        }
    }

    fn lower_arith(&mut self, frame: &mut Frame, ai: &AstInst) -> Res<()> {
        let mut m = Mods::new(&ai.mods);
        match ai.op.as_str() {
            "setp" | "set" => return self.lower_setp(frame, ai, m),
            "selp" => {
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
                return Ok(());
            }
            "slct" => {
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
                return Ok(());
            }
            "and" | "or" | "xor" | "not" | "cnot" if ai.mods.iter().any(|x| x == "pred") => {
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
                return Ok(());
            }
            "addc" | "subc" | "madc" => return self.lower_carry(frame, ai, m),
            "add" | "sub" | "mad" if ai.mods.iter().any(|x| x == "cc") => {
                return self.lower_carry(frame, ai, m)
            }
            _ => {}
        }
        let ty = one_type(&mut m, ai)?;
        if is_half(ty) {
            return self.lower_half(frame, ai, m, ty);
        }
        if ty.is_float() {
            return self.lower_float(frame, ai, m, ty);
        }
        self.lower_int(frame, ai, m, ty)
    }

    fn emit_n(
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

    fn lower_int(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>, ty: Ty) -> Res<()> {
        let p = Ty::Pred; // "same as instruction type"
        let u32t = Ty::U32;
        let op = ai.op.as_str();
        let (f, srcs): (Option<ExecFn>, Vec<Ty>) = match op {
            "add" | "sub" => {
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
            "mul" | "mad" => {
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
            "mul24" | "mad24" => {
                if !m.has("lo") {
                    return unsupported(ai, "only .lo form of mul24/mad24");
                }
                let three = op == "mad24";
                let f = match (ty, three) {
                    (Ty::U32, false) => Some(h2::<MulLo<u32>> as ExecFn),
                    (Ty::S32, false) => Some(h2::<MulLo<i32>> as ExecFn),
                    (Ty::U32, true) => Some(h3::<MadLo<u32>> as ExecFn),
                    (Ty::S32, true) => Some(h3::<MadLo<i32>> as ExecFn),
                    _ => None,
                };
                (f, if three { vec![p, p, p] } else { vec![p, p] })
            }
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
            "bfind" => {
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
                return Ok(());
            }
            "bfi" => {
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
                let c = self.src(frame, ai, &ai.args[3], u32t)?;
                let e = self.src(frame, ai, &ai.args[4], u32t)?;
                self.emit(
                    I::new(f, Class::Int)
                        .r([d, a, b, c])
                        .x([e, NONE, NONE, NONE]),
                );
                return Ok(());
            }
            "prmt" => {
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
                return Ok(());
            }
            "shf" => {
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
                let c = self.src(frame, ai, &ai.args[3], u32t)?;
                self.emit(I::new(h_shf, Class::Int).r([d, a, b, c]).aux(left | wrap));
                return Ok(());
            }
            "dp4a" => {
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
                return self.emit_n(
                    frame,
                    ai,
                    f,
                    Class::Int,
                    Ty::B32,
                    &[Ty::B32, Ty::B32, Ty::B32],
                );
            }
            _ => return unsupported(ai, "integer form"),
        };
        finish(&m, ai)?;
        let Some(f) = f else {
            return unsupported(ai, format!("type .{ty:?}").to_lowercase());
        };
        self.emit_n(frame, ai, f, Class::Int, ty, &srcs)
    }

    fn lower_float(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>, ty: Ty) -> Res<()> {
        let op = ai.op.as_str();
        let ftz = m.has("ftz");
        let sat = m.has("sat");
        let rnd = rnd_mod(&mut m);
        let approx = m.has("approx");
        let full = m.has("full");
        let p = Ty::Pred;
        let directed = matches!(rnd, Some(1..=3));
        if directed
            && (ftz && ty == Ty::F32 || sat)
            && matches!(
                op,
                "add" | "sub" | "mul" | "fma" | "mad" | "div" | "sqrt" | "rcp"
            )
        {
            return unsupported(ai, "directed rounding combined with .ftz/.sat");
        }
        let r = rnd.unwrap_or(0);
        let class = fclass(ty);
        let (f, srcs, class): (Option<ExecFn>, Vec<Ty>, Class) = match op {
            "add" if directed => (dir_pick!(h2, 0, ty, r), vec![p, p], class),
            "sub" if directed => (dir_pick!(h2, 1, ty, r), vec![p, p], class),
            "mul" if directed => (dir_pick!(h2, 2, ty, r), vec![p, p], class),
            "fma" | "mad" if directed => (dir_pick!(h3, 4, ty, r), vec![p, p, p], class),
            "add" => (flt_pick!(h2, FAdd, ty, ftz, sat), vec![p, p], class),
            "sub" => (flt_pick!(h2, FSub, ty, ftz, sat), vec![p, p], class),
            "mul" => (flt_pick!(h2, FMul, ty, ftz, sat), vec![p, p], class),
            "fma" | "mad" => (flt_pick!(h3, FFma, ty, ftz, sat), vec![p, p, p], class),
            "div" => {
                let f = if directed {
                    dir_pick!(h2, 3, ty, r)
                } else if approx && ty == Ty::F32 {
                    flt_pick!(h2, FDiv, ty, ftz, sat)
                } else if full || rnd.is_some() {
                    flt_pick!(h2, FDiv, ty, ftz, sat)
                } else {
                    return invalid(
                        ai.line,
                        "div on floats needs .approx, .full or a rounding mode",
                    );
                };
                (f, vec![p, p], Class::Sfu)
            }
            "min" | "max" => {
                let nan = m.has("NaN");
                if m.has("xorsign") {
                    return unsupported(ai, ".xorsign.abs");
                }
                let f = match (op, nan) {
                    ("min", false) => flt_pick!(h2, FMin, ty, ftz, sat),
                    ("max", false) => flt_pick!(h2, FMax, ty, ftz, sat),
                    ("min", true) => flt_pick!(h2, FMinNan, ty, ftz, sat),
                    _ => flt_pick!(h2, FMaxNan, ty, ftz, sat),
                };
                (f, vec![p, p], class)
            }
            "abs" => (flt_pick!(h1, FAbs, ty, ftz, false), vec![p], class),
            "neg" => (flt_pick!(h1, FNeg, ty, ftz, false), vec![p], class),
            "copysign" => (
                flt_pick!(h2, FCopysign, ty, false, false),
                vec![p, p],
                class,
            ),
            "sqrt" => {
                let f = if directed {
                    dir_pick!(h1, 5, ty, r)
                } else {
                    flt_pick!(h1, FSqrt, ty, ftz, false)
                };
                (f, vec![p], Class::Sfu)
            }
            "rcp" => {
                let f = if directed {
                    dir_pick!(h1, 6, ty, r)
                } else {
                    flt_pick!(h1, FRcp, ty, ftz, false)
                };
                (f, vec![p], Class::Sfu)
            }
            "rsqrt" => (flt_pick!(h1, FRsqrt, ty, ftz, false), vec![p], Class::Sfu),
            "sin" => (flt_pick!(h1, FSin, ty, ftz, false), vec![p], Class::Sfu),
            "cos" => (flt_pick!(h1, FCos, ty, ftz, false), vec![p], Class::Sfu),
            "lg2" => (flt_pick!(h1, FLg2, ty, ftz, false), vec![p], Class::Sfu),
            "ex2" => (flt_pick!(h1, FEx2, ty, ftz, false), vec![p], Class::Sfu),
            "tanh" => (flt_pick!(h1, FTanh, ty, ftz, false), vec![p], Class::Sfu),
            "testp" => {
                let c = match m.one_of(&[
                    "finite",
                    "infinite",
                    "number",
                    "notanumber",
                    "normal",
                    "subnormal",
                ]) {
                    Some("finite") => 0,
                    Some("infinite") => 1,
                    Some("number") => 2,
                    Some("notanumber") => 3,
                    Some("normal") => 4,
                    Some(_) => 5,
                    None => return invalid(ai.line, "testp needs a class"),
                };
                finish(&m, ai)?;
                nargs(ai, 2)?;
                let d = self.pred_dst(frame, ai, &ai.args[0])?;
                let a = self.src(frame, ai, &ai.args[1], ty)?;
                let aux = c | if ty == Ty::F64 { 0x100 } else { 0 };
                self.emit(I::new(h_testp, class).r([d, a, NONE, NONE]).aux(aux));
                return Ok(());
            }
            _ => return unsupported(ai, "floating-point form"),
        };
        finish(&m, ai)?;
        let Some(f) = f else {
            return unsupported(ai, "type/modifier combination");
        };
        self.emit_n(frame, ai, f, class, ty, &srcs)
    }

    fn lower_half(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>, ty: Ty) -> Res<()> {
        let mut aux = 0u32;
        if matches!(ty, Ty::Bf16 | Ty::Bf16x2) {
            aux |= hop::BF16;
        }
        if matches!(ty, Ty::F16x2 | Ty::Bf16x2) {
            aux |= hop::X2;
        }
        if m.has("sat") {
            aux |= hop::SAT;
        }
        if m.has("ftz") {
            aux |= hop::FTZ;
        }
        if m.has("relu") {
            aux |= hop::RELU;
        }
        if let Some(r) = rnd_mod(&mut m) {
            if r != 0 {
                return unsupported(ai, "directed rounding on half precision");
            }
        }
        let (op, n) = match ai.op.as_str() {
            "add" => (hop::ADD, 2),
            "sub" => (hop::SUB, 2),
            "mul" => (hop::MUL, 2),
            "fma" | "mad" => (hop::FMA, 3),
            "min" => (hop::MIN, 2),
            "max" => (hop::MAX, 2),
            "neg" => (hop::NEG, 1),
            "abs" => (hop::ABS, 1),
            _ => return unsupported(ai, "half-precision form"),
        };
        finish(&m, ai)?;
        nargs(ai, n + 1)?;
        let d = self.dst(frame, ai, &ai.args[0])?;
        let mut r = [d, NONE, NONE, NONE];
        for k in 0..n {
            r[k + 1] = self.src(frame, ai, &ai.args[k + 1], ty)?;
        }
        self.emit(I::new(h_half, Class::Fp32).r(r).aux(op | aux));
        Ok(())
    }

    fn lower_setp(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>) -> Res<()> {
        let setp = ai.op == "setp";
        let tys = m.types();
        let (dty, ty) = match (setp, tys.as_slice()) {
            (true, [t]) => (Ty::Pred, *t),
            (false, [d, s]) => (*d, *s),
            _ => return invalid(ai.line, format!("bad type modifiers on `{}`", ai.opcode())),
        };
        let unsigned_form = ai
            .mods
            .iter()
            .any(|x| matches!(x.as_str(), "lo" | "ls" | "hi" | "hs"));
        let Some(op) = cmp_code(&mut m, ty) else {
            return invalid(ai.line, "missing comparison operator");
        };
        let comb = match m.one_of(&["and", "or", "xor"]) {
            None => 0,
            Some("and") => 1,
            Some("or") => 2,
            Some(_) => 3,
        };
        m.has("ftz");
        finish(&m, ai)?;
        let Some(f) = cmp_fn(setp, ty, op, unsigned_form) else {
            return unsupported(ai, "comparison type");
        };
        let want = 3 + (comb != 0) as usize;
        nargs(ai, want)?;
        let (d, q) = if setp {
            match &ai.args[0] {
                Operand::Pair(p, q) => (
                    self.pred_dst(frame, ai, &Operand::Name(p.clone()))?,
                    self.pred_dst(frame, ai, &Operand::Name(q.clone()))?,
                ),
                o => (self.pred_dst(frame, ai, o)?, NONE),
            }
        } else {
            (self.dst(frame, ai, &ai.args[0])?, NONE)
        };
        let a = self.src(frame, ai, &ai.args[1], ty)?;
        let b = self.src(frame, ai, &ai.args[2], ty)?;
        let c = if comb != 0 {
            self.pred_src(frame, ai, &ai.args[3])?
        } else {
            NONE
        };
        let mut aux = comb;
        if !setp {
            if dty == Ty::F32 {
                aux |= 0x100;
            } else if !matches!(dty, Ty::U32 | Ty::S32 | Ty::B32) {
                return unsupported(ai, "set destination type");
            }
        }
        let class = if ty.is_float() {
            fclass(ty)
        } else {
            Class::Int
        };
        self.emit(
            I::new(f, class)
                .r([d, a, b, NONE])
                .x([q, c, NONE, NONE])
                .aux(aux),
        );
        Ok(())
    }

    fn lower_carry(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>) -> Res<()> {
        let cc_out = m.has("cc");
        let ty = one_type(&mut m, ai)?;
        finish(&m, ai)?;
        if ai.op == "mad" || ai.op == "madc" {
            return unsupported(ai, "extended-precision mad");
        }
        let sub = ai.op.starts_with("sub");
        let cin = ai.op.ends_with('c');
        let is64 = ty.bits() == 64;
        if !matches!(ty.bits(), 32 | 64) || ty.is_float() {
            return unsupported(ai, "type");
        }
        let carry = self.carry_pred();
        nargs(ai, 3)?;
        let d = self.dst(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], ty)?;
        let b = self.src(frame, ai, &ai.args[2], ty)?;
        let aux = sub as u32 | (cin as u32) << 1 | (cc_out as u32) << 2 | (is64 as u32) << 3;
        self.emit(
            I::new(h_addc, Class::Int)
                .r([d, a, b, NONE])
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

/// Tag types selecting f16 / bf16 decoding in [`HCmp`].
pub(crate) struct F16Tag;
/// See [`F16Tag`].
pub(crate) struct Bf16Tag;

/// Half-precision comparison (decoded to f64, then compared like [`FCmp`]).
pub(crate) struct HCmp<T, const OP: u8>(std::marker::PhantomData<T>);
trait HalfTag {
    const BF: bool;
}
impl HalfTag for F16Tag {
    const BF: bool = false;
}
impl HalfTag for Bf16Tag {
    const BF: bool = true;
}
impl<T: HalfTag, const OP: u8> Cmp for HCmp<T, OP> {
    fn f(a: u64, b: u64) -> bool {
        let dec = |v: u64| {
            if T::BF {
                crate::exec::fround::bf16_to_f32(v as u16) as f64
            } else {
                crate::exec::fround::f16_to_f64(v as u16)
            }
        };
        <FCmp<f64, OP> as Cmp>::f(dec(a).to_bits(), dec(b).to_bits())
    }
}
