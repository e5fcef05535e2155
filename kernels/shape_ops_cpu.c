// kernels/shape_ops_cpu.c — CPU twins of kernels/shape_ops.cu (see shape_ops.h).
#include "shape_ops.h"

#include <string.h>

int shape_copy_columns_cpu(void *dst, int64_t dst_cols, int64_t dst_off, const void *src, int64_t src_cols,
                           int64_t src_off, int64_t rows, int64_t width, DType dtype, DiceError *err) {
    size_t es = dtype_size(dtype);
    DICE_CHECK(err, es > 0, "copy columns (CPU): dtype %s has no element size", dtype_name(dtype));
    unsigned char *d = dst;
    const unsigned char *s = src;
#pragma omp parallel for schedule(static) if (rows * width > 65536)
    for (int64_t r = 0; r < rows; r++)
        memcpy(d + (size_t)(r * dst_cols + dst_off) * es, s + (size_t)(r * src_cols + src_off) * es, (size_t)width * es);
    return 0;
}

int shape_upsample2x_cpu(void *y, const void *x, int64_t b, int64_t h, int64_t w, int64_t c, DType dtype,
                         DiceError *err) {
    size_t es = dtype_size(dtype);
    DICE_CHECK(err, es > 0, "upsample (CPU): dtype %s has no element size", dtype_name(dtype));
    unsigned char *yo = y;
    const unsigned char *xi = x;
    int64_t pixels = b * 2 * h * 2 * w;  // output pixels, each a copy of C elements
#pragma omp parallel for schedule(static) if (pixels * c > 65536)
    for (int64_t p = 0; p < pixels; p++) {
        int64_t j = p % (2 * w), i = p / (2 * w) % (2 * h), bi = p / (4 * h * w);
        int64_t src = (bi * h + i / 2) * w + j / 2;
        memcpy(yo + (size_t)(p * c) * es, xi + (size_t)(src * c) * es, (size_t)c * es);
    }
    return 0;
}

#define UPSAMPLE_BACKWARD(T)                                                                   \
    do {                                                                                       \
        T *o = dx;                                                                             \
        const T *g = dy;                                                                       \
        _Pragma("omp parallel for schedule(static) if (b * h * w * c > 65536)")                \
        for (int64_t e = 0; e < b * h * w * c; e++) {                                          \
            int64_t ci = e % c, p = e / c, j = p % w, i = p / w % h, bi = p / (h * w);         \
            const T *g0 = g + ((bi * 2 * h + 2 * i) * 2 * w + 2 * j) * c + ci;                 \
            o[e] = (T)(((double)g0[0] + g0[c]) + ((double)g0[2 * w * c] + g0[2 * w * c + c])); \
        }                                                                                      \
    } while (0)

int shape_upsample2x_backward_cpu(void *dx, const void *dy, int64_t b, int64_t h, int64_t w, int64_t c, DType dtype,
                                  DiceError *err) {
    if (dtype == DT_F32) UPSAMPLE_BACKWARD(float);
    else if (dtype == DT_F64) UPSAMPLE_BACKWARD(double);
    else return DICE_FAIL(err, "upsample backward (CPU): dtype %s is not supported (f32, f64)", dtype_name(dtype));
    return 0;
}
