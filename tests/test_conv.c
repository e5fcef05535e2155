// tests/test_conv.c — 2-D convolution (nn/op_conv.h, kernels/conv.h): the CPU twin against a direct
// convolution, gradient checks of both ops, the weight repacking and the op's checks (CPU tests); the custom
// CUDA kernels for every block tile, the op on CUDA, the cuDNN path and the backend choice (DICE_CUDA_TESTs:
// emulated by `make test`, on a GPU by `make test-gpu`).
#include <stdio.h>
#include <stdlib.h>

#include "cuda_parity.h"
#include "gradcheck.h"
#include "kernels/conv.h"
#include "nn/cuda_api.h"
#include "nn/op_conv.h"
#include "nn/tensor_copy.h"
#include "test.h"

typedef struct ConvCase {
    int B, H, W, Cin, Cout, k, stride, pad;
} ConvCase;

// ---------------------------------------------------------------- CPU twin against the definition
// y[b, oy, ox, co] = bias[co] + sum over (ky, kx, ci) of x[b, oy s - p + ky, ox s - p + kx, ci] w[co, ky, kx, ci]
static void direct_conv(const ConvShape *s, double *y, const double *x, const double *w, const double *bias) {
    for (int b = 0; b < s->B; b++)
        for (int oy = 0; oy < s->Ho; oy++)
            for (int ox = 0; ox < s->Wo; ox++)
                for (int co = 0; co < s->Cout; co++) {
                    double acc = bias ? bias[co] : 0.0;
                    for (int ky = 0; ky < s->kh; ky++)
                        for (int kx = 0; kx < s->kw; kx++) {
                            int iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
                            if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                            for (int ci = 0; ci < s->Cin; ci++)
                                acc += x[((b * s->H + iy) * s->W + ix) * s->Cin + ci] *
                                       w[((co * s->kh + ky) * s->kw + kx) * s->Cin + ci];
                        }
                    y[((b * s->Ho + oy) * s->Wo + ox) * s->Cout + co] = acc;
                }
}

static void random_fill(double *d, int64_t n, uint64_t *rng) {
    for (int64_t i = 0; i < n; i++) d[i] = test_rand_uniform(rng, -1, 1);
}

DICE_TEST(conv_cpu_forward_matches_direct) {
    const ConvCase cases[] = {{2, 5, 7, 3, 5, 3, 1, 1}, {1, 6, 6, 4, 8, 3, 2, 1}, {2, 7, 5, 5, 3, 1, 1, 0},
                              {1, 8, 9, 3, 4, 1, 2, 0}, {2, 9, 8, 2, 3, 5, 2, 2}, {1, 4, 4, 3, 2, 3, 1, 0}};
    uint64_t rng = tc->seed;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const ConvCase *k = &cases[c];
        ConvShape s;
        CHECK_OK(conv_shape_init(&s, k->B, k->H, k->W, k->Cin, k->Cout, k->k, k->k, k->stride, k->pad, &tc->err));
        int64_t nx = (int64_t)s.B * s.H * s.W * s.Cin, nw = (int64_t)s.Cout * s.kh * s.kw * s.Cin;
        int64_t ny = (int64_t)s.B * s.Ho * s.Wo * s.Cout;
        double *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *b = malloc(s.Cout * sizeof *b);
        double *want = malloc(ny * sizeof *want), *got = malloc(ny * sizeof *got);
        float *xf = malloc(nx * sizeof *xf), *wf = malloc(nw * sizeof *wf), *bf = malloc(s.Cout * sizeof *bf);
        float *gotf = malloc(ny * sizeof *gotf), *wantf = malloc(ny * sizeof *wantf);
        random_fill(x, nx, &rng);
        random_fill(w, nw, &rng);
        random_fill(b, s.Cout, &rng);
        for (int64_t i = 0; i < nx; i++) xf[i] = (float)x[i];
        for (int64_t i = 0; i < nw; i++) wf[i] = (float)w[i];
        for (int i = 0; i < s.Cout; i++) bf[i] = (float)b[i];
        direct_conv(&s, want, x, w, c % 2 ? NULL : b);
        for (int64_t i = 0; i < ny; i++) wantf[i] = (float)want[i];
        CHECK_OK(conv2d_forward_cpu(&s, DT_F64, got, x, w, c % 2 ? NULL : b, &tc->err));
        double worst = 0;
        for (int64_t i = 0; i < ny; i++) worst = fmax(worst, fabs(got[i] - want[i]));
        CHECK_MSG(worst < 1e-12, "case %zu: f64 differs from the direct convolution by %.3g", c, worst);
        CHECK_OK(conv2d_forward_cpu(&s, DT_F32, gotf, xf, wf, c % 2 ? NULL : bf, &tc->err));
        CHECK_REL_ERR(gotf, wantf, (size_t)ny, 1e-6);  // fp32 sums of at most 75 products
        free(x), free(w), free(b), free(want), free(got), free(xf), free(wf), free(bf), free(gotf), free(wantf);
    }
}

