// tests/test_vae.c — AutoencoderKL (models/vae.h) against diffusers (tests/golden/vae/, scripts/golden_vae.py):
// encoder moments, the posterior and its torch-generator sample, the decoder, and the gradients of a weighted
// sum of the mean (to the image) and of the decoded image (to the latents), for two configurations, on the
// CPU in f32 (also with the explicit attention path and with per-block checkpointing) and on CUDA in bf16;
// plus config parsing and its errors, weight problems reported by name, the NaN / Inf check, the
// log-variance clamp and latent scaling.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/vae.h"
#include "nn/tensor_copy.h"
#include "test.h"

typedef struct VaeCase {
    const char *name;
    int64_t image[4], latent[4], decoded[4];   // NHWC shapes of the golden tensors
} VaeCase;

static const VaeCase TINY = {"tiny", {2, 16, 16, 3}, {2, 4, 4, 4}, {2, 16, 16, 3}};
static const VaeCase PLAIN = {"plain", {2, 15, 10, 4}, {2, 7, 5, 3}, {2, 14, 10, 2}};

// A loaded model and its golden file: io on the model's device and dtype (inputs), ref on the host in f32.
typedef struct Fixture {
    const VaeCase *vc;
    DiceCtx ctx, cpu;
    Arena weights, step, host, scratch;
    Vae vae;
    Weights io, ref;
    uint64_t seed;
} Fixture;

// model_dir: the model's folder, NULL for the golden one.
static int fixture_open(TestCtx *tc, Fixture *f, const VaeCase *vc, const char *model_dir, Device device,
                        DType dtype) {
    DiceError *err = &tc->err;
    memset(f, 0, sizeof *f);
    f->vc = vc;
    if (device == DEV_CUDA) DICE_TRY(ctx_init_cuda(&f->ctx, 0, err));
    else ctx_init_cpu(&f->ctx);
    ctx_init_cpu(&f->cpu);
    DICE_TRY(arena_init(&f->weights, "weights", device, 1 << 20, 0, err));
    DICE_TRY(arena_init(&f->step, "step", device, 1 << 22, 0, err));
    DICE_TRY(arena_init(&f->scratch, "scratch", device, 1 << 22, 0, err));
    DICE_TRY(arena_init(&f->host, "host", DEV_CPU, 1 << 20, 0, err));
    char dir[512], io[600];
    snprintf(dir, sizeof dir, "%s", test_path(tc, "tests/golden/vae"));
    snprintf(io, sizeof io, "%s/%s_io.safetensors", dir, vc->name);
    snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/%s", vc->name);
    DICE_TRY(vae_load_dir(&f->vae, model_dir ? model_dir : dir, &f->ctx, &f->weights, dtype, err));
    const char *paths[1] = {io};
    DICE_TRY(weights_open(&f->io, paths, 1, &f->ctx, &f->weights, dtype, err));
    DICE_TRY(weights_open(&f->ref, paths, 1, &f->cpu, &f->host, DT_F32, err));
    const char *seed = st_meta(&f->ref.files[0], "sample_seed");
    DICE_CHECK(err, seed, "%s: no sample_seed metadata", io);
    f->seed = strtoull(seed, NULL, 10);
    return 0;
}

static void fixture_close(Fixture *f) {
    weights_close(&f->io);
    weights_close(&f->ref);
    vae_free(&f->vae);
    arena_free(&f->host);
    arena_free(&f->scratch);
    arena_free(&f->step);
    arena_free(&f->weights);
    if (f->ctx.device == DEV_CUDA) ctx_free(&f->ctx);
}

// A golden tensor: on the model's device (input) or on the host in f32 (reference).
static int golden(Weights *w, const char *name, const int64_t *shape, Tensor *out, DiceError *err) {
    DICE_TRY(weights_get(w, out, name, 4, shape, NULL, err));
    DICE_CHECK(err, w->missing.count == 0 && w->misshaped.count == 0, "golden tensor %s missing or mis-shaped", name);
    return 0;
}

// got (any device and dtype) as f32 on the host.
static const float *host_f32(TestCtx *tc, Fixture *f, const Tensor *got) {
    Tensor h;
    if (tensor_to(&f->ctx, &f->host, &h, got, DT_F32, &tc->err)) return NULL;
    return h.data;
}

