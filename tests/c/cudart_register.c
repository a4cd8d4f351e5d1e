/*
 * CUDA runtime over the CPU device, part 4: the registration path nvcc-generated host code takes.
 *
 * A program compiled by nvcc embeds a fatbin in .nv_fatbin and, from a static constructor, calls
 *   handle = __cudaRegisterFatBinary(&wrapper)          (wrapper: __fatBinC_Wrapper_t, magic
 *                                                          0x466243B1, version 1, data -> fatbin)
 *   __cudaRegisterFunction(handle, hostStub, "name", "name", -1, 0, 0, 0, 0, 0)  per kernel
 *   __cudaRegisterVar(handle, &hostShadow, "name", "name", 0, size, 0, 0)        per __device__ var
 *   __cudaRegisterFatBinaryEnd(handle)
 * and at exit __cudaUnregisterFatBinary(handle). A launch is cudaLaunchKernel(hostStub, ...);
 * the runtime maps the stub to the kernel (loading the module lazily, through the driver's
 * hidden CUDART_INTERFACE table). This program makes exactly those calls, over fatbins it builds
 * from the corpus PTX (vector_add, device_global).
 *
 * Semantics assumed (CUDA Runtime API reference, 12.9): cudaMemcpyToSymbol/FromSymbol and
 * cudaGetSymbolAddress/Size take the host shadow address of a registered variable;
 * cudaFuncGetAttributes takes the host stub; after cudaDeviceReset the registered kernels work
 * again and __device__ variables have their initial values.
 */
#include "cudart_common.h"

#include <fatbinary_section.h>

void **__cudaRegisterFatBinary(void *fatCubin);
void __cudaRegisterFatBinaryEnd(void **fatCubinHandle);
void __cudaUnregisterFatBinary(void **fatCubinHandle);
void __cudaRegisterFunction(void **fatCubinHandle, const char *hostFun, char *deviceFun,
                            const char *deviceName, int thread_limit, uint3 *tid, uint3 *bid,
                            dim3 *bDim, dim3 *gDim, int *wSize);
void __cudaRegisterVar(void **fatCubinHandle, char *hostVar, char *deviceAddress,
                       const char *deviceName, int ext, size_t size, int constant, int global);

/* Host stubs: only their addresses matter (nvcc's stubs call cudaLaunchKernel on themselves). */
static volatile int stub_calls;
__attribute__((noinline)) static void vector_add_stub(void) { stub_calls += 1; }
__attribute__((noinline)) static void read_table_stub(void) { stub_calls += 2; }
__attribute__((noinline)) static void bump_counter_stub(void) { stub_calls += 3; }

/* Host shadows of the __device__ variables of device_global.cu. */
static float dev_table_shadow[16];
static int dev_counter_shadow;

static __fatBinC_Wrapper_t vector_add_wrapper, globals_wrapper;
static void **vector_add_handle, **globals_handle;

static void **register_fatbin(__fatBinC_Wrapper_t *w, const char *kernel)
{
    char *ptx = kernel_ptx(kernel, NULL);
    size_t size = 0;
    unsigned char *fat = build_fatbin(ptx, &size);
    free(ptx);
    w->magic = FATBINC_MAGIC;
    w->version = FATBINC_VERSION;
    w->data = (const unsigned long long *)fat; /* lives until exit, as .nv_fatbin does */
    w->filename_or_fatbins = NULL;
    return __cudaRegisterFatBinary(w);
}

static void unregister_all(void)
{
    __cudaUnregisterFatBinary(vector_add_handle);
    __cudaUnregisterFatBinary(globals_handle);
}

/* What nvcc's __sti____cudaRegisterAll does. */
static void register_all(void)
{
    vector_add_handle = register_fatbin(&vector_add_wrapper, "vector_add");
    EXPECT(vector_add_handle != NULL, "__cudaRegisterFatBinary returned NULL");
    __cudaRegisterFunction(vector_add_handle, (const char *)vector_add_stub, (char *)"vector_add",
                           "vector_add", -1, NULL, NULL, NULL, NULL, NULL);
    __cudaRegisterFatBinaryEnd(vector_add_handle);

    globals_handle = register_fatbin(&globals_wrapper, "device_global");
    __cudaRegisterFunction(globals_handle, (const char *)read_table_stub, (char *)"read_table",
                           "read_table", -1, NULL, NULL, NULL, NULL, NULL);
    __cudaRegisterFunction(globals_handle, (const char *)bump_counter_stub,
                           (char *)"bump_counter", "bump_counter", -1, NULL, NULL, NULL, NULL,
                           NULL);
    __cudaRegisterVar(globals_handle, (char *)dev_table_shadow, (char *)"dev_table", "dev_table",
                      0, sizeof dev_table_shadow, 0, 0);
    __cudaRegisterVar(globals_handle, (char *)&dev_counter_shadow, (char *)"dev_counter",
                      "dev_counter", 0, sizeof dev_counter_shadow, 0, 0);
    __cudaRegisterFatBinaryEnd(globals_handle);
    atexit(unregister_all);
}

