// tests/test_prep_run.c — `dice prep` end to end on a tiny COCO-like folder made here: JPEGs of odd sizes
// (colour and grey, written with libjpeg), a PNG, a corrupt file, an image without captions, a caption JSON
// with several captions per image in shuffled order; the tiny VAE (tests/golden/vae/tiny) and tokenizer
// (tests/golden/clip_encoder/tokenizer). Checks the shards row by row against the same steps run here
// (caption rule, tokenizer, transform, VAE encode), the skip report, and resumption: finished shards are kept
// untouched, a damaged one and a missing one are rewritten, an interrupted run's temporary file is removed,
// other settings are refused; --limit; a folder with no readable image; the bf16 CUDA path against the CPU.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jpeglib.h>  // after stdio.h, which it needs

#include "data/prep.h"
#include "data/shards.h"
#include "models/clip_tokenizer.h"
#include "models/vae.h"
#include "test.h"
#include "test_jpeg.h"

#define SIZE 16    // the tiny VAE downsamples by 4: 4 x 4 x 4 latents
#define SEED "11"

typedef struct TinyImage {
    int64_t id;
    int width, height;     // 0: a corrupt file
    int grey;
    const char *ext;
    int n_captions;
} TinyImage;

// Captioned, in ascending id: 1 2 3 4 7 9 (4 corrupt); 5 has no caption. Shard size 2: shards {1,2} {3,4} {7,9}.
static const TinyImage IMAGES[] = {
    {7, 50, 41, 0, "jpg", 2}, {2, 19, 31, 1, "jpg", 5}, {5, 20, 20, 0, "jpg", 0}, {1, 37, 23, 0, "jpg", 3},
    {9, 29, 30, 0, "JPEG", 1}, {3, 12, 12, 0, "png", 1}, {4, 0, 0, 0, "jpg", 2},
};
enum { N_IMAGES = sizeof IMAGES / sizeof IMAGES[0], N_ROWS = 5 };

static void caption_text(int64_t id, int k, char *out, size_t cap) {
    snprintf(out, cap, "image %lld caption %d: a %s on a table%s", (long long)id, k, k % 2 ? "cat" : "red cup",
             id == 7 ? " at the caf\xc3\xa9 \xe2\x98\x95" : "");
}

static void file_name(const TinyImage *im, char *out, size_t cap) {
    snprintf(out, cap, "%012lld.%s", (long long)im->id, im->ext);
}

