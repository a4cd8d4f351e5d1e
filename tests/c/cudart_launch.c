/*
 * CUDA runtime over the CPU device, part 3: libraries and launches.
 *
 * Semantics assumed (CUDA Runtime API reference, 12.9):
 *  - cudaLibraryLoadData accepts NUL-terminated PTX (and fatbins); cudaLibraryGetKernel finds an
 *    entry by name; cudaLaunchKernel accepts the cudaKernel_t (cast to const void *) in place of
 *    a host function symbol. cudaLibraryGetKernel for a missing name -> cudaErrorSymbolNotFound.
 *  - Kernel arguments are passed as an array of pointers to each argument.
 *  - An invalid launch configuration (more than 1024 threads per block, a zero dimension) makes
 *    cudaLaunchKernel return cudaErrorInvalidConfiguration (libcudart 12; libcudart 13 passes the
 *    launch to the driver and returns cudaErrorInvalidValue); the error is not sticky:
 *    cudaGetLastError returns it once and then cudaSuccess, cudaPeekAtLastError does not clear
 *    it, and later launches work.
 *  - Dynamic shared memory is the launch's sharedMem argument.
 *  - cudaFuncGetAttributes on a kernel reports maxThreadsPerBlock and the like.
 */
#include "cudart_common.h"

static cudaLibrary_t load_library(const char *name)
{
    char *ptx = kernel_ptx(name, NULL);
    cudaLibrary_t lib = NULL;
    CHECK(cudaLibraryLoadData(&lib, ptx, NULL, NULL, 0, NULL, NULL, 0));
    free(ptx);
    return lib;
}

