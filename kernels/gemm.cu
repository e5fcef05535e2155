// kernels/gemm.cu — the custom GEMM engine (see gemm.h for the convention); CPU twin: kernels/gemm_cpu.c.
//   bf16 -> bf16 / f32: tensor cores (mma.sync m16n8k16, fp32 accumulation), ldmatrix from padded shared
//                       memory, register-staged double buffering, predicated (zero-filled) ragged edges,
//                       any transposes (ldmatrix.trans reads the transposed layouts);
//   f32 -> f32:         a shared-memory tiled FMA kernel (true fp32) for the sharpener's small layers.
// Both add the bias and apply the activation in the epilogue, and run batch entries as blockIdx.z.
#include "kernels/cuda_common.cuh"
#include "kernels/gemm.h"
#include "nn/cuda_api.h"

// Sizes and pitches every kernel reads (elements).
struct GemmDims {
    int64_t M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c;
    GemmAct act;
    bool vec_a, vec_b;  // rows of A / B start 16-byte aligned: 8-element chunks may be loaded as one uint4
    bool vec_c;         // pairs of C may be stored as one 2-element store
};

static __device__ __forceinline__ void store_out_pair(float *p, float v0, float v1) {
    *reinterpret_cast<float2 *>(p) = make_float2(v0, v1);
}
static __device__ __forceinline__ void store_out_pair(uint16_t *p, float v0, float v1) {
    *reinterpret_cast<uint32_t *>(p) = dice_pack_bf16x2(v0, v1);
}

// C[row][col], C[row][col + 1] = act(v + bias) for the columns that exist (col is even).
template <typename TOut>
static __device__ __forceinline__ void epilogue_pair(TOut *c, const TOut *bias, const GemmDims &d, int64_t row,
                                                     int64_t col, float v0, float v1) {
    if (row >= d.M || col >= d.N) return;
    bool both = col + 1 < d.N;
    if (bias) {
        v0 += dice_load_f32(bias, col);
        if (both) v1 += dice_load_f32(bias, col + 1);
    }
    v0 = gemm_act_f32(d.act, v0);
    v1 = gemm_act_f32(d.act, v1);
    TOut *p = c + row * d.ldc + col;
    if (both && d.vec_c) {
        store_out_pair(p, v0, v1);
    } else {
        dice_store_f32(p, 0, v0);
        if (both) dice_store_f32(p, 1, v1);
    }
}

// ---------------------------------------------------------------- bf16 tensor-core kernel
constexpr int TC_BK = 32;   // K per shared-memory stage
constexpr int TC_PAD = 8;   // bf16 padding per shared row: rows 16 bytes apart mod 128, so ldmatrix is conflict-free

// A TR x TC tile of a stored row-major bf16 matrix, moved global -> registers -> shared memory in
// 8-element (16-byte) chunks; elements outside (rows, cols) read as zero.
template <int TR, int TC, int THREADS>
struct TileStage {
    static constexpr int CHUNKS_PER_ROW = TC / 8;
    static constexpr int CHUNKS = TR * CHUNKS_PER_ROW / THREADS;
    static_assert(TR * CHUNKS_PER_ROW % THREADS == 0, "tile chunks must divide among the threads");
    uint4 regs[CHUNKS];

    __device__ __forceinline__ void load(const uint16_t *base, int64_t ld, int64_t r0, int64_t c0, int64_t rows,
                                         int64_t cols, bool vec, int tid) {
#pragma unroll
        for (int i = 0; i < CHUNKS; i++) {
            int idx = tid + i * THREADS;
            int64_t r = r0 + idx / CHUNKS_PER_ROW, c = c0 + (idx % CHUNKS_PER_ROW) * 8;
            const uint16_t *p = base + r * ld + c;
            if (r < rows && vec && c + 8 <= cols) {
                regs[i] = *reinterpret_cast<const uint4 *>(p);
                continue;
            }
            uint32_t w[4];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                uint32_t lo = r < rows && c + 2 * j < cols ? p[2 * j] : 0;
                uint32_t hi = r < rows && c + 2 * j + 1 < cols ? p[2 * j + 1] : 0;
                w[j] = lo | hi << 16;
            }
            regs[i] = make_uint4(w[0], w[1], w[2], w[3]);
        }
    }
    // smem rows hold TC + TC_PAD bf16 as uint4s (8 each), so chunks are stored without type punning.
    __device__ __forceinline__ void store(uint4 (*smem)[(TC + TC_PAD) / 8], int tid) const {
#pragma unroll
        for (int i = 0; i < CHUNKS; i++) {
            int idx = tid + i * THREADS;
            smem[idx / CHUNKS_PER_ROW][idx % CHUNKS_PER_ROW] = regs[i];
        }
    }
};

