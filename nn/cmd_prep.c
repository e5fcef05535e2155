// nn/cmd_prep.c — `dice prep`: COCO captions + images -> HDF5 training shards (the work is in data/prep.h).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "data/prep.h"

static const char usage[] =
    "usage: dice prep --model DIR --images DIR --captions FILE --out DIR [--size 512] [--shard-size 1024]\n"
    "                 [--seed 0] [--limit N] [--batch N] [--device cpu|cuda]\n\n"
    "Prepares DICE training data: for every image of a COCO-style caption file (captions_train2017.json as\n"
    "distributed), one caption drawn with --seed, the image centre-cropped to a square and resized to\n"
    "--size pixels exactly as the DICE authors' loader does (PIL bilinear), encoded by the model's VAE (the\n"
    "posterior mean and log-variance) and its caption tokenized, written to HDF5 shards out/shard_00000.h5, ...\n"
    "(data/shards.h documents the format; h5py reads it).\n\n"
    "  --model DIR       a diffusers pipeline folder; its tokenizer and VAE are used (a pixel-space model,\n"
    "                    without VAE, stores the images themselves in [-1, 1])\n"
    "  --images DIR      the images (COCO's train2017/); file_name entries are relative to it\n"
    "  --captions FILE   COCO caption JSON: {\"images\": [{id, file_name}], \"annotations\": [{image_id, id, caption}]}\n"
    "  --out DIR         where the shards go (created)\n"
    "  --size N          square image side in pixels (512 for SD1.5, 1024 for SDXL)\n"
    "  --shard-size N    images per shard (1024)\n"
    "  --seed N          the caption choice: image i takes caption floor(u * n) of its n captions (ascending\n"
    "                    annotation id), u = element i of the seed's uniform Philox stream (0)\n"
    "  --limit N         the first N captioned images (ascending image id) only\n"
    "  --batch N         images per VAE call (8 on cuda, 1 on cpu); the encoder keeps about 0.7 GB per 512 px\n"
    "                    image in f32 (half that in bf16 on cuda) plus one block's scratch\n"
    "  --device D        cpu (f32, the default) or cuda (bf16)\n\n"
    "Images without a caption are left out. An image that cannot be read (missing, corrupt, not .jpg/.jpeg/\n"
    ".png) is reported by name and skipped, and the summary counts them; a shard none of whose images can be\n"
    "read stops the run. Rerunning the same command resumes: finished shards are verified and kept, damaged\n"
    "ones and those of an interrupted run are written again; other settings in the same --out are refused.\n";


static int run_prep(int argc, char **argv) {
    PrepOptions o = {0};
    o.size = 512;
    o.shard_size = 1024;
    o.device = DEV_CPU;
    o.log = stderr;
    long long batch = 0, v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (i + 1 >= argc || strncmp(a, "--", 2)) {
            fprintf(stderr, "dice prep: %s '%s' (see `dice help prep`)\n",
                    strncmp(a, "--", 2) ? "unexpected argument" : "missing value after", a);
            return 2;
        }
        const char *val = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--model")) o.model_dir = val;
        else if (!strcmp(a, "--images")) o.images_dir = val;
        else if (!strcmp(a, "--captions")) o.captions_path = val;
        else if (!strcmp(a, "--out")) o.out_dir = val;
        else if (!strcmp(a, "--size")) bad = cli_int("prep", a, val, 8, 16384, &v), o.size = (int)v;
        else if (!strcmp(a, "--shard-size")) bad = cli_int("prep", a, val, 1, 1 << 24, &v), o.shard_size = (int)v;
        else if (!strcmp(a, "--batch")) bad = cli_int("prep", a, val, 1, 4096, &batch);
        else if (!strcmp(a, "--seed")) bad = cli_int("prep", a, val, 0, (long long)(~0ull >> 1), &v), o.seed = (uint64_t)v;
        else if (!strcmp(a, "--limit")) bad = cli_int("prep", a, val, 1, (long long)(~0ull >> 1), &v), o.limit = v;
        else if (!strcmp(a, "--device")) {
            if (!strcmp(val, "cpu")) o.device = DEV_CPU;
            else if (!strcmp(val, "cuda")) o.device = DEV_CUDA;
            else bad = 1, fprintf(stderr, "dice prep: --device %s: expected cpu or cuda\n", val);
        } else {
            fprintf(stderr, "dice prep: unknown option '%s' (see `dice help prep`)\n", a);
            return 2;
        }
        if (bad) return 2;
    }
    const char *missing = !o.model_dir ? "--model" : !o.images_dir ? "--images" : !o.captions_path ? "--captions"
                        : !o.out_dir ? "--out" : NULL;
    if (missing) {
        fprintf(stderr, "dice prep: %s is required (see `dice help prep`)\n", missing);
        return 2;
    }
    o.batch = batch ? (int)batch : o.device == DEV_CUDA ? 8 : 1;
    PrepSummary sum;
    DiceError err = {{0}};
    if (prep_run(&o, &sum, &err)) {
        fprintf(stderr, "dice prep: error: %s\n", err.msg);
        return 1;
    }
    return 0;
}

const DiceCommand cmd_prep = {"prep", "COCO captions + images -> VAE latents + tokens in HDF5 shards", usage,
                              run_prep};
