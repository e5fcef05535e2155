// train/base_train.c — joint training of a text encoder and a UNet from scratch on the synthetic world
// (see base_train.h for the objective, the random numbers and the output folder).
#include "base_train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/world.h"
#include "models/clip_encoder.h"
#include "models/clip_tokenizer.h"
#include "models/init.h"
#include "models/unet.h"
#include "models/weights.h"
#include "nn/adamw.h"
#include "nn/file_util.h"
#include "nn/ops.h"
#include "nn/philox.h"
#include "nn/safetensors.h"
#include "nn/tensor_copy.h"
#include "sample/schedule.h"
#include "sample/scheduler_config.h"
#include "train/train_outputs.h"

// Streams of the seed: uniform (caption dropout, t) and normal (noise), 4 uniforms per sample.
enum { UNIFORMS_PER_SAMPLE = 4 };
static const uint64_t NOISE_SEED_MIX = 0x6e6f697365ull;  // "noise"

// One network of the pipeline: its manifest (every tensor by name) and the trained subset.
typedef struct Component {
    const char *dir;            // "text_encoder" or "unet"
    const char *weights_file;   // "model.safetensors" or "diffusion_pytorch_model.safetensors"
    WeightManifest man;
    int *trained_index;         // (man.n) index into BaseRun.trained, or -1 for a frozen tensor
} Component;

// A trained tensor: its Param (value aliases the model's tensor), EMA copy and where it comes from.
typedef struct Trained {
    int comp, entry;
    Tensor ema;                 // f32, same shape; unused without EMA
} Trained;

typedef struct BaseRun {
    const BaseTrainOptions *o;
    DiceCtx ctx;
    bool ctx_open;
    DType dtype;                // of the model: f32 on the CPU, bf16 on CUDA (f32 master weights behind it)
    Arena weights, state, activations, host;
    ClipTokenizer tok;
    ClipEncoderConfig text_cfg;
    ClipEncoder text;
    UnetConfig unet_cfg;
    Unet unet;
    Component comp[2];          // 0: text encoder, 1: UNet
    ScheduleConfig sched_cfg;
    NoiseSchedule sched;
    Param *params;
    Param **param_ptrs;
    Trained *trained;
    int n_trained;
    AdamW opt;
    Graph g;
    int64_t step;               // optimiser steps taken
    double seconds;             // training time so far (carried over a resume)
    float *x0, *xt, *ts;        // host batch buffers
    float *target;              // host: what the UNet regresses (noise, velocity or x0 by prediction_type)
    int32_t *ids;
} BaseRun;

