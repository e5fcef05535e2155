// kernels/attention_cpu.c — CPU twins of the flash-attention kernels (kernels/attention_fwd.cu,
// kernels/attention_bwd.cu): softmax(scale Q K^T + mask) V and its backward, in f32 and f64, with the
// score matrix materialised one block of query rows at a time and the products in OpenBLAS.
// The body is kernels/attention_cpu.inc, instantiated once per float type.
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"

enum {
    ATTN_CPU_ROWS = 128,       // query rows per score block
    ATTN_CPU_PARALLEL = 4096   // score elements of a block above which its softmax loops run in parallel
};

#define REAL float
#define FN(name) name##_f32
#define GEMM cblas_sgemm
#define EXP expf
#define LOG logf
#include "attention_cpu.inc"
#undef REAL
#undef FN
#undef GEMM
#undef EXP
#undef LOG

#define REAL double
#define FN(name) name##_f64
#define GEMM cblas_dgemm
#define EXP exp
#define LOG log
#include "attention_cpu.inc"
#undef REAL
#undef FN
#undef GEMM
#undef EXP
#undef LOG

AttentionShape attention_shape_contiguous(int batch, int heads, int head_dim, int n_q, int n_k, float scale,
                                          int causal) {
    AttentionShape s;
    memset(&s, 0, sizeof s);
    int64_t C = (int64_t)heads * head_dim;
    s.batch = batch;
    s.heads = heads;
    s.head_dim = head_dim;
    s.n_q = n_q;
    s.n_k = n_k;
    s.q_stride[0] = n_q * C;
    s.k_stride[0] = s.v_stride[0] = n_k * C;
    s.q_stride[1] = s.k_stride[1] = s.v_stride[1] = C;
    s.scale = scale;
    s.causal = causal;
    return s;
}

int attention_forward_cpu(const AttentionShape *s, DType dtype, void *out, void *lse, const void *q, const void *k,
                          const void *v, const uint8_t *key_mask, DiceError *err) {
    if (s->n_q == 0 || s->batch == 0) return 0;
    if (dtype == DT_F32) return attention_forward_f32(s, out, lse, q, k, v, key_mask, err);
    if (dtype == DT_F64) return attention_forward_f64(s, out, lse, q, k, v, key_mask, err);
    return DICE_FAIL(err, "attention (CPU): dtype %s is not supported (f32, f64)", dtype_name(dtype));
}

int attention_backward_cpu(const AttentionShape *s, DType dtype, void *dq, void *dk, void *dv, const void *dout,
                           const void *q, const void *k, const void *v, const void *out, const void *lse,
                           const uint8_t *key_mask, DiceError *err) {
    if (dtype == DT_F32) return attention_backward_f32(s, dq, dk, dv, dout, q, k, v, out, lse, key_mask, err);
    if (dtype == DT_F64) return attention_backward_f64(s, dq, dk, dv, dout, q, k, v, out, lse, key_mask, err);
    return DICE_FAIL(err, "attention backward (CPU): dtype %s is not supported (f32, f64)", dtype_name(dtype));
}
