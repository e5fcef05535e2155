// tests/shards_checks.c — checks shared by the shard tests (see tests/shards_checks.h).
#include "tests/shards_checks.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "data/shards.h"

void shard_test_path(TestCtx *tc, char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", test_tmpdir(tc), name);
}

// Sends stderr to a file until shard_stderr_end, which fails the test if anything was written there.
int shard_stderr_begin(TestCtx *tc, char *path, size_t cap) {
    shard_test_path(tc, path, cap, "stderr.txt");
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (saved < 0 || fd < 0) return -1;
    dup2(fd, 2);
    close(fd);
    return saved;
}

void shard_stderr_end(TestCtx *tc, int saved, const char *path) {
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *fp = fopen(path, "rb");
    CHECK(fp);
    char text[400] = "";
    size_t got = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    CHECK_MSG(got == 0, "something was printed on stderr: %s", text);
}

// shard_open(path) must fail with a one-line message naming the file and containing `substring`.
void shard_check_open_fails(TestCtx *tc, const char *path, const char *substring) {
    Shard *s = (Shard *)1;
    CHECK_FAILS_WITH(shard_open(&s, path, &tc->err), substring);
    CHECK(s == NULL);
    CHECK_MSG(strstr(tc->err.msg, path) != NULL, "message '%s' does not name %s", tc->err.msg, path);
    CHECK_MSG(!strchr(tc->err.msg, '\n'), "message '%s' is more than one line", tc->err.msg);
}
