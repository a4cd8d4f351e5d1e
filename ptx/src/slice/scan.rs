//! The token view of a module that the rewrite works on: the lexer's tokens with their byte
//! offsets in the text, and where each `.entry`/`.func` lies (linkage, name, parameter list,
//! body) as token indices.
//!
//! The scan only finds boundaries; the module has already been parsed (so it is well-formed),
//! and [`functions`] checks that it finds the same functions, in the same order, as the parser.

use super::SliceError;
use crate::parse::ast::AstModule;
use crate::parse::lexer::{tokenize, Tok, Token};
use std::collections::HashSet;

/// PTX text with its tokens.
pub(super) struct Source<'a> {
    pub text: &'a str,
    pub toks: Vec<Token>,
    /// Byte offset of the start of each line (line 1 at index 0).
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    /// Tokenizes `text`.
    pub fn new(text: &'a str) -> Result<Self, SliceError> {
        let toks = tokenize(text)?;
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Ok(Source {
            text,
            toks,
            line_starts,
        })
    }

    /// The token at `k` (end of input: `\0`).
    pub fn tok(&self, k: usize) -> &Tok {
        const EOF: Tok = Tok::P('\0');
        self.toks.get(k).map(|t| &t.tok).unwrap_or(&EOF)
    }

    /// Source line of token `k`.
    pub fn line(&self, k: usize) -> u32 {
        self.toks.get(k).map(|t| t.line).unwrap_or(0)
    }

    /// Byte offset of the first character of token `k` (the text's end past the last token).
    pub fn start(&self, k: usize) -> usize {
        let Some(t) = self.toks.get(k) else {
            return self.text.len();
        };
        let line = self.line_starts.get(t.line as usize - 1).copied();
        line.map_or(self.text.len(), |l| l + t.col as usize - 1)
    }

    /// Byte offset just past token `k`, for the tokens whose text is known exactly
    /// (identifiers, directives, punctuation); `None` for literals.
    pub fn end(&self, k: usize) -> Option<usize> {
        let len = match self.toks.get(k)?.tok {
            Tok::Ident(ref s) => s.len(),
            Tok::Dot(ref s) => s.len() + 1,
            Tok::P(_) => 1,
            _ => return None,
        };
        Some(self.start(k) + len)
    }

    /// Token index of the bracket closing the one at `open` (`(`→`)`, `{`→`}`).
    pub fn matching(&self, open: usize) -> Result<usize, SliceError> {
        let (o, c) = match self.tok(open) {
            Tok::P('(') => ('(', ')'),
            Tok::P('{') => ('{', '}'),
            _ => return Err(scan_err(self, open, "expected `(` or `{`")),
        };
        let mut depth = 0usize;
        for k in open..self.toks.len() {
            match self.tok(k) {
                Tok::P(p) if *p == o => depth += 1,
                Tok::P(p) if *p == c => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(k);
                    }
                }
                _ => {}
            }
        }
        Err(scan_err(self, open, "unbalanced bracket"))
    }
}

/// Where one `.entry` / `.func` lies, as token indices.
#[derive(Debug)]
pub(super) struct FuncSpan {
    pub name: String,
    pub is_entry: bool,
    /// First token of the definition (a linkage directive, or `.entry`/`.func`).
    pub start: usize,
    /// The name.
    pub name_tok: usize,
    /// `(` and `)` of the parameter list, if it has one.
    pub params: Option<(usize, usize)>,
    /// `{` and `}` of the body; `None` for a prototype.
    pub body: Option<(usize, usize)>,
}

/// The functions of the module in source order, and every identifier used inside `.section`
/// blocks (debug information that may name labels of function bodies).
pub(super) fn functions(
    src: &Source<'_>,
    ast: &AstModule,
) -> Result<(Vec<FuncSpan>, HashSet<String>), SliceError> {
    let mut funcs = Vec::new();
    let mut section_idents = HashSet::new();
    let (mut k, mut depth) = (0usize, 0usize);
    while k < src.toks.len() {
        match src.tok(k) {
            Tok::P('{') => depth += 1,
            Tok::P('}') => depth = depth.saturating_sub(1),
            Tok::Dot(d) if depth == 0 && (d == "entry" || d == "func") => {
                let f = function(src, k)?;
                k = f.body.map_or(k, |(_, close)| close);
                funcs.push(f);
            }
            Tok::Dot(d) if depth == 0 && d == "section" => {
                let open = (k..src.toks.len())
                    .find(|&j| *src.tok(j) == Tok::P('{'))
                    .ok_or_else(|| scan_err(src, k, "`.section` without a block"))?;
                let close = src.matching(open)?;
                for j in open..close {
                    if let Tok::Ident(s) = src.tok(j) {
                        section_idents.insert(s.clone());
                    }
                }
                k = close;
            }
            _ => {}
        }
        k += 1;
    }
    let same = funcs.len() == ast.funcs.len()
        && funcs.iter().zip(&ast.funcs).all(|(s, f)| {
            s.name == f.name && s.is_entry == f.is_entry && s.body.is_some() == f.body.is_some()
        });
    if !same {
        return Err(SliceError::Scan(
            "the functions found in the tokens differ from the parser's".into(),
        ));
    }
    Ok((funcs, section_idents))
}

/// The span of the function whose `.entry`/`.func` directive is token `k`.
fn function(src: &Source<'_>, k: usize) -> Result<FuncSpan, SliceError> {
    let is_entry = *src.tok(k) == Tok::Dot("entry".into());
    let mut start = k;
    while start > 0
        && matches!(src.tok(start - 1), Tok::Dot(d) if matches!(d.as_str(), "visible" | "extern" | "weak" | "common"))
    {
        start -= 1;
    }
    let mut j = k + 1;
    if !is_entry && *src.tok(j) == Tok::P('(') {
        j = src.matching(j)? + 1;
    }
    let Tok::Ident(name) = src.tok(j) else {
        return Err(scan_err(src, j, "expected a function name"));
    };
    let (name, name_tok) = (name.clone(), j);
    j += 1;
    let mut params = None;
    if *src.tok(j) == Tok::P('(') {
        let close = src.matching(j)?;
        params = Some((j, close));
        j = close + 1;
    }
    loop {
        match src.tok(j) {
            Tok::P(';') => break Ok(span(name, is_entry, start, name_tok, params, None)),
            Tok::P('{') => {
                let body = Some((j, src.matching(j)?));
                break Ok(span(name, is_entry, start, name_tok, params, body));
            }
            Tok::Dot(d) if d == "pragma" => {
                while !matches!(src.tok(j), Tok::P(';') | Tok::P('\0')) {
                    j += 1;
                }
                j += 1;
            }
            Tok::P('\0') => break Err(scan_err(src, j, "function without body or `;`")),
            _ => j += 1,
        }
    }
}

fn span(
    name: String,
    is_entry: bool,
    start: usize,
    name_tok: usize,
    params: Option<(usize, usize)>,
    body: Option<(usize, usize)>,
) -> FuncSpan {
    FuncSpan {
        name,
        is_entry,
        start,
        name_tok,
        params,
        body,
    }
}

fn scan_err(src: &Source<'_>, k: usize, msg: &str) -> SliceError {
    SliceError::Scan(format!("line {}: {msg}", src.line(k)))
}