// ---------------------------------------------------------------- gradient checks (f64, CPU)
typedef struct ConvOpArgs {
    int stride, pad;
    bool trainable, bias;
} ConvOpArgs;

// inputs: x (B, H, W, Cin), weight (Cout, k, k, Cin), bias (Cout).
static int conv_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    const ConvOpArgs *a = user;
    if (a->trainable) return op_conv2d_trainable(g, out, in[0], in[1], a->bias ? in[2] : NULL, a->stride, a->pad, err);
    return op_conv2d(g, out, in[0], &in[1]->value, a->bias ? &in[2]->value : NULL, a->stride, a->pad, err);
}

static void gradcheck_case(TestCtx *tc, const ConvCase *k, bool trainable, bool bias, const bool requires[3]) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "conv-gradcheck", DEV_CPU, 1 << 20, 0, &tc->err));
    uint64_t rng = tc->seed ^ (uint64_t)(k->H * 131 + k->Cin * 7 + k->k);
    Tensor in[3];
    int64_t xs[4] = {k->B, k->H, k->W, k->Cin}, ws[4] = {k->Cout, k->k, k->k, k->Cin}, bs[1] = {k->Cout};
    CHECK_OK(test_random_f64(&arena, &in[0], 4, xs, -1, 1, &rng, &tc->err));
    CHECK_OK(test_random_f64(&arena, &in[1], 4, ws, -1, 1, &rng, &tc->err));
    CHECK_OK(test_random_f64(&arena, &in[2], 1, bs, -1, 1, &rng, &tc->err));
    ConvOpArgs a = {k->stride, k->pad, trainable, bias};
    char what[160];
    snprintf(what, sizeof what, "conv2d%s %dx%d/%d pad %d, (%d, %d, %d, %d) -> %d, grads x%d w%d b%d",
             trainable ? "_trainable" : "", k->k, k->k, k->stride, k->pad, k->B, k->H, k->W, k->Cin, k->Cout,
             requires[0], requires[1], requires[2]);
    int n = bias ? 3 : 2;
    int rc = gradcheck(tc, what, conv_fn, &a, in, requires, n, 1e-6);
    arena_free(&arena);
    CHECK(rc == 0);
}

static const ConvCase kGradCases[] = {
    {2, 5, 7, 3, 5, 3, 1, 1},  // 3x3 same padding, odd sizes
    {2, 5, 7, 3, 5, 3, 2, 1},  // 3x3 stride 2 (downsampler)
    {1, 6, 5, 5, 3, 3, 1, 0},  // 3x3 no padding
    {2, 5, 7, 5, 3, 1, 1, 0},  // 1x1
    {1, 7, 6, 3, 5, 1, 2, 0},  // 1x1 stride 2
    {1, 7, 8, 2, 3, 5, 2, 2},  // 5x5 stride 2
};

DICE_TEST(conv_gradcheck_frozen_weight) {
    const bool req[3] = {true, false, false};
    for (size_t c = 0; c < sizeof kGradCases / sizeof kGradCases[0] && !tc->failed; c++) {
        gradcheck_case(tc, &kGradCases[c], false, true, req);
        if (!tc->failed) gradcheck_case(tc, &kGradCases[c], false, false, req);
    }
}

