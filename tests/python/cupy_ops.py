"""CuPy on gpushare (CUPY_COMPILE_WITH_PTX=1: its kernels are NVRTC PTX): ufuncs including
transcendental ones on float32/float64, reductions and scans with the default CUB accelerator,
sort (Thrust), a raw kernel and an elementwise kernel. Results are checked against numpy; exits
non-zero on a mismatch. Not here: matmul and the other cuBLAS/cuRAND/cuSOLVER routines (their
libraries ship SASS only, which the CPU device cannot run)."""
import os
import sys

import cupy as cp
import numpy as np

failures = []


def check(name, got, want, **tol):
    got = cp.asnumpy(got)
    ok = np.allclose(got, want, **tol) if tol else np.array_equal(got, want)
    print(f"{name}: {'ok' if ok else 'MISMATCH'}")
    if not ok:
        failures.append(name)


def main():
    assert os.environ.get("CUPY_COMPILE_WITH_PTX") == "1", "run with CUPY_COMPILE_WITH_PTX=1"
    # CuPy's default: CUB (accelerator 1) for reductions and routines (sum, cumsum, ...).
    cub = cp._core._accelerator.ACCELERATOR_CUB
    print(f"CUB reduction accelerator: {cub in cp._core.get_reduction_accelerators()}")
    print(f"CUB routine accelerator: {cub in cp._core.get_routine_accelerators()}")
    rng = np.random.default_rng(11)
    for dt, rtol in ((np.float32, 2e-6), (np.float64, 1e-13)):
        name = np.dtype(dt).name
        h = rng.uniform(-3, 3, 4096).astype(dt)
        hp = rng.uniform(0, 50, 4096).astype(dt)
        d, dp = cp.asarray(h), cp.asarray(hp)
        check(f"{name} exp", cp.exp(d), np.exp(h), rtol=rtol)
        check(f"{name} log1p", cp.log1p(dp), np.log1p(hp), rtol=rtol)
        check(f"{name} sin", cp.sin(d), np.sin(h), rtol=rtol, atol=rtol)
        check(f"{name} cos", cp.cos(d), np.cos(h), rtol=rtol, atol=rtol)
        check(f"{name} tanh", cp.tanh(d), np.tanh(h), rtol=rtol, atol=rtol)
        check(f"{name} sqrt", cp.sqrt(dp), np.sqrt(hp), rtol=rtol)
        check(f"{name} fmod", cp.fmod(dp, d), np.fmod(hp, h), rtol=rtol, atol=rtol)
        check(f"{name} arithmetic", (d * 2 + dp) / 3, (h * 2 + hp) / 3, rtol=rtol)
        check(f"{name} sum", d.sum(), h.astype(np.float64).sum(), rtol=1e-4, atol=1e-3)
        check(f"{name} max/min", cp.stack([d.max(), d.min()]), np.array([h.max(), h.min()]))
        check(f"{name} argmax/argmin", cp.stack([d.argmax(), d.argmin()]), np.array([h.argmax(), h.argmin()]))
        check(f"{name} cumsum", cp.cumsum(d), np.cumsum(h.astype(np.float64)), rtol=1e-4, atol=1e-3)
        check(f"{name} mean/std", cp.stack([d.mean(), d.std()]), np.array([h.mean(), h.std()]), rtol=1e-4)
        check(f"{name} sort", cp.sort(d), np.sort(h))
        check(f"{name} argsort", d[cp.argsort(d)], np.sort(h))
    m = rng.integers(-1000, 1000, (64, 96)).astype(np.int64)
    dm = cp.asarray(m)
    check("int64 axis reductions", dm.sum(axis=0), m.sum(axis=0))
    check("int64 axis max", dm.max(axis=1), m.max(axis=1))
    check("int64 cumsum", cp.cumsum(dm.ravel()), np.cumsum(m.ravel()))

    raw = cp.RawKernel(r"""
    extern "C" __global__ void saxpy(const float *x, const float *y, float a, float *out, int n) {
        int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) out[i] = a * x[i] + y[i];
    }""", "saxpy")
    n = 5000
    x = cp.asarray(rng.standard_normal(n).astype(np.float32))
    y = cp.asarray(rng.standard_normal(n).astype(np.float32))
    out = cp.empty_like(x)
    raw(((n + 255) // 256,), (256,), (x, y, cp.float32(1.5), out, cp.int32(n)))
    check("raw kernel", out, 1.5 * cp.asnumpy(x) + cp.asnumpy(y), rtol=1e-5, atol=1e-6)
    ew = cp.ElementwiseKernel("float32 a, float32 b", "float32 c", "c = a > b ? a - b : b - a", "absdiff")
    check("elementwise kernel", ew(x, y), np.abs(cp.asnumpy(x) - cp.asnumpy(y)))
    red = cp.ReductionKernel("float32 v", "float32 res", "v * v", "a + b", "res = sqrt(a)", "0", "l2norm")
    check("reduction kernel", red(x), np.linalg.norm(cp.asnumpy(x)), rtol=1e-5)
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        z = cp.arange(1000, dtype=cp.int32) * 3
    s.synchronize()
    check("non-blocking stream", z, np.arange(1000, dtype=np.int32) * 3)

    # A CUDA graph: elementwise work captured on a stream, replayed three times.
    gx = cp.arange(4096, dtype=cp.float32)
    acc = cp.zeros(4096, dtype=cp.float32)
    with s:
        s.begin_capture()
        acc += gx * 2.0
        g = s.end_capture()
    for _ in range(3):
        g.launch(stream=s)
    s.synchronize()
    check("graph capture and replay", acc, np.arange(4096, dtype=np.float32) * 6.0)

    if failures:
        print(f"FAILED: {', '.join(failures)}")
        sys.exit(1)
    print("cupy: all checks passed")


main()
