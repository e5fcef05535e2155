// tests/test_inspect_embeddings.c — `dice inspect-embeddings` (models/embed_inspect.h) on the tiny CLIP text
// encoder (tests/golden/clip_encoder/quick, width 32) and a random sharpener of that width: the per-prompt
// CSV and the library's rows equal a direct computation here (one prompt at a time through the encoder and
// the sharpener, cosines and token sets computed by this file); alpha = 0 gives cosines of exactly 1; the
// statistics' definitions; errors.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/embed_inspect.h"
#include "nn/tensor_copy.h"
#include "test.h"

#define N_PROMPTS 19  // more than one chunk of 16
// An untrained sharpener's r is small next to CLIP's embeddings (cosines above 0.996 at alpha 0.7); a large alpha
// spreads the cosines so that the comparison below means something.
#define ALPHA 25.0

// Prompt i; prompt 5 is longer than the 77 positions (no padding), 3 has CSV-hostile characters.
static void prompt_text(int i, char *out, size_t cap) {
    if (i == 5) {
        size_t o = 0;
        for (int w = 0; w < 90 && o + 16 < cap; w++) o += (size_t)snprintf(out + o, cap - o, "%sred cat", w ? " " : "");
    } else if (i == 3) {
        snprintf(out, cap, "a \"quoted\" dog, sitting");
    } else {
        snprintf(out, cap, "a photo of %d %s on a %s", i, i % 2 ? "cats" : "a dog", i % 3 ? "table" : "red chair");
    }
}

typedef struct Model {
    DiceCtx ctx;
    Arena weights, step;
    ClipEncoder enc;
    ClipTokenizer tok;
    Sharpener s;
} Model;

static int model_open(TestCtx *tc, Model *m, uint64_t seed) {
    ctx_init_cpu(&m->ctx);
    DICE_TRY(arena_init(&m->weights, "weights", DEV_CPU, 1 << 20, 0, &tc->err));
    DICE_TRY(arena_init(&m->step, "step", DEV_CPU, 1 << 22, 0, &tc->err));
    DICE_TRY(clip_encoder_load_dir(&m->enc, test_path(tc, "tests/golden/clip_encoder/quick"), &m->ctx, &m->weights,
                                   DT_F32, &tc->err));
    DICE_TRY(clip_tokenizer_load(&m->tok, test_path(tc, "tests/golden/clip_encoder/tokenizer"), &tc->err));
    return sharpener_init(&m->s, 32, 32, 8, &m->weights, &m->ctx, seed, &tc->err);
}

static void model_close(Model *m) {
    clip_encoder_free(&m->enc);
    clip_tokenizer_free(&m->tok);
    arena_free(&m->step);
    arena_free(&m->weights);
}

// The embedding of one prompt (1, 77, 32) in the step arena.
static int embed(TestCtx *tc, Model *m, Graph *g, const char *prompt, Var **out, int *eos) {
    int32_t ids[77];
    ClipTokenInfo info;
    DICE_TRY(clip_tokenizer_encode(&m->tok, prompt, ids, NULL, &info, &tc->err));
    *eos = info.eos_index;
    Tensor t;
    DICE_TRY(tensor_wrap(&t, ids, DT_I32, DEV_CPU, 2, (int64_t[]){1, 77}, &tc->err));
    ClipEncoderOutput o = {0};
    DICE_TRY(clip_encoder_forward(g, &m->enc, &t, CLIP_LAST_HIDDEN_STATE, &o, &tc->err));
    *out = o.hidden;
    return 0;
}

// Direct computation for prompt text: row (semantic / padding means and counts) and the 77 cosines.
static int direct(TestCtx *tc, Model *m, const char *prompt, double alpha, EmbedInspectRow *row, double *cos) {
    Graph g;
    DICE_TRY(graph_init(&g, &m->ctx, &m->step, &tc->err));
    Var *c, *cn, *phi;
    int eos, eos_null;
    DICE_TRY(embed(tc, m, &g, prompt, &c, &eos));
    DICE_TRY(embed(tc, m, &g, "", &cn, &eos_null));
    DICE_TRY(sharpener_forward(&g, &m->s, c, cn, alpha, &phi, &tc->err));
    const float *a = c->value.data, *b = phi->value.data;
    memset(row, 0, sizeof *row);
    row->eos_index = eos;
    double sem = 0, pad = 0;
    for (int t = 0; t < 77; t++) {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < 32; i++) {
            dot += (double)a[t * 32 + i] * b[t * 32 + i];
            na += (double)a[t * 32 + i] * a[t * 32 + i];
            nb += (double)b[t * 32 + i] * b[t * 32 + i];
        }
        cos[t] = dot / (sqrt(na) * sqrt(nb));
        if (t >= 1 && t <= eos) sem += cos[t], row->n_semantic++;
        if (t > eos) pad += cos[t], row->n_padding++;
    }
    row->semantic_mean = sem / row->n_semantic;
    row->padding_mean = row->n_padding ? pad / row->n_padding : 0;
    graph_free(&g);
    arena_reset(&m->step);
    return 0;
}

