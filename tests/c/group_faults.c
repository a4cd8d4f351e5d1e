/*
 * Isolation groups as CUDA programs see them: for the broker's fault-containment tests
 * (tests/tests/groups.rs). Each mode is one tenant.
 *
 * Usage:
 *   group_faults victim          allocates 1 MiB, fills it with a pattern, prints "victim ptr=0x...",
 *                                then for each stdin line "check" verifies the memory and runs a
 *                                vector_add (printing "check ok" or "check FAILED ..."); EOF or
 *                                "quit" ends it.
 *   group_faults work            one small workload (copies, vector_add, compare): "work ok".
 *   group_faults peek PTR        a kernel reads 256 floats at the foreign address PTR (and, if
 *                                that succeeds, prints "peeked K of 256 victim values").
 *   group_faults poke PTR        a kernel writes 256 floats at the foreign address PTR.
 *   group_faults oob             a kernel writes far outside its own allocation.
 *   group_faults readonly        a kernel writes through a read-only (PROT_READ) VMM mapping.
 *   group_faults spin            a kernel that runs for minutes (busy_sleep, 2^30 iterations).
 *   group_faults nested N        loads a PTX module whose initializer nests N parentheses.
 *   group_faults huge            loads a PTX module declaring a 64 GiB .global.
 * The fault modes print "RESULT NAME" with the CUresult of the synchronisation (or of the module
 * load) and then "after NAME" for one more call (cuMemAlloc), and exit 0: the harness judges.
 */
#include "common.h"

#define SIZE (1u << 20)
#define N 256

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 13u + 5u);
}

static void result(const char *what, CUresult r)
{
    printf("%s %s\n", what, cu_name(r));
    fflush(stdout);
}

/* c = a + b on N floats; returns the launch's synchronisation result. */
static CUresult vector_add(CUdeviceptr a, CUdeviceptr b, CUdeviceptr c)
{
    CUmodule m = load_module("vector_add");
    CUfunction f = get_function(m, "vector_add");
    int n = N;
    void *params[] = {&a, &b, &c, &n};
    CUresult r = cuLaunchKernel(f, 1, 1, 1, N, 1, 1, 0, NULL, params, NULL);
    if (r == CUDA_SUCCESS) {
        r = cuCtxSynchronize();
    }
    return r;
}

static int work(void)
{
    CUdeviceptr a, b, c;
    CHECK(cuMemAlloc(&a, N * 4));
    CHECK(cuMemAlloc(&b, N * 4));
    CHECK(cuMemAlloc(&c, N * 4));
    float ha[N], hb[N], hc[N];
    for (int i = 0; i < N; i++) {
        ha[i] = (float)i;
        hb[i] = (float)(2 * i);
    }
    CHECK(cuMemcpyHtoD(a, ha, sizeof ha));
    CHECK(cuMemcpyHtoD(b, hb, sizeof hb));
    CHECK(vector_add(a, b, c));
    CHECK(cuMemcpyDtoH(hc, c, sizeof hc));
    for (int i = 0; i < N; i++) {
        if (hc[i] != (float)(3 * i)) {
            printf("work FAILED at %d\n", i);
            return 1;
        }
    }
    CHECK(cuMemFree(a));
    CHECK(cuMemFree(b));
    CHECK(cuMemFree(c));
    return 0;
}

static int victim(void)
{
    CUdeviceptr ptr = 0;
    CHECK(cuMemAlloc(&ptr, SIZE));
    unsigned char *buf = malloc(SIZE);
    EXPECT(buf != NULL, "malloc");
    for (size_t i = 0; i < SIZE; i++) {
        buf[i] = pattern(i);
    }
    CHECK(cuMemcpyHtoD(ptr, buf, SIZE));
    CHECK(cuCtxSynchronize());
    printf("victim ptr=0x%llx\n", (unsigned long long)ptr);
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL && strncmp(line, "quit", 4) != 0) {
        memset(buf, 0, SIZE);
        CUresult r = cuMemcpyDtoH(buf, ptr, SIZE);
        size_t bad = SIZE;
        for (size_t i = 0; r == CUDA_SUCCESS && i < SIZE; i++) {
            if (buf[i] != pattern(i)) {
                bad = i;
                break;
            }
        }
        if (r != CUDA_SUCCESS) {
            printf("check FAILED: %s\n", cu_name(r));
        } else if (bad != SIZE) {
            printf("check FAILED: byte %zu is 0x%02x\n", bad, buf[bad]);
        } else {
            printf(work() == 0 ? "check ok\n" : "check FAILED: work\n");
        }
        fflush(stdout);
    }
    free(buf);
    return 0;
}

