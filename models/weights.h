// models/weights.h — loading a model's weights from safetensors files into tensors.
//
// A model's loader asks for every tensor it needs by its canonical (diffusers / transformers) name and
// expected shape. Problems do not stop the loading at the first one: missing and mis-shaped tensors
// are collected, and weights_finish reports them all in one message together with the tensors of the
// files that nothing asked for (unexpected), naming the files. So a user learns in one run everything
// that does not fit, as diffusers' loaders do.
//
//   Weights w;
//   weights_open(&w, paths, 1, &ctx, &arena, DT_BF16, err);     // checkpoint files (mmap, validated)
//   weights_get(&w, &conv_w, "conv_in.weight", 4, (int64_t[]){320, 4, 3, 3}, NULL, err);
//   ...
//   weights_finish(&w, err);   // -1 with "3 missing: ..., 1 mis-shaped: ..., 2 unexpected: ..."
//   weights_close(&w);
//
// Formats whose names differ from the canonical ones (single-file original-layout checkpoints) set a
// translation: canonical name -> name in the file (one table per format, in models/).
#pragma once
#include <stdbool.h>

#include "nn/arena.h"
#include "nn/context.h"
#include "nn/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

// Writes the file's name for `canonical` into buf and returns buf, or NULL if the format has no such
// tensor (the request then counts as missing).
typedef const char *(*WeightNameFn)(const char *canonical, char *buf, size_t bufsize, void *user);

// True if an unused tensor of the files (its name in the file) is a known harmless extra that weights_finish
// should not report as unexpected.
typedef bool (*WeightIgnoreFn)(const char *file_name, void *user);

typedef struct WeightProblems {
    char *text;     // "; "-separated names (heap), NULL if none
    size_t len, cap;
    int count;
} WeightProblems;

typedef struct Weights {
    int n_files;
    StFile *files;
    bool **used;              // used[f][i]: tensor i of file f was asked for
    DiceCtx *ctx;
    Arena *arena;             // where the tensors go (its device is the destination)
    DType dtype;              // dtype the float tensors are converted to
    WeightNameFn name_fn;     // NULL: names are used as they are
    void *name_user;
    const char *ignore_prefix;// unexpected tensors starting with this are not reported (e.g. "model_ema.")
    WeightIgnoreFn ignore_fn; // NULL, or: unexpected tensors for which it returns true are not reported
    void *ignore_user;
    bool squeeze_trailing_ones;// accept a file shape equal to the expected one plus trailing size-1 dims
                              // (original-layout checkpoints store some linears as (out, in, 1, 1) convs)
    WeightProblems missing, misshaped;
} Weights;

int weights_open(Weights *w, const char *const *paths, int n_paths, DiceCtx *ctx, Arena *arena, DType dtype,
                 DiceError *err);
void weights_set_names(Weights *w, WeightNameFn fn, void *user);
// Loads `name` with the given shape into out (arena tensor, converted to w->dtype for float tensors).
// perm (may be NULL) permutes the file's dims first: out dim i = file dim perm[i] (e.g. conv weights
// OIHW -> OHWI with {0, 2, 3, 1}); `shape` is the expected shape in the file's order (with
// squeeze_trailing_ones, the file's tensor may have extra trailing dims of size 1, dropped before the permutation).
// A missing or mis-shaped tensor is recorded (weights_finish reports it), *out gets a zero-filled tensor
// of the expected shape so loading can go on, and 0 is returned; -1 only for errors that stop
// loading (memory, device).
int weights_get(Weights *w, Tensor *out, const char *name, int ndim, const int64_t *shape, const int *perm,
                DiceError *err);
// True if the files hold `name` (after translation); marks nothing as used.
bool weights_has(Weights *w, const char *name);
// 0 if nothing was missing, mis-shaped or unexpected; otherwise -1 with one message listing all.
int weights_finish(Weights *w, DiceError *err);
void weights_close(Weights *w);

#ifdef __cplusplus
}
#endif
