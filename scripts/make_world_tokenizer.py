#!/usr/bin/env python3
"""Writes the tokenizer of dice's embedded default model (assets/dice-world/tokenizer/) and the vocabulary-
dependent fields of its text encoder config (assets/dice-world/text_encoder/config.json).

Run by hand (never by make test), with transformers < 5 (its slow CLIPTokenizer is dice's reference) and without
ftfy:
    python3 scripts/make_world_tokenizer.py

The tokenizer is a CLIP BPE tokenizer in transformers' CLIPTokenizer file format (vocab.json, merges.txt,
tokenizer_config.json, special_tokens_map.json, written by CLIPTokenizer.save_pretrained):
  - vocab.json as CLIP orders it: the 256 byte symbols (GPT-2's bytes_to_unicode, in code point order), the same
    with "</w>", one entry per merge (the merged symbol), then <|startoftext|> and <|endoftext|>. Any text
    tokenizes: a word the merges do not build falls back to smaller pieces, at worst its bytes;
  - merges.txt: for every word of the synthetic world's grammar (data/world.c), in the order of its VOCABULARY
    list, BPE is run with the merges so far; the pieces left are then joined left to right by new merges
    (((p0 p1) p2) ...), each merge listed once. Merges later in the file never apply to an earlier word (its BPE
    ends in one symbol before their ranks are reached), so every grammar word is exactly one token, word + "</w>";
  - model_max_length 16 (MAX_LENGTH), bos <|startoftext|>, eos, unk and pad <|endoftext|> (as SD1.5's tokenizer,
    whose 77 positions would be 62 padding tokens here: cross-attention starts as a near-uniform average over the
    tokens, so with 77 a caption's words moved the UNet's noise prediction by 0.1-0.4% after 500 training steps
    and the model learnt the prompt far more slowly).
The script checks with transformers that every vocabulary word is one token and that all 21,504 captions of the
world (generated as data/world.c does) tokenize to BOS + one token per word + EOS, within MAX_LENGTH.

text_encoder/config.json is CLIPTextConfig (written by transformers) with the embedded default's sizes: hidden
128, intermediate 512, 4 layers of 4 heads, MAX_LENGTH positions, quick_gelu, projection_dim 128, vocab_size and the
bos / eos / pad ids of this tokenizer.
"""
import json
import os
import re
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORLD_C = os.path.join(ROOT, "data", "world.c")
ASSET = os.path.join(ROOT, "assets", "dice-world")
TOKENIZER_DIR = os.path.join(ASSET, "tokenizer")
TEXT_ENCODER_DIR = os.path.join(ASSET, "text_encoder")
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 16  # the longest caption is 12 words: BOS + 12 + EOS = 14 tokens

# ---------------------------------------------------------------- the world's grammar (data/world.c)


def c_string_list(source, name):
    """The string literals of the C array `name` in data/world.c."""
    m = re.search(r"\b" + re.escape(name) + r"\s*\[[^\]]*\]\s*=\s*\{(.*?)\};", source, re.S)
    if not m:
        raise SystemExit(f"{WORLD_C}: no array {name}")
    return re.findall(r'"([^"]*)"', m.group(1))


def world_lists():
    """(colours, shapes, relations, vocabulary) as data/world.c spells them."""
    with open(WORLD_C, encoding="utf-8") as f:
        src = f.read()
    lists = [c_string_list(src, n) for n in ("world_colour_names", "world_shape_names", "world_relation_names",
                                             "VOCABULARY")]
    colours, shapes, relations, vocabulary = lists
    assert (len(colours), len(shapes), len(relations)) == (8, 4, 4), lists
    return colours, shapes, relations, vocabulary


def world_captions():
    """All captions in world_attrs_from_index order (data/world.c: world_attrs_from_index, world_caption)."""
    colours, shapes, relations, _ = world_lists()
    n_c, n_s, n_r = len(colours), len(shapes), len(relations)

    def article(c):
        return "an" if colours[c][0] == "o" else "a"

    def skipping(k, skip):
        return [c for c in range(n_c) if c not in skip][k]

    out = []
    for index in range(n_c * (n_c - 1) * (n_c - 2) * n_s * n_s * n_r):
        i = index
        rel = i % n_r
        i //= n_r
        s1 = i % n_s
        i //= n_s
        s0 = i % n_s
        i //= n_s
        bg, k0, k1 = i // 42, (i % 42) // 6, i % 6
        c0 = skipping(k0, [bg])
        c1 = skipping(k1, [bg, c0])
        out.append(f"{article(c0)} {colours[c0]} {shapes[s0]} {relations[rel]} {article(c1)} {colours[c1]} "
                   f"{shapes[s1]} on {article(bg)} {colours[bg]} background")
    return out


# ---------------------------------------------------------------- BPE


