// tests/test_attention.c — op_attention: gradient checks of dq, dk, dv in f64 on the CPU (self and
// cross attention, causal, key padding mask, fully masked rows, odd sizes, every subset of inputs
// requiring a gradient), the CPU semantics (masked rows, strided q/k/v views, errors), and the CUDA
// flash-attention kernels (emulated by `make test`, on a GPU by `make test-gpu`) against the CPU in f32,
// forward and backward.
#include <stdio.h>
#include <stdlib.h>

#include "cuda_parity.h"
#include "kernels/attention.h"
#include "nn/cuda_api.h"
#include "nn/op_attention.h"
#include "nn/tensor_copy.h"

typedef struct AttnCase {
    int heads;
    float scale;
    bool causal;
    const Tensor *mask;  // (B, Nk) u8 or NULL
} AttnCase;

static int attn_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    const AttnCase *c = user;
    return op_attention(g, out, in[0], in[1], in[2], c->heads, c->scale, c->causal, c->mask, err);
}

// q (B, Nq, H*D), k and v (B, Nk, H*D), f64 in [-1.5, 1.5).
static int random_qkv(Arena *a, Tensor in[3], int B, int nq, int nk, int C, uint64_t *rng, DiceError *err) {
    int64_t qs[3] = {B, nq, C}, ks[3] = {B, nk, C};
    DICE_TRY(test_random_f64(a, &in[0], 3, qs, -1.5, 1.5, rng, err));
    DICE_TRY(test_random_f64(a, &in[1], 3, ks, -1.5, 1.5, rng, err));
    return test_random_f64(a, &in[2], 3, ks, -1.5, 1.5, rng, err);
}

DICE_TEST(attention_gradcheck_self_and_cross) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 16, 0, &tc->err));
    uint64_t rng = tc->seed;
    Tensor in[3];
    const bool all[3] = {true, true, true}, kv[3] = {false, true, true}, q_only[3] = {true, false, false},
               v_only[3] = {false, false, true};
    // Self attention, 2 heads of 3, odd N.
    CHECK_OK(random_qkv(&arena, in, 2, 5, 5, 6, &rng, &tc->err));
    AttnCase self = {2, 0.57f, false, NULL};
    CHECK(gradcheck(tc, "self attention", attn_fn, &self, in, all, 3, 1e-6) == 0);
    CHECK(gradcheck(tc, "self attention, q only", attn_fn, &self, in, q_only, 3, 1e-6) == 0);
    // Cross attention Nq = 5, Nk = 7 (DICE: the gradient reaches k and v from the text embedding).
    CHECK_OK(random_qkv(&arena, in, 2, 5, 7, 8, &rng, &tc->err));
    AttnCase cross = {2, 0.5f, false, NULL};
    CHECK(gradcheck(tc, "cross attention", attn_fn, &cross, in, all, 3, 1e-6) == 0);
    CHECK(gradcheck(tc, "cross attention, k and v", attn_fn, &cross, in, kv, 3, 1e-6) == 0);
    CHECK(gradcheck(tc, "cross attention, v only", attn_fn, &cross, in, v_only, 3, 1e-6) == 0);
    // One head, Nq > Nk, negative scale.
    CHECK_OK(random_qkv(&arena, in, 1, 7, 3, 4, &rng, &tc->err));
    AttnCase one = {1, -0.8f, false, NULL};
    CHECK(gradcheck(tc, "one head", attn_fn, &one, in, all, 3, 1e-6) == 0);
    arena_free(&arena);
}

DICE_TEST(attention_gradcheck_causal_and_padding_mask) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 16, 0, &tc->err));
    uint64_t rng = tc->seed;
    Tensor in[3];
    const bool all[3] = {true, true, true}, kv[3] = {false, true, true};
    const int sizes[3][2] = {{6, 6}, {5, 7}, {7, 5}};  // (Nq, Nk): square (CLIP), wider, taller
    for (int i = 0; i < 3; i++) {
        CHECK_OK(random_qkv(&arena, in, 2, sizes[i][0], sizes[i][1], 6, &rng, &tc->err));
        AttnCase causal = {2, 0.6f, true, NULL};
        CHECK(gradcheck(tc, "causal", attn_fn, &causal, in, all, 3, 1e-6) == 0);
    }
    // Padding mask over Nk = 7: batch 0 keeps keys 1, 2, 4, 6 (so with causal, query 0 sees nothing),
    // batch 1 masks every key (all of its outputs and gradients are zero).
    uint8_t mask_bits[2 * 7] = {0, 1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    Tensor mask;
    int64_t mshape[2] = {2, 7};
    CHECK_OK(tensor_wrap(&mask, mask_bits, DT_U8, DEV_CPU, 2, mshape, &tc->err));
    CHECK_OK(random_qkv(&arena, in, 2, 5, 7, 4, &rng, &tc->err));
    AttnCase masked = {2, 0.7f, false, &mask}, masked_causal = {2, 0.7f, true, &mask};
    CHECK(gradcheck(tc, "padding mask", attn_fn, &masked, in, all, 3, 1e-6) == 0);
    CHECK(gradcheck(tc, "padding mask, k and v", attn_fn, &masked, in, kv, 3, 1e-6) == 0);
    CHECK(gradcheck(tc, "padding mask + causal", attn_fn, &masked_causal, in, all, 3, 1e-6) == 0);
    arena_free(&arena);
}

