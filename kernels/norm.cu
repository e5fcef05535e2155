// kernels/norm.cu — group norm (NHWC, optionally fused with SiLU) and layer norm on a CUDA device, forward
// and backward (see norm.h); CPU twins in kernels/norm_cpu.c. Storage f32 or bf16 (uint16_t bits),
// arithmetic and statistics in fp32.
//
// Group norm. SD1.5 at batch 1-2 has only 32-64 (sample, group) pairs of up to 40960 elements each, far
// too few blocks for 132 SMs, and in NHWC a group is a strided slab (C/G channels of every row; C/G = 10
// for C = 320, so groups are not 16-byte aligned). So blocks do not own groups; they own chunks of rows:
//   1. stats:    grid (chunks, B). A block reads rows [row0, row0 + R) of one sample, all C channels, with
//                16-byte loads (8 bf16 / 4 f32 channels per thread), and writes one partial per group:
//                forward (mean, M2) of the chunk, backward (sum gamma dz, sum gamma dz x^).
//   2. finalize: a warp per (sample, group) merges the chunk partials in a fixed order (deterministic).
//   3. apply:    grid (chunks, B), elementwise: y = x * scale[c] + shift[c] (+ SiLU), or dx.
// Numerics of the forward statistics: every thread accumulates x - K for a per-channel shift K (the chunk's
// first row), so sum and sum of squares do not cancel; the block turns them into a per-channel (mean, M2),
// merges the channels of each group, and the finalize merges chunks with Chan's formula.
// The partial data is B * chunks * G float2 (a few % of the tensor); the second read of x in the apply
// usually hits L2 (SD1.5's largest group-norm input, 2x64x64x960 bf16, is 15.7 MB; H100 L2: 50 MB).
#include "kernels/cuda_common.cuh"
#include "kernels/norm.h"
#include "nn/cuda_api.h"

#include <type_traits>

static __device__ __forceinline__ float sigmoidf_(float z) { return 1.0f / (1.0f + __expf(-z)); }

// Gradient of the affine output z: dy * silu'(z) when SiLU follows, else dy.
template <bool SILU>
static __device__ __forceinline__ float affine_grad(float dy, float z) {
    if (!SILU) return dy;
    float s = sigmoidf_(z);
    return dy * s * (1.0f + z * (1.0f - s));
}

// (n, mean, M2) += (nb, mb, m2b): Chan et al.'s parallel variance update.
static __device__ __forceinline__ void chan_merge(float &n, float &mean, float &m2, float nb, float mb, float m2b) {
    if (nb == 0.0f) return;
    float nt = n + nb, d = mb - mean;
    mean += d * (nb / nt);
    m2 += m2b + d * d * (n * nb / nt);
    n = nt;
}

// ---------------------------------------------------------------- group norm: shared geometry
// Block (tx, ty): thread x owns channels [x * VEC, x * VEC + VEC) (tx = ceil(C / VEC) threads), thread y
// rows row0 + y, row0 + y + ty, ... of a chunk of R = ty * rows_per_thread rows of one sample.
struct GroupNormGeometry {
    int S, C, G, R;  // rows per sample, channels, groups, rows per chunk
    __device__ int chunk_rows(int chunk) const { return min(R, S - chunk * R); }
};

// Per-channel values of the threads' rows of a block (red1, red2: (ty, C) in shared memory) summed over
// ty into row 0 of red1 / red2, then turned by `channel` into per-channel values, and merged per group
// by `group` (a warp per group, lanes over the group's channels). Called by every thread of the block.
template <class ChannelFn, class GroupFn>
static __device__ __forceinline__ void block_reduce_groups(float *red1, float *red2, int C, int G, ChannelFn channel,
                                                           GroupFn group) {
    __syncthreads();
    const int tid = threadIdx.y * blockDim.x + threadIdx.x, nthreads = blockDim.x * blockDim.y;
    for (int c = tid; c < C; c += nthreads) {  // column c is only touched by this thread
        float a = 0.0f, q = 0.0f;
        for (int y = 0; y < (int)blockDim.y; y++) {
            a += red1[y * C + c];
            q += red2[y * C + c];
        }
        channel(c, a, q);
        red1[c] = a;
        red2[c] = q;
    }
    __syncthreads();
    const int warp = tid / 32, lane = tid % 32, full_warps = nthreads / 32;  // full warps only: shuffles
    if (warp < full_warps)
        for (int g = warp; g < G; g += full_warps) group(g, lane, red1 + g * (C / G), red2 + g * (C / G), C / G);
}

