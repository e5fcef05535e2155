// tests/test_schedulers.c — noise schedules and samplers against diffusers
// (tests/golden/schedulers.safetensors, written by scripts/golden_schedulers.py): timesteps and
// alphas_cumprod exactly, sigmas to the last bit, whole sampling trajectories with a fake model step by
// step, add_noise and the v target; and the config reader's errors on malformed or unsupported
// scheduler_config.json files.
//
// Why "to the last bit" rather than exactly: PyTorch's float32 sqrt, exp and log on the CPU (MKL's
// vector math in the x86 wheels) are not correctly rounded (sqrt differs from the IEEE result in about
// one value in six), the C library's are, so values that pass through them may differ by an ulp.
// alphas_cumprod is exact except under rescale_betas_zero_snr, whose rescaling takes square roots.
#include <stdio.h>
#include <stdlib.h>

#include "nn/safetensors.h"
#include "sample/scheduler.h"
#include "test.h"

// |got - want| <= rel * |want| + abs
static bool close_to(float got, float want, double rel, double abs) {
    return fabs((double)got - (double)want) <= rel * fabs((double)want) + abs;
}

// Replays case `name` (see scripts/golden_schedulers.py) and checks every recorded value; *worst
// receives the largest relative error of a step.
static void run_case(TestCtx *tc, const StFile *f, const char *name, double *worst) {
    char key[160];
    snprintf(key, sizeof key, "%s.json", name);
    const char *json = st_meta(f, key);
    snprintf(key, sizeof key, "%s.class", name);
    const char *cls = st_meta(f, key);
    snprintf(key, sizeof key, "%s.steps", name);
    const char *steps_text = st_meta(f, key);
    CHECK_MSG(json && cls && steps_text, "case %s: metadata missing", name);
    SchedulerKind kind;
    CHECK_MSG(scheduler_kind_from_name(cls, &kind) == 0, "case %s: unknown class %s", name, cls);
    SchedulerConfig cfg;
    dice_error_clear(&tc->err);
    int rc = scheduler_config_parse(&cfg, kind, json, strlen(json), name, &tc->err);
    Scheduler s;
    if (!rc) rc = scheduler_init(&s, &cfg, &tc->err);
    scheduler_config_free(&cfg);
    CHECK_MSG(rc == 0, "case %s: %s", name, tc->err.msg);
    // The schedule: exact, except that the zero-SNR rescaling's square roots leave diffusers'
    // alphas_cumprod a few ulp away (seen: 3.6e-7 absolute). In those cases the sampler is then checked
    // on diffusers' own alphas_cumprod and sigmas: Euler's first step from sigma 4096 to sigma 8 cancels
    // about 500x, so a last-bit difference in sigma_max alone moves the whole trajectory by 1.1e-5.
    bool rescaled = s.cfg.schedule.rescale_betas_zero_snr;
    snprintf(key, sizeof key, "%s/alphas_cumprod", name);
    CHECK_MSG(!rescaled || st_find(f, key), "case %s: zero-SNR case without alphas_cumprod", name);
    if (st_find(f, key)) {
        const float *want = test_golden_f32(tc, f, key, s.sched.T);
        if (!want) return;
        for (int i = 0; i < s.sched.T; i++)
            CHECK_MSG(close_to(s.sched.alphas_cumprod[i], want[i], 0, rescaled ? 5e-7 : 0),
                      "case %s: alphas_cumprod[%d] is %.9g, diffusers %.9g", name, i,
                      (double)s.sched.alphas_cumprod[i], (double)want[i]);
        if (rescaled) memcpy(s.sched.alphas_cumprod, want, sizeof(float) * (size_t)s.sched.T);
    }
    CHECK_OK(scheduler_set_timesteps(&s, atoi(steps_text), &tc->err));

    snprintf(key, sizeof key, "%s/timesteps", name);
    const StTensorInfo *ts = st_find(f, key);
    CHECK_MSG(ts && ts->ndim == 1, "case %s: timesteps missing", name);
    CHECK_MSG(ts->shape[0] == s.num_steps, "case %s: %d timesteps, diffusers has %lld", name, s.num_steps,
              (long long)ts->shape[0]);
    const float *want_t = test_golden_f32(tc, f, key, s.num_steps);
    if (!want_t) return;
    for (int i = 0; i < s.num_steps; i++)
        CHECK_MSG(s.timesteps[i] == want_t[i], "case %s: timestep %d is %.9g, diffusers %.9g", name, i,
                  (double)s.timesteps[i], (double)want_t[i]);
    snprintf(key, sizeof key, "%s/sigmas", name);
    if (st_find(f, key)) {
        const float *want = test_golden_f32(tc, f, key, s.num_steps + 1);
        if (!want) return;
        for (int i = 0; i <= s.num_steps; i++)
            CHECK_MSG(close_to(s.sigmas[i], want[i], 3e-7, 0), "case %s: sigma %d is %.9g, diffusers %.9g", name, i,
                      (double)s.sigmas[i], (double)want[i]);
        if (rescaled) memcpy(s.sigmas, want, sizeof(float) * (size_t)(s.num_steps + 1));
    }
    snprintf(key, sizeof key, "%s/init_noise_sigma", name);
    const float *want_sigma = test_golden_f32(tc, f, key, 1);
    if (!want_sigma) return;
    CHECK_MSG(close_to(s.init_noise_sigma, *want_sigma, 3e-7, 0), "case %s: init_noise_sigma %.9g, diffusers %.9g",
              name, (double)s.init_noise_sigma, (double)*want_sigma);
    if (rescaled) s.init_noise_sigma = *want_sigma;

    snprintf(key, sizeof key, "%s/trajectory", name);
    const StTensorInfo *traj = st_find(f, key);
    CHECK_MSG(traj && traj->ndim == 5 && traj->shape[0] == s.num_steps, "case %s: trajectory missing", name);
    int side = (int)traj->shape[4];
    size_t n = (size_t)4 * side * side;
    snprintf(key, sizeof key, "noise%d", side);
    const float *noise = test_golden_f32(tc, f, key, (int64_t)n);
    snprintf(key, sizeof key, "r%d", side);
    const float *r = test_golden_f32(tc, f, key, (int64_t)n);
    const float *want_traj = test_golden_f32(tc, f, traj->name, (int64_t)n * s.num_steps);
    if (!noise || !r || !want_traj) return;
    float *x = malloc(n * sizeof *x), *x_in = malloc(n * sizeof *x), *eps = malloc(n * sizeof *x);
    CHECK(x && x_in && eps);
    for (size_t i = 0; i < n; i++) x[i] = noise[i] * s.init_noise_sigma;
    for (int k = 0; k < s.num_steps; k++) {
        float t = s.timesteps[k];
        CHECK_OK(scheduler_scale_model_input(&s, t, x, x_in, n, &tc->err));
        float coef = (float)(0.05 * sin((double)t));  // the fake model of the golden script
        for (size_t i = 0; i < n; i++) {
            float a = x_in[i] * 0.1f, b = coef * r[i];
            eps[i] = a + b;
        }
        CHECK_OK(scheduler_step(&s, t, eps, x, x, n, &tc->err));  // in place
        double rel = test_rel_err_f32(x, want_traj + (size_t)k * n, n);
        if (rel > *worst) *worst = rel;
        CHECK_MSG(rel <= 1e-5, "case %s: step %d (t %g): relative error %.3g against diffusers", name, k, (double)t,
                  rel);
    }
    free(x), free(x_in), free(eps);
    scheduler_free(&s);
}