// Masked rows give zeros (not NaN) and zero gradients; one visible key copies its value row; strided
// views of a fused qkv tensor give exactly what contiguous copies give; f32 agrees with f64.
DICE_TEST(attention_cpu_semantics) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 20, 0, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
    uint64_t rng = tc->seed;
    enum { B = 2, N = 4, H = 2, D = 3, C = H * D };
    // qkv (B, N, 3C) as one tensor, q/k/v as narrow views of it.
    double qkv_data[B * N * 3 * C];
    for (int i = 0; i < B * N * 3 * C; i++) qkv_data[i] = test_rand_uniform(&rng, -2, 2);
    Tensor qkv, views[3], copies[3];
    int64_t shape[3] = {B, N, 3 * C};
    CHECK_OK(tensor_wrap(&qkv, qkv_data, DT_F64, DEV_CPU, 3, shape, &tc->err));
    Var *vv[3], *vc[3], *out_views, *out_copies;
    for (int i = 0; i < 3; i++) {
        CHECK_OK(tensor_narrow(&views[i], &qkv, 2, i * C, C, &tc->err));
        CHECK_OK(tensor_to(&ctx, &arena, &copies[i], &views[i], DT_F64, &tc->err));
        CHECK_OK(graph_leaf(&g, &vv[i], &views[i], true, &tc->err));
        CHECK_OK(graph_leaf(&g, &vc[i], &copies[i], true, &tc->err));
    }
    // Key 0 masked in batch 0, so with causal query 0 of batch 0 sees no key; batch 1 keeps only key 2.
    uint8_t mask_bits[B * N] = {0, 1, 1, 1, 0, 0, 1, 0};
    Tensor mask;
    int64_t mshape[2] = {B, N};
    CHECK_OK(tensor_wrap(&mask, mask_bits, DT_BOOL, DEV_CPU, 2, mshape, &tc->err));
    CHECK_OK(op_attention(&g, &out_views, vv[0], vv[1], vv[2], H, 0.5f, true, &mask, &tc->err));
    CHECK_OK(op_attention(&g, &out_copies, vc[0], vc[1], vc[2], H, 0.5f, true, &mask, &tc->err));
    const double *ov = out_views->value.data, *oc = out_copies->value.data;
    CHECK(!memcmp(ov, oc, sizeof(double) * B * N * C));
    for (int c = 0; c < C; c++) {
        CHECK(ov[c] == 0.0);  // batch 0, query 0: no visible key
        // batch 1, queries 0 and 1 see nothing (causal, key 2 only); queries 2 and 3 copy v[key 2]
        CHECK(ov[(N + 0) * C + c] == 0.0 && ov[(N + 1) * C + c] == 0.0);
        double v2 = qkv_data[((N + 2) * 3 + 2) * C + c];
        CHECK_NEAR(ov[(N + 2) * C + c], v2, 1e-15);
        CHECK_NEAR(ov[(N + 3) * C + c], v2, 1e-15);
    }
    // Backward through both; the strided inputs get the same (contiguous) gradients.
    double w[B * N * C];
    for (int i = 0; i < B * N * C; i++) w[i] = test_rand_uniform(&rng, -1, 1);
    Tensor wt;
    CHECK_OK(tensor_wrap(&wt, w, DT_F64, DEV_CPU, 3, out_views->value.shape, &tc->err));
    CHECK_OK(graph_backward_from(&g, out_views, &wt, &tc->err));
    CHECK_OK(graph_backward_from(&g, out_copies, &wt, &tc->err));
    for (int i = 0; i < 3; i++) {
        CHECK(tensor_is_contiguous(&vv[i]->grad));
        CHECK(!memcmp(vv[i]->grad.data, vc[i]->grad.data, sizeof(double) * B * N * C));
    }
    const double *dq = vv[0]->grad.data;
    for (int c = 0; c < C; c++) CHECK(dq[c] == 0.0 && dq[N * C + c] == 0.0);  // rows that saw no key
    // f32 against f64 on the same values.
    Tensor q32, k32, v32;
    CHECK_OK(tensor_to(&ctx, &arena, &q32, &views[0], DT_F32, &tc->err));
    CHECK_OK(tensor_to(&ctx, &arena, &k32, &views[1], DT_F32, &tc->err));
    CHECK_OK(tensor_to(&ctx, &arena, &v32, &views[2], DT_F32, &tc->err));
    Var *a, *b, *c3, *out32;
    CHECK_OK(graph_leaf(&g, &a, &q32, false, &tc->err));
    CHECK_OK(graph_leaf(&g, &b, &k32, false, &tc->err));
    CHECK_OK(graph_leaf(&g, &c3, &v32, false, &tc->err));
    CHECK_OK(op_attention(&g, &out32, a, b, c3, H, 0.5f, true, &mask, &tc->err));
    for (int i = 0; i < B * N * C; i++) CHECK_NEAR(((float *)out32->value.data)[i], ov[i], 1e-5);
    // Errors name the problem.
    CHECK_FAILS_WITH(op_attention(&g, &out32, a, b, c3, 4, 0.5f, false, NULL, &tc->err), "do not split into 4 heads");
    CHECK_FAILS_WITH(op_attention(&g, &out32, vv[0], b, c3, H, 0.5f, false, NULL, &tc->err), "do not match");
    Tensor bad_mask;
    CHECK_OK(tensor_wrap(&bad_mask, mask_bits, DT_U8, DEV_CPU, 2, (int64_t[2]){B, N - 1}, &tc->err));
    CHECK_FAILS_WITH(op_attention(&g, &out32, a, b, c3, H, 0.5f, false, &bad_mask, &tc->err), "key padding mask");
    graph_free(&g);
    arena_free(&arena);
}

