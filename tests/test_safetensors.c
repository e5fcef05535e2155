// tests/test_safetensors.c — the safetensors reader and writer (nn/safetensors.c) and `dice inspect`:
// round trips of every dtype, compatibility with the reference Python package both ways (a golden file
// it wrote, read back exactly and rewritten byte for byte), one test per malformed-file case, atomic
// writes that leave the old file alone on failure, a random-mutation loop over st_open, and the CLI.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/safetensors.h"
#include "test.h"

// ---------------------------------------------------------------- helpers

#define GOLDEN "tests/golden/safetensors_python.safetensors"

static void tmp_path(TestCtx *tc, char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", test_tmpdir(tc), name);
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t w = n ? fwrite(p, 1, n, fp) : 0;
    return (fclose(fp) == 0 && w == n) ? 0 : -1;
}

// Reads a whole file into a malloc'd buffer (*n its size); NULL on failure.
static uint8_t *read_bytes(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)size + 1);
    if (p && fread(p, 1, (size_t)size, fp) != (size_t)size) free(p), p = NULL;
    fclose(fp);
    *n = (size_t)size;
    return p;
}

// A file: 8-byte length field `len_field`, the header text, then `data_len` bytes of data.
static int write_st_raw(const char *path, uint64_t len_field, const char *header, size_t data_len) {
    size_t hl = strlen(header), n = 8 + hl + data_len;
    uint8_t *p = calloc(n, 1);
    if (!p) return -1;
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(len_field >> (8 * i));
    memcpy(p + 8, header, hl);
    int rc = write_bytes(path, p, n);
    free(p);
    return rc;
}

static int write_st(const char *path, const char *header, size_t data_len) {
    return write_st_raw(path, strlen(header), header, data_len);
}

// st_open on `path` must fail, with a message naming the file and containing `substring`, and leave
// the StFile empty.
static void check_open_fails(TestCtx *tc, const char *path, const char *substring) {
    StFile f;
    CHECK_FAILS_WITH(st_open(&f, path, &tc->err), substring);
    CHECK_MSG(strstr(tc->err.msg, path) != NULL, "message '%s' does not name %s", tc->err.msg, path);
    CHECK_MSG(!strchr(tc->err.msg, '\n'), "message '%s' is more than one line", tc->err.msg);
    CHECK(f.map == NULL && f.tensors == NULL && f.n_tensors == 0 && f.meta_keys == NULL);
    st_close(&f);  // safe on the emptied struct
}

// A header (and data_len zero bytes) that st_open must reject with `substring`.
static void check_header_fails(TestCtx *tc, const char *header, size_t data_len, const char *substring) {
    char path[512];
    tmp_path(tc, path, sizeof path, "bad.safetensors");
    CHECK(write_st(path, header, data_len) == 0);
    check_open_fails(tc, path, substring);
}

#define EXPECT_HEADER_FAILS(header, data_len, substring)      \
    do {                                                      \
        check_header_fails(tc, (header), (data_len), (substring)); \
        if (tc->failed) return;                               \
    } while (0)

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

// Number of entries in dir whose name contains ".tmp." (leftover temporary files).
static int count_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

// ---------------------------------------------------------------- round trip

