//! Linking several PTX units into one PTX program (the CUDA driver linker, `cuLink*`, for PTX
//! inputs): pure text to text.
//!
//! Every unit is parsed first (a unit that is not well-formed PTX fails the link). The output is
//! one module: one header (the highest `.version`; the `.target` of the highest `sm_*` among the
//! units plus every other target option; `.address_size 64`), then the hoisted variable
//! definitions, then each unit's text in order, rewritten:
//!
//! - an `.extern .func` prototype another unit defines becomes a forward declaration with the
//!   definition's linkage (`.visible`/`.weak`), so calls still follow a declaration;
//! - an `.extern .global`/`.const` variable another unit defines is removed, and the definition is
//!   moved up (hoisted) ahead of every unit;
//! - of several `.weak`/`.common` definitions of one symbol the first is kept (a `.visible` one
//!   wins over all): the other functions keep their prototype without a body, the other variables
//!   are removed;
//! - internal (no linkage directive) module-scope symbols whose name another unit also uses are
//!   renamed in their unit (`name$u<unit>`), every identifier token of that name in that unit;
//! - the header directives of each unit and the debug directives (`.file`, `.loc`, `.section`)
//!   are left out (the linked program carries no debug information).
//!
//! Errors: a unit that does not parse; two `.visible` definitions (or entries) of one name;
//! an `.extern` symbol no unit defines, except the system calls a driver provides (`vprintf`,
//! `malloc`, `free`, `__assertfail`, `__assert_fail`).

mod scan;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::error::PtxError;
use scan::{Item, Link, Unit, What};

/// Functions a driver provides to every program: an `.extern` prototype of one is not an error.
pub const SYSTEM_CALLS: [&str; 5] = ["vprintf", "malloc", "free", "__assertfail", "__assert_fail"];

/// One input of a link: a name for messages and its PTX text.
#[derive(Clone, Copy, Debug)]
pub struct LinkUnit<'a> {
    /// The input's name (log messages only).
    pub name: &'a str,
    /// PTX text (a trailing NUL is ignored).
    pub ptx: &'a str,
}

/// Why a link failed.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkError {
    /// Nothing was added.
    NoInput,
    /// A unit is not well-formed PTX.
    Parse {
        /// The unit's name.
        unit: String,
        /// The parser's error.
        error: PtxError,
    },
    /// An `.extern` symbol no unit defines.
    Unresolved {
        /// The symbol.
        symbol: String,
        /// The unit declaring it.
        unit: String,
    },
    /// Two units (or one) define the same externally visible symbol.
    Duplicate {
        /// The symbol.
        symbol: String,
        /// The unit of the first definition.
        first: String,
        /// The unit of the second.
        second: String,
    },
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::NoInput => write!(f, "error: no input was added to the link"),
            LinkError::Parse { unit, error } => write!(f, "error in input '{unit}': {error}"),
            LinkError::Unresolved { symbol, unit } => {
                write!(
                    f,
                    "error: unresolved extern symbol '{symbol}' in input '{unit}'"
                )
            }
            LinkError::Duplicate {
                symbol,
                first,
                second,
            } => write!(
                f,
                "error: multiple definition of '{symbol}' in inputs '{first}' and '{second}'"
            ),
        }
    }
}

impl std::error::Error for LinkError {}

/// Checks that one input is well-formed PTX (what `cuLinkAddData` does before the link).
pub fn check_unit(ptx: &str) -> Result<(), PtxError> {
    crate::parse::parse(ptx.trim_end_matches('\0')).map(|_| ())
}

/// A linked program.
#[derive(Clone, Debug)]
pub struct Linked {
    /// The PTX text of the whole program (no NUL).
    pub ptx: String,
    /// A short report for the info log.
    pub info: String,
}

/// One text edit of a unit: replace `start..end` with `with`.
type Edit = (usize, usize, String);

