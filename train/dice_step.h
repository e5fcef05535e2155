// train/dice_step.h — one step of the paper's Algorithm 1 on a micro-batch, and the random draws that make
// its inputs.
//
// Inputs (dice_prepare, on the host, for the rows of one micro-batch):
//   x0  = (latent_mean + exp(0.5 clamp(latent_logvar, -30, 20)) * eps0) * scaling_factor
//         (diffusers' `vae.encode(img).latent_dist.sample() * scaling_factor`, what the authors train on;
//         DicePrepare.x0_mean takes the stored mean instead)
//   t   ~ U{0..T-1}: one t for the whole global batch (the authors'), or one per sample
//   x_t = add_noise(x0, noise, t) on the model's own discrete schedule
//   null_index: which of the K null embeddings a sample uses (K = 1: c_null = encode(""); K negative prompts:
//         one drawn uniformly per sample)
// Random numbers come from two Philox streams of one seed (nn/philox.h). Each global step reserves a block
// of each, and a sample's numbers are addressed by its index j in the GLOBAL batch, so a batch split over
// ranks or micro-batches draws exactly what the whole batch draws on one rank:
//   normal  stream, block of B * 2 * n_latent: eps0 of sample j at 2 j n_latent, its noise right after
//   uniform stream, block of 2B + 1: element 0 the batch's t, 1 + j sample j's t, 1 + B + j its null index
//   (n_latent = h * w * c; t = floor(u T), null index = floor(u K)).
//
// The step (dice_step, on the context's device):
//   c     = text_encoder(token_ids)                                  no grad, frozen dtype
//   cn    = null_embeds[null_index]                                  (n, L, d_e) in the sharpener's dtype
//   teacher, no grad, ONE UNet batch of 2n: [e_u; e_c] = eps([x_t; x_t], [t; t], [cn; c])
//   target = e_u + w (e_c - e_u)
//   c_phi = c + alpha r(c, cn) in the sharpener's dtype (fp32; f64 for gradient checks), cast to the UNet's
//   pred  = eps(x_t, t, c_phi)
//   loss  = scale * sum |pred - target|  (L1, SD1.5)  or  scale * sum (pred - target)^2  (squared L2, SDXL),
//           scale = 1 / global batch, so the gradients of every micro-batch on every rank SUM to the
//           gradient of the global batch's loss
// pred and target are the UNet's raw outputs (unless cfg->noise_space), as diffusers guides them: epsilon for
// the paper's models; for a v_prediction model (the embedded default) v = eps / sqrt(abar_t)
// - sqrt((1 - abar_t) / abar_t) x_t is the same affine map of eps for both branches, so CFG on v is CFG on eps,
// and the loss on v is the loss on eps weighted by 1 / sqrt(abar_t) (L1): at high noise it is the x0
// prediction's error, which is where a prompt decides an image's colours.
// Backward adds into the sharpener's Param gradients only (the frozen nets hold plain tensors). The
// teacher's activations are released as soon as its target is computed.
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "models/clip_encoder.h"
#include "models/sharpener.h"
#include "models/unet.h"
#include "nn/philox.h"
#include "sample/schedule.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum DiceLoss { DICE_LOSS_L1, DICE_LOSS_L2 } DiceLoss;

typedef struct DiceStepConfig {
    double guidance;        // w of the CFG teacher (5)
    double alpha;           // sharpening strength of the student (1)
    DiceLoss loss;
    int64_t global_batch;   // the loss divisor
    // NULL: the loss is on the UNet's raw outputs. A schedule: on the noise they imply, the paper's loss
    // whatever the model predicts. eps = sqrt(1 - abar) x_t + sqrt(abar) v and eps = (x_t - sqrt(abar) x0) /
    // sqrt(1 - abar) are affine in the output with the same x_t term for pred and target, so each sample's
    // pred and target are scaled by f(t) = sqrt(abar_t) (v_prediction) or sqrt(abar_t / (1 - abar_t)) (sample),
    // 1 for epsilon: L1 weighs the sample by f, squared L2 by f^2.
    const NoiseSchedule *noise_space;
} DiceStepConfig;

typedef struct DiceNets {
    const Unet *unet;            // frozen, weights in unet->dtype (bf16 on CUDA)
    const ClipEncoder *clip;     // frozen, last_hidden_state is the conditioning c (SD1.5)
    Sharpener *sharpener;        // trained; its Params' dtype is the sharpener's compute dtype
    const Tensor *null_embeds;   // (K, L, d_e) in the sharpener's dtype on the device
} DiceNets;

typedef struct DiceMicroBatch {
    int64_t n;                   // samples
    int64_t h, w, c;             // latent shape
    const float *x_t;            // (n, h, w, c) host
    const int32_t *timesteps;    // (n) host
    const int32_t *token_ids;    // (n, L) host
    int64_t seq_len;             // L
    const int32_t *null_index;   // (n) host, rows of null_embeds
} DiceMicroBatch;

// Adds the micro-batch's (scaled) loss to *loss; with `backward`, adds its gradient into the sharpener's
// Params. Activations live in g's arena (reset it afterwards); g needs a scratch arena when
// nets->unet->checkpoint is set.
int dice_step(Graph *g, const DiceNets *nets, const DiceStepConfig *cfg, const DiceMicroBatch *mb, bool backward,
              double *loss, DiceError *err);

typedef struct DicePrepare {
    const NoiseSchedule *schedule;
    double scaling_factor;
    bool x0_mean;                // x0 = mean * scaling_factor (else a posterior sample)
    bool t_per_sample;
    int n_null;                  // K
    int64_t global_batch;        // B
    uint64_t seed;               // of both streams
    uint64_t normal_base;        // this step's block in the normal stream
    uint64_t uniform_base;       // this step's block in the uniform stream
} DicePrepare;

// Reserves one step's blocks in the two streams (of p->seed), advancing them, and records where they start.
void dice_reserve_step(DicePrepare *p, PhiloxStream *normal, PhiloxStream *uniform, int64_t n_latent);
// For samples j0 .. j0+n-1 of the global batch (rows mean, logvar: (n, n_latent) host): x_t (n, n_latent),
// timesteps (n), null_index (n).
int dice_prepare(const DicePrepare *p, int64_t j0, int64_t n, int64_t n_latent, const float *mean,
                 const float *logvar, float *x_t, int32_t *timesteps, int32_t *null_index, DiceError *err);

#ifdef __cplusplus
}
#endif
