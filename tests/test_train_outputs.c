// tests/test_train_outputs.c — the pictures of `dice train` (train/train_outputs.h): loss.png and val_{step}.png
// written by a short in-process run and decoding at the expected sizes, the DICE row equal to the unguided row at
// alpha = 0 and different from it with a sharpener at alpha = 1, the loss plot of a CSV with a partial line and a
// NaN, clear errors for an empty CSV and a missing --val-prompts file.
//
// Model: the tiny diffusers pipeline tests/golden/pipeline/model (UNet sample_size 8, VAE scale 2: 16 x 16 images).
// Data: HDF5 shards of 8x8x4 latents written here (a small copy of tests/test_dice_train.c's fixture).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <omp.h>

#include "data/image.h"
#include "data/shards.h"
#include "models/clip_tokenizer.h"
#include "test.h"
#include "train/train_outputs.h"
#include "train/trainer.h"

#define PIPELINE "tests/golden/pipeline/model"
#define LAT 8
#define LAT_C 4
#define IMG 16                    // pixels: LAT times the VAE's scale
#define ROWS 4

static const char *pipeline(TestCtx *tc) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s", test_path(tc, PIPELINE));
    return dir;
}

// One shard of ROWS random latents with tokenized captions in `dir`.
static int write_dataset(TestCtx *tc, const char *dir, DiceError *err) {
    static const char *const captions[ROWS] = {"a photo of a cat", "a red cube", "two dogs", "a blue car"};
    ClipTokenizer tok;
    char tok_dir[600], path[600];
    snprintf(tok_dir, sizeof tok_dir, "%s/tokenizer", pipeline(tc));
    DICE_TRY(clip_tokenizer_load(&tok, tok_dir, err));
    ShardInfo info = {.latent_h = LAT, .latent_w = LAT, .latent_c = LAT_C, .seq_len = tok.max_length,
                      .image_size = IMG * 4, .scaling_factor = 0.18215};
    snprintf(info.model, sizeof info.model, "tiny-pipeline");
    snprintf(info.created_by, sizeof info.created_by, "tests/test_train_outputs.c");
    enum { NL = LAT * LAT * LAT_C };
    float mean[NL], logvar[NL];
    int32_t ids[77];
    uint64_t rng = 77;
    int rc = tok.max_length <= 77 && mkdir(dir, 0777) == 0 ? 0 : DICE_FAIL(err, "mkdir %s or tokenizer length", dir);
    ShardWriter *w = NULL;
    snprintf(path, sizeof path, "%s/shard_00000.h5", dir);
    if (!rc) rc = shard_writer_open(&w, path, &info, err);
    for (int r = 0; !rc && r < ROWS; r++) {
        for (int k = 0; k < NL; k++) {
            mean[k] = test_rand_uniform(&rng, -8.0f, 8.0f);
            logvar[k] = test_rand_uniform(&rng, -6.0f, -2.0f);
        }
        rc = clip_tokenizer_encode(&tok, captions[r], ids, NULL, NULL, err);
        if (!rc) rc = shard_writer_append(w, &(ShardRowIn){mean, logvar, ids, captions[r], r}, err);
    }
    if (w && !rc) rc = shard_writer_close(w, err);
    else if (w) shard_writer_abort(w);
    clip_tokenizer_free(&tok);
    return rc;
}

