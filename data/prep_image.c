// data/prep_image.c — the image side of `dice prep`: decoding by extension, the authors' centre crop, PIL's
// antialiased bilinear resize (Image.resize(..., BILINEAR) on 8-bit RGB, the same arithmetic to the bit) and
// the [-1, 1] normalisation. See data/prep.h.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/prep.h"

#define RESAMPLE_BITS 22   // fixed-point fraction bits of the 8-bit path: 32 - 8 - 2, as PIL

static const char *extension(const char *path) {
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    return dot && (!slash || dot > slash) ? dot : "";
}

int prep_load_image(const char *path, Image *out, DiceError *err) {
    const char *ext = extension(path);
    memset(out, 0, sizeof *out);
    if (!strcasecmp(ext, ".jpg") || !strcasecmp(ext, ".jpeg")) return image_read_jpeg(path, out, err);
    if (!strcasecmp(ext, ".png")) return image_read_png(path, out, err);
    return DICE_FAIL(err, "%s: unsupported image type (the extension must be .jpg, .jpeg or .png)", path);
}

// The triangle filter of support 1.
static double triangle(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

// One axis of the resampling: out_size taps windows over in_size samples. Output i reads inputs
// first[i] .. first[i] + count[i] - 1 with fixed-point weights coef[i * ksize + j].
typedef struct Taps {
    int ksize;
    int *first, *count;
    int32_t *coef;
} Taps;

static void taps_free(Taps *t) {
    free(t->first);
    free(t->count);
    free(t->coef);
}

// PIL's precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size).
static int taps_init(Taps *t, int in_size, int out_size, DiceError *err) {
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale, ss = 1.0 / filterscale;
    t->ksize = (int)ceil(support) * 2 + 1;
    t->first = malloc((size_t)out_size * sizeof *t->first);
    t->count = malloc((size_t)out_size * sizeof *t->count);
    t->coef = calloc((size_t)out_size * (size_t)t->ksize, sizeof *t->coef);
    double *w = malloc((size_t)t->ksize * sizeof *w);
    if (!t->first || !t->count || !t->coef || !w) {
        free(w);
        taps_free(t);
        return DICE_FAIL(err, "resize: out of memory (%d -> %d)", in_size, out_size);
    }
    for (int i = 0; i < out_size; i++) {
        double center = (i + 0.5) * scale, sum = 0.0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);  // truncation, as PIL
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        int n = hi - lo;
        for (int j = 0; j < n; j++) {
            w[j] = triangle((j + lo - center + 0.5) * ss);
            sum += w[j];
        }
        for (int j = 0; j < n; j++) {
            double k = sum != 0.0 ? w[j] / sum : w[j];
            double fixed = k * (1 << RESAMPLE_BITS);
            t->coef[(size_t)i * t->ksize + j] = (int32_t)(k < 0 ? fixed - 0.5 : fixed + 0.5);
        }
        t->first[i] = lo;
        t->count[i] = n;
    }
    free(w);
    return 0;
}

// The accumulator's rounding and PIL's clip8: (acc >> 22) clipped to 0 .. 255.
static uint8_t clip8(int32_t acc) {
    int32_t v = acc >> RESAMPLE_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

// dst (rows, out_w, 3) <- horizontal pass over src rows row0 .. row0 + rows - 1 (src_w wide).
static void pass_horizontal(const uint8_t *src, int src_w, int row0, int rows, const Taps *t, int out_w,
                            uint8_t *dst) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *line = src + (size_t)(row0 + y) * src_w * 3;
        for (int x = 0; x < out_w; x++) {
            const int32_t *k = t->coef + (size_t)x * t->ksize;
            int32_t acc[3] = {1 << (RESAMPLE_BITS - 1), 1 << (RESAMPLE_BITS - 1), 1 << (RESAMPLE_BITS - 1)};
            for (int j = 0; j < t->count[x]; j++) {
                const uint8_t *p = line + (size_t)(t->first[x] + j) * 3;
                for (int c = 0; c < 3; c++) acc[c] += p[c] * k[j];
            }
            for (int c = 0; c < 3; c++) dst[((size_t)y * out_w + x) * 3 + c] = clip8(acc[c]);
        }
    }
}