// The folder: tmp/images/<files>, tmp/captions.json, tmp/model/ (a pipeline folder: model_index.json, links to the
// golden tiny VAE and tokenizer, and to the golden pipeline's UNet and scheduler, which prep does not load).
static int make_coco(TestCtx *tc, char *root, size_t cap) {
    snprintf(root, cap, "%s", test_tmpdir(tc));
    char path[1024], name[64], text[256], real[1024];
    snprintf(path, sizeof path, "%s/images", root);
    if (mkdir(path, 0777)) return -1;
    uint64_t rng = 99;
    for (int i = 0; i < N_IMAGES; i++) {
        const TinyImage *im = &IMAGES[i];
        file_name(im, name, sizeof name);
        snprintf(path, sizeof path, "%s/images/%s", root, name);
        if (!im->width) {  // corrupt: a JPEG signature, then garbage
            FILE *f = fopen(path, "wb");
            if (!f) return -1;
            fputs("\xff\xd8\xff\xe0 not a JPEG after all", f);
            fclose(f);
            continue;
        }
        Image img = {im->width, im->height, malloc((size_t)im->width * im->height * 3)};
        for (int y = 0; y < im->height; y++)
            for (int x = 0; x < im->width; x++)
                for (int c = 0; c < 3; c++)
                    img.rgb[((size_t)y * im->width + x) * 3 + c] =
                        (uint8_t)((x * 9 + y * 5 * (c + 1) + (int)(test_rand_u64(&rng) % 40)) % 256);
        int rc = !strcmp(im->ext, "png") ? image_write_png(path, &img, NULL, NULL, 0, &tc->err)
                                         : test_write_jpeg(path, &img, im->grey, 90);
        image_free(&img);
        if (rc) return -1;
    }
    // Annotations in an order unrelated to their ids; ann id = 100 * image + 10 * k, so k is the rank.
    snprintf(path, sizeof path, "%s/captions.json", root);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "{\"info\": {\"description\": \"tiny\"}, \"images\": [");
    for (int i = 0; i < N_IMAGES; i++) {
        file_name(&IMAGES[i], name, sizeof name);
        fprintf(f, "%s{\"id\": %lld, \"file_name\": \"%s\", \"width\": %d}", i ? ", " : "", (long long)IMAGES[i].id,
                name, IMAGES[i].width);
    }
    fprintf(f, "], \"annotations\": [");
    int first = 1;
    for (int k = 4; k >= 0; k--)
        for (int i = 0; i < N_IMAGES; i++) {
            if (k >= IMAGES[i].n_captions) continue;
            caption_text(IMAGES[i].id, k, text, sizeof text);
            fprintf(f, "%s{\"image_id\": %lld, \"id\": %lld, \"caption\": \"%s\"}", first ? "" : ", ",
                    (long long)IMAGES[i].id, (long long)(100 * IMAGES[i].id + 10 * k), text);
            first = 0;
        }
    fprintf(f, "]}\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/model", root);
    if (mkdir(path, 0777)) return -1;
    const char *links[4][2] = {{"tests/golden/vae/tiny", "vae"}, {"tests/golden/clip_encoder/tokenizer", "tokenizer"},
                               {"tests/golden/pipeline/model/unet", "unet"},  // only hashed, never loaded by prep
                               {"tests/golden/pipeline/model/scheduler", "scheduler"}};
    for (int i = 0; i < 4; i++) {
        if (!realpath(test_path(tc, links[i][0]), real)) return -1;
        snprintf(path, sizeof path, "%s/model/%s", root, links[i][1]);
        if (symlink(real, path)) return -1;
    }
    snprintf(path, sizeof path, "%s/model/model_index.json", root);
    if (!(f = fopen(path, "w"))) return -1;
    fprintf(f, "{\"_class_name\": \"StableDiffusionPipeline\", \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"], "
               "\"text_encoder\": [\"transformers\", \"CLIPTextModel\"], \"unet\": [\"diffusers\", "
               "\"UNet2DConditionModel\"], \"vae\": [\"diffusers\", \"AutoencoderKL\"], \"scheduler\": [\"diffusers\", "
               "\"PNDMScheduler\"]}\n");
    return fclose(f) ? -1 : 0;
}

static const TinyImage *image_of(int64_t id) {
    for (int i = 0; i < N_IMAGES; i++)
        if (IMAGES[i].id == id) return &IMAGES[i];
    return NULL;
}

static int run_prep(TestCtx *tc, const char *root, const char *shard_size, char *err, size_t errsize) {
    char model[1024], images[1024], captions[1024], out[1024], stdout_buf[4096];
    snprintf(model, sizeof model, "%s/model", root);
    snprintf(images, sizeof images, "%s/images", root);
    snprintf(captions, sizeof captions, "%s/captions.json", root);
    snprintf(out, sizeof out, "%s/out", root);
    const char *argv[] = {test_dice_bin(tc), "prep", "--model", model, "--images", images, "--captions", captions,
                          "--out", out, "--size", "16", "--shard-size", shard_size, "--seed", SEED, "--batch", "3",
                          NULL};
    return test_run(tc, argv, stdout_buf, sizeof stdout_buf, err, errsize);
}

// The reference row for an image: the transform and the VAE run here, batch of one.
typedef struct Reference {
    DiceCtx ctx;
    Arena weights, step, host;
    Vae vae;
    ClipTokenizer tok;
} Reference;

static int reference_row(TestCtx *tc, Reference *r, const char *root, const TinyImage *im, float *mean,
                         float *logvar) {
    char name[64], path[1024];
    file_name(im, name, sizeof name);
    snprintf(path, sizeof path, "%s/images/%s", root, name);
    Image img, sq;
    DICE_TRY(prep_load_image(path, &img, &tc->err));
    int rc = prep_transform(&img, SIZE, &sq, &tc->err);
    image_free(&img);
    DICE_TRY(rc);
    Tensor px;
    DICE_TRY(arena_tensor(&r->step, &px, DT_F32, 4, (int64_t[]){1, SIZE, SIZE, 3}, &tc->err));
    prep_normalize(&sq, px.data);
    image_free(&sq);
    Graph g;
    Var *x;
    VaePosterior post;
    DICE_TRY(graph_init(&g, &r->ctx, &r->step, &tc->err));
    rc = graph_leaf(&g, &x, &px, false, &tc->err);
    if (!rc) rc = vae_encode(&r->vae, &g, x, &r->host, &post, &tc->err);
    if (!rc) {
        memcpy(mean, post.mean.data, 64 * sizeof *mean);
        memcpy(logvar, post.logvar.data, 64 * sizeof *logvar);
    }
    graph_free(&g);
    arena_reset(&r->step);
    arena_reset(&r->host);
    return rc;
}

