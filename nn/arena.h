// nn/arena.h — memory arenas on the CPU or a CUDA device.
//
// An arena hands out 256-byte aligned blocks from large chunks and frees them all at once:
//  - a per-step arena (activations, saved tensors, scratch) is reset after every step; its chunks
//    are kept, so steady-state steps allocate nothing from the system;
//  - a persistent arena (weights, optimiser state) is never reset, only freed.
// The arena grows by adding chunks (at least chunk_size bytes each); `limit` (0 = none) caps the
// total so that a runaway allocation fails with a clear message instead of exhausting the device.
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ARENA_ALIGN 256

typedef struct ArenaChunk {
    unsigned char *base;
    size_t size, used;
    struct ArenaChunk *next;
} ArenaChunk;

typedef struct Arena {
    const char *name;        // for messages: "weights", "step", ...
    Device device;
    size_t chunk_size;       // default size of a new chunk
    size_t limit;            // 0 = unlimited; otherwise max total bytes of all chunks
    ArenaChunk *chunks;      // all chunks, in allocation order
    ArenaChunk *current;     // chunk being filled
    size_t reserved;         // bytes of all chunks
    size_t in_use;           // bytes handed out since the last reset (with alignment padding)
    size_t high_water;       // max in_use ever seen
    struct Arena *host_side; // host bookkeeping (Vars, ops' saved structs) with this arena's lifetime:
                             // reset and released with it; created on first use (device arenas only)
} Arena;

int arena_init(Arena *a, const char *name, Device device, size_t chunk_size, size_t limit, DiceError *err);
void arena_free(Arena *a);
void arena_reset(Arena *a);
// A position in the arena; arena_release(a, m) frees everything allocated after arena_mark (used by
// recomputation to drop a block's recomputed activations as soon as its backward is done).
typedef struct ArenaMark {
    ArenaChunk *chunk;
    size_t used, in_use;
    bool host_side_existed;  // the host side's position below is meaningful
    ArenaChunk *host_chunk;
    size_t host_used, host_in_use;
} ArenaMark;
ArenaMark arena_mark(const Arena *a);
void arena_release(Arena *a, ArenaMark m);
// bytes == 0 gives a valid, unique, aligned pointer.
int arena_alloc(Arena *a, size_t bytes, void **out, DiceError *err);
// Host memory that lives exactly as long as an allocation from `a` would (freed by the same reset or
// release): for the host structs that describe a step's device tensors (autograd Vars, ops' saved
// state). On a CPU arena it is arena_alloc; on a device arena it comes from the arena's host side,
// because the host must never dereference device memory.
int arena_alloc_host(Arena *a, size_t bytes, void **out, DiceError *err);
// A new contiguous tensor in the arena (contents undefined).
int arena_tensor(Arena *a, Tensor *t, DType dtype, int ndim, const int64_t *shape, DiceError *err);

#ifdef __cplusplus
}
#endif
