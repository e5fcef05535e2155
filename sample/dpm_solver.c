// sample/dpm_solver.c — DPM-Solver++ multistep (Lu et al. 2022, arXiv 2211.01095) as diffusers'
// DPMSolverMultistepScheduler computes it: data-prediction (x0) form, orders 1-3, midpoint or heun
// second-order update, lower_order_final / euler_at_final / final_sigmas_type, the timestep spacings
// and lambda_min_clipped.
//
// Scalars (alpha_t, sigma_t, lambda, h, r) are float32 like diffusers' 0-d tensors, and every
// elementwise product and sum is rounded to float in the order PyTorch evaluates the expression.
// The one known difference: PyTorch's float32 sqrt, exp and log on the CPU (MKL's vector math in the
// x86 wheels) are not correctly rounded and the C library's are, so a few scalars differ in the last
// bit (seen: at most 6.4e-7 relative in the samples of a whole trajectory).
#include "dpm_solver.h"

#include <math.h>
#include <stdlib.h>

// sigma -> (alpha_t, sigma_t) of the VP process: alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha_t.
static void alpha_sigma(float sigma, float *alpha_t, float *sigma_t) {
    float a = 1.0f / sqrtf(sigma * sigma + 1.0f);
    *alpha_t = a;
    *sigma_t = sigma * a;
}

// The log-SNR lambda = log(alpha_t) - log(sigma_t); +inf at sigma 0.
static float lambda_of(float sigma) {
    float a, s;
    alpha_sigma(sigma, &a, &s);
    return logf(a) - logf(s);
}

// The number of training timesteps kept by lambda_min_clipped: T minus
// torch.searchsorted(flip(lambda_t), lambda_min_clipped) (a lower-bound binary search).
static int last_timestep(const Scheduler *s) {
    int T = s->sched.T;
    if (s->cfg.lambda_min_clipped == -INFINITY) return T;
    float v = (float)s->cfg.lambda_min_clipped;
    int lo = 0, hi = T;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        float abar = s->sched.alphas_cumprod[T - 1 - mid];
        float lam = logf(sqrtf(abar)) - logf(sqrtf(1.0f - abar));
        if (!(lam >= v)) lo = mid + 1;
        else hi = mid;
    }
    return T - lo;
}

int dpm_solver_set_timesteps(Scheduler *s, DiceError *err) {
    int n = s->num_inference_steps, T = s->sched.T, last = last_timestep(s), count = n;
    double *grid = malloc(sizeof(double) * (size_t)(n + 2));
    s->timesteps = malloc(sizeof(float) * (size_t)(n + 2));
    s->sigmas = malloc(sizeof(float) * (size_t)(n + 3));
    if (!grid || !s->timesteps || !s->sigmas) {
        free(grid);
        return DICE_FAIL(err, "DPMSolverMultistepScheduler: out of memory for %d steps", n);
    }
    switch (s->cfg.timestep_spacing) {
    case SPACING_LINSPACE:  // np.linspace(0, last - 1, n + 1).round()[::-1][:-1]
        np_linspace(0, last - 1, n + 1, grid);
        for (int k = 0; k < n; k++) s->timesteps[k] = (float)rint(grid[n - k]);
        break;
    case SPACING_LEADING: {  // (arange(0, n + 1) * (last // (n + 1)))[::-1][:-1] + steps_offset
        int ratio = last / (n + 1);
        for (int k = 0; k < n; k++) s->timesteps[k] = (float)((n - k) * ratio + s->cfg.steps_offset);
        break;
    }
    case SPACING_TRAILING:  // np.arange(last, 0, -T / n).round() - 1
        count = np_arange(last, 0, -((double)T / n), grid, n + 2);
        for (int k = 0; k < count; k++) s->timesteps[k] = (float)(rint(grid[k]) - 1);
        break;
    }
    free(grid);
    DICE_CHECK(err, count >= 1 && count <= n + 1, "DPMSolverMultistepScheduler: %d steps give %d timesteps", n, count);
    s->num_steps = count;
    for (int k = 0; k < count; k++) {  // numpy.interp at integer timesteps, clamped to the table's ends
        int t = (int)s->timesteps[k];
        float abar = s->sched.alphas_cumprod[t < 0 ? 0 : t >= T ? T - 1 : t];
        s->sigmas[k] = sqrtf((1.0f - abar) / abar);
    }
    float abar0 = s->sched.alphas_cumprod[0];
    s->sigmas[count] = s->cfg.final_sigmas_type == FINAL_SIGMAS_ZERO ? 0.0f : sqrtf((1.0f - abar0) / abar0);
    s->init_noise_sigma = 1.0f;
    return 0;
}

