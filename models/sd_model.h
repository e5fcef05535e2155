// models/sd_model.h — a Stable Diffusion 1.x model as people download it, opened onto a device: the tokenizer,
// text encoder, UNet, VAE and scheduler config of a diffusers pipeline folder, or of a single-file
// original-layout (LDM) checkpoint; and its image codec (the VAE, or the pixel mapping of a pixel-space model).
//
//   SdModel m;
//   sd_model_open(&m, "models/dreamshaper", NULL, &ctx, SD_LOAD_ALL, err);   // a folder; or a single file:
//   sd_model_open(&m, "dreamshaper_8.safetensors", "models/sd15-configs", &ctx, SD_LOAD_ALL, err);
//   ... m.tok, m.text, m.unet, m.vae; sd_model_scheduler(&m, SCHED_DPMSOLVER_MULTISTEP, &sched, err);
//   sd_model_decode(&m, latents, n, h, w, NULL, pixels, err);             // latents -> RGB images
//   sd_model_close(&m);
//
// Diffusers folder: model_index.json naming StableDiffusionPipeline (its components CLIPTokenizer,
// CLIPTextModel, UNet2DConditionModel, AutoencoderKL; a safety checker is listed but never run: dice has none),
// tokenizer/ (vocab.json, merges.txt, tokenizer_config.json), text_encoder/ (config.json, model.safetensors or
// the shards of model.safetensors.index.json), unet/ and vae/ (config.json, diffusion_pytorch_model.safetensors),
// scheduler/scheduler_config.json. Each weights file may also be the fp16 / bf16 variant of the same name
// (unet/diffusion_pytorch_model.fp16.safetensors, as save_pretrained(variant="fp16") writes it); the plain
// file is preferred when both are there. Weights in fp32, fp16 or bf16 are converted to the model dtype:
// f32 on the CPU, bf16 on CUDA.
//
// Pixel-space models: a folder whose model_index.json lists "vae": [null, null] (what diffusers'
// save_pretrained writes for a pipeline built with vae=None; a missing "vae" key is still an error) has no VAE,
// and no vae/ folder is read. Its UNet works on the images themselves: in_channels = out_channels = 3 (RGB,
// checked whenever the folder is opened, whatever is loaded), sample_size = the image side, and its "latents"
// are the image scaled to [-1, 1]: x = 2 p / 255 - 1 for 8-bit pixels p (dice prep's p / 127.5 - 1), mapped back
// by diffusers' post-processing (x / 2 + 0.5).clamp(0, 1). Latent scale 1, scaling factor 1, sizes multiples of
// 2^(UNet levels - 1). There m.has_vae is false, SD_LOAD_VAE loads nothing (its bit stays clear in m.loaded)
// and m.vae is unused. Everything that encodes or decodes images goes through sd_model_encode / sd_model_decode,
// which take either kind of model. dice's embedded default (assets/dice-world/) is a pixel-space model.
// A single-file checkpoint always has a VAE.
//
// Single file (.safetensors holding model.diffusion_model.*, first_stage_model.* and
// cond_stage_model.transformer.*, with the EMA copy and DDPM buffers many files carry): loaded through the
// original-layout name table (models/ldm_names.h). Such a file has no configs and no tokenizer: they come from
// config_dir, a diffusers SD 1.x folder (diffusers' from_single_file(path, config=DIR)); its weights are not read.
// model_index.json is not needed there.
//
// Refused with a message saying how to convert: pickled checkpoints (.ckpt, .bin, .pt, .pth, or any file
// whose content is a pickle or a torch zip archive). Every other problem is one message naming the folder or
// file and what is wrong (missing component, unsupported pipeline class, config field, every missing or
// mis-shaped tensor of a component, text-encoder width != the UNet's cross_attention_dim, a VAE that is not
// RGB, a pixel-space UNet without 3 channels, ...).
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "models/clip_encoder.h"
#include "models/clip_tokenizer.h"
#include "models/unet.h"
#include "models/vae.h"
#include "sample/scheduler.h"

