// bench/unet.c — end-to-end benchmark (issue 4 item 10): one UNet step and a whole 20-step DPM-Solver++ sample
// loop (UNet calls + scheduler on the host, no text encoder, no VAE) with random weights of the real shapes,
// next to diffusers (scripts/bench_diffusers.py, run separately with the same options; same table format).
//
//   build/bench/unet [--config sd15|small] [--batch 1|2] [--steps 20] [--height H --width W] [--iters N]
//
// Defaults: on a GPU, SD1.5's UNet in bf16 at 512x512 (64x64 latents); on the CPU, the `small` config (SD1.5's
// block structure with block_out_channels 32/64/128/128, cross_attention_dim 256) in f32 at 256x256 (32x32
// latents). --height / --width are image pixels (latents are 1/8). Batch 2 is one CFG step (uncond + cond);
// its sample loop is a CFG sample of one image (guidance 7.5); batch 1 samples without CFG. Without --batch
// both are timed. Conditioning: 77 random tokens of cross_attention_dim.
//
// Weights: unet_load requests every tensor of the config by its diffusers name and shape from a Weights
// without files (weights_open_empty), which leaves each one zero-filled at its shape; weights_init_pytorch
// (models/init.h) then fills the loader's manifest of them as PyTorch initialises the modules (matrices, convolutions and their
// biases uniform in +-1/sqrt(fan_in), norms 1 and 0) from a fixed seed. Any device gets the same values
// (rounded to bf16 on a GPU).
//
// Validation before timing, at the check config (the small one with 64/128/128/128 channels, so that every
// attention head dim is a multiple of 8 as the CUDA kernels need), batch 2, 32x32 latents, t = 500: the CPU
// f32 eps of two independently built models must be bitwise equal (determinism), and on a GPU the bf16 eps
// must match the CPU f32 eps within 3e-2 relative norm error. Nothing is timed if a check fails.
//
// Timing: median of --iters runs after a warm-up (CUDA events on a GPU, the monotonic clock on the CPU). A
// step includes uploading the latents and downloading eps as the sampler does. it/s = UNet calls per second
// (a CFG step counts once, as diffusers' progress bar counts it). On a GPU the peak device memory is printed:
// cudaMemGetInfo's used memory after each batch's runs minus before the weights, and the arenas' sizes.
#include <errno.h>
#include <unistd.h>

#include "bench/bench.h"
#include "models/init.h"
#include "models/unet.h"
#include "nn/tensor_copy.h"
#include "sample/pipeline.h"
#include "sample/scheduler.h"

// SD1.5's unet/config.json (runwayml/stable-diffusion-v1-5) less its informational fields; `small` keeps the
// block structure with smaller channel counts.
#define UNET_JSON(CH, CROSS, SIZE)                                                                               \
    "{\"_class_name\": \"UNet2DConditionModel\", \"act_fn\": \"silu\", \"attention_head_dim\": 8, "            \
    "\"block_out_channels\": " CH ", \"center_input_sample\": false, \"cross_attention_dim\": " CROSS ", "      \
    "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", "     \
    "\"DownBlock2D\"], \"downsample_padding\": 1, \"flip_sin_to_cos\": true, \"freq_shift\": 0, "             \
    "\"in_channels\": 4, \"layers_per_block\": 2, \"mid_block_scale_factor\": 1, \"norm_eps\": 1e-05, "       \
    "\"norm_num_groups\": 32, \"out_channels\": 4, \"sample_size\": " SIZE ", \"up_block_types\": "            \
    "[\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"]}"
static const char sd15_json[] = UNET_JSON("[320, 640, 1280, 1280]", "768", "64");
static const char small_json[] = UNET_JSON("[32, 64, 128, 128]", "256", "32");
static const char check_json[] = UNET_JSON("[64, 128, 128, 128]", "256", "32");  // head dims 8 / 16 / 16

// SD1.5's scheduler_config.json values, read as DPMSolverMultistepScheduler.
static const char sched_json[] = "{\"beta_start\": 0.00085, \"beta_end\": 0.012, \"beta_schedule\": "
                                 "\"scaled_linear\", \"num_train_timesteps\": 1000, \"steps_offset\": 1}";

