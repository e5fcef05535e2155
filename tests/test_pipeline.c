// tests/test_pipeline.c — the text-to-image pipeline (sample/pipeline.h) and model opening (models/sd_model.h)
// against diffusers' StableDiffusionPipeline on a tiny random-weight model (tests/golden/pipeline/,
// scripts/golden_pipeline.py; fp16-variant weight files, DPM-Solver++ from the PNDM config): initial noise,
// prompt embeddings, final latents, images and pixels, unguided and CFG, with and without a negative prompt, on the
// CPU in f32 and on CUDA in bf16; NFE counts; batch independence of a seed; DICE, scaling and transform modes;
// opening errors (missing folder, pickles, single files, mismatched components).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/ldm_names.h"
#include "models/sd_model.h"
#include "nn/sha256.h"
#include "nn/tensor_copy.h"
#include "sample/pipeline.h"
#include "test.h"

#define B 2
#define SIZE 16                 // pixels
#define LAT 8                   // latent pixels
#define LAT_N (B * LAT * LAT * 4)
#define IMG_N (B * SIZE * SIZE * 3)

static const char *const PROMPTS[B] = {"a photo of a red cat on the mat", "blue dog painting, astronaut"};
static const char *const NEGATIVE = "photo of the dog";
static const uint64_t SEEDS[B] = {42, 43};

static const char *model_dir(TestCtx *tc) { return test_path(tc, "tests/golden/pipeline/model"); }

// Golden tensor `name` of reference.safetensors (F32 or U8) copied into out (n elements).
static int golden(TestCtx *tc, const char *name, void *out, size_t n, DType dtype) {
    StFile f;
    if (st_open(&f, test_path(tc, "tests/golden/pipeline/reference.safetensors"), &tc->err)) return -1;
    const StTensorInfo *t = st_find(&f, name);
    int rc = t && t->dtype == dtype && (size_t)st_numel(t) == n ? 0 : DICE_FAIL(&tc->err, "golden %s: absent or mis-shaped", name);
    if (!rc) memcpy(out, t->data, n * dtype_size(dtype));
    st_close(&f);
    return rc;
}

typedef struct Outputs {
    float latents[LAT_N], image[IMG_N];
    uint8_t pixels[IMG_N];
    PipelineStats stats;
} Outputs;

static int generate(SdModel *m, const PipelineOptions *o, bool negative, Outputs *out, DiceError *err) {
    const char *negs[B] = {NEGATIVE, NEGATIVE};
    PipelineRequest r = {B, PROMPTS, negative ? negs : NULL, SEEDS, NULL, out->latents, out->image, out->pixels};
    return pipeline_generate(m, o, &r, &out->stats, err);
}

// Compares a run with diffusers' case `name`; returns the errors through the pointers.
static int compare(TestCtx *tc, const Outputs *got, const char *name, double *lat_err, double *img_err, int *max_px,
                   int *n_px) {
    static float want_lat[LAT_N], want_img[IMG_N];
    static uint8_t want_px[IMG_N];
    char key[64];
    snprintf(key, sizeof key, "%s/latents", name);
    DICE_TRY(golden(tc, key, want_lat, LAT_N, DT_F32));
    snprintf(key, sizeof key, "%s/image", name);
    DICE_TRY(golden(tc, key, want_img, IMG_N, DT_F32));
    snprintf(key, sizeof key, "%s/pixels", name);
    DICE_TRY(golden(tc, key, want_px, IMG_N, DT_U8));
    *lat_err = test_rel_err_f32(got->latents, want_lat, LAT_N);
    *img_err = test_rel_err_f32(got->image, want_img, IMG_N);
    *max_px = *n_px = 0;
    for (int i = 0; i < IMG_N; i++) {
        int d = abs((int)got->pixels[i] - (int)want_px[i]);
        *max_px = d > *max_px ? d : *max_px;
        *n_px += d != 0;
    }
    return 0;
}

