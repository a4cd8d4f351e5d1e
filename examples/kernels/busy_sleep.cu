// Every thread calls __nanosleep(ns) `iters` times, then writes
//   out[global_id] = iters   (if global_id < n)
// Used for timing/overlap tests: under GPUSHARE_CPU_PACING=1 a launch lasts at least
// about ns * iters nanoseconds of wall-clock time.
// Params: (unsigned* out, unsigned ns, int iters, int n)
extern "C" __global__ void busy_sleep(unsigned* out, unsigned ns, int iters, int n)
{
    for (int k = 0; k < iters; ++k) {
        __nanosleep(ns);
    }
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[i] = (unsigned)iters;
    }
}
