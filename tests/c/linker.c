/*
 * The driver linker (cuLinkCreate / cuLinkAddData / cuLinkAddFile / cuLinkComplete /
 * cuLinkDestroy) over PTX inputs, as numba-cuda and cuda-core's Linker use it.
 *
 * Semantics assumed (CUDA Driver API reference, 12.9, "Module Management"):
 *  - cuLinkCreate takes JIT options; the log buffers it names are written by later calls on the
 *    state (CU_JIT_*_LOG_BUFFER_SIZE_BYTES become the bytes written), CU_JIT_WALL_TIME gets a
 *    float (ms).
 *  - cuLinkAddData adds an input of a CUjitInputType; cuLinkComplete returns the linked image and
 *    its size, owned by the state and valid until cuLinkDestroy; the image loads with
 *    cuModuleLoadData.
 *  - An `.extern` symbol that no input defines fails the link (gpushare: CUDA_ERROR_INVALID_PTX)
 *    with a message in the error log. Input types gpushare does not link (cubin, object, library)
 *    -> CUDA_ERROR_NOT_SUPPORTED with a message in the error log; an unknown type ->
 *    CUDA_ERROR_INVALID_VALUE; a destroyed state -> CUDA_ERROR_INVALID_HANDLE.
 */
#include "common.h"

/* Unit A: the kernel; `add_bias` and `bias` are defined in unit B. */
static const char UNIT_A[] =
    ".version 7.8\n"
    ".target sm_52\n"
    ".address_size 64\n"
    ".extern .func (.param .b32 ret) add_bias (.param .b32 x);\n"
    ".extern .global .align 4 .u32 bias;\n"
    ".visible .entry scale_add(.param .u64 out, .param .u32 n)\n"
    "{\n"
    "  .reg .pred %p<2>;\n"
    "  .reg .b32 %r<8>;\n"
    "  .reg .b64 %rd<5>;\n"
    "  ld.param.u64 %rd1, [out];\n"
    "  ld.param.u32 %r1, [n];\n"
    "  mov.u32 %r2, %ctaid.x;\n"
    "  mov.u32 %r3, %ntid.x;\n"
    "  mov.u32 %r4, %tid.x;\n"
    "  mad.lo.s32 %r5, %r2, %r3, %r4;\n"
    "  setp.ge.u32 %p1, %r5, %r1;\n"
    "  @%p1 bra DONE;\n"
    "  {\n"
    "  .param .b32 p0;\n"
    "  st.param.b32 [p0], %r5;\n"
    "  .param .b32 r0;\n"
    "  call.uni (r0), add_bias, (p0);\n"
    "  ld.param.b32 %r6, [r0];\n"
    "  }\n"
    "  cvta.to.global.u64 %rd2, %rd1;\n"
    "  mul.wide.u32 %rd3, %r5, 4;\n"
    "  add.s64 %rd4, %rd2, %rd3;\n"
    "  st.global.u32 [%rd4], %r6;\n"
    "DONE:\n"
    "  ret;\n"
    "}\n";

/* Unit B: defines `bias` (set from the host through the linked module's global) and
 * `add_bias(x) = 3 * x + bias`. */
static const char UNIT_B[] =
    ".version 8.0\n"
    ".target sm_60\n"
    ".address_size 64\n"
    ".visible .global .align 4 .u32 bias = 7;\n"
    ".visible .func (.param .b32 ret) add_bias (.param .b32 x)\n"
    "{\n"
    "  .reg .b32 %r<4>;\n"
    "  ld.param.b32 %r1, [x];\n"
    "  ld.global.u32 %r2, [bias];\n"
    "  mad.lo.s32 %r3, %r1, 3, %r2;\n"
    "  st.param.b32 [ret], %r3;\n"
    "  ret;\n"
    "}\n";

/* A fatbin container holding `ptx` as one uncompressed PTX entry for sm_52 (malloc'd). */
static unsigned char *fatbin_of(const char *ptx, size_t *size)
{
    size_t text = strlen(ptx) + 1, padded = (text + 7) / 8 * 8;
    size_t total = 16 + 64 + padded;
    unsigned char *f = calloc(1, total);
    uint32_t magic = 0xBA55ED50u, hsize = 64, arch = 52;
    uint16_t version = 1, fhsize = 16, kind = 1, eversion = 0x0101;
    uint64_t body = 64 + padded, pad64 = padded, flags = 0x11;
    uint32_t pad32 = (uint32_t)padded;
    memcpy(f, &magic, 4);
    memcpy(f + 4, &version, 2);
    memcpy(f + 6, &fhsize, 2);
    memcpy(f + 8, &body, 8);
    unsigned char *e = f + 16;
    memcpy(e, &kind, 2);
    memcpy(e + 2, &eversion, 2);
    memcpy(e + 4, &hsize, 4);
    memcpy(e + 8, &pad64, 8);
    memcpy(e + 16, &pad32, 4);
    memcpy(e + 28, &arch, 4);
    memcpy(e + 40, &flags, 8);
    memcpy(e + 64, ptx, text);
    *size = total;
    return f;
}

