// tests/test_clip_encoder.c — the CLIP text encoder (models/clip_encoder.h) against transformers
// (tests/golden/clip_encoder/, scripts/golden_clip_encoder.py): every hidden state, last_hidden_state, the
// pooled output under both pooling rules, text_embeds, and the gradient of a weighted sum of them with respect
// to the embedding output, on the CPU in f32 and on CUDA in bf16; prompts end to end through the tokenizer;
// config errors; weight problems reported by name.
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "models/clip_encoder.h"
#include "nn/tensor_copy.h"
#include "test.h"

#define GOLDEN "tests/golden/clip_encoder"

typedef struct Env {
    DiceCtx ctx, cpu;
    Arena weights, step, host;
    Weights ref;              // reference.safetensors, f32 (ids i32) on the host
} Env;

static int env_init(Env *e, Device device, TestCtx *tc) {
    if (device == DEV_CUDA) {
        if (ctx_init_cuda(&e->ctx, 0, &tc->err)) return -1;
    } else {
        ctx_init_cpu(&e->ctx);
    }
    ctx_init_cpu(&e->cpu);
    const char *path = test_path(tc, GOLDEN "/reference.safetensors");
    if (arena_init(&e->weights, "weights", device, 1 << 20, 0, &tc->err) ||
        arena_init(&e->step, "step", device, 1 << 22, 0, &tc->err) ||
        arena_init(&e->host, "host", DEV_CPU, 1 << 20, 0, &tc->err))
        return -1;
    return weights_open(&e->ref, &path, 1, &e->cpu, &e->host, DT_F32, &tc->err);
}

static void env_free(Env *e, Device device) {
    weights_close(&e->ref);
    arena_free(&e->host);
    arena_free(&e->step);
    arena_free(&e->weights);
    if (device == DEV_CUDA) ctx_free(&e->ctx);
}

// A reference tensor with the shape the file gives it.
static int ref_get(Env *e, const char *name, Tensor *out, DiceError *err) {
    const StTensorInfo *t = st_find(&e->ref.files[0], name);
    DICE_CHECK(err, t, "reference.safetensors has no %s", name);
    return weights_get(&e->ref, out, name, t->ndim, t->shape, NULL, err);
}

// Relative norm error of v (any device, dtype) against the f32 reference `name`, or -1 on error.
static double rel_err(Env *e, const Tensor *v, const char *name, DiceError *err) {
    Tensor want, got;
    if (ref_get(e, name, &want, err) || tensor_to(&e->ctx, &e->host, &got, v, DT_F32, err)) return -1;
    if (!tensor_same_shape(&got, &want)) return DICE_FAIL(err, "%s: shapes differ", name);
    return test_rel_err_f32(got.data, want.data, (size_t)tensor_numel(&got));
}

#define CHECK_CLOSE(v, name, tol)                                                                   \
    do {                                                                                            \
        double e_ = rel_err(&env, (v), (name), &tc->err);                                           \
        CHECK_MSG(e_ >= 0, "%s: %s", (name), tc->err.msg);                                          \
        CHECK_MSG(e_ <= (tol), "%s: relative error %.3g > %.3g", (name), e_, (double)(tol));       \
    } while (0)

// loss += sum(v * reference weight `name`).
static int add_term(Env *e, Graph *g, Var *v, const char *name, DType dtype, Var **loss, DiceError *err) {
    Tensor w_host, w;
    Var *wv, *p, *s;
    DICE_TRY(ref_get(e, name, &w_host, err));
    DICE_TRY(tensor_to(&e->ctx, g->arena, &w, &w_host, dtype, err));
    DICE_TRY(graph_leaf(g, &wv, &w, false, err));
    DICE_TRY(op_mul(g, &p, v, wv, err));
    DICE_TRY(op_sum(g, &s, p, err));
    if (!*loss) {
        *loss = s;
        return 0;
    }
    return op_add(g, loss, *loss, s, err);
}

