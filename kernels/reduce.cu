// kernels/reduce.cu — reductions and losses on a CUDA device (see reduce.h); CPU twins in
// kernels/reduce_cpu.c. Full reductions are deterministic: REDUCE_BLOCKS fixed partial sums (a block
// tree each), then one block sums the partials in a fixed order.
#include "kernels/cuda_common.cuh"
#include "kernels/reduce.h"
#include "nn/cuda_api.h"

enum { REDUCE_THREADS = 256, REDUCE_BLOCKS = REDUCE_PARTIALS };
static constexpr size_t REDUCE_PARTIALS_SMEM = REDUCE_THREADS / 32 * sizeof(float);  // a float per warp

__device__ __forceinline__ float reduce_term(ReduceKind kind, float a, float b) {
    float d = a - b;
    return kind == REDUCE_L1 ? fabsf(d) : kind == REDUCE_L2 ? d * d : a;
}

__device__ __forceinline__ float reduce_term_grad(ReduceKind kind, float a, float b) {
    return kind == REDUCE_L1 ? (a > b ? 1.0f : a < b ? -1.0f : 0.0f) : kind == REDUCE_L2 ? 2.0f * (a - b) : 1.0f;
}

// Sum of v over the block (every thread gets it). blockDim.x == REDUCE_THREADS.
__device__ float block_sum(float v, float *shared) {
    v = dice_warp_sum(v);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float s = lane < REDUCE_THREADS / 32 ? shared[lane] : 0.0f;
    s = dice_warp_sum(s);
    __syncthreads();
    return s;
}

