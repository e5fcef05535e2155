#!/usr/bin/env python3
"""scripts/golden_clip_encoder.py — writes tests/golden/clip_encoder/, the reference data for the CLIP text
encoder (models/clip_encoder.c), read by tests/test_clip_encoder.c.

transformers (any version with CLIPTextModel; run with the torch of the main python):
    python3 -m venv --system-site-packages /tmp/clipenc && /tmp/clipenc/bin/pip install transformers
    /tmp/clipenc/bin/python scripts/golden_clip_encoder.py
Run from the repository root. It writes two tiny random-weight models with save_pretrained, so dice loads them
exactly as a user's download, a tiny tokenizer folder, and the outputs:
  quick/      CLIPTextModel: hidden 32, 4 heads x 8, 2 layers, intermediate 64, quick_gelu, vocab 1000, fp32
              weights, eos_token_id 2 (SD1.5's config value: transformers pools at argmax(input_ids))
  gelu_proj/  CLIPTextModelWithProjection: hidden 48, 3 heads x 16, 3 layers, intermediate 96, gelu,
              projection 24, fp16 weights (as SDXL's text_encoder_2 ships), eos_token_id = the tokenizer's
              eos (transformers pools at the first eos_token_id)
  tokenizer/  a CLIP BPE tokenizer with the 512 byte symbols, merges for a few words and the two specials
  reference.safetensors, for each model M:
    M/input_ids (B, N) i32, M/hidden_states.{i} (B, N, C) for i = 0 .. layers (0 = the embeddings, i = after
    layer i, not through the final layer norm), M/last_hidden_state (after it), M/pooled (B, C),
    M/text_embeds (B, P) with a projection; M/w_last, M/w_penult, M/w_pooled, M/w_embeds: the weights of
    loss = sum(last_hidden_state * w_last) + sum(hidden_states[-2] * w_penult) + sum(pooled * w_pooled)
           [+ sum(text_embeds * w_embeds)]
    and M/grad_embeddings (B, N, C): d loss / d hidden_states[0] (the embedding output injected as an input);
    and, end to end from the prompts in metadata "prompts" (a JSON list): prompts/input_ids (n, 77) i32 (the
    tokenizer padded to 77 with its pad token), prompts/quick/last_hidden_state, prompts/gelu_proj/penultimate
    (hidden_states[-2]) and prompts/gelu_proj/text_embeds.
Model references are computed in fp32 from the stored weights (the fp16 ones rounded first).
"""
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import save_safetensors, torch_metadata  # noqa: E402

OUT = os.path.join("tests", "golden", "clip_encoder")
WORDS = ["a", "photo", "of", "cat", "dog", "red", "blue", "the", "on", "mat", "painting", "astronaut"]
PROMPTS = ["a photo of a cat", "A red dog on the mat!", "", "blue astronaut painting, 8k"]


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


def write_tokenizer(d):
    """CLIP's vocabulary layout (byte symbols, the same with </w>, merged symbols, <|startoftext|>, <|endoftext|>)
    with merges that build each of WORDS left to right; SD1.5's special tokens (pad <|endoftext|>)."""
    merges, seen = [], set()
    for w in WORDS:
        left = w[0]
        for k in range(1, len(w)):
            right = w[k] + ("</w>" if k == len(w) - 1 else "")
            if (left, right) not in seen:
                seen.add((left, right))
                merges.append((left, right))
            left = left + right
    vocab = bytes_to_unicode()
    vocab = vocab + [v + "</w>" for v in vocab] + [a + b for a, b in merges] + ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    config = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
              "unk_token": "<|endoftext|>", "do_lower_case": True, "errors": "replace", "model_max_length": 77,
              "tokenizer_class": "CLIPTokenizer", "add_prefix_space": False}
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    return len(vocab)


