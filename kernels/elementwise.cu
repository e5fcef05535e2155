// kernels/elementwise.cu — elementwise kernels on a CUDA device (see elementwise.h); CPU twins in
// kernels/elementwise_cpu.c. Storage f32 or bf16, arithmetic fp32. Bandwidth-bound: grid-stride loops moving
// 16 bytes per access where the pointers and row lengths allow (elementwise.cuh), one kernel per fused op.
#include "kernels/elementwise.cuh"
#include "kernels/elementwise.h"
#include "nn/cuda_api.h"

#define SQRT_2_OVER_PI_F 0.7978845608f
#define INV_SQRT_2PI_F 0.3989422804f
#define SQRT_HALF_F 0.7071067812f

static __device__ __forceinline__ float ew_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <EwUnary OP>
static __device__ __forceinline__ float unary_value(float x, float alpha, float beta) {
    if constexpr (OP == EW_GELU) return 0.5f * x * erfcf(-x * SQRT_HALF_F);
    if constexpr (OP == EW_GELU_TANH) return x * ew_sigmoid(2.0f * SQRT_2_OVER_PI_F * (x + 0.044715f * x * x * x));
    if constexpr (OP == EW_QUICK_GELU) return x * ew_sigmoid(1.702f * x);
    if constexpr (OP == EW_SILU) return x * ew_sigmoid(x);
    if constexpr (OP == EW_RELU) return x > 0.0f ? x : 0.0f;
    if constexpr (OP == EW_AFFINE) return alpha * x + beta;
}

// d f / d x (the formulas of kernels/elementwise_cpu.c, in fp32)
template <EwUnary OP>
static __device__ __forceinline__ float unary_slope(float x, float alpha) {
    if constexpr (OP == EW_GELU) return 0.5f * erfcf(-x * SQRT_HALF_F) + x * INV_SQRT_2PI_F * expf(-0.5f * x * x);
    if constexpr (OP == EW_GELU_TANH) {
        float s = ew_sigmoid(2.0f * SQRT_2_OVER_PI_F * (x + 0.044715f * x * x * x));
        return s + 2.0f * x * s * (1.0f - s) * SQRT_2_OVER_PI_F * (1.0f + 3.0f * 0.044715f * x * x);
    }
    if constexpr (OP == EW_QUICK_GELU) {
        float s = ew_sigmoid(1.702f * x);
        return s + 1.702f * x * s * (1.0f - s);
    }
    if constexpr (OP == EW_SILU) {
        float s = ew_sigmoid(x);
        return s * (1.0f + x * (1.0f - s));
    }
    if constexpr (OP == EW_RELU) return x > 0.0f ? 1.0f : 0.0f;
    if constexpr (OP == EW_AFFINE) return alpha;
}

#define EW_UNARY_OPS(X) X(EW_GELU) X(EW_GELU_TANH) X(EW_QUICK_GELU) X(EW_SILU) X(EW_RELU) X(EW_AFFINE)

// ---------------------------------------------------------------- unary: y = f(x), dx = dy f'(x); n elements
template <typename T, int V, EwUnary OP>
static __device__ __forceinline__ void unary_forward_at(T *y, const T *x, int64_t i, float alpha, float beta) {
    float v[V];
    dice_load_vec<T, V>(v, x, i);
    for (int k = 0; k < V; k++) v[k] = unary_value<OP>(v[k], alpha, beta);
    dice_store_vec<T, V>(y, i, v);
}

template <typename T, int V, EwUnary OP>
static __global__ void unary_forward_kernel(T *y, const T *x, int64_t n, float alpha, float beta) {
    int64_t nv = n / V;
    DICE_GRID_STRIDE(v, nv) unary_forward_at<T, V, OP>(y, x, v * V, alpha, beta);
    DICE_GRID_STRIDE(i, n - nv * V) unary_forward_at<T, 1, OP>(y, x, nv * V + i, alpha, beta);
}

template <typename T, int V, EwUnary OP>
static __device__ __forceinline__ void unary_backward_at(T *dx, const T *dy, const T *x, int64_t i, float alpha) {
    float g[V], v[V];
    dice_load_vec<T, V>(g, dy, i);
    if constexpr (OP != EW_AFFINE) dice_load_vec<T, V>(v, x, i);
    for (int k = 0; k < V; k++) g[k] *= unary_slope<OP>(OP == EW_AFFINE ? 0.0f : v[k], alpha);
    dice_store_vec<T, V>(dx, i, g);
}

