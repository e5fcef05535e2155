// tests/test_demo_plots.c — eval/demo_plots.h: text wrapping at word boundaries, the image grid (its size from the
// layout, every cell the nearest-neighbour upscaled image at demo_grid_cell, labels drawn, long prompts on several
// lines), the alpha-sweep plot (its size, both lines drawn on every panel), and clear errors for bad arguments,
// non-finite metrics and unwritable paths.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "data/plot.h"
#include "eval/demo_plots.h"
#include "test.h"

static const char *const caption = "a red circle left of a blue square on a green background";

// Pixels in [x0, x1] x [y0, y1] (inclusive) that are not white.
static int64_t count_ink(const Image *img, int x0, int y0, int x1, int y1) {
    int64_t n = 0;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            const uint8_t *p = img->rgb + ((size_t)y * (size_t)img->width + (size_t)x) * 3;
            n += p[0] != 255 || p[1] != 255 || p[2] != 255;
        }
    return n;
}

// Pixels of exactly this colour in [x0, x1] x [y0, y1] (inclusive).
static int64_t count_rgb(const Image *img, const uint8_t rgb[3], int x0, int y0, int x1, int y1) {
    int64_t n = 0;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            n += !memcmp(img->rgb + ((size_t)y * (size_t)img->width + (size_t)x) * 3, rgb, 3);
    return n;
}

// A dashed horizontal line of colour rgb in [0, x1] x [y0, y1]: all its pixels lie in one row, and between its first
// and last pixel 30% to 70% of that row is drawn. Returns 0 when so.
static int dashed_line(const Image *img, const uint8_t rgb[3], int x1, int y0, int y1) {
    int row = -1;
    for (int y = y0; y <= y1; y++)
        if (count_rgb(img, rgb, 0, y, x1, y)) {
            if (row >= 0) return -1;
            row = y;
        }
    if (row < 0) return -1;
    int first = -1, last = -1;
    for (int x = 0; x <= x1; x++)
        if (count_rgb(img, rgb, x, row, x, row)) last = x, first = first < 0 ? x : first;
    double drawn = (double)count_rgb(img, rgb, first, row, last, row) / (last - first + 1);
    return last - first > 200 && drawn > 0.3 && drawn < 0.7 ? 0 : -1;
}

// Wrapping: at 128 px (21 characters at scale 1) the demo caption takes three lines broken at spaces; every line
// fits the width; blank text is no line; whitespace runs collapse; an over-long word is cut; too small a buffer or
// a width of no character is an error.
DICE_TEST(demo_wrap_text_breaks_at_words) {
    char out[256];
    CHECK(demo_wrap_text(caption, 128, 1, out, sizeof out, &tc->err) == 3);
    CHECK_MSG(!strcmp(out, "a red circle left of\na blue square on a\ngreen background"), "wrapped: '%s'", out);
    char copy[256];
    snprintf(copy, sizeof copy, "%s", out);
    for (char *rest = NULL, *line = strtok_r(copy, "\n", &rest); line; line = strtok_r(NULL, "\n", &rest))
        CHECK(plot_text_width(line, 1) <= 128);
    CHECK(demo_wrap_text(caption, 1000, 1, out, sizeof out, &tc->err) == 1 && !strcmp(out, caption));
    CHECK(demo_wrap_text(caption, 256, 2, out, sizeof out, &tc->err) == 3);  // scale 2 halves the characters a line
    CHECK(demo_wrap_text("  \t ", 50, 1, out, sizeof out, &tc->err) == 0 && out[0] == 0);
    CHECK(demo_wrap_text("  one \t two\n three  ", 1000, 1, out, sizeof out, &tc->err) == 1 &&
          !strcmp(out, "one two three"));
    CHECK(demo_wrap_text("ab abcdefghij", 23, 1, out, sizeof out, &tc->err) == 4);  // 4 characters a line
    CHECK_MSG(!strcmp(out, "ab\nabcd\nefgh\nij"), "cut: '%s'", out);
    const char *word = "abcdefghij";
    CHECK(demo_wrap_text(word, 5, 1, out, 2 * strlen(word) + 1, &tc->err) == 10);  // one character a line
    CHECK_FAILS_WITH(demo_wrap_text(caption, 128, 1, out, 20, &tc->err), "too few");
    CHECK_FAILS_WITH(demo_wrap_text(caption, 4, 1, out, sizeof out, &tc->err), "fit no character");
}

