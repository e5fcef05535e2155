// models/clip_tokenizer.c — loading a CLIP tokenizer folder and encoding prompts (see
// clip_tokenizer.h). The text clean-up is in clip_text.c, the tables and BPE in clip_bpe.c.
#include "clip_tokenizer.h"
#include "nn/file_util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip_bpe.h"
#include "clip_text.h"
#include "nn/safetensors.h"  // st_printable
#include "unicode.h"

#define MAX_FILE_BYTES ((size_t)256 << 20)
#define MAX_LENGTH_LIMIT 65536

// ---------------------------------------------------------------- files


// Checks that text[0..n) is UTF-8, as Python's open(..., encoding="utf-8") requires.
static int check_utf8(const char *path, const char *text, size_t n, DiceError *err) {
    uint32_t *cps = malloc((n + 1) * sizeof *cps);
    DICE_CHECK(err, cps, "%s: out of memory", path);
    size_t m;
    int rc = uc_utf8_decode(text, n, cps, &m, err);
    free(cps);
    if (rc) dice_error_context(err, "%s", path);
    return rc;
}

// Parses a JSON file whose top level must be an object.
static int read_json(const char *path, cJSON **root, DiceError *err) {
    char *text;
    size_t n;
    DICE_TRY(dice_read_file(path, MAX_FILE_BYTES, &text, &n, err));
    if (check_utf8(path, text, n, err)) {
        free(text);
        return -1;
    }
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(text, n + 1, &end, 1);  // n + 1: the NUL must end the text
    size_t at = end ? (size_t)(end - text) : 0;
    free(text);
    DICE_CHECK(err, *root, "%s: not valid JSON (near byte %zu)", path, at);
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return DICE_FAIL(err, "%s: the top level is not a JSON object", path);
    }
    return 0;
}

// A JSON number that is an integer in [lo, hi].
static int json_int(const cJSON *v, long lo, long hi, long *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != (double)(long)d) return 0;
    *out = (long)d;
    return 1;
}

// ---------------------------------------------------------------- vocab.json and merges.txt

static int load_vocab(ClipTokenizer *tok, const char *path, const cJSON *root, DiceError *err) {
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        long id;
        char name[80];
        st_printable(name, sizeof name, e->string);
        DICE_CHECK(err, json_int(e, 0, INT32_MAX, &id), "%s: the id of \"%s\" is not a non-negative integer", path,
                   name);
        int32_t sym = clip_sym_intern(tok, e->string, strlen(e->string), err);
        DICE_TRY(sym < 0 ? -1 : 0);
        if (tok->sym_vocab[sym] < 0) n++;
        tok->sym_vocab[sym] = (int32_t)id;  // a repeated key: the last one counts, as in json.load
    }
    DICE_CHECK(err, n > 0, "%s: no tokens", path);
    tok->n_vocab = n;
    return 0;
}

// Length of the whitespace-separated field at s (spaces, tabs and carriage returns separate fields).
static size_t field_len(const char *s, const char *end) {
    size_t k = 0;
    while (s + k < end && s[k] != ' ' && s[k] != '\t' && s[k] != '\r') k++;
    return k;
}

