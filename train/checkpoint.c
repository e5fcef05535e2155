// train/checkpoint.c — saving and validating DICE training checkpoints (see checkpoint.h).
#include "checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/safetensors.h"
#include "nn/tensor_copy.h"

#define CHECKPOINT_VERSION "1"
#define N_TENSORS (3 * SHARPENER_N_PARAMS)
#define N_FIXED_META 12

int train_settings_add(TrainSettings *s, const char *key, DiceError *err, const char *fmt, ...) {
    DICE_CHECK(err, s->n < CHECKPOINT_MAX_SETTINGS && strlen(key) < sizeof s->key[0],
               "train settings: no room for '%s'", key);
    snprintf(s->key[s->n], sizeof s->key[0], "%s", key);
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(s->value[s->n], sizeof s->value[0], fmt, ap);
    va_end(ap);
    DICE_CHECK(err, len >= 0 && (size_t)len < sizeof s->value[0], "train settings: value of '%s' too long", key);
    s->n++;
    return 0;
}

static uint64_t fnv1a64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}
#define FNV_OFFSET 0xcbf29ce484222325ull

// The 27 tensors in file order: parameters, first moments, second moments.
static const Tensor *tensor_at(Sharpener *s, const AdamW *opt, int i) {
    int k = i % SHARPENER_N_PARAMS;
    return i < SHARPENER_N_PARAMS ? &s->params[k].value : i < 2 * SHARPENER_N_PARAMS ? &opt->m[k] : &opt->v[k];
}

static void tensor_name_at(Sharpener *s, int i, char *buf, size_t cap) {
    const char *name = s->params[i % SHARPENER_N_PARAMS].name;
    if (i < SHARPENER_N_PARAMS) snprintf(buf, cap, "%s", name);
    else snprintf(buf, cap, "adamw.%s.%s", i < 2 * SHARPENER_N_PARAMS ? "m" : "v", name);
}

int checkpoint_save(const char *path, Sharpener *s, const AdamW *opt, const TrainState *st,
                    const TrainSettings *settings, DiceCtx *ctx, DiceError *err) {
    DICE_CHECK(err, opt->n_params == SHARPENER_N_PARAMS, "checkpoint: the optimiser holds %d tensors, not the "
               "sharpener's %d", opt->n_params, SHARPENER_N_PARAMS);
    StWriteTensor t[N_TENSORS];
    char names[N_TENSORS][96];
    void *host[N_TENSORS] = {0};
    uint64_t sum = FNV_OFFSET;
    int rc = 0;
    for (int i = 0; i < N_TENSORS && !rc; i++) {
        const Tensor *src = tensor_at(s, opt, i);
        host[i] = malloc(tensor_nbytes(src) ? tensor_nbytes(src) : 1);
        Tensor h;
        rc = host[i] ? 0 : DICE_FAIL(err, "checkpoint: out of host memory");
        if (!rc) rc = tensor_wrap(&h, host[i], DT_F32, DEV_CPU, src->ndim, src->shape, err);
        if (!rc) rc = tensor_copy(ctx, &h, src, err);
        if (rc) break;
        tensor_name_at(s, i, names[i], sizeof names[i]);
        memset(&t[i], 0, sizeof t[i]);
        t[i].name = names[i];
        t[i].dtype = DT_F32;
        t[i].ndim = src->ndim;
        for (int d = 0; d < src->ndim; d++) t[i].shape[d] = src->shape[d];
        t[i].data = host[i];
        sum = fnv1a64(sum, host[i], tensor_nbytes(src));  // the data section is these bytes in this order
    }
    if (!rc) {
        char v[N_FIXED_META][40];
        const char *keys[N_FIXED_META + CHECKPOINT_MAX_SETTINGS], *values[N_FIXED_META + CHECKPOINT_MAX_SETTINGS];
        const char *fixed[N_FIXED_META] = {"dice.checkpoint", "step", "adamw.step", "rng.seed", "rng.normal_offset",
                                           "rng.uniform_offset", "data.epoch", "data.index", "seconds",
                                           "sharpener.heads", "checksum", "format"};
        snprintf(v[0], sizeof v[0], CHECKPOINT_VERSION);
        snprintf(v[1], sizeof v[1], "%" PRId64, st->step);
        snprintf(v[2], sizeof v[2], "%" PRId64, opt->step);
        snprintf(v[3], sizeof v[3], "%" PRIu64, st->normal.seed);
        snprintf(v[4], sizeof v[4], "%" PRIu64, st->normal.offset);
        snprintf(v[5], sizeof v[5], "%" PRIu64, st->uniform.offset);
        snprintf(v[6], sizeof v[6], "%" PRIu64, st->data.epoch);
        snprintf(v[7], sizeof v[7], "%" PRIu64, st->data.index);
        snprintf(v[8], sizeof v[8], "%.17g", st->seconds);
        snprintf(v[9], sizeof v[9], "%d", s->heads);
        snprintf(v[10], sizeof v[10], "%016" PRIx64, sum);
        snprintf(v[11], sizeof v[11], "pt");
        int n = 0;
        for (; n < N_FIXED_META; n++) keys[n] = fixed[n], values[n] = v[n];
        char skeys[CHECKPOINT_MAX_SETTINGS][48];
        for (int i = 0; i < settings->n; i++, n++) {
            snprintf(skeys[i], sizeof skeys[i], "setting.%s", settings->key[i]);
            keys[n] = skeys[i];
            values[n] = settings->value[i];
        }
        rc = st_write(path, t, N_TENSORS, keys, values, n, err);
    }
    for (int i = 0; i < N_TENSORS; i++) free(host[i]);
    return rc;
}

