// *out += sum(in[0..n)).  Each block reduces a grid-stride slice in DYNAMIC shared memory
// (launch with sharedMemBytes = blockDim.x * sizeof(float); blockDim.x a power of two <= 1024),
// then thread 0 does one atomicAdd into *out.  The caller zeroes *out first.
// Params: (const float* in, float* out, int n)
extern "C" __global__ void reduce_sum(const float* in, float* out, int n)
{
    extern __shared__ float partial[];
    unsigned tid = threadIdx.x;
    float acc = 0.0f;
    for (int i = blockIdx.x * blockDim.x + tid; i < n; i += blockDim.x * gridDim.x) {
        acc += in[i];
    }
    partial[tid] = acc;
    __syncthreads();
    for (unsigned stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (tid < stride) {
            partial[tid] += partial[tid + stride];
        }
        __syncthreads();
    }
    if (tid == 0) {
        atomicAdd(out, partial[0]);
    }
}
