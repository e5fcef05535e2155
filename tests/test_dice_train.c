// tests/test_dice_train.c — DICE training (train/): the random inputs split over ranks and micro-batches as the
// whole batch draws them; the loss gradient w.r.t. the sharpener's parameters through the tiny UNet against
// finite differences in f64; a short run lowering the loss; `mpirun -np 2` against one rank; a run killed by
// SIGKILL and resumed giving the uninterrupted loss sequence bit for bit; clear one-line errors for corrupt,
// truncated and mismatched checkpoints and for a damaged shard.
//
// Models: tests/golden/unet/tiny with tests/golden/clip_encoder/quick (both d = 32) for the in-process gradient
// check; the tiny diffusers pipeline folder tests/golden/pipeline/model (same sizes) for runs of `dice train`.
// Data: HDF5 shards of 8x8x4 latents written here with data/shards.h.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <omp.h>
#include <unistd.h>

#include "data/shards.h"
#include "models/clip_tokenizer.h"
#include "models/sd_model.h"
#include "nn/safetensors.h"
#include "nn/tensor_copy.h"
#include "sample/scheduler_config.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/dice_step.h"
#include "train/trainer.h"

#define PIPELINE "tests/golden/pipeline/model"
#define ROWS_PER_SHARD 6
#define N_SHARDS 2
#define LAT 8                     // latent side
#define LAT_C 4

static const char *const captions[] = {"a photo of a cat", "a red cube on a table", "two dogs in the snow",
                                       "a blue car", "an old house", "a bowl of fruit"};

// ---------------------------------------------------------------- fixtures

// The pipeline folder and the dice program, in buffers of their own (test_path reuses one buffer).
static const char *pipeline(TestCtx *tc) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s", test_path(tc, PIPELINE));
    return dir;
}

static const char *dice_bin(TestCtx *tc) {
    static char bin[512];
    snprintf(bin, sizeof bin, "%s", test_dice_bin(tc));
    return bin;
}


// N_SHARDS shards of ROWS_PER_SHARD rows in `dir`: random latents, captions tokenized by the pipeline's tokenizer.
static int write_dataset(TestCtx *tc, const char *dir, DiceError *err) {
    ClipTokenizer tok;
    char tok_dir[600];
    snprintf(tok_dir, sizeof tok_dir, "%s/tokenizer", pipeline(tc));
    DICE_TRY(clip_tokenizer_load(&tok, tok_dir, err));
    DICE_CHECK(err, mkdir(dir, 0777) == 0, "mkdir %s failed", dir);
    ShardInfo info = {.latent_h = LAT, .latent_w = LAT, .latent_c = LAT_C, .seq_len = tok.max_length,
                      .image_size = 64, .scaling_factor = 0.18215};
    snprintf(info.model, sizeof info.model, "tiny-pipeline");
    snprintf(info.created_by, sizeof info.created_by, "tests/test_dice_train.c");
    enum { NL = LAT * LAT * LAT_C };
    float mean[NL], logvar[NL];
    int32_t ids[77];
    uint64_t rng = 1234;
    int rc = tok.max_length <= 77 ? 0 : DICE_FAIL(err, "tokenizer max_length %d", tok.max_length);
    for (int s = 0; s < N_SHARDS && !rc; s++) {
        char path[600];
        snprintf(path, sizeof path, "%s/shard_%05d.h5", dir, s);
        ShardWriter *w = NULL;
        rc = shard_writer_open(&w, path, &info, err);
        for (int r = 0; !rc && r < ROWS_PER_SHARD; r++) {
            for (int k = 0; k < NL; k++) {
                mean[k] = test_rand_uniform(&rng, -8.0f, 8.0f);
                logvar[k] = test_rand_uniform(&rng, -6.0f, -2.0f);
            }
            const char *caption = captions[(s * ROWS_PER_SHARD + r) % 6];
            rc = clip_tokenizer_encode(&tok, caption, ids, NULL, NULL, err);
            if (!rc) rc = shard_writer_append(w, &(ShardRowIn){mean, logvar, ids, caption, s * 100 + r}, err);
        }
        if (!rc) rc = shard_writer_close(w, err);
        else shard_writer_abort(w);
    }
    clip_tokenizer_free(&tok);
    return rc;
}

// One OpenMP thread for this test process and the programs it starts: the models are tiny, so threads only add
// synchronisation (measured 10x slower runs on a loaded 2-core machine). Runs compared bit for bit use the same
// thread count.
static void single_thread(void) {
    setenv("OMP_NUM_THREADS", "1", 1);
    omp_set_num_threads(1);
}

static void path_in(TestCtx *tc, char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", test_tmpdir(tc), name);
}

// The dataset of this test (written on first use into the test's scratch directory).
static const char *dataset(TestCtx *tc) {
    static char dir[512];
    const char *tmp = test_tmpdir(tc);
    if (strncmp(dir, tmp, strlen(tmp))) {
        single_thread();
        path_in(tc, dir, sizeof dir, "data");
        if (write_dataset(tc, dir, &tc->err)) dir[0] = 0;
    }
    return dir[0] ? dir : NULL;
}

