// tests/main.c — the test runner: runs every registered test (or those matching the filters),
// each in a forked child with a timeout, prints one line per test and ends with
// "N passed, N failed, N skipped"; exits 1 if any test failed.
//
//   build/emu/test_dice [--cuda-only] [--list] [--no-fork] [NAME-SUBSTRING ...]
// Environment: DICE_TEST_SEED (fix the random seed), DICE_TEST_TIMEOUT (seconds, default 900).
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nn/cuda_api.h"
#include "registry.h"

static double now_seconds(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}

typedef struct TestResult {
    int failed, skipped;
    char message[1200];
} TestResult;

static void run_in_process(const TestEntry *t, uint64_t seed, TestResult *res) {
    TestCtx tc;
    memset(&tc, 0, sizeof tc);
    tc.name = t->name;
    tc.seed = seed;
    t->fn(&tc);
    test_cleanup_tmpdir();
    res->failed = tc.failed;
    res->skipped = tc.skipped && !tc.failed;
    memcpy(res->message, tc.message, sizeof res->message);
}

static void run_forked(const TestEntry *t, uint64_t seed, int timeout_s, TestResult *res) {
    int fds[2];
    memset(res, 0, sizeof *res);
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) != 0) {
        res->failed = 1;
        snprintf(res->message, sizeof res->message, "pipe: %s", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        res->failed = 1;
        snprintf(res->message, sizeof res->message, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        alarm((unsigned)timeout_s);
        TestResult child;
        memset(&child, 0, sizeof child);
        run_in_process(t, seed, &child);
        ssize_t w = write(fds[1], &child, sizeof child);
        _exit(w == (ssize_t)sizeof child ? 0 : 3);
    }
    close(fds[1]);
    TestResult got;
    size_t have = 0;
    while (have < sizeof got) {
        ssize_t r = read(fds[0], (char *)&got + have, sizeof got - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        have += (size_t)r;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
        res->failed = 1;
        int sig = WTERMSIG(status);
        snprintf(res->message, sizeof res->message, "%s (signal %d)",
                 sig == SIGALRM ? "timed out" : "crashed", sig);
    } else if (WEXITSTATUS(status) != 0 || have != sizeof got) {
        res->failed = 1;
        snprintf(res->message, sizeof res->message, "test process exited with status %d",
                 WEXITSTATUS(status));
    } else {
        *res = got;
    }
}

static int matches(const char *name, int nfilters, char **filters) {
    if (nfilters == 0) return 1;
    for (int i = 0; i < nfilters; i++)
        if (strstr(name, filters[i])) return 1;
    return 0;
}

// The probe runs in a child process: a CUDA runtime initialised before fork() cannot be used by the
// forked test processes (every CUDA call there fails with cudaErrorInitializationError), so the parent
// never touches CUDA itself.
static int cuda_device_present(void) {
#if defined(DICE_CUDA) && !defined(DICE_EMU)
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        int count = 0;
        _exit(cudaGetDeviceCount(&count) == cudaSuccess && count > 0 ? 0 : 1);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
#elif defined(DICE_CUDA)
    return 1;  // the SIMT emulator is the device
#else
    return 0;
#endif
}

int main(int argc, char **argv) {
    int cuda_only = 0, list = 0, fork_tests = 1, nfilters = 0;
    char **filters = calloc((size_t)argc, sizeof *filters);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cuda-only")) cuda_only = 1;
        else if (!strcmp(argv[i], "--list")) list = 1;
        else if (!strcmp(argv[i], "--no-fork")) fork_tests = 0;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [--cuda-only] [--list] [--no-fork] [NAME-SUBSTRING ...]\n", argv[0]);
            return 2;
        } else filters[nfilters++] = argv[i];
    }
    const char *seed_env = getenv("DICE_TEST_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL) * 1000003u + (uint64_t)getpid();
    const char *timeout_env = getenv("DICE_TEST_TIMEOUT");
    int timeout_s = timeout_env ? atoi(timeout_env) : 900;

    int have_device = cuda_device_present();
    if (cuda_only && !have_device) {
        printf("no CUDA device found: the GPU suite is skipped\n");
        int n = 0;
        for (int i = 0; i < dice_test_count; i++) n += dice_tests[i].uses_cuda;
        printf("0 passed, 0 failed, %d skipped\n", n);
        free(filters);
        return 0;
    }
    printf("dice tests: seed %llu (set DICE_TEST_SEED to repeat)\n", (unsigned long long)seed);
    int passed = 0, failed = 0, skipped = 0;
    double t_start = now_seconds();
    for (int i = 0; i < dice_test_count; i++) {
        const TestEntry *t = &dice_tests[i];
        if ((cuda_only && !t->uses_cuda) || !matches(t->name, nfilters, filters)) continue;
        if (list) {
            printf("%s%s  (%s)\n", t->name, t->uses_cuda ? " [cuda]" : "", t->file);
            continue;
        }
        TestResult res;
        double t0 = now_seconds();
        if (t->uses_cuda && !have_device) {
            memset(&res, 0, sizeof res);
            res.skipped = 1;
            snprintf(res.message, sizeof res.message, "built without CUDA");
        } else if (fork_tests) {
            run_forked(t, seed, timeout_s, &res);
        } else {
            run_in_process(t, seed, &res);
        }
        double dt = now_seconds() - t0;
        if (res.failed) {
            failed++;
            printf("FAIL  %-48s %7.2fs  %s\n", t->name, dt, res.message);
        } else if (res.skipped) {
            skipped++;
            printf("SKIP  %-48s %7.2fs  %s\n", t->name, dt, res.message);
        } else {
            passed++;
            printf("ok    %-48s %7.2fs\n", t->name, dt);
        }
        fflush(stdout);
    }
    free(filters);
    if (list) return 0;
    printf("total %.1fs; seed %llu\n", now_seconds() - t_start, (unsigned long long)seed);
    if (skipped) printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
