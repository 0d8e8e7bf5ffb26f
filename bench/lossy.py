"""Lossy recipes on the real all-MiniLM-L6-v2 weights, and entropy-coder speed.

In one run: for each lossy recipe, the size (bits per weight, ratio vs fp32),
the encode time, the coded size of the entropy-coded streams vs their order-0
entropy bound, and the warm time to load every weight into the torch model vs
safetensors loading the fp32 file into the same model (one tensor decoded at a
time, as safetensors does; and with the loader's default parallel decoding); then
the decode throughput (symbols/s, one thread) of huffman, zerorun, sparse and linerice
on symbol streams taken from the model (4-bit quantized levels; 90%-pruned
5-bit clusters).

    python -m bench.lossy [--out bench/results] [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

import wcodec
import wcodec.torch as wtorch
from wcodec.codecs.base import ArraySpec, SideStreams
from wcodec.parallel import default_threads
from wcodec.pipeline import Pipeline

from . import minilm
from .lossless import machine_info, timed

RECIPES = ["int8", "int4", "auto", "deep-compression"]
ENTROPY_CODERS = ("huffman", "zerorun", "sparse", "linerice")


def coder_throughput(weights: dict[str, np.ndarray], repeat: int) -> list[dict]:
    """Decode speed of the entropy coders alone on real symbol streams."""
    mats = [w for w in weights.values() if w.ndim == 2 and w.size >= 4096]
    flat = np.concatenate([m.reshape(-1) for m in mats]).astype(np.float32)
    x = flat[: 1 << 22].reshape(-1, 1024)
    spec = ArraySpec(x.shape, "float32")
    pruned = [{"id": "prune", "sparsity": 0.9}, {"id": "cluster", "bits": 5}]
    cases = [("int4 levels (group 64)", [{"id": "quantize", "bits": 4, "granularity": "group",
                                          "group_size": 64}], "huffman")]
    cases += [("90%-pruned 5-bit clusters", pruned, coder)
              for coder in ("huffman", "zerorun", "sparse", "linerice")]
    rows = []
    for label, transforms, coder in cases:
        front = Pipeline(transforms + [{"id": "raw"}])
        specs = front.specs(spec)
        symbols = x
        for codec, s in zip(front.transforms, specs):
            symbols = codec.encode(symbols, s, SideStreams())
        sym_spec = specs[-1]
        back = Pipeline([{"id": coder}])
        enc = back.encode(symbols, sym_spec)
        t = timed(lambda: back.decode(enc.data, {}, sym_spec), repeat)
        rows.append({"stream": label, "coder": coder, "symbols": int(symbols.size),
                     "bits_per_symbol": 8 * len(enc.data) / symbols.size,
                     "entropy_bits_per_symbol": enc.stats["entropy_bits"] / symbols.size,
                     "decode_Msym_per_s": symbols.size / t / 1e6})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    from safetensors.numpy import load_file as st_np_load
    from safetensors.torch import load_file as st_load_file

    torch.set_num_threads(1)
    src = minilm.weights_path()
    fp32_bytes = os.path.getsize(src)
    weights = st_np_load(src)
    numel = sum(w.size for w in weights.values())
    model = minilm.build_model()
    t_st = timed(lambda: model.load_state_dict(st_load_file(src)), args.repeat)
    threads = default_threads()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in RECIPES:
            path = os.path.join(tmp, f"{recipe}.wcodec")
            t0 = time.perf_counter()
            wcodec.save_file(weights, path, recipe=recipe)
            encode_s = time.perf_counter() - t0
            size = os.path.getsize(path)
            coded = bound = 0.0
            with wcodec.open(path) as f:
                for info in f.infos():
                    if info.pipeline[-1]["id"] in ENTROPY_CODERS and "entropy_bits" in info.stats:
                        coded += 8 * next(s.length for s in info.streams if s.name == "data")
                        bound += info.stats["entropy_bits"]
            t_load = timed(lambda: wtorch.load_model(model, path, threads=1), args.repeat)
            t_par = timed(lambda: wtorch.load_model(model, path, threads=threads), args.repeat)
            rows.append({"recipe": recipe, "size_bytes": size, "bits_per_weight": 8 * size / numel,
                         "ratio": fp32_bytes / size, "encode_s": encode_s,
                         "coded_vs_entropy": coded / bound if bound else None,
                         "load_model_s": t_load, "load_vs_safetensors": t_load / t_st,
                         "load_model_parallel_s": t_par})
            print(f"  {recipe}: {8 * size / numel:.2f} bits/weight", flush=True)
    speed = coder_throughput(weights, args.repeat)

    lines = [f"safetensors fp32 load into the model: {t_st * 1e3:.1f} ms (torch threads = 1, warm, "
             f"median of {args.repeat}). Encode: wcodec.save_file with its default {threads} "
             "tensors at a time.", "",
             "| recipe | size (bytes) | bits/weight (all-in) | x smaller than fp32 | encode s "
             "| entropy-coded streams vs order-0 bound | load into model ms | vs safetensors "
             f"| load ms, {threads} tensors decoded at a time (the default here) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        gap = "" if r["coded_vs_entropy"] is None else f"{(r['coded_vs_entropy'] - 1) * 100:+.1f}%"
        lines.append(f"| {r['recipe']} | {r['size_bytes']} | {r['bits_per_weight']:.2f} "
                     f"| {r['ratio']:.1f} | {r['encode_s']:.1f} | {gap} "
                     f"| {r['load_model_s'] * 1e3:.1f} | {r['load_vs_safetensors']:.2f}x "
                     f"| {r['load_model_parallel_s'] * 1e3:.1f} |")
    lines += ["", "| symbol stream (4M symbols from MiniLM) | coder | bits/symbol | order-0 entropy "
              "| decode M symbols/s (1 thread) |", "|---|---|---:|---:|---:|"]
    for s in speed:
        lines.append(f"| {s['stream']} | {s['coder']} | {s['bits_per_symbol']:.3f} "
                     f"| {s['entropy_bits_per_symbol']:.3f} | {s['decode_Msym_per_s']:.0f} |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "lossy.json"), "w") as f:
        json.dump({"machine": machine_info(), "safetensors_load_s": t_st, "rows": rows,
                   "coders": speed}, f, indent=1)
    with open(os.path.join(args.out, "lossy.md"), "w") as f:
        f.write("all-MiniLM-L6-v2, lossy recipes (post-training, no data).\n\n" + table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
