// sample/schedule.c — the DDPM noise schedule (betas, alphas_cumprod, add_noise, velocity) and the
// numpy-exact timestep-spacing helpers; see schedule.h. Each computation names the PyTorch / numpy
// operation it reproduces, because matching diffusers bit for bit depends on the exact rounding.
#include "schedule.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

ScheduleConfig schedule_config_defaults(void) {
    ScheduleConfig c;
    memset(&c, 0, sizeof c);
    c.num_train_timesteps = 1000;
    c.beta_schedule = BETA_LINEAR;
    c.beta_start = 0.0001;
    c.beta_end = 0.02;
    c.prediction_type = PRED_EPSILON;
    return c;
}

void schedule_config_free(ScheduleConfig *cfg) {
    free(cfg->trained_betas);
    cfg->trained_betas = NULL;
}

int schedule_config_copy(ScheduleConfig *dst, const ScheduleConfig *src, DiceError *err) {
    *dst = *src;
    dst->trained_betas = NULL;
    if (src->beta_schedule != BETA_TRAINED) return 0;
    DICE_CHECK(err, src->trained_betas && src->num_train_timesteps > 0, "noise schedule: trained_betas missing");
    size_t bytes = sizeof(float) * (size_t)src->num_train_timesteps;
    dst->trained_betas = malloc(bytes);
    DICE_CHECK(err, dst->trained_betas, "noise schedule: out of memory copying %d trained betas",
               src->num_train_timesteps);
    memcpy(dst->trained_betas, src->trained_betas, bytes);
    return 0;
}

// torch.linspace(start, end, steps, dtype=float32) on the CPU: a float32 step, the first half counted
// up from start and the second half down from end; PyTorch's AVX2/AVX512 kernels contract each
// `start + step * i` into one fused multiply-add, so fmaf reproduces them exactly.
static void torch_linspace_f32(float start, float end, int steps, float *out) {
    if (steps == 1) {
        out[0] = start;
        return;
    }
    float step = (end - start) / (float)(steps - 1);
    int halfway = steps / 2;
    for (int i = 0; i < steps; i++)
        out[i] = i < halfway ? fmaf(step, (float)i, start) : fmaf(-step, (float)(steps - i - 1), end);
}

// diffusers' betas_for_alpha_bar (cosine): Python double arithmetic, then torch.tensor(float32).
static double alpha_bar_cosine(double t) { return pow(cos((t + 0.008) / 1.008 * M_PI / 2), 2.0); }

static void betas_cosine(int T, float *betas) {
    for (int i = 0; i < T; i++) {
        double t1 = (double)i / T, t2 = (double)(i + 1) / T;
        double b = 1 - alpha_bar_cosine(t2) / alpha_bar_cosine(t1);
        betas[i] = (float)(b < 0.999 ? b : 0.999);
    }
}

// torch.cumprod(1.0 - betas) in float32: PyTorch's CPU kernel accumulates in double and rounds each
// prefix product to float.
static void cumprod_alphas(const float *betas, int T, float *alphas_cumprod) {
    double acc = 1.0;
    for (int i = 0; i < T; i++) {
        acc *= (double)(1.0f - betas[i]);
        alphas_cumprod[i] = (float)acc;
    }
}

// diffusers' rescale_zero_terminal_snr, float32 step by step; uses alphas_cumprod as scratch.
static void rescale_zero_terminal_snr(float *betas, float *scratch, int T) {
    float *abar_sqrt = scratch;
    cumprod_alphas(betas, T, abar_sqrt);
    for (int i = 0; i < T; i++) abar_sqrt[i] = sqrtf(abar_sqrt[i]);
    float first = abar_sqrt[0], last = abar_sqrt[T - 1];
    float scale = first / (first - last);
    for (int i = 0; i < T; i++) {
        float v = (abar_sqrt[i] - last) * scale;
        abar_sqrt[i] = v * v;  // alphas_bar
    }
    // alphas = cat(alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]); betas = 1 - alphas
    for (int i = T - 1; i >= 1; i--) betas[i] = 1.0f - abar_sqrt[i] / abar_sqrt[i - 1];
    betas[0] = 1.0f - abar_sqrt[0];
}

