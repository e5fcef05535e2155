// tests/test_plot.c — data/plot.h: the same input gives the same pixels (a pinned hash), non-finite points are
// skipped and break the line, the axes span the data, plots with nothing to draw are errors, text is drawn.
#include <math.h>
#include <stdlib.h>

#include "data/plot.h"
#include "test.h"

static uint64_t pixels_hash(const Image *img) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < (size_t)img->width * (size_t)img->height * 3; i++) h = (h ^ img->rgb[i]) * 0x100000001b3ull;
    return h;
}

// Pixels of exactly this colour.
static int64_t count_rgb(const Image *img, const uint8_t rgb[3], int x0, int y0, int x1, int y1) {
    int64_t n = 0;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            const uint8_t *p = img->rgb + ((size_t)y * (size_t)img->width + (size_t)x) * 3;
            n += p[0] == rgb[0] && p[1] == rgb[1] && p[2] == rgb[2];
        }
    return n;
}

static const uint8_t red[3] = {220, 30, 30}, blue[3] = {30, 60, 200};

// A fixed two-series plot (a decaying loss and its running mean, log y) hashes to a pinned value: the rasteriser
// uses one rounding per point and integer drawing, so any change of its pixels is a visible change of the code.
DICE_TEST(plot_output_is_deterministic) {
    double x[200], y[200], m[200];
    for (int i = 0; i < 200; i++) {
        x[i] = i + 1;
        y[i] = 30.0 * exp(-i / 60.0) + 2.0 + ((i * 37) % 11) * 0.3;
        m[i] = i ? 0.9 * m[i - 1] + 0.1 * y[i] : y[i];
    }
    PlotSeries s[2] = {{x, y, 200, "loss", {120, 160, 220}, false}, {x, m, 200, "mean", {200, 40, 40}, true}};
    PlotOptions o = {400, 240, "Training loss", "step", true};
    Image a, b;
    CHECK_OK(plot_lines(&o, s, 2, &a, NULL, &tc->err));
    CHECK_OK(plot_lines(&o, s, 2, &b, NULL, &tc->err));
    CHECK(a.width == 400 && a.height == 240);
    CHECK(pixels_hash(&a) == pixels_hash(&b));
    CHECK_MSG(pixels_hash(&a) == 0x44d6ad7275b04d63ull, "pixel hash %016llx", (unsigned long long)pixels_hash(&a));
    image_free(&a);
    image_free(&b);
}

// Every finite point lies inside the axes' bounds, and the red line stays strictly inside the frame.
DICE_TEST(plot_axes_bounds_include_the_data) {
    uint64_t rng = tc->seed;
    double x[50], y[50];
    for (int i = 0; i < 50; i++) x[i] = test_rand_uniform(&rng, -5, 300), y[i] = test_rand_uniform(&rng, -1e3, 1e4);
    PlotSeries s = {x, y, 50, NULL, {220, 30, 30}, false};
    PlotOptions o = {320, 200, NULL, NULL, false};
    Image img;
    PlotAxes a;
    CHECK_OK(plot_lines(&o, &s, 1, &img, &a, &tc->err));
    for (int i = 0; i < 50; i++) CHECK(x[i] > a.x0 && x[i] < a.x1 && y[i] > a.y0 && y[i] < a.y1);
    CHECK(a.left > 0 && a.right < img.width - 1 && a.top > 0 && a.bottom < img.height - 1);
    int64_t inside = count_rgb(&img, red, a.left + 1, a.top + 1, a.right - 1, a.bottom - 1);
    CHECK(inside > 100 && inside == count_rgb(&img, red, 0, 0, img.width - 1, img.height - 1));
    image_free(&img);
    // Log y: bounds in data units still hold every point; a constant series gets a non-empty range.
    double c[3] = {7, 7, 7}, cx[3] = {4, 4, 4};
    PlotSeries flat = {cx, c, 3, "flat", {30, 60, 200}, true};
    o.log_y = true;
    CHECK_OK(plot_lines(&o, &flat, 1, &img, &a, &tc->err));
    CHECK(a.x0 < 4 && a.x1 > 4 && pow(10, a.y0) < 7 && pow(10, a.y1) > 7);
    CHECK(count_rgb(&img, blue, a.left + 1, a.top + 1, a.right - 1, a.bottom - 1) > 0);
    image_free(&img);
}

