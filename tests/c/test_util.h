/*
 * Helpers shared by every C test program, whatever CUDA API it drives (common.h for the driver
 * API, cudart_common.h for the runtime API): failure reporting, progress lines, a watchdog,
 * clocks, and reading the kernel corpus (GPUSHARE_KERNELS_DIR, set by the harness).
 */
#ifndef GPUSHARE_TESTS_TEST_UTIL_H
#define GPUSHARE_TESTS_TEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FAIL_AT(...)                                                              \
    do {                                                                          \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                      \
        fprintf(stderr, __VA_ARGS__);                                             \
        fprintf(stderr, "\n");                                                    \
        fflush(stdout);                                                           \
        fflush(stderr);                                                           \
        exit(1);                                                                  \
    } while (0)

/* A plain condition, with a printf-style explanation. */
#define EXPECT(cond, ...)                                                         \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "FAIL %s:%d: expected %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, "\n");                                                \
            fflush(stdout);                                                       \
            fflush(stderr);                                                       \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

#define OK(...)                                                                   \
    do {                                                                          \
        printf("ok: ");                                                           \
        printf(__VA_ARGS__);                                                      \
        printf("\n");                                                             \
        fflush(stdout);                                                           \
    } while (0)

/* Fails the program after `seconds` (a hang must fail, not block). */
static inline void watchdog(unsigned seconds)
{
    alarm(seconds);
}

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static inline int env_is(const char *name, const char *value)
{
    const char *v = getenv(name);
    return v != NULL && strcmp(v, value) == 0;
}

/* Reads a whole file and NUL-terminates it (PTX text must be NUL-terminated for
 * cuModuleLoadData). *len (optional) gets the size without the NUL. */
static inline char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        FAIL_AT("cannot open %s: %s", path, strerror(errno));
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = (char *)malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        FAIL_AT("cannot read %s", path);
    }
    buf[n] = '\0';
    fclose(f);
    if (len != NULL) {
        *len = (size_t)n;
    }
    return buf;
}

static inline const char *kernels_dir(void)
{
    const char *d = getenv("GPUSHARE_KERNELS_DIR");
    if (d == NULL || d[0] == '\0') {
        FAIL_AT("GPUSHARE_KERNELS_DIR is not set (the harness sets it to examples/kernels)");
    }
    return d;
}

/* Path of examples/kernels/<name>.ptx in a static buffer. */
static inline const char *kernel_path(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s.ptx", kernels_dir(), name);
    return path;
}

#endif
