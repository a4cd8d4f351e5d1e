/*
 * The occupancy calculator, checked for consistency with the attributes the device and the
 * kernel report.
 *
 * Semantics assumed (CUDA Driver API reference, 12.9, "Occupancy"):
 *  - cuOccupancyMaxActiveBlocksPerMultiprocessor: resident blocks per SM, at most
 *    MAX_THREADS_PER_MULTIPROCESSOR / blockSize (rounded to warps) and
 *    MAX_BLOCKS_PER_MULTIPROCESSOR; more dynamic shared memory never gives more blocks; dynamic
 *    shared memory a block cannot have (above the kernel's MAX_DYNAMIC_SHARED_SIZE_BYTES) gives 0.
 *    The ...WithFlags variant takes CU_OCCUPANCY_DEFAULT or CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE.
 *  - cuOccupancyMaxPotentialBlockSize: a block size no larger than the device's and the kernel's
 *    limit (and blockSizeLimit when non-zero) that reaches the best occupancy, and minGridSize =
 *    its resident blocks per SM x MULTIPROCESSOR_COUNT; blockSizeToDynamicSMemSize, when given,
 *    is called with candidate block sizes and its answer used as the dynamic shared memory.
 *  - cuOccupancyAvailableDynamicSMemPerBlock: the dynamic shared memory a block may use so that
 *    numBlocks blocks fit on one SM (for one block: the kernel's dynamic limit).
 *  - NULL out-pointers and non-positive block sizes -> CUDA_ERROR_INVALID_VALUE.
 */
#include "common.h"

static int device_attr(CUdevice dev, CUdevice_attribute a)
{
    int v = 0;
    CHECK(cuDeviceGetAttribute(&v, a, dev));
    return v;
}

static int func_attr(CUfunction f, CUfunction_attribute a)
{
    int v = 0;
    CHECK(cuFuncGetAttribute(&v, a, f));
    return v;
}

static int blocks_for(CUfunction f, int block, size_t dynamic)
{
    int n = -1;
    CHECK(cuOccupancyMaxActiveBlocksPerMultiprocessor(&n, f, block, dynamic));
    return n;
}

static int callback_calls;
static size_t smem_64_per_thread(int block_size)
{
    callback_calls++;
    return (size_t)block_size * 64;
}

static void test_active_blocks(CUdevice dev, CUfunction f)
{
    int per_sm = device_attr(dev, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR);
    int max_blocks = device_attr(dev, CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR);
    int regs = func_attr(f, CU_FUNC_ATTRIBUTE_NUM_REGS);
    int n1024 = blocks_for(f, 1024, 0), n256 = blocks_for(f, 256, 0), n32 = blocks_for(f, 32, 0);
    EXPECT(n1024 >= 0 && n1024 <= per_sm / 1024, "1024 threads: %d blocks", n1024);
    EXPECT(n256 <= per_sm / 256 && n32 <= max_blocks, "%d, %d blocks", n256, n32);
    if (regs * 1024 <= 65536 / 2) {
        /* Registers allow two such blocks: only the thread limit counts. */
        EXPECT(n1024 == per_sm / 1024, "1024 threads, %d registers: %d blocks", regs, n1024);
    }
    int flagged = -1;
    CHECK(cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
        &flagged, f, 256, 0, CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE));
    EXPECT(flagged == n256, "with flags %d, without %d", flagged, n256);
    EXPECT_ERR(cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(&flagged, f, 256, 0, 2),
               CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuOccupancyMaxActiveBlocksPerMultiprocessor(NULL, f, 256, 0),
               CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuOccupancyMaxActiveBlocksPerMultiprocessor(&flagged, f, 0, 0),
               CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR2(cuOccupancyMaxActiveBlocksPerMultiprocessor(&flagged, NULL, 256, 0),
                CUDA_ERROR_INVALID_HANDLE, CUDA_ERROR_INVALID_VALUE);
    /* More shared memory never gives more blocks; more than a block may have gives none. */
    int prev = n256;
    for (size_t smem = 1024; smem <= 48 * 1024; smem *= 2) {
        int n = blocks_for(f, 256, smem);
        EXPECT(n <= prev && n >= 1, "%zu bytes: %d blocks after %d", smem, n, prev);
        prev = n;
    }
    int max_dynamic = func_attr(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES);
    EXPECT(blocks_for(f, 256, (size_t)max_dynamic + 1) == 0, "above the dynamic limit");
    EXPECT(blocks_for(f, 2048, 0) == 0, "a block above 1024 threads cannot run");
    printf("max active blocks: 1024 threads %d, 256 threads %d, 32 threads %d "
           "(%d registers, %d threads/SM)\n",
           n1024, n256, n32, regs, per_sm);
    OK("cuOccupancyMaxActiveBlocksPerMultiprocessor consistent with the attributes");
}

