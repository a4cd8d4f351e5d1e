/*
 * Per-tenant bounds on driver objects and module globals charged to the memory quota, as a
 * tenant of the broker sees them (tests/tests/limits.rs runs this through the shim with a
 * policy that sets small bounds).
 *
 * Modes:
 *   objects S E M LIMITED [hold]
 *       creates S streams, E events and M modules (empty_kernel); with LIMITED=1 the next one
 *       of each fails with CUDA_ERROR_OUT_OF_MEMORY (CUDA's answer when it has no room), the
 *       session still works (alloc, memset, copy, synchronise), and destroying one object makes
 *       room for one more; with LIMITED=0 every creation succeeds. "hold" prints "at limits"
 *       and waits for a line on stdin before cleaning up.
 *   module_bytes N
 *       N loads of empty_kernel fit max_module_bytes, the next fails with OUT_OF_MEMORY;
 *       unloading one makes room again.
 *   globals QUOTA_MIB
 *       under a memory quota of QUOTA_MIB: a module whose .global is bigger than the quota
 *       fails with OUT_OF_MEMORY and charges nothing (cuMemGetInfo's free is unchanged); one of
 *       a quarter of the quota loads and is charged (an allocation of what was free now fails),
 *       and unloading it gives the bytes back.
 *   host_fns N
 *       with host functions gated behind a first one that blocks, N are accepted and the next
 *       fails: the stream's synchronisation returns CUDA_ERROR_OUT_OF_MEMORY (an asynchronous
 *       error: cuLaunchHostFunc itself returns before the broker counts it).
 *   hold_modules N
 *       loads N modules, prints "loaded", waits for a line on stdin and exits without unloading
 *       them (the broker frees them when the session ends): for measuring the broker's memory.
 *   pinned N
 *       N page-locked buffers of 1 MiB (cuMemHostAlloc) fit max_pinned_bytes, the next fails
 *       with OUT_OF_MEMORY (CUDA's answer when it cannot pin), the buffers held still work (a
 *       round trip through the device), and freeing one makes room for one more.
 */
#include "common.h"

#include <pthread.h>

#define MAX_OBJECTS 256

/* A small module's PTX (empty_kernel), loaded from the corpus once. */
static const char *empty_ptx(void)
{
    static char *ptx = NULL;
    if (ptx == NULL) {
        ptx = kernel_ptx("empty_kernel");
    }
    return ptx;
}

/* Alloc, memset, copy back and synchronise: the session still works. */
static void session_works(void)
{
    CUdeviceptr d = 0;
    CHECK(cuMemAlloc(&d, 4096));
    CHECK(cuMemsetD32(d, 0x5a5a5a5au, 1024));
    uint32_t h[4] = {0};
    CHECK(cuMemcpyDtoH(h, d, sizeof h));
    EXPECT(h[3] == 0x5a5a5a5au, "memset result %#x", h[3]);
    CHECK(cuCtxSynchronize());
    CHECK(cuMemFree(d));
}

static void objects(int ns, int ne, int nm, int limited, int hold)
{
    static CUstream s[MAX_OBJECTS];
    static CUevent e[MAX_OBJECTS];
    static CUmodule m[MAX_OBJECTS];
    EXPECT(ns < MAX_OBJECTS && ne < MAX_OBJECTS && nm < MAX_OBJECTS, "too many objects");
    for (int i = 0; i < ns; i++) {
        CHECK(cuStreamCreate(&s[i], CU_STREAM_NON_BLOCKING));
    }
    for (int i = 0; i < ne; i++) {
        CHECK(cuEventCreate(&e[i], CU_EVENT_DISABLE_TIMING));
    }
    for (int i = 0; i < nm; i++) {
        CHECK(cuModuleLoadData(&m[i], empty_ptx()));
    }
    if (limited) {
        CUstream xs;
        CUevent xe;
        CUmodule xm;
        /* Twice each: the refusal repeats (and is logged once). */
        for (int k = 0; k < 2; k++) {
            EXPECT_ERR(cuStreamCreate(&xs, CU_STREAM_NON_BLOCKING), CUDA_ERROR_OUT_OF_MEMORY);
            EXPECT_ERR(cuEventCreate(&xe, 0), CUDA_ERROR_OUT_OF_MEMORY);
            EXPECT_ERR(cuModuleLoadData(&xm, empty_ptx()), CUDA_ERROR_OUT_OF_MEMORY);
        }
        OK("past the bounds: OUT_OF_MEMORY");
    }
    session_works();
    if (hold) {
        printf("at limits\n");
        fflush(stdout);
        char line[64];
        if (fgets(line, sizeof line, stdin) == NULL) {
            FAIL_AT("stdin closed");
        }
    }
    if (limited && ns > 0 && ne > 0 && nm > 0) {
        CHECK(cuStreamDestroy(s[0]));
        CHECK(cuEventDestroy(e[0]));
        CHECK(cuModuleUnload(m[0]));
        CHECK(cuStreamCreate(&s[0], 0));
        CHECK(cuEventCreate(&e[0], 0));
        CHECK(cuModuleLoadData(&m[0], empty_ptx()));
        CUfunction f = get_function(m[0], "empty_kernel");
        (void)f;
        OK("destroying one of each makes room for one more");
    }
    session_works();
    for (int i = 0; i < ns; i++) {
        CHECK(cuStreamDestroy(s[i]));
    }
    for (int i = 0; i < ne; i++) {
        CHECK(cuEventDestroy(e[i]));
    }
    for (int i = 0; i < nm; i++) {
        CHECK(cuModuleUnload(m[i]));
    }
    OK("objects %d %d %d", ns, ne, nm);
}

