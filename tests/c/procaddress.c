/*
 * Family l: cuGetProcAddress (v2 and v1 signatures) and exported-but-unimplemented entry points.
 *
 * Semantics assumed (CUDA Driver API reference 12.9, "Driver Entry Point Access", and the
 * versioned typedefs of cudaTypedefs.h, e.g. PFN_cuMemAlloc_v2000 / PFN_cuMemAlloc_v3020):
 *  - cuGetProcAddress_v2(symbol, &pfn, cudaVersion, flags, &status) returns the newest ABI
 *    variant of `symbol` introduced at or before cudaVersion: cuMemAlloc @ 12090 -> cuMemAlloc_v2
 *    (3020); cuMemAlloc @ 2000 -> cuMemAlloc (v1).
 *  - CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM selects the per-thread variant where one exists
 *    (cuMemcpyHtoDAsync -> cuMemcpyHtoDAsync_v2_ptsz, cuMemcpy -> cuMemcpy_ptds, cuLaunchKernel
 *    -> cuLaunchKernel_ptsz, ...), else the legacy one. CU_GET_PROC_ADDRESS_LEGACY_STREAM and
 *    (for the driver API) CU_GET_PROC_ADDRESS_DEFAULT select the legacy variant.
 *  - Unknown symbol: *pfn = NULL, status CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND. Symbol introduced
 *    after cudaVersion: *pfn = NULL, status CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT. The
 *    documentation says the call itself returns CUDA_SUCCESS in these cases (some drivers return
 *    CUDA_ERROR_NOT_FOUND; both accepted). NULL symbol or pfn -> CUDA_ERROR_INVALID_VALUE.
 *  - It works before cuInit (the CUDA runtime uses it to find cuInit).
 *  - The returned pointer is the driver's entry point, which is what dlsym finds under the
 *    exported name.
 * Implementation contract (gpushare CPU device, not real-CUDA behaviour): entry points that are
 * exported but not implemented return CUDA_ERROR_NOT_SUPPORTED (checked with cuTexObjectCreate).
 */
#include "common.h"

#include <dlfcn.h>

typedef CUresult(CUDAAPI *get_proc_v1_t)(const char *, void **, int, cuuint64_t);
typedef CUresult(CUDAAPI *init_t)(unsigned int);
typedef CUresult(CUDAAPI *mem_alloc_v2_t)(CUdeviceptr *, size_t);
typedef CUresult(CUDAAPI *mem_free_v2_t)(CUdeviceptr);

static void *g_lib;

static void *sym(const char *name)
{
    dlerror();
    void *p = dlsym(g_lib, name);
    EXPECT(p != NULL, "dlsym(%s): %s", name, dlerror());
    return p;
}

/* Looks `symbol` up at `version` with `flags` and expects the entry point exported as `want`. */
static void expect_proc(const char *symbol, int version, cuuint64_t flags, const char *want)
{
    void *pfn = NULL;
    CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)99;
    CHECK(cuGetProcAddress(symbol, &pfn, version, flags, &st));
    EXPECT(st == CU_GET_PROC_ADDRESS_SUCCESS, "%s @%d flags %llu: status %d", symbol, version,
           (unsigned long long)flags, (int)st);
    void *expected = sym(want);
    EXPECT(pfn == expected, "%s @%d flags %llu: got %p, want %s = %p", symbol, version, (unsigned long long)flags,
           pfn, want, expected);
}

static void expect_missing(const char *symbol, int version, CUdriverProcAddressQueryResult want_status)
{
    void *pfn = (void *)0x1;
    CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)99;
    CUresult r = cuGetProcAddress(symbol, &pfn, version, CU_GET_PROC_ADDRESS_DEFAULT, &st);
    EXPECT(r == CUDA_SUCCESS || r == CUDA_ERROR_NOT_FOUND, "%s @%d -> %s", symbol, version, cu_name(r));
    EXPECT(pfn == NULL, "%s @%d: pfn %p, want NULL", symbol, version, pfn);
    EXPECT(st == want_status, "%s @%d: status %d, want %d", symbol, version, (int)st, (int)want_status);
}

