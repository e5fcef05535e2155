// tests/cuda_parity.c — CUDA-versus-CPU comparison of an op, forward and backward, and the helpers of tests
// that compare the devices by hand (see cuda_parity.h).
#include "cuda_parity.h"

#include <stdio.h>
#include <stdlib.h>

#include "nn/cuda_api.h"
#include "nn/tensor_copy.h"

enum { PARITY_MAX_INPUTS = 8 };
#define PARITY_ARENA_BYTES ((size_t)4 << 20)  // poisoned on a GPU; the emulator poisons every allocation

int test_random_f32(Arena *arena, Tensor *t, int ndim, const int64_t *shape, float lo, float hi, uint64_t *rng,
                    DiceError *err) {
    DICE_TRY(arena_tensor(arena, t, DT_F32, ndim, shape, err));
    float *d = t->data;
    for (int64_t i = 0; i < tensor_numel(t); i++) d[i] = test_rand_uniform(rng, lo, hi);
    return 0;
}

int test_round_to(DiceCtx *cpu, Arena *host, Tensor *t, DType dtype, Tensor *stored, DiceError *err) {
    Tensor r;
    DICE_TRY(tensor_to(cpu, host, &r, t, dtype, err));
    if (stored) *stored = r;
    return tensor_copy(cpu, t, &r, err);
}

int test_poison_arena(Arena *dev, DiceError *err) {
    if (!dev->chunks) {  // make the first chunk, then give its bytes back
        void *p;
        DICE_TRY(arena_alloc(dev, 0, &p, err));
        arena_reset(dev);
    }
    for (ArenaChunk *c = dev->chunks; c; c = c->next)
        CUDA_TRY(err, cudaMemset(c->base + c->used, 0xff, c->size - c->used));
    return 0;
}

static int rel_err_device(DiceCtx *gpu, Arena *host, const Tensor *got, const Tensor *want, double *rel,
                          DiceError *err) {
    Tensor back;
    DICE_TRY(tensor_to(gpu, host, &back, got, DT_F32, err));
    *rel = test_rel_err_f32(back.data, want->data, (size_t)tensor_numel(want));
    return 0;
}

int cuda_env_init(CudaTestEnv *e, size_t host_chunk_bytes, size_t dev_chunk_bytes, DiceError *err) {
    ctx_init_cpu(&e->cpu);
    DICE_TRY(ctx_init_cuda(&e->gpu, 0, err));
    DICE_TRY(arena_init(&e->host, "host", DEV_CPU, host_chunk_bytes, 0, err));
    return arena_init(&e->dev, "device", DEV_CUDA, dev_chunk_bytes, 0, err);
}

void cuda_env_free(CudaTestEnv *e) {
    arena_free(&e->host);
    arena_free(&e->dev);
    ctx_free(&e->gpu);
}

void cuda_env_reset(CudaTestEnv *e) {
    arena_reset(&e->host);
    arena_reset(&e->dev);
}

int cuda_env_random(CudaTestEnv *e, int ndim, const int64_t *shape, float lo, float hi, DType dtype, uint64_t *rng,
                    Tensor *t, Tensor *d, DiceError *err) {
    Tensor stored;
    DICE_TRY(test_random_f32(&e->host, t, ndim, shape, lo, hi, rng, err));
    DICE_TRY(test_round_to(&e->cpu, &e->host, t, dtype, &stored, err));
    return d ? tensor_to(&e->gpu, &e->dev, d, &stored, dtype, err) : 0;
}

int cuda_env_rel_err(CudaTestEnv *e, const Tensor *got, const Tensor *want, double *rel, DiceError *err) {
    return rel_err_device(&e->gpu, &e->host, got, want, rel, err);
}

// got (device, any float dtype) against want (host f32): relative norm error.
static int compare(TestCtx *tc, DiceCtx *gpu, Arena *host, const char *what, const char *name, const Tensor *got,
                   const Tensor *want, double tol) {
    double rel;
    if (rel_err_device(gpu, host, got, want, &rel, &tc->err)) {
        test_fail(tc, __FILE__, __LINE__, "%s: %s: %s", what, name, tc->err.msg);
        return -1;
    }
    if (!(rel <= tol)) {
        char d[128];
        test_fail(tc, __FILE__, __LINE__, "%s: %s %s: CUDA vs CPU relative error %.3g > %.3g", what, name,
                  tensor_describe(got, d, sizeof d), rel, tol);
        return -1;
    }
    return 0;
}

