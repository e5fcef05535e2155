// data/plot.h — a small deterministic rasteriser for training outputs: line plots of (x, y) series into an RGB
// Image (data/image.h) with a frame, ticks, tick labels, a light grid, a title, a legend and linear or log y, and
// text in a built-in 5x7 bitmap font (no external dependencies). The same input gives the same pixels bit for bit.
//
// Data: non-finite points (NaN, Inf), and points with y <= 0 on a log axis, are skipped; a line is broken where a
// point is skipped (no segment crosses a gap). A lone finite point between gaps is drawn as a dot. The axes span
// every drawn point: the finite range padded by 4% (log y: in log10 space), widened to +-0.5 (log y: a factor of
// 10) where all values are equal. A plot with no drawable point at all (no series, empty series, or only skipped
// points) is an error naming the reason: an empty picture would look like a flat loss.
//
// Font: digits, A-Z, a-z and ' . , - + : ( ) / = _ % ? [ ]'; any other byte is drawn as '?'. Glyphs are 5x7 in a
// 6x9 cell at scale 1, scale s draws each font pixel as s x s.
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "data/image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct PlotSeries {
    const double *x, *y;   // (n) each
    int64_t n;
    const char *label;     // legend text, or NULL for none
    uint8_t rgb[3];        // line colour
    bool thick;            // 2 pixels wide instead of 1
} PlotSeries;

typedef struct PlotOptions {
    int width, height;     // pixels; at least 160 x 120
    const char *title;     // above the frame, or NULL
    const char *x_label;   // below the x tick labels, or NULL
    bool log_y;            // log10 y axis
} PlotOptions;

// The axes a plot drew: data bounds and the frame's pixel rectangle (inclusive), for callers and tests.
typedef struct PlotAxes {
    double x0, x1, y0, y1;     // data bounds (y in data units also on a log axis)
    int left, top, right, bottom;
} PlotAxes;

// Renders the series into *out (allocated here; image_free). axes may be NULL.
int plot_lines(const PlotOptions *o, const PlotSeries *series, int n_series, Image *out, PlotAxes *axes,
               DiceError *err);

// Draws text with its top-left corner at (x, y), clipped to the image. Returns the width drawn in pixels.
int plot_text(Image *img, int x, int y, const char *text, const uint8_t rgb[3], int scale);
// Width and height of text in pixels at `scale` (6 x 9 a character at scale 1; no trailing column).
int plot_text_width(const char *text, int scale);
int plot_text_height(int scale);

#ifdef __cplusplus
}
#endif
