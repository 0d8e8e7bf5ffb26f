"""Reading and writing other weight-file formats, without pickle.

* ``.safetensors``: an own small reader and writer (the ``safetensors`` package
  is not needed). Reading memory-maps the file and hands out one tensor at a
  time; every offset and size in the header is checked before it is used.
* ``.npz``: numpy archives, read member by member with ``allow_pickle=False``.
* ``.pt`` / ``.pth`` / ``.bin``: PyTorch state dicts (a flat dict of tensors),
  read with ``torch.load(weights_only=True, mmap=True)`` so no pickled code ever
  runs. PyTorch is imported only when such a file is used.

Readers yield ``(name, array, dtype_name)`` triples where ``dtype_name`` is a
wcodec dtype name; ``bfloat16`` tensors are carried as ``uint16`` bit patterns.
Writers are atomic: they write a temp file next to the target and rename it
into place, so a failure or Ctrl-C never leaves a partial file.

``pack_file`` / ``unpack_file`` convert between these formats and ``.wcodec``.
"""
from __future__ import annotations

import contextlib
import json
import mmap
import os
import struct
import tempfile
import time
import zipfile
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from . import dtypes
from .api import write_tensors
from .codecs.base import ArraySpec
from .container import Reader
from .container.writer import SigintHold
from .errors import ConfigError, FormatError, InputError, WcodecError
from .pipeline import Pipeline
from .recipes import Recipe, get_recipe

__all__ = [
    "INPUT_FORMATS", "OUTPUT_FORMATS", "SAFETENSORS_DTYPES", "TensorSource", "WeightsFile",
    "SafetensorsFile", "NpzFile", "TorchFile", "format_of", "open_weights", "read_weights",
    "save_weights", "write_safetensors", "write_npz", "write_torch", "pack_file", "unpack_file",
    "PackResult", "UnpackResult",
]

# extension -> format name
_EXTENSIONS = {".safetensors": "safetensors", ".pt": "torch", ".pth": "torch", ".bin": "torch",
               ".npz": "npz"}
INPUT_FORMATS = tuple(_EXTENSIONS)
OUTPUT_FORMATS = tuple(_EXTENSIONS)

# safetensors dtype code <-> wcodec dtype name
SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}
_TO_SAFETENSORS = {v: k for k, v in SAFETENSORS_DTYPES.items()}
SAFETENSORS_MAX_HEADER = 100_000_000  # the limit the safetensors library enforces
_LEN = struct.Struct("<Q")

Progress = Callable[[str, int], None]


