/*
 * Synchronous and asynchronous copies as CUDA's "API synchronization behavior" defines them, with
 * copies large enough to be cut into pieces (gpushare pipelines pageable copies in 4 MiB pieces):
 *  - a pageable cuMemcpyHtoD may return before the device copy ran, but the caller may reuse its
 *    buffer at once: the device still gets the bytes the buffer held at the call;
 *  - copies on one stream land in order, piece by piece: a later copy's bytes win, also where it
 *    overlaps only the last piece of an earlier one, and a device-to-device copy or a kernel
 *    queued after an upload sees all of it;
 *  - (gpushare's and the CPU device's rule, which CUDA allows but does not promise: its
 *    asynchronous pageable copies "may be synchronous") an asynchronous pageable upload returns
 *    once staged, without waiting for the stream: behind a long kernel it returns while the
 *    kernel runs, whatever its number of pieces; checked only on the paced CPU device, directly
 *    or through gpushare;
 *  - pageable downloads from many threads at once all complete with their bytes (each holds
 *    pieces of staging while it waits for more: none may wait for staging only others can free);
 *  - cuMemcpyDtoD and cuMemsetD* of device memory need no host synchronisation, but what follows
 *    on the stream sees them.
 * Run with pacing (GPUSHARE_CPU_PACING=1) so that device copies take modelled time.
 */
#include "common.h"

#include <pthread.h>

#define MiB ((size_t)1 << 20)

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (unsigned char)((i * 131u + seed * 7u) >> 3);
    }
}

static size_t first_mismatch(const unsigned char *got, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        if (got[i] != (unsigned char)((i * 131u + seed * 7u) >> 3)) {
            return i;
        }
    }
    return n;
}

static void expect_pattern(const unsigned char *got, size_t n, unsigned seed, const char *what)
{
    size_t at = first_mismatch(got, n, seed);
    EXPECT(at == n, "%s: byte %zu is %#x, want pattern %u", what, at, at < n ? got[at] : 0, seed);
}

/* The buffer is overwritten as soon as each upload returns; the device has the old bytes. */
static void reuse_after_return(CUdeviceptr d, unsigned char *buf, unsigned char *out, size_t n)
{
    for (unsigned seed = 1; seed <= 3; seed++) {
        fill(buf, n, seed);
        CHECK(cuMemcpyHtoD(d, buf, n));
        memset(buf, 0xcc, n);
        CHECK(cuMemcpyDtoH(out, d, n));
        expect_pattern(out, n, seed, "buffer reused after cuMemcpyHtoD");
    }
    OK("a pageable upload's buffer may be reused as soon as cuMemcpyHtoD returns");
}

/* Back-to-back uploads to one destination, then device-side readers: order is kept. */
static void ordered_uploads(CUdeviceptr d, CUdeviceptr d2, unsigned char *buf, unsigned char *out,
                            size_t n)
{
    unsigned char *second = (unsigned char *)malloc(n);
    EXPECT(second != NULL, "malloc");
    fill(buf, n, 4);
    fill(second, n, 5);
    CHECK(cuMemcpyHtoD(d, buf, n));
    CHECK(cuMemcpyHtoD(d, second, n));
    CHECK(cuMemcpyDtoD(d2, d, n)); /* no host synchronisation; ordered after both */
    CHECK(cuMemcpyDtoH(out, d2, n));
    expect_pattern(out, n, 5, "the later of two uploads");

    /* A small upload into the last piece of a large one lands after it. */
    const size_t tail = MiB;
    fill(buf, n, 6);
    fill(second, tail, 7);
    CHECK(cuMemcpyHtoD(d, buf, n));
    CHECK(cuMemcpyHtoD(d + (n - tail), second, tail));
    CHECK(cuMemcpyDtoH(out, d, n));
    expect_pattern(out, n - tail, 6, "the large upload's head");
    expect_pattern(out + (n - tail), tail, 7, "the small upload over the large one's last piece");

    /* The same on a stream, asynchronously. */
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    fill(buf, n, 8);
    fill(second, n, 9);
    CHECK(cuMemcpyHtoDAsync(d, buf, n, s));
    CHECK(cuMemcpyHtoDAsync(d, second, n, s));
    CHECK(cuMemcpyDtoDAsync(d2, d, n, s));
    memset(out, 0, n);
    CHECK(cuMemcpyDtoHAsync(out, d2, n, s));
    CHECK(cuStreamSynchronize(s));
    expect_pattern(out, n, 9, "async uploads on one stream");
    CHECK(cuStreamDestroy(s));
    free(second);
    OK("uploads land in order, piece by piece, before what follows on the stream");
}

