//! Kernel slicing through the interpreter: every fixture and corpus module rewrites and still
//! loads, and sliced launches of the hand-written slicing kernels (`fixtures/slicing.ptx`)
//! leave the same bytes as whole launches, over random grids and slice counts.

mod common;
use common::*;
use gpushare_ptx::{
    launch, plan_slices, slice_module, ExecOptions, LaunchConfig, Module, SlicedModule, Slicing,
    SLICE_PARAM_COUNT,
};
use proptest::prelude::*;

/// Every `.ptx` of the fixtures and the example corpus, by file name.
fn all_modules() -> Vec<(String, String)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut out = Vec::new();
    for dir in [
        format!("{root}/tests/fixtures"),
        format!("{root}/../examples/kernels"),
    ] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "ptx") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p.display().to_string(), text));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_module_rewrites_and_loads() {
    let mut sliceable = 0;
    for (path, text) in all_modules() {
        let m = slice_module(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let Ok(orig) = Module::load(&text) else {
            continue; // modules the interpreter rejects on purpose
        };
        let sliced = Module::load(&m.ptx).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(m.entries.len(), orig.kernels().count(), "{path}");
        for e in &m.entries {
            let k = orig.kernel(&e.name).unwrap();
            assert_eq!(
                (e.param_count, e.param_bytes),
                (k.params().len(), k.param_bytes())
            );
            match &e.slicing {
                Slicing::Sliceable {
                    entry,
                    extra_params_offset,
                } => {
                    sliceable += 1;
                    let v = sliced.kernel(entry).unwrap();
                    assert_eq!(v.params().len(), e.param_count + SLICE_PARAM_COUNT);
                    assert_eq!(v.params()[e.param_count].offset, *extra_params_offset);
                    assert_eq!(v.static_shared_bytes(), k.static_shared_bytes());
                }
                Slicing::NotSliceable { reason } => eprintln!("{path}: {}: {reason}", e.name),
            }
        }
    }
    assert!(sliceable >= 20, "only {sliceable} sliceable entries");
}

/// Runs `name` whole, then as `k` slices through the sliced variant, on fresh copies of the
/// same buffers; returns both results.
fn whole_and_sliced(
    m: &SlicedModule,
    name: &str,
    grid: [u32; 3],
    block: [u32; 3],
    k: u32,
    bufs: &[Vec<u8>],
    scalars: &[Arg],
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let module = Module::load(&m.ptx).unwrap();
    let entry = m.entry(name).unwrap();
    let opts = ExecOptions {
        worker_threads: 2,
        ..Default::default()
    };
    let run = |sliced: bool| {
        let mut mem = VecMem::new(1 << 22);
        let addrs: Vec<u64> = bufs
            .iter()
            .map(|b| {
                let a = mem.alloc(b.len());
                mem.write(a, b);
                a
            })
            .collect();
        let mut args: Vec<Arg> = addrs.iter().map(|&a| Arg::U64(a)).collect();
        args.extend_from_slice(scalars);
        let kern = module.kernel(name).unwrap();
        let params = pack(kern, &args);
        if sliced {
            let variant = module.kernel(entry.sliced_name().unwrap()).unwrap();
            for s in plan_slices(grid, k) {
                let buf = entry.slice_param_buffer(&params, &s, grid).unwrap();
                let c = cfg(s.grid, block);
                launch(&module, variant, &c, &buf, &[], &mem, &opts).unwrap();
            }
        } else {
            let c = LaunchConfig {
                grid,
                block,
                dynamic_shared_bytes: 0,
            };
            launch(&module, kern, &c, &params, &[], &mem, &opts).unwrap();
        }
        addrs
            .iter()
            .zip(bufs)
            .map(|(&a, b)| mem.read(a, b.len()))
            .collect::<Vec<_>>()
    };
    (run(false), run(true))
}

fn sliced_fixture() -> SlicedModule {
    slice_module(&fixture("slicing.ptx")).unwrap()
}

#[test]
fn where_am_i_sees_the_whole_grid() {
    let m = sliced_fixture();
    let grid = [5, 3, 4];
    let threads = 60 * 32;
    let (whole, sliced) = whole_and_sliced(
        &m,
        "where_am_i",
        grid,
        [32, 1, 1],
        7,
        &[vec![0; threads * 32]],
        &[],
    );
    assert_eq!(whole, sliced);
    // Spot check: the last thread of the last block.
    let w: Vec<u32> = whole[0]
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let last = &w[(threads - 1) * 8..threads * 8];
    assert_eq!(last, &[4, 2, 3, 5, 3, 4 + 7, 2, 0]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn slices_match_whole_launches(
        x in 1u32..9, y in 1u32..5, z in 1u32..5, k in 1u32..12, seed in 1u64..1000
    ) {
        let m = sliced_fixture();
        let blocks = (x * y * z) as usize;
        let out = vec![0u8; blocks * 32 * 32];
        let (whole, sliced) = whole_and_sliced(&m, "where_am_i", [x, y, z], [32, 1, 1], k, &[out], &[]);
        prop_assert_eq!(whole, sliced);
        let mut rng = Rng(seed);
        let n = 1 + rng.next_u32() % 5000;
        let input: Vec<u8> = (0..n).flat_map(|_| rng.next_u32().to_le_bytes()).collect();
        let (whole, sliced) = whole_and_sliced(
            &m, "histogram", [x * y, 1, 1], [64, 1, 1], k, &[input, vec![0; 64]], &[Arg::U32(n)],
        );
        let total: u32 = whole[1].chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).sum();
        prop_assert_eq!(total, n);
        prop_assert_eq!(whole, sliced);
    }
}
