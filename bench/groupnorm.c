// bench/groupnorm.c — kernel lab for group norm (kernels/norm.cu): forward with the fused SiLU and backward
// (dx), bf16 NHWC at the shapes of SD1.5's UNet, in GB/s effective next to a device-to-device copy of the
// same bytes measured in the same run.
//
//   build/bench/groupnorm           every shape below (on a GPU), or small CPU shapes without one
//   build/bench/groupnorm NAME...   only the shapes whose name contains one of the arguments
//
// Effective bytes: forward reads x and writes y (2 tensors), backward reads x and dy and writes dx (3); the
// statistics, partials and affine weights are not counted. Baseline: cudaMemcpyAsync device-to-device moving
// the same bytes (a copy of N bytes reads N and writes N): the ceiling of any bandwidth-bound kernel. cuDNN
// has no NHWC group norm, so there is no library baseline. Inputs rotate over enough copies (>= 256 MB in
// all) that every run reads them from DRAM, not from the previous run's L2 (H100: 50 MB), and each timed
// call runs REPS launches back to back, so the per-launch figure is not a CPU launch latency.
// Before timing, each shape's forward (y) and backward (dx) are checked against the CPU twin in f32 on the
// same bf16 inputs: relative norm error <= 5e-3 (one bf16 rounding of the output).
// Target (issue 3): >= 2.4 TB/s effective on an H100.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bench/bench.h"
#include "kernels/norm.h"

typedef struct Shape {
    const char *name;
    int B, H, W, C, G;
} Shape;

// SD1.5 UNet, batch 2 (one CFG step), 32 groups, eps 1e-5, SiLU after the norm (ResnetBlock2D).
static const Shape shapes[] = {
    {"sd15 64x64x320", 2, 64, 64, 320, 32},
    {"sd15 32x32x640", 2, 32, 32, 640, 32},
    {"sd15 16x16x1280", 2, 16, 16, 1280, 32},
    {"sd15 8x8x1280", 2, 8, 8, 1280, 32},
    {"sd15 64x64x960 (up, after skip concat)", 2, 64, 64, 960, 32},
    {"sd15 32x32x1920 (up, after skip concat)", 2, 32, 32, 1920, 32},
};

// Small shapes for the CPU path (no GPU).
static const Shape cpu_shapes[] = {
    {"cpu 32x32x64", 1, 32, 32, 64, 32},
    {"cpu 16x16x128", 1, 16, 16, 128, 32},
    {"cpu 8x8x256", 1, 8, 8, 256, 32},
};

enum { WARMUP = 3, ITERS = 15, REPS = 20 };
static const double EPS = 1e-5;

// ---------------------------------------------------------------- CPU path
typedef struct CpuJob {
    const Shape *s;
    float *x, *y, *dy, *dx, *mean, *rstd, *gamma, *beta, *copy_dst;
    size_t copy_bytes;
    int pass;  // 0 forward, 1 backward, 2 memcpy
    DiceError err;
} CpuJob;

static int run_cpu(void *user) {
    CpuJob *j = user;
    const Shape *s = j->s;
    int64_t S = (int64_t)s->H * s->W;
    if (j->pass == 0)
        return group_norm_forward_cpu(j->y, j->mean, j->rstd, j->x, j->gamma, j->beta, s->B, S, s->C, s->G, EPS, true,
                                      DT_F32, &j->err);
    if (j->pass == 1)
        return group_norm_backward_cpu(j->dx, j->dy, j->x, j->mean, j->rstd, j->gamma, j->beta, s->B, S, s->C, s->G,
                                       true, DT_F32, &j->err);
    memcpy(j->copy_dst, j->x, j->copy_bytes);
    return 0;
}

