//! PTX text → [`ast::AstModule`]: recursive-descent parser over the token stream.

pub(crate) mod ast;
mod decl;
pub(crate) mod lexer;

use crate::error::PtxError;
use crate::limits::MAX_NESTING;
use ast::*;
use lexer::{Tok, Token};

/// Parse a whole PTX module.
pub(crate) fn parse(src: &str) -> Result<AstModule, PtxError> {
    let toks = lexer::tokenize(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    p.module()
}

pub(crate) struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// Current nesting of recursive constructs (operands, initializers, body blocks).
    depth: u32,
}

const EOF_TOK: Tok = Tok::P('\0');

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map(|t| &t.tok).unwrap_or(&EOF_TOK)
    }
    fn peek_at(&self, k: usize) -> &Tok {
        self.toks
            .get(self.pos + k)
            .map(|t| &t.tok)
            .unwrap_or(&EOF_TOK)
    }
    fn at_eof(&self) -> bool {
        self.pos >= self.toks.len()
    }
    fn pos_info(&self) -> (u32, u32) {
        match self.toks.get(self.pos) {
            Some(t) => (t.line, t.col),
            None => self
                .toks
                .last()
                .map(|t| (t.line, t.col + 1))
                .unwrap_or((1, 1)),
        }
    }
    fn err<T>(&self, msg: impl Into<String>) -> Result<T, PtxError> {
        let (line, col) = self.pos_info();
        Err(PtxError::Parse {
            line,
            col,
            msg: msg.into(),
        })
    }
    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }
    fn is_p(&self, c: char) -> bool {
        *self.peek() == Tok::P(c)
    }
    fn eat_p(&mut self, c: char) -> bool {
        if self.is_p(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_p(&mut self, c: char) -> Result<(), PtxError> {
        if self.eat_p(c) {
            Ok(())
        } else {
            self.err(format!("expected `{c}`, found {}", describe(self.peek())))
        }
    }
    fn is_dot(&self, name: &str) -> bool {
        matches!(self.peek(), Tok::Dot(d) if d == name)
    }
    fn eat_dot(&mut self, name: &str) -> bool {
        if self.is_dot(name) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> Result<String, PtxError> {
        match self.peek().clone() {
            Tok::Ident(s) => {
                self.pos += 1;
                Ok(s)
            }
            t => self.err(format!("expected identifier, found {}", describe(&t))),
        }
    }
    fn int(&mut self) -> Result<u64, PtxError> {
        match *self.peek() {
            Tok::Int(v) => {
                self.pos += 1;
                Ok(v)
            }
            ref t => self.err(format!("expected integer, found {}", describe(t))),
        }
    }
    /// Runs `f` one nesting level deeper: past [`MAX_NESTING`] levels the input is rejected
    /// with a parse error instead of recursing further (hostile input must not exhaust the stack).
    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, PtxError>,
    ) -> Result<T, PtxError> {
        if self.depth >= MAX_NESTING {
            return self.err(format!("nesting deeper than {MAX_NESTING} levels"));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }
    fn line(&self) -> u32 {
        self.pos_info().0
    }
    /// Skip the remaining tokens on the current token's line (for `.loc`, `.file`).
    fn skip_line(&mut self) {
        let line = self.toks.get(self.pos).map(|t| t.line).unwrap_or(0);
        while self.pos < self.toks.len() && self.toks[self.pos].line == line {
            self.pos += 1;
        }
    }
    /// Skip tokens up to and including the next `;`.
    fn skip_stmt(&mut self) {
        while !self.at_eof() && !self.eat_p(';') {
            self.pos += 1;
        }
    }
    /// Skip a balanced `{ ... }` block (current token must be `{`).
    fn skip_block(&mut self) -> Result<(), PtxError> {
        self.expect_p('{')?;
        let mut depth = 1;
        while depth > 0 {
            if self.at_eof() {
                return self.err("unterminated block");
            }
            match self.bump() {
                Tok::P('{') => depth += 1,
                Tok::P('}') => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }

    fn module(&mut self) -> Result<AstModule, PtxError> {
        let mut m = AstModule {
            address_size: 64,
            ..Default::default()
        };
        while !self.at_eof() {
            let (line, col) = self.pos_info();
            match self.peek().clone() {
                Tok::Dot(d) => match d.as_str() {
                    "version" => {
                        self.pos += 1;
                        m.version = match self.bump() {
                            Tok::Float(v) => {
                                let s = format!("{v}");
                                let mut it = s.split('.');
                                let a = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                                let b = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                                (a, b)
                            }
                            Tok::Int(v) => (v as u32, 0),
                            _ => {
                                return Err(PtxError::Parse {
                                    line,
                                    col,
                                    msg: "bad .version".into(),
                                })
                            }
                        };
                    }
                    "target" => {
                        self.pos += 1;
                        m.target.push(self.ident()?);
                        while self.eat_p(',') {
                            m.target.push(self.ident()?);
                        }
                    }
                    "address_size" => {
                        self.pos += 1;
                        m.address_size = self.int()? as u32;
                        if m.address_size != 64 {
                            return Err(PtxError::Unsupported {
                                line,
                                instruction: format!(".address_size {}", m.address_size),
                                reason: "only 64-bit addressing is supported".into(),
                            });
                        }
                    }
                    "file" | "loc" => self.skip_line(),
                    "section" => {
                        self.pos += 1;
                        while !self.is_p('{') && !self.at_eof() {
                            self.pos += 1;
                        }
                        self.skip_block()?;
                    }
                    "pragma" => self.skip_stmt(),
                    "visible" | "extern" | "weak" | "common" | "entry" | "func" | "global"
                    | "const" | "shared" | "local" => self.top_decl(&mut m)?,
                    other => {
                        return Err(PtxError::Unsupported {
                            line,
                            instruction: format!(".{other}"),
                            reason: "unsupported module-level directive".into(),
                        })
                    }
                },
                Tok::P(';') => self.pos += 1,
                t => return self.err(format!("unexpected {} at module scope", describe(&t))),
            }
        }
        Ok(m)
    }

    fn top_decl(&mut self, m: &mut AstModule) -> Result<(), PtxError> {
        let mut linkage = Linkage::None;
        loop {
            linkage = match self.peek() {
                Tok::Dot(d) if d == "visible" => Linkage::Visible,
                Tok::Dot(d) if d == "extern" => Linkage::Extern,
                Tok::Dot(d) if d == "weak" => Linkage::Weak,
                Tok::Dot(d) if d == "common" => Linkage::Common,
                _ => break,
            };
            self.pos += 1;
        }
        if self.is_dot("entry") || self.is_dot("func") {
            let _ = linkage;
            let f = self.function()?;
            m.funcs.push(f);
            return Ok(());
        }
        let decls = self.var_decls(linkage, true)?;
        m.vars.extend(decls);
        Ok(())
    }
}

pub(crate) fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Dot(s) => format!("`.{s}`"),
        Tok::Int(v) => format!("`{v}`"),
        Tok::F32(b) => format!("`0f{b:08X}`"),
        Tok::F64(b) => format!("`0d{b:016X}`"),
        Tok::Float(v) => format!("`{v}`"),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::P('\0') => "end of input".into(),
        Tok::P(c) => format!("`{c}`"),
    }
}
