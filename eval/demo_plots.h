// eval/demo_plots.h — the pictures of `dice demo`, drawn with data/plot.h and written as PNG (data/image.h):
//
//   demo_grid_png          a labelled image grid: one row per sampling method ("unguided NFE 20", "CFG w=5 NFE 40",
//                          "DICE a=1 NFE 20", ...), one column per prompt, images upscaled nearest-neighbour so
//                          that 32x32 samples are visible; the prompts are wrapped at spaces above their column.
//   demo_alpha_sweep_png   metrics against the DICE strength alpha (the DICE paper's Fig. 6): one panel per metric,
//                          stacked vertically, each with the DICE line and dashed reference lines (unguided, CFG).
//
// Grid layout (all in pixels, see DemoGridLayout): white background, dark text at text scale 1 (2 for cells of 256
// px or more). The top band holds the column labels, wrapped to the cell width; the left column holds the row
// labels, one line each, vertically centred on their row; cells are `gap` apart; a margin closes the right and
// bottom edges. Cell (r, c) has its top-left at (label_w + c * (cell + gap), header_h + r * (cell + gap)).
//
// Sweep layout: every panel is DEMO_SWEEP_PANEL_W x DEMO_SWEEP_PANEL_H, so the picture is DEMO_SWEEP_PANEL_W wide
// and n_series * DEMO_SWEEP_PANEL_H high. A panel is a plot (data/plot.h) whose title is its metric's name (it
// stands for the y-axis label) and whose x axis is alpha, and, in its right DEMO_SWEEP_LEGEND_W pixels, the legend
// (labels wrapped to the column), outside the frame so that it never hides a line. Colours: the DICE line is
// DEMO_SWEEP_DICE_RGB (2 px wide); the references are dashed, in DEMO_SWEEP_REF_RGB's colours in their order (grey
// for the first, blue for the second, ...; cycled). Non-finite values (a metric that failed to compute) are an
// error naming the value, never a silently shortened line.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DEMO_SWEEP_PANEL_W 720
#define DEMO_SWEEP_PANEL_H 300
#define DEMO_SWEEP_LEGEND_W 170
#define DEMO_SWEEP_DICE_RGB {200, 40, 40}
#define DEMO_SWEEP_REF_RGB {{110, 110, 110}, {30, 90, 200}, {40, 150, 60}, {230, 140, 20}, {150, 60, 170}}

// Where demo_grid_png puts things; from demo_grid_layout.
typedef struct DemoGridLayout {
    int width, height;   // the whole picture
    int label_w;         // x of the first cell: the row-label column, margins included (a margin when no labels)
    int header_h;        // y of the first cell: the column-label band, margins included (a margin when no labels)
    int cell;            // an image's side in the picture: size * scale
    int gap;             // between neighbouring cells
    int margin;          // around the picture's edges and between labels and cells
    int text_scale;      // plot_text scale of every label
} DemoGridLayout;

// The layout of a rows x cols grid of size x size images at integer `scale`. row_labels (rows) and col_labels
// (cols) may be NULL, and so may any of their entries: no label. Errors: a count, size or scale below 1, or a
// picture larger than 16384 x 16384.
int demo_grid_layout(int rows, int cols, int size, int scale, const char *const *row_labels,
                     const char *const *col_labels, DemoGridLayout *out, DiceError *err);
// Top-left pixel (x, y) of cell (r, c).
void demo_grid_cell(const DemoGridLayout *l, int r, int c, int *x, int *y);

// Writes the grid to a PNG at path. images: rows * cols pointers, images[r * cols + c] the (size, size, 3) RGB
// uint8 image of row r (a method) and column c (a prompt); each is drawn scale x scale per pixel at
// demo_grid_cell(r, c). Labels as in demo_grid_layout; a held-out prompt's marker is the caller's part of its label.
int demo_grid_png(const char *path, const uint8_t *const *images, int rows, int cols, int size,
                  const char *const *row_labels, const char *const *col_labels, int scale, DiceError *err);

// Wraps text at spaces into lines no wider than width_px at plot_text scale `scale`, written to out (cap bytes) as
// lines separated by '\n' and NUL-terminated. Runs of whitespace collapse into one space (or a line break); a word
// wider than the width is cut into pieces that fit. 2 * strlen(text) + 1 bytes always suffice. Returns the number
// of lines (0 for blank text), or -1 when out is too small or width_px fits no character.
int demo_wrap_text(const char *text, int width_px, int scale, char *out, size_t cap, DiceError *err);

// One metric measured at each alpha of a sweep: a panel of demo_alpha_sweep_png.
typedef struct DemoSeries {
    const char *name;        // the metric, e.g. "accuracy (%)" or "FD": the panel's title
    const double *values;    // (n_alpha) the metric at alphas[i]
} DemoSeries;

// A method without alpha (unguided, CFG): a horizontal dashed line across the alpha range of one panel.
typedef struct DemoReference {
    int series;              // the panel it is drawn on: an index into the series
    const char *label;       // legend text, e.g. "unguided NFE 20" or "CFG w=5 NFE 40"
    double value;            // its value of that series' metric
} DemoReference;

// Writes the sweep to a PNG at path: n_series panels (at least 1), each with the DICE line through (alphas[i],
// series[k].values[i]) and the dashed lines of the references whose `series` is k; the i-th of a panel's
// references (in the order of refs) takes DEMO_SWEEP_REF_RGB[i]. n_refs may be 0 (refs then NULL). alphas:
// n_alpha >= 1 finite values, strictly increasing. Every value must be finite.
int demo_alpha_sweep_png(const char *path, const double *alphas, int n_alpha, const DemoSeries *series, int n_series,
                         const DemoReference *refs, int n_refs, DiceError *err);

#ifdef __cplusplus
}
#endif
