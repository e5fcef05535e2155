// nn/op_reduce.c — sums, means, L1 / squared-L2 losses and casts (see op_reduce.h); kernels in
// kernels/reduce{_cpu.c,.cu}. This file is also the worked example of how an op is written (nn/ops.h).
#include "op_reduce.h"

#include <string.h>

#include "kernels/reduce.h"
#include "tensor_copy.h"

typedef struct FullReduceSaved {
    ReduceKind kind;
    double scale;
} FullReduceSaved;

static bool on_cuda(const Graph *g) { return g->ctx->device == DEV_CUDA; }

static int check_input(const Graph *g, const char *op, const Var *x, DiceError *err) {
    char d[128];
    DICE_CHECK(err, x->value.device == g->ctx->device, "%s: input %s is not on the context's device (%s)", op,
               tensor_describe(&x->value, d, sizeof d), device_name(g->ctx->device));
    DICE_CHECK(err, tensor_is_contiguous(&x->value), "%s: input %s must be contiguous", op,
               tensor_describe(&x->value, d, sizeof d));
    if (on_cuda(g))
        DICE_CHECK(err, x->value.dtype == DT_F32 || x->value.dtype == DT_BF16, "%s: %s on CUDA (f32, bf16 supported)",
                   op, tensor_describe(&x->value, d, sizeof d));
    else
        DICE_CHECK(err, x->value.dtype == DT_F32 || x->value.dtype == DT_F64, "%s: %s on the CPU (f32, f64 supported)",
                   op, tensor_describe(&x->value, d, sizeof d));
    return 0;
}

// out = scale * sum f(a, b) on the context's device.
static int full_reduce_forward(Graph *g, Var *out, const Var *a, const Var *b, ReduceKind kind, double scale,
                               DiceError *err) {
    int64_t n = tensor_numel(&a->value);
    const void *bd = b ? b->value.data : NULL;
    if (!on_cuda(g))
        return reduce_full_cpu(out->value.data, out->value.dtype, a->value.data, bd, n, a->value.dtype, kind, scale, err);
#ifdef DICE_CUDA
    void *workspace;
    DICE_TRY(arena_alloc(g->arena, REDUCE_PARTIALS * sizeof(float), &workspace, err));
    return reduce_full_cuda(out->value.data, out->value.dtype, a->value.data, bd, n, a->value.dtype, kind, scale,
                            workspace, g->ctx->stream, err);
#else
    return DICE_FAIL(err, "this build of dice has no CUDA backend");
#endif
}

static int full_reduce_backward(Graph *g, TapeNode *node, DiceError *err) {
    const FullReduceSaved *s = node->saved;
    Var *a = node->inputs[0], *b = node->n_inputs > 1 ? node->inputs[1] : NULL;
    Tensor da = {0}, db = {0};
    if (a->requires_grad) DICE_TRY(arena_tensor(g->arena, &da, a->value.dtype, a->value.ndim, a->value.shape, err));
    if (b && b->requires_grad) DICE_TRY(arena_tensor(g->arena, &db, b->value.dtype, b->value.ndim, b->value.shape, err));
    int64_t n = tensor_numel(&a->value);
    const Tensor *go = &node->output->grad;
    const void *bd = b ? b->value.data : NULL;
    if (!on_cuda(g)) {
        DICE_TRY(reduce_full_backward_cpu(da.data, db.data, go->data, go->dtype, a->value.data, bd, n, a->value.dtype,
                                          s->kind, s->scale, err));
    } else {
#ifdef DICE_CUDA
        DICE_TRY(reduce_full_backward_cuda(da.data, db.data, go->data, go->dtype, a->value.data, bd, n, a->value.dtype,
                                           s->kind, s->scale, g->ctx->stream, err));
#endif
    }
    if (da.data) DICE_TRY(graph_accumulate(g, a, &da, err));
    if (db.data) DICE_TRY(graph_accumulate(g, b, &db, err));
    return 0;
}

static int full_reduce(Graph *g, Var **out, const char *op, Var *a, Var *b, ReduceKind kind, double scale,
                       DiceError *err) {
    DICE_TRY(check_input(g, op, a, err));
    if (b) {
        char da[128], db[128];
        DICE_TRY(check_input(g, op, b, err));
        DICE_CHECK(err, tensor_same_shape(&a->value, &b->value) && a->value.dtype == b->value.dtype,
                   "%s: prediction %s and target %s differ", op, tensor_describe(&a->value, da, sizeof da),
                   tensor_describe(&b->value, db, sizeof db));
    }
    Var *inputs[2] = {a, b};
    int n_inputs = b ? 2 : 1;
    DType out_dtype = a->value.dtype == DT_F64 ? DT_F64 : DT_F32;
    DICE_TRY(graph_new_var(g, out, out_dtype, 0, NULL, inputs, n_inputs, err));
    DICE_TRY(full_reduce_forward(g, *out, a, b, kind, scale, err));
    if (!(*out)->requires_grad) return 0;
    FullReduceSaved *saved;
    DICE_TRY(arena_alloc_host(g->arena, sizeof *saved, (void **)&saved, err));
    saved->kind = kind;
    saved->scale = scale;
    return graph_record(g, op, full_reduce_backward, *out, inputs, n_inputs, saved, err);
}

