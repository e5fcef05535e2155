// kernels/attention_bwd.cu — fused flash-attention backward on tensor cores (FlashAttention-2); the CPU
// twin is attention_backward_cpu in kernels/attention_cpu.c, the math is in kernels/attention.h.
//
// Three kernels:
//   attention_bwd_rowdot_kernel   Dl[b, h, i] = sum_d dout[b, i, h, d] * out[b, i, h, d]   (fp32)
//   attention_bwd_kernel          one block of 4 warps per (batch, head, tile of BLOCK_N = 64 keys); each
//                                 warp owns 16 keys and streams over the queries in tiles of BLOCK_M
//                                 (Q, dO, lse and Dl double-buffered with cp.async), recomputing
//                                   S^T = K Q^T, P^T = exp(S^T - lse)           (its 16 keys x BLOCK_M)
//                                   dV += P^T dO                                (registers, fp32)
//                                   dP^T = V dO^T, dS^T = P^T * (dP^T - Dl)
//                                   dK += dS^T Q                                (registers, fp32)
//                                   dQ += dS K  through shared memory (dS^T, bf16) and fp32 atomics
//                                 into a (B, Nq, H*D) fp32 accumulator
//   attention_bwd_dq_kernel       dq = bf16(scale * accumulator)
// For D > 96 the dV pass and the dK / dQ pass run as two launches, so that each keeps a single
// D-wide accumulator in registers.
#include "kernels/attention.h"
#include "kernels/attention_tiles.cuh"
#include "nn/cuda_api.h"

// Tile sizes per padded head dim, chosen so that no instantiation spills registers on sm_80 / sm_90.
template <int D_TILE>
struct AttnBwdConfig {
    static constexpr int WARPS = 4, THREADS = 32 * WARPS;
    static constexpr int BLOCK_N = 64;                      // keys per block, 16 per warp
    static constexpr int BLOCK_M = D_TILE <= 64 ? 64 : D_TILE <= 208 ? 32 : 16;  // queries per step
    static constexpr int STRIDE = D_TILE + 8;               // rows of the K, V, Q, dO tiles (elements)
    static constexpr int DS_STRIDE = BLOCK_M + 8;           // rows of the dS^T tile
    static constexpr bool FUSED = D_TILE <= 96;             // dV and dK / dQ in one pass
    static constexpr size_t SMEM = (size_t)(2 * BLOCK_N + 4 * BLOCK_M) * STRIDE * sizeof(uint16_t) +  // K V 2x(Q dO)
                                   (size_t)BLOCK_N * DS_STRIDE * sizeof(uint16_t) +                    // dS^T
                                   (size_t)4 * BLOCK_M * sizeof(float);                                // 2x(lse Dl)
};

// Dl for every (b, i, h): one warp per row of D elements, 8 per lane.
__global__ void attention_bwd_rowdot_kernel(AttentionShape s, float *dl, const uint16_t *dout, const uint16_t *out) {
    const int64_t rows = (int64_t)s.batch * s.n_q * s.heads;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32, D = s.head_dim;
    if (row >= rows) return;  // whole warps only: the shuffles below see all 32 lanes
    float acc = 0.0f;
    for (int c = lane * 8; c < D; c += 32 * 8) {
        uint4 a = *reinterpret_cast<const uint4 *>(dout + row * D + c);
        uint4 o = *reinterpret_cast<const uint4 *>(out + row * D + c);
        const uint32_t av[4] = {a.x, a.y, a.z, a.w}, ov[4] = {o.x, o.y, o.z, o.w};
        for (int e = 0; e < 4; e++)
            acc += dice_bf16_to_f32((uint16_t)(av[e] & 0xffffu)) * dice_bf16_to_f32((uint16_t)(ov[e] & 0xffffu)) +
                   dice_bf16_to_f32((uint16_t)(av[e] >> 16)) * dice_bf16_to_f32((uint16_t)(ov[e] >> 16));
    }
    acc = dice_warp_sum(acc);
    if (lane == 0) {
        const int h = (int)(row % s.heads), i = (int)(row / s.heads % s.n_q), b = (int)(row / s.heads / s.n_q);
        dl[((int64_t)b * s.heads + h) * s.n_q + i] = acc;
    }
}

