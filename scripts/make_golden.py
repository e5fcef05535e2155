#!/usr/bin/env python3
"""scripts/make_golden.py — writes the reference data in tests/golden/ with PyTorch (and, for later
sections, diffusers and transformers). One function per section; `--only NAME` runs one section.
Run from the repository root: `python3 scripts/make_golden.py [--only rng]`. The outputs are committed,
so the C tests need no Python. Every file records the torch version that produced it.

Sections:
  rng   tests/golden/torch_randn.safetensors: torch.randn / torch.rand on CPU generators, read by
        tests/test_torch_rng.c, which requires bitwise equality with nn/torch_rng.c.
  composite tests/golden/composite.safetensors: group norm + SiLU, conv3x3, self- and cross-attention
        with linear projections, a forward pass and the gradients with respect to the image and the
        context, read by tests/test_composite.c.
  sharpener tests/golden/sharpener/{sharpener,io}.safetensors: the DICE sharpener (authors' layout and
        names) at d_e 48, hidden 64, 8 heads: c_phi for two alphas and the parameter gradients, read by
        tests/test_sharpener.c.
  adamw tests/golden/adamw.safetensors: torch.optim.AdamW (single-tensor implementation) on two
        parameters for 6 steps with given gradients, read by tests/test_adamw.c.
"""
import argparse
import json
import os
import struct
import sys

import torch
from safetensors import safe_open

GOLDEN = os.path.join("tests", "golden")


ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
             torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}


