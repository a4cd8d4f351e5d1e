/*
 * Family j: streams and events.
 *
 * Run with GPUSHARE_CPU_PROFILE=small GPUSHARE_CPU_PACING=1: with pacing, completion of device
 * work tracks wall-clock time per the timing model, so a busy_sleep kernel doing `iters` x
 * __nanosleep(ns) stays in flight for about ns * iters of wall time. (On real GPUs __nanosleep
 * sleeps "approximately" the given time, so these durations are the model's contract.)
 *
 * Semantics assumed (CUDA Driver API reference, 12.9):
 *  - cuStreamCreate flags: CU_STREAM_DEFAULT (0) or CU_STREAM_NON_BLOCKING (1), reported back by
 *    cuStreamGetFlags. cuStreamCreateWithPriority clamps the priority into
 *    [greatest, least] = [-5, 0]; cuStreamGetPriority reports the clamped value.
 *  - cuStreamQuery: CUDA_ERROR_NOT_READY while work is pending, CUDA_SUCCESS when done.
 *  - cuStreamWaitEvent(s, e): later work in s waits for the work captured by e.
 *  - Legacy default stream (handle NULL / CU_STREAM_LEGACY): work in it waits for all earlier work
 *    in blocking streams of the context, and later work in blocking streams waits for it;
 *    CU_STREAM_NON_BLOCKING streams do not synchronise with it.
 *  - Per-thread default stream (CU_STREAM_PER_THREAD, or stream 0 given to the _ptsz/_ptds entry
 *    points): one per host thread, not synchronising with other threads' per-thread streams.
 *  - cuEventQuery / cuEventSynchronize on a never-recorded event: CUDA_SUCCESS.
 *    cuEventElapsedTime: never-recorded event -> CUDA_ERROR_INVALID_HANDLE; event not yet
 *    completed -> CUDA_ERROR_NOT_READY; an event created with CU_EVENT_DISABLE_TIMING ->
 *    CUDA_ERROR_INVALID_HANDLE.
 *  - cuStreamDestroy with pending work returns at once; the work still completes.
 *  - Using a destroyed stream or event handle -> CUDA_ERROR_INVALID_HANDLE.
 */
#include "common.h"

#include <pthread.h>

/* The _ptsz entry points are what cuda.h maps to under CUDA_API_PER_THREAD_DEFAULT_STREAM; they
 * are exported by libcuda. Declared here because this file uses the legacy names too. */
CUresult CUDAAPI cuMemcpyHtoDAsync_v2_ptsz(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount,
                                           CUstream hStream);
CUresult CUDAAPI cuMemcpyDtoHAsync_v2_ptsz(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount,
                                           CUstream hStream);
CUresult CUDAAPI cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                     unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                                     unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
                                     void **kernelParams, void **extra);
CUresult CUDAAPI cuStreamSynchronize_ptsz(CUstream hStream);
CUresult CUDAAPI cuStreamQuery_ptsz(CUstream hStream);
CUresult CUDAAPI cuMemsetD32Async_ptsz(CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream);

#define MS 1000000u /* __nanosleep argument for 1 ms */

static CUcontext g_ctx;
static CUfunction g_sleep;
static CUfunction g_vadd;

static void expect_words(const uint32_t *h, int n, uint32_t want, const char *what)
{
    for (int i = 0; i < n; i++) {
        EXPECT(h[i] == want, "%s: word %d = %u, want %u", what, i, h[i], want);
    }
}

