// tests/test_world_metrics.c — the demo's metrics (eval/world_metrics.h): caption accuracy on rendered world
// images (right and wrong), deterministic features, the Frechet distance (0 on a set with itself, growing when
// a set is shifted, a closed form, golden values from scipy/numpy by scripts/golden_frechet.py), the paired
// image distance and the markdown table.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/world_metrics.h"
#include "nn/file_util.h"
#include "test.h"

#define N_IMAGES 240
#define SEED 7   // fixed: the expected accuracies below are exact counts for this seed

// N_IMAGES sampled world items of seed: every third from the held-out split. Images into rgb
// (N_IMAGES, WORLD_PIXELS), attributes into attrs, held-out flags into heldout.
static void sample_set(uint64_t seed, uint8_t *rgb, WorldAttrs *attrs, bool *heldout) {
    static WorldItem item;
    for (int i = 0; i < N_IMAGES; i++) {
        world_sample(seed, (uint64_t)i, i % 3 == 2 ? WORLD_HELDOUT : WORLD_TRAIN, &item);
        memcpy(rgb + (size_t)i * WORLD_PIXELS, item.rgb, WORLD_PIXELS);
        attrs[i] = item.attrs;
        heldout[i] = world_is_heldout(&item.attrs);
    }
}

// The same scenes with red and blue exchanged wherever either appears (a permutation of the colour names:
// the distribution of images stays the same, each image's accuracy does not).
static void swap_red_blue(uint64_t seed, uint8_t *rgb) {
    static WorldItem item;
    for (int i = 0; i < N_IMAGES; i++) {
        world_sample(seed, (uint64_t)i, i % 3 == 2 ? WORLD_HELDOUT : WORLD_TRAIN, &item);
        WorldAttrs w = item.attrs;
        int *c[3] = {&w.colour[0], &w.colour[1], &w.background};
        for (int k = 0; k < 3; k++) *c[k] = *c[k] == WORLD_RED ? WORLD_BLUE : *c[k] == WORLD_BLUE ? WORLD_RED : *c[k];
        world_render(&w, &item.geom, rgb + (size_t)i * WORLD_PIXELS);
    }
}

// The same scenes shifted in distribution: red replaced by the first colour the scene does not use (no red
// anywhere), or every object drawn as a square (shift 0 or 1).
static void shifted_set(uint64_t seed, int shift, uint8_t *rgb) {
    static WorldItem item;
    for (int i = 0; i < N_IMAGES; i++) {
        world_sample(seed, (uint64_t)i, i % 3 == 2 ? WORLD_HELDOUT : WORLD_TRAIN, &item);
        WorldAttrs w = item.attrs;
        int *c[3] = {&w.colour[0], &w.colour[1], &w.background}, unused = 0;
        while (unused == w.colour[0] || unused == w.colour[1] || unused == w.background) unused++;
        for (int k = 0; k < 3; k++)
            if (shift == 0 && *c[k] == WORLD_RED) *c[k] = unused;
        for (int k = 0; k < 2; k++)
            if (shift == 1) w.shape[k] = WORLD_SQUARE;
        world_render(&w, &item.geom, rgb + (size_t)i * WORLD_PIXELS);
    }
}

