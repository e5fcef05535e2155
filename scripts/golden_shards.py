#!/usr/bin/env python3
"""scripts/golden_shards.py — the HDF5 shard format (data/shards.h) from h5py's side (pip install h5py numpy).

  python3 scripts/golden_shards.py write
      writes tests/golden/shards_h5py.h5, a 3-row shard made with h5py's defaults, holding the test
      pattern below; tests/test_shards.c reads it back with dice's reader and checks every value.
  python3 scripts/golden_shards.py check PATH_OR_DIR [...]
      reads shards written by dice (a file, or a dataset directory of shard_*.h5) with h5py and checks
      the format: attributes, dataset names, dtypes, shapes, chunking, filters, and, for shards made by
      the tests (model "test-pattern"), every value against the pattern. Make such shards with
      DICE_SHARDS_KEEP=DIR build/emu/test_dice shards_round_trip
      (the round-trip test copies the shards it wrote into DIR).
  python3 scripts/golden_shards.py order SEED EPOCH N
      prints the training loader's permutation of N rows for that seed and epoch, computed from its
      definition in data/loader.h (Philox4x32-10 Fisher-Yates); tests/test_loader.c pins the same values.

The test pattern (the same formulas as in tests/test_shards.c), for a row whose image id is
1000000000007 + 3 g, element k of its latent and position p of its tokens:
  latent_mean[k]   = ((131 g + 7 k) % 2048 - 1024) / 8
  latent_logvar[k] = ((17 g + 3 k) % 64 - 40) / 2                 (exact in float16)
  token_ids[p]     = (31 g + 5 p) % 49408
  caption          = "row g: a photo of a cat" (+ " \u2615 caf\u00e9" when g is odd)
"""
import os
import sys

import h5py
import numpy as np

GOLDEN = os.path.join("tests", "golden", "shards_h5py.h5")
PATTERN_MODEL = "test-pattern"


def pattern_row(g, h, w, c, L):
    k = np.arange(h * w * c, dtype=np.int64)
    mean = (((131 * g + 7 * k) % 2048 - 1024) / 8).astype(np.float32).reshape(h, w, c)
    logvar = (((17 * g + 3 * k) % 64 - 40) / 2).astype(np.float32).reshape(h, w, c)
    tokens = ((31 * g + 5 * np.arange(L, dtype=np.int64)) % 49408).astype(np.int32)
    caption = f"row {g}: a photo of a cat" + (" \u2615 caf\u00e9" if g % 2 else "")
    return mean, logvar, tokens, caption, 1000000000007 + 3 * g


def write_golden():
    n, h, w, c, L = 3, 2, 3, 4, 5
    rows = [pattern_row(g, h, w, c, L) for g in range(n)]
    with h5py.File(GOLDEN, "w") as f:  # h5py's default file format ("earliest")
        f.attrs["format_version"] = 1
        f.attrs["latent_layout"] = "NHWC"
        f.attrs["model"] = PATTERN_MODEL
        f.attrs["image_size"] = 16
        f.attrs["scaling_factor"] = 0.18215
        f.attrs["created_by"] = f"scripts/golden_shards.py (h5py {h5py.__version__})"
        opts = dict(compression="gzip", compression_opts=4, shuffle=True, fletcher32=True)
        f.create_dataset("latent_mean", data=np.stack([r[0] for r in rows]), chunks=(1, h, w, c), **opts)
        f.create_dataset("latent_logvar", data=np.stack([r[1] for r in rows]).astype(np.float16),
                         chunks=(1, h, w, c), **opts)
        f.create_dataset("token_ids", data=np.stack([r[2] for r in rows]), chunks=(2, L), **opts)
        captions = [r[3].encode("utf-8") for r in rows]
        f.create_dataset("captions", data=captions, dtype=h5py.string_dtype("utf-8", max(map(len, captions))),
                         chunks=(2,), **opts)
        f.create_dataset("image_ids", data=np.array([r[4] for r in rows], dtype=np.int64), chunks=(2,), **opts)
    print(f"wrote {GOLDEN} ({os.path.getsize(GOLDEN)} bytes)")


def fail(path, msg):
    raise SystemExit(f"{path}: {msg}")


