// tests/test_embed.c — the sinusoidal timestep embedding against values of diffusers' formula, token + position
// embedding lookups, and both on CUDA (emulated or real) against the CPU.
#include <stdlib.h>

#include "cuda_parity.h"
#include "nn/cuda_api.h"
#include "nn/op_embed.h"
#include "nn/tensor_copy.h"

// diffusers' get_timestep_embedding(t, 8, ...) evaluated in fp32 by PyTorch for t = 0, 1, 999:
//   SD1.5 settings (flip_sin_to_cos=True, downscale_freq_shift=0): freqs 10000^(-i/4) = 1, 0.1, 0.01, 0.001,
//   out = [cos(t f) | sin(t f)];
//   diffusers' defaults (flip_sin_to_cos=False, downscale_freq_shift=1): freqs 10000^(-i/3), out = [sin | cos].
static const float golden_sd15[3][8] = {
    {1, 1, 1, 1, 0, 0, 0, 0},
    {0.5403023362159729f, 0.9950041770935059f, 0.9999499917030334f, 0.9999995231628418f, 0.8414709568023682f,
     0.0998334139585495f, 0.009999833069741726f, 0.0009999998146668077f},
    {0.9996498227119446f, 0.8074550628662109f, -0.8444697856903076f, 0.541143536567688f, -0.02646075189113617f,
     -0.5899291038513184f, -0.5356031656265259f, 0.8409302234649658f},
};
static const float golden_default[3][8] = {
    {0, 0, 0, 0, 1, 1, 1, 1},
    {0.8414709568023682f, 0.046399228274822235f, 0.0021544331684708595f, 9.99999901978299e-05f, 0.5403023362159729f,
     0.9989229440689087f, 0.9999976754188538f, 1},
    {-0.02646075189113617f, 0.684861421585083f, 0.8356484770774841f, 0.09973391145467758f, 0.9996498227119446f,
     -0.7286733388900757f, -0.549264669418335f, 0.9950141310691833f},
};

static int run_timestep(DiceCtx *ctx, Arena *arena, const float *t, int64_t b, const TimestepEmbedConfig *cfg,
                        DType dtype, Tensor *out_f32, DiceError *err) {
    Graph g;
    DICE_TRY(graph_init(&g, ctx, arena, err));
    Tensor host_t, dev_t;
    int rc = tensor_wrap(&host_t, (void *)t, DT_F32, DEV_CPU, 1, &b, err);
    if (!rc) rc = tensor_to(ctx, arena, &dev_t, &host_t, DT_F32, err);
    Var *out;
    if (!rc) rc = op_timestep_embedding(&g, &out, &dev_t, cfg, dtype, err);
    if (!rc && out->requires_grad) rc = DICE_FAIL(err, "timestep embedding requires a gradient");
    if (!rc) rc = tensor_to(ctx, arena, out_f32, &out->value, DT_F32, err);
    graph_free(&g);
    return rc;
}

DICE_TEST(embed_timestep_golden) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 16, 0, &tc->err));
    const float t[3] = {0, 1, 999};
    TimestepEmbedConfig sd15 = {8, true, 0, 1, 10000}, dflt = {8, false, 1, 1, 10000};
    Tensor out;
    CHECK_OK(run_timestep(&ctx, &arena, t, 3, &sd15, DT_F32, &out, &tc->err));
    // fp32 rounding of the result (6e-8) and of the argument t * freq (one ulp of 999 is 6e-5, but the frequencies
    // of dim 8 round identically in PyTorch and here): 1e-6.
    for (int i = 0; i < 24; i++) CHECK_NEAR(((float *)out.data)[i], golden_sd15[i / 8][i % 8], 1e-6);
    CHECK_OK(run_timestep(&ctx, &arena, t, 3, &dflt, DT_F64, &out, &tc->err));
    for (int i = 0; i < 24; i++) CHECK_NEAR(((float *)out.data)[i], golden_default[i / 8][i % 8], 1e-6);
    // odd dim: one zero column appended; scale multiplies the argument
    TimestepEmbedConfig odd = {9, true, 0, 2, 10000};
    const float half_t[3] = {0, 0.5f, 499.5f};
    CHECK_OK(run_timestep(&ctx, &arena, half_t, 3, &odd, DT_F32, &out, &tc->err));
    for (int i = 0; i < 27; i++) {
        float want = i % 9 == 8 ? 0.0f : golden_sd15[i / 9][i % 9];
        CHECK_NEAR(((float *)out.data)[i], want, 1e-6);
    }
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
    Var *v;
    Tensor wrong;
    CHECK_OK(arena_tensor(&arena, &wrong, DT_F64, 1, (const int64_t[]){3}, &tc->err));
    CHECK_FAILS_WITH(op_timestep_embedding(&g, &v, &wrong, &sd15, DT_F32, &tc->err), "(B) f32");
    graph_free(&g);
    arena_free(&arena);
}

