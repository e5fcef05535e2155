// tests/test_ldm_names.c — single-file original-layout checkpoints (models/ldm_names.c) against the diffusers
// folders they were made from (tests/golden/ldm/, scripts/golden_ldm.py, which checks its file against diffusers'
// own single-file loader): every tensor loads bit for bit as from the folder, the three models load from one
// file with nothing left over and reproduce diffusers' outputs, the name table agrees with the published one on
// the other golden layouts, and missing, mis-shaped and unknown tensors are reported while known extras are not.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "models/clip_encoder.h"
#include "models/ldm_names.h"
#include "nn/tensor_copy.h"
#include "test.h"

#define LDM_FILE "tests/golden/ldm/model.safetensors"

typedef struct Env {
    DiceCtx cpu;
    Arena weights, host, step;
    UnetConfig unet;
    VaeConfig vae;
    ClipEncoderConfig clip;
} Env;

static int env_init(TestCtx *tc, Env *e) {
    memset(e, 0, sizeof *e);
    ctx_init_cpu(&e->cpu);
    DICE_TRY(arena_init(&e->weights, "weights", DEV_CPU, 1 << 22, 0, &tc->err));
    DICE_TRY(arena_init(&e->host, "host", DEV_CPU, 1 << 20, 0, &tc->err));
    DICE_TRY(arena_init(&e->step, "step", DEV_CPU, 1 << 22, 0, &tc->err));
    DICE_TRY(unet_config_load(&e->unet, test_path(tc, "tests/golden/unet/sd15/config.json"), &tc->err));
    DICE_TRY(vae_config_load(&e->vae, test_path(tc, "tests/golden/ldm/vae/config.json"), &tc->err));
    return clip_encoder_config_load(&e->clip, test_path(tc, "tests/golden/clip_encoder/quick/config.json"), &tc->err);
}

static void env_free(Env *e) {
    arena_free(&e->step);
    arena_free(&e->host);
    arena_free(&e->weights);
}

static int open_file(TestCtx *tc, Env *e, Weights *w, const char *path) {
    return weights_open(w, &path, 1, &e->cpu, &e->weights, DT_F32, &tc->err);
}

// Every tensor of a diffusers folder's file, loaded from the folder and (by its canonical name, which is the
// file's name with `canonical_prefix` in front) from the single file: the same shape and bits. f32 on both sides
// (the fp16 UNet converts exactly).
static void check_component(TestCtx *tc, Env *e, Weights *ldm, const char *folder_file, const char *canonical_prefix) {
    Weights d;
    CHECK_OK(open_file(tc, e, &d, test_path(tc, folder_file)));
    const StFile *f = &d.files[0];
    for (int i = 0; i < f->n_tensors; i++) {
        const StTensorInfo *t = &f->tensors[i];
        char canonical[512];
        snprintf(canonical, sizeof canonical, "%s%s", canonical_prefix, t->name);
        Tensor a, b;
        CHECK_OK(weights_get(&d, &a, t->name, t->ndim, t->shape, NULL, &tc->err));
        CHECK_OK(weights_get(ldm, &b, canonical, t->ndim, t->shape, NULL, &tc->err));
        CHECK_MSG(tensor_same_shape(&a, &b) && !memcmp(a.data, b.data, (size_t)tensor_numel(&a) * sizeof(float)),
                  "%s differs between %s and the single file", canonical, folder_file);
    }
    CHECK_OK(weights_finish(&d, &tc->err));
    weights_close(&d);
}

DICE_TEST(ldm_every_tensor_matches_the_diffusers_folders) {
    Env e;
    CHECK_OK(env_init(tc, &e));
    Weights w;
    CHECK_OK(open_file(tc, &e, &w, test_path(tc, LDM_FILE)));
    CHECK(ldm_is_single_file(&w.files[0]));
    LdmNames n = {.component = LDM_UNET, .unet = &e.unet};
    ldm_use(&w, &n);
    check_component(tc, &e, &w, "tests/golden/unet/sd15/diffusion_pytorch_model.safetensors", "");
    n = (LdmNames){.component = LDM_VAE, .vae = &e.vae};
    check_component(tc, &e, &w, "tests/golden/ldm/vae/diffusion_pytorch_model.safetensors", "");
    n = (LdmNames){.component = LDM_TEXT_ENCODER};
    // transformers 5 saved the folder's CLIPTextModel without "text_model.": its canonical names have it.
    check_component(tc, &e, &w, "tests/golden/clip_encoder/quick/model.safetensors", "text_model.");
    Tensor ids;
    CHECK_OK(weights_get(&w, &ids, "text_model.embeddings.position_ids", 2, (int64_t[]){1, 77}, NULL, &tc->err));
    CHECK(ids.dtype == DT_I64 && ((int64_t *)ids.data)[76] == 76);
    // Everything else in the file is a known extra (EMA, schedule buffers): nothing unexpected.
    CHECK_OK(weights_finish(&w, &tc->err));
    weights_close(&w);
    env_free(&e);
}