// Runs `dice train` with the common arguments (tiny pipeline, the test's data, --out out, a small sharpener) and
// `extra` (NULL-terminated); under mpirun with `ranks` > 0. Returns the exit status; stderr in errout.
static int run_train(TestCtx *tc, const char *mpirun, int ranks, const char *out, const char *const *extra,
                     char *errout, size_t cap) {
    const char *argv[64];
    int n = 0;
    char np[16];
    if (ranks > 0) {
        // Open MPI leaves allocations of its unloaded plugins at exit, which LeakSanitizer (make SAN=1) reports
        // as leaks of "<unknown module>" that no suppression can name: leak checking is off under mpirun.
        const char *asan = getenv("ASAN_OPTIONS");
        char opts[512];
        snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", asan ? asan : "", asan && *asan ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
        snprintf(np, sizeof np, "%d", ranks);
        const char *pre[] = {mpirun, "--oversubscribe", "--allow-run-as-root", "-np", np};
        for (int i = 0; i < 5; i++) argv[n++] = pre[i];
    }
    const char *common[] = {dice_bin(tc), "train", "--model", pipeline(tc), "--data", dataset(tc),
                            "--out", out, "--hidden", "32", "--heads", "4"};
    for (int i = 0; i < 12; i++) argv[n++] = common[i];
    for (int i = 0; extra && extra[i] && n < 63; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    char so[4096];
    return test_run(tc, argv, so, sizeof so, errout, cap);
}

static char *read_file(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) n = 0;
    if (buf) buf[n] = 0;
    fclose(fp);
    return buf;
}

// loss.csv without its seconds column (the rest must match bit for bit between runs).
static char *csv_without_time(const char *out_dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/loss.csv", out_dir);
    char *text = read_file(path);
    if (!text) return NULL;
    char *w = text;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *last = memrchr(line, ',', len);
        size_t keep = last ? (size_t)(last - line) : len;
        memmove(w, line, keep);
        w += keep;
        *w++ = '\n';
        line += len + (end != NULL);
    }
    *w = 0;
    return text;
}

static bool one_line(const char *s) { return s[0] && strchr(s, '\n') == s + strlen(s) - 1; }

static const char *find_mpirun(char *buf, size_t cap) {
    const char *path = getenv("PATH");
    while (path && *path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        snprintf(buf, cap, "%.*s/mpirun", (int)len, path);
        if (access(buf, X_OK) == 0) return buf;
        path += len + (colon != NULL);
    }
    return NULL;
}

// ---------------------------------------------------------------- random inputs

// A micro-batch's draws are addressed by the sample's place in the global batch: preparing samples 0..5 at
// once or as 0..1, 2..4, 5..5 (other ranks / micro-batches) gives the same x_t, t and null indices; one t per
// batch unless t_per_sample.
DICE_TEST(dice_train_draws_do_not_depend_on_the_split) {
    ScheduleConfig cfg = schedule_config_defaults();
    NoiseSchedule sched;
    CHECK_OK(noise_schedule_init(&sched, &cfg, &tc->err));
    enum { B = 6, NL = 20 };
    float mean[B * NL], logvar[B * NL], whole[B * NL], parts[B * NL];
    uint64_t rng = tc->seed;
    for (int i = 0; i < B * NL; i++) {
        mean[i] = test_rand_uniform(&rng, -1, 1);
        logvar[i] = test_rand_uniform(&rng, -5, 0);
    }
    for (int per_sample = 0; per_sample < 2; per_sample++) {
        PhiloxStream normal = {tc->seed, 40}, uniform = {tc->seed, 7};
        DicePrepare p = {&sched, 0.18215, false, per_sample, 1000, B, 0, 0, 0};
        dice_reserve_step(&p, &normal, &uniform, NL);
        CHECK(normal.offset == 40 + B * 2 * NL && uniform.offset == 7 + 2 * B + 1);
        int32_t t_whole[B], t_parts[B], n_whole[B], n_parts[B];
        CHECK_OK(dice_prepare(&p, 0, B, NL, mean, logvar, whole, t_whole, n_whole, &tc->err));
        int64_t cuts[4] = {0, 2, 5, 6};
        for (int k = 0; k < 3; k++) {
            int64_t j = cuts[k], n = cuts[k + 1] - j;
            CHECK_OK(dice_prepare(&p, j, n, NL, mean + j * NL, logvar + j * NL, parts + j * NL, t_parts + j,
                                  n_parts + j, &tc->err));
        }
        CHECK(!memcmp(whole, parts, sizeof whole) && !memcmp(t_whole, t_parts, sizeof t_whole) &&
              !memcmp(n_whole, n_parts, sizeof n_whole));
        bool all_same = true, some_null_differs = false;
        for (int i = 0; i < B; i++) {
            CHECK(t_whole[i] >= 0 && t_whole[i] < 1000 && n_whole[i] >= 0 && n_whole[i] < 1000);
            all_same &= t_whole[i] == t_whole[0];
            some_null_differs |= n_whole[i] != n_whole[0];
        }
        CHECK(all_same == !per_sample && some_null_differs);
    }
    DicePrepare p = {&sched, 1.0, false, false, 1, B, tc->seed, 0, 0};
    CHECK_FAILS_WITH(dice_prepare(&p, 5, 2, NL, mean, logvar, whole, (int32_t[2]){0}, (int32_t[2]){0}, &tc->err),
                     "outside the global batch");
    noise_schedule_free(&sched);
}

// ---------------------------------------------------------------- gradient against finite differences

typedef struct GradFixture {
    DiceCtx ctx;
    Arena weights, step;
    Unet unet;
    ClipEncoder clip;
    Sharpener sh;
    Tensor null_embeds;          // (2, L, 32) in the sharpener's dtype
    Graph g;
} GradFixture;

enum { GN = 2, GL = 8, GD = 32 };

