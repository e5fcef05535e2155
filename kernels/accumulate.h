// kernels/accumulate.h — dst += src over contiguous tensors (gradient accumulation in autograd):
// CPU twin (kernels/accumulate_cpu.c) and CUDA launcher (kernels/accumulate.cu). f64, f32 and bf16
// (bf16 adds in fp32 and rounds to nearest even once per element); dst and src have the same dtype.
#pragma once
#include <stdint.h>

#include "nn/dtype.h"
#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

int accumulate_cpu(void *dst, const void *src, int64_t n, DType dtype, DiceError *err);
int accumulate_cuda(void *dst, const void *src, int64_t n, DType dtype, void *stream, DiceError *err);

#ifdef __cplusplus
}
#endif
