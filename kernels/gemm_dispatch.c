// kernels/gemm_dispatch.c — what the GEMM engines share (see gemm.h): argument checks, names, and the
// GemmHandle that chooses the CUDA engine (cuBLASLt or the custom kernels) and dispatches to it.
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

const char *gemm_act_name(GemmAct act) {
    switch (act) {
    case GEMM_ACT_NONE: return "none";
    case GEMM_ACT_RELU: return "relu";
    case GEMM_ACT_GELU_TANH: return "gelu_tanh";
    case GEMM_ACT_GELU_ERF: return "gelu_erf";
    }
    return "?";
}

const char *gemm_backend_name(GemmBackend b) { return b == GEMM_BACKEND_CUBLASLT ? "cublaslt" : "custom"; }

GemmArgs gemm_args_contiguous(int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
                              const void *a, const void *b, void *c, const void *bias, DType in, DType out,
                              GemmAct act) {
    GemmArgs g;
    memset(&g, 0, sizeof g);
    g.M = M, g.N = N, g.K = K, g.batch = batch;
    g.trans_a = trans_a, g.trans_b = trans_b;
    g.a = a, g.b = b, g.c = c, g.bias = bias;
    g.lda = trans_a ? M : K;
    g.ldb = trans_b ? K : N;
    g.ldc = N;
    g.stride_a = M * K, g.stride_b = K * N, g.stride_c = M * N;
    g.in = in, g.out = out, g.act = act;
    return g;
}

int gemm_check_args(const GemmArgs *g, const char *engine, DiceError *err) {
    DICE_CHECK(err, g->M >= 0 && g->N >= 0 && g->K >= 0 && g->batch >= 0,
               "%s: bad sizes M %lld, N %lld, K %lld, batch %lld", engine, (long long)g->M, (long long)g->N,
               (long long)g->K, (long long)g->batch);
    int64_t a_cols = g->trans_a ? g->M : g->K, b_cols = g->trans_b ? g->K : g->N;
    DICE_CHECK(err, g->lda >= a_cols && g->ldb >= b_cols && g->ldc >= g->N,
               "%s: row pitches lda %lld, ldb %lld, ldc %lld are shorter than the rows (%lld, %lld, %lld)", engine,
               (long long)g->lda, (long long)g->ldb, (long long)g->ldc, (long long)a_cols, (long long)b_cols,
               (long long)g->N);
    DICE_CHECK(err, g->stride_a >= 0 && g->stride_b >= 0 && g->stride_c >= 0, "%s: negative batch pitch", engine);
    DICE_CHECK(err, g->batch <= 1 || g->stride_c >= g->M * g->ldc - (g->ldc - g->N),
               "%s: batch entries of C overlap (pitch %lld)", engine, (long long)g->stride_c);
    DICE_CHECK(err, (unsigned)g->act <= GEMM_ACT_GELU_ERF, "%s: unknown activation %d", engine, (int)g->act);
    bool empty = g->M == 0 || g->N == 0 || g->batch == 0;
    DICE_CHECK(err, empty || (g->a && g->b && g->c), "%s: null operand", engine);
    return 0;
}

// ---------------------------------------------------------------- the CUDA engine choice
#if defined(DICE_CUDA) && !defined(DICE_EMU)
#define GEMM_HAVE_CUBLASLT 1
#else
#define GEMM_HAVE_CUBLASLT 0
#endif

int gemm_handle_set_backend(GemmHandle *h, GemmBackend backend, DiceError *err) {
    DICE_CHECK(err, backend == GEMM_BACKEND_CUSTOM || backend == GEMM_BACKEND_CUBLASLT, "gemm: unknown engine %d",
               (int)backend);
    DICE_CHECK(err, backend != GEMM_BACKEND_CUBLASLT || GEMM_HAVE_CUBLASLT,
               "gemm: the cublaslt engine is not part of this build (the emulated CUDA build has only the custom "
               "kernels; use DICE_GEMM=custom)");
    h->backend = backend;
    return 0;
}

int gemm_handle_create(GemmHandle **out, DiceError *err) {
    *out = NULL;
#ifndef DICE_CUDA
    return DICE_FAIL(err, "gemm: this build of dice has no CUDA backend");
#else
    GemmBackend backend = GEMM_HAVE_CUBLASLT ? GEMM_BACKEND_CUBLASLT : GEMM_BACKEND_CUSTOM;
    const char *env = getenv("DICE_GEMM");
    if (env && *env) {
        if (!strcmp(env, "cublaslt"))
            backend = GEMM_BACKEND_CUBLASLT;
        else if (!strcmp(env, "custom"))
            backend = GEMM_BACKEND_CUSTOM;
        else
            return DICE_FAIL(err, "DICE_GEMM=%s: unknown GEMM engine (cublaslt or custom)", env);
    }
    GemmHandle *h = calloc(1, sizeof *h);
    DICE_CHECK(err, h, "gemm: out of host memory");
    if (gemm_handle_set_backend(h, backend, err)) {
        free(h);
        dice_error_context(err, "DICE_GEMM=%s", env ? env : "");
        return -1;
    }
#if GEMM_HAVE_CUBLASLT
    if (gemm_cublaslt_init(h, err)) {  // always, so that a test or benchmark can switch engines
        free(h);
        return -1;
    }
#endif
    *out = h;
    return 0;
#endif
}

void gemm_handle_destroy(GemmHandle *h) {
    if (!h) return;
#if GEMM_HAVE_CUBLASLT
    gemm_cublaslt_free(h);
#endif
    free(h);
}

int gemm_cuda(GemmHandle *h, const GemmArgs *g, void *stream, DiceError *err) {
    DICE_CHECK(err, h, "gemm: the CUDA context has no GEMM handle (create contexts with ctx_init_cuda)");
#ifndef DICE_CUDA
    return DICE_FAIL(err, "gemm: this build of dice has no CUDA backend");
#else
    // An empty sum (K = 0: C = act(bias), e.g. the weight gradient of an empty batch) is the custom
    // kernel's job in both engines, because cuBLASLt rejects K = 0.
    if (h->backend == GEMM_BACKEND_CUSTOM || g->K == 0) return gemm_custom_cuda(g, stream, err);
#if GEMM_HAVE_CUBLASLT
    return gemm_cublaslt(h, g, stream, err);
#else
    return DICE_FAIL(err, "gemm: the cublaslt engine is not part of this build");
#endif
#endif
}
