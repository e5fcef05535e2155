// data/plot.c — line plots and bitmap text into RGB images (see plot.h). Integer pixel arithmetic after one
// rounding per point (floor(v + 0.5)), so a given input always gives the same pixels.
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// 5x7 glyphs, one byte a column (left to right), bit 0 the top row (the classic HD44780-style font).
typedef struct Glyph {
    char c;
    uint8_t col[5];
} Glyph;

static const Glyph font[] = {
    {' ', {0x00, 0x00, 0x00, 0x00, 0x00}}, {'0', {0x3E, 0x51, 0x49, 0x45, 0x3E}}, {'1', {0x00, 0x42, 0x7F, 0x40, 0x00}},
    {'2', {0x42, 0x61, 0x51, 0x49, 0x46}}, {'3', {0x21, 0x41, 0x45, 0x4B, 0x31}}, {'4', {0x18, 0x14, 0x12, 0x7F, 0x10}},
    {'5', {0x27, 0x45, 0x45, 0x45, 0x39}}, {'6', {0x3C, 0x4A, 0x49, 0x49, 0x30}}, {'7', {0x01, 0x71, 0x09, 0x05, 0x03}},
    {'8', {0x36, 0x49, 0x49, 0x49, 0x36}}, {'9', {0x06, 0x49, 0x49, 0x29, 0x1E}}, {'A', {0x7E, 0x11, 0x11, 0x11, 0x7E}},
    {'B', {0x7F, 0x49, 0x49, 0x49, 0x36}}, {'C', {0x3E, 0x41, 0x41, 0x41, 0x22}}, {'D', {0x7F, 0x41, 0x41, 0x22, 0x1C}},
    {'E', {0x7F, 0x49, 0x49, 0x49, 0x41}}, {'F', {0x7F, 0x09, 0x09, 0x09, 0x01}}, {'G', {0x3E, 0x41, 0x49, 0x49, 0x7A}},
    {'H', {0x7F, 0x08, 0x08, 0x08, 0x7F}}, {'I', {0x00, 0x41, 0x7F, 0x41, 0x00}}, {'J', {0x20, 0x40, 0x41, 0x3F, 0x01}},
    {'K', {0x7F, 0x08, 0x14, 0x22, 0x41}}, {'L', {0x7F, 0x40, 0x40, 0x40, 0x40}}, {'M', {0x7F, 0x02, 0x0C, 0x02, 0x7F}},
    {'N', {0x7F, 0x04, 0x08, 0x10, 0x7F}}, {'O', {0x3E, 0x41, 0x41, 0x41, 0x3E}}, {'P', {0x7F, 0x09, 0x09, 0x09, 0x06}},
    {'Q', {0x3E, 0x41, 0x51, 0x21, 0x5E}}, {'R', {0x7F, 0x09, 0x19, 0x29, 0x46}}, {'S', {0x46, 0x49, 0x49, 0x49, 0x31}},
    {'T', {0x01, 0x01, 0x7F, 0x01, 0x01}}, {'U', {0x3F, 0x40, 0x40, 0x40, 0x3F}}, {'V', {0x1F, 0x20, 0x40, 0x20, 0x1F}},
    {'W', {0x3F, 0x40, 0x38, 0x40, 0x3F}}, {'X', {0x63, 0x14, 0x08, 0x14, 0x63}}, {'Y', {0x07, 0x08, 0x70, 0x08, 0x07}},
    {'Z', {0x61, 0x51, 0x49, 0x45, 0x43}}, {'a', {0x20, 0x54, 0x54, 0x54, 0x78}}, {'b', {0x7F, 0x48, 0x44, 0x44, 0x38}},
    {'c', {0x38, 0x44, 0x44, 0x44, 0x20}}, {'d', {0x38, 0x44, 0x44, 0x48, 0x7F}}, {'e', {0x38, 0x54, 0x54, 0x54, 0x18}},
    {'f', {0x08, 0x7E, 0x09, 0x01, 0x02}}, {'g', {0x0C, 0x52, 0x52, 0x52, 0x3E}}, {'h', {0x7F, 0x08, 0x04, 0x04, 0x78}},
    {'i', {0x00, 0x44, 0x7D, 0x40, 0x00}}, {'j', {0x20, 0x40, 0x44, 0x3D, 0x00}}, {'k', {0x7F, 0x10, 0x28, 0x44, 0x00}},
    {'l', {0x00, 0x41, 0x7F, 0x40, 0x00}}, {'m', {0x7C, 0x04, 0x18, 0x04, 0x78}}, {'n', {0x7C, 0x08, 0x04, 0x04, 0x78}},
    {'o', {0x38, 0x44, 0x44, 0x44, 0x38}}, {'p', {0x7C, 0x14, 0x14, 0x14, 0x08}}, {'q', {0x08, 0x14, 0x14, 0x18, 0x7C}},
    {'r', {0x7C, 0x08, 0x04, 0x04, 0x08}}, {'s', {0x48, 0x54, 0x54, 0x54, 0x20}}, {'t', {0x04, 0x3F, 0x44, 0x40, 0x20}},
    {'u', {0x3C, 0x40, 0x40, 0x20, 0x7C}}, {'v', {0x1C, 0x20, 0x40, 0x20, 0x1C}}, {'w', {0x3C, 0x40, 0x30, 0x40, 0x3C}},
    {'x', {0x44, 0x28, 0x10, 0x28, 0x44}}, {'y', {0x0C, 0x50, 0x50, 0x50, 0x3C}}, {'z', {0x44, 0x64, 0x54, 0x4C, 0x44}},
    {'.', {0x00, 0x60, 0x60, 0x00, 0x00}}, {',', {0x00, 0x50, 0x30, 0x00, 0x00}}, {'-', {0x08, 0x08, 0x08, 0x08, 0x08}},
    {'+', {0x08, 0x08, 0x3E, 0x08, 0x08}}, {':', {0x00, 0x36, 0x36, 0x00, 0x00}}, {'(', {0x00, 0x1C, 0x22, 0x41, 0x00}},
    {')', {0x00, 0x41, 0x22, 0x1C, 0x00}}, {'/', {0x20, 0x10, 0x08, 0x04, 0x02}}, {'=', {0x14, 0x14, 0x14, 0x14, 0x14}},
    {'_', {0x40, 0x40, 0x40, 0x40, 0x40}}, {'%', {0x23, 0x13, 0x08, 0x64, 0x62}}, {'?', {0x02, 0x01, 0x51, 0x09, 0x06}},
    {'[', {0x00, 0x7F, 0x41, 0x41, 0x00}}, {']', {0x00, 0x41, 0x41, 0x7F, 0x00}},
};

