/*
 * A tenant for the scheduling benchmarks (scripts/bench-sched.sh): launches busy_sleep kernels
 * (examples/kernels/busy_sleep.ptx; on the CPU device with GPUSHARE_CPU_PACING=1 a launch lasts
 * its modelled time: waves x ns x iters) for a fixed wall-clock time, and prints what it got.
 *
 * Usage: bench_sched [--seconds S] [--ns NS] [--iters I] [--blocks B] [--threads T]
 *                    [--shared BYTES] [--period-us P] [--depth D] [--copy-kib K]
 *                    [--upload-mib M [--pageable 1] [--hold-s H] [--prepare-only 1]]
 *   --period-us 0 (default): saturate — two batches of D launches always queued (launch batch
 *                      k+1, then wait for batch k);
 *   --period-us P > 0: one launch every P µs, each waited for (cuStreamSynchronize), latency
 *                      measured from the launch call to the end of the synchronisation;
 *                      with --copy-kib K each request is an upload of K KiB, the launch and a
 *                      download of K KiB (pinned memory, on the stream), measured likewise;
 *   --upload-mib M:    no kernels: uploads M MiB from pinned memory again and again (a model
 *                      load), each waited for; prints "uploads" and "upload_gbps";
 *   --pageable 1:      (with --upload-mib) from malloc'd memory with cuMemcpyHtoD instead (what
 *                      `tensor.cuda()` does without pinned memory: through the shim, a streamed
 *                      copy);
 *   --hold-s H:        (with --upload-mib) the first upload waits until H seconds after the
 *                      program's start (its buffers allocated and filled before), so that a
 *                      tenant started H seconds after it meets the first uploads without the
 *                      preparation;
 *   --prepare-only 1:  (with --upload-mib) allocates and fills the buffers, then idles for the
 *                      run's seconds without uploading (the preparation's cost to other tenants);
 *   --phases 1:        (periodic with --copy-kib) records events between the request's upload,
 *                      kernel and download, prints the device-side spans' p50 and p99, and
 *                      prints to stderr where the slowest 1 % of the requests spent their time
 *                      (a diagnostic: the events add device work).
 *
 * Output (one per line, "KEY VALUE"; nothing else on stdout):
 *   launches     kernels completed within the run
 *   elapsed_s    wall-clock seconds of the run
 *   lat_p50_us   (periodic only) median launch-to-completion latency
 *   lat_p99_us   (periodic only) 99th percentile
 *   dev_p50_us, dev_p99_us  (with --phases) the same of the requests' device-side spans: from
 *                the event before the upload to the event after the download
 *   prepare_s, uploads, upload_gbps  (with --upload-mib) seconds from the program's start to
 *                the buffers filled; uploads completed; their rate
 */
#include "common.h"

#include "bench_util.h"

/* One periodic request: an optional upload, the launch, an optional download. */
typedef struct {
    CUfunction f;
    unsigned blocks, threads, shared;
    void **params;
    size_t copy;
    CUdeviceptr dcopy;
    unsigned char *hcopy;
    CUevent phase[4]; /* with --phases: before the upload, after it, after the kernel, at the end */
    int phases;
    double submit_us; /* with --phases: the last request's time in its calls before the wait */
    double start_us;  /* with --phases: when the last request started (CLOCK_MONOTONIC) */
} Request;

/* Where one request's time went (--phases), in µs. */
typedef struct {
    double wall, up, kernel, down, host, submit, at;
} Phases;

static int cmp_phases(const void *a, const void *b)
{
    double x = ((const Phases *)a)->wall, y = ((const Phases *)b)->wall;
    return (x > y) - (x < y);
}

static Request request_new(CUfunction f, unsigned blocks, unsigned threads, unsigned shared,
                           void **params, size_t copy)
{
    Request r = {f, blocks, threads, shared, params, copy, 0, NULL, {NULL}, 0, 0, 0};
    if (copy > 0) {
        CHECK(cuMemAlloc(&r.dcopy, copy));
        CHECK(cuMemAllocHost((void **)&r.hcopy, copy));
        memset(r.hcopy, 0x3c, copy);
    }
    return r;
}