enum { TOKENS = 77 };
enum { WEIGHT_SEED = 1234 };

// One model on one device, its arenas and the state of a run.
typedef struct Bench {
    DiceCtx *ctx;
    DType dtype;
    Unet u;
    Arena weights, step, host, tmp;
    Graph g;
    Tensor ehs;               // (2, TOKENS, cross) in dtype on the device; batch 1 uses row 1 (cond)
    int rows, h, w;           // UNet batch, latent size
    int steps;
    float t;                  // timestep of a single step
    float *x, *x_in, *e;      // host latents (rows, h, w, 4) f32
    float *eps;               // last eps, host f32 (in `host`)
    uint64_t rng;
    DiceError err;
} Bench;

// Builds the model of config `json` on ctx in dtype with random weights, and the run's buffers for up to 2
// rows of h x w latents.
static int bench_init(Bench *b, DiceCtx *ctx, DType dtype, const char *json, int h, int w, int steps) {
    memset(b, 0, sizeof *b);
    b->ctx = ctx, b->dtype = dtype, b->h = h, b->w = w, b->steps = steps, b->t = 500, b->rng = 1234;
    DiceError *err = &b->err;
    UnetConfig cfg;
    DICE_TRY(unet_config_parse(&cfg, json, "bench config", err));
    DICE_TRY(arena_init(&b->weights, "weights", ctx->device, (size_t)256 << 20, 0, err));
    DICE_TRY(arena_init(&b->step, "step", ctx->device, (size_t)256 << 20, 0, err));
    DICE_TRY(arena_init(&b->host, "host", DEV_CPU, (size_t)8 << 20, 0, err));
    DICE_TRY(arena_init(&b->tmp, "inputs", ctx->device, (size_t)64 << 20, 0, err));
    DICE_TRY(graph_init(&b->g, ctx, &b->step, err));
    Weights wt;
    DICE_TRY(weights_open_empty(&wt, ctx, &b->weights, dtype, err));
    int rc = unet_load(&b->u, &cfg, &wt, err);  // every tensor zero-filled at its shape, then initialised
    WeightManifest m;
    weights_take_manifest(&wt, &m);
    weights_close(&wt);
    if (!rc) rc = weights_init_pytorch(&m, ctx, WEIGHT_SEED, err);
    weight_manifest_free(&m);
    DICE_TRY(rc);
    size_t n = (size_t)2 * h * w * cfg.in_channels, ne = (size_t)2 * TOKENS * cfg.cross_attention_dim[0];
    b->x = malloc(n * sizeof *b->x), b->x_in = malloc(n * sizeof *b->x_in), b->e = malloc(n * sizeof *b->e);
    float *ev = malloc(ne * sizeof *ev);
    DICE_CHECK(err, b->x && b->x_in && b->e && ev, "out of host memory");
    bench_fill_uniform(ev, ne, -1, 1, &b->rng);
    bench_fill_uniform(b->x_in, n, -1, 1, &b->rng);
    Tensor host;
    rc = tensor_wrap(&host, ev, DT_F32, DEV_CPU, 3, (int64_t[]){2, TOKENS, cfg.cross_attention_dim[0]}, err);
    if (!rc) rc = tensor_to(ctx, &b->tmp, &b->ehs, &host, dtype, err);
    free(ev);
    return rc;
}

static void bench_free(Bench *b) {
    unet_free(&b->u);
    graph_free(&b->g);
    arena_free(&b->weights), arena_free(&b->step), arena_free(&b->host), arena_free(&b->tmp);
    free(b->x), free(b->x_in), free(b->e);
}

