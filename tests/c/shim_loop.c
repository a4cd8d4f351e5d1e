/*
 * A tenant that keeps the device busy until something goes wrong: for the shim + broker
 * end-to-end tests (tests/tests/shim.rs) that kill a tenant or the broker mid-run.
 *
 * Usage: shim_loop [--alloc-mib N] [--iters N] [--copy 1]
 *
 * Allocates N MiB of device memory (default 8) and fills it with cuMemsetD8, loads the empty
 * kernel, creates a stream, then loops: cuLaunchKernel(empty_kernel) on the stream and
 * cuStreamSynchronize, every other iteration cuCtxSynchronize instead. After the first iteration
 * has synchronised it prints "ready" (the only line it ever prints to stdout); with --iters 0
 * (the default) it loops forever. With --copy 1 every iteration also uploads the allocation from
 * malloc'd memory (cuMemcpyHtoD: pipelined in pieces through the broker's staging) and downloads
 * it again (cuMemcpyDtoH), checking the bytes: a tenant killed mid-copy.
 *
 * Any failing call in the loop prints "shim_loop: iteration I: CALL -> NAME (CODE)" on stderr
 * and exits 3 — what a tenant does when its broker dies: the next synchronising call must
 * return an error (not hang) and the program ends by itself. Set-up failures exit 1.
 */
#include "common.h"

#define MiB (1024ull * 1024ull)

static void loop_fail(unsigned long long iter, const char *call, CUresult r)
{
    fprintf(stderr, "shim_loop: iteration %llu: %s -> %s (%d)\n", iter, call, cu_name(r), (int)r);
    fflush(stderr);
    exit(3);
}

int main(int argc, char **argv)
{
    unsigned long long alloc_mib = 8, iters = 0, copy = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--alloc-mib") == 0) {
            alloc_mib = strtoull(argv[i + 1], NULL, 0);
        } else if (strcmp(argv[i], "--iters") == 0) {
            iters = strtoull(argv[i + 1], NULL, 0);
        } else if (strcmp(argv[i], "--copy") == 0) {
            copy = strtoull(argv[i + 1], NULL, 0);
        } else {
            fprintf(stderr, "usage: %s [--alloc-mib N] [--iters N] [--copy 1]\n", argv[0]);
            return 2;
        }
    }
    init_primary(NULL);
    CUdeviceptr mem = 0;
    if (alloc_mib > 0) {
        CHECK(cuMemAlloc(&mem, (size_t)(alloc_mib * MiB)));
        CHECK(cuMemsetD8(mem, 0x5a, (size_t)(alloc_mib * MiB)));
    }
    CUmodule m = load_module("empty_kernel");
    CUfunction empty = get_function(m, "empty_kernel");
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    const size_t bytes = (size_t)(alloc_mib * MiB);
    unsigned char *host = NULL;
    if (copy && bytes > 0) {
        host = (unsigned char *)malloc(bytes);
        EXPECT(host != NULL, "malloc %zu", bytes);
    }

    for (unsigned long long it = 0; iters == 0 || it < iters; it++) {
        CUresult r = cuLaunchKernel(empty, 1, 1, 1, 32, 1, 1, 0, s, NULL, NULL);
        if (r != CUDA_SUCCESS) {
            loop_fail(it, "cuLaunchKernel", r);
        }
        if (it % 2 == 0) {
            r = cuStreamSynchronize(s);
            if (r != CUDA_SUCCESS) {
                loop_fail(it, "cuStreamSynchronize", r);
            }
        } else {
            r = cuCtxSynchronize();
            if (r != CUDA_SUCCESS) {
                loop_fail(it, "cuCtxSynchronize", r);
            }
        }
        if (host != NULL) {
            memset(host, (int)(it & 0xff), bytes);
            r = cuMemcpyHtoD(mem, host, bytes);
            if (r != CUDA_SUCCESS) {
                loop_fail(it, "cuMemcpyHtoD", r);
            }
            memset(host, 0xee, bytes);
            r = cuMemcpyDtoH(host, mem, bytes);
            if (r != CUDA_SUCCESS) {
                loop_fail(it, "cuMemcpyDtoH", r);
            }
            EXPECT(host[0] == (unsigned char)it && host[bytes - 1] == (unsigned char)it,
                   "iteration %llu: read back %#x %#x", it, host[0], host[bytes - 1]);
        }
        if (it == 0) {
            printf("ready\n");
            fflush(stdout);
        }
    }
    free(host);
    CHECK(cuStreamDestroy(s));
    CHECK(cuModuleUnload(m));
    if (mem != 0) {
        CHECK(cuMemFree(mem));
    }
    return 0;
}
