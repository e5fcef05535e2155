// data/world_analyse.c — the deterministic pixel analyser of the synthetic world (data/world.h):
// reads background, object colours, shapes and the relation back from an image, and scores an image
// against the attributes it was meant to show (the caption-accuracy metric of the embedded default).
#include <math.h>
#include <string.h>

#include "world.h"

#define N_PIX (WORLD_SIZE * WORLD_SIZE)
// Fewest pixels of an object: the smallest shape drawn (a triangle of half-size 4.5) has about 40.
#define MIN_OBJECT_PIXELS 16
// Fewest interior pixels (the pixel and its 4 neighbours of one colour) of an object's colour: thin
// fringes, such as the orange-looking blend around a red shape on yellow, have almost none.
#define MIN_INTERIOR_PIXELS 4
// A pixel further than this from every palette colour is UNKNOWN (the nearest two colours are 83 apart).
#define PURE_DISTANCE 50
#define UNKNOWN 255

// Shape thresholds, midway between the ideal values: a triangle (apex up) has 3/4 of its pixels in the
// lower half of its bounding box, the other shapes 1/2. Squareness, the ratio of the fourth moments
// E[dx^2 dy^2] / E[(dx^4 + dy^4) / 2] about the centroid, is 5/9 for an upright square, 1/3 for a disc
// and 1/6 for a diamond (a square turned 45 degrees), whatever the size, and survives blurring.
#define TRIANGLE_MIN_LOWER 0.63f
#define SQUARE_MIN_SQUARENESS 0.44f
#define CIRCLE_MIN_SQUARENESS 0.265f

typedef struct Region {
    int n, x0, x1, y0, y1;
    float cx, cy;
    float lower_share, squareness;   // the shape statistics below
    int shape;
} Region;

// Nearest palette colour of each pixel (squared RGB distance; ties to the lower index), or UNKNOWN when
// even the nearest is more than PURE_DISTANCE away (a blend of two colours at a soft edge, for instance).
int world_nearest_colour(const uint8_t *rgb, int *dist2) {
    int best = 0, best_d = 1 << 30;
    for (int c = 0; c < WORLD_N_COLOURS; c++) {
        int d = 0;
        for (int k = 0; k < 3; k++) {
            int e = (int)rgb[k] - (int)world_palette[c][k];
            d += e * e;
        }
        if (d < best_d) best_d = d, best = c;
    }
    *dist2 = best_d;
    return best;
}

static void label_pixels(const uint8_t *rgb, uint8_t *labels) {
    for (int p = 0; p < N_PIX; p++) {
        int d;
        int best = world_nearest_colour(rgb + 3 * p, &d);
        labels[p] = d <= PURE_DISTANCE * PURE_DISTANCE ? (uint8_t)best : UNKNOWN;
    }
}

// The most frequent label on the image's border.
static int border_mode(const uint8_t *labels) {
    int count[WORLD_N_COLOURS] = {0};
    for (int y = 0; y < WORLD_SIZE; y++)
        for (int x = 0; x < WORLD_SIZE; x++) {
            int l = labels[y * WORLD_SIZE + x];
            if ((x == 0 || y == 0 || x == WORLD_SIZE - 1 || y == WORLD_SIZE - 1) && l != UNKNOWN) count[l]++;
        }
    int best = 0;
    for (int c = 1; c < WORLD_N_COLOURS; c++)
        if (count[c] > count[best]) best = c;
    return best;
}

// Labels the 8-connected regions of pixels of `colour` into comp (1, 2, ...; 0 elsewhere) and returns the
// ids of the two largest (0 where absent) in top[2], sizes in size[2].
static void largest_regions(const uint8_t *labels, int colour, int *comp, int top[2], int size[2]) {
    int stack[N_PIX];
    memset(comp, 0, N_PIX * sizeof *comp);
    top[0] = top[1] = size[0] = size[1] = 0;
    int next = 1;
    for (int s = 0; s < N_PIX; s++) {
        if (labels[s] != colour || comp[s]) continue;
        int id = next++, n = 0, sp = 0;
        stack[sp++] = s;
        comp[s] = id;
        while (sp) {
            int p = stack[--sp], px = p % WORLD_SIZE, py = p / WORLD_SIZE;
            n++;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int x = px + dx, y = py + dy, q = y * WORLD_SIZE + x;
                    if (x < 0 || y < 0 || x >= WORLD_SIZE || y >= WORLD_SIZE) continue;
                    if (labels[q] != colour || comp[q]) continue;
                    comp[q] = id;
                    stack[sp++] = q;
                }
        }
        if (n > size[0]) {
            top[1] = top[0], size[1] = size[0];
            top[0] = id, size[0] = n;
        } else if (n > size[1]) {
            top[1] = id, size[1] = n;
        }
    }
}

