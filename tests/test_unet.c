// tests/test_unet.c — the UNet (models/unet*.c) against diffusers' UNet2DConditionModel on tiny random models
// saved with save_pretrained (tests/golden/unet/<variant>/, scripts/golden_unet.py): eps at two timesteps,
// the gradient of sum(eps * w) with respect to encoder_hidden_states (the DICE path) and the sample, the
// added-conditioning hook, on the CPU in f32 and on CUDA in bf16; recomputation giving the same gradients bit
// for bit; config.json parsing and refusals; missing, mis-shaped and unexpected weights.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet.h"
#include "nn/tensor_copy.h"
#include "test.h"

// A tensor of io.safetensors with whatever shape the file gives it.
static int get_io(Weights *w, Tensor *out, const char *name, DiceError *err) {
    const StTensorInfo *t = st_find(&w->files[0], name);
    DICE_CHECK(err, t, "io.safetensors has no %s", name);
    return weights_get(w, out, name, t->ndim, t->shape, NULL, err);
}

typedef struct Golden {
    Tensor x, ehs, lw, t0, t1, eps0, eps1, grad_ehs, grad_x, added, eps_added;
} Golden;

static int golden_load(Weights *ref, Golden *gd, DiceError *err) {
    Tensor *dst[] = {&gd->x, &gd->ehs, &gd->lw, &gd->t0, &gd->t1, &gd->eps0, &gd->eps1, &gd->grad_ehs, &gd->grad_x,
                     &gd->added, &gd->eps_added};
    const char *names[] = {"x", "encoder_hidden_states", "loss_weight", "t0", "t1", "eps_t0", "eps_t1",
                           "grad_ehs_t0", "grad_x_t0", "added_emb", "eps_added_t0"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) DICE_TRY(get_io(ref, dst[i], names[i], err));
    return 0;
}

typedef struct Fixture {
    DiceCtx ctx, cpu;
    Arena weights, step, host, scratch;
    Weights ref;
    Golden gd;
    Unet u;
} Fixture;

static void fixture_free(Fixture *f) {
    unet_free(&f->u);
    weights_close(&f->ref);
    arena_free(&f->scratch);
    arena_free(&f->host);
    arena_free(&f->step);
    arena_free(&f->weights);
    if (f->ctx.device == DEV_CUDA) ctx_free(&f->ctx);
}

// Loads variant's model onto `device` in `dtype` and its golden data (f32, host).
static int fixture_init(TestCtx *tc, Fixture *f, const char *variant, Device device, DType dtype, DiceError *err) {
    memset(f, 0, sizeof *f);
    if (device == DEV_CUDA) DICE_TRY(ctx_init_cuda(&f->ctx, 0, err));
    else ctx_init_cpu(&f->ctx);
    ctx_init_cpu(&f->cpu);
    DICE_TRY(arena_init(&f->weights, "weights", device, 1 << 20, 0, err));
    DICE_TRY(arena_init(&f->step, "step", device, 4 << 20, 0, err));
    DICE_TRY(arena_init(&f->scratch, "scratch", device, 1 << 20, 0, err));
    DICE_TRY(arena_init(&f->host, "host", DEV_CPU, 1 << 20, 0, err));
    char dir[512], io[600];
    snprintf(dir, sizeof dir, "%s/%s", test_path(tc, "tests/golden/unet"), variant);
    DICE_TRY(unet_load_dir(&f->u, dir, &f->ctx, &f->weights, dtype, err));
    snprintf(io, sizeof io, "%s/io.safetensors", dir);
    const char *paths[1] = {io};
    DICE_TRY(weights_open(&f->ref, paths, 1, &f->cpu, &f->host, DT_F32, err));
    return golden_load(&f->ref, &f->gd, err);
}

// A leaf on the fixture's device in the model's dtype holding the host tensor t.
static int leaf(Fixture *f, Graph *g, Var **out, const Tensor *t, bool requires_grad, DiceError *err) {
    Tensor dev;
    DICE_TRY(tensor_to(&f->ctx, &f->step, &dev, t, f->u.dtype, err));
    return graph_leaf(g, out, &dev, requires_grad, err);
}

