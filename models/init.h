// models/init.h — fresh random weights for a model: PyTorch's default module initialisation, decided for each
// tensor of a weight manifest (models/weights.h) from its canonical name and shape.
//
//   *.weight, 2-D (nn.Linear) or 4-D (nn.Conv2d, file shape (O, I, kh, kw)):
//       uniform(-b, b), b = 1 / sqrt(fan_in), fan_in = I (x kh x kw)   (kaiming_uniform_ with a = sqrt(5))
//   *.bias of such a module: uniform(-b, b) with the fan_in of its sibling .weight
//   1-D *.weight of a module whose name contains "norm" (GroupNorm, LayerNorm, ...): 1; its bias: 0
//   *embedding.weight, 2-D (nn.Embedding, e.g. CLIP's token_embedding / position_embedding):
//       normal(0, 0.02), as transformers initialises CLIP
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