/* Runs one request on `s` and waits for it. */
static void request_run(Request *r, CUstream s)
{
    double t0 = now_us();
    r->start_us = t0;
    if (r->phases) {
        CHECK(cuEventRecord(r->phase[0], s));
    }
    if (r->copy > 0) {
        CHECK(cuMemcpyHtoDAsync(r->dcopy, r->hcopy, r->copy, s));
    }
    if (r->phases) {
        CHECK(cuEventRecord(r->phase[1], s));
    }
    CHECK(cuLaunchKernel(r->f, r->blocks, 1, 1, r->threads, 1, 1, r->shared, s, r->params, NULL));
    if (r->phases) {
        CHECK(cuEventRecord(r->phase[2], s));
    }
    if (r->copy > 0) {
        CHECK(cuMemcpyDtoHAsync(r->hcopy, r->dcopy, r->copy, s));
    }
    if (r->phases) {
        CHECK(cuEventRecord(r->phase[3], s));
    }
    r->submit_us = now_us() - t0;
    CHECK(cuStreamSynchronize(s));
}

/* The device-side phases of the request just run (--phases); `wall` is its measured latency. */
static Phases request_phases(const Request *r, double wall)
{
    float ms[3];
    for (int i = 0; i < 3; i++) {
        CHECK(cuEventElapsedTime(&ms[i], r->phase[i], r->phase[i + 1]));
    }
    double device = 1000.0 * ((double)ms[0] + (double)ms[1] + (double)ms[2]);
    return (Phases){wall, 1000.0 * ms[0], 1000.0 * ms[1], 1000.0 * ms[2], wall - device,
                    r->submit_us, r->start_us};
}

/* Prints the p50 and p99 of the requests' device-side spans (--phases): from the event before
 * the upload to the event after the download, as the device's clock saw them. The span counts
 * the request's queueing behind other tenants' copies and kernels, and any pause in submitting
 * or forwarding its later records (the stream waits for them); it leaves out the time before
 * the first event reaches the device and after the last completes (the wake-up). */
static void report_device_span(const Phases *ph, size_t n)
{
    double *span = calloc(n, sizeof *span);
    EXPECT(span != NULL, "calloc");
    for (size_t i = 0; i < n; i++) {
        span[i] = ph[i].up + ph[i].kernel + ph[i].down;
    }
    printf("dev_p50_us %.1f\n", quantile(span, n, 0.5));
    printf("dev_p99_us %.1f\n", quantile(span, n, 0.99));
    free(span);
}

/* Prints the slowest 1 % of the requests' phases and the median request's (--phases). */
static void report_phases(Phases *ph, size_t n)
{
    if (n == 0) {
        return;
    }
    report_device_span(ph, n);
    qsort(ph, n, sizeof *ph, cmp_phases);
    size_t from = n - (n + 99) / 100;
    fprintf(stderr, "phases (us): wall upload kernel download host-side (of which submitting), start (CLOCK_MONOTONIC s)\n");
    for (size_t i = from; i < n; i++) {
        fprintf(stderr, "slow %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %.6f\n", ph[i].wall, ph[i].up,
                ph[i].kernel, ph[i].down, ph[i].host, ph[i].submit, ph[i].at / 1e6);
    }
    const Phases *m = &ph[(n - 1) / 2];
    fprintf(stderr, "median %6.1f %8.1f %8.1f %8.1f %8.1f %8.1f\n", m->wall, m->up, m->kernel,
            m->down, m->host, m->submit);
}

static void request_free(Request *r)
{
    if (r->copy > 0) {
        EXPECT(r->hcopy[0] == 0x3c && r->hcopy[r->copy - 1] == 0x3c,
               "the request's bytes came back changed");
        CHECK(cuMemFreeHost(r->hcopy));
        CHECK(cuMemFree(r->dcopy));
    }
}

