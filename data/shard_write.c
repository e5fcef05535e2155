// data/shard_write.c — the shard writer (shards.h): a temporary HDF5 file with extendible, chunked,
// compressed datasets, one row appended at a time (captions kept until the end, when their width is
// known), renamed into place when closed.
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"
#include "nn/dtype.h"
#include "nn/safetensors.h"
#include "shard_format.h"
#include "shards.h"

enum { W_MEAN, W_LOGVAR, W_TOKENS, W_CAPTIONS, W_IDS, W_COUNT };

struct ShardWriter {
    char *path, *tmp;
    char where[320];        // printable temporary path, for messages
    ShardInfo info;
    hid_t file;
    hid_t ds[W_COUNT];
    hid_t half;             // file/memory type of latent_logvar
    int64_t n;              // rows appended
    uint16_t *half_buf;     // (h * w * c,) one row of float16 log-variance
    char **captions;        // (n,) copies, written by shard_writer_close
    int64_t captions_cap;
    size_t caption_width;   // bytes of the longest caption
};

// Everything that makes a writer unusable or would give readers a shard they refuse.
static int check_info(const ShardInfo *info, const char *where, DiceError *err) {
    DICE_CHECK(err, info->latent_h > 0 && info->latent_w > 0 && info->latent_c > 0 && info->latent_h <= 4096 &&
                        info->latent_w <= 4096 && info->latent_c <= 4096 &&
                        info->latent_h * info->latent_w * info->latent_c <= (1 << 24),
               "%s: latent shape (%lld, %lld, %lld) must be positive and at most 2^24 elements", where,
               (long long)info->latent_h, (long long)info->latent_w, (long long)info->latent_c);
    DICE_CHECK(err, info->seq_len > 0 && info->seq_len <= (1 << 20), "%s: token sequence length %lld",
               where, (long long)info->seq_len);
    DICE_CHECK(err, info->image_size > 0, "%s: image size %lld must be positive", where,
               (long long)info->image_size);
    DICE_CHECK(err, isfinite(info->scaling_factor) && info->scaling_factor > 0,
               "%s: scaling factor %g must be positive", where, info->scaling_factor);
    DICE_CHECK(err, memchr(info->model, 0, sizeof info->model) && info->model[0],
               "%s: the model name must be a non-empty string", where);
    DICE_CHECK(err, memchr(info->created_by, 0, sizeof info->created_by) && info->created_by[0],
               "%s: created_by must be a non-empty string", where);
    DICE_CHECK(err, shard_utf8_valid(info->model) && shard_utf8_valid(info->created_by),
               "%s: the model name and created_by must be UTF-8", where);
    return 0;
}

