// nn/op_conv.c — conv2d forward and backward (see op_conv.h): shape and dtype checks, dispatch to the CPU twin,
// the custom CUDA kernels or cuDNN (kernels/conv.h), and the tape node computing the needed gradients.
#include "op_conv.h"

#include <limits.h>
#include <string.h>

#include "kernels/conv.h"
#include "tensor_copy.h"

typedef struct ConvSaved {
    ConvShape shape;
    Tensor x, weight;  // the forward's input and weight (backward reads them; they must stay unchanged)
} ConvSaved;

static bool on_cuda(const Graph *g) { return g->ctx->device == DEV_CUDA; }

static int check_operand(const Graph *g, const char *what, const Tensor *t, int ndim, DType dtype, DiceError *err) {
    char d[128];
    tensor_describe(t, d, sizeof d);
    DICE_CHECK(err, t->ndim == ndim, "conv2d: %s %s must have %d dimensions", what, d, ndim);
    DICE_CHECK(err, t->device == g->ctx->device, "conv2d: %s %s is not on the context's device (%s)", what, d,
               device_name(g->ctx->device));
    DICE_CHECK(err, tensor_is_contiguous(t), "conv2d: %s %s must be contiguous", what, d);
    DICE_CHECK(err, t->dtype == dtype, "conv2d: %s %s must have the input's dtype %s", what, d, dtype_name(dtype));
    for (int i = 0; i < ndim; i++) DICE_CHECK(err, t->shape[i] <= INT_MAX, "conv2d: %s %s is too large", what, d);
    return 0;
}

// Checks x (B, H, W, Cin), weight (Cout, kh, kw, Cin) and bias (Cout) and fills the shape.
static int conv_shape_of(const Graph *g, ConvShape *s, const Tensor *x, const Tensor *w, const Tensor *b, int stride,
                         int pad, DiceError *err) {
    char dx[128], dw[128];
    DType dt = x->dtype;
    if (on_cuda(g))
        DICE_CHECK(err, dt == DT_BF16, "conv2d: input %s on CUDA must be bf16", tensor_describe(x, dx, sizeof dx));
    else
        DICE_CHECK(err, dt == DT_F32 || dt == DT_F64, "conv2d: input %s on the CPU must be f32 or f64",
                   tensor_describe(x, dx, sizeof dx));
    DICE_TRY(check_operand(g, "input (B, H, W, Cin)", x, 4, dt, err));
    DICE_TRY(check_operand(g, "weight (Cout, kh, kw, Cin)", w, 4, dt, err));
    DICE_CHECK(err, w->shape[3] == x->shape[3],
               "conv2d: weight %s (Cout, kh, kw, Cin) does not match input %s (B, H, W, Cin)",
               tensor_describe(w, dw, sizeof dw), tensor_describe(x, dx, sizeof dx));
    if (b) {
        DICE_TRY(check_operand(g, "bias (Cout)", b, 1, dt, err));
        DICE_CHECK(err, b->shape[0] == w->shape[0], "conv2d: bias of %lld channels for a weight %s",
                   (long long)b->shape[0], tensor_describe(w, dw, sizeof dw));
    }
    if (conv_shape_init(s, (int)x->shape[0], (int)x->shape[1], (int)x->shape[2], (int)x->shape[3], (int)w->shape[0],
                        (int)w->shape[1], (int)w->shape[2], stride, pad, err)) {
        dice_error_context(err, "conv2d of %s with %s", tensor_describe(x, dx, sizeof dx),
                           tensor_describe(w, dw, sizeof dw));
        return -1;
    }
    return 0;
}

#ifdef DICE_CUDA
// The context's cuDNN state when it asks for cuDNN (DICE_CONV=cudnn), NULL for the custom kernels. Asking for
// cuDNN in a build without it fails here.
static int cudnn_of(Graph *g, ConvCudnn **c, DiceError *err) {
    *c = NULL;
    ConvHandle *h = g->ctx->conv;
    DICE_CHECK(err, h, "conv2d: the CUDA context has no convolution handle (contexts come from ctx_init_cuda)");
    if (conv_handle_backend(h) != CONV_BACKEND_CUDNN) return 0;
    return conv_handle_cudnn(h, c, err);
}
#endif