void base_train_defaults(BaseTrainOptions *o) {
    memset(o, 0, sizeof *o);
    o->steps = 2000;
    o->batch = 16;
    o->lr = 1e-3;
    o->weight_decay = 1e-2;
    o->uncond_prob = 0.15;
    o->ema_decay = 0.999;
    o->save_every = 250;
    o->save_dtype = DT_F16;
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// ---------------------------------------------------------------- model

// Which tensors train: the linear and convolution weights and biases (what op_linear / op_conv2d use).
// Norm affines and embedding tables stay as initialised (their ops take no Param).
static bool is_trained(const char *name) {
    size_t n = strlen(name);
    bool wb = (n > 7 && !strcmp(name + n - 7, ".weight")) || (n > 5 && !strcmp(name + n - 5, ".bias"));
    return wb && !strstr(name, "norm") && !strstr(name, "embedding.");
}

// Opens the component's weights in the model folder, or none when it has no weights file (or from_scratch):
// every tensor then comes back zero-filled and is initialised afterwards. *fresh says which.
static int open_component(BaseRun *r, const char *dir, const char *file, Weights *w, bool *fresh, DiceError *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", r->o->model, dir, file);
    *fresh = r->o->from_scratch || !file_exists(path);
    if (*fresh) return weights_open_empty(w, &r->ctx, &r->weights, r->dtype, err);
    const char *paths[1] = {path};
    return weights_open(w, paths, 1, &r->ctx, &r->weights, r->dtype, err);
}

static int load_models(BaseRun *r, DiceError *err) {
    const BaseTrainOptions *o = r->o;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer", o->model);
    DICE_TRY(clip_tokenizer_load(&r->tok, path, err));
    snprintf(path, sizeof path, "%s/text_encoder/config.json", o->model);
    DICE_TRY(clip_encoder_config_load(&r->text_cfg, path, err));
    snprintf(path, sizeof path, "%s/unet/config.json", o->model);
    DICE_TRY(unet_config_load(&r->unet_cfg, path, err));
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", o->model);
    DICE_TRY(schedule_config_load(&r->sched_cfg, path, err));
    DICE_TRY(noise_schedule_init(&r->sched, &r->sched_cfg, err));
    DICE_CHECK(err, r->unet_cfg.in_channels == 3 && r->unet_cfg.out_channels == 3,
               "%s/unet/config.json: a pixel-space UNet (in/out channels 3) is trained on the world's images",
               o->model);
    DICE_CHECK(err, r->text_cfg.hidden_size == r->unet_cfg.cross_attention_dim[0],
               "%s: the text encoder's width %d is not the UNet's cross_attention_dim %lld", o->model,
               r->text_cfg.hidden_size, (long long)r->unet_cfg.cross_attention_dim[0]);

    r->comp[0] = (Component){.dir = "text_encoder", .weights_file = "model.safetensors"};
    r->comp[1] = (Component){.dir = "unet", .weights_file = "diffusion_pytorch_model.safetensors"};
    for (int c = 0; c < 2; c++) {
        Weights w;
        bool fresh;
        DICE_TRY(open_component(r, r->comp[c].dir, r->comp[c].weights_file, &w, &fresh, err));
        int rc = c == 0 ? clip_encoder_load(&r->text, &r->text_cfg, &w, err) : unet_load(&r->unet, &r->unet_cfg, &w, err);
        if (!rc && !fresh) rc = weights_finish(&w, err);
        weights_take_manifest(&w, &r->comp[c].man);
        weights_close(&w);
        DICE_TRY(rc);
        // A fresh component is initialised with a seed of its own (the same names in both would collide).
        if (fresh) DICE_TRY(weights_init_pytorch(&r->comp[c].man, &r->ctx, o->seed * 2 + (uint64_t)c, err));
    }
    return 0;
}

// Params, their gradients, EMA copies and the optimiser. On the CPU a Param's value IS the model's f32 tensor;
// on CUDA the model's bf16 tensor is the Param's working copy of an f32 master value (nn/autograd.h).
static int make_params(BaseRun *r, DiceError *err) {
    int n = 0;
    for (int c = 0; c < 2; c++) {
        r->comp[c].trained_index = malloc((size_t)r->comp[c].man.n * sizeof(int));
        DICE_CHECK(err, r->comp[c].trained_index, "out of host memory");
        for (int i = 0; i < r->comp[c].man.n; i++) {
            bool t = is_trained(r->comp[c].man.entries[i].name);
            r->comp[c].trained_index[i] = t ? n : -1;
            n += t;
        }
    }
    r->params = calloc((size_t)n, sizeof *r->params);
    r->param_ptrs = calloc((size_t)n, sizeof *r->param_ptrs);
    r->trained = calloc((size_t)n, sizeof *r->trained);
    DICE_CHECK(err, r->params && r->param_ptrs && r->trained, "out of host memory");
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < r->comp[c].man.n; i++) {
            const WeightEntry *e = &r->comp[c].man.entries[i];
            if (!is_trained(e->name)) continue;
            Param *p = &r->params[r->n_trained];
            Trained *t = &r->trained[r->n_trained];
            p->name = e->name;
            DICE_CHECK(err, tensor_is_contiguous(e->out), "%s: trained tensors must be contiguous", e->name);
            if (r->dtype == DT_F32) {
                p->value = *e->out;
            } else {
                p->working = *e->out;
                DICE_TRY(arena_tensor(&r->state, &p->value, DT_F32, e->out->ndim, e->out->shape, err));
                DICE_TRY(tensor_copy(&r->ctx, &p->value, e->out, err));
            }
            DICE_TRY(arena_tensor(&r->state, &p->grad, DT_F32, p->value.ndim, p->value.shape, err));
            DICE_TRY(param_zero_grad(&r->ctx, p, err));
            t->comp = c, t->entry = i;
            if (r->o->ema_decay > 0) {
                DICE_TRY(arena_tensor(&r->state, &t->ema, DT_F32, p->value.ndim, p->value.shape, err));
                DICE_TRY(tensor_copy(&r->ctx, &t->ema, &p->value, err));
            }
            r->param_ptrs[r->n_trained++] = p;
        }
    AdamWConfig cfg = {.lr = r->o->lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = r->o->weight_decay};
    DICE_TRY(adamw_init(&r->opt, &cfg, r->param_ptrs, r->n_trained, &r->state, &r->ctx, err));
    DICE_TRY(graph_init(&r->g, &r->ctx, &r->activations, err));
    return graph_bind_params(&r->g, r->params, r->n_trained, err);
}

