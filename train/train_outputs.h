// train/train_outputs.h — the pictures `dice train` writes next to its loss CSV (rank 0):
//   loss.png       the loss CSV's losses against the step (raw, thin) and their trailing mean (thick), linear y
//   val_{step}.png a validation grid: one row per method, one column per fixed prompt (image j from seed j):
//                  row 0 unguided (w = 1), row 1 CFG (w = the training's guidance), row 2 DICE (alpha = the
//                  training's alpha, w = 1, the current sharpener), each row a single pipeline_generate call
//                  (sample/pipeline.h) whose working memory is freed when it returns. A left column names the
//                  rows; the PNG's text chunks hold "step", "rows" and "prompts" (one a line).
#pragma once
#include <stdint.h>

#include "models/sd_model.h"
#include "models/sharpener.h"

#ifdef __cplusplus
extern "C" {
#endif

// Writes png_path from csv_path (step,loss,... lines; the header and partial lines skipped), titled
// "<what> loss, step N". The mean is over the last max(5, min(200, n / 20)) steps (fewer at the start).
int train_loss_plot(const char *csv_path, const char *png_path, const char *what, DiceError *err);

typedef struct TrainVal {
    const char *const *prompts;
    int n_prompts;
    int steps;                 // sampler steps (DPM-Solver++ multistep)
    double guidance, alpha;
} TrainVal;

// The grid's geometry for n_prompts images of h x w pixels: cell (row, col) has its top-left corner at
// (label_w + col * (w + gap), margin + row * (h + gap)).
typedef struct TrainValLayout {
    int width, height, label_w, margin, gap;
} TrainValLayout;

enum { TRAIN_VAL_ROWS = 3 };

TrainValLayout train_val_layout(int n_prompts, int h, int w);
// Generates and writes the grid (m needs its tokenizer, text encoder, UNet and VAE).
int train_val_grid(SdModel *m, Sharpener *sh, const TrainVal *v, int64_t step, const char *path, DiceError *err);

// The built-in validation prompts (COCO-style captions).
extern const char *const train_val_default_prompts[];
extern const int train_val_n_default_prompts;

#ifdef __cplusplus
}
#endif
