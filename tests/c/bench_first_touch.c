/*
 * What the first touch of fresh memory costs: a page-locked allocation made resident
 * (cuMemAllocHost), and an upload into freshly allocated device memory against the same upload
 * once the memory has been touched. A GPU's device memory has no first touch; the CPU device's
 * does (it commits device memory as it is used), and huge pages make it cheaper
 * (docs/cpu-device.md, "Memory"). scripts/bench-shim.sh --first-touch runs it directly and
 * through the shim (tests/tests/bench_programs.rs, tiny).
 *
 * Usage: bench_first_touch [--mib M] [--reps R]
 *
 * Figures ("KEY VALUE UNIT"), each the median of R rounds, every round with fresh allocations:
 *  pinned_alloc_ms      cuMemAllocHost of M MiB
 *  first_upload_ms      cuMemcpyHtoD of M MiB from that pinned memory into a fresh cuMemAlloc
 *  again_upload_ms      the same upload again, into the same (now touched) device memory
 * Defaults: M 512, R 5.
 */
#include "common.h"
#include "bench_util.h"

#define MiB (1024ull * 1024ull)
#define MAX_REPS 64

int main(int argc, char **argv)
{
    size_t bytes = (size_t)opt(argc, argv, "--mib", 512) * MiB;
    int reps = (int)opt(argc, argv, "--reps", 5);
    if (bytes == 0 || reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "bench_first_touch: --mib must be > 0 and --reps 1..%d\n", MAX_REPS);
        return 2;
    }
    init_primary(NULL);
    double alloc_ms[MAX_REPS], first_ms[MAX_REPS], again_ms[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        unsigned char *host;
        CUdeviceptr dev;
        double t0 = now_us();
        CHECK(cuMemAllocHost((void **)&host, bytes));
        double t1 = now_us();
        memset(host, 0x40 + r, bytes);
        CHECK(cuMemAlloc(&dev, bytes));
        double t2 = now_us();
        CHECK(cuMemcpyHtoD(dev, host, bytes));
        double t3 = now_us();
        CHECK(cuMemcpyHtoD(dev, host, bytes));
        double t4 = now_us();
        unsigned char last = 0;
        CHECK(cuMemcpyDtoH(&last, dev + bytes - 1, 1));
        if (last != (unsigned char)(0x40 + r)) {
            fprintf(stderr, "bench_first_touch: the device holds %#x, not %#x\n", last, 0x40 + r);
            return 1;
        }
        CHECK(cuMemFree(dev));
        CHECK(cuMemFreeHost(host));
        alloc_ms[r] = (t1 - t0) / 1e3;
        first_ms[r] = (t3 - t2) / 1e3;
        again_ms[r] = (t4 - t3) / 1e3;
    }
    printf("pinned_alloc_ms %.2f ms\n", median(alloc_ms, reps));
    printf("first_upload_ms %.2f ms\n", median(first_ms, reps));
    printf("again_upload_ms %.2f ms\n", median(again_ms, reps));
    return 0;
}