static double rel_err(Fixture *f, const Tensor *got, const Tensor *want, DiceError *err, int *rc) {
    Tensor host;
    *rc = tensor_to(&f->ctx, &f->host, &host, got, DT_F32, err);
    if (*rc) return INFINITY;
    return test_rel_err_f32(host.data, want->data, (size_t)tensor_numel(want));
}

#define CHECK_CLOSE(f, got, want, tol)                                                          \
    do {                                                                                        \
        int rc_;                                                                                \
        double e_ = rel_err((f), (got), (want), &tc->err, &rc_);                                \
        CHECK_OK(rc_);                                                                          \
        CHECK_MSG(e_ <= (tol), "%s: relative error of %s = %.3g > %.3g", tc->name, #want, e_,   \
                  (double)(tol));                                                               \
    } while (0)

// eps at t0 with its gradients (w.r.t. encoder_hidden_states always, the sample when x_grad), eps at t1, and
// eps with the added time embedding.
static void run_parity(TestCtx *tc, const char *variant, Device device, DType dtype, double tol, double tol_grad,
                       bool x_grad) {
    Fixture f;
    CHECK_OK(fixture_init(tc, &f, variant, device, dtype, &tc->err));
    Golden *gd = &f.gd;
    Graph g;
    CHECK_OK(graph_init(&g, &f.ctx, &f.step, &tc->err));
    Var *x, *ehs, *eps;
    CHECK_OK(leaf(&f, &g, &x, &gd->x, x_grad, &tc->err));
    CHECK_OK(leaf(&f, &g, &ehs, &gd->ehs, true, &tc->err));
    CHECK_OK(unet_forward(&g, &f.u, x, &gd->t0, ehs, &eps, &tc->err));
    CHECK_CLOSE(&f, &eps->value, &gd->eps0, tol);
    Tensor lw;
    CHECK_OK(tensor_to(&f.ctx, &f.step, &lw, &gd->lw, f.u.dtype, &tc->err));
    CHECK_OK(graph_backward_from(&g, eps, &lw, &tc->err));
    CHECK_CLOSE(&f, &ehs->grad, &gd->grad_ehs, tol_grad);
    if (x_grad) CHECK_CLOSE(&f, &x->grad, &gd->grad_x, tol_grad);

    graph_reset(&g);
    graph_no_grad_begin(&g);
    CHECK_OK(unet_forward(&g, &f.u, x, &gd->t1, ehs, &eps, &tc->err));
    CHECK_CLOSE(&f, &eps->value, &gd->eps1, tol);
    Var *added;
    CHECK_OK(leaf(&f, &g, &added, &gd->added, false, &tc->err));
    UnetForwardOpts opts = {.added_time_emb = added};
    CHECK_OK(unet_forward_opts(&g, &f.u, x, &gd->t0, ehs, &opts, &eps, &tc->err));
    CHECK_CLOSE(&f, &eps->value, &gd->eps_added, tol);
    graph_free(&g);
    fixture_free(&f);
}

// fp32 against PyTorch fp32: the same arithmetic in other summation orders (relative 1e-7 per op) through
// ~60 ops: measured 8e-7 on eps and 1.3e-6 on the gradients, which go back through every one of those ops and
// the softmax Jacobians; 1e-5 for both leaves room for other BLAS builds.
DICE_TEST(unet_tiny_matches_diffusers_cpu_f32) { run_parity(tc, "tiny", DEV_CPU, DT_F32, 1e-5, 1e-5, true); }

// Linear projections, two transformer layers, layers_per_block (2, 1), in 3 / out 5 channels, fp16 weights
// converted to f32 at load.
DICE_TEST(unet_linear_matches_diffusers_cpu_f32) { run_parity(tc, "linear", DEV_CPU, DT_F32, 1e-5, 1e-5, true); }

