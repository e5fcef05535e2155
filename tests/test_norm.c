// tests/test_norm.c — group norm (with and without affine and fused SiLU) and layer norm: forward against
// the definition, gradients against finite differences in f64, argument checks, and the CUDA kernels
// (emulated or real) against the CPU in f32 and bf16 on ragged shapes.
#include <stdio.h>
#include <stdlib.h>

#include "cuda_parity.h"
#include "nn/cuda_api.h"
#include "nn/op_norm.h"
#include "nn/tensor_copy.h"

// ---------------------------------------------------------------- references and helpers
// Group norm by its definition, in double: x (B, S, C), one group at a time.
static void group_norm_reference(double *y, const double *x, const double *gamma, const double *beta, int64_t B,
                                 int64_t S, int64_t C, int64_t G, double eps, bool silu) {
    int64_t cg = C / G;
    for (int64_t b = 0; b < B; b++)
        for (int64_t g = 0; g < G; g++) {
            double sum = 0, sq = 0, n = (double)(S * cg);
            for (int64_t i = 0; i < S * cg; i++) sum += x[(b * S + i / cg) * C + g * cg + i % cg];
            for (int64_t i = 0; i < S * cg; i++) {
                double d = x[(b * S + i / cg) * C + g * cg + i % cg] - sum / n;
                sq += d * d;
            }
            for (int64_t i = 0; i < S * cg; i++) {
                int64_t c = g * cg + i % cg, k = (b * S + i / cg) * C + c;
                double z = (x[k] - sum / n) / sqrt(sq / n + eps) * (gamma ? gamma[c] : 1) + (beta ? beta[c] : 0);
                y[k] = silu ? z / (1 + exp(-z)) : z;
            }
        }
}

static void layer_norm_reference(double *y, const double *x, const double *gamma, const double *beta, int64_t rows,
                                 int64_t C, double eps) {
    for (int64_t r = 0; r < rows; r++) {
        double sum = 0, sq = 0;
        for (int64_t c = 0; c < C; c++) sum += x[r * C + c];
        for (int64_t c = 0; c < C; c++) sq += (x[r * C + c] - sum / C) * (x[r * C + c] - sum / C);
        for (int64_t c = 0; c < C; c++)
            y[r * C + c] = (x[r * C + c] - sum / C) / sqrt(sq / C + eps) * (gamma ? gamma[c] : 1) + (beta ? beta[c] : 0);
    }
}

typedef struct NormCase {
    int kind;                   // 0 group norm, 1 layer norm, 2 group norm + SiLU then layer norm
    const Tensor *gamma, *beta;  // group norm's (or layer norm's for kind 1)
    const Tensor *ln_gamma;     // kind 2: the layer norm's gamma
    int groups;
    bool silu;
} NormCase;

static int norm_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    const NormCase *c = user;
    if (c->kind == 1) return op_layer_norm(g, out, in[0], c->gamma, c->beta, 1e-5f, err);
    if (c->kind == 0) return op_group_norm(g, out, in[0], c->gamma, c->beta, c->groups, 1e-5f, c->silu, err);
    Var *h;
    DICE_TRY(op_group_norm(g, &h, in[0], c->gamma, c->beta, c->groups, 1e-5f, true, err));
    return op_layer_norm(g, out, h, c->ln_gamma, NULL, 1e-5f, err);
}

// Shapes: (B, H, W, C, G) with ndim 4, or (B, N, C, G) with ndim 3 (H = 1, W = N).
typedef struct GroupShape {
    int ndim;
    int64_t B, H, W, C, G;
} GroupShape;

static int group_shape(const GroupShape *s, int64_t *shape) {
    shape[0] = s->B;
    if (s->ndim == 3) {
        shape[1] = s->W;
        shape[2] = s->C;
    } else {
        shape[1] = s->H;
        shape[2] = s->W;
        shape[3] = s->C;
    }
    return s->ndim;
}

