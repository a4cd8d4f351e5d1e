//! Taint sets, the per-instruction effects they flow through, and the worklist solver that
//! computes one function's [`Summary`].

use std::collections::HashMap;

/// Bit of a [`Taint`]: the value may contain data loaded from memory (or returned by a call).
const MEM: usize = 0;
/// Bit of a [`Taint`]: the value may be derived from the address of a module or body variable.
const SYM: usize = 1;
/// First parameter bit: parameter `i` is bit `PARAM0 + i`.
const PARAM0: usize = 2;

/// Set of origins a value may be derived from: memory contents, symbol addresses, parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Taint {
    words: Vec<u64>,
}

impl Taint {
    fn set(&mut self, bit: usize) {
        let w = bit / 64;
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << (bit % 64);
    }

    fn has(&self, bit: usize) -> bool {
        self.words
            .get(bit / 64)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }

    /// Adds `other`; true when that changed `self`.
    fn union(&mut self, other: &Taint) -> bool {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        let mut changed = false;
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            changed |= *a | b != *a;
            *a |= b;
        }
        changed
    }

    /// The parameters in the set.
    fn params(&self) -> impl Iterator<Item = usize> + '_ {
        let bits = self.words.len() * 64;
        (PARAM0..bits).filter(|&b| self.has(b)).map(|b| b - PARAM0)
    }

    /// A value used as an address whose target the analysis cannot name: it may come from
    /// memory, or it derives from neither a parameter nor a symbol (an absolute address).
    fn unknown_target(&self) -> bool {
        self.has(MEM) || !self.words.iter().any(|&w| w != 0)
    }
}

/// Where a value may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Val {
    /// A register, call `.param` variable or return variable (index into the slot table).
    Slot(usize),
    /// The function's parameter `i` (its value, or its address).
    Param(usize),
    /// The address of a variable or function.
    Sym,
    /// Memory contents.
    Mem,
}

/// A call: the callee's name (`None` for an indirect call) and the argument values in order
/// (`None` for an immediate).
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub target: Option<String>,
    pub args: Vec<Option<Val>>,
}

/// What one instruction does, for the analysis.
#[derive(Debug, Clone, Default)]
pub(super) struct Effect {
    /// Slots that receive the union of `srcs`.
    pub dests: Vec<usize>,
    pub srcs: Vec<Val>,
    /// Addresses the instruction may write device memory through (one group per address).
    pub writes: Vec<Vec<Val>>,
    /// Values that escape (stored as data, passed to a call, address taken, ...).
    pub escapes: Vec<Val>,
    /// Operands of an instruction the analysis does not know: memory contents among them may
    /// be an address it writes through.
    pub suspect: Vec<Val>,
    pub call: Option<Call>,
}

/// What a function may do to memory, in terms of its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Summary {
    /// Per parameter: the function may write through it (or lets it escape).
    pub may_write: Vec<bool>,
    /// The function may write through an address the analysis cannot attribute to a
    /// parameter (loaded from memory, absolute, or done by an unknown callee).
    pub unknown: bool,
}

/// One function, compiled to effects.
#[derive(Debug)]
pub(super) struct Facts {
    pub effects: Vec<Effect>,
    pub slots: usize,
    pub params: usize,
    /// Something in the body was not understood: every parameter may be written.
    pub opaque: bool,
}

/// How a call's callee behaves: its summary, or `None` when nothing is known about it.
pub(super) type Callees<'a> = dyn Fn(&str) -> Option<Summary> + 'a;

/// The summary of `f`, given the summaries of the functions it calls.
pub(super) fn solve(f: &Facts, callees: &Callees<'_>) -> Summary {
    let taints = propagate(f);
    let mut out = Summary {
        may_write: vec![f.opaque; f.params],
        unknown: f.opaque,
    };
    let eval = |vals: &[Val]| {
        let mut t = Taint::default();
        for v in vals {
            t.union(&val_taint(*v, &taints));
        }
        t
    };
    for e in &f.effects {
        for v in &e.escapes {
            out.mark(&val_taint(*v, &taints));
        }
        for group in &e.writes {
            let t = eval(group);
            out.mark(&t);
            out.unknown |= t.unknown_target();
        }
        out.unknown |= e.suspect.iter().any(|v| val_taint(*v, &taints).has(MEM));
        if let Some(c) = &e.call {
            out.call(c, &taints, callees);
        }
    }
    out
}

impl Summary {
    fn mark(&mut self, t: &Taint) {
        for p in t.params() {
            if let Some(w) = self.may_write.get_mut(p) {
                *w = true;
            }
        }
    }

    /// Applies the callee's summary to the call's arguments.
    fn call(&mut self, c: &Call, taints: &[Taint], callees: &Callees<'_>) {
        let Some(callee) = c.target.as_deref().and_then(callees) else {
            self.unknown = true;
            return;
        };
        self.unknown |= callee.unknown;
        for (k, &written) in callee.may_write.iter().enumerate() {
            if !written {
                continue;
            }
            // A parameter the call does not pass holds an undefined value.
            let t = match c.args.get(k) {
                Some(Some(v)) => val_taint(*v, taints),
                _ => Taint::default(),
            };
            self.mark(&t);
            self.unknown |= t.unknown_target();
        }
    }
}

fn val_taint(v: Val, taints: &[Taint]) -> Taint {
    let mut t = Taint::default();
    match v {
        Val::Slot(s) => return taints[s].clone(),
        Val::Param(p) => t.set(PARAM0 + p),
        Val::Sym => t.set(SYM),
        Val::Mem => t.set(MEM),
    }
    t
}

/// Flow-insensitive fixpoint: every slot's taint is the union over all instructions that
/// write it of the taint of their sources.
fn propagate(f: &Facts) -> Vec<Taint> {
    let mut users: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, e) in f.effects.iter().enumerate() {
        for v in &e.srcs {
            if let Val::Slot(s) = v {
                users.entry(*s).or_default().push(i);
            }
        }
    }
    let mut taints = vec![Taint::default(); f.slots];
    let mut queued = vec![true; f.effects.len()];
    let mut work: Vec<usize> = (0..f.effects.len()).rev().collect();
    while let Some(i) = work.pop() {
        queued[i] = false;
        let e = &f.effects[i];
        if e.dests.is_empty() {
            continue;
        }
        let mut t = Taint::default();
        for v in &e.srcs {
            t.union(&val_taint(*v, &taints));
        }
        for &d in &e.dests {
            if taints[d].union(&t) {
                for &u in users.get(&d).map_or(&[][..], |v| v) {
                    if !queued[u] {
                        queued[u] = true;
                        work.push(u);
                    }
                }
            }
        }
    }
    taints
}
