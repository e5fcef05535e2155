// tests/test_composite.c — a miniature of a UNet block's path from the text embedding (group norm +
// SiLU, conv3x3, self- and cross-attention with projections and residuals) against PyTorch
// (tests/golden/composite.safetensors, scripts/make_golden.py --only composite): the output and the
// gradients with respect to the image and the context, on the CPU in f32 and on CUDA in bf16.
#include <math.h>
#include <stdio.h>

#include "models/weights.h"
#include "nn/ops.h"
#include "nn/tensor_copy.h"
#include "test.h"

typedef struct CompositeWeights {
    Tensor gn_w, gn_b, conv_w, conv_b;
    Tensor q[2], k[2], v[2], o[2], o_b[2];
} CompositeWeights;

static int load_weights(Weights *w, CompositeWeights *cw, DiceError *err) {
    int64_t c8[1] = {8}, c16[1] = {16}, conv[4] = {16, 8, 3, 3}, sq[2] = {16, 16}, kv2[2] = {16, 10};
    int ohwi[4] = {0, 2, 3, 1};
    DICE_TRY(weights_get(w, &cw->gn_w, "gn.weight", 1, c8, NULL, err));
    DICE_TRY(weights_get(w, &cw->gn_b, "gn.bias", 1, c8, NULL, err));
    DICE_TRY(weights_get(w, &cw->conv_w, "conv.weight", 4, conv, ohwi, err));
    DICE_TRY(weights_get(w, &cw->conv_b, "conv.bias", 1, c16, NULL, err));
    for (int a = 0; a < 2; a++) {
        char name[64];
        const char *p = a ? "attn2" : "attn1";
        snprintf(name, sizeof name, "%s.to_q.weight", p);
        DICE_TRY(weights_get(w, &cw->q[a], name, 2, sq, NULL, err));
        snprintf(name, sizeof name, "%s.to_k.weight", p);
        DICE_TRY(weights_get(w, &cw->k[a], name, 2, a ? kv2 : sq, NULL, err));
        snprintf(name, sizeof name, "%s.to_v.weight", p);
        DICE_TRY(weights_get(w, &cw->v[a], name, 2, a ? kv2 : sq, NULL, err));
        snprintf(name, sizeof name, "%s.to_out.0.weight", p);
        DICE_TRY(weights_get(w, &cw->o[a], name, 2, sq, NULL, err));
        snprintf(name, sizeof name, "%s.to_out.0.bias", p);
        DICE_TRY(weights_get(w, &cw->o_b[a], name, 1, c16, NULL, err));
    }
    return 0;
}

// t + out(attention(q t, k ctx, v ctx)), 2 heads x 8.
static int attention_block(Graph *g, const CompositeWeights *cw, int a, Var *t, Var *ctx, Var **out, DiceError *err) {
    Var *q, *k, *v, *o, *proj;
    DICE_TRY(op_linear(g, &q, t, &cw->q[a], NULL, GEMM_ACT_NONE, err));
    DICE_TRY(op_linear(g, &k, ctx, &cw->k[a], NULL, GEMM_ACT_NONE, err));
    DICE_TRY(op_linear(g, &v, ctx, &cw->v[a], NULL, GEMM_ACT_NONE, err));
    DICE_TRY(op_attention(g, &o, q, k, v, 2, 1.0f / sqrtf(8.0f), false, NULL, err));
    DICE_TRY(op_linear(g, &proj, o, &cw->o[a], &cw->o_b[a], GEMM_ACT_NONE, err));
    return op_add(g, out, t, proj, err);
}

static int composite_forward(Graph *g, const CompositeWeights *cw, Var *x, Var *ctx, Var **y, DiceError *err) {
    Var *h, *c, *t;
    DICE_TRY(op_group_norm(g, &h, x, &cw->gn_w, &cw->gn_b, 4, 1e-5f, true, err));
    DICE_TRY(op_conv2d(g, &c, h, &cw->conv_w, &cw->conv_b, 1, 1, err));
    int64_t tokens[3] = {2, 30, 16};
    DICE_TRY(op_reshape(g, &t, c, 3, tokens, err));
    DICE_TRY(attention_block(g, cw, 0, t, t, &t, err));
    return attention_block(g, cw, 1, t, ctx, y, err);
}

