// kernels/elementwise_cpu.c — CPU twins of kernels/elementwise.cu (see elementwise.h): the scalar formulas, the
// broadcast index arithmetic, and the dispatch on dtype to the bodies in elementwise_cpu.inc (f32 and f64).
#include "elementwise.h"

#include <math.h>

#define SQRT_2_OVER_PI 0.7978845608028654   // sqrt(2 / pi)
#define INV_SQRT_2PI 0.3989422804014327     // 1 / sqrt(2 pi)
#define GELU_TANH_KAPPA 0.044715
#define QUICK_GELU_ALPHA 1.702

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

// PyTorch's formulas, with 1 + erf(x / sqrt 2) written erfc(-x / sqrt 2) and 0.5 (1 + tanh z) written sigmoid(2 z):
// the same functions without the cancellation that costs fp32 its relative accuracy for negative x.
static double unary_value(EwUnary op, double x, double alpha, double beta) {
    switch (op) {
    case EW_GELU: return 0.5 * x * erfc(-x * M_SQRT1_2);
    case EW_GELU_TANH: return x * sigmoid(2.0 * SQRT_2_OVER_PI * (x + GELU_TANH_KAPPA * x * x * x));
    case EW_QUICK_GELU: return x * sigmoid(QUICK_GELU_ALPHA * x);
    case EW_SILU: return x * sigmoid(x);
    case EW_RELU: return x > 0 ? x : 0.0;
    case EW_AFFINE: return alpha * x + beta;
    }
    return NAN;
}

// d f / d x
static double unary_slope(EwUnary op, double x, double alpha) {
    switch (op) {
    case EW_GELU: return 0.5 * erfc(-x * M_SQRT1_2) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
    case EW_GELU_TANH: {  // with s = 0.5 (1 + tanh z): d/dx 0.5 x (1 + tanh z) = s + 2 x s (1 - s) dz/dx
        double s = sigmoid(2.0 * SQRT_2_OVER_PI * (x + GELU_TANH_KAPPA * x * x * x));
        return s + 2.0 * x * s * (1.0 - s) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_KAPPA * x * x);
    }
    case EW_QUICK_GELU: {
        double s = sigmoid(QUICK_GELU_ALPHA * x);
        return s + QUICK_GELU_ALPHA * x * s * (1.0 - s);
    }
    case EW_SILU: {
        double s = sigmoid(x);
        return s * (1.0 + x * (1.0 - s));
    }
    case EW_RELU: return x > 0 ? 1.0 : 0.0;
    case EW_AFFINE: return alpha;
    }
    return NAN;
}

#define T float
#define FN(name) name##_f32
#include "elementwise_cpu.inc"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "elementwise_cpu.inc"
#undef T
#undef FN

static int check_dtype(const char *what, DType dtype, DiceError *err) {
    DICE_CHECK(err, dtype == DT_F32 || dtype == DT_F64, "%s (CPU): dtype %s is not supported (f32, f64)", what,
               dtype_name(dtype));
    return 0;
}

// Calls name##_f32 or name##_f64 with the pointer arguments cast to the storage type.
#define DISPATCH(what, dtype, call_f32, call_f64)   \
    do {                                            \
        DICE_TRY(check_dtype(what, dtype, err));    \
        if (dtype == DT_F32) call_f32;              \
        else call_f64;                              \
        return 0;                                   \
    } while (0)

int ew_unary_cpu(EwUnary op, void *y, const void *x, int64_t n, double alpha, double beta, DType dtype,
                 DiceError *err) {
    DISPATCH("unary", dtype, unary_forward_f32(op, y, x, n, alpha, beta), unary_forward_f64(op, y, x, n, alpha, beta));
}

int ew_unary_backward_cpu(EwUnary op, void *dx, const void *dy, const void *x, int64_t n, double alpha, DType dtype,
                          DiceError *err) {
    DISPATCH("unary backward", dtype, unary_backward_f32(op, dx, dy, x, n, alpha),
             unary_backward_f64(op, dx, dy, x, n, alpha));
}

int ew_geglu_cpu(void *y, const void *x, int64_t rows, int64_t f, DType dtype, DiceError *err) {
    DISPATCH("geglu", dtype, geglu_forward_f32(y, x, rows, f), geglu_forward_f64(y, x, rows, f));
}

int ew_geglu_backward_cpu(void *dx, const void *dy, const void *x, int64_t rows, int64_t f, DType dtype,
                          DiceError *err) {
    DISPATCH("geglu backward", dtype, geglu_backward_f32(dx, dy, x, rows, f), geglu_backward_f64(dx, dy, x, rows, f));
}

int ew_softmax_cpu(void *y, const void *x, int64_t rows, int64_t cols, DType dtype, DiceError *err) {
    DISPATCH("softmax", dtype, softmax_forward_f32(y, x, rows, cols), softmax_forward_f64(y, x, rows, cols));
}

int ew_softmax_backward_cpu(void *dx, const void *dy, const void *y, int64_t rows, int64_t cols, DType dtype,
                            DiceError *err) {
    DISPATCH("softmax backward", dtype, softmax_backward_f32(dx, dy, y, rows, cols),
             softmax_backward_f64(dx, dy, y, rows, cols));
}

int ew_binary_cpu(EwBinary op, void *y, const void *a, const void *b, const EwBroadcast *p, DType dtype,
                  DiceError *err) {
    DISPATCH("binary", dtype, binary_f32(op, y, a, b, p), binary_f64(op, y, a, b, p));
}

int ew_broadcast_grad_cpu(void *grad, const void *dy, const void *other, const EwReduce *p, DType dtype,
                          DiceError *err) {
    DISPATCH("broadcast gradient", dtype, broadcast_grad_f32(grad, dy, other, p),
             broadcast_grad_f64(grad, dy, other, p));
}

int ew_modulate_cpu(void *y, const void *x, const void *scale, const void *shift, int64_t b, int64_t n, int64_t c,
                    DType dtype, DiceError *err) {
    DISPATCH("modulate", dtype, modulate_f32(y, x, scale, shift, b, n, c), modulate_f64(y, x, scale, shift, b, n, c));
}

int ew_modulate_backward_cpu(void *dx, void *dscale, void *dshift, const void *dy, const void *x, const void *scale,
                             int64_t b, int64_t n, int64_t c, DType dtype, DiceError *err) {
    DISPATCH("modulate backward", dtype, modulate_backward_f32(dx, dscale, dshift, dy, x, scale, b, n, c),
             modulate_backward_f64(dx, dscale, dshift, dy, x, scale, b, n, c));
}
