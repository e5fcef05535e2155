// nn/cmd_train.c — `dice train`: DICE training (train/trainer.h) from the command line, on one process or under
// `mpirun -np N` (train/dist.h). Argument parsing and error reporting only.
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "train/trainer.h"

static const char usage[] =
    "usage: dice train --model PATH --data SHARDS_DIR --out DIR [options]\n"
    "       mpirun -np N dice train ...        (data parallel: one rank per GPU or CPU process)\n"
    "\n"
    "Trains a DICE sharpener (Algorithm 1 of the paper) through a frozen Stable Diffusion 1.x model: for every\n"
    "batch, t ~ U{0..T-1}, x_t = add_noise(x0, noise, t); teacher e_u + w (e_c - e_u) without gradients (one UNet\n"
    "batch of 2B); student eps(x_t, t, c + alpha r(c, c_null)); L1 (or squared L2) summed over latent elements and\n"
    "divided by the global batch; AdamW on the sharpener only. Defaults are the authors' SD1.5 settings.\n"
    "\n"
    "  --model PATH            diffusers pipeline folder (tokenizer, text_encoder, unet, scheduler), or a\n"
    "                          single-file checkpoint (.safetensors) with --config\n"
    "  --config DIR            a diffusers SD 1.x folder giving a single file's configs and tokenizer\n"
    "  --data DIR              HDF5 shards written by `dice prep` (shard_00000.h5, ...)\n"
    "  --out DIR               loss.csv, loss.png, val_STEP.png, checkpoint.safetensors, sharpener.safetensors\n"
    "                          (created)\n"
    "  --steps N               optimiser steps (8000)\n"
    "  --batch N               GLOBAL batch, split over the ranks (128)\n"
    "  --micro-batch N         samples per forward/backward on a rank; gradients accumulate (16)\n"
    "  --lr X                  AdamW learning rate, constant; betas 0.9/0.999, eps 1e-8, weight decay 1e-2 (2e-4)\n"
    "  --guidance W            the CFG teacher's guidance scale (5)\n"
    "  --alpha A               sharpening strength in training (1)\n"
    "  --loss l1|l2            L1 (SD1.5, default) or squared L2 (SDXL)\n"
    "  --t-per-sample          one timestep per sample (default: one per global batch, as the authors)\n"
    "  --noise-space-loss      the loss on the noise the UNet's outputs imply (the paper's loss) for v- and\n"
    "                          x0-prediction models; default: on the raw outputs\n"
    "  --x0-mean               train on the stored latent mean (default: a posterior sample, as the authors)\n"
    "  --negative-prompts FILE one prompt a line; a random one per sample replaces c_null everywhere\n"
    "  --seed N                initialisation, data order and noise (0)\n"
    "  --save-every N          checkpoint period in steps, 0 for the end only (500)\n"
    "  --check-every N         compare the sharpener across ranks every N steps (100)\n"
    "  --val-every N           every N steps write val_STEP.png: rows unguided, CFG (--guidance) and DICE\n"
    "                          (--alpha, the current sharpener), one column per prompt, seeds 0, 1, ...;\n"
    "                          0 turns it off (500)\n"
    "  --val-prompts FILE      validation prompts, one a line (default: 4 built-in COCO-style captions)\n"
    "  --val-steps N           DPM-Solver++ steps of the validation images (20)\n"
    "  --resume                continue from --out's checkpoint (bit for bit on the CPU)\n"
    "  --device cpu|cuda       (cpu); on CUDA the frozen nets run in bf16, the sharpener in fp32\n"
    "  --checkpoint-blocks     recompute the UNet's blocks in backward (less memory, same gradients)\n"
    "  --hidden N --heads N    sharpener width and heads (512, 8: the authors')\n"
    "  --quiet                 no progress lines\n"
    "\n"
    "Progress (rank 0, stderr): step, loss, it/s, ETA. loss.csv: step,loss,lr,seconds; loss.png (rewritten with\n"
    "every checkpoint): the loss and its trailing mean against the step.\n";

static int parse_i64(const char *flag, const char *text, int64_t min, int64_t *out) {
    long long v;
    if (cli_int("train", flag, text, min, LLONG_MAX, &v)) return -1;
    *out = v;
    return 0;
}

static int parse_f64(const char *flag, const char *text, double *out) {
    return cli_number("train", flag, text, out);
}

