// tests/test_base_train.c — `dice train-base` (train/base_train.h) on a tiny pixel-space model built from the
// embedded default's tokenizer and scheduler with small text-encoder and UNet configs: the output folder is a
// loadable pipeline, exactly the linear / convolution tensors train, a resumed run equals an uninterrupted
// one bit for bit, and bad settings are clear errors.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/world.h"
#include "models/sd_model.h"
#include "nn/file_util.h"
#include "nn/philox.h"
#include "nn/safetensors.h"
#include "sample/schedule.h"
#include "sample/scheduler_config.h"
#include "test.h"
#include "train/base_train.h"

#include <omp.h>

#define WORLD "assets/dice-world"

static const char text_config[] =
    "{\"architectures\": [\"CLIPTextModel\"], \"hidden_act\": \"quick_gelu\", \"hidden_size\": 32, "
    "\"intermediate_size\": 64, \"layer_norm_eps\": 1e-05, \"max_position_embeddings\": 77, "
    "\"model_type\": \"clip_text_model\", \"num_attention_heads\": 2, \"num_hidden_layers\": 1, "
    "\"bos_token_id\": 591, \"eos_token_id\": 592, \"pad_token_id\": 592, \"projection_dim\": 32, "
    "\"vocab_size\": 593}\n";
static const char unet_config[] =
    "{\"_class_name\": \"UNet2DConditionModel\", \"attention_head_dim\": 8, \"block_out_channels\": [32, 64], "
    "\"cross_attention_dim\": 32, \"down_block_types\": [\"DownBlock2D\", \"CrossAttnDownBlock2D\"], "
    "\"up_block_types\": [\"CrossAttnUpBlock2D\", \"UpBlock2D\"], \"in_channels\": 3, \"out_channels\": 3, "
    "\"layers_per_block\": 1, \"norm_num_groups\": 32, \"sample_size\": 32}\n";

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

