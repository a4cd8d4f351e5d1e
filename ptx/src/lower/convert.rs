//! Lowering of `cvt`: fast specialised handlers for the common conversions,
//! the general (per-lane decoded) handler for everything else.

use super::arith::{finish, nargs};
use super::{invalid, unsupported, Frame, KLower, Res, I};
use crate::exec::cvt::{h_cvt, h_cvt_pack2, CvtInt, CvtSpec, HCvt, F2F, F2I, I2F};
use crate::exec::fround::Rnd;
use crate::exec::program::{h1, Class, ExecFn, NONE};
use crate::parse::ast::AstInst;
use crate::types::{Mods, Ty};

macro_rules! cvt_int_pick {
    ($d:ty, $s:expr) => {
        match $s {
            Ty::U8 | Ty::B8 => h1::<CvtInt<$d, u8>> as ExecFn,
            Ty::S8 => h1::<CvtInt<$d, i8>> as ExecFn,
            Ty::U16 | Ty::B16 => h1::<CvtInt<$d, u16>> as ExecFn,
            Ty::S16 => h1::<CvtInt<$d, i16>> as ExecFn,
            Ty::U32 | Ty::B32 => h1::<CvtInt<$d, u32>> as ExecFn,
            Ty::S32 => h1::<CvtInt<$d, i32>> as ExecFn,
            Ty::S64 => h1::<CvtInt<$d, i64>> as ExecFn,
            _ => h1::<CvtInt<$d, u64>> as ExecFn,
        }
    };
}

macro_rules! i2f_pick {
    ($s:expr, $f64:expr) => {
        match $s {
            Ty::U8 | Ty::B8 => h1::<I2F<u8, $f64>> as ExecFn,
            Ty::S8 => h1::<I2F<i8, $f64>> as ExecFn,
            Ty::U16 | Ty::B16 => h1::<I2F<u16, $f64>> as ExecFn,
            Ty::S16 => h1::<I2F<i16, $f64>> as ExecFn,
            Ty::U32 | Ty::B32 => h1::<I2F<u32, $f64>> as ExecFn,
            Ty::S32 => h1::<I2F<i32, $f64>> as ExecFn,
            Ty::S64 => h1::<I2F<i64, $f64>> as ExecFn,
            _ => h1::<I2F<u64, $f64>> as ExecFn,
        }
    };
}

macro_rules! f2i_pick {
    ($d:expr, $f64:expr, $r:expr) => {
        match $d {
            Ty::U8 | Ty::B8 => h1::<F2I<u8, $f64, $r>> as ExecFn,
            Ty::S8 => h1::<F2I<i8, $f64, $r>> as ExecFn,
            Ty::U16 | Ty::B16 => h1::<F2I<u16, $f64, $r>> as ExecFn,
            Ty::S16 => h1::<F2I<i16, $f64, $r>> as ExecFn,
            Ty::U32 | Ty::B32 => h1::<F2I<u32, $f64, $r>> as ExecFn,
            Ty::S32 => h1::<F2I<i32, $f64, $r>> as ExecFn,
            Ty::S64 => h1::<F2I<i64, $f64, $r>> as ExecFn,
            _ => h1::<F2I<u64, $f64, $r>> as ExecFn,
        }
    };
}

