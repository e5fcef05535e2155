// tests/test_weights.c — loading weights: conversion, layout permutation, name translation,
// misaligned tensors, and the collected report of missing / mis-shaped / unexpected tensors.
#include <stdio.h>

#include "models/weights.h"
#include "nn/cuda_api.h"
#include "nn/tensor_copy.h"
#include "test.h"

// A file with: "odd" f16 [3] (so the next tensor is misaligned), "a.weight" f32 [3, 4],
// "conv.weight" f32 [2, 3, 3, 3] (OIHW), "b.bias" bf16 [5], "extra" f32 [1], "model_ema.x" f32 [1].
static int write_fixture(TestCtx *tc, char *path, size_t n, float *a, float *conv, uint16_t *b) {
    snprintf(path, n, "%s/model.safetensors", test_tmpdir(tc));
    uint16_t odd[3] = {0x3c00, 0x4000, 0x4200};  // 1, 2, 3 in f16
    for (int i = 0; i < 12; i++) a[i] = (float)i * 0.5f - 2.0f;
    for (int i = 0; i < 54; i++) conv[i] = (float)i;
    for (int i = 0; i < 5; i++) b[i] = dice_f32_to_bf16((float)i + 0.25f);
    float one[1] = {1.0f};
    StWriteTensor t[6] = {
        {"odd", DT_F16, 1, {3}, odd},          {"a.weight", DT_F32, 2, {3, 4}, a},
        {"conv.weight", DT_F32, 4, {2, 3, 3, 3}, conv}, {"b.bias", DT_BF16, 1, {5}, b},
        {"extra", DT_F32, 1, {1}, one},        {"model_ema.x", DT_F32, 1, {1}, one},
    };
    return st_write(path, t, 6, NULL, NULL, 0, &tc->err);
}

DICE_TEST(weights_load_convert_permute_and_report) {
    char path[512];
    float a[12], conv[54];
    uint16_t b[5];
    CHECK_OK(write_fixture(tc, path, sizeof path, a, conv, b));
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "weights", DEV_CPU, 1 << 16, 0, &tc->err));
    Weights w;
    const char *paths[1] = {path};
    CHECK_OK(weights_open(&w, paths, 1, &ctx, &arena, DT_F32, &tc->err));
    w.ignore_prefix = "model_ema.";
    Tensor t;
    int64_t s_a[2] = {3, 4}, s_conv[4] = {2, 3, 3, 3}, s_odd[1] = {3}, s_b_wrong[1] = {6}, s_missing[2] = {7, 2};
    CHECK_OK(weights_get(&w, &t, "a.weight", 2, s_a, NULL, &tc->err));
    CHECK(t.dtype == DT_F32 && !memcmp(t.data, a, sizeof a));
    CHECK_OK(weights_get(&w, &t, "odd", 1, s_odd, NULL, &tc->err));
    CHECK(((float *)t.data)[2] == 3.0f);
    int ohwi[4] = {0, 2, 3, 1};
    CHECK_OK(weights_get(&w, &t, "conv.weight", 4, s_conv, ohwi, &tc->err));
    CHECK(t.shape[1] == 3 && t.shape[3] == 3 && tensor_is_contiguous(&t));
    const float *c = t.data;  // out[o][y][x][i] = conv[o][i][y][x]
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < 3; i++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 3; x++) CHECK(c[((o * 3 + y) * 3 + x) * 3 + i] == conv[((o * 3 + i) * 3 + y) * 3 + x]);
    CHECK_OK(weights_get(&w, &t, "b.bias", 1, s_b_wrong, NULL, &tc->err));  // recorded, zero-filled
    CHECK(t.shape[0] == 6 && ((float *)t.data)[5] == 0.0f);
    CHECK_OK(weights_get(&w, &t, "missing.weight", 2, s_missing, NULL, &tc->err));
    CHECK(weights_has(&w, "extra") && !weights_has(&w, "missing.weight"));
    CHECK_FAILS_WITH(weights_finish(&w, &tc->err), "1 missing: missing.weight");
    CHECK(strstr(tc->err.msg, "1 mis-shaped: b.bias (expected [6], file has [5])"));
    CHECK(strstr(tc->err.msg, "1 unexpected: extra") && !strstr(tc->err.msg, "model_ema"));
    CHECK(strstr(tc->err.msg, "model.safetensors"));
    weights_close(&w);
    arena_free(&arena);
}

// Original-layout checkpoints: canonical names are translated to the file's.
static const char *add_prefix(const char *canonical, char *buf, size_t n, void *user) {
    if (!strcmp(canonical, "untranslatable")) return NULL;
    snprintf(buf, n, "%s%s", (const char *)user, canonical);
    return buf;
}

DICE_TEST(weights_name_translation_and_all_used) {
    char path[512];
    snprintf(path, sizeof path, "%s/ldm.safetensors", test_tmpdir(tc));
    float v[2] = {1.5f, -2.0f};
    StWriteTensor t[1] = {{"model.diffusion_model.out.bias", DT_F32, 1, {2}, v}};
    CHECK_OK(st_write(path, t, 1, NULL, NULL, 0, &tc->err));
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "weights", DEV_CPU, 1 << 16, 0, &tc->err));
    Weights w;
    const char *paths[1] = {path};
    CHECK_OK(weights_open(&w, paths, 1, &ctx, &arena, DT_BF16, &tc->err));
    weights_set_names(&w, add_prefix, "model.diffusion_model.");
    Tensor out;
    int64_t shape[1] = {2};
    CHECK_OK(weights_get(&w, &out, "out.bias", 1, shape, NULL, &tc->err));
    CHECK(out.dtype == DT_BF16 && ((uint16_t *)out.data)[0] == dice_f32_to_bf16(1.5f));
    CHECK_OK(weights_finish(&w, &tc->err));
    CHECK_OK(weights_get(&w, &out, "untranslatable", 1, shape, NULL, &tc->err));
    CHECK_FAILS_WITH(weights_finish(&w, &tc->err), "1 missing: untranslatable");
    weights_close(&w);
    const char *bad[1] = {"/nonexistent/dir/x.safetensors"};
    CHECK_FAILS_WITH(weights_open(&w, bad, 1, &ctx, &arena, DT_F32, &tc->err), "/nonexistent/dir/x.safetensors");
    arena_free(&arena);
}

