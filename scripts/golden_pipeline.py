#!/usr/bin/env python3
"""scripts/golden_pipeline.py — writes tests/golden/pipeline/, a tiny random-weight StableDiffusionPipeline and
diffusers' outputs on it, read by tests/test_pipeline.c (sample/pipeline.c, models/sd_model.c).

Run from the repository root with a python that has torch, diffusers and transformers, e.g.
    /tmp/clipenc/bin/python scripts/golden_pipeline.py      (see scripts/golden_clip_encoder.py for that venv)

tests/golden/pipeline/model/ is the pipeline as pipe.save_pretrained(..., safe_serialization=True,
variant="fp16") writes it after pipe.to(torch.float16): model_index.json naming StableDiffusionPipeline,
tokenizer/ (the tiny BPE vocabulary of tests/golden/clip_encoder/tokenizer), text_encoder/ (CLIPTextModel,
hidden 32, 2 layers, 4 heads x 8), unet/ (block_out_channels (16, 32), cross_attention_dim 32, 2 heads),
vae/ (block_out_channels (16, 32): 2x downscaling), scheduler/ (SD1.5's PNDMScheduler config), all weights in
*.fp16.safetensors files as a user's fp16-variant download holds them. The reference pipeline is loaded back from
that folder with torch_dtype=float32 (variant="fp16"), so diffusers computes in fp32 on the fp16-rounded
weights, exactly what dice loads on the CPU.

Sampling: pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config) (the usual switch),
prompts PROMPTS at 16 x 16 pixels (8 x 8 latents), generator = [torch.Generator().manual_seed(SEED + i) for
image i]: one generator per image, the rule dice uses so that a seed gives the same image whatever the batch.
reference.safetensors holds, all NHWC (the C side never sees NCHW):
  prompt_embeds (2, 77, 32), null_embeds (1, 77, 32) = encode(""), negative_embeds (1, 77, 32) = encode(NEGATIVE)
  init_latents (2, 8, 8, 4)                 randn per generator, times init_noise_sigma (1 for DPM-Solver++)
  for each case C in CASES: C/latents (2, 8, 8, 4) the final latents (output_type="latent"),
                            C/image (2, 16, 16, 3) output_type="np" (in [0, 1]),
                            C/pixels (2, 16, 16, 3) u8 = numpy_to_pil's (image * 255).round()
Metadata: prompts (a JSON list), negative_prompt, seed, and per case C.steps, C.guidance, C.negative.
"""
import json
import os
import shutil
import sys

import diffusers
import numpy as np
import torch
import transformers
from diffusers import (AutoencoderKL, DPMSolverMultistepScheduler, PNDMScheduler, StableDiffusionPipeline,
                       UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import save_safetensors, torch_metadata  # noqa: E402

OUT = os.path.join("tests", "golden", "pipeline")
MODEL = os.path.join(OUT, "model")
TOKENIZER = os.path.join("tests", "golden", "clip_encoder", "tokenizer")
PROMPTS = ["a photo of a red cat on the mat", "blue dog painting, astronaut"]
NEGATIVE = "photo of the dog"
SEED = 42
SIZE = 16
CASES = {  # name: (steps, guidance, negative prompt)
    "unguided20": (20, 1.0, False),
    "cfg20": (20, 5.0, False),
    "unguided5": (5, 1.0, False),
    "cfg5": (5, 5.0, False),
    "cfg4neg": (4, 5.0, True),
}


def randomise(module, gen):
    """Norm affine parameters near (1, 0) instead of exactly (diffusers / transformers init them to 1 and 0, which
    would hide a gamma / beta mix-up); everything else keeps the library's random init."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name:
                base = 1.0 if name.endswith(".weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=gen))


def build():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=0, eos_token_id=2, pad_token_id=1,
        projection_dim=32)).eval()
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=2, norm_num_groups=8).eval()
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[16, 32], layers_per_block=1,
        latent_channels=4, norm_num_groups=8, sample_size=SIZE, scaling_factor=0.18215).eval()
    for m in (text, unet, vae):
        randomise(m, gen)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)
    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if os.path.isdir(MODEL):
        shutil.rmtree(MODEL)
    pipe.to(torch.float16).save_pretrained(MODEL, safe_serialization=True, variant="fp16")
    # the tokenizer folder exactly as the component tests use it (transformers 5 would write tokenizer.json too)
    shutil.rmtree(os.path.join(MODEL, "tokenizer"))
    shutil.copytree(TOKENIZER, os.path.join(MODEL, "tokenizer"))


def nhwc(t):
    return t.detach().float().permute(0, 2, 3, 1).contiguous()


def main():
    os.makedirs(OUT, exist_ok=True)
    build()
    pipe = StableDiffusionPipeline.from_pretrained(MODEL, variant="fp16", torch_dtype=torch.float32,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    tensors = {}
    with torch.no_grad():
        pe, _ = pipe.encode_prompt(PROMPTS, "cpu", 1, False)
        null, _ = pipe.encode_prompt([""], "cpu", 1, False)
        neg, _ = pipe.encode_prompt([NEGATIVE], "cpu", 1, False)
    tensors["prompt_embeds"] = pe.contiguous()
    tensors["null_embeds"] = null.contiguous()
    tensors["negative_embeds"] = neg.contiguous()
    latent = SIZE // 2
    gens = [torch.Generator().manual_seed(SEED + i) for i in range(len(PROMPTS))]
    init = torch.cat([torch.randn((1, 4, latent, latent), generator=g) for g in gens])
    tensors["init_latents"] = nhwc(init * pipe.scheduler.init_noise_sigma)
    meta = torch_metadata()
    meta.update({"written_by": "scripts/golden_pipeline.py", "diffusers_version": diffusers.__version__,
                 "transformers_version": transformers.__version__, "prompts": json.dumps(PROMPTS),
                 "negative_prompt": NEGATIVE, "seed": str(SEED), "size": str(SIZE)})
    for name, (steps, guidance, negative) in CASES.items():
        kw = dict(prompt=PROMPTS, height=SIZE, width=SIZE, num_inference_steps=steps, guidance_scale=guidance,
                  negative_prompt=[NEGATIVE] * len(PROMPTS) if negative else None)
        gen = lambda: [torch.Generator().manual_seed(SEED + i) for i in range(len(PROMPTS))]  # noqa: E731
        latents = pipe(**kw, generator=gen(), output_type="latent").images
        image = pipe(**kw, generator=gen(), output_type="np").images          # (B, H, W, 3) float32
        with torch.no_grad():   # the pipeline's own decode, repeated from the latents: the same numbers
            again = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
            again = pipe.image_processor.postprocess(again, output_type="np")
        assert np.array_equal(again, image), name
        pixels = (image * 255).round().astype("uint8")                        # numpy_to_pil
        tensors[name + "/latents"] = nhwc(latents)
        tensors[name + "/image"] = torch.from_numpy(image).contiguous()
        tensors[name + "/pixels"] = torch.from_numpy(pixels).contiguous()
        meta.update({name + ".steps": str(steps), name + ".guidance": str(guidance),
                     name + ".negative": "1" if negative else "0"})
    path = os.path.join(OUT, "reference.safetensors")
    save_safetensors(path, tensors, meta)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT} ({total} bytes) with torch {torch.__version__}, diffusers {diffusers.__version__}")


if __name__ == "__main__":
    main()
