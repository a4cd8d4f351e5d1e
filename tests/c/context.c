/*
 * Family c: primary context, created contexts, the per-thread context stack.
 *
 * Semantics assumed (CUDA Driver API reference, 12.9):
 *  - cuDevicePrimaryCtxGetState: active = 0 until the first retain, flags = those set with
 *    cuDevicePrimaryCtxSetFlags. Retain returns the same context every time; the context stays
 *    active until every retain has been matched by a release.
 *  - cuCtxCreate pushes the new context onto the calling thread's stack (it becomes current).
 *    cuCtxPopCurrent returns the old top; the next one becomes current. Popping an empty stack
 *    -> CUDA_ERROR_INVALID_CONTEXT. cuCtxSetCurrent replaces the top; cuCtxSetCurrent(NULL)
 *    pops. cuCtxDestroy of a context current to this thread pops it.
 *  - The stack is per thread: a new thread has no current context (cuCtxGetCurrent -> NULL,
 *    CUDA_SUCCESS) and calls that need one return CUDA_ERROR_INVALID_CONTEXT.
 *  - cuCtxGetStreamPriorityRange on compute capability 9.0: least 0, greatest -5.
 *  - cuCtxSetLimit(CU_LIMIT_STACK_SIZE, n): cuCtxGetLimit returns a value >= n (the driver may
 *    round up).
 *  - Using a destroyed context handle -> CUDA_ERROR_INVALID_CONTEXT.
 *  - CUDA 13.0's cuCtxGetDevice_v2(dev, ctx) / cuCtxSynchronize_v2(ctx) act on `ctx` whichever
 *    context is current (NULL: the current one; none current -> CUDA_ERROR_INVALID_CONTEXT) and
 *    leave the current context as it was.
 */
#include "common.h"

#include <pthread.h>

/* CUDA 13.0 entry points: cuda.h 13.x declares them, this program builds against 12.9's. */
CUresult CUDAAPI cuCtxGetDevice_v2(CUdevice *device, CUcontext ctx);
CUresult CUDAAPI cuCtxSynchronize_v2(CUcontext ctx);

struct thread_args {
    CUcontext ctx;
    int failed_line; /* 0 = success */
};

