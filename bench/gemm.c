// bench/gemm.c — kernel lab for matrix products: the custom GEMM engine (kernels/gemm.cu) against cuBLASLt,
// the baseline, at the linear-layer shapes of SD1.5 and SDXL, both measured in the same run.
//
//   build/bench/gemm            every shape below (on a GPU), or small CPU shapes without one
//   build/bench/gemm NAME...    only the shapes whose name contains one of the arguments
//
// Before timing, each engine's output on each shape is checked against the CPU (OpenBLAS, f32 on the same
// bf16-rounded inputs) on the first rows of C: relative error <= 1e-2 (bf16 output) / 1e-4 (f32).
// Shapes: a CFG step's batch of 2; tokens x in -> out, y = x W^T (the linear layer's forward), and the
// input gradient dX = dZ W of DICE's student backward ("dgrad"). Channels C and tokens per level:
//   SD1.5 at 512^2: 64x64 latent -> 4096 tokens at C = 320, 1024 at 640, 256 at 1280; cross-attention
//     keys/values project the 77 x 768 CLIP embedding; GEGLU projects C -> 8C, the feed-forward out 4C -> C.
//   SDXL at 1024^2: 4096 tokens at C = 640 and 1024 tokens at C = 1280 (10 layers per block there).
//   DICE sharpener (fp32, trained): 16 prompts x 77 tokens, 768 -> 512 -> 768.
#include <string.h>

#include "bench/bench.h"
#include "kernels/gemm.h"
#include "nn/arena.h"
#include "nn/tensor_copy.h"

typedef struct Shape {
    const char *name;
    int64_t M, N, K;  // C (M, N) = A (M, K) op(B); op(B) = W^T for the forward, W for dgrad
    bool trans_b;
    DType dtype;      // bf16 (frozen models) or f32 (the sharpener)
} Shape;

static const Shape shapes[] = {
    {"sd15 64x64 q/k/v/out 320", 8192, 320, 320, true, DT_BF16},
    {"sd15 64x64 geglu 320->2560", 8192, 2560, 320, true, DT_BF16},
    {"sd15 64x64 ff-out 1280->320", 8192, 320, 1280, true, DT_BF16},
    {"sd15 32x32 q/k/v/out 640", 2048, 640, 640, true, DT_BF16},
    {"sd15 32x32 geglu 640->5120", 2048, 5120, 640, true, DT_BF16},
    {"sd15 32x32 ff-out 2560->640", 2048, 640, 2560, true, DT_BF16},
    {"sd15 16x16 q/k/v/out 1280", 512, 1280, 1280, true, DT_BF16},
    {"sd15 16x16 geglu 1280->10240", 512, 10240, 1280, true, DT_BF16},
    {"sd15 16x16 ff-out 5120->1280", 512, 1280, 5120, true, DT_BF16},
    {"sd15 cross k/v 77x768->320", 154, 320, 768, true, DT_BF16},
    {"sd15 64x64 geglu dgrad 2560->320", 8192, 320, 2560, false, DT_BF16},
    {"sdxl 64x64 q/k/v/out 640", 8192, 640, 640, true, DT_BF16},
    {"sdxl 64x64 geglu 640->5120", 8192, 5120, 640, true, DT_BF16},
    {"sdxl 32x32 q/k/v/out 1280", 2048, 1280, 1280, true, DT_BF16},
    {"sdxl 32x32 geglu 1280->10240", 2048, 10240, 1280, true, DT_BF16},
    {"sdxl 32x32 ff-out 5120->1280", 2048, 1280, 5120, true, DT_BF16},
    {"sdxl 32x32 geglu dgrad 10240->1280", 2048, 1280, 10240, false, DT_BF16},
    {"sharpener fc1 768->512 (f32)", 1232, 512, 768, true, DT_F32},
    {"sharpener q/k/v 512 (f32)", 1232, 512, 512, true, DT_F32},
};

enum { CHECK_ROWS = 128 };

typedef struct Job {
    DiceCtx *ctx;
    GemmArgs args;
} Job;

static int run_job(void *user) {
    Job *j = user;
    DiceError err;
    int rc = j->ctx->device == DEV_CUDA ? gemm_cuda(j->ctx->gemm, &j->args, j->ctx->stream, &err)
                                        : gemm_cpu(&j->args, &err);
    if (rc) fprintf(stderr, "gemm failed: %s\n", err.msg);
    return rc;
}

