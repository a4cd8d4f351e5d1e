//! NVIDIA's real `libcudart.so.12` (12.9.79, from the PyPI wheel) running unmodified programs on the
//! CPU device: one test per C program `tests/c/cudart_*.c`. Each links `-lcudart` (rpath to the
//! wheel) and finds the CPU device as `libcuda.so.1` on `LD_LIBRARY_PATH`; libcudart reaches it
//! through `cuGetProcAddress_v2` and the hidden export tables (`cuGetExportTable`).
//!
//! Prerequisite: `cargo build --release -p gpushare-cpu` (or `GPUSHARE_CPU_LIB=/path/libcuda.so.1`).

use std::time::Duration;

use gpushare_tests::{run_cudart_test, shared, H200_MEMORY};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn cudart_device_and_memory_h200() {
    let _g = shared();
    run_cudart_test("cudart_device_memory", &["h200"], &[H200_MEMORY], secs(120));
}

#[test]
fn cudart_device_and_memory_small_profile() {
    let _g = shared();
    run_cudart_test(
        "cudart_device_memory",
        &["small"],
        &[("GPUSHARE_CPU_PROFILE", "small")],
        secs(120),
    );
}

#[test]
fn cudart_streams_and_events() {
    let _g = shared();
    run_cudart_test("cudart_stream_event", &[], &[], secs(120));
}

/// Stream capture of runtime calls and the runtime's graph API (`tests/c/cudart_graph.c`).
#[test]
fn cudart_graphs() {
    let _g = shared();
    run_cudart_test("cudart_graph", &[], &[], secs(120));
}

#[test]
fn cudart_library_load_and_launch() {
    let _g = shared();
    run_cudart_test("cudart_launch", &[], &[], secs(120));
}

#[test]
fn cudart_launch_single_worker_thread() {
    let _g = shared();
    run_cudart_test(
        "cudart_launch",
        &[],
        &[("GPUSHARE_CPU_THREADS", "1")],
        secs(120),
    );
}

/// The calls nvcc-generated host code makes: `__cudaRegisterFatBinary`/`Function`/`Var`, then
/// `cudaLaunchKernel(host stub)`, symbols, `cudaDeviceReset` and everything again.
#[test]
fn cudart_nvcc_registration_path() {
    let _g = shared();
    run_cudart_test("cudart_register", &[], &[], secs(120));
}

/// libcudart loads registered fatbins eagerly with `CUDA_MODULE_LOADING=EAGER`.
#[test]
fn cudart_nvcc_registration_path_eager_loading() {
    let _g = shared();
    run_cudart_test(
        "cudart_register",
        &[],
        &[("CUDA_MODULE_LOADING", "EAGER")],
        secs(120),
    );
}