DICE_TEST(safetensors_round_trip_every_dtype) {
    uint64_t rng = tc->seed;
    enum { N = DT_COUNT + 4 };
    StWriteTensor t[N];
    char names[N][32];
    uint8_t *bufs[N];
    memset(t, 0, sizeof t);
    int n = 0;
    for (int d = 0; d < DT_COUNT; d++, n++) {  // one (2, 3) tensor of each dtype, random bytes
        snprintf(names[n], sizeof names[n], "layer.%d.%s", d, dtype_name((DType)d));
        t[n] = (StWriteTensor){.name = names[n], .dtype = (DType)d, .ndim = 2, .shape = {2, 3}};
    }
    snprintf(names[n], 32, "scalar");
    t[n] = (StWriteTensor){.name = names[n], .dtype = DT_F32, .ndim = 0};
    n++;
    snprintf(names[n], 32, "empty.rows");
    t[n] = (StWriteTensor){.name = names[n], .dtype = DT_BF16, .ndim = 2, .shape = {0, 3}};
    n++;
    snprintf(names[n], 32, "empty.cols");
    t[n] = (StWriteTensor){.name = names[n], .dtype = DT_I64, .ndim = 3, .shape = {4, 0, 2}};
    n++;
    snprintf(names[n], 32, "deep \"quoted\" \\ name");
    t[n] = (StWriteTensor){.name = names[n], .dtype = DT_U8, .ndim = 8, .shape = {1, 2, 1, 2, 1, 2, 1, 3}};
    n++;
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)dtype_size(t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++) bytes *= (size_t)t[i].shape[d];
        bufs[i] = malloc(bytes + 1);
        for (size_t k = 0; k < bytes; k++) bufs[i][k] = (uint8_t)test_rand_u64(&rng);
        t[i].data = bytes ? bufs[i] : NULL;
    }
    const char *keys[] = {"format", "quote\"back\\slash", "multi"};
    const char *values[] = {"pt", "tab\there", "line\nline \xc3\xbc \xe2\x80\x93 \x01"};
    char path[512];
    tmp_path(tc, path, sizeof path, "round trip.safetensors");  // a space in the name on purpose
    CHECK_OK(st_write(path, t, n, keys, values, 3, &tc->err));

    StFile f;
    CHECK_OK(st_open(&f, path, &tc->err));
    CHECK(f.n_tensors == n && f.n_meta == 3);
    CHECK(f.header_len % 8 == 0);
    const char *hdr = (const char *)f.map + 8;
    CHECK(hdr[0] == '{');
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const StTensorInfo *r = &f.tensors[i];  // header order == the order given to st_write
        CHECK_MSG(!strcmp(r->name, t[i].name), "tensor %d is '%s', want '%s'", i, r->name, t[i].name);
        CHECK(st_find(&f, t[i].name) == r);
        CHECK(r->dtype == t[i].dtype && r->ndim == t[i].ndim);
        for (int d = 0; d < r->ndim; d++) CHECK(r->shape[d] == t[i].shape[d]);
        uint64_t bytes = (uint64_t)st_numel(r) * dtype_size(r->dtype);
        CHECK(r->begin == offset && r->end == offset + bytes);  // contiguous, in order
        CHECK(bytes == 0 || !memcmp(r->data, bufs[i], bytes));
        offset = r->end;
    }
    CHECK(st_numel(st_find(&f, "scalar")) == 1);
    CHECK(st_numel(st_find(&f, "empty.cols")) == 0);
    CHECK(st_find(&f, "absent") == NULL);
    CHECK(f.data_size == offset && f.file_size == 8 + f.header_len + offset);
    for (int i = 0; i < 3; i++) {
        CHECK(!strcmp(f.meta_keys[i], keys[i]) && !strcmp(f.meta_values[i], values[i]));
        CHECK(st_meta(&f, keys[i]) && !strcmp(st_meta(&f, keys[i]), values[i]));
    }
    CHECK(st_meta(&f, "absent") == NULL);
    st_close(&f);
    for (int i = 0; i < n; i++) free(bufs[i]);
}

DICE_TEST(safetensors_round_trip_empty_file_and_padding) {
    char path[512];
    tmp_path(tc, path, sizeof path, "empty.safetensors");
    CHECK_OK(st_write(path, NULL, 0, NULL, NULL, 0, &tc->err));
    size_t n;
    uint8_t *bytes = read_bytes(path, &n);
    CHECK(bytes != NULL);
    // the reference writer's bytes for no tensors: length 8, "{}" and six spaces
    static const uint8_t want[] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    int same = n == sizeof want && !memcmp(bytes, want, n);
    free(bytes);
    CHECK(same);
    StFile f;
    CHECK_OK(st_open(&f, path, &tc->err));
    CHECK(f.n_tensors == 0 && f.n_meta == 0 && f.data_size == 0);
    CHECK(st_find(&f, "x") == NULL);
    st_close(&f);
}

// ---------------------------------------------------------------- compatibility with the Python package

