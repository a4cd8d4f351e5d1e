/*
 * Family i: launching every corpus kernel and comparing with a C reference; `extra` parameter
 * buffers; invalid launch configurations; cuLaunchHostFunc ordering; a faulting kernel.
 *
 * Semantics assumed (CUDA Driver API reference, 12.9, cuLaunchKernel):
 *  - Parameters come either from kernelParams (array of pointers to each argument) or from
 *    extra = {CU_LAUNCH_PARAM_BUFFER_POINTER, buf, CU_LAUNCH_PARAM_BUFFER_SIZE, &size,
 *    CU_LAUNCH_PARAM_END}, where buf holds the arguments at their natural alignment (the layout
 *    cuFuncGetParamInfo reports); giving both is an error (CUDA_ERROR_INVALID_VALUE).
 *  - A block with more than 1024 threads (or a dimension above 1024/1024/64), a zero grid or
 *    block dimension, gridDim.y/z > 65535, or dynamic shared memory above the 48 KiB default
 *    without opting in -> CUDA_ERROR_INVALID_VALUE; these errors are not sticky.
 *  - cuLaunchHostFunc runs the function after all earlier work in the stream has completed and
 *    before any later work in the stream starts.
 *  - A kernel that accesses an invalid address: the error shows up at the next synchronisation
 *    as CUDA_ERROR_ILLEGAL_ADDRESS and is sticky (every later call in the context returns it).
 * The harness runs this program with GPUSHARE_CPU_THREADS=1 and =4.
 */
#include "common.h"

#include <unistd.h>

static CUdeviceptr dalloc(size_t bytes)
{
    CUdeviceptr p = 0;
    CHECK(cuMemAlloc(&p, bytes));
    return p;
}

static CUdeviceptr upload(const void *h, size_t bytes)
{
    CUdeviceptr p = dalloc(bytes);
    CHECK(cuMemcpyHtoD(p, h, bytes));
    return p;
}

static void download(void *h, CUdeviceptr d, size_t bytes)
{
    CHECK(cuMemcpyDtoH(h, d, bytes));
}

static void test_vector_add(int use_extra)
{
    CUmodule m = load_module("vector_add");
    CUfunction f = get_function(m, "vector_add");
    const int n = (1 << 18) + 3;
    size_t bytes = (size_t)n * sizeof(float);
    float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    uint32_t seed = 1;
    for (int i = 0; i < n; i++) {
        a[i] = frand(&seed, -100.0f, 100.0f);
        b[i] = frand(&seed, -100.0f, 100.0f);
    }
    CUdeviceptr da = upload(a, bytes), db = upload(b, bytes), dc = dalloc(bytes);
    CHECK(cuMemsetD32(dc, 0, (size_t)n));
    unsigned block = 1024, grid = (unsigned)((n + 1023) / 1024);
    if (use_extra) {
        /* The layout of the kernel's parameters: three pointers then an int (sizeof 32 with tail
         * padding, as applications commonly pass sizeof(struct)). */
        struct {
            CUdeviceptr a, b, c;
            int n;
        } args = {da, db, dc, n};
        size_t size = sizeof args;
        void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, &args, CU_LAUNCH_PARAM_BUFFER_SIZE, &size,
                         CU_LAUNCH_PARAM_END};
        CHECK(cuLaunchKernel(f, grid, 1, 1, block, 1, 1, 0, NULL, NULL, extra));
    } else {
        int nn = n;
        void *params[] = {&da, &db, &dc, &nn};
        CHECK(cuLaunchKernel(f, grid, 1, 1, block, 1, 1, 0, NULL, params, NULL));
    }
    download(c, dc, bytes);
    for (int i = 0; i < n; i++) {
        EXPECT(c[i] == a[i] + b[i], "vector_add[%d] = %f, want %f", i, c[i], a[i] + b[i]);
    }
    CHECK(cuMemFree(da));
    CHECK(cuMemFree(db));
    CHECK(cuMemFree(dc));
    CHECK(cuModuleUnload(m));
    free(a);
    free(b);
    free(c);
    OK("vector_add n=%d via %s", n, use_extra ? "extra" : "kernelParams");
}