// The thread's rows first, first + step, ... < rows in batches of BATCH: load(r, u) for every row of a
// batch, then use(r, u) for each, so that the batch's 16-byte loads are in flight before the first use (the
// compiler may not hoist a load above the previous row's store when it cannot rule out aliasing). Forward
// kernels read one tensor (4 rows in flight), backward kernels two (2 rows each, fewer registers).
enum { ROW_BATCH_FWD = 4, ROW_BATCH_BWD = 2 };
template <int BATCH, class LoadFn, class UseFn>
static __device__ __forceinline__ void for_rows_batched(int first, int rows, int step, LoadFn load, UseFn use) {
    for (int r0 = first; r0 < rows; r0 += BATCH * step) {
#pragma unroll
        for (int u = 0; u < BATCH; u++)
            if (r0 + u * step < rows) load(r0 + u * step, u);
#pragma unroll
        for (int u = 0; u < BATCH; u++)
            if (r0 + u * step < rows) use(r0 + u * step, u);
    }
}

// ---------------------------------------------------------------- group norm forward
// partials[(b * chunks + chunk) * G + g] = (mean, M2) of group g over the chunk's rows.
template <typename T, int VEC>
__global__ void __launch_bounds__(1024)
group_norm_stats_kernel(float2 *partials, const T *x, GroupNormGeometry geo) {
    DICE_DYNAMIC_SMEM(float, red1);  // (2, ty, C)
    float *red2 = red1 + blockDim.y * geo.C;
    const int b = blockIdx.y, chunk = blockIdx.x, rows = geo.chunk_rows(chunk), c0 = threadIdx.x * VEC;
    const T *xc = x + ((int64_t)b * geo.S + (int64_t)chunk * geo.R) * geo.C;  // the chunk's first row
    if (c0 < geo.C) {
        float shift[VEC], s1[VEC], s2[VEC];
        dice_load_vec<T, VEC>(shift, xc, c0);
#pragma unroll
        for (int i = 0; i < VEC; i++) s1[i] = s2[i] = 0.0f;
        float v[ROW_BATCH_FWD][VEC];
        for_rows_batched<ROW_BATCH_FWD>(
            threadIdx.y, rows, blockDim.y,
            [&](int r, int u) { dice_load_vec<T, VEC>(v[u], xc, (int64_t)r * geo.C + c0); },
            [&](int, int u) {
#pragma unroll
                for (int i = 0; i < VEC; i++) {
                    float d = v[u][i] - shift[i];
                    s1[i] += d;
                    s2[i] += d * d;
                }
            });
#pragma unroll
        for (int i = 0; i < VEC; i++) {
            red1[threadIdx.y * geo.C + c0 + i] = s1[i];
            red2[threadIdx.y * geo.C + c0 + i] = s2[i];
        }
    }
    const float n = (float)rows;
    block_reduce_groups(
        red1, red2, geo.C, geo.G,
        [&](int c, float &a, float &q) {  // sums of x - K -> channel mean and M2
            float m = a / n;
            q -= a * m;
            a = dice_load_f32(xc, c) + m;
        },
        [&](int g, int lane, const float *cm, const float *cm2, int cg) {  // channels (equal counts) -> group
            float s = 0.0f;
            for (int j = lane; j < cg; j += 32) s += cm[j];
            const float mean = dice_warp_sum(s) / (float)cg;
            float m2 = 0.0f;
            for (int j = lane; j < cg; j += 32) {
                float d = cm[j] - mean;
                m2 += cm2[j] + n * d * d;
            }
            m2 = dice_warp_sum(m2);
            if (lane == 0) partials[((int64_t)b * gridDim.x + chunk) * geo.G + g] = make_float2(mean, m2);
        });
}