DICE_TEST(conv_gradcheck_trainable) {
    const bool combos[4][3] = {{true, true, true}, {false, true, true}, {true, false, true}, {false, true, false}};
    for (size_t c = 0; c < sizeof kGradCases / sizeof kGradCases[0] && !tc->failed; c++)  // every combination on
        for (int r = 0; r < (c < 2 ? 4 : 1) && !tc->failed; r++)                             // the 3x3 cases
            gradcheck_case(tc, &kGradCases[c], true, true, combos[r]);
    const bool no_bias[3] = {true, true, false};
    if (!tc->failed) gradcheck_case(tc, &kGradCases[1], true, false, no_bias);
}

// A frozen conv records a node for x only; a conv whose input needs no gradient records nothing.
DICE_TEST(conv_frozen_records_no_weight_gradient) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "conv", DEV_CPU, 1 << 20, 0, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
    uint64_t rng = tc->seed;
    Tensor xt, wt;
    int64_t xs[4] = {1, 4, 4, 2}, ws[4] = {3, 3, 3, 2};
    CHECK_OK(test_random_f64(&arena, &xt, 4, xs, -1, 1, &rng, &tc->err));
    CHECK_OK(test_random_f64(&arena, &wt, 4, ws, -1, 1, &rng, &tc->err));
    Var *x, *y;
    CHECK_OK(graph_leaf(&g, &x, &xt, false, &tc->err));
    CHECK_OK(op_conv2d(&g, &y, x, &wt, NULL, 1, 1, &tc->err));
    CHECK(!y->requires_grad && g.n_nodes == 0);
    x->requires_grad = true;
    CHECK_OK(op_conv2d(&g, &y, x, &wt, NULL, 1, 1, &tc->err));
    CHECK(y->requires_grad && g.n_nodes == 1 && g.nodes[0].n_inputs == 1);
    graph_free(&g);
    arena_free(&arena);
}

DICE_TEST(conv_weight_from_oihw_repacks) {
    enum { O = 3, I = 5, KH = 3, KW = 2 };
    float src[O * I * KH * KW], dst[O * KH * KW * I];
    for (int i = 0; i < O * I * KH * KW; i++) src[i] = (float)i;
    memset(dst, 0xff, sizeof dst);
    Tensor s, d;
    int64_t oihw[4] = {O, I, KH, KW}, ohwi[4] = {O, KH, KW, I};
    CHECK_OK(tensor_wrap(&s, src, DT_F32, DEV_CPU, 4, oihw, &tc->err));
    CHECK_OK(tensor_wrap(&d, dst, DT_F32, DEV_CPU, 4, ohwi, &tc->err));
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    CHECK_OK(conv_weight_from_oihw(&ctx, &d, &s, &tc->err));
    for (int o = 0; o < O; o++)
        for (int ky = 0; ky < KH; ky++)
            for (int kx = 0; kx < KW; kx++)
                for (int i = 0; i < I; i++)
                    CHECK(dst[((o * KH + ky) * KW + kx) * I + i] == src[((o * I + i) * KH + ky) * KW + kx]);
    CHECK_FAILS_WITH(conv_weight_from_oihw(&ctx, &s, &s, &tc->err), "is not the (Cout, kh, kw, Cin) repacking");
}

