/*
 * For tests/tests/security.rs: prints the first entry of LD_LIBRARY_PATH and whether a library
 * of the given name can be loaded from the search path (a planted library must never be):
 *   first_lib_dir DIR
 *   dlopen loaded|absent
 * Links -lcuda like every test program (the shim when run through `gpushare run`) but makes no
 * CUDA call.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: dlopen_probe LIBRARY\n");
        return 2;
    }
    const char *path = getenv("LD_LIBRARY_PATH");
    char first[4096] = "";
    if (path != NULL) {
        size_t n = strcspn(path, ":");
        if (n >= sizeof first) {
            n = sizeof first - 1;
        }
        memcpy(first, path, n);
        first[n] = '\0';
    }
    printf("first_lib_dir %s\n", first);
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    printf("dlopen %s\n", h != NULL ? "loaded" : "absent");
    return 0;
}
