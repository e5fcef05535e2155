// data/world.h — the synthetic captioned-image world of the embedded default (issue 6): two coloured
// shapes and a spatial relation on a coloured background, 32x32 RGB, with captions from a small grammar
//     "a red circle left of a blue square on a green background"
//     "an orange triangle above a gray diamond on a white background"
// and a deterministic pixel analyser that reads the attributes back (the caption-accuracy metric).
// Sampling, rendering and captions are in data/world.c, the analyser in data/world_analyse.c.
//
// Attributes: 8 colours (red orange yellow green blue purple white gray), 4 shapes (circle square
// triangle diamond), 4 relations (left of, right of, above, below); the two objects and the background
// have three different colours. 8*7*6 colour triples x 4*4 shapes x 4 relations = 21,504 captions.
// "A left of B" and "B right of A" describe the same scene; the canonical form (world_canonical) keeps
// relation LEFT_OF or ABOVE, so there are 10,752 scenes. A scene is held out of training when a hash of
// its canonical attributes is 0 mod 10 (world_is_heldout); both captions of a scene fall in the same
// split, so held-out prompts are combinations whose image the model never saw.
//
// Geometry: each object is a shape of half-size 4.5 .. 5.75 px; for left/right the first object's
// centre x is in [7, 10] and the second's in [22, 25] (or the reverse), both centre y in [12, 20];
// above/below is the same transposed. Objects never touch each other and stay >= 1 px off the border.
// Rendering is hard-edged (a pixel is inside a shape when its centre is), so it is exact and fast;
// sampled geometry is quantised to 1/256 px so that every float operation of the renderer is exact.
//
// Everything is deterministic from its inputs: world_sample draws from Philox4x32-10 (nn/philox.h)
// keyed by the seed with counter (index, attempt), so item i of a seed never depends on other items.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WORLD_SIZE 32                                 // images are WORLD_SIZE x WORLD_SIZE RGB
#define WORLD_PIXELS (WORLD_SIZE * WORLD_SIZE * 3)    // bytes of an image (H, W, 3), uint8
#define WORLD_CAPTION_MAX 96                          // longest caption + NUL fits
#define WORLD_N_COLOURS 8
#define WORLD_N_SHAPES 4
#define WORLD_N_RELATIONS 4
#define WORLD_N_CAPTIONS (WORLD_N_COLOURS * (WORLD_N_COLOURS - 1) * (WORLD_N_COLOURS - 2) * \
                          WORLD_N_SHAPES * WORLD_N_SHAPES * WORLD_N_RELATIONS)   // 21,504
#define WORLD_N_SCENES (WORLD_N_CAPTIONS / 2)         // canonical scenes: 10,752

typedef enum { WORLD_RED, WORLD_ORANGE, WORLD_YELLOW, WORLD_GREEN, WORLD_BLUE, WORLD_PURPLE, WORLD_WHITE,
               WORLD_GRAY } WorldColour;
typedef enum { WORLD_CIRCLE, WORLD_SQUARE, WORLD_TRIANGLE, WORLD_DIAMOND } WorldShape;
// The relation of object 0 (the caption's subject) to object 1.
typedef enum { WORLD_LEFT_OF, WORLD_RIGHT_OF, WORLD_ABOVE, WORLD_BELOW } WorldRelation;
typedef enum { WORLD_TRAIN, WORLD_HELDOUT } WorldSplit;

// A caption's content. An attribute the analyser could not read is -1.
typedef struct WorldAttrs {
    int colour[2];     // WorldColour of object 0 (subject) and object 1
    int shape[2];      // WorldShape
    int relation;      // WorldRelation of object 0 to object 1
    int background;    // WorldColour, different from both objects' colours
} WorldAttrs;

// Where the objects are drawn, in pixels (x right, y down; pixel (x, y) covers [x, x+1) x [y, y+1)).
typedef struct WorldGeom {
    float cx[2], cy[2];   // centres of object 0 and object 1
    float half[2];        // half-sizes (radius of a circle, half the side of a square, ...)
} WorldGeom;

typedef struct WorldItem {
    WorldAttrs attrs;
    WorldGeom geom;
    char caption[WORLD_CAPTION_MAX];
    uint8_t rgb[WORLD_PIXELS];        // (H, W, 3)
} WorldItem;

// What the analyser read from an image. attrs is canonical (relation LEFT_OF or ABOVE, object 0 the left
// or upper one); with fewer than two objects found, the missing objects' colour/shape and the relation
// are -1.
typedef struct WorldAnalysis {
    WorldAttrs attrs;
    int n_objects;                    // objects found: 0, 1 or 2
    float cx[2], cy[2];               // centroids of the found objects
    int n_pixels[2];                  // their pixel counts
    float lower_share[2];             // share of their pixels in the lower half of the bounding box
    float squareness[2];              // E[dx^2 dy^2] / E[(dx^4 + dy^4) / 2] about the centroid
} WorldAnalysis;