DICE_TEST(safetensors_reads_python_golden_exactly) {
    StFile f;
    CHECK_OK(st_open(&f, test_path(tc, GOLDEN), &tc->err));
    CHECK(f.n_tensors == 17 && f.n_meta == 2);
    CHECK(!strcmp(st_meta(&f, "format"), "np"));
    CHECK(!strcmp(st_meta(&f, "note"), "line one\nline two \xe2\x80\x93 \xc3\xbc"));
    const StTensorInfo *t;
#define EXPECT_TENSOR(name_, dtype_, ndim_, type_, ...)                                      \
    do {                                                                                     \
        static const type_ want_[] = {__VA_ARGS__};                                          \
        CHECK_MSG((t = st_find(&f, name_)) != NULL, "tensor %s missing", name_);             \
        CHECK_MSG(t->dtype == dtype_ && t->ndim == ndim_, "tensor %s: dtype/ndim", name_);   \
        CHECK_MSG(t->end - t->begin == sizeof want_, "tensor %s: %llu bytes", name_,         \
                  (unsigned long long)(t->end - t->begin));                                  \
        CHECK_MSG(!memcmp(t->data, want_, sizeof want_), "tensor %s: values differ", name_); \
    } while (0)
    EXPECT_TENSOR("f64", DT_F64, 1, double, 3.141592653589793, -1e300);
    EXPECT_TENSOR("i64", DT_I64, 1, int64_t, INT64_MIN, (int64_t)1 << 40, -1);
    EXPECT_TENSOR("u64", DT_U64, 1, uint64_t, UINT64_MAX, 0);
    EXPECT_TENSOR("f32.matrix", DT_F32, 2, float, -0.5f, -0.25f, 0.0f, 0.25f, 0.5f, 0.75f);
    CHECK(t->shape[0] == 2 && t->shape[1] == 3);
    EXPECT_TENSOR("f32.scalar", DT_F32, 0, float, 42.5f);
    EXPECT_TENSOR("i32", DT_I32, 1, int32_t, INT32_MIN, 7);
    EXPECT_TENSOR("u32", DT_U32, 1, uint32_t, UINT32_MAX, 1);
    EXPECT_TENSOR("f16", DT_F16, 1, uint16_t, 0x3c00, 0xc100, 0x7bff, 0x0001);
    EXPECT_TENSOR("bf16", DT_BF16, 1, uint16_t, 0x3f80, 0xbf00, 0x4049, 0x7f7f);
    EXPECT_TENSOR("i16", DT_I16, 1, int16_t, -32768, 300);
    EXPECT_TENSOR("u16", DT_U16, 1, uint16_t, 65535, 2);
    EXPECT_TENSOR("i8", DT_I8, 1, int8_t, -128, 127);
    EXPECT_TENSOR("u8", DT_U8, 1, uint8_t, 0, 255, 7);
    EXPECT_TENSOR("bool", DT_BOOL, 1, uint8_t, 1, 0, 1);
    EXPECT_TENSOR("f8_e4m3", DT_F8_E4M3, 1, uint8_t, 0x38, 0xc0, 0x7e);
    EXPECT_TENSOR("f8_e5m2", DT_F8_E5M2, 1, uint8_t, 0x3c, 0xbc);
#undef EXPECT_TENSOR
    uint16_t h[4];
    memcpy(h, st_find(&f, "f16")->data, sizeof h);
    CHECK(dice_f16_to_f32(h[1]) == -2.5f && dice_f16_to_f32(h[2]) == 65504.0f && dice_f16_to_f32(h[3]) == 0x1p-24f);
    memcpy(h, st_find(&f, "bf16")->data, sizeof h);
    CHECK(dice_bf16_to_f32(h[1]) == -0.5f && dice_bf16_to_f32(h[2]) == 3.140625f);
    t = st_find(&f, "f32.empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3 && t->begin == t->end && st_numel(t) == 0);
    st_close(&f);
}

DICE_TEST(safetensors_writer_matches_python_bytes) {
    // Rewriting the golden file's tensors in its header order must give the same bytes: same JSON
    // layout, same escapes, same padding.
    StFile f;
    CHECK_OK(st_open(&f, test_path(tc, GOLDEN), &tc->err));
    StWriteTensor t[32];
    CHECK(f.n_tensors <= 32);
    for (int i = 0; i < f.n_tensors; i++) {
        const StTensorInfo *r = &f.tensors[i];
        t[i] = (StWriteTensor){.name = r->name, .dtype = r->dtype, .ndim = r->ndim, .data = r->data};
        memcpy(t[i].shape, r->shape, sizeof r->shape);
    }
    char path[512];
    tmp_path(tc, path, sizeof path, "rewritten.safetensors");
    int rc = st_write(path, t, f.n_tensors, (const char *const *)f.meta_keys, (const char *const *)f.meta_values,
                      f.n_meta, &tc->err);
    st_close(&f);
    CHECK_MSG(rc == 0, "st_write: %s", tc->err.msg);
    size_t n_want, n_got;
    uint8_t *want = read_bytes(test_path(tc, GOLDEN), &n_want);
    uint8_t *got = read_bytes(path, &n_got);
    int same = want && got && n_want == n_got && !memcmp(want, got, n_want);
    free(want);
    free(got);
    CHECK_MSG(same, "%s differs from %s (%zu vs %zu bytes)", path, GOLDEN, n_got, n_want);
}

// ---------------------------------------------------------------- malformed files

DICE_TEST(safetensors_rejects_file_shorter_than_8_bytes) {
    char path[512];
    tmp_path(tc, path, sizeof path, "short.safetensors");
    CHECK(write_bytes(path, "\x10\0\0\0\0", 5) == 0);
    check_open_fails(tc, path, "file is 5 bytes, shorter than the 8-byte header length");
    if (tc->failed) return;
    CHECK(write_bytes(path, "", 0) == 0);
    check_open_fails(tc, path, "file is 0 bytes");
}

DICE_TEST(safetensors_rejects_truncated_data) {
    char path[512];
    tmp_path(tc, path, sizeof path, "cut.safetensors");
    // header promises 24 bytes of data; only 10 are there
    CHECK(write_st(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 10) == 0);
    check_open_fails(tc, path, "tensor 'w': data_offsets [0, 24] past the end of the 10-byte data section");
}

DICE_TEST(safetensors_rejects_header_past_end_of_file) {
    char path[512];
    tmp_path(tc, path, sizeof path, "past.safetensors");
    CHECK(write_st_raw(path, 123456, "{}", 0) == 0);
    check_open_fails(tc, path, "header length 123456 exceeds file size 10");
}

DICE_TEST(safetensors_rejects_absurd_header_length) {
    char path[512];
    tmp_path(tc, path, sizeof path, "absurd.safetensors");
    CHECK(write_st_raw(path, (uint64_t)1 << 63, "{}", 0) == 0);
    check_open_fails(tc, path, "header length 9223372036854775808 exceeds the format's limit of 100000000 bytes");
    if (tc->failed) return;
    CHECK(write_st_raw(path, UINT64_MAX, "{}", 0) == 0);
    check_open_fails(tc, path, "exceeds the format's limit");
    if (tc->failed) return;
    CHECK(write_st_raw(path, 100000001, "{}", 0) == 0);
    check_open_fails(tc, path, "header length 100000001 exceeds the format's limit");
}

DICE_TEST(safetensors_rejects_zero_header_length) {
    char path[512];
    tmp_path(tc, path, sizeof path, "zero.safetensors");
    CHECK(write_st_raw(path, 0, "{}", 0) == 0);
    check_open_fails(tc, path, "header length is 0");
}

DICE_TEST(safetensors_rejects_non_json_header) {
    EXPECT_HEADER_FAILS("{\"w\": {\"dtype\": \"F32\",", 0, "header is not valid JSON");
    EXPECT_HEADER_FAILS("not json at all", 0, "header is not valid JSON");
    EXPECT_HEADER_FAILS("{} {}", 0, "header has bytes after the JSON value");
    EXPECT_HEADER_FAILS("{}\x01   ", 0, "control byte 0x01");
    EXPECT_HEADER_FAILS("{\"\xff\xfe\":1}", 0, "header is not valid UTF-8");
    EXPECT_HEADER_FAILS("{\"\xed\xa0\x80\":1}", 0, "header is not valid UTF-8");  // a UTF-16 surrogate
    EXPECT_HEADER_FAILS("{\"\xc0\xaf\":1}", 0, "header is not valid UTF-8");      // an overlong '/'
    char path[512];
    tmp_path(tc, path, sizeof path, "nul.safetensors");
    CHECK(write_bytes(path, "\x08\0\0\0\0\0\0\0{}\0     ", 16) == 0);  // NUL padding, not spaces
    check_open_fails(tc, path, "control byte 0x00 at byte 2");
}

DICE_TEST(safetensors_rejects_header_that_is_not_an_object) {
    EXPECT_HEADER_FAILS("[1, 2, 3]", 0, "header is not a JSON object");
    EXPECT_HEADER_FAILS("\"text\"", 0, "header is not a JSON object");
    EXPECT_HEADER_FAILS("42", 0, "header is not a JSON object");
}

DICE_TEST(safetensors_rejects_unknown_dtype) {
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1,
                        "tensor 'w': unknown dtype \"F4\"");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"f32\"");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype is 4, not a string");
}

