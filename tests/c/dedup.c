/*
 * A tenant holding "model weights", for the deduplication tests (tests/tests/dedup.rs).
 *
 * Usage: dedup BYTES SEED UPLOAD [ALLOC]
 *   Allocates BYTES (or ALLOC >= BYTES) of device memory, fills BYTES of it with the pattern of
 *   SEED and uploads them: UPLOAD is
 *   "whole" (one cuMemcpyHtoD), "pieces" (64 KiB cuMemcpyHtoD calls, last piece first) or
 *   "async" (cuMemcpyHtoDAsync on a stream, then cuStreamSynchronize). Prints
 *   "loaded MS" (the upload's milliseconds), then obeys stdin lines:
 *     check              reads the weights back: "check ok" or "check FAILED at OFFSET"
 *     read               a kernel reads the weights (c = a + b, a and b inside the weights,
 *                        c elsewhere): "read ok"
 *     memset | htod | dtod | kernel | struct
 *                        writes into the weights at 3 MiB (or at BYTES/2 if smaller) — a memset, an
 *                        upload, a device-to-device copy, a kernel whose output is the weights, or a
 *                        kernel storing through a pointer inside a structure parameter —
 *                        then checks everything: "write ok" / "write FAILED at OFFSET"
 *     meminfo            the device's used memory as cuMemGetInfo reports it: "meminfo BYTES"
 *     bench              200 kernels reading the weights: "bench MS" (their total time)
 *     hidden             a kernel stores through a pointer it loads from device memory, into the
 *                        weights: prints "hidden RESULT" with the synchronisation's CUresult
 *     tail               the same store just past the allocation (its granule's tail, which no
 *                        upload writes): "tail RESULT"
 *     smalls N           N more small allocations (4 KiB + i bytes each), each uploaded with its
 *                        own pattern, then all of them read back: "smalls ok" / "smalls FAILED"
 *     freesmalls         frees them: "freesmalls done"
 *     quit               frees everything and exits 0.
 */
#include "common.h"

#define N 1024
#define PIECE (64u << 10)

static size_t bytes;
static unsigned seed;
static unsigned char *host; /* what the device should hold */
static CUdeviceptr weights;

static unsigned char pattern(size_t i)
{
    /* A mix of the offset and the seed: no two granules alike. */
    uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ull ^ (uint64_t)seed * 0xC2B2AE3D27D4EB4Full;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return (unsigned char)(x >> 24);
}

static void upload(const char *how)
{
    if (strcmp(how, "whole") == 0) {
        CHECK(cuMemcpyHtoD(weights, host, bytes));
    } else if (strcmp(how, "pieces") == 0) {
        for (size_t left = bytes; left > 0;) {
            size_t n = left % PIECE ? left % PIECE : PIECE;
            left -= n;
            CHECK(cuMemcpyHtoD(weights + left, host + left, n));
        }
    } else {
        CUstream s;
        CHECK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
        CHECK(cuMemcpyHtoDAsync(weights, host, bytes, s));
        CHECK(cuStreamSynchronize(s));
        CHECK(cuStreamDestroy(s));
    }
}

/* Reads the weights back and compares them with `host`. */
static void check(const char *what)
{
    unsigned char *back = malloc(bytes);
    CHECK(cuMemcpyDtoH(back, weights, bytes));
    for (size_t i = 0; i < bytes; i++) {
        if (back[i] != host[i]) {
            printf("%s FAILED at %zu\n", what, i);
            free(back);
            return;
        }
    }
    printf("%s ok\n", what);
    free(back);
}

/* c = a + b on N floats. */
static CUresult vector_add(CUdeviceptr a, CUdeviceptr b, CUdeviceptr c)
{
    static CUfunction f;
    if (f == NULL) {
        f = get_function(load_module("vector_add"), "vector_add");
    }
    int n = N;
    void *params[] = {&a, &b, &c, &n};
    CUresult r = cuLaunchKernel(f, N / 256, 1, 1, 256, 1, 1, 0, NULL, params, NULL);
    return r == CUDA_SUCCESS ? cuCtxSynchronize() : r;
}