// Random host values in [-1, 1) rounded through `dtype`: f32 copy for the reference, `dtype` copy to upload.
static int random_operand(DiceCtx *cpu, Arena *host, int64_t n, DType dtype, uint64_t *state, Tensor *ref,
                          Tensor *stored, DiceError *err) {
    DICE_TRY(arena_tensor(host, ref, DT_F32, 1, &n, err));
    float *p = ref->data;
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        p[i] = (float)((double)((z ^ (z >> 31)) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
    }
    DICE_TRY(tensor_to(cpu, host, stored, ref, dtype, err));
    return tensor_copy(cpu, ref, stored, err);
}

#ifdef DICE_CUDA
// Relative norm error of the first `rows` rows of the device result against the CPU.
static int check_rows(DiceCtx *gpu, Arena *host, const Shape *s, const Tensor *a_ref,
                      const Tensor *b_ref, const Tensor *c_dev, double *rel, DiceError *err) {
    int64_t rows = s->M < CHECK_ROWS ? s->M : CHECK_ROWS, n = rows * s->N;
    Tensor c_back, want;
    DICE_TRY(tensor_to(gpu, host, &c_back, c_dev, DT_F32, err));
    DICE_TRY(arena_tensor(host, &want, DT_F32, 1, &n, err));
    GemmArgs r = gemm_args_contiguous(1, rows, s->N, s->K, false, s->trans_b, a_ref->data, b_ref->data, want.data, NULL,
                                      DT_F32, DT_F32, GEMM_ACT_NONE);
    DICE_TRY(gemm_cpu(&r, err));
    *rel = bench_rel_err(c_back.data, want.data, (size_t)n);
    return 0;
}

static double tflops(const Shape *s, double ms) { return 2.0 * (double)s->M * s->N * s->K / (ms * 1e-3) / 1e12; }

static int bench_gpu(DiceCtx *gpu, int argc, char **argv, DiceError *err) {
    DiceCtx cpu;
    ctx_init_cpu(&cpu);
    Arena host, dev;
    DICE_TRY(arena_init(&host, "host", DEV_CPU, (size_t)64 << 20, 0, err));
    DICE_TRY(arena_init(&dev, "device", DEV_CUDA, (size_t)64 << 20, 0, err));
    GemmHandle *h = gpu->gemm;
    printf("%-36s %6s %6s %6s  %18s  %18s  %7s\n", "shape", "M", "N", "K", "cuBLASLt TFLOP/s", "custom TFLOP/s",
           "custom/Lt");
    uint64_t state = 42;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const Shape *s = &shapes[i];
        if (!bench_selected(s->name, argc, argv)) continue;
        arena_reset(&host);
        arena_reset(&dev);
        Tensor a_ref, b_ref, a_st, b_st, a, b, c;
        DICE_TRY(random_operand(&cpu, &host, s->M * s->K, s->dtype, &state, &a_ref, &a_st, err));
        DICE_TRY(random_operand(&cpu, &host, s->K * s->N, s->dtype, &state, &b_ref, &b_st, err));
        DICE_TRY(tensor_to(gpu, &dev, &a, &a_st, s->dtype, err));
        DICE_TRY(tensor_to(gpu, &dev, &b, &b_st, s->dtype, err));
        int64_t c_n = s->M * s->N;
        DICE_TRY(arena_tensor(&dev, &c, s->dtype, 1, &c_n, err));
        Job job = {gpu, gemm_args_contiguous(1, s->M, s->N, s->K, false, s->trans_b, a.data, b.data, c.data, NULL,
                                             s->dtype, s->dtype, GEMM_ACT_NONE)};
        double ms[2], rel[2];
        const GemmBackend engines[2] = {GEMM_BACKEND_CUBLASLT, GEMM_BACKEND_CUSTOM};
        for (int e = 0; e < 2; e++) {
            DICE_TRY(gemm_handle_set_backend(h, engines[e], err));
            CUDA_TRY(err, cudaMemset(c.data, 0xff, tensor_nbytes(&c)));
            if (run_job(&job)) return DICE_FAIL(err, "%s: %s failed", s->name, gemm_backend_name(engines[e]));
            DICE_TRY(ctx_sync(gpu, err));
            DICE_TRY(check_rows(gpu, &host, s, &a_ref, &b_ref, &c, &rel[e], err));
            double tol = s->dtype == DT_BF16 ? 1e-2 : 1e-4;
            DICE_CHECK(err, rel[e] <= tol, "%s: %s differs from the CPU reference (relative error %.3g > %.3g)",
                       s->name, gemm_backend_name(engines[e]), rel[e], tol);
            ms[e] = bench_median_ms(gpu, run_job, &job, 5, 50);
            DICE_CHECK(err, ms[e] > 0, "%s: timing %s failed", s->name, gemm_backend_name(engines[e]));
        }
        printf("%-36s %6lld %6lld %6lld  %10.1f (%.0e)  %10.1f (%.0e)  %6.2fx\n", s->name, (long long)s->M,
               (long long)s->N, (long long)s->K, tflops(s, ms[0]), rel[0], tflops(s, ms[1]), rel[1], ms[0] / ms[1]);
        fflush(stdout);
    }
    printf("(in parentheses: relative error against the CPU on the first %d rows, checked before timing)\n",
           CHECK_ROWS);
    arena_free(&host);
    arena_free(&dev);
    return 0;
}
#endif

