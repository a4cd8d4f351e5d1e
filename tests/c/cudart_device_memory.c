/*
 * CUDA runtime over the CPU device, part 1: device queries and memory.
 *
 * Usage: cudart_device_memory <h200|small>   (the harness sets GPUSHARE_CPU_PROFILE to match)
 *
 * Semantics assumed (CUDA Runtime API reference, 12.9):
 *  - cudaGetDeviceCount reports the driver's devices; cudaGetDeviceProperties(prop, 0) fills
 *    name, multiProcessorCount, major/minor, totalGlobalMem from the driver's attributes.
 *  - cudaDriverGetVersion reports cuDriverGetVersion (13000 here: the CPU device reports CUDA 13.0,
 *    which 12.x and 13.x runtimes accept); cudaRuntimeGetVersion is CUDART_VERSION (12090, 13000,
 *    13050: the program is compiled against each runtime).
 *  - cudaMemGetInfo: 0 < free <= total; total = cuDeviceTotalMem.
 *  - cudaMemcpy works in every cudaMemcpyKind, including cudaMemcpyDefault (UVA decides).
 *  - cudaMemset(Async) sets bytes.
 *  - cudaHostAlloc / cudaMallocHost give page-locked host memory usable by cudaMemcpyAsync;
 *    cudaFreeHost frees it; cudaPointerGetAttributes calls it cudaMemoryTypeHost.
 *  - An impossible cudaMalloc returns cudaErrorMemoryAllocation, is not sticky (the next
 *    cudaGetLastError returns it once, then cudaSuccess), and the context stays usable.
 *  - cudaSetDevice on an invalid ordinal -> cudaErrorInvalidDevice.
 * Model values: default profile "H200", 132 SMs, cc 9.0; small profile "small", 4 SMs, 1 GiB.
 */
#include "cudart_common.h"

static void test_device(const char *profile)
{
    int count = -1;
    CHECK(cudaGetDeviceCount(&count));
    EXPECT(count == 1, "count = %d", count);
    int driver = 0, runtime = 0;
    CHECK(cudaDriverGetVersion(&driver));
    CHECK(cudaRuntimeGetVersion(&runtime));
    EXPECT(driver == 13000, "driver version %d", driver);
    EXPECT(runtime == CUDART_VERSION, "runtime version %d, built against %d", runtime,
           CUDART_VERSION);
    OK("1 device, driver %d, runtime %d", driver, runtime);

    struct cudaDeviceProp prop;
    memset(&prop, 0, sizeof prop);
    CHECK(cudaGetDeviceProperties(&prop, 0));
    int small = strcmp(profile, "small") == 0;
    EXPECT(strstr(prop.name, small ? "small" : "H200") != NULL, "name %s", prop.name);
    EXPECT(prop.multiProcessorCount == (small ? 4 : 132), "SMs %d", prop.multiProcessorCount);
    EXPECT(prop.major == 9 && prop.minor == 0, "cc %d.%d", prop.major, prop.minor);
    if (small) {
        EXPECT(prop.totalGlobalMem == (size_t)1 << 30, "totalGlobalMem %zu", prop.totalGlobalMem);
    } else {
        EXPECT(prop.totalGlobalMem > ((size_t)100 << 30), "totalGlobalMem %zu", prop.totalGlobalMem);
    }
    EXPECT(prop.maxThreadsPerBlock == 1024, "maxThreadsPerBlock %d", prop.maxThreadsPerBlock);
    EXPECT(prop.warpSize == 32, "warpSize %d", prop.warpSize);
    EXPECT(prop.unifiedAddressing == 1, "unifiedAddressing %d", prop.unifiedAddressing);
    OK("properties: %s, %d SMs, cc %d.%d, %zu MiB", prop.name, prop.multiProcessorCount, prop.major,
       prop.minor, prop.totalGlobalMem >> 20);

    int sms = 0;
    CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    EXPECT(sms == prop.multiProcessorCount, "attribute SMs %d", sms);
    int dev = -1;
    CHECK(cudaSetDevice(0));
    CHECK(cudaGetDevice(&dev));
    EXPECT(dev == 0, "device %d", dev);
    EXPECT_ERR(cudaSetDevice(1), cudaErrorInvalidDevice);
    EXPECT_ERR(cudaGetLastError(), cudaErrorInvalidDevice); /* reported once, then cleared */
    EXPECT_ERR(cudaGetLastError(), cudaSuccess);
    OK("attributes, set/get device, invalid device");

    size_t free_b = 0, total_b = 0;
    CHECK(cudaMemGetInfo(&free_b, &total_b));
    EXPECT(total_b == prop.totalGlobalMem, "total %zu vs %zu", total_b, prop.totalGlobalMem);
    EXPECT(free_b > 0 && free_b <= total_b, "free %zu total %zu", free_b, total_b);
    OK("cudaMemGetInfo: %zu / %zu MiB free", free_b >> 20, total_b >> 20);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (unsigned char)(i * 31 + seed);
    }
}