DICE_TEST(embed_tokens_values_and_checks) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 16, 0, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
    float table[3 * 2] = {0, 1, 10, 11, 20, 21}, pos[4 * 2] = {0.5f, 0.25f, 1.5f, 1.25f, 2.5f, 2.25f, 9, 9};
    int32_t ids[2 * 3] = {2, 0, 1, 1, 1, 2};
    Tensor tt, tp, ti;
    CHECK_OK(tensor_wrap(&tt, table, DT_F32, DEV_CPU, 2, (const int64_t[]){3, 2}, &tc->err));
    CHECK_OK(tensor_wrap(&tp, pos, DT_F32, DEV_CPU, 2, (const int64_t[]){4, 2}, &tc->err));
    CHECK_OK(tensor_wrap(&ti, ids, DT_I32, DEV_CPU, 2, (const int64_t[]){2, 3}, &tc->err));
    Var *out;
    CHECK_OK(op_token_embedding(&g, &out, &ti, &tt, &tp, &tc->err));
    const float want[12] = {20.5f, 21.25f, 1.5f, 2.25f, 12.5f, 13.25f, 10.5f, 11.25f, 11.5f, 12.25f, 22.5f, 23.25f};
    CHECK(out->value.ndim == 3 && out->value.shape[2] == 2 && !out->requires_grad);
    CHECK(!memcmp(out->value.data, want, sizeof want));
    CHECK_OK(op_token_embedding(&g, &out, &ti, &tt, NULL, &tc->err));
    CHECK(((float *)out->value.data)[0] == 20 && ((float *)out->value.data)[11] == 21);
    ids[4] = 3;
    CHECK_FAILS_WITH(op_token_embedding(&g, &out, &ti, &tt, &tp, &tc->err), "outside the vocabulary");
    ids[4] = 1;
    Tensor short_pos;
    CHECK_OK(tensor_wrap(&short_pos, pos, DT_F32, DEV_CPU, 2, (const int64_t[]){2, 2}, &tc->err));
    CHECK_FAILS_WITH(op_token_embedding(&g, &out, &ti, &tt, &short_pos, &tc->err), "does not fit 3 tokens");
    graph_free(&g);
    arena_free(&arena);
}

// Timestep embedding: CUDA and CPU share the arithmetic (fp32 products, correctly rounded exp / sin / cos), so f32
// agrees to rounding (checked at 1e-6); bf16 output rounds to 8 bits (checked at 1e-2).
DICE_CUDA_TEST(embed_cuda_timestep_matches_cpu) {
    CudaTestEnv e;
    CHECK_OK(cuda_env_init(&e, 1 << 20, 1 << 20, &tc->err));
    uint64_t rng = tc->seed;
    float t[7] = {0, 1, 999};
    for (int i = 3; i < 7; i++) t[i] = test_rand_uniform(&rng, 0, 1000);
    const TimestepEmbedConfig cfgs[3] = {{320, true, 0, 1, 10000}, {256, true, 0, 1, 10000}, {7, false, 1, 3, 1000}};
    const DType types[2] = {DT_F32, DT_BF16};
    for (int c = 0; c < 3; c++)
        for (int ti = 0; ti < 2; ti++) {
            cuda_env_reset(&e);
            CHECK_OK(test_poison_arena(&e.dev, &tc->err));
            Tensor want, got_dev, got;
            CHECK_OK(run_timestep(&e.cpu, &e.host, t, 7, &cfgs[c], DT_F32, &want, &tc->err));
            CHECK_OK(run_timestep(&e.gpu, &e.dev, t, 7, &cfgs[c], types[ti], &got_dev, &tc->err));
            CHECK_OK(tensor_to(&e.gpu, &e.host, &got, &got_dev, DT_F32, &tc->err));
            CHECK_REL_ERR((float *)got.data, (float *)want.data, (size_t)tensor_numel(&want),
                          types[ti] == DT_F32 ? 1e-6 : 1e-2);
        }
    cuda_env_free(&e);
}

// Token + position embedding: a copy plus one add, exact in f32; bf16 rounds the sum once (checked at 1e-2).
DICE_CUDA_TEST(embed_cuda_tokens_match_cpu) {
    CudaTestEnv e;
    CHECK_OK(cuda_env_init(&e, 1 << 20, 1 << 20, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t widths[3] = {40, 13, 64};  // vectorised, scalar, vectorised
    const DType types[2] = {DT_F32, DT_BF16};
    for (int w = 0; w < 3; w++)
        for (int ti = 0; ti < 2; ti++)
            for (int with_pos = 0; with_pos < 2; with_pos++) {
                cuda_env_reset(&e);
                const int64_t vocab = 101, n = 77, b = 2, c = widths[w];
                Tensor table, pos, ids, dtable, dpos, got;
                // tables rounded to the storage dtype so both sides add the same values
                const int64_t ts[2] = {vocab, c}, ps[2] = {n + 3, c};
                CHECK_OK(cuda_env_random(&e, 2, ts, -1, 1, types[ti], &rng, &table, &dtable, &tc->err));
                CHECK_OK(cuda_env_random(&e, 2, ps, -1, 1, types[ti], &rng, &pos, &dpos, &tc->err));
                CHECK_OK(arena_tensor(&e.host, &ids, DT_I32, 2, (const int64_t[]){b, n}, &tc->err));
                for (int64_t i = 0; i < b * n; i++) ((int32_t *)ids.data)[i] = (int32_t)(test_rand_u64(&rng) % vocab);
                Graph gc, gg;
                CHECK_OK(graph_init(&gc, &e.cpu, &e.host, &tc->err));
                CHECK_OK(graph_init(&gg, &e.gpu, &e.dev, &tc->err));
                Var *want, *out;
                CHECK_OK(op_token_embedding(&gc, &want, &ids, &table, with_pos ? &pos : NULL, &tc->err));
                CHECK_OK(op_token_embedding(&gg, &out, &ids, &dtable, with_pos ? &dpos : NULL, &tc->err));
                CHECK_OK(tensor_to(&e.gpu, &e.host, &got, &out->value, DT_F32, &tc->err));
                CHECK_REL_ERR((float *)got.data, (float *)want->value.data, (size_t)(b * n * c),
                              types[ti] == DT_F32 ? 0 : 1e-2);
                CHECK_FAILS_WITH(op_token_embedding(&gg, &out, &dtable, &dtable, NULL, &tc->err), "i32 tensor on the CPU");
                graph_free(&gc);
                graph_free(&gg);
            }
    cuda_env_free(&e);
}