def randomise(model, gen):
    """Weights drawn so that every path matters: layer norms 1 + 0.1 N(0, 1), other weights N(0, 1) / sqrt(fan-in)
    (embeddings N(0, 1)), biases 0.1 N(0, 1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen)
            if "layer_norm" in name:
                p.copy_(1 + 0.1 * r if name.endswith("weight") else 0.1 * r)
            elif name.endswith("bias"):
                p.copy_(0.1 * r)
            elif "embedding" in name:
                p.copy_(r)
            else:
                p.copy_(r / p.shape[1] ** 0.5)


def run(model, ids, gen, tensors, prefix):
    """Records the outputs of model(ids) and the gradient of the weighted loss w.r.t. the embedding output."""
    text = model.text_model if hasattr(model, "text_model") else model
    emb = text.embeddings(input_ids=ids).detach().requires_grad_()
    hook = text.embeddings.register_forward_hook(lambda m, i, o: emb)
    out = model(input_ids=ids, output_hidden_states=True)
    hook.remove()
    hs = out.hidden_states
    assert len(hs) == model.config.num_hidden_layers + 1 and hs[0] is emb
    # transformers' pooled output (CLIPTextModelWithProjection does not return it: rerun its text model) must be
    # what the pooling rule of models/clip_encoder.h reads from last_hidden_state; the loss uses the latter,
    # which is connected to emb in both classes
    pooled = out.pooler_output if hasattr(out, "pooler_output") else text(input_ids=ids).pooler_output
    rule = ids.argmax(-1) if model.config.eos_token_id == 2 else (ids == model.config.eos_token_id).int().argmax(-1)
    pooled_from_last = out.last_hidden_state[torch.arange(ids.shape[0]), rule]
    assert torch.equal(pooled_from_last.detach(), pooled.detach())
    if hasattr(out, "text_embeds"):
        assert torch.allclose(model.text_projection(pooled), out.text_embeds)
    outs = {"last_hidden_state": out.last_hidden_state, "penult": hs[-2], "pooled": pooled_from_last}
    if hasattr(out, "text_embeds"):
        outs["text_embeds"] = out.text_embeds
    loss = 0
    for k, v in outs.items():
        w = torch.randn(v.shape, generator=gen)
        tensors[f"{prefix}/w_{k}"] = w
        loss = loss + (v * w).sum()
    loss.backward()
    tensors[f"{prefix}/input_ids"] = ids.to(torch.int32)
    for i, h in enumerate(hs):
        tensors[f"{prefix}/hidden_states.{i}"] = h.detach().clone()
    for k, v in outs.items():
        if k != "penult":
            tensors[f"{prefix}/{k}"] = v.detach().clone()
    tensors[f"{prefix}/grad_embeddings"] = emb.grad.clone()
    return out


def make_model(cls, cfg, dtype, gen, path):
    model = cls(CLIPTextConfig(**cfg)).eval()
    randomise(model, gen)
    if os.path.isdir(path):
        shutil.rmtree(path)
    model.to(dtype).save_pretrained(path)
    return model.float()  # the reference runs in fp32 on the stored (rounded) weights


def main():
    gen = torch.Generator().manual_seed(20240607)
    n_tok = write_tokenizer(os.path.join(OUT, "tokenizer"))
    bos, eos = n_tok - 2, n_tok - 1
    tok = CLIPTokenizer.from_pretrained(os.path.join(OUT, "tokenizer"))
    assert tok.bos_token_id == bos and tok.eos_token_id == eos
    common = dict(vocab_size=1000, max_position_embeddings=77, layer_norm_eps=1e-5, bos_token_id=0, pad_token_id=1)
    quick = make_model(CLIPTextModel, dict(common, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=4, hidden_act="quick_gelu", eos_token_id=2),
                       torch.float32, gen, os.path.join(OUT, "quick"))
    proj = make_model(CLIPTextModelWithProjection,
                      dict(common, hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=3,
                           hidden_act="gelu", projection_dim=24, eos_token_id=eos),
                      torch.float16, gen, os.path.join(OUT, "gelu_proj"))
    tensors = {}
    # quick: SD1.5-style rows padded with eos; row 1 holds an id above eos (an added token), where the legacy
    # argmax rule pools, not at the eos
    ids = torch.full((2, 77), eos, dtype=torch.long)
    ids[:, 0] = bos
    ids[0, 1:12] = torch.randint(0, bos, (11,), generator=gen)
    ids[1, 1:30] = torch.randint(0, bos, (29,), generator=gen)
    ids[1, 7] = 998
    run(quick, ids, gen, tensors, "quick")
    # gelu_proj: N = 20 < max_position_embeddings; row 0 padded with "!" (id 0, SDXL's second tokenizer),
    # row 1 with ids above eos before two eos, row 2 with no eos at all (pooled at position 0)
    ids = torch.zeros((3, 20), dtype=torch.long)
    ids[:, 0] = bos
    ids[0, 1:9] = torch.randint(0, bos, (8,), generator=gen)
    ids[0, 9] = eos
    ids[1, 1:20] = torch.randint(eos + 1, 1000, (19,), generator=gen)
    ids[1, 12] = eos
    ids[1, 15] = eos
    ids[2, 1:20] = torch.randint(1, bos, (19,), generator=gen)
    run(proj, ids, gen, tensors, "gelu_proj")
    # end to end from prompts
    ids = tok(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    tensors["prompts/input_ids"] = ids.to(torch.int32)
    with torch.no_grad():
        tensors["prompts/quick/last_hidden_state"] = quick(input_ids=ids).last_hidden_state.clone()
        out = proj(input_ids=ids, output_hidden_states=True)
        tensors["prompts/gelu_proj/penultimate"] = out.hidden_states[-2].clone()
        tensors["prompts/gelu_proj/text_embeds"] = out.text_embeds.clone()
    meta = torch_metadata()
    meta.update({"written_by": "scripts/golden_clip_encoder.py", "transformers_version": transformers.__version__,
                 "prompts": json.dumps(PROMPTS)})
    path = os.path.join(OUT, "reference.safetensors")
    save_safetensors(path, {k: v.contiguous() for k, v in tensors.items()}, meta)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT} ({total} bytes) with torch {torch.__version__}, transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
