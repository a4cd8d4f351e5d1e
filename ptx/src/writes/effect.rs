//! Translation of one function body (the parser's statements) into [`Effect`]s: which slots an
//! instruction defines from which values, which addresses it writes through, what escapes.

use super::solve::{Call, Effect, Facts, Val};
use crate::parse::ast::{AstInst, Function, Operand, Space, Stmt};
use std::collections::{HashMap, HashSet};

/// Instructions that only compute registers from registers (no memory access at all).
const PURE: &[&str] = &[
    "abs",
    "activemask",
    "add",
    "addc",
    "and",
    "bfe",
    "bfi",
    "bfind",
    "bmsk",
    "brev",
    "clz",
    "cnot",
    "copysign",
    "cos",
    "cvt",
    "cvta",
    "div",
    "dp2a",
    "dp4a",
    "elect",
    "ex2",
    "fma",
    "fns",
    "getctarank",
    "isspacep",
    "istypep",
    "lg2",
    "lop3",
    "mad",
    "mad24",
    "madc",
    "mapa",
    "match",
    "max",
    "min",
    "mma",
    "mov",
    "movmatrix",
    "mul",
    "mul24",
    "neg",
    "not",
    "or",
    "popc",
    "prmt",
    "rcp",
    "redux",
    "rem",
    "rsqrt",
    "sad",
    "selp",
    "set",
    "setp",
    "shf",
    "shfl",
    "shl",
    "shr",
    "sin",
    "slct",
    "sqrt",
    "sub",
    "subc",
    "szext",
    "tanh",
    "testp",
    "vote",
    "xor",
    "createpolicy",
    "vabsdiff",
    "vadd",
    "vsub",
    "vmin",
    "vmax",
    "vshl",
    "vshr",
    "vmad",
    "vset",
    "vabsdiff2",
    "vadd2",
    "vsub2",
    "vmin2",
    "vmax2",
    "vset2",
    "vavrg2",
    "vabsdiff4",
    "vadd4",
    "vsub4",
    "vmin4",
    "vmax4",
    "vset4",
    "vavrg4",
];

/// Instructions that neither write memory nor define a register.
const CONTROL: &[&str] = &[
    "bra",
    "ret",
    "exit",
    "trap",
    "brkpt",
    "membar",
    "fence",
    "nanosleep",
    "pmevent",
    "griddepcontrol",
    "setmaxnreg",
    "prefetch",
    "prefetchu",
    "applypriority",
    "stackrestore",
];

/// Instructions that read memory into registers and write none.
const LOADS: &[&str] = &["ld", "ldu", "ldmatrix", "tex", "tld4", "txq", "suld", "suq"];

/// Instructions that write memory through their first address operand unless their (first)
/// state space is shared, local, param or const.
const MEMOPS: &[&str] = &[
    "atom",
    "red",
    "multimem",
    "stmatrix",
    "discard",
    "sust",
    "sured",
    "tensormap",
    "mbarrier",
];

/// Special condition-code slot name (cannot be spelled in PTX).
const CC: &str = "%%cc";

/// How names of a function resolve.
pub(super) struct Names<'a> {
    params: HashMap<&'a str, usize>,
    syms: HashSet<&'a str>,
    slots: HashMap<String, usize>,
    /// `.param` variables of the body (call arguments and results) and return variables.
    call_vars: HashSet<&'a str>,
    /// Functions with a body or prototype in the module.
    funcs: &'a HashSet<&'a str>,
}

impl<'a> Names<'a> {
    fn slot(&mut self, name: &str) -> usize {
        let n = self.slots.len();
        *self.slots.entry(name.to_string()).or_insert(n)
    }

    /// The value a name denotes as an operand; the address of a parameter also escapes.
    fn val(&mut self, name: &str, e: &mut Effect) -> Option<Val> {
        if name == "_" {
            return None;
        }
        let base = name.split('.').next().unwrap_or(name);
        if let Some(&p) = self.params.get(base) {
            e.escapes.push(Val::Param(p));
            return Some(Val::Param(p));
        }
        if self.syms.contains(base) || self.funcs.contains(base) {
            return Some(Val::Sym);
        }
        Some(Val::Slot(self.slot(base)))
    }

    /// Every value named in `o` (address bases, vector elements, list elements).
    fn vals(&mut self, o: &Operand, e: &mut Effect, out: &mut Vec<Val>) {
        match o {
            Operand::Name(n) | Operand::Not(n) => out.extend(self.val(n, e)),
            Operand::Addr { base, .. } => {
                if let Some(b) = base {
                    out.extend(self.val(b, e));
                }
            }
            Operand::Pair(a, b) => {
                out.extend(self.val(a, e));
                out.extend(self.val(b, e));
            }
            Operand::Vec(v) | Operand::List(v) => {
                for x in v {
                    self.vals(x, e, out);
                }
            }
            Operand::Int(_) | Operand::F32(_) | Operand::F64(_) | Operand::Float(_) => {}
        }
    }