static void test_saxpy(void)
{
    CUmodule m = load_module("saxpy");
    CUfunction f = get_function(m, "saxpy");
    const int n = 50000;
    size_t bytes = (size_t)n * sizeof(float);
    float *x = malloc(bytes), *y = malloc(bytes), *r = malloc(bytes);
    uint32_t seed = 2;
    for (int i = 0; i < n; i++) {
        x[i] = frand(&seed, -1.0f, 1.0f);
        y[i] = frand(&seed, -1.0f, 1.0f);
    }
    CUdeviceptr dx = upload(x, bytes), dy = upload(y, bytes);
    float a = 2.5f;
    int nn = n;
    void *params[] = {&a, &dx, &dy, &nn};
    /* A small grid: the kernel's grid-stride loop covers the rest. */
    CHECK(cuLaunchKernel(f, 16, 1, 1, 128, 1, 1, 0, NULL, params, NULL));
    download(r, dy, bytes);
    for (int i = 0; i < n; i++) {
        float want = fmaf(a, x[i], y[i]);
        EXPECT(approx_eq(r[i], want, 1e-6, 1e-6), "saxpy[%d] = %.9g, want %.9g", i, r[i], want);
    }
    CHECK(cuMemFree(dx));
    CHECK(cuMemFree(dy));
    CHECK(cuModuleUnload(m));
    free(x);
    free(y);
    free(r);
    OK("saxpy (grid-stride, 16x128 threads for n=%d)", n);
}

static void test_bias_relu(void)
{
    CUmodule m = load_module("bias_relu");
    CUfunction f = get_function(m, "bias_relu");
    const int rows = 37, cols = 53;
    size_t bytes = (size_t)rows * cols * sizeof(float);
    float *in = malloc(bytes), *out = malloc(bytes), bias[53];
    uint32_t seed = 3;
    for (int i = 0; i < rows * cols; i++) {
        in[i] = frand(&seed, -2.0f, 2.0f);
    }
    for (int j = 0; j < cols; j++) {
        bias[j] = frand(&seed, -1.0f, 1.0f);
    }
    CUdeviceptr din = upload(in, bytes), dbias = upload(bias, sizeof bias), dout = dalloc(bytes);
    int r = rows, c = cols;
    void *params[] = {&din, &dbias, &dout, &r, &c};
    CHECK(cuLaunchKernel(f, (cols + 15) / 16, (rows + 15) / 16, 1, 16, 16, 1, 0, NULL, params, NULL));
    download(out, dout, bytes);
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
            float v = in[i * cols + j] + bias[j];
            float want = v > 0.0f ? v : 0.0f;
            EXPECT(out[i * cols + j] == want, "bias_relu[%d][%d] = %f, want %f", i, j, out[i * cols + j], want);
        }
    }
    CHECK(cuMemFree(din));
    CHECK(cuMemFree(dbias));
    CHECK(cuMemFree(dout));
    CHECK(cuModuleUnload(m));
    free(in);
    free(out);
    OK("bias_relu %dx%d (2-D grid)", rows, cols);
}

static void test_sgemm(void)
{
    CUmodule m = load_module("sgemm_tiled");
    CUfunction f = get_function(m, "sgemm_tiled");
    const int M = 37, N = 29, K = 45; /* none a multiple of 16 */
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C = malloc(sizeof(float) * M * N);
    uint32_t seed = 4;
    for (int i = 0; i < M * K; i++) {
        A[i] = frand(&seed, -1.0f, 1.0f);
    }
    for (int i = 0; i < K * N; i++) {
        B[i] = frand(&seed, -1.0f, 1.0f);
    }
    CUdeviceptr dA = upload(A, sizeof(float) * M * K), dB = upload(B, sizeof(float) * K * N);
    CUdeviceptr dC = dalloc(sizeof(float) * M * N);
    int mm = M, nn = N, kk = K;
    void *params[] = {&dA, &dB, &dC, &mm, &nn, &kk};
    CHECK(cuLaunchKernel(f, (N + 15) / 16, (M + 15) / 16, 1, 16, 16, 1, 0, NULL, params, NULL));
    download(C, dC, sizeof(float) * M * N);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double want = 0.0;
            for (int k = 0; k < K; k++) {
                want += (double)A[i * K + k] * (double)B[k * N + j];
            }
            EXPECT(approx_eq(C[i * N + j], want, 1e-4, 1e-4), "sgemm C[%d][%d] = %f, want %f", i, j,
                   C[i * N + j], want);
        }
    }
    CHECK(cuMemFree(dA));
    CHECK(cuMemFree(dB));
    CHECK(cuMemFree(dC));
    CHECK(cuModuleUnload(m));
    free(A);
    free(B);
    free(C);
    OK("sgemm_tiled M=%d N=%d K=%d (shared memory, __syncthreads)", M, N, K);
}

