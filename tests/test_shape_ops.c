// tests/test_shape_ops.c — concat / split along channels, nearest 2x upsampling and the view ops: values, gradient
// checks in f64 on the CPU, and the CUDA kernels (emulated or real) against the CPU in f32 and bf16.
#include <stdio.h>

#include "cuda_parity.h"
#include "gradcheck.h"
#include "nn/op_elementwise.h"
#include "nn/op_shape.h"

static int concat_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    return op_concat(g, out, in, *(const int *)user, err);
}

// Split x (..., 10) into parts of 3, 5 and 2 and return concat(part 2, part 0): part 1's columns get no gradient.
static int split_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    Var *parts[3];
    DICE_TRY(op_split(g, parts, in[0], 3, (const int64_t[]){3, 5, 2}, err));
    Var *pick[2] = {parts[2], parts[0]};
    return op_concat(g, out, pick, 2, err);
}

static int upsample_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    return op_upsample2x(g, out, in[0], err);
}

// x (2, 3, 4, 5) -> reshape (6, 4, 5) -> permute (4, 6, 5) -> contiguous -> * x viewed the same way.
static int views_fn(Graph *g, Var *const *in, Var **out, void *user, DiceError *err) {
    Var *r, *p, *c;
    DICE_TRY(op_reshape(g, &r, in[0], 3, (const int64_t[]){-1, 4, 5}, err));
    DICE_TRY(op_permute(g, &p, r, (const int[]){1, 0, 2}, err));
    DICE_TRY(op_contiguous(g, &c, p, err));
    return op_mul(g, out, c, c, err);
}

DICE_TEST(shape_ops_values) {
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    Arena arena;
    CHECK_OK(arena_init(&arena, "step", DEV_CPU, 1 << 16, 0, &tc->err));
    Graph g;
    CHECK_OK(graph_init(&g, &ctx, &arena, &tc->err));
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};  // a (2, 2), b (2, 1)
    Tensor ta, tb;
    CHECK_OK(tensor_wrap(&ta, a, DT_F32, DEV_CPU, 2, (const int64_t[]){2, 2}, &tc->err));
    CHECK_OK(tensor_wrap(&tb, b, DT_F32, DEV_CPU, 2, (const int64_t[]){2, 1}, &tc->err));
    Var *in[2], *cat, *parts[2], *up;
    CHECK_OK(graph_leaf(&g, &in[0], &ta, false, &tc->err));
    CHECK_OK(graph_leaf(&g, &in[1], &tb, false, &tc->err));
    CHECK_OK(op_concat(&g, &cat, in, 2, &tc->err));
    const float want_cat[6] = {1, 2, 5, 3, 4, 6};
    CHECK(cat->value.shape[1] == 3 && !memcmp(cat->value.data, want_cat, sizeof want_cat));
    CHECK_OK(op_split(&g, parts, cat, 2, (const int64_t[]){1, 2}, &tc->err));
    const float want_p0[2] = {1, 3}, want_p1[4] = {2, 5, 4, 6};
    CHECK(!memcmp(parts[0]->value.data, want_p0, sizeof want_p0) && !memcmp(parts[1]->value.data, want_p1, sizeof want_p1));
    // (1, 1, 2, 2) image [[1 2], [3 4]] channels: pixel (0, 0) = (1, 2), pixel (0, 1) = (3, 4)
    Tensor img;
    CHECK_OK(tensor_wrap(&img, a, DT_F32, DEV_CPU, 4, (const int64_t[]){1, 1, 2, 2}, &tc->err));
    Var *vi;
    CHECK_OK(graph_leaf(&g, &vi, &img, false, &tc->err));
    CHECK_OK(op_upsample2x(&g, &up, vi, &tc->err));
    const float want_up[16] = {1, 2, 1, 2, 3, 4, 3, 4, 1, 2, 1, 2, 3, 4, 3, 4};
    CHECK(up->value.shape[1] == 2 && up->value.shape[2] == 4 && !memcmp(up->value.data, want_up, sizeof want_up));
    // errors
    Var *bad;
    CHECK_FAILS_WITH(op_concat(&g, &bad, (Var *[]){in[0], vi}, 2, &tc->err), "outside the last dim");
    CHECK_FAILS_WITH(op_split(&g, parts, cat, 2, (const int64_t[]){1, 1}, &tc->err), "sum to 2");
    CHECK_FAILS_WITH(op_upsample2x(&g, &bad, cat, &tc->err), "not NHWC");
    CHECK_FAILS_WITH(op_reshape(&g, &bad, cat, 1, (const int64_t[]){5}, &tc->err), "reshape");
    graph_free(&g);
    arena_free(&arena);
}

