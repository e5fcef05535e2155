// nn/op_shape.c — concat / split along channels, nearest 2x upsampling, and the view ops (see op_shape.h).
#include "op_shape.h"

#include <string.h>

#include "kernels/shape_ops.h"
#include "op_elementwise.h"
#include "tensor_copy.h"

// The CPU twin or the CUDA launcher, by the graph's device (a CPU-only build has no CUDA context).
#ifdef DICE_CUDA
#define ON_DEVICE(g, cpu_call, cuda_call) ((g)->ctx->device == DEV_CUDA ? (cuda_call) : (cpu_call))
#else
#define ON_DEVICE(g, cpu_call, cuda_call) \
    ((g)->ctx->device == DEV_CUDA ? DICE_FAIL(err, "this build of dice has no CUDA backend") : (cpu_call))
#endif

// dst (rows, dst_cols)[:, dst_off : + width] = src (rows, src_cols)[:, src_off : + width] on the graph's device.
static int copy_columns(Graph *g, void *dst, int64_t dst_cols, int64_t dst_off, const void *src, int64_t src_cols,
                        int64_t src_off, int64_t rows, int64_t width, DType dt, DiceError *err) {
    return ON_DEVICE(g, shape_copy_columns_cpu(dst, dst_cols, dst_off, src, src_cols, src_off, rows, width, dt, err),
                     shape_copy_columns_cuda(dst, dst_cols, dst_off, src, src_cols, src_off, rows, width, dt,
                                             g->ctx->stream, err));
}

static int64_t last_dim(const Tensor *t) { return t->shape[t->ndim - 1]; }
static int64_t rows_of(const Tensor *t) { return last_dim(t) ? tensor_numel(t) / last_dim(t) : 0; }

// ---------------------------------------------------------------- concat along the last dim
static int concat_backward(Graph *g, TapeNode *node, DiceError *err) {
    const Tensor *dy = &node->output->grad;
    int64_t cols = last_dim(dy), rows = rows_of(dy), off = 0;
    for (int i = 0; i < node->n_inputs; i++) {
        Var *x = node->inputs[i];
        int64_t c = last_dim(&x->value);
        if (x->requires_grad) {
            Tensor dx;
            DICE_TRY(arena_tensor(g->arena, &dx, x->value.dtype, x->value.ndim, x->value.shape, err));
            DICE_TRY(copy_columns(g, dx.data, c, 0, dy->data, cols, off, rows, c, dx.dtype, err));
            DICE_TRY(graph_accumulate(g, x, &dx, err));
        }
        off += c;
    }
    return 0;
}

int op_concat(Graph *g, Var **out, Var *const *inputs, int n, DiceError *err) {
    DICE_CHECK(err, n >= 2 && n <= 4, "concat: %d inputs (2 to 4 supported)", n);
    const Tensor *first = &inputs[0]->value;
    int64_t shape[TENSOR_MAX_DIMS], cols = 0;
    for (int i = 0; i < n; i++) {
        const Tensor *t = &inputs[i]->value;
        DICE_TRY(op_check_input(g, "concat", inputs[i], err));
        char a[128], b[128];
        bool ok = t->ndim == first->ndim && t->ndim >= 1 && t->dtype == first->dtype;
        for (int d = 0; ok && d < t->ndim - 1; d++) ok = t->shape[d] == first->shape[d];
        DICE_CHECK(err, ok, "concat: input %d %s does not match input 0 %s outside the last dim", i,
                   tensor_describe(t, a, sizeof a), tensor_describe(first, b, sizeof b));
        cols += last_dim(t);
    }
    memcpy(shape, first->shape, sizeof shape);
    shape[first->ndim - 1] = cols;
    DICE_TRY(graph_new_var(g, out, first->dtype, first->ndim, shape, inputs, n, err));
    int64_t rows = rows_of(&(*out)->value), off = 0;
    for (int i = 0; i < n; i++) {
        const Tensor *t = &inputs[i]->value;
        DICE_TRY(copy_columns(g, (*out)->value.data, cols, off, t->data, last_dim(t), 0, rows, last_dim(t), t->dtype,
                              err));
        off += last_dim(t);
    }
    return graph_record(g, "concat", concat_backward, *out, inputs, n, NULL, err);
}