// ---------------------------------------------------------------- state files

// The folder's shipped weights: each component's manifest, with the EMA in place of the trained tensors.
static int save_weights(BaseRun *r, const char *dir, DiceError *err) {
    char path[4096];
    for (int c = 0; c < 2; c++) {
        WeightManifest m = r->comp[c].man;  // shallow: names and tensors are borrowed
        m.entries = malloc((size_t)m.n * sizeof *m.entries);
        DICE_CHECK(err, m.entries, "out of host memory");
        memcpy(m.entries, r->comp[c].man.entries, (size_t)m.n * sizeof *m.entries);
        for (int k = 0; k < r->n_trained && r->o->ema_decay > 0; k++)
            if (r->trained[k].comp == c) m.entries[r->trained[k].entry].out = &r->trained[k].ema;
        snprintf(path, sizeof path, "%s/%s/%s", dir, r->comp[c].dir, r->comp[c].weights_file);
        int rc = weights_save(&m, &r->ctx, path, r->o->save_dtype, err);
        free(m.entries);
        DICE_TRY(rc);
    }
    return 0;
}

// train_state.safetensors: "<component>/<name>" for every tensor (dice's layout, f32), and for the trained ones
// ".../ema", ".../adam_m", ".../adam_v"; metadata step, seconds and the settings a resume must not change.
// The f32 host copy of t (in r->host) for a state file.
static int host_f32(BaseRun *r, const Tensor *t, const void **data, DiceError *err) {
    if (t->device == DEV_CPU && t->dtype == DT_F32) {
        *data = t->data;
        return 0;
    }
    Tensor h;
    DICE_TRY(tensor_to(&r->ctx, &r->host, &h, t, DT_F32, err));
    *data = h.data;
    return 0;
}

