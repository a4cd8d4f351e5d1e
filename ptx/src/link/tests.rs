use super::*;
use crate::Module;

/// Unit A: a kernel calling `add_one`, defined in unit B, and reading `bias`, defined in B.
const A: &str = r#"
.version 7.8
.target sm_52
.address_size 64
.file 1 "a.cu"
.extern .func (.param .b32 ret) add_one (.param .b32 x);
.extern .global .align 4 .u32 bias;
.global .align 4 .u32 tmp;

.visible .entry k(.param .u64 out)
{
    .reg .b32 %r<4>;
    .reg .b64 %rd<3>;
    .loc 1 3 1
    ld.param.u64 %rd1, [out];
    cvta.to.global.u64 %rd2, %rd1;
    mov.u32 %r1, %tid.x;
    ld.global.u32 %r3, [bias];
    add.u32 %r1, %r1, %r3;
    {
    .param .b32 p0;
    st.param.b32 [p0], %r1;
    .param .b32 r0;
    call.uni (r0), add_one, (p0);
    ld.param.b32 %r2, [r0];
    }
    st.global.u32 [tmp], %r2;
    st.global.u32 [%rd2], %r2;
    ret;
}
"#;

const B: &str = r#"
.version 8.5
.target sm_80
.address_size 64
.visible .global .align 4 .u32 bias = 10;
.global .align 4 .u32 tmp;

.visible .func (.param .b32 ret) add_one (.param .b32 x)
{
    .reg .b32 %r<3>;
    ld.param.b32 %r1, [x];
    add.s32 %r2, %r1, 1;
    st.param.b32 [ret], %r2;
    ret;
}
"#;

fn unit<'a>(name: &'a str, ptx: &'a str) -> LinkUnit<'a> {
    LinkUnit { name, ptx }
}

#[test]
fn extern_function_and_variable_resolve_across_units() {
    let linked = link_ptx(&[unit("a", A), unit("b", B)]).unwrap();
    let ptx = &linked.ptx;
    assert!(
        ptx.contains(".version 8.5\n.target sm_80\n.address_size 64"),
        "{ptx}"
    );
    assert_eq!(ptx.matches(".version").count(), 1, "{ptx}");
    assert!(!ptx.contains(".extern"), "{ptx}");
    assert!(!ptx.contains(".file") && !ptx.contains(".loc"), "{ptx}");
    // the variable definition is hoisted ahead of the unit that uses it
    let def = ptx
        .find(".visible .global .align 4 .u32 bias = 10;")
        .unwrap();
    assert!(def < ptx.find("// input 0").unwrap(), "{ptx}");
    // the internal `tmp` of both units is renamed apart
    assert!(ptx.contains("tmp$u0") && ptx.contains("tmp$u1"), "{ptx}");
    assert!(
        linked.info.contains("2 extern symbols resolved"),
        "{}",
        linked.info
    );
    let m = Module::load(ptx).unwrap();
    assert!(m.kernel("k").is_some());
    assert!(m.global("bias").is_some());
    assert_eq!(m.globals().iter().filter(|g| g.name == "bias").count(), 1);
}

#[test]
fn unit_order_does_not_matter() {
    let linked = link_ptx(&[unit("b", B), unit("a", A)]).unwrap();
    Module::load(&linked.ptx).unwrap();
}

#[test]
fn unresolved_extern_is_an_error() {
    let err = link_ptx(&[unit("a", A)]).unwrap_err();
    assert!(
        matches!(&err, LinkError::Unresolved { symbol, unit } if unit == "a" && (symbol == "add_one" || symbol == "bias")),
        "{err:?}"
    );
    assert!(err.to_string().contains("unresolved extern symbol"));
}

#[test]
fn system_calls_need_no_definition() {
    let ptx = ".version 7.0\n.target sm_52\n.address_size 64\n\
        .extern .func (.param .b32 r) vprintf (.param .b64 f, .param .b64 a);\n\
        .visible .entry e() { ret; }\n";
    let linked = link_ptx(&[unit("p", ptx)]).unwrap();
    assert!(linked.ptx.contains(".extern .func (.param .b32 r) vprintf"));
    Module::load(&linked.ptx).unwrap();
}

#[test]
fn duplicate_visible_definitions_are_an_error() {
    let err = link_ptx(&[unit("b1", B), unit("b2", B)]).unwrap_err();
    assert!(
        matches!(&err, LinkError::Duplicate { first, second, .. } if first == "b1" && second == "b2"),
        "{err:?}"
    );
    let entry = ".version 7.0\n.target sm_52\n.address_size 64\n.entry e() { ret; }\n";
    let err = link_ptx(&[unit("x", entry), unit("y", entry)]).unwrap_err();
    assert!(matches!(err, LinkError::Duplicate { symbol, .. } if symbol == "e"));
}

#[test]
fn one_weak_definition_is_kept() {
    let weak = ".version 7.0\n.target sm_52\n.address_size 64\n\
        .weak .global .align 4 .u32 w = 1;\n\
        .weak .func (.param .b32 r) f () { .reg .b32 %r1; mov.u32 %r1, 1; st.param.b32 [r], %r1; ret; }\n";
    let strong = ".version 7.0\n.target sm_52\n.address_size 64\n\
        .visible .func (.param .b32 r) f () { .reg .b32 %r1; mov.u32 %r1, 2; st.param.b32 [r], %r1; ret; }\n";
    let linked = link_ptx(&[unit("w1", weak), unit("w2", weak), unit("s", strong)]).unwrap();
    let ptx = &linked.ptx;
    assert_eq!(
        ptx.matches("mov.u32 %r1, 1;").count(),
        0,
        "the strong f wins: {ptx}"
    );
    assert_eq!(ptx.matches("mov.u32 %r1, 2;").count(), 1, "{ptx}");
    assert_eq!(ptx.matches(".u32 w = 1;").count(), 1, "{ptx}");
    Module::load(ptx).unwrap();
}

#[test]
fn a_unit_that_does_not_parse_is_named() {
    let err = link_ptx(&[
        unit("b", B),
        unit("bad", ".version 7.0\n.target sm_52\nfoo"),
    ])
    .unwrap_err();
    assert!(
        matches!(&err, LinkError::Parse { unit, .. } if unit == "bad"),
        "{err:?}"
    );
    assert_eq!(link_ptx(&[]).unwrap_err(), LinkError::NoInput);
}

#[test]
fn comments_and_strings_are_not_rewritten() {
    let c = ".version 7.0\n.target sm_52\n.address_size 64\n\
        // tmp is mentioned here; .extern too\n.global .align 4 .u32 tmp;\n\
        .visible .entry e2() { st.global.u32 [tmp], 1; ret; }\n";
    let linked = link_ptx(&[unit("a", A), unit("b", B), unit("c", c)]).unwrap();
    assert!(linked.ptx.contains("// tmp is mentioned here; .extern too"));
    assert!(linked.ptx.contains("[tmp$u2]"), "{}", linked.ptx);
    Module::load(&linked.ptx).unwrap();
}