// A 3 x 2 grid of random 32x32 images at scale 4: the PNG has the layout's size, which follows the documented
// formula; each cell holds its image exactly, each pixel as a 4x4 block; the gaps stay white; the row and column
// labels put ink in their areas, and the long prompt's third line is drawn.
DICE_TEST(demo_grid_cells_hold_the_scaled_images) {
    enum { ROWS = 3, COLS = 2, SIZE = 32, SCALE = 4 };
    uint8_t *pixels = malloc((size_t)ROWS * COLS * SIZE * SIZE * 3);
    CHECK(pixels);
    uint64_t rng = tc->seed;
    for (size_t i = 0; i < (size_t)ROWS * COLS * SIZE * SIZE * 3; i++) pixels[i] = (uint8_t)test_rand_u64(&rng);
    const uint8_t *images[ROWS * COLS];
    for (int i = 0; i < ROWS * COLS; i++) images[i] = pixels + (size_t)i * SIZE * SIZE * 3;
    const char *rows[ROWS] = {"unguided NFE 20", "CFG w=5 NFE 40", "scaling s=1.6 NFE 20"};
    const char *cols[COLS] = {"a blue square", caption};
    DemoGridLayout l;
    CHECK_OK(demo_grid_layout(ROWS, COLS, SIZE, SCALE, rows, cols, &l, &tc->err));
    CHECK(l.cell == SIZE * SCALE && l.text_scale == 1);
    CHECK(l.label_w == plot_text_width("scaling s=1.6 NFE 20", 1) + 2 * l.margin);
    CHECK(l.header_h == 3 * plot_text_height(1) + 2 * l.margin);  // the caption wraps onto 3 lines
    CHECK(l.width == l.label_w + COLS * l.cell + (COLS - 1) * l.gap + l.margin);
    CHECK(l.height == l.header_h + ROWS * l.cell + (ROWS - 1) * l.gap + l.margin);
    char path[512];
    snprintf(path, sizeof path, "%s/grid.png", test_tmpdir(tc));
    CHECK_OK(demo_grid_png(path, images, ROWS, COLS, SIZE, rows, cols, SCALE, &tc->err));
    Image img;
    CHECK_OK(image_read_png(path, &img, &tc->err));
    CHECK(img.width == l.width && img.height == l.height);
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++) {
            int x0, y0;
            demo_grid_cell(&l, r, c, &x0, &y0);
            CHECK(x0 == l.label_w + c * (l.cell + l.gap) && y0 == l.header_h + r * (l.cell + l.gap));
            for (int y = 0; y < l.cell; y++)
                for (int x = 0; x < l.cell; x++) {
                    const uint8_t *got = img.rgb + ((size_t)(y0 + y) * (size_t)img.width + (size_t)(x0 + x)) * 3;
                    const uint8_t *want =
                        images[r * COLS + c] + ((size_t)(y / SCALE) * SIZE + (size_t)(x / SCALE)) * 3;
                    CHECK_MSG(!memcmp(got, want, 3), "cell (%d, %d) pixel (%d, %d) differs", r, c, x, y);
                }
            CHECK(count_ink(&img, l.margin, y0, l.label_w - 1, y0 + l.cell - 1) > 20);  // row label
            if (c == 0) continue;
            CHECK(count_ink(&img, x0 - l.gap, y0, x0 - 1, y0 + l.cell - 1) == 0);       // the gap left of the cell
        }
    for (int c = 0; c < COLS; c++) {  // column labels; only the caption reaches the third line
        int x0, y0;
        demo_grid_cell(&l, 0, c, &x0, &y0);
        int third = l.margin + 2 * plot_text_height(1);
        CHECK(count_ink(&img, x0, l.margin, x0 + l.cell - 1, third - 1) > 20);
        CHECK((count_ink(&img, x0, third, x0 + l.cell - 1, third + plot_text_height(1) - 1) > 20) == (c == 1));
    }
    CHECK(count_ink(&img, 0, 0, l.label_w - 1, l.header_h - 1) == 0);  // the corner above the row labels
    image_free(&img);
    free(pixels);
}

