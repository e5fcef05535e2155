// nn/safetensors.c — safetensors files: the validating mmap reader and the atomic writer
// (see safetensors.h for the format and the API).
//
// The reader treats the file as hostile: every number in the header is checked before it is
// used, and every failure is one line naming the file and the problem. It follows the
// reference implementation (huggingface/safetensors, tensor.rs) where that one is stricter than
// the format's prose: the header is at most 100,000,000 bytes, and the tensors, sorted by
// offset, must cover the data section exactly (no overlap, no hole, no trailing bytes).
// It is stricter than the reference where the format leaves room for mistakes: unknown fields
// in a tensor entry, duplicate names and duplicate fields are errors (serde and cJSON would
// silently keep one of them).
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000ull   // the reference implementation's MAX_HEADER_SIZE
#define ST_MAX_EXACT 9007199254740992.0  // 2^53: JSON numbers below it are exact in a double

// ---------------------------------------------------------------- small helpers

// Length of the valid UTF-8 sequence starting at s (n bytes available), or 0 if none does:
// overlong forms, surrogates and code points above U+10FFFF are invalid.
static size_t utf8_seq_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

// Index of the first byte of s[0..n) that does not start a valid UTF-8 sequence, or n.
static size_t utf8_invalid_at(const uint8_t *s, size_t n) {
    size_t i = 0, len;
    while (i < n && (len = utf8_seq_len(s + i, n - i))) i += len;
    return i;
}

void st_printable(char *out, size_t cap, const char *s) {
    static const char hex[] = "0123456789abcdef";
    if (!cap) return;
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s), o = 0, limit = cap > 4 ? cap - 4 : 0;  // room for "..." and the NUL
    for (size_t i = 0; i < n;) {
        char esc[4];
        const char *piece = esc;
        size_t len = utf8_seq_len(p + i, n - i), k;
        if (len == 0 || p[i] < 0x20 || p[i] == 0x7f) {  // control byte or invalid UTF-8: \xNN
            esc[0] = '\\', esc[1] = 'x', esc[2] = hex[p[i] >> 4], esc[3] = hex[p[i] & 15];
            k = 4, len = 1;
        } else {
            piece = (const char *)p + i, k = len;
        }
        if (o + k > limit) {
            if (cap >= 4) memcpy(out + o, "...", 3), o += 3;
            break;
        }
        memcpy(out + o, piece, k);
        o += k, i += len;
    }
    out[o < cap ? o : cap - 1] = '\0';
}

static uint64_t read_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

// A JSON number that must be a non-negative integer below 2^53 (so the double holds it exactly).
static int json_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return -1;
    double v = item->valuedouble;
    if (!isfinite(v) || v < 0 || v >= ST_MAX_EXACT || v != floor(v)) return -1;
    *out = (uint64_t)v;
    return 0;
}

// Text of a JSON value for messages ("-1", "2.5", "\"x\"", "an array"), cut to fit.
static void json_describe(const cJSON *item, char *out, size_t cap) {
    if (cJSON_IsNumber(item)) snprintf(out, cap, "%.17g", item->valuedouble);
    else if (cJSON_IsString(item)) {
        char s[64];
        st_printable(s, sizeof s, item->valuestring);
        snprintf(out, cap, "\"%s\"", s);
    } else if (cJSON_IsArray(item)) snprintf(out, cap, "an array");
    else if (cJSON_IsObject(item)) snprintf(out, cap, "an object");
    else if (cJSON_IsBool(item)) snprintf(out, cap, "%s", cJSON_IsTrue(item) ? "true" : "false");
    else snprintf(out, cap, "null");
}

static int is_json_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// ---------------------------------------------------------------- reader

// Context of one open: the file, its printable path (every message starts with it), the error.
typedef struct StParse {
    StFile *f;
    char where[300];  // printable path
    DiceError *err;
} StParse;

