// eval/world_metrics.h — the honest metrics of `dice demo` on the synthetic world (data/world.h): caption
// accuracy read back by the world's analyser, a Frechet distance on analyser features, the distance between
// two image sets drawn from the same noise, and the markdown table of the sampling methods compared.
//
// Images are uint8 RGB, (n, WORLD_SIZE, WORLD_SIZE, 3) contiguous, WORLD_PIXELS bytes each.
//
// Feature vector of an image (WORLD_FEATURE_DIM = 26 doubles, world_features):
//   [0 .. 7]   fraction of pixels whose nearest palette colour is red, orange, yellow, green, blue, purple,
//              white, gray (WorldColour order), counting only pixels within the analyser's purity distance
//              (50 in RGB) of that colour
//   [8]        fraction of pixels far from every palette colour ("none": blends, noise, off-palette colours)
//   [9]        objects the analyser found / 2 (0, 0.5 or 1)
//   [10 .. 17] object 0, the left or upper one (world_analyse's canonical order): centroid x / WORLD_SIZE,
//              centroid y / WORLD_SIZE, pixel count / WORLD_SIZE^2, lower-half share (about 3/4 for a
//              triangle, 1/2 otherwise), fourth-moment squareness (5/9 square, 1/3 circle, 1/6 diamond),
//              R, G, B / 255 of the palette colour the analyser read for it (so colour binding shows)
//   [18 .. 25] object 1, the same eight entries
//   An object the analyser did not find has its eight entries 0.
// Every entry lies in [0, 1], so no one feature dominates the distance by its units.
//
// Frechet distance of two sets of vectors (rows), as FID computes it on Inception features:
//     FD = ||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1^{1/2} C2 C1^{1/2})^{1/2})
// with sample covariances (divided by n - 1), in double precision, the symmetric square roots from a Jacobi
// eigen-decomposition. Eigenvalues within rounding of 0 (relative to the largest) are taken as 0, so singular
// covariances (a constant feature, fewer vectors than dimensions) come out accurate rather than off by the
// square root of rounding (1e-8).
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "data/world.h"
#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WORLD_FEATURE_DIM 26

// Fractions of images (or object slots) whose attribute the analyser reads back as the target's
// (world_score). colour and shape count both objects of each image (2 slots per image); objects: both
// (colour, shape) pairs right; all: every attribute right; attributes: the mean over the six attribute slots
// of an image (background, two colours, two shapes, relation). With n == 0 every fraction is NaN.
typedef struct WorldAccuracy {
    int n;               // images counted
    double background;
    double colour;
    double shape;
    double relation;
    double objects;
    double all;
    double attributes;
} WorldAccuracy;

// Accuracy of n images rgb (n, WORLD_SIZE, WORLD_SIZE, 3) against their targets (n valid WorldAttrs, any
// relation). select: NULL counts every image; otherwise only images i with select[i] (e.g. the held-out
// prompts, world_is_heldout). Fails on n < 0 or an invalid target (naming its index).
int world_accuracy(const uint8_t *rgb, const WorldAttrs *targets, const bool *select, int n,
                   WorldAccuracy *acc, DiceError *err);

// The feature vector of one image (WORLD_PIXELS bytes) into feature[WORLD_FEATURE_DIM] (see above).
void world_features(const uint8_t *rgb, double *feature);

// Frechet distance between the rows of x (n_x, dim) and y (n_y, dim), each set at least 2 rows, into *fd.
int frechet_distance(const double *x, int n_x, const double *y, int n_y, int dim, double *fd, DiceError *err);
// The same from moments: means mu (dim) and symmetric positive semi-definite covariances c (dim, dim).
// Fails when a covariance (or C1^{1/2} C2 C1^{1/2}) has an eigenvalue below 0 by more than rounding.
int frechet_distance_moments(const double *mu1, const double *c1, const double *mu2, const double *c2, int dim,
                             double *fd, DiceError *err);
// Frechet distance between the world features of two image sets (n_a, n_b >= 2 images).
int world_frechet(const uint8_t *rgb_a, int n_a, const uint8_t *rgb_b, int n_b, double *fd, DiceError *err);

// Mean over n >= 1 image pairs of the per-pixel RMS difference in [0, 1] units:
//     mean_i sqrt(mean_p ((a_ip - b_ip) / 255)^2)
// e.g. the distance of DICE or unguided samples to the CFG samples from the same noise.
int world_mean_distance(const uint8_t *rgb_a, const uint8_t *rgb_b, int n, double *dist, DiceError *err);

// One row of the comparison table. The caller fills name, setting, nfe and seconds; world_metrics_evaluate
// fills the metrics. Accuracies are fractions in [0, 1] (the table prints percentages); NaN in any number
// means not measured and prints "-".
typedef struct MethodResult {
    char name[32];           // "unguided", "CFG", "scaling", "DICE", ... (no '|' or newline)
    char setting[64];        // guidance or alpha setting as printed, e.g. "w = 3", "alpha = 1"; "" prints "-"
    double nfe;              // denoiser evaluations per image (CFG: 2 per step)
    double acc_all;          // all attributes right, over every prompt sampled
    double acc_heldout;      // all attributes right, over the held-out prompts among them
    double acc_attributes;   // per-attribute accuracies over every prompt (WorldAccuracy's attributes,
    double acc_background;   //   background, colour, shape, relation)
    double acc_colour;
    double acc_shape;
    double acc_relation;
    double fd;               // Frechet distance of the samples' features to real images' (world_frechet)
    double dist_to_cfg;      // world_mean_distance to the CFG samples from the same noise (0 for CFG itself)
    double seconds;          // wall time of sampling the method's images
} MethodResult;

// The metrics of n sampled images pixels (n, WORLD_SIZE, WORLD_SIZE, 3) into out's acc_*, fd and dist_to_cfg
// (other fields untouched): accuracy against targets (n) over all images and over those with heldout[i] (n
// flags, required; NaN when none is set), the Frechet distance to the n_real images real (n_real >= 2), and
// the mean distance to cfg_pixels (n images from the same noise; NULL leaves dist_to_cfg NaN).
int world_metrics_evaluate(const uint8_t *pixels, const WorldAttrs *targets, const bool *heldout, int n,
                           const uint8_t *real, int n_real, const uint8_t *cfg_pixels, MethodResult *out,
                           DiceError *err);

// Writes the markdown table of n_rows rows to f: a header, an alignment row and one line per row with
//     | method | NFE | setting | all attributes (%) | held-out (%) | attributes (%) | background (%) |
//     colour (%) | shape (%) | relation (%) | FD | distance to CFG | time (s) |
// (NFE as %g, accuracies in percent with 1 decimal, FD and distance with 4 decimals, seconds with 1). Fails
// on a row without a name, a name or setting containing '|' or a newline, or a write error.
int world_metrics_table(FILE *f, const MethodResult *rows, int n_rows, DiceError *err);
// The same into the file at path (created or truncated).
int world_metrics_table_file(const char *path, const MethodResult *rows, int n_rows, DiceError *err);

#ifdef __cplusplus
}
#endif
