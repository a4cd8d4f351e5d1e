/*
 * The floor of a streamed copy (docs/architecture.md, "Copies"), measured on a driver directly:
 * the same hand-over as the shim and a worker do through a channel in staging, in one process.
 * A producer thread writes a pageable source into four 1 MiB slots of registered host memory,
 * counting the pieces in a word of the channel; the stream waits for each piece
 * (cuStreamWaitValue32 on that count), copies it to the device and stores its own count
 * (cuStreamWriteValue32), which the producer waits for before it reuses a slot. What this costs
 * against one cuMemcpyHtoD is what a streamed copy costs with no broker, no worker and no second
 * process; scripts/bench-shim.sh --streamed-floor runs it (tests/tests/bench_programs.rs, tiny).
 *
 * Usage: bench_streamed_floor [--copy-mib M] [--copy-reps R]
 *
 * Figures ("KEY VALUE UNIT"):
 *  h2d_pageable_gbps    cuMemcpyHtoD of M MiB from malloc'd memory (median of R, after a warm-up)
 *  h2d_streamed_gbps    the same bytes handed over piece by piece as above: from the producer's
 *                       start to its last piece written (a streamed upload returns then; the
 *                       stream is synchronised outside the timed part), median of R
 *  submit_us            the time the copy's stream operations (three a piece) take to submit,
 *                       median of R
 *  first_piece_us       from the producer's start until it sees the device's first piece done
 *                       (it looks when it needs the first slot again), median of R
 * Defaults: M 64, R 15.
 */
#include "common.h"
#include "bench_util.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#define MiB (1024ull * 1024ull)
#define PIECE MiB
#define SLOTS 4u
#define HEADER 4096u

/* The channel: the producer's count at +0, the device's at +64, slots from +4096. */
static unsigned char *channel;
static _Atomic unsigned *tenant_count, *device_count;
static const unsigned char *source;
static unsigned pieces;
/* Copies started (by main) and finished (by the producer); the producer's copy r counts its
 * pieces from r * pieces, so the counts only ever grow. */
static _Atomic unsigned started, finished;
static double first_piece_us;

static void wake(_Atomic unsigned *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE, 1 << 30, NULL, NULL, 0);
}

/* Waits until *w reaches `target` (modulo 2^32): 30 us of spinning, then futex sleeps of at most
 * 100 us (a GPU's stream writes wake no one), as the shim's channel does. */
static void wait_for(_Atomic unsigned *w, unsigned target)
{
    double t0 = now_us();
    for (;;) {
        unsigned seen = atomic_load(w);
        if ((int)(seen - target) >= 0) {
            return;
        }
        if (now_us() - t0 < 30) {
            continue;
        }
        struct timespec t = {0, 100000};
        syscall(SYS_futex, w, FUTEX_WAIT, seen, &t, NULL, 0);
    }
}

static void *producer(void *unused)
{
    (void)unused;
    for (unsigned r = 0;; r++) {
        wait_for(&started, r + 1);
        unsigned base = r * pieces;
        double t0 = now_us();
        for (unsigned k = 0; k < pieces; k++) {
            if (k >= SLOTS) {
                wait_for(device_count, base + k + 1 - SLOTS);
                if (k == SLOTS) {
                    first_piece_us = now_us() - t0;
                }
            }
            memcpy(channel + HEADER + (k % SLOTS) * PIECE, source + (size_t)k * PIECE, PIECE);
            atomic_store(tenant_count, base + k + 1);
            wake(tenant_count);
        }
        if (pieces <= SLOTS) {
            wait_for(device_count, base + 1);
            first_piece_us = now_us() - t0;
        }
        atomic_store(&finished, r + 1);
        wake(&finished);
    }
    return NULL;
}

/* The channel, in registered host memory; returns its device address. */
static CUdeviceptr open_channel(void)
{
    const size_t channel_bytes = HEADER + SLOTS * PIECE;
    channel = aligned_alloc(4096, channel_bytes);
    EXPECT(channel != NULL, "aligned_alloc");
    memset(channel, 0, channel_bytes);
    CHECK(cuMemHostRegister(channel, channel_bytes, CU_MEMHOSTREGISTER_DEVICEMAP));
    CUdeviceptr words = 0;
    CHECK(cuMemHostGetDevicePointer(&words, channel, 0));
    tenant_count = (_Atomic unsigned *)channel;
    device_count = (_Atomic unsigned *)(channel + 64);
    return words;
}

