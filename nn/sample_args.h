// nn/sample_args.h — the sampling flags shared by `dice sample` and `dice run sample`: parsing, the model
// and sharpener set-up, and the A1111-style `parameters` text that PNGs carry.
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "models/sd_model.h"
#include "models/sharpener.h"
#include "sample/pipeline.h"

typedef struct SampleArgs {
    const char *model, *config, *prompt, *prompts_file, *negative, *sharpener, *sampler_name, *device, *out, *in;
    int steps, height, width, batch;
    double guidance, scale, alpha, beta;
    bool has_seed, has_alpha, has_beta, has_scale;
    uint64_t seed;
    SchedulerKind sampler;
} SampleArgs;

// The flags text of `dice help sample` (also used by `dice help run`).
#define SAMPLE_FLAGS_HELP \
    "  --model DIR|FILE        a diffusers StableDiffusionPipeline folder (fp32 / fp16 / bf16 safetensors, plain or\n" \
    "                          *.fp16.safetensors variant files); .ckpt / .bin pickles are refused with how to\n" \
    "                          convert them; or a single-file original-layout .safetensors checkpoint with\n" \
    "  --config DIR            the configs and tokenizer/ of a single file: a diffusers SD 1.x folder\n" \
    "  --prompt TEXT           one prompt, or\n" \
    "  --prompts FILE          one prompt per line (empty lines skipped)\n" \
    "  --negative-prompt TEXT  the unconditional prompt of CFG; in DICE mode the sharpener's second input\n" \
    "                          (never dropped: without CFG or DICE it is an error)\n" \
    "  --steps N               sampler steps (default 20)\n" \
    "  --guidance W            CFG scale (default 1: unguided, one UNet call a step; W != 1: CFG, one batch of 2B)\n" \
    "  --scale-embeddings S    naive scaling of the text embedding, c -> S c\n" \
    "  --sharpener FILE        DICE: c_phi = c + alpha r(c, c_null or the negative prompt), once per prompt\n" \
    "  --alpha A               DICE strength (default 1)\n" \
    "  --beta B                DICE negative-prompt weight: c_phi -= B (c_neg - c_null) (default 0)\n" \
    "  --sampler NAME          dpm++2m (default), euler or ddim, from the model's scheduler config\n" \
    "  --seed N                seed of the first image (random if absent: printed and recorded); image j of a\n" \
    "                          prompt uses N + j, like diffusers with generator=[Generator().manual_seed(N + j)]\n" \
    "  --height H, --width W   image size in pixels (default: the UNet's sample_size x the VAE's scale)\n" \
    "  --batch N               images per prompt, denoised together (default 1)\n" \
    "  --device cpu|cuda       where the model runs (default cpu): f32 on the CPU, bf16 on CUDA\n"

// Parses argv[1..] into a (argv[0] is the command name, `cmd` names it in messages). Returns 0; 1 when --help was
// asked for (the caller prints its usage, exit 0); or 2 after printing one usage-error line (exit 2). Checks what needs no file:
// numbers and ranges, flags that need one another (--alpha / --beta need --sharpener, --beta a negative prompt,
// --negative-prompt CFG or DICE), --prompt xor --prompts. A missing --seed draws a random one (printed by the
// caller).
int sample_args_parse(SampleArgs *a, int argc, char **argv, const char *cmd, bool allow_in);

// The prompts: --prompt, or the non-empty lines of --prompts FILE (trailing \r removed). *list and its strings
// are heap (free_prompts). An unreadable or empty file is an error.
int sample_args_prompts(const SampleArgs *a, char ***list, int *n, DiceError *err);
void sample_args_free_prompts(char **list, int n);

// Context, model (every component) and, in DICE mode, the sharpener (in `persistent` on the same device); a
// sharpener whose "base_model" metadata names another model draws a warning on stderr. o gets every sampling
// option of a.
typedef struct SampleSetup {
    DiceCtx ctx;
    bool ctx_cuda;
    SdModel model;
    bool model_open;
    Arena persistent;
    Sharpener sharpener;
    bool has_sharpener;
    PipelineOptions opts;
} SampleSetup;

int sample_setup_open(SampleSetup *s, const SampleArgs *a, DiceError *err);
void sample_setup_close(SampleSetup *s);

// A1111's `parameters` text for one image: prompt line, "Negative prompt: ..." line when there is one, then
// "Steps: 20, Sampler: DPM++ 2M, CFG scale: 5, Seed: 42, Size: 512x512, Model hash: ..., Model: ..." and dice's
// fields (Embedding scale, DICE alpha, DICE beta, Sharpener), "Version: dice".
void sample_parameters(const SampleArgs *a, const SampleSetup *s, const char *prompt, uint64_t seed, int width,
                       int height, char *buf, size_t cap);
