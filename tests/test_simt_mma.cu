// tests/test_simt_mma.cu — the tensor-core wrappers of kernels/cuda_common.cuh against CPU matrix
// products: dice_mma_m16n8k16_{bf16,f16} on fragments read from global memory per the documented
// layout, the register layout of every dice_ldmatrix variant, and ldmatrix feeding mma. DICE_CUDA_TESTs:
// emulated by `make test`, on a GPU by `make test-gpu`.
#include <stdio.h>

#include <vector>

#include "tests/test_simt_util.cuh"

// C (M, N) = A (M, K) * B (K, N) + C0 (M, N); A and B hold 16-bit floats (bf16, or f16 if f16 is set),
// row-major. One warp per 16x8 tile of C (grid (N / 8, M / 16)), K a multiple of 16; each lane
// gathers its fragments from global memory per the layout documented in cuda_common.cuh.
__global__ void mma_gemm_kernel(const uint16_t *A, const uint16_t *B, const float *C0, float *C, int N, int K,
                                int f16) {
    unsigned lane = threadIdx.x, g = lane / 4, t = lane % 4;
    int m0 = blockIdx.y * 16, n0 = blockIdx.x * 8;
    float acc[4];
    for (int i = 0; i < 4; i++) acc[i] = C0[(m0 + g + 8 * (i >> 1)) * N + n0 + 2 * t + (i & 1)];
    for (int k0 = 0; k0 < K; k0 += 16) {
        uint32_t a[4], b[2];
        for (int r = 0; r < 4; r++) {
            const uint16_t *p = A + (m0 + g + 8 * (r & 1)) * K + k0 + 2 * t + 8 * (r >> 1);
            a[r] = p[0] | (uint32_t)p[1] << 16;
        }
        for (int r = 0; r < 2; r++) {
            int k = k0 + 2 * t + 8 * r;
            b[r] = B[k * N + n0 + g] | (uint32_t)B[(k + 1) * N + n0 + g] << 16;
        }
        if (f16)
            dice_mma_m16n8k16_f16(acc, a, b, acc);
        else
            dice_mma_m16n8k16_bf16(acc, a, b, acc);
    }
    for (int i = 0; i < 4; i++) C[(m0 + g + 8 * (i >> 1)) * N + n0 + 2 * t + (i & 1)] = acc[i];
}

// Random 16-bit floats in [-2, 2]: bits and their exact values.
static void random_half_floats(TestRng &rng, int f16, std::vector<uint16_t> &bits, std::vector<float> &vals) {
    for (size_t i = 0; i < bits.size(); i++) {
        float v = rng.uniform(-2.0f, 2.0f);
        bits[i] = f16 ? dice_f32_to_f16(v) : dice_f32_to_bf16(v);
        vals[i] = f16 ? dice_f16_to_f32(bits[i]) : dice_bf16_to_f32(bits[i]);
    }
}

// got (M, N) against C0 + A B in double; the bound is fp32 rounding of the k-sum.
static bool matmul_close(const std::vector<float> &got, const std::vector<float> &A, const std::vector<float> &B,
                         const std::vector<float> *C0, int M, int N, int K, char *why, size_t cap) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double want = C0 ? (*C0)[m * N + n] : 0.0, scale = fabs(want);
            for (int k = 0; k < K; k++) {
                want += (double)A[m * K + k] * B[k * N + n];
                scale += fabs((double)A[m * K + k] * B[k * N + n]);
            }
            if (!(fabs(got[m * N + n] - want) <= 1e-5 * scale + 1e-6)) {
                snprintf(why, cap, "C[%d][%d] = %.9g, want %.9g", m, n, got[m * N + n], want);
                return false;
            }
        }
    return true;
}