// An empty dataset (0, row...) growing along N, chunked chunk_rows rows at a time, with the shuffle,
// deflate and Fletcher-32 filters.
static int create_dataset(ShardWriter *w, int slot, const char *name, hid_t type, int rank, const hsize_t *row,
                          hsize_t chunk_rows, DiceError *err) {
    int rc = -1;
    hid_t space = -1, dcpl = -1;
    hsize_t dims[4] = {0}, maxdims[4] = {H5S_UNLIMITED}, chunk[4] = {chunk_rows};
    for (int d = 1; d < rank; d++) dims[d] = maxdims[d] = chunk[d] = row[d - 1];
    H5_TRY_SET(err, w->where, space, H5Screate_simple(rank, dims, maxdims));
    H5_TRY_SET(err, w->where, dcpl, H5Pcreate(H5P_DATASET_CREATE));
    H5_TRY(err, w->where, H5Pset_chunk(dcpl, rank, chunk));
    H5_TRY(err, w->where, H5Pset_shuffle(dcpl));
    H5_TRY(err, w->where, H5Pset_deflate(dcpl, SHARD_GZIP_LEVEL));
    H5_TRY(err, w->where, H5Pset_fletcher32(dcpl));
    H5_TRY_SET(err, w->where, w->ds[slot], H5Dcreate2(w->file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    rc = 0;
fail:
    h5_close_id(dcpl);
    h5_close_id(space);
    return rc;
}

static int check_filters(const char *where, DiceError *err) {
    static const H5Z_filter_t filters[] = {H5Z_FILTER_SHUFFLE, H5Z_FILTER_DEFLATE, H5Z_FILTER_FLETCHER32};
    static const char *const names[] = {"shuffle", "deflate", "fletcher32"};
    for (int i = 0; i < 3; i++) {
        htri_t avail;
        H5_TRY_SET(err, where, avail, H5Zfilter_avail(filters[i]));
        H5_CHECK(err, avail > 0, "%s: this HDF5 library lacks the %s filter", where, names[i]);
    }
    return 0;
fail:
    return -1;
}

// Creates the file, its attributes and empty datasets.
static int writer_create(ShardWriter *w, DiceError *err) {
    int rc = -1;
    hid_t fapl = -1;
    const ShardInfo *in = &w->info;
    if (check_filters(w->where, err)) return -1;
    H5_TRY_SET(err, w->where, fapl, h5_file_access());
    H5_TRY_SET(err, w->where, w->file, H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl));
    if (h5_write_attr_i64(w->file, SHARD_ATTR_VERSION, SHARD_FORMAT_VERSION, w->where, err) ||
        h5_write_attr_str(w->file, SHARD_ATTR_LAYOUT, SHARD_LAYOUT, w->where, err) ||
        h5_write_attr_str(w->file, SHARD_ATTR_MODEL, in->model, w->where, err) ||
        h5_write_attr_i64(w->file, SHARD_ATTR_IMAGE_SIZE, in->image_size, w->where, err) ||
        h5_write_attr_f64(w->file, SHARD_ATTR_SCALING, in->scaling_factor, w->where, err) ||
        h5_write_attr_str(w->file, SHARD_ATTR_CREATED_BY, in->created_by, w->where, err))
        goto fail;
    H5_TRY_SET(err, w->where, w->half, h5_half_type());
    hsize_t latent[3] = {(hsize_t)in->latent_h, (hsize_t)in->latent_w, (hsize_t)in->latent_c};
    hsize_t tokens[1] = {(hsize_t)in->seq_len};
    if (create_dataset(w, W_MEAN, SHARD_LATENT_MEAN, H5T_IEEE_F32LE, 4, latent, 1, err) ||
        create_dataset(w, W_LOGVAR, SHARD_LATENT_LOGVAR, w->half, 4, latent, 1, err) ||
        create_dataset(w, W_TOKENS, SHARD_TOKEN_IDS, H5T_STD_I32LE, 2, tokens, SHARD_SMALL_CHUNK, err) ||
        create_dataset(w, W_IDS, SHARD_IMAGE_IDS, H5T_STD_I64LE, 1, NULL, SHARD_SMALL_CHUNK, err))
        goto fail;
    rc = 0;
fail:
    h5_close_id(fapl);
    return rc;
}

// Closes every identifier the writer holds; with check, a failing close (which is where HDF5 writes
// cached chunks and metadata) is an error.
static int writer_close_ids(ShardWriter *w, int check, DiceError *err) {
    int rc = -1;
    for (int i = 0; i < W_COUNT; i++) {
        hid_t id = w->ds[i];
        w->ds[i] = -1;
        if (check && id >= 0) H5_TRY(err, w->where, H5Dclose(id));
        else h5_close_id(id);
    }
    h5_close_id(w->half);
    w->half = -1;
    hid_t file = w->file;
    w->file = -1;
    if (check && file >= 0) H5_TRY(err, w->where, H5Fclose(file));
    else h5_close_id(file);
    rc = 0;
fail:
    return rc;
}

static void writer_free(ShardWriter *w) {
    free(w->path);
    free(w->tmp);
    free(w->half_buf);
    for (int64_t i = 0; i < w->n; i++) free(w->captions[i]);
    free(w->captions);
    free(w);
}

static int writer_open(ShardWriter *w, const char *path, const ShardInfo *info, DiceError *err) {
    st_printable(w->where, sizeof w->where, path);
    DICE_TRY(check_info(info, w->where, err));
    w->info = *info;
    w->info.n_rows = 0;
    size_t cap = strlen(path) + 32;
    w->path = strdup(path);
    w->tmp = malloc(cap);
    w->half_buf = malloc((size_t)(info->latent_h * info->latent_w * info->latent_c) * sizeof *w->half_buf);
    DICE_CHECK(err, w->path && w->tmp && w->half_buf, "%s: out of memory", w->where);
    snprintf(w->tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    st_printable(w->where, sizeof w->where, w->tmp);
    return writer_create(w, err);
}

int shard_writer_open(ShardWriter **out, const char *path, const ShardInfo *info, DiceError *err) {
    *out = NULL;
    ShardWriter *w = calloc(1, sizeof *w);
    DICE_CHECK(err, w, "%s: out of memory", path);
    w->file = w->half = -1;
    for (int i = 0; i < W_COUNT; i++) w->ds[i] = -1;
    h5_silence();
    int rc = writer_open(w, path, info, err);
    if (rc) {
        shard_writer_abort(w);
        return -1;
    }
    *out = w;
    return 0;
}

// Grows dataset ds to n + 1 rows and writes row n from buf (memory type mtype).
static int append_row(ShardWriter *w, hid_t ds, const char *name, hid_t mtype, const void *buf, DiceError *err) {
    int rc = -1;
    hid_t fspace = -1, mspace = -1;
    hsize_t dims[4], start[4] = {(hsize_t)w->n}, count[4];
    int rank;
    H5_TRY_SET(err, w->where, fspace, H5Dget_space(ds));
    H5_TRY_SET(err, w->where, rank, H5Sget_simple_extent_dims(fspace, dims, NULL));
    H5_CHECK(err, rank >= 1 && rank <= 4 && dims[0] == (hsize_t)w->n, "%s: %s has %llu rows, expected %lld",
             w->where, name, (unsigned long long)dims[0], (long long)w->n);
    h5_close_id(fspace);
    fspace = -1;
    dims[0] = (hsize_t)w->n + 1;
    H5_TRY(err, w->where, H5Dset_extent(ds, dims));
    count[0] = 1;
    for (int d = 1; d < rank; d++) start[d] = 0, count[d] = dims[d];
    H5_TRY_SET(err, w->where, fspace, H5Dget_space(ds));
    H5_TRY(err, w->where, H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL));
    H5_TRY_SET(err, w->where, mspace, H5Screate_simple(rank, count, NULL));
    H5_TRY(err, w->where, H5Dwrite(ds, mtype, mspace, fspace, H5P_DEFAULT, buf));
    rc = 0;
fail:
    h5_close_id(mspace);
    h5_close_id(fspace);
    return rc;
}

static int writer_append(ShardWriter *w, const ShardRowIn *row, DiceError *err) {
    const ShardInfo *in = &w->info;
    int64_t n_lat = in->latent_h * in->latent_w * in->latent_c;
    DICE_CHECK(err, row->latent_mean && row->latent_logvar && row->token_ids && row->caption,
               "%s: row %lld: every field must be given", w->where, (long long)w->n);
    for (int64_t i = 0; i < n_lat; i++) {
        DICE_CHECK(err, isfinite(row->latent_mean[i]) && isfinite(row->latent_logvar[i]),
                   "%s: row %lld (image %lld): the latent holds a NaN or Inf at element %lld", w->where,
                   (long long)w->n, (long long)row->image_id, (long long)i);
        w->half_buf[i] = dice_f32_to_f16(row->latent_logvar[i]);
    }
    for (int64_t i = 0; i < in->seq_len; i++)
        DICE_CHECK(err, row->token_ids[i] >= 0, "%s: row %lld: token id %d at position %lld is negative",
                   w->where, (long long)w->n, row->token_ids[i], (long long)i);
    DICE_CHECK(err, shard_utf8_valid(row->caption), "%s: row %lld (image %lld): the caption is not valid UTF-8",
               w->where, (long long)w->n, (long long)row->image_id);
    size_t len = strlen(row->caption);
    DICE_CHECK(err, len <= SHARD_CAPTION_MAX, "%s: row %lld (image %lld): the caption is %zu bytes long, the "
               "limit is %d", w->where, (long long)w->n, (long long)row->image_id, len, SHARD_CAPTION_MAX);
    if (w->n == w->captions_cap) {
        int64_t cap = w->captions_cap ? 2 * w->captions_cap : 256;
        char **grown = realloc(w->captions, (size_t)cap * sizeof *grown);
        DICE_CHECK(err, grown, "%s: out of memory", w->where);
        w->captions = grown;
        w->captions_cap = cap;
    }
    char *caption = strdup(row->caption);
    DICE_CHECK(err, caption, "%s: out of memory", w->where);
    if (append_row(w, w->ds[W_MEAN], SHARD_LATENT_MEAN, H5T_NATIVE_FLOAT, row->latent_mean, err) ||
        append_row(w, w->ds[W_LOGVAR], SHARD_LATENT_LOGVAR, w->half, w->half_buf, err) ||
        append_row(w, w->ds[W_TOKENS], SHARD_TOKEN_IDS, H5T_NATIVE_INT32, row->token_ids, err) ||
        append_row(w, w->ds[W_IDS], SHARD_IMAGE_IDS, H5T_NATIVE_INT64, &row->image_id, err)) {
        free(caption);
        return -1;
    }
    w->captions[w->n++] = caption;
    if (len > w->caption_width) w->caption_width = len;
    return 0;
}

int shard_writer_append(ShardWriter *w, const ShardRowIn *row, DiceError *err) {
    h5_silence();
    return writer_append(w, row, err);
}

// fsync a file, or the directory holding it, so data and rename survive a crash.
static int sync_path(const char *path, int parent, const char *where, DiceError *err) {
    char *copy = strdup(path);
    DICE_CHECK(err, copy, "%s: out of memory", where);
    int fd = open(parent ? dirname(copy) : copy, O_RDONLY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0 || fsync(fd) != 0) rc = DICE_FAIL(err, "%s: fsync failed: %s", where, strerror(errno));
    if (fd >= 0) close(fd);
    free(copy);
    return rc;
}

// The captions dataset: (n,) fixed-length UTF-8 strings as wide as the longest caption (at least one
// byte), NUL-padded, chunked and filtered like the others.
static int write_captions(ShardWriter *w, DiceError *err) {
    int rc = -1;
    hid_t type = -1;
    size_t width = w->caption_width ? w->caption_width : 1;
    char *text = calloc((size_t)w->n, width);
    DICE_CHECK(err, text, "%s: out of memory", w->where);
    for (int64_t i = 0; i < w->n; i++) memcpy(text + (size_t)i * width, w->captions[i], strlen(w->captions[i]));
    H5_TRY_SET(err, w->where, type, H5Tcopy(H5T_C_S1));
    H5_TRY(err, w->where, H5Tset_size(type, width));
    H5_TRY(err, w->where, H5Tset_cset(type, H5T_CSET_UTF8));
    H5_TRY(err, w->where, H5Tset_strpad(type, H5T_STR_NULLPAD));
    if (create_dataset(w, W_CAPTIONS, SHARD_CAPTIONS, type, 1, NULL, SHARD_SMALL_CHUNK, err)) goto fail;
    hsize_t dims[1] = {(hsize_t)w->n};
    H5_TRY(err, w->where, H5Dset_extent(w->ds[W_CAPTIONS], dims));
    H5_TRY(err, w->where, H5Dwrite(w->ds[W_CAPTIONS], type, H5S_ALL, H5S_ALL, H5P_DEFAULT, text));
    rc = 0;
fail:
    h5_close_id(type);
    free(text);
    return rc;
}

static int writer_commit(ShardWriter *w, DiceError *err) {
    DICE_CHECK(err, w->n > 0, "%s: no rows were appended; an empty shard is not written", w->where);
    DICE_TRY(write_captions(w, err));
    DICE_TRY(writer_close_ids(w, 1, err));
    DICE_TRY(sync_path(w->tmp, 0, w->where, err));
    DICE_CHECK(err, rename(w->tmp, w->path) == 0, "%s: cannot rename it to its final name: %s", w->where,
               strerror(errno));
    return sync_path(w->path, 1, w->where, err);
}

int shard_writer_close(ShardWriter *w, DiceError *err) {
    h5_silence();
    int rc = writer_commit(w, err);
    if (rc) {
        shard_writer_abort(w);
        return -1;
    }
    writer_free(w);
    return 0;
}

void shard_writer_abort(ShardWriter *w) {
    if (!w) return;
    h5_silence();
    writer_close_ids(w, 0, NULL);
    if (w->tmp) unlink(w->tmp);
    writer_free(w);
}
