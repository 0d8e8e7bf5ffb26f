"""Shared pieces of ``python -m bench``: the summary row schema, baseline sizes
(GGUF-style Q8_0/Q4_0 block formula, zstd -19 of the safetensors file), the
GGUF-style quantizers used to measure those baselines' accuracy, the markdown
report and the plots."""
from __future__ import annotations

import hashlib
import json
import math
import os

import numpy as np

CASES = ("lenet300-fmnist", "lenet5-fmnist", "minilm-l6")
METRICS = ("top1", "cos_mean", "top10_agree")
# field -> allowed python types (None allowed only where listed in NULLABLE)
ROW_FIELDS = {"case": str, "recipe": str, "finetuned": bool, "size_bytes": int,
              "fp32_bytes": int, "ratio": float, "metric": str, "value": float,
              "baseline_value": float, "decode_s": float, "encode_s": float}
# baselines whose size comes from a formula have no wcodec decode/encode time
NULLABLE = {"decode_s", "encode_s"}

GGUF_BLOCK = 32
GGUF_BLOCK_BYTES = {"q8_0": 34, "q4_0": 18}  # fp16 scale + 32 int8 / 32 nibbles

PUBLISHED = [
    "Deep Compression (Han et al., ICLR 2016), on MNIST: LeNet-300-100 1070 KB -> 27 KB (40x), "
    "LeNet-5 1720 KB -> 44 KB (39x), no loss of top-1 accuracy (pruning + retraining, "
    "k-means weight sharing with centroid retraining, Huffman coding).",
    "Weightless (Reagen et al., ICML 2018) reports LeNet-300-100 and LeNet-5 on MNIST up to 496x "
    "smaller (vs 40x/39x for Deep Compression) with no accuracy loss, encoding the clustered "
    "non-zero weights in a lossy Bloomier filter and retraining around its false positives; "
    "these are MNIST figures, ours are Fashion-MNIST (a harder task).",
]


def check_row(row: dict) -> None:
    """Raise ValueError unless ``row`` has the summary schema."""
    missing = set(ROW_FIELDS) - set(row)
    if missing:
        raise ValueError(f"row misses {sorted(missing)}: {row}")
    for key, typ in ROW_FIELDS.items():
        v = row[key]
        if v is None and key in NULLABLE:
            continue
        if typ is float:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        elif typ is int:
            ok = isinstance(v, int) and not isinstance(v, bool)
        else:
            ok = isinstance(v, typ)
        if not ok:
            raise ValueError(f"row field {key}={v!r} is not a {typ.__name__}: {row}")
    if row["case"] not in CASES:
        raise ValueError(f"unknown case {row['case']!r}")
    if row["metric"] not in METRICS:
        raise ValueError(f"unknown metric {row['metric']!r}")
    if row["size_bytes"] <= 0 or row["fp32_bytes"] <= 0:
        raise ValueError("sizes must be positive")
    if abs(row["ratio"] - row["fp32_bytes"] / row["size_bytes"]) > 1e-6 * row["ratio"]:
        raise ValueError(f"ratio != fp32_bytes / size_bytes: {row}")


def make_row(case, recipe, finetuned, size_bytes, fp32_bytes, metric, value, baseline_value,
             decode_s, encode_s, **extra) -> dict:
    row = {"case": case, "recipe": recipe, "finetuned": bool(finetuned),
           "size_bytes": int(size_bytes), "fp32_bytes": int(fp32_bytes),
           "ratio": fp32_bytes / size_bytes, "metric": metric, "value": float(value),
           "baseline_value": float(baseline_value),
           "decode_s": None if decode_s is None else float(decode_s),
           "encode_s": None if encode_s is None else float(encode_s)}
    row.update(extra)
    check_row(row)
    return row


