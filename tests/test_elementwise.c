// tests/test_elementwise.c — activations, GEGLU, softmax, broadcast add / mul, scale and modulation: values against
// PyTorch, gradient checks in f64 on the CPU (every op, every broadcasting pattern the models use, each input with
// and without a gradient), and the CUDA kernels (emulated or real) against the CPU in f32 and bf16.
#include <stdio.h>
#include <stdlib.h>

#include "cuda_parity.h"
#include "gradcheck.h"
#include "kernels/elementwise.h"
#include "nn/cuda_api.h"
#include "nn/op_elementwise.h"
#include "nn/op_shape.h"

// ---------------------------------------------------------------- op functions (GradcheckFn)
static int unary_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    return op_unary(g, out, in[0], *(const EwUnary *)user, 0.75, 8, err);  // scale: y = 0.75 x + 8
}
static int geglu_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    return op_geglu(g, out, in[0], err);
}
static int softmax_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    return op_softmax(g, out, in[0], err);
}
static int binary_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    return *(const EwBinary *)user == EW_ADD ? op_add(g, out, in[0], in[1], err) : op_mul(g, out, in[0], in[1], err);
}
static int modulate_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    return op_modulate(g, out, in[0], in[1], *(const bool *)user ? in[2] : NULL, err);
}
// x (B, H, W, C) + temb (B, C) viewed as (B, 1, 1, C): the UNet ResNet block's time-embedding add.
static int time_add_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    const Tensor *t = &in[1]->value;
    int64_t shape[4] = {t->shape[0], 1, 1, t->shape[1]};
    Var *temb;
    DICE_TRY(op_reshape(g, &temb, in[1], 4, shape, err));
    return op_add(g, out, in[0], temb, err);
}

static const EwUnary unary_ops[] = {EW_GELU, EW_GELU_TANH, EW_QUICK_GELU, EW_SILU, EW_RELU, EW_AFFINE};
static const char *const unary_names[] = {"gelu", "gelu_tanh", "quick_gelu", "silu", "relu", "scale"};

// The broadcasting patterns of SD1.5 / SDXL / PixArt, and harder ones.
typedef struct BroadcastCase {
    const char *name;
    int a_ndim, b_ndim;
    int64_t a[5], b[5];
} BroadcastCase;
static const BroadcastCase broadcast_cases[] = {
    {"(B,N,C) + (C)", 3, 1, {2, 5, 6}, {6}},
    {"(B,N,C) + (B,1,C)", 3, 3, {2, 5, 6}, {2, 1, 6}},
    {"(B,H,W,C) + (B,1,1,C)", 4, 4, {2, 3, 4, 5}, {2, 1, 1, 5}},
    {"same shape", 3, 3, {2, 5, 3}, {2, 5, 3}},
    {"(3,1,7) + (1,4,1)", 3, 3, {3, 1, 7}, {1, 4, 1}},
    {"(1) + (2,3,5)", 1, 3, {1}, {2, 3, 5}},
    {"(2,3,1,4,5) + (3,4,1)", 5, 3, {2, 3, 1, 4, 5}, {3, 4, 1}},
};
enum { N_BROADCAST = sizeof broadcast_cases / sizeof broadcast_cases[0] };

