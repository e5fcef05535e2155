// sample/scheduler.h — the samplers' common interface: DPM-Solver++ (multistep), Euler and DDIM
// exactly as diffusers' DPMSolverMultistepScheduler, EulerDiscreteScheduler and DDIMScheduler (eta 0)
// compute them in float32 on the CPU, on host arrays (a batch of latents is a few hundred KB).
//
//   Scheduler s;
//   scheduler_load(&s, SCHED_DPMSOLVER_MULTISTEP, "model/scheduler/scheduler_config.json", err);
//   scheduler_set_timesteps(&s, 20, err);
//   x = noise * s.init_noise_sigma;                              // (B, 4, H/8, W/8), n floats
//   for (int i = 0; i < s.num_steps; i++) {
//       float t = s.timesteps[i];
//       scheduler_scale_model_input(&s, t, x, x_in, n, err);    // Euler divides by sqrt(sigma^2 + 1)
//       eps = unet(x_in, t, ...);
//       scheduler_step(&s, t, eps, x, x, n, err);                // x <- x_{t_prev}
//   }
//   scheduler_free(&s);
//
// The timestep passed to scale_model_input and step must be timesteps[step_index] (the scheduler
// counts the steps, as diffusers does; a mismatch is an error rather than a silent jump). Timesteps are
// floats because Euler's are fractional; DPM-Solver++'s and DDIM's are integers.
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "nn/error.h"
#include "schedule.h"
#include "scheduler_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Scheduler {
    SchedulerConfig cfg;         // validated copy (owns its trained_betas)
    NoiseSchedule sched;         // betas, alphas_cumprod (Euler / DPM-Solver: abar_{T-1} = 2^-24 under zero SNR)
    int num_inference_steps;     // as requested from set_timesteps
    int num_steps;               // len(timesteps): the number of steps to run (equal, except in diffusers'
                                 // "trailing" spacing where float rounding can add one)
    float *timesteps;            // (num_steps) the model's timestep input at each step
    float *sigmas;               // (num_steps + 1) Euler / DPM-Solver noise levels sqrt((1 - abar) / abar),
                                 // the last one after the final step; NULL for DDIM
    float init_noise_sigma;      // scale of the initial Gaussian noise
    int step_index;              // the next step to run, 0..num_steps
    // DPM-Solver++ multistep state
    float *model_outputs[3];     // (n) converted outputs (x0 predictions) of the last solver_order steps, newest last
    int lower_order_nums;        // how many earlier outputs are available
    size_t numel;                // n of the run's first step (DPM-Solver++ history size)
} Scheduler;

// Validates cfg and builds the noise schedule; cfg is copied (the caller keeps and frees its own).
int scheduler_init(Scheduler *s, const SchedulerConfig *cfg, DiceError *err);
// scheduler_config_load + scheduler_init.
int scheduler_load(Scheduler *s, SchedulerKind kind, const char *config_path, DiceError *err);
void scheduler_free(Scheduler *s);

// Computes the timesteps and sigmas for num_inference_steps (1..num_train_timesteps) and resets the step
// counter and the solver history. Fails where diffusers' schedule would be broken: a repeated timestep
// (diffusers would start one step late), a last timestep -1 ("trailing" rounding), or a DDIM timestep
// above T - 1. (DPM-Solver++ and Euler accept a "leading" timestep of T, as diffusers does.)
int scheduler_set_timesteps(Scheduler *s, int num_inference_steps, DiceError *err);
// The denoiser's input for the current step: sample itself (DPM-Solver++, DDIM) or
// sample / sqrt(sigma^2 + 1) (Euler). out may alias sample.
int scheduler_scale_model_input(Scheduler *s, float timestep, const float *sample, float *out, size_t n,
                                DiceError *err);
// One sampler step from the model output at the current timestep: prev_sample = x at the next
// (lower-noise) timestep. prev_sample may alias sample (not model_output). Advances the counter.
int scheduler_step(Scheduler *s, float timestep, const float *model_output, const float *sample,
                   float *prev_sample, size_t n, DiceError *err);

#ifdef __cplusplus
}
#endif
