// models/sharpener.h — the DICE sharpener r_phi (PAPER.md; the authors' module layout and names).
//
//   h1 = ReLU(fc1(c)),  h2 = ReLU(fc1(c_null))                 fc1: d_e -> hidden (512), shared
//   a  = attention(q = Wq h1, k = Wk h2, v = Wv h2)            8 heads x hidden/8, no mask, no bias
//   o  = ReLU(to_out(a))                                       to_out: hidden -> hidden, with bias
//   r  = fc2(o)                                                fc2: hidden -> d_e
//   c_phi = c + alpha * r, with token 0 (BOS) copied from c unchanged
// c, c_null: (B, N, d_e) (c_null broadcast per sample by the caller; a negative prompt's embedding may
// take its place, as in the authors' code). 1,836,800 parameters at d_e = 768 (SD1.5), 3,148,800 at
// 2048 (SDXL). The sharpener trains in fp32 on either device; its attention is written with batched
// matrix products so it runs in fp32 on CUDA too (the fused flash kernel is bf16-only).
// Tensor names (safetensors): fc1.weight, fc1.bias, attention.to_q.weight, attention.to_k.weight,
// attention.to_v.weight, attention.to_out.0.weight, attention.to_out.0.bias, fc2.weight, fc2.bias.
#pragma once
#include "nn/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { SHARPENER_N_PARAMS = 9 };

typedef struct Sharpener {
    int d_e, hidden, heads;
    // fc1.weight, fc1.bias, attention.to_q/k/v.weight, attention.to_out.0.weight/.bias, fc2.weight/.bias
    Param params[SHARPENER_N_PARAMS];
} Sharpener;

// Allocates the parameters in `persistent` (fp32, on its device) with PyTorch's default Linear
// initialisation (weights and biases uniform in +-1/sqrt(fan_in)), drawn from the Philox stream of `seed`.
int sharpener_init(Sharpener *s, int d_e, int hidden, int heads, Arena *persistent, DiceCtx *ctx, uint64_t seed,
                   DiceError *err);
int64_t sharpener_num_params(const Sharpener *s);
// Pointers to the 9 parameters (for the optimiser and checkpoints), in the order of the names above.
void sharpener_param_list(Sharpener *s, Param **out);
// c_phi (B, N, d_e) = c + alpha * r(c, c_null), token 0 kept. c and c_null must not require gradients
// through the sharpener's own parameters' graph (they are frozen text-encoder outputs); gradients flow
// into the Params.
int sharpener_forward(Graph *g, Sharpener *s, Var *c, Var *c_null, double alpha, Var **c_phi, DiceError *err);
// Safetensors with the authors' names plus metadata (key/value pairs), written atomically.
int sharpener_save(Sharpener *s, DiceCtx *ctx, const char *path, const char *const *meta_keys,
                   const char *const *meta_values, int n_meta, DiceError *err);
// Loads a saved sharpener (d_e and hidden from the tensor shapes; heads = 8 unless metadata "heads" says
// otherwise) into `persistent`'s device.
int sharpener_load(Sharpener *s, const char *path, Arena *persistent, DiceCtx *ctx, DiceError *err);

#ifdef __cplusplus
}
#endif