// Model `name` on `device` in `dtype` against transformers: outputs within tol, the gradient within tol_grad.
static void run_parity(TestCtx *tc, const char *name, Device device, DType dtype, double tol, double tol_grad) {
    Env env;
    CHECK_OK(env_init(&env, device, tc));
    char dir[256], key[128];
    snprintf(dir, sizeof dir, "%s/%s", GOLDEN, name);
    ClipEncoder m;
    CHECK_OK(clip_encoder_load_dir(&m, test_path(tc, dir), &env.ctx, &env.weights, dtype, &tc->err));
    int L = m.cfg.num_layers;
    CHECK(m.with_projection == !strcmp(name, "gelu_proj"));
    Tensor ids;
    snprintf(key, sizeof key, "%s/input_ids", name);
    CHECK_OK(ref_get(&env, key, &ids, &tc->err));

    Graph g;
    CHECK_OK(graph_init(&g, &env.ctx, &env.step, &tc->err));
    Var *emb, *x, *states[8], *loss = NULL;
    CHECK(L + 1 <= 8);
    CHECK_OK(clip_encoder_embed(&g, &m, &ids, &emb, &tc->err));
    CHECK_OK(graph_leaf(&g, &x, &emb->value, true, &tc->err));
    ClipEncoderOutput out = {.hidden_states = states};
    CHECK_OK(clip_encoder_run(&g, &m, x, &ids, -2, &out, &tc->err));
    CHECK(out.hidden == states[L - 1] && states[0] == x);
    for (int i = 0; i <= L; i++) {
        snprintf(key, sizeof key, "%s/hidden_states.%d", name, i);
        CHECK_CLOSE(&states[i]->value, key, tol);
    }
    snprintf(key, sizeof key, "%s/last_hidden_state", name);
    CHECK_CLOSE(&out.last_hidden_state->value, key, tol);
    snprintf(key, sizeof key, "%s/pooled", name);
    CHECK_CLOSE(&out.pooled->value, key, tol);
    CHECK((out.text_embeds != NULL) == m.with_projection);
    if (out.text_embeds) {
        snprintf(key, sizeof key, "%s/text_embeds", name);
        CHECK_CLOSE(&out.text_embeds->value, key, tol);
    }
    const char *terms[4] = {"last_hidden_state", "penult", "pooled", "text_embeds"};
    Var *vars[4] = {out.last_hidden_state, out.hidden, out.pooled, out.text_embeds};
    for (int t = 0; t < 4 && vars[t]; t++) {
        snprintf(key, sizeof key, "%s/w_%s", name, terms[t]);
        CHECK_OK(add_term(&env, &g, vars[t], key, dtype, &loss, &tc->err));
    }
    CHECK_OK(graph_backward(&g, loss, &tc->err));
    snprintf(key, sizeof key, "%s/grad_embeddings", name);
    CHECK_CLOSE(&x->grad, key, tol_grad);
    graph_free(&g);
    clip_encoder_free(&m);
    env_free(&env, device);
}

// fp32 against PyTorch fp32: a few ulps per op, different summation orders, over 2-3 layers of layer norms,
// GEMMs, softmax and GELU: measured 1e-7 to 3e-7 for the outputs and the gradient, so 1e-5 leaves a wide
// margin while still catching any wrong formula (which shows at 1e-3 or more).
DICE_TEST(clip_encoder_quick_gelu_matches_transformers_cpu_f32) {
    run_parity(tc, "quick", DEV_CPU, DT_F32, 1e-5, 1e-5);
}
DICE_TEST(clip_encoder_gelu_projection_matches_transformers_cpu_f32) {
    run_parity(tc, "gelu_proj", DEV_CPU, DT_F32, 1e-5, 1e-5);
}

// bf16 weights and activations with fp32 accumulation against the fp32 reference: rounding the weights and
// the embedding output to bf16 alone gives 2.5e-3 (2^-9 relative per value); each layer's ~10 rounded op
// boundaries add about 2e-3 (the residual stream keeps errors from compounding multiplicatively): measured
// 6e-3 to 8e-3 after 2-3 layers, outputs and gradient alike, hence 2e-2.
DICE_CUDA_TEST(clip_encoder_quick_gelu_matches_transformers_cuda_bf16) {
    run_parity(tc, "quick", DEV_CUDA, DT_BF16, 2e-2, 2e-2);
}
DICE_CUDA_TEST(clip_encoder_gelu_projection_matches_transformers_cuda_bf16) {
    run_parity(tc, "gelu_proj", DEV_CUDA, DT_BF16, 2e-2, 2e-2);
}

