// nn/autograd.c — the tape, gradient accumulation and backward pass (see autograd.h).
#include "autograd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "convert_elem.h"
#include "cuda_api.h"
#include "kernels/accumulate.h"
#include "tensor_copy.h"

int graph_init(Graph *g, DiceCtx *ctx, Arena *arena, DiceError *err) {
    memset(g, 0, sizeof *g);
    DICE_CHECK(err, ctx && arena, "graph_init: a context and an arena are required");
    g->ctx = ctx;
    g->arena = arena;
    return 0;
}

void graph_free(Graph *g) {
    free(g->nodes);
    if (g->bound_owned) free(g->bound);
    memset(g, 0, sizeof *g);
}

void graph_reset(Graph *g) {
    g->n_nodes = 0;
    g->no_grad_depth = 0;
    g->bound_vars = NULL;
    g->bound_used = false;
}

void graph_no_grad_begin(Graph *g) { g->no_grad_depth++; }
void graph_no_grad_end(Graph *g) {
    if (g->no_grad_depth > 0) g->no_grad_depth--;
}
bool graph_recording(const Graph *g) { return g->no_grad_depth == 0; }

static int new_var(Graph *g, Var **out, DiceError *err) {
    void *mem;
    DICE_TRY(arena_alloc_host(g->arena, sizeof(Var), &mem, err));
    memset(mem, 0, sizeof(Var));
    *out = mem;
    return 0;
}

int graph_leaf(Graph *g, Var **out, const Tensor *value, bool requires_grad, DiceError *err) {
    Var *v;
    DICE_TRY(new_var(g, &v, err));
    v->value = *value;
    v->requires_grad = requires_grad;
    *out = v;
    return 0;
}

int graph_new_var(Graph *g, Var **out, DType dtype, int ndim, const int64_t *shape, Var *const *inputs,
                  int n_inputs, DiceError *err) {
    Var *v;
    DICE_TRY(new_var(g, &v, err));
    Arena *a = g->arena;
    DICE_CHECK(err, a->device == g->ctx->device, "graph arena is on %s but the context on %s",
               device_name(a->device), device_name(g->ctx->device));
    DICE_TRY(arena_tensor(a, &v->value, dtype, ndim, shape, err));
    for (int i = 0; i < n_inputs && graph_recording(g); i++)
        if (inputs[i] && inputs[i]->requires_grad) v->requires_grad = true;
    *out = v;
    return 0;
}

int graph_record(Graph *g, const char *op, int (*backward)(Graph *, TapeNode *, DiceError *), Var *output,
                 Var *const *inputs, int n_inputs, void *saved, DiceError *err) {
    if (!output->requires_grad || !graph_recording(g)) return 0;
    DICE_CHECK(err, n_inputs >= 0 && n_inputs <= 4, "%s: %d inputs recorded, at most 4", op, n_inputs);
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 256;
        TapeNode *nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
        DICE_CHECK(err, nodes, "out of host memory growing the tape to %d nodes", cap);
        g->nodes = nodes;
        g->cap_nodes = cap;
    }
    TapeNode *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->backward = backward;
    n->output = output;
    for (int i = 0; i < n_inputs; i++) n->inputs[i] = inputs[i];
    n->n_inputs = n_inputs;
    n->saved = saved;
    return 0;
}

int graph_accumulate(Graph *g, Var *var, const Tensor *grad, DiceError *err) {
    if (!var->requires_grad) return 0;
    char a[128], b[128];
    DICE_CHECK(err, tensor_same_shape(&var->value, grad) && var->value.dtype == grad->dtype &&
                        var->value.device == grad->device && tensor_is_contiguous(grad),
               "gradient %s does not match its variable %s (or is not contiguous)", tensor_describe(grad, a, sizeof a),
               tensor_describe(&var->value, b, sizeof b));
    if (!var->grad.data) {
        DICE_TRY(arena_tensor(g->arena, &var->grad, grad->dtype, grad->ndim, grad->shape, err));
        return tensor_copy(g->ctx, &var->grad, grad, err);
    }
    if (grad->device == DEV_CPU) return accumulate_cpu(var->grad.data, grad->data, tensor_numel(grad), grad->dtype, err);
#ifdef DICE_CUDA
    return accumulate_cuda(var->grad.data, grad->data, tensor_numel(grad), grad->dtype, g->ctx->stream, err);
#else
    return DICE_FAIL(err, "accumulate: this build of dice has no CUDA backend");
#endif
}

