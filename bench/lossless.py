"""Container + lossless/cast recipes on the real all-MiniLM-L6-v2 weights.

Reports, side by side in one run: size vs the fp32 safetensors file and vs that
file under zstd -19; encode time; decode throughput of ``wcodec.load_file``; and
the warm time to load every weight into the torch model from the .wcodec file
(``wcodec.torch.load_model``) vs from the safetensors file
(``safetensors.torch.load_file`` + ``load_state_dict``, i.e. materialised).

    python -m bench.lossless [--out bench/results] [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time

import numpy as np
import torch
import zstandard

import wcodec
import wcodec.torch as wtorch
from wcodec.parallel import default_threads

from . import minilm

RECIPES = ["lossless", "fp16", "bf16"]


def timed(fn, repeat: int) -> float:
    """Median wall time of ``repeat`` warm calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine_info() -> dict:
    """Where a result was measured: machine, versions and the git commit."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or platform.uname().processor,
            "cpus": os.cpu_count(), "numpy": np.__version__, "torch": torch.__version__,
            "wcodec": wcodec.__version__, "commit": commit,
            "wcodec_threads": default_threads()}  # tensors encoded / decoded at a time by default


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    from safetensors.torch import load_file as st_load_file

    src = minilm.weights_path()
    fp32_bytes = os.path.getsize(src)
    with open(src, "rb") as f:
        raw = f.read()
    print(f"all-MiniLM-L6-v2: {fp32_bytes} bytes fp32 safetensors; zstd -19 ...", flush=True)
    zstd19 = len(zstandard.ZstdCompressor(level=19, threads=-1).compress(raw))
    model = minilm.build_model()
    torch.set_num_threads(1)

    def load_safetensors():
        model.load_state_dict(st_load_file(src))

    t_st = timed(load_safetensors, args.repeat)
    rows = [{"recipe": "safetensors fp32", "size_bytes": fp32_bytes, "ratio_vs_fp32": 1.0,
             "ratio_vs_zstd19": fp32_bytes / zstd19, "encode_s": 0.0, "decode_MBps": None,
             "load_model_s": t_st, "load_vs_safetensors": 1.0, "exact": True},
            {"recipe": "zstd -19 of the file", "size_bytes": zstd19,
             "ratio_vs_fp32": zstd19 / fp32_bytes, "ratio_vs_zstd19": 1.0, "encode_s": None,
             "decode_MBps": None, "load_model_s": None, "load_vs_safetensors": None, "exact": True}]
    from safetensors.numpy import load_file as st_np_load
    arrays = st_np_load(src)
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in RECIPES:
            path = os.path.join(tmp, f"minilm-{recipe}.wcodec")
            t0 = time.perf_counter()
            wcodec.save_file(arrays, path, recipe=recipe)
            encode_s = time.perf_counter() - t0
            size = os.path.getsize(path)
            decoded = wcodec.load_file(path)
            out_bytes = sum(a.nbytes for a in decoded.values())
            exact = all((decoded[k].view("u1") == arrays[k].view("u1")).all() for k in arrays)
            t_dec = timed(lambda: wcodec.load_file(path, threads=1), args.repeat)
            t_load = timed(lambda: wtorch.load_model(model, path, threads=1), args.repeat)
            rows.append({"recipe": recipe, "size_bytes": size, "ratio_vs_fp32": size / fp32_bytes,
                         "ratio_vs_zstd19": size / zstd19, "encode_s": encode_s,
                         "decode_MBps": out_bytes / t_dec / 1e6, "load_model_s": t_load,
                         "load_vs_safetensors": t_load / t_st, "exact": bool(exact)})
            print(f"  {recipe}: {size / fp32_bytes:.2%} of fp32", flush=True)

    lines = ["| recipe | size (bytes) | % of fp32 | % of zstd -19 | encode s | decode MB/s (1 thread) "
             "| load into model ms | vs safetensors | bit-exact |",
             "|---|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for r in rows:
        def f(v, fmt):
            return "" if v is None else format(v, fmt)
        lines.append(f"| {r['recipe']} | {r['size_bytes']} | {r['ratio_vs_fp32']:.1%} "
                     f"| {r['ratio_vs_zstd19']:.1%} | {f(r['encode_s'], '.1f')} "
                     f"| {f(r['decode_MBps'], '.0f')} "
                     f"| {f(r['load_model_s'] and r['load_model_s'] * 1e3, '.1f')} "
                     f"| {f(r['load_vs_safetensors'], '.2f')}{'x' if r['load_vs_safetensors'] else ''} "
                     f"| {'yes' if r['exact'] else 'no'} |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    machine = machine_info()
    with open(os.path.join(args.out, "lossless.json"), "w") as f:
        json.dump({"machine": machine, "rows": rows}, f, indent=1)
    with open(os.path.join(args.out, "lossless.md"), "w") as f:
        f.write("all-MiniLM-L6-v2, torch threads = 1, warm page cache, median of "
                f"{args.repeat} runs. Encode: wcodec.save_file with its default "
                f"{machine['wcodec_threads']} tensors at a time; decode and load: one tensor "
                f"at a time.\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
