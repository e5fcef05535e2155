// models/weights.c — weights from safetensors files into tensors, with every problem collected, and the
// manifest of the tensors asked for (see weights.h; writing a manifest back is models/weights_save.c).
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/tensor_copy.h"

enum { PROBLEMS_LISTED = 8 };  // names quoted per category in the final message

static void problem_add(WeightProblems *p, const char *text) {
    p->count++;
    if (p->count > PROBLEMS_LISTED) return;
    size_t n = strlen(text) + 2;
    if (p->len + n + 1 > p->cap) {
        size_t cap = (p->cap + n + 1) * 2;
        char *t = realloc(p->text, cap);
        if (!t) return;  // the count still says how many there were
        p->text = t;
        p->cap = cap;
    }
    p->len += (size_t)snprintf(p->text + p->len, p->cap - p->len, "%s%s", p->len ? ", " : "", text);
}

static void problems_free(WeightProblems *p) {
    free(p->text);
    memset(p, 0, sizeof *p);
}

int weights_open_empty(Weights *w, DiceCtx *ctx, Arena *arena, DType dtype, DiceError *err) {
    memset(w, 0, sizeof *w);
    DICE_CHECK(err, dtype_is_float(dtype), "weights: target dtype %s is not a float type", dtype_name(dtype));
    w->ctx = ctx;
    w->arena = arena;
    w->dtype = dtype;
    return 0;
}

int weights_open(Weights *w, const char *const *paths, int n_paths, DiceCtx *ctx, Arena *arena, DType dtype,
                 DiceError *err) {
    memset(w, 0, sizeof *w);
    DICE_CHECK(err, n_paths > 0, "weights: no files given");
    DICE_CHECK(err, dtype_is_float(dtype), "weights: target dtype %s is not a float type", dtype_name(dtype));
    w->files = calloc((size_t)n_paths, sizeof *w->files);
    w->used = calloc((size_t)n_paths, sizeof *w->used);
    if (!w->files || !w->used) {
        weights_close(w);
        return DICE_FAIL(err, "weights: out of host memory");
    }
    w->ctx = ctx;
    w->arena = arena;
    w->dtype = dtype;
    for (int f = 0; f < n_paths; f++) {
        if (st_open(&w->files[f], paths[f], err)) {
            weights_close(w);
            return -1;
        }
        w->n_files = f + 1;
        w->used[f] = calloc((size_t)(w->files[f].n_tensors ? w->files[f].n_tensors : 1), sizeof(bool));
        if (!w->used[f]) {
            weights_close(w);
            return DICE_FAIL(err, "weights: out of host memory");
        }
    }
    return 0;
}

void weights_set_names(Weights *w, WeightNameFn fn, void *user) {
    w->name_fn = fn;
    w->name_user = user;
}

static const char *file_name(Weights *w, const char *name, char *buf, size_t n) {
    return w->name_fn ? w->name_fn(name, buf, n, w->name_user) : name;
}

// The file and tensor index holding `name`, or -1.
static int find(Weights *w, const char *name, int *file) {
    char buf[512];
    const char *fname = file_name(w, name, buf, sizeof buf);
    if (!fname) return -1;
    for (int f = 0; f < w->n_files; f++) {
        const StTensorInfo *t = st_find(&w->files[f], fname);
        if (t) {
            *file = f;
            return (int)(t - w->files[f].tensors);
        }
    }
    return -1;
}

bool weights_has(Weights *w, const char *name) {
    int f;
    return find(w, name, &f) >= 0;
}

void weights_mark_used(Weights *w, const char *name) {
    int f, idx = find(w, name, &f);
    if (idx >= 0) w->used[f][idx] = true;
}

static void shape_text(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

// Adds {name, out, shape, perm} to the manifest.
static int record(Weights *w, Tensor *out, const char *name, int ndim, const int64_t *shape, const int *perm,
                  DiceError *err) {
    WeightManifest *m = &w->manifest;
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 64;
        WeightEntry *e = realloc(m->entries, (size_t)cap * sizeof *e);
        DICE_CHECK(err, e, "weights: out of host memory recording %s", name);
        m->entries = e;
        m->cap = cap;
    }
    WeightEntry *e = &m->entries[m->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    DICE_CHECK(err, e->name, "weights: out of host memory recording %s", name);
    e->out = out;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        e->perm[i] = perm ? perm[i] : i;
    }
    m->n++;
    return 0;
}

static int zero_tensor(Weights *w, Tensor *out, DType dtype, int ndim, const int64_t *shape, DiceError *err) {
    DICE_TRY(arena_tensor(w->arena, out, dtype, ndim, shape, err));
    return tensor_zero(w->ctx, out, err);
}

