// train/dice_step.c — Algorithm 1 on a micro-batch: the random inputs (dice_prepare) and the teacher /
// student / loss / backward step (dice_step). See dice_step.h.
#include "dice_step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "nn/tensor_copy.h"

void dice_reserve_step(DicePrepare *p, PhiloxStream *normal, PhiloxStream *uniform, int64_t n_latent) {
    p->seed = normal->seed;
    p->normal_base = philox_stream_take(normal, (size_t)(p->global_batch * 2 * n_latent));
    p->uniform_base = philox_stream_take(uniform, (size_t)(2 * p->global_batch + 1));
}

// floor(u * n) for u in [0, 1), kept below n against rounding.
static int32_t draw_index(float u, int n) {
    int32_t k = (int32_t)((double)u * n);
    return k < n ? k : n - 1;
}

static float uniform_at(uint64_t seed, uint64_t offset) {
    float u;
    philox_fill_uniform_f32(&u, 1, seed, offset);
    return u;
}

int dice_prepare(const DicePrepare *p, int64_t j0, int64_t n, int64_t n_latent, const float *mean,
                 const float *logvar, float *x_t, int32_t *timesteps, int32_t *null_index, DiceError *err) {
    int64_t B = p->global_batch;
    DICE_CHECK(err, n >= 1 && j0 >= 0 && j0 + n <= B && p->n_null >= 1 && n_latent >= 1,
               "dice_prepare: samples %lld..%lld outside the global batch of %lld (or %d null embeddings)",
               (long long)j0, (long long)(j0 + n - 1), (long long)B, p->n_null);
    size_t nl = (size_t)n_latent;
    float *eps = malloc(2 * nl * sizeof *eps);
    DICE_CHECK(err, eps, "dice_prepare: out of host memory");
    int T = p->schedule->T;
    float sf = (float)p->scaling_factor;
    int32_t t_batch = draw_index(uniform_at(p->seed, p->uniform_base), T);
    for (int64_t i = 0; i < n; i++) {
        uint64_t j = (uint64_t)(j0 + i);
        philox_fill_normal_f32(eps, 2 * nl, p->seed, p->normal_base + j * 2 * nl);  // eps0, then the noise
        const float *m = mean + i * n_latent, *lv = logvar + i * n_latent;
        float *x = x_t + i * n_latent;
        for (size_t k = 0; k < nl; k++) {
            if (p->x0_mean) {
                x[k] = m[k] * sf;
                continue;
            }
            float v = lv[k] < -30.0f ? -30.0f : lv[k] > 20.0f ? 20.0f : lv[k];  // diffusers' clamp
            x[k] = (m[k] + expf(0.5f * v) * eps[k]) * sf;
        }
        int32_t t = p->t_per_sample ? draw_index(uniform_at(p->seed, p->uniform_base + 1 + j), T) : t_batch;
        timesteps[i] = t;
        schedule_add_noise(p->schedule, t, x, eps + nl, x, nl);
        null_index[i] = draw_index(uniform_at(p->seed, p->uniform_base + 1 + (uint64_t)B + j), p->n_null);
    }
    free(eps);
    return 0;
}

// The CFG target e_u + w (e_c - e_u) of the frozen UNet, evaluated as one batch of 2n, into `target`.
static int teacher(Graph *g, const Unet *u, const Tensor *x, const Tensor *c, const Tensor *cn,
                   const int32_t *timesteps, double w, Tensor *target, DiceError *err) {
    DiceCtx *ctx = g->ctx;
    int64_t n = x->shape[0];
    Tensor x2, ehs2, half;
    int64_t xs[4] = {2 * n, x->shape[1], x->shape[2], x->shape[3]}, es[3] = {2 * n, c->shape[1], c->shape[2]};
    DICE_TRY(arena_tensor(g->arena, &x2, u->dtype, 4, xs, err));   // [x_t; x_t]  (2n, h, w, c)
    DICE_TRY(arena_tensor(g->arena, &ehs2, u->dtype, 3, es, err)); // [cn; c]     (2n, L, d_e)
    for (int k = 0; k < 2; k++) {
        DICE_TRY(tensor_narrow(&half, &x2, 0, k * n, n, err));
        DICE_TRY(tensor_copy(ctx, &half, x, err));
        DICE_TRY(tensor_narrow(&half, &ehs2, 0, k * n, n, err));
        DICE_TRY(tensor_copy(ctx, &half, k == 0 ? cn : c, err));
    }
    int32_t *t2 = malloc((size_t)(2 * n) * sizeof *t2);
    DICE_CHECK(err, t2, "dice_step: out of host memory");
    memcpy(t2, timesteps, (size_t)n * sizeof *t2);
    memcpy(t2 + n, timesteps, (size_t)n * sizeof *t2);
    Tensor t2_host;
    Var *xv, *ev, *eps, *e_u, *e_c, *neg, *diff, *scaled, *out;
    int rc = tensor_wrap(&t2_host, t2, DT_I32, DEV_CPU, 1, (int64_t[]){2 * n}, err);
    if (!rc) rc = graph_leaf(g, &xv, &x2, false, err);
    if (!rc) rc = graph_leaf(g, &ev, &ehs2, false, err);
    if (!rc) rc = unet_forward(g, u, xv, &t2_host, ev, &eps, err);               // (2n, h, w, c_out)
    free(t2);
    DICE_TRY(rc);
    DICE_TRY(tensor_narrow(&half, &eps->value, 0, 0, n, err));
    DICE_TRY(graph_leaf(g, &e_u, &half, false, err));
    DICE_TRY(tensor_narrow(&half, &eps->value, 0, n, n, err));
    DICE_TRY(graph_leaf(g, &e_c, &half, false, err));
    DICE_TRY(op_scale(g, &neg, e_u, -1.0, 0.0, err));
    DICE_TRY(op_add(g, &diff, e_c, neg, err));
    DICE_TRY(op_scale(g, &scaled, diff, w, 0.0, err));
    DICE_TRY(op_add(g, &out, e_u, scaled, err));
    return tensor_copy(ctx, target, &out->value, err);
}

