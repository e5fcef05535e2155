// tests/test_pipeline_cli.c — `dice sample` and `dice run` on the tiny golden pipeline (tests/golden/pipeline/):
// PNGs with their A1111 parameters and the library's pixels, DICE mode with a base-model warning, user and usage
// errors (exit 1 / 2, one line), and `dice run` round trips against the library and diffusers' golden tensors.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "models/sd_model.h"
#include "nn/safetensors.h"
#include "sample/pipeline.h"
#include "test.h"

#define MODEL "tests/golden/pipeline/model"

static char out_buf[1 << 16], err_buf[1 << 16];

// Runs build/dice with the arguments (NULL-terminated), returning its exit status.
static int dice(TestCtx *tc, const char **args) {
    const char *argv[40] = {test_dice_bin(tc)};
    int n = 1;
    for (; args[n - 1] && n < 39; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    return test_run(tc, argv, out_buf, sizeof out_buf, err_buf, sizeof err_buf);
}

static bool one_line(const char *s) { return strlen(s) > 0 && strchr(s, '\n') == s + strlen(s) - 1; }

DICE_TEST(pipeline_cli_sample_writes_pngs_with_parameters) {
    char out[1024], png[1200], text[4096];
    snprintf(out, sizeof out, "%s/images", test_tmpdir(tc));
    const char *args[] = {"sample", "--model", test_path(tc, MODEL), "--prompt", "blue dog painting, astronaut",
                          "--negative-prompt", "photo of the dog", "--steps", "4", "--guidance", "5", "--seed", "42",
                          "--out", out, NULL};
    CHECK_MSG(dice(tc, args) == 0, "%s", err_buf);
    CHECK(strstr(out_buf, "dice sample: 1 images, NFE 8 per image") && strstr(err_buf, "it/s"));
    snprintf(png, sizeof png, "%s/00000-42.png", out);
    CHECK_OK(image_png_text(png, "parameters", text, sizeof text, &tc->err));
    CHECK_MSG(!strcmp(text, "blue dog painting, astronaut\nNegative prompt: photo of the dog\nSteps: 4, Sampler: DPM++ 2M, "
                            "CFG scale: 5, Seed: 42, Size: 16x16, Model hash: e3b0c442, Model: model, Version: dice"),
              "%s", text);
    // the same pixels as the library
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    CHECK_OK(sd_model_open(&m, test_path(tc, MODEL), NULL, &ctx, SD_LOAD_ALL, &tc->err));
    PipelineOptions o = pipeline_defaults();
    o.steps = 4;
    o.guidance = 5;
    const char *prompt = "blue dog painting, astronaut", *neg = "photo of the dog";
    uint64_t seed = 42;
    uint8_t want[16 * 16 * 3];
    PipelineRequest r = {1, &prompt, &neg, &seed, NULL, NULL, NULL, want};
    CHECK_OK(pipeline_generate(&m, &o, &r, NULL, &tc->err));
    sd_model_close(&m);
    Image img;
    CHECK_OK(image_read_png(png, &img, &tc->err));
    CHECK(img.width == 16 && img.height == 16 && !memcmp(img.rgb, want, sizeof want));
    image_free(&img);
    // a second run numbers on; a random seed is printed and recorded
    const char *again[] = {"sample", "--model", test_path(tc, MODEL), "--prompt", "a cat", "--steps", "2", "--out", out,
                           NULL};
    CHECK_MSG(dice(tc, again) == 0, "%s", err_buf);
    const char *said = strstr(out_buf, "dice sample: seed ");
    CHECK(said);
    unsigned long long random_seed = strtoull(said + strlen("dice sample: seed "), NULL, 10);
    snprintf(png, sizeof png, "%s/00001-%llu.png", out, random_seed);
    CHECK_OK(image_png_text(png, "parameters", text, sizeof text, &tc->err));
    char field[64];
    snprintf(field, sizeof field, "Seed: %llu,", random_seed);
    CHECK(strstr(text, field) && strstr(text, "CFG scale: 1,") && !strstr(text, "Negative prompt"));
}

DICE_TEST(pipeline_cli_sample_dice_mode) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena a;
    CHECK_OK(arena_init(&a, "sharpener", DEV_CPU, 1 << 20, 0, &tc->err));
    Sharpener s;
    CHECK_OK(sharpener_init(&s, 32, 64, 8, &a, &ctx, 7, &tc->err));
    char path[1024], out[1024], png[1200], text[4096];
    snprintf(path, sizeof path, "%s/sharp.safetensors", test_tmpdir(tc));
    const char *keys[] = {"base_model"}, *values[] = {"some-other-model"};
    CHECK_OK(sharpener_save(&s, &ctx, path, keys, values, 1, &tc->err));
    arena_free(&a);
    snprintf(out, sizeof out, "%s/dice", test_tmpdir(tc));
    const char *args[] = {"sample", "--model", test_path(tc, MODEL), "--prompt", "red cat", "--sharpener", path,
                          "--alpha", "0.5", "--negative-prompt", "dog", "--beta", "0.25", "--steps", "3", "--seed",
                          "7", "--batch", "2", "--out", out, NULL};
    CHECK_MSG(dice(tc, args) == 0, "%s", err_buf);
    CHECK(strstr(out_buf, "2 images, NFE 3 per image"));
    CHECK(strstr(err_buf, "warning: sharpener") && strstr(err_buf, "some-other-model"));
    snprintf(png, sizeof png, "%s/00001-8.png", out);
    CHECK_OK(image_png_text(png, "parameters", text, sizeof text, &tc->err));
    CHECK_MSG(strstr(text, "Seed: 8,") && strstr(text, "DICE alpha: 0.5, DICE beta: 0.25, Sharpener: sharp.safetensors"),
              "%s", text);
}

