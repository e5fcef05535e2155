// models/vae.h — diffusers' AutoencoderKL (the Stable Diffusion / SDXL VAE): config, weights, encoder,
// diagonal-Gaussian posterior, decoder.
//
//   VaeConfig cfg;  vae_config_load(&cfg, "vae/config.json", err);
//   Vae vae;        vae_load(&vae, &cfg, &weights, err);  weights_finish(&weights, err);
//   vae_encode(&vae, &g, image, host_arena, &post, err);              // image (B, H, W, Cin) in [-1, 1]
//   vae_posterior_sample(&post, &torch_gen, host_arena, &sample, err); // = latent_dist.sample(generator)
//   vae_decode(&vae, &g, z, &image, err);                              // z (B, h, w, C) -> (B, H, W, Cout)
//
// Layout: NHWC throughout (images (B, H, W, C), latents (B, h, w, C)). Each encoder level but the last halves
// the size, rounding down (h = H / 2^(levels - 1) for the usual multiples); the decoder doubles it back.
// Module tree and tensor names are diffusers' (encoder.down_blocks.0.resnets.0.conv1.weight, ...), with the
// mid attention's pre-0.14 names (query, key, value, proj_attn; SD1.5's vae/ folder) accepted as diffusers
// accepts them; conv weights are repacked OIHW -> OHWI at load (models/weights.h). Everything runs through the
// op layer, so the same code serves the CPU (f32 / f64) and CUDA (bf16, fp32 statistics) and back-propagates:
// the gradient of a decoded image reaches the latents, that of the moments reaches the image.
//
// Precision: diffusers' force_upcast makes pipelines decode in fp32 because SDXL's VAE overflows fp16's
// range (65504). dice's CUDA path computes in bf16, whose exponent range is fp32's, so the config field is
// read but changes nothing; the decoder output is still scanned for NaN / Inf and a bad decode stops with a
// message (vae_check_finite) instead of producing a black image.
//
// Memory: when the graph has a scratch arena (graph_set_scratch), every resnet, attention and resampling
// block runs through graph_checkpoint: only block outputs stay in the graph's arena and backward recomputes
// the blocks (same values, bit for bit). Without one, every activation stays in the graph's arena.
#pragma once
#include <stdbool.h>

#include "models/weights.h"
#include "nn/ops.h"
#include "nn/torch_rng.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VAE_MAX_LEVELS 8   // entries of block_out_channels
#define VAE_NORM_EPS 1e-6f // every GroupNorm of the VAE (resnets, mid attention, conv_norm_out)
#define VAE_LOGVAR_MIN -30.0f // DiagonalGaussianDistribution clamps the log-variance to [-30, 20]
#define VAE_LOGVAR_MAX 20.0f

// ---------------------------------------------------------------- config (models/vae_config.c)
// From a diffusers AutoencoderKL config.json. Absent fields take diffusers' defaults. Accepted and checked:
// in_channels, out_channels, latent_channels, block_out_channels, down_block_types (all
// "DownEncoderBlock2D"), up_block_types (all "UpDecoderBlock2D"), layers_per_block, act_fn ("silu" or
// "swish"), norm_num_groups (dividing every block's channels), sample_size (a number or a pair; informative),
// scaling_factor, shift_factor (null or a number: latents = (sample - shift) * scale), force_upcast,
// use_quant_conv, use_post_quant_conv, mid_block_add_attention, latents_mean / latents_std (null only: the
// per-channel normalisation of some pipelines is not implemented), and "_"-prefixed metadata (_class_name
// must be AutoencoderKL). Any other field is an error naming it: dice cannot know what it would change.
typedef struct VaeConfig {
    int in_channels, out_channels, latent_channels;
    int n_levels;                              // len(block_out_channels)
    int block_out_channels[VAE_MAX_LEVELS];
    int layers_per_block;                      // encoder resnets per level; the decoder has one more
    int norm_num_groups;
    int sample_height, sample_width;           // sample_size (informative: dice takes any image size)
    float scaling_factor, shift_factor;        // shift_factor 0 when absent or null
    bool force_upcast, use_quant_conv, use_post_quant_conv, mid_block_add_attention;
} VaeConfig;

// json: the text of config.json; source names it in messages.
int vae_config_parse(VaeConfig *cfg, const char *json, const char *source, DiceError *err);
int vae_config_load(VaeConfig *cfg, const char *path, DiceError *err);
// Downsampling factor image -> latents: 2^(n_levels - 1).
int vae_downscale(const VaeConfig *cfg);

