// tests/test_rng.c — Philox4x32-10 on the CPU (nn/philox.h): the block function against the published
// known answers, pinned outputs of the stream definition, accuracy of its log / sin / cos, statistics of
// the uniform and normal streams, and fills of any slice equal to the same slice of a larger fill.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/philox.h"
#include "test.h"

// Random123's known-answer vectors for philox4x32 with 10 rounds (file examples/kat_vectors of the
// Random123 distribution, DEShawResearch/random123; columns: counter[4], key[2], expected output[4]).
DICE_TEST(philox_known_answers) {
    static const uint32_t kat[3][10] = {
        {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
         0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        PhiloxU32x4 ctr = {{kat[i][0], kat[i][1], kat[i][2], kat[i][3]}};
        PhiloxU32x4 out = philox4x32_10(ctr, kat[i][4], kat[i][5]);
        for (int j = 0; j < 4; j++)
            CHECK_MSG(out.v[j] == kat[i][6 + j], "vector %d word %d: %08x, expected %08x", i, j, out.v[j],
                      kat[i][6 + j]);
    }
}

static uint64_t fnv1a_bits(const float *x, size_t n) {
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        uint32_t b = dice_f32_bits(x[i]);
        for (int k = 0; k < 4; k++) h = (h ^ ((b >> (8 * k)) & 0xffu)) * 0x100000001b3u;
    }
    return h;
}

// The streams' definition, pinned: these bits must never change (saved runs and checkpoints replay
// them), and a compiler fusing the transform's multiplies and adds into FMAs changes them.
DICE_TEST(philox_stream_pinned_values) {
    static const uint32_t uniform_bits[8] = {0x3f385022u, 0x3f458cb0u, 0x3da53d00u, 0x3ef509feu,
                                             0x3f2dca14u, 0x3ea47c1au, 0x3eca8028u, 0x3f3299dau};
    static const uint32_t normal_bits[8] = {0xbe3a5651u, 0x3dc670c7u, 0x3fa8de27u, 0x3e39b8eeu,
                                            0xbea5e162u, 0xbdf8dafdu, 0x3eb1de6du, 0x3f6b5b79u};
    const uint64_t seed = 0x0123456789abcdefu;
    float u[8], z[8];
    philox_fill_uniform_f32(u, 8, seed, 0);
    philox_fill_normal_f32(z, 8, seed, 0);
    for (int i = 0; i < 8; i++) {
        CHECK_MSG(dice_f32_bits(u[i]) == uniform_bits[i], "uniform %d: %08x, expected %08x", i,
                  dice_f32_bits(u[i]), uniform_bits[i]);
        CHECK_MSG(dice_f32_bits(z[i]) == normal_bits[i], "normal %d: %08x, expected %08x", i,
                  dice_f32_bits(z[i]), normal_bits[i]);
    }
    enum { N = 1 << 16 };
    float *x = malloc(N * sizeof *x);
    CHECK(x);
    philox_fill_normal_f32(x, N, 42, 0);
    uint64_t h = fnv1a_bits(x, N);
    free(x);
    CHECK_MSG(h == 0x7a48726e81e4375bull, "hash of 65536 normals (seed 42) = 0x%016llx", (unsigned long long)h);
}

// The transform's own log / sin / cos against the C library in double, over a dense sample of inputs.
DICE_TEST(philox_transform_accuracy) {
    double worst_log = 0, worst_sin = 0, worst_cos = 0;
    for (uint32_t k = 1; k <= (1u << 24); k += 7) {
        float u = (float)k * 0x1p-24f;
        double want = log((double)u);
        double got = philox_log_unit(u);
        double e = fabs(got - want) / (k == (1u << 24) ? 1.0 : fabs(want));
        if (e > worst_log) worst_log = e;
    }
    CHECK(philox_log_unit(1.0f) == 0.0f);
    for (uint32_t k = 0; k < (1u << 24); k += 5) {
        float s, c;
        philox_sincos_turns(k, &s, &c);
        double t = 6.283185307179586476925 * k * 0x1p-24;
        if (fabs(s - sin(t)) > worst_sin) worst_sin = fabs(s - sin(t));
        if (fabs(c - cos(t)) > worst_cos) worst_cos = fabs(c - cos(t));
    }
    CHECK_MSG(worst_log < 1.5e-7, "log: worst relative error %.3g", worst_log);
    CHECK_MSG(worst_sin < 1.2e-7 && worst_cos < 1.2e-7, "sin / cos: worst absolute error %.3g / %.3g",
              worst_sin, worst_cos);
}

