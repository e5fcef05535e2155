// kernels/shape_ops.cu — column-block copies (channel concat / split of NHWC tensors) and nearest 2x upsampling on
// a CUDA device (see shape_ops.h); CPU twins in kernels/shape_ops_cpu.c. Copies move raw bits (T is an unsigned
// integer of the element's size), 16 bytes per access when pointers, row lengths and offsets allow.
#include "kernels/elementwise.cuh"
#include "kernels/shape_ops.h"
#include "nn/cuda_api.h"

// dst (rows, dst_cols) <- src (rows, src_cols), `width` columns; dst and src already point at their first column.
template <typename T, int V>
static __global__ void copy_columns_kernel(T *dst, int64_t dst_cols, const T *src, int64_t src_cols, int64_t rows,
                                    int64_t width) {
    int64_t wv = width / V;
    DICE_GRID_STRIDE(v, rows * wv) {
        int64_t r = v / wv, c = v % wv * V;
        ew_copy_vec<T, V>(dst, r * dst_cols + c, src, r * src_cols + c);
    }
}

// x (B, H, W, C) -> y (B, 2H, 2W, C); V elements along C per thread.
template <typename T, int V>
static __global__ void upsample2x_kernel(T *y, const T *x, int64_t b, int64_t h, int64_t w, int64_t c) {
    DICE_GRID_STRIDE(v, b * 4 * h * w * c / V) {
        int64_t e = v * V, ci = e % c, p = e / c, j = p % (2 * w), i = p / (2 * w) % (2 * h), bi = p / (4 * h * w);
        ew_copy_vec<T, V>(y, e, x, ((bi * h + i / 2) * w + j / 2) * c + ci);
    }
}

// dx (B, H, W, C) = sum of the 2x2 block of dy (B, 2H, 2W, C) above each pixel.
template <typename T, int V>
static __global__ void upsample2x_backward_kernel(T *dx, const T *dy, int64_t b, int64_t h, int64_t w, int64_t c) {
    DICE_GRID_STRIDE(v, b * h * w * c / V) {
        int64_t e = v * V, ci = e % c, p = e / c, j = p % w, i = p / w % h, bi = p / (h * w);
        int64_t top = ((bi * 2 * h + 2 * i) * 2 * w + 2 * j) * c + ci, bottom = top + 2 * w * c;
        float s[V], t[V];
        dice_load_vec<T, V>(s, dy, top);
        dice_load_vec<T, V>(t, dy, top + c);
        for (int k = 0; k < V; k++) s[k] += t[k];
        dice_load_vec<T, V>(t, dy, bottom);
        for (int k = 0; k < V; k++) s[k] += t[k];
        dice_load_vec<T, V>(t, dy, bottom + c);
        for (int k = 0; k < V; k++) s[k] += t[k];
        dice_store_vec<T, V>(dx, e, s);
    }
}

template <typename T>
static int copy_columns_launch(void *dst, int64_t dst_cols, int64_t dst_off, const void *src, int64_t src_cols,
                               int64_t src_off, int64_t rows, int64_t width, cudaStream_t s, DiceError *err) {
    constexpr int V = 16 / sizeof(T);
    T *d = (T *)dst + dst_off;
    const T *sp = (const T *)src + src_off;
    if ((uintptr_t)d % 16 == 0 && (uintptr_t)sp % 16 == 0 && dst_cols % V == 0 && src_cols % V == 0 && width % V == 0)
        DICE_LAUNCH((copy_columns_kernel<T, V>), ew_grid(rows * width / V), EW_THREADS, 0, s, d, dst_cols, sp, src_cols,
                    rows, width);
    else
        DICE_LAUNCH((copy_columns_kernel<T, 1>), ew_grid(rows * width), EW_THREADS, 0, s, d, dst_cols, sp, src_cols,
                    rows, width);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int shape_copy_columns_cuda(void *dst, int64_t dst_cols, int64_t dst_off, const void *src, int64_t src_cols,
                                       int64_t src_off, int64_t rows, int64_t width, DType dtype, void *stream,
                                       DiceError *err) {
    if (rows * width == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    switch (dtype_size(dtype)) {
    case 2: return copy_columns_launch<uint16_t>(dst, dst_cols, dst_off, src, src_cols, src_off, rows, width, s, err);
    case 4: return copy_columns_launch<uint32_t>(dst, dst_cols, dst_off, src, src_cols, src_off, rows, width, s, err);
    case 8: return copy_columns_launch<uint64_t>(dst, dst_cols, dst_off, src, src_cols, src_off, rows, width, s, err);
    default: return DICE_FAIL(err, "copy columns (CUDA): dtype %s is not supported (2-, 4- or 8-byte elements)",
                              dtype_name(dtype));
    }
}

template <typename T>
static int upsample2x_launch(void *y, const void *x, int64_t b, int64_t h, int64_t w, int64_t c, cudaStream_t s,
                             DiceError *err) {
    constexpr int V = 16 / sizeof(T);
    int64_t n = b * 4 * h * w * c;
    if ((uintptr_t)y % 16 == 0 && (uintptr_t)x % 16 == 0 && c % V == 0)
        DICE_LAUNCH((upsample2x_kernel<T, V>), ew_grid(n / V), EW_THREADS, 0, s, (T *)y, (const T *)x, b, h, w, c);
    else
        DICE_LAUNCH((upsample2x_kernel<T, 1>), ew_grid(n), EW_THREADS, 0, s, (T *)y, (const T *)x, b, h, w, c);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int shape_upsample2x_cuda(void *y, const void *x, int64_t b, int64_t h, int64_t w, int64_t c, DType dtype,
                                     void *stream, DiceError *err) {
    if (b * h * w * c == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    switch (dtype_size(dtype)) {
    case 2: return upsample2x_launch<uint16_t>(y, x, b, h, w, c, s, err);
    case 4: return upsample2x_launch<uint32_t>(y, x, b, h, w, c, s, err);
    case 8: return upsample2x_launch<uint64_t>(y, x, b, h, w, c, s, err);
    default: return DICE_FAIL(err, "upsample (CUDA): dtype %s is not supported (2-, 4- or 8-byte elements)",
                              dtype_name(dtype));
    }
}

template <typename T, int V>
static int upsample2x_backward_launch(void *dx, const void *dy, int64_t b, int64_t h, int64_t w, int64_t c,
                                      cudaStream_t s, DiceError *err) {
    DICE_LAUNCH((upsample2x_backward_kernel<T, V>), ew_grid(b * h * w * c / V), EW_THREADS, 0, s, (T *)dx,
                (const T *)dy, b, h, w, c);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int shape_upsample2x_backward_cuda(void *dx, const void *dy, int64_t b, int64_t h, int64_t w, int64_t c,
                                              DType dtype, void *stream, DiceError *err) {
    if (b * h * w * c == 0) return 0;
    bool vec = ew_vectorizable(dtype, {dx, dy}, {c});
    EW_DISPATCH("upsample backward", dtype, vec, upsample2x_backward_launch, dx, dy, b, h, w, c, (cudaStream_t)stream,
                err);
}