// The relative error of got against the golden tensor `tensor`; -1 if either cannot be read (tc->err says why).
static double golden_err(TestCtx *tc, Fixture *f, const Tensor *got, const char *tensor, const int64_t *shape) {
    Tensor want;
    if (golden(&f->ref, tensor, shape, &want, &tc->err)) return -1;
    const float *g = host_f32(tc, f, got);
    if (!g) return -1;
    return test_rel_err_f32(g, want.data, (size_t)tensor_numel(&want));
}

#define CHECK_GOLDEN(f, got, tensor, shape, tol)                                                           \
    do {                                                                                                   \
        double e_ = golden_err(tc, (f), (got), (tensor), (shape));                                         \
        CHECK_MSG(e_ >= 0, "%s: %s", (tensor), tc->err.msg);                                               \
        CHECK_MSG(e_ <= (tol), "%s %s: relative error %.3g > %.3g", (f)->vc->name, (tensor), e_, (double)(tol)); \
    } while (0)

// Encoder moments -> posterior (mean, logvar) and its sample; with grad, d sum(mean * mean_weight) / d image.
static void check_encode(TestCtx *tc, Fixture *f, double tol, double grad_tol) {
    const VaeCase *vc = f->vc;
    Graph g;
    CHECK_OK(graph_init(&g, &f->ctx, &f->step, &tc->err));
    Tensor image, mean_weight;
    CHECK_OK(golden(&f->io, "image", vc->image, &image, &tc->err));
    Var *x, *moments;
    CHECK_OK(graph_leaf(&g, &x, &image, grad_tol > 0, &tc->err));
    CHECK_OK(vae_encode_moments(&f->vae, &g, x, &moments, &tc->err));
    VaePosterior post;
    CHECK_OK(vae_posterior(&f->ctx, &f->host, &moments->value, &post, &tc->err));
    CHECK_GOLDEN(f, &post.mean, "mean", vc->latent, tol);
    CHECK_GOLDEN(f, &post.logvar, "logvar", vc->latent, tol);
    TorchGenerator gen;
    torch_gen_manual_seed(&gen, f->seed);
    Tensor sample;
    CHECK_OK(vae_posterior_sample(&post, &gen, &f->host, &sample, &tc->err));
    CHECK_GOLDEN(f, &sample, "sample", vc->latent, tol);
    if (grad_tol > 0) {  // the moments' gradient: [mean_weight | 0] along the channels
        CHECK_OK(golden(&f->ref, "mean_weight", vc->latent, &mean_weight, &tc->err));
        int64_t C = vc->latent[3], pixels = vc->latent[0] * vc->latent[1] * vc->latent[2];
        Tensor gm, gd;
        CHECK_OK(arena_tensor(&f->host, &gm, DT_F32, 4, moments->value.shape, &tc->err));
        const float *mw = mean_weight.data;
        float *gmd = gm.data;
        for (int64_t p = 0; p < pixels; p++)
            for (int64_t c = 0; c < 2 * C; c++) gmd[p * 2 * C + c] = c < C ? mw[p * C + c] : 0.0f;
        CHECK_OK(tensor_to(&f->ctx, &f->step, &gd, &gm, moments->value.dtype, &tc->err));
        CHECK_OK(graph_backward_from(&g, moments, &gd, &tc->err));
        CHECK_GOLDEN(f, &x->grad, "grad_image", vc->image, grad_tol);
    }
    graph_free(&g);
    arena_reset(&f->step);
}