DICE_TEST(conv_rejects_bad_operands) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "conv", DEV_CPU, 1 << 20, 0, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
    Tensor xt, wt, bt, wbad, x16;
    int64_t xs[4] = {1, 4, 4, 2}, ws[4] = {3, 3, 3, 2}, wbs[4] = {3, 3, 3, 5}, bs[1] = {4};
    CHECK_OK(arena_tensor(&arena, &xt, DT_F32, 4, xs, &tc->err));
    CHECK_OK(arena_tensor(&arena, &wt, DT_F32, 4, ws, &tc->err));
    CHECK_OK(arena_tensor(&arena, &wbad, DT_F32, 4, wbs, &tc->err));
    CHECK_OK(arena_tensor(&arena, &bt, DT_F32, 1, bs, &tc->err));
    CHECK_OK(arena_tensor(&arena, &x16, DT_BF16, 4, xs, &tc->err));
    Var *x, *xb, *y;
    CHECK_OK(graph_leaf(&g, &x, &xt, true, &tc->err));
    CHECK_OK(graph_leaf(&g, &xb, &x16, true, &tc->err));
    CHECK_FAILS_WITH(op_conv2d(&g, &y, x, &wbad, NULL, 1, 1, &tc->err), "does not match input");
    CHECK_FAILS_WITH(op_conv2d(&g, &y, x, &wt, &bt, 1, 1, &tc->err), "bias of 4 channels");
    CHECK_FAILS_WITH(op_conv2d(&g, &y, xb, &wt, NULL, 1, 1, &tc->err), "must be f32 or f64");
    CHECK_FAILS_WITH(op_conv2d(&g, &y, x, &wt, NULL, 0, 1, &tc->err), "stride 0 must be positive");
    int64_t tiny[4] = {1, 1, 1, 2};
    Tensor xt1;
    Var *x1;
    CHECK_OK(arena_tensor(&arena, &xt1, DT_F32, 4, tiny, &tc->err));
    CHECK_OK(graph_leaf(&g, &x1, &xt1, true, &tc->err));
    CHECK_FAILS_WITH(op_conv2d(&g, &y, x1, &wt, NULL, 1, 0, &tc->err), "does not fit");
    graph_free(&g);
    arena_free(&arena);
}

// ---------------------------------------------------------------- CUDA
// Ragged shapes for the kernels: none is a multiple of a block tile.
static const ConvCase kCudaCases[] = {
    {2, 7, 9, 24, 40, 3, 1, 1},  // cp.async loads, ragged M and N
    {2, 9, 7, 16, 40, 3, 2, 1},  // stride 2, odd sizes: four parity classes of different K in the data gradient
    {2, 8, 6, 16, 8, 3, 2, 1},   // stride 2, even sizes
    {2, 6, 6, 4, 40, 3, 1, 1},   // conv_in-like Cin = 4: scalar gathers
    {2, 7, 7, 40, 4, 3, 1, 1},   // conv_out-like Cout = 4: scalar data gradient, narrow stores
    {2, 6, 9, 24, 8, 1, 1, 0},   // pointwise
    {2, 8, 8, 16, 16, 1, 2, 0},  // pointwise stride 2: odd pixels meet no tap (K = 0 classes)
    {1, 5, 7, 3, 5, 3, 1, 1},    // everything odd
    {2, 9, 8, 8, 16, 5, 2, 2},   // 5x5 stride 2
    {2, 24, 24, 16, 8, 3, 1, 1}, // 1152 pixels: the weight gradient splits K, rows wrap within a K tile
};

// n random values in [-1, 1) that bf16 represents exactly, as floats and as bf16 bits.
static void random_bf16(float *f, uint16_t *bits, int64_t n, uint64_t *rng) {
    for (int64_t i = 0; i < n; i++) {
        bits[i] = dice_f32_to_bf16(test_rand_uniform(rng, -1, 1));
        f[i] = dice_bf16_to_f32(bits[i]);
    }
}

static int upload(void **dev, const void *host, size_t bytes, DiceError *err) {
    CUDA_TRY(err, cudaMalloc(dev, bytes));
    CUDA_TRY(err, cudaMemcpy(*dev, host, bytes, cudaMemcpyHostToDevice));
    return 0;
}

// Device bf16 (n) against host f32; the relative norm error.
static double rel_err_bf16(const void *dev, const float *want, int64_t n, float *scratch, uint16_t *bits) {
    if (cudaMemcpy(bits, dev, (size_t)n * 2, cudaMemcpyDeviceToHost) != cudaSuccess) return INFINITY;
    for (int64_t i = 0; i < n; i++) scratch[i] = dice_bf16_to_f32(bits[i]);
    return test_rel_err_f32(scratch, want, (size_t)n);
}

// Outputs are rounded to bf16 once: at most half an ulp, 2^-8 = 3.9e-3 relative (8-bit significand), about
// 1.6e-3 in norm for random data. The inputs are exact bf16 on both sides and both accumulate in fp32 (order
// differences ~1e-6), so the relative norm error stays below 2^-8.
#define BF16_OUT_TOL 4e-3

