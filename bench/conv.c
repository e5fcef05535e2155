// bench/conv.c — kernel lab for 2-D convolution: the custom implicit-GEMM kernels (kernels/conv_fwd.cu,
// kernels/conv_wgrad.cu) against cuDNN, the baseline, forward / data gradient / weight gradient, at the shapes
// SD1.5, SDXL and the VAE decoder use, both measured in the same run.
//
//   build/bench/conv             every shape below (on a GPU), or small CPU shapes without one
//   build/bench/conv NAME...     only the shapes whose name contains one of the arguments
//   build/bench/conv --tiles ... also time every block tile of the custom kernels (to tune CONV_TILE_AUTO)
//
// Before timing, every pass of both paths is checked against the CPU twin (OpenBLAS f32 on the same
// bf16-exact inputs): relative norm error <= 1e-2 (bf16 outputs). TFLOP/s counts 2 B Ho Wo Cout kh kw Cin
// per pass; the weight gradient's time includes the split-K reduction, cuDNN's whatever it launches.
// Target (issue 3): custom >= 0.8x cuDNN at sd15 64x64 320->320 on an H100.
#include <math.h>
#include <string.h>

#include "bench/bench.h"
#include "kernels/conv.h"

typedef struct Shape {
    const char *name;
    int B, H, W, Cin, Cout, k, stride, pad;
} Shape;

#ifdef DICE_CUDA
// Batch 2 = one CFG step of SD1.5 / SDXL; the VAE decodes one image.
static const Shape shapes[] = {
    {"sd15 64x64 320->320", 2, 64, 64, 320, 320, 3, 1, 1},
    {"sd15 32x32 640->640", 2, 32, 32, 640, 640, 3, 1, 1},
    {"sd15 16x16 1280->1280", 2, 16, 16, 1280, 1280, 3, 1, 1},
    {"sd15 8x8 1280->1280", 2, 8, 8, 1280, 1280, 3, 1, 1},
    {"sd15 64x64 960->320 (up, after skip concat)", 2, 64, 64, 960, 320, 3, 1, 1},
    {"sd15 64x64 640->320 (up)", 2, 64, 64, 640, 320, 3, 1, 1},
    {"sd15 32x32 1920->640 (up)", 2, 32, 32, 1920, 640, 3, 1, 1},
    {"sd15 16x16 2560->1280 (up)", 2, 16, 16, 2560, 1280, 3, 1, 1},
    {"sd15 64x64 960->320 1x1 (skip projection)", 2, 64, 64, 960, 320, 1, 1, 0},
    {"sd15 down 64->32 320 stride 2", 2, 64, 64, 320, 320, 3, 2, 1},
    {"sd15 down 32->16 640 stride 2", 2, 32, 32, 640, 640, 3, 2, 1},
    {"sd15 down 16->8 1280 stride 2", 2, 16, 16, 1280, 1280, 3, 2, 1},
    {"sd15 conv_in 4->320", 2, 64, 64, 4, 320, 3, 1, 1},
    {"sd15 conv_out 320->4", 2, 64, 64, 320, 4, 3, 1, 1},
    {"sdxl 128x128 320->320", 2, 128, 128, 320, 320, 3, 1, 1},
    {"sdxl 64x64 640->640", 2, 64, 64, 640, 640, 3, 1, 1},
    {"sdxl 32x32 1280->1280", 2, 32, 32, 1280, 1280, 3, 1, 1},
    {"vae 512x512 128->128", 1, 512, 512, 128, 128, 3, 1, 1},
    {"vae 256x256 256->256", 1, 256, 256, 256, 256, 3, 1, 1},
};
#endif

// Small shapes for the CPU path (no GPU).
static const Shape cpu_shapes[] = {
    {"cpu 16x16 64->64", 1, 16, 16, 64, 64, 3, 1, 1},
    {"cpu 8x8 128->128", 1, 8, 8, 128, 128, 3, 1, 1},
    {"cpu down 16->8 64 stride 2", 1, 16, 16, 64, 64, 3, 2, 1},
    {"cpu conv_in 4->64", 1, 32, 32, 4, 64, 3, 1, 1},
};

enum { PASS_FWD, PASS_DGRAD, PASS_WGRAD, PASSES };
static const char *pass_names[PASSES] = {"fwd", "dgrad", "wgrad"};

typedef struct Buffers {
    void *x, *w, *b, *y, *dy, *dx, *dw, *ws;  // device (bf16) or host (f32)
} Buffers;

typedef struct Job {
    DiceCtx *ctx;
    const ConvShape *s;
    const Buffers *d;
    int pass;
    int cudnn;      // 1: cuDNN, 0: custom
    ConvTile tile;  // custom only
    ConvCudnn *c;
    DiceError err;
} Job;