DICE_TEST(inspect_embeddings_rows_equal_a_direct_computation) {
    Model m;
    CHECK_OK(model_open(tc, &m, tc->seed));
    char text[N_PROMPTS][1024];
    const char *prompts[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++) prompt_text(i, text[i], sizeof text[i]), prompts[i] = text[i];
    double cos[N_PROMPTS * 77], want_cos[77];
    EmbedInspectRow rows[N_PROMPTS], want;
    Arena scratch;
    CHECK_OK(arena_init(&scratch, "scratch", DEV_CPU, 1 << 20, 0, &tc->err));
    CHECK_OK(embed_inspect_run(&m.ctx, &scratch, &m.enc, &m.tok, &m.s, prompts, N_PROMPTS, ALPHA, cos, rows, &tc->err));
    for (int i = 0; i < N_PROMPTS; i++) {
        CHECK_OK(direct(tc, &m, prompts[i], ALPHA, &want, want_cos));
        CHECK(rows[i].eos_index == want.eos_index && rows[i].n_semantic == want.n_semantic &&
              rows[i].n_padding == want.n_padding);
        CHECK(cos[i * 77] == 1.0);  // BOS copied back
        for (int t = 0; t < 77; t++) CHECK_NEAR(cos[i * 77 + t], want_cos[t], 1e-6);  // chunk of 16 vs one prompt
        CHECK_NEAR(rows[i].semantic_mean, want.semantic_mean, 1e-6);
        CHECK_NEAR(rows[i].padding_mean, want.padding_mean, 1e-6);
    }
    CHECK(rows[5].n_padding == 0 && rows[5].eos_index == 76 && rows[0].n_padding > 0);
    // The sharpener moves the embedding: cosines well below 1 somewhere.
    double lowest = 1;
    for (int i = 0; i < N_PROMPTS * 77; i++) lowest = cos[i] < lowest ? cos[i] : lowest;
    CHECK_MSG(lowest < 0.99, "lowest cosine %.6f", lowest);
    // The summary: prompt 5 has no padding and is left out of the padding rows.
    EmbedInspectSummary s;
    CHECK_OK(embed_inspect_summarize(cos, rows, N_PROMPTS, 77, &s, &tc->err));
    CHECK(s.semantic_prompts.count == N_PROMPTS && s.padding_prompts.count == N_PROMPTS - 1);
    int64_t sem_tokens = 0, pad_tokens = 0;
    double mean = 0;
    for (int i = 0; i < N_PROMPTS; i++) sem_tokens += rows[i].n_semantic, pad_tokens += rows[i].n_padding;
    CHECK(s.semantic_tokens.count == sem_tokens && s.padding_tokens.count == pad_tokens);
    for (int i = 0; i < N_PROMPTS; i++) mean += rows[i].semantic_mean / N_PROMPTS;
    CHECK_NEAR(s.semantic_prompts.mean, mean, 1e-12);
    // Width mismatch: a sharpener for another base model.
    Sharpener wide;
    CHECK_OK(sharpener_init(&wide, 48, 32, 8, &m.weights, &m.ctx, 1, &tc->err));
    CHECK_FAILS_WITH(embed_inspect_run(&m.ctx, &scratch, &m.enc, &m.tok, &wide, prompts, 1, 1.0, cos, rows, &tc->err),
                     "hidden size 32 differs from the sharpener's width 48");
    arena_free(&scratch);
    model_close(&m);
}

DICE_TEST(inspect_embeddings_statistics_definitions) {
    double cos[6] = {1.0, 0.5, 0.7, 0.9, 0.2, 0.4};  // L = 6, first EOS at 3
    EmbedInspectRow r;
    embed_inspect_row(cos, 6, 3, &r);
    CHECK(r.n_semantic == 3 && r.n_padding == 2);
    CHECK_NEAR(r.semantic_mean, 0.7, 1e-15);
    CHECK_NEAR(r.semantic_std, sqrt((0.04 + 0.0 + 0.04) / 3), 1e-15);
    CHECK_NEAR(r.padding_mean, 0.3, 1e-15);
    CHECK_NEAR(r.padding_std, 0.1, 1e-15);
    float a[4] = {1, 2, -3, 0.5f};
    double c;
    embed_token_cosines(a, a, 1, 4, &c);
    CHECK(c == 1.0);  // identical rows: exactly 1
    float b[4] = {-1, -2, 3, -0.5f};
    embed_token_cosines(a, b, 1, 4, &c);
    CHECK(c == -1.0);
}