static int cmp_by_offset(const void *a, const void *b, void *arg) {
    const StTensorInfo *t = (const StTensorInfo *)arg;
    const StTensorInfo *x = &t[*(const int *)a], *y = &t[*(const int *)b];
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_by_name(const void *a, const void *b, void *arg) {
    const StTensorInfo *t = (const StTensorInfo *)arg;
    return strcmp(t[*(const int *)a].name, t[*(const int *)b].name);
}

static int cmp_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int parse_metadata(StParse *p, const cJSON *meta) {
    StFile *f = p->f;
    DICE_CHECK(p->err, cJSON_IsObject(meta), "%s: __metadata__ is not an object", p->where);
    int n = cJSON_GetArraySize(meta);
    f->meta_keys = calloc((size_t)n + 1, sizeof *f->meta_keys);
    f->meta_values = calloc((size_t)n + 1, sizeof *f->meta_values);
    DICE_CHECK(p->err, f->meta_keys && f->meta_values, "%s: out of memory for %d metadata entries", p->where, n);
    for (const cJSON *kv = meta->child; kv; kv = kv->next) {
        char key[128];
        st_printable(key, sizeof key, kv->string);
        if (!cJSON_IsString(kv)) {
            char what[80];
            json_describe(kv, what, sizeof what);
            return DICE_FAIL(p->err, "%s: __metadata__ value of '%s' is %s, not a string", p->where, key, what);
        }
        f->meta_keys[f->n_meta] = strdup(kv->string);
        f->meta_values[f->n_meta] = strdup(kv->valuestring);
        f->n_meta++;
        DICE_CHECK(p->err, f->meta_keys[f->n_meta - 1] && f->meta_values[f->n_meta - 1],
                   "%s: out of memory for metadata", p->where);
    }
    char **sorted = malloc(((size_t)f->n_meta + 1) * sizeof *sorted);
    DICE_CHECK(p->err, sorted, "%s: out of memory", p->where);
    memcpy(sorted, f->meta_keys, (size_t)f->n_meta * sizeof *sorted);
    qsort(sorted, (size_t)f->n_meta, sizeof *sorted, cmp_strings);
    for (int i = 1; i < f->n_meta; i++)
        if (!strcmp(sorted[i - 1], sorted[i])) {
            char key[128];
            st_printable(key, sizeof key, sorted[i]);
            free(sorted);
            return DICE_FAIL(p->err, "%s: __metadata__ has the key '%s' twice", p->where, key);
        }
    free(sorted);
    return 0;
}

// One tensor entry {"dtype": .., "shape": [..], "data_offsets": [b, e]} into t (t->name is set).
static int parse_entry(StParse *p, const cJSON *entry, StTensorInfo *t) {
    char name[160];
    st_printable(name, sizeof name, t->name);
    DICE_CHECK(p->err, cJSON_IsObject(entry), "%s: tensor '%s': entry is not an object", p->where, name);
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (const cJSON *field = entry->child; field; field = field->next) {
        const cJSON **slot = !strcmp(field->string, "dtype")          ? &dtype
                             : !strcmp(field->string, "shape")        ? &shape
                             : !strcmp(field->string, "data_offsets") ? &offsets
                                                                      : NULL;
        char fname[64];
        st_printable(fname, sizeof fname, field->string);
        DICE_CHECK(p->err, slot, "%s: tensor '%s': unknown field '%s'", p->where, name, fname);
        DICE_CHECK(p->err, !*slot, "%s: tensor '%s': field '%s' appears twice", p->where, name, fname);
        *slot = field;
    }
    DICE_CHECK(p->err, dtype, "%s: tensor '%s': missing field 'dtype'", p->where, name);
    DICE_CHECK(p->err, shape, "%s: tensor '%s': missing field 'shape'", p->where, name);
    DICE_CHECK(p->err, offsets, "%s: tensor '%s': missing field 'data_offsets'", p->where, name);

    char what[80];
    if (!cJSON_IsString(dtype)) {
        json_describe(dtype, what, sizeof what);
        return DICE_FAIL(p->err, "%s: tensor '%s': dtype is %s, not a string", p->where, name, what);
    }
    if (dtype_from_st_name(dtype->valuestring, &t->dtype)) {
        json_describe(dtype, what, sizeof what);
        return DICE_FAIL(p->err, "%s: tensor '%s': unknown dtype %s", p->where, name, what);
    }

    DICE_CHECK(p->err, cJSON_IsArray(shape), "%s: tensor '%s': shape is not an array", p->where, name);
    int ndim = cJSON_GetArraySize(shape);
    DICE_CHECK(p->err, ndim <= ST_MAX_DIMS, "%s: tensor '%s': shape has %d dimensions, more than the %d supported",
               p->where, name, ndim, ST_MAX_DIMS);
    t->ndim = 0;
    uint64_t numel = 1;
    int overflow = 0;
    for (const cJSON *d = shape->child; d; d = d->next) {
        uint64_t v;
        if (json_uint(d, &v)) {
            json_describe(d, what, sizeof what);
            return DICE_FAIL(p->err, "%s: tensor '%s': shape[%d] is %s, not a non-negative integer", p->where,
                             name, t->ndim, what);
        }
        t->shape[t->ndim++] = (int64_t)v;
        overflow |= __builtin_mul_overflow(numel, v, &numel);
    }
    // a zero dimension makes the tensor empty whatever the others are
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] == 0) numel = 0, overflow = 0;
    uint64_t nbytes = 0;
    overflow |= numel > (uint64_t)INT64_MAX || __builtin_mul_overflow(numel, (uint64_t)dtype_size(t->dtype), &nbytes);
    DICE_CHECK(p->err, !overflow, "%s: tensor '%s': shape overflows (more than 2^63 elements or bytes)", p->where,
               name);

    DICE_CHECK(p->err, cJSON_IsArray(offsets) && cJSON_GetArraySize(offsets) == 2,
               "%s: tensor '%s': data_offsets is not an array of two integers", p->where, name);
    for (int k = 0; k < 2; k++) {
        const cJSON *o = cJSON_GetArrayItem(offsets, k);
        if (json_uint(o, k == 0 ? &t->begin : &t->end)) {
            json_describe(o, what, sizeof what);
            return DICE_FAIL(p->err, "%s: tensor '%s': data_offsets[%d] is %s, not a non-negative integer",
                             p->where, name, k, what);
        }
    }
    DICE_CHECK(p->err, t->begin <= t->end, "%s: tensor '%s': data_offsets [%llu, %llu] begin after end", p->where,
               name, (unsigned long long)t->begin, (unsigned long long)t->end);
    DICE_CHECK(p->err, t->end <= p->f->data_size,
               "%s: tensor '%s': data_offsets [%llu, %llu] past the end of the %llu-byte data section "
               "(file truncated?)",
               p->where, name, (unsigned long long)t->begin, (unsigned long long)t->end,
               (unsigned long long)p->f->data_size);
    DICE_CHECK(p->err, t->end - t->begin == nbytes,
               "%s: tensor '%s': %s shape of %llu elements needs %llu bytes but data_offsets [%llu, %llu] hold %llu",
               p->where, name, dtype_st_name(t->dtype), (unsigned long long)numel, (unsigned long long)nbytes,
               (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)(t->end - t->begin));
    t->data = p->f->data + t->begin;
    return 0;
}

