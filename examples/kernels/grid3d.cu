// 3-D grid of 3-D blocks. For every global (x, y, z) inside nx x ny x nz:
//   out[(z * ny + y) * nx + x] = x + 1000 * y + 1000000 * z
// and a second array records the linear thread id inside the block:
//   tid[(z * ny + y) * nx + x] = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)
// Params: (unsigned* out, unsigned* tid, int nx, int ny, int nz)
extern "C" __global__ void grid3d(unsigned* out, unsigned* tid, int nx, int ny, int nz)
{
    unsigned x = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned y = blockIdx.y * blockDim.y + threadIdx.y;
    unsigned z = blockIdx.z * blockDim.z + threadIdx.z;
    if (x < (unsigned)nx && y < (unsigned)ny && z < (unsigned)nz) {
        size_t idx = ((size_t)z * ny + y) * nx + x;
        out[idx] = x + 1000u * y + 1000000u * z;
        tid[idx] = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    }
}