static void test_softmax(void)
{
    CUmodule m = load_module("softmax_rows");
    CUfunction f = get_function(m, "softmax_rows");
    const int rows = 19, cols = 100;
    size_t bytes = (size_t)rows * cols * sizeof(float);
    float *in = malloc(bytes), *out = malloc(bytes);
    uint32_t seed = 5;
    for (int i = 0; i < rows * cols; i++) {
        in[i] = frand(&seed, -8.0f, 8.0f);
    }
    CUdeviceptr din = upload(in, bytes), dout = dalloc(bytes);
    int r = rows, c = cols;
    void *params[] = {&din, &dout, &r, &c};
    const unsigned warps_per_block = 4;
    CHECK(cuLaunchKernel(f, (rows + warps_per_block - 1) / warps_per_block, 1, 1, 32 * warps_per_block, 1, 1, 0,
                         NULL, params, NULL));
    download(out, dout, bytes);
    for (int i = 0; i < rows; i++) {
        double mx = -1e30, sum = 0.0, got_sum = 0.0;
        for (int j = 0; j < cols; j++) {
            mx = fmax(mx, in[i * cols + j]);
        }
        for (int j = 0; j < cols; j++) {
            sum += exp(in[i * cols + j] - mx);
        }
        for (int j = 0; j < cols; j++) {
            double want = exp(in[i * cols + j] - mx) / sum;
            EXPECT(approx_eq(out[i * cols + j], want, 1e-5, 1e-7), "softmax[%d][%d] = %.9g, want %.9g", i, j,
                   out[i * cols + j], want);
            got_sum += out[i * cols + j];
        }
        EXPECT(fabs(got_sum - 1.0) < 1e-4, "softmax row %d sums to %f", i, got_sum);
    }
    CHECK(cuMemFree(din));
    CHECK(cuMemFree(dout));
    CHECK(cuModuleUnload(m));
    free(in);
    free(out);
    OK("softmax_rows %dx%d (warp shuffles)", rows, cols);
}

static void test_reduce_sum(void)
{
    CUmodule m = load_module("reduce_sum");
    CUfunction f = get_function(m, "reduce_sum");
    const int n = 100000;
    size_t bytes = (size_t)n * sizeof(float);
    float *in = malloc(bytes);
    double want = 0.0;
    for (int i = 0; i < n; i++) {
        in[i] = (float)(i % 7) * 0.25f; /* every partial sum is exact in float */
        want += in[i];
    }
    CUdeviceptr din = upload(in, bytes), dout = dalloc(sizeof(float));
    CHECK(cuMemsetD32(dout, 0, 1));
    int nn = n;
    void *params[] = {&din, &dout, &nn};
    const unsigned block = 256;
    CHECK(cuLaunchKernel(f, 8, 1, 1, block, 1, 1, block * sizeof(float), NULL, params, NULL));
    float got = 0.0f;
    download(&got, dout, sizeof got);
    EXPECT((double)got == want, "reduce_sum = %f, want %f", got, want);
    /* A second launch accumulates (atomicAdd onto the previous total). */
    CHECK(cuLaunchKernel(f, 3, 1, 1, 128, 1, 1, 128 * sizeof(float), NULL, params, NULL));
    download(&got, dout, sizeof got);
    EXPECT((double)got == 2.0 * want, "reduce_sum twice = %f, want %f", got, 2.0 * want);
    CHECK(cuMemFree(din));
    CHECK(cuMemFree(dout));
    CHECK(cuModuleUnload(m));
    free(in);
    OK("reduce_sum n=%d (dynamic shared memory, atomicAdd)", n);
}

