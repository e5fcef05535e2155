#!/usr/bin/env python3
"""scripts/convert_sharpener.py — converts DICE sharpeners between the authors' pickled snapshots
(github.com/zju-pi/dice: `pickle.load(f)['model']`, a dice_sharpener.Sharpener module) and dice's
safetensors format (the same tensor names: fc1.*, attention.to_{q,k,v}.weight, attention.to_out.0.*,
fc2.*, plus metadata).

  python3 scripts/convert_sharpener.py to-safetensors sharpener-snapshot.pkl out.safetensors \\
      --authors-repo path/to/dice --base-model stable-diffusion-v1-5 --guidance 5 --alpha 1
  python3 scripts/convert_sharpener.py to-pickle in.safetensors sharpener-snapshot.pkl --authors-repo path/to/dice

Unpickling a snapshot needs the authors' repository on the path (its classes are pickled by reference),
and so does writing one that their sample.py can load. Pickles run code when loaded: convert only files
you trust.
"""
import argparse
import pickle
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

NAMES = ["fc1.weight", "fc1.bias", "attention.to_q.weight", "attention.to_k.weight", "attention.to_v.weight",
         "attention.to_out.0.weight", "attention.to_out.0.bias", "fc2.weight", "fc2.bias"]


def check_names(names, source):
    missing, extra = sorted(set(NAMES) - set(names)), sorted(set(names) - set(NAMES))
    if missing or extra:
        sys.exit(f"{source}: not a DICE sharpener (missing: {missing or 'none'}; unexpected: {extra or 'none'})")


def to_safetensors(args):
    with open(args.input, "rb") as f:
        snapshot = pickle.load(f)
    model = snapshot["model"] if isinstance(snapshot, dict) and "model" in snapshot else snapshot
    state = {k: v.detach().to(torch.float32).contiguous().cpu() for k, v in model.state_dict().items()}
    check_names(state.keys(), args.input)
    heads = getattr(getattr(model, "attention", None), "heads", 8)
    meta = {"heads": str(heads), "format": "dice-sharpener", "converted_from": args.input}
    for key in ("base_model", "guidance", "alpha", "steps", "data"):
        if getattr(args, key) is not None:
            meta["guidance_scale" if key == "guidance" else key] = str(getattr(args, key))
    save_file({k: state[k] for k in NAMES}, args.output, metadata=meta)
    d_e = state["fc1.weight"].shape[1]
    print(f"wrote {args.output}: d_e {d_e}, {sum(t.numel() for t in state.values())} parameters, {heads} heads")


def to_pickle(args):
    from dice_sharpener import Sharpener  # the authors' module, from --authors-repo
    with safe_open(args.input, framework="pt") as f:
        check_names(f.keys(), args.input)
        state = {k: f.get_tensor(k) for k in f.keys()}
        heads = int((f.metadata() or {}).get("heads", "8"))
    inner, d_e = state["fc1.weight"].shape
    model = Sharpener(input_dim=d_e, output_dim=d_e, nhead=heads, inner_dim=inner)
    model.load_state_dict(state)
    with open(args.output, "wb") as f:
        pickle.dump({"model": model.eval().requires_grad_(False)}, f)
    print(f"wrote {args.output}: d_e {d_e}, inner {inner}, {heads} heads")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("direction", choices=["to-safetensors", "to-pickle"])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--authors-repo", help="path of a clone of github.com/zju-pi/dice")
    parser.add_argument("--base-model")
    parser.add_argument("--guidance", type=float)
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.authors_repo:
        sys.path.insert(0, args.authors_repo)
    (to_safetensors if args.direction == "to-safetensors" else to_pickle)(args)


if __name__ == "__main__":
    main()
