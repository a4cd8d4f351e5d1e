//! Lowering: AST → executable [`Program`] per kernel. Module variables become
//! [`GlobalVar`]s; device functions are inlined at their call sites.

mod arith;
mod body;
mod bounds;
mod control;
mod convert;
mod data;
mod fparith;
mod operands;

use crate::error::PtxError;
use crate::exec::program::{Class, Ctl, ExecFn, Init, Inst, Program, NONE, NO_GUARD};
use crate::limits;
use crate::module::{GlobalSpace, GlobalVar, Kernel, Module, Reloc};
use crate::parse::ast::{
    AstInst, AstModule, Function, Init as AInit, InitVal, Linkage, Space, VarDecl,
};
use crate::types::Ty;
use bounds::{check_globals_total, param_layout, zeroed};
use std::collections::HashMap;

pub(crate) type Res<T> = Result<T, PtxError>;

pub(crate) fn invalid<T>(line: u32, msg: impl Into<String>) -> Res<T> {
    Err(PtxError::Invalid {
        line,
        msg: msg.into(),
    })
}

pub(crate) fn unsupported<T>(ai: &AstInst, reason: impl Into<String>) -> Res<T> {
    Err(PtxError::Unsupported {
        line: ai.line,
        instruction: ai.opcode(),
        reason: reason.into(),
    })
}

/// Size, alignment and element type of a declaration. The size is computed with checked
/// arithmetic: one that overflows is an error (nothing is allocated from it here).
pub(crate) fn decl_layout(d: &VarDecl) -> Res<(Ty, usize, usize)> {
    let Some(ty) = Ty::parse(&d.ty) else {
        return invalid(d.line, format!("unknown type .{}", d.ty));
    };
    let elem = ty.bytes() as usize * d.vec as usize;
    let mut size = Some(elem);
    for (k, dim) in d.dims.iter().enumerate() {
        let n = match dim {
            Some(n) => usize::try_from(*n).ok(),
            None if k == 0 => match &d.init {
                Some(AInit::List(v)) => Some(v.len()),
                _ => Some(0),
            },
            None => Some(0),
        };
        size = size.zip(n).and_then(|(s, n)| s.checked_mul(n));
    }
    let Some(size) = size else {
        return invalid(d.line, format!("size of `{}` overflows 64 bits", d.name));
    };
    let align = d.align.map(|a| a as usize).unwrap_or(elem).max(1);
    if !align.is_power_of_two() {
        return invalid(
            d.line,
            format!("alignment {align} of `{}` is not a power of two", d.name),
        );
    }
    Ok((ty, size, align))
}

fn flatten<'a>(i: &'a AInit, out: &mut Vec<&'a InitVal>) {
    match i {
        AInit::Val(v) => out.push(v),
        AInit::List(l) => l.iter().for_each(|x| flatten(x, out)),
    }
}

/// Encode a scalar initializer of type `ty`.
pub(crate) fn encode_scalar(v: &InitVal, ty: Ty) -> u64 {
    use crate::exec::fround::{round_f64, Rnd, F16};
    let f = |x: f64| -> u64 {
        match ty {
            Ty::F32 => (x as f32).to_bits() as u64,
            Ty::F64 => x.to_bits(),
            Ty::F16 => round_f64(x, F16, Rnd::Rn),
            Ty::Bf16 => round_f64(x, crate::exec::fround::BF16, Rnd::Rn),
            _ => x as i64 as u64,
        }
    };
    match *v {
        InitVal::Int(i) if ty.is_float() => f(i as f64),
        InitVal::Int(i) => i as u64,
        InitVal::F32(b) if ty.is_float() => f(f32::from_bits(b) as f64),
        InitVal::F32(b) => b as u64,
        InitVal::F64(b) if ty.is_float() && ty != Ty::F64 => f(f64::from_bits(b)),
        InitVal::F64(b) => b,
        InitVal::Float(x) => f(x),
        InitVal::Sym { .. } => 0,
    }
}

fn build_global(d: &VarDecl, names: &HashMap<String, usize>) -> Res<GlobalVar> {
    let (ty, size, align) = decl_layout(d)?;
    let mut vals = Vec::new();
    if let Some(i) = &d.init {
        flatten(i, &mut vals);
    }
    let es = ty.bytes() as usize;
    let init_end = vals.len().checked_mul(es).filter(|&n| n <= size);
    let Some(init_end) = init_end else {
        return invalid(d.line, format!("too many initializers for `{}`", d.name));
    };
    // Small variables carry all their bytes; big ones only the initialised prefix.
    let len = if size <= crate::limits::FULL_INIT_BYTES {
        size
    } else {
        init_end
    };
    let mut init = zeroed(len, d.line)?;
    let mut relocs = Vec::new();
    for (k, v) in vals.iter().enumerate() {
        let off = k * es;
        if let InitVal::Sym { name, addend, .. } = v {
            let Some(&target) = names.get(name) else {
                return Err(PtxError::Unsupported {
                    line: d.line,
                    instruction: format!("initializer `{name}`"),
                    reason: "only addresses of module .global/.const variables are supported"
                        .into(),
                });
            };
            if es != 4 && es != 8 {
                return invalid(d.line, "address initializer in a non 32/64-bit element");
            }
            relocs.push(Reloc {
                offset: off,
                size: es,
                target,
                addend: *addend,
            });
            continue;
        }
        let bits = encode_scalar(v, ty).to_le_bytes();
        init[off..off + es].copy_from_slice(&bits[..es]);
    }
    Ok(GlobalVar {
        name: d.name.clone(),
        space: if d.space == Space::Const {
            GlobalSpace::Const
        } else {
            GlobalSpace::Global
        },
        size,
        align,
        init,
        relocs,
        is_extern: d.linkage == Linkage::Extern,
    })
}

