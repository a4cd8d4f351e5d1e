//! The module-scope structure of one PTX unit, as the linker needs it: its header directives, each
//! top-level function and variable (name, linkage, whether it is a definition, byte spans), and
//! the debug directives (`.file`, `.loc`, `.section`) the linked text leaves out.
//!
//! Works on the crate's token stream (positions turned back into byte offsets), so comments and
//! strings never confuse it; the unit has already been parsed, so the text is well-formed.

use crate::error::PtxError;
use crate::parse::lexer::{tokenize, Tok, Token};

/// The linkage directive(s) in front of a top-level declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Link {
    /// None: internal to the unit.
    Internal,
    /// `.visible` (and every `.entry`).
    Visible,
    /// `.extern`: defined in another unit.
    Extern,
    /// `.weak` or `.common`: one definition is kept.
    Weak,
}

/// What a top-level declaration declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum What {
    /// `.func` (a body or a prototype).
    Func,
    /// `.entry`.
    Entry,
    /// A `.global` or `.const` variable.
    Var,
    /// A `.shared` or `.local` module-scope variable (never linked across units).
    LocalVar,
}

/// One top-level declaration.
#[derive(Clone, Debug)]
pub(super) struct Item {
    pub what: What,
    pub name: String,
    pub link: Link,
    /// A body (functions) or storage (variables, not `.extern`).
    pub defines: bool,
    /// Bytes of the whole declaration, from its first directive through `;` or `}`.
    pub span: (usize, usize),
    /// Bytes of the body, `{` through `}` (functions with a body).
    pub body: Option<(usize, usize)>,
    /// Bytes of the linkage directive tokens (the `.extern` a resolved prototype rewrites).
    pub link_span: Option<(usize, usize)>,
}

/// One unit's structure.
#[derive(Debug, Default)]
pub(super) struct Unit {
    /// `.version` text (e.g. `8.5`).
    pub version: String,
    /// `.target` entries.
    pub target: Vec<String>,
    /// Spans the linked text leaves out: the header directives and debug directives.
    pub drop: Vec<(usize, usize)>,
    pub items: Vec<Item>,
    /// Every identifier token: (start byte, name).
    pub idents: Vec<(usize, String)>,
}

struct Scanner<'a> {
    src: &'a str,
    toks: Vec<Token>,
    lines: Vec<usize>,
    pos: usize,
}

impl Scanner<'_> {
    fn start(&self, i: usize) -> usize {
        let t = &self.toks[i];
        self.lines[t.line as usize - 1] + t.col as usize - 1
    }
    /// The byte after token `i` (punctuation, identifiers, directives, numbers).
    fn end(&self, i: usize) -> usize {
        match &self.toks[i].tok {
            Tok::Ident(s) => self.start(i) + s.len(),
            Tok::Dot(s) => self.start(i) + 1 + s.len(),
            Tok::P(_) => self.start(i) + 1,
            _ => self.number_end(self.start(i)),
        }
    }
    /// The byte after the number starting at `at`.
    fn number_end(&self, at: usize) -> usize {
        self.src[at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
            .map_or(self.src.len(), |n| at + n)
    }
    fn tok(&self, i: usize) -> Option<&Tok> {
        self.toks.get(i).map(|t| &t.tok)
    }
    fn line_end(&self, at: usize) -> usize {
        self.src[at..].find('\n').map_or(self.src.len(), |n| at + n)
    }
    /// The index of the token closing the bracket opened at `i`.
    fn matching(&self, i: usize, open: char, close: char) -> usize {
        let mut depth = 0usize;
        for j in i..self.toks.len() {
            match self.toks[j].tok {
                Tok::P(c) if c == open => depth += 1,
                Tok::P(c) if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return j;
                    }
                }
                _ => {}
            }
        }
        self.toks.len() - 1
    }
    /// The index of the `;` ending a variable declaration (braces of initialisers skipped).
    fn stmt_end(&self, i: usize) -> usize {
        let mut j = i;
        while j < self.toks.len() {
            match self.toks[j].tok {
                Tok::P(';') => return j,
                Tok::P('{') => j = self.matching(j, '{', '}') + 1,
                _ => j += 1,
            }
        }
        self.toks.len() - 1
    }
}

/// Scans the structure of `src`.
pub(super) fn scan(src: &str) -> Result<Unit, PtxError> {
    let toks = tokenize(src)?;
    let mut lines = vec![0];
    lines.extend(src.match_indices('\n').map(|(i, _)| i + 1));
    let mut s = Scanner {
        src,
        toks,
        lines,
        pos: 0,
    };
    let mut unit = Unit::default();
    for (i, t) in s.toks.iter().enumerate() {
        match &t.tok {
            Tok::Ident(name) => unit.idents.push((s.start(i), name.clone())),
            Tok::Dot(d) if d == "loc" || d == "file" => {
                let at = s.start(i);
                unit.drop.push((at, s.line_end(at)));
            }
            _ => {}
        }
    }
    while s.pos < s.toks.len() {
        top_level(&mut s, &mut unit);
    }
    Ok(unit)
}