#define T_EXPECT(cond)                        \
    do {                                      \
        if (!(cond)) {                        \
            fprintf(stderr, "FAIL %s:%d (thread): %s\n", __FILE__, __LINE__, #cond); \
            a->failed_line = __LINE__;        \
            return NULL;                      \
        }                                     \
    } while (0)

static void *thread_main(void *p)
{
    struct thread_args *a = (struct thread_args *)p;
    CUcontext cur = (CUcontext)0x1;
    CUdeviceptr d = 0;

    /* A fresh thread has an empty context stack. */
    T_EXPECT(cuCtxGetCurrent(&cur) == CUDA_SUCCESS);
    T_EXPECT(cur == NULL);
    T_EXPECT(cuMemAlloc(&d, 256) == CUDA_ERROR_INVALID_CONTEXT);
    T_EXPECT(cuCtxSynchronize() == CUDA_ERROR_INVALID_CONTEXT);
    CUdevice dev = -1;
    T_EXPECT(cuCtxGetDevice(&dev) == CUDA_ERROR_INVALID_CONTEXT);
    T_EXPECT(cuCtxPopCurrent(&cur) == CUDA_ERROR_INVALID_CONTEXT);

    /* Binding the main thread's context here works, and does not affect the main thread. */
    T_EXPECT(cuCtxSetCurrent(a->ctx) == CUDA_SUCCESS);
    T_EXPECT(cuCtxGetCurrent(&cur) == CUDA_SUCCESS);
    T_EXPECT(cur == a->ctx);
    T_EXPECT(cuMemAlloc(&d, 256) == CUDA_SUCCESS);
    T_EXPECT(cuMemsetD8(d, 0x5a, 256) == CUDA_SUCCESS);
    unsigned char h[256];
    T_EXPECT(cuMemcpyDtoH(h, d, 256) == CUDA_SUCCESS);
    T_EXPECT(h[0] == 0x5a && h[255] == 0x5a);
    T_EXPECT(cuMemFree(d) == CUDA_SUCCESS);
    T_EXPECT(cuCtxSynchronize() == CUDA_SUCCESS);
    T_EXPECT(cuCtxSetCurrent(NULL) == CUDA_SUCCESS);
    T_EXPECT(cuCtxGetCurrent(&cur) == CUDA_SUCCESS);
    T_EXPECT(cur == NULL);
    a->failed_line = 0;
    return NULL;
}

static void primary_context(CUdevice dev)
{
    unsigned flags = 123;
    int active = 7;
    CHECK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
    EXPECT(active == 0, "primary context active before any retain (%d)", active);
    EXPECT(flags == 0, "primary context flags %u before any SetFlags", flags);

    CHECK(cuDevicePrimaryCtxSetFlags(dev, CU_CTX_SCHED_BLOCKING_SYNC));
    CHECK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
    EXPECT((flags & CU_CTX_SCHED_MASK) == CU_CTX_SCHED_BLOCKING_SYNC, "flags %u after SetFlags", flags);
    EXPECT(active == 0, "SetFlags must not activate the primary context");
    EXPECT_ERR(cuDevicePrimaryCtxSetFlags(dev, 0x7fff0000u), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuDevicePrimaryCtxGetState(5, &flags, &active), CUDA_ERROR_INVALID_DEVICE);

    CUcontext p1 = NULL, p2 = NULL;
    CHECK(cuDevicePrimaryCtxRetain(&p1, dev));
    EXPECT(p1 != NULL, "primary context handle NULL");
    CHECK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
    EXPECT(active == 1, "primary context inactive after retain");
    CHECK(cuDevicePrimaryCtxRetain(&p2, dev));
    EXPECT(p1 == p2, "two retains gave different contexts %p %p", (void *)p1, (void *)p2);

    /* Retain does not make it current. */
    CUcontext cur = (CUcontext)0x1;
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == NULL, "retain must not change the current context");

    CHECK(cuCtxSetCurrent(p1));
    CUdevice cdev = -1;
    CHECK(cuCtxGetDevice(&cdev));
    EXPECT(cdev == dev, "cuCtxGetDevice = %d", (int)cdev);
    unsigned cflags = 0;
    CHECK(cuCtxGetFlags(&cflags));
    EXPECT((cflags & CU_CTX_SCHED_MASK) == CU_CTX_SCHED_BLOCKING_SYNC, "cuCtxGetFlags = %u", cflags);
    CUdeviceptr d = 0;
    CHECK(cuMemAlloc(&d, 1024));
    CHECK(cuMemFree(d));
    CHECK(cuCtxSynchronize());
    CHECK(cuCtxSetCurrent(NULL));

    CHECK(cuDevicePrimaryCtxRelease(dev));
    CHECK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
    EXPECT(active == 1, "released once of twice: must still be active");
    CHECK(cuDevicePrimaryCtxRelease(dev));
    CHECK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
    EXPECT(active == 0, "released as often as retained: must be inactive");

    /* Back to the default flags for the rest of the program. */
    CHECK(cuDevicePrimaryCtxSetFlags(dev, 0));
    CHECK(cuDevicePrimaryCtxGetState(dev, &flags, &active));
    EXPECT((flags & CU_CTX_SCHED_MASK) == 0, "flags %u after SetFlags(0)", flags);
    OK("primary context retain/release/state/flags");
}