/// Module-wide lookup tables used while lowering kernels.
pub(crate) struct ModCtx<'a> {
    pub globals: HashMap<String, usize>,
    pub funcs: HashMap<&'a str, &'a Function>,
    /// Module-scope `.shared` / `.local` declarations by name.
    pub mvars: HashMap<&'a str, &'a VarDecl>,
}

/// Lower a parsed module.
pub(crate) fn lower_module(ast: &AstModule) -> Res<Module> {
    let mut names = HashMap::new();
    let mut gdecls = Vec::new();
    let mut mvars = HashMap::new();
    for v in &ast.vars {
        match v.space {
            Space::Global | Space::Const => {
                if names.contains_key(&v.name) {
                    // extern declaration followed by a definition: keep the definition
                    if v.init.is_some() || v.linkage != Linkage::Extern {
                        let idx = names[&v.name];
                        gdecls[idx] = v;
                    }
                    continue;
                }
                names.insert(v.name.clone(), gdecls.len());
                gdecls.push(v);
            }
            Space::Shared | Space::Local => {
                mvars.insert(v.name.as_str(), v);
            }
            _ => {
                return invalid(
                    v.line,
                    format!("unexpected module-scope variable `{}`", v.name),
                )
            }
        }
    }
    let globals = gdecls
        .iter()
        .map(|d| build_global(d, &names))
        .collect::<Res<Vec<_>>>()?;
    check_globals_total(&globals)?;
    let mut funcs: HashMap<&str, &Function> = HashMap::new();
    for f in &ast.funcs {
        if f.body.is_some() || !funcs.contains_key(f.name.as_str()) {
            funcs.insert(&f.name, f);
        }
    }
    let mctx = ModCtx {
        globals: names,
        funcs,
        mvars,
    };
    let mut kernels = Vec::new();
    let mut budget = limits::MAX_MODULE_INSTRUCTIONS;
    for f in &ast.funcs {
        if f.is_entry && f.body.is_some() {
            let k = lower_kernel(&mctx, f, budget.min(limits::MAX_KERNEL_INSTRUCTIONS))?;
            budget = budget.saturating_sub(k.prog.code.len());
            kernels.push(k);
        }
    }
    Ok(Module {
        kernels,
        globals,
        version: ast.version,
        target: ast.target.first().cloned().unwrap_or_default(),
    })
}

/// What a name resolves to inside a function.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sym {
    Reg(u32, Ty),
    Pred(u32),
    Var(VarLoc),
}

/// Where a variable lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarLoc {
    /// Offset in the kernel parameter buffer.
    Param(u32),
    /// Offset in the thread's local memory.
    Local(u32),
    /// Offset in the block's shared memory.
    Shared(u32),
    /// Start of dynamic shared memory.
    DynShared,
    /// Module global by index.
    Global(u32),
}

/// Per-inlined-instance state.
pub(crate) struct Frame {
    pub scopes: Vec<HashMap<String, Sym>>,
    pub labels: HashMap<String, u32>,
    /// (instruction index, label) pairs to patch.
    pub fixups: Vec<(usize, String, u32)>,
    /// (table index, labels) to patch.
    pub tables: Vec<(usize, Vec<String>, u32)>,
    /// Instruction indices of `ret` branches to patch to the end of the instance.
    pub rets: Vec<usize>,
    pub is_entry: bool,
    pub fname: String,
}

/// Kernel lowering state.
pub(crate) struct KLower<'a> {
    pub m: &'a ModCtx<'a>,
    pub code: Vec<Inst>,
    pub text: Vec<(u32, std::sync::Arc<str>)>,
    pub nregs: u32,
    pub npreds: u32,
    pub reg_ty: Vec<Ty>,
    pub inits: Vec<(u32, Init)>,
    pub init_map: HashMap<Init, u32>,
    pub shared_off: u32,
    pub shared_map: HashMap<String, u32>,
    pub local_off: u32,
    pub local_map: HashMap<String, u32>,
    pub tables: Vec<Vec<u32>>,
    pub dyn_shared: bool,
    pub call_stack: Vec<String>,
    pub sink: Option<u32>,
    /// Hidden carry-flag predicate for `add.cc` / `addc`.
    pub carry: Option<u32>,
    /// Guard of the instruction being lowered.
    pub guard: u32,
    /// Line and text of the instruction being lowered (shared by what it lowers to).
    pub cur_text: (u32, std::sync::Arc<str>),
    /// Most instructions this kernel may lower to (see [`limits`]).
    pub max_code: usize,
}