template <typename T, int V, EwUnary OP>
static __global__ void unary_backward_kernel(T *dx, const T *dy, const T *x, int64_t n, float alpha) {
    int64_t nv = n / V;
    DICE_GRID_STRIDE(v, nv) unary_backward_at<T, V, OP>(dx, dy, x, v * V, alpha);
    DICE_GRID_STRIDE(i, n - nv * V) unary_backward_at<T, 1, OP>(dx, dy, x, nv * V + i, alpha);
}

template <typename T, int V>
static int unary_forward_launch(EwUnary op, void *y, const void *x, int64_t n, float alpha, float beta,
                                cudaStream_t s, DiceError *err) {
    int grid = ew_grid(n / V);
    switch (op) {
#define EW_CASE(OP)                                                                                              \
    case OP:                                                                                                     \
        DICE_LAUNCH((unary_forward_kernel<T, V, OP>), grid, EW_THREADS, 0, s, (T *)y, (const T *)x, n, alpha, beta); \
        break;
        EW_UNARY_OPS(EW_CASE)
#undef EW_CASE
    }
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

template <typename T, int V>
static int unary_backward_launch(EwUnary op, void *dx, const void *dy, const void *x, int64_t n, float alpha,
                                 cudaStream_t s, DiceError *err) {
    int grid = ew_grid(n / V);
    switch (op) {
#define EW_CASE(OP)                                                                                                  \
    case OP:                                                                                                         \
        DICE_LAUNCH((unary_backward_kernel<T, V, OP>), grid, EW_THREADS, 0, s, (T *)dx, (const T *)dy, (const T *)x, \
                    n, alpha);                                                                                       \
        break;
        EW_UNARY_OPS(EW_CASE)
#undef EW_CASE
    }
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int ew_unary_cuda(EwUnary op, void *y, const void *x, int64_t n, double alpha, double beta, DType dtype,
                             void *stream, DiceError *err) {
    if (n == 0) return 0;
    bool vec = ew_vectorizable(dtype, {y, x}, {});
    EW_DISPATCH("unary", dtype, vec, unary_forward_launch, op, y, x, n, (float)alpha, (float)beta,
                (cudaStream_t)stream, err);
}

extern "C" int ew_unary_backward_cuda(EwUnary op, void *dx, const void *dy, const void *x, int64_t n, double alpha,
                                      DType dtype, void *stream, DiceError *err) {
    if (n == 0) return 0;
    bool vec = ew_vectorizable(dtype, {dx, dy, x}, {});
    EW_DISPATCH("unary backward", dtype, vec, unary_backward_launch, op, dx, dy, x, n, (float)alpha,
                (cudaStream_t)stream, err);
}

// ---------------------------------------------------------------- GEGLU: x (rows, 2F) = [h | gate] -> y (rows, F)
template <typename T, int V>
static __global__ void geglu_forward_kernel(T *y, const T *x, int64_t rows, int64_t f) {
    DICE_GRID_STRIDE(v, rows * f / V) {
        int64_t e = v * V, r = e / f, c = e % f;
        float h[V], gate[V];
        dice_load_vec<T, V>(h, x, r * 2 * f + c);
        dice_load_vec<T, V>(gate, x, r * 2 * f + f + c);
        for (int k = 0; k < V; k++) h[k] *= unary_value<EW_GELU>(gate[k], 1.0f, 0.0f);
        dice_store_vec<T, V>(y, e, h);
    }
}

// dx (rows, 2F) = [dy gelu(gate) | dy h gelu'(gate)]
template <typename T, int V>
static __global__ void geglu_backward_kernel(T *dx, const T *dy, const T *x, int64_t rows, int64_t f) {
    DICE_GRID_STRIDE(v, rows * f / V) {
        int64_t e = v * V, r = e / f, c = e % f;
        float g[V], h[V], gate[V], dh[V], dgate[V];
        dice_load_vec<T, V>(g, dy, e);
        dice_load_vec<T, V>(h, x, r * 2 * f + c);
        dice_load_vec<T, V>(gate, x, r * 2 * f + f + c);
        for (int k = 0; k < V; k++) {
            dh[k] = g[k] * unary_value<EW_GELU>(gate[k], 1.0f, 0.0f);
            dgate[k] = g[k] * h[k] * unary_slope<EW_GELU>(gate[k], 1.0f);
        }
        dice_store_vec<T, V>(dx, r * 2 * f + c, dh);
        dice_store_vec<T, V>(dx, r * 2 * f + f + c, dgate);
    }
}

template <typename T, int V>
static int geglu_launch(bool backward, void *out, const void *dy, const void *x, int64_t rows, int64_t f,
                        cudaStream_t s, DiceError *err) {
    int grid = ew_grid(rows * f / V);
    if (backward)
        DICE_LAUNCH((geglu_backward_kernel<T, V>), grid, EW_THREADS, 0, s, (T *)out, (const T *)dy, (const T *)x, rows, f);
    else
        DICE_LAUNCH((geglu_forward_kernel<T, V>), grid, EW_THREADS, 0, s, (T *)out, (const T *)x, rows, f);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int ew_geglu_cuda(void *y, const void *x, int64_t rows, int64_t f, DType dtype, void *stream,
                             DiceError *err) {
    if (rows * f == 0) return 0;
    bool vec = ew_vectorizable(dtype, {y, x}, {f});
    EW_DISPATCH("geglu", dtype, vec, geglu_launch, false, y, NULL, x, rows, f, (cudaStream_t)stream, err);
}

extern "C" int ew_geglu_backward_cuda(void *dx, const void *dy, const void *x, int64_t rows, int64_t f, DType dtype,
                                      void *stream, DiceError *err) {
    if (rows * f == 0) return 0;
    bool vec = ew_vectorizable(dtype, {dx, dy, x}, {f});
    EW_DISPATCH("geglu backward", dtype, vec, geglu_launch, true, dx, dy, x, rows, f, (cudaStream_t)stream, err);
}

// ---------------------------------------------------------------- softmax over rows of (rows, cols): a warp per row
static constexpr int SOFTMAX_WARPS = 4;  // rows per block

// Forward: one pass for the running (max, sum of exp(x - max)) of each lane, merged across the warp, then one pass
// writing exp(x - max) / sum. -inf entries contribute 0.
template <typename T, int V>
static __global__ void softmax_forward_kernel(T *y, const T *x, int64_t rows, int64_t cols) {
    const int lane = threadIdx.x % 32;
    for (int64_t r = (int64_t)blockIdx.x * SOFTMAX_WARPS + threadIdx.x / 32; r < rows;
         r += (int64_t)gridDim.x * SOFTMAX_WARPS) {
        const T *xr = x + r * cols;
        float m = -INFINITY, s = 0.0f;
        for (int64_t j = (int64_t)lane * V; j < cols; j += 32 * V) {
            float v[V];
            dice_load_vec<T, V>(v, xr, j);
            for (int k = 0; k < V; k++) {
                if (v[k] > m) {
                    s = s * expf(m - v[k]) + 1.0f;
                    m = v[k];
                } else if (m != -INFINITY) {
                    s += expf(v[k] - m);
                }
            }
        }
        for (int offset = 16; offset > 0; offset >>= 1) {
            float m2 = __shfl_xor_sync(0xffffffffu, m, offset), s2 = __shfl_xor_sync(0xffffffffu, s, offset);
            float mn = fmaxf(m, m2);
            s = (m == -INFINITY ? 0.0f : s * expf(m - mn)) + (m2 == -INFINITY ? 0.0f : s2 * expf(m2 - mn));
            m = mn;
        }
        float inv = 1.0f / s;
        for (int64_t j = (int64_t)lane * V; j < cols; j += 32 * V) {
            float v[V];
            dice_load_vec<T, V>(v, xr, j);
            for (int k = 0; k < V; k++) v[k] = expf(v[k] - m) * inv;
            dice_store_vec<T, V>(y + r * cols, j, v);
        }
    }
}

// dx = y (dy - sum_j dy_j y_j)
template <typename T, int V>
static __global__ void softmax_backward_kernel(T *dx, const T *dy, const T *y, int64_t rows, int64_t cols) {
    const int lane = threadIdx.x % 32;
    for (int64_t r = (int64_t)blockIdx.x * SOFTMAX_WARPS + threadIdx.x / 32; r < rows;
         r += (int64_t)gridDim.x * SOFTMAX_WARPS) {
        const T *gr = dy + r * cols, *yr = y + r * cols;
        float dot = 0.0f;
        for (int64_t j = (int64_t)lane * V; j < cols; j += 32 * V) {
            float g[V], v[V];
            dice_load_vec<T, V>(g, gr, j);
            dice_load_vec<T, V>(v, yr, j);
            for (int k = 0; k < V; k++) dot += g[k] * v[k];
        }
        dot = dice_warp_sum(dot);
        for (int64_t j = (int64_t)lane * V; j < cols; j += 32 * V) {
            float g[V], v[V];
            dice_load_vec<T, V>(g, gr, j);
            dice_load_vec<T, V>(v, yr, j);
            for (int k = 0; k < V; k++) g[k] = v[k] * (g[k] - dot);
            dice_store_vec<T, V>(dx + r * cols, j, g);
        }
    }
}

template <typename T, int V>
static int softmax_launch(bool backward, void *out, const void *dy, const void *in, int64_t rows, int64_t cols,
                          cudaStream_t s, DiceError *err) {
    int grid = dice_grid_1d(rows, SOFTMAX_WARPS);  // a warp per row
    if (backward)
        DICE_LAUNCH((softmax_backward_kernel<T, V>), grid, 32 * SOFTMAX_WARPS, 0, s, (T *)out, (const T *)dy,
                    (const T *)in, rows, cols);
    else
        DICE_LAUNCH((softmax_forward_kernel<T, V>), grid, 32 * SOFTMAX_WARPS, 0, s, (T *)out, (const T *)in, rows, cols);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int ew_softmax_cuda(void *y, const void *x, int64_t rows, int64_t cols, DType dtype, void *stream,
                               DiceError *err) {
    if (rows * cols == 0) return 0;
    bool vec = ew_vectorizable(dtype, {y, x}, {cols});
    EW_DISPATCH("softmax", dtype, vec, softmax_launch, false, y, NULL, x, rows, cols, (cudaStream_t)stream, err);
}

extern "C" int ew_softmax_backward_cuda(void *dx, const void *dy, const void *y, int64_t rows, int64_t cols,
                                        DType dtype, void *stream, DiceError *err) {
    if (rows * cols == 0) return 0;
    bool vec = ew_vectorizable(dtype, {dx, dy, y}, {cols});
    EW_DISPATCH("softmax backward", dtype, vec, softmax_launch, true, dx, dy, y, rows, cols, (cudaStream_t)stream, err);
}

// ---------------------------------------------------------------- broadcast add / mul
// Each thread computes V consecutive outputs along the last dim (V divides shape[last]); an operand broadcast
// along the last dim (stride 0) is one value repeated, otherwise its V values are contiguous.
template <typename T, int V>
static __device__ __forceinline__ void load_operand(float out[V], const T *p, int64_t i, int64_t last_stride) {
    if (last_stride) {
        dice_load_vec<T, V>(out, p, i);
    } else {
        float s = dice_load_f32(p, i);
        for (int k = 0; k < V; k++) out[k] = s;
    }
}

template <typename T, int V, EwBinary OP>
static __global__ void binary_kernel(T *y, const T *a, const T *b, EwBroadcast p, int64_t n) {
    const int last = p.ndim - 1;
    DICE_GRID_STRIDE(v, n / V) {
        int64_t rest = v * V, ia = 0, ib = 0;
        for (int d = last; d > 0; d--) {
            int64_t c = rest % p.shape[d];
            rest /= p.shape[d];
            ia += c * p.a_stride[d];
            ib += c * p.b_stride[d];
        }
        ia += rest * p.a_stride[0];
        ib += rest * p.b_stride[0];
        float av[V], bv[V];
        load_operand<T, V>(av, a, ia, p.a_stride[last]);
        load_operand<T, V>(bv, b, ib, p.b_stride[last]);
        for (int k = 0; k < V; k++) av[k] = OP == EW_ADD ? av[k] + bv[k] : av[k] * bv[k];
        dice_store_vec<T, V>(y, v * V, av);
    }
}

template <typename T, int V>
static int binary_launch(EwBinary op, void *y, const void *a, const void *b, const EwBroadcast *p, int64_t n,
                         cudaStream_t s, DiceError *err) {
    if (op == EW_ADD)
        DICE_LAUNCH((binary_kernel<T, V, EW_ADD>), ew_grid(n / V), EW_THREADS, 0, s, (T *)y, (const T *)a,
                    (const T *)b, *p, n);
    else
        DICE_LAUNCH((binary_kernel<T, V, EW_MUL>), ew_grid(n / V), EW_THREADS, 0, s, (T *)y, (const T *)a,
                    (const T *)b, *p, n);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int ew_binary_cuda(EwBinary op, void *y, const void *a, const void *b, const EwBroadcast *p, DType dtype,
                              void *stream, DiceError *err) {
    DICE_CHECK(err, p->ndim >= 1 && p->ndim <= TENSOR_MAX_DIMS, "binary (CUDA): %d dims", p->ndim);
    int64_t n = 1;
    for (int d = 0; d < p->ndim; d++) n *= p->shape[d];
    if (n == 0) return 0;
    bool vec = ew_vectorizable(dtype, {y, a, b}, {p->shape[p->ndim - 1]});
    EW_DISPATCH("binary", dtype, vec, binary_launch, op, y, a, b, p, n, (cudaStream_t)stream, err);
}

// ---------------------------------------------------------------- gradient of a broadcast operand
// A block of 32 x 8 threads: 32 consecutive outputs k, each summed over r by 8 threads, then across them.
static constexpr int BGRAD_X = 32, BGRAD_Y = 8;
// The kernels below are templates, so their shared memory is dynamic (static __shared__ is not emulated there):
// rows of BGRAD_X + 1 floats (padded against bank conflicts), BGRAD_Y of them per array.
typedef float BgradRow[BGRAD_X + 1];
static constexpr size_t BGRAD_SMEM = sizeof(BgradRow) * BGRAD_Y;

template <typename T>
static __global__ void broadcast_grad_kernel(T *grad, const T *dy, const T *other, EwReduce p, int64_t keep, int64_t red) {
    DICE_DYNAMIC_SMEM(BgradRow, partial);  // (BGRAD_Y, BGRAD_X + 1)
    int64_t k = (int64_t)blockIdx.x * BGRAD_X + threadIdx.x;
    float s = 0.0f;
    if (k < keep) {
        int64_t kd, ko;
        ew_dim_offsets(p.keep_ndim, p.keep_shape, p.keep_dy, p.keep_other, k, &kd, &ko);
        for (int64_t r = threadIdx.y; r < red; r += BGRAD_Y) {
            int64_t rd, ro;
            ew_dim_offsets(p.red_ndim, p.red_shape, p.red_dy, p.red_other, r, &rd, &ro);
            s += other ? dice_load_f32(dy, kd + rd) * dice_load_f32(other, ko + ro) : dice_load_f32(dy, kd + rd);
        }
    }
    partial[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && k < keep) {
        for (int j = 1; j < BGRAD_Y; j++) s += partial[j][threadIdx.x];
        dice_store_f32(grad, k, s);
    }
}

extern "C" int ew_broadcast_grad_cuda(void *grad, const void *dy, const void *other, const EwReduce *p, DType dtype,
                                      void *stream, DiceError *err) {
    int64_t keep = 1, red = 1;
    for (int d = 0; d < p->keep_ndim; d++) keep *= p->keep_shape[d];
    for (int d = 0; d < p->red_ndim; d++) red *= p->red_shape[d];
    if (keep == 0) return 0;
    dim3 grid((unsigned)((keep + BGRAD_X - 1) / BGRAD_X)), block(BGRAD_X, BGRAD_Y);
    cudaStream_t s = (cudaStream_t)stream;
    if (dtype == DT_F32)
        DICE_LAUNCH(broadcast_grad_kernel<float>, grid, block, BGRAD_SMEM, s, (float *)grad, (const float *)dy,
                    (const float *)other, *p, keep, red);
    else if (dtype == DT_BF16)
        DICE_LAUNCH(broadcast_grad_kernel<uint16_t>, grid, block, BGRAD_SMEM, s, (uint16_t *)grad, (const uint16_t *)dy,
                    (const uint16_t *)other, *p, keep, red);
    else
        return DICE_FAIL(err, "broadcast gradient (CUDA): dtype %s is not supported (f32, bf16)", dtype_name(dtype));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

// ---------------------------------------------------------------- modulation: x (B, N, C), scale / shift (B, C)
template <typename T, int V>
static __global__ void modulate_kernel(T *y, const T *x, const T *scale, const T *shift, int64_t n, int64_t c, int64_t total) {
    DICE_GRID_STRIDE(v, total / V) {
        int64_t e = v * V, s = e / (n * c) * c + e % c;
        float xv[V], sc[V], sh[V] = {};
        dice_load_vec<T, V>(xv, x, e);
        dice_load_vec<T, V>(sc, scale, s);
        if (shift) dice_load_vec<T, V>(sh, shift, s);
        for (int k = 0; k < V; k++) xv[k] = xv[k] * (1.0f + sc[k]) + sh[k];
        dice_store_vec<T, V>(y, e, xv);
    }
}

// dscale[b, c] = sum_n dy x, dshift[b, c] = sum_n dy: block (32, 8) over 32 channels of one batch element.
template <typename T>
static __global__ void modulate_grad_kernel(T *dscale, T *dshift, const T *dy, const T *x, int64_t n, int64_t c) {
    DICE_DYNAMIC_SMEM(BgradRow, ps);  // (2, BGRAD_Y, BGRAD_X + 1): ps, then ph
    BgradRow *ph = ps + BGRAD_Y;
    int64_t ci = (int64_t)blockIdx.x * BGRAD_X + threadIdx.x, bi = blockIdx.y;
    float ss = 0.0f, sh = 0.0f;
    if (ci < c)
        for (int64_t i = threadIdx.y; i < n; i += BGRAD_Y) {
            int64_t e = (bi * n + i) * c + ci;
            float g = dice_load_f32(dy, e);
            ss += g * dice_load_f32(x, e);
            sh += g;
        }
    ps[threadIdx.y][threadIdx.x] = ss;
    ph[threadIdx.y][threadIdx.x] = sh;
    __syncthreads();
    if (threadIdx.y == 0 && ci < c) {
        for (int j = 1; j < BGRAD_Y; j++) {
            ss += ps[j][threadIdx.x];
            sh += ph[j][threadIdx.x];
        }
        if (dscale) dice_store_f32(dscale, bi * c + ci, ss);
        if (dshift) dice_store_f32(dshift, bi * c + ci, sh);
    }
}

template <typename T, int V>
static int modulate_launch(void *y, const void *x, const void *scale, const void *shift, int64_t b, int64_t n,
                           int64_t c, cudaStream_t s, DiceError *err) {
    int64_t total = b * n * c;
    DICE_LAUNCH((modulate_kernel<T, V>), ew_grid(total / V), EW_THREADS, 0, s, (T *)y, (const T *)x,
                (const T *)scale, (const T *)shift, n, c, total);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

template <typename T, int V>
static int modulate_grad_launch(void *dscale, void *dshift, const void *dy, const void *x, int64_t b, int64_t n,
                                int64_t c, cudaStream_t s, DiceError *err) {
    dim3 grid((unsigned)((c + BGRAD_X - 1) / BGRAD_X), (unsigned)b), block(BGRAD_X, BGRAD_Y);
    DICE_LAUNCH(modulate_grad_kernel<T>, grid, block, 2 * BGRAD_SMEM, s, (T *)dscale, (T *)dshift, (const T *)dy,
                (const T *)x, n, c);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int ew_modulate_cuda(void *y, const void *x, const void *scale, const void *shift, int64_t b, int64_t n,
                                int64_t c, DType dtype, void *stream, DiceError *err) {
    if (b * n * c == 0) return 0;
    bool vec = ew_vectorizable(dtype, {y, x, scale, shift}, {c});
    EW_DISPATCH("modulate", dtype, vec, modulate_launch, y, x, scale, shift, b, n, c, (cudaStream_t)stream, err);
}

extern "C" int ew_modulate_backward_cuda(void *dx, void *dscale, void *dshift, const void *dy, const void *x,
                                         const void *scale, int64_t b, int64_t n, int64_t c, DType dtype, void *stream,
                                         DiceError *err) {
    if (b * n * c == 0) return 0;
    if (dx) DICE_TRY(ew_modulate_cuda(dx, dy, scale, NULL, b, n, c, dtype, stream, err));
    if (!dscale && !dshift) return 0;
    DICE_CHECK(err, b <= 65535, "modulate backward (CUDA): batch %lld exceeds 65535", (long long)b);
    EW_DISPATCH("modulate backward", dtype, false, modulate_grad_launch, dscale, dshift, dy, x, b, n, c,
                (cudaStream_t)stream, err);
}
