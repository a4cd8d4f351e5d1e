/*
 * Helpers the benchmark programs share: a monotonic clock in microseconds, a comparison for
 * qsort of doubles, a median, and `--name value` options.
 */
#ifndef GPUSHARE_TESTS_BENCH_UTIL_H
#define GPUSHARE_TESTS_BENCH_UTIL_H

#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of v[0..n) (n > 0), sorting v: the element at q × (n - 1), rounded. */
static inline double quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* The median of v[0..n) (n > 0), sorting v. */
static inline double median(double *v, size_t n)
{
    return quantile(v, n, 0.5);
}

/* The number after `name` among the arguments, else `dflt`. */
static inline double opt(int argc, char **argv, const char *name, double dflt)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return strtod(argv[i + 1], NULL);
        }
    }
    return dflt;
}

#endif
