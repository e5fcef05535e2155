// models/embed_inspect.c — per-token cosine similarity of original and sharpened embeddings and its
// semantic / padding statistics (the DICE paper's Fig. 4; see embed_inspect.h).
#include "embed_inspect.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/tensor_copy.h"

enum { INSPECT_CHUNK = 16 };  // prompts encoded and sharpened at once

void embed_token_cosines(const float *a, const float *b, int n, int d, double *cos) {
    for (int t = 0; t < n; t++) {
        const float *x = a + (size_t)t * d, *y = b + (size_t)t * d;
        double dot = 0, xx = 0, yy = 0;
        for (int i = 0; i < d; i++) {
            dot += (double)x[i] * y[i];
            xx += (double)x[i] * x[i];
            yy += (double)y[i] * y[i];
        }
        cos[t] = xx > 0 && yy > 0 ? dot / sqrt(xx * yy) : 0.0;
    }
}

// Mean and population standard deviation of v[0 .. n-1] (two passes).
static void mean_std(const double *v, int64_t n, double *mean, double *std) {
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    *mean = n ? s / (double)n : 0.0;
    for (int64_t i = 0; i < n; i++) ss += (v[i] - *mean) * (v[i] - *mean);
    *std = n ? sqrt(ss / (double)n) : 0.0;
}

void embed_inspect_row(const double *cos, int L, int eos_index, EmbedInspectRow *row) {
    row->eos_index = eos_index;
    row->n_semantic = eos_index;
    row->n_padding = L - 1 - eos_index;
    mean_std(cos + 1, row->n_semantic, &row->semantic_mean, &row->semantic_std);
    mean_std(cos + eos_index + 1, row->n_padding, &row->padding_mean, &row->padding_std);
}

// Over a list of values gathered by the caller.
static void stat_of(const double *v, int64_t n, EmbedInspectStat *out) {
    out->count = n;
    mean_std(v, n, &out->mean, &out->std);
}

int embed_inspect_summarize(const double *cos, const EmbedInspectRow *rows, int n, int L, EmbedInspectSummary *out,
                            DiceError *err) {
    memset(out, 0, sizeof *out);
    double *v = calloc((size_t)n * (size_t)L + 1, sizeof *v);
    DICE_CHECK(err, v, "embed_inspect_summarize: out of memory for %d x %d cosines", n, L);
    int64_t k = 0;
    for (int p = 0; p < n; p++) v[k++] = rows[p].semantic_mean;
    stat_of(v, k, &out->semantic_prompts);
    k = 0;
    for (int p = 0; p < n; p++)
        if (rows[p].n_padding) v[k++] = rows[p].padding_mean;
    stat_of(v, k, &out->padding_prompts);
    k = 0;
    for (int p = 0; p < n; p++)
        for (int t = 1; t <= rows[p].eos_index; t++) v[k++] = cos[(size_t)p * L + t];
    stat_of(v, k, &out->semantic_tokens);
    k = 0;
    for (int p = 0; p < n; p++)
        for (int t = rows[p].eos_index + 1; t < L; t++) v[k++] = cos[(size_t)p * L + t];
    stat_of(v, k, &out->padding_tokens);
    free(v);
    return 0;
}

