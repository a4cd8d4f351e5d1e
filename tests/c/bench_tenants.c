/*
 * Tenant benchmark for issue 12 (scripts/bench-tenants.sh): transfers and compute from several
 * tenants at once, and the latency from a piece of work's completion to the waiting thread's wake.
 *
 * Usage: bench_tenants [--seconds S] [--mib M] [--kernel-us U] [--pageable 0|1] [--start-at T]
 *        bench_tenants --wake N [--gap-us G] [--long-us L]
 *
 * Batch mode (default): for S seconds, batch after batch on one stream: upload M MiB (from
 * pinned memory, cuMemAllocHost, or with --pageable 1 from malloc'd memory), busy_sleep for about
 * U µs (under GPUSHARE_CPU_PACING=1 on the CPU device), download M MiB, cuStreamSynchronize.
 * Every batch's download is checked against its upload (the kernel leaves the buffer alone).
 * --start-at T: the measured loop starts at CLOCK_REALTIME T seconds (fractional), so tenants
 * started one after the other measure the same interval (the warm-up batch runs before).
 *   batches          batches completed within the S seconds
 *   elapsed_s        wall-clock seconds of the measured loop
 *   batches_per_s    batches / elapsed_s
 *   batch_p50_ms     median wall-clock time of one batch (upload call to synchronisation return)
 *
 * Wake mode (--wake N): on one stream, N times each (after G µs of sleep, default 0, so that
 * spinning threads may fall asleep between iterations):
 *   tiny_event_sync    launch busy_sleep(iters 0) and cuEventRecord, then time cuEventSynchronize
 *   tiny_stream_sync   launch busy_sleep(iters 0), then time cuStreamSynchronize
 *   tiny_launch_wake   from the launch call to cuStreamSynchronize's return
 *   long_overhead      record event a, busy_sleep for L µs (default 1000), record event b, then
 *                      (wall time from recording a to cuEventSynchronize(b) returning) minus
 *                      cuEventElapsedTime(a, b): what the path around the work costs beyond the
 *                      device's own time (submission, completion report, wake), with the waiter
 *                      asleep well past any spin budget
 * each printed as *_p50_us and *_p99_us.
 *
 * Output: one "name value unit" line per figure on stdout; nothing is asserted about them.
 */
#include "common.h"

#include "bench_util.h"

#define MiB ((size_t)1 << 20)

static double realtime_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sorts `v` and prints its p50 and p99 as NAME_p50_us / NAME_p99_us. */
static void percentiles(const char *name, double *v, size_t n)
{
    printf("%s_p50_us %.2f us\n", name, quantile(v, n, 0.5));
    printf("%s_p99_us %.2f us\n", name, quantile(v, n, 0.99));
}

