//! Syntax tree produced by the parser.

use std::fmt;

/// PTX state space of a variable declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Space {
    Reg,
    Global,
    Const,
    Shared,
    Local,
    Param,
}

/// Linkage directive in front of a declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Linkage {
    #[default]
    None,
    Visible,
    Extern,
    Weak,
    Common,
}

/// Parsed module.
#[derive(Debug, Default)]
pub(crate) struct AstModule {
    pub version: (u32, u32),
    pub target: Vec<String>,
    pub address_size: u32,
    pub vars: Vec<VarDecl>,
    pub funcs: Vec<Function>,
}

/// Scalar initializer element.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InitVal {
    Int(i128),
    F32(u32),
    F64(u64),
    Float(f64),
    /// Address of a symbol plus addend (`sym`, `sym+8`, `generic(sym)`).
    Sym {
        name: String,
        addend: i64,
        generic: bool,
    },
}

/// Variable initializer: scalar or brace list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Init {
    Val(InitVal),
    List(Vec<Init>),
}

/// Variable / parameter declaration.
#[derive(Debug, Clone)]
pub(crate) struct VarDecl {
    pub space: Space,
    pub linkage: Linkage,
    pub align: Option<u32>,
    /// Scalar element type name without the dot (e.g. `b8`, `f32`).
    pub ty: String,
    /// Vector width (1, 2, 4).
    pub vec: u32,
    pub name: String,
    /// Array dimensions; `None` for an unsized `[]` dimension.
    pub dims: Vec<Option<u64>>,
    pub init: Option<Init>,
    pub line: u32,
    pub col: u32,
}

/// `.reg` declaration: `names` holds (name, count) where count is `Some(n)` for `%r<n>`.
#[derive(Debug, Clone)]
pub(crate) struct RegDecl {
    pub ty: String,
    pub vec: u32,
    pub names: Vec<(String, Option<u32>)>,
    pub line: u32,
}

/// Instruction operand.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    /// Register, symbol, label or special register (`%tid.x`).
    Name(String),
    /// Integer immediate (already negated if written with `-`).
    Int(i128),
    /// `0f` literal bits.
    F32(u32),
    /// `0d` literal bits.
    F64(u64),
    /// Decimal float literal.
    Float(f64),
    /// `[base+offset]`; base `None` for an absolute address.
    Addr { base: Option<String>, offset: i64 },
    /// `{a, b, ...}` vector of names (`_` is a sink).
    Vec(Vec<Operand>),
    /// `%p|%q` two-destination form.
    Pair(String, String),
    /// `!%p` negated predicate.
    Not(String),
    /// `( ... )` list in a call.
    List(Vec<Operand>),
}

/// One instruction statement.
#[derive(Debug, Clone)]
pub(crate) struct AstInst {
    /// Guard predicate name and negation flag.
    pub guard: Option<(String, bool)>,
    pub op: String,
    pub mods: Vec<String>,
    pub args: Vec<Operand>,
    pub line: u32,
}

impl AstInst {
    /// `op.mod1.mod2` as written.
    pub fn opcode(&self) -> String {
        let mut s = self.op.clone();
        for m in &self.mods {
            s.push('.');
            s.push_str(m);
        }
        s
    }
}

fn fmt_operand(o: &Operand, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match o {
        Operand::Name(n) => write!(f, "{n}"),
        Operand::Int(v) => write!(f, "{v}"),
        Operand::F32(b) => write!(f, "0f{b:08X}"),
        Operand::F64(b) => write!(f, "0d{b:016X}"),
        Operand::Float(v) => write!(f, "{v:?}"),
        Operand::Addr { base, offset } => match base {
            Some(b) if *offset != 0 => write!(f, "[{b}+{offset}]"),
            Some(b) => write!(f, "[{b}]"),
            None => write!(f, "[{offset}]"),
        },
        Operand::Vec(v) | Operand::List(v) => {
            let (open, close) = if matches!(o, Operand::Vec(_)) {
                ('{', '}')
            } else {
                ('(', ')')
            };
            write!(f, "{open}")?;
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                fmt_operand(x, f)?;
            }
            write!(f, "{close}")
        }
        Operand::Pair(a, b) => write!(f, "{a}|{b}"),
        Operand::Not(p) => write!(f, "!{p}"),
    }
}

impl fmt::Display for AstInst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((p, neg)) = &self.guard {
            write!(f, "@{}{} ", if *neg { "!" } else { "" }, p)?;
        }
        write!(f, "{}", self.opcode())?;
        for (i, a) in self.args.iter().enumerate() {
            write!(f, "{}", if i == 0 { " " } else { ", " })?;
            fmt_operand(a, f)?;
        }
        write!(f, ";")
    }
}

/// Statement inside a function body.
#[derive(Debug, Clone)]
pub(crate) enum Stmt {
    Reg(RegDecl),
    Var(VarDecl),
    Label(String),
    Inst(AstInst),
    /// `label: .branchtargets a, b, c;`
    BranchTargets(String, Vec<String>, u32),
    /// Start of a nested `{` scope.
    Open,
    /// End of a nested scope.
    Close,
}

/// `.entry` or `.func`.
#[derive(Debug, Clone)]
pub(crate) struct Function {
    pub name: String,
    pub is_entry: bool,
    pub params: Vec<VarDecl>,
    pub rets: Vec<VarDecl>,
    pub body: Option<Vec<Stmt>>,
    pub maxntid: Option<[u32; 3]>,
    pub reqntid: Option<[u32; 3]>,
    pub line: u32,
}
