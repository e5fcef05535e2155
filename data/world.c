// data/world.c — the synthetic world (data/world.h): attribute combinations and the held-out rule,
// deterministic sampling, rendering, captions and caption parsing. The analyser is in world_analyse.c.
#include "world.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/philox.h"  // philox4x32_10

const char *const world_colour_names[WORLD_N_COLOURS] = {"red",  "orange", "yellow", "green",
                                                         "blue", "purple", "white",  "gray"};
const char *const world_shape_names[WORLD_N_SHAPES] = {"circle", "square", "triangle", "diamond"};
const char *const world_relation_names[WORLD_N_RELATIONS] = {"left of", "right of", "above", "below"};
// Nearest pair: orange - yellow, 83 apart in RGB.
const uint8_t world_palette[WORLD_N_COLOURS][3] = {
    {220, 40, 40},  {245, 140, 20}, {240, 220, 40},  {40, 170, 60},
    {40, 80, 220},  {140, 50, 180}, {240, 240, 240}, {120, 120, 120},
};

static const char *const VOCABULARY[] = {
    "a",      "an",     "left",   "right",  "of",     "above",  "below",  "on",     "background",
    "red",    "orange", "yellow", "green",  "blue",   "purple", "white",  "gray",   "circle",
    "square", "triangle", "diamond",
};

int world_vocabulary(const char *const **words) {
    *words = VOCABULARY;
    return (int)(sizeof VOCABULARY / sizeof VOCABULARY[0]);
}

// Philox counter word 2 of the world's stream ("WRLD"), so it never collides with the noise streams.
#define WORLD_STREAM 0x57524C44u
// ... and of the caption-noise stream ("NOIS", world_noisy_attrs).
#define NOISE_STREAM 0x4E4F4953u

// ---------------------------------------------------------------- combinations

int world_attrs_valid(const WorldAttrs *a) {
    for (int i = 0; i < 2; i++)
        if (a->colour[i] < 0 || a->colour[i] >= WORLD_N_COLOURS || a->shape[i] < 0 || a->shape[i] >= WORLD_N_SHAPES)
            return 0;
    if (a->relation < 0 || a->relation >= WORLD_N_RELATIONS || a->background < 0 || a->background >= WORLD_N_COLOURS)
        return 0;
    return a->colour[0] != a->colour[1] && a->colour[0] != a->background && a->colour[1] != a->background;
}

WorldAttrs world_canonical(const WorldAttrs *a) {
    WorldAttrs c = *a;
    if (a->relation == WORLD_RIGHT_OF || a->relation == WORLD_BELOW) {
        c.colour[0] = a->colour[1], c.colour[1] = a->colour[0];
        c.shape[0] = a->shape[1], c.shape[1] = a->shape[0];
        c.relation = a->relation == WORLD_RIGHT_OF ? WORLD_LEFT_OF : WORLD_ABOVE;
    }
    return c;
}

int world_is_heldout(const WorldAttrs *a) {
    WorldAttrs c = world_canonical(a);
    uint64_t z = (uint64_t)c.colour[0] | (uint64_t)c.colour[1] << 4 | (uint64_t)c.shape[0] << 8 |
                 (uint64_t)c.shape[1] << 12 | (uint64_t)c.relation << 16 | (uint64_t)c.background << 20;
    z += 0x9E3779B97F4A7C15ull;  // splitmix64's finaliser
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z % 10 == 0;
}

// The k-th colour (0-based) among those not in `skip` (n_skip entries).
static int colour_skipping(int k, const int *skip, int n_skip) {
    for (int c = 0; c < WORLD_N_COLOURS; c++) {
        int skipped = 0;
        for (int i = 0; i < n_skip; i++) skipped |= c == skip[i];
        if (!skipped && k-- == 0) return c;
    }
    return -1;  // unreachable for k < WORLD_N_COLOURS - n_skip
}

// Colour triple t in [0, 336) -> background, object 0, object 1 (all different).
static void colours_from_index(int t, WorldAttrs *a) {
    int bg = t / 42, c0 = (t % 42) / 6, c1 = t % 6;
    a->background = bg;
    a->colour[0] = colour_skipping(c0, &bg, 1);
    int skip[2] = {bg, a->colour[0]};
    a->colour[1] = colour_skipping(c1, skip, 2);
}

