// sample/scheduler_config.c — reading diffusers' scheduler_config.json into a SchedulerConfig or a
// ScheduleConfig (see scheduler_config.h for the rules).
//
// Every field any diffusers DDPM-type scheduler has is in one table with the dice classes that own
// it. A field owned by the class being configured is parsed and checked; a field owned only by other
// classes has no effect on this one (as in diffusers' from_config) and is skipped; a name in no
// class is an error. Python's json module writes -Infinity (DPM-Solver's lambda_min_clipped default)
// which is not JSON: the reader turns Infinity / -Infinity outside strings into numbers that
// overflow to infinity before cJSON parses the text.
#include "scheduler_config.h"
#include "nn/file_util.h"

#include "nn/safetensors.h"  // st_printable

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Which classes own a field. OWN_DDPM is the schedule-only reader (DDPMScheduler, for training).
enum { OWN_DPM = 1, OWN_EULER = 2, OWN_DDIM = 4, OWN_DDPM = 8 };
#define OWN_SAMPLERS (OWN_DPM | OWN_EULER | OWN_DDIM)
#define OWN_ALL (OWN_SAMPLERS | OWN_DDPM)

typedef enum {
    F_NUM_TRAIN_TIMESTEPS, F_BETA_START, F_BETA_END, F_BETA_SCHEDULE, F_TRAINED_BETAS, F_RESCALE_ZERO_SNR,
    F_PREDICTION_TYPE, F_TIMESTEP_SPACING, F_STEPS_OFFSET, F_FINAL_SIGMAS_TYPE,
    F_SOLVER_ORDER, F_ALGORITHM_TYPE, F_SOLVER_TYPE, F_LOWER_ORDER_FINAL, F_EULER_AT_FINAL, F_LAMBDA_MIN_CLIPPED,
    F_VARIANCE_TYPE, F_CLIP_SAMPLE, F_CLIP_SAMPLE_RANGE, F_SET_ALPHA_TO_ONE, F_INTERPOLATION_TYPE, F_TIMESTEP_TYPE,
    F_MUST_BE_FALSE,     // a feature dice does not implement: only false (or null) is accepted
    F_UNUSED_NUMBER,     // only read by a feature that must be off (thresholding, flow sigmas, Karras sigmas)
    F_UNUSED_STRING,
    F_OTHER_CLASS,       // a field of other diffusers schedulers only
} FieldId;

