/*
 * The kernel corpus (examples/kernels) on whatever libcuda.so.1 the loader finds: each kernel is
 * launched once on fixed pseudo-random inputs and its output buffer is written, raw, to
 * OUT_DIR/<name>.<type> (type f32, f64 or u32), with one line per kernel on stdout:
 *     <name> <type> <count> fnv1a=<hash of the bytes>
 * scripts/gpu-check/compare.py holds two such directories against each other (the real GPU
 * against the CPU device): exactly and with a tolerance. oob_write is left out (it faults).
 *
 * Usage: corpus OUT_DIR      (GPUSHARE_KERNELS_DIR = examples/kernels)
 * Built by `scripts/gpu-check.sh prepare` with tests/c/common.h.
 */
#include "common.h"

static const char *out_dir;

static void emit(const char *name, const char *type, const void *data, size_t count, size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%s", out_dir, name, type);
    FILE *f = fopen(path, "wb");
    EXPECT(f != NULL, "cannot write %s", path);
    EXPECT(fwrite(data, size, count, f) == count, "short write to %s", path);
    fclose(f);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < count * size; i++) {
        h = (h ^ ((const unsigned char *)data)[i]) * 1099511628211ull;
    }
    printf("%s %s %zu fnv1a=%016llx\n", name, type, count, (unsigned long long)h);
    fflush(stdout);
}

static CUdeviceptr upload(const void *host, size_t bytes)
{
    CUdeviceptr d;
    CHECK(cuMemAlloc(&d, bytes));
    CHECK(cuMemcpyHtoD(d, host, bytes));
    return d;
}

static CUdeviceptr zeros(size_t bytes)
{
    CUdeviceptr d;
    CHECK(cuMemAlloc(&d, bytes));
    CHECK(cuMemsetD8(d, 0, bytes));
    return d;
}

static float *randoms(size_t n, uint32_t seed, float lo, float hi)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i] = frand(&seed, lo, hi);
    }
    return v;
}

/* Launches F, waits, and downloads `bytes` of `out` into host memory. */
static void *run_f(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned bz, unsigned shared, void **params, CUdeviceptr out, size_t bytes)
{
    CHECK(cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shared, NULL, params, NULL));
    CHECK(cuCtxSynchronize());
    void *host = malloc(bytes);
    CHECK(cuMemcpyDtoH(host, out, bytes));
    return host;
}

/* run_f on the kernel NAME of a fresh load of examples/kernels/MODULE.ptx. */
#define run(module, name, ...) run_f(get_function(load_module(module), name), __VA_ARGS__)

#define N 4096

static void elementwise(void)
{
    float *a = randoms(N, 1, -4, 4), *b = randoms(N, 2, -4, 4);
    CUdeviceptr da = upload(a, N * 4), db = upload(b, N * 4), dc = zeros(N * 4);
    int n = N;
    void *p1[] = {&da, &db, &dc, &n};
    emit("vector_add", "f32", run("vector_add", "vector_add", N / 256, 1, 1, 256, 1, 1, 0, p1, dc, N * 4), N, 4);
    float alpha = 1.75f;
    void *p2[] = {&alpha, &da, &db, &n};
    emit("saxpy", "f32", run("saxpy", "saxpy", 7, 1, 1, 128, 1, 1, 0, p2, db, N * 4), N, 4);
    int rows = 64, cols = 64;
    CUdeviceptr bias = upload(b, cols * 4);
    void *p3[] = {&da, &bias, &dc, &rows, &cols};
    emit("bias_relu", "f32", run("bias_relu", "bias_relu", 4, 8, 1, 16, 8, 1, 0, p3, dc, N * 4), N, 4);
    void *p4[] = {&da, &dc, &rows, &cols};
    emit("softmax_rows", "f32", run("softmax_rows", "softmax_rows", 16, 1, 1, 128, 1, 1, 0, p4, dc, N * 4), N, 4);
}