// Every custom kernel, every block tile, against the f32 CPU twin on the same (bf16-exact) inputs; outputs
// poisoned (NaN) before each run.
DICE_CUDA_TEST(conv_cuda_kernels_match_cpu) {
    DiceCtx gpu;
    CHECK_OK(ctx_init_cuda(&gpu, 0, &tc->err));
    uint64_t rng = tc->seed;
    const ConvTile tiles[3] = {CONV_TILE_128x128, CONV_TILE_128x64, CONV_TILE_64x64};
    for (size_t c = 0; c < sizeof kCudaCases / sizeof kCudaCases[0]; c++) {
        const ConvCase *k = &kCudaCases[c];
        ConvShape s;
        CHECK_OK(conv_shape_init(&s, k->B, k->H, k->W, k->Cin, k->Cout, k->k, k->k, k->stride, k->pad, &tc->err));
        int64_t nx = (int64_t)s.B * s.H * s.W * s.Cin, nw = (int64_t)s.Cout * s.kh * s.kw * s.Cin;
        int64_t ny = (int64_t)s.B * s.Ho * s.Wo * s.Cout, nmax = nx > ny ? (nx > nw ? nx : nw) : (ny > nw ? ny : nw);
        float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(s.Cout * 4), *dy = malloc(ny * 4);
        uint16_t *xb = malloc(nx * 2), *wb = malloc(nw * 2), *bb = malloc(s.Cout * 2), *dyb = malloc(ny * 2);
        float *y_ref = malloc(ny * 4), *dx_ref = malloc(nx * 4), *dw_ref = malloc(nw * 4), *db_ref = malloc(s.Cout * 4);
        float *scratch = malloc(nmax * 4);
        uint16_t *bits = malloc(nmax * 2);
        random_bf16(x, xb, nx, &rng);
        random_bf16(w, wb, nw, &rng);
        random_bf16(b, bb, s.Cout, &rng);
        random_bf16(dy, dyb, ny, &rng);
        CHECK_OK(conv2d_forward_cpu(&s, DT_F32, y_ref, x, w, b, &tc->err));
        CHECK_OK(conv2d_backward_data_cpu(&s, DT_F32, dx_ref, dy, w, &tc->err));
        CHECK_OK(conv2d_backward_weight_cpu(&s, DT_F32, dw_ref, dy, x, &tc->err));
        CHECK_OK(conv2d_backward_bias_cpu(&s, DT_F32, db_ref, dy, &tc->err));
        void *dx_, *dw_, *db_, *ddy, *y, *dx, *dw, *db, *ws;
        CHECK_OK(upload(&dx_, xb, nx * 2, &tc->err));
        CHECK_OK(upload(&dw_, wb, nw * 2, &tc->err));
        CHECK_OK(upload(&db_, bb, s.Cout * 2, &tc->err));
        CHECK_OK(upload(&ddy, dyb, ny * 2, &tc->err));
        CHECK(cudaMalloc(&y, ny * 2) == cudaSuccess && cudaMalloc(&dx, nx * 2) == cudaSuccess);
        CHECK(cudaMalloc(&dw, nw * 2) == cudaSuccess && cudaMalloc(&db, s.Cout * 2) == cudaSuccess);
        size_t ws_bytes = conv2d_backward_bias_workspace(&s);
        for (int t = 0; t < 3; t++) {
            size_t need = conv2d_backward_weight_workspace(&s, tiles[t]);
            ws_bytes = need > ws_bytes ? need : ws_bytes;
        }
        CHECK(cudaMalloc(&ws, ws_bytes) == cudaSuccess);
        for (int t = 0; t < 3; t++) {
            const char *tn = conv_tile_name(tiles[t]);
            CHECK(cudaMemset(y, 0xff, ny * 2) == cudaSuccess && cudaMemset(dx, 0xff, nx * 2) == cudaSuccess);
            CHECK(cudaMemset(dw, 0xff, nw * 2) == cudaSuccess);
            CHECK_OK(conv2d_forward_cuda(&s, tiles[t], y, dx_, dw_, db_, gpu.stream, &tc->err));
            CHECK_OK(conv2d_backward_data_cuda(&s, tiles[t], dx, ddy, dw_, gpu.stream, &tc->err));
            CHECK_OK(conv2d_backward_weight_cuda(&s, tiles[t], dw, ddy, dx_, ws, gpu.stream, &tc->err));
            CHECK_OK(ctx_sync(&gpu, &tc->err));
            double e;
            CHECK_MSG((e = rel_err_bf16(y, y_ref, ny, scratch, bits)) <= BF16_OUT_TOL,
                      "case %zu tile %s: forward relative error %.3g", c, tn, e);
            CHECK_MSG((e = rel_err_bf16(dx, dx_ref, nx, scratch, bits)) <= BF16_OUT_TOL,
                      "case %zu tile %s: data gradient relative error %.3g", c, tn, e);
            CHECK_MSG((e = rel_err_bf16(dw, dw_ref, nw, scratch, bits)) <= BF16_OUT_TOL,
                      "case %zu tile %s: weight gradient relative error %.3g", c, tn, e);
        }
        CHECK(cudaMemset(db, 0xff, s.Cout * 2) == cudaSuccess);
        CHECK_OK(conv2d_backward_bias_cuda(&s, db, ddy, ws, gpu.stream, &tc->err));
        double e;
        CHECK_MSG((e = rel_err_bf16(db, db_ref, s.Cout, scratch, bits)) <= BF16_OUT_TOL,
                  "case %zu: bias gradient relative error %.3g", c, e);
        cudaFree(dx_), cudaFree(dw_), cudaFree(db_), cudaFree(ddy), cudaFree(y), cudaFree(dx), cudaFree(dw);
        cudaFree(db), cudaFree(ws);
        free(x), free(w), free(b), free(dy), free(xb), free(wb), free(bb), free(dyb);
        free(y_ref), free(dx_ref), free(dw_ref), free(db_ref), free(scratch), free(bits);
    }
    ctx_free(&gpu);
}