static int conv_forward(Graph *g, const ConvShape *s, Tensor *y, const Tensor *x, const Tensor *w, const Tensor *b,
                        DiceError *err) {
    const void *bias = b ? b->data : NULL;
    if (!on_cuda(g)) return conv2d_forward_cpu(s, x->dtype, y->data, x->data, w->data, bias, err);
#ifdef DICE_CUDA
    ConvCudnn *c;
    DICE_TRY(cudnn_of(g, &c, err));
#if defined(DICE_CUDNN) && !defined(DICE_EMU)
    if (c) return conv2d_forward_cudnn(c, s, y->data, x->data, w->data, bias, err);
#endif
    return conv2d_forward_cuda(s, CONV_TILE_AUTO, y->data, x->data, w->data, bias, g->ctx->stream, err);
#else
    return DICE_FAIL(err, "conv2d: this build of dice has no CUDA backend");
#endif
}

static int conv_backward_data(Graph *g, const ConvShape *s, Tensor *dx, const Tensor *dy, const Tensor *w,
                              DiceError *err) {
    if (!on_cuda(g)) return conv2d_backward_data_cpu(s, dy->dtype, dx->data, dy->data, w->data, err);
#ifdef DICE_CUDA
    ConvCudnn *c;
    DICE_TRY(cudnn_of(g, &c, err));
#if defined(DICE_CUDNN) && !defined(DICE_EMU)
    if (c) return conv2d_backward_data_cudnn(c, s, dx->data, dy->data, w->data, err);
#endif
    return conv2d_backward_data_cuda(s, CONV_TILE_AUTO, dx->data, dy->data, w->data, g->ctx->stream, err);
#else
    return DICE_FAIL(err, "conv2d: this build of dice has no CUDA backend");
#endif
}

static int conv_backward_weight(Graph *g, const ConvShape *s, Tensor *dw, const Tensor *dy, const Tensor *x,
                                DiceError *err) {
    if (!on_cuda(g)) return conv2d_backward_weight_cpu(s, dy->dtype, dw->data, dy->data, x->data, err);
#ifdef DICE_CUDA
    ConvCudnn *c;
    DICE_TRY(cudnn_of(g, &c, err));
#if defined(DICE_CUDNN) && !defined(DICE_EMU)
    if (c) return conv2d_backward_weight_cudnn(c, s, dw->data, dy->data, x->data, err);
#endif
    void *workspace;
    DICE_TRY(arena_alloc(g->arena, conv2d_backward_weight_workspace(s, CONV_TILE_AUTO), &workspace, err));
    return conv2d_backward_weight_cuda(s, CONV_TILE_AUTO, dw->data, dy->data, x->data, workspace, g->ctx->stream, err);
#else
    return DICE_FAIL(err, "conv2d: this build of dice has no CUDA backend");
#endif
}

static int conv_backward_bias(Graph *g, const ConvShape *s, Tensor *db, const Tensor *dy, DiceError *err) {
    if (!on_cuda(g)) return conv2d_backward_bias_cpu(s, dy->dtype, db->data, dy->data, err);
#ifdef DICE_CUDA
    // Both paths use dice's kernel: cuDNN 9's cudnnConvolutionBackwardBias answers NOT_SUPPORTED for NHWC bf16
    // (seen on an H200 with cuDNN 9 from PyTorch's wheels, 2026-11-26).
    void *workspace;
    DICE_TRY(arena_alloc(g->arena, conv2d_backward_bias_workspace(s), &workspace, err));
    return conv2d_backward_bias_cuda(s, db->data, dy->data, workspace, g->ctx->stream, err);
#else
    return DICE_FAIL(err, "conv2d: this build of dice has no CUDA backend");
#endif
}

