// models/vae_blocks.c — the VAE's building blocks on the op layer, NHWC: ResnetBlock2D without a time
// embedding, the mid block's single-head self-attention, Downsample2D (asymmetric zero pad, conv stride 2),
// Upsample2D (nearest 2x, conv3x3), UNetMidBlock2D; and their weight loaders (diffusers' names).
// Each resnet / attention / resampling block runs through graph_checkpoint when the graph has a scratch
// arena (models/vae.h, "Memory"); the checkpointed body runs in a sub-graph without one, so it runs plainly.
#include <math.h>
#include <stdio.h>

#include "kernels/attention.h"  // ATTENTION_MAX_HEAD_DIM_CUDA
#include "models/vae.h"
#include "nn/tensor_copy.h"

// ---------------------------------------------------------------- loaders

int vae_conv_load(Weights *w, VaeConv *c, const char *prefix, int cin, int cout, int k, DiceError *err) {
    char name[256];
    int ohwi[4] = {0, 2, 3, 1};
    snprintf(name, sizeof name, "%s.weight", prefix);
    DICE_TRY(weights_get(w, &c->weight, name, 4, (int64_t[]){cout, cin, k, k}, ohwi, err));
    snprintf(name, sizeof name, "%s.bias", prefix);
    return weights_get(w, &c->bias, name, 1, (int64_t[]){cout}, NULL, err);
}

int vae_norm_load(Weights *w, VaeNorm *n, const char *prefix, int channels, int groups, DiceError *err) {
    char name[256];
    n->groups = groups;
    snprintf(name, sizeof name, "%s.weight", prefix);
    DICE_TRY(weights_get(w, &n->weight, name, 1, (int64_t[]){channels}, NULL, err));
    snprintf(name, sizeof name, "%s.bias", prefix);
    return weights_get(w, &n->bias, name, 1, (int64_t[]){channels}, NULL, err);
}

int vae_resnet_load(Weights *w, VaeResnet *r, const char *prefix, int cin, int cout, int groups, DiceError *err) {
    char name[256];
    snprintf(name, sizeof name, "%s.norm1", prefix);
    DICE_TRY(vae_norm_load(w, &r->norm1, name, cin, groups, err));
    snprintf(name, sizeof name, "%s.conv1", prefix);
    DICE_TRY(vae_conv_load(w, &r->conv1, name, cin, cout, 3, err));
    snprintf(name, sizeof name, "%s.norm2", prefix);
    DICE_TRY(vae_norm_load(w, &r->norm2, name, cout, groups, err));
    snprintf(name, sizeof name, "%s.conv2", prefix);
    DICE_TRY(vae_conv_load(w, &r->conv2, name, cout, cout, 3, err));
    r->has_shortcut = cin != cout;
    if (!r->has_shortcut) return 0;
    snprintf(name, sizeof name, "%s.conv_shortcut", prefix);
    return vae_conv_load(w, &r->shortcut, name, cin, cout, 1, err);
}

// prefix.which.{weight,bias} (C, C), (C); files saved by diffusers before 0.14 (SD1.5's vae/ among them) name the
// mid attention's projections query / key / value / proj_attn, which diffusers renames at load: so does dice,
// tensor by tensor, when the file has the old name and not the new one.
static int linear_load(Weights *w, Tensor *weight, Tensor *bias, const char *prefix, const char *which,
                       const char *deprecated, int c, DiceError *err) {
    const char *part[2] = {"weight", "bias"};
    Tensor *out[2] = {weight, bias};
    for (int i = 0; i < 2; i++) {
        char name[256], old[256];
        snprintf(name, sizeof name, "%s.%s.%s", prefix, which, part[i]);
        snprintf(old, sizeof old, "%s.%s.%s", prefix, deprecated, part[i]);
        bool use_old = !weights_has(w, name) && weights_has(w, old);
        DICE_TRY(weights_get(w, out[i], use_old ? old : name, 2 - i, (int64_t[]){c, c}, NULL, err));
    }
    return 0;
}