// Noise and prompt embeddings: the pipeline's inputs.
DICE_TEST(pipeline_noise_and_embeddings_match_diffusers) {
    float noise[LAT_N], want[LAT_N];
    for (int i = 0; i < B; i++) CHECK_OK(pipeline_noise(SEEDS[i], LAT, LAT, 4, noise + i * LAT_N / B, &tc->err));
    CHECK_OK(golden(tc, "init_latents", want, LAT_N, DT_F32));
    CHECK(!memcmp(noise, want, sizeof noise));   // bit for bit: torch's generator (nn/torch_rng.h)
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    CHECK_OK(sd_model_open(&m, model_dir(tc), NULL, &ctx, SD_LOAD_TOKENIZER | SD_LOAD_TEXT, &tc->err));
    CHECK(!strcmp(m.name, "model") && strlen(m.hash) == 8);
    Arena a;
    CHECK_OK(arena_init(&a, "test", DEV_CPU, 1 << 20, 0, &tc->err));
    Tensor got;
    CHECK_OK(arena_tensor(&a, &got, DT_F32, 3, (int64_t[]){B, 77, 32}, &tc->err));
    CHECK_OK(clip_encode_prompts(&ctx, &a, &m.text, &m.tok, PROMPTS, B, CLIP_LAST_HIDDEN_STATE, &got, NULL, &tc->err));
    static float want_pe[B * 77 * 32];
    CHECK_OK(golden(tc, "prompt_embeds", want_pe, B * 77 * 32, DT_F32));
    CHECK_REL_ERR(got.data, want_pe, B * 77 * 32, 1e-5);
    arena_free(&a);
    sd_model_close(&m);
}

// Whole trajectories on the CPU in f32. Tolerance: the text encoder, UNet and VAE each match their references to
// ~1e-6 relative (their own tests); the scheduler reproduces diffusers' f32 arithmetic, the CFG combination rounds
// like torch's three ops, so the only differences are summation orders inside the ops, which 20 DPM-Solver++ steps
// carry forward without blowing up (measured: <= 1e-6 on latents and images). Held to 1e-5; pixels may differ by
// one where x * 255 falls within ~1e-5 of a .5 boundary (measured: none).
DICE_TEST(pipeline_matches_diffusers_cpu) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    CHECK_OK(sd_model_open(&m, model_dir(tc), NULL, &ctx, SD_LOAD_ALL, &tc->err));
    static const struct { const char *name; int steps; double w; bool neg; } cases[] = {
        {"unguided20", 20, 1.0, false}, {"cfg20", 20, 5.0, false}, {"unguided5", 5, 1.0, false},
        {"cfg5", 5, 5.0, false},        {"cfg4neg", 4, 5.0, true}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        PipelineOptions o = pipeline_defaults();
        o.steps = cases[i].steps;
        o.guidance = cases[i].w;
        static Outputs out;
        CHECK_OK(generate(&m, &o, cases[i].neg, &out, &tc->err));
        double le, ie;
        int max_px, n_px;
        CHECK_OK(compare(tc, &out, cases[i].name, &le, &ie, &max_px, &n_px));
        CHECK_MSG(le <= 1e-5 && ie <= 1e-5 && max_px <= 1 && n_px <= 2,
                  "%s: latents %.3g, image %.3g, pixels off by up to %d in %d places", cases[i].name, le, ie, max_px,
                  n_px);
    }
    sd_model_close(&m);
}

// NFE: w = 1 makes one UNet row per image a step and never encodes the unconditional prompt; CFG makes two rows
// per image a step in the same number of calls (one batch of 2B).
DICE_TEST(pipeline_unguided_makes_half_the_denoiser_evaluations) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    CHECK_OK(sd_model_open(&m, model_dir(tc), NULL, &ctx, SD_LOAD_ALL, &tc->err));
    PipelineOptions o = pipeline_defaults();
    o.steps = 3;
    static Outputs un, cfg;
    CHECK_OK(generate(&m, &o, false, &un, &tc->err));
    o.guidance = 5;
    CHECK_OK(generate(&m, &o, false, &cfg, &tc->err));
    CHECK(un.stats.unet_calls == 3 && cfg.stats.unet_calls == 3);
    CHECK(un.stats.unet_rows == 3 * B && cfg.stats.unet_rows == 2 * 3 * B);
    CHECK(un.stats.nfe == 3 && cfg.stats.nfe == 6);
    CHECK(un.stats.text_rows == B && cfg.stats.text_rows == 2 * B);
    CHECK(test_rel_err_f32(un.latents, cfg.latents, LAT_N) > 1e-3);
    sd_model_close(&m);
}

