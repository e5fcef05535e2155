#!/usr/bin/env python3
"""scripts/golden_ldm.py — writes tests/golden/ldm/, read by tests/test_ldm_names.c: a single-file original-layout
(LDM / CompVis / A1111) Stable Diffusion checkpoint made from tiny diffusers models, and name tables.

  model.safetensors   ONE original-layout file holding
                        model.diffusion_model.*          tests/golden/unet/sd15 (SD1.5's topology in miniature,
                                                         fp16 as the folder stores it)
                        first_stage_model.*              tests/golden/ldm/vae (below), mid-attention q / k / v /
                                                         proj_out as (C, C, 1, 1) convolutions as LDM stores them
                        cond_stage_model.transformer.*   tests/golden/clip_encoder/quick under "text_model.", with
                                                         the position_ids buffer SD1.5 files carry
                      plus the harmless extras real files carry: model_ema.* (LDM's flattened EMA names,
                      model_ema.decay, model_ema.num_updates) and DDPM buffers (betas, alphas_cumprod, ...).
  vae/                a tiny AutoencoderKL with SD's VAE topology (4 levels of 2 resnets, mid attention, quant
                      convs; 4 / 8 channels) saved with save_pretrained, the VAE of model.safetensors.
  vae_io.safetensors  its diffusers outputs, NHWC: image (1, 16, 16, 3) -> mean, logvar (1, 2, 2, 4);
                      z (1, 2, 2, 4) -> decoded (1, 16, 16, 3).
  names.json          {"unet/tiny": {canonical: original}, "unet/linear": ..., "vae/tiny": ..., "vae/plain": ...}:
                      the original name of every tensor of the other golden UNets and VAEs (without the
                      component prefix), so the C table is checked on more layouts than the one in the file.

The diffusers -> original mapping below is written from the tables of diffusers'
scripts/convert_diffusers_to_original_stable_diffusion.py (unet_conversion_map, unet_conversion_map_resnet,
unet_conversion_map_layer, vae_conversion_map, vae_conversion_map_attn), with their SD1.5 constants (4 levels,
2 layers, attention on down levels 0-2 and up levels 1-3) replaced by the config's values. It is independent of
the C table (models/ldm_names.c), which maps the other way, and is checked here against diffusers' own
single-file loader (diffusers.loaders.single_file_utils.convert_ldm_{unet,vae,clip}_checkpoint): converting
each written file back must give every tensor of the diffusers model, unchanged.
Run from the repository root: `python3 scripts/golden_ldm.py`; the output is committed.
"""
import json
import os
import sys

import diffusers
import torch
from diffusers import AutoencoderKL
from diffusers.loaders import single_file_utils as sfu
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import save_safetensors, torch_metadata  # noqa: E402

GOLDEN = os.path.join("tests", "golden")
OUT = os.path.join(GOLDEN, "ldm")
UNET, VAE, CLIP = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."

VAE_CONFIG = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                  up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[4, 8, 8, 8], layers_per_block=2,
                  act_fn="silu", latent_channels=4, norm_num_groups=4, sample_size=16, scaling_factor=0.18215)


def per_level(value, n):
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


# ---------------------------------------------------------------- diffusers -> original (the published tables)