DICE_CUDA_TEST(simt_mma_m16n8k16) {
    TestRng rng = {tc->seed};
    const int M = 48, N = 24, K = 64;
    for (int f16 = 0; f16 < 2; f16++) {
        std::vector<uint16_t> a_bits(M * K), b_bits(K * N);
        std::vector<float> A(M * K), B(K * N), C0(M * N), C(M * N);
        random_half_floats(rng, f16, a_bits, A);
        random_half_floats(rng, f16, b_bits, B);
        for (float &v : C0) v = rng.uniform(-4.0f, 4.0f);
        DevBuf<uint16_t> da, db;
        DevBuf<float> dc0, dc;
        CUDA_CHECK(da.upload(a_bits.data(), a_bits.size()));
        CUDA_CHECK(db.upload(b_bits.data(), b_bits.size()));
        CUDA_CHECK(dc0.upload(C0.data(), C0.size()));
        CUDA_CHECK(dc.alloc(C.size()));
        LAUNCH_CHECKED(mma_gemm_kernel, dim3(N / 8, M / 16), 32, 0, 0, da.p, db.p, dc0.p, dc.p, N, K, f16);
        CUDA_CHECK(dc.download(C.data()));
        char why[256];
        CHECK_MSG(matmul_close(C, A, B, &C0, M, N, K, why, sizeof why), "%s mma: %s", f16 ? "f16" : "bf16", why);
    }
}

// ---------------------------------------------------------------- ldmatrix
enum { LDM_X1, LDM_X2, LDM_X4, LDM_X1_TRANS, LDM_X2_TRANS, LDM_X4_TRANS, LDM_VARIANTS };

// Four 8x8 matrices of 16-bit values m * 64 + r * 8 + c in static shared memory (matrix m, row r,
// column c), rows padded to 24 elements; lane l passes row l % 8 of matrix l / 8. out: (variant,
// lane, 4 registers), of which variant xN writes the first N.
__global__ void ldmatrix_layout_kernel(uint32_t *out) {
    __shared__ __align__(16) uint16_t tile[4 * 8][24];
    unsigned lane = threadIdx.x;
    for (unsigned i = lane; i < 4 * 8 * 24; i += 32) {
        unsigned row = i / 24, col = i % 24;
        tile[row][col] = col < 8 ? (uint16_t)(row * 8 + col) : (uint16_t)0xffff;
    }
    __syncwarp();
    const uint16_t *row = tile[lane];
    uint32_t r[4];
    dice_ldmatrix_x1(r, row);
    out[(LDM_X1 * 32 + lane) * 4] = r[0];
    dice_ldmatrix_x2(r, row);
    for (int i = 0; i < 2; i++) out[(LDM_X2 * 32 + lane) * 4 + i] = r[i];
    dice_ldmatrix_x4(r, row);
    for (int i = 0; i < 4; i++) out[(LDM_X4 * 32 + lane) * 4 + i] = r[i];
    dice_ldmatrix_x1_trans(r, row);
    out[(LDM_X1_TRANS * 32 + lane) * 4] = r[0];
    dice_ldmatrix_x2_trans(r, row);
    for (int i = 0; i < 2; i++) out[(LDM_X2_TRANS * 32 + lane) * 4 + i] = r[i];
    dice_ldmatrix_x4_trans(r, row);
    for (int i = 0; i < 4; i++) out[(LDM_X4_TRANS * 32 + lane) * 4 + i] = r[i];
}

DICE_CUDA_TEST(simt_ldmatrix_layout) {
    DevBuf<uint32_t> dout;
    CUDA_CHECK(dout.alloc(LDM_VARIANTS * 32 * 4));
    LAUNCH_CHECKED(ldmatrix_layout_kernel, 1, 32, 0, 0, dout.p);
    std::vector<uint32_t> out(dout.n);
    CUDA_CHECK(dout.download(out.data()));
    static const char *names[] = {"x1", "x2", "x4", "x1.trans", "x2.trans", "x4.trans"};
    for (int v = 0; v < LDM_VARIANTS; v++) {
        int count = v % 3 == 0 ? 1 : v % 3 == 1 ? 2 : 4, trans = v >= LDM_X1_TRANS;
        for (unsigned lane = 0; lane < 32; lane++)
            for (int m = 0; m < count; m++) {
                unsigned g = lane / 4, t = lane % 4;
                // element (row, col) of matrix m is m * 64 + row * 8 + col
                uint32_t lo = trans ? m * 64 + 2 * t * 8 + g : m * 64 + g * 8 + 2 * t;
                uint32_t hi = trans ? lo + 8 : lo + 1;
                uint32_t want = lo | hi << 16, got = out[(v * 32 + lane) * 4 + m];
                CHECK_MSG(got == want, "ldmatrix %s: lane %u register %d = 0x%08x, want 0x%08x", names[v], lane, m, got,
                          want);
            }
    }
}

