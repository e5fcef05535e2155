// tests/test_linear.c — linear layers and batched matmul on the CPU: forward against naive loops (f64
// and f32), gradients against finite differences (f64), and the shape / dtype checks. The CUDA paths are
// in tests/test_linear_cuda.c.
#include <stdlib.h>

#include "nn/ops.h"
#include "nn/tensor_copy.h"
#include "tests/gradcheck.h"

static const GemmAct all_acts[4] = {GEMM_ACT_NONE, GEMM_ACT_RELU, GEMM_ACT_GELU_TANH, GEMM_ACT_GELU_ERF};

// What the activations are, written out independently of kernels/gemm.h.
static double reference_act(GemmAct act, double z) {
    switch (act) {
    case GEMM_ACT_RELU: return z > 0 ? z : 0;
    case GEMM_ACT_GELU_TANH: return 0.5 * z * (1 + tanh(sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)));
    case GEMM_ACT_GELU_ERF: return 0.5 * z * (1 + erf(z / sqrt(2.0)));
    default: return z;
    }
}

// ---------------------------------------------------------------- forward against loops
// y (rows, out) = act(x (rows, in) W^T + b) in f64 and f32, recorded (GELU's separate pass) and not
// (the fused epilogue).
DICE_TEST(linear_forward_matches_loops) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 20, 0, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t rows = 6, in_f = 13, out_f = 9;
    for (int dt = 0; dt < 2; dt++)
        for (int ai = 0; ai < 4; ai++)
            for (int with_bias = 0; with_bias < 2; with_bias++)
                for (int record = 0; record < 2; record++) {
                    arena_reset(&arena);
                    DType dtype = dt ? DT_F32 : DT_F64;
                    Tensor x64, w64, b64, x, w, b;
                    int64_t xs[3] = {2, rows / 2, in_f}, ws[2] = {out_f, in_f};
                    CHECK_OK(test_random_f64(&arena, &x64, 3, xs, -2, 2, &rng, &tc->err));
                    CHECK_OK(test_random_f64(&arena, &w64, 2, ws, -1, 1, &rng, &tc->err));
                    CHECK_OK(test_random_f64(&arena, &b64, 1, &out_f, -1, 1, &rng, &tc->err));
                    CHECK_OK(tensor_to(&ctx, &arena, &x, &x64, dtype, &tc->err));
                    CHECK_OK(tensor_to(&ctx, &arena, &w, &w64, dtype, &tc->err));
                    CHECK_OK(tensor_to(&ctx, &arena, &b, &b64, dtype, &tc->err));
                    Graph g;
                    CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
                    Var *xv, *y;
                    CHECK_OK(graph_leaf(&g, &xv, &x, record, &tc->err));
                    CHECK_OK(op_linear(&g, &y, xv, &w, with_bias ? &b : NULL, all_acts[ai], &tc->err));
                    CHECK(y->value.ndim == 3 && y->value.shape[0] == 2 && y->value.shape[2] == out_f);
                    CHECK(y->requires_grad == (record == 1) && g.n_nodes == record);
                    Tensor y64;
                    CHECK_OK(tensor_to(&ctx, &arena, &y64, &y->value, DT_F64, &tc->err));
                    const double *xp = x64.data, *wp = w64.data, *bp = b64.data, *yp = y64.data;
                    double worst = 0;
                    for (int64_t r = 0; r < rows; r++)
                        for (int64_t o = 0; o < out_f; o++) {
                            double z = with_bias ? bp[o] : 0;
                            for (int64_t i = 0; i < in_f; i++) z += xp[r * in_f + i] * wp[o * in_f + i];
                            double d = fabs(yp[r * out_f + o] - reference_act(all_acts[ai], z));
                            worst = d > worst ? d : worst;
                        }
                    // f64: rounding only; f32: inputs rounded to f32 plus a 13-term f32 sum.
                    CHECK_MSG(worst < (dt ? 2e-5 : 1e-12), "%s act %s bias %d record %d: max error %.3g",
                              dtype_name(dtype), gemm_act_name(all_acts[ai]), with_bias, record, worst);
                    graph_free(&g);
                }
    arena_free(&arena);
}

