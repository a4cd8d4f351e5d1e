/*
 * Family h: modules and libraries: loading PTX (file, text, Ex with JIT options, fatbin),
 * functions, globals, parameter info, function attributes, error cases.
 *
 * Semantics assumed (CUDA Driver API reference, 12.9):
 *  - cuModuleLoad accepts a PTX file path; a missing file -> CUDA_ERROR_FILE_NOT_FOUND.
 *  - cuModuleLoadData/Ex accept NUL-terminated PTX text, a fatbin image, or the fatbin wrapper
 *    (__fatBinC_Wrapper_t) that nvcc emits; cuModuleLoadFatBinary accepts a fatbin image.
 *  - Malformed PTX (syntax errors, opcodes that exist in no PTX ISA) -> CUDA_ERROR_INVALID_PTX,
 *    and with CU_JIT_ERROR_LOG_BUFFER the JIT writes a diagnostic there. Bytes that are no
 *    image at all -> CUDA_ERROR_INVALID_IMAGE (drivers that try to parse them as PTX report
 *    CUDA_ERROR_INVALID_PTX; both accepted). A fatbin holding no
 *    usable entry -> CUDA_ERROR_NO_BINARY_FOR_GPU (INVALID_IMAGE accepted).
 *  - cuModuleGetFunction / cuModuleGetGlobal / cuLibraryGetKernel with an unknown name ->
 *    CUDA_ERROR_NOT_FOUND. cuModuleGetGlobal returns the variable's address and size; both
 *    outputs are optional.
 *  - cuLaunchKernel accepts a CUkernel cast to CUfunction (context-less kernel, CUDA 12.0+).
 *  - cuFuncGetParamInfo / cuKernelGetParamInfo (12.4+): offset and size of parameter i in the
 *    parameter buffer; i past the last parameter -> CUDA_ERROR_INVALID_VALUE.
 *  - cuFuncGetAttribute: MAX_THREADS_PER_BLOCK (1024 for these small kernels on sm_90),
 *    NUM_REGS >= 0, SHARED_SIZE_BYTES = static shared memory (sgemm_tiled: 2 * 16*16 floats).
 *
 * Fatbin layout used here (little-endian). Sources: public reverse-engineering notes — ZLUDA's
 * FatbincWrapper/FatbinHeader/FatbinFileHeader structs and the nvopen-tools fatbin
 * FORMAT_SPECIFICATION (cuobjdump-derived); field names are descriptive, not NVIDIA's.
 *   wrapper (__fatBinC_Wrapper_t, 24 bytes): i32 magic 0x466243B1, i32 version 1,
 *     const void *data (-> fatbin header), void *filename_or_fatbins (NULL)
 *   fatbin header (16 bytes, 8-byte aligned):
 *     0 u32 magic 0xBA55ED50   4 u16 version 1   6 u16 header_size 16
 *     8 u64 fat_size = bytes of all entries that follow the header
 *   entry header (64 bytes), followed by its payload; next entry at
 *   entry + header_size + padded_payload_size:
 *     0 u16 kind (1 = PTX, 2 = ELF cubin)      2 u16 version (0x0101)
 *     4 u32 header_size (64)                   8 u64 padded_payload_size (multiple of 8)
 *    16 u32 payload_size                      20 u32 reserved (0)
 *    24 u32 ptx_version ((major << 16) | minor of the PTX ISA)
 *    28 u32 sm_version (90)                   32 u32 file_name_offset (0)  36 u32 file_name_len (0)
 *    40 u64 flags (0x1 64-bit | 0x10 Linux; 0x2000 LZ4 / 0x8000 ZSTD compression: unset)
 *    48 u64 reserved (0)                      56 u64 uncompressed_payload_size (0: not compressed)
 *   The PTX payload is the NUL-terminated text, zero-padded to a multiple of 8 so that
 *   padded_payload_size == payload_size whichever of the two a reader uses.
 */
#include "common.h"

struct __attribute__((aligned(8))) fatbin_header {
    uint32_t magic;
    uint16_t version;
    uint16_t header_size;
    uint64_t fat_size;
};

struct fatbin_entry {
    uint16_t kind;
    uint16_t version;
    uint32_t header_size;
    uint64_t padded_payload_size;
    uint32_t payload_size;
    uint32_t reserved0;
    uint32_t ptx_version;
    uint32_t sm_version;
    uint32_t file_name_offset;
    uint32_t file_name_len;
    uint64_t flags;
    uint64_t reserved1;
    uint64_t uncompressed_payload_size;
};

