// nn/op_elementwise.c — activations, GEGLU, softmax, broadcast add / mul, scale and modulation (see
// op_elementwise.h): checks, dispatch to kernels/elementwise{_cpu.c,.cu}, and the backward functions.
#include "op_elementwise.h"

#include <string.h>

// The CPU twin or the CUDA launcher, by the graph's device (a CPU-only build has no CUDA context).
#ifdef DICE_CUDA
#define ON_DEVICE(g, cpu_call, cuda_call) ((g)->ctx->device == DEV_CUDA ? (cuda_call) : (cpu_call))
#else
#define ON_DEVICE(g, cpu_call, cuda_call) \
    ((g)->ctx->device == DEV_CUDA ? DICE_FAIL(err, "this build of dice has no CUDA backend") : (cpu_call))
#endif

int op_check_input(const Graph *g, const char *op, const Var *x, DiceError *err) {
    char d[128];
    const Tensor *t = &x->value;
    DICE_CHECK(err, t->device == g->ctx->device, "%s: input %s is not on the context's device (%s)", op,
               tensor_describe(t, d, sizeof d), device_name(g->ctx->device));
    DICE_CHECK(err, tensor_is_contiguous(t), "%s: input %s must be contiguous", op, tensor_describe(t, d, sizeof d));
    if (t->device == DEV_CUDA)
        DICE_CHECK(err, t->dtype == DT_F32 || t->dtype == DT_BF16, "%s: %s on CUDA (f32, bf16 supported)", op,
                   tensor_describe(t, d, sizeof d));
    else
        DICE_CHECK(err, t->dtype == DT_F32 || t->dtype == DT_F64, "%s: %s on the CPU (f32, f64 supported)", op,
                   tensor_describe(t, d, sizeof d));
    return 0;
}

static int check_same_dtype(const char *op, const Var *a, const Var *b, DiceError *err) {
    char da[128], db[128];
    DICE_CHECK(err, a->value.dtype == b->value.dtype, "%s: inputs %s and %s have different dtypes", op,
               tensor_describe(&a->value, da, sizeof da), tensor_describe(&b->value, db, sizeof db));
    return 0;
}

// A gradient buffer shaped like v's value, in the graph's arena.
static int grad_like(Graph *g, Tensor *t, const Var *v, DiceError *err) {
    return arena_tensor(g->arena, t, v->value.dtype, v->value.ndim, v->value.shape, err);
}

// ---------------------------------------------------------------- unary ops
typedef struct UnarySaved {
    EwUnary op;
    double alpha;
} UnarySaved;

static int unary_backward(Graph *g, TapeNode *node, DiceError *err) {
    const UnarySaved *s = node->saved;
    Var *x = node->inputs[0];
    Tensor dx;
    DICE_TRY(grad_like(g, &dx, x, err));
    const void *dy = node->output->grad.data;
    int64_t n = tensor_numel(&dx);
    DType dt = dx.dtype;
    DICE_TRY(ON_DEVICE(g, ew_unary_backward_cpu(s->op, dx.data, dy, x->value.data, n, s->alpha, dt, err),
                       ew_unary_backward_cuda(s->op, dx.data, dy, x->value.data, n, s->alpha, dt, g->ctx->stream, err)));
    return graph_accumulate(g, x, &dx, err);
}

int op_unary(Graph *g, Var **out, Var *x, EwUnary op, double alpha, double beta, DiceError *err) {
    static const char *names[] = {"gelu", "gelu_tanh", "quick_gelu", "silu", "relu", "scale"};
    DICE_CHECK(err, op >= EW_GELU && op <= EW_AFFINE, "unary: unknown op %d", (int)op);
    const char *name = names[op];
    DICE_TRY(op_check_input(g, name, x, err));
    const Tensor *t = &x->value;
    DICE_TRY(graph_new_var(g, out, t->dtype, t->ndim, t->shape, &x, 1, err));
    void *y = (*out)->value.data;
    int64_t n = tensor_numel(t);
    DICE_TRY(ON_DEVICE(g, ew_unary_cpu(op, y, t->data, n, alpha, beta, t->dtype, err),
                       ew_unary_cuda(op, y, t->data, n, alpha, beta, t->dtype, g->ctx->stream, err)));
    if (!(*out)->requires_grad) return 0;
    UnarySaved *s;
    DICE_TRY(arena_alloc_host(g->arena, sizeof *s, (void **)&s, err));
    s->op = op;
    s->alpha = alpha;
    return graph_record(g, name, unary_backward, *out, &x, 1, s, err);
}

