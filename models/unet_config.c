// models/unet_config.c — reading diffusers' UNet2DConditionModel config.json into a UnetConfig.
//
// Every field of UNet2DConditionModel.__init__ (diffusers 0.42) is known here, in one of three kinds:
//  - read: the fields dice implements (see UnetConfig), with diffusers' defaults when absent;
//  - fixed: features dice does not implement; accepted only at the value that leaves them off (diffusers'
//    default), otherwise an error naming the field (e.g. SDXL's addition_embed_type "text_time");
//  - no effect on this model: dropout (inference), upcast_attention (dice's attention always computes the
//    scores and the softmax in fp32, which is what upcasting does in fp16 PyTorch; fp32 math is unchanged),
//    mid_block_only_cross_attention and cross_attention_norm (read only by the *SimpleCrossAttn blocks),
//    addition_embed_type_num_heads, addition_time_embed_dim and projection_class_embeddings_input_dim (read
//    only by the class / addition embeddings, which must be off).
// Keys starting with '_' are metadata (_class_name must be UNet2DConditionModel when present); any other
// unknown key is an error, since it may be a feature of a later diffusers that changes the model.
//
// attention_head_dim: in UNet2DConditionModel it is the NUMBER OF HEADS per level (diffusers' legacy naming:
// SD1.5's 8 means 8 heads of 40, 80, 160 channels), unless num_attention_heads is given, which then wins
// (diffusers 0.42 itself still refuses a UNet2DConditionModel config that sets it; its meaning is unambiguous).
#include "unet.h"
#include "nn/file_util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/safetensors.h"  // st_printable

typedef struct Parser {
    const char *where;
    const cJSON *root;
    DiceError *err;
} Parser;

static const char *const READ_FIELDS[] = {
    "in_channels", "out_channels", "block_out_channels", "down_block_types", "up_block_types", "mid_block_type",
    "layers_per_block", "transformer_layers_per_block", "attention_head_dim", "num_attention_heads",
    "cross_attention_dim", "norm_num_groups", "norm_eps", "flip_sin_to_cos", "freq_shift", "use_linear_projection",
    "conv_in_kernel", "conv_out_kernel", "sample_size", "act_fn",
};

// Fields that must keep the value that turns their feature off; `off` is the JSON of that value.
static const struct {
    const char *name, *off, *why;
} FIXED_FIELDS[] = {
    {"center_input_sample", "false", "input centring (2x - 1)"},
    {"only_cross_attention", "false", "cross-attention-only transformer blocks"},
    {"dual_cross_attention", "false", "dual cross-attention"},
    {"class_embed_type", "null", "class embeddings"},
    {"num_class_embeds", "null", "class embeddings"},
    {"class_embeddings_concat", "false", "class embeddings"},
    {"addition_embed_type", "null", "added conditioning embeddings (SDXL's text_time)"},
    {"encoder_hid_dim", "null", "an encoder_hid_proj on the text embedding"},
    {"encoder_hid_dim_type", "null", "an encoder_hid_proj on the text embedding"},
    {"time_embedding_type", "\"positional\"", "other time embeddings"},
    {"time_embedding_dim", "null", "another time embedding width"},
    {"time_embedding_act_fn", "null", "an activation after the time embedding"},
    {"timestep_post_act", "null", "an activation after the time embedding"},
    {"time_cond_proj_dim", "null", "timestep conditioning projections"},
    {"resnet_time_scale_shift", "\"default\"", "scale-shift time conditioning"},
    {"resnet_skip_time_act", "false", "skipping the activation before time_emb_proj"},
    {"resnet_out_scale_factor", "1", "rescaled resnet outputs"},
    {"mid_block_scale_factor", "1", "rescaled mid-block resnet outputs"},
    {"downsample_padding", "1", "downsampling without padding"},
    {"attention_type", "\"default\"", "gated (GLIGEN) attention"},
    {"reverse_transformer_layers_per_block", "null", "asymmetric transformer depths"},
};

static const char *const NO_EFFECT_FIELDS[] = {
    "dropout", "upcast_attention", "mid_block_only_cross_attention", "cross_attention_norm",
    "addition_embed_type_num_heads", "addition_time_embed_dim", "projection_class_embeddings_input_dim",
};

#define COUNT(a) (sizeof(a) / sizeof *(a))

static void describe(const cJSON *item, char *out, size_t cap) {
    char *text = cJSON_PrintUnformatted(item);
    st_printable(out, cap, text ? text : "?");
    free(text);
}

static int wrong(Parser *p, const char *name, const cJSON *item, const char *expected) {
    char shown[96];
    describe(item, shown, sizeof shown);
    return DICE_FAIL(p->err, "%s: %s is %s, expected %s", p->where, name, shown, expected);
}

