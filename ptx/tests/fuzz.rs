//! Structured fuzzing of the loader (parser + lowering) with proptest, bounded for CI: every
//! generated module either loads, with invariants that hold for any loaded module, or fails
//! with a `PtxError`; `Module::load` never panics, overflows its stack or allocates without
//! bound.
//!
//! Four generators: token soup (in module, kernel-body and raw contexts), deep and unbalanced
//! nesting, extreme counts and sizes in every kind of declaration, and mutated fixtures. The
//! case counts (14 000 in all; a quarter in debug builds) keep the file to a few seconds on a
//! 2-core machine; `PROPTEST_CASES=N` runs N cases of each generator instead, for longer
//! fuzzing sessions. Each generator prints its case count, how many loaded and its time.

mod common;

use gpushare_ptx::limits::{
    MAX_KERNEL_INSTRUCTIONS, MAX_LOCAL_BYTES, MAX_MODULE_INSTRUCTIONS, MAX_PARAM_BYTES,
    MAX_SHARED_BYTES,
};
use gpushare_ptx::{Module, PtxError};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const HEADER: &str = ".version 8.0\n.target sm_90\n.address_size 64\n";

/// Tokens the soup and the mutations draw from: directives, types, registers, punctuation,
/// opcodes and literals of every lexical kind (including extreme ones).
const VOCAB: &[&str] = &[
    ".version",
    "8.0",
    ".target",
    "sm_90",
    ".address_size",
    "64",
    ".visible",
    ".entry",
    ".func",
    ".global",
    ".const",
    ".shared",
    ".local",
    ".param",
    ".reg",
    ".pred",
    ".b8",
    ".b32",
    ".u64",
    ".f32",
    ".f16x2",
    ".v4",
    ".align",
    ".ptr",
    "%r1",
    "%rd1",
    "%p1",
    "%f1",
    "%tid.x",
    "%ntid.y",
    "k",
    "f",
    "g",
    "_",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ";",
    ":",
    "<",
    ">",
    "+",
    "-",
    "|",
    "!",
    "@",
    "=",
    "ld",
    "st",
    "mov",
    "add",
    "mul.wide.s32",
    "setp.lt.s32",
    "call",
    "ret",
    "bra",
    "exit",
    "atom.global.add.u32",
    "shfl.sync.bfly.b32",
    "cvta.to.global.u64",
    "$L1",
    "$L1:",
    "0f3F800000",
    "0d3FF0000000000000",
    "0x10",
    "0b101",
    "017",
    "1.5e3",
    "-1",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999",
    "\"str\"",
    "// c\n",
    "/* c */",
    "\n",
    ".branchtargets",
    "brx.idx",
    "generic",
    ".maxntid",
    ".reqntid",
    ".pragma \"nounroll\";",
    ".loc 1 2 3",
    ".file 1 \"a.cu\"",
    ".section",
    ".extern",
    ".weak",
    ".noreturn",
    "vprintf",
];

/// Interesting sizes and counts: boundaries of the limits and of the integer types.
fn big() -> impl Strategy<Value = u64> {
    prop_oneof![
        select(vec![
            0,
            1,
            3,
            8,
            u64::from(MAX_SHARED_BYTES) + 1,
            u64::from(MAX_LOCAL_BYTES),
            MAX_PARAM_BYTES as u64 + 1,
            1 << 16,
            u64::from(u32::MAX),
            1 << 32,
            64 << 30,
            i64::MAX as u64,
            1 << 63,
            u64::MAX,
        ]),
        any::<u64>(),
        0..70_000u64,
    ]
}

fn kernel(params: &str, body: &str) -> String {
    format!(
        "{HEADER}.global .b32 g[4];\n.visible .entry k({params})\n{{\n.reg .pred %p<4>;\n\
         .reg .b32 %r<8>;\n.reg .b64 %rd<8>;\n{body}\nret;\n}}\n"
    )
}

/// Loads `src`, failing the case on a panic or on a loaded module that breaks an invariant.
/// Returns whether it loaded.
fn check(src: &str) -> Result<bool, TestCaseError> {
    let loaded = std::panic::catch_unwind(|| Module::load(src))
        .map_err(|_| TestCaseError::fail("Module::load panicked"))?;
    match loaded {
        Ok(m) => invariants(&m).map(|_| true),
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            if let PtxError::Parse { line, col, .. } = e {
                prop_assert!(line >= 1 && col >= 1, "parse error at {line}:{col}");
            }
            Ok(false)
        }
    }
}