// A warp per (sample, group): mean and rstd from the chunks' (mean, M2). blockDim.x is a multiple of 32.
__global__ void group_norm_finalize_kernel(float *mean, float *rstd, const float2 *partials, GroupNormGeometry geo,
                                           int B, int chunks, float eps) {
    const int w = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (w >= B * geo.G) return;  // whole warps
    const int b = w / geo.G, g = w % geo.G, cg = geo.C / geo.G;
    float n = 0.0f, m = 0.0f, m2 = 0.0f;
    for (int k = lane; k < chunks; k += 32) {
        float2 p = partials[((int64_t)b * chunks + k) * geo.G + g];
        chan_merge(n, m, m2, (float)geo.chunk_rows(k) * (float)cg, p.x, p.y);
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        float nb = __shfl_down_sync(0xffffffffu, n, offset), mb = __shfl_down_sync(0xffffffffu, m, offset);
        float m2b = __shfl_down_sync(0xffffffffu, m2, offset);
        chan_merge(n, m, m2, nb, mb, m2b);
    }
    if (lane == 0) {
        mean[w] = m;
        rstd[w] = rsqrtf(fmaxf(m2 / n, 0.0f) + eps);
    }
}

// Per-channel scale and shift of the thread's VEC channels: z = x * scale + shift.
template <int VEC, typename T>
static __device__ __forceinline__ void channel_affine(float *scale, float *shift, const float *mean,
                                                      const float *rstd, const T *gamma, const T *beta, int b, int c0,
                                                      const GroupNormGeometry &geo) {
#pragma unroll
    for (int i = 0; i < VEC; i++) {
        const int c = c0 + i, bg = b * geo.G + c / (geo.C / geo.G);
        scale[i] = rstd[bg] * (gamma ? dice_load_f32(gamma, c) : 1.0f);
        shift[i] = (beta ? dice_load_f32(beta, c) : 0.0f) - mean[bg] * scale[i];
    }
}

template <typename T, int VEC, bool SILU>
__global__ void __launch_bounds__(1024)
group_norm_apply_kernel(T *y, const T *x, const float *mean, const float *rstd, const T *gamma,
                                        const T *beta, GroupNormGeometry geo) {
    const int b = blockIdx.y, chunk = blockIdx.x, rows = geo.chunk_rows(chunk), c0 = threadIdx.x * VEC;
    if (c0 >= geo.C) return;
    float scale[VEC], shift[VEC];
    channel_affine<VEC>(scale, shift, mean, rstd, gamma, beta, b, c0, geo);
    const int64_t base = ((int64_t)b * geo.S + (int64_t)chunk * geo.R) * geo.C + c0;
    float v[ROW_BATCH_FWD][VEC];
    for_rows_batched<ROW_BATCH_FWD>(
        threadIdx.y, rows, blockDim.y, [&](int r, int u) { dice_load_vec<T, VEC>(v[u], x, base + (int64_t)r * geo.C); },
        [&](int r, int u) {
#pragma unroll
            for (int i = 0; i < VEC; i++) {
                float z = v[u][i] * scale[i] + shift[i];
                v[u][i] = SILU ? z * sigmoidf_(z) : z;
            }
            dice_store_vec<T, VEC>(y, base + (int64_t)r * geo.C, v[u]);
        });
}

