// nn/op_attention.c — op_attention (see op_attention.h): checks, dispatch to the CPU twin or the CUDA
// flash-attention kernels (kernels/attention.h), and the backward recorded on the tape.
#include "op_attention.h"

#include "kernels/attention.h"

typedef struct AttentionSaved {
    AttentionShape shape;
    Tensor lse;               // (B, H, Nq): f32 on CUDA, the input dtype on the CPU
    const uint8_t *key_mask;  // (B, Nk) or NULL
} AttentionSaved;

static bool on_cuda(const Graph *g) { return g->ctx->device == DEV_CUDA; }

static int check_inputs(const Graph *g, const Var *q, const Var *k, const Var *v, int heads, const Tensor *mask,
                        DiceError *err) {
    char a[128], b[128], c[128];
    const Tensor *qt = &q->value, *kt = &k->value, *vt = &v->value;
    const Tensor *all[3] = {qt, kt, vt};
    for (int i = 0; i < 3; i++) {
        DICE_CHECK(err, all[i]->ndim == 3, "attention: %s must be (B, N, heads * D)",
                   tensor_describe(all[i], a, sizeof a));
        DICE_CHECK(err, all[i]->device == g->ctx->device, "attention: %s is not on the context's device (%s)",
                   tensor_describe(all[i], a, sizeof a), device_name(g->ctx->device));
        DICE_CHECK(err, all[i]->stride[2] == 1, "attention: %s needs a contiguous last dim",
                   tensor_describe(all[i], a, sizeof a));
    }
    DICE_CHECK(err, qt->dtype == kt->dtype && qt->dtype == vt->dtype && qt->shape[0] == kt->shape[0] &&
                        qt->shape[0] == vt->shape[0] && qt->shape[2] == kt->shape[2] && qt->shape[2] == vt->shape[2] &&
                        kt->shape[1] == vt->shape[1],
               "attention: q %s, k %s, v %s do not match (q (B, Nq, C), k and v (B, Nk, C), one dtype)",
               tensor_describe(qt, a, sizeof a), tensor_describe(kt, b, sizeof b), tensor_describe(vt, c, sizeof c));
    DICE_CHECK(err, heads > 0 && qt->shape[2] % heads == 0, "attention: %lld channels do not split into %d heads",
               (long long)qt->shape[2], heads);
    DICE_CHECK(err, kt->shape[1] > 0, "attention: no keys (k %s)", tensor_describe(kt, a, sizeof a));
    int64_t d = qt->shape[2] / heads;
    if (on_cuda(g)) {
        DICE_CHECK(err, qt->dtype == DT_BF16, "attention: %s on CUDA (bf16 supported; op_cast first)",
                   tensor_describe(qt, a, sizeof a));
        DICE_CHECK(err, d % 8 == 0 && d <= ATTENTION_MAX_HEAD_DIM_CUDA,
                   "attention: head dim %lld on CUDA (a multiple of 8 up to %d)", (long long)d,
                   ATTENTION_MAX_HEAD_DIM_CUDA);
        for (int i = 0; i < 3; i++)
            DICE_CHECK(err, all[i]->stride[0] % 8 == 0 && all[i]->stride[1] % 8 == 0 &&
                                (uintptr_t)all[i]->data % 16 == 0,
                       "attention: %s on CUDA needs 16-byte aligned rows (strides a multiple of 8)",
                       tensor_describe(all[i], a, sizeof a));
    } else {
        DICE_CHECK(err, qt->dtype == DT_F32 || qt->dtype == DT_F64, "attention: %s on the CPU (f32, f64 supported)",
                   tensor_describe(qt, a, sizeof a));
    }
    if (mask) {
        DICE_CHECK(err, mask->ndim == 2 && mask->shape[0] == qt->shape[0] && mask->shape[1] == kt->shape[1] &&
                            (mask->dtype == DT_U8 || mask->dtype == DT_BOOL) && tensor_is_contiguous(mask) &&
                            mask->device == g->ctx->device,
                   "attention: key padding mask %s must be a contiguous (B, Nk) = (%lld, %lld) u8/bool tensor on %s",
                   tensor_describe(mask, a, sizeof a), (long long)qt->shape[0], (long long)kt->shape[1],
                   device_name(g->ctx->device));
    }
    return 0;
}