DICE_TEST(pipeline_cli_sample_errors) {
    char out[1024], path[1200], model[1024];
    snprintf(out, sizeof out, "%s/o", test_tmpdir(tc));
    snprintf(model, sizeof model, "%s", test_path(tc, MODEL));
    // user errors: exit 1, one line
    snprintf(path, sizeof path, "%s/missing-model", test_tmpdir(tc));
    const char *missing[] = {"sample", "--model", path, "--prompt", "x", "--out", out, NULL};
    CHECK(dice(tc, missing) == 1 && one_line(err_buf) && strstr(err_buf, "no such file or folder"));
    snprintf(path, sizeof path, "%s/v1-5-pruned.ckpt", test_tmpdir(tc));
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite("PK\3\4", 1, 4, f) == 4 && !fclose(f));
    const char *ckpt[] = {"sample", "--model", path, "--prompt", "x", "--out", out, NULL};
    CHECK(dice(tc, ckpt) == 1 && one_line(err_buf) && strstr(err_buf, "pickled") && strstr(err_buf, "safetensors"));
    snprintf(path, sizeof path, "%s/empty.txt", test_tmpdir(tc));
    f = fopen(path, "w");
    CHECK(f && fputs("\n\r\n", f) >= 0 && !fclose(f));
    const char *empty[] = {"sample", "--model", model, "--prompts", path, "--out", out, NULL};
    CHECK(dice(tc, empty) == 1 && one_line(err_buf) && strstr(err_buf, "no prompts"));
    float v[1] = {0};
    StWriteTensor t[3] = {{"model.diffusion_model.a", DT_F32, 1, {1}, v}, {"first_stage_model.b", DT_F32, 1, {1}, v},
                          {"cond_stage_model.transformer.c", DT_F32, 1, {1}, v}};
    snprintf(path, sizeof path, "%s/single.safetensors", test_tmpdir(tc));
    CHECK_OK(st_write(path, t, 3, NULL, NULL, 0, &tc->err));
    const char *single[] = {"sample", "--model", path, "--prompt", "x", "--out", out, NULL};
    CHECK(dice(tc, single) == 1 && one_line(err_buf) && strstr(err_buf, "--config DIR"));
    const char *size[] = {"sample", "--model", model, "--prompt", "x", "--height", "18", "--out", out, NULL};
    CHECK(dice(tc, size) == 1 && one_line(err_buf) && strstr(err_buf, "multiples of 4"));
    // usage errors: exit 2, one line
    const char *bad[][12] = {
        {"sample", "--model", model, "--prompt", "x", "--steps", "0", "--out", out, NULL},
        {"sample", "--model", model, "--prompt", "x", "--frobnicate", "1", "--out", out, NULL},
        {"sample", "--model", model, "--prompt", "x", "--alpha", "1", "--out", out, NULL},
        {"sample", "--model", model, "--prompt", "x", NULL},
        {"sample", "--model", model, "--prompt", "x", "--negative-prompt", "y", "--out", out, NULL},
        {"sample", "--model", model, "--prompt", "x", "--sampler", "plms", "--out", out, NULL},
        {"sample", "--model", model, "--prompt", "x", "--guidance", "nan", "--out", out, NULL},
        {"sample", "--model", model, "--out", out, NULL},
        {"sample", "--model", model, "--prompt", "x", "--steps", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(dice(tc, bad[i]) == 2 && one_line(err_buf), "case %zu: %s", i, err_buf);
    const char *help[] = {"help", "sample", NULL};
    CHECK(dice(tc, help) == 0 && strstr(out_buf, "--scale-embeddings") && strstr(out_buf, "Negative prompt:"));
}

// Writes tensors (and metadata) to dir/name, returning the path (static buffer per call site).
static const char *write_in(TestCtx *tc, const char *name, const StWriteTensor *t, int n, const char *meta) {
    static char path[4][1200];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 1200, "%s/%s", test_tmpdir(tc), name);
    const char *keys[] = {"prompts"}, *values[] = {meta};
    return st_write(p, t, n, keys, values, meta ? 1 : 0, &tc->err) ? NULL : p;
}