// The decoder on the golden latents; with grad, d sum(decoded * decode_weight) / d z. *out gets the image and
// the gradient (host f32 copies) for bitwise comparisons.
static void check_decode(TestCtx *tc, Fixture *f, double tol, double grad_tol, Tensor *out, Tensor *grad_out) {
    const VaeCase *vc = f->vc;
    Graph g;
    CHECK_OK(graph_init(&g, &f->ctx, &f->step, &tc->err));
    Tensor z, weight;
    CHECK_OK(golden(&f->io, "z", vc->latent, &z, &tc->err));
    CHECK_OK(golden(&f->io, "decode_weight", vc->decoded, &weight, &tc->err));
    Var *zv, *image;
    CHECK_OK(graph_leaf(&g, &zv, &z, grad_tol > 0, &tc->err));
    CHECK_OK(vae_decode(&f->vae, &g, zv, &image, &tc->err));
    CHECK_GOLDEN(f, &image->value, "decoded", vc->decoded, tol);
    if (out) CHECK_OK(tensor_to(&f->ctx, &f->host, out, &image->value, DT_F32, &tc->err));
    if (grad_tol > 0) {
        CHECK_OK(graph_backward_from(&g, image, &weight, &tc->err));
        CHECK_GOLDEN(f, &zv->grad, "grad_z", vc->latent, grad_tol);
        if (grad_out) CHECK_OK(tensor_to(&f->ctx, &f->host, grad_out, &zv->grad, DT_F32, &tc->err));
    }
    graph_free(&g);
    arena_reset(&f->step);
}

// fp32 against PyTorch fp32: the same arithmetic in other summation orders (convolutions as implicit GEMMs,
// norms with two-pass statistics); relative 1e-7 per op over ~40 ops stays far under 1e-5. The gradients go
// through the same ops backwards (twice the operations, products of two rounded factors): 1e-4 leaves room
// for that without hiding a wrong term, which would be of order 1.
static void run_cpu(TestCtx *tc, const VaeCase *vc) {
    Fixture f;
    CHECK_OK(fixture_open(tc, &f, vc, NULL, DEV_CPU, DT_F32));
    check_encode(tc, &f, 1e-5, 1e-4);
    check_decode(tc, &f, 1e-5, 1e-4, NULL, NULL);
    fixture_close(&f);
}

DICE_TEST(vae_tiny_matches_diffusers_cpu_f32) { run_cpu(tc, &TINY); }
DICE_TEST(vae_plain_matches_diffusers_cpu_f32) { run_cpu(tc, &PLAIN); }

// The explicit-product attention (used on CUDA for heads wider than the fused kernel takes) on the CPU.
DICE_TEST(vae_matmul_attention_matches_diffusers_cpu_f32) {
    Fixture f;
    CHECK_OK(fixture_open(tc, &f, &TINY, NULL, DEV_CPU, DT_F32));
    vae_set_attention_path(&f.vae, VAE_ATTN_MATMUL);
    check_encode(tc, &f, 1e-5, 1e-4);
    check_decode(tc, &f, 1e-5, 1e-4, NULL, NULL);
    fixture_close(&f);
}

// Per-block checkpointing (a scratch arena on the graph) gives the same image and gradient, bit for bit.
DICE_TEST(vae_checkpointed_blocks_match_cpu_f32) {
    Fixture f;
    CHECK_OK(fixture_open(tc, &f, &TINY, NULL, DEV_CPU, DT_F32));
    Tensor img0, grad0, img1, grad1;
    check_decode(tc, &f, 1e-5, 1e-4, &img0, &grad0);
    Graph g;
    CHECK_OK(graph_init(&g, &f.ctx, &f.step, &tc->err));
    graph_set_scratch(&g, &f.scratch);
    Tensor z, weight;
    CHECK_OK(golden(&f.io, "z", TINY.latent, &z, &tc->err));
    CHECK_OK(golden(&f.io, "decode_weight", TINY.decoded, &weight, &tc->err));
    Var *zv, *image;
    CHECK_OK(graph_leaf(&g, &zv, &z, true, &tc->err));
    CHECK_OK(vae_decode(&f.vae, &g, zv, &image, &tc->err));
    CHECK(g.n_nodes < 40);  // blocks, not ops, were recorded
    CHECK_OK(graph_backward_from(&g, image, &weight, &tc->err));
    CHECK_OK(tensor_to(&f.ctx, &f.host, &img1, &image->value, DT_F32, &tc->err));
    CHECK_OK(tensor_to(&f.ctx, &f.host, &grad1, &zv->grad, DT_F32, &tc->err));
    CHECK(!memcmp(img0.data, img1.data, tensor_nbytes(&img0)));
    CHECK(!memcmp(grad0.data, grad1.data, tensor_nbytes(&grad0)));
    graph_free(&g);
    fixture_close(&f);
}

