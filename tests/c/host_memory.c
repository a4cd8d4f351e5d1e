/*
 * Family e: page-locked host memory: cuMemHostAlloc, cuMemAllocHost, cuMemHostRegister.
 *
 * Semantics assumed (CUDA Driver API reference, 12.9):
 *  - cuMemHostAlloc(CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP) returns host memory that
 *    kernels can access. With unified addressing (CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING = 1) the
 *    device pointer of cuMemHostAlloc/cuMemAllocHost memory is the host pointer itself, and
 *    cuMemHostGetDevicePointer returns it; its Flags argument must be 0 (else INVALID_VALUE).
 *  - cuMemHostGetFlags returns the flags given to cuMemHostAlloc.
 *  - cuMemHostRegister(DEVICEMAP) page-locks existing memory (any alignment since CUDA 4.1);
 *    registering it again -> CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED; unregistering memory that is
 *    not registered -> CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED.
 *  - Pointer attributes of page-locked memory: CU_MEMORYTYPE_HOST, HOST_POINTER = the pointer.
 *  - cuMemFreeHost of memory not from cuMemHostAlloc/cuMemAllocHost -> CUDA_ERROR_INVALID_VALUE.
 *  - Page-locked memory is resident from its allocation on (the driver pins its pages): before
 *    the program touches it, mincore(2) reports every page in memory and /proc/self/pagemap every
 *    page present in this process's page tables (so its first use takes no page faults).
 *  - gpushare's own choice, not CUDA's (so checked on the CPU device only, directly or through
 *    the shim): the CPU device's page-locked buffers of 2 MiB and more
 *    ask for huge pages (madvise MADV_HUGEPAGE), so their pages cost a fault per 2 MiB. Checked
 *    where the host gives them to private memory that asks (transparent_hugepage/enabled is
 *    "madvise"; /proc/self/smaps "THPeligible"). The shim's buffers are shared memory (a memfd),
 *    which does not ask (docs/cpu-device.md, "Memory").
 */
#include "common.h"

#include <sys/mman.h>

static void launch_vector_add(CUfunction f, CUdeviceptr a, CUdeviceptr b, CUdeviceptr c, int n)
{
    void *params[] = {&a, &b, &c, &n};
    CHECK(cuLaunchKernel(f, (unsigned)((n + 127) / 128), 1, 1, 128, 1, 1, 0, NULL, params, NULL));
}

static void expect_host_memtype(void *p, const char *what)
{
    unsigned mt = 0;
    void *hp = NULL;
    CHECK(cuPointerGetAttribute(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)(uintptr_t)p));
    EXPECT(mt == CU_MEMORYTYPE_HOST, "%s: memory type %u, want CU_MEMORYTYPE_HOST", what, mt);
    CHECK(cuPointerGetAttribute(&hp, CU_POINTER_ATTRIBUTE_HOST_POINTER, (CUdeviceptr)(uintptr_t)p));
    EXPECT(hp == p, "%s: host pointer %p, want %p", what, hp, p);
}

/* Every page of `bytes` at `p`, none of them touched by this program, is resident (mincore) and
 * present in this process's page tables (/proc/self/pagemap, bit 63). */
static void expect_resident(void *p, size_t bytes, const char *what)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = (bytes + page - 1) / page, in = 0;
    unsigned char *vec = calloc(pages, 1);
    uint64_t *map = calloc(pages, sizeof *map);
    EXPECT(vec != NULL && map != NULL, "calloc");
    EXPECT(mincore(p, bytes, vec) == 0, "%s: mincore: %s", what, strerror(errno));
    for (size_t i = 0; i < pages; i++) {
        in += vec[i] & 1;
    }
    EXPECT(in == pages, "%s: %zu of %zu pages resident before first use", what, in, pages);
    FILE *f = fopen("/proc/self/pagemap", "rb");
    EXPECT(f != NULL, "/proc/self/pagemap: %s", strerror(errno));
    EXPECT(fseek(f, (long)((uintptr_t)p / page * sizeof *map), SEEK_SET) == 0 &&
               fread(map, sizeof *map, pages, f) == pages,
           "reading /proc/self/pagemap");
    fclose(f);
    size_t present = 0;
    for (size_t i = 0; i < pages; i++) {
        present += (size_t)(map[i] >> 63);
    }
    EXPECT(present == pages, "%s: %zu of %zu pages mapped here before first use", what, present,
           pages);
    free(map);
    free(vec);
}

/* True when the file `path` holds `word` (e.g. "[madvise]"). */
static int file_has(const char *path, const char *word)
{
    char buf[256] = {0};
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, word) != NULL;
}