/// What every loaded module satisfies, whatever its source.
fn invariants(m: &Module) -> Result<(), TestCaseError> {
    let globals = m.globals();
    for g in globals {
        prop_assert!(g.init.len() <= g.size, "{}: init longer than size", g.name);
        for r in &g.relocs {
            prop_assert!(r.offset + r.size <= g.init.len() && r.target < globals.len());
        }
    }
    let mut total = 0;
    for k in m.kernels() {
        total += k.instruction_count();
        prop_assert!(k.instruction_count() <= MAX_KERNEL_INSTRUCTIONS);
        prop_assert!(k.param_bytes() <= MAX_PARAM_BYTES);
        prop_assert!(k.static_shared_bytes() <= MAX_SHARED_BYTES);
        prop_assert!(k.local_bytes_per_thread() <= MAX_LOCAL_BYTES);
        for p in k.params() {
            prop_assert!(p.offset + p.size <= k.param_bytes());
        }
    }
    prop_assert!(total <= MAX_MODULE_INSTRUCTIONS);
    Ok(())
}

/// Runs `cases` cases of `strategy` (a quarter in debug builds; `PROPTEST_CASES` overrides),
/// rendering each to PTX.
fn fuzz<S: Strategy>(name: &str, cases: u32, strategy: S, render: impl Fn(&S::Value) -> String) {
    let default = if cfg!(debug_assertions) {
        cases / 4
    } else {
        cases
    };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let t0 = Instant::now();
    let (slowest, loaded) = (Cell::new(Duration::ZERO), Cell::new(0u32));
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |v| {
        let src = render(&v);
        let t = Instant::now();
        let ok = check(&src)?;
        slowest.set(slowest.get().max(t.elapsed()));
        loaded.set(loaded.get() + u32::from(ok));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    eprintln!(
        "{name}: {cases} cases ({} loaded, the rest rejected) in {:?}, slowest {:?}",
        loaded.get(),
        t0.elapsed(),
        slowest.get()
    );
}

fn soup(max: usize) -> impl Strategy<Value = Vec<String>> {
    let token = prop_oneof![
        6 => select(VOCAB).prop_map(String::from),
        1 => "[a-z%$_][a-z0-9_.$]{0,6}",
        1 => any::<u64>().prop_map(|v| v.to_string()),
        1 => "[ -~]{1,3}",
    ];
    prop::collection::vec(token, 0..max)
}

#[test]
fn token_soup() {
    let strategy = (0..3u8, soup(150), select(vec![" ", "\n", "", "\t"]));
    fuzz("token_soup", 4_000, strategy, |(ctx, toks, sep)| {
        let text = toks.join(sep);
        match ctx {
            0 => format!("{HEADER}{text}"),
            1 => kernel(".param .u64 out", &text),
            _ => text,
        }
    });
}

#[test]
fn deep_and_unbalanced_nesting() {
    let pairs = vec![("(", ")"), ("{", "}"), ("[t, ", "]"), ("({", "})")];
    let inner = prop::collection::vec(
        select(vec![
            "(", ")", "{", "}", "[", "]", ",", "1", "1", "1", "%r1", "t", "-",
        ]),
        0..8,
    );
    // Depths around the limit and far beyond it; balanced half of the time.
    let depth = prop_oneof![0..80usize, 0..3_000usize];
    let closes = prop_oneof![Just(None), (0..3_000usize).prop_map(Some)];
    let strategy = (0..5u8, select(pairs), depth, closes, inner);
    fuzz(
        "nesting",
        2_000,
        strategy,
        |(ctx, pair, opens, closes, inner)| {
            nest(
                *ctx,
                *pair,
                *opens,
                closes.unwrap_or(*opens),
                &inner.concat(),
            )
        },
    );
}

/// `inner` inside `opens` openers and `closes` closers of `pair`, in context `ctx`.
fn nest(ctx: u8, (open, close): (&str, &str), opens: usize, closes: usize, inner: &str) -> String {
    let x = format!("{}{inner}{}", open.repeat(opens), close.repeat(closes));
    match ctx {
        0 => kernel("", &format!("add.s32 %r1, {x}, 2;")),
        1 => format!("{HEADER}.global .b32 v[4] = {x};\n"),
        2 => {
            let body = format!("{}mov.u32 %r1, 1;{}", "{".repeat(opens), "}".repeat(closes));
            kernel("", &body)
        }
        3 => kernel("", &format!("call ({x}), f, ({x});")),
        _ => kernel(
            "",
            &format!("tex.1d.v4.f32.s32 {{%r1, %r2, %r3, %r4}}, {x};"),
        ),
    }
}

/// One declaration or use of sizes `a`, `b`, `c` in context `which`.
fn sized(which: u8, a: u64, b: u64, c: u64) -> String {
    let n = (a % 600) as usize;
    let list = vec!["1"; n].join(", ");
    match which {
        0 => format!("{HEADER}.global .b8 x[{a}][{b}];\n.const .v4 .f32 y[{c}];\n"),
        1 => format!("{HEADER}.global .align {a} .b32 x[{b}] = {{1, 2, 3}};\n"),
        2 => kernel("", &format!(".shared .align {b} .b8 s[{a}];\nmov.u64 %rd1, s;\nst.shared.u8 [%rd1+{c}], 1;")),
        3 => kernel("", &format!(".local .align {b} .b8 l[{a}];\nmov.u64 %rd1, l;\nst.local.u8 [%rd1+-{c}], 1;")),
        4 => kernel(&format!(".param .align {b} .b8 p[{a}], .param .u64 q[{c}]"), "ld.param.u64 %rd1, [q];"),
        5 => kernel("", &format!(".reg .b32 %x<{}>;\n.reg .pred %q<{}>;", a % 100_000, b % 100_000)),
        6 => format!("{HEADER}.visible .entry k() .maxntid {a}, {b}, {c} .reqntid {c}, {b}\n{{\nret;\n}}\n"),
        7 => format!("{HEADER}.global .b32 x[] = {{{list}}};\n.global .u8 y[{b}] = {{{list}}};\n"),
        8 => kernel("", &format!("add.s64 %rd1, %rd2, {a};\nld.global.u32 %r1, [%rd1+{b}];\nmov.u64 %rd3, g+{c};\nadd.s32 %r2, %r1, -{a};")),
        9 => format!("{HEADER}.global .b32 t[2];\n.global .u64 x[2] = {{generic(t)+{a}-{b}, t+{c}}};\n"),
        10 => format!(
            "{HEADER}.func (.param .b8 r[{a}]) f(.param .b8 x[{b}])\n{{\nret;\n}}\n{}",
            kernel("", "{\n.param .b8 a[8];\n.param .b8 b[8];\ncall (b), f, (a);\n}").trim_start_matches(HEADER)
        ),
        _ => format!("{HEADER}.global .b8 x[{a}];\n.global .b8 y[{b}];\n.const .b8 z[{c}];\n"),
    }
}

#[test]
fn extreme_counts_and_sizes() {
    let strategy = (0..12u8, big(), big(), big());
    fuzz("sizes", 4_000, strategy, |&(which, a, b, c)| {
        sized(which, a, b, c)
    });
}

fn fixtures() -> &'static [String] {
    static FIXTURES: OnceLock<Vec<String>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        [
            "basic",
            "misc",
            "coverage",
            "forms",
            "handwritten",
            "softmax",
            "sgemm",
            "half_math",
        ]
        .iter()
        .map(|f| common::fixture(&format!("{f}.ptx")))
        .collect()
    })
}

