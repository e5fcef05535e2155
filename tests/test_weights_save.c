// tests/test_weights_save.c — weight manifests (models/weights.h), saving them (models/weights_save.c) and
// PyTorch's default initialisation of them (models/init.h): golden UNet and CLIP text encoders saved and
// reloaded bit for bit with the original files' names and shapes; init bounds, variances, norms, determinism
// and independence of order and device; save errors leaving nothing behind.
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/clip_encoder.h"
#include "models/init.h"
#include "models/unet.h"
#include "nn/tensor_copy.h"
#include "test.h"

typedef enum Kind { UNET, CLIP } Kind;

// One model on one device with its manifest.
typedef struct Model {
    Kind kind;
    DiceCtx ctx;
    Arena arena;
    Unet unet;
    ClipEncoder clip;
    WeightManifest m;
} Model;

static void model_free(Model *md) {
    weight_manifest_free(&md->m);
    if (md->kind == UNET) unet_free(&md->unet);
    else clip_encoder_free(&md->clip);
    arena_free(&md->arena);
    if (md->ctx.device == DEV_CUDA) ctx_free(&md->ctx);
}

// The weights file of golden folder dir.
static const char *golden_file(char *buf, size_t n, Kind kind, const char *dir) {
    snprintf(buf, n, "%s/%s", dir, kind == UNET ? "diffusion_pytorch_model.safetensors" : "model.safetensors");
    return buf;
}

// Files saved by transformers 5 name CLIP's tensors without "text_model." (as clip_encoder_load_dir reads them).
static const char *strip_text_model(const char *canonical, char *buf, size_t n, void *user) {
    (void)user;
    snprintf(buf, n, "%s", strncmp(canonical, "text_model.", 11) ? canonical : canonical + 11);
    return buf;
}

// The model of golden folder `dir` (its config.json) loaded from `file`, on `device` in `dtype`. An empty
// `file` gives a model of zeros (every tensor missing); otherwise every tensor must be found.
static int model_load(TestCtx *tc, Model *md, Kind kind, const char *dir, const char *file, Device device,
                      DType dtype) {
    DiceError *err = &tc->err;
    memset(md, 0, sizeof *md);
    md->kind = kind;
    if (device == DEV_CUDA) DICE_TRY(ctx_init_cuda(&md->ctx, 0, err));
    else ctx_init_cpu(&md->ctx);
    DICE_TRY(arena_init(&md->arena, "weights", device, 1 << 20, 0, err));
    char config[600];
    snprintf(config, sizeof config, "%s/config.json", dir);
    UnetConfig ucfg;
    ClipEncoderConfig ccfg;
    DICE_TRY(kind == UNET ? unet_config_load(&ucfg, config, err) : clip_encoder_config_load(&ccfg, config, err));
    Weights w;
    DICE_TRY(weights_open(&w, &file, 1, &md->ctx, &md->arena, dtype, err));
    bool empty = w.files[0].n_tensors == 0;
    if (kind == CLIP && weights_has(&w, "embeddings.token_embedding.weight")) weights_set_names(&w, strip_text_model, NULL);
    int rc = kind == UNET ? unet_load(&md->unet, &ucfg, &w, err) : clip_encoder_load(&md->clip, &ccfg, &w, err);
    if (!rc && !empty) rc = weights_finish(&w, err);
    if (!rc) rc = weights_n_entries(&w) > 0 && weights_entry(&w, 0)->out ? 0 : DICE_FAIL(err, "empty manifest");
    if (!rc) weights_take_manifest(&w, &md->m);
    if (!rc && weights_n_entries(&w) != 0) rc = DICE_FAIL(err, "the manifest was not taken");
    weights_close(&w);
    return rc;
}

// An empty safetensors file in the test's directory, its path in buf.
static int empty_file(TestCtx *tc, char *buf, size_t n) {
    snprintf(buf, n, "%s/empty.safetensors", test_tmpdir(tc));
    return st_write(buf, NULL, 0, NULL, NULL, 0, &tc->err);
}

// saved holds exactly original's tensors (name: `prefix` + the original's name) with the same shapes, sorted
// by name, with {"format": "pt"}; when their dtypes match, the same bytes.
static void check_saved(TestCtx *tc, const char *original, const char *saved, const char *prefix) {
    StFile a, b;
    CHECK_OK(st_open(&a, original, &tc->err));
    CHECK_OK(st_open(&b, saved, &tc->err));
    CHECK_MSG(a.n_tensors == b.n_tensors, "%s: %d tensors, original %d", saved, b.n_tensors, a.n_tensors);
    CHECK(st_meta(&b, "format") && !strcmp(st_meta(&b, "format"), "pt"));
    for (int i = 1; i < b.n_tensors; i++) CHECK(strcmp(b.tensors[i - 1].name, b.tensors[i].name) < 0);
    for (int i = 0; i < a.n_tensors; i++) {
        const StTensorInfo *x = &a.tensors[i];
        char name[512];
        snprintf(name, sizeof name, "%s%s", prefix, x->name);
        const StTensorInfo *y = st_find(&b, name);
        CHECK_MSG(y, "%s lacks %s", saved, name);
        CHECK_MSG(y->ndim == x->ndim && !memcmp(y->shape, x->shape, (size_t)x->ndim * sizeof x->shape[0]),
                  "%s: shape differs", name);
        if (y->dtype == x->dtype) CHECK_MSG(!memcmp(y->data, x->data, y->end - y->begin), "%s: bytes differ", name);
    }
    st_close(&a);
    st_close(&b);
}

