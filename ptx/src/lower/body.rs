//! Function bodies: declarations, labels, instruction dispatch, and inlining
//! of device-function calls.

use super::{invalid, unsupported, Frame, KLower, Res, Sym, VarLoc, I};
use crate::exec::program::{Class, Ctl, NONE, NO_GUARD, PRED_NEG};
use crate::parse::ast::{AstInst, Function, Linkage, Operand, RegDecl, Space, Stmt, VarDecl};
use crate::types::Ty;
use std::collections::HashMap;

/// An inlined callee's scope, and the `(outer, inner, type)` registers to copy back after
/// its body.
type CallBindings = (HashMap<String, Sym>, Vec<(u32, u32, Ty)>);

/// Return operands, callee name and parameter operands of a `call`.
fn call_operands(ai: &AstInst) -> Res<(&[Operand], &String, &[Operand])> {
    let mut args = ai.args.iter().peekable();
    let rets: &[Operand] = match args.peek() {
        Some(Operand::List(v)) => {
            args.next();
            v
        }
        _ => &[],
    };
    let Some(Operand::Name(callee)) = args.next() else {
        return unsupported(ai, "indirect calls are not supported");
    };
    let params: &[Operand] = match args.next() {
        Some(Operand::List(v)) => v,
        None => &[],
        Some(_) => return unsupported(ai, "call through a prototype"),
    };
    Ok((rets, callee, params))
}