DICE_TEST(safetensors_rejects_size_mismatch) {
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20,
                        "tensor 'w': F32 shape of 6 elements needs 24 bytes but data_offsets [0, 20] hold 20");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, "needs 2 bytes");
}

DICE_TEST(safetensors_rejects_offsets_out_of_range) {
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}", 8,
                        "data_offsets [8, 12] past the end of the 8-byte data section");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,1e300]}}", 8,
                        "tensor 'w': data_offsets[1] is 1");  // 1e300, printed as %.17g
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-4,0]}}", 8,
                        "data_offsets[0] is -4, not a non-negative integer");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0]}}", 8,
                        "data_offsets is not an array of two integers");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4,8]}}", 8,
                        "data_offsets is not an array of two integers");
}

DICE_TEST(safetensors_rejects_overlapping_tensors) {
    EXPECT_HEADER_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                        24, "tensor 'b' bytes [8, 24) overlap tensor 'a' bytes [0, 16)");
    // listed in the other order in the header: still found (ranges are sorted first)
    EXPECT_HEADER_FAILS("{\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]},"
                        "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                        24, "tensor 'b' bytes [8, 24) overlap tensor 'a' bytes [0, 16)");
    // the same range twice
    EXPECT_HEADER_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                        "\"b\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                        16, "overlap");
}

DICE_TEST(safetensors_rejects_holes_and_trailing_bytes) {
    // The reference implementation requires the tensors to cover the data section exactly.
    EXPECT_HEADER_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                        12, "hole of 4 unused bytes in the data section before tensor 'b' at 8");
    EXPECT_HEADER_FAILS("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 9,
                        "5 unused bytes after the last tensor");
    EXPECT_HEADER_FAILS("{}", 3, "3 unused bytes after the last tensor");
}

DICE_TEST(safetensors_rejects_begin_after_end) {
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[16,8]}}", 16,
                        "tensor 'w': data_offsets [16, 8] begin after end");
}

