// tests/test_clip_tokenizer.c — the CLIP tokenizer (models/clip_tokenizer.c and its clean-up,
// BPE and Unicode parts): exact ids against transformers' CLIPTokenizer on the golden prompts with
// the real CLIP vocabulary (tests/golden/clip_tokenizer, scripts/golden_tokenizer.py), padding with
// "<|endoftext|>" and with "!", truncation, the first-EOS position, BPE details on a tiny vocabulary,
// the config rules, and one test per missing or malformed file and per invalid prompt.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "models/clip_bpe.h"
#include "models/clip_tokenizer.h"
#include "models/unicode.h"
#include "nn/safetensors.h"
#include "test.h"

#define GOLDEN_DIR "tests/golden/clip_tokenizer"

// ---------------------------------------------------------------- helpers

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = strlen(text), w = fwrite(text, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) free(p), p = NULL;
    if (p) p[n] = '\0';
    fclose(f);
    return p;
}

// `dir`/`name` <- text.
static int put(const char *dir, const char *name, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return write_text(path, text);
}

// Appends a JSON string literal of s (only '"' and '\\' need escaping in vocabulary symbols).
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

// vocab.json as CLIP builds it from merges.txt: the 256 byte symbols (in code point order, which is
// bytes_to_unicode's order), the same with "</w>", each merge joined, then the two special tokens.
static int write_clip_vocab(const char *merges_path, const char *vocab_path) {
    char *merges = read_text(merges_path);
    FILE *f = fopen(vocab_path, "wb");
    if (!merges || !f) {
        free(merges);
        if (f) fclose(f);
        return -1;
    }
    uint32_t chars[256];
    for (unsigned b = 0; b < 256; b++) chars[b] = clip_byte_char(b);
    qsort(chars, 256, sizeof chars[0], cmp_u32);
    int id = 0;
    fputc('{', f);
    for (int end = 0; end < 2; end++)
        for (int i = 0; i < 256; i++) {
            unsigned char s[12];
            int len = uc_utf8_encode(chars[i], s);
            memcpy(s + len, end ? "</w>" : "", end ? 5 : 1);
            if (id) fputc(',', f);
            json_string(f, (const char *)s);
            fprintf(f, ":%d", id++);
        }
    char *line = strchr(merges, '\n') + 1;  // skip the header
    while (*line) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        char *sp = strchr(line, ' ');
        memmove(sp, sp + 1, strlen(sp));
        fputc(',', f);
        json_string(f, line);
        fprintf(f, ":%d", id++);
        line = nl + 1;
    }
    fprintf(f, ",\"<|startoftext|>\":%d,\"<|endoftext|>\":%d}", id, id + 1);
    free(merges);
    return fclose(f) == 0 && id == 49406 ? 0 : -1;
}

// A copy of the golden CLIP tokenizer folder in the test's scratch directory, its pad token "<|endoftext|>"
// (SD1.5) or "!" (SDXL's second tokenizer). Returns the folder, or NULL.
static const char *clip_folder(TestCtx *tc, int bang_pad) {
    static char dir[512];
    char golden[512], merges[600], vocab[600];
    snprintf(dir, sizeof dir, "%s/tokenizer", test_tmpdir(tc));
    snprintf(golden, sizeof golden, "%s", test_path(tc, GOLDEN_DIR));
    snprintf(merges, sizeof merges, "%s/merges.txt", golden);
    snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
    mkdir(dir, 0755);
    char *m = read_text(merges);
    int rc = m ? put(dir, "merges.txt", m) : -1;
    free(m);
    if (rc || write_clip_vocab(merges, vocab)) return NULL;
    static const char *const names[] = {"tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 2; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", golden, names[i]);
        char *text = read_text(path);
        if (!text) return NULL;
        if (bang_pad) {  // "pad_token": "<|endoftext|>" -> "pad_token": "!"
            char *p = strstr(text, "\"pad_token\": \"<|endoftext|>\"");
            if (!p) return free(text), NULL;
            memmove(p + 16, p + 28, strlen(p + 28) + 1);
            memcpy(p + 13, "\"!\"", 3);
        }
        rc = put(dir, names[i], text);
        free(text);
        if (rc) return NULL;
    }
    return dir;
}

