// kernels/conv_wgrad.cu — convolution weight and bias gradients on tensor cores (implicit GEMM, bf16 in,
// fp32 accumulation); CPU twins: conv2d_backward_weight_cpu / conv2d_backward_bias_cpu in kernels/conv_cpu.c.
//
//   dw (Cout, kh kw Cin) = A: dy^T (Cout, P) . B: x windows (P, kh kw Cin),   P = B Ho Wo pixels
//   db (Cout)            = column sums of dy (P, Cout)
// The reduction over P is long (8192 pixels at 64x64, batch 2) and the output small, so P is split across
// blockIdx.z: each split writes fp32 partials to the workspace and one pass sums them into bf16. Both operands
// are contiguous along their M / N index (channels), so both tiles are stored k-major (KROW) and read with
// ldmatrix.trans.
#include "kernels/conv_igemm.cuh"
#include "nn/cuda_api.h"

struct ConvWgradArgs {
    const uint16_t *dy;  // (B, Ho, Wo, Cout)
    const uint16_t *x;   // (B, H, W, Cin)
    float *partial;      // (splits, Cout, kh kw Cin)
    int H, W, Cin, kw, stride, pad, Ho, Wo;
    int M, N, P;                   // M = Cout, N = kh kw Cin, P = B Ho Wo
    int ktiles, ktiles_per_split;  // K tiles of BK pixels: in all, and per split
};

// The output pixel p = (b, oy, ox) of a B row, advanced by BK pixels per K tile.
struct PixCursor {
    int ox, oy, b;
};
static __device__ __forceinline__ PixCursor pix_cursor(int p, int Ho, int Wo) {
    PixCursor c;
    c.ox = p % Wo;
    c.oy = p / Wo % Ho;
    c.b = p / (Wo * Ho);
    return c;
}
static __device__ __forceinline__ void pix_advance(PixCursor &c, int dp, int Ho, int Wo) {
    c.ox += dp;
    while (c.ox >= Wo) {
        c.ox -= Wo;
        if (++c.oy == Ho) {
            c.oy = 0;
            c.b++;
        }
    }
}

// VEC: Cin and Cout are multiples of 8 and dy, x 16-byte aligned.
template <class Cfg, bool VEC>
__global__ void __launch_bounds__(Cfg::THREADS) conv_wgrad_kernel(ConvWgradArgs p) {
    DICE_DYNAMIC_SMEM(uint16_t, smem);
    using TA = SmemTile<Cfg::BM, Cfg::BK, true>;
    using TB = SmemTile<Cfg::BN, Cfg::BK, true>;
    constexpr int A_CHUNKS = Cfg::BM * Cfg::BK / 8 / Cfg::THREADS, B_CHUNKS = Cfg::BN * Cfg::BK / 8 / Cfg::THREADS;
    constexpr int A_ROW_STEP = Cfg::THREADS / TA::CHUNKS_PER_ROW, B_ROW_STEP = Cfg::THREADS / TB::CHUNKS_PER_ROW;
    const int tid = threadIdx.x, m0 = blockIdx.x * Cfg::BM, n0 = blockIdx.y * Cfg::BN;
    const int kt0 = blockIdx.z * p.ktiles_per_split;
    const int ktiles = min(p.ktiles_per_split, p.ktiles - kt0);

    // A (KROW): pixel rows a_row0 + i A_ROW_STEP of the tile, output channels co..co+7.
    const int a_row0 = tid / TA::CHUNKS_PER_ROW, co = m0 + (tid % TA::CHUNKS_PER_ROW) * 8;
    // B (KROW): pixel rows b_row0 + j B_ROW_STEP, columns jn..jn+7 of N = (ky, kx, ci); each column's tap is fixed.
    const int b_row0 = tid / TB::CHUNKS_PER_ROW, b_col = (tid % TB::CHUNKS_PER_ROW) * 8, jn = n0 + b_col;
    int ky[8], kx[8], ci[8];
    #pragma unroll
    for (int e = 0; e < (VEC ? 1 : 8); e++) {
        int tap = (jn + e) / p.Cin;
        ci[e] = jn + e - tap * p.Cin;
        ky[e] = tap / p.kw;
        kx[e] = tap - ky[e] * p.kw;
    }
    PixCursor pc[B_CHUNKS];
    #pragma unroll
    for (int j = 0; j < B_CHUNKS; j++) pc[j] = pix_cursor(kt0 * Cfg::BK + b_row0 + j * B_ROW_STEP, p.Ho, p.Wo);

    auto load_stage = [&](uint16_t *As, uint16_t *Bs, int kt) {
        const int pbase = (kt0 + kt) * Cfg::BK;
        #pragma unroll
        for (int i = 0; i < A_CHUNKS; i++) {
            int r = a_row0 + i * A_ROW_STEP, px = pbase + r;
            conv_load_row_chunk<VEC>(As + TA::at(co - m0, r), p.dy + (int64_t)px * p.M, co, p.M, px < p.P, p.dy);
        }
        #pragma unroll
        for (int j = 0; j < B_CHUNKS; j++) {
            int r = b_row0 + j * B_ROW_STEP, px = pbase + r;
            const PixCursor &c = pc[j];
            int y0 = c.oy * p.stride - p.pad, x0 = c.ox * p.stride - p.pad;
            const uint16_t *pix = p.x + (((int64_t)c.b * p.H + y0) * p.W + x0) * p.Cin;
            uint16_t *dst = Bs + TB::at(b_col, r);
            if constexpr (VEC) {  // the 8 columns share one tap
                int iy = y0 + ky[0], ix = x0 + kx[0];
                bool ok = px < p.P && jn < p.N && (unsigned)iy < (unsigned)p.H && (unsigned)ix < (unsigned)p.W;
                dice_cp_async16_zfill(dst, ok ? pix + ((int64_t)ky[0] * p.W + kx[0]) * p.Cin + ci[0] : p.x, ok);
            } else {
                uint16_t v[8];
                #pragma unroll
                for (int e = 0; e < 8; e++) {
                    int iy = y0 + ky[e], ix = x0 + kx[e];
                    bool ok = px < p.P && jn + e < p.N && (unsigned)iy < (unsigned)p.H && (unsigned)ix < (unsigned)p.W;
                    v[e] = ok ? pix[((int64_t)ky[e] * p.W + kx[e]) * p.Cin + ci[e]] : 0;
                }
                conv_store_chunk(dst, v);
            }
            pix_advance(pc[j], Cfg::BK, p.Ho, p.Wo);
        }
    };

    float acc[Cfg::MI][Cfg::NJ][4];
    conv_gemm_mainloop<Cfg, true, true>(smem, ktiles, load_stage, acc);

    float *out = p.partial + (int64_t)blockIdx.z * p.M * p.N;
    const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int wm = m0 + (warp / Cfg::WARPS_N) * Cfg::WTM, wn = n0 + (warp % Cfg::WARPS_N) * Cfg::WTN;
    #pragma unroll
    for (int mi = 0; mi < Cfg::MI; mi++)
        #pragma unroll
        for (int h = 0; h < 2; h++) {
            int m = wm + mi * 16 + g + 8 * h;
            if (m >= p.M) continue;
            #pragma unroll
            for (int nj = 0; nj < Cfg::NJ; nj++) {
                int n = wn + nj * 8 + 2 * t;
                if (n < p.N) out[(int64_t)m * p.N + n] = acc[mi][nj][2 * h];
                if (n + 1 < p.N) out[(int64_t)m * p.N + n + 1] = acc[mi][nj][2 * h + 1];
            }
        }
}

