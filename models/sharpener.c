// models/sharpener.c — the DICE sharpener (see sharpener.h), built from ops so that it runs and
// trains on either device.
#include "sharpener.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/weights.h"
#include "nn/op_elementwise.h"
#include "nn/op_linear.h"
#include "nn/op_shape.h"
#include "nn/philox.h"
#include "nn/safetensors.h"
#include "nn/tensor_copy.h"

enum { FC1_W, FC1_B, TO_Q, TO_K, TO_V, TO_OUT_W, TO_OUT_B, FC2_W, FC2_B };

static const char *const param_names[SHARPENER_N_PARAMS] = {
    "fc1.weight", "fc1.bias", "attention.to_q.weight", "attention.to_k.weight", "attention.to_v.weight",
    "attention.to_out.0.weight", "attention.to_out.0.bias", "fc2.weight", "fc2.bias"};

// Shape of parameter i for the given sizes; returns its rank.
static int param_shape(int i, int d_e, int hidden, int64_t *shape) {
    switch (i) {
    case FC1_W: shape[0] = hidden, shape[1] = d_e; return 2;
    case FC1_B: shape[0] = hidden; return 1;
    case TO_Q: case TO_K: case TO_V: case TO_OUT_W: shape[0] = hidden, shape[1] = hidden; return 2;
    case TO_OUT_B: shape[0] = hidden; return 1;
    case FC2_W: shape[0] = d_e, shape[1] = hidden; return 2;
    default: shape[0] = d_e; return 1;
    }
}

// fan_in of the Linear layer parameter i belongs to (PyTorch's bias bound uses the weight's fan_in).
static int param_fan_in(int i, int d_e, int hidden) { return i == FC1_W || i == FC1_B ? d_e : hidden; }

static int check_sizes(int d_e, int hidden, int heads, DiceError *err) {
    DICE_CHECK(err, d_e > 0 && hidden > 0 && heads > 0 && hidden % heads == 0,
               "sharpener: invalid sizes (d_e %d, hidden %d, heads %d: hidden must be a multiple of heads)", d_e,
               hidden, heads);
    return 0;
}

static int alloc_params(Sharpener *s, int d_e, int hidden, int heads, Arena *persistent, DiceError *err) {
    memset(s, 0, sizeof *s);
    DICE_TRY(check_sizes(d_e, hidden, heads, err));
    s->d_e = d_e;
    s->hidden = hidden;
    s->heads = heads;
    for (int i = 0; i < SHARPENER_N_PARAMS; i++) {
        int64_t shape[2];
        int ndim = param_shape(i, d_e, hidden, shape);
        DICE_TRY(param_init(&s->params[i], param_names[i], persistent, ndim, shape, err));
    }
    return 0;
}

int sharpener_init(Sharpener *s, int d_e, int hidden, int heads, Arena *persistent, DiceCtx *ctx, uint64_t seed,
                   DiceError *err) {
    DICE_TRY(alloc_params(s, d_e, hidden, heads, persistent, err));
    uint64_t offset = 0;
    for (int i = 0; i < SHARPENER_N_PARAMS; i++) {
        Param *p = &s->params[i];
        size_t n = (size_t)tensor_numel(&p->value);
        float *host = malloc(n * sizeof *host);
        DICE_CHECK(err, host, "sharpener: out of host memory");
        philox_fill_uniform_f32(host, n, seed, offset);
        offset += n;
        float bound = 1.0f / sqrtf((float)param_fan_in(i, d_e, hidden));
        for (size_t k = 0; k < n; k++) host[k] = (2.0f * host[k] - 1.0f) * bound;
        Tensor src;
        int rc = tensor_wrap(&src, host, DT_F32, DEV_CPU, p->value.ndim, p->value.shape, err);
        if (!rc) rc = tensor_copy(ctx, &p->value, &src, err);
        free(host);
        DICE_TRY(rc);
    }
    return 0;
}

int64_t sharpener_num_params(const Sharpener *s) {
    int64_t n = 0;
    for (int i = 0; i < SHARPENER_N_PARAMS; i++) n += tensor_numel(&s->params[i].value);
    return n;
}

void sharpener_param_list(Sharpener *s, Param **out) {
    for (int i = 0; i < SHARPENER_N_PARAMS; i++) out[i] = &s->params[i];
}

