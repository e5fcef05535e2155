// data/shard_read.c — the shard reader (shards.h): open and validate a shard, read row ranges and
// captions into caller buffers, verify every chunk; the UTF-8 check shared with the writer.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h5util.h"
#include "nn/dtype.h"
#include "nn/safetensors.h"
#include "shard_format.h"
#include "shards.h"

enum { R_MEAN, R_LOGVAR, R_TOKENS, R_CAPTIONS, R_IDS, R_COUNT };

static const char *const dataset_names[R_COUNT] = {SHARD_LATENT_MEAN, SHARD_LATENT_LOGVAR, SHARD_TOKEN_IDS,
                                                   SHARD_CAPTIONS, SHARD_IMAGE_IDS};
static const int dataset_ranks[R_COUNT] = {4, 4, 2, 1, 1};

struct Shard {
    char *path;
    char where[320];        // printable path, for messages
    ShardInfo info;
    hid_t file;
    hid_t ds[R_COUNT];
    hid_t half;             // memory type for a float16 log-variance
    hid_t str;              // memory type for captions (the file's string type)
    size_t caption_width;   // bytes per caption in the file
    int logvar_f16;         // latent_logvar is float16 (else float32)
};

int shard_utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int len;
        unsigned cp;
        if (c < 0x80) len = 1, cp = c;
        else if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
        else return 0;
        for (int k = 1; k < len; k++) {
            if ((p[k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (p[k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += len;
    }
    return 1;
}

// "float32", "int64", "uint8", "string", ... for messages about a wrong type.
static void type_name(hid_t type, char *buf, size_t cap) {
    H5T_class_t cls = H5Tget_class(type);
    size_t bits = H5Tget_size(type) * 8;
    switch (cls) {
    case H5T_FLOAT: snprintf(buf, cap, "float%zu", bits); break;
    case H5T_INTEGER: snprintf(buf, cap, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits); break;
    case H5T_STRING: snprintf(buf, cap, "%s string", H5Tis_variable_str(type) > 0 ? "variable-length" : "fixed-length"); break;
    case H5T_COMPOUND: snprintf(buf, cap, "compound"); break;
    case H5T_ENUM: snprintf(buf, cap, "enum"); break;
    case H5T_ARRAY: snprintf(buf, cap, "array"); break;
    case H5T_VLEN: snprintf(buf, cap, "variable-length sequence"); break;
    case H5T_OPAQUE: snprintf(buf, cap, "opaque"); break;
    case H5T_REFERENCE: snprintf(buf, cap, "reference"); break;
    case H5T_BITFIELD: snprintf(buf, cap, "bitfield"); break;
    default: snprintf(buf, cap, "an unknown type"); break;
    }
}

// Whether a 2-byte float type is IEEE binary16 (any byte order).
static int is_ieee_half(hid_t type) {
    size_t spos, epos, esize, mpos, msize;
    if (H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) < 0) return 0;
    return spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 && H5Tget_ebias(type) == 15;
}

// Opens dataset i, checks that it is a dataset of the right type and rank, and returns its shape.
static int open_dataset(Shard *s, int i, hsize_t dims[4], DiceError *err) {
    int rc = -1;
    const char *name = dataset_names[i];
    hid_t obj = -1, dapl = -1, type = -1, space = -1;
    char tname[64];
    htri_t exists;
    H5_TRY_SET(err, s->where, exists, H5Lexists(s->file, name, H5P_DEFAULT));
    H5_CHECK(err, exists > 0, "%s: dataset '%s' is missing", s->where, name);
    H5_TRY_SET(err, s->where, obj, H5Oopen(s->file, name, H5P_DEFAULT));
    H5I_type_t kind;
    H5_TRY_SET(err, s->where, kind, H5Iget_type(obj));
    H5_CHECK(err, kind == H5I_DATASET, "%s: '%s' is not a dataset", s->where, name);
    h5_close_id(obj);
    obj = -1;
    // Rows are read at random, one chunk each: HDF5's chunk cache would only hold memory.
    H5_TRY_SET(err, s->where, dapl, H5Pcreate(H5P_DATASET_ACCESS));
    H5_TRY(err, s->where, H5Pset_chunk_cache(dapl, 0, 0, H5D_CHUNK_CACHE_W0_DEFAULT));
    H5_TRY_SET(err, s->where, s->ds[i], H5Dopen2(s->file, name, dapl));
    H5_TRY_SET(err, s->where, type, H5Dget_type(s->ds[i]));
    H5T_class_t cls;
    size_t size;
    H5_TRY_SET(err, s->where, cls, H5Tget_class(type));
    H5_CHECK(err, (size = H5Tget_size(type)) > 0, "%s: '%s' has a type of size 0", s->where, name);
    type_name(type, tname, sizeof tname);
    switch (i) {
    case R_MEAN:
        H5_CHECK(err, cls == H5T_FLOAT && size == 4, "%s: '%s' is %s, expected float32", s->where, name, tname);
        break;
    case R_LOGVAR:
        H5_CHECK(err, cls == H5T_FLOAT && (size == 4 || (size == 2 && is_ieee_half(type))),
                 "%s: '%s' is %s, expected float16 or float32", s->where, name, tname);
        s->logvar_f16 = size == 2;
        break;
    case R_TOKENS:
    case R_IDS: {
        size_t want = i == R_TOKENS ? 4 : 8;
        H5T_sign_t sign;
        H5_CHECK(err, cls == H5T_INTEGER, "%s: '%s' is %s, expected int%zu", s->where, name, tname, want * 8);
        H5_TRY_SET(err, s->where, sign, H5Tget_sign(type));
        H5_CHECK(err, size == want && sign == H5T_SGN_2, "%s: '%s' is %s, expected int%zu", s->where, name, tname,
                 want * 8);
        break;
    }
    case R_CAPTIONS: {
        htri_t variable;
        H5T_str_t pad;
        H5_CHECK(err, cls == H5T_STRING, "%s: '%s' is %s, expected fixed-length UTF-8 strings", s->where, name,
                 tname);
        H5_TRY_SET(err, s->where, variable, H5Tis_variable_str(type));
        H5_CHECK(err, !variable, "%s: '%s' holds variable-length strings; shards store fixed-length UTF-8 strings "
                 "(h5py.string_dtype('utf-8', length=...))", s->where, name);
        H5_TRY_SET(err, s->where, pad, H5Tget_strpad(type));
        H5_CHECK(err, pad == H5T_STR_NULLPAD || pad == H5T_STR_NULLTERM, "%s: '%s' strings are space-padded, "
                 "expected NUL padding", s->where, name);
        H5_CHECK(err, size <= SHARD_CAPTION_MAX, "%s: '%s' strings are %zu bytes wide, the limit is %d", s->where,
                 name, size, SHARD_CAPTION_MAX);
        s->caption_width = size;
        H5_TRY_SET(err, s->where, s->str, H5Tcopy(type));
        break;
    }
    }
    H5_TRY_SET(err, s->where, space, H5Dget_space(s->ds[i]));
    int rank;
    H5_TRY_SET(err, s->where, rank, H5Sget_simple_extent_ndims(space));
    H5_CHECK(err, rank == dataset_ranks[i], "%s: '%s' has %d dimensions, expected %d", s->where, name, rank,
             dataset_ranks[i]);
    H5_TRY(err, s->where, H5Sget_simple_extent_dims(space, dims, NULL));
    rc = 0;
fail:
    h5_close_id(space);
    h5_close_id(type);
    h5_close_id(dapl);
    h5_close_id(obj);
    return rc;
}

static int read_attributes(Shard *s, DiceError *err) {
    ShardInfo *in = &s->info;
    int64_t version;
    char layout[16];
    DICE_TRY(h5_read_attr_i64(s->file, SHARD_ATTR_VERSION, &version, s->where, err));
    DICE_CHECK(err, version == SHARD_FORMAT_VERSION, "%s: shard format version %lld is not supported (this "
               "program reads version %d)", s->where, (long long)version, SHARD_FORMAT_VERSION);
    DICE_TRY(h5_read_attr_str(s->file, SHARD_ATTR_LAYOUT, layout, sizeof layout, s->where, err));
    DICE_CHECK(err, strcmp(layout, SHARD_LAYOUT) == 0, "%s: latent layout '%s' is not supported (expected %s)",
               s->where, layout, SHARD_LAYOUT);
    DICE_TRY(h5_read_attr_str(s->file, SHARD_ATTR_MODEL, in->model, sizeof in->model, s->where, err));
    DICE_TRY(h5_read_attr_str(s->file, SHARD_ATTR_CREATED_BY, in->created_by, sizeof in->created_by, s->where,
                              err));
    DICE_TRY(h5_read_attr_i64(s->file, SHARD_ATTR_IMAGE_SIZE, &in->image_size, s->where, err));
    DICE_CHECK(err, in->image_size > 0, "%s: image_size %lld must be positive", s->where,
               (long long)in->image_size);
    DICE_TRY(h5_read_attr_f64(s->file, SHARD_ATTR_SCALING, &in->scaling_factor, s->where, err));
    DICE_CHECK(err, isfinite(in->scaling_factor) && in->scaling_factor > 0,
               "%s: scaling_factor %g must be positive", s->where, in->scaling_factor);
    return 0;
}

static int shard_open_impl(Shard *s, const char *path, DiceError *err) {
    int rc = -1;
    hid_t fapl = -1;
    hsize_t dims[R_COUNT][4];
    struct stat st;
    H5_CHECK(err, stat(path, &st) == 0, "%s: cannot open: %s", s->where, strerror(errno));
    H5_CHECK(err, S_ISREG(st.st_mode), "%s: not a regular file", s->where);
    H5_TRY_SET(err, s->where, fapl, h5_file_access());
    H5_TRY_SET(err, s->where, s->file, H5Fopen(path, H5F_ACC_RDONLY, fapl));
    if (read_attributes(s, err)) goto fail;
    for (int i = 0; i < R_COUNT; i++)
        if (open_dataset(s, i, dims[i], err)) goto fail;
    hsize_t n = dims[R_MEAN][0];
    H5_CHECK(err, n > 0, "%s: the shard has no rows", s->where);
    H5_CHECK(err, n <= ((hsize_t)1 << 40), "%s: %llu rows is not a plausible shard", s->where, (unsigned long long)n);
    for (int i = 1; i < R_COUNT; i++)
        H5_CHECK(err, dims[i][0] == n, "%s: '%s' has %llu rows but '%s' has %llu", s->where, dataset_names[i],
                 (unsigned long long)dims[i][0], dataset_names[R_MEAN], (unsigned long long)n);
    for (int d = 1; d < 4; d++)
        H5_CHECK(err, dims[R_LOGVAR][d] == dims[R_MEAN][d],
                 "%s: '%s' has shape (%llu, %llu, %llu, %llu) but '%s' has (%llu, %llu, %llu, %llu)", s->where,
                 dataset_names[R_LOGVAR], (unsigned long long)n, (unsigned long long)dims[R_LOGVAR][1],
                 (unsigned long long)dims[R_LOGVAR][2], (unsigned long long)dims[R_LOGVAR][3],
                 dataset_names[R_MEAN], (unsigned long long)n, (unsigned long long)dims[R_MEAN][1],
                 (unsigned long long)dims[R_MEAN][2], (unsigned long long)dims[R_MEAN][3]);
    hsize_t h = dims[R_MEAN][1], w = dims[R_MEAN][2], c = dims[R_MEAN][3], L = dims[R_TOKENS][1];
    H5_CHECK(err, h > 0 && w > 0 && c > 0 && h <= 4096 && w <= 4096 && c <= 4096 && h * w * c <= (1u << 24),
             "%s: latent shape (%llu, %llu, %llu) must be positive and at most 2^24 elements", s->where,
             (unsigned long long)h, (unsigned long long)w, (unsigned long long)c);
    H5_CHECK(err, L > 0 && L <= (1u << 20), "%s: token sequence length %llu", s->where, (unsigned long long)L);
    s->info.n_rows = (int64_t)n;
    s->info.latent_h = (int64_t)h;
    s->info.latent_w = (int64_t)w;
    s->info.latent_c = (int64_t)c;
    s->info.seq_len = (int64_t)L;
    H5_TRY_SET(err, s->where, s->half, h5_half_type());
    rc = 0;
fail:
    h5_close_id(fapl);
    return rc;
}

int shard_open(Shard **out, const char *path, DiceError *err) {
    *out = NULL;
    Shard *s = calloc(1, sizeof *s);
    DICE_CHECK(err, s, "%s: out of memory", path);
    s->file = s->half = s->str = -1;
    for (int i = 0; i < R_COUNT; i++) s->ds[i] = -1;
    st_printable(s->where, sizeof s->where, path);
    s->path = strdup(path);
    h5_silence();
    int rc = s->path ? shard_open_impl(s, path, err) : DICE_FAIL(err, "%s: out of memory", s->where);
    if (rc) {
        shard_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void shard_close(Shard *s) {
    if (!s) return;
    h5_silence();
    for (int i = 0; i < R_COUNT; i++) h5_close_id(s->ds[i]);
    h5_close_id(s->half);
    h5_close_id(s->str);
    h5_close_id(s->file);
    free(s->path);
    free(s);
}

const ShardInfo *shard_info(const Shard *s) { return &s->info; }
const char *shard_path(const Shard *s) { return s->path; }

// ---------------------------------------------------------------- reading rows

// Rows row0 .. row0+n-1 of dataset i into buf, as memory type mtype.
static int read_rows(Shard *s, int i, int64_t row0, int64_t n, hid_t mtype, void *buf, DiceError *err) {
    int rc = -1;
    hid_t fspace = -1, mspace = -1;
    char where[420];
    snprintf(where, sizeof where, "%s: '%s' rows %lld..%lld", s->where, dataset_names[i], (long long)row0,
             (long long)(row0 + n - 1));
    hsize_t start[4] = {(hsize_t)row0}, count[4] = {(hsize_t)n};
    const int64_t row_dims[R_COUNT][3] = {{s->info.latent_h, s->info.latent_w, s->info.latent_c},
                                          {s->info.latent_h, s->info.latent_w, s->info.latent_c},
                                          {s->info.seq_len}};
    for (int d = 1; d < dataset_ranks[i]; d++) count[d] = (hsize_t)row_dims[i][d - 1];
    H5_TRY_SET(err, where, fspace, H5Dget_space(s->ds[i]));
    H5_TRY(err, where, H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL));
    H5_TRY_SET(err, where, mspace, H5Screate_simple(dataset_ranks[i], count, NULL));
    H5_TRY(err, where, H5Dread(s->ds[i], mtype, mspace, fspace, H5P_DEFAULT, buf));
    rc = 0;
fail:
    h5_close_id(mspace);
    h5_close_id(fspace);
    return rc;
}

static int read_logvar(Shard *s, int64_t row0, int64_t n, float *out, DiceError *err) {
    if (!s->logvar_f16) return read_rows(s, R_LOGVAR, row0, n, H5T_NATIVE_FLOAT, out, err);
    size_t count = (size_t)(n * s->info.latent_h * s->info.latent_w * s->info.latent_c);
    uint16_t *half = malloc(count * sizeof *half);
    DICE_CHECK(err, half, "%s: out of memory", s->where);
    int rc = read_rows(s, R_LOGVAR, row0, n, s->half, half, err);
    for (size_t k = 0; !rc && k < count; k++) out[k] = dice_f16_to_f32(half[k]);
    free(half);
    return rc;
}

static int check_range(const Shard *s, int64_t row0, int64_t n, DiceError *err) {
    DICE_CHECK(err, n >= 1 && row0 >= 0 && row0 <= s->info.n_rows - n, "%s: rows %lld..%lld are outside the "
               "shard's %lld rows", s->where, (long long)row0, (long long)(row0 + n - 1), (long long)s->info.n_rows);
    return 0;
}

static int shard_read_impl(Shard *s, int64_t row0, int64_t n, const ShardRows *out, DiceError *err) {
    DICE_TRY(check_range(s, row0, n, err));
    if (out->latent_mean) DICE_TRY(read_rows(s, R_MEAN, row0, n, H5T_NATIVE_FLOAT, out->latent_mean, err));
    if (out->latent_logvar) DICE_TRY(read_logvar(s, row0, n, out->latent_logvar, err));
    if (out->token_ids) DICE_TRY(read_rows(s, R_TOKENS, row0, n, H5T_NATIVE_INT32, out->token_ids, err));
    if (out->image_ids) DICE_TRY(read_rows(s, R_IDS, row0, n, H5T_NATIVE_INT64, out->image_ids, err));
    return 0;
}

int shard_read(Shard *s, int64_t row0, int64_t n, const ShardRows *out, DiceError *err) {
    h5_silence();
    int rc = shard_read_impl(s, row0, n, out, err);
    return rc;
}

// Captions of rows row0 .. row0+n-1: checks each is valid UTF-8; with copy (n == 1), the caption is
// returned as a malloc'd string.
static int read_captions(Shard *s, int64_t row0, int64_t n, char **copy, DiceError *err) {
    size_t width = s->caption_width;
    char *text = malloc((size_t)n * width + 1);
    DICE_CHECK(err, text, "%s: out of memory", s->where);
    int rc = read_rows(s, R_CAPTIONS, row0, n, s->str, text, err);
    for (int64_t k = n - 1; !rc && k >= 0; k--) {  // backwards: each NUL written ends the row before it
        char *row = text + (size_t)k * width;
        row[strnlen(row, width)] = '\0';
        if (!shard_utf8_valid(row))
            rc = DICE_FAIL(err, "%s: the caption of row %lld is not valid UTF-8", s->where, (long long)(row0 + k));
    }
    if (!rc && copy) {
        *copy = strdup(text);
        if (!*copy) rc = DICE_FAIL(err, "%s: out of memory", s->where);
    }
    free(text);
    return rc;
}

int shard_read_caption(Shard *s, int64_t row, char **caption, DiceError *err) {
    *caption = NULL;
    h5_silence();
    int rc = check_range(s, row, 1, err);
    if (!rc) rc = read_captions(s, row, 1, caption, err);
    return rc;
}

// ---------------------------------------------------------------- verification

static int shard_verify_impl(Shard *s, DiceError *err) {
    const ShardInfo *in = &s->info;
    int64_t per_row = in->latent_h * in->latent_w * in->latent_c, block = SHARD_SMALL_CHUNK;
    float *mean = malloc((size_t)(block * per_row) * sizeof *mean);
    float *logvar = malloc((size_t)(block * per_row) * sizeof *logvar);
    int32_t *tokens = malloc((size_t)(block * in->seq_len) * sizeof *tokens);
    int64_t *ids = malloc((size_t)block * sizeof *ids);
    int rc = (mean && logvar && tokens && ids) ? 0 : DICE_FAIL(err, "%s: out of memory", s->where);
    for (int64_t row0 = 0; !rc && row0 < in->n_rows; row0 += block) {
        int64_t n = in->n_rows - row0 < block ? in->n_rows - row0 : block;
        ShardRows out = {mean, logvar, tokens, ids};
        rc = shard_read_impl(s, row0, n, &out, err);
        if (!rc) rc = read_captions(s, row0, n, NULL, err);
        for (int64_t k = 0; !rc && k < n * per_row; k++)
            if (!isfinite(mean[k]) || !isfinite(logvar[k]))
                rc = DICE_FAIL(err, "%s: row %lld: the latent holds a NaN or Inf", s->where,
                               (long long)(row0 + k / per_row));
        for (int64_t k = 0; !rc && k < n * in->seq_len; k++)
            if (tokens[k] < 0)
                rc = DICE_FAIL(err, "%s: row %lld: negative token id %d", s->where,
                               (long long)(row0 + k / in->seq_len), tokens[k]);
    }
    free(mean);
    free(logvar);
    free(tokens);
    free(ids);
    return rc;
}

int shard_verify(Shard *s, DiceError *err) {
    h5_silence();
    int rc = shard_verify_impl(s, err);
    return rc;
}
