// models/sd_model.c — opening a Stable Diffusion 1.x pipeline folder or checkpoint file onto a device
// (models/sd_model.h): format detection, model_index.json, per-component weight files (plain or variant),
// loading with every weight problem reported, cross-component shape checks, the image codec (VAE or pixel
// space), the A1111 short hash.
#include "sd_model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/ldm_names.h"
#include "nn/sha256.h"
#include "nn/tensor_copy.h"

// The weights file variants diffusers writes (save_pretrained(variant=...)), in order of preference.
static const char *const VARIANTS[] = {"", ".fp16", ".bf16"};

static bool is_file(const char *path) {
    struct stat st;
    return !stat(path, &st) && S_ISREG(st.st_mode);
}

static bool is_dir(const char *path) {
    struct stat st;
    return !stat(path, &st) && S_ISDIR(st.st_mode);
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcasecmp(s + n - k, suffix);
}

// How to turn a pickle or a single file into what dice reads.
#define CONVERT_HINT                                                                                            \
    "convert it to a diffusers folder of safetensors files in Python: "                                        \
    "StableDiffusionPipeline.from_single_file(PATH).save_pretrained(DIR, safe_serialization=True), or with "  \
    "diffusers' scripts/convert_original_stable_diffusion_to_diffusers.py --checkpoint_path PATH --dump_path " \
    "DIR --to_safetensors"

// A pickled checkpoint by name or by content (a torch zip archive "PK\3\4", or pickle protocol 2+ "\x80").
static int refuse_pickle(const char *path, DiceError *err) {
    static const char *const ext[] = {".ckpt", ".bin", ".pt", ".pth", ".pkl"};
    bool pickle = false;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) pickle |= has_suffix(path, ext[i]);
    unsigned char head[4] = {0};
    FILE *f = fopen(path, "rb");
    if (f) {
        size_t got = fread(head, 1, sizeof head, f);
        fclose(f);
        pickle |= (got == 4 && !memcmp(head, "PK\3\4", 4)) || (got >= 2 && head[0] == 0x80 && head[1] >= 2);
    }
    DICE_CHECK(err, !pickle,
               "%s: a pickled PyTorch checkpoint; dice reads safetensors only (loading a pickle can run arbitrary "
               "code): " CONVERT_HINT, path);
    return 0;
}

static int read_text(const char *path, char **out, DiceError *err) {
    FILE *f = fopen(path, "rb");
    DICE_CHECK(err, f, "%s: cannot open it", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = size >= 0 ? malloc((size_t)size + 1) : NULL;
    size_t got = text ? fread(text, 1, (size_t)size, f) : 0;
    fclose(f);
    if (!text || got != (size_t)size) {
        free(text);
        return DICE_FAIL(err, "%s: cannot read it", path);
    }
    text[got] = 0;
    *out = text;
    return 0;
}

// model_index.json entry `key` must be ["library", "class"] with class one of `classes` (NULL-terminated). With
// `absent` non-NULL, [null, null] (a pipeline saved without that component) is accepted too and sets *absent.
static int check_component(const cJSON *root, const char *path, const char *key, const char *const *classes,
                           bool *absent, DiceError *err) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, key);
    DICE_CHECK(err, e, "%s: no \"%s\" component (a Stable Diffusion pipeline has tokenizer, text_encoder, unet, "
               "vae and scheduler; a pixel-space one lists \"vae\": [null, null])", path, key);
    const cJSON *cls = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, 1) : NULL;
    if (absent) {
        *absent = cJSON_GetArraySize(e) == 2 && cJSON_IsNull(cJSON_GetArrayItem(e, 0)) && cJSON_IsNull(cls);
        if (*absent) return 0;
    }
    DICE_CHECK(err, cJSON_IsString(cls), "%s: \"%s\" is not a [library, class] pair", path, key);
    for (int i = 0; classes[i]; i++)
        if (!strcmp(cls->valuestring, classes[i])) return 0;
    char name[96];
    st_printable(name, sizeof name, cls->valuestring);
    return DICE_FAIL(err, "%s: %s class %s is not supported (expected %s)", path, key, name, classes[0]);
}