// Without labels the cells start one margin in; a large cell gets scale-2 text.
DICE_TEST(demo_grid_without_labels) {
    DemoGridLayout l;
    CHECK_OK(demo_grid_layout(2, 3, 32, 1, NULL, NULL, &l, &tc->err));
    CHECK(l.label_w == l.margin && l.header_h == l.margin);
    CHECK(l.width == 2 * l.margin + 3 * 32 + 2 * l.gap && l.height == 2 * l.margin + 2 * 32 + l.gap);
    const char *cols[1] = {NULL};
    CHECK_OK(demo_grid_layout(1, 1, 32, 8, NULL, cols, &l, &tc->err));
    CHECK(l.text_scale == 2 && l.header_h == l.margin);
}

// Bad arguments are errors that say what is wrong; an unwritable path is named.
DICE_TEST(demo_grid_rejects_bad_arguments) {
    uint8_t image[4 * 4 * 3] = {0};
    const uint8_t *images[2] = {image, NULL};
    const char *rows[1] = {"DICE a=1 NFE 20"};
    DemoGridLayout l;
    CHECK_FAILS_WITH(demo_grid_png("x.png", images, 0, 1, 4, NULL, NULL, 1, &tc->err), "0 rows");
    CHECK_FAILS_WITH(demo_grid_png("x.png", images, 1, 0, 4, NULL, NULL, 1, &tc->err), "0 columns");
    CHECK_FAILS_WITH(demo_grid_png("x.png", images, 1, 1, 4, NULL, NULL, 0, &tc->err), "scale 0");
    CHECK_FAILS_WITH(demo_grid_png("x.png", NULL, 1, 1, 4, NULL, NULL, 1, &tc->err), "no images");
    CHECK_FAILS_WITH(demo_grid_png("x.png", images, 1, 2, 4, rows, NULL, 1, &tc->err), "row 0, column 1 is NULL");
    CHECK_FAILS_WITH(demo_grid_layout(1, 1, 4096, 8, NULL, NULL, &l, &tc->err), "exceed");
    CHECK_FAILS_WITH(demo_grid_layout(1, 200, 128, 1, NULL, NULL, &l, &tc->err), "picture");
    char path[512];
    snprintf(path, sizeof path, "%s/no/such/dir/grid.png", test_tmpdir(tc));
    CHECK_FAILS_WITH(demo_grid_png(path, images, 1, 1, 4, rows, NULL, 2, &tc->err), path);
}

