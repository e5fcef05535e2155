#!/usr/bin/env python3
"""scripts/golden_unet.py — golden data for the UNet (models/unet*.c, tests/test_unet.c).

Builds tiny random-weight diffusers UNet2DConditionModels, saves each with save_pretrained (config.json +
diffusion_pytorch_model.safetensors, exactly what a user downloads) under tests/golden/unet/<variant>/, and
records in io.safetensors (written deterministically, NHWC for images):
  x (B, H, W, Cin), encoder_hidden_states (B, N, cross_dim), loss_weight (B, H, W, Cout)
  t0, t1 (B) f32 timesteps;  eps_t0, eps_t1 (B, H, W, Cout)
  grad_ehs_t0, grad_x_t0: gradients of sum(eps_t0 * loss_weight) w.r.t. encoder_hidden_states and x
  added_emb (B, time_embed_dim), eps_added_t0: eps at t0 with added_emb added to the time embedding's output
      (the hook through which SDXL's text_time conditioning enters)
Every parameter is randomised (norm scales 1 + 0.1 N, norm shifts 0.1 N) so that no weight is a no-op.

Variants:
  tiny    2 levels (16, 32), CrossAttnDownBlock2D + DownBlock2D, UpBlock2D + CrossAttnUpBlock2D, conv
          projections, attention_head_dim (2, 4) = heads per level (head dims 8 at every attention: a wrong
          level's head count gives another head dim), 8 groups, 8x8, 7 tokens of 32, fp32
  linear  2 levels, DownBlock2D + CrossAttnDownBlock2D, CrossAttnUpBlock2D + UpBlock2D, linear projections,
          transformer_layers_per_block (1, 2), layers_per_block (2, 1), attention_head_dim 2 (head dims 16),
          in 3 / out 5 channels, 4 groups, norm_eps 1e-6, flip_sin_to_cos false, freq_shift 1, 6x10, 5 tokens of 24,
          weights saved in fp16 (the reference runs in fp32 on the fp16-rounded weights)
  sd15    SD1.5's topology in miniature: 4 levels (8, 16, 16, 16), 3 x CrossAttnDownBlock2D + DownBlock2D,
          UpBlock2D + 3 x CrossAttnUpBlock2D, layers_per_block 2, 2 heads (head dims 4, 8, 8, 8), 4 groups, 8x8
          (down to 1x1), 6 tokens of 16, fp16 weights; CPU only (head dim 4 is below the CUDA kernel's 8)
  hd40    SD1.5's dominant head dim: 2 levels (8, 40), CrossAttnDownBlock2D + DownBlock2D, UpBlock2D +
          CrossAttnUpBlock2D, 1 head everywhere: head dim 8 at level 0, head dim 40 in the mid block (40 channels
          only there keeps the file small), 8 groups, 8x8 (mid block at 4x4), 7 tokens of 32, fp16 weights

Run from the repository root: python3 scripts/golden_unet.py [variant ...]   (default: every variant)
"""
import json
import os
import sys

import torch
from diffusers import UNet2DConditionModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import save_safetensors, torch_metadata  # noqa: E402

OUT = os.path.join("tests", "golden", "unet")

VARIANTS = {
    "tiny": dict(
        config=dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                    attention_head_dim=(2, 4), norm_num_groups=8),
        batch=2, height=8, width=8, tokens=7, fp16=False, timesteps=((999.0, 999.0), (21.0, 600.0))),
    "linear": dict(
        config=dict(sample_size=8, in_channels=3, out_channels=5, block_out_channels=(16, 32), layers_per_block=(2, 1),
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=24,
                    attention_head_dim=2, norm_num_groups=4, use_linear_projection=True,
                    transformer_layers_per_block=(1, 2), flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6),
        batch=2, height=6, width=10, tokens=5, fp16=True, timesteps=((500.0, 500.0), (0.0, 999.0))),
    "sd15": dict(
        config=dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16, 16, 16), layers_per_block=2,
                    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                      "DownBlock2D"),
                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                    cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4),
        batch=2, height=8, width=8, tokens=6, fp16=True, timesteps=((999.0, 999.0), (250.0, 750.0))),
    "hd40": dict(
        config=dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 40), layers_per_block=1,
                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                    attention_head_dim=1, norm_num_groups=8),
        batch=2, height=8, width=8, tokens=7, fp16=True, timesteps=((999.0, 999.0), (37.0, 480.0))),
}


def randomise(unet, gen):
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if p.ndim == 1 and torch.all(p == 1):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1 and torch.all(p == 0):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).contiguous()


def make(name, v):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    unet = UNet2DConditionModel(**v["config"]).eval()
    randomise(unet, gen)
    if v["fp16"]:
        unet = unet.half().float()  # the reference uses exactly the weights that the fp16 file holds
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    (unet.half() if v["fp16"] else unet).save_pretrained(folder, safe_serialization=True)
    unet = unet.float()
    cfg = v["config"]
    b, h, w = v["batch"], v["height"], v["width"]
    x = torch.randn(b, cfg["in_channels"], h, w, generator=gen)
    ehs = torch.randn(b, v["tokens"], cfg["cross_attention_dim"], generator=gen)
    lw = torch.randn(b, cfg["out_channels"], h, w, generator=gen)
    t0, t1 = (torch.tensor(t, dtype=torch.float32) for t in v["timesteps"])
    temb_dim = cfg["block_out_channels"][0] * 4
    added = torch.randn(b, temb_dim, generator=gen)

    xg, eg = x.clone().requires_grad_(), ehs.clone().requires_grad_()
    eps0 = unet(xg, t0, encoder_hidden_states=eg).sample
    (eps0 * lw).sum().backward()
    with torch.no_grad():
        eps1 = unet(x, t1, encoder_hidden_states=ehs).sample
        hook = unet.time_embedding.register_forward_hook(lambda m, i, o: o + added)
        eps_added = unet(x, t0, encoder_hidden_states=ehs).sample
        hook.remove()
    tensors = {
        "x": nhwc(x), "encoder_hidden_states": ehs, "loss_weight": nhwc(lw), "t0": t0, "t1": t1,
        "eps_t0": nhwc(eps0), "eps_t1": nhwc(eps1), "grad_ehs_t0": eg.grad.clone(), "grad_x_t0": nhwc(xg.grad),
        "added_emb": added, "eps_added_t0": nhwc(eps_added),
    }
    meta = torch_metadata()
    meta["written_by"] = "scripts/golden_unet.py"
    meta["variant"] = name
    meta["layout"] = "images NHWC"
    path = os.path.join(folder, "io.safetensors")
    save_safetensors(path, tensors, meta)
    sizes = {f: os.path.getsize(os.path.join(folder, f)) for f in sorted(os.listdir(folder))}
    print(f"{folder}: {json.dumps(sizes)}; |eps_t0| {eps0.norm():.3f} |grad_ehs| {eg.grad.norm():.3f}")


def main():
    names = sys.argv[1:] or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    for name in names:
        make(name, VARIANTS[name])


if __name__ == "__main__":
    main()