// The folder's model_index.json; *has_vae is false when it lists "vae": [null, null] (a pixel-space model).
static int read_model_index(const char *dir, bool *has_vae, DiceError *err) {
    char path[4200], *text = NULL;
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    DICE_CHECK(err, is_file(path), "%s: no model_index.json: not a diffusers pipeline folder (dice --model takes "
               "a folder saved by diffusers' save_pretrained, or a checkpoint file)", dir);
    DICE_TRY(read_text(path, &text, err));
    cJSON *root = cJSON_Parse(text);
    free(text);
    DICE_CHECK(err, cJSON_IsObject(root), "%s: not a JSON object", path);
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
    int rc = 0;
    if (!cJSON_IsString(cls)) rc = DICE_FAIL(err, "%s: no \"_class_name\"", path);
    else if (strcmp(cls->valuestring, "StableDiffusionPipeline")) {
        char name[96];
        st_printable(name, sizeof name, cls->valuestring);
        rc = DICE_FAIL(err, "%s: pipeline %s is not supported (dice reads StableDiffusionPipeline folders: SD 1.x "
                       "and its fine-tunes)", path, name);
    }
    static const char *const tok[] = {"CLIPTokenizer", "CLIPTokenizerFast", NULL};
    static const char *const text_cls[] = {"CLIPTextModel", NULL};
    static const char *const unet_cls[] = {"UNet2DConditionModel", NULL};
    static const char *const vae_cls[] = {"AutoencoderKL", NULL};
    bool no_vae = false;
    if (!rc) rc = check_component(root, path, "tokenizer", tok, NULL, err);
    if (!rc) rc = check_component(root, path, "text_encoder", text_cls, NULL, err);
    if (!rc) rc = check_component(root, path, "unet", unet_cls, NULL, err);
    if (!rc) rc = check_component(root, path, "vae", vae_cls, &no_vae, err);
    *has_vae = !no_vae;
    if (!rc && !cJSON_GetObjectItemCaseSensitive(root, "scheduler"))
        rc = DICE_FAIL(err, "%s: no \"scheduler\" component", path);
    cJSON_Delete(root);
    return rc;
}

// dir/stem{,.fp16,.bf16}.safetensors, the first that exists, into path.
static int weights_file(const char *dir, const char *stem, char *path, size_t cap, DiceError *err) {
    for (size_t i = 0; i < sizeof VARIANTS / sizeof VARIANTS[0]; i++) {
        snprintf(path, cap, "%s/%s%s.safetensors", dir, stem, VARIANTS[i]);
        if (is_file(path)) return 0;
    }
    snprintf(path, cap, "%s/%s.bin", dir, stem);
    DICE_CHECK(err, !is_file(path), "%s: only a pickled %s.bin is there; dice reads safetensors only: %s", dir, stem,
               CONVERT_HINT);
    return DICE_FAIL(err, "%s: no %s.safetensors (nor its .fp16 / .bf16 variant)", dir, stem);
}

// Names of transformers 5's CLIPTextModel files lack the "text_model." prefix of the canonical names.
static const char *strip_text_model(const char *canonical, char *buf, size_t bufsize, void *user) {
    (void)user;
    const char *prefix = "text_model.";
    snprintf(buf, bufsize, "%s", strncmp(canonical, prefix, strlen(prefix)) ? canonical : canonical + strlen(prefix));
    return buf;
}

