// tests/test_autograd.c — the tape (recording rules, fan-out, no-grad, parameters and gradient
// accumulation) and the reduction / loss / cast ops: gradient checks in f64 on the CPU, and the CUDA
// kernels (emulated or real) against the CPU.
#include "cuda_parity.h"
#include "kernels/reduce.h"
#include "nn/cuda_api.h"
#include "nn/op_reduce.h"
#include "nn/tensor_copy.h"

typedef struct ReduceCase {
    int which;     // 0 sum, 1 mean, 2 sum_dim, 3 l1, 4 mse
    int dim;
    double scale;
} ReduceCase;

static int reduce_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    const ReduceCase *c = user;
    switch (c->which) {
    case 0: return op_sum(g, out, in[0], err);
    case 1: return op_mean(g, out, in[0], err);
    case 2: return op_sum_dim(g, out, in[0], c->dim, err);
    case 3: return op_l1_loss(g, out, in[0], in[1], c->scale, err);
    default: return op_mse_loss(g, out, in[0], in[1], c->scale, err);
    }
}

DICE_TEST(autograd_gradcheck_reductions_and_losses) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 16, 0, &tc->err));
    uint64_t rng = tc->seed;
    int64_t shape[3] = {2, 3, 5};
    Tensor in[2];
    CHECK_OK(test_random_f64(&arena, &in[0], 3, shape, -2, 2, &rng, &tc->err));
    CHECK_OK(test_random_f64(&arena, &in[1], 3, shape, -2, 2, &rng, &tc->err));
    bool both[2] = {true, true}, pred_only[2] = {true, false}, target_only[2] = {false, true};
    ReduceCase sum = {0, 0, 1}, mean = {1, 0, 1}, l1 = {3, 0, 0.25}, mse = {4, 0, 0.5};
    CHECK(gradcheck(tc, "sum", reduce_fn, &sum, in, both, 1, 1e-6) == 0);
    CHECK(gradcheck(tc, "mean", reduce_fn, &mean, in, both, 1, 1e-6) == 0);
    for (int d = 0; d < 3; d++) {
        ReduceCase sd = {2, d, 1};
        CHECK(gradcheck(tc, "sum_dim", reduce_fn, &sd, in, both, 1, 1e-6) == 0);
    }
    CHECK(gradcheck(tc, "l1_loss", reduce_fn, &l1, in, both, 2, 1e-6) == 0);
    CHECK(gradcheck(tc, "l1_loss pred only", reduce_fn, &l1, in, pred_only, 2, 1e-6) == 0);
    CHECK(gradcheck(tc, "mse_loss", reduce_fn, &mse, in, both, 2, 1e-6) == 0);
    CHECK(gradcheck(tc, "mse_loss target only", reduce_fn, &mse, in, target_only, 2, 1e-6) == 0);
    arena_free(&arena);
}

// y = sum(x) + sum(x) (fan-out), then z = mean(x) in a no-grad region: x.grad = 2, nothing recorded for z.
DICE_TEST(autograd_fan_out_no_grad_and_frozen_inputs) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 16, 0, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
    float xs[6] = {1, 2, 3, 4, 5, 6}, ys[6] = {0};
    Tensor xt, yt;
    int64_t shape[2] = {2, 3};
    CHECK_OK(tensor_wrap(&xt, xs, DT_F32, DEV_CPU, 2, shape, &tc->err));
    CHECK_OK(tensor_wrap(&yt, ys, DT_F32, DEV_CPU, 2, shape, &tc->err));
    Var *x, *frozen, *s1, *s2, *z;
    CHECK_OK(graph_leaf(&g, &x, &xt, true, &tc->err));
    CHECK_OK(graph_leaf(&g, &frozen, &yt, false, &tc->err));
    CHECK_OK(op_sum(&g, &s1, x, &tc->err));
    CHECK_OK(op_l1_loss(&g, &s2, x, frozen, 1.0, &tc->err));
    CHECK(g.n_nodes == 2 && s1->requires_grad);
    graph_no_grad_begin(&g);
    CHECK_OK(op_mean(&g, &z, x, &tc->err));
    graph_no_grad_end(&g);
    CHECK(!z->requires_grad && g.n_nodes == 2);
    Var *frozen_sum;
    CHECK_OK(op_sum(&g, &frozen_sum, frozen, &tc->err));
    CHECK(!frozen_sum->requires_grad && g.n_nodes == 2);  // nothing that needs a gradient: not recorded
    CHECK_FAILS_WITH(graph_backward(&g, frozen_sum, &tc->err), "does not require a gradient");
    // Two backward passes from two outputs of one tape: each op's gradient is propagated once.
    CHECK_OK(graph_backward(&g, s1, &tc->err));
    CHECK_OK(graph_backward(&g, s2, &tc->err));
    const float *gx = x->grad.data;
    for (int i = 0; i < 6; i++) CHECK(gx[i] == 2.0f);  // d sum = 1, d |x - 0| = sign(x) = 1
    CHECK(frozen->grad.data == NULL);
    CHECK_FAILS_WITH(graph_backward(&g, z, &tc->err), "does not require a gradient");
    graph_free(&g);
    arena_free(&arena);
}

