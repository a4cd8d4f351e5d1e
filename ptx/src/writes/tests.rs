//! Hand-written kernels, the example corpus, and a check against the interpreter.

use super::{param_writes, ParamWrites};

mod corpus;

const HEADER: &str = ".version 8.0\n.target sm_90\n.address_size 64\n";
const REGS: &str = ".reg .pred %p<8>;\n.reg .b32 %r<32>;\n.reg .f32 %f<32>;\n.reg .b64 %rd<32>;\n";

/// A module with one kernel `k` of the given parameter list and body.
fn kernel(params: &str, body: &str) -> String {
    format!("{HEADER}.visible .entry k({params})\n{{\n{REGS}{body}\n}}\n")
}

/// The flags of the only kernel of `ptx`.
fn flags(ptx: &str) -> Vec<bool> {
    let r = param_writes(ptx).unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    r[0].may_write.clone()
}

const THREE: &str = ".param .u64 a, .param .u64 b, .param .u64 c";

#[test]
fn vec_add() {
    let body = "ld.param.u64 %rd1, [a]; ld.param.u64 %rd2, [b]; ld.param.u64 %rd3, [c];
        mov.u32 %r1, %tid.x; mul.wide.u32 %rd4, %r1, 4;
        cvta.to.global.u64 %rd5, %rd1; add.s64 %rd6, %rd5, %rd4; ld.global.f32 %f1, [%rd6];
        cvta.to.global.u64 %rd7, %rd2; add.s64 %rd8, %rd7, %rd4; ld.global.f32 %f2, [%rd8];
        add.f32 %f3, %f1, %f2;
        cvta.to.global.u64 %rd9, %rd3; add.s64 %rd10, %rd9, %rd4; st.global.f32 [%rd10], %f3;
        ret;";
    assert_eq!(flags(&kernel(THREE, body)), [false, false, true]);
}

#[test]
fn offset_and_multiply() {
    let body = "ld.param.u64 %rd1, [b]; ld.param.u32 %r1, [c];
        mad.lo.s32 %r2, %r1, 3, 7; mul.wide.s32 %rd2, %r2, 8; add.s64 %rd3, %rd1, %rd2;
        shl.b64 %rd4, %rd3, 0; st.global.u64 [%rd4+16], %rd2;";
    let p = ".param .u64 a, .param .u64 b, .param .u32 c";
    // `c` feeds the address too (it is an index): reported, harmless for the caller.
    assert_eq!(flags(&kernel(p, body)), [false, true, true]);
}

#[test]
fn atomics_and_reductions() {
    let atom = "ld.param.u64 %rd1, [a]; ld.param.u64 %rd2, [b];
        ld.global.u32 %r1, [%rd2]; atom.global.add.u32 %r2, [%rd1], %r1;";
    assert_eq!(flags(&kernel(THREE, atom)), [true, false, false]);
    let red = "ld.param.u64 %rd1, [c]; ld.param.u64 %rd2, [a]; ld.global.f32 %f1, [%rd2];
        red.global.add.f32 [%rd1+4], %f1;";
    assert_eq!(flags(&kernel(THREE, red)), [false, false, true]);
    let generic = "ld.param.u64 %rd1, [b]; atom.cas.b64 %rd2, [%rd1], 0, 1;";
    assert_eq!(flags(&kernel(THREE, generic)), [false, true, false]);
}

#[test]
fn generic_store_after_cvta() {
    let body = "ld.param.u64 %rd1, [a]; cvta.to.global.u64 %rd2, %rd1;
        cvta.global.u64 %rd3, %rd2; st.u32 [%rd3], 1; st.volatile.u32 [%rd3+4], 2;";
    assert_eq!(flags(&kernel(THREE, body)), [true, false, false]);
}

#[test]
fn pointer_stored_as_data_escapes() {
    let body = "ld.param.u64 %rd1, [a]; ld.param.u64 %rd2, [b]; st.global.u64 [%rd2], %rd1;";
    assert_eq!(flags(&kernel(THREE, body)), [true, true, false]);
    let shared = ".shared .align 8 .b8 buf[64];
        ld.param.u64 %rd1, [c]; st.shared.u64 [buf], %rd1;";
    assert_eq!(flags(&kernel(THREE, shared)), [false, false, true]);
}

