// train/trainer.c — the DICE training run (see trainer.h): set-up, the step loop, logging, checkpoints, resume.
#include "trainer.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/loader.h"
#include "data/shards.h"
#include "models/sd_model.h"
#include "nn/adamw.h"
#include "nn/tensor_copy.h"
#include "sample/scheduler_config.h"
#include "train/checkpoint.h"
#include "train/train_outputs.h"

#define STREAM_KEY_MIX 0x9E3779B97F4A7C15ull

TrainOptions train_options_defaults(void) {
    TrainOptions o;
    memset(&o, 0, sizeof o);
    o.steps = 8000;
    o.global_batch = 128;
    o.micro_batch = 16;
    o.lr = 2e-4;
    o.guidance = 5.0;
    o.alpha = 1.0;
    o.loss = DICE_LOSS_L1;
    o.save_every = 500;
    o.check_every = 100;
    o.val_every = 500;
    o.val_steps = 20;
    o.device = DEV_CPU;
    o.hidden = 512;
    o.heads = 8;
    return o;
}

typedef struct Trainer {
    const TrainOptions *o;
    Dist *dist;
    DiceCtx ctx;
    SdModel model;
    ScheduleConfig schedule_cfg;
    NoiseSchedule schedule;
    ShardDataset ds;
    Loader loader;
    Arena persistent, step, scratch;
    Sharpener sh;
    Param *params[SHARPENER_N_PARAMS];
    AdamW opt;
    Graph g;
    Tensor null_embeds;           // (K, L, d_e) f32 on the device
    int n_null;
    TrainSettings settings;
    TrainState st;
    int64_t rank_rows, j0, n_latent, seq_len;
    int64_t *rows;                // (rank_rows)
    float *mean, *logvar, *x_t;   // (rank_rows, n_latent) and (micro, n_latent)
    int32_t *ids, *timesteps, *null_index;
    char **val_prompts;           // (n_val) rank 0 with val_every > 0, else NULL
    int n_val;
    FILE *csv;
    char ckpt_path[4096], csv_path[4096], plot_path[4096];
} Trainer;

static bool is_file(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t fnv1a64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static int check_options(const TrainOptions *o, const Dist *d, DiceError *err) {
    DICE_CHECK(err, o->model_dir && o->data_dir && o->out_dir, "dice train needs --model, --data and --out");
    DICE_CHECK(err, o->steps >= 1 && o->micro_batch >= 1 && o->save_every >= 0 && o->check_every >= 1 &&
               o->val_every >= 0 && o->val_steps >= 1,
               "--steps, --micro-batch, --check-every and --val-steps must be >= 1, --save-every and --val-every >= 0");
    DICE_CHECK(err, o->global_batch >= d->n_ranks,
               "--batch %lld is the global batch; it must be at least the number of ranks (%d)",
               (long long)o->global_batch, d->n_ranks);
    DICE_CHECK(err, o->lr > 0 && o->guidance >= 1 && o->hidden > 0 && o->heads > 0 && o->hidden % o->heads == 0,
               "--lr must be > 0, --guidance >= 1, --hidden a positive multiple of --heads");
    return 0;
}

// Prompts of a file, one a line (empty lines skipped), as a malloc'd array of malloc'd strings; errors name `flag`.
static int read_prompts(const char *flag, const char *path, char ***out, int *n, uint64_t *hash, DiceError *err) {
    FILE *fp = fopen(path, "rb");
    DICE_CHECK(err, fp, "%s %s: %s", flag, path, strerror(errno));
    char **list = NULL;
    int count = 0, cap = 0, rc = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    *hash = 0xcbf29ce484222325ull;
    while (!rc && (len = getline(&line, &line_cap, fp)) >= 0) {
        *hash = fnv1a64(*hash, line, (size_t)len);
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!len) continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(list, (size_t)cap * sizeof *grown);
            if (!grown) {
                rc = DICE_FAIL(err, "%s: out of memory", flag);
                break;
            }
            list = grown;
        }
        list[count] = strdup(line);
        if (!list[count]) rc = DICE_FAIL(err, "%s: out of memory", flag);
        else count++;
    }
    if (!rc && ferror(fp)) rc = DICE_FAIL(err, "%s %s: read error", flag, path);
    if (!rc && !count) rc = DICE_FAIL(err, "%s %s: no prompts (one a line)", flag, path);
    free(line);
    fclose(fp);
    if (rc) {
        for (int i = 0; i < count; i++) free(list[i]);
        free(list);
        return -1;
    }
    *out = list;
    *n = count;
    return 0;
}