// inputs: x, then (trainable variant) the weight and, if any, the bias Vars.
static int conv_backward(Graph *g, TapeNode *node, DiceError *err) {
    const ConvSaved *sv = node->saved;
    const ConvShape *s = &sv->shape;
    const Tensor *dy = &node->output->grad;
    Var *x = node->inputs[0];
    Var *w = node->n_inputs > 1 ? node->inputs[1] : NULL, *b = node->n_inputs > 2 ? node->inputs[2] : NULL;
    if (x->requires_grad) {
        Tensor dx;
        DICE_TRY(arena_tensor(g->arena, &dx, dy->dtype, 4, x->value.shape, err));
        DICE_TRY(conv_backward_data(g, s, &dx, dy, &sv->weight, err));
        DICE_TRY(graph_accumulate(g, x, &dx, err));
    }
    if (w && w->requires_grad) {
        Tensor dw;
        DICE_TRY(arena_tensor(g->arena, &dw, dy->dtype, 4, w->value.shape, err));
        DICE_TRY(conv_backward_weight(g, s, &dw, dy, &sv->x, err));
        DICE_TRY(graph_accumulate(g, w, &dw, err));
    }
    if (b && b->requires_grad) {
        Tensor db;
        DICE_TRY(arena_tensor(g->arena, &db, dy->dtype, 1, b->value.shape, err));
        DICE_TRY(conv_backward_bias(g, s, &db, dy, err));
        DICE_TRY(graph_accumulate(g, b, &db, err));
    }
    return 0;
}

// inputs[0] is x; inputs[1..n_inputs) the weight and bias Vars of the trainable variant.
static int conv2d(Graph *g, Var **out, Var *const *inputs, int n_inputs, const Tensor *w, const Tensor *b, int stride,
                  int pad, DiceError *err) {
    ConvShape s;
    const Tensor *x = &inputs[0]->value;
    DICE_TRY(conv_shape_of(g, &s, x, w, b, stride, pad, err));
    int64_t shape[4] = {s.B, s.Ho, s.Wo, s.Cout};
    DICE_TRY(graph_new_var(g, out, x->dtype, 4, shape, inputs, n_inputs, err));
    DICE_TRY(conv_forward(g, &s, &(*out)->value, x, w, b, err));
    if (!(*out)->requires_grad) return 0;
    ConvSaved *saved;
    DICE_TRY(arena_alloc_host(g->arena, sizeof *saved, (void **)&saved, err));
    saved->shape = s;
    saved->x = *x;
    saved->weight = *w;
    return graph_record(g, "conv2d", conv_backward, *out, inputs, n_inputs, saved, err);
}

// A weight or bias bound to a Param (graph_bind_params) makes this the trainable op, the other one a frozen leaf.
int op_conv2d(Graph *g, Var **out, Var *x, const Tensor *weight, const Tensor *bias, int stride, int padding,
              DiceError *err) {
    DICE_CHECK(err, x && weight, "conv2d: input and weight are required");
    Var *w, *b;
    DICE_TRY(graph_bound_var(g, &w, weight, err));
    DICE_TRY(graph_bound_var(g, &b, bias, err));
    if (!w && !b) return conv2d(g, out, &x, 1, weight, bias, stride, padding, err);
    if (!w) DICE_TRY(graph_leaf(g, &w, weight, false, err));
    if (bias && !b) DICE_TRY(graph_leaf(g, &b, bias, false, err));
    return op_conv2d_trainable(g, out, x, w, b, stride, padding, err);
}

int op_conv2d_trainable(Graph *g, Var **out, Var *x, Var *weight, Var *bias, int stride, int padding, DiceError *err) {
    Var *inputs[3] = {x, weight, bias};
    return conv2d(g, out, inputs, bias ? 3 : 2, &weight->value, bias ? &bias->value : NULL, stride, padding, err);
}

int conv_weight_from_oihw(DiceCtx *ctx, Tensor *dst, const Tensor *src, DiceError *err) {
    char a[128], b[128];
    DICE_CHECK(err,
               src->ndim == 4 && dst->ndim == 4 && dst->shape[0] == src->shape[0] && dst->shape[1] == src->shape[2] &&
                   dst->shape[2] == src->shape[3] && dst->shape[3] == src->shape[1],
               "conv_weight_from_oihw: %s is not the (Cout, kh, kw, Cin) repacking of %s (Cout, Cin, kh, kw)",
               tensor_describe(dst, a, sizeof a), tensor_describe(src, b, sizeof b));
    const int perm[4] = {0, 2, 3, 1};
    Tensor view;
    DICE_TRY(tensor_permute(&view, src, perm, err));
    return tensor_copy(ctx, dst, &view, err);
}