// dq = bf16(scale * acc), elementwise over (B, Nq, H*D).
__global__ void attention_bwd_dq_kernel(uint16_t *dq, const float *acc, int64_t n, float scale) {
    DICE_GRID_STRIDE(i, n)
        dq[i] = dice_f32_to_bf16(acc[i] * scale);
}

// Q, dO rows [i0, i0 + BLOCK_M) into one buffer, with lse (log2 units; +inf past Nq) and Dl.
template <int D_TILE>
static __device__ __forceinline__ void attn_bwd_load_queries(const AttentionShape &s, int b, int h, int i0,
                                                             uint16_t *sQ, uint16_t *sdO, float *s_lse, float *s_dl,
                                                             const uint16_t *q, const uint16_t *dout,
                                                             const float *lse, const float *dl) {
    using Cfg = AttnBwdConfig<D_TILE>;
    const int D = s.head_dim;
    const int64_t C = (int64_t)s.heads * D;
    attn_load_tile<Cfg::BLOCK_M, D_TILE, Cfg::THREADS>(
        sQ, q + b * s.q_stride[0] + (int64_t)i0 * s.q_stride[1] + h * D, s.q_stride[1], s.n_q - i0, D);
    attn_load_tile<Cfg::BLOCK_M, D_TILE, Cfg::THREADS>(sdO, dout + ((int64_t)b * s.n_q + i0) * C + h * D, C,
                                                       s.n_q - i0, D);
    const int64_t base = ((int64_t)b * s.heads + h) * s.n_q;
    for (int r = threadIdx.x; r < Cfg::BLOCK_M; r += Cfg::THREADS) {
        const bool in = i0 + r < s.n_q;
        s_lse[r] = in ? lse[base + i0 + r] * 1.4426950408889634f : INFINITY;
        s_dl[r] = in ? dl[base + i0 + r] : 0.0f;
    }
}

