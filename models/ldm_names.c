// models/ldm_names.c — the name table of single-file original-layout (LDM) Stable Diffusion checkpoints: canonical
// diffusers / transformers names -> the file's names (see ldm_names.h). The block numbering follows the layout
// of LDM's openaimodel.UNetModel and autoencoder Encoder / Decoder, the facts diffusers' conversion scripts encode
// in their tables, generalised from SD1.5's four levels of two layers to any config:
//   UNet input_blocks: 0 is conv_in; then per level i its layers_per_block[i] (resnet, [transformer]) blocks and,
//     except on the last level, one downsampler block (op); output_blocks: per up level i its
//     layers_per_block[level] + 1 (resnet, [transformer], [upsampler on the level's last block]) blocks.
//   VAE encoder.down.{i} = down_blocks.{i}; decoder.up.{i} = up_blocks.{n - 1 - i} (LDM numbers the decoder's
//     levels by resolution, diffusers in execution order); mid.block_{1,2} and mid.attn_1.
#include "models/ldm_names.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------- parsing the canonical name

// Consumes the literal `lit` at the start of *s.
static bool take(const char **s, const char *lit) {
    size_t n = strlen(lit);
    if (strncmp(*s, lit, n)) return false;
    *s += n;
    return true;
}

// Consumes a decimal number (no sign, no leading zeros unless 0) followed by `.`.
static bool take_index(const char **s, int *v) {
    const char *p = *s;
    if (!isdigit((unsigned char)*p) || (p[0] == '0' && isdigit((unsigned char)p[1]))) return false;
    long x = 0;
    for (; isdigit((unsigned char)*p); p++) {
        x = x * 10 + (*p - '0');
        if (x > 1000000) return false;
    }
    if (*p != '.') return false;
    *v = (int)x;
    *s = p + 1;
    return true;
}

