/*
 * A small copy on a high-priority stream submitted right after a bulk upload on a low-priority
 * stream of the same tenant (issue 12: "a high-priority copy overtaking a bulk upload between
 * chunks"). Both copies use pinned memory and the same copy engine (host to device).
 *
 * Prints `small_done_at <fraction>`: when the small copy completed, as a fraction of the bulk
 * upload's duration, in device time (events recorded before the upload, after it on its stream,
 * and after the small copy on the other stream; run with GPUSHARE_CPU_PACING=1 so the device
 * takes its modelled time: 256 MiB at the small profile's 2 GB/s, about 130 ms), and
 * `seen_done_at`, the same order as the host saw it (cuStreamQuery, wall clock). On one copy
 * engine served in submission order the fraction is about 1; through gpushare's broker, which
 * cuts the upload into chunks and lets a more urgent stream's copy go between them, it is small.
 * With `--same` both streams have the same priority. Both copies' bytes are checked.
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
    CUevent e0, e_bulk, e_small;
    CHECK(cuEventCreate(&e0, 0));
    CHECK(cuEventCreate(&e_bulk, 0));
    CHECK(cuEventCreate(&e_small, 0));
    double t0 = now_ms();
    CHECK(cuEventRecord(e0, low));
    CHECK(cuMemcpyHtoDAsync(d_bulk, h_bulk, bulk, low));
    CHECK(cuEventRecord(e_bulk, low));
    CHECK(cuMemcpyHtoDAsync(d_small, h_small, small, high));
    CHECK(cuEventRecord(e_small, high));
    CUresult r;
    while ((r = cuStreamQuery(high)) == CUDA_ERROR_NOT_READY) {
        usleep(100);
    }
    CHECK(r);
    double t_small = now_ms() - t0;
    CHECK(cuStreamSynchronize(low));
    double t_bulk = now_ms() - t0;
    float m_bulk = 0.0f, m_small = 0.0f;
    CHECK(cuEventElapsedTime(&m_bulk, e0, e_bulk));
    CHECK(cuEventElapsedTime(&m_small, e0, e_small));
    EXPECT(m_bulk > 0.0f, "the bulk upload took %f ms of device time", m_bulk);
    CHECK(cuEventDestroy(e0));
    CHECK(cuEventDestroy(e_bulk));
    CHECK(cuEventDestroy(e_small));
    unsigned char probe[2] = {0, 0};
    CHECK(cuMemcpyDtoH(&probe[0], d_bulk + bulk - 1, 1));
    CHECK(cuMemcpyDtoH(&probe[1], d_small + small - 1, 1));
    EXPECT(probe[0] == 0x5a && probe[1] == 0xc3, "copied bytes %#x %#x", probe[0], probe[1]);
    printf("wall: bulk_ms %.1f small_ms %.1f\n", t_bulk, t_small);
    printf("device: bulk_ms %.3f small_ms %.3f\n", m_bulk, m_small);
    printf("seen_done_at %.4f\n", t_small / t_bulk);
    printf("small_done_at %.4f\n", m_small / m_bulk);

    CHECK(cuMemFree(d_bulk));
    CHECK(cuMemFree(d_small));
    CHECK(cuMemFreeHost(h_bulk));
    CHECK(cuMemFreeHost(h_small));
    CHECK(cuStreamDestroy(low));
    CHECK(cuStreamDestroy(high));
    return 0;
}
