// models/unet_blocks.c — the UNet's building blocks, loaded by diffusers' names and run through the op layer:
// ResnetBlock2D, Transformer2DModel with BasicTransformerBlocks, Downsample2D and Upsample2D.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "unet.h"

static const int OHWI[4] = {0, 2, 3, 1};

// "prefix.name.suffix", or "name.suffix" for an empty prefix (the model's top-level modules).
static const char *tensor_name(char *buf, size_t cap, const char *prefix, const char *name, const char *suffix) {
    snprintf(buf, cap, "%s%s%s%s%s", prefix, *prefix ? "." : "", name, *suffix ? "." : "", suffix);
    return buf;
}

int unet_get_conv(Weights *w, Tensor *wt, Tensor *b, int64_t cout, int64_t cin, int64_t k, const char *prefix,
                  const char *name, DiceError *err) {
    int64_t shape[4] = {cout, cin, k, k};
    char full[512];
    DICE_TRY(weights_get(w, wt, tensor_name(full, sizeof full, prefix, name, "weight"), 4, shape, OHWI, err));
    return weights_get(w, b, tensor_name(full, sizeof full, prefix, name, "bias"), 1, shape, NULL, err);
}

int unet_get_matrix(Weights *w, Tensor *wt, Tensor *b, int64_t out, int64_t in, bool conv1x1, const char *prefix,
                    const char *name, DiceError *err) {
    int64_t shape[4] = {out, in, 1, 1};
    char full[512];
    DICE_TRY(weights_get(w, wt, tensor_name(full, sizeof full, prefix, name, "weight"), conv1x1 ? 4 : 2, shape,
                         NULL, err));
    DICE_TRY(tensor_reshape(wt, wt, 2, shape, err));
    if (!b) return 0;
    return weights_get(w, b, tensor_name(full, sizeof full, prefix, name, "bias"), 1, shape, NULL, err);
}

int unet_get_vector(Weights *w, Tensor *out, int64_t n, const char *prefix, const char *name, DiceError *err) {
    char full[512];
    return weights_get(w, out, tensor_name(full, sizeof full, prefix, name, ""), 1, &n, NULL, err);
}

int unet_resnet_load(UnetResnet *r, Weights *w, const char *prefix, int64_t cin, int64_t cout, int64_t temb,
                     const UnetConfig *cfg, DiceError *err) {
    r->cin = cin;
    r->cout = cout;
    r->groups = cfg->norm_num_groups;
    r->eps = cfg->norm_eps;
    DICE_TRY(unet_get_vector(w, &r->norm1_w, cin, prefix, "norm1.weight", err));
    DICE_TRY(unet_get_vector(w, &r->norm1_b, cin, prefix, "norm1.bias", err));
    DICE_TRY(unet_get_conv(w, &r->conv1_w, &r->conv1_b, cout, cin, 3, prefix, "conv1", err));
    DICE_TRY(unet_get_matrix(w, &r->time_w, &r->time_b, cout, temb, false, prefix, "time_emb_proj", err));
    DICE_TRY(unet_get_vector(w, &r->norm2_w, cout, prefix, "norm2.weight", err));
    DICE_TRY(unet_get_vector(w, &r->norm2_b, cout, prefix, "norm2.bias", err));
    DICE_TRY(unet_get_conv(w, &r->conv2_w, &r->conv2_b, cout, cout, 3, prefix, "conv2", err));
    r->has_shortcut = cin != cout;
    if (r->has_shortcut) DICE_TRY(unet_get_matrix(w, &r->shortcut_w, &r->shortcut_b, cout, cin, true, prefix,
                                             "conv_shortcut", err));
    return 0;
}

static int attention_load(UnetAttention *a, Weights *w, const char *prefix, int64_t inner, int64_t kv_dim,
                          DiceError *err) {
    DICE_TRY(unet_get_matrix(w, &a->to_q, NULL, inner, inner, false, prefix, "to_q", err));
    DICE_TRY(unet_get_matrix(w, &a->to_k, NULL, inner, kv_dim, false, prefix, "to_k", err));
    DICE_TRY(unet_get_matrix(w, &a->to_v, NULL, inner, kv_dim, false, prefix, "to_v", err));
    return unet_get_matrix(w, &a->to_out, &a->to_out_b, inner, inner, false, prefix, "to_out.0", err);
}

