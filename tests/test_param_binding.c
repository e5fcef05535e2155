// tests/test_param_binding.c — graph_bind_params (nn/autograd.h): frozen-weight ops on a graph with bound
// Params train those Params exactly like the trainable ops do (bit for bit), with or without checkpointing;
// finite-difference check in f64; binding errors; one Var per Param and step; no-grad regions.
//
// The net: y = block(block(x)), block(h) = conv3x3(gelu_tanh(linear(h))) with x (B, H, W, C0), so every
// Param is used twice per step. The model's tensors (TinyNet) alias the Params' values, as a trainer's do.
#include "gradcheck.h"
#include "nn/ops.h"

enum { B = 2, H = 4, W = 4, C0 = 3, C1 = 5, N_PARAMS = 4, DEPTH = 2 };
enum { NET_TRAINABLE, NET_BOUND, NET_CHECKPOINT };

typedef struct TinyNet {
    Tensor w1, b1, w2, b2;  // w1 (C1, C0), b1 (C1), w2 (C0, 3, 3, C1) OHWI, b2 (C0)
} TinyNet;

typedef struct Fixture {
    DiceCtx ctx;
    Arena persist, step, scratch;
    Param p[N_PARAMS];  // w1, b1, w2, b2
    TinyNet net;        // the model: tensors aliasing p[i].value
    Tensor x, dy;       // x (B, H, W, C0), dy (B, H, W, C0) the gradient of the output
} Fixture;

typedef struct Result {
    unsigned char out[2048], dx[2048], grad[N_PARAMS][2048];
} Result;

static void fill_random(Tensor *t, uint64_t *rng) {
    for (int64_t i = 0; i < tensor_numel(t); i++) {
        float v = test_rand_uniform(rng, -1, 1);
        if (t->dtype == DT_F32) ((float *)t->data)[i] = v;
        else ((double *)t->data)[i] = v;
    }
}

static int random_tensor(Arena *a, Tensor *t, DType dt, int ndim, const int64_t *shape, uint64_t *rng,
                         DiceError *err) {
    DICE_TRY(arena_tensor(a, t, dt, ndim, shape, err));
    fill_random(t, rng);
    return 0;
}

static int make_param(Arena *a, Param *p, const char *name, DType dt, int ndim, const int64_t *shape, uint64_t *rng,
                      DiceError *err) {
    memset(p, 0, sizeof *p);
    p->name = name;
    DICE_TRY(random_tensor(a, &p->value, dt, ndim, shape, rng, err));
    DICE_TRY(arena_tensor(a, &p->grad, dt, ndim, shape, err));
    memset(p->grad.data, 0, tensor_nbytes(&p->grad));
    return 0;
}

static int fixture_init(Fixture *f, DType dt, uint64_t seed, DiceError *err) {
    memset(f, 0, sizeof *f);
    ctx_init_cpu(&f->ctx);
    DICE_TRY(arena_init(&f->persist, "params", DEV_CPU, 1 << 16, 0, err));
    DICE_TRY(arena_init(&f->step, "step", DEV_CPU, 1 << 20, 0, err));
    DICE_TRY(arena_init(&f->scratch, "scratch", DEV_CPU, 1 << 20, 0, err));
    uint64_t rng = seed;
    const int64_t w1[2] = {C1, C0}, b1[1] = {C1}, w2[4] = {C0, 3, 3, C1}, b2[1] = {C0}, act[4] = {B, H, W, C0};
    DICE_TRY(make_param(&f->persist, &f->p[0], "w1", dt, 2, w1, &rng, err));
    DICE_TRY(make_param(&f->persist, &f->p[1], "b1", dt, 1, b1, &rng, err));
    DICE_TRY(make_param(&f->persist, &f->p[2], "w2", dt, 4, w2, &rng, err));
    DICE_TRY(make_param(&f->persist, &f->p[3], "b2", dt, 1, b2, &rng, err));
    f->net = (TinyNet){f->p[0].value, f->p[1].value, f->p[2].value, f->p[3].value};
    DICE_TRY(random_tensor(&f->persist, &f->x, dt, 4, act, &rng, err));
    return random_tensor(&f->persist, &f->dy, dt, 4, act, &rng, err);
}

