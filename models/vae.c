// models/vae.c — AutoencoderKL: loading the module tree by diffusers' names, the encoder and decoder forward
// passes on the op layer (NHWC), the diagonal-Gaussian posterior and its torch-compatible sample on the host,
// latent scaling, and the NaN / Inf check of decoded images (see models/vae.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/vae.h"
#include "nn/tensor_copy.h"

// ---------------------------------------------------------------- loading

// A level's resnets (cin -> cout, then cout -> cout) and its resampler (encoder: "downsamplers", decoder:
// "upsamplers"), under prefix "encoder.down_blocks.i" / "decoder.up_blocks.i".
static int level_load(Weights *w, VaeLevel *l, const char *prefix, int n_resnets, int cin, int cout, int groups,
                      const char *resampler, DiceError *err) {
    l->resnets = calloc((size_t)n_resnets, sizeof *l->resnets);
    DICE_CHECK(err, l->resnets, "VAE: out of memory for %d resnets of %s", n_resnets, prefix);
    l->n_resnets = n_resnets;
    char name[256];
    for (int j = 0; j < n_resnets; j++) {
        snprintf(name, sizeof name, "%s.resnets.%d", prefix, j);
        DICE_TRY(vae_resnet_load(w, &l->resnets[j], name, j ? cout : cin, cout, groups, err));
    }
    l->has_resample = resampler != NULL;
    if (!resampler) return 0;
    snprintf(name, sizeof name, "%s.%s.0.conv", prefix, resampler);
    return vae_conv_load(w, &l->resample, name, cout, cout, 3, err);
}

static int encoder_load(Weights *w, VaeEncoder *e, const VaeConfig *c, DiceError *err) {
    const int *ch = c->block_out_channels;
    int n = c->n_levels, groups = c->norm_num_groups, top = ch[n - 1];
    DICE_TRY(vae_conv_load(w, &e->conv_in, "encoder.conv_in", c->in_channels, ch[0], 3, err));
    char name[128];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "encoder.down_blocks.%d", i);
        DICE_TRY(level_load(w, &e->levels[i], name, c->layers_per_block, i ? ch[i - 1] : ch[0], ch[i], groups,
                            i < n - 1 ? "downsamplers" : NULL, err));
    }
    DICE_TRY(vae_mid_load(w, &e->mid, "encoder.mid_block", top, groups, c->mid_block_add_attention, err));
    DICE_TRY(vae_norm_load(w, &e->norm_out, "encoder.conv_norm_out", top, groups, err));
    return vae_conv_load(w, &e->conv_out, "encoder.conv_out", top, 2 * c->latent_channels, 3, err);
}

static int decoder_load(Weights *w, VaeDecoder *d, const VaeConfig *c, DiceError *err) {
    const int *ch = c->block_out_channels;
    int n = c->n_levels, groups = c->norm_num_groups, top = ch[n - 1];
    DICE_TRY(vae_conv_load(w, &d->conv_in, "decoder.conv_in", c->latent_channels, top, 3, err));
    DICE_TRY(vae_mid_load(w, &d->mid, "decoder.mid_block", top, groups, c->mid_block_add_attention, err));
    char name[128];
    for (int i = 0; i < n; i++) {  // up_blocks.i: from the previous level's channels to ch[n - 1 - i]
        snprintf(name, sizeof name, "decoder.up_blocks.%d", i);
        DICE_TRY(level_load(w, &d->levels[i], name, c->layers_per_block + 1, i ? ch[n - i] : top, ch[n - 1 - i],
                            groups, i < n - 1 ? "upsamplers" : NULL, err));
    }
    DICE_TRY(vae_norm_load(w, &d->norm_out, "decoder.conv_norm_out", ch[0], groups, err));
    return vae_conv_load(w, &d->conv_out, "decoder.conv_out", ch[0], c->out_channels, 3, err);
}