// Every tensor of a and b (same model, same loader) bitwise equal.
static void check_same(TestCtx *tc, Model *a, Model *b) {
    CHECK(a->m.n == b->m.n);
    for (int i = 0; i < a->m.n; i++) {
        const WeightEntry *x = &a->m.entries[i], *y = &b->m.entries[i];
        CHECK(!strcmp(x->name, y->name) && tensor_same_shape(x->out, y->out) && x->out->dtype == y->out->dtype);
        CHECK_MSG(!memcmp(x->out->data, y->out->data, tensor_nbytes(x->out)), "%s differs", x->name);
    }
}

// Loads golden folder `sub`, saves it in file_dtype, checks the file against the original and reloads it.
static void round_trip(TestCtx *tc, Kind kind, const char *sub, DType file_dtype, const char *prefix) {
    char dir[512], file[600], saved[600];
    snprintf(dir, sizeof dir, "%s", test_path(tc, sub));
    golden_file(file, sizeof file, kind, dir);
    snprintf(saved, sizeof saved, "%s/saved_%s.safetensors", test_tmpdir(tc), dtype_name(file_dtype));
    Model a, b;
    CHECK_OK(model_load(tc, &a, kind, dir, file, DEV_CPU, DT_F32));
    CHECK_OK(weights_save(&a.m, &a.ctx, saved, file_dtype, &tc->err));
    check_saved(tc, file, saved, prefix);
    if (tc->failed) return;
    CHECK_OK(model_load(tc, &b, kind, dir, saved, DEV_CPU, DT_F32));
    check_same(tc, &a, &b);
    model_free(&a);
    model_free(&b);
}

DICE_TEST(weights_save_round_trip_unet) {
    round_trip(tc, UNET, "tests/golden/unet/tiny", DT_F32, "");  // f32 file: the very same bytes
    if (!tc->failed) round_trip(tc, UNET, "tests/golden/unet/sd15", DT_F16, "");  // f16 file, 1x1-conv projections
}

DICE_TEST(weights_save_round_trip_clip) {
    round_trip(tc, CLIP, "tests/golden/clip_encoder/gelu_proj", DT_F32, "");  // f16 file
    if (!tc->failed) round_trip(tc, CLIP, "tests/golden/clip_encoder/gelu_proj", DT_F16, "");
    // saved by transformers 5 without the "text_model." prefix: saved under the canonical names
    if (!tc->failed) round_trip(tc, CLIP, "tests/golden/clip_encoder/quick", DT_F32, "text_model.");
}