static void test_grid3d(void)
{
    CUmodule m = load_module("grid3d");
    CUfunction f = get_function(m, "grid3d");
    const int nx = 10, ny = 5, nz = 3;
    const unsigned bx = 4, by = 3, bz = 2;
    size_t count = (size_t)nx * ny * nz;
    unsigned *out = malloc(count * 4), *tid = malloc(count * 4);
    CUdeviceptr dout = dalloc(count * 4), dtid = dalloc(count * 4);
    CHECK(cuMemsetD32(dout, 0xffffffffu, count));
    int x = nx, y = ny, z = nz;
    void *params[] = {&dout, &dtid, &x, &y, &z};
    CHECK(cuLaunchKernel(f, (nx + bx - 1) / bx, (ny + by - 1) / by, (nz + bz - 1) / bz, bx, by, bz, 0, NULL,
                         params, NULL));
    download(out, dout, count * 4);
    download(tid, dtid, count * 4);
    for (int k = 0; k < nz; k++) {
        for (int j = 0; j < ny; j++) {
            for (int i = 0; i < nx; i++) {
                size_t idx = ((size_t)k * ny + j) * nx + i;
                unsigned want = (unsigned)i + 1000u * (unsigned)j + 1000000u * (unsigned)k;
                unsigned want_tid = (unsigned)(i % bx) + bx * ((unsigned)(j % by) + by * (unsigned)(k % bz));
                EXPECT(out[idx] == want, "grid3d (%d,%d,%d) = %u, want %u", i, j, k, out[idx], want);
                EXPECT(tid[idx] == want_tid, "grid3d tid (%d,%d,%d) = %u, want %u", i, j, k, tid[idx], want_tid);
            }
        }
    }
    CHECK(cuMemFree(dout));
    CHECK(cuMemFree(dtid));
    CHECK(cuModuleUnload(m));
    free(out);
    free(tid);
    OK("grid3d %dx%dx%d with %ux%ux%u blocks", nx, ny, nz, bx, by, bz);
}

struct struct_params {
    float scale;
    int offset;
    float bias[4];
};

static void test_struct_param(int use_extra)
{
    CUmodule m = load_module("struct_param");
    CUfunction f = get_function(m, "struct_param");
    const int n = 1000;
    float in[1000], out[1000];
    for (int i = 0; i < n; i++) {
        in[i] = 0.125f * (float)(i - 500);
    }
    struct struct_params p = {-1.5f, 42, {0.25f, -0.5f, 1.0f, 8.0f}};
    CUdeviceptr din = upload(in, sizeof in), dout = dalloc(sizeof out);
    if (use_extra) {
        /* Offsets 0 / 24 / 32 / 40 as cuFuncGetParamInfo reports them. */
        struct {
            struct struct_params p;
            CUdeviceptr in, out;
            int n;
        } args = {p, din, dout, n};
        _Static_assert(sizeof(struct struct_params) == 24, "struct size");
        size_t size = sizeof args;
        void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, &args, CU_LAUNCH_PARAM_BUFFER_SIZE, &size,
                         CU_LAUNCH_PARAM_END};
        CHECK(cuLaunchKernel(f, 4, 1, 1, 256, 1, 1, 0, NULL, NULL, extra));
    } else {
        int nn = n;
        void *params[] = {&p, &din, &dout, &nn};
        CHECK(cuLaunchKernel(f, 4, 1, 1, 256, 1, 1, 0, NULL, params, NULL));
    }
    download(out, dout, sizeof out);
    for (int i = 0; i < n; i++) {
        float want = in[i] * p.scale + p.bias[i % 4] + (float)p.offset;
        EXPECT(approx_eq(out[i], want, 1e-6, 1e-6), "struct_param[%d] = %f, want %f", i, out[i], want);
    }
    CHECK(cuMemFree(din));
    CHECK(cuMemFree(dout));
    CHECK(cuModuleUnload(m));
    OK("struct_param (struct by value) via %s", use_extra ? "extra" : "kernelParams");
}

