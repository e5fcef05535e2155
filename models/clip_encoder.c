// models/clip_encoder.c — the CLIP text encoder: loading its weights, the forward pass through the op layer
// (pre-LN transformer layers with causal self-attention), pooling, the projection, and prompts to conditioning
// (see clip_encoder.h).
#include "clip_encoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "nn/tensor_copy.h"

enum { ENCODE_CHUNK = 8 };  // prompts encoded at once by clip_encode_prompts

// A (d0, d1) tensor, or a (d0) one when d1 is 0.
static int get(Weights *w, Tensor *out, const char *name, int64_t d0, int64_t d1, DiceError *err) {
    int64_t shape[2] = {d0, d1};
    return weights_get(w, out, name, d1 ? 2 : 1, shape, NULL, err);
}

static int load_layer(Weights *w, ClipEncoderLayer *l, int i, const ClipEncoderConfig *c, DiceError *err) {
    int64_t C = c->hidden_size, F = c->intermediate_size;
    char name[160], p[64];
    snprintf(p, sizeof p, "text_model.encoder.layers.%d", i);
    struct {
        Tensor *t;
        const char *suffix;
        int64_t d0, d1;
    } items[] = {
        {&l->ln1_w, "layer_norm1.weight", C, 0}, {&l->ln1_b, "layer_norm1.bias", C, 0},
        {&l->q_w, "self_attn.q_proj.weight", C, C}, {&l->q_b, "self_attn.q_proj.bias", C, 0},
        {&l->k_w, "self_attn.k_proj.weight", C, C}, {&l->k_b, "self_attn.k_proj.bias", C, 0},
        {&l->v_w, "self_attn.v_proj.weight", C, C}, {&l->v_b, "self_attn.v_proj.bias", C, 0},
        {&l->o_w, "self_attn.out_proj.weight", C, C}, {&l->o_b, "self_attn.out_proj.bias", C, 0},
        {&l->ln2_w, "layer_norm2.weight", C, 0}, {&l->ln2_b, "layer_norm2.bias", C, 0},
        {&l->fc1_w, "mlp.fc1.weight", F, C}, {&l->fc1_b, "mlp.fc1.bias", F, 0},
        {&l->fc2_w, "mlp.fc2.weight", C, F}, {&l->fc2_b, "mlp.fc2.bias", C, 0},
    };
    for (size_t k = 0; k < sizeof items / sizeof items[0]; k++) {
        snprintf(name, sizeof name, "%s.%s", p, items[k].suffix);
        DICE_TRY(get(w, items[k].t, name, items[k].d0, items[k].d1, err));
    }
    return 0;
}

// text_model.embeddings.position_ids: a persistent buffer in checkpoints written before transformers 4.31,
// ignored by transformers when loading (positions are always 0 .. N-1). Marked as used, whatever its shape, so
// it is not reported as unexpected; dice does not keep it (so it is not in the manifest either).
static const char POSITION_IDS[] = "text_model.embeddings.position_ids";

int clip_encoder_load(ClipEncoder *m, const ClipEncoderConfig *cfg, Weights *w, DiceError *err) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->device = w->arena->device;
    m->dtype = w->dtype;
    int64_t C = cfg->hidden_size;
    m->layers = calloc((size_t)cfg->num_layers, sizeof *m->layers);
    DICE_CHECK(err, m->layers, "clip text encoder: out of host memory");
    int rc = get(w, &m->token_embedding, "text_model.embeddings.token_embedding.weight", cfg->vocab_size, C, err);
    if (!rc) rc = get(w, &m->position_embedding, "text_model.embeddings.position_embedding.weight",
                      cfg->max_positions, C, err);
    for (int i = 0; i < cfg->num_layers && !rc; i++) rc = load_layer(w, &m->layers[i], i, cfg, err);
    if (!rc) rc = get(w, &m->final_ln_w, "text_model.final_layer_norm.weight", C, 0, err);
    if (!rc) rc = get(w, &m->final_ln_b, "text_model.final_layer_norm.bias", C, 0, err);
    m->with_projection = cfg->arch == CLIP_ARCH_WITH_PROJECTION ||
                         (cfg->arch == CLIP_ARCH_UNSPECIFIED && weights_has(w, "text_projection.weight"));
    if (!rc && m->with_projection)
        rc = get(w, &m->text_projection, "text_projection.weight", cfg->projection_dim, C, err);
    if (!rc) weights_mark_used(w, POSITION_IDS);
    if (rc) clip_encoder_free(m);
    return rc;
}