void world_attrs_from_index(int index, WorldAttrs *a) {
    a->relation = index % WORLD_N_RELATIONS;
    index /= WORLD_N_RELATIONS;
    a->shape[1] = index % WORLD_N_SHAPES;
    index /= WORLD_N_SHAPES;
    a->shape[0] = index % WORLD_N_SHAPES;
    index /= WORLD_N_SHAPES;
    colours_from_index(index, a);
}

// ---------------------------------------------------------------- geometry and rendering

// The first / second object's coordinate along the relation's axis for u in [0, 1]: [7, 10] / [22, 25].
static float near_coord(float u) { return 7.0f + 3.0f * u; }
static float far_coord(float u) { return 22.0f + 3.0f * u; }
static float perp_coord(float u) { return 12.0f + 8.0f * u; }

// Geometry from uniforms u[0..5]: axis coordinate of the near / far object, perpendicular coordinates
// of object 0 / 1, half-sizes of object 0 / 1.
static void geom_from_uniforms(const WorldAttrs *a, const float u[6], WorldGeom *g) {
    int first = a->relation == WORLD_LEFT_OF || a->relation == WORLD_ABOVE ? 0 : 1;   // the left / upper one
    float along[2];
    along[first] = near_coord(u[0]);
    along[1 - first] = far_coord(u[1]);
    int horizontal = a->relation == WORLD_LEFT_OF || a->relation == WORLD_RIGHT_OF;
    for (int i = 0; i < 2; i++) {
        float perp = perp_coord(u[2 + i]);
        g->cx[i] = horizontal ? along[i] : perp;
        g->cy[i] = horizontal ? perp : along[i];
        g->half[i] = 4.5f + 1.25f * u[4 + i];
    }
}

void world_geom_centred(const WorldAttrs *a, WorldGeom *g) {
    const float u[6] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    geom_from_uniforms(a, u, g);
}

// 1 when the point (px, py) is inside the shape centred at (cx, cy) with half-size h.
static int inside(int shape, float px, float py, float cx, float cy, float h) {
    float dx = px - cx, dy = py - cy;
    switch (shape) {
    case WORLD_CIRCLE: return dx * dx + dy * dy <= h * h;
    case WORLD_SQUARE: return fabsf(dx) <= h && fabsf(dy) <= h;
    case WORLD_TRIANGLE: return dy >= -h && dy <= h && fabsf(dx) <= 0.5f * (dy + h);  // apex up, base down
    default: return fabsf(dx) + fabsf(dy) <= h;                                           // WORLD_DIAMOND
    }
}

void world_render(const WorldAttrs *a, const WorldGeom *g, uint8_t *rgb) {
    const uint8_t *bg = world_palette[a->background];
    for (int p = 0; p < WORLD_SIZE * WORLD_SIZE; p++) memcpy(rgb + 3 * p, bg, 3);
    for (int i = 0; i < 2; i++) {
        const uint8_t *col = world_palette[a->colour[i]];
        float h = g->half[i];
        int x0 = (int)floorf(g->cx[i] - h), x1 = (int)ceilf(g->cx[i] + h);
        int y0 = (int)floorf(g->cy[i] - h), y1 = (int)ceilf(g->cy[i] + h);
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        if (x1 > WORLD_SIZE - 1) x1 = WORLD_SIZE - 1;
        if (y1 > WORLD_SIZE - 1) y1 = WORLD_SIZE - 1;
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++)
                if (inside(a->shape[i], (float)x + 0.5f, (float)y + 0.5f, g->cx[i], g->cy[i], h))
                    memcpy(rgb + 3 * (y * WORLD_SIZE + x), col, 3);
    }
}

// ---------------------------------------------------------------- sampling

// A uniform in [0, 1) in steps of 1/64 (the top 6 bits). Geometry is then a multiple of 1/256 px, so
// every float operation of the renderer is exact and no compiler (FMA contraction included) can change
// which pixels a shape covers.
static float u01_64(uint32_t x) { return (float)(x >> 26) * 0.015625f; }

// Block `j` of attempt `attempt` of item `index` on the Philox stream `stream`: 4 random 32-bit words.
static PhiloxU32x4 stream_block(uint64_t seed, uint32_t stream, uint64_t index, uint32_t attempt, uint32_t j) {
    PhiloxU32x4 ctr = {{(uint32_t)index, (uint32_t)(index >> 32), stream, attempt * 4u + j}};
    return philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
}

