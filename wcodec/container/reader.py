"""Lazy, validating reader. Opening a file reads only its trailer and table of
contents; every offset, size and name is checked before any tensor is touched,
and each stream's crc32 is checked when the stream is read."""
from __future__ import annotations

import json
import mmap
import os
import zlib
from collections import abc
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from .. import dtypes
from ..codecs import zstd as zstd_codec
from ..codecs.base import ArraySpec
from ..errors import (ChecksumError, ConfigError, FormatError, InputError, LimitExceeded,
                      TruncatedError, UnknownCodec, UnsupportedVersion, WcodecError)
from ..parallel import AHEAD_BYTES, check_ahead, check_threads, ordered_map
from ..pipeline import DATA_STREAM, Pipeline
from . import format as fmt


@dataclass(frozen=True)
class StreamInfo:
    name: str
    offset: int
    length: int
    crc32: int


@dataclass
class TensorInfo:
    """What the table of contents says about one tensor."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    pipeline: list[dict[str, Any]]
    streams: list[StreamInfo]
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def numel(self) -> int:
        return ArraySpec(self.shape, self.dtype).size

    @property
    def nbytes(self) -> int:
        """Decoded size in bytes."""
        return ArraySpec(self.shape, self.dtype).nbytes

    @property
    def stored_bytes(self) -> int:
        return sum(s.length for s in self.streams)

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.stored_bytes / self.numel if self.numel else 0.0

    @property
    def pipeline_text(self) -> str:
        return "+".join(str(c.get("id")) for c in self.pipeline)


def _reject_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def _unique_keys(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return obj


def _fail(where: str, what: str) -> FormatError:
    return FormatError(f"{where}: {what}")


def _int(value: Any, where: str, lo: int = 0, hi: int = (1 << 63) - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(where, f"expected an integer in [{lo}, {hi}], got {str(value)[:40]!r}")
    return value


def _parse_tensor(obj: Any, i: int, data_end: int, max_tensor_bytes: int) -> TensorInfo:
    where = f"tensor #{i}"
    if not isinstance(obj, dict):
        raise _fail(where, "record is not an object")
    unknown = set(obj) - {"name", "dtype", "shape", "pipeline", "streams", "stats"}
    if unknown:
        raise _fail(where, f"unknown fields {sorted(unknown)}")
    name = obj.get("name")
    if (not isinstance(name, str) or not name
            or len(name.encode("utf-8", "surrogatepass")) > fmt.MAX_NAME_BYTES):
        raise _fail(where, "bad or missing name")
    where = f"tensor {name!r}"
    try:
        dt = dtypes.get(obj.get("dtype"))
    except ConfigError as exc:
        raise _fail(where, str(exc)) from None
    shape = obj.get("shape")
    if not isinstance(shape, list) or len(shape) > fmt.MAX_NDIM:
        raise _fail(where, f"shape must be a list of at most {fmt.MAX_NDIM} sizes")
    shape = tuple(_int(d, where, 0, 1 << 62) for d in shape)
    spec = ArraySpec(shape, dt.name)
    nonzero = ArraySpec(tuple(d for d in shape if d), dt.name)
    if nonzero.nbytes >= 1 << 62:
        raise LimitExceeded(f"{where}: shape {list(shape)} is too large to describe an array")
    if spec.nbytes > max_tensor_bytes:
        raise LimitExceeded(f"{where}: declares {spec.nbytes} decoded bytes, above the limit "
                            f"{max_tensor_bytes} (raise max_tensor_bytes to read it)")
    pipeline = obj.get("pipeline")
    if (not isinstance(pipeline, list) or not 1 <= len(pipeline) <= 16
            or not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in pipeline)):
        raise _fail(where, "pipeline must be a list of 1..16 codec configs with an 'id'")
    raw_streams = obj.get("streams")
    if not isinstance(raw_streams, list) or not 1 <= len(raw_streams) <= fmt.MAX_STREAMS:
        raise _fail(where, f"streams must be a list of 1..{fmt.MAX_STREAMS} records")
    streams = []
    for s in raw_streams:
        if not isinstance(s, dict) or set(s) != {"name", "offset", "length", "crc32"}:
            raise _fail(where, "a stream record needs exactly name, offset, length, crc32")
        sname = s["name"]
        if not isinstance(sname, str) or not fmt.STREAM_NAME.match(sname):
            raise _fail(where, f"bad stream name {str(sname)[:40]!r}")
        offset = _int(s["offset"], where, fmt.HEADER.size, data_end)
        length = _int(s["length"], where, 0, data_end - offset)
        if offset % fmt.ALIGN:
            raise _fail(where, f"stream {sname} offset {offset} is not {fmt.ALIGN}-byte aligned")
        streams.append(StreamInfo(sname, offset, length, _int(s["crc32"], where, 0, 0xFFFFFFFF)))
    names = [s.name for s in streams]
    if DATA_STREAM not in names or len(set(names)) != len(names):
        raise _fail(where, "streams must be uniquely named and include 'data'")
    stats = obj.get("stats", {})
    if not isinstance(stats, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in stats.items()):
        raise _fail(where, "stats must map names to numbers")
    return TensorInfo(name, dt.name, shape, pipeline, streams, dict(stats))


def _named(names: list[str], arrays: Iterator[np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, array)`` pairs; closing this generator stops the decoding."""
    try:
        yield from zip(names, arrays)
    finally:
        arrays.close()