// The checkpoint files of a transformers folder: model.safetensors, or the shards an index names.
static int folder_files(const char *dir, char ***paths, int *n, DiceError *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "rb");
    if (f) {
        fclose(f);
        *paths = malloc(sizeof **paths);
        DICE_CHECK(err, *paths && ((*paths)[0] = strdup(path)), "clip text encoder: out of host memory");
        *n = 1;
        return 0;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    f = fopen(path, "rb");
    DICE_CHECK(err, f, "%s: neither model.safetensors nor model.safetensors.index.json is there (a .bin pickle "
               "checkpoint can be converted with transformers' save_pretrained(..., safe_serialization=True))", dir);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = size >= 0 ? malloc((size_t)size + 1) : NULL;
    size_t got = text ? fread(text, 1, (size_t)size, f) : 0;
    fclose(f);
    DICE_CHECK(err, text, "%s: cannot read it", path);
    text[got] = 0;
    cJSON *root = cJSON_Parse(text);
    free(text);
    DICE_CHECK(err, root, "%s: not valid JSON", path);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    int rc = cJSON_IsObject(map) ? 0 : DICE_FAIL(err, "%s: no \"weight_map\" object", path);
    *paths = NULL;
    *n = 0;
    for (const cJSON *e = rc ? NULL : map->child; e && !rc; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) {
            char name[96];
            st_printable(name, sizeof name, e->string);
            rc = DICE_FAIL(err, "%s: weight_map entry %s is not a file name in the folder", path, name);
            break;
        }
        char shard[4096];
        snprintf(shard, sizeof shard, "%s/%s", dir, e->valuestring);
        bool seen = false;
        for (int k = 0; k < *n && !seen; k++) seen = !strcmp((*paths)[k], shard);
        if (seen) continue;
        char **p = realloc(*paths, (size_t)(*n + 1) * sizeof *p);
        if (!p || !(p[*n] = strdup(shard))) rc = DICE_FAIL(err, "clip text encoder: out of host memory");
        if (p) *paths = p;
        if (!rc) (*n)++;
    }
    if (!rc && *n == 0) rc = DICE_FAIL(err, "%s: weight_map names no file", path);
    cJSON_Delete(root);
    return rc;
}

// transformers 5 saves CLIPTextModel without the "text_model." prefix (its CLIPTextModel no longer wraps a
// CLIPTextTransformer); the canonical names keep it, as in every checkpoint saved by transformers 4.
static const char *strip_text_model(const char *canonical, char *buf, size_t bufsize, void *user) {
    (void)user;
    const char *prefix = "text_model.";
    size_t n = strlen(prefix);
    snprintf(buf, bufsize, "%s", strncmp(canonical, prefix, n) ? canonical : canonical + n);
    return buf;
}

int clip_encoder_load_dir(ClipEncoder *m, const char *dir, DiceCtx *ctx, Arena *arena, DType dtype, DiceError *err) {
    memset(m, 0, sizeof *m);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    ClipEncoderConfig cfg;
    DICE_TRY(clip_encoder_config_load(&cfg, path, err));
    char **paths = NULL;
    int n = 0;
    int rc = folder_files(dir, &paths, &n, err);
    Weights w;
    bool open = !rc && !weights_open(&w, (const char *const *)paths, n, ctx, arena, dtype, err);
    if (!rc && !open) rc = -1;
    if (!rc && !weights_has(&w, "text_model.embeddings.token_embedding.weight") &&
        weights_has(&w, "embeddings.token_embedding.weight"))
        weights_set_names(&w, strip_text_model, NULL);
    if (!rc) rc = clip_encoder_load(m, &cfg, &w, err);
    if (!rc && weights_finish(&w, err)) {
        clip_encoder_free(m);
        rc = -1;
    }
    if (open) weights_close(&w);
    for (int k = 0; k < n; k++) free(paths[k]);
    free(paths);
    return rc;
}

