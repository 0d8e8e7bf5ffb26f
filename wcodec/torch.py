"""PyTorch layer: the ``safetensors.torch`` verbs on .wcodec files.

``save_file`` / ``load_file`` move dicts of tensors; ``save_model`` /
``load_model`` move a whole ``nn.Module`` (tied weights stored once, their
aliases recorded in the file metadata); ``open`` gives lazy access.

bfloat16 is stored bit-exactly (as its 16-bit pattern) and comes back as
``torch.bfloat16``. Decoded tensors are built with ``torch.from_numpy`` on the
decoded array, without a further copy.

This module imports torch (the ``wcodec[torch]`` extra); the rest of wcodec does not.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from . import api, dtypes
from .container import Reader, TensorInfo
from .container.format import DEFAULT_MAX_TENSOR_BYTES
from .errors import InputError
from .recipes import Recipe

__all__ = ["save_file", "load_file", "save_model", "load_model", "open", "safe_open",
           "ALIASES_KEY"]

#: File-metadata key holding ``{alias: kept_name}`` as JSON (written by ``save_model``).
ALIASES_KEY = "wcodec.aliases"


# -- helpers --------------------------------------------------------------
def _device(device: Any) -> torch.device:
    """A usable torch device; InputError (before any decoding) if it is not."""
    try:
        parsed = torch.device(device)
        if parsed.type != "cpu":
            torch.empty(0, device=parsed)  # fails early on a build or machine without it
        return parsed
    except (RuntimeError, TypeError, ValueError, AssertionError) as exc:
        raise InputError(f"device {device!r} is not usable here: {exc}") from None


def _numpy_buffer(tensor: torch.Tensor) -> np.ndarray | None:
    """A numpy view of a CPU tensor's memory (None for bfloat16 or other devices)."""
    if tensor.device.type != "cpu" or tensor.dtype == torch.bfloat16:
        return None
    try:
        return tensor.detach().numpy()
    except (TypeError, RuntimeError):
        return None


def _to_torch(array: np.ndarray, dtype: str, device: torch.device) -> torch.Tensor:
    """A tensor on ``device`` for a decoded array (no copy on the CPU)."""
    if not array.dtype.isnative:  # stored little-endian; only matters on big-endian hosts
        array = array.astype(array.dtype.newbyteorder("="))
    if dtype == "bfloat16":
        tensor = torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    else:
        tensor = torch.from_numpy(array)
    if device.type != "cpu":
        tensor = tensor.to(device)
    return tensor


def _check_tensor(name: Any, value: Any) -> torch.Tensor:
    if not isinstance(name, str):
        raise InputError(f"tensor names must be strings, got {name!r}")
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if value.layout != torch.strided:
        raise InputError(f"{name}: cannot store a {value.layout} tensor; convert it to dense "
                         "(e.g. .to_dense()) first")
    if value.is_quantized:
        raise InputError(f"{name}: cannot store a quantized tensor ({value.dtype})")
    if value.device.type == "meta":
        raise InputError(f"{name}: a tensor on the meta device has no data to store")
    return value


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """Detached, as a plain torch.Tensor (Parameters and subclasses unwrapped)."""
    tensor = tensor.detach()
    if type(tensor) is not torch.Tensor:
        tensor = tensor.as_subclass(torch.Tensor)
    return tensor


def _storage_key(tensor: torch.Tensor):
    try:
        storage = tensor.untyped_storage()
        return tensor.device, storage.data_ptr(), storage.nbytes()
    except (RuntimeError, NotImplementedError):  # tensors without a storage (wrappers)
        return None


def _byte_range(tensor: torch.Tensor) -> tuple[int, int]:
    """[start, stop) of the bytes a (non-empty, strided) tensor can touch."""
    start = tensor.data_ptr()
    span = 1 + sum((size - 1) * abs(stride)
                   for size, stride in zip(tensor.shape, tensor.stride()))
    return start, start + span * tensor.element_size()