DICE_TEST(world_metrics_accuracy_on_real_images) {
    static uint8_t rgb[N_IMAGES * WORLD_PIXELS];
    static bool heldout[N_IMAGES];
    static WorldAttrs attrs[N_IMAGES];
    sample_set(SEED, rgb, attrs, heldout);
    WorldAccuracy acc, held, none;
    CHECK_OK(world_accuracy(rgb, attrs, NULL, N_IMAGES, &acc, &tc->err));
    CHECK(acc.n == N_IMAGES);
    // The analyser reads clean rendered images back exactly (data/world.h).
    CHECK(acc.all == 1.0 && acc.background == 1.0 && acc.colour == 1.0 && acc.shape == 1.0 && acc.relation == 1.0 &&
          acc.objects == 1.0 && acc.attributes == 1.0);
    CHECK_OK(world_accuracy(rgb, attrs, heldout, N_IMAGES, &held, &tc->err));
    CHECK(held.n == N_IMAGES / 3 && held.all == 1.0);
    static bool nothing[N_IMAGES];
    CHECK_OK(world_accuracy(rgb, attrs, nothing, N_IMAGES, &none, &tc->err));
    CHECK(none.n == 0 && isnan(none.all) && isnan(none.colour));
    attrs[5].colour[1] = attrs[5].background;
    CHECK_FAILS_WITH(world_accuracy(rgb, attrs, NULL, N_IMAGES, &acc, &tc->err), "target 5 is not a valid");
}

DICE_TEST(world_metrics_accuracy_on_wrong_images) {
    static uint8_t rgb[N_IMAGES * WORLD_PIXELS];
    static bool heldout[N_IMAGES];
    static WorldAttrs attrs[N_IMAGES];
    static WorldItem item;
    sample_set(SEED, rgb, attrs, heldout);
    // Colours swapped between the two objects: shapes bound to the wrong colours in every image.
    for (int i = 0; i < N_IMAGES; i++) {
        world_sample(SEED, (uint64_t)i, i % 3 == 2 ? WORLD_HELDOUT : WORLD_TRAIN, &item);
        WorldAttrs w = item.attrs;
        w.colour[0] = item.attrs.colour[1], w.colour[1] = item.attrs.colour[0];
        world_render(&w, &item.geom, rgb + (size_t)i * WORLD_PIXELS);
    }
    WorldAccuracy acc;
    CHECK_OK(world_accuracy(rgb, attrs, NULL, N_IMAGES, &acc, &tc->err));
    printf("    colours swapped: all %.3f background %.3f colour %.3f shape %.3f relation %.3f objects %.3f\n", acc.all,
           acc.background, acc.colour, acc.shape, acc.relation, acc.objects);
    CHECK(acc.all == 0.0 && acc.background == 1.0 && acc.colour < 1.0);
    CHECK_NEAR(acc.attributes, (acc.background + 2 * acc.colour + 2 * acc.shape + acc.relation) / 6.0, 1e-12);
    // Red and blue exchanged: only the scenes with red or blue are wrong, in colour and not in shape.
    swap_red_blue(SEED, rgb);
    CHECK_OK(world_accuracy(rgb, attrs, NULL, N_IMAGES, &acc, &tc->err));
    int expected_right = 0;
    for (int i = 0; i < N_IMAGES; i++) {
        const WorldAttrs *a = &attrs[i];
        int touched = 0;
        for (int c = WORLD_RED; c <= WORLD_BLUE; c += WORLD_BLUE - WORLD_RED)
            touched |= a->colour[0] == c || a->colour[1] == c || a->background == c;
        expected_right += !touched;
    }
    CHECK(expected_right > 0 && expected_right < N_IMAGES);
    CHECK_NEAR(acc.all, (double)expected_right / N_IMAGES, 1e-12);
    CHECK(acc.shape == 1.0);
}