// SD1.5's topology in miniature (4 levels, layers_per_block 2, three cross-attention levels, down to 1x1), fp16
// weights; head dim 4 keeps it on the CPU.
DICE_TEST(unet_sd15_shaped_matches_diffusers_cpu_f32) { run_parity(tc, "sd15", DEV_CPU, DT_F32, 1e-5, 1e-5, true); }

// SD1.5's dominant head dim 40 (the mid block's single head over 40 channels) next to head dim 8 (level 0),
// fp16 weights.
DICE_TEST(unet_hd40_matches_diffusers_cpu_f32) { run_parity(tc, "hd40", DEV_CPU, DT_F32, 1e-5, 1e-5, true); }

// bf16 weights and activations with fp32 accumulation and statistics, against the fp32 reference: every weight
// and every op boundary rounds to 2^-9 relative, and a UNet chains ~60 ops with residual sums: measured
// 0.9e-2 to 1.2e-2 on eps. The gradient to the text embedding runs the chain twice (forward activations, then
// the backward pass in bf16 through the same ops): measured 2.0e-2 to 2.4e-2. Only the text embedding requires
// a gradient: the DICE case.
DICE_CUDA_TEST(unet_tiny_matches_diffusers_cuda_bf16) {
    run_parity(tc, "tiny", DEV_CUDA, DT_BF16, 2.5e-2, 4e-2, false);
}

DICE_CUDA_TEST(unet_linear_matches_diffusers_cuda_bf16) {
    run_parity(tc, "linear", DEV_CUDA, DT_BF16, 2.5e-2, 4e-2, false);
}

// Head dim 40, not a power of two, through the CUDA attention kernels.
DICE_CUDA_TEST(unet_hd40_matches_diffusers_cuda_bf16) {
    run_parity(tc, "hd40", DEV_CUDA, DT_BF16, 2.5e-2, 4e-2, false);
}

// The sample, the text embedding (requiring a gradient) and eps after sum(eps * w) backward, with the model's
// recomputation flag set as given; returns the step arena's use after the forward pass in *forward_bytes.
static int forward_backward(Fixture *f, Graph *g, bool checkpoint, Var **ehs, Var **eps, size_t *forward_bytes,
                            DiceError *err) {
    f->u.checkpoint = checkpoint;
    Var *x;
    DICE_TRY(leaf(f, g, &x, &f->gd.x, false, err));
    DICE_TRY(leaf(f, g, ehs, &f->gd.ehs, true, err));
    size_t before = f->step.in_use;
    DICE_TRY(unet_forward(g, &f->u, x, &f->gd.t0, *ehs, eps, err));
    *forward_bytes = f->step.in_use - before;
    return graph_backward_from(g, *eps, &f->gd.lw, err);
}

// Recomputing each resnet and transformer in backward gives the same eps and gradient bit for bit, and keeps
// less in the step arena.
DICE_TEST(unet_checkpoint_gives_identical_gradients) {
    Fixture f;
    CHECK_OK(fixture_init(tc, &f, "tiny", DEV_CPU, DT_F32, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &f.ctx, &f.step, &tc->err));
    graph_set_scratch(&g, &f.scratch);
    Var *ehs[2], *eps[2];
    size_t bytes[2];
    for (int k = 0; k < 2; k++) CHECK_OK(forward_backward(&f, &g, k == 1, &ehs[k], &eps[k], &bytes[k], &tc->err));
    CHECK(!memcmp(eps[0]->value.data, eps[1]->value.data, tensor_nbytes(&eps[0]->value)));
    CHECK(!memcmp(ehs[0]->grad.data, ehs[1]->grad.data, tensor_nbytes(&ehs[0]->grad)));
    CHECK_MSG(bytes[1] < bytes[0] / 2, "forward kept %zu bytes with recomputation, %zu without", bytes[1], bytes[0]);
    CHECK_CLOSE(&f, &ehs[1]->grad, &f.gd.grad_ehs, 1e-5);
    graph_free(&g);
    fixture_free(&f);
}

