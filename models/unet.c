// models/unet.c — UNet2DConditionModel: the down / mid / up assembly with its skip connections, the time
// embedding, loading by diffusers' names and the forward pass (see unet.h; the blocks are in unet_blocks.c).
#include "unet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/tensor_copy.h"

// Requests every tensor, in diffusers' module order. The channels of the skip connections are followed on a
// stack exactly as the forward pass pushes and pops them, which gives diffusers' up-block resnet widths.
static int load_all(Unet *u, Weights *w, DiceError *err) {
    const UnetConfig *c = &u->cfg;
    int n = c->n_levels;
    int64_t c0 = c->block_out_channels[0], temb = 4 * c0;
    u->temb_dim = temb;
    DICE_TRY(unet_get_conv(w, &u->conv_in_w, &u->conv_in_b, c0, c->in_channels, c->conv_in_kernel, "", "conv_in",
                           err));
    DICE_TRY(unet_get_matrix(w, &u->time_1_w, &u->time_1_b, temb, c0, false, "time_embedding", "linear_1", err));
    DICE_TRY(unet_get_matrix(w, &u->time_2_w, &u->time_2_b, temb, temb, false, "time_embedding", "linear_2", err));

    int n_skips = 1;
    for (int i = 0; i < n; i++) n_skips += c->layers_per_block[i] + 1;
    int64_t *skips = malloc((size_t)n_skips * sizeof *skips);
    DICE_CHECK(err, skips, "unet: out of host memory");
    int top = 0, rc = 0;
    skips[top++] = c0;
    int64_t ch = c0;
    char prefix[256];
    for (int i = 0; i < n && !rc; i++) {
        UnetLevel *l = &u->down[i];
        int64_t cout = c->block_out_channels[i];
        l->n_layers = c->layers_per_block[i];
        l->resnets = calloc((size_t)l->n_layers, sizeof *l->resnets);
        if (c->down_cross_attn[i]) l->attentions = calloc((size_t)l->n_layers, sizeof *l->attentions);
        if (!l->resnets || (c->down_cross_attn[i] && !l->attentions)) rc = DICE_FAIL(err, "unet: out of host memory");
        for (int j = 0; j < l->n_layers && !rc; j++) {
            snprintf(prefix, sizeof prefix, "down_blocks.%d.resnets.%d", i, j);
            rc = unet_resnet_load(&l->resnets[j], w, prefix, ch, cout, temb, c, err);
            ch = cout;
            if (!rc && l->attentions) {
                snprintf(prefix, sizeof prefix, "down_blocks.%d.attentions.%d", i, j);
                rc = unet_transformer_load(&l->attentions[j], w, prefix, cout, c->heads[i], c->transformer_layers[i],
                                           c->cross_attention_dim[i], c, err);
            }
            skips[top++] = cout;
        }
        if (!rc && i < n - 1) {
            snprintf(prefix, sizeof prefix, "down_blocks.%d.downsamplers.0", i);
            rc = unet_sampler_load(l, w, prefix, cout, err);
            skips[top++] = cout;
        }
    }
    if (!rc && c->has_mid) {
        for (int j = 0; j < 2 && !rc; j++) {
            snprintf(prefix, sizeof prefix, "mid_block.resnets.%d", j);
            rc = unet_resnet_load(&u->mid_resnets[j], w, prefix, ch, ch, temb, c, err);
        }
        if (!rc) rc = unet_transformer_load(&u->mid_attention, w, "mid_block.attentions.0", ch, c->heads[n - 1],
                                            c->transformer_layers[n - 1], c->cross_attention_dim[n - 1], c, err);
    }
    for (int i = 0; i < n && !rc; i++) {
        int level = n - 1 - i;
        UnetLevel *l = &u->up[i];
        int64_t cout = c->block_out_channels[level];
        l->n_layers = c->layers_per_block[level] + 1;
        l->resnets = calloc((size_t)l->n_layers, sizeof *l->resnets);
        if (c->up_cross_attn[i]) l->attentions = calloc((size_t)l->n_layers, sizeof *l->attentions);
        if (!l->resnets || (c->up_cross_attn[i] && !l->attentions)) rc = DICE_FAIL(err, "unet: out of host memory");
        for (int j = 0; j < l->n_layers && !rc; j++) {
            snprintf(prefix, sizeof prefix, "up_blocks.%d.resnets.%d", i, j);
            rc = unet_resnet_load(&l->resnets[j], w, prefix, ch + skips[--top], cout, temb, c, err);
            ch = cout;
            if (!rc && l->attentions) {
                snprintf(prefix, sizeof prefix, "up_blocks.%d.attentions.%d", i, j);
                rc = unet_transformer_load(&l->attentions[j], w, prefix, cout, c->heads[level],
                                           c->transformer_layers[level], c->cross_attention_dim[level], c, err);
            }
        }
        if (!rc && i < n - 1) {
            snprintf(prefix, sizeof prefix, "up_blocks.%d.upsamplers.0", i);
            rc = unet_sampler_load(l, w, prefix, cout, err);
        }
    }
    free(skips);
    DICE_TRY(rc);
    DICE_TRY(unet_get_vector(w, &u->norm_out_w, c0, "conv_norm_out", "weight", err));
    DICE_TRY(unet_get_vector(w, &u->norm_out_b, c0, "conv_norm_out", "bias", err));
    return unet_get_conv(w, &u->conv_out_w, &u->conv_out_b, c->out_channels, c0, c->conv_out_kernel, "", "conv_out",
                         err);
}

