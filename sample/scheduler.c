// sample/scheduler.c — the sampler interface (scheduler.h): set-up, the step counter and its checks,
// and dispatch to dpm_solver.c, euler.c and ddim.c.
#include "scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "ddim.h"
#include "dpm_solver.h"
#include "euler.h"

int scheduler_init(Scheduler *s, const SchedulerConfig *cfg, DiceError *err) {
    memset(s, 0, sizeof *s);
    DICE_TRY(scheduler_config_validate(cfg, err));
    s->cfg = *cfg;
    DICE_TRY(schedule_config_copy(&s->cfg.schedule, &cfg->schedule, err));
    if (noise_schedule_init(&s->sched, &cfg->schedule, err)) {
        dice_error_context(err, "%s", scheduler_kind_name(cfg->kind));
        scheduler_free(s);
        return -1;
    }
    // diffusers' Euler and DPM-Solver keep the zero-SNR endpoint just above 0 so its sigma stays finite
    if (cfg->schedule.rescale_betas_zero_snr && cfg->kind != SCHED_DDIM)
        s->sched.alphas_cumprod[s->sched.T - 1] = 0x1p-24f;
    s->init_noise_sigma = 1.0f;
    return 0;
}

int scheduler_load(Scheduler *s, SchedulerKind kind, const char *config_path, DiceError *err) {
    memset(s, 0, sizeof *s);
    SchedulerConfig cfg;
    int rc = scheduler_config_load(&cfg, kind, config_path, err);
    if (!rc) rc = scheduler_init(s, &cfg, err);
    scheduler_config_free(&cfg);
    return rc;
}

static void free_run(Scheduler *s) {
    free(s->timesteps);
    free(s->sigmas);
    for (int k = 0; k < 3; k++) free(s->model_outputs[k]);
    s->timesteps = s->sigmas = NULL;
    memset(s->model_outputs, 0, sizeof s->model_outputs);
    s->num_steps = s->num_inference_steps = s->step_index = s->lower_order_nums = 0;
    s->numel = 0;
}

void scheduler_free(Scheduler *s) {
    free_run(s);
    noise_schedule_free(&s->sched);
    scheduler_config_free(&s->cfg);
}

int scheduler_set_timesteps(Scheduler *s, int num_inference_steps, DiceError *err) {
    free_run(s);
    const char *cls = scheduler_kind_name(s->cfg.kind);
    int T = s->sched.T;
    DICE_CHECK(err, num_inference_steps >= 1 && num_inference_steps <= T,
               "%s: %d inference steps; the model was trained with %d timesteps (allowed: 1..%d)", cls,
               num_inference_steps, T, T);
    s->num_inference_steps = num_inference_steps;
    int rc;
    switch (s->cfg.kind) {
    case SCHED_DPMSOLVER_MULTISTEP: rc = dpm_solver_set_timesteps(s, err); break;
    case SCHED_EULER_DISCRETE: rc = euler_set_timesteps(s, err); break;
    case SCHED_DDIM: rc = ddim_set_timesteps(s, err); break;
    default: rc = DICE_FAIL(err, "scheduler: unknown kind %d", (int)s->cfg.kind);
    }
    if (!rc) {
        for (int i = 0; i < s->num_steps && !rc; i++) {
            float t = s->timesteps[i];
            if (t < 0)  // numpy.arange's float rounding adds a last timestep -1 for some step counts
                rc = DICE_FAIL(err, "%s: \"trailing\" spacing with %d steps ends at timestep %g in diffusers (a "
                               "rounding artefact); use another number of steps", cls, num_inference_steps, (double)t);
            // DPM-Solver++ and Euler read sigma by numpy.interp, which clamps above T - 1; DDIM indexes
            else if (t > T - 1 && s->cfg.kind == SCHED_DDIM)
                rc = DICE_FAIL(err, "%s: timestep %g of %d steps is above %d (steps_offset %d too large?)", cls,
                               (double)t, num_inference_steps, T - 1, s->cfg.steps_offset);
            // a repeated timestep would make diffusers start one step late; refuse the schedule instead
            else if (i > 0 && t == s->timesteps[i - 1])
                rc = DICE_FAIL(err, "%s: %d steps repeat timestep %g with this spacing; use fewer steps", cls,
                               num_inference_steps, (double)t);
        }
    }
    if (rc) free_run(s);
    return rc;
}

// The current step must exist and match the caller's timestep.
static int check_timestep(const Scheduler *s, float timestep, const char *what, DiceError *err) {
    const char *cls = scheduler_kind_name(s->cfg.kind);
    DICE_CHECK(err, s->num_steps > 0, "%s: %s before set_timesteps", cls, what);
    DICE_CHECK(err, s->step_index < s->num_steps, "%s: %s after the last of %d steps", cls, what, s->num_steps);
    DICE_CHECK(err, timestep == s->timesteps[s->step_index],
               "%s: %s at timestep %g, but step %d of the schedule is at timestep %g", cls, what, (double)timestep,
               s->step_index, (double)s->timesteps[s->step_index]);
    return 0;
}

int scheduler_scale_model_input(Scheduler *s, float timestep, const float *sample, float *out, size_t n,
                                DiceError *err) {
    DICE_TRY(check_timestep(s, timestep, "scale_model_input", err));
    if (s->cfg.kind == SCHED_EULER_DISCRETE) euler_scale_model_input(s, sample, out, n);
    else if (out != sample) memcpy(out, sample, n * sizeof *out);
    return 0;
}

int scheduler_step(Scheduler *s, float timestep, const float *model_output, const float *sample,
                   float *prev_sample, size_t n, DiceError *err) {
    DICE_TRY(check_timestep(s, timestep, "step", err));
    switch (s->cfg.kind) {
    case SCHED_DPMSOLVER_MULTISTEP: DICE_TRY(dpm_solver_step(s, model_output, sample, prev_sample, n, err)); break;
    case SCHED_EULER_DISCRETE: euler_step(s, model_output, sample, prev_sample, n); break;
    case SCHED_DDIM: ddim_step(s, model_output, sample, prev_sample, n); break;
    }
    s->step_index++;
    return 0;
}
