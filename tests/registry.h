// tests/registry.h — the table of all tests; build/<flavour>/tests/registry.c is generated
// from the DICE_TEST / DICE_CUDA_TEST declarations by scripts/gen_test_registry.sh.
#pragma once
#include "test.h"

typedef struct TestEntry {
    const char *name;
    void (*fn)(TestCtx *tc);
    int uses_cuda;      // declared with DICE_CUDA_TEST
    const char *file;   // source file that declares it
} TestEntry;

extern const TestEntry dice_tests[];
extern const int dice_test_count;