// test_tmpdir/tiny: the world's model_index, scheduler and tokenizer with the small configs, no weights.
static const char *tiny_model(TestCtx *tc) {
    static char dir[1024];
    char src[2048], dst[2048];
    snprintf(dir, sizeof dir, "%s/tiny", test_tmpdir(tc));
    static const char *const copied[] = {"model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json",
                                         "tokenizer/merges.txt", "tokenizer/tokenizer_config.json",
                                         "tokenizer/special_tokens_map.json"};
    static const char *const dirs[] = {"scheduler", "tokenizer", "text_encoder", "unet"};
    for (int i = 0; i < 4; i++) {
        snprintf(dst, sizeof dst, "%s/%s", dir, dirs[i]);
        if (dice_make_dirs(dst, &tc->err)) return NULL;
    }
    for (int i = 0; i < 6; i++) {
        snprintf(src, sizeof src, "%s", test_path(tc, WORLD));
        snprintf(src + strlen(src), sizeof src - strlen(src), "/%s", copied[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, copied[i]);
        if (dice_copy_file(src, dst, 1 << 24, &tc->err)) return NULL;
    }
    snprintf(dst, sizeof dst, "%s/text_encoder/config.json", dir);
    if (write_text(dst, text_config)) return NULL;
    snprintf(dst, sizeof dst, "%s/unet/config.json", dir);
    if (write_text(dst, unet_config)) return NULL;
    return dir;
}

// One thread: the tiny runs are dominated by OpenMP start-up and spinning on a busy 2-core machine.
static void options(BaseTrainOptions *o, const char *model, const char *out, int64_t steps) {
    omp_set_num_threads(1);
    base_train_defaults(o);
    o->model = model, o->out = out, o->steps = steps, o->batch = 2, o->save_every = 0, o->quiet = true;
    o->save_dtype = DT_F32, o->seed = 7;
}

static bool is_trained(const char *name) {
    size_t n = strlen(name);
    bool wb = (n > 7 && !strcmp(name + n - 7, ".weight")) || (n > 5 && !strcmp(name + n - 5, ".bias"));
    return wb && !strstr(name, "norm") && !strstr(name, "embedding.");
}

DICE_TEST(base_train_writes_a_loadable_pipeline_and_trains_exactly_the_layers) {
    const char *model = tiny_model(tc);
    CHECK_OK(model ? 0 : -1);
    char out0[1024], out1[1024], path[2200];
    snprintf(out0, sizeof out0, "%s/run0", test_tmpdir(tc));
    snprintf(out1, sizeof out1, "%s/run1", test_tmpdir(tc));
    BaseTrainOptions o;
    options(&o, model, out0, 0);  // the initial state
    o.weight_decay = 0;
    CHECK_OK(base_train(&o, &tc->err));
    options(&o, model, out1, 1);  // one step
    o.weight_decay = 0;
    CHECK_OK(base_train(&o, &tc->err));
    StFile a, b;
    snprintf(path, sizeof path, "%s/train_state.safetensors", out0);
    CHECK_OK(st_open(&a, path, &tc->err));
    snprintf(path, sizeof path, "%s/train_state.safetensors", out1);
    CHECK_OK(st_open(&b, path, &tc->err));
    CHECK(!strcmp(st_meta(&a, "step"), "0") && !strcmp(st_meta(&b, "step"), "1"));
    int trained = 0, frozen = 0;
    for (int i = 0; i < a.n_tensors; i++) {
        const StTensorInfo *ta = &a.tensors[i], *tb = st_find(&b, ta->name);
        CHECK_MSG(tb && tb->end - tb->begin == ta->end - ta->begin, "%s", ta->name);
        const char *slash = strchr(ta->name, '/');
        if (!slash || strchr(slash + 1, '/')) continue;  // ema / adam state
        bool changed = memcmp(ta->data, tb->data, ta->end - ta->begin) != 0;
        if (is_trained(slash + 1)) {
            CHECK_MSG(changed, "%s did not train", ta->name);
            trained++;
        } else {
            CHECK_MSG(!changed, "%s changed but is frozen", ta->name);
            frozen++;
        }
    }
    CHECK(trained > 20 && frozen > 10);
    st_close(&a);
    st_close(&b);
    // The output folder is a pixel-space pipeline like any other.
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    CHECK_OK(sd_model_open(&m, out1, NULL, &ctx, SD_LOAD_ALL, &tc->err));
    CHECK(!m.has_vae && m.unet.cfg.in_channels == 3);
    sd_model_close(&m);
    snprintf(path, sizeof path, "%s/loss.png", out1);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size > 0);
    // --from-scratch ignores a folder's weights: training from run1 (which has weights) from scratch repeats run1.
    char out2[1024];
    snprintf(out2, sizeof out2, "%s/run2", test_tmpdir(tc));
    options(&o, out1, out2, 1);
    o.weight_decay = 0, o.from_scratch = true;
    CHECK_OK(base_train(&o, &tc->err));
    char *x, *y;
    size_t nx, ny;
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", out1);
    CHECK_OK(dice_read_file(path, 1 << 26, &x, &nx, &tc->err));
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", out2);
    CHECK_OK(dice_read_file(path, 1 << 26, &y, &ny, &tc->err));
    CHECK(nx == ny && !memcmp(x, y, nx));
    free(x);
    free(y);
}

