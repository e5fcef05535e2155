// eval/demo_plots.c — the image grid and the alpha-sweep plot of `dice demo` (see demo_plots.h).
#include "demo_plots.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "data/plot.h"

enum { MAX_SIDE = 16384, GRID_MARGIN = 6, GRID_GAP = 4, N_DASHES = 32, SWATCH_W = 20, LEGEND_PAD = 6 };

static const uint8_t text_rgb[3] = {25, 25, 25};

// ---------------------------------------------------------------- text wrapping

typedef struct Sink {
    char *out;
    size_t cap, n;
} Sink;

static int sink_put(Sink *s, const char *p, size_t len) {
    if (s->n + len + 1 > s->cap) return -1;
    memcpy(s->out + s->n, p, len);
    s->n += len;
    s->out[s->n] = 0;
    return 0;
}

int demo_wrap_text(const char *text, int width_px, int scale, char *out, size_t cap, DiceError *err) {
    DICE_CHECK(err, scale >= 1, "wrap text: text scale %d is below 1", scale);
    int max_chars = (width_px / scale + 1) / 6;  // (6 n - 1) * scale <= width_px, as plot_text_width
    DICE_CHECK(err, max_chars >= 1, "wrap text: %d pixels at scale %d fit no character", width_px, scale);
    DICE_CHECK(err, out && cap >= 1, "wrap text: no output buffer");
    Sink s = {out, cap, 0};
    out[0] = 0;
    int lines = 0, col = 0;  // col: characters on the current line
    for (const char *p = text; *p;) {
        if (isspace((unsigned char)*p)) {
            p++;
            continue;
        }
        const char *w = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        int len = (int)(p - w);
        if (col > 0 && col + 1 + len <= max_chars) {  // fits after a space on the current line
            if (sink_put(&s, " ", 1) || sink_put(&s, w, (size_t)len)) goto full;
            col += 1 + len;
            continue;
        }
        while (len > 0) {  // on new lines, cut into pieces when wider than a line
            int take = len < max_chars ? len : max_chars;
            if ((lines && sink_put(&s, "\n", 1)) || sink_put(&s, w, (size_t)take)) goto full;
            lines++;
            col = take;
            w += take;
            len -= take;
        }
    }
    return lines;
full:
    return DICE_FAIL(err, "wrap text: %zu bytes are too few for the wrapped text '%.40s'", cap, text);
}

// ---------------------------------------------------------------- image grid

static int label_lines(const char *label, int width_px, int scale, char **wrapped, DiceError *err) {
    size_t cap = 2 * strlen(label) + 1;
    *wrapped = malloc(cap);
    DICE_CHECK(err, *wrapped, "demo plots: out of memory");
    int n = demo_wrap_text(label, width_px, scale, *wrapped, cap, err);
    if (n < 0) {
        free(*wrapped);
        *wrapped = NULL;
    }
    return n;
}

int demo_grid_layout(int rows, int cols, int size, int scale, const char *const *row_labels,
                     const char *const *col_labels, DemoGridLayout *out, DiceError *err) {
    DICE_CHECK(err, rows >= 1 && cols >= 1, "demo grid: %d rows x %d columns: needs at least one of each", rows,
               cols);
    DICE_CHECK(err, size >= 1 && scale >= 1 && size <= MAX_SIDE && scale <= MAX_SIDE,
               "demo grid: image size %d and scale %d must be at least 1", size, scale);
    DemoGridLayout l = {0};
    l.margin = GRID_MARGIN;
    l.gap = GRID_GAP;
    int64_t cell = (int64_t)size * scale;
    DICE_CHECK(err, cell <= MAX_SIDE, "demo grid: %d px images at scale %d exceed %d px", size, scale, MAX_SIDE);
    l.cell = (int)cell;
    l.text_scale = l.cell >= 256 ? 2 : 1;
    int label_w = 0, lines = 0;
    for (int r = 0; row_labels && r < rows; r++) {
        int w = row_labels[r] ? plot_text_width(row_labels[r], l.text_scale) : 0;
        label_w = w > label_w ? w : label_w;
    }
    for (int c = 0; col_labels && c < cols; c++) {
        if (!col_labels[c]) continue;
        char *wrapped;
        int n = label_lines(col_labels[c], l.cell, l.text_scale, &wrapped, err);
        if (n < 0) return -1;
        free(wrapped);
        lines = n > lines ? n : lines;
    }
    l.label_w = label_w ? label_w + 2 * l.margin : l.margin;
    l.header_h = lines ? lines * plot_text_height(l.text_scale) + 2 * l.margin : l.margin;
    int64_t width = l.label_w + cols * cell + (int64_t)(cols - 1) * l.gap + l.margin;
    int64_t height = l.header_h + rows * cell + (int64_t)(rows - 1) * l.gap + l.margin;
    DICE_CHECK(err, width <= MAX_SIDE && height <= MAX_SIDE,
               "demo grid: %d x %d cells of %d px make a %lld x %lld picture, over %d x %d", rows, cols, l.cell,
               (long long)width, (long long)height, MAX_SIDE, MAX_SIDE);
    l.width = (int)width;
    l.height = (int)height;
    *out = l;
    return 0;
}