# -- baselines ---------------------------------------------------------------
def gguf_bytes(shapes: dict[str, tuple], kind: str) -> int:
    """Bytes of the tensor data when every tensor of >= 2 dims is stored as
    GGUF ``kind`` blocks (34 bytes per 32 weights for Q8_0, 18 for Q4_0, a
    partial last block counted whole) and the rest as fp32 (no file header)."""
    per_block = GGUF_BLOCK_BYTES[kind]
    total = 0
    for shape in shapes.values():
        n = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
        if len(shape) >= 2:
            total += -(-n // GGUF_BLOCK) * per_block
        else:
            total += 4 * n
    return total


def gguf_quantize(w: np.ndarray, kind: str) -> np.ndarray:
    """Dequantized ``w`` after ggml's Q8_0 / Q4_0 reference quantizer, on
    blocks of 32 consecutive weights (flattened; zero-padded last block)."""
    flat = np.asarray(w, np.float32).reshape(-1)
    n = flat.size
    pad = (-n) % GGUF_BLOCK
    x = np.concatenate([flat, np.zeros(pad, np.float32)]).reshape(-1, GGUF_BLOCK)
    if kind == "q8_0":
        amax = np.abs(x).max(1, keepdims=True)
        d = (amax / 127).astype(np.float16).astype(np.float32)
        inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
        q = np.clip(np.rint(x * inv), -127, 127)
        out = q * d
    elif kind == "q4_0":
        # d = max / -8 where max is the signed value of largest magnitude
        idx = np.abs(x).argmax(1)
        mx = x[np.arange(x.shape[0]), idx][:, None]
        d = (mx / -8).astype(np.float16).astype(np.float32)
        inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
        q = np.clip(np.floor(x * inv + 8.5), 0, 15)
        out = (q - 8) * d
    else:
        raise ValueError(kind)
    return out.reshape(-1)[:n].reshape(w.shape).astype(np.float32)


def gguf_state(state: dict[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    """A state dict with every >= 2-D float tensor passed through ``gguf_quantize``."""
    return {k: gguf_quantize(v, kind) if v.ndim >= 2 and v.dtype.kind == "f" else v
            for k, v in state.items()}


def zstd19_size(path: str, cache_dir: str | None = None) -> int:
    """Size of ``path`` compressed with zstd level 19 (cached by file size + head digest)."""
    import zstandard

    with open(path, "rb") as f:
        raw = f.read()
    key = hashlib.sha1(raw[:1 << 20] + str(len(raw)).encode()).hexdigest()[:16]
    cache = os.path.join(cache_dir, f"zstd19-{key}.json") if cache_dir else None
    if cache and os.path.exists(cache):
        with open(cache) as f:
            return int(json.load(f)["size"])
    size = len(zstandard.ZstdCompressor(level=19, threads=-1).compress(raw))
    if cache:
        os.makedirs(cache_dir, exist_ok=True)
        with open(cache, "w") as f:
            json.dump({"size": size, "source_bytes": len(raw)}, f)
    return size


# -- report ------------------------------------------------------------------
def _fmt(v, fmt):
    return "" if v is None else format(v, fmt)


def markdown(summary: dict) -> str:
    m = summary["machine"]
    lines = [f"# wcodec benchmarks on real models and data{' (--quick)' if summary.get('quick') else ''}",
             "",
             f"wcodec {summary['version']} (commit {m.get('commit') or '?'}), python {m.get('python')}, "
             f"torch {m.get('torch')}, {m.get('cpus')} CPUs ({m.get('machine')}). "
             f"Total run time {summary.get('elapsed_s', 0):.0f} s.",
             "",
             "`ratio` = fp32 safetensors bytes / stored bytes. `decode ms` = warm time to load the "
             "file into the torch model (materialised, one tensor decoded at a time); the fp32 row "
             "is safetensors `load_file` + `load_state_dict` into the same model. `encode s` uses "
             f"wcodec's default of {m.get('wcodec_threads', 1)} tensor(s) encoded at a time. Sizes of the GGUF rows come from "
             "the block formula (tensor data only) and their accuracy from ggml's reference "
             "quantizer simulated in numpy; zstd -19 is the fp32 safetensors file compressed."]
    for case in CASES:
        rows = [r for r in summary["rows"] if r["case"] == case and r["metric"] != "top10_agree"]
        if not rows:
            continue
        info = summary.get("cases", {}).get(case, {})
        lines += ["", f"## {case}", ""]
        if info.get("description"):
            lines += [info["description"], ""]
        metric = rows[0]["metric"]
        extra = " | top10_agree" if case == "minilm-l6" else ""
        lines += [f"| recipe | fine-tuned | size (bytes) | ratio | bits/weight | {metric} | "
                  f"baseline | delta{extra} | decode ms | vs fp32 load | encode s |",
                  "|---|:---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if extra else "")
                  + "---:|---:|---:|"]
        st = next((r["decode_s"] for r in rows if r["recipe"] == "fp32 safetensors"), None)
        for r in rows:
            delta = r["value"] - r["baseline_value"]
            dstr = f"{delta * 100:+.2f}pp" if metric == "top1" else f"{delta:+.4f}"
            val = f"{r['value'] * 100:.2f}%" if metric == "top1" else f"{r['value']:.4f}"
            base = (f"{r['baseline_value'] * 100:.2f}%" if metric == "top1"
                    else f"{r['baseline_value']:.4f}")
            ex = f" | {_fmt(r.get('top10_agree'), '.3f')}" if extra else ""
            vs = (f"{r['decode_s'] / st:.2f}x" if st and r["decode_s"] is not None else "")
            lines.append(f"| {r['recipe']} | {'yes' if r['finetuned'] else 'no'} | "
                         f"{r['size_bytes']} | {r['ratio']:.1f} | {_fmt(r.get('bits_per_weight'), '.2f')} | "
                         f"{val} | {base} | {dstr}{ex} | {_fmt(r['decode_s'] and r['decode_s'] * 1e3, '.1f')} | "
                         f"{vs} | {_fmt(r['encode_s'], '.2f')} |")
        if info.get("notes"):
            lines += [""] + [f"- {n}" for n in info["notes"]]
    if summary.get("skipped"):
        lines += ["", "## Skipped", ""]
        lines += [f"- {s['case']} / {s['recipe']}: {s['reason']}" for s in summary["skipped"]]
    if summary.get("targets"):
        lines += ["", "## Targets (issue 5)", "", "| target | best measured | met |", "|---|---|:---:|"]
        for t in summary["targets"]:
            lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} |")
    lines += ["", "## Published figures", ""] + [f"- {p}" for p in PUBLISHED]
    if summary.get("recipes"):
        lines += ["", "## Exact recipes", ""]
        for name, spec in summary["recipes"].items():
            lines += [f"<details><summary>{name}</summary>", "", "```json",
                      json.dumps(spec, indent=1), "```", "</details>", ""]
    return "\n".join(lines) + "\n"


def family(recipe: str) -> str:
    r = recipe.lower()
    if "rate-allocated" in r and "per-row" in r:
        return "rate-allocated, per-row steps"
    for key in ("weightless", "deep-compression", "dc-", "rate-allocated", "auto", "int8", "int4", "q8_0", "q4_0",
                "fp16", "bf16", "zstd", "lossless", "fp32"):
        if key in r:
            return "deep-compression" if key == "dc-" else key
    return recipe


def plots(summary: dict, out: str) -> list[str]:
    """PNG plots (matplotlib): MiniLM bits/weight vs cos_mean per recipe
    family, and ratio vs top-1 for the LeNets. Returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  matplotlib is not installed (pip install matplotlib): plots skipped", flush=True)
        return []
    written = []
    rows = [r for r in summary["rows"] if r["case"] == "minilm-l6" and r["metric"] == "cos_mean"]
    if rows:
        fig, (ax, zoom) = plt.subplots(1, 2, figsize=(12, 4.5))
        fams: dict[str, list] = {}
        for r in rows:
            fams.setdefault(family(r["recipe"]), []).append(r)
        tab20 = plt.get_cmap("tab20").colors
        colours = tab20[::2] + tab20[1::2]      # the 10 strong colours, then their light twins
        for i, (fam, rs) in enumerate(sorted(fams.items())):
            rs = sorted(rs, key=lambda r: r["bits_per_weight"])
            bits = [r["bits_per_weight"] for r in rs]
            style = dict(marker="o", ls="-", label=fam, color=colours[i % 20])
            ax.plot(bits, [r["value"] for r in rs], **style)
            near = [(b, 1 - r["value"]) for b, r in zip(bits, rs) if b <= 8 and r["value"] < 1]
            if near:
                zoom.plot(*zip(*near), **style)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bits per weight (whole file)")
        ax.set_ylabel("mean cosine similarity vs fp32")
        ax.set_title("all-MiniLM-L6-v2, post-training")
        ax.axhline(0.99, color="grey", lw=0.5, ls="--")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        zoom.set_yscale("log")
        zoom.set_xlabel("bits per weight (whole file), <= 8")
        zoom.set_ylabel("1 - mean cosine (log)")
        zoom.set_title("zoom: the 1 - cosine <= 0.01 target (dashed), 4 bits = 8x")
        zoom.axhline(0.01, color="grey", lw=0.5, ls="--")
        zoom.axvline(4.0, color="grey", lw=0.5, ls=":")
        zoom.grid(alpha=0.3, which="both")
        p = os.path.join(out, "minilm_bits_vs_cos.png")
        fig.tight_layout()
        fig.savefig(p, dpi=120)
        plt.close(fig)
        written.append(p)
    for case in ("lenet300-fmnist", "lenet5-fmnist"):
        rows = [r for r in summary["rows"] if r["case"] == case]
        if not rows:
            continue
        base = rows[0]["baseline_value"] * 100
        target = {"lenet300-fmnist": 100, "lenet5-fmnist": 120}[case]
        fig, (ax, zoom) = plt.subplots(1, 2, figsize=(13, 4.8))
        for ft, marker in ((False, "o"), (True, "s")):
            rs = [r for r in rows if r["finetuned"] == ft]
            label = "fine-tuned" if ft else "post-training"
            ax.scatter([r["ratio"] for r in rs], [r["value"] * 100 for r in rs], marker=marker,
                       label=label)
            for r in rs:
                if r["value"] * 100 < base - 3:          # the crowded top is in the zoom
                    ax.annotate(r["recipe"], (r["ratio"], r["value"] * 100), fontsize=6)
            near = [r for r in rs if r["value"] * 100 >= base - 3 and r["ratio"] >= 10]
            zoom.scatter([r["ratio"] for r in near], [r["value"] * 100 for r in near],
                         marker=marker, label=label)
            for r in near:
                short = r["recipe"].replace(" per-layer + fine-tune", " ft")
                zoom.annotate(short, (r["ratio"], r["value"] * 100), fontsize=7,
                              xytext=(3, 3), textcoords="offset points")
        ax.axhline(base, color="grey", lw=0.5, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("compression ratio vs fp32 safetensors")
        ax.set_ylabel("test top-1 (%)")
        ax.set_title(case)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        zoom.axhline(base, color="grey", lw=0.5, ls="--")
        zoom.axhline(base - 0.5, color="tab:red", lw=0.6, ls="--")
        zoom.axvline(target, color="tab:red", lw=0.6, ls="--")
        zoom.set_xscale("log")
        zoom.set_xlabel("compression ratio (>= 10x)")
        zoom.set_ylabel("test top-1 (%)")
        zoom.set_title(f"zoom: within 3 pp of fp32; target {target}x at <= 0.5 pp (red)")
        zoom.grid(alpha=0.3, which="both")
        p = os.path.join(out, f"{case}_ratio_vs_top1.png")
        fig.tight_layout()
        fig.savefig(p, dpi=120)
        plt.close(fig)
        written.append(p)
    return written