/* Prints the run's figures (latencies sorted in place). */
static void report(unsigned long launches, double elapsed, double *lat, size_t samples)
{
    printf("launches %lu\nelapsed_s %.3f\n", launches, elapsed);
    if (samples > 0) {
        printf("lat_p50_us %.1f\n", quantile(lat, samples, 0.5));
        printf("lat_p99_us %.1f\n", quantile(lat, samples, 0.99));
    }
}

/* A model load: what the loader uploads and when. */
typedef struct {
    size_t bytes;        /* per upload */
    double seconds;      /* of uploading (or of idling, with prepare_only) */
    int pageable;        /* from malloc'd memory with cuMemcpyHtoD */
    double started_us;   /* the program's start (now_us) */
    double hold_s;       /* no upload before started_us + hold_s */
    int prepare_only;    /* allocate and fill, then idle */
} Load;

/* Fills `bytes` at `h` like a model's weights: no two granules alike (one byte value everywhere
 * would make every granule one shared copy, remapped at each upload, which no model does). */
static void fill_weights(unsigned char *h, size_t bytes)
{
    unsigned state = 12345u;
    for (size_t i = 0; i < bytes; i += 4) {
        state = state * 1664525u + 1013904223u;
        memcpy(h + i, &state, bytes - i < 4 ? bytes - i : 4);
    }
}

/* Sleeps until now_us() reaches `t` (µs). */
static void sleep_until(double t)
{
    double left = t - now_us();
    if (left > 1000.0) {
        sleep_ms((unsigned)(left / 1000.0));
    }
}

/* Uploads the load's bytes from pinned memory on `s` again and again for its seconds, each waited
 * for; from pageable memory with synchronous copies when `pageable`. */
static int upload_loop(CUstream s, const Load *load)
{
    size_t bytes = load->bytes;
    CUdeviceptr d;
    unsigned char *h;
    CHECK(cuMemAlloc(&d, bytes));
    if (load->pageable) {
        h = malloc(bytes);
        EXPECT(h != NULL, "malloc %zu", bytes);
    } else {
        CHECK(cuMemAllocHost((void **)&h, bytes));
    }
    fill_weights(h, bytes);
    printf("prepare_s %.3f\n", (now_us() - load->started_us) / 1e6);
    sleep_until(load->started_us + load->hold_s * 1e6);
    unsigned long uploads = 0;
    double t0 = now_us(), end = t0 + load->seconds * 1e6;
    while (!load->prepare_only && now_us() < end) {
        if (load->pageable) {
            CHECK(cuMemcpyHtoD(d, h, bytes));
        } else {
            CHECK(cuMemcpyHtoDAsync(d, h, bytes, s));
            CHECK(cuStreamSynchronize(s));
        }
        uploads++;
    }
    sleep_until(end); /* a loader that only prepares idles out its time */
    double elapsed = (now_us() - t0) / 1e6;
    printf("launches 0\nelapsed_s %.3f\nuploads %lu\nupload_gbps %.3f\n", elapsed, uploads,
           (double)uploads * (double)bytes / elapsed / 1e9);
    if (load->pageable) {
        free(h);
    } else {
        CHECK(cuMemFreeHost(h));
    }
    CHECK(cuMemFree(d));
    return 0;
}

/* One request every `period` µs, each waited for; prints the latencies (and the phases). */
static void run_periodic(Request *req, CUstream s, double seconds, double period)
{
    size_t cap = (size_t)(seconds * 1e6 / period) + 16;
    double *lat = calloc(cap, sizeof *lat);
    Phases *ph = calloc(cap, sizeof *ph);
    EXPECT(lat != NULL && ph != NULL, "calloc");
    size_t samples = 0;
    unsigned long launches = 0;
    double t0 = now_us(), end = t0 + seconds * 1e6, next = t0;
    while (now_us() < end) {
        double t = now_us();
        if (t < next) {
            sleep_ms((unsigned)((next - t) / 1000.0));
            while (now_us() < next) {
            }
        }
        double start = now_us();
        request_run(req, s);
        if (samples < cap) {
            lat[samples] = now_us() - start;
            if (req->phases) {
                ph[samples] = request_phases(req, lat[samples]);
            }
            samples++;
        }
        launches++;
        next += period;
    }
    report(launches, (now_us() - t0) / 1e6, lat, samples);
    if (req->phases) {
        report_phases(ph, samples);
    }
    free(lat);
    free(ph);
}

