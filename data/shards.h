// data/shards.h — DICE training data: HDF5 shards of VAE latents, token ids and captions (writer,
// validating reader), and a dataset = a directory of shards with global row indexing.
//
// ---------------------------------------------------------------- the shard format (version 1)
// One HDF5 file per shard, N > 0 rows, one row per training image. In the root group:
//
//   dataset         shape           type                         one row is
//   latent_mean     (N, h, w, c)    float32 (IEEE, little-end.)  the VAE posterior mean, NHWC, unscaled
//   latent_logvar   (N, h, w, c)    float16 (IEEE binary16)      its log-variance, NHWC (the reader also
//                                                                accepts float32)
//   token_ids       (N, L)          int32                        the caption's tokens, padded to L (77 for CLIP)
//   captions        (N,)            UTF-8 string, fixed length   the caption (one per image, see below)
//   image_ids       (N,)            int64                        the source image's id (COCO image id)
//
//   attribute            type     meaning (strings: fixed-length UTF-8; h5py's variable-length ones are
//                                 read too, but dice writes no variable-length data, see captions)
//   format_version       int64    1 (readers refuse versions they do not know)
//   latent_layout        string   "NHWC"
//   model                string   the model whose VAE and tokenizer made the shard
//   image_size           int64    pixels of the square image that was encoded (512 for SD1.5)
//   scaling_factor       float64  the VAE's scaling factor (0.18215 for SD1.5)
//   created_by           string   the program and version that wrote the shard
//
// Latents are the VAE's raw posterior: a training latent is
//   x0 = (latent_mean + exp(0.5 * latent_logvar) * eps) * scaling_factor,   eps ~ N(0, 1),
// i.e. diffusers' `vae.encode(img).latent_dist.sample() * scaling_factor`. NHWC is dice's activation
// layout, so a row goes into a (B, h, w, c) tensor as is; diffusers' NCHW is
// `np.transpose(f["latent_mean"][i], (2, 0, 1))`. SD1.5 at 512 px: h = w = 64, c = 4. The log-variance is
// stored in float16 to save a quarter of the file: SD's VAE clamps it to [-30, 20], where float16 is
// within 2^-7 of the value, which moves the standard deviation by at most 0.4% of itself.
//
// One caption per image: COCO has about five per image; the paper's "one random caption" is drawn once,
// when the shard is written (by `dice prep`), not at every epoch.
//
// Captions are fixed-length strings (character set UTF-8, NUL-padded, as wide as the shard's longest
// caption in bytes, at most SHARD_CAPTION_MAX), not HDF5 variable-length strings: those live in HDF5's
// global heap, which has no checksum and no filters, and a flipped byte there crashes HDF5 1.10's
// reader. In h5py: h5py.string_dtype("utf-8", length=width).
//
// Storage: every dataset is chunked along N (latents one row per chunk, the others 64 rows per chunk),
// growable along N, with the shuffle, deflate (gzip level 4) and Fletcher-32 filters, in the HDF5 1.10
// file format (superblock, object headers and chunk indexes carry checksums): a flipped byte in
// anything the reader uses is reported by the library, never read as data. Any HDF5 >= 1.10 reads a
// shard; with h5py:
//   import h5py, numpy as np
//   with h5py.File("shard_00000.h5", "r") as f:
//       mean = f["latent_mean"][i]                       # (h, w, c) float32
//       std = np.exp(0.5 * f["latent_logvar"][i].astype(np.float32))
//       caption = f["captions"][i].decode()              # bytes, NUL padding removed
//       model = f.attrs["model"].decode()                # string attributes are bytes too
//
// A writer writes "<path>.tmp.<pid>" and renames it to <path> when closed, so a shard is complete or
// absent. The reader validates everything before use (attributes, version, datasets, types, ranks,
// shapes agreeing, N > 0) and names the shard and the problem; a damaged chunk found later, while
// reading, is reported the same way. HDF5 never prints its error stack: messages come back in DiceError.
// Not thread-safe: one thread per process makes the HDF5 calls.
//
// ---------------------------------------------------------------- datasets
// A dataset is a directory holding shard_00000.h5, shard_00001.h5, ... (five or more digits, numbered
// from 0 without gaps; other files are ignored). Global row g is row g - start[k] of shard k, shards
// in numeric order. All shards must agree on shapes and on every attribute except created_by. An open
// dataset holds every shard open (one file descriptor each).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SHARD_FORMAT_VERSION 1
#define SHARD_TEXT_MAX 256     // bytes of the model and created_by attributes, NUL included
#define SHARD_CAPTION_MAX 4096 // bytes of a caption

