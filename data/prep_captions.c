// data/prep_captions.c — COCO caption files (captions_train2017.json as distributed) to one caption per image
// (see data/prep.h for the checks and the caption rule).
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/prep.h"
#include "nn/philox.h"

typedef struct ImageRef {
    int64_t id;
    const char *file_name;   // inside the cJSON tree
    int64_t index;           // position in "images"
} ImageRef;

typedef struct AnnRef {
    int64_t image_id, id;
    const char *caption;     // inside the cJSON tree
    int64_t index;           // position in "annotations"
} AnnRef;

static int cmp_image(const void *a, const void *b) {
    int64_t x = ((const ImageRef *)a)->id, y = ((const ImageRef *)b)->id;
    return (x > y) - (x < y);
}

static int cmp_ann(const void *a, const void *b) {
    const AnnRef *x = a, *y = b;
    if (x->image_id != y->image_id) return (x->image_id > y->image_id) - (x->image_id < y->image_id);
    return (x->id > y->id) - (x->id < y->id);
}

int prep_caption_choice(uint64_t seed, int64_t image_id, int n) {
    float u;
    philox_fill_uniform_f32(&u, 1, seed, (uint64_t)image_id);
    int k = (int)floor((double)u * n);  // u < 1, so k < n
    return k < n ? k : n - 1;
}

// An integer member (JSON numbers are doubles: exact up to 2^53).
static int get_int(const cJSON *obj, const char *key, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 9007199254740992.0)
        return -1;
    *out = (int64_t)v->valuedouble;
    return 0;
}

static const char *get_str(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// A path inside the images directory: relative, non-empty, no ".." component.
static int safe_relative(const char *p) {
    if (!p[0] || p[0] == '/') return 0;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.') return 0;
        s += n + (e != NULL);
    }
    return 1;
}

static int collect_images(const cJSON *images, const char *source, ImageRef *out, DiceError *err) {
    int64_t i = 0;
    const cJSON *im;
    cJSON_ArrayForEach(im, images) {
        DICE_CHECK(err, cJSON_IsObject(im), "%s: images[%lld] is not an object", source, (long long)i);
        DICE_CHECK(err, !get_int(im, "id", &out[i].id), "%s: images[%lld] has no integer \"id\"", source,
                   (long long)i);
        out[i].file_name = get_str(im, "file_name");
        DICE_CHECK(err, out[i].file_name, "%s: images[%lld] (id %lld) has no string \"file_name\"", source,
                   (long long)i, (long long)out[i].id);
        DICE_CHECK(err, safe_relative(out[i].file_name),
                   "%s: images[%lld] (id %lld): file_name \"%.200s\" must be a relative path without \"..\"", source,
                   (long long)i, (long long)out[i].id, out[i].file_name);
        out[i].index = i;
        i++;
    }
    return 0;
}

static int collect_annotations(const cJSON *anns, const char *source, AnnRef *out, DiceError *err) {
    int64_t i = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, anns) {
        DICE_CHECK(err, cJSON_IsObject(a), "%s: annotations[%lld] is not an object", source, (long long)i);
        DICE_CHECK(err, !get_int(a, "image_id", &out[i].image_id), "%s: annotations[%lld] has no integer \"image_id\"",
                   source, (long long)i);
        DICE_CHECK(err, !get_int(a, "id", &out[i].id), "%s: annotations[%lld] has no integer \"id\"", source,
                   (long long)i);
        out[i].caption = get_str(a, "caption");
        DICE_CHECK(err, out[i].caption, "%s: annotations[%lld] (id %lld) has no string \"caption\"", source,
                   (long long)i, (long long)out[i].id);
        out[i].index = i;
        i++;
    }
    return 0;
}