// Relative norm error of `got` (f32, host) against tensor `name` of an io file.
static double io_err(TestCtx *tc, Weights *io, const Tensor *got, const char *name) {
    const StTensorInfo *t = st_find(&io->files[0], name);
    Tensor want;
    if (!t || weights_get(io, &want, name, t->ndim, t->shape, NULL, &tc->err) || !tensor_same_shape(&want, got))
        return INFINITY;
    return test_rel_err_f32(got->data, want.data, (size_t)tensor_numel(got));
}

static Tensor io_tensor(TestCtx *tc, Weights *io, const char *name) {
    Tensor t = {0};
    const StTensorInfo *info = st_find(&io->files[0], name);
    if (info) (void)weights_get(io, &t, name, info->ndim, info->shape, NULL, &tc->err);
    return t;
}

// The three models from the one file through one Weights (nothing missing, mis-shaped or unexpected), then
// their outputs against diffusers / transformers on the CPU in f32: these are the golden outputs of the folders
// (tests/test_unet.c, test_clip_encoder.c, test_vae.c hold the same 1e-5 bounds and say why).
DICE_TEST(ldm_models_from_one_file_match_diffusers) {
    Env e;
    CHECK_OK(env_init(tc, &e));
    Weights w;
    CHECK_OK(open_file(tc, &e, &w, test_path(tc, LDM_FILE)));
    Unet unet;
    Vae vae;
    ClipEncoder clip;
    LdmNames n = {.component = LDM_UNET, .unet = &e.unet};
    ldm_use(&w, &n);
    CHECK_OK(unet_load(&unet, &e.unet, &w, &tc->err));
    n = (LdmNames){.component = LDM_VAE, .vae = &e.vae};
    CHECK_OK(vae_load(&vae, &e.vae, &w, &tc->err));
    n = (LdmNames){.component = LDM_TEXT_ENCODER};
    CHECK_OK(clip_encoder_load(&clip, &e.clip, &w, &tc->err));
    CHECK_OK(weights_finish(&w, &tc->err));

    Weights io;
    const char *ios[3] = {"tests/golden/unet/sd15/io.safetensors", "tests/golden/ldm/vae_io.safetensors",
                          "tests/golden/clip_encoder/reference.safetensors"};
    Graph g;
    CHECK_OK(graph_init(&g, &e.cpu, &e.step, &tc->err));
    graph_no_grad_begin(&g);
    Var *a, *b, *out;
    CHECK_OK(open_file(tc, &e, &io, test_path(tc, ios[0])));  // UNet eps at t0
    Tensor x = io_tensor(tc, &io, "x"), ehs = io_tensor(tc, &io, "encoder_hidden_states");
    Tensor t0 = io_tensor(tc, &io, "t0");
    CHECK_OK(graph_leaf(&g, &a, &x, false, &tc->err));
    CHECK_OK(graph_leaf(&g, &b, &ehs, false, &tc->err));
    CHECK_OK(unet_forward(&g, &unet, a, &t0, b, &out, &tc->err));
    CHECK(io_err(tc, &io, &out->value, "eps_t0") <= 1e-5);
    weights_close(&io);

    CHECK_OK(open_file(tc, &e, &io, test_path(tc, ios[1])));  // VAE encode and decode
    Tensor image = io_tensor(tc, &io, "image"), z = io_tensor(tc, &io, "z");
    CHECK_OK(graph_leaf(&g, &a, &image, false, &tc->err));
    VaePosterior post;
    CHECK_OK(vae_encode(&vae, &g, a, &e.host, &post, &tc->err));
    CHECK(io_err(tc, &io, &post.mean, "mean") <= 1e-5 && io_err(tc, &io, &post.logvar, "logvar") <= 1e-5);
    CHECK_OK(graph_leaf(&g, &a, &z, false, &tc->err));
    CHECK_OK(vae_decode(&vae, &g, a, &out, &tc->err));
    CHECK(io_err(tc, &io, &out->value, "decoded") <= 1e-5);
    weights_close(&io);

    CHECK_OK(open_file(tc, &e, &io, test_path(tc, ios[2])));  // CLIP last hidden state and pooled output
    Tensor ids = io_tensor(tc, &io, "quick/input_ids");
    ClipEncoderOutput co = {0};
    CHECK_OK(clip_encoder_forward(&g, &clip, &ids, CLIP_LAST_HIDDEN_STATE, &co, &tc->err));
    CHECK(io_err(tc, &io, &co.last_hidden_state->value, "quick/last_hidden_state") <= 1e-5);
    CHECK(io_err(tc, &io, &co.pooled->value, "quick/pooled") <= 1e-5);
    weights_close(&io);

    graph_free(&g);
    clip_encoder_free(&clip);
    vae_free(&vae);
    unet_free(&unet);
    weights_close(&w);
    env_free(&e);
}