// dst (out_h, w, 3) <- vertical pass over src (w wide), taps relative to src row `shift`.
static void pass_vertical(const uint8_t *src, int w, int shift, const Taps *t, int out_h, uint8_t *dst) {
    for (int y = 0; y < out_h; y++) {
        const int32_t *k = t->coef + (size_t)y * t->ksize;
        for (int x = 0; x < w; x++) {
            int32_t acc[3] = {1 << (RESAMPLE_BITS - 1), 1 << (RESAMPLE_BITS - 1), 1 << (RESAMPLE_BITS - 1)};
            for (int j = 0; j < t->count[y]; j++) {
                const uint8_t *p = src + ((size_t)(t->first[y] - shift + j) * w + x) * 3;
                for (int c = 0; c < 3; c++) acc[c] += p[c] * k[j];
            }
            for (int c = 0; c < 3; c++) dst[((size_t)y * w + x) * 3 + c] = clip8(acc[c]);
        }
    }
}

int prep_resize_bilinear(const Image *in, int out_w, int out_h, Image *out, DiceError *err) {
    memset(out, 0, sizeof *out);
    DICE_CHECK(err, in->width >= 1 && in->height >= 1 && out_w >= 1 && out_h >= 1,
               "resize: bad sizes %dx%d -> %dx%d", in->width, in->height, out_w, out_h);
    out->rgb = malloc((size_t)out_w * out_h * 3);
    DICE_CHECK(err, out->rgb, "resize: out of memory for %dx%d", out_w, out_h);
    out->width = out_w;
    out->height = out_h;
    int need_h = out_w != in->width, need_v = out_h != in->height;
    if (!need_h && !need_v) {
        memcpy(out->rgb, in->rgb, (size_t)out_w * out_h * 3);
        return 0;
    }
    Taps th = {0}, tv = {0};
    if (taps_init(&tv, in->height, out_h, err)) {
        image_free(out);
        return -1;
    }
    // PIL resamples horizontally only the rows the vertical pass reads.
    int row0 = tv.first[0], row1 = tv.first[out_h - 1] + tv.count[out_h - 1];
    const uint8_t *src = in->rgb;
    uint8_t *tmp = NULL;
    int rc = 0, shift = 0;
    if (need_h) {
        rc = taps_init(&th, in->width, out_w, err);
        tmp = rc ? NULL : malloc((size_t)(row1 - row0) * out_w * 3);
        if (!rc && !tmp) rc = DICE_FAIL(err, "resize: out of memory");
        if (!rc) {
            pass_horizontal(in->rgb, in->width, row0, row1 - row0, &th, out_w, need_v ? tmp : out->rgb);
            src = tmp;
            shift = row0;
        }
    }
    if (!rc && need_v) pass_vertical(src, out_w, shift, &tv, out_h, out->rgb);
    free(tmp);
    taps_free(&th);
    taps_free(&tv);
    if (rc) image_free(out);
    return rc;
}

int prep_transform(const Image *in, int size, Image *out, DiceError *err) {
    memset(out, 0, sizeof *out);
    DICE_CHECK(err, size >= 1 && in->width >= 1 && in->height >= 1, "transform: bad sizes %dx%d -> %d", in->width,
               in->height, size);
    int m = in->width < in->height ? in->width : in->height;
    int top = (in->height - m) / 2, left = (in->width - m) / 2;
    Image square = {m, m, malloc((size_t)m * m * 3)};
    DICE_CHECK(err, square.rgb, "transform: out of memory for %dx%d", m, m);
    for (int y = 0; y < m; y++)
        memcpy(square.rgb + (size_t)y * m * 3, in->rgb + ((size_t)(top + y) * in->width + left) * 3, (size_t)m * 3);
    int rc = prep_resize_bilinear(&square, size, size, out, err);
    image_free(&square);
    return rc;
}

void prep_normalize(const Image *img, float *out) {
    size_t n = (size_t)img->width * img->height * 3;
    for (size_t i = 0; i < n; i++) out[i] = (float)img->rgb[i] / 127.5f - 1.0f;
}
