// kernels/conv_igemm.cuh — the pieces shared by the implicit-GEMM convolution kernels (kernels/conv_fwd.cu,
// kernels/conv_wgrad.cu): block-tile configurations, shared-memory operand tiles, the walk over
// (tap, channel) positions of the GEMM's K dimension, and the pipelined tensor-core main loop.
//
// A block computes a BM x BN tile of C (M x N) = A (M x K) . B (K x N) in fp32, BK = 32 columns of K at a
// time, with STAGES shared-memory buffers filled by cp.async while the warps multiply the oldest one
// (mma.sync m16n8k16 bf16 via ldmatrix). Each operand tile is stored one of two ways in shared memory:
//   k-contiguous ("KCOL"): R rows of BK elements (A row-major in K: an im2col row; B a weight row)
//   k-major      ("KROW"): BK rows of R elements (the operand is contiguous along M or N: channels)
// Rows are padded by 8 elements (16 bytes), which makes both ldmatrix and ldmatrix.trans conflict-free.
// Every tile is filled in 16-byte chunks of 8 bf16: one cp.async per chunk when the channels allow it
// ("vector" kernels), or a gather of 8 scalars stored as one 16-byte chunk ("scalar" kernels, for channel
// counts that are not multiples of 8 such as conv_in's 4).
#pragma once
#include "kernels/cuda_common.cuh"
#include "kernels/conv.h"

// ---------------------------------------------------------------- tile configurations
// WARPS_M x WARPS_N warps, each owning a (BM / WARPS_M) x (BN / WARPS_N) tile of C: MI x NJ mma tiles.
template <int BM_, int BN_, int WARPS_M_, int WARPS_N_>
struct ConvTileCfg {
    static constexpr int BM = BM_, BN = BN_, BK = 32, STAGES = 3;
    static constexpr int WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, THREADS = 32 * WARPS_M_ * WARPS_N_;
    static constexpr int WTM = BM / WARPS_M, WTN = BN / WARPS_N, MI = WTM / 16, NJ = WTN / 8;
    static_assert(MI >= 1 && NJ >= 2 && NJ % 2 == 0, "a warp tile is a multiple of 16 x 16");
    static_assert((BM * BK / 8) % THREADS == 0 && (BN * BK / 8) % THREADS == 0, "whole chunks per thread");
};
using ConvCfg128x128 = ConvTileCfg<128, 128, 2, 4>;  // 8 warps of 64 x 32
using ConvCfg128x64 = ConvTileCfg<128, 64, 4, 2>;    // 8 warps of 32 x 32
using ConvCfg64x64 = ConvTileCfg<64, 64, 2, 2>;      // 4 warps of 32 x 32

// An operand tile of R rows (of M or N) by BK (of K) in shared memory, KROW or KCOL (see the top).
template <int R, int BK, bool KROW>
struct SmemTile {
    static constexpr int LD = KROW ? R + 8 : BK + 8;  // elements per stored row, padded
    static constexpr int ELEMS = KROW ? BK * LD : R * LD;
    static constexpr int CHUNKS_PER_ROW = (KROW ? R : BK) / 8;
    static __device__ __forceinline__ int at(int r, int k) { return KROW ? k * LD + r : r * LD + k; }
};

// Shared memory of one launch (bytes): STAGES buffers of an A tile and a B tile.
template <class Cfg, bool A_KROW, bool B_KROW>
constexpr size_t conv_smem_bytes() {
    return (size_t)Cfg::STAGES *
           (SmemTile<Cfg::BM, Cfg::BK, A_KROW>::ELEMS + SmemTile<Cfg::BN, Cfg::BK, B_KROW>::ELEMS) * 2;
}