static void printable(char *out, size_t cap, const char *s) { st_printable(out, cap, s); }

// The golden prompts (a JSON list of strings).
static cJSON *golden_prompts(TestCtx *tc) {
    char *text = read_text(test_path(tc, GOLDEN_DIR "/prompts.json"));
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    return root;
}

static const StTensorInfo *golden_tensor(const StFile *st, const char *name, DType dt, int ndim) {
    const StTensorInfo *t = st_find(st, name);
    return t && t->dtype == dt && t->ndim == ndim ? t : NULL;
}

static uint16_t u16_at(const StTensorInfo *t, int64_t i) {
    uint16_t v;
    memcpy(&v, (const char *)t->data + 2 * i, 2);
    return v;
}

static int32_t i32_at(const StTensorInfo *t, int64_t i) {
    int32_t v;
    memcpy(&v, (const char *)t->data + 4 * i, 4);
    return v;
}

// ---------------------------------------------------------------- parity with transformers

DICE_TEST(clip_tokenizer_golden_ids) {
    const char *dir = clip_folder(tc, 0);
    CHECK_MSG(dir, "cannot build the tokenizer folder from " GOLDEN_DIR);
    ClipTokenizer tok;
    CHECK_OK(clip_tokenizer_load(&tok, dir, &tc->err));
    CHECK(tok.n_vocab == 49408 && tok.n_merges == CLIP_MAX_MERGES && tok.max_length == 77);
    CHECK(tok.bos_id == 49406 && tok.eos_id == 49407 && tok.pad_id == 49407 && tok.unk_id == 49407);
    cJSON *prompts = golden_prompts(tc);
    StFile st;
    CHECK_OK(st_open(&st, test_path(tc, GOLDEN_DIR "/ids.safetensors"), &tc->err));
    const StTensorInfo *tokens = golden_tensor(&st, "tokens", DT_U16, 1);
    const StTensorInfo *offsets = golden_tensor(&st, "offsets", DT_I32, 1);
    CHECK(prompts && tokens && offsets && offsets->shape[0] == cJSON_GetArraySize(prompts) + 1);
    int i = 0, n_prompts = cJSON_GetArraySize(prompts);
    for (const cJSON *p = prompts->child; p; p = p->next, i++) {
        int32_t *ids;
        int n;
        CHECK_OK(clip_tokenizer_tokenize(&tok, p->valuestring, &ids, &n, &tc->err));
        int32_t begin = i32_at(offsets, i), want_n = i32_at(offsets, i + 1) - begin;
        int at = 0;
        while (at < n && at < want_n && ids[at] == u16_at(tokens, begin + at)) at++;
        char shown[300];
        printable(shown, sizeof shown, p->valuestring);
        if (at < n || at < want_n) {
            char msg[160];
            snprintf(msg, sizeof msg, "%d ids, want %d; first difference at %d: %d, want %d", n, want_n, at,
                     at < n ? ids[at] : -1, at < want_n ? u16_at(tokens, begin + at) : -1);
            free(ids);
            CHECK_MSG(0, "prompt %d \"%s\": %s", i, shown, msg);
        }
        free(ids);
    }
    CHECK(i == n_prompts && n_prompts >= 3000);
    st_close(&st);
    cJSON_Delete(prompts);
    clip_tokenizer_free(&tok);
}