// The tiny UNet and CLIP on `device` in `dtype`, a small sharpener (fp32 master weights; converted to f64 when
// dtype is f64), two random null embeddings.
static int grad_fixture_init(TestCtx *tc, GradFixture *f, Device device, DType dtype, DiceError *err) {
    memset(f, 0, sizeof *f);
    if (device == DEV_CUDA) DICE_TRY(ctx_init_cuda(&f->ctx, 0, err));
    else ctx_init_cpu(&f->ctx);
    DICE_TRY(arena_init(&f->weights, "weights", device, 1 << 20, 0, err));
    DICE_TRY(arena_init(&f->step, "step", device, 8 << 20, 0, err));
    DICE_TRY(unet_load_dir(&f->unet, test_path(tc, "tests/golden/unet/tiny"), &f->ctx, &f->weights, dtype, err));
    DICE_TRY(clip_encoder_load_dir(&f->clip, test_path(tc, "tests/golden/clip_encoder/quick"), &f->ctx, &f->weights,
                                   dtype, err));
    DICE_TRY(sharpener_init(&f->sh, GD, 16, 2, &f->weights, &f->ctx, tc->seed, err));
    DType sd = dtype == DT_F64 ? DT_F64 : DT_F32;
    for (int i = 0; i < SHARPENER_N_PARAMS && sd == DT_F64; i++) {
        Param *p = &f->sh.params[i];
        Tensor value = p->value, grad = p->grad;
        DICE_TRY(tensor_to(&f->ctx, &f->weights, &p->value, &value, DT_F64, err));
        DICE_TRY(tensor_to(&f->ctx, &f->weights, &p->grad, &grad, DT_F64, err));
    }
    double host[2 * GL * GD];
    uint64_t rng = tc->seed ^ 77;
    for (int i = 0; i < 2 * GL * GD; i++) host[i] = test_rand_uniform(&rng, -1.5f, 1.5f);
    Tensor h;
    DICE_TRY(tensor_wrap(&h, host, DT_F64, DEV_CPU, 3, (int64_t[]){2, GL, GD}, err));
    DICE_TRY(tensor_to(&f->ctx, &f->weights, &f->null_embeds, &h, sd, err));
    return graph_init(&f->g, &f->ctx, &f->step, err);
}

static void grad_fixture_free(GradFixture *f) {
    graph_free(&f->g);
    clip_encoder_free(&f->clip);
    unet_free(&f->unet);
    arena_free(&f->step);
    arena_free(&f->weights);
    if (f->ctx.device == DEV_CUDA) ctx_free(&f->ctx);
}

// A fixed micro-batch of GN samples (x_t, ids, t, null indices) from the test's seed.
typedef struct GradBatch {
    float x_t[GN * LAT * LAT * LAT_C];
    int32_t ids[GN * GL], t[GN], null_index[GN];
} GradBatch;

static DiceMicroBatch grad_batch(TestCtx *tc, GradBatch *b) {
    uint64_t rng = tc->seed ^ 99;
    for (size_t i = 0; i < sizeof b->x_t / sizeof *b->x_t; i++) b->x_t[i] = test_rand_uniform(&rng, -1.5f, 1.5f);
    for (int i = 0; i < GN * GL; i++) b->ids[i] = (int32_t)(test_rand_u64(&rng) % 1000);
    b->t[0] = 37, b->t[1] = 611, b->null_index[0] = 1, b->null_index[1] = 0;
    return (DiceMicroBatch){GN, LAT, LAT, LAT_C, b->x_t, b->t, b->ids, GL, b->null_index};
}

static int loss_at(GradFixture *f, const DiceStepConfig *cfg, const DiceMicroBatch *mb, bool backward, double *loss,
                   DiceError *err) {
    DiceNets nets = {&f->unet, &f->clip, &f->sh, &f->null_embeds};
    graph_reset(&f->g);
    arena_reset(&f->step);
    *loss = 0;
    return dice_step(&f->g, &nets, cfg, mb, backward, loss, err);
}

// d loss / d theta for three entries of every sharpener parameter, analytic (backward through the frozen UNet)
// against central differences, both losses. f64 throughout. With h = 1e-4 the truncation error h^2 f''' / 6 and
// the rounding noise of the loss (~1e-14 absolute over ~10^4 summed terms) divided by h both stay near 1e-10:
// measured at most 4e-10 over several seeds, against gradients whose largest entry per parameter is 1e-3 to 1,
// so 2e-6 of that largest entry leaves a 10x margin. The L1 loss and the sharpener's ReLUs are only piecewise
// smooth: a pre-activation within h of zero (seen about once in 20 runs for fc1, whose entries reach every
// token) breaks the h = 1e-4 quotient, so such an entry is checked again at h = 1e-5, where the rounding noise
// is 10x larger (measured up to 6e-9: tolerance 1e-5 of the largest entry) and a kink 10x less likely.
DICE_TEST(dice_train_gradient_matches_finite_differences_f64) {
    single_thread();
    GradFixture f;
    CHECK_OK(grad_fixture_init(tc, &f, DEV_CPU, DT_F64, &tc->err));
    GradBatch batch;
    DiceMicroBatch mb = grad_batch(tc, &batch);
    uint64_t rng = tc->seed ^ 5;
    for (int loss_kind = 0; loss_kind < 2; loss_kind++) {
        DiceStepConfig cfg = {5.0, 1.0, loss_kind ? DICE_LOSS_L2 : DICE_LOSS_L1, 3, NULL};
        double loss;
        for (int i = 0; i < SHARPENER_N_PARAMS; i++) CHECK_OK(param_zero_grad(&f.ctx, &f.sh.params[i], &tc->err));
        CHECK_OK(loss_at(&f, &cfg, &mb, true, &loss, &tc->err));
        CHECK(loss > 0);
        for (int i = 0; i < SHARPENER_N_PARAMS; i++) {
            Param *p = &f.sh.params[i];
            double *v = p->value.data, *gr = p->grad.data, gmax = 0;
            int64_t n = tensor_numel(&p->value);
            for (int64_t k = 0; k < n; k++) gmax = fmax(gmax, fabs(gr[k]));
            CHECK_MSG(gmax > 0, "%s: zero gradient", p->name);
            for (int s = 0; s < 3; s++) {
                int64_t k = (int64_t)(test_rand_u64(&rng) % (uint64_t)n);
                double keep = v[k], fd[2], steps[2] = {1e-4, 1e-5}, tol[2] = {2e-6 * gmax, 1e-5 * gmax};
                for (int j = 0; j < 2; j++) {
                    double plus, minus;
                    v[k] = keep + steps[j];
                    CHECK_OK(loss_at(&f, &cfg, &mb, false, &plus, &tc->err));
                    v[k] = keep - steps[j];
                    CHECK_OK(loss_at(&f, &cfg, &mb, false, &minus, &tc->err));
                    v[k] = keep;
                    fd[j] = (plus - minus) / (2 * steps[j]);
                    if (fabs(fd[j] - gr[k]) <= tol[j]) break;
                }
                CHECK_MSG(fabs(fd[0] - gr[k]) <= tol[0] || fabs(fd[1] - gr[k]) <= tol[1],
                          "%s loss, %s[%lld]: backward %.12g, finite differences %.12g (h 1e-4), %.12g (h 1e-5); "
                          "largest gradient entry %.3g", loss_kind ? "L2" : "L1", p->name, (long long)k, gr[k], fd[0],
                          fd[1], gmax);
            }
        }
    }
    grad_fixture_free(&f);
}