int graph_backward_from(Graph *g, Var *output, const Tensor *grad, DiceError *err) {
    DICE_CHECK(err, output->requires_grad, "backward: the output does not require a gradient (nothing was recorded)");
    DICE_TRY(graph_accumulate(g, output, grad, err));
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        TapeNode *n = &g->nodes[i];
        if (!n->output->grad.data) continue;  // no gradient reached this op
        if (n->backward(g, n, err)) {
            dice_error_context(err, "backward of %s (tape node %d)", n->op, i);
            return -1;
        }
        // The gradient of an op's output is consumed by its backward: a later backward from another
        // output must not propagate it again (leaf and parameter gradients stay and accumulate).
        memset(&n->output->grad, 0, sizeof n->output->grad);
    }
    return 0;
}

int graph_backward(Graph *g, Var *loss, DiceError *err) {
    char desc[128];
    DICE_CHECK(err, tensor_numel(&loss->value) == 1, "backward: the loss %s is not a single value",
               tensor_describe(&loss->value, desc, sizeof desc));
    unsigned char one_bits[8] = {0};
    dice_store_f64(one_bits, loss->value.dtype, 0, 1.0);
    Tensor host_one, one;
    DICE_TRY(tensor_wrap(&host_one, one_bits, loss->value.dtype, DEV_CPU, loss->value.ndim, loss->value.shape, err));
    DICE_TRY(arena_tensor(g->arena, &one, loss->value.dtype, loss->value.ndim, loss->value.shape, err));
    DICE_TRY(tensor_copy(g->ctx, &one, &host_one, err));
    return graph_backward_from(g, loss, &one, err);
}

int param_init(Param *p, const char *name, Arena *persistent, int ndim, const int64_t *shape, DiceError *err) {
    memset(p, 0, sizeof *p);
    p->name = name;
    DICE_TRY(arena_tensor(persistent, &p->value, DT_F32, ndim, shape, err));
    DICE_TRY(arena_tensor(persistent, &p->grad, DT_F32, ndim, shape, err));
    if (persistent->device == DEV_CPU) {
        memset(p->grad.data, 0, tensor_nbytes(&p->grad));
        return 0;
    }
#ifdef DICE_CUDA
    CUDA_TRY(err, cudaMemset(p->grad.data, 0, tensor_nbytes(&p->grad)));
#endif
    return 0;
}

int param_zero_grad(DiceCtx *ctx, Param *p, DiceError *err) { return tensor_zero(ctx, &p->grad, err); }

int graph_param(Graph *g, Var **out, Param *p, DiceError *err) {
    Var *v;
    DICE_TRY(new_var(g, &v, err));
    v->value = p->value;
    v->grad = p->grad;
    v->requires_grad = true;
    *out = v;
    return 0;
}

// ---------------------------------------------------------------- parameter binding
struct ParamBinding {
    uintptr_t key;  // the Param's value.data
    Param *param;
};

static int binding_cmp(const void *a, const void *b) {
    uintptr_t x = ((const ParamBinding *)a)->key, y = ((const ParamBinding *)b)->key;
    return (x > y) - (x < y);
}

static const char *param_name(const Param *p) { return p->name ? p->name : "(unnamed)"; }

// The tensor the ops see: the working copy when there is one, else the value.
static const Tensor *bound_tensor(const Param *p) { return p->working.data ? &p->working : &p->value; }

static int check_bindable(const Param *p, int i, DiceError *err) {
    char a[128], b[128];
    DICE_CHECK(err, !p->working.data || (tensor_same_shape(&p->working, &p->value) &&
                                         p->working.device == p->value.device && tensor_is_contiguous(&p->working)),
               "graph_bind_params: Param %d %s has value %s but working copy %s", i, param_name(p),
               tensor_describe(&p->value, a, sizeof a), tensor_describe(&p->working, b, sizeof b));
    DICE_CHECK(err, p->value.data, "graph_bind_params: Param %d %s has no value", i, param_name(p));
    DICE_CHECK(err, p->grad.data && tensor_same_shape(&p->grad, &p->value) && p->grad.dtype == p->value.dtype &&
                        p->grad.device == p->value.device,
               "graph_bind_params: Param %d %s has value %s but gradient %s", i, param_name(p),
               tensor_describe(&p->value, a, sizeof a), p->grad.data ? tensor_describe(&p->grad, b, sizeof b) : "none");
    return 0;
}

