// models/clip_bpe.c — the CLIP tokenizer's symbol table (interned strings of vocab.json and
// merges.txt), its merge table, and CLIPTokenizer.bpe() on one pre-token.
#include "clip_bpe.h"

#include <stdlib.h>
#include <string.h>

#define EMPTY_PAIR UINT64_MAX

static uint64_t hash_bytes(const char *s, size_t len) {  // FNV-1a
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    return key ^ (key >> 33);
}

// A power of two at least twice n, so the open-addressing tables stay at most half full.
static size_t table_size(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    return cap;
}

int clip_tables_init(ClipTokenizer *tok, size_t max_syms, size_t max_pairs, DiceError *err) {
    DICE_CHECK(err, max_syms < (1u << 30) && max_pairs < (1u << 30), "tokenizer tables too large (%zu symbols)",
               max_syms);
    size_t sym_slots = table_size(max_syms), pair_slots = table_size(max_pairs);
    tok->syms_cap = (int)max_syms;
    tok->sym_off = malloc(max_syms * sizeof *tok->sym_off);
    tok->sym_vocab = malloc(max_syms * sizeof *tok->sym_vocab);
    tok->sym_slots = malloc(sym_slots * sizeof *tok->sym_slots);
    tok->pair_keys = malloc(pair_slots * sizeof *tok->pair_keys);
    tok->pair_rank = malloc(pair_slots * sizeof *tok->pair_rank);
    tok->pair_merged = malloc(pair_slots * sizeof *tok->pair_merged);
    tok->sym_text_cap = 1 << 20;
    tok->sym_text = malloc(tok->sym_text_cap);
    if (!tok->sym_off || !tok->sym_vocab || !tok->sym_slots || !tok->pair_keys || !tok->pair_rank ||
        !tok->pair_merged || !tok->sym_text) {
        clip_tables_free(tok);
        return DICE_FAIL(err, "out of memory for tokenizer tables (%zu symbols)", max_syms);
    }
    memset(tok->sym_slots, 0xFF, sym_slots * sizeof *tok->sym_slots);  // -1: empty
    for (size_t i = 0; i < pair_slots; i++) tok->pair_keys[i] = EMPTY_PAIR;
    tok->sym_slots_mask = (uint32_t)(sym_slots - 1);
    tok->pair_slots_mask = (uint32_t)(pair_slots - 1);
    tok->n_syms = 0;
    tok->sym_text_len = 0;
    return 0;
}

void clip_tables_free(ClipTokenizer *tok) {
    free(tok->sym_text), free(tok->sym_off), free(tok->sym_vocab), free(tok->sym_slots);
    free(tok->pair_keys), free(tok->pair_rank), free(tok->pair_merged);
    tok->sym_text = NULL, tok->sym_off = NULL, tok->sym_vocab = NULL, tok->sym_slots = NULL;
    tok->pair_keys = NULL, tok->pair_rank = NULL, tok->pair_merged = NULL;
    tok->n_syms = tok->syms_cap = 0;
}

// The slot holding s, or the empty slot where it would go.
static uint32_t sym_slot(const ClipTokenizer *tok, const char *s, size_t len) {
    uint32_t i = (uint32_t)hash_bytes(s, len) & tok->sym_slots_mask;
    for (;;) {
        int32_t sym = tok->sym_slots[i];
        if (sym < 0) return i;
        const char *t = clip_sym_text(tok, sym);
        if (strncmp(t, s, len) == 0 && t[len] == '\0') return i;
        i = (i + 1) & tok->sym_slots_mask;
    }
}

int32_t clip_sym_find(const ClipTokenizer *tok, const char *s, size_t len) {
    return tok->sym_slots[sym_slot(tok, s, len)];
}