static void path_in(TestCtx *tc, char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", test_tmpdir(tc), name);
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

// The pixels of row `row` of a validation grid (n cells), (n, IMG, IMG, 3) into out.
static void grid_row(const Image *img, int n, int row, uint8_t *out) {
    TrainValLayout l = train_val_layout(n, IMG, IMG);
    for (int j = 0; j < n; j++)
        for (int y = 0; y < IMG; y++) {
            size_t y0 = (size_t)(l.margin + row * (IMG + l.gap) + y);
            size_t at = y0 * (size_t)img->width + (size_t)(l.label_w + j * (IMG + l.gap));
            memcpy(out + ((size_t)(j * IMG + y) * IMG) * 3, img->rgb + at * 3, IMG * 3);
        }
}

// A short in-process run at alpha 0 with a grid of 2 prompts after every step: loss.png (800 x 480) and
// val_{step}.png (the layout's size for 2 prompts of 16 x 16) decode, no grid past the last step; the DICE row
// equals the unguided row (alpha 0 leaves c unchanged) and the CFG row (w = 5) differs from it.
static void run_and_check(TestCtx *tc, Device device, int steps) {
    setenv("OMP_NUM_THREADS", "1", 1);
    omp_set_num_threads(1);
    char data[512], out[512], prompts[512], path[700];
    path_in(tc, data, sizeof data, "data");
    path_in(tc, out, sizeof out, "out");
    path_in(tc, prompts, sizeof prompts, "prompts.txt");
    CHECK_OK(write_dataset(tc, data, &tc->err));
    CHECK(write_text(prompts, "a photo of a cat\n\na blue car\n") == 0);
    TrainOptions o = train_options_defaults();
    o.model_dir = pipeline(tc);
    o.data_dir = data;
    o.out_dir = out;
    o.steps = steps;
    o.global_batch = 2;
    o.micro_batch = 2;
    o.hidden = 32;
    o.heads = 4;
    o.alpha = 0;
    o.save_every = 1;
    o.val_every = 1;
    o.val_steps = 3;
    o.val_prompts = prompts;
    o.device = device;
    o.quiet = true;
    Dist one = {.n_ranks = 1};
    CHECK_OK(dice_train(&o, &one, &tc->err));
    Image img;
    snprintf(path, sizeof path, "%s/loss.png", out);
    CHECK_OK(image_read_png(path, &img, &tc->err));
    CHECK(img.width == 800 && img.height == 480);
    image_free(&img);
    TrainValLayout l = train_val_layout(2, IMG, IMG);
    uint8_t unguided[2 * IMG * IMG * 3], cfg[2 * IMG * IMG * 3], dice[2 * IMG * IMG * 3];
    for (int step = 1; step <= steps; step++) {
        snprintf(path, sizeof path, "%s/val_%d.png", out, step);
        CHECK_OK(image_read_png(path, &img, &tc->err));
        CHECK_MSG(img.width == l.width && img.height == l.height, "%s: %d x %d, want %d x %d", path, img.width,
                  img.height, l.width, l.height);
        grid_row(&img, 2, 0, unguided);
        grid_row(&img, 2, 1, cfg);
        grid_row(&img, 2, 2, dice);
        CHECK(!memcmp(unguided, dice, sizeof dice));
        CHECK(memcmp(unguided, cfg, sizeof cfg) != 0);
        image_free(&img);
        char text[256];
        CHECK_OK(image_png_text(path, "prompts", text, sizeof text, &tc->err));
        CHECK(!strcmp(text, "a photo of a cat\na blue car"));
    }
    snprintf(path, sizeof path, "%s/val_%d.png", out, steps + 1);
    struct stat st;
    CHECK(stat(path, &st) != 0);
}

DICE_TEST(train_outputs_run_writes_loss_plot_and_val_grids) { run_and_check(tc, DEV_CPU, 2); }

// The same on CUDA (bf16 model, fp32 sharpener; the emulator under `make test`): one step.
DICE_CUDA_TEST(train_outputs_run_writes_val_grids_on_cuda) { run_and_check(tc, DEV_CUDA, 1); }

// train_val_grid directly with a fresh sharpener: at alpha 1 the DICE row differs from the unguided row, at alpha 0
// it equals it; the built-in prompts give one column each.
DICE_TEST(train_outputs_dice_row_follows_alpha) {
    setenv("OMP_NUM_THREADS", "1", 1);
    omp_set_num_threads(1);
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    CHECK_OK(sd_model_open(&m, pipeline(tc), NULL, &ctx, SD_LOAD_ALL, &tc->err));
    Arena a;
    CHECK_OK(arena_init(&a, "sharpener", DEV_CPU, 1 << 20, 0, &tc->err));
    Sharpener sh;
    CHECK_OK(sharpener_init(&sh, 32, 32, 4, &a, &ctx, 3, &tc->err));
    int n = train_val_n_default_prompts;
    TrainValLayout l = train_val_layout(n, IMG, IMG);
    size_t row_bytes = (size_t)n * IMG * IMG * 3;
    uint8_t *rows[2][2] = {{malloc(row_bytes), malloc(row_bytes)}, {malloc(row_bytes), malloc(row_bytes)}};
    CHECK(rows[0][0] && rows[0][1] && rows[1][0] && rows[1][1]);
    for (int k = 0; k < 2; k++) {
        char path[600];
        snprintf(path, sizeof path, "%s/grid_%d.png", test_tmpdir(tc), k);
        TrainVal v = {train_val_default_prompts, n, 2, 5.0, k ? 1.0 : 0.0};
        CHECK_OK(train_val_grid(&m, &sh, &v, 7, path, &tc->err));
        Image img;
        CHECK_OK(image_read_png(path, &img, &tc->err));
        CHECK(img.width == l.width && img.height == l.height);
        grid_row(&img, n, 0, rows[k][0]);
        grid_row(&img, n, 2, rows[k][1]);
        image_free(&img);
        char text[32];
        CHECK_OK(image_png_text(path, "step", text, sizeof text, &tc->err));
        CHECK(!strcmp(text, "7"));
    }
    CHECK(!memcmp(rows[0][0], rows[0][1], row_bytes));
    CHECK(!memcmp(rows[0][0], rows[1][0], row_bytes));
    CHECK(memcmp(rows[1][0], rows[1][1], row_bytes) != 0);
    for (int k = 0; k < 4; k++) free(rows[k / 2][k % 2]);
    arena_free(&a);
    sd_model_close(&m);
}

// A CSV with its header, a NaN loss and a half-written last line plots; one with no losses is an error.
DICE_TEST(train_outputs_loss_plot_from_csv) {
    char csv[512], png[512];
    path_in(tc, csv, sizeof csv, "loss.csv");
    path_in(tc, png, sizeof png, "loss.png");
    CHECK(write_text(csv, "step,loss,lr,seconds\n1,30.5,0.0002,0.1\n2,nan,0.0002,0.2\n3,28.25,0.0002,0.3\n4,2") == 0);
    CHECK_OK(train_loss_plot(csv, png, "test", &tc->err));
    Image img;
    CHECK_OK(image_read_png(png, &img, &tc->err));
    CHECK(img.width == 800 && img.height == 480);
    image_free(&img);
    CHECK(write_text(csv, "step,loss,lr,seconds\n") == 0);
    CHECK(train_loss_plot(csv, png, "test", &tc->err) != 0 && strstr(tc->err.msg, "no losses"));
}

// A missing --val-prompts file stops the run before any model is loaded, naming the flag.
DICE_TEST(train_outputs_missing_val_prompts_is_an_error) {
    char out[512];
    path_in(tc, out, sizeof out, "out");
    TrainOptions o = train_options_defaults();
    o.model_dir = pipeline(tc);
    o.data_dir = out;
    o.out_dir = out;
    o.val_prompts = "/nonexistent/prompts.txt";
    o.quiet = true;
    Dist one = {.n_ranks = 1};
    CHECK(dice_train(&o, &one, &tc->err) != 0);
    CHECK_MSG(strstr(tc->err.msg, "--val-prompts /nonexistent/prompts.txt"), "message: %s", tc->err.msg);
}
