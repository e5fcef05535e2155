// nn/adamw.h — the AdamW optimiser over a set of Params (fp32 master weights and state), as
// torch.optim.AdamW defines it (decoupled weight decay, bias-corrected moments, no amsgrad).
// The moments m and v live in the persistent arena given to adamw_init, on the Params' device.
#pragma once
#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct AdamWConfig {
    double lr, beta1, beta2, eps, weight_decay;
} AdamWConfig;

// The DICE paper's settings: lr 2e-4, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2.
AdamWConfig adamw_dice_defaults(void);

typedef struct AdamW {
    AdamWConfig cfg;
    int n_params;
    Param **params;
    Tensor *m, *v;        // first and second moments, one per Param (fp32, zero at start)
    int64_t step;         // number of updates taken
} AdamW;

int adamw_init(AdamW *opt, const AdamWConfig *cfg, Param **params, int n_params, Arena *persistent, DiceCtx *ctx,
               DiceError *err);
void adamw_free(AdamW *opt);  // the moments stay in the arena; this frees the bookkeeping
// One update of every Param from its accumulated gradient (the caller zeroes gradients afterwards).
int adamw_step(AdamW *opt, DiceCtx *ctx, DiceError *err);

#ifdef __cplusplus
}
#endif
