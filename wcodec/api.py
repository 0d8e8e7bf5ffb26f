"""The numpy-facing API: ``save_file``, ``load_file``, ``open`` (safetensors verbs)."""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

import numpy as np

from . import dtypes
from .codecs.base import ArraySpec
from .container import Reader, Writer
from .container.writer import EncodedTensor, encode_tensor
from .container.format import DEFAULT_MAX_TENSOR_BYTES
from .codecs.cast import convert
from .errors import InputError
from .kernels import prune
from .parallel import check_threads, ordered_map
from .pipeline import Pipeline
from .recipes import Recipe, get_recipe

__version__ = "0.1.0"


def as_array(value: Any) -> tuple[np.ndarray, str]:
    """A numpy array and wcodec dtype name for a numpy array or torch tensor.

    torch tensors are detached and moved to the CPU; bfloat16 is carried as its
    uint16 bit pattern."""
    if type(value).__module__.startswith("torch"):
        import torch

        if not isinstance(value, torch.Tensor):
            raise InputError(f"cannot store a {type(value).__name__}")
        t = value.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view(np.uint16), "bfloat16"
        try:
            array = t.numpy()
        except TypeError as exc:
            raise InputError(f"unsupported torch dtype {t.dtype}: {exc}") from None
        return array, dtypes.name_of(array)
    if not isinstance(value, (np.ndarray, np.generic)):
        raise InputError(f"tensors must be numpy arrays or torch tensors, got {type(value).__name__}")
    array = np.asarray(value)
    return array, dtypes.name_of(array)


def _items(tensors) -> Iterable[tuple[str, np.ndarray, str]]:
    """(name, array, dtype) from a mapping or an iterable of (name, value[, dtype])."""
    items = tensors.items() if isinstance(tensors, Mapping) else tensors
    for item in items:
        if not isinstance(item[0], str) or not item[0]:
            raise InputError(f"tensor names must be non-empty strings, got {item[0]!r}")
        if len(item) == 3:
            yield item
        else:
            name, value = item
            array, dtype = as_array(value)
            yield name, array, dtype


def _plan(recipe: Recipe, items) -> Iterable[tuple[str, np.ndarray, str, Pipeline]]:
    """Pick each tensor's pipeline. Pruning with ``scope="global"`` needs every
    selected tensor first (one magnitude threshold across them), so only then
    are the tensors materialised; otherwise this streams one tensor at a time."""
    if not any(c.get("id") == "prune" and c.get("scope") == "global"
               for rule in recipe.rules for c in rule.pipeline):
        for name, array, dtype in items:
            yield name, array, dtype, recipe.pipeline_for(name, ArraySpec(array.shape, dtype))
        return
    planned, groups = [], {}
    for name, array, dtype in items:
        rule, pipeline = recipe.match(name, ArraySpec(array.shape, dtype))
        planned.append((name, array, dtype, pipeline))
        for stage, codec in enumerate(pipeline.transforms):
            if codec.codec_id != "prune":
                break  # global ranking only sees the raw weights
            if codec.scope == "global" and codec.threshold is None:
                groups.setdefault((rule, stage), []).append((codec, array, dtype))
    for (rule, stage), members in groups.items():
        sparsity = members[0][0].sparsity
        magnitudes = [convert(a, d, "float32") for _, a, d in members]
        threshold = float(prune.global_threshold(magnitudes, sparsity))
        for codec, _, _ in members:
            codec.threshold = max(threshold, 0.0)
    yield from planned


def _unique(plans: Iterable[tuple]) -> Iterable[tuple]:
    """The plans, refusing a repeated name before it is encoded."""
    seen = set()
    for plan in plans:
        if isinstance(plan[0], str):
            if plan[0] in seen:
                raise InputError(f"duplicate tensor name {plan[0]!r}")
            seen.add(plan[0])
        yield plan


def write_tensors(tensors: Mapping[str, Any] | Iterable[tuple], path: str | os.PathLike,
                  recipe: str | os.PathLike | Recipe | dict = "lossless",
                  metadata: Mapping[str, str] | None = None, *, progress=None,
                  threads: int | None = None) -> None:
    """Encode tensors into ``path``, ``threads`` at a time (default: the CPUs
    available, at most 4), written in their order; the file does not depend on
    ``threads``. ``tensors`` is a mapping or an iterable of ``(name, value)`` /
    ``(name, array, dtype)``. Values produced lazily are drawn while the tensors
    being encoded hold at most 256 MiB together (a larger one is encoded alone);
    a drawn value must not change afterwards, so a producer that refills one
    buffer needs ``threads=1``. ``progress(name, nbytes)`` is called after each
    tensor is written."""
    recipe = get_recipe(recipe)
    threads = check_threads(threads)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InputError(f"metadata must be a dict of str to str, got {type(metadata).__name__}")
    meta = dict(metadata or {})
    meta["wcodec.recipe"] = recipe.name

    def encode(plan) -> tuple[EncodedTensor, int]:
        name, array, dtype, pipeline = plan
        return encode_tensor(name, array, pipeline, dtype), array.nbytes

    with Writer(path, meta) as writer:
        for tensor, nbytes in ordered_map(encode, _unique(_plan(recipe, _items(tensors))),
                                          threads, lambda plan: plan[1].nbytes):
            writer.add_encoded(tensor)
            if progress is not None:
                progress(tensor.name, nbytes)


def save_file(tensors: Mapping[str, Any], path: str | os.PathLike,
              recipe: str | os.PathLike | Recipe | dict = "lossless",
              metadata: Mapping[str, str] | None = None, *, threads: int | None = None) -> None:
    """Save a dict of numpy arrays / torch tensors to a .wcodec file.

    ``recipe`` is a built-in name (``lossless``, ``fp16``, ``bf16``, ``raw``...),
    a TOML file or a Recipe. ``metadata`` is free-form str -> str. ``threads``
    tensors are encoded at a time (default: the CPUs available, at most 4); the
    file is the same for any number. The write is atomic: on error the target
    path is left untouched."""
    if not isinstance(tensors, Mapping):
        raise InputError(f"save_file expects a dict of tensors, got {type(tensors).__name__}")
    write_tensors(tensors, path, recipe, metadata, threads=threads)


def open(path: str | os.PathLike, *, max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES) -> Reader:
    """Open a .wcodec file lazily: ``keys()``, ``metadata()``, ``info(name)``,
    ``get_tensor(name)``. Use as a context manager."""
    return Reader(path, max_tensor_bytes=max_tensor_bytes)


def load_file(path: str | os.PathLike, *, max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES,
              threads: int | None = None) -> dict[str, np.ndarray]:
    """Decode every tensor of a .wcodec file into a dict of numpy arrays
    (bfloat16 tensors come back as their uint16 bit patterns), ``threads``
    tensors at a time (default: the CPUs available, at most 4)."""
    with Reader(path, max_tensor_bytes=max_tensor_bytes) as reader:
        return dict(reader.tensors(threads=threads))