int graph_bind_params(Graph *g, Param *params, int n, DiceError *err) {
    DICE_CHECK(err, n >= 0 && (params || n == 0), "graph_bind_params: %d Params from %s", n,
               params ? "an array" : "NULL");
    bool mixed = false;
    for (int i = 0; i < n; i++) {
        DICE_TRY(check_bindable(&params[i], i, err));
        mixed = mixed || params[i].working.data;
    }
    ParamBinding *table = NULL;
    if (n > 0) {
        table = malloc((size_t)n * sizeof *table);
        DICE_CHECK(err, table, "graph_bind_params: out of host memory for %d bindings", n);
        for (int i = 0; i < n; i++)
            table[i] = (ParamBinding){(uintptr_t)bound_tensor(&params[i])->data, &params[i]};
        qsort(table, (size_t)n, sizeof *table, binding_cmp);
    }
    for (int i = 1; i < n; i++)
        if (table[i].key == table[i - 1].key) {
            const char *a = param_name(table[i - 1].param), *b = param_name(table[i].param);
            free(table);
            return DICE_FAIL(err, "graph_bind_params: Params %s and %s share one value tensor", a, b);
        }
    if (g->bound_owned) free(g->bound);
    g->bound = table;
    g->n_bound = n;
    g->bound_owned = table != NULL;
    g->bound_vars = NULL;
    g->bound_mixed = mixed;
    return 0;
}