// The padded rows (diffusers' call) of the "<|endoftext|>"-pad or "!"-pad tokenizer.
static void check_padded(TestCtx *tc, int bang_pad) {
    const char *dir = clip_folder(tc, bang_pad);
    CHECK_MSG(dir, "cannot build the tokenizer folder from " GOLDEN_DIR);
    ClipTokenizer tok;
    CHECK_OK(clip_tokenizer_load(&tok, dir, &tc->err));
    CHECK(tok.pad_id == (bang_pad ? 0 : 49407) && tok.eos_id == 49407);
    cJSON *prompts = golden_prompts(tc);
    StFile st;
    CHECK_OK(st_open(&st, test_path(tc, GOLDEN_DIR "/ids.safetensors"), &tc->err));
    const char *pre = bang_pad ? "bang" : "padded";
    char name[3][32];
    snprintf(name[0], sizeof name[0], "%s_index", pre);
    snprintf(name[1], sizeof name[1], "%s_ids", pre);
    snprintf(name[2], sizeof name[2], "%s_mask", pre);
    const StTensorInfo *index = golden_tensor(&st, name[0], DT_I32, 1);
    const StTensorInfo *want = golden_tensor(&st, name[1], DT_U16, 2);
    const StTensorInfo *mask = golden_tensor(&st, name[2], DT_U8, 2);
    CHECK(prompts && index && want && mask && want->shape[1] == 77 && want->shape[0] == index->shape[0]);
    int n_truncated = 0;
    for (int64_t r = 0; r < index->shape[0]; r++) {
        const cJSON *p = cJSON_GetArrayItem(prompts, i32_at(index, r));
        int32_t ids[77], got_mask[77];
        ClipTokenInfo info;
        CHECK_OK(clip_tokenizer_encode(&tok, p->valuestring, ids, got_mask, &info, &tc->err));
        char shown[300];
        printable(shown, sizeof shown, p->valuestring);
        int ones = 0, first_eos = -1;
        for (int j = 0; j < 77; j++) {
            CHECK_MSG(ids[j] == u16_at(want, r * 77 + j) && got_mask[j] == ((const uint8_t *)mask->data)[r * 77 + j],
                      "prompt %d \"%s\", position %d: id %d mask %d, want %d %d", i32_at(index, r), shown, j, ids[j],
                      got_mask[j], u16_at(want, r * 77 + j), ((const uint8_t *)mask->data)[r * 77 + j]);
            ones += got_mask[j];
            if (first_eos < 0 && ids[j] == 49407) first_eos = j;
        }
        CHECK(info.length == ones && info.eos_index == first_eos);
        CHECK(info.n_truncated == (info.n_prompt_tokens > 75 ? info.n_prompt_tokens - 75 : 0));
        n_truncated += info.n_truncated > 0;
    }
    CHECK(n_truncated >= 10);
    st_close(&st);
    cJSON_Delete(prompts);
    clip_tokenizer_free(&tok);
}

DICE_TEST(clip_tokenizer_golden_padded_eos) { check_padded(tc, 0); }
DICE_TEST(clip_tokenizer_golden_padded_bang) { check_padded(tc, 1); }

DICE_TEST(clip_tokenizer_truncation_and_eos_position) {
    const char *dir = clip_folder(tc, 0);
    CHECK(dir);
    ClipTokenizer tok;
    CHECK_OK(clip_tokenizer_load(&tok, dir, &tc->err));
    int32_t ids[77], mask[77];
    ClipTokenInfo info;
    char long_prompt[2000] = "";
    for (int i = 0; i < 100; i++) strcat(long_prompt, "cat ");
    CHECK_OK(clip_tokenizer_encode(&tok, long_prompt, ids, mask, &info, &tc->err));
    CHECK(ids[0] == 49406 && ids[1] == 2368 && ids[75] == 2368 && ids[76] == 49407);  // "cat</w>" is 2368
    CHECK(info.length == 77 && info.eos_index == 76 && info.n_prompt_tokens == 100 && info.n_truncated == 25);
    CHECK(mask[0] == 1 && mask[76] == 1);
    // Exactly 75 prompt tokens fit; 76 do not.
    long_prompt[4 * 75] = '\0';
    CHECK_OK(clip_tokenizer_encode(&tok, long_prompt, ids, NULL, &info, &tc->err));
    CHECK(ids[76] == 49407 && info.n_truncated == 0 && info.length == 77);
    // The first EOS, where CLIP's pooled output is read, may be inside the prompt.
    CHECK_OK(clip_tokenizer_encode(&tok, "a cat<|endoftext|>dog", ids, mask, &info, &tc->err));
    CHECK(ids[0] == 49406 && ids[1] == 320 && ids[2] == 2368 && ids[3] == 49407 && ids[5] == 49407);
    CHECK(info.eos_index == 3 && info.length == 6 && mask[5] == 1 && mask[6] == 0 && ids[6] == 49407);
    CHECK_OK(clip_tokenizer_encode(&tok, "", ids, mask, &info, &tc->err));
    CHECK(ids[0] == 49406 && ids[1] == 49407 && info.length == 2 && info.eos_index == 1 && mask[2] == 0);
    clip_tokenizer_free(&tok);
}

