//! NVIDIA's real libcudart running unmodified programs on the CPU device: one test per C program
//! `tests/c/cudart_*.c` and runtime — 12.9.79 (`nvidia-cuda-runtime-cu12`), 13.0.96 and the newest
//! 13.x, 13.5.37 (`nvidia-cuda-runtime`; `gpushare_tests::Cudart`). Each program is compiled
//! against the runtime's own headers, links its `libcudart.so.<major>` (rpath to the wheel) and
//! finds the CPU device as `libcuda.so.1` on `LD_LIBRARY_PATH`; libcudart reaches it through
//! `cuGetProcAddress_v2` and the hidden export tables (`cuGetExportTable`).
//!
//! Prerequisite: `cargo build --release -p gpushare-cpu` (or `GPUSHARE_CPU_LIB=/path/libcuda.so.1`).

use std::time::Duration;

use gpushare_tests::{run_cudart_test, shared, Cudart, H200_MEMORY};

const TIMEOUT: Duration = Duration::from_secs(120);

/// The same tests for each runtime, in a module per runtime (`v12_9::launch`, ...).
macro_rules! cudart_tests {
    ($($module:ident => $rt:expr;)*) => {$(
        mod $module {
            use super::*;

            const RT: Cudart = $rt;

            /// Also: `cudaRuntimeGetVersion` is the runtime's own version, `cudaDriverGetVersion`
            /// the CPU device's (13000, which every runtime here accepts).
            #[test]
            fn device_and_memory_h200() {
                let _g = shared();
                let args = ["h200"];
                let out = run_cudart_test(RT, "cudart_device_memory", &args, &[H200_MEMORY], TIMEOUT);
                let want = format!("1 device, driver 13000, runtime {}", RT.version());
                assert!(out.stdout.contains(&want), "{want:?} not in\n{out}");
            }

            #[test]
            fn device_and_memory_small_profile() {
                let _g = shared();
                let env = [("GPUSHARE_CPU_PROFILE", "small")];
                run_cudart_test(RT, "cudart_device_memory", &["small"], &env, TIMEOUT);
            }

            #[test]
            fn streams_and_events() {
                let _g = shared();
                run_cudart_test(RT, "cudart_stream_event", &[], &[], TIMEOUT);
            }

            /// Stream capture of runtime calls and the runtime's graph API
            /// (`tests/c/cudart_graph.c`).
            #[test]
            fn graphs() {
                let _g = shared();
                run_cudart_test(RT, "cudart_graph", &[], &[], TIMEOUT);
            }

            #[test]
            fn library_load_and_launch() {
                let _g = shared();
                run_cudart_test(RT, "cudart_launch", &[], &[], TIMEOUT);
            }

            #[test]
            fn launch_single_worker_thread() {
                let _g = shared();
                let env = [("GPUSHARE_CPU_THREADS", "1")];
                run_cudart_test(RT, "cudart_launch", &[], &env, TIMEOUT);
            }

            /// The calls nvcc-generated host code makes: `__cudaRegisterFatBinary`/`Function`/
            /// `Var`, then `cudaLaunchKernel(host stub)`, symbols, `cudaDeviceReset` and
            /// everything again.
            #[test]
            fn nvcc_registration_path() {
                let _g = shared();
                run_cudart_test(RT, "cudart_register", &[], &[], TIMEOUT);
            }

            /// libcudart loads registered fatbins eagerly with `CUDA_MODULE_LOADING=EAGER`.
            #[test]
            fn nvcc_registration_path_eager_loading() {
                let _g = shared();
                let env = [("CUDA_MODULE_LOADING", "EAGER")];
                run_cudart_test(RT, "cudart_register", &[], &env, TIMEOUT);
            }
        }
    )*};
}

cudart_tests! {
    v12_9 => Cudart::V12_9;
    v13_0 => Cudart::V13_0;
    v13_5 => Cudart::V13_5;
}