/// Links `units` into one PTX program (see the module documentation).
pub fn link_ptx(units: &[LinkUnit<'_>]) -> Result<Linked, LinkError> {
    if units.is_empty() {
        return Err(LinkError::NoInput);
    }
    let texts: Vec<&str> = units.iter().map(|u| u.ptx.trim_end_matches('\0')).collect();
    let mut scanned = Vec::with_capacity(units.len());
    for (u, text) in units.iter().zip(&texts) {
        let parse_err = |error| LinkError::Parse {
            unit: u.name.to_string(),
            error,
        };
        crate::parse::parse(text).map_err(parse_err)?;
        scanned.push(scan::scan(text).map_err(parse_err)?);
    }
    let chosen = choose_definitions(units, &scanned)?;
    let mut edits: Vec<Vec<Edit>> = scanned.iter().map(drops).collect();
    let mut hoisted = Vec::new();
    let mut resolved = 0usize;
    for (u, unit) in scanned.iter().enumerate() {
        for item in &unit.items {
            if item.link == Link::Extern && item.what != What::LocalVar {
                resolved += resolve_extern(units, &texts, u, item, &chosen, &mut edits)?;
            }
        }
    }
    for (name, &(u, i)) in &chosen.kept {
        let item = &scanned[u].items[i];
        if item.what == What::Var && chosen.hoist.contains(name.as_str()) {
            hoisted.push(texts[u][item.span.0..item.span.1].to_string());
            edits[u].push((item.span.0, item.span.1, String::new()));
        }
    }
    drop_weak_duplicates(&scanned, &chosen, &mut edits);
    rename_internal_collisions(&scanned, &mut edits);
    let mut out = header(&scanned, units);
    for h in &hoisted {
        out.push_str(h);
        out.push('\n');
    }
    for (u, text) in texts.iter().enumerate() {
        out.push_str(&format!("\n// input {u}: {}\n", units[u].name));
        out.push_str(&apply(text, &mut edits[u]));
        out.push('\n');
    }
    crate::parse::parse(&out).map_err(|error| LinkError::Parse {
        unit: "(linked program)".to_string(),
        error,
    })?;
    let info = format!(
        "linked {} PTX inputs ({}); {resolved} extern symbols resolved",
        units.len(),
        units.iter().map(|u| u.name).collect::<Vec<_>>().join(", ")
    );
    Ok(Linked { ptx: out, info })
}

/// The definition kept for each externally visible name, and the variables to hoist.
struct Chosen {
    kept: BTreeMap<String, (usize, usize)>,
    hoist: HashSet<String>,
}

fn choose_definitions(units: &[LinkUnit<'_>], scanned: &[Unit]) -> Result<Chosen, LinkError> {
    let mut kept: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut hoist = HashSet::new();
    for (u, unit) in scanned.iter().enumerate() {
        for (i, item) in unit.items.iter().enumerate() {
            if !item.defines || !matches!(item.link, Link::Visible | Link::Weak) {
                continue;
            }
            let Some(&(pu, pi)) = kept.get(&item.name) else {
                kept.insert(item.name.clone(), (u, i));
                continue;
            };
            let prev = &scanned[pu].items[pi];
            match (prev.link, item.link) {
                (Link::Visible, Link::Visible) => {
                    return Err(LinkError::Duplicate {
                        symbol: item.name.clone(),
                        first: units[pu].name.to_string(),
                        second: units[u].name.to_string(),
                    })
                }
                (Link::Weak, Link::Visible) => {
                    kept.insert(item.name.clone(), (u, i));
                }
                _ => {}
            }
            if item.what == What::Var {
                hoist.insert(item.name.clone());
            }
        }
    }
    for item in scanned.iter().flat_map(|s| &s.items) {
        if item.what == What::Var && item.link == Link::Extern && kept.contains_key(&item.name) {
            hoist.insert(item.name.clone());
        }
    }
    Ok(Chosen { kept, hoist })
}

/// Rewrites one `.extern` declaration of unit `u`; returns 1 when another unit resolved it.
fn resolve_extern(
    units: &[LinkUnit<'_>],
    texts: &[&str],
    u: usize,
    item: &Item,
    chosen: &Chosen,
    edits: &mut [Vec<Edit>],
) -> Result<usize, LinkError> {
    let Some(&(du, _)) = chosen.kept.get(&item.name) else {
        if item.what == What::Func && SYSTEM_CALLS.contains(&item.name.as_str()) {
            return Ok(0);
        }
        return Err(LinkError::Unresolved {
            symbol: item.name.clone(),
            unit: units[u].name.to_string(),
        });
    };
    if item.what == What::Var {
        edits[u].push((item.span.0, item.span.1, String::new()));
        return Ok(usize::from(du != u));
    }
    if let Some((s, e)) = item.link_span {
        // the definition's linkage in place of `.extern` (a weak definition stays weak)
        let linkage = texts[u][s..e].replace(".extern", ".visible");
        edits[u].push((s, e, linkage));
    }
    Ok(usize::from(du != u))
}

/// The definitions of weak names other than the kept one: functions lose their body (the
/// prototype stays, for the calls of their unit), variables are removed.
fn drop_weak_duplicates(scanned: &[Unit], chosen: &Chosen, edits: &mut [Vec<Edit>]) {
    for (u, unit) in scanned.iter().enumerate() {
        for (i, item) in unit.items.iter().enumerate() {
            if !item.defines
                || item.link != Link::Weak
                || chosen.kept.get(&item.name) == Some(&(u, i))
            {
                continue;
            }
            match (item.what, item.body) {
                (What::Var, _) => edits[u].push((item.span.0, item.span.1, String::new())),
                (_, Some((s, e))) => edits[u].push((s, e, ";".to_string())),
                _ => {}
            }
        }
    }
}

/// Renames internal module-scope symbols whose name another unit also declares.
fn rename_internal_collisions(scanned: &[Unit], edits: &mut [Vec<Edit>]) {
    let mut users: HashMap<&str, HashSet<usize>> = HashMap::new();
    for (u, unit) in scanned.iter().enumerate() {
        for item in &unit.items {
            users.entry(&item.name).or_default().insert(u);
        }
    }
    for (u, unit) in scanned.iter().enumerate() {
        let renamed: HashSet<&str> = unit
            .items
            .iter()
            .filter(|it| it.link == Link::Internal && users[it.name.as_str()].len() > 1)
            .map(|it| it.name.as_str())
            .collect();
        for (at, name) in &unit.idents {
            if renamed.contains(name.as_str()) {
                edits[u].push((*at, at + name.len(), format!("{name}$u{u}")));
            }
        }
    }
}

/// The header and debug directives of a unit, removed.
fn drops(unit: &Unit) -> Vec<Edit> {
    unit.drop
        .iter()
        .map(|&(s, e)| (s, e, String::new()))
        .collect()
}

/// The merged header.
fn header(scanned: &[Unit], units: &[LinkUnit<'_>]) -> String {
    let version_key = |v: &str| {
        let mut it = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    let version = scanned
        .iter()
        .map(|s| s.version.as_str())
        .max_by_key(|v| version_key(v))
        .unwrap_or("7.0");
    let sm_key = |t: &str| -> Option<u32> {
        let digits: String = t
            .strip_prefix("sm_")?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let all: Vec<&String> = scanned.iter().flat_map(|s| &s.target).collect();
    let mut target: Vec<String> = all
        .iter()
        .filter(|t| sm_key(t).is_some())
        .max_by_key(|t| sm_key(t))
        .map(|t| vec![t.to_string()])
        .unwrap_or_default();
    for t in all.iter().filter(|t| sm_key(t).is_none()) {
        if !target.contains(t) {
            target.push(t.to_string());
        }
    }
    let names: Vec<&str> = units.iter().map(|u| u.name).collect();
    format!(
        "//\n// Linked by gpushare from {} PTX inputs: {}\n//\n\n.version {version}\n.target {}\n.address_size 64\n\n",
        units.len(),
        names.join(", "),
        if target.is_empty() { "sm_52".to_string() } else { target.join(", ") }
    )
}

/// `text` with `edits` applied (sorted; an edit inside an earlier one is skipped).
fn apply(text: &str, edits: &mut [Edit]) -> String {
    edits.sort_by_key(|e| (e.0, std::cmp::Reverse(e.1)));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (s, e, with) in edits.iter() {
        if *s < at {
            continue;
        }
        out.push_str(&text[at..*s]);
        out.push_str(with);
        at = *e;
    }
    out.push_str(&text[at..]);
    out
}
