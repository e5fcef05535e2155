// tests/test_sharpener.c — the DICE sharpener against the PyTorch reference module
// (tests/golden/sharpener, scripts/make_golden.py --only sharpener): parameter counts, forward for two
// alphas with token 0 kept, parameter gradients, on the CPU and on CUDA in fp32; save/load round trip.
#include <stdio.h>

#include "models/sharpener.h"
#include "models/weights.h"
#include "nn/safetensors.h"
#include "nn/tensor_copy.h"
#include "test.h"

DICE_TEST(sharpener_parameter_counts_match_the_paper) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena a;
    CHECK_OK(arena_init(&a, "weights", DEV_CPU, 16 << 20, 0, &tc->err));
    Sharpener s;
    CHECK_OK(sharpener_init(&s, 768, 512, 8, &a, &ctx, 1, &tc->err));
    CHECK(sharpener_num_params(&s) == 1836800);  // SD1.5 (PAPER.md)
    arena_reset(&a);
    CHECK_OK(sharpener_init(&s, 2048, 512, 8, &a, &ctx, 1, &tc->err));
    CHECK(sharpener_num_params(&s) == 3148800);  // SDXL
    const float *w = s.params[0].value.data;      // fc1.weight: uniform in +-1/sqrt(2048)
    double bound = 1.0 / sqrt(2048.0), lo = 1, hi = -1;
    for (int i = 0; i < 512 * 2048; i++) lo = w[i] < lo ? w[i] : lo, hi = w[i] > hi ? w[i] : hi;
    CHECK(lo >= -bound && hi <= bound && lo < -0.99 * bound && hi > 0.99 * bound);
    CHECK_FAILS_WITH(sharpener_init(&s, 48, 60, 8, &a, &ctx, 1, &tc->err), "multiple of heads");
    arena_free(&a);
}

static void run_golden(TestCtx *tc, Device device, double tol) {
    DiceCtx ctx;
    if (device == DEV_CUDA) CHECK_OK(ctx_init_cuda(&ctx, 0, &tc->err));
    else ctx_init_cpu(&ctx);
    Arena params, step, host;
    CHECK_OK(arena_init(&params, "weights", device, 1 << 20, 0, &tc->err));
    CHECK_OK(arena_init(&step, "step", device, 1 << 20, 0, &tc->err));
    CHECK_OK(arena_init(&host, "host", DEV_CPU, 1 << 20, 0, &tc->err));
    Sharpener s;
    CHECK_OK(sharpener_load(&s, test_path(tc, "tests/golden/sharpener/sharpener.safetensors"), &params, &ctx, &tc->err));
    CHECK(s.d_e == 48 && s.hidden == 64 && s.heads == 8);
    const char *io_path = test_path(tc, "tests/golden/sharpener/io.safetensors");
    Weights io, ref;
    CHECK_OK(weights_open(&io, &io_path, 1, &ctx, &step, DT_F32, &tc->err));
    DiceCtx cpu;
    ctx_init_cpu(&cpu);
    CHECK_OK(weights_open(&ref, &io_path, 1, &cpu, &host, DT_F32, &tc->err));
    int64_t shape[3] = {2, 9, 48};
    Tensor c, cn, w, want, want_half, c_host;
    CHECK_OK(weights_get(&io, &c, "c", 3, shape, NULL, &tc->err));
    CHECK_OK(weights_get(&io, &cn, "c_null", 3, shape, NULL, &tc->err));
    CHECK_OK(weights_get(&io, &w, "loss_weight", 3, shape, NULL, &tc->err));
    CHECK_OK(weights_get(&ref, &want, "c_phi", 3, shape, NULL, &tc->err));
    CHECK_OK(weights_get(&ref, &want_half, "c_phi_alpha_0.5", 3, shape, NULL, &tc->err));
    CHECK_OK(weights_get(&ref, &c_host, "c", 3, shape, NULL, &tc->err));

    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &step, &tc->err));
    Var *cv, *cnv, *out;
    CHECK_OK(graph_leaf(&g, &cv, &c, false, &tc->err));
    CHECK_OK(graph_leaf(&g, &cnv, &cn, false, &tc->err));
    CHECK_OK(sharpener_forward(&g, &s, cv, cnv, 1.0, &out, &tc->err));
    CHECK(out->requires_grad);
    CHECK_OK(graph_backward_from(&g, out, &w, &tc->err));
    Tensor got;
    CHECK_OK(tensor_to(&ctx, &host, &got, &out->value, DT_F32, &tc->err));
    CHECK_REL_ERR((float *)got.data, (float *)want.data, 2 * 9 * 48, tol);
    for (int b = 0; b < 2; b++)  // token 0 is c's, bit for bit
        CHECK(!memcmp((float *)got.data + b * 9 * 48, (float *)c_host.data + b * 9 * 48, 48 * sizeof(float)));
    for (int i = 0; i < SHARPENER_N_PARAMS; i++) {
        Param *p = &s.params[i];
        char name[96];
        snprintf(name, sizeof name, "grad.%s", p->name);
        Tensor gref;
        CHECK_OK(weights_get(&ref, &gref, name, p->grad.ndim, p->grad.shape, NULL, &tc->err));
        CHECK_OK(tensor_to(&ctx, &host, &got, &p->grad, DT_F32, &tc->err));
        double rel = test_rel_err_f32(got.data, gref.data, (size_t)tensor_numel(&gref));
        CHECK_MSG(rel <= tol, "gradient of %s: relative error %.3g > %.3g", p->name, rel, tol);
    }
    graph_no_grad_begin(&g);
    CHECK_OK(sharpener_forward(&g, &s, cv, cnv, 0.5, &out, &tc->err));
    graph_no_grad_end(&g);
    CHECK(!out->requires_grad);
    CHECK_OK(tensor_to(&ctx, &host, &got, &out->value, DT_F32, &tc->err));
    CHECK_REL_ERR((float *)got.data, (float *)want_half.data, 2 * 9 * 48, tol);
    CHECK(io.missing.count == 0 && ref.missing.count == 0);
    graph_free(&g);
    weights_close(&io);
    weights_close(&ref);
    arena_free(&host);
    arena_free(&step);
    arena_free(&params);
    if (device == DEV_CUDA) ctx_free(&ctx);
}

