//! Lowering of control and synchronisation instructions: `exit`, `trap`,
//! barriers, fences, `nanosleep`, and warp collectives.

use super::arith::{finish, nargs};
use super::{invalid, unsupported, Frame, KLower, Res, I};
use crate::exec::misc::h_nanosleep;
use crate::exec::program::{h_nop, Class, Ctl, Cx, Inst, NONE, R};
use crate::exec::warpops::*;
use crate::parse::ast::{AstInst, Operand};
use crate::types::{Mods, Ty};

/// Memory fence (`membar` / `fence`): sequentially consistent host fence.
fn h_fence(_: &Inst, _: &mut Cx<'_>, _: u32) -> R {
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

impl KLower<'_> {
    /// Lower a control, synchronisation or warp-collective instruction.
    pub(super) fn lower_control(&mut self, frame: &mut Frame, ai: &AstInst) -> Res<()> {
        let mut m = Mods::new(&ai.mods);
        match ai.op.as_str() {
            "exit" => {
                finish(&m, ai)?;
                self.emit(I::new(h_nop, Class::Control).ctl(Ctl::Exit));
            }
            "trap" => {
                finish(&m, ai)?;
                self.emit(I::new(h_nop, Class::Control).ctl(Ctl::Trap));
            }
            "brkpt" | "pmevent" | "setmaxnreg" | "griddepcontrol" | "discard" | "applypriority" => {
                m.ignore_if(|_| true);
                self.emit(I::new(h_nop, Class::Misc));
            }
            "membar" | "fence" => {
                m.ignore_if(|_| true);
                self.emit(I::new(h_fence, Class::Misc));
            }
            "nanosleep" => {
                m.types();
                finish(&m, ai)?;
                nargs(ai, 1)?;
                let a = self.src(frame, ai, &ai.args[0], Ty::U32)?;
                self.emit(I::new(h_nanosleep, Class::Misc).r([NONE, a, NONE, NONE]));
            }
            "bar" | "barrier" => return self.lower_bar(frame, ai, m),
            "shfl" => self.lower_shfl(frame, ai, &mut m)?,
            "vote" => self.lower_vote(frame, ai, &mut m)?,
            "activemask" => {
                m.types();
                finish(&m, ai)?;
                nargs(ai, 1)?;
                let d = self.dst(frame, ai, &ai.args[0])?;
                self.emit(I::new(h_activemask, Class::Control).r([d, NONE, NONE, NONE]));
            }
            "match" => self.lower_match(frame, ai, &mut m)?,
            "redux" => self.lower_redux(frame, ai, &mut m)?,
            "elect" => {
                m.has("sync");
                finish(&m, ai)?;
                nargs(ai, 2)?;
                let (d, p) = self.dst_pair(frame, ai, &ai.args[0])?;
                self.emit(
                    I::new(h_elect, Class::Control)
                        .r([d, NONE, NONE, NONE])
                        .x([p, NONE, NONE, NONE]),
                );
            }
            _ => return unsupported(ai, "instruction not implemented"),
        }
        finish(&m, ai)
    }

    /// `shfl{.sync}.{up,down,bfly,idx}`: exchange a register between lanes.
    fn lower_shfl(&mut self, frame: &mut Frame, ai: &AstInst, m: &mut Mods<'_>) -> Res<()> {
        m.has("sync");
        let Some(mode) = m.index_of(&["up", "down", "bfly", "idx"]) else {
            return invalid(ai.line, "shfl needs a mode");
        };
        m.types();
        finish(m, ai)?;
        if !(4..=5).contains(&ai.args.len()) {
            return invalid(ai.line, "shfl expects 4 or 5 operands");
        }
        let (d, p) = self.dst_pair(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], Ty::B32)?;
        let b = self.src(frame, ai, &ai.args[2], Ty::B32)?;
        let c = self.src(frame, ai, &ai.args[3], Ty::B32)?;
        self.emit(
            I::new(h_shfl, Class::Control)
                .r([d, a, b, c])
                .x([p, NONE, NONE, NONE])
                .aux(mode),
        );
        Ok(())
    }

    /// `vote{.sync}.{all,any,uni,ballot}`: warp-wide predicate vote.
    fn lower_vote(&mut self, frame: &mut Frame, ai: &AstInst, m: &mut Mods<'_>) -> Res<()> {
        m.has("sync");
        let Some(mode) = m.index_of(&["all", "any", "uni", "ballot"]) else {
            return invalid(ai.line, "vote needs a mode");
        };
        m.types();
        finish(m, ai)?;
        if !(2..=3).contains(&ai.args.len()) {
            return invalid(ai.line, "vote expects 2 or 3 operands");
        }
        let d = if mode == 3 {
            self.dst(frame, ai, &ai.args[0])?
        } else {
            self.pred_dst(frame, ai, &ai.args[0])?
        };
        let p = self.pred_src(frame, ai, &ai.args[1])?;
        self.emit(
            I::new(h_vote, Class::Control)
                .r([d, NONE, NONE, NONE])
                .x([p, NONE, NONE, NONE])
                .aux(mode),
        );
        Ok(())
    }

    /// `match{.sync}.{any,all}`: lanes holding the same value.
    fn lower_match(&mut self, frame: &mut Frame, ai: &AstInst, m: &mut Mods<'_>) -> Res<()> {
        m.has("sync");
        let Some(mode) = m.index_of(&["any", "all"]) else {
            return invalid(ai.line, "match needs .any or .all");
        };
        let t = m.types();
        finish(m, ai)?;
        let w64 = matches!(t.as_slice(), [Ty::B64 | Ty::U64 | Ty::S64]);
        nargs(ai, 3)?;
        let (d, p) = self.dst_pair(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], if w64 { Ty::B64 } else { Ty::B32 })?;
        let aux = mode | if w64 { 0x100 } else { 0 };
        self.emit(
            I::new(h_match, Class::Control)
                .r([d, a, NONE, NONE])
                .x([p, NONE, NONE, NONE])
                .aux(aux),
        );
        Ok(())
    }

    /// `redux{.sync}.op.type`: warp-wide integer reduction.
    fn lower_redux(&mut self, frame: &mut Frame, ai: &AstInst, m: &mut Mods<'_>) -> Res<()> {
        m.has("sync");
        let op = m.one_of(&["add", "min", "max", "and", "or", "xor"]);
        let t = m.types();
        finish(m, ai)?;
        let aux = match (op, t.as_slice()) {
            (Some("add"), [Ty::U32 | Ty::S32]) => 0,
            (Some("min"), [Ty::U32]) => 1,
            (Some("max"), [Ty::U32]) => 2,
            (Some("min"), [Ty::S32]) => 3,
            (Some("max"), [Ty::S32]) => 4,
            (Some("and"), [Ty::B32]) => 5,
            (Some("or"), [Ty::B32]) => 6,
            (Some("xor"), [Ty::B32]) => 7,
            _ => return unsupported(ai, "operation/type"),
        };
        nargs(ai, 3)?;
        let d = self.dst(frame, ai, &ai.args[0])?;
        let a = self.src(frame, ai, &ai.args[1], Ty::B32)?;
        self.emit(
            I::new(h_redux, Class::Control)
                .r([d, a, NONE, NONE])
                .aux(aux),
        );
        Ok(())
    }

    /// `d|p` destination (either part may be `_`); plain `d` gives no predicate.
    fn dst_pair(&mut self, frame: &Frame, ai: &AstInst, op: &Operand) -> Res<(u32, u32)> {
        match op {
            Operand::Pair(d, p) => {
                let d = if d == "_" {
                    NONE
                } else {
                    self.dst(frame, ai, &Operand::Name(d.clone()))?
                };
                let p = if p == "_" {
                    NONE
                } else {
                    self.pred_dst(frame, ai, &Operand::Name(p.clone()))?
                };
                let d = if d == NONE { self.sink() } else { d };
                Ok((d, p))
            }
            o => Ok((self.dst(frame, ai, o)?, NONE)),
        }
    }

    fn lower_bar(&mut self, frame: &mut Frame, ai: &AstInst, mut m: Mods<'_>) -> Res<()> {
        m.ignore(&["cta", "aligned"]);
        if m.has("warp") {
            m.has("sync");
            finish(&m, ai)?;
            self.emit(I::new(h_nop, Class::Control));
            return Ok(());
        }
        let kind = if m.has("sync") {
            0
        } else if m.has("arrive") {
            1
        } else if m.has("red") {
            match m.one_of(&["popc", "and", "or"]) {
                Some("popc") => 2,
                Some("and") => 3,
                Some("or") => 4,
                _ => return invalid(ai.line, "bar.red needs .popc, .and or .or"),
            }
        } else if ai.op == "bar"
            && m.rest().iter().all(|x| *x == "pred" || *x == "u32")
            && ai.mods.is_empty()
        {
            0
        } else {
            return unsupported(ai, "barrier form");
        };
        m.types();
        finish(&m, ai)?;
        let args = &ai.args;
        let (d, rest) = if kind >= 2 {
            let d = if kind == 2 {
                self.dst(frame, ai, &args[0])?
            } else {
                self.pred_dst(frame, ai, &args[0])?
            };
            (d, &args[1..])
        } else {
            (NONE, &args[..])
        };
        let (ops, pred) = if kind >= 2 {
            if rest.is_empty() {
                return invalid(ai.line, "bar.red needs a predicate operand");
            }
            let p = self.pred_src(frame, ai, &rest[rest.len() - 1])?;
            (&rest[..rest.len() - 1], p)
        } else {
            (rest, NONE)
        };
        let (id, count) = match ops {
            [] if ai.op == "barrier" => (self.const_reg(0), NONE),
            [a] => (self.src(frame, ai, a, Ty::U32)?, NONE),
            [a, b] => (
                self.src(frame, ai, a, Ty::U32)?,
                self.src(frame, ai, b, Ty::U32)?,
            ),
            _ => return invalid(ai.line, "bad barrier operands"),
        };
        if kind == 1 && count == NONE {
            return invalid(ai.line, "bar.arrive needs a thread count");
        }
        self.emit(
            I::new(h_nop, Class::Control)
                .ctl(Ctl::Bar)
                .r([d, id, count, NONE])
                .x([pred, NONE, NONE, NONE])
                .aux(kind),
        );
        Ok(())
    }
}