// Prompts [first, first + count): c and c_phi to the host, then cosines and rows.
static int inspect_chunk(DiceCtx *ctx, Arena *scratch, const ClipEncoder *enc, const ClipTokenizer *tok,
                         Sharpener *s, const Tensor *c_null, const char *const *prompts, int first, int count,
                         double alpha, double *cos, EmbedInspectRow *rows, DiceError *err) {
    int64_t L = tok->max_length, d = s->d_e;
    int64_t shape[3] = {count, L, d};
    Tensor c, cn, row, c_host, phi_host;
    DICE_TRY(arena_tensor(scratch, &c, DT_F32, 3, shape, err));
    DICE_TRY(arena_tensor(scratch, &cn, DT_F32, 3, shape, err));
    DICE_TRY(clip_encode_prompts(ctx, scratch, enc, tok, prompts + first, count, CLIP_LAST_HIDDEN_STATE, &c, NULL,
                                 err));
    for (int i = 0; i < count; i++) {  // c_null repeated for every prompt: (count, L, d)
        DICE_TRY(tensor_narrow(&row, &cn, 0, i, 1, err));
        DICE_TRY(tensor_copy(ctx, &row, c_null, err));
    }
    Graph g;
    DICE_TRY(graph_init(&g, ctx, scratch, err));
    graph_no_grad_begin(&g);
    Var *cv, *cnv, *phi;
    int rc = graph_leaf(&g, &cv, &c, false, err);
    if (!rc) rc = graph_leaf(&g, &cnv, &cn, false, err);
    if (!rc) rc = sharpener_forward(&g, s, cv, cnv, alpha, &phi, err);
    Arena host;
    int host_ok = !rc && !arena_init(&host, "inspect host", DEV_CPU, 1 << 20, 0, err);
    if (!rc && !host_ok) rc = -1;
    if (!rc) rc = tensor_to(ctx, &host, &c_host, &c, DT_F32, err);
    if (!rc) rc = tensor_to(ctx, &host, &phi_host, &phi->value, DT_F32, err);
    for (int i = 0; i < count && !rc; i++) {
        ClipTokenInfo info;
        int32_t *ids = malloc((size_t)L * sizeof *ids);
        rc = ids ? clip_tokenizer_encode(tok, prompts[first + i], ids, NULL, &info, err)
                 : DICE_FAIL(err, "embed_inspect_run: out of memory");
        free(ids);
        if (rc) break;
        double *pc = cos + (size_t)(first + i) * (size_t)L;
        embed_token_cosines((const float *)c_host.data + i * L * d, (const float *)phi_host.data + i * L * d, (int)L,
                            (int)d, pc);
        embed_inspect_row(pc, (int)L, info.eos_index, &rows[first + i]);
    }
    if (host_ok) arena_free(&host);
    graph_free(&g);
    return rc;
}

int embed_inspect_run(DiceCtx *ctx, Arena *scratch, const ClipEncoder *enc, const ClipTokenizer *tok, Sharpener *s,
                      const char *const *prompts, int n, double alpha, double *cos, EmbedInspectRow *rows,
                      DiceError *err) {
    DICE_CHECK(err, n >= 1, "embed_inspect_run: no prompts");
    DICE_CHECK(err, enc->cfg.hidden_size == s->d_e,
               "embed_inspect_run: the text encoder's hidden size %d differs from the sharpener's width %d (a "
               "sharpener for another base model?)", enc->cfg.hidden_size, s->d_e);
    DICE_CHECK(err, scratch->device == ctx->device && s->params[0].value.device == ctx->device,
               "embed_inspect_run: the sharpener, the scratch arena and the context must be on one device");
    // c_null (1, L, d), kept below the per-chunk mark of the scratch arena.
    Tensor c_null;
    DICE_TRY(arena_tensor(scratch, &c_null, DT_F32, 3, (int64_t[]){1, tok->max_length, s->d_e}, err));
    const char *empty = "";
    DICE_TRY(clip_encode_prompts(ctx, scratch, enc, tok, &empty, 1, CLIP_LAST_HIDDEN_STATE, &c_null, NULL, err));
    ArenaMark mark = arena_mark(scratch);
    for (int first = 0; first < n; first += INSPECT_CHUNK) {
        int count = n - first < INSPECT_CHUNK ? n - first : INSPECT_CHUNK;
        int rc = inspect_chunk(ctx, scratch, enc, tok, s, &c_null, prompts, first, count, alpha, cos, rows, err);
        arena_release(scratch, mark);
        if (rc) {
            dice_error_context(err, "prompts %d .. %d", first + 1, first + count);
            return -1;
        }
    }
    return 0;
}
