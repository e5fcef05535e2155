// tests/test_world_model_config.c — the embedded default's configs (assets/dice-world/, a diffusers pipeline
// folder of a pixel-space model: model_index.json with no VAE, scheduler/, text_encoder/, tokenizer/, unet/):
// dice's parsers read every config and accept what diffusers / transformers wrote in them; the text encoder fits
// the tokenizer and the UNet fits the text encoder; both models are built from an empty weights file (every
// tensor zero-filled at its real shape), as many tensors as transformers' CLIPTextModel and diffusers'
// UNet2DConditionModel have for these configs, then given random values, and one CPU forward runs from
// a tokenized caption to the UNet's output (1, 32, 32, 3).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "models/clip_encoder.h"
#include "models/clip_tokenizer.h"
#include "models/unet.h"
#include "nn/file_util.h"
#include "sample/schedule.h"
#include "sample/scheduler_config.h"
#include "test.h"

#define WORLD_MODEL "assets/dice-world"
// state_dict sizes for these configs: transformers 4.57 CLIPTextModel, diffusers 0.42 UNet2DConditionModel
// (scripts/make_world_tokenizer.py's text encoder, assets/dice-world/unet/config.json; 871,296 and 1,445,475
// parameters).
#define N_TEXT_TENSORS 68
#define N_UNET_TENSORS 246

static const char *asset(TestCtx *tc, const char *relative) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", test_path(tc, WORLD_MODEL), relative);
    return path;
}

// model_index.json entry `key` is the pair [library, cls] (NULL: [null, null]).
static int component_is(const cJSON *index, const char *key, const char *library, const char *cls) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(index, key);
    if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2) return 0;
    const cJSON *a = cJSON_GetArrayItem(e, 0), *b = cJSON_GetArrayItem(e, 1);
    if (!library) return cJSON_IsNull(a) && cJSON_IsNull(b);
    return cJSON_IsString(a) && cJSON_IsString(b) && !strcmp(a->valuestring, library) && !strcmp(b->valuestring, cls);
}

