// tests/test_shards.c — HDF5 training shards (data/shards.h): round trips through the writer and
// reader, the golden shard written by h5py, atomic writes, damaged files (truncated, flipped bytes), each
// giving a one-line error naming the shard and nothing on stderr; datasets of shards. Shards crafted with the
// HDF5 API to get one thing wrong: tests/test_shards_crafted.c.
//
// The rows hold a test pattern computed from the row's number g (the same formulas as in
// scripts/golden_shards.py, which checks C-written shards with h5py: run the round trip with
// DICE_SHARDS_KEEP=DIR to keep its shards in DIR).
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/shards.h"
#include "nn/dtype.h"
#include "test.h"
#include "tests/shards_checks.h"

#define GOLDEN "tests/golden/shards_h5py.h5"
#define PATTERN_MODEL "test-pattern"

// ---------------------------------------------------------------- the test pattern

static int64_t pattern_id(int64_t g) { return 1000000000007ll + 3 * g; }

static void pattern_row(int64_t g, int64_t n_lat, int64_t seq_len, float *mean, float *logvar, int32_t *tokens,
                        char *caption, size_t cap) {
    for (int64_t k = 0; k < n_lat; k++) {
        mean[k] = (float)(((131 * g + 7 * k) % 2048 - 1024) / 8.0);
        logvar[k] = (float)(((17 * g + 3 * k) % 64 - 40) / 2.0);
    }
    for (int64_t p = 0; p < seq_len; p++) tokens[p] = (int32_t)((31 * g + 5 * p) % 49408);
    snprintf(caption, cap, "row %lld: a photo of a cat%s", (long long)g,
             g % 2 ? " \xe2\x98\x95 caf\xc3\xa9" : "");
}

static ShardInfo pattern_info(int64_t h, int64_t w, int64_t c, int64_t seq_len) {
    ShardInfo info = {0};
    info.latent_h = h;
    info.latent_w = w;
    info.latent_c = c;
    info.seq_len = seq_len;
    info.image_size = 8 * h;
    info.scaling_factor = 0.18215;
    snprintf(info.model, sizeof info.model, "%s", PATTERN_MODEL);
    snprintf(info.created_by, sizeof info.created_by, "tests/test_shards.c");
    return info;
}

static int64_t n_latent(const ShardInfo *in) { return in->latent_h * in->latent_w * in->latent_c; }

// Writes rows g0 .. g0+n-1 of the pattern to path; fills tc->err on failure.
static int write_pattern(TestCtx *tc, const char *path, const ShardInfo *info, int64_t g0, int64_t n) {
    int64_t nl = n_latent(info);
    float *mean = malloc((size_t)nl * sizeof *mean), *logvar = malloc((size_t)nl * sizeof *logvar);
    int32_t *tokens = malloc((size_t)info->seq_len * sizeof *tokens);
    char caption[128];
    ShardWriter *w = NULL;
    int rc = (mean && logvar && tokens) ? 0 : DICE_FAIL(&tc->err, "out of memory");
    if (!rc) rc = shard_writer_open(&w, path, info, &tc->err);
    for (int64_t g = g0; !rc && g < g0 + n; g++) {
        pattern_row(g, nl, info->seq_len, mean, logvar, tokens, caption, sizeof caption);
        ShardRowIn row = {mean, logvar, tokens, caption, pattern_id(g)};
        rc = shard_writer_append(w, &row, &tc->err);
    }
    if (!rc) rc = shard_writer_close(w, &tc->err);
    else shard_writer_abort(w);
    free(mean);
    free(logvar);
    free(tokens);
    return rc;
}