int unet_load(Unet *u, const UnetConfig *cfg, Weights *w, DiceError *err) {
    memset(u, 0, sizeof *u);
    u->cfg = *cfg;
    u->dtype = w->dtype;
    int rc = load_all(u, w, err);
    if (rc) unet_free(u);
    return rc;
}

static void level_free(UnetLevel *l) {
    if (l->attentions)
        for (int j = 0; j < l->n_layers; j++) unet_transformer_free(&l->attentions[j]);
    free(l->attentions);
    free(l->resnets);
}

void unet_free(Unet *u) {
    for (int i = 0; i < UNET_MAX_LEVELS; i++) level_free(&u->down[i]), level_free(&u->up[i]);
    unet_transformer_free(&u->mid_attention);
    memset(u, 0, sizeof *u);
}

int unet_load_dir(Unet *u, const char *dir, DiceCtx *ctx, Arena *arena, DType dtype, DiceError *err) {
    memset(u, 0, sizeof *u);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    UnetConfig cfg;
    DICE_TRY(unet_config_load(&cfg, path, err));
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    if (access(path, F_OK)) snprintf(path, sizeof path, "%s/diffusion_pytorch_model.fp16.safetensors", dir);
    DICE_CHECK(err, !access(path, R_OK),
               "%s: no diffusion_pytorch_model.safetensors or diffusion_pytorch_model.fp16.safetensors (a .bin "
               "pickle must be converted to safetensors first)", dir);
    const char *paths[1] = {path};
    Weights w;
    DICE_TRY(weights_open(&w, paths, 1, ctx, arena, dtype, err));
    int rc = unet_load(u, &cfg, &w, err);
    if (!rc) rc = weights_finish(&w, err);
    weights_close(&w);
    if (rc) unet_free(u);
    return rc;
}

// The timesteps (CPU, (B), (1) or 0-d, any float or integer dtype) as an f32 (B) tensor on the graph's device.
static int timesteps_f32(Graph *g, const Tensor *ts, int64_t batch, Tensor *out, DiceError *err) {
    char d[96];
    int64_t n = tensor_numel(ts);
    DICE_CHECK(err, ts->device == DEV_CPU && ts->ndim <= 1 && (n == batch || n == 1) && tensor_is_contiguous(ts),
               "unet: timesteps %s must be a contiguous CPU tensor of %lld values (or one)",
               tensor_describe(ts, d, sizeof d), (long long)batch);
    float *host = malloc((size_t)batch * sizeof *host);
    DICE_CHECK(err, host, "unet: out of host memory");
    DiceCtx cpu;
    ctx_init_cpu(&cpu);
    Tensor src, dst;
    int rc = tensor_reshape(&src, ts, 1, &n, err);
    if (!rc) rc = tensor_wrap(&dst, host, DT_F32, DEV_CPU, 1, &n, err);
    if (!rc) rc = tensor_copy(&cpu, &dst, &src, err);
    for (int64_t i = n; i < batch && !rc; i++) host[i] = host[0];
    if (!rc) rc = tensor_wrap(&dst, host, DT_F32, DEV_CPU, 1, &batch, err);
    if (!rc) rc = arena_tensor(g->arena, out, DT_F32, 1, &batch, err);
    if (!rc) rc = tensor_copy(g->ctx, out, &dst, err);
    free(host);
    return rc;
}

