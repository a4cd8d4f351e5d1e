//! Which entries can be sliced, and where their `%ctaid`/`%nctaid` reads are.
//!
//! An entry is sliceable when splitting its grid into block ranges, with `%ctaid` and
//! `%nctaid` rewritten in the entry's own body, changes nothing a block can observe. Refused
//! (with the reason, and the source line where there is one):
//! - a device function the entry reaches (calls, or names, e.g. takes the address of) reads
//!   `%ctaid`/`%nctaid`: functions are shared with the unsliced entries and are not rewritten;
//!   an indirect call counts as reaching every function of the module;
//! - calls to external functions other than `vprintf`, `__assertfail`, `malloc`, `free`
//!   (their bodies are unknown: the device runtime's launches, tail launches and the older
//!   cooperative-groups calls are tied to the whole grid);
//! - clusters: `%clusterid`, `%cluster_ctaid` and the other cluster registers, `.shared::cluster`
//!   and other `::cluster` spaces, `barrier.cluster`, `mapa`, `getctarank`, and the
//!   `.reqnctapercluster`/`.explicitcluster`/`.maxclusterrank` directives;
//! - `%gridid` (each slice is a grid of its own), `%envreg*` (the driver's environment
//!   registers: cooperative-groups grid synchronisation reads its workspace there),
//!   `%current_graph_exec` (device graph launch), `griddepcontrol` (programmatic dependent
//!   launch signals and waits on the whole grid);
//! - `%ctaid`/`%nctaid` read as a whole vector, or by a non-`cvt`/`ld`/`st` instruction of
//!   8, 16 or 64 bits (legacy `mov.u16 %rh, %ctaid.x`): the replacement registers are 32-bit;
//! - labels of the body named in a `.section` (DWARF of `-G` builds would then define them
//!   twice), a missing body, a name `NAME__gs_slice` already taken, and parameters that would
//!   pass [`MAX_PARAM_BYTES`] with the six extra ones.
//!
//! Everything else keeps its meaning: `bar.sync` and shared memory are per block; atomics and
//! memory fences work across slices (which run one after the other, a stronger order than one
//! launch gives); `%tid`, `%ntid`, `%smid`, `%clock`, `%globaltimer` do not depend on the grid.

use super::scan::{FuncSpan, Source};
use super::{SLICE_PARAM_BYTES, SLICE_SUFFIX};
use crate::limits::MAX_PARAM_BYTES;
use crate::parse::ast::{AstModule, Function, Operand, Stmt};
use crate::parse::lexer::Tok;
use std::collections::{HashMap, HashSet};

/// Which special register a read names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Special {
    Ctaid,
    Nctaid,
}

/// One read of `%ctaid.d` / `%nctaid.d` in an entry body: the tokens `%ctaid` and `.d`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Read {
    pub reg: Special,
    pub dim: usize,
    pub ident: usize,
    pub comp: usize,
}

/// External functions whose behaviour does not depend on the grid.
const SAFE_EXTERNS: &[&str] = &["vprintf", "__assertfail", "malloc", "free"];

/// The facts about one module the checks need.
pub(super) struct Checker<'a> {
    pub src: &'a Source<'a>,
    pub ast: &'a AstModule,
    pub spans: &'a [FuncSpan],
    /// Identifiers named inside `.section` blocks.
    pub section_idents: &'a HashSet<String>,
    /// Function name → indices in `ast.funcs` (a prototype and a definition share a name).
    by_name: HashMap<&'a str, Vec<usize>>,
    /// Names of module variables and functions (a sliced entry's name must be new).
    taken: HashSet<&'a str>,
}

