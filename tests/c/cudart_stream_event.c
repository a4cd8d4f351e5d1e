/*
 * CUDA runtime over the CPU device, part 2: streams, events, ordering.
 *
 * Semantics assumed (CUDA Runtime API reference, 12.9):
 *  - cudaDeviceGetStreamPriorityRange on compute capability 9.0: least 0, greatest -5.
 *    cudaStreamCreateWithPriority clamps out-of-range priorities into that range;
 *    cudaStreamGetPriority / cudaStreamGetFlags report what the stream was created with.
 *  - cudaStreamNonBlocking streams do not synchronise with the legacy default stream.
 *  - cudaStreamPerThread is a valid stream handle on every thread (its own per-thread stream).
 *  - Events: cudaEventQuery -> cudaSuccess once the work before the record completed;
 *    cudaEventElapsedTime(start, stop) >= 0 in milliseconds for two completed timing events;
 *    cudaEventDisableTiming events make it fail with cudaErrorInvalidResourceHandle.
 *  - cudaStreamWaitEvent orders later work in a stream after the event's work in another.
 *  - Work on one stream runs in issue order (copy chain through device memory).
 */
#include "cudart_common.h"

#include <pthread.h>

static void test_priorities(void)
{
    int least = 99, greatest = 99;
    CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    EXPECT(least == 0 && greatest == -5, "priority range [%d, %d]", least, greatest);
    cudaStream_t hi, lo, nb;
    CHECK(cudaStreamCreateWithPriority(&hi, cudaStreamNonBlocking, greatest));
    CHECK(cudaStreamCreateWithPriority(&lo, cudaStreamDefault, least));
    CHECK(cudaStreamCreateWithFlags(&nb, cudaStreamNonBlocking));
    int p = 99;
    unsigned flags = 99;
    CHECK(cudaStreamGetPriority(hi, &p));
    EXPECT(p == greatest, "high priority %d", p);
    CHECK(cudaStreamGetFlags(hi, &flags));
    EXPECT(flags == cudaStreamNonBlocking, "hi flags %u", flags);
    CHECK(cudaStreamGetPriority(lo, &p));
    EXPECT(p == least, "low priority %d", p);
    CHECK(cudaStreamGetFlags(lo, &flags));
    EXPECT(flags == cudaStreamDefault, "lo flags %u", flags);
    CHECK(cudaStreamGetFlags(nb, &flags));
    EXPECT(flags == cudaStreamNonBlocking, "nb flags %u", flags);
    /* Out of range priorities are clamped. */
    cudaStream_t clamped;
    CHECK(cudaStreamCreateWithPriority(&clamped, cudaStreamDefault, -100));
    CHECK(cudaStreamGetPriority(clamped, &p));
    EXPECT(p == greatest, "clamped priority %d", p);
    CHECK(cudaStreamDestroy(clamped));
    CHECK(cudaStreamQuery(hi));
    CHECK(cudaStreamSynchronize(lo));
    CHECK(cudaStreamDestroy(hi));
    CHECK(cudaStreamDestroy(lo));
    CHECK(cudaStreamDestroy(nb));
    OK("stream priorities and flags");
}

/* A chain of async copies a -> d1 -> d2 -> b on `s`: correct only if they run in order. */
static void copy_chain(cudaStream_t s, size_t n)
{
    unsigned char *a = NULL, *b = NULL;
    CHECK(cudaMallocHost((void **)&a, n));
    CHECK(cudaMallocHost((void **)&b, n));
    for (size_t i = 0; i < n; i++) {
        a[i] = (unsigned char)(i * 7 + 1);
    }
    memset(b, 0, n);
    void *d1 = NULL, *d2 = NULL;
    CHECK(cudaMalloc(&d1, n));
    CHECK(cudaMalloc(&d2, n));
    CHECK(cudaMemsetAsync(d1, 0, n, s));
    CHECK(cudaMemcpyAsync(d1, a, n, cudaMemcpyHostToDevice, s));
    CHECK(cudaMemcpyAsync(d2, d1, n, cudaMemcpyDeviceToDevice, s));
    CHECK(cudaMemcpyAsync(b, d2, n, cudaMemcpyDeviceToHost, s));
    CHECK(cudaStreamSynchronize(s));
    EXPECT(memcmp(a, b, n) == 0, "copy chain on stream %p", (void *)s);
    CHECK(cudaFree(d1));
    CHECK(cudaFree(d2));
    CHECK(cudaFreeHost(a));
    CHECK(cudaFreeHost(b));
}