static void created_contexts(CUdevice dev)
{
    CUcontext a = NULL, b = NULL, cur = NULL, popped = NULL;

    CHECK(cuCtxCreate(&a, 0, dev));
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == a, "cuCtxCreate must make the new context current");
    CHECK(cuCtxCreate(&b, CU_CTX_SCHED_YIELD, dev));
    EXPECT(a != b, "two created contexts share a handle");
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == b, "second context not current");

    unsigned fl = 0;
    CHECK(cuCtxGetFlags(&fl));
    EXPECT((fl & CU_CTX_SCHED_MASK) == CU_CTX_SCHED_YIELD, "cuCtxGetFlags = %u", fl);

    unsigned api = 0;
    CHECK(cuCtxGetApiVersion(b, &api));
    EXPECT(api >= 3020, "cuCtxGetApiVersion = %u", api);
    CHECK(cuCtxGetApiVersion(NULL, &api)); /* NULL = current context */

    /* Stack: [a, b]. Pop returns b, a becomes current. */
    CHECK(cuCtxPopCurrent(&popped));
    EXPECT(popped == b, "popped %p, want b %p", (void *)popped, (void *)b);
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == a, "after pop current should be a");
    CHECK(cuCtxPushCurrent(b));
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == b, "after push current should be b");

    /* SetCurrent replaces the top: [a, b] -> [a, a]; then pop -> [a]. */
    CHECK(cuCtxSetCurrent(a));
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == a, "SetCurrent(a)");
    CHECK(cuCtxPopCurrent(&popped));
    EXPECT(popped == a, "popped should be a");
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == a, "stack [a] after popping replaced top");
    /* SetCurrent(NULL) pops: []. */
    CHECK(cuCtxSetCurrent(NULL));
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == NULL, "stack should be empty");
    EXPECT_ERR(cuCtxPopCurrent(&popped), CUDA_ERROR_INVALID_CONTEXT);
    CHECK(cuCtxSetCurrent(NULL)); /* no-op on an empty stack */

    /* Memory is per context: allocate in b, free while b is current. */
    CHECK(cuCtxPushCurrent(b));
    CUdeviceptr d = 0;
    CHECK(cuMemAlloc(&d, 4096));
    CHECK(cuCtxSynchronize());
    CUdevice cdev = -1;
    CHECK(cuCtxGetDevice(&cdev));
    EXPECT(cdev == dev, "cuCtxGetDevice");
    CHECK(cuMemFree(d));

    int least = 99, greatest = 99;
    CHECK(cuCtxGetStreamPriorityRange(&least, &greatest));
    EXPECT(least == 0 && greatest == -5, "priority range least %d greatest %d, want 0 / -5", least,
           greatest);
    CHECK(cuCtxGetStreamPriorityRange(NULL, &greatest)); /* either pointer may be NULL */

    size_t stack = 0;
    CHECK(cuCtxGetLimit(&stack, CU_LIMIT_STACK_SIZE));
    EXPECT(stack > 0, "stack size limit %zu", stack);
    CHECK(cuCtxSetLimit(CU_LIMIT_STACK_SIZE, 8192));
    CHECK(cuCtxGetLimit(&stack, CU_LIMIT_STACK_SIZE));
    EXPECT(stack >= 8192, "stack size limit %zu after setting 8192", stack);
    size_t heap = 0, fifo = 0;
    CHECK(cuCtxGetLimit(&heap, CU_LIMIT_MALLOC_HEAP_SIZE));
    CHECK(cuCtxGetLimit(&fifo, CU_LIMIT_PRINTF_FIFO_SIZE));
    EXPECT(heap > 0 && fifo > 0, "heap %zu fifo %zu", heap, fifo);
    EXPECT_ERR2(cuCtxGetLimit(&stack, (CUlimit)0x7777), CUDA_ERROR_INVALID_VALUE,
                CUDA_ERROR_UNSUPPORTED_LIMIT);
    EXPECT_ERR2(cuCtxSetLimit((CUlimit)0x7777, 1), CUDA_ERROR_INVALID_VALUE,
                CUDA_ERROR_UNSUPPORTED_LIMIT);
    OK("created contexts, push/pop/set, priority range, limits");

    /* Destroy b while current: it is popped, a is not on the stack -> no current context. */
    CHECK(cuCtxDestroy(b));
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == NULL, "destroying the current context must pop it (cur %p)", (void *)cur);
    EXPECT_ERR(cuMemAlloc(&d, 16), CUDA_ERROR_INVALID_CONTEXT);
    EXPECT_ERR(cuCtxGetApiVersion(b, &api), CUDA_ERROR_INVALID_CONTEXT);
    EXPECT_ERR(cuCtxPushCurrent(b), CUDA_ERROR_INVALID_CONTEXT);
    EXPECT_ERR(cuCtxSetCurrent(b), CUDA_ERROR_INVALID_CONTEXT);
    EXPECT_ERR(cuCtxDestroy(b), CUDA_ERROR_INVALID_CONTEXT);

    /* a still works. */
    CHECK(cuCtxSetCurrent(a));
    CHECK(cuMemAlloc(&d, 16));
    CHECK(cuMemFree(d));
    CHECK(cuCtxDestroy(a));
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == NULL, "stack should be empty after destroying a");
    EXPECT_ERR(cuCtxCreate(&a, 0, 4), CUDA_ERROR_INVALID_DEVICE);
    OK("destroyed contexts -> CUDA_ERROR_INVALID_CONTEXT");
}