// ---------------------------------------------------------------- group norm backward
// partials[(b * chunks + chunk) * G + g] = (sum gamma dz, sum gamma dz x^) over the chunk's part of group g.
template <typename T, int VEC, bool SILU>
__global__ void __launch_bounds__(1024)
group_norm_backward_stats_kernel(float2 *partials, const T *dy, const T *x, const float *mean,
                                                 const float *rstd, const T *gamma, const T *beta,
                                                 GroupNormGeometry geo) {
    DICE_DYNAMIC_SMEM(float, red1);  // (2, ty, C)
    float *red2 = red1 + blockDim.y * geo.C;
    const int b = blockIdx.y, chunk = blockIdx.x, rows = geo.chunk_rows(chunk), c0 = threadIdx.x * VEC;
    const int cg = geo.C / geo.G;
    if (c0 < geo.C) {
        float m[VEC], r[VEC], ga[VEC], be[VEC], p[VEC], q[VEC];
#pragma unroll
        for (int i = 0; i < VEC; i++) {
            const int c = c0 + i, bg = b * geo.G + c / cg;
            m[i] = mean[bg];
            r[i] = rstd[bg];
            ga[i] = gamma ? dice_load_f32(gamma, c) : 1.0f;
            be[i] = beta ? dice_load_f32(beta, c) : 0.0f;
            p[i] = q[i] = 0.0f;
        }
        const int64_t base = ((int64_t)b * geo.S + (int64_t)chunk * geo.R) * geo.C + c0;
        float xv[ROW_BATCH_BWD][VEC], dv[ROW_BATCH_BWD][VEC];
        for_rows_batched<ROW_BATCH_BWD>(
            threadIdx.y, rows, blockDim.y,
            [&](int row, int u) {
                dice_load_vec<T, VEC>(xv[u], x, base + (int64_t)row * geo.C);
                dice_load_vec<T, VEC>(dv[u], dy, base + (int64_t)row * geo.C);
            },
            [&](int, int u) {
#pragma unroll
                for (int i = 0; i < VEC; i++) {
                    float xh = (xv[u][i] - m[i]) * r[i], dz = affine_grad<SILU>(dv[u][i], xh * ga[i] + be[i]);
                    p[i] += dz;
                    q[i] += dz * xh;
                }
            });
#pragma unroll
        for (int i = 0; i < VEC; i++) {
            red1[threadIdx.y * geo.C + c0 + i] = p[i];
            red2[threadIdx.y * geo.C + c0 + i] = q[i];
        }
    }
    block_reduce_groups(
        red1, red2, geo.C, geo.G,
        [&](int c, float &a, float &q) {  // per-channel P, Q (dbeta, dgamma of this chunk) weighted by gamma
            const float ga = gamma ? dice_load_f32(gamma, c) : 1.0f;
            a *= ga;
            q *= ga;
        },
        [&](int g, int lane, const float *cp, const float *cq, int n) {
            float a = 0.0f, q = 0.0f;
            for (int j = lane; j < n; j += 32) {
                a += cp[j];
                q += cq[j];
            }
            a = dice_warp_sum(a);
            q = dice_warp_sum(q);
            if (lane == 0) partials[((int64_t)b * gridDim.x + chunk) * geo.G + g] = make_float2(a, q);
        });
}

// A warp per (sample, group): coef = (mean_g(gamma dz), mean_g(gamma dz x^)) from the chunk sums.
__global__ void group_norm_backward_finalize_kernel(float2 *coef, const float2 *partials, GroupNormGeometry geo, int B,
                                                    int chunks) {
    const int w = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (w >= B * geo.G) return;  // whole warps
    const int b = w / geo.G, g = w % geo.G;
    float a = 0.0f, q = 0.0f;
    for (int k = lane; k < chunks; k += 32) {
        float2 p = partials[((int64_t)b * chunks + k) * geo.G + g];
        a += p.x;
        q += p.y;
    }
    a = dice_warp_sum(a);
    q = dice_warp_sum(q);
    const float inv_n = 1.0f / ((float)geo.S * (float)(geo.C / geo.G));
    if (lane == 0) coef[w] = make_float2(a * inv_n, q * inv_n);
}

template <typename T, int VEC, bool SILU>
__global__ void __launch_bounds__(1024)
group_norm_backward_apply_kernel(T *dx, const T *dy, const T *x, const float *mean, const float *rstd,
                                                 const float2 *coef, const T *gamma, const T *beta,
                                                 GroupNormGeometry geo) {
    const int b = blockIdx.y, chunk = blockIdx.x, rows = geo.chunk_rows(chunk), c0 = threadIdx.x * VEC;
    if (c0 >= geo.C) return;
    // Per channel, with x^ = (x - mean) rstd and (ca, cq) = coef of the channel's group:
    //   z = x s1 + s0                 (s1 = rstd gamma, s0 = beta - mean s1)
    //   dx = rstd (gamma dz - ca - x^ cq) = s1 dz + e1 x + e0   (e1 = -rstd^2 cq, e0 = rstd (rstd cq mean - ca))
    const int cg = geo.C / geo.G;
    float s1[VEC], s0[VEC], e1[VEC], e0[VEC];
#pragma unroll
    for (int i = 0; i < VEC; i++) {
        const int c = c0 + i, bg = b * geo.G + c / cg;
        const float m = mean[bg], r = rstd[bg], ca = coef[bg].x, cq = coef[bg].y;
        s1[i] = r * (gamma ? dice_load_f32(gamma, c) : 1.0f);
        s0[i] = (beta ? dice_load_f32(beta, c) : 0.0f) - m * s1[i];
        e1[i] = -r * r * cq;
        e0[i] = r * (r * cq * m - ca);
    }
    const int64_t base = ((int64_t)b * geo.S + (int64_t)chunk * geo.R) * geo.C + c0;
    float xv[ROW_BATCH_BWD][VEC], dv[ROW_BATCH_BWD][VEC];
    for_rows_batched<ROW_BATCH_BWD>(
        threadIdx.y, rows, blockDim.y,
        [&](int row, int u) {
            dice_load_vec<T, VEC>(xv[u], x, base + (int64_t)row * geo.C);
            dice_load_vec<T, VEC>(dv[u], dy, base + (int64_t)row * geo.C);
        },
        [&](int row, int u) {
#pragma unroll
            for (int i = 0; i < VEC; i++) {
                float dz = affine_grad<SILU>(dv[u][i], xv[u][i] * s1[i] + s0[i]);
                dv[u][i] = s1[i] * dz + e1[i] * xv[u][i] + e0[i];
            }
            dice_store_vec<T, VEC>(dx, base + (int64_t)row * geo.C, dv[u]);
        });
}