static void fixture_free(Fixture *f) {
    arena_free(&f->persist);
    arena_free(&f->step);
    arena_free(&f->scratch);
}

// The model's forward: frozen-weight ops only.
static int block_frozen(Graph *g, Var *h, const TinyNet *n, Var **out, DiceError *err) {
    Var *a;
    DICE_TRY(op_linear(g, &a, h, &n->w1, &n->b1, GEMM_ACT_GELU_TANH, err));  // (B, H, W, C1)
    return op_conv2d(g, out, a, &n->w2, &n->b2, 1, 1, err);                 // (B, H, W, C0)
}

static int block_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    return block_frozen(g, in[0], user, out, err);
}

// The reference: the same block written with the trainable ops; pv = w1, b1, w2, b2 Vars.
static int block_trainable(Graph *g, Var *h, Var *const *pv, Var **out, DiceError *err) {
    Var *a;
    DICE_TRY(op_linear_trainable(g, &a, h, pv[0], pv[1], GEMM_ACT_GELU_TANH, err));
    return op_conv2d_trainable(g, out, a, pv[2], pv[3], 1, 1, err);
}

static int forward(Graph *g, Fixture *f, int mode, Var *const *pv, Var *x, Var **out, DiceError *err) {
    Var *h = x;
    for (int d = 0; d < DEPTH; d++) {
        Var *in = h;
        if (mode == NET_TRAINABLE) DICE_TRY(block_trainable(g, in, pv, &h, err));
        else if (mode == NET_BOUND) DICE_TRY(block_frozen(g, in, &f->net, &h, err));
        else DICE_TRY(graph_checkpoint(g, block_fn, &f->net, &in, 1, &h, err));
    }
    *out = h;
    return 0;
}

static void copy_out(unsigned char *dst, const Tensor *t) { memcpy(dst, t->data, tensor_nbytes(t)); }

// One training step from zeroed gradients: Params with trained[i] get gradients (as Vars from graph_param for
// NET_TRAINABLE, as bindings otherwise), the others stay frozen; backward from the output with gradient dy.
static int run_step(Fixture *f, int mode, const bool *trained, bool x_grad, Result *r, DiceError *err) {
    for (int i = 0; i < N_PARAMS; i++) memset(f->p[i].grad.data, 0, tensor_nbytes(&f->p[i].grad));
    memset(r, 0, sizeof *r);
    arena_reset(&f->step);
    Graph g;
    DICE_TRY(graph_init(&g, &f->ctx, &f->step, err));
    graph_set_scratch(&g, &f->scratch);
    Param bound[N_PARAMS];
    Var *pv[N_PARAMS], *x, *y;
    int nb = 0, rc = 0;
    for (int i = 0; i < N_PARAMS; i++)
        if (trained[i]) bound[nb++] = f->p[i];
    if (mode == NET_TRAINABLE)
        for (int i = 0; i < N_PARAMS && !rc; i++)
            rc = trained[i] ? graph_param(&g, &pv[i], &f->p[i], err) : graph_leaf(&g, &pv[i], &f->p[i].value, false, err);
    else rc = graph_bind_params(&g, bound, nb, err);
    if (!rc) rc = graph_leaf(&g, &x, &f->x, x_grad, err);
    if (!rc) rc = forward(&g, f, mode, pv, x, &y, err);
    if (!rc) rc = graph_backward_from(&g, y, &f->dy, err);
    if (!rc && x_grad && !x->grad.data) rc = DICE_FAIL(err, "test: x requires a gradient but got none");
    if (!rc) {
        copy_out(r->out, &y->value);
        if (x_grad) copy_out(r->dx, &x->grad);
        for (int i = 0; i < N_PARAMS; i++) copy_out(r->grad[i], &f->p[i].grad);
    }
    graph_free(&g);
    return rc;
}

static bool all_zero(const Tensor *t) {
    const unsigned char *b = t->data;
    for (size_t i = 0; i < tensor_nbytes(t); i++)
        if (b[i]) return false;
    return true;
}

