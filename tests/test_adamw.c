// tests/test_adamw.c — AdamW against torch.optim.AdamW (tests/golden/adamw.safetensors, written by
// scripts/make_golden.py --only adamw) on the CPU and on CUDA (emulated or real).
#include <stdio.h>

#include "nn/adamw.h"
#include "nn/safetensors.h"
#include "nn/tensor_copy.h"
#include "test.h"

enum { N_PARAMS = 2, N_STEPS = 6 };

// Runs the golden trajectory on `device`; every step's parameters must match PyTorch's.
static void run_trajectory(TestCtx *tc, Device device) {
    StFile f;
    CHECK_OK(st_open(&f, test_path(tc, "tests/golden/adamw.safetensors"), &tc->err));
    DiceCtx ctx;
    if (device == DEV_CUDA) CHECK_OK(ctx_init_cuda(&ctx, 0, &tc->err));
    else ctx_init_cpu(&ctx);
    Arena persistent, host;
    CHECK_OK(arena_init(&persistent, "weights", device, 1 << 16, 0, &tc->err));
    CHECK_OK(arena_init(&host, "host", DEV_CPU, 1 << 16, 0, &tc->err));
    Param params[N_PARAMS], *list[N_PARAMS];
    const int64_t shapes[N_PARAMS][2] = {{7, 13}, {5, 0}};
    const int ndims[N_PARAMS] = {2, 1};
    char name[64];
    for (int i = 0; i < N_PARAMS; i++) {
        list[i] = &params[i];
        CHECK_OK(param_init(&params[i], i ? "p1" : "p0", &persistent, ndims[i], shapes[i], &tc->err));
        snprintf(name, sizeof name, "p%d/init", i);
        const float *init = test_golden_f32(tc, &f, name, tensor_numel(&params[i].value));
        if (!init) return;
        Tensor src;
        CHECK_OK(tensor_wrap(&src, (void *)init, DT_F32, DEV_CPU, ndims[i], shapes[i], &tc->err));
        CHECK_OK(tensor_copy(&ctx, &params[i].value, &src, &tc->err));
    }
    AdamWConfig cfg = {1e-2, 0.9, 0.999, 1e-8, 1e-2};
    AdamW opt;
    CHECK_OK(adamw_init(&opt, &cfg, list, N_PARAMS, &persistent, &ctx, &tc->err));
    for (int k = 1; k <= N_STEPS; k++) {
        for (int i = 0; i < N_PARAMS; i++) {
            snprintf(name, sizeof name, "p%d/grad%d", i, k);
            const float *g = test_golden_f32(tc, &f, name, tensor_numel(&params[i].grad));
            if (!g) return;
            Tensor src;
            CHECK_OK(tensor_wrap(&src, (void *)g, DT_F32, DEV_CPU, ndims[i], shapes[i], &tc->err));
            CHECK_OK(tensor_copy(&ctx, &params[i].grad, &src, &tc->err));
        }
        CHECK_OK(adamw_step(&opt, &ctx, &tc->err));
        CHECK(opt.step == k);
        for (int i = 0; i < N_PARAMS; i++) {
            snprintf(name, sizeof name, "p%d/after%d", i, k);
            int64_t n = tensor_numel(&params[i].value);
            const float *want = test_golden_f32(tc, &f, name, n);
            if (!want) return;
            Tensor got;
            arena_reset(&host);
            CHECK_OK(tensor_to(&ctx, &host, &got, &params[i].value, DT_F32, &tc->err));
            // The same fp32 operations as PyTorch in the same order; PyTorch's vectorised lerp and
            // addcdiv may fuse multiply-adds, so allow a few ulp over six steps (seen: 2e-9; bound 1e-7).
            double rel = test_rel_err_f32(got.data, want, (size_t)n);
            CHECK_MSG(rel <= 1e-7, "step %d, parameter %d: relative error %.3g against torch.optim.AdamW", k, i, rel);
        }
    }
    adamw_free(&opt);
    arena_free(&host);
    arena_free(&persistent);
    if (device == DEV_CUDA) ctx_free(&ctx);
    st_close(&f);
}

DICE_TEST(adamw_matches_torch_cpu) { run_trajectory(tc, DEV_CPU); }

DICE_CUDA_TEST(adamw_matches_torch_cuda) { run_trajectory(tc, DEV_CUDA); }

DICE_TEST(adamw_rejects_bad_settings_and_parameters) {
    Arena persistent;
    CHECK_OK(arena_init(&persistent, "weights", DEV_CPU, 1 << 16, 0, &tc->err));
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Param p, *list[1] = {&p};
    int64_t shape[1] = {3};
    CHECK_OK(param_init(&p, "w", &persistent, 1, shape, &tc->err));
    AdamW opt;
    AdamWConfig bad = adamw_dice_defaults();
    bad.beta2 = 1.0;
    CHECK_FAILS_WITH(adamw_init(&opt, &bad, list, 1, &persistent, &ctx, &tc->err), "invalid settings");
    AdamWConfig good = adamw_dice_defaults();
    CHECK(good.lr == 2e-4 && good.weight_decay == 1e-2 && good.eps == 1e-8);
    p.value.dtype = DT_BF16;
    CHECK_FAILS_WITH(adamw_init(&opt, &good, list, 1, &persistent, &ctx, &tc->err), "'w' must be contiguous fp32");
    arena_free(&persistent);
}