// out += weight * the f64 gradients of all the sharpener's parameters, as one vector.
static void add_grads(GradFixture *f, double *out, double weight) {
    size_t at = 0;
    for (int k = 0; k < SHARPENER_N_PARAMS; k++) {
        const double *gr = f->sh.params[k].grad.data;
        for (int64_t e = 0; e < tensor_numel(&f->sh.params[k].grad); e++) out[at++] += weight * gr[e];
    }
}

// DiceStepConfig.noise_space: the loss of a micro-batch is each sample's raw-output loss weighted by f(t)
// (L1) or f(t)^2 (squared L2), f = sqrt(abar) for v_prediction, sqrt(abar / (1 - abar)) for sample, 1 for
// epsilon; the gradient is the same weighted sum. Each sample is also run alone with the raw loss, in f64.
DICE_TEST(dice_train_noise_space_loss_weights_each_sample) {
    single_thread();
    GradFixture f;
    CHECK_OK(grad_fixture_init(tc, &f, DEV_CPU, DT_F64, &tc->err));
    GradBatch batch;
    DiceMicroBatch mb = grad_batch(tc, &batch);
    enum { T = 1000 };
    float abar[T];
    for (int t = 0; t < T; t++) {  // a cosine-like schedule: abar from ~1 down to ~0
        double c = cos(0.5 * M_PI * (t + 0.5) / T);
        abar[t] = (float)(0.9999 * c * c);
    }
    const PredictionType types[3] = {PRED_EPSILON, PRED_V_PREDICTION, PRED_SAMPLE};
    size_t total = (size_t)sharpener_num_params(&f.sh);
    double *want = malloc(total * sizeof *want), *got = malloc(total * sizeof *got);
    CHECK(want && got);
    for (int ti = 0; ti < 3; ti++)
        for (int loss_kind = 0; loss_kind < 2; loss_kind++) {
            NoiseSchedule sched = {T, types[ti], NULL, abar};
            DiceStepConfig noise = {5.0, 1.0, loss_kind ? DICE_LOSS_L2 : DICE_LOSS_L1, 3, &sched};
            DiceStepConfig raw = noise;
            raw.noise_space = NULL;
            double loss, expect = 0;
            memset(want, 0, total * sizeof *want);
            for (int64_t i = 0; i < GN; i++) {
                DiceMicroBatch one = {1, LAT, LAT, LAT_C, batch.x_t + i * LAT * LAT * LAT_C, batch.t + i,
                                      batch.ids + i * GL, GL, batch.null_index + i};
                double a = abar[batch.t[i]];
                double fac = types[ti] == PRED_V_PREDICTION ? sqrt(a)
                             : types[ti] == PRED_SAMPLE     ? sqrt(a / (1 - a))
                                                            : 1;
                double wgt = loss_kind ? fac * fac : fac;
                for (int k = 0; k < SHARPENER_N_PARAMS; k++)
                    CHECK_OK(param_zero_grad(&f.ctx, &f.sh.params[k], &tc->err));
                CHECK_OK(loss_at(&f, &raw, &one, true, &loss, &tc->err));
                expect += wgt * loss;
                add_grads(&f, want, wgt);
            }
            for (int k = 0; k < SHARPENER_N_PARAMS; k++) CHECK_OK(param_zero_grad(&f.ctx, &f.sh.params[k], &tc->err));
            CHECK_OK(loss_at(&f, &noise, &mb, true, &loss, &tc->err));
            memset(got, 0, total * sizeof *got);
            add_grads(&f, got, 1);
            double num = 0, den = 0;
            for (size_t e = 0; e < total; e++) num += (got[e] - want[e]) * (got[e] - want[e]), den += want[e] * want[e];
            // f64 throughout: the batched and the one-sample UNet differ only in summation order.
            CHECK_MSG(fabs(loss - expect) <= 1e-10 * expect, "type %d %s: loss %.15g, weighted per-sample %.15g", ti,
                      loss_kind ? "L2" : "L1", loss, expect);
            CHECK_MSG(den > 0 && sqrt(num / den) <= 1e-9, "type %d %s: gradient relative error %.3g", ti,
                      loss_kind ? "L2" : "L1", sqrt(num / den));
        }
    free(want);
    free(got);
    grad_fixture_free(&f);
}

