// tests/test_jpeg.c — JPEG fixture writer (see test_jpeg.h).
#include "test_jpeg.h"

#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>

int test_write_jpeg(const char *path, const Image *img, int grey, int quality) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)img->width;
    c.image_height = (JDIMENSION)img->height;
    c.input_components = grey ? 1 : 3;
    c.in_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    unsigned char *row = malloc((size_t)img->width * 3);
    while (c.next_scanline < c.image_height) {
        const unsigned char *src = img->rgb + (size_t)c.next_scanline * img->width * 3;
        for (int x = 0; x < img->width * (grey ? 1 : 3); x++) row[x] = grey ? src[3 * x] : src[x];
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return fclose(f);
}