static void *per_thread_main(void *arg)
{
    (void)arg;
    copy_chain(cudaStreamPerThread, 1 << 20);
    return NULL;
}

static void test_per_thread_stream(void)
{
    copy_chain(cudaStreamPerThread, 1 << 20);
    copy_chain(cudaStreamLegacy, 1 << 16);
    copy_chain(0, 1 << 16);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        EXPECT(pthread_create(&t[i], NULL, per_thread_main, NULL) == 0, "pthread_create");
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
    }
    OK("cudaStreamPerThread (main thread and two others), legacy stream");
}

static void test_events(void)
{
    cudaEvent_t start, stop, no_timing;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreateWithFlags(&stop, cudaEventBlockingSync));
    CHECK(cudaEventCreateWithFlags(&no_timing, cudaEventDisableTiming));
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    const size_t n = 8 << 20;
    void *d = NULL;
    unsigned char *h = NULL;
    CHECK(cudaMalloc(&d, n));
    CHECK(cudaMallocHost((void **)&h, n));
    memset(h, 1, n);
    CHECK(cudaEventRecord(start, s));
    for (int i = 0; i < 4; i++) {
        CHECK(cudaMemcpyAsync(d, h, n, cudaMemcpyHostToDevice, s));
    }
    CHECK(cudaEventRecord(stop, s));
    CHECK(cudaEventRecord(no_timing, s));
    CHECK(cudaEventSynchronize(stop));
    CHECK(cudaEventQuery(stop));
    CHECK(cudaEventSynchronize(no_timing));
    float ms = -1.0f;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    EXPECT(ms >= 0.0f && ms < 60000.0f, "elapsed %f ms", ms);
    EXPECT_ERR(cudaEventElapsedTime(&ms, start, no_timing), cudaErrorInvalidResourceHandle);
    EXPECT_ERR(cudaGetLastError(), cudaErrorInvalidResourceHandle);
    OK("events: record, synchronize, query, elapsed %.3f ms for 32 MiB H2D", ms);

    /* cudaStreamWaitEvent: s2's copy of d must see s's write. */
    cudaStream_t s2;
    CHECK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    unsigned char *back = NULL;
    CHECK(cudaMallocHost((void **)&back, n));
    memset(h, 0x5a, n);
    memset(back, 0, n);
    cudaEvent_t written;
    CHECK(cudaEventCreateWithFlags(&written, cudaEventDisableTiming));
    CHECK(cudaMemcpyAsync(d, h, n, cudaMemcpyHostToDevice, s));
    CHECK(cudaEventRecord(written, s));
    CHECK(cudaStreamWaitEvent(s2, written, 0));
    CHECK(cudaMemcpyAsync(back, d, n, cudaMemcpyDeviceToHost, s2));
    CHECK(cudaStreamSynchronize(s2));
    for (size_t i = 0; i < n; i += 4096) {
        EXPECT(back[i] == 0x5a, "byte %zu = %#x after cudaStreamWaitEvent", i, back[i]);
    }
    OK("cudaStreamWaitEvent orders work across streams");

    /* Events on the per-thread stream. */
    CHECK(cudaEventRecord(start, cudaStreamPerThread));
    CHECK(cudaMemsetAsync(d, 0, n, cudaStreamPerThread));
    CHECK(cudaEventRecord(stop, cudaStreamPerThread));
    CHECK(cudaEventSynchronize(stop));
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    EXPECT(ms >= 0.0f, "per-thread elapsed %f", ms);
    CHECK(cudaDeviceSynchronize());

    CHECK(cudaEventDestroy(start));
    CHECK(cudaEventDestroy(stop));
    CHECK(cudaEventDestroy(no_timing));
    CHECK(cudaEventDestroy(written));
    CHECK(cudaStreamDestroy(s));
    CHECK(cudaStreamDestroy(s2));
    CHECK(cudaFree(d));
    CHECK(cudaFreeHost(h));
    CHECK(cudaFreeHost(back));
    OK("events on cudaStreamPerThread, cudaDeviceSynchronize");
}

int main(void)
{
    watchdog(120);
    test_priorities();
    test_per_thread_stream();
    test_events();
    printf("PASS\n");
    return 0;
}