int op_gelu(Graph *g, Var **out, Var *x, DiceError *err) { return op_unary(g, out, x, EW_GELU, 1, 0, err); }
int op_gelu_tanh(Graph *g, Var **out, Var *x, DiceError *err) { return op_unary(g, out, x, EW_GELU_TANH, 1, 0, err); }
int op_quick_gelu(Graph *g, Var **out, Var *x, DiceError *err) { return op_unary(g, out, x, EW_QUICK_GELU, 1, 0, err); }
int op_silu(Graph *g, Var **out, Var *x, DiceError *err) { return op_unary(g, out, x, EW_SILU, 1, 0, err); }
int op_relu(Graph *g, Var **out, Var *x, DiceError *err) { return op_unary(g, out, x, EW_RELU, 1, 0, err); }
int op_scale(Graph *g, Var **out, Var *x, double alpha, double beta, DiceError *err) {
    return op_unary(g, out, x, EW_AFFINE, alpha, beta, err);
}

// ---------------------------------------------------------------- GEGLU: (..., 2F) -> (..., F)
static int geglu_backward(Graph *g, TapeNode *node, DiceError *err) {
    Var *x = node->inputs[0];
    Tensor dx;
    DICE_TRY(grad_like(g, &dx, x, err));
    int64_t f = x->value.shape[x->value.ndim - 1] / 2, rows = tensor_numel(&dx) / (2 * f > 0 ? 2 * f : 1);
    const void *dy = node->output->grad.data;
    DType dt = dx.dtype;
    DICE_TRY(ON_DEVICE(g, ew_geglu_backward_cpu(dx.data, dy, x->value.data, rows, f, dt, err),
                       ew_geglu_backward_cuda(dx.data, dy, x->value.data, rows, f, dt, g->ctx->stream, err)));
    return graph_accumulate(g, x, &dx, err);
}

int op_geglu(Graph *g, Var **out, Var *x, DiceError *err) {
    DICE_TRY(op_check_input(g, "geglu", x, err));
    const Tensor *t = &x->value;
    char d[128];
    DICE_CHECK(err, t->ndim >= 1 && t->shape[t->ndim - 1] % 2 == 0, "geglu: input %s needs an even last dim (h | gate)",
               tensor_describe(t, d, sizeof d));
    int64_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    int64_t f = shape[t->ndim - 1] / 2;
    shape[t->ndim - 1] = f;
    DICE_TRY(graph_new_var(g, out, t->dtype, t->ndim, shape, &x, 1, err));
    int64_t rows = f ? tensor_numel(t) / (2 * f) : 0;
    void *y = (*out)->value.data;
    DICE_TRY(ON_DEVICE(g, ew_geglu_cpu(y, t->data, rows, f, t->dtype, err),
                       ew_geglu_cuda(y, t->data, rows, f, t->dtype, g->ctx->stream, err)));
    return graph_record(g, "geglu", geglu_backward, *out, &x, 1, NULL, err);
}

// ---------------------------------------------------------------- softmax over the last dim
static int softmax_backward(Graph *g, TapeNode *node, DiceError *err) {
    Var *x = node->inputs[0];
    Tensor dx;
    DICE_TRY(grad_like(g, &dx, x, err));
    int64_t cols = x->value.shape[x->value.ndim - 1], rows = cols ? tensor_numel(&dx) / cols : 0;
    const void *dy = node->output->grad.data, *y = node->output->value.data;
    DType dt = dx.dtype;
    DICE_TRY(ON_DEVICE(g, ew_softmax_backward_cpu(dx.data, dy, y, rows, cols, dt, err),
                       ew_softmax_backward_cuda(dx.data, dy, y, rows, cols, dt, g->ctx->stream, err)));
    return graph_accumulate(g, x, &dx, err);
}

