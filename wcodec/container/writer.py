"""Streaming, atomic writer: tensors go to a temp file one at a time; the table
of contents is written at the end and the file is renamed into place."""
from __future__ import annotations

import json
import math
import os
import signal
import tempfile
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import dtypes
from ..codecs import zstd as zstd_codec
from ..codecs.base import ArraySpec
from ..errors import InputError, WcodecError
from ..pipeline import DATA_STREAM, Encoded, Pipeline
from . import format as fmt


def _utf8_len(text: str, what: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InputError(f"{what} {text[:40]!r} is not valid Unicode (lone surrogate)") from None


def _check_metadata(metadata: dict | None) -> dict[str, str]:
    metadata = dict(metadata or {})
    if len(metadata) > fmt.MAX_METADATA_ITEMS:
        raise InputError(f"at most {fmt.MAX_METADATA_ITEMS} metadata items")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InputError(f"metadata must map str to str, got {key!r}: {value!r}")
        _utf8_len(key, "metadata key")
        _utf8_len(value, "metadata value")
    return metadata


def _display(v: float) -> float:
    """A stats number as written: counts exactly, fractions to 6 significant
    digits (stats are for display, and 17-digit floats cost TOC bytes)."""
    v = float(v)
    return v if v.is_integer() else float(f"{v:.6g}")


class SigintHold:
    """Hold Ctrl-C back while a temp file is created and its clean-up is put in
    place: a SIGINT that arrives meanwhile is recorded and raised again by
    ``release()`` (call it inside the block that removes the temp file on
    failure). Only the main thread can change signal handlers; elsewhere this
    does nothing."""

    def __init__(self) -> None:
        self.pending = False
        self.installed = False
        try:
            self.old = signal.getsignal(signal.SIGINT)
            if self.old is not None:  # None: a handler set from C, which we could not restore
                signal.signal(signal.SIGINT, self._record)
                self.installed = True
        except (ValueError, OSError, AttributeError):  # not the main thread
            pass

    def _record(self, signum, frame) -> None:
        self.pending = True

    def release(self) -> None:
        if self.installed:
            self.installed = False
            signal.signal(signal.SIGINT, self.old)
            if self.pending:
                signal.raise_signal(signal.SIGINT)  # through the restored handler


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise InputError(f"tensor names must be non-empty strings, got {name!r}")
    if _utf8_len(name, "tensor name") > fmt.MAX_NAME_BYTES:
        raise InputError(f"tensor name too long: {name[:40]!r}...")


@dataclass(frozen=True)
class EncodedTensor:
    """A tensor encoded for a file, not yet written (``encode_tensor``)."""

    name: str
    dtype: str
    spec: ArraySpec
    encoded: Encoded


def encode_tensor(name: str, array: np.ndarray, pipeline: Pipeline,
                  dtype: str | None = None) -> EncodedTensor:
    """Encode ``array`` with ``pipeline`` for ``Writer.add_encoded``. Touches no
    writer, so several tensors may be encoded at once on threads."""
    _check_name(name)
    array = np.asarray(array)
    dtype = dtype or dtypes.name_of(array)
    if array.ndim > fmt.MAX_NDIM:
        raise InputError(f"{name}: {array.ndim} dimensions, at most {fmt.MAX_NDIM} supported")
    spec = ArraySpec(array.shape, dtype)
    try:
        encoded = pipeline.encode(dtypes.to_storage(array, dtype), spec)
    except WcodecError as exc:
        raise type(exc)(f"{name}: {exc}") from None
    return EncodedTensor(name, dtype, spec, encoded)


class Writer:
    """Write a .wcodec file. Use as a context manager::

        with Writer("model.wcodec", metadata={...}) as w:
            w.add_tensor("fc.weight", array, pipeline)

    Peak memory is about one tensor (plus its encoded streams). If the block
    raises, the target path is left untouched and the temp file removed.
    """

    def __init__(self, path: str | os.PathLike, metadata: dict[str, str] | None = None):
        self.path = os.fspath(path)
        self.metadata = _check_metadata(metadata)
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise InputError(f"cannot write {self.path}: directory {directory} does not exist")
        hold = SigintHold()  # Ctrl-C must not land between mkstemp and its clean-up
        try:
            fd, self._tmp = tempfile.mkstemp(prefix="." + os.path.basename(self.path) + ".",
                                             suffix=".tmp", dir=directory)
        except BaseException:
            hold.release()
            raise
        self._file = None
        try:
            self._file = os.fdopen(fd, "wb")
            self._file.write(fmt.HEADER.pack(fmt.MAGIC, fmt.VERSION_MAJOR, fmt.VERSION_MINOR, 0,
                                             bytes(48)))
        except BaseException:
            if self._file is None:
                os.close(fd)
            else:
                self._file.close()
            os.unlink(self._tmp)
            hold.release()
            raise
        self._pos = fmt.HEADER.size
        self._records: list[dict[str, Any]] = []
        self._names: set[str] = set()
        self._done = False
        try:
            hold.release()  # a Ctrl-C held back above is raised here, with clean-up in place
        except BaseException:
            self.abort()
            raise

    def add_tensor(self, name: str, array: np.ndarray, pipeline: Pipeline,
                   dtype: str | None = None) -> dict[str, Any]:
        """Encode ``array`` with ``pipeline`` and append it; returns its TOC record."""
        self._check_new_name(name)
        return self.add_encoded(encode_tensor(name, array, pipeline, dtype))

    def _check_new_name(self, name: Any) -> None:
        _check_name(name)
        if name in self._names:
            raise InputError(f"duplicate tensor name {name!r}")
        if len(self._records) >= fmt.MAX_TENSORS:
            raise InputError(f"a file holds at most {fmt.MAX_TENSORS} tensors")

    def add_encoded(self, tensor: "EncodedTensor") -> dict[str, Any]:
        """Append a tensor ``encode_tensor`` made (tensors may be encoded on
        other threads; they are appended in the order of these calls)."""
        if not isinstance(tensor, EncodedTensor):
            raise InputError(f"add_encoded expects what encode_tensor returns, got {tensor!r:.80}")
        name, dtype, spec, encoded = tensor.name, tensor.dtype, tensor.spec, tensor.encoded
        self._check_new_name(name)
        data, side, stats = encoded.data, encoded.streams, encoded.stats
        if len(side) + 1 > fmt.MAX_STREAMS or not all(fmt.STREAM_NAME.match(k) for k in side):
            raise InputError(f"{name}: bad side streams {sorted(side)} from "
                             f"{encoded.pipeline.describe()}")
        streams = []
        config = encoded.pipeline.get_config()
        # a large stream that readers may view in place gets a cache-line boundary
        zero_copy = config[-1]["id"] == "raw" and len(data) >= fmt.RAW_ALIGN_FROM
        for stream_name, blob in [(DATA_STREAM, data)] + sorted(side.items()):
            align = fmt.RAW_ALIGN if zero_copy and stream_name == DATA_STREAM else fmt.ALIGN
            streams.append({"name": stream_name, "offset": self._write_aligned(blob, align),
                            "length": len(blob), "crc32": zlib.crc32(blob)})
        record = {"name": name, "dtype": dtype, "shape": list(spec.shape),
                  "pipeline": config, "streams": streams}
        stats = {k: _display(v) for k, v in stats.items() if math.isfinite(v)}
        if stats:
            record["stats"] = stats
        self._records.append(record)
        self._names.add(name)
        return record

    def _write_aligned(self, blob: bytes, align: int) -> int:
        pad = fmt.align_up(self._pos, align) - self._pos
        if pad:
            self._file.write(bytes(pad))
        offset = self._pos + pad
        self._file.write(blob)
        self._pos = offset + len(blob)
        return offset

    def close(self) -> None:
        """Write the table of contents and trailer, fsync, rename into place."""
        if self._done:
            return
        try:
            toc = json.dumps({"metadata": self.metadata, "tensors": self._records},
                             ensure_ascii=False, separators=(",", ":"),
                             allow_nan=False).encode("utf-8")
            if len(toc) > fmt.MAX_TOC_BYTES:
                raise InputError(f"table of contents is {len(toc)} bytes, above {fmt.MAX_TOC_BYTES}")
            encoding = fmt.TOC_JSON
            if len(toc) >= fmt.TOC_COMPRESS_FROM:  # small models: the TOC is much of the file
                packed = zstd_codec.compress(toc, 19, fmt.TOC_DICTIONARY)
                if len(packed) < len(toc):
                    toc, encoding = packed, fmt.TOC_ZSTD_DICT
            offset = self._pos
            self._file.write(toc)
            self._file.write(fmt.TRAILER.pack(offset, len(toc), zlib.crc32(toc), encoding,
                                              fmt.MAGIC))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self._tmp, 0o666 & ~umask)
            os.replace(self._tmp, self.path)
            self._done = True
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop everything written so far; the target path is not touched."""
        self._done = True
        try:
            self._file.close()
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