// ---------------------------------------------------------------- split along the last dim
typedef struct SliceSaved {
    int64_t start;
} SliceSaved;

static int slice_backward(Graph *g, TapeNode *node, DiceError *err) {
    const SliceSaved *s = node->saved;
    Var *x = node->inputs[0];
    const Tensor *dy = &node->output->grad;
    Tensor dx;
    DICE_TRY(arena_tensor(g->arena, &dx, x->value.dtype, x->value.ndim, x->value.shape, err));
    DICE_TRY(tensor_zero(g->ctx, &dx, err));
    DICE_TRY(copy_columns(g, dx.data, last_dim(&dx), s->start, dy->data, last_dim(dy), 0, rows_of(dy), last_dim(dy),
                          dx.dtype, err));
    return graph_accumulate(g, x, &dx, err);
}

int op_split(Graph *g, Var **outs, Var *x, int n, const int64_t *sizes, DiceError *err) {
    DICE_TRY(op_check_input(g, "split", x, err));
    const Tensor *t = &x->value;
    DICE_CHECK(err, t->ndim >= 1 && n >= 1, "split: %d parts of a %d-d tensor", n, t->ndim);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        DICE_CHECK(err, sizes[i] >= 0, "split: part %d has negative size %lld", i, (long long)sizes[i]);
        total += sizes[i];
    }
    char d[128];
    DICE_CHECK(err, total == last_dim(t), "split: part sizes sum to %lld, the last dim of %s", (long long)total,
               tensor_describe(t, d, sizeof d));
    int64_t shape[TENSOR_MAX_DIMS], start = 0;
    memcpy(shape, t->shape, sizeof shape);
    for (int i = 0; i < n; i++) {
        shape[t->ndim - 1] = sizes[i];
        DICE_TRY(graph_new_var(g, &outs[i], t->dtype, t->ndim, shape, &x, 1, err));
        DICE_TRY(copy_columns(g, outs[i]->value.data, sizes[i], 0, t->data, last_dim(t), start, rows_of(t), sizes[i],
                              t->dtype, err));
        if (outs[i]->requires_grad) {
            SliceSaved *s;
            DICE_TRY(arena_alloc_host(g->arena, sizeof *s, (void **)&s, err));
            s->start = start;
            DICE_TRY(graph_record(g, "split", slice_backward, outs[i], &x, 1, s, err));
        }
        start += sizes[i];
    }
    return 0;
}

// ---------------------------------------------------------------- nearest 2x upsampling, NHWC
static int upsample_backward(Graph *g, TapeNode *node, DiceError *err) {
    Var *x = node->inputs[0];
    const int64_t *s = x->value.shape;
    Tensor dx;
    DICE_TRY(arena_tensor(g->arena, &dx, x->value.dtype, 4, s, err));
    const void *dy = node->output->grad.data;
    DICE_TRY(ON_DEVICE(g, shape_upsample2x_backward_cpu(dx.data, dy, s[0], s[1], s[2], s[3], dx.dtype, err),
                       shape_upsample2x_backward_cuda(dx.data, dy, s[0], s[1], s[2], s[3], dx.dtype, g->ctx->stream,
                                                      err)));
    return graph_accumulate(g, x, &dx, err);
}