// ---------------------------------------------------------------- CPU: definition and gradients
DICE_TEST(norm_group_norm_forward_matches_definition) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 20, 0, &tc->err));
    uint64_t rng = tc->seed;
    // Known values: one group of 1, 2, 3, 4: mean 2.5, biased variance 1.25.
    {
        double xs[4] = {1, 2, 3, 4};
        int64_t shape[3] = {1, 2, 2};
        Tensor xt;
        CHECK_OK(tensor_wrap(&xt, xs, DT_F64, DEV_CPU, 3, shape, &tc->err));
        Graph g;
        CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
        Var *x, *y;
        CHECK_OK(graph_leaf(&g, &x, &xt, false, &tc->err));
        CHECK_OK(op_group_norm(&g, &y, x, NULL, NULL, 1, 0.0f, false, &tc->err));
        for (int i = 0; i < 4; i++) CHECK_NEAR(((double *)y->value.data)[i], (xs[i] - 2.5) / sqrt(1.25), 1e-15);
        graph_free(&g);
    }
    const GroupShape shapes[] = {{4, 2, 3, 5, 12, 4}, {4, 1, 4, 4, 9, 3}, {3, 2, 1, 7, 6, 6}, {4, 1, 2, 2, 8, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int variant = 0; variant < 4; variant++) {
            arena_reset(&arena);
            const GroupShape *s = &shapes[si];
            bool affine = variant & 1, silu = variant & 2;
            int64_t shape[4], S = s->H * s->W;
            int ndim = group_shape(s, shape);
            Tensor xt, gt, bt;
            CHECK_OK(test_random_f64(&arena, &xt, ndim, shape, -3, 5, &rng, &tc->err));
            CHECK_OK(test_random_f64(&arena, &gt, 1, &s->C, 0.5, 1.5, &rng, &tc->err));
            CHECK_OK(test_random_f64(&arena, &bt, 1, &s->C, -0.5, 0.5, &rng, &tc->err));
            int64_t n = tensor_numel(&xt);
            double *want = malloc((size_t)n * sizeof *want);
            CHECK(want);
            group_norm_reference(want, xt.data, affine ? gt.data : NULL, affine ? bt.data : NULL, s->B, S, s->C,
                                 s->G, 1e-5, silu);
            for (int f32 = 0; f32 < 2; f32++) {
                Graph g;
                CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
                Tensor xi = xt, gi = gt, bi = bt;
                if (f32) {
                    CHECK_OK(tensor_to(&ctx, &arena, &xi, &xt, DT_F32, &tc->err));
                    CHECK_OK(tensor_to(&ctx, &arena, &gi, &gt, DT_F32, &tc->err));
                    CHECK_OK(tensor_to(&ctx, &arena, &bi, &bt, DT_F32, &tc->err));
                }
                Var *x, *y;
                CHECK_OK(graph_leaf(&g, &x, &xi, false, &tc->err));
                CHECK_OK(op_group_norm(&g, &y, x, affine ? &gi : NULL, affine ? &bi : NULL, (int)s->G, 1e-5f, silu,
                                       &tc->err));
                // f64: the same sums in another order (1e-12); f32: inputs and output rounded to f32 (1e-6).
                double tol = f32 ? 1e-6 : 1e-12;
                for (int64_t i = 0; i < n; i++) {
                    double got = f32 ? ((float *)y->value.data)[i] : ((double *)y->value.data)[i];
                    CHECK_MSG(fabs(got - want[i]) <= tol * (1 + fabs(want[i])),
                              "shape %zu variant %d %s: y[%lld] = %.12g, definition %.12g", si, variant,
                              f32 ? "f32" : "f64", (long long)i, got, want[i]);
                }
                graph_free(&g);
            }
            free(want);
        }
    arena_free(&arena);
}