// (a) Frozen ops with bindings = trainable ops with graph_param, bit for bit: all Params trained, and a mix
// (the first layer's weight bound with its bias frozen, the second's bias bound with its weight frozen).
DICE_TEST(param_binding_matches_trainable_ops) {
    Fixture f;
    CHECK_OK(fixture_init(&f, DT_F32, tc->seed, &tc->err));
    const bool all[N_PARAMS] = {true, true, true, true}, mixed[N_PARAMS] = {true, false, false, true};
    const bool *masks[2] = {all, mixed};
    static Result ref, got;
    for (int m = 0; m < 2; m++)
        for (int x_grad = 0; x_grad < 2; x_grad++) {
            CHECK_OK(run_step(&f, NET_TRAINABLE, masks[m], x_grad, &ref, &tc->err));
            CHECK_OK(run_step(&f, NET_BOUND, masks[m], x_grad, &got, &tc->err));
            CHECK_MSG(!memcmp(&ref, &got, sizeof ref), "mask %d, x_grad %d: bound and trainable differ", m, x_grad);
            for (int i = 0; i < N_PARAMS; i++)
                CHECK_MSG(all_zero(&f.p[i].grad) == !masks[m][i], "mask %d: Param %s's gradient", m, f.p[i].name);
        }
    fixture_free(&f);
}

// loss = sum(y * dy) of the bound net, computed in a no-grad region (the bindings stay in place).
static int bound_loss(Fixture *f, double *loss, DiceError *err) {
    arena_reset(&f->step);
    Graph g;
    DICE_TRY(graph_init(&g, &f->ctx, &f->step, err));
    graph_no_grad_begin(&g);
    Var *x, *y;
    int rc = graph_bind_params(&g, f->p, N_PARAMS, err);
    if (!rc) rc = graph_leaf(&g, &x, &f->x, false, err);
    if (!rc) rc = forward(&g, f, NET_BOUND, NULL, x, &y, err);
    if (!rc) {
        const double *yd = y->value.data, *w = f->dy.data;
        double s = 0;
        for (int64_t k = 0; k < tensor_numel(&y->value); k++) s += yd[k] * w[k];
        *loss = s;
    }
    graph_free(&g);
    return rc;
}

// (b) Every Param element's gradient through the bound net against central differences, in f64.
DICE_TEST(param_binding_gradcheck_f64) {
    Fixture f;
    CHECK_OK(fixture_init(&f, DT_F64, tc->seed, &tc->err));
    const bool all[N_PARAMS] = {true, true, true, true};
    static Result r;
    CHECK_OK(run_step(&f, NET_BOUND, all, true, &r, &tc->err));
    const double eps = 1e-6, tol = 1e-6;
    for (int i = 0; i < N_PARAMS; i++) {
        double *v = f.p[i].value.data;
        const double *ga = (const double *)r.grad[i];
        for (int64_t k = 0; k < tensor_numel(&f.p[i].value); k++) {
            double saved = v[k], lp, lm;
            v[k] = saved + eps;
            CHECK_OK(bound_loss(&f, &lp, &tc->err));
            v[k] = saved - eps;
            CHECK_OK(bound_loss(&f, &lm, &tc->err));
            v[k] = saved;
            double numeric = (lp - lm) / (2 * eps), diff = fabs(ga[k] - numeric);
            CHECK_MSG(diff <= tol * (fabs(numeric) + fabs(ga[k])) + tol * 1e-2,
                      "d/d %s[%lld]: analytic %.10g, finite difference %.10g", f.p[i].name, (long long)k, ga[k],
                      numeric);
        }
    }
    fixture_free(&f);
}

// (c) Checkpointed blocks give the plain bound net's output and gradients bit for bit, also when the input
// does not require a gradient (the first block is then recorded for its Params alone).
DICE_TEST(param_binding_checkpoint_bit_identical) {
    Fixture f;
    CHECK_OK(fixture_init(&f, DT_F32, tc->seed, &tc->err));
    const bool all[N_PARAMS] = {true, true, true, true}, mixed[N_PARAMS] = {false, true, true, false};
    const bool *masks[2] = {all, mixed};
    static Result plain, ckpt;
    for (int m = 0; m < 2; m++)
        for (int x_grad = 0; x_grad < 2; x_grad++) {
            CHECK_OK(run_step(&f, NET_BOUND, masks[m], x_grad, &plain, &tc->err));
            CHECK_OK(run_step(&f, NET_CHECKPOINT, masks[m], x_grad, &ckpt, &tc->err));
            CHECK_MSG(!memcmp(&plain, &ckpt, sizeof plain), "mask %d, x_grad %d: checkpointed and plain differ", m,
                      x_grad);
            CHECK(!all_zero(&f.p[1].grad));
            CHECK(f.scratch.in_use == 0);
        }
    fixture_free(&f);
}