DICE_TEST(base_train_resume_is_bit_exact_and_loss_falls) {
    const char *model = tiny_model(tc);
    CHECK_OK(model ? 0 : -1);
    char straight[1024], resumed[1024], path[2200];
    snprintf(straight, sizeof straight, "%s/straight", test_tmpdir(tc));
    snprintf(resumed, sizeof resumed, "%s/resumed", test_tmpdir(tc));
    BaseTrainOptions o;
    options(&o, model, straight, 8);
    o.lr = 3e-3, o.keep_every = 4;
    CHECK_OK(base_train(&o, &tc->err));
    options(&o, model, resumed, 5);
    o.lr = 3e-3;
    CHECK_OK(base_train(&o, &tc->err));
    o.steps = 8, o.resume = true;
    CHECK_OK(base_train(&o, &tc->err));
    const char *files[3] = {"train_state.safetensors", "unet/diffusion_pytorch_model.safetensors",
                            "text_encoder/model.safetensors"};
    for (int i = 0; i < 3; i++) {
        StFile a, b;
        snprintf(path, sizeof path, "%s/%s", straight, files[i]);
        CHECK_OK(st_open(&a, path, &tc->err));
        snprintf(path, sizeof path, "%s/%s", resumed, files[i]);
        CHECK_OK(st_open(&b, path, &tc->err));
        for (int k = 0; k < a.n_tensors; k++) {
            const StTensorInfo *tb = st_find(&b, a.tensors[k].name);
            CHECK_MSG(tb && !memcmp(a.tensors[k].data, tb->data, a.tensors[k].end - a.tensors[k].begin),
                      "%s: %s differs after resuming", files[i], a.tensors[k].name);
        }
        st_close(&a);
        st_close(&b);
    }
    // keep_every 4: step-000004/ and step-000008/ are pipelines; the last holds the final weights.
    for (int k = 1; k <= 8; k++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/step-%06d/unet/diffusion_pytorch_model.safetensors", straight, k);
        CHECK_MSG((stat(path, &st) == 0) == (k % 4 == 0), "%s", path);
    }
    char *x, *y;
    size_t nx, ny;
    for (int i = 1; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", straight, files[i]);
        CHECK_OK(dice_read_file(path, 1 << 26, &x, &nx, &tc->err));
        snprintf(path, sizeof path, "%s/step-000008/%s", straight, files[i]);
        CHECK_OK(dice_read_file(path, 1 << 26, &y, &ny, &tc->err));
        CHECK_MSG(nx == ny && !memcmp(x, y, nx), "step-000008/%s differs from the final %s", files[i], files[i]);
        free(x);
        free(y);
    }
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    snprintf(path, sizeof path, "%s/step-000004", straight);
    CHECK_OK(sd_model_open(&m, path, NULL, &ctx, SD_LOAD_ALL, &tc->err));
    sd_model_close(&m);
    // loss.csv of the resumed run: 8 steps, the same losses; the last ones below the first ones.
    double loss[2][9];
    CHECK(test_read_losses(straight, loss[0], 9) == 8 && test_read_losses(resumed, loss[1], 9) == 8);
    for (int s = 0; s < 8; s++) CHECK_MSG(loss[0][s] == loss[1][s], "step %d: %g vs %g", s + 1, loss[0][s], loss[1][s]);
    CHECK_MSG(loss[0][5] + loss[0][6] + loss[0][7] < loss[0][0] + loss[0][1] + loss[0][2],
              "loss did not fall: %g %g %g -> %g %g %g", loss[0][0], loss[0][1], loss[0][2], loss[0][5], loss[0][6],
              loss[0][7]);
}

// Zeroes the named tensors of a safetensors file in place.
static int zero_tensors(TestCtx *tc, const char *path, const char *const *names, int n) {
    char *bytes;
    size_t len;
    StFile f;
    if (dice_read_file(path, 1 << 26, &bytes, &len, &tc->err)) return -1;
    int rc = st_open(&f, path, &tc->err);
    if (!rc) {
        for (int i = 0; i < n && !rc; i++) {
            const StTensorInfo *t = st_find(&f, names[i]);
            if (!t) rc = -1;
            else memset(bytes + ((const char *)t->data - (const char *)f.map), 0, t->end - t->begin);
        }
        st_close(&f);
    }
    FILE *out = rc ? NULL : fopen(path, "wb");
    if (out) rc = fwrite(bytes, 1, len, out) == len && fclose(out) == 0 ? 0 : -1;
    else rc = -1;
    free(bytes);
    return rc;
}