// A model of golden folder `sub`'s config with PyTorch's init from `seed`, on `device` in `dtype`.
static int model_random(TestCtx *tc, Model *md, Kind kind, const char *sub, Device device, DType dtype,
                        uint64_t seed) {
    char empty[600];
    DICE_TRY(empty_file(tc, empty, sizeof empty));
    DICE_TRY(model_load(tc, md, kind, test_path(tc, sub), empty, device, dtype));
    return weights_init_pytorch(&md->m, &md->ctx, seed, &tc->err);
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

// The 1/sqrt(fan_in) bound of the module of weight or bias e (its sibling weight's shape), 0 for norms.
static double bound_of(const WeightManifest *m, const WeightEntry *e) {
    size_t module = strlen(e->name) - (has_suffix(e->name, ".bias") ? 5 : 7);
    for (int i = 0; i < m->n; i++) {
        const WeightEntry *w = &m->entries[i];
        if (strncmp(w->name, e->name, module) || strcmp(w->name + module, ".weight") || w->ndim == 1) continue;
        double fan_in = 1;
        for (int d = 1; d < w->ndim; d++) fan_in *= (double)w->shape[d];
        return 1 / sqrt(fan_in);
    }
    return 0;
}

DICE_TEST(weights_init_pytorch_statistics) {
    Model a, b, c;
    CHECK_OK(model_random(tc, &a, UNET, "tests/golden/unet/tiny", DEV_CPU, DT_F32, 7));
    int n_var = 0;
    for (int i = 0; i < a.m.n; i++) {
        const WeightEntry *e = &a.m.entries[i];
        const float *v = e->out->data;
        int64_t n = tensor_numel(e->out);
        double b_ = bound_of(&a.m, e), sq = 0;
        if (b_ == 0) {  // a norm: weight 1, bias 0
            CHECK_MSG(strstr(e->name, "norm") && e->ndim == 1, "%s: no bound", e->name);
            float want = has_suffix(e->name, ".weight") ? 1.0f : 0.0f;
            for (int64_t k = 0; k < n; k++) CHECK_MSG(v[k] == want, "%s[%lld] = %g", e->name, (long long)k, v[k]);
            continue;
        }
        for (int64_t k = 0; k < n; k++) {
            CHECK_MSG(fabsf(v[k]) <= (float)b_, "%s[%lld] = %g outside +-%g", e->name, (long long)k, v[k], b_);
            sq += (double)v[k] * v[k];
        }
        if (n >= 4096) {  // mean square of uniform(-b, b): b^2 / 3 (relative spread ~0.9 / sqrt(n))
            CHECK_MSG(fabs(sq / (double)n / (b_ * b_ / 3) - 1) < 0.06, "%s: mean square %g, want %g", e->name,
                      sq / (double)n, b_ * b_ / 3);
            n_var++;
        }
    }
    CHECK(n_var >= 5);
    CHECK_OK(model_random(tc, &b, UNET, "tests/golden/unet/tiny", DEV_CPU, DT_F32, 7));
    check_same(tc, &a, &b);
    CHECK_OK(model_random(tc, &c, UNET, "tests/golden/unet/tiny", DEV_CPU, DT_F32, 8));
    for (int i = 0; i < a.m.n; i++) {
        const WeightEntry *x = &a.m.entries[i];
        if (bound_of(&a.m, x) > 0)
            CHECK_MSG(memcmp(x->out->data, c.m.entries[i].out->data, tensor_nbytes(x->out)), "%s: seeds 7 and 8 agree",
                      x->name);
    }
    // Order independence: a manifest of one tensor gives it the same values as the whole model's manifest.
    const WeightEntry *conv = NULL;
    for (int i = 0; i < a.m.n && !conv; i++)
        if (!strcmp(a.m.entries[i].name, "down_blocks.0.resnets.0.conv1.weight")) conv = &a.m.entries[i];
    CHECK(conv && conv->ndim == 4 && conv->perm[3] == 1);
    Tensor alone;
    CHECK_OK(arena_tensor(&c.arena, &alone, DT_F32, conv->out->ndim, conv->out->shape, &tc->err));
    WeightEntry single = *conv;
    single.out = &alone;
    WeightManifest one = {&single, 1, 1};
    CHECK_OK(weights_init_pytorch(&one, &c.ctx, 7, &tc->err));
    CHECK(!memcmp(alone.data, conv->out->data, tensor_nbytes(&alone)));
    model_free(&a);
    model_free(&b);
    model_free(&c);
}

DICE_TEST(weights_init_pytorch_clip_embeddings) {
    Model md;
    CHECK_OK(model_random(tc, &md, CLIP, "tests/golden/clip_encoder/gelu_proj", DEV_CPU, DT_F32, 1));
    int found = 0;
    for (int i = 0; i < md.m.n; i++) {
        const WeightEntry *e = &md.m.entries[i];
        if (!has_suffix(e->name, "embedding.weight")) continue;
        const float *v = e->out->data;
        int64_t n = tensor_numel(e->out);
        double s = 0, sq = 0;
        for (int64_t k = 0; k < n; k++) s += v[k], sq += (double)v[k] * v[k];
        double mean = s / (double)n, sd = sqrt(sq / (double)n - mean * mean);
        CHECK_MSG(fabs(mean) < 4 / sqrt((double)n) && fabs(sd - 1) < 0.05, "%s: mean %g, sd %g",  // normal(0, 1)
                  e->name, mean, sd);
        found++;
    }
    CHECK(found == 2);  // token_embedding, position_embedding
    model_free(&md);
}

DICE_TEST(weights_init_pytorch_rejects_what_it_cannot_classify) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    float data[8] = {0};
    Tensor t;
    CHECK_OK(tensor_wrap(&t, data, DT_F32, DEV_CPU, 1, (int64_t[]){8}, &tc->err));
    WeightEntry e = {.name = "blocks.0.scale", .out = &t, .ndim = 1, .shape = {8}, .perm = {0}};
    WeightManifest m = {&e, 1, 1};
    CHECK_FAILS_WITH(weights_init_pytorch(&m, &ctx, 1, &tc->err), "blocks.0.scale [8]");
    e.name = "proj.bias";  // no proj.weight
    CHECK_FAILS_WITH(weights_init_pytorch(&m, &ctx, 1, &tc->err), "proj.bias [8] has no sibling .weight");
    e.name = "proj.weight";  // a 1-D weight that is no norm
    CHECK_FAILS_WITH(weights_init_pytorch(&m, &ctx, 1, &tc->err), "proj.weight [8]");
    for (int i = 0; i < 8; i++) CHECK(data[i] == 0);  // nothing written
}

