#!/usr/bin/env python3
"""scripts/bench_diffusers.py — the baseline of bench/unet.c: diffusers' UNet2DConditionModel (random init,
torch.manual_seed(0), default attention processor = PyTorch SDPA) with the same configs, batch and latent
sizes, timing one UNet step and a whole DPM-Solver++ sample (UNet calls + DPMSolverMultistepScheduler, no VAE),
bf16 on a GPU (torch.cuda.Event), f32 on the CPU (time.perf_counter); warm-up, then the median. Prints the
same table as build/bench/unet.

    python3 scripts/bench_diffusers.py [--config sd15|small] [--batch 1|2] [--steps 20] [--height H --width W]
                                       [--iters N] [--cpu]
"""
import argparse
import statistics
import time

import torch
from diffusers import DPMSolverMultistepScheduler, UNet2DConditionModel

TOKENS = 77
CONFIGS = {"sd15": ((320, 640, 1280, 1280), 768), "small": ((32, 64, 128, 128), 256)}


def build(config, device, dtype):
    channels, cross = CONFIGS[config]
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=channels, cross_attention_dim=cross, attention_head_dim=8, layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
    unet = unet.to(device).eval()
    return unet if dtype == torch.float32 else unet.to(dtype)  # .to(float32) would only warn


def median_ms(fn, device, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(stop))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", choices=CONFIGS)
    p.add_argument("--batch", type=int, choices=(1, 2))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--height", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--iters", type=int)
    p.add_argument("--cpu", action="store_true", help="the CPU even when a GPU is present")
    a = p.parse_args()
    gpu = torch.cuda.is_available() and not a.cpu
    device, dtype = ("cuda", torch.bfloat16) if gpu else ("cpu", torch.float32)
    config = a.config or ("sd15" if gpu else "small")
    height = a.height or (512 if gpu else 256)
    width = a.width or height
    iters = a.iters or (10 if gpu else 5)
    h, w = height // 8, width // 8
    unet = build(config, device, dtype)
    cross = CONFIGS[config][1]
    gen = torch.Generator().manual_seed(1)
    ehs = (torch.rand(2, TOKENS, cross, generator=gen) * 2 - 1).to(device, dtype)
    sched = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        num_train_timesteps=1000, steps_offset=1)
    print(f"diffusers: {'CUDA ' + torch.cuda.get_device_name() if gpu else 'CPU'}, torch {torch.__version__}")
    print(f"config {config}, {'bf16' if gpu else 'f32'}, {height}x{width} (latents {h}x{w}), "
          f"{a.steps} steps DPM-Solver++, median of {iters}")
    print(f"{'impl':<8} {'batch':<6} {'step ms':>12} {'step it/s':>10} {'sample ms':>14} {'sample it/s':>12}")
    for rows in (1, 2):
        if a.batch and rows != a.batch:
            continue
        cond = ehs[2 - rows:]
        x = (torch.rand(rows, 4, h, w, generator=gen) * 2 - 1).to(device, dtype)
        t = torch.tensor(500, device=device)

        @torch.no_grad()
        def step():
            return unet(x, t, encoder_hidden_states=cond).sample.float().cpu()

        @torch.no_grad()
        def sample():
            sched.set_timesteps(a.steps)
            lat = torch.randn(1, 4, h, w, generator=torch.Generator().manual_seed(42)) * sched.init_noise_sigma
            for ts in sched.timesteps:
                inp = sched.scale_model_input(lat, ts)
                inp = torch.cat([inp] * rows).to(device, dtype)
                eps = unet(inp, ts, encoder_hidden_states=cond).sample.float().cpu()
                if rows == 2:
                    eps = eps[:1] + 7.5 * (eps[1:] - eps[:1])
                lat = sched.step(eps, ts, lat).prev_sample

        if gpu:
            torch.cuda.reset_peak_memory_stats()
        ms = median_ms(step, device, 2, iters)
        ss = median_ms(sample, device, 1, min(iters, 3))
        print(f"{'diffusers':<8} {rows:<6} {ms:12.2f} {1e3 / ms:10.2f} {ss:14.1f} {a.steps * 1e3 / ss:12.2f}")
        if gpu:
            print(f"  peak device memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB (max_memory_allocated)")


if __name__ == "__main__":
    main()