// c_null = encode("") (K = 1) or the negative prompts' embeddings, (K, L, d_e) f32 on the device.
static int make_null_embeds(Trainer *t, TrainSettings *s, DiceError *err) {
    char **prompts = NULL, *empty[1] = {""};
    int n = 1;
    uint64_t hash = 0;
    if (t->o->negative_prompts)
        DICE_TRY(read_prompts("--negative-prompts", t->o->negative_prompts, &prompts, &n, &hash, err));
    int64_t shape[3] = {n, t->model.tok.max_length, t->model.text.cfg.hidden_size};
    int rc = arena_tensor(&t->persistent, &t->null_embeds, DT_F32, 3, shape, err);
    if (!rc)
        rc = clip_encode_prompts(&t->ctx, &t->step, &t->model.text, &t->model.tok,
                                 (const char *const *)(prompts ? prompts : empty), n, CLIP_LAST_HIDDEN_STATE,
                                 &t->null_embeds, NULL, err);
    arena_reset(&t->step);
    if (prompts) {
        for (int i = 0; i < n; i++) free(prompts[i]);
        free(prompts);
    }
    t->n_null = n;
    DICE_TRY(rc);
    if (t->o->negative_prompts)
        return train_settings_add(s, "negative_prompts", err, "%d prompts, fnv %016" PRIx64, n, hash);
    return train_settings_add(s, "negative_prompts", err, "none");
}

// The validation prompts (rank 0 with val_every > 0): --val-prompts' lines or the built-in captions.
static int load_val_prompts(Trainer *t, DiceError *err) {
    uint64_t hash;
    if (t->o->val_prompts)
        return read_prompts("--val-prompts", t->o->val_prompts, &t->val_prompts, &t->n_val, &hash, err);
    t->val_prompts = calloc((size_t)train_val_n_default_prompts, sizeof *t->val_prompts);
    DICE_CHECK(err, t->val_prompts, "dice train: out of host memory");
    for (; t->n_val < train_val_n_default_prompts; t->n_val++) {
        t->val_prompts[t->n_val] = strdup(train_val_default_prompts[t->n_val]);
        DICE_CHECK(err, t->val_prompts[t->n_val], "dice train: out of host memory");
    }
    return 0;
}

static int check_data(Trainer *t, DiceError *err) {
    const ShardInfo *in = &t->ds.info;
    const UnetConfig *u = &t->model.unet.cfg;
    int64_t mult = (int64_t)1 << (u->n_levels - 1);
    DICE_CHECK(err, in->latent_c == u->in_channels && in->latent_h % mult == 0 && in->latent_w % mult == 0,
               "%s: latents (%lld, %lld, %lld) do not fit the UNet (%lld channels, sides multiples of %lld)",
               t->o->data_dir, (long long)in->latent_h, (long long)in->latent_w, (long long)in->latent_c,
               (long long)u->in_channels, (long long)mult);
    DICE_CHECK(err, in->seq_len == t->model.tok.max_length,
               "%s: %lld token ids per caption, the model's tokenizer makes %d", t->o->data_dir,
               (long long)in->seq_len, t->model.tok.max_length);
    return 0;
}

static int make_settings(Trainer *t, DiceError *err) {
    const TrainOptions *o = t->o;
    TrainSettings *s = &t->settings;
    const AdamWConfig *a = &t->opt.cfg;
    DICE_TRY(train_settings_add(s, "model_hash", err, "%s", t->model.hash));
    DICE_TRY(train_settings_add(s, "data_rows", err, "%lld", (long long)t->ds.n_rows));
    DICE_TRY(train_settings_add(s, "global_batch", err, "%lld", (long long)o->global_batch));
    DICE_TRY(train_settings_add(s, "lr", err, "%.17g", o->lr));
    DICE_TRY(train_settings_add(s, "adamw", err, "betas %.17g %.17g eps %.17g wd %.17g", a->beta1, a->beta2, a->eps,
                                a->weight_decay));
    DICE_TRY(train_settings_add(s, "guidance", err, "%.17g", o->guidance));
    DICE_TRY(train_settings_add(s, "alpha", err, "%.17g", o->alpha));
    DICE_TRY(train_settings_add(s, "loss", err, "%s", o->loss == DICE_LOSS_L1 ? "l1" : "l2"));
    DICE_TRY(train_settings_add(s, "t_per_sample", err, "%d", o->t_per_sample));
    DICE_TRY(train_settings_add(s, "loss_space", err, "%s", o->noise_space_loss ? "noise" : "raw"));
    DICE_TRY(train_settings_add(s, "x0", err, "%s", o->x0_mean ? "mean" : "sample"));
    DICE_TRY(train_settings_add(s, "seed", err, "%" PRIu64, o->seed));
    return train_settings_add(s, "sharpener", err, "hidden %d heads %d", o->hidden, o->heads);
}

