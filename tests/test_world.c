// tests/test_world.c — the synthetic world (data/world.h): deterministic sampling, captions that parse
// back to their attributes, the held-out split, noisy training captions, the analyser's read-back accuracy
// on noisy jittered images and its verdict on wrong images, and the vocabulary being single tokens of the
// real CLIP tokenizer (tests/golden/clip_tokenizer).
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/world.h"
#include "models/clip_bpe.h"
#include "models/clip_tokenizer.h"
#include "models/unicode.h"
#include "test.h"

#define PINNED_HASH 0xdbf9aa3du   // FNV-1a of item 3 of seed 42 (train)

static int attrs_equal(const WorldAttrs *a, const WorldAttrs *b) {
    return a->colour[0] == b->colour[0] && a->colour[1] == b->colour[1] && a->shape[0] == b->shape[0] &&
           a->shape[1] == b->shape[1] && a->relation == b->relation && a->background == b->background;
}

DICE_TEST(world_sample_deterministic) {
    static WorldItem a, b;
    int differ = 0;
    for (uint64_t i = 0; i < 50; i++)
        for (int split = 0; split < 2; split++) {
            world_sample(tc->seed, i, (WorldSplit)split, &a);
            world_sample(tc->seed, i, (WorldSplit)split, &b);
            CHECK(memcmp(&a, &b, sizeof a) == 0);
            CHECK(world_attrs_valid(&a.attrs));
            CHECK(world_is_heldout(&a.attrs) == split);
            world_sample(tc->seed, i + 1, (WorldSplit)split, &b);
            differ += memcmp(a.rgb, b.rgb, sizeof a.rgb) != 0;
        }
    CHECK(differ >= 98);
    // Pinned: item 3 of seed 42 (train), so a change to the stream or the renderer shows.
    world_sample(42, 3, WORLD_TRAIN, &a);
    CHECK(strcmp(a.caption, "a purple diamond above a red diamond on a blue background") == 0);
    uint32_t h = 2166136261u;  // FNV-1a of the image
    for (int i = 0; i < WORLD_PIXELS; i++) h = (h ^ a.rgb[i]) * 16777619u;
    CHECK(h == PINNED_HASH);
}

DICE_TEST(world_captions_parse_back) {
    char caption[WORLD_CAPTION_MAX];
    WorldAttrs a, b;
    for (int i = 0; i < WORLD_N_CAPTIONS; i++) {
        world_attrs_from_index(i, &a);
        CHECK(world_attrs_valid(&a));
        CHECK(world_caption(&a, caption, sizeof caption) > 0);
        CHECK_OK(world_parse_caption(caption, &b, &tc->err));
        CHECK(attrs_equal(&a, &b));
    }
    world_attrs_from_index(WORLD_N_CAPTIONS - 1, &a);
    CHECK(world_caption(&a, caption, 20) == -1 && caption[0] == '\0');
    // Lenient forms a user may type.
    CHECK_OK(world_parse_caption("  A Red circle  right of a orange Triangle on an gray background. ", &b, &tc->err));
    CHECK(b.colour[0] == WORLD_RED && b.shape[0] == WORLD_CIRCLE && b.relation == WORLD_RIGHT_OF &&
          b.colour[1] == WORLD_ORANGE && b.shape[1] == WORLD_TRIANGLE && b.background == WORLD_GRAY);
    CHECK_OK(world_parse_caption("a blue diamond below a white square on a purple background", &b, &tc->err));
    CHECK(b.relation == WORLD_BELOW && b.shape[0] == WORLD_DIAMOND && b.background == WORLD_PURPLE);
    CHECK_FAILS_WITH(world_parse_caption("a red circle left a blue square on a green background", &b, &tc->err),
                     "word 5 (\"a\") should be \"of\"");
    CHECK_FAILS_WITH(world_parse_caption("a red hexagon above a blue square on a green background", &b, &tc->err),
                     "should be a shape");
    CHECK_FAILS_WITH(world_parse_caption("a red circle above a blue square", &b, &tc->err),
                     "(\"end of caption\") should be \"on\"");
    CHECK_FAILS_WITH(world_parse_caption("a red circle above a blue square on a green background now", &b, &tc->err),
                     "unexpected words");
    CHECK_FAILS_WITH(world_parse_caption("a red circle above a red square on a green background", &b, &tc->err),
                     "three different colours");
    CHECK_FAILS_WITH(world_parse_caption("", &b, &tc->err), "word 1");
}

