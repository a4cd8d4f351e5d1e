/*
 * Family f: virtual memory management (cuMemCreate / cuMemMap / cuMemSetAccess ...).
 *
 * Semantics assumed (CUDA Driver API reference, 12.9, "Virtual Memory Management"):
 *  - cuMemGetAllocationGranularity for pinned device memory: minimum and recommended
 *    granularity are 2 MiB on this device.
 *  - cuMemAddressReserve / cuMemCreate / cuMemMap sizes must be multiples of the granularity,
 *    else CUDA_ERROR_INVALID_VALUE. cuMemMap's offset "currently must be zero".
 *  - Memory is only accessible after cuMemSetAccess; PROT_READWRITE allows copies and kernel
 *    reads/writes. A kernel writing through a PROT_READ mapping faults: the launch itself may
 *    succeed, the next synchronisation returns CUDA_ERROR_ILLEGAL_ADDRESS, and the error is
 *    sticky: every later call in that context (cuMemAlloc, cuCtxSynchronize) returns it too.
 *  - cuMemExportToShareableHandle(POSIX_FILE_DESCRIPTOR) writes an int file descriptor owned by
 *    the caller (requires requestedHandleTypes to include it at cuMemCreate).
 *  - cuMemRetainAllocationHandle(va) returns a handle (to be released) for a mapped address.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/stat.h>

#define MiB (1024ull * 1024ull)

static CUmemAllocationProp device_prop(CUmemAllocationHandleType handles)
{
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    prop.requestedHandleTypes = handles;
    return prop;
}

static CUmemAccessDesc access_desc(CUmemAccess_flags flags)
{
    CUmemAccessDesc d;
    memset(&d, 0, sizeof d);
    d.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    d.location.id = 0;
    d.flags = flags;
    return d;
}

int main(void)
{
    watchdog(120);
    CUdevice dev;
    init_primary(&dev);
    CUmodule m = load_module("vector_add");
    CUfunction vadd = get_function(m, "vector_add");
    CUmodule mo = load_module("oob_write");
    CUfunction oob = get_function(mo, "oob_write");

    CUmemAllocationProp prop = device_prop(CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
    size_t gmin = 0, grec = 0;
    CHECK(cuMemGetAllocationGranularity(&gmin, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
    CHECK(cuMemGetAllocationGranularity(&grec, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
    EXPECT(gmin == 2 * MiB, "minimum granularity %zu", gmin);
    EXPECT(grec == 2 * MiB, "recommended granularity %zu", grec);
    EXPECT_ERR(cuMemGetAllocationGranularity(&gmin, NULL, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
               CUDA_ERROR_INVALID_VALUE);
    OK("granularity %zu / %zu", gmin, grec);

    const size_t g = gmin;
    const size_t size = 2 * g;

    /* Reserve, create, map, set access. */
    CUdeviceptr va = 0;
    CHECK(cuMemAddressReserve(&va, size, 0, 0, 0));
    EXPECT(va != 0 && va % g == 0, "reserved va %#llx not aligned to %zu", (unsigned long long)va, g);
    CUmemGenericAllocationHandle h = 0;
    CHECK(cuMemCreate(&h, size, &prop, 0));
    CHECK(cuMemMap(va, size, 0, h, 0));
    CUmemAccessDesc rw = access_desc(CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
    CHECK(cuMemSetAccess(va, size, &rw, 1));
    unsigned long long acc_flags = 0;
    CUmemLocation loc = {CU_MEM_LOCATION_TYPE_DEVICE, 0};
    CHECK(cuMemGetAccess(&acc_flags, &loc, va));
    EXPECT(acc_flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE, "cuMemGetAccess = %llu", acc_flags);
    OK("reserve/create/map/set access");

    /* Copies through the mapping. */
    const int n = (int)(size / sizeof(float) / 2); /* a and b in the two halves */
    float *ha = (float *)malloc(size);
    float *hout = (float *)malloc(size);
    for (int i = 0; i < 2 * n; i++) {
        ha[i] = (float)(i % 1000) * 0.5f;
    }
    CHECK(cuMemcpyHtoD(va, ha, size));
    memset(hout, 0, size);
    CHECK(cuMemcpyDtoH(hout, va, size));
    EXPECT(memcmp(ha, hout, size) == 0, "HtoD/DtoH through a VMM mapping");
    /* An odd-offset copy spanning the boundary between the two granules. */
    CHECK(cuMemcpyDtoH(hout, va + g - 6, 13));
    EXPECT(memcmp(hout, (char *)ha + g - 6, 13) == 0, "copy across granules");

    /* A kernel through the mapping: c (device memory) = a + b (both in the mapping). */
    CUdeviceptr c = 0;
    CHECK(cuMemAlloc(&c, (size_t)n * sizeof(float)));
    CUdeviceptr a = va, b = va + (CUdeviceptr)n * sizeof(float);
    void *params[] = {&a, &b, &c, (void *)&n};
    CHECK(cuLaunchKernel(vadd, (unsigned)((n + 255) / 256), 1, 1, 256, 1, 1, 0, NULL, params, NULL));
    CHECK(cuMemcpyDtoH(hout, c, (size_t)n * sizeof(float)));
    for (int i = 0; i < n; i++) {
        float want = ha[i] + ha[n + i];
        EXPECT(hout[i] == want, "vector_add via VMM [%d] = %f, want %f", i, hout[i], want);
    }
    OK("memcpy and a kernel through a VMM mapping");

    unsigned mt = 0;
    CHECK(cuPointerGetAttribute(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, va + 100));
    EXPECT(mt == CU_MEMORYTYPE_DEVICE, "VMM memory type %u", mt);

    CUmemAllocationProp got;
    memset(&got, 0, sizeof got);
    CHECK(cuMemGetAllocationPropertiesFromHandle(&got, h));
    EXPECT(got.type == CU_MEM_ALLOCATION_TYPE_PINNED && got.location.type == CU_MEM_LOCATION_TYPE_DEVICE &&
               got.location.id == 0,
           "properties type %d loc %d/%d", (int)got.type, (int)got.location.type, got.location.id);
    EXPECT(got.requestedHandleTypes & CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, "handle types %d",
           (int)got.requestedHandleTypes);
    CUmemGenericAllocationHandle h2 = 0;
    CHECK(cuMemRetainAllocationHandle(&h2, (void *)(uintptr_t)(va + 4096)));
    CHECK(cuMemRelease(h2));
    OK("pointer attributes, allocation properties, retain handle");

    /* Export to a POSIX file descriptor. */
    int fd = -1;
    CHECK(cuMemExportToShareableHandle(&fd, h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0));
    EXPECT(fd >= 0, "exported fd %d", fd);
    struct stat st;
    EXPECT(fstat(fd, &st) == 0, "fstat(exported fd): %s", strerror(errno));
    EXPECT(close(fd) == 0, "close(exported fd)");
    OK("cuMemExportToShareableHandle -> fd");

    /* Size/offset errors. */
    CUmemGenericAllocationHandle hb = 0;
    CUdeviceptr vb = 0;
    EXPECT_ERR(cuMemCreate(&hb, g + 4096, &prop, 0), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemCreate(&hb, 0, &prop, 0), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemAddressReserve(&vb, g + 1, 0, 0, 0), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemAddressReserve(&vb, size, 0, 0, 0));
    EXPECT_ERR(cuMemMap(vb, size, g, h, 0), CUDA_ERROR_INVALID_VALUE);     /* offset != 0 */
    EXPECT_ERR(cuMemMap(vb, g + 4096, 0, h, 0), CUDA_ERROR_INVALID_VALUE); /* size not a multiple */
    CHECK(cuMemAddressFree(vb, size));
    OK("sizes that are not granularity multiples -> CUDA_ERROR_INVALID_VALUE");

    CHECK(cuMemUnmap(va, size));
    CHECK(cuMemRelease(h));
    CHECK(cuMemAddressFree(va, size));
    CHECK(cuCtxSynchronize());
    OK("unmap/release/free");

    /* Read-only mapping: reads work, a kernel write faults and poisons the context. */
    CUmemAllocationProp prop0 = device_prop(CU_MEM_HANDLE_TYPE_NONE);
    CUmemGenericAllocationHandle hr = 0;
    CUdeviceptr vr = 0;
    CHECK(cuMemAddressReserve(&vr, g, 0, 0, 0));
    CHECK(cuMemCreate(&hr, g, &prop0, 0));
    CHECK(cuMemMap(vr, g, 0, hr, 0));
    CHECK(cuMemSetAccess(vr, g, &rw, 1));
    CHECK(cuMemsetD32(vr, 0x3f800000u, g / 4)); /* 1.0f */
    CUmemAccessDesc ro = access_desc(CU_MEM_ACCESS_FLAGS_PROT_READ);
    CHECK(cuMemSetAccess(vr, g, &ro, 1));
    CHECK(cuMemGetAccess(&acc_flags, &loc, vr));
    EXPECT(acc_flags == CU_MEM_ACCESS_FLAGS_PROT_READ, "cuMemGetAccess = %llu after PROT_READ", acc_flags);
    float f4[4] = {0};
    CHECK(cuMemcpyDtoH(f4, vr + 64, sizeof f4));
    EXPECT(f4[0] == 1.0f && f4[3] == 1.0f, "read through PROT_READ mapping");
    CHECK(cuCtxSynchronize());
    OK("PROT_READ mapping readable");

    CUdeviceptr target = vr;
    long long index = 10;
    float value = 42.0f;
    void *oparams[] = {&target, &index, &value};
    CUresult lr = cuLaunchKernel(oob, 1, 1, 1, 32, 1, 1, 0, NULL, oparams, NULL);
    EXPECT(lr == CUDA_SUCCESS || lr == CUDA_ERROR_ILLEGAL_ADDRESS, "launch -> %s", cu_name(lr));
    EXPECT_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
    CUdeviceptr after = 0;
    EXPECT_ERR(cuMemAlloc(&after, 1024), CUDA_ERROR_ILLEGAL_ADDRESS);
    EXPECT_ERR(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
    EXPECT_ERR(cuMemcpyDtoH(f4, vr, sizeof f4), CUDA_ERROR_ILLEGAL_ADDRESS);
    OK("write through PROT_READ mapping -> sticky CUDA_ERROR_ILLEGAL_ADDRESS");

    free(ha);
    free(hout);
    return 0;
}