DICE_TEST(world_model_configs_parse) {
    char *text;
    size_t len;
    CHECK_OK(dice_read_file(asset(tc, "model_index.json"), 1 << 16, &text, &len, &tc->err));
    cJSON *index = cJSON_Parse(text);
    free(text);
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(index, "_class_name");
    CHECK(cJSON_IsString(cls) && !strcmp(cls->valuestring, "StableDiffusionPipeline"));
    CHECK(component_is(index, "tokenizer", "transformers", "CLIPTokenizer") &&
          component_is(index, "text_encoder", "transformers", "CLIPTextModel") &&
          component_is(index, "unet", "diffusers", "UNet2DConditionModel") &&
          component_is(index, "scheduler", "diffusers", "DDPMScheduler"));
    CHECK(component_is(index, "vae", NULL, NULL) && component_is(index, "safety_checker", NULL, NULL) &&
          component_is(index, "feature_extractor", NULL, NULL));  // pixel space: no VAE
    cJSON_Delete(index);

    UnetConfig u;
    CHECK_OK(unet_config_load(&u, asset(tc, "unet/config.json"), &tc->err));
    CHECK(u.in_channels == 3 && u.out_channels == 3 && u.sample_size == 32 && u.n_levels == 3 && u.has_mid);
    const int64_t channels[3] = {32, 64, 64};
    for (int i = 0; i < 3; i++) {
        CHECK(u.block_out_channels[i] == channels[i] && u.layers_per_block[i] == 1 && u.transformer_layers[i] == 1);
        // Cross-attention at 8x8 only (the last level, the middle and the first up level).
        CHECK(u.down_cross_attn[i] == (i == 2) && u.up_cross_attn[i] == (i == 0) && u.cross_attention_dim[i] == 128);
        CHECK(u.heads[i] == 8);
    }
    CHECK(u.block_out_channels[2] / u.heads[2] == 8);  // the attention's head dim at 8x8
    CHECK(u.norm_num_groups == 16 && !u.use_linear_projection);

    ClipEncoderConfig t;
    CHECK_OK(clip_encoder_config_load(&t, asset(tc, "text_encoder/config.json"), &tc->err));
    CHECK(t.hidden_size == 128 && t.intermediate_size == 512 && t.num_layers == 4 && t.num_heads == 4);
    CHECK(t.max_positions == 16 && t.projection_dim == 128 && t.act == CLIP_ACT_QUICK_GELU);
    CHECK(t.arch == CLIP_ARCH_TEXT_MODEL && t.hidden_size == u.cross_attention_dim[0]);
    ClipTokenizer tok;
    CHECK_OK(clip_tokenizer_load(&tok, asset(tc, "tokenizer"), &tc->err));
    // The vocabulary is the tokenizer's, pooling reads the first EOS, and a padded prompt fits the positions.
    CHECK(t.vocab_size == tok.n_vocab && t.eos_token_id == tok.eos_id && tok.max_length == t.max_positions);
    clip_tokenizer_free(&tok);

    ScheduleConfig s;
    CHECK_OK(schedule_config_load(&s, asset(tc, "scheduler/scheduler_config.json"), &tc->err));
    // v_prediction: an epsilon loss gives the prompt's colours almost no weight (assets/dice-world/README.md).
    CHECK(s.num_train_timesteps == 1000 && s.beta_schedule == BETA_SQUAREDCOS_CAP_V2 &&
          s.prediction_type == PRED_V_PREDICTION);
    NoiseSchedule ns;
    CHECK_OK(noise_schedule_init(&ns, &s, &tc->err));
    CHECK(ns.alphas_cumprod[0] > 0.9999f && ns.alphas_cumprod[999] < 1e-4f);
    for (int i = 1; i < 1000; i++) CHECK(ns.alphas_cumprod[i] < ns.alphas_cumprod[i - 1]);
    noise_schedule_free(&ns);
    schedule_config_free(&s);
    // The samplers read it as `dice sample` does (DDIM keeps its clip_sample: x0 clamped to the pixel range),
    // with "trailing" spacing: the first step is at t = 999, pure noise, not at 950 (leading), where the noise's
    // mean already reads as a background colour.
    const SchedulerKind kinds[3] = {SCHED_DPMSOLVER_MULTISTEP, SCHED_EULER_DISCRETE, SCHED_DDIM};
    for (int k = 0; k < 3; k++) {
        SchedulerConfig sc;
        int rc = scheduler_config_load(&sc, kinds[k], asset(tc, "scheduler/scheduler_config.json"), &tc->err);
        bool ok = sc.schedule.beta_schedule == BETA_SQUAREDCOS_CAP_V2 && (kinds[k] != SCHED_DDIM || sc.clip_sample) &&
                  sc.timestep_spacing == SPACING_TRAILING && sc.schedule.prediction_type == PRED_V_PREDICTION;
        scheduler_config_free(&sc);
        CHECK_OK(rc);
        CHECK(ok);
    }
}