/* The mapping holding `p`, if private, may have huge pages where the host allows it. */
static void expect_huge_page_eligible(void *p, const char *what)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    EXPECT(f != NULL, "/proc/self/smaps: %s", strerror(errno));
    char line[512];
    int inside = 0, shared = 0, eligible = -1;
    while (eligible < 0 && fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            shared = strstr(line, "memfd:") != NULL;
        } else if (inside && strncmp(line, "THPeligible:", 12) == 0) {
            eligible = atoi(line + 12);
        }
    }
    fclose(f);
    if (!shared && file_has("/sys/kernel/mm/transparent_hugepage/enabled", "[madvise]")) {
        EXPECT(eligible == 1, "%s: no huge pages asked for (THPeligible %d)", what, eligible);
    }
}

/* Page-locked memory is resident once allocated, before the program touches it. */
static void page_locked_is_resident(void)
{
    const size_t bytes = (size_t)4 << 20;
    void *a = NULL, *b = NULL;
    CHECK(cuMemAllocHost(&a, bytes));
    expect_resident(a, bytes, "cuMemAllocHost");
    CHECK(cuMemHostAlloc(&b, bytes, CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP));
    expect_resident(b, bytes, "cuMemHostAlloc");
    char name[256] = {0};
    CHECK(cuDeviceGetName(name, sizeof name, 0));
    if (strstr(name, "gpushare CPU device") != NULL) { /* a GPU driver's choice is its own */
        expect_huge_page_eligible(a, "cuMemAllocHost");
        expect_huge_page_eligible(b, "cuMemHostAlloc");
    }
    CHECK(cuMemFreeHost(a));
    CHECK(cuMemFreeHost(b));
    OK("page-locked memory is resident from its allocation on");
}

/* cuMemHostAlloc, mapped: used by a kernel and by copies; allocates *dd_out, the device buffer the
 * later sections share. */
static void mapped_host_alloc(CUfunction vadd, CUdeviceptr *dd_out, int n)
{
    const size_t bytes = (size_t)n * sizeof(float);
    float *ha = NULL, *hb = NULL, *hc = NULL;
    CHECK(cuMemHostAlloc((void **)&ha, bytes, CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP));
    CHECK(cuMemHostAlloc((void **)&hb, bytes, CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP));
    CHECK(cuMemHostAlloc((void **)&hc, bytes, CU_MEMHOSTALLOC_DEVICEMAP));
    EXPECT(ha && hb && hc, "NULL host allocation");
    unsigned fl = 0;
    CHECK(cuMemHostGetFlags(&fl, ha));
    EXPECT((fl & (CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP)) ==
               (CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP),
           "cuMemHostGetFlags = %#x", fl);
    for (int i = 0; i < n; i++) {
        ha[i] = (float)i;
        hb[i] = 0.5f * (float)i + 1.0f;
        hc[i] = -1.0f;
    }
    CUdeviceptr da = 0, db = 0, dc = 0;
    CHECK(cuMemHostGetDevicePointer(&da, ha, 0));
    CHECK(cuMemHostGetDevicePointer(&db, hb, 0));
    CHECK(cuMemHostGetDevicePointer(&dc, hc, 0));
    EXPECT(da == (CUdeviceptr)(uintptr_t)ha, "UVA: device pointer %#llx != host pointer %p",
           (unsigned long long)da, (void *)ha);
    EXPECT_ERR(cuMemHostGetDevicePointer(&da, ha, 1), CUDA_ERROR_INVALID_VALUE);
    expect_host_memtype(ha, "cuMemHostAlloc");

    /* A kernel reads and writes mapped host memory directly. */
    launch_vector_add(vadd, da, db, dc, n);
    CHECK(cuCtxSynchronize());
    for (int i = 0; i < n; i++) {
        EXPECT(hc[i] == ha[i] + hb[i], "mapped vector_add c[%d] = %f", i, hc[i]);
    }
    OK("cuMemHostAlloc(PORTABLE|DEVICEMAP) memory used by a kernel");

    /* Copies from/to pinned memory (as a plain host pointer). */
    CUdeviceptr dd = 0;
    CHECK(cuMemAlloc(&dd, bytes));
    *dd_out = dd;
    CHECK(cuMemcpyHtoD(dd, ha, bytes));
    memset(hc, 0, bytes);
    CHECK(cuMemcpyDtoH(hc, dd, bytes));
    EXPECT(memcmp(hc, ha, bytes) == 0, "pinned HtoD/DtoH round trip");
    /* ... and with the device pointer of mapped memory as a DtoD source. */
    CHECK(cuMemsetD32(dd, 0, (size_t)n));
    CHECK(cuMemcpyDtoD(dd, db, bytes));
    CHECK(cuMemcpyDtoH(hc, dd, bytes));
    EXPECT(memcmp(hc, hb, bytes) == 0, "DtoD from mapped host memory");
    OK("memcpy with cuMemHostAlloc memory");

    CHECK(cuMemFreeHost(ha));
    CHECK(cuMemFreeHost(hb));
    CHECK(cuMemFreeHost(hc));
}

