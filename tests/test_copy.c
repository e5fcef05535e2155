// tests/test_copy.c — dtype conversions and tensor copies on the CPU and (emulated or real) CUDA.
#include <stdlib.h>

#include "cuda_parity.h"
#include "nn/arena.h"
#include "nn/convert_elem.h"
#include "nn/cuda_api.h"
#include "nn/tensor_copy.h"

// Reference for f32 -> bf16: the nearer of the two bf16 neighbours, ties to the even one.
static uint16_t bf16_reference(float f) {
    uint32_t u = dice_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0;  // NaN handled separately
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    if ((u & 0xffffu) == 0) return lo;
    // Past the largest finite bf16 the next value up is infinity, which IEEE rounding treats as 2^128.
    double hi_val = (lo & 0x7fffu) == 0x7f7fu ? copysign(ldexp(1.0, 128), f) : dice_bf16_to_f32(hi);
    double dl = fabs((double)f - dice_bf16_to_f32(lo)), dh = fabs(hi_val - f);
    if (dl < dh) return lo;
    if (dh < dl) return hi;
    return (lo & 1) ? hi : lo;
}

DICE_TEST(convert_f16_bf16_match_ieee_rounding) {
    // Every f16 bit pattern: f16 -> f32 -> f16 round trip and agreement with the compiler's _Float16.
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dice_f16_to_f32((uint16_t)h);
        _Float16 ref;
        uint16_t hb = (uint16_t)h;
        memcpy(&ref, &hb, 2);
        if (f != f) {
            CHECK_MSG((float)ref != (float)ref, "f16 %04x: NaN expected", h);
            CHECK_MSG((dice_f32_to_f16(f) & 0x7c00u) == 0x7c00u && (dice_f32_to_f16(f) & 0x3ffu), "NaN lost");
            continue;
        }
        CHECK_MSG(f == (float)ref, "f16 %04x -> %g, expected %g", h, f, (double)(float)ref);
        CHECK_MSG(dice_f32_to_f16(f) == h, "f16 %04x does not round trip", h);
    }
    // Random and adversarial f32 values -> f16 against _Float16 (IEEE round to nearest even).
    uint64_t rng = tc->seed;
    for (int i = 0; i < 4000000; i++) {
        uint32_t u = (uint32_t)test_rand_u64(&rng);
        if (i & 1) u = (u & 0x8fffffffu) | 0x30000000u;  // concentrate on the f16 range and subnormals
        if (i % 7 == 0) u = (u & 0xffffe000u) | 0x1000u;  // exact ties
        float f = dice_bits_f32(u);
        if (f != f) continue;
        _Float16 ref = (_Float16)f;
        uint16_t rb;
        memcpy(&rb, &ref, 2);
        CHECK_MSG(dice_f32_to_f16(f) == rb, "f32 %08x -> f16 %04x, expected %04x", u, dice_f32_to_f16(f), rb);
        uint16_t b = dice_f32_to_bf16(f);
        CHECK_MSG(b == bf16_reference(f), "f32 %08x -> bf16 %04x, expected %04x", u, b, bf16_reference(f));
    }
    CHECK(dice_f32_to_bf16(dice_bits_f32(0x7fc00001u)) != 0x7f80u);  // NaN stays NaN
    CHECK(dice_f32_to_bf16(dice_bits_f32(0x7f7fffffu)) == 0x7f80u);  // FLT_MAX rounds to infinity
    CHECK(dice_f32_to_f16(65520.0f) == 0x7c00u && dice_f32_to_f16(65519.0f) == 0x7bffu);
}

