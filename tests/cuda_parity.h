// tests/cuda_parity.h — compares an op on the CUDA device (emulated under `make test`, real under `make test-gpu`)
// with its CPU twin, forward and backward.
//
// cuda_parity rounds the host f32 inputs to `dtype` (so both sides see the same values), runs fn (the GradcheckFn
// of tests/gradcheck.h) on the CPU in f32 and on CUDA in `dtype` with the device arena poisoned (0xFF bytes: NaN)
// first, runs backward on both from the same random output gradient (uniform in [-0.5, 1): of both signs, but with a
// mean that keeps the sums a broadcast gradient makes from cancelling), and checks that the output and the gradient
// of every input that requires one agree: relative norm error <= tol (CHECK_REL_ERR's measure).
//
// Below it, the pieces tests that compare the devices by hand share: CudaTestEnv (a CPU and a CUDA context, a
// host and a device arena), random inputs rounded through the device dtype, poisoned device memory, and the
// relative error of a device result against a host one.
#pragma once
#include "gradcheck.h"

// 0 on agreement; otherwise test_fail names `what`, the tensor and the error, and -1 is returned.
int cuda_parity(TestCtx *tc, const char *what, GradcheckFn fn, void *user, Tensor *inputs, const bool *requires_grad,
                int n_inputs, DType dtype, double tol);
// A new f32 CPU tensor in `arena`, uniform in [lo, hi).
int test_random_f32(Arena *arena, Tensor *t, int ndim, const int64_t *shape, float lo, float hi, uint64_t *rng,
                    DiceError *err);
// Rounds the host f32 tensor t in place to dtype's precision (so that the CPU and the device see the same
// numbers); with `stored` not NULL, also gives the host copy of t in dtype.
int test_round_to(DiceCtx *cpu, Arena *host, Tensor *t, DType dtype, Tensor *stored, DiceError *err);
// Fills the free part of every chunk of a device arena with 0xFF bytes (NaN in f32 and bf16), making the first
// chunk if there is none: what is allocated next starts as NaN, so an output a kernel skips shows, on a real
// GPU too (the emulator also poisons every cudaMalloc).
int test_poison_arena(Arena *dev, DiceError *err);

typedef struct CudaTestEnv {
    DiceCtx cpu, gpu;  // gpu: CUDA device 0
    Arena host, dev;   // CPU "host" and CUDA "device" arenas
} CudaTestEnv;
int cuda_env_init(CudaTestEnv *e, size_t host_chunk_bytes, size_t dev_chunk_bytes, DiceError *err);
void cuda_env_free(CudaTestEnv *e);
void cuda_env_reset(CudaTestEnv *e);  // both arenas
// A new host f32 tensor t, uniform in [lo, hi) and rounded through dtype; with d not NULL, its device copy in
// dtype.
int cuda_env_random(CudaTestEnv *e, int ndim, const int64_t *shape, float lo, float hi, DType dtype, uint64_t *rng,
                    Tensor *t, Tensor *d, DiceError *err);
// *rel = relative norm error (test_rel_err_f32) of a device tensor of any float dtype against a host f32 one of
// as many elements.
int cuda_env_rel_err(CudaTestEnv *e, const Tensor *got, const Tensor *want, double *rel, DiceError *err);