// Names unique; byte ranges, in offset order, tile the data section exactly.
static int check_layout(StParse *p) {
    StFile *f = p->f;
    int n = f->n_tensors;
    f->name_order = malloc(((size_t)n + 1) * sizeof *f->name_order);
    int *by_offset = malloc(((size_t)n + 1) * sizeof *by_offset);
    if (!f->name_order || !by_offset) {
        free(by_offset);
        return DICE_FAIL(p->err, "%s: out of memory for %d tensors", p->where, n);
    }
    for (int i = 0; i < n; i++) f->name_order[i] = by_offset[i] = i;
    qsort_r(f->name_order, (size_t)n, sizeof(int), cmp_by_name, f->tensors);
    qsort_r(by_offset, (size_t)n, sizeof(int), cmp_by_offset, f->tensors);
    char a[160], b[160];
    for (int i = 1; i < n; i++) {
        const char *x = f->tensors[f->name_order[i - 1]].name, *y = f->tensors[f->name_order[i]].name;
        if (!strcmp(x, y)) {
            free(by_offset);
            st_printable(a, sizeof a, y);
            return DICE_FAIL(p->err, "%s: duplicate tensor name '%s'", p->where, a);
        }
    }
    // The reference implementation requires each tensor to start where the previous one ended;
    // we do the same, with a message that says which rule was broken.
    uint64_t covered = 0;
    const StTensorInfo *prev = NULL;
    for (int i = 0; i < n; i++) {
        const StTensorInfo *t = &f->tensors[by_offset[i]];
        if (t->begin < covered) {
            st_printable(a, sizeof a, t->name);
            st_printable(b, sizeof b, prev->name);
            int rc = DICE_FAIL(p->err, "%s: tensor '%s' bytes [%llu, %llu) overlap tensor '%s' bytes [%llu, %llu)",
                               p->where, a, (unsigned long long)t->begin, (unsigned long long)t->end, b,
                               (unsigned long long)prev->begin, (unsigned long long)prev->end);
            free(by_offset);
            return rc;
        }
        if (t->begin > covered) {
            st_printable(a, sizeof a, t->name);
            int rc = DICE_FAIL(p->err,
                               "%s: hole of %llu unused bytes in the data section before tensor '%s' at %llu "
                               "(the format requires the tensors to cover it exactly)",
                               p->where, (unsigned long long)(t->begin - covered), a, (unsigned long long)t->begin);
            free(by_offset);
            return rc;
        }
        covered = t->end;
        if (t->end > t->begin || !prev) prev = t;
    }
    free(by_offset);
    DICE_CHECK(p->err, covered == f->data_size,
               "%s: %llu unused bytes after the last tensor (data section %llu bytes, tensors end at %llu; "
               "the format requires the tensors to cover it exactly)",
               p->where, (unsigned long long)(f->data_size - covered), (unsigned long long)f->data_size,
               (unsigned long long)covered);
    return 0;
}