static int alloc_buffers(Trainer *t, DiceError *err) {
    int64_t r = t->rank_rows, nl = t->n_latent, m = t->o->micro_batch < r ? t->o->micro_batch : r;
    t->rows = malloc((size_t)r * sizeof *t->rows);
    t->mean = malloc((size_t)(r * nl) * sizeof *t->mean);
    t->logvar = malloc((size_t)(r * nl) * sizeof *t->logvar);
    t->x_t = malloc((size_t)(m * nl) * sizeof *t->x_t);
    t->ids = malloc((size_t)(r * t->seq_len) * sizeof *t->ids);
    t->timesteps = malloc((size_t)m * sizeof *t->timesteps);
    t->null_index = malloc((size_t)m * sizeof *t->null_index);
    DICE_CHECK(err, t->rows && t->mean && t->logvar && t->x_t && t->ids && t->timesteps && t->null_index,
               "dice train: out of host memory for a batch of %lld rows", (long long)r);
    return 0;
}

// The loss CSV: fresh (header only), or, when resuming at step k, the lines of steps 1..k kept (a killed
// run may have logged steps past its last checkpoint, and a half-written last line).
static int open_csv(Trainer *t, DiceError *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", t->csv_path);
    FILE *out = fopen(tmp, "w");
    DICE_CHECK(err, out, "%s: %s", tmp, strerror(errno));
    fprintf(out, "step,loss,lr,seconds\n");
    FILE *in = t->st.step > 0 ? fopen(t->csv_path, "r") : NULL;
    if (in) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while ((len = getline(&line, &cap, in)) > 0) {
            long long step;
            if (line[len - 1] != '\n' || sscanf(line, "%lld,", &step) != 1) continue;  // header, partial line
            if (step >= 1 && step <= t->st.step) fputs(line, out);
        }
        free(line);
        fclose(in);
    }
    int rc = fclose(out) ? DICE_FAIL(err, "%s: %s", tmp, strerror(errno)) : 0;
    if (!rc && rename(tmp, t->csv_path)) rc = DICE_FAIL(err, "rename %s: %s", tmp, strerror(errno));
    DICE_TRY(rc);
    t->csv = fopen(t->csv_path, "a");
    DICE_CHECK(err, t->csv, "%s: %s", t->csv_path, strerror(errno));
    return 0;
}