static const struct {
    const char *name;
    FieldId id;
    unsigned owners;
} FIELDS[] = {
    {"num_train_timesteps", F_NUM_TRAIN_TIMESTEPS, OWN_ALL},
    {"beta_start", F_BETA_START, OWN_ALL},
    {"beta_end", F_BETA_END, OWN_ALL},
    {"beta_schedule", F_BETA_SCHEDULE, OWN_ALL},
    {"trained_betas", F_TRAINED_BETAS, OWN_ALL},
    {"rescale_betas_zero_snr", F_RESCALE_ZERO_SNR, OWN_ALL},
    {"prediction_type", F_PREDICTION_TYPE, OWN_ALL},
    {"timestep_spacing", F_TIMESTEP_SPACING, OWN_SAMPLERS},
    {"steps_offset", F_STEPS_OFFSET, OWN_SAMPLERS},
    {"final_sigmas_type", F_FINAL_SIGMAS_TYPE, OWN_DPM | OWN_EULER},
    {"solver_order", F_SOLVER_ORDER, OWN_DPM},
    {"algorithm_type", F_ALGORITHM_TYPE, OWN_DPM},
    {"solver_type", F_SOLVER_TYPE, OWN_DPM},
    {"lower_order_final", F_LOWER_ORDER_FINAL, OWN_DPM},
    {"euler_at_final", F_EULER_AT_FINAL, OWN_DPM},
    {"lambda_min_clipped", F_LAMBDA_MIN_CLIPPED, OWN_DPM},
    {"variance_type", F_VARIANCE_TYPE, OWN_DPM},
    {"clip_sample", F_CLIP_SAMPLE, OWN_DDIM},
    {"clip_sample_range", F_CLIP_SAMPLE_RANGE, OWN_DDIM},
    {"set_alpha_to_one", F_SET_ALPHA_TO_ONE, OWN_DDIM},
    {"interpolation_type", F_INTERPOLATION_TYPE, OWN_EULER},
    {"timestep_type", F_TIMESTEP_TYPE, OWN_EULER},
    {"thresholding", F_MUST_BE_FALSE, OWN_DPM | OWN_DDIM},
    {"use_karras_sigmas", F_MUST_BE_FALSE, OWN_DPM | OWN_EULER},
    {"use_exponential_sigmas", F_MUST_BE_FALSE, OWN_DPM | OWN_EULER},
    {"use_beta_sigmas", F_MUST_BE_FALSE, OWN_DPM | OWN_EULER},
    {"use_lu_lambdas", F_MUST_BE_FALSE, OWN_DPM},
    {"use_flow_sigmas", F_MUST_BE_FALSE, OWN_DPM},
    {"use_dynamic_shifting", F_MUST_BE_FALSE, OWN_DPM},
    {"dynamic_thresholding_ratio", F_UNUSED_NUMBER, OWN_DPM | OWN_DDIM},
    {"sample_max_value", F_UNUSED_NUMBER, OWN_DPM | OWN_DDIM},
    {"flow_shift", F_UNUSED_NUMBER, OWN_DPM},
    {"sigma_min", F_UNUSED_NUMBER, OWN_EULER},
    {"sigma_max", F_UNUSED_NUMBER, OWN_EULER},
    {"time_shift_type", F_UNUSED_STRING, OWN_DPM},
    // fields of PNDM, DDPM, LMS, Heun, KDPM2, DEIS, UniPC, SA-Solver, DPM-Solver SDE, LCM, TCD only
    {"skip_prk_steps", F_OTHER_CLASS, 0},
    {"original_inference_steps", F_OTHER_CLASS, 0},
    {"timestep_scaling", F_OTHER_CLASS, 0},
    {"predict_x0", F_OTHER_CLASS, 0},
    {"disable_corrector", F_OTHER_CLASS, 0},
    {"solver_p", F_OTHER_CLASS, 0},
    {"shift_terminal", F_OTHER_CLASS, 0},
    {"predictor_order", F_OTHER_CLASS, 0},
    {"corrector_order", F_OTHER_CLASS, 0},
    {"tau_func", F_OTHER_CLASS, 0},
    {"noise_sampler_seed", F_OTHER_CLASS, 0},
};

// _class_name values whose configs describe a DDPM-type (beta schedule) noise process.
static const char *const DDPM_CLASSES[] = {
    "DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "LMSDiscreteScheduler", "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler", "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler", "DPMSolverSDEScheduler", "KDPM2DiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler", "DEISMultistepScheduler", "UniPCMultistepScheduler", "LCMScheduler",
    "TCDScheduler", "SASolverScheduler", "DDIMParallelScheduler", "DDPMParallelScheduler",
};

static const char *const KIND_NAMES[] = {"DPMSolverMultistepScheduler", "EulerDiscreteScheduler", "DDIMScheduler"};
static const char *const KIND_SHORT[] = {"dpm++2m", "euler", "ddim"};

const char *scheduler_kind_name(SchedulerKind kind) {
    return (unsigned)kind < 3 ? KIND_NAMES[kind] : "unknown scheduler";
}

int scheduler_kind_from_name(const char *name, SchedulerKind *kind) {
    for (int k = 0; k < 3; k++) {
        if (!strcmp(name, KIND_NAMES[k]) || !strcmp(name, KIND_SHORT[k])) {
            *kind = (SchedulerKind)k;
            return 0;
        }
    }
    return -1;
}

SchedulerConfig scheduler_config_defaults(SchedulerKind kind) {
    SchedulerConfig c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.schedule = schedule_config_defaults();
    c.timestep_spacing = kind == SCHED_DDIM ? SPACING_LEADING : SPACING_LINSPACE;
    c.steps_offset = 0;
    c.final_sigmas_type = FINAL_SIGMAS_ZERO;
    c.solver_order = 2;
    c.solver_type = SOLVER_MIDPOINT;
    c.lower_order_final = true;
    c.euler_at_final = false;
    c.lambda_min_clipped = -INFINITY;
    c.clip_sample = true;
    c.clip_sample_range = 1.0;
    c.set_alpha_to_one = true;
    return c;
}

void scheduler_config_free(SchedulerConfig *cfg) { schedule_config_free(&cfg->schedule); }