// merges.txt: a "#version" header line, then one merge "left right" per line; CLIPTokenizer uses the
// first CLIP_MAX_MERGES lines after the header (the rest are never read). Line ends may be \n, \r\n or \r.
static int load_merges(ClipTokenizer *tok, const char *path, const char *text, size_t n, DiceError *err) {
    const char *p = text, *end = text + n;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;  // str.strip()
    DICE_CHECK(err, end - p >= 8 && memcmp(p, "#version", 8) == 0,
               "%s: the first line is not a \"#version\" header", path);
    char *cat = NULL;
    size_t cat_cap = 0;
    int rank = 0, line_no = 1, rc = 0;
    while (p < end && *p != '\n' && *p != '\r') p++;
    while (p < end && rank < CLIP_MAX_MERGES && rc == 0) {
        p += (*p == '\r' && p + 1 < end && p[1] == '\n') ? 2 : 1;  // the previous line's end
        line_no++;
        const char *line = p;
        while (p < end && *p != '\n' && *p != '\r') p++;
        const char *line_end = p;
        while (line_end > line && (line_end[-1] == ' ' || line_end[-1] == '\t')) line_end--;
        int trailing = 1;  // only blank lines follow: the file ends here (str.strip())
        for (const char *q = line; q < end && trailing; q++) trailing = *q == ' ' || *q == '\t' || *q == '\n' || *q == '\r';
        if (trailing) break;
        size_t a = field_len(line, line_end);
        const char *second = line + a;
        while (second < line_end && (*second == ' ' || *second == '\t')) second++;
        size_t b = field_len(second, line_end);
        if (a == 0 || b == 0 || second + b != line_end) {
            rc = DICE_FAIL(err, "%s:%d: expected two symbols separated by a space", path, line_no);
            break;
        }
        if (a + b + 1 > cat_cap) {
            cat_cap = 2 * (a + b + 1);
            char *grown = realloc(cat, cat_cap);
            if (!grown) {
                rc = DICE_FAIL(err, "%s: out of memory", path);
                break;
            }
            cat = grown;
        }
        memcpy(cat, line, a);
        memcpy(cat + a, second, b);
        int32_t left = clip_sym_intern(tok, line, a, err);
        int32_t right = left < 0 ? -1 : clip_sym_intern(tok, second, b, err);
        int32_t merged = right < 0 ? -1 : clip_sym_intern(tok, cat, a + b, err);
        if (merged < 0 || clip_pair_set(tok, left, right, rank, merged, err)) rc = -1;
        rank++;
    }
    free(cat);
    DICE_TRY(rc);
    DICE_CHECK(err, rank > 0, "%s: no merges after the header", path);
    return 0;
}

// Lines of merges.txt that can be merges (an upper bound for the table sizes).
static size_t count_lines(const char *text, size_t n) {
    size_t lines = 1;
    for (size_t i = 0; i < n; i++) lines += text[i] == '\n' || text[i] == '\r';
    return lines;
}

// ---------------------------------------------------------------- special tokens and config

enum { SPECIAL_BOS, SPECIAL_EOS, SPECIAL_UNK, SPECIAL_PAD, N_NAMED };
static const char *const SPECIAL_KEYS[N_NAMED] = {"bos_token", "eos_token", "unk_token", "pad_token"};
static const char *const SPECIAL_DEFAULTS[N_NAMED] = {"<|startoftext|>", "<|endoftext|>", "<|endoftext|>",
                                                      "<|endoftext|>"};

// The text of a special token entry: a string, or an AddedToken object {"content": ..., "lstrip": ...}
// whose stripping options are off (dice does not implement them).
static int special_text(const cJSON *v, const char *path, const char *key, const char **out, DiceError *err) {
    if (cJSON_IsString(v)) {
        *out = v->valuestring;
        return 0;
    }
    DICE_CHECK(err, cJSON_IsObject(v), "%s: %s is neither a string nor a token object", path, key);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(v, "content");
    DICE_CHECK(err, cJSON_IsString(content), "%s: %s has no \"content\" string", path, key);
    static const char *const unsupported[] = {"lstrip", "rstrip", "single_word"};
    for (int i = 0; i < 3; i++) {
        const cJSON *flag = cJSON_GetObjectItemCaseSensitive(v, unsupported[i]);
        DICE_CHECK(err, !flag || cJSON_IsFalse(flag), "%s: %s has %s set, which dice does not support", path, key,
                   unsupported[i]);
    }
    *out = content->valuestring;
    return 0;
}