DICE_TEST(clip_tokenizer_invalid_utf8) {
    const char *dir = clip_folder(tc, 0);
    CHECK(dir);
    ClipTokenizer tok;
    CHECK_OK(clip_tokenizer_load(&tok, dir, &tc->err));
    int32_t ids[77];
    CHECK_FAILS_WITH(clip_tokenizer_encode(&tok, "ab\xff", ids, NULL, NULL, &tc->err), "offset 2");
    CHECK(strstr(tc->err.msg, "prompt: not valid UTF-8"));
    CHECK_FAILS_WITH(clip_tokenizer_encode(&tok, "caf\xc3", ids, NULL, NULL, &tc->err), "cut short");
    CHECK_FAILS_WITH(clip_tokenizer_encode(&tok, "\xc3(", ids, NULL, NULL, &tc->err), "continuation");
    CHECK_FAILS_WITH(clip_tokenizer_encode(&tok, "\xc0\xaf", ids, NULL, NULL, &tc->err), "overlong");
    CHECK_FAILS_WITH(clip_tokenizer_encode(&tok, "\xed\xa0\x80", ids, NULL, NULL, &tc->err), "U+D800");
    CHECK_FAILS_WITH(clip_tokenizer_encode(&tok, "\xf4\x90\x80\x80", ids, NULL, NULL, &tc->err), "U+110000");
    CHECK_FAILS_WITH(clip_tokenizer_encode(&tok, "<|endoftext|>\x80", ids, NULL, NULL, &tc->err), "offset 13");
    clip_tokenizer_free(&tok);
}

// ---------------------------------------------------------------- a tiny vocabulary

static const char TINY_VOCAB[] =
    "{\"a\": 0, \"b\": 1, \"c\": 2, \"a</w>\": 3, \"b</w>\": 4, \"c</w>\": 5, \"ab\": 6, \"ab</w>\": 7,"
    " \"abc</w>\": 8, \"<|startoftext|>\": 9, \"<|endoftext|>\": 10, \"!\": 11, \"aa\": 12, \"x\": 13,"
    " \"xy\": 14, \"z</w>\": 15, \"yz</w>\": 16, \"!</w>\": 17}";
static const char TINY_MERGES[] = "#version: 0.2\na b\nab c</w>\na b</w>\naa a\na a\nx y\ny z</w>\nx y\n";
static const char TINY_CONFIG[] = "{\"model_max_length\": 8, \"tokenizer_class\": \"CLIPTokenizer\"}";

// A tiny tokenizer folder; NULL arguments leave that file out.
static const char *tiny_folder(TestCtx *tc, const char *vocab, const char *merges, const char *config,
                               const char *special_map) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/tiny", test_tmpdir(tc));
    mkdir(dir, 0755);
    static const char *const names[] = {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"};
    const char *texts[] = {vocab, merges, config, special_map};
    for (int i = 0; i < 4; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        remove(path);
        if (texts[i] && write_text(path, texts[i])) return NULL;
    }
    return dir;
}

