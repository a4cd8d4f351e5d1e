//! Regression tests for hostile modules: deep nesting is a parse error (not a stack overflow),
//! declared sizes are checked before anything is allocated, and every limit of
//! `gpushare_ptx::limits` is an error rather than unbounded memory or time.

use gpushare_ptx::limits::{
    MAX_CALL_DEPTH, MAX_NESTING, MAX_PARAM_BYTES, MAX_REGISTERS, MAX_SHARED_BYTES,
};
use gpushare_ptx::{Module, PtxError};
use std::time::{Duration, Instant};

const HEADER: &str = ".version 8.0\n.target sm_90\n.address_size 64\n";
const GIB64: u64 = 64 << 30;

/// Loads `src` on a thread with a 512 KiB stack: bounded recursion must fit in far less than the
/// 2 MiB a spawned thread gets by default (the deepest inputs here need under 100 KiB in release
/// builds, under 512 KiB in debug builds).
fn load_small_stack(src: String) -> Result<Module, PtxError> {
    std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(move || Module::load(&src))
        .unwrap()
        .join()
        .expect("Module::load panicked")
}

fn kernel(body: &str) -> String {
    format!("{HEADER}.visible .entry k(.param .u64 out)\n{{\n.reg .b32 %r<4>;\n.reg .b64 %rd<4>;\n{body}\n}}\n")
}

