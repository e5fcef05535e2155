// tests/test_shards_crafted.c — shards written with the HDF5 API directly, each getting one thing wrong
// (missing datasets or attributes, wrong dtypes, ranks and shapes, empty shards, unsupported versions, files
// that are not shards): shard_open must refuse each with a one-line error naming the file, printing nothing
// on stderr (HDF5's own error stack included). The baseline crafted shard opens.
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/shards.h"
#include "tests/shards_checks.h"

// What to get wrong in a crafted shard (zero fields: as the format says). Values are all zero, captions
// "x"; the latent is (2, 2, 3), 4 tokens, 2 rows.
typedef struct Craft {
    const char *skip_dataset, *skip_attr;
    const char *group_instead;     // a group of this name instead of the dataset
    hid_t mean_type, logvar_type, token_type, id_type, caption_type;
    int vlen_captions, space_padded;
    int zero_rows;                 // every dataset with 0 rows
    hsize_t rows[5];               // rows of latent_mean, latent_logvar, token_ids, captions, image_ids
    hsize_t logvar_c;              // channels of latent_logvar
    int token_rank;
    int64_t version;
    const char *layout;
    int scaling_as_string;
} Craft;

static int craft_dataset(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims, const Craft *c) {
    if (c->skip_dataset && strcmp(c->skip_dataset, name) == 0) return 0;
    if (c->group_instead && strcmp(c->group_instead, name) == 0) {
        hid_t g = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        return g >= 0 && H5Gclose(g) >= 0 ? 0 : -1;
    }
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t count = 1;
    for (int k = 0; k < rank; k++) count *= dims[k];
    size_t bytes = (size_t)count * H5Tget_size(type) + 1;
    char *buf = calloc(bytes, 1);
    int rc = (space >= 0 && d >= 0 && buf) ? 0 : -1;
    if (!rc && H5Tget_class(type) == H5T_STRING) {
        if (H5Tis_variable_str(type) > 0)
            for (hsize_t k = 0; k < count; k++) ((const char **)(void *)buf)[k] = "x";
        else
            for (hsize_t k = 0; k < count; k++) buf[k * H5Tget_size(type)] = 'x';
    }
    if (!rc && count > 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) rc = -1;
    free(buf);
    if (d >= 0) H5Dclose(d);
    if (space >= 0) H5Sclose(space);
    return rc;
}

static int craft_attr(hid_t file, const char *name, hid_t type, const void *value, const Craft *c) {
    if (c->skip_attr && strcmp(c->skip_attr, name) == 0) return 0;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, type, value) >= 0) ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return rc;
}

static int craft_str_attr(hid_t file, const char *name, const char *value, const Craft *c) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    int rc = craft_attr(file, name, t, &value, c);
    H5Tclose(t);
    return rc;
}

static int craft_shard(const char *path, const Craft *c) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return -1;
    int64_t version = c->version ? c->version : 1, image_size = 16;
    double scaling = 0.18215;
    hid_t half = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(half, 15, 10, 5, 0, 10);
    H5Tset_size(half, 2);
    H5Tset_ebias(half, 15);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, c->vlen_captions ? H5T_VARIABLE : 8);
    H5Tset_cset(str, H5T_CSET_UTF8);
    H5Tset_strpad(str, c->space_padded ? H5T_STR_SPACEPAD : H5T_STR_NULLPAD);
    hsize_t rows[5];
    for (int k = 0; k < 5; k++) rows[k] = c->zero_rows ? 0 : c->rows[k] ? c->rows[k] : 2;
    hsize_t mean_dims[4] = {rows[0], 2, 2, 3}, logvar_dims[4] = {rows[1], 2, 2, c->logvar_c ? c->logvar_c : 3};
    hsize_t token_dims[2] = {rows[2], 4}, caption_dims[1] = {rows[3]}, id_dims[1] = {rows[4]};
    int rc = craft_attr(f, "format_version", H5T_NATIVE_INT64, &version, c) ||
             craft_str_attr(f, "latent_layout", c->layout ? c->layout : "NHWC", c) ||
             craft_str_attr(f, "model", "crafted", c) || craft_str_attr(f, "created_by", "tests", c) ||
             craft_attr(f, "image_size", H5T_NATIVE_INT64, &image_size, c) ||
             (c->scaling_as_string ? craft_str_attr(f, "scaling_factor", "0.18215", c)
                                   : craft_attr(f, "scaling_factor", H5T_NATIVE_DOUBLE, &scaling, c)) ||
             craft_dataset(f, "latent_mean", c->mean_type ? c->mean_type : H5T_IEEE_F32LE, 4, mean_dims, c) ||
             craft_dataset(f, "latent_logvar", c->logvar_type ? c->logvar_type : half, 4, logvar_dims, c) ||
             craft_dataset(f, "token_ids", c->token_type ? c->token_type : H5T_STD_I32LE, c->token_rank ? c->token_rank : 2,
                           token_dims, c) ||
             craft_dataset(f, "captions", c->caption_type ? c->caption_type : str, 1, caption_dims, c) ||
             craft_dataset(f, "image_ids", c->id_type ? c->id_type : H5T_STD_I64LE, 1, id_dims, c);
    H5Tclose(half);
    H5Tclose(str);
    return (H5Fclose(f) >= 0 && rc == 0) ? 0 : -1;
}