// bf16 storage with fp32 accumulation and statistics against the fp32 reference. diffusers itself, run in bf16
// on the same inputs (vae.to(torch.bfloat16)), is off its fp32 result by 1.0e-2 (mean, logvar), 2.1e-2 (decoded)
// and 3.3e-2 (grad_z); dice in bf16 measures the same (0.9e-2, 1.0e-2, 2.0e-2, 3.3e-2). Tolerances of about
// twice that fail a wrong term (of order 1) while leaving bf16's rounding room. The sample adds noise of size
// exp(logvar / 2) ~ 1 computed on the host in f32: the same relative error or less.
DICE_CUDA_TEST(vae_tiny_matches_diffusers_cuda_bf16) {
    Fixture f;
    CHECK_OK(fixture_open(tc, &f, &TINY, NULL, DEV_CUDA, DT_BF16));
    check_encode(tc, &f, 2e-2, 0);
    check_decode(tc, &f, 4e-2, 6e-2, NULL, NULL);
    vae_set_attention_path(&f.vae, VAE_ATTN_MATMUL);  // the path SD's 512-channel attention takes on a GPU
    check_decode(tc, &f, 4e-2, 6e-2, NULL, NULL);
    fixture_close(&f);
}

// ---------------------------------------------------------------- config

static const char SD15_VAE[] =
    "{\"_class_name\": \"AutoencoderKL\", \"_diffusers_version\": \"0.6.0\", \"act_fn\": \"silu\","
    " \"block_out_channels\": [128, 256, 512, 512], \"down_block_types\": [\"DownEncoderBlock2D\","
    " \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"], \"in_channels\": 3,"
    " \"latent_channels\": 4, \"layers_per_block\": 2, \"norm_num_groups\": 32, \"out_channels\": 3,"
    " \"sample_size\": 512, \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\","
    " \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}";

DICE_TEST(vae_config_reads_sd15_and_sdxl) {
    VaeConfig c;
    CHECK_OK(vae_config_parse(&c, SD15_VAE, "sd15", &tc->err));
    CHECK(c.n_levels == 4 && c.block_out_channels[3] == 512 && c.layers_per_block == 2 && c.latent_channels == 4);
    CHECK(c.norm_num_groups == 32 && c.sample_height == 512 && c.sample_width == 512 && vae_downscale(&c) == 8);
    CHECK(c.scaling_factor == 0.18215f && c.shift_factor == 0.0f && c.use_quant_conv && c.use_post_quant_conv);
    CHECK(c.mid_block_add_attention && c.force_upcast);
    char sdxl[2048];  // SDXL's vae/config.json adds these
    snprintf(sdxl, sizeof sdxl, "%.*s, \"scaling_factor\": 0.13025, \"force_upcast\": false, \"_name_or_path\": "
             "\"x\", \"latents_mean\": null, \"latents_std\": null, \"shift_factor\": null}",
             (int)strlen(SD15_VAE) - 1, SD15_VAE);
    CHECK_OK(vae_config_parse(&c, sdxl, "sdxl", &tc->err));
    CHECK(c.scaling_factor == 0.13025f && !c.force_upcast && c.shift_factor == 0.0f);
    CHECK_OK(vae_config_parse(&c, "{\"sample_size\": [64, 48], \"shift_factor\": 0.0609, \"act_fn\": \"swish\"}",
                              "flux", &tc->err));
    CHECK(c.sample_height == 64 && c.sample_width == 48 && c.shift_factor == 0.0609f && c.block_out_channels[0] == 64);
}

