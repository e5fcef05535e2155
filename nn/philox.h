// nn/philox.h — Philox4x32-10 counter-based random numbers: the block function, the uniform and
// normal transforms (host and device code, DICE_HD), and the CPU fills. The CUDA fills are in
// kernels/philox.h; they produce the same bits as the CPU fills.
//
// The generator (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11; the Random123
// and cuRAND Philox4x32-10): a 128-bit counter (4 x 32 bits) and a 64-bit key (2 x 32 bits) map to
// 128 random bits through 10 rounds; each round multiplies two counter words by 0xD2511F53 and
// 0xCD9E8D57 (full 64-bit products) and mixes in the key, which is bumped between rounds by the
// Weyl increments 0x9E3779B9 and 0xBB67AE85.
//
// Streams. A stream is (seed, kind); its element g (g = 0, 1, 2, ...) is defined as
//   block  b = g / 4, lane = g % 4
//   key    = { seed & 0xffffffff, seed >> 32 }
//   ctr    = { b & 0xffffffff, b >> 32, kind, 0 }        kind: PHILOX_UNIFORM = 0, PHILOX_NORMAL = 1
//   x[0..3] = Philox4x32-10(ctr, key)
//   uniform: element = (x[lane] >> 8) * 2^-24                         in [0, 1), never 1.0
//   normal:  lanes 0,1 = Box-Muller(x[0], x[1]), lanes 2,3 = Box-Muller(x[2], x[3]) with
//            Box-Muller(a, c) = (r cos t, r sin t),  r = sqrt(-2 log u),  u = ((a >> 8) + 1) * 2^-24 in (0, 1],
//                                                    t = 2 pi (c >> 8) * 2^-24 in [0, 2 pi)
// A fill (seed, offset, n) writes elements offset .. offset+n-1 of the stream (offset + n < 2^64), so
// any element is computed on its own: fills split anywhere give the same numbers as one big fill,
// GPU threads compute blocks independently, and a resumed run continues a stream from its offset.
// The uniform and normal streams of one seed use different counters (kind), so they are independent.
//
// Bitwise identical on CPU and GPU: log, sin and cos are computed here (Cephes-style polynomials with
// exact argument reduction) from correctly rounded float multiplies and adds only; on the device these
// are __fmul_rn / __fadd_rn / __fsqrt_rn, which nvcc never fuses into FMAs. On the host, products must
// not be fused either (see philox_mul); tests/test_rng.c pins a hash of normal outputs to catch it.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { PHILOX_UNIFORM = 0, PHILOX_NORMAL = 1 };

typedef struct PhiloxU32x4 {
    uint32_t v[4];
} PhiloxU32x4;

// High 32 bits of the 64-bit product a * b.
static inline DICE_HD uint32_t philox_mulhi(uint32_t a, uint32_t b) {
#ifdef __CUDA_ARCH__
    return __umulhi(a, b);
#else
    return (uint32_t)(((uint64_t)a * b) >> 32);
#endif
}

// The Philox4x32-10 block function (Random123's philox4x32 with R = 10).
static inline DICE_HD PhiloxU32x4 philox4x32_10(PhiloxU32x4 ctr, uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        PhiloxU32x4 next;
        next.v[0] = philox_mulhi(0xCD9E8D57u, ctr.v[2]) ^ ctr.v[1] ^ k0;
        next.v[1] = 0xCD9E8D57u * ctr.v[2];
        next.v[2] = philox_mulhi(0xD2511F53u, ctr.v[0]) ^ ctr.v[3] ^ k1;
        next.v[3] = 0xD2511F53u * ctr.v[0];
        ctr = next;
    }
    return ctr;
}

// The 128 random bits of block b of stream (seed, kind).
static inline DICE_HD PhiloxU32x4 philox_block(uint64_t seed, uint64_t b, uint32_t kind) {
    PhiloxU32x4 ctr = {{(uint32_t)b, (uint32_t)(b >> 32), kind, 0u}};
    return philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
}

// Correctly rounded float operations that no compiler fuses (see the note at the top). On the host,
// GCC >= 12 gets a barrier on each product, so even -ffp-contract=fast with FMA instructions enabled
// (-march=native in GNU mode) cannot fuse it into the add that consumes it.
static inline DICE_HD float philox_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#elif defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__) && __GNUC__ >= 12
    return __builtin_assoc_barrier(a * b);
#else
    return a * b;