// Checks rows row0 .. row0+n-1 of s hold the pattern rows g0 ...: one range read, then row by row
// with only some buffers, then the captions.
static void check_pattern(TestCtx *tc, Shard *s, int64_t row0, int64_t n, int64_t g0) {
    const ShardInfo *in = shard_info(s);
    int64_t nl = n_latent(in), L = in->seq_len;
    float *mean = malloc((size_t)(n * nl) * sizeof *mean), *logvar = malloc((size_t)(n * nl) * sizeof *logvar);
    float *want_mean = malloc((size_t)nl * sizeof *want_mean), *want_logvar = malloc((size_t)nl * sizeof *want_logvar);
    int32_t *tokens = malloc((size_t)(n * L) * sizeof *tokens), *want_tokens = malloc((size_t)L * sizeof *tokens);
    int64_t *ids = malloc((size_t)n * sizeof *ids);
    char want_caption[128], *caption = NULL;
    CHECK(mean && logvar && want_mean && want_logvar && tokens && want_tokens && ids);
    ShardRows all = {mean, logvar, tokens, ids};
    CHECK_OK(shard_read(s, row0, n, &all, &tc->err));
    for (int64_t i = 0; i < n; i++) {
        pattern_row(g0 + i, nl, L, want_mean, want_logvar, want_tokens, want_caption, sizeof want_caption);
        CHECK_MSG(memcmp(mean + i * nl, want_mean, (size_t)nl * sizeof *mean) == 0, "row %lld: latent_mean",
                  (long long)(row0 + i));
        CHECK_MSG(memcmp(logvar + i * nl, want_logvar, (size_t)nl * sizeof *logvar) == 0, "row %lld: latent_logvar",
                  (long long)(row0 + i));
        CHECK_MSG(memcmp(tokens + i * L, want_tokens, (size_t)L * sizeof *tokens) == 0, "row %lld: token_ids",
                  (long long)(row0 + i));
        CHECK_MSG(ids[i] == pattern_id(g0 + i), "row %lld: image id %lld", (long long)(row0 + i), (long long)ids[i]);
        int32_t one_token[4096];
        int64_t one_id = 0;
        ShardRows some = {NULL, NULL, one_token, &one_id};
        CHECK(L <= 4096);
        CHECK_OK(shard_read(s, row0 + i, 1, &some, &tc->err));
        CHECK(memcmp(one_token, want_tokens, (size_t)L * sizeof *tokens) == 0 && one_id == pattern_id(g0 + i));
        CHECK_OK(shard_read_caption(s, row0 + i, &caption, &tc->err));
        CHECK_MSG(strcmp(caption, want_caption) == 0, "row %lld: caption '%s', expected '%s'", (long long)(row0 + i),
                  caption, want_caption);
        free(caption);
    }
    free(mean);
    free(logvar);
    free(want_mean);
    free(want_logvar);
    free(tokens);
    free(want_tokens);
    free(ids);
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// ---------------------------------------------------------------- round trips

DICE_TEST(shards_round_trip) {
    char dir[512], p0[600], p1[600];
    snprintf(dir, sizeof dir, "%s/ds", test_tmpdir(tc));
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(p0, sizeof p0, "%s/shard_00000.h5", dir);
    snprintf(p1, sizeof p1, "%s/shard_00001.h5", dir);
    ShardInfo info = pattern_info(3, 5, 4, 7);
    // 3 rows, then 70: the second crosses a 64-row chunk of the small datasets.
    CHECK_OK(write_pattern(tc, p0, &info, 0, 3));
    CHECK_OK(write_pattern(tc, p1, &info, 3, 70));

    Shard *s = NULL;
    CHECK_OK(shard_open(&s, p1, &tc->err));
    const ShardInfo *in = shard_info(s);
    CHECK(in->n_rows == 70 && in->latent_h == 3 && in->latent_w == 5 && in->latent_c == 4 && in->seq_len == 7);
    CHECK(in->image_size == 24 && in->scaling_factor == 0.18215);
    CHECK(strcmp(in->model, PATTERN_MODEL) == 0 && strcmp(in->created_by, "tests/test_shards.c") == 0);
    CHECK(strcmp(shard_path(s), p1) == 0);
    check_pattern(tc, s, 0, 70, 3);
    if (tc->failed) return;
    check_pattern(tc, s, 61, 5, 64);  // a range across the chunk boundary
    if (tc->failed) return;
    CHECK_OK(shard_verify(s, &tc->err));
    CHECK_FAILS_WITH(shard_read(s, 68, 3, &(ShardRows){0}, &tc->err), "outside the shard's 70 rows");
    CHECK_FAILS_WITH(shard_read(s, -1, 1, &(ShardRows){0}, &tc->err), "outside");
    char *caption = (char *)1;
    CHECK_FAILS_WITH(shard_read_caption(s, 70, &caption, &tc->err), "outside");
    CHECK(caption == NULL);
    shard_close(s);

    ShardDataset ds;
    CHECK_OK(dataset_open(&ds, dir, &tc->err));
    CHECK(ds.n_shards == 2 && ds.n_rows == 73 && ds.info.n_rows == 73 && ds.info.latent_w == 5);
    check_pattern(tc, ds.shards[0], 0, 3, 0);
    if (tc->failed) return;
    // Every global row, in a scrambled order with repeats, through dataset_read.
    int64_t rows[80], nl = n_latent(&ds.info);
    for (int k = 0; k < 80; k++) rows[k] = (k * 37 + 5) % 73;
    float *mean = malloc(80 * (size_t)nl * sizeof *mean), *logvar = malloc(80 * (size_t)nl * sizeof *logvar);
    float *want_mean = malloc((size_t)nl * sizeof *mean), *want_logvar = malloc((size_t)nl * sizeof *mean);
    int32_t tokens[80 * 7], want_tokens[7];
    int64_t ids[80];
    char want_caption[128];
    CHECK(mean && logvar && want_mean && want_logvar);
    CHECK_OK(dataset_read(&ds, rows, 80, &(ShardRows){mean, logvar, tokens, ids}, &tc->err));
    for (int k = 0; k < 80; k++) {
        pattern_row(rows[k], nl, 7, want_mean, want_logvar, want_tokens, want_caption, sizeof want_caption);
        CHECK_MSG(memcmp(mean + k * nl, want_mean, (size_t)nl * sizeof *mean) == 0 &&
                      memcmp(logvar + k * nl, want_logvar, (size_t)nl * sizeof *mean) == 0 &&
                      memcmp(tokens + k * 7, want_tokens, sizeof want_tokens) == 0 && ids[k] == pattern_id(rows[k]),
                  "slot %d (global row %lld)", k, (long long)rows[k]);
    }
    free(mean);
    free(logvar);
    free(want_mean);
    free(want_logvar);
    dataset_close(&ds);

    // For scripts/golden_shards.py check: keep the C-written shards.
    const char *keep = getenv("DICE_SHARDS_KEEP");
    if (keep) {
        char cmd[2000];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s' '%s'", keep, p0, p1, keep);
        CHECK(system(cmd) == 0);
    }
}

// h5py's float16 rounds to nearest even like dice_f32_to_f16: values that are not exact in float16
// come back as the float16 nearest to them.
DICE_TEST(shards_logvar_is_float16) {
    char path[512];
    shard_test_path(tc, path, sizeof path, "shard_00000.h5");
    ShardInfo info = pattern_info(1, 1, 4, 1);
    float mean[4] = {0}, logvar[4] = {0.1f, -17.3f, 1e-6f, 19.99f}, back[4];
    int32_t token = 0;
    ShardWriter *w;
    CHECK_OK(shard_writer_open(&w, path, &info, &tc->err));
    CHECK_OK(shard_writer_append(w, &(ShardRowIn){mean, logvar, &token, "", 1}, &tc->err));
    CHECK_OK(shard_writer_close(w, &tc->err));
    Shard *s;
    CHECK_OK(shard_open(&s, path, &tc->err));
    CHECK_OK(shard_read(s, 0, 1, &(ShardRows){.latent_logvar = back}, &tc->err));
    for (int k = 0; k < 4; k++) {
        CHECK(back[k] == dice_f16_to_f32(dice_f32_to_f16(logvar[k])));
        CHECK_NEAR(back[k], logvar[k], fabs(logvar[k]) * 0x1p-11 + 1e-7);
    }
    char *caption;
    CHECK_OK(shard_read_caption(s, 0, &caption, &tc->err));
    CHECK(strcmp(caption, "") == 0);
    free(caption);
    shard_close(s);
}

DICE_TEST(shards_golden_h5py) {
    Shard *s;
    CHECK_OK(shard_open(&s, test_path(tc, GOLDEN), &tc->err));
    const ShardInfo *in = shard_info(s);
    CHECK(in->n_rows == 3 && in->latent_h == 2 && in->latent_w == 3 && in->latent_c == 4 && in->seq_len == 5);
    CHECK(in->image_size == 16 && in->scaling_factor == 0.18215 && strcmp(in->model, PATTERN_MODEL) == 0);
    CHECK(strncmp(in->created_by, "scripts/golden_shards.py", 24) == 0);
    check_pattern(tc, s, 0, 3, 0);
    if (tc->failed) return;
    CHECK_OK(shard_verify(s, &tc->err));
    shard_close(s);
}

// ---------------------------------------------------------------- writing is atomic

DICE_TEST(shards_writer_is_atomic) {
    char path[512], tmp[600];
    shard_test_path(tc, path, sizeof path, "shard_00000.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    ShardInfo info = pattern_info(2, 2, 3, 4);
    float mean[12], logvar[12];
    int32_t tokens[4];
    char caption[128];
    pattern_row(0, 12, 4, mean, logvar, tokens, caption, sizeof caption);
    ShardRowIn row = {mean, logvar, tokens, caption, pattern_id(0)};

    ShardWriter *w;
    CHECK_OK(shard_writer_open(&w, path, &info, &tc->err));
    CHECK_OK(shard_writer_append(w, &row, &tc->err));
    CHECK(file_exists(tmp) && !file_exists(path));   // in progress: only the temporary file
    shard_writer_abort(w);
    CHECK(!file_exists(tmp) && !file_exists(path));  // aborted: nothing

    CHECK_OK(shard_writer_open(&w, path, &info, &tc->err));
    CHECK_FAILS_WITH(shard_writer_close(w, &tc->err), "no rows were appended");
    CHECK(!file_exists(tmp) && !file_exists(path));  // an empty shard is not written

    CHECK_OK(shard_writer_open(&w, path, &info, &tc->err));
    CHECK_OK(shard_writer_append(w, &row, &tc->err));
    CHECK_OK(shard_writer_close(w, &tc->err));
    CHECK(!file_exists(tmp) && file_exists(path));
    shard_writer_abort(NULL);
}

DICE_TEST(shards_writer_rejects_bad_input) {
    char path[512], tmp[600], serr[600];
    shard_test_path(tc, path, sizeof path, "shard_00000.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int saved = shard_stderr_begin(tc, serr, sizeof serr);
    CHECK(saved >= 0);
    ShardInfo info = pattern_info(2, 2, 3, 4);
    ShardWriter *w = (ShardWriter *)1;
    ShardInfo bad = info;
    bad.latent_c = 0;
    CHECK_FAILS_WITH(shard_writer_open(&w, path, &bad, &tc->err), "latent shape (2, 2, 0)");
    CHECK(w == NULL);
    bad = info;
    bad.model[0] = '\0';
    CHECK_FAILS_WITH(shard_writer_open(&w, path, &bad, &tc->err), "model name");
    bad = info;
    bad.scaling_factor = NAN;
    CHECK_FAILS_WITH(shard_writer_open(&w, path, &bad, &tc->err), "scaling factor");
    bad = info;
    bad.seq_len = 0;
    CHECK_FAILS_WITH(shard_writer_open(&w, path, &bad, &tc->err), "sequence length");
    char nodir[600];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/shard_00000.h5", test_tmpdir(tc));
    CHECK_FAILS_WITH(shard_writer_open(&w, nodir, &info, &tc->err), "H5Fcreate");
    CHECK(strstr(tc->err.msg, "no/such/dir") && !strchr(tc->err.msg, '\n'));

    float mean[12], logvar[12];
    int32_t tokens[4];
    char caption[128];
    pattern_row(0, 12, 4, mean, logvar, tokens, caption, sizeof caption);
    CHECK_OK(shard_writer_open(&w, path, &info, &tc->err));
    mean[5] = NAN;
    CHECK_FAILS_WITH(shard_writer_append(w, &(ShardRowIn){mean, logvar, tokens, caption, 9}, &tc->err),
                     "row 0 (image 9): the latent holds a NaN or Inf at element 5");
    mean[5] = 0;
    logvar[0] = INFINITY;
    CHECK_FAILS_WITH(shard_writer_append(w, &(ShardRowIn){mean, logvar, tokens, caption, 9}, &tc->err), "NaN or Inf");
    logvar[0] = 0;
    tokens[2] = -1;
    CHECK_FAILS_WITH(shard_writer_append(w, &(ShardRowIn){mean, logvar, tokens, caption, 9}, &tc->err),
                     "token id -1 at position 2 is negative");
    tokens[2] = 0;
    CHECK_FAILS_WITH(shard_writer_append(w, &(ShardRowIn){mean, logvar, tokens, "caf\xe9", 9}, &tc->err),
                     "not valid UTF-8");
    CHECK_FAILS_WITH(shard_writer_append(w, &(ShardRowIn){mean, logvar, tokens, NULL, 9}, &tc->err),
                     "every field must be given");
    CHECK_OK(shard_writer_append(w, &(ShardRowIn){mean, logvar, tokens, caption, 9}, &tc->err));
    CHECK_OK(shard_writer_close(w, &tc->err));
    Shard *s;
    CHECK_OK(shard_open(&s, path, &tc->err));
    CHECK(shard_info(s)->n_rows == 1);  // the rejected rows left nothing behind
    shard_close(s);
    shard_stderr_end(tc, saved, serr);
}

// ---------------------------------------------------------------- damaged files

// Copies the first `bytes` bytes of src to dst.
static int copy_prefix(const char *src, const char *dst, long bytes) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    int rc = (in && out) ? 0 : -1;
    for (long k = 0; !rc && k < bytes; k++) {
        int c = fgetc(in);
        if (c == EOF || fputc(c, out) == EOF) rc = -1;
    }
    if (in) fclose(in);
    if (out && fclose(out) != 0) rc = -1;
    return rc;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

// XORs the byte at offset with mask.
static int flip_byte(const char *path, long offset, int mask) {
    FILE *fp = fopen(path, "r+b");
    if (!fp) return -1;
    int rc = fseek(fp, offset, SEEK_SET);
    int c = rc ? EOF : fgetc(fp);
    if (c == EOF || fseek(fp, offset, SEEK_SET) != 0 || fputc(c ^ mask, fp) == EOF) rc = -1;
    return (fclose(fp) == 0 && rc == 0) ? 0 : -1;
}

// A pattern shard of n rows at tmpdir/name.
static int make_shard(TestCtx *tc, char *path, size_t cap, const char *name, int64_t n) {
    shard_test_path(tc, path, cap, name);
    ShardInfo info = pattern_info(4, 4, 4, 6);
    return write_pattern(tc, path, &info, 0, n);
}

DICE_TEST(shards_truncated) {
    char good[512], cut[512], serr[600];
    int saved = shard_stderr_begin(tc, serr, sizeof serr);
    CHECK(saved >= 0);
    CHECK_OK(make_shard(tc, good, sizeof good, "good.h5", 20));
    shard_test_path(tc, cut, sizeof cut, "cut.h5");
    long size = file_size(good);
    long lengths[] = {size / 2, size - 1, size * 9 / 10, 100, 8, 0};
    for (int i = 0; i < 6; i++) {
        CHECK(copy_prefix(good, cut, lengths[i]) == 0);
        shard_check_open_fails(tc, cut, lengths[i] > 100 ? "truncated file" : "H5Fopen");
        if (tc->failed) return;
    }
    shard_stderr_end(tc, saved, serr);
}

// The file address and size of chunk `index` of a dataset (read with the HDF5 API directly).
static int chunk_location(const char *path, const char *dataset, hsize_t index, long *addr, long *size) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f >= 0 ? H5Dopen2(f, dataset, H5P_DEFAULT) : -1;
    hid_t space = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t offset[4], chunk_size = 0;
    haddr_t a = 0;
    unsigned mask;
    int rc = (space >= 0 && H5Dget_chunk_info(d, space, index, offset, &mask, &a, &chunk_size) >= 0) ? 0 : -1;
    if (space >= 0) H5Sclose(space);
    if (d >= 0) H5Dclose(d);
    if (f >= 0) H5Fclose(f);
    *addr = (long)a;
    *size = (long)chunk_size;
    return rc;
}

// A flipped byte in a latent's compressed chunk: the shard opens (its metadata is intact), the damaged
// row fails to read with HDF5's checksum message, the other rows still read, and verification fails.
DICE_TEST(shards_flipped_data_byte) {
    char path[512], serr[600];
    int saved = shard_stderr_begin(tc, serr, sizeof serr);
    CHECK(saved >= 0);
    CHECK_OK(make_shard(tc, path, sizeof path, "shard.h5", 5));
    const char *names[] = {"latent_mean", "latent_logvar", "token_ids", "image_ids"};
    for (int i = 0; i < 4; i++) {
        char copy[512];
        shard_test_path(tc, copy, sizeof copy, "flipped.h5");
        CHECK(copy_prefix(path, copy, file_size(path)) == 0);
        long addr, size;
        CHECK(chunk_location(copy, names[i], i < 2 ? 2 : 0, &addr, &size) == 0 && size > 4);
        CHECK(flip_byte(copy, addr + size / 2, 0x10) == 0);
        Shard *s;
        CHECK_OK(shard_open(&s, copy, &tc->err));
        float mean[5 * 64], logvar[5 * 64];
        int32_t tokens[5 * 6];
        int64_t ids[5];
        ShardRows all = {mean, logvar, tokens, ids};
        CHECK_FAILS_WITH(shard_read(s, 0, 5, &all, &tc->err), names[i]);
        CHECK_MSG(strstr(tc->err.msg, copy) && strstr(tc->err.msg, "H5Dread") && !strchr(tc->err.msg, '\n'),
                  "message: %s", tc->err.msg);
        if (i < 2) {
            CHECK_FAILS_WITH(shard_read(s, 2, 1, &all, &tc->err), "rows 2..2");
            CHECK_OK(shard_read(s, 3, 2, &all, &tc->err));  // other rows are in other chunks
        }
        CHECK_FAILS_WITH(shard_verify(s, &tc->err), names[i]);
        shard_close(s);
    }
    shard_stderr_end(tc, saved, serr);
}

// Random bit flips anywhere in a shard: opening and verifying it either fails with a one-line message
// naming it, or succeeds and every row still holds the pattern (the flip hit bytes nothing reads).
// Never a crash, never anything on stderr.
DICE_TEST(shards_random_flips) {
    char path[512], copy[512], serr[600];
    int saved = shard_stderr_begin(tc, serr, sizeof serr);
    CHECK(saved >= 0);
    CHECK_OK(make_shard(tc, path, sizeof path, "shard.h5", 9));
    shard_test_path(tc, copy, sizeof copy, "flipped.h5");
    long size = file_size(path);
    uint64_t rng = tc->seed;
    int failed = 0;
    for (int trial = 0; trial < 150; trial++) {
        CHECK(copy_prefix(path, copy, size) == 0);
        int flips = 1 + (int)(test_rand_u64(&rng) % 3);
        long where[3];
        for (int f = 0; f < flips; f++) {
            where[f] = (long)(test_rand_u64(&rng) % (uint64_t)size);
            CHECK(flip_byte(copy, where[f], 1 << (test_rand_u64(&rng) % 8)) == 0);
        }
        Shard *s = NULL;
        dice_error_clear(&tc->err);
        if (shard_open(&s, copy, &tc->err) == 0 && shard_verify(s, &tc->err) == 0) {
            check_pattern(tc, s, 0, 9, 0);
            if (tc->failed) {
                snprintf(tc->message + strlen(tc->message), sizeof tc->message - strlen(tc->message),
                         " (trial %d, %d flips, first at byte %ld)", trial, flips, where[0]);
                return;
            }
        } else {
            failed++;
            CHECK_MSG(strstr(tc->err.msg, copy) && !strchr(tc->err.msg, '\n'), "trial %d: message '%s'", trial,
                      tc->err.msg);
        }
        shard_close(s);
    }
    CHECK(failed > 100);  // most bytes of a shard are checked data or metadata
    shard_stderr_end(tc, saved, serr);
}


// ---------------------------------------------------------------- datasets

// dir/name holding pattern rows g0 .. g0+n-1 with the given latent channels and model.
static int dataset_shard(TestCtx *tc, const char *dir, const char *name, int64_t g0, int64_t n, int64_t c,
                         const char *model) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ShardInfo info = pattern_info(2, 3, c, 5);
    snprintf(info.model, sizeof info.model, "%s", model);
    return write_pattern(tc, path, &info, g0, n);
}

static void make_dir(TestCtx *tc, char *dir, size_t cap, const char *name) {
    snprintf(dir, cap, "%s/%s", test_tmpdir(tc), name);
    CHECK(mkdir(dir, 0755) == 0);
}

static int touch(const char *dir, const char *name) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    return fp && fclose(fp) == 0 ? 0 : -1;
}