// One UNet call on b->x_in (rows, h, w, 4) at timestep t -> b->eps (host f32).
static int unet_call(Bench *b, float t) {
    DiceError *err = &b->err;
    int64_t C = b->u.cfg.in_channels, rows = b->rows;
    arena_reset(&b->step);
    arena_reset(&b->host);
    graph_reset(&b->g);
    Tensor xh, xd, ts, ehs, out;
    DICE_TRY(tensor_wrap(&xh, b->x_in, DT_F32, DEV_CPU, 4, (int64_t[]){rows, b->h, b->w, C}, err));
    DICE_TRY(tensor_to(b->ctx, &b->step, &xd, &xh, b->dtype, err));
    DICE_TRY(tensor_wrap(&ts, &t, DT_F32, DEV_CPU, 1, (int64_t[]){1}, err));
    DICE_TRY(tensor_narrow(&ehs, &b->ehs, 0, 2 - rows, rows, err));
    Var *xv, *ev, *epsv;
    DICE_TRY(graph_leaf(&b->g, &xv, &xd, false, err));
    DICE_TRY(graph_leaf(&b->g, &ev, &ehs, false, err));
    DICE_TRY(unet_forward(&b->g, &b->u, xv, &ts, ev, &epsv, err));
    DICE_TRY(tensor_to(b->ctx, &b->host, &out, &epsv->value, DT_F32, err));
    b->eps = out.data;
    return 0;
}

static int one_step(void *user) {
    Bench *b = user;
    return unet_call(b, b->t);
}

// A whole sample: noise, b->steps DPM-Solver++ steps (CFG with guidance 7.5 when rows == 2).
static int sample(void *user) {
    Bench *b = user;
    DiceError *err = &b->err;
    SchedulerConfig sc;
    Scheduler s;
    int rc = scheduler_config_parse(&sc, SCHED_DPMSOLVER_MULTISTEP, sched_json, strlen(sched_json), "bench", err);
    if (!rc) rc = scheduler_init(&s, &sc, err);
    scheduler_config_free(&sc);
    DICE_TRY(rc);
    int C = (int)b->u.cfg.in_channels;
    size_t count = (size_t)b->h * b->w * C;
    rc = scheduler_set_timesteps(&s, b->steps, err);
    if (!rc) rc = pipeline_noise(42, b->h, b->w, C, b->x, err);
    for (size_t k = 0; k < count && !rc; k++) b->x[k] *= s.init_noise_sigma;
    for (int i = 0; i < s.num_steps && !rc; i++) {
        float t = s.timesteps[i];
        rc = scheduler_scale_model_input(&s, t, b->x, b->x_in, count, err);
        if (!rc && b->rows == 2) memcpy(b->x_in + count, b->x_in, count * sizeof *b->x_in);
        if (!rc) rc = unet_call(b, t);
        if (rc) break;
        for (size_t k = 0; k < count; k++)
            b->e[k] = b->rows == 2 ? b->eps[k] + 7.5f * (b->eps[count + k] - b->eps[k]) : b->eps[k];
        rc = scheduler_step(&s, t, b->e, b->x, b->x, count, err);
    }
    scheduler_free(&s);
    return rc;
}

// The check config's eps at batch 2 on ctx in dtype, copied into out (malloc'd).
static int small_eps(DiceCtx *ctx, DType dtype, float **out, size_t *n, DiceError *err) {
    Bench b;
    int rc = bench_init(&b, ctx, dtype, check_json, 32, 32, 1);
    b.rows = 2;
    if (!rc) rc = unet_call(&b, b.t);
    if (!rc) {
        *n = (size_t)2 * 32 * 32 * b.u.cfg.out_channels;
        *out = malloc(*n * sizeof **out);
        if (*out) memcpy(*out, b.eps, *n * sizeof **out);
        else rc = DICE_FAIL(&b.err, "out of host memory");
    }
    if (rc) *err = b.err;
    bench_free(&b);
    return rc;
}

static bool validate(DiceCtx *ctx) {
    DiceCtx cpu;
    ctx_init_cpu(&cpu);
    DiceError err;
    float *a = NULL, *c = NULL, *g = NULL;
    size_t n = 0;
    bool ok = !small_eps(&cpu, DT_F32, &a, &n, &err) && !small_eps(&cpu, DT_F32, &c, &n, &err);
    if (!ok) printf("validation failed: %s\n", err.msg);
    else if (memcmp(a, c, n * sizeof *a)) ok = false, printf("validation: two CPU f32 runs differ\n");
    else printf("validation: CPU f32 eps of two independent runs bitwise equal (check config, batch 2, 32x32)\n");
    if (ok && ctx->device != DEV_CPU) {
        ok = !small_eps(ctx, DT_BF16, &g, &n, &err);
        double e = ok ? bench_rel_err(g, a, n) : INFINITY;
        if (!ok) printf("validation failed: %s\n", err.msg);
        else printf("validation: GPU bf16 eps vs CPU f32 eps: relative error %.3g (limit 3e-2)\n", e);
        ok = ok && e <= 3e-2;
    }
    free(a), free(c), free(g);
    return ok;
}