static const cJSON *field(Parser *p, const char *name) { return cJSON_GetObjectItemCaseSensitive(p->root, name); }

static int as_int(Parser *p, const char *name, const cJSON *item, int64_t lo, int64_t hi, int64_t *out) {
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) || item->valuedouble < (double)lo ||
        item->valuedouble > (double)hi) {
        char expected[80];
        snprintf(expected, sizeof expected, "an integer in [%lld, %lld]", (long long)lo, (long long)hi);
        return wrong(p, name, item, expected);
    }
    *out = (int64_t)item->valuedouble;
    return 0;
}

static int get_int(Parser *p, const char *name, int64_t dflt, int64_t lo, int64_t hi, int64_t *out) {
    const cJSON *item = field(p, name);
    if (!item) {
        *out = dflt;
        return 0;
    }
    return as_int(p, name, item, lo, hi, out);
}

static int get_bool(Parser *p, const char *name, bool dflt, bool *out) {
    const cJSON *item = field(p, name);
    if (!item) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(item)) return wrong(p, name, item, "true or false");
    *out = cJSON_IsTrue(item);
    return 0;
}

static int get_number(Parser *p, const char *name, double dflt, double *out) {
    const cJSON *item = field(p, name);
    if (!item) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)) return wrong(p, name, item, "a finite number");
    *out = item->valuedouble;
    return 0;
}

// A per-level integer: one integer for every level, or a list of n_levels of them.
static int get_levels(Parser *p, const char *name, const cJSON *item, int64_t dflt, int n, int64_t lo, int64_t hi,
                      int64_t *out) {
    if (!item) {
        for (int i = 0; i < n; i++) out[i] = dflt;
        return 0;
    }
    if (!cJSON_IsArray(item)) {
        DICE_TRY(as_int(p, name, item, lo, hi, &out[0]));
        for (int i = 1; i < n; i++) out[i] = out[0];
        return 0;
    }
    DICE_CHECK(p->err, cJSON_GetArraySize(item) == n, "%s: %s has %d entries for %d levels (block_out_channels)",
               p->where, name, cJSON_GetArraySize(item), n);
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(item, i);
        if (cJSON_IsArray(v))
            return DICE_FAIL(p->err, "%s: %s[%d] is a list (asymmetric per-layer depths are not supported)", p->where,
                             name, i);
        char entry[64];
        snprintf(entry, sizeof entry, "%s[%d]", name, i);
        DICE_TRY(as_int(p, entry, v, lo, hi, &out[i]));
    }
    return 0;
}

// down_block_types / up_block_types: n_levels names, each `plain` or `cross`.
static int get_block_types(Parser *p, const char *name, const char *plain, const char *cross, const char *dflt_cross,
                           int n, bool *out) {
    const cJSON *item = field(p, name);
    if (!item) {
        DICE_CHECK(p->err, n == 4, "%s: %s is missing (its default is for 4 levels, block_out_channels has %d)",
                   p->where, name, n);
        for (int i = 0; i < n; i++) out[i] = dflt_cross[i] == '1';
        return 0;
    }
    DICE_CHECK(p->err, cJSON_IsArray(item) && cJSON_GetArraySize(item) == n,
               "%s: %s must be a list of %d block names (one per block_out_channels entry)", p->where, name, n);
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(item, i);
        if (cJSON_IsString(v) && !strcmp(v->valuestring, plain)) out[i] = false;
        else if (cJSON_IsString(v) && !strcmp(v->valuestring, cross)) out[i] = true;
        else {
            char entry[64], expected[128];
            snprintf(entry, sizeof entry, "%s[%d]", name, i);
            snprintf(expected, sizeof expected, "\"%s\" or \"%s\" (the block types dice implements)", plain, cross);
            return wrong(p, entry, v, expected);
        }
    }
    return 0;
}

// A fixed field: absent, or equal to its "off" value (numbers compared by value, only_cross_attention may be a
// list of false).
static int check_fixed(Parser *p, const char *name, const char *off, const char *why) {
    const cJSON *item = field(p, name);
    if (!item) return 0;
    cJSON *want = cJSON_Parse(off);
    DICE_CHECK(p->err, want, "%s: out of memory", p->where);
    bool ok = cJSON_Compare(item, want, true) ||
              (cJSON_IsNumber(item) && cJSON_IsNumber(want) && item->valuedouble == want->valuedouble);
    if (!ok && cJSON_IsArray(item) && cJSON_IsFalse(want)) {
        ok = true;
        for (const cJSON *v = item->child; v; v = v->next) ok &= cJSON_IsFalse(v);
    }
    cJSON_Delete(want);
    if (ok) return 0;
    char shown[96];
    describe(item, shown, sizeof shown);
    return DICE_FAIL(p->err, "%s: %s is %s, but dice does not implement %s (only %s is accepted)", p->where, name,
                     shown, why, off);
}