// The world's own stream (sampling and geometry).
static PhiloxU32x4 item_block(uint64_t seed, uint64_t index, uint32_t attempt, uint32_t j) {
    return stream_block(seed, WORLD_STREAM, index, attempt, j);
}

void world_sample(uint64_t seed, uint64_t index, WorldSplit split, WorldItem *out) {
    memset(out, 0, sizeof *out);  // the caption's unused bytes too: items compare with memcmp
    WorldAttrs a;
    uint32_t attempt = 0;
    PhiloxU32x4 b1;
    for (;; attempt++) {  // rejection: ends with probability 1 (each try hits the split with p >= 0.1)
        PhiloxU32x4 b0 = item_block(seed, index, attempt, 0);
        b1 = item_block(seed, index, attempt, 1);
        colours_from_index((int)(b0.v[0] % (WORLD_N_COLOURS * (WORLD_N_COLOURS - 1) * (WORLD_N_COLOURS - 2))), &a);
        a.shape[0] = (int)(b0.v[1] % WORLD_N_SHAPES);
        a.shape[1] = (int)(b0.v[2] % WORLD_N_SHAPES);
        a.relation = (int)(b0.v[3] % WORLD_N_RELATIONS);
        if (world_is_heldout(&a) == (split == WORLD_HELDOUT)) break;
    }
    PhiloxU32x4 b2 = item_block(seed, index, attempt, 2);
    float u[6] = {u01_64(b1.v[0]), u01_64(b1.v[1]), u01_64(b1.v[2]),
                  u01_64(b1.v[3]), u01_64(b2.v[0]), u01_64(b2.v[1])};
    out->attrs = a;
    geom_from_uniforms(&a, u, &out->geom);
    world_caption(&a, out->caption, sizeof out->caption);
    world_render(&a, &out->geom, out->rgb);
}

void world_sample_geom(const WorldAttrs *a, uint64_t seed, uint64_t index, WorldGeom *g) {
    const uint32_t attempt = 0x3fffffffu;  // a block no world_sample rejection loop reaches in practice
    PhiloxU32x4 b1 = item_block(seed, index, attempt, 1), b2 = item_block(seed, index, attempt, 2);
    float u[6] = {u01_64(b1.v[0]), u01_64(b1.v[1]), u01_64(b1.v[2]),
                  u01_64(b1.v[3]), u01_64(b2.v[0]), u01_64(b2.v[1])};
    geom_from_uniforms(a, u, g);
}

// A value of [0, n) other than `self` and not in avoid[0..n_avoid), uniform over those, from the word x.
static int other_value(int n, int self, const int *avoid, int n_avoid, uint32_t x) {
    int allowed[WORLD_N_COLOURS], n_allowed = 0;
    for (int v = 0; v < n; v++) {
        int ok = v != self;
        for (int k = 0; k < n_avoid; k++) ok = ok && v != avoid[k];
        if (ok) allowed[n_allowed++] = v;
    }
    return allowed[x % (uint32_t)n_allowed];
}

void world_noisy_attrs(const WorldAttrs *a, double q, uint64_t seed, uint64_t index, WorldAttrs *out) {
    *out = *a;
    if (q <= 0) return;
    for (uint32_t attempt = 0; attempt < 64; attempt++) {
        // words 0..5 decide whether attribute k is replaced, words 6..11 pick its new value
        uint32_t word[12];
        for (uint32_t j = 0; j < 3; j++) {
            PhiloxU32x4 b = stream_block(seed, NOISE_STREAM, index, attempt, j);
            memcpy(word + 4 * j, b.v, sizeof b.v);
        }
        WorldAttrs n = *a;
        if (philox_u01(word[0]) < q) {
            int avoid[2] = {n.colour[0], n.colour[1]};
            n.background = other_value(WORLD_N_COLOURS, a->background, avoid, 2, word[6]);
        }
        for (int i = 0; i < 2; i++)
            if (philox_u01(word[1 + i]) < q) {
                int avoid[2] = {n.colour[1 - i], n.background};
                n.colour[i] = other_value(WORLD_N_COLOURS, a->colour[i], avoid, 2, word[7 + i]);
            }
        for (int i = 0; i < 2; i++)
            if (philox_u01(word[3 + i]) < q)
                n.shape[i] = other_value(WORLD_N_SHAPES, a->shape[i], NULL, 0, word[9 + i]);
        if (philox_u01(word[5]) < q) n.relation = other_value(WORLD_N_RELATIONS, a->relation, NULL, 0, word[11]);
        if (!world_is_heldout(&n)) {
            *out = n;
            return;
        }
    }
}

