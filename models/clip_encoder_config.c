// models/clip_encoder_config.c — reading a transformers CLIPTextConfig config.json into a ClipEncoderConfig.
//
// Every field has a row in FIELDS: the fields the model reads are parsed and checked; fields that cannot
// change the text model's outputs (PretrainedConfig's generic bookkeeping, generation and training settings:
// dropout is inactive at inference) are accepted whatever their value; a field in no row is an error naming
// it, since dice cannot know whether it changes the model. Missing fields take CLIPTextConfig's defaults, as
// transformers does.
#include "clip_encoder.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/safetensors.h"  // st_printable

typedef enum {
    F_VOCAB, F_HIDDEN, F_INTERMEDIATE, F_LAYERS, F_HEADS, F_POSITIONS, F_PROJECTION, F_ACT, F_EPS, F_EOS,
    F_ARCHITECTURES, F_MODEL_TYPE, F_PRUNED_HEADS,
    F_HARMLESS,  // read by nothing that runs the text model forward
} FieldId;

static const struct {
    const char *name;
    FieldId id;
} FIELDS[] = {
    {"vocab_size", F_VOCAB}, {"hidden_size", F_HIDDEN}, {"intermediate_size", F_INTERMEDIATE},
    {"num_hidden_layers", F_LAYERS}, {"num_attention_heads", F_HEADS}, {"max_position_embeddings", F_POSITIONS},
    {"projection_dim", F_PROJECTION}, {"hidden_act", F_ACT}, {"layer_norm_eps", F_EPS}, {"eos_token_id", F_EOS},
    {"architectures", F_ARCHITECTURES}, {"model_type", F_MODEL_TYPE}, {"pruned_heads", F_PRUNED_HEADS},
    // CLIPTextConfig's own fields with no effect at inference
    {"attention_dropout", F_HARMLESS}, {"dropout", F_HARMLESS}, {"initializer_range", F_HARMLESS},
    {"initializer_factor", F_HARMLESS}, {"bos_token_id", F_HARMLESS}, {"pad_token_id", F_HARMLESS},
    // PretrainedConfig bookkeeping and output switches (they change what is returned, not its values)
    {"_name_or_path", F_HARMLESS}, {"_commit_hash", F_HARMLESS}, {"_attn_implementation_autoset", F_HARMLESS},
    {"transformers_version", F_HARMLESS}, {"torch_dtype", F_HARMLESS}, {"dtype", F_HARMLESS},
    {"use_bfloat16", F_HARMLESS}, {"return_dict", F_HARMLESS}, {"output_hidden_states", F_HARMLESS},
    {"output_attentions", F_HARMLESS}, {"torchscript", F_HARMLESS}, {"tf_legacy_loss", F_HARMLESS},
    {"use_cache", F_HARMLESS}, {"tie_word_embeddings", F_HARMLESS}, {"chunk_size_feed_forward", F_HARMLESS},
    {"is_decoder", F_HARMLESS}, {"is_encoder_decoder", F_HARMLESS}, {"add_cross_attention", F_HARMLESS},
    {"tie_encoder_decoder", F_HARMLESS}, {"cross_attention_hidden_size", F_HARMLESS},
    {"finetuning_task", F_HARMLESS}, {"id2label", F_HARMLESS}, {"label2id", F_HARMLESS},
    {"tokenizer_class", F_HARMLESS}, {"prefix", F_HARMLESS}, {"task_specific_params", F_HARMLESS},
    {"problem_type", F_HARMLESS}, {"sep_token_id", F_HARMLESS}, {"decoder_start_token_id", F_HARMLESS},
    // generation settings that transformers 4.x wrote into every config
    {"max_length", F_HARMLESS}, {"min_length", F_HARMLESS}, {"do_sample", F_HARMLESS},
    {"early_stopping", F_HARMLESS}, {"num_beams", F_HARMLESS}, {"num_beam_groups", F_HARMLESS},
    {"diversity_penalty", F_HARMLESS}, {"temperature", F_HARMLESS}, {"top_k", F_HARMLESS}, {"top_p", F_HARMLESS},
    {"typical_p", F_HARMLESS}, {"repetition_penalty", F_HARMLESS}, {"length_penalty", F_HARMLESS},
    {"no_repeat_ngram_size", F_HARMLESS}, {"encoder_no_repeat_ngram_size", F_HARMLESS},
    {"bad_words_ids", F_HARMLESS}, {"num_return_sequences", F_HARMLESS}, {"output_scores", F_HARMLESS},
    {"return_dict_in_generate", F_HARMLESS}, {"forced_bos_token_id", F_HARMLESS},
    {"forced_eos_token_id", F_HARMLESS}, {"remove_invalid_values", F_HARMLESS},
    {"exponential_decay_length_penalty", F_HARMLESS}, {"suppress_tokens", F_HARMLESS},
    {"begin_suppress_tokens", F_HARMLESS},
};