// Image i depends on seeds[i] only: the first image of a batch of two equals the same seed alone.
DICE_TEST(pipeline_seed_gives_same_image_whatever_the_batch) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    CHECK_OK(sd_model_open(&m, model_dir(tc), NULL, &ctx, SD_LOAD_ALL, &tc->err));
    PipelineOptions o = pipeline_defaults();
    o.steps = 4;
    o.guidance = 3;
    static Outputs two;
    static float one_lat[LAT_N / B];
    static uint8_t one_px[IMG_N / B];
    CHECK_OK(generate(&m, &o, false, &two, &tc->err));
    PipelineRequest r = {1, &PROMPTS[1], NULL, &SEEDS[1], NULL, one_lat, NULL, one_px};
    CHECK_OK(pipeline_generate(&m, &o, &r, NULL, &tc->err));
    CHECK(test_rel_err_f32(one_lat, two.latents + LAT_N / B, LAT_N / B) <= 1e-6);
    int diff = 0;
    for (int i = 0; i < IMG_N / B; i++) diff += one_px[i] != two.pixels[IMG_N / B + i];
    CHECK_MSG(diff <= 2, "%d pixels differ", diff);
    sd_model_close(&m);
}

// An identity transform hook: exactly the unguided result.
static int identity(void *user, Graph *g, Var *c, Var *c_ref, Var *c_null, Var **out, DiceError *err) {
    (void)g, (void)c_ref, (void)c_null, (void)err;
    (*(int *)user)++;
    *out = c;
    return 0;
}

// DICE: one sharpener forward per call, NFE = steps, a different image than unguided; alpha 0 is unguided
// exactly; scaling and beta change the image too.
DICE_TEST(pipeline_dice_scaling_and_transform_modes) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    CHECK_OK(sd_model_open(&m, model_dir(tc), NULL, &ctx, SD_LOAD_ALL, &tc->err));
    Arena persistent;
    CHECK_OK(arena_init(&persistent, "sharpener", DEV_CPU, 1 << 20, 0, &tc->err));
    Sharpener s;
    CHECK_OK(sharpener_init(&s, 32, 64, 8, &persistent, &ctx, tc->seed, &tc->err));
    PipelineOptions o = pipeline_defaults();
    o.steps = 4;
    static Outputs un, dice, zero, scaled, hooked, neg;
    CHECK_OK(generate(&m, &o, false, &un, &tc->err));
    o.sharpener = &s;
    CHECK_OK(generate(&m, &o, false, &dice, &tc->err));
    CHECK(dice.stats.nfe == 4 && dice.stats.unet_rows == 4 * B && dice.stats.sharpener_calls == 1);
    CHECK(test_rel_err_f32(dice.latents, un.latents, LAT_N) > 1e-3);
    o.alpha = 0;
    CHECK_OK(generate(&m, &o, false, &zero, &tc->err));
    CHECK(!memcmp(zero.latents, un.latents, sizeof un.latents));
    o.alpha = 1;
    o.beta = 0.5;
    CHECK_OK(generate(&m, &o, true, &neg, &tc->err));
    CHECK(neg.stats.nfe == 4 && neg.stats.text_rows == 3 * B);
    CHECK(test_rel_err_f32(neg.latents, dice.latents, LAT_N) > 1e-4);
    o = pipeline_defaults();
    o.steps = 4;
    o.embed_scale = 1.4;
    CHECK_OK(generate(&m, &o, false, &scaled, &tc->err));
    CHECK(scaled.stats.nfe == 4 && test_rel_err_f32(scaled.latents, un.latents, LAT_N) > 1e-3);
    int calls = 0;
    o.embed_scale = 1;
    o.transform = (PipelineTransform){identity, &calls};
    CHECK_OK(generate(&m, &o, false, &hooked, &tc->err));
    CHECK(calls == 1 && !memcmp(hooked.latents, un.latents, sizeof un.latents));
    // the negative prompt is never dropped silently, beta needs DICE and a negative prompt
    o = pipeline_defaults();
    CHECK_FAILS_WITH(generate(&m, &o, true, &hooked, &tc->err), "negative prompt has no effect");
    o.beta = 1;
    o.guidance = 5;
    CHECK_FAILS_WITH(generate(&m, &o, true, &hooked, &tc->err), "beta");
    o = pipeline_defaults();
    o.height = 10;
    CHECK_FAILS_WITH(generate(&m, &o, false, &hooked, &tc->err), "multiples of 4");
    // a decode that overflows stops with a message instead of writing a black image
    static float bad[LAT_N / B];
    bad[5] = NAN;
    CHECK_FAILS_WITH(sd_model_decode(&m, bad, 1, LAT, LAT, NULL, hooked.pixels, &tc->err), "NaN");
    arena_free(&persistent);
    sd_model_close(&m);
}

