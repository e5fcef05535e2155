// kernels/attention_tiles.cuh — what the flash-attention kernels (attention_fwd.cu, attention_bwd.cu)
// share: the tile loader (cp.async, kernels/cuda_common.cuh), the ldmatrix addressing of the mma fragments,
// and the dispatch over the padded head dim.
//
// Head dims. A kernel is instantiated per D_TILE = D rounded up to a multiple of 16 (16, 32, ..., 256).
// Shared-memory tiles hold D_TILE columns, of which [D, D_TILE) are zero-filled: the products that sum
// over the head dim (Q K^T, dO V^T) take k-steps of 16 over D_TILE (D = 40: 48, not 64), and the products
// whose output columns are the head dim (P V, dS K, P^T dO, dS^T Q) skip the 8-column n-tiles past D, so
// D = 40 costs 40 columns there. Rows are padded to D_TILE + 8 elements: consecutive rows then start
// 4 words apart modulo 32 banks, so the 8 row addresses of an ldmatrix hit distinct banks.
//
// Fragments (kernels/cuda_common.cuh documents the mma / ldmatrix layouts). For a tile stored row-major
// in shared memory with row stride STRIDE:
//   attn_ldm_a:      A (16 x 16) at (row0, col0), as the A operand             (ldmatrix.x4)
//   attn_ldm_b_nk:   two n-tiles of B with B[k][n] = T[n][k] (T rows = the n index; K in Q K^T)
//   attn_ldm_b_kn:   two n-tiles of B with B[k][n] = T[k][n] (T rows = the k index; V in P V) (.trans)
//   attn_ldm_a_t:    A with A[m][k] = T[k][m] (A^T stored row-major; dS^T in dS K)   (.x4.trans)
// and attn_pack_a turns the fp32 accumulators of two adjacent 16x8 n-tiles (a 16 x 16 block of C) into
// the bf16 A fragment of the next product (P in P V, without going through shared memory). attn_mma_abt is
// one warp's 16-row product A B^T of two such tiles over the head dim (K Q^T, V dO^T in the backward), and
// attn_mma_acc_cb accumulates C B from 16 rows of accumulators C and a tile B (P^T dO, dS^T Q).
#pragma once
#include "kernels/cuda_common.cuh"
#include "kernels/attention.h"

// smem (ROWS, D_TILE + 8) <- rows [0, valid_rows) and columns [0, d) of a bf16 matrix at g with row stride
// ld (elements); rows >= valid_rows and columns >= d are zero-filled. Every thread of the block calls it.
template <int ROWS, int D_TILE, int THREADS>
static __device__ __forceinline__ void attn_load_tile(uint16_t *smem, const uint16_t *g, int64_t ld, int valid_rows,
                                                      int d) {
    constexpr int CHUNKS = D_TILE / 8, STRIDE = D_TILE + 8;
    for (int c = threadIdx.x; c < ROWS * CHUNKS; c += THREADS) {
        int r = c / CHUNKS, col = (c % CHUNKS) * 8;
        uint16_t *dst = smem + r * STRIDE + col;
        if (r < valid_rows && col < d)
            dice_cp_async16(dst, g + r * ld + col);
        else
            *reinterpret_cast<uint4 *>(dst) = make_uint4(0u, 0u, 0u, 0u);
    }
}

