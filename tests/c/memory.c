/*
 * Family d: device memory allocation, memset, memcpy (sync and async), pointer attributes.
 *
 * Semantics assumed (CUDA Driver API reference, 12.9):
 *  - cuMemAlloc(bytesize = 0) -> CUDA_ERROR_INVALID_VALUE. A request larger than the device can
 *    provide -> CUDA_ERROR_OUT_OF_MEMORY, which is not sticky: the context stays usable.
 *  - cuMemGetInfo: total equals cuDeviceTotalMem; free drops by at least the size allocated.
 *  - cuMemGetAddressRange(interior pointer) returns the allocation's base and size; an address
 *    in no allocation -> CUDA_ERROR_NOT_FOUND.
 *  - cuMemFree of anything but a live cuMemAlloc base pointer -> CUDA_ERROR_INVALID_VALUE.
 *  - cuMemset and cuMemcpy calls on a device range not inside one allocation -> CUDA_ERROR_INVALID_VALUE.
 *  - cuMemcpy (unified addressing) infers the direction from the pointers.
 *  - cuPointerGetAttribute: MEMORY_TYPE (unsigned, CU_MEMORYTYPE_DEVICE for cuMemAlloc memory),
 *    DEVICE_POINTER, CONTEXT, RANGE_START_ADDR, RANGE_SIZE, DEVICE_ORDINAL, BUFFER_ID (unique per
 *    allocation); a pointer CUDA does not know -> CUDA_ERROR_INVALID_VALUE.
 *    cuPointerGetAttributes does not fail on an unknown pointer: it returns CUDA_SUCCESS with
 *    zero/NULL values.
 */
#include "common.h"

#define MiB (1024ull * 1024ull)

static void fill_pattern(unsigned char *h, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        h[i] = (unsigned char)((i * 31u + seed * 7u + (i >> 8)) & 0xff);
    }
}

static void expect_bytes(const unsigned char *got, const unsigned char *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            FAIL_AT("%s: byte %zu is 0x%02x, want 0x%02x", what, i, got[i], want[i]);
        }
    }
}