def format_of(path: str | os.PathLike) -> str:
    """``"safetensors"``, ``"torch"`` or ``"npz"`` from the file extension;
    InputError naming the supported extensions otherwise."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    if ext == ".wcodec":
        raise InputError(f"{os.fspath(path)} is a .wcodec file; expected one of "
                         f"{', '.join(INPUT_FORMATS)}")
    raise InputError(f"{os.fspath(path)}: unsupported file extension {ext or '(none)'!r}; "
                     f"supported: {', '.join(INPUT_FORMATS)}")


def _check_input_path(path: str) -> None:
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a weight file")


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    metadata = dict(metadata or {})
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InputError(f"metadata must map str to str, got {key!r}: {value!r}")
    return metadata


# ---------------------------------------------------------------- readers


class WeightsFile:
    """An open weight file: ``metadata``, ``keys()``, iteration over
    ``(name, array, dtype_name)`` one tensor at a time, ``close()``."""

    format: str = ""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.metadata: dict[str, str] = {}

    def keys(self) -> list[str]:
        raise NotImplementedError

    def get(self, name: str) -> tuple[np.ndarray, str]:
        """One tensor as (array, wcodec dtype name)."""
        raise NotImplementedError

    @property
    def total_bytes(self) -> int:
        """Decoded bytes of all tensors (may be approximate for .npz)."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, str]]:
        for name in self.keys():
            array, dtype = self.get(name)
            yield name, array, dtype

    def __len__(self) -> int:
        return len(self.keys())

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class _Entry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise FormatError(f"duplicate key {key!r} in the JSON header")
        out[key] = value
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class SafetensorsFile(WeightsFile):
    """A memory-mapped .safetensors file. Arrays handed out are read-only views
    into the mapping (valid after ``close()``; the mapping lives as long as they
    do)."""

    format = "safetensors"

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        _check_input_path(self.path)
        self._map = None
        try:
            self._file = open(self.path, "rb")
        except OSError as exc:
            raise InputError(f"cannot open {self.path}: {exc.strerror}") from None
        try:
            size = os.fstat(self._file.fileno()).st_size
            if size < _LEN.size:
                raise FormatError(f"{self.path}: {size} bytes is too short for a safetensors file")
            (n,) = _LEN.unpack(self._file.read(_LEN.size))
            if n > SAFETENSORS_MAX_HEADER:
                raise FormatError(f"{self.path}: not a safetensors file (declared header size {n} "
                                  f"is above the limit {SAFETENSORS_MAX_HEADER})")
            if _LEN.size + n > size:
                raise FormatError(f"{self.path}: truncated or not a safetensors file (header of "
                                  f"{n} bytes does not fit in {size} bytes)")
            self._data_start = _LEN.size + n
            self._data_len = size - self._data_start
            self._entries = self._parse_header(self._file.read(n))
            if size:
                self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except BaseException:
            self.close()
            raise

    def _parse_header(self, raw: bytes) -> dict[str, _Entry]:
        where = self.path
        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except FormatError as exc:
            raise FormatError(f"{where}: {exc}") from None
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise FormatError(f"{where}: not a safetensors file (header is not valid JSON: "
                              f"{str(exc)[:100]})") from None
        if not isinstance(header, dict):
            raise FormatError(f"{where}: safetensors header must be a JSON object")
        meta = header.pop("__metadata__", None)
        if meta is not None:
            if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
                raise FormatError(f"{where}: __metadata__ must map strings to strings")
            self.metadata = dict(meta)
        entries: dict[str, _Entry] = {}
        for name, obj in header.items():
            w = f"{where}: tensor {name!r}"
            if not isinstance(obj, dict) or not {"dtype", "shape", "data_offsets"} <= set(obj):
                raise FormatError(f"{w}: needs dtype, shape and data_offsets")
            code = obj["dtype"]
            if not isinstance(code, str):
                raise FormatError(f"{w}: bad dtype {code!r}")
            if code not in SAFETENSORS_DTYPES:
                raise InputError(f"{w}: safetensors dtype {code} is not supported by wcodec "
                                 f"(supported: {', '.join(SAFETENSORS_DTYPES)})")
            dtype = SAFETENSORS_DTYPES[code]
            shape = obj["shape"]
            if (not isinstance(shape, list) or len(shape) > 64
                    or not all(_is_int(d) and d >= 0 for d in shape)):
                raise FormatError(f"{w}: shape must be a list of non-negative integers")
            offsets = obj["data_offsets"]
            if (not isinstance(offsets, list) or len(offsets) != 2
                    or not all(_is_int(o) for o in offsets)):
                raise FormatError(f"{w}: data_offsets must be two integers")
            begin, end = offsets
            if not 0 <= begin <= end <= self._data_len:
                raise FormatError(f"{w}: data_offsets [{begin}, {end}] are outside the "
                                  f"{self._data_len} data bytes (truncated file?)")
            nbytes = ArraySpec(tuple(shape), dtype).nbytes
            if end - begin != nbytes:
                raise FormatError(f"{w}: data_offsets span {end - begin} bytes but shape "
                                  f"{shape} of {code} needs {nbytes}")
            entries[name] = _Entry(name, dtype, tuple(shape), begin, end)
        spans = sorted((e.begin, e.end, e.name) for e in entries.values() if e.end > e.begin)
        for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
            if begin < end:
                raise FormatError(f"{where}: data of tensors {a!r} and {b!r} overlap")
        return entries

    def keys(self) -> list[str]:
        return list(self._entries)

    def spec(self, name: str) -> ArraySpec:
        e = self._entry(name)
        return ArraySpec(e.shape, e.dtype)

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise InputError(f"no tensor named {name!r} in {self.path}") from None

    def get(self, name: str) -> tuple[np.ndarray, str]:
        e = self._entry(name)
        carrier = dtypes.get(e.dtype).numpy
        count = (e.end - e.begin) // carrier.itemsize
        if count == 0:
            return np.zeros(e.shape, carrier), e.dtype
        if self._map is None:
            raise InputError(f"{self.path} is closed")
        array = np.frombuffer(self._map, carrier, count, self._data_start + e.begin)
        if not array.flags.aligned:
            array = array.copy()
        return array.reshape(e.shape), e.dtype

    @property
    def total_bytes(self) -> int:
        return sum(e.end - e.begin for e in self._entries.values())

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # arrays still point into it; the GC unmaps it later
                pass
            self._map = None
        if getattr(self, "_file", None) is not None:
            self._file.close()