int op_softmax(Graph *g, Var **out, Var *x, DiceError *err) {
    DICE_TRY(op_check_input(g, "softmax", x, err));
    const Tensor *t = &x->value;
    DICE_CHECK(err, t->ndim >= 1, "softmax: the input is a scalar");
    DICE_TRY(graph_new_var(g, out, t->dtype, t->ndim, t->shape, &x, 1, err));
    int64_t cols = t->shape[t->ndim - 1], rows = cols ? tensor_numel(t) / cols : 0;
    void *y = (*out)->value.data;
    DICE_TRY(ON_DEVICE(g, ew_softmax_cpu(y, t->data, rows, cols, t->dtype, err),
                       ew_softmax_cuda(y, t->data, rows, cols, t->dtype, g->ctx->stream, err)));
    return graph_record(g, "softmax", softmax_backward, *out, &x, 1, NULL, err);
}

// ---------------------------------------------------------------- broadcasting
// Shapes right-aligned to `nd` dims: size of t along dim d (1 where t has no such dim).
static int64_t aligned_size(const Tensor *t, int nd, int d) {
    int td = d - (nd - t->ndim);
    return td >= 0 ? t->shape[td] : 1;
}

// Element strides of contiguous t read in an nd-dim index space: 0 along dims where t has size 1.
static void aligned_strides(const Tensor *t, int nd, int64_t *stride) {
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        int64_t size = aligned_size(t, nd, d);
        stride[d] = size == 1 ? 0 : s;
        s *= size;
    }
}

// Removes size-1 dims and merges each dim into the one before it where both stride sets allow (row-major
// addressing unchanged). Returns the new number of dims (at least 1).
static int collapse_dims(int ndim, int64_t *shape, int64_t *s1, int64_t *s2) {
    int n = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue;
        if (n > 0 && s1[n - 1] == s1[d] * shape[d] && s2[n - 1] == s2[d] * shape[d]) {
            shape[n - 1] *= shape[d];
            s1[n - 1] = s1[d];
            s2[n - 1] = s2[d];
            continue;
        }
        shape[n] = shape[d];
        s1[n] = s1[d];
        s2[n] = s2[d];
        n++;
    }
    if (n == 0) {
        shape[0] = 1;
        s1[0] = s2[0] = 0;
        n = 1;
    }
    return n;
}

// The broadcast shape of a and b (numpy rules), or an error naming op and both shapes.
static int broadcast_shape(const char *op, const Tensor *a, const Tensor *b, int *nd, int64_t *shape, DiceError *err) {
    *nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < *nd; d++) {
        int64_t sa = aligned_size(a, *nd, d), sb = aligned_size(b, *nd, d);
        char da[128], db[128];
        DICE_CHECK(err, sa == sb || sa == 1 || sb == 1, "%s: shapes %s and %s do not broadcast", op,
                   tensor_describe(a, da, sizeof da), tensor_describe(b, db, sizeof db));
        shape[d] = sa == 1 ? sb : sa;
    }
    return 0;
}

// y (shape, nd dims) = a op b.
static int binary_run(Graph *g, EwBinary op, void *y, const Tensor *a, const Tensor *b, int nd, const int64_t *shape,
                      DiceError *err) {
    EwBroadcast p;
    memset(&p, 0, sizeof p);
    memcpy(p.shape, shape, (size_t)nd * sizeof *shape);
    aligned_strides(a, nd, p.a_stride);
    aligned_strides(b, nd, p.b_stride);
    p.ndim = collapse_dims(nd, p.shape, p.a_stride, p.b_stride);
    return ON_DEVICE(g, ew_binary_cpu(op, y, a->data, b->data, &p, a->dtype, err),
                     ew_binary_cuda(op, y, a->data, b->data, &p, a->dtype, g->ctx->stream, err));
}

