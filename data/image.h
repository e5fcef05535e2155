// data/image.h — 8-bit RGB images: PNG writing (with text chunks, e.g. the A1111 "parameters"
// chunk), PNG and JPEG reading. Pixels are row-major, interleaved RGB (H, W, 3), uint8.
// Corrupt or truncated files give a clear error naming the file, never a crash or an exit
// (libpng's and libjpeg's fatal-error handlers are replaced).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Image {
    int width, height;
    uint8_t *rgb;   // width * height * 3 bytes (heap; image_free)
} Image;

// Writes through a temporary file and renames it. keys/values: n_text tEXt chunks (Latin-1 text;
// other bytes are written as UTF-8 in an iTXt chunk).
int image_write_png(const char *path, const Image *img, const char *const *keys, const char *const *values,
                    int n_text, DiceError *err);
// Reads an 8-bit or 16-bit PNG of any colour type, converted to RGB (alpha dropped, grey expanded).
int image_read_png(const char *path, Image *out, DiceError *err);
// Reads a baseline or progressive JPEG (grey or colour) as RGB.
int image_read_jpeg(const char *path, Image *out, DiceError *err);
// Value of text chunk `key` of a PNG into buf (NUL-terminated, truncated to bufsize); -1 if absent.
int image_png_text(const char *path, const char *key, char *buf, size_t bufsize, DiceError *err);
void image_free(Image *img);

#ifdef __cplusplus
}
#endif