// The ids of text with the tiny tokenizer in dir, as a string "3 4 ..." (or the error).
static const char *tiny_ids(TestCtx *tc, const char *dir, const char *text) {
    static char out[256];
    ClipTokenizer tok;
    if (clip_tokenizer_load(&tok, dir, &tc->err)) return tc->err.msg;
    int32_t *ids;
    int n;
    if (clip_tokenizer_tokenize(&tok, text, &ids, &n, &tc->err)) {
        clip_tokenizer_free(&tok);
        return tc->err.msg;
    }
    out[0] = '\0';
    for (int i = 0; i < n; i++) snprintf(out + strlen(out), sizeof out - strlen(out), "%s%d", i ? " " : "", ids[i]);
    free(ids);
    clip_tokenizer_free(&tok);
    return out;
}

#define CHECK_IDS(dir, text, want)                                                                   \
    do {                                                                                             \
        const char *got_ = tiny_ids(tc, (dir), (text));                                              \
        CHECK_MSG(strcmp(got_, (want)) == 0, "\"%s\" -> \"%s\", want \"%s\"", (text), got_, (want)); \
    } while (0)

DICE_TEST(clip_tokenizer_bpe_rules) {
    const char *dir = tiny_folder(tc, TINY_VOCAB, TINY_MERGES, TINY_CONFIG, NULL);
    CHECK(dir);
    CHECK_IDS(dir, "ab", "7");             // a + b</w> (rank 2)
    CHECK_IDS(dir, "abc", "8");            // a b -> ab, then ab c</w>
    CHECK_IDS(dir, "ABC", "8");            // lower-cased
    CHECK_IDS(dir, "ab abc a", "7 8 3");
    CHECK_IDS(dir, "aaa", "12 3");         // "a a" merges left to right without overlap: aa a</w>
    CHECK_IDS(dir, "xyz", "13 16");        // "x y" appears twice: its later rank counts, so y z</w> goes first
    CHECK_IDS(dir, "d", "10");             // not in the vocabulary: unk (CLIPTokenizer's default, eos)
    CHECK_IDS(dir, "a!b", "3 17 4");       // a</w> !</w> b</w>
    CHECK_IDS(dir, "<|endoftext|>ab<|startoftext|>", "10 7 9");
    ClipTokenizer tok;
    CHECK_OK(clip_tokenizer_load(&tok, dir, &tc->err));
    CHECK(tok.n_vocab == 18 && tok.max_length == 8 && tok.bos_id == 9 && tok.eos_id == 10 && tok.pad_id == 10);
    int32_t ids[8], mask[8];
    ClipTokenInfo info;
    CHECK_OK(clip_tokenizer_encode(&tok, "ab ab ab ab ab ab ab", ids, mask, &info, &tc->err));
    int32_t want[8] = {9, 7, 7, 7, 7, 7, 7, 10};
    CHECK(memcmp(ids, want, sizeof want) == 0 && info.n_truncated == 1 && info.length == 8 && mask[7] == 1);
    clip_tokenizer_free(&tok);
    // Line ends \r\n work; merges after the first CLIP_MAX_MERGES are never read.
    dir = tiny_folder(tc, TINY_VOCAB, "#version: 0.2\r\na b\r\nab c</w>\r\n", TINY_CONFIG, NULL);
    CHECK_IDS(dir, "abc", "8");
    size_t cap = 64 + 4 * (size_t)CLIP_MAX_MERGES;
    char *big = malloc(cap);
    strcpy(big, "#version: 0.2\n");
    char *p = big + strlen(big);
    for (int i = 0; i < CLIP_MAX_MERGES - 1; i++) p += sprintf(p, "x y\n");
    sprintf(p, "a b</w>\na b\n");  // the last merge read, and one past the limit
    dir = tiny_folder(tc, TINY_VOCAB, big, TINY_CONFIG, NULL);
    free(big);
    CHECK_IDS(dir, "ab", "7");
    CHECK_IDS(dir, "abc", "0 1 5");
}

