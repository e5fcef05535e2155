// tests/test_image.c — PNG write/read round trips with text chunks, JPEG decoding, and clear errors
// for corrupt, truncated or unwritable files.
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>

#include "data/image.h"
#include "test.h"
#include "test_jpeg.h"

// Gradients per channel plus uniform noise in [0, noise).
static Image random_image(uint64_t *rng, int w, int h, int noise) {
    Image img = {w, h, malloc((size_t)w * h * 3)};
    for (int i = 0; i < w * h * 3; i++) {
        int c = i % 3, x = i / 3 % w, y = i / 3 / w;
        img.rgb[i] = (uint8_t)((c * 60 + x * 2 + y * 2 + (noise ? (int)(test_rand_u64(rng) % (uint64_t)noise) : 0)) & 0xff);
    }
    return img;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static size_t read_bytes(const char *path, unsigned char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

DICE_TEST(image_png_round_trip_with_text) {
    uint64_t rng = tc->seed;
    Image img = random_image(&rng, 37, 23, 256), back;
    char path[512], buf[512];
    snprintf(path, sizeof path, "%s/x.png", test_tmpdir(tc));
    const char *keys[2] = {"parameters", "comment"};
    const char *values[2] = {"a red cube\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, CFG scale: 5, Seed: 42",
                             "caf\xc3\xa9 \xe2\x98\x95"};
    CHECK_OK(image_write_png(path, &img, keys, values, 2, &tc->err));
    CHECK_OK(image_read_png(path, &back, &tc->err));
    CHECK(back.width == 37 && back.height == 23 && !memcmp(back.rgb, img.rgb, 37 * 23 * 3));
    CHECK_OK(image_png_text(path, "parameters", buf, sizeof buf, &tc->err));
    CHECK(!strcmp(buf, values[0]));
    CHECK_OK(image_png_text(path, "comment", buf, sizeof buf, &tc->err));
    CHECK(!strcmp(buf, values[1]));
    CHECK_FAILS_WITH(image_png_text(path, "absent", buf, sizeof buf, &tc->err), "no text chunk 'absent'");
    image_free(&back);
    image_free(&img);
}

DICE_TEST(image_png_errors_name_the_file) {
    uint64_t rng = tc->seed;
    Image img = random_image(&rng, 16, 16, 256), back;
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/ok.png", test_tmpdir(tc));
    CHECK_OK(image_write_png(path, &img, NULL, NULL, 0, &tc->err));
    static unsigned char bytes[1 << 16];
    size_t n = read_bytes(path, bytes, sizeof bytes);
    CHECK(n > 100);
    snprintf(bad, sizeof bad, "%s/truncated.png", test_tmpdir(tc));
    write_bytes(bad, bytes, n / 2);
    CHECK_FAILS_WITH(image_read_png(bad, &back, &tc->err), "corrupt PNG");
    CHECK(strstr(tc->err.msg, "truncated.png") && back.rgb == NULL);
    bytes[n - 30] ^= 0x55;  // inside the image data: CRC or inflate error
    snprintf(bad, sizeof bad, "%s/flipped.png", test_tmpdir(tc));
    write_bytes(bad, bytes, n);
    CHECK_FAILS_WITH(image_read_png(bad, &back, &tc->err), "corrupt PNG");
    snprintf(bad, sizeof bad, "%s/text.png", test_tmpdir(tc));
    write_bytes(bad, "hello, not a png", 16);
    CHECK_FAILS_WITH(image_read_png(bad, &back, &tc->err), "not a PNG file");
    CHECK_FAILS_WITH(image_read_png("/nonexistent/a.png", &back, &tc->err), "/nonexistent/a.png: cannot open");
    CHECK_FAILS_WITH(image_write_png("/nonexistent/dir/b.png", &img, NULL, NULL, 0, &tc->err), "cannot create");
    Image empty = {0, 0, NULL};
    CHECK_FAILS_WITH(image_write_png(path, &empty, NULL, NULL, 0, &tc->err), "empty image");
    image_free(&img);
}

DICE_TEST(image_jpeg_decode_and_errors) {
    uint64_t rng = tc->seed;
    Image img = random_image(&rng, 40, 24, 0), back;
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/x.jpg", test_tmpdir(tc));
    CHECK(test_write_jpeg(path, &img, 0, 95) == 0);
    CHECK_OK(image_read_jpeg(path, &back, &tc->err));
    CHECK(back.width == 40 && back.height == 24);
    double se = 0;
    for (int i = 0; i < 40 * 24 * 3; i++) se += (double)(back.rgb[i] - img.rgb[i]) * (back.rgb[i] - img.rgb[i]);
    double psnr = 10 * log10(255.0 * 255.0 / (se / (40 * 24 * 3) + 1e-12));
    CHECK_MSG(psnr > 30, "JPEG round trip PSNR %.1f dB", psnr);  // quality 95 on smooth gradients: well above 30 dB
    image_free(&back);
    snprintf(path, sizeof path, "%s/grey.jpg", test_tmpdir(tc));
    CHECK(test_write_jpeg(path, &img, 1, 95) == 0);
    CHECK_OK(image_read_jpeg(path, &back, &tc->err));
    CHECK(back.rgb[0] == back.rgb[1] && back.rgb[1] == back.rgb[2]);  // grey expanded to RGB
    image_free(&back);

    static unsigned char bytes[1 << 16];
    snprintf(path, sizeof path, "%s/x.jpg", test_tmpdir(tc));
    size_t n = read_bytes(path, bytes, sizeof bytes);
    snprintf(bad, sizeof bad, "%s/truncated.jpg", test_tmpdir(tc));
    write_bytes(bad, bytes, n * 2 / 3);
    CHECK_FAILS_WITH(image_read_jpeg(bad, &back, &tc->err), "corrupt JPEG");
    CHECK(strstr(tc->err.msg, "truncated.jpg") && back.rgb == NULL);
    snprintf(bad, sizeof bad, "%s/garbage.jpg", test_tmpdir(tc));
    write_bytes(bad, "\xff\xd8 this is not really a jpeg", 28);
    CHECK_FAILS_WITH(image_read_jpeg(bad, &back, &tc->err), "corrupt JPEG");
    CHECK_FAILS_WITH(image_read_jpeg("/nonexistent/x.jpg", &back, &tc->err), "cannot open");
    image_free(&img);
}