int noise_schedule_init(NoiseSchedule *s, const ScheduleConfig *cfg, DiceError *err) {
    memset(s, 0, sizeof *s);
    int T = cfg->num_train_timesteps;
    DICE_CHECK(err, T >= 2 && T <= 1000000, "noise schedule: num_train_timesteps %d is not in 2..1000000", T);
    s->T = T;
    s->prediction_type = cfg->prediction_type;
    s->betas = malloc(sizeof(float) * (size_t)T);
    s->alphas_cumprod = malloc(sizeof(float) * (size_t)T);
    if (!s->betas || !s->alphas_cumprod) {
        noise_schedule_free(s);
        return DICE_FAIL(err, "noise schedule: out of memory for %d timesteps", T);
    }
    switch (cfg->beta_schedule) {
    case BETA_LINEAR:
        torch_linspace_f32((float)cfg->beta_start, (float)cfg->beta_end, T, s->betas);
        break;
    case BETA_SCALED_LINEAR:
        torch_linspace_f32((float)pow(cfg->beta_start, 0.5), (float)pow(cfg->beta_end, 0.5), T, s->betas);
        for (int i = 0; i < T; i++) s->betas[i] = s->betas[i] * s->betas[i];
        break;
    case BETA_SQUAREDCOS_CAP_V2:
        betas_cosine(T, s->betas);
        break;
    case BETA_TRAINED:
        if (!cfg->trained_betas) {
            noise_schedule_free(s);
            return DICE_FAIL(err, "noise schedule: beta_schedule is 'trained' but no trained_betas were given");
        }
        memcpy(s->betas, cfg->trained_betas, sizeof(float) * (size_t)T);
        break;
    }
    if (cfg->rescale_betas_zero_snr) rescale_zero_terminal_snr(s->betas, s->alphas_cumprod, T);
    for (int i = 0; i < T; i++) {
        float b = s->betas[i];
        bool last_may_be_one = cfg->rescale_betas_zero_snr && i == T - 1;
        if (!(b >= 0.0f && (b < 1.0f || (last_may_be_one && b == 1.0f)))) {
            noise_schedule_free(s);
            return DICE_FAIL(err, "noise schedule: beta[%d] = %.9g is outside [0, 1); check beta_start, beta_end "
                             "and trained_betas", i, (double)b);
        }
    }
    cumprod_alphas(s->betas, T, s->alphas_cumprod);
    return 0;
}

void noise_schedule_free(NoiseSchedule *s) {
    free(s->betas);
    free(s->alphas_cumprod);
    s->betas = s->alphas_cumprod = NULL;
}

void schedule_add_noise(const NoiseSchedule *s, int t, const float *x0, const float *noise, float *out, size_t n) {
    float abar = s->alphas_cumprod[t];
    float sqrt_abar = sqrtf(abar), sqrt_one_minus = sqrtf(1.0f - abar);
    for (size_t i = 0; i < n; i++) {
        float a = sqrt_abar * x0[i], b = sqrt_one_minus * noise[i];
        out[i] = a + b;
    }
}

void schedule_velocity(const NoiseSchedule *s, int t, const float *x0, const float *noise, float *out, size_t n) {
    float abar = s->alphas_cumprod[t];
    float sqrt_abar = sqrtf(abar), sqrt_one_minus = sqrtf(1.0f - abar);
    for (size_t i = 0; i < n; i++) {
        float a = sqrt_abar * noise[i], b = sqrt_one_minus * x0[i];
        out[i] = a - b;
    }
}

// ---------------------------------------------------------------- numpy-exact spacing helpers

void np_linspace(double start, double stop, int num, double *out) {
    if (num == 1) {  // numpy: div = 0, y = [0] * delta + start
        out[0] = start;
        return;
    }
    double step = (stop - start) / (num - 1);
    for (int i = 0; i < num; i++) out[i] = i * step + start;
    out[num - 1] = stop;
}

// numpy fills a float arange from its first two values: value i = start + i * ((start + step) - start).
int np_arange(double start, double stop, double step, double *out, int cap) {
    double len = ceil((stop - start) / step);
    if (!(len > 0)) return 0;
    if (len > cap) return -1;
    int n = (int)len;
    double next = start + step, delta = next - start;
    out[0] = start;
    if (n > 1) out[1] = next;
    for (int i = 2; i < n; i++) out[i] = start + i * delta;
    return n;
}