static void sgemm(void)
{
    int m = 96, n = 80, k = 112;
    float *a = randoms((size_t)m * k, 3, -1, 1), *b = randoms((size_t)k * n, 4, -1, 1);
    CUdeviceptr da = upload(a, (size_t)m * k * 4), db = upload(b, (size_t)k * n * 4);
    CUdeviceptr dc = zeros((size_t)m * n * 4);
    void *p[] = {&da, &db, &dc, &m, &n, &k};
    emit("sgemm_tiled", "f32",
         run("sgemm_tiled", "sgemm_tiled", (n + 15) / 16, (m + 15) / 16, 1, 16, 16, 1, 0, p, dc, (size_t)m * n * 4),
         (size_t)m * n, 4);
}

static void reduce(void)
{
    int n = 100000;
    float *x = randoms((size_t)n, 5, 0, 1);
    CUdeviceptr dx = upload(x, (size_t)n * 4), dout = zeros(4);
    void *p[] = {&dx, &dout, &n};
    emit("reduce_sum", "f32", run("reduce_sum", "reduce_sum", 40, 1, 1, 256, 1, 1, 256 * 4, p, dout, 4), 1, 4);
}

static void grid3d(void)
{
    int nx = 20, ny = 12, nz = 6;
    size_t count = (size_t)nx * ny * nz;
    CUdeviceptr out = zeros(count * 4), tid = zeros(count * 4);
    void *p[] = {&out, &tid, &nx, &ny, &nz};
    emit("grid3d", "u32", run("grid3d", "grid3d", 3, 3, 2, 8, 4, 4, 0, p, out, count * 4), count, 4);
    void *t = malloc(count * 4);
    CHECK(cuMemcpyDtoH(t, tid, count * 4));
    emit("grid3d_tid", "u32", t, count, 4);
}

static void struct_param(void)
{
    struct {
        float scale;
        int offset;
        float bias[4];
    } s = {0.5f, 3, {0.25f, -1.0f, 2.5f, 8.0f}};
    float *x = randoms(N, 6, -2, 2);
    CUdeviceptr din = upload(x, N * 4), dout = zeros(N * 4);
    int n = N;
    void *p[] = {&s, &din, &dout, &n};
    emit("struct_param", "f32", run("struct_param", "struct_param", N / 128, 1, 1, 128, 1, 1, 0, p, dout, N * 4), N, 4);
}

static void daxpy(void)
{
    double x[N], y[N];
    uint32_t seed = 7;
    for (int i = 0; i < N; i++) {
        x[i] = frand(&seed, -3, 3);
        y[i] = frand(&seed, 0, 9);
    }
    CUdeviceptr dx = upload(x, sizeof x), dy = upload(y, sizeof y);
    double a = 0.3125;
    int n = N;
    void *p[] = {&a, &dx, &dy, &n};
    emit("daxpy_f64", "f64", run("daxpy_f64", "daxpy_f64", N / 256, 1, 1, 256, 1, 1, 0, p, dy, sizeof y), N, 8);
}

static void misc(void)
{
    CUdeviceptr out = zeros(64 * 4);
    unsigned ns = 1000;
    int iters = 5, n = 64;
    void *p1[] = {&out, &ns, &iters, &n};
    emit("busy_sleep", "u32", run("busy_sleep", "busy_sleep", 1, 1, 1, 64, 1, 1, 0, p1, out, 64 * 4), 64, 4);
    CUfunction empty = get_function(load_module("empty_kernel"), "empty_kernel");
    CHECK(cuLaunchKernel(empty, 3, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL));
    CHECK(cuCtxSynchronize());
    printf("empty_kernel ok\n");
    CUmodule g = load_module("device_global");
    int delta = 5;
    void *p2[] = {&delta};
    CHECK(cuLaunchKernel(get_function(g, "bump_counter"), 1, 1, 1, 1, 1, 1, 0, NULL, p2, NULL));
    int m = 16;
    CUdeviceptr dt = zeros(16 * 4);
    void *p3[] = {&dt, &m};
    emit("device_global", "f32", run_f(get_function(g, "read_table"), 1, 1, 1, 16, 1, 1, 0, p3, dt, 16 * 4), 16, 4);
}

int main(int argc, char **argv)
{
    EXPECT(argc == 2, "usage: corpus OUT_DIR");
    out_dir = argv[1];
    init_primary(NULL);
    elementwise();
    sgemm();
    reduce();
    grid3d();
    struct_param();
    daxpy();
    misc();
    printf("corpus done\n");
    return 0;
}
