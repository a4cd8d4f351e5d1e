/*
 * Benchmark of the driver-API paths the shim forwards to the broker (run directly on a driver and
 * through `gpushare run` by scripts/bench-shim.sh; tests/tests/bench_programs.rs runs it with tiny
 * counts only to check that it works and that its output parses — figures are never asserted).
 *
 * Usage: bench_shim [--launches N] [--batches B] [--queries Q] [--copy-mib M] [--copy-reps R]
 *                   [--rate-launches L] [--rate-reps P]
 *
 * Figures (one per line, "KEY VALUE UNIT", KEY unique; nothing else goes to stdout):
 *  launch_async_ns      median over B batches of the per-launch time of N back-to-back
 *                       asynchronous cuLaunchKernel(empty_kernel) calls on one stream (the
 *                       tenant-side cost of a launch; the stream is synchronised between batches,
 *                       outside the timed part)
 *  stream_query_p50_us  cuStreamQuery on an idle stream, each of Q calls timed alone: median
 *  stream_query_p99_us  ... and 99th percentile
 *  call_p50_us          cuCtxGetStreamPriorityRange, each of Q calls timed alone: median (through
 *                       the shim a synchronous round trip to the broker: a CALL record on the
 *                       ring, the reply in a reply slot; directly, a local function call)
 *  call_p99_us          ... and 99th percentile
 *  device_call_p50_us   cuFuncGetAttribute(NUM_REGS), each of Q calls timed alone: median (through
 *                       the shim a round trip that the broker forwards to the group's worker: two
 *                       hops, tenant -> broker -> worker and back)
 *  device_call_p99_us   ... and 99th percentile
 *  h2d_pageable_gbps    cuMemcpyHtoD of M MiB from malloc'd memory (median of R, after a warm-up;
 *                       each upload's content new: see stamp())
 *  d2h_pageable_gbps    cuMemcpyDtoH of M MiB into malloc'd memory
 *  h2d_pinned_gbps      the same from cuMemAllocHost memory
 *  d2h_pinned_gbps      the same into cuMemAllocHost memory
 *  launches_per_s       L empty launches then cuStreamSynchronize, L / elapsed (median of P)
 *  alloc_free_small_us  cuMemAlloc of 4 KiB then cuMemFree, each pair timed alone, Q / 10 pairs
 *                       (at least 100): median (through the shim a small allocation is a piece of
 *                       the tenant's slab: the broker answers without the worker)
 *  alloc_free_large_us  the same for 4 MiB (its own VMM allocation on the worker)
 * GB/s are 1e9 bytes per second. Defaults: N 1000, B 11, Q 10000, M 64, R 5, L 10000, P 5.
 */
#include "common.h"

#include "bench_util.h"

#define MiB (1024ull * 1024ull)

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static unsigned long arg(int argc, char **argv, const char *name, unsigned long dflt)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return strtoul(argv[i + 1], NULL, 0);
        }
    }
    return dflt;
}

/* Before each upload (untimed), the rep's number in every 64 KiB of the source: every upload's
 * content is new, as a model's layers are, rather than the same bytes again, which deduplication
 * would recognise and which no model uploads. */
static void stamp(void *host, size_t bytes, unsigned long rep)
{
    for (size_t at = 0; at + sizeof rep <= bytes; at += 64 << 10) {
        memcpy((char *)host + at, &rep, sizeof rep);
    }
}

/* Median GB/s of `reps` synchronous copies of `bytes` (after one warm-up copy). */
static double copy_gbps(int h2d, CUdeviceptr dev, void *host, size_t bytes, unsigned long reps)
{
    double *v = calloc(reps, sizeof *v);
    EXPECT(v != NULL, "calloc");
    for (unsigned long r = 0; r <= reps; r++) {
        if (h2d) {
            stamp(host, bytes, r);
        }
        double t0 = now_ns();
        if (h2d) {
            CHECK(cuMemcpyHtoD(dev, host, bytes));
        } else {
            CHECK(cuMemcpyDtoH(host, dev, bytes));
        }
        double t1 = now_ns();
        if (r > 0) {
            v[r - 1] = (double)bytes / (t1 - t0); /* bytes per ns = GB/s */
        }
    }
    double m = quantile(v, reps, 0.5);
    free(v);
    return m;
}