static void module_bytes(int n)
{
    static CUmodule m[MAX_OBJECTS];
    EXPECT(n < MAX_OBJECTS, "too many modules");
    for (int i = 0; i < n; i++) {
        CHECK(cuModuleLoadData(&m[i], empty_ptx()));
    }
    CUmodule x;
    EXPECT_ERR(cuModuleLoadData(&x, empty_ptx()), CUDA_ERROR_OUT_OF_MEMORY);
    session_works();
    CHECK(cuModuleUnload(m[0]));
    CHECK(cuModuleLoadData(&m[0], empty_ptx()));
    for (int i = 0; i < n; i++) {
        CHECK(cuModuleUnload(m[i]));
    }
    OK("module_bytes %d", n);
}

/* PTX with one .global of `bytes` bytes and a kernel that writes its first word. */
static char *global_ptx(size_t bytes)
{
    char *ptx = NULL;
    if (asprintf(&ptx,
                 ".version 8.0\n.target sm_80\n.address_size 64\n"
                 ".visible .global .align 8 .b8 big[%zu];\n"
                 ".visible .entry touch()\n{\n .reg .b32 %%r;\n mov.u32 %%r, 7;\n"
                 " st.global.u32 [big], %%r;\n ret;\n}\n",
                 bytes) < 0) {
        FAIL_AT("asprintf");
    }
    return ptx;
}

static void globals(size_t quota_mib)
{
    const size_t quota = quota_mib << 20;
    size_t free0 = 0, total = 0;
    CHECK(cuMemGetInfo(&free0, &total));
    EXPECT(total == quota, "cuMemGetInfo total %zu, the quota is %zu", total, quota);
    CUmodule m;
    char *huge = global_ptx(quota + (quota / 2));
    EXPECT_ERR(cuModuleLoadData(&m, huge), CUDA_ERROR_OUT_OF_MEMORY);
    size_t free1 = 0;
    CHECK(cuMemGetInfo(&free1, &total));
    EXPECT(free1 == free0, "a refused module charged %zu bytes", free0 - free1);
    OK("a .global above the quota: OUT_OF_MEMORY, nothing charged");

    const size_t quarter = quota / 4;
    char *small = global_ptx(quarter);
    CHECK(cuModuleLoadData(&m, small));
    size_t free2 = 0;
    CHECK(cuMemGetInfo(&free2, &total));
    EXPECT(free0 - free2 == quarter, "the module's .global charged %zu bytes, declared %zu",
           free0 - free2, quarter);
    CUdeviceptr d = 0;
    EXPECT_ERR(cuMemAlloc(&d, free0 - (2u << 20)), CUDA_ERROR_OUT_OF_MEMORY);
    CUfunction f = get_function(m, "touch");
    CHECK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
    CUdeviceptr g = 0;
    size_t gsize = 0;
    CHECK(cuModuleGetGlobal(&g, &gsize, m, "big"));
    uint32_t word = 0;
    CHECK(cuMemcpyDtoH(&word, g, sizeof word));
    EXPECT(word == 7 && gsize == quarter, "global word %u size %zu", word, gsize);
    CHECK(cuModuleUnload(m));
    size_t free3 = 0;
    CHECK(cuMemGetInfo(&free3, &total));
    EXPECT(free3 == free0, "unloading gave back %zu of %zu bytes", free3 - free2, quarter);
    CHECK(cuMemAlloc(&d, free0 - (2u << 20)));
    CHECK(cuMemFree(d));
    free(huge);
    free(small);
    OK("a .global within the quota is charged at load and given back at unload");
}

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open = 0;
static int host_calls = 0;

