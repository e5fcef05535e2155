// tests/gradcheck.h — checks an op's backward against central finite differences in f64 on the CPU.
//
// The function under test builds its output from the input Vars through ops (it may use any number of
// ops). gradcheck takes loss = sum(output * W) for a fixed random W, runs backward, and compares the
// gradient of every input that requires one with (loss(x + eps) - loss(x - eps)) / 2 eps on a sample
// of elements (always the first and last), and checks that inputs that do not require a gradient got
// none. Inputs are f64 CPU tensors; they are perturbed in place and restored.
#pragma once
#include <stdbool.h>

#include "nn/autograd.h"
#include "test.h"

typedef int (*GradcheckFn)(Graph *g, Var *const *inputs, Var **out, void *user, DiceError *err);

// 0 if every checked element satisfies |analytic - numeric| <= tol * (|numeric| + |analytic|) + tol * 1e-2;
// otherwise test_fail is called with the worst element and -1 returned (use CHECK(gradcheck(...) == 0)).
// tol = 1e-6 is right for smooth ops with eps = 1e-6 in f64.
int gradcheck(TestCtx *tc, const char *what, GradcheckFn fn, void *user, Tensor *inputs, const bool *requires_grad,
              int n_inputs, double tol);
// A new f64 CPU tensor of the given shape in `arena`, uniform in [lo, hi) from *rng.
int test_random_f64(Arena *arena, Tensor *t, int ndim, const int64_t *shape, double lo, double hi, uint64_t *rng,
                    DiceError *err);
