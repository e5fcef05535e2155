#!/usr/bin/env python3
"""bench/attention_torch.py — the PyTorch baseline of bench/attention.c: times
torch.nn.functional.scaled_dot_product_attention (bf16, FlashAttention-2 where PyTorch can use it) forward
and backward on the shapes given, in the same (B, N, H*D) layout as dice (viewed as (B, H, N, D) without a
copy). Run by build/bench/attention when torch with CUDA is importable; one output line per shape:
"fwd_ms bwd_ms" (medians of CUDA-event timings), or "-1 -1" for a shape that failed.

    python3 bench/attention_torch.py B,H,D,Nq,Nk,causal,mask ...
mask = 1: a key padding mask keeping the first 3/4 of the keys (as bench/attention.c does).
"""
import sys

import torch
import torch.nn.functional as F


def median_ms(fn, warmup=3, iters=20):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def time_shape(B, H, D, nq, nk, causal, mask):
    dev, dt = "cuda", torch.bfloat16
    q = torch.randn(B, nq, H, D, device=dev, dtype=dt).transpose(1, 2).requires_grad_(True)
    k = torch.randn(B, nk, H, D, device=dev, dtype=dt).transpose(1, 2).requires_grad_(True)
    v = torch.randn(B, nk, H, D, device=dev, dtype=dt).transpose(1, 2).requires_grad_(True)
    attn_mask = None
    if mask:
        keep = torch.arange(nk, device=dev) < nk * 3 // 4
        attn_mask = keep.view(1, 1, 1, nk).expand(B, H, nq, nk)
    kwargs = dict(attn_mask=attn_mask, is_causal=bool(causal), scale=D ** -0.5)
    out = F.scaled_dot_product_attention(q, k, v, **kwargs)
    dout = torch.randn_like(out)
    fwd = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, **kwargs))
    bwd = median_ms(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True))
    return fwd, bwd


def main():
    for arg in sys.argv[1:]:
        try:
            print("%.4f %.4f" % time_shape(*[int(x) for x in arg.split(",")]), flush=True)
        except Exception as e:  # one failing shape must not hide the others
            print("-1 -1", flush=True)
            print("attention_torch.py: %s: %s" % (arg, e), file=sys.stderr)


if __name__ == "__main__":
    main()
