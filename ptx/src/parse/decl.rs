//! Declarations, function bodies, instructions and operands.

use super::ast::*;
use super::lexer::Tok;
use super::{describe, Parser};
use crate::error::PtxError;
use crate::limits::MAX_NESTING;

/// Declared name, array dimensions, and `<count>` of a register range.
type Declarator = (String, Vec<Option<u64>>, Option<u32>);

const TYPES: &[&str] = &[
    "b8", "b16", "b32", "b64", "b128", "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "f16",
    "f16x2", "bf16", "bf16x2", "f32", "f64", "pred", "e4m3", "e5m2", "e4m3x2", "e5m2x2", "tf32",
];

fn space_of(d: &str) -> Option<Space> {
    Some(match d {
        "reg" => Space::Reg,
        "global" => Space::Global,
        "const" => Space::Const,
        "shared" => Space::Shared,
        "local" => Space::Local,
        "param" => Space::Param,
        _ => return None,
    })
}

impl Parser {
    /// `.entry` / `.func` definition or prototype.
    pub(super) fn function(&mut self) -> Result<Function, PtxError> {
        let line = self.line();
        let is_entry = self.is_dot("entry");
        self.pos += 1;
        let mut rets = Vec::new();
        if !is_entry && self.is_p('(') {
            rets = self.param_list()?;
        }
        let name = self.ident()?;
        let mut params = Vec::new();
        if self.is_p('(') {
            params = self.param_list()?;
        }
        let mut f = Function {
            name,
            is_entry,
            params,
            rets,
            body: None,
            maxntid: None,
            reqntid: None,
            line,
        };
        loop {
            match self.peek().clone() {
                Tok::Dot(d) => {
                    self.pos += 1;
                    match d.as_str() {
                        "maxntid" => f.maxntid = Some(self.dims3()?),
                        "reqntid" => f.reqntid = Some(self.dims3()?),
                        "minnctapersm" | "maxnctapersm" | "maxnreg" | "maxclusterrank" => {
                            self.int()?;
                        }
                        "reqnctapercluster" => {
                            self.dims3()?;
                        }
                        "noreturn"
                        | "explicitcluster"
                        | "abi_preserve"
                        | "abi_preserve_control" => {
                            while let Tok::Int(_) = self.peek() {
                                self.pos += 1;
                            }
                        }
                        "pragma" => self.skip_stmt(),
                        other => {
                            return Err(PtxError::Unsupported {
                                line: self.line(),
                                instruction: format!(".{other}"),
                                reason: "unsupported function directive".into(),
                            })
                        }
                    }
                }
                Tok::P(';') => {
                    self.pos += 1;
                    return Ok(f);
                }
                Tok::P('{') => {
                    f.body = Some(self.body()?);
                    return Ok(f);
                }
                t => return self.err(format!("expected function body, found {}", describe(&t))),
            }
        }
    }

    fn dims3(&mut self) -> Result<[u32; 3], PtxError> {
        let mut d = [1u32; 3];
        d[0] = self.int()? as u32;
        for v in d.iter_mut().skip(1) {
            if !self.eat_p(',') {
                break;
            }
            *v = self.int()? as u32;
        }
        Ok(d)
    }

    fn param_list(&mut self) -> Result<Vec<VarDecl>, PtxError> {
        self.expect_p('(')?;
        let mut v = Vec::new();
        if self.eat_p(')') {
            return Ok(v);
        }
        loop {
            let mut d = self.var_head(Linkage::None)?;
            let (name, dims, _) = self.declarator(false)?;
            d.name = name;
            d.dims = dims;
            v.push(d);
            if self.eat_p(')') {
                return Ok(v);
            }
            self.expect_p(',')?;
        }
    }

