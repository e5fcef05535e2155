// train/checkpoint.h — DICE training checkpoints: everything a run needs to continue exactly where it stopped,
// in one safetensors file.
//
// Tensors (f32): the sharpener's parameters under their own names (fc1.weight, ..., fc2.bias) and AdamW's
// moments as adamw.m.<name> and adamw.v.<name>. Metadata (strings):
//   dice.checkpoint   format version ("1")
//   step              optimiser steps completed
//   adamw.step        AdamW's update count
//   rng.seed, rng.normal_offset, rng.uniform_offset   the two Philox training streams (nn/philox.h)
//   data.epoch, data.index                            the loader's position (data/loader.h)
//   seconds           training time so far (for the loss CSV's time column)
//   sharpener.heads   attention heads
//   setting.<key>     the run's settings (TrainSettings): a resumed run must give the same ones
//   checksum          FNV-1a 64 of every tensor's bytes in file order, 16 hex digits
// The file is written through st_write: a temporary file, flushed, fsynced and renamed, so a crash leaves the
// previous checkpoint. Loading validates the file (safetensors structure, the format version, every key, the
// tensor names, shapes and dtype against the live sharpener, the checksum, the settings) and reports the first
// problem in one line naming the file.
#pragma once
#include <stdint.h>

#include "data/loader.h"
#include "models/sharpener.h"
#include "nn/adamw.h"
#include "nn/philox.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CHECKPOINT_MAX_SETTINGS 24

// The settings a run is defined by, as (key, value) strings.
typedef struct TrainSettings {
    int n;
    char key[CHECKPOINT_MAX_SETTINGS][32];
    char value[CHECKPOINT_MAX_SETTINGS][160];
} TrainSettings;

// Appends a setting (printf-style value).
int train_settings_add(TrainSettings *s, const char *key, DiceError *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

typedef struct TrainState {
    int64_t step;                 // optimiser steps completed
    PhiloxStream normal, uniform; // same seed, the two streams' offsets
    LoaderPos data;
    double seconds;
} TrainState;

int checkpoint_save(const char *path, Sharpener *s, const AdamW *opt, const TrainState *st,
                    const TrainSettings *settings, DiceCtx *ctx, DiceError *err);
// Restores s's parameters and opt's moments and step (both already initialised with the same shapes) and *st.
// A setting that differs from `settings` is an error naming it and both values.
int checkpoint_load(const char *path, Sharpener *s, AdamW *opt, TrainState *st, const TrainSettings *settings,
                    DiceCtx *ctx, DiceError *err);

#ifdef __cplusplus
}
#endif
