// nn/cmd_sample.c — `dice sample`: text to PNG images with a Stable Diffusion 1.x model, unguided, CFG, naive
// embedding scaling or DICE (sample/pipeline.h), with A1111-style parameters in every PNG, a progress bar on
// stderr and a summary line on stdout.
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "file_util.h"
#include "data/image.h"
#include "sample_args.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct Progress {
    double start;       // of the current prompt's denoising
    int prompt, n_prompts;
} Progress;

static void progress_bar(void *user, int step, int steps) {
    const Progress *p = user;
    enum { WIDTH = 30 };
    int done = step * WIDTH / steps;
    double dt = now_s() - p->start;
    char bar[WIDTH + 1];
    for (int i = 0; i < WIDTH; i++) bar[i] = i < done ? '#' : '.';
    bar[WIDTH] = 0;
    fprintf(stderr, "\rprompt %d/%d [%s] %d/%d %.2f it/s", p->prompt + 1, p->n_prompts, bar, step, steps,
            dt > 0 ? step / dt : 0.0);
    if (step == steps) fputc('\n', stderr);
    fflush(stderr);
}

// The first free image number of an output folder: one past the largest NNNNN of its NNNNN-*.png files.
static long next_index(const char *dir) {
    long next = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (end != e->d_name && *end == '-' && strstr(end, ".png") && v >= next) next = v + 1;
    }
    closedir(d);
    return next;
}

static int run_sample(int argc, char **argv) {
    SampleArgs a;
    int parsed = sample_args_parse(&a, argc, argv, "sample", false);
    if (parsed == 1) {
        fputs(cmd_sample.usage, stdout);
        return 0;
    }
    if (parsed) return parsed;
    if (!a.has_seed) printf("dice sample: seed %llu (random)\n", (unsigned long long)a.seed);
    fflush(stdout);
    DiceError err = {{0}};
    char **prompts = NULL;
    int n_prompts = 0;
    SampleSetup s;
    memset(&s, 0, sizeof s);
    int rc = sample_args_prompts(&a, &prompts, &n_prompts, &err);
    if (!rc) rc = dice_make_dirs(a.out, &err);
    if (!rc) rc = sample_setup_open(&s, &a, &err);
    int H = 0, W = 0;
    if (!rc) rc = pipeline_image_size(&s.model, &s.opts, &H, &W, &err);
    int B = a.batch;
    size_t pix = (size_t)H * W * 3;
    uint8_t *pixels = rc ? NULL : malloc(pix * B);
    const char **batch_prompts = malloc(sizeof *batch_prompts * B), **negs = malloc(sizeof *negs * B);
    uint64_t *seeds = malloc(sizeof *seeds * B);
    if (!rc && !(pixels && batch_prompts && negs && seeds)) rc = DICE_FAIL(&err, "out of host memory");
    Progress prog = {0, 0, n_prompts};
    s.opts.progress = progress_bar;
    s.opts.progress_user = &prog;
    double t0 = now_s(), nfe = 0;
    long index = rc ? 0 : next_index(a.out), written = 0;
    for (int p = 0; p < n_prompts && !rc; p++) {
        for (int j = 0; j < B; j++) batch_prompts[j] = prompts[p], negs[j] = a.negative, seeds[j] = a.seed + (uint64_t)j;
        PipelineRequest r = {B, batch_prompts, negs, seeds, NULL, NULL, NULL, pixels};
        PipelineStats st;
        prog.prompt = p;
        prog.start = now_s();
        rc = pipeline_generate(&s.model, &s.opts, &r, &st, &err);
        nfe = st.nfe;
        for (int j = 0; j < B && !rc; j++) {
            char path[4200], params[8192];
            snprintf(path, sizeof path, "%s/%05ld-%llu.png", a.out, index++, (unsigned long long)seeds[j]);
            sample_parameters(&a, &s, prompts[p], seeds[j], W, H, params, sizeof params);
            Image img = {W, H, pixels + pix * j};
            const char *keys[1] = {"parameters"}, *values[1] = {params};
            rc = image_write_png(path, &img, keys, values, 1, &err);
            written += !rc;
        }
    }
    if (!rc)
        printf("dice sample: %ld images, NFE %g per image, %.2f s -> %s\n", written, nfe, now_s() - t0, a.out);
    else
        fprintf(stderr, "dice sample: error: %s\n", err.msg);
    free(pixels);
    free(batch_prompts);
    free(negs);
    free(seeds);
    sample_args_free_prompts(prompts, n_prompts);
    sample_setup_close(&s);
    return rc ? 1 : 0;
}

const DiceCommand cmd_sample = {
    "sample", "text to PNG images (unguided, CFG, embedding scaling or DICE)",
    "usage: dice sample --model DIR|FILE [--config DIR] --prompt TEXT | --prompts FILE --out DIR [options]\n\n"
    "Generates images with a Stable Diffusion 1.x model as diffusers' StableDiffusionPipeline does (same noise for\n"
    "the same seed, DPM-Solver++ 2M by default) and writes DIR/NNNNN-SEED.png, numbered on from the folder's\n"
    "highest NNNNN. Each PNG holds a `parameters` text chunk in the A1111 layout (prompt, `Negative prompt:` line,\n"
    "`Steps: 20, Sampler: DPM++ 2M, CFG scale: 5, Seed: 42, Size: 512x512, Model hash: ..., Model: ...`, plus\n"
    "`Embedding scale`, `DICE alpha`, `DICE beta`, `Sharpener` in those modes).\n\n"
    "options:\n" SAMPLE_FLAGS_HELP
    "  --out DIR               output folder (created if missing)\n\n"
    "Modes: unguided (--guidance 1, NFE = steps), CFG (--guidance W, NFE = 2 steps in one batch), naive scaling\n"
    "(--scale-embeddings S), DICE (--sharpener FILE [--alpha A], NFE = steps; a sharpener whose metadata names\n"
    "another base model draws a warning). A safety checker listed by the pipeline is not run.\n"
    "Output: a progress bar with it/s on stderr, then one line on stdout: images, NFE per image, seconds.\n"
    "Exit status: 0 on success, 1 on an error (one line on stderr), 2 on a usage error.\n",
    run_sample};