// ---------------------------------------------------------------- group norm launch plan
enum { GN_BLOCK_THREADS = 256, GN_TARGET_BLOCKS = 264, GN_MAX_ROWS_PER_THREAD = 16, GN_FINALIZE_THREADS = 256 };

struct GroupNormPlan {
    int vec, tx, ty, chunks;
    GroupNormGeometry geo;
    size_t smem_bytes;                 // stats kernels: (2, ty, C) floats
    size_t partial_bytes, coef_bytes;  // workspace: partials (B, chunks, G) float2, then coef (B, G) float2
};

// Block shape and chunking for a vector width. Aims at about GN_TARGET_BLOCKS blocks (2 per SM of an
// H100), each thread reading up to GN_MAX_ROWS_PER_THREAD rows, so that enough 16-byte loads are in flight
// and the per-block reduction is amortised over several rows.
static GroupNormPlan group_norm_plan(int64_t B, int64_t S, int64_t C, int64_t G, int vec) {
    GroupNormPlan p = {};
    p.vec = vec;
    p.tx = (int)((C + vec - 1) / vec);
    p.ty = p.tx >= GN_BLOCK_THREADS ? 1 : GN_BLOCK_THREADS / p.tx;
    int64_t want_chunks = (GN_TARGET_BLOCKS + B - 1) / B;
    int64_t rows_per_thread = (S + want_chunks * p.ty - 1) / (want_chunks * p.ty);
    if (rows_per_thread < 1) rows_per_thread = 1;
    if (rows_per_thread > GN_MAX_ROWS_PER_THREAD) rows_per_thread = GN_MAX_ROWS_PER_THREAD;
    p.geo.S = (int)S;
    p.geo.C = (int)C;
    p.geo.G = (int)G;
    p.geo.R = (int)(p.ty * rows_per_thread);
    p.chunks = (int)((S + p.geo.R - 1) / p.geo.R);
    p.smem_bytes = 2 * (size_t)p.ty * (size_t)C * sizeof(float);
    p.partial_bytes = ((size_t)B * p.chunks * G * sizeof(float2) + 255) / 256 * 256;
    p.coef_bytes = (size_t)B * G * sizeof(float2);
    return p;
}

static int native_vec(DType dtype) { return dtype == DT_BF16 ? 8 : 4; }  // 16 bytes