static int parse_header(StParse *p) {
    StFile *f = p->f;
    const uint8_t *hdr = (const uint8_t *)f->map + 8;
    size_t n = (size_t)f->header_len;
    size_t bad = utf8_invalid_at(hdr, n);
    DICE_CHECK(p->err, bad == n, "%s: header is not valid UTF-8 (byte %zu of the header)", p->where, bad);
    // JSON allows no raw control characters, in strings or outside them; refusing them here also keeps
    // NUL bytes from cutting names short once they are C strings.
    for (size_t i = 0; i < n; i++)
        DICE_CHECK(p->err, hdr[i] >= 0x20 || is_json_space(hdr[i]),
                   "%s: header has the control byte 0x%02x at byte %zu, not valid JSON", p->where, hdr[i], i);

    char *text = malloc(n + 1);  // cJSON reads a NUL-terminated copy, never the mapping
    DICE_CHECK(p->err, text, "%s: out of memory for a %zu-byte header", p->where, n);
    memcpy(text, hdr, n);
    text[n] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - text) : 0;
        free(text);
        return DICE_FAIL(p->err, "%s: header is not valid JSON (error near byte %zu of %zu)", p->where, at, n);
    }
    size_t used = (size_t)(end - text);
    free(text);
    int rc = 0;
    for (size_t i = used; i < n && !rc; i++)  // the reference writer pads with spaces
        if (!is_json_space(hdr[i]))
            rc = DICE_FAIL(p->err, "%s: header has bytes after the JSON value (at byte %zu of %zu)", p->where, i, n);
    if (!rc && !cJSON_IsObject(root)) rc = DICE_FAIL(p->err, "%s: header is not a JSON object", p->where);
    if (rc) {
        cJSON_Delete(root);
        return rc;
    }

    int n_entries = cJSON_GetArraySize(root);
    f->tensors = calloc((size_t)n_entries + 1, sizeof *f->tensors);
    if (!f->tensors) {
        cJSON_Delete(root);
        return DICE_FAIL(p->err, "%s: out of memory for %d tensors", p->where, n_entries);
    }
    const cJSON *meta = NULL;
    for (const cJSON *e = root->child; e && !rc; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (meta) rc = DICE_FAIL(p->err, "%s: __metadata__ appears twice", p->where);
            meta = e;
            if (!rc) rc = parse_metadata(p, e);
            continue;
        }
        StTensorInfo *t = &f->tensors[f->n_tensors++];
        t->name = strdup(e->string);
        if (!t->name) rc = DICE_FAIL(p->err, "%s: out of memory", p->where);
        else rc = parse_entry(p, e, t);
    }
    cJSON_Delete(root);
    DICE_TRY(rc);
    return check_layout(p);
}

