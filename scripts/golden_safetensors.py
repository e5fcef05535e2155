#!/usr/bin/env python3
"""scripts/golden_safetensors.py — writes tests/golden/safetensors_python.safetensors with the
reference `safetensors` package (pip install safetensors numpy): one small tensor of every dtype
dice knows, a 0-d scalar, an empty tensor and metadata with a newline and non-ASCII text.
tests/test_safetensors.c reads it back and checks every value exactly, and checks that dice's
writer reproduces the file byte for byte. Run from the repository root; the output is committed.
"""
import os

import numpy as np
from safetensors import TensorSpec, serialize_file

OUT = os.path.join("tests", "golden", "safetensors_python.safetensors")


def spec(dtype, shape, raw):
    """A TensorSpec over the bytes of `raw` (kept alive by the caller's dict)."""
    return TensorSpec(dtype=dtype, shape=list(shape), data_ptr=raw.ctypes.data, data_len=raw.nbytes)


def main():
    arrays = {
        "f64": ("float64", np.array([np.pi, -1e300], dtype="<f8")),
        "i64": ("int64", np.array([-(2**63), 2**40, -1], dtype="<i8")),
        "u64": ("uint64", np.array([2**64 - 1, 0], dtype="<u8")),
        "f32.matrix": ("float32", (np.arange(6, dtype="<f4") * 0.25 - 0.5).reshape(2, 3)),
        "f32.scalar": ("float32", np.array(42.5, dtype="<f4")),
        "f32.empty": ("float32", np.zeros((0, 3), dtype="<f4")),
        "i32": ("int32", np.array([-(2**31), 7], dtype="<i4")),
        "u32": ("uint32", np.array([2**32 - 1, 1], dtype="<u4")),
        "f16": ("float16", np.array([1.0, -2.5, 65504.0, 2.0**-24], dtype="<f2")),
        # bfloat16 has no numpy type: its bit patterns (1.0, -0.5, 3.140625, largest finite)
        "bf16": ("bfloat16", np.array([0x3F80, 0xBF00, 0x4049, 0x7F7F], dtype="<u2")),
        "i16": ("int16", np.array([-32768, 300], dtype="<i2")),
        "u16": ("uint16", np.array([65535, 2], dtype="<u2")),
        "i8": ("int8", np.array([-128, 127], dtype="i1")),
        "u8": ("uint8", np.array([0, 255, 7], dtype="u1")),
        "bool": ("bool", np.array([True, False, True])),
        "f8_e4m3": ("float8_e4m3fn", np.array([0x38, 0xC0, 0x7E], dtype="u1")),  # 1, -2, 448
        "f8_e5m2": ("float8_e5m2", np.array([0x3C, 0xBC], dtype="u1")),  # 1, -1
    }
    tensors = {name: spec(dtype, arr.shape, np.ascontiguousarray(arr)) for name, (dtype, arr) in arrays.items()}
    # the package writes metadata in hash order: the committed file fixes one order
    metadata = {"format": "np", "note": "line one\nline two \u2013 \u00fc"}
    serialize_file(tensors, OUT, metadata=metadata)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
