#!/usr/bin/env python3
"""scripts/golden_schedulers.py — writes tests/golden/schedulers.safetensors with diffusers' own
schedulers (pip install diffusers; torch is needed too), read by tests/test_schedulers.c.

For each case (a scheduler_config.json text, a sampler class and a number of steps) it records the
timesteps, the sigmas, init_noise_sigma, optionally alphas_cumprod, and a whole sampling trajectory:
starting from fixed noise x = noise * init_noise_sigma it runs, for every timestep t,
    x_in = scheduler.scale_model_input(x, t)
    eps  = x_in * float32(0.1) + float32(0.05 * sin(t)) * R          (a fake deterministic model)
    x    = scheduler.step(eps, t, x).prev_sample
and stores every step's x. The C test parses the same JSON text (stored in the metadata), replays the
fake model and compares each step. It also records DDPMScheduler.add_noise and get_velocity (the
training-time noising) for a few timesteps, and the timesteps of each class and spacing for a grid of
step counts (those where diffusers repeats a timestep, ends below 0, or where DDIM's timesteps pass
T - 1, are listed: dice refuses them).

The SD1.5 cases use runwayml/stable-diffusion-v1-5's scheduler_config.json (a PNDMScheduler config)
the way pipelines switch samplers: SamplerClass.from_config(PNDMScheduler.from_config(json).config).
Run from the repository root: `python3 scripts/golden_schedulers.py`; the output is committed.
"""
import json
import math
import os
import sys

import diffusers
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import save_safetensors, torch_metadata  # noqa: E402

OUT = os.path.join("tests", "golden", "schedulers.safetensors")

SD15 = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
SD15_TEXT = json.dumps(SD15, indent=2)


def sd15_with(**changes):
    return json.dumps({**SD15, **changes}, indent=2)


def trained_betas_config():
    g = torch.Generator().manual_seed(7)
    betas = (torch.rand(50, generator=g, dtype=torch.float64) * 0.05 + 0.001).tolist()
    return json.dumps({"num_train_timesteps": 50, "trained_betas": betas, "prediction_type": "sample",
                       "timestep_spacing": "leading", "steps_offset": 1})


def saved_dpm_config():
    """A DPM-Solver config as diffusers saves it (every field, lambda_min_clipped -Infinity)."""
    return DPMSolverMultistepScheduler.from_config(PNDM_route(SD15)).to_json_string()


def PNDM_route(cfg):
    return diffusers.PNDMScheduler.from_config(cfg).config


# name, class, config text, steps, latent side (8 or 4), record alphas_cumprod (the C test needs it for
# rescale_betas_zero_snr cases, where PyTorch's inexact sqrt moves alphas_cumprod by a few ulp)
CASES = [
    ("sd15_dpm", DPMSolverMultistepScheduler, SD15_TEXT, 20, 8, True),
    ("sd15_euler", EulerDiscreteScheduler, SD15_TEXT, 20, 8, False),
    ("sd15_ddim", DDIMScheduler, SD15_TEXT, 20, 8, False),
    ("sd15_dpm_saved_25", DPMSolverMultistepScheduler, saved_dpm_config(), 25, 4, False),
    ("dpm_leading_10", DPMSolverMultistepScheduler, sd15_with(timestep_spacing="leading"), 10, 4, False),
    ("dpm_trailing_heun_v_12", DPMSolverMultistepScheduler,
     sd15_with(timestep_spacing="trailing", solver_type="heun", prediction_type="v_prediction"), 12, 4, False),
    ("dpm_order3_sigma_min_16", DPMSolverMultistepScheduler,
     json.dumps({"beta_schedule": "linear", "solver_order": 3, "final_sigmas_type": "sigma_min",
                 "lower_order_final": False}), 16, 4, True),
    ("dpm_cosine_clipped_10", DPMSolverMultistepScheduler,
     json.dumps({"beta_schedule": "squaredcos_cap_v2", "lambda_min_clipped": -5.1, "euler_at_final": True}), 10, 4,
     True),
    ("euler_leading_v_10", EulerDiscreteScheduler,
     sd15_with(timestep_spacing="leading", prediction_type="v_prediction", final_sigmas_type="sigma_min"), 10, 4,
     False),
    ("euler_trailing_zsnr_10", EulerDiscreteScheduler,
     sd15_with(timestep_spacing="trailing", rescale_betas_zero_snr=True, prediction_type="v_prediction"), 10, 4,
     True),
    ("ddim_linspace_clip_10", DDIMScheduler,
     json.dumps({"_class_name": "DDIMScheduler", "beta_schedule": "linear", "timestep_spacing": "linspace"}), 10, 4,
     False),
    ("ddim_trailing_zsnr_v_8", DDIMScheduler,
     sd15_with(timestep_spacing="trailing", rescale_betas_zero_snr=True, prediction_type="v_prediction"), 8, 4,
     True),
    ("tiny_dpm", DPMSolverMultistepScheduler,
     json.dumps({"num_train_timesteps": 100, "beta_start": 0.001, "beta_end": 0.2}), 20, 8, True),
    ("tiny_ddim_trailing_10", DDIMScheduler,
     json.dumps({"num_train_timesteps": 100, "beta_start": 0.001, "beta_end": 0.2, "timestep_spacing": "trailing",
                 "clip_sample": False}), 10, 4, False),
    ("trained_betas_dpm_8", DPMSolverMultistepScheduler, trained_betas_config(), 8, 4, True),
]