// Without a GPU: the CPU twin (OpenBLAS) on the same shapes cut to 256 rows, checked against naive loops.
static int bench_cpu(DiceCtx *cpu, int argc, char **argv, DiceError *err) {
    Arena host;
    DICE_TRY(arena_init(&host, "host", DEV_CPU, (size_t)64 << 20, 0, err));
    printf("%-36s %6s %6s %6s  %14s\n", "shape (256 rows)", "M", "N", "K", "CPU GFLOP/s");
    uint64_t state = 42;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        Shape s = shapes[i];
        if (!bench_selected(s.name, argc, argv)) continue;
        s.M = s.M < 256 ? s.M : 256;
        arena_reset(&host);
        Tensor a, b, a_st, b_st, c;
        DICE_TRY(random_operand(cpu, &host, s.M * s.K, DT_F32, &state, &a, &a_st, err));
        DICE_TRY(random_operand(cpu, &host, s.K * s.N, DT_F32, &state, &b, &b_st, err));
        int64_t c_n = s.M * s.N;
        DICE_TRY(arena_tensor(&host, &c, DT_F32, 1, &c_n, err));
        Job job = {cpu, gemm_args_contiguous(1, s.M, s.N, s.K, false, s.trans_b, a.data, b.data, c.data, NULL, DT_F32,
                                             DT_F32, GEMM_ACT_NONE)};
        DICE_CHECK(err, run_job(&job) == 0, "%s: gemm_cpu failed", s.name);
        const float *ap = a.data, *bp = b.data, *cp = c.data;
        for (int64_t m = 0; m < s.M; m += 37)  // spot check a strided sample of C
            for (int64_t n = 0; n < s.N; n += 29) {
                double want = 0;
                for (int64_t k = 0; k < s.K; k++) want += (double)ap[m * s.K + k] * (s.trans_b ? bp[n * s.K + k] : bp[k * s.N + n]);
                DICE_CHECK(err, fabs(cp[m * s.N + n] - want) <= 1e-4 * (1 + fabs(want)), "%s: C[%lld][%lld] = %g, want %g",
                           s.name, (long long)m, (long long)n, cp[m * s.N + n], want);
            }
        double ms = bench_median_ms(cpu, run_job, &job, 1, 5);
        printf("%-36s %6lld %6lld %6lld  %14.1f\n", s.name, (long long)s.M, (long long)s.N, (long long)s.K,
               tflops(&s, ms) * 1e3);
    }
    arena_free(&host);
    return 0;
}

int main(int argc, char **argv) {
    DiceCtx ctx;
    bench_pick_context(&ctx, "bench/gemm");
    DiceError err;
#ifdef DICE_CUDA
    int rc = ctx.device == DEV_CUDA ? bench_gpu(&ctx, argc, argv, &err) : bench_cpu(&ctx, argc, argv, &err);
#else
    int rc = bench_cpu(&ctx, argc, argv, &err);
#endif
    if (rc) fprintf(stderr, "bench/gemm: %s\n", err.msg);
    ctx_free(&ctx);
    return rc ? 1 : 0;
}