DICE_TEST(convert_float_to_int_saturates_and_truncates) {
    float src[8] = {1.9f, -1.9f, 300.0f, -300.0f, NAN, INFINITY, -INFINITY, 0.5f};
    uint8_t u8[8];
    int8_t i8[8];
    int32_t i32[8];
    for (int i = 0; i < 8; i++) {
        dice_convert_elem(u8, DT_U8, i, src, DT_F32, i);
        dice_convert_elem(i8, DT_I8, i, src, DT_F32, i);
        dice_convert_elem(i32, DT_I32, i, src, DT_F32, i);
    }
    const uint8_t want_u8[8] = {1, 0, 255, 0, 0, 255, 0, 0};
    const int8_t want_i8[8] = {1, -1, 127, -128, 0, 127, -128, 0};
    const int32_t want_i32[8] = {1, -1, 300, -300, 0, 2147483647, -2147483647 - 1, 0};
    CHECK(!memcmp(u8, want_u8, 8) && !memcmp(i8, want_i8, 8) && !memcmp(i32, want_i32, sizeof i32));
    int64_t wide[3] = {300, -1, 1LL << 40};
    int16_t narrow[3];
    uint8_t flags[3];
    for (int i = 0; i < 3; i++) {
        dice_convert_elem(narrow, DT_I16, i, wide, DT_I64, i);
        dice_convert_elem(flags, DT_BOOL, i, wide, DT_I64, i);
    }
    CHECK(narrow[0] == 300 && narrow[1] == -1 && narrow[2] == 0 && flags[0] == 1 && flags[2] == 1);
}

DICE_TEST(copy_cpu_strided_with_conversion) {
    enum { B = 3, H = 5, W = 7 };
    float src[B * H * W];
    uint64_t rng = tc->seed;
    for (int i = 0; i < B * H * W; i++) src[i] = test_rand_uniform(&rng, -4, 4);
    Tensor s, sv, d;
    int64_t shape[3] = {B, H, W};
    CHECK_OK(tensor_wrap(&s, src, DT_F32, DEV_CPU, 3, shape, &tc->err));
    int perm[3] = {2, 0, 1};  // (W, B, H) view
    CHECK_OK(tensor_permute(&sv, &s, perm, &tc->err));
    uint16_t out[W * B * H];
    memset(out, 0xff, sizeof out);
    CHECK_OK(tensor_wrap(&d, out, DT_BF16, DEV_CPU, 3, sv.shape, &tc->err));
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    CHECK_OK(tensor_copy(&ctx, &d, &sv, &tc->err));
    for (int w = 0; w < W; w++)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                CHECK(out[(w * B + b) * H + h] == dice_f32_to_bf16(src[(b * H + h) * W + w]));
    Tensor wrong;
    CHECK_OK(tensor_wrap(&wrong, out, DT_BF16, DEV_CPU, 3, shape, &tc->err));
    CHECK_FAILS_WITH(tensor_copy(&ctx, &wrong, &sv, &tc->err), "shape mismatch");
    Tensor f8;
    CHECK_OK(tensor_wrap(&f8, out, DT_F8_E4M3, DEV_CPU, 3, sv.shape, &tc->err));
    CHECK_FAILS_WITH(tensor_copy(&ctx, &f8, &sv, &tc->err), "not supported");
}

// Fill a CPU tensor's memory with random values of its dtype.
static void fill_random(void *p, DType dt, int64_t n, uint64_t *rng) {
    for (int64_t i = 0; i < n; i++) {
        double v = test_rand_uniform(rng, -300, 300);
        if (i % 17 == 0) v = NAN;
        if (i % 19 == 0) v = 1e30;
        if (dice_dtype_is_int(dt)) dice_store_i64(p, dt, i, (int64_t)test_rand_u64(rng));
        else dice_store_f64(p, dt, i, v);
    }
}

