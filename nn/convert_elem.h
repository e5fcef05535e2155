// nn/convert_elem.h — element loads/stores with dtype conversion, shared verbatim by the CPU copy
// (nn/tensor_copy.c) and the CUDA copy kernel (kernels/convert.cu), so both devices convert bitwise
// identically.
//
// Semantics (as torch's .to(dtype) where torch defines them):
//   float -> float: through float32 for f16/bf16 targets (round to nearest even), f64 -> f32 rounds;
//   int -> int: two's-complement wrap-around (bool: nonzero -> 1);
//   float -> int: truncation toward zero, saturated to the target's range, NaN -> 0
//                 (torch leaves out-of-range casts undefined; dice defines them);
//   int -> float: nearest representable value.
#pragma once
#include <stdint.h>

#include "dtype.h"

// Supported by tensor copies: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
static inline DICE_HD int dice_convertible(DType dt) {
    return dt == DT_F64 || dt == DT_F32 || dt == DT_F16 || dt == DT_BF16 || dt == DT_I64 || dt == DT_I32 ||
           dt == DT_I16 || dt == DT_I8 || dt == DT_U8 || dt == DT_BOOL;
}

static inline DICE_HD int dice_dtype_is_int(DType dt) {
    return dt == DT_I64 || dt == DT_I32 || dt == DT_I16 || dt == DT_I8 || dt == DT_U8 || dt == DT_BOOL;
}

static inline DICE_HD double dice_load_f64(const void *p, DType dt, int64_t i) {
    switch (dt) {
    case DT_F64: return ((const double *)p)[i];
    case DT_F32: return ((const float *)p)[i];
    case DT_F16: return dice_f16_to_f32(((const uint16_t *)p)[i]);
    case DT_BF16: return dice_bf16_to_f32(((const uint16_t *)p)[i]);
    case DT_I64: return (double)((const int64_t *)p)[i];
    case DT_I32: return ((const int32_t *)p)[i];
    case DT_I16: return ((const int16_t *)p)[i];
    case DT_I8: return ((const int8_t *)p)[i];
    case DT_U8: return ((const uint8_t *)p)[i];
    case DT_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0;
    }
}

static inline DICE_HD int64_t dice_load_i64(const void *p, DType dt, int64_t i) {
    switch (dt) {
    case DT_I64: return ((const int64_t *)p)[i];
    case DT_I32: return ((const int32_t *)p)[i];
    case DT_I16: return ((const int16_t *)p)[i];
    case DT_I8: return ((const int8_t *)p)[i];
    case DT_U8: return ((const uint8_t *)p)[i];
    case DT_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0;
    }
}

// Truncate toward zero and saturate to [lo, hi]; NaN -> 0. lo/hi are exactly representable doubles.
static inline DICE_HD int64_t dice_f64_to_int(double v, double lo, double hi) {
    if (v != v) return 0;
    if (v <= lo) return (int64_t)lo;
    if (v >= hi) return (int64_t)hi;
    return (int64_t)v;
}

static inline DICE_HD void dice_store_i64(void *p, DType dt, int64_t i, int64_t v) {
    switch (dt) {
    case DT_I64: ((int64_t *)p)[i] = v; break;
    case DT_I32: ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)v; break;
    case DT_I16: ((int16_t *)p)[i] = (int16_t)(uint16_t)(uint64_t)v; break;
    case DT_I8: ((int8_t *)p)[i] = (int8_t)(uint8_t)(uint64_t)v; break;
    case DT_U8: ((uint8_t *)p)[i] = (uint8_t)(uint64_t)v; break;
    case DT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: break;
    }
}

static inline DICE_HD void dice_store_f64(void *p, DType dt, int64_t i, double v) {
    switch (dt) {
    case DT_F64: ((double *)p)[i] = v; break;
    case DT_F32: ((float *)p)[i] = (float)v; break;
    case DT_F16: ((uint16_t *)p)[i] = dice_f32_to_f16((float)v); break;
    case DT_BF16: ((uint16_t *)p)[i] = dice_f32_to_bf16((float)v); break;
    case DT_I64: ((int64_t *)p)[i] = dice_f64_to_int(v, -9223372036854775808.0, 9223372036854774784.0); break;
    case DT_I32: ((int32_t *)p)[i] = (int32_t)dice_f64_to_int(v, -2147483648.0, 2147483647.0); break;
    case DT_I16: ((int16_t *)p)[i] = (int16_t)dice_f64_to_int(v, -32768.0, 32767.0); break;
    case DT_I8: ((int8_t *)p)[i] = (int8_t)dice_f64_to_int(v, -128.0, 127.0); break;
    case DT_U8: ((uint8_t *)p)[i] = (uint8_t)dice_f64_to_int(v, 0.0, 255.0); break;
    case DT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: break;
    }
}

// dst[di] = convert(src[si]).
static inline DICE_HD void dice_convert_elem(void *dst, DType dst_dt, int64_t di, const void *src, DType src_dt,
                                             int64_t si) {
    if (dice_dtype_is_int(dst_dt) && dice_dtype_is_int(src_dt))
        dice_store_i64(dst, dst_dt, di, dice_load_i64(src, src_dt, si));
    else
        dice_store_f64(dst, dst_dt, di, dice_load_f64(src, src_dt, si));
}