// Address of bf16 element `col` of a shared-memory row (for ldmatrix, which reads it as b16).
static __device__ __forceinline__ const void *smem_elem(const uint4 *row, int col) {
    return reinterpret_cast<const uint16_t *>(row) + col;
}

// Shared tiles keep the stored layout of their operand: A [BM][BK] (K contiguous), or [BK][BM] with TA;
// B [BK][BN], or [BN][BK] with TB; each row padded by TC_PAD and held as uint4s; two stages of each.
template <int BM, int BN, bool TA, bool TB>
struct TcSmem {
    static constexpr int A_ROWS = TA ? TC_BK : BM, A_COLS = TA ? BM : TC_BK;
    static constexpr int B_ROWS = TB ? BN : TC_BK, B_COLS = TB ? TC_BK : BN;
    static constexpr int A_VECS = (A_COLS + TC_PAD) / 8, B_VECS = (B_COLS + TC_PAD) / 8;
    static constexpr size_t BYTES = (size_t)2 * (A_ROWS * A_VECS + B_ROWS * B_VECS) * sizeof(uint4);
    static_assert(BYTES <= 48 * 1024, "shared tiles must fit the default 48 KiB");
};

// One block computes a BM x BN tile of C with WARPS_M x WARPS_N warps, each a (BM / WARPS_M) x
// (BN / WARPS_N) tile of m16n8 fragments, from the shared tiles of TcSmem (dynamic shared memory).
// Grid (ceil(N / BN), ceil(M / BM), batch); block WARPS_M * WARPS_N * 32 threads.
template <int BM, int BN, int WARPS_M, int WARPS_N, bool TA, bool TB, typename TOut>
__global__ void __launch_bounds__(WARPS_M *WARPS_N * 32)
    gemm_bf16_tc_kernel(const uint16_t *a, const uint16_t *b, TOut *c, const TOut *bias, GemmDims d) {
    constexpr int THREADS = WARPS_M * WARPS_N * 32;
    constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;  // warp tile
    constexpr int MT = WM / 16, NT = WN / 8;             // m16 and n8 fragments per warp
    static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tile must be a multiple of 16 x 16");
    using Smem = TcSmem<BM, BN, TA, TB>;
    constexpr int A_ROWS = Smem::A_ROWS, A_COLS = Smem::A_COLS, B_ROWS = Smem::B_ROWS, B_COLS = Smem::B_COLS;
    DICE_DYNAMIC_SMEM(uint4, smem);  // As[2][A_ROWS][A_VECS] then Bs[2][B_ROWS][B_VECS]: bf16 rows, 8 per uint4
    auto As = reinterpret_cast<uint4(*)[A_ROWS][Smem::A_VECS]>(smem);
    auto Bs = reinterpret_cast<uint4(*)[B_ROWS][Smem::B_VECS]>(smem + 2 * A_ROWS * Smem::A_VECS);

    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int wm = warp / WARPS_N, wn = warp % WARPS_N;
    const int64_t z = blockIdx.z, m_block = (int64_t)blockIdx.y * BM, n_block = (int64_t)blockIdx.x * BN;
    a += z * d.stride_a;
    b += z * d.stride_b;
    c += z * d.stride_c;

    TileStage<A_ROWS, A_COLS, THREADS> stage_a;
    TileStage<B_ROWS, B_COLS, THREADS> stage_b;
    // Stored A is (M, K), or (K, M) with TA; stored B is (K, N), or (N, K) with TB.
    auto load_stage = [&](int64_t k0) {
        if (TA)
            stage_a.load(a, d.lda, k0, m_block, d.K, d.M, d.vec_a, tid);
        else
            stage_a.load(a, d.lda, m_block, k0, d.M, d.K, d.vec_a, tid);
        if (TB)
            stage_b.load(b, d.ldb, n_block, k0, d.N, d.K, d.vec_b, tid);
        else
            stage_b.load(b, d.ldb, k0, n_block, d.K, d.N, d.vec_b, tid);
    };

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int r = 0; r < 4; r++) acc[i][j][r] = 0.0f;

    // ldmatrix x4: lane l addresses row (l % 8) of 8x8 matrix (l / 8).
    const int mat = lane / 8, mat_row = lane % 8;
    const int64_t k_tiles = (d.K + TC_BK - 1) / TC_BK;
    load_stage(0);
    stage_a.store(As[0], tid);
    stage_b.store(Bs[0], tid);
    __syncthreads();
    for (int64_t kt = 0; kt < k_tiles; kt++) {
        const int buf = (int)(kt & 1);
        if (kt + 1 < k_tiles) load_stage((kt + 1) * TC_BK);  // global loads in flight during the MMAs
#pragma unroll
        for (int kk = 0; kk < TC_BK; kk += 16) {
            uint32_t af[MT][4], bfr[NT][2];
#pragma unroll
            for (int i = 0; i < MT; i++) {
                // matrices: (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15)
                const int m = wm * WM + i * 16 + (mat & 1) * 8, k = kk + (mat >> 1) * 8;
                if (TA)
                    dice_ldmatrix_x4_trans(af[i], smem_elem(As[buf][k + mat_row], m));
                else
                    dice_ldmatrix_x4(af[i], smem_elem(As[buf][m + mat_row], k));
            }
#pragma unroll
            for (int j = 0; j < NT; j += 2) {
                // matrices: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15)
                const int n = wn * WN + j * 8 + (mat >> 1) * 8, k = kk + (mat & 1) * 8;
                uint32_t r[4];
                if (TB)
                    dice_ldmatrix_x4(r, smem_elem(Bs[buf][n + mat_row], k));
                else
                    dice_ldmatrix_x4_trans(r, smem_elem(Bs[buf][k + mat_row], n));
                bfr[j][0] = r[0], bfr[j][1] = r[1], bfr[j + 1][0] = r[2], bfr[j + 1][1] = r[3];
            }
#pragma unroll
            for (int i = 0; i < MT; i++)
#pragma unroll
                for (int j = 0; j < NT; j++) dice_mma_m16n8k16_bf16(acc[i][j], af[i], bfr[j], acc[i][j]);
        }
        if (kt + 1 < k_tiles) {  // the other buffer was last read before the previous barrier
            stage_a.store(As[buf ^ 1], tid);
            stage_b.store(Bs[buf ^ 1], tid);
        }
        __syncthreads();
    }

    // Fragment element r of tile (i, j): row g + 8 (r >> 1), column 2 t + (r & 1).
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                int64_t row = m_block + wm * WM + i * 16 + g + 8 * h, col = n_block + wn * WN + j * 8 + 2 * t;
                epilogue_pair(c, bias, d, row, col, acc[i][j][2 * h], acc[i][j][2 * h + 1]);
            }
}