// (d) Bindings that cannot be honoured fail with a clear message; a failed bind keeps the earlier binding.
DICE_TEST(param_binding_errors) {
    Fixture f;
    CHECK_OK(fixture_init(&f, DT_F32, tc->seed, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &f.ctx, &f.step, &tc->err));
    CHECK_OK(graph_bind_params(&g, f.p, N_PARAMS, &tc->err));
    CHECK_FAILS_WITH(graph_bind_params(&g, NULL, 2, &tc->err), "graph_bind_params");
    Param dup[2] = {f.p[0], f.p[0]};
    dup[1].name = "w1_again";
    CHECK_FAILS_WITH(graph_bind_params(&g, dup, 2, &tc->err), "w1 and w1_again share one value tensor");
    Param bad = f.p[1];
    bad.grad = f.p[0].grad;  // (C1, C0) for a value (C1)
    CHECK_FAILS_WITH(graph_bind_params(&g, &bad, 1, &tc->err), "Param 0 b1 has value");
    bad.grad.data = NULL;
    CHECK_FAILS_WITH(graph_bind_params(&g, &bad, 1, &tc->err), "gradient none");
    CHECK(g.n_bound == N_PARAMS);

    Var *x, *y;
    CHECK_OK(graph_leaf(&g, &x, &f.x, false, &tc->err));
    Tensor transposed, wide;  // w1's data seen as (C0, C1), and as f64 (C1, C0)
    CHECK_OK(tensor_wrap(&transposed, f.p[0].value.data, DT_F32, DEV_CPU, 2, (int64_t[]){C0, C1}, &tc->err));
    CHECK_OK(tensor_wrap(&wide, f.p[0].value.data, DT_F64, DEV_CPU, 2, (int64_t[]){C1, C0}, &tc->err));
    CHECK_FAILS_WITH(op_linear(&g, &y, x, &transposed, NULL, GEMM_ACT_NONE, &tc->err), "bound Param w1");
    CHECK_FAILS_WITH(op_linear(&g, &y, x, &f.net.w1, &wide, GEMM_ACT_NONE, &tc->err), "shares its data but not");
    CHECK_FAILS_WITH(op_conv2d(&g, &y, x, &transposed, NULL, 1, 1, &tc->err), "bound Param w1");
    CHECK_OK(op_linear(&g, &y, x, &f.net.w1, &f.net.b1, GEMM_ACT_NONE, &tc->err));  // the binding still holds
    CHECK(y->requires_grad);
    graph_free(&g);
    fixture_free(&f);
}