def check_shard(path):
    with h5py.File(path, "r") as f:
        for key, kind in [("format_version", np.integer), ("image_size", np.integer), ("scaling_factor", np.floating)]:
            if key not in f.attrs or not isinstance(f.attrs[key], kind):
                fail(path, f"attribute {key} missing or of the wrong type: {f.attrs.get(key)!r}")
        text = {}
        for key in ["latent_layout", "model", "created_by"]:  # dice writes fixed-length UTF-8 strings
            attr = f.attrs.get_id(key)
            if attr.get_type().get_class() != h5py.h5t.STRING or attr.get_type().is_variable_str():
                fail(path, f"attribute {key} is not a fixed-length string: {f.attrs.get(key)!r}")
            text[key] = f.attrs[key].decode("utf-8")
        if f.attrs["format_version"] != 1 or text["latent_layout"] != "NHWC":
            fail(path, f"version {f.attrs['format_version']}, layout {text['latent_layout']}")
        mean, logvar, tokens = f["latent_mean"], f["latent_logvar"], f["token_ids"]
        captions, ids = f["captions"], f["image_ids"]
        n = mean.shape[0]
        want = {
            "latent_mean": (np.dtype("<f4"), 4),
            "latent_logvar": (np.dtype("<f2"), 4),
            "token_ids": (np.dtype("<i4"), 2),
            "image_ids": (np.dtype("<i8"), 1),
        }
        for name, (dtype, rank) in want.items():
            d = f[name]
            if d.dtype != dtype or d.ndim != rank or d.shape[0] != n:
                fail(path, f"{name}: dtype {d.dtype} shape {d.shape}, expected {dtype} rank {rank} with {n} rows")
        info = h5py.check_string_dtype(captions.dtype)
        if info is None or info.length is None or info.encoding != "utf-8" or captions.shape != (n,):
            fail(path, f"captions: {captions.dtype} {info} shape {captions.shape}, expected fixed-length UTF-8")
        if info.length != max(len(c) for c in captions[:]):
            fail(path, f"captions: width {info.length} is not the longest caption's length")
        if logvar.shape != mean.shape:
            fail(path, f"latent_logvar shape {logvar.shape} != latent_mean shape {mean.shape}")
        for name in list(want) + ["captions"]:
            d = f[name]
            if d.maxshape[0] is not None:
                fail(path, f"{name}: maxshape {d.maxshape}, expected unlimited rows")
            if d.chunks is None or d.compression != "gzip" or d.compression_opts != 4 or not d.shuffle or not d.fletcher32:
                fail(path, f"{name}: chunks {d.chunks} compression {d.compression} {d.compression_opts} "
                     f"shuffle {d.shuffle} fletcher32 {d.fletcher32}")
        if mean.chunks[0] != 1:
            fail(path, f"latent_mean chunks {mean.chunks}, expected one row per chunk")
        _, h, w, c = mean.shape
        checked = 0
        if text["model"] == PATTERN_MODEL:
            for i in range(n):
                m, lv, t, cap, iid = pattern_row(int(ids[i] - 1000000000007) // 3, h, w, c, tokens.shape[1])
                got_cap = captions[i].decode("utf-8")
                if (not np.array_equal(mean[i], m) or not np.array_equal(logvar[i].astype(np.float32), lv)
                        or not np.array_equal(tokens[i], t) or got_cap != cap or ids[i] != iid):
                    fail(path, f"row {i} differs from the test pattern (caption {got_cap!r})")
                checked += 1
        print(f"{path}: ok: {n} rows, latent {(h, w, c)}, {tokens.shape[1]} tokens, model {text['model']!r}, "
              f"created_by {text['created_by']!r}" + (f", {checked} rows match the test pattern" if checked else ""))


def philox4x32_10(ctr, key):
    """Random123's philox4x32 with 10 rounds on 4 counter words and 2 key words."""
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    m = 0xFFFFFFFF
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & m, (k1 + 0xBB67AE85) & m
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & m, p1 & m, ((p0 >> 32) ^ c3 ^ k1) & m, p0 & m
    return c0, c1, c2, c3


def loader_permutation(seed, epoch, n):
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        d = n - 1 - i
        x = philox4x32_10((d & 0xFFFFFFFF, d >> 32, 0x73687566, epoch), (seed & 0xFFFFFFFF, seed >> 32))
        j = ((x[0] | (x[1] << 32)) * (i + 1)) >> 64
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "write":
        write_golden()
    elif len(sys.argv) == 5 and sys.argv[1] == "order":
        print(" ".join(map(str, loader_permutation(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))))
    elif len(sys.argv) >= 3 and sys.argv[1] == "check":
        for arg in sys.argv[2:]:
            paths = ([os.path.join(arg, p) for p in sorted(os.listdir(arg)) if p.startswith("shard_") and p.endswith(".h5")]
                     if os.path.isdir(arg) else [arg])
            if not paths:
                fail(arg, "no shard_*.h5 files")
            for p in paths:
                check_shard(p)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