// D (16, 8) = A (16, 16) * B (16, 8), bf16 row-major inputs, with the fragments loaded by ldmatrix
// from shared copies in the layouts each variant expects:
//   variant 0: A by x4 from A, B by x2 from B^T       variant 1: A by x4.trans from A^T, B by x2.trans from B
//   variant 2: B by two x1 from B^T                   variant 3: B by two x1.trans from B
// Rows are padded by 8 elements (keeping the 16-byte alignment ldmatrix needs).
__global__ void ldmatrix_mma_kernel(const uint16_t *A, const uint16_t *B, float *D, int variant) {
    __shared__ __align__(16) uint16_t sa[16][24], sat[16][24], sb[16][16], sbt[8][24];
    unsigned lane = threadIdx.x, g = lane / 4, t = lane % 4;
    for (unsigned i = lane; i < 16 * 16; i += 32) {
        unsigned m = i / 16, k = i % 16;
        sa[m][k] = A[i];
        sat[k][m] = A[i];
    }
    for (unsigned i = lane; i < 16 * 8; i += 32) {
        unsigned k = i / 8, n = i % 8;
        sb[k][n] = B[i];
        sbt[n][k] = B[i];
    }
    __syncwarp();
    uint32_t a[4], b[2];
    unsigned mat = lane / 8, r = lane % 8;
    if (variant % 2 == 0)
        dice_ldmatrix_x4(a, &sa[(mat % 2) * 8 + r][(mat / 2) * 8]);
    else
        dice_ldmatrix_x4_trans(a, &sat[(mat / 2) * 8 + r][(mat % 2) * 8]);
    unsigned j = (lane / 8) % 2;  // x2: lanes 0-15 give the rows; the others' addresses are ignored
    if (variant == 0) dice_ldmatrix_x2(b, &sbt[r][8 * j]);
    if (variant == 1) dice_ldmatrix_x2_trans(b, &sb[8 * j + r][0]);
    for (unsigned q = 0; q < 2 && variant >= 2; q++) {
        if (variant == 2) dice_ldmatrix_x1(&b[q], &sbt[r][8 * q]);
        if (variant == 3) dice_ldmatrix_x1_trans(&b[q], &sb[8 * q + r][0]);
    }
    const float zero[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    float d[4];
    dice_mma_m16n8k16_bf16(d, a, b, zero);
    for (int i = 0; i < 4; i++) D[(g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = d[i];
}

DICE_CUDA_TEST(simt_ldmatrix_feeds_mma) {
    TestRng rng = {tc->seed};
    for (int variant = 0; variant < 4; variant++) {
        std::vector<uint16_t> a_bits(16 * 16), b_bits(16 * 8);
        std::vector<float> A(a_bits.size()), B(b_bits.size()), D(16 * 8);
        random_half_floats(rng, 0, a_bits, A);
        random_half_floats(rng, 0, b_bits, B);
        DevBuf<uint16_t> da, db;
        DevBuf<float> dd;
        CUDA_CHECK(da.upload(a_bits.data(), a_bits.size()));
        CUDA_CHECK(db.upload(b_bits.data(), b_bits.size()));
        CUDA_CHECK(dd.alloc(D.size()));
        LAUNCH_CHECKED(ldmatrix_mma_kernel, 1, 32, 0, 0, da.p, db.p, dd.p, variant);
        CUDA_CHECK(dd.download(D.data()));
        char why[256];
        CHECK_MSG(matmul_close(D, A, B, nullptr, 16, 8, 16, why, sizeof why), "variant %d: %s", variant, why);
    }
}