static void gap(unsigned gap_us)
{
    if (gap_us > 0) {
        struct timespec ts = {gap_us / 1000000, (long)(gap_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
}

static int wake_mode(CUfunction f, CUstream s, CUdeviceptr out, size_t n, unsigned gap_us,
                     unsigned long_us)
{
    double *v = calloc(n, sizeof *v);
    EXPECT(v != NULL, "calloc");
    CUevent a, b;
    CHECK(cuEventCreate(&a, 0));
    CHECK(cuEventCreate(&b, 0));
    /* Warm-up: the module, the cost model, the paths. */
    for (int i = 0; i < 20; i++) {
        launch_sleep(f, s, out, 0, 0, 32);
        CHECK(cuEventRecord(b, s));
        CHECK(cuEventSynchronize(b));
    }

    for (size_t i = 0; i < n; i++) {
        gap(gap_us);
        launch_sleep(f, s, out, 0, 0, 32);
        CHECK(cuEventRecord(b, s));
        double t0 = now_us();
        CHECK(cuEventSynchronize(b));
        v[i] = now_us() - t0;
    }
    percentiles("tiny_event_sync", v, n);

    for (size_t i = 0; i < n; i++) {
        gap(gap_us);
        launch_sleep(f, s, out, 0, 0, 32);
        double t0 = now_us();
        CHECK(cuStreamSynchronize(s));
        v[i] = now_us() - t0;
    }
    percentiles("tiny_stream_sync", v, n);

    for (size_t i = 0; i < n; i++) {
        gap(gap_us);
        double t0 = now_us();
        launch_sleep(f, s, out, 0, 0, 32);
        CHECK(cuStreamSynchronize(s));
        v[i] = now_us() - t0;
    }
    percentiles("tiny_launch_wake", v, n);

    /* Long kernels: fewer of them (each lasts long_us). */
    size_t m = n / 4 > 50 ? n / 4 : (n < 50 ? n : 50);
    for (size_t i = 0; i < m; i++) {
        gap(gap_us);
        double t0 = now_us();
        CHECK(cuEventRecord(a, s));
        launch_sleep(f, s, out, 1000, (int)long_us, 32);
        CHECK(cuEventRecord(b, s));
        CHECK(cuEventSynchronize(b));
        double wall = now_us() - t0;
        float ms = 0;
        CHECK(cuEventElapsedTime(&ms, a, b));
        double o = wall - (double)ms * 1000.0;
        v[i] = o > 0 ? o : 0;
    }
    percentiles("long_overhead", v, m);

    CHECK(cuEventDestroy(a));
    CHECK(cuEventDestroy(b));
    free(v);
    return 0;
}

/* Batch mode (see the top): batches of upload, kernel, download for `seconds`, then the figures. */
static void batch_mode(CUfunction f, CUstream s, CUdeviceptr out, size_t bytes, unsigned kernel_us,
                       int pageable, double seconds, double start_at)
{
    CUdeviceptr dev;
    CHECK(cuMemAlloc(&dev, bytes));
    unsigned char *up, *down;
    if (pageable) {
        up = malloc(bytes);
        down = malloc(bytes);
        EXPECT(up != NULL && down != NULL, "malloc");
    } else {
        CHECK(cuMemAllocHost((void **)&up, bytes));
        CHECK(cuMemAllocHost((void **)&down, bytes));
    }
    memset(down, 0, bytes);

    size_t cap = 1 << 16, batches = 0;
    double *lat = calloc(cap, sizeof *lat);
    EXPECT(lat != NULL, "calloc");
    double t0 = 0;
    for (long b = -1;; b++) { /* batch -1: warm-up, not measured */
        if (b == 0) {
            if (start_at > 0) {
                double wait = start_at - realtime_s();
                if (wait > 0) {
                    gap((unsigned)(wait * 1e6));
                }
            }
            t0 = now_us();
        }
        unsigned char tag = (unsigned char)(b + 2);
        up[0] = tag;
        up[bytes / 2] = tag;
        up[bytes - 1] = tag;
        double t = now_us();
        CHECK(cuMemcpyHtoDAsync(dev, up, bytes, s));
        launch_sleep(f, s, out, 1000, (int)kernel_us, 32);
        CHECK(cuMemcpyDtoHAsync(down, dev, bytes, s));
        CHECK(cuStreamSynchronize(s));
        double end = now_us();
        EXPECT(down[0] == tag && down[bytes / 2] == tag && down[bytes - 1] == tag,
               "batch %ld tagged %u came back as %u", b, tag, down[0]);
        if (b < 0) {
            continue;
        }
        if (end - t0 > seconds * 1e6) {
            break; /* ran past the end: not counted */
        }
        if (batches < cap) {
            lat[batches] = (end - t) / 1000.0;
        }
        batches++;
    }
    double elapsed = seconds; /* the measured interval; the last batch ran past it */
    size_t n = batches < cap ? batches : cap;
    double p50 = 0;
    if (n > 0) {
        p50 = quantile(lat, n, 0.5);
    }
    printf("batches %zu batches\n", batches);
    printf("elapsed_s %.3f s\n", elapsed);
    printf("batches_per_s %.2f 1/s\n", (double)batches / elapsed);
    printf("batch_p50_ms %.3f ms\n", p50);

    free(lat);
    if (pageable) {
        free(up);
        free(down);
    } else {
        CHECK(cuMemFreeHost(up));
        CHECK(cuMemFreeHost(down));
    }
    CHECK(cuMemFree(dev));
}

int main(int argc, char **argv)
{
    double seconds = opt(argc, argv, "--seconds", 3);
    size_t bytes = (size_t)(opt(argc, argv, "--mib", 2) * (double)MiB);
    unsigned kernel_us = (unsigned)opt(argc, argv, "--kernel-us", 1500);
    int pageable = (int)opt(argc, argv, "--pageable", 0);
    double start_at = opt(argc, argv, "--start-at", 0);
    size_t wake = (size_t)opt(argc, argv, "--wake", 0);
    unsigned gap_us = (unsigned)opt(argc, argv, "--gap-us", 0);
    unsigned long_us = (unsigned)opt(argc, argv, "--long-us", 1000);
    EXPECT(bytes > 0 && seconds > 0, "usage: bench_tenants [--seconds S] [--mib M] [--kernel-us U] "
                                     "[--pageable 0|1] [--start-at T] | --wake N [--gap-us G]");
    watchdog((unsigned)(seconds + 120 + (start_at > 0 ? start_at - realtime_s() : 0)));

    init_primary(NULL);
    CUmodule mod = load_module("busy_sleep");
    CUfunction f = get_function(mod, "busy_sleep");
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CUdeviceptr out;
    CHECK(cuMemAlloc(&out, 32 * sizeof(unsigned)));
    if (wake > 0) {
        int rc = wake_mode(f, s, out, wake, gap_us, long_us);
        CHECK(cuMemFree(out));
        CHECK(cuStreamDestroy(s));
        CHECK(cuModuleUnload(mod));
        return rc;
    }

    batch_mode(f, s, out, bytes, kernel_us, pageable, seconds, start_at);
    CHECK(cuMemFree(out));
    CHECK(cuStreamDestroy(s));
    CHECK(cuModuleUnload(mod));
    return 0;
}