// Timesteps of any dtype and a single timestep for the whole batch, as diffusers broadcasts it; inputs of the
// wrong shape are refused by name.
DICE_TEST(unet_timesteps_and_input_checks) {
    Fixture f;
    CHECK_OK(fixture_init(tc, &f, "tiny", DEV_CPU, DT_F32, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &f.ctx, &f.step, &tc->err));
    Var *x, *ehs, *eps, *ref;
    CHECK_OK(leaf(&f, &g, &x, &f.gd.x, false, &tc->err));
    CHECK_OK(leaf(&f, &g, &ehs, &f.gd.ehs, false, &tc->err));
    CHECK_OK(unet_forward(&g, &f.u, x, &f.gd.t0, ehs, &ref, &tc->err));  // t0 = (999, 999)
    int64_t one = 999;
    int32_t pair[2] = {999, 999};
    Tensor t_scalar, t_pair;
    CHECK_OK(tensor_wrap(&t_scalar, &one, DT_I64, DEV_CPU, 0, NULL, &tc->err));
    CHECK_OK(tensor_wrap(&t_pair, pair, DT_I32, DEV_CPU, 1, (int64_t[]){2}, &tc->err));
    CHECK_OK(unet_forward(&g, &f.u, x, &t_scalar, ehs, &eps, &tc->err));
    CHECK(!memcmp(eps->value.data, ref->value.data, tensor_nbytes(&ref->value)));
    CHECK_OK(unet_forward(&g, &f.u, x, &t_pair, ehs, &eps, &tc->err));
    CHECK(!memcmp(eps->value.data, ref->value.data, tensor_nbytes(&ref->value)));

    Tensor t3, odd;
    float three[3] = {1, 2, 3};
    CHECK_OK(tensor_wrap(&t3, three, DT_F32, DEV_CPU, 1, (int64_t[]){3}, &tc->err));
    CHECK_FAILS_WITH(unet_forward(&g, &f.u, x, &t3, ehs, &eps, &tc->err), "timesteps");
    CHECK_OK(tensor_narrow(&odd, &x->value, 1, 0, 7, &tc->err));
    Var *xo, *xc;
    CHECK_OK(graph_leaf(&g, &xo, &odd, false, &tc->err));
    CHECK_OK(op_contiguous(&g, &xc, xo, &tc->err));
    CHECK_FAILS_WITH(unet_forward(&g, &f.u, xc, &f.gd.t0, ehs, &eps, &tc->err), "multiples of 2");
    CHECK_FAILS_WITH(unet_forward(&g, &f.u, ehs, &f.gd.t0, ehs, &eps, &tc->err), "sample");
    CHECK_FAILS_WITH(unet_forward(&g, &f.u, x, &f.gd.t0, xo, &eps, &tc->err), "encoder_hidden_states");
    Tensor narrow_ctx;
    Var *nc, *ncc;
    CHECK_OK(tensor_narrow(&narrow_ctx, &ehs->value, 2, 0, 16, &tc->err));
    CHECK_OK(graph_leaf(&g, &nc, &narrow_ctx, false, &tc->err));
    CHECK_OK(op_contiguous(&g, &ncc, nc, &tc->err));
    CHECK_FAILS_WITH(unet_forward(&g, &f.u, x, &f.gd.t0, ncc, &eps, &tc->err), "cross_attention_dim 32");
    Var *added;
    CHECK_OK(leaf(&f, &g, &added, &f.gd.lw, false, &tc->err));
    UnetForwardOpts opts = {.added_time_emb = added};
    CHECK_FAILS_WITH(unet_forward_opts(&g, &f.u, x, &f.gd.t0, ehs, &opts, &eps, &tc->err), "added_time_emb");
    graph_free(&g);
    fixture_free(&f);
}