int vae_attention_load(Weights *w, VaeAttention *a, const char *prefix, int channels, int groups, DiceError *err) {
    char name[256];
    snprintf(name, sizeof name, "%s.group_norm", prefix);
    DICE_TRY(vae_norm_load(w, &a->norm, name, channels, groups, err));
    DICE_TRY(linear_load(w, &a->q_w, &a->q_b, prefix, "to_q", "query", channels, err));
    DICE_TRY(linear_load(w, &a->k_w, &a->k_b, prefix, "to_k", "key", channels, err));
    DICE_TRY(linear_load(w, &a->v_w, &a->v_b, prefix, "to_v", "value", channels, err));
    DICE_TRY(linear_load(w, &a->o_w, &a->o_b, prefix, "to_out.0", "proj_attn", channels, err));
    bool fused = w->arena->device == DEV_CPU || (channels % 8 == 0 && channels <= ATTENTION_MAX_HEAD_DIM_CUDA);
    a->path = fused ? VAE_ATTN_FUSED : VAE_ATTN_MATMUL;
    return 0;
}

int vae_mid_load(Weights *w, VaeMidBlock *m, const char *prefix, int channels, int groups, bool attention,
                 DiceError *err) {
    char name[256];
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s.resnets.%d", prefix, i);
        DICE_TRY(vae_resnet_load(w, &m->resnets[i], name, channels, channels, groups, err));
    }
    m->has_attention = attention;
    if (!attention) return 0;
    snprintf(name, sizeof name, "%s.attentions.0", prefix);
    return vae_attention_load(w, &m->attn, name, channels, groups, err);
}

// ---------------------------------------------------------------- forward passes

// Runs body(g, x) as one checkpointed block when g has a scratch arena, plainly otherwise.
static int run_block(Graph *g, CheckpointFn body, const void *user, Var *x, Var **out, DiceError *err) {
    if (g->scratch) return graph_checkpoint(g, body, (void *)user, &x, 1, out, err);
    return body(g, &x, out, (void *)user, err);
}

static int conv(Graph *g, const VaeConv *c, Var *x, int stride, int padding, Var **out, DiceError *err) {
    return op_conv2d(g, out, x, &c->weight, &c->bias, stride, padding, err);
}

static int norm(Graph *g, const VaeNorm *n, Var *x, bool silu, Var **out, DiceError *err) {
    return op_group_norm(g, out, x, &n->weight, &n->bias, n->groups, VAE_NORM_EPS, silu, err);
}

static int resnet_body(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    const VaeResnet *r = user;
    Var *x = in[0], *h, *skip = x;                           // x (B, H, W, Cin)
    DICE_TRY(norm(g, &r->norm1, x, true, &h, err));
    DICE_TRY(conv(g, &r->conv1, h, 1, 1, &h, err));          // (B, H, W, Cout)
    DICE_TRY(norm(g, &r->norm2, h, true, &h, err));
    DICE_TRY(conv(g, &r->conv2, h, 1, 1, &h, err));
    if (r->has_shortcut) DICE_TRY(conv(g, &r->shortcut, x, 1, 0, &skip, err));
    return op_add(g, out, skip, h, err);                     // (B, H, W, Cout)
}

int vae_resnet_forward(Graph *g, const VaeResnet *r, Var *x, Var **out, DiceError *err) {
    return run_block(g, resnet_body, r, x, out, err);
}

// softmax(q k^T / sqrt C) v with explicit products in f32 (bf16 scores would round logits of size 10 by
// 0.04): q, k, v (B, N, C) -> (B, N, C) in their dtype.
static int attention_matmul(Graph *g, Var *q, Var *k, Var *v, Var **out, DiceError *err) {
    DType dt = q->value.dtype;
    bool cast = dt == DT_BF16 || dt == DT_F16;
    if (cast) {
        DICE_TRY(op_cast(g, &q, q, DT_F32, err));
        DICE_TRY(op_cast(g, &k, k, DT_F32, err));
        DICE_TRY(op_cast(g, &v, v, DT_F32, err));
    }
    Var *s, *o;
    DICE_TRY(op_matmul(g, &s, q, k, true, err));             // (B, N, N)
    DICE_TRY(op_scale(g, &s, s, 1.0 / sqrt((double)q->value.shape[2]), 0.0, err));
    DICE_TRY(op_softmax(g, &s, s, err));
    DICE_TRY(op_matmul(g, &o, s, v, false, err));            // (B, N, C)
    if (!cast) {
        *out = o;
        return 0;
    }
    return op_cast(g, out, o, dt, err);
}

