/*
 * A tenant's host function must hold only its own stream. Through gpushare the function runs in
 * the tenant's process while the worker holds the tenant's stream at a gate; the gate used to
 * wait inside a driver host function, on the worker's one callback thread, so every completion
 * marker of the group's other tenants waited for the slow function too. tests/tests/gates.rs
 * runs two of these against one broker (docs/architecture.md, "Broker and workers"):
 *
 *   hostfn_gate sleep MS   a host function on a stream prints "sleeping", sleeps MS ms, prints
 *                          "woke"; the program then synchronises the stream and exits 0.
 *   hostfn_gate work N     N times: a memset on its own stream and cuStreamSynchronize (each
 *                          waits for a completion marker); prints "done" and exits 0.
 */
#include "common.h"

static void CUDA_CB sleeper(void *arg)
{
    unsigned ms = (unsigned)(uintptr_t)arg;
    printf("sleeping\n");
    fflush(stdout);
    usleep(ms * 1000u);
    printf("woke\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    EXPECT(argc == 3, "usage: hostfn_gate sleep MS | work N");
    unsigned long n = strtoul(argv[2], NULL, 0);
    watchdog(120);
    init_primary(NULL);
    CUstream s;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    if (strcmp(argv[1], "sleep") == 0) {
        CHECK(cuLaunchHostFunc(s, sleeper, (void *)(uintptr_t)n));
        CHECK(cuStreamSynchronize(s));
    } else {
        CUdeviceptr d;
        CHECK(cuMemAlloc(&d, 4096));
        for (unsigned long i = 0; i < n; i++) {
            CHECK(cuMemsetD8Async(d, (unsigned char)i, 4096, s));
            CHECK(cuStreamSynchronize(s));
        }
        CHECK(cuMemFree(d));
        printf("done\n");
    }
    CHECK(cuStreamDestroy(s));
    return 0;
}
