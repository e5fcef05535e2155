// sample/ddim.c — deterministic DDIM (Song et al. 2020, eta 0) as diffusers' DDIMScheduler computes it:
// x0 = (x - sqrt(1 - abar_t) eps) / sqrt(abar_t), optionally clamped, then
// x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps with prev = t - T // num_inference_steps
// (whatever the spacing, as in diffusers) and abar_prev = 1 or abar_0 below t = 0 (set_alpha_to_one).
#include "ddim.h"

#include <math.h>
#include <stdlib.h>

int ddim_set_timesteps(Scheduler *s, DiceError *err) {
    int n = s->num_inference_steps, T = s->sched.T, count = n;
    double *grid = malloc(sizeof(double) * (size_t)(n + 2));
    s->timesteps = malloc(sizeof(float) * (size_t)(n + 2));
    if (!grid || !s->timesteps) {
        free(grid);
        return DICE_FAIL(err, "DDIMScheduler: out of memory for %d steps", n);
    }
    switch (s->cfg.timestep_spacing) {
    case SPACING_LINSPACE:  // np.linspace(0, T - 1, n).round()[::-1]
        np_linspace(0, T - 1, n, grid);
        for (int k = 0; k < n; k++) s->timesteps[k] = (float)rint(grid[n - 1 - k]);
        break;
    case SPACING_LEADING: {  // (arange(0, n) * (T // n))[::-1] + steps_offset
        int ratio = T / n;
        for (int k = 0; k < n; k++) s->timesteps[k] = (float)((n - 1 - k) * ratio + s->cfg.steps_offset);
        break;
    }
    case SPACING_TRAILING:  // np.round(np.arange(T, 0, -T / n)) - 1
        count = np_arange(T, 0, -((double)T / n), grid, n + 2);
        for (int k = 0; k < count; k++) s->timesteps[k] = (float)(rint(grid[k]) - 1);
        break;
    }
    free(grid);
    DICE_CHECK(err, count >= 1 && count <= n + 1, "DDIMScheduler: %d steps give %d timesteps", n, count);
    s->num_steps = count;
    s->init_noise_sigma = 1.0f;
    // zero terminal SNR leaves abar_{T-1} = 0, where an epsilon prediction says nothing about x0
    for (int k = 0; k < count; k++) {
        float t = s->timesteps[k];
        DICE_CHECK(err, !(t >= 0 && t < T && s->sched.alphas_cumprod[(int)t] == 0.0f &&
                          s->sched.prediction_type == PRED_EPSILON),
                   "DDIMScheduler: timestep %g has zero signal (rescale_betas_zero_snr), which an epsilon-prediction "
                   "model cannot denoise; use v_prediction or another spacing", (double)t);
    }
    return 0;
}

void ddim_step(const Scheduler *s, const float *model_output, const float *sample, float *prev_sample, size_t n) {
    const float *abar = s->sched.alphas_cumprod;
    int t = (int)s->timesteps[s->step_index];
    int prev_t = t - s->sched.T / s->num_inference_steps;
    float a_t = abar[t];
    float a_prev = prev_t >= 0 ? abar[prev_t] : s->cfg.set_alpha_to_one ? 1.0f : abar[0];
    float b_t = 1.0f - a_t;
    float sqrt_a = sqrtf(a_t), sqrt_b = sqrtf(b_t);
    float sqrt_a_prev = sqrtf(a_prev), sqrt_b_prev = sqrtf(1.0f - a_prev);
    float lim = (float)s->cfg.clip_sample_range;
    for (size_t i = 0; i < n; i++) {
        float x = sample[i], m = model_output[i], x0, eps;
        if (s->sched.prediction_type == PRED_EPSILON) {
            x0 = (x - sqrt_b * m) / sqrt_a;
            eps = m;
        } else if (s->sched.prediction_type == PRED_V_PREDICTION) {
            float a = sqrt_a * x, b = sqrt_b * m;
            x0 = a - b;
            float c = sqrt_a * m, d = sqrt_b * x;
            eps = c + d;
        } else {  // PRED_SAMPLE
            x0 = m;
            eps = (x - sqrt_a * x0) / sqrt_b;
        }
        if (s->cfg.clip_sample) x0 = x0 < -lim ? -lim : x0 > lim ? lim : x0;  // torch.clamp keeps NaN
        float a = sqrt_a_prev * x0, b = sqrt_b_prev * eps;
        prev_sample[i] = a + b;
    }
}
