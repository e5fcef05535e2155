// nn/sample_args.c — the sampling flags of `dice sample` and `dice run sample` (nn/sample_args.h).
#include "sample_args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/safetensors.h"

static int usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dice %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see `dice help %s`)\n", cmd);
    va_end(ap);
    return 2;
}

static bool parse_long(const char *text, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *text, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

// A random 32-bit seed (A1111's range) from the clock and the address space layout.
static uint64_t random_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t z = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (z ^ (z >> 31)) & 0xffffffffu;
}

int sample_args_parse(SampleArgs *a, int argc, char **argv, const char *cmd, bool allow_in) {
    memset(a, 0, sizeof *a);
    a->steps = 20, a->batch = 1, a->guidance = 1, a->scale = 1, a->alpha = 1;
    a->sampler = SCHED_DPMSOLVER_MULTISTEP, a->sampler_name = "dpm++2m", a->device = "cpu";
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) return 1;
        if (strncmp(f, "--", 2)) return usage(cmd, "unexpected argument '%s'", f);
        if (i + 1 >= argc) return usage(cmd, "%s needs a value", f);
        const char *v = argv[++i];
        long long n;
        bool ok = true;
        if (!strcmp(f, "--model")) a->model = v;
        else if (!strcmp(f, "--config")) a->config = v;
        else if (!strcmp(f, "--prompt")) a->prompt = v;
        else if (!strcmp(f, "--prompts")) a->prompts_file = v;
        else if (!strcmp(f, "--negative-prompt")) a->negative = v;
        else if (!strcmp(f, "--sharpener")) a->sharpener = v;
        else if (!strcmp(f, "--device")) a->device = v, ok = !strcmp(v, "cpu") || !strcmp(v, "cuda");
        else if (!strcmp(f, "--out")) a->out = v;
        else if (!strcmp(f, "--in") && allow_in) a->in = v;
        else if (!strcmp(f, "--sampler")) a->sampler_name = v, ok = !scheduler_kind_from_name(v, &a->sampler);
        else if (!strcmp(f, "--steps")) ok = parse_long(v, 1, 1000, &n), a->steps = (int)n;
        else if (!strcmp(f, "--height")) ok = parse_long(v, 8, 16384, &n), a->height = (int)n;
        else if (!strcmp(f, "--width")) ok = parse_long(v, 8, 16384, &n), a->width = (int)n;
        else if (!strcmp(f, "--batch")) ok = parse_long(v, 1, 1024, &n), a->batch = (int)n;
        else if (!strcmp(f, "--seed")) ok = parse_long(v, 0, INT64_MAX, &n), a->seed = (uint64_t)n, a->has_seed = true;
        else if (!strcmp(f, "--guidance")) ok = parse_double(v, &a->guidance);
        else if (!strcmp(f, "--scale-embeddings")) ok = parse_double(v, &a->scale), a->has_scale = true;
        else if (!strcmp(f, "--alpha")) ok = parse_double(v, &a->alpha), a->has_alpha = true;
        else if (!strcmp(f, "--beta")) ok = parse_double(v, &a->beta), a->has_beta = true;
        else return usage(cmd, "unknown option '%s'", f);
        if (!ok) return usage(cmd, "bad value '%s' for %s", v, f);
    }
    if (!a->model) return usage(cmd, "--model DIR is required");
    if (!a->out) return usage(cmd, "--out is required");
    if (!!a->prompt == !!a->prompts_file) return usage(cmd, "give exactly one of --prompt and --prompts FILE");
    if ((a->has_alpha || a->has_beta) && !a->sharpener) return usage(cmd, "--alpha and --beta need --sharpener");
    if (a->has_beta && !a->negative) return usage(cmd, "--beta needs --negative-prompt");
    if (a->has_scale && a->sharpener)
        return usage(cmd, "--scale-embeddings and --sharpener are separate modes: choose one");
    if (a->negative && a->guidance == 1.0 && !a->sharpener)
        return usage(cmd, "--negative-prompt needs CFG (--guidance W != 1) or DICE (--sharpener); "
                                "with --guidance 1 it would have no effect");
    if (!a->has_seed) a->seed = random_seed();
    return 0;
}