    /// Space, alignment, vector and type modifiers of a declaration.
    fn var_head(&mut self, linkage: Linkage) -> Result<VarDecl, PtxError> {
        let (line, col) = self.pos_info();
        let mut d = VarDecl {
            space: Space::Reg,
            linkage,
            align: None,
            ty: String::new(),
            vec: 1,
            name: String::new(),
            dims: Vec::new(),
            init: None,
            line,
            col,
        };
        let mut have_space = false;
        let mut after_ptr = false;
        while let Tok::Dot(m) = self.peek().clone() {
            self.pos += 1;
            match m.as_str() {
                "align" => {
                    let a = self.int()? as u32;
                    if !after_ptr {
                        d.align = Some(a);
                    }
                }
                "ptr" => after_ptr = true,
                "v2" => d.vec = 2,
                "v4" => d.vec = 4,
                "v8" => d.vec = 8,
                "attribute" => {
                    self.expect_p('(')?;
                    while !self.eat_p(')') {
                        if self.at_eof() {
                            return self.err("unterminated .attribute");
                        }
                        self.pos += 1;
                    }
                }
                "texref" | "samplerref" | "surfref" => {
                    return Err(PtxError::Unsupported {
                        line,
                        instruction: format!(".{m}"),
                        reason: "textures and surfaces are not supported".into(),
                    })
                }
                m if TYPES.contains(&m) => d.ty = m.to_string(),
                m => match space_of(m) {
                    Some(s) if !have_space => {
                        d.space = s;
                        have_space = true;
                    }
                    Some(_) => {} // `.ptr .global` attribute
                    None => return self.err(format!("unexpected `.{m}` in declaration")),
                },
            }
        }
        if !have_space {
            return self.err("declaration without state space");
        }
        if d.ty.is_empty() {
            return self.err("declaration without type");
        }
        Ok(d)
    }

    /// Name, optional `<count>` and array dimensions.
    fn declarator(&mut self, allow_range: bool) -> Result<Declarator, PtxError> {
        let name = self.ident()?;
        let mut count = None;
        if allow_range && self.eat_p('<') {
            count = Some(self.int()? as u32);
            self.expect_p('>')?;
        }
        let mut dims = Vec::new();
        while self.eat_p('[') {
            if self.eat_p(']') {
                dims.push(None);
            } else {
                dims.push(Some(self.int()?));
                self.expect_p(']')?;
            }
        }
        Ok((name, dims, count))
    }

    /// One declaration statement (possibly several comma-separated names), through `;`.
    pub(super) fn var_decls(
        &mut self,
        linkage: Linkage,
        _module: bool,
    ) -> Result<Vec<VarDecl>, PtxError> {
        let head = self.var_head(linkage)?;
        let mut out = Vec::new();
        loop {
            let (line, col) = self.pos_info();
            let (name, dims, _) = self.declarator(false)?;
            let mut d = head.clone();
            d.name = name;
            d.dims = dims;
            d.line = line;
            d.col = col;
            if self.eat_p('=') {
                d.init = Some(self.init()?);
            }
            out.push(d);
            if self.eat_p(';') {
                return Ok(out);
            }
            self.expect_p(',')?;
        }
    }

    fn reg_decl(&mut self) -> Result<RegDecl, PtxError> {
        let line = self.line();
        let head = self.var_head(Linkage::None)?;
        let mut names = Vec::new();
        loop {
            let (name, dims, count) = self.declarator(true)?;
            if !dims.is_empty() {
                return self.err("register arrays are not allowed");
            }
            names.push((name, count));
            if self.eat_p(';') {
                break;
            }
            self.expect_p(',')?;
        }
        Ok(RegDecl {
            ty: head.ty,
            vec: head.vec,
            names,
            line,
        })
    }

    /// Optional `+N` / `-N` sequence.
    fn addend(&mut self) -> Result<i64, PtxError> {
        let mut addend = 0i64;
        while self.is_p('+') || self.is_p('-') {
            let sign = if self.eat_p('-') {
                -1
            } else {
                self.pos += 1;
                if self.eat_p('-') {
                    -1
                } else {
                    1
                }
            };
            addend = addend.wrapping_add((self.int()? as i64).wrapping_mul(sign));
        }
        Ok(addend)
    }

    /// An initializer: a scalar or a (nested, at most [`MAX_NESTING`] deep) brace list.
    fn init(&mut self) -> Result<Init, PtxError> {
        self.nested(Self::init_inner)
    }

    fn init_inner(&mut self) -> Result<Init, PtxError> {
        if self.eat_p('{') {
            let mut v = Vec::new();
            if self.eat_p('}') {
                return Ok(Init::List(v));
            }
            loop {
                v.push(self.init()?);
                if self.eat_p('}') {
                    return Ok(Init::List(v));
                }
                self.expect_p(',')?;
            }
        }
        let neg = self.eat_p('-');
        let v = match self.bump() {
            Tok::Int(v) => InitVal::Int(if neg { -(v as i128) } else { v as i128 }),
            Tok::F32(b) => InitVal::F32(if neg { b ^ 0x8000_0000 } else { b }),
            Tok::F64(b) => InitVal::F64(if neg { b ^ (1 << 63) } else { b }),
            Tok::Float(f) => InitVal::Float(if neg { -f } else { f }),
            Tok::Ident(s) if !neg => {
                let mut addend = 0i64;
                let (name, generic) = if s == "generic" && self.eat_p('(') {
                    let n = self.ident()?;
                    addend = addend.wrapping_add(self.addend()?);
                    self.expect_p(')')?;
                    (n, true)
                } else {
                    (s, false)
                };
                addend = addend.wrapping_add(self.addend()?);
                InitVal::Sym {
                    name,
                    addend,
                    generic,
                }
            }
            t => {
                self.pos -= 1;
                return self.err(format!("bad initializer {}", describe(&t)));
            }
        };
        Ok(Init::Val(v))
    }

