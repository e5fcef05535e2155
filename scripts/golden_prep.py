#!/usr/bin/env python3
"""scripts/golden_prep.py — golden data for `dice prep`'s image transform (data/prep.h, tests/test_prep.c).

  python3 scripts/golden_prep.py     (from the repository root; needs torch, torchvision, pillow, numpy, safetensors)

The transform is the DICE authors' (zju-pi/dice, torch_utils/dataset.py, COCODataset._load_raw_image): the
decoded uint8 image (H, W, 3) (grey repeated to 3 channels) is centre-cropped to its shorter side m, rows
(H - m) // 2 .. and columns (W - m) // 2 .., then
    transforms.Compose([ToPILImage(), Resize((res, res)), ToTensor()])
is applied and the result is multiplied by 255 and cast to uint8; training then uses image / 127.5 - 1.
Resize on a PIL image is PIL's Image.resize(size, BILINEAR): a separable, antialiased triangle filter in 8-bit
fixed point, which dice reimplements in C (data/prep_image.c).

Writes tests/golden/prep/:
  resize.safetensors   per case i: in{i} (H, W, 3) uint8 random pixels, out{i} (res, res, 3) uint8 through the
                       transform above, norm{i} (res, res, 3) float32 = out{i} / 127.5 - 1 computed by torch;
                       metadata "cases" = "H,W,res;..." (downsampling by integer and fractional ratios,
                       upsampling, identity, landscape and portrait crops)
  photo.jpg, grey.jpg  small JPEGs written by PIL (quality 90; 4:2:0 colour and greyscale)
  jpeg.safetensors     photo / grey: PIL's decoded pixels (H, W, 3) uint8, and photo_out / grey_out: the whole
                       transform at 16 x 16 from the file (decode, crop, resize)
"""
import io
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import save_safetensors, torch_metadata  # noqa: E402

OUT = os.path.join("tests", "golden", "prep")
CASES = [(23, 37, 16), (31, 17, 8), (5, 9, 12), (40, 40, 24), (16, 16, 16), (97, 130, 64), (12, 7, 5)]


def authors_transform(image, res):
    """image: (H, W, 3) or (H, W) uint8 as np.array(PIL.Image.open(f)) gives it -> (res, res, 3) uint8."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, np.newaxis], 3, axis=2)
    h, w = image.shape[:2]
    m = min(h, w)
    top, left = (h - m) // 2, (w - m) // 2
    image = image[top:top + m, left:left + m, :]
    t = transforms.Compose([transforms.ToPILImage(), transforms.Resize((res, res)), transforms.ToTensor()])
    chw = (255 * t(image)).numpy().astype(np.uint8)
    return np.ascontiguousarray(chw.transpose(1, 2, 0))


def make_resize():
    rng = np.random.RandomState(2025)
    tensors = {}
    for i, (h, w, res) in enumerate(CASES):
        image = rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)
        if i == 3:  # a smooth gradient too, where rounding differences would show
            yy, xx = np.mgrid[0:h, 0:w]
            image[:, :, 0] = (yy * 255 // (h - 1)).astype(np.uint8)
        out = authors_transform(image, res)
        tensors[f"in{i}"] = torch.from_numpy(image)
        tensors[f"out{i}"] = torch.from_numpy(out)
        tensors[f"norm{i}"] = torch.from_numpy(out).float() / 127.5 - 1
    meta = dict(torch_metadata(), cases=";".join(f"{h},{w},{r}" for h, w, r in CASES),
                torchvision_version=torchvision.__version__,
                pillow_version=Image.__version__)
    save_safetensors(os.path.join(OUT, "resize.safetensors"), tensors, meta)


def make_jpeg():
    rng = np.random.RandomState(7)
    yy, xx = np.mgrid[0:29, 0:45]
    photo = np.stack([(xx * 5) % 256, (yy * 8) % 256, (xx * yy) % 256], axis=2).astype(np.uint8)
    photo = np.clip(photo.astype(int) + rng.randint(-20, 21, size=photo.shape), 0, 255).astype(np.uint8)
    grey = ((np.mgrid[0:33, 0:20][0] * 7 + rng.randint(0, 30, size=(33, 20))) % 256).astype(np.uint8)
    tensors = {}
    for name, pixels, mode in (("photo", photo, "RGB"), ("grey", grey, "L")):
        path = os.path.join(OUT, f"{name}.jpg")
        buf = io.BytesIO()
        Image.fromarray(pixels, mode).save(buf, format="JPEG", quality=90)
        with open(path, "wb") as f:
            f.write(buf.getvalue())
        decoded = np.array(Image.open(path))
        rgb = decoded if decoded.ndim == 3 else np.repeat(decoded[:, :, np.newaxis], 3, axis=2)
        tensors[name] = torch.from_numpy(np.ascontiguousarray(rgb))
        tensors[f"{name}_out"] = torch.from_numpy(authors_transform(decoded, 16))
    save_safetensors(os.path.join(OUT, "jpeg.safetensors"), tensors,
                     dict(torch_metadata(), pillow_version=Image.__version__))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_resize()
    make_jpeg()
    for name in sorted(os.listdir(OUT)):
        print(f"wrote {os.path.join(OUT, name)} ({os.path.getsize(os.path.join(OUT, name))} bytes)")