DICE_TEST(shards_dataset_index) {
    char dir[512];
    make_dir(tc, dir, sizeof dir, "ds");
    if (tc->failed) return;
    CHECK_OK(dataset_shard(tc, dir, "shard_00000.h5", 0, 5, 4, PATTERN_MODEL));
    CHECK_OK(dataset_shard(tc, dir, "shard_00001.h5", 5, 1, 4, PATTERN_MODEL));
    CHECK_OK(dataset_shard(tc, dir, "shard_00002.h5", 6, 9, 4, PATTERN_MODEL));
    // Not shards: ignored.
    CHECK(touch(dir, "README.txt") == 0 && touch(dir, "shard_00003.h5.tmp.123") == 0 &&
          touch(dir, "shard_12.h5") == 0 && touch(dir, "shard_00004.h5x") == 0);
    ShardDataset ds;
    CHECK_OK(dataset_open(&ds, dir, &tc->err));
    CHECK(ds.n_shards == 3 && ds.n_rows == 15 && ds.info.n_rows == 15 && ds.info.latent_c == 4);
    CHECK(ds.start[0] == 0 && ds.start[1] == 5 && ds.start[2] == 6 && ds.start[3] == 15);
    const int want_shard[15] = {0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2};
    for (int64_t g = 0; g < 15; g++) {
        int shard = -1;
        int64_t row = -1;
        CHECK_OK(dataset_locate(&ds, g, &shard, &row, &tc->err));
        CHECK_MSG(shard == want_shard[g] && row == g - ds.start[shard], "row %lld -> (%d, %lld)", (long long)g, shard,
                  (long long)row);
    }
    int shard;
    int64_t row;
    CHECK_FAILS_WITH(dataset_locate(&ds, 15, &shard, &row, &tc->err), "row 15 is outside the dataset's 15 rows");
    CHECK_FAILS_WITH(dataset_locate(&ds, -1, &shard, &row, &tc->err), "outside");
    int64_t rows[15], ids[15];
    for (int k = 0; k < 15; k++) rows[k] = 14 - k;
    CHECK_OK(dataset_read(&ds, rows, 15, &(ShardRows){.image_ids = ids}, &tc->err));
    for (int k = 0; k < 15; k++) CHECK(ids[k] == pattern_id(14 - k));
    rows[3] = 99;
    CHECK_FAILS_WITH(dataset_read(&ds, rows, 15, &(ShardRows){.image_ids = ids}, &tc->err), "row 99");
    dataset_close(&ds);
    CHECK(ds.shards == NULL && ds.n_shards == 0);
    dataset_close(&ds);  // safe twice
}