/* An asynchronous pageable upload queued behind a 500 ms kernel returns while the kernel runs
 * (checked with GPUSHARE_CPU_PACING=1, i.e. on the CPU device: a real driver may block), and its
 * buffer may be reused at once. */
static void async_upload_does_not_wait(CUdeviceptr d, unsigned char *buf, unsigned char *out,
                                       size_t n)
{
    CUmodule m = load_module("busy_sleep");
    CUfunction busy_sleep = get_function(m, "busy_sleep");
    CUstream s;
    CUdeviceptr scratch;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CHECK(cuMemAlloc(&scratch, 32 * sizeof(unsigned)));
    CUevent kernel_done;
    CHECK(cuEventCreate(&kernel_done, CU_EVENT_DISABLE_TIMING));
    fill(buf, n, 12);
    launch_sleep(busy_sleep, s, scratch, 100000, 5000, 32);
    CHECK(cuEventRecord(kernel_done, s));
    CHECK(cuMemcpyHtoDAsync(d, buf, n, s));
    if (env_is("GPUSHARE_CPU_PACING", "1")) {
        EXPECT_ERR(cuEventQuery(kernel_done), CUDA_ERROR_NOT_READY);
    }
    memset(buf, 0xcc, n);
    CHECK(cuStreamSynchronize(s));
    CHECK(cuMemcpyDtoH(out, d, n));
    expect_pattern(out, n, 12, "async upload behind a kernel, buffer reused after return");
    CHECK(cuEventDestroy(kernel_done));
    CHECK(cuMemFree(scratch));
    CHECK(cuStreamDestroy(s));
    CHECK(cuModuleUnload(m));
    OK("an asynchronous pageable upload returns once staged, before the kernel ahead of it ends");
}

enum { DOWNLOADERS = 32, DOWNLOAD_ROUNDS = 3 };

typedef struct {
    CUcontext ctx;
    CUdeviceptr src;
    size_t n;
    const char *failed; /* NULL, or what went wrong */
} Downloader;

static void *download_thread(void *arg)
{
    Downloader *w = (Downloader *)arg;
    unsigned char *out = (unsigned char *)malloc(w->n);
    if (out == NULL || cuCtxSetCurrent(w->ctx) != CUDA_SUCCESS) {
        w->failed = "setup";
    }
    for (int r = 0; w->failed == NULL && r < DOWNLOAD_ROUNDS; r++) {
        memset(out, 0, w->n);
        if (cuMemcpyDtoH(out, w->src, w->n) != CUDA_SUCCESS) {
            w->failed = "cuMemcpyDtoH";
        } else if (first_mismatch(out, w->n, 13) != w->n) {
            w->failed = "the downloaded bytes";
        }
    }
    free(out);
    return NULL;
}

/* Thirty-two threads download 14 MiB each (four pieces), three times, at once: more than the
 * staging area holds if each waited for a fresh piece while holding its earlier ones. */