int main(int argc, char **argv)
{
    const unsigned long launches = arg(argc, argv, "--launches", 1000);
    const unsigned long batches = arg(argc, argv, "--batches", 11);
    const unsigned long queries = arg(argc, argv, "--queries", 10000);
    const unsigned long copy_mib = arg(argc, argv, "--copy-mib", 64);
    const unsigned long copy_reps = arg(argc, argv, "--copy-reps", 5);
    const unsigned long rate_launches = arg(argc, argv, "--rate-launches", 10000);
    const unsigned long rate_reps = arg(argc, argv, "--rate-reps", 5);
    EXPECT(launches > 0 && batches > 0 && queries > 0 && copy_mib > 0 && copy_reps > 0 &&
               rate_launches > 0 && rate_reps > 0,
           "every count must be positive");

    init_primary(NULL);
    CUmodule m = load_module("empty_kernel");
    CUfunction empty = get_function(m, "empty_kernel");
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    /* Warm-up: the first launch may load lazily. */
    CHECK(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL));
    CHECK(cuStreamSynchronize(s));

    /* (i) Tenant-side cost of an asynchronous launch. */
    double *per_launch = calloc(batches, sizeof *per_launch);
    EXPECT(per_launch != NULL, "calloc");
    for (unsigned long b = 0; b < batches; b++) {
        double t0 = now_ns();
        for (unsigned long i = 0; i < launches; i++) {
            CHECK(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL));
        }
        double t1 = now_ns();
        per_launch[b] = (t1 - t0) / (double)launches;
        CHECK(cuStreamSynchronize(s));
    }
    printf("launch_async_ns %.1f ns\n", quantile(per_launch, batches, 0.5));
    free(per_launch);

    /* (ii) cuStreamQuery on an idle stream. */
    double *q = calloc(queries, sizeof *q);
    EXPECT(q != NULL, "calloc");
    for (unsigned long i = 0; i < queries; i++) {
        double t0 = now_ns();
        CUresult r = cuStreamQuery(s);
        double t1 = now_ns();
        EXPECT(r == CUDA_SUCCESS, "cuStreamQuery on an idle stream -> %s", cu_name(r));
        q[i] = (t1 - t0) / 1e3;
    }
    printf("stream_query_p50_us %.3f us\n", quantile(q, queries, 0.5));
    printf("stream_query_p99_us %.3f us\n", quantile(q, queries, 0.99));

    /* (ii-b) A synchronous call that returns values: a round trip through the shim. */
    for (unsigned long i = 0; i < queries; i++) {
        int least = 0, greatest = 0;
        double t0 = now_ns();
        CUresult r = cuCtxGetStreamPriorityRange(&least, &greatest);
        double t1 = now_ns();
        EXPECT(r == CUDA_SUCCESS, "cuCtxGetStreamPriorityRange -> %s", cu_name(r));
        q[i] = (t1 - t0) / 1e3;
    }
    printf("call_p50_us %.3f us\n", quantile(q, queries, 0.5));
    printf("call_p99_us %.3f us\n", quantile(q, queries, 0.99));

    /* (ii-c) A synchronous call the broker forwards to the device (its worker). */
    for (unsigned long i = 0; i < queries; i++) {
        int regs = -1;
        double t0 = now_ns();
        CUresult r = cuFuncGetAttribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, empty);
        double t1 = now_ns();
        EXPECT(r == CUDA_SUCCESS && regs >= 0, "cuFuncGetAttribute -> %s", cu_name(r));
        q[i] = (t1 - t0) / 1e3;
    }
    printf("device_call_p50_us %.3f us\n", quantile(q, queries, 0.5));
    printf("device_call_p99_us %.3f us\n", quantile(q, queries, 0.99));
    free(q);

    /* (iii) Copy bandwidth, pageable and pinned. */
    const size_t bytes = (size_t)(copy_mib * MiB);
    CUdeviceptr dev = 0;
    CHECK(cuMemAlloc(&dev, bytes));
    void *pageable = malloc(bytes);
    EXPECT(pageable != NULL, "malloc %zu", bytes);
    memset(pageable, 0x11, bytes);
    void *pinned = NULL;
    CHECK(cuMemAllocHost(&pinned, bytes));
    memset(pinned, 0x22, bytes);
    printf("h2d_pageable_gbps %.2f GB/s\n", copy_gbps(1, dev, pageable, bytes, copy_reps));
    printf("d2h_pageable_gbps %.2f GB/s\n", copy_gbps(0, dev, pageable, bytes, copy_reps));
    printf("h2d_pinned_gbps %.2f GB/s\n", copy_gbps(1, dev, pinned, bytes, copy_reps));
    printf("d2h_pinned_gbps %.2f GB/s\n", copy_gbps(0, dev, pinned, bytes, copy_reps));
    CHECK(cuMemFreeHost(pinned));
    free(pageable);
    CHECK(cuMemFree(dev));

    /* (iv) Launch throughput. */
    double *rate = calloc(rate_reps, sizeof *rate);
    EXPECT(rate != NULL, "calloc");
    for (unsigned long r = 0; r < rate_reps; r++) {
        double t0 = now_ns();
        for (unsigned long i = 0; i < rate_launches; i++) {
            CHECK(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, s, NULL, NULL));
        }
        CHECK(cuStreamSynchronize(s));
        double t1 = now_ns();
        rate[r] = (double)rate_launches / ((t1 - t0) / 1e9);
    }
    printf("launches_per_s %.0f 1/s\n", quantile(rate, rate_reps, 0.5));
    free(rate);

    /* (v) Allocation and free of a small and of a large buffer. */
    const unsigned long pairs = queries / 10 < 100 ? 100 : queries / 10;
    double *af = calloc(pairs, sizeof *af);
    EXPECT(af != NULL, "calloc");
    const size_t sizes[2] = {4096, 4 * MiB};
    const char *names[2] = {"alloc_free_small_us", "alloc_free_large_us"};
    for (int k = 0; k < 2; k++) {
        for (unsigned long i = 0; i < pairs; i++) {
            CUdeviceptr p = 0;
            double t0 = now_ns();
            CHECK(cuMemAlloc(&p, sizes[k]));
            CHECK(cuMemFree(p));
            af[i] = (now_ns() - t0) / 1e3;
        }
        printf("%s %.3f us\n", names[k], quantile(af, pairs, 0.5));
    }
    free(af);

    CHECK(cuStreamDestroy(s));
    CHECK(cuModuleUnload(m));
    return 0;
}