/// Specialised handlers for the common conversions (the general `h_cvt` decodes its
/// parameters per lane).
fn fast_cvt(
    dst: Ty,
    src: Ty,
    rnd: Option<Rnd>,
    int_rnd: bool,
    ftz: bool,
    sat: bool,
) -> Option<ExecFn> {
    use crate::exec::float::{FId, L};
    let rn = matches!(rnd, None | Some(Rnd::Rn));
    let r = rnd.unwrap_or(Rnd::Rz) as u8;
    Some(match (dst, src) {
        (d, s) if d.is_float() && s.is_int() && rn && !sat && matches!(d, Ty::F32 | Ty::F64) => {
            if d == Ty::F64 {
                i2f_pick!(s, true)
            } else {
                i2f_pick!(s, false)
            }
        }
        (d, Ty::F32 | Ty::F64) if d.is_int() && !ftz && (int_rnd || rnd.is_none()) => {
            match (src == Ty::F64, r) {
                (false, 0) => f2i_pick!(d, false, 0),
                (false, 1) => f2i_pick!(d, false, 1),
                (false, 2) => f2i_pick!(d, false, 2),
                (false, 3) => f2i_pick!(d, false, 3),
                (true, 0) => f2i_pick!(d, true, 0),
                (true, 1) => f2i_pick!(d, true, 1),
                (true, 2) => f2i_pick!(d, true, 2),
                _ => f2i_pick!(d, true, 3),
            }
        }
        (Ty::F64, Ty::F32) if !ftz && !sat && !int_rnd => h1::<F2F<0>>,
        (Ty::F32, Ty::F64) if !ftz && !sat && !int_rnd && rn => h1::<F2F<1>>,
        (Ty::F32, Ty::F32) if int_rnd && !ftz && !sat => match r {
            0 => h1::<F2F<2>>,
            1 => h1::<F2F<3>>,
            2 => h1::<F2F<4>>,
            _ => h1::<F2F<5>>,
        },
        (Ty::F64, Ty::F64) if int_rnd && !sat => match r {
            0 => h1::<F2F<6>>,
            1 => h1::<F2F<7>>,
            2 => h1::<F2F<8>>,
            _ => h1::<F2F<9>>,
        },
        (Ty::F32, Ty::F32) if !int_rnd => match (ftz, sat) {
            (false, false) => h1::<L<f32, FId, false, false>>,
            (true, false) => h1::<L<f32, FId, true, false>>,
            (false, true) => h1::<L<f32, FId, false, true>>,
            (true, true) => h1::<L<f32, FId, true, true>>,
        },
        (Ty::F32, Ty::F16) if !ftz && !sat => h1::<HCvt<0>>,
        (Ty::F16, Ty::F32) if !ftz && !sat && rn && !int_rnd => h1::<HCvt<1>>,
        (Ty::F32, Ty::Bf16) if !ftz && !sat => h1::<HCvt<2>>,
        (Ty::Bf16, Ty::F32) if !ftz && !sat && rn && !int_rnd => h1::<HCvt<3>>,
        _ => return None,
    })
}

/// Rounding, `.ftz` and `.sat` modifiers of a packed `cvt`.
#[derive(Clone, Copy)]
struct PackMods {
    rnd: Option<Rnd>,
    ftz: bool,
    sat: bool,
}

/// The rounding modifier of a `cvt` and whether it is an integer rounding (`.rni` etc.).
fn cvt_rounding(m: &mut Mods<'_>) -> (Option<Rnd>, bool) {
    match m.one_of(&["rn", "rz", "rm", "rp", "rni", "rzi", "rmi", "rpi"]) {
        None => (None, false),
        Some("rn") => (Some(Rnd::Rn), false),
        Some("rz") => (Some(Rnd::Rz), false),
        Some("rm") => (Some(Rnd::Rm), false),
        Some("rp") => (Some(Rnd::Rp), false),
        Some("rni") => (Some(Rnd::Rn), true),
        Some("rzi") => (Some(Rnd::Rz), true),
        Some("rmi") => (Some(Rnd::Rm), true),
        Some(_) => (Some(Rnd::Rp), true),
    }
}

/// Statistics class of a conversion between `dst` and `src`.
fn cvt_class(dst: Ty, src: Ty) -> Class {
    if dst == Ty::F64 || src == Ty::F64 {
        Class::Fp64
    } else if dst.is_float() || src.is_float() {
        Class::Fp32
    } else {
        Class::Int
    }
}

