// kernels/gemm.h — matrix products for linear layers and batched matmul, on three engines:
//   gemm_cpu           CPU twin (kernels/gemm_cpu.c): OpenBLAS sgemm/dgemm, bias and activation after;
//   gemm_custom_cuda   the project's own kernels (kernels/gemm.cu): bf16 on tensor cores (mma.sync
//                      m16n8k16, fp32 accumulation), f32 with plain FMA;
//   gemm_cublaslt      cuBLASLt (kernels/gemm_cublaslt.cu; real CUDA build only);
// plus the linear layer's elementwise helpers (activation forward / backward, bias gradient) in
// kernels/gemm_cpu.c and kernels/gemm_act.cu.
// A GemmHandle (kernels/gemm_dispatch.c; one per CUDA DiceCtx, ctx->gemm, made by ctx_init_cuda) owns the
// cuBLASLt handle, workspace and plan cache, and says which CUDA engine gemm_cuda uses (env
// DICE_GEMM=cublaslt|custom, read at creation):
//   real CUDA build:  default cublaslt; custom on request.
//   emulated build (DICE_EMU, the tests): custom is the only engine, because cuBLASLt does not exist in
//                     the SIMT emulator. This is a property of the build: asking for cublaslt there is
//                     an error, never a silent substitution.
//
// Convention: row-major, per batch entry z < batch,
//     C[z] (M, N) = op(A[z]) (M, K) @ op(B[z]) (K, N)  (+ bias (N) broadcast over rows)  then act
// op(A) = A as stored (M, K), or, with trans_a, the transpose of A stored (K, M); likewise op(B) is B
// stored (K, N), or with trans_b the transpose of B stored (N, K) — a PyTorch linear weight (out, in).
// lda/ldb/ldc are the elements between consecutive stored rows; stride_* the elements between batch
// entries. Linear forward is (trans_b); its input gradient (dZ W) is plain; its weight gradient (dZ^T X)
// is (trans_a).
// Dtype pairs (in -> out): f32 -> f32 and f64 -> f64 (CPU); bf16 -> bf16, bf16 -> f32, f32 -> f32 (CUDA).
// The bias has the output's dtype (as cuBLASLt's default). f32 on CUDA is true fp32: cuBLASLt runs with
// CUBLAS_COMPUTE_32F (TF32 off, for parity with the CPU reference), the custom engine with FMA.
#pragma once
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "nn/dtype.h"
#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// Activation applied after the bias (the linear layer's fused epilogue). Which models need which:
//   RELU       the DICE sharpener (fc1 and the attention output projection feed ReLUs);
//   GELU_TANH  0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))): PixArt's MLP, T5's gated "gelu_new";
//              this is cuBLASLt's GELU epilogue;
//   GELU_ERF   0.5 z (1 + erf(z / sqrt 2)): OpenCLIP / CLIP-bigG MLPs (SDXL's second text encoder).
// SD's GEGLU (x * gelu_erf(gate) on the two halves of one projection) is not an epilogue of the GEMM:
// it is a plain linear followed by the GEGLU op.
typedef enum GemmAct { GEMM_ACT_NONE = 0, GEMM_ACT_RELU, GEMM_ACT_GELU_TANH, GEMM_ACT_GELU_ERF } GemmAct;
const char *gemm_act_name(GemmAct act);

typedef struct GemmArgs {
    int64_t M, N, K;
    int64_t batch;                         // >= 0
    bool trans_a, trans_b;
    const void *a, *b;                     // dtype `in`
    void *c;                               // dtype `out`; never aliases a or b
    const void *bias;                      // (N) of dtype `out`, or NULL
    int64_t lda, ldb, ldc;                 // stored row pitch, in elements
    int64_t stride_a, stride_b, stride_c;  // batch pitch, in elements
    DType in, out;
    GemmAct act;
} GemmArgs;

// Fills a GemmArgs for contiguous operands (ld = stored row length, batch pitch = stored matrix size).
GemmArgs gemm_args_contiguous(int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
                              const void *a, const void *b, void *c, const void *bias, DType in, DType out,
                              GemmAct act);
// Shape / dtype / pitch checks shared by every engine; `engine` names the caller in messages.
int gemm_check_args(const GemmArgs *g, const char *engine, DiceError *err);

int gemm_cpu(const GemmArgs *g, DiceError *err);
int gemm_custom_cuda(const GemmArgs *g, void *stream, DiceError *err);

// Elementwise helpers of the linear layer's unfused paths and backward (contiguous, n elements):
//   act_forward   y = act(z)                                       (dtype f64/f32 CPU; f32/bf16 CUDA)
//   act_backward  dz = dy * act'(z)   (z: the pre-activation; for RELU the output y works as well)
//   bias_grad     db (cols) = sum over rows of dz (rows, cols)     (fp32 or f64 accumulation)
int gemm_act_forward_cpu(void *y, const void *z, int64_t n, DType dtype, GemmAct act, DiceError *err);
int gemm_act_backward_cpu(void *dz, const void *dy, const void *z, int64_t n, DType dtype, GemmAct act,
                          DiceError *err);