void demo_grid_cell(const DemoGridLayout *l, int r, int c, int *x, int *y) {
    *x = l->label_w + c * (l->cell + l->gap);
    *y = l->header_h + r * (l->cell + l->gap);
}

// Copies image (size, size, 3) into the grid with its top-left at (x0, y0), each pixel scale x scale.
static void blit_scaled(Image *grid, int x0, int y0, const uint8_t *image, int size, int scale) {
    for (int y = 0; y < size * scale; y++) {
        uint8_t *dst = grid->rgb + ((size_t)(y0 + y) * (size_t)grid->width + (size_t)x0) * 3;
        const uint8_t *src = image + (size_t)(y / scale) * (size_t)size * 3;
        for (int x = 0; x < size * scale; x++) memcpy(dst + (size_t)x * 3, src + (size_t)(x / scale) * 3, 3);
    }
}

// The column label's wrapped lines, each centred over the cell starting at x, from the top margin down.
static int draw_col_label(Image *grid, const DemoGridLayout *l, int x, const char *label, DiceError *err) {
    char *wrapped;
    if (label_lines(label, l->cell, l->text_scale, &wrapped, err) < 0) return -1;
    int y = l->margin;
    char *rest = NULL;
    for (char *line = strtok_r(wrapped, "\n", &rest); line; line = strtok_r(NULL, "\n", &rest)) {
        plot_text(grid, x + (l->cell - plot_text_width(line, l->text_scale)) / 2, y, line, text_rgb, l->text_scale);
        y += plot_text_height(l->text_scale);
    }
    free(wrapped);
    return 0;
}

int demo_grid_png(const char *path, const uint8_t *const *images, int rows, int cols, int size,
                  const char *const *row_labels, const char *const *col_labels, int scale, DiceError *err) {
    DemoGridLayout l;
    DICE_TRY(demo_grid_layout(rows, cols, size, scale, row_labels, col_labels, &l, err));
    DICE_CHECK(err, images, "demo grid %s: no images", path);
    for (int i = 0; i < rows * cols; i++)
        DICE_CHECK(err, images[i], "demo grid %s: the image of row %d, column %d is NULL", path, i / cols, i % cols);
    Image grid = {l.width, l.height, malloc((size_t)l.width * (size_t)l.height * 3)};
    DICE_CHECK(err, grid.rgb, "demo grid %s: out of memory for %d x %d pixels", path, l.width, l.height);
    memset(grid.rgb, 255, (size_t)l.width * (size_t)l.height * 3);
    int rc = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            int x, y;
            demo_grid_cell(&l, r, c, &x, &y);
            blit_scaled(&grid, x, y, images[r * cols + c], size, scale);
        }
    for (int r = 0; row_labels && r < rows; r++) {
        if (!row_labels[r]) continue;
        int x, y;
        demo_grid_cell(&l, r, 0, &x, &y);
        plot_text(&grid, l.margin, y + (l.cell - plot_text_height(l.text_scale)) / 2, row_labels[r], text_rgb,
                  l.text_scale);
    }
    for (int c = 0; col_labels && c < cols && !rc; c++) {
        if (!col_labels[c]) continue;
        int x, y;
        demo_grid_cell(&l, 0, c, &x, &y);
        rc = draw_col_label(&grid, &l, x, col_labels[c], err);
    }
    if (!rc) rc = image_write_png(path, &grid, NULL, NULL, 0, err);
    image_free(&grid);
    return rc;
}

