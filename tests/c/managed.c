/*
 * Managed memory (cuMemAllocManaged) and mapped registered memory (cuMemHostRegister DEVICEMAP)
 * as programs use them: one pointer for host and device, or a device pointer for malloc'd memory;
 * host and device see the same bytes after synchronisation.
 *
 * Semantics assumed (CUDA Driver API reference, 12.9):
 *  - cuMemAllocManaged(flags CU_MEM_ATTACH_GLOBAL or CU_MEM_ATTACH_HOST, else INVALID_VALUE;
 *    size 0 -> INVALID_VALUE) returns a pointer valid on host and device; it is freed with
 *    cuMemFree (cuMemFreeHost -> INVALID_VALUE).
 *  - CU_POINTER_ATTRIBUTE_IS_MANAGED = 1 for it, 0 for cuMemAlloc memory; its HOST_POINTER and
 *    DEVICE_POINTER are the pointer itself.
 *  - Kernel writes to managed memory are visible to the host after cuCtxSynchronize (or a stream
 *    synchronisation); host writes before a launch are visible to the kernel.
 *  - cuMemcpy* accept managed pointers on either side.
 *  - cuMemAdvise / cuMemPrefetchAsync (and their _v2 location forms) accept a managed range with
 *    an advice 1-6 and a device or host location; a range outside managed memory or an unknown
 *    advice -> INVALID_VALUE, a device that does not exist -> INVALID_DEVICE.
 *  - cuMemHostRegister(DEVICEMAP) of malloc'd memory: cuMemHostGetDevicePointer gives a device
 *    pointer kernels use; after cuMemHostUnregister the memory keeps its contents and stays
 *    usable by the host.
 */
#include "common.h"

static void launch_vector_add(CUfunction f, CUdeviceptr a, CUdeviceptr b, CUdeviceptr c, int n,
                              CUstream s)
{
    void *params[] = {&a, &b, &c, &n};
    CHECK(cuLaunchKernel(f, (unsigned)((n + 127) / 128), 1, 1, 128, 1, 1, 0, s, params, NULL));
}

static void managed_kernel_round_trip(CUfunction vadd, int n)
{
    const size_t bytes = (size_t)n * sizeof(float);
    CUdeviceptr a = 0, b = 0, c = 0;
    CHECK(cuMemAllocManaged(&a, bytes, CU_MEM_ATTACH_GLOBAL));
    CHECK(cuMemAllocManaged(&b, bytes, CU_MEM_ATTACH_GLOBAL));
    CHECK(cuMemAllocManaged(&c, bytes, CU_MEM_ATTACH_HOST));
    float *ha = (float *)(uintptr_t)a, *hb = (float *)(uintptr_t)b, *hc = (float *)(uintptr_t)c;
    for (int i = 0; i < n; i++) {
        ha[i] = (float)i;
        hb[i] = 2.0f * (float)i + 0.5f;
        hc[i] = -1.0f;
    }
    launch_vector_add(vadd, a, b, c, n, NULL);
    CHECK(cuCtxSynchronize());
    for (int i = 0; i < n; i++) {
        EXPECT(hc[i] == 3.0f * (float)i + 0.5f, "managed c[%d] = %f after the kernel", i, hc[i]);
    }
    /* The host changes an input; a second launch on a stream sees the change. */
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    for (int i = 0; i < n; i++) {
        ha[i] = 1.0f;
    }
    launch_vector_add(vadd, a, b, c, n, s);
    CHECK(cuStreamSynchronize(s));
    for (int i = 0; i < n; i++) {
        EXPECT(hc[i] == 2.0f * (float)i + 1.5f, "managed c[%d] = %f after the stream", i, hc[i]);
    }
    CHECK(cuStreamDestroy(s));
    OK("cuMemAllocManaged memory written by the host, read and written by kernels");

    /* Copies with managed pointers on either side, and with device memory. */
    CUdeviceptr d = 0;
    CHECK(cuMemAlloc(&d, bytes));
    CHECK(cuMemcpyDtoD(d, c, bytes));
    CHECK(cuMemsetD32(c, 0, (size_t)n));
    CHECK(cuMemcpyDtoH(hc, d, bytes));
    EXPECT(hc[7] == 2.0f * 7.0f + 1.5f, "DtoD from managed, DtoH into managed: %f", hc[7]);
    float *host = (float *)malloc(bytes);
    EXPECT(host != NULL, "malloc");
    CHECK(cuMemcpyDtoH(host, a, bytes));
    EXPECT(host[n - 1] == 1.0f, "DtoH from managed: %f", host[n - 1]);
    for (int i = 0; i < n; i++) {
        host[i] = (float)(n - i);
    }
    CHECK(cuMemcpyHtoD(b, host, bytes));
    EXPECT(hb[0] == (float)n && hb[n - 1] == 1.0f, "HtoD into managed: %f %f", hb[0], hb[n - 1]);
    CHECK(cuMemsetD8(a, 0, bytes));
    CHECK(cuCtxSynchronize());
    EXPECT(ha[n / 2] == 0.0f, "memset of managed memory: %f", ha[n / 2]);
    free(host);
    CHECK(cuMemFree(d));
    OK("copies and memsets with managed memory");

    CHECK(cuMemFree(a));
    CHECK(cuMemFree(b));
    CHECK(cuMemFree(c));
}

