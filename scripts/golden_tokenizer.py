#!/usr/bin/env python3
"""scripts/golden_tokenizer.py — writes tests/golden/clip_tokenizer/, the reference data for the CLIP
tokenizer (models/clip_tokenizer.c), read by tests/test_clip_tokenizer.c.

The reference is transformers' slow CLIPTokenizer on an install without ftfy, which is what diffusers
users get (diffusers does not depend on ftfy; transformers 5 no longer has the slow class):
    python3 -m venv /tmp/tok && /tmp/tok/bin/pip install "transformers<5" regex safetensors numpy
The real CLIP vocabulary comes from open_clip's bpe_simple_vocab_16e6.txt.gz (on PyPI, no need to
install open_clip and torch; pass --bpe):
    pip download --no-deps open_clip_torch && unzip -j open_clip_torch-*.whl open_clip/bpe_simple_vocab_16e6.txt.gz
    /tmp/tok/bin/python scripts/golden_tokenizer.py --bpe bpe_simple_vocab_16e6.txt.gz
Run from the repository root. It writes
  merges.txt                 the first 48,894 merges with the "#version: 0.2" header: byte for byte the
                             merges.txt of openai/clip-vit-large-patch14 (SD1.5's tokenizer/)
  tokenizer_config.json, special_tokens_map.json   SD1.5's (pad "<|endoftext|>")
  prompts.json               the prompts: hand-written edge cases, seeded random ones, a seeded sample of
                             COCO captions (--coco, default /work/shared/data/coco_val2017_5k.json)
  ids.safetensors            U16 "tokens" + I32 "offsets": every prompt's ids without BOS/EOS, untruncated
                             (tokenizer(p, add_special_tokens=False)); U16 "padded_ids" (M, 77) + U8
                             "padded_mask" for the prompts in I32 "padded_index", as diffusers calls the
                             tokenizer (padding="max_length", max_length=77, truncation=True); the same
                             for the SDXL-style second tokenizer (pad "!") in "bang_*"
vocab.json is not committed: it is the 512 byte symbols, the merges joined and the two special tokens,
in that order, which the C test rebuilds from merges.txt (this script builds it the same way and checks
that transformers loads it). NUL is left out of prompts (C strings end there).
"""
import argparse
import gzip
import json
import os
import random
import shutil
import tempfile

import numpy as np
from safetensors.numpy import save_file