DICE_TEST(vae_config_errors_name_the_field) {
    VaeConfig c;
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"block_out_channels\": [64,", "cfg", &tc->err), "cfg: not valid JSON");
    CHECK_FAILS_WITH(vae_config_parse(&c, "[1]", "cfg", &tc->err), "not a JSON object");
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"_class_name\": \"AutoencoderTiny\"}", "cfg", &tc->err),
                     "_class_name must be \"AutoencoderKL\"");
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"norm_type\": \"spatial\"}", "cfg", &tc->err),
                     "unknown field \"norm_type\"");
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"down_block_types\": [\"AttnDownEncoderBlock2D\"]}", "cfg", &tc->err),
                     "down_block_types[0] is \"AttnDownEncoderBlock2D\"");
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"up_block_types\": [\"UpDecoderBlock2D\", 3]}", "cfg", &tc->err),
                     "up_block_types[1] is 3");
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"block_out_channels\": [32, 64]}", "cfg", &tc->err),
                     "1 down_block_types and 1 up_block_types for 2 block_out_channels");
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"block_out_channels\": [48], \"norm_num_groups\": 32}", "cfg", &tc->err),
                     "norm_num_groups 32 does not divide block_out_channels[0] = 48");
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"act_fn\": \"gelu\"}", "cfg", &tc->err), "act_fn must be \"silu\"");
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"layers_per_block\": \"2\"}", "cfg", &tc->err),
                     "layers_per_block must be an integer in 1..64, not \"2\"");
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"latent_channels\": 2.5}", "cfg", &tc->err),
                     "latent_channels must be an integer");
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"scaling_factor\": 0}", "cfg", &tc->err),
                     "scaling_factor must be a positive number");
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"latents_mean\": [0.1, 0.2, 0.3, 0.4]}", "cfg", &tc->err),
                     "latents_mean must be null");
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"use_quant_conv\": 1}", "cfg", &tc->err),
                     "use_quant_conv must be true or false");
    CHECK_FAILS_WITH(vae_config_parse(&c, "{\"sample_size\": [1, 2, 3]}", "cfg", &tc->err), "sample_size must be");
    CHECK_FAILS_WITH(vae_config_load(&c, "/nonexistent/config.json", &tc->err), "cannot open the VAE config");
}

// ---------------------------------------------------------------- weights

// Writes a copy of golden model `model` (config.json and weights) into the test's temporary folder, with each
// tensor passed through edit (which may rename or reshape it in place, name into buf, or drop it by returning
// false) and `extra` appended when not NULL. *dir gets the folder.
typedef bool (*TensorEdit)(StWriteTensor *t, char *buf, size_t cap);

static int copy_model(TestCtx *tc, const char *model, TensorEdit edit, const StWriteTensor *extra, const char **dir,
                      DiceError *err) {
    char src_dir[512], path[700];
    snprintf(src_dir, sizeof src_dir, "%s/%s", test_path(tc, "tests/golden/vae"), model);
    *dir = test_tmpdir(tc);
    VaeConfig unused;  // the config is copied byte for byte, after a check that it parses
    snprintf(path, sizeof path, "%s/config.json", src_dir);
    DICE_TRY(vae_config_load(&unused, path, err));
    FILE *in = fopen(path, "rb");
    snprintf(path, sizeof path, "%s/config.json", *dir);
    FILE *out = fopen(path, "wb");
    char buf[4096];
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    bool ok = in && out;
    if (in) fclose(in);
    if (out && fclose(out)) ok = false;
    DICE_CHECK(err, ok, "copying %s/config.json failed", src_dir);

    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", src_dir);
    StFile src;
    DICE_TRY(st_open(&src, path, err));
    StWriteTensor *t = calloc((size_t)src.n_tensors + 1, sizeof *t);
    char (*names)[256] = calloc((size_t)src.n_tensors, sizeof *names);
    int count = 0, rc = 0;
    if (!t || !names) rc = DICE_FAIL(err, "out of memory");
    for (int i = 0; i < src.n_tensors && !rc; i++) {
        const StTensorInfo *info = &src.tensors[i];
        t[count] = (StWriteTensor){info->name, info->dtype, info->ndim, {0}, info->data};
        for (int d = 0; d < info->ndim; d++) t[count].shape[d] = info->shape[d];
        if (edit(&t[count], names[i], sizeof names[i])) count++;
    }
    if (!rc && extra) t[count++] = *extra;
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", *dir);
    if (!rc) rc = st_write(path, t, count, NULL, NULL, 0, err);
    free(names);
    free(t);
    st_close(&src);
    return rc;
}