// ---------------------------------------------------------------- captions

static const char *article(int colour) { return world_colour_names[colour][0] == 'o' ? "an" : "a"; }

int world_caption(const WorldAttrs *a, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s %s %s %s %s %s %s on %s %s background", article(a->colour[0]),
                     world_colour_names[a->colour[0]], world_shape_names[a->shape[0]],
                     world_relation_names[a->relation], article(a->colour[1]), world_colour_names[a->colour[1]],
                     world_shape_names[a->shape[1]], article(a->background), world_colour_names[a->background]);
    if (n < 0 || (size_t)n >= cap) {
        if (cap) buf[0] = '\0';
        return -1;
    }
    return n;
}

#define MAX_WORDS 16

// Index of word in names[n], or -1.
static int lookup(const char *word, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(word, names[i]) == 0) return i;
    return -1;
}

int world_parse_caption(const char *text, WorldAttrs *a, DiceError *err) {
    char buf[256];
    size_t len = strlen(text);
    DICE_CHECK(err, len < sizeof buf, "world caption: %zu bytes, longer than any caption of the grammar", len);
    for (size_t i = 0; i <= len; i++) buf[i] = (char)tolower((unsigned char)text[i]);
    while (len && isspace((unsigned char)buf[len - 1])) buf[--len] = '\0';
    if (len && buf[len - 1] == '.') buf[--len] = '\0';
    char *words[MAX_WORDS + 1];
    int n = 0;
    for (char *p = strtok(buf, " \t\r\n"); p; p = strtok(NULL, " \t\r\n")) {
        DICE_CHECK(err, n < MAX_WORDS, "world caption \"%s\": too many words", text);
        words[n++] = p;
    }
    words[n] = NULL;
    // Grammar: ART COLOUR SHAPE RELATION ART COLOUR SHAPE on ART COLOUR background
    int w = 0;
#define EXPECT(cond, what)                                                                          \
    DICE_CHECK(err, w < n && (cond), "world caption \"%s\": word %d (\"%s\") should be %s", text, w + 1, \
               w < n ? words[w] : "end of caption", what)
    for (int i = 0; i < 2; i++) {
        EXPECT(strcmp(words[w], "a") == 0 || strcmp(words[w], "an") == 0, "\"a\" or \"an\"");
        w++;
        EXPECT((a->colour[i] = lookup(words[w], world_colour_names, WORLD_N_COLOURS)) >= 0, "a colour");
        w++;
        EXPECT((a->shape[i] = lookup(words[w], world_shape_names, WORLD_N_SHAPES)) >= 0, "a shape");
        w++;
        if (i == 1) break;
        if (w < n && (strcmp(words[w], "left") == 0 || strcmp(words[w], "right") == 0)) {
            a->relation = words[w][0] == 'l' ? WORLD_LEFT_OF : WORLD_RIGHT_OF;
            w++;
            EXPECT(strcmp(words[w], "of") == 0, "\"of\"");
        } else {
            EXPECT(strcmp(words[w], "above") == 0 || strcmp(words[w], "below") == 0,
                   "a relation (left of, right of, above, below)");
            a->relation = words[w][1] == 'b' ? WORLD_ABOVE : WORLD_BELOW;
        }
        w++;
    }
    EXPECT(strcmp(words[w], "on") == 0, "\"on\"");
    w++;
    EXPECT(strcmp(words[w], "a") == 0 || strcmp(words[w], "an") == 0, "\"a\" or \"an\"");
    w++;
    EXPECT((a->background = lookup(words[w], world_colour_names, WORLD_N_COLOURS)) >= 0, "a colour");
    w++;
    EXPECT(strcmp(words[w], "background") == 0, "\"background\"");
    w++;
#undef EXPECT
    DICE_CHECK(err, w == n, "world caption \"%s\": unexpected words after \"background\"", text);
    DICE_CHECK(err, world_attrs_valid(a),
               "world caption \"%s\": the two objects and the background need three different colours", text);
    return 0;
}