static int save_state(BaseRun *r, DiceError *err) {
    int cap = r->comp[0].man.n + r->comp[1].man.n + 3 * r->n_trained, n = 0;
    arena_reset(&r->host);
    StWriteTensor *t = calloc((size_t)cap, sizeof *t);
    char (*names)[320] = calloc((size_t)cap, sizeof *names);
    int rc = t && names ? 0 : DICE_FAIL(err, "out of host memory");
    for (int c = 0; c < 2 && !rc; c++)
        for (int i = 0; i < r->comp[c].man.n; i++) {
            int k = r->comp[c].trained_index[i];  // a trained tensor's master value, else the model's
            const Tensor *v = k >= 0 ? &r->params[k].value : r->comp[c].man.entries[i].out;
            snprintf(names[n], sizeof names[n], "%s/%s", r->comp[c].dir, r->comp[c].man.entries[i].name);
            t[n] = (StWriteTensor){.name = names[n], .dtype = DT_F32, .ndim = v->ndim};
            memcpy(t[n].shape, v->shape, sizeof(int64_t) * (size_t)v->ndim);
            if (host_f32(r, v, &t[n].data, err)) {
                rc = -1;
                break;
            }
            n++;
        }
    for (int k = 0; k < r->n_trained && !rc; k++) {
        const Trained *tr = &r->trained[k];
        const Tensor *extra[3] = {&tr->ema, &r->opt.m[k], &r->opt.v[k]};
        const char *suffix[3] = {"ema", "adam_m", "adam_v"};
        for (int j = r->o->ema_decay > 0 ? 0 : 1; j < 3; j++) {
            snprintf(names[n], sizeof names[n], "%s/%s/%s", r->comp[tr->comp].dir,
                     r->comp[tr->comp].man.entries[tr->entry].name, suffix[j]);
            t[n] = (StWriteTensor){.name = names[n], .dtype = DT_F32, .ndim = extra[j]->ndim};
            memcpy(t[n].shape, extra[j]->shape, sizeof(int64_t) * (size_t)extra[j]->ndim);
            if (host_f32(r, extra[j], &t[n].data, err)) {
                rc = -1;
                break;
            }
            n++;
        }
    }
    char step[32], seconds[32], seed[32], batch[32];
    snprintf(step, sizeof step, "%lld", (long long)r->step);
    snprintf(seconds, sizeof seconds, "%.3f", r->seconds);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->o->seed);
    snprintf(batch, sizeof batch, "%d", r->o->batch);
    const char *keys[4] = {"step", "seconds", "seed", "batch"}, *values[4] = {step, seconds, seed, batch};
    char path[4096];
    snprintf(path, sizeof path, "%s/train_state.safetensors", r->o->out);
    if (!rc) rc = st_write(path, t, n, keys, values, 4, err);
    free(t);
    free(names);
    return rc;
}

static int restore_tensor(BaseRun *r, const StFile *f, const char *name, Tensor *dst, DiceError *err) {
    const StTensorInfo *t = st_find(f, name);
    DICE_CHECK(err, t, "%s: no tensor %s", f->path, name);
    bool same = t->dtype == DT_F32 && t->ndim == dst->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == dst->shape[d];
    DICE_CHECK(err, same, "%s: %s does not have the model's shape in f32", f->path, name);
    arena_reset(&r->host);
    void *copy;  // the mapping may be unaligned for f32
    DICE_TRY(arena_alloc(&r->host, t->end - t->begin, &copy, err));
    memcpy(copy, t->data, t->end - t->begin);
    Tensor src;
    DICE_TRY(tensor_wrap(&src, copy, DT_F32, DEV_CPU, dst->ndim, dst->shape, err));
    if (dst->device != DEV_CPU && dst->dtype != DT_F32)  // copies between devices keep the dtype: convert here
        DICE_TRY(tensor_to(&r->ctx, &r->host, &src, &src, dst->dtype, err));
    return tensor_copy(&r->ctx, dst, &src, err);
}

