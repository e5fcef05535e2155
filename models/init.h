// models/init.h — fresh random weights for a model: PyTorch's default module initialisation, decided for each
// tensor of a weight manifest (models/weights.h) from its canonical name and shape.
//
//   *.weight, 2-D (nn.Linear) or 4-D (nn.Conv2d, file shape (O, I, kh, kw)):
//       uniform(-b, b), b = 1 / sqrt(fan_in), fan_in = I (x kh x kw)   (kaiming_uniform_ with a = sqrt(5))
//   *.bias of such a module: uniform(-b, b) with the fan_in of its sibling .weight
//   1-D *.weight of a module whose name contains "norm" (GroupNorm, LayerNorm, ...): 1; its bias: 0
//   *embedding.weight, 2-D (nn.Embedding, e.g. CLIP's token_embedding / position_embedding): normal(0, 1),
//       nn.Embedding's default. Not transformers' CLIP initialisation (normal(0, 0.02)): dice's trainers keep
//       embedding tables frozen, and a frozen 0.02-scale table is swamped by the first layer's outputs (norm ~5
//       against 0.3). Trained jointly from scratch on the world, such a text encoder mapped "green" and "white"
//       to final states 3% apart at the word's position after 500 steps (22% at initialisation) and the UNet
//       did not learn the prompt; with normal(0, 1) they stay ~80% apart.
// Anything else (a name it cannot classify, a bias without a sibling weight) is an error naming the tensor.
//
// Deterministic: tensor `name` takes the elements 0 .. numel-1, in the file's order, of the Philox stream
// (nn/philox.h) whose key mixes `seed` with a hash of the name. So its values depend on the seed, the name and
// the shape only: not on the order the loader asked for the tensors, the device, or dice's layout (conv weights
// are generated as OIHW and then permuted), and are rounded once to the tensor's dtype.
#pragma once
#include <stdint.h>

#include "models/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

// Fills every tensor of m (on ctx's device) as above.
int weights_init_pytorch(const WeightManifest *m, DiceCtx *ctx, uint64_t seed, DiceError *err);

#ifdef __cplusplus
}
#endif
