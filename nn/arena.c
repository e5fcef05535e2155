// nn/arena.c — chunked bump allocator on the CPU or a CUDA device (see arena.h).
#include "arena.h"

#include <stdlib.h>
#include <string.h>

#include "cuda_api.h"

static size_t align_up(size_t x) { return (x + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

int arena_init(Arena *a, const char *name, Device device, size_t chunk_size, size_t limit, DiceError *err) {
    memset(a, 0, sizeof *a);
    a->name = name;
    a->device = device;
    a->chunk_size = chunk_size ? align_up(chunk_size) : (size_t)64 << 20;
    a->limit = limit;
#ifndef DICE_CUDA
    DICE_CHECK(err, device == DEV_CPU, "arena '%s': this build of dice has no CUDA backend", name);
#endif
    return 0;
}

static int device_malloc(Device device, size_t bytes, void **out, DiceError *err) {
    if (device == DEV_CPU) {
        void *p = NULL;
        DICE_CHECK(err, posix_memalign(&p, ARENA_ALIGN, bytes) == 0, "out of host memory allocating %zu bytes",
                   bytes);
        *out = p;
        return 0;
    }
#ifdef DICE_CUDA
    CUDA_TRY(err, cudaMalloc(out, bytes));
    return 0;
#else
    return DICE_FAIL(err, "this build of dice has no CUDA backend");
#endif
}

static void device_free(Device device, void *p) {
    if (device == DEV_CPU) {
        free(p);
        return;
    }
#ifdef DICE_CUDA
    cudaFree(p);  // nothing to do on failure during teardown
#endif
}

void arena_free(Arena *a) {
    if (a->host_side) {
        arena_free(a->host_side);
        free(a->host_side);
        a->host_side = NULL;
    }
    ArenaChunk *c = a->chunks;
    while (c) {
        ArenaChunk *next = c->next;
        device_free(a->device, c->base);
        free(c);
        c = next;
    }
    a->chunks = a->current = NULL;
    a->reserved = a->in_use = 0;
}

void arena_reset(Arena *a) {
    if (a->host_side) arena_reset(a->host_side);
    for (ArenaChunk *c = a->chunks; c; c = c->next) c->used = 0;
    a->current = a->chunks;
    a->in_use = 0;
}

ArenaMark arena_mark(const Arena *a) {
    ArenaMark m = {a->current, a->current ? a->current->used : 0, a->in_use, false, NULL, 0, 0};
    if (a->host_side) {
        ArenaMark h = arena_mark(a->host_side);
        m.host_side_existed = true, m.host_chunk = h.chunk, m.host_used = h.used, m.host_in_use = h.in_use;
    }
    return m;
}

void arena_release(Arena *a, ArenaMark m) {
    if (a->host_side) {
        if (m.host_side_existed) {
            ArenaMark h = {m.host_chunk, m.host_used, m.host_in_use, false, NULL, 0, 0};
            arena_release(a->host_side, h);
        } else {
            arena_reset(a->host_side);  // everything on it was allocated after the mark
        }
    }
    if (!m.chunk) {
        arena_reset(a);
        return;
    }
    m.chunk->used = m.used;
    for (ArenaChunk *c = m.chunk->next; c; c = c->next) c->used = 0;
    a->current = m.chunk;
    a->in_use = m.in_use;
}

static int add_chunk(Arena *a, size_t need, DiceError *err) {
    size_t size = need > a->chunk_size ? align_up(need) : a->chunk_size;
    DICE_CHECK(err, !a->limit || (a->reserved <= a->limit && size <= a->limit - a->reserved),
               "arena '%s' on %s: allocating %zu more bytes would exceed its limit of %zu (holding %zu)", a->name,
               device_name(a->device), size, a->limit, a->reserved);
    ArenaChunk *c = calloc(1, sizeof *c);
    DICE_CHECK(err, c, "out of host memory");
    void *base = NULL;
    if (device_malloc(a->device, size, &base, err)) {
        free(c);
        dice_error_context(err, "arena '%s': new chunk of %zu bytes", a->name, size);
        return -1;
    }
    c->base = base;
    c->size = size;
    // Append, so reset-and-reuse walks chunks in the same order every step.
    ArenaChunk **tail = &a->chunks;
    while (*tail) tail = &(*tail)->next;
    *tail = c;
    a->reserved += size;
    a->current = c;
    return 0;
}

int arena_alloc(Arena *a, size_t bytes, void **out, DiceError *err) {
    DICE_CHECK(err, bytes <= (SIZE_MAX >> 2), "arena '%s': absurd allocation of %zu bytes", a->name, bytes);
    size_t need = align_up(bytes ? bytes : 1);
    ArenaChunk *c = a->current;
    while (c && c->size - c->used < need) c = c->next;  // later chunks kept from earlier steps
    if (!c) {
        DICE_TRY(add_chunk(a, need, err));
        c = a->current;
    }
    a->current = c;
    *out = c->base + c->used;
    c->used += need;
    a->in_use += need;
    if (a->in_use > a->high_water) a->high_water = a->in_use;
    return 0;
}

int arena_alloc_host(Arena *a, size_t bytes, void **out, DiceError *err) {
    if (a->device == DEV_CPU) return arena_alloc(a, bytes, out, err);
    if (!a->host_side) {
        Arena *h = malloc(sizeof *h);
        DICE_CHECK(err, h, "out of host memory");
        if (arena_init(h, a->name, DEV_CPU, (size_t)64 << 10, 0, err)) {
            free(h);
            return -1;
        }
        a->host_side = h;
    }
    return arena_alloc(a->host_side, bytes, out, err);
}

int arena_tensor(Arena *a, Tensor *t, DType dtype, int ndim, const int64_t *shape, DiceError *err) {
    DICE_TRY(tensor_wrap(t, NULL, dtype, a->device, ndim, shape, err));
    DICE_TRY(arena_alloc(a, tensor_nbytes(t), &t->data, err));
    return 0;
}
