// nn/tensor.c — tensor descriptors and views (see tensor.h).
#include "tensor.h"

#include <stdio.h>
#include <string.h>

const char *device_name(Device d) { return d == DEV_CUDA ? "cuda" : "cpu"; }

static void set_contiguous_strides(Tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i];
    }
}

static int check_shape(int ndim, const int64_t *shape, DiceError *err) {
    DICE_CHECK(err, ndim >= 0 && ndim <= TENSOR_MAX_DIMS, "tensor rank %d is outside 0..%d", ndim,
               TENSOR_MAX_DIMS);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        DICE_CHECK(err, shape[i] >= 0, "tensor dimension %d has negative size %lld", i, (long long)shape[i]);
        DICE_CHECK(err, shape[i] == 0 || numel <= INT64_MAX / 16 / shape[i],
                   "tensor of %d dims is too large (dimension %d = %lld)", ndim, i, (long long)shape[i]);
        numel *= shape[i];
    }
    return 0;
}

int tensor_wrap(Tensor *t, void *data, DType dtype, Device device, int ndim, const int64_t *shape,
                DiceError *err) {
    DICE_TRY(check_shape(ndim, shape, err));
    DICE_CHECK(err, dtype_size(dtype) > 0, "invalid dtype %d", (int)dtype);
    memset(t, 0, sizeof *t);
    t->data = data;
    t->dtype = dtype;
    t->device = device;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    set_contiguous_strides(t);
    return 0;
}

int64_t tensor_numel(const Tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t tensor_nbytes(const Tensor *t) { return (size_t)tensor_numel(t) * dtype_size(t->dtype); }

bool tensor_is_contiguous(const Tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *tensor_describe(const Tensor *t, char *buf, size_t bufsize) {
    size_t n = (size_t)snprintf(buf, bufsize, "%s[", dtype_name(t->dtype));
    for (int i = 0; i < t->ndim && n < bufsize; i++)
        n += (size_t)snprintf(buf + n, bufsize - n, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (n < bufsize) snprintf(buf + n, bufsize - n, "] %s", device_name(t->device));
    return buf;
}

static void *offset_ptr(const Tensor *t, int64_t elements) {
    return (char *)t->data + elements * (int64_t)dtype_size(t->dtype);
}

int tensor_narrow(Tensor *out, const Tensor *t, int dim, int64_t start, int64_t length, DiceError *err) {
    DICE_CHECK(err, dim >= 0 && dim < t->ndim, "narrow: dimension %d out of range for a %d-d tensor", dim,
               t->ndim);
    DICE_CHECK(err, start >= 0 && length >= 0 && start <= t->shape[dim] - length,
               "narrow: [%lld, %lld) is outside dimension %d of size %lld", (long long)start,
               (long long)(start + length), dim, (long long)t->shape[dim]);
    Tensor v = *t;
    v.data = offset_ptr(t, start * t->stride[dim]);
    v.shape[dim] = length;
    *out = v;
    return 0;
}

int tensor_select(Tensor *out, const Tensor *t, int dim, int64_t index, DiceError *err) {
    DICE_CHECK(err, dim >= 0 && dim < t->ndim, "select: dimension %d out of range for a %d-d tensor", dim,
               t->ndim);
    DICE_CHECK(err, index >= 0 && index < t->shape[dim], "select: index %lld outside dimension %d of size %lld",
               (long long)index, dim, (long long)t->shape[dim]);
    Tensor v = *t;
    v.data = offset_ptr(t, index * t->stride[dim]);
    for (int i = dim; i < t->ndim - 1; i++) {
        v.shape[i] = t->shape[i + 1];
        v.stride[i] = t->stride[i + 1];
    }
    v.ndim = t->ndim - 1;
    v.shape[v.ndim] = 0;
    v.stride[v.ndim] = 0;
    *out = v;
    return 0;
}

int tensor_permute(Tensor *out, const Tensor *t, const int *perm, DiceError *err) {
    int seen[TENSOR_MAX_DIMS] = {0};
    Tensor v = *t;
    for (int i = 0; i < t->ndim; i++) {
        DICE_CHECK(err, perm[i] >= 0 && perm[i] < t->ndim && !seen[perm[i]],
                   "permute: entry %d (%d) is not a permutation of 0..%d", i, perm[i], t->ndim - 1);
        seen[perm[i]] = 1;
        v.shape[i] = t->shape[perm[i]];
        v.stride[i] = t->stride[perm[i]];
    }
    *out = v;
    return 0;
}

int tensor_reshape(Tensor *out, const Tensor *t, int ndim, const int64_t *shape, DiceError *err) {
    char desc[128];
    DICE_CHECK(err, tensor_is_contiguous(t), "reshape: %s is not contiguous (copy it first)",
               tensor_describe(t, desc, sizeof desc));
    DICE_CHECK(err, ndim >= 0 && ndim <= TENSOR_MAX_DIMS, "reshape: rank %d is outside 0..%d", ndim,
               TENSOR_MAX_DIMS);
    int64_t resolved[TENSOR_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        resolved[i] = shape[i];
        if (shape[i] == -1) {
            DICE_CHECK(err, infer < 0, "reshape: more than one -1 in the new shape");
            infer = i;
        } else {
            DICE_CHECK(err, shape[i] >= 0, "reshape: negative size %lld", (long long)shape[i]);
            known *= shape[i];
        }
    }
    int64_t numel = tensor_numel(t);
    if (infer >= 0) {
        DICE_CHECK(err, known > 0 && numel % known == 0, "reshape: cannot infer -1 for %s from %lld elements",
                   tensor_describe(t, desc, sizeof desc), (long long)known);
        resolved[infer] = numel / known;
        known *= resolved[infer];
    }
    DICE_CHECK(err, known == numel, "reshape: %s has %lld elements, the new shape %lld",
               tensor_describe(t, desc, sizeof desc), (long long)numel, (long long)known);
    Tensor v;
    DICE_TRY(tensor_wrap(&v, t->data, t->dtype, t->device, ndim, resolved, err));
    *out = v;
    return 0;
}
