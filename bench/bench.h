// bench/bench.h — shared helpers of the kernel lab (bench/*.c): timing and reporting.
//
// Every benchmark program checks its kernel against the CPU reference before timing, times at the
// shapes SD1.5 / SDXL really use (listed in the program), and prints one line per shape with the
// achieved TFLOP/s or GB/s next to the baseline measured in the same run. Without a GPU they run the
// CPU path on small shapes and say so. Timing: warm-up runs, then the median of `iters` runs, with CUDA
// events on a GPU and the monotonic clock on the CPU.
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "nn/context.h"
#include "nn/cuda_api.h"

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