// Per-attribute correctness of an image against the attributes it was meant to show (1 right, 0 wrong).
// The found objects are matched to the target's objects by identity (the assignment with more colour +
// shape matches; ties keep positional order); relation is right when the matched objects stand in the
// target relation. objects: both (colour, shape) pairs right. all: every attribute right.
typedef struct WorldScore {
    int background, colour[2], shape[2], relation, objects, all;
} WorldScore;

// Words of the grammar (every one a single CLIP token) and the attribute names.
extern const char *const world_colour_names[WORLD_N_COLOURS];
extern const char *const world_shape_names[WORLD_N_SHAPES];
extern const char *const world_relation_names[WORLD_N_RELATIONS];   // "left of", "right of", "above", "below"
extern const uint8_t world_palette[WORLD_N_COLOURS][3];             // RGB of each colour
// All distinct words a caption can contain; returns their number and sets *words.
int world_vocabulary(const char *const **words);

// 1 if attrs is a valid combination (indices in range, three distinct colours).
int world_attrs_valid(const WorldAttrs *a);
// The same scene with relation LEFT_OF or ABOVE (objects swapped when it was RIGHT_OF or BELOW).
WorldAttrs world_canonical(const WorldAttrs *a);
// 1 when the scene of a valid attrs is held out of training (hash of the canonical attrs % 10 == 0).
int world_is_heldout(const WorldAttrs *a);
// Enumerates all WORLD_N_CAPTIONS valid combinations: index 0 .. WORLD_N_CAPTIONS-1 -> attrs.
void world_attrs_from_index(int index, WorldAttrs *a);

// Item `index` of the stream of `split` for `seed`: attributes uniform over the split's combinations,
// jittered geometry, caption and rendered image. Depends on (seed, index, split) only.
void world_sample(uint64_t seed, uint64_t index, WorldSplit split, WorldItem *out);
// The attributes a noisy caption of item `index` gives for the scene a (valid, of the training split), like
// the imperfect captions of web images: each of the six attributes, in the order background, colour 0,
// colour 1, shape 0, shape 1, relation, is independently with probability q replaced by a value drawn
// uniformly from the others that keep the caption valid (a colour never equal to the other two colours as
// they stand then): 5 for a colour, 3 for a shape or the relation. A draw that lands on a held-out scene is
// redrawn, so held-out combinations never appear in training captions either (after 64 such draws, an
// event of probability < 1e-60, the clean attributes). q = 0 returns a itself. Philox keyed by seed on a
// stream of its own, addressed by index: depends on (a, q, seed, index) only.
void world_noisy_attrs(const WorldAttrs *a, double q, uint64_t seed, uint64_t index, WorldAttrs *out);
// Jittered geometry for given attrs, distributed as world_sample's (the real images of a prompt, e.g. for a
// Frechet distance); depends on (attrs, seed, index) only.
void world_sample_geom(const WorldAttrs *a, uint64_t seed, uint64_t index, WorldGeom *g);
// The jitter-free geometry of attrs (object centres at the middle of their ranges, half-size 5).
void world_geom_centred(const WorldAttrs *a, WorldGeom *g);
// Draws the background and both objects into rgb (WORLD_PIXELS bytes, (H, W, 3)).
void world_render(const WorldAttrs *a, const WorldGeom *g, uint8_t *rgb);

// The caption of valid attrs into buf; returns its length, or -1 if cap is too small (buf then "").
int world_caption(const WorldAttrs *a, char *buf, size_t cap);
// Parses a caption of the grammar (case-insensitive, words separated by white space, "a" or "an"
// before each colour, an optional final "."); an error names the first word that does not fit.
int world_parse_caption(const char *text, WorldAttrs *a, DiceError *err);

// Reads the attributes back from an image (WORLD_PIXELS bytes; data/world_analyse.c): every pixel takes
// its nearest palette colour, or none when it is far from all (a blend at a soft edge); background = the
// most frequent colour on the border; the objects' colours = the two other colours with the most interior
// pixels (pixel and 4 neighbours alike), each object the largest 8-connected region of its colour (or the
// two largest regions of one colour when only one is present), grown back over its soft edge to the
// half-way contour between background and object colour. Shape: a triangle has about 3/4 of its pixels in
// the lower half of its bounding box; otherwise the fourth-moment squareness E[dx^2 dy^2] / E[(dx^4 +
// dy^4) / 2] separates square (5/9), circle (1/3) and diamond (1/6). Relation from the centroids (the
// larger of |dx| and |dy| picks the axis). Measured: 100% of sampled images read back exactly with
// +-24 uniform noise, 99% after a 3x3 box blur; after two 3x3 blurs most diamonds read as circles.
void world_analyse(const uint8_t *rgb, WorldAnalysis *out);
// The palette colour nearest to one RGB pixel (rgb[0..2]; squared distance, ties to the lower index), its
// squared distance in *dist2 (the analyser's pixel labels; the metrics' colour features).
int world_nearest_colour(const uint8_t *rgb, int *dist2);
// Analyses rgb and scores it against target (valid attrs, any relation).
void world_score(const uint8_t *rgb, const WorldAttrs *target, WorldScore *score);

#ifdef __cplusplus
}
#endif