// Gradient of operand t = inputs[which] of y = a op b (other = the other operand): dy for add, dy * other for
// mul, summed over the dims t was broadcast along.
static int binary_operand_grad(Graph *g, TapeNode *node, EwBinary op, int which, DiceError *err) {
    Var *t = node->inputs[which], *other = node->inputs[1 - which];
    if (!t->requires_grad) return 0;
    const Tensor *dy = &node->output->grad;
    Tensor grad;
    if (tensor_numel(&t->value) == tensor_numel(dy)) {  // not broadcast: dy, or dy * other
        if (op == EW_ADD) {
            DICE_TRY(tensor_reshape(&grad, dy, t->value.ndim, t->value.shape, err));
            return graph_accumulate(g, t, &grad, err);
        }
        DICE_TRY(grad_like(g, &grad, t, err));
        DICE_TRY(binary_run(g, EW_MUL, grad.data, dy, &other->value, dy->ndim, dy->shape, err));
        return graph_accumulate(g, t, &grad, err);
    }
    int nd = dy->ndim;
    int64_t t_stride[TENSOR_MAX_DIMS], o_stride[TENSOR_MAX_DIMS] = {0}, dy_stride[TENSOR_MAX_DIMS];
    aligned_strides(&t->value, nd, t_stride);
    aligned_strides(dy, nd, dy_stride);
    if (op == EW_MUL) aligned_strides(&other->value, nd, o_stride);
    EwReduce p;
    memset(&p, 0, sizeof p);
    for (int d = 0; d < nd; d++) {
        if (dy->shape[d] == 1) continue;
        bool keep = aligned_size(&t->value, nd, d) != 1;
        int k = keep ? p.keep_ndim++ : p.red_ndim++;
        (keep ? p.keep_shape : p.red_shape)[k] = dy->shape[d];
        (keep ? p.keep_dy : p.red_dy)[k] = dy_stride[d];
        (keep ? p.keep_other : p.red_other)[k] = o_stride[d];
    }
    p.keep_ndim = collapse_dims(p.keep_ndim, p.keep_shape, p.keep_dy, p.keep_other);
    p.red_ndim = collapse_dims(p.red_ndim, p.red_shape, p.red_dy, p.red_other);
    const void *od = op == EW_MUL ? other->value.data : NULL;
    DICE_TRY(grad_like(g, &grad, t, err));
    DICE_TRY(ON_DEVICE(g, ew_broadcast_grad_cpu(grad.data, dy->data, od, &p, grad.dtype, err),
                       ew_broadcast_grad_cuda(grad.data, dy->data, od, &p, grad.dtype, g->ctx->stream, err)));
    return graph_accumulate(g, t, &grad, err);
}

static int add_backward(Graph *g, TapeNode *node, DiceError *err) {
    DICE_TRY(binary_operand_grad(g, node, EW_ADD, 0, err));
    return binary_operand_grad(g, node, EW_ADD, 1, err);
}

static int mul_backward(Graph *g, TapeNode *node, DiceError *err) {
    DICE_TRY(binary_operand_grad(g, node, EW_MUL, 0, err));
    return binary_operand_grad(g, node, EW_MUL, 1, err);
}

static int binary(Graph *g, Var **out, const char *name, EwBinary op, Var *a, Var *b, DiceError *err) {
    DICE_TRY(op_check_input(g, name, a, err));
    DICE_TRY(op_check_input(g, name, b, err));
    DICE_TRY(check_same_dtype(name, a, b, err));
    int nd;
    int64_t shape[TENSOR_MAX_DIMS];
    DICE_TRY(broadcast_shape(name, &a->value, &b->value, &nd, shape, err));
    Var *inputs[2] = {a, b};
    DICE_TRY(graph_new_var(g, out, a->value.dtype, nd, shape, inputs, 2, err));
    DICE_TRY(binary_run(g, op, (*out)->value.data, &a->value, &b->value, nd, shape, err));
    return graph_record(g, name, op == EW_ADD ? add_backward : mul_backward, *out, inputs, 2, NULL, err);
}

int op_add(Graph *g, Var **out, Var *a, Var *b, DiceError *err) { return binary(g, out, "add", EW_ADD, a, b, err); }
int op_mul(Graph *g, Var **out, Var *a, Var *b, DiceError *err) { return binary(g, out, "mul", EW_MUL, a, b, err); }