/* reps + 1 streamed copies into `dev` (the first a warm-up): each starts the producer, queues
 * every piece's wait, copy and count on `s`, and ends when the producer has written its last
 * piece; the stream is synchronised after the timed part. */
static void streamed_runs(CUstream s, CUdeviceptr dev, CUdeviceptr words, unsigned long reps,
                          double *gbps, double *submit, double *first)
{
    for (unsigned r = 0; r <= reps; r++) {
        unsigned base = r * pieces;
        double t0 = now_us();
        atomic_store(&started, r + 1);
        wake(&started);
        for (unsigned k = 0; k < pieces; k++) {
            CHECK(cuStreamWaitValue32(s, words, base + k + 1, CU_STREAM_WAIT_VALUE_GEQ));
            CHECK(cuMemcpyHtoDAsync(dev + (size_t)k * PIECE,
                                    channel + HEADER + (k % SLOTS) * PIECE, PIECE, s));
            CHECK(cuStreamWriteValue32(s, words + 64, base + k + 1, 0));
        }
        double submitted = now_us();
        wait_for(&finished, r + 1);
        double t1 = now_us();
        CHECK(cuStreamSynchronize(s));
        if (r > 0) {
            gbps[r - 1] = (double)pieces * PIECE / (t1 - t0) / 1e3;
            first[r - 1] = first_piece_us;
            submit[r - 1] = submitted - t0;
        }
    }
}

int main(int argc, char **argv)
{
    const unsigned long copy_mib = (unsigned long)opt(argc, argv, "--copy-mib", 64);
    const unsigned long reps = (unsigned long)opt(argc, argv, "--copy-reps", 15);
    EXPECT(copy_mib > 0 && reps > 0, "counts must be positive");
    const size_t bytes = (size_t)(copy_mib * MiB);
    pieces = (unsigned)copy_mib;

    CUdevice d;
    CUcontext ctx;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&d, 0));
    CHECK(cuCtxCreate(&ctx, 0, d));
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CUdeviceptr dev = 0;
    CHECK(cuMemAlloc(&dev, bytes));
    unsigned char *src = malloc(bytes);
    EXPECT(src != NULL, "malloc %zu", bytes);
    memset(src, 0x11, bytes);
    source = src;

    CUdeviceptr words = open_channel();

    double *direct = calloc(reps, sizeof *direct);
    double *streamed = calloc(reps, sizeof *streamed);
    double *first = calloc(reps, sizeof *first);
    double *submit = calloc(reps, sizeof *submit);
    EXPECT(direct && streamed && first && submit, "calloc");
    for (unsigned long r = 0; r <= reps; r++) {
        double t0 = now_us();
        CHECK(cuMemcpyHtoD(dev, src, bytes));
        if (r > 0) {
            direct[r - 1] = (double)bytes / (now_us() - t0) / 1e3;
        }
    }

    CHECK(cuMemsetD8(dev, 0, bytes));
    pthread_t th;
    EXPECT(pthread_create(&th, NULL, producer, NULL) == 0, "pthread_create");
    streamed_runs(s, dev, words, reps, streamed, submit, first);
    /* The device holds the source's bytes. */
    unsigned char *back = malloc(bytes);
    EXPECT(back != NULL, "malloc");
    CHECK(cuMemcpyDtoH(back, dev, bytes));
    EXPECT(memcmp(back, src, bytes) == 0, "the streamed copy's bytes differ from the source");

    printf("h2d_pageable_gbps %.2f GB/s\n", median(direct, reps));
    printf("h2d_streamed_gbps %.2f GB/s\n", median(streamed, reps));
    printf("submit_us %.1f us\n", median(submit, reps));
    printf("first_piece_us %.1f us\n", median(first, reps));
    return 0;
}