/* cuCtxGetDevice_v2 and cuCtxSynchronize_v2 on a context that is not current. */
static void cuda13_context_calls(CUdevice dev)
{
    CUdevice got = -1;
    CUcontext a, b, cur;
    EXPECT_ERR(cuCtxGetDevice_v2(&got, NULL), CUDA_ERROR_INVALID_CONTEXT);
    EXPECT_ERR(cuCtxSynchronize_v2(NULL), CUDA_ERROR_INVALID_CONTEXT);
    CHECK(cuCtxCreate(&a, 0, dev));
    const size_t n = 1 << 20;
    CUdeviceptr d;
    CHECK(cuMemAlloc(&d, n * 4));
    CHECK(cuMemsetD32Async(d, 0x5a5a5a5a, n, NULL));
    CHECK(cuCtxCreate(&b, 0, dev)); /* b current, a below it */
    CHECK(cuCtxSynchronize_v2(a));
    CHECK(cuCtxGetDevice_v2(&got, a));
    EXPECT(got == dev, "cuCtxGetDevice_v2(a) = %d", got);
    got = -1;
    CHECK(cuCtxGetDevice_v2(&got, NULL));
    EXPECT(got == dev, "cuCtxGetDevice_v2(NULL) = %d", got);
    CHECK(cuCtxSynchronize_v2(NULL));
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == b, "the _v2 calls must not change the current context");
    EXPECT_ERR(cuCtxGetDevice_v2(NULL, a), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuCtxDestroy(b));
    EXPECT_ERR(cuCtxGetDevice_v2(&got, b), CUDA_ERROR_INVALID_CONTEXT);
    EXPECT_ERR(cuCtxSynchronize_v2(b), CUDA_ERROR_INVALID_CONTEXT);
    CHECK(cuCtxSetCurrent(a));
    uint32_t last = 0;
    CHECK(cuMemcpyDtoH(&last, d + (n - 1) * 4, 4));
    EXPECT(last == 0x5a5a5a5a, "memset before cuCtxSynchronize_v2: %#x", last);
    CHECK(cuMemFree(d));
    CHECK(cuCtxDestroy(a));
    OK("cuCtxGetDevice_v2, cuCtxSynchronize_v2 on a context that is not current");
}

int main(void)
{
    watchdog(60);
    CHECK(cuInit(0));
    CUdevice dev;
    CHECK(cuDeviceGet(&dev, 0));

    primary_context(dev);
    created_contexts(dev);
    cuda13_context_calls(dev);

    /* Per-thread current context. */
    CUcontext ctx = init_primary(NULL);
    struct thread_args args = {ctx, -1};
    pthread_t t;
    EXPECT(pthread_create(&t, NULL, thread_main, &args) == 0, "pthread_create");
    EXPECT(pthread_join(t, NULL) == 0, "pthread_join");
    EXPECT(args.failed_line == 0, "thread failed at line %d", args.failed_line);
    /* Main thread still has its context. */
    CUcontext cur = NULL;
    CHECK(cuCtxGetCurrent(&cur));
    EXPECT(cur == ctx, "main thread lost its current context");
    CHECK(cuCtxSynchronize());
    OK("per-thread current context");

    CHECK(cuDevicePrimaryCtxRelease(dev));
    return 0;
}
