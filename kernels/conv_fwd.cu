// kernels/conv_fwd.cu — convolution forward and data gradient on tensor cores (implicit GEMM, bf16 in, fp32
// accumulation); CPU twins: conv2d_forward_cpu / conv2d_backward_data_cpu in kernels/conv_cpu.c.
//
// Both are one kernel: every row of the GEMM is an output pixel, A gathers an NHWC image window (never
// materialising im2col), B is the OHWI weight.
//   forward   C (B Ho Wo, Cout) = A: x windows (B Ho Wo, kh kw Cin)  . B: w^T           + bias
//   dgrad     C (B H W, Cin)    = A: dy windows (B H W, taps Cout)   . B: w (taps Cout, Cin), flipped taps
// The data gradient of a stride-s convolution splits the input pixels into s x s parity classes
// (iy % s, ix % s); class (py, px) only meets the weight taps ky = ky0 + s ty with ky0 = (py + pad) % s, and
// there dx[s qy + py] = sum over ty of dy[qy + (py + pad - ky0) / s - ty] w[ky0 + s ty] (likewise in x): a
// stride-1 convolution of dy with a sub-sampled, flipped weight. One launch per class, no zero products.
#include "kernels/conv_igemm.cuh"
#include "nn/cuda_api.h"

// One launch: C rows m are the pixels (b, qy, qx) of a B x qh x qw grid.
struct ConvFwdArgs {
    const uint16_t *src;   // A's image (B, IH, IW, IC): x (forward) or dy (data gradient)
    const uint16_t *w;     // weight (Cout, kh, kw, Cin)
    const uint16_t *bias;  // (N) or null
    uint16_t *out;         // (B, OH, OW, N): y (forward) or dx (data gradient)
    int IH, IW, IC;
    int OH, OW;
    int qh, qw;
    int a_stride, a_off_y, a_off_x, tap_dir;  // row (qy, qx) reads src at (qy a_stride + a_off_y + tap_dir ty, ..)
    int o_stride, o_off_y, o_off_x;           // and writes out at (qy o_stride + o_off_y, qx o_stride + o_off_x)
    int nty, ntx;                             // taps (ty, tx) of this launch
    int ky0, kx0, kstep, kh, kw, Cin;         // data gradient: tap (ty, tx) is weight tap (ky0 + kstep ty, ..)
    int M, N, K;                              // M = B qh qw, K = nty ntx IC
    int pair_stores;                          // out rows may be stored as bf16 pairs (N even, 4-byte aligned)
};