static void managed_attributes_and_errors(void)
{
    CUdeviceptr m = 0, d = 0;
    CHECK(cuMemAllocManaged(&m, 4096, CU_MEM_ATTACH_GLOBAL));
    CHECK(cuMemAlloc(&d, 4096));
    unsigned managed = 0;
    CHECK(cuPointerGetAttribute(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, m + 100));
    EXPECT(managed == 1, "IS_MANAGED of managed memory = %u", managed);
    CHECK(cuPointerGetAttribute(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, d));
    EXPECT(managed == 0, "IS_MANAGED of cuMemAlloc memory = %u", managed);
    void *hp = NULL;
    CUdeviceptr dp = 0;
    CHECK(cuPointerGetAttribute(&hp, CU_POINTER_ATTRIBUTE_HOST_POINTER, m + 8));
    CHECK(cuPointerGetAttribute(&dp, CU_POINTER_ATTRIBUTE_DEVICE_POINTER, m + 8));
    EXPECT(hp == (void *)(uintptr_t)(m + 8) && dp == m + 8, "managed host/device pointer %p %#llx",
           hp, (unsigned long long)dp);
    CUdeviceptr base = 0;
    size_t size = 0;
    CHECK(cuMemGetAddressRange(&base, &size, m + 4000));
    EXPECT(base == m && size >= 4096, "managed address range %#llx + %zu", (unsigned long long)base,
           size);
    OK("pointer attributes of managed memory");

    CUdeviceptr bad = 0;
    EXPECT_ERR(cuMemAllocManaged(&bad, 0, CU_MEM_ATTACH_GLOBAL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemAllocManaged(&bad, 4096, 0), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemAllocManaged(&bad, 4096, 0x7), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemAllocManaged(NULL, 4096, CU_MEM_ATTACH_GLOBAL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemFreeHost((void *)(uintptr_t)m), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemFree(m));
    EXPECT_ERR(cuMemFree(m), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemFree(d));
    OK("cuMemAllocManaged error cases");
}

static void registered_devicemap(CUfunction vadd, int n)
{
    const size_t bytes = (size_t)n * sizeof(float);
    /* Unaligned start and end inside ordinary heap memory, with neighbours on the same pages. */
    char *block = (char *)malloc(bytes + 64 + 8192);
    EXPECT(block != NULL, "malloc");
    float *before = (float *)block;
    float *x = (float *)(block + 64);
    float *after = (float *)(block + 64 + bytes);
    *before = 42.0f;
    *after = 43.0f;
    for (int i = 0; i < n; i++) {
        x[i] = (float)(i % 97);
    }
    CHECK(cuMemHostRegister(x, bytes, CU_MEMHOSTREGISTER_DEVICEMAP));
    EXPECT(*before == 42.0f && *after == 43.0f && x[96] == 96.0f,
           "contents changed by cuMemHostRegister");
    CUdeviceptr dx = 0;
    CHECK(cuMemHostGetDevicePointer(&dx, x, 0));
    CUdeviceptr d = 0;
    CHECK(cuMemAlloc(&d, bytes));
    CHECK(cuMemsetD32(d, 0x3f800000u, (size_t)n)); /* 1.0f */
    /* x = x + 1 through the device pointer; the host sees it after synchronisation. */
    launch_vector_add(vadd, dx, d, dx, n, NULL);
    CHECK(cuCtxSynchronize());
    for (int i = 0; i < n; i++) {
        EXPECT(x[i] == (float)(i % 97) + 1.0f, "registered x[%d] = %f after the kernel", i, x[i]);
    }
    EXPECT(*before == 42.0f && *after == 43.0f, "neighbours of the registered range changed");
    /* The host writes; the device reads the new bytes. */
    x[5] = 1000.0f;
    float back = 0.0f;
    CHECK(cuMemcpyDtoH(&back, dx + 5 * sizeof(float), sizeof(float)));
    EXPECT(back == 1000.0f, "a host write seen by the device: %f", back);
    CHECK(cuMemHostUnregister(x));
    /* After unregistering, the memory is the program's, with its contents. */
    EXPECT(x[5] == 1000.0f && x[6] == 7.0f, "contents after cuMemHostUnregister: %f %f", x[5], x[6]);
    x[6] = 8.0f;
    EXPECT(x[6] == 8.0f, "write after cuMemHostUnregister");
    free(block);
    CHECK(cuMemFree(d));
    OK("cuMemHostRegister(DEVICEMAP) of malloc'd memory used by a kernel");
}

/* Hints about managed memory: accepted on managed ranges, refused elsewhere; data unchanged. */
static void managed_hints(void)
{
    CUdeviceptr m, d;
    CHECK(cuMemAllocManaged(&m, 1 << 20, CU_MEM_ATTACH_GLOBAL));
    CHECK(cuMemAlloc(&d, 4096));
    ((int *)(uintptr_t)m)[7] = 1234;
    CUmemLocation dev0 = {CU_MEM_LOCATION_TYPE_DEVICE, 0}, host = {CU_MEM_LOCATION_TYPE_HOST, 0};
    CUmemLocation dev9 = {CU_MEM_LOCATION_TYPE_DEVICE, 9};
    CHECK(cuMemAdvise_v2(m, 1 << 20, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, dev0));
    CHECK(cuMemAdvise_v2(m, 4096, CU_MEM_ADVISE_SET_ACCESSED_BY, host));
    CHECK(cuMemAdvise(m, 4096, CU_MEM_ADVISE_SET_READ_MOSTLY, 0));
    CHECK(cuMemAdvise(m, 4096, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, CU_DEVICE_CPU));
    EXPECT_ERR(cuMemAdvise_v2(m, 4096, (CUmem_advise)9, dev0), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemAdvise_v2(m, 4096, CU_MEM_ADVISE_SET_PREFERRED_LOCATION, dev9),
               CUDA_ERROR_INVALID_DEVICE);
    EXPECT_ERR(cuMemAdvise_v2(d, 4096, CU_MEM_ADVISE_SET_READ_MOSTLY, dev0),
               CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemAdvise_v2(m, (1 << 20) + 1, CU_MEM_ADVISE_SET_READ_MOSTLY, dev0),
               CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemPrefetchAsync_v2(m, 1 << 20, dev0, 0, NULL));
    CHECK(cuMemPrefetchAsync(m, 4096, CU_DEVICE_CPU, NULL));
    EXPECT_ERR(cuMemPrefetchAsync_v2(m, 4096, dev0, 1, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemPrefetchAsync(d, 4096, 0, NULL), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuCtxSynchronize());
    EXPECT(((int *)(uintptr_t)m)[7] == 1234, "data after hints: %d", ((int *)(uintptr_t)m)[7]);
    CHECK(cuMemFree(m));
    CHECK(cuMemFree(d));
    OK("cuMemAdvise and cuMemPrefetchAsync (v1 and _v2) on managed memory");
}

int main(void)
{
    watchdog(120);
    CUdevice dev;
    init_primary(&dev);
    int managed_ok = 0;
    CHECK(cuDeviceGetAttribute(&managed_ok, CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY, dev));
    EXPECT(managed_ok == 1, "CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY = %d", managed_ok);
    CUmodule m = load_module("vector_add");
    CUfunction vadd = get_function(m, "vector_add");

    managed_kernel_round_trip(vadd, 100000);
    managed_attributes_and_errors();
    registered_devicemap(vadd, 50000);
    managed_hints();

    CHECK(cuModuleUnload(m));
    CHECK(cuDevicePrimaryCtxRelease(dev));
    return 0;
}
