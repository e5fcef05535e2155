// kernels/conv.h — 2-D convolution, NHWC, as an implicit matrix product: the CPU twins (kernels/conv_cpu.c),
// the custom tensor-core CUDA kernels (kernels/conv_fwd.cu: forward and data gradient; kernels/conv_wgrad.cu:
// weight and bias gradients; shared pieces in kernels/conv_igemm.cuh), the cuDNN path (kernels/conv_cudnn.cu,
// real CUDA builds with cuDNN only) and the per-context choice between the two (kernels/conv_handle.c).
//
// Layouts (PyTorch's conv2d semantics, channels last):
//   x  (B, H, W, Cin)      input
//   w  (Cout, kh, kw, Cin) weight, "OHWI": PyTorch's (Cout, Cin, kh, kw) repacked once at load
//   b  (Cout)              bias, optional
//   y  (B, Ho, Wo, Cout)   output, Ho = (H + 2 pad - kh) / stride + 1 (likewise Wo)
// As matrix products (row-major, K ordered (ky, kx, ci) like a weight row):
//   forward  y  (B Ho Wo, Cout)      = im2col(x) (B Ho Wo, kh kw Cin) . w^T (kh kw Cin, Cout) + b
//   dgrad    dx (B H W, Cin)         = col2im(dy (B Ho Wo, Cout) . w (Cout, kh kw Cin))
//   wgrad    dw (Cout, kh kw Cin)    = dy^T (Cout, B Ho Wo) . im2col(x) (B Ho Wo, kh kw Cin)
//   bias     db (Cout)               = column sums of dy (B Ho Wo, Cout)
// Gradients are written (not accumulated): callers add them where they belong (nn/op_conv.c).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "nn/dtype.h"
#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ConvShape {
    int B, H, W, Cin;   // input (B, H, W, Cin)
    int Cout, kh, kw;   // weight (Cout, kh, kw, Cin)
    int stride, pad;    // same along both axes; zero padding
    int Ho, Wo;         // output (B, Ho, Wo, Cout), filled by conv_shape_init
} ConvShape;

// Fills s and checks the sizes (all positive, output non-empty, GEMM sizes within int range).
int conv_shape_init(ConvShape *s, int B, int H, int W, int Cin, int Cout, int kh, int kw, int stride, int pad,
                    DiceError *err);
// Multiply-adds x 2 of one forward (also of one data gradient or one weight gradient).
double conv_flops(const ConvShape *s);

// ---------------------------------------------------------------- CPU (f32 or f64; im2col + OpenBLAS)
int conv2d_forward_cpu(const ConvShape *s, DType dt, void *y, const void *x, const void *w, const void *bias,
                       DiceError *err);
int conv2d_backward_data_cpu(const ConvShape *s, DType dt, void *dx, const void *dy, const void *w, DiceError *err);
int conv2d_backward_weight_cpu(const ConvShape *s, DType dt, void *dw, const void *dy, const void *x, DiceError *err);
int conv2d_backward_bias_cpu(const ConvShape *s, DType dt, void *dbias, const void *dy, DiceError *err);

// ---------------------------------------------------------------- CUDA, custom kernels (bf16, fp32 accumulation)
// Tensor-core implicit GEMM (kernels/conv_igemm.cuh). Channel counts that are multiples of 8 take 16-byte
// cp.async loads; others (conv_in's Cin = 4, conv_out's Cout = 4) a scalar gather into the same tiles.
// `tile` picks the block tile (BM x BN of the GEMM); CONV_TILE_AUTO chooses from the shape (what the ops use;
// tests and the kernel lab force each one).
typedef enum ConvTile { CONV_TILE_AUTO = 0, CONV_TILE_128x128, CONV_TILE_128x64, CONV_TILE_64x64 } ConvTile;
const char *conv_tile_name(ConvTile tile);

// y = conv(x, w) + bias (bias may be NULL).
int conv2d_forward_cuda(const ConvShape *s, ConvTile tile, uint16_t *y, const uint16_t *x, const uint16_t *w,
                        const uint16_t *bias, void *stream, DiceError *err);
// dx from dy: a forward convolution of dy with the flipped weight, one launch per output parity class
// (stride x stride of them), so a stride-2 data gradient multiplies no structural zeros.
int conv2d_backward_data_cuda(const ConvShape *s, ConvTile tile, uint16_t *dx, const uint16_t *dy, const uint16_t *w,
                              void *stream, DiceError *err);
// dw by split-K over the B Ho Wo pixels into fp32 partials (a device workspace of
// conv2d_backward_weight_workspace(s, tile) bytes), then one reduction over the splits to bf16.
size_t conv2d_backward_weight_workspace(const ConvShape *s, ConvTile tile);
int conv2d_backward_weight_cuda(const ConvShape *s, ConvTile tile, uint16_t *dw, const uint16_t *dy, const uint16_t *x,
                                float *workspace, void *stream, DiceError *err);
// dbias = column sums of dy, the same way (workspace: conv2d_backward_bias_workspace(s) bytes).
size_t conv2d_backward_bias_workspace(const ConvShape *s);
int conv2d_backward_bias_cuda(const ConvShape *s, uint16_t *dbias, const uint16_t *dy, float *workspace, void *stream,
                              DiceError *err);

// ---------------------------------------------------------------- CUDA, cuDNN (bf16 NHWC, fp32 compute)
// Present in real CUDA builds that found cuDNN (DICE_CUDNN, not DICE_EMU). A ConvCudnn holds the handle,
// the descriptors and chosen algorithms of every shape seen (found once per shape with
// cudnnFind*Algorithm) and one workspace that grows to the largest need; its owner (DiceCtx) frees it.
typedef struct ConvCudnn ConvCudnn;
#if defined(DICE_CUDNN) && !defined(DICE_EMU)
int conv_cudnn_create(ConvCudnn **out, void *stream, DiceError *err);
void conv_cudnn_destroy(ConvCudnn *c);  // NULL is allowed
int conv2d_forward_cudnn(ConvCudnn *c, const ConvShape *s, uint16_t *y, const uint16_t *x, const uint16_t *w,
                         const uint16_t *bias, DiceError *err);
int conv2d_backward_data_cudnn(ConvCudnn *c, const ConvShape *s, uint16_t *dx, const uint16_t *dy, const uint16_t *w,
                               DiceError *err);
int conv2d_backward_weight_cudnn(ConvCudnn *c, const ConvShape *s, uint16_t *dw, const uint16_t *dy, const uint16_t *x,
                                 DiceError *err);
#endif

// ---------------------------------------------------------------- which CUDA path (kernels/conv_handle.c)
// One ConvHandle per CUDA DiceCtx (ctx->conv), created by ctx_init_cuda. DICE_CONV is read once there:
// unset or "custom" -> the custom kernels (the default); "cudnn" -> cuDNN. Asking for cuDNN in a build
// without it (the emulated build, or no cuDNN found by make) is an error, never a silent substitution.
typedef enum ConvBackend { CONV_BACKEND_CUSTOM = 0, CONV_BACKEND_CUDNN } ConvBackend;
typedef struct ConvHandle ConvHandle;
int conv_handle_create(ConvHandle **out, void *stream, DiceError *err);
void conv_handle_destroy(ConvHandle *h);  // NULL is allowed
ConvBackend conv_handle_backend(const ConvHandle *h);
int conv_handle_set_backend(ConvHandle *h, ConvBackend backend, DiceError *err);
// The cuDNN state of the handle, created on first use (fails in builds without cuDNN).
int conv_handle_cudnn(ConvHandle *h, ConvCudnn **out, DiceError *err);

#ifdef __cplusplus
}
#endif
