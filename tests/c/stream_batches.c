/*
 * A stream's completion through gpushare is reported per batch of commands: a marker after a
 * batch's last command raises the stream's completion slot (docs/architecture.md, "Broker and
 * workers"). A batch closes when the broker's ring goes idle, before a call, or when it holds
 * 256 commands. Whatever command closes it, a synchronisation may return only once that command
 * ran: for n = 250 ... 262 commands queued in one burst after a synchronisation — n - 1 empty
 * launches, then a 30 ms kernel — cuStreamSynchronize must not return before the kernel's
 * modelled end (GPUSHARE_CPU_PACING=1, so it lasts 30 ms of wall-clock time). A marker queued
 * before the 256th command's work reported it complete once the 255 before it were: the
 * synchronisation returned about 2 ms after the launch.
 */
#include "common.h"

int main(void)
{
    watchdog(120);
    EXPECT(env_is("GPUSHARE_CPU_PACING", "1"), "run with GPUSHARE_CPU_PACING=1 (the harness does)");
    init_primary(NULL);
    CUmodule m = load_module("busy_sleep");
    CUfunction busy_sleep = get_function(m, "busy_sleep");
    CUstream s;
    CUdeviceptr out;
    CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CHECK(cuMemAlloc(&out, 32 * sizeof(unsigned)));
    for (int n = 250; n <= 262; n++) {
        CHECK(cuCtxSynchronize());
        for (int k = 1; k < n; k++) {
            launch_sleep(busy_sleep, s, out, 0, 0, 1);
        }
        double t0 = now_ms();
        launch_sleep(busy_sleep, s, out, 100000, 300, 1);
        CHECK(cuStreamSynchronize(s));
        double waited = now_ms() - t0;
        EXPECT(waited >= 25.0, "%d commands: cuStreamSynchronize returned %.1f ms after the "
               "launch of a 30 ms kernel", n, waited);
    }
    OK("a synchronisation waits for the last command of a burst of 250 to 262, whichever "
       "closes a batch");
    CHECK(cuMemFree(out));
    CHECK(cuStreamDestroy(s));
    CHECK(cuModuleUnload(m));
    return 0;
}