int gemm_bias_grad_cpu(void *db, const void *dz, int64_t rows, int64_t cols, DType dtype, DiceError *err);
int gemm_act_forward_cuda(void *y, const void *z, int64_t n, DType dtype, GemmAct act, void *stream,
                          DiceError *err);
// c = act(c) in place on (rows, cols) with row stride ld (the cuBLASLt path's erf GELU on a padded C)
int gemm_act_forward_strided_cuda(void *c, int64_t rows, int64_t cols, int64_t ld, DType dtype, GemmAct act,
                                  void *stream, DiceError *err);
int gemm_act_backward_cuda(void *dz, const void *dy, const void *z, int64_t n, DType dtype, GemmAct act,
                           void *stream, DiceError *err);
int gemm_bias_grad_cuda(void *db, const void *dz, int64_t rows, int64_t cols, DType dtype, void *stream,
                        DiceError *err);

// ---------------------------------------------------------------- CUDA engine selection
typedef enum GemmBackend { GEMM_BACKEND_CUBLASLT = 0, GEMM_BACKEND_CUSTOM } GemmBackend;
const char *gemm_backend_name(GemmBackend b);

typedef struct GemmHandle {
    GemmBackend backend;
    void *lt;               // cublasLtHandle_t (real CUDA build), NULL in the emulated build
    void *workspace;        // cuBLASLt workspace (device memory)
    size_t workspace_bytes;
    void *plans;            // cuBLASLt descriptors and algorithms of recent problem shapes (gemm_cublaslt.cu)
} GemmHandle;

// Creates the handle for the current CUDA device, with the engine named by $DICE_GEMM (unset: the
// build's default, see above). Fails on an unknown name or an engine this build does not have.
int gemm_handle_create(GemmHandle **out, DiceError *err);
void gemm_handle_destroy(GemmHandle *h);
int gemm_handle_set_backend(GemmHandle *h, GemmBackend backend, DiceError *err);
// C = ... on the handle's engine, queued on `stream`.
int gemm_cuda(GemmHandle *h, const GemmArgs *g, void *stream, DiceError *err);

// cuBLASLt (kernels/gemm_cublaslt.cu, real CUDA build only).
int gemm_cublaslt_init(GemmHandle *h, DiceError *err);
void gemm_cublaslt_free(GemmHandle *h);
int gemm_cublaslt(GemmHandle *h, const GemmArgs *g, void *stream, DiceError *err);

#ifdef __cplusplus
}
#endif

// ---------------------------------------------------------------- activations (host and device)
// One definition for the CPU twin (float and double) and the CUDA kernels (float).
#define GEMM_SQRT_2_OVER_PI 0.7978845608028654
#define GEMM_INV_SQRT_2 0.7071067811865476
#define GEMM_INV_SQRT_2PI 0.3989422804014327

#define GEMM_DEFINE_ACT(T, SUFFIX, TANH, ERF, EXP)                                                      \
    static inline DICE_HD T gemm_act_##SUFFIX(GemmAct act, T z) {                                     \
        switch (act) {                                                                                 \
        case GEMM_ACT_RELU: return z > (T)0 ? z : (T)0;                                                \
        case GEMM_ACT_GELU_TANH:                                                                       \
            return (T)0.5 * z * ((T)1 + TANH((T)GEMM_SQRT_2_OVER_PI * (z + (T)0.044715 * z * z * z))); \
        case GEMM_ACT_GELU_ERF: return (T)0.5 * z * ((T)1 + ERF(z * (T)GEMM_INV_SQRT_2));             \
        default: return z;                                                                             \
        }                                                                                              \
    }                                                                                                  \
    /* d act / d z at z */                                                                             \
    static inline DICE_HD T gemm_act_grad_##SUFFIX(GemmAct act, T z) {                                \
        switch (act) {                                                                                 \
        case GEMM_ACT_RELU: return z > (T)0 ? (T)1 : (T)0;                                             \
        case GEMM_ACT_GELU_TANH: {                                                                     \
            T th = TANH((T)GEMM_SQRT_2_OVER_PI * (z + (T)0.044715 * z * z * z));                       \
            return (T)0.5 * ((T)1 + th) +                                                              \
                   (T)0.5 * z * ((T)1 - th * th) * (T)GEMM_SQRT_2_OVER_PI * ((T)1 + (T)0.134145 * z * z); \
        }                                                                                              \
        case GEMM_ACT_GELU_ERF:                                                                        \
            return (T)0.5 * ((T)1 + ERF(z * (T)GEMM_INV_SQRT_2)) + z * (T)GEMM_INV_SQRT_2PI * EXP((T)-0.5 * z * z); \
        default: return (T)1;                                                                          \
        }                                                                                              \
    }
GEMM_DEFINE_ACT(float, f32, tanhf, erff, expf)
GEMM_DEFINE_ACT(double, f64, tanh, erf, exp)
#undef GEMM_DEFINE_ACT
