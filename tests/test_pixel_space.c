// tests/test_pixel_space.c — pixel-space models (models/sd_model.h): a pipeline folder whose model_index.json lists
// "vae": [null, null] and whose UNet works on RGB images in [-1, 1]. Built here from the golden tiny pipeline
// (tests/golden/pipeline/model): its tokenizer, text encoder and scheduler, and its UNet cut to 3 input and output
// channels (conv_in's input slices and conv_out's first 3 filters) with sample_size 12. Checked: opening (no VAE
// loaded, latent scale 1, size multiple 2), the image codec's pixel mapping both ways, sampling unguided and with
// CFG (image size, determinism and batch independence of a seed, latents = the image), `dice run` on such a model,
// `dice prep` storing the images themselves, `dice train` with validation grids on those shards, and the refusals
// (a 4-channel UNet without VAE, a malformed or missing "vae" entry).
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/image.h"
#include "data/prep.h"
#include "data/shards.h"
#include "models/sd_model.h"
#include "sample/pipeline.h"
#include "test.h"
#include "train/train_outputs.h"
#include "train/trainer.h"

#define GOLDEN "tests/golden/pipeline/model"
#define SIDE 12                       // the pixel-space UNet's sample_size (the golden latent UNet's is 8)
#define PIX (SIDE * SIDE * 3)         // values of one image (H, W, 3)
#define N_IMG 2

// One OpenMP thread here and in the dice processes started (as test_train_outputs does): on a loaded machine the
// threads of these tiny ops spin-wait for seconds.
static void one_thread(void) {
    setenv("OMP_NUM_THREADS", "1", 1);
    omp_set_num_threads(1);
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) || !ok ? -1 : 0;
}

// dir/config.json: the golden UNet's config with `channels` in and out and sample_size SIDE.
static int write_unet_config(TestCtx *tc, const char *dir, int channels) {
    char path[1400];
    FILE *f = fopen(test_path(tc, GOLDEN "/unet/config.json"), "rb");
    DICE_CHECK(&tc->err, f, "cannot open the golden UNet config");
    static char text[1 << 14];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    cJSON *cfg = cJSON_Parse(text);
    DICE_CHECK(&tc->err, cfg, "the golden UNet config is not JSON");
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(cfg, "in_channels"), channels);
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(cfg, "out_channels"), channels);
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(cfg, "sample_size"), SIDE);
    char *out = cJSON_Print(cfg);
    cJSON_Delete(cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = out && !write_text(path, out) ? 0 : DICE_FAIL(&tc->err, "%s: cannot write", path);
    free(out);
    return rc;
}

// dir/diffusion_pytorch_model.safetensors: the golden fp16 UNet with conv_in reading the first 3 channels and
// conv_out writing 3 (its first 3 filters); every other tensor as it is.
static int write_rgb_unet_weights(TestCtx *tc, const char *dir) {
    StFile f;
    DICE_TRY(st_open(&f, test_path(tc, GOLDEN "/unet/diffusion_pytorch_model.fp16.safetensors"), &tc->err));
    StWriteTensor *t = calloc((size_t)f.n_tensors, sizeof *t);
    char *conv_in = NULL;
    int rc = t ? 0 : DICE_FAIL(&tc->err, "out of memory");
    for (int i = 0; i < f.n_tensors && !rc; i++) {
        const StTensorInfo *s = &f.tensors[i];
        t[i] = (StWriteTensor){s->name, s->dtype, s->ndim, {0}, s->data};
        for (int d = 0; d < s->ndim; d++) t[i].shape[d] = s->shape[d];
        if (!strcmp(s->name, "conv_out.weight") || !strcmp(s->name, "conv_out.bias")) {
            t[i].shape[0] = 3;  // (out, in, k, k) / (out): the first 3 filters are a prefix of the data
        } else if (!strcmp(s->name, "conv_in.weight")) {  // (out, 4, k, k) -> (out, 3, k, k)
            size_t esize = dtype_size(s->dtype), plane = (size_t)(s->shape[2] * s->shape[3]) * esize;
            conv_in = malloc((size_t)s->shape[0] * 3 * plane);
            if (!conv_in) rc = DICE_FAIL(&tc->err, "out of memory");
            for (int64_t o = 0; o < s->shape[0] && !rc; o++)
                memcpy(conv_in + (size_t)o * 3 * plane, (const char *)s->data + (size_t)o * (size_t)s->shape[1] * plane,
                       3 * plane);
            t[i].shape[1] = 3;
            t[i].data = conv_in;
        }
    }
    char path[1400];
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    if (!rc) rc = st_write(path, t, f.n_tensors, NULL, NULL, 0, &tc->err);
    free(conv_in);
    free(t);
    st_close(&f);
    return rc;
}

