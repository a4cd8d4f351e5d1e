/*
 * CUDA graphs and stream capture through the driver API.
 *
 * Semantics assumed (CUDA driver API reference 12.9, "Graph Management", "Stream Management"):
 *  - A graph's nodes run after their dependencies; an instantiated graph launched N times does
 *    its work N times, in stream order with other work on the launch stream.
 *  - cuGraphAddKernelNode copies the argument values: the caller's storage may change after.
 *  - cuGraphGetNodes/GetRootNodes/GetEdges: NULL array -> the count; node types as added.
 *  - cuGraphExecKernelNodeSetParams changes the instantiated graph only; cuGraphExecUpdate with
 *    a graph of the same shape takes its parameters, with a different shape it fails with
 *    CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE and result TOPOLOGY_CHANGED / NODE_TYPE_CHANGED.
 *  - A child graph is copied into its node; cuGraphClone copies a graph; a cycle makes
 *    instantiation fail.
 *  - Stream capture: work on a capturing stream is recorded, not run; cuStreamIsCapturing says
 *    ACTIVE; an event recorded in the capture and waited on by another stream forks the capture
 *    to it, which must be joined back before cuStreamEndCapture (else STREAM_CAPTURE_UNJOINED);
 *    synchronising a capturing stream is STREAM_CAPTURE_UNSUPPORTED and invalidates the capture
 *    (end -> STREAM_CAPTURE_INVALIDATED, no graph); cuMemAlloc in global mode is
 *    STREAM_CAPTURE_UNSUPPORTED, allowed after cuThreadExchangeStreamCaptureMode(RELAXED);
 *    capture cannot start on the legacy default stream (STREAM_CAPTURE_UNSUPPORTED).
 */
#include "common.h"

#include <pthread.h>

#define N 4096

static int host_calls;

static void CUDA_CB count_call(void *data)
{
    host_calls += *(int *)data;
}

static CUfunction f_add, f_saxpy;

static volatile int destroyed;

static void CUDA_CB on_destroy(void *data)
{
    __atomic_store_n(&destroyed, *(int *)data, __ATOMIC_SEQ_CST);
}

/* A user object moved into a graph lives until the graph and its instantiations are gone; its
 * destructor then runs (on a driver thread). */
static void test_user_objects(void)
{
    static int token = 42;
    CUuserObject obj;
    EXPECT_ERR(cuUserObjectCreate(&obj, &token, on_destroy, 1, 0), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuUserObjectCreate(&obj, &token, on_destroy, 1, CU_USER_OBJECT_NO_DESTRUCTOR_SYNC));
    CUgraph g;
    CUgraphNode e;
    CHECK(cuGraphCreate(&g, 0));
    CHECK(cuGraphAddEmptyNode(&e, g, NULL, 0));
    CHECK(cuGraphRetainUserObject(g, obj, 1, CU_GRAPH_USER_OBJECT_MOVE));
    CUgraphExec ge;
    CHECK(cuGraphInstantiate(&ge, g, 0));
    CHECK(cuGraphDestroy(g));
    usleep(20000);
    EXPECT(__atomic_load_n(&destroyed, __ATOMIC_SEQ_CST) == 0, "destroyed while instantiated");
    CHECK(cuGraphExecDestroy(ge));
    for (int i = 0; i < 200 && __atomic_load_n(&destroyed, __ATOMIC_SEQ_CST) == 0; i++) {
        usleep(5000);
    }
    EXPECT(__atomic_load_n(&destroyed, __ATOMIC_SEQ_CST) == 42, "destructor did not run");
    EXPECT_ERR(cuUserObjectRelease(obj, 1), CUDA_ERROR_INVALID_VALUE);
    printf("ok: user objects\n");
}

