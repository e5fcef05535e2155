// nn/cmd_demo.c — `dice demo`: the embedded default (issue "The embedded default"); until that
// lands it says so and succeeds, so `make demo` never fails on a fresh machine.
#include <stdio.h>

#include "commands.h"

static int run_demo(int argc, char **argv) {
    (void)argc, (void)argv;
    printf("dice demo: not yet — the miniature DICE reproduction has not landed; see README.md\n");
    return 0;
}

const DiceCommand cmd_demo = {
    "demo", "the miniature DICE reproduction on the synthetic world (not yet)",
    "usage: dice demo\n\n"
    "Trains a DICE sharpener on the shipped tiny model and compares unguided, CFG, naive scaling\n"
    "and DICE sampling. Not yet available: the command prints so and exits 0.\n",
    run_demo};