/* Exercises memset/memcpy on `d` (size bytes) either synchronously (stream unused) or async. */
static void memset_memcpy(CUdeviceptr d, CUdeviceptr d2, size_t size, int async, CUstream s)
{
    const char *mode = async ? "async" : "sync";
    unsigned char *h = (unsigned char *)malloc(size);
    unsigned char *want = (unsigned char *)malloc(size);
    unsigned char *got = (unsigned char *)malloc(size);

    /* Zero everything, then D8 at an odd offset with an odd count. */
    memset(want, 0, size);
    if (async) {
        CHECK(cuMemsetD8Async(d, 0, size, s));
        CHECK(cuMemsetD8Async(d + 3, 0xa7, 1001, s));
    } else {
        CHECK(cuMemsetD8(d, 0, size));
        CHECK(cuMemsetD8(d + 3, 0xa7, 1001));
    }
    memset(want + 3, 0xa7, 1001);

    /* D16 at a 2-aligned offset, 333 elements. */
    if (async) {
        CHECK(cuMemsetD16Async(d + 2050, 0xbeef, 333, s));
    } else {
        CHECK(cuMemsetD16(d + 2050, 0xbeef, 333));
    }
    for (size_t i = 0; i < 333; i++) {
        uint16_t v = 0xbeef;
        memcpy(want + 2050 + 2 * i, &v, 2);
    }

    /* D32 at a 4-aligned offset, 777 elements. */
    if (async) {
        CHECK(cuMemsetD32Async(d + 4096, 0x01020304u, 777, s));
    } else {
        CHECK(cuMemsetD32(d + 4096, 0x01020304u, 777));
    }
    for (size_t i = 0; i < 777; i++) {
        uint32_t v = 0x01020304u;
        memcpy(want + 4096 + 4 * i, &v, 4);
    }

    memset(got, 0xcc, size);
    if (async) {
        CHECK(cuMemcpyDtoHAsync(got, d, size, s));
        CHECK(cuStreamSynchronize(s));
    } else {
        CHECK(cuMemcpyDtoH(got, d, size));
    }
    expect_bytes(got, want, size, async ? "memset async" : "memset sync");
    OK("%s memset D8/D16/D32 with odd offsets and counts", mode);

    /* HtoD of an odd-sized block at an odd offset, leaving the neighbours untouched. */
    fill_pattern(h, size, async ? 11u : 5u);
    if (async) {
        CHECK(cuMemcpyHtoDAsync(d + 5, h, 10007, s));
    } else {
        CHECK(cuMemcpyHtoD(d + 5, h, 10007));
    }
    memcpy(want + 5, h, 10007);
    memset(got, 0xcc, size);
    if (async) {
        CHECK(cuMemcpyDtoHAsync(got, d, size, s));
        CHECK(cuStreamSynchronize(s));
    } else {
        CHECK(cuMemcpyDtoH(got, d, size));
    }
    expect_bytes(got, want, size, "HtoD at offset 5");

    /* DtoH of an odd sub-range. */
    memset(got, 0xcc, size);
    if (async) {
        CHECK(cuMemcpyDtoHAsync(got + 1, d + 9, 3333, s));
        CHECK(cuStreamSynchronize(s));
    } else {
        CHECK(cuMemcpyDtoH(got + 1, d + 9, 3333));
    }
    expect_bytes(got + 1, want + 9, 3333, "DtoH sub-range");
    EXPECT(got[0] == 0xcc && got[3334] == 0xcc, "DtoH wrote outside its range");

    /* DtoD between allocations, odd offsets. */
    unsigned char *want2 = (unsigned char *)calloc(size, 1);
    if (async) {
        CHECK(cuMemsetD8Async(d2, 0, size, s));
        CHECK(cuMemcpyDtoDAsync(d2 + 7, d + 1, 9999, s));
        CHECK(cuMemcpyDtoHAsync(got, d2, size, s));
        CHECK(cuStreamSynchronize(s));
    } else {
        CHECK(cuMemsetD8(d2, 0, size));
        CHECK(cuMemcpyDtoD(d2 + 7, d + 1, 9999));
        CHECK(cuMemcpyDtoH(got, d2, size));
    }
    memcpy(want2 + 7, want + 1, 9999);
    expect_bytes(got, want2, size, "DtoD");

    /* DtoD within one allocation (non-overlapping). */
    if (async) {
        CHECK(cuMemcpyDtoDAsync(d + size / 2, d, 4321, s));
        CHECK(cuMemcpyDtoHAsync(got, d, size, s));
        CHECK(cuStreamSynchronize(s));
    } else {
        CHECK(cuMemcpyDtoD(d + size / 2, d, 4321));
        CHECK(cuMemcpyDtoH(got, d, size));
    }
    memmove(want + size / 2, want, 4321);
    expect_bytes(got, want, size, "DtoD within an allocation");

    /* Unified cuMemcpy / cuMemcpyAsync infer the direction. */
    fill_pattern(h, size, 99u);
    if (async) {
        CHECK(cuMemcpyAsync(d, (CUdeviceptr)(uintptr_t)h, 5000, s));
        CHECK(cuMemcpyAsync((CUdeviceptr)(uintptr_t)got, d, 5000, s));
        CHECK(cuStreamSynchronize(s));
    } else {
        CHECK(cuMemcpy(d, (CUdeviceptr)(uintptr_t)h, 5000));
        CHECK(cuMemcpy((CUdeviceptr)(uintptr_t)got, d, 5000));
    }
    expect_bytes(got, h, 5000, "unified cuMemcpy");
    OK("%s memcpy HtoD/DtoH/DtoD/unified with odd offsets and sizes", mode);

    free(want2);
    free(h);
    free(want);
    free(got);
}