#[test]
fn pointer_passed_to_device_function() {
    let ptx = format!(
        "{HEADER}.func f(.param .b64 x)\n{{\n.reg .b64 %rd<2>;\nret;\n}}
        .visible .entry k({THREE})\n{{\n{REGS}ld.param.u64 %rd1, [b];
        {{ .param .b64 param0; st.param.b64 [param0+0], %rd1;
        call.uni f, (param0); }}\nret;\n}}\n"
    );
    assert_eq!(flags(&ptx), [false, true, false]);
}

#[test]
fn device_function_summaries() {
    let f = ".func g(.param .b64 x, .param .b64 y)\n{\n.reg .b64 %rd<3>;
        ld.param.u64 %rd1, [x]; st.global.u32 [%rd1], 0; ret;\n}\n";
    let call = |arg: &str| {
        format!(
            "{HEADER}{f}.visible .entry k({THREE})\n{{\n{REGS}ld.param.u64 %rd1, [a];
            ld.param.u64 %rd2, [b]; ld.global.u64 %rd3, [%rd2];
            {{ .param .b64 p0; .param .b64 p1; st.param.b64 [p0], {arg};
            st.param.b64 [p1], 0; call.uni g, (p0, p1); }}\nret;\n}}\n"
        )
    };
    // A callee that writes through a pointer read from memory may write anything.
    assert_eq!(flags(&call("%rd3")), [true, true, true]);
    assert_eq!(flags(&call("%rd1")), [true, false, false]);
    let indirect = kernel(
        THREE,
        "ld.param.u64 %rd1, [a]; call.uni %rd1, (%rd2), proto;",
    );
    assert_eq!(flags(&indirect), [true, true, true]);
    let external = format!(
        "{HEADER}.extern .func ext(.param .b64 x);\n.visible .entry k({THREE})\n{{\n{REGS}
        call.uni ext, (%rd1);\nret;\n}}\n"
    );
    assert_eq!(flags(&external), [true, true, true]);
}

#[test]
fn address_taken() {
    let body = "mov.u64 %rd1, b; cvta.param.u64 %rd2, %rd1; ld.u64 %rd3, [%rd2];";
    assert_eq!(flags(&kernel(THREE, body)), [false, true, false]);
    let cvta = "cvta.param.u64 %rd2, c;";
    assert_eq!(flags(&kernel(THREE, cvta)), [false, false, true]);
}

#[test]
fn shared_and_local_only() {
    let body = ".shared .align 4 .b8 sm[1024]; .local .align 4 .b8 depot[16];
        ld.param.u64 %rd1, [a]; ld.global.f32 %f1, [%rd1];
        mov.u32 %r1, sm; st.shared.f32 [%r1+4], %f1;
        mov.u64 %rd2, depot; st.local.f32 [%rd2], %f1;
        mov.u64 %rd3, sm; cvta.shared.u64 %rd4, %rd3; st.f32 [%rd4], %f1;
        atom.shared.add.u32 %r2, [sm], 1; ld.shared.f32 %f2, [%r1];
        ld.param.u64 %rd5, [c]; cp.async.ca.shared.global [sm], [%rd5], 16;
        cp.async.wait_all; bar.sync 0;";
    assert_eq!(flags(&kernel(THREE, body)), [false, false, false]);
}

#[test]
fn predicated_and_vector_stores() {
    let body = "ld.param.u64 %rd1, [a]; ld.param.u64 %rd2, [c]; setp.eq.u64 %p1, %rd1, 0;
        @%p1 bra DONE; @!%p1 st.global.v4.f32 [%rd2+16], {%f1, %f2, %f3, %f4};
        DONE: ret;";
    assert_eq!(flags(&kernel(THREE, body)), [false, false, true]);
}

#[test]
fn vector_braces_and_carry() {
    let braces = "ld.param.u64 %rd1, [a]; mov.b64 {%r1, %r2}, %rd1;
        mov.b64 %rd2, {%r1, %r2}; st.global.u32 [%rd2], 0;";
    assert_eq!(flags(&kernel(THREE, braces)), [true, false, false]);
    let carry = "ld.param.u64 %rd1, [b]; mov.b64 {%r1, %r2}, %rd1;
        add.cc.u32 %r3, %r1, 4; addc.u32 %r4, 0, 0; mov.b64 %rd2, {%r5, %r4};
        st.global.u32 [%rd2], 0;";
    assert_eq!(flags(&kernel(THREE, carry)), [false, true, false]);
}

