// models/clip_encoder.h — the CLIP text encoder (transformers' CLIPTextModel and CLIPTextModelWithProjection),
// the text_encoder of SD1.5 and both text encoders of SDXL, built from the op layer (so it runs on the CPU in
// f32 / f64 and on CUDA in bf16, and gradients flow through it).
//
// Config: a transformers config.json (CLIPTextConfig; models/clip_encoder_config.c says which fields are read,
// which are accepted as harmless and which are refused). Weights: transformers' names,
//   text_model.embeddings.token_embedding.weight (V, C), text_model.embeddings.position_embedding.weight (P, C),
//   text_model.encoder.layers.{i}.{layer_norm1,layer_norm2}.{weight,bias} (C),
//   text_model.encoder.layers.{i}.self_attn.{q,k,v,out}_proj.{weight (C, C), bias (C)},
//   text_model.encoder.layers.{i}.mlp.fc1.{weight (F, C), bias (F)}, ...mlp.fc2.{weight (C, F), bias (C)},
//   text_model.final_layer_norm.{weight,bias} (C), and text_projection.weight (D, C) with a projection.
//
// Forward (B sequences of N <= P ids):
//   x = token_embedding[ids] + position_embedding[:N]                       hidden_states[0]   (B, N, C)
//   per layer: x = x + out_proj(causal_attention(q, k, v of layer_norm1(x)))
//              x = x + fc2(act(fc1(layer_norm2(x))))                         hidden_states[i]   (B, N, C)
//   last_hidden_state = final_layer_norm(hidden_states[L])                                      (B, N, C)
//   pooled = last_hidden_state[b, pool index of row b]                                          (B, C)
//   text_embeds = pooled text_projection^T (with a projection)                                  (B, D)
// hidden_states are numbered as transformers numbers them (output_hidden_states=True): 0 is the embedding
// output, i the output of layer i, L = num_hidden_layers; none of them goes through the final layer norm
// (SDXL conditions on hidden_states[-2]). Negative indices count from the end as in Python.
//
// The pool index is transformers' rule (modeling_clip.py since PR #24773, checked against 5.24): when the config's
// eos_token_id is 2 (the value in SD1.5's and SDXL's configs, from before transformers PR #24773) it is
// argmax(ids), the first position of the largest id — the first EOS as long as no id above EOS (an added
// token) is in the row; otherwise it is the first position holding eos_token_id, or 0 if the row has none.
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "models/clip_tokenizer.h"
#include "models/weights.h"
#include "nn/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ClipAct { CLIP_ACT_QUICK_GELU, CLIP_ACT_GELU } ClipAct;  // x sigmoid(1.702 x); exact (erf) GELU

// What "architectures" says; without it, a projection is used iff the weights hold text_projection.weight.
typedef enum ClipArch { CLIP_ARCH_UNSPECIFIED, CLIP_ARCH_TEXT_MODEL, CLIP_ARCH_WITH_PROJECTION } ClipArch;

typedef struct ClipEncoderConfig {
    int vocab_size;           // V
    int hidden_size;          // C
    int intermediate_size;    // F
    int num_layers;           // L (num_hidden_layers)
    int num_heads;            // C / num_heads is the head dim (a multiple of 8, at most 256, on CUDA)
    int max_positions;        // P (max_position_embeddings)
    int projection_dim;       // D (used only with a projection)
    ClipAct act;              // hidden_act: "quick_gelu" (SD1.5) or "gelu" (SDXL's OpenCLIP-bigG)
    float layer_norm_eps;
    int64_t eos_token_id;     // picks the pooling rule (see above)
    ClipArch arch;
} ClipEncoderConfig;

typedef struct ClipEncoderLayer {
    Tensor ln1_w, ln1_b, ln2_w, ln2_b;            // (C)
    Tensor q_w, k_w, v_w, o_w;                    // (C, C)
    Tensor q_b, k_b, v_b, o_b;                    // (C)
    Tensor fc1_w, fc1_b, fc2_w, fc2_b;            // (F, C), (F), (C, F), (C)
} ClipEncoderLayer;

typedef struct ClipEncoder {
    ClipEncoderConfig cfg;
    bool with_projection;
    Device device;            // where the weights are; the forward runs in a context on this device
    DType dtype;              // the weights' dtype, which the activations share
    Tensor token_embedding;   // (V, C)
    Tensor position_embedding;// (P, C)
    ClipEncoderLayer *layers; // cfg.num_layers (heap)
    Tensor final_ln_w, final_ln_b;  // (C)
    Tensor text_projection;   // (D, C); data NULL without a projection
} ClipEncoder;