    /// Function body from `{` through the matching `}`.
    pub(super) fn body(&mut self) -> Result<Vec<Stmt>, PtxError> {
        self.expect_p('{')?;
        let mut out = Vec::new();
        let mut depth = 1;
        loop {
            if self.at_eof() {
                return self.err("unexpected end of input inside function body");
            }
            let line = self.line();
            match self.peek().clone() {
                Tok::P('{') => {
                    if depth >= MAX_NESTING {
                        return self.err(format!("blocks nested deeper than {MAX_NESTING} levels"));
                    }
                    self.pos += 1;
                    depth += 1;
                    out.push(Stmt::Open);
                }
                Tok::P('}') => {
                    self.pos += 1;
                    depth -= 1;
                    if depth == 0 {
                        return Ok(out);
                    }
                    out.push(Stmt::Close);
                }
                Tok::P(';') => self.pos += 1,
                Tok::Dot(d) => match d.as_str() {
                    "reg" => out.push(Stmt::Reg(self.reg_decl()?)),
                    "local" | "shared" | "param" | "const" | "global" => {
                        for v in self.var_decls(Linkage::None, false)? {
                            out.push(Stmt::Var(v));
                        }
                    }
                    "extern" | "visible" | "weak" => {
                        self.pos += 1;
                        let link = if d == "extern" {
                            Linkage::Extern
                        } else {
                            Linkage::Visible
                        };
                        for v in self.var_decls(link, false)? {
                            out.push(Stmt::Var(v));
                        }
                    }
                    "pragma" => self.skip_stmt(),
                    "loc" | "file" => self.skip_line(),
                    other => {
                        return Err(PtxError::Unsupported {
                            line,
                            instruction: format!(".{other}"),
                            reason: "unsupported directive in function body".into(),
                        })
                    }
                },
                Tok::Ident(name) if *self.peek_at(1) == Tok::P(':') => {
                    self.pos += 2;
                    if self.eat_dot("branchtargets") {
                        let mut t = vec![self.ident()?];
                        while self.eat_p(',') {
                            t.push(self.ident()?);
                        }
                        self.expect_p(';')?;
                        out.push(Stmt::BranchTargets(name, t, line));
                    } else if self.is_dot("callprototype") || self.is_dot("calltargets") {
                        self.skip_stmt();
                    } else {
                        out.push(Stmt::Label(name));
                    }
                }
                Tok::Ident(_) | Tok::P('@') => out.push(Stmt::Inst(self.instruction()?)),
                t => return self.err(format!("unexpected {} in function body", describe(&t))),
            }
        }
    }

    fn instruction(&mut self) -> Result<AstInst, PtxError> {
        let line = self.line();
        let mut guard = None;
        if self.eat_p('@') {
            let neg = self.eat_p('!');
            guard = Some((self.ident()?, neg));
        }
        let op = self.ident()?;
        let mut mods = Vec::new();
        while let Tok::Dot(m) = self.peek().clone() {
            self.pos += 1;
            mods.push(m);
        }
        let mut args = Vec::new();
        if !self.eat_p(';') {
            loop {
                args.push(self.operand()?);
                if self.eat_p(';') {
                    break;
                }
                if !self.eat_p(',') {
                    return self.err(format!(
                        "expected `,` or `;` in operands of `{op}`, found {}",
                        describe(self.peek())
                    ));
                }
            }
        }
        Ok(AstInst {
            guard,
            op,
            mods,
            args,
            line,
        })
    }

    fn name_operand(&mut self) -> Result<String, PtxError> {
        let mut s = self.ident()?;
        if s.starts_with('%') {
            if let Tok::Dot(c) = self.peek() {
                if matches!(c.as_str(), "x" | "y" | "z" | "w") {
                    s.push('.');
                    s.push_str(c);
                    self.pos += 1;
                }
            }
        }
        Ok(s)
    }