// The host copy of a device tensor as f32.
static int to_host_f32(GradFixture *f, const Tensor *t, float *out, DiceError *err) {
    Tensor h;
    DICE_TRY(tensor_wrap(&h, out, DT_F32, DEV_CPU, t->ndim, t->shape, err));
    return tensor_copy(&f->ctx, &h, t, err);
}

// One micro-batch on CUDA (bf16 UNet and CLIP, fp32 sharpener, op_cast between) against the same step on the CPU
// in f32: the loss and the gradient of all the sharpener's parameters (one vector), on the raw outputs and on
// the noise of a v_prediction schedule (DiceStepConfig.noise_space). bf16 rounds every activation
// to 2^-9 relative through the UNet, and the teacher's e_u + 5 (e_c - e_u) multiplies that rounding by 5 in the
// target. The loss moves little (measured up to 2% over 30 seeds: bound 4%). The L1 gradient is a sum of
// sign(pred - target) terms, and the bf16 target flips the sign wherever |pred - target| is within its rounding:
// measured up to 14% (bound 30%); the squared L2 gradient has no flips: up to 3.5% (bound 10%). Wrong plumbing
// (a lost cast gradient, a wrong null embedding, a dropped teacher half) gives errors of order 1.
DICE_CUDA_TEST(dice_train_step_cuda_bf16_matches_cpu_f32) {
    single_thread();
    GradFixture cpu, gpu;
    CHECK_OK(grad_fixture_init(tc, &cpu, DEV_CPU, DT_F32, &tc->err));
    CHECK_OK(grad_fixture_init(tc, &gpu, DEV_CUDA, DT_BF16, &tc->err));
    GradBatch batch;
    DiceMicroBatch mb = grad_batch(tc, &batch);
    enum { T = 1000 };
    float abar[T];  // a v_prediction schedule for the noise-space loss (the factors go to the device too)
    for (int t = 0; t < T; t++) abar[t] = (float)(1.0 - (t + 1.0) / (T + 1.0));
    NoiseSchedule vsched = {T, PRED_V_PREDICTION, NULL, abar};
    for (int variant = 0; variant < 4; variant++) {
        int loss_kind = variant % 2;
        DiceStepConfig cfg = {5.0, 1.0, loss_kind ? DICE_LOSS_L2 : DICE_LOSS_L1, 3, variant >= 2 ? &vsched : NULL};
        double want, got;
        for (int i = 0; i < SHARPENER_N_PARAMS; i++) {
            CHECK_OK(param_zero_grad(&cpu.ctx, &cpu.sh.params[i], &tc->err));
            CHECK_OK(param_zero_grad(&gpu.ctx, &gpu.sh.params[i], &tc->err));
        }
        CHECK_OK(loss_at(&cpu, &cfg, &mb, true, &want, &tc->err));
        CHECK_OK(loss_at(&gpu, &cfg, &mb, true, &got, &tc->err));
        CHECK_MSG(fabs(got - want) <= 4e-2 * want, "%s loss: cuda bf16 %.6g, cpu f32 %.6g", loss_kind ? "L2" : "L1",
                  got, want);
        size_t total = (size_t)sharpener_num_params(&cpu.sh), at = 0;
        float *a = malloc(total * sizeof *a), *b = malloc(total * sizeof *b);
        CHECK(a && b);
        for (int i = 0; i < SHARPENER_N_PARAMS; i++) {
            CHECK_OK(to_host_f32(&cpu, &cpu.sh.params[i].grad, a + at, &tc->err));
            CHECK_OK(to_host_f32(&gpu, &gpu.sh.params[i].grad, b + at, &tc->err));
            at += (size_t)tensor_numel(&cpu.sh.params[i].grad);
        }
        double e = test_rel_err_f32(b, a, total);
        free(a);
        free(b);
        CHECK_MSG(e <= (loss_kind ? 0.1 : 0.3), "%s loss: relative error of the parameter gradient %.3g",
                  loss_kind ? "L2" : "L1", e);
    }
    grad_fixture_free(&gpu);
    grad_fixture_free(&cpu);
}

// ---------------------------------------------------------------- training runs

// The loss of the pipeline's model on a fixed batch (rows 0..3 of the data, fixed t and noise) with the
// sharpener s.
static int fixed_batch_loss(TestCtx *tc, SdModel *m, Sharpener *s, double alpha, double *loss, DiceError *err) {
    ShardDataset ds;
    DICE_TRY(dataset_open(&ds, dataset(tc), err));
    enum { N = 4, NL = LAT * LAT * LAT_C };
    int64_t rows[N] = {0, 3, 7, 10};
    float mean[N * NL], logvar[N * NL], x_t[N * NL];
    int32_t ids[N * 77], timesteps[N], null_index[N];
    int rc = dataset_read(&ds, rows, N, &(ShardRows){mean, logvar, ids, NULL}, err);
    ScheduleConfig scfg = {0};
    NoiseSchedule sched = {0};
    if (!rc) rc = schedule_config_load(&scfg, m->scheduler_config, err);
    if (!rc) rc = noise_schedule_init(&sched, &scfg, err);
    DicePrepare p = {&sched, ds.info.scaling_factor, false, true, 1, N, 0, 0, 0};
    PhiloxStream normal = {5, 0}, uniform = {5, 0};
    dice_reserve_step(&p, &normal, &uniform, NL);
    if (!rc) rc = dice_prepare(&p, 0, N, NL, mean, logvar, x_t, timesteps, null_index, err);
    Arena step;
    Tensor null_embeds;
    Graph g;
    if (!rc) rc = arena_init(&step, "step", DEV_CPU, 8 << 20, 0, err);
    if (!rc) rc = arena_tensor(&step, &null_embeds, DT_F32, 3, (int64_t[]){1, ds.info.seq_len, 32}, err);
    const char *empty = "";
    if (!rc) rc = clip_encode_prompts(m->ctx, &step, &m->text, &m->tok, &empty, 1, CLIP_LAST_HIDDEN_STATE,
                                      &null_embeds, NULL, err);
    if (!rc) rc = graph_init(&g, m->ctx, &step, err);
    DiceNets nets = {&m->unet, &m->text, s, &null_embeds};
    DiceStepConfig cfg = {5.0, alpha, DICE_LOSS_L1, N, NULL};
    DiceMicroBatch mb = {N, LAT, LAT, LAT_C, x_t, timesteps, ids, ds.info.seq_len, null_index};
    *loss = 0;
    if (!rc) rc = dice_step(&g, &nets, &cfg, &mb, false, loss, err);
    graph_free(&g);
    arena_free(&step);
    noise_schedule_free(&sched);
    schedule_config_free(&scfg);
    dataset_close(&ds);
    return rc;
}