int vae_load(Vae *vae, const VaeConfig *cfg, Weights *w, DiceError *err) {
    memset(vae, 0, sizeof *vae);
    vae->cfg = *cfg;
    int L = cfg->latent_channels;
    int rc = encoder_load(w, &vae->encoder, cfg, err);
    if (!rc && cfg->use_quant_conv) rc = vae_conv_load(w, &vae->quant_conv, "quant_conv", 2 * L, 2 * L, 1, err);
    if (!rc && cfg->use_post_quant_conv)
        rc = vae_conv_load(w, &vae->post_quant_conv, "post_quant_conv", L, L, 1, err);
    if (!rc) rc = decoder_load(w, &vae->decoder, cfg, err);
    if (rc) vae_free(vae);
    return rc;
}

int vae_load_dir(Vae *vae, const char *dir, DiceCtx *ctx, Arena *arena, DType dtype, DiceError *err) {
    char path[4096];
    VaeConfig cfg;
    snprintf(path, sizeof path, "%s/config.json", dir);
    DICE_TRY(vae_config_load(&cfg, path, err));
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    const char *paths[1] = {path};
    Weights w;
    DICE_TRY(weights_open(&w, paths, 1, ctx, arena, dtype, err));
    int rc = vae_load(vae, &cfg, &w, err);
    if (!rc) rc = weights_finish(&w, err);
    weights_close(&w);
    if (rc) vae_free(vae);
    return rc;
}

void vae_free(Vae *vae) {
    for (int i = 0; i < VAE_MAX_LEVELS; i++) {
        free(vae->encoder.levels[i].resnets);
        free(vae->decoder.levels[i].resnets);
        vae->encoder.levels[i].resnets = vae->decoder.levels[i].resnets = NULL;
    }
}

void vae_set_attention_path(Vae *vae, VaeAttnPath path) {
    vae->encoder.mid.attn.path = path;
    vae->decoder.mid.attn.path = path;
}

// ---------------------------------------------------------------- encoder

static int level_forward(Graph *g, const VaeLevel *l, bool down, Var *x, Var **out, DiceError *err) {
    for (int j = 0; j < l->n_resnets; j++) DICE_TRY(vae_resnet_forward(g, &l->resnets[j], x, &x, err));
    if (l->has_resample && down) return vae_downsample_forward(g, &l->resample, x, out, err);
    if (l->has_resample) return vae_upsample_forward(g, &l->resample, x, out, err);
    *out = x;
    return 0;
}

static int check_image(const Var *x, int channels, const char *what, DiceError *err) {
    char d[64];
    DICE_CHECK(err, x->value.ndim == 4 && x->value.shape[3] == channels, "%s: input %s is not NHWC with %d channels",
               what, tensor_describe(&x->value, d, sizeof d), channels);
    return 0;
}

int vae_encode_moments(const Vae *vae, Graph *g, Var *image, Var **moments, DiceError *err) {
    const VaeEncoder *e = &vae->encoder;
    DICE_TRY(check_image(image, vae->cfg.in_channels, "VAE encode", err));
    Var *h;
    DICE_TRY(op_conv2d(g, &h, image, &e->conv_in.weight, &e->conv_in.bias, 1, 1, err));  // (B, H, W, ch0)
    for (int i = 0; i < vae->cfg.n_levels; i++) DICE_TRY(level_forward(g, &e->levels[i], true, h, &h, err));
    DICE_TRY(vae_mid_forward(g, &e->mid, h, &h, err));                                    // (B, h, w, top)
    DICE_TRY(op_group_norm(g, &h, h, &e->norm_out.weight, &e->norm_out.bias, e->norm_out.groups, VAE_NORM_EPS, true,
                           err));
    DICE_TRY(op_conv2d(g, &h, h, &e->conv_out.weight, &e->conv_out.bias, 1, 1, err));   // (B, h, w, 2L)
    if (!vae->cfg.use_quant_conv) {
        *moments = h;
        return 0;
    }
    return op_conv2d(g, moments, h, &vae->quant_conv.weight, &vae->quant_conv.bias, 1, 0, err);
}