// Runs the command; stdout in out. The model folder links the golden encoder and tokenizer.
static int run_cli(TestCtx *tc, const char *sharpener, const char *alpha, const char *csv, char *out, size_t cap,
                   char *err, size_t errcap) {
    char model[1024], prompts[1024], path[1200], real[1024];
    snprintf(model, sizeof model, "%s/model", test_tmpdir(tc));
    snprintf(prompts, sizeof prompts, "%s/prompts.txt", test_tmpdir(tc));
    const char *argv[] = {test_dice_bin(tc), "inspect-embeddings", "--model", model, "--sharpener", sharpener,
                          "--prompts", prompts, "--alpha", alpha, "--out", csv, NULL};
    if (access(model, F_OK)) {
        if (mkdir(model, 0777)) return -1;
        const char *links[2][2] = {{"tests/golden/clip_encoder/quick", "text_encoder"},
                                   {"tests/golden/clip_encoder/tokenizer", "tokenizer"}};
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/%s", model, links[i][1]);
            if (!realpath(test_path(tc, links[i][0]), real) || symlink(real, path)) return -1;
        }
    }
    return test_run(tc, argv, out, cap, err, errcap);
}

// CSV row i: the numbers; -1 if absent.
static int csv_row(const char *csv_text, int i, EmbedInspectRow *r) {
    const char *line = strchr(csv_text, '\n');
    for (int k = 0; line && k < i; k++) line = strchr(line + 1, '\n');
    int index;
    if (!line || sscanf(line + 1, "%d,%d,%d,%lf,%lf,%d,%lf,%lf,", &index, &r->eos_index, &r->n_semantic,
                        &r->semantic_mean, &r->semantic_std, &r->n_padding, &r->padding_mean, &r->padding_std) != 8)
        return -1;
    return index == i ? 0 : -1;
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1 << 16, 1);
    if (buf) buf[fread(buf, 1, (1 << 16) - 1, f)] = '\0';
    fclose(f);
    return buf;
}

DICE_TEST(inspect_embeddings_cli_csv_and_alpha_zero) {
    Model m;
    CHECK_OK(model_open(tc, &m, tc->seed ^ 0x5eed));
    char sharpener[1024], prompts_path[1024], csv[1024], out[8192], err[8192], text[1024];
    snprintf(sharpener, sizeof sharpener, "%s/sharpener.safetensors", test_tmpdir(tc));
    snprintf(prompts_path, sizeof prompts_path, "%s/prompts.txt", test_tmpdir(tc));
    snprintf(csv, sizeof csv, "%s/cos.csv", test_tmpdir(tc));
    CHECK_OK(sharpener_save(&m.s, &m.ctx, sharpener, NULL, NULL, 0, &tc->err));
    FILE *f = fopen(prompts_path, "wb");
    CHECK(f);
    for (int i = 0; i < N_PROMPTS; i++) {  // CRLF and empty lines are not prompts
        prompt_text(i, text, sizeof text);
        fprintf(f, "%s%s", text, i % 4 ? "\n" : "\r\n\n");
    }
    fclose(f);
    int rc = run_cli(tc, sharpener, "20", csv, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, err);
    CHECK_MSG(strstr(out, "19 prompts, alpha 20") && strstr(out, "semantic") && strstr(out, "padding"), "%s", out);
    char *table = read_all(csv);
    CHECK(table && !strncmp(table, "index,eos_index,n_semantic,semantic_mean", 40));
    CHECK(strstr(table, ",\"a \"\"quoted\"\" dog, sitting\"\n"));
    for (int i = 0; i < N_PROMPTS; i++) {
        EmbedInspectRow got, want;
        double want_cos[77];
        prompt_text(i, text, sizeof text);
        CHECK_OK(direct(tc, &m, text, 20.0, &want, want_cos));
        CHECK_MSG(csv_row(table, i, &got) == 0, "CSV row %d unreadable", i);
        CHECK(got.eos_index == want.eos_index && got.n_semantic == want.n_semantic && got.n_padding == want.n_padding);
        CHECK_NEAR(got.semantic_mean, want.semantic_mean, 1e-6);
        CHECK_NEAR(got.padding_mean, want.padding_mean, 1e-6);
    }
    free(table);
    // alpha = 0: c_phi = c, every cosine exactly 1 (the CSV prints 1 and 0 exactly).
    rc = run_cli(tc, sharpener, "0", csv, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, err);
    table = read_all(csv);
    CHECK(table);
    for (int i = 0; i < N_PROMPTS; i++) {
        EmbedInspectRow got;
        CHECK(csv_row(table, i, &got) == 0);
        CHECK(got.semantic_mean == 1.0 && got.semantic_std == 0.0);
        CHECK(got.n_padding == 0 || (got.padding_mean == 1.0 && got.padding_std == 0.0));
    }
    free(table);
    CHECK(strstr(out, "1.0000 +- 0.0000"));
    // Errors: a missing sharpener file, an empty prompt file, a missing option.
    rc = run_cli(tc, "/nonexistent/s.safetensors", "1", csv, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 1 && strstr(err, "/nonexistent/s.safetensors"), "rc %d: %s", rc, err);
    f = fopen(prompts_path, "wb");
    CHECK(f);
    fputs("\n\r\n", f);
    fclose(f);
    rc = run_cli(tc, sharpener, "1", csv, out, sizeof out, err, sizeof err);
    CHECK_MSG(rc == 1 && strstr(err, "no prompts"), "rc %d: %s", rc, err);
    const char *missing[] = {test_dice_bin(tc), "inspect-embeddings", "--model", "m", NULL};
    CHECK(test_run(tc, missing, out, sizeof out, err, sizeof err) == 2 && strstr(err, "--sharpener is required"));
    model_close(&m);
}

