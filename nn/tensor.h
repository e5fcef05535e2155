// nn/tensor.h — tensors: a typed, strided view of memory on the CPU or a CUDA device.
//
// A Tensor does not own memory; memory comes from an Arena (nn/arena.h): a per-step arena that is
// reset every step, or a persistent one for weights. Views (narrow, select, permute, reshape of a
// contiguous tensor) share memory with their base: no copies. Images are NHWC (channels last).
// Strides are in elements. Up to TENSOR_MAX_DIMS dimensions; a 0-d tensor is a scalar.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TENSOR_MAX_DIMS 5

typedef enum Device { DEV_CPU = 0, DEV_CUDA = 1 } Device;

typedef struct Tensor {
    void *data;                        // address of element [0, 0, ...]
    DType dtype;
    Device device;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t stride[TENSOR_MAX_DIMS];   // elements between neighbours along each dim
} Tensor;

const char *device_name(Device d);  // "cpu" / "cuda"

// A contiguous (row-major) tensor over existing memory.
int tensor_wrap(Tensor *t, void *data, DType dtype, Device device, int ndim, const int64_t *shape,
                DiceError *err);
int64_t tensor_numel(const Tensor *t);
size_t tensor_nbytes(const Tensor *t);        // numel * element size (the contiguous footprint)
bool tensor_is_contiguous(const Tensor *t);
bool tensor_same_shape(const Tensor *a, const Tensor *b);
// "f32[2, 77, 768] cuda" into buf, for messages.
const char *tensor_describe(const Tensor *t, char *buf, size_t bufsize);

// Views (no copy). out may alias t.
int tensor_narrow(Tensor *out, const Tensor *t, int dim, int64_t start, int64_t length, DiceError *err);
int tensor_select(Tensor *out, const Tensor *t, int dim, int64_t index, DiceError *err);  // drops dim
int tensor_permute(Tensor *out, const Tensor *t, const int *perm, DiceError *err);
// New shape with the same numel; t must be contiguous; one entry may be -1 (inferred).
int tensor_reshape(Tensor *out, const Tensor *t, int ndim, const int64_t *shape, DiceError *err);

#ifdef __cplusplus
}
#endif
