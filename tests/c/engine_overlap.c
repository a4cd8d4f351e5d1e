/*
 * A download on one stream beside a long kernel on another (issue 12, item 4: one engine's work
 * completes while another engine's runs). Stream `compute` runs busy_sleep for 400 ms; stream
 * `copies`, submitted right after it, downloads 32 MiB from device memory into pinned memory
 * (about 17 ms at the small profile's 2 GB/s), which the broker cuts into chunks and dispatches
 * a window at a time, each later chunk once earlier ones are reported complete.
 *
 * Prints `copy_done_at <fraction>`: when the download completed, as a fraction of the kernel's
 * device time (events recorded before the kernel, after it, and after the download; run with
 * GPUSHARE_CPU_PACING=1 so the kernel takes its modelled 400 ms). The engines run side by side,
 * so it is small; when a chunk's completion is reported only after the kernel's (one completion
 * queue for every engine), the download's later chunks wait for the kernel and it is above 1.
 * The downloaded bytes are checked.
 */
#include "common.h"

#define MiB ((size_t)1 << 20)

int main(void)
{
    watchdog(120);
    init_primary(NULL);
    CUmodule m = load_module("busy_sleep");
    CUfunction busy_sleep = get_function(m, "busy_sleep");
    CUstream compute, copies;
    CHECK(cuStreamCreate(&compute, CU_STREAM_NON_BLOCKING));
    CHECK(cuStreamCreate(&copies, CU_STREAM_NON_BLOCKING));
    size_t bytes = 32 * MiB;
    unsigned char *host;
    CUdeviceptr dev, scratch;
    CHECK(cuMemAllocHost((void **)&host, bytes));
    CHECK(cuMemAlloc(&dev, bytes));
    CHECK(cuMemAlloc(&scratch, 32 * sizeof(unsigned)));
    CHECK(cuMemsetD8(dev, 0x6b, bytes));
    /* Warm-up: the kernel's shape and the download engine measured, so the download is cut by
     * its cost and the kernel is not held as unmeasured work. */
    launch_sleep(busy_sleep, compute, scratch, 1000, 1, 32);
    CHECK(cuMemcpyDtoHAsync(host, dev, 8 * MiB, copies));
    CHECK(cuCtxSynchronize());
    memset(host, 0, bytes);

    CUevent e0, e_kernel, e_copy;
    CHECK(cuEventCreate(&e0, 0));
    CHECK(cuEventCreate(&e_kernel, 0));
    CHECK(cuEventCreate(&e_copy, 0));
    CHECK(cuEventRecord(e0, compute));
    launch_sleep(busy_sleep, compute, scratch, 100000, 4000, 32);
    CHECK(cuEventRecord(e_kernel, compute));
    CHECK(cuMemcpyDtoHAsync(host, dev, bytes, copies));
    CHECK(cuEventRecord(e_copy, copies));
    CHECK(cuCtxSynchronize());
    float m_kernel = 0.0f, m_copy = 0.0f;
    CHECK(cuEventElapsedTime(&m_kernel, e0, e_kernel));
    CHECK(cuEventElapsedTime(&m_copy, e0, e_copy));
    EXPECT(m_kernel > 0.0f, "the kernel took %f ms of device time", m_kernel);
    EXPECT(host[0] == 0x6b && host[bytes / 2] == 0x6b && host[bytes - 1] == 0x6b,
           "downloaded bytes %#x %#x %#x", host[0], host[bytes / 2], host[bytes - 1]);
    printf("device: kernel_ms %.3f copy_ms %.3f\n", m_kernel, m_copy);
    printf("copy_done_at %.4f\n", m_copy / m_kernel);

    CHECK(cuEventDestroy(e0));
    CHECK(cuEventDestroy(e_kernel));
    CHECK(cuEventDestroy(e_copy));
    CHECK(cuMemFree(dev));
    CHECK(cuMemFree(scratch));
    CHECK(cuMemFreeHost(host));
    CHECK(cuStreamDestroy(compute));
    CHECK(cuStreamDestroy(copies));
    CHECK(cuModuleUnload(m));
    return 0;
}