class NpzFile(WeightsFile):
    """A numpy ``.npz`` archive, read one member at a time (never unpickles)."""

    format = "npz"

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        _check_input_path(self.path)
        self._npz = None
        if not zipfile.is_zipfile(self.path):
            raise FormatError(f"{self.path}: not a .npz file (not a zip archive)")
        try:
            self._npz = np.load(self.path, allow_pickle=False)
            if not isinstance(self._npz, np.lib.npyio.NpzFile):
                raise FormatError(f"{self.path}: not a .npz archive")
            self._keys = list(self._npz.files)
            self._sizes = {info.filename: info.file_size for info in self._npz.zip.infolist()}
        except WcodecError:
            self.close()
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            self.close()
            raise FormatError(f"{self.path}: cannot read the .npz archive: {exc}") from None

    def keys(self) -> list[str]:
        return list(self._keys)

    def get(self, name: str) -> tuple[np.ndarray, str]:
        if name not in self._keys:
            raise InputError(f"no array named {name!r} in {self.path}")
        try:
            array = self._npz[name]
        except ValueError as exc:
            if "pickle" in str(exc):
                raise InputError(f"{self.path}: {name!r} is an object array (pickled Python "
                                 "objects); wcodec reads only numeric arrays") from None
            raise FormatError(f"{self.path}: cannot read {name!r}: {exc}") from None
        except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
            raise FormatError(f"{self.path}: cannot read {name!r}: {exc}") from None
        except Exception as exc:  # zlib.error and friends from a damaged member
            raise FormatError(f"{self.path}: cannot read {name!r}: "
                              f"{type(exc).__name__}: {exc}") from None
        if not isinstance(array, np.ndarray):
            raise FormatError(f"{self.path}: member {name!r} is not a .npy array")
        try:
            dtype = dtypes.name_of(array)
        except InputError as exc:
            raise InputError(f"{self.path}: array {name!r}: {exc}") from None
        return array, dtype

    @property
    def total_bytes(self) -> int:
        return sum(self._sizes.values())

    def close(self) -> None:
        if self._npz is not None:
            self._npz.close()
            self._npz = None


def _import_torch():
    try:
        import torch
    except ImportError:
        raise InputError("reading or writing PyTorch files (.pt/.pth/.bin) needs PyTorch: "
                         "pip install torch") from None
    return torch


def _torch_error_detail(exc: BaseException) -> str:
    text = str(exc)
    for line in text.splitlines():
        if "WeightsUnpickler error:" in line:
            detail = line.split("WeightsUnpickler error:", 1)[1].strip()
            if detail:
                return detail.split(". Please use")[0]
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__