DICE_TEST(world_metrics_features) {
    static WorldItem item;
    double f[WORLD_FEATURE_DIM], g[WORLD_FEATURE_DIM];
    for (uint64_t i = 0; i < 50; i++) {
        world_sample(SEED, i, WORLD_TRAIN, &item);
        world_features(item.rgb, f);
        world_features(item.rgb, g);
        CHECK(memcmp(f, g, sizeof f) == 0);
        double sum = 0.0;
        for (int k = 0; k <= WORLD_N_COLOURS; k++) sum += f[k];
        CHECK_NEAR(sum, 1.0, 1e-12);
        CHECK(f[WORLD_N_COLOURS] == 0.0);   // a hard-edged render has no off-palette pixel
        CHECK(f[9] == 1.0);
        for (int k = 0; k < WORLD_FEATURE_DIM; k++) CHECK(f[k] >= 0.0 && f[k] <= 1.0);
    }
    // A centred render: the colour shares, centroids and shape statistics of known objects.
    WorldAttrs a = {{WORLD_RED, WORLD_BLUE}, {WORLD_TRIANGLE, WORLD_SQUARE}, WORLD_LEFT_OF, WORLD_GREEN};
    WorldGeom geom;
    world_geom_centred(&a, &geom);
    world_render(&a, &geom, item.rgb);
    world_features(item.rgb, f);
    CHECK(f[WORLD_GREEN] > 0.8 && f[WORLD_RED] > 0.03 && f[WORLD_BLUE] > 0.08 && f[WORLD_WHITE] == 0.0);
    double *o0 = f + 10, *o1 = f + 18;   // the left object (the red triangle), the right one (the blue square)
    CHECK_NEAR(o0[0] * WORLD_SIZE, geom.cx[0], 0.5);
    CHECK(o0[1] * WORLD_SIZE > geom.cy[0] + 0.5 && o0[1] * WORLD_SIZE < geom.cy[0] + 2.5);   // below its centre
    CHECK_NEAR(o1[0] * WORLD_SIZE, geom.cx[1], 0.01);
    CHECK_NEAR(o1[1] * WORLD_SIZE, geom.cy[1], 0.01);
    CHECK_NEAR(o0[2], f[WORLD_RED], 1e-12);    // each object is all the pixels of its colour
    CHECK_NEAR(o1[2], f[WORLD_BLUE], 1e-12);
    CHECK(o0[3] > 0.63 && o1[3] < 0.6);        // triangle's lower-half share, square's
    CHECK_NEAR(o1[4], 5.0 / 9.0, 0.06);        // square's squareness
    for (int k = 0; k < 3; k++)
        CHECK(o0[5 + k] == world_palette[WORLD_RED][k] / 255.0 && o1[5 + k] == world_palette[WORLD_BLUE][k] / 255.0);
    // The background alone: no objects, their entries 0.
    memset(&geom, 0, sizeof geom);
    world_render(&a, &geom, item.rgb);
    world_features(item.rgb, f);
    CHECK(f[WORLD_GREEN] == 1.0 && f[9] == 0.0);
    for (int k = 10; k < WORLD_FEATURE_DIM; k++) CHECK(f[k] == 0.0);
}

DICE_TEST(world_metrics_frechet_of_image_sets) {
    static uint8_t a[N_IMAGES * WORLD_PIXELS], b[N_IMAGES * WORLD_PIXELS], shifted[N_IMAGES * WORLD_PIXELS];
    static bool heldout[N_IMAGES];
    static WorldAttrs attrs[N_IMAGES];
    sample_set(SEED, a, attrs, heldout);
    sample_set(SEED + 1, b, attrs, heldout);
    double self, same, swapped, no_red, all_squares;
    CHECK_OK(world_frechet(a, N_IMAGES, a, N_IMAGES, &self, &tc->err));
    CHECK_NEAR(self, 0.0, 1e-9);
    // Against another real set: the same distribution (red and blue exchanged is a relabelling of it) stays
    // at the sampling floor; a shifted distribution stands well above it.
    CHECK_OK(world_frechet(b, N_IMAGES, a, N_IMAGES, &same, &tc->err));
    swap_red_blue(SEED, shifted);
    CHECK_OK(world_frechet(b, N_IMAGES, shifted, N_IMAGES, &swapped, &tc->err));
    shifted_set(SEED, 0, shifted);
    CHECK_OK(world_frechet(b, N_IMAGES, shifted, N_IMAGES, &no_red, &tc->err));
    shifted_set(SEED, 1, shifted);
    CHECK_OK(world_frechet(b, N_IMAGES, shifted, N_IMAGES, &all_squares, &tc->err));
    printf("    FD to another real set of %d: real %.4f, red and blue exchanged %.4f, no red %.4f, all squares %.4f\n",
           N_IMAGES, same, swapped, no_red, all_squares);
    CHECK(same > 1e-3 && swapped < 2.0 * same);
    CHECK(no_red > 2.0 * same && all_squares > 2.0 * same);
    CHECK_FAILS_WITH(world_frechet(a, 1, b, N_IMAGES, &self, &tc->err), "at least 2 images");
}

