// kernels/adamw.h — the AdamW update (PyTorch's single-tensor torch.optim.AdamW, decoupled weight
// decay) on fp32 master weights: the per-element rule shared by the CPU twin (kernels/adamw_cpu.c) and
// the CUDA kernel (kernels/adamw.cu), and their entry points.
#pragma once
#include <math.h>
#include <stdint.h>

#include "nn/dtype.h"
#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// Per-step scalars, computed on the host in double as PyTorch does, then used in fp32.
typedef struct AdamWScalars {
    float decay;          // 1 - lr * weight_decay
    float beta1, beta2;
    float one_minus_beta1, one_minus_beta2;
    float step_size;      // lr / (1 - beta1^t)
    float bc2_sqrt;       // sqrt(1 - beta2^t)
    float eps;
} AdamWScalars;

// In PyTorch's order: p *= decay; m = m + (1 - b1) (g - m); v = b2 v + (1 - b2) g^2;
// p += -step_size * m / (sqrt(v) / bc2_sqrt + eps).
static inline DICE_HD void adamw_update_elem(float *p, float *m, float *v, float g, const AdamWScalars *s) {
    float pi = *p * s->decay;
    float mi = *m + s->one_minus_beta1 * (g - *m);
    float vi = *v * s->beta2 + (g * g) * s->one_minus_beta2;
    float denom = sqrtf(vi) / s->bc2_sqrt + s->eps;
    *p = pi + (-s->step_size) * (mi / denom);
    *m = mi;
    *v = vi;
}

void adamw_update_cpu(float *p, float *m, float *v, const float *g, int64_t n, const AdamWScalars *s);
int adamw_update_cuda(float *p, float *m, float *v, const float *g, int64_t n, const AdamWScalars *s, void *stream,
                      DiceError *err);

#ifdef __cplusplus
}
#endif