static int load_state(BaseRun *r, DiceError *err) {
    char path[4096], name[320];
    snprintf(path, sizeof path, "%s/train_state.safetensors", r->o->out);
    StFile f;
    DICE_TRY(st_open(&f, path, err));
    const char *step = st_meta(&f, "step"), *seconds = st_meta(&f, "seconds"), *seed = st_meta(&f, "seed"),
               *batch = st_meta(&f, "batch");
    int rc = step && seconds && seed && batch ? 0 : DICE_FAIL(err, "%s: step, seconds, seed or batch missing", path);
    if (!rc && (strtoull(seed, NULL, 10) != r->o->seed || atoi(batch) != r->o->batch))
        rc = DICE_FAIL(err, "%s: written with seed %s and batch %s; resume with the same --seed and --batch", path,
                       seed, batch);
    for (int c = 0; c < 2 && !rc; c++)
        for (int i = 0; i < r->comp[c].man.n && !rc; i++) {
            int k = r->comp[c].trained_index[i];
            snprintf(name, sizeof name, "%s/%s", r->comp[c].dir, r->comp[c].man.entries[i].name);
            rc = restore_tensor(r, &f, name, k >= 0 ? &r->params[k].value : r->comp[c].man.entries[i].out, err);
            if (!rc && k >= 0) rc = param_sync_working(&r->ctx, &r->params[k], err);
        }
    for (int k = 0; k < r->n_trained && !rc; k++) {
        Trained *tr = &r->trained[k];
        Tensor *extra[3] = {&tr->ema, &r->opt.m[k], &r->opt.v[k]};
        const char *suffix[3] = {"ema", "adam_m", "adam_v"};
        for (int j = r->o->ema_decay > 0 ? 0 : 1; j < 3 && !rc; j++) {
            snprintf(name, sizeof name, "%s/%s/%s", r->comp[tr->comp].dir, r->comp[tr->comp].man.entries[tr->entry].name,
                     suffix[j]);
            rc = restore_tensor(r, &f, name, extra[j], err);
        }
    }
    if (!rc) {
        r->step = strtoll(step, NULL, 10);
        r->seconds = strtod(seconds, NULL);
        r->opt.step = r->step;
    }
    st_close(&f);
    return rc;
}

// Copies the configs and tokenizer files of --model into the pipeline folder `dir` (created).
static int copy_configs(BaseRun *r, const char *dir, DiceError *err) {
    static const char *const files[] = {"model_index.json", "scheduler/scheduler_config.json",
                                        "text_encoder/config.json", "unet/config.json", "tokenizer/vocab.json",
                                        "tokenizer/merges.txt", "tokenizer/tokenizer_config.json",
                                        "tokenizer/special_tokens_map.json"};
    static const char *const dirs[] = {"scheduler", "text_encoder", "unet", "tokenizer"};
    char src[4096], dst[4096];
    for (int i = 0; i < 4; i++) {
        snprintf(dst, sizeof dst, "%s/%s", dir, dirs[i]);
        DICE_TRY(dice_make_dirs(dst, err));
    }
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(src, sizeof src, "%s/%s", r->o->model, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        if (!strcmp(src, dst)) continue;
        if (!file_exists(src) && strstr(files[i], "special_tokens_map")) continue;  // optional in transformers
        DICE_TRY(dice_copy_file(src, dst, (size_t)64 << 20, err));
    }
    return 0;
}

// ---------------------------------------------------------------- one step

void base_train_caption(const BaseTrainOptions *o, uint64_t index, const WorldItem *item, char *buf) {
    float u[UNIFORMS_PER_SAMPLE];
    philox_uniform4(o->seed, index, u);
    if (u[0] < o->uncond_prob) {
        buf[0] = '\0';
        return;
    }
    WorldAttrs noisy;
    world_noisy_attrs(&item->attrs, o->caption_noise, o->seed, index, &noisy);
    world_caption(&noisy, buf, WORLD_CAPTION_MAX);
}