template <int D_TILE, bool DO_DV, bool DO_DKDQ>
__global__ void __launch_bounds__(128) attention_bwd_kernel(AttentionShape s, uint16_t *dk, uint16_t *dv,
                                                             float *dq_acc, const uint16_t *dout, const uint16_t *q,
                                                             const uint16_t *k, const uint16_t *v, const float *lse,
                                                             const float *dl, const uint8_t *key_mask) {
    using Cfg = AttnBwdConfig<D_TILE>;
    constexpr int BLOCK_M = Cfg::BLOCK_M, BLOCK_N = Cfg::BLOCK_N, STRIDE = Cfg::STRIDE, DS_STRIDE = Cfg::DS_STRIDE;
    constexpr int Q_TILES = BLOCK_M / 8, D_TILES = D_TILE / 8;
    DICE_DYNAMIC_SMEM(uint16_t, smem);
    uint16_t *sK = smem;                           // (BLOCK_N, STRIDE)
    uint16_t *sV = sK + BLOCK_N * STRIDE;          // (BLOCK_N, STRIDE)
    uint16_t *sQ = sV + BLOCK_N * STRIDE;          // 2 x (BLOCK_M, STRIDE)
    uint16_t *sdO = sQ + 2 * BLOCK_M * STRIDE;     // 2 x (BLOCK_M, STRIDE)
    uint16_t *sdS = sdO + 2 * BLOCK_M * STRIDE;    // (BLOCK_N, DS_STRIDE): dS^T, keys x queries
    float *s_lse = reinterpret_cast<float *>(sdS + BLOCK_N * DS_STRIDE);  // 2 x BLOCK_M
    float *s_dl = s_lse + 2 * BLOCK_M;                                    // 2 x BLOCK_M

    const int D = s.head_dim, bh = blockIdx.y, b = bh / s.heads, h = bh % s.heads;
    const int k0 = blockIdx.x * BLOCK_N;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int64_t C = (int64_t)s.heads * D;
    const uint8_t *mask_b = key_mask ? key_mask + (int64_t)b * s.n_k : nullptr;
    const float scale_log2 = s.scale * 1.4426950408889634f;

    attn_load_tile<BLOCK_N, D_TILE, Cfg::THREADS>(sK, k + b * s.k_stride[0] + (int64_t)k0 * s.k_stride[1] + h * D,
                                                  s.k_stride[1], s.n_k - k0, D);
    attn_load_tile<BLOCK_N, D_TILE, Cfg::THREADS>(sV, v + b * s.v_stride[0] + (int64_t)k0 * s.v_stride[1] + h * D,
                                                  s.v_stride[1], s.n_k - k0, D);
    // Causal: queries before this key tile see none of its keys.
    const int q_begin = s.causal ? k0 / BLOCK_M * BLOCK_M : 0;
    const int n_steps = q_begin < s.n_q ? (s.n_q - q_begin + BLOCK_M - 1) / BLOCK_M : 0;
    if (n_steps > 0) attn_bwd_load_queries<D_TILE>(s, b, h, q_begin, sQ, sdO, s_lse, s_dl, q, dout, lse, dl);
    dice_cp_async_commit();

    float acc_dv[DO_DV ? D_TILES : 1][4], acc_dk[DO_DKDQ ? D_TILES : 1][4];  // rows g, g + 8 of the warp's keys
#pragma unroll
    for (int dt = 0; dt < D_TILES; dt++) {
        if constexpr (DO_DV) attn_zero(acc_dv[dt]);
        if constexpr (DO_DKDQ) attn_zero(acc_dk[dt]);
    }
    const int key_row0 = warp * 16;  // the warp's keys in the tile

    for (int step = 0; step < n_steps; step++) {
        const int i0 = q_begin + step * BLOCK_M, buf = step & 1;
        if (step + 1 < n_steps) {
            const int nb = buf ^ 1;
            attn_bwd_load_queries<D_TILE>(s, b, h, i0 + BLOCK_M, sQ + nb * BLOCK_M * STRIDE,
                                          sdO + nb * BLOCK_M * STRIDE, s_lse + nb * BLOCK_M, s_dl + nb * BLOCK_M, q,
                                          dout, lse, dl);
            dice_cp_async_commit();
            dice_cp_async_wait<1>();
        } else {
            dice_cp_async_wait<0>();
        }
        __syncthreads();
        const uint16_t *sQi = sQ + buf * BLOCK_M * STRIDE, *sdOi = sdO + buf * BLOCK_M * STRIDE;
        const float *lse_i = s_lse + buf * BLOCK_M, *dl_i = s_dl + buf * BLOCK_M;

        // S^T (16 keys, BLOCK_M queries) = K Q^T, then P^T = exp2(S^T scale log2 e - lse log2 e), 0 if invisible.
        float p[Q_TILES][4];
        attn_mma_abt<STRIDE, D_TILE>(p, sK, key_row0, sQi, lane);
#pragma unroll
        for (int nt = 0; nt < Q_TILES; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int qi = nt * 8 + 2 * t + (e & 1), key = k0 + key_row0 + g + 8 * (e >> 1);
                p[nt][e] = attn_visible(i0 + qi, key, s.n_q, s.n_k, s.causal, mask_b)
                               ? exp2f(p[nt][e] * scale_log2 - lse_i[qi])
                               : 0.0f;
            }

        if constexpr (DO_DV) attn_mma_acc_cb<STRIDE>(acc_dv, p, sdOi, D, lane);  // dV (16 keys, D) += P^T dO

        if constexpr (DO_DKDQ) {
            // dP^T (16 keys, BLOCK_M) = V dO^T; dS^T = P^T * (dP^T - Dl), kept in p.
            float dp_acc[Q_TILES][4];
            attn_mma_abt<STRIDE, D_TILE>(dp_acc, sV, key_row0, sdOi, lane);
#pragma unroll
            for (int nt = 0; nt < Q_TILES; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) p[nt][e] *= dp_acc[nt][e] - dl_i[nt * 8 + 2 * t + (e & 1)];
                // dS^T to shared memory for dQ (rows: keys, columns: queries)
                *reinterpret_cast<uint32_t *>(sdS + (key_row0 + g) * DS_STRIDE + nt * 8 + 2 * t) =
                    dice_pack_bf16x2(p[nt][0], p[nt][1]);
                *reinterpret_cast<uint32_t *>(sdS + (key_row0 + g + 8) * DS_STRIDE + nt * 8 + 2 * t) =
                    dice_pack_bf16x2(p[nt][2], p[nt][3]);
            }
            attn_mma_acc_cb<STRIDE>(acc_dk, p, sQi, D, lane);  // dK (16 keys, D) += dS^T Q
            __syncthreads();  // dS^T complete
            if (dq_acc) {
                // dQ (BLOCK_M, D) += dS K over the block's 64 keys: warp -> (16-row query tile, every
                // WD-th pair of d-tiles), results added to the fp32 accumulator with atomics.
                constexpr int WM = BLOCK_M / 16, WD = Cfg::WARPS / WM;
                const int mq = warp % WM;
                uint32_t a[BLOCK_N / 16][4];
#pragma unroll
                for (int ks = 0; ks < BLOCK_N / 16; ks++) attn_ldm_a_t<DS_STRIDE>(a[ks], sdS, mq * 16, ks * 16, lane);
                for (int dp = warp / WM; dp < D_TILE / 16; dp += WD) {
                    float acc[2][4];
                    attn_zero(acc[0]);
                    attn_zero(acc[1]);
#pragma unroll
                    for (int ks = 0; ks < BLOCK_N / 16; ks++) {
                        uint32_t bf[4];
                        attn_ldm_b_kn<STRIDE>(bf, sK, ks * 16, dp * 16, lane);
                        dice_mma_m16n8k16_bf16(acc[0], a[ks], bf, acc[0]);
                        dice_mma_m16n8k16_bf16(acc[1], a[ks], bf + 2, acc[1]);
                    }
#pragma unroll
                    for (int sub = 0; sub < 2; sub++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const int qi = i0 + mq * 16 + g + 8 * (e >> 1), d = (2 * dp + sub) * 8 + 2 * t + (e & 1);
                            if (qi < s.n_q && d < D)
                                atomicAdd(dq_acc + ((int64_t)b * s.n_q + qi) * C + h * D + d, acc[sub][e]);
                        }
                }
            }
        }
        __syncthreads();  // buffers of this step (and dS^T) are free for step + 2
    }
    dice_cp_async_wait<0>();  // with no step (causal, keys past every query) the K, V copies are still pending

    // Epilogue: rows g and g + 8 of the warp's keys, bf16, dK scaled.
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        const int key = k0 + key_row0 + g + 8 * hf;
        if (key >= s.n_k) continue;
        const int64_t row = ((int64_t)b * s.n_k + key) * C + h * D;
