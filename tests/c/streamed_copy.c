/*
 * Synchronous pageable copies of 8 MiB and more, which the shim streams through a channel in
 * staging (one STREAMED_COPY record per copy, the pieces handed over through two counters;
 * docs/architecture.md, "Copies"). The same program runs directly on the CPU device, where the
 * copies are the driver's own, and the two outputs must match.
 *
 *  1. round trips of sizes that are and are not whole pieces (1 MiB), into an unaligned
 *     destination too: every byte arrives, and none beside the destination changes (from 32 MiB
 *     on the shim reads downloads out with streaming stores);
 *  2. early return: the source of a cuMemcpyHtoD is overwritten as soon as the call returns,
 *     and the device still gets the old bytes;
 *  3. stream order: a copy follows the legacy stream's earlier memset (both directions);
 *  4. six threads copying up and back at once, each its own bytes;
 *  5. the same content uploaded twice to the same fresh allocation, with a pause after
 *     each (with deduplication on, the first upload's granules are keyed in the pause, so the
 *     second upload's first granule is resident: the broker declines to stream it and the shim
 *     copies it in pieces; tests/tests/streamed.rs checks the broker's count), then a different
 *     content over it.
 */
#include "common.h"

#include <pthread.h>

#define MiB (1024ull * 1024ull)

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (unsigned char)(x >> 24);
    }
}

static size_t first_difference(const unsigned char *a, const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return i;
        }
    }
    return n;
}

/* Bytes after a download's destination that must stay as they were. */
#define GUARD 64

/* Up and back through `dev`, `n` bytes with pattern `seed`; the download lands `skew` bytes
 * into its buffer, and the bytes before and after it stay zero. */
static void round_trip(CUdeviceptr dev, size_t n, unsigned seed, size_t skew)
{
    unsigned char *src = malloc(n), *back = malloc(n + skew + GUARD);
    EXPECT(src && back, "malloc %zu", n);
    fill(src, n, seed);
    memset(back, 0, n + skew + GUARD);
    CHECK(cuMemcpyHtoD(dev, src, n));
    CHECK(cuMemcpyDtoH(back + skew, dev, n));
    size_t at = first_difference(src, back + skew, n);
    EXPECT(at == n, "%zu bytes, seed %u: byte %zu differs after the round trip", n, seed, at);
    for (size_t i = 0; i < skew + GUARD; i++) {
        size_t j = i < skew ? i : n + i;
        EXPECT(back[j] == 0, "%zu bytes, seed %u: byte %zu outside the download changed", n,
               seed, j);
    }
    free(src);
    free(back);
}

struct worker {
    CUcontext ctx;
    CUdeviceptr dev;
    unsigned seed;
    int failures;
};

static void *copier(void *arg)
{
    struct worker *w = arg;
    CHECK(cuCtxSetCurrent(w->ctx));
    size_t n = 16 * MiB + 4096 * w->seed;
    unsigned char *src = malloc(n), *back = malloc(n);
    EXPECT(src && back, "malloc");
    for (int it = 0; it < 3; it++) {
        fill(src, n, w->seed * 10 + it);
        CHECK(cuMemcpyHtoD(w->dev, src, n));
        memset(back, 0, n);
        CHECK(cuMemcpyDtoH(back, w->dev, n));
        w->failures += first_difference(src, back, n) != n;
    }
    free(src);
    free(back);
    return NULL;
}

int main(void)
{
    watchdog(300);
    CUcontext ctx = init_primary(NULL);
    CUdeviceptr dev;
    size_t max = 64 * MiB + 4096;
    CHECK(cuMemAlloc(&dev, max));

    size_t sizes[] = {8 * MiB, 8 * MiB + 1, 13 * MiB + 12345, 33 * MiB + 777, 64 * MiB + 4096};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        round_trip(dev, sizes[i], i + 1, 0);
        round_trip(dev, sizes[i], i + 11, 3);
    }
    OK("round trips of 8 MiB to 64 MiB + 4 KiB, whole pieces or not, unaligned destinations");

    size_t n = 32 * MiB;
    unsigned char *src = malloc(n), *want = malloc(n), *back = malloc(n);
    EXPECT(src && want && back, "malloc");
    fill(src, n, 77);
    memcpy(want, src, n);
    CHECK(cuMemcpyHtoD(dev, src, n));
    memset(src, 0xee, n);
    CHECK(cuMemcpyDtoH(back, dev, n));
    EXPECT(first_difference(want, back, n) == n, "the device got bytes written after the "
           "upload returned");
    OK("a source overwritten right after cuMemcpyHtoD returned: the device has the old bytes");

    CHECK(cuMemsetD32Async(dev, 0x5a5a5a5au, n / 4, NULL));
    CHECK(cuMemcpyDtoH(back, dev, n));
    unsigned char five[4] = {0x5a, 0x5a, 0x5a, 0x5a};
    for (size_t i = 0; i < n; i += 4096) {
        EXPECT(memcmp(back + i, five, 4) == 0, "download ran before the memset at byte %zu", i);
    }
    CHECK(cuMemsetD32Async(dev, 0, n / 4, NULL));
    CHECK(cuMemcpyHtoD(dev, want, n));
    CHECK(cuMemcpyDtoH(back, dev, n));
    EXPECT(first_difference(want, back, n) == n, "upload ran before the memset");
    OK("copies follow the legacy stream's earlier memsets");

    struct worker w[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (struct worker){.ctx = ctx, .seed = (unsigned)i + 1};
        CHECK(cuMemAlloc(&w[i].dev, 16 * MiB + 4096 * 6));
        EXPECT(pthread_create(&th[i], NULL, copier, &w[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        EXPECT(w[i].failures == 0, "thread %d: %d round trips lost bytes", i, w[i].failures);
        CHECK(cuMemFree(w[i].dev));
    }
    OK("six threads copying 16 MiB up and back at once");

    /* Fresh memory: granules filled by differently-cut uploads are never shared. */
    CUdeviceptr fresh;
    CHECK(cuMemAlloc(&fresh, n));
    for (int rep = 0; rep < 2; rep++) {
        CHECK(cuMemcpyHtoD(fresh, want, n));
        CHECK(cuCtxSynchronize());
        /* Deduplication keys an upload's granules once the tenant's uploads pause (100 ms). */
        usleep(500 * 1000);
    }
    CHECK(cuMemcpyDtoH(back, fresh, n));
    EXPECT(first_difference(want, back, n) == n, "the repeated upload lost bytes");
    fill(src, n, 78);
    CHECK(cuMemcpyHtoD(fresh, src, n));
    CHECK(cuMemcpyDtoH(back, fresh, n));
    EXPECT(first_difference(src, back, n) == n, "an upload over a repeated one lost bytes");
    CHECK(cuMemFree(fresh));
    OK("the same content uploaded twice, then another over it");

    free(src);
    free(want);
    free(back);
    CHECK(cuMemFree(dev));
    return 0;
}