int sample_args_prompts(const SampleArgs *a, char ***list, int *n, DiceError *err) {
    *list = NULL;
    *n = 0;
    if (a->prompt) {
        *list = malloc(sizeof **list);
        DICE_CHECK(err, *list && ((*list)[0] = strdup(a->prompt)), "out of host memory");
        *n = 1;
        return 0;
    }
    FILE *f = fopen(a->prompts_file, "r");
    DICE_CHECK(err, f, "%s: cannot open the prompts file: %s", a->prompts_file, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        char **grown = realloc(*list, (size_t)(*n + 1) * sizeof *grown);
        if (!grown || !(grown[*n] = strdup(line))) rc = DICE_FAIL(err, "out of host memory");
        if (grown) *list = grown;
        if (!rc) (*n)++;
    }
    free(line);
    fclose(f);
    if (!rc && *n == 0) rc = DICE_FAIL(err, "%s: no prompts in the file (one prompt a line)", a->prompts_file);
    if (rc) sample_args_free_prompts(*list, *n), *list = NULL, *n = 0;
    return rc;
}

void sample_args_free_prompts(char **list, int n) {
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

// Warns when the sharpener's metadata names another base model than the one sampled with.
static void check_base_model(const SampleArgs *a, const SdModel *m) {
    StFile f;
    DiceError err = {{0}};
    if (st_open(&f, a->sharpener, &err)) return;  // sharpener_load has already read it; cannot fail here
    const char *base = st_meta(&f, "base_model");
    if (base && strcmp(base, m->name) && strcmp(base, m->path) && strcmp(base, m->hash)) {
        char name[200];
        st_printable(name, sizeof name, base);
        fprintf(stderr, "dice: warning: sharpener %s was trained on base model '%s'; sampling with '%s' (a sharpener "
                        "transfers between SD1.5 variants, but check the result)\n", a->sharpener, name, m->name);
    }
    st_close(&f);
}

int sample_setup_open(SampleSetup *s, const SampleArgs *a, DiceError *err) {
    memset(s, 0, sizeof *s);
    if (!strcmp(a->device, "cuda")) {
        DICE_TRY(ctx_init_cuda(&s->ctx, 0, err));
        s->ctx_cuda = true;
    } else {
        ctx_init_cpu(&s->ctx);
    }
    DICE_TRY(sd_model_open(&s->model, a->model, a->config, &s->ctx, SD_LOAD_ALL, err));
    s->model_open = true;
    s->opts = pipeline_defaults();
    s->opts.sampler = a->sampler;
    s->opts.steps = a->steps;
    s->opts.guidance = a->guidance;
    s->opts.height = a->height;
    s->opts.width = a->width;
    s->opts.embed_scale = a->scale;
    s->opts.alpha = a->alpha;
    s->opts.beta = a->beta;
    if (a->sharpener) {
        DICE_TRY(arena_init(&s->persistent, "sharpener", s->ctx.device, (size_t)16 << 20, 0, err));
        DICE_TRY(sharpener_load(&s->sharpener, a->sharpener, &s->persistent, &s->ctx, err));
        s->has_sharpener = true;
        s->opts.sharpener = &s->sharpener;
        check_base_model(a, &s->model);
    }
    return 0;
}

void sample_setup_close(SampleSetup *s) {
    if (s->model_open) sd_model_close(&s->model);
    arena_free(&s->persistent);
    if (s->ctx_cuda) ctx_free(&s->ctx);
    memset(s, 0, sizeof *s);
}

static const char *sampler_label(SchedulerKind k) {
    return k == SCHED_DPMSOLVER_MULTISTEP ? "DPM++ 2M" : k == SCHED_EULER_DISCRETE ? "Euler" : "DDIM";
}

void sample_parameters(const SampleArgs *a, const SampleSetup *s, const char *prompt, uint64_t seed, int width,
                       int height, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "%s\n", prompt);
    if (a->negative && o < cap) o += (size_t)snprintf(buf + o, cap - o, "Negative prompt: %s\n", a->negative);
    if (o < cap)
        o += (size_t)snprintf(buf + o, cap - o,
                              "Steps: %d, Sampler: %s, CFG scale: %g, Seed: %llu, Size: %dx%d, Model hash: %s, "
                              "Model: %s", a->steps, sampler_label(a->sampler), a->guidance,
                              (unsigned long long)seed, width, height, s->model.hash, s->model.name);
    if (a->has_scale && o < cap) o += (size_t)snprintf(buf + o, cap - o, ", Embedding scale: %g", a->scale);
    if (a->sharpener && o < cap) {
        const char *base = strrchr(a->sharpener, '/');
        o += (size_t)snprintf(buf + o, cap - o, ", DICE alpha: %g", a->alpha);
        if (a->has_beta && o < cap) o += (size_t)snprintf(buf + o, cap - o, ", DICE beta: %g", a->beta);
        if (o < cap) o += (size_t)snprintf(buf + o, cap - o, ", Sharpener: %s", base ? base + 1 : a->sharpener);
    }
    if (o < cap) snprintf(buf + o, cap - o, ", Version: dice");
}
