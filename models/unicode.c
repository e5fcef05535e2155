// models/unicode.c — UTF-8, code point properties, str.lower and NFC over the generated tables
// (see unicode.h; the tables come from scripts/gen_unicode_tables.py).
#include "unicode.h"

#include "unicode_tables.h"

_Static_assert(UC_DECOMP_MAX_LEN <= UC_NFC_MAX_GROWTH, "uc_nfc's output bound is too small");

// Hangul syllables compose and decompose algorithmically (Unicode section 3.12).
enum {
    HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7,
    HANGUL_LCOUNT = 19, HANGUL_VCOUNT = 21, HANGUL_TCOUNT = 28,
    HANGUL_NCOUNT = HANGUL_VCOUNT * HANGUL_TCOUNT, HANGUL_SCOUNT = HANGUL_LCOUNT * HANGUL_NCOUNT,
};

int uc_utf8_decode(const char *s, size_t n, uint32_t *out, size_t *n_out, DiceError *err) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, k = 0;
    while (i < n) {
        uint32_t c = p[i];
        if (c < 0x80) {
            out[k++] = c, i++;
            continue;
        }
        int len;
        uint32_t min;
        if ((c & 0xE0) == 0xC0) len = 2, c &= 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) len = 3, c &= 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) len = 4, c &= 0x07, min = 0x10000;
        else return DICE_FAIL(err, "not valid UTF-8: byte 0x%02X at offset %zu cannot start a character", p[i], i);
        DICE_CHECK(err, n - i >= (size_t)len, "not valid UTF-8: the character at offset %zu is cut short", i);
        for (int j = 1; j < len; j++) {
            DICE_CHECK(err, (p[i + j] & 0xC0) == 0x80,
                       "not valid UTF-8: byte 0x%02X at offset %zu is not a continuation byte", p[i + j], i + j);
            c = (c << 6) | (p[i + j] & 0x3F);
        }
        DICE_CHECK(err, c >= min, "not valid UTF-8: overlong encoding at offset %zu", i);
        DICE_CHECK(err, c <= 0x10FFFF && (c < 0xD800 || c > 0xDFFF),
                   "not valid UTF-8: U+%04X at offset %zu is not a Unicode scalar value", (unsigned)c, i);
        out[k++] = c;
        i += (size_t)len;
    }
    *n_out = k;
    return 0;
}

int uc_utf8_encode(uint32_t cp, unsigned char out[4]) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

// The value of the run holding cp in a table of (first << 8) | value entries sorted by first.
static unsigned run_value(const uint32_t *runs, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;  // runs[lo] starts at or before cp; runs[0] starts at 0
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if ((runs[mid] >> 8) <= cp) lo = mid;
        else hi = mid;
    }
    return runs[lo] & 0xFF;
}

unsigned uc_flags(uint32_t cp) {
    return run_value(uc_flag_runs, sizeof uc_flag_runs / sizeof uc_flag_runs[0], cp);
}

static unsigned ccc(uint32_t cp) {
    return run_value(uc_ccc_runs, sizeof uc_ccc_runs / sizeof uc_ccc_runs[0], cp);
}

static uint32_t lower_one(uint32_t cp) {
    size_t lo = 0, hi = sizeof uc_lower_runs / sizeof uc_lower_runs[0];
    while (lo < hi) {  // first run whose last >= cp
        size_t mid = (lo + hi) / 2;
        if (uc_lower_runs[mid].last < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo == sizeof uc_lower_runs / sizeof uc_lower_runs[0]) return cp;
    const UcLowerRun *r = &uc_lower_runs[lo];
    if (cp < r->first || (cp - r->first) % (uint32_t)r->stride != 0) return cp;
    return (uint32_t)((int32_t)cp + r->delta);
}

// Python's handle_capital_sigma: is in[i] (U+03A3) in the Final_Sigma context?
static int final_sigma(const uint32_t *in, size_t n, size_t i) {
    size_t j = i;
    unsigned f = 0;
    while (j > 0) {
        f = uc_flags(in[--j]);
        if (!(f & UC_CASE_IGNORABLE)) break;
        f = 0;  // ran off the start: nothing cased before
    }
    if (!(f & UC_CASED)) return 0;
    for (j = i + 1; j < n; j++) {
        f = uc_flags(in[j]);
        if (!(f & UC_CASE_IGNORABLE)) return !(f & UC_CASED);
    }
    return 1;
}

size_t uc_lower(const uint32_t *in, size_t n, uint32_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c < 0x80) out[k++] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        else if (c == 0x130) out[k++] = 'i', out[k++] = 0x307;
        else if (c == 0x3A3) out[k++] = final_sigma(in, n, i) ? 0x3C2 : 0x3C3;
        else out[k++] = lower_one(c);
    }
    return k;
}

