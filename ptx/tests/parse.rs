//! Parser tests: directives, declarations, operand forms, and error reporting.

mod common;
use common::*;
use gpushare_ptx::{GlobalSpace, Module, PtxError};

const HEADER: &str = ".version 8.0\n.target sm_90\n.address_size 64\n";

#[test]
fn directives_and_declarations() {
    let m = Module::load(&fixture("forms.ptx")).unwrap();
    assert_eq!(m.ptx_version(), (8, 0));
    assert_eq!(m.target(), "sm_80");
    let k = m.kernel("forms").unwrap();
    assert_eq!(m.kernels().count(), 1, "only .entry functions are kernels");
    assert_eq!(k.max_threads_per_block(), 128);
    assert!(k.uses_dynamic_shared());
    assert_eq!(k.params().len(), 2);
    assert_eq!(
        (
            k.params()[0].offset,
            k.params()[0].size,
            k.params()[0].align
        ),
        (0, 8, 8)
    );
    assert_eq!(
        (
            k.params()[1].offset,
            k.params()[1].size,
            k.params()[1].align
        ),
        (8, 16, 8)
    );
    assert_eq!(k.param_bytes(), 24);
    let names: Vec<&str> = m.globals().iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["gtable", "gptr", "gptr2", "gzero", "cvals"]);
    let (_, gt) = m.global("gtable").unwrap();
    assert_eq!((gt.size, gt.align, gt.space), (16, 4, GlobalSpace::Global));
    assert_eq!(
        gt.init,
        [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 255, 255, 255, 255]
    );
    let (_, gp) = m.global("gptr2").unwrap();
    assert_eq!(gp.relocs.len(), 1);
    assert_eq!(
        (gp.relocs[0].target, gp.relocs[0].addend, gp.relocs[0].size),
        (0, 8, 8)
    );
    let resolved = gp.resolved_init(&[0x1000, 0, 0, 0, 0]);
    assert_eq!(u64::from_le_bytes(resolved.try_into().unwrap()), 0x1008);
    let (_, cv) = m.global("cvals").unwrap();
    assert_eq!(cv.space, GlobalSpace::Const);
    assert_eq!(&cv.init[4..8], &2.0f32.to_le_bytes());
    assert_eq!(m.global("gzero").unwrap().1.init, vec![0; 12]);
}

#[test]
fn operand_forms_execute() {
    let m = Module::load(&fixture("forms.ptx")).unwrap();
    let k = m.kernel("forms").unwrap();
    let mut mem = VecMem::new(1 << 16);
    let globals = load_globals(&m, &mut mem);
    let threads = 8usize;
    let out = mem.alloc(threads * 64);
    let mut blob = vec![0u8; 16];
    blob[8..12].copy_from_slice(&11u32.to_le_bytes());
    blob[12..16].copy_from_slice(&22u32.to_le_bytes());
    let params = pack(k, &[Arg::U64(out), Arg::Bytes(blob)]);
    let c = gpushare_ptx::LaunchConfig {
        grid: [1, 1, 1],
        block: [threads as u32, 1, 1],
        dynamic_shared_bytes: 256,
    };
    gpushare_ptx::launch(&m, k, &c, &params, &globals, &mem, &Default::default()).unwrap();
    let w = mem.read_u32(out, threads * 16);
    for t in 0..threads {
        let r = &w[t * 16..t * 16 + 16];
        assert_eq!(r[0], 11);
        assert_eq!(r[1], 22);
        assert_eq!(r[2], 0xABCD);
        assert_eq!(r[3], 0xFFFF_FFFF);
        assert_eq!(r[4], 2);
        assert_eq!(f32::from_bits(r[5]), 3.0);
        assert_eq!(r[6], if t < 2 { (-7i32) as u32 } else { 0 });
        assert_eq!(r[7], if t < 2 { 200 } else { 100 });
        assert_eq!(r[8], 4 * t as u32);
        assert_eq!(f32::from_bits(r[9]), 2.0);
        assert_eq!(r[10], 0xABCD);
        assert_eq!(r[11], ((t + 1) % threads) as u32);
        assert_eq!(r[12], 3);
    }
    // over the .maxntid limit
    let c = gpushare_ptx::LaunchConfig {
        grid: [1, 1, 1],
        block: [256, 1, 1],
        dynamic_shared_bytes: 1024,
    };
    let e = gpushare_ptx::launch(
        &m,
        k,
        &c,
        &pack(k, &[Arg::U64(out), Arg::Bytes(vec![0; 16])]),
        &globals,
        &mem,
        &Default::default(),
    );
    assert!(
        matches!(e, Err(gpushare_ptx::ExecError::InvalidConfig(_))),
        "{e:?}"
    );
}