// NaN and Inf points (and y <= 0 on a log axis) are skipped: the bounds ignore them and no segment joins the points
// either side of a gap.
DICE_TEST(plot_skips_nan_and_inf) {
    double x[6] = {0, 1, 2, 3, 4, 5}, y[6] = {1, 2, NAN, INFINITY, 2, 1};
    PlotSeries s = {x, y, 6, NULL, {220, 30, 30}, false};
    PlotOptions o = {300, 200, NULL, NULL, false};
    Image img;
    PlotAxes a;
    CHECK_OK(plot_lines(&o, &s, 1, &img, &a, &tc->err));
    CHECK(isfinite(a.y1) && a.y1 < 3 && a.y0 > 0);
    // No red between x = 1 and x = 4 (the gap), red either side of it.
    int px1 = a.left + (int)((1 - a.x0) / (a.x1 - a.x0) * (a.right - a.left)) + 3;
    int px4 = a.left + (int)((4 - a.x0) / (a.x1 - a.x0) * (a.right - a.left)) - 3;
    CHECK(count_rgb(&img, red, px1, a.top + 1, px4, a.bottom - 1) == 0);
    CHECK(count_rgb(&img, red, a.left + 1, a.top + 1, px1, a.bottom - 1) > 0);
    CHECK(count_rgb(&img, red, px4, a.top + 1, a.right - 1, a.bottom - 1) > 0);
    image_free(&img);
    double neg[6] = {-1, 0, 10, 100, -5, 1000};
    s.y = neg;
    o.log_y = true;
    CHECK_OK(plot_lines(&o, &s, 1, &img, &a, &tc->err));
    CHECK(pow(10, a.y0) < 10 && pow(10, a.y1) > 1000 && pow(10, a.y0) > 1);
    image_free(&img);
}

// Nothing to draw is an error, never a blank plot that could pass for a flat curve.
DICE_TEST(plot_without_drawable_points_is_an_error) {
    double x[2] = {0, 1}, y[2] = {NAN, INFINITY}, neg[2] = {-1, 0};
    PlotOptions o = {300, 200, "t", NULL, false};
    Image img = {0, 0, NULL};
    PlotSeries empty = {x, y, 0, NULL, {0, 0, 0}, false}, bad = {x, y, 2, NULL, {0, 0, 0}, false};
    CHECK(plot_lines(&o, &empty, 0, &img, NULL, &tc->err) != 0 && strstr(tc->err.msg, "no series"));
    CHECK(plot_lines(&o, &empty, 1, &img, NULL, &tc->err) != 0 && strstr(tc->err.msg, "no drawable point"));
    CHECK(plot_lines(&o, &bad, 1, &img, NULL, &tc->err) != 0 && strstr(tc->err.msg, "no drawable point"));
    o.log_y = true;
    bad.y = neg;
    CHECK(plot_lines(&o, &bad, 1, &img, NULL, &tc->err) != 0 && strstr(tc->err.msg, "log axis"));
    o = (PlotOptions){100, 50, NULL, NULL, false};
    bad.y = x;
    CHECK(plot_lines(&o, &bad, 1, &img, NULL, &tc->err) != 0 && strstr(tc->err.msg, "size"));
    CHECK(img.rgb == NULL);
}

// Text: glyphs set pixels inside their cell only; unknown bytes draw as '?'; width is 6 a character less one.
DICE_TEST(plot_text_draws_glyphs) {
    Image img = {40, 12, calloc(40 * 12 * 3, 1)};
    CHECK(img.rgb);
    const uint8_t w[3] = {255, 255, 255};
    CHECK(plot_text_width("1e-3", 1) == 23 && plot_text_width("", 2) == 0 && plot_text_height(2) == 18);
    CHECK(plot_text(&img, 1, 1, "1e-3", w, 1) == 23);
    CHECK(count_rgb(&img, w, 1, 1, 23, 8) > 20 && count_rgb(&img, w, 0, 0, 39, 11) == count_rgb(&img, w, 1, 1, 23, 8));
    Image q = {40, 12, calloc(40 * 12 * 3, 1)}, u = {40, 12, calloc(40 * 12 * 3, 1)};
    CHECK(q.rgb && u.rgb);
    plot_text(&q, 0, 0, "?", w, 1);
    plot_text(&u, 0, 0, "\x7f", w, 1);
    CHECK(!memcmp(q.rgb, u.rgb, 40 * 12 * 3) && count_rgb(&q, w, 0, 0, 39, 11) > 0);
    plot_text(&img, 30, 5, "WWW", w, 3);  // clipped, no crash
    image_free(&img);
    image_free(&q);
    image_free(&u);
}
