// kernels/philox.cu — Philox4x32-10 uniform and normal fills of a device buffer; the CPU twin is
// nn/philox.c, and both compute every element with the shared functions of nn/philox.h.
#include "kernels/cuda_common.cuh"
#include "kernels/philox.h"
#include "nn/cuda_api.h"
#include "nn/philox.h"

// Stores the part of block b (elements 4b .. 4b+3) that lies in [offset, offset + n).
static inline DICE_HD void philox_store_block(float *out, uint64_t n, uint64_t offset, uint64_t b,
                                              const float v[4]) {
    for (int j = 0; j < 4; j++) {
        uint64_t g = 4 * b + (uint64_t)j;
        if (g >= offset && g - offset < n) out[g - offset] = v[j];
    }
}

// One thread per block of 4 elements (grid-stride): thread t computes block offset / 4 + t, normal or uniform.
template <bool NORMAL>
__global__ void philox_fill_kernel(float *out, uint64_t n, uint64_t seed, uint64_t offset, uint64_t blocks) {
    for (uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; t < blocks;
         t += (uint64_t)gridDim.x * blockDim.x) {
        float v[4];
        if constexpr (NORMAL)
            philox_normal4(seed, offset / 4 + t, v);
        else
            philox_uniform4(seed, offset / 4 + t, v);
        philox_store_block(out, n, offset, offset / 4 + t, v);
    }
}

template <bool NORMAL>
static int philox_fill(float *d_out, size_t n, uint64_t seed, uint64_t offset, void *stream, DiceError *err) {
    if (n == 0) return 0;
    const int threads = 256;
    uint64_t blocks = (offset + n - 1) / 4 - offset / 4 + 1;  // blocks of 4 touched by [offset, offset + n)
    DICE_LAUNCH(philox_fill_kernel<NORMAL>, dice_grid_1d((int64_t)blocks, threads), threads, 0, (cudaStream_t)stream,
                d_out, (uint64_t)n, seed, offset, blocks);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int philox_fill_uniform_cuda(float *d_out, size_t n, uint64_t seed, uint64_t offset, void *stream,
                                        DiceError *err) {
    return philox_fill<false>(d_out, n, seed, offset, stream, err);
}

extern "C" int philox_fill_normal_cuda(float *d_out, size_t n, uint64_t seed, uint64_t offset, void *stream,
                                       DiceError *err) {
    return philox_fill<true>(d_out, n, seed, offset, stream, err);
}