// Stage 1: partials[blockIdx.x] = sum of the terms of a grid-stride slice.
template <typename T>
__global__ void reduce_partials_kernel(float *partials, const T *a, const T *b, int64_t n, ReduceKind kind) {
    DICE_DYNAMIC_SMEM(float, shared);  // REDUCE_PARTIALS_SMEM (a template: static __shared__ is not emulated)
    float s = 0.0f;
    DICE_GRID_STRIDE(i, n)
        s += reduce_term(kind, dice_load_f32(a, i), kind == REDUCE_SUM ? 0.0f : dice_load_f32(b, i));
    s = block_sum(s, shared);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// Stage 2: *out = scale * sum(partials[0 .. count)).
__global__ void reduce_final_kernel(float *out, const float *partials, int count, float scale) {
    __shared__ float shared[REDUCE_THREADS / 32];
    float s = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
    s = block_sum(s, shared);
    if (threadIdx.x == 0) *out = s * scale;
}

template <typename T>
__global__ void reduce_backward_kernel(T *da, T *db, const float *grad_out, const T *a, const T *b, int64_t n,
                                       ReduceKind kind, float scale) {
    float g = *grad_out * scale;
    DICE_GRID_STRIDE(i, n) {
        float d = g * reduce_term_grad(kind, dice_load_f32(a, i), kind == REDUCE_SUM ? 0.0f : dice_load_f32(b, i));
        if (da) dice_store_f32(da, i, d);
        if (db) dice_store_f32(db, i, -d);
    }
}

template <typename T>
__global__ void sum_dim_kernel(T *out, const T *x, int64_t outer, int64_t n, int64_t inner) {
    DICE_GRID_STRIDE(o, outer * inner) {
        int64_t i = o / inner, j = o % inner;
        float s = 0.0f;
        for (int64_t k = 0; k < n; k++) s += dice_load_f32(x, (i * n + k) * inner + j);
        dice_store_f32(out, o, s);
    }
}

template <typename T>
__global__ void sum_dim_backward_kernel(T *dx, const T *grad_out, int64_t outer, int64_t n, int64_t inner) {
    DICE_GRID_STRIDE(e, outer * n * inner) {
        int64_t i = e / (n * inner), j = e % inner;
        dice_store_f32(dx, e, dice_load_f32(grad_out, i * inner + j));
    }
}

static int grid_for(int64_t n) { return dice_grid_1d(n, REDUCE_THREADS); }

static int check_cuda_dtypes(DType dtype, DType out_dtype, DiceError *err) {
    DICE_CHECK(err, dtype == DT_F32 || dtype == DT_BF16, "reduce (CUDA): dtype %s is not supported (f32, bf16)",
               dtype_name(dtype));
    DICE_CHECK(err, out_dtype == DT_F32, "reduce (CUDA): the result is f32, not %s", dtype_name(out_dtype));
    return 0;
}

extern "C" int reduce_full_cuda(void *out, DType out_dtype, const void *a, const void *b, int64_t n, DType dtype,
                                ReduceKind kind, double scale, float *workspace, void *stream, DiceError *err) {
    DICE_TRY(check_cuda_dtypes(dtype, out_dtype, err));
    cudaStream_t s = (cudaStream_t)stream;
    float *partials = workspace;
    int blocks = grid_for(n) < REDUCE_BLOCKS ? grid_for(n) : REDUCE_BLOCKS;
    if (dtype == DT_F32)
        DICE_LAUNCH((reduce_partials_kernel<float>), blocks, REDUCE_THREADS, REDUCE_PARTIALS_SMEM, s, partials,
                    (const float *)a, (const float *)b, n, kind);
    else
        DICE_LAUNCH((reduce_partials_kernel<uint16_t>), blocks, REDUCE_THREADS, REDUCE_PARTIALS_SMEM, s, partials,
                    (const uint16_t *)a, (const uint16_t *)b, n, kind);
    CUDA_TRY(err, cudaGetLastError());
    DICE_LAUNCH(reduce_final_kernel, 1, REDUCE_THREADS, 0, s, (float *)out, partials, blocks, (float)scale);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int reduce_full_backward_cuda(void *da, void *db, const void *grad_out, DType out_dtype, const void *a,
                                         const void *b, int64_t n, DType dtype, ReduceKind kind, double scale,
                                         void *stream, DiceError *err) {
    DICE_TRY(check_cuda_dtypes(dtype, out_dtype, err));
    cudaStream_t s = (cudaStream_t)stream;
    if (dtype == DT_F32)
        DICE_LAUNCH((reduce_backward_kernel<float>), grid_for(n), REDUCE_THREADS, 0, s, (float *)da, (float *)db,
                    (const float *)grad_out, (const float *)a, (const float *)b, n, kind, (float)scale);
    else
        DICE_LAUNCH((reduce_backward_kernel<uint16_t>), grid_for(n), REDUCE_THREADS, 0, s, (uint16_t *)da,
                    (uint16_t *)db, (const float *)grad_out, (const uint16_t *)a, (const uint16_t *)b, n, kind,
                    (float)scale);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int sum_dim_cuda(void *out, const void *x, int64_t outer, int64_t n, int64_t inner, DType dtype,
                            void *stream, DiceError *err) {
    DICE_TRY(check_cuda_dtypes(dtype, DT_F32, err));
    cudaStream_t s = (cudaStream_t)stream;
    int grid = grid_for(outer * inner);
    if (dtype == DT_F32)
        DICE_LAUNCH((sum_dim_kernel<float>), grid, REDUCE_THREADS, 0, s, (float *)out, (const float *)x, outer, n, inner);
    else
        DICE_LAUNCH((sum_dim_kernel<uint16_t>), grid, REDUCE_THREADS, 0, s, (uint16_t *)out, (const uint16_t *)x,
                    outer, n, inner);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int sum_dim_backward_cuda(void *dx, const void *grad_out, int64_t outer, int64_t n, int64_t inner,
                                     DType dtype, void *stream, DiceError *err) {
    DICE_TRY(check_cuda_dtypes(dtype, DT_F32, err));
    cudaStream_t s = (cudaStream_t)stream;
    int grid = grid_for(outer * n * inner);
    if (dtype == DT_F32)
        DICE_LAUNCH((sum_dim_backward_kernel<float>), grid, REDUCE_THREADS, 0, s, (float *)dx,
                    (const float *)grad_out, outer, n, inner);
    else
        DICE_LAUNCH((sum_dim_backward_kernel<uint16_t>), grid, REDUCE_THREADS, 0, s, (uint16_t *)dx,
                    (const uint16_t *)grad_out, outer, n, inner);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
