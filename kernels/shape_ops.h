// kernels/shape_ops.h — data movement for the NHWC shape ops: copying a block of columns between two row-major
// matrices (concat / split along the channel dim, UNet skip connections) and nearest 2x upsampling with its
// gradient. CPU twins in kernels/shape_ops_cpu.c (any dtype for copies; f32, f64 for the gradient sum), CUDA
// launchers in kernels/shape_ops.cu (copies of 2-, 4- and 8-byte elements; f32, bf16 for the gradient sum).
#pragma once
#include <stdint.h>

#include "nn/dtype.h"
#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// dst (rows, dst_cols)[:, dst_off : dst_off + width] = src (rows, src_cols)[:, src_off : src_off + width]
int shape_copy_columns_cpu(void *dst, int64_t dst_cols, int64_t dst_off, const void *src, int64_t src_cols,
                           int64_t src_off, int64_t rows, int64_t width, DType dtype, DiceError *err);
// x (B, H, W, C) -> y (B, 2H, 2W, C), y[b, i, j] = x[b, i / 2, j / 2]
int shape_upsample2x_cpu(void *y, const void *x, int64_t b, int64_t h, int64_t w, int64_t c, DType dtype,
                         DiceError *err);
// dx (B, H, W, C) = sum of each 2x2 block of dy (B, 2H, 2W, C)
int shape_upsample2x_backward_cpu(void *dx, const void *dy, int64_t b, int64_t h, int64_t w, int64_t c, DType dtype,
                                  DiceError *err);

int shape_copy_columns_cuda(void *dst, int64_t dst_cols, int64_t dst_off, const void *src, int64_t src_cols,
                            int64_t src_off, int64_t rows, int64_t width, DType dtype, void *stream, DiceError *err);
int shape_upsample2x_cuda(void *y, const void *x, int64_t b, int64_t h, int64_t w, int64_t c, DType dtype,
                          void *stream, DiceError *err);
int shape_upsample2x_backward_cuda(void *dx, const void *dy, int64_t b, int64_t h, int64_t w, int64_t c, DType dtype,
                                   void *stream, DiceError *err);

#ifdef __cplusplus
}
#endif