/* A graph whose child is `g`: the child runs as a unit after an empty node. */
static void test_child_graph(CUgraph g, CUstream s, const float *out)
{
    CUgraph parent;
    CUgraphNode root, child;
    CHECK(cuGraphCreate(&parent, 0));
    CHECK(cuGraphAddEmptyNode(&root, parent, NULL, 0));
    CHECK(cuGraphAddChildGraphNode(&child, parent, &root, 1, g));
    CUgraph inner;
    CHECK(cuGraphChildGraphNodeGetGraph(child, &inner));
    EXPECT(inner != g, "the child node holds a copy");
    EXPECT_ERR(cuGraphDestroy(inner), CUDA_ERROR_INVALID_VALUE);
    CUgraphExec pe;
    CHECK(cuGraphInstantiate(&pe, parent, 0));
    int before = host_calls;
    CHECK(cuGraphLaunch(pe, s));
    CHECK(cuStreamSynchronize(s));
    EXPECT(out[0] == 3.0f && host_calls == before + 1, "child graph: %f, %d", out[0], host_calls);
    printf("ok: child graph\n");

    CHECK(cuGraphExecDestroy(pe));
    CHECK(cuGraphDestroy(parent));
}

/* CUDA 13.1's graph and node ids, looked up as a CUDA 13.1 program would. */
static void test_ids(CUgraph g, CUgraphNode second)
{
    void *fn = NULL;
    CUdriverProcAddressQueryResult found;
    CHECK(cuGetProcAddress("cuGraphNodeGetLocalId", &fn, 13010, CU_GET_PROC_ADDRESS_DEFAULT, &found));
    CUresult (*local_id)(CUgraphNode, unsigned *) = (CUresult(*)(CUgraphNode, unsigned *))fn;
    CHECK(cuGetProcAddress("cuGraphNodeGetContainingGraph", &fn, 13010,
                           CU_GET_PROC_ADDRESS_DEFAULT, &found));
    CUresult (*containing)(CUgraphNode, CUgraph *) = (CUresult(*)(CUgraphNode, CUgraph *))fn;
    CHECK(cuGetProcAddress("cuGraphGetId", &fn, 13010, CU_GET_PROC_ADDRESS_DEFAULT, &found));
    CUresult (*graph_id)(CUgraph, unsigned *) = (CUresult(*)(CUgraph, unsigned *))fn;
    unsigned id = 99, gid = 0;
    CUgraph owner = NULL;
    CHECK(local_id(second, &id));
    CHECK(containing(second, &owner));
    CHECK(graph_id(g, &gid));
    EXPECT(id == 1 && owner == g && gid != 0, "local id %u, owner %p, graph id %u", id,
           (void *)owner, gid);
    printf("ok: CUDA 13 graph and node ids\n");
}

/* A cycle cannot be instantiated; edges and nodes can be removed. */
static void test_cycles(void)
{
    size_t count = 0;
    CUgraph cyc;
    CUgraphNode x, y;
    CHECK(cuGraphCreate(&cyc, 0));
    CHECK(cuGraphAddEmptyNode(&x, cyc, NULL, 0));
    CHECK(cuGraphAddEmptyNode(&y, cyc, &x, 1));
    CHECK(cuGraphAddDependencies(cyc, &y, &x, 1));
    CUgraphExec ce;
    EXPECT(cuGraphInstantiate(&ce, cyc, 0) != CUDA_SUCCESS, "a cycle instantiated");
    CHECK(cuGraphRemoveDependencies(cyc, &y, &x, 1));
    CHECK(cuGraphInstantiate(&ce, cyc, 0));
    CHECK(cuGraphDestroyNode(y));
    CHECK(cuGraphGetNodes(cyc, NULL, &count));
    EXPECT(count == 1, "%zu nodes after destroy", count);
    printf("ok: cycles, edges and node removal\n");

    CHECK(cuGraphExecDestroy(ce));
    CHECK(cuGraphDestroy(cyc));
}