static const char SD15_CONFIG[] =
    "{\"_class_name\": \"UNet2DConditionModel\", \"_diffusers_version\": \"0.6.0\", \"act_fn\": \"silu\","
    " \"attention_head_dim\": 8, \"block_out_channels\": [320, 640, 1280, 1280], \"center_input_sample\": false,"
    " \"cross_attention_dim\": 768, \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
    " \"CrossAttnDownBlock2D\", \"DownBlock2D\"], \"downsample_padding\": 1, \"flip_sin_to_cos\": true,"
    " \"freq_shift\": 0, \"in_channels\": 4, \"layers_per_block\": 2, \"mid_block_scale_factor\": 1,"
    " \"norm_eps\": 1e-05, \"norm_num_groups\": 32, \"out_channels\": 4, \"sample_size\": 64,"
    " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"]}";

// SD1.5's config.json (as published): attention_head_dim 8 is 8 heads at every level.
DICE_TEST(unet_config_sd15) {
    UnetConfig c;
    CHECK_OK(unet_config_parse(&c, SD15_CONFIG, "sd15", &tc->err));
    CHECK(c.n_levels == 4 && c.in_channels == 4 && c.out_channels == 4 && c.sample_size == 64);
    CHECK(c.block_out_channels[0] == 320 && c.block_out_channels[3] == 1280);
    CHECK(c.down_cross_attn[0] && c.down_cross_attn[2] && !c.down_cross_attn[3]);
    CHECK(!c.up_cross_attn[0] && c.up_cross_attn[1] && c.up_cross_attn[3] && c.has_mid);
    for (int i = 0; i < 4; i++)
        CHECK(c.heads[i] == 8 && c.layers_per_block[i] == 2 && c.transformer_layers[i] == 1 &&
              c.cross_attention_dim[i] == 768);
    CHECK(c.norm_num_groups == 32 && c.norm_eps == 1e-5f && c.flip_sin_to_cos && c.freq_shift == 0);
    CHECK(!c.use_linear_projection && c.conv_in_kernel == 3 && c.conv_out_kernel == 3);
    // defaults: an empty object is diffusers' default UNet (SD1.5's shape with cross_attention_dim 1280)
    CHECK_OK(unet_config_parse(&c, "{}", "defaults", &tc->err));
    CHECK(c.n_levels == 4 && c.heads[2] == 8 && c.cross_attention_dim[0] == 1280 && c.layers_per_block[1] == 2);
}

// SD2.1-style lists and the no-effect fields; num_attention_heads wins over attention_head_dim.
DICE_TEST(unet_config_lists_and_heads) {
    UnetConfig c;
    const char *sd21 =
        "{\"attention_head_dim\": [5, 10, 20, 20], \"block_out_channels\": [320, 640, 1280, 1280],"
        " \"cross_attention_dim\": 1024, \"use_linear_projection\": true, \"upcast_attention\": true,"
        " \"dropout\": 0.0, \"dual_cross_attention\": false, \"only_cross_attention\": [false, false, false, false],"
        " \"num_class_embeds\": null, \"class_embed_type\": null, \"mid_block_only_cross_attention\": null,"
        " \"sample_size\": 96, \"transformer_layers_per_block\": [1, 2, 3, 4], \"layers_per_block\": [1, 2, 2, 3],"
        " \"resnet_out_scale_factor\": 1.0, \"time_embedding_type\": \"positional\", \"act_fn\": \"swish\"}";
    CHECK_OK(unet_config_parse(&c, sd21, "sd21", &tc->err));
    CHECK(c.heads[0] == 5 && c.heads[1] == 10 && c.heads[3] == 20 && c.use_linear_projection);
    CHECK(c.cross_attention_dim[3] == 1024 && c.transformer_layers[3] == 4 && c.layers_per_block[3] == 3);
    const char *heads =
        "{\"block_out_channels\": [32, 64], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
        " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"norm_num_groups\": 8,"
        " \"attention_head_dim\": 8, \"num_attention_heads\": [2, 4], \"mid_block_type\": null}";
    CHECK_OK(unet_config_parse(&c, heads, "heads", &tc->err));
    CHECK(c.heads[0] == 2 && c.heads[1] == 4 && !c.has_mid);
}

