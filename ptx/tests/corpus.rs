//! Runs kernels of the shared corpus (`examples/kernels`, compiled by the
//! project's NVRTC script) when it is present: dynamic shared memory and
//! module-scope device variables.

mod common;
use common::*;
use gpushare_ptx::{launch, ExecOptions, LaunchConfig, Module};

fn corpus(name: &str) -> Option<Module> {
    let p = format!("{}/../examples/kernels/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(p).ok()?;
    Some(Module::load(&text).unwrap())
}

#[test]
fn reduce_sum_dynamic_shared() {
    let Some(m) = corpus("reduce_sum.ptx") else {
        return;
    };
    let k = m.kernel("reduce_sum").unwrap();
    assert!(k.uses_dynamic_shared());
    let n = 100_000usize;
    let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    let mut mem = VecMem::new(1 << 20);
    let px = mem.alloc_f32(&x);
    let po = mem.alloc_f32(&[0.0]);
    let block = 256u32;
    let cfg = LaunchConfig {
        grid: [40, 1, 1],
        block: [block, 1, 1],
        dynamic_shared_bytes: block * 4,
    };
    let params = pack(k, &[Arg::U64(px), Arg::U64(po), Arg::I32(n as i32)]);
    launch(
        &m,
        k,
        &cfg,
        &params,
        &[],
        &mem,
        &ExecOptions {
            worker_threads: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    let got = mem.read_f32(po, 1)[0] as f64;
    assert!((got - want).abs() < 1e-4 * want, "{got} vs {want}");
    // too little dynamic shared memory for the block: out-of-bounds shared access
    let cfg = LaunchConfig {
        dynamic_shared_bytes: 64,
        ..cfg
    };
    let e = launch(&m, k, &cfg, &params, &[], &mem, &ExecOptions::default()).unwrap_err();
    assert!(
        matches!(e, gpushare_ptx::ExecError::IllegalAddress { .. }),
        "{e:?}"
    );
}

#[test]
fn device_globals() {
    let Some(m) = corpus("device_global.ptx") else {
        return;
    };
    let mut mem = VecMem::new(1 << 16);
    let globals = load_globals(&m, &mut mem);
    let (ti, table) = m.global("dev_table").unwrap();
    assert_eq!(table.size, 64);
    let (ci, counter) = m.global("dev_counter").unwrap();
    assert_eq!(counter.init, 7i32.to_le_bytes());
    let t: Vec<u8> = (0..16).flat_map(|i| (i as f32).to_le_bytes()).collect();
    mem.write(globals[ti], &t);
    run_g(
        &m,
        "bump_counter",
        cfg([1, 1, 1], [32, 1, 1]),
        &[Arg::I32(5)],
        &mem,
        1,
        &globals,
    )
    .unwrap();
    assert_eq!(mem.read_i32(globals[ci], 1)[0], 12);
    let po = mem.alloc(16 * 4);
    run_g(
        &m,
        "read_table",
        cfg([1, 1, 1], [32, 1, 1]),
        &[Arg::U64(po), Arg::I32(16)],
        &mem,
        1,
        &globals,
    )
    .unwrap();
    assert_eq!(
        mem.read_f32(po, 16),
        (0..16).map(|i| i as f32 + 12.0).collect::<Vec<_>>()
    );
}