// The vocabulary id of a special token's text; it must be in vocab.json.
static int special_id(const ClipTokenizer *tok, const char *text, const char *path, const char *key, int32_t *id,
                      DiceError *err) {
    char name[80];
    st_printable(name, sizeof name, text);
    DICE_CHECK(err, text[0], "%s: %s is empty", path, key);
    int32_t sym = clip_sym_find(tok, text, strlen(text));
    DICE_CHECK(err, sym >= 0 && tok->sym_vocab[sym] >= 0, "%s: %s \"%s\" is not in vocab.json", path, key, name);
    *id = tok->sym_vocab[sym];
    return 0;
}

// Adds a string to the special tokens split out of prompts (once).
static int add_special(ClipTokenizer *tok, const char *text, int32_t id, DiceError *err) {
    for (int i = 0; i < tok->n_specials; i++)
        if (strcmp(tok->specials[i].text, text) == 0) return 0;
    ClipSpecial *grown = realloc(tok->specials, (size_t)(tok->n_specials + 1) * sizeof *grown);
    DICE_CHECK(err, grown, "out of memory");
    tok->specials = grown;
    char *copy = strdup(text);
    DICE_CHECK(err, copy, "out of memory");
    tok->specials[tok->n_specials++] = (ClipSpecial){copy, id};
    return 0;
}

static int by_length_desc(const void *a, const void *b) {
    size_t la = strlen(((const ClipSpecial *)a)->text), lb = strlen(((const ClipSpecial *)b)->text);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

// Named special tokens and extra ones from one JSON object (tokenizer_config.json or
// special_tokens_map.json) into texts[] / the specials list.
static int read_specials(ClipTokenizer *tok, const cJSON *root, const char *path, const char *texts[N_NAMED],
                         DiceError *err) {
    for (int k = 0; k < N_NAMED; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, SPECIAL_KEYS[k]);
        if (!v) continue;
        DICE_CHECK(err, !cJSON_IsNull(v), "%s: %s is null; a CLIP tokenizer needs one", path, SPECIAL_KEYS[k]);
        DICE_TRY(special_text(v, path, SPECIAL_KEYS[k], &texts[k], err));
    }
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(root, "additional_special_tokens");
    if (extra && !cJSON_IsNull(extra)) {
        DICE_CHECK(err, cJSON_IsArray(extra), "%s: additional_special_tokens is not a list", path);
        for (const cJSON *e = extra->child; e; e = e->next) {
            const char *text;
            int32_t id;
            DICE_TRY(special_text(e, path, "additional_special_tokens", &text, err));
            DICE_TRY(special_id(tok, text, path, "additional_special_tokens", &id, err));
            DICE_TRY(add_special(tok, text, id, err));
        }
    }
    return 0;
}

