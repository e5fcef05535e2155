// eval/world_demo.h — `dice demo`: the miniature DICE reproduction on the embedded default model
// (assets/dice-world: a 32x32 pixel-space text-to-image model dice trained itself on data/world.h's world).
//
//   1. data     n_train images of the world's training split, written as pixel-space shards (data/shards.h):
//               the sharpener's training set
//   2. train    a DICE sharpener through the frozen model (train/trainer.h: Algorithm 1, CFG teacher w = 5,
//               L1 loss, one timestep per sample)
//   3. sample   the same prompts (half of them attribute combinations held out of the base model's training)
//               and seeds with: unguided (w = 1, NFE 20), CFG (w = 5, NFE 40), naive scaling (the best s of
//               {1.5, 3}, NFE 20) and DICE (alpha = 1, NFE 20), DPM-Solver++ 20 steps; plus DICE at every
//               alpha of the sweep
//   4. measure  caption accuracy read back by the world's pixel analyser, a Frechet distance between analyser
//               features of generated and real images, the mean distance to the CFG sample from the same noise,
//               NFE and wall time (eval/world_metrics.h)
//   5. write    out/grid.png (a row per method, a column per prompt), out/table.md, out/alpha_sweep.png
//               (all-attribute and colour accuracy, FD and distance to CFG against alpha),
//               out/loss.png (the sharpener's loss), out/train/ (the sharpener run), out/data/ (the shards)
// base_only measures the base model alone (how much CFG adds to a checkpoint: scripts/world_snapshots.sh):
// steps 3-5 with unguided and CFG only; out/grid.png and out/table.md have their two rows.
// Everything is deterministic from the options on the CPU.
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct WorldDemoOptions {
    const char *model;          // assets/dice-world
    const char *out;            // out/demo
    int n_train;                // images in the sharpener's training shards (1024)
    int64_t train_steps;        // sharpener optimiser steps (400)
    int batch;                  // sharpener global batch (8)
    double lr;                  // sharpener learning rate (2e-4, the paper's)
    double guidance;            // CFG scale of the teacher and of the CFG row (5)
    int n_prompts;              // prompts sampled, half seen and half held out (16)
    int seeds_per_prompt;       // images per prompt and method (8)
    int sample_steps;           // DPM-Solver++ steps (20)
    int n_real;                 // real images for the Frechet distance (256)
    uint64_t seed;              // data order, sharpener initialisation and the sampling seeds (0)
    bool noise_space_loss;      // the sharpener's loss on the implied noise (TrainOptions.noise_space_loss)
    bool base_only;             // unguided and CFG only (no shards, sharpener, scaling or sweep): grid and table
    bool quiet;
} WorldDemoOptions;

void world_demo_defaults(WorldDemoOptions *o);
int world_demo(const WorldDemoOptions *o, DiceError *err);

#ifdef __cplusplus
}
#endif