extern "C" size_t group_norm_cuda_workspace_bytes(int64_t B, int64_t S, int64_t C, int64_t G, DType dtype) {
    if (B <= 0 || S <= 0 || C <= 0 || G <= 0) return 0;
    // The launch picks the native width or 1 (see group_norm_setup): room for either.
    GroupNormPlan scalar = group_norm_plan(B, S, C, G, 1), vector = group_norm_plan(B, S, C, G, native_vec(dtype));
    size_t a = scalar.partial_bytes + scalar.coef_bytes, b = vector.partial_bytes + vector.coef_bytes;
    return a > b ? a : b;
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

// The plan for these tensors: 16-byte vectors when C is a multiple of the width and every large tensor is
// 16-byte aligned, scalar accesses otherwise; checks the shape limits.
static int group_norm_setup(GroupNormPlan *plan, const void *const *big, int n_big, int64_t B, int64_t S, int64_t C,
                            int64_t G, DType dtype, DiceError *err) {
    DICE_CHECK(err, dtype == DT_F32 || dtype == DT_BF16, "group_norm (CUDA): dtype %s is not supported (f32, bf16)",
               dtype_name(dtype));
    DICE_CHECK(err, B > 0 && S > 0 && C > 0 && G > 0 && C % G == 0,
               "group_norm (CUDA): bad shape B %lld, S %lld, C %lld, G %lld", (long long)B, (long long)S, (long long)C,
               (long long)G);
    DICE_CHECK(err, B <= 65535 && S * C <= INT32_MAX, "group_norm (CUDA): a sample of %lld x %lld or %lld samples is too large",
               (long long)S, (long long)C, (long long)B);
    int vec = native_vec(dtype);
    bool ok = C % vec == 0;
    for (int i = 0; i < n_big; i++) ok = ok && aligned16(big[i]);
    if (!ok) vec = 1;
    DICE_CHECK(err, (C + vec - 1) / vec <= 1024,
               "group_norm (CUDA): C = %lld needs %lld threads per row (at most 1024; %d channels per thread)",
               (long long)C, (long long)((C + vec - 1) / vec), vec);
    *plan = group_norm_plan(B, S, C, G, vec);
    return 0;
}

// ---------------------------------------------------------------- group norm launchers
template <typename T, int VEC, bool SILU>
static int group_norm_forward_t(T *y, float *mean, float *rstd, const T *x, const T *gamma, const T *beta, int B,
                                float eps, const GroupNormPlan &p, void *workspace, cudaStream_t s, DiceError *err) {
    float2 *partials = (float2 *)workspace;
    dim3 grid(p.chunks, B), block(p.tx, p.ty);
    if (p.smem_bytes > 48 * 1024)
        CUDA_TRY(err, cudaFuncSetAttribute((group_norm_stats_kernel<T, VEC>),
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p.smem_bytes));
    DICE_LAUNCH((group_norm_stats_kernel<T, VEC>), grid, block, p.smem_bytes, s, partials, x, p.geo);
    CUDA_TRY(err, cudaGetLastError());
    int fin_blocks = (B * p.geo.G * 32 + GN_FINALIZE_THREADS - 1) / GN_FINALIZE_THREADS;
    DICE_LAUNCH(group_norm_finalize_kernel, fin_blocks, GN_FINALIZE_THREADS, 0, s, mean, rstd, partials, p.geo, B,
                p.chunks, eps);
    CUDA_TRY(err, cudaGetLastError());
    DICE_LAUNCH((group_norm_apply_kernel<T, VEC, SILU>), grid, block, 0, s, y, x, mean, rstd, gamma, beta, p.geo);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

template <typename T, int VEC, bool SILU>
static int group_norm_backward_t(T *dx, const T *dy, const T *x, const float *mean, const float *rstd, const T *gamma,
                                 const T *beta, int B, const GroupNormPlan &p, void *workspace, cudaStream_t s,
                                 DiceError *err) {
    float2 *partials = (float2 *)workspace, *coef = (float2 *)((char *)workspace + p.partial_bytes);
    dim3 grid(p.chunks, B), block(p.tx, p.ty);
    if (p.smem_bytes > 48 * 1024)
        CUDA_TRY(err, cudaFuncSetAttribute((group_norm_backward_stats_kernel<T, VEC, SILU>),
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p.smem_bytes));
    DICE_LAUNCH((group_norm_backward_stats_kernel<T, VEC, SILU>), grid, block, p.smem_bytes, s, partials, dy, x, mean,
                rstd, gamma, beta, p.geo);
    CUDA_TRY(err, cudaGetLastError());
    int fin_blocks = (B * p.geo.G * 32 + GN_FINALIZE_THREADS - 1) / GN_FINALIZE_THREADS;
    DICE_LAUNCH(group_norm_backward_finalize_kernel, fin_blocks, GN_FINALIZE_THREADS, 0, s, coef, partials, p.geo, B,
                p.chunks);
    CUDA_TRY(err, cudaGetLastError());
    DICE_LAUNCH((group_norm_backward_apply_kernel<T, VEC, SILU>), grid, block, 0, s, dx, dy, x, mean, rstd, coef,
                gamma, beta, p.geo);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

// Calls f(TypeTag<T>{}, Int<VEC>{}) with the storage type of dtype and the vector width.
template <typename T>
struct TypeTag {
    typedef T type;
};
template <int N>
using Int = std::integral_constant<int, N>;
template <class F>
static int dispatch_storage(DType dtype, int vec, F f) {
    if (dtype == DT_BF16) return vec == 8 ? f(TypeTag<uint16_t>{}, Int<8>{}) : f(TypeTag<uint16_t>{}, Int<1>{});
    return vec == 4 ? f(TypeTag<float>{}, Int<4>{}) : f(TypeTag<float>{}, Int<1>{});
}

extern "C" int group_norm_forward_cuda(void *y, float *mean, float *rstd, const void *x, const void *gamma,
                                       const void *beta, int64_t B, int64_t S, int64_t C, int64_t G, double eps,
                                       bool silu, DType dtype, void *workspace, void *stream, DiceError *err) {
    GroupNormPlan p = {};
    const void *big[2] = {x, y};
    DICE_TRY(group_norm_setup(&p, big, 2, B, S, C, G, dtype, err));
    return dispatch_storage(dtype, p.vec, [&](auto t, auto v) {
        typedef typename decltype(t)::type T;
        auto run = [&](auto si) {
            return group_norm_forward_t<T, decltype(v)::value, decltype(si)::value>(
                (T *)y, mean, rstd, (const T *)x, (const T *)gamma, (const T *)beta, (int)B, (float)eps, p, workspace,
                (cudaStream_t)stream, err);
        };
        return silu ? run(std::true_type{}) : run(std::false_type{});
    });
}

extern "C" int group_norm_backward_cuda(void *dx, const void *dy, const void *x, const float *mean, const float *rstd,
                                        const void *gamma, const void *beta, int64_t B, int64_t S, int64_t C,
                                        int64_t G, bool silu, DType dtype, void *workspace, void *stream,
                                        DiceError *err) {
    GroupNormPlan p = {};
    const void *big[3] = {dx, dy, x};
    DICE_TRY(group_norm_setup(&p, big, 3, B, S, C, G, dtype, err));
    return dispatch_storage(dtype, p.vec, [&](auto t, auto v) {
        typedef typename decltype(t)::type T;
        auto run = [&](auto si) {
            return group_norm_backward_t<T, decltype(v)::value, decltype(si)::value>(
                (T *)dx, (const T *)dy, (const T *)x, mean, rstd, (const T *)gamma, (const T *)beta, (int)B, p,
                workspace, (cudaStream_t)stream, err);
        };
        return silu ? run(std::true_type{}) : run(std::false_type{});
    });
}

// ---------------------------------------------------------------- layer norm: a warp per row
enum { LN_THREADS = 256, LN_ROWS_PER_BLOCK = LN_THREADS / 32 };

// Rows are re-read from L1/L2 for the second and third passes (C is at most a few thousand): exact
// two-pass statistics without holding the row in registers.
template <typename T, int VEC>
__global__ void layer_norm_forward_kernel(T *y, float *mean, float *rstd, const T *x, const T *gamma, const T *beta,
                                          int64_t rows, int C, float eps) {
    const int64_t row = (int64_t)blockIdx.x * LN_ROWS_PER_BLOCK + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;  // whole warps
    const T *xr = x + row * C;
    float s = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC];
        dice_load_vec<T, VEC>(v, xr, c);
#pragma unroll
        for (int i = 0; i < VEC; i++) s += v[i];
    }
    const float m = dice_warp_sum(s) / (float)C;
    float q = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC];
        dice_load_vec<T, VEC>(v, xr, c);
#pragma unroll
        for (int i = 0; i < VEC; i++) q += (v[i] - m) * (v[i] - m);
    }
    const float r = rsqrtf(dice_warp_sum(q) / (float)C + eps);
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC];
        dice_load_vec<T, VEC>(v, xr, c);