#endif
}
static inline DICE_HD float philox_add(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
static inline DICE_HD float philox_sqrt(float a) {
#ifdef __CUDA_ARCH__
    return __fsqrt_rn(a);
#else
    return sqrtf(a);
#endif
}

// Uniform in [0, 1) from the top 24 bits (exact: a 24-bit integer times a power of two).
static inline DICE_HD float philox_u01(uint32_t x) { return (float)(x >> 8) * 0x1p-24f; }

// log(u) for u in [2^-24, 1] (a normal float): u = m 2^e with m in [sqrt(1/2), sqrt(2)), f = m - 1 exact,
// log(1 + f) = f - f^2/2 + f^3 P(f) (Cephes logf coefficients), e log(2) in two parts.
static inline DICE_HD float philox_log_unit(float u) {
    uint32_t bits = dice_f32_bits(u);
    float e = (float)((int)(bits >> 23) - 126);                    // u = m * 2^e, m in [0.5, 1)
    float m = dice_bits_f32((bits & 0x007fffffu) | 0x3f000000u);
    float f;
    if (m < 0.707106781186547524f) {
        e = philox_add(e, -1.0f);
        f = philox_add(philox_add(m, m), -1.0f);
    } else {
        f = philox_add(m, -1.0f);
    }
    float z = philox_mul(f, f);
    float p = 7.0376836292e-2f;
    p = philox_add(philox_mul(p, f), -1.1514610310e-1f);
    p = philox_add(philox_mul(p, f), 1.1676998740e-1f);
    p = philox_add(philox_mul(p, f), -1.2420140846e-1f);
    p = philox_add(philox_mul(p, f), 1.4249322787e-1f);
    p = philox_add(philox_mul(p, f), -1.6668057665e-1f);
    p = philox_add(philox_mul(p, f), 2.0000714765e-1f);
    p = philox_add(philox_mul(p, f), -2.4999993993e-1f);
    p = philox_add(philox_mul(p, f), 3.3333331174e-1f);
    float y = philox_mul(philox_mul(p, f), z);                     // f^3 P(f)
    y = philox_add(y, philox_mul(e, -2.12194440e-4f));
    y = philox_add(y, philox_mul(z, -0.5f));
    return philox_add(philox_add(f, y), philox_mul(e, 0.693359375f));
}

// sin and cos of 2 pi k / 2^24 for a 24-bit k. The reduction is exact: quadrant = top 2 bits, the
// remaining 22 bits give a fraction of the quadrant, folded to [0, 1/2] so the polynomial argument is in
// [0, pi/4] (Cephes sinf/cosf coefficients).
static inline DICE_HD void philox_sincos_turns(uint32_t k, float *s, float *c) {
    uint32_t quadrant = k >> 22;
    uint32_t rem = k & 0x3fffffu;
    int folded = rem > 0x200000u;                                  // past half a quadrant: use pi/2 - x
    uint32_t t = folded ? 0x400000u - rem : rem;                   // <= 2^21
    float x = philox_mul((float)t, 3.14159265358979323846f * 0x1p-23f);  // t/2^22 * pi/2, in [0, pi/4]
    float z = philox_mul(x, x);
    float ps = -1.9515295891e-4f;
    ps = philox_add(philox_mul(ps, z), 8.3321608736e-3f);
    ps = philox_add(philox_mul(ps, z), -1.6666654611e-1f);
    float sx = philox_add(philox_mul(philox_mul(ps, z), x), x);
    float pc = 2.443315711809948e-5f;
    pc = philox_add(philox_mul(pc, z), -1.388731625493765e-3f);
    pc = philox_add(philox_mul(pc, z), 4.166664568298827e-2f);
    float cx = philox_add(philox_add(philox_mul(philox_mul(pc, z), z), philox_mul(z, -0.5f)), 1.0f);
    float sa = folded ? cx : sx, ca = folded ? sx : cx;            // sin, cos of the quadrant's angle
    switch (quadrant) {
    case 0: *s = sa; *c = ca; break;
    case 1: *s = ca; *c = -sa; break;
    case 2: *s = -sa; *c = -ca; break;
    default: *s = -ca; *c = sa; break;
    }
}

// Two standard normals from two 32-bit words (the stream's Box-Muller, see the top of this file).
static inline DICE_HD void philox_box_muller(uint32_t a, uint32_t c, float *n0, float *n1) {
    float u = (float)((a >> 8) + 1u) * 0x1p-24f;                   // (0, 1]
    float r = philox_sqrt(philox_mul(-2.0f, philox_log_unit(u)));
    float sn, cs;
    philox_sincos_turns(c >> 8, &sn, &cs);
    *n0 = philox_mul(r, cs);
    *n1 = philox_mul(r, sn);
}

// Elements 4b .. 4b+3 of the uniform / normal stream of `seed`.
static inline DICE_HD void philox_uniform4(uint64_t seed, uint64_t b, float out[4]) {
    PhiloxU32x4 x = philox_block(seed, b, PHILOX_UNIFORM);
    for (int j = 0; j < 4; j++) out[j] = philox_u01(x.v[j]);
}
static inline DICE_HD void philox_normal4(uint64_t seed, uint64_t b, float out[4]) {
    PhiloxU32x4 x = philox_block(seed, b, PHILOX_NORMAL);
    philox_box_muller(x.v[0], x.v[1], &out[0], &out[1]);
    philox_box_muller(x.v[2], x.v[3], &out[2], &out[3]);
}

// out[i] = element offset + i of the stream, i < n (CPU).
void philox_fill_uniform_f32(float *out, size_t n, uint64_t seed, uint64_t offset);
void philox_fill_normal_f32(float *out, size_t n, uint64_t seed, uint64_t offset);

// A position in the streams of one seed, for code that draws repeatedly (training noise, dropout):
//   philox_fill_normal_f32(x, n, s.seed, philox_stream_take(&s, n));
// Saving {seed, offset} in a checkpoint resumes the exact sequence.
typedef struct PhiloxStream {
    uint64_t seed;
    uint64_t offset;   // elements already used
} PhiloxStream;

// Returns the current offset and reserves n elements after it.
static inline uint64_t philox_stream_take(PhiloxStream *s, size_t n) {
    uint64_t at = s->offset;
    s->offset += n;
    return at;
}

#ifdef __cplusplus
}
#endif