// ---------------------------------------------------------------- CUDA against the CPU

typedef struct CudaCase {
    int B, H, D, nq, nk;
    bool causal, mask, fused_qkv;  // fused_qkv: q, k, v are narrow views of one (B, N, 3C) tensor
    bool need_q, need_k, need_v;   // which inputs require a gradient
} CudaCase;

// Runs one case on the CPU (f32) and CUDA (bf16) and compares out, dq, dk, dv.
static void run_cuda_case(TestCtx *tc, const CudaCase *cc, CudaTestEnv *e, uint64_t *rng) {
    DiceCtx *gpu = &e->gpu;
    Arena *host = &e->host, *dev = &e->dev;
    cuda_env_reset(e);
    const int B = cc->B, C = cc->H * cc->D;
    const float scale = 1.0f / sqrtf((float)cc->D);
    char what[160];
    snprintf(what, sizeof what, "B %d H %d D %d Nq %d Nk %d%s%s%s", B, cc->H, cc->D, cc->nq, cc->nk,
             cc->causal ? " causal" : "", cc->mask ? " masked" : "", cc->fused_qkv ? " fused-qkv" : "");
    // Inputs: host f32 (bf16 values) and device bf16; with fused_qkv, views of one (B, N, 3C) tensor.
    Tensor hq, hk, hv, hdo, dq_, dk_, dv_, dfused, hfused, hmask, dmask;
    int64_t qs[3] = {B, cc->nq, C}, ks[3] = {B, cc->nk, C}, fs[3] = {B, cc->nq, 3 * C};
    if (cc->fused_qkv) {
        CHECK_OK(cuda_env_random(e, 3, fs, -2, 2, DT_BF16, rng, &hfused, NULL, &tc->err));
        CHECK_OK(tensor_narrow(&hq, &hfused, 2, 0, C, &tc->err));
        CHECK_OK(tensor_narrow(&hk, &hfused, 2, C, C, &tc->err));
        CHECK_OK(tensor_narrow(&hv, &hfused, 2, 2 * C, C, &tc->err));
        CHECK_OK(tensor_to(gpu, dev, &dfused, &hfused, DT_BF16, &tc->err));
        CHECK_OK(tensor_narrow(&dq_, &dfused, 2, 0, C, &tc->err));
        CHECK_OK(tensor_narrow(&dk_, &dfused, 2, C, C, &tc->err));
        CHECK_OK(tensor_narrow(&dv_, &dfused, 2, 2 * C, C, &tc->err));
    } else {
        CHECK_OK(cuda_env_random(e, 3, qs, -2, 2, DT_BF16, rng, &hq, NULL, &tc->err));
        CHECK_OK(cuda_env_random(e, 3, ks, -2, 2, DT_BF16, rng, &hk, NULL, &tc->err));
        CHECK_OK(cuda_env_random(e, 3, ks, -2, 2, DT_BF16, rng, &hv, NULL, &tc->err));
        CHECK_OK(tensor_to(gpu, dev, &dq_, &hq, DT_BF16, &tc->err));
        CHECK_OK(tensor_to(gpu, dev, &dk_, &hk, DT_BF16, &tc->err));
        CHECK_OK(tensor_to(gpu, dev, &dv_, &hv, DT_BF16, &tc->err));
    }
    CHECK_OK(cuda_env_random(e, 3, qs, -2, 2, DT_BF16, rng, &hdo, NULL, &tc->err));
    const Tensor *mask_cpu = NULL, *mask_gpu = NULL;
    if (cc->mask) {  // batch 0 keeps roughly two keys in three; the last batch keeps none
        int64_t ms[2] = {B, cc->nk};
        CHECK_OK(arena_tensor(host, &hmask, DT_U8, 2, ms, &tc->err));
        uint8_t *m = hmask.data;
        for (int i = 0; i < B * cc->nk; i++) m[i] = i / cc->nk == B - 1 && B > 1 ? 0 : test_rand_u64(rng) % 3 != 0;
        CHECK_OK(tensor_to(gpu, dev, &dmask, &hmask, DT_U8, &tc->err));
        mask_cpu = &hmask;
        mask_gpu = &dmask;
    }
    CHECK_OK(test_poison_arena(dev, &tc->err));  // everything the op allocates from here on starts as NaN

    Graph gc, gg;
    CHECK_OK(graph_init(&gc, &e->cpu, host, &tc->err));
    CHECK_OK(graph_init(&gg, gpu, dev, &tc->err));
    Var *cq, *ck, *cv, *gq, *gk, *gv, *cout, *gout;
    CHECK_OK(graph_leaf(&gc, &cq, &hq, cc->need_q, &tc->err));
    CHECK_OK(graph_leaf(&gc, &ck, &hk, cc->need_k, &tc->err));
    CHECK_OK(graph_leaf(&gc, &cv, &hv, cc->need_v, &tc->err));
    CHECK_OK(graph_leaf(&gg, &gq, &dq_, cc->need_q, &tc->err));
    CHECK_OK(graph_leaf(&gg, &gk, &dk_, cc->need_k, &tc->err));
    CHECK_OK(graph_leaf(&gg, &gv, &dv_, cc->need_v, &tc->err));
    CHECK_OK(op_attention(&gc, &cout, cq, ck, cv, cc->H, scale, cc->causal, mask_cpu, &tc->err));
    CHECK_OK(op_attention(&gg, &gout, gq, gk, gv, cc->H, scale, cc->causal, mask_gpu, &tc->err));
    // bf16 output (relative rounding 2^-9) and P rounded to bf16 before P V: ~2e-3 in norm.
    double rel;
    CHECK_OK(cuda_env_rel_err(e, &gout->value, &cout->value, &rel, &tc->err));
    CHECK_MSG(rel <= 1e-2, "%s: forward relative error %.3g > 1e-2", what, rel);

    Tensor ddo;
    CHECK_OK(tensor_to(gpu, dev, &ddo, &hdo, DT_BF16, &tc->err));
    CHECK_OK(graph_backward_from(&gc, cout, &hdo, &tc->err));
    CHECK_OK(graph_backward_from(&gg, gout, &ddo, &tc->err));
    Var *cvars[3] = {cq, ck, cv}, *gvars[3] = {gq, gk, gv};
    static const char *names[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; i++) {
        CHECK_MSG(!gvars[i]->grad.data == !gvars[i]->requires_grad, "%s: %s present iff required", what, names[i]);
        if (!gvars[i]->requires_grad) continue;
        // P and dS rounded to bf16 for the tensor cores, bf16 gradients: ~3e-3 in norm.
        CHECK_OK(cuda_env_rel_err(e, &gvars[i]->grad, &cvars[i]->grad, &rel, &tc->err));
        CHECK_MSG(rel <= 1e-2, "%s: %s relative error %.3g > 1e-2", what, names[i], rel);
    }
    graph_free(&gc);
    graph_free(&gg);
}