// Prompts through the tokenizer and both models, as SD1.5 (last_hidden_state) and SDXL's second encoder
// (hidden_states[-2] and text_embeds) use them; chunking (more prompts than a chunk) is covered by repeating
// the reference prompts.
static void run_prompts(TestCtx *tc, Device device, DType dtype, double tol) {
    Env env;
    CHECK_OK(env_init(&env, device, tc));
    ClipTokenizer tok;
    CHECK_OK(clip_tokenizer_load(&tok, test_path(tc, GOLDEN "/tokenizer"), &tc->err));
    const char *meta = st_meta(&env.ref.files[0], "prompts");
    CHECK(meta);
    cJSON *list = cJSON_Parse(meta);
    int n_ref = cJSON_GetArraySize(list), reps = 3, n = n_ref * reps;
    const char **prompts = calloc((size_t)n, sizeof *prompts);
    for (int i = 0; i < n; i++) prompts[i] = cJSON_GetArrayItem(list, i % n_ref)->valuestring;
    // the tokenizer gives transformers' ids
    Tensor ids_ref;
    CHECK_OK(ref_get(&env, "prompts/input_ids", &ids_ref, &tc->err));
    for (int i = 0; i < n_ref; i++) {
        int32_t ids[77];
        CHECK_OK(clip_tokenizer_encode(&tok, prompts[i], ids, NULL, NULL, &tc->err));
        CHECK(!memcmp(ids, (int32_t *)ids_ref.data + i * 77, sizeof ids));
    }
    const char *models[2] = {"quick", "gelu_proj"};
    for (int k = 0; k < 2; k++) {
        char dir[256];
        snprintf(dir, sizeof dir, "%s/%s", GOLDEN, models[k]);
        ClipEncoder m;
        CHECK_OK(clip_encoder_load_dir(&m, test_path(tc, dir), &env.ctx, &env.weights, dtype, &tc->err));
        Tensor hidden, pooled, view;
        int64_t C = m.cfg.hidden_size, D = clip_encoder_pooled_dim(&m);
        CHECK_OK(arena_tensor(&env.weights, &hidden, DT_F32, 3, (int64_t[]){n, 77, C}, &tc->err));
        CHECK_OK(arena_tensor(&env.weights, &pooled, DT_F32, 2, (int64_t[]){n, D}, &tc->err));
        int which = k ? -2 : CLIP_LAST_HIDDEN_STATE;
        CHECK_OK(clip_encode_prompts(&env.ctx, &env.step, &m, &tok, prompts, n, which, &hidden, k ? &pooled : NULL,
                                     &tc->err));
        CHECK(env.step.in_use == 0);
        for (int r = 0; r < reps; r++) {
            CHECK_OK(tensor_narrow(&view, &hidden, 0, r * n_ref, n_ref, &tc->err));
            CHECK_CLOSE(&view, k ? "prompts/gelu_proj/penultimate" : "prompts/quick/last_hidden_state", tol);
            if (k) {
                CHECK_OK(tensor_narrow(&view, &pooled, 0, r * n_ref, n_ref, &tc->err));
                CHECK_CLOSE(&view, "prompts/gelu_proj/text_embeds", tol);
            }
        }
        // only the pooled output
        if (k) {
            CHECK_OK(tensor_narrow(&view, &pooled, 0, 0, n_ref, &tc->err));
            CHECK_OK(tensor_zero(&env.ctx, &view, &tc->err));
            CHECK_OK(clip_encode_prompts(&env.ctx, &env.step, &m, &tok, prompts, n_ref, -2, NULL, &view, &tc->err));
            CHECK_CLOSE(&view, "prompts/gelu_proj/text_embeds", tol);
        }
        CHECK_FAILS_WITH(clip_encode_prompts(&env.ctx, &env.step, &m, &tok, prompts, n, 1, &pooled, NULL, &tc->err),
                         "out_hidden");
        CHECK_FAILS_WITH(clip_encode_prompts(&env.ctx, &env.step, &m, &tok, prompts, n, 9, &hidden, NULL, &tc->err),
                         "hidden state 9 does not exist");
        clip_encoder_free(&m);
    }
    free(prompts);
    cJSON_Delete(list);
    clip_tokenizer_free(&tok);
    env_free(&env, device);
}

