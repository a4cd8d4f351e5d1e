/*
 * CUDA runtime graphs over the driver library under test: stream capture of runtime calls
 * (cudaMemcpyAsync, cudaMemsetAsync, cudaLaunchKernel, cudaLaunchHostFunc), the explicit graph
 * API (kernel, memset, memcpy and host nodes, dependencies), instantiation, launch, parameter
 * updates of an instantiated kernel node, cudaGraphExecUpdate, and capture errors.
 *
 * Semantics assumed (CUDA Runtime API reference 12.9, "Graph Management", "Stream Management"):
 *  - cudaStreamBeginCapture/EndCapture record instead of running; cudaStreamIsCapturing says
 *    cudaStreamCaptureStatusActive meanwhile; the graph replays the work on each launch.
 *  - cudaGraphExecKernelNodeSetParams changes one instantiated node; cudaGraphExecUpdate takes
 *    the parameters of a graph with the same topology.
 *  - cudaStreamSynchronize on a capturing stream fails (cudaErrorStreamCaptureUnsupported) and
 *    the capture ends with cudaErrorStreamCaptureInvalidated.
 */
#include "cudart_common.h"

#define N 2048

static int host_runs;

static void CUDART_CB on_host(void *arg)
{
    host_runs += *(int *)arg;
}

static dim3 dim3_of(unsigned x)
{
    dim3 d = {x, 1, 1};
    return d;
}

static cudaKernel_t kernel(const char *file, const char *name)
{
    char *ptx = kernel_ptx(file, NULL);
    cudaLibrary_t lib = NULL;
    CHECK(cudaLibraryLoadData(&lib, ptx, NULL, NULL, 0, NULL, NULL, 0));
    free(ptx);
    cudaKernel_t k = NULL;
    CHECK(cudaLibraryGetKernel(&k, lib, name));
    return k;
}