// Per-block recomputation: each resnet and transformer becomes one graph_checkpoint node when u->checkpoint
// is set and the block's output will need a gradient.
static int resnet_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    return unet_resnet_forward(g, user, in[0], in[1], out, err);
}

static int transformer_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    return unet_transformer_forward(g, user, in[0], in[1], out, err);
}

static bool checkpointed(Graph *g, const Unet *u, Var *a, Var *b) {
    return u->checkpoint && graph_recording(g) && (a->requires_grad || b->requires_grad);
}

static int resnet(Graph *g, const Unet *u, const UnetResnet *r, Var *x, Var *emb_act, Var **out, DiceError *err) {
    if (!checkpointed(g, u, x, emb_act)) return unet_resnet_forward(g, r, x, emb_act, out, err);
    Var *in[2] = {x, emb_act};
    return graph_checkpoint(g, resnet_fn, (void *)r, in, 2, out, err);
}

static int transformer(Graph *g, const Unet *u, const UnetTransformer *t, Var *x, Var *ctx, Var **out,
                       DiceError *err) {
    if (!checkpointed(g, u, x, ctx)) return unet_transformer_forward(g, t, x, ctx, out, err);
    Var *in[2] = {x, ctx};
    return graph_checkpoint(g, transformer_fn, (void *)t, in, 2, out, err);
}

// time_embedding(time_proj(timesteps)) (+ the added conditioning), then SiLU as every resnet applies it:
// emb_act (B, temb).
static int time_embedding(Graph *g, const Unet *u, const Tensor *timesteps, int64_t batch,
                          const UnetForwardOpts *opts, Var **emb_act, DiceError *err) {
    const UnetConfig *c = &u->cfg;
    Tensor ts;
    DICE_TRY(timesteps_f32(g, timesteps, batch, &ts, err));
    TimestepEmbedConfig tc = {.dim = c->block_out_channels[0], .flip_sin_to_cos = c->flip_sin_to_cos,
                              .freq_shift = c->freq_shift, .scale = 1.0, .max_period = 10000.0};
    Var *e;
    DICE_TRY(op_timestep_embedding(g, &e, &ts, &tc, u->dtype, err));                     // (B, C0)
    DICE_TRY(op_linear(g, &e, e, &u->time_1_w, &u->time_1_b, GEMM_ACT_NONE, err));       // (B, temb)
    DICE_TRY(op_silu(g, &e, e, err));
    DICE_TRY(op_linear(g, &e, e, &u->time_2_w, &u->time_2_b, GEMM_ACT_NONE, err));
    if (opts && opts->added_time_emb) {
        const Tensor *a = &opts->added_time_emb->value;
        char d[96];
        DICE_CHECK(err, a->ndim == 2 && a->shape[0] == batch && a->shape[1] == u->temb_dim,
                   "unet: added_time_emb %s must be (%lld, %lld)", tensor_describe(a, d, sizeof d), (long long)batch,
                   (long long)u->temb_dim);
        DICE_TRY(op_add(g, &e, e, opts->added_time_emb, err));
    }
    return op_silu(g, emb_act, e, err);
}

