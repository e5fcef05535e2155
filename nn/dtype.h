// nn/dtype.h — element types: sizes, names, and the conversions between 32-bit floats and the
// 16-bit float formats (round to nearest even, NaN kept NaN), shared by host code and kernels.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum DType {
    DT_F32 = 0,
    DT_F16,
    DT_BF16,
    DT_F64,
    DT_I32,
    DT_I64,
    DT_I16,
    DT_I8,
    DT_U8,
    DT_BOOL,
    DT_U16,
    DT_U32,
    DT_U64,
    DT_F8_E4M3,
    DT_F8_E5M2,
    DT_COUNT
} DType;

size_t dtype_size(DType dt);            // bytes per element
const char *dtype_name(DType dt);       // "f32", "bf16", ...
const char *dtype_st_name(DType dt);    // safetensors spelling: "F32", "BF16", ...
int dtype_from_st_name(const char *name, DType *out);  // 0 if known, -1 otherwise
int dtype_from_name(const char *name, DType *out);     // accepts "f32" / "F32" / "float32" ...
int dtype_is_float(DType dt);           // F64, F32, F16, BF16 (the types the ops compute in)

#ifdef __cplusplus
}
#endif

// 16-bit float conversions (host and device). Round to nearest even; NaN stays NaN.
#if defined(__CUDACC__)
#define DICE_HD __host__ __device__
#else
#define DICE_HD
#endif

static inline DICE_HD uint32_t dice_f32_bits(float f) {
    union { float f; uint32_t u; } v;
    v.f = f;
    return v.u;
}
static inline DICE_HD float dice_bits_f32(uint32_t u) {
    union { float f; uint32_t u; } v;
    v.u = u;
    return v.f;
}
static inline DICE_HD uint16_t dice_f32_to_bf16(float f) {
    uint32_t u = dice_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline DICE_HD float dice_bf16_to_f32(uint16_t h) { return dice_bits_f32((uint32_t)h << 16); }

static inline DICE_HD uint16_t dice_f32_to_f16(float f) {
    uint32_t u = dice_f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);        // NaN
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);       // overflow (>= 65520) -> inf
    if (a < 0x38800000u) {                                         // subnormal or zero in f16
        if (a < 0x33000000u) return (uint16_t)sign;                // below half the smallest subnormal
        uint32_t mant = (a & 0x007fffffu) | 0x00800000u;
        uint32_t shift = 126u - (a >> 23);                         // 14..24: value = mant * 2^-shift in f16 subnormal units
        uint32_t q = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = a + 0x0fffu + ((a >> 13) & 1u);                   // round mantissa to 10 bits
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}
static inline DICE_HD float dice_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return dice_bits_f32(sign | 0x7f800000u | (m << 13));  // inf / NaN
    if (e == 0) {
        float v = (float)m * (1.0f / 16777216.0f);                 // m * 2^-24
        return sign ? -v : v;
    }
    return dice_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}