// A pipeline folder test_tmpdir/name: model_index.json whose "vae" entry is `vae_entry` (JSON text; NULL: no "vae"
// key), the golden tokenizer, text encoder and scheduler linked, and unet/ written here with `channels` channels
// (3: the RGB UNet above; 4: the golden UNet's weights linked, its config with sample_size SIDE).
static const char *make_folder(TestCtx *tc, const char *name, const char *vae_entry, int channels) {
    static char dir[1024];
    char path[1200], real[1024];
    snprintf(dir, sizeof dir, "%s/%s", test_tmpdir(tc), name);
    if (mkdir(dir, 0755)) return NULL;
    static const char *const linked[] = {"tokenizer", "text_encoder", "scheduler"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", GOLDEN, linked[i]);
        if (!realpath(test_path(tc, path), real)) return NULL;
        snprintf(path, sizeof path, "%s/%s", dir, linked[i]);
        if (symlink(real, path)) return NULL;
    }
    snprintf(path, sizeof path, "%s/unet", dir);
    if (mkdir(path, 0755) || write_unet_config(tc, path, channels)) return NULL;
    if (channels == 3 && write_rgb_unet_weights(tc, path)) return NULL;
    if (channels != 3) {
        if (!realpath(test_path(tc, GOLDEN "/unet/diffusion_pytorch_model.fp16.safetensors"), real)) return NULL;
        snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.fp16.safetensors", dir);
        if (symlink(real, path)) return NULL;
    }
    char index[1024], vae[128] = "";
    if (vae_entry) snprintf(vae, sizeof vae, ", \"vae\": %s", vae_entry);
    snprintf(index, sizeof index, "{\"_class_name\": \"StableDiffusionPipeline\", \"tokenizer\": [\"transformers\", "
             "\"CLIPTokenizer\"], \"text_encoder\": [\"transformers\", \"CLIPTextModel\"], \"unet\": [\"diffusers\", "
             "\"UNet2DConditionModel\"], \"scheduler\": [\"diffusers\", \"PNDMScheduler\"], \"safety_checker\": "
             "[null, null]%s}\n", vae);
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    return write_text(path, index) ? NULL : dir;
}

// The pixel-space model of these tests, test_tmpdir/pixel.
static const char *pixel_model(TestCtx *tc) { return make_folder(tc, "pixel", "[null, null]", 3); }

typedef struct Sampled {
    float latents[N_IMG * PIX], image[N_IMG * PIX];
    uint8_t pixels[N_IMG * PIX];
    PipelineStats stats;
} Sampled;

// n images from prompt and seed `first` on, 2 steps.
static int sample(SdModel *m, double guidance, int first, int n, Sampled *out, DiceError *err) {
    static const char *const prompts[N_IMG] = {"a red circle left of a blue square", "a green triangle above"};
    static const uint64_t seeds[N_IMG] = {5, 6};
    PipelineOptions o = pipeline_defaults();
    o.steps = 2;
    o.guidance = guidance;
    PipelineRequest r = {n, prompts + first, NULL, seeds + first, NULL, out->latents, out->image, out->pixels};
    return pipeline_generate(m, &o, &r, &out->stats, err);
}