DICE_TEST(safetensors_rejects_bad_shape_entries) {
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[2,-1],\"data_offsets\":[0,0]}}", 0,
                        "tensor 'w': shape[1] is -1, not a non-negative integer");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[2.5],\"data_offsets\":[0,2]}}", 2,
                        "shape[0] is 2.5, not a non-negative integer");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[\"2\"],\"data_offsets\":[0,2]}}", 2,
                        "shape[0] is \"2\", not a non-negative integer");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[null],\"data_offsets\":[0,2]}}", 2, "shape[0] is null");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[1e20],\"data_offsets\":[0,2]}}", 2,
                        "shape[0] is 1e+20, not a non-negative integer");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":4,\"data_offsets\":[0,4]}}", 4, "shape is not an array");
    // each dimension fine, the product overflows
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
                        "tensor 'w': shape overflows");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"F64\",\"shape\":[4503599627370495,4096],\"data_offsets\":[0,8]}}", 8,
                        "shape overflows");
}

DICE_TEST(safetensors_accepts_zero_dimension_with_huge_others) {
    // [huge, 0] is an empty tensor, not an overflow
    char path[512];
    tmp_path(tc, path, sizeof path, "zero_dim.safetensors");
    CHECK(write_st(path, "{\"w\":{\"dtype\":\"F64\",\"shape\":[4503599627370495,4503599627370495,0],"
                         "\"data_offsets\":[0,0]}}",
                   0) == 0);
    StFile f;
    CHECK_OK(st_open(&f, path, &tc->err));
    CHECK(st_numel(&f.tensors[0]) == 0);
    st_close(&f);
}

DICE_TEST(safetensors_rejects_too_many_dims) {
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
                        "tensor 'w': shape has 9 dimensions, more than the 8 supported");
}

DICE_TEST(safetensors_rejects_duplicate_names) {
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                        "\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
                        8, "duplicate tensor name 'w'");
    EXPECT_HEADER_FAILS("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__ appears twice");
    EXPECT_HEADER_FAILS("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, "__metadata__ has the key 'k' twice");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
                        "tensor 'w': field 'dtype' appears twice");
}

DICE_TEST(safetensors_rejects_bad_metadata) {
    EXPECT_HEADER_FAILS("{\"__metadata__\":{\"format\":\"pt\",\"epoch\":3}}", 0,
                        "__metadata__ value of 'epoch' is 3, not a string");
    EXPECT_HEADER_FAILS("{\"__metadata__\":{\"cfg\":{\"a\":\"b\"}}}", 0, "value of 'cfg' is an object, not a string");
    EXPECT_HEADER_FAILS("{\"__metadata__\":{\"x\":null}}", 0, "value of 'x' is null");
    EXPECT_HEADER_FAILS("{\"__metadata__\":[\"a\"]}", 0, "__metadata__ is not an object");
    EXPECT_HEADER_FAILS("{\"__metadata__\":\"text\"}", 0, "__metadata__ is not an object");
}

