// Double precision: y[i] = a * x[i] + sqrt(y[i]) for i < n (callers keep y[i] >= 0).
// Params: (double a, const double* x, double* y, int n)
extern "C" __global__ void daxpy_f64(double a, const double* x, double* y, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        y[i] = a * x[i] + sqrt(y[i]);
    }
}
