// tests/test_linear_cuda.c — the CUDA GEMM engines against the CPU reference (DICE_CUDA_TESTs: the custom
// kernels run in the SIMT emulator under `make test`; `make test-gpu` runs everything on a GPU, cuBLASLt
// included): the launcher on ragged shapes, every transpose, dtype pair and activation, padded pitches and
// batches, outputs poisoned first; then linear and matmul forward and backward through the op layer; and
// empty inputs on both devices.
//
// Tolerances (relative norm error against CPU f32 on the same bf16-rounded inputs):
//   bf16 output: 1e-2 — one rounding of each output to bf16 (8 significant bits: <= 2^-9 relative); for
//                cuBLASLt's epilogues, whose bf16 path rounds A.B before the bias and activation, the
//                reference rounds there too (check_one_gemm);
//   f32 output:  1e-5 — bf16 x bf16 products are exact in fp32, f32 x f32 ones round alike: only the
//                summation order differs (K <= 77 terms);
//   op layer bf16: 2e-2 — backward chains two or three bf16 roundings (dz, then dx / dW / db).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/cuda_api.h"
#include "nn/ops.h"
#include "nn/tensor_copy.h"
#include "tests/cuda_parity.h"

// ---------------------------------------------------------------- the launcher
typedef struct Mat {
    Tensor ref, dev;  // host f32 (rounded) and device copy, `rows` stored rows of pitch `ld` per batch entry
    int64_t rows, cols, ld;
} Mat;

static int make_mat(CudaTestEnv *e, DType dtype, int64_t batch, int64_t rows, int64_t cols, int64_t pad,
                    uint64_t *rng, Mat *m, DiceError *err) {
    m->rows = rows, m->cols = cols, m->ld = cols + pad;
    int64_t n = batch * rows * m->ld;
    return cuda_env_random(e, 1, &n, -1, 1, dtype, rng, &m->ref, &m->dev, err);
}

// Valid region of C (batch x M x N of pitch ld) as a contiguous f32 array.
static void gather(float *dst, const float *c, int64_t batch, int64_t M, int64_t N, int64_t ld) {
    for (int64_t z = 0; z < batch; z++)
        for (int64_t m = 0; m < M; m++) memcpy(dst + (z * M + m) * N, c + (z * M + m) * ld, (size_t)N * sizeof(float));
}

static const GemmAct all_acts[4] = {GEMM_ACT_NONE, GEMM_ACT_RELU, GEMM_ACT_GELU_TANH, GEMM_ACT_GELU_ERF};