/// A mutation at a position (index into the text), of a kind, with a token and a length.
type Mutation = (Index, u8, &'static str, usize);

/// Extreme numbers a literal may be replaced with.
const EXTREME: &[&str] = &[
    "0",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "1024",
];

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Applies `muts`: byte-span edits, token insertions, deep parentheses, line duplication and
/// swaps, and extreme values in place of numeric literals.
fn mutate(text: &str, muts: &[Mutation]) -> String {
    let mut s = text.to_string();
    for (at, kind, tok, len) in muts {
        let i = floor_boundary(&s, at.index(s.len() + 1));
        let j = floor_boundary(&s, (i + len).min(s.len()));
        // The line holding `i`.
        let line_start = s[..i].rfind('\n').map_or(0, |p| p + 1);
        let line_end = s[i..].find('\n').map_or(s.len(), |p| i + p + 1);
        match kind % 8 {
            0 => s.replace_range(i..j, ""),
            1 => s.replace_range(i..j, tok),
            2 => s.insert_str(i, tok),
            3 => {
                let dup = s[i..j].to_string();
                s.insert_str(j, &dup);
            }
            4 => s.insert_str(i, &"(".repeat(*len * 10)),
            5 => {
                let line = s[line_start..line_end].to_string();
                s.insert_str(line_end, &line);
            }
            6 => {
                let line = s[line_start..line_end].to_string();
                s.replace_range(line_start..line_end, "");
                let k = floor_boundary(&s, (line_start + len * 37).min(s.len()));
                let k = s[..k].rfind('\n').map_or(0, |p| p + 1);
                s.insert_str(k, &line);
            }
            _ => {
                let Some(d) = s[i..].find(|c: char| c.is_ascii_digit()) else {
                    continue;
                };
                let d = i + d;
                let e = s[d..]
                    .find(|c: char| !c.is_ascii_alphanumeric())
                    .map_or(s.len(), |p| d + p);
                s.replace_range(d..e, EXTREME[len % EXTREME.len()]);
            }
        }
    }
    s
}

#[test]
fn mutated_fixtures() {
    let one = (any::<Index>(), any::<u8>(), select(VOCAB), 0..40usize);
    let strategy = (0..fixtures().len(), prop::collection::vec(one, 1..4));
    fuzz("mutated_fixtures", 4_000, strategy, |(f, muts)| {
        mutate(&fixtures()[*f], muts)
    });
}