// ---------------------------------------------------------------- values
// Reference values from PyTorch 2.x in float64 (F.gelu, F.gelu(approximate="tanh"), x * sigmoid(1.702 x), F.silu).
DICE_TEST(elementwise_activations_match_pytorch) {
    double x[4] = {-2, -0.5, 1, 3}, y[4];
    const double want[4][4] = {
        {-0.04550026389635842, -0.15426876936299344, 0.841344746068543, 2.99595030590511},
        {-0.04540230591222494, -0.15428599017485606, 0.8411919906082768, 2.996362607918227},
        {-0.06434137685579186, -0.1496115633936199, 0.8457957659328212, 2.981928690292214},
        {-0.2384058440442351, -0.1887703343990727, 0.7310585786300049, 2.8577223804672998},
    };
    for (int op = 0; op < 4; op++) {
        CHECK_OK(ew_unary_cpu(unary_ops[op], y, x, 4, 1, 0, DT_F64, &tc->err));
        for (int i = 0; i < 4; i++) CHECK_NEAR(y[i], want[op][i], 1e-15);
    }
    CHECK_OK(ew_unary_cpu(EW_RELU, y, x, 4, 1, 0, DT_F64, &tc->err));
    CHECK(y[0] == 0 && y[1] == 0 && y[2] == 1 && y[3] == 3);
    // softmax([1, 2, 3, -1000]) and a row with -inf (a masked position)
    double s[8] = {1, 2, 3, -1000, 0, -INFINITY, 0, -INFINITY}, p[8];
    CHECK_OK(ew_softmax_cpu(p, s, 2, 4, DT_F64, &tc->err));
    CHECK_NEAR(p[0], 0.09003057317038045, 1e-15);
    CHECK_NEAR(p[1], 0.2447284710547976, 1e-15);
    CHECK_NEAR(p[2], 0.6652409557748218, 1e-15);
    CHECK(p[3] == 0 && p[4] == 0.5 && p[5] == 0 && p[6] == 0.5 && p[7] == 0);
    // GEGLU: [h | gate] = [2, -1 | 1, 3] -> [2 gelu(1), -gelu(3)]
    double gx[4] = {2, -1, 1, 3}, gy[2];
    CHECK_OK(ew_geglu_cpu(gy, gx, 1, 2, DT_F64, &tc->err));
    CHECK_NEAR(gy[0], 2 * 0.841344746068543, 1e-15);
    CHECK_NEAR(gy[1], -2.99595030590511, 1e-14);
}

// ---------------------------------------------------------------- gradient checks (f64, CPU)
DICE_TEST(elementwise_gradcheck_unary) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 16, 0, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t shapes[2][3] = {{7, 1, 1}, {3, 5, 2}};
    bool req[1] = {true};
    for (int s = 0; s < 2; s++)
        for (int op = 0; op < 6; op++) {
            Tensor x;
            CHECK_OK(test_random_f64(&arena, &x, 3, shapes[s], -3, 3, &rng, &tc->err));
            CHECK(gradcheck(tc, unary_names[op], unary_fn, (void *)&unary_ops[op], &x, req, 1, 1e-6) == 0);
        }
    arena_free(&arena);
}

DICE_TEST(elementwise_gradcheck_geglu_softmax) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 16, 0, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t shapes[3][3] = {{1, 1, 2}, {3, 2, 10}, {2, 5, 14}};
    bool req[1] = {true};
    for (int s = 0; s < 3; s++) {
        Tensor x;
        CHECK_OK(test_random_f64(&arena, &x, 3, shapes[s], -3, 3, &rng, &tc->err));
        CHECK(gradcheck(tc, "geglu", geglu_fn, NULL, &x, req, 1, 1e-6) == 0);
        CHECK(gradcheck(tc, "softmax", softmax_fn, NULL, &x, req, 1, 1e-6) == 0);
    }
    arena_free(&arena);
}

DICE_TEST(elementwise_gradcheck_broadcast_add_mul) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 16, 0, &tc->err));
    uint64_t rng = tc->seed;
    const bool req[3][2] = {{true, true}, {true, false}, {false, true}};
    const EwBinary ops[2] = {EW_ADD, EW_MUL};
    for (int c = 0; c < N_BROADCAST; c++) {
        const BroadcastCase *bc = &broadcast_cases[c];
        Tensor in[2];
        CHECK_OK(test_random_f64(&arena, &in[0], bc->a_ndim, bc->a, -2, 2, &rng, &tc->err));
        CHECK_OK(test_random_f64(&arena, &in[1], bc->b_ndim, bc->b, -2, 2, &rng, &tc->err));
        for (int o = 0; o < 2; o++)
            for (int r = 0; r < 3; r++) {
                char what[96];
                snprintf(what, sizeof what, "%s %s, grads %d%d", ops[o] == EW_ADD ? "add" : "mul", bc->name,
                         req[r][0], req[r][1]);
                CHECK(gradcheck(tc, what, binary_fn, (void *)&ops[o], in, req[r], 2, 1e-6) == 0);
                // the operands swapped: broadcasting on the other side
                Tensor sw[2] = {in[1], in[0]};
                CHECK(gradcheck(tc, what, binary_fn, (void *)&ops[o], sw, req[r], 2, 1e-6) == 0);
            }
    }
    // (B, H, W, C) + (B, C) reshaped to (B, 1, 1, C)
    Tensor in[2];
    CHECK_OK(test_random_f64(&arena, &in[0], 4, (int64_t[]){2, 3, 3, 5}, -2, 2, &rng, &tc->err));
    CHECK_OK(test_random_f64(&arena, &in[1], 2, (int64_t[]){2, 5}, -2, 2, &rng, &tc->err));
    for (int r = 0; r < 3; r++) CHECK(gradcheck(tc, "time-embedding add", time_add_fn, NULL, in, req[r], 2, 1e-6) == 0);
    arena_free(&arena);
}

