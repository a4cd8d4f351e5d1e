"""cuda-core on gpushare: NVRTC compiles two CUDA C++ units to relocatable PTX, the driver linker
(cuLink*, cuda-core's Linker without nvJitLink) joins them, and the kernel is launched on a
stream. Results are checked against numpy; exits non-zero on a mismatch."""
import sys
import warnings

import numpy as np
from cuda.bindings import driver as cu
from cuda.core import Device, LaunchConfig, Linker, LinkerOptions, Program, ProgramOptions, launch

warnings.simplefilter("ignore")
failures = []

KERNEL = r"""
extern "C" __device__ float transform(float x);
extern __device__ int calls;
extern "C" __global__ void apply(float *out, const float *in, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { out[i] = transform(in[i]); atomicAdd(&calls, 1); }
}
"""
HELPER = r"""
__device__ int calls = 0;
extern "C" __device__ float transform(float x) { return 3.0f * x * x + 1.0f; }
extern "C" __global__ void read_calls(int *out) { *out = calls; }
"""


def ok(r):
    err = r[0] if isinstance(r, tuple) else r
    if err != cu.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"driver call failed: {err}")


def check(name, good):
    print(f"{name}: {'ok' if good else 'MISMATCH'}")
    if not good:
        failures.append(name)


def main():
    dev = Device()
    dev.set_current()
    stream = dev.create_stream()
    arch = "sm_" + "".join(str(v) for v in dev.compute_capability)
    print(f"device: {arch}")
    opts = ProgramOptions(arch=arch, relocatable_device_code=True)
    units = [Program(src, "c++", opts).compile("ptx") for src in (KERNEL, HELPER)]
    print(f"NVRTC: {len(units)} PTX units")
    linked = Linker(*units, options=LinkerOptions(arch=arch)).link("cubin")
    apply = linked.get_kernel("apply")
    read_calls = linked.get_kernel("read_calls")
    print("linker: one module, kernels apply and read_calls")

    n = 3000
    x = np.linspace(-4, 4, n, dtype=np.float32)
    d_in = dev.allocate(x.nbytes, stream=stream)
    d_out = dev.allocate(x.nbytes, stream=stream)
    d_calls = dev.allocate(4, stream=stream)
    stream.sync()
    ok(cu.cuMemcpyHtoD(int(d_in.handle), x.ctypes.data, x.nbytes))
    launch(stream, LaunchConfig(grid=(n + 127) // 128, block=128), apply, d_out, d_in, np.int32(n))
    launch(stream, LaunchConfig(grid=1, block=1), read_calls, d_calls)
    stream.sync()
    y = np.empty_like(x)
    calls = np.zeros(1, dtype=np.int32)
    ok(cu.cuMemcpyDtoH(y.ctypes.data, int(d_out.handle), y.nbytes))
    ok(cu.cuMemcpyDtoH(calls.ctypes.data, int(d_calls.handle), 4))
    check("linked kernel result", np.allclose(y, 3 * x * x + 1, rtol=1e-6))
    check("extern __device__ variable across units", int(calls[0]) == n)
    for b in (d_in, d_out, d_calls):
        b.close(stream)
    stream.sync()
    if failures:
        print(f"FAILED: {', '.join(failures)}")
        sys.exit(1)
    print("cuda-core: all checks passed")


main()
