// models/clip_bpe.h — internal to the CLIP tokenizer: the symbol and merge tables of a ClipTokenizer
// (built by clip_tokenizer.c while loading) and the byte-pair encoding of one pre-token.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "clip_tokenizer.h"

// GPT-2's bytes_to_unicode: printable Latin-1 bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand
// for themselves, the other 68 bytes for U+0100.. in byte order, so no symbol holds a space or control.
static inline uint32_t clip_byte_char(unsigned b) {
    if (b <= 32) return 256 + b;
    if (b >= 127 && b <= 160) return 256 + 33 + (b - 127);
    if (b == 173) return 256 + 33 + 34;
    return b;
}

// Allocates empty tables for up to max_syms symbols and max_pairs merges (fixed sizes, no rehash).
int clip_tables_init(ClipTokenizer *tok, size_t max_syms, size_t max_pairs, DiceError *err);
void clip_tables_free(ClipTokenizer *tok);
// The symbol for s[0..len) (UTF-8), added if new; -1 with err set when the table is full.
int32_t clip_sym_intern(ClipTokenizer *tok, const char *s, size_t len, DiceError *err);
// The symbol for s[0..len), or -1 if there is none.
int32_t clip_sym_find(const ClipTokenizer *tok, const char *s, size_t len);
static inline const char *clip_sym_text(const ClipTokenizer *tok, int32_t sym) {
    return tok->sym_text + tok->sym_off[sym];
}
// Records the merge (left, right) -> merged with `rank`; a later merge of the same pair replaces an
// earlier one (Python's dict(zip(merges, ranks)) keeps the last). -1 when the table is full.
int clip_pair_set(ClipTokenizer *tok, int32_t left, int32_t right, int32_t rank, int32_t merged, DiceError *err);

// Appends the vocabulary ids of one pre-token (its UTF-8 bytes[0..n), n >= 1) to ids[*n_ids ..];
// ids has room for n more. scratch holds at least n entries.
void clip_bpe_word(const ClipTokenizer *tok, const unsigned char *bytes, size_t n, int32_t *scratch, int32_t *ids,
                   int *n_ids);
