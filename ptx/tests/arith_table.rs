//! Generated table test of PTX arithmetic: every rounding / `.ftz` / `.sat` / `.relu`
//! combination the PTX ISA defines for `add sub mul fma mad div sqrt rcp` on f32, f64, f16,
//! f16x2, bf16 and bf16x2, and the extended-precision integer family (`add.cc addc sub.cc
//! subc mad.lo/hi.cc madc.lo/hi(.cc)`), is parsed, lowered and run by the interpreter on
//! edge inputs and compared bit for bit with an exact big-integer reference (`arith_ref`).
//! NaN results compare as a class (the reference gives the canonical NaN). Forms the ISA
//! does not define must fail to load.

mod arith_ref;
mod common;

use arith_ref::{Fmt, Val, BF16, F16, F32, F64};
use common::{cfg, run, Arg, VecMem};
use gpushare_ptx::Module;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    F32,
    F64,
    F16,
    F16x2,
    Bf16,
    Bf16x2,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::F32 => "f32",
            Kind::F64 => "f64",
            Kind::F16 => "f16",
            Kind::F16x2 => "f16x2",
            Kind::Bf16 => "bf16",
            Kind::Bf16x2 => "bf16x2",
        }
    }
    /// Register declaration type, register prefix, bytes per element.
    fn reg(self) -> (&'static str, &'static str, usize) {
        match self {
            Kind::F32 => ("f32", "%f", 4),
            Kind::F64 => ("f64", "%fd", 8),
            Kind::F16 | Kind::Bf16 => ("b16", "%h", 2),
            Kind::F16x2 | Kind::Bf16x2 => ("b32", "%r", 4),
        }
    }
    fn fmt(self) -> Fmt {
        match self {
            Kind::F32 => F32,
            Kind::F64 => F64,
            Kind::F16 | Kind::F16x2 => F16,
            Kind::Bf16 | Kind::Bf16x2 => BF16,
        }
    }
    fn x2(self) -> bool {
        matches!(self, Kind::F16x2 | Kind::Bf16x2)
    }
}

/// One instruction form.
#[derive(Clone, Debug)]
struct Combo {
    op: &'static str,
    kind: Kind,
    rnd: Option<u8>,
    ftz: bool,
    sat: bool,
    relu: bool,
}

impl Combo {
    fn nsrc(&self) -> usize {
        match self.op {
            "fma" | "mad" => 3,
            "sqrt" | "rcp" => 1,
            _ => 2,
        }
    }
    fn opcode(&self) -> String {
        let mut s = self.op.to_string();
        if let Some(r) = self.rnd {
            s += ["", ".rn", ".rz", ".rm", ".rp"][r as usize + 1];
        }
        for (on, m) in [(self.ftz, ".ftz"), (self.sat, ".sat"), (self.relu, ".relu")] {
            if on {
                s += m;
            }
        }
        format!("{s}.{}", self.kind.name())
    }
}

/// Kernel: thread i computes `d[i] = op(a[i], b[i], c[i])`.
fn kernel(inst: &str, nsrc: usize, dty: &str, pre: &str, size: usize) -> String {
    let mut body = String::new();
    let srcs: Vec<String> = (1..=nsrc).map(|k| format!("{pre}{k}")).collect();
    for (k, p) in ["pa", "pb", "pc"].iter().take(nsrc).enumerate() {
        body += &format!(
            "\tld.param.u64 %rd1, [{p}];\n\tadd.s64 %rd1, %rd1, %rd0;\n\tld.global.{dty} {}, [%rd1];\n",
            srcs[k]
        );
    }
    let args = std::iter::once(format!("{pre}0"))
        .chain(srcs)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        ".version 8.0\n.target sm_90\n.address_size 64\n\
         .visible .entry k(.param .u64 pa, .param .u64 pb, .param .u64 pc, .param .u64 pd, .param .u32 n)\n{{\n\
         \t.reg .pred %p;\n\t.reg .b32 %i<4>;\n\t.reg .b64 %rd<4>;\n\t.reg .{dty} {pre}<4>;\n\
         \tmov.u32 %i0, %ctaid.x;\n\tmov.u32 %i1, %ntid.x;\n\tmov.u32 %i2, %tid.x;\n\
         \tmad.lo.u32 %i3, %i0, %i1, %i2;\n\tld.param.u32 %i1, [n];\n\
         \tsetp.ge.u32 %p, %i3, %i1;\n\t@%p bra DONE;\n\tmul.wide.u32 %rd0, %i3, {size};\n\
         {body}\t{inst} {args};\n\tld.param.u64 %rd1, [pd];\n\tadd.s64 %rd1, %rd1, %rd0;\n\
         \tst.global.{dty} [%rd1], {pre}0;\nDONE:\n\tret;\n}}\n"
    )
}

