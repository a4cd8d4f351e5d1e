//! Lowering of floating-point arithmetic (f32/f64 with rounding, `.ftz`,
//! `.sat`; f16/bf16 scalar and packed), `setp` / `set` comparisons.

use super::arith::{finish, nargs};
use super::{invalid, unsupported, Frame, KLower, Res, I};
use crate::exec::float::*;
use crate::exec::half::{h_half, hop};
use crate::exec::misc::*;
use crate::exec::program::{h1, h2, h3, Class, ExecFn, NONE};
use crate::exec::softfloat::{fa, h_farith};
use crate::parse::ast::{AstInst, Operand};
use crate::types::{Mods, Ty};

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

fn rnd_mod(m: &mut Mods<'_>) -> Option<u8> {
    m.one_of(&["rn", "rz", "rm", "rp"]).map(|r| match r {
        "rn" => 0,
        "rz" => 1,
        "rm" => 2,
        _ => 3,
    })
}

pub(super) fn is_half(t: Ty) -> bool {
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

/// Rejects the `.rnd` / `.ftz` / `.sat` / `.approx` / `.full` combinations the PTX ISA does
/// not define for f32/f64 `add sub mul fma mad div sqrt rcp` (other opcodes are not checked
/// here).
#[allow(clippy::too_many_arguments)]
fn check_float_mods(
    ai: &AstInst,
    op: &str,
    ty: Ty,
    rnd: Option<u8>,
    ftz: bool,
    sat: bool,
    approx: bool,
    full: bool,
) -> Res<()> {
    let approx_or_full = approx || full;
    let f64t = ty == Ty::F64;
    let bad = |what: &str| -> Res<()> {
        invalid(
            ai.line,
            format!("`{}`: {what} is not defined by the PTX ISA", ai.opcode()),
        )
    };
    match op {
        "add" | "sub" | "mul" | "fma" | "mad" => {
            if f64t && (ftz || sat) {
                return bad(".ftz/.sat on .f64");
            }
            if approx_or_full {
                return bad(".approx/.full");
            }
            if op == "fma" && rnd.is_none() {
                return bad("fma without a rounding modifier");
            }
            if op == "mad" && f64t && rnd.is_none() {
                return bad("mad.f64 without a rounding modifier");
            }
        }
        "div" | "sqrt" | "rcp" => {
            if sat {
                return bad(".sat");
            }
            if rnd.is_some() == approx_or_full || (full && op != "div") {
                return bad("a form without exactly one of .approx, .full (div) or .rnd");
            }
            let approx_f64_ok = op == "rcp" && ftz && rnd.is_none();
            if f64t && (ftz || approx_or_full) && !approx_f64_ok {
                return bad(".approx/.full/.ftz on .f64");
            }
        }
        _ => {}
    }
    Ok(())
}

/// Soft-float operation code, source count and class of a directed-rounding
/// (`.rz`/`.rm`/`.rp`) f32/f64 instruction.
fn directed_farith_op(ai: &AstInst, class: Class) -> Res<(u32, usize, Class)> {
    Ok(match ai.op.as_str() {
        "add" => (fa::ADD, 2, class),
        "sub" => (fa::SUB, 2, class),
        "mul" => (fa::MUL, 2, class),
        "fma" | "mad" => (fa::FMA, 3, class),
        "div" => (fa::DIV, 2, Class::Sfu),
        "sqrt" => (fa::SQRT, 1, Class::Sfu),
        "rcp" => (fa::RCP, 1, Class::Sfu),
        _ => return unsupported(ai, "rounding modifier on this instruction"),
    })
}

/// Typed handler (`None` for an unsupported type/modifier combination), source types and
/// class of an f32/f64 instruction without directed rounding.
fn float_pick(
    ai: &AstInst,
    m: &mut Mods<'_>,
    ty: Ty,
    ftz: bool,
    sat: bool,
    class: Class,
) -> Res<(Option<ExecFn>, Vec<Ty>, Class)> {
    let p = Ty::Pred;
    let op = ai.op.as_str();
    Ok(match op {
        "add" => (flt_pick!(h2, FAdd, ty, ftz, sat), vec![p, p], class),
        "sub" => (flt_pick!(h2, FSub, ty, ftz, sat), vec![p, p], class),
        "mul" => (flt_pick!(h2, FMul, ty, ftz, sat), vec![p, p], class),
        "fma" | "mad" => (flt_pick!(h3, FFma, ty, ftz, sat), vec![p, p, p], class),
        "div" => (flt_pick!(h2, FDiv, ty, ftz, sat), vec![p, p], Class::Sfu),
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
        "sqrt" => (flt_pick!(h1, FSqrt, ty, ftz, false), vec![p], Class::Sfu),
        "rcp" => (flt_pick!(h1, FRcp, ty, ftz, false), vec![p], Class::Sfu),
        "rsqrt" => (flt_pick!(h1, FRsqrt, ty, ftz, false), vec![p], Class::Sfu),
        "sin" => (flt_pick!(h1, FSin, ty, ftz, false), vec![p], Class::Sfu),
        "cos" => (flt_pick!(h1, FCos, ty, ftz, false), vec![p], Class::Sfu),
        "lg2" => (flt_pick!(h1, FLg2, ty, ftz, false), vec![p], Class::Sfu),
        "ex2" => (flt_pick!(h1, FEx2, ty, ftz, false), vec![p], Class::Sfu),
        "tanh" => (flt_pick!(h1, FTanh, ty, ftz, false), vec![p], Class::Sfu),
        _ => return unsupported(ai, "floating-point form"),
    })
}

impl KLower<'_> {
    /// Lower an f32/f64 instruction: directed rounding goes to the soft-float handler,
    /// everything else to the typed handlers.
    pub(super) fn lower_float(
        &mut self,
        frame: &mut Frame,
        ai: &AstInst,
        mut m: Mods<'_>,
        ty: Ty,
    ) -> Res<()> {
        let op = ai.op.as_str();
        let ftz = m.has("ftz");
        let sat = m.has("sat");
        let rnd = rnd_mod(&mut m);
        let approx = m.has("approx");
        let full = m.has("full");
        let directed = matches!(rnd, Some(1..=3));
        check_float_mods(ai, op, ty, rnd, ftz, sat, approx, full)?;
        let r = rnd.unwrap_or(0);
        let class = fclass(ty);
        if directed {
            let (code, n, class) = directed_farith_op(ai, class)?;
            finish(&m, ai)?;
            let flag = |on: bool, f: u32| if on { f } else { 0 };
            let aux = code
                | (r as u32) << fa::RND_SHIFT
                | flag(ftz, fa::FTZ)
                | flag(sat, fa::SAT)
                | flag(ty == Ty::F64, fa::F64);
            return self.emit_farith(frame, ai, aux, class, ty, n);
        }
        if op == "testp" {
            return self.lower_testp(frame, ai, m, ty, class);
        }
        let (f, srcs, class) = float_pick(ai, &mut m, ty, ftz, sat, class)?;
        finish(&m, ai)?;
        let Some(f) = f else {
            return unsupported(ai, "type/modifier combination");
        };
        self.emit_n(frame, ai, f, class, ty, &srcs)
    }

    /// `testp.class`: test a float for a class (finite, NaN, subnormal...).
    fn lower_testp(
        &mut self,
        frame: &mut Frame,
        ai: &AstInst,
        mut m: Mods<'_>,
        ty: Ty,
        class: Class,
    ) -> Res<()> {
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
        Ok(())
    }

    /// Emits [`h_farith`] with `n` sources of type `ty`.
    fn emit_farith(
        &mut self,
        frame: &Frame,
        ai: &AstInst,
        aux: u32,
        class: Class,
        ty: Ty,
        n: usize,
    ) -> Res<()> {
        nargs(ai, n + 1)?;
        let d = self.dst(frame, ai, &ai.args[0])?;
        let mut r = [d, NONE, NONE, NONE];
        for k in 0..n {
            r[k + 1] = self.src(frame, ai, &ai.args[k + 1], ty)?;
        }
        self.emit(I::new(h_farith, class).r(r).aux(aux));
        Ok(())
    }

    pub(super) fn lower_half(
        &mut self,
        frame: &mut Frame,
        ai: &AstInst,
        mut m: Mods<'_>,
        ty: Ty,
    ) -> Res<()> {
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
        let rnd = rnd_mod(&mut m);
        if matches!(rnd, Some(1..=3)) {
            return unsupported(ai, "directed rounding on half precision");
        }
        let bf = aux & hop::BF16 != 0;
        let fused = matches!(ai.op.as_str(), "fma" | "mad");
        let arith = matches!(ai.op.as_str(), "add" | "sub" | "mul") || fused;
        let bad = if bf && arith && aux & (hop::FTZ | hop::SAT) != 0 {
            Some(".ftz/.sat on bf16")
        } else if aux & hop::RELU != 0 && !fused && arith {
            Some(".relu outside fma")
        } else if aux & hop::RELU != 0 && aux & hop::SAT != 0 {
            Some(".relu with .sat")
        } else if fused && rnd.is_none() {
            Some("half-precision fma without .rn")
        } else {
            None
        };
        if let Some(what) = bad {
            return invalid(
                ai.line,
                format!("`{}`: {what} is not defined by the PTX ISA", ai.opcode()),
            );
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
            "ex2" if m.has("approx") => (hop::EX2, 1),
            "tanh" if m.has("approx") => (hop::TANH, 1),
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

    pub(super) fn lower_setp(
        &mut self,
        frame: &mut Frame,
        ai: &AstInst,
        mut m: Mods<'_>,
    ) -> Res<()> {
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
        let half_src = is_half(ty);
        let half_dst = matches!(
            dty,
            Ty::F16 | Ty::Bf16 | Ty::F16x2 | Ty::Bf16x2 | Ty::U16 | Ty::S16
        );
        if (half_src && !(setp && matches!(ty, Ty::F16 | Ty::Bf16))) || (!setp && half_dst) {
            return self.lower_hcmp(frame, ai, setp, dty, ty, op, comb);
        }
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

impl KLower<'_> {
    /// `setp` / `set` with half-precision operands or destination.
    #[allow(clippy::too_many_arguments)]
    fn lower_hcmp(
        &mut self,
        frame: &mut Frame,
        ai: &AstInst,
        setp: bool,
        dty: Ty,
        ty: Ty,
        op: u8,
        comb: u32,
    ) -> Res<()> {
        use crate::exec::half::{h_hcmp, hc};
        if !is_half(ty) {
            return unsupported(
                ai,
                "set with a half-precision destination and non-half source",
            );
        }
        nargs(ai, 3 + (comb != 0) as usize)?;
        let mut aux = op as u32 | comb << hc::COMB_SHIFT;
        if matches!(ty, Ty::Bf16 | Ty::Bf16x2) {
            aux |= hc::BF16;
        }
        if matches!(ty, Ty::F16x2 | Ty::Bf16x2) {
            aux |= hc::X2;
        }
        let (d, q) = if setp {
            aux |= hc::SETP;
            match &ai.args[0] {
                Operand::Pair(p, q) => (
                    self.pred_dst(frame, ai, &Operand::Name(p.clone()))?,
                    self.pred_dst(frame, ai, &Operand::Name(q.clone()))?,
                ),
                o => (self.pred_dst(frame, ai, o)?, NONE),
            }
        } else {
            let dk = match dty {
                Ty::U32 | Ty::S32 | Ty::B32 => 0,
                Ty::U16 | Ty::S16 | Ty::B16 => 1,
                Ty::F16 | Ty::F16x2 => 2,
                Ty::Bf16 | Ty::Bf16x2 => 3,
                _ => return unsupported(ai, "set destination type"),
            };
            aux |= dk << hc::DK_SHIFT;
            (self.dst(frame, ai, &ai.args[0])?, NONE)
        };
        let a = self.src(frame, ai, &ai.args[1], ty)?;
        let b = self.src(frame, ai, &ai.args[2], ty)?;
        let c = if comb != 0 {
            self.pred_src(frame, ai, &ai.args[3])?
        } else {
            NONE
        };
        self.emit(
            I::new(h_hcmp, Class::Fp32)
                .r([d, a, b, NONE])
                .x([q, c, NONE, NONE])
                .aux(aux),
        );
        Ok(())
    }
}