// Runs the composite on `device` in `dtype`; compares y, dL/dx and dL/dcontext with PyTorch's.
static void run_composite(TestCtx *tc, Device device, DType dtype, double tol) {
    DiceCtx ctx;
    if (device == DEV_CUDA) CHECK_OK(ctx_init_cuda(&ctx, 0, &tc->err));
    else ctx_init_cpu(&ctx);
    Arena weights_arena, step, host;
    CHECK_OK(arena_init(&weights_arena, "weights", device, 1 << 16, 0, &tc->err));
    CHECK_OK(arena_init(&step, "step", device, 1 << 20, 0, &tc->err));
    CHECK_OK(arena_init(&host, "host", DEV_CPU, 1 << 16, 0, &tc->err));
    const char *path = test_path(tc, "tests/golden/composite.safetensors");
    Weights w;
    CHECK_OK(weights_open(&w, &path, 1, &ctx, &weights_arena, dtype, &tc->err));
    CompositeWeights cw;
    CHECK_OK(load_weights(&w, &cw, &tc->err));
    Tensor x, c, lw, y_ref, gx_ref, gc_ref;
    int64_t sx[4] = {2, 6, 5, 8}, sc[3] = {2, 7, 10}, sy[3] = {2, 30, 16};
    CHECK_OK(weights_get(&w, &x, "x", 4, sx, NULL, &tc->err));
    CHECK_OK(weights_get(&w, &c, "context", 3, sc, NULL, &tc->err));
    CHECK_OK(weights_get(&w, &lw, "loss_weight", 3, sy, NULL, &tc->err));
    // The references stay f32 on the host.
    Weights ref;
    DiceCtx cpu;
    ctx_init_cpu(&cpu);
    CHECK_OK(weights_open(&ref, &path, 1, &cpu, &host, DT_F32, &tc->err));
    CHECK_OK(weights_get(&ref, &y_ref, "y", 3, sy, NULL, &tc->err));
    CHECK_OK(weights_get(&ref, &gx_ref, "grad_x", 4, sx, NULL, &tc->err));
    CHECK_OK(weights_get(&ref, &gc_ref, "grad_context", 3, sc, NULL, &tc->err));
    // The file also holds the references, so only missing or mis-shaped tensors are problems here.
    CHECK(w.missing.count == 0 && w.misshaped.count == 0 && ref.missing.count == 0);

    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &step, &tc->err));
    Var *xv, *cv, *y;
    CHECK_OK(graph_leaf(&g, &xv, &x, true, &tc->err));
    CHECK_OK(graph_leaf(&g, &cv, &c, true, &tc->err));
    CHECK_OK(composite_forward(&g, &cw, xv, cv, &y, &tc->err));
    CHECK_OK(graph_backward_from(&g, y, &lw, &tc->err));
    Tensor got;
    CHECK_OK(tensor_to(&ctx, &host, &got, &y->value, DT_F32, &tc->err));
    CHECK_REL_ERR((float *)got.data, (float *)y_ref.data, (size_t)tensor_numel(&got), tol);
    CHECK_OK(tensor_to(&ctx, &host, &got, &xv->grad, DT_F32, &tc->err));
    CHECK_REL_ERR((float *)got.data, (float *)gx_ref.data, (size_t)tensor_numel(&got), tol);
    CHECK_OK(tensor_to(&ctx, &host, &got, &cv->grad, DT_F32, &tc->err));
    CHECK_REL_ERR((float *)got.data, (float *)gc_ref.data, (size_t)tensor_numel(&got), tol);
    graph_free(&g);
    weights_close(&ref);
    weights_close(&w);
    arena_free(&host);
    arena_free(&step);
    arena_free(&weights_arena);
    if (device == DEV_CUDA) ctx_free(&ctx);
}

// fp32 against PyTorch fp32: different summation orders only (relative ~1e-7 per op, a dozen ops).
DICE_TEST(composite_matches_pytorch_cpu_f32) { run_composite(tc, DEV_CPU, DT_F32, 1e-5); }

// bf16 storage with fp32 accumulation against the fp32 reference: bf16 rounds to 2^-8 relative at
// every op boundary; over the ~12 ops of the block that compounds to about 1e-2.
DICE_CUDA_TEST(composite_matches_pytorch_cuda_bf16) { run_composite(tc, DEV_CUDA, DT_BF16, 2e-2); }
