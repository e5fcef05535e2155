// models/clip_tokenizer.h — the CLIP BPE tokenizer, loaded from a diffusers / transformers
// `tokenizer/` folder (vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json).
//
// It reproduces transformers' CLIPTokenizer — the slow Python class of transformers 4.x, on an install
// without ftfy (diffusers does not depend on ftfy) — as diffusers' pipelines call it:
//     tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True)
//   1. the prompt is split on the special tokens (bos, eos, unk, pad and the config's added tokens),
//      matched exactly; each match is its own id. With SDXL's second tokenizer (pad "!") every "!" in
//      a prompt is therefore a token of its own, as in transformers.
//   2. each other piece is cleaned up and pre-tokenized (models/clip_text.h), each pre-token's UTF-8
//      bytes are mapped to byte symbols (GPT-2's bytes_to_unicode), "</w>" is appended to the last,
//      and the merges are applied lowest rank first; symbols missing from vocab.json become unk.
//   3. BOS + the first max_length - 2 ids + EOS, padded with the pad id to max_length.
// Only the first 48,894 merges are used (transformers' CLIPTokenizer slices merges.txt that way).
// Other references differ on rare text only (all 5,000 COCO val2017 captions give the same ids):
// - with ftfy installed, transformers' CLIPTokenizer runs ftfy.fix_text instead of BERT's BasicTokenizer
//   clean-up: it straightens curly quotes, expands ligatures, widens half-width katakana and does not
//   space CJK ideographs apart;
// - transformers 5 has no slow CLIPTokenizer: its CLIPTokenizer (Rust, like CLIPTokenizerFast in 4.x)
//   keeps control and format characters (the zero-width joiners of emoji sequences, for instance), does
//   not space CJK ideographs apart, lower-cases without the final-sigma rule, and does not turn a
//   differently cased "<|ENDOFTEXT|>" into the special token.
//
//   ClipTokenizer tok;
//   if (clip_tokenizer_load(&tok, "sd15/tokenizer", err)) return -1;
//   int32_t ids[77], mask[77];                    // tok.max_length entries each
//   ClipTokenInfo info;
//   if (clip_tokenizer_encode(&tok, "a photo of a cat", ids, mask, &info, err)) ...
//   clip_tokenizer_free(&tok);
// A loaded tokenizer is read-only: several threads may encode with it at once.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "nn/error.h"

#ifdef __cplusplus
extern "C" {
#endif

// The merges CLIPTokenizer reads: merges.txt lines 1 .. 49152 - 256 - 2 (line 0 is the header).
#define CLIP_MAX_MERGES (49152 - 256 - 2)

typedef struct ClipSpecial {
    char *text;               // UTF-8, as matched in prompts
    int32_t id;
} ClipSpecial;

typedef struct ClipTokenizer {
    int max_length;           // model_max_length from tokenizer_config.json (77 for CLIP)
    int32_t bos_id, eos_id, pad_id, unk_id;
    int n_vocab;              // entries in vocab.json
    int n_merges;             // merges in use
    int n_specials;           // strings split out of prompts before clean-up, longest first
    ClipSpecial *specials;
    // Internal. Symbols are the strings of vocab.json and merges.txt, interned: sym_text + sym_off[s]
    // (NUL-terminated), sym_vocab[s] its id or -1. sym_slots: open-addressing hash of symbols by text.
    // pair_*: open-addressing hash of merges, key (left << 32) | right -> rank and merged symbol.
    char *sym_text;
    size_t sym_text_len, sym_text_cap;
    uint32_t *sym_off;
    int32_t *sym_vocab;
    int n_syms, syms_cap;
    int32_t *sym_slots;
    uint32_t sym_slots_mask;
    uint64_t *pair_keys;
    int32_t *pair_rank, *pair_merged;
    uint32_t pair_slots_mask;
    int32_t byte_sym[256];    // the symbol of each byte (bytes_to_unicode)
    int32_t byte_sym_end[256];  // the same with "</w>", for a pre-token's last byte
    int32_t sot_sym, eot_sym; // "<|startoftext|>" / "<|endoftext|>": never merged (CLIPTokenizer's cache)
} ClipTokenizer;

typedef struct ClipTokenInfo {
    int length;               // BOS .. EOS: the number of ones in the attention mask
    int eos_index;            // position of the first EOS id (where CLIP's pooled output is read):
                              // length - 1 unless the prompt itself holds the EOS token
    int n_prompt_tokens;      // ids of the prompt before truncation (BOS and EOS not counted)
    int n_truncated;          // of those, dropped to fit max_length
} ClipTokenInfo;

// Loads `dir`/vocab.json, merges.txt and tokenizer_config.json (all required) and
// special_tokens_map.json (optional; where tokenizer_config.json has no "added_tokens_decoder" its
// entries override the config's, as in transformers). Special tokens missing from both take
// CLIPTokenizer's defaults (bos "<|startoftext|>", eos, unk and pad "<|endoftext|>") and must be in
// vocab.json. Every missing or malformed file or field is an error naming the file and the problem;
// on failure *tok is left empty (clip_tokenizer_free is safe).
int clip_tokenizer_load(ClipTokenizer *tok, const char *dir, DiceError *err);
void clip_tokenizer_free(ClipTokenizer *tok);

// The ids of a NUL-terminated UTF-8 prompt without BOS, EOS, truncation or padding, into a malloc'd
// array *ids (free it) of *n entries. Invalid UTF-8 is an error naming the byte offset.
int clip_tokenizer_tokenize(const ClipTokenizer *tok, const char *text, int32_t **ids, int *n, DiceError *err);

// The model input for a prompt: ids (tok->max_length entries) = BOS, the prompt's ids truncated to
// max_length - 2, EOS, then the pad id; mask (tok->max_length entries, may be NULL) = 1 for BOS .. EOS,
// 0 for padding; info (may be NULL) as described above.
int clip_tokenizer_encode(const ClipTokenizer *tok, const char *text, int32_t *ids, int32_t *mask,
                          ClipTokenInfo *info, DiceError *err);

#ifdef __cplusplus
}
#endif
