// sample/pipeline.h — text to image with a Stable Diffusion 1.x model (models/sd_model.h), as diffusers'
// StableDiffusionPipeline computes it, with the guidance modes dice compares:
//   unguided      w = 1: one UNet call a step on c; the unconditional pass is never run
//   CFG           w != 1: conditional and unconditional in ONE UNet batch of 2B rows,
//                 eps = e_u + w (e_c - e_u), e_u on the negative prompt's embedding or encode("")
//                 (diffusers runs CFG only for w > 1 and ignores w < 1; dice runs it for any w != 1)
//   scaling       c -> s c (PAPER.md, Fig. 3), then one call a step (or CFG if w != 1)
//   DICE          c_phi = c + alpha r(c, c_ref) [- beta (c_neg - c_null)], computed ONCE per prompt by the
//                 sharpener, then one call a step. c_ref is the negative prompt's embedding when there is one
//                 (the authors' code), else c_null = encode(""); beta (PAPER.md's negative-prompt formula) needs
//                 a negative prompt.
//   transform     a caller's embedding transform (PipelineTransform), applied after scaling and DICE.
// Conditioning is the text encoder's last hidden state (SD 1.x). Transforms run in f32 on the model's device;
// the result is converted to the model dtype for the UNet.
//
// Initial noise, per image i: torch.randn((1, C, h, w), generator=torch.Generator().manual_seed(seeds[i])) in
// torch's NCHW order, permuted to NHWC, times the scheduler's init_noise_sigma. This is diffusers' pipeline
// called with a list of generators (generator=[torch.Generator().manual_seed(s) for s in seeds]); diffusers with
// ONE generator draws a single randn((B, C, h, w)) instead, so image i > 0 would depend on the batch. Drawing per
// image on the CPU generator makes a seed give the same initial latents whatever the batch, device or dtype.
//
// The scheduler runs on host f32 latents (B h w C values, NHWC): each step copies the UNet input to the device
// and its output back (a few hundred KB per step at 512 x 512; cheap next to a UNet call). Decoding is
// sd_model_decode (models/sd_model.h): latents / scaling_factor -> the VAE decoder -> diffusers' post-processing,
// or, for a pixel-space model (no VAE, a 3-channel UNet on images in [-1, 1]), the post-processing of the final
// "latents" themselves. NaN or Inf in a decoded image stops with a message.
#pragma once
#include <stdint.h>

#include "models/sd_model.h"
#include "models/sharpener.h"

#ifdef __cplusplus
extern "C" {
#endif

// An embedding transform: *out (B, N, C) f32 from c (the conditional embedding after scaling / DICE), c_ref
// (the negative prompts' embedding, or c_null where an image has none) and c_null (encode("")), all (B, N, C) f32
// on g's device. Runs once per generate call, without gradients.
typedef struct PipelineTransform {
    int (*apply)(void *user, Graph *g, Var *c, Var *c_ref, Var *c_null, Var **out, DiceError *err);
    void *user;
} PipelineTransform;

typedef struct PipelineOptions {
    SchedulerKind sampler;        // default SCHED_DPMSOLVER_MULTISTEP
    int steps;                    // default 20
    double guidance;              // w, default 1 (unguided)
    int height, width;            // pixels; 0 = the UNet's sample_size times sd_model_vae_scale (1 in pixel space)
    double embed_scale;           // s of naive scaling; 1 = off
    Sharpener *sharpener;         // DICE when non-NULL
    double alpha, beta;           // DICE strength (default 1) and negative-prompt weight (default 0)
    PipelineTransform transform;  // apply == NULL: none
    // Called after every step (step = 1..steps); may be NULL.
    void (*progress)(void *user, int step, int steps);
    void *progress_user;
} PipelineOptions;

PipelineOptions pipeline_defaults(void);

typedef struct PipelineStats {
    int unet_calls;               // UNet forward calls (one a step)
    int64_t unet_rows;            // batch rows evaluated over all calls (2B a step under CFG)
    int text_rows;                // prompts encoded by the text encoder (B, plus B for "" / negatives when needed)
    int sharpener_calls;          // batched sharpener forwards (at most one a generate call)
    double nfe;                   // denoiser evaluations per image: unet_rows / B (steps, or 2 steps under CFG)
} PipelineStats;

// One batch of n images: image i from prompts[i], negatives[i] (negatives may be NULL, or hold NULL entries
// meaning none) and seeds[i].
//   init_latents   (n, h, w, C) f32 NHWC to start from instead of the seeded noise (already scaled by
//                  init_noise_sigma), or NULL
//   out_latents    (n, h, w, C) f32: the final latents (before / scaling_factor; the images in [-1, 1] in pixel
//                  space), or NULL
//   out_image      (n, H, W, 3) f32 in [0, 1] (diffusers' output_type "np"), or NULL
//   out_pixels     (n, H, W, 3) u8 RGB, or NULL
//   stats          may be NULL
// h = H / sd_model_vae_scale(m), likewise w. With out_image and out_pixels both NULL nothing is decoded (the VAE
// need not be loaded); otherwise sd_model_decode does it.
typedef struct PipelineRequest {
    int n;
    const char *const *prompts;
    const char *const *negatives;
    const uint64_t *seeds;
    const float *init_latents;
    float *out_latents, *out_image;
    uint8_t *out_pixels;
} PipelineRequest;

int pipeline_generate(SdModel *m, const PipelineOptions *o, const PipelineRequest *r, PipelineStats *stats,
                      DiceError *err);

// The initial noise of one image (h, w, C) NHWC f32, as described above (init_noise_sigma not applied).
int pipeline_noise(uint64_t seed, int h, int w, int c, float *out, DiceError *err);
// The image size o asks for (0 = the model's default), checked against sd_model_size_multiple.
int pipeline_image_size(const SdModel *m, const PipelineOptions *o, int *height, int *width, DiceError *err);

#ifdef __cplusplus
}
#endif