/// One module-scope construct at `s.pos`.
fn top_level(s: &mut Scanner<'_>, unit: &mut Unit) {
    let i = s.pos;
    let Some(Tok::Dot(d)) = s.tok(i).cloned() else {
        s.pos += 1;
        return;
    };
    match d.as_str() {
        "version" => {
            let at = s.start(i + 1);
            let end = s.number_end(at);
            unit.version = s.src[at..end].to_string();
            unit.drop.push((s.start(i), end));
            s.pos += 2;
        }
        "target" => {
            let mut j = i + 1;
            while let Some(Tok::Ident(t)) = s.tok(j) {
                unit.target.push(t.clone());
                j += 1;
                if s.tok(j) != Some(&Tok::P(',')) {
                    break;
                }
                j += 1;
            }
            unit.drop.push((s.start(i), s.end(j - 1)));
            s.pos = j;
        }
        "address_size" => {
            unit.drop.push((s.start(i), s.end(i + 1)));
            s.pos += 2;
        }
        "section" => {
            let open = (i..s.toks.len())
                .find(|&j| s.tok(j) == Some(&Tok::P('{')))
                .unwrap_or(s.toks.len() - 1);
            let close = s.matching(open, '{', '}');
            unit.drop.push((s.start(i), s.end(close)));
            s.pos = close + 1;
        }
        "pragma" => s.pos = s.stmt_end(i) + 1,
        "loc" | "file" => s.pos += 1,
        _ => declaration(s, unit),
    }
}

/// A function or variable declaration at `s.pos`, with its linkage directives.
fn declaration(s: &mut Scanner<'_>, unit: &mut Unit) {
    let first = s.pos;
    let mut link = Link::Internal;
    let mut link_span = None;
    while let Some(Tok::Dot(d)) = s.tok(s.pos) {
        let l = match d.as_str() {
            "visible" => Link::Visible,
            "extern" => Link::Extern,
            "weak" | "common" => Link::Weak,
            _ => break,
        };
        link = l;
        link_span = Some((s.start(first), s.end(s.pos)));
        s.pos += 1;
    }
    let kind = match s.tok(s.pos) {
        Some(Tok::Dot(d)) if d == "func" => What::Func,
        Some(Tok::Dot(d)) if d == "entry" => What::Entry,
        Some(Tok::Dot(d)) if d == "global" || d == "const" => What::Var,
        _ => What::LocalVar,
    };
    if matches!(kind, What::Func | What::Entry) {
        function(s, unit, first, kind, link, link_span);
        return;
    }
    let end = s.stmt_end(s.pos);
    let name = (s.pos..end).find_map(|j| match s.tok(j) {
        Some(Tok::Ident(n)) => Some(n.clone()),
        _ => None,
    });
    if let Some(name) = name {
        unit.items.push(Item {
            what: kind,
            name,
            link,
            defines: link != Link::Extern,
            span: (s.start(first), s.end(end)),
            body: None,
            link_span,
        });
    }
    s.pos = end + 1;
}

/// `.func`/`.entry` at `s.pos`: `[(rets)] name [(params)] attributes* (; | { body })`.
fn function(
    s: &mut Scanner<'_>,
    unit: &mut Unit,
    first: usize,
    what: What,
    link: Link,
    link_span: Option<(usize, usize)>,
) {
    let mut j = s.pos + 1;
    if s.tok(j) == Some(&Tok::P('(')) {
        j = s.matching(j, '(', ')') + 1;
    }
    let name = match s.tok(j) {
        Some(Tok::Ident(n)) => n.clone(),
        _ => String::new(),
    };
    while j < s.toks.len() && !matches!(s.tok(j), Some(Tok::P(';' | '{'))) {
        if s.tok(j) == Some(&Tok::P('(')) {
            j = s.matching(j, '(', ')');
        }
        j += 1;
    }
    let (body, end) = match s.tok(j) {
        Some(Tok::P('{')) => {
            let close = s.matching(j, '{', '}');
            (Some((s.start(j), s.end(close))), close)
        }
        _ => (None, j.min(s.toks.len() - 1)),
    };
    let link = if what == What::Entry && link == Link::Internal {
        Link::Visible
    } else {
        link
    };
    unit.items.push(Item {
        what,
        name,
        link,
        defines: body.is_some(),
        span: (s.start(first), s.end(end)),
        body,
        link_span,
    });
    s.pos = end + 1;
}