static char info_log[4096], error_log[4096];

/* cuLinkCreate with both log buffers, the wall time and verbose logging. */
static CUlinkState create(float *wall_ms, void **values)
{
    CUjit_option opts[6] = {CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
                            CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                            CU_JIT_LOG_VERBOSE, CU_JIT_WALL_TIME};
    values[0] = info_log;
    values[1] = (void *)(uintptr_t)sizeof info_log;
    values[2] = error_log;
    values[3] = (void *)(uintptr_t)sizeof error_log;
    values[4] = (void *)(uintptr_t)1;
    values[5] = NULL;
    memset(info_log, 0, sizeof info_log);
    memset(error_log, 0, sizeof error_log);
    CUlinkState st = NULL;
    CHECK(cuLinkCreate(6, opts, values, &st));
    (void)wall_ms;
    return st;
}

static void run_linked(const void *image, int n)
{
    CUmodule m = NULL;
    CHECK(cuModuleLoadData(&m, image));
    CUfunction f = get_function(m, "scale_add");
    CUdeviceptr bias = 0, out = 0;
    size_t bias_size = 0;
    CHECK(cuModuleGetGlobal(&bias, &bias_size, m, "bias"));
    EXPECT(bias_size == 4, "bias is %zu bytes", bias_size);
    unsigned b = 100;
    CHECK(cuMemcpyHtoD(bias, &b, sizeof b));
    CHECK(cuMemAlloc(&out, (size_t)n * 4));
    void *args[] = {&out, &n};
    CHECK(cuLaunchKernel(f, (unsigned)(n + 127) / 128, 1, 1, 128, 1, 1, 0, NULL, args, NULL));
    unsigned *h = malloc((size_t)n * 4);
    CHECK(cuMemcpyDtoH(h, out, (size_t)n * 4));
    for (int i = 0; i < n; i++) {
        EXPECT(h[i] == 3u * (unsigned)i + 100u, "out[%d] = %u, want %u", i, h[i], 3 * i + 100);
    }
    free(h);
    CHECK(cuMemFree(out));
    CHECK(cuModuleUnload(m));
}

static void test_two_units(int fatbin)
{
    void *values[6];
    CUlinkState st = create(NULL, values);
    CHECK(cuLinkAddData(st, CU_JIT_INPUT_PTX, (void *)UNIT_A, sizeof UNIT_A, "a.ptx", 0, NULL,
                        NULL));
    if (fatbin) {
        size_t size = 0;
        unsigned char *f = fatbin_of(UNIT_B, &size);
        CHECK(cuLinkAddData(st, CU_JIT_INPUT_FATBINARY, f, size, "b.fatbin", 0, NULL, NULL));
        free(f);
    } else {
        CHECK(cuLinkAddData(st, CU_JIT_INPUT_PTX, (void *)UNIT_B, strlen(UNIT_B), "b.ptx", 0,
                            NULL, NULL));
    }
    void *image = NULL;
    size_t size = 0;
    CHECK(cuLinkComplete(st, &image, &size));
    EXPECT(image != NULL && size > 0, "image %p, %zu bytes", image, size);
    EXPECT(strstr(info_log, "extern symbols resolved") != NULL, "info log: %s", info_log);
    EXPECT((uintptr_t)values[1] == strlen(info_log) + 1, "info log size %zu",
           (size_t)(uintptr_t)values[1]);
    float wall = -1.0f;
    memcpy(&wall, &values[5], sizeof wall);
    EXPECT(wall >= 0.0f, "wall time %f", wall);
    run_linked(image, 1000);
    CHECK(cuLinkDestroy(st));
    EXPECT_ERR(cuLinkDestroy(st), CUDA_ERROR_INVALID_HANDLE);
    OK(fatbin ? "PTX + fatbin units linked, loaded and run" : "two PTX units linked, loaded and run");
}