// The JSON value of a field, short, for messages.
static void value_text(const cJSON *item, char *out, size_t cap) {
    if (cJSON_IsNull(item)) snprintf(out, cap, "null");
    else if (cJSON_IsBool(item)) snprintf(out, cap, "%s", cJSON_IsTrue(item) ? "true" : "false");
    else if (cJSON_IsNumber(item)) snprintf(out, cap, "%.17g", item->valuedouble);
    else if (cJSON_IsString(item)) {
        char s[96];
        st_printable(s, sizeof s, item->valuestring);
        snprintf(out, cap, "\"%s\"", s);
    } else if (cJSON_IsArray(item)) snprintf(out, cap, "an array");
    else snprintf(out, cap, "an object");
}

static int bad_value(const char *src, const char *name, const cJSON *item, const char *expected, DiceError *err) {
    char v[128];
    value_text(item, v, sizeof v);
    return DICE_FAIL(err, "%s: %s is %s; expected %s", src, name, v, expected);
}

static int get_int(const char *src, const char *name, const cJSON *item, int lo, int *out, DiceError *err) {
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) || item->valuedouble < lo ||
        item->valuedouble > 1 << 30) {
        char expected[64];
        snprintf(expected, sizeof expected, "an integer >= %d", lo);
        return bad_value(src, name, item, expected, err);
    }
    *out = (int)item->valuedouble;
    return 0;
}

static int parse_architectures(const char *src, const cJSON *item, ClipArch *arch, DiceError *err) {
    const char *expected = "a list naming CLIPTextModel or CLIPTextModelWithProjection";
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 1 || !cJSON_IsString(cJSON_GetArrayItem(item, 0)))
        return bad_value(src, "architectures", item, expected, err);
    const char *a = cJSON_GetArrayItem(item, 0)->valuestring;
    if (!strcmp(a, "CLIPTextModel")) *arch = CLIP_ARCH_TEXT_MODEL;
    else if (!strcmp(a, "CLIPTextModelWithProjection")) *arch = CLIP_ARCH_WITH_PROJECTION;
    else return bad_value(src, "architectures[0]", cJSON_GetArrayItem(item, 0), expected, err);
    return 0;
}