// Each malformed or unsupported config is refused with a message naming the field.
DICE_TEST(unet_config_refusals) {
    static const struct {
        const char *extra, *message;
    } cases[] = {
        {"\"addition_embed_type\": \"text_time\"", "addition_embed_type"},
        {"\"resnet_time_scale_shift\": \"scale_shift\"", "resnet_time_scale_shift"},
        {"\"class_embed_type\": \"timestep\"", "class_embed_type"},
        {"\"num_class_embeds\": 10", "num_class_embeds"},
        {"\"only_cross_attention\": [false, true]", "only_cross_attention"},
        {"\"center_input_sample\": true", "center_input_sample"},
        {"\"encoder_hid_dim\": 32", "encoder_hid_dim"},
        {"\"mid_block_scale_factor\": 2", "mid_block_scale_factor"},
        {"\"time_cond_proj_dim\": 256", "time_cond_proj_dim"},
        {"\"downsample_padding\": 0", "downsample_padding"},
        {"\"attention_type\": \"gated\"", "attention_type"},
        {"\"some_new_feature\": true", "unknown field some_new_feature"},
        {"\"_class_name\": \"UNet2DModel\"", "_class_name"},
        {"\"in_channels\": \"4\"", "in_channels"},
        {"\"in_channels\": 4.5", "in_channels"},
        {"\"layers_per_block\": [1, 2, 3]", "layers_per_block has 3 entries"},
        {"\"transformer_layers_per_block\": [[1], [2]]", "asymmetric"},
        {"\"attention_head_dim\": 64", "attention heads"},
        {"\"act_fn\": \"gelu\"", "act_fn"},
        {"\"mid_block_type\": \"UNetMidBlock2DSimpleCrossAttn\"", "mid_block_type"},
        {"\"norm_num_groups\": null", "norm_num_groups"},
        {"\"conv_in_kernel\": 4", "odd kernel"},
        {"\"norm_eps\": -1", "norm_eps"},
        {"\"dropout\": [0.1]", "dropout"},
        {"\"flip_sin_to_cos\": 1", "flip_sin_to_cos"},
    };
    const char *base = "{\"block_out_channels\": [32, 64], \"down_block_types\": [\"CrossAttnDownBlock2D\","
                       " \"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"],"
                       " \"cross_attention_dim\": 32";
    UnetConfig c;
    char json[1024];
    snprintf(json, sizeof json, "%s, \"norm_num_groups\": 8}", base);
    CHECK_OK(unet_config_parse(&c, json, "base", &tc->err));
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bool sets_groups = strstr(cases[i].extra, "norm_num_groups") != NULL;
        snprintf(json, sizeof json, "%s, %s%s}", base, cases[i].extra, sets_groups ? "" : ", \"norm_num_groups\": 8");
        dice_error_clear(&tc->err);
        CHECK_MSG(unet_config_parse(&c, json, "cfg", &tc->err) != 0, "accepted: %s", cases[i].extra);
        CHECK_MSG(strstr(tc->err.msg, cases[i].message), "%s: message '%s' lacks '%s'", cases[i].extra, tc->err.msg,
                  cases[i].message);
    }
    snprintf(json, sizeof json, "%s, \"norm_num_groups\": 48}", base);
    CHECK_FAILS_WITH(unet_config_parse(&c, json, "cfg", &tc->err), "norm_num_groups 48");
    snprintf(json, sizeof json, "%s, \"norm_num_groups\": 8, \"norm_num_groups\": 8}", base);
    CHECK_FAILS_WITH(unet_config_parse(&c, json, "cfg", &tc->err), "appears twice");
    CHECK_FAILS_WITH(unet_config_parse(&c, "{\"block_out_channels\": [32, 64]}", "cfg", &tc->err),
                     "down_block_types is missing");
    CHECK_FAILS_WITH(unet_config_parse(&c, "{\"block_out_channels\": [32, 64], \"down_block_types\": "
                                           "[\"DownBlock2D\"]}", "cfg", &tc->err), "down_block_types must be a list");
    CHECK_FAILS_WITH(unet_config_parse(&c, "{\"block_out_channels\": [32, 64], \"down_block_types\": "
                                           "[\"AttnDownBlock2D\", \"DownBlock2D\"]}", "cfg", &tc->err),
                     "down_block_types[0]");
    CHECK_FAILS_WITH(unet_config_parse(&c, "{\"block_out_channels\": []}", "cfg", &tc->err), "block_out_channels");
    CHECK_FAILS_WITH(unet_config_parse(&c, "{\"in_channels\": 4", "cfg", &tc->err), "not valid JSON");
    CHECK_FAILS_WITH(unet_config_parse(&c, "[1]", "cfg", &tc->err), "not a JSON object");
    CHECK_FAILS_WITH(unet_config_load(&c, "/nonexistent/config.json", &tc->err), "cannot open");
}