#pragma unroll
        for (int i = 0; i < VEC; i++)
            v[i] = (v[i] - m) * r * (gamma ? dice_load_f32(gamma, c + i) : 1.0f) +
                   (beta ? dice_load_f32(beta, c + i) : 0.0f);
        dice_store_vec<T, VEC>(y, row * C + c, v);
    }
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = r;
    }
}

template <typename T, int VEC>
__global__ void layer_norm_backward_kernel(T *dx, const T *dy, const T *x, const float *mean, const float *rstd,
                                           const T *gamma, int64_t rows, int C) {
    const int64_t row = (int64_t)blockIdx.x * LN_ROWS_PER_BLOCK + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;  // whole warps
    const T *xr = x + row * C, *dyr = dy + row * C;
    const float m = mean[row], r = rstd[row];
    float a = 0.0f, q = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float xv[VEC], dv[VEC];
        dice_load_vec<T, VEC>(xv, xr, c);
        dice_load_vec<T, VEC>(dv, dyr, c);
#pragma unroll
        for (int i = 0; i < VEC; i++) {
            float gd = dv[i] * (gamma ? dice_load_f32(gamma, c + i) : 1.0f);
            a += gd;
            q += gd * (xv[i] - m) * r;
        }
    }
    a = dice_warp_sum(a) / (float)C;
    q = dice_warp_sum(q) / (float)C;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float xv[VEC], dv[VEC];
        dice_load_vec<T, VEC>(xv, xr, c);
        dice_load_vec<T, VEC>(dv, dyr, c);