// ---------------------------------------------------------------- alpha sweep

static const uint8_t ref_rgb[][3] = DEMO_SWEEP_REF_RGB, dice_rgb[3] = DEMO_SWEEP_DICE_RGB;

static int check_sweep(const double *alphas, int n_alpha, const DemoSeries *series, int n_series,
                       const DemoReference *refs, int n_refs, DiceError *err) {
    DICE_CHECK(err, alphas && n_alpha >= 1, "alpha sweep: needs at least one alpha");
    DICE_CHECK(err, series && n_series >= 1, "alpha sweep: needs at least one series");
    DICE_CHECK(err, n_refs >= 0 && (refs || !n_refs), "alpha sweep: %d references but no array", n_refs);
    DICE_CHECK(err, (int64_t)n_series * DEMO_SWEEP_PANEL_H <= MAX_SIDE,
               "alpha sweep: %d series make too tall a picture", n_series);
    for (int i = 0; i < n_alpha; i++) {
        DICE_CHECK(err, isfinite(alphas[i]), "alpha sweep: alpha[%d] is %g", i, alphas[i]);
        DICE_CHECK(err, i == 0 || alphas[i] > alphas[i - 1],
                   "alpha sweep: alphas must be strictly increasing (alpha[%d] = %g after %g)", i, alphas[i],
                   alphas[i - 1]);
    }
    for (int k = 0; k < n_series; k++) {
        const char *name = series[k].name ? series[k].name : "(unnamed)";
        DICE_CHECK(err, series[k].values, "alpha sweep: series %d (%s) has no values", k, name);
        for (int i = 0; i < n_alpha; i++)
            DICE_CHECK(err, isfinite(series[k].values[i]), "alpha sweep: series %d (%s) is %g at alpha %g", k, name,
                       series[k].values[i], alphas[i]);
    }
    for (int j = 0; j < n_refs; j++) {
        const char *label = refs[j].label ? refs[j].label : "(unlabelled)";
        DICE_CHECK(err, refs[j].series >= 0 && refs[j].series < n_series,
                   "alpha sweep: reference %d (%s) is for series %d of %d", j, label, refs[j].series, n_series);
        DICE_CHECK(err, isfinite(refs[j].value), "alpha sweep: reference %d (%s) is %g", j, label, refs[j].value);
    }
    return 0;
}

// A dashed horizontal line at y over [x0, x1]: N_DASHES two-point segments separated by NaN points, which
// plot_lines skips and breaks the line at. x: (3 * N_DASHES), y: (3 * N_DASHES).
static void dashed(double x0, double x1, double value, double *x, double *y) {
    double d = (x1 - x0) / (2 * N_DASHES - 1);
    for (int j = 0; j < N_DASHES; j++) {
        x[3 * j] = x0 + 2 * j * d, x[3 * j + 1] = x0 + (2 * j + 1) * d, x[3 * j + 2] = x[3 * j + 1];
        y[3 * j] = y[3 * j + 1] = value, y[3 * j + 2] = NAN;
    }
}

// One legend entry with its top-left at (x, *y): a SWATCH_W px sample of the line (2 px high when thick, dashed
// when not) and the label wrapped to the legend column; *y moves below it.
static int legend_entry(Image *img, int x, int *y, const PlotSeries *line, const char *label, DiceError *err) {
    for (int dx = 0; dx < SWATCH_W; dx++)
        for (int dy = 0; dy < (line->thick ? 2 : 1); dy++)
            if (line->thick || dx % 7 < 4)
                memcpy(img->rgb + ((size_t)(*y + 3 + dy) * (size_t)img->width + (size_t)(x + dx)) * 3, line->rgb, 3);
    char *wrapped;
    int n = label_lines(label, DEMO_SWEEP_LEGEND_W - SWATCH_W - 3 * LEGEND_PAD, 1, &wrapped, err);
    if (n < 0) return -1;
    char *rest = NULL;
    int ty = *y;
    for (char *t = strtok_r(wrapped, "\n", &rest); t; t = strtok_r(NULL, "\n", &rest), ty += plot_text_height(1))
        plot_text(img, x + SWATCH_W + LEGEND_PAD, ty, t, text_rgb, 1);
    free(wrapped);
    *y += (n > 1 ? n : 1) * plot_text_height(1) + 4;
    return 0;
}

