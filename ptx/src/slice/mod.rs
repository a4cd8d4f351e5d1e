//! Kernel slicing: a PTX rewrite that lets one launch run as several block-range launches.
//!
//! [`slice_module`] returns the module's text unchanged, followed by a variant of every
//! sliceable `.entry` named `NAME__gs_slice` ([`SLICE_SUFFIX`]), so one module serves whole and
//! sliced launches (the original entries are untouched). The variant takes the original
//! parameters followed by six `.param .u32`: the slice's block offset x, y, z and the original
//! grid's dimensions x, y, z ([`Slice::params`]). At the start of its body it loads them into
//! fresh registers and computes `ctaid + offset` per dimension, and every read of `%ctaid.d`
//! in the body becomes that register, every read of `%nctaid.d` the original dimension; so a
//! block launched at `%ctaid` inside a slice sees exactly what it would see in the whole grid.
//! [`plan_slices`] cuts a grid into such slices. Which entries are refused, and why: see
//! `check.rs` (the reasons come back in [`Slicing::NotSliceable`]).
//!
//! # Why a token-level rewrite
//!
//! The parser's syntax tree has no printer (only instructions print, normalised: literals,
//! comments, `.loc`/`.pragma`, debug sections and declarations are dropped or reshaped), so
//! printing a tree back would risk changing code we do not execute ourselves on real GPUs. The
//! rewrite instead copies the entry's source text and edits it at exact token positions: the
//! name, one insertion in the parameter list, the prologue, and each `%ctaid.d`/`%nctaid.d`
//! (an identifier token and its component token, wherever they appear: any instruction, any
//! operand position, vectors, addresses). The module is parsed first (it must be well-formed,
//! and the call graph and instruction types come from the tree), the token scan must find the
//! same functions as the parser, and the result is parsed again before it is returned.
//!
//! Fresh names cannot clash: the registers (`%gs_slice_0`…) and parameters (`__gs_slice_off_x`…)
//! use a prefix that no identifier of the module starts with (`%gs_slice1_`, … otherwise).

mod check;
mod plan;
mod scan;

pub use plan::{plan_slices, Slice};

use crate::error::PtxError;
use crate::parse::ast::Function;
use check::{Checker, Read, Special, DIMS};
use scan::{FuncSpan, Source};
use thiserror::Error;

/// Suffix of a sliced entry's name: `NAME` → `NAME__gs_slice`.
pub const SLICE_SUFFIX: &str = "__gs_slice";
/// Number of parameters a sliced entry has beyond the original ones (all `.u32`).
pub const SLICE_PARAM_COUNT: usize = 6;
/// Bytes of the extra parameters.
pub const SLICE_PARAM_BYTES: usize = 4 * SLICE_PARAM_COUNT;

/// Why a module could not be rewritten at all (launch it whole).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SliceError {
    /// The module is not PTX the parser accepts.
    #[error("the module does not parse: {0}")]
    Parse(#[from] PtxError),
    /// The token scan disagreed with the parser (a bug).
    #[error("cannot locate the module's functions: {0}")]
    Scan(String),
    /// The rewritten text does not parse (a bug).
    #[error("the rewritten module does not parse: {0}")]
    Rewritten(PtxError),
}

/// A module with sliced variants of its entries.
#[derive(Debug, Clone)]
pub struct SlicedModule {
    /// The original text followed by the sliced variants.
    pub ptx: String,
    /// Every `.entry` of the module, in source order.
    pub entries: Vec<SlicedEntry>,
}

impl SlicedModule {
    /// The entry named `name` (the original name).
    pub fn entry(&self, name: &str) -> Option<&SlicedEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// One `.entry` of a sliced module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicedEntry {
    /// The original name.
    pub name: String,
    /// Number of parameters of the original entry.
    pub param_count: usize,
    /// Size of the original entry's parameter buffer (end of its last parameter).
    pub param_bytes: usize,
    /// Whether it has a sliced variant.
    pub slicing: Slicing,
}

/// Whether an entry has a sliced variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slicing {
    /// Launch slices through `entry`, with the extra parameters at `extra_params_offset`.
    Sliceable {
        /// Name of the sliced variant (`NAME__gs_slice`).
        entry: String,
        /// Byte offset of the first extra parameter in the variant's parameter buffer
        /// (`param_bytes` rounded up to 4).
        extra_params_offset: usize,
    },
    /// No variant; launch the entry whole.
    NotSliceable {
        /// Why (with the PTX line where there is one).
        reason: String,
    },
}

