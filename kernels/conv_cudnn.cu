// kernels/conv_cudnn.cu — the cuDNN convolution path (DICE_CONV=cudnn) and the kernel lab's baseline:
// cudnnConvolutionForward / BackwardData / BackwardFilter (+ cudnnAddTensor for the bias) on NHWC bf16 tensors
// with fp32 compute, tensor-op math. Same layouts and semantics as kernels/conv.h. The bias gradient is dice's
// own kernel on both paths (cuDNN 9's cudnnConvolutionBackwardBias refuses NHWC bf16: NOT_SUPPORTED).
//
// A ConvCudnn (owned by the DiceCtx that uses it) caches, per convolution shape, the tensor / filter /
// convolution descriptors and, per direction, the fastest algorithm as measured once by cudnnFind*Algorithm;
// one device workspace grows to the largest requirement. Only real CUDA builds with cuDNN compile this file
// (the emulator has no cuDNN; asking for it there is an error at context creation, nn/op_conv.c).
#if defined(DICE_CUDNN) && !defined(DICE_EMU)
#include <stdlib.h>
#include <string.h>

#include "kernels/conv.h"
#include "kernels/cudnn_check.h"
#include "nn/cuda_api.h"

typedef struct ConvCudnnPlan {
    ConvShape shape;
    cudnnTensorDescriptor_t x, y, bias;  // (B, Cin, H, W), (B, Cout, Ho, Wo), (1, Cout, 1, 1); all NHWC bf16
    cudnnFilterDescriptor_t w;           // (Cout, Cin, kh, kw) NHWC = OHWI, bf16
    cudnnConvolutionDescriptor_t conv;   // cross-correlation, fp32 compute
    bool found_fwd, found_data, found_filter;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t data;
    cudnnConvolutionBwdFilterAlgo_t filter;
    cudnnMathType_t fwd_math, data_math, filter_math;
    size_t fwd_ws, data_ws, filter_ws;
} ConvCudnnPlan;

struct ConvCudnn {
    cudnnHandle_t handle;
    ConvCudnnPlan *plans;
    int n_plans, cap_plans;
    void *workspace;
    size_t workspace_bytes;
};

extern "C" int conv_cudnn_create(ConvCudnn **out, void *stream, DiceError *err) {
    *out = NULL;
    ConvCudnn *c = (ConvCudnn *)calloc(1, sizeof *c);
    DICE_CHECK(err, c, "conv2d (cuDNN): out of host memory");
    cudnnStatus_t st = cudnnCreate(&c->handle);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnSetStream(c->handle, (cudaStream_t)stream);
    if (st != CUDNN_STATUS_SUCCESS) {
        conv_cudnn_destroy(c);
        return DICE_FAIL(err, "conv2d (cuDNN): cudnnCreate / cudnnSetStream failed: %s", cudnnGetErrorString(st));
    }
    *out = c;
    return 0;
}

extern "C" void conv_cudnn_destroy(ConvCudnn *c) {
    if (!c) return;
    for (int i = 0; i < c->n_plans; i++) {
        ConvCudnnPlan *p = &c->plans[i];
        cudnnDestroyTensorDescriptor(p->x);
        cudnnDestroyTensorDescriptor(p->y);
        cudnnDestroyTensorDescriptor(p->bias);
        cudnnDestroyFilterDescriptor(p->w);
        cudnnDestroyConvolutionDescriptor(p->conv);
    }
    free(c->plans);
    if (c->workspace) cudaFree(c->workspace);
    if (c->handle) cudnnDestroy(c->handle);
    free(c);
}

static int plan_init(ConvCudnnPlan *p, const ConvShape *s, DiceError *err) {
    memset(p, 0, sizeof *p);
    p->shape = *s;
    CUDNN_TRY(err, cudnnCreateTensorDescriptor(&p->x));
    CUDNN_TRY(err, cudnnCreateTensorDescriptor(&p->y));
    CUDNN_TRY(err, cudnnCreateTensorDescriptor(&p->bias));
    CUDNN_TRY(err, cudnnCreateFilterDescriptor(&p->w));
    CUDNN_TRY(err, cudnnCreateConvolutionDescriptor(&p->conv));
    CUDNN_TRY(err, cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, s->B, s->Cin, s->H, s->W));
    CUDNN_TRY(err,
              cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, s->B, s->Cout, s->Ho, s->Wo));
    CUDNN_TRY(err, cudnnSetTensor4dDescriptor(p->bias, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, 1, s->Cout, 1, 1));
    CUDNN_TRY(err, cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NHWC, s->Cout, s->Cin, s->kh,
                                              s->kw));
    CUDNN_TRY(err, cudnnSetConvolution2dDescriptor(p->conv, s->pad, s->pad, s->stride, s->stride, 1, 1,
                                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_TRY(err, cudnnSetConvolutionMathType(p->conv, CUDNN_TENSOR_OP_MATH));
    int n, c, h, w;
    CUDNN_TRY(err, cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &n, &c, &h, &w));
    DICE_CHECK(err, n == s->B && c == s->Cout && h == s->Ho && w == s->Wo,
               "conv2d (cuDNN): output (%d, %d, %d, %d) differs from dice's (%d, %d, %d, %d)", n, h, w, c, s->B, s->Ho,
               s->Wo, s->Cout);
    return 0;
}