// 40 steps at lr 3e-3 (15x the paper's, for a short run) on the tiny pipeline, in process. On a fixed batch the
// trained sharpener's loss falls clearly below both the initial sharpener's and the unguided one (alpha 0: the
// plain text embedding against the CFG teacher): measured 29.1 and 28.9 -> 23.2, about where longer runs level
// off (22-23); the logged training loss falls too (first vs last 10 steps: 28.9 -> 24.3).
DICE_TEST(dice_train_short_run_lowers_the_loss) {
    CHECK_MSG(dataset(tc), "writing the dataset: %s", tc->err.msg);
    char out[512];
    path_in(tc, out, sizeof out, "short");
    TrainOptions o = train_options_defaults();
    o.model_dir = pipeline(tc);
    o.data_dir = dataset(tc);
    o.out_dir = out;
    o.steps = 40;
    o.global_batch = 4;
    o.micro_batch = 2;
    o.lr = 3e-3;
    o.hidden = 32;
    o.heads = 4;
    o.seed = 11;
    o.quiet = true;
    Dist one = {.n_ranks = 1};
    CHECK_OK(dice_train(&o, &one, &tc->err));
    double losses[40];
    CHECK(test_read_losses(out, losses, 40) == 40);
    double first = 0, last = 0;
    for (int i = 0; i < 10; i++) first += losses[i], last += losses[30 + i];
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    SdModel m;
    CHECK_OK(sd_model_open(&m, pipeline(tc), NULL, &ctx, SD_LOAD_TOKENIZER | SD_LOAD_TEXT | SD_LOAD_UNET, &tc->err));
    Arena a;
    CHECK_OK(arena_init(&a, "sharpeners", DEV_CPU, 1 << 20, 0, &tc->err));
    Sharpener initial, trained;
    char path[600];
    snprintf(path, sizeof path, "%s/sharpener.safetensors", out);
    CHECK_OK(sharpener_init(&initial, 32, 32, 4, &a, &ctx, 11, &tc->err));
    CHECK_OK(sharpener_load(&trained, path, &a, &ctx, &tc->err));
    double before, after, unguided;
    CHECK_OK(fixed_batch_loss(tc, &m, &initial, 1.0, &before, &tc->err));
    CHECK_OK(fixed_batch_loss(tc, &m, &trained, 1.0, &after, &tc->err));
    CHECK_OK(fixed_batch_loss(tc, &m, &initial, 0.0, &unguided, &tc->err));
    CHECK_MSG(after < 0.85 * fmin(before, unguided) && last < 0.9 * first,
              "fixed-batch loss: initial sharpener %.6g, unguided (alpha 0) %.6g, trained %.6g; logged loss, first 10 "
              "steps %.6g, last 10 %.6g", before, unguided, after, first / 10, last / 10);
    arena_free(&a);
    sd_model_close(&m);
}

// A run's options on the tiny pipeline and the test's data: 3 steps of 2 samples in micro-batches of 1.
static TrainOptions small_run(TestCtx *tc, const char *out) {
    TrainOptions o = train_options_defaults();
    o.model_dir = pipeline(tc);
    o.data_dir = dataset(tc);
    o.out_dir = out;
    o.steps = 3;
    o.global_batch = 2;
    o.micro_batch = 1;
    o.lr = 1e-3;
    o.hidden = 32;
    o.heads = 4;
    o.quiet = true;
    return o;
}

// Recomputing the UNet's blocks in backward (--checkpoint-blocks) trains exactly as storing them: the same loss
// CSV bit for bit.
DICE_TEST(dice_train_recomputed_blocks_train_identically) {
    CHECK_MSG(dataset(tc), "writing the dataset: %s", tc->err.msg);
    char plain[512], recomputed[512];
    path_in(tc, plain, sizeof plain, "plain");
    path_in(tc, recomputed, sizeof recomputed, "recomputed");
    Dist one = {.n_ranks = 1};
    TrainOptions o = small_run(tc, plain);
    CHECK_OK(dice_train(&o, &one, &tc->err));
    o = small_run(tc, recomputed);
    o.checkpoint_blocks = true;
    CHECK_OK(dice_train(&o, &one, &tc->err));
    char *a = csv_without_time(plain), *b = csv_without_time(recomputed);
    CHECK(a && b);
    CHECK_MSG(!strcmp(a, b), "losses differ:\n%s\nwith recomputation:\n%s", a, b);
    free(a);
    free(b);
}