def unet_map(cfg):
    """(original prefix, diffusers prefix) pairs, as unet_conversion_map_layer builds them, for cfg's layout."""
    n = len(cfg["block_out_channels"])
    layers = per_level(cfg["layers_per_block"], n)
    pairs = [("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
             ("input_blocks.0.0.", "conv_in."), ("out.0.", "conv_norm_out."), ("out.2.", "conv_out.")]
    k = 1  # SD1.5: 3 * i + j + 1
    for i in range(n):
        for j in range(layers[i]):
            pairs.append((f"input_blocks.{k}.0.", f"down_blocks.{i}.resnets.{j}."))
            if cfg["down_block_types"][i].startswith("CrossAttn"):
                pairs.append((f"input_blocks.{k}.1.", f"down_blocks.{i}.attentions.{j}."))
            k += 1
        if i < n - 1:
            pairs.append((f"input_blocks.{k}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
            k += 1
    k = 0  # SD1.5: 3 * i + j
    for i in range(n):
        attn = cfg["up_block_types"][i].startswith("CrossAttn")
        for j in range(layers[n - 1 - i] + 1):
            pairs.append((f"output_blocks.{k}.0.", f"up_blocks.{i}.resnets.{j}."))
            if attn:
                pairs.append((f"output_blocks.{k}.1.", f"up_blocks.{i}.attentions.{j}."))
            k += 1
        if i < n - 1:
            pairs.append((f"output_blocks.{k - 1}.{2 if attn else 1}.", f"up_blocks.{i}.upsamplers.0."))
    pairs.append(("middle_block.1.", "mid_block.attentions.0."))
    for j in range(2):
        pairs.append((f"middle_block.{2 * j}.", f"mid_block.resnets.{j}."))
    return pairs


UNET_RESNET = [("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("out_layers.0", "norm2"),
               ("out_layers.3", "conv2"), ("emb_layers.1", "time_emb_proj"), ("skip_connection", "conv_shortcut")]


def unet_to_original(name, cfg):
    for orig, hf in unet_map(cfg):
        if name.startswith(hf):
            rest = name[len(hf):]
            if ".resnets." in hf:
                for o, h in UNET_RESNET:
                    if rest.startswith(h + "."):
                        rest = o + rest[len(h):]
            return orig + rest
    raise KeyError(name)


def vae_to_original(name, cfg):
    n, layers = len(cfg["block_out_channels"]), cfg["layers_per_block"]
    pairs = [("nin_shortcut", "conv_shortcut"), ("norm_out", "conv_norm_out"),
             ("mid.attn_1.", "mid_block.attentions.0.")]
    for i in range(n):
        for j in range(layers):
            pairs.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        for j in range(layers + 1):
            pairs.append((f"decoder.up.{n - 1 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}."))
        if i < n - 1:
            pairs.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
            pairs.append((f"up.{n - 1 - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
    for j in range(2):
        pairs.append((f"mid.block_{j + 1}.", f"mid_block.resnets.{j}."))
    for orig, hf in pairs:
        name = name.replace(hf, orig)
    if ".mid.attn_1." in name:  # vae_conversion_map_attn, current diffusers names
        for orig, hf in [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."),
                         ("proj_out.", "to_out.0.")]:
            name = name.replace(".mid.attn_1." + hf, ".mid.attn_1." + orig)
    return name


def convert(state, to_original, cfg):
    out = {}
    for name, t in state.items():
        orig = to_original(name, cfg)
        if ".mid.attn_1." in orig and t.ndim == 2:  # LDM's attention projections are 1x1 convolutions
            t = t[:, :, None, None]
        out[orig] = t
    return out


def read_config(folder):
    with open(os.path.join(folder, "config.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------- checks against diffusers' own loader

def check_round_trip(kind, original, state, cfg):
    if kind == "unet":
        back = sfu.convert_ldm_unet_checkpoint({UNET + k: v for k, v in original.items()}, cfg)
    elif kind == "vae":
        back = sfu.convert_ldm_vae_checkpoint({VAE + k: v for k, v in original.items()}, cfg)
    else:
        back = sfu.convert_ldm_clip_checkpoint({CLIP + k: v for k, v in original.items()})
    assert set(back) == set(state), (kind, sorted(set(back) ^ set(state))[:8])
    for k, v in state.items():
        assert back[k].shape == v.shape and torch.equal(back[k], v), (kind, k)


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).contiguous()


def make_vae():
    torch.manual_seed(2024)
    vae = AutoencoderKL(**VAE_CONFIG).eval()
    with torch.no_grad():  # randomise the norms (diffusers' 1 / 0 would hide a weight / bias mix-up)
        for pname, p in vae.named_parameters():
            if ".norm" in pname or "group_norm" in pname:
                p.copy_((1.0 if pname.endswith(".weight") else 0.0) + 0.1 * torch.randn_like(p))
    folder = os.path.join(OUT, "vae")
    vae.save_pretrained(folder, safe_serialization=True)
    gen = torch.Generator().manual_seed(7)
    image = torch.rand(1, 3, 16, 16, generator=gen) * 2 - 1
    z = torch.randn(1, 4, 2, 2, generator=gen)
    with torch.no_grad():
        dist = vae.encode(image).latent_dist
        decoded = vae.decode(z).sample
    meta = torch_metadata()
    meta.update({"written_by": "scripts/golden_ldm.py", "diffusers_version": diffusers.__version__, "layout": "NHWC"})
    save_safetensors(os.path.join(OUT, "vae_io.safetensors"),
                     {"image": nhwc(image), "mean": nhwc(dist.mean), "logvar": nhwc(dist.logvar), "z": nhwc(z),
                      "decoded": nhwc(decoded)}, meta)
    return folder


def main():
    os.makedirs(OUT, exist_ok=True)
    vae_dir = make_vae()
    unet_dir, clip_dir = os.path.join(GOLDEN, "unet", "sd15"), os.path.join(GOLDEN, "clip_encoder", "quick")
    unet_cfg, vae_cfg = read_config(unet_dir), read_config(vae_dir)
    unet_state = load_file(os.path.join(unet_dir, "diffusion_pytorch_model.safetensors"))
    vae_state = load_file(os.path.join(vae_dir, "diffusion_pytorch_model.safetensors"))
    clip_state = load_file(os.path.join(clip_dir, "model.safetensors"))
    # transformers 5 saves CLIPTextModel without "text_model."; SD1.5 files hold transformers 4's names.
    clip_state = {(k if k.startswith("text_model.") else "text_model." + k): v for k, v in clip_state.items()}

    unet_orig = convert(unet_state, unet_to_original, unet_cfg)
    vae_orig = convert(vae_state, vae_to_original, vae_cfg)
    check_round_trip("unet", unet_orig, unet_state, unet_cfg)
    check_round_trip("vae", vae_orig, vae_state, vae_cfg)
    check_round_trip("clip", clip_state, clip_state, None)

    tensors = {}
    tensors.update({UNET + k: v for k, v in sorted(unet_orig.items())})
    tensors.update({VAE + k: v for k, v in sorted(vae_orig.items())})
    tensors.update({CLIP + k: v for k, v in sorted(clip_state.items())})
    tensors[CLIP + "text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64).pow(2).float()
    tensors["betas"] = betas
    tensors["alphas_cumprod"] = torch.cumprod(1 - betas, 0)
    tensors["logvar"] = torch.zeros(1000)
    for k in ["input_blocks.0.0.weight", "out.2.bias"]:  # LDM's EMA names: the model's name without its dots
        tensors["model_ema." + ("diffusion_model." + k).replace(".", "")] = unet_orig[k].clone()
    tensors["model_ema.decay"] = torch.tensor(0.9999)
    tensors["model_ema.num_updates"] = torch.tensor(0, dtype=torch.int32)
    meta = {"written_by": "scripts/golden_ldm.py", "diffusers_version": diffusers.__version__,
            "unet": unet_dir, "vae": vae_dir, "text_encoder": clip_dir}
    path = os.path.join(OUT, "model.safetensors")
    save_safetensors(path, tensors, meta)

    names = {}
    for kind, sub, to_original, weights in [("unet", "tiny", unet_to_original, "diffusion_pytorch_model.safetensors"),
                                            ("unet", "linear", unet_to_original, "diffusion_pytorch_model.safetensors"),
                                            ("vae", "tiny", vae_to_original, "diffusion_pytorch_model.safetensors"),
                                            ("vae", "plain", vae_to_original, "diffusion_pytorch_model.safetensors")]:
        folder = os.path.join(GOLDEN, kind, sub)
        cfg, state = read_config(folder), load_file(os.path.join(folder, weights))
        if not isinstance(cfg["layers_per_block"], list):  # diffusers' loader takes one count for all levels
            check_round_trip(kind, convert(state, to_original, cfg), state, cfg)
        names[f"{kind}/{sub}"] = {k: to_original(k, cfg) for k in sorted(state)}
    with open(os.path.join(OUT, "names.json"), "w") as f:
        json.dump(names, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(tensors)} tensors), {vae_dir}, names.json")


if __name__ == "__main__":
    main()
