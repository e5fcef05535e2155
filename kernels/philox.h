// kernels/philox.h — launchers of the CUDA Philox4x32-10 fills (kernels/philox.cu). They write the same
// bits as the CPU fills philox_fill_uniform_f32 / philox_fill_normal_f32 of nn/philox.h, where the
// streams are defined.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// Queue on `stream` (a cudaStream_t): d_out[i] = element offset + i of the stream of `seed`, i < n.
// d_out is a device pointer (any float alignment).
int philox_fill_uniform_cuda(float *d_out, size_t n, uint64_t seed, uint64_t offset, void *stream, DiceError *err);
int philox_fill_normal_cuda(float *d_out, size_t n, uint64_t seed, uint64_t offset, void *stream, DiceError *err);

#ifdef __cplusplus
}
#endif