// Bounding box, centroid and shape of region `id` of comp (pixels of palette colour `colour` on
// background `bg`). Soft edges are restored first: within 2 px of the region's bounding box, a pixel
// joins when it lies on the RGB segment from bg to colour (within PURE_DISTANCE) nearer colour's end,
// so a blurred shape is measured at its half-way contour rather than by its shrunken pure core.
static Region measure(const uint8_t *rgb, const int *comp, int id, int colour, int bg) {
    Region r = {0, WORLD_SIZE, -1, WORLD_SIZE, -1, 0.0f, 0.0f, 0.0f, 0.0f, -1};
    for (int p = 0; p < N_PIX; p++) {
        if (comp[p] != id) continue;
        int x = p % WORLD_SIZE, y = p / WORLD_SIZE;
        if (x < r.x0) r.x0 = x;
        if (x > r.x1) r.x1 = x;
        if (y < r.y0) r.y0 = y;
        if (y > r.y1) r.y1 = y;
    }
    float dir[3], dir2 = 0.0f;
    for (int k = 0; k < 3; k++) {
        dir[k] = (float)world_palette[colour][k] - (float)world_palette[bg][k];
        dir2 += dir[k] * dir[k];
    }
    uint8_t in[N_PIX] = {0};
    int wx0 = r.x0 - 2 < 0 ? 0 : r.x0 - 2, wx1 = r.x1 + 2 > WORLD_SIZE - 1 ? WORLD_SIZE - 1 : r.x1 + 2;
    int wy0 = r.y0 - 2 < 0 ? 0 : r.y0 - 2, wy1 = r.y1 + 2 > WORLD_SIZE - 1 ? WORLD_SIZE - 1 : r.y1 + 2;
    for (int y = wy0; y <= wy1; y++)
        for (int x = wx0; x <= wx1; x++) {
            int p = y * WORLD_SIZE + x;
            float v[3], t = 0.0f, off2 = 0.0f;
            for (int k = 0; k < 3; k++) {
                v[k] = (float)rgb[3 * p + k] - (float)world_palette[bg][k];
                t += v[k] * dir[k];
            }
            t /= dir2;   // position along bg -> colour: 0 at bg, 1 at colour
            for (int k = 0; k < 3; k++) off2 += (v[k] - t * dir[k]) * (v[k] - t * dir[k]);
            in[p] = comp[p] == id || (t >= 0.5f && t <= 1.5f && off2 <= (float)(PURE_DISTANCE * PURE_DISTANCE));
        }
    r.x0 = r.y0 = WORLD_SIZE, r.x1 = r.y1 = -1;
    float sx = 0.0f, sy = 0.0f;
    for (int p = 0; p < N_PIX; p++) {
        if (!in[p]) continue;
        int x = p % WORLD_SIZE, y = p / WORLD_SIZE;
        r.n++;
        sx += (float)x + 0.5f, sy += (float)y + 0.5f;
        if (x < r.x0) r.x0 = x;
        if (x > r.x1) r.x1 = x;
        if (y < r.y0) r.y0 = y;
        if (y > r.y1) r.y1 = y;
    }
    r.cx = sx / (float)r.n, r.cy = sy / (float)r.n;
    // Pixels above / below the middle row of the bounding box (a middle row itself counts in neither).
    // Fourth moments about the centroid: cross = sum dx^2 dy^2, axial = sum (dx^4 + dy^4) / 2.
    int upper = 0, lower = 0;
    float cross = 0.0f, axial = 0.0f;
    for (int p = 0; p < N_PIX; p++) {
        if (!in[p]) continue;
        int y2 = 2 * (p / WORLD_SIZE);
        upper += y2 < r.y0 + r.y1, lower += y2 > r.y0 + r.y1;
        float dx = (float)(p % WORLD_SIZE) + 0.5f - r.cx, dy = (float)(p / WORLD_SIZE) + 0.5f - r.cy;
        cross += dx * dx * dy * dy;
        axial += 0.5f * (dx * dx * dx * dx + dy * dy * dy * dy);
    }
    r.lower_share = upper + lower ? (float)lower / (float)(upper + lower) : 0.5f;
    r.squareness = axial > 0.0f ? cross / axial : 0.0f;
    if (r.lower_share > TRIANGLE_MIN_LOWER)
        r.shape = WORLD_TRIANGLE;
    else if (r.squareness > SQUARE_MIN_SQUARENESS)
        r.shape = WORLD_SQUARE;
    else if (r.squareness > CIRCLE_MIN_SQUARENESS)
        r.shape = WORLD_CIRCLE;
    else
        r.shape = WORLD_DIAMOND;
    return r;
}