int st_open(StFile *f, const char *path, DiceError *err) {
    memset(f, 0, sizeof *f);
    StParse p = {.f = f, .err = err};
    st_printable(p.where, sizeof p.where, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    DICE_CHECK(err, fd >= 0, "%s: cannot open: %s", p.where, strerror(errno));
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0) rc = DICE_FAIL(err, "%s: cannot stat: %s", p.where, strerror(errno));
    else if (S_ISDIR(sb.st_mode)) rc = DICE_FAIL(err, "%s: is a directory, not a safetensors file", p.where);
    else if (!S_ISREG(sb.st_mode)) rc = DICE_FAIL(err, "%s: not a regular file", p.where);
    else if (sb.st_size < 8)
        rc = DICE_FAIL(err, "%s: file is %lld bytes, shorter than the 8-byte header length", p.where,
                       (long long)sb.st_size);
    if (!rc) {
        f->file_size = (size_t)sb.st_size;
        void *map = mmap(NULL, f->file_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) rc = DICE_FAIL(err, "%s: cannot map %zu bytes: %s", p.where, f->file_size, strerror(errno));
        else f->map = map;
    }
    close(fd);
    if (!rc) {
        f->header_len = read_le64((const uint8_t *)f->map);
        uint64_t room = (uint64_t)f->file_size - 8;
        if (f->header_len == 0) rc = DICE_FAIL(err, "%s: header length is 0", p.where);
        else if (f->header_len > ST_MAX_HEADER)
            rc = DICE_FAIL(err, "%s: header length %llu exceeds the format's limit of %llu bytes (not a safetensors file?)",
                           p.where, (unsigned long long)f->header_len, ST_MAX_HEADER);
        else if (f->header_len > room)
            rc = DICE_FAIL(err, "%s: header length %llu exceeds file size %zu", p.where,
                           (unsigned long long)f->header_len, f->file_size);
    }
    if (!rc) {
        f->data = (const uint8_t *)f->map + 8 + f->header_len;
        f->data_size = (uint64_t)f->file_size - 8 - f->header_len;
        rc = parse_header(&p);
    }
    if (!rc) {
        f->path = strdup(path);
        if (!f->path) rc = DICE_FAIL(err, "%s: out of memory", p.where);
    }
    if (rc) st_close(f);
    return rc;
}

void st_close(StFile *f) {
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) free(f->meta_keys[i]), free(f->meta_values[i]);
    free(f->tensors);
    free(f->name_order);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    if (f->map) munmap(f->map, f->file_size);
    memset(f, 0, sizeof *f);
}

const StTensorInfo *st_find(const StFile *f, const char *name) {
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const StTensorInfo *t = &f->tensors[f->name_order[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *st_meta(const StFile *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_values[i];
    return NULL;
}

int64_t st_numel(const StTensorInfo *t) {
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] == 0) return 0;  // before multiplying: the other dimensions may be huge
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];  // validated by st_open: cannot overflow
    return n;
}

// ---------------------------------------------------------------- writer

// A growable text buffer for the header.
typedef struct StBuf {
    char *p;
    size_t len, cap;
    int oom;
} StBuf;

