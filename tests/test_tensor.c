// tests/test_tensor.c — tensor descriptors, views and arenas.
#include <stdlib.h>
#include <string.h>

#include "nn/arena.h"
#include "nn/tensor.h"
#include "test.h"

DICE_TEST(tensor_views_share_memory) {
    float buf[2 * 3 * 4];
    for (int i = 0; i < 24; i++) buf[i] = (float)i;
    Tensor t, v;
    int64_t shape[3] = {2, 3, 4};
    CHECK_OK(tensor_wrap(&t, buf, DT_F32, DEV_CPU, 3, shape, &tc->err));
    CHECK(tensor_numel(&t) == 24 && tensor_nbytes(&t) == 96 && tensor_is_contiguous(&t));
    CHECK(t.stride[0] == 12 && t.stride[1] == 4 && t.stride[2] == 1);

    CHECK_OK(tensor_narrow(&v, &t, 2, 1, 2, &tc->err));  // (2, 3, 2), columns 1..2
    CHECK(v.data == buf + 1 && v.shape[2] == 2 && v.stride[1] == 4 && !tensor_is_contiguous(&v));
    CHECK_OK(tensor_select(&v, &t, 1, 2, &tc->err));     // (2, 4): row 2 of each batch
    CHECK(v.ndim == 2 && v.data == buf + 8 && v.shape[0] == 2 && v.shape[1] == 4 && v.stride[0] == 12);
    CHECK(((float *)v.data)[v.stride[0] * 1 + 3] == 23.0f);

    int perm[3] = {2, 0, 1};
    CHECK_OK(tensor_permute(&v, &t, perm, &tc->err));    // (4, 2, 3)
    CHECK(v.shape[0] == 4 && v.shape[1] == 2 && v.shape[2] == 3 && v.stride[0] == 1 && v.stride[2] == 4);
    CHECK(v.data == buf && !tensor_is_contiguous(&v));

    int64_t flat[2] = {6, -1};
    CHECK_OK(tensor_reshape(&v, &t, 2, flat, &tc->err));
    CHECK(v.shape[1] == 4 && v.data == buf && tensor_is_contiguous(&v));
    int64_t five[5] = {1, 2, 1, 3, 4};
    CHECK_OK(tensor_reshape(&v, &t, 5, five, &tc->err));
    CHECK(v.ndim == 5 && v.stride[0] == 24 && v.stride[3] == 4);

    Tensor scalar;
    CHECK_OK(tensor_wrap(&scalar, buf, DT_F32, DEV_CPU, 0, NULL, &tc->err));
    CHECK(tensor_numel(&scalar) == 1 && tensor_is_contiguous(&scalar));
    char desc[64];
    CHECK(!strcmp(tensor_describe(&t, desc, sizeof desc), "f32[2, 3, 4] cpu"));
}

DICE_TEST(tensor_bad_arguments_are_errors) {
    float buf[24];
    Tensor t, v;
    int64_t shape[3] = {2, 3, 4};
    CHECK_OK(tensor_wrap(&t, buf, DT_F32, DEV_CPU, 3, shape, &tc->err));
    int64_t six[6] = {1, 1, 1, 2, 3, 4};
    CHECK_FAILS_WITH(tensor_wrap(&v, buf, DT_F32, DEV_CPU, 6, six, &tc->err), "rank 6");
    int64_t neg[2] = {2, -3};
    CHECK_FAILS_WITH(tensor_wrap(&v, buf, DT_F32, DEV_CPU, 2, neg, &tc->err), "negative size");
    int64_t huge[3] = {1LL << 40, 1LL << 40, 8};
    CHECK_FAILS_WITH(tensor_wrap(&v, buf, DT_F32, DEV_CPU, 3, huge, &tc->err), "too large");
    CHECK_FAILS_WITH(tensor_narrow(&v, &t, 2, 3, 2, &tc->err), "outside dimension 2");
    CHECK_FAILS_WITH(tensor_narrow(&v, &t, 3, 0, 1, &tc->err), "out of range");
    CHECK_FAILS_WITH(tensor_select(&v, &t, 0, 2, &tc->err), "index 2");
    int bad_perm[3] = {0, 0, 1};
    CHECK_FAILS_WITH(tensor_permute(&v, &t, bad_perm, &tc->err), "not a permutation");
    int64_t wrong[2] = {5, 5};
    CHECK_FAILS_WITH(tensor_reshape(&v, &t, 2, wrong, &tc->err), "24 elements");
    int64_t two_infer[2] = {-1, -1};
    CHECK_FAILS_WITH(tensor_reshape(&v, &t, 2, two_infer, &tc->err), "more than one -1");
    int64_t not_div[2] = {5, -1};
    CHECK_FAILS_WITH(tensor_reshape(&v, &t, 2, not_div, &tc->err), "cannot infer");
    CHECK_OK(tensor_narrow(&v, &t, 2, 0, 3, &tc->err));
    int64_t flat[1] = {18};
    CHECK_FAILS_WITH(tensor_reshape(&v, &v, 1, flat, &tc->err), "not contiguous");
}

