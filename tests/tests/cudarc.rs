//! Runs the cudarc example (`examples/cudarc-vecadd`, binary `gpushare-example-cudarc`) against
//! the CPU device. This test builds nothing: build the example (and the CPU device) first, e.g.
//!
//!     cargo build --release -p gpushare-cpu -p gpushare-example-cudarc
//!
//! cudarc (feature "dynamic-loading") dlopen()s the first loadable name of its candidate list,
//! which starts with `libcuda.so` and also contains `libcuda.so.1`; the harness's library
//! directory provides both as symlinks to the CPU device.

use std::time::Duration;

use gpushare_tests::{find_build_output, run_program, shared};

const BIN: &str = "gpushare-example-cudarc";

#[test]
fn cudarc_vector_add() {
    let _g = shared();
    let exe = match find_build_output(BIN) {
        Ok(p) => p,
        Err(searched) => panic!(
            "{BIN} not found. Build it first:\n\n    cargo build --release -p gpushare-example-cudarc\n\nSearched:\n{}",
            searched
                .iter()
                .map(|p| format!("  {}", p.display()))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    let out = run_program(&exe, &[], &[], Duration::from_secs(120));
    assert!(out.success(), "cudarc example failed\n{out}");
    assert!(
        out.stdout.contains("cudarc vector_add OK"),
        "cudarc example did not report success\n{out}"
    );
    println!("{out}");
}
