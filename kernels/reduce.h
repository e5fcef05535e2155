// kernels/reduce.h — reductions and losses: CPU twins (kernels/reduce_cpu.c) and CUDA launchers
// (kernels/reduce.cu).
//
//   full reduction:  out = scale * sum_i f(a_i, b_i)   with f = a (SUM), |a - b| (L1), (a - b)^2 (L2)
//                    out is one f32 value (f64 when the inputs are f64); CUDA sums in fp32 by blocks,
//                    deterministically (a fixed two-stage tree, no atomics)
//   its gradient:    da_i = g * scale * f'(a_i, b_i), db_i = -da_i   (g = d loss, read from memory)
//   sum over a dim:  x viewed as (outer, n, inner) -> out (outer, inner); gradient broadcasts back
// Storage dtypes: CPU f32 and f64; CUDA f32 and bf16 (fp32 arithmetic).
#pragma once
#include <stdint.h>

#include "nn/dtype.h"
#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// Device workspace (floats) reduce_full_cuda needs for its partial sums.
#define REDUCE_PARTIALS 256

typedef enum ReduceKind { REDUCE_SUM = 0, REDUCE_L1 = 1, REDUCE_L2 = 2 } ReduceKind;

// b is ignored (may be NULL) for REDUCE_SUM. out_dtype: F32, or F64 for f64 inputs.
int reduce_full_cpu(void *out, DType out_dtype, const void *a, const void *b, int64_t n, DType dtype,
                    ReduceKind kind, double scale, DiceError *err);
// grad_out points to one value of out_dtype. da and db may each be NULL (not needed).
int reduce_full_backward_cpu(void *da, void *db, const void *grad_out, DType out_dtype, const void *a, const void *b,
                             int64_t n, DType dtype, ReduceKind kind, double scale, DiceError *err);
int sum_dim_cpu(void *out, const void *x, int64_t outer, int64_t n, int64_t inner, DType dtype, DiceError *err);
int sum_dim_backward_cpu(void *dx, const void *grad_out, int64_t outer, int64_t n, int64_t inner, DType dtype,
                         DiceError *err);

int reduce_full_cuda(void *out, DType out_dtype, const void *a, const void *b, int64_t n, DType dtype,
                     ReduceKind kind, double scale, float *workspace, void *stream, DiceError *err);
int reduce_full_backward_cuda(void *da, void *db, const void *grad_out, DType out_dtype, const void *a,
                              const void *b, int64_t n, DType dtype, ReduceKind kind, double scale, void *stream,
                              DiceError *err);
int sum_dim_cuda(void *out, const void *x, int64_t outer, int64_t n, int64_t inner, DType dtype, void *stream,
                 DiceError *err);
int sum_dim_backward_cuda(void *dx, const void *grad_out, int64_t outer, int64_t n, int64_t inner, DType dtype,
                          void *stream, DiceError *err);

#ifdef __cplusplus
}
#endif
