// data/loader.h — the order in which training reads a dataset's rows: deterministic epoch shuffles
// from a seed, global batches split across data-parallel ranks, and a position for exact resume.
// It only deals in global row indices (0 .. n_rows-1); data/shards.h reads the rows.
//
// Epoch permutation. Epoch e (0 <= e < 2^32) visits the rows in the order perm_e, a Fisher-Yates
// (Durstenfeld) shuffle driven by Philox4x32-10 (nn/philox.h):
//   perm[k] = k for k = 0 .. N-1
//   for i = N-1 down to 1, draw d = N-1-i (0, 1, ...):
//       x = Philox4x32-10(counter = {d mod 2^32, d / 2^32, LOADER_PHILOX_KIND, e},
//                         key = {seed mod 2^32, seed / 2^32})
//       r = x[0] + 2^32 x[1]                              (64 random bits)
//       j = floor(r (i + 1) / 2^64)                        (0 <= j <= i; bias below (i+1) / 2^64)
//       swap perm[i] and perm[j]
// The counter's third word keeps these draws apart from the uniform and normal streams of philox.h
// (third word 0 and 1, fourth word 0), so training noise may use the same seed.
//
// The sample sequence is perm_0 ++ perm_1 ++ perm_2 ++ ...: batches run across epoch boundaries,
// so every row is used once per epoch and nothing is dropped. Global batch t is elements
// t*B .. t*B+B-1 of that sequence; rank r of R takes elements floor(r*B/R) .. floor((r+1)*B/R)-1
// of each global batch, in order. So the concatenation over ranks of one step's rows is the 1-rank
// batch of the same global size: 2 ranks x B reads exactly what 1 rank x 2B reads. Gradient
// accumulation splits a rank's rows into micro-batches in order, which keeps that equality.
//
// Position. The position {epoch, index} names the next element of the sequence: element `index` of
// perm_epoch. Every rank advances it by the global batch B. Saving it in a checkpoint (with the
// seed, N and B) and seeking back to it continues the sequence exactly, on any number of ranks.
#pragma once
#include <stdint.h>

#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LOADER_PHILOX_KIND 0x73687566u  // "shuf": the counter word that marks shuffle draws

typedef struct LoaderPos {
    uint64_t epoch;
    uint64_t index;        // 0 .. n_rows-1
} LoaderPos;

typedef struct Loader {
    uint64_t seed;
    int64_t n_rows;        // N
    int64_t global_batch;  // B
    int n_ranks, rank;     // R, r
    LoaderPos pos;
    int64_t *perm;         // (N,) perm_{perm_epoch}
    uint64_t perm_epoch;
} Loader;

// Writes perm_epoch of n rows (see the top of this file) into perm (n >= 1, epoch < 2^32).
void loader_permutation(uint64_t seed, uint64_t epoch, int64_t n, int64_t *perm);

// A loader at position {0, 0}. Needs n_rows >= 1, global_batch >= n_ranks >= 1, 0 <= rank < n_ranks.
int loader_init(Loader *L, int64_t n_rows, int64_t global_batch, int n_ranks, int rank, uint64_t seed,
                DiceError *err);
void loader_free(Loader *L);
// Rows this rank takes from every global batch: floor((r+1)B/R) - floor(rB/R).
int64_t loader_rank_rows(const Loader *L);
// The next global batch: this rank's rows (loader_rank_rows of them) into rows, in sequence order;
// the position moves on by B. Fails only past epoch 2^32 - 1.
int loader_next(Loader *L, int64_t *rows, DiceError *err);
LoaderPos loader_position(const Loader *L);
// Continues from a saved position (index < n_rows, epoch < 2^32).
int loader_seek(Loader *L, LoaderPos pos, DiceError *err);

#ifdef __cplusplus
}
#endif