static int block_load(UnetTransformerBlock *b, Weights *w, const char *prefix, int64_t inner, int64_t cross_dim,
                      DiceError *err) {
    char sub[600];  // prefix (< 512) + ".attn1"
    Tensor *norms[6] = {&b->norm1_w, &b->norm1_b, &b->norm2_w, &b->norm2_b, &b->norm3_w, &b->norm3_b};
    for (int i = 0; i < 6; i++) {
        snprintf(sub, sizeof sub, "norm%d.%s", i / 2 + 1, i % 2 ? "bias" : "weight");
        DICE_TRY(unet_get_vector(w, norms[i], inner, prefix, sub, err));
    }
    snprintf(sub, sizeof sub, "%s.attn1", prefix);
    DICE_TRY(attention_load(&b->attn1, w, sub, inner, inner, err));
    snprintf(sub, sizeof sub, "%s.attn2", prefix);
    DICE_TRY(attention_load(&b->attn2, w, sub, inner, cross_dim, err));
    DICE_TRY(unet_get_matrix(w, &b->ff_in_w, &b->ff_in_b, 8 * inner, inner, false, prefix, "ff.net.0.proj", err));
    return unet_get_matrix(w, &b->ff_out_w, &b->ff_out_b, inner, 4 * inner, false, prefix, "ff.net.2", err);
}

int unet_transformer_load(UnetTransformer *t, Weights *w, const char *prefix, int64_t channels, int heads,
                          int n_blocks, int64_t cross_dim, const UnetConfig *cfg, DiceError *err) {
    t->channels = channels;
    t->heads = heads;
    t->inner = heads * (channels / heads);
    t->groups = cfg->norm_num_groups;
    t->n_blocks = n_blocks;
    t->blocks = calloc((size_t)n_blocks, sizeof *t->blocks);
    DICE_CHECK(err, t->blocks, "unet: out of host memory");
    bool conv = !cfg->use_linear_projection;
    DICE_TRY(unet_get_vector(w, &t->norm_w, channels, prefix, "norm.weight", err));
    DICE_TRY(unet_get_vector(w, &t->norm_b, channels, prefix, "norm.bias", err));
    DICE_TRY(unet_get_matrix(w, &t->proj_in_w, &t->proj_in_b, t->inner, channels, conv, prefix, "proj_in", err));
    DICE_TRY(unet_get_matrix(w, &t->proj_out_w, &t->proj_out_b, channels, t->inner, conv, prefix, "proj_out", err));
    for (int k = 0; k < n_blocks; k++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s.transformer_blocks.%d", prefix, k);
        DICE_TRY(block_load(&t->blocks[k], w, sub, t->inner, cross_dim, err));
    }
    return 0;
}

void unet_transformer_free(UnetTransformer *t) {
    free(t->blocks);
    t->blocks = NULL;
}

int unet_sampler_load(UnetLevel *l, Weights *w, const char *prefix, int64_t channels, DiceError *err) {
    l->has_sampler = true;
    return unet_get_conv(w, &l->sampler_w, &l->sampler_b, channels, channels, 3, prefix, "conv", err);
}

// x (B, H, W, Cin), emb_act (B, T) -> (B, H, W, Cout):
//   h = conv2(silu(norm2(conv1(silu(norm1(x))) + time_emb_proj(emb_act))));  out = shortcut(x) + h
int unet_resnet_forward(Graph *g, const UnetResnet *r, Var *x, Var *emb_act, Var **out, DiceError *err) {
    Var *h, *t, *s;
    DICE_TRY(op_group_norm(g, &h, x, &r->norm1_w, &r->norm1_b, r->groups, r->eps, true, err));
    DICE_TRY(op_conv2d(g, &h, h, &r->conv1_w, &r->conv1_b, 1, 1, err));                  // (B, H, W, Cout)
    DICE_TRY(op_linear(g, &t, emb_act, &r->time_w, &r->time_b, GEMM_ACT_NONE, err));     // (B, Cout)
    int64_t b1[4] = {t->value.shape[0], 1, 1, r->cout};
    DICE_TRY(op_reshape(g, &t, t, 4, b1, err));                                          // (B, 1, 1, Cout)
    DICE_TRY(op_add(g, &h, h, t, err));
    DICE_TRY(op_group_norm(g, &h, h, &r->norm2_w, &r->norm2_b, r->groups, r->eps, true, err));
    DICE_TRY(op_conv2d(g, &h, h, &r->conv2_w, &r->conv2_b, 1, 1, err));
    s = x;
    if (r->has_shortcut) DICE_TRY(op_linear(g, &s, x, &r->shortcut_w, &r->shortcut_b, GEMM_ACT_NONE, err));
    return op_add(g, out, s, h, err);
}