static int run_job(void *user) {
    Job *j = user;
    const ConvShape *s = j->s;
    const Buffers *d = j->d;
    if (j->ctx->device == DEV_CPU) {
        switch (j->pass) {
        case PASS_FWD: return conv2d_forward_cpu(s, DT_F32, d->y, d->x, d->w, d->b, &j->err);
        case PASS_DGRAD: return conv2d_backward_data_cpu(s, DT_F32, d->dx, d->dy, d->w, &j->err);
        default: return conv2d_backward_weight_cpu(s, DT_F32, d->dw, d->dy, d->x, &j->err);
        }
    }
#ifdef DICE_CUDA
#ifdef DICE_CUDNN
    if (j->cudnn) {
        switch (j->pass) {
        case PASS_FWD: return conv2d_forward_cudnn(j->c, s, d->y, d->x, d->w, d->b, &j->err);
        case PASS_DGRAD: return conv2d_backward_data_cudnn(j->c, s, d->dx, d->dy, d->w, &j->err);
        default: return conv2d_backward_weight_cudnn(j->c, s, d->dw, d->dy, d->x, &j->err);
        }
    }
#endif
    switch (j->pass) {
    case PASS_FWD: return conv2d_forward_cuda(s, j->tile, d->y, d->x, d->w, d->b, j->ctx->stream, &j->err);
    case PASS_DGRAD: return conv2d_backward_data_cuda(s, j->tile, d->dx, d->dy, d->w, j->ctx->stream, &j->err);
    default: return conv2d_backward_weight_cuda(s, j->tile, d->dw, d->dy, d->x, d->ws, j->ctx->stream, &j->err);
    }
#else
    return DICE_FAIL(&j->err, "no CUDA in this build");
#endif
}

static double tflops(const ConvShape *s, double ms) { return ms > 0 ? conv_flops(s) / (ms * 1e-3) / 1e12 : 0; }

// Uniform in [-1, 1) and exact in bf16, so both sides see the same inputs.
static void random_floats(float *f, size_t n, uint64_t *state) {
    bench_fill_uniform(f, n, -1, 1, state);
    bench_round_bf16(f, n);
}

// The ConvShape of a table row and the element counts of x, w and y; false (said on stdout) if it is invalid.
static bool shape_of(const Shape *sh, ConvShape *s, size_t *nx, size_t *nw, size_t *ny) {
    DiceError err;
    if (conv_shape_init(s, sh->B, sh->H, sh->W, sh->Cin, sh->Cout, sh->k, sh->k, sh->stride, sh->pad, &err)) {
        printf("%-44s %s\n", sh->name, err.msg);
        return false;
    }
    *nx = (size_t)s->B * s->H * s->W * s->Cin, *nw = (size_t)s->Cout * s->kh * s->kw * s->Cin;
    *ny = (size_t)s->B * s->Ho * s->Wo * s->Cout;
    return true;
}

static void run_cpu(const Shape *sh) {
    ConvShape s;
    size_t nx, nw, ny;
    if (!shape_of(sh, &s, &nx, &nw, &ny)) return;
    Buffers d = {malloc(nx * 4), malloc(nw * 4), malloc(s.Cout * 4), malloc(ny * 4), malloc(ny * 4), malloc(nx * 4),
                 malloc(nw * 4), NULL};
    uint64_t st = 1;
    random_floats(d.x, nx, &st), random_floats(d.w, nw, &st), random_floats(d.b, s.Cout, &st);
    random_floats(d.dy, ny, &st);
    DiceCtx ctx;
    ctx_init_cpu(&ctx);
    printf("%-44s", sh->name);
    for (int p = 0; p < PASSES; p++) {
        Job j = {&ctx, &s, &d, p, 0, CONV_TILE_AUTO, NULL, {{0}}};
        double ms = bench_median_ms(&ctx, run_job, &j, 1, 5);
        printf("  %s %7.3f ms %6.1f GFLOP/s", pass_names[p], ms, tflops(&s, ms) * 1e3);
    }
    printf("\n");
    free(d.x), free(d.w), free(d.b), free(d.y), free(d.dy), free(d.dx), free(d.dw);
}

#ifdef DICE_CUDA
// Checks every pass of one path against the CPU results; prints and returns false on a mismatch.
static bool validate(Job *j, float *const ref[PASSES], const size_t n[PASSES], const char *path) {
    void *outs[PASSES] = {j->d->y, j->d->dx, j->d->dw};
    for (int p = 0; p < PASSES; p++) {
        j->pass = p;
        cudaMemset(outs[p], 0xff, n[p] * 2);
        if (run_job(j) || ctx_sync(j->ctx, &j->err)) {
            printf("  %s %s failed: %s\n", path, pass_names[p], j->err.msg);
            return false;
        }
        double e = bench_rel_err_bf16(outs[p], ref[p], n[p]);
        if (!(e <= 1e-2)) {
            printf("  %s %s: relative error %.3g against the CPU > 1e-2; not timed\n", path, pass_names[p], e);
            return false;
        }
    }
    return true;
}

