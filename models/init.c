// models/init.c — PyTorch's default initialisation of a weight manifest, tensor by tensor from its name and
// shape, from Philox streams keyed by the names (see init.h).
#include "models/init.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/philox.h"
#include "nn/tensor_copy.h"

enum { STAGE_CHUNK = 16 << 20 };  // host staging arena chunks (bytes); it grows for larger tensors

typedef enum InitKind { INIT_UNIFORM, INIT_NORMAL, INIT_ONES, INIT_ZEROS } InitKind;

typedef struct InitRule {
    InitKind kind;
    float scale;  // uniform: the bound b of (-b, b); normal: the standard deviation
} InitRule;

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static const char WEIGHT[] = ".weight", BIAS[] = ".bias";

// The rule for a *.weight tensor, or -1 if it is none of the kinds init.h lists.
static int weight_rule(const WeightEntry *e, InitRule *r) {
    if (e->ndim == 1 && strstr(e->name, "norm")) {  // in the module's name: ".weight" holds no "norm"
        *r = (InitRule){INIT_ONES, 1.0f};
    } else if (e->ndim == 2 && ends_with(e->name, "embedding.weight")) {
        *r = (InitRule){INIT_NORMAL, 1.0f};
    } else if (e->ndim == 2 || e->ndim == 4) {
        int64_t fan_in = 1;
        for (int i = 1; i < e->ndim; i++) fan_in *= e->shape[i];  // file order: (out, in[, kh, kw])
        if (fan_in <= 0) return -1;
        *r = (InitRule){INIT_UNIFORM, (float)(1.0 / sqrt((double)fan_in))};
    } else {
        return -1;
    }
    return 0;
}

// The entry named "<module>.weight" for a "<module>.bias" entry, or NULL.
static const WeightEntry *sibling_weight(const WeightManifest *m, const WeightEntry *bias) {
    size_t module = strlen(bias->name) - strlen(BIAS);
    for (int i = 0; i < m->n; i++) {
        const char *name = m->entries[i].name;
        if (!strncmp(name, bias->name, module) && !strcmp(name + module, WEIGHT)) return &m->entries[i];
    }
    return NULL;
}

static int rule_for(const WeightManifest *m, const WeightEntry *e, InitRule *r, DiceError *err) {
    char shape[96];
    size_t k = 0;
    for (int i = 0; i < e->ndim && k < sizeof shape; i++)
        k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%lld", i ? ", " : "", (long long)e->shape[i]);
    if (!e->ndim) shape[0] = 0;
    if (ends_with(e->name, WEIGHT) && !weight_rule(e, r)) return 0;
    if (ends_with(e->name, BIAS) && e->ndim == 1) {
        const WeightEntry *w = sibling_weight(m, e);
        DICE_CHECK(err, w, "weights_init_pytorch: %s [%s] has no sibling .weight to take its fan_in from", e->name,
                   shape);
        InitRule wr;
        bool classified = !weight_rule(w, &wr) && w->shape[0] == e->shape[0];
        if (classified && wr.kind == INIT_ONES) *r = (InitRule){INIT_ZEROS, 0.0f};
        else if (classified && wr.kind == INIT_UNIFORM) *r = wr;
        else return DICE_FAIL(err, "weights_init_pytorch: cannot tell how PyTorch initialises %s [%s] from %s",
                              e->name, shape, w->name);
        return 0;
    }
    return DICE_FAIL(err, "weights_init_pytorch: cannot tell how PyTorch initialises %s [%s]", e->name, shape);
}

static uint64_t mix64(uint64_t z) {  // splitmix64's finaliser
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// The Philox key of tensor `name`: the seed mixed with the name's 64-bit FNV-1a hash.
static uint64_t name_key(uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    return mix64(seed ^ mix64(h));
}

// e's values (f32, file order) from its stream, converted to its dtype and layout in `stage`, copied into it.
static int fill(DiceCtx *ctx, Arena *stage, const WeightEntry *e, InitRule r, uint64_t seed, DiceError *err) {
    Tensor *t = e->out;
    char d[128];
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    DICE_CHECK(err, t->data && tensor_is_contiguous(t) && tensor_numel(t) == n,
               "weights_init_pytorch: %s is %s, not a contiguous tensor of the %lld elements it was loaded with",
               e->name, tensor_describe(t, d, sizeof d), (long long)n);
    float *v;
    DICE_TRY(arena_alloc(stage, (size_t)n * sizeof *v, (void **)&v, err));
    uint64_t key = name_key(seed, e->name);
    if (r.kind == INIT_UNIFORM) {
        philox_fill_uniform_f32(v, (size_t)n, key, 0);
        for (int64_t i = 0; i < n; i++) v[i] = (2.0f * v[i] - 1.0f) * r.scale;  // 2u - 1 exact, in [-1, 1)
    } else if (r.kind == INIT_NORMAL) {
        philox_fill_normal_f32(v, (size_t)n, key, 0);
        for (int64_t i = 0; i < n; i++) v[i] *= r.scale;
    } else {
        for (int64_t i = 0; i < n; i++) v[i] = r.kind == INIT_ONES ? 1.0f : 0.0f;
    }
    Tensor file, model;
    DICE_TRY(tensor_wrap(&file, v, DT_F32, DEV_CPU, e->ndim, e->shape, err));
    DICE_TRY(tensor_permute(&file, &file, e->perm, err));                     // dice's layout
    DICE_TRY(arena_tensor(stage, &model, t->dtype, e->ndim, file.shape, err));
    DiceCtx cpu;
    ctx_init_cpu(&cpu);
    DICE_TRY(tensor_copy(&cpu, &model, &file, err));
    DICE_TRY(tensor_reshape(&model, &model, t->ndim, t->shape, err));         // the loader's regrouping
    return tensor_copy(ctx, t, &model, err);
}

int weights_init_pytorch(const WeightManifest *m, DiceCtx *ctx, uint64_t seed, DiceError *err) {
    InitRule *rules = malloc((size_t)(m->n ? m->n : 1) * sizeof *rules);
    DICE_CHECK(err, rules, "weights_init_pytorch: out of host memory");
    int rc = 0;
    for (int i = 0; i < m->n && !rc; i++) rc = rule_for(m, &m->entries[i], &rules[i], err);  // all before any fill
    Arena stage = {0};
    if (!rc) rc = arena_init(&stage, "weights_init staging", DEV_CPU, STAGE_CHUNK, 0, err);
    for (int i = 0; i < m->n && !rc; i++) {
        arena_reset(&stage);
        rc = fill(ctx, &stage, &m->entries[i], rules[i], seed, err);
    }
    if (!rc) rc = ctx_sync(ctx, err);
    arena_free(&stage);
    free(rules);
    return rc;
}
