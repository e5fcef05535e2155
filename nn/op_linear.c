// nn/op_linear.c — linear layers and batched matmul (see op_linear.h): checks, device dispatch to
// kernels/gemm* and backward.
#include "op_linear.h"

static bool on_cuda(const Graph *g) { return g->ctx->device == DEV_CUDA; }

// ---------------------------------------------------------------- device dispatch
static int run_gemm(Graph *g, const GemmArgs *a, DiceError *err) {
    if (!on_cuda(g)) return gemm_cpu(a, err);
#ifdef DICE_CUDA
    return gemm_cuda(g->ctx->gemm, a, g->ctx->stream, err);
#else
    return DICE_FAIL(err, "this build of dice has no CUDA backend");
#endif
}

static int run_act_forward(Graph *g, void *y, const void *z, int64_t n, DType dt, GemmAct act, DiceError *err) {
    if (!on_cuda(g)) return gemm_act_forward_cpu(y, z, n, dt, act, err);
#ifdef DICE_CUDA
    return gemm_act_forward_cuda(y, z, n, dt, act, g->ctx->stream, err);
#else
    return DICE_FAIL(err, "this build of dice has no CUDA backend");
#endif
}

static int run_act_backward(Graph *g, void *dz, const void *dy, const void *z, int64_t n, DType dt, GemmAct act,
                            DiceError *err) {
    if (!on_cuda(g)) return gemm_act_backward_cpu(dz, dy, z, n, dt, act, err);
#ifdef DICE_CUDA
    return gemm_act_backward_cuda(dz, dy, z, n, dt, act, g->ctx->stream, err);
#else
    return DICE_FAIL(err, "this build of dice has no CUDA backend");
#endif
}

static int run_bias_grad(Graph *g, void *db, const void *dz, int64_t rows, int64_t cols, DType dt, DiceError *err) {
    if (!on_cuda(g)) return gemm_bias_grad_cpu(db, dz, rows, cols, dt, err);
#ifdef DICE_CUDA
    return gemm_bias_grad_cuda(db, dz, rows, cols, dt, g->ctx->stream, err);
#else
    return DICE_FAIL(err, "this build of dice has no CUDA backend");
#endif
}

// ---------------------------------------------------------------- checks
static int check_operand(const Graph *g, const char *op, const char *name, const Tensor *t, DType dtype,
                         DiceError *err) {
    char d[128];
    DICE_CHECK(err, t->device == g->ctx->device, "%s: %s %s is not on the context's device (%s)", op, name,
               tensor_describe(t, d, sizeof d), device_name(g->ctx->device));
    DICE_CHECK(err, tensor_is_contiguous(t), "%s: %s %s must be contiguous", op, name, tensor_describe(t, d, sizeof d));
    DICE_CHECK(err, t->dtype == dtype, "%s: %s %s does not have the input's dtype %s", op, name,
               tensor_describe(t, d, sizeof d), dtype_name(dtype));
    if (on_cuda(g))
        DICE_CHECK(err, dtype == DT_BF16 || dtype == DT_F32, "%s: %s %s on CUDA (bf16, f32 supported)", op, name,
                   tensor_describe(t, d, sizeof d));
    else
        DICE_CHECK(err, dtype == DT_F32 || dtype == DT_F64, "%s: %s %s on the CPU (f32, f64 supported)", op, name,
                   tensor_describe(t, d, sizeof d));
    return 0;
}

// ---------------------------------------------------------------- linear
typedef struct LinearSaved {
    GemmAct act;
    Tensor z;  // (M, out) pre-activation, kept for the GELUs' backward only
} LinearSaved;