static void concurrent_downloads(CUcontext ctx, CUdeviceptr d, unsigned char *buf, size_t n)
{
    const size_t each = 14 * MiB + 4321;
    EXPECT(n >= each, "the buffer holds %zu bytes, fewer than %zu", n, each);
    fill(buf, each, 13);
    CHECK(cuMemcpyHtoD(d, buf, each));
    Downloader w[DOWNLOADERS];
    pthread_t th[DOWNLOADERS];
    for (int i = 0; i < DOWNLOADERS; i++) {
        w[i] = (Downloader){ctx, d, each, NULL};
        EXPECT(pthread_create(&th[i], NULL, download_thread, &w[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < DOWNLOADERS; i++) {
        EXPECT(pthread_join(th[i], NULL) == 0, "pthread_join");
        EXPECT(w[i].failed == NULL, "downloader %d: %s", i, w[i].failed);
    }
    OK("pageable downloads from thirty-two threads at once complete with their bytes");
}

/* A memset of device memory returns without waiting; what follows sees it. */
static void memset_then_read(CUdeviceptr d, unsigned char *out, size_t n)
{
    CHECK(cuMemsetD32(d, 0x01020304u, n / 4));
    CHECK(cuMemsetD8(d + n / 2, 0x7f, n - n / 2));
    CHECK(cuMemcpyDtoH(out, d, n));
    const unsigned char want[4] = {0x04, 0x03, 0x02, 0x01};
    for (size_t i = 0; i < n / 2; i++) {
        EXPECT(out[i] == want[i % 4], "memset D32 byte %zu = %#x", i, out[i]);
    }
    for (size_t i = n / 2; i < n; i++) {
        EXPECT(out[i] == 0x7f, "memset D8 byte %zu = %#x", i, out[i]);
    }
    OK("memsets of device memory are seen by the next copy");
}

/* Large pinned copies (the broker may cut them into chunks): bytes and order kept. */
static void pinned_round_trip(CUdeviceptr d, CUdeviceptr d2, size_t n)
{
    unsigned char *a = NULL, *b = NULL;
    CHECK(cuMemAllocHost((void **)&a, n));
    CHECK(cuMemAllocHost((void **)&b, n));
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    fill(a, n, 10);
    CHECK(cuMemcpyHtoDAsync(d, a, n, s));
    CHECK(cuMemcpyDtoDAsync(d2, d, n, s));
    CHECK(cuMemcpyDtoHAsync(b, d2, n, s));
    CHECK(cuStreamSynchronize(s));
    expect_pattern(b, n, 10, "pinned async upload, device copy, download");
    fill(a, n, 11);
    CHECK(cuMemcpyHtoD(d, a, n));
    memset(b, 0, n);
    CHECK(cuMemcpyDtoH(b, d, n));
    expect_pattern(b, n, 11, "pinned synchronous upload and download");
    CHECK(cuStreamDestroy(s));
    CHECK(cuMemFreeHost(a));
    CHECK(cuMemFreeHost(b));
    OK("large pinned copies keep their bytes and their order");
}

int main(int argc, char **argv)
{
    watchdog(120);
    size_t mib = 40;
    if (argc > 2 && strcmp(argv[1], "--mib") == 0) {
        mib = strtoull(argv[2], NULL, 0);
    }
    const size_t n = mib * MiB + 12345; /* not a whole number of pieces */
    CUcontext ctx = init_primary(NULL);
    CUdeviceptr d = 0, d2 = 0;
    CHECK(cuMemAlloc(&d, n));
    CHECK(cuMemAlloc(&d2, n));
    unsigned char *buf = (unsigned char *)malloc(n), *out = (unsigned char *)malloc(n);
    EXPECT(buf != NULL && out != NULL, "malloc");

    reuse_after_return(d, buf, out, n);
    ordered_uploads(d, d2, buf, out, n);
    async_upload_does_not_wait(d, buf, out, n);
    concurrent_downloads(ctx, d, buf, n);
    memset_then_read(d, out, n);
    pinned_round_trip(d, d2, n);

    free(buf);
    free(out);
    CHECK(cuMemFree(d));
    CHECK(cuMemFree(d2));
    return 0;
}
