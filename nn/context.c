// nn/context.c — CPU and CUDA execution contexts (see context.h).
#include "context.h"

#include <string.h>

#include "cuda_api.h"
#include "kernels/conv.h"
#include "kernels/gemm.h"

void ctx_init_cpu(DiceCtx *ctx) {
    memset(ctx, 0, sizeof *ctx);
    ctx->device = DEV_CPU;
    ctx->cuda_device = -1;
}

int ctx_init_cuda(DiceCtx *ctx, int index, DiceError *err) {
    ctx_init_cpu(ctx);
#ifdef DICE_CUDA
    int count = 0;
    CUDA_TRY(err, cudaGetDeviceCount(&count));
    DICE_CHECK(err, index >= 0 && index < count, "CUDA device %d requested, %d present", index, count);
    CUDA_TRY(err, cudaSetDevice(index));
    cudaStream_t stream;
    CUDA_TRY(err, cudaStreamCreate(&stream));
    GemmHandle *gemm;
    if (gemm_handle_create(&gemm, err)) {
        cudaStreamDestroy(stream);
        return -1;
    }
    ConvHandle *conv;
    if (conv_handle_create(&conv, stream, err)) {
        gemm_handle_destroy(gemm);
        cudaStreamDestroy(stream);
        return -1;
    }
    ctx->gemm = gemm;
    ctx->conv = conv;
    ctx->device = DEV_CUDA;
    ctx->cuda_device = index;
    ctx->stream = stream;
    return 0;
#else
    (void)index;
    return DICE_FAIL(err, "this build of dice has no CUDA backend (nvcc was not found, or CUDA=0)");
#endif
}

int ctx_sync(DiceCtx *ctx, DiceError *err) {
#ifdef DICE_CUDA
    if (ctx->device == DEV_CUDA) CUDA_TRY(err, cudaStreamSynchronize((cudaStream_t)ctx->stream));
#else
    (void)ctx, (void)err;
#endif
    return 0;
}

void ctx_free(DiceCtx *ctx) {
#ifdef DICE_CUDA
    gemm_handle_destroy(ctx->gemm);
    conv_handle_destroy(ctx->conv);
    if (ctx->stream) cudaStreamDestroy((cudaStream_t)ctx->stream);
#endif
    ctx_init_cpu(ctx);
}
