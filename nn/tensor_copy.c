// nn/tensor_copy.c — tensor copies on the CPU, on a CUDA device, and between them (see tensor_copy.h).
#include "tensor_copy.h"

#include <stdbool.h>
#include <string.h>

#include "convert_elem.h"
#include "cuda_api.h"
#include "kernels/convert.h"

static int check_copy(const Tensor *dst, const Tensor *src, DiceError *err) {
    char a[128], b[128];
    DICE_CHECK(err, tensor_same_shape(dst, src), "copy: shape mismatch, destination %s, source %s",
               tensor_describe(dst, a, sizeof a), tensor_describe(src, b, sizeof b));
    DICE_CHECK(err, dice_convertible(dst->dtype) && dice_convertible(src->dtype),
               "copy: conversion from %s to %s is not supported", dtype_name(src->dtype), dtype_name(dst->dtype));
    return 0;
}

static void plan_from(ConvertPlan *p, const Tensor *dst, const Tensor *src) {
    memset(p, 0, sizeof *p);
    p->ndim = dst->ndim;
    for (int i = 0; i < dst->ndim; i++) {
        p->shape[i] = dst->shape[i];
        p->dst_stride[i] = dst->stride[i];
        p->src_stride[i] = src->stride[i];
    }
    p->dst_dtype = dst->dtype;
    p->src_dtype = src->dtype;
}

// CPU twin of kernels/convert.cu: the same index decomposition and the same element conversion.
static void convert_cpu(void *dst, const void *src, const ConvertPlan *p) {
    int64_t n = 1;
    for (int i = 0; i < p->ndim; i++) n *= p->shape[i];
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t idx = 0; idx < n; idx++) {
        int64_t rest = idx, di = 0, si = 0;
        for (int d = p->ndim - 1; d >= 0; d--) {
            int64_t c = rest % p->shape[d];
            rest /= p->shape[d];
            di += c * p->dst_stride[d];
            si += c * p->src_stride[d];
        }
        dice_convert_elem(dst, p->dst_dtype, di, src, p->src_dtype, si);
    }
}

int tensor_copy(DiceCtx *ctx, Tensor *dst, const Tensor *src, DiceError *err) {
    DICE_TRY(check_copy(dst, src, err));
    if (tensor_numel(dst) == 0) return 0;
    ConvertPlan plan;
    plan_from(&plan, dst, src);
    if (dst->device == DEV_CPU && src->device == DEV_CPU) {
        bool flat = tensor_is_contiguous(dst) && tensor_is_contiguous(src);
        int64_t n = tensor_numel(dst);
        if (flat && dst->dtype == src->dtype) {  // the common case (first gradients, staging): a plain copy
            size_t bytes = tensor_nbytes(dst), chunk = (size_t)1 << 20;
            int64_t chunks = (int64_t)((bytes + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (chunks > 1)
            for (int64_t k = 0; k < chunks; k++) {
                size_t at = (size_t)k * chunk, len = bytes - at < chunk ? bytes - at : chunk;
                memcpy((char *)dst->data + at, (const char *)src->data + at, len);
            }
        } else if (flat) {  // a conversion without the index arithmetic
#pragma omp parallel for schedule(static) if (n > 65536)
            for (int64_t i = 0; i < n; i++) dice_convert_elem(dst->data, dst->dtype, i, src->data, src->dtype, i);
        } else {
            convert_cpu(dst->data, src->data, &plan);
        }
        return 0;
    }
#ifdef DICE_CUDA
    DICE_CHECK(err, ctx->device == DEV_CUDA, "copy: a CUDA copy needs a CUDA context");
    cudaStream_t stream = (cudaStream_t)ctx->stream;
    if (dst->device == DEV_CUDA && src->device == DEV_CUDA) {
        if (convert_cuda(dst->data, src->data, &plan, ctx->stream, err)) {
            dice_error_context(err, "copy %s -> %s", dtype_name(src->dtype), dtype_name(dst->dtype));
            return -1;
        }
        return 0;
    }
    char a[128], b[128];
    DICE_CHECK(err, dst->dtype == src->dtype && tensor_is_contiguous(dst) && tensor_is_contiguous(src),
               "copy between devices needs the same dtype and contiguous tensors (destination %s, source %s)",
               tensor_describe(dst, a, sizeof a), tensor_describe(src, b, sizeof b));
    enum cudaMemcpyKind kind = dst->device == DEV_CUDA ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;
    CUDA_TRY(err, cudaMemcpyAsync(dst->data, src->data, tensor_nbytes(src), kind, stream));
    CUDA_TRY(err, cudaStreamSynchronize(stream));
    return 0;
#else
    (void)ctx;
    return DICE_FAIL(err, "copy: this build of dice has no CUDA backend");
#endif
}

int tensor_to(DiceCtx *ctx, Arena *arena, Tensor *out, const Tensor *src, DType dtype, DiceError *err) {
    Tensor result;
    DICE_TRY(arena_tensor(arena, &result, dtype, src->ndim, src->shape, err));
    if (src->device == arena->device) {
        DICE_TRY(tensor_copy(ctx, &result, src, err));
    } else if (src->dtype == dtype) {
        DICE_TRY(tensor_copy(ctx, &result, src, err));
    } else {
        Tensor moved;  // same dtype, destination device; then convert there
        DICE_TRY(arena_tensor(arena, &moved, src->dtype, src->ndim, src->shape, err));
        DICE_TRY(tensor_copy(ctx, &moved, src, err));
        DICE_TRY(tensor_copy(ctx, &result, &moved, err));
    }
    *out = result;
    return 0;
}

int tensor_zero(DiceCtx *ctx, Tensor *t, DiceError *err) {
    char desc[128];
    DICE_CHECK(err, tensor_is_contiguous(t), "zero: %s is not contiguous", tensor_describe(t, desc, sizeof desc));
    if (t->device == DEV_CPU) {
        memset(t->data, 0, tensor_nbytes(t));
        return 0;
    }
#ifdef DICE_CUDA
    DICE_CHECK(err, ctx->device == DEV_CUDA, "zero: a CUDA tensor needs a CUDA context");
    CUDA_TRY(err, cudaMemsetAsync(t->data, 0, tensor_nbytes(t), (cudaStream_t)ctx->stream));
    return 0;
#else
    (void)ctx;
    return DICE_FAIL(err, "zero: this build of dice has no CUDA backend");
#endif
}