// A checkpoint with a tensor missing, one mis-shaped and one extra: loading reports all three by name.
DICE_TEST(unet_weight_problems_named) {
    char src[512], dir[512], path[600];
    snprintf(src, sizeof src, "%s", test_path(tc, "tests/golden/unet/tiny"));
    snprintf(dir, sizeof dir, "%s", test_tmpdir(tc));
    StFile st;
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", src);
    CHECK_OK(st_open(&st, path, &tc->err));
    StWriteTensor *ts = calloc((size_t)st.n_tensors + 1, sizeof *ts);
    CHECK(ts);
    int n = 0;
    static const float extra[3] = {1, 2, 3};
    for (int i = 0; i < st.n_tensors; i++) {
        const StTensorInfo *t = &st.tensors[i];
        if (!strcmp(t->name, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight")) continue;
        ts[n] = (StWriteTensor){t->name, t->dtype, t->ndim, {0}, t->data};
        memcpy(ts[n].shape, t->shape, sizeof t->shape);
        if (!strcmp(t->name, "up_blocks.1.resnets.0.conv_shortcut.bias")) ts[n].shape[0]--;
        n++;
    }
    ts[n++] = (StWriteTensor){"extra.weight", DT_F32, 1, {3}, extra};
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    CHECK_OK(st_write(path, ts, n, NULL, NULL, 0, &tc->err));
    free(ts);
    st_close(&st);
    UnetConfig cfg;
    char config[600];
    snprintf(config, sizeof config, "%s/config.json", src);
    CHECK_OK(unet_config_load(&cfg, config, &tc->err));
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "weights", DEV_CPU, 1 << 20, 0, &tc->err));
    Weights w;
    const char *paths[1] = {path};
    CHECK_OK(weights_open(&w, paths, 1, &ctx, &arena, DT_F32, &tc->err));
    Unet u;
    CHECK_OK(unet_load(&u, &cfg, &w, &tc->err));
    CHECK(weights_finish(&w, &tc->err) != 0);
    CHECK_MSG(strstr(tc->err.msg, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight") &&
                  strstr(tc->err.msg, "up_blocks.1.resnets.0.conv_shortcut.bias") && strstr(tc->err.msg, "extra.weight"),
              "message: %s", tc->err.msg);
    weights_close(&w);
    unet_free(&u);
    // unet_load_dir: a folder without config.json, then one with a config but no weights
    CHECK_FAILS_WITH(unet_load_dir(&u, "/nonexistent", &ctx, &arena, DT_F32, &tc->err), "config.json");
    CHECK(remove(path) == 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(SD15_CONFIG, f);
    CHECK(fclose(f) == 0);
    CHECK_FAILS_WITH(unet_load_dir(&u, dir, &ctx, &arena, DT_F32, &tc->err), "no diffusion_pytorch_model");
    arena_free(&arena);
}