// dy -> dz = dy * act'(z), then dx = dz W, dW = dz^T x, db = sum over rows of dz, as required.
static int linear_backward(Graph *g, TapeNode *node, DiceError *err) {
    Var *x = node->inputs[0], *w = node->inputs[1], *b = node->n_inputs > 2 ? node->inputs[2] : NULL;
    const LinearSaved *s = node->saved;
    const Tensor *dy = &node->output->grad;
    DType dt = dy->dtype;
    int64_t out_f = w->value.shape[0], in_f = w->value.shape[1];
    int64_t M = out_f ? tensor_numel(dy) / out_f : 0;
    const void *dz = dy->data;
    if (s->act != GEMM_ACT_NONE) {
        Tensor t;
        int64_t shape[2] = {M, out_f};
        DICE_TRY(arena_tensor(g->arena, &t, dt, 2, shape, err));
        // ReLU's derivative is read from its output; the GELUs' from the saved pre-activation.
        const void *z = s->act == GEMM_ACT_RELU ? node->output->value.data : s->z.data;
        DICE_TRY(run_act_backward(g, t.data, dy->data, z, M * out_f, dt, s->act, err));
        dz = t.data;
    }
    if (x->requires_grad) {
        Tensor dx;
        DICE_TRY(arena_tensor(g->arena, &dx, dt, x->value.ndim, x->value.shape, err));
        GemmArgs a = gemm_args_contiguous(1, M, in_f, out_f, false, false, dz, w->value.data, dx.data, NULL, dt, dt,
                                          GEMM_ACT_NONE);
        DICE_TRY(run_gemm(g, &a, err));
        DICE_TRY(graph_accumulate(g, x, &dx, err));
    }
    if (w->requires_grad) {
        Tensor dw;
        DICE_TRY(arena_tensor(g->arena, &dw, dt, 2, w->value.shape, err));
        GemmArgs a = gemm_args_contiguous(1, out_f, in_f, M, true, false, dz, x->value.data, dw.data, NULL, dt, dt,
                                          GEMM_ACT_NONE);
        DICE_TRY(run_gemm(g, &a, err));
        DICE_TRY(graph_accumulate(g, w, &dw, err));
    }
    if (b && b->requires_grad) {
        Tensor db;
        DICE_TRY(arena_tensor(g->arena, &db, dt, 1, b->value.shape, err));
        DICE_TRY(run_bias_grad(g, db.data, dz, M, out_f, dt, err));
        DICE_TRY(graph_accumulate(g, b, &db, err));
    }
    return 0;
}

static int linear_impl(Graph *g, Var **out, const char *op, Var *x, Var *w, Var *b, GemmAct act, DiceError *err) {
    DType dt = x->value.dtype;
    char dx_[128], dw_[128], db_[128];
    DICE_TRY(check_operand(g, op, "input", &x->value, dt, err));
    DICE_TRY(check_operand(g, op, "weight", &w->value, dt, err));
    if (b) DICE_TRY(check_operand(g, op, "bias", &b->value, dt, err));
    DICE_CHECK(err, (unsigned)act <= GEMM_ACT_GELU_ERF, "%s: unknown activation %d", op, (int)act);
    const Tensor *xv = &x->value, *wv = &w->value;
    DICE_CHECK(err, xv->ndim >= 1 && wv->ndim == 2 && wv->shape[1] == xv->shape[xv->ndim - 1] &&
                        (!b || (b->value.ndim == 1 && b->value.shape[0] == wv->shape[0])),
               "%s: input %s, weight %s (out, in) and bias %s do not fit", op, tensor_describe(xv, dx_, sizeof dx_),
               tensor_describe(wv, dw_, sizeof dw_), b ? tensor_describe(&b->value, db_, sizeof db_) : "none");
    int64_t out_f = wv->shape[0], in_f = wv->shape[1], M = 1, shape[TENSOR_MAX_DIMS];
    for (int i = 0; i < xv->ndim - 1; i++) {
        shape[i] = xv->shape[i];
        M *= xv->shape[i];
    }
    shape[xv->ndim - 1] = out_f;
    Var *inputs[3] = {x, w, b};
    int n_inputs = b ? 3 : 2;
    DICE_TRY(graph_new_var(g, out, dt, xv->ndim, shape, inputs, n_inputs, err));
    Var *y = *out;
    const void *bias = b ? b->value.data : NULL;
    bool keep_z = y->requires_grad && (act == GEMM_ACT_GELU_TANH || act == GEMM_ACT_GELU_ERF);
    LinearSaved *saved = NULL;
    if (y->requires_grad) {
        DICE_TRY(arena_alloc_host(g->arena, sizeof *saved, (void **)&saved, err));
        saved->act = act;
        saved->z = (Tensor){0};
    }
    if (keep_z) {
        int64_t zshape[2] = {M, out_f};
        DICE_TRY(arena_tensor(g->arena, &saved->z, dt, 2, zshape, err));
        GemmArgs a = gemm_args_contiguous(1, M, out_f, in_f, false, true, xv->data, wv->data, saved->z.data, bias, dt,
                                          dt, GEMM_ACT_NONE);
        DICE_TRY(run_gemm(g, &a, err));
        DICE_TRY(run_act_forward(g, y->value.data, saved->z.data, M * out_f, dt, act, err));
    } else {
        GemmArgs a = gemm_args_contiguous(1, M, out_f, in_f, false, true, xv->data, wv->data, y->value.data, bias, dt,
                                          dt, act);
        DICE_TRY(run_gemm(g, &a, err));
    }
    if (!y->requires_grad) return 0;
    return graph_record(g, op, linear_backward, y, inputs, n_inputs, saved, err);
}