// CUDA in bf16 (emulated under make test): CFG with a negative prompt, 4 steps, against diffusers in f32. bf16
// keeps 8 significant bits (relative rounding 2^-9 = 2e-3 per value, on weights and activations alike); through the
// text encoder, 4 UNet calls with the CFG difference amplified by w = 5, and the VAE, these compound to about 1e-2
// (measured: latents 1.0e-2, image 5e-3 relative), so both are held to 3e-2. Then DICE mode runs on the device.
DICE_CUDA_TEST(pipeline_cuda_bf16_matches_diffusers) {
    DiceCtx ctx;
    CHECK_OK(ctx_init_cuda(&ctx, 0, &tc->err));
    SdModel m;
    CHECK_OK(sd_model_open(&m, model_dir(tc), NULL, &ctx, SD_LOAD_ALL, &tc->err));
    CHECK(m.dtype == DT_BF16);
    PipelineOptions o = pipeline_defaults();
    o.steps = 4;
    o.guidance = 5;
    static Outputs out;
    CHECK_OK(generate(&m, &o, true, &out, &tc->err));
    double le, ie;
    int max_px, n_px;
    CHECK_OK(compare(tc, &out, "cfg4neg", &le, &ie, &max_px, &n_px));
    CHECK_MSG(le <= 3e-2 && ie <= 3e-2, "latents %.3g, image %.3g", le, ie);
    // DICE on CUDA: the sharpener in f32 on the device, its output converted to bf16 for the UNet
    Arena persistent;
    CHECK_OK(arena_init(&persistent, "sharpener", DEV_CUDA, 1 << 20, 0, &tc->err));
    Sharpener s;
    CHECK_OK(sharpener_init(&s, 32, 64, 8, &persistent, &ctx, tc->seed, &tc->err));
    o.guidance = 1;
    o.steps = 2;
    o.sharpener = &s;
    static Outputs dice;
    CHECK_OK(generate(&m, &o, true, &dice, &tc->err));
    CHECK(dice.stats.nfe == 2 && dice.stats.sharpener_calls == 1);
    arena_free(&persistent);
    sd_model_close(&m);
    ctx_free(&ctx);
}