DICE_TEST(safetensors_rejects_missing_and_unknown_fields) {
    EXPECT_HEADER_FAILS("{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "tensor 'w': missing field 'dtype'");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, "tensor 'w': missing field 'shape'");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, "tensor 'w': missing field 'data_offsets'");
    EXPECT_HEADER_FAILS("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"offsets\":[0,1]}}", 1,
                        "tensor 'w': unknown field 'offsets'");
    EXPECT_HEADER_FAILS("{\"w\":[1,2]}", 0, "tensor 'w': entry is not an object");
    EXPECT_HEADER_FAILS("{\"w\":null}", 0, "tensor 'w': entry is not an object");
}

DICE_TEST(safetensors_error_messages_escape_names) {
    // a name with a newline and an escape sequence stays on one line in the message
    EXPECT_HEADER_FAILS("{\"evil\\nname\\u001b[2J\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", 0,
                        "tensor 'evil\\x0aname\\x1b[2J': unknown dtype");
}

DICE_TEST(safetensors_rejects_directory_and_missing_file) {
    check_open_fails(tc, test_tmpdir(tc), "is a directory");
    if (tc->failed) return;
    char path[512];
    tmp_path(tc, path, sizeof path, "no-such.safetensors");
    check_open_fails(tc, path, "cannot open: No such file or directory");
}

DICE_TEST(safetensors_accepts_reference_layout_variants) {
    // What the reference reader accepts: leading/trailing JSON whitespace, tensors listed out of
    // offset order, empty tensors at any boundary, unaligned data.
    char path[512];
    tmp_path(tc, path, sizeof path, "variants.safetensors");
    CHECK(write_st(path,
                   " \n{\"b\": {\"dtype\": \"U8\", \"shape\": [3], \"data_offsets\": [4, 7]},\n"
                   " \"e\": {\"dtype\": \"F64\", \"shape\": [0, 2], \"data_offsets\": [7, 7]},"
                   " \"a\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]}}\t\r\n ",
                   7) == 0);
    StFile f;
    CHECK_OK(st_open(&f, path, &tc->err));
    CHECK(f.n_tensors == 3 && !strcmp(f.tensors[0].name, "b") && !strcmp(f.tensors[2].name, "a"));
    CHECK(st_find(&f, "a")->begin == 0 && st_find(&f, "e")->ndim == 2);
    st_close(&f);
}

// ---------------------------------------------------------------- random mutations

// Flips bytes, writes JSON punctuation and digits, changes the length field and truncates a valid
// file; st_open must either reject the result with a one-line message or accept something whose
// every tensor lies inside the mapping. Crashes and sanitizer reports fail the test process.
DICE_TEST(safetensors_survives_random_mutations) {
    char path[512];
    tmp_path(tc, path, sizeof path, "seed.safetensors");
    float w[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[2] = {1, 2};
    StWriteTensor t[] = {{.name = "w", .dtype = DT_F32, .ndim = 2, .shape = {2, 3}, .data = w},
                         {.name = "h", .dtype = DT_BF16, .ndim = 1, .shape = {2}, .data = h},
                         {.name = "s", .dtype = DT_U8, .ndim = 0, .data = "x"},
                         {.name = "z", .dtype = DT_I64, .ndim = 2, .shape = {0, 5}}};
    const char *keys[] = {"k"}, *values[] = {"v"};
    CHECK_OK(st_write(path, t, 4, keys, values, 1, &tc->err));
    size_t n0;
    uint8_t *orig = read_bytes(path, &n0);
    CHECK(orig != NULL);
    uint8_t *buf = malloc(n0 + 64);
    static const char alphabet[] = "{}[],:\"-.0123456789eE \\u";
    uint64_t rng = tc->seed;
    int accepted = 0;
    tmp_path(tc, path, sizeof path, "mutant.safetensors");
    for (int iter = 0; iter < 3000 && !tc->failed; iter++) {
        memcpy(buf, orig, n0);
        size_t n = n0;
        int edits = 1 + (int)(test_rand_u64(&rng) % 4);
        for (int e = 0; e < edits; e++) {
            uint64_t r = test_rand_u64(&rng);
            size_t at = (size_t)((r >> 8) % n);
            switch (r % 6) {
            case 0: buf[at] ^= (uint8_t)(1u << ((r >> 40) % 8)); break;
            case 1: buf[at] = (uint8_t)(r >> 48); break;
            case 2:
            case 3: buf[8 + (size_t)((r >> 8) % (n > 9 ? n - 8 : 1))] = (uint8_t)alphabet[(r >> 32) % (sizeof alphabet - 1)]; break;
            case 4: buf[(r >> 16) % 8] = (uint8_t)(r >> 32); break;
            case 5: n = at; break;
            }
            if (n < 9) break;
        }
        CHECK(write_bytes(path, buf, n) == 0);
        StFile f;
        DiceError err = {{0}};
        if (st_open(&f, path, &err) == 0) {
            accepted++;
            const uint8_t *lo = (const uint8_t *)f.map, *hi = lo + f.file_size;
            for (int i = 0; i < f.n_tensors; i++) {
                const StTensorInfo *ti = &f.tensors[i];
                CHECK((const uint8_t *)ti->data >= lo && (const uint8_t *)ti->data + (ti->end - ti->begin) <= hi);
                CHECK((uint64_t)st_numel(ti) * dtype_size(ti->dtype) == ti->end - ti->begin);
            }
            st_close(&f);
        } else {
            CHECK_MSG(err.msg[0] && !strchr(err.msg, '\n'), "iteration %d: bad message '%s'", iter, err.msg);
        }
    }
    free(buf);
    free(orig);
    CHECK(accepted > 0);  // some mutations (e.g. in data bytes) leave a valid file
}

// ---------------------------------------------------------------- writer failures

DICE_TEST(safetensors_write_rejects_bad_input_and_leaves_file_untouched) {
    char path[512];
    tmp_path(tc, path, sizeof path, "keep.safetensors");
    CHECK(write_bytes(path, "precious", 8) == 0);
    float x[4] = {0};
    StWriteTensor dup[] = {{.name = "a", .dtype = DT_F32, .ndim = 1, .shape = {4}, .data = x},
                           {.name = "a", .dtype = DT_F32, .ndim = 1, .shape = {4}, .data = x}};
    CHECK_FAILS_WITH(st_write(path, dup, 2, NULL, NULL, 0, &tc->err), "duplicate tensor name 'a'");
    StWriteTensor bad[] = {{.name = "", .dtype = DT_F32, .ndim = 1, .shape = {4}, .data = x}};
    CHECK_FAILS_WITH(st_write(path, bad, 1, NULL, NULL, 0, &tc->err), "tensor 0 has no name");
    bad[0] = (StWriteTensor){.name = "neg", .dtype = DT_F32, .ndim = 1, .shape = {-4}, .data = x};
    CHECK_FAILS_WITH(st_write(path, bad, 1, NULL, NULL, 0, &tc->err), "tensor 'neg': shape[0] = -4 is negative");
    bad[0] = (StWriteTensor){.name = "dt", .dtype = DT_COUNT, .ndim = 1, .shape = {4}, .data = x};
    CHECK_FAILS_WITH(st_write(path, bad, 1, NULL, NULL, 0, &tc->err), "tensor 'dt': invalid dtype");
    bad[0] = (StWriteTensor){.name = "deep", .dtype = DT_F32, .ndim = ST_MAX_DIMS + 1, .data = x};
    CHECK_FAILS_WITH(st_write(path, bad, 1, NULL, NULL, 0, &tc->err), "tensor 'deep': 9 dimensions");
    bad[0] = (StWriteTensor){.name = "nodata", .dtype = DT_F32, .ndim = 1, .shape = {4}};
    CHECK_FAILS_WITH(st_write(path, bad, 1, NULL, NULL, 0, &tc->err), "tensor 'nodata': no data for 16 bytes");
    bad[0] = (StWriteTensor){.name = "huge", .dtype = DT_F32, .ndim = 3, .shape = {1 << 30, 1 << 30, 1 << 30}, .data = x};
    CHECK_FAILS_WITH(st_write(path, bad, 1, NULL, NULL, 0, &tc->err), "tensor 'huge': shape too large");
    bad[0] = (StWriteTensor){.name = "__metadata__", .dtype = DT_F32, .ndim = 1, .shape = {4}, .data = x};
    CHECK_FAILS_WITH(st_write(path, bad, 1, NULL, NULL, 0, &tc->err), "'__metadata__' is reserved");
    bad[0] = (StWriteTensor){.name = "bad\xff", .dtype = DT_F32, .ndim = 1, .shape = {4}, .data = x};
    CHECK_FAILS_WITH(st_write(path, bad, 1, NULL, NULL, 0, &tc->err), "is not valid UTF-8");
    const char *keys[] = {"k", "k"}, *values[] = {"1", "2"};
    CHECK_FAILS_WITH(st_write(path, dup, 1, keys, values, 2, &tc->err), "duplicate metadata key 'k'");
    size_t n;
    uint8_t *bytes = read_bytes(path, &n);
    int same = bytes && n == 8 && !memcmp(bytes, "precious", 8);
    free(bytes);
    CHECK_MSG(same, "%s was changed by a failed st_write", path);
    CHECK(count_temp_files(test_tmpdir(tc)) == 0);
}

DICE_TEST(safetensors_write_failures_remove_the_temporary_file) {
    float x[2] = {1, 2};
    StWriteTensor t[] = {{.name = "x", .dtype = DT_F32, .ndim = 1, .shape = {2}, .data = x}};
    // the target is a directory: everything is written, then the rename fails
    char dir[512], path[512];
    tmp_path(tc, dir, sizeof dir, "a dir");
    CHECK(mkdir(dir, 0755) == 0);
    CHECK_FAILS_WITH(st_write(dir, t, 1, NULL, NULL, 0, &tc->err), "cannot rename the temporary file into place");
    CHECK(count_temp_files(test_tmpdir(tc)) == 0);
    struct stat sb;
    CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode));
    // the directory does not exist: the temporary file cannot be created
    tmp_path(tc, path, sizeof path, "missing/x.safetensors");
    CHECK_FAILS_WITH(st_write(path, t, 1, NULL, NULL, 0, &tc->err), "cannot create the temporary file");
    CHECK(!file_exists(path));
    // and a success replaces an existing file
    tmp_path(tc, path, sizeof path, "replace.safetensors");
    CHECK(write_bytes(path, "old", 3) == 0);
    CHECK_OK(st_write(path, t, 1, NULL, NULL, 0, &tc->err));
    StFile f;
    CHECK_OK(st_open(&f, path, &tc->err));
    CHECK(f.n_tensors == 1 && !memcmp(f.tensors[0].data, x, sizeof x));
    st_close(&f);
    CHECK(count_temp_files(test_tmpdir(tc)) == 0);
}