// Used device memory in bytes (0 on the CPU).
static size_t device_used(DiceCtx *ctx) {
#ifdef DICE_CUDA
    size_t free_b = 0, total = 0;
    if (ctx->device == DEV_CUDA && cudaMemGetInfo(&free_b, &total) == cudaSuccess) return total - free_b;
#endif
    (void)ctx;
    return 0;
}

int main(int argc, char **argv) {
    const char *config = NULL;
    int batch = 0, steps = 20, height = 0, width = 0, iters = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--config") && v) config = v, i++;
        else if (!strcmp(argv[i], "--batch") && v) batch = atoi(v), i++;
        else if (!strcmp(argv[i], "--steps") && v) steps = atoi(v), i++;
        else if (!strcmp(argv[i], "--height") && v) height = atoi(v), i++;
        else if (!strcmp(argv[i], "--width") && v) width = atoi(v), i++;
        else if (!strcmp(argv[i], "--iters") && v) iters = atoi(v), i++;
        else {
            fprintf(stderr, "usage: %s [--config sd15|small] [--batch 1|2] [--steps N] [--height H --width W] "
                            "[--iters N]\n", argv[0]);
            return 2;
        }
    }
    DiceCtx ctx;
    bench_pick_context(&ctx, "unet");
    bool gpu = ctx.device != DEV_CPU;
    if (!config) config = gpu ? "sd15" : "small";
    if (strcmp(config, "sd15") && strcmp(config, "small")) return fprintf(stderr, "unknown --config %s\n", config), 2;
    if (!height) height = gpu ? 512 : 256;
    if (!width) width = height;
    if (!iters) iters = gpu ? 10 : 5;
    if ((batch && batch != 1 && batch != 2) || steps < 1 || height % 64 || width % 64 || height <= 0 || width <= 0)
        return fprintf(stderr, "--batch 1|2, --steps >= 1, sizes multiples of 64\n"), 2;
    if (!validate(&ctx)) return 1;
    DType dtype = gpu ? DT_BF16 : DT_F32;
    size_t used0 = device_used(&ctx);
    Bench b;
    if (bench_init(&b, &ctx, dtype, strcmp(config, "sd15") ? small_json : sd15_json, height / 8, width / 8, steps)) {
        printf("setup failed: %s\n", b.err.msg);
        return 1;
    }
    printf("config %s, %s, %dx%d (latents %dx%d), %d steps DPM-Solver++, median of %d\n", config,
           gpu ? "bf16" : "f32", height, width, height / 8, width / 8, steps, iters);
    printf("%-8s %-6s %12s %10s %14s %12s\n", "impl", "batch", "step ms", "step it/s", "sample ms", "sample it/s");
    for (int rows = 1; rows <= 2; rows++) {
        if (batch && rows != batch) continue;
        b.rows = rows;
        double ms = bench_median_ms(&ctx, one_step, &b, 2, iters);
        double ss = ms < 0 ? -1 : bench_median_ms(&ctx, sample, &b, 1, iters < 3 ? iters : 3);
        if (ms < 0 || ss < 0) {
            printf("run failed: %s\n", b.err.msg);
            bench_free(&b);
            return 1;
        }
        printf("%-8s %-6d %12.2f %10.2f %14.1f %12.2f\n", "dice", rows, ms, 1e3 / ms, ss, steps * 1e3 / ss);
        if (gpu)
            printf("  peak device memory %.0f MiB (cudaMemGetInfo since before the weights); arenas: weights %.0f "
                   "MiB, step %.0f MiB reserved\n", (device_used(&ctx) - used0) / 1048576.0,
                   b.weights.reserved / 1048576.0, b.step.reserved / 1048576.0);
    }
    bench_free(&b);
    ctx_free(&ctx);
    return 0;
}
