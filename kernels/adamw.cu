// kernels/adamw.cu — the AdamW update on a CUDA device, one thread per element (kernels/adamw.h);
// the CPU twin is kernels/adamw_cpu.c.
#include "kernels/adamw.h"
#include "kernels/cuda_common.cuh"
#include "nn/cuda_api.h"

__global__ void adamw_update_kernel(float *p, float *m, float *v, const float *g, int64_t n, AdamWScalars s) {
    DICE_GRID_STRIDE(i, n)
        adamw_update_elem(&p[i], &m[i], &v[i], g[i], &s);
}

extern "C" int adamw_update_cuda(float *p, float *m, float *v, const float *g, int64_t n, const AdamWScalars *s,
                                 void *stream, DiceError *err) {
    if (n == 0) return 0;
    const int block = 256;
    int grid = dice_grid_1d(n, block);
    DICE_LAUNCH(adamw_update_kernel, grid, block, 0, (cudaStream_t)stream, p, m, v, g, n, *s);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
