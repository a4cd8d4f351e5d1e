/*
 * Frees uploaded memory while deduplication may be keying it (issue 11's keys from the device's
 * bytes, docs/dedup.md): uploads of 1 MiB or more are keyed by a broker thread 100–200 ms after
 * the tenant's uploads pause, by reading the device's bytes back. Each round allocates 64 MiB,
 * uploads it, downloads it again and again for a different time across that window, and frees
 * it, so some frees land while the keys are being read. A read of memory the free unmapped
 * would be an illegal address, which loses the whole group's context; the keys are read through
 * the worker's own mapping of each granule instead. At the end a kernel must still run and a
 * copy come back intact.
 * Prints "rounds N" and exits 0.
 */
#include "common.h"

#define MiB ((size_t)1 << 20)

int main(void)
{
    watchdog(120);
    init_primary(NULL);
    size_t bytes = 64 * MiB;
    unsigned char *host, *back;
    CHECK(cuMemAllocHost((void **)&host, bytes));
    CHECK(cuMemAllocHost((void **)&back, bytes));
    for (size_t i = 0; i < bytes; i++) {
        host[i] = (unsigned char)(i * 131 + (i >> 20));
    }
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    int rounds = 0;
    for (int wait_ms = 96; wait_ms <= 216; wait_ms += 8) {
        CUdeviceptr d;
        CHECK(cuMemAlloc(&d, bytes));
        CHECK(cuMemcpyHtoDAsync(d, host, bytes, s));
        CHECK(cuStreamSynchronize(s));
        /* Downloads of the same memory meanwhile keep the device busy (as a tenant reading
         * results would), so a key read waits in the device's queue while the free comes. */
        double until = now_ms() + wait_ms;
        while (now_ms() < until) {
            CHECK(cuMemcpyDtoHAsync(back, d, bytes, s));
            CHECK(cuStreamSynchronize(s));
        }
        CHECK(cuMemFree(d));
        rounds++;
    }
    CUmodule m = load_module("busy_sleep");
    CUfunction busy_sleep = get_function(m, "busy_sleep");
    CUdeviceptr out;
    CHECK(cuMemAlloc(&out, 4 * MiB));
    launch_sleep(busy_sleep, s, out, 1000, 1, 32);
    CHECK(cuMemcpyHtoDAsync(out, host, 4 * MiB, s));
    CHECK(cuStreamSynchronize(s));
    memset(host, 0, 4 * MiB);
    CHECK(cuMemcpyDtoHAsync(host, out, 4 * MiB, s));
    CHECK(cuStreamSynchronize(s));
    for (size_t i = 0; i < 4 * MiB; i++) {
        EXPECT(host[i] == (unsigned char)(i * 131 + (i >> 20)), "byte %zu came back as %u", i,
               host[i]);
    }
    CHECK(cuMemFree(out));
    CHECK(cuModuleUnload(m));
    CHECK(cuStreamDestroy(s));
    CHECK(cuMemFreeHost(host));
    CHECK(cuMemFreeHost(back));
    printf("rounds %d\n", rounds);
    return 0;
}