// The whole trainer on CUDA (bf16 frozen nets, fp32 sharpener and AdamW, recomputed blocks, checkpoints through
// host copies): the losses follow the CPU run's within bf16's reach (see the step test above; measured 1-2%).
DICE_CUDA_TEST(dice_train_runs_on_cuda) {
    CHECK_MSG(dataset(tc), "writing the dataset: %s", tc->err.msg);
    char on_cpu[512], on_cuda[512];
    path_in(tc, on_cpu, sizeof on_cpu, "cpu");
    path_in(tc, on_cuda, sizeof on_cuda, "cuda");
    Dist one = {.n_ranks = 1};
    TrainOptions o = small_run(tc, on_cpu);
    CHECK_OK(dice_train(&o, &one, &tc->err));
    o = small_run(tc, on_cuda);
    o.device = DEV_CUDA;
    o.checkpoint_blocks = true;
    CHECK_OK(dice_train(&o, &one, &tc->err));
    double want[3], got[3];
    CHECK(test_read_losses(on_cpu, want, 3) == 3 && test_read_losses(on_cuda, got, 3) == 3);
    for (int i = 0; i < 3; i++) CHECK_NEAR(got[i], want[i], 5e-2 * want[i]);
}

// The same global batch of 4 on 2 ranks x 2 (mpirun) and on 1 rank x 4, 5 steps, L2 loss, per-sample t: the
// sharpeners agree up to the rounding of the gradient sums (each rank sums its half, MPI adds the halves).
DICE_TEST(dice_train_two_ranks_match_one_rank) {
    char mpirun[512];
    if (!find_mpirun(mpirun, sizeof mpirun)) SKIP("mpirun is not installed (apt-get install openmpi-bin)");
    CHECK_MSG(dataset(tc), "writing the dataset: %s", tc->err.msg);
    char one[512], two[512], err[8192];
    path_in(tc, one, sizeof one, "one_rank");
    path_in(tc, two, sizeof two, "two_ranks");
    const char *args1[] = {"--steps", "5", "--batch", "4", "--micro-batch", "4", "--loss", "l2", "--t-per-sample",
                           "--lr", "1e-3", "--check-every", "2", "--quiet", NULL};
    const char *args2[] = {"--steps", "5", "--batch", "4", "--micro-batch", "2", "--loss", "l2", "--t-per-sample",
                           "--lr", "1e-3", "--check-every", "2", NULL};
    CHECK_MSG(run_train(tc, NULL, 0, one, args1, err, sizeof err) == 0, "1 rank: %s", err);
    CHECK_MSG(run_train(tc, mpirun, 2, two, args2, err, sizeof err) == 0, "mpirun -np 2: %s", err);
    CHECK_MSG(strstr(err, "dice train: 2 ranks on cpu, global batch 4 (2 on rank 0"), "mpirun -np 2: %s", err);
    char p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s/sharpener.safetensors", one);
    snprintf(p2, sizeof p2, "%s/sharpener.safetensors", two);
    StFile a, b;
    CHECK_OK(st_open(&a, p1, &tc->err));
    CHECK_OK(st_open(&b, p2, &tc->err));
    CHECK(a.n_tensors == SHARPENER_N_PARAMS && b.n_tensors == SHARPENER_N_PARAMS);
    double worst = 0;
    for (int i = 0; i < a.n_tensors; i++) {
        const StTensorInfo *ta = &a.tensors[i], *tb = st_find(&b, ta->name);
        CHECK(tb && st_numel(ta) == st_numel(tb));
        int64_t n = st_numel(ta);
        float *va = malloc((size_t)n * 4), *vb = malloc((size_t)n * 4);
        memcpy(va, ta->data, (size_t)n * 4);
        memcpy(vb, tb->data, (size_t)n * 4);
        worst = fmax(worst, test_rel_err_f32(vb, va, (size_t)n));
        free(va);
        free(vb);
    }
    // 5 Adam steps of lr 1e-3 move each weight by up to 5e-3; gradient sums that differ in the last bits
    // (relative 1e-7) move the updates by about that relative amount, compounded over the steps: measured 8e-7.
    CHECK_MSG(worst <= 1e-5, "relative difference of the sharpeners %.3g", worst);
    double l1[5], l2[5];
    CHECK(test_read_losses(one, l1, 5) == 5 && test_read_losses(two, l2, 5) == 5);
    for (int i = 0; i < 5; i++) CHECK_NEAR(l2[i], l1[i], 1e-5 * fabs(l1[i]));
    st_close(&a);
    st_close(&b);
}

// A run killed (SIGKILL, after step 5, with its last checkpoint at step 3) and resumed writes the loss CSV and
// the sharpener of an uninterrupted run bit for bit; with negative prompts, per-sample t and micro-batches.
DICE_TEST(dice_train_resume_after_kill_is_bit_exact) {
    CHECK_MSG(dataset(tc), "writing the dataset: %s", tc->err.msg);
    char whole[512], killed[512], negatives[512], err[8192];
    path_in(tc, whole, sizeof whole, "whole");
    path_in(tc, killed, sizeof killed, "killed");
    path_in(tc, negatives, sizeof negatives, "negatives.txt");
    FILE *fp = fopen(negatives, "w");
    CHECK(fp);
    fputs("blurry\nlow quality, jpeg artifacts\n\na dark photo\n", fp);
    fclose(fp);
    const char *args[] = {"--steps", "8", "--batch", "5", "--micro-batch", "2", "--save-every", "3",
                          "--t-per-sample", "--negative-prompts", negatives, "--lr", "1e-3", "--seed", "3", "--quiet",
                          NULL, NULL, NULL};
    CHECK_MSG(run_train(tc, NULL, 0, whole, args, err, sizeof err) == 0, "uninterrupted: %s", err);
    args[16] = "--stop-after";
    args[17] = "5";
    CHECK_MSG(run_train(tc, NULL, 0, killed, args, err, sizeof err) == 128 + SIGKILL, "killed run: %s", err);
    double part[8];
    CHECK(test_read_losses(killed, part, 8) == 5);  // steps 4 and 5 logged after the checkpoint of step 3
    args[16] = "--resume";
    args[17] = NULL;
    CHECK_MSG(run_train(tc, NULL, 0, killed, args, err, sizeof err) == 0, "resumed: %s", err);
    char *a = csv_without_time(whole), *b = csv_without_time(killed);
    CHECK(a && b);
    CHECK_MSG(!strcmp(a, b), "loss CSVs differ:\n%s\nresumed:\n%s", a, b);
    free(a);
    free(b);
    char p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s/sharpener.safetensors", whole);
    snprintf(p2, sizeof p2, "%s/sharpener.safetensors", killed);
    char *s1 = read_file(p1), *s2 = read_file(p2);
    struct stat st1, st2;
    CHECK(s1 && s2 && stat(p1, &st1) == 0 && stat(p2, &st2) == 0 && st1.st_size == st2.st_size);
    CHECK(!memcmp(s1, s2, (size_t)st1.st_size));
    free(s1);
    free(s2);
}

