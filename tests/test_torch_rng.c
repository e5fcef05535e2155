// tests/test_torch_rng.c — the torch-compatible CPU generator (nn/torch_rng.h): mt19937's known answer,
// and bitwise equality with torch.randn / torch.rand recorded in tests/golden/torch_randn.safetensors
// (written by `python3 scripts/make_golden.py --only rng`; its metadata names the torch version).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/safetensors.h"
#include "nn/torch_rng.h"
#include "test.h"

// The 10000th output of mt19937 with the default seed 5489 is 4123659995 (C++ [rand.predef]).
DICE_TEST(torch_rng_mt19937_known_answer) {
    TorchGenerator g;
    torch_gen_manual_seed(&g, 5489);
    uint32_t x = 0;
    for (int i = 0; i < 10000; i++) x = torch_gen_random(&g);
    CHECK_MSG(x == 4123659995u, "10000th output %u", x);
    // Only the low 32 bits of the seed reach mt19937; the seed itself is kept.
    TorchGenerator a, b;
    torch_gen_manual_seed(&a, 5);
    torch_gen_manual_seed(&b, (UINT64_C(1) << 32) + 5);
    CHECK(torch_gen_random64(&a) == torch_gen_random64(&b));
    CHECK(b.seed == (UINT64_C(1) << 32) + 5);
}

DICE_TEST(torch_rng_rejects_other_dtypes) {
    TorchGenerator g;
    torch_gen_manual_seed(&g, 0);
    double out[4];
    CHECK_FAILS_WITH(torch_randn(&g, DT_F64, out, 4, &tc->err), "not supported");
    CHECK_FAILS_WITH(torch_rand(&g, DT_I32, out, 4, &tc->err), "not supported");
}

// Draws what tensor `t` of the golden file recorded (op "randn" or "rand") and compares bitwise;
// returns 0 with a one-line reason in `why` on any difference.
static int replay_draw(TorchGenerator *g, const StTensorInfo *t, const char *op, char *why, size_t cap) {
    size_t n = (size_t)st_numel(t), es = dtype_size(t->dtype);
    uint8_t *got = malloc(n * es + 1);
    if (!got) return snprintf(why, cap, "%s: out of memory", t->name), 0;
    memset(got, 0xff, n * es);
    DiceError err = {{0}};
    int rc = strcmp(op, "rand") == 0 ? torch_rand(g, t->dtype, got, n, &err) : torch_randn(g, t->dtype, got, n, &err);
    int ok = rc == 0;
    if (!ok) snprintf(why, cap, "%s: %.400s", t->name, err.msg);
    for (size_t i = 0; ok && i < n; i++) {
        if (memcmp(got + i * es, (const uint8_t *)t->data + i * es, es) != 0) {
            uint32_t a = 0, b = 0;
            memcpy(&a, got + i * es, es);
            memcpy(&b, (const uint8_t *)t->data + i * es, es);
            snprintf(why, cap, "%s (%s %s, %zu elements): element %zu is %08x, torch gives %08x", t->name, op,
                     dtype_name(t->dtype), n, i, a, b);
            ok = 0;
        }
    }
    free(got);
    return ok;
}

// Replays every case of the golden file: a generator seeded once, then its draws in order.
DICE_TEST(torch_rng_matches_torch_bitwise) {
    const char *path = test_path(tc, "tests/golden/torch_randn.safetensors");
    StFile f;
    CHECK_OK(st_open(&f, path, &tc->err));
    int cases = 0, draws = 0, ok = 1;
    char key[64], why[512] = "";
    for (int c = 0; ok; c++) {
        snprintf(key, sizeof key, "case%02d.seed", c);
        const char *seed_text = st_meta(&f, key);
        if (!seed_text) break;
        TorchGenerator g;
        torch_gen_manual_seed(&g, strtoull(seed_text, NULL, 10));
        cases++;
        for (int k = 0; ok; k++, draws++) {
            snprintf(key, sizeof key, "case%02d/%d", c, k);
            const StTensorInfo *t = st_find(&f, key);
            if (!t) break;
            const char *op = st_meta(&f, key);
            ok = op ? replay_draw(&g, t, op, why, sizeof why) : (snprintf(why, sizeof why, "%s: no op", key), 0);
            if (!ok) snprintf(why + strlen(why), sizeof why - strlen(why), " (seed %s)", seed_text);
        }
    }
    st_close(&f);
    CHECK_MSG(ok, "%s", why);
    CHECK_MSG(cases >= 40 && draws >= 50, "only %d cases / %d draws in %s", cases, draws, path);
}
