// bench/bench.h — shared helpers of the kernel lab (bench/*.c): timing, shape selection, inputs, checks.
//
// Every benchmark program checks its kernel against the CPU reference before timing, times at the
// shapes SD1.5 / SDXL really use (listed in the program), and prints one line per shape with the
// achieved TFLOP/s or GB/s next to the baseline measured in the same run. Without a GPU they run the
// CPU path on small shapes and say so. Timing: warm-up runs, then the median of `iters` runs, with CUDA
// events on a GPU and the monotonic clock on the CPU.
#pragma once
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/context.h"
#include "nn/cuda_api.h"
#include "nn/dtype.h"

typedef int (*BenchFn)(void *user);  // one run of the thing timed; 0 on success

static inline int bench_compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Median milliseconds of `iters` runs of fn after `warmup` runs; negative if fn failed.
static inline double bench_median_ms(DiceCtx *ctx, BenchFn fn, void *user, int warmup, int iters) {
    for (int i = 0; i < warmup; i++)
        if (fn(user)) return -1;
    double *ms = (double *)malloc(sizeof(double) * (size_t)iters);
    if (!ms) return -1;
    for (int i = 0; i < iters; i++) {
#ifdef DICE_CUDA
        if (ctx->device == DEV_CUDA) {
            cudaEvent_t start, stop;
            float t = 0;
            cudaEventCreate(&start);
            cudaEventCreate(&stop);
            cudaEventRecord(start, (cudaStream_t)ctx->stream);
            int rc = fn(user);
            cudaEventRecord(stop, (cudaStream_t)ctx->stream);
            cudaEventSynchronize(stop);
            cudaEventElapsedTime(&t, start, stop);
            cudaEventDestroy(start);
            cudaEventDestroy(stop);
            if (rc) {
                free(ms);
                return -1;
            }
            ms[i] = t;
            continue;
        }
#endif
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (fn(user)) {
            free(ms);
            return -1;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        ms[i] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) * 1e-6;
    }
    qsort(ms, (size_t)iters, sizeof *ms, bench_compare_double);
    double median = ms[iters / 2];
    free(ms);
    return median;
}

// A CUDA context when a GPU is present, else a CPU context; prints which.
static inline void bench_pick_context(DiceCtx *ctx, const char *program) {
    DiceError err;
    if (ctx_init_cuda(ctx, 0, &err) == 0) {
        printf("%s: timing on CUDA device 0\n", program);
        return;
    }
    ctx_init_cpu(ctx);
    printf("%s: no GPU (%s); timing the CPU path on small shapes\n", program, err.msg);
}

// Whether to run the shape `name`: every shape when no argument names one, else those whose name contains one
// of the arguments (arguments starting with '-' are options, not names).
static inline bool bench_selected(const char *name, int argc, char **argv) {
    bool any = false;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        any = true;
        if (strstr(name, argv[i])) return true;
    }
    return !any;
}

// n values uniform in [lo, hi) from a 64-bit linear congruential generator (the same state gives the same values).
static inline void bench_fill_uniform(float *p, size_t n, float lo, float hi, uint64_t *state) {
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = lo + (hi - lo) * (float)((*state >> 40) * (1.0 / 16777216.0));
    }
}

// Rounds values to bf16 in place, so that the CPU reference and the device see the same numbers.
static inline void bench_round_bf16(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = dice_bf16_to_f32(dice_f32_to_bf16(p[i]));
}

// Relative norm error ||got - want|| / ||want||; infinite when got holds a NaN.
static inline double bench_rel_err(const float *got, const float *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)got[i] - want[i];
        num += e * e;
        den += (double)want[i] * want[i];
    }
    return num != num ? INFINITY : sqrt(num / (den > 0 ? den : 1e-300));
}

// How many copies of a set of inputs (set_bytes each) to rotate through so that together they span more than
// 256 MB, and every timed run reads its inputs from DRAM rather than from the previous run's L2; at most 256.
static inline int bench_rotations(size_t set_bytes) {
    size_t n = ((size_t)256 << 20) / set_bytes + 1;
    return (int)(n < 256 ? n : 256);
}

#ifdef DICE_CUDA
// dst (device, n bf16) = src (host f32) rounded to bf16.
static inline int bench_upload_bf16(void *dst, const float *src, size_t n, DiceError *err) {
    uint16_t *bits = (uint16_t *)malloc((n ? n : 1) * sizeof *bits);
    DICE_CHECK(err, bits, "out of host memory");
    for (size_t i = 0; i < n; i++) bits[i] = dice_f32_to_bf16(src[i]);
    cudaError_t e = cudaMemcpy(dst, bits, n * sizeof *bits, cudaMemcpyHostToDevice);
    free(bits);
    DICE_CHECK(err, e == cudaSuccess, "upload: %s", cudaGetErrorString(e));
    return 0;
}

// A new device buffer holding src (host f32, n) rounded to bf16; NULL if it cannot be made.
static inline void *bench_new_bf16(const float *src, size_t n) {
    void *dev = NULL;
    DiceError err;
    if (cudaMalloc(&dev, (n ? n : 1) * 2) != cudaSuccess) return NULL;
    if (bench_upload_bf16(dev, src, n, &err)) {
        cudaFree(dev);
        return NULL;
    }
    return dev;
}

// Relative norm error (bench_rel_err) of a device bf16 array against host f32 values; infinite if it cannot be
// downloaded.
static inline double bench_rel_err_bf16(const void *got, const float *want, size_t n) {
    uint16_t *bits = (uint16_t *)malloc((n ? n : 1) * sizeof *bits);
    float *back = (float *)malloc((n ? n : 1) * sizeof *back);
    double e = INFINITY;
    if (bits && back && cudaMemcpy(bits, got, n * sizeof *bits, cudaMemcpyDeviceToHost) == cudaSuccess) {
        for (size_t i = 0; i < n; i++) back[i] = dice_bf16_to_f32(bits[i]);
        e = bench_rel_err(back, want, n);
    }
    free(bits);
    free(back);
    return e;
}
#endif