DICE_TEST(norm_layer_norm_forward_matches_definition) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 20, 0, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t shapes[][3] = {{1, 1, 5}, {2, 7, 13}, {3, 4, 64}};
    for (int si = 0; si < 3; si++)
        for (int variant = 0; variant < 3; variant++) {  // no affine, gamma only, gamma and beta
            arena_reset(&arena);
            Tensor xt, gt, bt;
            CHECK_OK(test_random_f64(&arena, &xt, 3, shapes[si], -3, 5, &rng, &tc->err));
            CHECK_OK(test_random_f64(&arena, &gt, 1, &shapes[si][2], 0.5, 1.5, &rng, &tc->err));
            CHECK_OK(test_random_f64(&arena, &bt, 1, &shapes[si][2], -0.5, 0.5, &rng, &tc->err));
            const Tensor *gp = variant >= 1 ? &gt : NULL, *bp = variant == 2 ? &bt : NULL;
            int64_t n = tensor_numel(&xt), C = shapes[si][2];
            double *want = malloc((size_t)n * sizeof *want);
            CHECK(want);
            layer_norm_reference(want, xt.data, gp ? gt.data : NULL, bp ? bt.data : NULL, n / C, C, 1e-5);
            Graph g;
            CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
            Var *x, *y;
            CHECK_OK(graph_leaf(&g, &x, &xt, false, &tc->err));
            CHECK_OK(op_layer_norm(&g, &y, x, gp, bp, 1e-5f, &tc->err));
            for (int64_t i = 0; i < n; i++)
                CHECK_MSG(fabs(((double *)y->value.data)[i] - want[i]) <= 1e-12 * (1 + fabs(want[i])),
                          "shape %d variant %d: y[%lld] = %.15g, definition %.15g", si, variant, (long long)i,
                          ((double *)y->value.data)[i], want[i]);
            graph_free(&g);
            free(want);
        }
    arena_free(&arena);
}

DICE_TEST(norm_group_norm_gradcheck) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 16, 0, &tc->err));
    uint64_t rng = tc->seed;
    // C/G = 3 (odd), 2, 1 (instance norm), C (one group), and a 3-d (B, N, C) input.
    const GroupShape shapes[] = {{4, 2, 3, 5, 12, 4}, {4, 1, 3, 3, 6, 3}, {4, 2, 2, 3, 5, 5}, {3, 2, 1, 7, 6, 1},
                                 {3, 1, 1, 9, 9, 3}};
    bool req[1] = {true};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int variant = 0; variant < 4; variant++) {
            arena_reset(&arena);
            const GroupShape *s = &shapes[si];
            int64_t shape[4];
            int ndim = group_shape(s, shape);
            Tensor x, gamma, beta;
            CHECK_OK(test_random_f64(&arena, &x, ndim, shape, -2, 2, &rng, &tc->err));
            CHECK_OK(test_random_f64(&arena, &gamma, 1, &s->C, 0.5, 1.5, &rng, &tc->err));
            CHECK_OK(test_random_f64(&arena, &beta, 1, &s->C, -0.5, 0.5, &rng, &tc->err));
            bool affine = variant & 1;
            NormCase c = {0, affine ? &gamma : NULL, affine ? &beta : NULL, NULL, (int)s->G, (variant & 2) != 0};
            char what[96];
            snprintf(what, sizeof what, "group_norm shape %zu, affine %d, silu %d", si, affine, c.silu);
            CHECK(gradcheck(tc, what, norm_fn, &c, &x, req, 1, 1e-6) == 0);
        }
    arena_free(&arena);
}

