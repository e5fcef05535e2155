// models/weights_save.c — writing a weight manifest (models/weights.h) as a safetensors file in the
// diffusers / transformers layout: canonical names, the file's dim order, one float dtype, sorted like the
// safetensors Python writer, written atomically.
#include <stdlib.h>
#include <string.h>

#include "models/weights.h"
#include "nn/tensor_copy.h"

enum { STAGE_CHUNK = 16 << 20 };  // host arena chunks (bytes); arenas grow by more chunks as needed

// The safetensors writer's order: decreasing element size (so every tensor stays aligned to its element
// size), then by name (byte order).
typedef struct SortKey {
    const WeightEntry *e;
    size_t elem;
} SortKey;

static int by_size_then_name(const void *pa, const void *pb) {
    const SortKey *a = pa, *b = pb;
    if (a->elem != b->elem) return a->elem > b->elem ? -1 : 1;
    return strcmp(a->e->name, b->e->name);
}

// The float dtypes a diffusers / transformers checkpoint is saved in.
static bool file_float_dtype(DType dt) { return dt == DT_F32 || dt == DT_BF16 || dt == DT_F16; }

static DType target_dtype(const WeightEntry *e, DType file_dtype) {
    return dtype_is_float(e->out->dtype) ? file_dtype : e->out->dtype;
}

// e's tensor in the file's order and dtype, contiguous in `keep` (host); device tensors go through `stage`.
static int to_file_order(DiceCtx *ctx, const WeightEntry *e, DType dtype, Arena *stage, Arena *keep, Tensor *out,
                         DiceError *err) {
    const Tensor *t = e->out;
    char d[128];
    DICE_CHECK(err, t->data && tensor_is_contiguous(t), "%s: tensor %s is not a contiguous tensor", e->name,
               tensor_describe(t, d, sizeof d));
    int64_t model_shape[TENSOR_MAX_DIMS], numel = 1;
    int inverse[TENSOR_MAX_DIMS];
    for (int i = 0; i < e->ndim; i++) {
        model_shape[i] = e->shape[e->perm[i]];
        inverse[e->perm[i]] = i;
        numel *= e->shape[i];
    }
    DICE_CHECK(err, tensor_numel(t) == numel, "%s: tensor %s does not hold the %lld elements it was loaded with",
               e->name, tensor_describe(t, d, sizeof d), (long long)numel);
    Tensor host = *t;
    if (t->device != DEV_CPU) DICE_TRY(tensor_to(ctx, stage, &host, t, t->dtype, err));
    Tensor view;
    DICE_TRY(tensor_reshape(&view, &host, e->ndim, model_shape, err));  // undo any regrouping of dims
    DICE_TRY(tensor_permute(&view, &view, inverse, err));               // file dim j = model dim inverse[j]
    DICE_TRY(arena_tensor(keep, out, dtype, e->ndim, e->shape, err));
    DiceCtx cpu;
    ctx_init_cpu(&cpu);
    return tensor_copy(&cpu, out, &view, err);
}

// Fills tensors[k] (m->n of them, in the file's order) with the entries' data, converted into `keep`.
static int gather(const WeightManifest *m, DiceCtx *ctx, DType file_dtype, Arena *stage, Arena *keep,
                  StWriteTensor *tensors, DiceError *err) {
    SortKey *keys = malloc((size_t)m->n * sizeof *keys);
    DICE_CHECK(err, keys, "out of host memory");
    for (int i = 0; i < m->n; i++)
        keys[i] = (SortKey){&m->entries[i], dtype_size(target_dtype(&m->entries[i], file_dtype))};
    qsort(keys, (size_t)m->n, sizeof *keys, by_size_then_name);
    int rc = 0;
    for (int k = 0; k < m->n && !rc; k++) {
        const WeightEntry *e = keys[k].e;
        DType dtype = target_dtype(e, file_dtype);
        Tensor t;
        arena_reset(stage);
        rc = to_file_order(ctx, e, dtype, stage, keep, &t, err);
        if (!rc) {
            tensors[k] = (StWriteTensor){.name = e->name, .dtype = dtype, .ndim = e->ndim, .data = t.data};
            memcpy(tensors[k].shape, e->shape, (size_t)e->ndim * sizeof e->shape[0]);
        }
    }
    free(keys);
    return rc;
}

int weights_save_meta(const WeightManifest *m, DiceCtx *ctx, const char *path, DType file_dtype,
                      const char *const *meta_keys, const char *const *meta_values, int n_meta, DiceError *err) {
    DICE_CHECK(err, file_float_dtype(file_dtype), "weights_save: %s: dtype %s is not f32, bf16 or f16", path,
               dtype_name(file_dtype));
    DICE_CHECK(err, m->n > 0, "weights_save: %s: the manifest is empty", path);
    DICE_CHECK(err, n_meta >= 0, "weights_save: %s: %d metadata entries", path, n_meta);
    const char **keys = malloc((size_t)(n_meta + 1) * sizeof *keys);
    const char **values = malloc((size_t)(n_meta + 1) * sizeof *values);
    StWriteTensor *tensors = calloc((size_t)m->n, sizeof *tensors);
    Arena stage = {0}, keep = {0};
    int rc = keys && values && tensors ? 0 : DICE_FAIL(err, "out of host memory");
    if (!rc) {
        keys[0] = "format", values[0] = "pt";  // what save_pretrained writes; transformers checks it
        for (int i = 0; i < n_meta; i++) keys[i + 1] = meta_keys[i], values[i + 1] = meta_values[i];
        rc = arena_init(&stage, "weights_save staging", DEV_CPU, STAGE_CHUNK, 0, err);
    }
    if (!rc) rc = arena_init(&keep, "weights_save", DEV_CPU, STAGE_CHUNK, 0, err);
    if (!rc) rc = gather(m, ctx, file_dtype, &stage, &keep, tensors, err);
    if (rc) dice_error_context(err, "saving weights to %s", path);
    if (!rc) rc = st_write(path, tensors, m->n, keys, values, n_meta + 1, err);  // its errors name path
    arena_free(&stage);
    arena_free(&keep);
    free(tensors);
    free(keys);
    free(values);
    return rc;
}

int weights_save(const WeightManifest *m, DiceCtx *ctx, const char *path, DType file_dtype, DiceError *err) {
    return weights_save_meta(m, ctx, path, file_dtype, NULL, NULL, 0, err);
}
