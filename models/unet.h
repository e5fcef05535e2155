// models/unet.h — diffusers' UNet2DConditionModel (SD1.5 / SD2 shaped; SDXL's extra conditioning slots in
// through UnetForwardOpts.added_time_emb): configuration from config.json, weights by diffusers' names,
// forward on any device through the op layer, backward to the text conditioning (DICE).
//
//   UnetConfig cfg;  unet_config_load(&cfg, "unet/config.json", err);
//   Weights w;       weights_open(&w, &path, 1, &ctx, &arena, DT_BF16, err);
//   Unet u;          unet_load(&u, &cfg, &w, err);  weights_finish(&w, err);   (or unet_load_dir)
//   unet_forward(&g, &u, x, timesteps, ehs, &eps, err);
//
// The module tree mirrors diffusers' (conv_in, time_embedding.linear_1/2, down_blocks.{i}.resnets.{j},
// down_blocks.{i}.attentions.{j}.transformer_blocks.{k}, down_blocks.{i}.downsamplers.0.conv, mid_block,
// up_blocks.{i}..., conv_norm_out, conv_out): each struct below holds one module's tensors. Activations are
// NHWC; the transformers see (B, H*W, C). 1x1 convolutions (conv_shortcut, conv proj_in / proj_out) are held as
// (out, in) matrices and run as linear layers, which is the same arithmetic in NHWC.
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "models/weights.h"
#include "nn/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UNET_MAX_LEVELS 8

// What dice takes from config.json (models/unet_config.c documents every accepted and refused field).
// Per-level arrays are indexed by the down-block level i; up block i works on level n_levels - 1 - i, and the
// mid block on the last level, as in diffusers.
typedef struct UnetConfig {
    int64_t in_channels, out_channels;
    int n_levels;                                  // len(block_out_channels)
    int64_t block_out_channels[UNET_MAX_LEVELS];
    bool down_cross_attn[UNET_MAX_LEVELS];         // CrossAttnDownBlock2D (else DownBlock2D), down order
    bool up_cross_attn[UNET_MAX_LEVELS];           // CrossAttnUpBlock2D (else UpBlock2D), up order
    bool has_mid;                                  // mid_block_type UNetMidBlock2DCrossAttn (false: null)
    int layers_per_block[UNET_MAX_LEVELS];
    int transformer_layers[UNET_MAX_LEVELS];       // transformer_layers_per_block
    int heads[UNET_MAX_LEVELS];                    // num_attention_heads, else attention_head_dim (legacy name)
    int64_t cross_attention_dim[UNET_MAX_LEVELS];
    int norm_num_groups;
    float norm_eps;
    bool flip_sin_to_cos;
    double freq_shift;
    bool use_linear_projection;                    // proj_in / proj_out: linear (true) or 1x1 conv (false)
    int conv_in_kernel, conv_out_kernel;           // odd sizes, "same" padding
    int64_t sample_size;                           // informational (0 if absent)
} UnetConfig;

// Parses a diffusers UNet2DConditionModel config.json text; `source` names it in messages.
int unet_config_parse(UnetConfig *cfg, const char *json, const char *source, DiceError *err);
int unet_config_load(UnetConfig *cfg, const char *path, DiceError *err);

// ResnetBlock2D (resnet_time_scale_shift "default"): norm1, conv1, time_emb_proj, norm2, conv2, conv_shortcut.
typedef struct UnetResnet {
    int64_t cin, cout;
    int groups;
    float eps;
    Tensor norm1_w, norm1_b;      // (cin)
    Tensor conv1_w, conv1_b;      // (cout, 3, 3, cin) OHWI, (cout)
    Tensor time_w, time_b;        // (cout, temb), (cout)
    Tensor norm2_w, norm2_b;      // (cout)
    Tensor conv2_w, conv2_b;      // (cout, 3, 3, cout), (cout)
    bool has_shortcut;            // cin != cout
    Tensor shortcut_w, shortcut_b;// (cout, cin) from a 1x1 conv, (cout)
} UnetResnet;

// diffusers' Attention as BasicTransformerBlock builds it: q/k/v without bias, to_out.0 with bias.
typedef struct UnetAttention {
    Tensor to_q, to_k, to_v;      // (inner, inner), (inner, kv_dim) x 2: kv_dim = inner (attn1) or cross dim (attn2)
    Tensor to_out, to_out_b;      // (inner, inner), (inner)
} UnetAttention;

// BasicTransformerBlock: layer norms (eps 1e-5), self-attention, cross-attention, GEGLU feed-forward.
typedef struct UnetTransformerBlock {
    Tensor norm1_w, norm1_b, norm2_w, norm2_b, norm3_w, norm3_b;   // (inner)
    UnetAttention attn1, attn2;
    Tensor ff_in_w, ff_in_b;      // ff.net.0.proj: (2 * 4 inner, inner), (2 * 4 inner)
    Tensor ff_out_w, ff_out_b;    // ff.net.2: (inner, 4 inner), (inner)
} UnetTransformerBlock;

// Transformer2DModel: group norm (eps 1e-6), proj_in, blocks, proj_out, residual.
typedef struct UnetTransformer {
    int64_t channels, inner;      // inner = heads * (channels / heads)
    int heads, groups, n_blocks;
    Tensor norm_w, norm_b;        // (channels)
    Tensor proj_in_w, proj_in_b;  // (inner, channels), (inner)
    Tensor proj_out_w, proj_out_b;// (channels, inner), (channels)
    UnetTransformerBlock *blocks; // transformer_blocks.{k}, n_blocks of them (heap)
} UnetTransformer;