    /// The slots an instruction's first operand defines (register, pair or vector).
    fn dests(&mut self, o: &Operand) -> Vec<usize> {
        let mut names = Vec::new();
        match o {
            Operand::Name(n) => names.push(n.as_str()),
            Operand::Pair(a, b) => names.extend([a.as_str(), b.as_str()]),
            Operand::Vec(v) => names.extend(v.iter().filter_map(|x| match x {
                Operand::Name(n) => Some(n.as_str()),
                _ => None,
            })),
            _ => {}
        }
        let names: Vec<&str> = names.into_iter().filter(|n| *n != "_").collect();
        names
            .into_iter()
            .map(|n| self.slot(n.split('.').next().unwrap_or(n)))
            .collect()
    }

    /// The values that make up the address operand `o` (an address, or the handle part of a
    /// `[handle, {coords}]` list); `None` when `o` is not an address.
    fn address(&mut self, o: &Operand, e: &mut Effect) -> Option<Vec<Val>> {
        match o {
            Operand::Addr { .. } => {
                let mut v = Vec::new();
                self.vals(o, e, &mut v);
                Some(v)
            }
            Operand::List(items) if items.iter().any(|x| matches!(x, Operand::Addr { .. })) => {
                let mut v = Vec::new();
                for x in items.iter().filter(|x| matches!(x, Operand::Addr { .. })) {
                    self.vals(x, e, &mut v);
                }
                Some(v)
            }
            _ => None,
        }
    }
}

/// Compiles `f` (which has a body); `module_syms` are the module's variables, `funcs` its
/// functions.
pub(super) fn compile<'a>(
    f: &'a Function,
    module_syms: &HashSet<&'a str>,
    funcs: &'a HashSet<&'a str>,
) -> Facts {
    let body = f.body.as_deref().unwrap_or(&[]);
    let mut names = Names {
        params: f
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect(),
        syms: module_syms.clone(),
        slots: HashMap::new(),
        call_vars: HashSet::new(),
        funcs,
    };
    let opaque = shadowing(f, body, &names);
    for r in &f.rets {
        names.slot(&r.name);
        names.call_vars.insert(&r.name);
    }
    for s in body {
        if let Stmt::Var(v) = s {
            if v.space == Space::Param {
                names.slot(&v.name);
                names.call_vars.insert(&v.name);
            } else {
                names.syms.insert(v.name.as_str());
            }
        }
    }
    let mut effects = Vec::new();
    for s in body {
        if let Stmt::Inst(i) = s {
            effects.push(instruction(i, &mut names));
        }
    }
    Facts {
        effects,
        slots: names.slots.len(),
        params: f.params.len(),
        opaque,
    }
}

/// True when names of different kinds collide (a register or body variable named like a
/// parameter, symbol or function; a call variable named like another body variable): the
/// name-based resolution could then hide a flow, so the function is not analysed.
fn shadowing(f: &Function, body: &[Stmt], names: &Names<'_>) -> bool {
    let mut outside: HashMap<&str, u8> = HashMap::new();
    for n in names.params.keys() {
        outside.insert(n, 0);
    }
    for n in names.syms.iter().chain(names.funcs.iter()) {
        outside.insert(n, 1);
    }
    for r in &f.rets {
        if outside.insert(&r.name, 2).is_some() {
            return true;
        }
    }
    for s in body {
        if let Stmt::Var(v) = s {
            let kind = if v.space == Space::Param { 3 } else { 4 };
            if outside.insert(&v.name, kind).is_some_and(|k| k != kind) {
                return true;
            }
        }
    }
    let in_range = |prefix: &str, count: u32, n: &str| {
        n.strip_prefix(prefix)
            .and_then(|d| d.parse::<u32>().ok())
            .is_some_and(|k| k < count)
    };
    body.iter().any(|s| match s {
        Stmt::Reg(r) => r.names.iter().any(|(n, count)| match count {
            None => outside.contains_key(n.as_str()),
            Some(c) => outside.keys().any(|o| in_range(n, *c, o)),
        }),
        _ => false,
    })
}

/// The first state space among the modifiers (`shared::cta` counts as shared).
fn first_space(mods: &[String]) -> Option<&str> {
    mods.iter()
        .map(|m| m.split("::").next().unwrap_or(m))
        .find(|m| matches!(*m, "global" | "shared" | "local" | "param" | "const"))
}