static void test_potential_block_size(CUdevice dev, CUfunction f)
{
    int sms = device_attr(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
    int max_threads = device_attr(dev, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
    int func_max = func_attr(f, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
    int grid = 0, block = 0;
    CHECK(cuOccupancyMaxPotentialBlockSize(&grid, &block, f, NULL, 0, 0));
    EXPECT(block > 0 && block <= max_threads && block <= func_max, "block size %d", block);
    EXPECT(grid == blocks_for(f, block, 0) * sms, "min grid %d for block %d", grid, block);
    printf("potential block size %d, min grid %d\n", block, grid);

    CHECK(cuOccupancyMaxPotentialBlockSize(&grid, &block, f, NULL, 0, 100));
    EXPECT(block > 0 && block <= 100, "with limit 100: block size %d", block);

    /* The callback: 64 bytes of dynamic shared memory per thread. */
    callback_calls = 0;
    CHECK(cuOccupancyMaxPotentialBlockSizeWithFlags(&grid, &block, f, smem_64_per_thread, 0, 0,
                                                    CU_OCCUPANCY_DEFAULT));
    EXPECT(callback_calls > 0, "the callback was not called");
    int max_dynamic = func_attr(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES);
    EXPECT(block > 0 && (size_t)block * 64 <= (size_t)max_dynamic,
           "callback: block size %d needs %d bytes, limit %d", block, block * 64, max_dynamic);
    EXPECT(grid == blocks_for(f, block, (size_t)block * 64) * sms, "callback: min grid %d", grid);
    printf("with 64 bytes of shared memory per thread: block size %d, min grid %d\n", block, grid);

    EXPECT_ERR(cuOccupancyMaxPotentialBlockSize(NULL, &block, f, NULL, 0, 0),
               CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuOccupancyMaxPotentialBlockSize(&grid, NULL, f, NULL, 0, 0),
               CUDA_ERROR_INVALID_VALUE);
    OK("cuOccupancyMaxPotentialBlockSize within the limits, callback honoured");
}

static void test_available_smem(CUfunction f)
{
    size_t one = 0, two = 0;
    int max_dynamic = func_attr(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES);
    CHECK(cuOccupancyAvailableDynamicSMemPerBlock(&one, f, 1, 128));
    EXPECT(one == (size_t)max_dynamic, "one block: %zu bytes, kernel limit %d", one, max_dynamic);
    if (blocks_for(f, 1024, 0) >= 2) {
        CHECK(cuOccupancyAvailableDynamicSMemPerBlock(&two, f, 2, 1024));
        EXPECT(two > 0 && two <= one, "two blocks: %zu bytes", two);
        EXPECT(blocks_for(f, 1024, two) >= 2, "two blocks with %zu bytes each", two);
    }
    EXPECT_ERR(cuOccupancyAvailableDynamicSMemPerBlock(&two, f, 0, 128), CUDA_ERROR_INVALID_VALUE);
    EXPECT_ERR(cuOccupancyAvailableDynamicSMemPerBlock(NULL, f, 1, 128), CUDA_ERROR_INVALID_VALUE);

    /* Opting in to more dynamic shared memory makes room for larger blocks' needs. */
    CHECK(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 100 * 1024));
    EXPECT(blocks_for(f, 128, 100 * 1024) >= 1, "100 KiB after opting in");
    CHECK(cuOccupancyAvailableDynamicSMemPerBlock(&one, f, 1, 128));
    EXPECT(one == 100 * 1024, "one block after opting in: %zu bytes", one);
    printf("available dynamic shared memory: 1 block %d bytes (default limit), 2 blocks of 1024 "
           "threads %zu bytes\n",
           max_dynamic, two);
    OK("cuOccupancyAvailableDynamicSMemPerBlock consistent with the occupancy");
}

int main(void)
{
    watchdog(60);
    CUdevice dev;
    init_primary(&dev);
    CUmodule m = load_module("vector_add");
    CUfunction f = get_function(m, "vector_add");
    test_active_blocks(dev, f);
    test_potential_block_size(dev, f);
    test_available_smem(f);
    CHECK(cuModuleUnload(m));
    CHECK(cuDevicePrimaryCtxRelease(dev));
    printf("occupancy: all ok\n");
    return 0;
}