static int setup(Trainer *t, DiceError *err) {
    const TrainOptions *o = t->o;
    Dist *d = t->dist;
    DICE_TRY(check_options(o, d, err));
    if (o->device == DEV_CUDA) DICE_TRY(ctx_init_cuda(&t->ctx, d->local_rank, err));
    else ctx_init_cpu(&t->ctx);
    DICE_TRY(dist_init_nccl(d, &t->ctx, err));
    Device dev = t->ctx.device;
    DICE_TRY(arena_init(&t->persistent, "sharpener", dev, 16 << 20, 0, err));
    DICE_TRY(arena_init(&t->step, "step", dev, dev == DEV_CUDA ? (size_t)1 << 30 : 64 << 20, 0, err));
    DICE_TRY(arena_init(&t->scratch, "recompute", dev, 64 << 20, 0, err));
    bool val_grids = d->rank == 0 && o->val_every > 0;
    if (val_grids) DICE_TRY(load_val_prompts(t, err));
    DICE_TRY(sd_model_open(&t->model, o->model_dir, o->config_dir, &t->ctx,
                           SD_LOAD_TOKENIZER | SD_LOAD_TEXT | SD_LOAD_UNET | (val_grids ? SD_LOAD_VAE : 0), err));
    t->model.unet.checkpoint = o->checkpoint_blocks;
    DICE_TRY(schedule_config_load(&t->schedule_cfg, t->model.scheduler_config, err));
    DICE_TRY(noise_schedule_init(&t->schedule, &t->schedule_cfg, err));
    DICE_TRY(dataset_open(&t->ds, o->data_dir, err));
    DICE_TRY(check_data(t, err));
    t->n_latent = t->ds.info.latent_h * t->ds.info.latent_w * t->ds.info.latent_c;
    t->seq_len = t->ds.info.seq_len;
    DICE_TRY(make_null_embeds(t, &t->settings, err));
    DICE_TRY(sharpener_init(&t->sh, t->model.text.cfg.hidden_size, o->hidden, o->heads, &t->persistent, &t->ctx,
                            o->seed, err));
    sharpener_param_list(&t->sh, t->params);
    AdamWConfig acfg = adamw_dice_defaults();
    acfg.lr = o->lr;
    DICE_TRY(adamw_init(&t->opt, &acfg, t->params, SHARPENER_N_PARAMS, &t->persistent, &t->ctx, err));
    DICE_TRY(make_settings(t, err));
    DICE_TRY(loader_init(&t->loader, t->ds.n_rows, o->global_batch, d->n_ranks, d->rank, o->seed, err));
    t->rank_rows = loader_rank_rows(&t->loader);
    t->j0 = (int64_t)d->rank * o->global_batch / d->n_ranks;
    DICE_TRY(alloc_buffers(t, err));
    DICE_TRY(graph_init(&t->g, &t->ctx, &t->step, err));
    graph_set_scratch(&t->g, &t->scratch);
    t->st.normal = t->st.uniform = (PhiloxStream){o->seed ^ STREAM_KEY_MIX, 0};

    if (d->rank == 0 && mkdir(o->out_dir, 0777) && errno != EEXIST)
        return DICE_FAIL(err, "--out %s: %s", o->out_dir, strerror(errno));
    snprintf(t->ckpt_path, sizeof t->ckpt_path, "%s/checkpoint.safetensors", o->out_dir);
    snprintf(t->csv_path, sizeof t->csv_path, "%s/loss.csv", o->out_dir);
    snprintf(t->plot_path, sizeof t->plot_path, "%s/loss.png", o->out_dir);
    bool have = is_file(t->ckpt_path);
    DICE_CHECK(err, !have || o->resume, "%s exists: pass --resume to continue that run, or choose another --out",
               t->ckpt_path);
    if (have) {
        DICE_TRY(checkpoint_load(t->ckpt_path, &t->sh, &t->opt, &t->st, &t->settings, &t->ctx, err));
        DICE_CHECK(err, t->st.normal.seed == (o->seed ^ STREAM_KEY_MIX), "%s: random streams of another seed",
                   t->ckpt_path);
        DICE_TRY(loader_seek(&t->loader, t->st.data, err));
        if (d->rank == 0 && !o->quiet)
            fprintf(stderr, "dice train: resuming %s at step %lld\n", t->ckpt_path, (long long)t->st.step);
    } else if (o->resume && d->rank == 0 && !o->quiet) {
        fprintf(stderr, "dice train: no checkpoint in %s: starting at step 0\n", o->out_dir);
    }
    if (d->rank == 0) DICE_TRY(open_csv(t, err));
    if (d->rank == 0 && !o->quiet)
        fprintf(stderr, "dice train: %d rank%s on %s, global batch %lld (%lld on rank 0, micro-batch %lld), %lld rows, "
                "steps %lld..%lld\n", d->n_ranks, d->n_ranks > 1 ? "s" : "", device_name(t->ctx.device),
                (long long)o->global_batch, (long long)t->rank_rows, (long long)o->micro_batch, (long long)t->ds.n_rows,
                (long long)t->st.step + 1, (long long)o->steps);
    return 0;
}

// FNV-1a 64 of the sharpener's parameters (host copies).
static int params_hash(Trainer *t, uint64_t *hash, DiceError *err) {
    *hash = 0xcbf29ce484222325ull;
    for (int i = 0; i < SHARPENER_N_PARAMS; i++) {
        const Tensor *v = &t->params[i]->value;
        void *host = malloc(tensor_nbytes(v));
        DICE_CHECK(err, host, "dice train: out of host memory");
        Tensor h;
        int rc = tensor_wrap(&h, host, DT_F32, DEV_CPU, v->ndim, v->shape, err);
        if (!rc) rc = tensor_copy(&t->ctx, &h, v, err);
        if (!rc) *hash = fnv1a64(*hash, host, tensor_nbytes(v));
        free(host);
        DICE_TRY(rc);
    }
    return 0;
}

