// sample/ddim.h — deterministic DDIM (diffusers' DDIMScheduler with eta 0), called through scheduler.h.
#pragma once
#include "scheduler.h"

#ifdef __cplusplus
extern "C" {
#endif

// Fills s->timesteps and s->num_steps.
int ddim_set_timesteps(Scheduler *s, DiceError *err);
// One DDIM step at s->step_index (prev_sample may alias sample).
void ddim_step(const Scheduler *s, const float *model_output, const float *sample, float *prev_sample, size_t n);

#ifdef __cplusplus
}
#endif