// The model output as an x0 prediction at sigma (convert_model_output for dpmsolver++).
static void convert_model_output(PredictionType pred, float sigma, const float *model_output, const float *sample,
                                 float *x0, size_t n) {
    float alpha_t, sigma_t;
    alpha_sigma(sigma, &alpha_t, &sigma_t);
    for (size_t i = 0; i < n; i++) {
        switch (pred) {
        case PRED_EPSILON: x0[i] = (sample[i] - sigma_t * model_output[i]) / alpha_t; break;
        case PRED_V_PREDICTION: {
            float a = alpha_t * sample[i], b = sigma_t * model_output[i];
            x0[i] = a - b;
            break;
        }
        case PRED_SAMPLE: x0[i] = model_output[i]; break;
        }
    }
}

// The noise levels and log-SNR steps of one update from sigmas[i] (s0) and its predecessors to sigmas[i + 1] (t).
typedef struct Levels {
    float alpha_t, sigma_t, sigma_s0;
    float h, r0, r1;  // h = lambda_t - lambda_s0; r0 = h_0 / h, r1 = h_1 / h
} Levels;

static Levels levels(const Scheduler *s, int order) {
    const float *sg = s->sigmas;
    int i = s->step_index;
    Levels L = {0};
    float alpha_s0;
    alpha_sigma(sg[i + 1], &L.alpha_t, &L.sigma_t);
    alpha_sigma(sg[i], &alpha_s0, &L.sigma_s0);
    float lambda_t = logf(L.alpha_t) - logf(L.sigma_t), lambda_s0 = logf(alpha_s0) - logf(L.sigma_s0);
    L.h = lambda_t - lambda_s0;
    if (order >= 2) {
        float lambda_s1 = lambda_of(sg[i - 1]);
        L.r0 = (lambda_s0 - lambda_s1) / L.h;
        if (order == 3) L.r1 = (lambda_s1 - lambda_of(sg[i - 2])) / L.h;
    }
    return L;
}

// x_t = (sigma_t / sigma_s) x - alpha_t (e^-h - 1) m0
static void first_order_update(const Scheduler *s, const float *m0, const float *x, float *out, size_t n) {
    Levels L = levels(s, 1);
    float c_x = L.sigma_t / L.sigma_s0, c_d0 = L.alpha_t * (expf(-L.h) - 1.0f);
    for (size_t i = 0; i < n; i++) {
        float a = c_x * x[i], b = c_d0 * m0[i];
        out[i] = a - b;
    }
}

// D1 = (m0 - m1) / r0; midpoint: x_t = (sigma_t / sigma_s0) x - alpha_t (e^-h - 1) (D0 + D1 / 2),
// heun: x_t = (sigma_t / sigma_s0) x - alpha_t (e^-h - 1) D0 + alpha_t ((e^-h - 1) / h + 1) D1.
static void second_order_update(const Scheduler *s, const float *m0, const float *m1, const float *x, float *out,
                                size_t n) {
    Levels L = levels(s, 2);
    float c_x = L.sigma_t / L.sigma_s0, c_d0 = L.alpha_t * (expf(-L.h) - 1.0f), inv_r0 = 1.0f / L.r0;
    bool midpoint = s->cfg.solver_type == SOLVER_MIDPOINT;
    float c_d1 = midpoint ? 0.5f * c_d0 : L.alpha_t * ((expf(-L.h) - 1.0f) / L.h + 1.0f);
    for (size_t i = 0; i < n; i++) {
        float d1 = inv_r0 * (m0[i] - m1[i]);
        float a = c_x * x[i], b = c_d0 * m0[i], c = c_d1 * d1;
        float ab = a - b;
        out[i] = midpoint ? ab - c : ab + c;
    }
}

