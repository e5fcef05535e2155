// tests/gradcheck.c — finite-difference gradient checks (see gradcheck.h).
#include "gradcheck.h"

#include <stdio.h>
#include <stdlib.h>

#include "nn/tensor_copy.h"

enum { GRADCHECK_MAX_INPUTS = 8, GRADCHECK_SAMPLES = 48 };

int test_random_f64(Arena *arena, Tensor *t, int ndim, const int64_t *shape, double lo, double hi, uint64_t *rng,
                    DiceError *err) {
    DICE_TRY(arena_tensor(arena, t, DT_F64, ndim, shape, err));
    double *d = t->data;
    for (int64_t i = 0; i < tensor_numel(t); i++)
        d[i] = lo + (hi - lo) * (double)(test_rand_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
    return 0;
}

// loss = sum(out * w) of one forward pass with nothing recorded.
static int eval_loss(DiceCtx *ctx, Arena *arena, GradcheckFn fn, void *user, Tensor *inputs, int n, const double *w,
                     int64_t w_n, double *loss, DiceError *err) {
    arena_reset(arena);
    Graph g;
    DICE_TRY(graph_init(&g, ctx, arena, err));
    graph_no_grad_begin(&g);
    Var *vars[GRADCHECK_MAX_INPUTS], *out;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = graph_leaf(&g, &vars[i], &inputs[i], false, err);
    if (!rc) rc = fn(&g, vars, &out, user, err);
    if (!rc && (out->value.dtype != DT_F64 || tensor_numel(&out->value) != w_n || !tensor_is_contiguous(&out->value)))
        rc = DICE_FAIL(err, "gradcheck: the output must be a contiguous f64 tensor of a fixed size");
    if (!rc) {
        const double *o = out->value.data;
        double s = 0;
        for (int64_t k = 0; k < w_n; k++) s += o[k] * w[k];
        *loss = s;
    }
    graph_free(&g);
    return rc;
}

int gradcheck(TestCtx *tc, const char *what, GradcheckFn fn, void *user, Tensor *inputs, const bool *requires_grad,
              int n_inputs, double tol) {
    DiceError *err = &tc->err;
    if (n_inputs > GRADCHECK_MAX_INPUTS) {
        test_fail(tc, __FILE__, __LINE__, "%s: at most %d inputs", what, GRADCHECK_MAX_INPUTS);
        return -1;
    }
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena, eval_arena;
    int rc = -1;
    double *w = NULL;
    Graph g;
    memset(&g, 0, sizeof g);
    if (arena_init(&arena, "gradcheck", DEV_CPU, 1 << 20, 0, err) ||
        arena_init(&eval_arena, "gradcheck-eval", DEV_CPU, 1 << 20, 0, err)) {
        test_fail(tc, __FILE__, __LINE__, "%s: %s", what, err->msg);
        return -1;
    }
    if (graph_init(&g, &ctx, &arena, err)) goto library_error;
    // Analytic gradients.
    Var *vars[GRADCHECK_MAX_INPUTS], *out;
    for (int i = 0; i < n_inputs; i++)
        if (graph_leaf(&g, &vars[i], &inputs[i], requires_grad[i], err)) goto library_error;
    if (fn(&g, vars, &out, user, err)) goto library_error;
    int64_t w_n = tensor_numel(&out->value);
    w = malloc((size_t)(w_n ? w_n : 1) * sizeof *w);
    uint64_t rng = tc->seed ^ 0x5bd1e995u;
    for (int64_t k = 0; k < w_n; k++) w[k] = (double)(test_rand_u64(&rng) >> 11) * (2.0 / 9007199254740992.0) - 1.0;
    Tensor wt;
    if (tensor_wrap(&wt, w, DT_F64, DEV_CPU, out->value.ndim, out->value.shape, err)) goto library_error;
    if (graph_backward_from(&g, out, &wt, err)) goto library_error;

    const double eps = 1e-6;
    for (int i = 0; i < n_inputs; i++) {
        if (!requires_grad[i]) {
            if (vars[i]->grad.data) {
                test_fail(tc, __FILE__, __LINE__, "%s: input %d does not require a gradient but got one", what, i);
                goto done;
            }
            continue;
        }
        if (!vars[i]->grad.data) {
            test_fail(tc, __FILE__, __LINE__, "%s: input %d requires a gradient and got none", what, i);
            goto done;
        }
        double *x = inputs[i].data;
        const double *ga = vars[i]->grad.data;
        int64_t n = tensor_numel(&inputs[i]);
        int samples = n < GRADCHECK_SAMPLES ? (int)n : GRADCHECK_SAMPLES;
        for (int s = 0; s < samples; s++) {
            int64_t k = n <= GRADCHECK_SAMPLES ? s : s == 0 ? 0 : s == 1 ? n - 1 : (int64_t)(test_rand_u64(&rng) % (uint64_t)n);
            double saved = x[k], lp, lm;
            x[k] = saved + eps;
            int e1 = eval_loss(&ctx, &eval_arena, fn, user, inputs, n_inputs, w, w_n, &lp, err);
            x[k] = saved - eps;
            int e2 = e1 ? 0 : eval_loss(&ctx, &eval_arena, fn, user, inputs, n_inputs, w, w_n, &lm, err);
            x[k] = saved;
            if (e1 || e2) goto library_error;
            double numeric = (lp - lm) / (2 * eps), analytic = ga[k];
            double diff = fabs(analytic - numeric), bound = tol * (fabs(numeric) + fabs(analytic)) + tol * 1e-2;
            if (!(diff <= bound)) {
                test_fail(tc, __FILE__, __LINE__,
                          "%s: d/d input %d [%lld]: analytic %.10g, finite difference %.10g (|diff| %.3g > %.3g)",
                          what, i, (long long)k, analytic, numeric, diff, bound);
                goto done;
            }
        }
    }
    rc = 0;
    goto done;
library_error:
    test_fail(tc, __FILE__, __LINE__, "%s: %s", what, err->msg);
done:
    free(w);
    graph_free(&g);
    arena_free(&arena);
    arena_free(&eval_arena);
    return rc;
}
