// eval/world_metrics.c — the metrics of `dice demo` on the synthetic world (eval/world_metrics.h): caption
// accuracy, analyser features and their Frechet distance (Jacobi eigen-decompositions in double), the mean
// RMS distance of two image sets, one method's metrics together, and the markdown table of the methods.
#include "world_metrics.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_PIX (WORLD_SIZE * WORLD_SIZE)
// A pixel further than this (RGB distance) from every palette colour counts as "none": the analyser's
// purity distance (PURE_DISTANCE in data/world_analyse.c).
#define FEATURE_PURE_DISTANCE 50
// Jacobi stops when the off-diagonal part's Frobenius norm is this small against the matrix's.
#define JACOBI_TOL 1e-15
#define JACOBI_MAX_SWEEPS 60
// Eigenvalues of a covariance (dim, dim) with |value| <= dim * EIG_ZERO_ULPS * DBL_EPSILON * (largest |value|) are
// rounding around 0 and taken as 0: the square root would turn rounding of 1e-16 into errors of 1e-8. One below
// -EIG_NEG_TOL * (largest |value|) means the matrix is not a covariance.
#define EIG_ZERO_ULPS 8
#define EIG_NEG_TOL 1e-9

// ---------------------------------------------------------------- caption accuracy

int world_accuracy(const uint8_t *rgb, const WorldAttrs *targets, const bool *select, int n,
                   WorldAccuracy *acc, DiceError *err) {
    DICE_CHECK(err, n >= 0, "world_accuracy: negative image count %d", n);
    long background = 0, colour = 0, shape = 0, relation = 0, objects = 0, all = 0;
    int counted = 0;
    for (int i = 0; i < n; i++) {
        if (select && !select[i]) continue;
        DICE_CHECK(err, world_attrs_valid(&targets[i]), "world_accuracy: target %d is not a valid combination", i);
        WorldScore s;
        world_score(rgb + (size_t)i * WORLD_PIXELS, &targets[i], &s);
        counted++;
        background += s.background, colour += s.colour[0] + s.colour[1], shape += s.shape[0] + s.shape[1];
        relation += s.relation, objects += s.objects, all += s.all;
    }
    acc->n = counted;
    double per_image = counted ? 1.0 / counted : NAN, per_slot = per_image / 2.0;
    acc->background = (double)background * per_image;
    acc->colour = (double)colour * per_slot;
    acc->shape = (double)shape * per_slot;
    acc->relation = (double)relation * per_image;
    acc->objects = (double)objects * per_image;
    acc->all = (double)all * per_image;
    acc->attributes = (double)(background + colour + shape + relation) * per_image / 6.0;
    return 0;
}

// ---------------------------------------------------------------- features

void world_features(const uint8_t *rgb, double *feature) {
    int count[WORLD_N_COLOURS + 1] = {0};   // per palette colour, then "none"
    for (int p = 0; p < N_PIX; p++) {
        int d;
        int best = world_nearest_colour(rgb + 3 * p, &d);
        count[d <= FEATURE_PURE_DISTANCE * FEATURE_PURE_DISTANCE ? best : WORLD_N_COLOURS]++;
    }
    for (int c = 0; c <= WORLD_N_COLOURS; c++) feature[c] = (double)count[c] / N_PIX;
    WorldAnalysis an;
    world_analyse(rgb, &an);
    feature[9] = an.n_objects / 2.0;
    for (int i = 0; i < 2; i++) {
        double *o = feature + 10 + 8 * i;
        if (i >= an.n_objects) {
            for (int k = 0; k < 8; k++) o[k] = 0.0;
            continue;
        }
        o[0] = (double)an.cx[i] / WORLD_SIZE;
        o[1] = (double)an.cy[i] / WORLD_SIZE;
        o[2] = (double)an.n_pixels[i] / N_PIX;
        o[3] = (double)an.lower_share[i];
        o[4] = (double)an.squareness[i];
        for (int k = 0; k < 3; k++) o[5 + k] = world_palette[an.attrs.colour[i]][k] / 255.0;
    }
}

// ---------------------------------------------------------------- Frechet distance