int main(void)
{
    watchdog(120);
    CUdevice dev;
    CUcontext ctx = init_primary(&dev);

    size_t total_dev = 0, free0 = 0, total0 = 0, free1 = 0, total1 = 0, free2 = 0;
    CHECK(cuDeviceTotalMem(&total_dev, dev));
    CHECK(cuMemGetInfo(&free0, &total0));
    EXPECT(total0 == total_dev, "cuMemGetInfo total %zu != cuDeviceTotalMem %zu", total0, total_dev);
    EXPECT(free0 <= total0 && free0 > 0, "free %zu total %zu", free0, total0);

    const size_t big = 64 * MiB;
    CUdeviceptr p = 0;
    CHECK(cuMemAlloc(&p, big));
    EXPECT(p != 0, "cuMemAlloc returned 0");
    EXPECT(p % 256 == 0, "cuMemAlloc pointer %#llx not 256-byte aligned", (unsigned long long)p);
    CHECK(cuMemGetInfo(&free1, &total1));
    EXPECT(total1 == total0, "total changed");
    EXPECT(free1 + big <= free0, "free %zu -> %zu after a %zu-byte allocation", free0, free1, big);
    OK("cuMemGetInfo: free %zu -> %zu after 64 MiB", free0, free1);

    /* Address range of an interior pointer. */
    CUdeviceptr base = 0;
    size_t rsize = 0;
    CHECK(cuMemGetAddressRange(&base, &rsize, p + 12345));
    EXPECT(base == p && rsize == big, "range (%#llx, %zu), want (%#llx, %zu)", (unsigned long long)base,
           rsize, (unsigned long long)p, big);
    CHECK(cuMemGetAddressRange(NULL, &rsize, p + big - 1));
    EXPECT(rsize == big, "range size via last byte");
    CHECK(cuMemGetAddressRange(&base, NULL, p));
    EXPECT(base == p, "range base via base");
    EXPECT_ERR(cuMemGetAddressRange(&base, &rsize, p + big + (1ull << 40)), CUDA_ERROR_NOT_FOUND);
    OK("cuMemGetAddressRange");

    /* Pointer attributes. */
    unsigned memtype = 0;
    CUdeviceptr devptr = 0, start = 0;
    CUcontext pctx = NULL;
    size_t psize = 0;
    int ordinal = -1;
    unsigned long long id1 = 0, id2 = 0;
    CHECK(cuPointerGetAttribute(&memtype, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, p + 100));
    EXPECT(memtype == CU_MEMORYTYPE_DEVICE, "memory type %u", memtype);
    CHECK(cuPointerGetAttribute(&devptr, CU_POINTER_ATTRIBUTE_DEVICE_POINTER, p + 100));
    EXPECT(devptr == p + 100, "device pointer %#llx", (unsigned long long)devptr);
    CHECK(cuPointerGetAttribute(&pctx, CU_POINTER_ATTRIBUTE_CONTEXT, p + 100));
    EXPECT(pctx == ctx, "context %p, want %p", (void *)pctx, (void *)ctx);
    CHECK(cuPointerGetAttribute(&start, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, p + 100));
    EXPECT(start == p, "range start %#llx", (unsigned long long)start);
    CHECK(cuPointerGetAttribute(&psize, CU_POINTER_ATTRIBUTE_RANGE_SIZE, p + 100));
    EXPECT(psize == big, "range size %zu", psize);
    CHECK(cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p));
    EXPECT(ordinal == 0, "device ordinal %d", ordinal);
    CHECK(cuPointerGetAttribute(&id1, CU_POINTER_ATTRIBUTE_BUFFER_ID, p));

    CUpointer_attribute attrs[4] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_CONTEXT,
                                    CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, CU_POINTER_ATTRIBUTE_RANGE_SIZE};
    unsigned mt2 = 0;
    CUcontext c2 = NULL;
    CUdeviceptr s2 = 0;
    size_t z2 = 0;
    void *data[4] = {&mt2, &c2, &s2, &z2};
    CHECK(cuPointerGetAttributes(4, attrs, data, p + 4096));
    EXPECT(mt2 == CU_MEMORYTYPE_DEVICE && c2 == ctx && s2 == p && z2 == big,
           "cuPointerGetAttributes: type %u ctx %p start %#llx size %zu", mt2, (void *)c2,
           (unsigned long long)s2, z2);

    /* A pointer CUDA knows nothing about. */
    int stack_var = 0;
    CUdeviceptr unknown = (CUdeviceptr)(uintptr_t)&stack_var;
    EXPECT_ERR(cuPointerGetAttribute(&memtype, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, unknown),
               CUDA_ERROR_INVALID_VALUE);
    mt2 = 77;
    c2 = (CUcontext)0x1;
    CHECK(cuPointerGetAttributes(2, attrs, data, unknown));
    EXPECT(mt2 == 0 && c2 == NULL, "unknown pointer: type %u ctx %p, want 0 / NULL", mt2, (void *)c2);
    OK("pointer attributes");

    /* memset / memcpy, sync and async. */
    const size_t size = 1 * MiB + 17;
    CUdeviceptr a = 0, b = 0;
    CHECK(cuMemAlloc(&a, size));
    CHECK(cuMemAlloc(&b, size));
    CHECK(cuPointerGetAttribute(&id2, CU_POINTER_ATTRIBUTE_BUFFER_ID, a));
    EXPECT(id1 != id2, "buffer ids of two allocations are equal (%llu)", id1);
    memset_memcpy(a, b, size, 0, NULL);
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    memset_memcpy(a, b, size, 1, s);
    memset_memcpy(a, b, size, 1, NULL); /* legacy default stream */

    /* Out-of-bounds ranges. */
    unsigned char h[64] = {0};
    EXPECT_ERR(cuMemcpyHtoD(a + size - 8, h, 16), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyDtoH(h, a + size - 8, 16), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyDtoD(b, a + size - 8, 16), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyDtoD(b + size - 1, a, 2), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemsetD8(a + size - 8, 0, 16), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemsetD32(a + size - 17, 0, 8), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyHtoDAsync(a + size - 8, h, 16, s), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyHtoD(a + size + (1ull << 40), h, 4), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemcpyDtoH(h, (CUdeviceptr)0x1000, 4), CUDA_ERROR_INVALID_VALUE);
    /* None of these may have written anything or poisoned the context. */
    CHECK(cuCtxSynchronize());
    OK("out-of-bounds copies/memsets -> CUDA_ERROR_INVALID_VALUE");

    /* Bad frees. */
    EXPECT_ERR(cuMemFree((CUdeviceptr)0x1234), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemFree(a + 16), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemFree(b));
    EXPECT_ERR(cuMemFree(b), CUDA_ERROR_INVALID_VALUE);
    OK("bad cuMemFree -> CUDA_ERROR_INVALID_VALUE");

    /* Zero-size and oversized allocations. */
    CUdeviceptr z = 0;
    EXPECT_ERR(cuMemAlloc(&z, 0), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemAlloc(NULL, 16), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemAlloc(&z, total0 + 1024 * MiB), CUDA_ERROR_OUT_OF_MEMORY);
    EXPECT_ERR(cuMemAlloc(&z, (size_t)1 << 62), CUDA_ERROR_OUT_OF_MEMORY);
    CHECK(cuCtxSynchronize());
    CHECK(cuMemAlloc(&z, 4096));
    CHECK(cuMemsetD8(z, 1, 4096));
    CHECK(cuMemcpyDtoH(h, z, 64));
    EXPECT(h[0] == 1 && h[63] == 1, "context unusable after OOM");
    CHECK(cuMemFree(z));
    OK("zero-size -> INVALID_VALUE, oversized -> OUT_OF_MEMORY, context still usable");

    CHECK(cuMemFree(a));
    CHECK(cuMemFree(p));
    CHECK(cuMemGetInfo(&free2, &total1));
    EXPECT(free2 > free1, "free memory did not grow after cuMemFree (%zu -> %zu)", free1, free2);
    EXPECT_ERR(cuMemGetAddressRange(&base, &rsize, p), CUDA_ERROR_NOT_FOUND);
    CHECK(cuStreamDestroy(s));
    CHECK(cuDevicePrimaryCtxRelease(dev));
    OK("done");
    return 0;
}
