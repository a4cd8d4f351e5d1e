// Module-scope __device__ variables, for cuModuleGetGlobal tests.
// (Namespace-scope variables are not name-mangled, so the PTX symbols are the plain names.)
//   dev_table   : 16 floats (64 bytes), zero-initialised
//   dev_counter : one int (4 bytes), initialised to 7 in the image
// read_table(out, n): out[i] = dev_table[i] + (float)dev_counter   for i < min(n, 16)
// bump_counter(delta): dev_counter += delta                         (one thread)
__device__ float dev_table[16];
__device__ int dev_counter = 7;

extern "C" __global__ void read_table(float* out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && i < 16) {
        out[i] = dev_table[i] + (float)dev_counter;
    }
}

extern "C" __global__ void bump_counter(int delta)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        dev_counter += delta;
    }
}
