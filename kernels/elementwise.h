// kernels/elementwise.h — elementwise ops and their gradients: activations (GELU erf / tanh, QuickGELU,
// SiLU, ReLU, y = alpha x + beta), GEGLU, softmax over the last dim, broadcast add / mul and the
// reduction of a broadcast operand's gradient, and PixArt's adaLN-single modulation.
// CPU twins in kernels/elementwise_cpu.c (f32, f64; arithmetic in double), CUDA launchers in
// kernels/elementwise.cu (f32, bf16 storage; fp32 arithmetic). All pointers are contiguous arrays on the
// twin's device; backward functions write (do not accumulate) their gradients.
#pragma once
#include <stdint.h>

#include "nn/dtype.h"
#include "nn/error.h"
#include "nn/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- unary ops (same formulas as PyTorch)
// Both twins evaluate GELU as 0.5 x erfc(-x / sqrt 2) and the tanh variant as x sigmoid(2 z): the same functions
// without the cancellation of 1 + erf / 1 + tanh that costs fp32 its relative accuracy for negative x.
typedef enum EwUnary {
    EW_GELU,        // 0.5 x (1 + erf(x / sqrt 2))                          F.gelu(x)
    EW_GELU_TANH,   // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))     F.gelu(x, approximate="tanh")
    EW_QUICK_GELU,  // x sigmoid(1.702 x)                                    CLIP's quick_gelu
    EW_SILU,        // x sigmoid(x)
    EW_RELU,        // max(x, 0); gradient 0 at x = 0
    EW_AFFINE,      // alpha x + beta
} EwUnary;

// y = f(x) over n elements (alpha, beta: EW_AFFINE only).
int ew_unary_cpu(EwUnary op, void *y, const void *x, int64_t n, double alpha, double beta, DType dtype,
                 DiceError *err);
// dx = dy f'(x) (EW_AFFINE: dx = alpha dy, x unused).
int ew_unary_backward_cpu(EwUnary op, void *dx, const void *dy, const void *x, int64_t n, double alpha, DType dtype,
                          DiceError *err);

// ---------------------------------------------------------------- GEGLU (diffusers' GEGLU after its projection)
// x (rows, 2F) = [h | gate] -> y (rows, F) = h * gelu_erf(gate).
int ew_geglu_cpu(void *y, const void *x, int64_t rows, int64_t f, DType dtype, DiceError *err);
// dx (rows, 2F) = [dy gelu(gate) | dy h gelu'(gate)].
int ew_geglu_backward_cpu(void *dx, const void *dy, const void *x, int64_t rows, int64_t f, DType dtype,
                          DiceError *err);

// ---------------------------------------------------------------- softmax over the last dim (numerically stable)
// x, y (rows, cols).
int ew_softmax_cpu(void *y, const void *x, int64_t rows, int64_t cols, DType dtype, DiceError *err);
// dx = y (dy - sum_j dy_j y_j), from the saved output y.
int ew_softmax_backward_cpu(void *dx, const void *dy, const void *y, int64_t rows, int64_t cols, DType dtype,
                            DiceError *err);

// ---------------------------------------------------------------- broadcast binary ops
typedef enum EwBinary { EW_ADD, EW_MUL } EwBinary;

// y (contiguous, `shape`) = a op b, numpy broadcasting: a and b are read at sum_d c_d * stride[d], with stride 0
// along the dims they are broadcast over. Built by the op layer with adjacent dims merged where possible.
typedef struct EwBroadcast {
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t a_stride[TENSOR_MAX_DIMS];
    int64_t b_stride[TENSOR_MAX_DIMS];
} EwBroadcast;

int ew_binary_cpu(EwBinary op, void *y, const void *a, const void *b, const EwBroadcast *p, DType dtype,
                  DiceError *err);

