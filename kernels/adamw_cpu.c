// kernels/adamw_cpu.c — CPU twin of kernels/adamw.cu.
#include "adamw.h"

#include <math.h>

void adamw_update_cpu(float *p, float *m, float *v, const float *g, int64_t n, const AdamWScalars *s) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) adamw_update_elem(&p[i], &m[i], &v[i], g[i], s);
}