static void read_kernel(void)
{
    CUdeviceptr out;
    CHECK(cuMemAlloc(&out, N * 4));
    CHECK(vector_add(weights, weights + N * 4, out));
    float a[N], b[N], c[N];
    memcpy(a, host, sizeof a);
    memcpy(b, host + N * 4, sizeof b);
    CHECK(cuMemcpyDtoH(c, out, sizeof c));
    for (int i = 0; i < N; i++) {
        float want = a[i] + b[i];
        if (memcmp(&c[i], &want, 4) != 0 && !(c[i] != c[i] && want != want)) {
            printf("read FAILED at %d\n", i);
            CHECK(cuMemFree(out));
            return;
        }
    }
    printf("read ok\n");
    CHECK(cuMemFree(out));
}

/* 200 kernels reading the weights, waited for together: "bench MS". */
static void bench(void)
{
    CUdeviceptr out;
    CHECK(cuMemAlloc(&out, N * 4));
    CHECK(vector_add(weights, weights + N * 4, out));
    double t0 = now_ms();
    static CUfunction f;
    if (f == NULL) {
        f = get_function(load_module("vector_add"), "vector_add");
    }
    CUdeviceptr a = weights, b = weights + N * 4;
    int n = N;
    void *params[] = {&a, &b, &out, &n};
    for (int i = 0; i < 200; i++) {
        CHECK(cuLaunchKernel(f, N / 256, 1, 1, 256, 1, 1, 0, NULL, params, NULL));
    }
    CHECK(cuCtxSynchronize());
    printf("bench %.3f\n", now_ms() - t0);
    CHECK(cuMemFree(out));
}

/* st.global through the pointer in a structure parameter. */
static const char *STRUCT_PTX =
    ".version 7.0\n.target sm_70\n.address_size 64\n"
    ".visible .entry struct_store(.param .align 8 .b8 s[16])\n{\n"
    "  .reg .b64 %rd<2>;\n  .reg .b32 %r<2>;\n"
    "  ld.param.u64 %rd1, [s];\n  cvta.to.global.u64 %rd1, %rd1;\n"
    "  ld.param.u32 %r1, [s+8];\n  st.global.u32 [%rd1], %r1;\n  ret;\n}\n";

static void write_into(const char *how)
{
    size_t at = bytes > (6u << 20) ? (3u << 20) : bytes / 2;
    size_t len = 8192;
    unsigned char src[8192];
    for (size_t i = 0; i < len; i++) {
        src[i] = (unsigned char)(0xA5 ^ i);
    }
    if (strcmp(how, "memset") == 0) {
        CHECK(cuMemsetD8(weights + at, 0x7f, len));
        memset(host + at, 0x7f, len);
    } else if (strcmp(how, "htod") == 0) {
        CHECK(cuMemcpyHtoD(weights + at, src, len));
        memcpy(host + at, src, len);
    } else if (strcmp(how, "dtod") == 0) {
        CUdeviceptr tmp;
        CHECK(cuMemAlloc(&tmp, len));
        CHECK(cuMemcpyHtoD(tmp, src, len));
        CHECK(cuMemcpyDtoD(weights + at, tmp, len));
        CHECK(cuCtxSynchronize());
        CHECK(cuMemFree(tmp));
        memcpy(host + at, src, len);
    } else if (strcmp(how, "struct") == 0) {
        /* A kernel storing through a pointer passed inside a structure parameter. */
        struct {
            CUdeviceptr ptr;
            uint32_t value;
            uint32_t pad;
        } arg = {weights + at, 0x01020304u, 0};
        CUmodule m;
        CUfunction f;
        CHECK(cuModuleLoadData(&m, STRUCT_PTX));
        CHECK(cuModuleGetFunction(&f, m, "struct_store"));
        void *params[] = {&arg};
        CHECK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL));
        CHECK(cuCtxSynchronize());
        CHECK(cuModuleUnload(m));
        memcpy(host + at, &arg.value, 4);
    } else {
        /* c = a + b with c inside the weights. */
        CUdeviceptr a = weights, b = weights + N * 4, c = weights + at;
        CHECK(vector_add(a, b, c));
        float fa[N], fb[N], fc[N];
        memcpy(fa, host, sizeof fa);
        memcpy(fb, host + N * 4, sizeof fb);
        for (int i = 0; i < N; i++) {
            fc[i] = fa[i] + fb[i];
        }
        memcpy(host + at, fc, sizeof fc);
    }
    check("write");
}