DICE_TEST(world_heldout_split) {
    int heldout = 0, seen_train[WORLD_N_COLOURS][WORLD_N_SHAPES] = {{0}};
    WorldAttrs a;
    for (int i = 0; i < WORLD_N_CAPTIONS; i++) {
        world_attrs_from_index(i, &a);
        int h = world_is_heldout(&a);
        heldout += h;
        // The other caption of the same scene is in the same split.
        WorldAttrs c = world_canonical(&a), other = c;
        other.colour[0] = c.colour[1], other.colour[1] = c.colour[0];
        other.shape[0] = c.shape[1], other.shape[1] = c.shape[0];
        other.relation = c.relation == WORLD_LEFT_OF ? WORLD_RIGHT_OF : WORLD_BELOW;
        CHECK(world_is_heldout(&other) == h);
        if (!h) seen_train[a.colour[0]][a.shape[0]]++;
    }
    printf("    %d captions (%d scenes), %d captions held out (%.1f%%)\n", WORLD_N_CAPTIONS, WORLD_N_SCENES,
           heldout, 100.0 * heldout / WORLD_N_CAPTIONS);
    CHECK(heldout > WORLD_N_CAPTIONS / 14 && heldout < WORLD_N_CAPTIONS / 8);
    for (int c = 0; c < WORLD_N_COLOURS; c++)
        for (int s = 0; s < WORLD_N_SHAPES; s++) CHECK(seen_train[c][s] > 0);
    // Sampled items never leak across splits, and the held-out stream covers many combinations.
    static WorldItem item;
    static uint8_t hit[WORLD_N_CAPTIONS];
    int distinct = 0;
    for (uint64_t i = 0; i < 2000; i++) {
        world_sample(tc->seed, i, WORLD_TRAIN, &item);
        CHECK(!world_is_heldout(&item.attrs));
        world_sample(tc->seed, i, WORLD_HELDOUT, &item);
        CHECK(world_is_heldout(&item.attrs));
        const WorldAttrs *x = &item.attrs;
        int skip = 0;  // inverse of world_attrs_from_index via search over the few colour triples
        for (int k = 0; k < WORLD_N_CAPTIONS && !skip; k++) {
            world_attrs_from_index(k, &a);
            if (attrs_equal(&a, x)) distinct += !hit[k], hit[k] = 1, skip = 1;
        }
        CHECK(skip);
    }
    printf("    2000 held-out samples cover %d distinct held-out captions\n", distinct);
    CHECK(distinct > heldout / 2);
}

// Noisy captions: every attribute replaced at rate q by a uniformly chosen other value, always a valid training
// caption, deterministic, exact at q = 0 and entirely wrong at q = 1.
DICE_TEST(world_noisy_attrs_replace_each_attribute_at_its_rate) {
    enum { N = 20000 };
    const double q = 0.3;
    static WorldItem item;
    int changed[6] = {0}, shape_moves[WORLD_N_SHAPES][WORLD_N_SHAPES] = {{0}};
    for (uint64_t i = 0; i < N; i++) {
        world_sample(tc->seed, i, WORLD_TRAIN, &item);
        const WorldAttrs *a = &item.attrs;
        WorldAttrs n, again, exact, wrong;
        world_noisy_attrs(a, q, tc->seed, i, &n);
        world_noisy_attrs(a, q, tc->seed, i, &again);
        CHECK(attrs_equal(&n, &again));
        CHECK(world_attrs_valid(&n) && !world_is_heldout(&n));
        const int diff[6] = {n.background != a->background, n.colour[0] != a->colour[0],
                             n.colour[1] != a->colour[1],   n.shape[0] != a->shape[0],
                             n.shape[1] != a->shape[1],     n.relation != a->relation};
        for (int k = 0; k < 6; k++) changed[k] += diff[k];
        shape_moves[a->shape[0]][n.shape[0]]++;
        world_noisy_attrs(a, 0.0, tc->seed, i, &exact);
        CHECK(attrs_equal(&exact, a));
        if (i < 2000) {
            world_noisy_attrs(a, 1.0, tc->seed, i, &wrong);
            CHECK(world_attrs_valid(&wrong) && !world_is_heldout(&wrong));
            CHECK(wrong.background != a->background && wrong.colour[0] != a->colour[0] &&
                  wrong.colour[1] != a->colour[1] && wrong.shape[0] != a->shape[0] &&
                  wrong.shape[1] != a->shape[1] && wrong.relation != a->relation);
        }
    }
    // A draw that lands on a held-out scene (about 1 in 10 of those that change something) is redrawn, which
    // lowers each attribute's rate below q by at most that share; 5 standard deviations of sampling on top.
    const double sd = sqrt(q * (1 - q) / N);
    for (int k = 0; k < 6; k++) {
        double rate = (double)changed[k] / N;
        printf("    attribute %d replaced in %.4f of %d captions (q = %.2f)\n", k, rate, N, q);
        CHECK_MSG(rate >= 0.88 * q - 5 * sd && rate <= q + 5 * sd, "attribute %d: rate %.4f, q %.2f", k, rate, q);
    }
    // The new shape is uniform over the three others.
    for (int s = 0; s < WORLD_N_SHAPES; s++) {
        int moved = 0;
        for (int t = 0; t < WORLD_N_SHAPES; t++) moved += t != s ? shape_moves[s][t] : 0;
        for (int t = 0; t < WORLD_N_SHAPES; t++) {
            if (t == s) continue;
            double p = 1.0 / 3, sd_t = sqrt(moved * p * (1 - p));
            CHECK_MSG(fabs(shape_moves[s][t] - moved * p) <= 5 * sd_t, "shape %d -> %d: %d of %d", s, t,
                      shape_moves[s][t], moved);
        }
    }
}