// tokenizer_config.json (and special_tokens_map.json when the config has no added_tokens_decoder,
// transformers' legacy rule): max length, special tokens, options that would change the output.
static int load_config(ClipTokenizer *tok, const char *dir, DiceError *err) {
    char path[4096], map_path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    snprintf(map_path, sizeof map_path, "%s/special_tokens_map.json", dir);
    cJSON *cfg = NULL, *map = NULL;
    DICE_TRY(read_json(path, &cfg, err));
    const char *texts[N_NAMED], *src[N_NAMED];
    memcpy(texts, SPECIAL_DEFAULTS, sizeof texts);
    int rc = 0;
    long max_length = 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "model_max_length");
    if (!v) rc = DICE_FAIL(err, "%s: no model_max_length", path);
    else if (!json_int(v, 2, MAX_LENGTH_LIMIT, &max_length))
        rc = DICE_FAIL(err, "%s: model_max_length is not an integer in [2, %d]", path, MAX_LENGTH_LIMIT);
    tok->max_length = (int)max_length;
    v = cJSON_GetObjectItemCaseSensitive(cfg, "tokenizer_class");
    if (!rc && v && !(cJSON_IsString(v) && (strcmp(v->valuestring, "CLIPTokenizer") == 0 ||
                                           strcmp(v->valuestring, "CLIPTokenizerFast") == 0)))
        rc = DICE_FAIL(err, "%s: tokenizer_class is not CLIPTokenizer", path);
    static const char *const right_only[] = {"padding_side", "truncation_side"};
    for (int i = 0; i < 2 && !rc; i++) {
        v = cJSON_GetObjectItemCaseSensitive(cfg, right_only[i]);
        if (v && !(cJSON_IsString(v) && strcmp(v->valuestring, "right") == 0))
            rc = DICE_FAIL(err, "%s: %s must be \"right\" (the only side dice implements)", path, right_only[i]);
    }
    v = cJSON_GetObjectItemCaseSensitive(cfg, "split_special_tokens");
    if (!rc && v && !cJSON_IsFalse(v)) rc = DICE_FAIL(err, "%s: split_special_tokens must be false", path);
    if (!rc) rc = read_specials(tok, cfg, path, texts, err);
    for (int k = 0; k < N_NAMED; k++) src[k] = cJSON_GetObjectItemCaseSensitive(cfg, SPECIAL_KEYS[k]) ? path : NULL;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
    if (!rc && added) {
        if (!cJSON_IsObject(added)) rc = DICE_FAIL(err, "%s: added_tokens_decoder is not an object", path);
        for (const cJSON *e = added->child; e && !rc; e = e->next) {
            char *endp;
            errno = 0;
            long id = strtol(e->string, &endp, 10);
            const char *text;
            int32_t vocab;
            if (!e->string[0] || *endp || errno || id < 0 || id > INT32_MAX)
                rc = DICE_FAIL(err, "%s: added_tokens_decoder key \"%s\" is not an id", path, e->string);
            else if (!(rc = special_text(e, path, "an added token", &text, err)) &&
                     !(rc = special_id(tok, text, path, "added token", &vocab, err))) {
                if (vocab != id)
                    rc = DICE_FAIL(err, "%s: added token %ld is \"%s\", which vocab.json numbers %d (added "
                                   "vocabulary is not supported)", path, id, text, vocab);
                else rc = add_special(tok, text, vocab, err);
            }
        }
    } else if (!rc) {
        FILE *f = fopen(map_path, "rb");
        if (f) {
            fclose(f);
            rc = read_json(map_path, &map, err);
            if (!rc) rc = read_specials(tok, map, map_path, texts, err);
            for (int k = 0; k < N_NAMED && !rc; k++)
                if (cJSON_GetObjectItemCaseSensitive(map, SPECIAL_KEYS[k])) src[k] = map_path;
        } else if (errno != ENOENT) {
            rc = DICE_FAIL(err, "%s: cannot open: %s", map_path, strerror(errno));
        }
    }
    int32_t ids[N_NAMED];
    for (int k = 0; k < N_NAMED && !rc; k++) {
        char what[64];
        snprintf(what, sizeof what, "%s%s", SPECIAL_KEYS[k], src[k] ? "" : " (CLIPTokenizer's default)");
        rc = special_id(tok, texts[k], src[k] ? src[k] : path, what, &ids[k], err);
        if (!rc) rc = add_special(tok, texts[k], ids[k], err);
    }
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    DICE_TRY(rc);
    tok->bos_id = ids[SPECIAL_BOS], tok->eos_id = ids[SPECIAL_EOS];
    tok->unk_id = ids[SPECIAL_UNK], tok->pad_id = ids[SPECIAL_PAD];
    qsort(tok->specials, (size_t)tok->n_specials, sizeof *tok->specials, by_length_desc);
    return 0;
}

// ---------------------------------------------------------------- loading

void clip_tokenizer_free(ClipTokenizer *tok) {
    clip_tables_free(tok);
    for (int i = 0; i < tok->n_specials; i++) free(tok->specials[i].text);
    free(tok->specials);
    memset(tok, 0, sizeof *tok);
}