static int get_plan(ConvCudnn *c, const ConvShape *s, ConvCudnnPlan **out, DiceError *err) {
    for (int i = 0; i < c->n_plans; i++)
        if (!memcmp(&c->plans[i].shape, s, sizeof *s)) {
            *out = &c->plans[i];
            return 0;
        }
    if (c->n_plans == c->cap_plans) {
        int cap = c->cap_plans ? 2 * c->cap_plans : 16;
        ConvCudnnPlan *plans = (ConvCudnnPlan *)realloc(c->plans, (size_t)cap * sizeof *plans);
        DICE_CHECK(err, plans, "conv2d (cuDNN): out of host memory for %d plans", cap);
        c->plans = plans;
        c->cap_plans = cap;
    }
    *out = &c->plans[c->n_plans];
    DICE_TRY(plan_init(*out, s, err));
    c->n_plans++;
    return 0;
}

static int reserve_workspace(ConvCudnn *c, size_t bytes, DiceError *err) {
    if (bytes <= c->workspace_bytes) return 0;
    if (c->workspace) CUDA_TRY(err, cudaFree(c->workspace));
    c->workspace = NULL;
    c->workspace_bytes = 0;
    CUDA_TRY(err, cudaMalloc(&c->workspace, bytes));
    c->workspace_bytes = bytes;
    return 0;
}

// The fastest successful algorithm of a cudnnFind*Algorithm result list (sorted by time).
#define PICK_FASTEST(perf, n, what, algo_out, math_out, ws_out)                                                   \
    do {                                                                                                          \
        int pick_ = -1;                                                                                           \
        for (int i_ = 0; i_ < (n) && pick_ < 0; i_++)                                                             \
            if ((perf)[i_].status == CUDNN_STATUS_SUCCESS) pick_ = i_;                                            \
        DICE_CHECK(err, pick_ >= 0, "conv2d (cuDNN): no %s algorithm for B %d, %dx%d, %d -> %d, %dx%d/%d", what, \
                   s->B, s->H, s->W, s->Cin, s->Cout, s->kh, s->kw, s->stride);                                   \
        (algo_out) = (perf)[pick_].algo;                                                                          \
        (math_out) = (perf)[pick_].mathType;                                                                      \
        (ws_out) = (perf)[pick_].memory;                                                                          \
    } while (0)

extern "C" int conv2d_forward_cudnn(ConvCudnn *c, const ConvShape *s, uint16_t *y, const uint16_t *x,
                                    const uint16_t *w, const uint16_t *bias, DiceError *err) {
    ConvCudnnPlan *p;
    DICE_TRY(get_plan(c, s, &p, err));
    if (!p->found_fwd) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        int n = 0;
        CUDNN_TRY(err, cudnnFindConvolutionForwardAlgorithm(c->handle, p->x, p->w, p->conv, p->y,
                                                            CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf));
        PICK_FASTEST(perf, n, "forward", p->fwd, p->fwd_math, p->fwd_ws);
        p->found_fwd = true;
    }
    DICE_TRY(reserve_workspace(c, p->fwd_ws, err));
    const float one = 1.0f, zero = 0.0f;
    CUDNN_TRY(err, cudnnSetConvolutionMathType(p->conv, p->fwd_math));
    CUDNN_TRY(err, cudnnConvolutionForward(c->handle, &one, p->x, x, p->w, w, p->conv, p->fwd, c->workspace,
                                           c->workspace_bytes, &zero, p->y, y));
    if (bias) CUDNN_TRY(err, cudnnAddTensor(c->handle, &one, p->bias, bias, &one, p->y, y));
    return 0;
}

extern "C" int conv2d_backward_data_cudnn(ConvCudnn *c, const ConvShape *s, uint16_t *dx, const uint16_t *dy,
                                          const uint16_t *w, DiceError *err) {
    ConvCudnnPlan *p;
    DICE_TRY(get_plan(c, s, &p, err));
    if (!p->found_data) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        int n = 0;
        CUDNN_TRY(err, cudnnFindConvolutionBackwardDataAlgorithm(c->handle, p->w, p->y, p->conv, p->x,
                                                                 CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf));
        PICK_FASTEST(perf, n, "data gradient", p->data, p->data_math, p->data_ws);
        p->found_data = true;
    }
    DICE_TRY(reserve_workspace(c, p->data_ws, err));
    const float one = 1.0f, zero = 0.0f;
    CUDNN_TRY(err, cudnnSetConvolutionMathType(p->conv, p->data_math));
    CUDNN_TRY(err, cudnnConvolutionBackwardData(c->handle, &one, p->w, w, p->y, dy, p->conv, p->data, c->workspace,
                                                c->workspace_bytes, &zero, p->x, dx));
    return 0;
}

extern "C" int conv2d_backward_weight_cudnn(ConvCudnn *c, const ConvShape *s, uint16_t *dw, const uint16_t *dy,
                                            const uint16_t *x, DiceError *err) {
    ConvCudnnPlan *p;
    DICE_TRY(get_plan(c, s, &p, err));
    if (!p->found_filter) {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        int n = 0;
        CUDNN_TRY(err, cudnnFindConvolutionBackwardFilterAlgorithm(c->handle, p->x, p->y, p->conv, p->w,
                                                                   CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf));
        PICK_FASTEST(perf, n, "weight gradient", p->filter, p->filter_math, p->filter_ws);
        p->found_filter = true;
    }
    DICE_TRY(reserve_workspace(c, p->filter_ws, err));
    const float one = 1.0f, zero = 0.0f;
    CUDNN_TRY(err, cudnnSetConvolutionMathType(p->conv, p->filter_math));
    CUDNN_TRY(err, cudnnConvolutionBackwardFilter(c->handle, &one, p->x, x, p->y, dy, p->conv, p->filter, c->workspace,
                                                  c->workspace_bytes, &zero, p->w, dw));
    return 0;
}
#endif