// The gradient of a broadcast operand: grad[k] = sum_r dy[k, r] * other[k, r] (other == NULL: * 1), where k runs
// over the operand's own elements (row-major; `keep` dims) and r over the dims it was broadcast along (`red`).
// dy and other are addressed by the strides of each dim.
typedef struct EwReduce {
    int keep_ndim, red_ndim;
    int64_t keep_shape[TENSOR_MAX_DIMS], keep_dy[TENSOR_MAX_DIMS], keep_other[TENSOR_MAX_DIMS];
    int64_t red_shape[TENSOR_MAX_DIMS], red_dy[TENSOR_MAX_DIMS], red_other[TENSOR_MAX_DIMS];
} EwReduce;

// Offsets (along two stride sets s1, s2) of row-major index i over `shape` (host and device).
static inline DICE_HD void ew_dim_offsets(int ndim, const int64_t *shape, const int64_t *s1, const int64_t *s2,
                                          int64_t i, int64_t *o1, int64_t *o2) {
    int64_t a = 0, b = 0;
    for (int d = ndim - 1; d >= 0; d--) {
        int64_t c = i % shape[d];
        i /= shape[d];
        a += c * s1[d];
        b += c * s2[d];
    }
    *o1 = a;
    *o2 = b;
}

int ew_broadcast_grad_cpu(void *grad, const void *dy, const void *other, const EwReduce *p, DType dtype,
                          DiceError *err);

// ---------------------------------------------------------------- adaLN-single modulation (PixArt's t2i_modulate)
// x (B, N, C), scale and shift (B, C) broadcast over N: y = x (1 + scale) + shift. shift may be NULL (= 0).
int ew_modulate_cpu(void *y, const void *x, const void *scale, const void *shift, int64_t b, int64_t n, int64_t c,
                    DType dtype, DiceError *err);
// dx = dy (1 + scale), dscale = sum_n dy x, dshift = sum_n dy; each output may be NULL (not needed).
int ew_modulate_backward_cpu(void *dx, void *dscale, void *dshift, const void *dy, const void *x, const void *scale,
                             int64_t b, int64_t n, int64_t c, DType dtype, DiceError *err);

// ---------------------------------------------------------------- CUDA launchers (same semantics; f32 and bf16)
int ew_unary_cuda(EwUnary op, void *y, const void *x, int64_t n, double alpha, double beta, DType dtype, void *stream,
                  DiceError *err);
int ew_unary_backward_cuda(EwUnary op, void *dx, const void *dy, const void *x, int64_t n, double alpha, DType dtype,
                           void *stream, DiceError *err);
int ew_geglu_cuda(void *y, const void *x, int64_t rows, int64_t f, DType dtype, void *stream, DiceError *err);
int ew_geglu_backward_cuda(void *dx, const void *dy, const void *x, int64_t rows, int64_t f, DType dtype, void *stream,
                           DiceError *err);
int ew_softmax_cuda(void *y, const void *x, int64_t rows, int64_t cols, DType dtype, void *stream, DiceError *err);
int ew_softmax_backward_cuda(void *dx, const void *dy, const void *y, int64_t rows, int64_t cols, DType dtype,
                             void *stream, DiceError *err);
int ew_binary_cuda(EwBinary op, void *y, const void *a, const void *b, const EwBroadcast *p, DType dtype, void *stream,
                   DiceError *err);
int ew_broadcast_grad_cuda(void *grad, const void *dy, const void *other, const EwReduce *p, DType dtype, void *stream,
                           DiceError *err);
int ew_modulate_cuda(void *y, const void *x, const void *scale, const void *shift, int64_t b, int64_t n, int64_t c,
                     DType dtype, void *stream, DiceError *err);
int ew_modulate_backward_cuda(void *dx, void *dscale, void *dshift, const void *dy, const void *x, const void *scale,
                              int64_t b, int64_t n, int64_t c, DType dtype, void *stream, DiceError *err);

#ifdef __cplusplus
}
#endif