// Opening: no VAE, the codec is the pixel mapping; sampling gives SIDE x SIDE images whose latents are the images.
DICE_TEST(pixel_space_model_opens_and_samples) {
    one_thread();
    const char *dir = pixel_model(tc);
    CHECK_MSG(dir, "cannot make the pixel-space folder: %s", tc->err.msg);
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    CHECK_OK(sd_model_open(&m, dir, NULL, &ctx, SD_LOAD_ALL, &tc->err));
    CHECK(!m.has_vae && m.loaded == (SD_LOAD_ALL & ~SD_LOAD_VAE) && sd_model_has_codec(&m));
    CHECK(sd_model_vae_scale(&m) == 1 && sd_model_size_multiple(&m) == 2 && sd_model_latent_channels(&m) == 3 &&
          sd_model_scaling_factor(&m) == 1.0 && strlen(m.hash) == 8);
    PipelineOptions o = pipeline_defaults();
    int H, W;
    CHECK_OK(pipeline_image_size(&m, &o, &H, &W, &tc->err));
    CHECK(H == SIDE && W == SIDE);
    o.height = 15;
    CHECK_FAILS_WITH(pipeline_image_size(&m, &o, &H, &W, &tc->err), "multiples of 2");

    static Sampled un, again, cfg, alone;
    CHECK_OK(sample(&m, 1.0, 0, N_IMG, &un, &tc->err));
    CHECK(un.stats.nfe == 2 && un.stats.unet_calls == 2);
    for (int k = 0; k < N_IMG * PIX; k++) {  // the latents are the images in [-1, 1]
        float v = un.latents[k] / 2 + 0.5f;
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        CHECK_MSG(un.image[k] == v && un.pixels[k] == (uint8_t)rintf(v * 255), "value %d: latent %g, image %g, "
                  "pixel %d", k, un.latents[k], un.image[k], un.pixels[k]);
        if (tc->failed) break;
    }
    CHECK(memcmp(un.latents, un.latents + PIX, PIX * sizeof *un.latents) != 0);
    CHECK_OK(sample(&m, 1.0, 0, N_IMG, &again, &tc->err));
    CHECK(!memcmp(&un, &again, sizeof un));  // a seed gives the same image, bit for bit
    // whatever the batch (the GEMM's blocking may change with it: test_pipeline's bound)
    CHECK_OK(sample(&m, 1.0, 1, 1, &alone, &tc->err));
    CHECK(test_rel_err_f32(alone.latents, un.latents + PIX, PIX) <= 1e-6);
    CHECK_OK(sample(&m, 5.0, 0, N_IMG, &cfg, &tc->err));
    CHECK(cfg.stats.nfe == 4 && cfg.stats.unet_calls == 2);
    CHECK(test_rel_err_f32(cfg.latents, un.latents, N_IMG * PIX) > 1e-4);
    sd_model_close(&m);
}

// The codec without anything loaded: x = 2 p / 255 - 1 one way, (x / 2 + 0.5).clamp(0, 1) and numpy's rounding back.
DICE_TEST(pixel_space_codec_maps_pixels) {
    const char *dir = pixel_model(tc);
    CHECK_MSG(dir, "cannot make the pixel-space folder: %s", tc->err.msg);
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    CHECK_OK(sd_model_open(&m, dir, NULL, &ctx, SD_LOAD_TOKENIZER, &tc->err));
    CHECK(sd_model_has_codec(&m) && sd_model_vae_scale(&m) == 1);
    // decode: (1, 1, 2, 3) latents -> pixels
    const float lat[6] = {-1.0f, 0.0f, 1.0f, -3.0f, 2.5f, 1.0f / 255.0f};
    float image[6];
    uint8_t px[6];
    CHECK_OK(sd_model_decode(&m, lat, 1, 1, 2, image, px, &tc->err));
    const uint8_t want_px[6] = {0, 128, 255, 0, 255, 128};  // 127.5 rounds to even 128; 128.0 + 0.5 rounds to 128
    CHECK(!memcmp(px, want_px, 6) && image[0] == 0.0f && image[1] == 0.5f && image[2] == 1.0f && image[3] == 0.0f);
    const float bad[3] = {0.0f, NAN, 0.0f};
    CHECK_FAILS_WITH(sd_model_decode(&m, bad, 1, 1, 1, NULL, px, &tc->err), "NaN");
    // encode: (1, 2, 2, 3) images -> mean = the images, logvar = -30; a 4-channel input is refused
    Arena host;
    CHECK_OK(arena_init(&host, "host", DEV_CPU, 1 << 20, 0, &tc->err));
    float x[12];
    for (int k = 0; k < 12; k++) x[k] = (float)(k * 21) / 127.5f - 1.0f;
    Tensor xt, x4;
    CHECK_OK(tensor_wrap(&xt, x, DT_F32, DEV_CPU, 4, (int64_t[]){1, 2, 2, 3}, &tc->err));
    CHECK_OK(tensor_wrap(&x4, x, DT_F32, DEV_CPU, 4, (int64_t[]){1, 1, 3, 4}, &tc->err));
    VaePosterior post;
    CHECK_OK(sd_model_encode(&m, NULL, &xt, &host, &post, &tc->err));
    CHECK(tensor_same_shape(&post.mean, &xt) && tensor_same_shape(&post.logvar, &xt));
    CHECK(!memcmp(post.mean.data, x, sizeof x));
    for (int k = 0; k < 12; k++) CHECK(((const float *)post.logvar.data)[k] == VAE_LOGVAR_MIN);
    CHECK_FAILS_WITH(sd_model_encode(&m, NULL, &x4, &host, &post, &tc->err), "(n, H, W, 3)");
    arena_free(&host);
    sd_model_close(&m);
}