// The ops on a CUDA context (whichever backend the context holds) against the CPU ops, forward and backward.
static void check_ops_on_cuda(TestCtx *tc, const char *backend) {
    const ConvCase cases[] = {{2, 7, 9, 24, 40, 3, 1, 1}, {2, 9, 7, 16, 8, 3, 2, 1}, {2, 6, 6, 4, 16, 3, 1, 1},
                              {1, 6, 5, 16, 4, 1, 1, 0}};
    uint64_t rng = tc->seed;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0] && !tc->failed; c++) {
        const ConvCase *k = &cases[c];
        Arena arena;
        CHECK_OK(arena_init(&arena, "conv-parity", DEV_CPU, 1 << 20, 0, &tc->err));
        Tensor in[3];
        int64_t xs[4] = {k->B, k->H, k->W, k->Cin}, ws[4] = {k->Cout, k->k, k->k, k->Cin}, bs[1] = {k->Cout};
        CHECK_OK(test_random_f32(&arena, &in[0], 4, xs, -1, 1, &rng, &tc->err));
        CHECK_OK(test_random_f32(&arena, &in[1], 4, ws, -1, 1, &rng, &tc->err));
        CHECK_OK(test_random_f32(&arena, &in[2], 1, bs, -1, 1, &rng, &tc->err));
        char what[96];
        snprintf(what, sizeof what, "%s conv2d case %zu", backend, c);
        ConvOpArgs trainable = {k->stride, k->pad, true, true}, frozen = {k->stride, k->pad, false, true};
        const bool all[3] = {true, true, true}, x_only[3] = {true, false, false};
        // Gradients are bf16 like the outputs; the output gradient is rounded to bf16 on both sides.
        int rc = cuda_parity(tc, what, conv_fn, &trainable, in, all, 3, DT_BF16, BF16_OUT_TOL);
        if (rc == 0) rc = cuda_parity(tc, what, conv_fn, &frozen, in, x_only, 3, DT_BF16, BF16_OUT_TOL);
        arena_free(&arena);
        CHECK(rc == 0);
    }
}

DICE_CUDA_TEST(conv_cuda_ops_match_cpu) {
    unsetenv("DICE_CONV");
    check_ops_on_cuda(tc, "custom");
}