/// Fields of an instruction to emit (guard/text come from the current AST instruction).
pub(crate) struct I {
    pub f: ExecFn,
    pub r: [u32; 4],
    pub x: [u32; 4],
    pub imm: i64,
    pub aux: u32,
    pub ctl: Ctl,
    pub class: Class,
}

impl I {
    pub fn new(f: ExecFn, class: Class) -> I {
        I {
            f,
            r: [NONE; 4],
            x: [NONE; 4],
            imm: 0,
            aux: 0,
            ctl: Ctl::Op,
            class,
        }
    }
    pub fn r(mut self, r: [u32; 4]) -> I {
        self.r = r;
        self
    }
    pub fn x(mut self, x: [u32; 4]) -> I {
        self.x = x;
        self
    }
    pub fn imm(mut self, v: i64) -> I {
        self.imm = v;
        self
    }
    pub fn aux(mut self, v: u32) -> I {
        self.aux = v;
        self
    }
    pub fn ctl(mut self, c: Ctl) -> I {
        self.ctl = c;
        self
    }
}

impl<'a> KLower<'a> {
    pub fn emit(&mut self, i: I) -> usize {
        self.code.push(Inst {
            f: i.f,
            r: i.r,
            x: i.x,
            imm: i.imm,
            aux: i.aux,
            guard: self.guard,
            ctl: i.ctl,
            class: i.class,
        });
        self.text.push(self.cur_text.clone());
        self.code.len() - 1
    }

    pub fn new_reg(&mut self, ty: Ty) -> u32 {
        self.nregs += 1;
        self.reg_ty.push(ty);
        self.nregs - 1
    }

    pub fn new_pred(&mut self) -> u32 {
        self.npreds += 1;
        self.npreds - 1
    }

    /// Register initialised at warp start.
    pub fn init_reg(&mut self, init: Init) -> u32 {
        if let Some(&r) = self.init_map.get(&init) {
            return r;
        }
        let r = self.new_reg(Ty::B64);
        self.inits.push((r, init));
        self.init_map.insert(init, r);
        r
    }

    pub fn const_reg(&mut self, v: u64) -> u32 {
        self.init_reg(Init::Const(v))
    }

    pub fn alloc_local(&mut self, size: usize, align: usize) -> u32 {
        let off = (self.local_off as usize).next_multiple_of(align.max(1));
        self.local_off = off.saturating_add(size).min(u32::MAX as usize) as u32;
        off.min(u32::MAX as usize) as u32
    }

    pub fn alloc_shared(&mut self, size: usize, align: usize) -> u32 {
        let off = (self.shared_off as usize).next_multiple_of(align.max(1));
        self.shared_off = off.saturating_add(size).min(u32::MAX as usize) as u32;
        off.min(u32::MAX as usize) as u32
    }
}

fn lower_kernel(m: &ModCtx<'_>, f: &Function, max_code: usize) -> Res<Kernel> {
    let mut k = KLower {
        m,
        code: Vec::new(),
        text: Vec::new(),
        nregs: 0,
        npreds: 0,
        reg_ty: Vec::new(),
        inits: Vec::new(),
        init_map: HashMap::new(),
        shared_off: 0,
        shared_map: HashMap::new(),
        local_off: 0,
        local_map: HashMap::new(),
        tables: Vec::new(),
        dyn_shared: false,
        call_stack: vec![f.name.clone()],
        sink: None,
        carry: None,
        guard: NO_GUARD,
        cur_text: (f.line, "".into()),
        max_code,
    };
    let (params, scope, param_bytes) = param_layout(f)?;
    let frame = Frame {
        scopes: vec![scope],
        labels: HashMap::new(),
        fixups: Vec::new(),
        tables: Vec::new(),
        rets: Vec::new(),
        is_entry: true,
        fname: f.name.clone(),
    };
    k.lower_function_body(f, frame)?;
    // Terminating exit so that every lane leaves the program.
    k.guard = NO_GUARD;
    k.cur_text = (0, "exit (implicit end of kernel)".into());
    k.emit(I::new(crate::exec::program::h_nop, Class::Control).ctl(Ctl::Exit));
    k.check_resources(f)?;
    let max_threads = f
        .reqntid
        .or(f.maxntid)
        .map(|d| d.iter().fold(1u32, |a, &b| a.saturating_mul(b)))
        .unwrap_or(1024)
        .clamp(1, 1024);
    let num_regs = k.reg_ty.len() as u32 - k.inits.len() as u32;
    Ok(Kernel {
        name: f.name.clone(),
        params,
        param_bytes,
        max_threads,
        reqntid: f.reqntid,
        num_regs,
        uses_dynamic_shared: k.dyn_shared,
        prog: Program {
            code: k.code,
            text: k.text,
            nregs: k.nregs.max(1),
            npreds: k.npreds.max(1),
            inits: k.inits,
            tables: k.tables,
            local_bytes: k.local_off,
            static_shared: k.shared_off,
        },
    })
}