// squeeze_trailing_ones: a (3, 4, 1, 1) tensor is accepted where (3, 4) is asked for (and reshaped), only with
// the flag, and only for trailing 1s; ignore_fn hides known extras from the unexpected list and nothing else.
static bool ignore_buffers(const char *name, void *user) { return !strcmp(name, (const char *)user); }

DICE_TEST(weights_trailing_ones_and_ignore_fn) {
    char path[512];
    snprintf(path, sizeof path, "%s/conv1x1.safetensors", test_tmpdir(tc));
    float v[12], one[1] = {1.0f};
    for (int i = 0; i < 12; i++) v[i] = (float)i - 3.5f;
    StWriteTensor t[5] = {{"q.weight", DT_F32, 4, {3, 4, 1, 1}, v}, {"k.weight", DT_F32, 3, {3, 4, 1}, v},
                          {"v.weight", DT_F32, 3, {3, 4, 1}, v}, {"betas", DT_F32, 1, {1}, one},
                          {"stray", DT_F32, 1, {1}, one}};
    CHECK_OK(st_write(path, t, 5, NULL, NULL, 0, &tc->err));
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "weights", DEV_CPU, 1 << 16, 0, &tc->err));
    Weights w;
    const char *paths[1] = {path};
    Tensor out;
    int64_t s_qk[2] = {3, 4}, s_v[2] = {3, 2};
    CHECK_OK(weights_open(&w, paths, 1, &ctx, &arena, DT_F32, &tc->err));
    CHECK_OK(weights_get(&w, &out, "q.weight", 2, s_qk, NULL, &tc->err));
    CHECK_FAILS_WITH(weights_finish(&w, &tc->err), "1 mis-shaped: q.weight (expected [3, 4], file has [3, 4, 1, 1])");
    weights_close(&w);

    CHECK_OK(weights_open(&w, paths, 1, &ctx, &arena, DT_F32, &tc->err));
    w.squeeze_trailing_ones = true;
    w.ignore_fn = ignore_buffers;
    w.ignore_user = "betas";
    CHECK_OK(weights_get(&w, &out, "q.weight", 2, s_qk, NULL, &tc->err));
    CHECK(out.ndim == 2 && out.shape[0] == 3 && out.shape[1] == 4 && !memcmp(out.data, v, sizeof v));
    int transpose[2] = {1, 0};
    CHECK_OK(weights_get(&w, &out, "k.weight", 2, s_qk, transpose, &tc->err));  // squeezed, then permuted
    CHECK(out.shape[0] == 4 && out.shape[1] == 3 && ((float *)out.data)[1] == v[4]);
    CHECK_OK(weights_get(&w, &out, "v.weight", 2, s_v, NULL, &tc->err));  // (3, 4, 1) is not (3, 2) + 1s
    CHECK_FAILS_WITH(weights_finish(&w, &tc->err), "1 mis-shaped: v.weight (expected [3, 2], file has [3, 4, 1])");
    CHECK(strstr(tc->err.msg, "1 unexpected: stray") && !strstr(tc->err.msg, "betas"));
    weights_close(&w);
    arena_free(&arena);
}

// Straight to a CUDA arena in bf16: the same bits as converting on the CPU.
DICE_CUDA_TEST(weights_load_to_cuda) {
    char path[512];
    float a[12], conv[54];
    uint16_t b[5];
    CHECK_OK(write_fixture(tc, path, sizeof path, a, conv, b));
    DiceCtx gpu;
    CHECK_OK(ctx_init_cuda(&gpu, 0, &tc->err));
    Arena dev, host;
    CHECK_OK(arena_init(&dev, "weights", DEV_CUDA, 1 << 16, 0, &tc->err));
    CHECK_OK(arena_init(&host, "host", DEV_CPU, 1 << 16, 0, &tc->err));
    Weights w;
    const char *paths[1] = {path};
    CHECK_OK(weights_open(&w, paths, 1, &gpu, &dev, DT_BF16, &tc->err));
    Tensor t, back;
    int64_t s_conv[4] = {2, 3, 3, 3};
    int ohwi[4] = {0, 2, 3, 1};
    CHECK_OK(weights_get(&w, &t, "conv.weight", 4, s_conv, ohwi, &tc->err));
    CHECK(t.device == DEV_CUDA && t.dtype == DT_BF16);
    CHECK_OK(tensor_to(&gpu, &host, &back, &t, DT_BF16, &tc->err));
    const uint16_t *c = back.data;
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < 3; i++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 3; x++)
                    CHECK(c[((o * 3 + y) * 3 + x) * 3 + i] == dice_f32_to_bf16(conv[((o * 3 + i) * 3 + y) * 3 + x]));
    weights_close(&w);
    arena_free(&dev);
    arena_free(&host);
    ctx_free(&gpu);
}
