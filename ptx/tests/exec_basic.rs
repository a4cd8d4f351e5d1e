//! Execution tests of simple NVRTC-generated kernels against Rust references.

mod common;
use common::*;
use gpushare_ptx::{ExecError, Module};

#[test]
fn vec_add() {
    let m = Module::load(&fixture("basic.ptx")).unwrap();
    let n = 1000;
    let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let b: Vec<f32> = (0..n).map(|i| 3.0 - i as f32).collect();
    let mut mem = VecMem::new(1 << 20);
    let (pa, pb) = (mem.alloc_f32(&a), mem.alloc_f32(&b));
    let pc = mem.alloc(n * 4);
    let st = run(
        &m,
        "vec_add",
        cfg([4, 1, 1], [256, 1, 1]),
        &[Arg::U64(pa), Arg::U64(pb), Arg::U64(pc), Arg::I32(n as i32)],
        &mem,
        1,
    )
    .unwrap();
    let c = mem.read_f32(pc, n);
    for i in 0..n {
        assert_eq!(c[i], a[i] + b[i], "at {i}");
    }
    assert_eq!(st.blocks, 4);
    assert_eq!(st.threads, 1024);
    assert_eq!(st.global_load_bytes, 2 * 4 * n as u64);
    assert_eq!(st.global_store_bytes, 4 * n as u64);
    assert!(st.thread_instructions > 10 * 1024);
}

#[test]
fn saxpy_multi_worker() {
    let m = Module::load(&fixture("basic.ptx")).unwrap();
    let n = 5000;
    let x: Vec<f32> = (0..n).map(|i| (i % 17) as f32).collect();
    let y: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 2.0).collect();
    let mut mem = VecMem::new(1 << 20);
    let (px, py) = (mem.alloc_f32(&x), mem.alloc_f32(&y));
    run(
        &m,
        "saxpy",
        cfg([20, 1, 1], [256, 1, 1]),
        &[
            Arg::I32(n as i32),
            Arg::F32(2.5),
            Arg::U64(px),
            Arg::U64(py),
        ],
        &mem,
        4,
    )
    .unwrap();
    let out = mem.read_f32(py, n);
    for i in 0..n {
        assert_eq!(out[i], 2.5f32.mul_add(x[i], y[i]), "at {i}");
    }
}

#[test]
fn bias_relu_2d() {
    let m = Module::load(&fixture("basic.ptx")).unwrap();
    let (rows, cols) = (37, 70);
    let mut r = Rng(7);
    let inp: Vec<f32> = (0..rows * cols).map(|_| r.f32()).collect();
    let bias: Vec<f32> = (0..cols).map(|_| r.f32() * 0.5).collect();
    let mut mem = VecMem::new(1 << 20);
    let (pi, pb) = (mem.alloc_f32(&inp), mem.alloc_f32(&bias));
    let po = mem.alloc(rows * cols * 4);
    let c = cfg(
        [(cols as u32).div_ceil(16), (rows as u32).div_ceil(8), 1],
        [16, 8, 1],
    );
    run(
        &m,
        "bias_relu",
        c,
        &[
            Arg::U64(po),
            Arg::U64(pi),
            Arg::U64(pb),
            Arg::I32(rows as i32),
            Arg::I32(cols as i32),
        ],
        &mem,
        2,
    )
    .unwrap();
    let out = mem.read_f32(po, rows * cols);
    for rr in 0..rows {
        for cc in 0..cols {
            let v = inp[rr * cols + cc] + bias[cc];
            assert_eq!(out[rr * cols + cc], if v > 0.0 { v } else { 0.0 });
        }
    }
}