int scheduler_config_validate(const SchedulerConfig *cfg, DiceError *err) {
    const ScheduleConfig *s = &cfg->schedule;
    int T = s->num_train_timesteps;
    DICE_CHECK(err, (unsigned)cfg->kind < 3, "scheduler config: unknown scheduler kind %d", (int)cfg->kind);
    DICE_CHECK(err, T >= 2 && T <= 1000000, "scheduler config: num_train_timesteps %d is not in 2..1000000", T);
    if (s->beta_schedule == BETA_TRAINED) {
        DICE_CHECK(err, s->trained_betas, "scheduler config: trained betas missing");
    } else {
        DICE_CHECK(err, isfinite(s->beta_start) && isfinite(s->beta_end) && s->beta_start >= 0 && s->beta_end >= 0,
                   "scheduler config: beta_start %g and beta_end %g must be finite and non-negative",
                   s->beta_start, s->beta_end);
    }
    DICE_CHECK(err, cfg->steps_offset >= 0 && cfg->steps_offset < T,
               "scheduler config: steps_offset %d is not in 0..%d", cfg->steps_offset, T - 1);
    DICE_CHECK(err, cfg->solver_order >= 1 && cfg->solver_order <= 3,
               "scheduler config: solver_order %d is not 1, 2 or 3", cfg->solver_order);
    DICE_CHECK(err, !isnan(cfg->lambda_min_clipped) && cfg->lambda_min_clipped < INFINITY,
               "scheduler config: lambda_min_clipped %g must be a number below infinity", cfg->lambda_min_clipped);
    DICE_CHECK(err, isfinite(cfg->clip_sample_range) && cfg->clip_sample_range > 0,
               "scheduler config: clip_sample_range %g must be positive", cfg->clip_sample_range);
    return 0;
}

// ---------------------------------------------------------------- JSON helpers

typedef struct Parser {
    const char *where;
    const char *cls;      // the class being configured, for messages
    DiceError *err;
    int n_trained_betas;  // length of trained_betas when given
} Parser;

// A short description of a JSON value for messages.
static void describe(const cJSON *item, char *out, size_t cap) {
    if (cJSON_IsNull(item)) snprintf(out, cap, "null");
    else if (cJSON_IsBool(item)) snprintf(out, cap, "%s", cJSON_IsTrue(item) ? "true" : "false");
    else if (cJSON_IsNumber(item)) snprintf(out, cap, "%.17g", item->valuedouble);
    else if (cJSON_IsString(item)) {
        char text[64];
        st_printable(text, sizeof text, item->valuestring);  // untrusted: control characters escaped
        snprintf(out, cap, "\"%s\"", text);
    }
    else if (cJSON_IsArray(item)) snprintf(out, cap, "an array");
    else snprintf(out, cap, "an object");
}

static int wrong_type(Parser *p, const char *name, const cJSON *item, const char *expected) {
    char v[96];
    describe(item, v, sizeof v);
    return DICE_FAIL(p->err, "%s: %s must be %s, not %s", p->where, name, expected, v);
}

static int get_bool(Parser *p, const char *name, const cJSON *item, bool *out) {
    if (!cJSON_IsBool(item)) return wrong_type(p, name, item, "true or false");
    *out = cJSON_IsTrue(item);
    return 0;
}

static int get_int(Parser *p, const char *name, const cJSON *item, int lo, int hi, int *out) {
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) || item->valuedouble < lo ||
        item->valuedouble > hi) {
        char expected[64];
        snprintf(expected, sizeof expected, "an integer in %d..%d", lo, hi);
        return wrong_type(p, name, item, expected);
    }
    *out = (int)item->valuedouble;
    return 0;
}

static int get_finite(Parser *p, const char *name, const cJSON *item, double *out) {
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)) return wrong_type(p, name, item, "a finite number");
    *out = item->valuedouble;
    return 0;
}

static int get_string(Parser *p, const char *name, const cJSON *item, const char **out) {
    if (!cJSON_IsString(item)) return wrong_type(p, name, item, "a string");
    *out = item->valuestring;
    return 0;
}

