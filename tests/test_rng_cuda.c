// tests/test_rng_cuda.c — the CUDA Philox fills (kernels/philox.cu) against the CPU fills, bitwise:
// several seeds, ragged offsets and sizes, into poisoned device memory with guard words on both sides.
#include <stdlib.h>
#include <string.h>

#include "kernels/philox.h"
#include "nn/cuda_api.h"
#include "nn/philox.h"
#include "test.h"

enum { GUARD = 7 };  // poisoned floats before and after the filled range

typedef int (*CudaFill)(float *d_out, size_t n, uint64_t seed, uint64_t offset, void *stream, DiceError *err);
typedef void (*CpuFill)(float *out, size_t n, uint64_t seed, uint64_t offset);

// 0 if the device fill equals the CPU fill and left the guards alone, -1 with `err` saying what differs.
static int compare_fill(CudaFill cuda_fill, CpuFill cpu_fill, const char *what, size_t n, uint64_t seed,
                        uint64_t offset, DiceError *err) {
    size_t total = n + 2 * GUARD;
    float *want = malloc(total * sizeof *want), *got = malloc(total * sizeof *got), *d = NULL;
    int rc = -1;
    if (!want || !got) {
        DICE_FAIL(err, "out of memory");
        goto done;
    }
    memset(want, 0xff, total * sizeof *want);
    cpu_fill(want + GUARD, n, seed, offset);
    if (cudaMalloc((void **)&d, total * sizeof *d) != cudaSuccess || cudaMemset(d, 0xff, total * sizeof *d) != cudaSuccess) {
        DICE_FAIL(err, "cudaMalloc/cudaMemset of %zu floats failed", total);
        goto done;
    }
    if (cuda_fill(d + GUARD, n, seed, offset, NULL, err)) goto done;
    if (cudaMemcpy(got, d, total * sizeof *got, cudaMemcpyDeviceToHost) != cudaSuccess) {
        DICE_FAIL(err, "cudaMemcpy back failed");
        goto done;
    }
    for (size_t i = 0; i < total; i++) {
        if (memcmp(&got[i], &want[i], sizeof *got) != 0) {
            DICE_FAIL(err, "%s fill, seed %llu, offset %llu, n %zu: %s %zd is %08x, CPU gives %08x", what,
                      (unsigned long long)seed, (unsigned long long)offset, n,
                      i < GUARD || i >= GUARD + n ? "guard at element" : "element", (ptrdiff_t)i - GUARD,
                      dice_f32_bits(got[i]), dice_f32_bits(want[i]));
            goto done;
        }
    }
    rc = 0;
done:
    if (d) cudaFree(d);
    free(want);
    free(got);
    return rc;
}

DICE_CUDA_TEST(philox_cuda_matches_cpu_bitwise) {
    const uint64_t seeds[] = {0, tc->seed, 0xDEADBEEFCAFEF00Du};
    const uint64_t offsets[] = {0, 1, 2, 3, 6, (UINT64_C(1) << 34) + 1};
    const size_t sizes[] = {1, 2, 3, 4, 5, 17, 1000, 4099};
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++)
        for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++)
            for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
                CHECK_OK(compare_fill(philox_fill_uniform_cuda, philox_fill_uniform_f32, "uniform", sizes[k],
                                      seeds[s], offsets[o], &tc->err));
                CHECK_OK(compare_fill(philox_fill_normal_cuda, philox_fill_normal_f32, "normal", sizes[k],
                                      seeds[s], offsets[o], &tc->err));
            }
    // n = 0 writes nothing.
    CHECK_OK(compare_fill(philox_fill_normal_cuda, philox_fill_normal_f32, "normal", 0, 1, 5, &tc->err));
}

// A large fill. On a GPU it needs more threads than the launch's grid has (65536 blocks x 256 threads,
// 4 elements each), so the kernels' grid-stride loop is exercised; the emulator runs a smaller one.
DICE_CUDA_TEST(philox_cuda_large_fill) {
#ifdef DICE_EMU
    const size_t n = 70001;
#else
    const size_t n = (size_t)65536 * 256 * 4 + 4099;
#endif
    CHECK_OK(compare_fill(philox_fill_normal_cuda, philox_fill_normal_f32, "normal", n, tc->seed, 3, &tc->err));
}
