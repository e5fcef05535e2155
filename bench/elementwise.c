// bench/elementwise.c — kernel lab for the bandwidth-bound ops (kernels/elementwise.cu, kernels/shape_ops.cu): GELU,
// GEGLU, softmax, broadcast adds and a broadcast gradient, PixArt's modulation, channel concat and 2x upsampling, at
// the shapes SD1.5 / PixArt use, in effective GB/s (bytes each op must read + write once, bf16) next to a
// device-to-device copy of the same bytes measured in the same run (the ceiling such a kernel can reach).
//
//   build/bench/elementwise            every shape below (on a GPU), or small CPU shapes without one
//   build/bench/elementwise NAME...    only the shapes whose name contains one of the arguments
//
// Before timing, every kernel is checked at its shape with the leading (row / batch) dims cut down against the CPU
// twin (f32 on the same bf16 inputs): relative norm error <= 1e-2. Each timed run launches REPS times, rotating
// through copies of the buffers (>= 256 MB in all) so that L2 does not hold the inputs.
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "bench/bench.h"
#include "kernels/elementwise.h"
#include "kernels/shape_ops.h"

enum { REPS = 10, WARMUP = 3, ITERS = 20 };

typedef enum Kind {
    K_GELU_TANH,     // d0 x d1 elements
    K_GEGLU,         // rows d0, F d1: (rows, 2F) -> (rows, F)
    K_GEGLU_BWD,
    K_SOFTMAX,       // rows d0, cols d1
    K_SOFTMAX_BWD,
    K_ADD,           // d0 x d1 elements + the same
    K_ADD_TEMB,      // (B d0, S d1, C d2) + (B, 1, C)
    K_BIAS_GRAD,     // sum over rows d0 of (rows, C d1) -> (C)
    K_MODULATE,      // (B d0, N d1, C d2) with scale, shift (B, C)
    K_CONCAT,        // rows d0: (rows, C1 d1) | (rows, C2 d2)
    K_UPSAMPLE,      // (B d0, H d1, W d2, C d3) -> (B, 2H, 2W, C)
    K_UPSAMPLE_BWD,
} Kind;

typedef struct Shape {
    const char *name;
    Kind kind;
    int64_t d0, d1, d2, d3;
} Shape;

#ifdef DICE_CUDA
// SD1.5 at 512^2 with CFG (batch 2), PixArt-alpha at 1024^2 (batch 2).
static const Shape shapes[] = {
    {"sd15 geglu 64x64 (8192, 2x1280)", K_GEGLU, 8192, 1280, 0, 0},
    {"sd15 geglu bwd 64x64", K_GEGLU_BWD, 8192, 1280, 0, 0},
    {"sd15 geglu 32x32 (2048, 2x2560)", K_GEGLU, 2048, 2560, 0, 0},
    {"sd15 softmax self 64x64 (65536, 4096)", K_SOFTMAX, 2 * 8 * 4096, 4096, 0, 0},
    {"sd15 softmax bwd self 64x64", K_SOFTMAX_BWD, 2 * 8 * 4096, 4096, 0, 0},
    {"sd15 softmax cross 64x64 (65536, 77)", K_SOFTMAX, 2 * 8 * 4096, 77, 0, 0},
    {"sd15 residual add (2, 4096, 320)", K_ADD, 2 * 4096, 320, 0, 0},
    {"sd15 time-emb add (2,64,64,320)+(2,1,1,320)", K_ADD_TEMB, 2, 4096, 320, 0},
    {"sd15 bias grad (8192, 320) -> (320)", K_BIAS_GRAD, 8192, 320, 0, 0},
    {"sd15 skip concat (2,64,64) 320|640", K_CONCAT, 2 * 4096, 320, 640, 0},
    {"sd15 upsample (2,32,32,640)", K_UPSAMPLE, 2, 32, 32, 640},
    {"sd15 upsample bwd (2,32,32,640)", K_UPSAMPLE_BWD, 2, 32, 32, 640},
    {"pixart gelu-tanh (8192, 4608)", K_GELU_TANH, 2 * 4096, 4608, 0, 0},
    {"pixart modulate (2, 4096, 1152)", K_MODULATE, 2, 4096, 1152, 0},
};
#endif

// Small shapes for the CPU path (no GPU).
static const Shape cpu_shapes[] = {
    {"cpu geglu (1024, 2x320)", K_GEGLU, 1024, 320, 0, 0},
    {"cpu softmax (4096, 77)", K_SOFTMAX, 4096, 77, 0, 0},
    {"cpu time-emb add (1,32,32,320)", K_ADD_TEMB, 1, 1024, 320, 0},
    {"cpu skip concat (1,32,32) 320|320", K_CONCAT, 1024, 320, 320, 0},
    {"cpu upsample (1,16,16,320)", K_UPSAMPLE, 1, 16, 16, 320},
};