class TorchFile(WeightsFile):
    """A PyTorch state dict saved with ``torch.save`` (a flat dict of tensors),
    loaded with ``weights_only=True`` (and memory-mapped when the file allows)."""

    format = "torch"

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        _check_input_path(self.path)
        is_zip = zipfile.is_zipfile(self.path)
        if not is_zip:
            with open(self.path, "rb") as f:
                head = f.read(2)
            if head[:1] != b"\x80":  # the legacy format starts with a pickle protocol opcode
                raise FormatError(f"{self.path}: not a PyTorch checkpoint")
        torch = _import_torch()
        try:
            obj = torch.load(self.path, map_location="cpu", weights_only=True, mmap=is_zip)
        except MemoryError:
            raise
        except Exception as exc:
            detail = _torch_error_detail(exc)
            if "Unsupported global" in detail or "Unsupported class" in detail:
                raise InputError(f"{self.path}: holds Python objects other than tensors, which "
                                 f"wcodec will not unpickle ({detail})") from None
            raise FormatError(f"{self.path}: cannot read the PyTorch file: {detail}") from None
        if not isinstance(obj, Mapping):
            raise InputError(f"{self.path}: expected a state dict (a dict of tensors), got a "
                             f"{type(obj).__name__}")
        for key, value in obj.items():
            if not isinstance(key, str):
                raise InputError(f"{self.path}: state dict keys must be strings, got {key!r}")
            if not isinstance(value, torch.Tensor):
                raise InputError(f"{self.path}: {key!r} is a {type(value).__name__}, not a "
                                 "tensor; wcodec packs flat state dicts of tensors only")
            if value.layout != torch.strided:
                raise InputError(f"{self.path}: {key!r} is a {value.layout} tensor; only dense "
                                 "tensors are supported")
        self._tensors = dict(obj)

    def keys(self) -> list[str]:
        return list(self._tensors)

    def get(self, name: str) -> tuple[np.ndarray, str]:
        from .api import as_array

        if name not in self._tensors:
            raise InputError(f"no tensor named {name!r} in {self.path}")
        try:
            return as_array(self._tensors[name])
        except InputError as exc:
            raise InputError(f"{self.path}: tensor {name!r}: {exc}") from None

    @property
    def total_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._tensors.values())

    def close(self) -> None:
        self._tensors = {}


def open_weights(path: str | os.PathLike) -> WeightsFile:
    """Open a .safetensors / .pt / .pth / .bin / .npz file (chosen by extension)."""
    path = os.fspath(path)
    kind = format_of(path)
    _check_input_path(path)
    cls = {"safetensors": SafetensorsFile, "npz": NpzFile, "torch": TorchFile}[kind]
    return cls(path)


def read_weights(path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray, str]]:
    """Yield ``(name, array, dtype_name)`` one tensor at a time."""
    with open_weights(path) as f:
        yield from f


# ---------------------------------------------------------------- writers


@dataclass(frozen=True)
class TensorSource:
    """A tensor to write, produced on demand by ``load()`` (so writers that can
    stream hold one tensor at a time)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    load: Callable[[], np.ndarray]

    def array(self) -> np.ndarray:
        array = np.asarray(self.load())
        if array.dtype.name == "bfloat16":
            array = array.view(np.uint16)
        want = dtypes.get(self.dtype).numpy
        if tuple(array.shape) != tuple(self.shape) or array.dtype.itemsize != want.itemsize:
            raise InputError(f"tensor {self.name!r}: got shape {array.shape} {array.dtype}, "
                             f"expected {self.shape} {self.dtype}")
        # (to_storage makes 0-d arrays 1-d: give the shape back)
        return dtypes.to_storage(array, self.dtype).reshape(self.shape)


def _sources(tensors: Any) -> list[TensorSource]:
    """Normalise a dict of arrays/torch tensors, or an iterable of TensorSource
    or ``(name, array, dtype_name)`` triples, into a list of TensorSource."""
    from .api import as_array

    items = tensors.items() if isinstance(tensors, Mapping) else tensors
    out: list[TensorSource] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, TensorSource):
            src = item
        else:
            if len(item) == 3:
                name, value, dtype = item
                array = np.asarray(value)
                if array.dtype.name == "bfloat16":
                    array = array.view(np.uint16)
            else:
                name, value = item
                array, dtype = as_array(value)
            dtypes.get(dtype)
            src = TensorSource(name, tuple(int(d) for d in array.shape), dtype,
                               lambda a=array: a)
        if not isinstance(src.name, str) or not src.name:
            raise InputError(f"tensor names must be non-empty strings, got {src.name!r}")
        if src.name in seen:
            raise InputError(f"duplicate tensor name {src.name!r}")
        seen.add(src.name)
        out.append(src)
    return out


@contextlib.contextmanager
def _atomic_file(path: str):
    """A binary file open on a temp file next to ``path``; renamed over
    ``path`` when the block ends normally, removed when it raises (Ctrl-C
    included)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"cannot write {path}: directory {directory} does not exist")
    hold = SigintHold()
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                                   dir=directory)
    except OSError as exc:
        hold.release()
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        hold.release()
        raise
    file = None
    try:
        file = os.fdopen(fd, "w+b")
        hold.release()
        yield file
        file.flush()
        os.fsync(file.fileno())
        file.close()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        hold.release()
        try:
            if file is not None:
                file.close()
            else:
                os.close(fd)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise


