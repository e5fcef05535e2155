// kernels/reduce_cpu.c — CPU twins of kernels/reduce.cu (see reduce.h). Sums accumulate in double.
#include "reduce.h"

#include <math.h>

#include "nn/convert_elem.h"

static int check_dtype(DType dtype, DiceError *err) {
    DICE_CHECK(err, dtype == DT_F32 || dtype == DT_F64, "reduce (CPU): dtype %s is not supported (f32, f64)",
               dtype_name(dtype));
    return 0;
}

static double term(ReduceKind kind, double a, double b) {
    switch (kind) {
    case REDUCE_L1: return fabs(a - b);
    case REDUCE_L2: return (a - b) * (a - b);
    default: return a;
    }
}

// d term / d a
static double term_grad(ReduceKind kind, double a, double b) {
    switch (kind) {
    case REDUCE_L1: return a > b ? 1.0 : a < b ? -1.0 : 0.0;  // torch: sign(a - b), 0 at a == b
    case REDUCE_L2: return 2.0 * (a - b);
    default: return 1.0;
    }
}

int reduce_full_cpu(void *out, DType out_dtype, const void *a, const void *b, int64_t n, DType dtype,
                    ReduceKind kind, double scale, DiceError *err) {
    DICE_TRY(check_dtype(dtype, err));
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++)
        s += term(kind, dice_load_f64(a, dtype, i), kind == REDUCE_SUM ? 0.0 : dice_load_f64(b, dtype, i));
    dice_store_f64(out, out_dtype, 0, s * scale);
    return 0;
}

int reduce_full_backward_cpu(void *da, void *db, const void *grad_out, DType out_dtype, const void *a, const void *b,
                             int64_t n, DType dtype, ReduceKind kind, double scale, DiceError *err) {
    DICE_TRY(check_dtype(dtype, err));
    double g = dice_load_f64(grad_out, out_dtype, 0) * scale;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        double d = g * term_grad(kind, dice_load_f64(a, dtype, i), kind == REDUCE_SUM ? 0.0 : dice_load_f64(b, dtype, i));
        if (da) dice_store_f64(da, dtype, i, d);
        if (db) dice_store_f64(db, dtype, i, -d);
    }
    return 0;
}

int sum_dim_cpu(void *out, const void *x, int64_t outer, int64_t n, int64_t inner, DType dtype, DiceError *err) {
    DICE_TRY(check_dtype(dtype, err));
#pragma omp parallel for schedule(static) if (outer * inner > 4096)
    for (int64_t o = 0; o < outer * inner; o++) {
        int64_t i = o / inner, j = o % inner;
        double s = 0;
        for (int64_t k = 0; k < n; k++) s += dice_load_f64(x, dtype, (i * n + k) * inner + j);
        dice_store_f64(out, dtype, o, s);
    }
    return 0;
}

int sum_dim_backward_cpu(void *dx, const void *grad_out, int64_t outer, int64_t n, int64_t inner, DType dtype,
                         DiceError *err) {
    DICE_TRY(check_dtype(dtype, err));
#pragma omp parallel for schedule(static) if (outer * n * inner > 65536)
    for (int64_t e = 0; e < outer * n * inner; e++) {
        int64_t i = e / (n * inner), j = e % inner;
        dice_store_f64(dx, dtype, e, dice_load_f64(grad_out, dtype, i * inner + j));
    }
    return 0;
}