// CUDA strided conversion kernel against the CPU copy, bitwise, for every dtype pair, on ragged
// shapes with permuted and narrowed sources; destination memory poisoned first.
DICE_CUDA_TEST(copy_cuda_matches_cpu_bitwise) {
    CudaTestEnv e;
    CHECK_OK(cuda_env_init(&e, 1 << 20, 1 << 20, &tc->err));
    const DType types[] = {DT_F64, DT_F32, DT_F16, DT_BF16, DT_I64, DT_I32, DT_I16, DT_I8, DT_U8, DT_BOOL};
    const int ntypes = (int)(sizeof types / sizeof types[0]);
    const int64_t shapes[3][4] = {{1, 1, 1, 1}, {3, 5, 7, 2}, {2, 33, 1, 17}};
    uint64_t rng = tc->seed;
    for (int si = 0; si < 3; si++)
        for (int a = 0; a < ntypes; a++)
            for (int b = 0; b < ntypes; b++) {
                cuda_env_reset(&e);
                Tensor hs, ds, dsv, dd, hd_gpu, hd_cpu, hsv;
                int64_t big[4];
                for (int k = 0; k < 4; k++) big[k] = shapes[si][k] + (k == 3);  // one extra column
                CHECK_OK(arena_tensor(&e.host, &hs, types[a], 4, big, &tc->err));
                fill_random(hs.data, types[a], tensor_numel(&hs), &rng);
                CHECK_OK(arena_tensor(&e.dev, &ds, types[a], 4, big, &tc->err));
                CHECK_OK(tensor_copy(&e.gpu, &ds, &hs, &tc->err));  // host -> device, same dtype
                int perm[4] = {1, 3, 0, 2};
                CHECK_OK(tensor_narrow(&dsv, &ds, 3, 1, shapes[si][3], &tc->err));
                CHECK_OK(tensor_permute(&dsv, &dsv, perm, &tc->err));
                CHECK_OK(tensor_narrow(&hsv, &hs, 3, 1, shapes[si][3], &tc->err));
                CHECK_OK(tensor_permute(&hsv, &hsv, perm, &tc->err));
                CHECK_OK(arena_tensor(&e.dev, &dd, types[b], 4, dsv.shape, &tc->err));
                CHECK(cudaMemset(dd.data, 0xa5, tensor_nbytes(&dd)) == cudaSuccess);
                CHECK_OK(tensor_copy(&e.gpu, &dd, &dsv, &tc->err));  // the kernel under test
                CHECK_OK(arena_tensor(&e.host, &hd_gpu, types[b], 4, dsv.shape, &tc->err));
                CHECK_OK(tensor_copy(&e.gpu, &hd_gpu, &dd, &tc->err));  // device -> host
                CHECK_OK(arena_tensor(&e.host, &hd_cpu, types[b], 4, dsv.shape, &tc->err));
                memset(hd_cpu.data, 0x5a, tensor_nbytes(&hd_cpu));
                CHECK_OK(tensor_copy(&e.cpu, &hd_cpu, &hsv, &tc->err));
                CHECK_MSG(!memcmp(hd_gpu.data, hd_cpu.data, tensor_nbytes(&hd_cpu)),
                          "shape %d: %s -> %s differs between CUDA and CPU", si, dtype_name(types[a]),
                          dtype_name(types[b]));
            }
    // Crossing devices with a conversion goes through tensor_to.
    cuda_env_reset(&e);
    float vals[5] = {1.5f, -2.25f, 3.0f, 1e-3f, 65504.0f};
    Tensor h, d, back;
    int64_t n5[1] = {5};
    CHECK_OK(tensor_wrap(&h, vals, DT_F32, DEV_CPU, 1, n5, &tc->err));
    CHECK_OK(tensor_to(&e.gpu, &e.dev, &d, &h, DT_F16, &tc->err));
    CHECK(d.device == DEV_CUDA && d.dtype == DT_F16);
    CHECK_OK(tensor_to(&e.gpu, &e.host, &back, &d, DT_F32, &tc->err));
    for (int i = 0; i < 5; i++) CHECK(((float *)back.data)[i] == dice_f16_to_f32(dice_f32_to_f16(vals[i])));
    Tensor wrong;
    CHECK_OK(arena_tensor(&e.dev, &wrong, DT_F16, 1, n5, &tc->err));
    CHECK_FAILS_WITH(tensor_copy(&e.gpu, &wrong, &h, &tc->err), "same dtype");
    cuda_env_free(&e);
}
