// nn/op_shape.h — shape ops with gradients (kernels in kernels/shape_ops{_cpu.c,.cu} and nn/tensor_copy.h).
//   op_concat       (..., C1), ..., (..., Cn) -> (..., C1 + ... + Cn) along the last (channel) dim, 2 to 4 inputs
//                   with equal leading dims (UNet skip connections: NHWC (B, H, W, C1) and (B, H, W, C2))
//   op_split        (..., C) -> n parts (..., sizes[i]), sum of sizes = C; each part is a contiguous copy and its
//                   own tape node (its gradient lands in its columns of x's gradient, zeros elsewhere)
//   op_upsample2x   nearest 2x, NHWC (B, H, W, C) -> (B, 2H, 2W, C); the gradient sums each 2x2 block
//   op_reshape      a view with a new shape (x contiguous; one entry may be -1); the gradient is reshaped back
//   op_permute      a view with permuted dims (not contiguous: follow with op_contiguous before other ops)
//   op_contiguous   a contiguous copy of any view
// Concat, split and upsample take contiguous inputs (f32 / f64 on the CPU, f32 / bf16 on CUDA; one dtype);
// the views take any dtype.
#pragma once
#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

int op_concat(Graph *g, Var **out, Var *const *inputs, int n, DiceError *err);
int op_split(Graph *g, Var **outs, Var *x, int n, const int64_t *sizes, DiceError *err);
int op_upsample2x(Graph *g, Var **out, Var *x, DiceError *err);
int op_reshape(Graph *g, Var **out, Var *x, int ndim, const int64_t *shape, DiceError *err);
int op_permute(Graph *g, Var **out, Var *x, const int *perm, DiceError *err);
int op_contiguous(Graph *g, Var **out, Var *x, DiceError *err);

#ifdef __cplusplus
}
#endif
