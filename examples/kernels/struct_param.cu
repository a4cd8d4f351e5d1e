// A struct passed by value as a kernel parameter.
//   out[i] = in[i] * p.scale + p.bias[i % 4] + (float)p.offset      for i < n
// Parameter layout (offset, size) as reported by cuFuncGetParamInfo:
//   p   : (0, 24)   struct { float scale; int offset; float bias[4]; }  align 4
//   in  : (24, 8)
//   out : (32, 8)
//   n   : (40, 4)
// Params: (StructParams p, const float* in, float* out, int n)
struct StructParams {
    float scale;
    int offset;
    float bias[4];
};

extern "C" __global__ void struct_param(StructParams p, const float* in, float* out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[i] = in[i] * p.scale + p.bias[i % 4] + (float)p.offset;
    }
}
