// nn/autograd.h — reverse-mode automatic differentiation on a tape.
//
// A Graph records, for one step, the ops whose inputs require a gradient. Frozen weights are plain
// Tensors (never Vars), so a frozen model records nothing until an activation that requires a gradient
// reaches it (in DICE: the sharpened text embedding entering each cross-attention). Backward walks the
// tape in reverse and computes only the input gradients that are needed: frozen layers compute no
// weight gradient, and inputs that do not require a gradient get none.
//
//   Graph g;  graph_init(&g, &ctx, &step_arena);
//   Var *c = graph_leaf(&g, &embedding, true);               // requires grad
//   Var *h = op_linear(&g, x, &layer, err) ...              // ops in nn/ops.h record themselves
//   graph_backward(&g, loss, err);                           // fills every reachable Var's grad
//
// Memory: Vars, saved activations and gradients live in the graph's per-step arena; graph_reset
// forgets the tape (reset the arena too). Trained parameters (the sharpener) are Params: value and
// gradient in persistent memory. graph_param makes a Var whose gradient IS the Param's gradient, so
// backward adds into it and gradients accumulate over micro-batches until param_zero_grad.
#pragma once
#include <stdbool.h>

#include "arena.h"
#include "context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Graph Graph;
typedef struct TapeNode TapeNode;

typedef struct Var {
    Tensor value;
    Tensor grad;          // grad.data == NULL until a gradient arrives (then same shape/dtype/device)
    bool requires_grad;
} Var;

// One recorded op. backward reads node->output->grad and accumulates into the inputs that require
// a gradient (graph_accumulate), using whatever the op saved in `saved` (arena memory).
struct TapeNode {
    const char *op;
    int (*backward)(Graph *g, TapeNode *node, DiceError *err);
    Var *output;
    Var *inputs[4];
    int n_inputs;
    void *saved;
};

struct Graph {
    DiceCtx *ctx;
    Arena *arena;         // per-step memory: Vars, saved tensors, gradients
    TapeNode *nodes;      // growable array (heap), reused across steps
    int n_nodes, cap_nodes;
    int no_grad_depth;    // > 0 inside graph_no_grad_begin/end: nothing is recorded
    Arena *scratch;       // where checkpointed blocks run (graph_checkpoint); NULL if unused
};

int graph_init(Graph *g, DiceCtx *ctx, Arena *arena, DiceError *err);
void graph_free(Graph *g);
void graph_reset(Graph *g);             // forget the tape (the caller resets the arena)
void graph_no_grad_begin(Graph *g);     // e.g. around the CFG teacher
void graph_no_grad_end(Graph *g);
bool graph_recording(const Graph *g);

typedef struct Param {
    const char *name;     // checkpoint tensor name, e.g. "fc1.weight"
    Tensor value;         // fp32 master weights (persistent arena)
    Tensor grad;          // same shape, fp32, persistent; accumulated by backward
} Param;

// Allocate value and zeroed gradient for a Param in a persistent arena.
int param_init(Param *p, const char *name, Arena *persistent, int ndim, const int64_t *shape, DiceError *err);
int param_zero_grad(DiceCtx *ctx, Param *p, DiceError *err);
// A Var for p (requires grad; its grad aliases p->grad). Not recorded when the graph is in no-grad.
int graph_param(Graph *g, Var **out, Param *p, DiceError *err);

// A Var wrapping an existing tensor (an input, or a view of a Param's value).
int graph_leaf(Graph *g, Var **out, const Tensor *value, bool requires_grad, DiceError *err);
// A new Var with an arena-allocated value; requires_grad = recording && any input requires grad.
int graph_new_var(Graph *g, Var **out, DType dtype, int ndim, const int64_t *shape, Var *const *inputs,
                  int n_inputs, DiceError *err);
// Record a node producing `output` (only if output->requires_grad).
int graph_record(Graph *g, const char *op, int (*backward)(Graph *, TapeNode *, DiceError *), Var *output,
                 Var *const *inputs, int n_inputs, void *saved, DiceError *err);
// var->grad += grad (allocating and zero-filling var->grad on first use).
int graph_accumulate(Graph *g, Var *var, const Tensor *grad, DiceError *err);
// Backward passes add into the gradients of leaves and Params; the gradients of intermediate Vars are
// consumed, so backward may be called again from another output of the same tape.
// Backward from `loss` with d(loss) = 1 (loss must be a scalar or one-element tensor), or from
// `output` with a given gradient.
int graph_backward(Graph *g, Var *loss, DiceError *err);
int graph_backward_from(Graph *g, Var *output, const Tensor *grad, DiceError *err);

// Recomputation (activation checkpointing) of a block. fn builds `out` from inputs through ops.
// graph_checkpoint runs fn in the scratch arena without recording, copies its output into the graph's
// arena, releases the block's activations and records a single node; that node's backward re-runs fn
// in the scratch arena with recording, back-propagates through it and releases it again. Same
// gradients as without checkpointing, bit for bit; the graph's arena holds only block outputs.
// Needs a scratch arena on the graph's device (graph_set_scratch). `user` must stay valid until
// backward. At most 4 inputs.
void graph_set_scratch(Graph *g, Arena *scratch);
typedef int (*CheckpointFn)(Graph *g, Var *const *inputs, Var **out, void *user, DiceError *err);
int graph_checkpoint(Graph *g, CheckpointFn fn, void *user, Var *const *inputs, int n_inputs, Var **out,
                     DiceError *err);

#ifdef __cplusplus
}
#endif