// ---------------------------------------------------------------- modulation: x (B, ..., C), scale / shift (B, 1.., C)
// x viewed as (B, N, C).
static void modulate_dims(const Tensor *x, int64_t *b, int64_t *n, int64_t *c) {
    *b = x->shape[0];
    *c = x->shape[x->ndim - 1];
    *n = *b != 0 && *c != 0 ? tensor_numel(x) / (*b * *c) : 0;
}

static int modulate_backward(Graph *g, TapeNode *node, DiceError *err) {
    Var *x = node->inputs[0], *scale = node->inputs[1], *shift = node->n_inputs > 2 ? node->inputs[2] : NULL;
    Tensor dx = {0}, dscale = {0}, dshift = {0};
    if (x->requires_grad) DICE_TRY(grad_like(g, &dx, x, err));
    if (scale->requires_grad) DICE_TRY(grad_like(g, &dscale, scale, err));
    if (shift && shift->requires_grad) DICE_TRY(grad_like(g, &dshift, shift, err));
    int64_t b, n, c;
    modulate_dims(&x->value, &b, &n, &c);
    const void *dy = node->output->grad.data, *xd = x->value.data, *sd = scale->value.data;
    DType dt = x->value.dtype;
    DICE_TRY(ON_DEVICE(g, ew_modulate_backward_cpu(dx.data, dscale.data, dshift.data, dy, xd, sd, b, n, c, dt, err),
                       ew_modulate_backward_cuda(dx.data, dscale.data, dshift.data, dy, xd, sd, b, n, c, dt,
                                                 g->ctx->stream, err)));
    if (dx.data) DICE_TRY(graph_accumulate(g, x, &dx, err));
    if (dscale.data) DICE_TRY(graph_accumulate(g, scale, &dscale, err));
    if (dshift.data) DICE_TRY(graph_accumulate(g, shift, &dshift, err));
    return 0;
}

// scale / shift must be (B, 1, ..., 1, C) for x (B, ..., C).
static int check_modulation(const Tensor *x, const Tensor *m, const char *what, DiceError *err) {
    bool ok = m->ndim == x->ndim && x->ndim >= 2 && m->shape[0] == x->shape[0] &&
              m->shape[x->ndim - 1] == x->shape[x->ndim - 1];
    for (int d = 1; ok && d < x->ndim - 1; d++) ok = m->shape[d] == 1;
    char dx[128], dm[128];
    DICE_CHECK(err, ok, "modulate: %s %s must be (B, 1, ..., 1, C) for x %s", what, tensor_describe(m, dm, sizeof dm),
               tensor_describe(x, dx, sizeof dx));
    return 0;
}

int op_modulate(Graph *g, Var **out, Var *x, Var *scale, Var *shift, DiceError *err) {
    DICE_TRY(op_check_input(g, "modulate", x, err));
    DICE_TRY(op_check_input(g, "modulate", scale, err));
    DICE_TRY(check_same_dtype("modulate", x, scale, err));
    DICE_TRY(check_modulation(&x->value, &scale->value, "scale", err));
    if (shift) {
        DICE_TRY(op_check_input(g, "modulate", shift, err));
        DICE_TRY(check_same_dtype("modulate", x, shift, err));
        DICE_TRY(check_modulation(&x->value, &shift->value, "shift", err));
    }
    Var *inputs[3] = {x, scale, shift};
    int n_inputs = shift ? 3 : 2;
    const Tensor *t = &x->value;
    DICE_TRY(graph_new_var(g, out, t->dtype, t->ndim, t->shape, inputs, n_inputs, err));
    int64_t b, n, c;
    modulate_dims(t, &b, &n, &c);
    void *y = (*out)->value.data;
    const void *sh = shift ? shift->value.data : NULL;
    DICE_TRY(ON_DEVICE(g, ew_modulate_cpu(y, t->data, scale->value.data, sh, b, n, c, t->dtype, err),
                       ew_modulate_cuda(y, t->data, scale->value.data, sh, b, n, c, t->dtype, g->ctx->stream, err)));
    return graph_record(g, "modulate", modulate_backward, *out, inputs, n_inputs, NULL, err);
}
