// models/vae_config.c — reading a diffusers AutoencoderKL config.json into a VaeConfig (the accepted fields
// and their rules are listed in models/vae.h). Absent fields keep AutoencoderKL.__init__'s defaults; a
// field that would change the model in a way dice does not implement, or that dice does not know, is an
// error naming it.
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/vae.h"
#include "nn/safetensors.h"  // st_printable

#define VAE_MAX_CHANNELS 65536

typedef struct Parser {
    const char *where;
    DiceError *err;
} Parser;

static void describe(const cJSON *item, char *out, size_t cap) {
    if (cJSON_IsNull(item)) snprintf(out, cap, "null");
    else if (cJSON_IsBool(item)) snprintf(out, cap, "%s", cJSON_IsTrue(item) ? "true" : "false");
    else if (cJSON_IsNumber(item)) snprintf(out, cap, "%.17g", item->valuedouble);
    else if (cJSON_IsString(item)) {
        char text[64];
        st_printable(text, sizeof text, item->valuestring);  // untrusted: control characters escaped
        snprintf(out, cap, "\"%s\"", text);
    } else if (cJSON_IsArray(item)) snprintf(out, cap, "an array");
    else snprintf(out, cap, "an object");
}

static int wrong(Parser *p, const char *name, const cJSON *item, const char *expected) {
    char v[96];
    describe(item, v, sizeof v);
    return DICE_FAIL(p->err, "%s: %s must be %s, not %s", p->where, name, expected, v);
}

static int get_int(Parser *p, const char *name, const cJSON *item, int lo, int hi, int *out) {
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) || item->valuedouble < lo ||
        item->valuedouble > hi) {
        char expected[64];
        snprintf(expected, sizeof expected, "an integer in %d..%d", lo, hi);
        return wrong(p, name, item, expected);
    }
    *out = (int)item->valuedouble;
    return 0;
}

static int get_bool(Parser *p, const char *name, const cJSON *item, bool *out) {
    if (!cJSON_IsBool(item)) return wrong(p, name, item, "true or false");
    *out = cJSON_IsTrue(item);
    return 0;
}

static int get_float(Parser *p, const char *name, const cJSON *item, bool positive, float *out) {
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || (positive && !(item->valuedouble > 0)))
        return wrong(p, name, item, positive ? "a positive number" : "a finite number");
    *out = (float)item->valuedouble;
    return 0;
}

// A list of block types that must all be `type`; its length is checked against block_out_channels later.
static int get_block_types(Parser *p, const char *name, const cJSON *item, const char *type, int *n) {
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) < 1 || cJSON_GetArraySize(item) > VAE_MAX_LEVELS) {
        char expected[64];
        snprintf(expected, sizeof expected, "a list of 1 to %d block types", VAE_MAX_LEVELS);
        return wrong(p, name, item, expected);
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, item) {
        if (!cJSON_IsString(e) || strcmp(e->valuestring, type)) {
            char v[96];
            describe(e, v, sizeof v);
            return DICE_FAIL(p->err, "%s: %s[%d] is %s; dice's AutoencoderKL supports only %s", p->where, name, i, v,
                             type);
        }
        i++;
    }
    *n = i;
    return 0;
}

static int get_channels(Parser *p, const cJSON *item, VaeConfig *c) {
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) < 1 || cJSON_GetArraySize(item) > VAE_MAX_LEVELS) {
        char expected[64];
        snprintf(expected, sizeof expected, "a list of 1 to %d channel counts", VAE_MAX_LEVELS);
        return wrong(p, "block_out_channels", item, expected);
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, item) {
        char name[48];
        snprintf(name, sizeof name, "block_out_channels[%d]", i);
        DICE_TRY(get_int(p, name, e, 1, VAE_MAX_CHANNELS, &c->block_out_channels[i]));
        i++;
    }
    c->n_levels = i;
    return 0;
}

// sample_size: an integer or [height, width].
static int get_sample_size(Parser *p, const cJSON *item, VaeConfig *c) {
    if (cJSON_IsArray(item)) {
        if (cJSON_GetArraySize(item) != 2) return wrong(p, "sample_size", item, "an integer or [height, width]");
        DICE_TRY(get_int(p, "sample_size[0]", cJSON_GetArrayItem(item, 0), 1, 1 << 20, &c->sample_height));
        return get_int(p, "sample_size[1]", cJSON_GetArrayItem(item, 1), 1, 1 << 20, &c->sample_width);
    }
    DICE_TRY(get_int(p, "sample_size", item, 1, 1 << 20, &c->sample_height));
    c->sample_width = c->sample_height;
    return 0;
}