// Metadata `key` as an unsigned decimal integer.
static int meta_u64(const StFile *f, const char *key, uint64_t *out, DiceError *err) {
    const char *text = st_meta(f, key);
    DICE_CHECK(err, text, "%s: checkpoint metadata lacks '%s'", f->path, key);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    DICE_CHECK(err, text[0] >= '0' && text[0] <= '9' && !*end && !errno, "%s: checkpoint metadata '%s' = '%.40s' is "
               "not a non-negative integer", f->path, key, text);
    *out = v;
    return 0;
}

static int check_settings(const StFile *f, const TrainSettings *settings, DiceError *err) {
    for (int i = 0; i < settings->n; i++) {
        char key[48];
        snprintf(key, sizeof key, "setting.%s", settings->key[i]);
        const char *have = st_meta(f, key);
        DICE_CHECK(err, have, "%s: the checkpoint does not record the setting '%s'", f->path, settings->key[i]);
        DICE_CHECK(err, !strcmp(have, settings->value[i]),
                   "%s: the checkpoint was written with %s = %.60s, this run has %s = %.60s (resume with the same "
                   "settings, or train into another --out)",
                   f->path, settings->key[i], have, settings->key[i], settings->value[i]);
    }
    int recorded = 0;
    for (int i = 0; i < f->n_meta; i++) recorded += !strncmp(f->meta_keys[i], "setting.", 8);
    DICE_CHECK(err, recorded == settings->n, "%s: the checkpoint records %d settings, this run has %d", f->path,
               recorded, settings->n);
    return 0;
}