#[test]
fn unknown_or_untraceable_addresses_write_everything() {
    let loaded = "ld.param.u64 %rd1, [a]; ld.global.u64 %rd2, [%rd1]; st.global.u32 [%rd2], 0;";
    assert_eq!(flags(&kernel(THREE, loaded)), [true, true, true]);
    let absolute = "mov.u32 %r1, %tid.x; cvt.u64.u32 %rd1, %r1; st.global.u32 [%rd1], 0;";
    assert_eq!(flags(&kernel(THREE, absolute)), [true, true, true]);
    let unknown_op = "ld.param.u64 %rd1, [b]; frobnicate.b64 %rd2, %rd1;";
    assert_eq!(flags(&kernel(THREE, unknown_op)), [false, true, false]);
    let unknown_mem = "ld.param.u64 %rd1, [b]; ld.global.u64 %rd2, [%rd1]; frobnicate %rd2;";
    assert_eq!(flags(&kernel(THREE, unknown_mem)), [true, true, true]);
    let global_var = format!(
        "{HEADER}.global .align 4 .u32 counter;\n.visible .entry k({THREE})\n{{\n{REGS}
        st.global.u32 [counter], 1; mov.u64 %rd1, counter; st.u32 [%rd1+4], 2;\n}}\n"
    );
    assert_eq!(flags(&global_var), [false, false, false]);
}

#[test]
fn struct_params_and_other_writers() {
    let body = "ld.param.u64 %rd1, [s+8]; st.global.f32 [%rd1], %f1;";
    let p = ".param .align 8 .b8 s[16], .param .u64 q";
    assert_eq!(flags(&kernel(p, body)), [true, false]);
    for w in [
        "discard.global.L2 [%rd1], 128;",
        "multimem.st.relaxed.gpu.global.f32 [%rd1], %f1;",
        "wmma.store.d.sync.aligned.row.m16n16k16.global.f32 [%rd1], {%f1,%f2,%f3,%f4,%f5,%f6,%f7,%f8}, 16;",
        "sust.b.1d.b32.trap [%rd1, {%r1}], {%r2};",
        "cp.async.bulk.global.shared::cta.bulk_group [%rd1], [%r1], 256;",
        "cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%rd1], [%r1], 256;",
        "st.async.shared::cluster.mbarrier::complete_tx::bytes.u32 [%rd1], %r1, [%r2];",
        "tensormap.replace.tile.global_address.global.b1024.b64 [%rd1], %rd2;",
    ] {
        let body = format!("ld.param.u64 %rd1, [q]; {w}");
        assert_eq!(flags(&kernel(p, &body)), [false, true], "{w}");
    }
    let reads = "ld.param.u64 %rd1, [q]; mov.u32 %r1, 0;
        cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%r1], [%rd1], 256, [%r2];
        stmatrix.sync.aligned.m8n8.x1.shared.b16 [%r1], {%r3};";
    assert_eq!(flags(&kernel(p, reads)), [false, false]);
}

#[test]
fn modules_with_several_kernels_and_comments() {
    let ptx = format!(
        "{HEADER}// a comment\n/* block\n comment */\n
        .weak .entry first(.param .u64 x, .param .u64 y)\n{{\n{REGS}
        ld.param.u64 %rd1, [y]; // st.global.u32 [%rd0], 0;
        /* st.global.u32 [%rd1], 0; */ st.global.u32 [%rd1], 1;\n}}
        .func helper()\n{{\nret;\n}}
        .entry second(.param .u64 x)\n{{\n{REGS}ld.param.u64 %rd1, [x];\n}}\n"
    );
    let r = param_writes(&ptx).unwrap();
    let expect = [
        ParamWrites {
            kernel: "first".into(),
            may_write: vec![false, true],
        },
        ParamWrites {
            kernel: "second".into(),
            may_write: vec![false],
        },
    ];
    assert_eq!(r, expect);
}

#[test]
fn branch_tables() {
    let body = "ld.param.u64 %rd1, [a]; ld.global.u32 %r1, [%rd1]; cvt.u32.u64 %r2, %rd1;
        ts: .branchtargets L0, L1; brx.idx %r1, ts; L0: brx.idx %r2, ts; L1: ret;";
    assert_eq!(flags(&kernel(THREE, body)), [true, false, false]);
}

#[test]
fn unparsable_text_and_shadowing() {
    assert!(param_writes(".version 8.0\n.entry k( {").is_err());
    // A register named like a parameter: not analysed, everything may be written.
    let ptx = kernel(THREE, ".reg .b64 a; mov.u64 a, 0;");
    assert_eq!(flags(&ptx), [true, true, true]);
}