DICE_TEST(shards_dataset_errors) {
    char dir[512], serr[600];
    int saved = shard_stderr_begin(tc, serr, sizeof serr);
    CHECK(saved >= 0);
    ShardDataset ds;
    make_dir(tc, dir, sizeof dir, "empty");
    CHECK_FAILS_WITH(dataset_open(&ds, dir, &tc->err), "no shards");
    CHECK(ds.shards == NULL && ds.n_shards == 0);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none", test_tmpdir(tc));
    CHECK_FAILS_WITH(dataset_open(&ds, missing, &tc->err), "cannot open the dataset directory");

    make_dir(tc, dir, sizeof dir, "gap");
    CHECK_OK(dataset_shard(tc, dir, "shard_00000.h5", 0, 2, 4, PATTERN_MODEL));
    CHECK_OK(dataset_shard(tc, dir, "shard_00002.h5", 2, 2, 4, PATTERN_MODEL));
    CHECK_FAILS_WITH(dataset_open(&ds, dir, &tc->err), "shard number 1 is missing (the next one is shard_00002.h5)");

    make_dir(tc, dir, sizeof dir, "twice");
    CHECK_OK(dataset_shard(tc, dir, "shard_00000.h5", 0, 2, 4, PATTERN_MODEL));
    CHECK_OK(dataset_shard(tc, dir, "shard_000000.h5", 0, 2, 4, PATTERN_MODEL));
    CHECK_FAILS_WITH(dataset_open(&ds, dir, &tc->err), "have the same number");

    make_dir(tc, dir, sizeof dir, "shape");
    CHECK_OK(dataset_shard(tc, dir, "shard_00000.h5", 0, 2, 4, PATTERN_MODEL));
    CHECK_OK(dataset_shard(tc, dir, "shard_00001.h5", 2, 2, 8, PATTERN_MODEL));
    CHECK_FAILS_WITH(dataset_open(&ds, dir, &tc->err), "shard_00001.h5: latent shape (2, 3, 8) differs from");
    CHECK(ds.shards == NULL && ds.n_shards == 0);

    make_dir(tc, dir, sizeof dir, "model");
    CHECK_OK(dataset_shard(tc, dir, "shard_00000.h5", 0, 2, 4, PATTERN_MODEL));
    CHECK_OK(dataset_shard(tc, dir, "shard_00001.h5", 2, 2, 4, "another-model"));
    CHECK_FAILS_WITH(dataset_open(&ds, dir, &tc->err), "shard_00001.h5: model 'another-model' differs from");

    make_dir(tc, dir, sizeof dir, "damaged");
    CHECK_OK(dataset_shard(tc, dir, "shard_00000.h5", 0, 2, 4, PATTERN_MODEL));
    CHECK_OK(dataset_shard(tc, dir, "shard_00001.h5", 2, 2, 4, PATTERN_MODEL));
    CHECK_OK(dataset_shard(tc, dir, "shard_00002.h5", 4, 2, 4, PATTERN_MODEL));
    char p1[700], cut[700];
    snprintf(p1, sizeof p1, "%s/shard_00001.h5", dir);
    snprintf(cut, sizeof cut, "%s/cut.h5", dir);
    CHECK(copy_prefix(p1, cut, file_size(p1) / 2) == 0 && rename(cut, p1) == 0);
    CHECK_FAILS_WITH(dataset_open(&ds, dir, &tc->err), "shard_00001.h5: H5Fopen");
    CHECK(strstr(tc->err.msg, "truncated file"));
    shard_stderr_end(tc, saved, serr);
}
