"""all-MiniLM-L6-v2 post-training (no data) fidelity: sentence embeddings of
each compressed model vs the fp32 model on real English sentences
(``bench.sentences``), tokenized with the ``tokenizers`` package.

Metrics: ``cos_mean``, the mean cosine similarity between each sentence's
compressed and fp32 embeddings; ``top10_agree``, for each sentence the overlap
of its 10 nearest neighbours among the other sentences under the fp32 and the
compressed embeddings (|A & B| / 10), averaged.

The rate-allocated rows (:func:`allocated_recipes`) give each weight matrix its
own quantization step with ``wcodec.allocate``; the sensitivities it needs are
measured on random token sequences, not on text, so these rows stay data-free."""
from __future__ import annotations

import os

import numpy as np
import torch

from . import minilm

TOKENIZERS_HINT = "the 'tokenizers' package is missing: pip install tokenizers"


def _tokenizer():
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise SystemExit(TOKENIZERS_HINT) from None
    return Tokenizer.from_file(os.path.join(minilm.model_dir(), "tokenizer.json"))


def tokenize(sentences: list[str], max_len: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(ids, attention_mask) int64 arrays, truncated to ``max_len`` and padded."""
    tok = _tokenizer()
    tok.enable_truncation(max_length=max_len)
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]") or 0, pad_token="[PAD]")
    enc = tok.encode_batch(sentences)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    return ids, mask


@torch.no_grad()
def embed(model, ids: np.ndarray, mask: np.ndarray, batch: int = 64) -> np.ndarray:
    """Unit embeddings (n, 384); batches of similar lengths, trimmed of padding."""
    lengths = mask.sum(1)
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(ids), 384), np.float32)
    for i in range(0, len(order), batch):
        sel = order[i:i + batch]
        n = int(lengths[sel].max())
        e = model(torch.from_numpy(ids[sel, :n]), torch.from_numpy(mask[sel, :n]))
        out[sel] = e.numpy()
    return out


def random_token_probes(n: int = 256, length: int = 32, seed: int = 0
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences ``[CLS] t1 .. t(length-2) [SEP]`` of tokens drawn uniformly
    from the vocabulary's word pieces (special and ``[unused]`` entries left
    out): inputs for measuring sensitivities without any data."""
    tok = _tokenizer()
    pieces = np.array(sorted(i for t, i in tok.get_vocab().items()
                             if not (t.startswith("[") and t.endswith("]"))), np.int64)
    ids = np.random.default_rng(seed).choice(pieces, size=(n, length))
    ids[:, 0], ids[:, -1] = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    return torch.from_numpy(ids), torch.ones(n, length, dtype=torch.int64)


# distortion budgets (1 - cosine on the random-token probes) of the rate-allocated rows
ALLOCATION_BUDGETS = {True: (0.01, 0.016), False: (0.008, 0.012, 0.016, 0.02)}
# the full run also shows one budget with a step per row (granularity "channel")
CHANNEL_BUDGETS = {True: (), False: (0.014,)}


def allocated_recipes(model, quick: bool) -> dict[str, dict]:
    """Rate-allocated step recipes: sensitivities of ``model`` (fp32 weights
    loaded) on random-token probes, then one step ratio per weight matrix for
    each budget (``wcodec.allocate``, one step per tensor; the full run adds a
    row with one step per matrix row for comparison); the other float tensors
    (biases, LayerNorms: 0.1% of the weights, 1% of the file when lossless) in
    float16."""
    from wcodec import allocate

    ids, mask = random_token_probes()
    out = {}
    for granularity, budgets in (("tensor", ALLOCATION_BUDGETS[quick]),
                                 ("channel", CHANNEL_BUDGETS[quick])):
        if not budgets:
            continue
        sens = allocate.measure_sensitivity(model, lambda m: m(ids, mask),
                                            granularity=granularity)
        suffix = "" if granularity == "tensor" else " per-row steps"
        for b in budgets:
            out[f"auto rate-allocated budget={b}{suffix}"] = allocate.step_recipe(
                allocate.allocate(sens, b), name=f"auto-allocated-{b}{suffix.replace(' ', '-')}",
                extends="fp16", granularity=granularity)
    return out


def cos_mean(ref: np.ndarray, emb: np.ndarray) -> float:
    a = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    b = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    return float((a * b).sum(1).mean())


def neighbours(emb: np.ndarray, k: int = 10) -> np.ndarray:
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def topk_agree(ref: np.ndarray, emb: np.ndarray, k: int = 10) -> float:
    a, b = neighbours(ref, k), neighbours(emb, k)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))


def recipes(quick: bool) -> dict[str, object]:
    """Recipe label -> recipe (built-in name or dict) for the MiniLM rows."""
    out: dict[str, object] = {"fp16": "fp16", "bf16": "bf16", "int8": "int8", "int4": "int4",
                              "auto": "auto"}
    lossy = {"dtypes": ["float"], "min_size": 4096, "min_ndim": 2}
    ratios = (0.125, 0.5) if quick else (0.0625, 0.125, 0.5, 1.0)
    for r in ratios:
        out[f"auto step_ratio={r}"] = {
            "name": f"auto-step{r}", "rules": [
                dict(lossy, pipeline=[{"id": "quantize", "mode": "step", "step_ratio": r},
                                      {"id": "auto"}]),
                {"pipeline": [{"id": "bytegroup"}]}]}
    out["deep-compression"] = "deep-compression"
    sparsities = (0.5,) if quick else (0.3, 0.5, 0.7)
    for s in sparsities:
        out[f"deep-compression sparsity={s}"] = {
            "name": f"deep-compression-s{s}", "rules": [
                dict(lossy, pipeline=[{"id": "prune", "sparsity": s}, {"id": "cluster", "bits": 5},
                                      {"id": "auto", "candidates": ["huffman", "zerorun", "sparse"]}]),
                {"pipeline": [{"id": "bytegroup"}]}]}
    if not quick:
        out["deep-compression sparsity=0.5 bits=6"] = {
            "name": "deep-compression-s0.5-b6", "rules": [
                dict(lossy, pipeline=[{"id": "prune", "sparsity": 0.5}, {"id": "cluster", "bits": 6},
                                      {"id": "auto", "candidates": ["huffman", "zerorun", "sparse"]}]),
                {"pipeline": [{"id": "bytegroup"}]}]}
    return out