static int load_tensors(const StFile *f, Sharpener *s, AdamW *opt, DiceCtx *ctx, DiceError *err) {
    DICE_CHECK(err, f->n_tensors == N_TENSORS, "%s: %d tensors, a checkpoint of this sharpener has %d", f->path,
               f->n_tensors, N_TENSORS);
    for (int i = 0; i < N_TENSORS; i++) {
        char name[96];
        tensor_name_at(s, i, name, sizeof name);
        const Tensor *dst = tensor_at(s, opt, i);
        const StTensorInfo *t = st_find(f, name);
        DICE_CHECK(err, t, "%s: checkpoint tensor '%s' is missing", f->path, name);
        bool same = t->dtype == DT_F32 && t->ndim == dst->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == dst->shape[d];
        char want[96];
        DICE_CHECK(err, same, "%s: checkpoint tensor '%s' is not %s (another sharpener size?)", f->path, name,
                   tensor_describe(dst, want, sizeof want));
    }
    for (int i = 0; i < N_TENSORS; i++) {
        char name[96];
        tensor_name_at(s, i, name, sizeof name);
        const StTensorInfo *t = st_find(f, name);
        Tensor *dst = (Tensor *)tensor_at(s, opt, i);
        size_t bytes = (size_t)(t->end - t->begin);
        float *host = malloc(bytes ? bytes : 1);  // the mapping may be unaligned for f32
        DICE_CHECK(err, host, "checkpoint: out of host memory");
        memcpy(host, t->data, bytes);
        Tensor h;
        int rc = tensor_wrap(&h, host, DT_F32, DEV_CPU, dst->ndim, dst->shape, err);
        if (!rc) rc = tensor_copy(ctx, dst, &h, err);
        free(host);
        DICE_TRY(rc);
    }
    return 0;
}

static int load_open(const StFile *f, Sharpener *s, AdamW *opt, TrainState *st, const TrainSettings *settings,
                     DiceCtx *ctx, DiceError *err) {
    const char *version = st_meta(f, "dice.checkpoint");
    DICE_CHECK(err, version, "%s: not a dice training checkpoint (no 'dice.checkpoint' metadata)", f->path);
    DICE_CHECK(err, !strcmp(version, CHECKPOINT_VERSION), "%s: checkpoint format %.20s, this dice reads %s",
               f->path, version, CHECKPOINT_VERSION);
    const char *sum_text = st_meta(f, "checksum");
    DICE_CHECK(err, sum_text, "%s: checkpoint metadata lacks 'checksum'", f->path);
    char sum[24];
    snprintf(sum, sizeof sum, "%016" PRIx64, fnv1a64(FNV_OFFSET, f->data, (size_t)f->data_size));
    DICE_CHECK(err, !strcmp(sum, sum_text), "%s: checksum mismatch (file says %.20s, data gives %s): the checkpoint "
               "is corrupt", f->path, sum_text, sum);
    DICE_TRY(check_settings(f, settings, err));
    uint64_t step, adam_step, seed, normal, uniform, epoch, index, heads;
    DICE_TRY(meta_u64(f, "step", &step, err));
    DICE_TRY(meta_u64(f, "adamw.step", &adam_step, err));
    DICE_TRY(meta_u64(f, "rng.seed", &seed, err));
    DICE_TRY(meta_u64(f, "rng.normal_offset", &normal, err));
    DICE_TRY(meta_u64(f, "rng.uniform_offset", &uniform, err));
    DICE_TRY(meta_u64(f, "data.epoch", &epoch, err));
    DICE_TRY(meta_u64(f, "data.index", &index, err));
    DICE_TRY(meta_u64(f, "sharpener.heads", &heads, err));
    DICE_CHECK(err, heads == (uint64_t)s->heads, "%s: the checkpoint's sharpener has %llu heads, this one %d",
               f->path, (unsigned long long)heads, s->heads);
    const char *seconds = st_meta(f, "seconds");
    DICE_CHECK(err, seconds, "%s: checkpoint metadata lacks 'seconds'", f->path);
    DICE_TRY(load_tensors(f, s, opt, ctx, err));
    st->step = (int64_t)step;
    opt->step = (int64_t)adam_step;
    st->normal = (PhiloxStream){seed, normal};
    st->uniform = (PhiloxStream){seed, uniform};
    st->data = (LoaderPos){epoch, index};
    st->seconds = strtod(seconds, NULL);
    return 0;
}

int checkpoint_load(const char *path, Sharpener *s, AdamW *opt, TrainState *st, const TrainSettings *settings,
                    DiceCtx *ctx, DiceError *err) {
    StFile f;
    if (st_open(&f, path, err)) {
        dice_error_context(err, "checkpoint");
        return -1;
    }
    int rc = load_open(&f, s, opt, st, settings, ctx, err);
    st_close(&f);
    return rc;
}