// Third order (diffusers' multistep_dpm_solver_third_order_update, dpmsolver++).
static void third_order_update(const Scheduler *s, const float *m0, const float *m1, const float *m2, const float *x,
                               float *out, size_t n) {
    Levels L = levels(s, 3);
    float e = expf(-L.h);
    float c_x = L.sigma_t / L.sigma_s0, c_d0 = L.alpha_t * (e - 1.0f);
    float c_d1 = L.alpha_t * ((e - 1.0f) / L.h + 1.0f);
    float c_d2 = L.alpha_t * ((e - 1.0f + L.h) / (L.h * L.h) - 0.5f);
    float inv_r0 = 1.0f / L.r0, inv_r1 = 1.0f / L.r1, r_sum = L.r0 + L.r1;
    float w = L.r0 / r_sum, inv_sum = 1.0f / r_sum;
    for (size_t i = 0; i < n; i++) {
        float d1_0 = inv_r0 * (m0[i] - m1[i]), d1_1 = inv_r1 * (m1[i] - m2[i]);
        float diff = d1_0 - d1_1;
        float d1 = d1_0 + w * diff, d2 = inv_sum * diff;
        float a = c_x * x[i], b = c_d0 * m0[i], c = c_d1 * d1, d = c_d2 * d2;
        out[i] = ((a - b) + c) - d;
    }
}

int dpm_solver_step(Scheduler *s, const float *model_output, const float *sample, float *prev_sample, size_t n,
                    DiceError *err) {
    int order = s->cfg.solver_order, i = s->step_index, steps = s->num_steps;
    if (s->numel == 0) {
        for (int k = 0; k < order; k++) {
            s->model_outputs[k] = malloc(sizeof(float) * (n ? n : 1));
            DICE_CHECK(err, s->model_outputs[k], "DPMSolverMultistepScheduler: out of memory for %zu floats", n);
        }
        s->numel = n;
    }
    DICE_CHECK(err, n == s->numel, "DPMSolverMultistepScheduler: step %d has %zu values, the first step had %zu", i,
               n, s->numel);
    bool short_run = s->cfg.lower_order_final && steps < 15;
    bool lower_order_final = i == steps - 1 && (s->cfg.euler_at_final || short_run ||
                                                s->cfg.final_sigmas_type == FINAL_SIGMAS_ZERO);
    bool lower_order_second = i == steps - 2 && short_run;
    // the history shifts by one: the oldest buffer receives the newest output
    float *newest = s->model_outputs[0];
    for (int k = 0; k + 1 < order; k++) s->model_outputs[k] = s->model_outputs[k + 1];
    s->model_outputs[order - 1] = newest;
    convert_model_output(s->sched.prediction_type, s->sigmas[i], model_output, sample, newest, n);
    float *const *m = s->model_outputs + order - 1;  // m[0] newest, m[-1], m[-2] older
    if (order == 1 || s->lower_order_nums < 1 || lower_order_final)
        first_order_update(s, m[0], sample, prev_sample, n);
    else if (order == 2 || s->lower_order_nums < 2 || lower_order_second)
        second_order_update(s, m[0], m[-1], sample, prev_sample, n);
    else
        third_order_update(s, m[0], m[-1], m[-2], sample, prev_sample, n);
    if (s->lower_order_nums < order) s->lower_order_nums++;
    return 0;
}