// (B, N, heads*D) -> (B*heads, N, D), contiguous.
static int split_heads(Graph *g, Var *x, int heads, Var **out, DiceError *err) {
    int64_t B = x->value.shape[0], N = x->value.shape[1], D = x->value.shape[2] / heads;
    int64_t four[4] = {B, N, heads, D}, three[3] = {B * heads, N, D};
    int perm[4] = {0, 2, 1, 3};
    Var *v;
    DICE_TRY(op_reshape(g, &v, x, 4, four, err));
    DICE_TRY(op_permute(g, &v, v, perm, err));
    DICE_TRY(op_contiguous(g, &v, v, err));
    return op_reshape(g, out, v, 3, three, err);
}

// (B*heads, N, D) -> (B, N, heads*D), contiguous.
static int merge_heads(Graph *g, Var *x, int heads, Var **out, DiceError *err) {
    int64_t B = x->value.shape[0] / heads, N = x->value.shape[1], D = x->value.shape[2];
    int64_t four[4] = {B, heads, N, D}, three[3] = {B, N, heads * D};
    int perm[4] = {0, 2, 1, 3};
    Var *v;
    DICE_TRY(op_reshape(g, &v, x, 4, four, err));
    DICE_TRY(op_permute(g, &v, v, perm, err));
    DICE_TRY(op_contiguous(g, &v, v, err));
    return op_reshape(g, out, v, 3, three, err);
}

// softmax(q k^T / sqrt(D)) v per head, in the inputs' dtype (fp32 on CUDA included).
static int attention(Graph *g, Var *q, Var *k, Var *v, int heads, Var **out, DiceError *err) {
    Var *qh, *kh, *vh, *scores, *probs, *mixed;
    DICE_TRY(split_heads(g, q, heads, &qh, err));
    DICE_TRY(split_heads(g, k, heads, &kh, err));
    DICE_TRY(split_heads(g, v, heads, &vh, err));
    DICE_TRY(op_matmul(g, &scores, qh, kh, true, err));                    // (B*heads, N, Nk)
    double scale = 1.0 / sqrt((double)(q->value.shape[2] / heads));
    DICE_TRY(op_scale(g, &scores, scores, scale, 0.0, err));
    DICE_TRY(op_softmax(g, &probs, scores, err));
    DICE_TRY(op_matmul(g, &mixed, probs, vh, false, err));                 // (B*heads, N, D)
    return merge_heads(g, mixed, heads, out, err);
}

// (1, N, 1) tensor: 0 for token 0, alpha for the others.
static int token_scale(Graph *g, int64_t N, DType dtype, double alpha, Var **out, DiceError *err) {
    double *host = malloc((size_t)N * sizeof *host);
    DICE_CHECK(err, host, "sharpener: out of host memory");
    for (int64_t i = 0; i < N; i++) host[i] = i == 0 ? 0.0 : alpha;
    int64_t shape[3] = {1, N, 1};
    Tensor h64, dev;
    int rc = tensor_wrap(&h64, host, DT_F64, DEV_CPU, 3, shape, err);
    if (!rc) rc = tensor_to(g->ctx, g->arena, &dev, &h64, dtype, err);
    free(host);
    DICE_TRY(rc);
    return graph_leaf(g, out, &dev, false, err);
}