// lane's ldmatrix row address: lane 8 m + r gives row r of 8x8 matrix m.
template <int STRIDE>
static __device__ __forceinline__ void attn_ldm_a(uint32_t a[4], const uint16_t *tile, int row0, int col0, int lane) {
    // matrices: (rows +0, cols +0), (rows +8, cols +0), (rows +0, cols +8), (rows +8, cols +8)
    dice_ldmatrix_x4(a, tile + (row0 + ((lane >> 3) & 1) * 8 + (lane & 7)) * STRIDE + col0 + (lane >> 4) * 8);
}
template <int STRIDE>
static __device__ __forceinline__ void attn_ldm_b_nk(uint32_t b[4], const uint16_t *tile, int n0, int k0, int lane) {
    // b[0..1]: n-tile at n0, b[2..3]: n-tile at n0 + 8; matrices (n +0, k +0), (n +0, k +8), (n +8, k +0), ...
    dice_ldmatrix_x4(b, tile + (n0 + (lane >> 4) * 8 + (lane & 7)) * STRIDE + k0 + ((lane >> 3) & 1) * 8);
}
template <int STRIDE>
static __device__ __forceinline__ void attn_ldm_b_kn(uint32_t b[4], const uint16_t *tile, int k0, int n0, int lane) {
    // b[0..1]: n-tile at n0, b[2..3]: n-tile at n0 + 8; matrices (k +0, n +0), (k +8, n +0), (k +0, n +8), ...
    dice_ldmatrix_x4_trans(b, tile + (k0 + ((lane >> 3) & 1) * 8 + (lane & 7)) * STRIDE + n0 + (lane >> 4) * 8);
}
template <int STRIDE>
static __device__ __forceinline__ void attn_ldm_a_t(uint32_t a[4], const uint16_t *tile, int m0, int k0, int lane) {
    // A[m][k] = T[k][m]; matrices (m +0, k +0), (m +8, k +0), (m +0, k +8), (m +8, k +8) of A
    dice_ldmatrix_x4_trans(a, tile + (k0 + (lane >> 4) * 8 + (lane & 7)) * STRIDE + m0 + ((lane >> 3) & 1) * 8);
}

// A fragment (16 x 16, bf16) from the fp32 accumulators c0 (columns 0-7) and c1 (columns 8-15).
static __device__ __forceinline__ void attn_pack_a(uint32_t a[4], const float c0[4], const float c1[4]) {
    a[0] = dice_pack_bf16x2(c0[0], c0[1]);
    a[1] = dice_pack_bf16x2(c0[2], c0[3]);
    a[2] = dice_pack_bf16x2(c1[0], c1[1]);
    a[3] = dice_pack_bf16x2(c1[2], c1[3]);
}

static __device__ __forceinline__ void attn_zero(float c[4]) { c[0] = c[1] = c[2] = c[3] = 0.0f; }

// acc (16 rows, ACC_TILES n-tiles of 8: the head dim) += C B, with C (16 rows, C_TILES * 8) the warp's fp32
// accumulators (packed to bf16 A fragments) and B (C_TILES * 8 rows, STRIDE) row-major in shared memory (B's rows
// are the k index, as V in P V). The n-tile past d of an odd d / 8 is padding and skipped.
template <int STRIDE, int ACC_TILES, int C_TILES>
static __device__ __forceinline__ void attn_mma_acc_cb(float (&acc)[ACC_TILES][4], const float (&c)[C_TILES][4],
                                                       const uint16_t *b_tile, int d, int lane) {
#pragma unroll
    for (int kk = 0; kk < C_TILES / 2; kk++) {
        uint32_t a[4];
        attn_pack_a(a, c[2 * kk], c[2 * kk + 1]);
#pragma unroll
        for (int dp = 0; dp < ACC_TILES / 2; dp++) {
            uint32_t bf[4];
            attn_ldm_b_kn<STRIDE>(bf, b_tile, kk * 16, dp * 16, lane);
            dice_mma_m16n8k16_bf16(acc[2 * dp], a, bf, acc[2 * dp]);
            if ((2 * dp + 1) * 8 < d) dice_mma_m16n8k16_bf16(acc[2 * dp + 1], a, bf + 2, acc[2 * dp + 1]);
        }
    }
}