enum { CELL_W = 6, CELL_H = 9, N_TICKS = 6 };

static const uint8_t black[3] = {0, 0, 0}, grid_rgb[3] = {225, 225, 225}, white[3] = {255, 255, 255};

static const Glyph *glyph(char c) {
    const Glyph *unknown = NULL;
    for (size_t i = 0; i < sizeof font / sizeof *font; i++) {
        if (font[i].c == c) return &font[i];
        if (font[i].c == '?') unknown = &font[i];
    }
    return unknown;
}

static void put(Image *img, int x, int y, const uint8_t rgb[3]) {
    if (x < 0 || y < 0 || x >= img->width || y >= img->height) return;
    memcpy(img->rgb + ((size_t)y * (size_t)img->width + (size_t)x) * 3, rgb, 3);
}

static void fill(Image *img, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) put(img, x, y, rgb);
}

int plot_text_width(const char *text, int scale) {
    int n = (int)strlen(text);
    return n ? (n * CELL_W - 1) * scale : 0;
}

int plot_text_height(int scale) { return CELL_H * scale; }

int plot_text(Image *img, int x, int y, const char *text, const uint8_t rgb[3], int scale) {
    for (int i = 0; text[i]; i++) {
        const Glyph *g = glyph(text[i]);
        for (int cx = 0; cx < 5; cx++)
            for (int cy = 0; cy < 8; cy++)
                if (g->col[cx] >> cy & 1)
                    fill(img, x + (i * CELL_W + cx) * scale, y + cy * scale, x + (i * CELL_W + cx + 1) * scale - 1,
                         y + (cy + 1) * scale - 1, rgb);
    }
    return plot_text_width(text, scale);
}