// ---------------------------------------------------------------- dice inspect

// One line: non-empty, a single '\n' at the end.
static int is_one_line(const char *s) {
    size_t n = strlen(s);
    return n > 1 && strchr(s, '\n') == s + n - 1;
}

DICE_TEST(safetensors_cli_inspect_lists_a_good_file) {
    char out[16384], err[4096];
    const char *argv[] = {test_dice_bin(tc), "inspect", test_path(tc, GOLDEN), NULL};
    int rc = test_run(tc, argv, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 0, "exit %d, stderr: %s", rc, err);
    CHECK(err[0] == '\0');
    CHECK(strstr(out, "header 1096 bytes"));
    CHECK(strstr(out, "format = np"));
    CHECK(strstr(out, "note = line one\\x0aline two"));  // newline shown escaped, on one line
    CHECK(strstr(out, "f32.matrix"));
    CHECK(strstr(out, "[2, 3]"));
    CHECK(strstr(out, "F8_E4M3"));
    // sorted by name: bf16 before bool before f16 ... before u8
    const char *bf16 = strstr(out, "  bf16 "), *bool_ = strstr(out, "  bool "), *u8 = strstr(out, "  u8 ");
    CHECK(bf16 && bool_ && u8 && bf16 < bool_ && bool_ < u8);
    // 17 tensors; parameters 2+3+2+0+6+1+2+2+4+4+2+2+3+2+2+3+3 = 43; data bytes 137
    CHECK_MSG(strstr(out, "total: 17 tensors, 43 parameters, 137 bytes"), "output:\n%s", out);
}

