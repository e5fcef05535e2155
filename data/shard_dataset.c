// data/shard_dataset.c — a dataset is a directory of shards (shards.h): listing shard_NNNNN.h5 in
// numeric order, opening and cross-checking every shard, and global row indexing.
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/safetensors.h"
#include "shards.h"

typedef struct ShardName {
    long long number;
    char *name;
} ShardName;

// The shard number of "shard_<digits>.h5" with at least five digits; -1 for any other name.
static long long shard_number(const char *name) {
    if (strncmp(name, "shard_", 6) != 0) return -1;
    const char *p = name + 6;
    long long v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (v > 100000000) return -1;
        v = v * 10 + (*p - '0');
    }
    return (digits >= 5 && strcmp(p, ".h5") == 0) ? v : -1;
}

static int by_number(const void *a, const void *b) {
    const ShardName *x = a, *y = b;
    return (x->number > y->number) - (x->number < y->number);
}

// The shard names of dir, sorted by number.
static int list_shards(const char *dir, const char *where, ShardName **out, int *count, DiceError *err) {
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    DICE_CHECK(err, d, "%s: cannot open the dataset directory: %s", where, strerror(errno));
    ShardName *names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        long long number = shard_number(e->d_name);
        if (number < 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            ShardName *grown = realloc(names, (size_t)cap * sizeof *grown);
            if (!grown) {
                rc = DICE_FAIL(err, "%s: out of memory", where);
                break;
            }
            names = grown;
        }
        names[n].number = number;
        names[n].name = strdup(e->d_name);
        if (!names[n++].name) rc = DICE_FAIL(err, "%s: out of memory", where);
    }
    closedir(d);
    if (!rc && n > 1) qsort(names, (size_t)n, sizeof *names, by_number);
    *out = names;
    *count = n;
    return rc;
}

static void free_names(ShardName *names, int n) {
    for (int i = 0; i < n; i++) free(names[i].name);
    free(names);
}

// Shard k must agree with shard 0 on shapes and on every attribute but created_by.
static int check_agrees(const ShardDataset *ds, int k, DiceError *err) {
    const ShardInfo *a = shard_info(ds->shards[0]), *b = shard_info(ds->shards[k]);
    const char *pa = shard_path(ds->shards[0]), *pb = shard_path(ds->shards[k]);
    DICE_CHECK(err, a->latent_h == b->latent_h && a->latent_w == b->latent_w && a->latent_c == b->latent_c,
               "%s: latent shape (%lld, %lld, %lld) differs from %s's (%lld, %lld, %lld)", pb,
               (long long)b->latent_h, (long long)b->latent_w, (long long)b->latent_c, pa, (long long)a->latent_h,
               (long long)a->latent_w, (long long)a->latent_c);
    DICE_CHECK(err, a->seq_len == b->seq_len, "%s: token sequence length %lld differs from %s's %lld", pb,
               (long long)b->seq_len, pa, (long long)a->seq_len);
    DICE_CHECK(err, a->image_size == b->image_size, "%s: image size %lld differs from %s's %lld", pb,
               (long long)b->image_size, pa, (long long)a->image_size);
    DICE_CHECK(err, a->scaling_factor == b->scaling_factor, "%s: scaling factor %.9g differs from %s's %.9g", pb,
               b->scaling_factor, pa, a->scaling_factor);
    DICE_CHECK(err, strcmp(a->model, b->model) == 0, "%s: model '%s' differs from %s's '%s'", pb, b->model, pa,
               a->model);
    return 0;
}

static int dataset_open_impl(ShardDataset *ds, const char *dir, const char *where, DiceError *err) {
    ShardName *names = NULL;
    int n = 0, rc = list_shards(dir, where, &names, &n, err);
    if (!rc && n == 0) rc = DICE_FAIL(err, "%s: no shards (shard_00000.h5, ...) in the dataset directory", where);
    for (int k = 0; !rc && k < n; k++)
        if (names[k].number != k)
            rc = k > 0 && names[k].number == names[k - 1].number
                     ? DICE_FAIL(err, "%s: %s and %s have the same number", where, names[k - 1].name, names[k].name)
                     : DICE_FAIL(err, "%s: shard number %d is missing (the next one is %s)", where, k, names[k].name);
    if (!rc) {
        ds->dir = strdup(dir);
        ds->shards = calloc((size_t)n, sizeof *ds->shards);
        ds->start = calloc((size_t)n + 1, sizeof *ds->start);
        if (!ds->dir || !ds->shards || !ds->start) rc = DICE_FAIL(err, "%s: out of memory", where);
    }
    size_t cap = strlen(dir) + 64;
    char *path = rc ? NULL : malloc(cap);
    if (!rc && !path) rc = DICE_FAIL(err, "%s: out of memory", where);
    for (int k = 0; !rc && k < n; k++) {
        snprintf(path, cap, "%s/%s", dir, names[k].name);
        rc = shard_open(&ds->shards[k], path, err);
        if (!rc) {
            ds->n_shards = k + 1;
            rc = check_agrees(ds, k, err);
            ds->start[k + 1] = ds->start[k] + shard_info(ds->shards[k])->n_rows;
        }
    }
    if (!rc) {
        ds->n_rows = ds->start[n];
        ds->info = *shard_info(ds->shards[0]);
        ds->info.n_rows = ds->n_rows;
    }
    free(path);
    free_names(names, n);
    return rc;
}

int dataset_open(ShardDataset *ds, const char *dir, DiceError *err) {
    memset(ds, 0, sizeof *ds);
    char where[320];
    st_printable(where, sizeof where, dir);
    if (dataset_open_impl(ds, dir, where, err)) {
        dataset_close(ds);
        return -1;
    }
    return 0;
}

void dataset_close(ShardDataset *ds) {
    for (int k = 0; k < ds->n_shards; k++) shard_close(ds->shards[k]);
    free(ds->shards);
    free(ds->start);
    free(ds->dir);
    memset(ds, 0, sizeof *ds);
}

int dataset_locate(const ShardDataset *ds, int64_t global, int *shard, int64_t *row, DiceError *err) {
    DICE_CHECK(err, global >= 0 && global < ds->n_rows, "%s: row %lld is outside the dataset's %lld rows", ds->dir,
               (long long)global, (long long)ds->n_rows);
    int lo = 0, hi = ds->n_shards - 1;  // the last shard k with start[k] <= global
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (ds->start[mid] <= global) lo = mid;
        else hi = mid - 1;
    }
    *shard = lo;
    *row = global - ds->start[lo];
    return 0;
}

int dataset_read(ShardDataset *ds, const int64_t *rows, int64_t n, const ShardRows *out, DiceError *err) {
    const ShardInfo *in = &ds->info;
    int64_t per_latent = in->latent_h * in->latent_w * in->latent_c;
    for (int64_t k = 0; k < n; k++) {
        int shard;
        int64_t row;
        DICE_TRY(dataset_locate(ds, rows[k], &shard, &row, err));
        ShardRows slot = {
            out->latent_mean ? out->latent_mean + k * per_latent : NULL,
            out->latent_logvar ? out->latent_logvar + k * per_latent : NULL,
            out->token_ids ? out->token_ids + k * in->seq_len : NULL,
            out->image_ids ? out->image_ids + k : NULL,
        };
        DICE_TRY(shard_read(ds->shards[shard], row, 1, &slot, err));
    }
    return 0;
}
