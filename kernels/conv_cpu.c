// kernels/conv_cpu.c — CPU twin of the convolution kernels (kernels/conv.h): im2col + one OpenBLAS matrix
// product per pass, f32 and f64. The im2col / col2im loops run in parallel with OpenMP over the B Ho Wo output
// (or B H W input) pixels; the matrix product uses OpenBLAS's own threads (never nested in an OpenMP region).
// A 1x1 convolution with stride 1 and no padding skips im2col: x already is its own column matrix.
#include <cblas.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"

int conv_shape_init(ConvShape *s, int B, int H, int W, int Cin, int Cout, int kh, int kw, int stride, int pad,
                    DiceError *err) {
    DICE_CHECK(err, B > 0 && H > 0 && W > 0 && Cin > 0 && Cout > 0 && kh > 0 && kw > 0,
               "conv2d: sizes must be positive (B %d, H %d, W %d, Cin %d, Cout %d, kernel %dx%d)", B, H, W, Cin, Cout,
               kh, kw);
    DICE_CHECK(err, stride > 0 && pad >= 0, "conv2d: stride %d must be positive and padding %d non-negative", stride,
               pad);
    DICE_CHECK(err, H + 2 * pad >= kh && W + 2 * pad >= kw,
               "conv2d: a %dx%d kernel does not fit a %dx%d input with padding %d", kh, kw, H, W, pad);
    s->B = B, s->H = H, s->W = W, s->Cin = Cin, s->Cout = Cout, s->kh = kh, s->kw = kw;
    s->stride = stride, s->pad = pad;
    s->Ho = (H + 2 * pad - kh) / stride + 1;
    s->Wo = (W + 2 * pad - kw) / stride + 1;
    int64_t m_out = (int64_t)B * s->Ho * s->Wo, m_in = (int64_t)B * H * W, k = (int64_t)kh * kw * Cin;
    int64_t k_dgrad = (int64_t)kh * kw * Cout;
    DICE_CHECK(err, m_out < INT_MAX / 2 && m_in < INT_MAX / 2 && k < INT_MAX / 2 && k_dgrad < INT_MAX / 2,
               "conv2d: B %d x %dx%d with %d -> %d channels exceeds the 32-bit GEMM sizes of the kernels", B, H, W,
               Cin, Cout);
    return 0;
}

double conv_flops(const ConvShape *s) {
    return 2.0 * s->B * s->Ho * s->Wo * (double)s->Cout * s->kh * s->kw * s->Cin;
}

const char *conv_tile_name(ConvTile tile) {
    switch (tile) {
    case CONV_TILE_AUTO: return "auto";
    case CONV_TILE_128x128: return "128x128";
    case CONV_TILE_128x64: return "128x64";
    case CONV_TILE_64x64: return "64x64";
    }
    return "?";
}

static bool is_pointwise(const ConvShape *s) { return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0; }

// col (B Ho Wo, kh kw Cin) = im2col(x (B, H, W, Cin)), zero where the window leaves the image. Byte copies of
// Cin-element runs, so one function serves every dtype (es = element size).
static void im2col(const ConvShape *s, size_t es, unsigned char *col, const unsigned char *x) {
    const int64_t rows = (int64_t)s->B * s->Ho * s->Wo;
    const size_t run = (size_t)s->Cin * es, row_bytes = run * (size_t)s->kh * s->kw;
#pragma omp parallel for schedule(static) if (rows * row_bytes > (1 << 18))
    for (int64_t m = 0; m < rows; m++) {
        int ox = (int)(m % s->Wo), oy = (int)(m / s->Wo % s->Ho), b = (int)(m / ((int64_t)s->Wo * s->Ho));
        unsigned char *dst = col + (size_t)m * row_bytes;
        for (int ky = 0; ky < s->kh; ky++)
            for (int kx = 0; kx < s->kw; kx++, dst += run) {
                int iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
                if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) {
                    memset(dst, 0, run);
                    continue;
                }
                memcpy(dst, x + (((size_t)b * s->H + iy) * s->W + ix) * run, run);
            }
    }
}

