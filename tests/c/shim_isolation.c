/*
 * Tenant isolation as a CUDA program sees it: for the shim + broker end-to-end tests
 * (tests/tests/shim_isolation.rs). Two processes: an owner and an intruder that is handed the
 * owner's device pointer and handle values.
 *
 * Usage: shim_isolation owner
 *        shim_isolation intruder PTR STREAM EVENT MODULE FUNCTION   (values as the owner printed)
 *
 * owner: allocates 1 MiB of device memory, writes a byte pattern into it, creates a stream and an
 *   event (recorded on the stream), loads vector_add and gets its function, synchronises, and
 *   prints one line
 *     owner ptr=0x... stream=0x... event=0x... module=0x... function=0x...
 *   Then it waits for a line "check" on stdin (EOF ends it too), reads the memory back and prints
 *   "owner data intact" (exit 0) or "owner data CORRUPT at byte I" (exit 1); it also checks its
 *   stream, event and function still work.
 *
 * intruder: makes, in this order, each call on the owner's pointer/handles and prints one line
 *   "LABEL -> NAME" per call (NAME from cuGetErrorName), then a last line "intruder done", and
 *   exits 0 (the harness judges the codes; a crash or hang is the failure this program exists to
 *   catch). It creates no stream, event or module of its own before the attempts, and allocates its
 *   own memory only afterwards, so a handle or address can only be valid through a leak between
 *   tenants. Expected for separate processes (CUDA, CPU device, and gpushare's broker alike):
 *   copies, memsets and cuMemFree on the foreign pointer -> CUDA_ERROR_INVALID_VALUE; stream,
 *   event, module and function handles -> CUDA_ERROR_INVALID_HANDLE (never CUDA_SUCCESS).
 *   After the attempts it checks its own allocation works ("own memory -> CUDA_SUCCESS"). The
 *   asynchronous copy comes last: through a broker its error may surface at the next
 *   synchronisation instead of at the call ("async HtoD" and "async HtoD sync" lines).
 */
#include "common.h"

#define SIZE (1u << 20)

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7u + 3u);
}

static int owner(void)
{
    CUdevice dev;
    init_primary(&dev);
    CUdeviceptr ptr = 0;
    CHECK(cuMemAlloc(&ptr, SIZE));
    unsigned char *buf = malloc(SIZE);
    EXPECT(buf != NULL, "malloc");
    for (size_t i = 0; i < SIZE; i++) {
        buf[i] = pattern(i);
    }
    CHECK(cuMemcpyHtoD(ptr, buf, SIZE));
    CUstream stream;
    CHECK(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
    CUevent event;
    CHECK(cuEventCreate(&event, CU_EVENT_DEFAULT));
    CHECK(cuEventRecord(event, stream));
    CUmodule module = load_module("vector_add");
    CUfunction function = get_function(module, "vector_add");
    CHECK(cuCtxSynchronize());
    printf("owner ptr=0x%llx stream=0x%llx event=0x%llx module=0x%llx function=0x%llx\n",
           (unsigned long long)ptr, (unsigned long long)(uintptr_t)stream,
           (unsigned long long)(uintptr_t)event, (unsigned long long)(uintptr_t)module,
           (unsigned long long)(uintptr_t)function);
    fflush(stdout);

    char line[256];
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strncmp(line, "check", 5) == 0) {
            break;
        }
    }
    memset(buf, 0, SIZE);
    CHECK(cuMemcpyDtoH(buf, ptr, SIZE));
    for (size_t i = 0; i < SIZE; i++) {
        if (buf[i] != pattern(i)) {
            printf("owner data CORRUPT at byte %zu (0x%02x, want 0x%02x)\n", i, buf[i], pattern(i));
            fflush(stdout);
            return 1;
        }
    }
    /* The owner's handles still work: a launch on its stream with its function, its event. */
    CUdeviceptr c = 0;
    CHECK(cuMemAlloc(&c, 64 * sizeof(float)));
    int n = 64;
    void *params[] = {&ptr, &ptr, &c, &n};
    CHECK(cuLaunchKernel(function, 1, 1, 1, 64, 1, 1, 0, stream, params, NULL));
    CHECK(cuEventRecord(event, stream));
    CHECK(cuEventSynchronize(event));
    CHECK(cuStreamSynchronize(stream));
    CHECK(cuMemFree(c));
    CHECK(cuEventDestroy(event));
    CHECK(cuStreamDestroy(stream));
    CHECK(cuModuleUnload(module));
    CHECK(cuMemFree(ptr));
    free(buf);
    printf("owner data intact\n");
    fflush(stdout);
    return 0;
}

static void report(const char *label, CUresult r)
{
    printf("%s -> %s\n", label, cu_name(r));
    fflush(stdout);
}

static int intruder(char **argv)
{
    CUdeviceptr ptr = (CUdeviceptr)strtoull(argv[0], NULL, 0);
    CUstream stream = (CUstream)(uintptr_t)strtoull(argv[1], NULL, 0);
    CUevent event = (CUevent)(uintptr_t)strtoull(argv[2], NULL, 0);
    CUmodule module = (CUmodule)(uintptr_t)strtoull(argv[3], NULL, 0);
    CUfunction function = (CUfunction)(uintptr_t)strtoull(argv[4], NULL, 0);
    init_primary(NULL);

    unsigned char buf[256];
    memset(buf, 0xee, sizeof buf);
    report("DtoH from owner ptr", cuMemcpyDtoH(buf, ptr, sizeof buf));
    report("HtoD to owner ptr", cuMemcpyHtoD(ptr, buf, sizeof buf));
    report("memset owner ptr", cuMemsetD8(ptr, 0xee, sizeof buf));
    report("free owner ptr", cuMemFree(ptr));
    report("stream synchronize", cuStreamSynchronize(stream));
    report("stream query", cuStreamQuery(stream));
    report("event synchronize", cuEventSynchronize(event));
    report("event query", cuEventQuery(event));
    report("event record", cuEventRecord(event, NULL));
    CUfunction f = NULL;
    report("module get function", cuModuleGetFunction(&f, module, "vector_add"));
    int n = 1;
    void *params[] = {&ptr, &ptr, &ptr, &n};
    report("launch owner function", cuLaunchKernel(function, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
    report("context synchronize", cuCtxSynchronize());

    /* Only now: memory of our own, which must work. */
    CUdeviceptr own = 0;
    CUresult r = cuMemAlloc(&own, sizeof buf);
    if (r == CUDA_SUCCESS) {
        r = cuMemcpyHtoD(own, buf, sizeof buf);
    }
    if (r == CUDA_SUCCESS) {
        r = cuMemcpyDtoH(buf, own, sizeof buf);
    }
    report("own memory", r);
    report("DtoD owner ptr to own", cuMemcpyDtoD(own, ptr, sizeof buf));
    report("DtoD own to owner ptr", cuMemcpyDtoD(ptr, own, sizeof buf));

    report("async HtoD", cuMemcpyHtoDAsync(ptr, buf, sizeof buf, NULL));
    report("async HtoD sync", cuCtxSynchronize());
    printf("intruder done\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    watchdog(120);
    if (argc == 2 && strcmp(argv[1], "owner") == 0) {
        return owner();
    }
    if (argc == 7 && strcmp(argv[1], "intruder") == 0) {
        return intruder(argv + 2);
    }
    fprintf(stderr, "usage: %s owner | intruder PTR STREAM EVENT MODULE FUNCTION\n", argv[0]);
    return 2;
}