DICE_TEST(elementwise_gradcheck_modulate) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 16, 0, &tc->err));
    uint64_t rng = tc->seed;
    const bool req[4][3] = {{true, true, true}, {true, false, false}, {false, true, true}, {false, false, true}};
    const int64_t xs[3][4] = {{2, 5, 6}, {3, 2, 2, 5}, {2, 7}}, ms[3][4] = {{2, 1, 6}, {3, 1, 1, 5}, {2, 7}};
    const int nd[3] = {3, 4, 2};
    const bool with_shift = true, without_shift = false;
    for (int s = 0; s < 3; s++) {
        Tensor in[3];
        CHECK_OK(test_random_f64(&arena, &in[0], nd[s], xs[s], -2, 2, &rng, &tc->err));
        CHECK_OK(test_random_f64(&arena, &in[1], nd[s], ms[s], -1, 1, &rng, &tc->err));
        CHECK_OK(test_random_f64(&arena, &in[2], nd[s], ms[s], -1, 1, &rng, &tc->err));
        for (int r = 0; r < 4; r++) CHECK(gradcheck(tc, "modulate", modulate_fn, (void *)&with_shift, in, req[r], 3, 1e-6) == 0);
        CHECK(gradcheck(tc, "modulate without shift", modulate_fn, (void *)&without_shift, in, req[0], 2, 1e-6) == 0);
    }
    arena_free(&arena);
}

DICE_TEST(elementwise_rejects_bad_inputs) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 16, 0, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
    Tensor a, b, odd, half;
    CHECK_OK(arena_tensor(&arena, &a, DT_F32, 3, (int64_t[]){2, 5, 6}, &tc->err));
    CHECK_OK(arena_tensor(&arena, &b, DT_F32, 2, (int64_t[]){4, 6}, &tc->err));
    CHECK_OK(arena_tensor(&arena, &odd, DT_F32, 2, (int64_t[]){3, 5}, &tc->err));
    CHECK_OK(arena_tensor(&arena, &half, DT_BF16, 2, (int64_t[]){3, 5}, &tc->err));
    Var *va, *vb, *vodd, *vhalf, *out;
    CHECK_OK(graph_leaf(&g, &va, &a, true, &tc->err));
    CHECK_OK(graph_leaf(&g, &vb, &b, false, &tc->err));
    CHECK_OK(graph_leaf(&g, &vodd, &odd, false, &tc->err));
    CHECK_OK(graph_leaf(&g, &vhalf, &half, false, &tc->err));
    CHECK_FAILS_WITH(op_add(&g, &out, va, vb, &tc->err), "do not broadcast");
    CHECK_FAILS_WITH(op_geglu(&g, &out, vodd, &tc->err), "even last dim");
    CHECK_FAILS_WITH(op_gelu(&g, &out, vhalf, &tc->err), "f32, f64 supported");
    CHECK_FAILS_WITH(op_mul(&g, &out, vodd, vhalf, &tc->err), "f32, f64 supported");
    CHECK_FAILS_WITH(op_modulate(&g, &out, va, vb, NULL, &tc->err), "must be (B, 1, ..., 1, C)");
    graph_free(&g);
    arena_free(&arena);
}

// ---------------------------------------------------------------- CUDA against the CPU
// Tolerances (relative norm error): f32 — the CPU computes in double and rounds once, CUDA rounds a few times in
// fp32 (and uses CUDA's erff / expf / tanhf, within 2 ulp): ~1e-7, checked at 2e-6; sums over broadcast dims
// are fp32 sums of up to a few hundred terms: 1e-5. bf16 storage — inputs are the same bf16 values on both sides;
// outputs and gradients are rounded to 8 significant bits (2^-9 relative) on the CUDA side, and gradients that
// use a bf16-rounded intermediate (softmax's saved output) carry one more such rounding: 1e-2.
static const DType cuda_types[2] = {DT_F32, DT_BF16};
static double tol_for(DType dt, double f32_tol) { return dt == DT_F32 ? f32_tol : 1e-2; }

