// nn/op_reduce.h — reductions, losses and dtype casts, with gradients.
//   op_sum / op_mean:   all elements -> a 0-d result (f32; f64 for f64 input)
//   op_sum_dim:         sum over one dim, which is removed; same dtype as x
//   op_l1_loss:         scale * sum |pred - target|      (DICE, SD1.5: scale = 1 / global batch)
//   op_mse_loss:        scale * sum (pred - target)^2    (DICE, SDXL)
//   op_cast:            x converted to dtype (e.g. the fp32 sharpener output -> bf16 for the frozen UNet);
//                       the gradient is converted back
#pragma once
#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

int op_sum(Graph *g, Var **out, Var *x, DiceError *err);
int op_mean(Graph *g, Var **out, Var *x, DiceError *err);
int op_sum_dim(Graph *g, Var **out, Var *x, int dim, DiceError *err);
int op_l1_loss(Graph *g, Var **out, Var *pred, Var *target, double scale, DiceError *err);
int op_mse_loss(Graph *g, Var **out, Var *pred, Var *target, double scale, DiceError *err);
int op_cast(Graph *g, Var **out, Var *x, DType dtype, DiceError *err);

#ifdef __cplusplus
}
#endif