// Tensor `name` of a safetensors output as f32 / i32 (copied into out, n elements).
static int read_out(TestCtx *tc, const char *path, const char *name, void *out, size_t n) {
    StFile f;
    DICE_TRY(st_open(&f, path, &tc->err));
    const StTensorInfo *t = st_find(&f, name);
    int rc = t && (size_t)st_numel(t) == n ? 0 : DICE_FAIL(&tc->err, "%s: %s absent or mis-sized", path, name);
    if (!rc) memcpy(out, t->data, n * 4);
    st_close(&f);
    return rc;
}

static void nhwc_to_nchw(const float *in, float *out, int b, int h, int w, int c) {
    for (int i = 0; i < b; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++)
                    out[(((size_t)i * c + k) * h + y) * w + x] = in[(((size_t)i * h + y) * w + x) * c + k];
}

DICE_TEST(pipeline_cli_run_round_trips) {
    char model[1024], out[1200];
    snprintf(model, sizeof model, "%s", test_path(tc, MODEL));
    snprintf(out, sizeof out, "%s/out.safetensors", test_tmpdir(tc));
    // tokenizer -> text-encoder: diffusers' prompt embeddings
    const char *in = write_in(tc, "tok.safetensors", NULL, 0,
                              "[\"a photo of a red cat on the mat\", \"blue dog painting, astronaut\"]");
    CHECK_OK(in ? 0 : -1);
    const char *tok[] = {"run", "tokenizer", "--model", model, "--in", in, "--out", out, NULL};
    CHECK_MSG(dice(tc, tok) == 0, "%s", err_buf);
    static int32_t ids[2 * 77];
    CHECK_OK(read_out(tc, out, "input_ids", ids, 2 * 77));
    StWriteTensor t_ids = {"input_ids", DT_I32, 2, {2, 77}, ids};
    in = write_in(tc, "ids.safetensors", &t_ids, 1, NULL);
    const char *text[] = {"run", "text-encoder", "--model", model, "--in", in, "--out", out, NULL};
    CHECK_MSG(dice(tc, text) == 0, "%s", err_buf);
    static float got[2 * 77 * 32], want[2 * 77 * 32];
    CHECK_OK(read_out(tc, out, "last_hidden_state", got, 2 * 77 * 32));
    StFile ref;
    CHECK_OK(st_open(&ref, test_path(tc, "tests/golden/pipeline/reference.safetensors"), &tc->err));
    memcpy(want, st_find(&ref, "prompt_embeds")->data, sizeof want);
    CHECK_REL_ERR(got, want, 2 * 77 * 32, 1e-5);
    CHECK_OK(read_out(tc, out, "hidden_states.2", got, 2 * 77 * 32));
    // sample (unguided, 5 steps, seed 42): diffusers' first image, latents and image in NCHW
    const char *sample[] = {"run", "sample", "--model", model, "--prompt", "a photo of a red cat on the mat", "--steps",
                            "5", "--seed", "42", "--out", out, NULL};
    CHECK_MSG(dice(tc, sample) == 0, "%s", err_buf);
    static float lat[8 * 8 * 4], lat_want[8 * 8 * 4], img[16 * 16 * 3], img_want[16 * 16 * 3];
    CHECK_OK(read_out(tc, out, "latents", lat, 8 * 8 * 4));
    nhwc_to_nchw(st_find(&ref, "unguided5/latents")->data, lat_want, 1, 8, 8, 4);
    CHECK_REL_ERR(lat, lat_want, 8 * 8 * 4, 1e-5);
    CHECK_OK(read_out(tc, out, "image", img, 16 * 16 * 3));
    nhwc_to_nchw(st_find(&ref, "unguided5/image")->data, img_want, 1, 16, 16, 3);
    CHECK_REL_ERR(img, img_want, 16 * 16 * 3, 1e-5);
    // unet, vae-decode, vae-encode on the final latents
    float ts = 500, ehs[77 * 32];
    memcpy(ehs, want, sizeof ehs);
    StWriteTensor t_unet[3] = {{"sample", DT_F32, 4, {1, 4, 8, 8}, lat}, {"timestep", DT_F32, 1, {1}, &ts},
                               {"encoder_hidden_states", DT_F32, 3, {1, 77, 32}, ehs}};
    in = write_in(tc, "unet.safetensors", t_unet, 3, NULL);
    const char *unet[] = {"run", "unet", "--model", model, "--in", in, "--out", out, NULL};
    CHECK_MSG(dice(tc, unet) == 0, "%s", err_buf);
    CHECK_OK(read_out(tc, out, "noise_pred", got, 8 * 8 * 4));
    for (int i = 0; i < 8 * 8 * 4; i++) lat[i] /= 0.18215f;
    StWriteTensor t_z = {"z", DT_F32, 4, {1, 4, 8, 8}, lat};
    in = write_in(tc, "z.safetensors", &t_z, 1, NULL);
    const char *dec[] = {"run", "vae-decode", "--model", model, "--in", in, "--out", out, NULL};
    CHECK_MSG(dice(tc, dec) == 0, "%s", err_buf);
    CHECK_OK(read_out(tc, out, "image", got, 16 * 16 * 3));
    for (int i = 0; i < 16 * 16 * 3; i++) {  // the pipeline's image is (decoded / 2 + 0.5) clamped
        float v = got[i] / 2 + 0.5f;
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        CHECK_NEAR(v, img_want[i], 1e-4);
    }
    StWriteTensor t_img = {"image", DT_F32, 4, {1, 3, 16, 16}, img_want};
    in = write_in(tc, "img.safetensors", &t_img, 1, NULL);
    const char *enc[] = {"run", "vae-encode", "--model", model, "--in", in, "--seed", "3", "--out", out, NULL};
    CHECK_MSG(dice(tc, enc) == 0, "%s", err_buf);
    CHECK_OK(read_out(tc, out, "sample", got, 8 * 8 * 4));
    st_close(&ref);
    // errors: unknown component (2), a missing input tensor (1)
    const char *unknown[] = {"run", "frobnicator", "--model", model, "--out", out, NULL};
    CHECK(dice(tc, unknown) == 2 && one_line(err_buf));
    const char *no_in[] = {"run", "unet", "--model", model, "--in", in, "--out", out, NULL};
    CHECK(dice(tc, no_in) == 1 && one_line(err_buf) && strstr(err_buf, "no tensor 'sample'"));
    const char *help[] = {"help", "run", NULL};
    CHECK(dice(tc, help) == 0 && strstr(out_buf, "noise_pred") && strstr(out_buf, "c_phi"));
}

