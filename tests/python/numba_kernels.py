"""numba-cuda on gpushare: jit kernels, device functions, shared memory, atomics, streams and
events. Every result is checked against numpy; exits non-zero on a mismatch. The printed lines
are deterministic (no timings), so a direct run and a run through the shim print the same."""
import sys
import warnings

import numpy as np
from numba import cuda, float32, int32

warnings.simplefilter("ignore")
failures = []


def check(name, got, want, **tol):
    ok = np.allclose(got, want, **tol) if tol else np.array_equal(got, want)
    print(f"{name}: {'ok' if ok else 'MISMATCH'}")
    if not ok:
        failures.append(name)


@cuda.jit(device=True)
def axpb(a, x, b):
    return a * x + b


@cuda.jit
def saxpy(out, x, y, a):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = axpb(a, x[i], y[i])


@cuda.jit
def block_sum(out, x):
    tile = cuda.shared.array(256, dtype=float32)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    tile[t] = x[i] if i < x.size else 0.0
    cuda.syncthreads()
    step = 128
    while step > 0:
        if t < step:
            tile[t] += tile[t + step]
        cuda.syncthreads()
        step //= 2
    if t == 0:
        out[cuda.blockIdx.x] = tile[0]


@cuda.jit
def histogram(bins, x):
    i = cuda.grid(1)
    if i < x.size:
        cuda.atomic.add(bins, x[i] % bins.size, 1)


@cuda.jit
def atomic_minmax(out, x):
    i = cuda.grid(1)
    if i < x.size:
        cuda.atomic.min(out, 0, x[i])
        cuda.atomic.max(out, 1, x[i])


@cuda.jit
def transpose(out, x):
    tile = cuda.shared.array((16, 17), dtype=int32)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    bx, by = cuda.blockIdx.x * 16, cuda.blockIdx.y * 16
    if by + ty < x.shape[0] and bx + tx < x.shape[1]:
        tile[ty, tx] = x[by + ty, bx + tx]
    cuda.syncthreads()
    if bx + ty < out.shape[0] and by + tx < out.shape[1]:
        out[bx + ty, by + tx] = tile[tx, ty]


@cuda.jit
def scale_inplace(x, f):
    i = cuda.grid(1)
    if i < x.size:
        x[i] = x[i] * f


def main():
    rng = np.random.default_rng(7)
    dev = cuda.get_current_device()
    print(f"device: compute capability {dev.compute_capability[0]}.{dev.compute_capability[1]}")

    n = 5000
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    out = cuda.device_array(n, dtype=np.float32)
    saxpy[(n + 255) // 256, 256](out, cuda.to_device(x), cuda.to_device(y), np.float32(2.5))
    check("saxpy with a device function", out.copy_to_host(), 2.5 * x + y, rtol=1e-5, atol=1e-6)

    blocks = (n + 255) // 256
    partial = cuda.device_array(blocks, dtype=np.float32)
    block_sum[blocks, 256](partial, cuda.to_device(x))
    want = np.array([x[b * 256:(b + 1) * 256].sum() for b in range(blocks)], dtype=np.float32)
    check("shared-memory block sums", partial.copy_to_host(), want, rtol=1e-4, atol=1e-4)

    vals = rng.integers(0, 1 << 20, 20000).astype(np.int32)
    bins = cuda.to_device(np.zeros(64, dtype=np.int32))
    histogram[(vals.size + 127) // 128, 128](bins, cuda.to_device(vals))
    check("atomic.add histogram", bins.copy_to_host(), np.bincount(vals % 64, minlength=64))

    mm = cuda.to_device(np.array([np.iinfo(np.int32).max, np.iinfo(np.int32).min], dtype=np.int32))
    atomic_minmax[(vals.size + 127) // 128, 128](mm, cuda.to_device(vals))
    check("atomic.min/max", mm.copy_to_host(), np.array([vals.min(), vals.max()]))

    m = np.arange(70 * 45, dtype=np.int32).reshape(70, 45)
    t = cuda.device_array((45, 70), dtype=np.int32)
    transpose[((45 + 15) // 16, (70 + 15) // 16), (16, 16)](t, cuda.to_device(m))
    check("2-D shared-memory transpose", t.copy_to_host(), m.T)

    # Two streams, an event ordering the second after the first, and timing events.
    s1, s2 = cuda.stream(), cuda.stream()
    host = cuda.pinned_array(n, dtype=np.float32)
    host[:] = x
    d = cuda.to_device(host, stream=s1)
    start, done = cuda.event(timing=True), cuda.event(timing=True)
    start.record(stream=s1)
    scale_inplace[(n + 255) // 256, 256, s1](d, np.float32(3.0))
    done.record(stream=s1)
    done.wait(stream=s2)
    scale_inplace[(n + 255) // 256, 256, s2](d, np.float32(0.5))
    result = cuda.pinned_array(n, dtype=np.float32)
    d.copy_to_host(result, stream=s2)
    s2.synchronize()
    done.synchronize()
    print(f"event query after synchronize: {done.query()}")
    elapsed = cuda.event_elapsed_time(start, done)
    print(f"event elapsed time non-negative: {elapsed >= 0}")
    check("streams ordered by an event", result, x * 3.0 * 0.5, rtol=1e-6)

    # A kernel run on the default stream, then synchronize.
    z = cuda.to_device(np.ones(1000, dtype=np.float32))
    scale_inplace[4, 256](z, np.float32(7.0))
    cuda.synchronize()
    check("default stream", z.copy_to_host(), np.full(1000, 7.0, dtype=np.float32))

    if failures:
        print(f"FAILED: {', '.join(failures)}")
        sys.exit(1)
    print("numba: all checks passed")


main()
