// tests/shards_checks.h — checks shared by the shard tests (tests/test_shards.c, tests/test_shards_crafted.c):
// a path in the test's scratch folder, stderr captured and required empty, and the one-line open error.
#pragma once
#include <stddef.h>

#include "test.h"

// test_tmpdir(tc)/name into out.
void shard_test_path(TestCtx *tc, char *out, size_t cap, const char *name);
// Sends stderr to a file (its path into `path`) until shard_stderr_end, which fails the test if anything was
// written there. Returns the saved descriptor, -1 on failure.
int shard_stderr_begin(TestCtx *tc, char *path, size_t cap);
void shard_stderr_end(TestCtx *tc, int saved, const char *path);
// shard_open(path) must fail with a one-line message naming the file and containing `substring`.
void shard_check_open_fails(TestCtx *tc, const char *path, const char *substring);