DICE_TEST(norm_layer_norm_gradcheck) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 16, 0, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t shapes[][3] = {{1, 1, 2}, {2, 3, 7}, {1, 5, 16}};
    bool req[1] = {true};
    for (int si = 0; si < 3; si++)
        for (int variant = 0; variant < 3; variant++) {
            arena_reset(&arena);
            Tensor x, gamma, beta;
            CHECK_OK(test_random_f64(&arena, &x, 3, shapes[si], -2, 2, &rng, &tc->err));
            CHECK_OK(test_random_f64(&arena, &gamma, 1, &shapes[si][2], 0.5, 1.5, &rng, &tc->err));
            CHECK_OK(test_random_f64(&arena, &beta, 1, &shapes[si][2], -0.5, 0.5, &rng, &tc->err));
            NormCase c = {1, variant >= 1 ? &gamma : NULL, variant == 2 ? &beta : NULL, NULL, 0, false};
            char what[64];
            snprintf(what, sizeof what, "layer_norm shape %d variant %d", si, variant);
            CHECK(gradcheck(tc, what, norm_fn, &c, &x, req, 1, 1e-6) == 0);
        }
    // Two recorded norms in a row: group norm + SiLU (B, N, C) then layer norm over C.
    arena_reset(&arena);
    int64_t shape[3] = {2, 5, 8};
    Tensor x, gamma, beta, ln_gamma;
    CHECK_OK(test_random_f64(&arena, &x, 3, shape, -2, 2, &rng, &tc->err));
    CHECK_OK(test_random_f64(&arena, &gamma, 1, &shape[2], 0.5, 1.5, &rng, &tc->err));
    CHECK_OK(test_random_f64(&arena, &beta, 1, &shape[2], -0.5, 0.5, &rng, &tc->err));
    CHECK_OK(test_random_f64(&arena, &ln_gamma, 1, &shape[2], 0.5, 1.5, &rng, &tc->err));
    NormCase chain = {2, &gamma, &beta, &ln_gamma, 4, true};
    CHECK(gradcheck(tc, "group_norm_silu -> layer_norm", norm_fn, &chain, &x, req, 1, 1e-6) == 0);
    arena_free(&arena);
}

// An input that needs no gradient records nothing; bad arguments fail with a message naming the problem.
DICE_TEST(norm_no_grad_and_bad_arguments) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 16, 0, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
    uint64_t rng = tc->seed;
    int64_t shape[4] = {2, 3, 3, 6}, c6 = 6, c5 = 5;
    Tensor xt, g6, g5, g6f;
    CHECK_OK(test_random_f64(&arena, &xt, 4, shape, -1, 1, &rng, &tc->err));
    CHECK_OK(test_random_f64(&arena, &g6, 1, &c6, -1, 1, &rng, &tc->err));
    CHECK_OK(test_random_f64(&arena, &g5, 1, &c5, -1, 1, &rng, &tc->err));
    CHECK_OK(arena_tensor(&arena, &g6f, DT_F32, 1, &c6, &tc->err));
    Var *frozen, *x, *y;
    CHECK_OK(graph_leaf(&g, &frozen, &xt, false, &tc->err));
    CHECK_OK(graph_leaf(&g, &x, &xt, true, &tc->err));
    CHECK_OK(op_group_norm(&g, &y, frozen, &g6, &g6, 3, 1e-5f, true, &tc->err));
    CHECK(!y->requires_grad && g.n_nodes == 0);
    CHECK_OK(op_layer_norm(&g, &y, frozen, &g6, NULL, 1e-5f, &tc->err));
    CHECK(!y->requires_grad && g.n_nodes == 0);
    graph_no_grad_begin(&g);
    CHECK_OK(op_group_norm(&g, &y, x, NULL, NULL, 2, 1e-5f, false, &tc->err));
    CHECK(!y->requires_grad && g.n_nodes == 0);
    graph_no_grad_end(&g);
    CHECK_OK(op_group_norm(&g, &y, x, NULL, NULL, 2, 1e-5f, false, &tc->err));
    CHECK(y->requires_grad && g.n_nodes == 1);

    CHECK_FAILS_WITH(op_group_norm(&g, &y, x, NULL, NULL, 4, 1e-5f, false, &tc->err), "do not split into 4 groups");
    CHECK_FAILS_WITH(op_group_norm(&g, &y, x, &g5, NULL, 3, 1e-5f, false, &tc->err), "gamma");
    CHECK_FAILS_WITH(op_group_norm(&g, &y, x, NULL, &g6f, 3, 1e-5f, false, &tc->err), "beta");
    CHECK_FAILS_WITH(op_layer_norm(&g, &y, x, &g5, NULL, 1e-5f, &tc->err), "gamma");
    CHECK_FAILS_WITH(op_layer_norm(&g, &y, x, NULL, NULL, -1.0f, &tc->err), "negative");
    Tensor flat, strided;
    CHECK_OK(tensor_reshape(&flat, &xt, 2, (int64_t[]){18, 6}, &tc->err));
    CHECK_OK(graph_leaf(&g, &x, &flat, true, &tc->err));
    CHECK_FAILS_WITH(op_group_norm(&g, &y, x, NULL, NULL, 3, 1e-5f, false, &tc->err), "(B, H, W, C) or (B, N, C)");
    CHECK_OK(tensor_permute(&strided, &xt, (int[]){0, 2, 1, 3}, &tc->err));
    CHECK_OK(graph_leaf(&g, &x, &strided, true, &tc->err));
    CHECK_FAILS_WITH(op_group_norm(&g, &y, x, NULL, NULL, 3, 1e-5f, false, &tc->err), "contiguous");
    graph_free(&g);
    arena_free(&arena);
}

