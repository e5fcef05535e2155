// nn/cmd_demo.c — `dice demo`: the miniature DICE reproduction on the embedded default (eval/world_demo.h).
// Argument parsing and error reporting only.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "eval/world_demo.h"

static const char usage[] =
    "usage: dice demo [options]\n"
    "\n"
    "The paper's main claim on the embedded default (assets/dice-world: a 32x32 pixel-space text-to-image model\n"
    "dice trained itself on its synthetic world of coloured shapes): trains a DICE sharpener through the frozen\n"
    "model against a CFG teacher, then samples the same prompts (half of them attribute combinations the model\n"
    "never saw) and seeds with unguided (w = 1, NFE 20), CFG (w = 5, NFE 40), naive scaling (best s of 1.5 / 3,\n"
    "NFE 20) and DICE (alpha = 1, NFE 20) sampling, and measures caption accuracy (the world's pixel analyser),\n"
    "a Frechet distance to real images (analyser features), the distance to the CFG sample from the same noise,\n"
    "NFE and wall time. Writes OUT/grid.png, OUT/table.md, OUT/alpha_sweep.png and OUT/loss.png.\n"
    "\n"
    "  --model DIR          the model (assets/dice-world)\n"
    "  --out DIR            output folder (out/demo)\n"
    "  --train-steps N      sharpener optimiser steps (400)\n"
    "  --train-images N     images in the sharpener's training shards (1024)\n"
    "  --batch N            sharpener batch (8)\n"
    "  --lr X               sharpener learning rate (2e-4, the paper's)\n"
    "  --guidance W         CFG scale of the teacher and the CFG row (5)\n"
    "  --prompts N          prompts, half seen in training and half held out (16)\n"
    "  --seeds N            images per prompt and method (8)\n"
    "  --steps N            DPM-Solver++ steps (20)\n"
    "  --real N             real images for the Frechet distance (256)\n"
    "  --seed N             data, sharpener initialisation and sampling seeds (0)\n"
    "  --noise-space-loss   the sharpener's loss on the noise the v outputs imply (the paper's loss); default:\n"
    "                       on the model's v outputs\n"
    "  --base-only          measure the model alone: unguided and CFG rows only (no sharpener, scaling grid or\n"
    "                       alpha sweep), OUT/grid.png and OUT/table.md; for choosing a base-model checkpoint\n"
    "  --quiet              no progress lines\n";


static int parse_args(int argc, char **argv, WorldDemoOptions *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n = 0;
        int rc = 0;
        if (!strcmp(a, "--quiet")) {
            o->quiet = true;
            continue;
        }
        if (!strcmp(a, "--noise-space-loss")) {
            o->noise_space_loss = true;
            continue;
        }
        if (!strcmp(a, "--base-only")) {
            o->base_only = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "dice demo: %s needs a value (see `dice help demo`)\n", a);
            return -1;
        }
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--train-steps")) rc = cli_int("demo", a, v, 1, 1LL << 40, &n), o->train_steps = n;
        else if (!strcmp(a, "--train-images")) rc = cli_int("demo", a, v, 1, 1 << 24, &n), o->n_train = (int)n;
        else if (!strcmp(a, "--batch")) rc = cli_int("demo", a, v, 1, 1 << 16, &n), o->batch = (int)n;
        else if (!strcmp(a, "--prompts")) rc = cli_int("demo", a, v, 2, 64, &n), o->n_prompts = (int)n;
        else if (!strcmp(a, "--seeds")) rc = cli_int("demo", a, v, 1, 1 << 10, &n), o->seeds_per_prompt = (int)n;
        else if (!strcmp(a, "--steps")) rc = cli_int("demo", a, v, 1, 1000, &n), o->sample_steps = (int)n;
        else if (!strcmp(a, "--real")) rc = cli_int("demo", a, v, 2, 1 << 20, &n), o->n_real = (int)n;
        else if (!strcmp(a, "--seed")) rc = cli_int("demo", a, v, 0, 1LL << 62, &n), o->seed = (uint64_t)n;
        else if (!strcmp(a, "--lr") || !strcmp(a, "--guidance")) {
            double x = 0;
            rc = cli_number("demo", a, v, &x);
            if (!rc && !(x > 0)) rc = -1, fprintf(stderr, "dice demo: %s wants a positive number, got '%s'\n", a, v);
            if (!strcmp(a, "--lr")) o->lr = x;
            else o->guidance = x;
        } else {
            fprintf(stderr, "dice demo: unknown option '%s' (see `dice help demo`)\n", a);
            return -1;
        }
        if (rc) return -1;
        i++;
    }
    return 0;
}

static int run_demo(int argc, char **argv) {
    WorldDemoOptions o;
    world_demo_defaults(&o);
    if (parse_args(argc, argv, &o)) return 2;
    DiceError err;
    if (world_demo(&o, &err)) {
        fprintf(stderr, "dice demo: %s\n", err.msg);
        return 1;
    }
    return 0;
}

const DiceCommand cmd_demo = {"demo", "the miniature DICE reproduction on the embedded default model", usage,
                              run_demo};
