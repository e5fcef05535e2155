// kernels/gemm_cublaslt.cu — the cuBLASLt GEMM engine (see gemm.h), real CUDA build only: cuBLASLt does
// not exist in the SIMT emulator, so in the emulated build this file compiles to nothing and the custom
// engine is the only one (a property of that build, see gemm_dispatch.c).
//
// Row-major C (M, N) = op(A) op(B) is computed as the column-major product C^T (N, M) = op(B)^T op(A)^T:
// cuBLASLt's "A" is our B and its "B" is our A, with the same transpose flags, and a row-major (r, c)
// matrix is a column-major (c, r) one with the same pitch. The bias (length N) is then per row of the
// column-major D, as CUBLASLT_EPILOGUE_BIAS wants.
//   - bf16 in: CUDA_R_16BF operands, bf16 or f32 output, CUBLAS_COMPUTE_32F (fp32 accumulation);
//   - f32 in:  CUBLAS_COMPUTE_32F, i.e. TF32 off, so that the CUDA f32 path matches the CPU reference
//              (the sharpener trains in fp32); CUBLAS_COMPUTE_32F_FAST_TF32 would trade that for speed.
//   - epilogues: RELU / GELU (tanh approximation) with or without BIAS. cuBLASLt has no erf GELU: for
//     GEMM_ACT_GELU_ERF the GEMM adds the bias and gemm_act_forward_cuda applies the activation after.
//   - backward epilogues are not used. DGELU / DRELU_BGRAD apply an activation's derivative to a GEMM's
//     result (fusing an MLP's second-layer dgrad with the first layer's activation); here the linear op owns
//     its activation, so dz = dy * act'(z) applies to the incoming gradient before this layer's GEMMs: one
//     elementwise pass (gemm_act_backward_cuda). BGRADB could fold db into the dW GEMM, but only the fp32
//     sharpener has trainable layers (a 1232 x 512 column sum), so db is one kernel on both engines.
//   - the workspace (32 MiB, the size NVIDIA recommends for Hopper) belongs to the GemmHandle, and so does
//     a cache of plans (descriptors + the heuristic's algorithm) for the last LT_PLANS problem shapes, so
//     that the steady state of a denoising loop makes no descriptor or heuristic calls; only the bias
//     pointer is set per call.
#ifndef DICE_EMU
#include <cublasLt.h>

#include "kernels/cuda_common.cuh"
#include "kernels/gemm.h"
#include "nn/cuda_api.h"

// Run a cuBLASLt call; on failure record "<call> failed: <status name>: <status text>" and return -1.
#define CUBLAS_TRY(err, call)                                                                           \
    do {                                                                                                \
        cublasStatus_t cublas_try_status_ = (call);                                                     \
        if (cublas_try_status_ != CUBLAS_STATUS_SUCCESS)                                                \
            return dice_fail_at((err), __FILE__, __LINE__, "%s failed: %s: %s", #call,                  \
                                cublasLtGetStatusName(cublas_try_status_),                              \
                                cublasLtGetStatusString(cublas_try_status_));                           \
    } while (0)

static const size_t LT_WORKSPACE_BYTES = (size_t)32 << 20;

// What selects descriptors and algorithm: the GemmArgs without the pointers, plus the pointers' alignment
// (the heuristic reads the bias pointer's too).
struct PlanKey {
    int64_t M, N, K, batch, lda, ldb, ldc, stride_a, stride_b, stride_c;
    int32_t trans_a, trans_b, in, out, act, has_bias;
    uint32_t align_a, align_b, align_c, align_bias;
};

struct Plan {
    PlanKey key;
    bool valid;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;  // cuBLASLt's A (our B), B (our A), C = D
    cublasLtMatmulAlgo_t algo;
};

constexpr int LT_PLANS = 64;
struct PlanCache {
    Plan plans[LT_PLANS];
    int next;  // round-robin replacement
};

static void plan_release(Plan *p) {
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    memset(p, 0, sizeof *p);
}

extern "C" int gemm_cublaslt_init(GemmHandle *h, DiceError *err) {
    cublasLtHandle_t lt;
    CUBLAS_TRY(err, cublasLtCreate(&lt));
    void *ws = NULL;
    cudaError_t st = cudaMalloc(&ws, LT_WORKSPACE_BYTES);
    if (st != cudaSuccess) {
        cublasLtDestroy(lt);
        return DICE_FAIL(err, "cudaMalloc of the %zu MiB cuBLASLt workspace failed: %s: %s", LT_WORKSPACE_BYTES >> 20,
                         cudaGetErrorName(st), cudaGetErrorString(st));
    }
    h->lt = lt;
    h->workspace = ws;
    h->workspace_bytes = LT_WORKSPACE_BYTES;
    h->plans = new PlanCache();  // zeroed: no valid plan
    return 0;
}