// Every row of the dataset in out/ against the reference; rows_out (N_ROWS, 64) gets the means.
static void check_dataset(TestCtx *tc, const char *root, float *rows_out) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/out", root);
    ShardDataset ds;
    CHECK_OK(dataset_open(&ds, dir, &tc->err));
    CHECK(ds.n_shards == 3 && ds.n_rows == N_ROWS);
    CHECK(ds.shards && shard_info(ds.shards[1])->n_rows == 1);  // image 4 is corrupt
    const ShardInfo *in = &ds.info;
    CHECK(in->latent_h == 4 && in->latent_w == 4 && in->latent_c == 4 && in->seq_len == 77 && in->image_size == SIZE);
    CHECK(!strcmp(in->model, "model") && in->scaling_factor > 0.18 && in->scaling_factor < 0.19);
    Reference r;
    ctx_init_cpu(&r.ctx);
    CHECK_OK(arena_init(&r.weights, "weights", DEV_CPU, 1 << 20, 0, &tc->err));
    CHECK_OK(arena_init(&r.step, "step", DEV_CPU, 1 << 22, 0, &tc->err));
    CHECK_OK(arena_init(&r.host, "host", DEV_CPU, 1 << 20, 0, &tc->err));
    CHECK_OK(vae_load_dir(&r.vae, test_path(tc, "tests/golden/vae/tiny"), &r.ctx, &r.weights, DT_F32, &tc->err));
    CHECK_OK(clip_tokenizer_load(&r.tok, test_path(tc, "tests/golden/clip_encoder/tokenizer"), &tc->err));
    static const int64_t want_ids[N_ROWS] = {1, 2, 3, 7, 9};
    for (int64_t g = 0; g < N_ROWS; g++) {
        float mean[64], logvar[64], want_mean[64], want_logvar[64];
        int32_t ids[77], want_tokens[77];
        int64_t id;
        ShardRows rows = {mean, logvar, ids, &id};
        CHECK_OK(dataset_read(&ds, &g, 1, &rows, &tc->err));
        CHECK_MSG(id == want_ids[g], "row %lld holds image %lld, expected %lld", (long long)g, (long long)id,
                  (long long)want_ids[g]);
        const TinyImage *im = image_of(id);
        int shard;
        int64_t local;
        char *caption, want_caption[256];
        CHECK_OK(dataset_locate(&ds, g, &shard, &local, &tc->err));
        CHECK_OK(shard_read_caption(ds.shards[shard], local, &caption, &tc->err));
        caption_text(id, prep_caption_choice(11, id, im->n_captions), want_caption, sizeof want_caption);
        CHECK_MSG(!strcmp(caption, want_caption), "image %lld: caption '%s', expected '%s'", (long long)id, caption,
                  want_caption);
        CHECK_OK(clip_tokenizer_encode(&r.tok, caption, want_tokens, NULL, NULL, &tc->err));
        free(caption);
        CHECK(!memcmp(ids, want_tokens, sizeof ids));
        CHECK_OK(reference_row(tc, &r, root, im, want_mean, want_logvar));
        // The same f32 CPU code on the same pixels; the batch of 3 in the command may change the GEMM's blocking.
        CHECK_REL_ERR(mean, want_mean, 64, 1e-5);
        for (int k = 0; k < 64; k++)  // stored in float16: within 2^-11 relative, plus the batch rounding
            CHECK_NEAR(logvar[k], want_logvar[k], 1e-3 * fabs(want_logvar[k]) + 1e-4);
        memcpy(rows_out + g * 64, mean, sizeof mean);
    }
    vae_free(&r.vae);
    clip_tokenizer_free(&r.tok);
    arena_free(&r.host);
    arena_free(&r.step);
    arena_free(&r.weights);
    dataset_close(&ds);
}

static int file_stamp(const char *path, struct stat *st) { return stat(path, st); }