static int check_inputs(const DiceNets *nets, const DiceMicroBatch *mb, DiceError *err) {
    const Unet *u = nets->unet;
    const Tensor *ne = nets->null_embeds;
    int64_t d_e = nets->sharpener->d_e;
    DICE_CHECK(err, nets->clip->cfg.hidden_size == d_e && u->cfg.cross_attention_dim[0] == d_e,
               "dice_step: the text encoder's width %d, the UNet's cross_attention_dim %lld and the sharpener's d_e "
               "%lld must agree",
               nets->clip->cfg.hidden_size, (long long)u->cfg.cross_attention_dim[0], (long long)d_e);
    DICE_CHECK(err, ne->ndim == 3 && ne->shape[0] >= 1 && ne->shape[1] == mb->seq_len && ne->shape[2] == d_e &&
                        ne->dtype == nets->sharpener->params[0].value.dtype,
               "dice_step: null embeddings must be (K, %lld, %lld) in the sharpener's dtype", (long long)mb->seq_len,
               (long long)d_e);
    DICE_CHECK(err, mb->n >= 1 && mb->c == u->cfg.in_channels,
               "dice_step: %lld samples of %lld latent channels for a UNet taking %lld", (long long)mb->n,
               (long long)mb->c, (long long)u->cfg.in_channels);
    for (int64_t i = 0; i < mb->n; i++)
        DICE_CHECK(err, mb->null_index[i] >= 0 && mb->null_index[i] < ne->shape[0],
                   "dice_step: null index %d of sample %lld outside 0..%lld", mb->null_index[i], (long long)i,
                   (long long)ne->shape[0] - 1);
    return 0;
}

// The per-sample factor that turns a difference of raw outputs into a difference of implied noise
// (DiceStepConfig.noise_space), broadcast to w, a new tensor of like's shape (n, h, w, c) and dtype on the device.
static int noise_space_factors(Graph *g, const NoiseSchedule *s, const int32_t *timesteps, const Tensor *like,
                               Tensor *w, DiceError *err) {
    int64_t n = like->shape[0], per = tensor_numel(like) / n;
    double *host = malloc((size_t)tensor_numel(like) * sizeof *host);  // f64: exact for the f64 gradient checks
    DICE_CHECK(err, host, "dice_step: out of host memory");
    int rc = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        int t = timesteps[i];
        if (t < 0 || t >= s->T) {
            rc = DICE_FAIL(err, "dice_step: timestep %d of sample %lld outside 0..%d", t, (long long)i, s->T - 1);
            break;
        }
        double abar = s->alphas_cumprod[t];
        double f = s->prediction_type == PRED_V_PREDICTION ? sqrt(abar)
                   : s->prediction_type == PRED_SAMPLE     ? sqrt(abar / (1 - abar))
                                                           : 1.0;
        for (int64_t k = 0; k < per; k++) host[i * per + k] = f;
    }
    Tensor h;
    if (!rc) rc = tensor_wrap(&h, host, DT_F64, DEV_CPU, like->ndim, like->shape, err);
    if (!rc) rc = tensor_to(g->ctx, g->arena, w, &h, like->dtype, err);
    free(host);
    return rc;
}

// The scalar value of a 0-d or one-element tensor, on the host.
static int read_scalar(DiceCtx *ctx, const Tensor *t, double *out, DiceError *err) {
    Tensor h;
    if (t->dtype == DT_F64) {
        DICE_TRY(tensor_wrap(&h, out, DT_F64, DEV_CPU, t->ndim, t->shape, err));
        return tensor_copy(ctx, &h, t, err);
    }
    float f;
    DICE_CHECK(err, t->dtype == DT_F32, "dice_step: the loss is %s, expected f32 or f64", dtype_name(t->dtype));
    DICE_TRY(tensor_wrap(&h, &f, DT_F32, DEV_CPU, t->ndim, t->shape, err));
    DICE_TRY(tensor_copy(ctx, &h, t, err));
    *out = f;
    return 0;
}

