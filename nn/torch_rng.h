// nn/torch_rng.h — PyTorch's CPU generator, reproduced bit for bit: after torch_gen_manual_seed(g, s),
// torch_randn(g, ...) gives exactly `torch.randn(shape, generator=torch.Generator().manual_seed(s))`
// (and `torch.manual_seed(s); torch.randn(shape)`, the same generator), so a seed gives the same initial
// latents as in diffusers. Consecutive calls continue the generator's state as torch does.
//
// What torch does (ATen, checked against torch 2.15.0; tests/golden/torch_randn.safetensors):
// - Engine: mt19937 seeded with the low 32 bits of the 64-bit seed (state[0] = seed & 0xffffffff);
//   random() is one 32-bit output, random64() = (first << 32) | second.
// - randn of n >= 16 contiguous elements (float32; float16/bfloat16 compute in float32 and round at the
//   end): uniforms u = (random() & 0xffffff) * 2^-24; each chunk of 16 goes through Box-Muller with
//   u1 = 1 - u[j], u2 = u[j+8] for j < 8: out[j] = r cos t, out[j+8] = r sin t, r = sqrt(-2 log u1),
//   t = 2 pi u2. If n % 16 != 0 the last 16 outputs are recomputed from 16 fresh uniforms. float32 draws
//   all n uniforms before the tail (the n % 16 uniforms of the partial chunk are drawn and discarded);
//   float16/bfloat16 draw chunk by chunk and do not draw them.
//   On x86-64 torch (CPU capability AVX2 or AVX512) log, sin and cos are the Cephes polynomials of
//   ATen's avx_mathfun.h, as compiled by GCC with FMA contraction: reproduced here lane by lane with
//   fmaf exactly where the compiled kernel fuses. (Torch with ATEN_CPU_CAPABILITY=default or on
//   non-x86 CPUs uses the C library's logf/cosf/sinf instead and differs in the last bit of roughly a
//   third of the values; that variant is not reproduced.)
// - randn of n < 16 elements: at::normal_distribution<double> per element, u1, u2 = 53-bit uniforms from
//   random64(), r = sqrt(-2 log1p(-u2)), t = 2 pi u1, returns r cos t and caches r sin t in the
//   generator for the next such draw (the cache survives larger randn calls; manual_seed clears it).
//   Computed with the C library's double log1p/sin/cos, rounded to float (then to f16/bf16).
// - rand: (random() & 0xffffff) * 2^-24 per element (for f16/bf16 rounded, and 1.0 mapped to 0).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TORCH_MT_N 624

typedef struct TorchGenerator {
    uint64_t seed;               // as given to manual_seed (torch.Generator.initial_seed())
    uint32_t state[TORCH_MT_N];  // mt19937 state
    int next;                    // index of the next state word to temper; TORCH_MT_N: twist first
    int has_cached_normal;       // next_double_normal_sample_ is set
    double cached_normal;
} TorchGenerator;

// torch.Generator().manual_seed(seed) / torch.manual_seed(seed) (negative Python seeds: seed mod 2^64).
void torch_gen_manual_seed(TorchGenerator *g, uint64_t seed);
uint32_t torch_gen_random(TorchGenerator *g);    // CPUGeneratorImpl::random()
uint64_t torch_gen_random64(TorchGenerator *g);  // CPUGeneratorImpl::random64()

// torch.randn(n elements, generator=g, dtype=dtype) into out (contiguous), dtype F32, F16 or BF16
// (F16/BF16 as uint16 bit patterns). Fails only for another dtype.
int torch_randn(TorchGenerator *g, DType dtype, void *out, size_t n, DiceError *err);
// torch.rand(n elements, generator=g, dtype=dtype), dtype F32, F16 or BF16.
int torch_rand(TorchGenerator *g, DType dtype, void *out, size_t n, DiceError *err);

#ifdef __cplusplus
}
#endif