static int bench_cpu(DiceCtx *ctx, const Shape *s) {
    size_t n = (size_t)s->B * s->H * s->W * s->C;
    int64_t S = (int64_t)s->H * s->W;
    float *buf = malloc((6 * n + 2 * (size_t)s->C + 2 * (size_t)s->B * s->G) * sizeof(float));
    double *d = malloc((4 * n + 2 * (size_t)s->C + 2 * (size_t)s->B * s->G) * sizeof(double));
    if (!buf || !d) {
        fprintf(stderr, "out of memory\n");
        free(buf);
        free(d);
        return -1;
    }
    CpuJob j = {.s = s, .x = buf, .y = buf + n, .dy = buf + 2 * n, .dx = buf + 3 * n, .copy_dst = buf + 4 * n};
    j.gamma = buf + 6 * n;
    j.beta = j.gamma + s->C;
    j.mean = j.beta + s->C;
    j.rstd = j.mean + (size_t)s->B * s->G;
    uint64_t rng = 42;
    bench_fill_uniform(j.x, n, -2, 3, &rng);
    bench_fill_uniform(j.dy, n, -1, 1, &rng);
    bench_fill_uniform(j.gamma, (size_t)s->C, 0.5f, 1.5f, &rng);
    bench_fill_uniform(j.beta, (size_t)s->C, -0.5f, 0.5f, &rng);
    // Check: the f32 twin against the f64 twin.
    double *dxx = d, *dyy = d + n, *ddy = d + 2 * n, *ddx = d + 3 * n, *dg = d + 4 * n, *db = dg + s->C;
    double *dm = db + s->C, *dr = dm + (size_t)s->B * s->G;
    for (size_t i = 0; i < n; i++) dxx[i] = j.x[i], ddy[i] = j.dy[i];
    for (int c = 0; c < s->C; c++) dg[c] = j.gamma[c], db[c] = j.beta[c];
    DiceError err = {{0}};
    int rc = group_norm_forward_cpu(dyy, dm, dr, dxx, dg, db, s->B, S, s->C, s->G, EPS, true, DT_F64, &err);
    if (!rc) rc = group_norm_backward_cpu(ddx, ddy, dxx, dm, dr, dg, db, s->B, S, s->C, s->G, true, DT_F64, &err);
    j.pass = 0;
    if (!rc) rc = run_cpu(&j);
    j.pass = 1;
    if (!rc) rc = run_cpu(&j);
    if (rc) {
        fprintf(stderr, "%s: %s\n", s->name, err.msg[0] ? err.msg : j.err.msg);
        free(buf);
        free(d);
        return -1;
    }
    float *ref = buf + 4 * n;  // scratch (also the memcpy destination later)
    for (size_t i = 0; i < n; i++) ref[i] = (float)dyy[i];
    double ey = bench_rel_err(j.y, ref, n);
    for (size_t i = 0; i < n; i++) ref[i] = (float)ddx[i];
    double ed = bench_rel_err(j.dx, ref, n);
    printf("%-42s check f32 vs f64: y %.2g, dx %.2g\n", s->name, ey, ed);
    const char *names[2] = {"fwd+silu", "bwd"};
    for (int pass = 0; pass < 2; pass++) {
        size_t bytes = (pass ? 3 : 2) * n * sizeof(float);
        j.pass = pass;
        double ms = bench_median_ms(ctx, run_cpu, &j, 1, 5);
        j.pass = 2;
        j.copy_bytes = bytes / 2;
        double copy_ms = bench_median_ms(ctx, run_cpu, &j, 1, 5);
        printf("  %-8s %9.3f ms  %7.1f GB/s effective   memcpy %7.1f GB/s\n", names[pass], ms, bytes / ms * 1e-6,
               bytes / copy_ms * 1e-6);
    }
    free(buf);
    free(d);
    return 0;
}

// ---------------------------------------------------------------- CUDA path
#ifdef DICE_CUDA
typedef struct GpuJob {
    const Shape *s;
    unsigned char *sets;  // nrot sets of [x | dy | y | dx], each tensor `nbytes` of bf16
    size_t nbytes;
    int nrot, next;
    void *gamma, *beta, *ws;
    float *mean, *rstd;
    int pass;  // 0 forward, 1 backward, 2 copy of 2 nbytes (forward's traffic), 3 copy of 3 nbytes (backward's)
    cudaStream_t stream;
    DiceError err;
} GpuJob;

