// data/loader.c — epoch permutations, rank slices of global batches and the resumable position
// (the definitions are in loader.h).
#include "loader.h"

#include <stdlib.h>

#include "nn/philox.h"

#define LOADER_MAX_EPOCH 0xffffffffull
#define LOADER_NO_EPOCH UINT64_MAX   // perm holds no epoch yet

// High 64 bits of the 128-bit product a * b, from 32-bit halves.
static uint64_t mulhi64(uint64_t a, uint64_t b) {
    uint64_t a0 = a & 0xffffffffu, a1 = a >> 32, b0 = b & 0xffffffffu, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (p01 & 0xffffffffu) + (p10 & 0xffffffffu);
    return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

void loader_permutation(uint64_t seed, uint64_t epoch, int64_t n, int64_t *perm) {
    for (int64_t k = 0; k < n; k++) perm[k] = k;
    for (int64_t i = n - 1; i >= 1; i--) {
        uint64_t d = (uint64_t)(n - 1 - i);
        PhiloxU32x4 ctr = {{(uint32_t)d, (uint32_t)(d >> 32), LOADER_PHILOX_KIND, (uint32_t)epoch}};
        PhiloxU32x4 x = philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
        uint64_t r = (uint64_t)x.v[0] | ((uint64_t)x.v[1] << 32);
        int64_t j = (int64_t)mulhi64(r, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

int loader_init(Loader *L, int64_t n_rows, int64_t global_batch, int n_ranks, int rank, uint64_t seed,
                DiceError *err) {
    *L = (Loader){0};
    DICE_CHECK(err, n_rows >= 1, "loader: the dataset has %lld rows", (long long)n_rows);
    DICE_CHECK(err, n_ranks >= 1 && rank >= 0 && rank < n_ranks, "loader: rank %d of %d ranks", rank, n_ranks);
    DICE_CHECK(err, global_batch >= n_ranks && global_batch <= (int64_t)1 << 40,
               "loader: global batch %lld must be at least the number of ranks (%d)", (long long)global_batch,
               n_ranks);
    L->perm = malloc((size_t)n_rows * sizeof *L->perm);
    DICE_CHECK(err, L->perm, "loader: out of memory for the permutation of %lld rows", (long long)n_rows);
    L->seed = seed;
    L->n_rows = n_rows;
    L->global_batch = global_batch;
    L->n_ranks = n_ranks;
    L->rank = rank;
    L->perm_epoch = LOADER_NO_EPOCH;
    return 0;
}

void loader_free(Loader *L) {
    free(L->perm);
    *L = (Loader){0};
}

// First element (within a global batch) of rank r's slice: floor(r B / R).
static int64_t slice_begin(const Loader *L, int r) { return L->global_batch * r / L->n_ranks; }

int64_t loader_rank_rows(const Loader *L) { return slice_begin(L, L->rank + 1) - slice_begin(L, L->rank); }

int loader_next(Loader *L, int64_t *rows, DiceError *err) {
    uint64_t n = (uint64_t)L->n_rows, b = (uint64_t)L->global_batch;
    uint64_t last_epoch = L->pos.epoch + (L->pos.index + b - 1) / n;
    DICE_CHECK(err, last_epoch <= LOADER_MAX_EPOCH, "loader: epoch %llu is past the last one (2^32 - 1)",
               (unsigned long long)last_epoch);
    uint64_t begin = (uint64_t)slice_begin(L, L->rank), end = (uint64_t)slice_begin(L, L->rank + 1);
    for (uint64_t o = begin; o < end; o++) {
        uint64_t at = L->pos.index + o, epoch = L->pos.epoch + at / n;
        if (L->perm_epoch != epoch) {
            loader_permutation(L->seed, epoch, L->n_rows, L->perm);
            L->perm_epoch = epoch;
        }
        rows[o - begin] = L->perm[at % n];
    }
    uint64_t next = L->pos.index + b;
    L->pos.epoch += next / n;
    L->pos.index = next % n;
    return 0;
}

LoaderPos loader_position(const Loader *L) { return L->pos; }

int loader_seek(Loader *L, LoaderPos pos, DiceError *err) {
    DICE_CHECK(err, pos.index < (uint64_t)L->n_rows, "loader: position index %llu is outside the %lld rows",
               (unsigned long long)pos.index, (long long)L->n_rows);
    DICE_CHECK(err, pos.epoch <= LOADER_MAX_EPOCH, "loader: epoch %llu is past the last one (2^32 - 1)",
               (unsigned long long)pos.epoch);
    L->pos = pos;
    return 0;
}
