#!/usr/bin/env python3
"""scripts/golden_vae.py — writes tests/golden/vae/ with diffusers' AutoencoderKL, read by tests/test_vae.c.

Two tiny random-weight VAEs, each saved with save_pretrained exactly as a user's download of a vae/ folder
(config.json + diffusion_pytorch_model.safetensors, fp32) and a reference file <name>_io.safetensors:

  tiny    block_out_channels (16, 24, 32), layers_per_block 1, norm_num_groups 8, latent_channels 4, quant
          convs and the mid-block attention on (the SD1.5 / SDXL shape in miniature); images (2, 16, 16, 3)
  plain   block_out_channels (8, 16), layers_per_block 2, norm_num_groups 4, latent_channels 3, in/out
          channels 4 / 2, no quant convs, no mid-block attention, shift_factor set (the SD3 / Flux variant);
          images (2, 15, 10, 4), so the asymmetric downsampler meets an odd and an even size and the latents
          are 7 x 5

The reference file holds, all NHWC (PyTorch computes in NCHW; the C side never sees NCHW):
  image (B, H, W, Cin) in [-1, 1]            the encoder input
  mean, logvar (B, h, w, C)                 vae.encode(image).latent_dist: mean and the clamped log-variance
  sample (B, h, w, C)                       latent_dist.sample(generator=torch.Generator().manual_seed(seed)),
                                            seed in the metadata ("sample_seed")
  mean_weight (B, h, w, C), grad_image      d sum(mean * mean_weight) / d image (B, H, W, Cin)
  z (B, h, w, C), decoded (B, H, W, Cout)   vae.decode(z).sample
  decode_weight (B, H, W, Cout), grad_z     d sum(decoded * decode_weight) / d z (B, h, w, C)
All norm affine parameters are randomised (diffusers initialises them to 1 and 0, which would hide a
gamma / beta mix-up). Run from the repository root: `python3 scripts/golden_vae.py`; the output is committed.
"""
import json
import os
import sys

import diffusers
import torch
from diffusers import AutoencoderKL

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import save_safetensors, torch_metadata  # noqa: E402

OUT = os.path.join("tests", "golden", "vae")

CASES = {
    "tiny": dict(
        config=dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 3,
                    up_block_types=["UpDecoderBlock2D"] * 3, block_out_channels=[16, 24, 32], layers_per_block=1,
                    act_fn="silu", latent_channels=4, norm_num_groups=8, sample_size=16, scaling_factor=0.18215,
                    force_upcast=True),
        batch=2, height=16, width=16, seed=1234),
    "plain": dict(
        config=dict(in_channels=4, out_channels=2, down_block_types=["DownEncoderBlock2D"] * 2,
                    up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 16], layers_per_block=2,
                    act_fn="silu", latent_channels=3, norm_num_groups=4, sample_size=[15, 10], scaling_factor=0.5,
                    shift_factor=0.125, use_quant_conv=False, use_post_quant_conv=False,
                    mid_block_add_attention=False, force_upcast=False),
        batch=2, height=15, width=10, seed=77),
}


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).contiguous()


def make_case(name, case, index):
    torch.manual_seed(100 + index)
    vae = AutoencoderKL(**case["config"]).eval()
    with torch.no_grad():
        for pname, p in vae.named_parameters():
            if ".norm" in pname or "group_norm" in pname:
                p.copy_((1.0 if pname.endswith(".weight") else 0.0) + 0.1 * torch.randn_like(p))
    folder = os.path.join(OUT, name)
    vae.save_pretrained(folder, safe_serialization=True)

    gen = torch.Generator().manual_seed(500 + index)
    B, H, W = case["batch"], case["height"], case["width"]
    cin, cout = case["config"]["in_channels"], case["config"]["out_channels"]
    image = (torch.rand(B, cin, H, W, generator=gen) * 2 - 1).requires_grad_()
    dist = vae.encode(image).latent_dist
    mean_weight = torch.randn(dist.mean.shape, generator=gen)
    (dist.mean * mean_weight).sum().backward()
    with torch.no_grad():
        sample = dist.sample(generator=torch.Generator().manual_seed(case["seed"]))

    z = torch.randn(dist.mean.shape, generator=gen).requires_grad_()
    decoded = vae.decode(z).sample
    decode_weight = torch.randn(decoded.shape, generator=gen)
    (decoded * decode_weight).sum().backward()

    tensors = {"image": nhwc(image), "mean": nhwc(dist.mean), "logvar": nhwc(dist.logvar), "sample": nhwc(sample),
               "mean_weight": nhwc(mean_weight), "grad_image": nhwc(image.grad), "z": nhwc(z),
               "decoded": nhwc(decoded), "decode_weight": nhwc(decode_weight), "grad_z": nhwc(z.grad)}
    meta = torch_metadata()
    meta.update({"written_by": "scripts/golden_vae.py", "diffusers_version": diffusers.__version__,
                 "sample_seed": str(case["seed"]), "layout": "NHWC"})
    path = os.path.join(OUT, name + "_io.safetensors")
    save_safetensors(path, tensors, meta)
    with open(os.path.join(folder, "config.json")) as f:
        assert json.load(f)["_class_name"] == "AutoencoderKL"
    weights = os.path.join(folder, "diffusion_pytorch_model.safetensors")
    print(f"wrote {folder} ({os.path.getsize(weights)} bytes of weights) and {path} ({os.path.getsize(path)} bytes)")


def main():
    os.makedirs(OUT, exist_ok=True)
    for index, (name, case) in enumerate(CASES.items()):
        make_case(name, case, index)


if __name__ == "__main__":
    main()