// A pipeline folder in the test's tmpdir: links to the golden components, model_index.json with `cls` as the
// pipeline class, and `text` / `unet` linked from other folders when non-NULL.
static const char *make_folder(TestCtx *tc, const char *name, const char *cls, const char *text, const char *unet) {
    static char dir[1024];
    char path[1200], target[1200];
    snprintf(dir, sizeof dir, "%s/%s", test_tmpdir(tc), name);
    if (mkdir(dir, 0755)) return NULL;
    static const char *const parts[] = {"tokenizer", "text_encoder", "unet", "vae", "scheduler"};
    for (int i = 0; i < 5; i++) {
        const char *src = i == 1 && text ? text : i == 2 && unet ? unet : NULL;
        if (src) snprintf(target, sizeof target, "%s", src);
        else snprintf(target, sizeof target, "%s/%s", model_dir(tc), parts[i]);
        snprintf(path, sizeof path, "%s/%s", dir, parts[i]);
        if (target[0] != '/') {
            char cwd[512];
            if (!getcwd(cwd, sizeof cwd)) return NULL;
            char abs_target[1800];
            snprintf(abs_target, sizeof abs_target, "%s/%s", cwd, target);
            if (symlink(abs_target, path)) return NULL;
        } else if (symlink(target, path)) {
            return NULL;
        }
    }
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    fprintf(f, "{\"_class_name\": \"%s\", \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"], "
               "\"text_encoder\": [\"transformers\", \"CLIPTextModel\"], \"unet\": [\"diffusers\", "
               "\"UNet2DConditionModel\"], \"vae\": [\"diffusers\", \"AutoencoderKL\"], \"scheduler\": [\"diffusers\", "
               "\"PNDMScheduler\"], \"safety_checker\": [null, null]}\n", cls);
    fclose(f);
    return dir;
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = fwrite(data, 1, n, f);
    return fclose(f) || put != n ? -1 : 0;
}

DICE_TEST(pipeline_model_open_errors) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    char path[1400];
    snprintf(path, sizeof path, "%s/nowhere", test_tmpdir(tc));
    CHECK_FAILS_WITH(sd_model_open(&m, path, NULL, &ctx, SD_LOAD_ALL, &tc->err), "no such file or folder");
    CHECK_FAILS_WITH(sd_model_open(&m, test_path(tc, "tests/golden/vae/tiny"), NULL, &ctx, SD_LOAD_ALL, &tc->err),
                     "no model_index.json");
    // pickles: by name and by content
    snprintf(path, sizeof path, "%s/v1-5.ckpt", test_tmpdir(tc));
    CHECK(!write_file(path, "PK\3\4zip", 7));
    CHECK_FAILS_WITH(sd_model_open(&m, path, NULL, &ctx, SD_LOAD_ALL, &tc->err), "from_single_file");
    CHECK(strstr(tc->err.msg, "pickled"));
    snprintf(path, sizeof path, "%s/renamed.safetensors", test_tmpdir(tc));
    CHECK(!write_file(path, "\x80\x02}q\0", 5));
    CHECK_FAILS_WITH(sd_model_open(&m, path, NULL, &ctx, SD_LOAD_ALL, &tc->err), "pickled");
    // single files
    float v[2] = {1, 2};
    StWriteTensor t[3] = {{"model.diffusion_model.conv_in.bias", DT_F32, 1, {2}, v},
                          {"first_stage_model.decoder.conv_in.bias", DT_F32, 1, {2}, v},
                          {"cond_stage_model.transformer.text_model.final_layer_norm.bias", DT_F32, 1, {2}, v}};
    snprintf(path, sizeof path, "%s/single.safetensors", test_tmpdir(tc));
    CHECK_OK(st_write(path, t, 3, NULL, NULL, 0, &tc->err));
    CHECK_FAILS_WITH(sd_model_open(&m, path, NULL, &ctx, SD_LOAD_ALL, &tc->err), "give --config DIR");
    CHECK_OK(st_write(path, t, 1, NULL, NULL, 0, &tc->err));
    CHECK_FAILS_WITH(sd_model_open(&m, path, NULL, &ctx, SD_LOAD_ALL, &tc->err), "incomplete single-file");
    StWriteTensor other = {"encoder.conv_in.bias", DT_F32, 1, {2}, v};
    CHECK_OK(st_write(path, &other, 1, NULL, NULL, 0, &tc->err));
    CHECK_FAILS_WITH(sd_model_open(&m, path, NULL, &ctx, SD_LOAD_ALL, &tc->err), "not a Stable Diffusion checkpoint");
    // folders: an unsupported pipeline, mismatched components, a pickle-only UNet
    const char *dir = make_folder(tc, "xl", "StableDiffusionXLPipeline", NULL, NULL);
    CHECK(dir);
    CHECK_FAILS_WITH(sd_model_open(&m, dir, NULL, &ctx, SD_LOAD_ALL, &tc->err), "StableDiffusionXLPipeline is not supported");
    dir = make_folder(tc, "wide", "StableDiffusionPipeline", "tests/golden/clip_encoder/gelu_proj", NULL);
    CHECK(dir);
    CHECK_FAILS_WITH(sd_model_open(&m, dir, NULL, &ctx, SD_LOAD_ALL, &tc->err), "cross_attention_dim");
    char unet[1200];
    snprintf(unet, sizeof unet, "%s/pickled_unet", test_tmpdir(tc));
    CHECK(!mkdir(unet, 0755));
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.bin", unet);
    CHECK(!write_file(path, "PK\3\4", 4));
    dir = make_folder(tc, "bin", "StableDiffusionPipeline", NULL, unet);
    CHECK(dir);
    CHECK_FAILS_WITH(sd_model_open(&m, dir, NULL, &ctx, SD_LOAD_ALL, &tc->err), "only a pickled diffusion_pytorch_model.bin");
    // the golden folder through a link with a trailing slash: opened, named after the folder
    dir = make_folder(tc, "ok", "StableDiffusionPipeline", NULL, NULL);
    CHECK(dir);
    snprintf(path, sizeof path, "%s/", dir);
    CHECK_OK(sd_model_open(&m, path, NULL, &ctx, SD_LOAD_ALL, &tc->err));
    CHECK(!strcmp(m.name, "ok") && sd_model_size_multiple(&m) == 4 && m.dtype == DT_F32);
    sd_model_close(&m);
}