// Elements of the (up to 3) inputs and the output, and the effective elements moved (read + written once).
static void sizes(const Shape *s, int64_t in[3], int64_t *out, int64_t *moved) {
    int64_t a = s->d0, b = s->d1, c = s->d2, d = s->d3;
    in[0] = in[1] = in[2] = *out = *moved = 0;
    switch (s->kind) {
    case K_GELU_TANH: in[0] = *out = a * b; *moved = 2 * a * b; break;
    case K_GEGLU: in[0] = 2 * a * b, *out = a * b, *moved = 3 * a * b; break;
    case K_GEGLU_BWD: in[0] = a * b, in[1] = 2 * a * b, *out = 2 * a * b, *moved = 5 * a * b; break;
    case K_SOFTMAX: in[0] = *out = a * b, *moved = 2 * a * b; break;
    case K_SOFTMAX_BWD: in[0] = in[1] = *out = a * b, *moved = 3 * a * b; break;
    case K_ADD: in[0] = in[1] = *out = a * b, *moved = 3 * a * b; break;
    case K_ADD_TEMB: in[0] = *out = a * b * c, in[1] = a * c, *moved = 2 * a * b * c + a * c; break;
    case K_BIAS_GRAD: in[0] = a * b, *out = b, *moved = a * b + b; break;
    case K_MODULATE: in[0] = *out = a * b * c, in[1] = in[2] = a * c, *moved = 2 * a * b * c + 2 * a * c; break;
    case K_CONCAT: in[0] = a * b, in[1] = a * c, *out = a * (b + c), *moved = 2 * a * (b + c); break;
    case K_UPSAMPLE: in[0] = a * b * c * d, *out = 4 * in[0], *moved = 5 * in[0]; break;
    case K_UPSAMPLE_BWD: *out = a * b * c * d, in[0] = 4 * *out, *moved = 5 * *out; break;
    }
}

// One run of the op of shape s on the CPU twin or the CUDA launcher (CALL picks), dtype dt.
#ifdef DICE_CUDA
#define CALL(fn, ...) (cuda ? fn##_cuda(__VA_ARGS__, stream, err) : fn##_cpu(__VA_ARGS__, err))
#else
#define CALL(fn, ...) fn##_cpu(__VA_ARGS__, err)
#endif
static int run_op(const Shape *s, bool cuda, DType dt, void *out, void *const in[3], void *stream, DiceError *err) {
    int64_t a = s->d0, b = s->d1, c = s->d2, d = s->d3;
    (void)stream;
    switch (s->kind) {
    case K_GELU_TANH: return CALL(ew_unary, EW_GELU_TANH, out, in[0], a * b, 1.0, 0.0, dt);
    case K_GEGLU: return CALL(ew_geglu, out, in[0], a, b, dt);
    case K_GEGLU_BWD: return CALL(ew_geglu_backward, out, in[0], in[1], a, b, dt);
    case K_SOFTMAX: return CALL(ew_softmax, out, in[0], a, b, dt);
    case K_SOFTMAX_BWD: return CALL(ew_softmax_backward, out, in[0], in[1], a, b, dt);
    case K_ADD: {
        EwBroadcast p = {.ndim = 1, .shape = {a * b}, .a_stride = {1}, .b_stride = {1}};
        return CALL(ew_binary, EW_ADD, out, in[0], in[1], &p, dt);
    }
    case K_ADD_TEMB: {
        EwBroadcast p = {.ndim = 3, .shape = {a, b, c}, .a_stride = {b * c, c, 1}, .b_stride = {c, 0, 1}};
        return CALL(ew_binary, EW_ADD, out, in[0], in[1], &p, dt);
    }
    case K_BIAS_GRAD: {
        EwReduce p = {.keep_ndim = 1, .red_ndim = 1, .keep_shape = {b}, .keep_dy = {1}, .red_shape = {a}, .red_dy = {b}};
        return CALL(ew_broadcast_grad, out, in[0], NULL, &p, dt);
    }
    case K_MODULATE: return CALL(ew_modulate, out, in[0], in[1], in[2], a, b, c, dt);
    case K_CONCAT:
        if (CALL(shape_copy_columns, out, b + c, 0, in[0], b, 0, a, b, dt)) return -1;
        return CALL(shape_copy_columns, out, b + c, b, in[1], c, 0, a, c, dt);
    case K_UPSAMPLE: return CALL(shape_upsample2x, out, in[0], a, b, c, d, dt);
    case K_UPSAMPLE_BWD: return CALL(shape_upsample2x_backward, out, in[0], a, b, c, d, dt);
    }
    return DICE_FAIL(err, "unknown kind");
}

