// models/clip_text.c — CLIPTokenizer's clean-up and pre-tokenization of one piece of text (see
// clip_text.h for the Python it reproduces).
#include "clip_text.h"

#include <stdlib.h>
#include <string.h>

#include "unicode.h"

// BasicTokenizer._is_chinese_char: the CJK ideograph blocks (not kana, not Hangul).
static int is_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) ||
           (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// re.IGNORECASE comparison of a text character with a lower-case ASCII literal of the pattern.
static int literal_eq(uint32_t c, char lit) {
    if (c == (uint32_t)lit) return 1;
    if (lit >= 'a' && lit <= 'z' && c == (uint32_t)(lit - 32)) return 1;
    return lit == 's' && c == 0x17F;
}

// Length of the literal alternative `lit` at text[i..n), or 0 if it does not match there.
static size_t match_literal(const uint32_t *text, size_t n, size_t i, const char *lit) {
    size_t len = strlen(lit);
    if (n - i < len) return 0;
    for (size_t j = 0; j < len; j++)
        if (!literal_eq(text[i + j], lit[j])) return 0;
    return len;
}

// Length of the pattern's match at text[i] (0: no alternative matches here).
static size_t match_at(const uint32_t *text, size_t n, size_t i) {
    static const char *const literals[] = {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (size_t k = 0; k < sizeof literals / sizeof literals[0]; k++) {
        size_t len = match_literal(text, n, i, literals[k]);
        if (len) return len;
    }
    UcClass cls = uc_class(text[i]);
    if (cls == UC_CLASS_NUMBER) return 1;
    if (cls == UC_CLASS_NONE) return 0;
    size_t j = i + 1;  // [\p{L}]+ or [^\s\p{L}\p{N}]+
    while (j < n && uc_class(text[j]) == cls) j++;
    return j - i;
}

void clip_words_free(ClipWords *w) {
    free(w->text);
    free(w->words);
    memset(w, 0, sizeof *w);
}

int clip_text_words(const uint32_t *piece, size_t n, ClipWords *w, DiceError *err) {
    memset(w, 0, sizeof *w);
    size_t cap1 = 3 * n + 1, cap2 = UC_NFC_MAX_GROWTH * cap1, cap3 = 2 * cap2;
    uint32_t *clean = malloc(cap1 * sizeof *clean), *nfc = malloc(cap2 * sizeof *nfc);
    w->text = malloc(cap3 * sizeof *w->text);
    if (!clean || !nfc || !w->text) {
        free(clean), free(nfc), clip_words_free(w);
        return DICE_FAIL(err, "out of memory cleaning a prompt of %zu characters", n);
    }
    // _clean_text and _tokenize_chinese_chars
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = piece[i];
        unsigned f = uc_flags(c);
        if (f & UC_DROP) continue;
        if (f & UC_BT_SPACE) clean[k++] = ' ';
        else if (is_cjk(c)) clean[k++] = ' ', clean[k++] = c, clean[k++] = ' ';
        else clean[k++] = c;
    }
    size_t m = uc_nfc(clean, k, nfc);
    // whitespace_tokenize, lower() per word, " ".join
    size_t t = 0;
    for (size_t i = 0; i < m;) {
        if (uc_flags(nfc[i]) & UC_PY_SPACE) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < m && !(uc_flags(nfc[j]) & UC_PY_SPACE)) j++;
        if (t) w->text[t++] = ' ';
        t += uc_lower(nfc + i, j - i, w->text + t);
        i = j;
    }
    free(clean), free(nfc);
    w->n_text = t;
    w->words = malloc((t + 1) * sizeof *w->words);
    if (!w->words) {
        clip_words_free(w);
        return DICE_FAIL(err, "out of memory splitting a prompt of %zu characters", n);
    }
    // re.findall: at each position the first alternative that matches, else skip one character
    for (size_t i = 0; i < t;) {
        size_t len = match_at(w->text, t, i);
        if (!len) {
            i++;
            continue;
        }
        w->words[w->n_words++] = (ClipWordSpan){(uint32_t)i, (uint32_t)len};
        i += len;
    }
    return 0;
}