static int attention_body(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    const VaeAttention *a = user;
    Var *x = in[0], *h, *q, *k, *v, *o;                      // x (B, H, W, C)
    const int64_t *xs = x->value.shape;
    int64_t tokens[3] = {xs[0], xs[1] * xs[2], xs[3]};
    DICE_TRY(norm(g, &a->norm, x, false, &h, err));
    DICE_TRY(op_reshape(g, &h, h, 3, tokens, err));           // (B, H*W, C)
    DICE_TRY(op_linear(g, &q, h, &a->q_w, &a->q_b, GEMM_ACT_NONE, err));
    DICE_TRY(op_linear(g, &k, h, &a->k_w, &a->k_b, GEMM_ACT_NONE, err));
    DICE_TRY(op_linear(g, &v, h, &a->v_w, &a->v_b, GEMM_ACT_NONE, err));
    if (a->path == VAE_ATTN_FUSED)
        DICE_TRY(op_attention(g, &o, q, k, v, 1, (float)(1.0 / sqrt((double)xs[3])), false, NULL, err));
    else
        DICE_TRY(attention_matmul(g, q, k, v, &o, err));
    DICE_TRY(op_linear(g, &o, o, &a->o_w, &a->o_b, GEMM_ACT_NONE, err));
    DICE_TRY(op_reshape(g, &o, o, 4, xs, err));               // (B, H, W, C)
    return op_add(g, out, x, o, err);
}

int vae_attention_forward(Graph *g, const VaeAttention *a, Var *x, Var **out, DiceError *err) {
    return run_block(g, attention_body, a, x, out, err);
}

int vae_mid_forward(Graph *g, const VaeMidBlock *m, Var *x, Var **out, DiceError *err) {
    DICE_TRY(vae_resnet_forward(g, &m->resnets[0], x, &x, err));
    if (m->has_attention) DICE_TRY(vae_attention_forward(g, &m->attn, x, &x, err));
    return vae_resnet_forward(g, &m->resnets[1], x, out, err);
}

// x (rows, n) -> (rows, n + extra) with zeros appended: one op_concat with a zero tensor.
static int append_zeros(Graph *g, Var *x, int64_t extra, Var **out, DiceError *err) {
    Var *zeros;
    int64_t shape[2] = {x->value.shape[0], extra};
    DICE_TRY(graph_new_var(g, &zeros, x->value.dtype, 2, shape, NULL, 0, err));
    DICE_TRY(tensor_zero(g->ctx, &zeros->value, err));
    Var *parts[2] = {x, zeros};
    return op_concat(g, out, parts, 2, err);
}

// Downsample2D(padding=0): F.pad(x, (0, 1, 0, 1)) then conv3x3 stride 2 padding 0. In NHWC a zero column on the
// right is C zeros after each row's W*C values, a zero row at the bottom (W+1)*C zeros after each image.
static int downsample_body(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    const VaeConv *c = user;
    Var *x = in[0], *h;                                      // x (B, H, W, C)
    int64_t B = x->value.shape[0], H = x->value.shape[1], W = x->value.shape[2], C = x->value.shape[3];
    char d[64];
    DICE_CHECK(err, H >= 2 && W >= 2, "VAE downsample: input %s is smaller than 2x2",
               tensor_describe(&x->value, d, sizeof d));
    DICE_TRY(op_reshape(g, &h, x, 2, (int64_t[]){B * H, W * C}, err));
    DICE_TRY(append_zeros(g, h, C, &h, err));                // (B*H, (W+1)*C)
    DICE_TRY(op_reshape(g, &h, h, 2, (int64_t[]){B, H * (W + 1) * C}, err));
    DICE_TRY(append_zeros(g, h, (W + 1) * C, &h, err));      // (B, (H+1)*(W+1)*C)
    DICE_TRY(op_reshape(g, &h, h, 4, (int64_t[]){B, H + 1, W + 1, C}, err));
    return conv(g, c, h, 2, 0, out, err);                    // (B, H/2, W/2, C)
}

int vae_downsample_forward(Graph *g, const VaeConv *c, Var *x, Var **out, DiceError *err) {
    return run_block(g, downsample_body, c, x, out, err);
}

static int upsample_body(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    Var *h;
    DICE_TRY(op_upsample2x(g, &h, in[0], err));              // (B, 2H, 2W, C)
    return conv(g, user, h, 1, 1, out, err);
}

int vae_upsample_forward(Graph *g, const VaeConv *c, Var *x, Var **out, DiceError *err) {
    return run_block(g, upsample_body, c, x, out, err);
}
