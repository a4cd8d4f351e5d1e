/*
 * Shared helpers for the black-box conformance programs.
 *
 * Every program includes NVIDIA's official cuda.h (from the nvidia-cuda-runtime-cu12 12.9
 * wheel), links with -lcuda, and exits 0 only when every assertion holds. A failing
 * assertion prints "FAIL file:line: ..." on stderr and exits 1. Progress lines ("ok: ...")
 * go to stdout so a failure shows how far the program got.
 *
 * The harness (tests/src/lib.rs) sets:
 *   GPUSHARE_KERNELS_DIR  absolute path of examples/kernels (the .ptx corpus)
 *   LD_LIBRARY_PATH       a directory with libcuda.so / libcuda.so.1 -> the library under test
 */
#ifndef GPUSHARE_TESTS_COMMON_H
#define GPUSHARE_TESTS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <cuda.h>

#include "test_util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* cuGetErrorName is documented to work for any CUresult, also before cuInit. */
static inline const char *cu_name(CUresult r)
{
    const char *s = NULL;
    if (cuGetErrorName(r, &s) != CUDA_SUCCESS || s == NULL) {
        return "<unrecognised CUresult>";
    }
    return s;
}

/* The call must return CUDA_SUCCESS. */
#define CHECK(call)                                                               \
    do {                                                                          \
        CUresult check_r_ = (call);                                               \
        if (check_r_ != CUDA_SUCCESS) {                                           \
            FAIL_AT("%s -> %s (%d)", #call, cu_name(check_r_), (int)check_r_);    \
        }                                                                         \
    } while (0)

/* The call must return exactly `expected`. */
#define EXPECT_ERR(call, expected)                                                \
    do {                                                                          \
        CUresult expect_r_ = (call);                                              \
        if (expect_r_ != (expected)) {                                            \
            FAIL_AT("%s -> %s (%d), expected %s (%d)", #call, cu_name(expect_r_), \
                    (int)expect_r_, #expected, (int)(expected));                  \
        }                                                                         \
    } while (0)

/* The call must return one of two codes (where CUDA's documentation or drivers differ). */
#define EXPECT_ERR2(call, e1, e2)                                                 \
    do {                                                                          \
        CUresult expect_r_ = (call);                                              \
        if (expect_r_ != (e1) && expect_r_ != (e2)) {                             \
            FAIL_AT("%s -> %s (%d), expected %s or %s", #call, cu_name(expect_r_), \
                    (int)expect_r_, #e1, #e2);                                    \
        }                                                                         \
    } while (0)

/* PTX text of examples/kernels/<name>.ptx (malloc'd, NUL-terminated). */
static inline char *kernel_ptx(const char *name)
{
    return read_file(kernel_path(name), NULL);
}

/* cuModuleLoadData on examples/kernels/<name>.ptx. */
static inline CUmodule load_module(const char *name)
{
    char *ptx = kernel_ptx(name);
    CUmodule m = NULL;
    CHECK(cuModuleLoadData(&m, ptx));
    free(ptx);
    return m;
}

static inline CUfunction get_function(CUmodule m, const char *name)
{
    CUfunction f = NULL;
    CHECK(cuModuleGetFunction(&f, m, name));
    return f;
}

/* cuInit + device 0 + primary context made current. */
static inline CUcontext init_primary(CUdevice *dev_out)
{
    CUdevice dev;
    CUcontext ctx;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CHECK(cuCtxSetCurrent(ctx));
    if (dev_out != NULL) {
        *dev_out = dev;
    }
    return ctx;
}

static inline int approx_eq(double got, double want, double rel, double abs_tol)
{
    double diff = fabs(got - want);
    return diff <= abs_tol || diff <= rel * fabs(want);
}

/* Deterministic pseudo-random floats in [lo, hi). */
static inline float frand(uint32_t *state, float lo, float hi)
{
    *state = *state * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)((*state >> 8) & 0xffffff) / 16777216.0f;
}

/* busy_sleep(out, ns, iters, n) with one block of `threads` threads on `stream`:
 * under pacing this lasts at least about ns * iters nanoseconds. */
static inline void launch_sleep(CUfunction busy_sleep, CUstream stream, CUdeviceptr out,
                                unsigned ns, int iters, unsigned threads)
{
    int n = (int)threads;
    void *params[] = {&out, &ns, &iters, &n};
    CHECK(cuLaunchKernel(busy_sleep, 1, 1, 1, threads, 1, 1, 0, stream, params, NULL));
}

#endif /* GPUSHARE_TESTS_COMMON_H */