// With the UNet's output convolution zeroed the prediction is 0, so the first step's loss is the mean square
// of the target: the noise (epsilon), get_velocity(x0, noise, t) (v_prediction) or x0 (sample), recomputed
// here from the documented draws (base_train.h: item step * B + j, t = floor(u1 T), the noise stream).
DICE_TEST(base_train_regresses_the_target_of_the_prediction_type) {
    const char *model = tiny_model(tc);
    CHECK_OK(model ? 0 : -1);
    char init[1024], path[2200];
    snprintf(init, sizeof init, "%s/init", test_tmpdir(tc));
    BaseTrainOptions o;
    options(&o, model, init, 0);
    CHECK_OK(base_train(&o, &tc->err));
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", init);
    static const char *const conv_out[2] = {"conv_out.weight", "conv_out.bias"};
    CHECK_OK(zero_tensors(tc, path, conv_out, 2));
    char *sched_text;
    size_t len;
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", init);
    CHECK_OK(dice_read_file(path, 1 << 20, &sched_text, &len, &tc->err));
    static const char *const types[3] = {"epsilon", "v_prediction", "sample"};
    static const PredictionType kinds[3] = {PRED_EPSILON, PRED_V_PREDICTION, PRED_SAMPLE};
    const char *key = strstr(sched_text, "\"prediction_type\": \"");
    CHECK(key != NULL);
    const char *value_end = strchr(key + 20, '"');
    for (int k = 0; k < 3; k++) {
        char cfg_text[8192];  // the folder's config with this prediction_type
        snprintf(cfg_text, sizeof cfg_text, "%.*s%s%s", (int)(key + 20 - sched_text), sched_text, types[k], value_end);
        CHECK_OK(write_text(path, cfg_text));
        char out[1100];
        snprintf(out, sizeof out, "%s/%s", test_tmpdir(tc), types[k]);
        options(&o, init, out, 1);
        CHECK_OK(base_train(&o, &tc->err));
        ScheduleConfig sc;
        NoiseSchedule ns;
        CHECK_OK(schedule_config_load(&sc, path, &tc->err));
        CHECK_OK(noise_schedule_init(&ns, &sc, &tc->err));
        CHECK(ns.prediction_type == kinds[k]);
        double sum = 0;
        static float x0[WORLD_PIXELS], noise[WORLD_PIXELS], target[WORLD_PIXELS];
        WorldItem item;
        for (uint64_t j = 0; j < (uint64_t)o.batch; j++) {
            world_sample(o.seed, j, WORLD_TRAIN, &item);
            float u[4];
            philox_uniform4(o.seed, j, u);
            int t = (int)(u[1] * (float)ns.T);
            for (int i = 0; i < WORLD_PIXELS; i++) x0[i] = (float)item.rgb[i] / 127.5f - 1.0f;
            philox_fill_normal_f32(noise, WORLD_PIXELS, o.seed ^ 0x6e6f697365ull, j * WORLD_PIXELS);
            if (k == 0) memcpy(target, noise, sizeof target);
            if (k == 1) schedule_velocity(&ns, t, x0, noise, target, WORLD_PIXELS);
            if (k == 2) memcpy(target, x0, sizeof target);
            for (int i = 0; i < WORLD_PIXELS; i++) sum += (double)target[i] * target[i];
        }
        double want = sum / ((double)o.batch * WORLD_PIXELS), got;
        noise_schedule_free(&ns);
        schedule_config_free(&sc);
        CHECK(test_read_losses(out, &got, 1) == 1);
        CHECK_MSG(fabs(got - want) <= 1e-6 + 1e-6 * want, "%s: first loss %.7f, mean square of the target %.7f",
                  types[k], got, want);
    }
    free(sched_text);
}

// The text each training sample is trained with (base_train.h): "" when u0 < uncond_prob, otherwise the caption of
// world_noisy_attrs(attrs, caption_noise, seed, index), the item's own caption when caption_noise is 0.
DICE_TEST(base_train_caption_drops_and_corrupts_as_documented) {
    BaseTrainOptions o;
    base_train_defaults(&o);
    o.seed = tc->seed;
    static WorldItem item;
    int dropped = 0, exact = 0, kept = 0;
    for (uint64_t i = 0; i < 2000; i++) {
        world_sample(o.seed, i, WORLD_TRAIN, &item);
        float u[4];
        philox_uniform4(o.seed, i, u);
        char text[WORLD_CAPTION_MAX], want[WORLD_CAPTION_MAX];
        o.caption_noise = 0;
        base_train_caption(&o, i, &item, text);
        CHECK(strcmp(text, u[0] < o.uncond_prob ? "" : item.caption) == 0);
        o.caption_noise = 0.3;
        base_train_caption(&o, i, &item, text);
        if (u[0] < o.uncond_prob) {
            CHECK(text[0] == '\0');
            dropped++;
            continue;
        }
        WorldAttrs noisy;
        world_noisy_attrs(&item.attrs, o.caption_noise, o.seed, i, &noisy);
        CHECK(world_caption(&noisy, want, sizeof want) > 0);
        CHECK(strcmp(text, want) == 0);
        exact += !strcmp(text, item.caption), kept++;
    }
    // About 15% dropped; about (1 - 0.3)^6 = 12% of the kept captions still exact.
    CHECK_MSG(dropped > 200 && dropped < 400, "%d of 2000 dropped", dropped);
    CHECK_MSG(exact > kept / 20 && exact < kept / 5, "%d of %d kept captions exact", exact, kept);
}