# DDPMScheduler.add_noise / get_velocity: config text, timesteps
NOISING = [
    ("sd15", SD15_TEXT, [0, 1, 500, 999]),
    ("tiny", json.dumps({"num_train_timesteps": 100, "beta_start": 0.001, "beta_end": 0.2}), [0, 37, 99]),
    ("zsnr_v", sd15_with(rescale_betas_zero_snr=True, prediction_type="v_prediction"), [0, 500, 999]),
]


# timesteps for every class x spacing x (T, steps) of this grid, steps_offset 1
GRID = {1000: [1, 2, 3, 7, 10, 16, 25, 50, 61], 37: [1, 2, 3, 7, 10, 16, 25, 36, 37]}
GRID_CLASSES = [DPMSolverMultistepScheduler, EulerDiscreteScheduler, DDIMScheduler]


def make_grid(tensors, meta):
    refused = []
    for cls in GRID_CLASSES:
        for spacing in ("linspace", "leading", "trailing"):
            for T, counts in GRID.items():
                values, lengths = [], []
                for n in counts:
                    sched = cls(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=1)
                    sched.set_timesteps(n)
                    t = sched.timesteps.to(torch.float32)
                    # DDIM indexes alphas_cumprod by timestep: above T - 1 it fails at the first step
                    beyond = cls is DDIMScheduler and (t > T - 1).any()
                    if len(t.unique()) != len(t) or (t < 0).any() or beyond:
                        refused.append(f"{cls.__name__}/{spacing}/{T}/{n}")
                        continue
                    values.append(t)
                    lengths.append(f"{n}:{len(t)}")
                key = f"grid/{cls.__name__}/{spacing}/{T}"
                tensors[key] = torch.cat(values)
                meta[key] = ",".join(lengths)  # steps:count pairs, in the order of the values
    meta["grid.refused"] = ",".join(refused)


def make_scheduler(cls, text):
    cfg = json.loads(text)
    source = cfg.get("_class_name")
    if source and source != cls.__name__:  # the pipeline route: the original class, then from_config
        return cls.from_config(getattr(diffusers, source).from_config(cfg).config)
    return cls.from_config(cfg)


def fake_model(x_in, t, r):
    coef = torch.tensor(0.05 * math.sin(float(t)), dtype=torch.float32)
    return x_in * torch.tensor(0.1, dtype=torch.float32) + coef * r


def main():
    g = torch.Generator().manual_seed(1234)
    shared = {side: (torch.randn(1, 4, side, side, generator=g), torch.randn(1, 4, side, side, generator=g))
              for side in (8, 4)}
    tensors, meta = {}, torch_metadata()
    meta["diffusers_version"] = diffusers.__version__
    for side, (noise, r) in shared.items():
        tensors[f"noise{side}"] = noise
        tensors[f"r{side}"] = r
    for name, cls, text, steps, side, store_abar in CASES:
        sched = make_scheduler(cls, text)
        sched.set_timesteps(steps)
        noise, r = shared[side]
        x = noise * sched.init_noise_sigma
        traj = []
        for t in sched.timesteps:
            x_in = sched.scale_model_input(x, t)
            x = sched.step(fake_model(x_in, t, r), t, x).prev_sample
            traj.append(x)
        meta[f"{name}.json"] = text
        meta[f"{name}.class"] = cls.__name__
        meta[f"{name}.steps"] = str(steps)
        tensors[f"{name}/timesteps"] = sched.timesteps.to(torch.float32)
        if hasattr(sched, "sigmas") and cls is not DDIMScheduler:
            tensors[f"{name}/sigmas"] = sched.sigmas.to(torch.float32)
        tensors[f"{name}/init_noise_sigma"] = torch.tensor(float(sched.init_noise_sigma), dtype=torch.float32)
        tensors[f"{name}/trajectory"] = torch.stack(traj).contiguous()
        if store_abar:
            tensors[f"{name}/alphas_cumprod"] = sched.alphas_cumprod.to(torch.float32).contiguous()
    meta["cases"] = ",".join(c[0] for c in CASES)

    x0 = torch.randn(2, 4, 4, 4, generator=g)
    noise = torch.randn(2, 4, 4, 4, generator=g)
    tensors["noising/x0"], tensors["noising/noise"] = x0, noise
    for name, text, ts in NOISING:
        ddpm = DDPMScheduler.from_config(json.loads(text))
        t = torch.tensor(ts, dtype=torch.int64)
        meta[f"noising.{name}.json"] = text
        tensors[f"noising/{name}/t"] = t
        tensors[f"noising/{name}/add_noise"] = torch.stack(
            [ddpm.add_noise(x0, noise, torch.full((2,), k, dtype=torch.int64)) for k in ts])
        tensors[f"noising/{name}/velocity"] = torch.stack(
            [ddpm.get_velocity(x0, noise, torch.full((2,), k, dtype=torch.int64)) for k in ts])
        tensors[f"noising/{name}/alphas_cumprod"] = ddpm.alphas_cumprod.to(torch.float32).contiguous()
    meta["noising"] = ",".join(n[0] for n in NOISING)

    make_grid(tensors, meta)
    save_safetensors(OUT, tensors, meta)
    size = os.path.getsize(OUT)
    assert size < 200_000, f"{OUT} is {size} bytes; keep it under 200 KB"
    print(f"wrote {OUT} ({size} bytes, {len(CASES)} sampler cases)")


if __name__ == "__main__":
    main()
