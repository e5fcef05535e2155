// kernels/embed.h — embeddings: diffusers' sinusoidal timestep embedding (get_timestep_embedding) and token +
// position embedding lookup (CLIP's text embeddings). CPU twins in kernels/embed_cpu.c (f32, f64 outputs), CUDA
// launchers in kernels/embed.cu (f32, bf16 outputs).
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "nn/dtype.h"
#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// diffusers' get_timestep_embedding arguments. With half = dim / 2 and i < half:
//   freq_i = exp(-ln(max_period) * i / (half - freq_shift)),  arg = scale * t * freq_i,
//   out = [sin(arg) | cos(arg)] ([cos | sin] when flip_sin_to_cos), one zero column appended when dim is odd.
// Evaluated as diffusers does in fp32 (the exponent, the product and the scaling rounded to fp32), with
// freq_i, sin and cos correctly rounded (so CPU and CUDA agree; PyTorch's fp32 exp may be one ulp away, which
// moves arg by up to one ulp: 6e-5 at t = 999).
typedef struct TimestepEmbedConfig {
    int64_t dim;           // output width (SD1.5: 320, SDXL: 320, PixArt: 256)
    bool flip_sin_to_cos;  // SD1.5 / SDXL / PixArt: true
    double freq_shift;     // downscale_freq_shift: SD1.5 / SDXL / PixArt: 0 (diffusers' default 1)
    double scale;          // 1
    double max_period;     // 10000
} TimestepEmbedConfig;

// timesteps (B) f32 -> out (B, dim) of out_dtype.
int embed_timestep_cpu(void *out, DType out_dtype, const float *timesteps, int64_t b, const TimestepEmbedConfig *cfg,
                       DiceError *err);
// out (rows, C) = table[ids[r]] + pos[r % n] (pos (n, C) may be NULL). ids are valid indices into table (V, C):
// the op layer checks them.
int embed_tokens_cpu(void *out, const int32_t *ids, int64_t rows, int64_t n, const void *table, const void *pos,
                     int64_t c, DType dtype, DiceError *err);

int embed_timestep_cuda(void *out, DType out_dtype, const float *timesteps, int64_t b, const TimestepEmbedConfig *cfg,
                        void *stream, DiceError *err);
int embed_tokens_cuda(void *out, const int32_t *ids, int64_t rows, int64_t n, const void *table, const void *pos,
                      int64_t c, DType dtype, void *stream, DiceError *err);

#ifdef __cplusplus
}
#endif
