// train/trainer.h — the DICE training run behind `dice train`: a Stable Diffusion 1.x model (pipeline folder or
// single file, models/sd_model.h: frozen tokenizer, text encoder and UNet), HDF5 shards (data/shards.h) read in
// the loader's order (data/loader.h), Algorithm 1 per micro-batch (train/dice_step.h), gradients summed over
// ranks (train/dist.h), AdamW, a loss CSV and progress lines, checkpoints with exact resume (train/checkpoint.h).
//
// Files in out_dir (rank 0 writes them; every rank reads the checkpoint when resuming):
//   loss.csv                 step,loss,lr,seconds — the global batch's loss (sum over latent elements, mean over
//                            the batch: the loss the gradient is taken of) after each step, the learning rate
//                            and training seconds so far (across resumes)
//   loss.png                 loss.csv plotted (raw and a trailing mean) with every checkpoint (train/train_outputs.h)
//   val_{step}.png           every val_every steps: a grid of unguided / CFG / DICE images of fixed prompts and seeds
//                            (train/train_outputs.h); rank 0 loads the VAE for it. It draws no training randomness.
//   checkpoint.safetensors   every save_every steps and at the end (train/checkpoint.h)
//   sharpener.safetensors    at the end: the sharpener alone (models/sharpener.h) with metadata base_model,
//                            model_hash, guidance_scale, alpha, steps, data, loss, global_batch, lr, heads
//
// Determinism: one seed gives the sharpener's initialisation (Philox uniform stream of `seed`), the data
// order (loader shuffle of `seed`) and the training draws (Philox streams of seed ^ 0x9E3779B97F4A7C15).
// On the CPU a run is bitwise reproducible, and a run resumed from a checkpoint continues the same loss
// sequence bit for bit. The same global batch on 1 or N ranks, or with other micro-batch sizes, gives the
// same result up to the rounding of the gradient sums.
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "train/dice_step.h"
#include "train/dist.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct TrainOptions {
    const char *model_dir, *data_dir, *out_dir;
    const char *config_dir;      // configs and tokenizer of a single-file checkpoint (models/sd_model.h), or NULL
    int64_t steps;               // 8000
    int64_t global_batch;        // 128
    int64_t micro_batch;         // 16 per forward/backward on a rank
    double lr;                   // 2e-4 (constant; AdamW betas 0.9/0.999, eps 1e-8, weight decay 1e-2)
    double guidance;             // 5
    double alpha;                // 1
    DiceLoss loss;               // L1 (SD1.5)
    bool t_per_sample;           // false: one t per global batch (the authors')
    bool noise_space_loss;       // the loss on the noise the UNet's outputs imply (DiceStepConfig.noise_space)
    bool x0_mean;                // false: x0 is a posterior sample (the authors')
    const char *negative_prompts;// NULL: c_null = encode(""); else a file, one prompt a line
    uint64_t seed;               // 0
    int64_t save_every;          // 500; 0: only at the end
    int64_t check_every;         // 100: cross-rank identity check of the sharpener
    int64_t val_every;           // 500: validation grid period in steps; 0 off
    const char *val_prompts;     // NULL: the built-in captions; else a file, one prompt a line
    int val_steps;               // 20: sampler steps of the validation images
    bool resume;
    Device device;
    bool checkpoint_blocks;      // recompute the UNet's blocks in backward (less memory)
    int hidden, heads;           // sharpener size: 512, 8 (the authors')
    int64_t stop_after;          // testing: the process kills itself (SIGKILL) after this step; 0 never
    bool quiet;                  // no progress lines
} TrainOptions;

TrainOptions train_options_defaults(void);
int dice_train(const TrainOptions *o, Dist *dist, DiceError *err);

#ifdef __cplusplus
}
#endif
