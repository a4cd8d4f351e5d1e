/*
 * Family b: device enumeration, name, memory, attributes, UUID, PCI bus id.
 *
 * Usage: device <h200|small|badprofile>   (the harness sets GPUSHARE_CPU_PROFILE to match)
 *
 * Semantics assumed (CUDA Driver API reference, 12.9):
 *  - cuDeviceGet with an ordinal outside [0, count) -> CUDA_ERROR_INVALID_DEVICE; the same for
 *    other cuDevice* calls given an invalid CUdevice.
 *  - cuDeviceGetAttribute with an attribute that is not a CUdevice_attribute -> CUDA_ERROR_INVALID_VALUE.
 *  - cuDeviceGetPCIBusId writes "domain:bus:device.function" as "%04x:%02x:%02x.%x"
 *    (len >= 13 bytes); cuDeviceGetByPCIBusId accepts that string and returns the device.
 *    The pieces match CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID / PCI_BUS_ID / PCI_DEVICE_ID.
 *  - cuDeviceGetUuid/_v2 return a 16-byte UUID, constant for the device.
 * Model values (the gpushare CPU device contract):
 *  - default profile (h200) models an NVIDIA H200: name contains "H200", 132 SMs, compute
 *    capability 9.0, > 100 GiB memory. Per-block/SM limits are those of compute capability 9.0.
 *  - small profile: name contains "small", 4 SMs, exactly 1 GiB, compute capability 9.0.
 *  - an unknown profile name makes cuInit fail (CUDA_ERROR_INVALID_VALUE; NO_DEVICE accepted).
 */
#include "common.h"

#include <ctype.h>

static int attr(CUdevice_attribute a, CUdevice dev)
{
    int v = -12345;
    CHECK(cuDeviceGetAttribute(&v, a, dev));
    return v;
}