/// Handler of an integer-to-integer conversion without `.sat`.
fn cvt_int_fn(dst: Ty, src: Ty) -> ExecFn {
    match dst {
        Ty::U8 | Ty::B8 => cvt_int_pick!(u8, src),
        Ty::S8 => cvt_int_pick!(i8, src),
        Ty::U16 | Ty::B16 => cvt_int_pick!(u16, src),
        Ty::S16 => cvt_int_pick!(i16, src),
        Ty::U32 | Ty::B32 => cvt_int_pick!(u32, src),
        Ty::S32 => cvt_int_pick!(i32, src),
        Ty::S64 => cvt_int_pick!(i64, src),
        _ => cvt_int_pick!(u64, src),
    }
}

impl KLower<'_> {
    /// Lower `cvt`: packed, integer, fast specialised or general conversion.
    pub(super) fn lower_cvt(&mut self, frame: &mut Frame, ai: &AstInst) -> Res<()> {
        let mut m = Mods::new(&ai.mods);
        let ftz = m.has("ftz");
        let sat = m.has("sat");
        let relu = m.has("relu");
        let (rnd, int_rnd) = cvt_rounding(&mut m);
        let tys = m.types();
        finish(&m, ai)?;
        let (dst, src) = match tys.as_slice() {
            [d, s] => (*d, *s),
            _ => return invalid(ai.line, "cvt needs destination and source types"),
        };
        if relu {
            return unsupported(ai, ".relu");
        }
        if matches!(dst, Ty::F16x2 | Ty::Bf16x2) {
            let pm = PackMods { rnd, ftz, sat };
            return self.lower_cvt_pack2(frame, ai, dst, src, pm);
        }
        if matches!(src, Ty::F16x2 | Ty::Bf16x2 | Ty::B128 | Ty::Pred)
            || matches!(dst, Ty::B128 | Ty::Pred)
        {
            return unsupported(ai, "conversion types");
        }
        nargs(ai, 2)?;
        let d = self.dst(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], src)?;
        let class = cvt_class(dst, src);
        if dst.is_int() && src.is_int() && !sat {
            let f = cvt_int_fn(dst, src);
            self.emit(I::new(f, class).r([d, a, NONE, NONE]));
            return Ok(());
        }
        if let Some(f) = fast_cvt(dst, src, rnd, int_rnd, ftz, sat) {
            self.emit(I::new(f, class).r([d, a, NONE, NONE]));
            return Ok(());
        }
        let default_rnd = if dst.is_int() && src.is_float() {
            Rnd::Rz
        } else {
            Rnd::Rn
        };
        let spec = CvtSpec {
            dst,
            src,
            rnd: rnd.unwrap_or(default_rnd),
            int_rnd,
            ftz,
            sat,
        };
        self.emit(I::new(h_cvt, class).r([d, a, NONE, NONE]).aux(spec.pack()));
        Ok(())
    }

    /// `cvt` to `.f16x2`/`.bf16x2` from two `.f32` sources.
    fn lower_cvt_pack2(
        &mut self,
        frame: &mut Frame,
        ai: &AstInst,
        dst: Ty,
        src: Ty,
        pm: PackMods,
    ) -> Res<()> {
        if src != Ty::F32 {
            return unsupported(ai, "packed conversion source");
        }
        nargs(ai, 3)?;
        let d = self.dst(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], src)?;
        let b = self.src(frame, ai, &ai.args[2], src)?;
        let one = if dst == Ty::F16x2 { Ty::F16 } else { Ty::Bf16 };
        let spec = CvtSpec {
            dst: one,
            src,
            rnd: pm.rnd.unwrap_or(Rnd::Rn),
            int_rnd: false,
            ftz: pm.ftz,
            sat: pm.sat,
        };
        self.emit(
            I::new(h_cvt_pack2, Class::Fp32)
                .r([d, a, b, NONE])
                .aux(spec.pack()),
        );
        Ok(())
    }
}
