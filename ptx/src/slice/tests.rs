//! Unit tests of the rewrite: the text it produces and the entries it refuses.

use super::*;
use crate::Module;

const HEAD: &str = ".version 8.0\n.target sm_90\n.address_size 64\n";

fn module(body: &str) -> String {
    format!("{HEAD}{body}")
}

fn reason(m: &SlicedModule, name: &str) -> String {
    match &m.entry(name).unwrap().slicing {
        Slicing::NotSliceable { reason } => reason.clone(),
        s => panic!("{name} is sliceable: {s:?}"),
    }
}

/// The text of the sliced variant of `name`.
fn variant_text<'a>(m: &'a SlicedModule, name: &str) -> &'a str {
    let at = m.ptx.find(&format!(".entry {name}{SLICE_SUFFIX}")).unwrap();
    &m.ptx[at..]
}

const POSITIONS: &str = r#"
.visible .entry k(
	.param .u64 k_param_0
)
{
	.reg .pred 	%p<2>;
	.reg .b32 	%r<8>;
	.reg .b64 	%rd<4>;
	ld.param.u64 	%rd1, [k_param_0];
	cvta.to.global.u64 	%rd1, %rd1;
	add.u32 	%r1, %ctaid.x, %ctaid.y;
	mad.lo.s32 	%r2, %nctaid.y, %r1, %ctaid .z;
	cvt.u64.u32 	%rd2, %ctaid.y;
	st.global.v2.u32 	[%rd1], {%ctaid.z, %nctaid.x};
	st.global.v2.u32 	[%rd1+8], {%r1, %r2};
	setp.lt.u32 	%p1, %ctaid.x, %nctaid.z;
	ret;
}
"#;

#[test]
fn rewrites_every_read_and_keeps_the_original() {
    let src = module(POSITIONS);
    let m = slice_module(&src).unwrap();
    assert!(m.ptx.starts_with(&src), "the original text comes first");
    let e = m.entry("k").unwrap();
    assert_eq!((e.param_count, e.param_bytes), (1, 8));
    assert_eq!(
        e.slicing,
        Slicing::Sliceable {
            entry: "k__gs_slice".into(),
            extra_params_offset: 8
        }
    );
    let v = variant_text(&m, "k");
    assert!(
        v.contains("add.u32 \t%r1, %gs_slice_6, %gs_slice_7;"),
        "{v}"
    );
    assert!(
        v.contains("mad.lo.s32 \t%r2, %gs_slice_4, %r1, %gs_slice_8;"),
        "{v}"
    );
    assert!(v.contains("cvt.u64.u32 \t%rd2, %gs_slice_7;"), "{v}");
    assert!(v.contains("{%gs_slice_8, %gs_slice_3}"), "{v}");
    assert!(
        v.contains("setp.lt.u32 \t%p1, %gs_slice_6, %gs_slice_5;"),
        "{v}"
    );
    assert!(
        v.contains(".param .u64 k_param_0,\n\t.param .u32 __gs_slice_off_x,"),
        "{v}"
    );
    // The only reads left are the prologue's, one per dimension.
    assert_eq!(v.matches("%ctaid").count(), 3, "{v}");
    assert!(!v.contains("%nctaid"), "{v}");
    // Declarations stay first: the prologue comes after them.
    let decl = v.find(".reg .b64").unwrap();
    assert!(v.find("ld.param.u32 \t%gs_slice_0").unwrap() > decl);
    let loaded = Module::load(&m.ptx).unwrap();
    let k = loaded.kernel("k__gs_slice").unwrap();
    assert_eq!(k.params().len(), 1 + SLICE_PARAM_COUNT);
    assert_eq!(k.param_bytes(), 8 + SLICE_PARAM_BYTES);
    assert!(loaded.kernel("k").is_some());
}

#[test]
fn entries_without_parameters() {
    let src =
        module(".visible .entry a()\n{\n\tret;\n}\n.entry b .maxntid 32, 1, 1\n{\n\tret;\n}\n");
    let m = slice_module(&src).unwrap();
    let loaded = Module::load(&m.ptx).unwrap();
    for name in ["a__gs_slice", "b__gs_slice"] {
        let k = loaded.kernel(name).unwrap();
        assert_eq!(k.param_bytes(), SLICE_PARAM_BYTES, "{name}");
    }
    assert_eq!(m.entry("b").unwrap().param_count, 0);
}

