// dice.c — the `dice` program: dispatches to the subcommands in nn/commands.h.
#include <stdio.h>
#include <string.h>

#include "nn/commands.h"
#include "nn/host_memory.h"

static const DiceCommand *const commands[] = {&cmd_inspect, &cmd_demo,   &cmd_prep,   &cmd_inspect_embeddings,
                                                 &cmd_train,   &cmd_train_base, &cmd_sample, &cmd_run};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static const DiceCommand *find_command(const char *name) {
    for (int i = 0; i < n_commands; i++)
        if (!strcmp(commands[i]->name, name)) return commands[i];
    return NULL;
}

static void print_overview(FILE *out) {
    fprintf(out,
            "dice: DICE (distilling classifier-free guidance into text embeddings) in C/CUDA\n\n"
            "usage: dice COMMAND [ARGS]\n\ncommands:\n");
    for (int i = 0; i < n_commands; i++) fprintf(out, "  %-18s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(out, "  %-18s %s\n\n", "help", "this list, or `dice help COMMAND` for one command");
}

int main(int argc, char **argv) {
    host_memory_keep_freed();
    if (argc < 2) {
        print_overview(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        if (argc < 3) {
            print_overview(stdout);
            return 0;
        }
        const DiceCommand *cmd = find_command(argv[2]);
        if (!cmd) {
            fprintf(stderr, "dice help: unknown command '%s' (see `dice help`)\n", argv[2]);
            return 2;
        }
        fputs(cmd->usage, stdout);
        return 0;
    }
    const DiceCommand *cmd = find_command(name);
    if (!cmd) {
        fprintf(stderr, "dice: unknown command '%s' (see `dice help`)\n", name);
        return 2;
    }
    return cmd->run(argc - 1, argv + 1);
}