static int parse_args(int argc, char **argv, TrainOptions *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        int rc = 0;
        bool takes_value = true;
        if (!strcmp(a, "--t-per-sample")) o->t_per_sample = true, takes_value = false;
        else if (!strcmp(a, "--noise-space-loss")) o->noise_space_loss = true, takes_value = false;
        else if (!strcmp(a, "--x0-mean")) o->x0_mean = true, takes_value = false;
        else if (!strcmp(a, "--resume")) o->resume = true, takes_value = false;
        else if (!strcmp(a, "--checkpoint-blocks")) o->checkpoint_blocks = true, takes_value = false;
        else if (!strcmp(a, "--quiet")) o->quiet = true, takes_value = false;
        else if (!v) {
            fprintf(stderr, "dice train: %s needs a value (see `dice help train`)\n", a);
            return -1;
        } else if (!strcmp(a, "--model")) o->model_dir = v;
        else if (!strcmp(a, "--config")) o->config_dir = v;
        else if (!strcmp(a, "--data")) o->data_dir = v;
        else if (!strcmp(a, "--out")) o->out_dir = v;
        else if (!strcmp(a, "--negative-prompts")) o->negative_prompts = v;
        else if (!strcmp(a, "--val-prompts")) o->val_prompts = v;
        else if (!strcmp(a, "--steps")) rc = parse_i64(a, v, 1, &o->steps);
        else if (!strcmp(a, "--batch")) rc = parse_i64(a, v, 1, &o->global_batch);
        else if (!strcmp(a, "--micro-batch")) rc = parse_i64(a, v, 1, &o->micro_batch);
        else if (!strcmp(a, "--save-every")) rc = parse_i64(a, v, 0, &o->save_every);
        else if (!strcmp(a, "--check-every")) rc = parse_i64(a, v, 1, &o->check_every);
        else if (!strcmp(a, "--val-every")) rc = parse_i64(a, v, 0, &o->val_every);
        else if (!strcmp(a, "--stop-after")) rc = parse_i64(a, v, 1, &o->stop_after);  // testing: SIGKILL itself
        else if (!strcmp(a, "--seed")) {
            rc = parse_i64(a, v, 0, &n);
            o->seed = (uint64_t)n;
        } else if (!strcmp(a, "--hidden")) {
            rc = parse_i64(a, v, 1, &n);
            o->hidden = n < (1 << 20) ? (int)n : 0;  // 0 is refused by the trainer's checks
        } else if (!strcmp(a, "--heads")) {
            rc = parse_i64(a, v, 1, &n);
            o->heads = n < (1 << 20) ? (int)n : 0;
        } else if (!strcmp(a, "--val-steps")) {
            rc = parse_i64(a, v, 1, &n);
            o->val_steps = n < 10000 ? (int)n : 0;  // 0 is refused by the trainer's checks
        } else if (!strcmp(a, "--lr")) rc = parse_f64(a, v, &o->lr);
        else if (!strcmp(a, "--guidance")) rc = parse_f64(a, v, &o->guidance);
        else if (!strcmp(a, "--alpha")) rc = parse_f64(a, v, &o->alpha);
        else if (!strcmp(a, "--loss")) {
            if (!strcmp(v, "l1")) o->loss = DICE_LOSS_L1;
            else if (!strcmp(v, "l2")) o->loss = DICE_LOSS_L2;
            else rc = -1, fprintf(stderr, "dice train: --loss is l1 or l2, got '%s'\n", v);
        } else if (!strcmp(a, "--device")) {
            if (!strcmp(v, "cpu")) o->device = DEV_CPU;
            else if (!strcmp(v, "cuda")) o->device = DEV_CUDA;
            else rc = -1, fprintf(stderr, "dice train: --device is cpu or cuda, got '%s'\n", v);
        } else {
            fprintf(stderr, "dice train: unknown option '%s' (see `dice help train`)\n", a);
            return -1;
        }
        if (rc) return -1;
        if (takes_value) i++;
    }
    if (!o->model_dir || !o->data_dir || !o->out_dir) {
        fprintf(stderr, "dice train: --model, --data and --out are required (see `dice help train`)\n");
        return -1;
    }
    return 0;
}

static int run_train(int argc, char **argv) {
    TrainOptions o = train_options_defaults();
    if (parse_args(argc, argv, &o)) return 2;
    Dist dist;
    DiceError err = {{0}};
    if (dist_init(&dist, &err)) {
        fprintf(stderr, "dice train: %s\n", err.msg);
        return 1;
    }
    if (dice_train(&o, &dist, &err)) {
        if (dist.n_ranks > 1) fprintf(stderr, "dice train: rank %d: %s\n", dist.rank, err.msg);
        else fprintf(stderr, "dice train: %s\n", err.msg);
        dist_abort(&dist, 1);
        dist_finalize(&dist, &err);
        return 1;
    }
    if (dist_finalize(&dist, &err)) {
        fprintf(stderr, "dice train: %s\n", err.msg);
        return 1;
    }
    return 0;
}

const DiceCommand cmd_train = {"train", "train a DICE sharpener through a frozen model (mpirun for several ranks)",
                               usage, run_train};
