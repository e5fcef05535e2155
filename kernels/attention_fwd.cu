// kernels/attention_fwd.cu — fused flash-attention forward on tensor cores (FlashAttention-2 style);
// the CPU twin is attention_forward_cpu in kernels/attention_cpu.c, the math is in kernels/attention.h.
//
// One block of 4 warps owns BLOCK_M query rows of one (batch, head) and streams over the keys in tiles
// of BLOCK_N, never materialising the Nq x Nk scores:
//   Q tile (BLOCK_M, D) in shared memory; K and V tiles double-buffered (cp.async: tile j + 1 loads
//   while tile j is computed); each warp owns 16 * M_TILES query rows and keeps in registers
//     S = Q K^T (its rows x BLOCK_N, fp32) -> online softmax in the log2 domain (running max m and
//     running sum l per row, fp32) -> P rounded to bf16 and fed straight back as the A operand of
//     O += P V (its rows x D, fp32).
// The epilogue divides O by l, stages it through the warp's own rows of the Q tile for 16-byte stores,
// and writes lse = (m + log2 l) ln 2 per row for the backward. Rows with no visible key: O = 0, lse = +inf.
// Causal blocks stop at their last row's diagonal, and the grid runs the longest (last) query blocks first.
#include "kernels/attention.h"
#include "kernels/attention_tiles.cuh"
#include "nn/cuda_api.h"

// Tile sizes per padded head dim, chosen so that no instantiation spills registers on sm_80 / sm_90
// (ptxas -v): a thread holds M_TILES * BLOCK_N / 2 scores and M_TILES * D_TILE / 2 outputs in fp32.
template <int D_TILE>
struct AttnFwdConfig {
    static constexpr int WARPS = 4, THREADS = 32 * WARPS;
    static constexpr int M_TILES = D_TILE <= 96 ? 2 : 1;        // 16-row mma tiles per warp
    static constexpr int BLOCK_M = WARPS * 16 * M_TILES;        // 128 query rows (64 for D > 96)
    static constexpr int BLOCK_N =                              // keys per tile
        (D_TILE <= 64 || (D_TILE > 96 && D_TILE <= 176)) ? 64 : D_TILE <= 208 ? 32 : 16;
    static constexpr int STRIDE = D_TILE + 8;                   // shared-memory row stride (elements)
    static constexpr size_t SMEM = (size_t)(BLOCK_M + 4 * BLOCK_N) * STRIDE * sizeof(uint16_t);  // Q, 2 x (K, V)
};

