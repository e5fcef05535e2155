// nn/philox.c — CPU fills of the Philox4x32-10 uniform and normal streams (definitions in nn/philox.h).
#include "philox.h"

#include <string.h>

typedef void (*PhiloxBlockFn)(uint64_t seed, uint64_t b, float out[4]);

// Writes elements offset .. offset+n-1: whole blocks directly, the ragged ends through a copy.
static void philox_fill(float *out, size_t n, uint64_t seed, uint64_t offset, PhiloxBlockFn block4) {
    if (n == 0) return;
    uint64_t end = offset + n;
    uint64_t g = offset;
    float v[4];
    while (g < end) {
        uint64_t b = g >> 2;
        uint64_t lane = g & 3;
        uint64_t take = 4 - lane < end - g ? 4 - lane : end - g;
        if (take == 4) {
            block4(seed, b, out + (g - offset));
        } else {
            block4(seed, b, v);
            memcpy(out + (g - offset), v + lane, take * sizeof(float));
        }
        g += take;
    }
}

void philox_fill_uniform_f32(float *out, size_t n, uint64_t seed, uint64_t offset) {
    philox_fill(out, n, seed, offset, philox_uniform4);
}

void philox_fill_normal_f32(float *out, size_t n, uint64_t seed, uint64_t offset) {
    philox_fill(out, n, seed, offset, philox_normal4);
}
