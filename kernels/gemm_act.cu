// kernels/gemm_act.cu — the linear layer's elementwise helpers on a CUDA device (see gemm.h): activation
// forward (the unfused paths), activation backward, and the bias gradient (column sums). f32 and bf16
// storage, fp32 arithmetic. CPU twins: kernels/gemm_cpu.c.
#include "kernels/cuda_common.cuh"
#include "kernels/gemm.h"
#include "nn/cuda_api.h"

// y = act(z), one thread per element (grid-stride).
template <typename T>
__global__ void act_forward_kernel(T *y, const T *z, int64_t n, GemmAct act) {
    DICE_GRID_STRIDE(i, n)
        dice_store_f32(y, i, gemm_act_f32(act, dice_load_f32(z, i)));
}

// c = act(c) in place on a (rows, cols) matrix with row stride ld, one thread per element (grid-stride).
template <typename T>
__global__ void act_forward_strided_kernel(T *c, int64_t rows, int64_t cols, int64_t ld, GemmAct act) {
    DICE_GRID_STRIDE(i, rows * cols) {
        int64_t at = (i / cols) * ld + i % cols;
        dice_store_f32(c, at, gemm_act_f32(act, dice_load_f32(c, at)));
    }
}

// dz = dy * act'(z), one thread per element (grid-stride).
template <typename T>
__global__ void act_backward_kernel(T *dz, const T *dy, const T *z, int64_t n, GemmAct act) {
    DICE_GRID_STRIDE(i, n)
        dice_store_f32(dz, i, dice_load_f32(dy, i) * gemm_act_grad_f32(act, dice_load_f32(z, i)));
}

// db (cols) = sum over rows of dz (rows, cols). Block (32, 16) owns 32 columns: thread (x, y) sums rows
// y, y + 16, ... of column x (coalesced across x), then the 16 partial sums are added in shared memory
// (dynamic: static __shared__ is not emulated in templates), rows padded to 33 against bank conflicts.
constexpr int BIAS_GRAD_ROWS = 16;
typedef float BiasGradRow[33];
static constexpr size_t BIAS_GRAD_SMEM = sizeof(BiasGradRow) * BIAS_GRAD_ROWS;
template <typename T>
__global__ void bias_grad_kernel(T *db, const T *dz, int64_t rows, int64_t cols) {
    DICE_DYNAMIC_SMEM(BiasGradRow, partial);  // (BIAS_GRAD_ROWS, 33)
    const int x = threadIdx.x, y = threadIdx.y;
    const int64_t col = (int64_t)blockIdx.x * 32 + x;
    float s = 0.0f;
    if (col < cols)
        for (int64_t r = y; r < rows; r += BIAS_GRAD_ROWS) s += dice_load_f32(dz, r * cols + col);
    partial[y][x] = s;
    __syncthreads();
    if (y == 0 && col < cols) {
        for (int i = 1; i < BIAS_GRAD_ROWS; i++) s += partial[i][x];
        dice_store_f32(db, col, s);
    }
}

#define CHECK_CUDA_DTYPE(what, dtype)                                                                      \
    DICE_CHECK(err, (dtype) == DT_F32 || (dtype) == DT_BF16, "%s: dtype %s is not supported on CUDA (f32, bf16)", \
               what, dtype_name(dtype))

extern "C" int gemm_act_forward_cuda(void *y, const void *z, int64_t n, DType dtype, GemmAct act, void *stream,
                                     DiceError *err) {
    CHECK_CUDA_DTYPE("gemm_act_forward_cuda", dtype);
    if (n == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    if (dtype == DT_F32)
        DICE_LAUNCH(act_forward_kernel<float>, dice_grid_1d(n, 256), 256, 0, s, (float *)y, (const float *)z, n, act);
    else
        DICE_LAUNCH(act_forward_kernel<uint16_t>, dice_grid_1d(n, 256), 256, 0, s, (uint16_t *)y, (const uint16_t *)z,
                    n, act);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int gemm_act_forward_strided_cuda(void *c, int64_t rows, int64_t cols, int64_t ld, DType dtype,
                                             GemmAct act, void *stream, DiceError *err) {
    CHECK_CUDA_DTYPE("gemm_act_forward_strided_cuda", dtype);
    DICE_CHECK(err, ld >= cols, "gemm_act_forward_strided_cuda: row stride %lld < %lld columns", (long long)ld,
               (long long)cols);
    int64_t n = rows * cols;
    if (n == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    if (dtype == DT_F32)
        DICE_LAUNCH(act_forward_strided_kernel<float>, dice_grid_1d(n, 256), 256, 0, s, (float *)c, rows, cols, ld,
                    act);
    else
        DICE_LAUNCH(act_forward_strided_kernel<uint16_t>, dice_grid_1d(n, 256), 256, 0, s, (uint16_t *)c, rows, cols,
                    ld, act);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int gemm_act_backward_cuda(void *dz, const void *dy, const void *z, int64_t n, DType dtype, GemmAct act,
                                      void *stream, DiceError *err) {
    CHECK_CUDA_DTYPE("gemm_act_backward_cuda", dtype);
    if (n == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    if (dtype == DT_F32)
        DICE_LAUNCH(act_backward_kernel<float>, dice_grid_1d(n, 256), 256, 0, s, (float *)dz, (const float *)dy,
                    (const float *)z, n, act);
    else
        DICE_LAUNCH(act_backward_kernel<uint16_t>, dice_grid_1d(n, 256), 256, 0, s, (uint16_t *)dz,
                    (const uint16_t *)dy, (const uint16_t *)z, n, act);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int gemm_bias_grad_cuda(void *db, const void *dz, int64_t rows, int64_t cols, DType dtype, void *stream,
                                   DiceError *err) {
    CHECK_CUDA_DTYPE("gemm_bias_grad_cuda", dtype);
    if (cols == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    dim3 grid((unsigned)((cols + 31) / 32)), block(32, BIAS_GRAD_ROWS);
    if (dtype == DT_F32)
        DICE_LAUNCH(bias_grad_kernel<float>, grid, block, BIAS_GRAD_SMEM, s, (float *)db, (const float *)dz, rows,
                    cols);
    else
        DICE_LAUNCH(bias_grad_kernel<uint16_t>, grid, block, BIAS_GRAD_SMEM, s, (uint16_t *)db, (const uint16_t *)dz,
                    rows, cols);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
