/*
 * Family a: initialisation, driver version, error names/strings.
 *
 * Semantics assumed (CUDA Driver API reference, 12.9):
 *  - cuDriverGetVersion does not require cuInit; NULL -> CUDA_ERROR_INVALID_VALUE.
 *  - Before cuInit, API calls return CUDA_ERROR_NOT_INITIALIZED.
 *  - cuInit: "Flags parameter should be 0" -> any other value gives CUDA_ERROR_INVALID_VALUE.
 *    Calling cuInit(0) again is harmless.
 *  - cuGetErrorName/cuGetErrorString: "If the error code is not recognized,
 *    CUDA_ERROR_INVALID_VALUE will be returned and *pStr will be set to the NULL value."
 *    They do not require cuInit.
 *  - The strings are the driver's short messages ("invalid argument", "out of memory", ...: what
 *    e.g. CuPy and PyTorch print for driver errors), not the longer descriptions in cuda.h's
 *    comments.
 */
#include "common.h"

struct known_error {
    CUresult code;
    const char *name;
    const char *string; /* as NVIDIA's driver reports it; NULL = only "non-empty" is checked */
};

static const struct known_error KNOWN[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY", "device not ready"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", NULL},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", NULL},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", NULL},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", NULL},
    {CUDA_ERROR_INVALID_PTX, "CUDA_ERROR_INVALID_PTX", NULL},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", NULL},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", NULL},
    {CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN", NULL},
};

static void check_error_tables(void)
{
    for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++) {
        const char *name = NULL;
        const char *str = NULL;
        CHECK(cuGetErrorName(KNOWN[i].code, &name));
        EXPECT(name != NULL && strcmp(name, KNOWN[i].name) == 0, "code %d: name '%s', want '%s'",
               (int)KNOWN[i].code, name ? name : "(null)", KNOWN[i].name);
        CHECK(cuGetErrorString(KNOWN[i].code, &str));
        EXPECT(str != NULL && str[0] != '\0', "code %d: empty string", (int)KNOWN[i].code);
        if (KNOWN[i].string != NULL) {
            EXPECT(strcmp(str, KNOWN[i].string) == 0, "code %d: string '%s', want '%s'",
                   (int)KNOWN[i].code, str, KNOWN[i].string);
        }
    }
    /* Unknown codes. */
    const CUresult unknown[] = {(CUresult)12345, (CUresult)-1, (CUresult)998};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = "sentinel";
        EXPECT_ERR(cuGetErrorName(unknown[i], &s), CUDA_ERROR_INVALID_VALUE);
        EXPECT(s == NULL, "cuGetErrorName(%d) must set *pStr = NULL", (int)unknown[i]);
        s = "sentinel";
        EXPECT_ERR(cuGetErrorString(unknown[i], &s), CUDA_ERROR_INVALID_VALUE);
        EXPECT(s == NULL, "cuGetErrorString(%d) must set *pStr = NULL", (int)unknown[i]);
    }
    EXPECT_ERR(cuGetErrorName(CUDA_SUCCESS, NULL), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuGetErrorString(CUDA_SUCCESS, NULL), CUDA_ERROR_INVALID_VALUE);
}

int main(void)
{
    watchdog(60);

    /* cuDriverGetVersion works before cuInit. */
    int version = 0;
    CHECK(cuDriverGetVersion(&version));
    EXPECT(version >= 12090, "driver version %d (a 12.9 driver reports 12090)", version);
    EXPECT_ERR(cuDriverGetVersion(NULL), CUDA_ERROR_INVALID_VALUE);
    OK("cuDriverGetVersion = %d before cuInit", version);

    /* Error tables work before cuInit. */
    check_error_tables();
    OK("error names/strings before cuInit");

    /* Everything else needs cuInit. */
    int count = -1;
    CUdevice dev = -1;
    CUdeviceptr p = 0;
    CUcontext ctx = NULL;
    EXPECT_ERR(cuDeviceGetCount(&count), CUDA_ERROR_NOT_INITIALIZED);
    EXPECT_ERR(cuDeviceGet(&dev, 0), CUDA_ERROR_NOT_INITIALIZED);
    EXPECT_ERR(cuCtxGetCurrent(&ctx), CUDA_ERROR_NOT_INITIALIZED);
    EXPECT_ERR(cuMemAlloc(&p, 16), CUDA_ERROR_NOT_INITIALIZED);
    EXPECT_ERR(cuCtxSynchronize(), CUDA_ERROR_NOT_INITIALIZED);
    OK("calls before cuInit -> CUDA_ERROR_NOT_INITIALIZED");

    CHECK(cuInit(0));
    CHECK(cuInit(0)); /* idempotent */
    EXPECT_ERR(cuInit(1), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuInit(0x80000000u), CUDA_ERROR_INVALID_VALUE);
    OK("cuInit(0) twice ok, non-zero flags -> CUDA_ERROR_INVALID_VALUE");

    CHECK(cuDeviceGetCount(&count));
    EXPECT(count == 1, "device count %d", count);
    EXPECT_ERR(cuDeviceGetCount(NULL), CUDA_ERROR_INVALID_VALUE);
    CHECK(cuDeviceGet(&dev, 0));
    EXPECT(dev == 0, "device handle %d", (int)dev);

    /* No context is current yet: cuCtxGetCurrent succeeds with NULL. */
    ctx = (CUcontext)0x1;
    CHECK(cuCtxGetCurrent(&ctx));
    EXPECT(ctx == NULL, "current context after cuInit should be NULL, got %p", (void *)ctx);
    EXPECT_ERR(cuMemAlloc(&p, 16), CUDA_ERROR_INVALID_CONTEXT);
    OK("after cuInit: 1 device, no current context, cuMemAlloc -> CUDA_ERROR_INVALID_CONTEXT");

    int version2 = 0;
    CHECK(cuDriverGetVersion(&version2));
    EXPECT(version2 == version, "version changed after cuInit: %d vs %d", version2, version);

    check_error_tables();
    OK("error names/strings after cuInit");
    return 0;
}