static int check_keys(Parser *p) {
    for (const cJSON *item = p->root->child; item; item = item->next) {
        const char *name = item->string;
        char shown[96];
        st_printable(shown, sizeof shown, name);
        for (const cJSON *prev = p->root->child; prev != item; prev = prev->next)
            DICE_CHECK(p->err, strcmp(prev->string, name), "%s: field %s appears twice", p->where, shown);
        if (name[0] == '_') {
            if (!strcmp(name, "_class_name") && !(cJSON_IsString(item) && !strcmp(item->valuestring,
                                                                                  "UNet2DConditionModel")))
                return wrong(p, "_class_name", item, "\"UNet2DConditionModel\"");
            continue;
        }
        bool known = false;
        for (size_t k = 0; k < COUNT(READ_FIELDS) && !known; k++) known = !strcmp(name, READ_FIELDS[k]);
        for (size_t k = 0; k < COUNT(FIXED_FIELDS) && !known; k++) known = !strcmp(name, FIXED_FIELDS[k].name);
        for (size_t k = 0; k < COUNT(NO_EFFECT_FIELDS) && !known; k++) known = !strcmp(name, NO_EFFECT_FIELDS[k]);
        DICE_CHECK(p->err, known, "%s: unknown field %s (not a UNet2DConditionModel field of diffusers 0.42)",
                   p->where, shown);
    }
    for (size_t k = 0; k < COUNT(FIXED_FIELDS); k++)
        DICE_TRY(check_fixed(p, FIXED_FIELDS[k].name, FIXED_FIELDS[k].off, FIXED_FIELDS[k].why));
    return 0;
}

static int parse_levels(Parser *p, UnetConfig *c) {
    const cJSON *item = field(p, "block_out_channels");
    int64_t v[UNET_MAX_LEVELS];
    if (!item) {
        c->n_levels = 4;
        const int64_t sd[4] = {320, 640, 1280, 1280};
        memcpy(c->block_out_channels, sd, sizeof sd);
    } else {
        int n = cJSON_IsArray(item) ? cJSON_GetArraySize(item) : 0;
        DICE_CHECK(p->err, n >= 1 && n <= UNET_MAX_LEVELS,
                   "%s: block_out_channels must be a list of 1 to %d channel counts", p->where, UNET_MAX_LEVELS);
        c->n_levels = n;
        DICE_TRY(get_levels(p, "block_out_channels", item, 0, n, 1, 1 << 20, c->block_out_channels));
    }
    int n = c->n_levels;
    DICE_TRY(get_block_types(p, "down_block_types", "DownBlock2D", "CrossAttnDownBlock2D", "1110", n,
                             c->down_cross_attn));
    DICE_TRY(get_block_types(p, "up_block_types", "UpBlock2D", "CrossAttnUpBlock2D", "0111", n, c->up_cross_attn));
    DICE_TRY(get_levels(p, "layers_per_block", field(p, "layers_per_block"), 2, n, 1, 1024, v));
    for (int i = 0; i < n; i++) c->layers_per_block[i] = (int)v[i];
    DICE_TRY(get_levels(p, "transformer_layers_per_block", field(p, "transformer_layers_per_block"), 1, n, 1, 1024, v));
    for (int i = 0; i < n; i++) c->transformer_layers[i] = (int)v[i];
    const cJSON *heads = field(p, "num_attention_heads");
    const char *heads_name = "num_attention_heads";
    if (!heads || cJSON_IsNull(heads)) heads = field(p, "attention_head_dim"), heads_name = "attention_head_dim";
    DICE_TRY(get_levels(p, heads_name, heads, 8, n, 1, 1 << 20, v));
    for (int i = 0; i < n; i++) c->heads[i] = (int)v[i];
    DICE_TRY(get_levels(p, "cross_attention_dim", field(p, "cross_attention_dim"), 1280, n, 1, 1 << 20,
                        c->cross_attention_dim));
    return 0;
}