DICE_TEST(linear_matmul_forward_matches_loops) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 20, 0, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t B = 3, M = 4, K = 7, N = 5;
    for (int tb = 0; tb < 2; tb++) {
        Tensor a, b;
        int64_t as[3] = {B, M, K}, bs[3] = {B, tb ? N : K, tb ? K : N};
        CHECK_OK(test_random_f64(&arena, &a, 3, as, -1, 1, &rng, &tc->err));
        CHECK_OK(test_random_f64(&arena, &b, 3, bs, -1, 1, &rng, &tc->err));
        Graph g;
        CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
        Var *av, *bv, *c;
        CHECK_OK(graph_leaf(&g, &av, &a, false, &tc->err));
        CHECK_OK(graph_leaf(&g, &bv, &b, false, &tc->err));
        CHECK_OK(op_matmul(&g, &c, av, bv, tb, &tc->err));
        CHECK(c->value.shape[0] == B && c->value.shape[1] == M && c->value.shape[2] == N);
        const double *ap = a.data, *bp = b.data, *cp = c->value.data;
        for (int64_t z = 0; z < B; z++)
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) {
                    double s = 0;
                    for (int64_t k = 0; k < K; k++)
                        s += ap[(z * M + m) * K + k] * (tb ? bp[(z * N + n) * K + k] : bp[(z * K + k) * N + n]);
                    CHECK_NEAR(cp[(z * M + m) * N + n], s, 1e-12);
                }
        graph_free(&g);
    }
    arena_free(&arena);
}

// ---------------------------------------------------------------- gradients
typedef struct LinearCase {
    GemmAct act;
    bool bias, trainable;
} LinearCase;

static int linear_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    const LinearCase *c = user;
    if (c->trainable) return op_linear_trainable(g, out, in[0], in[1], c->bias ? in[2] : NULL, c->act, err);
    return op_linear(g, out, in[0], &in[1]->value, c->bias ? &in[2]->value : NULL, c->act, err);
}

// x (shape), W (out, in), b (out): random f64 inputs.
static int linear_inputs(TestCtx *tc, Arena *arena, int ndim, const int64_t *xshape, int64_t out_f, Tensor in[3],
                         uint64_t *rng) {
    int64_t ws[2] = {out_f, xshape[ndim - 1]};
    if (test_random_f64(arena, &in[0], ndim, xshape, -2, 2, rng, &tc->err) ||
        test_random_f64(arena, &in[1], 2, ws, -1, 1, rng, &tc->err) ||
        test_random_f64(arena, &in[2], 1, &out_f, -1, 1, rng, &tc->err))
        return -1;
    return 0;
}

// Frozen weights: dx only (gradcheck also checks that W and b get no gradient); odd sizes; every act.
DICE_TEST(linear_gradcheck_frozen) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 20, 0, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t shapes[3][5] = {{2, 3, 5, 7}, {3, 2, 3, 5, 4}, {2, 1, 1, 1}};  // x rank, x dims..., out
    for (int si = 0; si < 3; si++)
        for (int ai = 0; ai < 4; ai++)
            for (int bias = 0; bias < 2; bias++) {
                arena_reset(&arena);
                int ndim = (int)shapes[si][0];
                Tensor in[3];
                CHECK_OK(linear_inputs(tc, &arena, ndim, &shapes[si][1], shapes[si][ndim + 1], in, &rng));
                LinearCase c = {all_acts[ai], bias, false};
                bool req[3] = {true, false, false};
                CHECK(gradcheck(tc, "linear (frozen)", linear_fn, &c, in, req, bias ? 3 : 2, 1e-6) == 0);
            }
    arena_free(&arena);
}

// Trainable weights: every combination of x / W / b requiring a gradient, every act.
DICE_TEST(linear_gradcheck_trainable) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 20, 0, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t xshape[3] = {2, 3, 5};
    for (int ai = 0; ai < 4; ai++)
        for (int mask = 1; mask < 8; mask++) {
            arena_reset(&arena);
            Tensor in[3];
            CHECK_OK(linear_inputs(tc, &arena, 3, xshape, 7, in, &rng));
            LinearCase c = {all_acts[ai], true, true};
            bool req[3] = {mask & 1, (mask >> 1) & 1, (mask >> 2) & 1};
            CHECK(gradcheck(tc, "linear (trainable)", linear_fn, &c, in, req, 3, 1e-6) == 0);
        }
    // Without a bias.
    arena_reset(&arena);
    Tensor in[3];
    CHECK_OK(linear_inputs(tc, &arena, 3, xshape, 4, in, &rng));
    LinearCase c = {GEMM_ACT_GELU_ERF, false, true};
    bool req[2] = {true, true};
    CHECK(gradcheck(tc, "linear (trainable, no bias)", linear_fn, &c, in, req, 2, 1e-6) == 0);
    arena_free(&arena);
}

static int matmul_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    return op_matmul(g, out, in[0], in[1], *(const bool *)user, err);
}