    /// One operand; lists, vectors and addresses nest at most [`MAX_NESTING`] deep.
    fn operand(&mut self) -> Result<Operand, PtxError> {
        self.nested(Self::operand_inner)
    }

    /// One operand, dispatched on its first token.
    fn operand_inner(&mut self) -> Result<Operand, PtxError> {
        match self.peek().clone() {
            Tok::P('[') => {
                self.pos += 1;
                self.address_operand()
            }
            Tok::P('{') => {
                self.pos += 1;
                Ok(Operand::Vec(self.operands_until('}', Vec::new())?))
            }
            Tok::P('(') => {
                self.pos += 1;
                if self.eat_p(')') {
                    return Ok(Operand::List(Vec::new()));
                }
                Ok(Operand::List(self.operands_until(')', Vec::new())?))
            }
            Tok::P('!') => {
                self.pos += 1;
                Ok(Operand::Not(self.name_operand()?))
            }
            Tok::P('-') => {
                self.pos += 1;
                self.negated_number()
            }
            Tok::Int(v) => {
                self.pos += 1;
                Ok(Operand::Int(v as i128))
            }
            Tok::F32(b) => {
                self.pos += 1;
                Ok(Operand::F32(b))
            }
            Tok::F64(b) => {
                self.pos += 1;
                Ok(Operand::F64(b))
            }
            Tok::Float(f) => {
                self.pos += 1;
                Ok(Operand::Float(f))
            }
            Tok::Ident(_) => self.named_operand(),
            t => self.err(format!("unexpected {} in operand", describe(&t))),
        }
    }

    /// Operands separated by `,` up to the `close` token, appended to `v`.
    fn operands_until(
        &mut self,
        close: char,
        mut v: Vec<Operand>,
    ) -> Result<Vec<Operand>, PtxError> {
        loop {
            v.push(self.operand()?);
            if self.eat_p(close) {
                return Ok(v);
            }
            self.expect_p(',')?;
        }
    }

    /// `[base+off]` address after the `[` (or the texture / surface form `[tex, {coords}]`).
    fn address_operand(&mut self) -> Result<Operand, PtxError> {
        let mut base = None;
        let mut offset = 0i64;
        match self.peek().clone() {
            Tok::Ident(_) => base = Some(self.name_operand()?),
            Tok::Int(v) => {
                self.pos += 1;
                offset = v as i64;
            }
            t => return self.err(format!("bad address operand {}", describe(&t))),
        }
        while self.is_p('+') || self.is_p('-') {
            let mut neg = self.eat_p('-');
            if !neg {
                self.pos += 1;
                neg = self.eat_p('-');
            }
            let v = self.int()? as i64;
            offset = offset.wrapping_add(if neg { v.wrapping_neg() } else { v });
        }
        if self.eat_p(',') {
            // texture / surface form `[tex, {coords}]`
            let v = vec![Operand::Addr { base, offset }];
            return Ok(Operand::List(self.operands_until(']', v)?));
        }
        self.expect_p(']')?;
        Ok(Operand::Addr { base, offset })
    }

    /// Numeric literal after a `-`, negated.
    fn negated_number(&mut self) -> Result<Operand, PtxError> {
        match self.bump() {
            Tok::Int(v) => Ok(Operand::Int(-(v as i128))),
            Tok::F32(b) => Ok(Operand::F32(b ^ 0x8000_0000)),
            Tok::F64(b) => Ok(Operand::F64(b ^ (1 << 63))),
            Tok::Float(f) => Ok(Operand::Float(-f)),
            t => {
                self.pos -= 1;
                self.err(format!("expected number after `-`, found {}", describe(&t)))
            }
        }
    }

    /// Operand starting with a name: `name`, `d|p` pair, or `sym+off` address.
    fn named_operand(&mut self) -> Result<Operand, PtxError> {
        let a = self.name_operand()?;
        if self.eat_p('|') {
            let b = self.name_operand()?;
            return Ok(Operand::Pair(a, b));
        }
        if self.is_p('+') {
            // `sym+8` as a plain operand (e.g. `mov.u64 %rd1, sym+8`)
            self.pos += 1;
            let neg = self.eat_p('-');
            let v = self.int()? as i64;
            return Ok(Operand::Addr {
                base: Some(a),
                offset: if neg { v.wrapping_neg() } else { v },
            });
        }
        Ok(Operand::Name(a))
    }
}