void clip_encoder_free(ClipEncoder *m) {
    free(m->layers);
    m->layers = NULL;
}

int clip_encoder_pool_index(const ClipEncoderConfig *cfg, const int32_t *ids, int n) {
    int best = 0;
    for (int i = 0; i < n; i++) {
        if (cfg->eos_token_id == 2) {
            if (ids[i] > ids[best]) best = i;  // torch.argmax: the first of equal maxima
        } else if (ids[i] == cfg->eos_token_id) {
            return i;
        }
    }
    return best;
}

int clip_encoder_pooled_dim(const ClipEncoder *m) {
    return m->with_projection ? m->cfg.projection_dim : m->cfg.hidden_size;
}

static int check_ids(const ClipEncoder *m, const Tensor *ids, DiceError *err) {
    char d[96];
    DICE_CHECK(err, ids->ndim == 2 && ids->dtype == DT_I32 && ids->device == DEV_CPU && tensor_is_contiguous(ids),
               "clip text encoder: ids %s must be a contiguous (B, N) i32 tensor on the CPU",
               tensor_describe(ids, d, sizeof d));
    DICE_CHECK(err, ids->shape[1] >= 1 && ids->shape[1] <= m->cfg.max_positions,
               "clip text encoder: %lld tokens, but max_position_embeddings is %d", (long long)ids->shape[1],
               m->cfg.max_positions);
    return 0;
}

int clip_encoder_embed(Graph *g, const ClipEncoder *m, const Tensor *ids, Var **out, DiceError *err) {
    DICE_TRY(check_ids(m, ids, err));
    return op_token_embedding(g, out, ids, &m->token_embedding, &m->position_embedding, err);
}

// One pre-LN transformer layer: x + attn(ln1(x)), then + mlp(ln2(...)). x, *out (B, N, C).
static int layer_forward(Graph *g, const ClipEncoder *m, const ClipEncoderLayer *l, Var *x, Var **out,
                         DiceError *err) {
    const ClipEncoderConfig *c = &m->cfg;
    Var *h, *q, *k, *v, *a, *o, *r, *f;
    DICE_TRY(op_layer_norm(g, &h, x, &l->ln1_w, &l->ln1_b, c->layer_norm_eps, err));
    DICE_TRY(op_linear(g, &q, h, &l->q_w, &l->q_b, GEMM_ACT_NONE, err));
    DICE_TRY(op_linear(g, &k, h, &l->k_w, &l->k_b, GEMM_ACT_NONE, err));
    DICE_TRY(op_linear(g, &v, h, &l->v_w, &l->v_b, GEMM_ACT_NONE, err));
    float scale = 1.0f / sqrtf((float)(c->hidden_size / c->num_heads));
    DICE_TRY(op_attention(g, &a, q, k, v, c->num_heads, scale, true, NULL, err));
    DICE_TRY(op_linear(g, &o, a, &l->o_w, &l->o_b, GEMM_ACT_NONE, err));
    DICE_TRY(op_add(g, &r, x, o, err));
    DICE_TRY(op_layer_norm(g, &h, r, &l->ln2_w, &l->ln2_b, c->layer_norm_eps, err));
    if (c->act == CLIP_ACT_GELU) {
        DICE_TRY(op_linear(g, &f, h, &l->fc1_w, &l->fc1_b, GEMM_ACT_GELU_ERF, err));  // (B, N, F)
    } else {
        DICE_TRY(op_linear(g, &f, h, &l->fc1_w, &l->fc1_b, GEMM_ACT_NONE, err));
        DICE_TRY(op_quick_gelu(g, &f, f, err));
    }
    DICE_TRY(op_linear(g, &f, f, &l->fc2_w, &l->fc2_b, GEMM_ACT_NONE, err));
    return op_add(g, out, r, f, err);
}

