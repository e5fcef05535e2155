// nn/op_linear.h — linear layers and batched matrix products, with gradients (kernels in kernels/gemm*).
//
//   op_linear            y (..., out) = act(x (..., in) W^T + b), W (out, in) as in PyTorch, b (out) or NULL.
//                        W and b are frozen Tensors: backward gives dx only (the frozen UNet / DiT / text
//                        encoders), unless a tensor is bound to a Param (graph_bind_params, nn/autograd.h):
//                        then it trains as op_linear_trainable with that Param's Var.
//   op_linear_trainable  the same with W and b as Vars (e.g. from graph_param): dW = dz^T x and db = sum dz
//                        when they require a gradient (the DICE sharpener's fc1, q/k/v/out and fc2).
//   op_matmul            c (B, M, N) = a (B, M, K) @ b (B, K, N), or, with transpose_b, a @ b^T for
//                        b (B, N, K); both inputs may require a gradient.
// x, W, b share one dtype: f32 / f64 on the CPU, bf16 / f32 on CUDA (bf16 with fp32 accumulation; f32 is
// true fp32 on both CUDA engines, which is what the sharpener trains in). All inputs contiguous.
//
// act (kernels/gemm.h: GEMM_ACT_NONE, _RELU, _GELU_TANH, _GELU_ERF) is applied after the bias, in the
// GEMM's epilogue when no gradient is recorded. When the output requires a gradient, RELU stays fused
// (its derivative is read from the output) while the GELUs compute the pre-activation z with the GEMM,
// keep it for backward and apply the activation in a separate pass. On CUDA the engine is the context's
// (ctx->gemm, DICE_GEMM=cublaslt|custom; see kernels/gemm.h).
#pragma once
#include "autograd.h"
#include "kernels/gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

int op_linear(Graph *g, Var **out, Var *x, const Tensor *weight, const Tensor *bias, GemmAct act, DiceError *err);
int op_linear_trainable(Graph *g, Var **out, Var *x, Var *weight, Var *bias, GemmAct act, DiceError *err);
int op_matmul(Graph *g, Var **out, Var *a, Var *b, bool transpose_b, DiceError *err);

#ifdef __cplusplus
}
#endif