// ---------------------------------------------------------------- building blocks (models/vae_blocks.c)
typedef struct VaeConv {
    Tensor weight, bias;   // (Cout, kh, kw, Cin) OHWI, (Cout)
} VaeConv;

typedef struct VaeNorm {
    Tensor weight, bias;   // (C), (C)
    int groups;
} VaeNorm;

// ResnetBlock2D without a time embedding: out = x' + conv2(silu(norm2(conv1(silu(norm1(x)))))), x' = x or
// conv_shortcut(x) (1x1) when the channel count changes. Dropout is 0 in inference.
typedef struct VaeResnet {
    VaeNorm norm1, norm2;
    VaeConv conv1, conv2, shortcut;
    bool has_shortcut;
} VaeResnet;

// The mid block's self-attention (diffusers' Attention with group_norm, one head of all C channels,
// residual): out = x + to_out(softmax(q k^T / sqrt C) v), q/k/v = to_q/k/v(group_norm(x)) over the H*W tokens.
// On CUDA the fused flash-attention kernel takes head dims that are multiples of 8 up to
// ATTENTION_MAX_HEAD_DIM_CUDA; wider heads (SD's VAE has C = 512) use explicit products in f32: scores
// (B, N, N) by op_matmul, op_softmax, op_matmul, N = h w of the lowest level (64 MiB of scores per 512x512
// image, 1 GiB per 1024x1024 one, twice that with the softmax output). vae_load picks the path from the device
// and C.
typedef enum VaeAttnPath { VAE_ATTN_FUSED, VAE_ATTN_MATMUL } VaeAttnPath;

typedef struct VaeAttention {
    VaeNorm norm;
    Tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;  // (C, C), (C)
    VaeAttnPath path;
} VaeAttention;

// UNetMidBlock2D with one layer: resnets.0, attentions.0 (when mid_block_add_attention), resnets.1.
typedef struct VaeMidBlock {
    VaeResnet resnets[2];
    VaeAttention attn;
    bool has_attention;
} VaeMidBlock;

// A DownEncoderBlock2D (resnets, then downsamplers.0.conv) or UpDecoderBlock2D (resnets, then
// upsamplers.0.conv). The last encoder level and the last decoder level have no resampler.
typedef struct VaeLevel {
    VaeResnet *resnets;    // heap, n_resnets
    int n_resnets;
    VaeConv resample;
    bool has_resample;
} VaeLevel;

// Loaders: prefix is the module's name ("encoder.down_blocks.0.resnets.1"); tensors go through w (missing or
// mis-shaped ones are collected for weights_finish).
int vae_conv_load(Weights *w, VaeConv *c, const char *prefix, int cin, int cout, int k, DiceError *err);
int vae_norm_load(Weights *w, VaeNorm *n, const char *prefix, int channels, int groups, DiceError *err);
int vae_resnet_load(Weights *w, VaeResnet *r, const char *prefix, int cin, int cout, int groups, DiceError *err);
int vae_attention_load(Weights *w, VaeAttention *a, const char *prefix, int channels, int groups, DiceError *err);
int vae_mid_load(Weights *w, VaeMidBlock *m, const char *prefix, int channels, int groups, bool attention,
                 DiceError *err);

// Forward passes, x (B, H, W, C) NHWC.
int vae_resnet_forward(Graph *g, const VaeResnet *r, Var *x, Var **out, DiceError *err);       // (B, H, W, Cout)
int vae_attention_forward(Graph *g, const VaeAttention *a, Var *x, Var **out, DiceError *err); // (B, H, W, C)
int vae_mid_forward(Graph *g, const VaeMidBlock *m, Var *x, Var **out, DiceError *err);        // (B, H, W, C)
// Downsample2D with padding 0: zero-pad one column right and one row bottom, conv3x3 stride 2 padding 0
// -> (B, floor(H / 2), floor(W / 2), C); H, W >= 2.
int vae_downsample_forward(Graph *g, const VaeConv *c, Var *x, Var **out, DiceError *err);
// Upsample2D: nearest 2x, conv3x3 padding 1 -> (B, 2H, 2W, C).
int vae_upsample_forward(Graph *g, const VaeConv *c, Var *x, Var **out, DiceError *err);