DICE_TEST(clip_tokenizer_special_token_config) {
    // No special tokens anywhere: CLIPTokenizer's defaults.
    const char *dir = tiny_folder(tc, TINY_VOCAB, TINY_MERGES, TINY_CONFIG, NULL);
    CHECK_IDS(dir, "a!!", "3 11 17");      // "!!" is one pre-token: ! !</w>
    // special_tokens_map.json sets pad "!" (the config has no added_tokens_decoder): "!" is split out.
    dir = tiny_folder(tc, TINY_VOCAB, TINY_MERGES, TINY_CONFIG, "{\"pad_token\": \"!\"}");
    ClipTokenizer tok;
    CHECK_OK(clip_tokenizer_load(&tok, dir, &tc->err));
    CHECK(tok.pad_id == 11 && tok.n_specials == 3);
    clip_tokenizer_free(&tok);
    CHECK_IDS(dir, "a!!b", "3 11 11 4");
    // With added_tokens_decoder in the config, special_tokens_map.json is not read (transformers' rule).
    dir = tiny_folder(tc, TINY_VOCAB, TINY_MERGES,
                      "{\"model_max_length\": 8, \"added_tokens_decoder\": {\"10\": {\"content\": \"<|endoftext|>\","
                      " \"lstrip\": false, \"rstrip\": false, \"single_word\": false, \"special\": true}}}",
                      "{\"pad_token\": \"!\"}");
    CHECK_OK(clip_tokenizer_load(&tok, dir, &tc->err));
    CHECK(tok.pad_id == 10);
    clip_tokenizer_free(&tok);
    // Token objects and extra special tokens in the config.
    dir = tiny_folder(tc, TINY_VOCAB, TINY_MERGES,
                      "{\"model_max_length\": 8, \"pad_token\": {\"__type\": \"AddedToken\", \"content\": \"!\","
                      " \"lstrip\": false, \"normalized\": true}, \"additional_special_tokens\": [\"ab\"]}",
                      NULL);
    CHECK_IDS(dir, "cab!", "5 6 11");
}

DICE_TEST(clip_tokenizer_unicode_helpers) {
    uint32_t in[8], out[32];
    size_t n;
    CHECK_OK(uc_utf8_decode("e\xcc\x81\xea\xb0\x80\xe1\x84\x80\xe1\x85\xa1", 12, in, &n, &tc->err));
    CHECK(n == 5 && in[0] == 'e' && in[1] == 0x301 && in[2] == 0xAC00);
    n = uc_nfc(in, n, out);  // e + acute -> U+00E9; a syllable stays; L + V jamo compose
    CHECK(n == 3 && out[0] == 0xE9 && out[1] == 0xAC00 && out[2] == 0xAC00);
    uint32_t reorder[3] = {'a', 0x300, 0x316};  // canonical order puts class 220 before 230
    n = uc_nfc(reorder, 3, out);
    CHECK(n == 2 && out[0] == 0xE0 && out[1] == 0x316);
    uint32_t greek[4] = {0x391, 0x3A3, ',', 0x3A3};  // "ΑΣ,Σ" -> "ας,σ": a lone capital is not final
    n = uc_lower(greek, 4, out);
    CHECK(n == 4 && out[0] == 0x3B1 && out[1] == 0x3C2 && out[3] == 0x3C3);
    uint32_t dotted[2] = {0x130, 'X'};
    n = uc_lower(dotted, 2, out);
    CHECK(n == 3 && out[0] == 'i' && out[1] == 0x307 && out[2] == 'x');
    CHECK(uc_class('a') == UC_CLASS_LETTER && uc_class('7') == UC_CLASS_NUMBER && uc_class('!') == UC_CLASS_OTHER);
    CHECK(uc_class(' ') == UC_CLASS_NONE && uc_class(0x345) == UC_CLASS_NONE && uc_class(0x4E2D) == UC_CLASS_LETTER);
    CHECK((uc_flags(0x200D) & UC_DROP) && (uc_flags(0x3000) & UC_BT_SPACE) && (uc_flags(0x2028) & UC_PY_SPACE));
    CHECK(!(uc_flags('\n') & UC_DROP) && (uc_flags(0x378) & UC_DROP));  // unassigned: dropped
}

