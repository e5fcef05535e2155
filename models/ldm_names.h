// models/ldm_names.h — single-file original-layout (LDM / CompVis / A1111) Stable Diffusion 1.x checkpoints:
// the one name-conversion table of that format, from the canonical diffusers / transformers names the models ask
// for (models/unet.h, models/vae.h, models/clip_encoder.h) to the names in the file.
//
// One safetensors file holds the three models under three prefixes:
//   model.diffusion_model.*         the UNet   (input_blocks.{k}.{m}, middle_block.{m}, output_blocks.{k}.{m},
//                                               time_embed.{0,2}, out.{0,2})
//   first_stage_model.*             the VAE    (encoder.down.{i}.block.{j}, decoder.up.{i}.block.{j}, mid.block_{1,2},
//                                               mid.attn_1.{norm,q,k,v,proj_out}, nin_shortcut, norm_out, ...)
//   cond_stage_model.transformer.*  the CLIP text encoder, transformers' own names (text_model.*)
// plus, in many files, harmless extras: the EMA copy (model_ema.*) and the DDPM schedule buffers (betas,
// alphas_cumprod, ...). The UNet's block numbering depends on its layout (layers per level, which levels have
// cross-attention), the VAE's on its level count; both are derived from the model's config the way diffusers'
// conversion scripts (convert_original_stable_diffusion_to_diffusers / convert_diffusers_to_original_
// stable_diffusion) lay the blocks out, for any number of levels and layers, not only SD1.5's.
//
// The VAE's mid-block attention q / k / v / proj_out are 1x1 convolutions in the file, (C, C, 1, 1), where
// diffusers has (C, C) linears: the Weights must accept trailing size-1 dims (ldm_use sets that).
//
// Loading all three models from one file through one Weights, so that weights_finish reports, once, every missing,
// mis-shaped and unexpected tensor of the whole file (known extras not counted):
//   Weights w;  weights_open(&w, &path, 1, &ctx, &arena, DT_BF16, err);
//   LdmNames n = {.component = LDM_UNET, .unet = &unet_cfg};
//   ldm_use(&w, &n);                     unet_load(&unet, &unet_cfg, &w, err);
//   n = (LdmNames){.component = LDM_VAE, .vae = &vae_cfg};
//   vae_load(&vae, &vae_cfg, &w, err);   (n is read at every request: changing it switches the component)
//   n = (LdmNames){.component = LDM_TEXT_ENCODER};
//   clip_encoder_load(&clip, &clip_cfg, &w, err);
//   weights_finish(&w, err);
// To load one model only (the others' tensors then are not reported as unexpected), set n.partial = true.
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "models/unet.h"
#include "models/vae.h"
#include "models/weights.h"
#include "nn/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LDM_UNET "unet"
#define LDM_VAE "vae"
#define LDM_TEXT_ENCODER "text_encoder"

// The context ldm_name and ldm_is_known_extra read (their `user` argument). component is one of the three names
// above (compared by content); unet is needed for LDM_UNET, vae for LDM_VAE, nothing for LDM_TEXT_ENCODER.
typedef struct LdmNames {
    const char *component;
    const UnetConfig *unet;
    const VaeConfig *vae;
    bool partial;   // only `component` is loaded from the file: the other components' tensors are not unexpected
} LdmNames;

// WeightNameFn (models/weights.h) with user = LdmNames *: writes the file's name for the canonical name into buf
// and returns buf, or returns NULL when the format has no such tensor (a name outside the model's layout, an
// unknown component, a missing config, or a buffer too small): the request then counts as missing.
const char *ldm_name(const char *canonical, char *buf, size_t bufsize, void *names);

// The prefix under which a component's tensors live in the file ("model.diffusion_model.", "first_stage_model.",
// "cond_stage_model.transformer."), or NULL for an unknown component.
const char *ldm_prefix(const char *component);

// True if f is an original-layout checkpoint: it holds tensors named model.diffusion_model.*.
bool ldm_is_single_file(const StFile *f);

// WeightIgnoreFn (models/weights.h) with user = LdmNames * or NULL. True for tensors of the file that no model
// reads and that are known to be harmless: the EMA weights (model_ema.*) and the training buffers of LDM's DDPM
// wrapper (betas, alphas_cumprod, alphas_cumprod_prev, sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod,
// log_one_minus_alphas_cumprod, sqrt_recip_alphas_cumprod, sqrt_recipm1_alphas_cumprod, posterior_variance,
// posterior_log_variance_clipped, posterior_mean_coef1, posterior_mean_coef2, logvar, lvlb_weights); with
// names->partial, also every tensor outside ldm_prefix(names->component). Anything else left unused is still
// reported.
bool ldm_is_known_extra(const char *name, void *user);

// Sets w up for this format: weights_set_names(w, ldm_name, names), w->ignore_fn = ldm_is_known_extra with
// w->ignore_user = names, and w->squeeze_trailing_ones = true. names must outlive the loading.
void ldm_use(Weights *w, LdmNames *names);

#ifdef __cplusplus
}
#endif