DICE_TEST(safetensors_cli_inspect_sorts_numbers_by_value) {
    char path[512], out[4096], err[4096];
    tmp_path(tc, path, sizeof path, "-blocks.safetensors");  // a leading '-': passed after --
    CHECK(write_st(path,
                   "{\"blocks.10.w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                   "\"blocks.2.w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]},"
                   "\"blocks.1.w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3]}}",
                   3) == 0);
    const char *argv[] = {test_dice_bin(tc), "inspect", "--", path, NULL};
    CHECK(test_run(tc, argv, out, sizeof out, err, sizeof err) == 0);
    const char *b1 = strstr(out, "blocks.1.w"), *b2 = strstr(out, "blocks.2.w"), *b10 = strstr(out, "blocks.10.w");
    CHECK_MSG(b1 && b2 && b10 && b1 < b2 && b2 < b10, "output:\n%s", out);
}

DICE_TEST(safetensors_cli_inspect_rejects_malformed_files) {
    static const struct {
        const char *header;
        size_t data;
        const char *problem;
    } cases[] = {
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "past the end of the 4-byte data section"},
        {"{\"w\":{\"dtype\":\"Q8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, "unknown dtype \"Q8\""},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
         "\"v\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}",
         3, "overlap"},
        {"{\"w\": [", 0, "header is not valid JSON"},
    };
    char path[512], out[4096], err[4096];
    tmp_path(tc, path, sizeof path, "it's bad; $(rm -rf x).safetensors");  // needs no quoting: exec, no shell
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(write_st(path, cases[i].header, cases[i].data) == 0);
        const char *argv[] = {test_dice_bin(tc), "inspect", path, NULL};
        int rc = test_run(tc, argv, out, sizeof out, err, sizeof err);
        CHECK_MSG(rc == 1, "case %zu: exit %d", i, rc);
        CHECK_MSG(is_one_line(err), "case %zu: stderr is not one line: '%s'", i, err);
        CHECK_MSG(!strncmp(err, "dice inspect: error: ", 21), "case %zu: stderr '%s'", i, err);
        CHECK_MSG(strstr(err, cases[i].problem) && strstr(err, path), "case %zu: stderr '%s'", i, err);
        CHECK_MSG(out[0] == '\0', "case %zu: stdout '%s'", i, out);
    }
    // a directory, and a missing file
    const char *dir_argv[] = {test_dice_bin(tc), "inspect", test_tmpdir(tc), NULL};
    CHECK(test_run(tc, dir_argv, out, sizeof out, err, sizeof err) == 1);
    CHECK(is_one_line(err) && strstr(err, "is a directory"));
    tmp_path(tc, path, sizeof path, "absent.safetensors");
    const char *missing_argv[] = {test_dice_bin(tc), "inspect", path, NULL};
    CHECK(test_run(tc, missing_argv, out, sizeof out, err, sizeof err) == 1);
    CHECK(is_one_line(err) && strstr(err, "No such file or directory"));
    // a good file after a bad one is still listed; the status says something failed
    const char *mixed_argv[] = {test_dice_bin(tc), "inspect", path, test_path(tc, GOLDEN), NULL};
    CHECK(test_run(tc, mixed_argv, out, sizeof out, err, sizeof err) == 1);
    CHECK(is_one_line(err) && strstr(out, "total: 17 tensors"));
}

DICE_TEST(safetensors_cli_inspect_usage_errors) {
    char out[4096], err[4096];
    const char *none[] = {test_dice_bin(tc), "inspect", NULL};
    CHECK(test_run(tc, none, out, sizeof out, err, sizeof err) == 2);
    CHECK(is_one_line(err) && strstr(err, "usage: dice inspect FILE"));
    const char *bad_opt[] = {test_dice_bin(tc), "inspect", "--frobnicate", "x", NULL};
    CHECK(test_run(tc, bad_opt, out, sizeof out, err, sizeof err) == 2);
    CHECK(is_one_line(err) && strstr(err, "unknown option '--frobnicate'"));
    const char *help[] = {test_dice_bin(tc), "help", "inspect", NULL};
    CHECK(test_run(tc, help, out, sizeof out, err, sizeof err) == 0);
    CHECK(strstr(out, "usage: dice inspect FILE [FILE...]") && strstr(out, "sorted by"));
}