// Draws panel k of the sweep into rows [k * DEMO_SWEEP_PANEL_H, (k + 1) * DEMO_SWEEP_PANEL_H) of the white image
// out: the plot on the left, the legend in the right DEMO_SWEEP_LEGEND_W pixels from the frame's top down.
// dash_x, dash_y: (n_refs, 3 * N_DASHES) scratch; lines: (n_refs + 1) scratch.
static int draw_panel(Image *out, const double *alphas, int n_alpha, const DemoSeries *series, int k,
                      const DemoReference *refs, int n_refs, double *dash_x, double *dash_y, PlotSeries *lines,
                      DiceError *err) {
    double x0 = alphas[0], x1 = alphas[n_alpha - 1];
    if (n_alpha == 1) x0 -= 0.5, x1 += 0.5;  // a single alpha: references still span a visible width
    int n = 0;  // this panel's references
    for (int j = 0; j < n_refs; j++) {
        if (refs[j].series != k) continue;
        double *x = dash_x + (size_t)3 * N_DASHES * n, *y = dash_y + (size_t)3 * N_DASHES * n;
        dashed(x0, x1, refs[j].value, x, y);
        lines[n] = (PlotSeries){x, y, 3 * N_DASHES, NULL, {0, 0, 0}, false};  // no label: the legend is ours
        memcpy(lines[n].rgb, ref_rgb[n % (int)(sizeof ref_rgb / sizeof *ref_rgb)], 3);
        n++;
    }
    lines[n] = (PlotSeries){alphas, series[k].values, n_alpha, NULL, {dice_rgb[0], dice_rgb[1], dice_rgb[2]}, true};
    PlotOptions o = {DEMO_SWEEP_PANEL_W - DEMO_SWEEP_LEGEND_W, DEMO_SWEEP_PANEL_H, series[k].name, "alpha", false};
    Image plot;
    PlotAxes axes;
    DICE_TRY(plot_lines(&o, lines, n + 1, &plot, &axes, err));
    int top = k * DEMO_SWEEP_PANEL_H;
    for (int y = 0; y < plot.height; y++)
        memcpy(out->rgb + (size_t)(top + y) * (size_t)out->width * 3, plot.rgb + (size_t)y * (size_t)plot.width * 3,
               (size_t)plot.width * 3);
    image_free(&plot);
    int x = o.width + LEGEND_PAD, y = top + axes.top;
    for (int j = 0, i = 0; j < n_refs; j++) {
        if (refs[j].series != k) continue;
        if (refs[j].label) DICE_TRY(legend_entry(out, x, &y, &lines[i], refs[j].label, err));
        i++;
    }
    return legend_entry(out, x, &y, &lines[n], "DICE", err);
}

int demo_alpha_sweep_png(const char *path, const double *alphas, int n_alpha, const DemoSeries *series, int n_series,
                         const DemoReference *refs, int n_refs, DiceError *err) {
    DICE_TRY(check_sweep(alphas, n_alpha, series, n_series, refs, n_refs, err));
    size_t n_dash = (size_t)3 * N_DASHES * (size_t)(n_refs ? n_refs : 1);
    double *dash_x = malloc(n_dash * sizeof *dash_x), *dash_y = malloc(n_dash * sizeof *dash_y);
    PlotSeries *lines = malloc((size_t)(n_refs + 1) * sizeof *lines);
    Image img = {DEMO_SWEEP_PANEL_W, n_series * DEMO_SWEEP_PANEL_H,
                 malloc((size_t)n_series * DEMO_SWEEP_PANEL_H * DEMO_SWEEP_PANEL_W * 3)};
    int rc = dash_x && dash_y && lines && img.rgb ? 0 : DICE_FAIL(err, "alpha sweep %s: out of memory", path);
    if (!rc) memset(img.rgb, 255, (size_t)img.width * (size_t)img.height * 3);
    for (int k = 0; k < n_series && !rc; k++)
        rc = draw_panel(&img, alphas, n_alpha, series, k, refs, n_refs, dash_x, dash_y, lines, err);
    if (!rc) rc = image_write_png(path, &img, NULL, NULL, 0, err);
    image_free(&img);
    free(lines);
    free(dash_x);
    free(dash_y);
    return rc;
}