DICE_TEST(pipeline_cli_run_sharpener) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena a;
    CHECK_OK(arena_init(&a, "test", DEV_CPU, 1 << 20, 0, &tc->err));
    Sharpener s;
    CHECK_OK(sharpener_init(&s, 32, 64, 8, &a, &ctx, 11, &tc->err));
    char path[1200], out[1200];
    snprintf(path, sizeof path, "%s/sharp.safetensors", test_tmpdir(tc));
    snprintf(out, sizeof out, "%s/phi.safetensors", test_tmpdir(tc));
    CHECK_OK(sharpener_save(&s, &ctx, path, NULL, NULL, 0, &tc->err));
    static float c[2 * 5 * 32], cn[5 * 32], cn2[2 * 5 * 32], got[2 * 5 * 32];
    uint64_t st = tc->seed;
    for (int i = 0; i < 2 * 5 * 32; i++) c[i] = test_rand_uniform(&st, -2, 2);
    for (int i = 0; i < 5 * 32; i++) cn[i] = cn2[i] = cn2[i + 5 * 32] = test_rand_uniform(&st, -2, 2);
    StWriteTensor t[2] = {{"c", DT_F32, 3, {2, 5, 32}, c}, {"c_null", DT_F32, 3, {1, 5, 32}, cn}};
    const char *in = write_in(tc, "sharp_in.safetensors", t, 2, NULL);
    const char *args[] = {"run", "sharpener", "--model", path, "--in", in, "--alpha", "0.75", "--out", out, NULL};
    CHECK_MSG(dice(tc, args) == 0, "%s", err_buf);
    CHECK_OK(read_out(tc, out, "c_phi", got, 2 * 5 * 32));
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &a, &tc->err));
    Tensor tc_, tn;
    CHECK_OK(tensor_wrap(&tc_, c, DT_F32, DEV_CPU, 3, (int64_t[]){2, 5, 32}, &tc->err));
    CHECK_OK(tensor_wrap(&tn, cn2, DT_F32, DEV_CPU, 3, (int64_t[]){2, 5, 32}, &tc->err));
    Var *vc, *vn, *phi;
    CHECK_OK(graph_leaf(&g, &vc, &tc_, false, &tc->err));
    CHECK_OK(graph_leaf(&g, &vn, &tn, false, &tc->err));
    CHECK_OK(sharpener_forward(&g, &s, vc, vn, 0.75, &phi, &tc->err));
    CHECK(!memcmp(phi->value.data, got, sizeof got));
    graph_free(&g);
    arena_free(&a);
}