// The inputs of global step `step`: images, captions (some dropped), timesteps, noisy images and the
// regression target of the scheduler's prediction_type (diffusers' train_text_to_image.py): the noise for
// epsilon, get_velocity(x0, noise, t) = sqrt(abar) noise - sqrt(1 - abar) x0 for v_prediction, x0 for sample.
static int make_batch(BaseRun *r, int64_t step, DiceError *err) {
    const int B = r->o->batch;
    const size_t n = WORLD_PIXELS;
    WorldItem item;
    for (int j = 0; j < B; j++) {
        uint64_t index = (uint64_t)step * (uint64_t)B + (uint64_t)j;
        world_sample(r->o->seed, index, WORLD_TRAIN, &item);
        float u[UNIFORMS_PER_SAMPLE];
        philox_uniform4(r->o->seed, index, u);
        char text[WORLD_CAPTION_MAX];
        base_train_caption(r->o, index, &item, text);
        DICE_TRY(clip_tokenizer_encode(&r->tok, text, r->ids + (size_t)j * r->tok.max_length, NULL, NULL, err));
        int t = (int)(u[1] * (float)r->sched.T);
        if (t >= r->sched.T) t = r->sched.T - 1;
        r->ts[j] = (float)t;
        float *x0 = r->x0 + j * n, *target = r->target + j * n;  // target holds the noise first
        for (size_t k = 0; k < n; k++) x0[k] = (float)item.rgb[k] / 127.5f - 1.0f;
        philox_fill_normal_f32(target, n, r->o->seed ^ NOISE_SEED_MIX, index * n);
        schedule_add_noise(&r->sched, t, x0, target, r->xt + j * n, n);
        if (r->sched.prediction_type == PRED_V_PREDICTION) schedule_velocity(&r->sched, t, x0, target, target, n);
        else if (r->sched.prediction_type == PRED_SAMPLE) memcpy(target, x0, n * sizeof *target);
    }
    return 0;
}

// ema = d ema + (1 - d) value for every trained tensor: in double on the CPU, with f32 ops (no-grad) on CUDA.
static int ema_update(BaseRun *r, double d, DiceError *err) {
    if (r->ctx.device == DEV_CPU) {
        for (int k = 0; k < r->n_trained; k++) {
            float *e = r->trained[k].ema.data;
            const float *p = r->params[k].value.data;
            int64_t n = tensor_numel(&r->params[k].value);
            for (int64_t i = 0; i < n; i++) e[i] = (float)(d * e[i] + (1.0 - d) * p[i]);
        }
        return 0;
    }
    int rc = 0;
    graph_no_grad_begin(&r->g);
    for (int k = 0; k < r->n_trained && !rc; k++) {
        ArenaMark mark = arena_mark(&r->activations);
        Var *e, *p, *de, *dp, *sum;
        rc = graph_leaf(&r->g, &e, &r->trained[k].ema, false, err);
        if (!rc) rc = graph_leaf(&r->g, &p, &r->params[k].value, false, err);
        if (!rc) rc = op_scale(&r->g, &de, e, d, 0, err);
        if (!rc) rc = op_scale(&r->g, &dp, p, 1.0 - d, 0, err);
        if (!rc) rc = op_add(&r->g, &sum, de, dp, err);
        if (!rc) rc = tensor_copy(&r->ctx, &r->trained[k].ema, &sum->value, err);
        arena_release(&r->activations, mark);
    }
    graph_no_grad_end(&r->g);
    return rc;
}