impl SlicedEntry {
    /// Name of the sliced variant, if there is one.
    pub fn sliced_name(&self) -> Option<&str> {
        match &self.slicing {
            Slicing::Sliceable { entry, .. } => Some(entry),
            Slicing::NotSliceable { .. } => None,
        }
    }

    /// The sliced variant's parameter buffer for `slice` of a launch of `grid`: the first
    /// [`Self::param_bytes`] of `params` (the original packed buffer, which may be padded
    /// beyond them), zero padding, and the six values of [`Slice::params`]. `None` when the
    /// entry is not sliceable or `params` is shorter than the original parameters.
    pub fn slice_param_buffer(
        &self,
        params: &[u8],
        slice: &Slice,
        grid: [u32; 3],
    ) -> Option<Vec<u8>> {
        let Slicing::Sliceable {
            extra_params_offset,
            ..
        } = self.slicing
        else {
            return None;
        };
        let mut buf = params.get(..self.param_bytes)?.to_vec();
        buf.resize(extra_params_offset, 0);
        for v in slice.params(grid) {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        Some(buf)
    }
}

/// Rewrites `ptx` so that each sliceable entry has a sliced variant (see the module docs).
/// Entries that cannot be sliced are reported with the reason, not as an error.
pub fn slice_module(ptx: &str) -> Result<SlicedModule, SliceError> {
    let ast = crate::parse::parse(ptx)?;
    let src = Source::new(ptx)?;
    let (spans, section_idents) = scan::functions(&src, &ast)?;
    let checker = Checker::new(&src, &ast, &spans, &section_idents);
    let names = Names::choose(&src);
    let mut out = String::with_capacity(ptx.len() * 2);
    out.push_str(ptx);
    if !ptx.ends_with('\n') {
        out.push('\n');
    }
    let mut entries = Vec::new();
    for (i, f) in ast.funcs.iter().enumerate().filter(|(_, f)| f.is_entry) {
        let param_bytes = param_bytes(f)?;
        let slicing = match checker.entry(i, param_bytes) {
            Ok(reads) => {
                let entry = format!("{}{SLICE_SUFFIX}", f.name);
                out.push_str(&variant(&src, &spans[i], &reads, &names, &entry)?);
                Slicing::Sliceable {
                    entry,
                    extra_params_offset: param_bytes.next_multiple_of(4),
                }
            }
            Err(reason) => Slicing::NotSliceable { reason },
        };
        entries.push(SlicedEntry {
            name: f.name.clone(),
            param_count: f.params.len(),
            param_bytes,
            slicing,
        });
    }
    crate::parse::parse(&out).map_err(SliceError::Rewritten)?;
    Ok(SlicedModule { ptx: out, entries })
}

/// End of the last parameter of `f`, laid out as the CUDA ABI (and the interpreter) does.
fn param_bytes(f: &Function) -> Result<usize, SliceError> {
    let mut off = 0usize;
    for p in &f.params {
        let (_, size, align) = crate::lower::decl_layout(p)?;
        off = off
            .checked_next_multiple_of(align)
            .and_then(|o| o.checked_add(size))
            .ok_or_else(|| PtxError::Invalid {
                line: p.line,
                msg: format!("parameters of `{}` overflow", f.name),
            })?;
    }
    Ok(off)
}

/// The fresh names of the rewrite: register and parameter prefixes.
struct Names {
    /// `%gs_slice_`: registers `%gs_slice_0..8`.
    reg: String,
    /// `__gs_slice_`: parameters `__gs_slice_off_x`, ….
    param: String,
}

/// Parameter names after the prefix, in order: offsets, then original grid dimensions.
const PARAM_NAMES: [&str; SLICE_PARAM_COUNT] = [
    "off_x", "off_y", "off_z", "nctaid_x", "nctaid_y", "nctaid_z",
];

impl Names {
    /// Prefixes that no identifier of the module starts with.
    fn choose(src: &Source<'_>) -> Names {
        let idents: Vec<&str> = src
            .toks
            .iter()
            .filter_map(|t| match &t.tok {
                crate::parse::lexer::Tok::Ident(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        let mut n = 0usize;
        loop {
            let sfx = if n == 0 { String::new() } else { n.to_string() };
            let names = Names {
                reg: format!("%gs_slice{sfx}_"),
                param: format!("__gs_slice{sfx}_"),
            };
            if !idents
                .iter()
                .any(|s| s.starts_with(&names.reg) || s.starts_with(&names.param))
            {
                return names;
            }
            n += 1;
        }
    }

    /// The extra parameter declarations, one per line.
    fn param_decls(&self) -> String {
        let decls: Vec<String> = PARAM_NAMES
            .iter()
            .map(|p| format!("\t.param .u32 {}{p}", self.param))
            .collect();
        decls.join(",\n")
    }

    /// Register holding what a read yields: `ctaid + offset` (registers 6..8) or the original
    /// grid dimension (registers 3..5, loaded from the parameters).
    fn reg_for(&self, r: &Read) -> String {
        let base = if r.reg == Special::Ctaid { 6 } else { 3 };
        format!("{}{}", self.reg, base + r.dim)
    }

    /// Loads the parameters and computes `ctaid + offset` for each dimension.
    fn prologue(&self) -> String {
        let (r, p) = (&self.reg, &self.param);
        let mut s = String::new();
        for (i, name) in PARAM_NAMES.iter().enumerate() {
            s.push_str(&format!("\tld.param.u32 \t{r}{i}, [{p}{name}];\n"));
        }
        for (d, dim) in DIMS.iter().enumerate() {
            let c = 6 + d;
            s.push_str(&format!("\tmov.u32 \t{r}{c}, %ctaid.{dim};\n"));
            s.push_str(&format!("\tadd.u32 \t{r}{c}, {r}{c}, {r}{d};\n"));
        }
        s
    }
}

/// The sliced variant of the entry at `span`: its source text with the edits applied.
fn variant(
    src: &Source<'_>,
    span: &FuncSpan,
    reads: &[Read],
    names: &Names,
    new_name: &str,
) -> Result<String, SliceError> {
    let Some((open, close)) = span.body else {
        return Err(SliceError::Scan(format!("`{}` has no body", span.name)));
    };
    let end = |k: usize| {
        src.end(k)
            .ok_or_else(|| SliceError::Scan(format!("no end for token {k} in `{}`", span.name)))
    };
    // (byte offset, bytes replaced, new text), applied in order of offset.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let name_at = src.start(span.name_tok);
    edits.push((name_at, span.name.len(), new_name.to_string()));
    match span.params {
        Some((po, pc)) => {
            let sep = if pc == po + 1 { "\n" } else { ",\n" };
            edits.push((end(pc - 1)?, 0, format!("{sep}{}", names.param_decls())));
        }
        None => edits.push((
            end(span.name_tok)?,
            0,
            format!("(\n{}\n)", names.param_decls()),
        )),
    }
    let regs = format!("\n\t.reg .b32 \t{}<9>;", names.reg);
    edits.push((end(open)?, 0, regs));
    let first = src.start(after_declarations(src, open, close));
    edits.push((line_start(src.text, first, end(open)?), 0, names.prologue()));
    for r in reads {
        let at = src.start(r.ident);
        edits.push((at, end(r.comp)? - at, names.reg_for(r)));
    }
    edits.sort_by_key(|e| e.0);
    apply(src.text, src.start(span.start), end(close)?, &edits)
}

/// Token index of the first statement of the body `open..close` that is not a declaration
/// (where the prologue goes, so the body keeps its declarations first).
fn after_declarations(src: &Source<'_>, open: usize, close: usize) -> usize {
    use crate::parse::lexer::Tok;
    let mut k = open + 1;
    while k < close {
        let decl = matches!(src.tok(k), Tok::Dot(d) if matches!(d.as_str(),
            "reg" | "local" | "shared" | "param" | "const" | "global" | "extern" | "visible"
            | "weak" | "pragma"));
        if !decl {
            break;
        }
        while k < close && *src.tok(k) != Tok::P(';') {
            k += 1;
        }
        k += 1;
    }
    k.min(close)
}

/// Where a statement starting at byte `at` begins its line: the line's start when only blanks
/// precede it there (and the line starts at or after `floor`), else `at` itself.
fn line_start(text: &str, at: usize, floor: usize) -> usize {
    let head = text.get(..at).unwrap_or("");
    let ls = head.rfind('\n').map_or(0, |i| i + 1);
    let blank = head.get(ls..).is_some_and(|h| h.trim().is_empty());
    if blank && ls >= floor {
        ls
    } else {
        at
    }
}

/// `text[from..to]` with `edits` (sorted, non-overlapping, inside the range) applied.
fn apply(
    text: &str,
    from: usize,
    to: usize,
    edits: &[(usize, usize, String)],
) -> Result<String, SliceError> {
    let piece = |a: usize, b: usize| {
        text.get(a..b)
            .ok_or_else(|| SliceError::Scan(format!("bad text range {a}..{b}")))
    };
    let mut out = String::with_capacity(to.saturating_sub(from) + 1024);
    out.push('\n');
    let mut pos = from;
    for (at, len, new) in edits {
        out.push_str(piece(pos, *at)?);
        out.push_str(new);
        pos = at + len;
    }
    out.push_str(piece(pos, to)?);
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests;