static void stream_basics(void)
{
    CUstream s0, s1, sp;
    unsigned fl = 99;
    int prio = 99;
    CHECK(cuStreamCreate(&s0, CU_STREAM_DEFAULT));
    CHECK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
    CHECK(cuStreamGetFlags(s0, &fl));
    EXPECT(fl == CU_STREAM_DEFAULT, "flags %u", fl);
    CHECK(cuStreamGetFlags(s1, &fl));
    EXPECT(fl == CU_STREAM_NON_BLOCKING, "flags %u", fl);
    CHECK(cuStreamGetPriority(s0, &prio));
    EXPECT(prio == 0, "default priority %d", prio);
    CUcontext c = NULL;
    CHECK(cuStreamGetCtx(s1, &c));
    EXPECT(c == g_ctx, "cuStreamGetCtx");

    CHECK(cuStreamCreateWithPriority(&sp, CU_STREAM_NON_BLOCKING, -3));
    CHECK(cuStreamGetPriority(sp, &prio));
    EXPECT(prio == -3, "priority %d, want -3", prio);
    CHECK(cuStreamGetFlags(sp, &fl));
    EXPECT(fl == CU_STREAM_NON_BLOCKING, "flags %u", fl);
    CHECK(cuStreamDestroy(sp));
    CHECK(cuStreamCreateWithPriority(&sp, 0, -10));
    CHECK(cuStreamGetPriority(sp, &prio));
    EXPECT(prio == -5, "priority -10 clamps to -5, got %d", prio);
    CHECK(cuStreamDestroy(sp));
    CHECK(cuStreamCreateWithPriority(&sp, 0, 7));
    CHECK(cuStreamGetPriority(sp, &prio));
    EXPECT(prio == 0, "priority 7 clamps to 0, got %d", prio);
    CHECK(cuStreamDestroy(sp));

    CUstream bad;
    EXPECT_ERR(cuStreamCreate(&bad, 0x80), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuStreamQuery(s0));
    CHECK(cuStreamSynchronize(s0));
    CHECK(cuStreamDestroy(s0));
    CHECK(cuStreamDestroy(s1));

    /* Destroyed handles. */
    CUstream sd;
    CUevent ed;
    CHECK(cuStreamCreate(&sd, 0));
    CHECK(cuEventCreate(&ed, 0));
    CHECK(cuStreamDestroy(sd));
    EXPECT_ERR(cuStreamQuery(sd), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuStreamSynchronize(sd), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuEventRecord(ed, sd), CUDA_ERROR_INVALID_HANDLE);
    CHECK(cuEventDestroy(ed));
    EXPECT_ERR(cuEventQuery(ed), CUDA_ERROR_INVALID_HANDLE);
    OK("stream flags, priorities (clamped to [-5, 0]), destroyed handles -> INVALID_HANDLE");
}

static void query_and_events(CUdeviceptr out)
{
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CUevent e0, e1, e2, enot;
    CHECK(cuEventCreate(&e0, CU_EVENT_DEFAULT));
    CHECK(cuEventCreate(&e1, CU_EVENT_DEFAULT));
    CHECK(cuEventCreate(&e2, CU_EVENT_BLOCKING_SYNC));
    CHECK(cuEventCreate(&enot, CU_EVENT_DISABLE_TIMING));
    float ms = -1.0f;

    /* Never recorded. */
    CHECK(cuEventQuery(e0));
    CHECK(cuEventSynchronize(e0));
    EXPECT_ERR(cuEventElapsedTime(&ms, e0, e1), CUDA_ERROR_INVALID_HANDLE);

    double t0 = now_ms();
    CHECK(cuEventRecord(e0, s));
    launch_sleep(g_sleep, s, out, MS, 100, 32); /* ~100 ms */
    CHECK(cuEventRecord(e1, s));
    EXPECT_ERR(cuStreamQuery(s), CUDA_ERROR_NOT_READY);
    EXPECT_ERR(cuEventQuery(e1), CUDA_ERROR_NOT_READY);
    EXPECT_ERR(cuEventElapsedTime(&ms, e0, e1), CUDA_ERROR_NOT_READY);
    CHECK(cuEventSynchronize(e1));
    double wall = now_ms() - t0;
    CHECK(cuStreamQuery(s));
    CHECK(cuEventQuery(e1));
    CHECK(cuEventElapsedTime(&ms, e0, e1));
    EXPECT(ms >= 80.0f && ms < 5000.0f, "elapsed %.3f ms for a ~100 ms sleep kernel", ms);
    EXPECT(wall >= 80.0, "wall time %.1f ms for a ~100 ms paced kernel", wall);
    OK("cuStreamQuery NOT_READY while busy; event elapsed %.2f ms (wall %.1f ms)", ms, wall);

    /* Elapsed time needs both events recorded; DISABLE_TIMING events have no timestamps. */
    EXPECT_ERR(cuEventElapsedTime(&ms, e0, e2), CUDA_ERROR_INVALID_HANDLE);
    CHECK(cuEventRecord(enot, s));
    CHECK(cuEventRecord(e2, s));
    CHECK(cuStreamSynchronize(s));
    EXPECT_ERR(cuEventElapsedTime(&ms, e0, enot), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuEventElapsedTime(&ms, enot, e1), CUDA_ERROR_INVALID_HANDLE);
    float ms2 = -1.0f;
    CHECK(cuEventElapsedTime(&ms2, e0, e2));
    EXPECT(ms2 >= ms, "a later event gives a shorter time (%f < %f)", ms2, ms);
    CHECK(cuEventElapsedTime(&ms2, e1, e1));
    EXPECT(ms2 == 0.0f, "elapsed(e, e) = %f", ms2);
    EXPECT_ERR(cuEventElapsedTime(NULL, e0, e1), CUDA_ERROR_INVALID_VALUE);
    OK("cuEventElapsedTime error cases (unrecorded / DISABLE_TIMING -> INVALID_HANDLE)");

    /* Events on the legacy default stream. */
    CHECK(cuEventRecord(e0, NULL));
    launch_sleep(g_sleep, NULL, out, MS, 30, 32);
    CHECK(cuEventRecord(e1, NULL));
    CHECK(cuEventSynchronize(e1));
    CHECK(cuEventElapsedTime(&ms, e0, e1));
    EXPECT(ms >= 24.0f, "elapsed %.3f ms for a ~30 ms kernel on the NULL stream", ms);

    CHECK(cuEventDestroy(e0));
    CHECK(cuEventDestroy(e1));
    CHECK(cuEventDestroy(e2));
    CHECK(cuEventDestroy(enot));
    CHECK(cuStreamDestroy(s));
}