DICE_TEST(base_train_errors_are_clear) {
    const char *model = tiny_model(tc);
    CHECK_OK(model ? 0 : -1);
    char out[1024];
    snprintf(out, sizeof out, "%s/errors", test_tmpdir(tc));
    BaseTrainOptions o;
    options(&o, model, out, 1);
    o.uncond_prob = 1.5;
    CHECK_FAILS_WITH(base_train(&o, &tc->err), "uncond_prob and caption_noise in [0, 1]");
    options(&o, model, out, 1);
    o.caption_noise = -0.1;
    CHECK_FAILS_WITH(base_train(&o, &tc->err), "uncond_prob and caption_noise in [0, 1]");
    options(&o, model, out, 1);
    o.keep_every = -1;
    CHECK_FAILS_WITH(base_train(&o, &tc->err), "keep_every >= 0");
    options(&o, "/nonexistent/model", out, 1);
    CHECK_FAILS_WITH(base_train(&o, &tc->err), "/nonexistent/model/tokenizer");
    options(&o, model, out, 1);
    o.resume = true;  // nothing to resume from
    CHECK_FAILS_WITH(base_train(&o, &tc->err), "train_state.safetensors");
    options(&o, model, out, 2);
    CHECK_OK(base_train(&o, &tc->err));
    options(&o, model, out, 3);
    o.resume = true, o.seed = 8;
    CHECK_FAILS_WITH(base_train(&o, &tc->err), "same --seed and --batch");
    // A VAE-latent UNet is not what this trainer makes.
    char path[2200];
    snprintf(path, sizeof path, "%s/unet/config.json", model);
    char *text;
    size_t len;
    CHECK_OK(dice_read_file(path, 1 << 20, &text, &len, &tc->err));
    char *in = strstr(text, "\"in_channels\": 3");
    CHECK(in != NULL);
    in[15] = '4';
    CHECK_OK(write_text(path, text));
    free(text);
    options(&o, model, out, 1);
    CHECK_FAILS_WITH(base_train(&o, &tc->err), "pixel-space UNet");
}

// CUDA: bf16 networks on f32 master weights follow the CPU's f32 run (losses within bf16 rounding), train
// exactly the same tensors, and resume bit for bit.
DICE_CUDA_TEST(base_train_cuda_bf16_tracks_the_cpu) {
    const char *model = tiny_model(tc);
    CHECK_OK(model ? 0 : -1);
    char cpu[1024], gpu[1024], part[1024], path[2200];
    snprintf(cpu, sizeof cpu, "%s/cpu", test_tmpdir(tc));
    snprintf(gpu, sizeof gpu, "%s/gpu", test_tmpdir(tc));
    snprintf(part, sizeof part, "%s/part", test_tmpdir(tc));
    BaseTrainOptions o;
    options(&o, model, cpu, 2);
    CHECK_OK(base_train(&o, &tc->err));
    options(&o, model, gpu, 2);
    o.device = DEV_CUDA;
    CHECK_OK(base_train(&o, &tc->err));
    options(&o, model, part, 1);
    o.device = DEV_CUDA;
    CHECK_OK(base_train(&o, &tc->err));
    o.steps = 2, o.resume = true;
    CHECK_OK(base_train(&o, &tc->err));
    double loss[3][2];
    const char *dirs[3] = {cpu, gpu, part};
    for (int r = 0; r < 3; r++) CHECK_MSG(test_read_losses(dirs[r], loss[r], 2) == 2, "%s/loss.csv", dirs[r]);
    for (int s = 0; s < 2; s++) {
        CHECK_MSG(fabs(loss[1][s] - loss[0][s]) <= 3e-2 * loss[0][s], "step %d: CUDA bf16 loss %g, CPU f32 %g", s + 1,
                  loss[1][s], loss[0][s]);
        CHECK_MSG(loss[2][s] == loss[1][s], "step %d: resumed %g, straight %g", s + 1, loss[2][s], loss[1][s]);
    }
    StFile a, b;
    snprintf(path, sizeof path, "%s/train_state.safetensors", gpu);
    CHECK_OK(st_open(&a, path, &tc->err));
    snprintf(path, sizeof path, "%s/train_state.safetensors", part);
    CHECK_OK(st_open(&b, path, &tc->err));
    for (int k = 0; k < a.n_tensors; k++) {
        const StTensorInfo *tb = st_find(&b, a.tensors[k].name);
        CHECK_MSG(tb && !memcmp(a.tensors[k].data, tb->data, a.tensors[k].end - a.tensors[k].begin),
                  "%s differs after resuming on CUDA", a.tensors[k].name);
    }
    st_close(&a);
    st_close(&b);
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;  // the CUDA run's folder loads like any model
    CHECK_OK(sd_model_open(&m, gpu, NULL, &ctx, SD_LOAD_ALL, &tc->err));
    sd_model_close(&m);
}
