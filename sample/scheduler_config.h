// sample/scheduler_config.h — scheduler settings read from a diffusers scheduler_config.json.
//
// The file is read the way diffusers' `SamplerClass.from_config(config)` reads it: a field the chosen
// sampler class does not have is ignored (PNDM's skip_prk_steps when sampling with DPM-Solver++, as
// in the usual `pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)`),
// and a field the file leaves out takes that class's default (diffusers marks defaults filled in by
// the original class as `_use_default_values`, so they do not travel). Differences from diffusers,
// all loud: a field of the sampler class that would change its behaviour in a way dice does not
// implement (use_karras_sigmas true, thresholding true, algorithm_type sde-dpmsolver++, ...) is an
// error naming the field and value; so is a field no diffusers DDPM-type scheduler has, a value of
// the wrong type, a duplicated key, and a _class_name that is not a DDPM-type scheduler (flow
// matching, EDM). Keys starting with '_' are metadata and otherwise ignored, as in diffusers.
//
//   SchedulerConfig cfg;
//   scheduler_config_load(&cfg, SCHED_DPMSOLVER_MULTISTEP, "model/scheduler/scheduler_config.json", err);
//   cfg.solver_order = 2;                          // programmatic overrides, then
//   scheduler_init(&sched, &cfg, err);             // (scheduler.h) validates and copies
//   scheduler_config_free(&cfg);
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "nn/error.h"
#include "schedule.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SCHED_DPMSOLVER_MULTISTEP,  // DPMSolverMultistepScheduler, algorithm_type dpmsolver++
    SCHED_EULER_DISCRETE,       // EulerDiscreteScheduler (s_churn 0)
    SCHED_DDIM,                 // DDIMScheduler with eta 0
} SchedulerKind;

typedef enum { SPACING_LINSPACE, SPACING_LEADING, SPACING_TRAILING } TimestepSpacing;
typedef enum { FINAL_SIGMAS_ZERO, FINAL_SIGMAS_SIGMA_MIN } FinalSigmasType;
typedef enum { SOLVER_MIDPOINT, SOLVER_HEUN } SolverType;

typedef struct SchedulerConfig {
    SchedulerKind kind;
    ScheduleConfig schedule;          // T, betas, prediction_type (owns trained_betas)
    TimestepSpacing timestep_spacing; // DPM / Euler default linspace, DDIM leading
    int steps_offset;                 // added to "leading" timesteps
    FinalSigmasType final_sigmas_type;  // DPM and Euler: the sigma after the last step (default zero)
    // DPMSolverMultistepScheduler
    int solver_order;                 // 1, 2 (default) or 3
    SolverType solver_type;           // midpoint (default) or heun
    bool lower_order_final;           // default true: lower orders on the last steps when < 15 steps
    bool euler_at_final;              // default false: first order on the last step
    double lambda_min_clipped;        // default -inf: timesteps whose log-SNR falls below are not used
    // DDIMScheduler
    bool clip_sample;                 // default true: clamp the predicted x0 to +-clip_sample_range
    double clip_sample_range;         // default 1
    bool set_alpha_to_one;            // default true: abar after the last step is 1 (else abar_0)
} SchedulerConfig;

// The class's diffusers defaults (DDPM schedule defaults: T 1000, linear 1e-4 .. 0.02, epsilon).
SchedulerConfig scheduler_config_defaults(SchedulerKind kind);
// Parses scheduler_config.json text for `kind` into *cfg (which it initialises; free it afterwards
// even on failure). `where` names the source in messages.
int scheduler_config_parse(SchedulerConfig *cfg, SchedulerKind kind, const char *json, size_t len,
                           const char *where, DiceError *err);
int scheduler_config_load(SchedulerConfig *cfg, SchedulerKind kind, const char *path, DiceError *err);
// Range checks of a (possibly hand-edited) config; scheduler_init runs it.
int scheduler_config_validate(const SchedulerConfig *cfg, DiceError *err);
void scheduler_config_free(SchedulerConfig *cfg);

// The noise schedule alone, as DDPMScheduler reads it (for training: add_noise and the prediction
// type); sampler-only fields are ignored, unknown fields and unsupported schedule values are errors.
int schedule_config_parse(ScheduleConfig *cfg, const char *json, size_t len, const char *where, DiceError *err);
int schedule_config_load(ScheduleConfig *cfg, const char *path, DiceError *err);

// diffusers class name of a kind ("DPMSolverMultistepScheduler", ...).
const char *scheduler_kind_name(SchedulerKind kind);
// Accepts the class names and the short names "dpm++2m", "euler", "ddim"; returns 0 or -1.
int scheduler_kind_from_name(const char *name, SchedulerKind *kind);

#ifdef __cplusplus
}
#endif