static void wait_event_across_streams(CUdeviceptr out, uint32_t *pinned)
{
    CUstream a, b;
    CHECK(cuStreamCreate(&a, CU_STREAM_NON_BLOCKING));
    CHECK(cuStreamCreate(&b, CU_STREAM_NON_BLOCKING));
    CUevent e;
    CHECK(cuEventCreate(&e, CU_EVENT_DISABLE_TIMING));
    CHECK(cuMemsetD32(out, 0, 32));
    memset(pinned, 0, 32 * 4);

    double t0 = now_ms();
    launch_sleep(g_sleep, a, out, MS, 100, 32); /* writes 100 after ~100 ms */
    CHECK(cuEventRecord(e, a));
    CHECK(cuStreamWaitEvent(b, e, 0));
    CHECK(cuMemcpyDtoHAsync(pinned, out, 32 * 4, b));
    CHECK(cuStreamSynchronize(b));
    double wall = now_ms() - t0;
    expect_words(pinned, 32, 100u, "copy in stream b after cuStreamWaitEvent");
    EXPECT(wall >= 80.0, "stream b finished after %.1f ms, before stream a's ~100 ms kernel", wall);
    CHECK(cuStreamSynchronize(a));
    CHECK(cuEventDestroy(e));
    CHECK(cuStreamDestroy(a));
    CHECK(cuStreamDestroy(b));
    OK("cuStreamWaitEvent orders a copy in stream b after a kernel in stream a (%.1f ms)", wall);
}

