// out[r][c] = max(in[r][c] + bias[c], 0) for a row-major rows x cols matrix.
// 2-D launch: x covers columns, y covers rows (e.g. block 16x16,
// grid (ceil(cols/16), ceil(rows/16))).
// Params: (const float* in, const float* bias, float* out, int rows, int cols)
extern "C" __global__ void bias_relu(const float* in, const float* bias, float* out, int rows, int cols)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int r = blockIdx.y * blockDim.y + threadIdx.y;
    if (r < rows && c < cols) {
        float v = in[r * cols + c] + bias[c];
        out[r * cols + c] = v > 0.0f ? v : 0.0f;
    }
}
