// kernels/convert.h — launcher of the CUDA strided copy-with-conversion kernel (kernels/convert.cu).
#pragma once
#include <stdint.h>

#include "nn/dtype.h"
#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// Describes dst[idx] = convert(src[idx]) over an ndim-d index space (ndim <= 5, strides in elements).
typedef struct ConvertPlan {
    int ndim;
    int64_t shape[5];
    int64_t dst_stride[5], src_stride[5];
    DType dst_dtype, src_dtype;
} ConvertPlan;

// Queue the copy on `stream` (a cudaStream_t). dst and src are device pointers.
int convert_cuda(void *dst, const void *src, const ConvertPlan *plan, void *stream, DiceError *err);

#ifdef __cplusplus
}
#endif