static int apply_field(const char *src, FieldId id, const char *name, const cJSON *item, ClipEncoderConfig *c,
                       DiceError *err) {
    switch (id) {
    case F_VOCAB: return get_int(src, name, item, 1, &c->vocab_size, err);
    case F_HIDDEN: return get_int(src, name, item, 1, &c->hidden_size, err);
    case F_INTERMEDIATE: return get_int(src, name, item, 1, &c->intermediate_size, err);
    case F_LAYERS: return get_int(src, name, item, 1, &c->num_layers, err);
    case F_HEADS: return get_int(src, name, item, 1, &c->num_heads, err);
    case F_POSITIONS: return get_int(src, name, item, 1, &c->max_positions, err);
    case F_PROJECTION:
        if (cJSON_IsNull(item)) return 0;  // only CLIPTextModelWithProjection reads it
        return get_int(src, name, item, 1, &c->projection_dim, err);
    case F_ACT:
        if (cJSON_IsString(item) && !strcmp(item->valuestring, "quick_gelu")) c->act = CLIP_ACT_QUICK_GELU;
        else if (cJSON_IsString(item) && !strcmp(item->valuestring, "gelu")) c->act = CLIP_ACT_GELU;
        else return bad_value(src, name, item, "\"quick_gelu\" or \"gelu\" (the activations CLIP models use)", err);
        return 0;
    case F_EPS:
        if (!cJSON_IsNumber(item) || !(item->valuedouble > 0) || !isfinite(item->valuedouble))
            return bad_value(src, name, item, "a positive number", err);
        c->layer_norm_eps = (float)item->valuedouble;
        return 0;
    case F_EOS:
        // transformers' pooling compares input_ids with one id; a list or null would not run there either
        if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) || item->valuedouble < 0 ||
            item->valuedouble > INT32_MAX)
            return bad_value(src, name, item, "one token id (it selects where the pooled output is read)", err);
        c->eos_token_id = (int64_t)item->valuedouble;
        return 0;
    case F_ARCHITECTURES:
        if (cJSON_IsNull(item)) return 0;
        return parse_architectures(src, item, &c->arch, err);
    case F_MODEL_TYPE:
        if (cJSON_IsString(item) && !strcmp(item->valuestring, "clip"))
            return DICE_FAIL(err, "%s: model_type \"clip\" is a whole CLIPModel config (text and vision); dice "
                             "needs a CLIPTextModel config (model_type \"clip_text_model\", as in a diffusers "
                             "text_encoder/ folder)", src);
        if (!cJSON_IsString(item) || strcmp(item->valuestring, "clip_text_model"))
            return bad_value(src, name, item, "\"clip_text_model\"", err);
        return 0;
    case F_PRUNED_HEADS:
        if (cJSON_IsNull(item) || (cJSON_IsObject(item) && !item->child)) return 0;
        return bad_value(src, name, item, "no pruned heads (dice does not implement head pruning)", err);
    case F_HARMLESS: return 0;
    }
    return DICE_FAIL(err, "%s: field %s has no handler", src, name);
}

int clip_encoder_config_parse(ClipEncoderConfig *cfg, const char *json, const char *source, DiceError *err) {
    // CLIPTextConfig's defaults
    *cfg = (ClipEncoderConfig){.vocab_size = 49408, .hidden_size = 512, .intermediate_size = 2048, .num_layers = 12,
                               .num_heads = 8, .max_positions = 77, .projection_dim = 512,
                               .act = CLIP_ACT_QUICK_GELU, .layer_norm_eps = 1e-5f, .eos_token_id = 49407,
                               .arch = CLIP_ARCH_UNSPECIFIED};
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root) {
        size_t at = end ? (size_t)(end - json) : 0;
        return DICE_FAIL(err, "%s: not valid JSON (error near byte %zu)", source, at);
    }
    int rc = 0;
    if (!cJSON_IsObject(root)) rc = DICE_FAIL(err, "%s: not a JSON object", source);
    for (const cJSON *item = rc ? NULL : root->child; item && !rc; item = item->next) {
        size_t k = 0, n = sizeof FIELDS / sizeof FIELDS[0];
        while (k < n && strcmp(FIELDS[k].name, item->string)) k++;
        if (k == n) {
            char name[96];
            st_printable(name, sizeof name, item->string);
            rc = DICE_FAIL(err, "%s: unknown field \"%s\" for a CLIP text model (dice does not know whether it "
                           "changes the model)", source, name);
        } else {
            rc = apply_field(source, FIELDS[k].id, item->string, item, cfg, err);
        }
    }
    cJSON_Delete(root);
    if (rc) return -1;
    DICE_CHECK(err, cfg->hidden_size % cfg->num_heads == 0,
               "%s: hidden_size %d is not a multiple of num_attention_heads %d", source, cfg->hidden_size,
               cfg->num_heads);
    return 0;
}

int clip_encoder_config_load(ClipEncoderConfig *cfg, const char *path, DiceError *err) {
    FILE *f = fopen(path, "rb");
    DICE_CHECK(err, f, "%s: cannot open the text encoder's config", path);
    size_t n = 0, cap = 4096;
    char *text = malloc(cap);
    while (text) {
        n += fread(text + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *t = realloc(text, cap *= 2);
        if (!t) free(text);
        text = t;
    }
    int read_error = ferror(f);
    fclose(f);
    DICE_CHECK(err, text, "%s: out of host memory reading it", path);
    text[n] = 0;
    int rc = read_error ? DICE_FAIL(err, "%s: read error", path)
         : strlen(text) != n ? DICE_FAIL(err, "%s: holds a NUL byte; not a JSON text", path)
                             : clip_encoder_config_parse(cfg, text, path, err);
    free(text);
    return rc;
}