// fp32 against PyTorch fp32: a few matrix products and a softmax in another summation order.
DICE_TEST(sharpener_matches_pytorch_cpu) { run_golden(tc, DEV_CPU, 1e-5); }

// fp32 on CUDA (the sharpener trains in fp32; its attention uses fp32 matmul + softmax, not the bf16
// flash kernel): the same bound as on the CPU.
DICE_CUDA_TEST(sharpener_matches_pytorch_cuda_f32) { run_golden(tc, DEV_CUDA, 1e-5); }

DICE_TEST(sharpener_save_load_round_trip_and_errors) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena a;
    CHECK_OK(arena_init(&a, "weights", DEV_CPU, 1 << 20, 0, &tc->err));
    Sharpener s, back;
    CHECK_OK(sharpener_init(&s, 24, 32, 8, &a, &ctx, 77, &tc->err));
    char path[512];
    snprintf(path, sizeof path, "%s/sharpener.safetensors", test_tmpdir(tc));
    const char *keys[3] = {"base_model", "guidance_scale", "heads"}, *values[3] = {"tiny", "5", "8"};
    CHECK_OK(sharpener_save(&s, &ctx, path, keys, values, 3, &tc->err));
    CHECK_OK(sharpener_load(&back, path, &a, &ctx, &tc->err));
    CHECK(back.d_e == 24 && back.hidden == 32 && back.heads == 8);
    for (int i = 0; i < SHARPENER_N_PARAMS; i++)
        CHECK(!memcmp(back.params[i].value.data, s.params[i].value.data, tensor_nbytes(&s.params[i].value)));
    StFile f;
    CHECK_OK(st_open(&f, path, &tc->err));
    CHECK(st_meta(&f, "base_model") && !strcmp(st_meta(&f, "base_model"), "tiny"));
    st_close(&f);
    // A file with fc1 only: the other eight tensors are reported missing by name.
    char partial[512];
    snprintf(partial, sizeof partial, "%s/partial.safetensors", test_tmpdir(tc));
    StWriteTensor t[1] = {{"fc1.weight", DT_F32, 2, {32, 24}, s.params[0].value.data}};
    CHECK_OK(st_write(partial, t, 1, NULL, NULL, 0, &tc->err));
    CHECK_FAILS_WITH(sharpener_load(&back, partial, &a, &ctx, &tc->err), "8 missing: fc1.bias");
    StWriteTensor other[1] = {{"unet.conv_in.weight", DT_F32, 2, {32, 24}, s.params[0].value.data}};
    CHECK_OK(st_write(partial, other, 1, NULL, NULL, 0, &tc->err));
    CHECK_FAILS_WITH(sharpener_load(&back, partial, &a, &ctx, &tc->err), "not a DICE sharpener");
    arena_free(&a);
}