extern "C" void gemm_cublaslt_free(GemmHandle *h) {
    PlanCache *cache = static_cast<PlanCache *>(h->plans);
    if (cache) {
        for (Plan &p : cache->plans)
            if (p.valid) plan_release(&p);
        delete cache;
    }
    if (h->workspace) cudaFree(h->workspace);
    if (h->lt) cublasLtDestroy((cublasLtHandle_t)h->lt);
    h->plans = NULL;
    h->workspace = NULL;
    h->lt = NULL;
    h->workspace_bytes = 0;
}

// A column-major rows x cols layout with pitch ld, batched with the given pitch.
static int make_layout(cublasLtMatrixLayout_t *layout, cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld,
                       int64_t batch, int64_t stride, DiceError *err) {
    CUBLAS_TRY(err, cublasLtMatrixLayoutCreate(layout, type, (uint64_t)rows, (uint64_t)cols, ld));
    if (batch > 1) {
        int32_t count = (int32_t)batch;
        CUBLAS_TRY(err, cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                         sizeof count));
        CUBLAS_TRY(err, cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                         sizeof stride));
    }
    return 0;
}

// The alignment (bytes, at most 256) every batch entry of a matrix has: what the heuristic may assume.
static uint32_t alignment_of(const void *p, int64_t batch, int64_t stride, size_t elem) {
    uint32_t align = 256;
    uintptr_t addr = (uintptr_t)p;
    while (align > 1 && (addr % align || (batch > 1 && ((uint64_t)stride * elem) % align))) align >>= 1;
    return align;
}

static cublasLtEpilogue_t epilogue_for(GemmAct act, bool bias) {
    switch (act) {
    case GEMM_ACT_RELU: return bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    case GEMM_ACT_GELU_TANH: return bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    default: return bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;  // NONE, and GELU_ERF's GEMM
    }
}

// The preference destroyed on every return path of plan_build.
struct PrefGuard {
    cublasLtMatmulPreference_t pref = nullptr;
    ~PrefGuard() {
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
    }
};

