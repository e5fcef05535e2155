// tests/test_cli.c — the dice program's command dispatch and help.
#include "test.h"

DICE_TEST(cli_help_lists_commands) {
    char out[8192], err[4096];
    const char *help[] = {test_dice_bin(tc), "help", NULL};
    CHECK(test_run(tc, help, out, sizeof out, err, sizeof err) == 0);
    CHECK(strstr(out, "inspect") && strstr(out, "demo") && strstr(out, "help"));
    const char *help_inspect[] = {test_dice_bin(tc), "help", "inspect", NULL};
    CHECK(test_run(tc, help_inspect, out, sizeof out, err, sizeof err) == 0);
    CHECK(strstr(out, "usage: dice inspect") != NULL);
}

DICE_TEST(cli_unknown_command_is_one_line_error) {
    char out[4096], err[4096];
    const char *argv[] = {test_dice_bin(tc), "frobnicate", NULL};
    CHECK(test_run(tc, argv, out, sizeof out, err, sizeof err) == 2);
    CHECK(strstr(err, "unknown command 'frobnicate'") != NULL);
    CHECK(strchr(err, '\n') == err + strlen(err) - 1);  // exactly one line
    const char *help_bad[] = {test_dice_bin(tc), "help", "frobnicate", NULL};
    CHECK(test_run(tc, help_bad, out, sizeof out, err, sizeof err) == 2);
    const char *none[] = {test_dice_bin(tc), NULL};
    CHECK(test_run(tc, none, out, sizeof out, err, sizeof err) == 2);
    CHECK(strstr(err, "usage: dice COMMAND") != NULL);
}

