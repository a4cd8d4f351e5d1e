// y[i] = a * x[i] + y[i] for i < n, with a grid-stride loop (any grid size works).
// Params: (float a, const float* x, float* y, int n)
extern "C" __global__ void saxpy(float a, const float* x, float* y, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        y[i] = a * x[i] + y[i];
    }
}