#[test]
fn parameter_buffers() {
    let src = module(
        ".entry k(.param .u64 a, .param .u8 b)\n{\n\tret;\n}\n", // 9 bytes, padded to 16 by C
    );
    let m = slice_module(&src).unwrap();
    let e = m.entry("k").unwrap();
    assert_eq!(e.param_bytes, 9);
    let slice = Slice {
        offset: [2, 0, 0],
        grid: [3, 1, 1],
    };
    let buf = e.slice_param_buffer(&[7; 16], &slice, [5, 1, 1]).unwrap();
    assert_eq!(buf.len(), 12 + SLICE_PARAM_BYTES);
    assert_eq!(&buf[..12], &[7, 7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0]);
    assert_eq!(&buf[12..20], &[2, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&buf[24..28], &5u32.to_le_bytes());
    assert!(e.slice_param_buffer(&[0; 8], &slice, [5, 1, 1]).is_none());
    let loaded = Module::load(&m.ptx).unwrap();
    assert_eq!(loaded.kernel("k__gs_slice").unwrap().params()[2].offset, 12);
}

#[test]
fn device_functions_that_read_ctaid_are_refused() {
    let src = module(
        r#".func (.param .b32 r) blk()
{
	.reg .b32 %r<2>;
	mov.u32 %r1, %ctaid.x;
	st.param.b32 [r], %r1;
	ret;
}
.func (.param .b32 r) one()
{
	st.param.b32 [r], 1;
	ret;
}
.entry uses_blk()
{
	.reg .b32 %r<2>;
	{
	.param .b32 rv;
	call.uni (rv), blk, ();
	ld.param.b32 %r1, [rv];
	}
	ret;
}
.entry uses_one()
{
	.reg .b32 %r<2>;
	{
	.param .b32 rv;
	call.uni (rv), one, ();
	ld.param.b32 %r1, [rv];
	}
	ret;
}
"#,
    );
    let m = slice_module(&src).unwrap();
    let why = reason(&m, "uses_blk");
    assert!(
        why.contains("device function `blk` reads %ctaid.x"),
        "{why}"
    );
    assert_eq!(
        m.entry("uses_one").unwrap().sliced_name(),
        Some("uses_one__gs_slice")
    );
    assert!(Module::load(&m.ptx)
        .unwrap()
        .kernel("uses_one__gs_slice")
        .is_some());
}

#[test]
fn grid_dependent_features_are_refused() {
    let cases = [
        ("mov.u32 %r1, %gridid;", "%gridid"),
        ("mov.u32 %r1, %clusterid.x;", "clusters"),
        ("mov.u32 %r1, %cluster_ctarank;", "clusters"),
        ("mov.u32 %r1, %envreg2;", "environment register"),
        ("barrier.cluster.arrive;", "barrier.cluster"),
        ("mapa.shared::cluster.u32 %r1, %r2, %r1;", "clusters"),
        ("griddepcontrol.wait;", "griddepcontrol"),
        ("mov.u32 %r1, %ctaid;", "as a vector"),
        ("mov.u16 %rs1, %ctaid.x;", "legacy PTX"),
        ("mul.wide.u16 %r1, %rs1, %ctaid.x;", "legacy PTX"),
    ];
    for (inst, want) in cases {
        let src = module(&format!(
            ".entry k()\n{{\n\t.reg .b32 %r<3>;\n\t.reg .b16 %rs<2>;\n\t{inst}\n\tret;\n}}\n"
        ));
        let m = slice_module(&src).unwrap();
        let why = reason(&m, "k");
        assert!(why.contains(want), "{inst}: {why}");
        assert!(why.starts_with("line "), "{inst}: {why}");
        assert!(!m.ptx.contains(SLICE_SUFFIX), "{inst}");
    }
    let src = module(".entry k() .reqnctapercluster 2, 1, 1\n{\n\tret;\n}\n");
    assert!(reason(&slice_module(&src).unwrap(), "k").contains("clusters"));
}

#[test]
fn external_calls_are_refused_but_printf_is_not() {
    let src = module(
        r#".extern .func (.param .b32 r) vprintf(.param .b64 f, .param .b64 a);
.extern .func (.param .b64 r) cudaGetParameterBufferV2(.param .b64 f, .param .b64 a);
.entry p()
{
	.reg .b32 %r<2>;
	{
	.param .b64 f;
	.param .b64 a;
	.param .b32 rv;
	st.param.b64 [f], 0;
	st.param.b64 [a], 0;
	call.uni (rv), vprintf, (f, a);
	}
	ret;
}
.entry dp()
{
	{
	.param .b64 f;
	.param .b64 a;
	.param .b64 rv;
	st.param.b64 [f], 0;
	st.param.b64 [a], 0;
	call.uni (rv), cudaGetParameterBufferV2, (f, a);
	}
	ret;
}
"#,
    );
    let m = slice_module(&src).unwrap();
    assert!(m.entry("p").unwrap().sliced_name().is_some());
    assert!(reason(&m, "dp").contains("external function `cudaGetParameterBufferV2`"));
}

#[test]
fn debug_labels_and_taken_names_are_refused() {
    let src = module(
        ".entry k()\n{\n$L__func_begin0:\n\tret;\n}\n.section .debug_info\n{\n.b64 $L__func_begin0\n}\n",
    );
    assert!(reason(&slice_module(&src).unwrap(), "k").contains("debug information"));
    // A module that was sliced already: the names are taken, the prefixes move on.
    let once = slice_module(&module(POSITIONS)).unwrap();
    let twice = slice_module(&once.ptx).unwrap();
    assert!(reason(&twice, "k").contains("already taken"));
    let again = twice.entry("k__gs_slice").unwrap();
    assert_eq!(again.sliced_name(), Some("k__gs_slice__gs_slice"));
    assert!(twice.ptx.contains("%gs_slice1_6"));
    let loaded = Module::load(&twice.ptx).unwrap();
    let k = loaded.kernel("k__gs_slice__gs_slice").unwrap();
    assert_eq!(k.params().len(), 1 + 2 * SLICE_PARAM_COUNT);
}

#[test]
fn parameter_space_is_checked() {
    let src = module(".entry k(.param .align 4 .b8 big[32748])\n{\n\tret;\n}\n");
    assert!(reason(&slice_module(&src).unwrap(), "k").contains("no room"));
    let src = module(".entry k(.param .align 4 .b8 big[32740])\n{\n\tret;\n}\n");
    assert!(slice_module(&src)
        .unwrap()
        .entry("k")
        .unwrap()
        .sliced_name()
        .is_some());
}

#[test]
fn bad_modules_are_errors() {
    assert!(matches!(
        slice_module("garbage {"),
        Err(SliceError::Parse(_))
    ));
    let m = slice_module(&module(".global .u32 g;\n")).unwrap();
    assert!(m.entries.is_empty());
}
