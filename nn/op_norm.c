// nn/op_norm.c — group norm (optionally fused with SiLU) and layer norm ops (see op_norm.h): checks,
// device dispatch to kernels/norm{_cpu.c,.cu}, and the backward functions recorded on the tape.
#include "op_norm.h"

#include <string.h>

#include "kernels/norm.h"

// What backward needs besides the input x (node->inputs[0]) and the output gradient.
typedef struct NormSaved {
    Tensor mean, rstd;   // group norm (B, G), layer norm (rows); f32 on CUDA, the input dtype on the CPU
    Tensor gamma, beta;  // descriptors of the frozen weights (data NULL when absent)
    int64_t outer, S, C, G;  // group norm: B, S, C, G; layer norm: rows, 1, C, 1
    bool silu;
} NormSaved;

static bool on_cuda(const Graph *g) { return g->ctx->device == DEV_CUDA; }

static int check_input(const Graph *g, const char *op, const Var *x, DiceError *err) {
    char d[128];
    const Tensor *t = &x->value;
    DICE_CHECK(err, t->device == g->ctx->device, "%s: input %s is not on the context's device (%s)", op,
               tensor_describe(t, d, sizeof d), device_name(g->ctx->device));
    DICE_CHECK(err, tensor_is_contiguous(t), "%s: input %s must be contiguous", op, tensor_describe(t, d, sizeof d));
    DICE_CHECK(err, tensor_numel(t) > 0, "%s: input %s is empty", op, tensor_describe(t, d, sizeof d));
    if (on_cuda(g))
        DICE_CHECK(err, t->dtype == DT_F32 || t->dtype == DT_BF16, "%s: %s on CUDA (f32, bf16 supported)", op,
                   tensor_describe(t, d, sizeof d));
    else
        DICE_CHECK(err, t->dtype == DT_F32 || t->dtype == DT_F64, "%s: %s on the CPU (f32, f64 supported)", op,
                   tensor_describe(t, d, sizeof d));
    return 0;
}

// gamma / beta: NULL, or a contiguous (C) tensor of x's dtype on x's device.
static int check_weight(const char *op, const char *name, const Tensor *w, const Tensor *x, int64_t C,
                        DiceError *err) {
    if (!w) return 0;
    char dw[128], dx[128];
    DICE_CHECK(err,
               w->ndim == 1 && w->shape[0] == C && w->dtype == x->dtype && w->device == x->device &&
                   tensor_is_contiguous(w),
               "%s: %s %s does not match input %s (want %s[%lld] %s, contiguous)", op, name,
               tensor_describe(w, dw, sizeof dw), tensor_describe(x, dx, sizeof dx), dtype_name(x->dtype),
               (long long)C, device_name(x->device));
    return 0;
}

// A NormSaved in the arena, with room for the statistics (outer, G).
static int new_saved(Graph *g, NormSaved **out, const Tensor *x, const Tensor *gamma, const Tensor *beta,
                     int64_t outer, int64_t S, int64_t C, int64_t G, bool silu, DiceError *err) {
    NormSaved *s;
    DICE_TRY(arena_alloc_host(g->arena, sizeof *s, (void **)&s, err));
    memset(s, 0, sizeof *s);
    DType stats = on_cuda(g) ? DT_F32 : x->dtype;
    int64_t shape[2] = {outer, G};
    DICE_TRY(arena_tensor(g->arena, &s->mean, stats, 2, shape, err));
    DICE_TRY(arena_tensor(g->arena, &s->rstd, stats, 2, shape, err));
    if (gamma) s->gamma = *gamma;
    if (beta) s->beta = *beta;
    s->outer = outer;
    s->S = S;
    s->C = C;
    s->G = G;
    s->silu = silu;
    *out = s;
    return 0;
}

#ifndef DICE_CUDA
static int no_cuda(DiceError *err) { return DICE_FAIL(err, "this build of dice has no CUDA backend"); }
#endif

// ---------------------------------------------------------------- group norm
static int group_norm_backward(Graph *g, TapeNode *node, DiceError *err) {
    const NormSaved *s = node->saved;
    Var *x = node->inputs[0];
    const Tensor *dy = &node->output->grad;
    Tensor dx;
    DICE_TRY(arena_tensor(g->arena, &dx, x->value.dtype, x->value.ndim, x->value.shape, err));
    if (!on_cuda(g)) {
        DICE_TRY(group_norm_backward_cpu(dx.data, dy->data, x->value.data, s->mean.data, s->rstd.data, s->gamma.data,
                                         s->beta.data, s->outer, s->S, s->C, s->G, s->silu, x->value.dtype, err));
    } else {
#ifdef DICE_CUDA
        void *ws;
        DICE_TRY(arena_alloc(g->arena, group_norm_cuda_workspace_bytes(s->outer, s->S, s->C, s->G, x->value.dtype),
                             &ws, err));
        DICE_TRY(group_norm_backward_cuda(dx.data, dy->data, x->value.data, s->mean.data, s->rstd.data, s->gamma.data,
                                          s->beta.data, s->outer, s->S, s->C, s->G, s->silu, x->value.dtype, ws,
                                          g->ctx->stream, err));
#else
        return no_cuda(err);
#endif
    }
    return graph_accumulate(g, x, &dx, err);
}

