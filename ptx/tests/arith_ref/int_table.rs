//! Extended-precision integer table (`add.cc addc sub.cc subc mad.lo/hi.cc madc.lo/hi(.cc)`
//! on u32/s32/u64/s64, with carry-in 0 and 1) and the forms the ISA does not define.

use super::common::{cfg, run, Arg, VecMem};
use gpushare_ptx::Module;

const OPS: [&str; 12] = [
    "add.cc",
    "addc",
    "addc.cc",
    "sub.cc",
    "subc",
    "subc.cc",
    "mad.lo.cc",
    "mad.hi.cc",
    "madc.lo",
    "madc.hi",
    "madc.lo.cc",
    "madc.hi.cc",
];

/// Reference: (result, carry flag after).
fn reference(op: &str, bits: u32, signed: bool, a: u64, b: u64, c: u64, cin: bool) -> (u64, bool) {
    let m = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let sx = |v: u64| {
        if signed {
            ((v << (64 - bits)) as i64 >> (64 - bits)) as i128
        } else {
            v as i128
        }
    };
    let uses_cin = op.starts_with("addc") || op.starts_with("subc") || op.starts_with("madc");
    let ci = (uses_cin && cin) as i128;
    let (x, y, sub) = if op.starts_with("mad") {
        let p = sx(a & m) * sx(b & m);
        let part = if op.contains(".hi") { p >> bits } else { p };
        ((part as u128 as u64) & m, c & m, false)
    } else {
        (a & m, b & m, op.starts_with("sub"))
    };
    let full: i128 = if sub {
        x as i128 - y as i128 - ci
    } else {
        x as i128 + y as i128 + ci
    };
    let carry = if sub { full < 0 } else { full >> bits != 0 };
    let out = (full as u128 as u64) & m;
    (out, if op.ends_with(".cc") { carry } else { cin })
}

fn kernel(op: &str, ty: &str, w: u32) -> String {
    let mad = op.starts_with("mad");
    let c = if mad { ", %x3" } else { "" };
    let all1 = if w == 64 {
        "0xffffffffffffffff"
    } else {
        "0xffffffff"
    };
    format!(
        ".version 8.0\n.target sm_90\n.address_size 64\n\
         .visible .entry k(.param .u64 p)\n{{\n\t.reg .b32 %i<2>;\n\t.reg .b64 %rd<4>;\n\
         \t.reg .{ty} %x<8>;\n\tmov.u32 %i0, %tid.x;\n\tmov.u32 %i1, %ctaid.x;\n\tshl.b32 %i1, %i1, 8;\n\
         \tadd.u32 %i0, %i0, %i1;\n\tmul.wide.u32 %rd0, %i0, 48;\n\tld.param.u64 %rd1, [p];\n\
         \tadd.s64 %rd1, %rd1, %rd0;\n\tld.global.{ty} %x1, [%rd1];\n\tld.global.{ty} %x2, [%rd1+8];\n\
         \tld.global.{ty} %x3, [%rd1+16];\n\tld.global.{ty} %x4, [%rd1+24];\n\
         \tadd.cc.{ty} %x5, %x4, {all1};\n\t{op}.{ty} %x0, %x1, %x2{c};\n\taddc.{ty} %x6, 0, 0;\n\
         \tst.global.{ty} [%rd1+32], %x0;\n\tst.global.{ty} [%rd1+40], %x6;\n\tret;\n}}\n"
    )
}