/// Runs `ptx` on the operand columns (raw values, `size` bytes each) and returns `d`.
fn run_cols(ptx: &str, cols: &[Vec<u64>; 3], size: usize) -> Vec<u64> {
    let m = Module::load(ptx).unwrap_or_else(|e| panic!("{e}\n{ptx}"));
    let n = cols[0].len();
    let mut mem = VecMem::new(n * size * 4 + 4096);
    let enc = |v: &[u64]| -> Vec<u8> {
        v.iter()
            .flat_map(|x| x.to_le_bytes()[..size].to_vec())
            .collect()
    };
    let mut ptrs = vec![];
    for c in cols {
        let a = mem.alloc(n * size);
        mem.write(a, &enc(c));
        ptrs.push(a);
    }
    let pd = mem.alloc(n * size);
    let args = [
        Arg::U64(ptrs[0]),
        Arg::U64(ptrs[1]),
        Arg::U64(ptrs[2]),
        Arg::U64(pd),
        Arg::U32(n as u32),
    ];
    let blocks = n.div_ceil(256) as u32;
    run(&m, "k", cfg([blocks, 1, 1], [256, 1, 1]), &args, &mem, 4).unwrap();
    mem.read(pd, n * size)
        .chunks(size)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect()
}

/// Edge inputs of a format: zeros, subnormals, normals around 1, boundaries, specials,
/// and values whose sums / products round differently in each direction.
fn edges(f: Fmt) -> Vec<u64> {
    let sign = 1u64 << (f.e + f.m);
    let one = ((1u64 << (f.e - 1)) - 1) << f.m;
    let min_norm = 1u64 << f.m;
    let max = f.inf(false) - 1;
    let mut v = vec![
        0,
        1,
        min_norm - 1,
        min_norm,
        min_norm + (1 << (f.m - 1)),
        one,
        one + 1,
        one - 1,
        one + (1 << f.m) + (1 << (f.m - 1)) + 1, // 3.0 + ulp
        one - (3 << f.m) + 5,                    // about 1/8
        one + (2 << f.m) + 3,
        one + ((f.m as u64 + 2) << f.m) + 1, // 2^(m+2) + ...: sums lose low bits
        max,
        max - 7,
        f.inf(false),
        f.nan(),
    ];
    let neg: Vec<u64> = v
        .iter()
        .filter(|&&x| x != f.nan() && x != 1 && x != one + 1)
        .map(|&x| x | sign)
        .collect();
    v.extend(neg);
    v
}

/// Reference for one scalar lane.
fn reference(c: &Combo, f: Fmt, a: u64, b: u64, cc: u64) -> u64 {
    let ftz_in = |x: u64| {
        if c.ftz && f.is_sub_or_zero(x) {
            x & f.sign()
        } else {
            x
        }
    };
    let (x, y, z) = (
        f.decode(ftz_in(a)),
        f.decode(ftz_in(b)),
        f.decode(ftz_in(cc)),
    );
    let r = c.rnd.unwrap_or(0);
    let one = Val::Fin {
        neg: false,
        mag: arith_ref::Big::from_u128(1),
        exp: 0,
    };
    let neg_of = |v: &Val| match v {
        Val::Nan => Val::Nan,
        Val::Inf(n) => Val::Inf(!n),
        Val::Fin { neg, mag, exp } => Val::Fin {
            neg: !neg,
            mag: mag.clone(),
            exp: *exp,
        },
    };
    let mut out = match c.op {
        "add" => arith_ref::add(&x, &y, f, r),
        "sub" => arith_ref::add(&x, &neg_of(&y), f, r),
        "mul" => arith_ref::fma(&x, &y, None, f, r),
        "fma" | "mad" => arith_ref::fma(&x, &y, Some(&z), f, r),
        "div" => arith_ref::div(&x, &y, f, r),
        "rcp" => arith_ref::div(&one, &x, f, r),
        _ => arith_ref::sqrt(&x, f, r),
    };
    if c.ftz && f.is_sub_or_zero(out) {
        out &= f.sign();
    }
    let is_nan = f.is_nan(out);
    if c.sat {
        let one_bits = ((1u64 << (f.e - 1)) - 1) << f.m;
        out = if is_nan || out & f.sign() != 0 {
            0
        } else {
            out.min(one_bits)
        };
    }
    if c.relu && !is_nan && out & f.sign() != 0 {
        out = 0;
    }
    out
}

