// kernels/norm.h — group norm and layer norm: CPU twins (kernels/norm_cpu.c) and CUDA launchers
// (kernels/norm.cu). PyTorch semantics (biased variance, eps inside the square root).
//
// Group norm over x (B, S, C), channels last (S = H*W for NHWC images, or N tokens), G groups of C/G
// consecutive channels; statistics per (sample, group) over S * C/G elements:
//     mean, rstd = 1 / sqrt(var + eps)            (B, G)
//     z = (x - mean) * rstd * gamma[c] + beta[c]  (gamma, beta: (C), either may be NULL: 1 and 0)
//     y = silu ? z * sigmoid(z) : z               (SD's ResnetBlock2D: norm + SiLU in one pass)
// Backward gives dx only (norm weights are frozen in dice). With dz = dy * silu'(z) and x^ = (x - mean) * rstd:
//     dx = rstd * (gamma dz - mean_g(gamma dz) - x^ mean_g(gamma dz x^))      (means over the group)
// Both twins first form per-channel sums P[c] = sum_s dz and Q[c] = sum_s dz x^, then weight them by gamma
// into group sums: P and Q are exactly dbeta and dgamma of one sample, so a trainable affine would add
// sum_b P and sum_b Q as weight gradients without another pass.
//
// Layer norm over the last dim of x (rows, C): mean, rstd per row; y = (x - mean) * rstd * gamma + beta.
//
// Dtypes. CPU: f32 and f64 storage, statistics (mean, rstd) in the storage dtype, sums in double.
// CUDA: f32 and bf16 storage (gamma and beta in the same dtype as x), fp32 statistics and arithmetic.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/dtype.h"
#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- CPU twins (dtype F32 or F64)
// y (B, S, C); mean, rstd (B, G) in dtype.
int group_norm_forward_cpu(void *y, void *mean, void *rstd, const void *x, const void *gamma, const void *beta,
                           int64_t B, int64_t S, int64_t C, int64_t G, double eps, bool silu, DType dtype,
                           DiceError *err);
// dx (B, S, C) from dy (B, S, C), the forward's x, mean, rstd and affine.
int group_norm_backward_cpu(void *dx, const void *dy, const void *x, const void *mean, const void *rstd,
                            const void *gamma, const void *beta, int64_t B, int64_t S, int64_t C, int64_t G, bool silu,
                            DType dtype, DiceError *err);
// y (rows, C); mean, rstd (rows) in dtype.
int layer_norm_forward_cpu(void *y, void *mean, void *rstd, const void *x, const void *gamma, const void *beta,
                           int64_t rows, int64_t C, double eps, DType dtype, DiceError *err);
int layer_norm_backward_cpu(void *dx, const void *dy, const void *x, const void *mean, const void *rstd,
                            const void *gamma, int64_t rows, int64_t C, DType dtype, DiceError *err);

// ---------------------------------------------------------------- CUDA launchers (dtype F32 or BF16)
// Device pointers; queued on `stream` (a cudaStream_t). mean and rstd are f32 (B, G) / (rows).
//
// Group norm runs three kernels, forward and backward alike: per-chunk partial statistics (a block per
// (chunk of rows, sample), spreading a group over many blocks), a finalize (a warp per (sample, group)
// merging the chunks in a fixed order: deterministic, no atomics), and an elementwise apply. They need
// a device workspace of group_norm_cuda_workspace_bytes (any 16-byte aligned memory, contents ignored).
// C must be at most 1024 * (8 for bf16 / 4 for f32 when C is a multiple of it, else 1).
size_t group_norm_cuda_workspace_bytes(int64_t B, int64_t S, int64_t C, int64_t G, DType dtype);
int group_norm_forward_cuda(void *y, float *mean, float *rstd, const void *x, const void *gamma, const void *beta,
                            int64_t B, int64_t S, int64_t C, int64_t G, double eps, bool silu, DType dtype,
                            void *workspace, void *stream, DiceError *err);
int group_norm_backward_cuda(void *dx, const void *dy, const void *x, const float *mean, const float *rstd,
                             const void *gamma, const void *beta, int64_t B, int64_t S, int64_t C, int64_t G,
                             bool silu, DType dtype, void *workspace, void *stream, DiceError *err);
// Layer norm: a warp per row.
int layer_norm_forward_cuda(void *y, float *mean, float *rstd, const void *x, const void *gamma, const void *beta,
                            int64_t rows, int64_t C, double eps, DType dtype, void *stream, DiceError *err);
int layer_norm_backward_cuda(void *dx, const void *dy, const void *x, const float *mean, const float *rstd,
                             const void *gamma, int64_t rows, int64_t C, DType dtype, void *stream, DiceError *err);

#ifdef __cplusplus
}
#endif