// A VAE-less folder needs an RGB UNet (whatever is loaded); "vae" must be a [library, class] pair or [null, null];
// a VAE model opened without its VAE has no codec.
DICE_TEST(pixel_space_refusals) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    const char *dir = make_folder(tc, "latent_unet", "[null, null]", 4);
    CHECK_MSG(dir, "cannot make the folder: %s", tc->err.msg);
    CHECK_FAILS_WITH(sd_model_open(&m, dir, NULL, &ctx, SD_LOAD_ALL, &tc->err), "in_channels = out_channels = 3");
    CHECK(strstr(tc->err.msg, "latent_unet") && strstr(tc->err.msg, "in_channels 4, out_channels 4") &&
          strstr(tc->err.msg, "pixel-space"));
    CHECK_FAILS_WITH(sd_model_open(&m, dir, NULL, &ctx, SD_LOAD_TOKENIZER, &tc->err), "in_channels = out_channels = 3");
    dir = make_folder(tc, "vae_null", "null", 3);
    CHECK_MSG(dir, "cannot make the folder: %s", tc->err.msg);
    CHECK_FAILS_WITH(sd_model_open(&m, dir, NULL, &ctx, SD_LOAD_ALL, &tc->err), "\"vae\" is not a [library, class] pair");
    dir = make_folder(tc, "vae_half_null", "[\"diffusers\", null]", 3);
    CHECK_MSG(dir, "cannot make the folder: %s", tc->err.msg);
    CHECK_FAILS_WITH(sd_model_open(&m, dir, NULL, &ctx, SD_LOAD_ALL, &tc->err), "\"vae\" is not a [library, class] pair");
    dir = make_folder(tc, "no_vae_key", NULL, 3);
    CHECK_MSG(dir, "cannot make the folder: %s", tc->err.msg);
    CHECK_FAILS_WITH(sd_model_open(&m, dir, NULL, &ctx, SD_LOAD_ALL, &tc->err), "no \"vae\" component");
    // the golden VAE model opened without its VAE: no codec, decoding refused with the reason
    CHECK_OK(sd_model_open(&m, test_path(tc, GOLDEN), NULL, &ctx, SD_LOAD_TOKENIZER, &tc->err));
    CHECK(m.has_vae && !sd_model_has_codec(&m));
    float lat[8 * 8 * 4] = {0};
    uint8_t px[16 * 16 * 3];
    CHECK_FAILS_WITH(sd_model_decode(&m, lat, 1, 8, 8, NULL, px, &tc->err), "opened without its VAE");
    sd_model_close(&m);
}

// `dice run sample` on a pixel-space model writes (B, 3, H, W) latents equal to the image in [-1, 1]; the VAE
// components refuse it, saying why.
DICE_TEST(pixel_space_run_command) {
    one_thread();
    const char *dir = pixel_model(tc);
    CHECK_MSG(dir, "cannot make the pixel-space folder: %s", tc->err.msg);
    char out[1200], out_buf[4096], err_buf[4096];
    snprintf(out, sizeof out, "%s/sample.safetensors", test_tmpdir(tc));
    const char *sample_argv[] = {test_dice_bin(tc), "run", "sample", "--model", dir, "--prompt", "a red circle",
                                 "--steps", "2", "--guidance", "3", "--seed", "7", "--out", out, NULL};
    int rc = test_run(tc, sample_argv, out_buf, sizeof out_buf, err_buf, sizeof err_buf);
    CHECK_MSG(rc == 0, "dice run sample exited %d: %s", rc, err_buf);
    StFile f;
    CHECK_OK(st_open(&f, out, &tc->err));
    const StTensorInfo *lat = st_find(&f, "latents"), *img = st_find(&f, "image");
    CHECK(lat && img && lat->ndim == 4 && lat->shape[0] == 1 && lat->shape[1] == 3 && lat->shape[2] == SIDE &&
          lat->shape[3] == SIDE && img->ndim == 4 && img->shape[1] == 3 && img->shape[2] == SIDE);
    if (!tc->failed) {
        float l[PIX], i[PIX];
        memcpy(l, lat->data, sizeof l);
        memcpy(i, img->data, sizeof i);
        for (int k = 0; k < PIX; k++) {
            float v = l[k] / 2 + 0.5f;
            CHECK(i[k] == (v < 0 ? 0 : v > 1 ? 1 : v));
        }
    }
    st_close(&f);
    const char *vae_argv[] = {test_dice_bin(tc), "run", "vae-decode", "--model", dir, "--out", out, NULL};
    rc = test_run(tc, vae_argv, out_buf, sizeof out_buf, err_buf, sizeof err_buf);
    CHECK_MSG(rc == 1 && strstr(err_buf, "pixel-space model") && strstr(err_buf, "vae-decode"), "rc %d: %s", rc,
              err_buf);
}

