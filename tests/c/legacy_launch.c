/*
 * The deprecated execution control and context usage counts that older programs (PyCUDA among
 * them) still call.
 *
 * Semantics assumed (CUDA Driver API reference, 12.9, "Execution Control [DEPRECATED]" and
 * "Context Management [DEPRECATED]"):
 *  - cuFuncSetBlockShape, cuFuncSetSharedSize, cuParamSetSize and cuParamSet{i,f,v} set state
 *    kept with the function; cuParamSet* write at a byte offset of the parameter buffer (the
 *    kernel's parameter layout, as cuFuncGetParamInfo reports it), inside the size set with
 *    cuParamSetSize (beyond it: CUDA_ERROR_INVALID_VALUE). A block dimension of 0 ->
 *    CUDA_ERROR_INVALID_VALUE.
 *  - cuLaunch runs a 1 x 1 grid and cuLaunchGrid a width x height grid on the NULL stream (as
 *    asynchronous as any launch on it), cuLaunchGridAsync on the given stream.
 *  - An invalid launch (no block shape set, a parameter buffer smaller than the kernel's
 *    parameters, a zero grid dimension, too much dynamic shared memory) ->
 *    CUDA_ERROR_INVALID_VALUE and is not sticky; an invalid function -> CUDA_ERROR_INVALID_HANDLE.
 *  - cuCtxAttach (flags must be 0) increments the current context's usage count and returns it;
 *    cuCtxDetach of the current context decrements it and destroys the context when it reaches 0;
 *    detaching a context that is not current -> CUDA_ERROR_INVALID_CONTEXT.
 */
/* The calls under test are deprecated: cuda.h would warn about each (and -Werror fail). */
#define CUDA_ENABLE_DEPRECATED 1
#include "common.h"

static CUdeviceptr upload(const void *h, size_t bytes)
{
    CUdeviceptr p = 0;
    CHECK(cuMemAlloc(&p, bytes));
    CHECK(cuMemcpyHtoD(p, h, bytes));
    return p;
}

/* The parameter offsets of `f` (cuFuncGetParamInfo), `n` of them. */
static void param_offsets(CUfunction f, size_t *off, int n)
{
    for (int i = 0; i < n; i++) {
        CHECK(cuFuncGetParamInfo(f, (size_t)i, &off[i], NULL));
    }
}

/* vector_add(a, b, c, n) through cuParamSetv/cuParamSeti and cuLaunchGrid (or cuLaunch). */
static void test_vector_add(CUfunction f, int n, int use_launch)
{
    size_t bytes = (size_t)n * sizeof(float), off[4];
    float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    for (int i = 0; i < n; i++) {
        a[i] = (float)i;
        b[i] = 0.5f * (float)i;
    }
    CUdeviceptr da = upload(a, bytes), db = upload(b, bytes), dc = 0;
    CHECK(cuMemAlloc(&dc, bytes));
    CHECK(cuMemsetD32(dc, 0, (size_t)n));
    param_offsets(f, off, 4);
    unsigned block = use_launch ? (unsigned)n : 128;
    CHECK(cuFuncSetBlockShape(f, (int)block, 1, 1));
    CHECK(cuFuncSetSharedSize(f, 0));
    CHECK(cuParamSetSize(f, (unsigned)(off[3] + sizeof(int))));
    CHECK(cuParamSetv(f, (int)off[0], &da, sizeof da));
    CHECK(cuParamSetv(f, (int)off[1], &db, sizeof db));
    CHECK(cuParamSetv(f, (int)off[2], &dc, sizeof dc));
    CHECK(cuParamSeti(f, (int)off[3], (unsigned)n));
    if (use_launch) {
        CHECK(cuLaunch(f));
    } else {
        CHECK(cuLaunchGrid(f, (n + 127) / 128, 1));
    }
    CHECK(cuMemcpyDtoH(c, dc, bytes));
    for (int i = 0; i < n; i++) {
        EXPECT(c[i] == a[i] + b[i], "c[%d] = %f, want %f", i, c[i], a[i] + b[i]);
    }
    CHECK(cuMemFree(da));
    CHECK(cuMemFree(db));
    CHECK(cuMemFree(dc));
    free(a);
    free(b);
    free(c);
    OK("vector_add n=%d via %s", n, use_launch ? "cuLaunch (1x1 grid)" : "cuLaunchGrid");
}

