// kernels/accumulate.cu — dst += src on a CUDA device; the CPU twin is kernels/accumulate_cpu.c.
#include "kernels/accumulate.h"
#include "kernels/cuda_common.cuh"
#include "nn/cuda_api.h"

template <typename T>
__device__ __forceinline__ void accumulate_elem(T *d, const T *s, int64_t i) {
    d[i] += s[i];
}
template <>
__device__ __forceinline__ void accumulate_elem<uint16_t>(uint16_t *d, const uint16_t *s, int64_t i) {
    d[i] = dice_f32_to_bf16(dice_bf16_to_f32(d[i]) + dice_bf16_to_f32(s[i]));  // bf16 bits
}

template <typename T>
__global__ void accumulate_kernel(T *dst, const T *src, int64_t n) {
    DICE_GRID_STRIDE(i, n)
        accumulate_elem(dst, src, i);
}

extern "C" int accumulate_cuda(void *dst, const void *src, int64_t n, DType dtype, void *stream, DiceError *err) {
    if (n == 0) return 0;
    const int block = 256;
    int grid = dice_grid_1d(n, block);
    cudaStream_t s = (cudaStream_t)stream;
    switch (dtype) {
    case DT_F64: DICE_LAUNCH((accumulate_kernel<double>), grid, block, 0, s, (double *)dst, (const double *)src, n); break;
    case DT_F32: DICE_LAUNCH((accumulate_kernel<float>), grid, block, 0, s, (float *)dst, (const float *)src, n); break;
    case DT_BF16:
        DICE_LAUNCH((accumulate_kernel<uint16_t>), grid, block, 0, s, (uint16_t *)dst, (const uint16_t *)src, n);
        break;
    default: return DICE_FAIL(err, "accumulate: dtype %s is not supported (f64, f32, bf16)", dtype_name(dtype));
    }
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