def _overlapping_groups(tensors: Mapping[str, torch.Tensor]) -> list[list[str]]:
    """Groups of names whose tensors share memory (overlapping byte ranges of
    one storage). Tensors that sit in one storage without overlapping are fine."""
    by_storage: dict[Any, list[str]] = {}
    for name, tensor in tensors.items():
        key = _storage_key(tensor)
        if key is None or key[1] == 0 or key[2] == 0 or tensor.numel() == 0:
            continue
        by_storage.setdefault(key, []).append(name)
    groups = []
    for names in by_storage.values():
        if len(names) < 2:
            continue
        areas = sorted((*_byte_range(tensors[n]), n) for n in names)
        current, stop = [areas[0][2]], areas[0][1]
        for start, end, name in areas[1:]:
            if start < stop:
                current.append(name)
            else:
                if len(current) > 1:
                    groups.append(sorted(current))
                current = [name]
            stop = max(stop, end)
        if len(current) > 1:
            groups.append(sorted(current))
    return groups


def _view_key(tensor: torch.Tensor):
    """Identity of a view: equal keys mean the very same elements (an alias)."""
    if tensor.numel() == 0:
        return None
    key = _storage_key(tensor)
    if key is None or key[1] == 0:
        return None
    return (key[0], key[1], tensor.storage_offset(), tensor.dtype, tuple(tensor.shape),
            tuple(tensor.stride()))


def _alias_groups(state: Mapping[str, Any]) -> list[list[str]]:
    """Names whose tensors are the very same view, in ``state`` order (so the
    first name of each group is the first one registered in the module)."""
    groups: dict[Any, list[str]] = {}
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.device.type != "meta":
            key = _view_key(value)
            if key is not None:
                groups.setdefault(key, []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _parse_aliases(metadata: Mapping[str, str], path: str) -> dict[str, str]:
    text = metadata.get(ALIASES_KEY)
    if text is None:
        return {}
    try:
        aliases = json.loads(text)
    except ValueError:
        aliases = None
    if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()):
        raise InputError(f"{path}: metadata {ALIASES_KEY!r} is not a JSON object of names")
    return aliases


# -- dicts of tensors -----------------------------------------------------
def save_file(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike,
              recipe: str | os.PathLike | Recipe | dict = "lossless",
              metadata: Mapping[str, str] | None = None, *, threads: int | None = None) -> None:
    """Save a dict of torch tensors to a .wcodec file (like
    ``safetensors.torch.save_file``).

    Tensors may live on any device and be non-contiguous; bfloat16 is stored
    bit-exactly. Tensors that share memory are refused (use ``save_model`` for
    modules with tied weights). ``threads``: as ``wcodec.save_file``. The write
    is atomic."""
    if not isinstance(tensors, Mapping):
        raise InputError(f"save_file expects a dict of tensors, got {type(tensors).__name__}")
    checked = {name: _check_tensor(name, value) for name, value in tensors.items()}
    shared = _overlapping_groups(checked)
    if shared:
        raise InputError(
            f"some tensors share memory, which would be stored twice and come back as "
            f"separate tensors: {shared}. Save a module with wcodec.torch.save_model (it stores "
            f"tied weights once), or pass copies (tensor.clone()) if that is intended.")
    api.write_tensors(((name, _plain(value)) for name, value in checked.items()),
                      path, recipe, metadata, threads=threads)


def load_file(path: str | os.PathLike, device: Any = "cpu", *,
              max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES,
              threads: int | None = None) -> dict[str, torch.Tensor]:
    """Decode every tensor of a .wcodec file into a dict of torch tensors on
    ``device`` (like ``safetensors.torch.load_file``), ``threads`` tensors at a
    time (default: the CPUs available, at most 4)."""
    device = _device(device)
    with Reader(path, max_tensor_bytes=max_tensor_bytes) as reader:
        return {name: _to_torch(array, reader.info(name).dtype, device)
                for name, array in reader.tensors(threads=threads)}