// Descriptors and algorithm for the problem of `key` (p zeroed; the caller releases p on failure).
static int plan_build(GemmHandle *h, const GemmArgs *g, const PlanKey &key, Plan *p, DiceError *err) {
    p->key = key;
    cudaDataType_t in_type = g->in == DT_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    cudaDataType_t out_type = g->out == DT_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    CUBLAS_TRY(err, cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t op_a = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's A is our B
    cublasOperation_t op_b = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_TRY(err, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
    CUBLAS_TRY(err, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
    cublasLtEpilogue_t epilogue = epilogue_for(g->act, g->bias != NULL);
    CUBLAS_TRY(err, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
    if (g->bias) {
        int32_t bias_type = out_type;
        CUBLAS_TRY(err, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                       sizeof bias_type));
        CUBLAS_TRY(err, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias,
                                                       sizeof g->bias));
    }
    // Column-major views: our B stored (K, N) is (N, K); stored (N, K) [trans_b] is (K, N). Likewise A.
    DICE_TRY(make_layout(&p->a, in_type, g->trans_b ? g->K : g->N, g->trans_b ? g->N : g->K, g->ldb, g->batch,
                         g->stride_b, err));
    DICE_TRY(make_layout(&p->b, in_type, g->trans_a ? g->M : g->K, g->trans_a ? g->K : g->M, g->lda, g->batch,
                         g->stride_a, err));
    DICE_TRY(make_layout(&p->c, out_type, g->N, g->M, g->ldc, g->batch, g->stride_c, err));

    PrefGuard guard;
    CUBLAS_TRY(err, cublasLtMatmulPreferenceCreate(&guard.pref));
    uint64_t ws = h->workspace_bytes;
    CUBLAS_TRY(err, cublasLtMatmulPreferenceSetAttribute(guard.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                         sizeof ws));
    const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    const uint32_t align[4] = {key.align_a, key.align_b, key.align_c, key.align_c};
    for (int i = 0; i < 4; i++)
        CUBLAS_TRY(err, cublasLtMatmulPreferenceSetAttribute(guard.pref, align_attr[i], &align[i], sizeof align[i]));
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    CUBLAS_TRY(err, cublasLtMatmulAlgoGetHeuristic((cublasLtHandle_t)h->lt, p->op, p->a, p->b, p->c, p->c, guard.pref,
                                                   1, &result, &found));
    DICE_CHECK(err, found > 0,
               "gemm (cuBLASLt): no algorithm for %s -> %s, M %lld, N %lld, K %lld, batch %lld, trans_a %d, "
               "trans_b %d, epilogue %s%s",
               dtype_name(g->in), dtype_name(g->out), (long long)g->M, (long long)g->N, (long long)g->K,
               (long long)g->batch, g->trans_a, g->trans_b, gemm_act_name(g->act), g->bias ? " + bias" : "");
    p->algo = result.algo;
    p->valid = true;
    return 0;
}

// The cached plan for g, built (replacing the oldest entry) if there is none.
static int plan_for(GemmHandle *h, const GemmArgs *g, Plan **out, DiceError *err) {
    PlanKey key;
    memset(&key, 0, sizeof key);
    key.M = g->M, key.N = g->N, key.K = g->K, key.batch = g->batch;
    key.lda = g->lda, key.ldb = g->ldb, key.ldc = g->ldc;
    key.stride_a = g->stride_a, key.stride_b = g->stride_b, key.stride_c = g->stride_c;
    key.trans_a = g->trans_a, key.trans_b = g->trans_b, key.in = g->in, key.out = g->out, key.act = g->act;
    key.has_bias = g->bias != NULL;
    key.align_a = alignment_of(g->b, g->batch, g->stride_b, dtype_size(g->in));  // cuBLASLt's A is our B
    key.align_b = alignment_of(g->a, g->batch, g->stride_a, dtype_size(g->in));
    key.align_c = alignment_of(g->c, g->batch, g->stride_c, dtype_size(g->out));
    key.align_bias = g->bias ? alignment_of(g->bias, 1, 0, dtype_size(g->out)) : 0;
    PlanCache *cache = static_cast<PlanCache *>(h->plans);
    for (Plan &p : cache->plans)
        if (p.valid && !memcmp(&p.key, &key, sizeof key)) {
            *out = &p;
            return 0;
        }
    Plan *p = &cache->plans[cache->next];
    cache->next = (cache->next + 1) % LT_PLANS;
    plan_release(p);
    if (plan_build(h, g, key, p, err)) {
        plan_release(p);
        return -1;
    }
    *out = p;
    return 0;
}

extern "C" int gemm_cublaslt(GemmHandle *h, const GemmArgs *g, void *stream, DiceError *err) {
    DICE_TRY(gemm_check_args(g, "gemm (cuBLASLt)", err));
    bool bf16 = g->in == DT_BF16 && (g->out == DT_BF16 || g->out == DT_F32);
    DICE_CHECK(err, bf16 || (g->in == DT_F32 && g->out == DT_F32),
               "gemm (cuBLASLt): %s -> %s is not supported (bf16 -> bf16, bf16 -> f32, f32 -> f32)",
               dtype_name(g->in), dtype_name(g->out));
    DICE_CHECK(err, h && h->lt && h->plans, "gemm (cuBLASLt): the GEMM handle has no cuBLASLt handle");
    DICE_CHECK(err, g->K > 0, "gemm (cuBLASLt): K = 0 is not supported");
    DICE_CHECK(err, g->batch <= INT32_MAX, "gemm (cuBLASLt): batch %lld is too large", (long long)g->batch);
    bool erf_after = g->act == GEMM_ACT_GELU_ERF;
    if (g->M == 0 || g->N == 0 || g->batch == 0) return 0;
    Plan *p;
    DICE_TRY(plan_for(h, g, &p, err));
    if (g->bias)
        CUBLAS_TRY(err, cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias,
                                                       sizeof g->bias));
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_TRY(err, cublasLtMatmul((cublasLtHandle_t)h->lt, p->op, &alpha, g->b, p->a, g->a, p->b, &beta, g->c, p->c,
                                   g->c, p->c, &p->algo, h->workspace, h->workspace_bytes, (cudaStream_t)stream));
    if (erf_after && g->ldc == g->N && (g->batch <= 1 || g->stride_c == g->M * g->N))
        DICE_TRY(gemm_act_forward_cuda(g->c, g->c, g->M * g->N * g->batch, g->out, GEMM_ACT_GELU_ERF, stream, err));
    else if (erf_after && (g->batch <= 1 || g->stride_c == g->M * g->ldc))  // rows padded, matrices packed
        DICE_TRY(gemm_act_forward_strided_cuda(g->c, g->M * g->batch, g->N, g->ldc, g->out, GEMM_ACT_GELU_ERF, stream,
                                               err));
    else if (erf_after)
        for (int64_t z = 0; z < g->batch; z++)
            DICE_TRY(gemm_act_forward_strided_cuda((char *)g->c + z * g->stride_c * (int64_t)dtype_size(g->out), g->M,
                                                   g->N, g->ldc, g->out, GEMM_ACT_GELU_ERF, stream, err));
    return 0;
}
#endif
