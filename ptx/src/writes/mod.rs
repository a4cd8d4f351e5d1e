//! Which kernel pointer parameters may be written through: a conservative static analysis of
//! PTX text.
//!
//! [`param_writes`] answers, for every `.entry` defined in a module and every parameter in
//! declaration order, whether the kernel may write device memory through an address derived
//! from that parameter. `false` is a promise (under the assumptions below); `true` only means
//! "could not rule it out".
//!
//! # The analysis
//!
//! The module is parsed with the crate's parser (so everything [`crate::Module::load`] parses,
//! and also instructions it would not execute). Each function body becomes a list of effects,
//! and a flow-insensitive fixpoint (a worklist over def-use edges; predicates and control flow
//! are ignored, every instruction counts as executed) gives each register a *taint*: the set
//! of origins its value may derive from:
//! - parameter `i`: `ld.param` of the parameter symbol (at any offset: a struct parameter is
//!   one parameter), and the symbol's address (`mov`/`cvta.param`, which also *escapes* it);
//! - `MEM`: memory contents (every load other than `ld.param` of a parameter, atomics,
//!   texture/surface reads, call results);
//! - `SYM`: the address of a module or body variable (globals, shared, local, functions).
//!
//! Every instruction whose first operand is a register passes the union of its sources' taints
//! to it (vector braces, `%p|%q` pairs and the carry flag of `add.cc`/`addc` included); a
//! load's result is `MEM` (plus its non-address operands): the address selects contents, and
//! any pointer among memory contents is covered by `MEM`. A call's results receive its
//! arguments and `MEM`.
//! Then, for every instruction:
//! - a write (`st` outside `.shared`/`.local`/`.param`, generic `st`, `st.async`, `st.bulk`,
//!   `atom`/`red` outside shared/local, `red.async`, bulk and reduce copies to `.global`,
//!   `multimem`, `wmma.store`, `stmatrix`, `discard`, `sust`/`sured` (the surface handle),
//!   `tensormap`, `mbarrier`) marks the parameters in its address's taint; an address tainted
//!   by `MEM`, or by nothing at all (an absolute address), is an *unknown* write;
//! - escapes mark their parameters: values stored as data anywhere (a `st.param` to a call
//!   argument escapes through the call), call arguments, `brx.idx` operands, a parameter's
//!   address taken;
//! - an instruction the analysis does not know marks every parameter among its operands, may
//!   write through each of its address operands, and is an unknown write if any operand may
//!   hold memory contents;
//! - calls use the callee's summary (computed the same way, to a fixpoint over the call
//!   graph): an argument the callee may write through, tainted by `MEM` or by nothing, is an
//!   unknown write, as is a callee with unknown writes, an indirect call, and a call to an
//!   external function other than `vprintf`, `__assertfail`, `malloc` and `free`.
//!
//! A kernel with an unknown write, or whose names collide in a way the name-based resolution
//! cannot follow (a register named like a parameter or variable), gets `true` everywhere.
//!
//! # Why it is sound
//!
//! A store's address is computed from registers by a chain of instructions; every link of the
//! chain passes taint (flow-insensitively, so a superset of the real data flow), so the
//! address's taint contains every parameter its value derives from. A value that leaves the
//! registers (to memory, to a callee, or as the parameter's own address) is treated as written
//! through immediately, so a pointer cannot come back unseen: whatever is read back from
//! memory is `MEM`, and writing through `MEM` (or through a value of no known origin) makes
//! every parameter `true`. Callees are summarised by the same rules.
//!
//! # Limits (assumptions the answer depends on)
//!
//! - Pointer arithmetic stays inside the object: a store through `p + i` is attributed to `p`
//!   (and to the origins of `i`), never to a buffer that `p + i` happens to reach
//!   out of bounds. Kernels with out-of-bounds writes can write buffers reported `false`.
//! - Writes through the address of a module variable (`SYM`) are not attributed to any
//!   parameter: if the host passes the address of a `__device__` variable as a parameter and
//!   the kernel writes that variable by name, the parameter may be reported `false`.
//! - A pointer reassembled from several parameters (e.g. two 32-bit halves) marks each of them;
//!   a caller that only looks at 8-byte parameters will not see such a write.
//! - Implicit flows (a value rebuilt through branches on a pointer) are not tracked.
//! - Text the parser rejects is an error (callers then assume every parameter is written).

mod effect;
mod solve;
#[cfg(test)]
mod tests;

use crate::parse::ast::Function;
use crate::PtxError;
use solve::Summary;
use std::collections::{HashMap, HashSet};

/// Per kernel (`.entry`) of the module: for each parameter in declaration order, whether the
/// kernel may write device memory through an address derived from that parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamWrites {
    /// The kernel's name.
    pub kernel: String,
    /// One flag per parameter, in declaration order.
    pub may_write: Vec<bool>,
}

/// External functions (declared without a body) known to write no memory a caller passes them.
const HARMLESS_EXTERNS: &[&str] = &["vprintf", "__assertfail", "malloc", "free"];

/// Analyses PTX text: one [`ParamWrites`] per `.entry` with a body, in source order. `Err`
/// only when the text cannot be parsed (callers then assume every parameter may be written).
pub fn param_writes(ptx: &str) -> Result<Vec<ParamWrites>, PtxError> {
    let ast = crate::parse::parse(ptx)?;
    let funcs: HashSet<&str> = ast.funcs.iter().map(|f| f.name.as_str()).collect();
    let module_syms: HashSet<&str> = ast.vars.iter().map(|v| v.name.as_str()).collect();
    let defined: Vec<&Function> = ast.funcs.iter().filter(|f| f.body.is_some()).collect();
    let facts: Vec<_> = defined
        .iter()
        .map(|f| effect::compile(f, &module_syms, &funcs))
        .collect();
    let summaries = summarise(&defined, &facts);
    Ok(defined
        .iter()
        .zip(&summaries)
        .filter(|(f, _)| f.is_entry)
        .map(|(f, s)| ParamWrites {
            kernel: f.name.clone(),
            may_write: if s.unknown {
                vec![true; f.params.len()]
            } else {
                s.may_write.clone()
            },
        })
        .collect())
}

/// Summaries of all defined functions: a fixpoint over the call graph, starting from "writes
/// nothing" for device functions (summaries only grow, so it terminates).
fn summarise(defined: &[&Function], facts: &[solve::Facts]) -> Vec<Summary> {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, f) in defined.iter().enumerate() {
        // A name defined twice is ambiguous: no summary (calls to it are unknown writes).
        if by_name.insert(f.name.as_str(), i).is_some() {
            by_name.insert(f.name.as_str(), usize::MAX);
        }
    }
    let mut sums: Vec<Summary> = facts
        .iter()
        .map(|f| Summary {
            may_write: vec![false; f.params],
            unknown: false,
        })
        .collect();
    loop {
        let mut changed = false;
        for (i, f) in facts.iter().enumerate() {
            let lookup = |name: &str| -> Option<Summary> {
                match by_name.get(name) {
                    Some(&k) if k != usize::MAX && !defined[k].is_entry => Some(sums[k].clone()),
                    Some(_) => None,
                    None if HARMLESS_EXTERNS.contains(&name) => Some(Summary {
                        may_write: Vec::new(),
                        unknown: false,
                    }),
                    None => None,
                }
            };
            let s = solve::solve(f, &lookup);
            if s != sums[i] {
                sums[i] = s;
                changed = true;
            }
        }
        if !changed {
            return sums;
        }
    }
}