fn load_err(body: &str) -> PtxError {
    let src = format!("{HEADER}.visible .entry k(.param .u64 p)\n{{\n{body}\n}}\n");
    Module::load(&src).unwrap_err()
}

#[test]
fn parse_error_positions() {
    // line 6 = first body line; the column points at the offending token
    match load_err("\t.reg .b32 %r<4>;\n\tmov.u32 %r1, ;") {
        PtxError::Parse { line, col, .. } => assert_eq!((line, col), (7, 15)),
        e => panic!("{e:?}"),
    }
    match Module::load(".version 8.0\n.target sm_90\n.address_size 64\n.visible .entry k(\n  .param .u64 p,\n  .param .u64\n)\n{ ret; }") {
        Err(PtxError::Parse { line, .. }) => assert_eq!(line, 7),
        r => panic!("{r:?}"),
    }
    match Module::load("/* unterminated") {
        Err(PtxError::Parse {
            line: 1, col: 1, ..
        }) => {}
        r => panic!("{r:?}"),
    }
    match Module::load(".version 8.0\n  #bogus") {
        Err(PtxError::Parse {
            line: 2, col: 3, ..
        }) => {}
        r => panic!("{r:?}"),
    }
}

#[test]
fn unsupported_and_invalid() {
    match load_err("\t.reg .f32 %f<4>;\n\t.reg .b64 %rd<2>;\n\ttex.2d.v4.f32.f32 {%f0, %f1, %f2, %f3}, [%rd1, {%f0, %f1}];") {
        PtxError::Unsupported { line, instruction, .. } => {
            assert_eq!(line, 8);
            assert_eq!(instruction, "tex.2d.v4.f32.f32");
        }
        e => panic!("{e:?}"),
    }
    match load_err("\t.reg .b16 %h<4>;\n\tadd.rz.f16 %h1, %h2, %h3;") {
        PtxError::Unsupported {
            line: 7,
            instruction,
            ..
        } => assert_eq!(instruction, "add.rz.f16"),
        e => panic!("{e:?}"),
    }
    match load_err("\t.reg .f64 %fd<4>;\n\tadd.rz.sat.f64 %fd1, %fd2, %fd3;") {
        PtxError::Invalid { line: 7, msg } => assert!(msg.contains("add.rz.sat.f64"), "{msg}"),
        e => panic!("{e:?}"),
    }
    match load_err("\t.reg .b32 %r<4>;\n\tadd.s32.bogus %r1, %r2, %r3;") {
        PtxError::Unsupported {
            line: 7,
            instruction,
            reason,
        } => {
            assert_eq!(instruction, "add.s32.bogus");
            assert!(reason.contains("bogus"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
    match load_err("\t.reg .b32 %r<4>;\n\tadd.s32 %r1, %r2, %r9;") {
        PtxError::Invalid { line: 7, msg } => assert!(msg.contains("%r9"), "{msg}"),
        e => panic!("{e:?}"),
    }
    match load_err("\tbra $L_nowhere;") {
        PtxError::Invalid { msg, .. } => assert!(msg.contains("$L_nowhere"), "{msg}"),
        e => panic!("{e:?}"),
    }
    match load_err("\twmma.load.a.sync.aligned.row.m16n16k16.f16 {%r1}, [%rd1], 16;") {
        PtxError::Unsupported { instruction, .. } => assert!(instruction.starts_with("wmma.load")),
        e => panic!("{e:?}"),
    }
    // a well-formed kernel with ret only loads
    assert!(Module::load(&format!("{HEADER}.entry e() {{ ret; }}")).is_ok());
}