/* A kernel reading (peek) or writing (poke) N floats at a foreign address. */
static int foreign(CUdeviceptr foreign_ptr, int write)
{
    CUdeviceptr own;
    CHECK(cuMemAlloc(&own, N * 4));
    CHECK(cuMemsetD32(own, 0, N));
    CUresult r = write ? vector_add(own, own, foreign_ptr) : vector_add(foreign_ptr, own, own);
    result("RESULT", r);
    if (!write && r == CUDA_SUCCESS) {
        /* What the kernel read: compared with the victim's pattern, as floats plus zero. */
        unsigned char expect[N * 4];
        float seen[N], want[N];
        for (size_t i = 0; i < sizeof expect; i++) {
            expect[i] = pattern(i);
        }
        memcpy(want, expect, sizeof want);
        CHECK(cuMemcpyDtoH(seen, own, sizeof seen));
        int same = 0;
        for (int i = 0; i < N; i++) {
            same += seen[i] == want[i] + 0.0f;
        }
        printf("peeked %d of %d victim values\n", same, N);
        fflush(stdout);
    }
    CUdeviceptr after;
    result("after", cuMemAlloc(&after, 4096));
    return 0;
}

/* A read-only VMM mapping of one granule (filled with zeros), for a kernel to write through. */
static CUdeviceptr read_only_mapping(void)
{
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    size_t g = 0;
    CHECK(cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
    CUdeviceptr va = 0;
    CHECK(cuMemAddressReserve(&va, g, 0, 0, 0));
    CUmemGenericAllocationHandle h = 0;
    CHECK(cuMemCreate(&h, g, &prop, 0));
    CHECK(cuMemMap(va, g, 0, h, 0));
    CUmemAccessDesc access;
    memset(&access, 0, sizeof access);
    access.location = prop.location;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    CHECK(cuMemSetAccess(va, g, &access, 1));
    CHECK(cuMemsetD32(va, 0, g / 4));
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READ;
    CHECK(cuMemSetAccess(va, g, &access, 1));
    return va;
}

/* A kernel writing far outside its allocation, or (read_only) through a read-only mapping. */
static int bad_write(int read_only)
{
    CUdeviceptr p;
    long long index = 1LL << 38;
    if (read_only) {
        p = read_only_mapping();
        index = 10;
    } else {
        CHECK(cuMemAlloc(&p, 4096));
    }
    CUmodule m = load_module("oob_write");
    CUfunction f = get_function(m, "oob_write");
    float value = 1.0f;
    void *params[] = {&p, &index, &value};
    CUresult r = cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, params, NULL);
    if (r == CUDA_SUCCESS) {
        r = cuCtxSynchronize();
    }
    result("RESULT", r);
    CUdeviceptr after;
    result("after", cuMemAlloc(&after, 4096));
    return 0;
}

static int spin(void)
{
    CUdeviceptr out;
    CHECK(cuMemAlloc(&out, 4096));
    CUmodule m = load_module("busy_sleep");
    CUfunction f = get_function(m, "busy_sleep");
    unsigned ns = 1000;
    int iters = 1 << 30, n = 32;
    void *params[] = {&out, &ns, &iters, &n};
    CUresult r = cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, params, NULL);
    if (r == CUDA_SUCCESS) {
        printf("spinning\n");
        fflush(stdout);
        r = cuCtxSynchronize();
    }
    result("RESULT", r);
    CUdeviceptr after;
    result("after", cuMemAlloc(&after, 4096));
    return 0;
}

/* A module whose global's initializer nests `depth` parentheses, or declares 64 GiB. */
static int hostile(int depth, int huge)
{
    size_t cap = 4096 + 2 * (size_t)depth;
    char *ptx = malloc(cap);
    EXPECT(ptx != NULL, "malloc");
    int off = snprintf(ptx, cap, ".version 8.0\n.target sm_90\n.address_size 64\n");
    if (huge) {
        off += snprintf(ptx + off, cap - off, ".global .align 4 .b8 big[68719476736];\n");
    } else {
        off += snprintf(ptx + off, cap - off, ".global .u32 g = ");
        for (int i = 0; i < depth; i++) {
            ptx[off++] = '(';
        }
        ptx[off++] = '1';
        for (int i = 0; i < depth; i++) {
            ptx[off++] = ')';
        }
        off += snprintf(ptx + off, cap - off, ";\n");
    }
    snprintf(ptx + off, cap - off, ".visible .entry k() { ret; }\n");
    CUmodule m = NULL;
    result("RESULT", cuModuleLoadData(&m, ptx));
    free(ptx);
    CUdeviceptr after;
    result("after", cuMemAlloc(&after, 4096));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: group_faults MODE [ARG]\n");
        return 2;
    }
    init_primary(NULL);
    const char *mode = argv[1];
    if (strcmp(mode, "victim") == 0) {
        return victim();
    }
    if (strcmp(mode, "work") == 0) {
        int r = work();
        if (r == 0) {
            printf("work ok\n");
        }
        return r;
    }
    if ((strcmp(mode, "peek") == 0 || strcmp(mode, "poke") == 0) && argc == 3) {
        return foreign((CUdeviceptr)strtoull(argv[2], NULL, 0), mode[1] == 'o');
    }
    if (strcmp(mode, "readonly") == 0) {
        return bad_write(1);
    }
    if (strcmp(mode, "oob") == 0) {
        return bad_write(0);
    }
    if (strcmp(mode, "spin") == 0) {
        return spin();
    }
    if (strcmp(mode, "nested") == 0 && argc == 3) {
        return hostile(atoi(argv[2]), 0);
    }
    if (strcmp(mode, "huge") == 0) {
        return hostile(0, 1);
    }
    fprintf(stderr, "group_faults: unknown mode %s\n", mode);
    return 2;
}
