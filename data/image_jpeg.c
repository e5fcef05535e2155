// data/image_jpeg.c — JPEG reading with libjpeg (see image.h). libjpeg's default fatal-error handler
// calls exit(); it is replaced by one that records the message and longjmps back.
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "image.h"

typedef struct JpegErrorSink {
    struct jpeg_error_mgr mgr;  // first, so libjpeg's pointer is ours
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} JpegErrorSink;

static void jpeg_error_to_sink(j_common_ptr cinfo) {
    JpegErrorSink *sink = (JpegErrorSink *)cinfo->err;
    sink->mgr.format_message(cinfo, sink->message);
    longjmp(sink->jump, 1);
}

// Warnings (level -1) such as "Premature end of JPEG file" mean libjpeg filled in missing data: the
// first one is kept and the image is refused after decoding. Trace messages (level >= 0) are ignored.
static void jpeg_record_warning(j_common_ptr cinfo, int level) {
    JpegErrorSink *sink = (JpegErrorSink *)cinfo->err;
    if (level < 0 && sink->mgr.num_warnings++ == 0) sink->mgr.format_message(cinfo, sink->message);
}

int image_read_jpeg(const char *path, Image *out, DiceError *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    DICE_CHECK(err, f, "%s: cannot open: %s", path, strerror(errno));
    struct jpeg_decompress_struct cinfo;
    JpegErrorSink sink;
    memset(&sink, 0, sizeof sink);
    cinfo.err = jpeg_std_error(&sink.mgr);
    sink.mgr.error_exit = jpeg_error_to_sink;
    sink.mgr.emit_message = jpeg_record_warning;
    uint8_t *volatile pixels = NULL;
    if (setjmp(sink.jump)) {
        jpeg_destroy_decompress(&cinfo);
        fclose(f);
        free(pixels);
        return DICE_FAIL(err, "%s: corrupt JPEG: %s", path, sink.message);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;  // grey and YCbCr are converted; CMYK is refused below
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_components != 3 || cinfo.output_width > 32768 || cinfo.output_height > 32768) {
        snprintf(sink.message, sizeof sink.message, "unsupported layout (%d components, %ux%u)",
                 cinfo.output_components, cinfo.output_width, cinfo.output_height);
        longjmp(sink.jump, 1);
    }
    size_t row = (size_t)cinfo.output_width * 3;
    pixels = malloc(row * cinfo.output_height);
    if (!pixels) {
        snprintf(sink.message, sizeof sink.message, "out of memory");
        longjmp(sink.jump, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW r = pixels + row * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &r, 1);
    }
    jpeg_finish_decompress(&cinfo);
    if (sink.mgr.num_warnings) longjmp(sink.jump, 1);  // truncated or damaged data was patched over
    out->width = (int)cinfo.output_width;
    out->height = (int)cinfo.output_height;
    out->rgb = pixels;
    jpeg_destroy_decompress(&cinfo);
    fclose(f);
    return 0;
}