void world_analyse(const uint8_t *rgb, WorldAnalysis *out) {
    uint8_t labels[N_PIX];
    int comp[N_PIX];
    label_pixels(rgb, labels);
    memset(out, 0, sizeof *out);
    WorldAttrs *a = &out->attrs;
    a->background = border_mode(labels);
    a->colour[0] = a->colour[1] = a->shape[0] = a->shape[1] = a->relation = -1;

    // The two colours other than the background with the most interior pixels.
    int count[WORLD_N_COLOURS] = {0};
    for (int y = 1; y < WORLD_SIZE - 1; y++)
        for (int x = 1; x < WORLD_SIZE - 1; x++) {
            int p = y * WORLD_SIZE + x, l = labels[p];
            if (l != UNKNOWN && labels[p - 1] == l && labels[p + 1] == l && labels[p - WORLD_SIZE] == l &&
                labels[p + WORLD_SIZE] == l)
                count[l]++;
        }
    count[a->background] = 0;
    int first = -1, second = -1;
    for (int c = 0; c < WORLD_N_COLOURS; c++) {
        if (count[c] < MIN_INTERIOR_PIXELS) continue;
        if (first < 0 || count[c] > count[first])
            second = first, first = c;
        else if (second < 0 || count[c] > count[second])
            second = c;
    }
    Region found[2];
    int colours[2];
    int n = 0, top[2], size[2];
    for (int k = 0; k < 2; k++) {
        int colour = k ? second : first;
        if (colour < 0) continue;
        largest_regions(labels, colour, comp, top, size);
        int regions = second < 0 ? 2 : 1;   // one colour only: both objects may have it
        for (int j = 0; j < regions; j++)
            if (size[j] >= MIN_OBJECT_PIXELS) {
                found[n] = measure(rgb, comp, top[j], colour, a->background);
                colours[n++] = colour;
            }
    }
    out->n_objects = n;
    int order[2] = {0, 1};
    if (n == 2) {
        float dx = found[1].cx - found[0].cx, dy = found[1].cy - found[0].cy;
        int horizontal = fabsf(dx) >= fabsf(dy);
        a->relation = horizontal ? WORLD_LEFT_OF : WORLD_ABOVE;
        if ((horizontal ? dx : dy) < 0.0f) order[0] = 1, order[1] = 0;
    }
    for (int i = 0; i < n; i++) {
        const Region *r = &found[order[i]];
        a->colour[i] = colours[order[i]];
        a->shape[i] = r->shape;
        out->cx[i] = r->cx, out->cy[i] = r->cy, out->n_pixels[i] = r->n;
        out->lower_share[i] = r->lower_share, out->squareness[i] = r->squareness;
    }
}

void world_score(const uint8_t *rgb, const WorldAttrs *target, WorldScore *score) {
    WorldAnalysis an;
    world_analyse(rgb, &an);
    const WorldAttrs *o = &an.attrs;
    WorldAttrs t = world_canonical(target);
    int matches[2] = {0, 0};   // colour + shape matches with the found objects kept in order / swapped
    for (int i = 0; i < 2; i++) {
        matches[0] += (o->colour[i] == t.colour[i]) + (o->shape[i] == t.shape[i]);
        matches[1] += (o->colour[1 - i] == t.colour[i]) + (o->shape[1 - i] == t.shape[i]);
    }
    int swap = matches[1] > matches[0];
    memset(score, 0, sizeof *score);
    score->background = o->background == t.background;
    for (int i = 0; i < 2; i++) {
        int j = swap ? 1 - i : i;
        score->colour[i] = o->colour[j] == t.colour[i];
        score->shape[i] = o->shape[j] == t.shape[i];
    }
    score->relation = an.n_objects == 2 && !swap && o->relation == t.relation;
    if (t.relation != target->relation) {  // back to the target's object order
        int c = score->colour[0], s = score->shape[0];
        score->colour[0] = score->colour[1], score->shape[0] = score->shape[1];
        score->colour[1] = c, score->shape[1] = s;
    }
    score->objects = score->colour[0] && score->colour[1] && score->shape[0] && score->shape[1];
    score->all = score->objects && score->relation && score->background;
}