int op_upsample2x(Graph *g, Var **out, Var *x, DiceError *err) {
    DICE_TRY(op_check_input(g, "upsample2x", x, err));
    const Tensor *t = &x->value;
    char d[128];
    DICE_CHECK(err, t->ndim == 4, "upsample2x: input %s is not NHWC (B, H, W, C)", tensor_describe(t, d, sizeof d));
    const int64_t *s = t->shape;
    int64_t shape[4] = {s[0], 2 * s[1], 2 * s[2], s[3]};
    DICE_TRY(graph_new_var(g, out, t->dtype, 4, shape, &x, 1, err));
    void *y = (*out)->value.data;
    DICE_TRY(ON_DEVICE(g, shape_upsample2x_cpu(y, t->data, s[0], s[1], s[2], s[3], t->dtype, err),
                       shape_upsample2x_cuda(y, t->data, s[0], s[1], s[2], s[3], t->dtype, g->ctx->stream, err)));
    return graph_record(g, "upsample2x", upsample_backward, *out, &x, 1, NULL, err);
}

// ---------------------------------------------------------------- views
// A Var holding `view` (memory shared with x), requiring a gradient when x does and the graph records.
static int view_var(Graph *g, Var **out, Var *x, const Tensor *view, DiceError *err) {
    return graph_leaf(g, out, view, x->requires_grad && graph_recording(g), err);
}

static int reshape_backward(Graph *g, TapeNode *node, DiceError *err) {
    Var *x = node->inputs[0];
    Tensor dx;
    DICE_TRY(tensor_reshape(&dx, &node->output->grad, x->value.ndim, x->value.shape, err));
    return graph_accumulate(g, x, &dx, err);
}

int op_reshape(Graph *g, Var **out, Var *x, int ndim, const int64_t *shape, DiceError *err) {
    Tensor view;
    if (tensor_reshape(&view, &x->value, ndim, shape, err)) {
        dice_error_context(err, "reshape");
        return -1;
    }
    DICE_TRY(view_var(g, out, x, &view, err));
    return graph_record(g, "reshape", reshape_backward, *out, &x, 1, NULL, err);
}

typedef struct PermuteSaved {
    int inverse[TENSOR_MAX_DIMS];
} PermuteSaved;

// dx = dy (contiguous, permuted shape) read through the inverse permutation, copied into x's shape.
static int permute_backward(Graph *g, TapeNode *node, DiceError *err) {
    const PermuteSaved *s = node->saved;
    Var *x = node->inputs[0];
    Tensor dx, dy_view;
    DICE_TRY(tensor_permute(&dy_view, &node->output->grad, s->inverse, err));
    DICE_TRY(arena_tensor(g->arena, &dx, x->value.dtype, x->value.ndim, x->value.shape, err));
    DICE_TRY(tensor_copy(g->ctx, &dx, &dy_view, err));
    return graph_accumulate(g, x, &dx, err);
}

int op_permute(Graph *g, Var **out, Var *x, const int *perm, DiceError *err) {
    Tensor view;
    if (tensor_permute(&view, &x->value, perm, err)) {
        dice_error_context(err, "permute");
        return -1;
    }
    DICE_TRY(view_var(g, out, x, &view, err));
    if (!(*out)->requires_grad) return 0;
    PermuteSaved *s;
    DICE_TRY(arena_alloc_host(g->arena, sizeof *s, (void **)&s, err));
    for (int i = 0; i < x->value.ndim; i++) s->inverse[perm[i]] = i;
    return graph_record(g, "permute", permute_backward, *out, &x, 1, s, err);
}

static int contiguous_backward(Graph *g, TapeNode *node, DiceError *err) {
    return graph_accumulate(g, node->inputs[0], &node->output->grad, err);
}

int op_contiguous(Graph *g, Var **out, Var *x, DiceError *err) {
    char d[128];
    DICE_CHECK(err, x->value.device == g->ctx->device, "contiguous: input %s is not on the context's device (%s)",
               tensor_describe(&x->value, d, sizeof d), device_name(g->ctx->device));
    DICE_TRY(graph_new_var(g, out, x->value.dtype, x->value.ndim, x->value.shape, &x, 1, err));
    DICE_TRY(tensor_copy(g->ctx, &(*out)->value, &x->value, err));
    return graph_record(g, "contiguous", contiguous_backward, *out, &x, 1, NULL, err);
}