// dx (B, H, W, Cin) = col2im(dcol (B Ho Wo, kh kw Cin)): every input pixel gathers the column entries that
// read it (no write conflicts, so it runs in parallel over input pixels and is deterministic).
#define DEFINE_COL2IM(T, NAME)                                                                                  \
    static void NAME(const ConvShape *s, T *dx, const T *dcol) {                                              \
        const int64_t pixels = (int64_t)s->B * s->H * s->W, K = (int64_t)s->kh * s->kw * s->Cin;               \
        _Pragma("omp parallel for schedule(static) if (pixels * K > (1 << 16))")                               \
        for (int64_t p = 0; p < pixels; p++) {                                                                 \
            int ix = (int)(p % s->W), iy = (int)(p / s->W % s->H), b = (int)(p / ((int64_t)s->W * s->H));      \
            T *out = dx + p * s->Cin;                                                                          \
            for (int c = 0; c < s->Cin; c++) out[c] = 0;                                                       \
            for (int ky = 0; ky < s->kh; ky++) {                                                               \
                int ty = iy + s->pad - ky;                                                                     \
                if (ty < 0 || ty % s->stride || ty / s->stride >= s->Ho) continue;                             \
                for (int kx = 0; kx < s->kw; kx++) {                                                           \
                    int tx = ix + s->pad - kx;                                                                 \
                    if (tx < 0 || tx % s->stride || tx / s->stride >= s->Wo) continue;                         \
                    int64_t m = ((int64_t)b * s->Ho + ty / s->stride) * s->Wo + tx / s->stride;                \
                    const T *src = dcol + m * K + ((int64_t)ky * s->kw + kx) * s->Cin;                         \
                    for (int c = 0; c < s->Cin; c++) out[c] += src[c];                                         \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }
DEFINE_COL2IM(float, col2im_f32)
DEFINE_COL2IM(double, col2im_f64)

// C (M, N) = A . B (+ beta C), row-major; ta / tb: A is stored (K, M) / B is stored (N, K).
static void gemm(DType dt, bool ta, bool tb, int M, int N, int K, const void *A, const void *B, double beta, void *C) {
    int lda = ta ? M : K, ldb = tb ? K : N;
    enum CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
    if (dt == DT_F32)
        cblas_sgemm(CblasRowMajor, opa, opb, M, N, K, 1.0f, A, lda, B, ldb, (float)beta, C, N);
    else
        cblas_dgemm(CblasRowMajor, opa, opb, M, N, K, 1.0, A, lda, B, ldb, beta, C, N);
}

static int check_dtype(const char *pass, DType dt, DiceError *err) {
    DICE_CHECK(err, dt == DT_F32 || dt == DT_F64, "conv2d %s on the CPU: dtype %s (f32, f64 supported)", pass,
               dtype_name(dt));
    return 0;
}

// The im2col matrix of x (or x itself for a pointwise convolution); *owned is what to free.
static int columns(const ConvShape *s, DType dt, const void *x, const void **col, void **owned, DiceError *err) {
    *owned = NULL;
    if (is_pointwise(s)) {
        *col = x;
        return 0;
    }
    size_t es = dtype_size(dt), bytes = (size_t)s->B * s->Ho * s->Wo * s->kh * s->kw * s->Cin * es;
    *owned = malloc(bytes);
    DICE_CHECK(err, *owned, "conv2d: out of host memory for a %zu-byte im2col buffer", bytes);
    im2col(s, es, *owned, x);
    *col = *owned;
    return 0;
}

int conv2d_forward_cpu(const ConvShape *s, DType dt, void *y, const void *x, const void *w, const void *bias,
                       DiceError *err) {
    DICE_TRY(check_dtype("forward", dt, err));
    const int M = s->B * s->Ho * s->Wo, N = s->Cout, K = s->kh * s->kw * s->Cin;
    const void *col;
    void *owned;
    DICE_TRY(columns(s, dt, x, &col, &owned, err));
    if (bias) {  // y starts as the bias in every row, then y += col . w^T
        size_t es = dtype_size(dt);
#pragma omp parallel for schedule(static) if ((int64_t)M * N > (1 << 16))
        for (int m = 0; m < M; m++) memcpy((unsigned char *)y + (size_t)m * N * es, bias, (size_t)N * es);
    }
    gemm(dt, false, true, M, N, K, col, w, bias ? 1.0 : 0.0, y);
    free(owned);
    return 0;
}

int conv2d_backward_data_cpu(const ConvShape *s, DType dt, void *dx, const void *dy, const void *w, DiceError *err) {
    DICE_TRY(check_dtype("data gradient", dt, err));
    const int M = s->B * s->Ho * s->Wo, N = s->kh * s->kw * s->Cin, K = s->Cout;
    if (is_pointwise(s)) {  // dx = dy . w directly
        gemm(dt, false, false, M, N, K, dy, w, 0.0, dx);
        return 0;
    }
    size_t bytes = (size_t)M * N * dtype_size(dt);
    void *dcol = malloc(bytes);
    DICE_CHECK(err, dcol, "conv2d: out of host memory for a %zu-byte column gradient", bytes);
    gemm(dt, false, false, M, N, K, dy, w, 0.0, dcol);
    if (dt == DT_F32) col2im_f32(s, dx, dcol);
    else col2im_f64(s, dx, dcol);
    free(dcol);
    return 0;
}

// out (cols) = sums of the columns of a (rows, cols), accumulated in double.
#define DEFINE_COLUMN_SUMS(T, NAME)                                                   \
    static void NAME(T *out, const T *a, int64_t rows, int cols) {                    \
        _Pragma("omp parallel for schedule(static) if (rows * cols > (1 << 16))")      \
        for (int c = 0; c < cols; c++) {                                              \
            double acc = 0;                                                           \
            for (int64_t r = 0; r < rows; r++) acc += a[r * cols + c];               \
            out[c] = (T)acc;                                                          \
        }                                                                             \
    }
DEFINE_COLUMN_SUMS(float, column_sums_f32)
DEFINE_COLUMN_SUMS(double, column_sums_f64)

int conv2d_backward_weight_cpu(const ConvShape *s, DType dt, void *dw, const void *dy, const void *x, DiceError *err) {
    DICE_TRY(check_dtype("weight gradient", dt, err));
    const int M = s->Cout, N = s->kh * s->kw * s->Cin, K = s->B * s->Ho * s->Wo;
    const void *col;
    void *owned;
    DICE_TRY(columns(s, dt, x, &col, &owned, err));
    gemm(dt, true, false, M, N, K, dy, col, 0.0, dw);  // dw = dy^T . col
    free(owned);
    return 0;
}

int conv2d_backward_bias_cpu(const ConvShape *s, DType dt, void *dbias, const void *dy, DiceError *err) {
    DICE_TRY(check_dtype("bias gradient", dt, err));
    int64_t rows = (int64_t)s->B * s->Ho * s->Wo;
    if (dt == DT_F32) column_sums_f32(dbias, dy, rows, s->Cout);
    else column_sums_f64(dbias, dy, rows, s->Cout);
    return 0;
}
