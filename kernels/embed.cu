// kernels/embed.cu — timestep and token + position embeddings on a CUDA device (see embed.h); CPU twins in
// kernels/embed_cpu.c, with the same arithmetic.
#include "kernels/elementwise.cuh"
#include "kernels/embed.h"
#include "nn/cuda_api.h"

// out (B, dim): one thread per element. neg_log_period = fp32(-ln(max_period)), divisor = fp32(half - freq_shift).
template <typename T>
static __global__ void timestep_kernel(T *out, const float *timesteps, int64_t b, int64_t dim, float neg_log_period,
                                float divisor, float scale, bool flip) {
    int64_t half_dim = dim / 2;
    DICE_GRID_STRIDE(e, b * dim) {
        int64_t j = e % dim;
        float v = 0.0f;  // odd dim: padding column
        if (j < 2 * half_dim) {
            int64_t i = j % half_dim;
            float exponent = neg_log_period * (float)i;
            exponent = exponent / divisor;
            float freq = (float)exp((double)exponent);
            float arg = scale * (timesteps[e / dim] * freq);
            bool use_cos = (j < half_dim) == flip;
            v = (float)(use_cos ? cos((double)arg) : sin((double)arg));
        }
        dice_store_f32(out, e, v);
    }
}

extern "C" int embed_timestep_cuda(void *out, DType out_dtype, const float *timesteps, int64_t b,
                                   const TimestepEmbedConfig *cfg, void *stream, DiceError *err) {
    int64_t n = b * cfg->dim;
    if (n == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    float nlp = (float)-log(cfg->max_period), div = (float)((double)(cfg->dim / 2) - cfg->freq_shift);
    float scale = (float)cfg->scale;
    if (out_dtype == DT_F32)
        DICE_LAUNCH(timestep_kernel<float>, ew_grid(n), EW_THREADS, 0, s, (float *)out, timesteps, b, cfg->dim, nlp,
                    div, scale, cfg->flip_sin_to_cos);
    else if (out_dtype == DT_BF16)
        DICE_LAUNCH(timestep_kernel<uint16_t>, ew_grid(n), EW_THREADS, 0, s, (uint16_t *)out, timesteps, b, cfg->dim,
                    nlp, div, scale, cfg->flip_sin_to_cos);
    else
        return DICE_FAIL(err, "timestep embedding (CUDA): dtype %s is not supported (f32, bf16)", dtype_name(out_dtype));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

// out (rows, C) = table[ids[r]] + pos[r % n]; V channels per thread.
template <typename T, int V>
static __global__ void tokens_kernel(T *out, const int32_t *ids, int64_t rows, int64_t n, const T *table, const T *pos,
                              int64_t c) {
    DICE_GRID_STRIDE(v, rows * c / V) {
        int64_t e = v * V, r = e / c, k = e % c;
        float t[V], p[V] = {};
        dice_load_vec<T, V>(t, table, (int64_t)ids[r] * c + k);
        if (pos) dice_load_vec<T, V>(p, pos, r % n * c + k);
        for (int i = 0; i < V; i++) t[i] += p[i];
        dice_store_vec<T, V>(out, e, t);
    }
}

template <typename T, int V>
static int tokens_launch(void *out, const int32_t *ids, int64_t rows, int64_t n, const void *table, const void *pos,
                         int64_t c, cudaStream_t s, DiceError *err) {
    DICE_LAUNCH((tokens_kernel<T, V>), ew_grid(rows * c / V), EW_THREADS, 0, s, (T *)out, ids, rows, n,
                (const T *)table, (const T *)pos, c);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int embed_tokens_cuda(void *out, const int32_t *ids, int64_t rows, int64_t n, const void *table,
                                 const void *pos, int64_t c, DType dtype, void *stream, DiceError *err) {
    if (rows * c == 0) return 0;
    bool vec = ew_vectorizable(dtype, {out, table, pos}, {c});
    EW_DISPATCH("token embedding", dtype, vec, tokens_launch, out, ids, rows, n, table, pos, c, (cudaStream_t)stream,
                err);
}