class TorchReader:
    """Lazy access to a .wcodec file returning torch tensors (``wcodec.torch.open``).

    ``keys()``, ``metadata()``, ``info(name)``, ``get_tensor(name)``; use it as a
    context manager or call ``close()``."""

    def __init__(self, path: str | os.PathLike, framework: str = "pt", device: Any = "cpu", *,
                 max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES):
        if framework not in ("pt", "torch", "pytorch"):
            raise InputError(f"wcodec.torch.open only serves framework='pt', got {framework!r} "
                             "(use wcodec.open for numpy)")
        self.device = _device(device)
        self.reader = api.open(path, max_tensor_bytes=max_tensor_bytes)

    @property
    def path(self) -> str:
        return self.reader.path

    def keys(self) -> list[str]:
        return self.reader.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.reader.keys())

    def __contains__(self, name: str) -> bool:
        return name in self.reader

    def __len__(self) -> int:
        return len(self.reader)

    def metadata(self) -> dict[str, str]:
        return self.reader.metadata()

    def info(self, name: str) -> TensorInfo:
        return self.reader.info(name)

    def get_tensor(self, name: str) -> torch.Tensor:
        return _to_torch(self.reader.get_tensor(name), self.reader.info(name).dtype, self.device)

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> "TorchReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open(path: str | os.PathLike, framework: str = "pt", device: Any = "cpu", *,
         max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES) -> TorchReader:
    """Open a .wcodec file lazily, returning torch tensors (like ``safe_open``)."""
    return TorchReader(path, framework, device, max_tensor_bytes=max_tensor_bytes)


safe_open = open


# -- modules --------------------------------------------------------------
def save_model(model: nn.Module, path: str | os.PathLike,
               recipe: str | os.PathLike | Recipe | dict = "lossless",
               metadata: Mapping[str, str] | None = None, *, threads: int | None = None) -> None:
    """Save ``model.state_dict()`` (parameters and persistent buffers).

    Tied / shared tensors (the very same view under several names) are stored
    once, under the name the module registered first; the other names are
    recorded as ``{alias: kept_name}`` JSON under the metadata key
    ``"wcodec.aliases"`` and restored by ``load_model``. Tensors that only
    partly overlap are stored separately. ``threads``: as ``wcodec.save_file``."""
    if not isinstance(model, nn.Module):
        raise InputError(f"save_model expects an nn.Module, got {type(model).__name__}")
    state = model.state_dict()
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(f"{name}: cannot store a non-tensor state entry "
                             f"({type(value).__name__}; extra state is not supported)")
        _check_tensor(name, value)
    aliases: dict[str, str] = {}
    for names in _alias_groups(state):
        for alias in names[1:]:
            aliases[alias] = names[0]
    meta = dict(metadata or {})
    meta.pop(ALIASES_KEY, None)
    if aliases:
        meta[ALIASES_KEY] = json.dumps(aliases, sort_keys=True)
    api.write_tensors(((name, _plain(value)) for name, value in state.items()
                       if name not in aliases), path, recipe, meta, threads=threads)


def _plain_loader(module: nn.Module) -> bool:
    """Whether ``load_state_dict`` just copies this module's tensors (no hooks,
    no custom ``_load_from_state_dict`` outside torch.nn)."""
    if getattr(module, "_load_state_dict_pre_hooks", None):
        return False
    method = type(module)._load_from_state_dict
    return (method is nn.Module._load_from_state_dict
            or getattr(method, "__module__", "").startswith("torch.nn."))


def _direct_targets(model: nn.Module) -> dict[str, torch.Tensor]:
    """name -> the module's own tensor, for tensors a decoded value may be
    copied into directly (plain parameters/buffers of plainly loading modules)."""
    targets = {}
    for prefix, module in model.named_modules(remove_duplicate=False):
        if not _plain_loader(module):
            continue
        prefix = prefix + "." if prefix else ""
        local = list(module._parameters.items()) + [
            (k, v) for k, v in module._buffers.items()
            if k not in module._non_persistent_buffers_set]
        for name, tensor in local:
            if (tensor is None or type(tensor) not in (torch.Tensor, nn.Parameter)
                    or nn.parameter.is_lazy(tensor) or tensor.device.type == "meta"):
                continue
            targets[prefix + name] = tensor
    return targets