DICE_CUDA_TEST(elementwise_cuda_unary_matches_cpu) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 20, 0, &tc->err));
    uint64_t rng = tc->seed;
    // Ragged sizes: tail only (3 < one vector), vector body + tail. Few elements make the measure nearly pointwise,
    // and in the tails (x -> -6) fp32 rounding of the argument z of exp / erfc moves the output by |dz| |d ln f / dz|,
    // up to ~25 * 2^-23 (GELU-tanh's sigmoid(2 z), 2 z -> -25): f32 checked at 1e-5.
    const int64_t sizes[3] = {3, 1001, 4099};
    bool req[1] = {true};
    for (int t = 0; t < 2; t++)
        for (int s = 0; s < 3; s++)
            for (int op = 0; op < 6; op++) {
                arena_reset(&arena);
                Tensor x;
                CHECK_OK(test_random_f32(&arena, &x, 1, &sizes[s], -6, 6, &rng, &tc->err));
                CHECK(cuda_parity(tc, unary_names[op], unary_fn, (void *)&unary_ops[op], &x, req, 1, cuda_types[t],
                                  tol_for(cuda_types[t], 1e-5)) == 0);
            }
    arena_free(&arena);
}

// The unvectorised path: pointers one element past a 16-byte boundary, through the launchers.
DICE_CUDA_TEST(elementwise_cuda_unaligned_pointers) {
    enum { N = 999 };
    float *x = malloc(sizeof(float) * N), *dy = malloc(sizeof(float) * N), *want = malloc(sizeof(float) * N),
          *got = malloc(sizeof(float) * N);
    uint64_t rng = tc->seed;
    for (int i = 0; i < N; i++) {
        x[i] = test_rand_uniform(&rng, -6, 6);
        dy[i] = test_rand_uniform(&rng, -1, 1);
    }
    float *d;
    CHECK(cudaMalloc((void **)&d, sizeof(float) * (3 * N + 3)) == cudaSuccess);
    float *dx_in = d + 1, *ddy = d + N + 2, *dout = d + 2 * N + 3;
    CHECK(cudaMemcpy(dx_in, x, sizeof(float) * N, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemcpy(ddy, dy, sizeof(float) * N, cudaMemcpyHostToDevice) == cudaSuccess);
    for (int op = 0; op < 6; op++) {
        CHECK(cudaMemset(dout, 0xff, sizeof(float) * N) == cudaSuccess);
        CHECK_OK(ew_unary_cuda(unary_ops[op], dout, dx_in, N, 0.75, 8, DT_F32, NULL, &tc->err));
        CHECK(cudaMemcpy(got, dout, sizeof(float) * N, cudaMemcpyDeviceToHost) == cudaSuccess);
        CHECK_OK(ew_unary_cpu(unary_ops[op], want, x, N, 0.75, 8, DT_F32, &tc->err));
        CHECK_REL_ERR(got, want, N, 2e-6);
        CHECK(cudaMemset(dout, 0xff, sizeof(float) * N) == cudaSuccess);
        CHECK_OK(ew_unary_backward_cuda(unary_ops[op], dout, ddy, dx_in, N, 0.75, DT_F32, NULL, &tc->err));
        CHECK(cudaMemcpy(got, dout, sizeof(float) * N, cudaMemcpyDeviceToHost) == cudaSuccess);
        CHECK_OK(ew_unary_backward_cpu(unary_ops[op], want, dy, x, N, 0.75, DT_F32, &tc->err));
        CHECK_REL_ERR(got, want, N, 2e-6);
    }
    cudaFree(d);
    free(x);
    free(dy);
    free(want);
    free(got);
}

DICE_CUDA_TEST(elementwise_cuda_geglu_softmax_match_cpu) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 20, 0, &tc->err));
    uint64_t rng = tc->seed;
    // last dims: 2F = 64 / 80 (vectorised), 2F = 38 (F = 19, scalar), 77 (CLIP's tokens), 1
    const int64_t shapes[5][3] = {{2, 9, 64}, {3, 7, 80}, {1, 13, 38}, {2, 5, 77}, {3, 2, 1}};
    bool req[1] = {true};
    for (int t = 0; t < 2; t++)
        for (int s = 0; s < 5; s++) {
            arena_reset(&arena);
            Tensor x;
            CHECK_OK(test_random_f32(&arena, &x, 3, shapes[s], -4, 4, &rng, &tc->err));
            if (shapes[s][2] % 2 == 0)
                CHECK(cuda_parity(tc, "geglu", geglu_fn, NULL, &x, req, 1, cuda_types[t], tol_for(cuda_types[t], 2e-6)) == 0);
            CHECK(cuda_parity(tc, "softmax", softmax_fn, NULL, &x, req, 1, cuda_types[t], tol_for(cuda_types[t], 2e-6)) == 0);
        }
    // A long row (4096 keys, as attention scores at 64x64 would have), few rows.
    arena_reset(&arena);
    Tensor x;
    CHECK_OK(test_random_f32(&arena, &x, 2, (int64_t[]){3, 4096}, -8, 8, &rng, &tc->err));
    for (int t = 0; t < 2; t++)
        CHECK(cuda_parity(tc, "softmax 4096", softmax_fn, NULL, &x, req, 1, cuda_types[t], tol_for(cuda_types[t], 2e-6)) == 0);
    arena_free(&arena);
}