// The symbols of the 256 bytes, alone and word-final, and of the two cached special strings.
static int intern_fixed_symbols(ClipTokenizer *tok, DiceError *err) {
    for (unsigned b = 0; b < 256; b++) {
        unsigned char s[8];
        int len = uc_utf8_encode(clip_byte_char(b), s);
        DICE_TRY((tok->byte_sym[b] = clip_sym_intern(tok, (const char *)s, (size_t)len, err)) < 0 ? -1 : 0);
        memcpy(s + len, "</w>", 4);
        DICE_TRY((tok->byte_sym_end[b] = clip_sym_intern(tok, (const char *)s, (size_t)len + 4, err)) < 0 ? -1 : 0);
    }
    DICE_TRY((tok->sot_sym = clip_sym_intern(tok, "<|startoftext|>", 15, err)) < 0 ? -1 : 0);
    DICE_TRY((tok->eot_sym = clip_sym_intern(tok, "<|endoftext|>", 13, err)) < 0 ? -1 : 0);
    return 0;
}

static int load(ClipTokenizer *tok, const char *dir, DiceError *err) {
    char vocab_path[4096], merges_path[4096];
    snprintf(vocab_path, sizeof vocab_path, "%s/vocab.json", dir);
    snprintf(merges_path, sizeof merges_path, "%s/merges.txt", dir);
    cJSON *vocab = NULL;
    char *merges = NULL;
    size_t merges_len = 0;
    int rc = read_json(vocab_path, &vocab, err);
    if (!rc) rc = dice_read_file(merges_path, MAX_FILE_BYTES, &merges, &merges_len, err);
    if (!rc) rc = check_utf8(merges_path, merges, merges_len, err);
    if (!rc) {
        size_t lines = count_lines(merges, merges_len);
        size_t n_merges = lines < CLIP_MAX_MERGES ? lines : CLIP_MAX_MERGES;
        rc = clip_tables_init(tok, (size_t)cJSON_GetArraySize(vocab) + 3 * n_merges + 514, n_merges, err);
    }
    if (!rc) rc = load_vocab(tok, vocab_path, vocab, err);
    cJSON_Delete(vocab);
    if (!rc) rc = intern_fixed_symbols(tok, err);
    if (!rc) rc = load_merges(tok, merges_path, merges, merges_len, err);
    free(merges);
    DICE_TRY(rc);
    return load_config(tok, dir, err);
}