// Parses config.json text (`source` names it in messages). Missing fields take CLIPTextConfig's defaults.
int clip_encoder_config_parse(ClipEncoderConfig *cfg, const char *json, const char *source, DiceError *err);
int clip_encoder_config_load(ClipEncoderConfig *cfg, const char *path, DiceError *err);

// Requests every tensor from w (into w's arena and dtype). Missing and mis-shaped tensors are collected in w:
// the caller calls weights_finish (so one file may hold several models, as single-file checkpoints do).
// text_model.embeddings.position_ids, a buffer that transformers before 4.31 saved and ignores when
// loading, is consumed and ignored too. On failure *m is left empty (clip_encoder_free is safe).
int clip_encoder_load(ClipEncoder *m, const ClipEncoderConfig *cfg, Weights *w, DiceError *err);
// A transformers folder: dir/config.json and dir/model.safetensors (or the shards of
// dir/model.safetensors.index.json), converted to `dtype` in `arena` (on the arena's device); every weight
// problem is reported at once. Files whose names lack the "text_model." prefix (CLIPTextModel saved by
// transformers 5) are read with the prefix stripped.
int clip_encoder_load_dir(ClipEncoder *m, const char *dir, DiceCtx *ctx, Arena *arena, DType dtype, DiceError *err);
void clip_encoder_free(ClipEncoder *m);

// hidden_index value meaning last_hidden_state (after the final layer norm), not an entry of hidden_states.
#define CLIP_LAST_HIDDEN_STATE INT_MAX

typedef struct ClipEncoderOutput {
    Var *hidden;              // the state hidden_index asked for (B, N, C)
    Var *last_hidden_state;   // (B, N, C); NULL when it was not needed (see clip_encoder_run)
    Var *pooled;              // (B, C); NULL without ids
    Var *text_embeds;         // (B, D); NULL without ids or without a projection
    // Optional, set by the caller: an array of cfg.num_layers + 1 entries, filled with every hidden state
    // computed (entries past the last layer run are set to NULL).
    Var **hidden_states;
} ClipEncoderOutput;

// The embedding output hidden_states[0] (B, N, C) of ids (B, N) i32 on the CPU, N <= P.
int clip_encoder_embed(Graph *g, const ClipEncoder *m, const Tensor *ids, Var **out, DiceError *err);
// The layer stack on x (B, N, C) (the embedding output, or any input whose gradient is wanted). ids (B, N) i32
// on the CPU, or NULL, give the pool indices. When ids are given or hidden_index is CLIP_LAST_HIDDEN_STATE, every
// layer runs and last_hidden_state, pooled and text_embeds (with ids, and a projection) are computed;
// otherwise only the layers up to hidden_index run (SDXL's first encoder skips its last layer).
// `out` is overwritten except for out->hidden_states.
int clip_encoder_run(Graph *g, const ClipEncoder *m, Var *x, const Tensor *ids, int hidden_index,
                     ClipEncoderOutput *out, DiceError *err);
// clip_encoder_embed + clip_encoder_run with the same ids.
int clip_encoder_forward(Graph *g, const ClipEncoder *m, const Tensor *ids, int hidden_index, ClipEncoderOutput *out,
                         DiceError *err);
// Where row `ids` (n entries) is pooled (the rule above).
int clip_encoder_pool_index(const ClipEncoderConfig *cfg, const int32_t *ids, int n);
// Width of clip_encode_prompts' pooled output: D with a projection, else C.
int clip_encoder_pooled_dim(const ClipEncoder *m);

// Prompts to conditioning, as diffusers' pipelines do: each prompt is tokenized (padded / truncated to
// tok->max_length, which must be <= P) and encoded without recording gradients, in chunks of a few prompts
// whose activations live in `scratch` (on ctx's device, released after each chunk).
//   out_hidden (n, tok->max_length, C): the state hidden_index selects (CLIP_LAST_HIDDEN_STATE for SD1.5,
//              -2 for SDXL), or NULL;
//   out_pooled (n, clip_encoder_pooled_dim(m)): text_embeds with a projection (SDXL's pooled_prompt_embeds),
//              else the pooled output; or NULL.
// Both are caller-allocated contiguous tensors on ctx's device, of any float dtype (values are converted).
int clip_encode_prompts(DiceCtx *ctx, Arena *scratch, const ClipEncoder *m, const ClipTokenizer *tok,
                        const char *const *prompts, int n, int hidden_index, Tensor *out_hidden, Tensor *out_pooled,
                        DiceError *err);

#ifdef __cplusplus
}
#endif
