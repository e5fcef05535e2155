// nn/op_attention.h — multi-head scaled dot-product attention (self and cross), with gradients.
//
//   op_attention(g, &out, q, k, v, heads, scale, causal, key_padding_mask, err)
//     q (B, Nq, H*D), k (B, Nk, H*D), v (B, Nk, H*D)  ->  out (B, Nq, H*D)
//     out = softmax(scale * Q K^T + mask) V per head, heads side by side in the channel dim, so the
//     UNet's (B, H*W, C) activations and the q/k/v projections need no transpose. q, k, v may be
//     strided views with a contiguous last dim (e.g. narrow()s of a fused qkv projection).
//     causal: key j is visible to query i only if j <= i (top-left aligned, PyTorch's is_causal; CLIP).
//     key_padding_mask: NULL or a (B, Nk) u8/bool tensor on the context's device, nonzero = keep
//     (T5 / PixArt padding); it must stay valid until backward has run.
//     A query with no visible key (all its keys masked) gets out = 0 and zero gradients, not NaN.
//   Gradients flow to each of q, k, v that requires one (dq, dk, dv), and nowhere else.
// Devices: CPU in f32 / f64 (kernels/attention_cpu.c); CUDA in bf16 with the fused flash-attention
// kernels (kernels/attention_fwd.cu, attention_bwd.cu), D = H*D / heads a multiple of 8 up to 256.
#pragma once
#include <stdbool.h>

#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

int op_attention(Graph *g, Var **out, Var *q, Var *k, Var *v, int heads, float scale, bool causal,
                 const Tensor *key_padding_mask, DiceError *err);

#ifdef __cplusplus
}
#endif