struct fatbin_wrapper {
    int magic;
    int version;
    const void *data;
    void *filename_or_fatbins;
};

_Static_assert(sizeof(struct fatbin_header) == 16, "fatbin header is 16 bytes");
_Static_assert(sizeof(struct fatbin_entry) == 64, "fatbin entry header is 64 bytes");

/* Builds a fatbin (8-byte aligned, malloc'd) with one entry of `kind` carrying `ptx`. */
static void *build_fatbin(const char *ptx, uint16_t kind, size_t *total_out)
{
    size_t text = strlen(ptx) + 1; /* include the NUL */
    size_t padded = (text + 7) & ~(size_t)7;
    size_t total = sizeof(struct fatbin_header) + sizeof(struct fatbin_entry) + padded;
    unsigned char *buf = NULL;
    EXPECT(posix_memalign((void **)&buf, 16, total) == 0, "posix_memalign");
    memset(buf, 0, total);

    struct fatbin_header hdr = {0xBA55ED50u, 1, 16, (uint64_t)(sizeof(struct fatbin_entry) + padded)};
    unsigned major = 0, minor = 0;
    const char *v = strstr(ptx, ".version ");
    if (v != NULL) {
        sscanf(v, ".version %u.%u", &major, &minor);
    }
    struct fatbin_entry e;
    memset(&e, 0, sizeof e);
    e.kind = kind;
    e.version = 0x0101;
    e.header_size = (uint32_t)sizeof e;
    e.padded_payload_size = padded;
    e.payload_size = (uint32_t)padded;
    e.ptx_version = (major << 16) | minor;
    e.sm_version = 90;
    e.flags = 0x1 | 0x10;
    memcpy(buf, &hdr, sizeof hdr);
    memcpy(buf + sizeof hdr, &e, sizeof e);
    memcpy(buf + sizeof hdr + sizeof e, ptx, text);
    *total_out = total;
    return buf;
}

static void run_vector_add(CUfunction f, const char *what)
{
    const int n = 1000;
    float ha[1000], hb[1000], hc[1000];
    for (int i = 0; i < n; i++) {
        ha[i] = (float)i;
        hb[i] = 2.0f * (float)i;
    }
    CUdeviceptr a, b, c;
    CHECK(cuMemAlloc(&a, sizeof ha));
    CHECK(cuMemAlloc(&b, sizeof hb));
    CHECK(cuMemAlloc(&c, sizeof hc));
    CHECK(cuMemcpyHtoD(a, ha, sizeof ha));
    CHECK(cuMemcpyHtoD(b, hb, sizeof hb));
    void *params[] = {&a, &b, &c, (void *)&n};
    CHECK(cuLaunchKernel(f, 4, 1, 1, 256, 1, 1, 0, NULL, params, NULL));
    CHECK(cuMemcpyDtoH(hc, c, sizeof hc));
    for (int i = 0; i < n; i++) {
        EXPECT(hc[i] == 3.0f * (float)i, "%s: c[%d] = %f", what, i, hc[i]);
    }
    CHECK(cuMemFree(a));
    CHECK(cuMemFree(b));
    CHECK(cuMemFree(c));
}

struct struct_params {
    float scale;
    int offset;
    float bias[4];
};

static void run_struct_param(CUfunction f, const char *what)
{
    const int n = 300;
    float hin[300], hout[300];
    for (int i = 0; i < n; i++) {
        hin[i] = 0.25f * (float)i;
    }
    struct struct_params p = {3.0f, -7, {0.5f, 1.5f, 2.5f, 3.5f}};
    CUdeviceptr in, out;
    CHECK(cuMemAlloc(&in, sizeof hin));
    CHECK(cuMemAlloc(&out, sizeof hout));
    CHECK(cuMemcpyHtoD(in, hin, sizeof hin));
    void *params[] = {&p, &in, &out, (void *)&n};
    CHECK(cuLaunchKernel(f, 3, 1, 1, 128, 1, 1, 0, NULL, params, NULL));
    CHECK(cuMemcpyDtoH(hout, out, sizeof hout));
    for (int i = 0; i < n; i++) {
        float want = hin[i] * p.scale + p.bias[i % 4] + (float)p.offset;
        EXPECT(approx_eq(hout[i], want, 1e-6, 1e-6), "%s: out[%d] = %f, want %f", what, i, hout[i], want);
    }
    CHECK(cuMemFree(in));
    CHECK(cuMemFree(out));
}