// ---------------------------------------------------------------- posterior (host, f32)

int vae_posterior(DiceCtx *ctx, Arena *host, const Tensor *moments, VaePosterior *post, DiceError *err) {
    char d[64];
    DICE_CHECK(err, host->device == DEV_CPU, "VAE posterior: the arena \"%s\" is not on the CPU", host->name);
    DICE_CHECK(err, moments->ndim == 4 && moments->shape[3] % 2 == 0 && dtype_is_float(moments->dtype),
               "VAE posterior: moments %s are not (B, h, w, 2C) floats", tensor_describe(moments, d, sizeof d));
    Tensor m;
    DICE_TRY(tensor_to(ctx, host, &m, moments, DT_F32, err));
    int64_t C = moments->shape[3] / 2, shape[4] = {moments->shape[0], moments->shape[1], moments->shape[2], C};
    DICE_TRY(arena_tensor(host, &post->mean, DT_F32, 4, shape, err));
    DICE_TRY(arena_tensor(host, &post->logvar, DT_F32, 4, shape, err));
    const float *src = m.data;
    float *mean = post->mean.data, *logvar = post->logvar.data;
    int64_t pixels = shape[0] * shape[1] * shape[2];
    for (int64_t p = 0; p < pixels; p++) {
        for (int64_t c = 0; c < C; c++) {
            float lv = src[p * 2 * C + C + c];
            mean[p * C + c] = src[p * 2 * C + c];
            logvar[p * C + c] = lv < VAE_LOGVAR_MIN ? VAE_LOGVAR_MIN : lv > VAE_LOGVAR_MAX ? VAE_LOGVAR_MAX : lv;
        }
    }
    return 0;
}

int vae_encode(const Vae *vae, Graph *g, Var *image, Arena *host, VaePosterior *post, DiceError *err) {
    Var *moments;
    DICE_TRY(vae_encode_moments(vae, g, image, &moments, err));
    return vae_posterior(g->ctx, host, &moments->value, post, err);
}

int vae_posterior_sample(const VaePosterior *post, TorchGenerator *gen, Arena *host, Tensor *out, DiceError *err) {
    const Tensor *mt = &post->mean;
    DICE_CHECK(err, host->device == DEV_CPU && mt->device == DEV_CPU && mt->dtype == DT_F32 && mt->ndim == 4,
               "VAE sample: the posterior and the arena must be f32 on the CPU (vae_posterior)");
    int64_t B = mt->shape[0], h = mt->shape[1], w = mt->shape[2], C = mt->shape[3];
    size_t n = (size_t)(B * h * w * C);
    Tensor noise;  // (B, C, h, w): torch draws the shape of latent_dist.mean, NCHW
    DICE_TRY(arena_tensor(host, &noise, DT_F32, 4, (int64_t[]){B, C, h, w}, err));
    DICE_TRY(torch_randn(gen, DT_F32, noise.data, n, err));
    DICE_TRY(arena_tensor(host, out, DT_F32, 4, mt->shape, err));
    const float *mean = mt->data, *logvar = post->logvar.data, *eps = noise.data;
    float *s = out->data;
    for (int64_t b = 0; b < B; b++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++)
                for (int64_t c = 0; c < C; c++) {
                    int64_t i = ((b * h + y) * w + x) * C + c;
                    float std = expf(0.5f * logvar[i]);
                    s[i] = mean[i] + std * eps[((b * C + c) * h + y) * w + x];
                }
    return 0;
}

// ---------------------------------------------------------------- latent scaling

int vae_scale_latents(const VaeConfig *cfg, Tensor *sample, DiceError *err) {
    DICE_CHECK(err, sample->device == DEV_CPU && sample->dtype == DT_F32 && tensor_is_contiguous(sample),
               "VAE scale latents: needs a contiguous f32 tensor on the CPU");
    float *x = sample->data;
    for (int64_t i = 0, n = tensor_numel(sample); i < n; i++) x[i] = (x[i] - cfg->shift_factor) * cfg->scaling_factor;
    return 0;
}