// Appends every tensor of `file` (a folder component) to t under its original-layout name. The golden text encoder
// was saved by transformers 5, without the "text_model." prefix of the canonical names: `prefix` puts it back.
static int add_renamed(TestCtx *tc, StFile *file, LdmNames *names, const char *prefix, StWriteTensor *t, int *n,
                       char (*name_buf)[256]) {
    for (int i = 0; i < file->n_tensors; i++) {
        const StTensorInfo *s = &file->tensors[i];
        char *buf = name_buf[*n], canonical[256];
        snprintf(canonical, sizeof canonical, "%s%s", prefix, s->name);
        DICE_CHECK(&tc->err, ldm_name(canonical, buf, 256, names), "no original name for %s", s->name);
        t[*n] = (StWriteTensor){buf, s->dtype, s->ndim, {0}, s->data};
        for (int d = 0; d < s->ndim; d++) t[*n].shape[d] = s->shape[d];
        (*n)++;
    }
    return 0;
}

// The golden folder rewritten as ONE original-layout file (names through models/ldm_names.h, plus an EMA entry and
// a DDPM buffer), opened with the folder as --config: the same latents, bit for bit, as the folder.
DICE_TEST(pipeline_single_file_matches_folder) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s", model_dir(tc));
    StFile unet_f, vae_f, text_f;
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.fp16.safetensors", dir);
    CHECK_OK(st_open(&unet_f, path, &tc->err));
    snprintf(path, sizeof path, "%s/vae/diffusion_pytorch_model.fp16.safetensors", dir);
    CHECK_OK(st_open(&vae_f, path, &tc->err));
    snprintf(path, sizeof path, "%s/text_encoder/model.fp16.safetensors", dir);
    CHECK_OK(st_open(&text_f, path, &tc->err));
    UnetConfig ucfg;
    VaeConfig vcfg;
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    CHECK_OK(unet_config_load(&ucfg, path, &tc->err));
    snprintf(path, sizeof path, "%s/vae/config.json", dir);
    CHECK_OK(vae_config_load(&vcfg, path, &tc->err));
    int total = unet_f.n_tensors + vae_f.n_tensors + text_f.n_tensors + 3, n = 0;
    StWriteTensor *t = calloc((size_t)total, sizeof *t);
    char (*names)[256] = calloc((size_t)total, sizeof *names);
    CHECK(t && names);
    LdmNames ln = {.component = LDM_UNET, .unet = &ucfg, .vae = &vcfg};
    CHECK_OK(add_renamed(tc, &unet_f, &ln, "", t, &n, names));
    ln.component = LDM_VAE;
    CHECK_OK(add_renamed(tc, &vae_f, &ln, "", t, &n, names));
    ln.component = LDM_TEXT_ENCODER;
    CHECK_OK(add_renamed(tc, &text_f, &ln, "text_model.", t, &n, names));
    float extra[2] = {0.9999f, 0.5f};
    t[n++] = (StWriteTensor){"model_ema.decay", DT_F32, 0, {0}, extra};
    t[n++] = (StWriteTensor){"alphas_cumprod", DT_F32, 1, {2}, extra};
    char file[1200];
    snprintf(file, sizeof file, "%s/tiny-single.safetensors", test_tmpdir(tc));
    CHECK_OK(st_write(file, t, n, NULL, NULL, 0, &tc->err));
    PipelineOptions o = pipeline_defaults();
    o.steps = 4;
    o.guidance = 5;
    static Outputs folder, single;
    SdModel m;
    CHECK_OK(sd_model_open(&m, dir, NULL, &ctx, SD_LOAD_ALL, &tc->err));
    CHECK_OK(generate(&m, &o, true, &folder, &tc->err));
    sd_model_close(&m);
    CHECK_OK(sd_model_open(&m, file, dir, &ctx, SD_LOAD_ALL, &tc->err));
    CHECK(!strcmp(m.name, "tiny-single") && strlen(m.hash) == 8);
    CHECK_OK(generate(&m, &o, true, &single, &tc->err));
    sd_model_close(&m);
    CHECK(!memcmp(folder.latents, single.latents, sizeof folder.latents));
    CHECK(!memcmp(folder.pixels, single.pixels, sizeof folder.pixels));
    CHECK_OK(sd_model_open(&m, file, dir, &ctx, SD_LOAD_UNET, &tc->err));   // one model: the others not unexpected
    sd_model_close(&m);
    // an unknown tensor is named; a folder given a config folder is refused
    t[n++] = (StWriteTensor){"model.diffusion_model.bogus.weight", DT_F32, 1, {2}, extra};
    CHECK_OK(st_write(file, t, n, NULL, NULL, 0, &tc->err));
    CHECK_FAILS_WITH(sd_model_open(&m, file, dir, &ctx, SD_LOAD_ALL, &tc->err), "model.diffusion_model.bogus.weight");
    CHECK_FAILS_WITH(sd_model_open(&m, dir, dir, &ctx, SD_LOAD_ALL, &tc->err), "single-file");
    free(t);
    free(names);
    st_close(&unet_f);
    st_close(&vae_f);
    st_close(&text_f);
}