/* saxpy(a, x, y, n): a float through cuParamSetf, on a stream with cuLaunchGridAsync. */
static void test_saxpy_async(void)
{
    CUmodule m = load_module("saxpy");
    CUfunction f = get_function(m, "saxpy");
    const int n = 10000;
    size_t bytes = (size_t)n * sizeof(float), off[4];
    float *x = malloc(bytes), *y = malloc(bytes), *r = malloc(bytes);
    for (int i = 0; i < n; i++) {
        x[i] = (float)(i % 100);
        y[i] = 1.0f;
    }
    CUdeviceptr dx = upload(x, bytes), dy = upload(y, bytes);
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    param_offsets(f, off, 4);
    CHECK(cuFuncSetBlockShape(f, 256, 1, 1));
    CHECK(cuParamSetSize(f, (unsigned)(off[3] + sizeof(int))));
    CHECK(cuParamSetf(f, (int)off[0], 2.0f));
    CHECK(cuParamSetv(f, (int)off[1], &dx, sizeof dx));
    CHECK(cuParamSetv(f, (int)off[2], &dy, sizeof dy));
    CHECK(cuParamSeti(f, (int)off[3], (unsigned)n));
    CHECK(cuLaunchGridAsync(f, 8, 1, s)); /* grid-stride loop: 8 blocks cover n */
    CHECK(cuStreamSynchronize(s));
    CHECK(cuMemcpyDtoH(r, dy, bytes));
    for (int i = 0; i < n; i++) {
        EXPECT(r[i] == 2.0f * x[i] + 1.0f, "y[%d] = %f", i, r[i]);
    }
    CHECK(cuStreamDestroy(s));
    CHECK(cuMemFree(dx));
    CHECK(cuMemFree(dy));
    CHECK(cuModuleUnload(m));
    free(x);
    free(y);
    free(r);
    OK("saxpy n=%d via cuParamSetf and cuLaunchGridAsync on a stream", n);
}

/* grid3d(out, tid, nx, ny, 1): a 2D grid of 2D blocks through cuLaunchGrid. */
static void test_grid_2d(void)
{
    CUmodule m = load_module("grid3d");
    CUfunction f = get_function(m, "grid3d");
    const int nx = 40, ny = 24, n = nx * ny;
    size_t off[5];
    unsigned *out = malloc((size_t)n * sizeof(unsigned));
    CUdeviceptr dout = 0, dtid = 0;
    CHECK(cuMemAlloc(&dout, (size_t)n * sizeof(unsigned)));
    CHECK(cuMemAlloc(&dtid, (size_t)n * sizeof(unsigned)));
    param_offsets(f, off, 5);
    CHECK(cuFuncSetBlockShape(f, 8, 4, 1));
    CHECK(cuParamSetSize(f, (unsigned)(off[4] + sizeof(int))));
    CHECK(cuParamSetv(f, (int)off[0], &dout, sizeof dout));
    CHECK(cuParamSetv(f, (int)off[1], &dtid, sizeof dtid));
    CHECK(cuParamSeti(f, (int)off[2], (unsigned)nx));
    CHECK(cuParamSeti(f, (int)off[3], (unsigned)ny));
    CHECK(cuParamSeti(f, (int)off[4], 1u));
    CHECK(cuLaunchGrid(f, nx / 8, ny / 4));
    CHECK(cuMemcpyDtoH(out, dout, (size_t)n * sizeof(unsigned)));
    for (int y = 0; y < ny; y++) {
        for (int x = 0; x < nx; x++) {
            unsigned want = (unsigned)x + 1000u * (unsigned)y;
            EXPECT(out[y * nx + x] == want, "out[%d][%d] = %u, want %u", y, x, out[y * nx + x],
                   want);
        }
    }
    CHECK(cuMemFree(dout));
    CHECK(cuMemFree(dtid));
    CHECK(cuModuleUnload(m));
    free(out);
    OK("grid3d %dx%d via a %dx%d cuLaunchGrid of 8x4 blocks", nx, ny, nx / 8, ny / 4);
}

