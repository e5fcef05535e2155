// models/embed_inspect.h — the DICE paper's Fig. 4 measurement (`dice inspect-embeddings`): how much the
// sharpener rewrites each token of a prompt's embedding.
//
// For prompt p with CLIP embedding c (L, d) (the text encoder's last hidden state, as SD1.5 conditions on) and
// c_phi = c + alpha r(c, c_null) (models/sharpener.h; c_null the embedding of ""), the per-token cosine
//   cos[t] = <c[t], c_phi[t]> / sqrt(|c[t]|^2 |c_phi[t]|^2)        (double precision; exactly 1 when equal)
// and two token sets, split at e = the first EOS position (ClipTokenInfo.eos_index):
//   semantic tokens  t = 1 .. e   (the prompt's words and the first EOS: "up to the first EOS", PAPER.md);
//                                 BOS (t = 0) is left out: the sharpener copies it back, so its cosine is 1
//   padding tokens   t = e + 1 .. L - 1   (none when the prompt fills all L positions)
// Per prompt: the mean and standard deviation of cos over each set. Over a prompt file: the mean and standard
// deviation across prompts of the per-prompt means (the paper's 0.75 +- 0.05 / 0.23 +- 0.02 over 1,000
// prompts reads as this), and also over all tokens of the set pooled. Standard deviations are population
// ones (divide by the count), as numpy's default.
#pragma once
#include <stdint.h>

#include "models/clip_encoder.h"
#include "models/clip_tokenizer.h"
#include "models/sharpener.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct EmbedInspectRow {
    int eos_index;                       // e
    int n_semantic, n_padding;           // e and L - 1 - e
    double semantic_mean, semantic_std;  // over the prompt's semantic tokens
    double padding_mean, padding_std;    // over its padding tokens (0 when there are none)
} EmbedInspectRow;

typedef struct EmbedInspectStat {
    int64_t count;
    double mean, std;                    // population std; both 0 when count is 0
} EmbedInspectStat;

typedef struct EmbedInspectSummary {
    EmbedInspectStat semantic_prompts, padding_prompts;  // over prompts of the per-prompt means (prompts with
                                                         // no padding are left out of padding_prompts)
    EmbedInspectStat semantic_tokens, padding_tokens;    // over every token of the set, all prompts pooled
} EmbedInspectSummary;

// cos (n,) = cosine of rows a[t] and b[t], t < n; a, b (n, d) f32.
void embed_token_cosines(const float *a, const float *b, int n, int d, double *cos);
// One prompt's row from its cosines cos (L,) and first EOS position.
void embed_inspect_row(const double *cos, int L, int eos_index, EmbedInspectRow *row);
// The summary of n prompts: cos (n, L), rows (n,).
int embed_inspect_summarize(const double *cos, const EmbedInspectRow *rows, int n, int L, EmbedInspectSummary *out,
                            DiceError *err);

// Encodes every prompt and "" with enc (on ctx's device), sharpens with s (same device) at alpha, and fills
// cos (n, tok->max_length) and rows (n,). scratch: an arena on ctx's device, reset between chunks of prompts.
// enc's hidden size must be s->d_e.
int embed_inspect_run(DiceCtx *ctx, Arena *scratch, const ClipEncoder *enc, const ClipTokenizer *tok, Sharpener *s,
                      const char *const *prompts, int n, double alpha, double *cos, EmbedInspectRow *rows,
                      DiceError *err);

#ifdef __cplusplus
}
#endif
