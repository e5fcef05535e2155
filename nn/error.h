// nn/error.h — error reporting for the dice library.
//
// Library functions return 0 on success and -1 on failure, writing one human-readable
// line into a caller-owned DiceError: what went wrong, the context it happened in (the
// file being read, the op being run), and the source location "[file:line]" of the
// check that failed. The CLI prints that line once and exits non-zero.
//
//   if (st_open(&st, path, err)) return -1;                  // propagate
//   DICE_CHECK(err, n >= 0, "%s: negative count %d", path, n); // validate, returns -1
//   CUDA_TRY(err, cudaMalloc(&p, bytes));                   // library call, returns -1
#pragma once
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct DiceError {
    char msg[1024];  // "context: problem [file:line]"; empty when no error
} DiceError;

// Writes "<formatted> [file:line]" into err (if err is non-NULL); always returns -1.
int dice_fail_at(DiceError *err, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// Prepends "<formatted>: " to err's message, so callers add what they were doing.
void dice_error_context(DiceError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dice_error_clear(DiceError *err);

#ifdef __cplusplus
}
#endif

// Fail with a message: `return DICE_FAIL(err, "bad %s", x);`
#define DICE_FAIL(err, ...) dice_fail_at((err), __FILE__, __LINE__, __VA_ARGS__)
// Check a condition; on failure record the message and return -1 from the enclosing function.
#define DICE_CHECK(err, cond, ...)                                   \
    do {                                                            \
        if (!(cond)) return dice_fail_at((err), __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)
// Propagate a failure from a callee that already filled err.
#define DICE_TRY(expr)              \
    do {                            \
        if ((expr) != 0) return -1; \
    } while (0)