/* Node counts, roots, edges, types, dependencies and kernel parameters read back. */
static void test_queries(CUgraph g, CUgraphNode n_ma, CUgraphNode n_mb, CUgraphNode n_add,
                         CUgraphNode n_host, CUdeviceptr a_keep)
{
    size_t count = 0;
    CHECK(cuGraphGetNodes(g, NULL, &count));
    EXPECT(count == 5, "%zu nodes", count);
    CHECK(cuGraphGetRootNodes(g, NULL, &count));
    EXPECT(count == 2, "%zu roots", count);
    CHECK(cuGraphGetEdges(g, NULL, NULL, &count));
    EXPECT(count == 4, "%zu edges", count);
    CUgraphNodeType type;
    CHECK(cuGraphNodeGetType(n_add, &type));
    EXPECT(type == CU_GRAPH_NODE_TYPE_KERNEL, "type %d", (int)type);
    CHECK(cuGraphNodeGetType(n_host, &type));
    EXPECT(type == CU_GRAPH_NODE_TYPE_HOST, "type %d", (int)type);
    CUgraphNode got[4];
    count = 4;
    CHECK(cuGraphNodeGetDependencies(n_add, got, &count));
    EXPECT(count == 2 && got[0] == n_ma && got[1] == n_mb && got[2] == NULL, "deps %zu", count);
    CUDA_KERNEL_NODE_PARAMS back;
    CHECK(cuGraphKernelNodeGetParams(n_add, &back));
    EXPECT(back.func == f_add && back.gridDimX == N / 256 && *(int *)back.kernelParams[3] == N,
           "kernel node params read back");
    printf("ok: explicit graph built and queried\n");
    EXPECT(*(CUdeviceptr *)back.kernelParams[0] == a_keep, "the node keeps a = %llu",
           (unsigned long long)*(CUdeviceptr *)back.kernelParams[0]);
}

/* cuGraphExecUpdate: same shape takes the new parameters; another shape fails. Returns the
 * clone used (the caller destroys it). */
static CUgraph test_exec_update(CUgraph g, CUgraphExec ge, CUgraphNode n_add,
                                CUDA_KERNEL_NODE_PARAMS *kp, CUstream s, const float *out)
{
    CUgraph g2;
    CHECK(cuGraphClone(&g2, g));
    CUgraphNode add2;
    CHECK(cuGraphNodeFindInClone(&add2, n_add, g2));
    CHECK(cuGraphKernelNodeSetParams(add2, kp)); /* c = c + b on the clone */
    CUgraphExecUpdateResultInfo info;
    CHECK(cuGraphExecUpdate(ge, g2, &info));
    EXPECT(info.result == CU_GRAPH_EXEC_UPDATE_SUCCESS, "update result %d", (int)info.result);
    CHECK(cuGraphLaunch(ge, s));
    CHECK(cuStreamSynchronize(s));
    EXPECT(out[9] == 7.0f, "after exec update: %f", out[9]);
    CUgraphNode extra;
    CHECK(cuGraphAddEmptyNode(&extra, g2, NULL, 0));
    EXPECT_ERR(cuGraphExecUpdate(ge, g2, &info), CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE);
    EXPECT(info.result == CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED, "result %d", (int)info.result);
    printf("ok: exec update\n");
    return g2;
}

/* Instantiates `g` (memsets, c = a + b, copy to `out`, host node) and launches it 3 times. */
static CUgraphExec launch_thrice(CUgraph g, CUstream s, float *out)
{
    CUgraphExec ge;
    CHECK(cuGraphInstantiate(&ge, g, 0));
    for (int i = 0; i < 3; i++) {
        memset(out, 0, N * 4);
        CHECK(cuGraphLaunch(ge, s));
        CHECK(cuStreamSynchronize(s));
        EXPECT(out[0] == 3.0f && out[N - 1] == 3.0f, "launch %d: %f", i, out[0]);
    }
    EXPECT(host_calls == 3, "host node ran %d times", host_calls);
    printf("ok: instantiated graph launched 3 times\n");
    return ge;
}