int op_group_norm(Graph *g, Var **out, Var *x, const Tensor *gamma, const Tensor *beta, int groups, float eps,
                  bool fuse_silu, DiceError *err) {
    const char *op = fuse_silu ? "group_norm_silu" : "group_norm";
    DICE_TRY(check_input(g, op, x, err));
    const Tensor *xv = &x->value;
    char d[128];
    DICE_CHECK(err, xv->ndim == 3 || xv->ndim == 4, "%s: input %s must be (B, H, W, C) or (B, N, C)", op,
               tensor_describe(xv, d, sizeof d));
    int64_t B = xv->shape[0], C = xv->shape[xv->ndim - 1], S = tensor_numel(xv) / (B * C);
    DICE_CHECK(err, groups > 0 && C % groups == 0, "%s: the %lld channels of %s do not split into %d groups", op,
               (long long)C, tensor_describe(xv, d, sizeof d), groups);
    DICE_CHECK(err, eps >= 0.0f, "%s: eps %g is negative", op, (double)eps);
    DICE_TRY(check_weight(op, "gamma", gamma, xv, C, err));
    DICE_TRY(check_weight(op, "beta", beta, xv, C, err));

    DICE_TRY(graph_new_var(g, out, xv->dtype, xv->ndim, xv->shape, &x, 1, err));
    NormSaved *s;
    DICE_TRY(new_saved(g, &s, xv, gamma, beta, B, S, C, groups, fuse_silu, err));
    void *y = (*out)->value.data;
    const void *gd = gamma ? gamma->data : NULL, *bd = beta ? beta->data : NULL;
    if (!on_cuda(g)) {
        DICE_TRY(group_norm_forward_cpu(y, s->mean.data, s->rstd.data, xv->data, gd, bd, B, S, C, groups, eps,
                                        fuse_silu, xv->dtype, err));
    } else {
#ifdef DICE_CUDA
        void *ws;
        DICE_TRY(arena_alloc(g->arena, group_norm_cuda_workspace_bytes(B, S, C, groups, xv->dtype), &ws, err));
        DICE_TRY(group_norm_forward_cuda(y, s->mean.data, s->rstd.data, xv->data, gd, bd, B, S, C, groups, eps,
                                         fuse_silu, xv->dtype, ws, g->ctx->stream, err));
#else
        return no_cuda(err);
#endif
    }
    return graph_record(g, op, group_norm_backward, *out, &x, 1, s, err);
}

// ---------------------------------------------------------------- layer norm
static int layer_norm_backward(Graph *g, TapeNode *node, DiceError *err) {
    const NormSaved *s = node->saved;
    Var *x = node->inputs[0];
    const Tensor *dy = &node->output->grad;
    Tensor dx;
    DICE_TRY(arena_tensor(g->arena, &dx, x->value.dtype, x->value.ndim, x->value.shape, err));
    if (!on_cuda(g)) {
        DICE_TRY(layer_norm_backward_cpu(dx.data, dy->data, x->value.data, s->mean.data, s->rstd.data, s->gamma.data,
                                         s->outer, s->C, x->value.dtype, err));
    } else {
#ifdef DICE_CUDA
        DICE_TRY(layer_norm_backward_cuda(dx.data, dy->data, x->value.data, s->mean.data, s->rstd.data, s->gamma.data,
                                          s->outer, s->C, x->value.dtype, g->ctx->stream, err));
#else
        return no_cuda(err);
#endif
    }
    return graph_accumulate(g, x, &dx, err);
}

int op_layer_norm(Graph *g, Var **out, Var *x, const Tensor *gamma, const Tensor *beta, float eps, DiceError *err) {
    DICE_TRY(check_input(g, "layer_norm", x, err));
    const Tensor *xv = &x->value;
    char d[128];
    DICE_CHECK(err, xv->ndim >= 1, "layer_norm: input %s has no last dimension", tensor_describe(xv, d, sizeof d));
    DICE_CHECK(err, eps >= 0.0f, "layer_norm: eps %g is negative", (double)eps);
    int64_t C = xv->shape[xv->ndim - 1], rows = tensor_numel(xv) / C;
    DICE_TRY(check_weight("layer_norm", "gamma", gamma, xv, C, err));
    DICE_TRY(check_weight("layer_norm", "beta", beta, xv, C, err));

    DICE_TRY(graph_new_var(g, out, xv->dtype, xv->ndim, xv->shape, &x, 1, err));
    NormSaved *s;
    DICE_TRY(new_saved(g, &s, xv, gamma, beta, rows, 1, C, 1, false, err));
    void *y = (*out)->value.data;
    const void *gd = gamma ? gamma->data : NULL, *bd = beta ? beta->data : NULL;
    if (!on_cuda(g)) {
        DICE_TRY(layer_norm_forward_cpu(y, s->mean.data, s->rstd.data, xv->data, gd, bd, rows, C, eps, xv->dtype, err));
    } else {
#ifdef DICE_CUDA
        DICE_TRY(layer_norm_forward_cuda(y, s->mean.data, s->rstd.data, xv->data, gd, bd, rows, C, eps, xv->dtype,
                                         g->ctx->stream, err));
#else
        return no_cuda(err);
#endif
    }
    return graph_record(g, "layer_norm", layer_norm_backward, *out, &x, 1, s, err);
}
