// tests/test_loader.c — the training data order (data/loader.h): epoch permutations pinned to their
// definition (the values come from scripts/golden_shards.py order, an independent Python version),
// uniformity, determinism, exact resume from a saved position, and global batches split across ranks.
// Test names start with shards_ so `make test TESTS=shards` runs them with the shard tests.
#include <stdlib.h>
#include <string.h>

#include "data/loader.h"
#include "test.h"

static int is_permutation(const int64_t *perm, int64_t n) {
    char *seen = calloc((size_t)n, 1);
    int ok = seen != NULL;
    for (int64_t k = 0; ok && k < n; k++) {
        ok = perm[k] >= 0 && perm[k] < n && !seen[perm[k]];
        if (ok) seen[perm[k]] = 1;
    }
    free(seen);
    return ok;
}

DICE_TEST(shards_loader_permutation_pinned) {
    // python3 scripts/golden_shards.py order SEED EPOCH N
    static const struct {
        uint64_t seed, epoch;
        int64_t n;
        int64_t perm[12];
    } cases[] = {
        {42, 0, 10, {1, 5, 7, 2, 6, 4, 8, 9, 0, 3}},
        {42, 1, 10, {9, 6, 2, 8, 7, 4, 0, 1, 3, 5}},
        {18446744073709551557ull, 4294967295ull, 12, {5, 7, 11, 2, 1, 9, 3, 10, 6, 8, 0, 4}},
    };
    for (int c = 0; c < 3; c++) {
        int64_t perm[12];
        loader_permutation(cases[c].seed, cases[c].epoch, cases[c].n, perm);
        for (int k = 0; k < cases[c].n; k++)
            CHECK_MSG(perm[k] == cases[c].perm[k], "case %d element %d: %lld, expected %lld", c, k, (long long)perm[k],
                      (long long)cases[c].perm[k]);
    }
    int64_t one = -1;
    loader_permutation(7, 3, 1, &one);
    CHECK(one == 0);
}

// Every epoch is a permutation; epochs and seeds differ; over many epochs each row lands in each
// position about equally often.
DICE_TEST(shards_loader_permutation_uniform) {
    enum { N = 5, EPOCHS = 20000 };
    int64_t count[N][N] = {{0}}, perm[N], first[N];
    for (uint64_t e = 0; e < EPOCHS; e++) {
        loader_permutation(tc->seed, e, N, perm);
        CHECK(is_permutation(perm, N));
        for (int k = 0; k < N; k++) count[k][perm[k]]++;
        if (e == 0) memcpy(first, perm, sizeof first);
    }
    double expect = (double)EPOCHS / N, chi2 = 0;
    for (int k = 0; k < N; k++)
        for (int v = 0; v < N; v++) chi2 += (count[k][v] - expect) * (count[k][v] - expect) / expect;
    // 16 degrees of freedom: P(chi2 > 50) < 1e-5.
    CHECK_MSG(chi2 < 50, "chi-square %.1f over positions x rows", chi2);
    int64_t big[1000], other[1000];
    loader_permutation(tc->seed, 0, 1000, big);
    loader_permutation(tc->seed, 1, 1000, other);
    CHECK(is_permutation(big, 1000) && memcmp(big, other, sizeof big) != 0);
    loader_permutation(tc->seed + 1, 0, 1000, other);
    CHECK(memcmp(big, other, sizeof big) != 0);
}

// The rows of `steps` global batches for one rank, concatenated.
static int run_loader(TestCtx *tc, int64_t n, int64_t batch, int ranks, int rank, uint64_t seed, const LoaderPos *from,
                      int steps, int64_t *out) {
    Loader L;
    if (loader_init(&L, n, batch, ranks, rank, seed, &tc->err)) return -1;
    int rc = from ? loader_seek(&L, *from, &tc->err) : 0;
    int64_t per = loader_rank_rows(&L);
    for (int s = 0; !rc && s < steps; s++) rc = loader_next(&L, out + s * per, &tc->err);
    loader_free(&L);
    return rc;
}

DICE_TEST(shards_loader_deterministic) {
    int64_t a[12 * 7], b[12 * 7];
    CHECK_OK(run_loader(tc, 23, 7, 1, 0, 99, NULL, 12, a));
    CHECK_OK(run_loader(tc, 23, 7, 1, 0, 99, NULL, 12, b));
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK_OK(run_loader(tc, 23, 7, 1, 0, 100, NULL, 12, b));
    CHECK(memcmp(a, b, sizeof a) != 0);
    // The sequence is perm_0 ++ perm_1 ++ ...: batches run across epoch boundaries, nothing dropped.
    int64_t perm[23];
    for (int e = 0; e < 3; e++) {
        loader_permutation(99, (uint64_t)e, 23, perm);
        for (int k = 0; k < 23 && e * 23 + k < 12 * 7; k++) CHECK(a[e * 23 + k] == perm[k]);
    }
}