// VEC: IC (and, for the data gradient, Cin) are multiples of 8 and the pointers 16-byte aligned.
template <class Cfg, bool DGRAD, bool VEC>
__global__ void __launch_bounds__(Cfg::THREADS) conv_fwd_kernel(ConvFwdArgs p) {
    DICE_DYNAMIC_SMEM(uint16_t, smem);
    using TA = SmemTile<Cfg::BM, Cfg::BK, false>;
    using TB = SmemTile<Cfg::BN, Cfg::BK, DGRAD>;
    constexpr int A_CHUNKS = Cfg::BM * Cfg::BK / 8 / Cfg::THREADS, B_CHUNKS = Cfg::BN * Cfg::BK / 8 / Cfg::THREADS;
    constexpr int A_ROW_STEP = Cfg::THREADS / TA::CHUNKS_PER_ROW, B_ROW_STEP = Cfg::THREADS / TB::CHUNKS_PER_ROW;
    const int tid = threadIdx.x, m0 = blockIdx.x * Cfg::BM, n0 = blockIdx.y * Cfg::BN;

    // A: this thread fills K columns a_col..a_col+7 of tile rows a_row0 + i A_ROW_STEP. Per row: the window
    // origin (a_y, a_x) in src and its element offset; rows past M get an origin far outside the image.
    const int a_col = (tid % TA::CHUNKS_PER_ROW) * 8, a_row0 = tid / TA::CHUNKS_PER_ROW;
    int a_y[A_CHUNKS], a_x[A_CHUNKS];
    int64_t a_base[A_CHUNKS];
    #pragma unroll
    for (int i = 0; i < A_CHUNKS; i++) {
        int m = m0 + a_row0 + i * A_ROW_STEP, mm = m < p.M ? m : 0;
        int qx = mm % p.qw, qy = mm / p.qw % p.qh, b = mm / (p.qw * p.qh);
        a_y[i] = m < p.M ? qy * p.a_stride + p.a_off_y : -(1 << 29);
        a_x[i] = qx * p.a_stride + p.a_off_x;
        a_base[i] = (((int64_t)b * p.IH + a_y[i]) * p.IW + a_x[i]) * p.IC;
    }
    TapCursor qa = tap_cursor(a_col, p.IC, p.ntx);

    // B: forward: weight rows n (KCOL), K columns b_col..; data gradient: K rows (KROW), channels b_col..
    const int b_col = (tid % TB::CHUNKS_PER_ROW) * 8, b_row0 = tid / TB::CHUNKS_PER_ROW;
    TapCursor qb[DGRAD ? B_CHUNKS : 1];
    if constexpr (DGRAD) {
        #pragma unroll
        for (int j = 0; j < B_CHUNKS; j++) qb[j] = tap_cursor(b_row0 + j * B_ROW_STEP, p.IC, p.ntx);
    }

    auto load_stage = [&](uint16_t *As, uint16_t *Bs, int kt) {
        const int k0 = kt * Cfg::BK;
        if constexpr (VEC) {
            int dy = p.tap_dir * qa.ty, dx = p.tap_dir * qa.tx;
            int64_t tap_off = ((int64_t)dy * p.IW + dx) * p.IC + qa.c;
            #pragma unroll
            for (int i = 0; i < A_CHUNKS; i++) {
                int iy = a_y[i] + dy, ix = a_x[i] + dx;
                bool ok = qa.ty < p.nty && (unsigned)iy < (unsigned)p.IH && (unsigned)ix < (unsigned)p.IW;
                dice_cp_async16_zfill(As + TA::at(a_row0 + i * A_ROW_STEP, a_col),
                                      ok ? p.src + a_base[i] + tap_off : p.src, ok);
            }
            tap_advance(qa, Cfg::BK, p.IC, p.ntx);
        } else {
            int ty[8], tx[8], c[8];
            #pragma unroll
            for (int e = 0; e < 8; e++) {
                TapCursor q = tap_cursor(k0 + a_col + e, p.IC, p.ntx);
                ty[e] = q.ty, tx[e] = q.tx, c[e] = q.c;
            }
            #pragma unroll
            for (int i = 0; i < A_CHUNKS; i++) {
                uint16_t v[8];
                #pragma unroll
                for (int e = 0; e < 8; e++) {
                    int dy = p.tap_dir * ty[e], dx = p.tap_dir * tx[e], iy = a_y[i] + dy, ix = a_x[i] + dx;
                    bool ok = ty[e] < p.nty && (unsigned)iy < (unsigned)p.IH && (unsigned)ix < (unsigned)p.IW;
                    v[e] = ok ? p.src[a_base[i] + ((int64_t)dy * p.IW + dx) * p.IC + c[e]] : 0;
                }
                conv_store_chunk(As + TA::at(a_row0 + i * A_ROW_STEP, a_col), v);
            }
        }
        #pragma unroll
        for (int j = 0; j < B_CHUNKS; j++) {
            int r = b_row0 + j * B_ROW_STEP;
            uint16_t *dst = Bs + (DGRAD ? TB::at(b_col, r) : TB::at(r, b_col));  // at(n, k)
            if constexpr (!DGRAD) {  // B[k][n] = w[n][k], k = k0 + b_col + e
                int n = n0 + r, k = k0 + b_col;
                conv_load_row_chunk<VEC>(dst, p.w + (int64_t)n * p.K, k, p.K, n < p.N, p.w);
            } else {  // B[k][n] = w[co][ky][kx][n], k = k0 + r = (ty, tx, co)
                TapCursor &q = qb[j];
                int n = n0 + b_col, ky = p.ky0 + p.kstep * q.ty, kx = p.kx0 + p.kstep * q.tx;
                const uint16_t *row = p.w + (((int64_t)q.c * p.kh + ky) * p.kw + kx) * p.Cin;
                conv_load_row_chunk<VEC>(dst, row, n, p.N, q.ty < p.nty, p.w);
                tap_advance(q, Cfg::BK, p.IC, p.ntx);
            }
        }
    };

    float acc[Cfg::MI][Cfg::NJ][4];
    conv_gemm_mainloop<Cfg, false, DGRAD>(smem, (p.K + Cfg::BK - 1) / Cfg::BK, load_stage, acc);

    // Epilogue: thread (g, t) of a warp holds rows g and g + 8, columns 2t and 2t + 1 of each mma tile.
    const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    const int wm = m0 + (warp / Cfg::WARPS_N) * Cfg::WTM, wn = n0 + (warp % Cfg::WARPS_N) * Cfg::WTN;
    float bias[Cfg::NJ][2];
    #pragma unroll
    for (int nj = 0; nj < Cfg::NJ; nj++)
        #pragma unroll
        for (int h = 0; h < 2; h++) {
            int n = wn + nj * 8 + 2 * t + h;
            bias[nj][h] = p.bias && n < p.N ? dice_bf16_to_f32(p.bias[n]) : 0.0f;
        }
    #pragma unroll
    for (int mi = 0; mi < Cfg::MI; mi++)
        #pragma unroll
        for (int h = 0; h < 2; h++) {
            int m = wm + mi * 16 + g + 8 * h;
            if (m >= p.M) continue;
            int qx = m % p.qw, qy = m / p.qw % p.qh, b = m / (p.qw * p.qh);
            int oy = qy * p.o_stride + p.o_off_y, ox = qx * p.o_stride + p.o_off_x;
            uint16_t *row = p.out + (((int64_t)b * p.OH + oy) * p.OW + ox) * p.N;
            #pragma unroll
            for (int nj = 0; nj < Cfg::NJ; nj++) {
                int n = wn + nj * 8 + 2 * t;
                float v0 = acc[mi][nj][2 * h] + bias[nj][0], v1 = acc[mi][nj][2 * h + 1] + bias[nj][1];
                if (p.pair_stores && n + 1 < p.N) {
                    *reinterpret_cast<uint32_t *>(row + n) = dice_pack_bf16x2(v0, v1);
                } else {
                    if (n < p.N) row[n] = dice_f32_to_bf16(v0);
                    if (n + 1 < p.N) row[n + 1] = dice_f32_to_bf16(v1);
                }
            }
        }
}