static int run_gpu(void *user) {
    GpuJob *j = user;
    const Shape *s = j->s;
    int64_t S = (int64_t)s->H * s->W;
    for (int r = 0; r < REPS; r++) {
        unsigned char *set = j->sets + (size_t)(j->next++ % j->nrot) * 4 * j->nbytes;
        void *x = set, *dy = set + j->nbytes, *y = set + 2 * j->nbytes, *dx = set + 3 * j->nbytes;
        int rc = 0;
        switch (j->pass) {
        case 0:
            rc = group_norm_forward_cuda(y, j->mean, j->rstd, x, j->gamma, j->beta, s->B, S, s->C, s->G, EPS, true,
                                         DT_BF16, j->ws, j->stream, &j->err);
            break;
        case 1:
            rc = group_norm_backward_cuda(dx, dy, x, j->mean, j->rstd, j->gamma, j->beta, s->B, S, s->C, s->G, true,
                                          DT_BF16, j->ws, j->stream, &j->err);
            break;
        default: {
            size_t bytes = (j->pass == 2 ? 2 : 3) * j->nbytes / 2;  // moved: twice that
            CUDA_TRY(&j->err, cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, j->stream));
        }
        }
        if (rc) return rc;
    }
    return 0;
}

static int bench_gpu(DiceCtx *ctx, const Shape *s) {
    size_t n = (size_t)s->B * s->H * s->W * s->C, nbytes = n * 2;
    int64_t S = (int64_t)s->H * s->W;
    GpuJob j = {.s = s, .nbytes = nbytes, .stream = (cudaStream_t)ctx->stream};
    size_t set_bytes = 4 * nbytes;
    j.nrot = bench_rotations(set_bytes);
    size_t ws_bytes = group_norm_cuda_workspace_bytes(s->B, S, s->C, s->G, DT_BF16);
    float *h = malloc((5 * n + 2 * (size_t)s->C + 2 * (size_t)s->B * s->G) * sizeof(float));
    uint16_t *hb = malloc(2 * n * sizeof(uint16_t) + 2 * (size_t)s->C * sizeof(uint16_t));
    if (!h || !hb) {
        fprintf(stderr, "out of host memory\n");
        free(h);
        free(hb);
        return -1;
    }
    float *x = h, *dy = h + n, *y_ref = h + 2 * n, *dx_ref = h + 3 * n, *back = h + 4 * n;
    float *gamma = h + 5 * n, *beta = gamma + s->C, *mean = beta + s->C, *rstd = mean + (size_t)s->B * s->G;
    uint64_t rng = 42;
    bench_fill_uniform(x, n, -2, 3, &rng);
    bench_fill_uniform(dy, n, -1, 1, &rng);
    bench_fill_uniform(gamma, (size_t)s->C, 0.5f, 1.5f, &rng);
    bench_fill_uniform(beta, (size_t)s->C, -0.5f, 0.5f, &rng);
    // Round every input to bf16 (what the device holds), keep the f32 values for the CPU reference.
    uint16_t *xb = hb, *dyb = hb + n, *gb = hb + 2 * n, *bb = gb + s->C;
    for (size_t i = 0; i < n; i++) {
        xb[i] = dice_f32_to_bf16(x[i]), x[i] = dice_bf16_to_f32(xb[i]);
        dyb[i] = dice_f32_to_bf16(dy[i]), dy[i] = dice_bf16_to_f32(dyb[i]);
    }
    for (int c = 0; c < s->C; c++) {
        gb[c] = dice_f32_to_bf16(gamma[c]), gamma[c] = dice_bf16_to_f32(gb[c]);
        bb[c] = dice_f32_to_bf16(beta[c]), beta[c] = dice_bf16_to_f32(bb[c]);
    }
    DiceError *err = &j.err;
    int rc = -1;
    j.sets = NULL;
    j.gamma = j.beta = j.ws = NULL;
    j.mean = j.rstd = NULL;
#define GPU_TRY(call)                                                   \
    do {                                                                \
        cudaError_t e_ = (call);                                        \
        if (e_ != cudaSuccess) {                                        \
            DICE_FAIL(err, "%s: %s", #call, cudaGetErrorString(e_));    \
            goto done;                                                  \
        }                                                               \
    } while (0)
    GPU_TRY(cudaMalloc((void **)&j.sets, set_bytes * j.nrot));
    GPU_TRY(cudaMalloc(&j.gamma, 2 * (size_t)s->C * sizeof(uint16_t)));
    j.beta = (uint16_t *)j.gamma + s->C;
    GPU_TRY(cudaMalloc((void **)&j.mean, 2 * (size_t)s->B * s->G * sizeof(float)));
    j.rstd = j.mean + (size_t)s->B * s->G;
    GPU_TRY(cudaMalloc(&j.ws, ws_bytes));
    GPU_TRY(cudaMemcpy(j.gamma, gb, 2 * (size_t)s->C * sizeof(uint16_t), cudaMemcpyHostToDevice));
    for (int r = 0; r < j.nrot; r++) {
        GPU_TRY(cudaMemcpy(j.sets + r * set_bytes, xb, nbytes, cudaMemcpyHostToDevice));
        GPU_TRY(cudaMemcpy(j.sets + r * set_bytes + nbytes, dyb, nbytes, cudaMemcpyHostToDevice));
    }
    // Check set 0 against the CPU twin (f32, same inputs).
    GPU_TRY(cudaMemset(j.sets + 2 * nbytes, 0xff, 2 * nbytes));
    if (group_norm_forward_cpu(y_ref, mean, rstd, x, gamma, beta, s->B, S, s->C, s->G, EPS, true, DT_F32, err) ||
        group_norm_backward_cpu(dx_ref, dy, x, mean, rstd, gamma, beta, s->B, S, s->C, s->G, true, DT_F32, err))
        goto done;
    j.nrot = 1;
    j.pass = 0;
    if (run_gpu(&j)) goto done;
    j.pass = 1;
    if (run_gpu(&j)) goto done;
    j.nrot = bench_rotations(set_bytes);
    GPU_TRY(cudaStreamSynchronize(j.stream));
    double errs[2];
    for (int k = 0; k < 2; k++) {
        GPU_TRY(cudaMemcpy(xb, j.sets + (2 + k) * nbytes, nbytes, cudaMemcpyDeviceToHost));  // xb: scratch now
        for (size_t i = 0; i < n; i++) back[i] = dice_bf16_to_f32(xb[i]);
        errs[k] = bench_rel_err(back, k ? dx_ref : y_ref, n);
    }
    bool ok = errs[0] <= 5e-3 && errs[1] <= 5e-3;
    printf("%-42s check vs CPU: y %.2g, dx %.2g %s; %d input copies, %.0f MB\n", s->name, errs[0], errs[1],
           ok ? "ok" : "FAILED", j.nrot, set_bytes * j.nrot / 1e6);
    if (!ok) {
        DICE_FAIL(err, "%s: CUDA result differs from the CPU twin", s->name);
        goto done;
    }
    const char *names[2] = {"fwd+silu", "bwd"};
    for (int pass = 0; pass < 2; pass++) {
        double bytes = (double)(pass ? 3 : 2) * nbytes * REPS;
        j.pass = pass;
        double ms = bench_median_ms(ctx, run_gpu, &j, WARMUP, ITERS);
        j.pass = 2 + pass;
        double copy_ms = bench_median_ms(ctx, run_gpu, &j, WARMUP, ITERS);
        if (ms < 0 || copy_ms < 0) goto done;
        printf("  %-8s %8.2f us  %7.0f GB/s effective   D2D copy %7.0f GB/s   ratio %.2f\n", names[pass],
               ms * 1e3 / REPS, bytes / ms * 1e-6, bytes / copy_ms * 1e-6, copy_ms / ms);
    }
    rc = 0;
done:
#undef GPU_TRY
    if (rc) fprintf(stderr, "%s: %s\n", s->name, err->msg);
    cudaFree(j.sets);
    cudaFree(j.gamma);
    cudaFree(j.mean);
    cudaFree(j.ws);
    free(h);
    free(hb);
    return rc;
}
#endif

int main(int argc, char **argv) {
    DiceCtx ctx;
    bench_pick_context(&ctx, "groupnorm");
    int rc = 0;
    if (ctx.device == DEV_CPU) {
        printf("CPU twin, f32, SiLU fused; effective bytes as on the GPU (f32 here); baseline memcpy\n");
        for (size_t i = 0; i < sizeof cpu_shapes / sizeof cpu_shapes[0]; i++)
            if (bench_selected(cpu_shapes[i].name, argc, argv) && bench_cpu(&ctx, &cpu_shapes[i])) rc = 1;
        return rc;
    }
#ifdef DICE_CUDA
    printf("bf16 NHWC, 32 groups, SiLU fused; per launch of the 3 kernels; baseline: D2D copy of the same bytes "
           "(cuDNN has no NHWC group norm)\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (bench_selected(shapes[i].name, argc, argv) && bench_gpu(&ctx, &shapes[i])) rc = 1;
    ctx_free(&ctx);
#endif
    return rc;
}