def bytes_to_unicode():
    """GPT-2's byte -> character map, in byte order of its printable-first list (= code point order of values)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def word_symbols(word, byte_char):
    syms = [byte_char[b] for b in word.encode("utf-8")]
    syms[-1] += "</w>"
    return syms


def bpe(syms, ranks):
    """CLIPTokenizer.bpe on a symbol list: merge the lowest-ranked adjacent pair (all its occurrences, left to
    right) until no pair has a rank."""
    syms = list(syms)
    while len(syms) > 1:
        pairs = {(a, b) for a, b in zip(syms, syms[1:])}
        best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks:
            break
        out, i = [], 0
        while i < len(syms):
            if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                out.append(syms[i] + syms[i + 1])
                i += 2
            else:
                out.append(syms[i])
                i += 1
        syms = out
    return syms


def build_merges(words, byte_char):
    merges, ranks = [], {}
    for word in words:
        pieces = bpe(word_symbols(word, byte_char), ranks)
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            assert pair not in ranks, (word, pair)
            ranks[pair] = len(merges)
            merges.append(pair)
            pieces = [pieces[0] + pieces[1]] + pieces[2:]
        assert bpe(word_symbols(word, byte_char), ranks) == [word + "</w>"], word
    return merges


def build_vocab(merges, byte_char):
    base = sorted(byte_char.values())
    tokens = base + [c + "</w>" for c in base] + [a + b for a, b in merges] + [BOS, EOS]
    assert len(set(tokens)) == len(tokens), "a merge builds a symbol twice"
    return {t: i for i, t in enumerate(tokens)}


# ---------------------------------------------------------------- main


def check(tok, vocabulary, captions):
    for w in vocabulary:
        ids = tok(w, add_special_tokens=False)["input_ids"]
        assert ids == [tok.convert_tokens_to_ids(w + "</w>")], (w, ids)
    for c in captions:
        ids = tok(c)["input_ids"]
        want = [tok.bos_token_id] + [tok.convert_tokens_to_ids(w + "</w>") for w in c.split()] + [tok.eos_token_id]
        assert ids == want and len(ids) <= MAX_LENGTH, (c, ids, want)
    for text in ("reddish! zebra QUIZ 42 café", "a", "backgrounds"):  # other text: smaller pieces, never unk
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids and tok.decode(ids).replace(" ", "") == text.lower().replace(" ", ""), (text, ids)


def main():
    import transformers
    from transformers import CLIPTextConfig, CLIPTokenizer

    if int(transformers.__version__.split(".")[0]) >= 5:
        sys.exit("needs transformers < 5 (the slow CLIPTokenizer, dice's reference)")
    try:
        import ftfy  # noqa: F401
        sys.exit("ftfy is installed: the reference is CLIPTokenizer without ftfy; use a venv without it")
    except ImportError:
        pass

    _, _, _, vocabulary = world_lists()
    byte_char = bytes_to_unicode()
    merges = build_merges(vocabulary, byte_char)
    vocab = build_vocab(merges, byte_char)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt")
        with open(vocab_file, "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False)
        with open(merges_file, "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
        tok = CLIPTokenizer(vocab_file, merges_file, bos_token=BOS, eos_token=EOS, unk_token=EOS, pad_token=EOS,
                            model_max_length=MAX_LENGTH)
        os.makedirs(TOKENIZER_DIR, exist_ok=True)
        tok.save_pretrained(TOKENIZER_DIR)
    for name in os.listdir(TOKENIZER_DIR):  # save_pretrained writes added_tokens.json only when there are some
        assert name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"), name
    tok = CLIPTokenizer.from_pretrained(TOKENIZER_DIR)
    assert tok.fix_text is None and len(tok.encoder) == len(vocab) and tok.model_max_length == MAX_LENGTH
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (vocab[BOS], vocab[EOS], vocab[EOS])
    captions = world_captions()
    assert len(captions) == 21504
    check(tok, vocabulary, captions)

    cfg = CLIPTextConfig(vocab_size=len(vocab), hidden_size=128, intermediate_size=512, projection_dim=128,
                         num_hidden_layers=4, num_attention_heads=4, max_position_embeddings=MAX_LENGTH,
                         hidden_act="quick_gelu", bos_token_id=vocab[BOS], eos_token_id=vocab[EOS],
                         pad_token_id=vocab[EOS], architectures=["CLIPTextModel"])
    os.makedirs(TEXT_ENCODER_DIR, exist_ok=True)
    cfg.to_json_file(os.path.join(TEXT_ENCODER_DIR, "config.json"))  # as save_pretrained writes it
    print(f"{TOKENIZER_DIR}: {len(vocab)} tokens, {len(merges)} merges; {len(vocabulary)} grammar words and "
          f"{len(captions)} captions checked; {TEXT_ENCODER_DIR}/config.json written")


if __name__ == "__main__":
    main()