/* Two batches of `depth` launches always queued (launch batch k+1, then wait for batch k). */
static void run_saturating(const Request *req, CUstream s, double seconds, unsigned depth)
{
    CUevent ev[2];
    CHECK(cuEventCreate(&ev[0], 0));
    CHECK(cuEventCreate(&ev[1], 0));
    unsigned long batch = 0;
    unsigned long launches = 0;
    double t0 = now_us(), end = t0 + seconds * 1e6;
    while (now_us() < end) {
        for (unsigned i = 0; i < depth; i++) {
            CHECK(cuLaunchKernel(req->f, req->blocks, 1, 1, req->threads, 1, 1, req->shared, s,
                                 req->params, NULL));
        }
        CHECK(cuEventRecord(ev[batch % 2], s));
        if (batch > 0) {
            CHECK(cuEventSynchronize(ev[(batch - 1) % 2]));
            launches += depth;
        }
        batch++;
    }
    if (batch > 0) {
        /* The last batch ran past the end: not counted. */
        CHECK(cuStreamSynchronize(s));
    }
    report(launches, (now_us() - t0) / 1e6, NULL, 0);
}

int main(int argc, char **argv)
{
    double started_us = now_us();
    double seconds = opt(argc, argv, "--seconds", 5);
    unsigned ns = (unsigned)opt(argc, argv, "--ns", 100000);
    int iters = (int)opt(argc, argv, "--iters", 1);
    unsigned blocks = (unsigned)opt(argc, argv, "--blocks", 1);
    unsigned threads = (unsigned)opt(argc, argv, "--threads", 32);
    unsigned shared = (unsigned)opt(argc, argv, "--shared", 0);
    double period = opt(argc, argv, "--period-us", 0);
    unsigned depth = (unsigned)opt(argc, argv, "--depth", 8);
    size_t copy = (size_t)opt(argc, argv, "--copy-kib", 0) * 1024;
    size_t upload = (size_t)opt(argc, argv, "--upload-mib", 0) << 20;

    CUcontext ctx;
    CHECK(cuInit(0));
    CUdevice dev;
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuCtxCreate(&ctx, 0, dev));
    CUmodule mod = load_module("busy_sleep");
    CUfunction f = get_function(mod, "busy_sleep");
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    int n = (int)(blocks * threads);
    CUdeviceptr out;
    CHECK(cuMemAlloc(&out, (size_t)n * 4));
    void *params[] = {&out, &ns, &iters, &n};
    if (upload > 0) {
        Load load = {
            .bytes = upload,
            .seconds = seconds,
            .pageable = opt(argc, argv, "--pageable", 0) > 0,
            .started_us = started_us,
            .hold_s = opt(argc, argv, "--hold-s", 0),
            .prepare_only = opt(argc, argv, "--prepare-only", 0) > 0,
        };
        return upload_loop(s, &load);
    }
    Request req = request_new(f, blocks, threads, shared, params, copy);
    req.phases = opt(argc, argv, "--phases", 0) > 0 && period > 0;
    for (int i = 0; req.phases && i < 4; i++) {
        CHECK(cuEventCreate(&req.phase[i], 0));
    }

    if (period > 0) {
        run_periodic(&req, s, seconds, period);
    } else {
        run_saturating(&req, s, seconds, depth);
    }
    request_free(&req);
    CHECK(cuMemFree(out));
    CHECK(cuStreamDestroy(s));
    CHECK(cuModuleUnload(mod));
    CHECK(cuCtxDestroy(ctx));
    return 0;
}