// A 3x3 box blur (the border pixels average their neighbours inside the image).
static void box_blur(uint8_t *rgb) {
    static uint8_t src[WORLD_PIXELS];
    memcpy(src, rgb, sizeof src);
    for (int y = 0; y < WORLD_SIZE; y++)
        for (int x = 0; x < WORLD_SIZE; x++)
            for (int k = 0; k < 3; k++) {
                int sum = 0, n = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int xx = x + dx, yy = y + dy;
                        if (xx < 0 || yy < 0 || xx >= WORLD_SIZE || yy >= WORLD_SIZE) continue;
                        sum += src[3 * (yy * WORLD_SIZE + xx) + k], n++;
                    }
                rgb[3 * (y * WORLD_SIZE + x) + k] = (uint8_t)((sum + n / 2) / n);
            }
}

// Adds uniform noise in [-amp, amp] to every channel (clamped).
static void add_noise(uint8_t *rgb, int amp, uint64_t *state) {
    for (int i = 0; i < WORLD_PIXELS; i++) {
        int v = (int)rgb[i] + (int)(test_rand_u64(state) % (uint64_t)(2 * amp + 1)) - amp;
        rgb[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

DICE_TEST(world_analyser_reads_back) {
    static WorldItem item;
    uint64_t state = tc->seed;
    int n = 0, exact = 0, per[7] = {0};
    for (uint64_t i = 0; i < 600; i++) {
        world_sample(tc->seed, i, i % 5 == 4 ? WORLD_HELDOUT : WORLD_TRAIN, &item);
        add_noise(item.rgb, 24, &state);
        WorldScore s;
        world_score(item.rgb, &item.attrs, &s);
        n++;
        exact += s.all;
        per[0] += s.background, per[1] += s.colour[0], per[2] += s.colour[1], per[3] += s.shape[0];
        per[4] += s.shape[1], per[5] += s.relation, per[6] += s.objects;
        if (!s.all && n - exact <= 3) printf("    missed: %s\n", item.caption);
    }
    printf("    analyser: %d / %d exact (%.1f%%); bg %d colour %d %d shape %d %d relation %d objects %d\n", exact, n,
           100.0 * exact / n, per[0], per[1], per[2], per[3], per[4], per[5], per[6]);
    CHECK(exact >= n * 97 / 100);
    // Every combination in its jitter-free layout, without noise.
    WorldAttrs a;
    WorldGeom g;
    int exact_centred = 0;
    for (int k = 0; k < WORLD_N_CAPTIONS; k++) {
        world_attrs_from_index(k, &a);
        world_geom_centred(&a, &g);
        world_render(&a, &g, item.rgb);
        WorldScore s;
        world_score(item.rgb, &a, &s);
        exact_centred += s.all;
    }
    printf("    analyser on all %d combinations, centred: %d exact\n", WORLD_N_CAPTIONS, exact_centred);
    CHECK(exact_centred == WORLD_N_CAPTIONS);
    // Soft edges, as a generator draws them: a 3x3 box blur, then noise.
    int exact_blurred = 0;
    for (uint64_t i = 0; i < 600; i++) {
        world_sample(tc->seed, i, WORLD_TRAIN, &item);
        box_blur(item.rgb);
        add_noise(item.rgb, 12, &state);
        WorldScore s;
        world_score(item.rgb, &item.attrs, &s);
        exact_blurred += s.all;
    }
    printf("    analyser after a 3x3 blur and +-12 noise: %d / 600 exact\n", exact_blurred);
    CHECK(exact_blurred >= 600 * 95 / 100);
}

DICE_TEST(world_analyser_rejects_wrong_images) {
    static WorldItem item;
    static uint8_t img[WORLD_PIXELS];
    WorldScore s;
    int checked = 0;
    for (uint64_t i = 0; i < 200; i++) {
        world_sample(tc->seed, i, WORLD_TRAIN, &item);
        WorldAttrs w = item.attrs;
        world_score(item.rgb, &w, &s);
        if (!s.all) continue;  // the read-back test bounds these
        checked++;
        // Colours swapped between the objects: shapes bound to the wrong colours.
        w.colour[0] = item.attrs.colour[1], w.colour[1] = item.attrs.colour[0];
        world_render(&w, &item.geom, img);
        world_score(img, &item.attrs, &s);
        CHECK(!s.all && (!s.objects || !s.relation));
        // Objects' places swapped: the relation is wrong, the objects right.
        w = item.attrs;
        WorldGeom g = item.geom;
        g.cx[0] = item.geom.cx[1], g.cx[1] = item.geom.cx[0], g.cy[0] = item.geom.cy[1], g.cy[1] = item.geom.cy[0];
        world_render(&w, &g, img);
        // The analyser reads a small shape at another sub-pixel position less reliably (a 4.5 px circle may read
        // as a square there): the objects must be right only when both are read as drawn.
        WorldAnalysis swapped;
        world_analyse(img, &swapped);
        const WorldAttrs *r = &swapped.attrs;
        bool read_ok = (r->colour[0] == w.colour[0] && r->shape[0] == w.shape[0] && r->colour[1] == w.colour[1] &&
                        r->shape[1] == w.shape[1]) ||
                       (r->colour[0] == w.colour[1] && r->shape[0] == w.shape[1] && r->colour[1] == w.colour[0] &&
                        r->shape[1] == w.shape[0]);
        world_score(img, &item.attrs, &s);
        CHECK_MSG(!s.all && !s.relation && (s.objects || !read_ok), "%s, places swapped: all %d relation %d objects %d",
                  item.caption, s.all, s.relation, s.objects);
        // Another background colour (one not used by the objects).
        w = item.attrs;
        for (w.background = 0; w.background == w.colour[0] || w.background == w.colour[1] ||
                               w.background == item.attrs.background;)
            w.background++;
        world_render(&w, &item.geom, img);
        world_score(img, &item.attrs, &s);
        CHECK(!s.all && !s.background && s.objects && s.relation);
        // A shape changed.
        w = item.attrs;
        w.shape[1] = (w.shape[1] + 1) % WORLD_N_SHAPES;
        world_render(&w, &item.geom, img);
        world_score(img, &item.attrs, &s);
        CHECK(!s.all && !s.shape[1] && s.shape[0] && s.colour[0] && s.colour[1]);
        // Both objects in one colour: two objects found, the second colour wrong.
        w = item.attrs;
        w.colour[1] = w.colour[0];
        world_render(&w, &item.geom, img);
        WorldAnalysis an;
        world_analyse(img, &an);
        CHECK(an.n_objects == 2 && an.attrs.colour[0] == w.colour[0] && an.attrs.colour[1] == w.colour[0]);
        world_score(img, &item.attrs, &s);
        // What this case checks is that a colour-binding error is caught. Two objects of one colour never
        // occur in the world, and the analyser's shape and relation reading is only guaranteed on images
        // the world produces (seen: two same-colour diamonds one above the other, one read as a triangle),
        // so only the colours are asserted here.
        CHECK(!s.all && !s.colour[1] && s.colour[0]);
        // The background alone: no objects.
        memset(&g, 0, sizeof g);
        world_render(&item.attrs, &g, img);
        world_analyse(img, &an);
        CHECK(an.n_objects == 0 && an.attrs.background == item.attrs.background && an.attrs.relation == -1);
        world_score(img, &item.attrs, &s);
        CHECK(!s.all && !s.objects && !s.relation && s.background);
    }
    CHECK(checked >= 190);
}

// Writes a CLIP tokenizer folder built from the golden merges.txt (vocab.json as CLIP builds it: the 256
// byte symbols in code point order, the same with "</w>", each merge joined, then the special tokens).
static int clip_dir(TestCtx *tc, char *dir, size_t cap) {
    char golden[512], path[1024];
    snprintf(golden, sizeof golden, "%s", test_path(tc, "tests/golden/clip_tokenizer"));
    snprintf(dir, cap, "%s/tokenizer", test_tmpdir(tc));
    mkdir(dir, 0755);
    const char *const copies[] = {"merges.txt", "tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 3; i++) {
        char cmd[2200];
        snprintf(cmd, sizeof cmd, "cp '%s/%s' '%s/'", golden, copies[i], dir);
        if (system(cmd) != 0) return -1;
    }
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    FILE *in = fopen(path, "rb");
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    FILE *out = fopen(path, "wb");
    if (!in || !out) return -1;
    uint32_t chars[256];
    for (unsigned b = 0; b < 256; b++) chars[b] = clip_byte_char(b);
    for (int i = 1; i < 256; i++)  // insertion sort by code point
        for (int j = i; j > 0 && chars[j - 1] > chars[j]; j--) {
            uint32_t t = chars[j];
            chars[j] = chars[j - 1], chars[j - 1] = t;
        }
    int id = 0;
    fputc('{', out);
    for (int end = 0; end < 2; end++)
        for (int i = 0; i < 256; i++) {
            unsigned char s[4];
            int len = uc_utf8_encode(chars[i], s);
            fprintf(out, "%s\"%s%.*s%s\":%d", id ? "," : "", chars[i] == '"' || chars[i] == '\\' ? "\\" : "", len,
                    (const char *)s, end ? "</w>" : "", id);
            id++;
        }
    char line[512];
    int header = 1;
    while (fgets(line, sizeof line, in)) {
        if (header) {
            header = 0;
            continue;
        }
        line[strcspn(line, "\r\n")] = '\0';
        char *sp = strchr(line, ' ');
        if (!sp) continue;
        fputs(",\"", out);
        for (char *p = line; *p; p++) {
            if (p == sp) continue;
            if (*p == '"' || *p == '\\') fputc('\\', out);
            fputc(*p, out);
        }
        fprintf(out, "\":%d", id++);
    }
    fprintf(out, ",\"<|startoftext|>\":%d,\"<|endoftext|>\":%d}", id, id + 1);
    fclose(in);
    return fclose(out) == 0 ? 0 : -1;
}

DICE_TEST(world_vocabulary_single_clip_tokens) {
    char dir[512];
    CHECK(clip_dir(tc, dir, sizeof dir) == 0);
    ClipTokenizer tok;
    CHECK_OK(clip_tokenizer_load(&tok, dir, &tc->err));
    const char *const *words;
    int n_words = world_vocabulary(&words);
    for (int i = 0; i < n_words; i++) {
        int32_t *ids = NULL;
        int n = 0;
        CHECK_OK(clip_tokenizer_tokenize(&tok, words[i], &ids, &n, &tc->err));
        if (n != 1) printf("    \"%s\" is %d tokens\n", words[i], n);
        CHECK(n == 1);
        free(ids);
    }
    // A caption is as many tokens as words, all in the vocabulary.
    static WorldItem item;
    world_sample(tc->seed, 0, WORLD_TRAIN, &item);
    int32_t *ids = NULL;
    int n = 0, spaces = 0;
    CHECK_OK(clip_tokenizer_tokenize(&tok, item.caption, &ids, &n, &tc->err));
    for (const char *p = item.caption; *p; p++) spaces += *p == ' ';
    CHECK(n == spaces + 1);
    free(ids);
    clip_tokenizer_free(&tok);
}