static void test_errors(void)
{
    void *values[6];
    CUlinkState st = create(NULL, values);
    CHECK(cuLinkAddData(st, CU_JIT_INPUT_PTX, (void *)UNIT_A, sizeof UNIT_A, "a.ptx", 0, NULL,
                        NULL));
    void *image = NULL;
    size_t size = 0;
    EXPECT_ERR(cuLinkComplete(st, &image, &size), CUDA_ERROR_INVALID_PTX);
    EXPECT(strstr(error_log, "unresolved extern symbol") != NULL, "error log: %s", error_log);
    EXPECT((uintptr_t)values[3] == strlen(error_log) + 1, "error log size");
    printf("  (error log: %s)\n", error_log);

    static const char cubin[] = "\x7f" "ELF";
    EXPECT_ERR(cuLinkAddData(st, CU_JIT_INPUT_CUBIN, (void *)cubin, sizeof cubin, "x.cubin", 0,
                             NULL, NULL),
               CUDA_ERROR_NOT_SUPPORTED);
    EXPECT(strstr(error_log, "not supported") != NULL, "error log: %s", error_log);
    EXPECT_ERR(cuLinkAddData(st, CU_JIT_INPUT_LIBRARY, (void *)cubin, sizeof cubin, "x.a", 0,
                             NULL, NULL),
               CUDA_ERROR_NOT_SUPPORTED);
    EXPECT_ERR(cuLinkAddData(st, (CUjitInputType)99, (void *)UNIT_B, sizeof UNIT_B, NULL, 0, NULL,
                             NULL),
               CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuLinkAddData(st, CU_JIT_INPUT_PTX, (void *)"not ptx", 8, "bad.ptx", 0, NULL,
                             NULL),
               CUDA_ERROR_INVALID_PTX);
    EXPECT_ERR(cuLinkAddFile(st, CU_JIT_INPUT_PTX, "/nonexistent/x.ptx", 0, NULL, NULL),
               CUDA_ERROR_FILE_NOT_FOUND);
    /* the state is still usable: adding the missing unit completes the link */
    CHECK(cuLinkAddData(st, CU_JIT_INPUT_PTX, (void *)UNIT_B, sizeof UNIT_B, "b.ptx", 0, NULL,
                        NULL));
    CHECK(cuLinkComplete(st, &image, &size));
    run_linked(image, 64);
    CHECK(cuLinkDestroy(st));
    EXPECT_ERR(cuLinkComplete(st, &image, &size), CUDA_ERROR_INVALID_HANDLE);
    EXPECT_ERR(cuLinkCreate(0, NULL, NULL, NULL), CUDA_ERROR_INVALID_VALUE);
    OK("unresolved symbol, unsupported and bad inputs, stale state");
}

/* cuLinkAddFile with a PTX file, and options accepted and ignored. */
static void test_file_and_options(void)
{
    char path[] = "/tmp/gpushare-linker-XXXXXX";
    int fd = mkstemp(path);
    EXPECT(fd >= 0, "mkstemp: %s", strerror(errno));
    EXPECT(write(fd, UNIT_B, strlen(UNIT_B)) == (ssize_t)strlen(UNIT_B), "write");
    close(fd);
    CUjit_option opts[3] = {CU_JIT_MAX_REGISTERS, CU_JIT_OPTIMIZATION_LEVEL,
                            CU_JIT_GENERATE_LINE_INFO};
    void *values[3] = {(void *)(uintptr_t)32, (void *)(uintptr_t)4, (void *)(uintptr_t)1};
    CUlinkState st = NULL;
    CHECK(cuLinkCreate_v2(3, opts, values, &st));
    CHECK(cuLinkAddData_v2(st, CU_JIT_INPUT_PTX, (void *)UNIT_A, sizeof UNIT_A, NULL, 0, NULL,
                           NULL));
    CHECK(cuLinkAddFile_v2(st, CU_JIT_INPUT_PTX, path, 0, NULL, NULL));
    unlink(path);
    void *image = NULL;
    size_t size = 0;
    CHECK(cuLinkComplete(st, &image, &size));
    run_linked(image, 300);
    CHECK(cuLinkDestroy(st));
    OK("cuLinkAddFile, options accepted");
}

int main(void)
{
    watchdog(120);
    CUdevice dev;
    init_primary(&dev);
    test_two_units(0);
    test_two_units(1);
    test_errors();
    test_file_and_options();
    CHECK(cuDevicePrimaryCtxRelease(dev));
    printf("linker: all ok\n");
    return 0;
}