static void run_named(TestCtx *tc, const char *name) {
    StFile f;
    CHECK_OK(st_open(&f, test_path(tc, "tests/golden/schedulers.safetensors"), &tc->err));
    double worst = 0;
    run_case(tc, &f, name, &worst);
    st_close(&f);
}

// Stable Diffusion 1.5's scheduler_config.json (a PNDMScheduler config) switched to DPM-Solver++ 2M:
// the paper's sampler, 20 steps, linspace timesteps 999 ... 50.
DICE_TEST(sched_dpm_solver_sd15_matches_diffusers) { run_named(tc, "sd15_dpm"); }
DICE_TEST(sched_euler_sd15_matches_diffusers) { run_named(tc, "sd15_euler"); }
DICE_TEST(sched_ddim_sd15_matches_diffusers) { run_named(tc, "sd15_ddim"); }

// Every recorded case: spacings, orders, heun, v / sample prediction, zero SNR, cosine with
// lambda_min_clipped, trained betas, a 100-timestep model, a config saved by diffusers itself.
DICE_TEST(sched_all_golden_cases_match_diffusers) {
    StFile f;
    CHECK_OK(st_open(&f, test_path(tc, "tests/golden/schedulers.safetensors"), &tc->err));
    const char *list = st_meta(&f, "cases");
    CHECK(list);
    char names[2048];
    snprintf(names, sizeof names, "%s", list);
    double worst = 0;
    int cases = 0;
    for (char *save = NULL, *name = strtok_r(names, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        double case_worst = 0;
        run_case(tc, &f, name, &case_worst);
        if (tc->failed) break;
        if (case_worst > worst) worst = case_worst;
        cases++;
    }
    st_close(&f);
    CHECK(cases >= 15);
    // every step is within 1e-5; what the float32 arithmetic actually reaches is tighter (seen: 6.4e-7)
    CHECK_MSG(worst <= 2e-6, "worst step error %.3g", worst);
}

// Timesteps of every class and spacing for T 1000 and 37 and a range of step counts (steps_offset 1);
// the counts where diffusers repeats a timestep, ends at -1 or (DDIM) passes T - 1 must be refused.
DICE_TEST(sched_timestep_grid_matches_diffusers) {
    StFile f;
    CHECK_OK(st_open(&f, test_path(tc, "tests/golden/schedulers.safetensors"), &tc->err));
    static const char *const spacings[] = {"linspace", "leading", "trailing"};
    const int Ts[] = {1000, 37};
    int grids = 0;
    char key[160], list[512];
    for (int kind = 0; kind < 3; kind++) {
        for (int sp = 0; sp < 3; sp++) {
            for (int ti = 0; ti < 2; ti++) {
                snprintf(key, sizeof key, "grid/%s/%s/%d", scheduler_kind_name((SchedulerKind)kind), spacings[sp],
                         Ts[ti]);
                const char *lengths = st_meta(&f, key);
                const StTensorInfo *info = st_find(&f, key);
                CHECK_MSG(lengths && info && info->dtype == DT_F32, "%s missing", key);
                const float *want = info->data;
                SchedulerConfig cfg = scheduler_config_defaults((SchedulerKind)kind);
                cfg.schedule.num_train_timesteps = Ts[ti];
                cfg.timestep_spacing = (TimestepSpacing)sp;
                cfg.steps_offset = 1;
                Scheduler s;
                CHECK_OK(scheduler_init(&s, &cfg, &tc->err));
                snprintf(list, sizeof list, "%s", lengths);
                int64_t at = 0;
                for (char *save = NULL, *pair = strtok_r(list, ",", &save); pair; pair = strtok_r(NULL, ",", &save)) {
                    int steps, count;
                    CHECK(sscanf(pair, "%d:%d", &steps, &count) == 2);
                    CHECK_OK(scheduler_set_timesteps(&s, steps, &tc->err));
                    CHECK_MSG(s.num_steps == count && at + count <= st_numel(info), "%s, %d steps: %d timesteps, "
                              "diffusers %d", key, steps, s.num_steps, count);
                    for (int i = 0; i < count; i++)
                        CHECK_MSG(s.timesteps[i] == want[at + i], "%s, %d steps: timestep %d is %.9g, diffusers %.9g",
                                  key, steps, i, (double)s.timesteps[i], (double)want[at + i]);
                    at += count;
                }
                CHECK(at == st_numel(info));
                scheduler_free(&s);
                grids++;
            }
        }
    }
    const char *refused = st_meta(&f, "grid.refused");
    CHECK(refused);
    snprintf(list, sizeof list, "%s", refused);
    int n_refused = 0;
    for (char *save = NULL, *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char cls[64], spacing[16];
        int T, steps;
        CHECK(sscanf(item, "%63[^/]/%15[^/]/%d/%d", cls, spacing, &T, &steps) == 4);
        SchedulerKind kind;
        CHECK(scheduler_kind_from_name(cls, &kind) == 0);
        SchedulerConfig cfg = scheduler_config_defaults(kind);
        cfg.schedule.num_train_timesteps = T;
        cfg.timestep_spacing = !strcmp(spacing, "linspace") ? SPACING_LINSPACE
                             : !strcmp(spacing, "leading")  ? SPACING_LEADING
                                                            : SPACING_TRAILING;
        cfg.steps_offset = 1;
        Scheduler s;
        CHECK_OK(scheduler_init(&s, &cfg, &tc->err));
        dice_error_clear(&tc->err);
        CHECK_MSG(scheduler_set_timesteps(&s, steps, &tc->err) != 0, "%s was accepted", item);
        CHECK_MSG(s.num_steps == 0, "%s: a refused schedule left %d steps", item, s.num_steps);
        scheduler_free(&s);
        n_refused++;
    }
    st_close(&f);
    CHECK(grids == 18 && n_refused == 6);
}

DICE_TEST(sched_sd15_timesteps_are_the_known_ones) {
    StFile f;
    CHECK_OK(st_open(&f, test_path(tc, "tests/golden/schedulers.safetensors"), &tc->err));
    const char *json = st_meta(&f, "sd15_dpm.json");
    CHECK(json);
    const struct { SchedulerKind kind; float first, last; float init_sigma_min; } want[] = {
        {SCHED_DPMSOLVER_MULTISTEP, 999, 50, 1}, {SCHED_EULER_DISCRETE, 999, 0, 14.6f}, {SCHED_DDIM, 951, 1, 1}};
    for (int k = 0; k < 3; k++) {
        Scheduler s;
        SchedulerConfig cfg;
        CHECK_OK(scheduler_config_parse(&cfg, want[k].kind, json, strlen(json), "sd15", &tc->err));
        CHECK(cfg.schedule.beta_schedule == BETA_SCALED_LINEAR && cfg.steps_offset == 1);
        CHECK(cfg.timestep_spacing == (want[k].kind == SCHED_DDIM ? SPACING_LEADING : SPACING_LINSPACE));
        CHECK_OK(scheduler_init(&s, &cfg, &tc->err));
        scheduler_config_free(&cfg);
        CHECK_OK(scheduler_set_timesteps(&s, 20, &tc->err));
        CHECK(s.num_steps == 20 && s.timesteps[0] == want[k].first && s.timesteps[19] == want[k].last);
        CHECK(s.init_noise_sigma >= want[k].init_sigma_min);
        scheduler_free(&s);
    }
    st_close(&f);
}

DICE_TEST(sched_add_noise_and_velocity_match_ddpm) {
    StFile f;
    CHECK_OK(st_open(&f, test_path(tc, "tests/golden/schedulers.safetensors"), &tc->err));
    const size_t n = 2 * 4 * 4 * 4, per_image = n / 2;
    const float *x0 = test_golden_f32(tc, &f, "noising/x0", (int64_t)n);
    const float *noise = test_golden_f32(tc, &f, "noising/noise", (int64_t)n);
    if (!x0 || !noise) return;
    char names[256], key[128];
    const char *list = st_meta(&f, "noising");
    CHECK(list);
    snprintf(names, sizeof names, "%s", list);
    int checked = 0;
    for (char *save = NULL, *name = strtok_r(names, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        snprintf(key, sizeof key, "noising.%s.json", name);
        const char *json = st_meta(&f, key);
        CHECK(json);
        ScheduleConfig cfg;
        NoiseSchedule s;
        dice_error_clear(&tc->err);
        int rc = schedule_config_parse(&cfg, json, strlen(json), name, &tc->err);
        if (!rc) rc = noise_schedule_init(&s, &cfg, &tc->err);
        bool rescaled = cfg.rescale_betas_zero_snr;
        schedule_config_free(&cfg);
        CHECK_MSG(rc == 0, "%s: %s", name, tc->err.msg);
        snprintf(key, sizeof key, "noising/%s/alphas_cumprod", name);
        const float *abar = test_golden_f32(tc, &f, key, s.T);
        if (!abar) return;
        double abar_abs = rescaled ? 5e-7 : 0;  // see run_case
        for (int t = 0; t < s.T; t++)
            CHECK_MSG(close_to(s.alphas_cumprod[t], abar[t], 0, abar_abs),
                      "%s: alphas_cumprod[%d] %.9g, diffusers %.9g", name, t, (double)s.alphas_cumprod[t],
                      (double)abar[t]);
        snprintf(key, sizeof key, "noising/%s/t", name);
        const StTensorInfo *ts = st_find(&f, key);
        CHECK(ts && ts->dtype == DT_I64 && ts->ndim == 1);
        int nt = (int)ts->shape[0];
        snprintf(key, sizeof key, "noising/%s/add_noise", name);
        const float *want_noisy = test_golden_f32(tc, &f, key, (int64_t)n * nt);
        snprintf(key, sizeof key, "noising/%s/velocity", name);
        const float *want_v = test_golden_f32(tc, &f, key, (int64_t)n * nt);
        if (!want_noisy || !want_v) return;
        float got[2 * 4 * 4 * 4];
        for (int k = 0; k < nt; k++) {
            int64_t t;
            memcpy(&t, (const char *)ts->data + 8 * k, 8);
            for (int b = 0; b < 2; b++)  // one timestep per image, as a training batch would
                schedule_add_noise(&s, (int)t, x0 + b * per_image, noise + b * per_image, got + b * per_image,
                                   per_image);
            double rel = test_rel_err_f32(got, want_noisy + k * n, n);
            CHECK_MSG(rel <= 3e-7, "%s: add_noise at t %lld: relative error %.3g", name, (long long)t, rel);
            schedule_velocity(&s, (int)t, x0, noise, got, n);
            rel = test_rel_err_f32(got, want_v + k * n, n);
            CHECK_MSG(rel <= 3e-7, "%s: velocity at t %lld: relative error %.3g", name, (long long)t, rel);
            checked++;
        }
        noise_schedule_free(&s);
    }
    st_close(&f);
    CHECK(checked == 10);
}

// ---------------------------------------------------------------- config errors

static int parse(TestCtx *tc, SchedulerKind kind, const char *json) {
    SchedulerConfig cfg;
    int rc = scheduler_config_parse(&cfg, kind, json, strlen(json), "scheduler_config.json", &tc->err);
    scheduler_config_free(&cfg);
    return rc;
}

DICE_TEST(sched_config_rejects_unsupported_features_by_name) {
    const SchedulerKind D = SCHED_DPMSOLVER_MULTISTEP, E = SCHED_EULER_DISCRETE, I = SCHED_DDIM;
    CHECK_FAILS_WITH(parse(tc, D, "{\"use_karras_sigmas\": true}"), "use_karras_sigmas true is not supported");
    CHECK_FAILS_WITH(parse(tc, E, "{\"use_karras_sigmas\": true}"), "EulerDiscreteScheduler");
    CHECK_FAILS_WITH(parse(tc, I, "{\"thresholding\": true}"), "thresholding true is not supported");
    CHECK_FAILS_WITH(parse(tc, D, "{\"algorithm_type\": \"sde-dpmsolver++\"}"),
                     "algorithm_type \"sde-dpmsolver++\" is not supported by dice's DPMSolverMultistepScheduler");
    CHECK_FAILS_WITH(parse(tc, D, "{\"use_flow_sigmas\": true}"), "use_flow_sigmas");
    CHECK_FAILS_WITH(parse(tc, D, "{\"variance_type\": \"learned_range\"}"), "variance_type \"learned_range\"");
    CHECK_FAILS_WITH(parse(tc, D, "{\"beta_schedule\": \"sigmoid\"}"), "beta_schedule \"sigmoid\" is not supported");
    CHECK_FAILS_WITH(parse(tc, D, "{\"prediction_type\": \"flow_prediction\"}"), "prediction_type");
    CHECK_FAILS_WITH(parse(tc, E, "{\"interpolation_type\": \"log_linear\"}"), "interpolation_type");
    CHECK_FAILS_WITH(parse(tc, E, "{\"timestep_type\": \"continuous\", \"prediction_type\": \"v_prediction\"}"),
                     "continuous");
    CHECK_FAILS_WITH(parse(tc, D, "{\"_class_name\": \"FlowMatchEulerDiscreteScheduler\"}"),
                     "is not a DDPM-type");
    CHECK_FAILS_WITH(parse(tc, I, "{\"sigma_data\": 0.5}"), "unknown field sigma_data");
    // a feature of another class has no effect on this one, as in diffusers' from_config
    CHECK_OK(parse(tc, I, "{\"use_karras_sigmas\": true, \"solver_order\": 3, \"skip_prk_steps\": true}"));
    CHECK_OK(parse(tc, D, "{\"clip_sample\": true, \"set_alpha_to_one\": false, \"timestep_type\": \"x\"}"));
    CHECK_OK(parse(tc, E, "{\"timestep_type\": \"continuous\", \"use_karras_sigmas\": null, \"sigma_min\": null}"));
    CHECK_OK(parse(tc, D, "{\"lambda_min_clipped\": -Infinity, \"algorithm_type\": \"deis\", \"solver_type\": "
                          "\"bh2\", \"_anything\": [1, 2]}"));
}

DICE_TEST(sched_config_rejects_malformed_json_and_values) {
    const SchedulerKind D = SCHED_DPMSOLVER_MULTISTEP;
    CHECK_FAILS_WITH(parse(tc, D, "{\"num_train_timesteps\": 1000"), "not valid JSON");
    CHECK_FAILS_WITH(parse(tc, D, "[1, 2]"), "not a JSON object");
    CHECK_FAILS_WITH(parse(tc, D, "{\"beta_start\": NaN}"), "not valid JSON");
    CHECK_FAILS_WITH(parse(tc, D, "{\"num_train_timesteps\": \"1000\"}"),
                     "num_train_timesteps must be an integer in 2..1000000, not \"1000\"");
    CHECK_FAILS_WITH(parse(tc, D, "{\"num_train_timesteps\": 999.5}"), "must be an integer");
    CHECK_FAILS_WITH(parse(tc, D, "{\"solver_order\": 4}"), "solver_order must be an integer in 1..3");
    CHECK_FAILS_WITH(parse(tc, D, "{\"beta_end\": Infinity}"), "beta_end must be a finite number");
    CHECK_FAILS_WITH(parse(tc, D, "{\"lower_order_final\": 1}"), "lower_order_final must be true or false");
    CHECK_FAILS_WITH(parse(tc, D, "{\"steps_offset\": 1, \"steps_offset\": 0}"), "steps_offset appears twice");
    CHECK_FAILS_WITH(parse(tc, D, "{\"prediction_type\": \"Infinity\"}"), "prediction_type \"Infinity\"");
    CHECK_FAILS_WITH(parse(tc, D, "{\"trained_betas\": [0.1, 0.2, 0.3]}"),
                     "trained_betas has 3 values but num_train_timesteps is 1000");
    CHECK_FAILS_WITH(parse(tc, D, "{\"trained_betas\": [0.1, \"x\"]}"), "trained_betas[1] must be a finite number");
    CHECK_FAILS_WITH(parse(tc, D, "{\"steps_offset\": 1000}"), "steps_offset 1000 is not in 0..999");
    CHECK_FAILS_WITH(parse(tc, D, "{\"lambda_min_clipped\": Infinity}"), "lambda_min_clipped");
    SchedulerConfig cfg;
    CHECK_FAILS_WITH(scheduler_config_load(&cfg, D, "/nonexistent/scheduler_config.json", &tc->err), "cannot open");
    scheduler_config_free(&cfg);
    // a schedule whose betas leave [0, 1) is refused when the scheduler is built
    CHECK_OK(scheduler_config_parse(&cfg, D, "{\"beta_end\": 1.5}", 17, "cfg", &tc->err));
    Scheduler s;
    CHECK_FAILS_WITH(scheduler_init(&s, &cfg, &tc->err), "outside [0, 1)");
    scheduler_config_free(&cfg);
}

DICE_TEST(sched_training_schedule_reads_any_sampler_config) {
    const char *dir = test_tmpdir(tc);
    char path[512];
    snprintf(path, sizeof path, "%s/scheduler_config.json", dir);
    FILE *fp = fopen(path, "w");
    CHECK(fp);
    fputs("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"beta_schedule\": \"scaled_linear\", \"beta_start\": "
          "0.00085, \"beta_end\": 0.012, \"use_karras_sigmas\": true, \"thresholding\": true, \"prediction_type\": "
          "\"v_prediction\", \"lambda_min_clipped\": -Infinity}", fp);
    fclose(fp);
    ScheduleConfig cfg;
    CHECK_OK(schedule_config_load(&cfg, path, &tc->err));  // sampler-only features do not matter for add_noise
    CHECK(cfg.beta_schedule == BETA_SCALED_LINEAR && cfg.prediction_type == PRED_V_PREDICTION);
    NoiseSchedule s;
    CHECK_OK(noise_schedule_init(&s, &cfg, &tc->err));
    CHECK(s.T == 1000 && s.alphas_cumprod[0] > 0.999f && s.alphas_cumprod[999] < 0.005f);
    noise_schedule_free(&s);
    schedule_config_free(&cfg);
    CHECK_FAILS_WITH(schedule_config_parse(&cfg, "{\"beta_schedule\": \"cosine\"}", 27, "x", &tc->err),
                     "beta_schedule \"cosine\" is not supported by dice's DDPMScheduler");
    schedule_config_free(&cfg);
}

// ---------------------------------------------------------------- use errors

DICE_TEST(sched_step_checks_the_schedule) {
    SchedulerConfig cfg = scheduler_config_defaults(SCHED_DPMSOLVER_MULTISTEP);
    Scheduler s;
    CHECK_OK(scheduler_init(&s, &cfg, &tc->err));
    float x[8] = {0}, eps[8] = {0};
    CHECK_FAILS_WITH(scheduler_step(&s, 999, eps, x, x, 8, &tc->err), "step before set_timesteps");
    CHECK_FAILS_WITH(scheduler_set_timesteps(&s, 0, &tc->err), "0 inference steps");
    CHECK_FAILS_WITH(scheduler_set_timesteps(&s, 1001, &tc->err), "allowed: 1..1000");
    CHECK_OK(scheduler_set_timesteps(&s, 2, &tc->err));
    CHECK(s.num_steps == 2);
    CHECK_FAILS_WITH(scheduler_step(&s, 500, eps, x, x, 8, &tc->err), "step 0 of the schedule is at timestep");
    CHECK_OK(scheduler_step(&s, s.timesteps[0], eps, x, x, 8, &tc->err));
    CHECK_FAILS_WITH(scheduler_step(&s, s.timesteps[1], eps, x, x, 4, &tc->err), "the first step had 8");
    CHECK_OK(scheduler_step(&s, s.timesteps[1], eps, x, x, 8, &tc->err));
    CHECK_FAILS_WITH(scheduler_step(&s, s.timesteps[1], eps, x, x, 8, &tc->err), "after the last of 2 steps");
    // set_timesteps starts a new run
    CHECK_OK(scheduler_set_timesteps(&s, 3, &tc->err));
    CHECK_OK(scheduler_step(&s, s.timesteps[0], eps, x, x, 4, &tc->err));
    scheduler_free(&s);

    // more steps than distinct rounded timesteps: refused rather than started one step late
    cfg.schedule.num_train_timesteps = 100;
    CHECK_OK(scheduler_init(&s, &cfg, &tc->err));
    CHECK_FAILS_WITH(scheduler_set_timesteps(&s, 100, &tc->err), "repeat timestep");
    scheduler_free(&s);
    // leading timesteps pushed past T - 1 by steps_offset
    cfg = scheduler_config_defaults(SCHED_DDIM);
    cfg.steps_offset = 999;
    CHECK_OK(scheduler_init(&s, &cfg, &tc->err));
    CHECK_FAILS_WITH(scheduler_set_timesteps(&s, 2, &tc->err), "above 999 (steps_offset 999 too large?)");
    scheduler_free(&s);
}
