//! vector_add through cudarc's safe driver API: primary context on device 0, the PTX from
//! `examples/kernels/vector_add.ptx` loaded with `Ptx::from_src`, a launch through the launch
//! builder, copy back, verify. Prints `cudarc vector_add OK n=<n>` and exits 0 on success,
//! exits 1 on any error or mismatch.
//!
//! cudarc loads the driver library with dlopen at run time; its candidate names begin with
//! `libcuda.so` (and include `libcuda.so.1`), so running with `LD_LIBRARY_PATH` pointing at a
//! directory where those are symlinks to `libgpushare_cpu.so` runs this against the CPU device.

use std::error::Error;
use std::process::ExitCode;

use cudarc::driver::{CudaContext, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::Ptx;

const VECTOR_ADD_PTX: &str = include_str!("../../kernels/vector_add.ptx");

fn run(n: usize) -> Result<(), Box<dyn Error>> {
    let ctx = CudaContext::new(0)?;
    let name = ctx.name()?;
    let stream = ctx.default_stream();
    let module = ctx.load_module(Ptx::from_src(VECTOR_ADD_PTX))?;
    let vector_add = module.load_function("vector_add")?;

    let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let b: Vec<f32> = (0..n).map(|i| (n - i) as f32 - 0.25).collect();
    let a_dev = stream.clone_htod(&a)?;
    let b_dev = stream.clone_htod(&b)?;
    let mut c_dev = stream.alloc_zeros::<f32>(n)?;
    let n_arg = i32::try_from(n)?;

    let cfg = LaunchConfig::for_num_elems(u32::try_from(n)?);
    let mut launch = stream.launch_builder(&vector_add);
    launch.arg(&a_dev).arg(&b_dev).arg(&mut c_dev).arg(&n_arg);
    // SAFETY: the arguments match the kernel's signature
    // `vector_add(const float* a, const float* b, float* c, int n)`, every buffer holds n floats
    // and the kernel bounds-checks its index against n.
    unsafe { launch.launch(cfg) }?;

    let c = stream.clone_dtoh(&c_dev)?;
    stream.synchronize()?;
    if c.len() != n {
        return Err(format!("got {} elements back, expected {n}", c.len()).into());
    }
    for (i, ((&x, &y), &z)) in a.iter().zip(&b).zip(&c).enumerate() {
        if z != x + y {
            return Err(format!("mismatch at {i}: {z} != {x} + {y}").into());
        }
    }
    println!("device: {name}");
    Ok(())
}

fn main() -> ExitCode {
    let n = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_003usize);
    match run(n) {
        Ok(()) => {
            println!("cudarc vector_add OK n={n}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cudarc vector_add FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