DICE_TEST(clip_encoder_prompts_match_transformers_cpu_f32) { run_prompts(tc, DEV_CPU, DT_F32, 1e-5); }
DICE_CUDA_TEST(clip_encoder_prompts_match_transformers_cuda_bf16) { run_prompts(tc, DEV_CUDA, DT_BF16, 2e-2); }

// transformers' pooling rules (modeling_clip.py): eos_token_id 2 -> argmax(ids), the first of equal maxima;
// otherwise the first eos_token_id, or 0 when there is none.
DICE_TEST(clip_encoder_pool_index_follows_transformers) {
    ClipEncoderConfig legacy = {.eos_token_id = 2}, fixed = {.eos_token_id = 7};
    int32_t padded_eos[6] = {6, 3, 7, 7, 7, 7}, added[6] = {6, 9, 3, 7, 7, 7}, bang[6] = {6, 3, 7, 0, 0, 0};
    int32_t two_eos[6] = {6, 9, 7, 4, 7, 0}, no_eos[6] = {6, 1, 2, 3, 4, 5};
    CHECK(clip_encoder_pool_index(&legacy, padded_eos, 6) == 2);
    CHECK(clip_encoder_pool_index(&legacy, added, 6) == 1);   // an added token above eos wins argmax
    CHECK(clip_encoder_pool_index(&legacy, bang, 6) == 2);
    CHECK(clip_encoder_pool_index(&fixed, added, 6) == 3);
    CHECK(clip_encoder_pool_index(&fixed, two_eos, 6) == 2);
    CHECK(clip_encoder_pool_index(&fixed, no_eos, 6) == 0);
    CHECK(clip_encoder_pool_index(&legacy, no_eos, 6) == 0);  // ids[0] = 6 is the largest
}

// Without ids only the layers up to the state asked for run; the indices count as in Python; bad indices,
// lengths and inputs are refused.
DICE_TEST(clip_encoder_hidden_index_and_inputs) {
    Env env;
    CHECK_OK(env_init(&env, DEV_CPU, tc));
    ClipEncoder m;
    CHECK_OK(clip_encoder_load_dir(&m, test_path(tc, GOLDEN "/quick"), &env.ctx, &env.weights, DT_F32, &tc->err));
    Tensor ids;
    CHECK_OK(ref_get(&env, "quick/input_ids", &ids, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &env.ctx, &env.step, &tc->err));
    Var *x, *states[3];
    CHECK_OK(clip_encoder_embed(&g, &m, &ids, &x, &tc->err));
    ClipEncoderOutput out = {.hidden_states = states};
    CHECK_OK(clip_encoder_run(&g, &m, x, NULL, -2, &out, &tc->err));
    CHECK(out.hidden == states[1] && !states[2] && !out.last_hidden_state && !out.pooled && !out.text_embeds);
    CHECK_CLOSE(&out.hidden->value, "quick/hidden_states.1", 1e-5);
    out.hidden_states = NULL;
    CHECK_OK(clip_encoder_run(&g, &m, x, NULL, 0, &out, &tc->err));
    CHECK(out.hidden == x && !out.last_hidden_state);
    CHECK_OK(clip_encoder_run(&g, &m, x, NULL, CLIP_LAST_HIDDEN_STATE, &out, &tc->err));
    CHECK(out.hidden == out.last_hidden_state && !out.pooled);
    CHECK_CLOSE(&out.hidden->value, "quick/last_hidden_state", 1e-5);
    CHECK_OK(clip_encoder_forward(&g, &m, &ids, 2, &out, &tc->err));
    CHECK_CLOSE(&out.hidden->value, "quick/hidden_states.2", 1e-5);
    CHECK_CLOSE(&out.pooled->value, "quick/pooled", 1e-5);
    CHECK_FAILS_WITH(clip_encoder_run(&g, &m, x, NULL, 3, &out, &tc->err), "hidden state 3 does not exist");
    CHECK_FAILS_WITH(clip_encoder_run(&g, &m, x, NULL, -4, &out, &tc->err), "hidden state -4 does not exist");
    Tensor part, long_ids;
    CHECK_OK(tensor_narrow(&part, &ids, 0, 0, 1, &tc->err));
    CHECK_FAILS_WITH(clip_encoder_run(&g, &m, x, &part, -1, &out, &tc->err), "do not match the input");
    int32_t many[2 * 78] = {0};
    CHECK_OK(tensor_wrap(&long_ids, many, DT_I32, DEV_CPU, 2, (int64_t[]){2, 78}, &tc->err));
    CHECK_FAILS_WITH(clip_encoder_embed(&g, &m, &long_ids, &x, &tc->err), "max_position_embeddings is 77");
    many[5] = 1000;
    CHECK_OK(tensor_wrap(&long_ids, many, DT_I32, DEV_CPU, 2, (int64_t[]){2, 77}, &tc->err));
    CHECK_FAILS_WITH(clip_encoder_embed(&g, &m, &long_ids, &x, &tc->err), "outside the vocabulary");
    graph_free(&g);
    clip_encoder_free(&m);
    env_free(&env, DEV_CPU);
}