int dice_step(Graph *g, const DiceNets *nets, const DiceStepConfig *cfg, const DiceMicroBatch *mb, bool backward,
              double *loss, DiceError *err) {
    DICE_TRY(check_inputs(nets, mb, err));
    DiceCtx *ctx = g->ctx;
    Arena *A = g->arena;
    const Unet *u = nets->unet;
    DType sd = nets->sharpener->params[0].value.dtype;
    int64_t n = mb->n, L = mb->seq_len, d_e = nets->sharpener->d_e;
    Tensor ids, x_host, t_host, x, c_s, cn_s, target, row, src;
    DICE_TRY(tensor_wrap(&ids, (void *)mb->token_ids, DT_I32, DEV_CPU, 2, (int64_t[]){n, L}, err));
    DICE_TRY(tensor_wrap(&x_host, (void *)mb->x_t, DT_F32, DEV_CPU, 4, (int64_t[]){n, mb->h, mb->w, mb->c}, err));
    DICE_TRY(tensor_wrap(&t_host, (void *)mb->timesteps, DT_I32, DEV_CPU, 1, (int64_t[]){n}, err));
    DICE_TRY(tensor_to(ctx, A, &x, &x_host, u->dtype, err));                        // (n, h, w, c)
    DICE_TRY(arena_tensor(A, &cn_s, sd, 3, (int64_t[]){n, L, d_e}, err));           // (n, L, d_e)
    for (int64_t i = 0; i < n; i++) {
        DICE_TRY(tensor_narrow(&row, &cn_s, 0, i, 1, err));
        DICE_TRY(tensor_narrow(&src, nets->null_embeds, 0, mb->null_index[i], 1, err));
        DICE_TRY(tensor_copy(ctx, &row, &src, err));
    }
    DICE_TRY(arena_tensor(A, &target, u->dtype, 4, (int64_t[]){n, mb->h, mb->w, u->cfg.out_channels}, err));

    graph_no_grad_begin(g);
    ClipEncoderOutput co;
    memset(&co, 0, sizeof co);
    int rc = clip_encoder_forward(g, nets->clip, &ids, CLIP_LAST_HIDDEN_STATE, &co, err);   // c (n, L, d_e)
    if (!rc) rc = tensor_to(ctx, A, &c_s, &co.hidden->value, sd, err);
    ArenaMark mark = arena_mark(A);
    if (!rc) rc = teacher(g, u, &x, &co.hidden->value, &cn_s, mb->timesteps, cfg->guidance, &target, err);
    arena_release(A, mark);
    graph_no_grad_end(g);
    DICE_TRY(rc);

    if (!backward) graph_no_grad_begin(g);
    Var *cv, *cnv, *c_phi, *xv, *pred, *tv, *lv;
    rc = graph_leaf(g, &cv, &c_s, false, err);
    if (!rc) rc = graph_leaf(g, &cnv, &cn_s, false, err);
    if (!rc) rc = sharpener_forward(g, nets->sharpener, cv, cnv, cfg->alpha, &c_phi, err);   // (n, L, d_e)
    if (!rc && sd != u->dtype) rc = op_cast(g, &c_phi, c_phi, u->dtype, err);
    if (!rc) rc = graph_leaf(g, &xv, &x, false, err);
    if (!rc) rc = unet_forward(g, u, xv, &t_host, c_phi, &pred, err);                     // (n, h, w, c_out)
    if (!rc) rc = graph_leaf(g, &tv, &target, false, err);
    if (!rc && cfg->noise_space && cfg->noise_space->prediction_type != PRED_EPSILON) {
        Tensor f;  // (n, h, w, c_out): each sample's factor
        Var *fv;
        rc = noise_space_factors(g, cfg->noise_space, mb->timesteps, &target, &f, err);
        if (!rc) rc = graph_leaf(g, &fv, &f, false, err);
        if (!rc) rc = op_mul(g, &pred, pred, fv, err);
        if (!rc) rc = op_mul(g, &tv, tv, fv, err);
    }
    double scale = 1.0 / (double)cfg->global_batch;
    if (!rc) rc = cfg->loss == DICE_LOSS_L1 ? op_l1_loss(g, &lv, pred, tv, scale, err)
                                            : op_mse_loss(g, &lv, pred, tv, scale, err);
    if (!backward) graph_no_grad_end(g);
    DICE_TRY(rc);
    double value;
    DICE_TRY(read_scalar(ctx, &lv->value, &value, err));
    *loss += value;
    return backward ? graph_backward(g, lv, err) : 0;
}
