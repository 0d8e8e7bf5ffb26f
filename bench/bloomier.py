"""Bloomier-filter coding (Weightless) vs zerorun / sparse on real MiniLM layers.

The weight matrices of the all-MiniLM-L6-v2 encoder layers are pruned (90 /
95 / 98 / 99 / 99.5 % per tensor) and clustered to 4 bits (16 indices incl. the exact
zero), exactly as the ``prune`` + ``cluster`` codecs do; the resulting uint8
index arrays are then coded by each coder through ``wcodec.pipeline.Pipeline``:
``bloomier`` lossy (default ``max_fp_rate`` 1/64, and 1/16), ``bloomier`` exact,
``zerorun`` and ``sparse``. Reported: bits per weight of the index stream (the
64-byte codebook per matrix is the same for every coder and left out), the
order-0 entropy of the indices for reference, the false positives of the
lossy modes, and the bloomier decode speed (M positions/s, one thread).

    python -m bench.bloomier [--out bench/results] [--repeat 3] [--embeddings]
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import wcodec.codecs.bloomier  # noqa: F401  (registers the codec)
from wcodec.codecs import intcoding
from wcodec.codecs.base import ArraySpec, SideStreams
from wcodec.pipeline import Pipeline

from . import minilm
from .lossless import machine_info

SPARSITIES = [0.9, 0.95, 0.98, 0.99, 0.995]
BITS = 4
CODERS = {
    "bloomier lossy (fp<=1/64)": {"id": "bloomier", "mode": "lossy"},
    "bloomier lossy (fp<=1/16)": {"id": "bloomier", "mode": "lossy", "max_fp_rate": 1 / 16},
    "bloomier exact": {"id": "bloomier", "mode": "exact"},
    "zerorun": {"id": "zerorun"},
    "sparse": {"id": "sparse"},
}
SPEED = ["bloomier lossy (fp<=1/64)", "bloomier exact"]


def layer_matrices(weights: dict[str, np.ndarray], embeddings: bool) -> dict[str, np.ndarray]:
    """2-D weight matrices of the encoder (and the word embeddings if asked)."""
    out = {}
    for name, w in weights.items():
        if w.ndim == 2 and w.size >= 4096 and (name.startswith("encoder.") or
                                               (embeddings and "word_embeddings" in name)):
            out[name] = np.ascontiguousarray(w, dtype=np.float32)
    return out


def cluster_indices(w: np.ndarray, sparsity: float) -> np.ndarray:
    """uint8 indices of prune(sparsity) + cluster(BITS), as the codecs make them."""
    front = Pipeline([{"id": "prune", "sparsity": sparsity}, {"id": "cluster", "bits": BITS},
                      {"id": "raw"}])
    specs = front.specs(ArraySpec(w.shape, "float32"))
    value = w
    for codec, spec in zip(front.transforms, specs):
        value = codec.encode(value, spec, SideStreams())
    return value


def best_time(fn, repeat: int) -> tuple[float, float]:
    """Best wall time and best CPU time (this process) of ``repeat`` warm calls.
    CPU time is what one core needs even when the machine is shared."""
    fn()
    wall = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def run(mats: dict[str, np.ndarray], repeat: int) -> list[dict]:
    rows = []
    numel = sum(w.size for w in mats.values())
    for sparsity in SPARSITIES:
        t0 = time.perf_counter()
        indices = {n: cluster_indices(w, sparsity) for n, w in mats.items()}
        front_s = time.perf_counter() - t0
        entropy = sum(intcoding.entropy_bits_per_symbol(i.reshape(-1)) * i.size
                      for i in indices.values())
        row = {"sparsity": sparsity, "weights": numel, "prune_cluster_s": front_s,
               "entropy_bpw": entropy / numel, "coders": {}}
        for label, config in CODERS.items():
            pipe = Pipeline([config])
            size = fps = zeros = 0
            tbits = []
            encoded = []
            t0 = time.perf_counter()
            for name, idx in indices.items():
                spec = ArraySpec(idx.shape, "uint8")
                enc = pipe.encode(idx, spec)
                size += len(enc.data)
                zeros += int(np.count_nonzero(idx == 0))
                fps += int(enc.stats.get("false_positives", 0))
                if "value_bits" in enc.stats:
                    tbits.append(int(enc.stats["value_bits"]))
                encoded.append((enc.data, spec, idx))
            encode_s = time.perf_counter() - t0
            entry = {"bytes": size, "bpw": 8 * size / numel, "encode_s": encode_s}
            if tbits:
                entry["value_bits"] = sorted(set(tbits))
            if config["id"] == "bloomier" and config["mode"] == "lossy":
                entry["false_positives"] = fps
                entry["fp_fraction"] = fps / numel
                entry["fp_rate"] = fps / zeros
                entry["fp_per_nonzero"] = fps / (numel - zeros)
            if label in SPEED:
                for data, spec, idx in encoded:  # correctness before timing
                    out = pipe.decode(data, {}, spec)
                    keys = idx != 0
                    assert np.array_equal(out[keys], idx[keys])
                    if config.get("mode") == "exact":
                        assert np.array_equal(out, idx)
                wall, cpu = best_time(lambda: [pipe.decode(d, {}, s) for d, s, _ in encoded],
                                      repeat)
                entry["decode_Mpos_per_s"] = numel / wall / 1e6
                entry["decode_Mpos_per_cpu_s"] = numel / cpu / 1e6
            row["coders"][label] = entry
            print(f"  {sparsity:.1%} {label}: {entry['bpw']:.3f} bits/weight", flush=True)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    labels = list(CODERS)
    head = ("| sparsity | index entropy (order 0) | "
            + " | ".join(labels) + " | lossy fp<=1/64: t, false positives (% of weights, "
            "per nonzero) | exact: t | bloomier decode M pos/s, CPU time (lossy / exact) "
            "| same, wall time |")
    lines = [head, "|" + "---:|" * (len(labels) + 6)]
    for r in rows:
        c = r["coders"]
        lossy, exact = c[SPEED[0]], c[SPEED[1]]
        t_l = "/".join(map(str, lossy.get("value_bits", [])))
        t_e = "/".join(map(str, exact.get("value_bits", [])))
        cells = [f"{r['sparsity']:.1%}", f"{r['entropy_bpw']:.3f}"]
        cells += [f"{c[label]['bpw']:.3f}" for label in labels]
        cells.append(f"t={t_l}: {100 * lossy['fp_fraction']:.2f} %, "
                     f"{lossy['fp_per_nonzero']:.2f}")
        cells.append(t_e)
        cells.append(f"{lossy['decode_Mpos_per_cpu_s']:.0f} / "
                     f"{exact['decode_Mpos_per_cpu_s']:.0f}")
        cells.append(f"{lossy['decode_Mpos_per_s']:.0f} / {exact['decode_Mpos_per_s']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--embeddings", action="store_true",
                    help="also code the 30522x384 word embedding matrix")
    args = ap.parse_args(argv)
    from safetensors.numpy import load_file

    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    mats = layer_matrices(load_file(minilm.weights_path()), args.embeddings)
    numel = sum(w.size for w in mats.values())
    print(f"{len(mats)} matrices, {numel:,} weights; {BITS}-bit clusters", flush=True)
    rows = run(mats, args.repeat)
    text = table(rows)
    print(text)
    intro = (f"all-MiniLM-L6-v2: {len(mats)} encoder weight matrices ({numel:,} weights), "
             f"pruned per tensor and clustered to {BITS} bits (K = 16 incl. zero). Bits per "
             "weight of the coded index stream (data stream only; the 64-byte codebook per "
             "matrix is common to all coders). Lossy bloomier keeps false positives (zero "
             "weights decoded as a random cluster); exact bloomier stores them as an "
             f"exception list. Decode: the whole coder decode of all matrices, one thread, best "
             f"of {args.repeat} runs, as positions per second of CPU time (what one core "
             "needs; robust when the machine is shared) and of wall time.\n\n")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bloomier.md"), "w") as f:
        f.write(intro + text + "\n")
    with open(os.path.join(args.out, "bloomier.json"), "w") as f:
        json.dump({"machine": machine_info(), "matrices": len(mats), "weights": numel,
                   "bits": BITS, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