// Rotates the symmetric m (n, n) by the Givens rotation of angle theta in the (p, q) plane: m <- G m G^T.
static void givens(double *m, int n, int p, int q, double theta) {
    double c = cos(theta), s = sin(theta);
    for (int k = 0; k < n; k++) {
        double x = m[p * n + k], y = m[q * n + k];
        m[p * n + k] = c * x - s * y, m[q * n + k] = s * x + c * y;
    }
    for (int k = 0; k < n; k++) {
        double x = m[k * n + p], y = m[k * n + q];
        m[k * n + p] = c * x - s * y, m[k * n + q] = s * x + c * y;
    }
}

DICE_TEST(world_metrics_frechet_closed_form) {
    enum { D = 7 };
    // Diagonal covariances (one variance 0 in each): FD = sum (mu1 - mu2)^2 + sum (sqrt(a) - sqrt(b))^2.
    double mu1[D] = {0.1, -0.4, 2.0, 0.0, 1.5, -1.0, 0.3}, mu2[D] = {0.3, -0.4, 1.0, 0.5, 1.5, -0.75, 0.0};
    double va[D] = {1.0, 4.0, 0.25, 0.0, 2.0, 9.0, 0.5}, vb[D] = {2.0, 1.0, 0.25, 3.0, 0.0, 4.0, 0.125};
    double c1[D * D] = {0}, c2[D * D] = {0}, want = 0.0, fd;
    for (int i = 0; i < D; i++) {
        c1[i * D + i] = va[i], c2[i * D + i] = vb[i];
        want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (sqrt(va[i]) - sqrt(vb[i])) * (sqrt(va[i]) - sqrt(vb[i]));
    }
    CHECK_OK(frechet_distance_moments(mu1, c1, mu2, c2, D, &fd, &tc->err));
    CHECK_NEAR(fd, want, 1e-12 * want);
    // The same Gaussians in a rotated basis (full covariances, so the eigen-decompositions do work): FD unchanged.
    for (int p = 0; p < D; p++)
        for (int q = p + 1; q < D; q++) {
            givens(c1, D, p, q, 0.3 + 0.1 * p - 0.05 * q);
            givens(c2, D, p, q, 0.3 + 0.1 * p - 0.05 * q);
        }
    for (int i = 0; i < D; i++)   // exactly symmetric again after rounding
        for (int j = i + 1; j < D; j++) c1[j * D + i] = c1[i * D + j], c2[j * D + i] = c2[i * D + j];
    CHECK(fabs(c1[1]) > 0.1);
    CHECK_OK(frechet_distance_moments(mu1, c1, mu2, c2, D, &fd, &tc->err));
    CHECK_NEAR(fd, want, 1e-12 * want);
    CHECK_OK(frechet_distance_moments(mu1, c1, mu1, c1, D, &fd, &tc->err));
    CHECK_NEAR(fd, 0.0, 1e-12);
    // Not a covariance: a clearly negative eigenvalue, an asymmetric matrix, too few rows.
    c2[0] -= 20.0;
    CHECK_FAILS_WITH(frechet_distance_moments(mu1, c1, mu2, c2, D, &fd, &tc->err), "not positive semi-definite");
    c2[0] += 20.0, c2[1] += 1.0;
    CHECK_FAILS_WITH(frechet_distance_moments(mu1, c1, mu2, c2, D, &fd, &tc->err), "not symmetric");
    CHECK_FAILS_WITH(frechet_distance(mu1, 1, mu2, 1, D, &fd, &tc->err), "at least 2 vectors");
}