static const ImageRef *find_image(const ImageRef *im, int64_t n, int64_t id) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (im[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && im[lo].id == id ? &im[lo] : NULL;
}

// Sorted, checked images and annotations -> pc's entries (copies of the chosen strings).
static int build_entries(PrepCaptions *pc, const ImageRef *im, int64_t n_im, const AnnRef *an, int64_t n_an,
                         uint64_t seed, DiceError *err) {
    size_t bytes = 0;
    int64_t n_entries = 0;
    for (int64_t i = 0, a = 0; i < n_im; i++) {
        int64_t a0 = a;
        while (a < n_an && an[a].image_id == im[i].id) a++;
        if (a == a0) continue;
        int k = prep_caption_choice(seed, im[i].id, (int)(a - a0));
        bytes += strlen(im[i].file_name) + strlen(an[a0 + k].caption) + 2;
        n_entries++;
    }
    pc->entries = calloc((size_t)n_entries + 1, sizeof *pc->entries);
    pc->storage = malloc(bytes + 1);
    DICE_CHECK(err, pc->entries && pc->storage, "captions: out of memory for %lld entries", (long long)n_entries);
    char *s = pc->storage;
    for (int64_t i = 0, a = 0; i < n_im; i++) {
        int64_t a0 = a;
        while (a < n_an && an[a].image_id == im[i].id) a++;
        if (a == a0) {
            pc->n_uncaptioned++;
            continue;
        }
        PrepEntry *e = &pc->entries[pc->n_entries++];
        e->image_id = im[i].id;
        e->n_captions = (int)(a - a0);
        e->caption_index = prep_caption_choice(seed, im[i].id, e->n_captions);
        size_t nf = strlen(im[i].file_name) + 1, nc = strlen(an[a0 + e->caption_index].caption) + 1;
        e->file_name = memcpy(s, im[i].file_name, nf);
        s += nf;
        e->caption = memcpy(s, an[a0 + e->caption_index].caption, nc);
        s += nc;
    }
    return 0;
}

static int parse_tree(PrepCaptions *pc, const cJSON *root, const char *source, uint64_t seed, DiceError *err) {
    DICE_CHECK(err, cJSON_IsObject(root), "%s: the top level is not a JSON object (expected COCO's caption file)",
               source);
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(root, "images");
    const cJSON *anns = cJSON_GetObjectItemCaseSensitive(root, "annotations");
    DICE_CHECK(err, cJSON_IsArray(images), "%s: no \"images\" array (expected COCO's caption file, e.g. "
               "captions_train2017.json)", source);
    DICE_CHECK(err, cJSON_IsArray(anns), "%s: no \"annotations\" array (expected COCO's caption file, e.g. "
               "captions_train2017.json)", source);
    int64_t n_im = cJSON_GetArraySize(images), n_an = cJSON_GetArraySize(anns);
    pc->n_images = n_im;
    pc->n_annotations = n_an;
    ImageRef *im = malloc(((size_t)n_im + 1) * sizeof *im);
    AnnRef *an = malloc(((size_t)n_an + 1) * sizeof *an);
    int rc = im && an ? 0 : DICE_FAIL(err, "%s: out of memory", source);
    if (!rc) rc = collect_images(images, source, im, err);
    if (!rc) rc = collect_annotations(anns, source, an, err);
    if (!rc) {
        qsort(im, (size_t)n_im, sizeof *im, cmp_image);
        qsort(an, (size_t)n_an, sizeof *an, cmp_ann);
    }
    for (int64_t i = 1; !rc && i < n_im; i++)
        if (im[i].id == im[i - 1].id)
            rc = DICE_FAIL(err, "%s: images[%lld] and images[%lld] have the same id %lld", source,
                           (long long)im[i - 1].index, (long long)im[i].index, (long long)im[i].id);
    for (int64_t a = 0; !rc && a < n_an; a++) {
        if (!find_image(im, n_im, an[a].image_id))
            rc = DICE_FAIL(err, "%s: annotations[%lld] (id %lld): image_id %lld is not in \"images\"", source,
                           (long long)an[a].index, (long long)an[a].id, (long long)an[a].image_id);
        else if (a > 0 && an[a].image_id == an[a - 1].image_id && an[a].id == an[a - 1].id)
            rc = DICE_FAIL(err, "%s: annotations[%lld] and annotations[%lld] have the same id %lld", source,
                           (long long)an[a - 1].index, (long long)an[a].index, (long long)an[a].id);
    }
    if (!rc) rc = build_entries(pc, im, n_im, an, n_an, seed, err);
    free(im);
    free(an);
    return rc;
}

int prep_captions_parse(PrepCaptions *pc, const char *json, size_t len, const char *source, uint64_t seed,
                        DiceError *err) {
    memset(pc, 0, sizeof *pc);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long offset = at && at >= json && at <= json + len ? (long)(at - json) : -1;
        return DICE_FAIL(err, "%s: not valid JSON (error near byte %ld)", source, offset);
    }
    int rc = parse_tree(pc, root, source, seed, err);
    cJSON_Delete(root);
    if (rc) prep_captions_free(pc);
    return rc;
}

int prep_captions_load(PrepCaptions *pc, const char *path, uint64_t seed, DiceError *err) {
    memset(pc, 0, sizeof *pc);
    FILE *f = fopen(path, "rb");
    DICE_CHECK(err, f, "%s: cannot open the caption file: %s", path, strerror(errno));
    char *text = NULL;
    long size = -1;
    if (!fseek(f, 0, SEEK_END)) size = ftell(f);
    if (size >= 0 && !fseek(f, 0, SEEK_SET)) text = malloc((size_t)size + 1);
    int ok = text && fread(text, 1, (size_t)size, f) == (size_t)size;
    fclose(f);
    if (!ok) {
        free(text);
        return DICE_FAIL(err, "%s: cannot read the caption file (%ld bytes)", path, size);
    }
    text[size] = '\0';
    int rc = prep_captions_parse(pc, text, (size_t)size, path, seed, err);
    free(text);
    return rc;
}

void prep_captions_free(PrepCaptions *pc) {
    free(pc->entries);
    free(pc->storage);
    memset(pc, 0, sizeof *pc);
}