static int load_text_encoder(SdModel *m, const char *dir, DiceError *err) {
    char path[4400];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    bool sharded = is_file(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (sharded || is_file(path)) return clip_encoder_load_dir(&m->text, dir, m->ctx, &m->weights, m->dtype, err);
    DICE_TRY(weights_file(dir, "model", path, sizeof path, err));
    char cfg_path[4400];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    ClipEncoderConfig cfg;
    DICE_TRY(clip_encoder_config_load(&cfg, cfg_path, err));
    const char *paths[1] = {path};
    Weights w;
    DICE_TRY(weights_open(&w, paths, 1, m->ctx, &m->weights, m->dtype, err));
    if (!weights_has(&w, "text_model.embeddings.token_embedding.weight") &&
        weights_has(&w, "embeddings.token_embedding.weight"))
        weights_set_names(&w, strip_text_model, NULL);
    int rc = clip_encoder_load(&m->text, &cfg, &w, err);
    if (!rc && weights_finish(&w, err)) {
        clip_encoder_free(&m->text);
        rc = -1;
    }
    weights_close(&w);
    return rc;
}

static int load_vae(SdModel *m, const char *dir, DiceError *err) {
    char path[4400], cfg_path[4400];
    DICE_TRY(weights_file(dir, "diffusion_pytorch_model", path, sizeof path, err));
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    VaeConfig cfg;
    DICE_TRY(vae_config_load(&cfg, cfg_path, err));
    const char *paths[1] = {path};
    Weights w;
    DICE_TRY(weights_open(&w, paths, 1, m->ctx, &m->weights, m->dtype, err));
    int rc = vae_load(&m->vae, &cfg, &w, err);
    if (!rc && weights_finish(&w, err)) {
        vae_free(&m->vae);
        rc = -1;
    }
    weights_close(&w);
    return rc;
}

static int load_unet(SdModel *m, const char *dir, DiceError *err) {
    char path[4400], cfg_path[4400];
    DICE_TRY(weights_file(dir, "diffusion_pytorch_model", path, sizeof path, err));
    DICE_TRY(sd_model_hash(path, m->hash, err));
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    UnetConfig cfg;
    DICE_TRY(unet_config_load(&cfg, cfg_path, err));
    const char *paths[1] = {path};
    Weights w;
    DICE_TRY(weights_open(&w, paths, 1, m->ctx, &m->weights, m->dtype, err));
    int rc = unet_load(&m->unet, &cfg, &w, err);
    if (!rc && weights_finish(&w, err)) {
        unet_free(&m->unet);
        rc = -1;
    }
    weights_close(&w);
    return rc;
}

// A pixel-space model's UNet works on RGB images: 3 channels in and out, read from its config whatever is loaded.
static int check_pixel_unet(const char *dir, DiceError *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    UnetConfig cfg;
    DICE_TRY(unet_config_load(&cfg, path, err));
    DICE_CHECK(err, cfg.in_channels == 3 && cfg.out_channels == 3,
               "%s: a pixel-space model (model_index.json lists \"vae\": [null, null]) needs a UNet on RGB images "
               "(in_channels = out_channels = 3), but unet/config.json has in_channels %lld, out_channels %lld",
               dir, (long long)cfg.in_channels, (long long)cfg.out_channels);
    return 0;
}

// The components must fit together: text width = cross_attention_dim, latent channels = UNet channels, an RGB VAE.
static int check_shapes(const SdModel *m, DiceError *err) {
    const UnetConfig *u = &m->unet.cfg;
    if ((m->loaded & SD_LOAD_TEXT) && (m->loaded & SD_LOAD_UNET))
        for (int i = 0; i < u->n_levels; i++)
            DICE_CHECK(err, u->cross_attention_dim[i] == m->text.cfg.hidden_size,
                       "%s: the text encoder's hidden_size %d differs from the UNet's cross_attention_dim %lld",
                       m->path, m->text.cfg.hidden_size, (long long)u->cross_attention_dim[i]);
    if (m->loaded & SD_LOAD_VAE)
        DICE_CHECK(err, m->vae.cfg.in_channels == 3 && m->vae.cfg.out_channels == 3,
                   "%s: the VAE takes %d and gives %d image channels, not RGB (3)", m->path, m->vae.cfg.in_channels,
                   m->vae.cfg.out_channels);
    if ((m->loaded & SD_LOAD_VAE) && (m->loaded & SD_LOAD_UNET))
        DICE_CHECK(err, m->vae.cfg.latent_channels == u->in_channels && u->in_channels == u->out_channels,
                   "%s: the VAE's latent_channels %d do not match the UNet's in/out channels %lld / %lld", m->path,
                   m->vae.cfg.latent_channels, (long long)u->in_channels, (long long)u->out_channels);
    if ((m->loaded & SD_LOAD_TEXT) && (m->loaded & SD_LOAD_TOKENIZER))
        DICE_CHECK(err, m->tok.max_length <= m->text.cfg.max_positions,
                   "%s: the tokenizer's model_max_length %d exceeds the text encoder's max_position_embeddings %d",
                   m->path, m->tok.max_length, m->text.cfg.max_positions);
    return 0;
}

static int open_folder(SdModel *m, const char *dir, int what, DiceError *err) {
    DICE_TRY(read_model_index(dir, &m->has_vae, err));
    if (!m->has_vae) DICE_TRY(check_pixel_unet(dir, err));
    char sub[4200];
    snprintf(m->scheduler_config, sizeof m->scheduler_config, "%s/scheduler/scheduler_config.json", dir);
    DICE_CHECK(err, is_file(m->scheduler_config), "%s: missing (every pipeline folder has one)", m->scheduler_config);
    if (what & SD_LOAD_TOKENIZER) {
        snprintf(sub, sizeof sub, "%s/tokenizer", dir);
        DICE_TRY(clip_tokenizer_load(&m->tok, sub, err));
        m->loaded |= SD_LOAD_TOKENIZER;
    }
    if (what & SD_LOAD_TEXT) {
        snprintf(sub, sizeof sub, "%s/text_encoder", dir);
        DICE_TRY(load_text_encoder(m, sub, err));
        m->loaded |= SD_LOAD_TEXT;
    }
    snprintf(sub, sizeof sub, "%s/unet", dir);
    if (what & SD_LOAD_UNET) {
        DICE_TRY(load_unet(m, sub, err));
        m->loaded |= SD_LOAD_UNET;
    } else {
        char path[4200];
        DICE_TRY(weights_file(sub, "diffusion_pytorch_model", path, sizeof path, err));
        DICE_TRY(sd_model_hash(path, m->hash, err));
    }
    if ((what & SD_LOAD_VAE) && m->has_vae) {
        snprintf(sub, sizeof sub, "%s/vae", dir);
        DICE_TRY(load_vae(m, sub, err));
        m->loaded |= SD_LOAD_VAE;
    }
    return check_shapes(m, err);
}

// The component configs, tokenizer and scheduler of a single file come from config_dir, a diffusers SD 1.x folder
// (diffusers' from_single_file(path, config=DIR)); its weight files, if any, are not read.
static int load_configs(SdModel *m, const char *config_dir, UnetConfig *unet, VaeConfig *vae, ClipEncoderConfig *text,
                        int what, DiceError *err) {
    char path[4400];
    snprintf(m->scheduler_config, sizeof m->scheduler_config, "%s/scheduler/scheduler_config.json", config_dir);
    DICE_CHECK(err, is_file(m->scheduler_config), "%s: missing (--config must be a diffusers Stable Diffusion folder)",
               m->scheduler_config);
    snprintf(path, sizeof path, "%s/unet/config.json", config_dir);
    DICE_TRY(unet_config_load(unet, path, err));
    if (what & SD_LOAD_VAE) {
        snprintf(path, sizeof path, "%s/vae/config.json", config_dir);
        DICE_TRY(vae_config_load(vae, path, err));
    }
    if (what & SD_LOAD_TEXT) {
        snprintf(path, sizeof path, "%s/text_encoder/config.json", config_dir);
        DICE_TRY(clip_encoder_config_load(text, path, err));
    }
    if (what & SD_LOAD_TOKENIZER) {
        snprintf(path, sizeof path, "%s/tokenizer", config_dir);
        DICE_TRY(clip_tokenizer_load(&m->tok, path, err));
        m->loaded |= SD_LOAD_TOKENIZER;
    }
    return 0;
}

// The three models of one original-layout file through one Weights (models/ldm_names.h): weights_finish then
// reports every missing, mis-shaped and unexpected tensor of the file at once (the EMA copy and the DDPM buffers
// are known extras; when only some models are loaded, the others' tensors are not reported).
static int load_single(SdModel *m, const char *path, const UnetConfig *unet, const VaeConfig *vae,
                       const ClipEncoderConfig *text, int what, DiceError *err) {
    int parts = (what & SD_LOAD_UNET ? 1 : 0) + (what & SD_LOAD_VAE ? 1 : 0) + (what & SD_LOAD_TEXT ? 1 : 0);
    if (!parts) return 0;
    const char *paths[1] = {path};
    Weights w;
    DICE_TRY(weights_open(&w, paths, 1, m->ctx, &m->weights, m->dtype, err));
    LdmNames names = {.unet = unet, .vae = vae, .partial = parts < 3};
    ldm_use(&w, &names);
    int rc = 0;
    if (what & SD_LOAD_UNET) {
        names.component = LDM_UNET;
        rc = unet_load(&m->unet, unet, &w, err);
        if (!rc) m->loaded |= SD_LOAD_UNET;
    }
    if (!rc && (what & SD_LOAD_VAE)) {
        names.component = LDM_VAE;
        rc = vae_load(&m->vae, vae, &w, err);
        if (!rc) m->loaded |= SD_LOAD_VAE;
    }
    if (!rc && (what & SD_LOAD_TEXT)) {
        names.component = LDM_TEXT_ENCODER;
        rc = clip_encoder_load(&m->text, text, &w, err);
        if (!rc) m->loaded |= SD_LOAD_TEXT;
    }
    if (!rc) rc = weights_finish(&w, err);
    weights_close(&w);
    return rc;
}

// A single .safetensors file: an original-layout (LDM) Stable Diffusion checkpoint is recognised by its prefixes.
static int open_file(SdModel *m, const char *path, const char *config_dir, int what, DiceError *err) {
    StFile f;
    DICE_TRY(st_open(&f, path, err));
    const char *const prefixes[] = {ldm_prefix(LDM_UNET), ldm_prefix(LDM_VAE), ldm_prefix(LDM_TEXT_ENCODER)};
    int found[3] = {0};
    for (int i = 0; i < f.n_tensors; i++)
        for (int p = 0; p < 3; p++) found[p] += !strncmp(f.tensors[i].name, prefixes[p], strlen(prefixes[p]));
    st_close(&f);
    DICE_CHECK(err, found[0] || found[1] || found[2],
               "%s: not a Stable Diffusion checkpoint (no model.diffusion_model.*, first_stage_model.* or "
               "cond_stage_model.transformer.* tensors); --model takes a pipeline folder or a single-file checkpoint",
               path);
    DICE_CHECK(err, found[0] && found[1] && found[2],
               "%s: an incomplete single-file checkpoint (%d UNet, %d VAE, %d text-encoder tensors; SD 1.x files hold "
               "all three)", path, found[0], found[1], found[2]);
    DICE_CHECK(err, config_dir,
               "%s: a single-file checkpoint holds no configs and no tokenizer: give --config DIR, a diffusers SD 1.x "
               "folder (its *.json files and tokenizer/ are enough, e.g. stable-diffusion-v1-5 without weights)", path);
    DICE_TRY(sd_model_hash(path, m->hash, err));
    UnetConfig unet;
    VaeConfig vae;
    ClipEncoderConfig text;
    DICE_TRY(load_configs(m, config_dir, &unet, &vae, &text, what, err));
    DICE_TRY(load_single(m, path, &unet, &vae, &text, what, err));
    return check_shapes(m, err);
}

int sd_model_open(SdModel *m, const char *path, const char *config_dir, DiceCtx *ctx, int what, DiceError *err) {
    memset(m, 0, sizeof *m);
    DICE_CHECK(err, strlen(path) < sizeof m->path - 64, "%s: path too long", path);
    snprintf(m->path, sizeof m->path, "%s", path);
    char trimmed[4096];
    snprintf(trimmed, sizeof trimmed, "%s", path);
    for (size_t n = strlen(trimmed); n > 1 && trimmed[n - 1] == '/'; n--) trimmed[n - 1] = 0;
    const char *slash = strrchr(trimmed, '/');
    snprintf(m->name, sizeof m->name, "%s", slash ? slash + 1 : trimmed);
    char *dot = strrchr(m->name, '.');
    if (dot && dot != m->name && is_file(path)) *dot = 0;
    m->ctx = ctx;
    m->dtype = ctx->device == DEV_CUDA ? DT_BF16 : DT_F32;
    DICE_CHECK(err, is_dir(path) || is_file(path), "%s: no such file or folder", path);
    DICE_CHECK(err, !config_dir || !is_dir(path), "%s: a pipeline folder has its own configs (a config folder is for "
               "single-file checkpoints)", path);
    DICE_TRY(arena_init(&m->weights, "model weights", ctx->device, (size_t)64 << 20, 0, err));
    int rc;
    m->has_vae = true;  // until model_index.json says otherwise
    if (is_dir(path)) rc = open_folder(m, path, what, err);
    else rc = refuse_pickle(path, err) ? -1 : open_file(m, path, config_dir, what, err);
    if (rc) sd_model_close(m);
    return rc;
}

void sd_model_close(SdModel *m) {
    if (m->loaded & SD_LOAD_TOKENIZER) clip_tokenizer_free(&m->tok);
    if (m->loaded & SD_LOAD_TEXT) clip_encoder_free(&m->text);
    if (m->loaded & SD_LOAD_UNET) unet_free(&m->unet);
    if (m->loaded & SD_LOAD_VAE) vae_free(&m->vae);
    arena_free(&m->weights);
    m->loaded = 0;
}

int sd_model_scheduler(const SdModel *m, SchedulerKind kind, Scheduler *s, DiceError *err) {
    return scheduler_load(s, kind, m->scheduler_config, err);
}

// ---------------------------------------------------------------- the image codec

int sd_model_vae_scale(const SdModel *m) { return m->has_vae ? vae_downscale(&m->vae.cfg) : 1; }

int sd_model_size_multiple(const SdModel *m) { return sd_model_vae_scale(m) << (m->unet.cfg.n_levels - 1); }

int sd_model_latent_channels(const SdModel *m) { return m->has_vae ? m->vae.cfg.latent_channels : 3; }

double sd_model_scaling_factor(const SdModel *m) { return m->has_vae ? m->vae.cfg.scaling_factor : 1.0; }

bool sd_model_has_codec(const SdModel *m) { return !m->has_vae || (m->loaded & SD_LOAD_VAE); }

int sd_model_encode(SdModel *m, Graph *g, const Tensor *images, Arena *host, VaePosterior *post, DiceError *err) {
    DICE_CHECK(err, sd_model_has_codec(m), "%s was opened without its VAE: nothing to encode images with", m->path);
    char desc[96];
    DICE_CHECK(err, images->ndim == 4 && images->shape[3] == 3 && images->dtype == DT_F32 &&
                        images->device == DEV_CPU && tensor_is_contiguous(images),
               "%s: images to encode must be (n, H, W, 3) f32 contiguous on the host, not %s", m->path,
               tensor_describe(images, desc, sizeof desc));
    if (!m->has_vae) {  // pixel space: a point mass at the image, in f32
        DICE_TRY(arena_tensor(host, &post->mean, DT_F32, 4, images->shape, err));
        DICE_TRY(arena_tensor(host, &post->logvar, DT_F32, 4, images->shape, err));
        memcpy(post->mean.data, images->data, tensor_nbytes(images));
        float *lv = post->logvar.data;
        for (int64_t i = 0; i < tensor_numel(&post->logvar); i++) lv[i] = VAE_LOGVAR_MIN;
        return 0;
    }
    Tensor x;
    Var *xv;
    DICE_TRY(tensor_to(m->ctx, g->arena, &x, images, m->dtype, err));
    DICE_TRY(graph_leaf(g, &xv, &x, false, err));
    return vae_encode(&m->vae, g, xv, host, post, err);
}

// One image through the VAE decoder: z (h, w, C) host f32 (latents / scaling_factor) -> out (H, W, 3) host f32.
// The arenas and graph are the caller's; each call resets them.
static int vae_decode_one(SdModel *m, Graph *g, Arena *step, Arena *host, const float *z, int h, int w, float *out,
                          DiceError *err) {
    arena_reset(step);
    arena_reset(host);
    graph_reset(g);
    Tensor zh, zd, img;
    Var *zv, *image;
    DICE_TRY(tensor_wrap(&zh, (void *)z, DT_F32, DEV_CPU, 4, (int64_t[]){1, h, w, m->vae.cfg.latent_channels}, err));
    DICE_TRY(tensor_to(m->ctx, step, &zd, &zh, m->dtype, err));
    DICE_TRY(graph_leaf(g, &zv, &zd, false, err));
    DICE_TRY(vae_decode(&m->vae, g, zv, &image, err));  // checks for NaN / Inf
    DICE_TRY(tensor_to(m->ctx, host, &img, &image->value, DT_F32, err));
    memcpy(out, img.data, tensor_nbytes(&img));
    return 0;
}

// Decoded images (n, H, W, 3) in [-1, 1] -> diffusers' post-processing into out_image / out_pixels.
static int postprocess(const SdModel *m, const float *x, size_t count, float *out_image, uint8_t *out_pixels,
                       DiceError *err) {
    for (size_t k = 0; k < count; k++) {
        DICE_CHECK(err, isfinite(x[k]), "%s: decoded image value %zu is %g (NaN or Inf): the latents diverged",
                   m->path, k, x[k]);
        float v = x[k] / 2.0f + 0.5f;
        v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        if (out_image) out_image[k] = v;
        if (out_pixels) out_pixels[k] = (uint8_t)rintf(v * 255.0f);  // numpy round: half to even
    }
    return 0;
}

int sd_model_decode(SdModel *m, const float *latents, int n, int h, int w, float *out_image, uint8_t *out_pixels,
                    DiceError *err) {
    DICE_CHECK(err, sd_model_has_codec(m), "%s was opened without its VAE: nothing to decode latents with", m->path);
    int f = sd_model_vae_scale(m), C = sd_model_latent_channels(m);
    size_t per = (size_t)h * w * C, pix = (size_t)(h * f) * (size_t)(w * f) * 3;
    if (!m->has_vae)  // pixel space: the latents are the images
        return postprocess(m, latents, pix * n, out_image, out_pixels, err);
    DiceCtx *ctx = m->ctx;
    Arena step, host;
    Graph g;
    float *z = malloc(per * sizeof *z), *img = malloc(pix * sizeof *img);
    int rc = z && img ? 0 : DICE_FAIL(err, "%s: out of host memory to decode", m->path);
    bool step_ok = !rc && !arena_init(&step, "decode", ctx->device, (size_t)64 << 20, 0, err);
    bool host_ok = step_ok && !arena_init(&host, "decode host", DEV_CPU, (size_t)8 << 20, 0, err);
    bool graph_ok = host_ok && !graph_init(&g, ctx, &step, err);
    if (!graph_ok) rc = -1;
    else graph_no_grad_begin(&g);
    float sf = (float)m->vae.cfg.scaling_factor;
    for (int i = 0; i < n && !rc; i++) {
        for (size_t k = 0; k < per; k++) z[k] = latents[per * i + k] / sf;  // on the host in f32, as diffusers
        rc = vae_decode_one(m, &g, &step, &host, z, h, w, img, err);
        if (!rc) rc = postprocess(m, img, pix, out_image ? out_image + pix * i : NULL,
                                  out_pixels ? out_pixels + pix * i : NULL, err);
    }
    if (graph_ok) graph_free(&g);
    if (host_ok) arena_free(&host);
    if (step_ok) arena_free(&step);
    free(z);
    free(img);
    return rc;
}

int sd_model_hash(const char *path, char *buf, DiceError *err) {
    enum { OFFSET = 0x100000, LENGTH = 0x10000 };
    FILE *f = fopen(path, "rb");
    DICE_CHECK(err, f, "%s: cannot open it", path);
    unsigned char *data = malloc(LENGTH);
    size_t got = 0;
    if (data && !fseek(f, OFFSET, SEEK_SET)) got = fread(data, 1, LENGTH, f);
    fclose(f);
    DICE_CHECK(err, data, "out of host memory");
    char hex[65];
    sha256_hex(data, got, hex);
    free(data);
    memcpy(buf, hex, 8);
    buf[8] = 0;
    return 0;
}