int32_t clip_sym_intern(ClipTokenizer *tok, const char *s, size_t len, DiceError *err) {
    uint32_t slot = sym_slot(tok, s, len);
    if (tok->sym_slots[slot] >= 0) return tok->sym_slots[slot];
    if (tok->n_syms == tok->syms_cap) return DICE_FAIL(err, "tokenizer symbol table full (%d)", tok->syms_cap);
    if (tok->sym_text_len + len + 1 > tok->sym_text_cap) {
        size_t cap = 2 * tok->sym_text_cap;
        while (cap < tok->sym_text_len + len + 1) cap *= 2;
        char *grown = realloc(tok->sym_text, cap);
        if (!grown) return DICE_FAIL(err, "out of memory for tokenizer symbols (%zu bytes)", cap);
        tok->sym_text = grown, tok->sym_text_cap = cap;
    }
    int32_t sym = tok->n_syms++;
    tok->sym_off[sym] = (uint32_t)tok->sym_text_len;
    memcpy(tok->sym_text + tok->sym_text_len, s, len);
    tok->sym_text[tok->sym_text_len + len] = '\0';
    tok->sym_text_len += len + 1;
    tok->sym_vocab[sym] = -1;
    tok->sym_slots[slot] = sym;
    return sym;
}

static uint32_t pair_slot(const ClipTokenizer *tok, uint64_t key) {
    uint32_t i = (uint32_t)hash_pair(key) & tok->pair_slots_mask;
    while (tok->pair_keys[i] != key && tok->pair_keys[i] != EMPTY_PAIR) i = (i + 1) & tok->pair_slots_mask;
    return i;
}

int clip_pair_set(ClipTokenizer *tok, int32_t left, int32_t right, int32_t rank, int32_t merged, DiceError *err) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint32_t i = pair_slot(tok, key);
    if (tok->pair_keys[i] == EMPTY_PAIR) {
        DICE_CHECK(err, tok->n_merges < (int)(tok->pair_slots_mask / 2), "tokenizer merge table full");
        tok->pair_keys[i] = key;
        tok->n_merges++;
    }
    tok->pair_rank[i] = rank;
    tok->pair_merged[i] = merged;
    return 0;
}

// Rank of the merge (left, right), or INT32_MAX when there is none; *merged its result.
static int32_t pair_rank(const ClipTokenizer *tok, int32_t left, int32_t right, int32_t *merged) {
    uint32_t i = pair_slot(tok, ((uint64_t)(uint32_t)left << 32) | (uint32_t)right);
    if (tok->pair_keys[i] == EMPTY_PAIR) return INT32_MAX;
    *merged = tok->pair_merged[i];
    return tok->pair_rank[i];
}

static int32_t vocab_id(const ClipTokenizer *tok, int32_t sym) {
    return tok->sym_vocab[sym] >= 0 ? tok->sym_vocab[sym] : tok->unk_id;
}

void clip_bpe_word(const ClipTokenizer *tok, const unsigned char *bytes, size_t n, int32_t *scratch, int32_t *ids,
                   int *n_ids) {
    // CLIPTokenizer's cache starts with the two special strings: they come out whole, without "</w>".
    // (Both are ASCII, which bytes_to_unicode leaves as it is.)
    static const char sot[] = "<|startoftext|>", eot[] = "<|endoftext|>";
    if (n == sizeof sot - 1 && memcmp(bytes, sot, n) == 0) {
        ids[(*n_ids)++] = vocab_id(tok, tok->sot_sym);
        return;
    }
    if (n == sizeof eot - 1 && memcmp(bytes, eot, n) == 0) {
        ids[(*n_ids)++] = vocab_id(tok, tok->eot_sym);
        return;
    }
    int32_t *word = scratch;
    for (size_t i = 0; i < n; i++) word[i] = i + 1 < n ? tok->byte_sym[bytes[i]] : tok->byte_sym_end[bytes[i]];
    size_t len = n;
    // Merge the lowest-ranked adjacent pair everywhere (left to right, not overlapping) until none is left.
    while (len > 1) {
        int32_t best = INT32_MAX, left = -1, right = -1, merged = -1;
        for (size_t i = 0; i + 1 < len; i++) {
            int32_t m, r = pair_rank(tok, word[i], word[i + 1], &m);
            if (r < best) best = r, left = word[i], right = word[i + 1], merged = m;
        }
        if (best == INT32_MAX) break;
        size_t k = 0;
        for (size_t i = 0; i < len; i++) {
            if (i + 1 < len && word[i] == left && word[i + 1] == right) word[k++] = merged, i++;
            else word[k++] = word[i];
        }
        len = k;
    }
    for (size_t i = 0; i < len; i++) ids[(*n_ids)++] = vocab_id(tok, word[i]);
}
