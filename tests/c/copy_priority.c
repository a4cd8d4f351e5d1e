/*
 * A small copy on a high-priority stream submitted right after a bulk upload on a low-priority
 * stream of the same tenant (issue 12: "a high-priority copy overtaking a bulk upload between
 * chunks"). Both copies use pinned memory and the same copy engine (host to device).
 *
 * Prints `small_done_at <fraction>`: when the small copy was seen complete (cuStreamQuery), as a
 * fraction of the time until the bulk upload was, both from the bulk upload's submission. Run
 * with GPUSHARE_CPU_PACING=1, so the device takes its modelled time (256 MiB at the small
 * profile's 2 GB/s: about 130 ms) and the fraction is an order of completion with a wide margin.
 * No event is recorded between the copies: gpushare's scheduler treats event records as
 * barriers between a tenant's streams. On one copy engine served in submission order the
 * fraction is about 1; through gpushare's broker, which cuts the upload into chunks and lets a
 * more urgent stream's copy go between them, it is small. With `--same` both streams have the
 * same priority. Both copies' bytes are checked.
 */
#include "common.h"

#define MiB ((size_t)1 << 20)

int main(int argc, char **argv)
{
    int same = argc > 1 && strcmp(argv[1], "--same") == 0;
    watchdog(120);
    init_primary(NULL);
    int least = 0, greatest = 0;
    CHECK(cuCtxGetStreamPriorityRange(&least, &greatest));
    CUstream low, high;
    CHECK(cuStreamCreateWithPriority(&low, CU_STREAM_NON_BLOCKING, least));
    CHECK(cuStreamCreateWithPriority(&high, CU_STREAM_NON_BLOCKING, same ? least : greatest));
    size_t bulk = 256 * MiB, small = 64 * 1024;
    unsigned char *h_bulk, *h_small;
    CHECK(cuMemAllocHost((void **)&h_bulk, bulk));
    CHECK(cuMemAllocHost((void **)&h_small, small));
    memset(h_bulk, 0x5a, bulk);
    memset(h_small, 0xc3, small);
    CUdeviceptr d_bulk, d_small;
    CHECK(cuMemAlloc(&d_bulk, bulk));
    CHECK(cuMemAlloc(&d_small, small));
    /* Warm-up: one chunk-sized upload, so the broker has measured the copy engine before the
     * bulk upload is cut by its cost. */
    CHECK(cuMemcpyHtoDAsync(d_bulk, h_bulk, 8 * MiB, low));
    CHECK(cuStreamSynchronize(low));
    double t0 = now_ms();
    CHECK(cuMemcpyHtoDAsync(d_bulk, h_bulk, bulk, low));
    CHECK(cuMemcpyHtoDAsync(d_small, h_small, small, high));
    CUresult r;
    while ((r = cuStreamQuery(high)) == CUDA_ERROR_NOT_READY) {
        usleep(100);
    }
    CHECK(r);
    double t_small = now_ms() - t0;
    CHECK(cuStreamSynchronize(low));
    double t_bulk = now_ms() - t0;
    unsigned char probe[2] = {0, 0};
    CHECK(cuMemcpyDtoH(&probe[0], d_bulk + bulk - 1, 1));
    CHECK(cuMemcpyDtoH(&probe[1], d_small + small - 1, 1));
    EXPECT(probe[0] == 0x5a && probe[1] == 0xc3, "copied bytes %#x %#x", probe[0], probe[1]);
    printf("bulk_ms %.1f small_ms %.1f\n", t_bulk, t_small);
    printf("small_done_at %.4f\n", t_small / t_bulk);

    CHECK(cuMemFree(d_bulk));
    CHECK(cuMemFree(d_small));
    CHECK(cuMemFreeHost(h_bulk));
    CHECK(cuMemFreeHost(h_small));
    CHECK(cuStreamDestroy(low));
    CHECK(cuStreamDestroy(high));
    return 0;
}