// (e) A Param has one Var per step, shared by all its uses (whose contributions add up); graph_reset gives
// a new one; a shared square weight used twice matches the trainable ops with one Var.
DICE_TEST(param_binding_one_var_per_step) {
    Fixture f;
    CHECK_OK(fixture_init(&f, DT_F32, tc->seed, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &f.ctx, &f.step, &tc->err));
    CHECK_OK(graph_bind_params(&g, f.p, N_PARAMS, &tc->err));
    Var *v1, *v2, *v3, *none;
    CHECK_OK(graph_bound_var(&g, &v1, &f.net.w2, &tc->err));
    CHECK_OK(graph_bound_var(&g, &v2, &f.net.w2, &tc->err));
    CHECK(v1 && v1 == v2 && v1->requires_grad && v1->grad.data == f.p[2].grad.data);
    CHECK_OK(graph_bound_var(&g, &none, &f.x, &tc->err));
    CHECK(!none);
    graph_reset(&g);
    CHECK_OK(graph_bound_var(&g, &v3, &f.net.w2, &tc->err));
    CHECK(v3 && v3 != v1);
    graph_free(&g);

    // y = linear(linear(x, S, s), S, s) with S (C0, C0), s (C0).
    uint64_t rng = tc->seed ^ 0x1234u;
    Param sq[2];
    CHECK_OK(make_param(&f.persist, &sq[0], "S", DT_F32, 2, (int64_t[]){C0, C0}, &rng, &tc->err));
    CHECK_OK(make_param(&f.persist, &sq[1], "s", DT_F32, 1, (int64_t[]){C0}, &rng, &tc->err));
    float grads[2][2][C0 * C0] = {{{0}}};
    for (int bound = 0; bound < 2; bound++) {
        for (int i = 0; i < 2; i++) memset(sq[i].grad.data, 0, tensor_nbytes(&sq[i].grad));
        arena_reset(&f.step);
        CHECK_OK(graph_init(&g, &f.ctx, &f.step, &tc->err));
        Var *x, *h, *y, *s, *bias;
        CHECK_OK(graph_leaf(&g, &x, &f.x, false, &tc->err));
        if (bound) {
            CHECK_OK(graph_bind_params(&g, sq, 2, &tc->err));
            CHECK_OK(op_linear(&g, &h, x, &sq[0].value, &sq[1].value, GEMM_ACT_NONE, &tc->err));
            CHECK_OK(op_linear(&g, &y, h, &sq[0].value, &sq[1].value, GEMM_ACT_NONE, &tc->err));
        } else {
            CHECK_OK(graph_param(&g, &s, &sq[0], &tc->err));
            CHECK_OK(graph_param(&g, &bias, &sq[1], &tc->err));
            CHECK_OK(op_linear_trainable(&g, &h, x, s, bias, GEMM_ACT_NONE, &tc->err));
            CHECK_OK(op_linear_trainable(&g, &y, h, s, bias, GEMM_ACT_NONE, &tc->err));
        }
        CHECK_OK(graph_backward_from(&g, y, &f.dy, &tc->err));
        memcpy(grads[bound][0], sq[0].grad.data, tensor_nbytes(&sq[0].grad));
        memcpy(grads[bound][1], sq[1].grad.data, tensor_nbytes(&sq[1].grad));
        graph_free(&g);
    }
    CHECK(!memcmp(grads[0], grads[1], sizeof grads[0]));
    fixture_free(&f);
}

// (f) In a no-grad region bound weights take the frozen path: the unbound model's output, nothing recorded,
// no Var, no gradient; unbinding makes the ops frozen again.
DICE_TEST(param_binding_no_grad_region) {
    Fixture f;
    CHECK_OK(fixture_init(&f, DT_F32, tc->seed, &tc->err));
    static unsigned char frozen_out[2048];
    for (int bound = 0; bound < 2; bound++) {
        arena_reset(&f.step);
        Graph g;
        CHECK_OK(graph_init(&g, &f.ctx, &f.step, &tc->err));
        Var *x, *y;
        CHECK_OK(graph_leaf(&g, &x, &f.x, true, &tc->err));
        if (bound) CHECK_OK(graph_bind_params(&g, f.p, N_PARAMS, &tc->err));
        graph_no_grad_begin(&g);
        CHECK_OK(forward(&g, &f, NET_BOUND, NULL, x, &y, &tc->err));
        graph_no_grad_end(&g);
        CHECK(!y->requires_grad && g.n_nodes == 0 && !g.bound_vars);
        if (!bound) copy_out(frozen_out, &y->value);
        else CHECK(!memcmp(frozen_out, y->value.data, tensor_nbytes(&y->value)));
        for (int i = 0; i < N_PARAMS; i++) CHECK(all_zero(&f.p[i].grad));
        if (bound) {
            Var *frozen_x, *z;
            CHECK_OK(graph_bind_params(&g, NULL, 0, &tc->err));
            CHECK_OK(graph_leaf(&g, &frozen_x, &f.x, false, &tc->err));
            CHECK_OK(forward(&g, &f, NET_BOUND, NULL, frozen_x, &z, &tc->err));
            CHECK(!z->requires_grad && g.n_nodes == 0);
        }
        graph_free(&g);
    }
    fixture_free(&f);
}