/* cuMemAllocHost / cuMemFreeHost: a round trip through `dd`. */
static void alloc_host(CUdeviceptr dd, int n)
{
    const size_t bytes = (size_t)n * sizeof(float);
    float *pinned = NULL;
    CHECK(cuMemAllocHost((void **)&pinned, bytes));
    EXPECT(pinned != NULL, "cuMemAllocHost NULL");
    for (int i = 0; i < n; i++) {
        pinned[i] = 3.0f * (float)i;
    }
    expect_host_memtype(pinned, "cuMemAllocHost");
    CHECK(cuMemcpyHtoD(dd, pinned, bytes));
    memset(pinned, 0, bytes);
    CHECK(cuMemcpyDtoH(pinned, dd, bytes));
    for (int i = 0; i < n; i++) {
        EXPECT(pinned[i] == 3.0f * (float)i, "cuMemAllocHost round trip [%d] = %f", i, pinned[i]);
    }
    CUdeviceptr dpinned = 0;
    CHECK(cuMemHostGetDevicePointer(&dpinned, pinned, 0));
    EXPECT(dpinned == (CUdeviceptr)(uintptr_t)pinned, "UVA: cuMemAllocHost device pointer");
    CHECK(cuMemFreeHost(pinned));
    OK("cuMemAllocHost / cuMemFreeHost");
}

/* cuMemHostRegister on malloc'd memory: used by a kernel (saxpy) and a copy, then the error
 * cases. */
static void host_register(CUfunction saxpy, CUdeviceptr dd, int n)
{
    const size_t bytes = (size_t)n * sizeof(float);
    float *reg = (float *)malloc(bytes + 3 * sizeof(float));
    float *y = (float *)malloc(bytes);
    EXPECT(reg && y, "malloc");
    float *x = reg + 3; /* deliberately not page aligned */
    for (int i = 0; i < n; i++) {
        x[i] = (float)(i % 100);
        y[i] = 1.0f;
    }
    CHECK(cuMemHostRegister(x, bytes, CU_MEMHOSTREGISTER_DEVICEMAP));
    EXPECT_ERR(cuMemHostRegister(x, bytes, CU_MEMHOSTREGISTER_DEVICEMAP),
               CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
    expect_host_memtype(x, "cuMemHostRegister");
    CUdeviceptr dx = 0;
    CHECK(cuMemHostGetDevicePointer(&dx, x, 0));
    EXPECT(dx != 0, "registered device pointer 0");

    /* saxpy: y_dev = 2 * x(registered, via dx) + y_dev */
    CHECK(cuMemcpyHtoD(dd, y, bytes));
    float a = 2.0f;
    void *params[] = {&a, &dx, &dd, (void *)&n};
    CHECK(cuLaunchKernel(saxpy, 8, 1, 1, 256, 1, 1, 0, NULL, params, NULL));
    CHECK(cuMemcpyDtoH(y, dd, bytes));
    for (int i = 0; i < n; i++) {
        EXPECT(y[i] == 2.0f * (float)(i % 100) + 1.0f, "saxpy with registered x: y[%d] = %f", i, y[i]);
    }
    /* A device-side write into registered memory is visible to the host after synchronisation. */
    CHECK(cuMemsetD32(dd, 0x40490fdbu, (size_t)n)); /* 3.14159274f */
    CHECK(cuMemcpyDtoD(dx, dd, bytes));
    CHECK(cuCtxSynchronize());
    for (int i = 0; i < n; i++) {
        EXPECT(x[i] == 3.14159274f, "registered x[%d] = %f after DtoD", i, x[i]);
    }
    OK("cuMemHostRegister(DEVICEMAP) memory used by a kernel and a copy");

    CHECK(cuMemHostUnregister(x));
    EXPECT_ERR(cuMemHostUnregister(x), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED);
    unsigned mt = 0;
    EXPECT_ERR(cuPointerGetAttribute(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)(uintptr_t)x),
               CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemHostRegister(x, 0, 0), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuMemFreeHost(y), CUDA_ERROR_INVALID_VALUE);
    OK("register/unregister error cases");
    free(reg);
    free(y);
}

int main(void)
{
    watchdog(120);
    CUdevice dev;
    init_primary(&dev);
    CUmodule m = load_module("vector_add");
    CUfunction vadd = get_function(m, "vector_add");
    CUmodule ms = load_module("saxpy");
    CUfunction saxpy = get_function(ms, "saxpy");

    const int n = 10000;
    CUdeviceptr dd = 0;
    mapped_host_alloc(vadd, &dd, n);
    alloc_host(dd, n);
    host_register(saxpy, dd, n);
    page_locked_is_resident();

    CHECK(cuMemFree(dd));
    CHECK(cuModuleUnload(m));
    CHECK(cuModuleUnload(ms));
    CHECK(cuDevicePrimaryCtxRelease(dev));
    return 0;
}