typedef struct ShardInfo {
    int64_t n_rows;            // N (filled by the reader; the writer counts its own)
    int64_t latent_h, latent_w, latent_c;
    int64_t seq_len;           // L, token ids per row
    int64_t image_size;
    double scaling_factor;
    char model[SHARD_TEXT_MAX];
    char created_by[SHARD_TEXT_MAX];
} ShardInfo;

// ---------------------------------------------------------------- writer
typedef struct ShardWriter ShardWriter;

typedef struct ShardRowIn {
    const float *latent_mean;    // (h, w, c)
    const float *latent_logvar;  // (h, w, c), rounded to float16 when written
    const int32_t *token_ids;    // (L,)
    const char *caption;         // UTF-8, NUL-terminated
    int64_t image_id;
} ShardRowIn;

// Creates "<path>.tmp.<pid>" (replacing a stale one) for a shard with info's shapes and attributes
// (n_rows ignored). *w is NULL on failure.
int shard_writer_open(ShardWriter **w, const char *path, const ShardInfo *info, DiceError *err);
// Appends one row: finite latents, token ids >= 0, a valid UTF-8 caption of at most SHARD_CAPTION_MAX
// bytes. A row that fails these checks is not written and the writer stays usable; after any other
// failure, abort the writer.
int shard_writer_append(ShardWriter *w, const ShardRowIn *row, DiceError *err);
// Flushes and closes the file, fsyncs it and renames it to its path; at least one row must have been
// appended. Frees w whatever happens; on failure the temporary file is removed and path is untouched.
int shard_writer_close(ShardWriter *w, DiceError *err);
// Discards the shard: closes and removes the temporary file, frees w (NULL is fine).
void shard_writer_abort(ShardWriter *w);

// ---------------------------------------------------------------- reader
typedef struct Shard Shard;

// Caller buffers for n consecutive rows; rows of a NULL member are not read.
typedef struct ShardRows {
    float *latent_mean;          // (n, h, w, c)
    float *latent_logvar;        // (n, h, w, c), converted to float32
    int32_t *token_ids;          // (n, L)
    int64_t *image_ids;          // (n,)
} ShardRows;

// Opens and validates a shard (see the top of this file). *s is NULL on failure.
int shard_open(Shard **s, const char *path, DiceError *err);
void shard_close(Shard *s);      // NULL is fine
const ShardInfo *shard_info(const Shard *s);
const char *shard_path(const Shard *s);
// Rows row0 .. row0+n-1 into out (n >= 1, inside the shard).
int shard_read(Shard *s, int64_t row0, int64_t n, const ShardRows *out, DiceError *err);
// The caption of one row as a malloc'd NUL-terminated string (caller frees).
int shard_read_caption(Shard *s, int64_t row, char **caption, DiceError *err);
// Reads every row of every dataset (so every chunk's checksum is checked) and checks the values:
// finite latents, token ids >= 0, captions valid UTF-8. What `dice prep` runs on finished shards.
int shard_verify(Shard *s, DiceError *err);

// ---------------------------------------------------------------- dataset
typedef struct ShardDataset {
    char *dir;
    int n_shards;
    Shard **shards;              // in numeric order, all open
    int64_t *start;              // (n_shards + 1,): shard k holds global rows start[k] .. start[k+1]-1
    int64_t n_rows;              // start[n_shards]
    ShardInfo info;              // shard 0's (n_rows = the dataset's total)
} ShardDataset;

// Lists, opens and validates every shard of dir; fails naming the shard if any is bad, missing from
// the numbering, or disagrees with shard 0. On failure *ds is left empty (dataset_close is safe).
int dataset_open(ShardDataset *ds, const char *dir, DiceError *err);
void dataset_close(ShardDataset *ds);
// Global row -> (shard, row in that shard).
int dataset_locate(const ShardDataset *ds, int64_t global, int *shard, int64_t *row, DiceError *err);
// Rows rows[0..n-1] (global indices, any order, repeats allowed) into slots 0..n-1 of out.
int dataset_read(ShardDataset *ds, const int64_t *rows, int64_t n, const ShardRows *out, DiceError *err);

#ifdef __cplusplus
}
#endif