// Rows of scripts/golden_frechet.py: splitmix64 uniforms mixed by the same exact double operations.
static void golden_rows(uint64_t seed, int n, int dim, double shift, double *out) {
    uint64_t state = seed;
    double u[16];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < dim; j++) u[j] = (double)(test_rand_u64(&state) >> 11) * 0x1p-53;
        for (int j = 0; j < dim; j++)
            out[i * dim + j] = u[j] + 0.5 * u[(j + 1) % dim] - 0.25 * u[(j + 3) % dim] + shift * j;
    }
}

DICE_TEST(world_metrics_frechet_golden) {
    // Printed by scripts/golden_frechet.py: name, seed and rows of x, seed and rows of y, dimension, FD in
    // 50-digit arithmetic. Double-precision references for comparison (their errors, not ours):
    //   full: scipy sqrtm (pytorch-fid) 0.33740522937235351, numpy eigh 0.33740522937235218
    //   singular: scipy sqrtm (pytorch-fid) 3.4655288595851852, numpy eigh 3.4655288707283685
    static const struct {
        const char *name;
        int seed_x, n_x, seed_y, n_y, dim;
        double fd;
    } cases[] = {
        {"full", 11, 40, 12, 60, 6, 0.33740522937235257},
        {"singular", 21, 5, 22, 6, 8, 3.4655288776605548},   // 5 and 6 vectors in 8 dimensions
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double x[60 * 8], y[60 * 8], fd;
        golden_rows((uint64_t)cases[c].seed_x, cases[c].n_x, cases[c].dim, 0.0, x);
        golden_rows((uint64_t)cases[c].seed_y, cases[c].n_y, cases[c].dim, 0.1, y);
        CHECK_OK(frechet_distance(x, cases[c].n_x, y, cases[c].n_y, cases[c].dim, &fd, &tc->err));
        CHECK_MSG(fabs(fd - cases[c].fd) <= 1e-12 * cases[c].fd, "%s: FD %.17g, golden %.17g", cases[c].name, fd,
                  cases[c].fd);
    }
}

DICE_TEST(world_metrics_mean_distance) {
    static uint8_t a[3 * WORLD_PIXELS], b[3 * WORLD_PIXELS];
    uint64_t state = tc->seed;
    for (int i = 0; i < 3 * WORLD_PIXELS; i++) a[i] = (uint8_t)test_rand_u64(&state);
    double d;
    CHECK_OK(world_mean_distance(a, a, 3, &d, &tc->err));
    CHECK(d == 0.0);
    // Pairs at RMS distance 1 (black / white), 0 and sqrt(1 / WORLD_PIXELS) (one channel of one pixel).
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    memset(b, 255, WORLD_PIXELS);
    b[2 * WORLD_PIXELS + 17] = 255;
    CHECK_OK(world_mean_distance(a, b, 3, &d, &tc->err));
    CHECK_NEAR(d, (1.0 + 0.0 + sqrt(1.0 / WORLD_PIXELS)) / 3.0, 1e-15);
    CHECK_FAILS_WITH(world_mean_distance(a, b, 0, &d, &tc->err), "at least 1 image pair");
}