// Moments of 1e6 samples of a fixed seed (deterministic). Bounds are ~5 standard errors.
DICE_TEST(philox_uniform_statistics) {
    enum { N = 1000000 };
    float *u = malloc(N * sizeof *u);
    CHECK(u);
    philox_fill_uniform_f32(u, N, 20240601, 0);
    double sum = 0, sum2 = 0;
    float lo = 1, hi = 0;
    for (int i = 0; i < N; i++) {
        sum += u[i];
        sum2 += (u[i] - 0.5) * (u[i] - 0.5);
        if (u[i] < lo) lo = u[i];
        if (u[i] > hi) hi = u[i];
    }
    free(u);
    CHECK(lo >= 0.0f && hi < 1.0f);
    CHECK_NEAR(sum / N, 0.5, 1.5e-3);
    CHECK_NEAR(sum2 / N, 1.0 / 12, 4e-4);
}

DICE_TEST(philox_normal_statistics) {
    enum { N = 1000000 };
    float *z = malloc(N * sizeof *z);
    CHECK(z);
    philox_fill_normal_f32(z, N, 20240601, 0);
    double m1 = 0, m2 = 0, m4 = 0, within1 = 0, corr = 0;
    for (int i = 0; i < N; i++) {
        double v = z[i];
        CHECK(isfinite(v));
        m1 += v;
        m2 += v * v;
        m4 += v * v * v * v;
        within1 += fabs(v) < 1.0;
        if (i % 2) corr += v * z[i - 1];  // the two values of one Box-Muller pair are uncorrelated
    }
    free(z);
    CHECK_NEAR(m1 / N, 0.0, 5e-3);
    CHECK_NEAR(m2 / N, 1.0, 7.5e-3);
    CHECK_NEAR(m4 / N, 3.0, 5e-2);
    CHECK_NEAR(within1 / N, 0.682689492, 2.5e-3);
    CHECK_NEAR(corr / (N / 2), 0.0, 7.5e-3);
}

typedef void (*FillFn)(float *out, size_t n, uint64_t seed, uint64_t offset);

// Fill [offset, offset + n) into a poisoned buffer with guard words and compare with the reference slice.
static int slice_matches(FillFn fill, const float *ref, uint64_t base, uint64_t seed, uint64_t offset,
                         size_t n) {
    enum { GUARD = 5 };
    float *buf = malloc((n + 2 * GUARD) * sizeof *buf);
    if (!buf) return 0;
    memset(buf, 0xff, (n + 2 * GUARD) * sizeof *buf);
    fill(buf + GUARD, n, seed, offset);
    int ok = memcmp(buf + GUARD, ref + (offset - base), n * sizeof *buf) == 0;
    for (int i = 0; i < GUARD; i++)
        ok = ok && dice_f32_bits(buf[i]) == 0xffffffffu && dice_f32_bits(buf[GUARD + n + i]) == 0xffffffffu;
    free(buf);
    return ok;
}

DICE_TEST(philox_fills_are_slices_of_one_stream) {
    enum { N = 1000 };
    static const size_t cuts[][2] = {{0, 1}, {1, 3}, {3, 5}, {5, 0}, {7, 13}, {2, 998}, {997, 3},
                                     {4, 8}, {0, 1000}, {501, 250}, {6, 2}};
    FillFn fills[2] = {philox_fill_uniform_f32, philox_fill_normal_f32};
    const uint64_t bases[2] = {0, (UINT64_C(1) << 40) + 3};  // the block index crosses 32 bits
    float *ref = malloc(N * sizeof *ref);
    CHECK(ref);
    for (int f = 0; f < 2; f++) {
        for (int b = 0; b < 2; b++) {
            fills[f](ref, N, tc->seed, bases[b]);
            for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
                if (!slice_matches(fills[f], ref, bases[b], tc->seed, bases[b] + cuts[c][0], cuts[c][1])) {
                    free(ref);
                    CHECK_MSG(0, "%s fill at offset %llu + %zu, n %zu differs from the big fill",
                              f ? "normal" : "uniform", (unsigned long long)bases[b], cuts[c][0], cuts[c][1]);
                }
            }
        }
    }
    // A PhiloxStream drawing 3 + 10 + 1 elements gives the elements of one 14-element fill.
    PhiloxStream s = {tc->seed, 0};
    float parts[14];
    philox_fill_normal_f32(parts, 3, s.seed, philox_stream_take(&s, 3));
    philox_fill_normal_f32(parts + 3, 10, s.seed, philox_stream_take(&s, 10));
    philox_fill_normal_f32(parts + 13, 1, s.seed, philox_stream_take(&s, 1));
    philox_fill_normal_f32(ref, 14, tc->seed, 0);
    CHECK(s.offset == 14);
    CHECK(memcmp(parts, ref, sizeof parts) == 0);
    // Seeds differing only in their high 32 bits give different streams (the key holds all 64 bits).
    philox_fill_uniform_f32(ref, 8, tc->seed, 0);
    philox_fill_uniform_f32(ref + 8, 8, tc->seed ^ (UINT64_C(1) << 40), 0);
    CHECK(memcmp(ref, ref + 8, 8 * sizeof *ref) != 0);
    free(ref);
}