/* Not PTX: an opcode that does not exist in any PTX ISA version. */
static const char INVALID_PTX[] =
    ".version 8.8\n"
    ".target sm_90\n"
    ".address_size 64\n"
    "\n"
    ".visible .entry broken(\n"
    "\t.param .u64 broken_param_0\n"
    ")\n"
    "{\n"
    "\t.reg .b32 %r<2>;\n"
    "\tthis_is_not_an_instruction.u32 %r1, 5;\n"
    "\tret;\n"
    "}\n";

/* Not PTX: a syntax error (missing operand) and an unterminated body. */
static const char SYNTAX_ERROR_PTX[] =
    ".version 8.8\n"
    ".target sm_90\n"
    ".address_size 64\n"
    "\n"
    ".visible .entry broken2()\n"
    "{\n"
    "\t.reg .b32 %r<2>;\n"
    "\tmov.u32 %r1, ;\n";

static void param_info(void)
{
    CUmodule m = load_module("struct_param");
    CUfunction f = get_function(m, "struct_param");
    const size_t want_off[4] = {0, 24, 32, 40};
    const size_t want_size[4] = {24, 8, 8, 4};
    for (size_t i = 0; i < 4; i++) {
        size_t off = 99, sz = 99;
        CHECK(cuFuncGetParamInfo(f, i, &off, &sz));
        EXPECT(off == want_off[i] && sz == want_size[i], "struct_param param %zu: offset %zu size %zu, want %zu %zu",
               i, off, sz, want_off[i], want_size[i]);
    }
    size_t off = 0, sz = 0;
    EXPECT_ERR(cuFuncGetParamInfo(f, 4, &off, &sz), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuFuncGetParamInfo(f, 1000, &off, &sz), CUDA_ERROR_INVALID_VALUE);
    run_struct_param(f, "struct_param (module)");

    CUmodule me = load_module("empty_kernel");
    CUfunction fe = get_function(me, "empty_kernel");
    EXPECT_ERR(cuFuncGetParamInfo(fe, 0, &off, &sz), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuModuleUnload(me));
    CHECK(cuModuleUnload(m));
    OK("cuFuncGetParamInfo");
}

static void func_attributes(void)
{
    CUmodule mv = load_module("vector_add");
    CUmodule ms = load_module("sgemm_tiled");
    CUfunction fv = get_function(mv, "vector_add");
    CUfunction fs = get_function(ms, "sgemm_tiled");
    int v = -1;
    CHECK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, fv));
    EXPECT(v == 1024, "vector_add MAX_THREADS_PER_BLOCK = %d", v);
    CHECK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, fs));
    EXPECT(v >= 256 && v <= 1024, "sgemm MAX_THREADS_PER_BLOCK = %d", v);
    CHECK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, fv));
    EXPECT(v >= 0, "NUM_REGS = %d", v);
    CHECK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, fs));
    EXPECT(v == 2 * 16 * 16 * 4, "sgemm SHARED_SIZE_BYTES = %d, want 2048", v);
    CHECK(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, fv));
    EXPECT(v == 0, "vector_add SHARED_SIZE_BYTES = %d", v);
    EXPECT_ERR(cuFuncGetAttribute(&v, (CUfunction_attribute)9999, fv), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuModuleUnload(mv));
    CHECK(cuModuleUnload(ms));
    OK("cuFuncGetAttribute");
}