int clip_tokenizer_load(ClipTokenizer *tok, const char *dir, DiceError *err) {
    memset(tok, 0, sizeof *tok);
    if (load(tok, dir, err)) {
        clip_tokenizer_free(tok);
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- encoding

// A growing array of ids.
typedef struct IdBuf {
    int32_t *ids;
    size_t n, cap;
} IdBuf;

static int ids_reserve(IdBuf *b, size_t more, DiceError *err) {
    if (b->n + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + more) cap *= 2;
    int32_t *grown = realloc(b->ids, cap * sizeof *grown);
    DICE_CHECK(err, grown, "out of memory tokenizing a prompt");
    b->ids = grown, b->cap = cap;
    return 0;
}

// The ids of piece[0..n) (code points between special tokens) appended to *out.
static int encode_piece(const ClipTokenizer *tok, const uint32_t *piece, size_t n, IdBuf *out, DiceError *err) {
    ClipWords w;
    DICE_TRY(clip_text_words(piece, n, &w, err));
    size_t longest = 0;
    for (size_t i = 0; i < w.n_words; i++)
        if (w.words[i].len > longest) longest = w.words[i].len;
    unsigned char *bytes = malloc(4 * longest + 1);
    int32_t *scratch = malloc((4 * longest + 1) * sizeof *scratch);
    int rc = bytes && scratch ? 0 : DICE_FAIL(err, "out of memory tokenizing a prompt");
    for (size_t i = 0; i < w.n_words && !rc; i++) {
        size_t nb = 0;
        for (uint32_t j = 0; j < w.words[i].len; j++) nb += (size_t)uc_utf8_encode(w.text[w.words[i].start + j], bytes + nb);
        rc = ids_reserve(out, nb, err);
        if (rc) break;
        int k = 0;
        clip_bpe_word(tok, bytes, nb, scratch, out->ids + out->n, &k);
        out->n += (size_t)k;
    }
    free(bytes), free(scratch);
    clip_words_free(&w);
    return rc;
}

// The first special token in s[0..n) (leftmost, the longest there): its index, *at its byte offset;
// -1 if there is none.
static int find_special(const ClipTokenizer *tok, const char *s, size_t n, size_t *at) {
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < tok->n_specials; k++) {  // specials are sorted longest first
            size_t len = strlen(tok->specials[k].text);
            if (len <= n - i && memcmp(s + i, tok->specials[k].text, len) == 0) {
                *at = i;
                return k;
            }
        }
    return -1;
}

static int tokenize(const ClipTokenizer *tok, const char *text, IdBuf *out, DiceError *err) {
    size_t n = strlen(text), n_cps;
    uint32_t *cps = malloc((n + 1) * sizeof *cps);
    DICE_CHECK(err, cps, "out of memory tokenizing a prompt of %zu bytes", n);
    if (uc_utf8_decode(text, n, cps, &n_cps, err)) {
        free(cps);
        dice_error_context(err, "prompt");
        return -1;
    }
    // Split on the special tokens (byte offsets; a match of a UTF-8 string starts and ends on
    // character boundaries), then clean up and encode each piece between them.
    size_t pos = 0, cp_pos = 0;
    int rc = 0;
    while (pos < n && !rc) {
        size_t at = n;
        int k = find_special(tok, text + pos, n - pos, &at);
        size_t end = k >= 0 ? pos + at : n, cp_end = cp_pos;
        for (size_t i = pos; i < end; i++) cp_end += ((unsigned char)text[i] & 0xC0) != 0x80;
        if (end > pos) rc = encode_piece(tok, cps + cp_pos, cp_end - cp_pos, out, err);
        if (k < 0 || rc) break;
        if (!(rc = ids_reserve(out, 1, err))) out->ids[out->n++] = tok->specials[k].id;
        size_t len = strlen(tok->specials[k].text);
        for (size_t i = end; i < end + len; i++) cp_end += ((unsigned char)text[i] & 0xC0) != 0x80;
        pos = end + len, cp_pos = cp_end;
    }
    free(cps);
    return rc;
}

int clip_tokenizer_tokenize(const ClipTokenizer *tok, const char *text, int32_t **ids, int *n, DiceError *err) {
    IdBuf out = {0};
    *ids = NULL, *n = 0;
    if (tokenize(tok, text, &out, err) || ids_reserve(&out, 1, err)) {
        free(out.ids);
        return -1;
    }
    DICE_CHECK(err, out.n <= INT32_MAX, "prompt too long");
    *ids = out.ids, *n = (int)out.n;
    return 0;
}

int clip_tokenizer_encode(const ClipTokenizer *tok, const char *text, int32_t *ids, int32_t *mask,
                          ClipTokenInfo *info, DiceError *err) {
    int32_t *prompt;
    int n;
    DICE_TRY(clip_tokenizer_tokenize(tok, text, &prompt, &n, err));
    int L = tok->max_length, kept = n < L - 2 ? n : L - 2;
    ids[0] = tok->bos_id;
    memcpy(ids + 1, prompt, (size_t)kept * sizeof *ids);
    ids[kept + 1] = tok->eos_id;
    for (int i = kept + 2; i < L; i++) ids[i] = tok->pad_id;
    free(prompt);
    if (mask)
        for (int i = 0; i < L; i++) mask[i] = i < kept + 2;
    if (info) {
        info->length = kept + 2;
        info->eos_index = 0;
        while (ids[info->eos_index] != tok->eos_id) info->eos_index++;
        info->n_prompt_tokens = n;
        info->n_truncated = n - kept;
    }
    return 0;
}