def write_safetensors(path: str | os.PathLike, tensors: Any,
                      metadata: Mapping[str, str] | None = None, *,
                      progress: Progress | None = None) -> None:
    """Write a .safetensors file, one tensor in memory at a time. The header
    lists tensors in the given order; data is laid out widest dtype first so
    every tensor is aligned to its item size."""
    path = os.fspath(path)
    sources = _sources(tensors)
    metadata = _check_metadata(metadata)
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    layout = sorted(range(len(sources)), key=lambda i: -dtypes.get(sources[i].dtype).itemsize)
    offsets: dict[int, tuple[int, int]] = {}
    pos = 0
    for i in layout:
        s = sources[i]
        n = ArraySpec(s.shape, s.dtype).nbytes
        offsets[i] = (pos, pos + n)
        pos += n
    for i, s in enumerate(sources):
        if s.name == "__metadata__":
            raise InputError("a tensor cannot be called '__metadata__' in a safetensors file")
        header[s.name] = {"dtype": _TO_SAFETENSORS[s.dtype], "shape": list(s.shape),
                          "data_offsets": list(offsets[i])}
    try:
        raw = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"tensor or metadata name is not valid UTF-8: {exc}") from None
    raw += b" " * (-(len(raw) + _LEN.size) % 8)
    with _atomic_file(path) as out:
        out.write(_LEN.pack(len(raw)))
        out.write(raw)
        for i in layout:
            s = sources[i]
            array = s.array()
            out.write(memoryview(array.reshape(-1).view(np.uint8)))
            if progress is not None:
                progress(s.name, array.nbytes)