// CUDA (bf16 text encoder, f32 sharpener; emulated under make test) against the CPU (f32): the same token sets,
// cosines within bf16 rounding of the encoder's output.
DICE_CUDA_TEST(inspect_embeddings_cuda_matches_cpu) {
    Model m;
    CHECK_OK(model_open(tc, &m, tc->seed));
    DiceCtx gpu;
    CHECK_OK(ctx_init_cuda(&gpu, 0, &tc->err));
    Arena weights, scratch, cpu_scratch;
    CHECK_OK(arena_init(&weights, "weights", DEV_CUDA, 1 << 20, 0, &tc->err));
    CHECK_OK(arena_init(&scratch, "scratch", DEV_CUDA, 1 << 20, 0, &tc->err));
    CHECK_OK(arena_init(&cpu_scratch, "scratch", DEV_CPU, 1 << 20, 0, &tc->err));
    ClipEncoder enc;
    CHECK_OK(clip_encoder_load_dir(&enc, test_path(tc, "tests/golden/clip_encoder/quick"), &gpu, &weights, DT_BF16,
                                   &tc->err));
    char path[1024];
    snprintf(path, sizeof path, "%s/s.safetensors", test_tmpdir(tc));
    CHECK_OK(sharpener_save(&m.s, &m.ctx, path, NULL, NULL, 0, &tc->err));
    Sharpener s;
    CHECK_OK(sharpener_load(&s, path, &weights, &gpu, &tc->err));
    enum { N = 4 };
    char text[N][1024];
    const char *prompts[N];
    for (int i = 0; i < N; i++) prompt_text(i + 4, text[i], sizeof text[i]), prompts[i] = text[i];  // 5: no padding
    double want[N * 77], got[N * 77];
    EmbedInspectRow want_rows[N], rows[N];
    CHECK_OK(embed_inspect_run(&m.ctx, &cpu_scratch, &m.enc, &m.tok, &m.s, prompts, N, ALPHA, want, want_rows,
                               &tc->err));
    CHECK_OK(embed_inspect_run(&gpu, &scratch, &enc, &m.tok, &s, prompts, N, ALPHA, got, rows, &tc->err));
    for (int i = 0; i < N; i++) {
        CHECK(rows[i].eos_index == want_rows[i].eos_index && rows[i].n_padding == want_rows[i].n_padding);
        CHECK_NEAR(rows[i].semantic_mean, want_rows[i].semantic_mean, 3e-2);
        CHECK_NEAR(rows[i].padding_mean, want_rows[i].padding_mean, 3e-2);
        CHECK(got[i * 77] == 1.0);
    }
    clip_encoder_free(&enc);
    arena_free(&cpu_scratch);
    arena_free(&scratch);
    arena_free(&weights);
    ctx_free(&gpu);
    model_close(&m);
}