DICE_CUDA_TEST(elementwise_cuda_broadcast_matches_cpu) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 20, 0, &tc->err));
    uint64_t rng = tc->seed;
    // Model-sized patterns, scaled down: C = 40 (vectorised in f32 and bf16), C = 37 (scalar) ...
    const BroadcastCase cases[] = {
        {"(B,N,C) + (C)", 3, 1, {2, 33, 40}, {40}},
        {"(B,N,C) + (B,1,C)", 3, 3, {2, 31, 37}, {2, 1, 37}},
        {"(B,H,W,C) + (B,1,1,C)", 4, 4, {2, 5, 7, 48}, {2, 1, 1, 48}},
        {"same shape", 3, 3, {3, 17, 29}, {3, 17, 29}},
        {"(9,1,13) + (1,11,1)", 3, 3, {9, 1, 13}, {1, 11, 1}},
        {"(1) + (2,3,50)", 1, 3, {1}, {2, 3, 50}},
        {"(2,3,1,4,16) + (3,4,1)", 5, 3, {2, 3, 1, 4, 16}, {3, 4, 1}},
    };
    const bool req[3][2] = {{true, true}, {true, false}, {false, true}};
    const EwBinary ops[2] = {EW_ADD, EW_MUL};
    for (int t = 0; t < 2; t++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            arena_reset(&arena);
            Tensor in[2];
            // inputs of both signs with a positive mean: the gradients of broadcast operands are sums that must
            // not cancel for a relative comparison to mean something
            CHECK_OK(test_random_f32(&arena, &in[0], cases[c].a_ndim, cases[c].a, -1, 2, &rng, &tc->err));
            CHECK_OK(test_random_f32(&arena, &in[1], cases[c].b_ndim, cases[c].b, -1, 2, &rng, &tc->err));
            for (int o = 0; o < 2; o++)
                for (int r = 0; r < 3; r++) {
                    char what[96];
                    snprintf(what, sizeof what, "%s %s %s, grads %d%d", dtype_name(cuda_types[t]),
                             ops[o] == EW_ADD ? "add" : "mul", cases[c].name, req[r][0], req[r][1]);
                    CHECK(cuda_parity(tc, what, binary_fn, (void *)&ops[o], in, req[r], 2, cuda_types[t],
                                      tol_for(cuda_types[t], 1e-5)) == 0);
                }
        }
    arena_free(&arena);
}

DICE_CUDA_TEST(elementwise_cuda_modulate_matches_cpu) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 20, 0, &tc->err));
    uint64_t rng = tc->seed;
    const int64_t xs[3][3] = {{2, 37, 72}, {3, 19, 45}, {1, 300, 16}}, ms[3][3] = {{2, 1, 72}, {3, 1, 45}, {1, 1, 16}};
    const bool req[2][3] = {{true, true, true}, {true, false, false}};
    const bool with_shift = true;
    for (int t = 0; t < 2; t++)
        for (int s = 0; s < 3; s++)
            for (int r = 0; r < 2; r++) {
                arena_reset(&arena);
                Tensor in[3];
                CHECK_OK(test_random_f32(&arena, &in[0], 3, xs[s], -1, 2, &rng, &tc->err));  // sums: see above
                CHECK_OK(test_random_f32(&arena, &in[1], 3, ms[s], -1, 1, &rng, &tc->err));
                CHECK_OK(test_random_f32(&arena, &in[2], 3, ms[s], -1, 1, &rng, &tc->err));
                CHECK(cuda_parity(tc, "modulate", modulate_fn, (void *)&with_shift, in, req[r], 3, cuda_types[t],
                                  tol_for(cuda_types[t], 1e-5)) == 0);
            }
    arena_free(&arena);
}