static void legacy_default_stream(CUdeviceptr out, uint32_t *pinned)
{
    CUstream blk, nb;
    CHECK(cuStreamCreate(&blk, CU_STREAM_DEFAULT));
    CHECK(cuStreamCreate(&nb, CU_STREAM_NON_BLOCKING));

    /* Blocking stream then legacy stream: the legacy stream waits. */
    CHECK(cuMemsetD32(out, 0, 32));
    memset(pinned, 0, 32 * 4);
    launch_sleep(g_sleep, blk, out, MS, 100, 32);
    CHECK(cuMemcpyDtoHAsync(pinned, out, 32 * 4, NULL));
    CHECK(cuStreamSynchronize(NULL));
    expect_words(pinned, 32, 100u, "legacy-stream copy after a blocking stream's kernel");
    CHECK(cuStreamSynchronize(blk));

    /* Legacy stream then blocking stream: the blocking stream waits. */
    CHECK(cuMemsetD32(out, 0, 32));
    memset(pinned, 0, 32 * 4);
    launch_sleep(g_sleep, NULL, out, MS, 60, 32);
    CHECK(cuMemcpyDtoHAsync(pinned, out, 32 * 4, blk));
    CHECK(cuStreamSynchronize(blk));
    expect_words(pinned, 32, 60u, "blocking-stream copy after a legacy-stream kernel");
    CHECK(cuCtxSynchronize());
    OK("legacy default stream synchronises with blocking streams (both directions)");

    /* A non-blocking stream does not synchronise with the legacy stream. */
    CUdeviceptr small = 0;
    CHECK(cuMemAlloc(&small, 256));
    CHECK(cuMemsetD32(out, 0, 32));
    CHECK(cuCtxSynchronize());
    double t0 = now_ms();
    launch_sleep(g_sleep, nb, out, MS, 400, 32); /* ~400 ms */
    /* Only a copy here (copy engine), so the check is about stream ordering, not about whether
     * two kernels can share the compute engine. */
    CHECK(cuMemcpyHtoDAsync(small, pinned, 32 * 4, NULL));
    CHECK(cuStreamSynchronize(NULL));
    double wall = now_ms() - t0;
    EXPECT(wall < 250.0, "legacy-stream copy waited %.1f ms for a non-blocking stream's kernel", wall);
    EXPECT_ERR(cuStreamQuery(nb), CUDA_ERROR_NOT_READY);
    CHECK(cuStreamSynchronize(nb));
    CHECK(cuMemFree(small));
    CHECK(cuStreamDestroy(blk));
    CHECK(cuStreamDestroy(nb));
    OK("CU_STREAM_NON_BLOCKING does not synchronise with the legacy stream (%.1f ms)", wall);

    /* cuStreamDestroy with pending work: returns at once, the work completes. */
    CUstream sx;
    CHECK(cuStreamCreate(&sx, CU_STREAM_NON_BLOCKING));
    CHECK(cuMemsetD32(out, 0, 32));
    launch_sleep(g_sleep, sx, out, MS, 50, 32);
    CHECK(cuStreamDestroy(sx));
    CHECK(cuCtxSynchronize());
    uint32_t h[32];
    CHECK(cuMemcpyDtoH(h, out, sizeof h));
    expect_words(h, 32, 50u, "work of a stream destroyed while busy");
    OK("cuStreamDestroy with pending work");
}

struct pt_args {
    int role; /* 0: long sleeper, 1: quick worker */
    pthread_barrier_t *barrier;
    double quick_wall_ms;
    int failed_line;
};

/* A failure in a helper thread ends the whole program (the other thread may be blocked on the
 * barrier, so returning would hang it). */
#define PT_CHECK(call) CHECK(call)

static void *per_thread_main(void *p)
{
    struct pt_args *a = (struct pt_args *)p;
    PT_CHECK(cuCtxSetCurrent(g_ctx));
    CUdeviceptr d = 0;
    PT_CHECK(cuMemAlloc(&d, 64 * 4));
    if (a->role == 0) {
        int iters = 400, n = 32;
        unsigned ns = MS;
        void *params[] = {&d, &ns, &iters, &n};
        PT_CHECK(cuLaunchKernel_ptsz(g_sleep, 1, 1, 1, 32, 1, 1, 0, NULL, params, NULL));
        pthread_barrier_wait(a->barrier); /* the other thread starts now */
        pthread_barrier_wait(a->barrier); /* ... and has finished */
        PT_CHECK(cuStreamSynchronize_ptsz(NULL));
    } else {
        pthread_barrier_wait(a->barrier);
        double t0 = now_ms();
        uint32_t h[64];
        for (int i = 0; i < 64; i++) {
            h[i] = (uint32_t)i;
        }
        /* Copies only (copy engines): the check is about stream ordering, not about whether two
         * kernels can share the compute engine. */
        PT_CHECK(cuMemcpyHtoDAsync_v2_ptsz(d, h, sizeof h, NULL));
        memset(h, 0, sizeof h);
        PT_CHECK(cuMemcpyDtoHAsync_v2_ptsz(h, d, sizeof h, NULL));
        PT_CHECK(cuStreamSynchronize_ptsz(NULL));
        a->quick_wall_ms = now_ms() - t0;
        for (int i = 0; i < 64; i++) {
            EXPECT(h[i] == (uint32_t)i, "per-thread stream copy: word %d = %u", i, h[i]);
        }
        pthread_barrier_wait(a->barrier);
    }
    PT_CHECK(cuMemFree(d));
    return NULL;
}

