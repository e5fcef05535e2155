// tests/cuda_parity.h — compares an op on the CUDA device (emulated under `make test`, real under `make test-gpu`)
// with its CPU twin, forward and backward.
//
// cuda_parity rounds the host f32 inputs to `dtype` (so both sides see the same values), runs fn (the GradcheckFn
// of tests/gradcheck.h) on the CPU in f32 and on CUDA in `dtype` with the device arena poisoned (0xFF bytes: NaN)
// first, runs backward on both from the same random output gradient (uniform in [-0.5, 1): of both signs, but with a
// mean that keeps the sums a broadcast gradient makes from cancelling), and checks that the output and the gradient
// of every input that requires one agree: relative norm error <= tol (CHECK_REL_ERR's measure).
#pragma once
#include "gradcheck.h"

// 0 on agreement; otherwise test_fail names `what`, the tensor and the error, and -1 is returned.
int cuda_parity(TestCtx *tc, const char *what, GradcheckFn fn, void *user, Tensor *inputs, const bool *requires_grad,
                int n_inputs, DType dtype, double tol);
// A new f32 CPU tensor in `arena`, uniform in [lo, hi).
int test_random_f32(Arena *arena, Tensor *t, int ndim, const int64_t *shape, float lo, float hi, uint64_t *rng,
                    DiceError *err);
