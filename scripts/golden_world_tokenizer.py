#!/usr/bin/env python3
"""Golden ids of the embedded default's tokenizer (assets/dice-world/tokenizer) for tests/test_world_tokenizer.c:
tests/golden/world_tokenizer.json holds, for 50 captions of the world and 25 odd strings (unknown words,
punctuation, upper case, digits, white space, special tokens, non-ASCII, the empty string, text of more than 16
tokens), what transformers' slow CLIPTokenizer gives:
  "tokens":    tok(text, add_special_tokens=False)["input_ids"]   (no BOS / EOS, not truncated)
  "input_ids": tok(text, padding="max_length", max_length=16, truncation=True)["input_ids"]  (as diffusers calls it,
                 with the tokenizer's model_max_length)
  "length":    the number of ones in that call's attention_mask

Run by hand (never by make test) after scripts/make_world_tokenizer.py, with transformers < 5 and without ftfy:
    python3 scripts/golden_world_tokenizer.py
"""
import json
import os
import sys

from make_world_tokenizer import ROOT, TOKENIZER_DIR, world_captions

OUT = os.path.join(ROOT, "tests", "golden", "world_tokenizer.json")
N_CAPTIONS = 50

ODD = [
    "",
    "A RED CIRCLE LEFT OF A BLUE SQUARE ON A GREEN BACKGROUND.",
    "An Orange Triangle Above A Gray Diamond On A White Background",
    "a red circle, left of a blue square; on a green background!",
    "a crimson hexagon next to a teal star on a beige backdrop",
    "reddish greenery backgrounds squares circled diamonds",
    "an orange triangle above 2 gray diamonds on 1 white background",
    "1234567890 3.14 -42 1e10",
    "red-blue/green_yellow (purple) [white] {gray}",
    "  a   red\tcircle\n\nleft of\r\na blue square  ",
    "<|startoftext|>a red circle<|endoftext|>",
    "a red circle<|endoftext|>left of a blue square",
    "<|endoftext|>",
    "don't it's we're they'll I'd you've I'm",
    "café naïve résumé Ünïcödé",
    "🙂 a red circle ❤️",
    "中文 red 円",
    "redredredredredredredredredred",
    "abovebelowleftright",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!??? ... --- @#$%^&*",
    "aa bbb x y z q",
]


def long_texts(captions):
    return [
        " ".join(captions[:9]),               # 99 tokens: truncated to model_max_length - 2
        "word " * 100,                        # unknown word, 100 times: each in pieces
        ", ".join(f"shape{i}" for i in range(40)),
    ]


def main():
    import transformers
    from transformers import CLIPTokenizer

    if int(transformers.__version__.split(".")[0]) >= 5:
        sys.exit("needs transformers < 5 (the slow CLIPTokenizer, dice's reference)")
    try:
        import ftfy  # noqa: F401
        sys.exit("ftfy is installed: the reference is CLIPTokenizer without ftfy; use a venv without it")
    except ImportError:
        pass

    tok = CLIPTokenizer.from_pretrained(TOKENIZER_DIR)
    assert tok.fix_text is None
    captions = world_captions()
    step = len(captions) // N_CAPTIONS
    texts = [captions[(i * step + 7 * i) % len(captions)] for i in range(N_CAPTIONS)]
    texts += ODD + long_texts(captions)
    cases = []
    for t in texts:
        enc = tok(t, padding="max_length", max_length=tok.model_max_length, truncation=True)
        cases.append({"text": t, "tokens": tok(t, add_special_tokens=False)["input_ids"],
                      "input_ids": enc["input_ids"], "length": sum(enc["attention_mask"])})
    assert any(len(c["tokens"]) > tok.model_max_length - 2 for c in cases)
    head = {"reference": "transformers CLIPTokenizer (slow), no ftfy", "transformers": transformers.__version__,
            "tokenizer": "assets/dice-world/tokenizer", "n_vocab": len(tok.encoder),
            "max_length": tok.model_max_length, "bos_id": tok.bos_token_id, "eos_id": tok.eos_token_id,
            "pad_id": tok.pad_token_id}
    with open(OUT, "w", encoding="utf-8") as f:  # one case a line
        f.write("{\n" + "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in head.items()))
        f.write('  "cases": [\n' + ",\n".join("    " + json.dumps(c, ensure_ascii=False) for c in cases) + "\n  ]\n}\n")
    print(f"{OUT}: {len(cases)} cases ({N_CAPTIONS} captions), "
          f"{sum(len(c['tokens']) > tok.model_max_length - 2 for c in cases)} truncated")


if __name__ == "__main__":
    main()