def write_npz(path: str | os.PathLike, tensors: Any, *,
              progress: Progress | None = None) -> None:
    """Write an uncompressed .npz archive (what ``np.savez`` writes), one
    member at a time. bfloat16 tensors are stored as their uint16 bits."""
    path = os.fspath(path)
    sources = _sources(tensors)
    with _atomic_file(path) as out:
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED,
                             allowZip64=True) as zf:
            for s in sources:
                array = s.array()
                with zf.open(s.name + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
                if progress is not None:
                    progress(s.name, array.nbytes)


def write_torch(path: str | os.PathLike, tensors: Any, *,
                progress: Progress | None = None) -> None:
    """``torch.save`` a dict of tensors (bfloat16 restored as ``torch.bfloat16``)."""
    path = os.fspath(path)
    torch = _import_torch()
    sources = _sources(tensors)
    state: dict[str, Any] = {}
    for s in sources:
        array = s.array()
        if not array.flags.writeable:
            array = array.copy()
        if s.dtype == "bfloat16":
            t = torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
        else:
            t = torch.from_numpy(array)
        state[s.name] = t
        if progress is not None:
            progress(s.name, array.nbytes)
    with _atomic_file(path) as out:
        torch.save(state, out)


def save_weights(path: str | os.PathLike, tensors: Any,
                 metadata: Mapping[str, str] | None = None, *,
                 progress: Progress | None = None) -> None:
    """Write tensors to a .safetensors / .pt / .pth / .bin / .npz file chosen by
    extension. ``tensors``: a dict of numpy arrays / torch tensors, or an
    iterable of TensorSource or ``(name, array, dtype_name)``. ``metadata`` is
    kept only by safetensors."""
    kind = format_of(path)
    if kind == "safetensors":
        write_safetensors(path, tensors, metadata, progress=progress)
    elif kind == "npz":
        write_npz(path, tensors, progress=progress)
    else:
        write_torch(path, tensors, progress=progress)


# ---------------------------------------------------------------- conversions


@dataclass
class PackResult:
    input: str
    output: str
    tensors: int
    input_bytes: int     # size of the input file
    decoded_bytes: int   # bytes of all tensors
    output_bytes: int    # size of the .wcodec file
    seconds: float

    @property
    def ratio(self) -> float:
        return self.input_bytes / self.output_bytes if self.output_bytes else 0.0


@dataclass
class UnpackResult:
    input: str
    output: str
    tensors: int
    input_bytes: int
    output_bytes: int
    seconds: float


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def check_recipe(recipe: Recipe) -> None:
    """Build every rule's pipeline once so bad options fail before any work."""
    for i, rule in enumerate(recipe.rules):
        try:
            Pipeline(rule.pipeline)
        except WcodecError as exc:
            raise ConfigError(f"recipe {recipe.name!r} rule {i}: {exc}") from None


def pack_file(src: str | os.PathLike, dst: str | os.PathLike,
              recipe: str | os.PathLike | Recipe | dict = "lossless",
              metadata: Mapping[str, str] | None = None, *,
              options: Mapping[str, Any] | None = None,
              progress: Progress | None = None,
              on_start: Callable[[int], None] | None = None,
              threads: int | None = None) -> PackResult:
    """Encode every tensor of a weight file into a .wcodec file, ``threads`` at
    a time (``wcodec.api.write_tensors``).

    The input's safetensors ``__metadata__`` is copied, ``wcodec.recipe`` and
    ``wcodec.source`` are recorded, then ``metadata`` is applied on top.
    ``options`` (``bits``, ``sparsity``, ``group_size``...) go to every codec of
    the recipe that has an option of that name. ``on_start`` gets the total
    tensor bytes once the input is open; ``progress`` gets (name, bytes) after
    each tensor."""
    src, dst = os.fspath(src), os.fspath(dst)
    start = time.perf_counter()
    format_of(src)
    _check_input_path(src)
    if _same_file(src, dst):
        raise InputError(f"the output {dst} is the input file")
    recipe = get_recipe(recipe)
    if options:
        recipe = recipe.with_options(**options)
    check_recipe(recipe)
    user_meta = _check_metadata(metadata)
    count = decoded = 0
    with open_weights(src) as weights:
        if on_start is not None:
            on_start(weights.total_bytes)
        meta = dict(weights.metadata)
        meta["wcodec.recipe"] = recipe.name
        meta["wcodec.source"] = os.path.basename(src)
        meta.update(user_meta)
        def counted(name: str, nbytes: int) -> None:
            nonlocal count, decoded
            count += 1
            decoded += nbytes
            if progress is not None:
                progress(name, nbytes)

        write_tensors(weights, dst, recipe, meta, progress=counted, threads=threads)
    return PackResult(src, dst, count, os.path.getsize(src), decoded, os.path.getsize(dst),
                      time.perf_counter() - start)


def unpack_file(src: str | os.PathLike, dst: str | os.PathLike, *,
                progress: Progress | None = None,
                on_start: Callable[[int], None] | None = None) -> UnpackResult:
    """Decode a .wcodec file into a .safetensors / .pt / .pth / .bin / .npz file
    (by extension). File metadata, less the ``wcodec.*`` keys, goes into the
    safetensors ``__metadata__``."""
    src, dst = os.fspath(src), os.fspath(dst)
    start = time.perf_counter()
    format_of(dst)
    if not os.path.exists(src):
        raise InputError(f"{src}: no such file")
    if _same_file(src, dst):
        raise InputError(f"the output {dst} is the input file")
    with Reader(src) as reader:
        sources = [TensorSource(info.name, info.shape, info.dtype,
                                lambda n=info.name: reader.get_tensor(n))
                   for info in reader.infos()]
        meta = {k: v for k, v in reader.metadata().items() if not k.startswith("wcodec.")}
        if on_start is not None:
            on_start(sum(info.nbytes for info in reader.infos()))
        save_weights(dst, sources, meta, progress=progress)
    return UnpackResult(src, dst, len(sources), os.path.getsize(src), os.path.getsize(dst),
                        time.perf_counter() - start)