template <int D_TILE>
__global__ void __launch_bounds__(128) attention_fwd_kernel(AttentionShape s, uint16_t *out, float *lse,
                                                             const uint16_t *q, const uint16_t *k,
                                                             const uint16_t *v, const uint8_t *key_mask) {
    using Cfg = AttnFwdConfig<D_TILE>;
    constexpr int M_TILES = Cfg::M_TILES, BLOCK_M = Cfg::BLOCK_M, BLOCK_N = Cfg::BLOCK_N, STRIDE = Cfg::STRIDE;
    constexpr int N_TILES = BLOCK_N / 8, D_TILES = D_TILE / 8;
    DICE_DYNAMIC_SMEM(uint16_t, smem);
    uint16_t *sQ = smem;                          // (BLOCK_M, STRIDE)
    uint16_t *sK = sQ + BLOCK_M * STRIDE;         // 2 x (BLOCK_N, STRIDE)
    uint16_t *sV = sK + 2 * BLOCK_N * STRIDE;     // 2 x (BLOCK_N, STRIDE)

    const int D = s.head_dim, bh = blockIdx.y, b = bh / s.heads, h = bh % s.heads;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BLOCK_M;  // longest causal blocks first
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int warp_row0 = warp * 16 * M_TILES;              // first row of this warp in the tile
    const uint16_t *kg = k + b * s.k_stride[0] + h * D, *vg = v + b * s.v_stride[0] + h * D;
    const uint8_t *mask_b = key_mask ? key_mask + (int64_t)b * s.n_k : nullptr;
    const int key_end = s.causal ? min(s.n_k, q0 + BLOCK_M) : s.n_k;
    const int n_tiles = (key_end + BLOCK_N - 1) / BLOCK_N;
    const float scale_log2 = s.scale * 1.4426950408889634f;  // scores in log2 units: exp(x) = exp2(x log2 e)

    attn_load_tile<BLOCK_M, D_TILE, Cfg::THREADS>(sQ, q + b * s.q_stride[0] + (int64_t)q0 * s.q_stride[1] + h * D,
                                                  s.q_stride[1], s.n_q - q0, D);
    attn_load_tile<BLOCK_N, D_TILE, Cfg::THREADS>(sK, kg, s.k_stride[1], s.n_k, D);
    attn_load_tile<BLOCK_N, D_TILE, Cfg::THREADS>(sV, vg, s.v_stride[1], s.n_k, D);
    dice_cp_async_commit();

    float o[M_TILES][D_TILES][4];                       // O accumulators: rows g, g + 8 of each 16-row tile
    float row_max[M_TILES][2], row_sum[M_TILES][2];     // running max (log2 units) and partial row sums
#pragma unroll
    for (int mt = 0; mt < M_TILES; mt++) {
#pragma unroll
        for (int dt = 0; dt < D_TILES; dt++) attn_zero(o[mt][dt]);
        row_max[mt][0] = row_max[mt][1] = -INFINITY;
        row_sum[mt][0] = row_sum[mt][1] = 0.0f;
    }

    for (int j = 0; j < n_tiles; j++) {
        const int k0 = j * BLOCK_N;
        if (j + 1 < n_tiles) {  // prefetch tile j + 1 into the other buffer
            const int nb = (j + 1) & 1, k1 = k0 + BLOCK_N;
            attn_load_tile<BLOCK_N, D_TILE, Cfg::THREADS>(sK + nb * BLOCK_N * STRIDE, kg + k1 * s.k_stride[1],
                                                          s.k_stride[1], s.n_k - k1, D);
            attn_load_tile<BLOCK_N, D_TILE, Cfg::THREADS>(sV + nb * BLOCK_N * STRIDE, vg + k1 * s.v_stride[1],
                                                          s.v_stride[1], s.n_k - k1, D);
            dice_cp_async_commit();
            dice_cp_async_wait<1>();
        } else {
            dice_cp_async_wait<0>();
        }
        __syncthreads();
        const uint16_t *sKj = sK + (j & 1) * BLOCK_N * STRIDE, *sVj = sV + (j & 1) * BLOCK_N * STRIDE;

        // S (warp rows, BLOCK_N) = Q K^T, summing over D_TILE in k-steps of 16
        float sc[M_TILES][N_TILES][4];
#pragma unroll
        for (int mt = 0; mt < M_TILES; mt++)
#pragma unroll
            for (int nt = 0; nt < N_TILES; nt++) attn_zero(sc[mt][nt]);
#pragma unroll
        for (int ks = 0; ks < D_TILE / 16; ks++) {
            uint32_t a[M_TILES][4];
#pragma unroll
            for (int mt = 0; mt < M_TILES; mt++) attn_ldm_a<STRIDE>(a[mt], sQ, warp_row0 + mt * 16, ks * 16, lane);
#pragma unroll
            for (int np = 0; np < N_TILES / 2; np++) {
                uint32_t bf[4];
                attn_ldm_b_nk<STRIDE>(bf, sKj, np * 16, ks * 16, lane);
#pragma unroll
                for (int mt = 0; mt < M_TILES; mt++) {
                    dice_mma_m16n8k16_bf16(sc[mt][2 * np], a[mt], bf, sc[mt][2 * np]);
                    dice_mma_m16n8k16_bf16(sc[mt][2 * np + 1], a[mt], bf + 2, sc[mt][2 * np + 1]);
                }
            }
        }

        // Scale to log2 units; mask the tile where it holds invisible keys (ragged end, diagonal, padding).
        const bool need_mask =
            k0 + BLOCK_N > s.n_k || (s.causal && k0 + BLOCK_N - 1 > q0 + warp_row0) || mask_b != nullptr;
#pragma unroll
        for (int mt = 0; mt < M_TILES; mt++)
#pragma unroll
            for (int nt = 0; nt < N_TILES; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    sc[mt][nt][i] *= scale_log2;
                    if (need_mask) {
                        int row = q0 + warp_row0 + mt * 16 + g + 8 * (i >> 1), col = k0 + nt * 8 + 2 * t + (i & 1);
                        if (!attn_visible(row, col, s.n_q, s.n_k, s.causal, mask_b))
                            sc[mt][nt][i] = -INFINITY;
                    }
                }

        // Online softmax: new running max, rescale O and the sums, P = exp2(S - max).
#pragma unroll
        for (int mt = 0; mt < M_TILES; mt++)
#pragma unroll
            for (int hf = 0; hf < 2; hf++) {
                float mx = row_max[mt][hf];
#pragma unroll
                for (int nt = 0; nt < N_TILES; nt++)
                    mx = fmaxf(mx, fmaxf(sc[mt][nt][2 * hf], sc[mt][nt][2 * hf + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));  // the 4 lanes of a quad share a row
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float ref = mx == -INFINITY ? 0.0f : mx;        // no visible key yet: keep P = 0, no NaN
                const float alpha = exp2f(row_max[mt][hf] - ref);
                row_max[mt][hf] = mx;
                float sum = 0.0f;
#pragma unroll
                for (int nt = 0; nt < N_TILES; nt++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        float p = exp2f(sc[mt][nt][2 * hf + e] - ref);
                        sc[mt][nt][2 * hf + e] = p;
                        sum += p;
                    }
                row_sum[mt][hf] = row_sum[mt][hf] * alpha + sum;
#pragma unroll
                for (int dt = 0; dt < D_TILES; dt++) {
                    o[mt][dt][2 * hf] *= alpha;
                    o[mt][dt][2 * hf + 1] *= alpha;
                }
            }

        // O += P V: P (warp rows, BLOCK_N) from registers, V (BLOCK_N, D) by transposing ldmatrix.
#pragma unroll
        for (int kk = 0; kk < BLOCK_N / 16; kk++) {
            uint32_t a[M_TILES][4];
#pragma unroll
            for (int mt = 0; mt < M_TILES; mt++) attn_pack_a(a[mt], sc[mt][2 * kk], sc[mt][2 * kk + 1]);
#pragma unroll
            for (int dp = 0; dp < D_TILE / 16; dp++) {
                uint32_t bf[4];
                attn_ldm_b_kn<STRIDE>(bf, sVj, kk * 16, dp * 16, lane);
#pragma unroll
                for (int mt = 0; mt < M_TILES; mt++) {
                    dice_mma_m16n8k16_bf16(o[mt][2 * dp], a[mt], bf, o[mt][2 * dp]);
                    if ((2 * dp + 1) * 8 < D)  // the n-tile past D of an odd D / 8 is padding
                        dice_mma_m16n8k16_bf16(o[mt][2 * dp + 1], a[mt], bf + 2, o[mt][2 * dp + 1]);
                }
            }
        }
        __syncthreads();  // every warp is done with buffer j & 1 before tile j + 2 is loaded into it
    }

    // Epilogue: O / l into the warp's own rows of sQ (bf16), lse per row, then 16-byte stores.
#pragma unroll
    for (int mt = 0; mt < M_TILES; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            float l = row_sum[mt][hf];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            const float inv = l > 0.0f ? 1.0f / l : 0.0f;
            const int r = warp_row0 + mt * 16 + g + 8 * hf;
#pragma unroll
            for (int dt = 0; dt < D_TILES; dt++)
                *reinterpret_cast<uint32_t *>(sQ + r * STRIDE + dt * 8 + 2 * t) =
                    dice_pack_bf16x2(o[mt][dt][2 * hf] * inv, o[mt][dt][2 * hf + 1] * inv);
            if (t == 0 && q0 + r < s.n_q)
                lse[(int64_t)bh * s.n_q + q0 + r] = l > 0.0f ? (row_max[mt][hf] + log2f(l)) * 0.6931471805599453f
                                                             : INFINITY;
        }
    __syncwarp();
    const int64_t C = (int64_t)s.heads * D;
    const int chunks = D / 8;
    for (int c = lane; c < 16 * M_TILES * chunks; c += 32) {
        const int r = warp_row0 + c / chunks, col = (c % chunks) * 8;
        if (q0 + r < s.n_q)
            *reinterpret_cast<uint4 *>(out + ((int64_t)b * s.n_q + q0 + r) * C + h * D + col) =
                *reinterpret_cast<const uint4 *>(sQ + r * STRIDE + col);
    }
}

template <int D_TILE>
static int launch_attention_fwd(const AttentionShape *s, uint16_t *out, float *lse, const uint16_t *q,
                                const uint16_t *k, const uint16_t *v, const uint8_t *key_mask, cudaStream_t stream,
                                DiceError *err) {
    using Cfg = AttnFwdConfig<D_TILE>;
    CUDA_TRY(err, cudaFuncSetAttribute(attention_fwd_kernel<D_TILE>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)Cfg::SMEM));
    dim3 grid((s->n_q + Cfg::BLOCK_M - 1) / Cfg::BLOCK_M, s->batch * s->heads);
    DICE_LAUNCH((attention_fwd_kernel<D_TILE>), grid, dim3(Cfg::THREADS), Cfg::SMEM, stream, *s, out, lse, q, k, v,
                key_mask);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int attention_forward_cuda(const AttentionShape *s, uint16_t *out, float *lse, const uint16_t *q,
                                      const uint16_t *k, const uint16_t *v, const uint8_t *key_mask, void *stream,
                                      DiceError *err) {
    DICE_TRY(attn_check_shape(s, q, k, v, err));
    DICE_CHECK(err, s->n_k > 0, "attention (CUDA): no keys");
    if (s->n_q == 0 || s->batch == 0) return 0;
    cudaStream_t st = (cudaStream_t)stream;
#define ATTN_FWD(DT) DICE_TRY(launch_attention_fwd<DT>(s, out, lse, q, k, v, key_mask, st, err))
    ATTN_DISPATCH_D_TILE(s->head_dim, ATTN_FWD)
#undef ATTN_FWD
    return 0;
}