/* memset(a, 1.0) -> memset(b, 2.0) -> vector_add(c = a + b) -> copy c to host -> host node */
static void test_explicit_graph(CUstream s)
{
    CUdeviceptr a, b, c;
    CHECK(cuMemAlloc(&a, N * 4));
    CHECK(cuMemAlloc(&b, N * 4));
    CHECK(cuMemAlloc(&c, N * 4));
    float *out = malloc(N * 4);
    CUgraph g;
    CHECK(cuGraphCreate(&g, 0));
    EXPECT_ERR(cuGraphCreate(&g, 1), CUDA_ERROR_INVALID_VALUE);

    float one = 1.0f, two = 2.0f;
    CUDA_MEMSET_NODE_PARAMS ms = {0};
    ms.dst = a; ms.elementSize = 4; ms.width = N; ms.height = 1;
    memcpy(&ms.value, &one, 4);
    CUgraphNode n_ma, n_mb, n_add, n_copy, n_host;
    CHECK(cuGraphAddMemsetNode(&n_ma, g, NULL, 0, &ms, NULL));
    ms.dst = b;
    memcpy(&ms.value, &two, 4);
    CHECK(cuGraphAddMemsetNode(&n_mb, g, NULL, 0, &ms, NULL));
    ms.elementSize = 3;
    EXPECT_ERR(cuGraphAddMemsetNode(&n_host, g, NULL, 0, &ms, NULL), CUDA_ERROR_INVALID_VALUE);

    int n = N;
    void *args[] = {&a, &b, &c, &n};
    CUDA_KERNEL_NODE_PARAMS kp = {0};
    kp.func = f_add; kp.gridDimX = N / 256; kp.gridDimY = 1; kp.gridDimZ = 1;
    kp.blockDimX = 256; kp.blockDimY = 1; kp.blockDimZ = 1; kp.kernelParams = args;
    CUgraphNode deps[2] = {n_ma, n_mb};
    CHECK(cuGraphAddKernelNode(&n_add, g, deps, 2, &kp));
    CUdeviceptr a_keep = a;
    n = 7; /* the node holds its own copy of the arguments */
    a = 0;

    CUDA_MEMCPY3D cp = {0};
    cp.srcMemoryType = CU_MEMORYTYPE_DEVICE; cp.srcDevice = c;
    cp.dstMemoryType = CU_MEMORYTYPE_HOST; cp.dstHost = out;
    cp.WidthInBytes = N * 4; cp.Height = 1; cp.Depth = 1;
    CHECK(cuGraphAddMemcpyNode(&n_copy, g, &n_add, 1, &cp, NULL));
    int inc = 1;
    CUDA_HOST_NODE_PARAMS hp = {count_call, &inc};
    CHECK(cuGraphAddHostNode(&n_host, g, &n_copy, 1, &hp));
    EXPECT_ERR(cuGraphAddHostNode(&n_host, g, &n_copy, 1, &(CUDA_HOST_NODE_PARAMS){NULL, NULL}),
               CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuGraphAddEmptyNode(&n_host, g, deps, 3), CUDA_ERROR_INVALID_VALUE);

    test_queries(g, n_ma, n_mb, n_add, n_host, a_keep);
    test_ids(g, n_mb);

    CUgraphExec ge = launch_thrice(g, s, out);

    /* Change the instantiated kernel: c = c + b (twice the memsets' b). */
    CUdeviceptr a2 = c;
    void *args2[] = {&a2, &b, &c, &n};
    n = N;
    kp.kernelParams = args2;
    CHECK(cuGraphExecKernelNodeSetParams(ge, n_add, &kp));
    CHECK(cuGraphLaunch(ge, s));
    CHECK(cuStreamSynchronize(s));
    EXPECT(out[5] == 5.0f, "after exec set params: %f", out[5]); /* c was 3, + 2 */
    test_queries(g, n_ma, n_mb, n_add, n_host, a_keep); /* the graph itself is unchanged */
    printf("ok: exec kernel node parameters updated\n");

    CUgraph g2 = test_exec_update(g, ge, n_add, &kp, s, out);

    test_child_graph(g, s, out);
    test_cycles();

    CHECK(cuGraphExecDestroy(ge));
    EXPECT_ERR(cuGraphExecDestroy(ge), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuGraphDestroy(g2));
    CHECK(cuGraphDestroy(g));
    CUgraphNodeType type;
    EXPECT_ERR(cuGraphNodeGetType(n_add, &type), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuMemFree(b));
    CHECK(cuMemFree(c));
    CHECK(cuMemFree(a_keep));
    free(out);
}

/* A fork that is not joined back. */
static void test_unjoined(CUstream s, CUstream s2, CUevent fork, CUdeviceptr y2)
{
    CUgraph g;
    CHECK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
    CHECK(cuEventRecord(fork, s));
    CHECK(cuStreamWaitEvent(s2, fork, 0));
    CHECK(cuMemsetD32Async(y2, 0, N, s2));
    EXPECT_ERR(cuStreamEndCapture(s2, &g), CUDA_ERROR_STREAM_CAPTURE_UNMATCHED);
    EXPECT_ERR(cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_UNJOINED);
    EXPECT(g == NULL, "no graph from an unjoined capture");
    printf("ok: unjoined capture refused\n");

}