// acc (16 rows from row0 of A, N_TILES n-tiles of 8) = A B^T over the D_TILE columns of A (rows, STRIDE) and
// B (N_TILES * 8 rows, STRIDE), both row-major in shared memory (B's rows are the n index, as K in Q K^T).
template <int STRIDE, int D_TILE, int N_TILES>
static __device__ __forceinline__ void attn_mma_abt(float (&acc)[N_TILES][4], const uint16_t *a_tile, int row0,
                                                    const uint16_t *b_tile, int lane) {
#pragma unroll
    for (int nt = 0; nt < N_TILES; nt++) attn_zero(acc[nt]);
#pragma unroll
    for (int ks = 0; ks < D_TILE / 16; ks++) {
        uint32_t a[4];
        attn_ldm_a<STRIDE>(a, a_tile, row0, ks * 16, lane);
#pragma unroll
        for (int np = 0; np < N_TILES / 2; np++) {
            uint32_t bf[4];
            attn_ldm_b_nk<STRIDE>(bf, b_tile, np * 16, ks * 16, lane);
            dice_mma_m16n8k16_bf16(acc[2 * np], a, bf, acc[2 * np]);
            dice_mma_m16n8k16_bf16(acc[2 * np + 1], a, bf + 2, acc[2 * np + 1]);
        }
    }
}

// Key j visible to query i (see kernels/attention.h).
static __device__ __forceinline__ bool attn_visible(int i, int j, int n_q, int n_k, int causal, const uint8_t *mask_b) {
    return i < n_q && j < n_k && (!causal || j <= i) && (!mask_b || mask_b[j]);
}

// Host-side checks shared by the launchers: head dim, grid limits, and the 16-byte alignment of every
// row that cp.async and the vector stores touch.
static inline int attn_check_shape(const AttentionShape *s, const void *q, const void *k, const void *v,
                                   DiceError *err) {
    DICE_CHECK(err, s->head_dim % 8 == 0 && s->head_dim >= 8 && s->head_dim <= ATTENTION_MAX_HEAD_DIM_CUDA,
               "attention (CUDA): head dim %d is not a multiple of 8 in [8, %d]", s->head_dim,
               ATTENTION_MAX_HEAD_DIM_CUDA);
    DICE_CHECK(err, (int64_t)s->batch * s->heads <= 65535, "attention (CUDA): batch x heads = %d x %d exceeds 65535",
               s->batch, s->heads);
    const int64_t strides[6] = {s->q_stride[0], s->q_stride[1], s->k_stride[0], s->k_stride[1], s->v_stride[0],
                                s->v_stride[1]};
    bool aligned = (uintptr_t)q % 16 == 0 && (uintptr_t)k % 16 == 0 && (uintptr_t)v % 16 == 0;
    for (int i = 0; i < 6; i++) aligned = aligned && strides[i] % 8 == 0;
    DICE_CHECK(err, aligned, "attention (CUDA): q, k, v need 16-byte aligned rows (strides a multiple of 8)");
    return 0;
}

// Calls LAUNCH(D_TILE) with D_TILE = d rounded up to a multiple of 16 (a compile-time constant).
#define ATTN_DISPATCH_D_TILE(d, LAUNCH)          \
    switch (((d) + 15) / 16 * 16) {              \
    case 16: LAUNCH(16); break;                  \
    case 32: LAUNCH(32); break;                  \
    case 48: LAUNCH(48); break;                  \
    case 64: LAUNCH(64); break;                  \
    case 80: LAUNCH(80); break;                  \
    case 96: LAUNCH(96); break;                  \
    case 112: LAUNCH(112); break;                \
    case 128: LAUNCH(128); break;                \
    case 144: LAUNCH(144); break;                \
    case 160: LAUNCH(160); break;                \
    case 176: LAUNCH(176); break;                \
    case 192: LAUNCH(192); break;                \
    case 208: LAUNCH(208); break;                \
    case 224: LAUNCH(224); break;                \
    case 240: LAUNCH(240); break;                \
    case 256: LAUNCH(256); break;                \
    default: return DICE_FAIL(err, "attention: head dim %d not supported on CUDA", (int)(d)); \
    }
