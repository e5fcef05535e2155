// nn/tensor_copy.h — zero fills, and copies between tensors: any strides and any supported dtype pair on one device
// (converting as nn/convert_elem.h defines), and contiguous same-dtype copies between host and device.
#pragma once
#include "arena.h"
#include "context.h"

#ifdef __cplusplus
extern "C" {
#endif

// dst <- src. Shapes must match. On one device: any strides, dtype conversion allowed. Across devices:
// same dtype and both contiguous (convert on either side first); the copy is complete on return.
int tensor_copy(DiceCtx *ctx, Tensor *dst, const Tensor *src, DiceError *err);
// A new contiguous tensor in `arena` (on the arena's device) holding src converted to `dtype`.
// Crossing devices requires src to be contiguous; the conversion runs on the destination device.
int tensor_to(DiceCtx *ctx, Arena *arena, Tensor *out, const Tensor *src, DType dtype, DiceError *err);

// Set every byte of a contiguous tensor to zero (0.0 in every float dtype), on its device.
int tensor_zero(DiceCtx *ctx, Tensor *t, DiceError *err);

#ifdef __cplusplus
}
#endif
