// nn/cmd_train_base.c — `dice train-base`: training the text encoder and UNet of a small pixel-space model
// from scratch on the synthetic world (train/base_train.h). Argument parsing and error reporting only.
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "train/base_train.h"

static const char usage[] =
    "usage: dice train-base --model DIR --out DIR [options]\n"
    "\n"
    "Trains a pixel-space text-to-image model (CLIP text encoder + UNet, configs and tokenizer from --model)\n"
    "from scratch on the synthetic two-object world (data/world.h), the way the embedded default\n"
    "assets/dice-world was made: x0 = the world's 32x32 images in [-1, 1], captions dropped to \"\" with\n"
    "--uncond-prob, t ~ U{0..T-1}, loss = mean squared error of the predicted noise; AdamW on every linear and\n"
    "convolution weight and bias, EMA of the weights. On CUDA the networks run in bf16 on copies of f32 master\n"
    "weights (AdamW and the EMA in f32).\n"
    "\n"
    "  --model DIR          pipeline folder: model_index.json, scheduler/, tokenizer/, text_encoder/config.json,\n"
    "                       unet/config.json; its weights files, when present, are the starting point,\n"
    "                       otherwise the weights start from PyTorch's default initialisation (--seed)\n"
    "  --from-scratch       ignore --model's weights files: start from the default initialisation\n"
    "  --out DIR            the trained pipeline folder (configs copied, EMA weights written), loss.csv,\n"
    "                       loss.png, train_state.safetensors (created)\n"
    "  --steps N            optimiser steps (2000)\n"
    "  --batch N            images per step (16)\n"
    "  --lr X               AdamW learning rate, constant; betas 0.9/0.999, eps 1e-8 (1e-3)\n"
    "  --weight-decay X     AdamW weight decay (1e-2)\n"
    "  --uncond-prob P      caption dropout to the empty prompt (0.15)\n"
    "  --caption-noise Q    probability that each attribute of a training caption (background, colours,\n"
    "                       shapes, relation) is replaced by another, like the noisy captions of web images;\n"
    "                       a faithful model then follows a caption only as often as the data do (0)\n"
    "  --ema X              EMA decay of the saved weights, 0 for none (0.999)\n"
    "  --save-every N       write the folder's weights and the training state every N steps, 0: at the end (250)\n"
    "  --keep-every N       also keep the weights of every N-th step as OUT/step-NNNNNN/, a pipeline folder\n"
    "                       of its own (for choosing a checkpoint afterwards), 0: none (0)\n"
    "  --save-dtype f16|bf16|f32   dtype of the saved weights (f16)\n"
    "  --seed N             initialisation, data order, caption dropout, timesteps and noise (0)\n"
    "  --device cpu|cuda    where to train (cpu)\n"
    "  --resume             continue from --out's train_state.safetensors up to --steps (same --seed, --batch)\n"
    "  --quiet              no progress lines\n";

static int parse_i64(const char *flag, const char *text, int64_t min, int64_t *out) {
    long long v;
    if (cli_int("train-base", flag, text, min, LLONG_MAX, &v)) return -1;
    *out = v;
    return 0;
}

static int parse_f64(const char *flag, const char *text, double *out) {
    return cli_number("train-base", flag, text, out);
}

static int parse_args(int argc, char **argv, BaseTrainOptions *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        int rc = 0;
        if (!strcmp(a, "--resume")) {
            o->resume = true;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            o->quiet = true;
            continue;
        }
        if (!strcmp(a, "--from-scratch")) {
            o->from_scratch = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "dice train-base: %s needs a value (see `dice help train-base`)\n", a);
            return -1;
        }
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--steps")) rc = parse_i64(a, v, 0, &o->steps);
        else if (!strcmp(a, "--save-every")) rc = parse_i64(a, v, 0, &o->save_every);
        else if (!strcmp(a, "--keep-every")) rc = parse_i64(a, v, 0, &o->keep_every);
        else if (!strcmp(a, "--batch")) {
            rc = parse_i64(a, v, 1, &n);
            o->batch = n < (1 << 16) ? (int)n : 0;  // 0 is refused by the trainer's checks
        } else if (!strcmp(a, "--seed")) {
            rc = parse_i64(a, v, 0, &n);
            o->seed = (uint64_t)n;
        } else if (!strcmp(a, "--lr")) rc = parse_f64(a, v, &o->lr);
        else if (!strcmp(a, "--weight-decay")) rc = parse_f64(a, v, &o->weight_decay);
        else if (!strcmp(a, "--uncond-prob")) rc = parse_f64(a, v, &o->uncond_prob);
        else if (!strcmp(a, "--caption-noise")) rc = parse_f64(a, v, &o->caption_noise);
        else if (!strcmp(a, "--ema")) rc = parse_f64(a, v, &o->ema_decay);
        else if (!strcmp(a, "--save-dtype")) {
            if (!strcmp(v, "f16")) o->save_dtype = DT_F16;
            else if (!strcmp(v, "bf16")) o->save_dtype = DT_BF16;
            else if (!strcmp(v, "f32")) o->save_dtype = DT_F32;
            else rc = -1, fprintf(stderr, "dice train-base: --save-dtype is f16, bf16 or f32, got '%s'\n", v);
        } else if (!strcmp(a, "--device")) {
            if (!strcmp(v, "cpu")) o->device = DEV_CPU;
            else if (!strcmp(v, "cuda")) o->device = DEV_CUDA;
            else rc = -1, fprintf(stderr, "dice train-base: --device is cpu or cuda, got '%s'\n", v);
        } else {
            fprintf(stderr, "dice train-base: unknown option '%s' (see `dice help train-base`)\n", a);
            return -1;
        }
        if (rc) return -1;
        i++;
    }
    if (!o->model || !o->out) {
        fprintf(stderr, "dice train-base: --model and --out are required (see `dice help train-base`)\n");
        return -1;
    }
    return 0;
}

static int run(int argc, char **argv) {
    BaseTrainOptions o;
    base_train_defaults(&o);
    if (parse_args(argc, argv, &o)) return 2;
    DiceError err;
    if (base_train(&o, &err)) {
        fprintf(stderr, "dice train-base: %s\n", err.msg);
        return 1;
    }
    if (!o.quiet) fprintf(stderr, "dice train-base: the trained model is in %s\n", o.out);
    return 0;
}

const DiceCommand cmd_train_base = {"train-base", "train a small pixel-space model from scratch on the synthetic world",
                                    usage, run};