static void per_thread_default_stream(void)
{
    /* Single thread: _ptsz entry points with stream 0, and the CU_STREAM_PER_THREAD handle. */
    const int n = 2000;
    float *ha = malloc(n * 4), *hb = malloc(n * 4), *hc = malloc(n * 4);
    for (int i = 0; i < n; i++) {
        ha[i] = (float)i;
        hb[i] = 1.0f;
    }
    CUdeviceptr da, db, dc;
    CHECK(cuMemAlloc(&da, n * 4));
    CHECK(cuMemAlloc(&db, n * 4));
    CHECK(cuMemAlloc(&dc, n * 4));
    CHECK(cuMemcpyHtoDAsync_v2_ptsz(da, ha, n * 4, NULL));
    CHECK(cuMemsetD32Async_ptsz(db, 0, (size_t)n, NULL));
    CHECK(cuMemcpyHtoDAsync(db, hb, n * 4, CU_STREAM_PER_THREAD));
    int nn = n;
    void *params[] = {&da, &db, &dc, &nn};
    CHECK(cuLaunchKernel_ptsz(g_vadd, (n + 255) / 256, 1, 1, 256, 1, 1, 0, NULL, params, NULL));
    CHECK(cuMemcpyDtoHAsync_v2_ptsz(hc, dc, n * 4, NULL));
    CHECK(cuStreamSynchronize_ptsz(NULL));
    CHECK(cuStreamQuery_ptsz(NULL));
    CHECK(cuStreamSynchronize(CU_STREAM_PER_THREAD));
    for (int i = 0; i < n; i++) {
        EXPECT(hc[i] == (float)i + 1.0f, "per-thread stream vector_add[%d] = %f", i, hc[i]);
    }
    CHECK(cuLaunchKernel(g_vadd, (n + 255) / 256, 1, 1, 256, 1, 1, 0, CU_STREAM_PER_THREAD, params, NULL));
    CHECK(cuStreamSynchronize(CU_STREAM_PER_THREAD));
    CHECK(cuMemFree(da));
    CHECK(cuMemFree(db));
    CHECK(cuMemFree(dc));
    free(ha);
    free(hb);
    free(hc);
    OK("per-thread default stream via _ptsz entry points and CU_STREAM_PER_THREAD");

    /* Two threads: per-thread default streams are independent. */
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    struct pt_args a0 = {0, &barrier, 0.0, 0}, a1 = {1, &barrier, 0.0, 0};
    pthread_t t0, t1;
    EXPECT(pthread_create(&t0, NULL, per_thread_main, &a0) == 0, "pthread_create");
    EXPECT(pthread_create(&t1, NULL, per_thread_main, &a1) == 0, "pthread_create");
    pthread_join(t0, NULL);
    pthread_join(t1, NULL);
    pthread_barrier_destroy(&barrier);
    EXPECT(a0.failed_line == 0 && a1.failed_line == 0, "thread failures at lines %d / %d", a0.failed_line,
           a1.failed_line);
    EXPECT(a1.quick_wall_ms < 250.0,
           "a thread's per-thread stream waited %.1f ms for another thread's ~400 ms kernel", a1.quick_wall_ms);
    OK("per-thread default streams of two threads are independent (%.1f ms)", a1.quick_wall_ms);
}

int main(void)
{
    watchdog(120);
    EXPECT(env_is("GPUSHARE_CPU_PACING", "1"), "run with GPUSHARE_CPU_PACING=1 (the harness does)");
    CUdevice dev;
    g_ctx = init_primary(&dev);
    CUmodule ms = load_module("busy_sleep");
    g_sleep = get_function(ms, "busy_sleep");
    CUmodule mv = load_module("vector_add");
    g_vadd = get_function(mv, "vector_add");
    CUdeviceptr out = 0;
    CHECK(cuMemAlloc(&out, 32 * 4));
    uint32_t *pinned = NULL;
    CHECK(cuMemAllocHost((void **)&pinned, 32 * 4));

    stream_basics();
    query_and_events(out);
    wait_event_across_streams(out, pinned);
    legacy_default_stream(out, pinned);
    per_thread_default_stream();

    CHECK(cuCtxSynchronize());
    CHECK(cuMemFreeHost(pinned));
    CHECK(cuMemFree(out));
    CHECK(cuModuleUnload(ms));
    CHECK(cuModuleUnload(mv));
    CHECK(cuDevicePrimaryCtxRelease(dev));
    return 0;
}