static int copy_file(const char *from, const char *to, long keep) {
    char *buf = NULL;
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    int rc = in && out ? 0 : -1;
    long n = 0;
    if (!rc) {
        fseek(in, 0, SEEK_END);
        n = ftell(in);
        fseek(in, 0, SEEK_SET);
        if (keep >= 0 && keep < n) n = keep;
        buf = malloc((size_t)n + 1);
        rc = buf && fread(buf, 1, (size_t)n, in) == (size_t)n && fwrite(buf, 1, (size_t)n, out) == (size_t)n ? 0 : -1;
    }
    free(buf);
    if (in) fclose(in);
    if (out && fclose(out)) rc = -1;
    return rc;
}

// Corrupt, truncated and mismatched checkpoints, an existing checkpoint without --resume, and a truncated shard:
// each is one line on stderr naming the problem, and a non-zero exit.
DICE_TEST(dice_train_bad_checkpoints_and_shards_are_clear_errors) {
    CHECK_MSG(dataset(tc), "writing the dataset: %s", tc->err.msg);
    char out[512], ckpt[600], good[600], err[8192];
    path_in(tc, out, sizeof out, "run");
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    snprintf(good, sizeof good, "%s/good.safetensors", out);
    const char *args[] = {"--steps", "2", "--batch", "2", "--quiet", NULL, NULL, NULL, NULL};
    CHECK_MSG(run_train(tc, NULL, 0, out, args, err, sizeof err) == 0, "first run: %s", err);
    CHECK(copy_file(ckpt, good, -1) == 0);

    CHECK(run_train(tc, NULL, 0, out, args, err, sizeof err) == 1);
    CHECK_MSG(one_line(err) && strstr(err, "pass --resume"), "no --resume: %s", err);

    args[5] = "--resume";
    args[6] = "--lr";
    args[7] = "1e-3";
    CHECK(run_train(tc, NULL, 0, out, args, err, sizeof err) == 1);
    CHECK_MSG(one_line(err) && strstr(err, "written with lr = 0.0002"), "other lr: %s", err);
    args[6] = NULL;

    StFile f;
    CHECK_OK(st_open(&f, good, &tc->err));
    long data_at = (long)(f.data - (const uint8_t *)f.map);
    st_close(&f);
    CHECK(copy_file(good, ckpt, -1) == 0);
    FILE *fp = fopen(ckpt, "r+b");
    CHECK(fp && fseek(fp, data_at + 100, SEEK_SET) == 0);
    int c = fgetc(fp);
    CHECK(fseek(fp, data_at + 100, SEEK_SET) == 0 && fputc(c ^ 0x20, fp) != EOF && fclose(fp) == 0);
    CHECK(run_train(tc, NULL, 0, out, args, err, sizeof err) == 1);
    CHECK_MSG(one_line(err) && strstr(err, "checksum mismatch") && strstr(err, ckpt), "flipped byte: %s", err);

    struct stat st;
    CHECK(stat(good, &st) == 0);
    CHECK(copy_file(good, ckpt, st.st_size - 64) == 0);
    CHECK(run_train(tc, NULL, 0, out, args, err, sizeof err) == 1);
    CHECK_MSG(one_line(err) && strstr(err, "checkpoint") && strstr(err, ckpt), "truncated: %s", err);

    CHECK(copy_file(good, ckpt, -1) == 0);
    CHECK_MSG(run_train(tc, NULL, 0, out, args, err, sizeof err) == 0, "intact checkpoint: %s", err);

    char data[512], shard[600], cut[600];
    path_in(tc, data, sizeof data, "damaged");
    CHECK(mkdir(data, 0777) == 0);
    for (int s = 0; s < N_SHARDS; s++) {
        snprintf(shard, sizeof shard, "%s/shard_%05d.h5", dataset(tc), s);
        snprintf(cut, sizeof cut, "%s/shard_%05d.h5", data, s);
        CHECK(stat(shard, &st) == 0 && copy_file(shard, cut, s == 1 ? st.st_size * 2 / 3 : -1) == 0);
    }
    char fresh[512];
    path_in(tc, fresh, sizeof fresh, "damaged_run");
    const char *argv[] = {dice_bin(tc), "train", "--model", pipeline(tc), "--data", data, "--out",
                          fresh, "--quiet", NULL};
    char so[1024];
    CHECK(test_run(tc, argv, so, sizeof so, err, sizeof err) == 1);
    CHECK_MSG(one_line(err) && strstr(err, "shard_00001.h5"), "truncated shard: %s", err);
}