static void test_daxpy(void)
{
    CUmodule m = load_module("daxpy_f64");
    CUfunction f = get_function(m, "daxpy_f64");
    const int n = 5000;
    size_t bytes = (size_t)n * sizeof(double);
    double *x = malloc(bytes), *y = malloc(bytes), *r = malloc(bytes);
    for (int i = 0; i < n; i++) {
        x[i] = 1.0 / (double)(i + 1);
        y[i] = (double)i * 3.0 + 0.1;
    }
    CUdeviceptr dx = upload(x, bytes), dy = upload(y, bytes);
    double a = 1.0 / 3.0;
    int nn = n;
    void *params[] = {&a, &dx, &dy, &nn};
    CHECK(cuLaunchKernel(f, (n + 127) / 128, 1, 1, 128, 1, 1, 0, NULL, params, NULL));
    download(r, dy, bytes);
    for (int i = 0; i < n; i++) {
        double want = a * x[i] + sqrt(y[i]);
        EXPECT(approx_eq(r[i], want, 1e-14, 1e-300), "daxpy_f64[%d] = %.17g, want %.17g", i, r[i], want);
    }
    CHECK(cuMemFree(dx));
    CHECK(cuMemFree(dy));
    CHECK(cuModuleUnload(m));
    free(x);
    free(y);
    free(r);
    OK("daxpy_f64 (double precision, sqrt)");
}