// Picks `value` out of `options` (n of them); an unsupported value is an error listing the options.
static int get_choice(Parser *p, const char *name, const cJSON *item, const char *const *options, int n, int *out) {
    const char *v = NULL;
    DICE_TRY(get_string(p, name, item, &v));
    char list[256] = "";
    for (int k = 0; k < n; k++) {
        if (!strcmp(v, options[k])) {
            *out = k;
            return 0;
        }
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", options[k]);
    }
    char shown[64];
    st_printable(shown, sizeof shown, v);
    return DICE_FAIL(p->err, "%s: %s \"%s\" is not supported by dice's %s (supported: %s)", p->where, name, shown,
                     p->cls, list);
}

static int parse_trained_betas(Parser *p, const cJSON *item, ScheduleConfig *s) {
    if (cJSON_IsNull(item)) return 0;
    if (!cJSON_IsArray(item)) return wrong_type(p, "trained_betas", item, "null or an array of numbers");
    int n = cJSON_GetArraySize(item);
    DICE_CHECK(p->err, n >= 2 && n <= 1000000, "%s: trained_betas has %d values (expected 2..1000000)", p->where, n);
    free(s->trained_betas);
    s->trained_betas = malloc(sizeof(float) * (size_t)n);
    DICE_CHECK(p->err, s->trained_betas, "%s: out of memory for %d trained betas", p->where, n);
    int k = 0;
    for (const cJSON *v = item->child; v; v = v->next, k++) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
            char name[48];
            snprintf(name, sizeof name, "trained_betas[%d]", k);
            return wrong_type(p, name, v, "a finite number");
        }
        s->trained_betas[k] = (float)v->valuedouble;  // torch.tensor(list, dtype=float32)
    }
    s->beta_schedule = BETA_TRAINED;
    p->n_trained_betas = n;
    return 0;
}