// ---------------------------------------------------------------- the model (models/vae.c)
typedef struct VaeEncoder {
    VaeConv conv_in;
    VaeLevel levels[VAE_MAX_LEVELS];   // down_blocks
    VaeMidBlock mid;
    VaeNorm norm_out;
    VaeConv conv_out;                  // -> 2 latent_channels: [mean | logvar]
} VaeEncoder;

typedef struct VaeDecoder {
    VaeConv conv_in;
    VaeMidBlock mid;
    VaeLevel levels[VAE_MAX_LEVELS];   // up_blocks, widest first
    VaeNorm norm_out;
    VaeConv conv_out;
} VaeDecoder;

typedef struct Vae {
    VaeConfig cfg;
    VaeEncoder encoder;
    VaeDecoder decoder;
    VaeConv quant_conv, post_quant_conv;   // 1x1, present when use_quant_conv / use_post_quant_conv
} Vae;

// Requests every tensor of the model from w (opened on the device and dtype the model will run in); the
// caller then calls weights_finish, which lists every missing, mis-shaped and unexpected tensor at once.
// The mid-attention path is chosen for w's device (VaeAttnPath).
int vae_load(Vae *vae, const VaeConfig *cfg, Weights *w, DiceError *err);
// The diffusers folder layout: dir/config.json and dir/diffusion_pytorch_model.safetensors, loaded onto
// arena's device in dtype and checked with weights_finish.
int vae_load_dir(Vae *vae, const char *dir, DiceCtx *ctx, Arena *arena, DType dtype, DiceError *err);
void vae_free(Vae *vae);   // the heap arrays; the tensors belong to the weights arena
// Forces the mid-attention path of both mid blocks (tests use it to check VAE_ATTN_MATMUL on the CPU).
void vae_set_attention_path(Vae *vae, VaeAttnPath path);

// AutoencoderKL._encode: image (B, H, W, in_channels) -> moments (B, h, w, 2 latent_channels), the encoder
// (and quant_conv) output [mean | raw log-variance]. Differentiable.
int vae_encode_moments(const Vae *vae, Graph *g, Var *image, Var **moments, DiceError *err);

// diffusers' DiagonalGaussianDistribution, on the host in f32: the posterior is small (B h w C values) and
// its noise comes from the host's torch-compatible generator. Not differentiable (dice never trains
// through the VAE encoder).
typedef struct VaePosterior {
    Tensor mean, logvar;   // (B, h, w, C) f32 on the CPU; logvar clamped to [VAE_LOGVAR_MIN, VAE_LOGVAR_MAX]
} VaePosterior;

// moments (B, h, w, 2C) on ctx's device, any float dtype -> post (host arena).
int vae_posterior(DiceCtx *ctx, Arena *host, const Tensor *moments, VaePosterior *post, DiceError *err);
// vae_encode_moments then vae_posterior: vae.encode(image).latent_dist.
int vae_encode(const Vae *vae, Graph *g, Var *image, Arena *host, VaePosterior *post, DiceError *err);
// latent_dist.sample(generator): mean + exp(0.5 logvar) * noise, noise = torch.randn((B, C, h, w),
// generator) drawn in torch's NCHW order (one draw of B C h w values, continuing gen) and permuted to NHWC.
// out: (B, h, w, C) f32 in the host arena.
int vae_posterior_sample(const VaePosterior *post, TorchGenerator *gen, Arena *host, Tensor *out, DiceError *err);

// The diffusion model's latents from a VAE sample and back (diffusers pipelines):
//   latents = (sample - shift_factor) * scaling_factor;   decoder input = latents / scaling_factor + shift_factor
// vae_scale_latents works in place on a contiguous f32 host tensor.
int vae_scale_latents(const VaeConfig *cfg, Tensor *sample, DiceError *err);
int vae_unscale_latents(const VaeConfig *cfg, Graph *g, Var *latents, Var **z, DiceError *err);

// AutoencoderKL.decode: z (B, h, w, latent_channels) -> image (B, h f, w f, out_channels), f = vae_downscale.
// The output is checked with vae_check_finite (a synchronising copy to the host) before it is returned.
int vae_decode(const Vae *vae, Graph *g, Var *z, Var **image, DiceError *err);

// 0 if every element of t (any device, f32 / f64 / bf16 / f16, contiguous) is finite; otherwise -1 with a
// message naming `what`, how many values are NaN and Inf, and the first bad index.
int vae_check_finite(DiceCtx *ctx, const Tensor *t, const char *what, DiceError *err);

#ifdef __cplusplus
}
#endif
