/*
 * Family k: the timing model, observed through wall-clock time and events.
 *
 * Run with GPUSHARE_CPU_PROFILE=small GPUSHARE_CPU_PACING=1. The small profile's model (the
 * gpushare CPU device contract): H2D/D2H over pinned memory 2 GB/s, over pageable memory
 * 0.5 GB/s, one copy engine per direction (async engine count 2), kernels and copies in
 * different streams run concurrently. With pacing, completions track wall-clock time.
 *
 * This mirrors real GPU behaviour (CUDA C++ Programming Guide, "Asynchronous Concurrent
 * Execution" / "Overlap of Data Transfer and Kernel Execution"): a copy in one stream overlaps a
 * kernel in another; copies in the same direction share one engine and serialise; an H2D and a
 * D2H copy use different engines and overlap; pageable copies are slower than pinned ones.
 *
 * Assertions compare a combined run against the same operations measured alone (self-calibrating),
 * with generous margins.
 */
#include "common.h"

#define MiB (1024ull * 1024ull)
#define MS 1000000u

static CUfunction g_sleep;

int main(void)
{
    watchdog(120);
    EXPECT(env_is("GPUSHARE_CPU_PACING", "1"), "run with GPUSHARE_CPU_PACING=1 (the harness does)");
    CUdevice dev;
    init_primary(&dev);
    int engines = 0;
    CHECK(cuDeviceGetAttribute(&engines, CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT, dev));
    EXPECT(engines >= 2, "async engine count %d", engines);
    CUmodule m = load_module("busy_sleep");
    g_sleep = get_function(m, "busy_sleep");

    const size_t size = 128 * MiB;
    void *hp1 = NULL, *hp2 = NULL;
    CHECK(cuMemAllocHost(&hp1, size));
    CHECK(cuMemAllocHost(&hp2, size));
    void *pageable = malloc(size);
    EXPECT(pageable != NULL, "malloc");
    memset(hp1, 1, size);
    memset(hp2, 2, size);
    memset(pageable, 3, size);
    CUdeviceptr d1 = 0, d2 = 0, dk = 0;
    CHECK(cuMemAlloc(&d1, size));
    CHECK(cuMemAlloc(&d2, size));
    CHECK(cuMemAlloc(&dk, 32 * 4));
    CUstream s1, s2;
    CHECK(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
    CHECK(cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING));
    CUevent e0, e1;
    CHECK(cuEventCreate(&e0, 0));
    CHECK(cuEventCreate(&e1, 0));

    /* Warm-up (first-touch of device memory, lazy initialisation). */
    CHECK(cuMemcpyHtoD(d1, hp1, size));
    CHECK(cuMemcpyHtoD(d2, hp2, size));
    CHECK(cuCtxSynchronize());

    /* 1. Pinned vs pageable, measured with events. */
    float ms_pinned = 0.0f, ms_pageable = 0.0f;
    CHECK(cuEventRecord(e0, s1));
    CHECK(cuMemcpyHtoDAsync(d1, hp1, size, s1));
    CHECK(cuEventRecord(e1, s1));
    CHECK(cuEventSynchronize(e1));
    CHECK(cuEventElapsedTime(&ms_pinned, e0, e1));
    CHECK(cuEventRecord(e0, s1));
    CHECK(cuMemcpyHtoDAsync(d1, pageable, size, s1));
    CHECK(cuEventRecord(e1, s1));
    CHECK(cuEventSynchronize(e1));
    CHECK(cuEventElapsedTime(&ms_pageable, e0, e1));
    /* 128 MiB at 2 GB/s ~ 67 ms; at 0.5 GB/s ~ 268 ms. */
    EXPECT(ms_pinned >= 40.0f && ms_pinned < 400.0f, "pinned 128 MiB H2D took %.2f ms (model ~67 ms)", ms_pinned);
    EXPECT(ms_pageable > 2.5f * ms_pinned, "pageable %.2f ms vs pinned %.2f ms (model: 4x slower)", ms_pageable,
           ms_pinned);
    OK("H2D 128 MiB: pinned %.2f ms, pageable %.2f ms", ms_pinned, ms_pageable);

    /* Each operation alone (wall clock). */
    double t = now_ms();
    launch_sleep(g_sleep, s1, dk, MS, 100, 32);
    CHECK(cuStreamSynchronize(s1));
    double t_kernel = now_ms() - t;

    t = now_ms();
    CHECK(cuMemcpyHtoDAsync(d1, hp1, size, s2));
    CHECK(cuStreamSynchronize(s2));
    double t_h2d = now_ms() - t;

    t = now_ms();
    CHECK(cuMemcpyDtoHAsync(hp2, d2, size, s2));
    CHECK(cuStreamSynchronize(s2));
    double t_d2h = now_ms() - t;
    EXPECT(t_kernel >= 80.0, "a ~100 ms paced kernel took %.1f ms", t_kernel);
    EXPECT(t_h2d >= 40.0, "a ~67 ms paced H2D copy took %.1f ms", t_h2d);
    EXPECT(t_d2h >= 40.0, "a ~67 ms paced D2H copy took %.1f ms", t_d2h);
    OK("alone: kernel %.1f ms, H2D %.1f ms, D2H %.1f ms", t_kernel, t_h2d, t_d2h);

    /* 2. An H2D copy in one stream overlaps a kernel in another. */
    t = now_ms();
    launch_sleep(g_sleep, s1, dk, MS, 100, 32);
    CHECK(cuMemcpyHtoDAsync(d1, hp1, size, s2));
    CHECK(cuStreamSynchronize(s1));
    CHECK(cuStreamSynchronize(s2));
    double t_both = now_ms() - t;
    EXPECT(t_both < 0.85 * (t_kernel + t_h2d), "kernel + H2D in two streams took %.1f ms, sum alone %.1f ms",
           t_both, t_kernel + t_h2d);
    EXPECT(t_both >= 0.85 * (t_kernel > t_h2d ? t_kernel : t_h2d), "overlapped run %.1f ms is shorter than its parts",
           t_both);
    OK("kernel || H2D: %.1f ms (alone %.1f + %.1f)", t_both, t_kernel, t_h2d);

    /* 3. Two H2D copies in different streams serialise on the single H2D engine. */
    t = now_ms();
    CHECK(cuMemcpyHtoDAsync(d1, hp1, size, s1));
    CHECK(cuMemcpyHtoDAsync(d2, hp2, size, s2));
    CHECK(cuStreamSynchronize(s1));
    CHECK(cuStreamSynchronize(s2));
    double t_two_h2d = now_ms() - t;
    EXPECT(t_two_h2d >= 0.8 * 2.0 * t_h2d, "two H2D copies in two streams took %.1f ms; one alone %.1f ms",
           t_two_h2d, t_h2d);
    OK("H2D + H2D serialise: %.1f ms (one alone %.1f)", t_two_h2d, t_h2d);

    /* 4. An H2D and a D2H copy use different engines and overlap. */
    t = now_ms();
    CHECK(cuMemcpyHtoDAsync(d1, hp1, size, s1));
    CHECK(cuMemcpyDtoHAsync(hp2, d2, size, s2));
    CHECK(cuStreamSynchronize(s1));
    CHECK(cuStreamSynchronize(s2));
    double t_h2d_d2h = now_ms() - t;
    EXPECT(t_h2d_d2h < 0.8 * (t_h2d + t_d2h), "H2D + D2H in two streams took %.1f ms; alone %.1f + %.1f ms",
           t_h2d_d2h, t_h2d, t_d2h);
    OK("H2D || D2H overlap: %.1f ms (alone %.1f + %.1f)", t_h2d_d2h, t_h2d, t_d2h);

    CHECK(cuEventDestroy(e0));
    CHECK(cuEventDestroy(e1));
    CHECK(cuStreamDestroy(s1));
    CHECK(cuStreamDestroy(s2));
    CHECK(cuMemFree(d1));
    CHECK(cuMemFree(d2));
    CHECK(cuMemFree(dk));
    CHECK(cuMemFreeHost(hp1));
    CHECK(cuMemFreeHost(hp2));
    free(pageable);
    CHECK(cuModuleUnload(m));
    CHECK(cuDevicePrimaryCtxRelease(dev));
    return 0;
}
