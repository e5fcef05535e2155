// train/train_outputs.c — loss.png and the validation grids of `dice train` (see train_outputs.h).
#include "train_outputs.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "data/plot.h"
#include "sample/pipeline.h"

const char *const train_val_default_prompts[] = {
    "A man riding a wave on top of a surfboard.",
    "A cat sitting on a wooden bench in the sun.",
    "A plate of food with broccoli, rice and chicken.",
    "A red double decker bus driving down a city street.",
};
const int train_val_n_default_prompts = (int)(sizeof train_val_default_prompts / sizeof *train_val_default_prompts);

// ---------------------------------------------------------------- loss plot

static int read_losses(const char *path, double **steps, double **losses, int64_t *n, DiceError *err) {
    FILE *fp = fopen(path, "r");
    DICE_CHECK(err, fp, "%s: %s", path, strerror(errno));
    int64_t count = 0, cap = 0;
    double *s = NULL, *l = NULL;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    int rc = 0;
    while (!rc && (len = getline(&line, &line_cap, fp)) > 0) {
        long long step;
        double loss;
        if (line[len - 1] != '\n' || sscanf(line, "%lld,%lf", &step, &loss) != 2) continue;  // header, partial line
        if (count == cap) {
            cap = cap ? 2 * cap : 1024;
            double *gs = realloc(s, (size_t)cap * sizeof *gs), *gl = gs ? realloc(l, (size_t)cap * sizeof *gl) : NULL;
            if (gs) s = gs;
            if (gl) l = gl;
            if (!gs || !gl) rc = DICE_FAIL(err, "%s: out of memory", path);
        }
        if (!rc) s[count] = (double)step, l[count] = loss, count++;
    }
    free(line);
    fclose(fp);
    if (rc) {
        free(s);
        free(l);
        return rc;
    }
    *steps = s, *losses = l, *n = count;
    return 0;
}

int train_loss_plot(const char *csv_path, const char *png_path, const char *what, DiceError *err) {
    double *steps = NULL, *loss = NULL;
    int64_t n = 0;
    DICE_TRY(read_losses(csv_path, &steps, &loss, &n, err));
    int64_t window = n / 20 < 5 ? 5 : n / 20 > 200 ? 200 : n / 20;
    double *mean = malloc((size_t)(n ? n : 1) * sizeof *mean);
    int rc = mean ? 0 : DICE_FAIL(err, "%s: out of memory", png_path);
    for (int64_t i = 0; !rc && i < n; i++) {  // trailing mean of the finite losses in the window
        double sum = 0;
        int64_t k = 0;
        for (int64_t j = i - window + 1 < 0 ? 0 : i - window + 1; j <= i; j++)
            if (isfinite(loss[j])) sum += loss[j], k++;
        mean[i] = k ? sum / (double)k : NAN;
    }
    char label[64], title[96];
    snprintf(label, sizeof label, "mean of %lld steps", (long long)window);
    snprintf(title, sizeof title, "%s loss, step %lld", what, n ? (long long)steps[n - 1] : 0LL);
    PlotSeries s[2] = {{steps, loss, n, "loss", {140, 175, 225}, false}, {steps, mean, n, label, {200, 40, 40}, true}};
    PlotOptions o = {800, 480, title, "step", false};
    Image img = {0, 0, NULL};
    if (!rc) rc = plot_lines(&o, s, 2, &img, NULL, err);
    if (rc && n == 0) rc = DICE_FAIL(err, "%s: no losses to plot", csv_path);
    if (!rc) rc = image_write_png(png_path, &img, NULL, NULL, 0, err);
    image_free(&img);
    free(mean);
    free(steps);
    free(loss);
    return rc;
}

// ---------------------------------------------------------------- validation grid

static int label_scale(int h) { return h >= 256 ? 2 : 1; }

