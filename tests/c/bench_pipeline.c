/*
 * Transfer/compute overlap benchmark (seed 001's scenario): batches of upload, kernel, download.
 *
 * Usage: bench_pipeline [--batches N] [--mib M] [--kernel-us U]
 *
 * Each batch uploads M MiB from pinned memory, runs busy_sleep for about U microseconds (under
 * GPUSHARE_CPU_PACING=1 on the CPU device) and downloads M MiB into pinned memory.
 *  serial_ms     one stream, each batch waited for before the next
 *  pipelined_ms  two streams, batches alternating between them, one wait at the end (the upload
 *                of batch k+1 overlaps the kernel of batch k and the download of batch k-1)
 *  speedup       serial_ms / pipelined_ms
 * Outputs are checked (every batch's download holds its own upload's bytes). Prints figures on
 * stdout, one "name value unit" per line; nothing is asserted about them.
 */
#include "common.h"

#define MiB ((size_t)1 << 20)

typedef struct {
    CUfunction kernel;
    CUdeviceptr dev_in[2], dev_out[2], flags[2];
    unsigned char *host_in[2], *host_out[2];
    size_t bytes;
    unsigned kernel_us;
} Pipeline;

static void batch(Pipeline *p, int slot, CUstream s, unsigned char tag)
{
    memset(p->host_in[slot], tag, p->bytes);
    CHECK(cuMemcpyHtoDAsync(p->dev_in[slot], p->host_in[slot], p->bytes, s));
    unsigned ns = 1000;
    int iters = (int)p->kernel_us, n = 32;
    void *params[] = {&p->flags[slot], &ns, &iters, &n};
    CHECK(cuLaunchKernel(p->kernel, 1, 1, 1, 32, 1, 1, 0, s, params, NULL));
    CHECK(cuMemcpyDtoDAsync(p->dev_out[slot], p->dev_in[slot], p->bytes, s));
    CHECK(cuMemcpyDtoHAsync(p->host_out[slot], p->dev_out[slot], p->bytes, s));
}

static void check(const Pipeline *p, int slot, unsigned char tag)
{
    const unsigned char *o = p->host_out[slot];
    EXPECT(o[0] == tag && o[p->bytes / 2] == tag && o[p->bytes - 1] == tag,
           "batch tagged %u came back as %u", tag, o[0]);
}

static double serial(Pipeline *p, CUstream s, int batches)
{
    double t0 = now_ms();
    for (int b = 0; b < batches; b++) {
        batch(p, 0, s, (unsigned char)(b + 1));
        CHECK(cuStreamSynchronize(s));
        check(p, 0, (unsigned char)(b + 1));
    }
    return now_ms() - t0;
}

static double pipelined(Pipeline *p, CUstream s[2], int batches)
{
    double t0 = now_ms();
    for (int b = 0; b < batches; b++) {
        int slot = b % 2;
        if (b >= 2) {
            CHECK(cuStreamSynchronize(s[slot])); /* its buffers are free again */
            check(p, slot, (unsigned char)(b - 1));
        }
        batch(p, slot, s[slot], (unsigned char)(b + 1));
    }
    CHECK(cuCtxSynchronize());
    double t = now_ms() - t0;
    for (int b = batches - 2; b < batches; b++) {
        check(p, b % 2, (unsigned char)(b + 1));
    }
    return t;
}

int main(int argc, char **argv)
{
    int batches = 12;
    size_t mib = 8;
    unsigned kernel_us = 4000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--batches") == 0) {
            batches = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--mib") == 0) {
            mib = strtoull(argv[i + 1], NULL, 0);
        } else if (strcmp(argv[i], "--kernel-us") == 0) {
            kernel_us = (unsigned)strtoul(argv[i + 1], NULL, 0);
        }
    }
    EXPECT(batches >= 2 && mib > 0, "usage: bench_pipeline [--batches N>=2] [--mib M] [--kernel-us U]");
    watchdog(300);
    init_primary(NULL);
    Pipeline p = {.bytes = mib * MiB, .kernel_us = kernel_us};
    CUmodule m = load_module("busy_sleep");
    p.kernel = get_function(m, "busy_sleep");
    CUstream s[2];
    for (int i = 0; i < 2; i++) {
        CHECK(cuMemAlloc(&p.dev_in[i], p.bytes));
        CHECK(cuMemAlloc(&p.dev_out[i], p.bytes));
        CHECK(cuMemAlloc(&p.flags[i], 32 * sizeof(unsigned)));
        CHECK(cuMemAllocHost((void **)&p.host_in[i], p.bytes));
        CHECK(cuMemAllocHost((void **)&p.host_out[i], p.bytes));
        CHECK(cuStreamCreate(&s[i], CU_STREAM_NON_BLOCKING));
    }
    /* Warm-up: the module, the cost model, and both slots' buffers. The serial loop uses slot 0
     * only; without slot 1 warmed, the pipelined loop alone would pay its buffers' first touch
     * (page faults: 8-15 ms for 16 MiB on a virtual machine), which is not overlap. */
    batch(&p, 0, s[0], 0xff);
    batch(&p, 1, s[1], 0xfe);
    CHECK(cuCtxSynchronize());
    double a = serial(&p, s[0], batches);
    double b = pipelined(&p, s, batches);
    printf("serial_ms %.1f ms\n", a);
    printf("pipelined_ms %.1f ms\n", b);
    printf("speedup %.2f x\n", a / b);
    for (int i = 0; i < 2; i++) {
        CHECK(cuStreamDestroy(s[i]));
        CHECK(cuMemFreeHost(p.host_in[i]));
        CHECK(cuMemFreeHost(p.host_out[i]));
    }
    CHECK(cuModuleUnload(m));
    return 0;
}