// Applies one field owned by the class being configured.
static int apply_field(Parser *p, FieldId id, const char *name, const cJSON *item, SchedulerConfig *c) {
    ScheduleConfig *s = &c->schedule;
    int k;
    bool b = false;
    switch (id) {
    case F_NUM_TRAIN_TIMESTEPS: return get_int(p, name, item, 2, 1000000, &s->num_train_timesteps);
    case F_BETA_START: return get_finite(p, name, item, &s->beta_start);
    case F_BETA_END: return get_finite(p, name, item, &s->beta_end);
    case F_BETA_SCHEDULE: {
        static const char *const opts[] = {"linear", "scaled_linear", "squaredcos_cap_v2"};
        DICE_TRY(get_choice(p, name, item, opts, 3, &k));
        if (s->beta_schedule != BETA_TRAINED) s->beta_schedule = (BetaSchedule)k;  // trained_betas wins
        return 0;
    }
    case F_TRAINED_BETAS: return parse_trained_betas(p, item, s);
    case F_RESCALE_ZERO_SNR: return get_bool(p, name, item, &s->rescale_betas_zero_snr);
    case F_PREDICTION_TYPE: {
        static const char *const opts[] = {"epsilon", "v_prediction", "sample"};
        DICE_TRY(get_choice(p, name, item, opts, 3, &k));
        s->prediction_type = (PredictionType)k;
        return 0;
    }
    case F_TIMESTEP_SPACING: {
        static const char *const opts[] = {"linspace", "leading", "trailing"};
        DICE_TRY(get_choice(p, name, item, opts, 3, &k));
        c->timestep_spacing = (TimestepSpacing)k;
        return 0;
    }
    case F_STEPS_OFFSET: return get_int(p, name, item, 0, 1000000, &c->steps_offset);
    case F_FINAL_SIGMAS_TYPE: {
        static const char *const opts[] = {"zero", "sigma_min"};
        DICE_TRY(get_choice(p, name, item, opts, 2, &k));
        c->final_sigmas_type = (FinalSigmasType)k;
        return 0;
    }
    case F_SOLVER_ORDER: return get_int(p, name, item, 1, 3, &c->solver_order);
    case F_ALGORITHM_TYPE: {
        // diffusers turns DEIS's "deis" into dpmsolver++ when a DEIS config configures DPM-Solver
        static const char *const opts[] = {"dpmsolver++", "deis"};
        return get_choice(p, name, item, opts, 2, &k);
    }
    case F_SOLVER_TYPE: {
        // diffusers maps DEIS's logrho and UniPC's bh1 / bh2 to midpoint
        static const char *const opts[] = {"midpoint", "heun", "logrho", "bh1", "bh2"};
        DICE_TRY(get_choice(p, name, item, opts, 5, &k));
        c->solver_type = k == 1 ? SOLVER_HEUN : SOLVER_MIDPOINT;
        return 0;
    }
    case F_LOWER_ORDER_FINAL: return get_bool(p, name, item, &c->lower_order_final);
    case F_EULER_AT_FINAL: return get_bool(p, name, item, &c->euler_at_final);
    case F_LAMBDA_MIN_CLIPPED:
        if (!cJSON_IsNumber(item) || isnan(item->valuedouble) || item->valuedouble == INFINITY)
            return wrong_type(p, name, item, "a number or -Infinity");
        c->lambda_min_clipped = item->valuedouble;
        return 0;
    case F_VARIANCE_TYPE: {
        // only "learned" / "learned_range" change DPM-Solver (the model output carries a variance)
        if (cJSON_IsNull(item)) return 0;
        const char *v = NULL;
        DICE_TRY(get_string(p, name, item, &v));
        DICE_CHECK(p->err, strcmp(v, "learned") && strcmp(v, "learned_range"),
                   "%s: variance_type \"%s\" (a model that predicts its variance) is not supported by dice's %s",
                   p->where, v, p->cls);
        return 0;
    }
    case F_CLIP_SAMPLE: return get_bool(p, name, item, &c->clip_sample);
    case F_CLIP_SAMPLE_RANGE:
        DICE_TRY(get_finite(p, name, item, &c->clip_sample_range));
        DICE_CHECK(p->err, c->clip_sample_range > 0, "%s: clip_sample_range %g must be positive", p->where,
                   c->clip_sample_range);
        return 0;
    case F_SET_ALPHA_TO_ONE: return get_bool(p, name, item, &c->set_alpha_to_one);
    case F_INTERPOLATION_TYPE: {
        static const char *const opts[] = {"linear"};
        return get_choice(p, name, item, opts, 1, &k);
    }
    case F_TIMESTEP_TYPE: {
        static const char *const opts[] = {"discrete", "continuous"};
        return get_choice(p, name, item, opts, 2, &k);  // combined with prediction_type after the loop
    }
    case F_MUST_BE_FALSE:
        if (cJSON_IsNull(item)) return 0;
        DICE_TRY(get_bool(p, name, item, &b));
        DICE_CHECK(p->err, !b, "%s: %s true is not supported by dice's %s (only false, the default)", p->where, name,
                   p->cls);
        return 0;
    case F_UNUSED_NUMBER:
        if (cJSON_IsNull(item) || cJSON_IsNumber(item)) return 0;
        return wrong_type(p, name, item, "a number or null");
    case F_UNUSED_STRING:
        if (cJSON_IsNull(item) || cJSON_IsString(item)) return 0;
        return wrong_type(p, name, item, "a string or null");
    case F_OTHER_CLASS: return 0;
    }
    return DICE_FAIL(p->err, "%s: internal error: field %s has no handler", p->where, name);
}

// A copy of the text with Infinity / -Infinity outside strings replaced by numbers of the same length
// that overflow to +-infinity in strtod, so byte offsets in cJSON's errors stay those of the file.
static char *replace_infinities(const char *json, size_t len) {
    char *t = malloc(len + 1);
    if (!t) return NULL;
    memcpy(t, json, len);
    t[len] = '\0';
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        if (in_string) {
            if (t[i] == '\\') i++;
            else if (t[i] == '"') in_string = false;
        } else if (t[i] == '"') {
            in_string = true;
        } else if (len - i >= 8 && !memcmp(t + i, "Infinity", 8)) {
            memcpy(t + i, "1e999999", 8);
            i += 7;
        }
    }
    return t;
}