DICE_TEST(shards_loader_resume) {
    enum { N = 17, B = 6, K = 5, M = 9 };
    Loader L;
    int64_t straight[(K + M) * B], resumed[M * B];
    CHECK_OK(loader_init(&L, N, B, 1, 0, tc->seed, &tc->err));
    LoaderPos saved = {0, 0};
    for (int s = 0; s < K + M; s++) {
        if (s == K) saved = loader_position(&L);
        CHECK_OK(loader_next(&L, straight + s * B, &tc->err));
    }
    loader_free(&L);
    CHECK(saved.epoch == (uint64_t)(K * B / N) && saved.index == (uint64_t)(K * B % N));
    CHECK_OK(run_loader(tc, N, B, 1, 0, tc->seed, &saved, M, resumed));
    CHECK(memcmp(resumed, straight + K * B, sizeof resumed) == 0);
    // The position is global: resuming on 3 ranks continues the same sequence.
    int64_t part[3][M * 2];
    for (int r = 0; r < 3; r++) CHECK_OK(run_loader(tc, N, B, 3, r, tc->seed, &saved, M, part[r]));
    for (int s = 0; s < M; s++)
        for (int r = 0; r < 3; r++)
            CHECK(memcmp(part[r] + s * 2, straight + (K + s) * B + r * 2, 2 * sizeof(int64_t)) == 0);
}

// The concatenation over ranks of each step's rows is the 1-rank batch of the same global size, also
// when R does not divide B and across epoch boundaries (N = 10 divides none of the batches).
DICE_TEST(shards_loader_ranks_split_the_global_batch) {
    const int64_t batches[] = {2, 6, 7, 13, 25};
    const int ranks[] = {2, 3, 2, 4, 5};
    for (int c = 0; c < 5; c++) {
        int64_t B = batches[c], one[8 * 25], got[8 * 25];
        int R = ranks[c];
        CHECK_OK(run_loader(tc, 10, B, 1, 0, 5, NULL, 8, one));
        int64_t filled[8] = {0};
        for (int r = 0; r < R; r++) {
            Loader L;
            CHECK_OK(loader_init(&L, 10, B, R, r, 5, &tc->err));
            int64_t per = loader_rank_rows(&L);
            CHECK(per == (r + 1) * B / R - r * B / R);
            for (int s = 0; s < 8; s++) {
                CHECK_OK(loader_next(&L, got + s * B + filled[s], &tc->err));
                filled[s] += per;
            }
            loader_free(&L);
        }
        for (int s = 0; s < 8; s++) CHECK(filled[s] == B);
        CHECK_MSG(memcmp(one, got, (size_t)(8 * B) * sizeof *one) == 0, "B = %lld, R = %d", (long long)B, R);
    }
}

DICE_TEST(shards_loader_errors) {
    Loader L;
    CHECK_FAILS_WITH(loader_init(&L, 0, 4, 1, 0, 1, &tc->err), "the dataset has 0 rows");
    CHECK_FAILS_WITH(loader_init(&L, 10, 4, 2, 2, 1, &tc->err), "rank 2 of 2 ranks");
    CHECK_FAILS_WITH(loader_init(&L, 10, 3, 4, 0, 1, &tc->err), "global batch 3 must be at least the number of ranks (4)");
    CHECK_OK(loader_init(&L, 10, 4, 1, 0, 1, &tc->err));
    CHECK_FAILS_WITH(loader_seek(&L, (LoaderPos){0, 10}, &tc->err), "position index 10 is outside the 10 rows");
    CHECK_FAILS_WITH(loader_seek(&L, (LoaderPos){1ull << 32, 0}, &tc->err), "past the last one");
    CHECK_OK(loader_seek(&L, (LoaderPos){0xffffffffull, 8}, &tc->err));
    int64_t rows[4];
    CHECK_FAILS_WITH(loader_next(&L, rows, &tc->err), "past the last one");  // would run into epoch 2^32
    CHECK(loader_position(&L).epoch == 0xffffffffull && loader_position(&L).index == 8);
    loader_free(&L);
}
