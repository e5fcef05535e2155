// kernels/embed_cpu.c — CPU twins of kernels/embed.cu (see embed.h).
#include "embed.h"

#include <math.h>

#include "nn/convert_elem.h"

// One element of the timestep embedding (the arithmetic of embed.h, shared with the CUDA kernel's comments).
static float timestep_value(float t, int64_t j, const TimestepEmbedConfig *cfg) {
    int64_t half = cfg->dim / 2;
    if (j >= 2 * half) return 0.0f;  // odd dim: padding column
    int64_t i = j % half;
    bool first = j < half;
    float exponent = (float)-log(cfg->max_period) * (float)i;
    exponent = exponent / (float)((double)half - cfg->freq_shift);
    float freq = (float)exp((double)exponent);
    float arg = (float)cfg->scale * (t * freq);
    bool use_cos = first == cfg->flip_sin_to_cos;
    return (float)(use_cos ? cos((double)arg) : sin((double)arg));
}

int embed_timestep_cpu(void *out, DType out_dtype, const float *timesteps, int64_t b, const TimestepEmbedConfig *cfg,
                       DiceError *err) {
    DICE_CHECK(err, out_dtype == DT_F32 || out_dtype == DT_F64,
               "timestep embedding (CPU): dtype %s is not supported (f32, f64)", dtype_name(out_dtype));
    for (int64_t e = 0; e < b * cfg->dim; e++)
        dice_store_f64(out, out_dtype, e, timestep_value(timesteps[e / cfg->dim], e % cfg->dim, cfg));
    return 0;
}

int embed_tokens_cpu(void *out, const int32_t *ids, int64_t rows, int64_t n, const void *table, const void *pos,
                     int64_t c, DType dtype, DiceError *err) {
    if (dtype == DT_F32) {
        float *o = out;
        const float *tab = table, *p = pos;
#pragma omp parallel for schedule(static) if (rows * c > 65536)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < c; k++)
                o[r * c + k] = tab[(int64_t)ids[r] * c + k] + (p ? p[r % n * c + k] : 0.0f);
    } else if (dtype == DT_F64) {
        double *o = out;
        const double *tab = table, *p = pos;
#pragma omp parallel for schedule(static) if (rows * c > 65536)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < c; k++)
                o[r * c + k] = tab[(int64_t)ids[r] * c + k] + (p ? p[r % n * c + k] : 0.0);
    } else {
        return DICE_FAIL(err, "token embedding (CPU): dtype %s is not supported (f32, f64)", dtype_name(dtype));
    }
    return 0;
}