static int same_file(const struct stat *a, const struct stat *b) {
    return a->st_ino == b->st_ino && a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

DICE_TEST(prep_end_to_end_skips_corrupt_images_and_resumes) {
    char root[1024], err[16384], path[1200], path2[1200];
    CHECK_MSG(make_coco(tc, root, sizeof root) == 0, "cannot make the tiny COCO folder: %s", tc->err.msg);
    int rc = run_prep(tc, root, "2", err, sizeof err);
    CHECK_MSG(rc == 0, "dice prep exited %d: %s", rc, err);
    CHECK_MSG(strstr(err, "skipped image 4 (000000000004.jpg)") && strstr(err, "corrupt JPEG"), "stderr: %s", err);
    CHECK_MSG(strstr(err, "3 written), 5 rows written, 1 images skipped, 1 images without captions"), "stderr: %s", err);
    float first[N_ROWS * 64], again[N_ROWS * 64];
    check_dataset(tc, root, first);
    if (tc->failed) return;

    // Resume: shard 0 finished, shard 1 truncated, shard 2 gone with an interrupted run's temporary file.
    struct stat s0, s0_after;
    snprintf(path, sizeof path, "%s/out/shard_00000.h5", root);
    CHECK(file_stamp(path, &s0) == 0);
    snprintf(path, sizeof path, "%s/out/shard_00001.h5", root);
    CHECK(truncate(path, 600) == 0);
    snprintf(path, sizeof path, "%s/out/shard_00002.h5", root);
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    snprintf(path2, sizeof path2, "%s/out/shard_00002.h5.tmp.%d", root, (int)dead);
    CHECK(rename(path, path2) == 0);
    rc = run_prep(tc, root, "2", err, sizeof err);
    CHECK_MSG(rc == 0, "resumed dice prep exited %d: %s", rc, err);
    CHECK_MSG(strstr(err, "shard_00002.h5.tmp.") && strstr(err, "left by an interrupted run"), "stderr: %s", err);
    CHECK_MSG(strstr(err, "shard_00001.h5 is damaged"), "stderr: %s", err);
    CHECK_MSG(strstr(err, "done: 3 shards (1 already finished, 2 written), 3 rows written"), "stderr: %s", err);
    CHECK(access(path2, F_OK) != 0);
    snprintf(path, sizeof path, "%s/out/shard_00000.h5", root);
    CHECK(file_stamp(path, &s0_after) == 0 && same_file(&s0, &s0_after));
    check_dataset(tc, root, again);
    if (tc->failed) return;
    CHECK(!memcmp(first, again, sizeof first));  // the same command on the same data: the same bits

    // Everything finished: nothing is written; other settings in the same directory are refused.
    rc = run_prep(tc, root, "2", err, sizeof err);
    CHECK_MSG(rc == 0 && strstr(err, "(3 already finished, 0 written)"), "rc %d, stderr: %s", rc, err);
    rc = run_prep(tc, root, "3", err, sizeof err);
    CHECK_MSG(rc == 1 && strstr(err, "prep.json: this directory was prepared with --shard-size 2, this run has 3"),
              "rc %d, stderr: %s", rc, err);
}

// Every image of a shard unreadable: a wrong --images folder, most likely; the run stops and says so.
DICE_TEST(prep_all_images_unreadable_stops) {
    char root[1024], err[16384], path[1200];
    CHECK_MSG(make_coco(tc, root, sizeof root) == 0, "cannot make the tiny COCO folder: %s", tc->err.msg);
    for (int i = 0; i < N_IMAGES; i++) {
        char name[64];
        file_name(&IMAGES[i], name, sizeof name);
        snprintf(path, sizeof path, "%s/images/%s", root, name);
        unlink(path);
    }
    int rc = run_prep(tc, root, "2", err, sizeof err);
    CHECK_MSG(rc == 1 && strstr(err, "shard_00000.h5: none of its 2 images") && strstr(err, "--images"),
              "rc %d, stderr: %s", rc, err);
    snprintf(path, sizeof path, "%s/out/shard_00000.h5", root);
    CHECK(access(path, F_OK) != 0);
}

// The library call on CUDA (bf16 VAE; emulated under make test) against the same call on the CPU (f32):
// the same rows, latents within bf16 rounding of the encoder (~2^-8 per op, a few ops deep).
DICE_CUDA_TEST(prep_cuda_matches_cpu) {
    char root[1024], model[1100], images[1100], captions[1100], out_cpu[1100], out_gpu[1100];
    CHECK_MSG(make_coco(tc, root, sizeof root) == 0, "cannot make the tiny COCO folder: %s", tc->err.msg);
    snprintf(model, sizeof model, "%s/model", root);
    snprintf(images, sizeof images, "%s/images", root);
    snprintf(captions, sizeof captions, "%s/captions.json", root);
    snprintf(out_cpu, sizeof out_cpu, "%s/out_cpu", root);
    snprintf(out_gpu, sizeof out_gpu, "%s/out_cuda", root);
    PrepOptions o = {model, images, captions, out_cpu, SIZE, 4, 2, 11, 0, DEV_CPU, NULL};
    PrepSummary cpu, gpu;
    CHECK_OK(prep_run(&o, &cpu, &tc->err));
    o.out_dir = out_gpu;
    o.device = DEV_CUDA;
    CHECK_OK(prep_run(&o, &gpu, &tc->err));
    CHECK(cpu.rows_written == N_ROWS && gpu.rows_written == N_ROWS && cpu.skipped == 1 && gpu.skipped == 1);
    CHECK(cpu.n_shards == 2 && cpu.shards_written == 2 && cpu.uncaptioned == 1 && cpu.entries == 6);
    ShardDataset a, b;
    CHECK_OK(dataset_open(&a, out_cpu, &tc->err));
    CHECK_OK(dataset_open(&b, out_gpu, &tc->err));
    for (int64_t g = 0; g < N_ROWS; g++) {
        float ma[64], mb[64], la[64], lb[64];
        int32_t ta[77], tb[77];
        int64_t ia, ib;
        ShardRows ra = {ma, la, ta, &ia}, rb = {mb, lb, tb, &ib};
        CHECK_OK(dataset_read(&a, &g, 1, &ra, &tc->err));
        CHECK_OK(dataset_read(&b, &g, 1, &rb, &tc->err));
        CHECK(ia == ib && !memcmp(ta, tb, sizeof ta));
        CHECK_REL_ERR(mb, ma, 64, 3e-2);
        CHECK_REL_ERR(lb, la, 64, 3e-2);
    }
    dataset_close(&a);
    dataset_close(&b);
}

// --limit N: the first N captioned images in ascending id, with the captions the full run chooses.
DICE_TEST(prep_limit_takes_the_first_images) {
    char root[1024], model[1100], images[1100], captions[1100], out[1100];
    CHECK_MSG(make_coco(tc, root, sizeof root) == 0, "cannot make the tiny COCO folder: %s", tc->err.msg);
    snprintf(model, sizeof model, "%s/model", root);
    snprintf(images, sizeof images, "%s/images", root);
    snprintf(captions, sizeof captions, "%s/captions.json", root);
    snprintf(out, sizeof out, "%s/limited", root);
    PrepOptions o = {model, images, captions, out, SIZE, 2, 1, 11, 3, DEV_CPU, NULL};
    PrepSummary sum;
    CHECK_OK(prep_run(&o, &sum, &tc->err));
    CHECK(sum.entries == 3 && sum.n_shards == 2 && sum.rows_written == 3 && sum.skipped == 0);
    ShardDataset ds;
    CHECK_OK(dataset_open(&ds, out, &tc->err));
    CHECK(ds.n_rows == 3);
    for (int64_t g = 0; g < 3; g++) {
        int64_t id;
        ShardRows rows = {NULL, NULL, NULL, &id};
        CHECK_OK(dataset_read(&ds, &g, 1, &rows, &tc->err));
        CHECK(id == g + 1);
        int shard;
        int64_t local;
        char *caption, want[256];
        CHECK_OK(dataset_locate(&ds, g, &shard, &local, &tc->err));
        CHECK_OK(shard_read_caption(ds.shards[shard], local, &caption, &tc->err));
        caption_text(id, prep_caption_choice(11, id, image_of(id)->n_captions), want, sizeof want);
        CHECK(!strcmp(caption, want));
        free(caption);
    }
    dataset_close(&ds);
    o.limit = 4;  // another limit in the same directory is refused
    CHECK_FAILS_WITH(prep_run(&o, &sum, &tc->err), "--limit 3, this run has 4");
}