class Reader:
    """Lazy access to a .wcodec file (``wcodec.open`` returns one).

    ``keys()``, ``metadata()``, ``info(name)``, ``get_tensor(name)`` and
    ``tensors()`` (several, decoded in parallel); use it as a context manager or
    call ``close()``. Reads may come from several threads at once.
    """

    def __init__(self, path: str | os.PathLike, *,
                 max_tensor_bytes: int = fmt.DEFAULT_MAX_TENSOR_BYTES):
        try:
            self.path = os.fspath(path)
        except TypeError:
            raise InputError(f"expected a file path, got {type(path).__name__}") from None
        if isinstance(self.path, bytes):
            self.path = os.fsdecode(self.path)
        if isinstance(max_tensor_bytes, bool) or not isinstance(max_tensor_bytes, int) \
                or max_tensor_bytes < 0:
            raise InputError(f"max_tensor_bytes must be a non-negative integer, "
                             f"got {max_tensor_bytes!r}")
        self.max_tensor_bytes = max_tensor_bytes
        try:
            self._file = open(self.path, "rb")
        except OSError as exc:
            raise InputError(f"cannot open {self.path}: {exc.strerror}") from None
        self._map: mmap.mmap | None = None
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            if self._size < fmt.HEADER.size + fmt.TRAILER.size:
                raise TruncatedError(f"{self.path}: {self._size} bytes is too short for a wcodec file")
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._view = memoryview(self._map)
            self._parse()
        except BaseException:
            self.close()
            raise
        self._pipelines: dict[str, Pipeline] = {}

    # -- parsing -------------------------------------------------------
    def _parse(self) -> None:
        magic, major, minor, flags, reserved = fmt.HEADER.unpack_from(self._view, 0)
        if magic != fmt.MAGIC:
            raise FormatError(f"{self.path}: not a wcodec file (bad magic bytes)")
        if major != fmt.VERSION_MAJOR:
            raise UnsupportedVersion(f"{self.path}: format version {major}.{minor}; this wcodec "
                                     f"reads version {fmt.VERSION_MAJOR}.x")
        if flags != 0 or any(reserved):
            raise FormatError(f"{self.path}: reserved header bytes are not zero")
        self.version = (major, minor)
        toc_offset, toc_length, toc_crc, encoding, end_magic = fmt.TRAILER.unpack_from(
            self._view, self._size - fmt.TRAILER.size)
        if end_magic != fmt.MAGIC:
            raise TruncatedError(f"{self.path}: the trailer is missing or damaged "
                                 "(truncated or incomplete file?)")
        if encoding not in fmt.TOC_ENCODINGS:
            raise FormatError(f"{self.path}: unknown table-of-contents encoding {encoding}")
        if toc_length > fmt.MAX_TOC_BYTES:
            raise LimitExceeded(f"{self.path}: table of contents of {toc_length} bytes is above "
                                f"the limit {fmt.MAX_TOC_BYTES}")
        if toc_offset < fmt.HEADER.size or toc_offset + toc_length != self._size - fmt.TRAILER.size:
            raise FormatError(f"{self.path}: table of contents offset/length do not fit the file")
        toc_bytes = self._view[toc_offset:toc_offset + toc_length]
        if zlib.crc32(toc_bytes) != toc_crc:
            raise ChecksumError(f"{self.path}: table of contents checksum mismatch")
        if encoding != fmt.TOC_JSON:
            toc_bytes = zstd_codec.decompress(
                toc_bytes, fmt.MAX_TOC_BYTES, "table of contents",
                dictionary=fmt.TOC_DICTIONARY if encoding == fmt.TOC_ZSTD_DICT else None)
        try:
            toc = json.loads(bytes(toc_bytes).decode("utf-8"), parse_constant=_reject_constant,
                             object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError) as exc:
            raise FormatError(f"{self.path}: table of contents is not valid JSON: {exc}") from None
        if not isinstance(toc, dict) or set(toc) != {"metadata", "tensors"}:
            raise FormatError(f"{self.path}: table of contents needs exactly 'metadata' and 'tensors'")
        meta, tensors = toc["metadata"], toc["tensors"]
        if (not isinstance(meta, dict) or len(meta) > fmt.MAX_METADATA_ITEMS
                or not all(isinstance(v, str) for v in meta.values())):
            raise FormatError(f"{self.path}: metadata must map strings to strings")
        if not isinstance(tensors, list) or len(tensors) > fmt.MAX_TENSORS:
            raise FormatError(f"{self.path}: 'tensors' must be a list of at most {fmt.MAX_TENSORS}")
        self._metadata = meta
        self._toc_offset = toc_offset
        self._infos: dict[str, TensorInfo] = {}
        for i, obj in enumerate(tensors):
            info = _parse_tensor(obj, i, toc_offset, self.max_tensor_bytes)
            if info.name in self._infos:
                raise FormatError(f"{self.path}: duplicate tensor name {info.name!r}")
            self._infos[info.name] = info
        spans = sorted((s.offset, s.offset + s.length, name)  # an empty range overlaps nothing
                       for name, info in self._infos.items() for s in info.streams if s.length)
        for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
            if start < end:
                raise FormatError(f"{self.path}: streams of {a!r} and {b!r} overlap")

    # -- public API ----------------------------------------------------
    def keys(self) -> list[str]:
        return list(self._infos)

    def __contains__(self, name: str) -> bool:
        return isinstance(name, str) and name in self._infos

    def __len__(self) -> int:
        return len(self._infos)

    def metadata(self) -> dict[str, str]:
        return dict(self._metadata)

    def info(self, name: str) -> TensorInfo:
        if not isinstance(name, str):
            raise InputError(f"tensor names are strings, got {type(name).__name__}")
        try:
            return self._infos[name]
        except KeyError:
            raise InputError(f"no tensor named {name!r} in {self.path}") from None

    def infos(self) -> list[TensorInfo]:
        return list(self._infos.values())

    def pipeline(self, name: str) -> Pipeline:
        """The tensor's validated pipeline (UnknownCodec / FormatError if unusable)."""
        if name not in self._pipelines:
            info = self.info(name)
            try:
                pipeline = Pipeline.from_config(info.pipeline)
                pipeline.specs(ArraySpec(info.shape, info.dtype))
            except UnknownCodec as exc:
                raise UnknownCodec(f"tensor {name!r}: {exc} (written by a newer wcodec?)") from None
            except ConfigError as exc:
                raise FormatError(f"tensor {name!r}: bad pipeline: {exc}") from None
            self._pipelines[name] = pipeline
        return self._pipelines[name]

    def _check_unchanged_size(self) -> None:
        """TruncatedError if the file was shortened since it was opened: touching
        mapped pages past the new end would kill the process (SIGBUS).  wcodec's
        own writer replaces files by rename, which never does this; a truncation
        racing with a read that has already passed this check is not caught."""
        if self._map is None:
            raise InputError(f"{self.path} is closed")
        size = os.fstat(self._file.fileno()).st_size
        if size < self._size:
            raise TruncatedError(f"{self.path} was truncated ({self._size} -> {size} bytes) "
                                 "while open")

    def read_stream(self, name: str, stream: str) -> memoryview:
        """The checksum-verified stored bytes of one stream (a view into the file)."""
        for s in self.info(name).streams:
            if s.name == stream:
                self._check_unchanged_size()
                data = self._view[s.offset:s.offset + s.length]
                if zlib.crc32(data) != s.crc32:
                    raise ChecksumError(f"tensor {name!r}: checksum mismatch in stream {stream!r}")
                return data
        raise InputError(f"tensor {name!r} has no stream {stream!r}")

    def get_tensor(self, name: str, out: np.ndarray | None = None) -> np.ndarray:
        """Decode one tensor into a new numpy array (bfloat16 as uint16 bits), or
        into ``out`` (a writeable C-contiguous array of the tensor's shape and
        carrier dtype), which saves a copy when filling existing buffers."""
        info = self.info(name)
        spec = ArraySpec(info.shape, info.dtype)
        if out is not None:
            spec.check_out(out, f"tensor {name!r}")
        pipeline = self.pipeline(name)
        streams = {s.name: self.read_stream(name, s.name) for s in info.streams}
        data = streams.pop(DATA_STREAM)
        try:
            array = pipeline.decode(data, streams, spec, out=out)
        except MemoryError:
            raise LimitExceeded(f"tensor {name!r}: not enough memory to decode it") from None
        except WcodecError as exc:
            if isinstance(exc, FormatError) and not str(exc).startswith("tensor "):
                raise type(exc)(f"tensor {name!r}: {exc}") from None
            raise
        if out is None and (not array.flags.writeable or not array.flags.c_contiguous):
            array = np.array(array, copy=True, order="C")
        return array

    def tensors(self, names: Iterable[str] | None = None, *, threads: int | None = None,
                out: Mapping[str, np.ndarray] | None = None,
                ahead_bytes: int = AHEAD_BYTES) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(name, array)`` for ``names`` (default: every tensor, each at
        most once), in that order, decoding up to ``threads`` tensors at a time
        (default ``default_threads()``). ``out`` maps names to buffers as
        ``get_tensor``'s ``out``; they must not overlap. Decoded tensors not yet
        yielded (``out`` buffers aside) take at most ``ahead_bytes`` together (a
        larger one is decoded alone). Arguments and names are checked before
        anything is decoded; close the generator to stop early."""
        if names is not None and (isinstance(names, (str, bytes))
                                  or not isinstance(names, abc.Iterable)):
            raise InputError(f"names must be a list of tensor names, got {names!r:.60}")
        names = list(self.keys() if names is None else names)
        threads, ahead_bytes = check_threads(threads), check_ahead(ahead_bytes)
        sizes = {name: self.info(name).nbytes for name in names}  # unknown names fail here
        if len(sizes) != len(names):
            raise InputError("tensors(): a name is repeated")
        out = {} if out is None else out
        arrays = ordered_map(lambda name: self.get_tensor(name, out=out.get(name)), names, threads,
                             lambda name: 0 if name in out else sizes[name], ahead_bytes)
        return _named(names, arrays)

    def verify(self, progress=None, *, threads: int | None = None) -> list[str]:
        """Check every checksum, decode every tensor (``threads`` at a time,
        default ``default_threads()``) and check that the bytes between streams
        are zero padding. Returns a list of problems found, in file order;
        ``progress(name, nbytes)`` is called after each tensor, in file order."""
        threads = check_threads(threads)
        if progress is not None and not callable(progress):
            raise InputError(f"progress must be callable, got {progress!r:.60}")

        def problem(name: str) -> str | None:
            try:
                self.get_tensor(name)  # decoded and dropped
            except WcodecError as exc:
                return str(exc)
            return None

        problems = []
        for name, found in zip(self.keys(), ordered_map(problem, self.keys(), threads)):
            if found is not None:
                problems.append(found)
            if progress is not None:
                progress(name, self._infos[name].nbytes)
        try:
            self._check_unchanged_size()
        except TruncatedError as exc:
            return problems + [str(exc)]
        covered = fmt.HEADER.size
        spans = sorted((s.offset, s.offset + s.length)
                       for info in self._infos.values() for s in info.streams)
        for start, end in spans + [(self._toc_offset, self._toc_offset)]:
            if start > covered and np.frombuffer(self._view[covered:start], np.uint8).any():
                problems.append(f"non-zero bytes in the padding at offset {covered}")
            covered = max(covered, end)
        return problems

    def close(self) -> None:
        """Release the file. Arrays returned earlier stay valid (they are copies)."""
        try:
            if getattr(self, "_view", None) is not None:
                self._view.release()
            if self._map is not None:
                self._map.close()
        except BufferError:  # a caller still holds a view; the GC closes the map later
            pass
        self._view = None
        self._map = None
        self._file.close()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