/// A space that is not device memory.
fn on_chip(space: Option<&str>) -> bool {
    matches!(space, Some("shared" | "local" | "param" | "const"))
}

fn has(i: &AstInst, m: &str) -> bool {
    i.mods.iter().any(|x| x == m)
}

/// The effect of one instruction.
fn instruction(i: &AstInst, n: &mut Names<'_>) -> Effect {
    let op = i.op.as_str();
    let mut e = Effect::default();
    match op {
        _ if CONTROL.contains(&op) => {}
        "bar" | "barrier" if has(i, "red") => pure(i, n, &mut e),
        "bar" | "barrier" => {}
        "wgmma" if has(i, "mma_async") => load(i, n, &mut e),
        "wgmma" => {}
        "wmma" if has(i, "mma") => pure(i, n, &mut e),
        "wmma" if has(i, "load") => load(i, n, &mut e),
        "wmma" if has(i, "store") => memop(i, n, &mut e, false),
        "multimem" if has(i, "ld_reduce") => load(i, n, &mut e),
        "st" => store(i, n, &mut e),
        "cp" => copy(i, n, &mut e),
        "call" => call(i, n, &mut e),
        "brx" => {
            let mut v = Vec::new();
            for a in &i.args {
                n.vals(a, &mut e, &mut v);
            }
            e.escapes.extend(v);
        }
        "alloca" | "stacksave" => {
            e.dests = i.args.first().map(|a| n.dests(a)).unwrap_or_default();
            e.srcs.push(Val::Sym);
        }
        _ if PURE.contains(&op) => pure(i, n, &mut e),
        _ if LOADS.contains(&op) => load(i, n, &mut e),
        "red" if has(i, "async") => memop(i, n, &mut e, true),
        _ if MEMOPS.contains(&op) => memop(i, n, &mut e, false),
        _ => unknown(i, n, &mut e),
    }
    e
}

/// Destination = first operand, sources = the others (and the condition code).
fn pure(i: &AstInst, n: &mut Names<'_>, e: &mut Effect) {
    let Some((first, rest)) = i.args.split_first() else {
        return;
    };
    e.dests = n.dests(first);
    let mut srcs = Vec::new();
    for a in rest {
        n.vals(a, e, &mut srcs);
    }
    if matches!(i.op.as_str(), "addc" | "subc" | "madc") {
        srcs.push(Val::Slot(n.slot(CC)));
    }
    if has(i, "cc") {
        e.dests.push(n.slot(CC));
    }
    e.srcs = srcs;
}

/// `ld`-like: destination = first operand; a `ld.param` of a parameter reads its value,
/// anything else reads memory.
fn load(i: &AstInst, n: &mut Names<'_>, e: &mut Effect) {
    let Some((first, rest)) = i.args.split_first() else {
        return;
    };
    e.dests = n.dests(first);
    let param_read = match rest.first() {
        Some(Operand::Addr { base: Some(b), .. })
            if i.op == "ld" && first_space(&i.mods) == Some("param") =>
        {
            n.params
                .get(b.as_str())
                .copied()
                .map(Val::Param)
                .or_else(|| {
                    let slot = n.slots.get(b.as_str()).copied()?;
                    Some(Val::Slot(slot))
                })
        }
        _ => None,
    };
    let mut srcs = Vec::new();
    match param_read {
        Some(v) => srcs.push(v),
        None => srcs.push(Val::Mem),
    }
    // The address only selects memory contents (`MEM`); other operands (cache policies,
    // coordinates) are sources. Parameters among the address still escape (taken address).
    let skip = usize::from(param_read.is_some());
    for a in rest.iter().skip(skip) {
        if n.address(a, e).is_none() {
            n.vals(a, e, &mut srcs);
        }
    }
    e.srcs = srcs;
}

/// `st`: writes device memory unless the space is on chip; the stored values escape. A
/// `st.param` also defines the call variable it stores to.
fn store(i: &AstInst, n: &mut Names<'_>, e: &mut Effect) {
    if has(i, "async") || has(i, "bulk") {
        return memop(i, n, e, true);
    }
    let Some((addr, rest)) = i.args.split_first() else {
        return;
    };
    let space = first_space(&i.mods);
    let mut data = Vec::new();
    for a in rest {
        n.vals(a, e, &mut data);
    }
    // A call argument or return variable: the call escapes its arguments, and a callee's
    // return value reaches the caller as arguments plus memory, so the data does not escape.
    if let (Some("param"), Operand::Addr { base: Some(b), .. }) = (space, addr) {
        if n.call_vars.contains(b.as_str()) && !n.params.contains_key(b.as_str()) {
            e.dests.push(n.slot(b));
            e.srcs = data;
            return;
        }
    }
    match n.address(addr, e) {
        Some(a) if !on_chip(space) => e.writes.push(a),
        Some(_) => {}
        None => unknown(i, n, e),
    }
    e.escapes.extend(data);
}