DICE_TEST(linear_gradcheck_matmul) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 20, 0, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t dims[3][4] = {{2, 3, 5, 7}, {1, 1, 1, 1}, {3, 4, 1, 2}};  // B, M, K, N
    for (int si = 0; si < 3; si++)
        for (int tb = 0; tb < 2; tb++)
            for (int mask = 1; mask < 4; mask++) {
                arena_reset(&arena);
                int64_t B = dims[si][0], M = dims[si][1], K = dims[si][2], N = dims[si][3];
                int64_t as[3] = {B, M, K}, bs[3] = {B, tb ? N : K, tb ? K : N};
                Tensor in[2];
                CHECK_OK(test_random_f64(&arena, &in[0], 3, as, -1, 1, &rng, &tc->err));
                CHECK_OK(test_random_f64(&arena, &in[1], 3, bs, -1, 1, &rng, &tc->err));
                bool transpose_b = tb, req[2] = {mask & 1, mask >> 1};
                CHECK(gradcheck(tc, "matmul", matmul_fn, &transpose_b, in, req, 2, 1e-6) == 0);
            }
    arena_free(&arena);
}

// A trainable layer whose weight is a Param accumulates into the Param's gradient across steps.
DICE_TEST(linear_param_gradient_accumulates) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena persistent, step;
    CHECK_OK(arena_init(&persistent, "params", DEV_CPU, 1 << 16, 0, &tc->err));
    CHECK_OK(arena_init(&step, "step", DEV_CPU, 1 << 16, 0, &tc->err));
    Param w;
    int64_t ws[2] = {2, 3};
    CHECK_OK(param_init(&w, "fc1.weight", &persistent, 2, ws, &tc->err));
    float *wp = w.value.data;
    for (int i = 0; i < 6; i++) wp[i] = 0.5f * (float)(i - 2);
    float xs[3] = {1, 2, -1};
    Tensor xt;
    int64_t xshape[2] = {1, 3};
    CHECK_OK(tensor_wrap(&xt, xs, DT_F32, DEV_CPU, 2, xshape, &tc->err));
    for (int s = 0; s < 2; s++) {
        arena_reset(&step);
        Graph g;
        CHECK_OK(graph_init(&g, &ctx, &step, &tc->err));
        Var *x, *wv, *y, *loss;
        CHECK_OK(graph_leaf(&g, &x, &xt, false, &tc->err));
        CHECK_OK(graph_param(&g, &wv, &w, &tc->err));
        CHECK_OK(op_linear_trainable(&g, &y, x, wv, NULL, GEMM_ACT_NONE, &tc->err));
        CHECK_OK(op_sum(&g, &loss, y, &tc->err));
        CHECK_OK(graph_backward(&g, loss, &tc->err));
        CHECK(!x->grad.data);
        graph_free(&g);
    }
    const float *gw = w.grad.data;  // d sum(x W^T) / dW[o][i] = x[i], twice
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < 3; i++) CHECK(gw[o * 3 + i] == 2 * xs[i]);
    arena_free(&step);
    arena_free(&persistent);
}

DICE_TEST(linear_rejects_bad_shapes_and_dtypes) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 16, 0, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
    Tensor x, w, b, w32, a3, b3;
    int64_t xs[2] = {4, 5}, ws[2] = {3, 6}, bs[1] = {3}, as3[3] = {2, 4, 5}, bs3[3] = {2, 6, 3};
    CHECK_OK(arena_tensor(&arena, &x, DT_F64, 2, xs, &tc->err));
    CHECK_OK(arena_tensor(&arena, &w, DT_F64, 2, ws, &tc->err));
    CHECK_OK(arena_tensor(&arena, &b, DT_F64, 1, bs, &tc->err));
    CHECK_OK(arena_tensor(&arena, &w32, DT_F32, 2, ws, &tc->err));
    CHECK_OK(arena_tensor(&arena, &a3, DT_F64, 3, as3, &tc->err));
    CHECK_OK(arena_tensor(&arena, &b3, DT_F64, 3, bs3, &tc->err));
    Var *xv, *y, *av, *bv;
    CHECK_OK(graph_leaf(&g, &xv, &x, true, &tc->err));
    CHECK_FAILS_WITH(op_linear(&g, &y, xv, &w, &b, GEMM_ACT_NONE, &tc->err), "do not fit");
    CHECK_FAILS_WITH(op_linear(&g, &y, xv, &w32, NULL, GEMM_ACT_NONE, &tc->err), "does not have the input's dtype");
    CHECK_FAILS_WITH(op_linear(&g, &y, xv, &w, NULL, (GemmAct)9, &tc->err), "unknown activation");
    CHECK_OK(graph_leaf(&g, &av, &a3, true, &tc->err));
    CHECK_OK(graph_leaf(&g, &bv, &b3, true, &tc->err));
    CHECK_FAILS_WITH(op_matmul(&g, &y, av, bv, false, &tc->err), "do not fit");
    Tensor xt;
    int perm[2] = {1, 0};
    CHECK_OK(tensor_permute(&xt, &x, perm, &tc->err));
    CHECK_OK(graph_leaf(&g, &xv, &xt, true, &tc->err));
    CHECK_FAILS_WITH(op_linear(&g, &y, xv, &w, NULL, GEMM_ACT_NONE, &tc->err), "must be contiguous");
    graph_free(&g);
    arena_free(&arena);
}