DICE_TEST(autograd_param_gradients_accumulate) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena persistent, step;
    CHECK_OK(arena_init(&persistent, "weights", DEV_CPU, 1 << 16, 0, &tc->err));
    CHECK_OK(arena_init(&step, "step", DEV_CPU, 1 << 16, 0, &tc->err));
    Param p;
    int64_t shape[1] = {4};
    CHECK_OK(param_init(&p, "w", &persistent, 1, shape, &tc->err));
    float *w = p.value.data;
    for (int i = 0; i < 4; i++) w[i] = (float)i - 1.5f;  // -1.5 -0.5 0.5 1.5
    for (int micro = 0; micro < 3; micro++) {
        arena_reset(&step);
        Graph g;
        CHECK_OK(graph_init(&g, &ctx, &step, &tc->err));
        Var *pv, *loss;
        CHECK_OK(graph_param(&g, &pv, &p, &tc->err));
        CHECK_OK(op_mse_loss(&g, &loss, pv, pv, 1.0, &tc->err));  // zero loss, but exercises both inputs
        Var *s;
        CHECK_OK(op_sum(&g, &s, pv, &tc->err));
        CHECK_OK(graph_backward(&g, s, &tc->err));
        graph_free(&g);
    }
    const float *gp = p.grad.data;
    for (int i = 0; i < 4; i++) CHECK(gp[i] == 3.0f);  // three micro-batches of d sum = 1
    CHECK_OK(param_zero_grad(&ctx, &p, &tc->err));
    for (int i = 0; i < 4; i++) CHECK(gp[i] == 0.0f);
    arena_free(&step);
    arena_free(&persistent);
}

DICE_TEST(autograd_cast_round_trip) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 16, 0, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
    double xs[3] = {1.0 / 3.0, -2.5, 1e-3};
    Tensor xt;
    int64_t shape[1] = {3};
    CHECK_OK(tensor_wrap(&xt, xs, DT_F64, DEV_CPU, 1, shape, &tc->err));
    Var *x, *y, *loss;
    CHECK_OK(graph_leaf(&g, &x, &xt, true, &tc->err));
    CHECK_OK(op_cast(&g, &y, x, DT_F32, &tc->err));
    CHECK(y->value.dtype == DT_F32 && ((float *)y->value.data)[0] == (float)(1.0 / 3.0));
    CHECK_OK(op_mse_loss(&g, &loss, y, y, 1.0, &tc->err));
    Var *s;
    CHECK_OK(op_sum(&g, &s, y, &tc->err));
    CHECK_OK(graph_backward(&g, s, &tc->err));
    CHECK(x->grad.dtype == DT_F64 && ((double *)x->grad.data)[2] == 1.0);
    CHECK_FAILS_WITH(op_cast(&g, &y, x, DT_I32, &tc->err), "float types only");
    graph_free(&g);
    arena_free(&arena);
}