static void test_errors(CUfunction f)
{
    EXPECT_ERR(cuFuncSetBlockShape(NULL, 32, 1, 1), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuParamSetSize(NULL, 8), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuLaunch(NULL), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuFuncSetBlockShape(f, 0, 1, 1), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuFuncSetBlockShape(f, 32, -1, 1), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuParamSetSize(f, 8));
    EXPECT_ERR(cuParamSeti(f, 6, 1), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuParamSeti(f, -4, 1), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuParamSetf(f, 8, 1.0f), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuParamSetv(f, 0, NULL, 4), CUDA_ERROR_INVALID_VALUE);
    unsigned long long big[2] = {0, 0};
    EXPECT_ERR(cuParamSetv(f, 0, big, sizeof big), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuParamSetv(f, 0, big, 8));
    /* vector_add takes 28 bytes of parameters: 8 set is too few. */
    CHECK(cuFuncSetBlockShape(f, 32, 1, 1));
    EXPECT_ERR(cuLaunchGrid(f, 1, 1), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuParamSetSize(f, 28));
    EXPECT_ERR(cuLaunchGrid(f, 0, 1), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLaunchGrid(f, 1, -1), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuFuncSetSharedSize(f, 1u << 20));
    EXPECT_ERR(cuLaunchGrid(f, 1, 1), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuFuncSetSharedSize(f, 0));
    EXPECT_ERR2(cuParamSetTexRef(f, CU_PARAM_TR_DEFAULT, NULL), CUDA_ERROR_NOT_SUPPORTED,
                CUDA_ERROR_INVALID_VALUE);
    CHECK(cuCtxSynchronize()); /* none of these is sticky */

    /* A function whose block shape was never set. */
    CUmodule m = load_module("empty_kernel");
    CUfunction e = get_function(m, "empty_kernel");
    EXPECT_ERR(cuLaunch(e), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuFuncSetBlockShape(e, 64, 2, 1));
    CHECK(cuLaunch(e)); /* no parameters: no cuParamSetSize needed */
    CHECK(cuLaunchGrid(e, 3, 2));
    CHECK(cuCtxSynchronize());
    CHECK(cuModuleUnload(m));
    OK("invalid legacy calls rejected (INVALID_HANDLE / INVALID_VALUE), none sticky");
}

static void test_attach_detach(CUcontext primary, CUdevice dev)
{
    CUcontext got = NULL, c = NULL, other = NULL;
    EXPECT_ERR(cuCtxAttach(&got, 1), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuCtxAttach(NULL, 0), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuCtxAttach(&got, 0));
    EXPECT(got == primary, "cuCtxAttach returned %p, current is %p", (void *)got, (void *)primary);
    CHECK(cuCtxDetach(primary)); /* back to its creation count: still alive */
    CHECK(cuCtxSynchronize());

    CHECK(cuCtxCreate(&c, 0, dev)); /* usage count 1, current */
    CHECK(cuCtxAttach(&got, 0));    /* 2 */
    EXPECT(got == c, "cuCtxAttach returned %p, want %p", (void *)got, (void *)c);
    CHECK(cuCtxDetach(c)); /* 1: still usable */
    CUdeviceptr p = 0;
    CHECK(cuMemAlloc(&p, 256));
    CHECK(cuMemFree(p));
    CHECK(cuCtxDetach(c)); /* 0: destroyed */
    EXPECT_ERR(cuCtxDetach(c), CUDA_ERROR_INVALID_CONTEXT);
    EXPECT_ERR(cuCtxPushCurrent(c), CUDA_ERROR_INVALID_CONTEXT);

    /* Detaching a context that is not current. */
    CHECK(cuCtxSetCurrent(primary));
    CHECK(cuCtxCreate(&other, 0, dev));
    CHECK(cuCtxPopCurrent(NULL));
    CHECK(cuCtxSetCurrent(primary));
    EXPECT_ERR(cuCtxDetach(other), CUDA_ERROR_INVALID_CONTEXT);
    EXPECT_ERR(cuCtxDetach(NULL), CUDA_ERROR_INVALID_CONTEXT);
    CHECK(cuCtxDestroy(other));
    CHECK(cuCtxSetCurrent(primary));
    CHECK(cuCtxSynchronize());
    OK("cuCtxAttach / cuCtxDetach usage counts");
}

int main(void)
{
    watchdog(120);
    CUdevice dev;
    CUcontext primary = init_primary(&dev);
    CUmodule m = load_module("vector_add");
    CUfunction f = get_function(m, "vector_add");
    test_vector_add(f, 100000, 0);
    test_vector_add(f, 200, 1);
    test_saxpy_async();
    test_grid_2d();
    test_errors(f);
    /* The state set before the errors is still there: a valid launch after them works. */
    test_vector_add(f, 1000, 0);
    CHECK(cuModuleUnload(m));
    test_attach_detach(primary, dev);
    CHECK(cuDevicePrimaryCtxRelease(dev));
    printf("legacy_launch: all ok\n");
    return 0;
}
