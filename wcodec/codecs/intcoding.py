"""Shared plumbing of the integer coders (bitpack, huffman, zerorun, linerice, sparse).

They code integer or bool arrays. Signed integers are first mapped to unsigned
*symbols* by zigzag (0, -1, 1, -2, 2 ... -> 0, 1, 2, 3, 4 ...), which keeps zero
at symbol 0 and small magnitudes small; unsigned and bool values are symbols as
they are. Huffman-coded symbol streams larger than ``ESCAPE`` are escaped: the
symbol ``ESCAPE`` goes into the Huffman stream and ``value - ESCAPE`` into a
bit-packed escape list after it.
"""
from __future__ import annotations

import math
import struct

import numpy as np

from .. import dtypes
from ..errors import ConfigError, FormatError
from ..kernels import bitpack, huffman
from .base import ARRAY_TO_BYTES, ArraySpec, Codec, as_bytes

ESCAPE = 4095  # symbols >= ESCAPE are escaped; keeps Huffman tables small
_U64 = struct.Struct("<Q")
MIN_STREAM = _U64.size + 4  # the shortest symbol stream: length, then version, mode, 2 varints


def check_integer(spec: ArraySpec, who: str) -> None:
    dt = dtypes.get(spec.dtype)
    if dt.is_float:
        raise ConfigError(f"{who} codes integer symbols; put a quantize or cluster codec before it "
                          f"for a {spec.dtype} tensor")


class IntegerCoder(Codec):
    """Base of the array->bytes coders of integer/bool symbols."""

    kind = ARRAY_TO_BYTES

    def resolve(self, spec: ArraySpec) -> ArraySpec:
        check_integer(spec, self.codec_id)
        return spec


def to_symbols(array: np.ndarray, spec: ArraySpec) -> np.ndarray:
    """Flat unsigned symbols of an integer/bool array (zigzag for signed)."""
    a = np.ascontiguousarray(array).reshape(-1)
    if a.dtype == np.bool_:
        return a.view(np.uint8)
    if a.dtype.kind == "u":
        return a
    bits = 8 * a.dtype.itemsize
    unsigned = np.dtype(f"<u{a.dtype.itemsize}")
    return ((a << 1) ^ (a >> (bits - 1))).view(unsigned)


def from_symbols(symbols: np.ndarray, spec: ArraySpec) -> np.ndarray:
    """Invert ``to_symbols``; FormatError if a symbol does not fit the dtype."""
    dt = dtypes.get(spec.dtype)
    s = np.asarray(symbols)
    if spec.dtype == "bool":
        if s.size and s.max() > 1:
            raise FormatError("bool tensor decoded a symbol other than 0/1")
        return s.astype(np.bool_).reshape(spec.shape)
    if s.size and int(s.max()) >> (8 * dt.itemsize):
        raise FormatError(f"decoded symbol {int(s.max())} does not fit {spec.dtype}")
    unsigned = np.dtype(f"<u{dt.itemsize}")
    u = s.astype(unsigned, copy=False)
    if dt.numpy.kind == "u":
        return u.reshape(spec.shape)
    signed = u >> unsigned.type(1)
    signed ^= (unsigned.type(0) - (u & unsigned.type(1)))
    return signed.view(dt.numpy).reshape(spec.shape)


def encode_symbols(symbols: np.ndarray) -> bytes:
    """Huffman-code unsigned symbols, escaping those >= ESCAPE.

    Layout: u64 Huffman stream length, Huffman stream, then (only if any symbol
    was escaped) a bitpack stream (with width header) of ``value - ESCAPE``."""
    symbols = np.asarray(symbols).reshape(-1)
    escaped = symbols >= ESCAPE
    n_escaped = int(np.count_nonzero(escaped)) if symbols.size else 0
    if n_escaped:
        extra = (symbols[escaped].astype(np.uint64) - ESCAPE)
        symbols = np.where(escaped, ESCAPE, symbols).astype(np.uint16)
    coded = huffman.encode(symbols.astype(np.uint16, copy=False) if symbols.dtype.itemsize > 2
                           else symbols)
    tail = bitpack.encode_stream(extra) if n_escaped else b""
    return _U64.pack(len(coded)) + coded + tail


def stream_floor(symbols: np.ndarray) -> int:
    """Bytes ``encode_symbols(symbols)`` never goes below: its header, and the
    Huffman payload at no less than the order-0 entropy of the (escaped) symbols
    (no prefix code with one table is shorter)."""
    symbols = np.asarray(symbols).reshape(-1)
    if symbols.dtype.itemsize > 1:
        symbols = np.minimum(symbols, np.array(ESCAPE, symbols.dtype)).astype(np.uint16)
    bits = entropy_bits_per_symbol(symbols) * symbols.size
    payload = bits / 8 * (1 - 1e-9) - 1e-3  # slack for the rounding of the float sum
    return MIN_STREAM + max(0, math.ceil(payload))


def decode_symbols(buf, count: int) -> np.ndarray:
    """Invert ``encode_symbols`` for ``count`` symbols."""
    buf = as_bytes(buf)
    if len(buf) < _U64.size:
        raise FormatError("symbol stream shorter than its header")
    (length,) = _U64.unpack_from(buf, 0)
    if length > len(buf) - _U64.size:
        raise FormatError("symbol stream: Huffman part runs past the end")
    symbols = huffman.decode(buf[_U64.size:_U64.size + length], count)
    tail = buf[_U64.size + length:]
    escaped = symbols == ESCAPE
    n_escaped = int(np.count_nonzero(escaped)) if len(tail) or symbols.size else 0
    if not n_escaped:
        if len(tail):
            raise FormatError("symbol stream: trailing bytes after the Huffman stream")
        return symbols
    extra = bitpack.decode_stream(tail, n_escaped)
    out = symbols.astype(np.uint64)
    out[escaped] = extra.astype(np.uint64) + ESCAPE
    return out


def symbol_stats(symbols: np.ndarray, stats: dict, coded=None, coded2=None) -> None:
    """Fill ``stats`` with sparsity, number of levels and the order-0 entropy
    bound (total bits) of the symbol stream(s) actually entropy-coded."""
    n = symbols.size
    stats["sparsity"] = float(np.count_nonzero(symbols == 0) / n) if n else 0.0
    stats["levels"] = float(np.unique(symbols).size) if n else 0.0
    total = 0.0
    for s in (symbols if coded is None else coded), coded2:
        if s is not None:
            total += entropy_bits_per_symbol(s) * np.asarray(s).size
    stats["entropy_bits"] = total


def entropy_bits_per_symbol(symbols: np.ndarray) -> float:
    """Order-0 empirical entropy of a symbol stream, in bits per symbol."""
    symbols = np.asarray(symbols).reshape(-1)
    if symbols.size == 0:
        return 0.0
    counts = np.bincount(symbols) if symbols.dtype.itemsize <= 2 else np.unique(
        symbols, return_counts=True)[1]
    counts = counts[counts > 0]
    p = counts / symbols.size
    return float(-(p * np.log2(p)).sum())