// The loss of DICE on CUDA: forward value and gradients against the CPU, f32 and bf16 storage,
// ragged sizes (not multiples of the block), outputs poisoned by the emulator's allocator.
DICE_CUDA_TEST(autograd_losses_cuda_match_cpu) {
    CudaTestEnv e;
    CHECK_OK(cuda_env_init(&e, 1 << 20, 1 << 20, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t sizes[3] = {1, 1000, 70001};
    const DType types[2] = {DT_F32, DT_BF16};
    for (int si = 0; si < 3; si++)
        for (int ti = 0; ti < 2; ti++)
            for (int kind = 0; kind < 3; kind++) {
                cuda_env_reset(&e);
                int64_t n = sizes[si];
                Tensor a32, b32, a, b, da, db;
                CHECK_OK(arena_tensor(&e.host, &a32, DT_F32, 1, &n, &tc->err));
                CHECK_OK(arena_tensor(&e.host, &b32, DT_F32, 1, &n, &tc->err));
                float *pa = a32.data, *pb = b32.data;
                for (int64_t i = 0; i < n; i++) {
                    pa[i] = test_rand_uniform(&rng, -3, 3);
                    pb[i] = test_rand_uniform(&rng, -3, 3);
                }
                // Round through the storage dtype so CPU and CUDA see the same values.
                Tensor as, bs;
                CHECK_OK(test_round_to(&e.cpu, &e.host, &a32, types[ti], &as, &tc->err));
                CHECK_OK(test_round_to(&e.cpu, &e.host, &b32, types[ti], &bs, &tc->err));
                CHECK_OK(tensor_to(&e.gpu, &e.dev, &a, &as, types[ti], &tc->err));
                CHECK_OK(tensor_to(&e.gpu, &e.dev, &b, &bs, types[ti], &tc->err));
                Graph gc, gg;
                CHECK_OK(graph_init(&gc, &e.cpu, &e.host, &tc->err));
                CHECK_OK(graph_init(&gg, &e.gpu, &e.dev, &tc->err));
                Var *ca, *cb, *ga, *gb, *cl, *gl;
                CHECK_OK(graph_leaf(&gc, &ca, &a32, true, &tc->err));
                CHECK_OK(graph_leaf(&gc, &cb, &b32, true, &tc->err));
                CHECK_OK(graph_leaf(&gg, &ga, &a, true, &tc->err));
                CHECK_OK(graph_leaf(&gg, &gb, &b, true, &tc->err));
                double scale = 1.0 / 3.0;
                if (kind == 0) {
                    CHECK_OK(op_sum(&gc, &cl, ca, &tc->err));
                    CHECK_OK(op_sum(&gg, &gl, ga, &tc->err));
                } else if (kind == 1) {
                    CHECK_OK(op_l1_loss(&gc, &cl, ca, cb, scale, &tc->err));
                    CHECK_OK(op_l1_loss(&gg, &gl, ga, gb, scale, &tc->err));
                } else {
                    CHECK_OK(op_mse_loss(&gc, &cl, ca, cb, scale, &tc->err));
                    CHECK_OK(op_mse_loss(&gg, &gl, ga, gb, scale, &tc->err));
                }
                CHECK_OK(graph_backward(&gc, cl, &tc->err));
                CHECK_OK(graph_backward(&gg, gl, &tc->err));
                Tensor loss_back;
                CHECK_OK(tensor_to(&e.gpu, &e.host, &loss_back, &gl->value, DT_F32, &tc->err));
                // The CPU sums in double; CUDA sums in fp32 by a two-level tree. The rounding error of an
                // fp32 sum is bounded relative to the sum of the terms' magnitudes, not to the result (a
                // plain sum of values in [-3, 3] can nearly cancel): log2(7e4) ~ 17 levels x 2^-24 ~ 1e-6.
                const float *pa32 = a32.data, *pb32 = b32.data;
                double magnitude = 0;
                for (int64_t i = 0; i < n; i++) {
                    double d = kind == 0 ? pa32[i] : (double)pa32[i] - pb32[i];
                    magnitude += kind == 2 ? d * d : fabs(d);
                }
                magnitude *= kind == 0 ? 1.0 : scale;
                float want = *(float *)cl->value.data, got = *(float *)loss_back.data;
                CHECK_MSG(fabs(got - want) <= 2e-6 * magnitude, "kind %d n %lld %s: loss %.9g vs CPU %.9g (sum of |terms| %.6g)",
                          kind, (long long)n, dtype_name(types[ti]), got, want, magnitude);
                CHECK_OK(tensor_to(&e.gpu, &e.host, &da, &ga->grad, DT_F32, &tc->err));
                // Elementwise gradients: the CPU twin computes in double and rounds once, CUDA rounds
                // 2-3 times in fp32 (relative <= ~4e-7); bf16 storage rounds to 8 bits (2^-8 = 4e-3).
                double tol = types[ti] == DT_F32 ? 1e-6 : 4e-3;
                CHECK_REL_ERR((float *)da.data, (float *)ca->grad.data, (size_t)n, tol);
                if (kind > 0) {
                    CHECK_OK(tensor_to(&e.gpu, &e.host, &db, &gb->grad, DT_F32, &tc->err));
                    CHECK_REL_ERR((float *)db.data, (float *)cb->grad.data, (size_t)n, tol);
                }
                graph_free(&gc);
                graph_free(&gg);
            }
    cuda_env_free(&e);
}

// A block of three ops (cast, two sums over dim 0) whose intermediates checkpointing must drop.
static int block_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    (void)user;
    Var *a, *b;
    DICE_TRY(op_cast(g, &a, in[0], DT_F64, err));
    DICE_TRY(op_sum_dim(g, &b, a, 0, err));
    return op_sum_dim(g, out, b, 0, err);
}

static int checkpointed_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    return graph_checkpoint(g, block_fn, user, in, 1, out, err);
}