impl<'a> Checker<'a> {
    pub fn new(
        src: &'a Source<'a>,
        ast: &'a AstModule,
        spans: &'a [FuncSpan],
        section_idents: &'a HashSet<String>,
    ) -> Self {
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, f) in ast.funcs.iter().enumerate() {
            by_name.entry(f.name.as_str()).or_default().push(i);
        }
        let taken = ast
            .funcs
            .iter()
            .map(|f| f.name.as_str())
            .chain(ast.vars.iter().map(|v| v.name.as_str()))
            .collect();
        Checker {
            src,
            ast,
            spans,
            section_idents,
            by_name,
            taken,
        }
    }

    /// The reads to rewrite in entry `i` (an index of `ast.funcs`), or why it is not sliceable.
    pub fn entry(&self, i: usize, param_bytes: usize) -> Result<Vec<Read>, String> {
        let (f, span) = (&self.ast.funcs[i], &self.spans[i]);
        let Some((open, close)) = span.body else {
            return Err("the entry has no body (a prototype)".into());
        };
        if self
            .taken
            .contains(format!("{}{SLICE_SUFFIX}", f.name).as_str())
        {
            return Err(format!(
                "the name `{}{SLICE_SUFFIX}` is already taken",
                f.name
            ));
        }
        if param_bytes.next_multiple_of(4) + SLICE_PARAM_BYTES > MAX_PARAM_BYTES {
            return Err(format!(
                "{param_bytes} bytes of parameters leave no room for the slice parameters"
            ));
        }
        self.header(span.name_tok, open)?;
        let reads = self.body(open, close)?;
        narrow_reads(f)?;
        self.debug_labels(open, close)?;
        self.callees(i)?;
        Ok(reads)
    }

    /// Refuses cluster directives between the name and the body.
    fn header(&self, from: usize, to: usize) -> Result<(), String> {
        for k in from..to {
            if let Tok::Dot(d) = self.src.tok(k) {
                if matches!(
                    d.as_str(),
                    "reqnctapercluster" | "explicitcluster" | "maxclusterrank"
                ) {
                    return Err(format!(
                        "line {}: `.{d}`: a grid launched in clusters is not split",
                        self.src.line(k)
                    ));
                }
            }
        }
        Ok(())
    }

    /// The `%ctaid`/`%nctaid` reads between tokens `open` and `close`, or the first
    /// grid-dependent feature found there.
    fn body(&self, open: usize, close: usize) -> Result<Vec<Read>, String> {
        let src = self.src;
        let mut reads = Vec::new();
        for k in open + 1..close {
            let why = match src.tok(k) {
                Tok::Ident(s) if s == "%ctaid" || s == "%nctaid" => {
                    let reg = if s == "%ctaid" {
                        Special::Ctaid
                    } else {
                        Special::Nctaid
                    };
                    match src.tok(k + 1) {
                        Tok::Dot(c) if dim_of(c).is_some() => {
                            let dim = dim_of(c).unwrap_or(0);
                            reads.push(Read {
                                reg,
                                dim,
                                ident: k,
                                comp: k + 1,
                            });
                            None
                        }
                        _ => Some(format!("reads `{s}` as a vector")),
                    }
                }
                Tok::Ident(s) => grid_dependent(s, src.tok(k + 1)),
                Tok::Dot(d) if d.contains("::cluster") => {
                    Some(format!("uses `.{d}` (clusters are not split)"))
                }
                _ => None,
            };
            if let Some(why) = why {
                return Err(format!("line {}: {why}", src.line(k)));
            }
        }
        Ok(reads)
    }

    /// Refuses an entry whose labels are named by a `.section` (the copy would define them
    /// a second time).
    fn debug_labels(&self, open: usize, close: usize) -> Result<(), String> {
        for k in open + 1..close {
            if let Tok::Ident(s) = self.src.tok(k) {
                if *self.src.tok(k + 1) == Tok::P(':') && self.section_idents.contains(s) {
                    return Err(format!(
                        "line {}: label `{s}` is named by debug information (`.section`)",
                        self.src.line(k)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks every function entry `i` reaches, transitively.
    fn callees(&self, i: usize) -> Result<(), String> {
        let mut seen = HashSet::from([i]);
        let mut todo = vec![i];
        while let Some(j) = todo.pop() {
            let (names, indirect) = referenced(&self.ast.funcs[j], &self.by_name);
            let next: Vec<usize> = if indirect {
                (0..self.ast.funcs.len()).collect()
            } else {
                names
                    .iter()
                    .flat_map(|n| self.by_name.get(n.as_str()).into_iter().flatten().copied())
                    .collect()
            };
            for name in &names {
                self.external(name)?;
            }
            for n in next {
                if seen.insert(n) {
                    self.device_function(n)?;
                    todo.push(n);
                }
            }
        }
        Ok(())
    }

    /// Refuses a call to a function defined nowhere in the module, unless it is a safe one.
    fn external(&self, name: &str) -> Result<(), String> {
        let defs = self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let defined = defs.iter().any(|&d| self.ast.funcs[d].body.is_some());
        if defined || SAFE_EXTERNS.contains(&name) {
            return Ok(());
        }
        Err(format!(
            "calls the external function `{name}` (its body is unknown; the device runtime's \
             launches and grid-wide calls are tied to the whole grid)"
        ))
    }

    /// Refuses a reached function that reads `%ctaid`/`%nctaid` or a grid-dependent feature.
    fn device_function(&self, n: usize) -> Result<(), String> {
        let f = &self.ast.funcs[n];
        let Some((open, close)) = self.spans[n].body else {
            return Ok(());
        };
        if f.is_entry {
            return Ok(());
        }
        match self.body(open, close) {
            Ok(reads) => {
                match reads.first() {
                    None => Ok(()),
                    Some(r) => Err(format!(
                    "line {}: the device function `{}` reads %{}.{} (functions are not rewritten)",
                    self.src.line(r.ident),
                    f.name,
                    if r.reg == Special::Ctaid { "ctaid" } else { "nctaid" },
                    DIMS.get(r.dim).unwrap_or(&"?")
                )),
                }
            }
            Err(why) => Err(format!("in the device function `{}`: {why}", f.name)),
        }
    }
}

/// Component names, by dimension.
pub(super) const DIMS: [&str; 3] = ["x", "y", "z"];

/// The dimension a component name (`x`, `y`, `z`) stands for.
fn dim_of(c: &str) -> Option<usize> {
    DIMS.iter().position(|&d| d == c)
}

/// Why identifier `s` (followed by token `next`) makes a body grid-dependent, if it does.
fn grid_dependent(s: &str, next: &Tok) -> Option<String> {
    let why = match s {
        "%gridid" => "reads %gridid (every slice is a grid with its own id)",
        "%clusterid"
        | "%nclusterid"
        | "%cluster_ctaid"
        | "%cluster_nctaid"
        | "%cluster_ctarank"
        | "%cluster_nctarank"
        | "%is_explicit_cluster"
        | "mapa"
        | "getctarank" => "uses clusters (a grid launched in clusters is not split)",
        "barrier" if *next == Tok::Dot("cluster".into()) => {
            "uses `barrier.cluster` (a grid launched in clusters is not split)"
        }
        "%current_graph_exec" => "reads %current_graph_exec (device graph launch)",
        "griddepcontrol" => "uses `griddepcontrol` (programmatic dependent launch is per grid)",
        s if s.starts_with("%envreg") => {
            "reads a driver environment register (cooperative-groups grid synchronisation keeps \
             whole-grid state there)"
        }
        _ => return None,
    };
    Some(format!("`{s}`: {why}"))
}

/// Names of functions that `f` names anywhere in its body, and whether it calls indirectly.
fn referenced(f: &Function, by_name: &HashMap<&str, Vec<usize>>) -> (Vec<String>, bool) {
    let (mut names, mut indirect) = (Vec::new(), false);
    for s in f.body.iter().flatten() {
        let Stmt::Inst(inst) = s else { continue };
        if inst.op == "call" {
            let callee = inst.args.iter().find_map(|a| match a {
                Operand::Name(n) => Some(n),
                _ => None,
            });
            indirect |= callee.is_some_and(|c| c.starts_with('%'));
        }
        let mut stack: Vec<&Operand> = inst.args.iter().collect();
        while let Some(o) = stack.pop() {
            match o {
                Operand::Name(n) | Operand::Addr { base: Some(n), .. }
                    if by_name.contains_key(n.as_str()) && !names.contains(n) =>
                {
                    names.push(n.clone());
                }
                Operand::Vec(v) | Operand::List(v) => stack.extend(v),
                _ => {}
            }
        }
    }
    (names, indirect)
}

/// Refuses a direct `%ctaid`/`%nctaid` operand of an 8/16/64-bit instruction other than
/// `cvt`/`ld`/`st` (which accept wider registers).
fn narrow_reads(f: &Function) -> Result<(), String> {
    const NARROW: &[&str] = &[
        "b8", "u8", "s8", "b16", "u16", "s16", "f16", "bf16", "b64", "u64", "s64", "f64",
    ];
    for s in f.body.iter().flatten() {
        let Stmt::Inst(inst) = s else { continue };
        if matches!(inst.op.as_str(), "cvt" | "ld" | "st") {
            continue;
        }
        let special = inst.args.iter().find_map(|a| match a {
            Operand::Name(n) | Operand::Addr { base: Some(n), .. }
                if n.starts_with("%ctaid.") || n.starts_with("%nctaid.") =>
            {
                Some(n)
            }
            _ => None,
        });
        let narrow = inst.mods.iter().find(|m| NARROW.contains(&m.as_str()));
        if let (Some(n), Some(m)) = (special, narrow) {
            return Err(format!(
                "line {}: `{}` reads {n} as .{m} (legacy PTX; the replacement registers are 32-bit)",
                inst.line,
                inst.opcode()
            ));
        }
    }
    Ok(())
}