static void test_busy_sleep_and_empty(void)
{
    CUmodule m = load_module("busy_sleep");
    CUfunction f = get_function(m, "busy_sleep");
    CUdeviceptr out = dalloc(64 * 4);
    CHECK(cuMemsetD32(out, 0, 64));
    unsigned ns = 1000;
    int iters = 3, n = 64;
    void *params[] = {&out, &ns, &iters, &n};
    CHECK(cuLaunchKernel(f, 2, 1, 1, 32, 1, 1, 0, NULL, params, NULL));
    unsigned h[64];
    download(h, out, sizeof h);
    for (int i = 0; i < 64; i++) {
        EXPECT(h[i] == 3u, "busy_sleep out[%d] = %u", i, h[i]);
    }
    CHECK(cuMemFree(out));
    CHECK(cuModuleUnload(m));

    CUmodule me = load_module("empty_kernel");
    CUfunction fe = get_function(me, "empty_kernel");
    CHECK(cuLaunchKernel(fe, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
    CHECK(cuLaunchKernel(fe, 100, 2, 1, 64, 2, 1, 0, NULL, NULL, NULL));
    void *none[] = {NULL};
    CHECK(cuLaunchKernel(fe, 1, 1, 1, 1024, 1, 1, 0, NULL, none, NULL));
    CHECK(cuCtxSynchronize());
    CHECK(cuModuleUnload(me));
    OK("busy_sleep, empty_kernel");
}

static void test_invalid_configs(void)
{
    CUmodule m = load_module("vector_add");
    CUfunction f = get_function(m, "vector_add");
    CUdeviceptr d = dalloc(1024);
    int n = 0;
    void *params[] = {&d, &d, &d, &n};
    EXPECT_ERR(cuLaunchKernel(f, 1, 1, 1, 2048, 1, 1, 0, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLaunchKernel(f, 1, 1, 1, 1024, 2, 1, 0, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLaunchKernel(f, 1, 1, 1, 1, 1, 65, 0, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLaunchKernel(f, 0, 1, 1, 32, 1, 1, 0, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLaunchKernel(f, 1, 0, 1, 32, 1, 1, 0, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLaunchKernel(f, 1, 1, 0, 32, 1, 1, 0, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLaunchKernel(f, 1, 1, 1, 0, 1, 1, 0, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLaunchKernel(f, 1, 65536, 1, 32, 1, 1, 0, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLaunchKernel(f, 1, 1, 65536, 32, 1, 1, 0, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 64 * 1024, NULL, params, NULL), CUDA_ERROR_INVALID_VALUE);
    struct {
        CUdeviceptr a, b, c;
        int n;
    } args = {d, d, d, 0};
    size_t size = sizeof args;
    void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, &args, CU_LAUNCH_PARAM_BUFFER_SIZE, &size, CU_LAUNCH_PARAM_END};
    EXPECT_ERR(cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, params, extra), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR2(cuLaunchKernel(NULL, 1, 1, 1, 32, 1, 1, 0, NULL, params, NULL), CUDA_ERROR_INVALID_HANDLE,
                CUDA_ERROR_INVALID_VALUE);
    /* None of this is sticky; a valid launch with n = 0 works. */
    CHECK(cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, params, NULL));
    CHECK(cuCtxSynchronize());
    CHECK(cuMemFree(d));
    CHECK(cuModuleUnload(m));
    OK("invalid launch configurations -> CUDA_ERROR_INVALID_VALUE (not sticky)");
}

struct host_fn_state {
    volatile uint32_t *mapped; /* host view of the mapped buffer */
    int saw_kernel_result;
    int calls;
};

static void CUDA_CB host_fn(void *user)
{
    struct host_fn_state *s = (struct host_fn_state *)user;
    s->calls++;
    s->saw_kernel_result = 1;
    for (int i = 0; i < 32; i++) {
        if (s->mapped[i] != 20u) {
            s->saw_kernel_result = 0;
        }
    }
    usleep(20000); /* a slow host function: the copy after it must still wait for it */
    for (int i = 32; i < 64; i++) {
        s->mapped[i] = 5u; /* read by a copy enqueued after this function */
    }
}

static void test_host_func(void)
{
    CUmodule m = load_module("busy_sleep");
    CUfunction f = get_function(m, "busy_sleep");
    uint32_t *hm = NULL;
    CHECK(cuMemHostAlloc((void **)&hm, 64 * 4, CU_MEMHOSTALLOC_DEVICEMAP));
    memset(hm, 0, 64 * 4);
    CUdeviceptr dm = 0;
    CHECK(cuMemHostGetDevicePointer(&dm, hm, 0));
    CUdeviceptr dd = dalloc(32 * 4);
    CHECK(cuMemsetD32(dd, 0, 32));
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));

    struct host_fn_state st = {hm, 0, 0};
    launch_sleep(f, s, dm, 100000, 20, 32); /* writes 20 into hm[0..31] */
    CHECK(cuLaunchHostFunc(s, host_fn, &st));
    CHECK(cuMemcpyDtoDAsync(dd, dm + 32 * 4, 32 * 4, s)); /* must see the host function's writes */
    CHECK(cuStreamSynchronize(s));
    EXPECT(st.calls == 1, "host function ran %d times", st.calls);
    EXPECT(st.saw_kernel_result, "host function ran before the preceding kernel finished");
    uint32_t h[32];
    download(h, dd, sizeof h);
    for (int i = 0; i < 32; i++) {
        EXPECT(h[i] == 5u, "copy after the host function saw %u at %d (ran before it?)", h[i], i);
    }
    CHECK(cuStreamDestroy(s));
    CHECK(cuMemFreeHost(hm));
    CHECK(cuMemFree(dd));
    CHECK(cuModuleUnload(m));
    OK("cuLaunchHostFunc ordered after the kernel and before the next copy");
}

static void test_fault(void)
{
    CUmodule m = load_module("oob_write");
    CUfunction f = get_function(m, "oob_write");
    CUdeviceptr p = dalloc(4096);
    CUstream s;
    CHECK(cuStreamCreate(&s, 0));
    long long index = 1LL << 36; /* 256 GiB past the allocation */
    float value = 1.0f;
    void *params[] = {&p, &index, &value};
    CUresult lr = cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, s, params, NULL);
    EXPECT(lr == CUDA_SUCCESS || lr == CUDA_ERROR_ILLEGAL_ADDRESS, "launch -> %s", cu_name(lr));
    EXPECT_ERR(cuStreamSynchronize(s), CUDA_ERROR_ILLEGAL_ADDRESS);
    EXPECT_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
    CUdeviceptr q = 0;
    EXPECT_ERR(cuMemAlloc(&q, 64), CUDA_ERROR_ILLEGAL_ADDRESS);
    EXPECT_ERR(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL), CUDA_ERROR_ILLEGAL_ADDRESS);
    EXPECT_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
    OK("out-of-bounds write -> sticky CUDA_ERROR_ILLEGAL_ADDRESS");
}

int main(void)
{
    watchdog(300);
    CUdevice dev;
    init_primary(&dev);
    test_vector_add(0);
    test_vector_add(1);
    test_saxpy();
    test_bias_relu();
    test_sgemm();
    test_softmax();
    test_reduce_sum();
    test_grid3d();
    test_struct_param(0);
    test_struct_param(1);
    test_daxpy();
    test_busy_sleep_and_empty();
    test_invalid_configs();
    test_host_func();
    CHECK(cuCtxSynchronize());
    test_fault(); /* last: poisons the context */
    return 0;
}