DICE_CUDA_TEST(conv_cudnn_ops_match_cpu) {
#if defined(DICE_CUDNN) && !defined(DICE_EMU)
    setenv("DICE_CONV", "cudnn", 1);
    check_ops_on_cuda(tc, "cudnn");
#elif defined(DICE_EMU)
    SKIP("cuDNN does not exist in the emulated CUDA build; make test-gpu runs this test on a GPU");
#else
    SKIP("this build has no cuDNN (make did not find it)");
#endif
}

// DICE_CONV picks the backend when a CUDA context is created; asking for one the build lacks is an error.
DICE_CUDA_TEST(conv_backend_choice) {
    DiceCtx gpu;
    unsetenv("DICE_CONV");
    CHECK_OK(ctx_init_cuda(&gpu, 0, &tc->err));
    CHECK(conv_handle_backend(gpu.conv) == CONV_BACKEND_CUSTOM);
#if defined(DICE_CUDNN) && !defined(DICE_EMU)
    CHECK_OK(conv_handle_set_backend(gpu.conv, CONV_BACKEND_CUDNN, &tc->err));
    ctx_free(&gpu);
    setenv("DICE_CONV", "cudnn", 1);
    CHECK_OK(ctx_init_cuda(&gpu, 0, &tc->err));
    CHECK(conv_handle_backend(gpu.conv) == CONV_BACKEND_CUDNN);
#else
    CHECK_FAILS_WITH(conv_handle_set_backend(gpu.conv, CONV_BACKEND_CUDNN, &tc->err), "has no cuDNN");
    ConvCudnn *c;
    CHECK_FAILS_WITH(conv_handle_cudnn(gpu.conv, &c, &tc->err), "has no cuDNN");
    ctx_free(&gpu);
    setenv("DICE_CONV", "cudnn", 1);
    CHECK_FAILS_WITH(ctx_init_cuda(&gpu, 0, &tc->err), "DICE_CONV=cudnn");
    setenv("DICE_CONV", "custom", 1);
    CHECK_OK(ctx_init_cuda(&gpu, 0, &tc->err));
    CHECK(conv_handle_backend(gpu.conv) == CONV_BACKEND_CUSTOM);
#endif
    ctx_free(&gpu);
    setenv("DICE_CONV", "fast", 1);
    CHECK_FAILS_WITH(ctx_init_cuda(&gpu, 0, &tc->err), "expected custom or cudnn");
    unsetenv("DICE_CONV");
}

// conv_weight_from_oihw on the device: f32 (Cout, Cin, kh, kw) -> bf16 (Cout, kh, kw, Cin), as at load time.
DICE_CUDA_TEST(conv_weight_from_oihw_on_cuda) {
    CudaTestEnv e;
    CHECK_OK(cuda_env_init(&e, 1 << 20, 1 << 20, &tc->err));
    uint64_t rng = tc->seed;
    Tensor src, src_dev, want, want_bf16, got_dev, got;
    int64_t oihw[4] = {5, 3, 3, 2}, ohwi[4] = {5, 3, 2, 3};
    CHECK_OK(test_random_f32(&e.host, &src, 4, oihw, -1, 1, &rng, &tc->err));
    CHECK_OK(tensor_to(&e.gpu, &e.dev, &src_dev, &src, DT_F32, &tc->err));
    CHECK_OK(arena_tensor(&e.dev, &got_dev, DT_BF16, 4, ohwi, &tc->err));
    CHECK(cudaMemset(got_dev.data, 0xff, tensor_nbytes(&got_dev)) == cudaSuccess);
    CHECK_OK(conv_weight_from_oihw(&e.gpu, &got_dev, &src_dev, &tc->err));
    CHECK_OK(tensor_to(&e.gpu, &e.host, &got, &got_dev, DT_BF16, &tc->err));
    CHECK_OK(arena_tensor(&e.host, &want, DT_F32, 4, ohwi, &tc->err));
    CHECK_OK(conv_weight_from_oihw(&e.cpu, &want, &src, &tc->err));
    CHECK_OK(tensor_to(&e.cpu, &e.host, &want_bf16, &want, DT_BF16, &tc->err));
    CHECK(!memcmp(got.data, want_bf16.data, tensor_nbytes(&got)));
    cuda_env_free(&e);
}
