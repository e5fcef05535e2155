// nn/torch_rng.c — PyTorch's CPU generator (mt19937) and its randn / rand kernels, bit for bit
// (see nn/torch_rng.h for what torch does and which torch builds this matches).
#include "torch_rng.h"

#include <math.h>
#include <string.h>

// ---------------------------------------------------------------- mt19937 (32-bit, init_genrand)

void torch_gen_manual_seed(TorchGenerator *g, uint64_t seed) {
    g->seed = seed;
    g->state[0] = (uint32_t)seed;
    for (uint32_t j = 1; j < TORCH_MT_N; j++)
        g->state[j] = 1812433253u * (g->state[j - 1] ^ (g->state[j - 1] >> 30)) + j;
    g->next = TORCH_MT_N;
    g->has_cached_normal = 0;
    g->cached_normal = 0.0;
}

static void mt_twist(TorchGenerator *g) {
    enum { M = 397 };
    uint32_t *s = g->state;
    for (int i = 0; i < TORCH_MT_N; i++) {
        uint32_t y = (s[i] & 0x80000000u) | (s[(i + 1) % TORCH_MT_N] & 0x7fffffffu);
        s[i] = s[(i + M) % TORCH_MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    g->next = 0;
}

uint32_t torch_gen_random(TorchGenerator *g) {
    if (g->next >= TORCH_MT_N) mt_twist(g);
    uint32_t y = g->state[g->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t torch_gen_random64(TorchGenerator *g) {
    uint64_t hi = torch_gen_random(g);
    uint64_t lo = torch_gen_random(g);
    return (hi << 32) | lo;
}

// at::uniform_real_distribution<float>(0, 1): 24 random bits (the final "* (to - from) + from" is exact).
static float uniform_f32(TorchGenerator *g) { return (float)(torch_gen_random(g) & 0xffffffu) * 0x1p-24f; }

// at::uniform_real_distribution<double>(0, 1): 53 random bits of random64().
static double uniform_f64(TorchGenerator *g) {
    return (double)(torch_gen_random64(g) & ((UINT64_C(1) << 53) - 1)) * 0x1p-53;
}

// ---------------------------------------------------------------- ATen avx_mathfun.h, one lane
// The operation sequences of log256_ps and sincos256_ps. GCC compiles torch with FMA contraction: a
// multiply whose only use is an add or subtract becomes one FMA. fmaf stands exactly where the AVX2
// normal_kernel in torch 2.15.0's libtorch_cpu.so has vfmadd/vfnmadd/vfmsub (read off its disassembly;
// torch has no AVX512 build of this kernel, so that capability runs the same code); everything else is a
// separately rounded float operation. Without the fusions about 1 value in 100 differs in the last bit.

// log(x) for x in [2^-24, 1] (avx_mathfun's clamp to the smallest normal and its NaN for x <= 0 never
// apply to these inputs).
static float avx_mathfun_log(float x) {
    uint32_t bits = dice_f32_bits(x);
    int32_t exponent = (int32_t)(bits >> 23) - 0x7f;
    x = dice_bits_f32((bits & ~0x7f800000u) | 0x3f000000u);  // mantissa scaled to [0.5, 1)
    float e = (float)exponent + 1.0f;
    int below = x < 0.707106781186547524f;
    float tmp = below ? x : 0.0f;
    x = x - 1.0f;
    e = e - (below ? 1.0f : 0.0f);
    x = x + tmp;
    float z = x * x;
    float y = 7.0376836292e-2f;
    y = fmaf(y, x, -1.1514610310e-1f);
    y = fmaf(y, x, 1.1676998740e-1f);
    y = fmaf(y, x, -1.2420140846e-1f);
    y = fmaf(y, x, 1.4249322787e-1f);
    y = fmaf(y, x, -1.6668057665e-1f);
    y = fmaf(y, x, 2.0000714765e-1f);
    y = fmaf(y, x, -2.4999993993e-1f);
    y = fmaf(y, x, 3.3333331174e-1f);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(-z, 0.5f, y);
    return fmaf(e, 0.693359375f, x + y);
}

static float xor_sign(float v, uint32_t sign) { return dice_bits_f32(dice_f32_bits(v) ^ sign); }

// sin and cos of x >= 0 (sincos256_ps; its sign handling for negative x is not needed here).
static void avx_mathfun_sincos(float x, float *s, float *c) {
    float y = x * 1.27323954473516f;                          // x * 4 / pi
    int32_t j = ((int32_t)y + 1) & ~1;                         // truncation, then round up to even
    y = (float)j;
    uint32_t sign_sin = (uint32_t)(j & 4) << 29;
    uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    int sin_poly = (j & 2) == 0;                               // true: sin from the sine polynomial
    x = fmaf(y, -0.78515625f, x);                              // x - y pi/4 in three parts
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    float z = x * x;
    float yc = 2.443315711809948e-5f;                          // cosine polynomial
    yc = fmaf(yc, z, -1.388731625493765e-3f);
    yc = fmaf(yc, z, 4.166664568298827e-2f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    float ys = -1.9515295891e-4f;                              // sine polynomial
    ys = fmaf(ys, z, 8.3321608736e-3f);
    ys = fmaf(ys, z, -1.6666654611e-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    // The kernel's blend, kept operation for operation (it decides the sign of zeros).
    float sin2 = sin_poly ? ys : 0.0f;
    float sin1 = sin_poly ? 0.0f : yc;
    float rest_s = ys - sin2;
    float rest_c = yc - sin1;
    *s = xor_sign(sin1 + sin2, sign_sin);
    *c = xor_sign(rest_c + rest_s, sign_cos);
}

// NormalFill16<float> of DistributionTemplates.h (AVX2 specialisation) on 16 uniforms, mean 0, std 1.
static void normal_fill_16(float d[16]) {
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(-2.0f * avx_mathfun_log(u1));
        float s, c;
        avx_mathfun_sincos(two_pi * u2, &s, &c);
        d[j] = fmaf(radius * c, 1.0f, 0.0f);                   // * std + mean (turns -0 into +0)
        d[j + 8] = fmaf(radius * s, 1.0f, 0.0f);
    }
}

// at::normal_distribution<double>(0, 1) with the generator's cached second value.
static double normal_f64(TorchGenerator *g) {
    double v;
    if (g->has_cached_normal) {
        g->has_cached_normal = 0;
        v = g->cached_normal;
    } else {
        double u1 = uniform_f64(g);
        double u2 = uniform_f64(g);
        double r = sqrt(-2.0 * log1p(-u2));
        double theta = 2.0 * 3.14159265358979323846 * u1;
        g->cached_normal = r * sin(theta);
        g->has_cached_normal = 1;
        v = r * cos(theta);
    }
    return v * 1.0 + 0.0;                                      // * std + mean (turns -0 into +0)
}

// ---------------------------------------------------------------- randn, rand

static void store(DType dtype, void *out, size_t i, float v) {
    if (dtype == DT_F32) ((float *)out)[i] = v;
    else if (dtype == DT_F16) ((uint16_t *)out)[i] = dice_f32_to_f16(v);
    else ((uint16_t *)out)[i] = dice_f32_to_bf16(v);
}

int torch_randn(TorchGenerator *g, DType dtype, void *out, size_t n, DiceError *err) {
    DICE_CHECK(err, dtype == DT_F32 || dtype == DT_F16 || dtype == DT_BF16,
               "torch_randn: dtype %s not supported (f32, f16, bf16)", dtype_name(dtype));
    if (n < 16) {
        for (size_t i = 0; i < n; i++) store(dtype, out, i, (float)normal_f64(g));
        return 0;
    }
    if (dtype == DT_F32) {
        // normal_fill<float>: all uniforms first, in place; then the 16-chunks; then the tail again.
        float *x = (float *)out;
        for (size_t i = 0; i < n; i++) x[i] = uniform_f32(g);
        for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16(x + i);
        if (n % 16 != 0) {
            for (size_t i = n - 16; i < n; i++) x[i] = uniform_f32(g);
            normal_fill_16(x + n - 16);
        }
        return 0;
    }
    // normal_fill<Half / BFloat16>: chunk by chunk through a float buffer, then the tail.
    float buf[16];
    for (size_t i = 0; i + 16 <= n; i += 16) {
        for (int j = 0; j < 16; j++) buf[j] = uniform_f32(g);
        normal_fill_16(buf);
        for (int j = 0; j < 16; j++) store(dtype, out, i + j, buf[j]);
    }
    if (n % 16 != 0) {
        for (int j = 0; j < 16; j++) buf[j] = uniform_f32(g);
        normal_fill_16(buf);
        for (int j = 0; j < 16; j++) store(dtype, out, n - 16 + j, buf[j]);
    }
    return 0;
}

int torch_rand(TorchGenerator *g, DType dtype, void *out, size_t n, DiceError *err) {
    DICE_CHECK(err, dtype == DT_F32 || dtype == DT_F16 || dtype == DT_BF16,
               "torch_rand: dtype %s not supported (f32, f16, bf16)", dtype_name(dtype));
    const uint16_t one = dtype == DT_F16 ? 0x3c00u : 0x3f80u;  // 1.0 in f16 / bf16
    for (size_t i = 0; i < n; i++) {
        store(dtype, out, i, uniform_f32(g));
        // uniform_kernel: a value rounded up to the upper bound 1.0 becomes the lower bound 0.0
        if (dtype != DT_F32 && ((uint16_t *)out)[i] == one) ((uint16_t *)out)[i] = 0;
    }
    return 0;
}