static int train_step(BaseRun *r, double *loss_out, DiceError *err) {
    const int B = r->o->batch;
    const int64_t L = r->tok.max_length;
    DICE_TRY(make_batch(r, r->step, err));
    arena_reset(&r->activations);
    arena_reset(&r->host);
    graph_reset(&r->g);
    Tensor ids, xt, target, ts;
    DICE_TRY(tensor_wrap(&ids, r->ids, DT_I32, DEV_CPU, 2, (int64_t[]){B, L}, err));
    DICE_TRY(tensor_wrap(&xt, r->xt, DT_F32, DEV_CPU, 4, (int64_t[]){B, WORLD_SIZE, WORLD_SIZE, 3}, err));
    DICE_TRY(tensor_wrap(&target, r->target, DT_F32, DEV_CPU, 4, (int64_t[]){B, WORLD_SIZE, WORLD_SIZE, 3}, err));
    DICE_TRY(tensor_wrap(&ts, r->ts, DT_F32, DEV_CPU, 1, (int64_t[]){B}, err));
    if (r->ctx.device != DEV_CPU) {  // the model's inputs on its device, in its dtype
        DICE_TRY(tensor_to(&r->ctx, &r->activations, &xt, &xt, r->dtype, err));
        DICE_TRY(tensor_to(&r->ctx, &r->activations, &target, &target, r->dtype, err));
    }
    ClipEncoderOutput text = {0};
    Var *xv, *tv, *pred, *loss;
    DICE_TRY(clip_encoder_forward(&r->g, &r->text, &ids, CLIP_LAST_HIDDEN_STATE, &text, err));
    DICE_TRY(graph_leaf(&r->g, &xv, &xt, false, err));
    DICE_TRY(graph_leaf(&r->g, &tv, &target, false, err));
    DICE_TRY(unet_forward(&r->g, &r->unet, xv, &ts, text.hidden, &pred, err));
    DICE_TRY(op_mse_loss(&r->g, &loss, pred, tv, 1.0 / ((double)B * WORLD_PIXELS), err));
    Tensor loss_host;
    DICE_TRY(tensor_to(&r->ctx, &r->host, &loss_host, &loss->value, DT_F32, err));
    *loss_out = *(const float *)loss_host.data;
    DICE_TRY(graph_backward(&r->g, loss, err));
    DICE_TRY(graph_collect_param_grads(&r->g, err));  // bf16 working-copy gradients into the f32 masters
    DICE_TRY(adamw_step(&r->opt, &r->ctx, err));
    for (int k = 0; k < r->n_trained; k++) {
        DICE_TRY(param_zero_grad(&r->ctx, &r->params[k], err));
        DICE_TRY(param_sync_working(&r->ctx, &r->params[k], err));
    }
    r->step++;
    if (r->o->ema_decay > 0)
        DICE_TRY(ema_update(r, fmin(r->o->ema_decay, (1.0 + (double)r->step) / (10.0 + (double)r->step)), err));
    return 0;
}

// ---------------------------------------------------------------- the run

static int checkpoint(BaseRun *r, DiceError *err) {
    char csv[4096], png[4096];
    DICE_TRY(save_weights(r, r->o->out, err));
    DICE_TRY(save_state(r, err));
    snprintf(csv, sizeof csv, "%s/loss.csv", r->o->out);
    snprintf(png, sizeof png, "%s/loss.png", r->o->out);
    if (!r->step) return 0;  // nothing to plot before the first step
    return train_loss_plot(csv, png, "base model (UNet + text encoder)", err);
}