/// Instructions that may write through their first address operand: atomics, reductions,
/// bulk stores, matrix stores, surface stores, ... `force`: a write whatever the space.
fn memop(i: &AstInst, n: &mut Names<'_>, e: &mut Effect, force: bool) {
    let Some(first) = i.args.first() else {
        return;
    };
    if n.address(first, &mut Effect::default()).is_none() {
        e.dests = n.dests(first);
    }
    let mut srcs = vec![Val::Mem];
    let mut dst_seen = false;
    for (k, a) in i.args.iter().enumerate() {
        match n.address(a, e) {
            Some(vals) => {
                if !dst_seen && (force || !on_chip(first_space(&i.mods))) {
                    e.writes.push(vals);
                }
                dst_seen = true;
                if let Operand::List(items) = a {
                    let mut coords = Vec::new();
                    for x in items.iter().filter(|x| !matches!(x, Operand::Addr { .. })) {
                        n.vals(x, e, &mut coords);
                    }
                    srcs.extend(coords.iter().copied());
                    e.escapes.extend(coords);
                }
            }
            None if k == 0 && !e.dests.is_empty() => {}
            None => {
                let mut data = Vec::new();
                n.vals(a, e, &mut data);
                srcs.extend(data.iter().copied());
                e.escapes.extend(data);
            }
        }
    }
    // Without an address operand (e.g. `mbarrier.pending_count`) nothing is written.
    e.srcs = srcs;
}

/// `cp.*`: `cp.async` (shared ← global) writes no device memory; bulk and reduce copies write
/// their destination when it is global; anything else is handled like [`memop`].
fn copy(i: &AstInst, n: &mut Names<'_>, e: &mut Effect) {
    let waits = ["commit_group", "wait_group", "wait_all", "prefetch"];
    if waits.iter().any(|w| has(i, w)) {
        return;
    }
    let bulk = has(i, "bulk") || has(i, "reduce");
    if has(i, "async") && !bulk && !has(i, "mbarrier") {
        let mut v = Vec::new();
        for a in &i.args {
            n.vals(a, e, &mut v);
        }
        return;
    }
    memop(i, n, e, false)
}

/// `call [(rets),] target, [(args)] [, prototype]`: arguments escape and go to the callee's
/// summary; the return variables receive the arguments and memory.
fn call(i: &AstInst, n: &mut Names<'_>, e: &mut Effect) {
    let mut target = None;
    let mut args = Vec::new();
    let mut lists = 0;
    let mut indirect = false;
    for a in &i.args {
        match a {
            Operand::List(v) if target.is_none() => {
                for x in v {
                    e.dests.extend(n.dests(x));
                }
            }
            Operand::List(v) if lists == 0 => {
                lists += 1;
                for x in v {
                    let mut vals = Vec::new();
                    n.vals(x, e, &mut vals);
                    args.push(vals.first().copied());
                    e.srcs.extend(vals);
                }
            }
            Operand::Name(t) if target.is_none() => {
                let base = t.as_str();
                if n.funcs.contains(base) && !n.slots.contains_key(base) {
                    target = Some(t.clone());
                } else {
                    indirect = true;
                    target = Some(String::new());
                }
            }
            _ => {}
        }
    }
    e.srcs.push(Val::Mem);
    e.escapes.extend(args.iter().flatten().copied());
    e.call = Some(Call {
        target: if indirect { None } else { target },
        args,
    });
}

/// An instruction the analysis does not know: everything it names escapes, it may write
/// through any address operand, memory contents among its operands (other than a first
/// operand it defines) may be addresses, and its first operand (if a register) receives
/// everything, memory contents included.
fn unknown(i: &AstInst, n: &mut Names<'_>, e: &mut Effect) {
    let defines = i.args.len() > 1
        && matches!(
            i.args[0],
            Operand::Name(_) | Operand::Pair(..) | Operand::Vec(_)
        );
    if defines {
        e.dests.extend(n.dests(&i.args[0]));
    }
    let mut all = vec![Val::Mem];
    for (k, a) in i.args.iter().enumerate() {
        if let Some(addr) = n.address(a, e) {
            e.writes.push(addr);
        }
        let mut vals = Vec::new();
        n.vals(a, e, &mut vals);
        if !(defines && k == 0) {
            e.suspect.extend(vals.iter().copied());
        }
        all.extend(vals);
    }
    e.escapes.extend(all.iter().copied());
    e.srcs.extend(all);
}