def save_safetensors(path, tensors, metadata):
    """Writes a safetensors file deterministically (tensors in insertion order, JSON keys sorted, so a
    rerun gives the same bytes; the safetensors package orders metadata by hash) and reads it back with
    the safetensors package to check it."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        data = bytes(t.detach().cpu().contiguous().clone().untyped_storage())
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(path + ".tmp", path)
    with safe_open(path, framework="pt") as f:
        assert f.metadata() == metadata
        for name, t in tensors.items():
            assert torch.equal(f.get_tensor(name), t), name


def torch_metadata():
    return {
        "torch_version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "written_by": "scripts/make_golden.py",
    }


def make_rng():
    """Cases of one seeded generator and a sequence of draws on it.

    Tensor "caseNN/K" is draw K of case NN (its numel and dtype are the draw's); metadata "caseNN.seed"
    is the decimal seed and "caseNN/K" the op ("randn" or "rand"). Case NN starts from
    torch.Generator().manual_seed(seed), or from torch.manual_seed(seed) and the default generator when
    metadata "caseNN.api" is "manual_seed" (the same generator type: both must match).
    """
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        sys.exit(f"make_golden rng: torch's CPU capability is {capability}; nn/torch_rng.c reproduces the "
                 "x86-64 AVX2/AVX512 kernels, so generate this file on such a machine")
    ops = {"randn": torch.randn, "rand": torch.rand}
    tensors, meta = {}, torch_metadata()
    cases = []
    # one draw per fresh generator: seeds including one above 2^32 (only its low 32 bits seed mt19937)
    # and one above 2^63; sizes around the 16-element chunking of the vectorised path
    for seed in (0, 42, 1234, 2**32 + 5, 0xDEADBEEFCAFEF00D):
        for shape in ((1,), (7,), (15,), (16,), (17,), (33,), (2, 4, 8, 8)):
            cases.append((seed, "generator", [("randn", shape, torch.float32)]))
    # a latent of SD-like shape, through the global generator as `torch.manual_seed(s); torch.randn(...)`
    cases.append((42, "manual_seed", [("randn", (1, 4, 64, 64), torch.float32)]))
    # consecutive draws: the cached second normal of the small-size path survives a large draw
    cases.append((7, "generator", [("randn", (7,), torch.float32), ("randn", (33,), torch.float32),
                                    ("randn", (3,), torch.float32), ("randn", (16,), torch.float32),
                                    ("randn", (5,), torch.float32), ("rand", (10,), torch.float32),
                                    ("randn", (1,), torch.float32), ("randn", (700,), torch.float32)]))
    # half precision: computed in float32, chunk by chunk (a different tail than float32)
    for dtype in (torch.float16, torch.bfloat16):
        cases.append((42, "generator", [("randn", (7,), dtype), ("randn", (33,), dtype),
                                         ("randn", (2, 4, 8, 8), dtype)]))
    # rand: float32, and half types often enough that rounding up to 1.0 (mapped to 0) happens
    cases.append((3, "generator", [("rand", (100,), torch.float32), ("rand", (16384,), torch.float16),
                                   ("rand", (2000,), torch.bfloat16)]))

    for c, (seed, api, draws) in enumerate(cases):
        name = f"case{c:02d}"
        meta[f"{name}.seed"] = str(seed)
        meta[f"{name}.api"] = api
        if api == "manual_seed":
            torch.manual_seed(seed)
            gen = None
        else:
            gen = torch.Generator().manual_seed(seed)
        for k, (op, shape, dtype) in enumerate(draws):
            out = ops[op](shape, generator=gen, dtype=dtype)
            if op == "rand" and dtype != torch.float32:
                # the data must exercise the 1.0 -> 0.0 mapping (zeros from a zero uniform are 2^-24 rare)
                assert (out == 0).sum() > 0, f"{name}/{k}: no zero in rand {dtype}; make the draw larger"
            tensors[f"{name}/{k}"] = out.contiguous()
            meta[f"{name}/{k}"] = op
    path = os.path.join(GOLDEN, "torch_randn.safetensors")
    save_safetensors(path, tensors, meta)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(cases)} cases) with torch {torch.__version__}, "
          f"CPU capability {capability}")


def make_adamw():
    """Two fp32 parameters (a ragged 7x13 matrix and a 5-vector) updated 6 times by AdamW with the DICE
    settings except a larger lr (so the steps are visible in fp32): lr 1e-2, betas (0.9, 0.999),
    eps 1e-8, weight decay 1e-2. Tensors: p{i}/init, p{i}/grad{k}, p{i}/after{k} (k = 1..6)."""
    gen = torch.Generator().manual_seed(7)
    params = [torch.randn(7, 13, generator=gen), torch.randn(5, generator=gen)]
    tensors = {f"p{i}/init": p.clone() for i, p in enumerate(params)}
    params = [torch.nn.Parameter(p) for p in params]
    opt = torch.optim.AdamW(params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, foreach=False)
    for k in range(1, 7):
        for i, p in enumerate(params):
            g = torch.randn(p.shape, generator=gen) * (0.1 if k % 2 else 3.0)
            if k == 4:
                g[..., 0] = 0.0  # zero gradients still decay and move with the momentum
            p.grad = g
            tensors[f"p{i}/grad{k}"] = g.clone()
        opt.step()
        for i, p in enumerate(params):
            tensors[f"p{i}/after{k}"] = p.detach().clone()
    meta = torch_metadata()
    meta.update({"lr": "1e-2", "beta1": "0.9", "beta2": "0.999", "eps": "1e-8", "weight_decay": "1e-2", "steps": "6"})
    path = os.path.join(GOLDEN, "adamw.safetensors")
    save_safetensors(path, tensors, meta)
    print(f"wrote {path} ({os.path.getsize(path)} bytes) with torch {torch.__version__}")


def make_composite():
    """A miniature of a UNet transformer block's path from the text embedding, in fp32 (NCHW in
    PyTorch, stored NHWC for dice; conv weights stored as PyTorch's (Cout, Cin, kh, kw)):
        h  = silu(group_norm(x, 4 groups, gamma, beta, eps 1e-5))          x: (2, 8, 6, 5)
        h  = conv3x3(h, 8 -> 16, padding 1) + bias                          -> (2, 16, 6, 5)
        t  = h as tokens (2, 30, 16)
        t  = t + out1(sdpa(q1 t, k1 t, v1 t))       2 heads x 8, self-attention
        t  = t + out2(sdpa(q2 t, k2 c, v2 c))       cross-attention to c: (2, 7, 10)
        y  = t                                     (2, 30, 16)
    with loss = sum(y * w) for a fixed w; gradients dL/dx and dL/dc (weights frozen)."""
    gen = torch.Generator().manual_seed(11)
    r = lambda *shape, s=1.0: (torch.randn(*shape, generator=gen) * s)
    x = r(2, 8, 6, 5).requires_grad_()
    c = r(2, 7, 10).requires_grad_()
    w = {
        "gn.weight": 1 + r(8, s=0.1), "gn.bias": r(8, s=0.1),
        "conv.weight": r(16, 8, 3, 3, s=0.2), "conv.bias": r(16, s=0.1),
        "attn1.to_q.weight": r(16, 16, s=0.25), "attn1.to_k.weight": r(16, 16, s=0.25),
        "attn1.to_v.weight": r(16, 16, s=0.25), "attn1.to_out.0.weight": r(16, 16, s=0.25),
        "attn1.to_out.0.bias": r(16, s=0.1),
        "attn2.to_q.weight": r(16, 16, s=0.25), "attn2.to_k.weight": r(16, 10, s=0.3),
        "attn2.to_v.weight": r(16, 10, s=0.3), "attn2.to_out.0.weight": r(16, 16, s=0.25),
        "attn2.to_out.0.bias": r(16, s=0.1),
    }
    F = torch.nn.functional

    def attention(prefix, tokens, context):
        B, N, _ = tokens.shape
        heads = lambda t: t.view(B, t.shape[1], 2, 8).transpose(1, 2)
        q = heads(tokens @ w[prefix + ".to_q.weight"].T)
        k = heads(context @ w[prefix + ".to_k.weight"].T)
        v = heads(context @ w[prefix + ".to_v.weight"].T)
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, 16)
        return F.linear(o, w[prefix + ".to_out.0.weight"], w[prefix + ".to_out.0.bias"])

    h = F.silu(F.group_norm(x, 4, w["gn.weight"], w["gn.bias"], eps=1e-5))
    h = F.conv2d(h, w["conv.weight"], w["conv.bias"], padding=1)
    t = h.permute(0, 2, 3, 1).reshape(2, 30, 16)
    t = t + attention("attn1", t, t)
    t = t + attention("attn2", t, c)
    weight = r(2, 30, 16)
    (t * weight).sum().backward()
    tensors = {"x": x.detach().permute(0, 2, 3, 1).contiguous(), "context": c.detach().clone(),
               "loss_weight": weight, "y": t.detach().clone(),
               "grad_x": x.grad.permute(0, 2, 3, 1).contiguous(), "grad_context": c.grad.clone()}
    tensors.update({k: v.contiguous() for k, v in w.items()})
    meta = torch_metadata()
    meta.update({"groups": "4", "eps": "1e-5", "heads": "2", "layout": "x, grad_x NHWC; conv.weight OIHW"})
    path = os.path.join(GOLDEN, "composite.safetensors")
    save_safetensors(path, tensors, meta)
    print(f"wrote {path} ({os.path.getsize(path)} bytes) with torch {torch.__version__}")


class Sharpener(torch.nn.Module):
    """The authors' sharpener (PAPER.md), written out: fc1 shared by c and c_null, ReLU, 8-head
    cross-attention (queries from c, keys/values from c_null) with to_out = [Linear, Dropout] as in
    diffusers' Attention (hence the name attention.to_out.0), ReLU, fc2; c_phi = c + alpha r, token 0 kept."""

    def __init__(self, d_e, hidden=512, heads=8):
        super().__init__()
        self.heads = heads
        self.fc1 = torch.nn.Linear(d_e, hidden)
        self.attention = torch.nn.Module()
        self.attention.to_q = torch.nn.Linear(hidden, hidden, bias=False)
        self.attention.to_k = torch.nn.Linear(hidden, hidden, bias=False)
        self.attention.to_v = torch.nn.Linear(hidden, hidden, bias=False)
        self.attention.to_out = torch.nn.ModuleList([torch.nn.Linear(hidden, hidden), torch.nn.Dropout(0.0)])
        self.fc2 = torch.nn.Linear(hidden, d_e)

    def forward(self, c, c_null, alpha):
        h1, h2 = torch.relu(self.fc1(c)), torch.relu(self.fc1(c_null))
        B, N, C = h1.shape
        split = lambda t: t.view(B, t.shape[1], self.heads, C // self.heads).transpose(1, 2)
        q, k, v = split(self.attention.to_q(h1)), split(self.attention.to_k(h2)), split(self.attention.to_v(h2))
        a = torch.softmax(q @ k.transpose(-1, -2) / (C // self.heads) ** 0.5, dim=-1) @ v
        a = a.transpose(1, 2).reshape(B, N, C)
        r = self.fc2(torch.relu(self.attention.to_out[0](a)))
        c_phi = c + alpha * r
        return torch.cat([c[:, :1], c_phi[:, 1:]], dim=1)


def make_sharpener():
    """Parameter counts at the real sizes, and a small sharpener's forward and gradients."""
    assert sum(p.numel() for p in Sharpener(768).parameters()) == 1_836_800
    assert sum(p.numel() for p in Sharpener(2048).parameters()) == 3_148_800
    torch.manual_seed(5)
    model = Sharpener(48, hidden=64, heads=8)
    gen = torch.Generator().manual_seed(6)
    c, c_null, w = (torch.randn(2, 9, 48, generator=gen) for _ in range(3))
    c_phi = model(c, c_null, 1.0)
    (c_phi * w).sum().backward()
    with torch.no_grad():
        c_phi_half = model(c, c_null, 0.5)
    folder = os.path.join(GOLDEN, "sharpener")
    os.makedirs(folder, exist_ok=True)
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    meta = torch_metadata()
    meta.update({"heads": "8", "base_model": "golden-test", "guidance_scale": "5", "alpha": "1"})
    save_safetensors(os.path.join(folder, "sharpener.safetensors"), params, meta)
    io = {"c": c, "c_null": c_null, "loss_weight": w, "c_phi": c_phi.detach(), "c_phi_alpha_0.5": c_phi_half}
    io.update({"grad." + name: p.grad.clone() for name, p in model.named_parameters()})
    save_safetensors(os.path.join(folder, "io.safetensors"), io, torch_metadata())
    print(f"wrote {folder}/sharpener.safetensors and io.safetensors with torch {torch.__version__}")


SECTIONS = {"rng": make_rng, "adamw": make_adamw, "composite": make_composite, "sharpener": make_sharpener}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SECTIONS), help="write one section only")
    args = parser.parse_args()
    os.makedirs(GOLDEN, exist_ok=True)
    for name, make in SECTIONS.items():
        if args.only is None or args.only == name:
            make()


if __name__ == "__main__":
    main()