fn nested(open: &str, close: &str, n: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

#[track_caller]
fn assert_parse_error(r: Result<Module, PtxError>, what: &str) {
    match r {
        Err(PtxError::Parse { msg, .. }) => assert!(msg.contains("nest"), "{what}: {msg}"),
        other => panic!("{what}: want a nesting parse error, got {other:?}"),
    }
}

#[track_caller]
fn assert_unsupported(r: Result<Module, PtxError>, needle: &str) {
    match r {
        Err(e @ PtxError::Unsupported { .. }) => {
            assert!(e.to_string().contains(needle), "{e} (want `{needle}`)")
        }
        other => panic!("want an Unsupported error naming `{needle}`, got {other:?}"),
    }
}

#[test]
fn ten_thousand_nested_parentheses_in_an_operand_are_a_parse_error() {
    let src = kernel(&format!(
        "add.s32 %r1, {}, 2;",
        nested("(", ")", 10_000, "1")
    ));
    assert!(src.len() > 20_000);
    assert_parse_error(load_small_stack(src), "operand");
    let call = kernel(&format!("call f, {};", nested("(", ")", 10_000, "%r1")));
    assert_parse_error(load_small_stack(call), "call arguments");
}

#[test]
fn ten_thousand_nested_braces_in_an_initializer_are_a_parse_error() {
    let src = format!(
        "{HEADER}.global .b32 g[1] = {};\n",
        nested("{", "}", 10_000, "1")
    );
    assert_parse_error(load_small_stack(src), "initializer");
}

#[test]
fn other_deep_nesting_is_a_parse_error() {
    let blocks = kernel(&nested("{\n", "}\n", 10_000, "mov.u32 %r1, 1;\n"));
    assert_parse_error(load_small_stack(blocks), "body blocks");
    let vectors = kernel(&format!(
        "mov.b64 %rd1, {};",
        nested("{", "}", 10_000, "%r1")
    ));
    assert_parse_error(load_small_stack(vectors), "vector operand");
    let addrs = kernel(&format!(
        "tex.1d.v4.f32.s32 {{%r1, %r2, %r3, %r0}}, {};",
        nested("[t, ", "]", 10_000, "%r1")
    ));
    assert_parse_error(load_small_stack(addrs), "texture operands");
    let mixed = kernel(&format!(
        "add.s32 %r1, {}, 2;",
        nested("({[t, ", "]})", 3_000, "1")
    ));
    assert_parse_error(load_small_stack(mixed), "mixed nesting");
}

#[test]
fn nesting_up_to_the_limit_is_accepted() {
    // The initializer itself is one level; each brace adds one.
    let deep = (MAX_NESTING - 1) as usize;
    let ok = format!(
        "{HEADER}.global .b32 g[1] = {};\n",
        nested("{", "}", deep, "7")
    );
    let m = load_small_stack(ok).expect("nesting within the limit");
    assert_eq!(m.global("g").unwrap().1.init, 7u32.to_le_bytes());
    let over = format!(
        "{HEADER}.global .b32 g[1] = {};\n",
        nested("{", "}", deep + 1, "7")
    );
    assert_parse_error(load_small_stack(over), "one level too deep");
    let blocks = kernel(&nested("{\n", "}\n", deep - 1, "mov.u32 %r1, 1;\n"));
    load_small_stack(blocks).expect("blocks within the limit");
}

#[test]
fn a_64_gib_global_loads_without_allocating_it() {
    let t0 = Instant::now();
    let src = format!(
        "{HEADER}.global .b8 big[{GIB64}];\n.global .align 8 .b32 init[{}] = {{1, 2, 3}};\n.const .b8 c[{GIB64}];\n",
        GIB64 / 4
    );
    let m = Module::load(&src).expect("a huge declaration is the device's problem");
    let (_, big) = m.global("big").unwrap();
    assert_eq!((big.size as u64, big.init.len()), (GIB64, 0));
    let (_, init) = m.global("init").unwrap();
    assert_eq!(init.size as u64, GIB64);
    assert_eq!(init.init, [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
    assert_eq!(m.global("c").unwrap().1.size as u64, GIB64);
    // A thousand of them: 64 TiB declared, nothing allocated.
    let many: String = (0..1000)
        .map(|i| format!(".global .b8 g{i}[{GIB64}];\n"))
        .collect();
    let m = Module::load(&format!("{HEADER}{many}")).unwrap();
    assert_eq!(m.globals().len(), 1000);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn sizes_that_overflow_are_invalid() {
    for decl in [
        ".global .b8 g[4294967296][4294967296];",
        ".global .b64 g[2305843009213693952];",
        ".global .v4 .b64 g[18446744073709551615];",
        ".const .b8 a[9223372036854775808];\n.const .b8 b[9223372036854775808];",
        ".global .b8 a[1];\n.global .align 1073741824 .b8 b[18446744073708503040];",
    ] {
        match Module::load(&format!("{HEADER}{decl}\n")) {
            Err(PtxError::Invalid { msg, .. }) => assert!(
                msg.contains("overflows") || msg.contains("2^64"),
                "{decl}: {msg}"
            ),
            other => panic!("{decl}: want Invalid, got {other:?}"),
        }
    }
}

#[test]
fn shared_local_and_parameter_sizes_are_bounded() {
    let shared = kernel(&format!(
        ".shared .b8 s[{GIB64}];\nmov.u64 %rd1, s;\nst.shared.u8 [%rd1], 1;"
    ));
    assert_unsupported(Module::load(&shared), "shared memory");
    let over = kernel(&format!(
        ".shared .b8 s[{}];\nmov.u64 %rd1, s;",
        MAX_SHARED_BYTES + 1
    ));
    assert_unsupported(Module::load(&over), "shared memory");
    let local = kernel(&format!(".local .b8 l[{GIB64}];\nmov.u64 %rd1, l;"));
    assert_unsupported(Module::load(&local), "local memory");
    for n in [GIB64, MAX_PARAM_BYTES as u64 + 1, u64::MAX] {
        let src = format!("{HEADER}.visible .entry k(.param .align 4 .b8 p[{n}])\n{{\nret;\n}}\n");
        match Module::load(&src) {
            Err(PtxError::Unsupported { .. } | PtxError::Invalid { .. }) => {}
            other => panic!("param of {n} bytes: {other:?}"),
        }
    }
    let src = format!(
        "{HEADER}.visible .entry k(.param .u32 a, .param .align 4 .b8 p[{}])\n{{\nret;\n}}\n",
        MAX_PARAM_BYTES - 4
    );
    let m = Module::load(&src).expect("parameters exactly at the limit");
    assert_eq!(m.kernel("k").unwrap().param_bytes(), MAX_PARAM_BYTES);
}

#[test]
fn register_ranges_are_bounded() {
    let t0 = Instant::now();
    let huge = kernel(".reg .b32 %x<4294967295>;");
    assert_unsupported(Module::load(&huge), "registers");
    let twice = kernel(&format!(
        ".reg .b32 %x<{MAX_REGISTERS}>;\n{{\n.reg .b32 %y<{MAX_REGISTERS}>;\n}}"
    ));
    assert_unsupported(Module::load(&twice), "registers");
    let preds = kernel(".reg .pred %q<4000000000>;");
    assert_unsupported(Module::load(&preds), "registers");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn inlining_depth_and_size_are_bounded() {
    // A chain of calls deeper than MAX_CALL_DEPTH.
    let n = MAX_CALL_DEPTH + 10;
    let mut src = String::from(HEADER);
    src.push_str(".func f0()\n{\nret;\n}\n");
    for i in 1..n {
        src.push_str(&format!(".func f{i}()\n{{\ncall f{};\nret;\n}}\n", i - 1));
    }
    src.push_str(&format!(
        ".visible .entry k()\n{{\ncall f{};\nret;\n}}\n",
        n - 1
    ));
    assert_unsupported(load_small_stack(src), "nested deeper");
    // Each level calls the previous one twice: 2^40 copies of g0 if fully inlined. With a
    // register in g0 the register limit trips first; without, the instruction limit.
    for (g0, limit) in [
        (".reg .b32 %a;\nadd.s32 %a, %a, 1;", "registers"),
        ("membar.gl;\nmembar.gl;", "instructions"),
    ] {
        let t0 = Instant::now();
        let mut src = format!("{HEADER}.func g0()\n{{\n{g0}\nret;\n}}\n");
        for i in 1..=40 {
            src.push_str(&format!(
                ".func g{i}()\n{{\ncall g{p};\ncall g{p};\nret;\n}}\n",
                p = i - 1
            ));
        }
        src.push_str(".visible .entry k()\n{\ncall g40;\nret;\n}\n");
        assert_unsupported(Module::load(&src), limit);
        eprintln!(
            "2^40 inlined calls rejected ({limit}) in {:?}",
            t0.elapsed()
        );
        assert!(t0.elapsed() < Duration::from_secs(30));
    }
}

#[test]
fn arithmetic_on_extreme_literals_does_not_overflow() {
    let body = "mov.u64 %rd1, sym+-9223372036854775808;\n\
                ld.global.u32 %r1, [%rd1+9223372036854775807+9223372036854775807];\n\
                ld.global.u32 %r1, [%rd1-9223372036854775808];\n\
                add.s64 %rd2, %rd1, -18446744073709551615;";
    let src = format!(
        "{HEADER}.global .u64 sym = 1;\n.global .u64 p = sym+9223372036854775807+9223372036854775807;\n{}",
        kernel(body).trim_start_matches(HEADER)
    );
    let r = std::panic::catch_unwind(|| Module::load(&src).map(|_| ()));
    assert!(r.is_ok(), "Module::load panicked on extreme literals");
    let maxntid = format!(
        "{HEADER}.visible .entry k() .maxntid 4294967295, 4294967295, 4294967295\n{{\nret;\n}}\n"
    );
    let m = Module::load(&maxntid).unwrap();
    assert_eq!(m.kernel("k").unwrap().max_threads_per_block(), 1024);
}