// Drops decoder.conv_out.bias, reshapes encoder.conv_in.weight (8, 4, 3, 3) -> (8, 36, 1, 1).
static bool break_weights(StWriteTensor *t, char *buf, size_t cap) {
    (void)buf, (void)cap;
    if (!strcmp(t->name, "decoder.conv_out.bias")) return false;
    if (!strcmp(t->name, "encoder.conv_in.weight")) {
        t->shape[1] = 36;
        t->shape[2] = t->shape[3] = 1;
    }
    return true;
}

// The plain VAE's weights with one tensor dropped, one reshaped and one added: all three are reported.
DICE_TEST(vae_weight_problems_are_reported_by_name) {
    float extra_data[2] = {1, 2};
    StWriteTensor extra = {"decoder.extra.weight", DT_F32, 1, {2}, extra_data};
    const char *dir;
    CHECK_OK(copy_model(tc, "plain", break_weights, &extra, &dir, &tc->err));
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "weights", DEV_CPU, 1 << 20, 0, &tc->err));
    Vae vae;
    CHECK_FAILS_WITH(vae_load_dir(&vae, dir, &ctx, &arena, DT_F32, &tc->err), "1 missing: decoder.conv_out.bias");
    CHECK(strstr(tc->err.msg, "1 mis-shaped: encoder.conv_in.weight (expected [8, 4, 3, 3]"));
    CHECK(strstr(tc->err.msg, "1 unexpected: decoder.extra.weight"));
    CHECK_FAILS_WITH(vae_load_dir(&vae, "/nonexistent", &ctx, &arena, DT_F32, &tc->err), "/nonexistent/config.json");
    arena_free(&arena);
}

// Renames the mid attention's projections to the names of diffusers before 0.14 (to_q -> query, ...).
static bool deprecate_attention_names(StWriteTensor *t, char *buf, size_t cap) {
    static const char *const NEW[4] = {".to_q.", ".to_k.", ".to_v.", ".to_out.0."};
    static const char *const OLD[4] = {".query.", ".key.", ".value.", ".proj_attn."};
    for (int i = 0; i < 4; i++) {
        const char *at = strstr(t->name, NEW[i]);
        if (!at || !strstr(t->name, "mid_block.attentions.0")) continue;
        snprintf(buf, cap, "%.*s%s%s", (int)(at - t->name), t->name, OLD[i], at + strlen(NEW[i]));
        t->name = buf;
    }
    return true;
}

// SD1.5's vae/ folder (saved by diffusers 0.6) uses query / key / value / proj_attn: same model, same results.
DICE_TEST(vae_loads_deprecated_attention_names) {
    const char *dir;
    CHECK_OK(copy_model(tc, "tiny", deprecate_attention_names, NULL, &dir, &tc->err));
    char model_dir[512], path[600];
    snprintf(model_dir, sizeof model_dir, "%s", dir);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", model_dir);
    StFile st;
    CHECK_OK(st_open(&st, path, &tc->err));
    bool renamed = st_find(&st, "decoder.mid_block.attentions.0.proj_attn.bias") &&
                   !st_find(&st, "decoder.mid_block.attentions.0.to_out.0.bias");
    st_close(&st);
    CHECK(renamed);
    Fixture f;
    CHECK_OK(fixture_open(tc, &f, &TINY, model_dir, DEV_CPU, DT_F32));
    check_decode(tc, &f, 1e-5, 0, NULL, NULL);
    fixture_close(&f);
}

// ---------------------------------------------------------------- posterior, scaling, NaN check

DICE_TEST(vae_posterior_clamps_and_samples_nchw) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena host;
    CHECK_OK(arena_init(&host, "host", DEV_CPU, 1 << 16, 0, &tc->err));
    float m[1 * 1 * 3 * 4] = {0.5f, -1, -40, 1, 2, 3, 25, 0, -0.25f, 0.75f, -30, 20};  // (1, 1, 3, 2 C), C = 2
    Tensor moments;
    CHECK_OK(tensor_wrap(&moments, m, DT_F32, DEV_CPU, 4, (int64_t[]){1, 1, 3, 4}, &tc->err));
    VaePosterior post;
    CHECK_OK(vae_posterior(&ctx, &host, &moments, &post, &tc->err));
    const float *mean = post.mean.data, *lv = post.logvar.data;
    const float want_mean[6] = {0.5f, -1, 2, 3, -0.25f, 0.75f}, want_lv[6] = {-30, 1, 20, 0, -30, 20};
    for (int i = 0; i < 6; i++) CHECK(mean[i] == want_mean[i] && lv[i] == want_lv[i]);
    TorchGenerator gen;
    torch_gen_manual_seed(&gen, 3);
    Tensor s;
    CHECK_OK(vae_posterior_sample(&post, &gen, &host, &s, &tc->err));
    float noise[6];  // torch.randn((1, 2, 1, 3)): channel-major
    torch_gen_manual_seed(&gen, 3);
    CHECK_OK(torch_randn(&gen, DT_F32, noise, 6, &tc->err));
    for (int x = 0; x < 3; x++)
        for (int c = 0; c < 2; c++) {
            int i = x * 2 + c;
            CHECK_NEAR(((float *)s.data)[i], mean[i] + expf(0.5f * lv[i]) * noise[c * 3 + x], 1e-6);
        }
    arena_free(&host);
}

