// sample/euler.h — the Euler sampler (diffusers' EulerDiscreteScheduler, no churn), called through
// scheduler.h.
#pragma once
#include "scheduler.h"

#ifdef __cplusplus
extern "C" {
#endif

// Fills s->timesteps, s->sigmas, s->num_steps and s->init_noise_sigma.
int euler_set_timesteps(Scheduler *s, DiceError *err);
// out = sample / sqrt(sigma^2 + 1) at s->step_index.
void euler_scale_model_input(const Scheduler *s, const float *sample, float *out, size_t n);
// One Euler step at s->step_index (prev_sample may alias sample).
void euler_step(const Scheduler *s, const float *model_output, const float *sample, float *prev_sample, size_t n);

#ifdef __cplusplus
}
#endif
