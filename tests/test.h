// tests/test.h — the dice test framework: test declaration, checks and skips.
//
// A test is a function declared with DICE_TEST(name) (CPU) or DICE_CUDA_TEST(name) (uses the
// "cuda" device: run in the SIMT emulator by `make test`, on the real GPU by `make test-gpu`)
// in any tests/*.c or tests/*.cu file. The Makefile collects them into a registry, so adding
// a test is writing the function. Each test runs in its own forked process (see main.c):
// a crash or sanitizer report fails that test only.
//
//   DICE_TEST(tensor_slice_is_a_view) {
//       CHECK(t.data == base);
//       CHECK_OK(tensor_alloc(&t, ..., &tc->err));   // fails the test with err's message
//       CHECK_REL_ERR(got, want, n, 1e-6);
//   }
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct TestCtx {
    const char *name;
    int failed;             // set by a failing CHECK
    int skipped;            // set by SKIP
    char message[1200];     // why it failed or was skipped
    DiceError err;          // scratch error for library calls under test
    uint64_t seed;          // fresh per run unless DICE_TEST_SEED is set; printed on failure
} TestCtx;

void test_fail(TestCtx *tc, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void test_skip(TestCtx *tc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Relative norm error ||got - want|| / max(||want||, tiny), in double.
double test_rel_err_f32(const float *got, const float *want, size_t n);
// Path of a file relative to the repository root (tests run from the root; DICE_ROOT overrides).
const char *test_path(TestCtx *tc, const char *relative);
// A scratch directory unique to this test process (created on first use, removed after the test).
const char *test_tmpdir(TestCtx *tc);
void test_cleanup_tmpdir(void);
// Runs argv (argv[0] a path, NULL-terminated) as a child process; its stdout and stderr are captured
// into out / errout (NUL-terminated, may be NULL). Returns the exit status, 128+signal if killed,
// -1 if it could not be started.
int test_run(TestCtx *tc, const char *const *argv, char *out, size_t outsize, char *errout, size_t errsize);
// The loss column of OUT_DIR/loss.csv (a training run's, header step,loss,lr,seconds; up to cap steps) in
// losses; returns the number of rows read, -1 when the file is missing or a row is malformed or out of order.
int test_read_losses(const char *out_dir, double *losses, int cap);
// Path of the dice program under test ($DICE_BIN, set by the Makefile; default build/dice).
const char *test_dice_bin(TestCtx *tc);
// The f32 tensor `name` of numel elements in a golden file opened with st_open (nn/safetensors.h), or NULL after
// failing the test when it is missing or malformed.
struct StFile;
const float *test_golden_f32(TestCtx *tc, const struct StFile *f, const char *name, int64_t numel);

// Small deterministic generator for test inputs (splitmix64); seed it from tc->seed.
static inline uint64_t test_rand_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
// Uniform in [lo, hi).
static inline float test_rand_uniform(uint64_t *state, float lo, float hi) {
    return lo + (hi - lo) * (float)((test_rand_u64(state) >> 40) * (1.0 / 16777216.0));
}

#ifdef __cplusplus
}
#define DICE_TEST_LINKAGE extern "C"
#else
#define DICE_TEST_LINKAGE
#endif

#define DICE_TEST(name) DICE_TEST_LINKAGE void test_##name(TestCtx *tc)
#define DICE_CUDA_TEST(name) DICE_TEST_LINKAGE void test_##name(TestCtx *tc)

#define CHECK(cond)                                                 \
    do {                                                            \
        if (!(cond)) {                                              \
            test_fail(tc, __FILE__, __LINE__, "CHECK(%s)", #cond);  \
            return;                                                 \
        }                                                           \
    } while (0)

#define CHECK_MSG(cond, ...)                              \
    do {                                                  \
        if (!(cond)) {                                    \
            test_fail(tc, __FILE__, __LINE__, __VA_ARGS__); \
            return;                                       \
        }                                                 \
    } while (0)

// expr must return 0; otherwise the test fails with the library's error message.
#define CHECK_OK(expr)                                                              \
    do {                                                                            \
        dice_error_clear(&tc->err);                                                 \
        if ((expr) != 0) {                                                          \
            test_fail(tc, __FILE__, __LINE__, "%s failed: %s", #expr, tc->err.msg); \
            return;                                                                 \
        }                                                                           \
    } while (0)

// expr must fail (return non-zero) and its message must contain `substring`.
#define CHECK_FAILS_WITH(expr, substring)                                                    \
    do {                                                                                     \
        dice_error_clear(&tc->err);                                                          \
        if ((expr) == 0) {                                                                   \
            test_fail(tc, __FILE__, __LINE__, "%s succeeded, expected an error with '%s'", \
                      #expr, (substring));                                                   \
            return;                                                                          \
        }                                                                                    \
        if (!strstr(tc->err.msg, (substring))) {                                             \
            test_fail(tc, __FILE__, __LINE__, "%s: message '%s' lacks '%s'", #expr,        \
                      tc->err.msg, (substring));                                             \
            return;                                                                          \
        }                                                                                    \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                    \
    do {                                                                                         \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                   \
        if (!(fabs(check_a_ - check_b_) <= (tol))) {                                             \
            test_fail(tc, __FILE__, __LINE__, "%s = %.9g, %s = %.9g, |diff| %.3g > %.3g", #a,    \
                      check_a_, #b, check_b_, fabs(check_a_ - check_b_), (double)(tol));         \
            return;                                                                              \
        }                                                                                        \
    } while (0)

#define CHECK_REL_ERR(got, want, n, tol)                                                        \
    do {                                                                                        \
        double check_rel_ = test_rel_err_f32((got), (want), (n));                               \
        if (!(check_rel_ <= (tol))) {                                                           \
            test_fail(tc, __FILE__, __LINE__, "relative error of %s vs %s = %.3g > %.3g", #got, \
                      #want, check_rel_, (double)(tol));                                        \
            return;                                                                             \
        }                                                                                       \
    } while (0)

#define SKIP(...)                    \
    do {                             \
        test_skip(tc, __VA_ARGS__);  \
        return;                      \
    } while (0)