fn same(f: Fmt, got: u64, want: u64) -> bool {
    got == want || (f.is_nan(got) && f.is_nan(want))
}

/// All float forms the ISA defines (excluding `.approx` / `.full`, which are not exact).
fn float_combos() -> Vec<Combo> {
    let mut v = vec![];
    let mut push = |op, kind, rnd, ftz, sat, relu| {
        v.push(Combo {
            op,
            kind,
            rnd,
            ftz,
            sat,
            relu,
        })
    };
    let flags = [(false, false), (true, false), (false, true), (true, true)];
    for kind in [Kind::F32, Kind::F64] {
        let f32k = kind == Kind::F32;
        for (ftz, sat) in flags {
            if !f32k && (ftz || sat) {
                continue;
            }
            for op in ["add", "sub", "mul"] {
                for rnd in [None, Some(0), Some(1), Some(2), Some(3)] {
                    push(op, kind, rnd, ftz, sat, false);
                }
            }
            for op in ["fma", "mad"] {
                for rnd in 0..4 {
                    push(op, kind, Some(rnd), ftz, sat, false);
                }
            }
            if !sat {
                for op in ["div", "sqrt", "rcp"] {
                    for rnd in 0..4 {
                        push(op, kind, Some(rnd), ftz, false, false);
                    }
                }
            }
        }
    }
    for kind in [Kind::F16, Kind::F16x2] {
        for (ftz, sat) in flags {
            for op in ["add", "sub", "mul"] {
                for rnd in [None, Some(0)] {
                    push(op, kind, rnd, ftz, sat, false);
                }
            }
            push("fma", kind, Some(0), ftz, sat, false);
            if !sat {
                push("fma", kind, Some(0), ftz, false, true);
            }
        }
    }
    for kind in [Kind::Bf16, Kind::Bf16x2] {
        for op in ["add", "sub", "mul"] {
            for rnd in [None, Some(0)] {
                push(op, kind, rnd, false, false, false);
            }
        }
        push("fma", kind, Some(0), false, false, false);
        push("fma", kind, Some(0), false, false, true);
    }
    v
}

/// Operand columns: every pair (binary) or triple (ternary) of edge values; packed kinds
/// pair each value with a second one in the high half.
fn columns(kind: Kind, nsrc: usize) -> [Vec<u64>; 3] {
    let e = edges(kind.fmt());
    let n = e.len();
    let mut cols = [vec![], vec![], vec![]];
    let total = n.pow(nsrc as u32);
    for t in 0..total {
        let idx = [t % n, (t / n) % n, (t / n / n) % n];
        for k in 0..3 {
            let lo = e[idx[k]];
            let v = if kind.x2() {
                let hi = e[(idx[k] * 7 + 3 + k) % n];
                (hi << 16) | lo
            } else {
                lo
            };
            cols[k].push(if k < nsrc { v } else { 0 });
        }
    }
    cols
}

#[test]
fn float_arithmetic_table() {
    let combos = float_combos();
    let (mut cases, mut bad) = (0usize, vec![]);
    for c in &combos {
        let (dty, pre, size) = c.kind.reg();
        let ptx = kernel(&c.opcode(), c.nsrc(), dty, pre, size);
        let cols = columns(c.kind, c.nsrc());
        let got = run_cols(&ptx, &cols, size);
        let f = c.kind.fmt();
        let lanes: &[u32] = if c.kind.x2() { &[0, 16] } else { &[0] };
        for i in 0..got.len() {
            for &sh in lanes {
                let m = if c.kind.x2() { 0xffff } else { u64::MAX };
                let part = |v: u64| (v >> sh) & m;
                let want = reference(c, f, part(cols[0][i]), part(cols[1][i]), part(cols[2][i]));
                cases += 1;
                if !same(f, part(got[i]), want) && bad.len() < 400 {
                    bad.push(format!(
                        "{}: a={:#x} b={:#x} c={:#x} (half {sh}): got {:#x}, want {want:#x}",
                        c.opcode(),
                        part(cols[0][i]),
                        part(cols[1][i]),
                        part(cols[2][i]),
                        part(got[i])
                    ));
                }
            }
        }
    }
    eprintln!("float table: {} forms, {cases} lane results", combos.len());
    let mut per: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for b in &bad {
        per.entry(b.split(':').next().unwrap().to_string())
            .or_default()
            .push(b.clone());
    }
    let bad: Vec<String> = per
        .values()
        .flat_map(|v| v.iter().take(3).cloned())
        .collect();
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[path = "arith_ref/int_table.rs"]
mod int_table;
