// nn/ops.h — the op layer: how ops are written, and every op family's header.
//
// An op is a function
//     int op_NAME(Graph *g, Var **out, Var *x, ..., const Tensor *frozen_weight, ..., DiceError *err);
// It checks shapes and dtypes (one clear message naming the op and the offending shapes), allocates its
// output with graph_new_var (in the graph's arena, on g->ctx's device), computes the forward on the
// device of g->ctx by calling the CPU twin or the CUDA launcher in kernels/, and, when the output
// requires a gradient, saves what backward needs (arena memory) and calls graph_record.
// Backward computes only what is needed: the input gradient of each input Var with requires_grad,
// and weight gradients only for trainable weights (Vars or Params), never for frozen Tensors.
//
// Dtypes: on the CPU every op runs in f32 and f64 (f64 is what the finite-difference gradient checks
// use, tests/gradcheck.h); on CUDA ops run in bf16 (fp32 accumulation and statistics) and, where a
// test needs it, f32. All inputs of an op share one dtype; op_cast changes it.
// Layouts: images NHWC (B, H, W, C); sequences (B, N, C); linear weights (out, in) as in PyTorch.
//
// Files: nn/op_<family>.c holds the ops of a family (dispatch + backward), kernels/<family>_cpu.c the CPU
// twins, kernels/<family>.cu the CUDA kernels and launchers, kernels/<family>.h both declarations.
#pragma once
#include "autograd.h"
#include "op_attention.h"
#include "op_conv.h"
#include "op_elementwise.h"
#include "op_embed.h"
#include "op_linear.h"
#include "op_norm.h"
#include "op_reduce.h"
#include "op_shape.h"