// ---------------------------------------------------------------- missing and malformed files

// Loading `dir` fails with a message holding `file` and `problem`, and leaves the tokenizer empty.
static void check_load_fails(TestCtx *tc, const char *dir, const char *file, const char *problem) {
    ClipTokenizer tok;
    CHECK_FAILS_WITH(clip_tokenizer_load(&tok, dir, &tc->err), problem);
    CHECK_MSG(strstr(tc->err.msg, file), "message '%s' does not name %s", tc->err.msg, file);
    CHECK(tok.sym_text == NULL && tok.specials == NULL && tok.n_vocab == 0);
    clip_tokenizer_free(&tok);
}

#define LOAD_FAILS(vocab, merges, config, map, file, problem)                                   \
    do {                                                                                        \
        check_load_fails(tc, tiny_folder(tc, (vocab), (merges), (config), (map)), (file), (problem)); \
        if (tc->failed) return;                                                                 \
    } while (0)

DICE_TEST(clip_tokenizer_missing_files) {
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no_such_folder", test_tmpdir(tc));
    check_load_fails(tc, missing, "no_such_folder/vocab.json", "cannot open");
    if (tc->failed) return;
    LOAD_FAILS(NULL, TINY_MERGES, TINY_CONFIG, NULL, "vocab.json", "cannot open: No such file");
    LOAD_FAILS(TINY_VOCAB, NULL, TINY_CONFIG, NULL, "merges.txt", "cannot open: No such file");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, NULL, NULL, "tokenizer_config.json", "cannot open: No such file");
}

DICE_TEST(clip_tokenizer_malformed_vocab) {
    LOAD_FAILS("{\"a\": 0,", TINY_MERGES, TINY_CONFIG, NULL, "vocab.json", "not valid JSON");
    LOAD_FAILS("{\"a\": 0} x", TINY_MERGES, TINY_CONFIG, NULL, "vocab.json", "not valid JSON");
    LOAD_FAILS("[\"a\", \"b\"]", TINY_MERGES, TINY_CONFIG, NULL, "vocab.json", "not a JSON object");
    LOAD_FAILS("{}", TINY_MERGES, TINY_CONFIG, NULL, "vocab.json", "no tokens");
    LOAD_FAILS("{\"a\": \"0\"}", TINY_MERGES, TINY_CONFIG, NULL, "vocab.json", "\"a\" is not a non-negative integer");
    LOAD_FAILS("{\"a\": -1}", TINY_MERGES, TINY_CONFIG, NULL, "vocab.json", "not a non-negative integer");
    LOAD_FAILS("{\"a\": 1.5}", TINY_MERGES, TINY_CONFIG, NULL, "vocab.json", "not a non-negative integer");
    LOAD_FAILS("{\"a\": 1e12}", TINY_MERGES, TINY_CONFIG, NULL, "vocab.json", "not a non-negative integer");
    LOAD_FAILS("{\"a\xff\": 1}", TINY_MERGES, TINY_CONFIG, NULL, "vocab.json", "not valid UTF-8");
    // The special tokens must be in the vocabulary.
    LOAD_FAILS("{\"a\": 0, \"<|endoftext|>\": 1}", TINY_MERGES, TINY_CONFIG, NULL, "tokenizer_config.json",
               "bos_token (CLIPTokenizer's default) \"<|startoftext|>\" is not in vocab.json");
}