#ifdef __cplusplus
extern "C" {
#endif

// What sd_model_open loads (dice run needs only a part).
enum {
    SD_LOAD_TOKENIZER = 1,
    SD_LOAD_TEXT = 2,
    SD_LOAD_UNET = 4,
    SD_LOAD_VAE = 8,
    SD_LOAD_ALL = 15,
};

typedef struct SdModel {
    char path[4096];          // as given
    char name[256];           // the folder's or file's name without extension ("Model:" in PNG parameters)
    char hash[16];            // A1111's short model hash of the UNet weights file (sd_model_hash)
    int loaded;               // SD_LOAD_* bits that were loaded
    DiceCtx *ctx;
    DType dtype;              // of every component's weights and activations: f32 (CPU), bf16 (CUDA)
    Arena weights;            // on ctx's device
    ClipTokenizer tok;
    ClipEncoder text;
    Unet unet;
    Vae vae;                  // valid when loaded includes SD_LOAD_VAE (never for a pixel-space model)
    bool has_vae;             // false: a pixel-space model (see above)
    char scheduler_config[4096];  // path of scheduler/scheduler_config.json
} SdModel;

// Opens `path` (a pipeline folder or a single-file checkpoint) and loads the `what` components onto ctx's device.
// config_dir: the configs and tokenizer of a single file (NULL for a folder). On failure *m is left closed
// (sd_model_close is safe) and err names the file and the problem.
int sd_model_open(SdModel *m, const char *path, const char *config_dir, DiceCtx *ctx, int what, DiceError *err);
void sd_model_close(SdModel *m);

// A scheduler of `kind` from the model's scheduler config (read as diffusers' from_config reads another
// class's config: sample/scheduler_config.h).
int sd_model_scheduler(const SdModel *m, SchedulerKind kind, Scheduler *s, DiceError *err);

// ---------------------------------------------------------------- the image codec
// The VAE when the model has one (then it must be loaded: SD_LOAD_VAE), else the pixel mapping. Images are
// (n, H, W, 3) NHWC, latents (n, h, w, C) NHWC with h = H / sd_model_vae_scale(m), likewise w.

// Pixels per latent pixel (the VAE's downscale; 1 in pixel space) and the factor the image height and width must be
// multiples of (that times the UNet's 2^(levels - 1)).
int sd_model_vae_scale(const SdModel *m);
int sd_model_size_multiple(const SdModel *m);
// C of the latents (the VAE's latent_channels; 3 in pixel space), and the factor diffusers multiplies a VAE sample
// by to get the diffusion model's latents (the VAE's scaling_factor; 1 in pixel space).
int sd_model_latent_channels(const SdModel *m);
double sd_model_scaling_factor(const SdModel *m);
// Whether sd_model_encode / sd_model_decode can run: a pixel-space model, or a VAE model opened with SD_LOAD_VAE.
bool sd_model_has_codec(const SdModel *m);

// images (n, H, W, 3) f32 in [-1, 1], contiguous on the host -> the latents' posterior before scaling (diffusers'
// vae.encode(images).latent_dist; a latent is (mean + exp(logvar / 2) eps) * sd_model_scaling_factor): mean and
// logvar (n, h, w, C) f32 in the host arena. VAE: the images go to g's arena in the model dtype and through the
// encoder on g (the caller resets g and its arena). Pixel space: mean = the images, bit for bit, logvar =
// VAE_LOGVAR_MIN (-30, the least that the VAE's clamp, dice's shards and its training step express: a standard
// deviation of 3e-7, far below the 2/255 step of 8-bit pixels); g is not used.
int sd_model_encode(SdModel *m, Graph *g, const Tensor *images, Arena *host, VaePosterior *post, DiceError *err);

// n latents (n, h, w, C) host f32 at the diffusion model's scale -> out_image (n, H, W, 3) f32 in [0, 1]
// (diffusers' output_type "np") and / or out_pixels (n, H, W, 3) u8 RGB (either may be NULL). VAE: latents /
// scaling_factor on the host in f32 (the SD pipeline applies no shift) -> the decoder in the model dtype, one
// image at a time; pixel space: the latents themselves, on the host in f32. Then diffusers' post-processing
// (x / 2 + 0.5).clamp(0, 1), and pixels round(x * 255) with round-half-to-even (numpy_to_pil's
// (images * 255).round().astype("uint8")). NaN or Inf in a decoded image stops with a message.
int sd_model_decode(SdModel *m, const float *latents, int n, int h, int w, float *out_image, uint8_t *out_pixels,
                    DiceError *err);

// A1111's legacy short model hash ("Model hash:" of its PNG parameters): the first 8 hex digits of the SHA-256 of
// the 64 KiB at offset 1 MiB of `path` (fewer bytes when the file is shorter). buf holds at least 9 bytes.
int sd_model_hash(const char *path, char *buf, DiceError *err);

#ifdef __cplusplus
}
#endif