int vae_unscale_latents(const VaeConfig *cfg, Graph *g, Var *latents, Var **z, DiceError *err) {
    return op_scale(g, z, latents, 1.0 / (double)cfg->scaling_factor, (double)cfg->shift_factor, err);
}

// ---------------------------------------------------------------- decoder

int vae_decode(const Vae *vae, Graph *g, Var *z, Var **image, DiceError *err) {
    const VaeDecoder *d = &vae->decoder;
    DICE_TRY(check_image(z, vae->cfg.latent_channels, "VAE decode", err));
    Var *h = z;                                                                           // (B, h, w, L)
    if (vae->cfg.use_post_quant_conv)
        DICE_TRY(op_conv2d(g, &h, h, &vae->post_quant_conv.weight, &vae->post_quant_conv.bias, 1, 0, err));
    DICE_TRY(op_conv2d(g, &h, h, &d->conv_in.weight, &d->conv_in.bias, 1, 1, err));     // (B, h, w, top)
    DICE_TRY(vae_mid_forward(g, &d->mid, h, &h, err));
    for (int i = 0; i < vae->cfg.n_levels; i++) DICE_TRY(level_forward(g, &d->levels[i], false, h, &h, err));
    DICE_TRY(op_group_norm(g, &h, h, &d->norm_out.weight, &d->norm_out.bias, d->norm_out.groups, VAE_NORM_EPS, true,
                           err));                                                         // (B, H, W, ch0)
    DICE_TRY(op_conv2d(g, &h, h, &d->conv_out.weight, &d->conv_out.bias, 1, 1, err));    // (B, H, W, Cout)
    DICE_TRY(vae_check_finite(g->ctx, &h->value, "VAE decode output", err));
    *image = h;
    return 0;
}

// ---------------------------------------------------------------- NaN / Inf check

static double element(const void *data, DType dt, int64_t i) {
    switch (dt) {
    case DT_F32: return ((const float *)data)[i];
    case DT_F64: return ((const double *)data)[i];
    case DT_BF16: return dice_bf16_to_f32(((const uint16_t *)data)[i]);
    default: return dice_f16_to_f32(((const uint16_t *)data)[i]);
    }
}

int vae_check_finite(DiceCtx *ctx, const Tensor *t, const char *what, DiceError *err) {
    char d[64];
    DICE_CHECK(err, tensor_is_contiguous(t) && dtype_is_float(t->dtype),
               "%s: %s is not a contiguous float tensor", what, tensor_describe(t, d, sizeof d));
    void *buf = NULL;
    const void *data = t->data;
    if (t->device != DEV_CPU) {
        buf = malloc(tensor_nbytes(t) ? tensor_nbytes(t) : 1);
        DICE_CHECK(err, buf, "%s: out of host memory for the NaN / Inf check", what);
        Tensor host;
        int rc = tensor_wrap(&host, buf, t->dtype, DEV_CPU, t->ndim, t->shape, err);
        if (!rc) rc = tensor_copy(ctx, &host, t, err);
        if (rc) {
            free(buf);
            return -1;
        }
        data = buf;
    }
    int64_t n = tensor_numel(t), nan = 0, inf = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        double v = element(data, t->dtype, i);
        if (isfinite(v)) continue;
        if (isnan(v)) nan++;
        else inf++;
        if (first < 0) first = i;
    }
    free(buf);
    DICE_CHECK(err, first < 0,
               "%s %s has %lld NaN and %lld Inf values (the first at flat index %lld); stopping rather than writing "
               "a black image (an fp16 overflow? dice decodes in bf16 or fp32)",
               what, tensor_describe(t, d, sizeof d), (long long)nan, (long long)inf, (long long)first);
    return 0;
}