static void run_gpu(DiceCtx *ctx, ConvCudnn *cudnn, const Shape *sh, bool all_tiles) {
    ConvShape s;
    size_t nx, nw, ny;
    if (!shape_of(sh, &s, &nx, &nw, &ny)) return;
    DiceError err;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(s.Cout * 4), *dy = malloc(ny * 4);
    float *ref[PASSES] = {malloc(ny * 4), malloc(nx * 4), malloc(nw * 4)};
    const size_t n[PASSES] = {ny, nx, nw};
    uint64_t st = 1;
    random_floats(x, nx, &st), random_floats(w, nw, &st), random_floats(b, s.Cout, &st), random_floats(dy, ny, &st);
    if (conv2d_forward_cpu(&s, DT_F32, ref[0], x, w, b, &err) ||
        conv2d_backward_data_cpu(&s, DT_F32, ref[1], dy, w, &err) ||
        conv2d_backward_weight_cpu(&s, DT_F32, ref[2], dy, x, &err)) {
        printf("%-44s CPU reference failed: %s\n", sh->name, err.msg);
        return;
    }
    Buffers d = {bench_new_bf16(x, nx), bench_new_bf16(w, nw), bench_new_bf16(b, s.Cout), NULL,
                 bench_new_bf16(dy, ny), NULL, NULL, NULL};
    size_t ws = 0;
    for (ConvTile t = CONV_TILE_AUTO; t <= CONV_TILE_64x64; t++) {
        size_t need = conv2d_backward_weight_workspace(&s, t);
        ws = need > ws ? need : ws;
    }
    cudaMalloc(&d.y, ny * 2), cudaMalloc(&d.dx, nx * 2), cudaMalloc(&d.dw, nw * 2), cudaMalloc(&d.ws, ws);
    printf("%-44s %7.2f GFLOP\n", sh->name, conv_flops(&s) * 1e-9);
    Job custom = {ctx, &s, &d, 0, 0, CONV_TILE_AUTO, NULL, {{0}}};
    Job base = {ctx, &s, &d, 0, 1, CONV_TILE_AUTO, cudnn, {{0}}};
    bool custom_ok = validate(&custom, ref, n, "custom"), base_ok = cudnn && validate(&base, ref, n, "cudnn");
    for (int p = 0; p < PASSES; p++) {
        custom.pass = base.pass = p;
        double mc = custom_ok ? bench_median_ms(ctx, run_job, &custom, 3, 20) : -1;
        double mb = base_ok ? bench_median_ms(ctx, run_job, &base, 3, 20) : -1;
        printf("  %-5s custom %8.3f ms %7.1f TFLOP/s   cudnn %8.3f ms %7.1f TFLOP/s   custom/cudnn %5.2fx\n",
               pass_names[p], mc, tflops(&s, mc), mb, tflops(&s, mb), mc > 0 && mb > 0 ? mb / mc : 0.0);
        for (ConvTile t = CONV_TILE_128x128; all_tiles && custom_ok && t <= CONV_TILE_64x64; t++) {
            Job jt = custom;
            jt.tile = t;
            double mt = bench_median_ms(ctx, run_job, &jt, 3, 20);
            printf("        tile %-8s %8.3f ms %7.1f TFLOP/s\n", conv_tile_name(t), mt, tflops(&s, mt));
        }
    }
    cudaFree(d.x), cudaFree(d.w), cudaFree(d.b), cudaFree(d.y), cudaFree(d.dy), cudaFree(d.dx), cudaFree(d.dw);
    cudaFree(d.ws);
    free(x), free(w), free(b), free(dy), free(ref[0]), free(ref[1]), free(ref[2]);
}
#endif

int main(int argc, char **argv) {
    DiceCtx ctx;
    bench_pick_context(&ctx, "conv");
    bool all_tiles = false;
    for (int i = 1; i < argc; i++) all_tiles |= !strcmp(argv[i], "--tiles");
    if (ctx.device == DEV_CPU) {
        printf("CPU twin (im2col + OpenBLAS, f32); the custom kernels and cuDNN need a GPU\n");
        for (size_t i = 0; i < sizeof cpu_shapes / sizeof cpu_shapes[0]; i++)
            if (bench_selected(cpu_shapes[i].name, argc, argv)) run_cpu(&cpu_shapes[i]);
        return 0;
    }
#ifdef DICE_CUDA
    ConvCudnn *cudnn = NULL;
#ifdef DICE_CUDNN
    DiceError err;
    if (conv_cudnn_create(&cudnn, ctx.stream, &err)) printf("cuDNN unavailable: %s\n", err.msg);
#else
    printf("this build has no cuDNN: the baseline column stays empty\n");
#endif
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (bench_selected(shapes[i].name, argc, argv)) run_gpu(&ctx, cudnn, &shapes[i], all_tiles);
#ifdef DICE_CUDNN
    conv_cudnn_destroy(cudnn);
#endif
    ctx_free(&ctx);
#endif
    return 0;
}
