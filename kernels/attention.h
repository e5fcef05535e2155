// kernels/attention.h — multi-head scaled dot-product attention, forward and backward: the CPU twins
// (kernels/attention_cpu.c) and the fused flash-attention CUDA launchers (kernels/attention_fwd.cu,
// kernels/attention_bwd.cu).
//
// Shapes (H heads of dimension D; C = H * D):
//   q (B, Nq, C)   k (B, Nk, C)   v (B, Nk, C)   ->   out (B, Nq, C),  lse (B, H, Nq)
// Head h reads columns [h * D, (h + 1) * D) of every token row. q, k and v may be strided views
// (e.g. narrow()s of one fused qkv projection): the last dim is contiguous and `stride` gives the
// elements between batches and between tokens. out, lse and every gradient are contiguous.
//
// Math, per batch b and head h, with S = scale * Q K^T (Nq x Nk):
//   key j is visible to query i  iff  key_mask[b][j] != 0 (when a mask is given)
//                                 and j <= i               (when causal: top-left aligned, as
//                                                           PyTorch's is_causal)
//   P = softmax over the visible keys of each row,  out = P V,  lse[i] = log sum_visible exp(S[i][j]).
// A query with no visible key gets out = 0, lse = +inf and zero gradients (PyTorch gives NaN there).
// Backward (FlashAttention-2): Dl[i] = sum_c dout[i][c] out[i][c],  P = exp(S - lse),
//   dV = P^T dout,  dP = dout V^T,  dS = P * (dP - Dl),  dQ = scale dS K,  dK = scale dS^T Q.
//
// Dtypes: the CPU twins compute in f32 or f64 (lse in the same dtype). The CUDA kernels take bf16
// q, k, v, out and gradients (fp32 accumulation, fp32 softmax statistics, P and dS rounded to bf16 for
// the tensor cores) and an f32 lse; D must be a multiple of 8 in [8, 256].
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "nn/dtype.h"
#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTENTION_MAX_HEAD_DIM_CUDA 256

typedef struct AttentionShape {
    int batch, heads, head_dim;   // B, H, D
    int n_q, n_k;                 // Nq, Nk
    int64_t q_stride[2];          // elements between batches, between tokens of q (last dim contiguous)
    int64_t k_stride[2];
    int64_t v_stride[2];
    float scale;                  // usually 1 / sqrt(D)
    int causal;                   // key j visible to query i only if j <= i
} AttentionShape;

// An AttentionShape for contiguous q (B, Nq, H*D), k and v (B, Nk, H*D).
AttentionShape attention_shape_contiguous(int batch, int heads, int head_dim, int n_q, int n_k, float scale,
                                          int causal);

// key_mask: (B, Nk) bytes, nonzero = keep, or NULL. dtype: DT_F32 or DT_F64 (all tensors, lse included).
int attention_forward_cpu(const AttentionShape *s, DType dtype, void *out, void *lse, const void *q, const void *k,
                          const void *v, const uint8_t *key_mask, DiceError *err);
// dq, dk, dv: contiguous like q, k, v; each may be NULL (not needed); they are overwritten.
int attention_backward_cpu(const AttentionShape *s, DType dtype, void *dq, void *dk, void *dv, const void *dout,
                           const void *q, const void *k, const void *v, const void *out, const void *lse,
                           const uint8_t *key_mask, DiceError *err);

// CUDA (bf16 bits in uint16_t, device pointers, 16-byte aligned; strides multiples of 8).
int attention_forward_cuda(const AttentionShape *s, uint16_t *out, float *lse, const uint16_t *q, const uint16_t *k,
                           const uint16_t *v, const uint8_t *key_mask, void *stream, DiceError *err);
// Bytes of device workspace attention_backward_cuda needs (fp32 dQ accumulator and the row sums Dl).
size_t attention_backward_cuda_workspace(const AttentionShape *s);
int attention_backward_cuda(const AttentionShape *s, uint16_t *dq, uint16_t *dk, uint16_t *dv, const uint16_t *dout,
                            const uint16_t *q, const uint16_t *k, const uint16_t *v, const uint16_t *out,
                            const float *lse, const uint8_t *key_mask, void *workspace, void *stream,
                            DiceError *err);

#ifdef __cplusplus
}
#endif