static void test_vector_add(void)
{
    cudaLibrary_t lib = load_library("vector_add");
    cudaKernel_t k = NULL;
    CHECK(cudaLibraryGetKernel(&k, lib, "vector_add"));
    cudaKernel_t missing = NULL;
    EXPECT_ERR(cudaLibraryGetKernel(&missing, lib, "no_such_kernel"), cudaErrorSymbolNotFound);
    EXPECT_ERR(cudaGetLastError(), cudaErrorSymbolNotFound);

    const int n = 100000;
    size_t bytes = (size_t)n * sizeof(float);
    float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    uint32_t seed = 1;
    for (int i = 0; i < n; i++) {
        a[i] = frand(&seed, -10.0f, 10.0f);
        b[i] = frand(&seed, -10.0f, 10.0f);
    }
    float *da, *db, *dc;
    CHECK(cudaMalloc((void **)&da, bytes));
    CHECK(cudaMalloc((void **)&db, bytes));
    CHECK(cudaMalloc((void **)&dc, bytes));
    CHECK(cudaMemcpy(da, a, bytes, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(db, b, bytes, cudaMemcpyHostToDevice));
    CHECK(cudaMemset(dc, 0, bytes));
    void *args[] = {&da, &db, &dc, (void *)&n};
    dim3 block = {256, 1, 1}, grid = {(unsigned)((n + 255) / 256), 1, 1};
    CHECK(cudaLaunchKernel((const void *)k, grid, block, args, 0, 0));
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(c, dc, bytes, cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
        EXPECT(c[i] == a[i] + b[i], "c[%d] = %f, want %f", i, c[i], a[i] + b[i]);
    }
    OK("cudaLibraryLoadData + cudaLibraryGetKernel + cudaLaunchKernel: vector_add, n = %d", n);

    struct cudaFuncAttributes fa;
    CHECK(cudaFuncGetAttributes(&fa, (const void *)k));
    EXPECT(fa.maxThreadsPerBlock >= 256, "maxThreadsPerBlock %d", fa.maxThreadsPerBlock);
    OK("cudaFuncGetAttributes: maxThreadsPerBlock %d, %d regs", fa.maxThreadsPerBlock, fa.numRegs);

    /* Invalid configurations: reported, not sticky. libcudart 12 rejects a block over the limit
     * and an empty grid itself (cudaErrorInvalidConfiguration); libcudart 13 leaves both to
     * cuLaunchKernel and reports the driver's CUDA_ERROR_INVALID_VALUE as cudaErrorInvalidValue. */
#if CUDART_VERSION >= 13000
    const cudaError_t bad_config_err = cudaErrorInvalidValue;
#else
    const cudaError_t bad_config_err = cudaErrorInvalidConfiguration;
#endif
    dim3 too_big = {1025, 1, 1}, zero = {0, 1, 1};
    EXPECT_ERR(cudaLaunchKernel((const void *)k, grid, too_big, args, 0, 0), bad_config_err);
    EXPECT_ERR(cudaPeekAtLastError(), bad_config_err);
    EXPECT_ERR(cudaGetLastError(), bad_config_err);
    EXPECT_ERR(cudaGetLastError(), cudaSuccess);
    EXPECT_ERR(cudaLaunchKernel((const void *)k, zero, block, args, 0, 0), bad_config_err);
    EXPECT_ERR(cudaGetLastError(), bad_config_err);
    EXPECT_ERR(cudaGetLastError(), cudaSuccess);
    /* A later launch (on a created stream) works. */
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    CHECK(cudaMemsetAsync(dc, 0, bytes, s));
    CHECK(cudaLaunchKernel((const void *)k, grid, block, args, 0, s));
    CHECK(cudaStreamSynchronize(s));
    CHECK(cudaMemcpy(c, dc, bytes, cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i += 97) {
        EXPECT(c[i] == a[i] + b[i], "after errors: c[%d] = %f", i, c[i]);
    }
    CHECK(cudaStreamDestroy(s));
    OK("invalid launch configurations reported by cudaGetLastError, then cleared");

    CHECK(cudaFree(da));
    CHECK(cudaFree(db));
    CHECK(cudaFree(dc));
    free(a);
    free(b);
    free(c);
    CHECK(cudaLibraryUnload(lib));
}

static void test_dynamic_shared_and_fatbin(void)
{
    /* reduce_sum from a fatbin image: dynamic shared memory = blockDim.x * 4 bytes. */
    char *ptx = kernel_ptx("reduce_sum", NULL);
    size_t fat_size = 0;
    unsigned char *fat = build_fatbin(ptx, &fat_size);
    free(ptx);
    cudaLibrary_t lib = NULL;
    CHECK(cudaLibraryLoadData(&lib, fat, NULL, NULL, 0, NULL, NULL, 0));
    cudaKernel_t k = NULL;
    CHECK(cudaLibraryGetKernel(&k, lib, "reduce_sum"));
    const int n = 1 << 16;
    float *h = malloc((size_t)n * sizeof(float));
    double want = 0.0;
    for (int i = 0; i < n; i++) {
        h[i] = (float)(i % 17) * 0.5f;
        want += h[i];
    }
    float *din, *dout;
    CHECK(cudaMalloc((void **)&din, (size_t)n * sizeof(float)));
    CHECK(cudaMalloc((void **)&dout, sizeof(float)));
    CHECK(cudaMemcpy(din, h, (size_t)n * sizeof(float), cudaMemcpyHostToDevice));
    CHECK(cudaMemset(dout, 0, sizeof(float)));
    void *args[] = {&din, &dout, (void *)&n};
    dim3 block = {256, 1, 1}, grid = {64, 1, 1};
    CHECK(cudaLaunchKernel((const void *)k, grid, block, args, 256 * sizeof(float), 0));
    float got = 0.0f;
    CHECK(cudaMemcpy(&got, dout, sizeof got, cudaMemcpyDeviceToHost));
    EXPECT(fabs(got - want) < 1e-3 * want, "sum %f, want %f", got, want);
    OK("fatbin library, dynamic shared memory: reduce_sum = %.1f", got);
    CHECK(cudaFree(din));
    CHECK(cudaFree(dout));
    CHECK(cudaLibraryUnload(lib));
    free(h);
    free(fat);
}

int main(void)
{
    watchdog(120);
    test_vector_add();
    test_dynamic_shared_and_fatbin();
    printf("PASS\n");
    return 0;
}
