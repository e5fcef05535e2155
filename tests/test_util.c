// tests/test_util.c — helpers for tests (declared in test.h): failure/skip recording, relative
// error, repository paths, per-test scratch directories, running the dice program as a subprocess,
// golden tensors, training runs' loss.csv.
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#include "nn/safetensors.h"

void test_fail(TestCtx *tc, const char *file, int line, const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!tc->failed) snprintf(tc->message, sizeof tc->message, "%s:%d: %s", file, line, text);
    tc->failed = 1;
}

void test_skip(TestCtx *tc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tc->message, sizeof tc->message, fmt, ap);
    va_end(ap);
    tc->skipped = 1;
}

double test_rel_err_f32(const float *got, const float *want, size_t n) {
    double diff = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - (double)want[i];
        diff += d * d;
        norm += (double)want[i] * want[i];
    }
    if (diff != diff) return INFINITY;  // NaN anywhere in got
    return sqrt(diff) / (norm > 1e-300 ? sqrt(norm) : 1e-150);
}

// Per-process scratch state of the test being run (the runner is the only user).
typedef struct RunnerState {
    char tmpdir[256];
    char path[4096];
} RunnerState;
static RunnerState *runner_state(void) {
    static RunnerState state;  // one test runs per process at a time
    return &state;
}

const char *test_path(TestCtx *tc, const char *relative) {
    (void)tc;
    const char *root = getenv("DICE_ROOT");
    snprintf(runner_state()->path, sizeof runner_state()->path, "%s/%s", root ? root : ".", relative);
    return runner_state()->path;
}

const char *test_tmpdir(TestCtx *tc) {
    RunnerState *st = runner_state();
    if (!st->tmpdir[0]) {
        snprintf(st->tmpdir, sizeof st->tmpdir, "/tmp/dice-test-%s-XXXXXX", tc->name);
        if (!mkdtemp(st->tmpdir)) {
            test_fail(tc, __FILE__, __LINE__, "mkdtemp(%s): %s", st->tmpdir, strerror(errno));
            st->tmpdir[0] = 0;
            return "/nonexistent";
        }
    }
    return st->tmpdir;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void test_cleanup_tmpdir(void) {
    RunnerState *st = runner_state();
    if (st->tmpdir[0]) nftw(st->tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    st->tmpdir[0] = 0;
}


// Reads a whole small file into buf (NUL-terminated, truncated to bufsize - 1).
static void slurp(const char *path, char *buf, size_t bufsize) {
    buf[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t n = fread(buf, 1, bufsize - 1, f);
    buf[n] = 0;
    fclose(f);
}

int test_run(TestCtx *tc, const char *const *argv, char *out, size_t outsize, char *errout, size_t errsize) {
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/run.stdout", test_tmpdir(tc));
    snprintf(err_path, sizeof err_path, "%s/run.stderr", test_tmpdir(tc));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    if (out) slurp(out_path, out, outsize);
    if (errout) slurp(err_path, errout, errsize);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

const char *test_dice_bin(TestCtx *tc) {
    const char *bin = getenv("DICE_BIN");
    return bin ? bin : test_path(tc, "build/dice");
}

const float *test_golden_f32(TestCtx *tc, const StFile *f, const char *name, int64_t numel) {
    const StTensorInfo *t = st_find(f, name);
    if (!t || t->dtype != DT_F32 || st_numel(t) != numel) {
        test_fail(tc, __FILE__, __LINE__, "golden tensor %s missing or malformed", name);
        return NULL;
    }
    return t->data;
}

int test_read_losses(const char *out_dir, double *losses, int cap) {
    char path[4200];
    snprintf(path, sizeof path, "%s/loss.csv", out_dir);
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    char line[256];
    int n = 0;
    if (!fgets(line, sizeof line, fp) || strcmp(line, "step,loss,lr,seconds\n")) n = -1;
    long long step;
    double loss, lr;
    while (n >= 0 && n < cap && fgets(line, sizeof line, fp))
        if (sscanf(line, "%lld,%lf,%lf,", &step, &loss, &lr) == 3 && step == n + 1) losses[n++] = loss;
        else n = -1;
    fclose(fp);
    return n;
}