// The names in dir other than keep.
static int stray_files(const char *dir, const char *keep) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, keep);
    closedir(d);
    return n;
}

DICE_TEST(weights_save_errors_leave_nothing_behind) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    float a[6] = {1, 2, 3, 4, 5, 6};
    Tensor ta, tb;
    CHECK_OK(tensor_wrap(&ta, a, DT_F32, DEV_CPU, 2, (int64_t[]){2, 3}, &tc->err));
    CHECK_OK(tensor_wrap(&tb, a, DT_F32, DEV_CPU, 1, (int64_t[]){6}, &tc->err));
    WeightEntry e[2] = {{.name = "l.weight", .out = &ta, .ndim = 2, .shape = {2, 3}, .perm = {0, 1}},
                        {.name = "l.bias", .out = &tb, .ndim = 1, .shape = {6}, .perm = {0}}};
    WeightManifest m = {e, 2, 2};
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/out", test_tmpdir(tc));
    CHECK_FAILS_WITH(weights_save(&m, &ctx, "/nonexistent-dir/model.safetensors", DT_F32, &tc->err),
                     "/nonexistent-dir/model.safetensors");
    // a directory in the way: the temporary file is written, the rename fails, the temporary file goes
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(!mkdir(dir, 0755) && !mkdir(path, 0755));
    CHECK_FAILS_WITH(weights_save(&m, &ctx, path, DT_F32, &tc->err), path);
    CHECK_MSG(stray_files(dir, "model.safetensors") == 0, "files left in %s", dir);
    CHECK(!rmdir(path));
    // a failure leaves an existing file as it was
    const char *key = "dice_seed", *value = "7";
    CHECK_OK(weights_save_meta(&m, &ctx, path, DT_BF16, &key, &value, 1, &tc->err));
    StFile f;
    CHECK_OK(st_open(&f, path, &tc->err));
    CHECK(f.n_tensors == 2 && f.tensors[0].dtype == DT_BF16 && !strcmp(f.tensors[0].name, "l.bias"));
    CHECK(!strcmp(st_meta(&f, "format"), "pt") && !strcmp(st_meta(&f, "dice_seed"), "7"));
    st_close(&f);
    e[1].name = "l.weight";
    CHECK_FAILS_WITH(weights_save(&m, &ctx, path, DT_F32, &tc->err), "duplicate tensor name 'l.weight'");
    CHECK_FAILS_WITH(weights_save(&m, &ctx, path, DT_I32, &tc->err), "is not f32, bf16 or f16");
    e[1].name = "l.bias";
    e[1].shape[0] = 5;  // the tensor does not hold what the entry says
    CHECK_FAILS_WITH(weights_save(&m, &ctx, path, DT_F32, &tc->err), "l.bias");
    CHECK_OK(st_open(&f, path, &tc->err));
    CHECK(f.n_tensors == 2 && f.tensors[0].dtype == DT_BF16);
    st_close(&f);
    CHECK_MSG(stray_files(dir, "model.safetensors") == 0, "files left in %s", dir);
}

// Init and save on the device give the very bytes they give on the CPU (f32 and bf16 models).
DICE_CUDA_TEST(weights_init_and_save_on_cuda_match_cpu) {
    const char *unet = "tests/golden/unet/tiny";
    Model cpu, dev;
    CHECK_OK(model_random(tc, &cpu, UNET, unet, DEV_CPU, DT_F32, 5));
    DType dtypes[2] = {DT_F32, DT_BF16};
    for (int k = 0; k < 2; k++) {
        CHECK_OK(model_random(tc, &dev, UNET, unet, DEV_CUDA, dtypes[k], 5));
        char pa[600], pb[600];
        snprintf(pa, sizeof pa, "%s/cpu.safetensors", test_tmpdir(tc));
        snprintf(pb, sizeof pb, "%s/cuda.safetensors", test_tmpdir(tc));
        CHECK_OK(weights_save(&cpu.m, &cpu.ctx, pa, dtypes[k], &tc->err));
        CHECK_OK(weights_save(&dev.m, &dev.ctx, pb, dtypes[k], &tc->err));
        StFile a, b;
        CHECK_OK(st_open(&a, pa, &tc->err));
        CHECK_OK(st_open(&b, pb, &tc->err));
        CHECK(a.file_size == b.file_size && !memcmp(a.map, b.map, a.file_size));
        st_close(&a);
        st_close(&b);
        model_free(&dev);
    }
    model_free(&cpu);
}