static void test_memcpy(void)
{
    const size_t n = (1 << 20) + 13;
    unsigned char *h1 = malloc(n), *h2 = malloc(n), *h3 = malloc(n);
    fill(h1, n, 7);
    void *d1 = NULL, *d2 = NULL;
    CHECK(cudaMalloc(&d1, n));
    CHECK(cudaMalloc(&d2, n));
    EXPECT(d1 != NULL && d2 != NULL && d1 != d2, "pointers %p %p", d1, d2);

    CHECK(cudaMemcpy(d1, h1, n, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d2, d1, n, cudaMemcpyDeviceToDevice));
    memset(h2, 0, n);
    CHECK(cudaMemcpy(h2, d2, n, cudaMemcpyDeviceToHost));
    EXPECT(memcmp(h1, h2, n) == 0, "H2D, D2D, D2H round trip");
    memset(h3, 0, n);
    CHECK(cudaMemcpy(h3, h2, n, cudaMemcpyHostToHost));
    EXPECT(memcmp(h1, h3, n) == 0, "H2H");
    OK("cudaMemcpy H2D, D2D, D2H, H2H");

    /* cudaMemcpyDefault: the direction comes from the pointers (unified addressing). */
    fill(h1, n, 99);
    CHECK(cudaMemcpy(d1, h1, n, cudaMemcpyDefault));
    CHECK(cudaMemcpy(d2, d1, n, cudaMemcpyDefault));
    memset(h2, 0, n);
    CHECK(cudaMemcpy(h2, d2, n, cudaMemcpyDefault));
    EXPECT(memcmp(h1, h2, n) == 0, "cudaMemcpyDefault round trip");
    OK("cudaMemcpyDefault");

    /* Sub-ranges and offsets. */
    CHECK(cudaMemcpy((char *)d1 + 100, h1 + 5000, 777, cudaMemcpyHostToDevice));
    memset(h2, 0, n);
    CHECK(cudaMemcpy(h2, (char *)d1 + 100, 777, cudaMemcpyDeviceToHost));
    EXPECT(memcmp(h2, h1 + 5000, 777) == 0, "offset copy");

    /* cudaMemset, cudaMemsetAsync. */
    CHECK(cudaMemset(d1, 0xab, n));
    CHECK(cudaMemcpy(h2, d1, n, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) {
        EXPECT(h2[i] == 0xab, "memset byte %zu = %#x", i, h2[i]);
    }
    CHECK(cudaMemsetAsync((char *)d1 + 10, 0x11, 1000, 0));
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(h2, d1, 2000, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < 2000; i++) {
        unsigned char want = (i >= 10 && i < 1010) ? 0x11 : 0xab;
        EXPECT(h2[i] == want, "memsetAsync byte %zu = %#x, want %#x", i, h2[i], want);
    }
    OK("cudaMemset, cudaMemsetAsync");

    struct cudaPointerAttributes attr;
    CHECK(cudaPointerGetAttributes(&attr, d1));
    EXPECT(attr.type == cudaMemoryTypeDevice, "device pointer type %d", (int)attr.type);
    EXPECT(attr.devicePointer == d1, "devicePointer");

    CHECK(cudaFree(d1));
    CHECK(cudaFree(d2));
    CHECK(cudaFree(NULL));
    free(h1);
    free(h2);
    free(h3);
}

static void test_pinned(void)
{
    const size_t n = 4 << 20;
    unsigned char *a = NULL, *b = NULL;
    CHECK(cudaHostAlloc((void **)&a, n, cudaHostAllocDefault));
    CHECK(cudaMallocHost((void **)&b, n));
    EXPECT(a != NULL && b != NULL, "pinned pointers");
    struct cudaPointerAttributes attr;
    CHECK(cudaPointerGetAttributes(&attr, a));
    EXPECT(attr.type == cudaMemoryTypeHost, "pinned pointer type %d", (int)attr.type);
    fill(a, n, 3);
    memset(b, 0, n);

    void *d = NULL;
    CHECK(cudaMalloc(&d, n));
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    CHECK(cudaMemcpyAsync(d, a, n, cudaMemcpyHostToDevice, s));
    CHECK(cudaMemcpyAsync(b, d, n, cudaMemcpyDeviceToHost, s));
    CHECK(cudaStreamSynchronize(s));
    EXPECT(memcmp(a, b, n) == 0, "pinned async round trip");
    /* Pinned <-> pinned through the default stream, then pageable destination. */
    fill(a, n, 11);
    CHECK(cudaMemcpyAsync(d, a, n, cudaMemcpyDefault, 0));
    unsigned char *pageable = malloc(n);
    CHECK(cudaMemcpyAsync(pageable, d, n, cudaMemcpyDeviceToHost, 0));
    CHECK(cudaStreamSynchronize(0));
    EXPECT(memcmp(a, pageable, n) == 0, "pageable async destination");
    free(pageable);
    CHECK(cudaStreamDestroy(s));
    CHECK(cudaFree(d));
    CHECK(cudaFreeHost(a));
    CHECK(cudaFreeHost(b));

    unsigned char *mapped = NULL;
    CHECK(cudaHostAlloc((void **)&mapped, 4096, cudaHostAllocMapped | cudaHostAllocPortable));
    void *dev_alias = NULL;
    CHECK(cudaHostGetDevicePointer(&dev_alias, mapped, 0));
    EXPECT(dev_alias != NULL, "mapped device pointer");
    CHECK(cudaFreeHost(mapped));
    OK("pinned memory: cudaHostAlloc, cudaMallocHost, cudaMemcpyAsync, cudaFreeHost");
}

static void test_out_of_memory(void)
{
    void *p = (void *)0x1;
    size_t huge = (size_t)1 << 50; /* 1 PiB */
    EXPECT_ERR(cudaMalloc(&p, huge), cudaErrorMemoryAllocation);
    EXPECT_ERR(cudaGetLastError(), cudaErrorMemoryAllocation);
    EXPECT_ERR(cudaGetLastError(), cudaSuccess);
    /* Still usable. */
    void *d = NULL;
    CHECK(cudaMalloc(&d, 1024));
    int v = 42, back = 0;
    CHECK(cudaMemcpy(d, &v, sizeof v, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(&back, d, sizeof v, cudaMemcpyDeviceToHost));
    EXPECT(back == 42, "value after OOM %d", back);
    CHECK(cudaFree(d));
    CHECK(cudaDeviceSynchronize());
    OK("impossible cudaMalloc -> cudaErrorMemoryAllocation, context still usable");
}

int main(int argc, char **argv)
{
    watchdog(120);
    const char *profile = argc > 1 ? argv[1] : "h200";
    test_device(profile);
    test_memcpy();
    test_pinned();
    test_out_of_memory();
    printf("PASS\n");
    return 0;
}
