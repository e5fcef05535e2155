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
//
// The manifest. Every weights_get records an entry {canonical name, the caller's Tensor (by address), the
// shape in the file's order, the permutation}: the model's parameters, enumerable by name after loading.
// weights_take_manifest keeps it beyond weights_close; weights_save (models/weights_save.c) writes it back
// as a diffusers / transformers safetensors file and weights_init_pytorch (models/init.h) fills it with
// fresh random weights. Loading from an empty file gives a model of zeros whose manifest is the whole model:
//
//   weights_open(&w, &empty_file, 1, &ctx, &arena, DT_F32, err);
//   unet_load(&unet, &cfg, &w, err);              // every tensor "missing": zero-filled at its shape
//   weights_take_manifest(&w, &m);  weights_close(&w);
//   weights_init_pytorch(&m, &ctx, seed, err);    // PyTorch's default init, by name
//   ... train ...
//   weights_save(&m, &ctx, "unet/diffusion_pytorch_model.safetensors", DT_F32, err);
//   weight_manifest_free(&m);
//
// The entries point at the model's tensors: the model must stay where it is (not be copied or freed) while
// its manifest is used.
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

// One tensor a loader asked for. out holds it in dice's layout: out dim i = file dim perm[i] (its shape may
// have been regrouped since, e.g. a (O, I, 1, 1) conv kept as an (O, I) matrix; numel and order are kept).
typedef struct WeightEntry {
    char *name;                        // canonical name (owned)
    Tensor *out;                       // the caller's tensor
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];    // expected shape in the file's order
    int perm[TENSOR_MAX_DIMS];         // identity when the loader gave none
} WeightEntry;

// Entries in the order the loader asked for them.
typedef struct WeightManifest {
    WeightEntry *entries;
    int n, cap;
} WeightManifest;

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
    WeightManifest manifest;  // every weights_get, in call order
} Weights;

int weights_open(Weights *w, const char *const *paths, int n_paths, DiceCtx *ctx, Arena *arena, DType dtype,
                 DiceError *err);
// A Weights without files: every weights_get comes back zero-filled at its shape (and is recorded in the
// manifest), for a model whose weights are initialised afterwards (models/init.h). Skip weights_finish.
int weights_open_empty(Weights *w, DiceCtx *ctx, Arena *arena, DType dtype, DiceError *err);
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
// Marks `name` (canonical) as used without loading it or adding it to the manifest: a tensor the files may
// hold that the model does not keep (e.g. CLIP's stale position_ids buffer), so weights_finish does not report
// it as unexpected. Nothing happens if the files do not hold it.
void weights_mark_used(Weights *w, const char *name);
// 0 if nothing was missing, mis-shaped or unexpected; otherwise -1 with one message listing all.
int weights_finish(Weights *w, DiceError *err);
// Frees the manifest unless it was taken.
void weights_close(Weights *w);

int weights_n_entries(const Weights *w);
const WeightEntry *weights_entry(const Weights *w, int i);  // 0 <= i < weights_n_entries(w)
// Moves w's manifest into *out (w's becomes empty); free it with weight_manifest_free.
void weights_take_manifest(Weights *w, WeightManifest *out);
void weight_manifest_free(WeightManifest *m);

// Writes every entry of m to `path` as a safetensors file in the diffusers / transformers layout: canonical
// names, the file's dim order (perm undone), float tensors converted to file_dtype (DT_F32, DT_BF16 or
// DT_F16), other dtypes kept; sorted like the safetensors Python writer (by decreasing element size, then by
// name), metadata {"format": "pt"} as save_pretrained writes it, then meta_keys / meta_values (n_meta pairs,
// keys other than "format").
// ctx is the device context of the tensors (device tensors are copied to the host first). Atomic: written to
// a temporary file and renamed (nn/safetensors.h st_write); on failure `path` is untouched and no temporary
// file is left. Duplicate names in m are an error.
int weights_save(const WeightManifest *m, DiceCtx *ctx, const char *path, DType file_dtype, DiceError *err);
int weights_save_meta(const WeightManifest *m, DiceCtx *ctx, const char *path, DType file_dtype,
                      const char *const *meta_keys, const char *const *meta_values, int n_meta, DiceError *err);

#ifdef __cplusplus
}
#endif