// SD1.5's text_encoder/config.json (transformers 4.22), SDXL's text_encoder_2/config.json (4.32), CLIPTextConfig's
// defaults for an empty object, and a config with PretrainedConfig's generic fields as transformers 4.2x
// wrote them.
DICE_TEST(clip_encoder_config_reads_real_configs) {
    ClipEncoderConfig c;
    const char *sd15 =
        "{\"_name_or_path\": \"openai/clip-vit-large-patch14\", \"architectures\": [\"CLIPTextModel\"],"
        " \"attention_dropout\": 0.0, \"bos_token_id\": 0, \"dropout\": 0.0, \"eos_token_id\": 2,"
        " \"hidden_act\": \"quick_gelu\", \"hidden_size\": 768, \"initializer_factor\": 1.0,"
        " \"initializer_range\": 0.02, \"intermediate_size\": 3072, \"layer_norm_eps\": 1e-05,"
        " \"max_position_embeddings\": 77, \"model_type\": \"clip_text_model\", \"num_attention_heads\": 12,"
        " \"num_hidden_layers\": 12, \"pad_token_id\": 1, \"projection_dim\": 768, \"torch_dtype\": \"float32\","
        " \"transformers_version\": \"4.22.0.dev0\", \"vocab_size\": 49408}";
    CHECK_OK(clip_encoder_config_parse(&c, sd15, "sd15", &tc->err));
    CHECK(c.hidden_size == 768 && c.intermediate_size == 3072 && c.num_layers == 12 && c.num_heads == 12);
    CHECK(c.vocab_size == 49408 && c.max_positions == 77 && c.act == CLIP_ACT_QUICK_GELU && c.eos_token_id == 2);
    CHECK(c.arch == CLIP_ARCH_TEXT_MODEL && c.layer_norm_eps == 1e-5f);
    const char *sdxl2 =
        "{\"architectures\": [\"CLIPTextModelWithProjection\"], \"attention_dropout\": 0.0, \"bos_token_id\": 0,"
        " \"dropout\": 0.0, \"eos_token_id\": 2, \"hidden_act\": \"gelu\", \"hidden_size\": 1280,"
        " \"initializer_factor\": 1.0, \"initializer_range\": 0.02, \"intermediate_size\": 5120,"
        " \"layer_norm_eps\": 1e-05, \"max_position_embeddings\": 77, \"model_type\": \"clip_text_model\","
        " \"num_attention_heads\": 20, \"num_hidden_layers\": 32, \"pad_token_id\": 1, \"projection_dim\": 1280,"
        " \"torch_dtype\": \"float16\", \"transformers_version\": \"4.32.0.dev0\", \"vocab_size\": 49408}";
    CHECK_OK(clip_encoder_config_parse(&c, sdxl2, "sdxl", &tc->err));
    CHECK(c.hidden_size == 1280 && c.num_layers == 32 && c.num_heads == 20 && c.act == CLIP_ACT_GELU);
    CHECK(c.arch == CLIP_ARCH_WITH_PROJECTION && c.projection_dim == 1280);
    CHECK_OK(clip_encoder_config_parse(&c, "{}", "empty", &tc->err));
    CHECK(c.vocab_size == 49408 && c.hidden_size == 512 && c.intermediate_size == 2048 && c.num_layers == 12);
    CHECK(c.num_heads == 8 && c.projection_dim == 512 && c.eos_token_id == 49407 && c.arch == CLIP_ARCH_UNSPECIFIED);
    const char *generic =
        "{\"hidden_size\": 64, \"num_attention_heads\": 4, \"add_cross_attention\": false, \"bad_words_ids\": null,"
        " \"chunk_size_feed_forward\": 0, \"id2label\": {\"0\": \"LABEL_0\"}, \"num_beams\": 1, \"pruned_heads\": {},"
        " \"output_hidden_states\": false, \"return_dict\": true, \"top_k\": 50, \"projection_dim\": null,"
        " \"architectures\": null, \"dtype\": \"bfloat16\"}";
    CHECK_OK(clip_encoder_config_parse(&c, generic, "generic", &tc->err));
    CHECK(c.hidden_size == 64 && c.num_heads == 4 && c.projection_dim == 512);
    CHECK_OK(clip_encoder_config_load(&c, test_path(tc, GOLDEN "/gelu_proj/config.json"), &tc->err));
    CHECK(c.hidden_size == 48 && c.num_heads == 3 && c.num_layers == 3 && c.projection_dim == 24);
}