/* st.global through a pointer loaded from device memory: invisible to the broker. */
static const char *HIDDEN_PTX =
    ".version 7.0\n.target sm_70\n.address_size 64\n"
    ".visible .entry hidden_store(.param .u64 pp)\n{\n"
    "  .reg .b64 %rd<3>;\n  .reg .b32 %r<2>;\n"
    "  ld.param.u64 %rd1, [pp];\n  cvta.to.global.u64 %rd1, %rd1;\n"
    "  ld.global.u64 %rd2, [%rd1];\n  mov.u32 %r1, 1234;\n"
    "  st.global.u32 [%rd2], %r1;\n  ret;\n}\n";

/* The hidden store into weights + OFFSET: "WHAT RESULT". */
static void hidden_at(const char *what, size_t offset)
{
    CUmodule m;
    CUfunction f;
    CHECK(cuModuleLoadData(&m, HIDDEN_PTX));
    CHECK(cuModuleGetFunction(&f, m, "hidden_store"));
    CUdeviceptr slot;
    CHECK(cuMemAlloc(&slot, 8));
    CUdeviceptr target = weights + offset;
    CHECK(cuMemcpyHtoD(slot, &target, 8));
    void *params[] = {&slot};
    CUresult r = cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL);
    if (r == CUDA_SUCCESS) {
        r = cuCtxSynchronize();
    }
    printf("%s %s\n", what, cu_name(r));
}

#define MAX_SMALLS 4096
static CUdeviceptr smalls[MAX_SMALLS];
static size_t nsmall;

static size_t small_size(size_t i) { return 4096 + i; }

static unsigned char small_byte(size_t i, size_t j) { return (unsigned char)(i * 31 + j * 7 + 1); }

/* `n` more small allocations, each uploaded with its own pattern; then every one read back. */
static void small_allocs(size_t n)
{
    unsigned char buf[4096 + MAX_SMALLS];
    for (size_t k = 0; k < n && nsmall < MAX_SMALLS; k++, nsmall++) {
        size_t i = nsmall;
        CHECK(cuMemAlloc(&smalls[i], small_size(i)));
        for (size_t j = 0; j < small_size(i); j++) {
            buf[j] = small_byte(i, j);
        }
        CHECK(cuMemcpyHtoD(smalls[i], buf, small_size(i)));
    }
    for (size_t i = 0; i < nsmall; i++) {
        CHECK(cuMemcpyDtoH(buf, smalls[i], small_size(i)));
        for (size_t j = 0; j < small_size(i); j++) {
            if (buf[j] != small_byte(i, j)) {
                printf("smalls FAILED at %zu/%zu\n", i, j);
                return;
            }
        }
    }
    printf("smalls ok\n");
}

static void free_smalls(void)
{
    for (size_t i = 0; i < nsmall; i++) {
        CHECK(cuMemFree(smalls[i]));
    }
    nsmall = 0;
    printf("freesmalls done\n");
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: dedup BYTES SEED whole|pieces|async [ALLOC]\n");
        return 2;
    }
    bytes = strtoull(argv[1], NULL, 0);
    size_t alloc = argc == 5 ? strtoull(argv[4], NULL, 0) : bytes;
    if (alloc < bytes) {
        fprintf(stderr, "dedup: ALLOC must be at least BYTES\n");
        return 2;
    }
    seed = (unsigned)strtoul(argv[2], NULL, 0);
    init_primary(NULL);
    host = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) {
        host[i] = pattern(i);
    }
    CHECK(cuMemAlloc(&weights, alloc));
    double t0 = now_ms();
    upload(argv[3]);
    printf("loaded %.3f\n", now_ms() - t0);
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\n")] = 0;
        if (strcmp(line, "check") == 0) {
            check("check");
        } else if (strcmp(line, "read") == 0) {
            read_kernel();
        } else if (strcmp(line, "meminfo") == 0) {
            size_t free_b, total_b;
            CHECK(cuMemGetInfo(&free_b, &total_b));
            printf("meminfo %zu\n", total_b - free_b);
        } else if (strcmp(line, "bench") == 0) {
            bench();
        } else if (strcmp(line, "hidden") == 0) {
            hidden_at("hidden", 64);
        } else if (strncmp(line, "smalls ", 7) == 0) {
            small_allocs(strtoull(line + 7, NULL, 0));
        } else if (strcmp(line, "freesmalls") == 0) {
            free_smalls();
        } else if (strcmp(line, "tail") == 0) {
            hidden_at("tail", alloc);
        } else if (strcmp(line, "quit") == 0) {
            break;
        } else {
            write_into(line);
        }
        fflush(stdout);
    }
    CHECK(cuMemFree(weights));
    free(host);
    return 0;
}