DICE_TEST(clip_tokenizer_malformed_merges) {
    LOAD_FAILS(TINY_VOCAB, "", TINY_CONFIG, NULL, "merges.txt", "not a \"#version\" header");
    LOAD_FAILS(TINY_VOCAB, "a b\nab c</w>\n", TINY_CONFIG, NULL, "merges.txt", "not a \"#version\" header");
    LOAD_FAILS(TINY_VOCAB, "#version: 0.2\n", TINY_CONFIG, NULL, "merges.txt", "no merges");
    LOAD_FAILS(TINY_VOCAB, "#version: 0.2\na b\nab c</w> x\n", TINY_CONFIG, NULL, "merges.txt:3",
               "expected two symbols");
    LOAD_FAILS(TINY_VOCAB, "#version: 0.2\nab\n", TINY_CONFIG, NULL, "merges.txt:2", "expected two symbols");
    LOAD_FAILS(TINY_VOCAB, "#version: 0.2\na b\n\nab c</w>\n", TINY_CONFIG, NULL, "merges.txt:3",
               "expected two symbols");
    LOAD_FAILS(TINY_VOCAB, "#version: 0.2\na \xc3\n", TINY_CONFIG, NULL, "merges.txt", "not valid UTF-8");
}

DICE_TEST(clip_tokenizer_malformed_config) {
    const char *cfg = "tokenizer_config.json", *map = "special_tokens_map.json";
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": 77", NULL, cfg, "not valid JSON");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "77", NULL, cfg, "not a JSON object");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{}", NULL, cfg, "no model_max_length");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": 1}", NULL, cfg, "model_max_length is not an integer");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": 77.5}", NULL, cfg, "model_max_length");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": \"77\"}", NULL, cfg, "model_max_length");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": 1e30}", NULL, cfg, "model_max_length");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": 8, \"tokenizer_class\": \"T5Tokenizer\"}", NULL,
               cfg, "tokenizer_class is not CLIPTokenizer");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": 8, \"padding_side\": \"left\"}", NULL, cfg,
               "padding_side must be \"right\"");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": 8, \"split_special_tokens\": true}", NULL, cfg,
               "split_special_tokens");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": 8, \"pad_token\": \"<pad>\"}", NULL, cfg,
               "pad_token \"<pad>\" is not in vocab.json");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": 8, \"pad_token\": null}", NULL, cfg,
               "pad_token is null");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": 8, \"pad_token\": 5}", NULL, cfg,
               "pad_token is neither a string nor a token object");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": 8, \"eos_token\": {\"lstrip\": false}}", NULL, cfg,
               "eos_token has no \"content\"");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES,
               "{\"model_max_length\": 8, \"bos_token\": {\"content\": \"<|startoftext|>\", \"lstrip\": true}}", NULL,
               cfg, "bos_token has lstrip set");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": 8, \"additional_special_tokens\": \"ab\"}", NULL,
               cfg, "additional_special_tokens is not a list");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES,
               "{\"model_max_length\": 8, \"added_tokens_decoder\": {\"49408\": {\"content\": \"<|endoftext|>\"}}}",
               NULL, cfg, "added token 49408 is \"<|endoftext|>\", which vocab.json numbers 10");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES,
               "{\"model_max_length\": 8, \"added_tokens_decoder\": {\"ten\": {\"content\": \"<|endoftext|>\"}}}",
               NULL, cfg, "key \"ten\" is not an id");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, "{\"model_max_length\": 8, \"added_tokens_decoder\": []}", NULL, cfg,
               "added_tokens_decoder is not an object");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, TINY_CONFIG, "{\"pad_token\": ", map, "not valid JSON");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, TINY_CONFIG, "[]", map, "not a JSON object");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, TINY_CONFIG, "{\"unk_token\": \"zz\"}", map,
               "unk_token \"zz\" is not in vocab.json");
    LOAD_FAILS(TINY_VOCAB, TINY_MERGES, TINY_CONFIG, "{\"pad_token\": {\"content\": \"!\", \"rstrip\": true}}", map,
               "pad_token has rstrip set");
}