static void globals(void)
{
    CUmodule m = load_module("device_global");
    CUdeviceptr table = 0, counter = 0;
    size_t tbytes = 0, cbytes = 0;
    CHECK(cuModuleGetGlobal(&table, &tbytes, m, "dev_table"));
    CHECK(cuModuleGetGlobal(&counter, &cbytes, m, "dev_counter"));
    EXPECT(table != 0 && tbytes == 64, "dev_table at %#llx, %zu bytes", (unsigned long long)table, tbytes);
    EXPECT(counter != 0 && cbytes == 4, "dev_counter at %#llx, %zu bytes", (unsigned long long)counter, cbytes);
    CUdeviceptr again = 0;
    CHECK(cuModuleGetGlobal(&again, NULL, m, "dev_table"));
    EXPECT(again == table, "address not stable");
    CHECK(cuModuleGetGlobal(NULL, &tbytes, m, "dev_table"));
    EXPECT_ERR(cuModuleGetGlobal(&again, &tbytes, m, "no_such_global"), CUDA_ERROR_NOT_FOUND);

    int cval = 0;
    CHECK(cuMemcpyDtoH(&cval, counter, 4));
    EXPECT(cval == 7, "dev_counter initialiser: %d, want 7", cval);
    float zero[16];
    CHECK(cuMemcpyDtoH(zero, table, sizeof zero));
    for (int i = 0; i < 16; i++) {
        EXPECT(zero[i] == 0.0f, "dev_table[%d] = %f, want 0 (zero-initialised)", i, zero[i]);
    }

    float ht[16];
    for (int i = 0; i < 16; i++) {
        ht[i] = 1.5f * (float)i;
    }
    CHECK(cuMemcpyHtoD(table, ht, sizeof ht));
    CUfunction read_table = get_function(m, "read_table");
    CUfunction bump = get_function(m, "bump_counter");
    CUdeviceptr out;
    CHECK(cuMemAlloc(&out, sizeof ht));
    int n = 16;
    void *p1[] = {&out, &n};
    CHECK(cuLaunchKernel(read_table, 1, 1, 1, 32, 1, 1, 0, NULL, p1, NULL));
    float hout[16];
    CHECK(cuMemcpyDtoH(hout, out, sizeof hout));
    for (int i = 0; i < 16; i++) {
        EXPECT(hout[i] == ht[i] + 7.0f, "read_table[%d] = %f, want %f", i, hout[i], ht[i] + 7.0f);
    }
    int delta = 5;
    void *p2[] = {&delta};
    CHECK(cuLaunchKernel(bump, 1, 1, 1, 1, 1, 1, 0, NULL, p2, NULL));
    CHECK(cuMemcpyDtoH(&cval, counter, 4));
    EXPECT(cval == 12, "dev_counter after bump_counter(5) = %d", cval);
    CHECK(cuMemFree(out));

    /* A second load of the same image has its own globals. */
    CUmodule m2 = load_module("device_global");
    CUdeviceptr counter2 = 0;
    CHECK(cuModuleGetGlobal(&counter2, NULL, m2, "dev_counter"));
    EXPECT(counter2 != counter, "two modules share a global");
    CHECK(cuMemcpyDtoH(&cval, counter2, 4));
    EXPECT(cval == 7, "second module's dev_counter = %d", cval);
    CHECK(cuModuleUnload(m2));
    CHECK(cuModuleUnload(m));
    OK("cuModuleGetGlobal: sizes, initialisers, memcpy + kernel round trip");
}