static int parse_object(const char *json, size_t len, const char *where, unsigned target, const char *cls,
                        SchedulerConfig *c, DiceError *err) {
    Parser p = {where, cls, err, 0};
    char *text = replace_infinities(json, len);
    DICE_CHECK(err, text, "%s: out of memory", where);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - text) : 0;
        free(text);
        return DICE_FAIL(err, "%s: not valid JSON (at byte %zu)", where, at);
    }
    int rc = 0;
    bool continuous = false;
    if (!cJSON_IsObject(root)) rc = DICE_FAIL(err, "%s: not a JSON object", where);
    for (const cJSON *item = rc ? NULL : root->child; item && !rc; item = item->next) {
        const char *name = item->string;
        char shown[96];
        st_printable(shown, sizeof shown, name);  // untrusted: control characters escaped
        for (const cJSON *prev = root->child; prev != item; prev = prev->next)
            if (!strcmp(prev->string, name)) rc = DICE_FAIL(err, "%s: field %s appears twice", where, shown);
        if (rc) break;
        if (name[0] == '_') {  // metadata, as diffusers treats it
            if (strcmp(name, "_class_name")) continue;
            const char *v = NULL;
            if ((rc = get_string(&p, name, item, &v))) break;
            bool known = false;
            for (size_t k = 0; k < sizeof DDPM_CLASSES / sizeof *DDPM_CLASSES; k++)
                known |= !strcmp(v, DDPM_CLASSES[k]);
            if (!known) {
                st_printable(shown, sizeof shown, v);
                rc = DICE_FAIL(err, "%s: _class_name \"%s\" is not a DDPM-type (beta schedule) scheduler; dice's "
                               "samplers take their noise schedule from one", where, shown);
            }
            continue;
        }
        int f = -1;
        for (size_t k = 0; k < sizeof FIELDS / sizeof *FIELDS && f < 0; k++)
            if (!strcmp(FIELDS[k].name, name)) f = (int)k;
        if (f < 0) {
            rc = DICE_FAIL(err, "%s: unknown field %s (no diffusers DDPM-type scheduler has it)", where, shown);
            break;
        }
        if (!(FIELDS[f].owners & target)) continue;  // another class's field: no effect on this one
        rc = apply_field(&p, FIELDS[f].id, name, item, c);
        if (!rc && FIELDS[f].id == F_TIMESTEP_TYPE) continuous = !strcmp(item->valuestring, "continuous");
    }
    cJSON_Delete(root);
    free(text);
    if (rc) return -1;
    const ScheduleConfig *s = &c->schedule;
    // trained_betas replaces the beta range; its length has to be the number of training timesteps
    DICE_CHECK(err, s->beta_schedule != BETA_TRAINED || p.n_trained_betas == s->num_train_timesteps,
               "%s: trained_betas has %d values but num_train_timesteps is %d", where, p.n_trained_betas,
               s->num_train_timesteps);
    DICE_CHECK(err, !(continuous && s->prediction_type == PRED_V_PREDICTION),
               "%s: timestep_type \"continuous\" with v_prediction is not supported by dice's %s", where, cls);
    return 0;
}

int scheduler_config_parse(SchedulerConfig *cfg, SchedulerKind kind, const char *json, size_t len,
                           const char *where, DiceError *err) {
    *cfg = scheduler_config_defaults(kind);
    DICE_CHECK(err, (unsigned)kind < 3, "%s: unknown scheduler kind %d", where, (int)kind);
    static const unsigned owner[] = {OWN_DPM, OWN_EULER, OWN_DDIM};
    DICE_TRY(parse_object(json, len, where, owner[kind], scheduler_kind_name(kind), cfg, err));
    return scheduler_config_validate(cfg, err);
}

int schedule_config_parse(ScheduleConfig *cfg, const char *json, size_t len, const char *where, DiceError *err) {
    SchedulerConfig c = scheduler_config_defaults(SCHED_DDIM);
    int rc = parse_object(json, len, where, OWN_DDPM, "DDPMScheduler", &c, err);
    *cfg = c.schedule;  // hands over trained_betas
    return rc;
}


int scheduler_config_load(SchedulerConfig *cfg, SchedulerKind kind, const char *path, DiceError *err) {
    *cfg = scheduler_config_defaults(kind);
    char *text;
    size_t len;
    DICE_TRY(dice_read_file(path, (size_t)64 << 20, &text, &len, err));
    int rc = scheduler_config_parse(cfg, kind, text, len, path, err);
    free(text);
    return rc;
}

int schedule_config_load(ScheduleConfig *cfg, const char *path, DiceError *err) {
    *cfg = schedule_config_defaults();
    char *text;
    size_t len;
    DICE_TRY(dice_read_file(path, (size_t)64 << 20, &text, &len, err));
    int rc = schedule_config_parse(cfg, text, len, path, err);
    free(text);
    return rc;
}