static void buf_put(StBuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(StBuf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_u64(StBuf *b, uint64_t v) {
    char s[24];
    int n = snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    buf_put(b, s, (size_t)n);
}

// A JSON string literal escaped as serde_json (the reference writer) does: \" \\ \b \f \n \r \t,
// other control characters as \u00xx, UTF-8 passed through.
static void buf_json_string(StBuf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    buf_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char e[6] = {'\\', 0, '0', '0', hex[*c >> 4], hex[*c & 15]};
        switch (*c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default: e[1] = *c < 0x20 ? 'u' : 0;
        }
        if (e[1] == 'u') buf_put(b, e, 6);
        else if (e[1]) buf_put(b, e, 2);
        else buf_put(b, (const char *)c, 1);
    }
    buf_put(b, "\"", 1);
}

static int check_utf8_string(const char *s, const char *what, DiceError *err) {
    size_t n = strlen(s);
    if (utf8_invalid_at((const uint8_t *)s, n) == n) return 0;
    char shown[160];
    st_printable(shown, sizeof shown, s);
    return DICE_FAIL(err, "%s '%s' is not valid UTF-8", what, shown);
}

static int cmp_write_names(const void *a, const void *b) {
    return strcmp((*(const StWriteTensor *const *)a)->name, (*(const StWriteTensor *const *)b)->name);
}

// Checks the inputs and fills nbytes[i]; on failure err names the bad tensor or key.
static int validate_write(const char *where, const StWriteTensor *tensors, int n_tensors,
                          const char *const *meta_keys, const char *const *meta_values, int n_meta,
                          uint64_t *nbytes, DiceError *err) {
    DICE_CHECK(err, n_tensors >= 0 && n_meta >= 0, "%s: negative count (%d tensors, %d metadata)", where, n_tensors,
               n_meta);
    DICE_CHECK(err, n_tensors == 0 || tensors, "%s: %d tensors but no tensor array", where, n_tensors);
    DICE_CHECK(err, n_meta == 0 || (meta_keys && meta_values), "%s: %d metadata entries but no arrays", where, n_meta);
    for (int i = 0; i < n_tensors; i++) {
        const StWriteTensor *t = &tensors[i];
        DICE_CHECK(err, t->name && t->name[0], "%s: tensor %d has no name", where, i);
        if (check_utf8_string(t->name, "tensor name", err)) {
            dice_error_context(err, "%s", where);
            return -1;
        }
        char name[160];
        st_printable(name, sizeof name, t->name);
        DICE_CHECK(err, strcmp(t->name, "__metadata__"), "%s: '__metadata__' is reserved, not a tensor name", where);
        DICE_CHECK(err, (unsigned)t->dtype < DT_COUNT, "%s: tensor '%s': invalid dtype %d", where, name, (int)t->dtype);
        DICE_CHECK(err, t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "%s: tensor '%s': %d dimensions (0 to %d allowed)",
                   where, name, t->ndim, ST_MAX_DIMS);
        uint64_t numel = 1;
        int overflow = 0, empty = 0;
        for (int d = 0; d < t->ndim; d++) {
            DICE_CHECK(err, t->shape[d] >= 0, "%s: tensor '%s': shape[%d] = %lld is negative", where, name, d,
                       (long long)t->shape[d]);
            empty |= t->shape[d] == 0;
            overflow |= __builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel);
        }
        if (empty) numel = 0, overflow = 0;
        overflow |= __builtin_mul_overflow(numel, (uint64_t)dtype_size(t->dtype), &nbytes[i]);
        DICE_CHECK(err, !overflow && nbytes[i] < (uint64_t)ST_MAX_EXACT, "%s: tensor '%s': shape too large", where,
                   name);
        DICE_CHECK(err, nbytes[i] == 0 || t->data, "%s: tensor '%s': no data for %llu bytes", where, name,
                   (unsigned long long)nbytes[i]);
    }
    const StWriteTensor **sorted = malloc(((size_t)n_tensors + 1) * sizeof *sorted);
    DICE_CHECK(err, sorted, "%s: out of memory", where);
    for (int i = 0; i < n_tensors; i++) sorted[i] = &tensors[i];
    qsort(sorted, (size_t)n_tensors, sizeof *sorted, cmp_write_names);
    for (int i = 1; i < n_tensors; i++)
        if (!strcmp(sorted[i - 1]->name, sorted[i]->name)) {
            char name[160];
            st_printable(name, sizeof name, sorted[i]->name);
            free(sorted);
            return DICE_FAIL(err, "%s: duplicate tensor name '%s'", where, name);
        }
    free(sorted);
    for (int i = 0; i < n_meta; i++) {
        DICE_CHECK(err, meta_keys[i] && meta_values[i], "%s: metadata entry %d is NULL", where, i);
        if (check_utf8_string(meta_keys[i], "metadata key", err) ||
            check_utf8_string(meta_values[i], "metadata value", err)) {
            dice_error_context(err, "%s", where);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(meta_keys[i], meta_keys[j])) {
                char key[160];
                st_printable(key, sizeof key, meta_keys[i]);
                return DICE_FAIL(err, "%s: duplicate metadata key '%s'", where, key);
            }
    }
    return 0;
}

// The header JSON, in the reference writer's layout: compact, __metadata__ first, then the
// tensors in the given order with contiguous offsets, padded with spaces to a multiple of 8.
static int build_header(const char *where, const StWriteTensor *tensors, int n_tensors,
                        const char *const *meta_keys, const char *const *meta_values, int n_meta,
                        const uint64_t *nbytes, StBuf *b, DiceError *err) {
    buf_str(b, "{");
    if (n_meta > 0) {
        buf_str(b, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) buf_str(b, ",");
            buf_json_string(b, meta_keys[i]);
            buf_str(b, ":");
            buf_json_string(b, meta_values[i]);
        }
        buf_str(b, "}");
    }
    uint64_t offset = 0;
    for (int i = 0; i < n_tensors; i++) {
        const StWriteTensor *t = &tensors[i];
        if (i || n_meta > 0) buf_str(b, ",");
        buf_json_string(b, t->name);
        buf_str(b, ":{\"dtype\":\"");
        buf_str(b, dtype_st_name(t->dtype));
        buf_str(b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) buf_str(b, ",");
            buf_u64(b, (uint64_t)t->shape[d]);
        }
        buf_str(b, "],\"data_offsets\":[");
        buf_u64(b, offset);
        buf_str(b, ",");
        DICE_CHECK(err, !__builtin_add_overflow(offset, nbytes[i], &offset) && offset < (uint64_t)ST_MAX_EXACT,
                   "%s: total data size too large", where);
        buf_u64(b, offset);
        buf_str(b, "]}");
    }
    buf_str(b, "}");
    while (!b->oom && b->len % 8) buf_str(b, " ");
    DICE_CHECK(err, !b->oom, "%s: out of memory building the header", where);
    DICE_CHECK(err, b->len <= ST_MAX_HEADER, "%s: header of %zu bytes exceeds the format's limit of %llu", where,
               b->len, ST_MAX_HEADER);
    return 0;
}

