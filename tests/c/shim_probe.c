/*
 * What a tenant sees when there is no broker: for the shim end-to-end tests (tests/tests/shim.rs),
 * run with GPUSHARE_SOCKET naming a socket nobody listens on.
 *
 * Usage: shim_probe
 *
 * Prints exactly two lines on stdout and exits 0 whatever the results (the harness judges them):
 *   cuInit -> NAME
 *   cuDeviceGetCount -> NAME count N
 * Under the shim without a broker cuInit must fail (and return promptly); on a working driver both
 * succeed. cuGetErrorName works without a driver connection, so the names are always printable.
 */
#include "common.h"

int main(void)
{
    watchdog(60);
    CUresult r = cuInit(0);
    printf("cuInit -> %s\n", cu_name(r));
    fflush(stdout);
    int count = -1;
    CUresult rc = cuDeviceGetCount(&count);
    printf("cuDeviceGetCount -> %s count %d\n", cu_name(rc), rc == CUDA_SUCCESS ? count : -1);
    fflush(stdout);
    return 0;
}