// One optimiser step on the global batch; *loss is the global batch's loss.
static int train_step(Trainer *t, double *loss, DiceError *err) {
    const TrainOptions *o = t->o;
    DICE_TRY(loader_next(&t->loader, t->rows, err));
    ShardRows rows = {t->mean, t->logvar, t->ids, NULL};
    DICE_TRY(dataset_read(&t->ds, t->rows, t->rank_rows, &rows, err));
    DicePrepare p = {&t->schedule, t->ds.info.scaling_factor, o->x0_mean, o->t_per_sample, t->n_null,
                     o->global_batch, 0, 0, 0};
    dice_reserve_step(&p, &t->st.normal, &t->st.uniform, t->n_latent);
    DiceNets nets = {&t->model.unet, &t->model.text, &t->sh, &t->null_embeds};
    DiceStepConfig cfg = {o->guidance, o->alpha, o->loss, o->global_batch, o->noise_space_loss ? &t->schedule : NULL};
    *loss = 0;
    for (int64_t off = 0; off < t->rank_rows; off += o->micro_batch) {
        int64_t m = t->rank_rows - off < o->micro_batch ? t->rank_rows - off : o->micro_batch;
        DICE_TRY(dice_prepare(&p, t->j0 + off, m, t->n_latent, t->mean + off * t->n_latent,
                              t->logvar + off * t->n_latent, t->x_t, t->timesteps, t->null_index, err));
        DiceMicroBatch mb = {m, t->ds.info.latent_h, t->ds.info.latent_w, t->ds.info.latent_c, t->x_t, t->timesteps,
                             t->ids + off * t->seq_len, t->seq_len, t->null_index};
        graph_reset(&t->g);
        arena_reset(&t->step);
        DICE_TRY(dice_step(&t->g, &nets, &cfg, &mb, true, loss, err));
    }
    graph_reset(&t->g);
    arena_reset(&t->step);
    Tensor *grads[SHARPENER_N_PARAMS];
    for (int i = 0; i < SHARPENER_N_PARAMS; i++) grads[i] = &t->params[i]->grad;
    DICE_TRY(dist_allreduce_sum(t->dist, &t->ctx, grads, SHARPENER_N_PARAMS, err));
    DICE_TRY(dist_allreduce_sum_f64(t->dist, loss, 1, err));
    DICE_TRY(adamw_step(&t->opt, &t->ctx, err));
    for (int i = 0; i < SHARPENER_N_PARAMS; i++) DICE_TRY(param_zero_grad(&t->ctx, t->params[i], err));
    t->st.step++;
    t->st.data = loader_position(&t->loader);
    return 0;
}

static int save_sharpener(Trainer *t, DiceError *err) {
    const TrainOptions *o = t->o;
    char v[10][300];
    const char *keys[10] = {"base_model", "model_hash", "guidance_scale", "alpha", "steps", "data", "loss",
                            "global_batch", "lr", "heads"};
    const char *values[10];
    const char *data = strrchr(o->data_dir, '/') && strrchr(o->data_dir, '/')[1] ? strrchr(o->data_dir, '/') + 1
                                                                               : o->data_dir;
    snprintf(v[0], sizeof v[0], "%s", t->model.name);
    snprintf(v[1], sizeof v[1], "%s", t->model.hash);
    snprintf(v[2], sizeof v[2], "%g", o->guidance);
    snprintf(v[3], sizeof v[3], "%g", o->alpha);
    snprintf(v[4], sizeof v[4], "%lld", (long long)t->st.step);
    snprintf(v[5], sizeof v[5], "%s", data);
    snprintf(v[6], sizeof v[6], "%s", o->loss == DICE_LOSS_L1 ? "l1" : "l2");
    snprintf(v[7], sizeof v[7], "%lld", (long long)o->global_batch);
    snprintf(v[8], sizeof v[8], "%g", o->lr);
    snprintf(v[9], sizeof v[9], "%d", t->sh.heads);
    for (int i = 0; i < 10; i++) values[i] = v[i];
    char path[4200];
    snprintf(path, sizeof path, "%s/sharpener.safetensors", o->out_dir);
    return sharpener_save(&t->sh, &t->ctx, path, keys, values, 10, err);
}