// OUT/step-NNNNNN: a pipeline folder of its own with the weights of this step (--keep-every).
static int keep_snapshot(BaseRun *r, DiceError *err) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/step-%06lld", r->o->out, (long long)r->step);
    DICE_TRY(copy_configs(r, dir, err));
    return save_weights(r, dir, err);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int run(BaseRun *r, DiceError *err) {
    const BaseTrainOptions *o = r->o;
    DICE_CHECK(err, o->model && o->out, "base training needs a model folder and an output folder");
    DICE_CHECK(err, o->batch >= 1 && o->steps >= 0 && o->uncond_prob >= 0 && o->uncond_prob <= 1 &&
                        o->caption_noise >= 0 && o->caption_noise <= 1 && o->ema_decay >= 0 && o->ema_decay < 1 &&
                        o->lr > 0 && o->save_every >= 0 && o->keep_every >= 0,
               "bad settings: batch >= 1, steps >= 0, uncond_prob and caption_noise in [0, 1], ema_decay in [0, 1), "
               "lr > 0, save_every and keep_every >= 0");
    if (o->device == DEV_CUDA) DICE_TRY(ctx_init_cuda(&r->ctx, 0, err));
    else ctx_init_cpu(&r->ctx);
    r->ctx_open = true;
    r->dtype = o->device == DEV_CUDA ? DT_BF16 : DT_F32;
    Device dev = r->ctx.device;
    DICE_TRY(arena_init(&r->weights, "weights", dev, (size_t)64 << 20, 0, err));
    DICE_TRY(arena_init(&r->state, "train state", dev, (size_t)64 << 20, 0, err));
    DICE_TRY(arena_init(&r->activations, "step", dev, (size_t)256 << 20, 0, err));
    DICE_TRY(arena_init(&r->host, "host", DEV_CPU, (size_t)64 << 20, 0, err));
    DICE_TRY(dice_make_dirs(o->out, err));
    DICE_TRY(load_models(r, err));
    DICE_TRY(make_params(r, err));
    if (o->resume) DICE_TRY(load_state(r, err));
    DICE_TRY(copy_configs(r, o->out, err));
    size_t n = (size_t)o->batch * WORLD_PIXELS;
    r->x0 = malloc(n * sizeof *r->x0), r->target = malloc(n * sizeof *r->target), r->xt = malloc(n * sizeof *r->xt);
    r->ts = malloc((size_t)o->batch * sizeof *r->ts);
    r->ids = malloc((size_t)o->batch * (size_t)r->tok.max_length * sizeof *r->ids);
    DICE_CHECK(err, r->x0 && r->target && r->xt && r->ts && r->ids, "out of host memory");

    char csv_path[4096];
    snprintf(csv_path, sizeof csv_path, "%s/loss.csv", o->out);
    FILE *csv = fopen(csv_path, o->resume ? "a" : "w");
    DICE_CHECK(err, csv, "%s: cannot open: %s", csv_path, strerror(errno));
    if (!o->resume) fprintf(csv, "step,loss,lr,seconds\n");
    if (!o->quiet)
        fprintf(stderr, "base training: %d trained tensors, batch %d, from step %lld to %lld\n", r->n_trained,
                o->batch, (long long)r->step, (long long)o->steps);
    int rc = 0;
    const int64_t first_step = r->step + 1;
    double mean = 0;
    while (r->step < o->steps && !rc) {
        double t0 = now_s(), loss;
        rc = train_step(r, &loss, err);
        if (rc) break;
        r->seconds += now_s() - t0;
        if (!isfinite(loss)) {
            rc = DICE_FAIL(err, "step %lld: the loss is %g", (long long)r->step, loss);
            break;
        }
        fprintf(csv, "%lld,%.6f,%g,%.3f\n", (long long)r->step, loss, o->lr, r->seconds);
        mean = r->step == first_step ? loss : 0.98 * mean + 0.02 * loss;
        if (!o->quiet && (r->step % 10 == 0 || r->step == o->steps))
            fprintf(stderr, "step %lld/%lld  loss %.4f (mean %.4f)  %.2f s/step\n", (long long)r->step,
                    (long long)o->steps, loss, mean, r->seconds / (double)r->step);
        if (o->save_every && r->step % o->save_every == 0) {
            fflush(csv);
            rc = checkpoint(r, err);
        }
        if (!rc && o->keep_every && r->step % o->keep_every == 0) rc = keep_snapshot(r, err);
    }
    if (fclose(csv) && !rc) rc = DICE_FAIL(err, "%s: write error", csv_path);
    if (!rc) rc = checkpoint(r, err);
    return rc;
}

int base_train(const BaseTrainOptions *o, DiceError *err) {
    BaseRun r;
    memset(&r, 0, sizeof r);
    r.o = o;
    int rc = run(&r, err);
    graph_free(&r.g);
    adamw_free(&r.opt);
    free(r.params), free(r.param_ptrs), free(r.trained);
    free(r.x0), free(r.target), free(r.xt), free(r.ts), free(r.ids);
    for (int c = 0; c < 2; c++) weight_manifest_free(&r.comp[c].man);
    if (r.unet.cfg.n_levels) unet_free(&r.unet);
    clip_encoder_free(&r.text);
    clip_tokenizer_free(&r.tok);
    noise_schedule_free(&r.sched);
    schedule_config_free(&r.sched_cfg);
    for (int c = 0; c < 2; c++) free(r.comp[c].trained_index);
    arena_free(&r.host), arena_free(&r.activations), arena_free(&r.state), arena_free(&r.weights);
    if (r.ctx_open) ctx_free(&r.ctx);
    return rc;
}