// A crafted shard must fail to open with `substring`.
static void check_craft_fails(TestCtx *tc, const Craft *c, const char *substring) {
    char path[512];
    shard_test_path(tc, path, sizeof path, "crafted.h5");
    CHECK(craft_shard(path, c) == 0);
    shard_check_open_fails(tc, path, substring);
}

#define EXPECT_CRAFT_FAILS(substring, ...)                              \
    do {                                                                \
        check_craft_fails(tc, &(Craft){__VA_ARGS__}, (substring));      \
        if (tc->failed) return;                                         \
    } while (0)

DICE_TEST(shards_crafted_baseline_opens) {
    // The crafting itself makes a valid shard (contiguous, unfiltered, variable-length attribute strings):
    // the failures below are each down to the one thing they change.
    char path[512];
    shard_test_path(tc, path, sizeof path, "crafted.h5");
    CHECK(craft_shard(path, &(Craft){0}) == 0);
    Shard *s;
    CHECK_OK(shard_open(&s, path, &tc->err));
    CHECK(shard_info(s)->n_rows == 2 && shard_info(s)->latent_c == 3 && shard_info(s)->seq_len == 4);
    CHECK(strcmp(shard_info(s)->model, "crafted") == 0);
    char *caption;
    CHECK_OK(shard_read_caption(s, 1, &caption, &tc->err));
    CHECK(strcmp(caption, "x") == 0);
    free(caption);
    CHECK_OK(shard_verify(s, &tc->err));
    shard_close(s);
    // A float32 log-variance is read as well.
    CHECK(craft_shard(path, &(Craft){.logvar_type = H5T_IEEE_F32LE}) == 0);
    float logvar[2 * 12] = {1};
    CHECK_OK(shard_open(&s, path, &tc->err));
    CHECK_OK(shard_read(s, 0, 2, &(ShardRows){.latent_logvar = logvar}, &tc->err));
    CHECK(logvar[0] == 0 && logvar[23] == 0);
    shard_close(s);
}

DICE_TEST(shards_missing_parts) {
    char serr[600];
    int saved = shard_stderr_begin(tc, serr, sizeof serr);
    CHECK(saved >= 0);
    const char *datasets[] = {"latent_mean", "latent_logvar", "token_ids", "captions", "image_ids"};
    for (int i = 0; i < 5; i++) {
        char want[64];
        snprintf(want, sizeof want, "dataset '%s' is missing", datasets[i]);
        EXPECT_CRAFT_FAILS(want, .skip_dataset = datasets[i]);
    }
    EXPECT_CRAFT_FAILS("'token_ids' is not a dataset", .group_instead = "token_ids");
    const char *attrs[] = {"format_version", "latent_layout", "model", "created_by", "image_size", "scaling_factor"};
    for (int i = 0; i < 6; i++) {
        char want[64];
        snprintf(want, sizeof want, "attribute '%s' is missing", attrs[i]);
        EXPECT_CRAFT_FAILS(want, .skip_attr = attrs[i]);
    }
    shard_stderr_end(tc, saved, serr);
}