int sharpener_forward(Graph *g, Sharpener *s, Var *c, Var *c_null, double alpha, Var **c_phi, DiceError *err) {
    char a[128], b[128];
    DICE_CHECK(err, c->value.ndim == 3 && c->value.shape[2] == s->d_e && c_null->value.ndim == 3 &&
                        c_null->value.shape[0] == c->value.shape[0] && c_null->value.shape[2] == s->d_e,
               "sharpener: c %s and c_null %s must be (B, N, %d) with the same B", tensor_describe(&c->value, a, sizeof a),
               tensor_describe(&c_null->value, b, sizeof b), s->d_e);
    Var *p[SHARPENER_N_PARAMS];
    for (int i = 0; i < SHARPENER_N_PARAMS; i++) DICE_TRY(graph_param(g, &p[i], &s->params[i], err));
    Var *h1, *h2, *q, *k, *v, *mixed, *o, *r, *scale, *scaled;
    DICE_TRY(op_linear_trainable(g, &h1, c, p[FC1_W], p[FC1_B], GEMM_ACT_RELU, err));
    DICE_TRY(op_linear_trainable(g, &h2, c_null, p[FC1_W], p[FC1_B], GEMM_ACT_RELU, err));
    DICE_TRY(op_linear_trainable(g, &q, h1, p[TO_Q], NULL, GEMM_ACT_NONE, err));
    DICE_TRY(op_linear_trainable(g, &k, h2, p[TO_K], NULL, GEMM_ACT_NONE, err));
    DICE_TRY(op_linear_trainable(g, &v, h2, p[TO_V], NULL, GEMM_ACT_NONE, err));
    DICE_TRY(attention(g, q, k, v, s->heads, &mixed, err));
    DICE_TRY(op_linear_trainable(g, &o, mixed, p[TO_OUT_W], p[TO_OUT_B], GEMM_ACT_RELU, err));
    DICE_TRY(op_linear_trainable(g, &r, o, p[FC2_W], p[FC2_B], GEMM_ACT_NONE, err));
    DICE_TRY(token_scale(g, c->value.shape[1], r->value.dtype, alpha, &scale, err));
    DICE_TRY(op_mul(g, &scaled, r, scale, err));
    return op_add(g, c_phi, c, scaled, err);
}

int sharpener_save(Sharpener *s, DiceCtx *ctx, const char *path, const char *const *meta_keys,
                   const char *const *meta_values, int n_meta, DiceError *err) {
    StWriteTensor t[SHARPENER_N_PARAMS];
    float *host[SHARPENER_N_PARAMS] = {0};
    int rc = 0;
    for (int i = 0; i < SHARPENER_N_PARAMS && !rc; i++) {
        Param *p = &s->params[i];
        host[i] = malloc(tensor_nbytes(&p->value));
        if (!host[i]) {
            rc = DICE_FAIL(err, "sharpener: out of host memory");
            break;
        }
        Tensor h;
        rc = tensor_wrap(&h, host[i], DT_F32, DEV_CPU, p->value.ndim, p->value.shape, err);
        if (!rc) rc = tensor_copy(ctx, &h, &p->value, err);
        memset(&t[i], 0, sizeof t[i]);
        t[i].name = param_names[i];
        t[i].dtype = DT_F32;
        t[i].ndim = p->value.ndim;
        for (int d = 0; d < p->value.ndim; d++) t[i].shape[d] = p->value.shape[d];
        t[i].data = host[i];
    }
    if (!rc) rc = st_write(path, t, SHARPENER_N_PARAMS, meta_keys, meta_values, n_meta, err);
    for (int i = 0; i < SHARPENER_N_PARAMS; i++) free(host[i]);
    return rc;
}

int sharpener_load(Sharpener *s, const char *path, Arena *persistent, DiceCtx *ctx, DiceError *err) {
    StFile f;
    DICE_TRY(st_open(&f, path, err));
    const StTensorInfo *fc1 = st_find(&f, "fc1.weight");
    const char *heads_text = st_meta(&f, "heads");
    int rc = fc1 && fc1->ndim == 2 ? 0 : DICE_FAIL(err, "%s: no 2-d fc1.weight: not a DICE sharpener", path);
    int hidden = rc ? 0 : (int)fc1->shape[0], d_e = rc ? 0 : (int)fc1->shape[1];
    int heads = heads_text ? atoi(heads_text) : 8;
    st_close(&f);
    DICE_TRY(rc);
    DICE_TRY(alloc_params(s, d_e, hidden, heads, persistent, err));
    DiceCtx cpu;
    ctx_init_cpu(&cpu);
    Arena staging;
    DICE_TRY(arena_init(&staging, "sharpener staging", DEV_CPU, 1 << 20, 0, err));
    Weights w;
    rc = weights_open(&w, &path, 1, &cpu, &staging, DT_F32, err);
    for (int i = 0; i < SHARPENER_N_PARAMS && !rc; i++) {
        Param *p = &s->params[i];
        Tensor t;
        rc = weights_get(&w, &t, param_names[i], p->value.ndim, p->value.shape, NULL, err);
        if (!rc) rc = tensor_copy(ctx, &p->value, &t, err);
    }
    if (!rc) rc = weights_finish(&w, err);
    if (w.files) weights_close(&w);
    arena_free(&staging);
    return rc;
}