// ---------------------------------------------------------------- CUDA against the CPU
// A device copy of a host f32 tensor in `dtype`; misaligned: its data starts one element past an aligned
// address (a contiguous view into a larger buffer), which must send the kernels down the scalar path.
static int to_device(DiceCtx *gpu, Arena *dev, Tensor *out, const Tensor *host, DType dtype, bool misaligned,
                     DiceError *err) {
    Tensor d;
    DICE_TRY(tensor_to(gpu, dev, &d, host, dtype, err));
    if (!misaligned) {
        *out = d;
        return 0;
    }
    int64_t n = tensor_numel(host) + 1;
    Tensor buf, view;
    DICE_TRY(arena_tensor(dev, &buf, dtype, 1, &n, err));
    DICE_TRY(tensor_narrow(&view, &buf, 0, 1, n - 1, err));
    DICE_TRY(tensor_reshape(out, &view, host->ndim, host->shape, err));
    return tensor_copy(gpu, out, &d, err);
}

typedef struct CudaCase {
    GroupShape shape;  // layer norm: rows = B * H * W, C
    float offset;      // added to x: statistics of inputs far from zero
    bool misaligned;
} CudaCase;

// One forward + backward of group norm (layer norm when groups == 0) on the CPU in f32 and on CUDA in
// `dtype`, from the same (rounded) inputs; outputs and input gradients compared.
static void compare_norm_cuda(TestCtx *tc, CudaTestEnv *e, const CudaCase *cc, int groups, DType dtype, bool affine,
                              bool with_beta, bool silu, uint64_t *rng) {
    cuda_env_reset(e);
    CHECK_OK(test_poison_arena(&e->dev, &tc->err));
    int64_t shape[4];
    int ndim = group_shape(&cc->shape, shape);
    int64_t C = cc->shape.C;
    Tensor x, dy, gamma, beta, xd, dyd, gd, bd;
    CHECK_OK(cuda_env_random(e, ndim, shape, cc->offset - 2, cc->offset + 2, dtype, rng, &x, NULL, &tc->err));
    CHECK_OK(cuda_env_random(e, ndim, shape, -1, 1, dtype, rng, &dy, NULL, &tc->err));
    CHECK_OK(cuda_env_random(e, 1, &C, 0.5f, 1.5f, dtype, rng, &gamma, NULL, &tc->err));
    CHECK_OK(cuda_env_random(e, 1, &C, -0.5f, 0.5f, dtype, rng, &beta, NULL, &tc->err));
    CHECK_OK(to_device(&e->gpu, &e->dev, &xd, &x, dtype, cc->misaligned, &tc->err));
    CHECK_OK(to_device(&e->gpu, &e->dev, &dyd, &dy, dtype, cc->misaligned, &tc->err));
    CHECK_OK(to_device(&e->gpu, &e->dev, &gd, &gamma, dtype, false, &tc->err));
    CHECK_OK(to_device(&e->gpu, &e->dev, &bd, &beta, dtype, false, &tc->err));
    Graph gc, gg;
    CHECK_OK(graph_init(&gc, &e->cpu, &e->host, &tc->err));
    CHECK_OK(graph_init(&gg, &e->gpu, &e->dev, &tc->err));
    Var *cx, *gx, *cy, *gy;
    CHECK_OK(graph_leaf(&gc, &cx, &x, true, &tc->err));
    CHECK_OK(graph_leaf(&gg, &gx, &xd, true, &tc->err));
    const Tensor *cg = affine ? &gamma : NULL, *cb = with_beta ? &beta : NULL;
    const Tensor *dg = affine ? &gd : NULL, *db = with_beta ? &bd : NULL;
    if (groups) {
        CHECK_OK(op_group_norm(&gc, &cy, cx, cg, cb, groups, 1e-5f, silu, &tc->err));
        CHECK_OK(op_group_norm(&gg, &gy, gx, dg, db, groups, 1e-5f, silu, &tc->err));
    } else {
        CHECK_OK(op_layer_norm(&gc, &cy, cx, cg, cb, 1e-5f, &tc->err));
        CHECK_OK(op_layer_norm(&gg, &gy, gx, dg, db, 1e-5f, &tc->err));
    }
    CHECK_OK(graph_backward_from(&gc, cy, &dy, &tc->err));
    CHECK_OK(graph_backward_from(&gg, gy, &dyd, &tc->err));
    double ey, ed;
    CHECK_OK(cuda_env_rel_err(e, &gy->value, &cy->value, &ey, &tc->err));
    CHECK_OK(cuda_env_rel_err(e, &gx->grad, &cx->grad, &ed, &tc->err));
    // Same inputs on both sides. f32: the CPU sums in double and rounds once; CUDA keeps fp32 statistics
    // (shifted sums, Chan merges) and fp32 arithmetic, with __expf in SiLU: a few 1e-7 relative, plus
    // 6e-8 * offset / std from the mean when the inputs sit far from zero: 1e-5 covers both.
    // bf16: the output and dx are rounded once to bf16 (at most 2^-9, RMS about 1.1e-3 relative): 5e-3.
    double tol = dtype == DT_F32 ? 1e-5 : 5e-3;
    const char *what = groups ? "group_norm" : "layer_norm";
    CHECK_MSG(ey <= tol && ed <= tol,
              "%s %s B %lld H %lld W %lld C %lld G %d affine %d beta %d silu %d offset %g misaligned %d: "
              "relative error y %.3g, dx %.3g (tolerance %.1g)",
              what, dtype_name(dtype), (long long)cc->shape.B, (long long)cc->shape.H, (long long)cc->shape.W,
              (long long)C, groups, affine, with_beta, silu, (double)cc->offset, cc->misaligned, ey, ed, tol);
    graph_free(&gc);
    graph_free(&gg);
}

