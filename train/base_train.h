// train/base_train.h — training a small text-to-image model from scratch (the embedded default, issue 6):
// the CLIP text encoder and the UNet of a diffusers pipeline folder, jointly, on the synthetic world of
// data/world.h, with the standard DDPM objective:
//
//   per sample j of a batch of B (item step * B + j of the world's training stream, data/world.h):
//     x0    = 2 rgb / 255 - 1                                  (32, 32, 3), pixel space
//     c     = caption, replaced by "" with probability uncond_prob (so that CFG means something); otherwise,
//             with caption_noise q > 0, the caption of world_noisy_attrs(attrs, q, seed, i) (each attribute
//             wrong with probability q, like web captions: base_train_caption)
//     t     ~ U{0..T-1}, noise ~ N(0, I), x_t = add_noise(x0, noise, t) on the model's own schedule
//     target = noise (prediction_type epsilon), get_velocity(x0, noise, t) = sqrt(abar_t) noise -
//              sqrt(1 - abar_t) x0 (v_prediction) or x0 (sample), from the model's scheduler config
//   loss  = mean over the batch and elements of (unet(x_t, t, text_encoder(c)) - target)^2
//   AdamW on every linear and convolution weight and bias of both networks (graph_bind_params); the norms'
//   affines (1, 0) and the embedding tables (normal(0, 1), models/init.h) keep their initial values.
//   EMA of the trained weights: ema = d ema + (1 - d) p with d = min(ema_decay, (1 + step) / (10 + step)).
//
// Random numbers: Philox streams of `seed` (nn/philox.h), addressed by the global sample index i = step * B + j,
// so a run is reproducible bit for bit on the CPU and a resumed run continues exactly: philox_uniform4(seed, i)
// gives u0 (caption dropout when < uncond_prob) and u1 (t = floor(u1 T)); the noise is the normal stream of
// seed ^ 0x6e6f697365 ("noise") at offset i * WORLD_PIXELS.
//
// Output folder (a complete diffusers pipeline, loadable like any downloaded model):
//   model_index.json, scheduler/, tokenizer/, text_encoder/config.json, unet/config.json   copied
//   text_encoder/model.safetensors, unet/diffusion_pytorch_model.safetensors   the EMA weights (the raw
//       weights when ema_decay is 0), in save_dtype (f16 keeps the shipped model small)
//   train_state.safetensors   f32 weights, EMA, AdamW moments and the step, for --resume
//   loss.csv (step,loss,lr,seconds), loss.png
//   step-NNNNNN/   with keep_every: the saved weights of that step in a pipeline folder of their own
// Devices: the CPU trains in f32; CUDA runs both networks in bf16 (the kernels' dtype) on bf16 working copies
// of f32 master weights (Param.working, nn/autograd.h): gradients are collected into f32, AdamW and the EMA
// update the f32 masters, which are rounded back into the working copies after every step.
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "data/world.h"
#include "nn/dtype.h"
#include "nn/tensor.h"
#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BaseTrainOptions {
    const char *model;        // pipeline folder: configs + tokenizer; its weights, if any, are the start
    bool from_scratch;        // ignore the folder's weights: PyTorch's default initialisation from `seed`
    const char *out;          // output folder (created)
    int64_t steps;            // optimiser steps to reach (a resumed run continues up to it)
    int batch;
    double lr, weight_decay;
    double uncond_prob;       // caption dropout
    double caption_noise;     // probability that each attribute of a training caption is wrong (0: exact)
    double ema_decay;         // 0: no EMA
    uint64_t seed;            // initialisation (when the model folder has no weights), data and noise
    int64_t save_every;       // 0: at the end only
    int64_t keep_every;       // also keep the weights of every N-th step as out/step-NNNNNN/ (a pipeline folder); 0: none
    DType save_dtype;         // of the shipped weights: DT_F32, DT_F16 or DT_BF16
    Device device;            // DEV_CPU (f32) or DEV_CUDA (bf16 model, f32 master weights, AdamW and EMA)
    bool resume;              // continue from out/train_state.safetensors
    bool quiet;
} BaseTrainOptions;

void base_train_defaults(BaseTrainOptions *o);
// The text that sample `index` of the training stream (the scene `item`, world_sample(seed, index)) is
// trained with: "" (dropout), the noisy caption or the item's own; into buf (WORLD_CAPTION_MAX bytes).
void base_train_caption(const BaseTrainOptions *o, uint64_t index, const WorldItem *item, char *buf);
int base_train(const BaseTrainOptions *o, DiceError *err);

#ifdef __cplusplus
}
#endif