// `dice prep` with a pixel-space model stores the images themselves (scaling factor 1, log-variance -30); `dice
// train` trains on those shards and draws its validation grid of SIDE x SIDE images.
DICE_TEST(pixel_space_prep_and_train) {
    one_thread();
    const char *model = pixel_model(tc);
    CHECK_MSG(model, "cannot make the pixel-space folder: %s", tc->err.msg);
    char root[1024], images[1100], captions[1100], data[1100], out[1100], path[1300];
    snprintf(root, sizeof root, "%s", test_tmpdir(tc));
    snprintf(images, sizeof images, "%s/images", root);
    snprintf(captions, sizeof captions, "%s/captions.json", root);
    snprintf(data, sizeof data, "%s/shards", root);
    snprintf(out, sizeof out, "%s/run", root);
    CHECK(mkdir(images, 0755) == 0);
    static uint8_t rgb[2][20 * 24 * 3];
    uint64_t rng = 3;
    for (int i = 0; i < 2; i++) {
        for (size_t k = 0; k < sizeof rgb[i]; k++) rgb[i][k] = (uint8_t)(test_rand_u64(&rng) >> 56);
        Image img = {24, 20, rgb[i]};
        snprintf(path, sizeof path, "%s/%d.png", images, i + 1);
        CHECK_OK(image_write_png(path, &img, NULL, NULL, 0, &tc->err));
    }
    CHECK(write_text(captions, "{\"images\": [{\"id\": 1, \"file_name\": \"1.png\"}, {\"id\": 2, \"file_name\": "
                               "\"2.png\"}], \"annotations\": [{\"image_id\": 1, \"id\": 10, \"caption\": \"a red "
                               "circle\"}, {\"image_id\": 2, \"id\": 20, \"caption\": \"a blue square\"}]}\n") == 0);
    PrepOptions po = {model, images, captions, data, SIDE, 4, 2, 0, 0, DEV_CPU, NULL};
    PrepSummary sum;
    CHECK_OK(prep_run(&po, &sum, &tc->err));
    CHECK(sum.rows_written == 2 && sum.skipped == 0);
    ShardDataset ds;
    CHECK_OK(dataset_open(&ds, data, &tc->err));
    const ShardInfo *in = &ds.info;
    CHECK(in->latent_h == SIDE && in->latent_w == SIDE && in->latent_c == 3 && in->image_size == SIDE &&
          in->scaling_factor == 1.0 && !strcmp(in->model, "pixel"));
    for (int64_t g = 0; g < 2; g++) {
        static float mean[PIX], logvar[PIX], want[PIX];
        int32_t ids[77];
        int64_t id;
        ShardRows rows = {mean, logvar, ids, &id};
        CHECK_OK(dataset_read(&ds, &g, 1, &rows, &tc->err));
        Image img = {24, 20, rgb[id - 1]}, sq;
        CHECK_OK(prep_transform(&img, SIDE, &sq, &tc->err));
        prep_normalize(&sq, want);
        image_free(&sq);
        CHECK(!memcmp(mean, want, sizeof want));
        for (int k = 0; k < PIX; k++) CHECK(logvar[k] == -30.0f);
    }
    dataset_close(&ds);
    if (tc->failed) return;
    snprintf(path, sizeof path, "%s/prompts.txt", root);
    CHECK(write_text(path, "a red circle\na blue square\n") == 0);
    TrainOptions o = train_options_defaults();
    o.model_dir = model;
    o.data_dir = data;
    o.out_dir = out;
    o.steps = 2;
    o.global_batch = 2;
    o.micro_batch = 2;
    o.hidden = 32;
    o.heads = 4;
    o.val_every = 2;
    o.val_steps = 2;
    o.val_prompts = path;
    o.quiet = true;
    Dist one = {.n_ranks = 1};
    CHECK_OK(dice_train(&o, &one, &tc->err));
    snprintf(path, sizeof path, "%s/val_2.png", out);
    Image grid;
    CHECK_OK(image_read_png(path, &grid, &tc->err));
    TrainValLayout l = train_val_layout(2, SIDE, SIDE);
    CHECK_MSG(grid.width == l.width && grid.height == l.height, "%s: %d x %d, want %d x %d", path, grid.width,
              grid.height, l.width, l.height);
    image_free(&grid);
}