DICE_CUDA_TEST(norm_group_norm_cuda_matches_cpu) {
    CudaTestEnv e;
    CHECK_OK(cuda_env_init(&e, 1 << 22, 1 << 22, &tc->err));
    uint64_t rng = tc->seed;
    // C/G odd (3, 5), SD-like 10, 2 and 1; bf16 8-channel vectors spanning two groups (C 24, G 8); scalar
    // paths (C 12 and 30 in bf16, 30 in f32, misaligned data); several row chunks per sample (S 64, 256);
    // rows wider than 256 threads (C 2560: one row of threads per block).
    const CudaCase cases[] = {
        {{4, 2, 3, 5, 12, 4}, 0, false},  {{4, 1, 7, 9, 30, 6}, 0, false},  {{4, 2, 8, 8, 40, 4}, 0, false},
        {{3, 3, 1, 37, 24, 8}, 0, false}, {{4, 1, 16, 16, 64, 32}, 0, false}, {{4, 2, 5, 5, 16, 16}, 20, false},
        {{4, 2, 4, 4, 16, 4}, 0, true},   {{4, 1, 2, 3, 2560, 32}, 0, false},
    };
    const DType types[2] = {DT_F32, DT_BF16};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int ti = 0; ti < 2; ti++)
            for (int variant = 0; variant < 4; variant++) {
                bool affine = variant & 1, silu = variant & 2;
                compare_norm_cuda(tc, &e, &cases[ci], (int)cases[ci].shape.G, types[ti], affine, affine, silu, &rng);
                if (tc->failed) return;
            }
    cuda_env_free(&e);
}