// One GEMM on the context's engine against gemm_cpu; the pad columns of C must stay poisoned.
static void check_one_gemm(TestCtx *tc, CudaTestEnv *e, uint64_t *rng, const int64_t dims[4], bool ta, bool tb,
                           DType in, DType out, GemmAct act, bool bias, int64_t pad) {
    int64_t batch = dims[0], M = dims[1], N = dims[2], K = dims[3];
    DiceCtx *gpu = &e->gpu;
    Mat a, b, bs;
    CHECK_OK(make_mat(e, in, batch, ta ? K : M, ta ? M : K, pad, rng, &a, &tc->err));
    CHECK_OK(make_mat(e, in, batch, tb ? N : K, tb ? K : N, pad, rng, &b, &tc->err));
    CHECK_OK(make_mat(e, out, 1, 1, N, 0, rng, &bs, &tc->err));
    int64_t ldc = N + pad, c_n = batch * M * ldc;
    Tensor c_dev, c_ref, c_back;
    CHECK_OK(arena_tensor(&e->dev, &c_dev, out, 1, &c_n, &tc->err));
    CHECK_OK(arena_tensor(&e->host, &c_ref, DT_F32, 1, &c_n, &tc->err));
    CHECK(cudaMemset(c_dev.data, 0xff, tensor_nbytes(&c_dev)) == cudaSuccess);
    GemmArgs g = {.M = M, .N = N, .K = K, .batch = batch, .trans_a = ta, .trans_b = tb,
                  .a = a.dev.data, .b = b.dev.data, .c = c_dev.data, .bias = bias ? bs.dev.data : NULL,
                  .lda = a.ld, .ldb = b.ld, .ldc = ldc,
                  .stride_a = a.rows * a.ld, .stride_b = b.rows * b.ld, .stride_c = M * ldc,
                  .in = in, .out = out, .act = act};
    CHECK_OK(gemm_cuda(gpu->gemm, &g, gpu->stream, &tc->err));
    GemmArgs r = g;
    r.a = a.ref.data, r.b = b.ref.data, r.c = c_ref.data, r.bias = bias ? bs.ref.data : NULL;
    r.in = r.out = DT_F32;
    bool epilogue_after_rounding = out == DT_BF16 && (bias || act != GEMM_ACT_NONE) &&
                                   ((GemmHandle *)gpu->gemm)->backend == GEMM_BACKEND_CUBLASLT;
    if (epilogue_after_rounding) {
        // cuBLASLt's bf16 epilogue rounds A.B to bf16 before it adds the bias and applies the activation (H100,
        // 2026-11-26: a = 0.76953125, b = -0.65625, bias = 0.5078125, GELU-tanh gave 0.001955 = gelu(0.00390625),
        // where the exact pre-activation is 0.0028076 and A.B rounds to -0.50390625): under cancellation the
        // output is not within one rounding of the exact one. The reference does the same: A.B in f32, rounded
        // to bf16, then the epilogue as a GEMM with the identity (K = N), which adds the bias and applies act.
        r.bias = NULL, r.act = GEMM_ACT_NONE;
        CHECK_OK(gemm_cpu(&r, &tc->err));
        CHECK_OK(test_round_to(&e->cpu, &e->host, &c_ref, DT_BF16, NULL, &tc->err));
        Tensor eye, c_epi;
        int64_t nn = N * N;
        CHECK_OK(arena_tensor(&e->host, &eye, DT_F32, 1, &nn, &tc->err));
        CHECK_OK(arena_tensor(&e->host, &c_epi, DT_F32, 1, &c_n, &tc->err));
        memset(eye.data, 0, (size_t)nn * sizeof(float));
        for (int64_t i = 0; i < N; i++) ((float *)eye.data)[i * N + i] = 1.0f;
        GemmArgs epi = {.M = M, .N = N, .K = N, .batch = batch, .a = c_ref.data, .b = eye.data, .c = c_epi.data,
                        .bias = bias ? bs.ref.data : NULL, .lda = ldc, .ldb = N, .ldc = ldc, .stride_a = M * ldc,
                        .stride_b = 0, .stride_c = M * ldc, .in = DT_F32, .out = DT_F32, .act = act};
        CHECK_OK(gemm_cpu(&epi, &tc->err));
        c_ref = c_epi;
    } else {
        CHECK_OK(gemm_cpu(&r, &tc->err));
    }
    CHECK_OK(tensor_to(gpu, &e->host, &c_back, &c_dev, DT_F32, &tc->err));
    const float *cb = c_back.data;
    for (int64_t z = 0; z < batch; z++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t p = N; p < ldc; p++)
                CHECK_MSG(cb[(z * M + m) * ldc + p] != cb[(z * M + m) * ldc + p], "pad column written");
    float *got = malloc((size_t)(batch * M * N + 1) * sizeof(float));
    float *want = malloc((size_t)(batch * M * N + 1) * sizeof(float));
    gather(got, cb, batch, M, N, ldc);
    gather(want, c_ref.data, batch, M, N, ldc);
    double rel = test_rel_err_f32(got, want, (size_t)(batch * M * N));
    free(got);
    free(want);
    double tol = out == DT_BF16 ? 1e-2 : 1e-5;  // see the top of the file
    CHECK_MSG(rel <= tol,
              "%s: batch %lld M %lld N %lld K %lld trans_a %d trans_b %d %s -> %s act %s bias %d pad %lld: relative "
              "error %.3g > %.3g",
              gemm_backend_name(((GemmHandle *)gpu->gemm)->backend), (long long)batch, (long long)M, (long long)N,
              (long long)K, ta, tb, dtype_name(in), dtype_name(out), gemm_act_name(act), bias, (long long)pad, rel,
              tol);
}