impl KLower<'_> {
    /// Lower a function body into the current code stream with `frame` bindings.
    pub fn lower_function_body(&mut self, f: &Function, mut frame: Frame) -> Res<()> {
        let Some(body) = &f.body else {
            return invalid(f.line, format!("function `{}` has no body", f.name));
        };
        let mut brx: HashMap<String, usize> = HashMap::new();
        for st in body {
            match st {
                Stmt::Reg(d) => self.decl_regs(&mut frame, d)?,
                Stmt::Var(v) => self.decl_var(&mut frame, v)?,
                Stmt::Label(n) => {
                    frame.labels.insert(n.clone(), self.code.len() as u32);
                }
                Stmt::BranchTargets(n, targets, line) => {
                    let idx = self.tables.len();
                    self.tables.push(Vec::new());
                    brx.insert(n.clone(), idx);
                    frame.tables.push((idx, targets.clone(), *line));
                }
                Stmt::Inst(ai) => {
                    if ai.op == "brx" {
                        self.lower_brx(&frame, ai, &brx)?;
                    } else {
                        self.lower_inst(&mut frame, ai)?;
                    }
                }
                Stmt::Open => frame.scopes.push(HashMap::new()),
                Stmt::Close => {
                    if frame.scopes.len() > 1 {
                        frame.scopes.pop();
                    }
                }
            }
            self.check_code_size(f.line)?;
        }
        for (idx, label, line) in std::mem::take(&mut frame.fixups) {
            let Some(&pc) = frame.labels.get(&label) else {
                return invalid(
                    line,
                    format!("undefined label `{label}` in `{}`", frame.fname),
                );
            };
            self.code[idx].imm = pc as i64;
        }
        for (t, labels, line) in std::mem::take(&mut frame.tables) {
            let mut pcs = Vec::new();
            for l in &labels {
                let Some(&pc) = frame.labels.get(l) else {
                    return invalid(line, format!("undefined label `{l}` in .branchtargets"));
                };
                pcs.push(pc);
            }
            self.tables[t] = pcs;
        }
        let end = self.code.len() as i64;
        for idx in frame.rets {
            self.code[idx].imm = end;
        }
        Ok(())
    }

    fn decl_regs(&mut self, frame: &mut Frame, d: &RegDecl) -> Res<()> {
        let Some(ty) = Ty::parse(&d.ty) else {
            return invalid(d.line, format!("unknown register type .{}", d.ty));
        };
        if d.vec != 1 {
            return Err(crate::error::PtxError::Unsupported {
                line: d.line,
                instruction: format!(".reg .v{} .{}", d.vec, d.ty),
                reason: "vector registers".into(),
            });
        }
        let scope = frame.scopes.last_mut().expect("scope");
        let mut bind = |name: String, k: &mut Self| {
            let sym = if ty == Ty::Pred {
                Sym::Pred(k.new_pred())
            } else {
                Sym::Reg(k.new_reg(ty), ty)
            };
            scope.insert(name, sym);
        };
        for (name, count) in &d.names {
            self.check_registers(d.line, u64::from(count.unwrap_or(1)))?;
            match count {
                Some(n) => {
                    for i in 0..*n {
                        bind(format!("{name}{i}"), self);
                    }
                }
                None => bind(name.clone(), self),
            }
        }
        Ok(())
    }

    fn decl_var(&mut self, frame: &mut Frame, v: &VarDecl) -> Res<()> {
        let (_, size, align) = super::decl_layout(v)?;
        let loc = match v.space {
            Space::Local | Space::Param => VarLoc::Local(self.alloc_local(size, align)),
            Space::Shared => {
                if v.linkage == Linkage::Extern || v.dims.iter().any(|d| d.is_none()) {
                    self.dyn_shared = true;
                    VarLoc::DynShared
                } else {
                    VarLoc::Shared(self.alloc_shared(size, align))
                }
            }
            Space::Reg => {
                let ty = Ty::parse(&v.ty).unwrap_or(Ty::B64);
                let sym = if ty == Ty::Pred {
                    Sym::Pred(self.new_pred())
                } else {
                    Sym::Reg(self.new_reg(ty), ty)
                };
                frame
                    .scopes
                    .last_mut()
                    .expect("scope")
                    .insert(v.name.clone(), sym);
                return Ok(());
            }
            Space::Global | Space::Const => {
                return Err(crate::error::PtxError::Unsupported {
                    line: v.line,
                    instruction: format!("function-scope .{:?} variable `{}`", v.space, v.name)
                        .to_lowercase(),
                    reason: "declare it at module scope".into(),
                })
            }
        };
        if v.init.is_some() && v.space != Space::Shared {
            return Err(crate::error::PtxError::Unsupported {
                line: v.line,
                instruction: format!("initialized local variable `{}`", v.name),
                reason: String::new(),
            });
        }
        frame
            .scopes
            .last_mut()
            .expect("scope")
            .insert(v.name.clone(), Sym::Var(loc));
        Ok(())
    }

    fn lower_inst(&mut self, frame: &mut Frame, ai: &AstInst) -> Res<()> {
        self.cur_text = (ai.line, ai.to_string().into());
        self.guard = match &ai.guard {
            None => NO_GUARD,
            Some((p, neg)) => match self.lookup(frame, p) {
                Some(Sym::Pred(i)) => i | if *neg { PRED_NEG } else { 0 },
                _ => return invalid(ai.line, format!("guard `{p}` is not a predicate")),
            },
        };
        match ai.op.as_str() {
            "call" => self.lower_call(frame, ai),
            "ret" => {
                let mut m = crate::types::Mods::new(&ai.mods);
                m.ignore(&["uni"]);
                if !m.rest().is_empty() {
                    return unsupported(ai, "unknown modifier");
                }
                if frame.is_entry {
                    self.emit(I::new(crate::exec::program::h_nop, Class::Control).ctl(Ctl::Exit));
                } else {
                    let idx = self.emit(
                        I::new(crate::exec::program::h_nop, Class::Control)
                            .ctl(Ctl::Bra)
                            .aux(1),
                    );
                    frame.rets.push(idx);
                }
                Ok(())
            }
            "bra" => {
                let mut m = crate::types::Mods::new(&ai.mods);
                let uni = m.has("uni");
                if !m.rest().is_empty() {
                    return unsupported(ai, "unknown modifier");
                }
                let Some(Operand::Name(l)) = ai.args.first() else {
                    return invalid(ai.line, "bra needs a label");
                };
                if ai.args.len() != 1 {
                    return invalid(ai.line, "bra takes one operand");
                }
                let idx = self.emit(
                    I::new(crate::exec::program::h_nop, Class::Control)
                        .ctl(Ctl::Bra)
                        .aux(uni as u32),
                );
                frame.fixups.push((idx, l.clone(), ai.line));
                Ok(())
            }
            _ => self.lower_op(frame, ai),
        }
    }

    fn lower_brx(&mut self, frame: &Frame, ai: &AstInst, brx: &HashMap<String, usize>) -> Res<()> {
        self.cur_text = (ai.line, ai.to_string().into());
        self.guard = match &ai.guard {
            None => NO_GUARD,
            Some((p, neg)) => match self.lookup(frame, p) {
                Some(Sym::Pred(i)) => i | if *neg { PRED_NEG } else { 0 },
                _ => return invalid(ai.line, format!("guard `{p}` is not a predicate")),
            },
        };
        let mut m = crate::types::Mods::new(&ai.mods);
        m.ignore(&["uni"]);
        if !m.has("idx") || !m.rest().is_empty() || ai.args.len() != 2 {
            return unsupported(ai, "only `brx.idx index, table` is supported");
        }
        let idx = self.src(frame, ai, &ai.args[0], Ty::U32)?;
        let Operand::Name(t) = &ai.args[1] else {
            return invalid(ai.line, "brx.idx needs a .branchtargets label");
        };
        let Some(&table) = brx.get(t) else {
            return invalid(ai.line, format!("unknown branch table `{t}`"));
        };
        self.emit(
            I::new(crate::exec::program::h_nop, Class::Control)
                .ctl(Ctl::Brx)
                .r([NONE, idx, NONE, NONE])
                .aux(table as u32),
        );
        Ok(())
    }

    /// `call`: inline the body of a device function (or lower a call to a known extern).
    fn lower_call(&mut self, frame: &mut Frame, ai: &AstInst) -> Res<()> {
        let (rets, callee, params) = call_operands(ai)?;
        if matches!(self.lookup(frame, callee), Some(Sym::Reg(..))) {
            return unsupported(ai, "indirect calls are not supported");
        }
        let Some(f) = self.m.funcs.get(callee.as_str()).copied() else {
            return invalid(ai.line, format!("call to undeclared function `{callee}`"));
        };
        if f.body.is_none() {
            return self.lower_extern_call(frame, ai, callee, rets, params);
        }
        self.check_inlinable(ai, callee, f, rets, params)?;
        let skip = self.emit_guard_skip();
        self.emit(I::new(crate::exec::program::h_nop, Class::Control));
        let (scope, copy_out) = self.bind_call_args(frame, ai, f, rets, params)?;
        let callee_frame = Frame {
            scopes: vec![scope],
            labels: HashMap::new(),
            fixups: Vec::new(),
            tables: Vec::new(),
            rets: Vec::new(),
            is_entry: false,
            fname: f.name.clone(),
        };
        self.call_stack.push(callee.clone());
        self.lower_function_body(f, callee_frame)?;
        self.call_stack.pop();
        self.cur_text = (ai.line, ai.to_string().into());
        self.guard = NO_GUARD;
        for (outer, inner, _) in copy_out {
            self.emit(
                I::new(
                    crate::exec::program::h1::<crate::exec::int::Mov<u64>>,
                    Class::Int,
                )
                .r([outer, inner, NONE, NONE]),
            );
        }
        if let Some(i) = skip {
            self.code[i].imm = self.code.len() as i64;
        }
        Ok(())
    }

    /// Reject a call to `f` that cannot be inlined: recursion, nesting past
    /// [`crate::limits::MAX_CALL_DEPTH`], or mismatched argument counts.
    fn check_inlinable(
        &self,
        ai: &AstInst,
        callee: &str,
        f: &Function,
        rets: &[Operand],
        params: &[Operand],
    ) -> Res<()> {
        if self.call_stack.iter().any(|c| c == callee) {
            return unsupported(ai, format!("recursive call to `{callee}`"));
        }
        if self.call_stack.len() >= crate::limits::MAX_CALL_DEPTH {
            let max = crate::limits::MAX_CALL_DEPTH;
            return unsupported(ai, format!("calls nested deeper than {max} levels"));
        }
        // A caller may expect a value from a function defined without one (numba declares
        // `void` C-ABI functions with a return parameter): the value is left undefined.
        let rets_ok = f.rets.len() == rets.len() || f.rets.is_empty();
        if f.params.len() != params.len() || !rets_ok {
            return invalid(
                ai.line,
                format!("wrong number of arguments in call to `{callee}`"),
            );
        }
        Ok(())
    }

    /// For a guarded call, emit a branch over the inlined body taken when the guard
    /// fails, and clear the guard; returns the branch's index for patching.
    fn emit_guard_skip(&mut self) -> Option<usize> {
        let guard = self.guard;
        if guard != NO_GUARD {
            self.guard = guard ^ PRED_NEG;
            let i = self.emit(I::new(crate::exec::program::h_nop, Class::Control).ctl(Ctl::Bra));
            self.guard = NO_GUARD;
            Some(i)
        } else {
            None
        }
    }

    /// Bind the callee's formals to the call's arguments: the callee's scope, and the
    /// `(outer, inner, type)` registers to copy back from register return values.
    fn bind_call_args(
        &mut self,
        frame: &Frame,
        ai: &AstInst,
        f: &Function,
        rets: &[Operand],
        params: &[Operand],
    ) -> Res<CallBindings> {
        let mut scope = HashMap::new();
        for (formal, actual) in f.params.iter().zip(params) {
            let sym = self.bind_formal(frame, ai, formal, actual, true)?;
            scope.insert(formal.name.clone(), sym);
        }
        let mut copy_out = Vec::new();
        for (formal, actual) in f.rets.iter().zip(rets) {
            let sym = self.bind_formal(frame, ai, formal, actual, false)?;
            if let (Sym::Reg(inner, ty), Operand::Name(_)) = (sym, actual) {
                let outer = self.dst(frame, ai, actual)?;
                copy_out.push((outer, inner, ty));
            }
            scope.insert(formal.name.clone(), sym);
        }
        Ok((scope, copy_out))
    }

    /// Bind a formal parameter of an inlined callee to the caller's argument.
    fn bind_formal(
        &mut self,
        frame: &Frame,
        ai: &AstInst,
        formal: &VarDecl,
        actual: &Operand,
        input: bool,
    ) -> Res<Sym> {
        let (ty, size, align) = super::decl_layout(formal)?;
        match formal.space {
            Space::Param => {
                if let Operand::Name(n) = actual {
                    match self.lookup(frame, n) {
                        Some(Sym::Var(loc @ VarLoc::Local(_))) => return Ok(Sym::Var(loc)),
                        Some(Sym::Reg(r, rty)) => {
                            let off = self.alloc_local(size, align);
                            if input {
                                let a = self.const_reg(off as u64);
                                let size_b = rty.bytes().min(size as u32);
                                self.emit_local_store(a, r, size_b);
                            }
                            return Ok(Sym::Var(VarLoc::Local(off)));
                        }
                        _ => {}
                    }
                }
                if input {
                    if let Some(v) = super::operands::imm_bits(actual, ty) {
                        let off = self.alloc_local(size, align);
                        let a = self.const_reg(off as u64);
                        let c = self.const_reg(v);
                        self.emit_local_store(a, c, ty.bytes());
                        return Ok(Sym::Var(VarLoc::Local(off)));
                    }
                }
                unsupported(ai, "unsupported call argument")
            }
            Space::Reg => {
                let r = self.new_reg(ty);
                if input {
                    let v = self.src(frame, ai, actual, ty)?;
                    self.emit(
                        I::new(
                            crate::exec::program::h1::<crate::exec::int::Mov<u64>>,
                            Class::Int,
                        )
                        .r([r, v, NONE, NONE]),
                    );
                }
                Ok(if ty == Ty::Pred {
                    Sym::Pred(self.new_pred())
                } else {
                    Sym::Reg(r, ty)
                })
            }
            _ => invalid(ai.line, "function parameters must be .param or .reg"),
        }
    }

    fn emit_local_load(&mut self, dst: u32, addr: u32, size: u32) {
        use crate::exec::mem::{h_ld_local, lf};
        let f = match size {
            4 => h_ld_local::<4>,
            _ => h_ld_local::<8>,
        };
        self.emit(
            I::new(f, Class::Local)
                .r([NONE, addr, NONE, NONE])
                .x([dst, NONE, NONE, NONE])
                .aux(1 << lf::N_SHIFT),
        );
    }

    fn emit_local_store(&mut self, addr: u32, val: u32, size: u32) {
        use crate::exec::mem::{h_st_local, lf};
        let f = match size {
            1 => h_st_local::<1>,
            2 => h_st_local::<2>,
            4 => h_st_local::<4>,
            _ => h_st_local::<8>,
        };
        self.emit(
            I::new(f, Class::Local)
                .r([NONE, addr, NONE, NONE])
                .x([val, NONE, NONE, NONE])
                .aux(1 << lf::N_SHIFT),
        );
    }

    /// Calls to functions without a body (system calls).
    fn lower_extern_call(
        &mut self,
        frame: &Frame,
        ai: &AstInst,
        callee: &str,
        rets: &[Operand],
        params: &[Operand],
    ) -> Res<()> {
        match callee {
            "__assertfail" | "__assert_fail" => {
                self.emit(I::new(crate::exec::program::h_nop, Class::Control).ctl(Ctl::Trap));
                Ok(())
            }
            "vprintf" => {
                // args: generic address of the format string and of the packed arguments
                let mut vals = [NONE; 2];
                for (k, p) in params.iter().take(2).enumerate() {
                    vals[k] = match p {
                        Operand::Name(n) => match self.lookup(frame, n) {
                            Some(Sym::Var(VarLoc::Local(off))) => {
                                let a = self.const_reg(off as u64);
                                let t = self.new_reg(Ty::B64);
                                self.emit_local_load(t, a, 8);
                                t
                            }
                            _ => self.src(frame, ai, p, Ty::B64)?,
                        },
                        p => self.src(frame, ai, p, Ty::B64)?,
                    };
                }
                if vals[1] == NONE {
                    vals[1] = self.const_reg(0);
                }
                if vals[0] == NONE {
                    return invalid(ai.line, "vprintf needs a format argument");
                }
                let res = self.new_reg(Ty::B32);
                self.emit(
                    I::new(crate::exec::printf::h_vprintf, Class::Misc)
                        .r([res, vals[0], vals[1], NONE]),
                );
                if let Some(Operand::Name(n)) = rets.first() {
                    if let Some(Sym::Var(VarLoc::Local(off))) = self.lookup(frame, n) {
                        let a = self.const_reg(off as u64);
                        self.emit_local_store(a, res, 4);
                    }
                }
                Ok(())
            }
            _ => unsupported(ai, format!("call to external function `{callee}`")),
        }
    }
}