// Index in g->bound of the binding whose key is data, or -1.
static int find_binding(const Graph *g, const void *data) {
    uintptr_t key = (uintptr_t)data;
    int lo = 0, hi = g->n_bound - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        uintptr_t k = g->bound[mid].key;
        if (k == key) return mid;
        if (k < key) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int graph_bound_var(Graph *g, Var **out, const Tensor *t, DiceError *err) {
    *out = NULL;
    if (!t || g->n_bound == 0) return 0;
    int i = find_binding(g, t->data);
    if (i < 0) return 0;
    Param *p = g->bound[i].param;
    const Tensor *bt = bound_tensor(p);
    char a[128], b[128];
    DICE_CHECK(err, tensor_same_shape(t, bt) && t->dtype == bt->dtype && t->device == bt->device,
               "bound Param %s: the op's tensor %s shares its data but not its value's shape, dtype or device (%s)",
               param_name(p), tensor_describe(t, a, sizeof a), tensor_describe(bt, b, sizeof b));
    g->bound_used = true;
    if (!graph_recording(g)) return 0;
    if (!g->bound_vars) {
        void *mem;
        DICE_TRY(arena_alloc_host(g->arena, (size_t)g->n_bound * sizeof(Var *), &mem, err));
        memset(mem, 0, (size_t)g->n_bound * sizeof(Var *));
        g->bound_vars = mem;
    }
    if (!g->bound_vars[i] && p->working.data) DICE_TRY(graph_leaf(g, &g->bound_vars[i], &p->working, true, err));
    else if (!g->bound_vars[i]) DICE_TRY(graph_param(g, &g->bound_vars[i], p, err));
    *out = g->bound_vars[i];
    return 0;
}

int graph_collect_param_grads(Graph *g, DiceError *err) {
    for (int i = 0; i < g->n_bound && g->bound_vars; i++) {
        Param *p = g->bound[i].param;
        Var *v = g->bound_vars[i];
        if (!p->working.data || !v || !v->grad.data) continue;
        ArenaMark mark = arena_mark(g->arena);
        Tensor wide;
        int rc = tensor_to(g->ctx, g->arena, &wide, &v->grad, p->grad.dtype, err);
        if (!rc && p->grad.device == DEV_CPU)
            rc = accumulate_cpu(p->grad.data, wide.data, tensor_numel(&wide), wide.dtype, err);
#ifdef DICE_CUDA
        else if (!rc)
            rc = accumulate_cuda(p->grad.data, wide.data, tensor_numel(&wide), wide.dtype, g->ctx->stream, err);
#endif
        arena_release(g->arena, mark);
        if (rc) return dice_error_context(err, "collecting the gradient of %s", param_name(p)), -1;
    }
    return 0;
}

int param_sync_working(DiceCtx *ctx, Param *p, DiceError *err) {
    return p->working.data ? tensor_copy(ctx, &p->working, &p->value, err) : 0;
}

// ---------------------------------------------------------------- checkpoints
void graph_set_scratch(Graph *g, Arena *scratch) { g->scratch = scratch; }

// A graph in g's scratch arena that sees g's parameter bindings (borrowed: graph_free leaves them).
static int sub_graph_init(Graph *sub, Graph *g, DiceError *err) {
    DICE_CHECK(err, !g->bound_mixed, "checkpointing: not available with mixed-precision (working-copy) Params");
    DICE_TRY(graph_init(sub, g->ctx, g->scratch, err));
    sub->bound = g->bound;
    sub->n_bound = g->n_bound;
    return 0;
}

typedef struct CheckpointSaved {
    CheckpointFn fn;
    void *user;
} CheckpointSaved;

static int checkpoint_backward(Graph *g, TapeNode *node, DiceError *err) {
    const CheckpointSaved *s = node->saved;
    ArenaMark mark = arena_mark(g->scratch);
    Graph sub;
    DICE_TRY(sub_graph_init(&sub, g, err));
    Var *leaves[4], *out;
    bool in_place[4] = {false};
    int rc = 0;
    for (int i = 0; i < node->n_inputs && !rc; i++) {
        rc = graph_leaf(&sub, &leaves[i], &node->inputs[i]->value, node->inputs[i]->requires_grad, err);
        // An input that already has a gradient receives the block's contributions in place, one by one in the
        // order the un-checkpointed tape adds them (summing them in the leaf first and adding that sum would
        // round differently); an input without one gets the leaf's gradient copied, as its first contribution
        // would be.
        if (!rc && node->inputs[i]->requires_grad && node->inputs[i]->grad.data) {
            leaves[i]->grad = node->inputs[i]->grad;
            in_place[i] = true;
        }
    }
    if (!rc) rc = s->fn(&sub, leaves, &out, s->user, err);
    if (!rc) rc = graph_backward_from(&sub, out, &node->output->grad, err);
    for (int i = 0; i < node->n_inputs && !rc; i++)
        if (!in_place[i] && leaves[i]->grad.data) rc = graph_accumulate(g, node->inputs[i], &leaves[i]->grad, err);
    graph_free(&sub);
    arena_release(g->scratch, mark);
    return rc;
}

int graph_checkpoint(Graph *g, CheckpointFn fn, void *user, Var *const *inputs, int n_inputs, Var **out,
                     DiceError *err) {
    DICE_CHECK(err, n_inputs >= 1 && n_inputs <= 4, "checkpoint: %d inputs (1 to 4 supported)", n_inputs);
    DICE_CHECK(err, g->scratch && g->scratch->device == g->ctx->device,
               "checkpoint: the graph needs a scratch arena on %s (graph_set_scratch)", device_name(g->ctx->device));
    ArenaMark mark = arena_mark(g->scratch);
    Graph sub;
    DICE_TRY(sub_graph_init(&sub, g, err));
    graph_no_grad_begin(&sub);
    Var *block_out, *result = NULL;
    int rc = fn(&sub, inputs, &block_out, user, err);
    if (!rc) rc = graph_new_var(g, &result, block_out->value.dtype, block_out->value.ndim, block_out->value.shape,
                                inputs, n_inputs, err);
    // A block with a bound Param needs its backward even when no input requires a gradient.
    if (!rc && sub.bound_used && graph_recording(g)) result->requires_grad = true;
    if (!rc) rc = tensor_copy(g->ctx, &result->value, &block_out->value, err);
    graph_free(&sub);
    arena_release(g->scratch, mark);
    DICE_TRY(rc);
    *out = result;
    if (!result->requires_grad) return 0;
    CheckpointSaved *saved;
    DICE_TRY(arena_alloc_host(g->arena, sizeof *saved, (void **)&saved, err));
    saved->fn = fn;
    saved->user = user;
    return graph_record(g, "checkpoint", checkpoint_backward, result, inputs, n_inputs, saved, err);
}