DICE_TEST(clip_encoder_config_errors_name_the_field) {
    ClipEncoderConfig c;
    struct {
        const char *json, *message;
    } cases[] = {
        {"{\"hidden_size\": 32,", "not valid JSON"},
        {"[1, 2]", "not a JSON object"},
        {"{\"rope_theta\": 10000}", "unknown field \"rope_theta\""},
        {"{\"text_config\": {}}", "unknown field \"text_config\""},
        {"{\"hidden_act\": \"relu\"}", "hidden_act is \"relu\"; expected \"quick_gelu\" or \"gelu\""},
        {"{\"hidden_act\": \"gelu_new\"}", "hidden_act is \"gelu_new\""},
        {"{\"hidden_size\": 30, \"num_attention_heads\": 4}", "hidden_size 30 is not a multiple of"},
        {"{\"eos_token_id\": [49407, 49406]}", "eos_token_id is an array; expected one token id"},
        {"{\"eos_token_id\": null}", "eos_token_id is null"},
        {"{\"model_type\": \"clip\"}", "whole CLIPModel config"},
        {"{\"model_type\": \"bert\"}", "model_type is \"bert\""},
        {"{\"architectures\": [\"CLIPVisionModel\"]}", "architectures[0] is \"CLIPVisionModel\""},
        {"{\"pruned_heads\": {\"0\": [1]}}", "pruned_heads is an object; expected no pruned heads"},
        {"{\"vocab_size\": -1}", "vocab_size is -1; expected an integer >= 1"},
        {"{\"num_hidden_layers\": 1.5}", "num_hidden_layers is 1.5"},
        {"{\"num_hidden_layers\": \"2\"}", "num_hidden_layers is \"2\""},
        {"{\"layer_norm_eps\": 0}", "layer_norm_eps is 0; expected a positive number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_FAILS_WITH(clip_encoder_config_parse(&c, cases[i].json, "config.json", &tc->err), cases[i].message);
    char path[512];
    snprintf(path, sizeof path, "%s/none.json", test_tmpdir(tc));
    CHECK_FAILS_WITH(clip_encoder_config_load(&c, path, &tc->err), "cannot open the text encoder's config");
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int copy_file(const char *from, const char *to) {
    FILE *f = fopen(from, "rb");
    if (!f) return -1;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return n < sizeof buf - 1 ? write_text(to, buf) : -1;
}

typedef enum { EDIT_NONE, EDIT_BREAK, EDIT_NO_PROJECTION } Edit;

// Rewrites model `name`'s weights into dir as transformers 4 saved them ("text_model." prefix, the
// position_ids buffer), into `shards` files with an index when shards > 1. EDIT_BREAK drops
// final_layer_norm.bias, transposes layer 1's fc1.weight and adds an extra tensor; EDIT_NO_PROJECTION drops
// text_projection.weight.
static int rewrite(TestCtx *tc, const char *name, const char *dir, int shards, Edit edit, const char *config) {
    char path[512], src[256];
    snprintf(src, sizeof src, "%s/%s/model.safetensors", GOLDEN, name);
    StFile st;
    if (st_open(&st, test_path(tc, src), &tc->err)) return -1;
    StWriteTensor *t = calloc((size_t)st.n_tensors + 2, sizeof *t);
    char (*names)[160] = calloc((size_t)st.n_tensors + 2, sizeof *names);
    static const int64_t position_ids[77] = {0};
    static const float extra[4] = {0};
    int n = 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const StTensorInfo *s = &st.tensors[i];
        bool prefixed = !strncmp(s->name, "text_model.", 11) || !strcmp(s->name, "text_projection.weight");
        snprintf(names[n], sizeof names[n], "%s%s", prefixed ? "" : "text_model.", s->name);
        if ((edit == EDIT_BREAK && strstr(names[n], "final_layer_norm.bias")) ||
            (edit == EDIT_NO_PROJECTION && !strcmp(names[n], "text_projection.weight")))
            continue;
        t[n] = (StWriteTensor){.name = names[n], .dtype = s->dtype, .ndim = s->ndim, .data = s->data};
        memcpy(t[n].shape, s->shape, sizeof s->shape);
        if (edit == EDIT_BREAK && strstr(names[n], "layers.1.mlp.fc1.weight")) {
            t[n].shape[0] = s->shape[1];
            t[n].shape[1] = s->shape[0];
        }
        n++;
    }
    t[n++] = (StWriteTensor){.name = "text_model.embeddings.position_ids", .dtype = DT_I64, .ndim = 2,
                             .shape = {1, 77}, .data = position_ids};
    if (edit == EDIT_BREAK)
        t[n++] = (StWriteTensor){.name = "text_model.extra.weight", .dtype = DT_F32, .ndim = 1, .shape = {4},
                                 .data = extra};
    int rc = 0;
    char index[8192];
    size_t k = (size_t)snprintf(index, sizeof index, "{\"metadata\": {}, \"weight_map\": {");
    for (int s = 0; s < shards && !rc; s++) {
        int lo = n * s / shards, hi = n * (s + 1) / shards;
        snprintf(path, sizeof path, shards > 1 ? "%s/model-%05d-of-%05d.safetensors" : "%s/model.safetensors", dir,
                 s + 1, shards);
        rc = st_write(path, t + lo, hi - lo, NULL, NULL, 0, &tc->err);
        for (int i = lo; i < hi; i++)
            k += (size_t)snprintf(index + k, sizeof index - k, "%s\"%s\": \"%s\"", i ? ", " : "", t[i].name,
                                  strrchr(path, '/') + 1);
    }
    snprintf(index + k, sizeof index - k, "}}");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (!rc && shards > 1 && write_text(path, index)) rc = DICE_FAIL(&tc->err, "cannot write %s", path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(src, sizeof src, "%s/%s/config.json", GOLDEN, name);
    if (!rc && (config ? write_text(path, config) : copy_file(test_path(tc, src), path)))
        rc = DICE_FAIL(&tc->err, "cannot write %s", path);
    free(names);
    free(t);
    st_close(&st);
    return rc;
}

// transformers-4 layout (prefix, position_ids), one file and sharded: the same outputs as the golden folder.
DICE_TEST(clip_encoder_loads_transformers4_layout_and_shards) {
    Env env;
    CHECK_OK(env_init(&env, DEV_CPU, tc));
    Tensor ids;
    CHECK_OK(ref_get(&env, "quick/input_ids", &ids, &tc->err));
    for (int shards = 1; shards <= 3; shards += 2) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/q%d", test_tmpdir(tc), shards);
        CHECK(mkdir(dir, 0755) == 0);
        CHECK_OK(rewrite(tc, "quick", dir, shards, EDIT_NONE, NULL));
        ClipEncoder m;
        CHECK_OK(clip_encoder_load_dir(&m, dir, &env.ctx, &env.weights, DT_F32, &tc->err));
        Graph g;
        CHECK_OK(graph_init(&g, &env.ctx, &env.step, &tc->err));
        ClipEncoderOutput out = {0};
        CHECK_OK(clip_encoder_forward(&g, &m, &ids, CLIP_LAST_HIDDEN_STATE, &out, &tc->err));
        CHECK_CLOSE(&out.last_hidden_state->value, "quick/last_hidden_state", 1e-5);
        CHECK_CLOSE(&out.pooled->value, "quick/pooled", 1e-5);
        graph_free(&g);
        clip_encoder_free(&m);
    }
    // without "architectures", the projection is used when the weights hold it
    const char *no_arch = "{\"hidden_act\": \"gelu\", \"hidden_size\": 48, \"intermediate_size\": 96,"
                          " \"num_hidden_layers\": 3, \"num_attention_heads\": 3, \"projection_dim\": 24,"
                          " \"vocab_size\": 1000, \"eos_token_id\": 547}";
    char dir[512];
    snprintf(dir, sizeof dir, "%s/noarch", test_tmpdir(tc));
    CHECK(mkdir(dir, 0755) == 0);
    CHECK_OK(rewrite(tc, "gelu_proj", dir, 1, EDIT_NONE, no_arch));
    ClipEncoder m;
    CHECK_OK(clip_encoder_load_dir(&m, dir, &env.ctx, &env.weights, DT_F32, &tc->err));
    CHECK(m.with_projection && m.cfg.eos_token_id == 547);
    clip_encoder_free(&m);
    CHECK_OK(rewrite(tc, "gelu_proj", dir, 1, EDIT_NO_PROJECTION, no_arch));
    CHECK_OK(clip_encoder_load_dir(&m, dir, &env.ctx, &env.weights, DT_F32, &tc->err));
    CHECK(!m.with_projection && clip_encoder_pooled_dim(&m) == 48);
    clip_encoder_free(&m);
    env_free(&env, DEV_CPU);
}

// A missing, a mis-shaped and an unexpected tensor are all named in one message; a projection that the
// config's architecture requires is missing by name; a folder without weights says what it looked for.
DICE_TEST(clip_encoder_weight_problems_are_named) {
    Env env;
    CHECK_OK(env_init(&env, DEV_CPU, tc));
    char dir[512];
    snprintf(dir, sizeof dir, "%s/broken", test_tmpdir(tc));
    CHECK(mkdir(dir, 0755) == 0);
    CHECK_OK(rewrite(tc, "quick", dir, 1, EDIT_BREAK, NULL));
    ClipEncoder m;
    CHECK_FAILS_WITH(clip_encoder_load_dir(&m, dir, &env.ctx, &env.weights, DT_F32, &tc->err),
                     "1 missing: text_model.final_layer_norm.bias; 1 mis-shaped: "
                     "text_model.encoder.layers.1.mlp.fc1.weight (expected [64, 32], file has [32, 64]); "
                     "1 unexpected: text_model.extra.weight");
    CHECK(!m.layers);
    CHECK_OK(rewrite(tc, "gelu_proj", dir, 1, EDIT_NO_PROJECTION, NULL));
    CHECK_FAILS_WITH(clip_encoder_load_dir(&m, dir, &env.ctx, &env.weights, DT_F32, &tc->err),
                     "1 missing: text_projection.weight");
    snprintf(dir, sizeof dir, "%s/empty", test_tmpdir(tc));
    CHECK(mkdir(dir, 0755) == 0);
    CHECK_FAILS_WITH(clip_encoder_load_dir(&m, dir, &env.ctx, &env.weights, DT_F32, &tc->err),
                     "cannot open the text encoder's config");
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(write_text(path, "{}") == 0);
    CHECK_FAILS_WITH(clip_encoder_load_dir(&m, dir, &env.ctx, &env.weights, DT_F32, &tc->err),
                     "neither model.safetensors nor model.safetensors.index.json");
    env_free(&env, DEV_CPU);
}