// ---------------------------------------------------------------- NFC

static const UcDecomp *find_decomp(uint32_t cp) {
    size_t lo = 0, hi = sizeof uc_decomp / sizeof uc_decomp[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (uc_decomp[mid].cp < cp) lo = mid + 1;
        else hi = mid;
    }
    return (lo < sizeof uc_decomp / sizeof uc_decomp[0] && uc_decomp[lo].cp == cp) ? &uc_decomp[lo] : NULL;
}

// The primary composite of (a, b), or 0 if there is none.
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LCOUNT && b >= HANGUL_V && b < HANGUL_V + HANGUL_VCOUNT)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VCOUNT + (b - HANGUL_V)) * HANGUL_TCOUNT;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SCOUNT && (a - HANGUL_S) % HANGUL_TCOUNT == 0 && b > HANGUL_T &&
        b < HANGUL_T + HANGUL_TCOUNT)
        return a + (b - HANGUL_T);
    uint64_t key = ((uint64_t)a << 21) | b;
    size_t lo = 0, hi = sizeof uc_comp_keys / sizeof uc_comp_keys[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (uc_comp_keys[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return (lo < sizeof uc_comp_keys / sizeof uc_comp_keys[0] && uc_comp_keys[lo] == key) ? uc_comp_values[lo] : 0;
}

size_t uc_nfc(const uint32_t *in, size_t n, uint32_t *out) {
    // 1. full canonical decomposition
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c >= HANGUL_S && c < HANGUL_S + HANGUL_SCOUNT) {
            uint32_t s = c - HANGUL_S;
            out[k++] = HANGUL_L + s / HANGUL_NCOUNT;
            out[k++] = HANGUL_V + (s % HANGUL_NCOUNT) / HANGUL_TCOUNT;
            if (s % HANGUL_TCOUNT) out[k++] = HANGUL_T + s % HANGUL_TCOUNT;
            continue;
        }
        const UcDecomp *d = c < uc_decomp[0].cp ? NULL : find_decomp(c);
        if (!d) {
            out[k++] = c;
            continue;
        }
        for (unsigned j = 0; j < d->length; j++) out[k++] = uc_decomp_pool[d->offset + j];
    }
    // 2. canonical ordering: a stable sort of each run of non-starters by combining class
    for (size_t i = 1; i < k; i++) {
        for (size_t j = i; j > 0; j--) {
            unsigned cj = ccc(out[j]);
            if (cj == 0 || ccc(out[j - 1]) <= cj) break;
            uint32_t t = out[j];
            out[j] = out[j - 1], out[j - 1] = t;
        }
    }
    // 3. canonical composition, in place: a character joins the last starter when nothing between
    //    them blocks it (nothing at all, or the last one kept has a lower, non-zero class)
    size_t m = 0;
    long starter = -1;
    unsigned prev_cc = 0;
    for (size_t i = 0; i < k; i++) {
        uint32_t c = out[i];
        unsigned cc = ccc(c);
        if (starter >= 0 && (m - 1 == (size_t)starter || (prev_cc != 0 && prev_cc < cc))) {
            uint32_t comp = compose(out[starter], c);
            if (comp) {
                out[starter] = comp;
                continue;
            }
        }
        if (cc == 0) starter = (long)m;
        out[m++] = c;
        prev_cc = cc;
    }
    return m;
}