static void run_cuda_cases(TestCtx *tc, const CudaCase *cases, int n) {
    CudaTestEnv e;
    CHECK_OK(cuda_env_init(&e, 1 << 20, 1 << 22, &tc->err));
    uint64_t rng = tc->seed;
    for (int i = 0; i < n && !tc->failed; i++) run_cuda_case(tc, &cases[i], &e, &rng);
    cuda_env_free(&e);
}

// Head dims on the padded-tile path (40 -> 48, 24 -> 32, 8 -> 16) and exact ones (64), ragged N.
DICE_CUDA_TEST(attention_cuda_self_and_cross_match_cpu) {
    const CudaCase cases[] = {
        {1, 2, 40, 37, 37, false, false, false, true, true, true},   // SD1.5 head dim, ragged self-attention
        {1, 2, 64, 64, 77, false, false, false, true, true, true},   // cross-attention over 77 tokens
        {1, 2, 64, 64, 77, false, false, false, false, true, true},  // DICE: gradient to k and v only
        {1, 2, 24, 77, 77, true, false, false, true, true, true},    // CLIP-like causal, D = 24
        {2, 1, 8, 5, 7, false, false, false, true, false, true},     // smallest head dim, tiny N
        {1, 2, 40, 33, 33, false, false, true, true, true, true},    // q, k, v views of a fused qkv
    };
    run_cuda_cases(tc, cases, (int)(sizeof cases / sizeof cases[0]));
}

