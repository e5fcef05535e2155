// kernels/norm_cpu.c — CPU twins of kernels/norm.cu (see norm.h): group norm (optionally with SiLU) and
// layer norm, forward and backward, in f32 and f64. The bodies are written once in norm_cpu.inc and
// instantiated here for float and double.
#include <math.h>
#include <stdlib.h>

#include "norm.h"

// Gradient of the group norm's affine output z from dy: dy * silu'(z) when SiLU follows, else dy.
// xh = x^, ga = gamma[c], be = beta[c].
static inline double norm_dz(double dy, double xh, double ga, double be, bool silu) {
    if (!silu) return dy;
    double z = xh * ga + be, sg = 1.0 / (1.0 + exp(-z));
    return dy * sg * (1.0 + z * (1.0 - sg));  // d/dz z sigmoid(z)
}

#define REAL float
#define NAME(f) f##_f32
#include "norm_cpu.inc"
#undef REAL
#undef NAME
#define REAL double
#define NAME(f) f##_f64
#include "norm_cpu.inc"
#undef REAL
#undef NAME

static int check_dtype(const char *op, DType dtype, DiceError *err) {
    DICE_CHECK(err, dtype == DT_F32 || dtype == DT_F64, "%s (CPU): dtype %s is not supported (f32, f64)", op,
               dtype_name(dtype));
    return 0;
}

static int check_groups(int64_t C, int64_t G, DiceError *err) {
    DICE_CHECK(err, G > 0 && C % G == 0, "group_norm (CPU): %lld channels do not split into %lld groups",
               (long long)C, (long long)G);
    return 0;
}

int group_norm_forward_cpu(void *y, void *mean, void *rstd, const void *x, const void *gamma, const void *beta,
                           int64_t B, int64_t S, int64_t C, int64_t G, double eps, bool silu, DType dtype,
                           DiceError *err) {
    DICE_TRY(check_dtype("group_norm", dtype, err));
    DICE_TRY(check_groups(C, G, err));
    if (dtype == DT_F32) group_norm_forward_f32(y, mean, rstd, x, gamma, beta, B, S, C, G, eps, silu);
    else group_norm_forward_f64(y, mean, rstd, x, gamma, beta, B, S, C, G, eps, silu);
    return 0;
}

int group_norm_backward_cpu(void *dx, const void *dy, const void *x, const void *mean, const void *rstd,
                            const void *gamma, const void *beta, int64_t B, int64_t S, int64_t C, int64_t G, bool silu,
                            DType dtype, DiceError *err) {
    DICE_TRY(check_dtype("group_norm backward", dtype, err));
    DICE_TRY(check_groups(C, G, err));
    double *pq = malloc((size_t)(2 * B * C > 0 ? 2 * B * C : 1) * sizeof *pq);
    DICE_CHECK(err, pq, "group_norm backward (CPU): out of memory for %lld per-channel sums", (long long)(2 * B * C));
    if (dtype == DT_F32) group_norm_backward_f32(dx, dy, x, mean, rstd, gamma, beta, B, S, C, G, silu, pq, pq + B * C);
    else group_norm_backward_f64(dx, dy, x, mean, rstd, gamma, beta, B, S, C, G, silu, pq, pq + B * C);
    free(pq);
    return 0;
}

int layer_norm_forward_cpu(void *y, void *mean, void *rstd, const void *x, const void *gamma, const void *beta,
                           int64_t rows, int64_t C, double eps, DType dtype, DiceError *err) {
    DICE_TRY(check_dtype("layer_norm", dtype, err));
    if (dtype == DT_F32) layer_norm_forward_f32(y, mean, rstd, x, gamma, beta, rows, C, eps);
    else layer_norm_forward_f64(y, mean, rstd, x, gamma, beta, rows, C, eps);
    return 0;
}

int layer_norm_backward_cpu(void *dx, const void *dy, const void *x, const void *mean, const void *rstd,
                            const void *gamma, int64_t rows, int64_t C, DType dtype, DiceError *err) {
    DICE_TRY(check_dtype("layer_norm backward", dtype, err));
    if (dtype == DT_F32) layer_norm_backward_f32(dx, dy, x, mean, rstd, gamma, rows, C);
    else layer_norm_backward_f64(dx, dy, x, mean, rstd, gamma, rows, C);
    return 0;
}