template <int BM, int BN, int WARPS_M, int WARPS_N, bool TA, bool TB, typename TOut>
static void launch_tc(const GemmArgs *g, const GemmDims &d, cudaStream_t stream) {
    dim3 grid((unsigned)((g->N + BN - 1) / BN), (unsigned)((g->M + BM - 1) / BM), (unsigned)g->batch);
    DICE_LAUNCH((gemm_bf16_tc_kernel<BM, BN, WARPS_M, WARPS_N, TA, TB, TOut>), grid, WARPS_M * WARPS_N * 32,
                (TcSmem<BM, BN, TA, TB>::BYTES), stream, (const uint16_t *)g->a, (const uint16_t *)g->b,
                (TOut *)g->c, (const TOut *)g->bias, d);
}

template <int BM, int BN, int WARPS_M, int WARPS_N, typename TOut>
static void launch_bf16_tc(const GemmArgs *g, const GemmDims &d, cudaStream_t stream) {
    if (g->trans_a && g->trans_b)
        launch_tc<BM, BN, WARPS_M, WARPS_N, true, true, TOut>(g, d, stream);
    else if (g->trans_a)
        launch_tc<BM, BN, WARPS_M, WARPS_N, true, false, TOut>(g, d, stream);
    else if (g->trans_b)
        launch_tc<BM, BN, WARPS_M, WARPS_N, false, true, TOut>(g, d, stream);
    else
        launch_tc<BM, BN, WARPS_M, WARPS_N, false, false, TOut>(g, d, stream);
}

// The 128 x 128 tile (8 warps of 64 x 32) when it fills the GPU (at least one block per SM of an
// H100: 132); otherwise 64 x 64 (4 warps of 32 x 32), four times as many blocks.
constexpr int64_t TC_LARGE_TILE_MIN_BLOCKS = 132;

template <typename TOut>
static void launch_bf16(const GemmArgs *g, const GemmDims &d, cudaStream_t stream) {
    int64_t large_blocks = ((g->M + 127) / 128) * ((g->N + 127) / 128) * g->batch;
    if (large_blocks >= TC_LARGE_TILE_MIN_BLOCKS)
        launch_bf16_tc<128, 128, 2, 4, TOut>(g, d, stream);
    else
        launch_bf16_tc<64, 64, 2, 2, TOut>(g, d, stream);
}

// ---------------------------------------------------------------- f32 FMA kernel
constexpr int F32_BM = 64, F32_BN = 64, F32_BK = 16;

