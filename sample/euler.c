// sample/euler.c — the Euler sampler as diffusers' EulerDiscreteScheduler computes it (s_churn 0, so
// deterministic): sigmas interpolated linearly in the timestep (numpy.interp), the model input scaled
// by 1 / sqrt(sigma^2 + 1), and x <- x + (x - x0) / sigma * (sigma_next - sigma).
#include "euler.h"

#include <math.h>
#include <stdlib.h>

// numpy.interp(x, arange(T), table) in double (table float32, as np.array of the float32 tensor).
static double np_interp_grid(double x, const float *table, int T) {
    if (x < 0) return table[0];
    if (x >= T - 1) return table[T - 1];
    int j = (int)floor(x);
    if (x == j) return table[j];
    double slope = (double)table[j + 1] - (double)table[j];  // divided by the grid step, 1.0
    return slope * (x - j) + (double)table[j];
}

int euler_set_timesteps(Scheduler *s, DiceError *err) {
    int n = s->num_inference_steps, T = s->sched.T, count = n;
    const float *abar = s->sched.alphas_cumprod;
    double *grid = malloc(sizeof(double) * (size_t)(n + 2));
    float *table = malloc(sizeof(float) * (size_t)T);
    s->timesteps = malloc(sizeof(float) * (size_t)(n + 2));
    s->sigmas = malloc(sizeof(float) * (size_t)(n + 3));
    if (!grid || !table || !s->timesteps || !s->sigmas) {
        free(grid);
        free(table);
        return DICE_FAIL(err, "EulerDiscreteScheduler: out of memory for %d steps", n);
    }
    switch (s->cfg.timestep_spacing) {
    case SPACING_LINSPACE:  // np.linspace(0, T - 1, n, dtype=float32)[::-1]
        np_linspace(0, T - 1, n, grid);
        for (int k = 0; k < n; k++) s->timesteps[k] = (float)grid[n - 1 - k];
        break;
    case SPACING_LEADING: {  // (arange(0, n) * (T // n)).round()[::-1] + steps_offset
        int ratio = T / n;
        for (int k = 0; k < n; k++) s->timesteps[k] = (float)((n - 1 - k) * ratio + s->cfg.steps_offset);
        break;
    }
    case SPACING_TRAILING:  // np.arange(T, 0, -T / n).round() - 1
        count = np_arange(T, 0, -((double)T / n), grid, n + 2);
        for (int k = 0; k < count; k++) s->timesteps[k] = (float)(rint(grid[k]) - 1);
        break;
    }
    free(grid);
    if (count < 1 || count > n + 1) {
        free(table);
        return DICE_FAIL(err, "EulerDiscreteScheduler: %d steps give %d timesteps", n, count);
    }
    s->num_steps = count;
    for (int t = 0; t < T; t++) table[t] = sqrtf((1.0f - abar[t]) / abar[t]);
    float sigma_max = 0.0f;
    for (int k = 0; k < count; k++) {
        s->sigmas[k] = (float)np_interp_grid(s->timesteps[k], table, T);
        if (s->sigmas[k] > sigma_max) sigma_max = s->sigmas[k];
    }
    free(table);
    s->sigmas[count] = s->cfg.final_sigmas_type == FINAL_SIGMAS_ZERO ? 0.0f : sqrtf((1.0f - abar[0]) / abar[0]);
    if (s->sigmas[count] > sigma_max) sigma_max = s->sigmas[count];
    // init_noise_sigma: max(sigmas) for linspace / trailing, sqrt(max^2 + 1) for leading
    s->init_noise_sigma = s->cfg.timestep_spacing == SPACING_LEADING ? sqrtf(sigma_max * sigma_max + 1.0f) : sigma_max;
    return 0;
}

void euler_scale_model_input(const Scheduler *s, const float *sample, float *out, size_t n) {
    float sigma = s->sigmas[s->step_index];
    float scale = sqrtf(sigma * sigma + 1.0f);
    for (size_t i = 0; i < n; i++) out[i] = sample[i] / scale;
}

void euler_step(const Scheduler *s, const float *model_output, const float *sample, float *prev_sample, size_t n) {
    float sigma = s->sigmas[s->step_index];  // sigma_hat = sigma * (gamma + 1) with gamma 0
    float dt = s->sigmas[s->step_index + 1] - sigma;
    float v_out = -sigma / sqrtf(sigma * sigma + 1.0f), v_in = sigma * sigma + 1.0f;
    for (size_t i = 0; i < n; i++) {
        float x = sample[i], x0 = model_output[i];  // PRED_SAMPLE
        if (s->sched.prediction_type == PRED_EPSILON) {
            x0 = x - sigma * model_output[i];
        } else if (s->sched.prediction_type == PRED_V_PREDICTION) {
            float a = model_output[i] * v_out, b = x / v_in;
            x0 = a + b;
        }
        float derivative = (x - x0) / sigma;
        prev_sample[i] = x + derivative * dt;
    }
}
