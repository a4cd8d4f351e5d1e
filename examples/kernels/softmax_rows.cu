// Row-wise softmax of a row-major rows x cols matrix: out[r][c] = exp(in[r][c] - max_r) / sum_r.
// One warp (32 lanes) per row; blockDim.x must be a multiple of 32 and each block handles
// blockDim.x / 32 rows: row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32.
// Max and sum are butterfly reductions with __shfl_xor_sync over the full warp.
// Params: (const float* in, float* out, int rows, int cols)
extern "C" __global__ void softmax_rows(const float* in, float* out, int rows, int cols)
{
    const unsigned FULL = 0xffffffffu;
    int lane = threadIdx.x & 31;
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    // No early return before the shuffles: every lane of the warp takes part in them.
    bool active = row < rows;
    const float* src = in + (size_t)row * cols;

    float m = -3.402823466e38f;
    if (active) {
        for (int c = lane; c < cols; c += 32) {
            m = fmaxf(m, src[c]);
        }
    }
    for (int off = 16; off > 0; off >>= 1) {
        m = fmaxf(m, __shfl_xor_sync(FULL, m, off));
    }

    float s = 0.0f;
    if (active) {
        for (int c = lane; c < cols; c += 32) {
            s += expf(src[c] - m);
        }
    }
    for (int off = 16; off > 0; off >>= 1) {
        s += __shfl_xor_sync(FULL, s, off);
    }

    if (active) {
        float* dst = out + (size_t)row * cols;
        float inv = 1.0f / s;
        for (int c = lane; c < cols; c += 32) {
            dst[c] = expf(src[c] - m) * inv;
        }
    }
}