// ---------------------------------------------------------------- walking K = (ty, tx, c)
// A position k = (ty * ntx + tx) * C + c of the GEMM's K dimension: tap (ty, tx), channel c. Loaders keep
// one per chunk and advance it by BK per tile instead of dividing.
struct TapCursor {
    int c, tx, ty;
};
static __device__ __forceinline__ TapCursor tap_cursor(int k, int C, int ntx) {
    int t = k / C;
    TapCursor q;
    q.c = k - t * C;
    q.ty = t / ntx;
    q.tx = t - q.ty * ntx;
    return q;
}
static __device__ __forceinline__ void tap_advance(TapCursor &q, int dk, int C, int ntx) {
    q.c += dk;
    while (q.c >= C) {
        q.c -= C;
        if (++q.tx == ntx) {
            q.tx = 0;
            q.ty++;
        }
    }
}

// 8 bf16 (bits in v) as one 16-byte shared-memory chunk.
static __device__ __forceinline__ void conv_store_chunk(uint16_t *smem, const uint16_t v[8]) {
    uint4 u;
    u.x = v[0] | (uint32_t)v[1] << 16;
    u.y = v[2] | (uint32_t)v[3] << 16;
    u.z = v[4] | (uint32_t)v[5] << 16;
    u.w = v[6] | (uint32_t)v[7] << 16;
    *reinterpret_cast<uint4 *>(smem) = u;
}

// The chunk row[col .. col + 7] into smem, zero where the row does not exist (!row_ok) or an element is at or past
// `limit`: one cp.async when VEC (the caller guarantees col + 8 <= limit or col >= limit), else 8 scalar loads.
// base: a valid address for the zero-filling cp.async to name (the tensor's base).
template <bool VEC>
static __device__ __forceinline__ void conv_load_row_chunk(uint16_t *smem, const uint16_t *row, int col, int limit,
                                                           bool row_ok, const uint16_t *base) {
    if constexpr (VEC) {
        bool ok = row_ok && col < limit;
        dice_cp_async16_zfill(smem, ok ? row + col : base, ok);
    } else {
        uint16_t v[8];
        #pragma unroll
        for (int e = 0; e < 8; e++) v[e] = row_ok && col + e < limit ? row[col + e] : 0;
        conv_store_chunk(smem, v);
    }
}

// ---------------------------------------------------------------- fragments and the main loop
// A fragments of the warp's MI 16-row tiles for columns kk..kk+15 of the tile (layout: cuda_common.cuh).
template <class Cfg, bool KROW>
static __device__ __forceinline__ void conv_load_a(uint32_t (&a)[Cfg::MI][4], const uint16_t *As, int warp_m,
                                                   int kk, int lane) {
    using T = SmemTile<Cfg::BM, Cfg::BK, KROW>;
    #pragma unroll
    for (int mi = 0; mi < Cfg::MI; mi++) {
        int m = warp_m * Cfg::WTM + mi * 16;
        if (KROW)  // 8x8 matrix j = lane / 8 covers rows m + 8 (j & 1), columns kk + 8 (j >> 1)
            dice_ldmatrix_x4_trans(a[mi], As + T::at(m + ((lane >> 3) & 1) * 8, kk + (lane >> 4) * 8 + (lane & 7)));
        else
            dice_ldmatrix_x4(a[mi], As + T::at(m + (lane & 15), kk + (lane >> 4) * 8));
    }
}

// B fragments of the warp's NJ 8-column tiles, two per ldmatrix_x4: matrix j covers n-tile (j >> 1), k half (j & 1).
template <class Cfg, bool KROW>
static __device__ __forceinline__ void conv_load_b(uint32_t (&b)[Cfg::NJ][2], const uint16_t *Bs, int warp_n,
                                                   int kk, int lane) {
    using T = SmemTile<Cfg::BN, Cfg::BK, KROW>;
    #pragma unroll
    for (int nj = 0; nj < Cfg::NJ; nj += 2) {
        int n = warp_n * Cfg::WTN + nj * 8 + (lane >> 4) * 8;
        uint32_t r[4];
        if (KROW)
            dice_ldmatrix_x4_trans(r, Bs + T::at(n, kk + ((lane >> 3) & 1) * 8 + (lane & 7)));
        else
            dice_ldmatrix_x4(r, Bs + T::at(n + (lane & 7), kk + ((lane >> 3) & 1) * 8));
        b[nj][0] = r[0];
        b[nj][1] = r[1];
        b[nj + 1][0] = r[2];
        b[nj + 1][1] = r[3];
    }
}