// Bresenham; `thick` adds the pixels right, below and diagonally. Pixels on or outside the frame are dropped.
static void line(Image *img, int x0, int y0, int x1, int y1, const uint8_t rgb[3], bool thick, const PlotAxes *a) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) {
        for (int k = 0; k < (thick ? 4 : 1); k++) {
            int x = x0 + (k & 1), y = y0 + (k >> 1);
            if (x > a->left && x < a->right && y > a->top && y < a->bottom) put(img, x, y, rgb);
        }
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

static bool drawable(const PlotOptions *o, double x, double y) {
    return isfinite(x) && isfinite(y) && (!o->log_y || y > 0);
}

// The padded range [*lo, *hi] of values (already in axis space); a single value is widened by +-`flat`.
static void pad_range(double *lo, double *hi, double flat) {
    if (*hi - *lo <= 1e-12 * fmax(fabs(*lo), fabs(*hi))) {
        double c = *lo;
        *lo = c - flat;
        *hi = c + flat;
        return;
    }
    double p = 0.04 * (*hi - *lo);
    *lo -= p;
    *hi += p;
}

// A 1, 2 or 5 times a power of ten step giving about N_TICKS ticks over [lo, hi].
static double nice_step(double lo, double hi) {
    double raw = (hi - lo) / N_TICKS, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void tick_label(char *buf, size_t cap, double v, double step) {
    if (fabs(v) < 1e-9 * step) v = 0;
    snprintf(buf, cap, "%.6g", v);
}

// Tick values (data units) of an axis spanning [lo, hi] in axis space: at most 32.
static int ticks(double lo, double hi, bool log_axis, double *out, double *step_out) {
    int n = 0;
    if (log_axis && hi - lo >= 2) {  // powers of ten; under two decades, 1-2-5 steps in data units
        double every = ceil((hi - lo) / N_TICKS);
        for (double k = ceil(lo / every) * every; k <= hi && n < 32; k += every) out[n++] = pow(10.0, k);
        *step_out = out[0];
        return n;
    }
    double a = log_axis ? pow(10.0, lo) : lo, b = log_axis ? pow(10.0, hi) : hi, step = nice_step(a, b);
    for (double k = ceil(a / step); k * step <= b && n < 32; k++) out[n++] = k * step;
    *step_out = step;
    return n;
}

static int to_px(double v, double lo, double hi, int p0, int p1) {
    return (int)floor(p0 + (v - lo) / (hi - lo) * (p1 - p0) + 0.5);
}

static int check(const PlotOptions *o, const PlotSeries *s, int n_series, PlotAxes *a, DiceError *err) {
    DICE_CHECK(err, o->width >= 160 && o->height >= 120 && o->width <= 16384 && o->height <= 16384,
               "plot: %d x %d pixels: the size must be 160 x 120 to 16384 x 16384", o->width, o->height);
    DICE_CHECK(err, n_series > 0, "plot: no series to draw");
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n_series; i++) {
        DICE_CHECK(err, s[i].n >= 0 && (!s[i].n || (s[i].x && s[i].y)), "plot: series %d has no data arrays", i);
        for (int64_t k = 0; k < s[i].n; k++) {
            if (!drawable(o, s[i].x[k], s[i].y[k])) continue;
            double y = o->log_y ? log10(s[i].y[k]) : s[i].y[k];
            x0 = fmin(x0, s[i].x[k]), x1 = fmax(x1, s[i].x[k]), y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
    }
    DICE_CHECK(err, x0 <= x1, "plot: no drawable point (every series is empty, or holds only NaN, Inf%s)",
               o->log_y ? " or y <= 0 on the log axis" : "");
    pad_range(&x0, &x1, 0.5);
    pad_range(&y0, &y1, o->log_y ? 1.0 : 0.5);
    *a = (PlotAxes){x0, x1, y0, y1, 0, 0, 0, 0};
    return 0;
}

int plot_lines(const PlotOptions *o, const PlotSeries *series, int n_series, Image *out, PlotAxes *axes,
               DiceError *err) {
    PlotAxes a;
    memset(out, 0, sizeof *out);
    DICE_TRY(check(o, series, n_series, &a, err));
    double xt[32], yt[32], xstep, ystep;
    int nx = ticks(a.x0, a.x1, false, xt, &xstep), ny = ticks(a.y0, a.y1, o->log_y, yt, &ystep);
    char label[64];
    int label_w = 0;
    for (int i = 0; i < ny; i++) {
        tick_label(label, sizeof label, yt[i], ystep);
        int w = plot_text_width(label, 1);
        label_w = w > label_w ? w : label_w;
    }
    int title_scale = o->title && plot_text_width(o->title, 2) <= o->width - 16 ? 2 : 1;
    a.left = label_w + 10;
    a.top = o->title ? plot_text_height(title_scale) + 10 : 10;
    a.right = o->width - 16;
    a.bottom = o->height - 1 - (CELL_H + 8) - (o->x_label ? CELL_H + 4 : 0);
    DICE_CHECK(err, a.right - a.left >= 40 && a.bottom - a.top >= 40,
               "plot: %d x %d pixels leave no room for the frame", o->width, o->height);
    out->width = o->width;
    out->height = o->height;
    out->rgb = malloc((size_t)o->width * (size_t)o->height * 3);
    DICE_CHECK(err, out->rgb, "plot: out of memory for %d x %d pixels", o->width, o->height);
    memset(out->rgb, 255, (size_t)o->width * (size_t)o->height * 3);

    for (int i = 0; i < nx; i++) {  // grid, ticks and labels
        int px = to_px(xt[i], a.x0, a.x1, a.left, a.right);
        fill(out, px, a.top + 1, px, a.bottom - 1, grid_rgb);
        fill(out, px, a.bottom, px, a.bottom + 3, black);
        tick_label(label, sizeof label, xt[i], xstep);
        plot_text(out, px - plot_text_width(label, 1) / 2, a.bottom + 6, label, black, 1);
    }
    for (int i = 0; i < ny; i++) {
        int py = to_px(o->log_y ? log10(yt[i]) : yt[i], a.y0, a.y1, a.bottom, a.top);
        fill(out, a.left + 1, py, a.right - 1, py, grid_rgb);
        fill(out, a.left - 3, py, a.left, py, black);
        tick_label(label, sizeof label, yt[i], ystep);
        plot_text(out, a.left - 5 - plot_text_width(label, 1), py - 3, label, black, 1);
    }
    fill(out, a.left, a.top, a.right, a.top, black);
    fill(out, a.left, a.bottom, a.right, a.bottom, black);
    fill(out, a.left, a.top, a.left, a.bottom, black);
    fill(out, a.right, a.top, a.right, a.bottom, black);
    if (o->title)
        plot_text(out, (o->width - plot_text_width(o->title, title_scale)) / 2, 5, o->title, black, title_scale);
    if (o->x_label)
        plot_text(out, (a.left + a.right - plot_text_width(o->x_label, 1)) / 2, a.bottom + CELL_H + 10, o->x_label,
                  black, 1);

    for (int i = 0; i < n_series; i++) {  // the lines, broken at skipped points
        const PlotSeries *s = &series[i];
        int px = 0, py = 0;
        bool have_prev = false;
        for (int64_t k = 0; k < s->n; k++) {
            if (!drawable(o, s->x[k], s->y[k])) {
                have_prev = false;
                continue;
            }
            int x = to_px(s->x[k], a.x0, a.x1, a.left, a.right);
            int y = to_px(o->log_y ? log10(s->y[k]) : s->y[k], a.y0, a.y1, a.bottom, a.top);
            line(out, have_prev ? px : x, have_prev ? py : y, x, y, s->rgb, s->thick, &a);
            px = x, py = y, have_prev = true;
        }
    }
    int ly = a.top + 6;  // legend, top right inside the frame
    for (int i = 0; i < n_series; i++) {
        if (!series[i].label) continue;
        int w = plot_text_width(series[i].label, 1), x = a.right - 6 - w - 22;
        fill(out, x - 3, ly - 3, a.right - 4, ly + CELL_H, white);
        fill(out, x, ly + 3, x + 15, ly + 4, series[i].rgb);
        plot_text(out, x + 20, ly, series[i].label, black, 1);
        ly += CELL_H + 4;
    }
    if (axes) *axes = a;
    return 0;
}