DICE_TEST(shards_wrong_types) {
    char serr[600];
    int saved = shard_stderr_begin(tc, serr, sizeof serr);
    CHECK(saved >= 0);
    EXPECT_CRAFT_FAILS("'latent_mean' is float64, expected float32", .mean_type = H5T_IEEE_F64LE);
    EXPECT_CRAFT_FAILS("'latent_mean' is int32, expected float32", .mean_type = H5T_STD_I32LE);
    EXPECT_CRAFT_FAILS("'latent_logvar' is uint16, expected float16 or float32", .logvar_type = H5T_STD_U16LE);
    EXPECT_CRAFT_FAILS("'token_ids' is int64, expected int32", .token_type = H5T_STD_I64LE);
    EXPECT_CRAFT_FAILS("'token_ids' is uint32, expected int32", .token_type = H5T_STD_U32LE);
    EXPECT_CRAFT_FAILS("'token_ids' is float32, expected int32", .token_type = H5T_IEEE_F32LE);
    EXPECT_CRAFT_FAILS("'image_ids' is int32, expected int64", .id_type = H5T_STD_I32LE);
    EXPECT_CRAFT_FAILS("'captions' holds variable-length strings", .vlen_captions = 1);
    EXPECT_CRAFT_FAILS("space-padded", .space_padded = 1);
    EXPECT_CRAFT_FAILS("'captions' is int64, expected fixed-length UTF-8 strings", .caption_type = H5T_STD_I64LE);
    shard_stderr_end(tc, saved, serr);
}

DICE_TEST(shards_wrong_shapes) {
    char serr[600];
    int saved = shard_stderr_begin(tc, serr, sizeof serr);
    CHECK(saved >= 0);
    EXPECT_CRAFT_FAILS("'latent_logvar' has 3 rows but 'latent_mean' has 2", .rows = {2, 3, 2, 2, 2});
    EXPECT_CRAFT_FAILS("'captions' has 1 rows but 'latent_mean' has 2", .rows = {2, 2, 2, 1, 2});
    EXPECT_CRAFT_FAILS("'image_ids' has 5 rows", .rows = {2, 2, 2, 2, 5});
    EXPECT_CRAFT_FAILS("'latent_logvar' has shape (2, 2, 2, 4) but 'latent_mean' has (2, 2, 2, 3)", .logvar_c = 4);
    EXPECT_CRAFT_FAILS("'token_ids' has 1 dimensions, expected 2", .token_rank = 1);
    shard_stderr_end(tc, saved, serr);
}

DICE_TEST(shards_empty_shard) {
    char serr[600];
    int saved = shard_stderr_begin(tc, serr, sizeof serr);
    CHECK(saved >= 0);
    EXPECT_CRAFT_FAILS("the shard has no rows", .zero_rows = 1);
    shard_stderr_end(tc, saved, serr);
}

DICE_TEST(shards_bad_attributes) {
    char serr[600];
    int saved = shard_stderr_begin(tc, serr, sizeof serr);
    CHECK(saved >= 0);
    EXPECT_CRAFT_FAILS("shard format version 2 is not supported (this program reads version 1)", .version = 2);
    EXPECT_CRAFT_FAILS("latent layout 'NCHW' is not supported (expected NHWC)", .layout = "NCHW");
    EXPECT_CRAFT_FAILS("attribute 'scaling_factor' is not a floating-point number", .scaling_as_string = 1);
    shard_stderr_end(tc, saved, serr);
}

DICE_TEST(shards_not_a_shard) {
    char path[512], serr[600];
    int saved = shard_stderr_begin(tc, serr, sizeof serr);
    CHECK(saved >= 0);
    shard_test_path(tc, path, sizeof path, "missing.h5");
    shard_check_open_fails(tc, path, "cannot open: No such file or directory");
    shard_check_open_fails(tc, test_tmpdir(tc), "not a regular file");
    shard_test_path(tc, path, sizeof path, "text.h5");
    FILE *fp = fopen(path, "w");
    CHECK(fp && fputs("not an HDF5 file\n", fp) >= 0 && fclose(fp) == 0);
    shard_check_open_fails(tc, path, "file signature not found");
    shard_test_path(tc, path, sizeof path, "empty.h5");  // valid HDF5, nothing in it
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(f >= 0 && H5Fclose(f) >= 0);
    shard_check_open_fails(tc, path, "attribute 'format_version' is missing");
    shard_stderr_end(tc, saved, serr);
}
