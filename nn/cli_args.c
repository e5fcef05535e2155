// nn/cli_args.c — option value parsing of the dice subcommands (see cli_args.h).
#include "cli_args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int cli_int(const char *cmd, const char *flag, const char *text, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "dice %s: %s wants an integer in [%lld, %lld], got '%s'\n", cmd, flag, lo, hi, text);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_number(const char *cmd, const char *flag, const char *text, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || errno || !isfinite(v)) {
        fprintf(stderr, "dice %s: %s wants a number, got '%s'\n", cmd, flag, text);
        return -1;
    }
    *out = v;
    return 0;
}