// The whole file at path, NUL-terminated (heap), or false.
static bool read_text(const char *path, char **text, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    bool ok = !fseek(f, 0, SEEK_END);
    long n = ok ? ftell(f) : -1;
    ok = n >= 0 && !fseek(f, 0, SEEK_SET) && (*text = malloc((size_t)n + 1));
    if (ok && fread(*text, 1, (size_t)n, f) != (size_t)n) {
        free(*text);
        ok = false;
    }
    fclose(f);
    if (ok) (*text)[n] = 0, *len = (size_t)n;
    return ok;
}

// names.json: the original name of every tensor of the other golden UNets and VAEs (per-level layer counts,
// two levels, linear projections, VAEs of 2 and 3 levels), from scripts/golden_ldm.py's diffusers -> original
// table. The C table (original <- canonical) must give the same name for each.
DICE_TEST(ldm_names_agree_with_the_published_tables) {
    char *text = NULL;
    size_t len = 0;
    CHECK(read_text(test_path(tc, "tests/golden/ldm/names.json"), &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    CHECK(root);
    int checked = 0;
    const cJSON *model;
    cJSON_ArrayForEach(model, root) {
        char config[256];
        snprintf(config, sizeof config, "tests/golden/%s/config.json", model->string);
        UnetConfig uc;
        VaeConfig vc;
        LdmNames n = {0};
        if (!strncmp(model->string, "unet/", 5)) {
            CHECK_OK(unet_config_load(&uc, test_path(tc, config), &tc->err));
            n = (LdmNames){.component = LDM_UNET, .unet = &uc};
        } else {
            CHECK_OK(vae_config_load(&vc, test_path(tc, config), &tc->err));
            n = (LdmNames){.component = LDM_VAE, .vae = &vc};
        }
        const char *prefix = ldm_prefix(n.component);
        const cJSON *pair;
        cJSON_ArrayForEach(pair, model) {
            char buf[512], want[512];
            snprintf(want, sizeof want, "%s%s", prefix, pair->valuestring);
            const char *got = ldm_name(pair->string, buf, sizeof buf, &n);
            CHECK_MSG(got && !strcmp(got, want), "%s: %s -> %s, expected %s", model->string, pair->string,
                      got ? got : "NULL", want);
            checked++;
        }
    }
    CHECK(checked > 400);
    cJSON_Delete(root);
    free(text);
}

// Loads all three models from path through one Weights; weights_finish's verdict is left in tc->err.
static int load_all(TestCtx *tc, Env *e, const char *path, bool unet_only) {
    Weights w;
    DICE_TRY(open_file(tc, e, &w, path));
    Unet unet;
    Vae vae;
    ClipEncoder clip;
    LdmNames n = {.component = LDM_UNET, .unet = &e->unet, .partial = unet_only};
    ldm_use(&w, &n);
    int rc = unet_load(&unet, &e->unet, &w, &tc->err);
    if (!unet_only) {
        n = (LdmNames){.component = LDM_VAE, .vae = &e->vae};
        if (!rc) rc = vae_load(&vae, &e->vae, &w, &tc->err);
        n = (LdmNames){.component = LDM_TEXT_ENCODER};
        if (!rc) rc = clip_encoder_load(&clip, &e->clip, &w, &tc->err);
        vae_free(&vae);
        clip_encoder_free(&clip);
    }
    if (!rc) rc = weights_finish(&w, &tc->err);
    unet_free(&unet);
    weights_close(&w);
    return rc;
}

// A copy of the file with two tensors dropped, one of the wrong shape, two unknown tensors and more known
// extras: every problem is named (canonical names for the model's requests, file names for the leftovers), the
// extras are not. Loading the UNet alone from the intact file is clean with `partial`, and lists the other
// models' tensors as unexpected without it.
DICE_TEST(ldm_reports_problems_but_not_known_extras) {
    Env e;
    CHECK_OK(env_init(tc, &e));
    StFile f;
    CHECK_OK(st_open(&f, test_path(tc, LDM_FILE), &tc->err));
    StWriteTensor *t = calloc((size_t)f.n_tensors + 4, sizeof *t);
    CHECK(t);
    static const float zeros[64];
    int n = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const StTensorInfo *s = &f.tensors[i];
        if (!strcmp(s->name, "model.diffusion_model.out.2.bias") ||
            !strcmp(s->name, "first_stage_model.encoder.mid.attn_1.q.weight"))
            continue;
        t[n] = (StWriteTensor){s->name, s->dtype, s->ndim, {0}, s->data};
        memcpy(t[n].shape, s->shape, sizeof s->shape);
        if (!strcmp(s->name, "model.diffusion_model.time_embed.0.bias"))  // (32) -> (33)
            t[n] = (StWriteTensor){s->name, DT_F32, 1, {s->shape[0] + 1}, zeros};
        n++;
    }
    t[n++] = (StWriteTensor){"model.diffusion_model.label_emb.0.0.weight", DT_F32, 1, {4}, zeros};
    t[n++] = (StWriteTensor){"first_stage_model.loss.logvar", DT_F32, 1, {1}, zeros};
    t[n++] = (StWriteTensor){"sqrt_recipm1_alphas_cumprod", DT_F32, 1, {8}, zeros};
    t[n++] = (StWriteTensor){"model_ema.diffusion_modeltime_embed0bias", DT_F32, 1, {8}, zeros};
    char path[512];
    snprintf(path, sizeof path, "%s/broken.safetensors", test_tmpdir(tc));
    CHECK_OK(st_write(path, t, n, NULL, NULL, 0, &tc->err));
    free(t);
    st_close(&f);

    CHECK_FAILS_WITH(load_all(tc, &e, path, false),
                     "2 missing: conv_out.bias, encoder.mid_block.attentions.0.to_q.weight");
    CHECK(strstr(tc->err.msg, "1 mis-shaped: time_embedding.linear_1.bias (expected [32], file has [33])"));
    CHECK(strstr(tc->err.msg, "2 unexpected: ") && strstr(tc->err.msg, "model.diffusion_model.label_emb.0.0.weight") &&
          strstr(tc->err.msg, "first_stage_model.loss.logvar"));
    CHECK(!strstr(tc->err.msg, "sqrt_recipm1") && !strstr(tc->err.msg, "model_ema") && !strstr(tc->err.msg, "betas"));

    CHECK_OK(load_all(tc, &e, test_path(tc, LDM_FILE), true));
    Weights w;
    CHECK_OK(open_file(tc, &e, &w, test_path(tc, LDM_FILE)));
    LdmNames names = {.component = LDM_UNET, .unet = &e.unet};
    ldm_use(&w, &names);
    Unet unet;
    CHECK_OK(unet_load(&unet, &e.unet, &w, &tc->err));
    CHECK_FAILS_WITH(weights_finish(&w, &tc->err), "unexpected: cond_stage_model.transformer.text_model.");
    unet_free(&unet);
    weights_close(&w);
    env_free(&e);
}

// Names outside the layout, unknown components, missing configs and short buffers give NULL (the request counts
// as missing); diffusers' pre-0.14 VAE attention names map like the current ones; detection and prefixes.
DICE_TEST(ldm_name_edges_and_detection) {
    Env e;
    CHECK_OK(env_init(tc, &e));
    char buf[256];
    LdmNames u = {.component = LDM_UNET, .unet = &e.unet}, v = {.component = LDM_VAE, .vae = &e.vae};
    // sd15 layout: 4 levels of 2 layers, cross-attention on down levels 0-2 and up levels 1-3.
    const char *ok[][2] = {
        {"down_blocks.3.resnets.1.conv_shortcut.bias", "model.diffusion_model.input_blocks.11.0.skip_connection.bias"},
        {"down_blocks.2.downsamplers.0.conv.weight", "model.diffusion_model.input_blocks.9.0.op.weight"},
        {"up_blocks.0.upsamplers.0.conv.bias", "model.diffusion_model.output_blocks.2.1.conv.bias"},
        {"up_blocks.2.upsamplers.0.conv.bias", "model.diffusion_model.output_blocks.8.2.conv.bias"},
        {"up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_out.0.weight",
         "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn2.to_out.0.weight"},
        {"mid_block.resnets.1.time_emb_proj.weight", "model.diffusion_model.middle_block.2.emb_layers.1.weight"},
        {"mid_block.attentions.0.proj_in.weight", "model.diffusion_model.middle_block.1.proj_in.weight"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        const char *got = ldm_name(ok[i][0], buf, sizeof buf, &u);
        CHECK_MSG(got && !strcmp(got, ok[i][1]), "%s -> %s", ok[i][0], got ? got : "NULL");
    }
    const char *bad[] = {"down_blocks.4.resnets.0.conv1.weight", "down_blocks.0.resnets.2.conv1.weight",
                         "down_blocks.3.attentions.0.norm.weight", "down_blocks.3.downsamplers.0.conv.weight",
                         "up_blocks.0.attentions.0.norm.weight", "up_blocks.3.upsamplers.0.conv.weight",
                         "up_blocks.1.resnets.3.conv1.weight", "down_blocks.01.resnets.0.conv1.weight",
                         "mid_block.resnets.2.conv1.weight", "down_blocks.0.resnets.0.bogus.weight",
                         "add_embedding.linear_1.weight", "conv_in.", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_MSG(!ldm_name(bad[i], buf, sizeof buf, &u), "%s should have no original name", bad[i]);
    CHECK(!ldm_name("conv_in.weight", buf, 20, &u));  // "model.diffusion_model.input_blocks.0.0.weight" is longer
    LdmNames none = {.component = LDM_UNET}, odd = {.component = "controlnet", .unet = &e.unet};
    CHECK(!ldm_name("conv_in.weight", buf, sizeof buf, &none) && !ldm_name("conv_in.weight", buf, sizeof buf, &odd));
    CHECK(!ldm_name("conv_in.weight", buf, sizeof buf, NULL));

    const char *old_new[][2] = {
        {"decoder.mid_block.attentions.0.query.bias", "decoder.mid_block.attentions.0.to_q.bias"},
        {"encoder.mid_block.attentions.0.proj_attn.weight", "encoder.mid_block.attentions.0.to_out.0.weight"},
    };
    for (int i = 0; i < 2; i++) {
        char other[256];
        const char *a = ldm_name(old_new[i][0], buf, sizeof buf, &v);
        const char *b = ldm_name(old_new[i][1], other, sizeof other, &v);
        CHECK(a && b && !strcmp(a, b) && strstr(a, ".mid.attn_1."));
    }
    CHECK(!strcmp(ldm_name("decoder.up_blocks.0.upsamplers.0.conv.weight", buf, sizeof buf, &v),
                  "first_stage_model.decoder.up.3.upsample.conv.weight"));
    CHECK(!ldm_name("decoder.up_blocks.3.upsamplers.0.conv.weight", buf, sizeof buf, &v));
    CHECK(!ldm_name("encoder.down_blocks.0.resnets.2.conv1.weight", buf, sizeof buf, &v));  // encoder: 2 resnets
    CHECK(ldm_name("decoder.up_blocks.0.resnets.2.conv1.weight", buf, sizeof buf, &v));     // decoder: 3
    LdmNames te = {.component = LDM_TEXT_ENCODER};
    CHECK(!strcmp(ldm_name("text_model.final_layer_norm.bias", buf, sizeof buf, &te),
                  "cond_stage_model.transformer.text_model.final_layer_norm.bias"));

    CHECK(ldm_is_known_extra("model_ema.decay", NULL) && ldm_is_known_extra("alphas_cumprod_prev", NULL));
    CHECK(!ldm_is_known_extra("alphas_cumprod.x", NULL) && !ldm_is_known_extra("first_stage_model.x", &u));
    CHECK(!ldm_prefix("controlnet") && !strcmp(ldm_prefix(LDM_VAE), "first_stage_model."));
    StFile f;
    CHECK_OK(st_open(&f, test_path(tc, "tests/golden/unet/sd15/diffusion_pytorch_model.safetensors"), &tc->err));
    CHECK(!ldm_is_single_file(&f));
    st_close(&f);
    env_free(&e);
}