DICE_TEST(shape_ops_gradcheck) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 16, 0, &tc->err));
    uint64_t rng = tc->seed;
    // concat of NHWC skips: (2, 3, 2, C) with C = 3, 5, 1, 4
    Tensor in[4];
    const int64_t cs[4] = {3, 5, 1, 4};
    for (int i = 0; i < 4; i++)
        CHECK_OK(test_random_f64(&arena, &in[i], 4, (const int64_t[]){2, 3, 2, cs[i]}, -1, 1, &rng, &tc->err));
    const bool all[4] = {true, true, true, true}, second[4] = {false, true, false, true}, first[4] = {true, false};
    const int two = 2, three = 3, four = 4;
    CHECK(gradcheck(tc, "concat 2", concat_fn, (void *)&two, in, all, 2, 1e-6) == 0);
    CHECK(gradcheck(tc, "concat 2, first only", concat_fn, (void *)&two, in, first, 2, 1e-6) == 0);
    CHECK(gradcheck(tc, "concat 3", concat_fn, (void *)&three, in, second, 3, 1e-6) == 0);
    CHECK(gradcheck(tc, "concat 4", concat_fn, (void *)&four, in, all, 4, 1e-6) == 0);
    Tensor x;
    CHECK_OK(test_random_f64(&arena, &x, 3, (const int64_t[]){2, 3, 10}, -1, 1, &rng, &tc->err));
    CHECK(gradcheck(tc, "split", split_fn, NULL, &x, all, 1, 1e-6) == 0);
    CHECK_OK(test_random_f64(&arena, &x, 4, (const int64_t[]){2, 3, 2, 5}, -1, 1, &rng, &tc->err));
    CHECK(gradcheck(tc, "upsample2x", upsample_fn, NULL, &x, all, 1, 1e-6) == 0);
    CHECK_OK(test_random_f64(&arena, &x, 4, (const int64_t[]){2, 3, 4, 5}, -1, 1, &rng, &tc->err));
    CHECK(gradcheck(tc, "reshape, permute, contiguous", views_fn, NULL, &x, all, 1, 1e-6) == 0);
    arena_free(&arena);
}

// Tolerances: the copies are exact (0); upsample's gradient sums 4 values — in fp32 a few roundings (2e-7
// relative, checked at 1e-6), in bf16 one rounding of the sum to 8 bits (2^-9, checked at 1e-2).
static const DType cuda_types[2] = {DT_F32, DT_BF16};

DICE_CUDA_TEST(shape_ops_cuda_matches_cpu) {
    Arena arena;
    CHECK_OK(arena_init(&arena, "inputs", DEV_CPU, 1 << 20, 0, &tc->err));
    uint64_t rng = tc->seed;
    // (B, H, W, C1) + (B, H, W, C2): vectorised (C multiples of 8) and scalar (ragged) channel counts
    const int64_t concat_c[3][2] = {{24, 40}, {7, 5}, {16, 3}};
    const bool both[2] = {true, true}, one[1] = {true}, second[2] = {false, true};
    const int two = 2;
    for (int t = 0; t < 2; t++) {
        for (int s = 0; s < 3; s++) {
            arena_reset(&arena);
            Tensor in[2];
            for (int i = 0; i < 2; i++)
                CHECK_OK(test_random_f32(&arena, &in[i], 4, (const int64_t[]){2, 5, 7, concat_c[s][i]}, -2, 2, &rng,
                                         &tc->err));
            CHECK(cuda_parity(tc, "concat", concat_fn, (void *)&two, in, both, 2, cuda_types[t], 0) == 0);
            CHECK(cuda_parity(tc, "concat, second only", concat_fn, (void *)&two, in, second, 2, cuda_types[t], 0) == 0);
        }
        arena_reset(&arena);
        Tensor x;
        CHECK_OK(test_random_f32(&arena, &x, 3, (const int64_t[]){3, 37, 10}, -2, 2, &rng, &tc->err));
        CHECK(cuda_parity(tc, "split", split_fn, NULL, &x, one, 1, cuda_types[t], 0) == 0);
        const int64_t up_c[3] = {40, 13, 8};
        for (int s = 0; s < 3; s++) {
            arena_reset(&arena);
            CHECK_OK(test_random_f32(&arena, &x, 4, (const int64_t[]){2, 5, 3, up_c[s]}, -2, 2, &rng, &tc->err));
            CHECK(cuda_parity(tc, "upsample2x", upsample_fn, NULL, &x, one, 1, cuda_types[t],
                              cuda_types[t] == DT_F32 ? 1e-6 : 1e-2) == 0);
        }
        arena_reset(&arena);
        CHECK_OK(test_random_f32(&arena, &x, 4, (const int64_t[]){2, 3, 4, 5}, -2, 2, &rng, &tc->err));
        CHECK(cuda_parity(tc, "views", views_fn, NULL, &x, one, 1, cuda_types[t], cuda_types[t] == DT_F32 ? 1e-6 : 1e-2) ==
              0);
    }
    arena_free(&arena);
}