#define EXPECT_ATTR(a, want)                                                   \
    do {                                                                       \
        int got_ = attr(a, dev);                                               \
        EXPECT(got_ == (want), "%s = %d, want %d", #a, got_, (int)(want));     \
    } while (0)

#define EXPECT_ATTR_GE(a, want)                                                \
    do {                                                                       \
        int got_ = attr(a, dev);                                               \
        EXPECT(got_ >= (want), "%s = %d, want >= %d", #a, got_, (int)(want));  \
    } while (0)

static int is_hex(char c)
{
    return isxdigit((unsigned char)c) != 0;
}

int main(int argc, char **argv)
{
    watchdog(60);
    if (argc != 2) {
        FAIL_AT("usage: device <h200|small|badprofile>");
    }
    const char *mode = argv[1];

    if (strcmp(mode, "badprofile") == 0) {
        CUresult r = cuInit(0);
        EXPECT(r == CUDA_ERROR_INVALID_VALUE || r == CUDA_ERROR_NO_DEVICE,
               "cuInit with an unknown profile -> %s (%d)", cu_name(r), (int)r);
        int count = 0;
        CUresult r2 = cuDeviceGetCount(&count);
        EXPECT(r2 != CUDA_SUCCESS || count == 0, "after a failed cuInit: %s, count %d", cu_name(r2),
               count);
        OK("unknown profile: cuInit -> %s", cu_name(r));
        return 0;
    }
    int small = strcmp(mode, "small") == 0;
    if (!small && strcmp(mode, "h200") != 0) {
        FAIL_AT("unknown mode %s", mode);
    }

    CHECK(cuInit(0));
    int count = 0;
    CHECK(cuDeviceGetCount(&count));
    EXPECT(count == 1, "count = %d", count);

    CUdevice dev = -1;
    CHECK(cuDeviceGet(&dev, 0));
    CUdevice bad = 0;
    EXPECT_ERR(cuDeviceGet(&bad, 1), CUDA_ERROR_INVALID_DEVICE);
    EXPECT_ERR(cuDeviceGet(&bad, -1), CUDA_ERROR_INVALID_DEVICE);
    EXPECT_ERR(cuDeviceGet(NULL, 0), CUDA_ERROR_INVALID_VALUE);
    OK("1 device; ordinal 1 / -1 -> CUDA_ERROR_INVALID_DEVICE");

    /* Name */
    char name[256];
    memset(name, 'x', sizeof name);
    CHECK(cuDeviceGetName(name, (int)sizeof name, dev));
    EXPECT(memchr(name, '\0', sizeof name) != NULL, "name not NUL-terminated");
    EXPECT(strlen(name) > 0, "empty name");
    if (small) {
        EXPECT(strstr(name, "small") != NULL, "name '%s' should contain 'small'", name);
    } else {
        EXPECT(strstr(name, "H200") != NULL, "name '%s' should contain 'H200'", name);
    }
    EXPECT_ERR(cuDeviceGetName(name, (int)sizeof name, 1), CUDA_ERROR_INVALID_DEVICE);
    OK("name '%s'", name);

    /* Total memory */
    size_t total = 0;
    CHECK(cuDeviceTotalMem(&total, dev));
    if (small) {
        EXPECT(total == 1073741824ull, "small total memory %zu, want 1 GiB", total);
    } else {
        EXPECT(total > 100ull * 1024 * 1024 * 1024, "total memory %zu, want > 100 GiB", total);
    }
    EXPECT_ERR(cuDeviceTotalMem(&total, 7), CUDA_ERROR_INVALID_DEVICE);
    OK("cuDeviceTotalMem = %zu", total);

    /* Attributes */
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, small ? 4 : 132);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 9);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_WARP_SIZE, 32);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 1024);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X, 1024);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y, 1024);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z, 64);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X, 2147483647);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y, 65535);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z, 65535);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, 49152);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, 232448);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK, 65536);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, 2048);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY, 65536);
    EXPECT_ATTR_GE(CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT, 2);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING, 1);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY, 1);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS, 1);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_INTEGRATED, 0);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_COMPUTE_MODE, CU_COMPUTEMODE_DEFAULT);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 1);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED, 1);
    EXPECT_ATTR_GE(CU_DEVICE_ATTRIBUTE_CLOCK_RATE, 1);
    EXPECT_ATTR_GE(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, 1);
    OK("attributes");

    int v = 0;
    EXPECT_ERR(cuDeviceGetAttribute(&v, (CUdevice_attribute)100000, dev), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuDeviceGetAttribute(&v, (CUdevice_attribute)0, dev), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_WARP_SIZE, 1), CUDA_ERROR_INVALID_DEVICE);
    EXPECT_ERR(cuDeviceGetAttribute(NULL, CU_DEVICE_ATTRIBUTE_WARP_SIZE, dev), CUDA_ERROR_INVALID_VALUE);
    OK("invalid attribute -> CUDA_ERROR_INVALID_VALUE, invalid device -> CUDA_ERROR_INVALID_DEVICE");

    /* UUID */
    CUuuid u1, u2, u3;
    memset(&u1, 0, sizeof u1);
    memset(&u2, 0xff, sizeof u2);
    memset(&u3, 0x55, sizeof u3);
    CHECK(cuDeviceGetUuid(&u1, dev));
    CHECK(cuDeviceGetUuid(&u2, dev));
    CHECK(cuDeviceGetUuid_v2(&u3, dev));
    EXPECT(sizeof u1.bytes == 16, "uuid size");
    EXPECT(memcmp(&u1, &u2, 16) == 0, "UUID not stable across calls");
    EXPECT(memcmp(&u1, &u3, 16) == 0, "cuDeviceGetUuid and _v2 differ");
    int nonzero = 0;
    for (int i = 0; i < 16; i++) {
        nonzero |= u1.bytes[i] != 0;
    }
    EXPECT(nonzero, "UUID is all zero");
    EXPECT_ERR(cuDeviceGetUuid(&u1, 3), CUDA_ERROR_INVALID_DEVICE);
    OK("UUID %02x%02x%02x%02x-...", (unsigned char)u1.bytes[0], (unsigned char)u1.bytes[1],
       (unsigned char)u1.bytes[2], (unsigned char)u1.bytes[3]);

    /* PCI bus id */
    char bus[64];
    memset(bus, 0, sizeof bus);
    CHECK(cuDeviceGetPCIBusId(bus, (int)sizeof bus, dev));
    EXPECT(strlen(bus) == 12, "PCI bus id '%s' should look like 0000:xx:00.0", bus);
    EXPECT(is_hex(bus[0]) && is_hex(bus[1]) && is_hex(bus[2]) && is_hex(bus[3]) && bus[4] == ':' &&
               is_hex(bus[5]) && is_hex(bus[6]) && bus[7] == ':' && is_hex(bus[8]) &&
               is_hex(bus[9]) && bus[10] == '.' && is_hex(bus[11]),
           "PCI bus id '%s' should look like 0000:xx:00.0", bus);
    unsigned dom = 0, b = 0, d = 0, fn = 0;
    EXPECT(sscanf(bus, "%x:%x:%x.%x", &dom, &b, &d, &fn) == 4, "parse '%s'", bus);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, (int)dom);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, (int)b);
    EXPECT_ATTR(CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, (int)d);
    CUdevice back = -1;
    CHECK(cuDeviceGetByPCIBusId(&back, bus));
    EXPECT(back == dev, "cuDeviceGetByPCIBusId(%s) = %d", bus, (int)back);
    EXPECT_ERR2(cuDeviceGetByPCIBusId(&back, "not-a-bus-id"), CUDA_ERROR_INVALID_VALUE,
                CUDA_ERROR_INVALID_DEVICE);
    EXPECT_ERR2(cuDeviceGetByPCIBusId(&back, "0000:ff:1f.7"), CUDA_ERROR_INVALID_VALUE,
                CUDA_ERROR_INVALID_DEVICE);
    EXPECT_ERR(cuDeviceGetPCIBusId(bus, (int)sizeof bus, 2), CUDA_ERROR_INVALID_DEVICE);
    OK("PCI bus id %s round-trips", bus);

    return 0;
}