int cuda_parity(TestCtx *tc, const char *what, GradcheckFn fn, void *user, Tensor *inputs, const bool *requires_grad,
                int n_inputs, DType dtype, double tol) {
    DiceError *err = &tc->err;
    DiceCtx cpu, gpu;
    ctx_init_cpu(&cpu);
    if (ctx_init_cuda(&gpu, 0, err)) {
        test_fail(tc, __FILE__, __LINE__, "%s: %s", what, err->msg);
        return -1;
    }
    Arena host, dev_in, dev;
    Graph gc, gg;
    memset(&gc, 0, sizeof gc);
    memset(&gg, 0, sizeof gg);
    int rc = -1;
    arena_init(&host, "parity-host", DEV_CPU, 1 << 20, 0, err);
    arena_init(&dev_in, "parity-inputs", DEV_CUDA, 1 << 20, 0, err);
    if (arena_init(&dev, "parity-step", DEV_CUDA, PARITY_ARENA_BYTES, 0, err) || test_poison_arena(&dev, err))
        goto library_error;
    if (n_inputs > PARITY_MAX_INPUTS) {
        DICE_FAIL(err, "at most %d inputs", PARITY_MAX_INPUTS);
        goto library_error;
    }
    Var *cv[PARITY_MAX_INPUTS], *gv[PARITY_MAX_INPUTS], *co, *go;
    if (graph_init(&gc, &cpu, &host, err) || graph_init(&gg, &gpu, &dev, err)) goto library_error;
    for (int i = 0; i < n_inputs; i++) {
        Tensor d;
        if (test_round_to(&cpu, &host, &inputs[i], dtype, NULL, err) ||
            tensor_to(&gpu, &dev_in, &d, &inputs[i], dtype, err) ||
            graph_leaf(&gc, &cv[i], &inputs[i], requires_grad[i], err) ||
            graph_leaf(&gg, &gv[i], &d, requires_grad[i], err))
            goto library_error;
    }
    if (fn(&gc, cv, &co, user, err)) goto library_error;
    if (fn(&gg, gv, &go, user, err)) goto library_error;
    if (compare(tc, &gpu, &host, what, "output", &go->value, &co->value, tol)) goto done;
    if (co->requires_grad) {
        uint64_t rng = tc->seed ^ 0x9e3779b9u;
        Tensor w, wd;
        if (test_random_f32(&host, &w, co->value.ndim, co->value.shape, -0.5f, 1, &rng, err) ||
            test_round_to(&cpu, &host, &w, dtype, NULL, err) || tensor_to(&gpu, &dev, &wd, &w, dtype, err) ||
            graph_backward_from(&gc, co, &w, err) || graph_backward_from(&gg, go, &wd, err))
            goto library_error;
        for (int i = 0; i < n_inputs; i++) {
            if (!requires_grad[i]) continue;
            char name[32];
            snprintf(name, sizeof name, "gradient of input %d", i);
            if (!cv[i]->grad.data || !gv[i]->grad.data) {
                test_fail(tc, __FILE__, __LINE__, "%s: %s missing (CPU %s, CUDA %s)", what, name,
                          cv[i]->grad.data ? "present" : "missing", gv[i]->grad.data ? "present" : "missing");
                goto done;
            }
            if (compare(tc, &gpu, &host, what, name, &gv[i]->grad, &cv[i]->grad, tol)) goto done;
        }
    }
    rc = 0;
    goto done;
library_error:
    test_fail(tc, __FILE__, __LINE__, "%s: %s", what, err->msg);
done:
    graph_free(&gc);
    graph_free(&gg);
    arena_free(&host);
    arena_free(&dev_in);
    arena_free(&dev);
    ctx_free(&gpu);
    return rc;
}