DICE_TEST(arena_alignment_reset_growth_and_limit) {
    Arena a;
    CHECK_OK(arena_init(&a, "step", DEV_CPU, 4096, 1 << 20, &tc->err));
    void *p[8];
    size_t sizes[8] = {1, 0, 100, 256, 257, 4000, 5000, 3};
    for (int i = 0; i < 8; i++) {
        CHECK_OK(arena_alloc(&a, sizes[i], &p[i], &tc->err));
        CHECK(((uintptr_t)p[i] % ARENA_ALIGN) == 0);
        memset(p[i], 0xab, sizes[i]);  // ASan catches overlap with the chunk bounds
        for (int j = 0; j < i; j++) CHECK(p[j] != p[i]);
    }
    CHECK(a.reserved >= 4096 + 5120 && a.in_use >= 1 + 100 + 256 + 257 + 4000 + 5000 + 3);
    size_t reserved = a.reserved, high = a.high_water;
    arena_reset(&a);
    CHECK(a.in_use == 0 && a.high_water == high);
    // Same allocation sequence after a reset: same addresses, no new chunks.
    for (int i = 0; i < 8; i++) {
        void *q;
        CHECK_OK(arena_alloc(&a, sizes[i], &q, &tc->err));
        CHECK(q == p[i]);
    }
    CHECK(a.reserved == reserved);
    void *big;
    CHECK_FAILS_WITH(arena_alloc(&a, 2 << 20, &big, &tc->err), "exceed its limit");
    CHECK(strstr(tc->err.msg, "'step'") != NULL);
    Tensor t;
    int64_t shape[2] = {3, 5};
    CHECK_OK(arena_tensor(&a, &t, DT_BF16, 2, shape, &tc->err));
    CHECK(t.device == DEV_CPU && tensor_nbytes(&t) == 30 && ((uintptr_t)t.data % ARENA_ALIGN) == 0);
    arena_free(&a);
    CHECK(a.reserved == 0 && a.chunks == NULL);
}

// Host bookkeeping of a device arena: never inside the device chunks, freed by the same reset and release
// as the device memory allocated next to it (on a CPU arena it is the arena's own memory).
DICE_CUDA_TEST(arena_host_side_follows_the_device_arena) {
    Arena a;
    CHECK_OK(arena_init(&a, "step", DEV_CUDA, 4096, 0, &tc->err));
    void *d, *h1, *h2, *h3;
    CHECK_OK(arena_alloc(&a, 100, &d, &tc->err));
    CHECK_OK(arena_alloc_host(&a, 40, &h1, &tc->err));
    CHECK(a.host_side && a.host_side->device == DEV_CPU);
    for (ArenaChunk *c = a.chunks; c; c = c->next)
        CHECK((unsigned char *)h1 < c->base || (unsigned char *)h1 >= c->base + c->size);
    memset(h1, 0xab, 40);  // host-writable (ASan checks the bounds)
    ArenaMark m = arena_mark(&a);
    CHECK_OK(arena_alloc_host(&a, 40, &h2, &tc->err));
    arena_release(&a, m);
    CHECK_OK(arena_alloc_host(&a, 40, &h3, &tc->err));
    CHECK(h3 == h2);  // released with the mark
    arena_reset(&a);
    CHECK(a.host_side->in_use == 0);
    CHECK_OK(arena_alloc_host(&a, 40, &h3, &tc->err));
    CHECK(h3 == h1);  // reset with the arena
    arena_free(&a);
    CHECK(a.host_side == NULL);
    // A mark taken before the host side existed releases all of it.
    CHECK_OK(arena_init(&a, "step", DEV_CUDA, 4096, 0, &tc->err));
    m = arena_mark(&a);
    CHECK_OK(arena_alloc_host(&a, 40, &h1, &tc->err));
    arena_release(&a, m);
    CHECK(a.host_side->in_use == 0);
    arena_free(&a);
    Arena cpu;
    CHECK_OK(arena_init(&cpu, "cpu", DEV_CPU, 4096, 0, &tc->err));
    CHECK_OK(arena_alloc_host(&cpu, 40, &h1, &tc->err));
    CHECK(cpu.host_side == NULL && cpu.in_use > 0);
    arena_free(&cpu);
}