int weights_get(Weights *w, Tensor *out, const char *name, int ndim, const int64_t *shape, const int *perm,
                DiceError *err) {
    DICE_CHECK(err, ndim >= 0 && ndim <= TENSOR_MAX_DIMS, "weights: %s requested with rank %d", name, ndim);
    int64_t out_shape[TENSOR_MAX_DIMS];
    for (int i = 0; i < ndim; i++) out_shape[i] = perm ? shape[perm[i]] : shape[i];
    DICE_TRY(record(w, out, name, ndim, shape, perm, err));
    int f = -1, idx = find(w, name, &f);
    if (idx < 0) {
        problem_add(&w->missing, name);
        return zero_tensor(w, out, w->dtype, ndim, out_shape, err);
    }
    w->used[f][idx] = true;
    const StTensorInfo *t = &w->files[f].tensors[idx];
    bool same = t->ndim == ndim || (w->squeeze_trailing_ones && t->ndim > ndim);
    for (int i = 0; same && i < t->ndim; i++) same = t->shape[i] == (i < ndim ? shape[i] : 1);
    if (!same) {
        char want[128], got[128], text[512];
        shape_text(want, sizeof want, ndim, shape);
        shape_text(got, sizeof got, t->ndim, t->shape);
        snprintf(text, sizeof text, "%s (expected %s, file has %s)", name, want, got);
        problem_add(&w->misshaped, text);
        return zero_tensor(w, out, w->dtype, ndim, out_shape, err);
    }
    DType target = dtype_is_float(t->dtype) ? w->dtype : t->dtype;
    DICE_CHECK(err, t->dtype == target || (dtype_is_float(t->dtype) && dtype_is_float(target)),
               "%s: tensor %s has dtype %s", w->files[f].path, name, dtype_name(t->dtype));
    // Stage through aligned host memory: tensors inside a safetensors file need not be aligned.
    size_t bytes = (size_t)(t->end - t->begin);
    size_t out_bytes = (size_t)st_numel(t) * dtype_size(target);
    void *raw = malloc(bytes ? bytes : 1), *converted = malloc(out_bytes ? out_bytes : 1);
    int rc = 0;
    if (!raw || !converted) rc = DICE_FAIL(err, "weights: out of host memory loading %s (%zu bytes)", name, bytes);
    Tensor file_view, host_out;
    if (!rc) {
        memcpy(raw, t->data, bytes);
        rc = tensor_wrap(&file_view, raw, t->dtype, DEV_CPU, ndim, shape, err);
    }
    if (!rc && perm) rc = tensor_permute(&file_view, &file_view, perm, err);
    if (!rc) rc = tensor_wrap(&host_out, converted, target, DEV_CPU, ndim, out_shape, err);
    DiceCtx cpu;
    ctx_init_cpu(&cpu);
    if (!rc) rc = tensor_copy(&cpu, &host_out, &file_view, err);
    if (!rc) rc = arena_tensor(w->arena, out, target, ndim, out_shape, err);
    if (!rc) rc = tensor_copy(w->ctx, out, &host_out, err);
    free(raw);
    free(converted);
    if (rc) dice_error_context(err, "loading %s from %s", name, w->files[f].path);
    return rc;
}

int weights_finish(Weights *w, DiceError *err) {
    WeightProblems unexpected;
    memset(&unexpected, 0, sizeof unexpected);
    size_t ignore_len = w->ignore_prefix ? strlen(w->ignore_prefix) : 0;
    for (int f = 0; f < w->n_files; f++)
        for (int i = 0; i < w->files[f].n_tensors; i++) {
            const char *name = w->files[f].tensors[i].name;
            if (!w->used[f][i] && !(ignore_len && !strncmp(name, w->ignore_prefix, ignore_len)) &&
                !(w->ignore_fn && w->ignore_fn(name, w->ignore_user)))
                problem_add(&unexpected, name);
        }
    int rc = 0;
    if (w->missing.count || w->misshaped.count || unexpected.count) {
        char files[256] = "";
        size_t k = 0;
        for (int f = 0; f < w->n_files && k < sizeof files; f++)
            k += (size_t)snprintf(files + k, sizeof files - k, "%s%s", f ? ", " : "", w->files[f].path);
        char part[3][700];
        const WeightProblems *lists[3] = {&w->missing, &w->misshaped, &unexpected};
        const char *labels[3] = {"missing", "mis-shaped", "unexpected"};
        for (int c = 0; c < 3; c++) {
            part[c][0] = 0;
            if (lists[c]->count)
                snprintf(part[c], sizeof part[c], "; %d %s: %s%s", lists[c]->count, labels[c], lists[c]->text ? lists[c]->text : "",
                         lists[c]->count > PROBLEMS_LISTED ? ", ..." : "");
        }
        rc = DICE_FAIL(err, "%s: the weights do not match the model%s%s%s", files, part[0], part[1], part[2]);
    }
    problems_free(&unexpected);
    return rc;
}

void weights_close(Weights *w) {
    for (int f = 0; f < w->n_files; f++) {
        st_close(&w->files[f]);
        free(w->used[f]);
    }
    free(w->files);
    free(w->used);
    problems_free(&w->missing);
    problems_free(&w->misshaped);
    weight_manifest_free(&w->manifest);
    memset(w, 0, sizeof *w);
}

int weights_n_entries(const Weights *w) { return w->manifest.n; }

const WeightEntry *weights_entry(const Weights *w, int i) { return &w->manifest.entries[i]; }

void weights_take_manifest(Weights *w, WeightManifest *out) {
    *out = w->manifest;
    memset(&w->manifest, 0, sizeof w->manifest);
}

void weight_manifest_free(WeightManifest *m) {
    for (int i = 0; i < m->n; i++) free(m->entries[i].name);
    free(m->entries);
    memset(m, 0, sizeof *m);
}
