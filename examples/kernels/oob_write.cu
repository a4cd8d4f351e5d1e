// Thread 0 of block 0 writes `value` at p[index] with no bounds check, so a test can
// fault on purpose (index far past the allocation -> CUDA_ERROR_ILLEGAL_ADDRESS) or
// write through a read-only VMM mapping.
// Params: (float* p, long long index, float value)
extern "C" __global__ void oob_write(float* p, long long index, float value)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        p[index] = value;
    }
}