// The Var of a layer tensor: its bound Param's (graph_bind_params) or a frozen leaf.
static int layer_var(Graph *g, Var **out, const Tensor *t, DiceError *err) {
    DICE_TRY(graph_bound_var(g, out, t, err));
    return *out ? 0 : graph_leaf(g, out, t, false, err);
}

int op_linear(Graph *g, Var **out, Var *x, const Tensor *weight, const Tensor *bias, GemmAct act, DiceError *err) {
    DICE_CHECK(err, x && weight, "linear: input and weight are required");
    Var *w, *b = NULL;
    DICE_TRY(layer_var(g, &w, weight, err));
    if (bias) DICE_TRY(layer_var(g, &b, bias, err));
    return linear_impl(g, out, "linear", x, w, b, act, err);
}

int op_linear_trainable(Graph *g, Var **out, Var *x, Var *weight, Var *bias, GemmAct act, DiceError *err) {
    DICE_CHECK(err, x && weight, "linear_trainable: input and weight are required");
    return linear_impl(g, out, "linear_trainable", x, weight, bias, act, err);
}

// ---------------------------------------------------------------- matmul
typedef struct MatmulSaved {
    bool transpose_b;
} MatmulSaved;

static int matmul_backward(Graph *g, TapeNode *node, DiceError *err) {
    Var *a = node->inputs[0], *b = node->inputs[1];
    bool tb = ((const MatmulSaved *)node->saved)->transpose_b;
    const Tensor *dc = &node->output->grad;  // (B, M, N)
    DType dt = dc->dtype;
    int64_t B = a->value.shape[0], M = a->value.shape[1], K = a->value.shape[2], N = dc->shape[2];
    if (a->requires_grad) {  // dA (B, M, K) = dC op(b)^T
        Tensor da;
        DICE_TRY(arena_tensor(g->arena, &da, dt, 3, a->value.shape, err));
        GemmArgs ga = gemm_args_contiguous(B, M, K, N, false, !tb, dc->data, b->value.data, da.data, NULL, dt, dt,
                                           GEMM_ACT_NONE);
        DICE_TRY(run_gemm(g, &ga, err));
        DICE_TRY(graph_accumulate(g, a, &da, err));
    }
    if (b->requires_grad) {  // dB (B, K, N) = a^T dC, or with transpose_b dB (B, N, K) = dC^T a
        Tensor db;
        DICE_TRY(arena_tensor(g->arena, &db, dt, 3, b->value.shape, err));
        GemmArgs gb = tb ? gemm_args_contiguous(B, N, K, M, true, false, dc->data, a->value.data, db.data, NULL, dt,
                                                dt, GEMM_ACT_NONE)
                         : gemm_args_contiguous(B, K, N, M, true, false, a->value.data, dc->data, db.data, NULL, dt,
                                                dt, GEMM_ACT_NONE);
        DICE_TRY(run_gemm(g, &gb, err));
        DICE_TRY(graph_accumulate(g, b, &db, err));
    }
    return 0;
}

int op_matmul(Graph *g, Var **out, Var *a, Var *b, bool transpose_b, DiceError *err) {
    DICE_CHECK(err, a && b, "matmul: two inputs are required");
    DType dt = a->value.dtype;
    DICE_TRY(check_operand(g, "matmul", "a", &a->value, dt, err));
    DICE_TRY(check_operand(g, "matmul", "b", &b->value, dt, err));
    const Tensor *av = &a->value, *bv = &b->value;
    char da[128], db[128];
    DICE_CHECK(err, av->ndim == 3 && bv->ndim == 3 && av->shape[0] == bv->shape[0] &&
                        av->shape[2] == bv->shape[transpose_b ? 2 : 1],
               "matmul: a %s (B, M, K) and b %s (%s) do not fit", tensor_describe(av, da, sizeof da),
               tensor_describe(bv, db, sizeof db), transpose_b ? "B, N, K" : "B, K, N");
    int64_t B = av->shape[0], M = av->shape[1], K = av->shape[2], N = bv->shape[transpose_b ? 1 : 2];
    int64_t shape[3] = {B, M, N};
    Var *inputs[2] = {a, b};
    DICE_TRY(graph_new_var(g, out, dt, 3, shape, inputs, 2, err));
    GemmArgs ga = gemm_args_contiguous(B, M, N, K, false, transpose_b, av->data, bv->data, (*out)->value.data, NULL, dt,
                                       dt, GEMM_ACT_NONE);
    DICE_TRY(run_gemm(g, &ga, err));
    if (!(*out)->requires_grad) return 0;
    MatmulSaved *saved;
    DICE_TRY(arena_alloc_host(g->arena, sizeof *saved, (void **)&saved, err));
    saved->transpose_b = transpose_b;
    return graph_record(g, "matmul", matmul_backward, *out, inputs, 2, saved, err);
}