// ---------------------------------------------------------------- CPU path
typedef struct CpuJob {
    const Shape *s;
    void *out, *in[3], *copy_src, *copy_dst;
    size_t copy_bytes;
    bool copy;
    DiceError err;
} CpuJob;

static int run_cpu(void *user) {
    CpuJob *j = user;
    if (j->copy) {
        memcpy(j->copy_dst, j->copy_src, j->copy_bytes);
        return 0;
    }
    return run_op(j->s, false, DT_F32, j->out, j->in, NULL, &j->err);
}

static int bench_cpu(DiceCtx *ctx, const Shape *s) {
    int64_t in[3], out, moved;
    sizes(s, in, &out, &moved);
    int64_t total = in[0] + in[1] + in[2] + out;
    float *f = malloc((size_t)total * sizeof *f), *back = malloc((size_t)out * sizeof *back);
    double *g = malloc((size_t)total * sizeof *g);
    void *copy_dst = malloc((size_t)moved * sizeof(float));
    if (!f || !g || !back || !copy_dst) {
        fprintf(stderr, "out of memory\n");
        free(f), free(g), free(back), free(copy_dst);
        return -1;
    }
    uint64_t rng = 42;
    bench_fill_uniform(f, (size_t)total, -2, 2, &rng);
    for (int64_t i = 0; i < total; i++) g[i] = f[i];
    CpuJob j = {.s = s, .in = {f, f + in[0], f + in[0] + in[1]}, .out = f + in[0] + in[1] + in[2]};
    void *gin[3] = {g, g + in[0], g + in[0] + in[1]};
    double *gout = g + in[0] + in[1] + in[2];
    DiceError err = {{0}};
    int rc = run_op(s, false, DT_F64, gout, gin, NULL, &err) || run_cpu(&j);
    if (rc) {
        fprintf(stderr, "%s: %s\n", s->name, err.msg[0] ? err.msg : j.err.msg);
    } else {
        for (int64_t i = 0; i < out; i++) back[i] = (float)gout[i];
        printf("%-46s check f32 vs f64 twin (both compute in double): %.2g\n", s->name,
               bench_rel_err(j.out, back, (size_t)out));
        double bytes = (double)moved * sizeof(float);
        double ms = bench_median_ms(ctx, run_cpu, &j, 1, 5);
        j.copy = true;
        j.copy_src = f;
        j.copy_dst = copy_dst;
        j.copy_bytes = (size_t)(bytes / 2);
        double copy_ms = bench_median_ms(ctx, run_cpu, &j, 1, 5);
        printf("  %9.3f ms  %7.1f GB/s effective   memcpy %7.1f GB/s\n", ms, bytes / ms * 1e-6, bytes / copy_ms * 1e-6);
    }
    free(f), free(g), free(back), free(copy_dst);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------- CUDA path
#ifdef DICE_CUDA
typedef struct GpuJob {
    const Shape *s;
    unsigned char *sets;  // nrot copies of [in0 | in1 | in2 | out], bf16
    size_t off[4], set_bytes, copy_bytes;
    int nrot, next;
    bool copy;
    cudaStream_t stream;
    DiceError err;
} GpuJob;

static int run_gpu(void *user) {
    GpuJob *j = user;
    for (int r = 0; r < REPS; r++) {
        unsigned char *set = j->sets + (size_t)(j->next++ % j->nrot) * j->set_bytes;
        if (j->copy) {
            CUDA_TRY(&j->err, cudaMemcpyAsync(set + j->copy_bytes, set, j->copy_bytes, cudaMemcpyDeviceToDevice, j->stream));
            continue;
        }
        void *in[3] = {set + j->off[0], set + j->off[1], set + j->off[2]};
        if (run_op(j->s, true, DT_BF16, set + j->off[3], in, j->stream, &j->err)) return -1;
    }
    return 0;
}

// The same kind with its leading dims cut down, for the check against the CPU.
static Shape check_shape(const Shape *s) {
    Shape c = *s;
    if (s->kind == K_ADD_TEMB || s->kind == K_MODULATE || s->kind == K_UPSAMPLE || s->kind == K_UPSAMPLE_BWD) {
        c.d0 = 1;
        c.d1 = s->d1 < 16 ? s->d1 : 16;
    } else {
        c.d0 = s->d0 < 64 ? s->d0 : 64;
    }
    return c;
}

// The kernel at the cut-down shape against the CPU twin; 0 if the relative error is <= 1e-2.
static int check_gpu(const Shape *full, unsigned char *dev, cudaStream_t stream, DiceError *err) {
    Shape s = check_shape(full);
    int64_t in[3], out, moved;
    sizes(&s, in, &out, &moved);
    int64_t total = in[0] + in[1] + in[2] + out;
    float *h = malloc((size_t)total * sizeof *h);
    DICE_CHECK(err, h, "out of host memory");
    uint64_t rng = 7;
    bench_fill_uniform(h, (size_t)(in[0] + in[1] + in[2]), -2, 2, &rng);
    size_t off = 0;
    void *din[3], *dout;
    float *hin[3] = {h, h + in[0], h + in[0] + in[1]}, *want = h + in[0] + in[1] + in[2];
    int rc = 0;
    for (int k = 0; k < 3 && !rc; k++) {
        din[k] = dev + off;
        off += ((size_t)in[k] * 2 + 255) / 256 * 256;
        bench_round_bf16(hin[k], (size_t)in[k]);  // the CPU reference sees what the device holds
        rc = bench_upload_bf16(din[k], hin[k], (size_t)in[k], err);
    }
    dout = dev + off;
    if (!rc && cudaMemset(dout, 0xff, (size_t)out * 2) != cudaSuccess) rc = DICE_FAIL(err, "cudaMemset failed");
    if (!rc) rc = run_op(&s, true, DT_BF16, dout, din, stream, err);
    if (!rc) rc = run_op(&s, false, DT_F32, want, (void *const *)hin, NULL, err);
    if (!rc) {
        double e = bench_rel_err_bf16(dout, want, (size_t)out);
        printf("%-46s check vs CPU at d0=%lld d1=%lld: %.2g %s\n", full->name, (long long)s.d0, (long long)s.d1, e,
               e <= 1e-2 ? "ok" : "FAILED");
        if (!(e <= 1e-2)) rc = DICE_FAIL(err, "%s: CUDA differs from the CPU twin", full->name);
    }
    free(h);
    return rc;
}

static int bench_gpu(DiceCtx *ctx, const Shape *s) {
    int64_t in[3], out, moved;
    sizes(s, in, &out, &moved);
    GpuJob j = {.s = s, .stream = (cudaStream_t)ctx->stream};
    size_t off = 0;
    for (int k = 0; k < 4; k++) {
        j.off[k] = off;
        off += ((size_t)(k < 3 ? in[k] : out) * 2 + 255) / 256 * 256;
    }
    j.set_bytes = off;
    j.nrot = bench_rotations(j.set_bytes);
    DiceError *err = &j.err;
    int rc = -1;
    cudaError_t e = cudaMalloc((void **)&j.sets, j.set_bytes * j.nrot);
    if (e != cudaSuccess) {
        fprintf(stderr, "%s: cudaMalloc of %.0f MB: %s\n", s->name, j.set_bytes * j.nrot / 1e6, cudaGetErrorString(e));
        return -1;
    }
    if (check_gpu(s, j.sets, j.stream, err)) goto done;
    if (cudaMemset(j.sets, 0, j.set_bytes * j.nrot) != cudaSuccess) {  // finite inputs (bf16 zeros)
        DICE_FAIL(err, "cudaMemset failed");
        goto done;
    }
    double bytes = (double)moved * 2 * REPS;
    double ms = bench_median_ms(ctx, run_gpu, &j, WARMUP, ITERS);
    j.copy = true;
    j.copy_bytes = (size_t)moved;  // copies moved / 2 elements of 2 bytes: read + write = the op's bytes
    double copy_ms = bench_median_ms(ctx, run_gpu, &j, WARMUP, ITERS);
    if (ms < 0 || copy_ms < 0) goto done;
    printf("  %9.2f us  %7.0f GB/s effective   D2D copy %7.0f GB/s   ratio %.2f\n", ms * 1e3 / REPS, bytes / ms * 1e-6,
           bytes / copy_ms * 1e-6, copy_ms / ms);
    rc = 0;
done:
    if (rc) fprintf(stderr, "%s: %s\n", s->name, err->msg);
    cudaFree(j.sets);
    return rc;
}
#endif

int main(int argc, char **argv) {
    DiceCtx ctx;
    bench_pick_context(&ctx, "elementwise");
    int rc = 0;
    if (ctx.device == DEV_CPU) {
        printf("CPU twins, f32; effective bytes (f32 here); baseline memcpy of the same bytes\n");
        for (size_t i = 0; i < sizeof cpu_shapes / sizeof cpu_shapes[0]; i++)
            if (bench_selected(cpu_shapes[i].name, argc, argv) && bench_cpu(&ctx, &cpu_shapes[i])) rc = 1;
        return rc;
    }
#ifdef DICE_CUDA
    printf("bf16; per launch; effective bytes = each input read and each output written once; baseline: D2D copy of "
           "the same bytes\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (bench_selected(shapes[i].name, argc, argv) && bench_gpu(&ctx, &shapes[i])) rc = 1;
    ctx_free(&ctx);
#endif
    return rc;
}