OUT = os.path.join("tests", "golden", "clip_tokenizer")
N_MERGES = 49152 - 256 - 2


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def token(content):
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def write_folder(d, merges_text, pad):
    """A tokenizer folder as in SD1.5 (pad "<|endoftext|>") or SDXL's tokenizer_2 (pad "!")."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write(merges_text)
    merges = merges_text.split("\n")[1:N_MERGES + 1]
    vocab = bytes_to_unicode()
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    specials = {"bos_token": token("<|startoftext|>"), "eos_token": token("<|endoftext|>"), "pad_token": pad,
                "unk_token": token("<|endoftext|>")}
    with open(os.path.join(d, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump(specials, f, indent=2)
        f.write("\n")
    config = {"add_prefix_space": False, "bos_token": dict(__type="AddedToken", **token("<|startoftext|>")),
              "do_lower_case": True, "eos_token": dict(__type="AddedToken", **token("<|endoftext|>")),
              "errors": "replace", "model_max_length": 77, "name_or_path": "openai/clip-vit-large-patch14",
              "pad_token": pad, "special_tokens_map_file": "./special_tokens_map.json",
              "tokenizer_class": "CLIPTokenizer", "unk_token": dict(__type="AddedToken", **token("<|endoftext|>"))}
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------- prompts

HAND = [
    "", " ", "   ", "\t", "\n", "\r\n", " \t\n\r\u00a0\u3000\u2028\u2029 ", "a", "A", ".", "!", "!!", "!!!", "?!",
    "a photo of a cat", "A Photo Of A Cat", "A PHOTO OF A CAT", "a photo of a cat!", "wow!! so cool!!!",
    "astronaut riding a horse on mars, highly detailed, 8k, trending on artstation",
    "(masterpiece:1.2), best quality, ((ultra-detailed)), [cat|dog], {red, blue}, <lora:foo:0.8>",
    "portrait of a woman, by Greg Rutkowski and Alphonse Mucha, oil on canvas --ar 16:9 --v 5",
    "don't", "DON'T", "it's", "It'S", "we're", "they've", "I'm", "you'll", "he'd", "'s", "''s", "'''", "l'homme",
    "rock 'n' roll", "the dog's bone's", "'tis", "o'clock", "'sun", "'ſ", "x'ſtar", "ſ", "'ST", "'Re", "'LL",
    "don\u2019t", "\u2018quoted\u2019 \u201cdouble\u201d",
    "123", "1234567890", "3.14159", "1,000,000", "-42", "+7", "1e10", "0x1F", "v1.5", "2024-01-01", "12:30pm",
    "½ ¼ ¾", "x² + y³", "Ⅻ Ⅳ ⅷ", "٣٤٥", "१२३", "௧௨", "①②③", "🔟", "𝟙𝟚𝟛", "一二三", "〇",
    "café", "cafe\u0301", "naïve", "nai\u0308ve", "Crème Brûlée", "CRÈME BRÛLÉE", "résumé", "Ångström", "A\u030angstro\u0308m",
    "ñandú", "São Paulo", "Zürich", "ÆØÅ æøå", "Œuvre", "ł ż ś ć", "Dvořák", "Ελληνικά", "ΣΊΣΥΦΟΣ", "ΟΔΥΣΣΕΥΣ",
    "Σ", "ΑΣ", "ΑΣ.", "Α.Σ", "ΣΑ", "ΑΣ'Α", "ΑΣ\u0301", "ς σ Σ", "İstanbul", "ISTANBUL ıi", "Straße", "STRASSE ẞ",
    "ﬁne ﬂower ﬀ", "Ǆ ǅ ǆ", "ǰ", "ᾂ", "ΐ", "\u0344", "\u0345", "a\u0345b", "ω\u0345", "Ω\u0345", "K Å Ω",
    "Привет мир", "ПРИВЕТ", "Ёлка", "Україна", "Բարեւ", "ქართული", "עברית", "שָׁלוֹם", "مرحبا بالعالم", "العَرَبِيَّة",
    "हिन्दी", "বাংলা", "தமிழ்", "ภาษาไทย", "ພາສາລາວ", "မြန်မာ", "ខ្មែរ", "བོད་ཡིག", "ᐃᓄᒃᑎᑐᑦ", "ꦗꦮ",
    "中文", "中文字", "我爱北京天安门", "漢字かな交じり文", "ひらがな カタカナ", "ｶﾀｶﾅ", "한국어", "한국어 문장입니다",
    "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af", "가\u11a8", "\u4e00\u4e01abc\u4e02", "a中b", "中1文",
    "𠀀𠀁", "\U0002A700", "\U0002B740", "\U0002B820", "\U0002F800", "丽", "\uf900\ufa00", "\u3400\u4dbf",
    "😀", "😀😃😄", "👍🏽", "👨\u200d👩\u200d👧\u200d👦", "🏳\ufe0f\u200d🌈", "🇺🇸🇯🇵", "❤️", "☕ and 🍩", "🫠", "🫨",
    "a\u200bb", "a\u200cb", "a\u200db", "soft\u00adhyphen", "\ufeffbom", "a\ufffdb", "\ufffd", "a\x01b", "a\x7fb", "\x85x",
    "a\u2028b", "a\u2029b", "a\u00a0b", "a\u3000b", "a\u2003b", "a\x0bb\x0cc", "a\x1cb\x1dc\x1ed\x1fe",
    "line one\nline two\n\nline three", "tab\tseparated\tvalues", "  leading and trailing  ", "multiple     spaces",
    "https://example.com/path?query=1&b=2#frag", "www.example.org", "user@example.com", "C:\\Users\\x\\file.png",
    "&amp; &lt;tag&gt; &#39;", "<b>bold</b>", "**markdown** _it_ `code`", "#hashtag @mention $100 50% ^_^ ~tilde~",
    "...", "…", "—", "--", "-_-", "!?!?", "???", ";;;", "(((a)))", "[[[b]]]", "{{{c}}}", "<<<>>>", "|||", "///",
    "<|startoftext|>", "<|endoftext|>", "<|startoftext|>a cat<|endoftext|>", "a<|endoftext|>b", "!!<|endoftext|>",
    "<|ENDOFTEXT|>", "<|EndOfText|>", "<|endoftext|", "|endoftext|>", "<|end of text|>", "<|ſtartoftext|>",
    "<|endoftext|><|endoftext|><|endoftext|>", "< |endoftext|>", "x<|startoftext|>y<|endoftext|>z",
    "<|start\u200boftext|>", "<|\u00adendoftext|>", "'<|endoftext|>'s",
    "\u00e9\u0301", "e\u0301\u0301", "a\u0316\u0300", "a\u0300\u0316", "\u0300", "\u0300a", "q\u0307\u0323", "ḍ\u0307",
    "\U0001D400\U0001D401", "ＡＢＣ ａｂｃ", "Ⓐⓑ", "℃ ℉ ™ ©", "∑∫√∞", "→ ← ↑ ↓", "♠♣♥♦", "★☆", "░▒▓", "⠓⠑⠇⠇⠕",
    "\ue000\uf8ff", "\U000F0000", "\u0378", "\U0001FFFF", "\U0010FFFF", "\U000E0001", "\U000E0041",
    "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "HeLLo WoRLD", "camelCaseWord", "snake_case_word", "kebab-case-word", "SCREAMING_SNAKE",
]


def long_prompts():
    base = "a highly detailed digital painting of a majestic castle on a cliff at sunset, dramatic lighting, "
    out = [base * k for k in (2, 3, 5, 8)]
    out.append(", ".join(f"tag{i}" for i in range(120)))
    out.append(" ".join(str(i) for i in range(200)))
    out.append("!" * 200)
    out.append("word " * 80)
    out.append("😀" * 50)
    out.append("中" * 100)
    out.append("a" * 1000)
    out.append("<|endoftext|>" * 90)
    return out


WORDS = ("a an the of in on at with by and or photo painting portrait landscape cat dog horse castle city "
         "forest river mountain sunset night sky blue red green golden dark bright tiny huge old young woman man "
         "child robot dragon astronaut car train ship flower tree house street market rainy snowy cinematic "
         "lighting detailed realistic anime style watercolor oil sketch 3d render octane unreal engine 4k 8k hdr "
         "trending artstation bokeh wide angle close-up macro").split()
PUNCT = list(".,;:!?'\"()[]{}<>-_/\\|@#$%^&*+=~`") + ["...", "!!", "?!", "--", "'s", "'t", "n't", "’", "“", "”", "…"]
BLOCKS = [(0x20, 0x7E), (0xA0, 0xFF), (0x100, 0x24F), (0x250, 0x2FF), (0x300, 0x36F), (0x370, 0x3FF),
          (0x400, 0x4FF), (0x530, 0x58F), (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F),
          (0x1100, 0x11FF), (0x1E00, 0x1EFF), (0x1F00, 0x1FFF), (0x2000, 0x206F), (0x2070, 0x209F),
          (0x20A0, 0x20CF), (0x2100, 0x214F), (0x2150, 0x218F), (0x2190, 0x21FF), (0x2200, 0x22FF),
          (0x2460, 0x24FF), (0x2500, 0x257F), (0x2600, 0x26FF), (0x3000, 0x303F), (0x3040, 0x309F),
          (0x30A0, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xF900, 0xFAFF),
          (0xFB00, 0xFB4F), (0xFE00, 0xFE0F), (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF), (0x1F300, 0x1F5FF),
          (0x1F600, 0x1F64F), (0x1F900, 0x1F9FF), (0x1FA70, 0x1FAFF), (0x20000, 0x2A6DF), (0xE0000, 0xE007F)]
SPACES = [" ", " ", " ", " ", "  ", "\t", "\n", "\u00a0", "\u3000", "\r\n"]


def random_char(rng):
    if rng.random() < 0.1:
        while True:
            cp = rng.randrange(1, 0x110000)
            if not 0xD800 <= cp < 0xE000:
                return chr(cp)
    lo, hi = rng.choice(BLOCKS)
    return chr(rng.randint(lo, hi))


def random_prompt(rng):
    kind = rng.random()
    parts = []
    n = rng.choice([1, 2, 3, 4, 6, 8, 12, 16, 24]) if rng.random() < 0.97 else rng.randint(40, 80)
    for _ in range(n):
        r = rng.random()
        if kind < 0.4:      # mostly words: prompt-like
            piece = rng.choice(WORDS) if r < 0.8 else rng.choice(PUNCT) if r < 0.9 else str(rng.randint(0, 10**rng.randint(1, 6)))
        elif kind < 0.7:    # words mixed with unicode
            piece = rng.choice(WORDS) if r < 0.5 else "".join(random_char(rng) for _ in range(rng.randint(1, 4)))
        else:               # unicode soup
            piece = "".join(random_char(rng) for _ in range(rng.randint(1, 6))) if r < 0.8 else rng.choice(PUNCT)
        if rng.random() < 0.15:
            piece = piece.upper()
        elif rng.random() < 0.1:
            piece = piece.title()
        parts.append(piece)
        parts.append(rng.choice(SPACES) if rng.random() < 0.85 else "")
    s = "".join(parts)
    if rng.random() < 0.05:
        s = s.replace(" ", rng.choice(["<|endoftext|>", "!", "<|startoftext|>", "'s "]), rng.randint(1, 3))
    return s.replace("\0", "")


def make_prompts(coco_path, n_coco, n_random, seed):
    rng = random.Random(seed)
    prompts = HAND + long_prompts() + [random_prompt(rng) for _ in range(n_random)]
    if coco_path and n_coco:
        with open(coco_path, encoding="utf-8") as f:
            coco = json.load(f)
        coco = [coco[k] for k in sorted(coco, key=int)] if isinstance(coco, dict) else list(coco)
        prompts += rng.sample(coco, min(n_coco, len(coco)))
    assert all("\0" not in p for p in prompts)
    return prompts


# ---------------------------------------------------------------- main


def padded(tok, prompts):
    enc = tok(prompts, padding="max_length", max_length=77, truncation=True)
    return np.array(enc["input_ids"], dtype=np.uint16), np.array(enc["attention_mask"], dtype=np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bpe", required=True, help="open_clip's bpe_simple_vocab_16e6.txt.gz")
    ap.add_argument("--coco", default="/work/shared/data/coco_val2017_5k.json")
    ap.add_argument("--coco-count", type=int, default=1000, help="COCO captions to sample (0: none)")
    ap.add_argument("--random", type=int, default=2000, help="number of seeded random prompts")
    ap.add_argument("--seed", type=int, default=20240501)
    args = ap.parse_args()

    import transformers
    from transformers import CLIPTokenizer, CLIPTokenizerFast
    assert int(transformers.__version__.split(".")[0]) < 5, "needs transformers < 5 (the slow CLIPTokenizer)"
    try:
        import ftfy  # noqa: F401
        raise SystemExit("ftfy is installed: the reference is CLIPTokenizer without ftfy; use a venv without it")
    except ImportError:
        pass

    lines = gzip.open(args.bpe).read().decode("utf-8").split("\n")
    merges_text = "#version: 0.2\n" + "\n".join(lines[1:N_MERGES + 1]) + "\n"
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        write_folder(os.path.join(tmp, "eos"), merges_text, "<|endoftext|>")
        write_folder(os.path.join(tmp, "bang"), merges_text, "!")
        for name in ("merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(os.path.join(tmp, "eos", name), os.path.join(OUT, name))
        tok = CLIPTokenizer.from_pretrained(os.path.join(tmp, "eos"))
        bang = CLIPTokenizer.from_pretrained(os.path.join(tmp, "bang"))
        fast = CLIPTokenizerFast.from_pretrained(os.path.join(tmp, "eos"), from_slow=True)
    assert tok.fix_text is None and len(tok.encoder) == 49408 and tok.pad_token_id == 49407 and bang.pad_token_id == 0

    prompts = make_prompts(args.coco, args.coco_count, args.random, args.seed)
    with open(os.path.join(OUT, "prompts.json"), "w", encoding="utf-8") as f:
        json.dump(prompts, f, ensure_ascii=False, indent=0)
        f.write("\n")

    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    offsets = np.cumsum([0] + [len(x) for x in ids]).astype(np.int32)
    tokens = np.array([t for x in ids for t in x], dtype=np.uint16)
    # Padded rows: every prompt that is truncated or holds a special token, and a sample of the rest.
    rng = random.Random(args.seed + 1)
    n_fixed = len(HAND) + len(long_prompts())
    eos_sel = [i for i, p in enumerate(prompts)
               if i < n_fixed or "<|" in p or rng.random() < (0.25 if len(ids[i]) > 75 else 0.01)]
    bang_sel = [i for i, p in enumerate(prompts) if "!" in p or rng.random() < 0.01]
    eos_ids, eos_mask = padded(tok, [prompts[i] for i in eos_sel])
    bang_ids, bang_mask = padded(bang, [prompts[i] for i in bang_sel])
    save_file({"tokens": tokens, "offsets": offsets,
               "padded_index": np.array(eos_sel, dtype=np.int32), "padded_ids": eos_ids, "padded_mask": eos_mask,
               "bang_index": np.array(bang_sel, dtype=np.int32), "bang_ids": bang_ids, "bang_mask": bang_mask},
              os.path.join(OUT, "ids.safetensors"),
              metadata={"transformers": transformers.__version__, "reference": "CLIPTokenizer (slow), no ftfy"})

    n_fast = sum(fast(p, add_special_tokens=False)["input_ids"] != ids[i] for i, p in enumerate(prompts))
    n_bang = sum(bang(p, add_special_tokens=False)["input_ids"] != ids[i] for i, p in enumerate(prompts))
    print(f"{OUT}: {len(prompts)} prompts ({len(HAND)} hand-written, {args.random} random), {len(tokens)} ids, "
          f"{len(eos_sel)} + {len(bang_sel)} padded rows; {sum(len(x) > 75 for x in ids)} truncated; "
          f"CLIPTokenizerFast differs on {n_fast}, the pad-\"!\" tokenizer on {n_bang}")


if __name__ == "__main__":
    main()