static void test_vector_add(void)
{
    const int n = 50000;
    size_t bytes = (size_t)n * sizeof(float);
    float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    for (int i = 0; i < n; i++) {
        a[i] = (float)i;
        b[i] = (float)(2 * i) + 0.5f;
    }
    float *da, *db, *dc;
    CHECK(cudaMalloc((void **)&da, bytes));
    CHECK(cudaMalloc((void **)&db, bytes));
    CHECK(cudaMalloc((void **)&dc, bytes));
    CHECK(cudaMemcpy(da, a, bytes, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(db, b, bytes, cudaMemcpyHostToDevice));
    void *args[] = {&da, &db, &dc, (void *)&n};
    dim3 grid = {(unsigned)((n + 127) / 128), 1, 1}, block = {128, 1, 1};
    CHECK(cudaLaunchKernel((const void *)vector_add_stub, grid, block, args, 0, 0));
    CHECK(cudaGetLastError());
    CHECK(cudaMemcpy(c, dc, bytes, cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
        EXPECT(c[i] == a[i] + b[i], "c[%d] = %f", i, c[i]);
    }
    OK("registered fatbin: cudaLaunchKernel(host stub) ran vector_add");

    struct cudaFuncAttributes fa;
    CHECK(cudaFuncGetAttributes(&fa, (const void *)vector_add_stub));
    EXPECT(fa.maxThreadsPerBlock >= 128, "maxThreadsPerBlock %d", fa.maxThreadsPerBlock);
    /* An address that was never registered is not a kernel. libcudart 12.9 then takes it for a
     * cudaKernel_t and asks the driver (cuKernelGetFunction), which rejects the handle:
     * cudaErrorInvalidResourceHandle; older runtimes said cudaErrorInvalidDeviceFunction. */
    static int not_a_stub;
    cudaError_t r = cudaLaunchKernel((const void *)&not_a_stub, grid, block, args, 0, 0);
    EXPECT(r == cudaErrorInvalidResourceHandle || r == cudaErrorInvalidDeviceFunction,
           "unregistered stub -> %s", cudaGetErrorName(r));
    EXPECT_ERR(cudaGetLastError(), r);
    EXPECT_ERR(cudaGetLastError(), cudaSuccess);
    OK("cudaFuncGetAttributes(stub); unregistered stub -> %s", cudaGetErrorName(r));
    CHECK(cudaFree(da));
    CHECK(cudaFree(db));
    CHECK(cudaFree(dc));
    free(a);
    free(b);
    free(c);
}

static void test_globals(void)
{
    int counter = -1;
    CHECK(cudaMemcpyFromSymbol(&counter, &dev_counter_shadow, sizeof counter, 0,
                               cudaMemcpyDeviceToHost));
    EXPECT(counter == 7, "dev_counter initial value %d", counter);
    float table[16];
    for (int i = 0; i < 16; i++) {
        table[i] = (float)i * 1.5f;
    }
    CHECK(cudaMemcpyToSymbol(dev_table_shadow, table, sizeof table, 0, cudaMemcpyHostToDevice));
    int delta = 5;
    void *bump_args[] = {&delta};
    dim3 one = {1, 1, 1};
    CHECK(cudaLaunchKernel((const void *)bump_counter_stub, one, one, bump_args, 0, 0));
    float *dout;
    CHECK(cudaMalloc((void **)&dout, sizeof table));
    int n = 16;
    void *read_args[] = {&dout, &n};
    dim3 block = {16, 1, 1};
    CHECK(cudaLaunchKernel((const void *)read_table_stub, one, block, read_args, 0, 0));
    float out[16];
    CHECK(cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost));
    for (int i = 0; i < 16; i++) {
        EXPECT(out[i] == table[i] + 12.0f, "out[%d] = %f, want %f", i, out[i], table[i] + 12.0f);
    }
    void *addr = NULL;
    size_t size = 0;
    CHECK(cudaGetSymbolAddress(&addr, &dev_counter_shadow));
    CHECK(cudaGetSymbolSize(&size, &dev_counter_shadow));
    EXPECT(addr != NULL && size == sizeof(int), "symbol %p size %zu", addr, size);
    CHECK(cudaMemcpy(&counter, addr, sizeof counter, cudaMemcpyDeviceToHost));
    EXPECT(counter == 12, "dev_counter after bump %d", counter);
    CHECK(cudaFree(dout));
    OK("registered variables: cudaMemcpyTo/FromSymbol, cudaGetSymbolAddress/Size");
}

int main(void)
{
    watchdog(120);
    register_all();
    test_vector_add();
    test_globals();
    /* cudaDeviceReset destroys the primary context's state (the driver runs libcudart's
     * context-local-storage destructors); the next call sets everything up again, including the
     * registered kernels and variables (back to their initial values). */
    CHECK(cudaDeviceReset());
    OK("cudaDeviceReset");
    test_vector_add();
    test_globals();
    CHECK(cudaDeviceSynchronize());
    printf("PASS\n");
    return 0;
}
