// nn/op_norm.h — normalisation ops, with gradients (PyTorch semantics: biased variance, eps inside the root).
//   op_group_norm:  x (B, H, W, C) NHWC or (B, N, C); statistics per sample over (H*W or N) x C/groups
//                   channels; optional affine gamma, beta (C) and optional SiLU fused after it
//                   (torch: silu(group_norm(x.permute(0, 3, 1, 2), groups, gamma, beta, eps)) in NHWC)
//   op_layer_norm:  x (..., C) over the last dim; optional gamma, beta (C)
// Norm weights are frozen in dice: gamma and beta are Tensors (NULL: no scale / no shift) and get no
// gradient; x gets one. The statistics (mean, rstd) are kept in the graph's arena for backward
// (fp32 on CUDA, the input dtype on the CPU). Kernels: kernels/norm{_cpu.c,.cu}.
#pragma once
#include <stdbool.h>

#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

int op_group_norm(Graph *g, Var **out, Var *x, const Tensor *gamma, const Tensor *beta, int groups, float eps,
                  bool fuse_silu, DiceError *err);
int op_layer_norm(Graph *g, Var **out, Var *x, const Tensor *gamma, const Tensor *beta, float eps, DiceError *err);

#ifdef __cplusplus
}
#endif