static int parse_fields(Parser *p, UnetConfig *c) {
    DICE_TRY(check_keys(p));
    DICE_TRY(get_int(p, "in_channels", 4, 1, 1 << 16, &c->in_channels));
    DICE_TRY(get_int(p, "out_channels", 4, 1, 1 << 16, &c->out_channels));
    DICE_TRY(parse_levels(p, c));
    const cJSON *mid = field(p, "mid_block_type");
    if (mid && cJSON_IsNull(mid)) c->has_mid = false;
    else if (!mid || (cJSON_IsString(mid) && !strcmp(mid->valuestring, "UNetMidBlock2DCrossAttn"))) c->has_mid = true;
    else return wrong(p, "mid_block_type", mid, "\"UNetMidBlock2DCrossAttn\" or null");
    const cJSON *groups = field(p, "norm_num_groups");
    if (groups && cJSON_IsNull(groups))
        return DICE_FAIL(p->err, "%s: norm_num_groups is null: UNets without group norms are not supported", p->where);
    int64_t v;
    DICE_TRY(get_int(p, "norm_num_groups", 32, 1, 1 << 16, &v));
    c->norm_num_groups = (int)v;
    double d;
    DICE_TRY(get_number(p, "norm_eps", 1e-5, &d));
    DICE_CHECK(p->err, d >= 0, "%s: norm_eps %g is negative", p->where, d);
    c->norm_eps = (float)d;
    DICE_TRY(get_bool(p, "flip_sin_to_cos", true, &c->flip_sin_to_cos));
    DICE_TRY(get_number(p, "freq_shift", 0, &c->freq_shift));
    DICE_TRY(get_bool(p, "use_linear_projection", false, &c->use_linear_projection));
    DICE_TRY(get_int(p, "conv_in_kernel", 3, 1, 15, &v));
    c->conv_in_kernel = (int)v;
    DICE_TRY(get_int(p, "conv_out_kernel", 3, 1, 15, &v));
    c->conv_out_kernel = (int)v;
    DICE_CHECK(p->err, c->conv_in_kernel % 2 && c->conv_out_kernel % 2,
               "%s: conv_in_kernel %d / conv_out_kernel %d: only odd kernel sizes keep the image size", p->where,
               c->conv_in_kernel, c->conv_out_kernel);
    const cJSON *size = field(p, "sample_size");
    if (size && cJSON_IsNumber(size)) DICE_TRY(as_int(p, "sample_size", size, 1, 1 << 20, &c->sample_size));
    else if (size && cJSON_IsArray(size) && cJSON_GetArraySize(size) == 2)
        DICE_TRY(as_int(p, "sample_size[0]", cJSON_GetArrayItem(size, 0), 1, 1 << 20, &c->sample_size));
    else if (size && !cJSON_IsNull(size)) return wrong(p, "sample_size", size, "an integer, [h, w] or null");
    const cJSON *act = field(p, "act_fn");
    if (act && !(cJSON_IsString(act) && (!strcmp(act->valuestring, "silu") || !strcmp(act->valuestring, "swish"))))
        return wrong(p, "act_fn", act, "\"silu\" (the only activation dice's UNet implements)");
    for (size_t k = 0; k < COUNT(NO_EFFECT_FIELDS); k++) {
        const cJSON *item = field(p, NO_EFFECT_FIELDS[k]);
        if (item && !(cJSON_IsNull(item) || cJSON_IsNumber(item) || cJSON_IsBool(item) || cJSON_IsString(item)))
            return wrong(p, NO_EFFECT_FIELDS[k], item, "null, a number, a boolean or a string");
    }
    return 0;
}

// Checks that need several fields: channel counts that split into groups and heads.
static int validate(const UnetConfig *c, const char *where, DiceError *err) {
    for (int i = 0; i < c->n_levels; i++) {
        int64_t ch = c->block_out_channels[i];
        DICE_CHECK(err, ch % c->norm_num_groups == 0,
                   "%s: block_out_channels[%d] = %lld does not split into norm_num_groups %d", where, i,
                   (long long)ch, c->norm_num_groups);
        bool attn = c->down_cross_attn[i] || c->up_cross_attn[c->n_levels - 1 - i] ||
                    (c->has_mid && i == c->n_levels - 1);
        DICE_CHECK(err, !attn || c->heads[i] <= ch,
                   "%s: %d attention heads for the %lld channels of level %d (attention_head_dim is the number of "
                   "heads in UNet2DConditionModel)", where, c->heads[i], (long long)ch, i);
    }
    return 0;
}

int unet_config_parse(UnetConfig *cfg, const char *json, const char *source, DiceError *err) {
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_Parse(json);
    if (!root) return DICE_FAIL(err, "%s: not valid JSON", source);
    Parser p = {source, root, err};
    int rc = cJSON_IsObject(root) ? parse_fields(&p, cfg) : DICE_FAIL(err, "%s: not a JSON object", source);
    cJSON_Delete(root);
    DICE_TRY(rc);
    return validate(cfg, source, err);
}

int unet_config_load(UnetConfig *cfg, const char *path, DiceError *err) {
    char *text;
    size_t len;
    DICE_TRY(dice_read_file(path, (size_t)1 << 20, &text, &len, err));  // a config.json is at most 1 MiB
    int rc = unet_config_parse(cfg, text, path, err);
    free(text);
    return rc;
}