static int attention_backward(Graph *g, TapeNode *node, DiceError *err) {
    const AttentionSaved *s = node->saved;
    Var *q = node->inputs[0], *k = node->inputs[1], *v = node->inputs[2];
    const Tensor *dout = &node->output->grad, *out = &node->output->value;
    Tensor dq = {0}, dk = {0}, dv = {0};
    DType dt = q->value.dtype;
    if (q->requires_grad) DICE_TRY(arena_tensor(g->arena, &dq, dt, 3, q->value.shape, err));
    if (k->requires_grad) DICE_TRY(arena_tensor(g->arena, &dk, dt, 3, k->value.shape, err));
    if (v->requires_grad) DICE_TRY(arena_tensor(g->arena, &dv, dt, 3, v->value.shape, err));
    if (!on_cuda(g)) {
        DICE_TRY(attention_backward_cpu(&s->shape, dt, dq.data, dk.data, dv.data, dout->data, q->value.data,
                                        k->value.data, v->value.data, out->data, s->lse.data, s->key_mask, err));
    } else {
#ifdef DICE_CUDA
        void *workspace;
        DICE_TRY(arena_alloc(g->arena, attention_backward_cuda_workspace(&s->shape), &workspace, err));
        DICE_TRY(attention_backward_cuda(&s->shape, dq.data, dk.data, dv.data, dout->data, q->value.data,
                                         k->value.data, v->value.data, out->data, s->lse.data, s->key_mask,
                                         workspace, g->ctx->stream, err));
#else
        return DICE_FAIL(err, "attention: this build of dice has no CUDA backend");
#endif
    }
    if (dq.data) DICE_TRY(graph_accumulate(g, q, &dq, err));
    if (dk.data) DICE_TRY(graph_accumulate(g, k, &dk, err));
    if (dv.data) DICE_TRY(graph_accumulate(g, v, &dv, err));
    return 0;
}

int op_attention(Graph *g, Var **out, Var *q, Var *k, Var *v, int heads, float scale, bool causal,
                 const Tensor *key_padding_mask, DiceError *err) {
    DICE_TRY(check_inputs(g, q, k, v, heads, key_padding_mask, err));
    const Tensor *qt = &q->value, *kt = &k->value, *vt = &v->value;
    AttentionShape shape = {
        .batch = (int)qt->shape[0],
        .heads = heads,
        .head_dim = (int)(qt->shape[2] / heads),
        .n_q = (int)qt->shape[1],
        .n_k = (int)kt->shape[1],
        .q_stride = {qt->stride[0], qt->stride[1]},
        .k_stride = {kt->stride[0], kt->stride[1]},
        .v_stride = {vt->stride[0], vt->stride[1]},
        .scale = scale,
        .causal = causal,
    };
    Var *inputs[3] = {q, k, v};
    DICE_TRY(graph_new_var(g, out, qt->dtype, 3, qt->shape, inputs, 3, err));
    Tensor lse;
    int64_t lse_shape[3] = {shape.batch, heads, shape.n_q};
    DICE_TRY(arena_tensor(g->arena, &lse, on_cuda(g) ? DT_F32 : qt->dtype, 3, lse_shape, err));
    const uint8_t *mask = key_padding_mask ? key_padding_mask->data : NULL;
    if (!on_cuda(g)) {
        DICE_TRY(attention_forward_cpu(&shape, qt->dtype, (*out)->value.data, lse.data, qt->data, kt->data, vt->data,
                                       mask, err));
    } else {
#ifdef DICE_CUDA
        DICE_TRY(attention_forward_cuda(&shape, (*out)->value.data, lse.data, qt->data, kt->data, vt->data, mask,
                                        g->ctx->stream, err));
#else
        return DICE_FAIL(err, "attention: this build of dice has no CUDA backend");
#endif
    }
    if (!(*out)->requires_grad) return 0;
    AttentionSaved *saved;
    DICE_TRY(arena_alloc_host(g->arena, sizeof *saved, (void **)&saved, err));
    saved->shape = shape;
    saved->lse = lse;
    saved->key_mask = mask;
    return graph_record(g, "attention", attention_backward, *out, inputs, 3, saved, err);
}
