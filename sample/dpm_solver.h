// sample/dpm_solver.h — DPM-Solver++ multistep (diffusers' DPMSolverMultistepScheduler with
// algorithm_type dpmsolver++, orders 1-3, midpoint or heun), called through scheduler.h.
#pragma once
#include "scheduler.h"

#ifdef __cplusplus
extern "C" {
#endif

// Fills s->timesteps, s->sigmas, s->num_steps from s->num_inference_steps and the config.
int dpm_solver_set_timesteps(Scheduler *s, DiceError *err);
// One multistep update at s->step_index (n floats; prev_sample may alias sample).
int dpm_solver_step(Scheduler *s, const float *model_output, const float *sample, float *prev_sample, size_t n,
                    DiceError *err);

#ifdef __cplusplus
}
#endif
