"""The numpy-facing API: ``save_file``, ``load_file``, ``open`` (safetensors verbs)."""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

import numpy as np

from . import dtypes
from .codecs.base import ArraySpec
from .container import Reader, Writer
from .container.format import DEFAULT_MAX_TENSOR_BYTES
from .errors import InputError
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


def iter_tensors(tensors: Mapping[str, Any] | Iterable[tuple[str, Any]]):
    items = tensors.items() if isinstance(tensors, Mapping) else tensors
    for name, value in items:
        yield name, value


def write_tensors(tensors: Mapping[str, Any] | Iterable[tuple[str, Any]], path: str | os.PathLike,
                  recipe: str | os.PathLike | Recipe | dict = "lossless",
                  metadata: Mapping[str, str] | None = None, *, progress=None) -> None:
    """Encode tensors one at a time (values may be produced lazily by an
    iterable) into ``path``; ``progress`` is called with each name when done."""
    recipe = get_recipe(recipe)
    meta = dict(metadata or {})
    meta["wcodec.recipe"] = recipe.name
    with Writer(path, meta) as writer:
        for name, value in iter_tensors(tensors):
            array, dtype = as_array(value)
            pipeline = recipe.pipeline_for(name, ArraySpec(array.shape, dtype))
            writer.add_tensor(name, array, pipeline, dtype)
            if progress is not None:
                progress(name, array.nbytes)


def save_file(tensors: Mapping[str, Any], path: str | os.PathLike,
              recipe: str | os.PathLike | Recipe | dict = "lossless",
              metadata: Mapping[str, str] | None = None) -> None:
    """Save a dict of numpy arrays / torch tensors to a .wcodec file.

    ``recipe`` is a built-in name (``lossless``, ``fp16``, ``bf16``, ``raw``...),
    a TOML file or a Recipe. ``metadata`` is free-form str -> str. The write is
    atomic: on error the target path is left untouched."""
    if not isinstance(tensors, Mapping):
        raise InputError(f"save_file expects a dict of tensors, got {type(tensors).__name__}")
    write_tensors(tensors, path, recipe, metadata)


def open(path: str | os.PathLike, *, max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES) -> Reader:
    """Open a .wcodec file lazily: ``keys()``, ``metadata()``, ``info(name)``,
    ``get_tensor(name)``. Use as a context manager."""
    return Reader(path, max_tensor_bytes=max_tensor_bytes)


def load_file(path: str | os.PathLike, *,
              max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES) -> dict[str, np.ndarray]:
    """Decode every tensor of a .wcodec file into a dict of numpy arrays
    (bfloat16 tensors come back as their uint16 bit patterns)."""
    with Reader(path, max_tensor_bytes=max_tensor_bytes) as reader:
        return {name: reader.get_tensor(name) for name in reader.keys()}
