// data/prep.h — `dice prep`: COCO-style captions and images to HDF5 training shards (data/shards.h).
//
//   PrepCaptions pc;  prep_captions_load(&pc, "captions_train2017.json", seed, err);   // one caption per image
//   Image img;        prep_load_image("train2017/000000000009.jpg", &img, err);
//   Image sq;         prep_transform(&img, 512, &sq, err);          // the authors' centre crop + resize
//   prep_normalize(&sq, pixels);                                    // (512, 512, 3) in [-1, 1]
//   prep_run(&options, &summary, err);                              // the whole command
//
// ---------------------------------------------------------------- captions (data/prep_captions.c)
// The caption file is COCO's as distributed (captions_train2017.json, captions_val2017.json):
//   {"images": [{"id": int, "file_name": str, ...}, ...],
//    "annotations": [{"image_id": int, "id": int, "caption": str, ...}, ...], ...}
// Other members and fields (info, licenses, width, height, coco_url, ...) are ignored. Checked, each failure
// an error naming the file and the entry: the top level is an object with both arrays; every image has an
// integer id (unique) and a relative file_name without ".." components; every annotation has integer image_id
// and id and a string caption, and its image_id is in "images".
// Entries are the images that have at least one caption, in ascending image id (COCO's file names are the
// zero-padded ids, so this is also file-name order); images without a caption are counted and left out.
//
// One caption per image (PAPER.md: "one random caption of the ~5"), drawn once with the seed: the image's
// captions in ascending annotation id, and index floor(u * n) where u is element image_id of the uniform
// Philox stream of the seed (nn/philox.h: philox_fill_uniform_f32(&u, 1, seed, image_id)). The choice for an
// image depends on the seed, its id and its own captions only: --limit, shard sizes and other images do not
// change it. (The authors' loader redraws the caption at every visit; dice's shards hold one.)
//
// ---------------------------------------------------------------- images (data/prep_image.c)
// The authors' transform (zju-pi/dice torch_utils/dataset.py, COCODataset._load_raw_image), reproduced to the
// bit: crop to the centred square of side m = min(H, W), starting at row (H - m) / 2 and column (W - m) / 2
// (rounded down), then torchvision's Resize((size, size)) on a PIL image, i.e. PIL's Image.resize with
// BILINEAR: a separable triangle filter whose support widens with the reduction factor (antialiased),
// coefficients rounded to 22-bit fixed point, horizontal pass then vertical pass, each rounded and clipped to
// 8 bits. (This is crop-then-resize, as the authors do, not torchvision's Resize(size) + CenterCrop(size).)
// Pixels go to the VAE as x / 127.5 - 1 in float32, the authors' `images / 127.5 - 1`. Checked against
// torchvision + PIL in tests/test_prep.c (scripts/golden_prep.py): equal bytes.
//
// ---------------------------------------------------------------- the command (data/prep.c)
// Entry e (0-based, after --limit) goes to shard e / shard_size: shard k holds the entries
// k * shard_size .. (k + 1) * shard_size - 1 that could be read, so any shard can be redone on its own.
// An image that cannot be read (missing, corrupt, unsupported extension) or whose caption the tokenizer
// refuses is reported on the log by file name and reason, counted and skipped: COCO users expect a long run to
// survive a damaged file. A shard whose entries all fail stops the run (a wrong --images directory, most
// likely). The summary gives the counts.
// Resumable: out_dir/prep.json records the settings (size, shard size, seed, limit, entry count, model); a
// rerun with other settings is refused, naming the setting. Finished shards that open and verify
// (shard_open + shard_verify) and match the run's model, size and shapes are skipped; a damaged one is
// reported and redone; temporary files of killed runs (shard_NNNNN.h5.tmp.PID, PID not running) are removed.
// One `dice prep` per output directory at a time.
// The model is opened with sd_model_open (its tokenizer and image codec) and the images encoded with
// sd_model_encode (models/sd_model.h). Devices: on the CPU the VAE runs in f32, on CUDA in bf16; latents are stored
// as data/shards.h says. A pixel-space model (no VAE) stores the images themselves: latent_mean = the pixels in
// [-1, 1] (H, W, 3), latent_logvar = -30, scaling_factor 1.
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "data/image.h"
#include "nn/error.h"
#include "nn/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct PrepEntry {
    int64_t image_id;
    const char *file_name;   // relative to the images directory (points into the PrepCaptions' storage)
    const char *caption;     // the chosen caption, UTF-8 as in the file
    int n_captions;          // captions the image has
    int caption_index;       // which one was chosen (in ascending annotation id)
} PrepEntry;

typedef struct PrepCaptions {
    PrepEntry *entries;      // captioned images, ascending image id
    int64_t n_entries;
    int64_t n_images;        // entries of "images"
    int64_t n_annotations;   // entries of "annotations"
    int64_t n_uncaptioned;   // images without a caption (not in entries)
    char *storage;           // file names and captions (heap)
} PrepCaptions;

// json: the file's text (len bytes); source names it in messages. On failure *pc is left empty.
int prep_captions_parse(PrepCaptions *pc, const char *json, size_t len, const char *source, uint64_t seed,
                        DiceError *err);
int prep_captions_load(PrepCaptions *pc, const char *path, uint64_t seed, DiceError *err);
void prep_captions_free(PrepCaptions *pc);
// The caption rule above: an index in 0 .. n - 1 (n >= 1).
int prep_caption_choice(uint64_t seed, int64_t image_id, int n);

// Decodes by extension (case-insensitive): .jpg / .jpeg with libjpeg, .png with libpng; RGB.
int prep_load_image(const char *path, Image *out, DiceError *err);
// PIL's Image.resize((out_w, out_h), BILINEAR) of an 8-bit RGB image (out_w, out_h >= 1). out is allocated.
int prep_resize_bilinear(const Image *in, int out_w, int out_h, Image *out, DiceError *err);
// The authors' centre crop to a square, then prep_resize_bilinear to size x size. out is allocated.
int prep_transform(const Image *in, int size, Image *out, DiceError *err);
// out (H, W, 3) f32 = pixel / 127.5f - 1.
void prep_normalize(const Image *img, float *out);

typedef struct PrepOptions {
    const char *model_dir;     // a diffusers pipeline folder: its tokenizer and VAE (if any) are loaded
    const char *images_dir;
    const char *captions_path;
    const char *out_dir;       // created if absent
    int size;                  // square image side in pixels (512 for SD1.5); a multiple of sd_model_vae_scale
    int shard_size;            // entries per shard (1024)
    int batch;                 // images per VAE call (memory: see `dice help prep`)
    uint64_t seed;             // the caption choice
    int64_t limit;             // the first `limit` entries only; 0 = all
    Device device;
    FILE *log;                 // progress, skipped images and the summary; NULL for none
} PrepOptions;

typedef struct PrepSummary {
    int64_t entries;           // captioned images, after limit
    int64_t uncaptioned;       // images of the caption file without a caption
    int n_shards;              // shards of the whole dataset
    int shards_kept;           // finished shards found valid and skipped
    int shards_written;        // shards written by this run
    int64_t rows_kept;         // rows in the kept shards
    int64_t rows_written;      // rows written by this run
    int64_t skipped;           // entries of the written shards that could not be read (see above)
} PrepSummary;

int prep_run(const PrepOptions *opt, PrepSummary *summary, DiceError *err);

#ifdef __cplusplus
}
#endif