// acc (the warp's MI x NJ tiles of C) = sum over ktiles K tiles of A . B. load_stage(As, Bs, kt) issues the
// loads of K tile kt into a stage's buffers; it is called by every thread for kt = 0, 1, 2, ... in order.
template <class Cfg, bool A_KROW, bool B_KROW, class LoadStage>
static __device__ __forceinline__ void conv_gemm_mainloop(uint16_t *smem, int ktiles, LoadStage &load_stage,
                                                          float (&acc)[Cfg::MI][Cfg::NJ][4]) {
    constexpr int A_ELEMS = SmemTile<Cfg::BM, Cfg::BK, A_KROW>::ELEMS;
    constexpr int STAGE = A_ELEMS + SmemTile<Cfg::BN, Cfg::BK, B_KROW>::ELEMS;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int warp_m = warp / Cfg::WARPS_N, warp_n = warp % Cfg::WARPS_N;
    #pragma unroll
    for (int mi = 0; mi < Cfg::MI; mi++)
        #pragma unroll
        for (int nj = 0; nj < Cfg::NJ; nj++)
            #pragma unroll
            for (int i = 0; i < 4; i++) acc[mi][nj][i] = 0.0f;
    for (int s = 0; s < Cfg::STAGES - 1; s++) {
        if (s < ktiles) load_stage(smem + s * STAGE, smem + s * STAGE + A_ELEMS, s);
        dice_cp_async_commit();
    }
    for (int kt = 0; kt < ktiles; kt++) {
        dice_cp_async_wait<Cfg::STAGES - 2>();  // tile kt has landed (for this thread) ...
        __syncthreads();                        // ... for every thread; and tile kt - 1 is no longer read
        int next = kt + Cfg::STAGES - 1;
        if (next < ktiles) {
            uint16_t *st = smem + (next % Cfg::STAGES) * STAGE;
            load_stage(st, st + A_ELEMS, next);
        }
        dice_cp_async_commit();
        const uint16_t *As = smem + (kt % Cfg::STAGES) * STAGE, *Bs = As + A_ELEMS;
        #pragma unroll
        for (int kk = 0; kk < Cfg::BK; kk += 16) {
            uint32_t a[Cfg::MI][4], b[Cfg::NJ][2];
            conv_load_a<Cfg, A_KROW>(a, As, warp_m, kk, lane);
            conv_load_b<Cfg, B_KROW>(b, Bs, warp_n, kk, lane);
            #pragma unroll
            for (int mi = 0; mi < Cfg::MI; mi++)
                #pragma unroll
                for (int nj = 0; nj < Cfg::NJ; nj++) dice_mma_m16n8k16_bf16(acc[mi][nj], a[mi], b[nj], acc[mi][nj]);
        }
    }
}

// ---------------------------------------------------------------- host side: choosing a tile
// CONV_TILE_AUTO takes the largest tile that divides N and still fills one wave of an H100's 132 SMs; small
// problems fall through to 64 x 64 (retune on the GPU with bench/conv.c, which times every tile).
static inline ConvTile conv_pick_tile(ConvTile requested, int M, int N) {
    if (requested != CONV_TILE_AUTO) return requested;
    auto tiles = [&](int bm, int bn) { return (int64_t)((M + bm - 1) / bm) * ((N + bn - 1) / bn); };
    const int64_t enough = 132;
    if (N % 128 == 0 && tiles(128, 128) >= enough) return CONV_TILE_128x128;
    if (N % 64 == 0 && tiles(128, 64) >= enough) return CONV_TILE_128x64;
    return CONV_TILE_64x64;
}
