"""The README's first command: pack the real all-MiniLM-L6-v2 weights with the
``wcodec`` CLI, inspect and verify the file, then load it into a PyTorch model
and check it against the original weights.

    python -m bench.quickstart [--recipe lossless] [--out minilm.wcodec]
"""
from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import torch

import wcodec
import wcodec.torch as wtorch
from wcodec.formats import read_weights

from . import minilm


def run(*args: str) -> None:
    print("$ wcodec " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "wcodec", *args], check=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="lossless")
    ap.add_argument("--out", default="minilm.wcodec")
    args = ap.parse_args(argv)
    src = minilm.weights_path()
    run("pack", src, "-o", args.out, "--recipe", args.recipe)
    run("info", args.out)
    run("verify", args.out)
    model = minilm.build_model()
    missing, unexpected = wtorch.load_model(model, args.out)
    state = model.state_dict()
    worst = 0.0
    for name, array, _ in read_weights(src):
        loaded = state[name].numpy()
        worst = max(worst, float(np.abs(loaded.astype(np.float64) - array).max()) if array.size else 0)
    ids = torch.tensor([[101, 7592, 2088, 102]])  # "[CLS] hello world [SEP]"
    with torch.no_grad():
        embedding = model(ids, torch.ones_like(ids))
    print(f"loaded into {type(model).__name__}: {len(state)} tensors, missing={missing}, "
          f"unexpected={unexpected}; largest weight difference vs the original: {worst:g}; "
          f"embedding of 'hello world' starts {embedding[0, :4].tolist()}")
    with wcodec.open(args.out) as f:
        print(f"recipe {f.metadata().get('wcodec.recipe')!r}: {len(f.keys())} tensors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