// x (B, N, inner), context (B, M, kv_dim) -> to_out(attention(to_q x, to_k context, to_v context)) (B, N, inner)
static int attention_forward(Graph *g, const UnetAttention *a, int heads, Var *x, Var *context, Var **out,
                             DiceError *err) {
    Var *q, *k, *v, *o;
    DICE_TRY(op_linear(g, &q, x, &a->to_q, NULL, GEMM_ACT_NONE, err));
    DICE_TRY(op_linear(g, &k, context, &a->to_k, NULL, GEMM_ACT_NONE, err));
    DICE_TRY(op_linear(g, &v, context, &a->to_v, NULL, GEMM_ACT_NONE, err));
    int64_t head_dim = q->value.shape[2] / heads;
    DICE_TRY(op_attention(g, &o, q, k, v, heads, (float)pow((double)head_dim, -0.5), false, NULL, err));
    return op_linear(g, out, o, &a->to_out, &a->to_out_b, GEMM_ACT_NONE, err);
}

// BasicTransformerBlock on x (B, N, inner): x += attn1(norm1 x); x += attn2(norm2 x, context);
// x += ff.net.2(geglu(ff.net.0.proj(norm3 x))).
static int block_forward(Graph *g, const UnetTransformerBlock *b, int heads, Var *x, Var *context, Var **out,
                         DiceError *err) {
    Var *n, *a, *f;
    DICE_TRY(op_layer_norm(g, &n, x, &b->norm1_w, &b->norm1_b, 1e-5f, err));
    DICE_TRY(attention_forward(g, &b->attn1, heads, n, n, &a, err));
    DICE_TRY(op_add(g, &x, a, x, err));
    DICE_TRY(op_layer_norm(g, &n, x, &b->norm2_w, &b->norm2_b, 1e-5f, err));
    DICE_TRY(attention_forward(g, &b->attn2, heads, n, context, &a, err));
    DICE_TRY(op_add(g, &x, a, x, err));
    DICE_TRY(op_layer_norm(g, &n, x, &b->norm3_w, &b->norm3_b, 1e-5f, err));
    DICE_TRY(op_linear(g, &f, n, &b->ff_in_w, &b->ff_in_b, GEMM_ACT_NONE, err));   // (B, N, 8 inner)
    DICE_TRY(op_geglu(g, &f, f, err));                                              // (B, N, 4 inner)
    DICE_TRY(op_linear(g, &f, f, &b->ff_out_w, &b->ff_out_b, GEMM_ACT_NONE, err));  // (B, N, inner)
    return op_add(g, out, f, x, err);
}

// x (B, H, W, C), context (B, M, cross_dim) -> (B, H, W, C): x + proj_out(blocks(proj_in(norm(x)))), the
// tokens (B, H*W, C) being the NHWC activations as they are.
int unet_transformer_forward(Graph *g, const UnetTransformer *t, Var *x, Var *context, Var **out, DiceError *err) {
    DICE_CHECK(err, x->value.ndim == 4 && x->value.shape[3] == t->channels,
               "unet transformer: input must be (B, H, W, %lld)", (long long)t->channels);
    Var *h;
    DICE_TRY(op_group_norm(g, &h, x, &t->norm_w, &t->norm_b, t->groups, 1e-6f, false, err));
    int64_t tokens[3] = {x->value.shape[0], x->value.shape[1] * x->value.shape[2], t->channels};
    DICE_TRY(op_reshape(g, &h, h, 3, tokens, err));                                         // (B, H*W, C)
    DICE_TRY(op_linear(g, &h, h, &t->proj_in_w, &t->proj_in_b, GEMM_ACT_NONE, err));        // (B, H*W, inner)
    for (int k = 0; k < t->n_blocks; k++) DICE_TRY(block_forward(g, &t->blocks[k], t->heads, h, context, &h, err));
    DICE_TRY(op_linear(g, &h, h, &t->proj_out_w, &t->proj_out_b, GEMM_ACT_NONE, err));      // (B, H*W, C)
    DICE_TRY(op_reshape(g, &h, h, 4, x->value.shape, err));                                 // (B, H, W, C)
    return op_add(g, out, h, x, err);
}

// Downsample2D: (B, H, W, C) -> (B, ceil(H/2), ceil(W/2), C), 3x3 stride 2, padding 1.
int unet_downsample_forward(Graph *g, const UnetLevel *l, Var *x, Var **out, DiceError *err) {
    return op_conv2d(g, out, x, &l->sampler_w, &l->sampler_b, 2, 1, err);
}

// Upsample2D: (B, H, W, C) -> nearest 2x -> 3x3 conv -> (B, 2H, 2W, C).
int unet_upsample_forward(Graph *g, const UnetLevel *l, Var *x, Var **out, DiceError *err) {
    Var *h;
    DICE_TRY(op_upsample2x(g, &h, x, err));
    return op_conv2d(g, out, h, &l->sampler_w, &l->sampler_b, 1, 1, err);
}
