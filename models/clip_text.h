// models/clip_text.h — the text side of the CLIP tokenizer (used by clip_tokenizer.c): the clean-up
// and pre-tokenization that transformers' slow CLIPTokenizer._tokenize applies without ftfy to each
// piece of a prompt between special tokens.
//
//   BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize(piece), joined by " ":
//     drop NUL, U+FFFD and control/format/unassigned characters; whitespace -> " "; spaces around CJK
//     ideographs; NFC; split on str.isspace; str.lower() of each word
//   re.findall(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
//              text, re.IGNORECASE)
//     alternatives tried in order at each position; each is greedy and none needs backtracking, so one
//     left-to-right scan over character classes reproduces it. Under IGNORECASE the literals also match
//     upper-case ASCII and U+017F (long s) for 's'.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "nn/error.h"

typedef struct ClipWordSpan {
    uint32_t start, len;     // text[start .. start + len)
} ClipWordSpan;

typedef struct ClipWords {
    uint32_t *text;          // the cleaned piece, code points
    size_t n_text;
    ClipWordSpan *words;     // the pre-tokens, in order
    size_t n_words;
} ClipWords;

// Cleans piece[0..n) (code points) and splits it into pre-tokens; *w is overwritten (free it with
// clip_words_free). Fails only when out of memory.
int clip_text_words(const uint32_t *piece, size_t n, ClipWords *w, DiceError *err);
void clip_words_free(ClipWords *w);