static void loading(void)
{
    /* cuModuleLoad from a file path. */
    CUmodule m = NULL;
    CHECK(cuModuleLoad(&m, kernel_path("vector_add")));
    CUfunction f = get_function(m, "vector_add");
    run_vector_add(f, "cuModuleLoad");
    CUfunction missing = NULL;
    EXPECT_ERR(cuModuleGetFunction(&missing, m, "no_such_kernel"), CUDA_ERROR_NOT_FOUND);
    EXPECT_ERR(cuModuleGetFunction(&missing, m, "vector_ad"), CUDA_ERROR_NOT_FOUND);
    CHECK(cuModuleUnload(m));
    EXPECT_ERR(cuModuleLoad(&m, "/nonexistent/dir/kernel.ptx"), CUDA_ERROR_FILE_NOT_FOUND);
    OK("cuModuleLoad(path); missing function -> CUDA_ERROR_NOT_FOUND");

    /* cuModuleLoadData. */
    char *ptx = kernel_ptx("vector_add");
    CHECK(cuModuleLoadData(&m, ptx));
    run_vector_add(get_function(m, "vector_add"), "cuModuleLoadData");
    CHECK(cuModuleUnload(m));
    OK("cuModuleLoadData(PTX text)");

    /* cuModuleLoadDataEx with JIT log options. */
    char info[4096] = {0}, err[4096] = {0};
    CUjit_option opts[5] = {CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES, CU_JIT_ERROR_LOG_BUFFER,
                            CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES, CU_JIT_LOG_VERBOSE};
    void *vals[5] = {info, (void *)(uintptr_t)sizeof info, err, (void *)(uintptr_t)sizeof err, (void *)(uintptr_t)1};
    CHECK(cuModuleLoadDataEx(&m, ptx, 5, opts, vals));
    run_vector_add(get_function(m, "vector_add"), "cuModuleLoadDataEx");
    CHECK(cuModuleUnload(m));
    CHECK(cuModuleLoadDataEx(&m, ptx, 0, NULL, NULL));
    CHECK(cuModuleUnload(m));
    OK("cuModuleLoadDataEx with and without options");

    /* Invalid PTX. */
    EXPECT_ERR(cuModuleLoadData(&m, SYNTAX_ERROR_PTX), CUDA_ERROR_INVALID_PTX);
    EXPECT_ERR(cuModuleLoadData(&m, INVALID_PTX), CUDA_ERROR_INVALID_PTX);
    memset(err, 0, sizeof err);
    void *vals2[5] = {info, (void *)(uintptr_t)sizeof info, err, (void *)(uintptr_t)sizeof err, (void *)(uintptr_t)0};
    EXPECT_ERR(cuModuleLoadDataEx(&m, INVALID_PTX, 5, opts, vals2), CUDA_ERROR_INVALID_PTX);
    EXPECT(strlen(err) > 0, "the JIT error log is empty for invalid PTX");
    printf("   (error log: %.200s)\n", err);
    static const unsigned char garbage[] = {0x01, 0x02, 0x03, 0xff, 0xfe, 0x80, 0x7f, 0x10, 0x00};
    EXPECT_ERR2(cuModuleLoadData(&m, garbage), CUDA_ERROR_INVALID_IMAGE, CUDA_ERROR_INVALID_PTX);
    /* The context survives load failures. */
    CHECK(cuCtxSynchronize());
    OK("invalid PTX -> CUDA_ERROR_INVALID_PTX with a log; garbage -> INVALID_IMAGE/INVALID_PTX");

    /* Fatbin carrying PTX. */
    size_t fsize = 0;
    void *fat = build_fatbin(ptx, 1, &fsize);
    CHECK(cuModuleLoadData(&m, fat));
    run_vector_add(get_function(m, "vector_add"), "fatbin via cuModuleLoadData");
    CHECK(cuModuleUnload(m));
    CHECK(cuModuleLoadFatBinary(&m, fat));
    run_vector_add(get_function(m, "vector_add"), "fatbin via cuModuleLoadFatBinary");
    CHECK(cuModuleUnload(m));
    struct fatbin_wrapper w = {0x466243B1, 1, fat, NULL};
    CHECK(cuModuleLoadData(&m, &w));
    run_vector_add(get_function(m, "vector_add"), "fatbin wrapper via cuModuleLoadData");
    CHECK(cuModuleUnload(m));
    free(fat);
    /* A fatbin whose only entry is of an unknown kind holds nothing loadable. */
    fat = build_fatbin(ptx, 0x77, &fsize);
    EXPECT_ERR2(cuModuleLoadData(&m, fat), CUDA_ERROR_NO_BINARY_FOR_GPU, CUDA_ERROR_INVALID_IMAGE);
    free(fat);
    CHECK(cuCtxSynchronize());
    OK("fatbin (raw, cuModuleLoadFatBinary, wrapper); fatbin without usable entry rejected");
    free(ptx);
}

static void libraries(void)
{
    char *ptx = kernel_ptx("struct_param");
    CUlibrary lib = NULL;
    CHECK(cuLibraryLoadData(&lib, ptx, NULL, NULL, 0, NULL, NULL, 0));
    CUkernel k = NULL;
    CHECK(cuLibraryGetKernel(&k, lib, "struct_param"));
    CUkernel missing = NULL;
    EXPECT_ERR(cuLibraryGetKernel(&missing, lib, "nope"), CUDA_ERROR_NOT_FOUND);
    const size_t want_off[4] = {0, 24, 32, 40};
    const size_t want_size[4] = {24, 8, 8, 4};
    for (size_t i = 0; i < 4; i++) {
        size_t off = 99, sz = 99;
        CHECK(cuKernelGetParamInfo(k, i, &off, &sz));
        EXPECT(off == want_off[i] && sz == want_size[i], "cuKernelGetParamInfo %zu: %zu %zu", i, off, sz);
    }
    size_t off = 0, sz = 0;
    EXPECT_ERR(cuKernelGetParamInfo(k, 4, &off, &sz), CUDA_ERROR_INVALID_VALUE);
    CUfunction f = NULL;
    CHECK(cuKernelGetFunction(&f, k));
    EXPECT(f != NULL, "cuKernelGetFunction gave NULL");
    run_struct_param(f, "struct_param (library, cuKernelGetFunction)");
    run_struct_param((CUfunction)k, "struct_param (CUkernel cast to CUfunction)");
    CHECK(cuLibraryUnload(lib));
    free(ptx);
    OK("cuLibraryLoadData / GetKernel / KernelGetFunction / KernelGetParamInfo / Unload");
}

int main(void)
{
    watchdog(120);
    CUdevice dev;
    init_primary(&dev);
    loading();
    globals();
    param_info();
    func_attributes();
    libraries();
    CHECK(cuCtxSynchronize());
    CHECK(cuDevicePrimaryCtxRelease(dev));
    return 0;
}