#[test]
fn out_of_bounds_is_illegal_address() {
    let m = Module::load(&fixture("basic.ptx")).unwrap();
    let mut mem = VecMem::new(1 << 16);
    let p = mem.alloc(64 * 4);
    // in bounds
    run(
        &m,
        "oob_write",
        cfg([1, 1, 1], [64, 1, 1]),
        &[Arg::U64(p), Arg::U64(0)],
        &mem,
        1,
    )
    .unwrap();
    // out of bounds by a lot
    let e = run(
        &m,
        "oob_write",
        cfg([1, 1, 1], [64, 1, 1]),
        &[Arg::U64(p), Arg::U64(1 << 30)],
        &mem,
        1,
    )
    .unwrap_err();
    match e {
        ExecError::IllegalAddress {
            addr,
            kernel,
            instruction,
            ..
        } => {
            assert_eq!(kernel, "oob_write");
            assert!(addr >= p + (1 << 32), "addr {addr:#x}");
            assert!(instruction.contains("st.global"), "{instruction}");
        }
        e => panic!("unexpected {e:?}"),
    }
    // partially out of bounds (last lanes)
    let e = run(
        &m,
        "oob_write",
        cfg([1, 1, 1], [64, 1, 1]),
        &[Arg::U64(p), Arg::U64(8)],
        &mem,
        3,
    )
    .unwrap_err();
    assert!(
        matches!(e, ExecError::IllegalAddress { addr, .. } if addr == p + 64 * 4),
        "{e:?}"
    );
    // misaligned
    let e = run(
        &m,
        "oob_write",
        cfg([1, 1, 1], [64, 1, 1]),
        &[Arg::U64(p + 2), Arg::U64(0)],
        &mem,
        1,
    )
    .unwrap_err();
    assert!(matches!(e, ExecError::MisalignedAddress { .. }), "{e:?}");
}

#[test]
fn trap_and_deadlock() {
    let m = Module::load(&fixture("basic.ptx")).unwrap();
    let mut mem = VecMem::new(1 << 16);
    let p = mem.alloc(64 * 4);
    let e = run(
        &m,
        "trap_kernel",
        cfg([2, 1, 1], [64, 1, 1]),
        &[Arg::U64(p)],
        &mem,
        1,
    )
    .unwrap_err();
    assert!(matches!(e, ExecError::Trap { .. }), "{e:?}");
    let e = run(
        &m,
        "deadlock_kernel",
        cfg([1, 1, 1], [64, 1, 1]),
        &[Arg::U64(p)],
        &mem,
        1,
    )
    .unwrap_err();
    assert!(matches!(e, ExecError::Deadlock { .. }), "{e:?}");
    // the warp that waits at a barrier is released once the other warp has exited
    run(
        &m,
        "early_exit_barrier",
        cfg([1, 1, 1], [64, 1, 1]),
        &[Arg::U64(p)],
        &mem,
        1,
    )
    .unwrap();
    let out = mem.read_i32(p, 32);
    for (i, v) in out.iter().enumerate() {
        assert_eq!(*v, 63 - i as i32);
    }
}

#[test]
fn warps_are_time_sliced() {
    let m = Module::load(&fixture("spin.ptx")).unwrap();
    let mut mem = VecMem::new(1 << 16);
    let p = mem.alloc(4);
    run(
        &m,
        "spin_flag",
        cfg([1, 1, 1], [64, 1, 1]),
        &[Arg::U64(p)],
        &mem,
        1,
    )
    .unwrap();
    assert_eq!(mem.read_u32(p, 1)[0], 20000);
    // a kernel that never terminates is stopped by the instruction limit
    let k = m.kernel("spin_flag").unwrap();
    let opts = gpushare_ptx::ExecOptions {
        instruction_limit: Some(100_000),
        ..Default::default()
    };
    let params = pack(k, &[Arg::U64(p)]);
    let c = cfg([1, 1, 1], [32, 1, 1]);
    let e = gpushare_ptx::launch(&m, k, &c, &params, &[], &mem, &opts).unwrap_err();
    assert!(matches!(e, ExecError::Aborted { .. }), "{e:?}");
}

#[test]
fn cancel_flag_aborts() {
    let m = Module::load(&fixture("spin.ptx")).unwrap();
    let mut mem = VecMem::new(1 << 16);
    let p = mem.alloc(4);
    let k = m.kernel("spin_flag").unwrap();
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f2 = flag.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        f2.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let opts = gpushare_ptx::ExecOptions {
        cancel: Some(flag),
        ..Default::default()
    };
    // one warp spins forever on a flag nobody sets
    let e = gpushare_ptx::launch(
        &m,
        k,
        &cfg([1, 1, 1], [32, 1, 1]),
        &pack(k, &[Arg::U64(p)]),
        &[],
        &mem,
        &opts,
    );
    t.join().unwrap();
    assert!(matches!(e, Err(ExecError::Aborted { .. })), "{e:?}");
}