static int apply_field(Parser *p, const char *name, const cJSON *item, VaeConfig *c, int *n_down, int *n_up) {
    if (!strcmp(name, "_class_name")) {
        if (!cJSON_IsString(item) || strcmp(item->valuestring, "AutoencoderKL"))
            return wrong(p, name, item, "\"AutoencoderKL\" (other autoencoder classes are not supported)");
        return 0;
    }
    if (name[0] == '_') return 0;  // _diffusers_version, _name_or_path, ...: metadata
    if (!strcmp(name, "in_channels")) return get_int(p, name, item, 1, VAE_MAX_CHANNELS, &c->in_channels);
    if (!strcmp(name, "out_channels")) return get_int(p, name, item, 1, VAE_MAX_CHANNELS, &c->out_channels);
    if (!strcmp(name, "latent_channels")) return get_int(p, name, item, 1, VAE_MAX_CHANNELS, &c->latent_channels);
    if (!strcmp(name, "layers_per_block")) return get_int(p, name, item, 1, 64, &c->layers_per_block);
    if (!strcmp(name, "norm_num_groups")) return get_int(p, name, item, 1, VAE_MAX_CHANNELS, &c->norm_num_groups);
    if (!strcmp(name, "block_out_channels")) return get_channels(p, item, c);
    if (!strcmp(name, "down_block_types")) return get_block_types(p, name, item, "DownEncoderBlock2D", n_down);
    if (!strcmp(name, "up_block_types")) return get_block_types(p, name, item, "UpDecoderBlock2D", n_up);
    if (!strcmp(name, "sample_size")) return get_sample_size(p, item, c);
    if (!strcmp(name, "scaling_factor")) return get_float(p, name, item, true, &c->scaling_factor);
    if (!strcmp(name, "shift_factor")) {
        if (cJSON_IsNull(item)) return 0;
        return get_float(p, name, item, false, &c->shift_factor);
    }
    if (!strcmp(name, "force_upcast")) return get_bool(p, name, item, &c->force_upcast);
    if (!strcmp(name, "use_quant_conv")) return get_bool(p, name, item, &c->use_quant_conv);
    if (!strcmp(name, "use_post_quant_conv")) return get_bool(p, name, item, &c->use_post_quant_conv);
    if (!strcmp(name, "mid_block_add_attention")) return get_bool(p, name, item, &c->mid_block_add_attention);
    if (!strcmp(name, "act_fn")) {
        if (!cJSON_IsString(item) || (strcmp(item->valuestring, "silu") && strcmp(item->valuestring, "swish")))
            return wrong(p, name, item, "\"silu\" (or its alias \"swish\")");
        return 0;
    }
    if (!strcmp(name, "latents_mean") || !strcmp(name, "latents_std")) {
        if (!cJSON_IsNull(item))
            return wrong(p, name, item, "null (per-channel latent normalisation is not supported)");
        return 0;
    }
    return DICE_FAIL(p->err, "%s: unknown field \"%s\" (not an AutoencoderKL setting dice knows; remove it if it is "
                             "harmless)", p->where, name);
}

static void set_defaults(VaeConfig *c) {
    memset(c, 0, sizeof *c);
    c->in_channels = c->out_channels = 3;
    c->latent_channels = 4;
    c->n_levels = 1;
    c->block_out_channels[0] = 64;
    c->layers_per_block = 1;
    c->norm_num_groups = 32;
    c->sample_height = c->sample_width = 32;
    c->scaling_factor = 0.18215f;
    c->shift_factor = 0.0f;
    c->force_upcast = c->use_quant_conv = c->use_post_quant_conv = c->mid_block_add_attention = true;
}

int vae_config_parse(VaeConfig *cfg, const char *json, const char *source, DiceError *err) {
    set_defaults(cfg);
    Parser p = {source, err};
    cJSON *root = cJSON_Parse(json);
    if (!root) return DICE_FAIL(err, "%s: not valid JSON", source);
    int rc = 0, n_down = 1, n_up = 1;
    if (!cJSON_IsObject(root)) rc = DICE_FAIL(err, "%s: the config is not a JSON object", source);
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (rc) break;
        char name[96];
        st_printable(name, sizeof name, item->string);
        rc = apply_field(&p, name, item, cfg, &n_down, &n_up);
    }
    cJSON_Delete(root);
    DICE_TRY(rc);
    DICE_CHECK(err, n_down == cfg->n_levels && n_up == cfg->n_levels,
               "%s: %d down_block_types and %d up_block_types for %d block_out_channels (one of each per level)",
               source, n_down, n_up, cfg->n_levels);
    for (int i = 0; i < cfg->n_levels; i++)
        DICE_CHECK(err, cfg->block_out_channels[i] % cfg->norm_num_groups == 0,
                   "%s: norm_num_groups %d does not divide block_out_channels[%d] = %d", source, cfg->norm_num_groups,
                   i, cfg->block_out_channels[i]);
    return 0;
}

int vae_config_load(VaeConfig *cfg, const char *path, DiceError *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return DICE_FAIL(err, "%s: cannot open the VAE config: %s", path, strerror(errno));
    char *text = NULL;
    long size = -1;
    if (!fseek(f, 0, SEEK_END)) size = ftell(f);
    if (size >= 0 && size < (1 << 24) && !fseek(f, 0, SEEK_SET)) text = malloc((size_t)size + 1);
    if (text && fread(text, 1, (size_t)size, f) != (size_t)size) {
        free(text);
        text = NULL;
    }
    fclose(f);
    if (!text) return DICE_FAIL(err, "%s: cannot read the VAE config (over 16 MB, or a read error)", path);
    text[size] = '\0';
    int rc = vae_config_parse(cfg, text, path, err);
    free(text);
    return rc;
}

int vae_downscale(const VaeConfig *cfg) { return 1 << (cfg->n_levels - 1); }