/* Synchronising a capturing stream invalidates the capture. */
static void test_invalidation(CUstream s, CUdeviceptr y)
{
    CUgraph g;
    CUstreamCaptureStatus st;
    CHECK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
    CHECK(cuMemsetD32Async(y, 0, N, s));
    EXPECT_ERR(cuStreamSynchronize(s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
    CHECK(cuStreamIsCapturing(s, &st));
    EXPECT(st == CU_STREAM_CAPTURE_STATUS_INVALIDATED, "status %d", (int)st);
    EXPECT_ERR(cuMemsetD32Async(y, 0, N, s), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
    EXPECT_ERR(cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
    printf("ok: synchronising a capturing stream invalidates the capture\n");

}

/* Unsafe calls in global mode; relaxed mode allows them; a destroyed capturing stream ends its
 * capture. */
static void test_capture_modes(CUstream s)
{
    CUgraph g;
    CUgraphExec ge;
    CUdeviceptr tmp;
    CHECK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
    EXPECT_ERR(cuMemAlloc(&tmp, 256), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
    EXPECT_ERR(cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
    CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_RELAXED;
    CHECK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
    CHECK(cuThreadExchangeStreamCaptureMode(&mode));
    EXPECT(mode == CU_STREAM_CAPTURE_MODE_GLOBAL, "previous mode %d", (int)mode);
    CHECK(cuMemAlloc(&tmp, 256));
    CHECK(cuThreadExchangeStreamCaptureMode(&mode));
    CHECK(cuMemsetD32Async(tmp, 7, 64, s));
    CHECK(cuStreamEndCapture(s, &g));
    CHECK(cuGraphInstantiateWithFlags(&ge, g, 0));
    CHECK(cuGraphLaunch(ge, s));
    CHECK(cuStreamSynchronize(s));
    unsigned word = 0;
    CHECK(cuMemcpyDtoH(&word, tmp, 4));
    EXPECT(word == 7, "relaxed-mode capture ran: %u", word);
    CHECK(cuGraphExecDestroy(ge));
    CHECK(cuGraphDestroy(g));
    CHECK(cuMemFree(tmp));
    printf("ok: capture modes\n");

    /* Destroying a capturing stream ends its capture: unsafe calls work again. */
    CUstream s3;
    CHECK(cuStreamCreate(&s3, CU_STREAM_NON_BLOCKING));
    CHECK(cuStreamBeginCapture(s3, CU_STREAM_CAPTURE_MODE_GLOBAL));
    CHECK(cuStreamDestroy(s3));
    CHECK(cuMemAlloc(&tmp, 256));
    CHECK(cuMemFree(tmp));
    printf("ok: destroying a capturing stream ends the capture\n");
}

/* Another thread's cuMemAlloc (the thread's mode: global) while this thread captures. */
static void *alloc_elsewhere(void *result)
{
    CUcontext ctx = NULL;
    CUdevice dev;
    CUdeviceptr p = 0;
    CUresult r = cuDeviceGet(&dev, 0);
    if (r == CUDA_SUCCESS) r = cuDevicePrimaryCtxRetain(&ctx, dev);
    if (r == CUDA_SUCCESS) r = cuCtxSetCurrent(ctx);
    if (r == CUDA_SUCCESS) r = cuMemAlloc(&p, 256);
    if (r == CUDA_SUCCESS) r = cuMemFree(p);
    if (ctx != NULL) cuDevicePrimaryCtxRelease(dev);
    *(CUresult *)result = r;
    return NULL;
}

/* A thread-local capture forbids unsafe calls on its own thread only; a global one on every
 * thread whose mode is global. */
static void test_thread_local_capture(CUstream s)
{
    CUgraph g;
    CUdeviceptr tmp;
    pthread_t t;
    CUresult other = CUDA_ERROR_UNKNOWN;
    CHECK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    EXPECT(pthread_create(&t, NULL, alloc_elsewhere, &other) == 0, "pthread_create");
    pthread_join(t, NULL);
    EXPECT(other == CUDA_SUCCESS, "another thread's cuMemAlloc during a thread-local capture: %s",
           cu_name(other));
    EXPECT_ERR(cuMemAlloc(&tmp, 256), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
    EXPECT_ERR(cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
    CHECK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
    EXPECT(pthread_create(&t, NULL, alloc_elsewhere, &other) == 0, "pthread_create");
    pthread_join(t, NULL);
    EXPECT(other == CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
           "another thread's cuMemAlloc during a global capture: %s", cu_name(other));
    EXPECT_ERR(cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
    printf("ok: thread-local and global capture modes across threads\n");
}

/* Replays the fork/join graph twice: y = 2x + 1 and y2 = 3x + 2 each time. */
static void replay_fork_join(CUgraph g, CUstream s, float *hy, float *hy2)
{
    CUgraphExec ge;
    CHECK(cuGraphInstantiateWithFlags(&ge, g, 0));
    for (int rep = 0; rep < 2; rep++) {
        memset(hy, 0, N * 4);
        memset(hy2, 0, N * 4);
        CHECK(cuGraphLaunch(ge, s));
        CHECK(cuStreamSynchronize(s));
        for (int i = 0; i < N; i += 511) {
            EXPECT(hy[i] == 2.0f * i + 1.0f && hy2[i] == 3.0f * i + 2.0f, "replay %d [%d]: %f %f",
                   rep, i, hy[i], hy2[i]);
        }
    }
    printf("ok: captured graph replayed\n");
    CHECK(cuGraphExecDestroy(ge));
    CHECK(cuGraphDestroy(g));
}

/* y = 2 * x + y, captured on s with a fork to s2 (y2 = 3 * x + y2) joined back. */
static void test_capture(CUstream s, CUstream s2)
{
    CUdeviceptr x, y, y2;
    CHECK(cuMemAlloc(&x, N * 4));
    CHECK(cuMemAlloc(&y, N * 4));
    CHECK(cuMemAlloc(&y2, N * 4));
    float *hx = malloc(N * 4), *hy = malloc(N * 4), *hy2 = malloc(N * 4);
    for (int i = 0; i < N; i++) hx[i] = (float)i;
    memset(hy, 0, N * 4);
    CUevent fork, join;
    CHECK(cuEventCreate(&fork, CU_EVENT_DISABLE_TIMING));
    CHECK(cuEventCreate(&join, CU_EVENT_DISABLE_TIMING));

    CUstreamCaptureStatus st;
    CHECK(cuStreamIsCapturing(s, &st));
    EXPECT(st == CU_STREAM_CAPTURE_STATUS_NONE, "status %d", (int)st);
    EXPECT_ERR(cuStreamBeginCapture(CU_STREAM_LEGACY, CU_STREAM_CAPTURE_MODE_GLOBAL),
               CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
    CHECK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
    EXPECT_ERR(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_ILLEGAL_STATE);
    CHECK(cuStreamIsCapturing(s, &st));
    EXPECT(st == CU_STREAM_CAPTURE_STATUS_ACTIVE, "status %d", (int)st);
    CHECK(cuMemcpyHtoDAsync(x, hx, N * 4, s));
    CHECK(cuMemsetD32Async(y, 0x3f800000u, N, s)); /* 1.0f */
    CHECK(cuEventRecord(fork, s));
    CHECK(cuStreamWaitEvent(s2, fork, 0));
    CHECK(cuStreamIsCapturing(s2, &st));
    EXPECT(st == CU_STREAM_CAPTURE_STATUS_ACTIVE, "forked stream status %d", (int)st);
    CHECK(cuMemsetD32Async(y2, 0x40000000u, N, s2)); /* 2.0f */
    float a = 3.0f;
    int n = N;
    void *args2[] = {&a, &x, &y2, &n};
    CHECK(cuLaunchKernel(f_saxpy, 8, 1, 1, 128, 1, 1, 0, s2, args2, NULL));
    a = 2.0f;
    void *args[] = {&a, &x, &y, &n};
    CHECK(cuLaunchKernel(f_saxpy, 8, 1, 1, 128, 1, 1, 0, s, args, NULL));
    CHECK(cuMemcpyDtoHAsync(hy, y, N * 4, s));
    CHECK(cuEventRecord(join, s2));
    CHECK(cuStreamWaitEvent(s, join, 0));
    CHECK(cuMemcpyDtoHAsync(hy2, y2, N * 4, s));
    cuuint64_t id = 0;
    CUgraph cg = NULL;
    const CUgraphNode *cdeps = NULL;
    size_t ndeps = 0;
    CHECK(cuStreamGetCaptureInfo(s, &st, &id, &cg, &cdeps, &ndeps));
    EXPECT(st == CU_STREAM_CAPTURE_STATUS_ACTIVE && id != 0 && cg != NULL && ndeps == 1,
           "capture info: %d id %llu deps %zu", (int)st, (unsigned long long)id, ndeps);
    EXPECT(hy[0] == 0.0f, "captured work did not run");
    CUgraph g;
    CHECK(cuStreamEndCapture(s, &g));
    CHECK(cuStreamIsCapturing(s2, &st));
    EXPECT(st == CU_STREAM_CAPTURE_STATUS_NONE, "s2 left the capture: %d", (int)st);
    size_t count = 0;
    CHECK(cuGraphGetNodes(g, NULL, &count));
    EXPECT(count == 7, "%zu captured nodes", count);
    printf("ok: capture with a fork and a join: %zu nodes\n", count);

    replay_fork_join(g, s, hy, hy2);

    test_unjoined(s, s2, fork, y2);
    test_invalidation(s, y);
    test_capture_modes(s);

    CHECK(cuEventDestroy(fork));
    CHECK(cuEventDestroy(join));
    CHECK(cuMemFree(x));
    CHECK(cuMemFree(y));
    CHECK(cuMemFree(y2));
    free(hx);
    free(hy);
    free(hy2);
}

/* Graph memory: no allocation nodes, so every figure is 0; high watermarks reset to 0 only. */
static void test_graph_memory(void)
{
    cuuint64_t v = 99;
    CHECK(cuDeviceGetGraphMemAttribute(0, CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT, &v));
    EXPECT(v == 0, "graph memory in use: %llu", (unsigned long long)v);
    v = 99;
    CHECK(cuDeviceGetGraphMemAttribute(0, CU_GRAPH_MEM_ATTR_RESERVED_MEM_HIGH, &v));
    EXPECT(v == 0, "graph memory reserved, high: %llu", (unsigned long long)v);
    EXPECT_ERR(cuDeviceGetGraphMemAttribute(7, CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT, &v),
               CUDA_ERROR_INVALID_DEVICE);
    v = 0;
    CHECK(cuDeviceSetGraphMemAttribute(0, CU_GRAPH_MEM_ATTR_USED_MEM_HIGH, &v));
    EXPECT_ERR(cuDeviceSetGraphMemAttribute(0, CU_GRAPH_MEM_ATTR_USED_MEM_CURRENT, &v),
               CUDA_ERROR_INVALID_VALUE);
    v = 5;
    EXPECT_ERR(cuDeviceSetGraphMemAttribute(0, CU_GRAPH_MEM_ATTR_RESERVED_MEM_HIGH, &v),
               CUDA_ERROR_INVALID_VALUE);
    CHECK(cuDeviceGraphMemTrim(0));
    printf("ok: graph memory attributes and trim\n");
}

int main(void)
{
    init_primary(NULL);
    CUmodule m_add = load_module("vector_add"), m_saxpy = load_module("saxpy");
    f_add = get_function(m_add, "vector_add");
    f_saxpy = get_function(m_saxpy, "saxpy");
    CUstream s, s2;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CHECK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
    test_explicit_graph(s);
    test_capture(s, s2);
    test_thread_local_capture(s);
    test_user_objects();
    test_graph_memory();
    CHECK(cuStreamDestroy(s));
    CHECK(cuStreamDestroy(s2));
    CHECK(cuModuleUnload(m_add));
    CHECK(cuModuleUnload(m_saxpy));
    printf("graph: all checks passed\n");
    return 0;
}