static void CUDA_CB blocker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate_mu);
    while (!gate_open) {
        pthread_cond_wait(&gate_cv, &gate_mu);
    }
    host_calls++;
    pthread_mutex_unlock(&gate_mu);
}

static void CUDA_CB counter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate_mu);
    host_calls++;
    pthread_mutex_unlock(&gate_mu);
}

static void host_fns(int n)
{
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CHECK(cuLaunchHostFunc(s, blocker, NULL));
    for (int i = 1; i < n; i++) {
        CHECK(cuLaunchHostFunc(s, counter, NULL));
    }
    /* One past the bound: accepted by the shim, refused by the broker. */
    CHECK(cuLaunchHostFunc(s, counter, NULL));
    sleep_ms(300);
    pthread_mutex_lock(&gate_mu);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    EXPECT_ERR(cuStreamSynchronize(s), CUDA_ERROR_OUT_OF_MEMORY);
    pthread_mutex_lock(&gate_mu);
    int calls = host_calls;
    pthread_mutex_unlock(&gate_mu);
    EXPECT(calls == n, "%d host functions ran, %d were accepted", calls, n);
    OK("host_fns %d: the one past the bound failed with OUT_OF_MEMORY", n);
}

static void pinned(int n)
{
    const size_t mib = (size_t)1 << 20;
    void *buf[MAX_OBJECTS] = {0}, *extra = NULL;
    EXPECT(n > 0 && n < MAX_OBJECTS, "pinned %d: 1 .. %d", n, MAX_OBJECTS - 1);
    for (int i = 0; i < n; i++) {
        CHECK(cuMemHostAlloc(&buf[i], mib, 0));
    }
    EXPECT_ERR(cuMemHostAlloc(&extra, mib, 0), CUDA_ERROR_OUT_OF_MEMORY);
    CUdeviceptr d;
    CHECK(cuMemAlloc(&d, mib));
    memset(buf[0], 0x5a, mib);
    CHECK(cuMemcpyHtoD(d, buf[0], mib));
    CHECK(cuMemcpyDtoH(buf[n - 1], d, mib));
    EXPECT(((unsigned char *)buf[n - 1])[mib - 1] == 0x5a, "round trip through held buffers");
    CHECK(cuMemFreeHost(buf[0]));
    CHECK(cuMemHostAlloc(&buf[0], mib, 0));
    for (int i = 0; i < n; i++) {
        CHECK(cuMemFreeHost(buf[i]));
    }
    CHECK(cuMemFree(d));
    OK("pinned %d: the one past the bound failed with OUT_OF_MEMORY, freeing one made room", n);
}

static void hold_modules(int n)
{
    CUmodule m;
    for (int i = 0; i < n; i++) {
        CHECK(cuModuleLoadData(&m, empty_ptx()));
    }
    printf("loaded\n");
    fflush(stdout);
    char line[64];
    if (fgets(line, sizeof line, stdin) == NULL) {
        FAIL_AT("stdin closed");
    }
}

int main(int argc, char **argv)
{
    watchdog(60);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        FAIL_AT("usage: limits objects|module_bytes|globals|host_fns|pinned ...");
    }
    CUdevice dev;
    CUcontext ctx = init_primary(&dev);
    (void)ctx;
    const char *mode = argv[1];
    if (strcmp(mode, "objects") == 0 && argc >= 6) {
        objects(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]),
                argc > 6 && strcmp(argv[6], "hold") == 0);
    } else if (strcmp(mode, "module_bytes") == 0 && argc >= 3) {
        module_bytes(atoi(argv[2]));
    } else if (strcmp(mode, "globals") == 0 && argc >= 3) {
        globals((size_t)atoi(argv[2]));
    } else if (strcmp(mode, "hold_modules") == 0 && argc >= 3) {
        watchdog(600);
        hold_modules(atoi(argv[2]));
    } else if (strcmp(mode, "host_fns") == 0 && argc >= 3) {
        host_fns(atoi(argv[2]));
    } else if (strcmp(mode, "pinned") == 0 && argc >= 3) {
        pinned(atoi(argv[2]));
    } else {
        FAIL_AT("bad arguments");
    }
    printf("done\n");
    return 0;
}