TrainValLayout train_val_layout(int n_prompts, int h, int w) {
    TrainValLayout l;
    l.margin = 4;
    l.gap = 2;
    l.label_w = plot_text_width("DICE a=0.125", label_scale(h)) + 2 * l.margin;
    l.width = l.label_w + n_prompts * w + (n_prompts - 1) * l.gap + l.margin;
    l.height = 2 * l.margin + TRAIN_VAL_ROWS * h + (TRAIN_VAL_ROWS - 1) * l.gap;
    return l;
}

// The prompts one a line, for the PNG's text chunk.
static char *join_prompts(const TrainVal *v) {
    size_t len = 1;
    for (int i = 0; i < v->n_prompts; i++) len += strlen(v->prompts[i]) + 1;
    char *s = malloc(len), *at = s;
    if (!s) return NULL;
    for (int i = 0; i < v->n_prompts; i++) at += sprintf(at, "%s%s", i ? "\n" : "", v->prompts[i]);
    *at = 0;
    return s;
}

int train_val_grid(SdModel *m, Sharpener *sh, const TrainVal *v, int64_t step, const char *path, DiceError *err) {
    DICE_CHECK(err, v->n_prompts >= 1 && v->steps >= 1, "validation: needs a prompt and a step");
    PipelineOptions o = pipeline_defaults();
    o.steps = v->steps;
    int H, W;
    DICE_TRY(pipeline_image_size(m, &o, &H, &W, err));
    int n = v->n_prompts;
    TrainValLayout l = train_val_layout(n, H, W);
    uint64_t *seeds = malloc((size_t)n * sizeof *seeds);
    uint8_t *pixels = malloc((size_t)n * H * W * 3);  // (n, H, W, 3): one row of the grid
    Image grid = {l.width, l.height, malloc((size_t)l.width * l.height * 3)};
    char *prompts = join_prompts(v);
    int rc = seeds && pixels && grid.rgb && prompts ? 0 : DICE_FAIL(err, "validation: out of host memory");
    if (!rc) memset(grid.rgb, 255, (size_t)l.width * l.height * 3);
    for (int j = 0; j < n && !rc; j++) seeds[j] = (uint64_t)j;
    char labels[TRAIN_VAL_ROWS][32];
    snprintf(labels[0], sizeof labels[0], "unguided");
    snprintf(labels[1], sizeof labels[1], "CFG w=%.3g", v->guidance);
    snprintf(labels[2], sizeof labels[2], "DICE a=%.3g", v->alpha);
    static const uint8_t black[3] = {0, 0, 0};
    for (int r = 0; r < TRAIN_VAL_ROWS && !rc; r++) {
        PipelineOptions ro = o;
        ro.guidance = r == 1 ? v->guidance : 1.0;
        ro.sharpener = r == 2 ? sh : NULL;
        ro.alpha = v->alpha;
        PipelineRequest req = {n, v->prompts, NULL, seeds, NULL, NULL, NULL, pixels};
        rc = pipeline_generate(m, &ro, &req, NULL, err);
        for (int j = 0; j < n && !rc; j++)  // image j -> cell (r, j)
            for (int y = 0; y < H; y++) {
                size_t row = (size_t)(l.margin + r * (H + l.gap) + y);
                memcpy(grid.rgb + (row * (size_t)l.width + (size_t)(l.label_w + j * (W + l.gap))) * 3,
                       pixels + (((size_t)j * H + y) * W) * 3, (size_t)W * 3);
            }
        int s = label_scale(H);
        plot_text(&grid, l.margin, l.margin + r * (H + l.gap) + (H - plot_text_height(s)) / 2, labels[r], black, s);
    }
    char step_text[32], rows[256];
    snprintf(step_text, sizeof step_text, "%" PRId64, step);
    snprintf(rows, sizeof rows, "%s; %s; %s; %d steps DPM-Solver++, seeds 0..%d", labels[0], labels[1], labels[2],
             v->steps, n - 1);
    const char *keys[3] = {"step", "rows", "prompts"}, *values[3] = {step_text, rows, prompts};
    if (!rc) rc = image_write_png(path, &grid, keys, values, 3, err);
    free(prompts);
    image_free(&grid);
    free(pixels);
    free(seeds);
    return rc;
}