DICE_CUDA_TEST(norm_layer_norm_cuda_matches_cpu) {
    CudaTestEnv e;
    CHECK_OK(cuda_env_init(&e, 1 << 22, 1 << 22, &tc->err));
    uint64_t rng = tc->seed;
    // (rows as B x N, C): scalar C 7 and 1001, 8-wide vectors (C 24, 40, 320, 1280), rows not a multiple
    // of the 8 rows per block, misaligned data, inputs far from zero.
    const CudaCase cases[] = {
        {{3, 1, 1, 5, 7, 0}, 0, false},   {{3, 3, 1, 37, 24, 0}, 0, false}, {{3, 2, 1, 7, 40, 0}, 0, false},
        {{3, 4, 1, 1, 320, 0}, 0, false}, {{3, 3, 1, 1, 1280, 0}, 0, false}, {{3, 2, 1, 1, 1001, 0}, 0, false},
        {{3, 3, 1, 6, 64, 0}, 0, true},   {{3, 2, 1, 9, 32, 0}, 30, false},
    };
    const DType types[2] = {DT_F32, DT_BF16};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int ti = 0; ti < 2; ti++)
            for (int variant = 0; variant < 3; variant++) {  // no affine, gamma only, gamma and beta
                compare_norm_cuda(tc, &e, &cases[ci], 0, types[ti], variant >= 1, variant == 2, false, &rng);
                if (tc->failed) return;
            }
    cuda_env_free(&e);
}

// The widest rows: C = 8192 in bf16 is 1024 threads of 8 channels and 64 KiB of shared memory (the opt-in
// above 48 KiB); in f32 it would need 2048 threads and is refused with a message.
DICE_CUDA_TEST(norm_group_norm_cuda_widest_rows) {
    CudaTestEnv e;
    CHECK_OK(cuda_env_init(&e, 1 << 22, 1 << 22, &tc->err));
    uint64_t rng = tc->seed;
    const CudaCase wide = {{3, 1, 1, 2, 8192, 64}, 0, false};
    compare_norm_cuda(tc, &e, &wide, 64, DT_BF16, true, true, true, &rng);
    if (tc->failed) return;
    Graph g;
    CHECK_OK(graph_init(&g, &e.gpu, &e.dev, &tc->err));
    Tensor xt;
    CHECK_OK(arena_tensor(&e.dev, &xt, DT_F32, 3, (int64_t[]){1, 2, 8192}, &tc->err));
    Var *x, *y;
    CHECK_OK(graph_leaf(&g, &x, &xt, false, &tc->err));
    CHECK_FAILS_WITH(op_group_norm(&g, &y, x, NULL, NULL, 64, 1e-5f, false, &tc->err), "at most 1024");
    graph_free(&g);
    cuda_env_free(&e);
}