int op_sum(Graph *g, Var **out, Var *x, DiceError *err) { return full_reduce(g, out, "sum", x, NULL, REDUCE_SUM, 1.0, err); }

int op_mean(Graph *g, Var **out, Var *x, DiceError *err) {
    int64_t n = tensor_numel(&x->value);
    DICE_CHECK(err, n > 0, "mean: the input is empty");
    return full_reduce(g, out, "mean", x, NULL, REDUCE_SUM, 1.0 / (double)n, err);
}

int op_l1_loss(Graph *g, Var **out, Var *pred, Var *target, double scale, DiceError *err) {
    return full_reduce(g, out, "l1_loss", pred, target, REDUCE_L1, scale, err);
}

int op_mse_loss(Graph *g, Var **out, Var *pred, Var *target, double scale, DiceError *err) {
    return full_reduce(g, out, "mse_loss", pred, target, REDUCE_L2, scale, err);
}

// x viewed as (outer, n, inner) around `dim`.
static void split_dims(const Tensor *t, int dim, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < dim; i++) *outer *= t->shape[i];
    for (int i = dim + 1; i < t->ndim; i++) *inner *= t->shape[i];
    *n = t->shape[dim];
}

typedef struct SumDimSaved {
    int dim;
} SumDimSaved;

static int sum_dim_backward(Graph *g, TapeNode *node, DiceError *err) {
    Var *x = node->inputs[0];
    const SumDimSaved *s = node->saved;
    int64_t outer, n, inner;
    split_dims(&x->value, s->dim, &outer, &n, &inner);
    Tensor dx;
    DICE_TRY(arena_tensor(g->arena, &dx, x->value.dtype, x->value.ndim, x->value.shape, err));
    if (!on_cuda(g)) {
        DICE_TRY(sum_dim_backward_cpu(dx.data, node->output->grad.data, outer, n, inner, x->value.dtype, err));
    } else {
#ifdef DICE_CUDA
        DICE_TRY(sum_dim_backward_cuda(dx.data, node->output->grad.data, outer, n, inner, x->value.dtype,
                                       g->ctx->stream, err));
#endif
    }
    return graph_accumulate(g, x, &dx, err);
}

int op_sum_dim(Graph *g, Var **out, Var *x, int dim, DiceError *err) {
    DICE_TRY(check_input(g, "sum_dim", x, err));
    DICE_CHECK(err, dim >= 0 && dim < x->value.ndim, "sum_dim: dimension %d out of range for a %d-d tensor", dim,
               x->value.ndim);
    int64_t shape[TENSOR_MAX_DIMS], outer, n, inner;
    int ndim = 0;
    for (int i = 0; i < x->value.ndim; i++)
        if (i != dim) shape[ndim++] = x->value.shape[i];
    split_dims(&x->value, dim, &outer, &n, &inner);
    DICE_TRY(graph_new_var(g, out, x->value.dtype, ndim, shape, &x, 1, err));
    if (!on_cuda(g)) {
        DICE_TRY(sum_dim_cpu((*out)->value.data, x->value.data, outer, n, inner, x->value.dtype, err));
    } else {
#ifdef DICE_CUDA
        DICE_TRY(sum_dim_cuda((*out)->value.data, x->value.data, outer, n, inner, x->value.dtype, g->ctx->stream, err));
#endif
    }
    if (!(*out)->requires_grad) return 0;
    SumDimSaved *saved;
    DICE_TRY(arena_alloc_host(g->arena, sizeof *saved, (void **)&saved, err));
    saved->dim = dim;
    return graph_record(g, "sum_dim", sum_dim_backward, *out, &x, 1, saved, err);
}

static int cast_backward(Graph *g, TapeNode *node, DiceError *err) {
    Var *x = node->inputs[0];
    Tensor dx;
    DICE_TRY(arena_tensor(g->arena, &dx, x->value.dtype, x->value.ndim, x->value.shape, err));
    DICE_TRY(tensor_copy(g->ctx, &dx, &node->output->grad, err));
    return graph_accumulate(g, x, &dx, err);
}

int op_cast(Graph *g, Var **out, Var *x, DType dtype, DiceError *err) {
    DICE_CHECK(err, dtype_is_float(dtype) && dtype_is_float(x->value.dtype), "cast: %s -> %s (float types only)",
               dtype_name(x->value.dtype), dtype_name(dtype));
    DICE_TRY(graph_new_var(g, out, dtype, x->value.ndim, x->value.shape, &x, 1, err));
    DICE_TRY(tensor_copy(g->ctx, &(*out)->value, &x->value, err));
    return graph_record(g, "cast", cast_backward, *out, &x, 1, NULL, err);
}
