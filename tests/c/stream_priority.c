/*
 * A tenant's own stream priorities (cuStreamCreateWithPriority) order its work in the broker's
 * scheduler: scripts nothing, prints one figure for tests/tests/scheduling.rs.
 *
 * On a stream of the least priority it queues N pairs (busy_sleep of SLEEP_NS, then
 * bump_counter(1): dev_counter += 1); then, on a second stream, one read_table that copies
 * dev_counter into out[0]. The second stream has the greatest priority (default) or the least
 * (`--same`). It waits for the second stream only, so out[0] - 7 (dev_counter starts at 7) is
 * how many of the first stream's kernels ran before the read:
 *   bumps_before K
 * With priorities honoured the read passes the queued low-priority work (K far below N); with
 * equal priorities it runs in command order (K close to N). Exits non-zero on any CUDA error or
 * a wrong final count.
 */
#include "common.h"

#define N 200
#define SLEEP_NS 1000000u

int main(int argc, char **argv)
{
    int same = argc > 1 && strcmp(argv[1], "--same") == 0;
    init_primary(NULL);
    int least = 0, greatest = 0;
    CHECK(cuCtxGetStreamPriorityRange(&least, &greatest));
    EXPECT(greatest < least, "a priority range: least %d, greatest %d", least, greatest);
    CUstream low, high;
    CHECK(cuStreamCreateWithPriority(&low, CU_STREAM_NON_BLOCKING, least));
    CHECK(cuStreamCreateWithPriority(&high, CU_STREAM_NON_BLOCKING, same ? least : greatest));

    CUmodule sleep_mod = load_module("busy_sleep");
    CUfunction busy_sleep = get_function(sleep_mod, "busy_sleep");
    CUmodule globals = load_module("device_global");
    CUfunction bump = get_function(globals, "bump_counter");
    CUfunction read_table = get_function(globals, "read_table");
    CUdeviceptr scratch, out;
    CHECK(cuMemAlloc(&scratch, 32 * 4));
    CHECK(cuMemAlloc(&out, 16 * 4));

    int one = 1;
    void *bump_params[] = {&one};
    for (int i = 0; i < N; i++) {
        launch_sleep(busy_sleep, low, scratch, SLEEP_NS, 1, 32);
        CHECK(cuLaunchKernel(bump, 1, 1, 1, 1, 1, 1, 0, low, bump_params, NULL));
    }
    int n = 1;
    void *read_params[] = {&out, &n};
    CHECK(cuLaunchKernel(read_table, 1, 1, 1, 1, 1, 1, 0, high, read_params, NULL));
    CHECK(cuStreamSynchronize(high));
    float seen = 0;
    CHECK(cuMemcpyDtoH(&seen, out, sizeof seen));
    printf("bumps_before %d\n", (int)seen - 7);

    CHECK(cuStreamSynchronize(low));
    CHECK(cuLaunchKernel(read_table, 1, 1, 1, 1, 1, 1, 0, high, read_params, NULL));
    CHECK(cuStreamSynchronize(high));
    CHECK(cuMemcpyDtoH(&seen, out, sizeof seen));
    EXPECT((int)seen == 7 + N, "all %d bumps ran: counter %d", N, (int)seen);
    return 0;
}