template <class Cfg, bool DGRAD, bool VEC>
static int launch_conv_fwd(const ConvFwdArgs &a, cudaStream_t stream, DiceError *err) {
    constexpr size_t smem = conv_smem_bytes<Cfg, false, DGRAD>();
    CUDA_TRY(err, cudaFuncSetAttribute(conv_fwd_kernel<Cfg, DGRAD, VEC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)smem));
    dim3 grid((a.M + Cfg::BM - 1) / Cfg::BM, (a.N + Cfg::BN - 1) / Cfg::BN);
    DICE_LAUNCH((conv_fwd_kernel<Cfg, DGRAD, VEC>), grid, dim3(Cfg::THREADS), smem, stream, a);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

template <bool DGRAD>
static int launch_conv_fwd_tile(const ConvFwdArgs &a, ConvTile tile, bool vec, cudaStream_t stream, DiceError *err) {
    switch (conv_pick_tile(tile, a.M, a.N)) {
    case CONV_TILE_128x128:
        return vec ? launch_conv_fwd<ConvCfg128x128, DGRAD, true>(a, stream, err)
                   : launch_conv_fwd<ConvCfg128x128, DGRAD, false>(a, stream, err);
    case CONV_TILE_128x64:
        return vec ? launch_conv_fwd<ConvCfg128x64, DGRAD, true>(a, stream, err)
                   : launch_conv_fwd<ConvCfg128x64, DGRAD, false>(a, stream, err);
    case CONV_TILE_64x64:
        return vec ? launch_conv_fwd<ConvCfg64x64, DGRAD, true>(a, stream, err)
                   : launch_conv_fwd<ConvCfg64x64, DGRAD, false>(a, stream, err);
    default: return DICE_FAIL(err, "conv2d: unknown tile %d", (int)tile);
    }
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" int conv2d_forward_cuda(const ConvShape *s, ConvTile tile, uint16_t *y, const uint16_t *x,
                                   const uint16_t *w, const uint16_t *bias, void *stream, DiceError *err) {
    ConvFwdArgs a;
    memset(&a, 0, sizeof a);
    a.src = x, a.w = w, a.bias = bias, a.out = y;
    a.IH = s->H, a.IW = s->W, a.IC = s->Cin, a.OH = s->Ho, a.OW = s->Wo, a.qh = s->Ho, a.qw = s->Wo;
    a.a_stride = s->stride, a.a_off_y = -s->pad, a.a_off_x = -s->pad, a.tap_dir = 1;
    a.o_stride = 1;
    a.nty = s->kh, a.ntx = s->kw, a.kstep = 1, a.kh = s->kh, a.kw = s->kw, a.Cin = s->Cin;
    a.M = s->B * s->Ho * s->Wo, a.N = s->Cout, a.K = s->kh * s->kw * s->Cin;
    a.pair_stores = s->Cout % 2 == 0 && ((uintptr_t)y & 3) == 0;
    bool vec = s->Cin % 8 == 0 && aligned16(x) && aligned16(w);
    return launch_conv_fwd_tile<false>(a, tile, vec, (cudaStream_t)stream, err);
}

