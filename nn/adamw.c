// nn/adamw.c — AdamW over Params (see adamw.h); the per-element update is in kernels/adamw.h.
#include "adamw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/adamw.h"
#include "tensor_copy.h"

AdamWConfig adamw_dice_defaults(void) {
    AdamWConfig c = {2e-4, 0.9, 0.999, 1e-8, 1e-2};
    return c;
}

int adamw_init(AdamW *opt, const AdamWConfig *cfg, Param **params, int n_params, Arena *persistent, DiceCtx *ctx,
               DiceError *err) {
    memset(opt, 0, sizeof *opt);
    DICE_CHECK(err, cfg->lr > 0 && cfg->beta1 >= 0 && cfg->beta1 < 1 && cfg->beta2 >= 0 && cfg->beta2 < 1 &&
                        cfg->eps > 0 && cfg->weight_decay >= 0,
               "AdamW: invalid settings (lr %g, betas %g %g, eps %g, weight decay %g)", cfg->lr, cfg->beta1,
               cfg->beta2, cfg->eps, cfg->weight_decay);
    opt->cfg = *cfg;
    opt->params = calloc((size_t)n_params, sizeof *opt->params);
    opt->m = calloc((size_t)n_params, sizeof *opt->m);
    opt->v = calloc((size_t)n_params, sizeof *opt->v);
    if (!opt->params || !opt->m || !opt->v) {
        adamw_free(opt);
        return DICE_FAIL(err, "AdamW: out of host memory for %d parameters", n_params);
    }
    opt->n_params = n_params;
    for (int i = 0; i < n_params; i++) {
        Param *p = params[i];
        opt->params[i] = p;
        int rc = p->value.dtype == DT_F32 && p->value.device == persistent->device && tensor_is_contiguous(&p->value)
                     ? 0
                     : DICE_FAIL(err, "AdamW: parameter '%s' must be contiguous fp32 on %s", p->name,
                                 device_name(persistent->device));
        if (!rc) rc = arena_tensor(persistent, &opt->m[i], DT_F32, p->value.ndim, p->value.shape, err);
        if (!rc) rc = arena_tensor(persistent, &opt->v[i], DT_F32, p->value.ndim, p->value.shape, err);
        if (!rc) rc = tensor_zero(ctx, &opt->m[i], err);
        if (!rc) rc = tensor_zero(ctx, &opt->v[i], err);
        if (rc) {
            adamw_free(opt);
            return -1;
        }
    }
    return 0;
}

void adamw_free(AdamW *opt) {
    free(opt->params);
    free(opt->m);
    free(opt->v);
    memset(opt, 0, sizeof *opt);
}

int adamw_step(AdamW *opt, DiceCtx *ctx, DiceError *err) {
    const AdamWConfig *c = &opt->cfg;
    int64_t t = opt->step + 1;
    AdamWScalars s;
    s.decay = (float)(1.0 - c->lr * c->weight_decay);
    s.beta1 = (float)c->beta1;
    s.beta2 = (float)c->beta2;
    s.one_minus_beta1 = (float)(1.0 - c->beta1);
    s.one_minus_beta2 = (float)(1.0 - c->beta2);
    s.step_size = (float)(c->lr / (1.0 - pow(c->beta1, (double)t)));
    s.bc2_sqrt = (float)sqrt(1.0 - pow(c->beta2, (double)t));
    s.eps = (float)c->eps;
    for (int i = 0; i < opt->n_params; i++) {
        Param *p = opt->params[i];
        int64_t n = tensor_numel(&p->value);
        if (p->value.device == DEV_CPU) {
            adamw_update_cpu(p->value.data, opt->m[i].data, opt->v[i].data, p->grad.data, n, &s);
            continue;
        }
#ifdef DICE_CUDA
        if (adamw_update_cuda(p->value.data, opt->m[i].data, opt->v[i].data, p->grad.data, n, &s, ctx->stream, err)) {
            dice_error_context(err, "AdamW step %lld, parameter '%s'", (long long)t, p->name);
            return -1;
        }
#else
        (void)ctx;
        return DICE_FAIL(err, "AdamW: this build of dice has no CUDA backend");
#endif
    }
    opt->step = t;
    return 0;
}