// val_{step}.png in out_dir (rank 0).
static int validate(Trainer *t, int64_t step, DiceError *err) {
    const TrainOptions *o = t->o;
    char path[4200];
    snprintf(path, sizeof path, "%s/val_%lld.png", o->out_dir, (long long)step);
    TrainVal v = {(const char *const *)t->val_prompts, t->n_val, o->val_steps, o->guidance, o->alpha};
    return train_val_grid(&t->model, &t->sh, &v, step, path, err);
}

static void format_eta(double s, char *buf, size_t cap) {
    long long total = (long long)(s + 0.5);
    if (total >= 3600) snprintf(buf, cap, "%lldh%02lldm", total / 3600, total / 60 % 60);
    else snprintf(buf, cap, "%lldm%02llds", total / 60, total % 60);
}

static int run(Trainer *t, DiceError *err) {
    const TrainOptions *o = t->o;
    bool lead = t->dist->rank == 0;
    double start = now_seconds(), base_seconds = t->st.seconds;
    int64_t first = t->st.step;
    while (t->st.step < o->steps) {
        double loss;
        DICE_TRY(train_step(t, &loss, err));
        int64_t step = t->st.step;
        double elapsed = now_seconds() - start;
        t->st.seconds = base_seconds + elapsed;
        if (step % o->check_every == 0 || step == o->steps) {
            uint64_t hash;
            bool same;
            DICE_TRY(params_hash(t, &hash, err));
            DICE_TRY(dist_all_equal_u64(t->dist, hash, &same, err));
            DICE_CHECK(err, same, "after step %lld the ranks hold different sharpeners (hash of rank %d: %016" PRIx64
                       ")", (long long)step, t->dist->rank, hash);
        }
        if (lead) {
            int written = fprintf(t->csv, "%lld,%.17g,%.9g,%.3f\n", (long long)step, loss, o->lr, t->st.seconds);
            DICE_CHECK(err, written > 0 && fflush(t->csv) == 0, "%s: write failed: %s", t->csv_path, strerror(errno));
            if (!o->quiet) {
                double rate = (double)(step - first) / (elapsed > 0 ? elapsed : 1e-9);
                char eta[32];
                format_eta((double)(o->steps - step) / rate, eta, sizeof eta);
                fprintf(stderr, "dice train: step %lld/%lld  loss %.6g  %.2f it/s  ETA %s\n", (long long)step,
                        (long long)o->steps, loss, rate, eta);
            }
            if ((o->save_every && step % o->save_every == 0) || step == o->steps) {
                DICE_TRY(checkpoint_save(t->ckpt_path, &t->sh, &t->opt, &t->st, &t->settings, &t->ctx, err));
                DICE_TRY(train_loss_plot(t->csv_path, t->plot_path, "DICE sharpener", err));
            }
            if (o->val_every && step % o->val_every == 0) DICE_TRY(validate(t, step, err));
        }
        if (step == o->stop_after) raise(SIGKILL);
    }
    if (lead) DICE_TRY(save_sharpener(t, err));
    return 0;
}

static void trainer_free(Trainer *t) {
    if (t->csv) fclose(t->csv);
    for (int i = 0; i < t->n_val; i++) free(t->val_prompts[i]);
    free(t->val_prompts);
    free(t->rows);
    free(t->mean);
    free(t->logvar);
    free(t->x_t);
    free(t->ids);
    free(t->timesteps);
    free(t->null_index);
    graph_free(&t->g);
    loader_free(&t->loader);
    adamw_free(&t->opt);
    dataset_close(&t->ds);
    noise_schedule_free(&t->schedule);
    schedule_config_free(&t->schedule_cfg);
    sd_model_close(&t->model);
    arena_free(&t->scratch);
    arena_free(&t->step);
    arena_free(&t->persistent);
    ctx_free(&t->ctx);
}

int dice_train(const TrainOptions *o, Dist *dist, DiceError *err) {
    Trainer *t = calloc(1, sizeof *t);
    DICE_CHECK(err, t, "dice train: out of host memory");
    t->o = o;
    t->dist = dist;
    ctx_init_cpu(&t->ctx);
    int rc = setup(t, err);
    if (!rc) rc = run(t, err);
    trainer_free(t);
    free(t);
    return rc;
}