// pooled (B, C) = last (B, N, C) at each row's pool index, as a product with one-hot rows (B, 1, N): exact
// (one nonzero term per output) and differentiable through the op layer.
static int pool(Graph *g, const ClipEncoder *m, Var *last, const Tensor *ids, Var **out, DiceError *err) {
    int64_t B = ids->shape[0], N = ids->shape[1], C = m->cfg.hidden_size;
    float *onehot = calloc((size_t)(B * N), sizeof *onehot);
    DICE_CHECK(err, onehot, "clip text encoder: out of host memory");
    for (int64_t b = 0; b < B; b++)
        onehot[b * N + clip_encoder_pool_index(&m->cfg, (const int32_t *)ids->data + b * N, (int)N)] = 1.0f;
    Tensor host, sel;
    int rc = tensor_wrap(&host, onehot, DT_F32, DEV_CPU, 3, (int64_t[]){B, 1, N}, err);
    if (!rc) rc = tensor_to(g->ctx, g->arena, &sel, &host, m->dtype, err);
    free(onehot);
    DICE_TRY(rc);
    Var *s, *p;
    DICE_TRY(graph_leaf(g, &s, &sel, false, err));
    DICE_TRY(op_matmul(g, &p, s, last, false, err));  // (B, 1, C)
    return op_reshape(g, out, p, 2, (int64_t[]){B, C}, err);
}

int clip_encoder_run(Graph *g, const ClipEncoder *m, Var *x, const Tensor *ids, int hidden_index,
                     ClipEncoderOutput *out, DiceError *err) {
    const ClipEncoderConfig *c = &m->cfg;
    Var **all = out->hidden_states;
    *out = (ClipEncoderOutput){.hidden_states = all};
    int L = c->num_layers, idx = hidden_index < 0 ? hidden_index + L + 1 : hidden_index;
    bool last_state = hidden_index == CLIP_LAST_HIDDEN_STATE;
    DICE_CHECK(err, last_state || (idx >= 0 && idx <= L),
               "clip text encoder: hidden state %d does not exist (the model has %d layers: 0 .. %d, or -%d .. -1)",
               hidden_index, L, L, L + 1);
    char d[96];
    DICE_CHECK(err, x->value.ndim == 3 && x->value.shape[2] == c->hidden_size && x->value.dtype == m->dtype,
               "clip text encoder: input %s is not (B, N, %d) %s", tensor_describe(&x->value, d, sizeof d),
               c->hidden_size, dtype_name(m->dtype));
    if (ids) {
        DICE_TRY(check_ids(m, ids, err));
        DICE_CHECK(err, ids->shape[0] == x->value.shape[0] && ids->shape[1] == x->value.shape[1],
                   "clip text encoder: ids (%lld, %lld) do not match the input %s", (long long)ids->shape[0],
                   (long long)ids->shape[1], tensor_describe(&x->value, d, sizeof d));
    }
    bool need_last = last_state || ids;
    int run = need_last ? L : idx;
    if (all)
        for (int i = 0; i <= L; i++) all[i] = NULL;
    Var *h = x;
    for (int i = 0; i <= run; i++) {
        if (i > 0) DICE_TRY(layer_forward(g, m, &m->layers[i - 1], h, &h, err));
        if (all) all[i] = h;
        if (i == idx) out->hidden = h;
    }
    if (!need_last) return 0;
    DICE_TRY(op_layer_norm(g, &out->last_hidden_state, h, &m->final_ln_w, &m->final_ln_b, c->layer_norm_eps, err));
    if (last_state) out->hidden = out->last_hidden_state;
    if (!ids) return 0;
    DICE_TRY(pool(g, m, out->last_hidden_state, ids, &out->pooled, err));
    if (m->with_projection)
        DICE_TRY(op_linear(g, &out->text_embeds, out->pooled, &m->text_projection, NULL, GEMM_ACT_NONE, err));
    return 0;
}

int clip_encoder_forward(Graph *g, const ClipEncoder *m, const Tensor *ids, int hidden_index, ClipEncoderOutput *out,
                         DiceError *err) {
    Var *x;
    DICE_TRY(clip_encoder_embed(g, m, ids, &x, err));
    return clip_encoder_run(g, m, x, ids, hidden_index, out, err);
}

// Checks a caller's output tensor: contiguous (n, rest...) of a float dtype on `device`.
static int check_out(const Tensor *t, const char *what, Device device, int ndim, const int64_t *shape,
                     DiceError *err) {
    char d[96];
    bool ok = t->ndim == ndim && t->device == device && dtype_is_float(t->dtype) && tensor_is_contiguous(t);
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    DICE_CHECK(err, ok, "clip_encode_prompts: %s %s must be a contiguous float tensor of shape (%lld, %lld%s) on %s",
               what, tensor_describe(t, d, sizeof d), (long long)shape[0], (long long)shape[1],
               ndim == 3 ? ", C" : "", device_name(device));
    return 0;
}

