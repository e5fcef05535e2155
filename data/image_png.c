// data/image_png.c — PNG writing and reading with libpng (see image.h). libpng reports fatal errors
// through longjmp; the handlers here copy its message into the DiceError first.
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"

typedef struct PngErrorSink {
    char message[256];
} PngErrorSink;

static void png_error_to_sink(png_structp png, png_const_charp msg) {
    PngErrorSink *sink = png_get_error_ptr(png);
    snprintf(sink->message, sizeof sink->message, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_ignored(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static int is_latin1(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return 0;
    return 1;
}

int image_write_png(const char *path, const Image *img, const char *const *keys, const char *const *values,
                    int n_text, DiceError *err) {
    DICE_CHECK(err, img->width > 0 && img->height > 0 && img->rgb, "%s: cannot write an empty image", path);
    char tmp[4096];
    DICE_CHECK(err, snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) < (int)sizeof tmp, "%s: path too long",
               path);
    FILE *f = fopen(tmp, "wb");
    DICE_CHECK(err, f, "%s: cannot create: %s", tmp, strerror(errno));
    PngErrorSink sink = {""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, png_error_to_sink, png_warning_ignored);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_textp text = calloc((size_t)(n_text > 0 ? n_text : 1), sizeof *text);
    int ok = png && info && text;
    if (ok && setjmp(png_jmpbuf(png))) ok = 0;
    if (ok) {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8, PNG_COLOR_TYPE_RGB,
                     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        for (int i = 0; i < n_text; i++) {
            text[i].key = (png_charp)keys[i];
            text[i].text = (png_charp)values[i];
            text[i].compression = is_latin1(values[i]) ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
        }
        if (n_text > 0) png_set_text(png, info, text, n_text);
        png_write_info(png, info);
        for (int y = 0; y < img->height; y++) png_write_row(png, img->rgb + (size_t)y * img->width * 3);
        png_write_end(png, info);
    }
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    free(text);
    int closed = fclose(f);
    if (!ok || closed != 0 || rename(tmp, path) != 0) {
        int saved_errno = errno;
        remove(tmp);
        if (!ok) return DICE_FAIL(err, "%s: writing PNG failed: %s", path, sink.message[0] ? sink.message : "out of memory");
        return DICE_FAIL(err, "%s: cannot write: %s", path, strerror(saved_errno));
    }
    return 0;
}

// Opens `path` and checks the PNG signature.
static FILE *open_png(const char *path, DiceError *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        DICE_FAIL(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8)) {
        fclose(f);
        DICE_FAIL(err, "%s: not a PNG file", path);
        return NULL;
    }
    return f;
}

int image_read_png(const char *path, Image *out, DiceError *err) {
    memset(out, 0, sizeof *out);
    FILE *f = open_png(path, err);
    if (!f) return -1;
    PngErrorSink sink = {""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &sink, png_error_to_sink, png_warning_ignored);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile pixels = NULL;
    int ok = png && info;
    if (ok && setjmp(png_jmpbuf(png))) ok = 0;
    if (ok) {
        png_init_io(png, f);
        png_set_sig_bytes(png, 8);
        png_set_user_limits(png, 1 << 15, 1 << 15);
        png_read_info(png, info);
        png_set_expand(png);        // palette, grey < 8 bits, tRNS -> 8-bit channels
        png_set_strip_16(png);
        png_set_strip_alpha(png);
        png_set_gray_to_rgb(png);
        png_set_interlace_handling(png);
        png_read_update_info(png, info);
        int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
        if (png_get_rowbytes(png, info) != (size_t)w * 3) png_error(png, "unexpected row layout after conversion");
        pixels = malloc((size_t)w * h * 3);
        png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
        if (!pixels || !rows) {
            free(rows);
            png_error(png, "out of memory");
        }
        for (int y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * 3;
        png_read_image(png, rows);
        free(rows);
        png_read_end(png, NULL);
        out->width = w;
        out->height = h;
        out->rgb = pixels;
    }
    png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
    fclose(f);
    if (!ok) {
        free(pixels);
        memset(out, 0, sizeof *out);
        return DICE_FAIL(err, "%s: corrupt PNG: %s", path, sink.message[0] ? sink.message : "out of memory");
    }
    return 0;
}

int image_png_text(const char *path, const char *key, char *buf, size_t bufsize, DiceError *err) {
    FILE *f = open_png(path, err);
    if (!f) return -1;
    PngErrorSink sink = {""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &sink, png_error_to_sink, png_warning_ignored);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int found = 0, ok = png && info;
    if (ok && setjmp(png_jmpbuf(png))) ok = 0;
    if (ok) {
        png_init_io(png, f);
        png_set_sig_bytes(png, 8);
        png_read_info(png, info);
        png_textp text;
        int n = 0;
        png_get_text(png, info, &text, &n);
        for (int i = 0; i < n && !found; i++)
            if (!strcmp(text[i].key, key)) {
                snprintf(buf, bufsize, "%s", text[i].text);
                found = 1;
            }
    }
    png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
    fclose(f);
    if (!ok) return DICE_FAIL(err, "%s: corrupt PNG: %s", path, sink.message);
    DICE_CHECK(err, found, "%s: no text chunk '%s'", path, key);
    return 0;
}

void image_free(Image *img) {
    free(img->rgb);
    memset(img, 0, sizeof *img);
}