// 256 threads as 16 x 16; thread (ty, tx) owns C rows ty + 16 i and columns tx + 16 j (i, j < 4).
// Shared tiles are K-major: As[k][m], Bs[k][n]. Grid (ceil(N / 64), ceil(M / 64), batch).
__global__ void __launch_bounds__(256)
    gemm_f32_fma_kernel(const float *a, const float *b, float *c, const float *bias, GemmDims d, bool ta, bool tb) {
    __shared__ float As[F32_BK][F32_BM + 4];
    __shared__ float Bs[F32_BK][F32_BN + 4];
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t z = blockIdx.z, m0 = (int64_t)blockIdx.y * F32_BM, n0 = (int64_t)blockIdx.x * F32_BN;
    a += z * d.stride_a;
    b += z * d.stride_b;
    c += z * d.stride_c;
    float acc[4][4] = {};
    for (int64_t k0 = 0; k0 < d.K; k0 += F32_BK) {
        for (int i = 0; i < F32_BM * F32_BK / 256; i++) {
            int idx = tid + i * 256;
            // consecutive threads walk the stored rows' contiguous dimension
            int m = ta ? idx % F32_BM : idx / F32_BK, k = ta ? idx / F32_BM : idx % F32_BK;
            int64_t gm = m0 + m, gk = k0 + k;
            As[k][m] = gm < d.M && gk < d.K ? a[ta ? gk * d.lda + gm : gm * d.lda + gk] : 0.0f;
            int n = tb ? idx / F32_BK : idx % F32_BN, kb = tb ? idx % F32_BK : idx / F32_BN;
            int64_t gn = n0 + n, gkb = k0 + kb;
            Bs[kb][n] = gn < d.N && gkb < d.K ? b[tb ? gn * d.ldb + gkb : gkb * d.ldb + gn] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < F32_BK; k++) {
            float ar[4], br[4];
#pragma unroll
            for (int i = 0; i < 4; i++) ar[i] = As[k][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++) br[j] = Bs[k][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int64_t row = m0 + ty + 16 * i, col = n0 + tx + 16 * j;
            if (row >= d.M || col >= d.N) continue;
            float v = acc[i][j] + (bias ? bias[col] : 0.0f);
            c[row * d.ldc + col] = gemm_act_f32(d.act, v);
        }
}

// ---------------------------------------------------------------- launcher
static bool aligned(const void *p, size_t bytes) { return ((uintptr_t)p % bytes) == 0; }

extern "C" int gemm_custom_cuda(const GemmArgs *g, void *stream, DiceError *err) {
    DICE_TRY(gemm_check_args(g, "gemm (custom CUDA)", err));
    bool bf16 = g->in == DT_BF16 && (g->out == DT_BF16 || g->out == DT_F32);
    DICE_CHECK(err, bf16 || (g->in == DT_F32 && g->out == DT_F32),
               "gemm (custom CUDA): %s -> %s is not supported (bf16 -> bf16, bf16 -> f32, f32 -> f32)",
               dtype_name(g->in), dtype_name(g->out));
    DICE_CHECK(err, g->batch <= 65535 && (g->M + 63) / 64 <= 65535,
               "gemm (custom CUDA): batch %lld or M %lld exceeds the grid limit", (long long)g->batch, (long long)g->M);
    if (g->M == 0 || g->N == 0 || g->batch == 0) return 0;
    GemmDims d;
    d.M = g->M, d.N = g->N, d.K = g->K;
    d.lda = g->lda, d.ldb = g->ldb, d.ldc = g->ldc;
    d.stride_a = g->stride_a, d.stride_b = g->stride_b, d.stride_c = g->stride_c;
    d.act = g->act;
    d.vec_a = aligned(g->a, 16) && g->lda % 8 == 0 && g->stride_a % 8 == 0;
    d.vec_b = aligned(g->b, 16) && g->ldb % 8 == 0 && g->stride_b % 8 == 0;
    size_t out_size = dtype_size(g->out);
    d.vec_c = aligned(g->c, 2 * out_size) && g->ldc % 2 == 0 && g->stride_c % 2 == 0;
    cudaStream_t s = (cudaStream_t)stream;
    if (!bf16) {
        dim3 grid((unsigned)((g->N + F32_BN - 1) / F32_BN), (unsigned)((g->M + F32_BM - 1) / F32_BM),
                  (unsigned)g->batch);
        DICE_LAUNCH(gemm_f32_fma_kernel, grid, 256, 0, s, (const float *)g->a, (const float *)g->b, (float *)g->c,
                    (const float *)g->bias, d, g->trans_a, g->trans_b);
    } else if (g->out == DT_BF16) {
        launch_bf16<uint16_t>(g, d, s);
    } else {
        launch_bf16<float>(g, d, s);
    }
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