// Checkpointing gives the same gradients (finite differences, and bit for bit against the plain
// block), and the main arena holds only the block's output.
DICE_TEST(autograd_checkpoint_recomputes_exactly) {
    Arena inputs, step, scratch;
    CHECK_OK(arena_init(&inputs, "inputs", DEV_CPU, 1 << 16, 0, &tc->err));
    CHECK_OK(arena_init(&step, "step", DEV_CPU, 1 << 16, 0, &tc->err));
    CHECK_OK(arena_init(&scratch, "scratch", DEV_CPU, 1 << 16, 0, &tc->err));
    uint64_t rng = tc->seed;
    int64_t shape[3] = {4, 3, 5};
    Tensor x;
    CHECK_OK(test_random_f64(&inputs, &x, 3, shape, -1, 1, &rng, &tc->err));
    bool req[1] = {true};
    CHECK(gradcheck(tc, "block", block_fn, NULL, &x, req, 1, 1e-6) == 0);

    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    double grads[2][60];
    size_t step_use[2];
    for (int variant = 0; variant < 2; variant++) {
        arena_reset(&step);
        Graph g;
        CHECK_OK(graph_init(&g, &ctx, &step, &tc->err));
        graph_set_scratch(&g, &scratch);
        Var *xv, *y, *loss;
        CHECK_OK(graph_leaf(&g, &xv, &x, true, &tc->err));
        if (variant) CHECK_OK(checkpointed_fn(&g, &xv, &y, NULL, &tc->err));
        else CHECK_OK(block_fn(&g, &xv, &y, NULL, &tc->err));
        CHECK(y->value.ndim == 1 && y->value.shape[0] == 5 && y->requires_grad);
        step_use[variant] = step.in_use;
        CHECK_OK(op_mse_loss(&g, &loss, y, y, 1.0, &tc->err));
        Var *s;
        CHECK_OK(op_sum(&g, &s, y, &tc->err));
        CHECK_OK(graph_backward(&g, s, &tc->err));
        memcpy(grads[variant], xv->grad.data, sizeof grads[variant]);
        graph_free(&g);
    }
    CHECK(!memcmp(grads[0], grads[1], sizeof grads[0]));
    CHECK_MSG(step_use[1] < step_use[0], "checkpointed forward used %zu bytes, plain %zu", step_use[1], step_use[0]);
    CHECK(scratch.in_use == 0);  // released after forward and after backward

    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &step, &tc->err));
    Var *xv, *y;
    CHECK_OK(graph_leaf(&g, &xv, &x, true, &tc->err));
    CHECK_FAILS_WITH(checkpointed_fn(&g, &xv, &y, NULL, &tc->err), "scratch arena");
    graph_free(&g);
    arena_free(&inputs);
    arena_free(&step);
    arena_free(&scratch);
}