extern "C" int conv2d_backward_data_cuda(const ConvShape *s, ConvTile tile, uint16_t *dx, const uint16_t *dy,
                                         const uint16_t *w, void *stream, DiceError *err) {
    const int st = s->stride;
    bool vec = s->Cin % 8 == 0 && s->Cout % 8 == 0 && aligned16(dy) && aligned16(w);
    for (int py = 0; py < st; py++)
        for (int px = 0; px < st; px++) {
            ConvFwdArgs a;
            memset(&a, 0, sizeof a);
            a.qh = (s->H - py + st - 1) / st, a.qw = (s->W - px + st - 1) / st;  // pixels iy = st qy + py < H
            if (a.qh <= 0 || a.qw <= 0) continue;
            a.ky0 = (py + s->pad) % st, a.kx0 = (px + s->pad) % st, a.kstep = st;
            a.nty = a.ky0 < s->kh ? (s->kh - a.ky0 + st - 1) / st : 0;
            a.ntx = a.kx0 < s->kw ? (s->kw - a.kx0 + st - 1) / st : 0;
            a.src = dy, a.w = w, a.out = dx;
            a.IH = s->Ho, a.IW = s->Wo, a.IC = s->Cout, a.OH = s->H, a.OW = s->W;
            a.a_stride = 1, a.a_off_y = (py + s->pad - a.ky0) / st, a.a_off_x = (px + s->pad - a.kx0) / st;
            a.tap_dir = -1;
            a.o_stride = st, a.o_off_y = py, a.o_off_x = px;
            a.kh = s->kh, a.kw = s->kw, a.Cin = s->Cin;
            a.M = s->B * a.qh * a.qw, a.N = s->Cin, a.K = a.nty * a.ntx * s->Cout;
            if (a.ntx == 0) a.ntx = 1;  // K = 0 already; keeps the tap arithmetic free of division by zero
            a.pair_stores = s->Cin % 2 == 0 && ((uintptr_t)dx & 3) == 0;
            DICE_TRY(launch_conv_fwd_tile<true>(a, tile, vec, (cudaStream_t)stream, err));
        }
    return 0;
}