int main(void)
{
    watchdog(60);
    g_lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    EXPECT(g_lib != NULL, "libcuda.so.1 is not loaded: %s", dlerror());

    /* Before cuInit. */
    void *pfn = NULL;
    CUdriverProcAddressQueryResult st;
    CHECK(cuGetProcAddress("cuInit", &pfn, 12090, CU_GET_PROC_ADDRESS_DEFAULT, &st));
    EXPECT(st == CU_GET_PROC_ADDRESS_SUCCESS && pfn == sym("cuInit"), "cuInit lookup before cuInit");
    CHECK(((init_t)pfn)(0));
    OK("cuGetProcAddress(cuInit) before cuInit, called through the pointer");

    CUdevice dev;
    init_primary(&dev);

    /* Versioned variants. */
    expect_proc("cuMemAlloc", 12090, CU_GET_PROC_ADDRESS_DEFAULT, "cuMemAlloc_v2");
    expect_proc("cuMemAlloc", 3020, CU_GET_PROC_ADDRESS_DEFAULT, "cuMemAlloc_v2");
    expect_proc("cuMemAlloc", 2000, CU_GET_PROC_ADDRESS_DEFAULT, "cuMemAlloc");
    expect_proc("cuMemFree", 12090, CU_GET_PROC_ADDRESS_DEFAULT, "cuMemFree_v2");
    expect_proc("cuStreamDestroy", 12090, CU_GET_PROC_ADDRESS_DEFAULT, "cuStreamDestroy_v2");
    expect_proc("cuMemcpyHtoD", 12090, CU_GET_PROC_ADDRESS_LEGACY_STREAM, "cuMemcpyHtoD_v2");
    expect_proc("cuGetProcAddress", 12090, CU_GET_PROC_ADDRESS_DEFAULT, "cuGetProcAddress_v2");
    expect_proc("cuGetProcAddress", 11030, CU_GET_PROC_ADDRESS_DEFAULT, "cuGetProcAddress");
    expect_proc("cuDriverGetVersion", 12090, CU_GET_PROC_ADDRESS_DEFAULT, "cuDriverGetVersion");
    OK("versioned lookups (cuMemAlloc @12090 -> _v2, @2000 -> v1)");

    /* The pointer works. */
    CHECK(cuGetProcAddress("cuMemAlloc", &pfn, 12090, 0, NULL)); /* status is optional */
    CUdeviceptr d = 0;
    CHECK(((mem_alloc_v2_t)pfn)(&d, 4096));
    EXPECT(d != 0, "allocation through the looked-up pointer");
    CHECK(cuGetProcAddress("cuMemFree", &pfn, 12090, 0, NULL));
    CHECK(((mem_free_v2_t)pfn)(d));

    /* Per-thread default stream variants. */
    const cuuint64_t PT = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
    const cuuint64_t LEG = CU_GET_PROC_ADDRESS_LEGACY_STREAM;
    expect_proc("cuMemcpyHtoDAsync", 12090, PT, "cuMemcpyHtoDAsync_v2_ptsz");
    expect_proc("cuMemcpyHtoDAsync", 12090, LEG, "cuMemcpyHtoDAsync_v2");
    expect_proc("cuMemcpyHtoDAsync", 12090, CU_GET_PROC_ADDRESS_DEFAULT, "cuMemcpyHtoDAsync_v2");
    expect_proc("cuMemcpyDtoHAsync", 12090, PT, "cuMemcpyDtoHAsync_v2_ptsz");
    expect_proc("cuMemcpyHtoD", 12090, PT, "cuMemcpyHtoD_v2_ptds");
    expect_proc("cuMemcpy", 12090, PT, "cuMemcpy_ptds");
    expect_proc("cuMemcpy", 12090, LEG, "cuMemcpy");
    expect_proc("cuMemcpyAsync", 12090, PT, "cuMemcpyAsync_ptsz");
    expect_proc("cuLaunchKernel", 12090, PT, "cuLaunchKernel_ptsz");
    expect_proc("cuLaunchKernel", 12090, LEG, "cuLaunchKernel");
    expect_proc("cuStreamSynchronize", 12090, PT, "cuStreamSynchronize_ptsz");
    expect_proc("cuStreamQuery", 12090, PT, "cuStreamQuery_ptsz");
    expect_proc("cuEventRecord", 12090, PT, "cuEventRecord_ptsz");
    expect_proc("cuMemsetD32Async", 12090, PT, "cuMemsetD32Async_ptsz");
    expect_proc("cuMemAlloc", 12090, PT, "cuMemAlloc_v2"); /* no per-thread variant: legacy one */
    OK("per-thread default stream variants (_ptsz / _ptds)");

    /* Not found / version not sufficient. */
    expect_missing("cuDoesNotExist", 12090, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    expect_missing("cuMemCreate", 10000, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT); /* since 10.2 */
    expect_missing("cuLibraryLoadData", 11080, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT); /* since 12.0 */
    expect_missing("cuMemcpy", 3020, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT); /* since 4.0 */
    expect_proc("cuMemCreate", 10020, CU_GET_PROC_ADDRESS_DEFAULT, "cuMemCreate");
    EXPECT_ERR(cuGetProcAddress(NULL, &pfn, 12090, 0, &st), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuGetProcAddress("cuMemAlloc", NULL, 12090, 0, &st), CUDA_ERROR_INVALID_VALUE);
    OK("unknown symbol -> SYMBOL_NOT_FOUND, too-old version -> VERSION_NOT_SUFFICIENT");

    /* The v1 signature (exported as "cuGetProcAddress"). */
    get_proc_v1_t v1 = (get_proc_v1_t)sym("cuGetProcAddress");
    pfn = NULL;
    CHECK(v1("cuMemAlloc", &pfn, 12090, 0));
    EXPECT(pfn == sym("cuMemAlloc_v2"), "v1 cuGetProcAddress(cuMemAlloc) = %p", pfn);
    CHECK(v1("cuLaunchKernel", &pfn, 12090, PT));
    EXPECT(pfn == sym("cuLaunchKernel_ptsz"), "v1 cuGetProcAddress(cuLaunchKernel, PTDS) = %p", pfn);
    pfn = (void *)0x1;
    CUresult r = v1("cuDoesNotExist", &pfn, 12090, 0);
    EXPECT((r == CUDA_SUCCESS || r == CUDA_ERROR_NOT_FOUND) && pfn == NULL, "v1 unknown symbol -> %s, %p",
           cu_name(r), pfn);
    OK("cuGetProcAddress (v1 signature)");

    /* Implementation contract: exported-but-unimplemented entry points say NOT_SUPPORTED. */
    CUtexObject tex = 0;
    CUDA_RESOURCE_DESC res;
    CUDA_TEXTURE_DESC td;
    memset(&res, 0, sizeof res);
    memset(&td, 0, sizeof td);
    EXPECT_ERR(cuTexObjectCreate(&tex, &res, &td, NULL), CUDA_ERROR_NOT_SUPPORTED);
    CHECK(cuGetProcAddress("cuTexObjectCreate", &pfn, 12090, 0, &st));
    EXPECT(pfn == sym("cuTexObjectCreate"), "cuTexObjectCreate lookup");
    CHECK(cuCtxSynchronize());
    OK("unimplemented entry point -> CUDA_ERROR_NOT_SUPPORTED, context unaffected");

    CHECK(cuDevicePrimaryCtxRelease(dev));
    return 0;
}