// SHA-256 (FIPS 180-4 test vectors) and A1111's short hash: the 64 KiB at 1 MiB.
DICE_TEST(pipeline_model_hash) {
    char hex[65];
    sha256_hex("abc", 3, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    sha256_hex("", 0, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(two, strlen(two), hex);
    CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    static char million[1000000];
    memset(million, 'a', sizeof million);
    Sha256 s;
    uint8_t d[32];
    sha256_init(&s);
    for (size_t i = 0; i < sizeof million; i += 999)  // odd-sized pieces cross the 64-byte blocks
        sha256_update(&s, million + i, i + 999 <= sizeof million ? 999 : sizeof million - i);
    sha256_final(&s, d);
    char got[65];
    for (int i = 0; i < 32; i++) snprintf(got + 2 * i, 3, "%02x", d[i]);
    CHECK(!strcmp(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    // a 2 MiB file: the hash covers bytes [1 MiB, 1 MiB + 64 KiB) only
    static unsigned char data[2 << 20];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 2654435761u >> 24);
    char path[1200], want[65], short_hash[9];
    snprintf(path, sizeof path, "%s/two.bin", test_tmpdir(tc));
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, sizeof data, f) == sizeof data && !fclose(f));
    CHECK_OK(sd_model_hash(path, short_hash, &tc->err));
    sha256_hex(data + (1 << 20), 1 << 16, want);
    CHECK(!strncmp(short_hash, want, 8) && strlen(short_hash) == 8);
}
