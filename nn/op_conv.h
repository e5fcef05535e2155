// nn/op_conv.h — 2-D convolution on NHWC activations (PyTorch's conv2d semantics), with gradients.
//   op_conv2d            frozen weight and bias (Tensors): only the input gradient is computed, unless one is
//                        bound to a Param (graph_bind_params, nn/autograd.h): then it trains as below
//   op_conv2d_trainable  weight and bias are Vars: their gradients too, when they require one
// x (B, H, W, Cin) -> out (B, Ho, Wo, Cout), Ho = (H + 2 padding - kh) / stride + 1 (likewise Wo).
// weight (Cout, kh, kw, Cin) "OHWI": repack PyTorch's (Cout, Cin, kh, kw) once at load with
// conv_weight_from_oihw. bias (Cout) or NULL. Any kernel size, stride >= 1, zero padding >= 0.
// Dtypes: f32 / f64 on the CPU; bf16 on CUDA (fp32 accumulation), where the custom implicit-GEMM kernels run
// unless the context's DICE_CONV says cudnn (kernels/conv.h).
#pragma once
#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

int op_conv2d(Graph *g, Var **out, Var *x, const Tensor *weight, const Tensor *bias, int stride, int padding,
              DiceError *err);
int op_conv2d_trainable(Graph *g, Var **out, Var *x, Var *weight, Var *bias, int stride, int padding, DiceError *err);

// dst (Cout, kh, kw, Cin) <- src (Cout, Cin, kh, kw), converting the dtype if they differ; both tensors on
// ctx's device (repack on the host before uploading, or after).
int conv_weight_from_oihw(DiceCtx *ctx, Tensor *dst, const Tensor *src, DiceError *err);

#ifdef __cplusplus
}
#endif
