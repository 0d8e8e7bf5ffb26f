"""Timings of the lossy transform kernels on a 4M-weight float32 tensor.

Usage: python bench/kernel_transforms_speed.py [--repeat N] [--rows R --cols C]
Prints the best of N wall-clock times per kernel, in milliseconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wcodec.kernels import kmeans, prune, quantize  # noqa: E402


def best_ms(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--cols", type=int, default=2048)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((args.rows, args.cols)) * 0.02).astype(np.float32)
    pruned = w * prune.magnitude_mask(w, sparsity=0.5)
    parts = np.array_split(w.reshape(-1), 8)

    cases = [
        ("prune.magnitude_mask sparsity=0.5", lambda: prune.magnitude_mask(w, sparsity=0.5)),
        ("prune.magnitude_mask threshold", lambda: prune.magnitude_mask(w, threshold=0.01)),
        ("prune.global_threshold 8 tensors", lambda: prune.global_threshold(parts, 0.5)),
        ("prune.global_magnitude_masks 8 tensors",
         lambda: prune.global_magnitude_masks(parts, 0.5)),
        ("prune.structured_mask l2 axis=0", lambda: prune.structured_mask(w, sparsity=0.5,
                                                                          norm="l2")),
    ]
    for k in (16, 256):
        for init in kmeans.INITS:
            cases.append((f"kmeans_1d k={k} init={init} (50% zeros)",
                          lambda k=k, init=init: kmeans.kmeans_1d(pruned, k, init=init)))
    cases.append(("kmeans_1d k=16 keep_zero=False (dense)",
                  lambda: kmeans.kmeans_1d(w, 16, keep_zero=False)))
    cases.append(("kmeans_1d k=4096 (50% zeros)", lambda: kmeans.kmeans_1d(pruned, 4096)))
    cb, idx = kmeans.kmeans_1d(pruned, 16)
    cases.append(("kmeans.decode k=16", lambda: kmeans.decode(cb, idx)))

    for scheme in quantize.SCHEMES:
        for gran, kw in (("tensor", {}), ("channel", {}), ("group", {"group_size": 128})):
            cases.append((f"quantize_uniform 4b {scheme} {gran}",
                          lambda s=scheme, g=gran, kw=kw: quantize.quantize_uniform(
                              w, 4, scheme=s, granularity=g, **kw)))
    r_uni = quantize.quantize_uniform(w, 4, scheme="affine", granularity="group", group_size=128)
    cases.append(("dequantize uniform affine group", lambda: quantize.dequantize(r_uni)))
    cases.append(("quantize_ternary channel",
                  lambda: quantize.quantize_ternary(w, granularity="channel")))
    r_ter = quantize.quantize_ternary(w, granularity="channel")
    cases.append(("dequantize ternary", lambda: quantize.dequantize(r_ter)))
    cases.append(("quantize_step step_ratio=0.1",
                  lambda: quantize.quantize_step(w, step_ratio=0.1)))
    r_step = quantize.quantize_step(w, step_ratio=0.1)
    cases.append(("dequantize step", lambda: quantize.dequantize(r_step)))

    print(f"tensor {w.shape} float32 = {w.size:,} weights; best of {args.repeat}")
    for name, fn in cases:
        print(f"  {name:48s} {best_ms(fn, args.repeat):9.1f} ms", flush=True)


if __name__ == "__main__":
    main()
