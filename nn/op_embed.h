// nn/op_embed.h — embeddings (kernels in kernels/embed{_cpu.c,.cu}). Neither records a gradient: timesteps are
// data, and the token / position tables are frozen (DICE trains nothing before the text encoder's output; a
// trainable table is not supported).
//   op_timestep_embedding   timesteps (B) f32 on the graph's device -> (B, cfg.dim) of `dtype`, exactly diffusers'
//                           get_timestep_embedding (see TimestepEmbedConfig in kernels/embed.h)
//   op_token_embedding      ids (B, N) i32 on the CPU, table (V, C), pos (P, C) with P >= N or NULL, both on the
//                           graph's device -> (B, N, C) = table[ids] + pos[:N] (CLIP's token + position embedding).
//                           Every id is checked against V on the host before it is copied to the device.
#pragma once
#include "autograd.h"
#include "kernels/embed.h"

#ifdef __cplusplus
extern "C" {
#endif

int op_timestep_embedding(Graph *g, Var **out, const Tensor *timesteps, const TimestepEmbedConfig *cfg, DType dtype,
                          DiceError *err);
int op_token_embedding(Graph *g, Var **out, const Tensor *ids, const Tensor *table, const Tensor *pos, DiceError *err);

#ifdef __cplusplus
}
#endif