// Eigen-decomposition of the symmetric a (n, n) by cyclic Jacobi rotations: a is destroyed, evals (n) get
// the eigenvalues and evecs (n, n) the eigenvectors as columns (a = V diag(evals) V^T).
static int jacobi_eigen(double *a, int n, double *evals, double *evecs, DiceError *err) {
    double total = 0.0;
    for (int i = 0; i < n * n; i++) total += a[i] * a[i];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) evecs[i * n + j] = i == j;
    for (int sweep = 0; sweep < JACOBI_MAX_SWEEPS; sweep++) {
        double off = 0.0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) off += 2.0 * a[p * n + q] * a[p * n + q];
        if (off <= JACOBI_TOL * JACOBI_TOL * total) {
            for (int i = 0; i < n; i++) evals[i] = a[i * n + i];
            return 0;
        }
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (apq == 0.0) continue;
                // The rotation J (c at pp and qq, s at pq, -s at qp) with J^T A J zero at (p, q).
                double tau = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                double t = (tau >= 0.0 ? 1.0 : -1.0) / (fabs(tau) + hypot(1.0, tau));
                double c = 1.0 / hypot(1.0, t), s = t * c;
                for (int k = 0; k < n; k++) {   // A J
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) {   // J^T (A J)
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                a[p * n + q] = a[q * n + p] = 0.0;
                for (int k = 0; k < n; k++) {   // V J
                    double vkp = evecs[k * n + p], vkq = evecs[k * n + q];
                    evecs[k * n + p] = c * vkp - s * vkq;
                    evecs[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    return DICE_FAIL(err, "Frechet distance: Jacobi eigen-decomposition of a %dx%d matrix did not converge in %d "
                          "sweeps", n, n, JACOBI_MAX_SWEEPS);
}

// Sets the eigenvalues (n) within rounding of 0, or below it, to 0; fails on one clearly negative (what names
// the matrix).
static int clamp_eigenvalues(double *evals, int n, const char *what, DiceError *err) {
    double largest = 0.0;
    for (int i = 0; i < n; i++) largest = fmax(largest, fabs(evals[i]));
    for (int i = 0; i < n; i++) {
        DICE_CHECK(err, evals[i] >= -EIG_NEG_TOL * largest,
                   "Frechet distance: %s is not positive semi-definite (eigenvalue %.3g, largest |eigenvalue| %.3g)",
                   what, evals[i], largest);
        if (evals[i] <= n * EIG_ZERO_ULPS * DBL_EPSILON * largest) evals[i] = 0.0;
    }
    return 0;
}

static int check_symmetric(const double *c, int n, const char *what, DiceError *err) {
    double largest = 0.0;
    for (int i = 0; i < n * n; i++) largest = fmax(largest, fabs(c[i]));
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            DICE_CHECK(err, fabs(c[i * n + j] - c[j * n + i]) <= 1e-12 * largest,
                       "Frechet distance: %s is not symmetric (entries (%d, %d) and (%d, %d) differ)", what, i, j, j,
                       i);
    return 0;
}

int frechet_distance_moments(const double *mu1, const double *c1, const double *mu2, const double *c2, int dim,
                             double *fd, DiceError *err) {
    DICE_CHECK(err, dim >= 1, "Frechet distance: dimension %d < 1", dim);
    DICE_TRY(check_symmetric(c1, dim, "the first covariance", err));
    DICE_TRY(check_symmetric(c2, dim, "the second covariance", err));
    size_t nn = (size_t)dim * dim;
    // s1 = C1^{1/2}, t = s1 C2, m = t s1 (all (dim, dim)); evals (dim), evecs (dim, dim)
    double *buf = malloc((4 * nn + dim) * sizeof *buf);
    DICE_CHECK(err, buf, "Frechet distance: out of memory for %d dimensions", dim);
    double *s1 = buf, *t = s1 + nn, *m = t + nn, *evals = m + nn, *evecs = evals + dim;
    int rc = -1;
    memcpy(m, c1, nn * sizeof *m);
    if (jacobi_eigen(m, dim, evals, evecs, err) || clamp_eigenvalues(evals, dim, "the first covariance", err))
        goto done;
    for (int i = 0; i < dim; i++)
        for (int j = 0; j < dim; j++) {
            double v = 0.0;
            for (int k = 0; k < dim; k++) v += evecs[i * dim + k] * sqrt(evals[k]) * evecs[j * dim + k];
            s1[i * dim + j] = v;
        }
    for (int i = 0; i < dim; i++)
        for (int j = 0; j < dim; j++) {
            double v = 0.0;
            for (int k = 0; k < dim; k++) v += s1[i * dim + k] * c2[k * dim + j];
            t[i * dim + j] = v;
        }
    for (int i = 0; i < dim; i++)
        for (int j = 0; j < dim; j++) {
            double v = 0.0;
            for (int k = 0; k < dim; k++) v += t[i * dim + k] * s1[k * dim + j];
            m[i * dim + j] = v;
        }
    for (int i = 0; i < dim; i++)   // symmetric up to rounding: make it exactly so
        for (int j = i + 1; j < dim; j++) m[i * dim + j] = m[j * dim + i] = 0.5 * (m[i * dim + j] + m[j * dim + i]);
    if (jacobi_eigen(m, dim, evals, evecs, err) || clamp_eigenvalues(evals, dim, "C1^{1/2} C2 C1^{1/2}", err))
        goto done;
    double tr_sqrt = 0.0;   // tr (C1^{1/2} C2 C1^{1/2})^{1/2}
    for (int i = 0; i < dim; i++) tr_sqrt += sqrt(evals[i]);
    double d = 0.0;
    for (int i = 0; i < dim; i++) d += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + c1[i * dim + i] + c2[i * dim + i];
    *fd = d - 2.0 * tr_sqrt;
    rc = 0;
done:
    free(buf);
    return rc;
}

// Mean (dim) and sample covariance (dim, dim), divided by n - 1, of the rows of x (n, dim).
static void moments(const double *x, int n, int dim, double *mu, double *cov) {
    for (int j = 0; j < dim; j++) {
        double s = 0.0;
        for (int i = 0; i < n; i++) s += x[(size_t)i * dim + j];
        mu[j] = s / n;
    }
    for (int j = 0; j < dim; j++)
        for (int k = j; k < dim; k++) {
            double s = 0.0;
            for (int i = 0; i < n; i++) s += (x[(size_t)i * dim + j] - mu[j]) * (x[(size_t)i * dim + k] - mu[k]);
            cov[j * dim + k] = cov[k * dim + j] = s / (n - 1);
        }
}

int frechet_distance(const double *x, int n_x, const double *y, int n_y, int dim, double *fd, DiceError *err) {
    DICE_CHECK(err, n_x >= 2 && n_y >= 2, "Frechet distance: needs at least 2 vectors per set (got %d and %d)", n_x,
               n_y);
    DICE_CHECK(err, dim >= 1, "Frechet distance: dimension %d < 1", dim);
    size_t nn = (size_t)dim * dim;
    double *buf = malloc((2 * nn + 2 * (size_t)dim) * sizeof *buf);   // mu1, mu2 (dim), c1, c2 (dim, dim)
    DICE_CHECK(err, buf, "Frechet distance: out of memory for %d dimensions", dim);
    double *mu1 = buf, *mu2 = mu1 + dim, *c1 = mu2 + dim, *c2 = c1 + nn;
    moments(x, n_x, dim, mu1, c1);
    moments(y, n_y, dim, mu2, c2);
    int rc = frechet_distance_moments(mu1, c1, mu2, c2, dim, fd, err);
    free(buf);
    return rc;
}

int world_frechet(const uint8_t *rgb_a, int n_a, const uint8_t *rgb_b, int n_b, double *fd, DiceError *err) {
    DICE_CHECK(err, n_a >= 2 && n_b >= 2, "world_frechet: needs at least 2 images per set (got %d and %d)", n_a,
               n_b);
    double *f = malloc((size_t)(n_a + n_b) * WORLD_FEATURE_DIM * sizeof *f);   // (n_a + n_b, WORLD_FEATURE_DIM)
    DICE_CHECK(err, f, "world_frechet: out of memory for %d images", n_a + n_b);
    for (int i = 0; i < n_a; i++) world_features(rgb_a + (size_t)i * WORLD_PIXELS, f + (size_t)i * WORLD_FEATURE_DIM);
    for (int i = 0; i < n_b; i++)
        world_features(rgb_b + (size_t)i * WORLD_PIXELS, f + (size_t)(n_a + i) * WORLD_FEATURE_DIM);
    int rc = frechet_distance(f, n_a, f + (size_t)n_a * WORLD_FEATURE_DIM, n_b, WORLD_FEATURE_DIM, fd, err);
    free(f);
    return rc;
}

// ---------------------------------------------------------------- distance of paired images

int world_mean_distance(const uint8_t *rgb_a, const uint8_t *rgb_b, int n, double *dist, DiceError *err) {
    DICE_CHECK(err, n >= 1, "world_mean_distance: needs at least 1 image pair (got %d)", n);
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        const uint8_t *a = rgb_a + (size_t)i * WORLD_PIXELS, *b = rgb_b + (size_t)i * WORLD_PIXELS;
        long sq = 0;
        for (int p = 0; p < WORLD_PIXELS; p++) sq += ((int)a[p] - (int)b[p]) * ((int)a[p] - (int)b[p]);
        sum += sqrt((double)sq / WORLD_PIXELS) / 255.0;
    }
    *dist = sum / n;
    return 0;
}

// ---------------------------------------------------------------- one method's metrics

int world_metrics_evaluate(const uint8_t *pixels, const WorldAttrs *targets, const bool *heldout, int n,
                           const uint8_t *real, int n_real, const uint8_t *cfg_pixels, MethodResult *out,
                           DiceError *err) {
    DICE_CHECK(err, heldout, "world_metrics_evaluate: no held-out flags given");
    WorldAccuracy all, held;
    DICE_TRY(world_accuracy(pixels, targets, NULL, n, &all, err));
    DICE_TRY(world_accuracy(pixels, targets, heldout, n, &held, err));
    out->acc_all = all.all, out->acc_heldout = held.all;
    out->acc_attributes = all.attributes, out->acc_background = all.background;
    out->acc_colour = all.colour, out->acc_shape = all.shape, out->acc_relation = all.relation;
    DICE_TRY(world_frechet(pixels, n, real, n_real, &out->fd, err));
    out->dist_to_cfg = NAN;
    if (cfg_pixels) DICE_TRY(world_mean_distance(pixels, cfg_pixels, n, &out->dist_to_cfg, err));
    return 0;
}

// ---------------------------------------------------------------- table

// v with `decimals` decimals (times `scale`) into buf, or "-" when v is NaN.
static const char *cell(char *buf, size_t cap, double v, double scale, int decimals) {
    if (isnan(v))
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.*f", decimals, scale * v);
    return buf;
}

static int check_text(const char *s, int row, const char *what, DiceError *err) {
    DICE_CHECK(err, !strpbrk(s, "|\n\r"), "world_metrics_table: row %d: the %s '%s' contains '|' or a newline", row,
               what, s);
    return 0;
}

int world_metrics_table(FILE *f, const MethodResult *rows, int n_rows, DiceError *err) {
    DICE_CHECK(err, n_rows >= 0, "world_metrics_table: negative row count %d", n_rows);
    for (int r = 0; r < n_rows; r++) {
        DICE_CHECK(err, rows[r].name[0], "world_metrics_table: row %d has no method name", r);
        DICE_TRY(check_text(rows[r].name, r, "method name", err));
        DICE_TRY(check_text(rows[r].setting, r, "setting", err));
    }
    int bad = fprintf(f, "| method | NFE | setting | all attributes (%%) | held-out (%%) | attributes (%%) | "
                         "background (%%) | colour (%%) | shape (%%) | relation (%%) | FD | distance to CFG | time (s) |\n"
                         "|:--|--:|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n") < 0;
    for (int r = 0; r < n_rows && !bad; r++) {
        const MethodResult *m = &rows[r];
        char all[32], held[32], attrs[32], bg[32], colour[32], shape[32], relation[32], fd[32], dist[32], secs[32];
        bad = fprintf(f, "| %s | %g | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", m->name, m->nfe,
                      m->setting[0] ? m->setting : "-", cell(all, sizeof all, m->acc_all, 100.0, 1),
                      cell(held, sizeof held, m->acc_heldout, 100.0, 1),
                      cell(attrs, sizeof attrs, m->acc_attributes, 100.0, 1),
                      cell(bg, sizeof bg, m->acc_background, 100.0, 1),
                      cell(colour, sizeof colour, m->acc_colour, 100.0, 1),
                      cell(shape, sizeof shape, m->acc_shape, 100.0, 1),
                      cell(relation, sizeof relation, m->acc_relation, 100.0, 1), cell(fd, sizeof fd, m->fd, 1.0, 4),
                      cell(dist, sizeof dist, m->dist_to_cfg, 1.0, 4), cell(secs, sizeof secs, m->seconds, 1.0, 1)) < 0;
    }
    DICE_CHECK(err, !bad && fflush(f) == 0 && !ferror(f), "world_metrics_table: write failed");
    return 0;
}

int world_metrics_table_file(const char *path, const MethodResult *rows, int n_rows, DiceError *err) {
    FILE *f = fopen(path, "w");
    DICE_CHECK(err, f, "%s: cannot create the metrics table", path);
    int rc = world_metrics_table(f, rows, n_rows, err);
    if (rc) dice_error_context(err, "%s", path);
    if (fclose(f) != 0 && rc == 0) rc = DICE_FAIL(err, "%s: write failed when closing the metrics table", path);
    return rc;
}