// Encodes prompts [first, first + count) and copies the selected outputs into those rows of the outputs.
static int encode_chunk(Graph *g, const ClipEncoder *m, const ClipTokenizer *tok, const char *const *prompts,
                        int first, int count, int hidden_index, Tensor *out_hidden, Tensor *out_pooled,
                        DiceError *err) {
    int32_t *ids = malloc((size_t)count * (size_t)tok->max_length * sizeof *ids);
    DICE_CHECK(err, ids, "clip_encode_prompts: out of host memory");
    int rc = 0;
    for (int i = 0; i < count && !rc; i++) {
        rc = clip_tokenizer_encode(tok, prompts[first + i], ids + (size_t)i * (size_t)tok->max_length, NULL, NULL,
                                   err);
        if (rc) dice_error_context(err, "prompt %d", first + i);
    }
    Tensor ids_t, rows;
    Var *x;
    ClipEncoderOutput o = {0};
    if (!rc) rc = tensor_wrap(&ids_t, ids, DT_I32, DEV_CPU, 2, (int64_t[]){count, tok->max_length}, err);
    if (!rc) rc = clip_encoder_embed(g, m, &ids_t, &x, err);
    if (!rc) rc = clip_encoder_run(g, m, x, out_pooled ? &ids_t : NULL, hidden_index, &o, err);
    if (!rc && out_hidden) rc = tensor_narrow(&rows, out_hidden, 0, first, count, err);
    if (!rc && out_hidden) rc = tensor_copy(g->ctx, &rows, &o.hidden->value, err);
    if (!rc && out_pooled) rc = tensor_narrow(&rows, out_pooled, 0, first, count, err);
    if (!rc && out_pooled)
        rc = tensor_copy(g->ctx, &rows, &(m->with_projection ? o.text_embeds : o.pooled)->value, err);
    free(ids);
    return rc;
}

int clip_encode_prompts(DiceCtx *ctx, Arena *scratch, const ClipEncoder *m, const ClipTokenizer *tok,
                        const char *const *prompts, int n, int hidden_index, Tensor *out_hidden, Tensor *out_pooled,
                        DiceError *err) {
    DICE_CHECK(err, n >= 1, "clip_encode_prompts: %d prompts", n);
    DICE_CHECK(err, out_hidden || out_pooled, "clip_encode_prompts: no output asked for");
    DICE_CHECK(err, ctx->device == m->device && scratch->device == m->device,
               "clip_encode_prompts: the model is on %s, the context on %s and the scratch arena on %s",
               device_name(m->device), device_name(ctx->device), device_name(scratch->device));
    DICE_CHECK(err, tok->max_length <= m->cfg.max_positions,
               "clip_encode_prompts: the tokenizer's max_length %d exceeds the model's max_position_embeddings %d",
               tok->max_length, m->cfg.max_positions);
    if (out_hidden)
        DICE_TRY(check_out(out_hidden, "out_hidden", m->device, 3,
                           (int64_t[]){n, tok->max_length, m->cfg.hidden_size}, err));
    if (out_pooled)
        DICE_TRY(check_out(out_pooled, "out_pooled", m->device, 2, (int64_t[]){n, clip_encoder_pooled_dim(m)}, err));
    Graph g;
    DICE_TRY(graph_init(&g, ctx, scratch, err));
    graph_no_grad_begin(&g);
    if (!out_hidden) hidden_index = CLIP_LAST_HIDDEN_STATE;  // only the pooled output is wanted
    int rc = 0;
    for (int first = 0; first < n && !rc; first += ENCODE_CHUNK) {
        ArenaMark mark = arena_mark(scratch);
        int count = n - first < ENCODE_CHUNK ? n - first : ENCODE_CHUNK;
        rc = encode_chunk(&g, m, tok, prompts, first, count, hidden_index, out_hidden, out_pooled, err);
        graph_reset(&g);
        arena_release(scratch, mark);
    }
    graph_free(&g);
    return rc;
}
