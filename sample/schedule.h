// sample/schedule.h — the discrete DDPM noise schedule of a diffusion model, as diffusers builds it:
// betas (linear, scaled_linear, squaredcos_cap_v2 or given), alphas_cumprod, add_noise and the
// v-prediction target, for integer timesteps t in 0..T-1.
//
// The values are those diffusers 0.42 with PyTorch computes on the CPU: betas and alphas_cumprod
// bit for bit in float32 (torch.linspace's fused multiply-add, torch.cumprod's double accumulator),
// except under rescale_betas_zero_snr, and add_noise with DDPMScheduler.add_noise's float32 formula.
// Whatever passes through a square root may differ in the last bit: PyTorch's float32 sqrt on the CPU
// (MKL's vector math) is not correctly rounded, the C library's is.
//
//   ScheduleConfig cfg;                                // from scheduler_config.json:
//   schedule_config_load(&cfg, "model/scheduler/scheduler_config.json", err);   (scheduler_config.h)
//   NoiseSchedule s;
//   noise_schedule_init(&s, &cfg, err);
//   schedule_add_noise(&s, t, x0, noise, x_t, n);     // x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise
//   noise_schedule_free(&s); schedule_config_free(&cfg);
//
// The timestep-spacing helpers at the end reproduce numpy's linspace / arange / round in double
// precision, so the samplers' timestep lists equal diffusers' exactly.
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BETA_LINEAR,            // torch.linspace(beta_start, beta_end, T)
    BETA_SCALED_LINEAR,     // torch.linspace(beta_start**0.5, beta_end**0.5, T) ** 2 (Stable Diffusion)
    BETA_SQUAREDCOS_CAP_V2, // the Glide cosine schedule, betas capped at 0.999
    BETA_TRAINED,           // the config's trained_betas list
} BetaSchedule;

// What the denoiser predicts (diffusers' prediction_type).
typedef enum { PRED_EPSILON, PRED_V_PREDICTION, PRED_SAMPLE } PredictionType;

typedef struct ScheduleConfig {
    int num_train_timesteps;      // T
    BetaSchedule beta_schedule;
    double beta_start, beta_end;  // as written in the config (Python floats); unused for BETA_TRAINED
    float *trained_betas;         // (T) owned, BETA_TRAINED only; NULL otherwise
    bool rescale_betas_zero_snr;  // rescale to zero terminal SNR (arXiv 2305.08891, Algorithm 1)
    PredictionType prediction_type;
} ScheduleConfig;

// diffusers' defaults: T 1000, linear betas 1e-4 .. 0.02, epsilon prediction.
ScheduleConfig schedule_config_defaults(void);
void schedule_config_free(ScheduleConfig *cfg);
// Deep copy (trained_betas included); dst must not own anything.
int schedule_config_copy(ScheduleConfig *dst, const ScheduleConfig *src, DiceError *err);

typedef struct NoiseSchedule {
    int T;                        // num_train_timesteps
    PredictionType prediction_type;
    float *betas;                 // (T)
    float *alphas_cumprod;        // (T) abar_t; 0 at t = T-1 under rescale_betas_zero_snr
} NoiseSchedule;

// Builds betas and alphas_cumprod. Fails (naming the config problem) when T < 2, a beta lies
// outside [0, 1) (the last one may be 1 under rescale_betas_zero_snr), or a value is not finite.
int noise_schedule_init(NoiseSchedule *s, const ScheduleConfig *cfg, DiceError *err);
void noise_schedule_free(NoiseSchedule *s);

// x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise, elementwise over n floats (DDPMScheduler.add_noise);
// 0 <= t < T. out may alias x0 or noise.
void schedule_add_noise(const NoiseSchedule *s, int t, const float *x0, const float *noise, float *out, size_t n);
// The v-prediction training target v = sqrt(abar_t) * noise - sqrt(1 - abar_t) * x0
// (DDPMScheduler.get_velocity); 0 <= t < T. out may alias x0 or noise.
void schedule_velocity(const NoiseSchedule *s, int t, const float *x0, const float *noise, float *out, size_t n);

// numpy.linspace(start, stop, num) in double (num >= 1): out[i] = i * ((stop - start) / (num - 1)) + start,
// out[num-1] = stop.
void np_linspace(double start, double stop, int num, double *out);
// numpy.arange(start, stop, step) for float arguments: the number of values ceil((stop - start) / step)
// (0 if not positive), written to out when it is at most cap; returns that number, or -1 when it exceeds cap.
int np_arange(double start, double stop, double step, double *out, int cap);

#ifdef __cplusplus
}
#endif
