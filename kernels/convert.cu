// kernels/convert.cu — strided copy with dtype conversion on a CUDA device; the CPU twin is
// convert_cpu in nn/tensor_copy.c (same index decomposition, same nn/convert_elem.h conversions).
#include "kernels/cuda_common.cuh"
#include "kernels/convert.h"
#include "nn/convert_elem.h"
#include "nn/cuda_api.h"

// One thread per element of the ndim-d index space, grid-stride loop.
__global__ void convert_strided_kernel(void *dst, const void *src, ConvertPlan p, int64_t n) {
    DICE_GRID_STRIDE(idx, n) {
        int64_t rest = idx, di = 0, si = 0;
        for (int d = p.ndim - 1; d >= 0; d--) {
            int64_t c = rest % p.shape[d];
            rest /= p.shape[d];
            di += c * p.dst_stride[d];
            si += c * p.src_stride[d];
        }
        dice_convert_elem(dst, p.dst_dtype, di, src, p.src_dtype, si);
    }
}

extern "C" int convert_cuda(void *dst, const void *src, const ConvertPlan *plan, void *stream, DiceError *err) {
    int64_t n = 1;
    for (int i = 0; i < plan->ndim; i++) n *= plan->shape[i];
    if (n == 0) return 0;
    const int block = 256;
    int grid = dice_grid_1d(n, block);
    DICE_LAUNCH(convert_strided_kernel, grid, block, 0, (cudaStream_t)stream, dst, src, *plan, n);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