// One down or up block: resnets (with a transformer after each in the CrossAttn kinds) and the optional
// Downsample2D (3x3 stride 2, padding 1) or Upsample2D (nearest 2x, 3x3 conv).
typedef struct UnetLevel {
    int n_layers;
    UnetResnet *resnets;          // n_layers (heap)
    UnetTransformer *attentions;  // n_layers (heap), or NULL for DownBlock2D / UpBlock2D
    bool has_sampler;
    Tensor sampler_w, sampler_b;  // (C, 3, 3, C) OHWI, (C)
} UnetLevel;

typedef struct Unet {
    UnetConfig cfg;
    DType dtype;                  // of the weights and activations (the Weights' dtype)
    int64_t temb_dim;             // 4 * block_out_channels[0]
    Tensor conv_in_w, conv_in_b;
    Tensor time_1_w, time_1_b, time_2_w, time_2_b;    // time_embedding.linear_1 / linear_2
    UnetLevel down[UNET_MAX_LEVELS], up[UNET_MAX_LEVELS];
    UnetResnet mid_resnets[2];
    UnetTransformer mid_attention;
    Tensor norm_out_w, norm_out_b, conv_out_w, conv_out_b;
    bool checkpoint;              // recompute each resnet and transformer in backward (graph_checkpoint;
                                  // the graph needs a scratch arena); same gradients bit for bit
} Unet;

// Requests every tensor of the model from w (which gives the device and dtype) by its diffusers name; problems
// are collected in w for weights_finish, which the caller runs. Checkpointing starts off.
int unet_load(Unet *u, const UnetConfig *cfg, Weights *w, DiceError *err);
// A diffusers unet/ folder: config.json and diffusion_pytorch_model.safetensors (else
// diffusion_pytorch_model.fp16.safetensors), weights converted to dtype in arena; every problem reported.
int unet_load_dir(Unet *u, const char *dir, DiceCtx *ctx, Arena *arena, DType dtype, DiceError *err);
void unet_free(Unet *u);

typedef struct UnetForwardOpts {
    Var *added_time_emb;          // NULL, or (B, temb_dim) added to time_embedding's output before the blocks
                                  // (SDXL's text_time embedding enters here)
} UnetForwardOpts;

// x (B, H, W, in_channels) NHWC in u->dtype on the graph's device, H and W multiples of 2^(n_levels - 1);
// timesteps a CPU tensor (B), (1) or 0-d of any float or integer dtype (broadcast over the batch);
// encoder_hidden_states (B, N, cross_attention_dim) -> *eps (B, H, W, out_channels). Gradients flow to x and
// encoder_hidden_states when they require one. opts may be NULL.
int unet_forward_opts(Graph *g, const Unet *u, Var *x, const Tensor *timesteps, Var *encoder_hidden_states,
                      const UnetForwardOpts *opts, Var **eps, DiceError *err);
int unet_forward(Graph *g, const Unet *u, Var *x, const Tensor *timesteps, Var *encoder_hidden_states, Var **eps,
                 DiceError *err);

// The blocks (models/unet_blocks.c). Loading requests `prefix`.* tensors; forwards take NHWC (B, H, W, C).
// `prefix.name.weight` of a k x k convolution (cout, cin, k, k), repacked to OHWI, and `prefix.name.bias`.
int unet_get_conv(Weights *w, Tensor *wt, Tensor *b, int64_t cout, int64_t cin, int64_t k, const char *prefix,
                  const char *name, DiceError *err);
// `prefix.name.weight` of a linear layer (out, in), or of a 1x1 convolution (out, in, 1, 1) held as (out, in),
// and `prefix.name.bias` unless b is NULL.
int unet_get_matrix(Weights *w, Tensor *wt, Tensor *b, int64_t out, int64_t in, bool conv1x1, const char *prefix,
                    const char *name, DiceError *err);
// `prefix.name` of shape (n).
int unet_get_vector(Weights *w, Tensor *out, int64_t n, const char *prefix, const char *name, DiceError *err);
int unet_resnet_load(UnetResnet *r, Weights *w, const char *prefix, int64_t cin, int64_t cout, int64_t temb,
                     const UnetConfig *cfg, DiceError *err);
int unet_transformer_load(UnetTransformer *t, Weights *w, const char *prefix, int64_t channels, int heads,
                          int n_blocks, int64_t cross_dim, const UnetConfig *cfg, DiceError *err);
void unet_transformer_free(UnetTransformer *t);
int unet_sampler_load(UnetLevel *l, Weights *w, const char *prefix, int64_t channels, DiceError *err);
// emb_act (B, temb) is silu(time embedding), shared by every resnet.
int unet_resnet_forward(Graph *g, const UnetResnet *r, Var *x, Var *emb_act, Var **out, DiceError *err);
int unet_transformer_forward(Graph *g, const UnetTransformer *t, Var *x, Var *context, Var **out, DiceError *err);
int unet_downsample_forward(Graph *g, const UnetLevel *l, Var *x, Var **out, DiceError *err);
int unet_upsample_forward(Graph *g, const UnetLevel *l, Var *x, Var **out, DiceError *err);

#ifdef __cplusplus
}
#endif
