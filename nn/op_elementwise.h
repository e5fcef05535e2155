// nn/op_elementwise.h — elementwise ops with gradients (kernels in kernels/elementwise{_cpu.c,.cu}).
//   op_gelu, op_gelu_tanh, op_quick_gelu, op_silu, op_relu   activations, PyTorch's formulas (elementwise.h)
//   op_geglu      (..., 2F) -> (..., F): diffusers' GEGLU after its projection, h * gelu(gate), [h | gate] = x
//   op_softmax    over the last dim, fp32 statistics
//   op_add, op_mul   numpy broadcasting (right-aligned, size-1 dims stretch; up to 5 dims), e.g. (B, N, C) with
//                 (C), (B, 1, C), (B, N, C); (B, H, W, C) with (B, 1, 1, C); the gradient of a broadcast operand
//                 is summed over the dims it was stretched along
//   op_scale      y = alpha x + beta
//   op_modulate   PixArt's adaLN-single t2i_modulate: y = x (1 + scale) + shift, x (B, ..., C) and scale, shift
//                 (B, 1, ..., 1, C) of the same rank (shift may be NULL)
// Inputs are contiguous and share one dtype: f32 / f64 on the CPU, f32 / bf16 on CUDA.
#pragma once
#include "autograd.h"
#include "kernels/elementwise.h"

#ifdef __cplusplus
extern "C" {
#endif

// The checks every op of these families makes on an input: on the graph's device, contiguous, and a dtype the
// device computes in (f32 / f64 on the CPU, f32 / bf16 on CUDA). The message names `op` and the tensor.
int op_check_input(const Graph *g, const char *op, const Var *x, DiceError *err);

int op_unary(Graph *g, Var **out, Var *x, EwUnary op, double alpha, double beta, DiceError *err);
int op_gelu(Graph *g, Var **out, Var *x, DiceError *err);
int op_gelu_tanh(Graph *g, Var **out, Var *x, DiceError *err);
int op_quick_gelu(Graph *g, Var **out, Var *x, DiceError *err);
int op_silu(Graph *g, Var **out, Var *x, DiceError *err);
int op_relu(Graph *g, Var **out, Var *x, DiceError *err);
int op_scale(Graph *g, Var **out, Var *x, double alpha, double beta, DiceError *err);

int op_geglu(Graph *g, Var **out, Var *x, DiceError *err);
int op_softmax(Graph *g, Var **out, Var *x, DiceError *err);

int op_add(Graph *g, Var **out, Var *a, Var *b, DiceError *err);
int op_mul(Graph *g, Var **out, Var *a, Var *b, DiceError *err);

int op_modulate(Graph *g, Var **out, Var *x, Var *scale, Var *shift, DiceError *err);

#ifdef __cplusplus
}
#endif