DICE_TEST(vae_latent_scaling_round_trips) {
    VaeConfig cfg;
    CHECK_OK(vae_config_parse(&cfg, "{\"scaling_factor\": 0.3611, \"shift_factor\": 0.1159}", "sd3", &tc->err));
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 16, 0, &tc->err));
    float x[8] = {-2, -1, -0.5f, 0, 0.1159f, 0.5f, 1, 3}, orig[8];
    memcpy(orig, x, sizeof x);
    Tensor t;
    CHECK_OK(tensor_wrap(&t, x, DT_F32, DEV_CPU, 4, (int64_t[]){1, 2, 1, 4}, &tc->err));
    CHECK_OK(vae_scale_latents(&cfg, &t, &tc->err));
    CHECK(x[4] == 0.0f);
    CHECK_NEAR(x[7], (3 - 0.1159f) * 0.3611f, 1e-6);
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
    Var *lat, *z;
    CHECK_OK(graph_leaf(&g, &lat, &t, false, &tc->err));
    CHECK_OK(vae_unscale_latents(&cfg, &g, lat, &z, &tc->err));
    for (int i = 0; i < 8; i++) CHECK_NEAR(((float *)z->value.data)[i], orig[i], 1e-6);
    graph_free(&g);
    arena_free(&arena);
}

DICE_TEST(vae_nan_or_inf_output_stops_with_a_message) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    float v[6] = {0, 1, -2, 3, 4, 5};
    uint16_t b[4] = {dice_f32_to_bf16(1), dice_f32_to_bf16(INFINITY), dice_f32_to_bf16(NAN), 0};
    Tensor t, tb;
    CHECK_OK(tensor_wrap(&t, v, DT_F32, DEV_CPU, 2, (int64_t[]){2, 3}, &tc->err));
    CHECK_OK(vae_check_finite(&ctx, &t, "image", &tc->err));
    v[4] = NAN;
    CHECK_FAILS_WITH(vae_check_finite(&ctx, &t, "image", &tc->err), "has 1 NaN and 0 Inf values (the first at flat "
                                                                     "index 4)");
    CHECK_OK(tensor_wrap(&tb, b, DT_BF16, DEV_CPU, 1, (int64_t[]){4}, &tc->err));
    CHECK_FAILS_WITH(vae_check_finite(&ctx, &tb, "image", &tc->err), "has 1 NaN and 1 Inf values");
    // A decoder whose last bias is NaN refuses to return its image.
    Fixture f;
    CHECK_OK(fixture_open(tc, &f, &PLAIN, NULL, DEV_CPU, DT_F32));
    ((float *)f.vae.decoder.conv_out.bias.data)[1] = NAN;
    Graph g;
    CHECK_OK(graph_init(&g, &f.ctx, &f.step, &tc->err));
    Tensor z;
    CHECK_OK(golden(&f.io, "z", PLAIN.latent, &z, &tc->err));
    Var *zv, *image;
    CHECK_OK(graph_leaf(&g, &zv, &z, false, &tc->err));
    CHECK_FAILS_WITH(vae_decode(&f.vae, &g, zv, &image, &tc->err), "VAE decode output f32[2, 14, 10, 2] cpu has 280 "
                                                                     "NaN");
    graph_free(&g);
    fixture_close(&f);
}
