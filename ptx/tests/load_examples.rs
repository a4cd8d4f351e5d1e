//! Every PTX file of the shared kernel corpus (`examples/kernels`) and of the
//! test fixtures must load without error.

use gpushare_ptx::Module;

fn check_dir(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "ptx") && !p.ends_with("recursive.ptx") {
            let text = std::fs::read_to_string(&p).unwrap();
            let m = Module::load(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(
                m.kernels().count() > 0 || text.contains(".func"),
                "{}: no kernels",
                p.display()
            );
            n += 1;
        }
    }
    n
}

#[test]
fn all_fixtures_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(check_dir(&root.join("tests/fixtures")) >= 4);
    // The shared corpus may not exist in every checkout.
    check_dir(&root.join("../examples/kernels"));
}

#[test]
fn recursion_is_unsupported() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("tests/fixtures/recursive.ptx")).unwrap();
    match Module::load(&text) {
        Err(gpushare_ptx::PtxError::Unsupported {
            instruction,
            reason,
            ..
        }) => {
            assert!(instruction.starts_with("call"), "{instruction}");
            assert!(reason.contains("recursive"), "{reason}");
        }
        r => panic!("{r:?}"),
    }
}
