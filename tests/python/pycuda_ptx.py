"""PyCUDA on gpushare. `SourceModule` and gpuarray arithmetic run the nvcc executable, which no
PyPI wheel provides, so the PTX comes from NVRTC (cuda-core) and is loaded with
`module_from_buffer`: launches with In/Out arguments (PyCUDA's legacy cuFuncSetBlockShape /
cuParamSet* / cuLaunchGrid path), prepared asynchronous launches on a stream, events, page-locked
memory, gpuarray transfers, autoinit's context teardown (cuCtxDetach). Results are checked against
numpy; exits non-zero on a mismatch."""
import sys

import numpy as np
import pycuda.autoinit  # noqa: F401  (creates the context; detaches it at exit)
import pycuda.driver as drv
import pycuda.gpuarray as gpuarray
from cuda.core import Program, ProgramOptions

failures = []

SRC = r"""
extern "C" __global__ void mul(float *d, const float *a, const float *b, int n) {
    int i = threadIdx.x + blockIdx.x * blockDim.x;
    if (i < n) d[i] = a[i] * b[i];
}
extern "C" __global__ void scale(float *x, float f, int n) {
    int i = threadIdx.x + blockIdx.x * blockDim.x;
    if (i < n) x[i] *= f;
}
"""


def check(name, good):
    print(f"{name}: {'ok' if good else 'MISMATCH'}")
    if not good:
        failures.append(name)


def main():
    dev = pycuda.autoinit.device
    cc = dev.compute_capability()
    print(f"device: compute capability {cc[0]}.{cc[1]}")
    ptx = Program(SRC, "c++", ProgramOptions(arch=f"sm_{cc[0]}{cc[1]}")).compile("ptx").code
    mod = drv.module_from_buffer(ptx)
    mul, scale = mod.get_function("mul"), mod.get_function("scale")

    rng = np.random.default_rng(5)
    n = 1000
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    d = np.zeros_like(a)
    mul(drv.Out(d), drv.In(a), drv.In(b), np.int32(n), block=(256, 1, 1), grid=(4, 1))
    check("launch with In/Out", np.array_equal(d, a * b))

    mul.prepare("PPPi")
    da, db, dd = drv.to_device(a), drv.to_device(b), drv.mem_alloc(a.nbytes)
    stream = drv.Stream()
    start, end = drv.Event(), drv.Event()
    start.record(stream)
    mul.prepared_async_call((4, 1), (256, 1, 1), stream, dd, da, db, np.int32(n))
    end.record(stream)
    host = drv.pagelocked_empty(n, np.float32)
    drv.memcpy_dtoh_async(host, dd, stream)
    stream.synchronize()
    check("prepared async launch on a stream", np.array_equal(host, a * b))
    print(f"event elapsed time non-negative: {end.time_since(start) >= 0}")

    x = gpuarray.to_gpu(a)
    scale(x.gpudata, np.float32(3.0), np.int32(n), block=(128, 1, 1), grid=(8, 1))
    check("gpuarray buffer in a launch", np.array_equal(x.get(), a * np.float32(3.0)))
    free, total = drv.mem_get_info()
    print(f"mem_get_info consistent: {0 < free <= total}")

    if failures:
        print(f"FAILED: {', '.join(failures)}")
        sys.exit(1)
    print("pycuda: all checks passed")


main()