// Masks (padding with a fully masked batch, causal with Nq != Nk) and the large head dims (80; 112, 160,
// 200 and 256 with the two-pass backward and the smaller tiles).
DICE_CUDA_TEST(attention_cuda_masks_and_large_heads_match_cpu) {
    const CudaCase cases[] = {
        {2, 1, 64, 37, 77, false, true, false, true, true, true},   // T5-style key padding
        {2, 1, 48, 20, 29, true, true, false, true, true, true},    // padding + causal: empty rows
        {1, 1, 80, 70, 20, true, false, false, true, true, true},   // causal, Nq > Nk
        {1, 1, 80, 20, 70, true, false, false, true, true, true},   // causal, Nq < Nk
        {1, 1, 160, 20, 30, false, false, false, true, true, true}, // SD1.5 16x16 level head dim
        {1, 1, 160, 20, 30, false, false, false, true, false, false},
        {1, 1, 160, 20, 30, false, false, false, false, false, true},
        {1, 1, 112, 21, 40, true, false, false, true, true, true},
        {1, 1, 200, 19, 45, false, false, false, true, true, true},
        {1, 1, 256, 9, 17, false, true, false, true, true, true},
    };
    run_cuda_cases(tc, cases, (int)(sizeof cases / sizeof cases[0]));
}

// Several query blocks and key tiles per (batch, head): the double-buffered loops, the causal block
// order and early stop, and the dQ atomics from several key blocks.
DICE_CUDA_TEST(attention_cuda_many_tiles_match_cpu) {
    const CudaCase cases[] = {
        {1, 2, 64, 300, 300, true, false, false, true, true, true},
        {2, 2, 40, 257, 77, false, true, false, true, true, true},
        {1, 1, 128, 150, 190, false, false, false, true, true, true},
        {1, 1, 72, 140, 140, true, false, true, true, true, true},  // PixArt head dim, fused qkv
    };
    run_cuda_cases(tc, cases, (int)(sizeof cases / sizeof cases[0]));
}

DICE_CUDA_TEST(attention_cuda_rejects_unsupported) {
    DiceCtx gpu;
    CHECK_OK(ctx_init_cuda(&gpu, 0, &tc->err));
    Arena dev;
    CHECK_OK(arena_init(&dev, "device", DEV_CUDA, 1 << 16, 0, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &gpu, &dev, &tc->err));
    Tensor t32, t16;
    int64_t shape[3] = {1, 4, 12};
    CHECK_OK(arena_tensor(&dev, &t32, DT_F32, 3, shape, &tc->err));
    CHECK_OK(arena_tensor(&dev, &t16, DT_BF16, 3, shape, &tc->err));
    Var *a, *b, *out;
    CHECK_OK(graph_leaf(&g, &a, &t32, false, &tc->err));
    CHECK_OK(graph_leaf(&g, &b, &t16, false, &tc->err));
    CHECK_FAILS_WITH(op_attention(&g, &out, a, a, a, 1, 1.0f, false, NULL, &tc->err), "bf16 supported");
    CHECK_FAILS_WITH(op_attention(&g, &out, b, b, b, 2, 1.0f, false, NULL, &tc->err), "multiple of 8");
    graph_free(&g);
    arena_free(&dev);
    ctx_free(&gpu);
}
