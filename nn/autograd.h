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
//
// Parameter binding (graph_bind_params) trains a whole model whose forward code calls the frozen-weight
// ops, without rewriting it: the trainer builds the model so that its weight Tensors ARE Params' values
// (same data pointer, shape and dtype), binds the Params to the graph, and from then on every op_linear /
// op_conv2d on that graph whose weight or bias has a bound Param's data pointer runs as the trainable op
// with that Param's Var, so backward adds into Param.grad. A weight bound with its bias not (or the
// reverse) gets the unbound one as a frozen leaf. Only these two ops look bindings up: the affine of layer
// norm and group norm, embedding tables and everything else stay frozen even when their data is a Param.
//  - Lifetimes: the graph keeps a sorted table of the Params (heap, freed by graph_free or the next bind);
//    the Params must outlive the binding. Each bound Param gets one Var per step, created at its first use
//    and reused by every later use, so all uses accumulate; that Var lives in the graph's arena and
//    graph_reset forgets it (call graph_reset whenever the arena is reset or released below it).
//  - No-grad: while the graph does not record, bound weights take the frozen path (no Var, no tape).
//  - Checkpoints: a checkpointed block's sub-graphs see the same bindings, so its recomputed backward adds
//    into the Params too, in the same order as without checkpointing (bit-identical gradients); a block
//    that uses a bound Param is recorded even when none of its inputs requires a gradient.
//  - Mixed precision: a Param with a `working` tensor (the model's bf16 copy of the f32 master value) is bound
//    by the working tensor's data pointer; its Var is the working tensor with a gradient of its own, in the
//    working dtype, in the graph's arena. After backward, graph_collect_param_grads adds those gradients,
//    converted to f32, into Param.grad; after the optimiser step, param_sync_working rounds the master value
//    into the working copy. Not available under checkpointing (its sub-graphs' Vars are gone by then).
#pragma once
#include <stdbool.h>

#include "arena.h"
#include "context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Graph Graph;
typedef struct TapeNode TapeNode;
typedef struct Param Param;
typedef struct ParamBinding ParamBinding;  // one bound Param (autograd.c)

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
    ParamBinding *bound;  // graph_bind_params: sorted by data pointer (heap; a checkpoint's sub-graph borrows
    int n_bound;          // its parent's table, bound_owned false)
    bool bound_owned;
    Var **bound_vars;     // this step's Var of bound[i], NULL until first use (graph arena; NULL after reset)
    bool bound_used;      // an op met a bound tensor since graph_init / graph_reset (recording or not)
    bool bound_mixed;     // a bound Param has a working copy (mixed precision)
};

int graph_init(Graph *g, DiceCtx *ctx, Arena *arena, DiceError *err);
void graph_free(Graph *g);
void graph_reset(Graph *g);             // forget the tape (the caller resets the arena)
void graph_no_grad_begin(Graph *g);     // e.g. around the CFG teacher
void graph_no_grad_end(Graph *g);
bool graph_recording(const Graph *g);

struct Param {
    const char *name;     // checkpoint tensor name, e.g. "fc1.weight"
    Tensor value;         // fp32 master weights (persistent arena)
    Tensor grad;          // same shape, fp32, persistent; accumulated by backward
    Tensor working;       // optional (data NULL: none): the model's copy in its own dtype (bf16 on CUDA), used by
                          // the ops instead of value; see "mixed precision" above
};

// Allocate value and zeroed gradient for a Param in a persistent arena.
int param_init(Param *p, const char *name, Arena *persistent, int ndim, const int64_t *shape, DiceError *err);
int param_zero_grad(DiceCtx *ctx, Param *p, DiceError *err);
// A Var for p (requires grad; its grad aliases p->grad). Not recorded when the graph is in no-grad.
int graph_param(Graph *g, Var **out, Param *p, DiceError *err);

// Binds params[0..n) to g (replacing any earlier binding; NULL, 0 unbinds), see the opening comment. Each
// Param needs a value with data and a grad of the same shape, dtype and device; two Params may not share a
// data pointer. On failure the earlier binding stays. Forgets this step's bound Vars (Vars already used by
// the tape stay valid).
int graph_bind_params(Graph *g, Param *params, int n, DiceError *err);
// For ops: *out = this step's Var of the Param bound to t's data pointer (created at first use), or NULL
// when t is NULL, not bound, or the graph is not recording. Fails when t is bound but its shape, dtype or
// device differs from the Param's value. Only t->data is looked up: a view starting inside a Param's value
// (not at its first element) is not recognised and stays frozen.
int graph_bound_var(Graph *g, Var **out, const Tensor *t, DiceError *err);
// Mixed precision: Param.grad += (f32) the gradient of this step's Var of every bound Param with a working copy.
int graph_collect_param_grads(Graph *g, DiceError *err);
// working = value, rounded to the working dtype (no-op without a working copy).
int param_sync_working(DiceCtx *ctx, Param *p, DiceError *err);

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
// backward. At most 4 inputs. fn's sub-graphs see g's parameter bindings (see the opening comment).
void graph_set_scratch(Graph *g, Arena *scratch);
typedef int (*CheckpointFn)(Graph *g, Var *const *inputs, Var **out, void *user, DiceError *err);
int graph_checkpoint(Graph *g, CheckpointFn fn, void *user, Var *const *inputs, int n_inputs, Var **out,
                     DiceError *err);

#ifdef __cplusplus
}
#endif