// A two-metric sweep with unguided and CFG references on each panel: the PNG is two panels high; each panel has the
// DICE line and both references as dashed lines in their documented colours (grey, blue in the order of a panel's
// references), and their legend entries right of the plot; one alpha still draws; a NaN metric, an Inf reference, a
// reference for a missing series, unsorted alphas and an unwritable path are errors naming the culprit.
DICE_TEST(demo_alpha_sweep_draws_panels) {
    const double alphas[5] = {0, 0.5, 1, 1.5, 2};
    const double acc[5] = {21, 34, 52, 60, 58}, fd[5] = {80, 45, 30, 33, 41};
    DemoSeries series[2] = {{"accuracy (%)", acc}, {"FD", fd}};
    DemoReference refs[4] = {{0, "unguided NFE 20", 20}, {0, "CFG w=5 NFE 40", 64},
                             {1, "unguided NFE 20", 82}, {1, "CFG w=5 NFE 40", 35}};
    char path[512];
    snprintf(path, sizeof path, "%s/sweep.png", test_tmpdir(tc));
    CHECK_OK(demo_alpha_sweep_png(path, alphas, 5, series, 2, refs, 4, &tc->err));
    Image img;
    CHECK_OK(image_read_png(path, &img, &tc->err));
    CHECK(img.width == DEMO_SWEEP_PANEL_W && img.height == 2 * DEMO_SWEEP_PANEL_H);
    const uint8_t dice[3] = DEMO_SWEEP_DICE_RGB, ref[][3] = DEMO_SWEEP_REF_RGB;
    int legend_x = DEMO_SWEEP_PANEL_W - DEMO_SWEEP_LEGEND_W;  // the plot is left of it, the legend right of it
    for (int k = 0; k < 2; k++) {
        int y0 = k * DEMO_SWEEP_PANEL_H, y1 = y0 + DEMO_SWEEP_PANEL_H - 1;
        CHECK_MSG(count_rgb(&img, dice, 0, y0, legend_x - 1, y1) > 300, "panel %d: DICE line", k);
        CHECK_MSG(count_rgb(&img, dice, legend_x, y0, img.width - 1, y1) > 0, "panel %d: DICE legend", k);
        for (int j = 0; j < 2; j++) {
            CHECK_MSG(!dashed_line(&img, ref[j], legend_x - 1, y0, y1), "panel %d: reference %d is not dashed", k, j);
            CHECK_MSG(count_rgb(&img, ref[j], legend_x, y0, img.width - 1, y1) > 0, "panel %d: legend %d", k, j);
        }
        CHECK(count_ink(&img, legend_x + 26, y0, img.width - 1, y1) > 100);  // the legend's labels
    }
    image_free(&img);
    CHECK_OK(demo_alpha_sweep_png(path, alphas + 2, 1, series, 1, NULL, 0, &tc->err));
    CHECK_OK(image_read_png(path, &img, &tc->err));
    CHECK(img.width == DEMO_SWEEP_PANEL_W && img.height == DEMO_SWEEP_PANEL_H);
    image_free(&img);

    const double nan_fd[5] = {80, 45, NAN, 33, 41}, unsorted[5] = {0, 1, 0.5, 1.5, 2};
    DemoSeries bad[2] = {{"accuracy (%)", acc}, {"FD", nan_fd}};
    CHECK_FAILS_WITH(demo_alpha_sweep_png(path, alphas, 5, bad, 2, refs, 4, &tc->err),
                     "series 1 (FD) is nan at alpha 1");
    DemoReference bad_ref[2] = {{1, "CFG w=5 NFE 40", INFINITY}, {2, "unguided", 1}};
    CHECK_FAILS_WITH(demo_alpha_sweep_png(path, alphas, 5, series, 2, bad_ref, 1, &tc->err),
                     "reference 0 (CFG w=5 NFE 40) is inf");
    CHECK_FAILS_WITH(demo_alpha_sweep_png(path, alphas, 5, series, 2, bad_ref + 1, 1, &tc->err),
                     "reference 0 (unguided) is for series 2 of 2");
    CHECK_FAILS_WITH(demo_alpha_sweep_png(path, unsorted, 5, series, 2, refs, 4, &tc->err), "strictly increasing");
    CHECK_FAILS_WITH(demo_alpha_sweep_png(path, alphas, 0, series, 2, refs, 4, &tc->err), "at least one alpha");
    CHECK_FAILS_WITH(demo_alpha_sweep_png(path, alphas, 5, series, 0, refs, 2, &tc->err), "at least one series");
    CHECK_FAILS_WITH(demo_alpha_sweep_png(path, alphas, 5, series, 2, NULL, 2, &tc->err), "no array");
    snprintf(path, sizeof path, "%s/missing/sweep.png", test_tmpdir(tc));
    CHECK_FAILS_WITH(demo_alpha_sweep_png(path, alphas, 5, series, 2, refs, 4, &tc->err), path);
}