// partial (splits, Cout): column sums of dy over the pixels of split blockIdx.y; block (32, 8) covers 32
// channels, the 8 thread rows stride over the pixels.
__global__ void conv_bias_grad_kernel(float *partial, const uint16_t *dy, int P, int Cout, int pixels_per_split) {
    __shared__ float sums[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    int p0 = blockIdx.y * pixels_per_split, p1 = min(P, p0 + pixels_per_split);
    float s = 0.0f;
    if (c < Cout)
        for (int px = p0 + threadIdx.y; px < p1; px += 8) s += dice_bf16_to_f32(dy[(int64_t)px * Cout + c]);
    sums[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < Cout) {
        for (int r = 1; r < 8; r++) s += sums[r][threadIdx.x];
        partial[(int64_t)blockIdx.y * Cout + c] = s;
    }
}

// out (n) = bf16(sum over splits of partial (splits, n)).
__global__ void conv_sum_splits_kernel(uint16_t *out, const float *partial, int splits, int64_t n) {
    DICE_GRID_STRIDE(i, n) {
        float s = 0.0f;
        for (int z = 0; z < splits; z++) s += partial[z * n + i];
        out[i] = dice_f32_to_bf16(s);
    }
}

// How the reduction over P is split: enough blocks for about two waves of an H100's 132 SMs, but at least
// 16 K tiles (512 pixels) per split.
struct WgradPlan {
    ConvTile tile;
    int bm, bn, ktiles, per_split, splits;
};
static WgradPlan wgrad_plan(const ConvShape *s, ConvTile tile) {
    WgradPlan w;
    int M = s->Cout, N = s->kh * s->kw * s->Cin, P = s->B * s->Ho * s->Wo;
    w.tile = conv_pick_tile(tile, M, N);
    w.bm = w.tile == CONV_TILE_64x64 ? 64 : 128;
    w.bn = w.tile == CONV_TILE_128x128 ? 128 : 64;
    int64_t tiles = (int64_t)((M + w.bm - 1) / w.bm) * ((N + w.bn - 1) / w.bn);
    w.ktiles = (P + 31) / 32;
    int64_t want = (2 * 132 + tiles - 1) / tiles, most = w.ktiles / 16 > 1 ? w.ktiles / 16 : 1;
    int splits = (int)(want < most ? want : most);
    w.per_split = (w.ktiles + splits - 1) / splits;
    w.splits = (w.ktiles + w.per_split - 1) / w.per_split;
    return w;
}

extern "C" size_t conv2d_backward_weight_workspace(const ConvShape *s, ConvTile tile) {
    WgradPlan w = wgrad_plan(s, tile);
    return (size_t)w.splits * s->Cout * s->kh * s->kw * s->Cin * sizeof(float);
}

template <class Cfg, bool VEC>
static int launch_conv_wgrad(const ConvWgradArgs &a, int splits, cudaStream_t stream, DiceError *err) {
    constexpr size_t smem = conv_smem_bytes<Cfg, true, true>();
    CUDA_TRY(err, cudaFuncSetAttribute(conv_wgrad_kernel<Cfg, VEC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)smem));
    dim3 grid((a.M + Cfg::BM - 1) / Cfg::BM, (a.N + Cfg::BN - 1) / Cfg::BN, splits);
    DICE_LAUNCH((conv_wgrad_kernel<Cfg, VEC>), grid, dim3(Cfg::THREADS), smem, stream, a);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

static int launch_sum_splits(uint16_t *out, const float *partial, int splits, int64_t n, cudaStream_t stream,
                             DiceError *err) {
    int64_t blocks = (n + 255) / 256;
    DICE_LAUNCH(conv_sum_splits_kernel, (int)(blocks < 4096 ? blocks : 4096), 256, 0, stream, out, partial, splits, n);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int conv2d_backward_weight_cuda(const ConvShape *s, ConvTile tile, uint16_t *dw, const uint16_t *dy,
                                           const uint16_t *x, float *workspace, void *stream, DiceError *err) {
    cudaStream_t st = (cudaStream_t)stream;
    WgradPlan w = wgrad_plan(s, tile);
    ConvWgradArgs a;
    memset(&a, 0, sizeof a);
    a.dy = dy, a.x = x, a.partial = workspace;
    a.H = s->H, a.W = s->W, a.Cin = s->Cin, a.kw = s->kw, a.stride = s->stride, a.pad = s->pad;
    a.Ho = s->Ho, a.Wo = s->Wo;
    a.M = s->Cout, a.N = s->kh * s->kw * s->Cin, a.P = s->B * s->Ho * s->Wo;
    a.ktiles = w.ktiles, a.ktiles_per_split = w.per_split;
    bool vec = s->Cin % 8 == 0 && s->Cout % 8 == 0 && ((uintptr_t)dy & 15) == 0 && ((uintptr_t)x & 15) == 0;
    int rc;
    switch (w.tile) {
    case CONV_TILE_128x128:
        rc = vec ? launch_conv_wgrad<ConvCfg128x128, true>(a, w.splits, st, err)
                 : launch_conv_wgrad<ConvCfg128x128, false>(a, w.splits, st, err);
        break;
    case CONV_TILE_128x64:
        rc = vec ? launch_conv_wgrad<ConvCfg128x64, true>(a, w.splits, st, err)
                 : launch_conv_wgrad<ConvCfg128x64, false>(a, w.splits, st, err);
        break;
    case CONV_TILE_64x64:
        rc = vec ? launch_conv_wgrad<ConvCfg64x64, true>(a, w.splits, st, err)
                 : launch_conv_wgrad<ConvCfg64x64, false>(a, w.splits, st, err);
        break;
    default: return DICE_FAIL(err, "conv2d: unknown tile %d", (int)tile);
    }
    DICE_TRY(rc);
    return launch_sum_splits(dw, workspace, w.splits, (int64_t)a.M * a.N, st, err);
}

// The bias gradient's split of the pixels: up to 64 splits of at least 256 pixels.
static int bias_splits(const ConvShape *s, int *pixels_per_split) {
    int P = s->B * s->Ho * s->Wo, splits = (P + 255) / 256;
    if (splits > 64) splits = 64;
    *pixels_per_split = (P + splits - 1) / splits;
    return (P + *pixels_per_split - 1) / *pixels_per_split;
}

extern "C" size_t conv2d_backward_bias_workspace(const ConvShape *s) {
    int per;
    return (size_t)bias_splits(s, &per) * s->Cout * sizeof(float);
}

extern "C" int conv2d_backward_bias_cuda(const ConvShape *s, uint16_t *dbias, const uint16_t *dy, float *workspace,
                                         void *stream, DiceError *err) {
    cudaStream_t st = (cudaStream_t)stream;
    int per, splits = bias_splits(s, &per);
    DICE_LAUNCH(conv_bias_grad_kernel, dim3((s->Cout + 31) / 32, splits), dim3(32, 8), 0, st, workspace, dy,
                s->B * s->Ho * s->Wo, s->Cout, per);
    CUDA_TRY(err, cudaGetLastError());
    return launch_sum_splits(dbias, workspace, splits, s->Cout, st, err);
}