// snprintf into buf; NULL if it did not fit.
static const char *put(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const char *put(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return k >= 0 && (size_t)k < n ? buf : NULL;
}

// A leaf module name within a block: `rest` is "<module>.<param>" with <module> one of the n pairs' canonical
// name (pairs[2k + 1]); *out is set to the original name (pairs[2k]) and *param past the dot.
static bool leaf(const char *rest, const char *const *pairs, int n, const char **out, const char **param) {
    for (int k = 0; k < n; k++) {
        const char *s = rest;
        if (take(&s, pairs[2 * k + 1]) && take(&s, ".") && *s) {
            *out = pairs[2 * k];
            *param = s;
            return true;
        }
    }
    return false;
}

// ---------------------------------------------------------------- UNet

// ResnetBlock2D's modules: (original, diffusers).
static const char *const UNET_RESNET[] = {
    "in_layers.0", "norm1", "in_layers.2", "conv1", "out_layers.0", "norm2",
    "out_layers.3", "conv2", "emb_layers.1", "time_emb_proj", "skip_connection", "conv_shortcut",
};

// Top-level modules: (original, diffusers).
static const char *const UNET_TOP[] = {
    "time_embed.0", "time_embedding.linear_1", "time_embed.2", "time_embedding.linear_2", "input_blocks.0.0",
    "conv_in", "out.0", "conv_norm_out", "out.2", "conv_out",
};

#define P "model.diffusion_model."

// `rest` of a resnet ("norm1.weight") inside the original module `block` ("input_blocks.4.0", "middle_block.2").
static const char *unet_resnet(char *buf, size_t n, const char *block, const char *rest) {
    const char *mod, *param;
    if (!leaf(rest, UNET_RESNET, 6, &mod, &param)) return NULL;
    return put(buf, n, P "%s.%s.%s", block, mod, param);
}

static const char *unet_name(const UnetConfig *c, const char *s, char *buf, size_t n) {
    const char *mod, *param;
    if (leaf(s, UNET_TOP, 5, &mod, &param)) return put(buf, n, P "%s.%s", mod, param);
    int nl = c->n_levels, i, j;
    char block[48];
    if (take(&s, "down_blocks.") && take_index(&s, &i) && i < nl) {
        int base = 1;  // input block of this level's first layer
        for (int k = 0; k < i; k++) base += c->layers_per_block[k] + 1;
        int layers = c->layers_per_block[i];
        if (take(&s, "resnets.") && take_index(&s, &j) && j < layers) {
            snprintf(block, sizeof block, "input_blocks.%d.0", base + j);
            return unet_resnet(buf, n, block, s);
        }
        if (c->down_cross_attn[i] && take(&s, "attentions.") && take_index(&s, &j) && j < layers)
            return put(buf, n, P "input_blocks.%d.1.%s", base + j, s);
        if (i < nl - 1 && take(&s, "downsamplers.0.conv."))
            return put(buf, n, P "input_blocks.%d.0.op.%s", base + layers, s);
        return NULL;
    }
    if (take(&s, "mid_block.")) {
        if (take(&s, "resnets.") && take_index(&s, &j) && j < 2) {
            snprintf(block, sizeof block, "middle_block.%d", 2 * j);
            return unet_resnet(buf, n, block, s);
        }
        if (take(&s, "attentions.0.")) return put(buf, n, P "middle_block.1.%s", s);
        return NULL;
    }
    if (take(&s, "up_blocks.") && take_index(&s, &i) && i < nl) {
        int base = 0;  // output block of this level's first layer
        for (int k = 0; k < i; k++) base += c->layers_per_block[nl - 1 - k] + 1;
        int layers = c->layers_per_block[nl - 1 - i] + 1;
        if (take(&s, "resnets.") && take_index(&s, &j) && j < layers) {
            snprintf(block, sizeof block, "output_blocks.%d.0", base + j);
            return unet_resnet(buf, n, block, s);
        }
        if (c->up_cross_attn[i] && take(&s, "attentions.") && take_index(&s, &j) && j < layers)
            return put(buf, n, P "output_blocks.%d.1.%s", base + j, s);
        // The upsampler follows the last layer's resnet (and transformer) in the same block.
        if (i < nl - 1 && take(&s, "upsamplers.0."))
            return put(buf, n, P "output_blocks.%d.%d.%s", base + layers - 1, c->up_cross_attn[i] ? 2 : 1, s);
        return NULL;
    }
    return NULL;
}

#undef P

// ---------------------------------------------------------------- VAE

static const char *const VAE_RESNET[] = {
    "norm1", "norm1", "conv1", "conv1", "norm2", "norm2", "conv2", "conv2", "nin_shortcut", "conv_shortcut",
};

// The mid attention's modules, current and pre-0.14 diffusers names.
static const char *const VAE_ATTN[] = {
    "norm", "group_norm", "q", "to_q", "k", "to_k", "v", "to_v", "proj_out", "to_out.0",
    "q", "query", "k", "key", "v", "value", "proj_out", "proj_attn",
};

#define P "first_stage_model."

// The encoder's or decoder's mid block (`half` "encoder" / "decoder").
static const char *vae_mid(const char *half, const char *s, char *buf, size_t n) {
    const char *mod, *param;
    int j;
    if (take(&s, "resnets.") && take_index(&s, &j) && j < 2 && leaf(s, VAE_RESNET, 5, &mod, &param))
        return put(buf, n, P "%s.mid.block_%d.%s.%s", half, j + 1, mod, param);
    if (take(&s, "attentions.0.") && leaf(s, VAE_ATTN, 9, &mod, &param))
        return put(buf, n, P "%s.mid.attn_1.%s.%s", half, mod, param);
    return NULL;
}

static const char *vae_name(const VaeConfig *c, const char *s, char *buf, size_t n) {
    const char *mod, *param;
    int nl = c->n_levels, i, j;
    if (!strncmp(s, "quant_conv.", 11) || !strncmp(s, "post_quant_conv.", 16)) return put(buf, n, P "%s", s);
    bool enc = take(&s, "encoder.");
    if (!enc && !take(&s, "decoder.")) return NULL;
    const char *half = enc ? "encoder" : "decoder";
    if (!strncmp(s, "conv_in.", 8) || !strncmp(s, "conv_out.", 9)) return put(buf, n, P "%s.%s", half, s);
    if (take(&s, "conv_norm_out.")) return put(buf, n, P "%s.norm_out.%s", half, s);
    if (take(&s, "mid_block.")) return vae_mid(half, s, buf, n);
    if (enc && take(&s, "down_blocks.") && take_index(&s, &i) && i < nl) {
        if (take(&s, "resnets.") && take_index(&s, &j) && j < c->layers_per_block &&
            leaf(s, VAE_RESNET, 5, &mod, &param))
            return put(buf, n, P "encoder.down.%d.block.%d.%s.%s", i, j, mod, param);
        if (i < nl - 1 && take(&s, "downsamplers.0.conv."))
            return put(buf, n, P "encoder.down.%d.downsample.conv.%s", i, s);
        return NULL;
    }
    if (!enc && take(&s, "up_blocks.") && take_index(&s, &i) && i < nl) {
        if (take(&s, "resnets.") && take_index(&s, &j) && j < c->layers_per_block + 1 &&
            leaf(s, VAE_RESNET, 5, &mod, &param))
            return put(buf, n, P "decoder.up.%d.block.%d.%s.%s", nl - 1 - i, j, mod, param);
        if (i < nl - 1 && take(&s, "upsamplers.0.conv."))
            return put(buf, n, P "decoder.up.%d.upsample.conv.%s", nl - 1 - i, s);
        return NULL;
    }
    return NULL;
}

#undef P

// ---------------------------------------------------------------- the table's entry points

const char *ldm_prefix(const char *component) {
    if (!component) return NULL;
    if (!strcmp(component, LDM_UNET)) return "model.diffusion_model.";
    if (!strcmp(component, LDM_VAE)) return "first_stage_model.";
    if (!strcmp(component, LDM_TEXT_ENCODER)) return "cond_stage_model.transformer.";
    return NULL;
}

const char *ldm_name(const char *canonical, char *buf, size_t bufsize, void *names) {
    const LdmNames *l = names;
    const char *c = l ? l->component : NULL;
    if (!c) return NULL;
    if (!strcmp(c, LDM_UNET)) return l->unet ? unet_name(l->unet, canonical, buf, bufsize) : NULL;
    if (!strcmp(c, LDM_VAE)) return l->vae ? vae_name(l->vae, canonical, buf, bufsize) : NULL;
    // The CLIP text encoder keeps transformers' names (text_model.*) under its prefix.
    if (!strcmp(c, LDM_TEXT_ENCODER)) return put(buf, bufsize, "%s%s", ldm_prefix(c), canonical);
    return NULL;
}

bool ldm_is_single_file(const StFile *f) {
    const char *p = ldm_prefix(LDM_UNET);
    for (int i = 0; i < f->n_tensors; i++)
        if (!strncmp(f->tensors[i].name, p, strlen(p))) return true;
    return false;
}

// Buffers of LDM's DDPM / LatentDiffusion wrapper (ldm/models/diffusion/ddpm.py register_schedule, logvar).
static const char *const SCHEDULE_BUFFERS[] = {
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    "logvar", "lvlb_weights",
};

bool ldm_is_known_extra(const char *name, void *user) {
    const LdmNames *l = user;
    if (!strncmp(name, "model_ema.", 10)) return true;
    for (size_t i = 0; i < sizeof SCHEDULE_BUFFERS / sizeof *SCHEDULE_BUFFERS; i++)
        if (!strcmp(name, SCHEDULE_BUFFERS[i])) return true;
    if (l && l->partial) {
        const char *p = ldm_prefix(l->component);
        return p && strncmp(name, p, strlen(p));
    }
    return false;
}

void ldm_use(Weights *w, LdmNames *names) {
    weights_set_names(w, ldm_name, names);
    w->ignore_fn = ldm_is_known_extra;
    w->ignore_user = names;
    w->squeeze_trailing_ones = true;
}
