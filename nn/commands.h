// nn/commands.h — the subcommands of the `dice` program (dispatched by dice.c).
// Each takes the arguments after its name (argv[0] is the command name), prints one clear
// error line on failure and returns the process exit status.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

typedef struct DiceCommand {
    const char *name;
    const char *summary;  // one line for `dice help`
    const char *usage;    // full text for `dice help NAME`
    int (*run)(int argc, char **argv);
} DiceCommand;

extern const DiceCommand cmd_inspect;  // nn/cmd_inspect.c
extern const DiceCommand cmd_demo;     // nn/cmd_demo.c
extern const DiceCommand cmd_prep;     // nn/cmd_prep.c
extern const DiceCommand cmd_inspect_embeddings;  // nn/cmd_inspect_embeddings.c
extern const DiceCommand cmd_train;    // nn/cmd_train.c
extern const DiceCommand cmd_train_base;  // nn/cmd_train_base.c
extern const DiceCommand cmd_sample;   // nn/cmd_sample.c
extern const DiceCommand cmd_run;      // nn/cmd_run.c

#ifdef __cplusplus
}
#endif
