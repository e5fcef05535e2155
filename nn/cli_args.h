// nn/cli_args.h — option values of the dice subcommands, parsed with one-line errors on stderr
// ("dice CMD: --flag wants ..., got 'text'").
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// A whole decimal integer in [lo, hi] into *out; 0, or -1 after printing the error.
int cli_int(const char *cmd, const char *flag, const char *text, long long lo, long long hi, long long *out);
// A finite number (strtod syntax) into *out; 0, or -1 after printing the error.
int cli_number(const char *cmd, const char *flag, const char *text, double *out);

#ifdef __cplusplus
}
#endif