// Writes everything to the open temporary file; fails on the first short write.
static int write_contents(FILE *fp, const char *tmp, const StBuf *hdr, const StWriteTensor *tensors, int n_tensors,
                          const uint64_t *nbytes, DiceError *err) {
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)hdr->len >> (8 * i));
    DICE_CHECK(err, fwrite(len, 1, 8, fp) == 8, "%s: write failed: %s", tmp, strerror(errno));
    DICE_CHECK(err, fwrite(hdr->p, 1, hdr->len, fp) == hdr->len, "%s: write failed: %s", tmp, strerror(errno));
    for (int i = 0; i < n_tensors; i++)
        DICE_CHECK(err, nbytes[i] == 0 || fwrite(tensors[i].data, 1, nbytes[i], fp) == nbytes[i],
                   "%s: write failed: %s", tmp, strerror(errno));
    DICE_CHECK(err, fflush(fp) == 0, "%s: write failed: %s", tmp, strerror(errno));
    DICE_CHECK(err, fsync(fileno(fp)) == 0, "%s: fsync failed: %s", tmp, strerror(errno));
    return 0;
}

// fsync the directory holding path, so the rename itself survives a crash.
static int sync_parent_dir(const char *path, const char *where, DiceError *err) {
    char *copy = strdup(path);
    DICE_CHECK(err, copy, "%s: out of memory", where);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0 || fsync(fd) != 0)
        rc = DICE_FAIL(err, "%s: written, but syncing its directory failed: %s", where, strerror(errno));
    if (fd >= 0) close(fd);
    free(copy);
    return rc;
}

int st_write(const char *path, const StWriteTensor *tensors, int n_tensors, const char *const *meta_keys,
             const char *const *meta_values, int n_meta, DiceError *err) {
    char where[300];
    st_printable(where, sizeof where, path);
    uint64_t *nbytes = calloc((size_t)(n_tensors > 0 ? n_tensors : 0) + 1, sizeof *nbytes);
    DICE_CHECK(err, nbytes, "%s: out of memory", where);
    StBuf hdr = {0};
    char *tmp = NULL;
    FILE *fp = NULL;
    int rc = validate_write(where, tensors, n_tensors, meta_keys, meta_values, n_meta, nbytes, err);
    if (!rc) rc = build_header(where, tensors, n_tensors, meta_keys, meta_values, n_meta, nbytes, &hdr, err);
    if (!rc) {
        size_t cap = strlen(path) + 32;
        tmp = malloc(cap);
        if (!tmp) rc = DICE_FAIL(err, "%s: out of memory", where);
        else snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    }
    if (!rc) {
        fp = fopen(tmp, "wb");
        if (!fp) rc = DICE_FAIL(err, "%s: cannot create the temporary file %s.tmp.%ld: %s", where, where,
                                (long)getpid(), strerror(errno));
    }
    if (!rc) {
        rc = write_contents(fp, tmp, &hdr, tensors, n_tensors, nbytes, err);
        if (fclose(fp) != 0 && !rc) rc = DICE_FAIL(err, "%s: close failed: %s", tmp, strerror(errno));
        if (!rc && rename(tmp, path) != 0)
            rc = DICE_FAIL(err, "%s: cannot rename the temporary file into place: %s", where, strerror(errno));
        if (rc) unlink(tmp);
    }
    if (!rc) rc = sync_parent_dir(path, where, err);
    free(tmp);
    free(hdr.p);
    free(nbytes);
    return rc;
}
