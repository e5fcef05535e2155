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

// One thread per block of 4 elements (grid-stride): thread t computes block first_block + t.
__global__ void philox_uniform_kernel(float *out, uint64_t n, uint64_t seed, uint64_t offset, uint64_t blocks) {
    for (uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; t < blocks;
         t += (uint64_t)gridDim.x * blockDim.x) {
        float v[4];
        philox_uniform4(seed, offset / 4 + t, v);
        philox_store_block(out, n, offset, offset / 4 + t, v);
    }
}

__global__ void philox_normal_kernel(float *out, uint64_t n, uint64_t seed, uint64_t offset, uint64_t blocks) {
    for (uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; t < blocks;
         t += (uint64_t)gridDim.x * blockDim.x) {
        float v[4];
        philox_normal4(seed, offset / 4 + t, v);
        philox_store_block(out, n, offset, offset / 4 + t, v);
    }
}

// Blocks of 4 touched by [offset, offset + n), n > 0.
static uint64_t philox_blocks(size_t n, uint64_t offset) { return (offset + n - 1) / 4 - offset / 4 + 1; }

static int philox_grid(uint64_t blocks, int threads) {
    uint64_t grid = (blocks + (uint64_t)threads - 1) / (uint64_t)threads;
    return (int)(grid < 65536 ? grid : 65536);
}

extern "C" int philox_fill_uniform_cuda(float *d_out, size_t n, uint64_t seed, uint64_t offset, void *stream,
                                        DiceError *err) {
    if (n == 0) return 0;
    const int threads = 256;
    uint64_t blocks = philox_blocks(n, offset);
    DICE_LAUNCH(philox_uniform_kernel, philox_grid(blocks, threads), threads, 0, (cudaStream_t)stream, d_out,
                (uint64_t)n, seed, offset, blocks);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int philox_fill_normal_cuda(float *d_out, size_t n, uint64_t seed, uint64_t offset, void *stream,
                                       DiceError *err) {
    if (n == 0) return 0;
    const int threads = 256;
    uint64_t blocks = philox_blocks(n, offset);
    DICE_LAUNCH(philox_normal_kernel, philox_grid(blocks, threads), threads, 0, (cudaStream_t)stream, d_out,
                (uint64_t)n, seed, offset, blocks);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