#pragma unroll
        for (int dt = 0; dt < D_TILES; dt++) {
            const int d = dt * 8 + 2 * t;
            if (d >= D) continue;
            if constexpr (DO_DV)
                if (dv)
                    *reinterpret_cast<uint32_t *>(dv + row + d) =
                        dice_pack_bf16x2(acc_dv[dt][2 * hf], acc_dv[dt][2 * hf + 1]);
            if constexpr (DO_DKDQ)
                if (dk)
                    *reinterpret_cast<uint32_t *>(dk + row + d) =
                        dice_pack_bf16x2(acc_dk[dt][2 * hf] * s.scale, acc_dk[dt][2 * hf + 1] * s.scale);
        }
    }
}

template <int D_TILE, bool DO_DV, bool DO_DKDQ>
static int launch_attention_bwd(const AttentionShape *s, uint16_t *dk, uint16_t *dv, float *dq_acc,
                                const uint16_t *dout, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                const float *lse, const float *dl, const uint8_t *key_mask, cudaStream_t stream,
                                DiceError *err) {
    using Cfg = AttnBwdConfig<D_TILE>;
    CUDA_TRY(err, cudaFuncSetAttribute(attention_bwd_kernel<D_TILE, DO_DV, DO_DKDQ>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)Cfg::SMEM));
    dim3 grid((s->n_k + Cfg::BLOCK_N - 1) / Cfg::BLOCK_N, s->batch * s->heads);
    DICE_LAUNCH((attention_bwd_kernel<D_TILE, DO_DV, DO_DKDQ>), grid, dim3(Cfg::THREADS), Cfg::SMEM, stream, *s, dk,
                dv, dq_acc, dout, q, k, v, lse, dl, key_mask);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

