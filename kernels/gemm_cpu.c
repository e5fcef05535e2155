// kernels/gemm_cpu.c — CPU twin of kernels/gemm.cu (see gemm.h): OpenBLAS sgemm / dgemm per batch
// entry, then bias and activation in one pass; and the elementwise helpers of the linear layer
// (activation forward / backward, bias gradient), in f32 and f64.
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "gemm.h"

static int fits_blas_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

// C (M, N) += bias, then C = act(C), row by row. T is float or double.
#define GEMM_EPILOGUE(T, SUFFIX)                                                                   \
    static void epilogue_##SUFFIX(T *c, int64_t M, int64_t N, int64_t ldc, const T *bias, GemmAct act) { \
        if (!bias && act == GEMM_ACT_NONE) return;                                                 \
        _Pragma("omp parallel for schedule(static) if (M * N > 65536)")                           \
        for (int64_t m = 0; m < M; m++) {                                                          \
            T *row = c + m * ldc;                                                                  \
            for (int64_t n = 0; n < N; n++) row[n] = gemm_act_##SUFFIX(act, row[n] + (bias ? bias[n] : (T)0)); \
        }                                                                                          \
    }
GEMM_EPILOGUE(float, f32)
GEMM_EPILOGUE(double, f64)
#undef GEMM_EPILOGUE

int gemm_cpu(const GemmArgs *g, DiceError *err) {
    DICE_TRY(gemm_check_args(g, "gemm_cpu", err));
    bool f64 = g->in == DT_F64;
    DICE_CHECK(err, (g->in == DT_F32 && g->out == DT_F32) || (f64 && g->out == DT_F64),
               "gemm_cpu: %s -> %s is not supported (f32 -> f32 or f64 -> f64)", dtype_name(g->in),
               dtype_name(g->out));
    DICE_CHECK(err, fits_blas_int(g->M) && fits_blas_int(g->N) && fits_blas_int(g->K) && fits_blas_int(g->lda) &&
                        fits_blas_int(g->ldb) && fits_blas_int(g->ldc),
               "gemm_cpu: sizes or pitches beyond the BLAS int range (M %lld, N %lld, K %lld)", (long long)g->M,
               (long long)g->N, (long long)g->K);
    if (g->M == 0 || g->N == 0 || g->batch == 0) return 0;
    size_t es = f64 ? sizeof(double) : sizeof(float);
    enum CBLAS_TRANSPOSE ta = g->trans_a ? CblasTrans : CblasNoTrans, tb = g->trans_b ? CblasTrans : CblasNoTrans;
    for (int64_t z = 0; z < g->batch; z++) {
        const char *a = (const char *)g->a + (size_t)(z * g->stride_a) * es;
        const char *b = (const char *)g->b + (size_t)(z * g->stride_b) * es;
        char *c = (char *)g->c + (size_t)(z * g->stride_c) * es;
        if (g->K == 0) {  // an empty sum (BLAS rejects a zero pitch here)
            for (int64_t m = 0; m < g->M; m++) memset(c + (size_t)(m * g->ldc) * es, 0, (size_t)g->N * es);
        } else if (f64) {
            cblas_dgemm(CblasRowMajor, ta, tb, (int)g->M, (int)g->N, (int)g->K, 1.0, (const double *)a, (int)g->lda,
                        (const double *)b, (int)g->ldb, 0.0, (double *)c, (int)g->ldc);
        } else {
            cblas_sgemm(CblasRowMajor, ta, tb, (int)g->M, (int)g->N, (int)g->K, 1.0f, (const float *)a, (int)g->lda,
                        (const float *)b, (int)g->ldb, 0.0f, (float *)c, (int)g->ldc);
        }
        if (f64)
            epilogue_f64((double *)c, g->M, g->N, g->ldc, g->bias, g->act);
        else
            epilogue_f32((float *)c, g->M, g->N, g->ldc, g->bias, g->act);
    }
    return 0;
}

// y = act(z), dz = dy * act'(z), db = column sums of dz: the same bodies for float and double.
#define GEMM_ELEMENTWISE(T, SUFFIX)                                                                    \
    static void act_forward_##SUFFIX(T *y, const T *z, int64_t n, GemmAct act) {                      \
        _Pragma("omp parallel for schedule(static) if (n > 65536)")                                   \
        for (int64_t i = 0; i < n; i++) y[i] = gemm_act_##SUFFIX(act, z[i]);                           \
    }                                                                                                  \
    static void act_backward_##SUFFIX(T *dz, const T *dy, const T *z, int64_t n, GemmAct act) {      \
        _Pragma("omp parallel for schedule(static) if (n > 65536)")                                   \
        for (int64_t i = 0; i < n; i++) dz[i] = dy[i] * gemm_act_grad_##SUFFIX(act, z[i]);             \
    }                                                                                                  \
    static void bias_grad_##SUFFIX(T *db, const T *dz, int64_t rows, int64_t cols) {                  \
        _Pragma("omp parallel for schedule(static) if (rows * cols > 65536)")                         \
        for (int64_t c = 0; c < cols; c++) {                                                           \
            double s = 0;                                                                              \
            for (int64_t r = 0; r < rows; r++) s += dz[r * cols + c];                                  \
            db[c] = (T)s;                                                                              \
        }                                                                                              \
    }
GEMM_ELEMENTWISE(float, f32)
GEMM_ELEMENTWISE(double, f64)
#undef GEMM_ELEMENTWISE

#define CHECK_CPU_DTYPE(what, dtype)                                                                       \
    DICE_CHECK(err, (dtype) == DT_F32 || (dtype) == DT_F64, "%s: dtype %s is not supported on the CPU (f32, f64)", \
               what, dtype_name(dtype))

int gemm_act_forward_cpu(void *y, const void *z, int64_t n, DType dtype, GemmAct act, DiceError *err) {
    CHECK_CPU_DTYPE("gemm_act_forward_cpu", dtype);
    if (dtype == DT_F64)
        act_forward_f64(y, z, n, act);
    else
        act_forward_f32(y, z, n, act);
    return 0;
}

int gemm_act_backward_cpu(void *dz, const void *dy, const void *z, int64_t n, DType dtype, GemmAct act,
                          DiceError *err) {
    CHECK_CPU_DTYPE("gemm_act_backward_cpu", dtype);
    if (dtype == DT_F64)
        act_backward_f64(dz, dy, z, n, act);
    else
        act_backward_f32(dz, dy, z, n, act);
    return 0;
}

int gemm_bias_grad_cpu(void *db, const void *dz, int64_t rows, int64_t cols, DType dtype, DiceError *err) {
    CHECK_CPU_DTYPE("gemm_bias_grad_cpu", dtype);
    if (dtype == DT_F64)
        bias_grad_f64(db, dz, rows, cols);
    else
        bias_grad_f32(db, dz, rows, cols);
    return 0;
}