// An empty safetensors file (header "{}") in the test's scratch folder.
static const char *empty_weights(TestCtx *tc) {
    static char path[600];
    snprintf(path, sizeof path, "%s/empty.safetensors", test_tmpdir(tc));
    static const unsigned char bytes[10] = {2, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    size_t wrote = fwrite(bytes, 1, sizeof bytes, f);
    return fclose(f) == 0 && wrote == sizeof bytes ? path : NULL;
}

// Every f32 weight lives in `a`: filling its used bytes gives each parameter a value uniform in [-r, r) (and
// the alignment padding between tensors too, which nothing reads).
static void fill_arena(Arena *a, uint64_t *rng, float r) {
    for (ArenaChunk *c = a->chunks; c; c = c->next) {
        float *p = (float *)(void *)c->base;
        for (size_t i = 0; i < c->used / sizeof *p; i++) p[i] = test_rand_uniform(rng, -r, r);
    }
}

DICE_TEST(world_model_forward_cpu) {
    UnetConfig ucfg;
    ClipEncoderConfig tcfg;
    ClipTokenizer tok;
    CHECK_OK(unet_config_load(&ucfg, asset(tc, "unet/config.json"), &tc->err));
    CHECK_OK(clip_encoder_config_load(&tcfg, asset(tc, "text_encoder/config.json"), &tc->err));
    CHECK_OK(clip_tokenizer_load(&tok, asset(tc, "tokenizer"), &tc->err));
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena weights, step;
    CHECK_OK(arena_init(&weights, "weights", DEV_CPU, (size_t)32 << 20, 0, &tc->err));
    CHECK_OK(arena_init(&step, "step", DEV_CPU, (size_t)32 << 20, 0, &tc->err));
    const char *path = empty_weights(tc);
    CHECK(path);
    Weights w;
    CHECK_OK(weights_open(&w, &path, 1, &ctx, &weights, DT_F32, &tc->err));
    ClipEncoder te;
    Unet u;
    CHECK_OK(clip_encoder_load(&te, &tcfg, &w, &tc->err));
    int n_text = w.missing.count;
    CHECK_OK(unet_load(&u, &ucfg, &w, &tc->err));
    int n_unet = w.missing.count - n_text;
    CHECK_MSG(n_text == N_TEXT_TENSORS && n_unet == N_UNET_TENSORS && w.misshaped.count == 0,
              "%d text encoder and %d UNet tensors, want %d and %d", n_text, n_unet, N_TEXT_TENSORS, N_UNET_TENSORS);
    weights_close(&w);
    CHECK(!te.with_projection);
    uint64_t rng = tc->seed;
    fill_arena(&weights, &rng, 0.1f);

    // A caption -> ids (1, 16) -> text embeddings (1, 16, 128).
    int32_t ids[16];
    CHECK(tok.max_length == 16);
    CHECK_OK(clip_tokenizer_encode(&tok, "a red circle left of a blue square on a green background", ids, NULL, NULL,
                                   &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &step, &tc->err));
    graph_no_grad_begin(&g);
    Tensor ids_t;
    CHECK_OK(tensor_wrap(&ids_t, ids, DT_I32, DEV_CPU, 2, (int64_t[]){1, 16}, &tc->err));
    ClipEncoderOutput out = {0};
    CHECK_OK(clip_encoder_forward(&g, &te, &ids_t, CLIP_LAST_HIDDEN_STATE, &out, &tc->err));
    const Tensor *ehs = &out.hidden->value;
    CHECK(ehs->ndim == 3 && ehs->shape[0] == 1 && ehs->shape[1] == 16 && ehs->shape[2] == 128);
    CHECK(out.pooled && out.pooled->value.shape[1] == 128 && !out.text_embeds);

    // Noise x (1, 32, 32, 3) at t = 500 -> eps (1, 32, 32, 3).
    float x[32 * 32 * 3];
    for (int i = 0; i < 32 * 32 * 3; i++) x[i] = test_rand_uniform(&rng, -1, 1);
    Tensor xt, t;
    float t500 = 500;
    CHECK_OK(tensor_wrap(&xt, x, DT_F32, DEV_CPU, 4, (int64_t[]){1, 32, 32, 3}, &tc->err));
    CHECK_OK(tensor_wrap(&t, &t500, DT_F32, DEV_CPU, 1, (int64_t[]){1}, &tc->err));
    Var *xv, *eps;
    CHECK_OK(graph_leaf(&g, &xv, &xt, false, &tc->err));
    CHECK_OK(unet_forward(&g, &u, xv, &t, out.hidden, &eps, &tc->err));
    const Tensor *e = &eps->value;
    CHECK(e->ndim == 4 && e->shape[0] == 1 && e->shape[1] == 32 && e->shape[2] == 32 && e->shape[3] == 3);
    const float *ev = e->data;
    int n_finite = 0, n_nonzero = 0;
    for (int i = 0; i < 32 * 32 * 3; i++) n_finite += isfinite(ev[i]), n_nonzero += ev[i] != 0;
    CHECK_MSG(n_finite == 32 * 32 * 3 && n_nonzero > 32 * 32 * 2, "%d finite, %d non-zero", n_finite, n_nonzero);
    graph_free(&g);
    unet_free(&u);
    clip_encoder_free(&te);
    clip_tokenizer_free(&tok);
    arena_free(&step);
    arena_free(&weights);
}
