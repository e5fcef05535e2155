// kernels/elementwise.cuh — device helpers shared by the bandwidth-bound kernels (elementwise.cu, shape_ops.cu,
// embed.cu): fp32 loads and stores of f32 / bf16 storage (bf16 is held as its uint16_t bits, rounded to nearest
// even once per store), 16-byte vector accesses, and the grid of a grid-stride launch.
//
// Vector width. A kernel templated on <T, V> moves V consecutive elements per access: V = 16 / sizeof(T)
// (4 floats, 8 bf16) when every pointer is 16-byte aligned and every row length / offset it uses is a multiple
// of V (the launcher checks with ew_vectorizable), else V = 1. EW_DISPATCH picks T and V.
#pragma once
#include <stdint.h>
#include <string.h>

#include <initializer_list>

#include "kernels/cuda_common.cuh"
#include "nn/dtype.h"
#include "nn/error.h"

static constexpr int EW_THREADS = 256;

// Same bits, no conversion: V consecutive elements of any 2- or 4-byte type (copies).
template <typename T, int V>
static __device__ __forceinline__ void ew_copy_vec(T *dst, int64_t i, const T *src, int64_t j) {
    if constexpr (V * sizeof(T) == 16) {
        *reinterpret_cast<uint4 *>(dst + i) = *reinterpret_cast<const uint4 *>(src + j);
    } else {
        for (int k = 0; k < V; k++) dst[i + k] = src[j + k];
    }
}

// Blocks for `work` items of a grid-stride loop with EW_THREADS threads a block.
static inline int ew_grid(int64_t work) { return dice_grid_1d(work, EW_THREADS); }

// Whether a kernel on `dtype` storage may use 16-byte vectors: every non-NULL pointer 16-byte aligned and every
// count (row length, offset) a multiple of the vector width 16 / element size.
static inline bool ew_vectorizable(DType dtype, std::initializer_list<const void *> ptrs,
                                   std::initializer_list<int64_t> counts) {
    size_t es = dtype_size(dtype);
    int64_t v = es && es <= 16 ? (int64_t)(16 / es) : 1;
    for (const void *p : ptrs)
        if (p && (reinterpret_cast<uintptr_t>(p) & 15u)) return false;
    for (int64_t c : counts)
        if (c % v) return false;
    return true;
}

// return fn<T, V>(args...) for dtype's storage type T (f32: float, bf16: uint16_t bits) and V = 16 / sizeof(T)
// when `vec`, else V = 1; other dtypes fail with a message naming `what`. Needs `err` in scope.
#define EW_DISPATCH(what, dtype, vec, fn, ...)                                                                \
    switch (dtype) {                                                                                          \
    case DT_F32: return (vec) ? fn<float, 4>(__VA_ARGS__) : fn<float, 1>(__VA_ARGS__);                       \
    case DT_BF16: return (vec) ? fn<uint16_t, 8>(__VA_ARGS__) : fn<uint16_t, 1>(__VA_ARGS__);                \
    default:                                                                                                  \
        return DICE_FAIL(err, "%s (CUDA): dtype %s is not supported (f32, bf16)", what, dtype_name(dtype));   \
    }