#[test]
fn carry_family_table() {
    let vals: [u64; 8] = [
        0,
        1,
        2,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0x1234_5678_9abc_def1,
        u64::MAX,
    ];
    let (mut forms, mut cases) = (0, 0);
    for op in OPS {
        for (ty, w, signed) in [
            ("u32", 32, false),
            ("s32", 32, true),
            ("u64", 64, false),
            ("s64", 64, true),
        ] {
            forms += 1;
            let ptx = kernel(op, ty, w);
            let m = Module::load(&ptx).unwrap_or_else(|e| panic!("{op}.{ty}: {e}"));
            let mut rows = vec![];
            for &a in &vals {
                for &b in &vals {
                    for &c in &vals {
                        for cin in [0u64, 1] {
                            rows.push([a, b, c, cin]);
                        }
                    }
                }
            }
            let n = rows.len();
            let mut mem = VecMem::new(n * 48 + 4096);
            let p = mem.alloc(n * 48);
            let wm = if w == 64 { u64::MAX } else { 0xffff_ffff };
            for (i, r) in rows.iter().enumerate() {
                let bytes: Vec<u8> = r.iter().flat_map(|v| (v & wm).to_le_bytes()).collect();
                mem.write(p + i as u64 * 48, &bytes);
            }
            run(
                &m,
                "k",
                cfg([(n / 256) as u32, 1, 1], [256, 1, 1]),
                &[Arg::U64(p)],
                &mem,
                4,
            )
            .unwrap();
            for (i, r) in rows.iter().enumerate() {
                let out = mem.read_u64(p + i as u64 * 48 + 32, 2);
                let (d, cf) = reference(op, w, signed, r[0], r[1], r[2], r[3] == 1);
                cases += 1;
                assert_eq!(
                    (out[0] & wm, out[1] & wm),
                    (d, cf as u64),
                    "{op}.{ty} {:x?}",
                    r
                );
            }
        }
    }
    eprintln!("carry table: {forms} forms, {cases} cases");
}

#[test]
fn undefined_forms_are_rejected() {
    let forms = [
        ("f32", "fma.f32 %a0, %a1, %a2, %a3"),
        ("f64", "fma.f64 %a0, %a1, %a2, %a3"),
        ("f64", "mad.f64 %a0, %a1, %a2, %a3"),
        ("f64", "add.ftz.f64 %a0, %a1, %a2"),
        ("f64", "mul.rz.sat.f64 %a0, %a1, %a2"),
        ("f32", "div.f32 %a0, %a1, %a2"),
        ("f32", "div.rn.sat.f32 %a0, %a1, %a2"),
        ("f64", "div.full.f64 %a0, %a1, %a2"),
        ("f64", "div.approx.f64 %a0, %a1, %a2"),
        ("f32", "sqrt.f32 %a0, %a1"),
        ("f32", "sqrt.rn.sat.f32 %a0, %a1"),
        ("f32", "rcp.full.f32 %a0, %a1"),
        ("f32", "add.approx.f32 %a0, %a1, %a2"),
        ("b16", "add.rz.f16 %a0, %a1, %a2"),
        ("b16", "fma.rm.f16 %a0, %a1, %a2, %a3"),
        ("b16", "fma.f16 %a0, %a1, %a2, %a3"),
        ("b16", "add.ftz.bf16 %a0, %a1, %a2"),
        ("b16", "fma.rn.sat.bf16 %a0, %a1, %a2, %a3"),
        ("b16", "add.relu.f16 %a0, %a1, %a2"),
        ("b16", "fma.rn.sat.relu.f16 %a0, %a1, %a2, %a3"),
        ("b32", "mad.cc.u32 %a0, %a1, %a2, %a3"),
        ("b32", "addc.cc.f32 %a0, %a1, %a2"),
        ("b16", "add.cc.u16 %a0, %a1, %a2"),
        ("b16", "mad.lo.cc.u16 %a0, %a1, %a2, %a3"),
    ];
    for (rty, inst) in forms {
        let ptx = format!(
            ".version 8.0\n.target sm_90\n.address_size 64\n.visible .entry k()\n{{\n\t.reg .{rty} %a<4>;\n\t{inst};\n\tret;\n}}\n"
        );
        match Module::load(&ptx) {
            Ok(_) => panic!("`{inst}` loaded; the ISA does not define it"),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(inst.split(' ').next().unwrap()) || msg.contains("not defined"),
                    "{inst}: {msg}"
                );
            }
        }
    }
}