// Ragged shapes (none a multiple of the tiles), every transpose pair and dtype pair, activations and
// bias in rotation, contiguous and padded (misaligned) pitches, batches; and one problem big enough
// for the 128 x 128 tile configuration.
static void check_engine(TestCtx *tc, GemmBackend backend) {
    CudaTestEnv e;
    CHECK_OK(cuda_env_init(&e, 1 << 22, 1 << 22, &tc->err));
    CHECK_OK(gemm_handle_set_backend(e.gpu.gemm, backend, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t shapes[5][4] = {{1, 37, 45, 29}, {1, 77, 64, 48}, {1, 1, 1, 1}, {3, 17, 9, 33}, {1, 130, 200, 70}};
    const DType pairs[3][2] = {{DT_BF16, DT_BF16}, {DT_BF16, DT_F32}, {DT_F32, DT_F32}};
    int n = 0;
    for (int si = 0; si < 5; si++)
        for (int t = 0; t < 4; t++)
            for (int pi = 0; pi < 3; pi++)
                for (int pad = 0; pad < 2; pad++, n++) {
                    cuda_env_reset(&e);
                    check_one_gemm(tc, &e, &rng, shapes[si], t & 1, t >> 1, pairs[pi][0], pairs[pi][1],
                                   all_acts[n % 4], (n / 4) % 2, pad ? 3 : 0);
                    if (tc->failed) return;
                }
    const int64_t large[4] = {140, 100, 120, 40};  // 140 blocks of 128 x 128
    cuda_env_reset(&e);
    check_one_gemm(tc, &e, &rng, large, false, true, DT_BF16, DT_BF16, GEMM_ACT_GELU_TANH, true, 0);
    cuda_env_free(&e);
}

// ---------------------------------------------------------------- the op layer
// Forward and every gradient of a trainable linear layer (and the forward of a frozen one without
// recording, the fused-epilogue path) on CUDA against the CPU in f32, for bf16 and f32 storage.
static void check_linear_op(TestCtx *tc, GemmBackend backend) {
    CudaTestEnv e;
    CHECK_OK(cuda_env_init(&e, 1 << 22, 1 << 22, &tc->err));
    CHECK_OK(gemm_handle_set_backend(e.gpu.gemm, backend, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t xshapes[2][3] = {{2, 37, 29}, {1, 77, 48}}, outs[2] = {45, 64};
    for (int si = 0; si < 2; si++)
        for (int dt = 0; dt < 2; dt++)
            for (int ai = 0; ai < 4; ai++)
                for (int record = 0; record < 2; record++) {
                    cuda_env_reset(&e);
                    DType dtype = dt ? DT_BF16 : DT_F32;
                    int64_t in_f = xshapes[si][2], out_f = outs[si], ws[2] = {out_f, in_f};
                    int64_t ys[3] = {xshapes[si][0], xshapes[si][1], out_f};
                    Tensor xr, xd, wr, wd, br, bd, dyr, dyd;
                    CHECK_OK(cuda_env_random(&e, 3, xshapes[si], -2, 2, dtype, &rng, &xr, &xd, &tc->err));
                    CHECK_OK(cuda_env_random(&e, 2, ws, -0.5f, 0.5f, dtype, &rng, &wr, &wd, &tc->err));
                    CHECK_OK(cuda_env_random(&e, 1, &out_f, -1, 1, dtype, &rng, &br, &bd, &tc->err));
                    CHECK_OK(cuda_env_random(&e, 3, ys, -1, 1, dtype, &rng, &dyr, &dyd, &tc->err));
                    Graph gc, gg;
                    CHECK_OK(graph_init(&gc, &e.cpu, &e.host, &tc->err));
                    CHECK_OK(graph_init(&gg, &e.gpu, &e.dev, &tc->err));
                    Var *cx, *cw, *cb, *gx, *gw, *gb, *cy, *gy;
                    CHECK_OK(graph_leaf(&gc, &cx, &xr, record, &tc->err));
                    CHECK_OK(graph_leaf(&gc, &cw, &wr, record, &tc->err));
                    CHECK_OK(graph_leaf(&gc, &cb, &br, record, &tc->err));
                    CHECK_OK(graph_leaf(&gg, &gx, &xd, record, &tc->err));
                    CHECK_OK(graph_leaf(&gg, &gw, &wd, record, &tc->err));
                    CHECK_OK(graph_leaf(&gg, &gb, &bd, record, &tc->err));
                    CHECK_OK(op_linear_trainable(&gc, &cy, cx, cw, cb, all_acts[ai], &tc->err));
                    if (record)
                        CHECK_OK(op_linear_trainable(&gg, &gy, gx, gw, gb, all_acts[ai], &tc->err));
                    else
                        CHECK_OK(op_linear(&gg, &gy, gx, &wd, &bd, all_acts[ai], &tc->err));
                    double tol = dt ? 2e-2 : 1e-5;  // see the top of the file
                    double rel, rel_y;
                    CHECK_OK(cuda_env_rel_err(&e, &gy->value, &cy->value, &rel, &tc->err));
                    rel_y = rel;
                    CHECK_MSG(rel <= tol, "%s linear %s act %s record %d: forward relative error %.3g",
                              gemm_backend_name(backend), dtype_name(dtype), gemm_act_name(all_acts[ai]), record, rel);
                    if (record && all_acts[ai] == GEMM_ACT_RELU) {
                        // Where the two forwards' ReLU masks differ, the pre-activation lies within rounding of 0
                        // (cuBLASLt's bf16 RELU_BIAS epilogue adds the bias after rounding the product): either
                        // mask is right. Check that each such output is that small, then give it no upstream
                        // gradient, so that the gradients compared do not depend on the ambiguous masks.
                        Tensor yh;
                        CHECK_OK(tensor_to(&e.gpu, &e.host, &yh, &gy->value, DT_F32, &tc->err));
                        const float *g = yh.data, *c = cy->value.data;
                        float *dy = dyr.data, ymax = 0;
                        int64_t n = tensor_numel(&yh), flips = 0;
                        for (int64_t i = 0; i < n; i++) ymax = fmaxf(ymax, fabsf(c[i]));
                        for (int64_t i = 0; i < n; i++)
                            if ((g[i] > 0) != (c[i] > 0)) {
                                CHECK_MSG(fmaxf(g[i], c[i]) <= ymax / 128, "%s linear %s relu shape %d: output %lld is "
                                          "%g on the GPU and %g on the CPU (largest %g): not a rounding of 0",
                                          gemm_backend_name(backend), dtype_name(dtype), si, (long long)i, g[i], c[i],
                                          ymax);
                                dy[i] = 0, flips++;
                            }
                        CHECK_MSG(flips * 100 <= n, "%s linear %s relu shape %d: %lld of %lld ReLU masks differ",
                                  gemm_backend_name(backend), dtype_name(dtype), si, (long long)flips, (long long)n);
                        if (flips) CHECK_OK(tensor_to(&e.gpu, &e.dev, &dyd, &dyr, dtype, &tc->err));
                    }
                    if (record) {
                        CHECK_OK(graph_backward_from(&gc, cy, &dyr, &tc->err));
                        CHECK_OK(graph_backward_from(&gg, gy, &dyd, &tc->err));
                        Var *cv[3] = {cx, cw, cb}, *gv[3] = {gx, gw, gb};
                        double rg[3];
                        for (int v = 0; v < 3; v++)
                            CHECK_OK(cuda_env_rel_err(&e, &gv[v]->grad, &cv[v]->grad, &rg[v], &tc->err));
                        CHECK_MSG(rg[0] <= tol && rg[1] <= tol && rg[2] <= tol,
                                  "%s linear %s act %s shape %d: gradient relative errors %.3g %.3g %.3g (forward "
                                  "%.3g)",
                                  gemm_backend_name(backend), dtype_name(dtype), gemm_act_name(all_acts[ai]), si,
                                  rg[0], rg[1], rg[2], rel_y);
                    }
                    graph_free(&gc);
                    graph_free(&gg);
                }
    cuda_env_free(&e);
}

// Batched matmul forward and both gradients, transpose_b off and on, bf16 and f32.
static void check_matmul_op(TestCtx *tc, GemmBackend backend) {
    CudaTestEnv e;
    CHECK_OK(cuda_env_init(&e, 1 << 22, 1 << 22, &tc->err));
    CHECK_OK(gemm_handle_set_backend(e.gpu.gemm, backend, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t B = 3, M = 37, K = 29, N = 45;
    for (int dt = 0; dt < 2; dt++)
        for (int tb = 0; tb < 2; tb++) {
            cuda_env_reset(&e);
            DType dtype = dt ? DT_BF16 : DT_F32;
            int64_t as[3] = {B, M, K}, bs[3] = {B, tb ? N : K, tb ? K : N}, cs[3] = {B, M, N};
            Tensor ar, ad, br, bd, dcr, dcd;
            CHECK_OK(cuda_env_random(&e, 3, as, -1, 1, dtype, &rng, &ar, &ad, &tc->err));
            CHECK_OK(cuda_env_random(&e, 3, bs, -1, 1, dtype, &rng, &br, &bd, &tc->err));
            CHECK_OK(cuda_env_random(&e, 3, cs, -1, 1, dtype, &rng, &dcr, &dcd, &tc->err));
            Graph gc, gg;
            CHECK_OK(graph_init(&gc, &e.cpu, &e.host, &tc->err));
            CHECK_OK(graph_init(&gg, &e.gpu, &e.dev, &tc->err));
            Var *ca, *cb, *ga, *gb, *cc, *gc_out;
            CHECK_OK(graph_leaf(&gc, &ca, &ar, true, &tc->err));
            CHECK_OK(graph_leaf(&gc, &cb, &br, true, &tc->err));
            CHECK_OK(graph_leaf(&gg, &ga, &ad, true, &tc->err));
            CHECK_OK(graph_leaf(&gg, &gb, &bd, true, &tc->err));
            CHECK_OK(op_matmul(&gc, &cc, ca, cb, tb, &tc->err));
            CHECK_OK(op_matmul(&gg, &gc_out, ga, gb, tb, &tc->err));
            CHECK_OK(graph_backward_from(&gc, cc, &dcr, &tc->err));
            CHECK_OK(graph_backward_from(&gg, gc_out, &dcd, &tc->err));
            const Tensor *got[3] = {&gc_out->value, &ga->grad, &gb->grad}, *want[3] = {&cc->value, &ca->grad, &cb->grad};
            double tol = dt ? 1e-2 : 1e-5;  // one bf16 rounding of each output; see the top of the file
            for (int v = 0; v < 3; v++) {
                double rel;
                CHECK_OK(cuda_env_rel_err(&e, got[v], want[v], &rel, &tc->err));
                CHECK_MSG(rel <= tol, "%s matmul %s transpose_b %d: output %d relative error %.3g",
                          gemm_backend_name(backend), dtype_name(dtype), tb, v, rel);
            }
            graph_free(&gc);
            graph_free(&gg);
        }
    cuda_env_free(&e);
}

DICE_CUDA_TEST(linear_custom_gemm_matches_cpu) { check_engine(tc, GEMM_BACKEND_CUSTOM); }
DICE_CUDA_TEST(linear_custom_op_matches_cpu) { check_linear_op(tc, GEMM_BACKEND_CUSTOM); }
DICE_CUDA_TEST(linear_custom_matmul_matches_cpu) { check_matmul_op(tc, GEMM_BACKEND_CUSTOM); }

DICE_CUDA_TEST(linear_cublaslt_matches_cpu) {
#ifdef DICE_EMU
    SKIP("cuBLASLt does not exist in the emulated CUDA build; make test-gpu runs this test on a GPU");
#else
    check_engine(tc, GEMM_BACKEND_CUBLASLT);
    if (tc->failed) return;
    check_linear_op(tc, GEMM_BACKEND_CUBLASLT);
    if (tc->failed) return;
    check_matmul_op(tc, GEMM_BACKEND_CUBLASLT);
#endif
}

// DICE_GEMM picks the engine when a CUDA context is created; the build decides which exist.
DICE_CUDA_TEST(linear_gemm_engine_choice) {
    const char *saved = getenv("DICE_GEMM");
    char saved_copy[64] = "";
    if (saved) snprintf(saved_copy, sizeof saved_copy, "%s", saved);
    DiceCtx gpu;
    unsetenv("DICE_GEMM");
    CHECK_OK(ctx_init_cuda(&gpu, 0, &tc->err));
    GemmBackend default_engine = ((GemmHandle *)gpu.gemm)->backend;
#ifdef DICE_EMU
    CHECK(default_engine == GEMM_BACKEND_CUSTOM);
    CHECK_FAILS_WITH(gemm_handle_set_backend(gpu.gemm, GEMM_BACKEND_CUBLASLT, &tc->err), "not part of this build");
    ctx_free(&gpu);
    setenv("DICE_GEMM", "cublaslt", 1);
    CHECK_FAILS_WITH(ctx_init_cuda(&gpu, 0, &tc->err), "DICE_GEMM=cublaslt");
#else
    CHECK(default_engine == GEMM_BACKEND_CUBLASLT);
    ctx_free(&gpu);
#endif
    setenv("DICE_GEMM", "custom", 1);
    CHECK_OK(ctx_init_cuda(&gpu, 0, &tc->err));
    CHECK(((GemmHandle *)gpu.gemm)->backend == GEMM_BACKEND_CUSTOM);
    ctx_free(&gpu);
    setenv("DICE_GEMM", "cublas", 1);
    CHECK_FAILS_WITH(ctx_init_cuda(&gpu, 0, &tc->err), "unknown GEMM engine");
    if (saved_copy[0])
        setenv("DICE_GEMM", saved_copy, 1);
    else
        unsetenv("DICE_GEMM");
}

// Empty inputs (no tokens, an empty batch): empty outputs, zero weight and bias gradients.
static void check_empty(TestCtx *tc, DiceCtx *ctx, Arena *mem, Arena *host, DType dtype) {
    int64_t xs[3] = {2, 0, 5}, ws[2] = {3, 5}, bs[1] = {3}, ys[3] = {2, 0, 3}, es[3] = {0, 4, 5};
    Tensor x, w, b, dy, e;
    CHECK_OK(arena_tensor(mem, &x, dtype, 3, xs, &tc->err));
    CHECK_OK(arena_tensor(mem, &w, dtype, 2, ws, &tc->err));
    CHECK_OK(arena_tensor(mem, &b, dtype, 1, bs, &tc->err));
    CHECK_OK(arena_tensor(mem, &dy, dtype, 3, ys, &tc->err));
    CHECK_OK(arena_tensor(mem, &e, dtype, 3, es, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, ctx, mem, &tc->err));
    Var *xv, *wv, *bv, *y, *ev, *c;
    CHECK_OK(graph_leaf(&g, &xv, &x, true, &tc->err));
    CHECK_OK(graph_leaf(&g, &wv, &w, true, &tc->err));
    CHECK_OK(graph_leaf(&g, &bv, &b, true, &tc->err));
    CHECK_OK(op_linear_trainable(&g, &y, xv, wv, bv, GEMM_ACT_GELU_ERF, &tc->err));
    CHECK(y->value.shape[1] == 0 && y->value.shape[2] == 3);
    CHECK_OK(graph_backward_from(&g, y, &dy, &tc->err));
    Tensor dw, db;
    CHECK_OK(tensor_to(ctx, host, &dw, &wv->grad, DT_F32, &tc->err));
    CHECK_OK(tensor_to(ctx, host, &db, &bv->grad, DT_F32, &tc->err));
    for (int i = 0; i < 15; i++) CHECK(((float *)dw.data)[i] == 0.0f);
    for (int i = 0; i < 3; i++) CHECK(((float *)db.data)[i] == 0.0f);
    CHECK_OK(graph_leaf(&g, &ev, &e, false, &tc->err));
    CHECK_OK(op_matmul(&g, &c, ev, ev, true, &tc->err));
    CHECK(c->value.shape[0] == 0 && c->value.shape[1] == 4 && c->value.shape[2] == 4);
    graph_free(&g);
}

DICE_TEST(linear_empty_inputs) {
    DiceCtx cpu;
    ctx_init_cpu(&cpu);
    Arena host;
    CHECK_OK(arena_init(&host, "host", DEV_CPU, 1 << 16, 0, &tc->err));
    check_empty(tc, &cpu, &host, &host, DT_F32);
    if (!tc->failed) check_empty(tc, &cpu, &host, &host, DT_F64);
    arena_free(&host);
}

DICE_CUDA_TEST(linear_cuda_empty_inputs) {
    CudaTestEnv e;
    CHECK_OK(cuda_env_init(&e, 1 << 16, 1 << 16, &tc->err));
    check_empty(tc, &e.gpu, &e.dev, &e.host, DT_F32);
    if (!tc->failed) check_empty(tc, &e.gpu, &e.dev, &e.host, DT_BF16);
    cuda_env_free(&e);
}