static int check_inputs(const Unet *u, const Var *x, const Var *ehs, DiceError *err) {
    const UnetConfig *c = &u->cfg;
    const Tensor *xt = &x->value, *et = &ehs->value;
    char d[96];
    DICE_CHECK(err, xt->ndim == 4 && xt->shape[3] == c->in_channels && xt->dtype == u->dtype,
               "unet: sample %s must be (B, H, W, %lld) NHWC in %s", tensor_describe(xt, d, sizeof d),
               (long long)c->in_channels, dtype_name(u->dtype));
    int64_t factor = (int64_t)1 << (c->n_levels - 1);
    DICE_CHECK(err, xt->shape[1] % factor == 0 && xt->shape[2] % factor == 0,
               "unet: sample %s: height and width must be multiples of %lld (2^%d downsamplings)",
               tensor_describe(xt, d, sizeof d), (long long)factor, c->n_levels - 1);
    DICE_CHECK(err, et->ndim == 3 && et->shape[0] == xt->shape[0],
               "unet: encoder_hidden_states %s must be (%lld, N, cross_attention_dim)",
               tensor_describe(et, d, sizeof d), (long long)xt->shape[0]);
    for (int i = 0; i < c->n_levels; i++) {
        bool attn = c->down_cross_attn[i] || c->up_cross_attn[c->n_levels - 1 - i] ||
                    (c->has_mid && i == c->n_levels - 1);
        DICE_CHECK(err, !attn || et->shape[2] == c->cross_attention_dim[i],
                   "unet: encoder_hidden_states %s: level %d attends to cross_attention_dim %lld",
                   tensor_describe(et, d, sizeof d), i, (long long)c->cross_attention_dim[i]);
    }
    return 0;
}

int unet_forward_opts(Graph *g, const Unet *u, Var *x, const Tensor *timesteps, Var *encoder_hidden_states,
                      const UnetForwardOpts *opts, Var **eps, DiceError *err) {
    DICE_TRY(check_inputs(u, x, encoder_hidden_states, err));
    const UnetConfig *c = &u->cfg;
    int n = c->n_levels;
    Var *emb, *h, *ctx = encoder_hidden_states;
    DICE_TRY(time_embedding(g, u, timesteps, x->value.shape[0], opts, &emb, err));
    DICE_TRY(op_conv2d(g, &h, x, &u->conv_in_w, &u->conv_in_b, 1, (c->conv_in_kernel - 1) / 2, err));  // (B,H,W,C0)

    int n_skips = 1;
    for (int i = 0; i < n; i++) n_skips += c->layers_per_block[i] + 1;
    Var **skips = malloc((size_t)n_skips * sizeof *skips);
    DICE_CHECK(err, skips, "unet: out of host memory");
    int top = 0, rc = 0;
    skips[top++] = h;
    for (int i = 0; i < n && !rc; i++) {
        const UnetLevel *l = &u->down[i];
        for (int j = 0; j < l->n_layers && !rc; j++) {
            rc = resnet(g, u, &l->resnets[j], h, emb, &h, err);
            if (!rc && l->attentions) rc = transformer(g, u, &l->attentions[j], h, ctx, &h, err);
            skips[top++] = h;
        }
        if (!rc && l->has_sampler) {
            rc = unet_downsample_forward(g, l, h, &h, err);
            skips[top++] = h;
        }
    }
    if (!rc && c->has_mid) {
        rc = resnet(g, u, &u->mid_resnets[0], h, emb, &h, err);
        if (!rc) rc = transformer(g, u, &u->mid_attention, h, ctx, &h, err);
        if (!rc) rc = resnet(g, u, &u->mid_resnets[1], h, emb, &h, err);
    }
    for (int i = 0; i < n && !rc; i++) {
        const UnetLevel *l = &u->up[i];
        for (int j = 0; j < l->n_layers && !rc; j++) {
            Var *cat[2] = {h, skips[--top]};
            rc = op_concat(g, &h, cat, 2, err);                       // (B, H, W, C + C_skip)
            if (!rc) rc = resnet(g, u, &l->resnets[j], h, emb, &h, err);
            if (!rc && l->attentions) rc = transformer(g, u, &l->attentions[j], h, ctx, &h, err);
        }
        if (!rc && l->has_sampler) rc = unet_upsample_forward(g, l, h, &h, err);
    }
    free(skips);
    DICE_TRY(rc);
    DICE_TRY(op_group_norm(g, &h, h, &u->norm_out_w, &u->norm_out_b, c->norm_num_groups, c->norm_eps, true, err));
    return op_conv2d(g, eps, h, &u->conv_out_w, &u->conv_out_b, 1, (c->conv_out_kernel - 1) / 2, err);
}

int unet_forward(Graph *g, const Unet *u, Var *x, const Tensor *timesteps, Var *encoder_hidden_states, Var **eps,
                 DiceError *err) {
    return unet_forward_opts(g, u, x, timesteps, encoder_hidden_states, NULL, eps, err);
}