def _matching_targets(targets: Mapping[str, torch.Tensor], keys: list[str],
                      shape: tuple[int, ...]) -> list[tuple[str, torch.Tensor]]:
    """``(key, module tensor)`` for the ``keys`` whose tensor has ``shape``, in
    order (a stored tensor is decoded into the first and copied into the others)."""
    found = ((key, targets.get(key)) for key in keys)
    return [(key, t) for key, t in found if t is not None and tuple(t.shape) == shape]


def load_model(model: nn.Module, path: str | os.PathLike, strict: bool = True,
               device: Any = "cpu", *, max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES,
               threads: int | None = None):
    """Load a file written by ``save_model`` (or ``save_file``) into ``model``'s
    existing parameters and buffers, with ``nn.Module.load_state_dict``
    semantics: returns ``(missing_keys, unexpected_keys)``; with ``strict=True``
    a mismatch raises ``RuntimeError`` (after loading what matched, as
    ``load_state_dict`` does).

    Each tensor is decoded once, ``threads`` tensors at a time (default: the
    CPUs available, at most 4), straight into the module's tensor where dtype
    and layout allow; others are decoded ahead into at most 256 MiB (or
    ``threads`` tensors) before they are copied. Aliases recorded by
    ``save_model`` are restored, and names the module itself ties to a loaded
    tensor are not reported missing. If a tensor fails to decode, the error is
    raised and the model may already hold some of the file's other tensors."""
    if not isinstance(model, nn.Module):
        raise InputError(f"load_model expects an nn.Module, got {type(model).__name__}")
    device = _device(device)
    model_state = model.state_dict(keep_vars=True)
    targets = _direct_targets(model)
    state: dict[str, torch.Tensor] = {}
    with Reader(path, max_tensor_bytes=max_tensor_bytes) as reader:
        aliases = _parse_aliases(reader.metadata(), reader.path)
        names_of: dict[str, list[str]] = {name: [name] for name in reader.keys()}
        for alias, kept in aliases.items():
            if kept in names_of and alias not in names_of:
                names_of[kept].append(alias)
        # Tensors are decoded straight into the first matching target's memory, on
        # worker threads, unless another stored name also writes to that storage
        # (ties stored under both names): those are copied in file order on this
        # thread, so the later name wins as in load_state_dict.
        matching = {name: _matching_targets(targets, names_of[name], reader.info(name).shape)
                    for name in reader.keys()}
        storages = {name: {_storage_key(t) for _, t in pairs} for name, pairs in matching.items()}
        writers = Counter(key for keys in storages.values() for key in keys)
        direct: dict[str, np.ndarray] = {}  # name -> the first matching target's memory
        for name, pairs in matching.items():
            if not pairs or any(writers[key] > 1 or key is None for key in storages[name]):
                continue
            info = reader.info(name)
            buffer = _numpy_buffer(pairs[0][1])
            if buffer is not None and buffer.shape == info.shape and buffer.dtype == \
                    dtypes.get(info.dtype).numpy and buffer.flags.c_contiguous:
                direct[name] = buffer
        for name, array in reader.tensors(threads=threads, out=direct):
            info = reader.info(name)
            value = None
            copied = set()
            for key, target in matching[name]:
                if value is None:
                    if name in direct:  # decoded straight into this target
                        value = target.detach()
                        copied.add(_view_key(target))
                    else:
                        value = _to_torch(array, info.dtype, torch.device("cpu"))
                view = _view_key(target)
                if view is None or view not in copied:
                    with torch.no_grad():
                        target.copy_(value)
                    copied.add(view)
                # load_state_dict then copies the tensor into itself, which is a no-op
                state[key] = target.detach()
            rest = [key for key in names_of[name] if key not in state]
            if rest:
                if value is None:
                    value = _to_torch(array, info.dtype, device)
                elif device.type != "cpu":
                    value = value.to(device)
                for key in rest:
                    state[key] = value
            del value, array
    # names the module ties to a loaded tensor count as loaded
    for names in _alias_groups(model_state):
        present = [n for n in names if n in state]
        if present:
            for n in names:
                state.setdefault(n, state[present[0]])
    return model.load_state_dict(state, strict=strict)
