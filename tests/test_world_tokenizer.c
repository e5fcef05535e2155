// tests/test_world_tokenizer.c — the embedded default's tokenizer (assets/dice-world/tokenizer, written by
// scripts/make_world_tokenizer.py) read by dice's CLIP tokenizer (models/clip_tokenizer.h): exact ids and
// attention-mask lengths against transformers' CLIPTokenizer on 50 captions and 25 odd strings
// (tests/golden/world_tokenizer.json, scripts/golden_world_tokenizer.py), and every one of the world's
// WORLD_N_CAPTIONS captions (data/world.h) encoding to BOS + one token per word + EOS, then padding.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "data/world.h"
#include "models/clip_tokenizer.h"
#include "nn/file_util.h"
#include "nn/safetensors.h"  // st_printable
#include "test.h"

#define WORLD_TOKENIZER "assets/dice-world/tokenizer"
#define GOLDEN "tests/golden/world_tokenizer.json"

// The JSON integer list `list` equals ids[0..n).
static int ids_equal(const cJSON *list, const int32_t *ids, int n) {
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != n) return 0;
    int i = 0;
    for (const cJSON *v = list->child; v; v = v->next, i++)
        if (!cJSON_IsNumber(v) || v->valuedouble != (double)ids[i]) return 0;
    return 1;
}

static int header_int(const cJSON *root, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

DICE_TEST(world_tokenizer_golden_ids) {
    ClipTokenizer tok;
    CHECK_OK(clip_tokenizer_load(&tok, test_path(tc, WORLD_TOKENIZER), &tc->err));
    char *text;
    size_t len;
    CHECK_OK(dice_read_file(test_path(tc, GOLDEN), (size_t)1 << 20, &text, &len, &tc->err));
    cJSON *root = cJSON_Parse(text);
    free(text);
    CHECK_MSG(root, GOLDEN ": not valid JSON");
    CHECK(tok.n_vocab == header_int(root, "n_vocab") && tok.max_length == header_int(root, "max_length"));
    CHECK(tok.bos_id == header_int(root, "bos_id") && tok.eos_id == header_int(root, "eos_id"));
    CHECK(tok.pad_id == header_int(root, "pad_id") && tok.unk_id == tok.eos_id);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    CHECK(cJSON_GetArraySize(cases) == 75);
    int32_t *ids = malloc(sizeof *ids * (size_t)tok.max_length), *mask = malloc(sizeof *mask * (size_t)tok.max_length);
    int n_truncated = 0;
    for (const cJSON *c = cases->child; c; c = c->next) {
        const char *prompt = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
        char shown[96];
        st_printable(shown, sizeof shown, prompt);
        int32_t *tokens;
        int n;
        CHECK_OK(clip_tokenizer_tokenize(&tok, prompt, &tokens, &n, &tc->err));
        CHECK_MSG(ids_equal(cJSON_GetObjectItemCaseSensitive(c, "tokens"), tokens, n), "\"%s\": tokens differ", shown);
        free(tokens);
        ClipTokenInfo info;
        CHECK_OK(clip_tokenizer_encode(&tok, prompt, ids, mask, &info, &tc->err));
        CHECK_MSG(ids_equal(cJSON_GetObjectItemCaseSensitive(c, "input_ids"), ids, tok.max_length),
                  "\"%s\": input_ids differ", shown);
        int length = header_int(c, "length"), ones = 0;
        for (int i = 0; i < tok.max_length; i++) ones += mask[i] == (i < length);
        CHECK_MSG(info.length == length && ones == tok.max_length, "\"%s\": length %d, want %d", shown, info.length,
                  length);
        CHECK(info.n_prompt_tokens == n && info.n_truncated == (n > tok.max_length - 2 ? n - tok.max_length + 2 : 0));
        n_truncated += info.n_truncated > 0;
    }
    CHECK(n_truncated == 13);  // the 3 long texts and 10 odd strings of more than 14 tokens
    free(ids), free(mask);
    cJSON_Delete(root);
    clip_tokenizer_free(&tok);
}

// The id of `word` if the tokenizer makes it one token, else -1.
static int32_t single_token(TestCtx *tc, const ClipTokenizer *tok, const char *word) {
    int32_t *ids, id = -1;
    int n;
    if (clip_tokenizer_tokenize(tok, word, &ids, &n, &tc->err)) return -1;
    if (n == 1) id = ids[0];
    free(ids);
    return id;
}

DICE_TEST(world_tokenizer_every_caption_one_token_per_word) {
    ClipTokenizer tok;
    CHECK_OK(clip_tokenizer_load(&tok, test_path(tc, WORLD_TOKENIZER), &tc->err));
    const char *const *words;
    int n_words = world_vocabulary(&words);
    int32_t word_id[64];
    CHECK(n_words <= 64);
    for (int i = 0; i < n_words; i++) {
        word_id[i] = single_token(tc, &tok, words[i]);
        CHECK_MSG(word_id[i] >= 0 && word_id[i] != tok.unk_id, "\"%s\" is not one token", words[i]);
        for (int j = 0; j < i; j++) CHECK(word_id[j] != word_id[i]);
    }
    int32_t ids[16], mask[16];
    CHECK(tok.max_length == 16);
    char caption[WORLD_CAPTION_MAX], copy[WORLD_CAPTION_MAX];
    for (int index = 0; index < WORLD_N_CAPTIONS; index++) {
        WorldAttrs a;
        world_attrs_from_index(index, &a);
        CHECK(world_caption(&a, caption, sizeof caption) > 0);
        ClipTokenInfo info;
        CHECK_OK(clip_tokenizer_encode(&tok, caption, ids, mask, &info, &tc->err));
        strcpy(copy, caption);
        int k = 1;  // position of the next word's id: after BOS
        for (char *w = strtok(copy, " "); w; w = strtok(NULL, " "), k++) {
            int i = 0;
            while (i < n_words && strcmp(w, words[i])) i++;
            CHECK_MSG(i < n_words && ids[k] == word_id[i], "\"%s\": word %d (\"%s\") is not its single token",
                      caption, k, w);
        }
        CHECK_MSG(ids[0] == tok.bos_id && ids[k] == tok.eos_id && info.length == k + 1 && info.eos_index == k &&
                  info.n_truncated == 0, "\"%s\": not BOS + one token per word + EOS", caption);
        for (int j = 0; j < tok.max_length; j++) CHECK(mask[j] == (j <= k) && (j <= k || ids[j] == tok.pad_id));
    }
    clip_tokenizer_free(&tok);
}