DICE_TEST(world_metrics_evaluate) {
    static uint8_t samples[N_IMAGES * WORLD_PIXELS], real[N_IMAGES * WORLD_PIXELS], cfg[N_IMAGES * WORLD_PIXELS];
    static bool heldout[N_IMAGES];
    static WorldAttrs attrs[N_IMAGES], real_attrs[N_IMAGES];
    sample_set(SEED, samples, attrs, heldout);
    sample_set(SEED + 1, real, real_attrs, heldout);
    sample_set(SEED, cfg, attrs, heldout);
    swap_red_blue(SEED, samples);
    MethodResult m = {.name = "DICE", .nfe = 20, .seconds = 1.5};
    CHECK_OK(world_metrics_evaluate(samples, attrs, heldout, N_IMAGES, real, N_IMAGES, cfg, &m, &tc->err));
    WorldAccuracy all, held;
    double fd, dist;
    CHECK_OK(world_accuracy(samples, attrs, NULL, N_IMAGES, &all, &tc->err));
    CHECK_OK(world_accuracy(samples, attrs, heldout, N_IMAGES, &held, &tc->err));
    CHECK_OK(world_frechet(samples, N_IMAGES, real, N_IMAGES, &fd, &tc->err));
    CHECK_OK(world_mean_distance(samples, cfg, N_IMAGES, &dist, &tc->err));
    CHECK(m.acc_all == all.all && m.acc_heldout == held.all && m.acc_attributes == all.attributes &&
          m.acc_background == all.background && m.acc_colour == all.colour &&
          m.acc_shape == all.shape && m.acc_relation == all.relation && m.fd == fd && m.dist_to_cfg == dist);
    CHECK(all.all < 1.0 && dist > 0.0 && strcmp(m.name, "DICE") == 0 && m.nfe == 20 && m.seconds == 1.5);
    CHECK_OK(world_metrics_evaluate(samples, attrs, heldout, N_IMAGES, real, N_IMAGES, NULL, &m, &tc->err));
    CHECK(isnan(m.dist_to_cfg));
}

DICE_TEST(world_metrics_table) {
    MethodResult rows[3] = {
        {"unguided", "", 20, 0.4375, 0.25, 0.6, 0.75, 0.9, 0.875, 0.5, 0.123456, 0.05, 1.26},
        {"CFG", "w = 3", 40, 0.4375, NAN, 0.6, 0.75, 0.9, 0.875, 0.5, 0.5, 0.0, 2.5},
        {"DICE", "alpha = 1", 20.5, 1.0, 0.25, NAN, 0.75, 0.9, 0.875, 0.5, NAN, NAN, NAN},
    };
    const char *want =
        "| method | NFE | setting | all attributes (%) | held-out (%) | attributes (%) | background (%) | colour (%) | "
        "shape (%) | relation (%) | FD | distance to CFG | time (s) |\n"
        "|:--|--:|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
        "| unguided | 20 | - | 43.8 | 25.0 | 60.0 | 75.0 | 90.0 | 87.5 | 50.0 | 0.1235 | 0.0500 | 1.3 |\n"
        "| CFG | 40 | w = 3 | 43.8 | - | 60.0 | 75.0 | 90.0 | 87.5 | 50.0 | 0.5000 | 0.0000 | 2.5 |\n"
        "| DICE | 20.5 | alpha = 1 | 100.0 | 25.0 | - | 75.0 | 90.0 | 87.5 | 50.0 | - | - | - |\n";
    char path[512];
    snprintf(path, sizeof path, "%s/table.md", test_tmpdir(tc));
    CHECK_OK(world_metrics_table_file(path, rows, 3, &tc->err));
    char *got = NULL;
    size_t len = 0;
    CHECK_OK(dice_read_file(path, 1 << 16, &got, &len, &tc->err));
    CHECK_MSG(strcmp(got, want) == 0, "table:\n%s", got);
    free(got);
    snprintf(rows[1].setting, sizeof rows[1].setting, "w = 3 | 5");
    CHECK_FAILS_WITH(world_metrics_table_file(path, rows, 3, &tc->err), "row 1: the setting 'w = 3 | 5'");
    rows[1].name[0] = '\0';
    CHECK_FAILS_WITH(world_metrics_table_file(path, rows, 3, &tc->err), "row 1 has no method name");
    CHECK_FAILS_WITH(world_metrics_table_file("/nonexistent/dir/table.md", rows, 1, &tc->err), "cannot create");
}