#pragma unroll
        for (int i = 0; i < VEC; i++)
            dv[i] = r * (dv[i] * (gamma ? dice_load_f32(gamma, c + i) : 1.0f) - a - (xv[i] - m) * r * q);
        dice_store_vec<T, VEC>(dx, row * C + c, dv);
    }
}

static int layer_norm_setup(int *vec, int64_t *blocks, const void *const *big, int n_big, int64_t rows, int64_t C,
                            DType dtype, DiceError *err) {
    DICE_CHECK(err, dtype == DT_F32 || dtype == DT_BF16, "layer_norm (CUDA): dtype %s is not supported (f32, bf16)",
               dtype_name(dtype));
    DICE_CHECK(err, rows >= 0 && C > 0 && C <= INT32_MAX, "layer_norm (CUDA): bad shape (%lld rows of %lld)",
               (long long)rows, (long long)C);
    *vec = native_vec(dtype);
    bool ok = C % *vec == 0;
    for (int i = 0; i < n_big; i++) ok = ok && aligned16(big[i]);
    if (!ok) *vec = 1;
    *blocks = (rows + LN_ROWS_PER_BLOCK - 1) / LN_ROWS_PER_BLOCK;
    DICE_CHECK(err, *blocks <= INT32_MAX, "layer_norm (CUDA): %lld rows are too many", (long long)rows);
    return 0;
}

extern "C" int layer_norm_forward_cuda(void *y, float *mean, float *rstd, const void *x, const void *gamma,
                                       const void *beta, int64_t rows, int64_t C, double eps, DType dtype,
                                       void *stream, DiceError *err) {
    int vec = 1;
    int64_t blocks = 0;
    const void *big[2] = {x, y};
    DICE_TRY(layer_norm_setup(&vec, &blocks, big, 2, rows, C, dtype, err));
    if (rows == 0) return 0;
    return dispatch_storage(dtype, vec, [&](auto t, auto v) {
        typedef typename decltype(t)::type T;
        DICE_LAUNCH((layer_norm_forward_kernel<T, decltype(v)::value>), (unsigned)blocks, LN_THREADS, 0,
                    (cudaStream_t)stream, (T *)y, mean, rstd, (const T *)x, (const T *)gamma, (const T *)beta, rows,
                    (int)C, (float)eps);
        CUDA_TRY(err, cudaGetLastError());
        return 0;
    });
}

extern "C" int layer_norm_backward_cuda(void *dx, const void *dy, const void *x, const float *mean, const float *rstd,
                                        const void *gamma, int64_t rows, int64_t C, DType dtype, void *stream,
                                        DiceError *err) {
    int vec = 1;
    int64_t blocks = 0;
    const void *big[3] = {dx, dy, x};
    DICE_TRY(layer_norm_setup(&vec, &blocks, big, 3, rows, C, dtype, err));
    if (rows == 0) return 0;
    return dispatch_storage(dtype, vec, [&](auto t, auto v) {
        typedef typename decltype(t)::type T;
        DICE_LAUNCH((layer_norm_backward_kernel<T, decltype(v)::value>), (unsigned)blocks, LN_THREADS, 0,
                    (cudaStream_t)stream, (T *)dx, (const T *)dy, (const T *)x, mean, rstd, (const T *)gamma, rows,
                    (int)C);
        CUDA_TRY(err, cudaGetLastError());
        return 0;
    });
}