/* Captures x -> device, y = 1, y = a*x + y, host callback, y -> host; replays it. */
static void test_capture(cudaKernel_t saxpy, cudaStream_t s, float *x, float *dx, float *dy)
{
    float *hy = calloc(N, 4);
    int one = 1, n = N;
    float a = 2.0f;
    void *args[] = {&a, &dx, &dy, &n};
    enum cudaStreamCaptureStatus st;
    CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    CHECK(cudaStreamIsCapturing(s, &st));
    EXPECT(st == cudaStreamCaptureStatusActive, "capture status %d", (int)st);
    CHECK(cudaMemcpyAsync(dx, x, N * 4, cudaMemcpyHostToDevice, s));
    CHECK(cudaMemsetAsync(dy, 0, N * 4, s));
    CHECK(cudaLaunchKernel((const void *)saxpy, dim3_of(8), dim3_of(256), args, 0, s));
    CHECK(cudaLaunchHostFunc(s, on_host, &one));
    CHECK(cudaMemcpyAsync(hy, dy, N * 4, cudaMemcpyDeviceToHost, s));
    cudaGraph_t g;
    CHECK(cudaStreamEndCapture(s, &g));
    size_t nodes = 0;
    CHECK(cudaGraphGetNodes(g, NULL, &nodes));
    EXPECT(nodes == 5, "%zu captured nodes", nodes);
    EXPECT(host_runs == 0 && hy[3] == 0.0f, "captured work ran during capture");
    cudaGraphExec_t ge;
    CHECK(cudaGraphInstantiate(&ge, g, 0));
    for (int rep = 1; rep <= 3; rep++) {
        x[3] = (float)rep;
        CHECK(cudaGraphLaunch(ge, s));
        CHECK(cudaStreamSynchronize(s));
        EXPECT(hy[3] == 2.0f * rep && host_runs == rep, "replay %d: %f, host %d", rep, hy[3],
               host_runs);
    }
    OK("captured runtime calls replayed 3 times (%zu nodes)", nodes);
    CHECK(cudaGraphExecDestroy(ge));
    CHECK(cudaGraphDestroy(g));

    CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    CHECK(cudaMemsetAsync(dy, 0, N * 4, s));
    EXPECT_ERR(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
    EXPECT_ERR(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    cudaGetLastError();
    OK("synchronising a capturing stream invalidates the capture");
    free(hy);
}

/* memset(y) -> saxpy -> copy to host, built node by node; then node updates. */
static void test_explicit(cudaKernel_t saxpy, cudaStream_t s, float *dx, float *dy)
{
    float *hy = calloc(N, 4);
    cudaGraph_t g;
    CHECK(cudaGraphCreate(&g, 0));
    struct cudaMemsetParams ms = {0};
    ms.dst = dy; ms.elementSize = 4; ms.width = N; ms.height = 1; ms.value = 0x3f800000u;
    cudaGraphNode_t n_set, n_k, n_cp;
    CHECK(cudaGraphAddMemsetNode(&n_set, g, NULL, 0, &ms));
    float a = 3.0f;
    int n = N;
    void *args[] = {&a, &dx, &dy, &n};
    struct cudaKernelNodeParams kp = {0};
    kp.func = (void *)saxpy; kp.gridDim = dim3_of(8); kp.blockDim = dim3_of(256);
    kp.kernelParams = args;
    CHECK(cudaGraphAddKernelNode(&n_k, g, &n_set, 1, &kp));
    CHECK(cudaGraphAddMemcpyNode1D(&n_cp, g, &n_k, 1, hy, dy, N * 4, cudaMemcpyDeviceToHost));
    cudaGraphExec_t ge;
    CHECK(cudaGraphInstantiate(&ge, g, 0));
    CHECK(cudaGraphLaunch(ge, s));
    CHECK(cudaStreamSynchronize(s));
    /* x[3] is 3.0 from the last replay above */
    EXPECT(hy[3] == 3.0f * 3.0f + 1.0f, "explicit graph: %f", hy[3]);

    a = 5.0f;
    CHECK(cudaGraphExecKernelNodeSetParams(ge, n_k, &kp));
    CHECK(cudaGraphLaunch(ge, s));
    CHECK(cudaStreamSynchronize(s));
    EXPECT(hy[3] == 5.0f * 3.0f + 1.0f, "after cudaGraphExecKernelNodeSetParams: %f", hy[3]);

    a = 7.0f;
    CHECK(cudaGraphKernelNodeSetParams(n_k, &kp));
    cudaGraphExecUpdateResultInfo info;
    CHECK(cudaGraphExecUpdate(ge, g, &info));
    CHECK(cudaGraphLaunch(ge, s));
    CHECK(cudaStreamSynchronize(s));
    EXPECT(hy[3] == 7.0f * 3.0f + 1.0f, "after cudaGraphExecUpdate: %f", hy[3]);
    OK("explicit graph, exec kernel-node update and exec update");
    CHECK(cudaGraphExecDestroy(ge));
    CHECK(cudaGraphDestroy(g));
    free(hy);
}

/* Capture on the per-thread default stream with a dependency set by hand, embedded as a child
 * graph: an empty node is made the capture's only dependency, so the memset runs after it. */
static void test_per_thread_child(cudaStream_t s, float *dy)
{
    cudaGraph_t g, parent;
    cudaGraphNode_t empty, child;
    enum cudaStreamCaptureStatus st;
    cudaGraph_t capturing = NULL;
    size_t ndeps = 99;
    const cudaGraphNode_t *deps = NULL;
    CHECK(cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeThreadLocal));
#if CUDART_VERSION >= 13000
    CHECK(cudaStreamGetCaptureInfo(cudaStreamPerThread, &st, NULL, &capturing, &deps, NULL, &ndeps));
#else
    CHECK(cudaStreamGetCaptureInfo(cudaStreamPerThread, &st, NULL, &capturing, &deps, &ndeps));
#endif
    EXPECT(st == cudaStreamCaptureStatusActive && capturing != NULL && ndeps == 0,
           "capture info: status %d, %zu dependencies", (int)st, ndeps);
    CHECK(cudaGraphAddEmptyNode(&empty, capturing, NULL, 0));
#if CUDART_VERSION >= 13000
    CHECK(cudaStreamUpdateCaptureDependencies(cudaStreamPerThread, &empty, NULL, 1,
                                              cudaStreamSetCaptureDependencies));
#else
    CHECK(cudaStreamUpdateCaptureDependencies(cudaStreamPerThread, &empty, 1,
                                              cudaStreamSetCaptureDependencies));
#endif
    CHECK(cudaMemsetAsync(dy, 0, N * 4, cudaStreamPerThread));
    CHECK(cudaStreamEndCapture(cudaStreamPerThread, &g));
    size_t edges = 0;
#if CUDART_VERSION >= 13000
    CHECK(cudaGraphGetEdges(g, NULL, NULL, NULL, &edges));
#else
    CHECK(cudaGraphGetEdges(g, NULL, NULL, &edges));
#endif
    EXPECT(edges == 1, "%zu edges (empty -> memset)", edges);
    CHECK(cudaGraphCreate(&parent, 0));
    CHECK(cudaGraphAddChildGraphNode(&child, parent, NULL, 0, g));
    cudaGraphExec_t ge;
    CHECK(cudaGraphInstantiate(&ge, parent, 0));
    float one = 1.0f, back = 0.0f;
    CHECK(cudaMemcpy(dy, &one, 4, cudaMemcpyHostToDevice));
    CHECK(cudaGraphLaunch(ge, s));
    CHECK(cudaStreamSynchronize(s));
    CHECK(cudaMemcpy(&back, dy, 4, cudaMemcpyDeviceToHost));
    EXPECT(back == 0.0f, "child graph's memset ran: %f", back);
    CHECK(cudaGraphExecDestroy(ge));
    CHECK(cudaGraphDestroy(parent));
    CHECK(cudaGraphDestroy(g));
    OK("per-thread stream capture, capture dependencies set by hand, child graph");
}

int main(void)
{
    CHECK(cudaSetDevice(0));
    cudaKernel_t saxpy = kernel("saxpy", "saxpy");
    cudaStream_t s;
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    float *x = calloc(N, 4), *dx, *dy;
    CHECK(cudaMalloc((void **)&dx, N * 4));
    CHECK(cudaMalloc((void **)&dy, N * 4));
    test_capture(saxpy, s, x, dx, dy);
    test_explicit(saxpy, s, dx, dy);
    test_per_thread_child(s, dy);
    CHECK(cudaFree(dx));
    CHECK(cudaFree(dy));
    CHECK(cudaStreamDestroy(s));
    free(x);
    printf("cudart_graph: all checks passed\n");
    return 0;
}
