// kernels/accumulate_cpu.c — CPU twin of kernels/accumulate.cu: dst += src.
#include "accumulate.h"

int accumulate_cpu(void *dst, const void *src, int64_t n, DType dtype, DiceError *err) {
    switch (dtype) {
    case DT_F64: {
        double *d = dst;
        const double *s = src;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) d[i] += s[i];
        return 0;
    }
    case DT_F32: {
        float *d = dst;
        const float *s = src;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) d[i] += s[i];
        return 0;
    }
    case DT_BF16: {
        uint16_t *d = dst;
        const uint16_t *s = src;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) d[i] = dice_f32_to_bf16(dice_bf16_to_f32(d[i]) + dice_bf16_to_f32(s[i]));
        return 0;
    }
    default: return DICE_FAIL(err, "accumulate: dtype %s is not supported (f64, f32, bf16)", dtype_name(dtype));
    }
}