// The dV pass and the dK / dQ pass: fused for D <= 96, else two launches.
template <int D_TILE>
static int launch_attention_bwd_passes(const AttentionShape *s, uint16_t *dk, uint16_t *dv, float *dq_acc,
                                       const uint16_t *dout, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                       const float *lse, const float *dl, const uint8_t *key_mask,
                                       cudaStream_t stream, DiceError *err) {
    if constexpr (AttnBwdConfig<D_TILE>::FUSED) {
        return launch_attention_bwd<D_TILE, true, true>(s, dk, dv, dq_acc, dout, q, k, v, lse, dl, key_mask, stream,
                                                        err);
    } else {
        if (dv)
            DICE_TRY((launch_attention_bwd<D_TILE, true, false>(s, dk, dv, dq_acc, dout, q, k, v, lse, dl, key_mask,
                                                                stream, err)));
        if (dk || dq_acc)
            DICE_TRY((launch_attention_bwd<D_TILE, false, true>(s, dk, dv, dq_acc, dout, q, k, v, lse, dl, key_mask,
                                                                stream, err)));
        return 0;
    }
}

// Workspace: the fp32 dQ accumulator (B, Nq, H*D), then Dl (B, H, Nq), each 256-byte aligned.
static size_t dq_acc_bytes(const AttentionShape *s) {
    size_t n = (size_t)s->batch * s->n_q * s->heads * s->head_dim * sizeof(float);
    return (n + 255) / 256 * 256;
}

extern "C" size_t attention_backward_cuda_workspace(const AttentionShape *s) {
    return dq_acc_bytes(s) + (size_t)s->batch * s->heads * s->n_q * sizeof(float);
}

extern "C" int attention_backward_cuda(const AttentionShape *s, uint16_t *dq, uint16_t *dk, uint16_t *dv,
                                       const uint16_t *dout, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                       const uint16_t *out, const float *lse, const uint8_t *key_mask,
                                       void *workspace, void *stream, DiceError *err) {
    DICE_TRY(attn_check_shape(s, q, k, v, err));
    if (!dq && !dk && !dv) return 0;
    cudaStream_t st = (cudaStream_t)stream;
    const int64_t n_dq = (int64_t)s->batch * s->n_q * s->heads * s->head_dim;
    float *dq_acc = dq ? (float *)workspace : nullptr;
    float *dl = (float *)((unsigned char *)workspace + dq_acc_bytes(s));
    if (dq) CUDA_TRY(err, cudaMemsetAsync(dq_acc, 0, (size_t)n_dq * sizeof(float), st));
    const int64_t rows = (int64_t)s->batch * s->n_q * s->heads;
    if (rows > 0) {
        DICE_LAUNCH(attention_bwd_rowdot_kernel, (unsigned)((rows + 7) / 8), 256, 0, st, *s, dl, dout, out);
        CUDA_TRY(err, cudaGetLastError());
    }
    if (s->n_k > 0 && s->batch > 0) {
#define ATTN_BWD(DT) \
    DICE_TRY(launch_attention_bwd_passes<DT>(s, dk, dv, dq_acc, dout, q, k, v, lse, dl, key_mask, st, err))
        ATTN_DISPATCH_D_TILE(s->head_dim, ATTN_BWD)
#undef ATTN_BWD
    }
    if (dq && n_dq > 0) {
        const int block = 256;
        DICE_LAUNCH(attention_bwd_dq_kernel, dice_grid_1d(n_dq, block), block, 0, st, dq, dq_acc, n_dq, s->scale);
        CUDA_TRY(err, cudaGetLastError());
    }
    return 0;
}
