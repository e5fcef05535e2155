// models/sd_model.h — a Stable Diffusion 1.x model as people download it, opened onto a device: the tokenizer,
// text encoder, UNet, VAE and scheduler config of a diffusers pipeline folder, or of a single-file
// original-layout (LDM) checkpoint.
//
//   SdModel m;
//   sd_model_open(&m, "models/dreamshaper", NULL, &ctx, SD_LOAD_ALL, err);   // a folder; or a single file:
//   sd_model_open(&m, "dreamshaper_8.safetensors", "models/sd15-configs", &ctx, SD_LOAD_ALL, err);
//   ... m.tok, m.text, m.unet, m.vae; sd_model_scheduler(&m, SCHED_DPMSOLVER_MULTISTEP, &sched, err);
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
// Single file (.safetensors holding model.diffusion_model.*, first_stage_model.* and
// cond_stage_model.transformer.*, with the EMA copy and DDPM buffers many files carry): loaded through the
// original-layout name table (models/ldm_names.h). Such a file has no configs and no tokenizer: they come from
// config_dir, a diffusers SD 1.x folder (diffusers' from_single_file(path, config=DIR)); its weights are not read.
// model_index.json is not needed there.
//
// Refused with a message saying how to convert: pickled checkpoints (.ckpt, .bin, .pt, .pth, or any file
// whose content is a pickle or a torch zip archive). Every other problem is one message naming the folder or
// file and what is wrong (missing component, unsupported pipeline class, config field, every missing or
// mis-shaped tensor of a component, text-encoder width != the UNet's cross_attention_dim, ...).
#pragma once
#include <stdbool.h>

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
    Vae vae;
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

// Pixels per latent pixel (the VAE's downscale) and the factor the image height and width must be multiples of
// (the downscale times the UNet's 2^(levels - 1)).
int sd_model_vae_scale(const SdModel *m);
int sd_model_size_multiple(const SdModel *m);

// A1111's legacy short model hash ("Model hash:" of its PNG parameters): the first 8 hex digits of the SHA-256 of
// the 64 KiB at offset 1 MiB of `path` (fewer bytes when the file is shorter). buf holds at least 9 bytes.
int sd_model_hash(const char *path, char *buf, DiceError *err);

#ifdef __cplusplus
}
#endif
