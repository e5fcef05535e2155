// nn/context.h — the execution context: which device ops run on and, for CUDA, the stream they
// are queued on. Everything that would otherwise be global (streams, and later library handles and
// workspaces) lives here and is passed explicitly.
#pragma once
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct DiceCtx {
    Device device;
    int cuda_device;   // CUDA device index, -1 for a CPU context
    void *stream;      // cudaStream_t of this context (NULL for CPU)
    void *gemm;        // GemmHandle * (kernels/gemm.h): GEMM engine, cuBLASLt handle + workspace (NULL for CPU)
    void *conv;        // ConvHandle * (kernels/conv.h): convolution backend, DICE_CONV=custom|cudnn (NULL for CPU)
} DiceCtx;

void ctx_init_cpu(DiceCtx *ctx);
// Select CUDA device `index` and create a stream; fails clearly in a build without CUDA or with no GPU.
int ctx_init_cuda(DiceCtx *ctx, int index, DiceError *err);
// Wait for all work queued on the context.
int ctx_sync(DiceCtx *ctx, DiceError *err);
void ctx_free(DiceCtx *ctx);

#ifdef __cplusplus
}
#endif
