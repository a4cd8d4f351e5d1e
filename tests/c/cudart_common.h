/*
 * Shared helpers for the CUDA runtime programs (tests/c/cudart_*.c).
 *
 * These programs include NVIDIA's cuda_runtime_api.h (nvidia-cuda-runtime-cu12 12.9 wheel, plus
 * the crt/ headers of the nvidia-cuda-nvcc-cu12 wheel) and link against NVIDIA's real
 * libcudart.so.12, unmodified; libcudart in turn loads the library under test as libcuda.so.1.
 * The harness also builds each against libcudart 13.0 and 13.5 (nvidia-cuda-runtime,
 * nvidia-cuda-crt and nvidia-cuda-nvcc 13.x wheels, libcudart.so.13); the few differences are
 * under #if CUDART_VERSION >= 13000.
 * They exit 0 only when every assertion holds; a failure prints "FAIL file:line: ..." on stderr
 * and exits 1; progress lines ("ok: ...") go to stdout.
 *
 * The harness (tests/src/lib.rs, compile_cudart_c_for) links with -lcudart from the wheel with an
 * rpath to it, and sets GPUSHARE_KERNELS_DIR (examples/kernels) and LD_LIBRARY_PATH (a directory
 * with libcuda.so.1 -> the library under test).
 */
#ifndef GPUSHARE_TESTS_CUDART_COMMON_H
#define GPUSHARE_TESTS_CUDART_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <cuda_runtime_api.h>

#include "test_util.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The call must return cudaSuccess. */
#define CHECK(call)                                                               \
    do {                                                                          \
        cudaError_t check_r_ = (call);                                            \
        if (check_r_ != cudaSuccess) {                                            \
            FAIL_AT("%s -> %s (%d): %s", #call, cudaGetErrorName(check_r_),       \
                    (int)check_r_, cudaGetErrorString(check_r_));                 \
        }                                                                         \
    } while (0)

/* The call must return exactly `expected`. */
#define EXPECT_ERR(call, expected)                                                \
    do {                                                                          \
        cudaError_t expect_r_ = (call);                                           \
        if (expect_r_ != (expected)) {                                            \
            FAIL_AT("%s -> %s (%d), expected %s (%d)", #call,                     \
                    cudaGetErrorName(expect_r_), (int)expect_r_, #expected,       \
                    (int)(expected));                                             \
        }                                                                         \
    } while (0)

/* PTX text of examples/kernels/<name>.ptx (malloc'd, NUL-terminated); *len (optional) gets the
 * size without the NUL. */
static inline char *kernel_ptx(const char *name, size_t *len)
{
    return read_file(kernel_path(name), len);
}

static inline float frand(uint32_t *state, float lo, float hi)
{
    *state = *state * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)(*state >> 8) / (float)(1u << 24);
}

/* A fatbin (16-byte container header + one 64-byte entry header + payload padded to 8 bytes)
 * holding `ptx` (NUL included) as an uncompressed sm_90 PTX entry; the layout nvcc emits into
 * .nv_fatbin. malloc'd, 8-byte aligned; *size_out gets the total size. */
static inline unsigned char *build_fatbin(const char *ptx, size_t *size_out)
{
    size_t payload = strlen(ptx) + 1;
    size_t padded = (payload + 7) & ~(size_t)7;
    size_t total = 16 + 64 + padded;
    unsigned char *fb = (unsigned char *)calloc(1, total);
    uint32_t magic = 0xBA55ED50u;
    uint16_t version = 1, header_size = 16;
    uint64_t body = 64 + padded;
    memcpy(fb + 0, &magic, 4);
    memcpy(fb + 4, &version, 2);
    memcpy(fb + 6, &header_size, 2);
    memcpy(fb + 8, &body, 8);
    unsigned char *e = fb + 16;
    uint16_t kind = 1 /* PTX */, entry_version = 0x0101;
    uint32_t entry_header = 64, compressed = (uint32_t)padded, arch = 90;
    uint16_t minor = 8, major = 8; /* PTX ISA 8.8 */
    uint64_t padded64 = padded, flags = 0x1 /* 64-bit */ | 0x10 /* Linux */, uncompressed = 0;
    memcpy(e + 0, &kind, 2);
    memcpy(e + 2, &entry_version, 2);
    memcpy(e + 4, &entry_header, 4);
    memcpy(e + 8, &padded64, 8);
    memcpy(e + 16, &compressed, 4);
    memcpy(e + 24, &minor, 2);
    memcpy(e + 26, &major, 2);
    memcpy(e + 28, &arch, 4);
    memcpy(e + 40, &flags, 8);
    memcpy(e + 56, &uncompressed, 8);
    memcpy(e + 64, ptx, payload);
    *size_out = total;
    return fb;
}

#endif
