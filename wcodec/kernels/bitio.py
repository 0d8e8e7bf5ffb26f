"""Small byte/bit helpers shared by the entropy-coding kernels.

* LEB128 varints (unsigned, little-endian base-128, at most 10 bytes).
* Fixed-width MSB-first bit packing of small arrays of non-negative integers
  (value ``i`` occupies stream bits ``i*width .. i*width+width-1``, its most
  significant bit first; stream bit ``k`` is bit ``7 - k % 8`` of byte
  ``k // 8``; unused low bits of the last byte are zero).
* A bounds-checked reader that raises :class:`TruncatedError` /
  :class:`FormatError` instead of ``IndexError``.

Everything is vectorised; these helpers are meant for headers and side tables
(thousands of values), not for bulk symbol data.
"""

from __future__ import annotations

import numpy as np

from wcodec.errors import ConfigError, FormatError, TruncatedError

__all__ = [
    "MAX_VARINT_BYTES",
    "write_varint",
    "pack_fixed_msb",
    "unpack_fixed_msb",
    "Reader",
]

MAX_VARINT_BYTES = 10
MAX_FIXED_WIDTH = 62


def write_varint(value: int) -> bytes:
    """Unsigned LEB128 encoding of ``value`` (0 <= value < 2**64)."""
    v = int(value)
    if v < 0 or v >= 1 << 64:
        raise ConfigError(f"varint out of range: {v}")
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pack_fixed_msb(values: np.ndarray, width: int) -> bytes:
    """Pack non-negative ``values`` at ``width`` bits each, MSB first.

    ``width`` 0 gives ``b""``.  Values must fit the width (not re-checked).
    """
    values = np.asarray(values, dtype=np.uint64).reshape(-1)
    if width == 0 or values.size == 0:
        return b""
    if not 0 < width <= MAX_FIXED_WIDTH:
        raise ConfigError(f"fixed width must be in 0..{MAX_FIXED_WIDTH}, got {width}")
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = ((values[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(-1)).tobytes()


def unpack_fixed_msb(raw: np.ndarray, count: int, width: int) -> np.ndarray:
    """Inverse of :func:`pack_fixed_msb`: ``count`` values as int64.

    ``raw`` must hold exactly ``ceil(count*width/8)`` bytes (checked by the
    caller); non-zero padding bits raise FormatError.
    """
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.int64)
    nbits = count * width
    bits = np.unpackbits(np.asarray(raw, dtype=np.uint8))
    if bits[nbits:].any():
        raise FormatError("non-zero padding bits in a packed table")
    bits = bits[:nbits].reshape(count, width).astype(np.int64)
    weights = np.left_shift(np.int64(1), np.arange(width - 1, -1, -1, dtype=np.int64))
    return bits @ weights


class Reader:
    """Sequential, bounds-checked reader over a uint8 array."""

    __slots__ = ("raw", "mv", "pos", "what")

    def __init__(self, raw: np.ndarray, what: str = "stream"):
        self.raw = raw
        self.mv = memoryview(raw)
        self.pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self.mv) - self.pos

    def need(self, n: int) -> None:
        if n < 0 or n > len(self.mv) - self.pos:
            raise TruncatedError(
                f"{self.what}: needs {n} more bytes at offset {self.pos}, "
                f"only {len(self.mv) - self.pos} left")

    def u8(self) -> int:
        self.need(1)
        v = self.mv[self.pos]
        self.pos += 1
        return v

    def varint(self, limit: int = (1 << 64) - 1) -> int:
        """Read an unsigned LEB128 value; FormatError if it exceeds ``limit``."""
        v = 0
        shift = 0
        mv = self.mv
        for i in range(MAX_VARINT_BYTES):
            if self.pos >= len(mv):
                raise TruncatedError(f"{self.what}: truncated varint at offset {self.pos}")
            b = mv[self.pos]
            self.pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if v > limit:
                    raise FormatError(f"{self.what}: value {v} exceeds limit {limit}")
                return v
        raise FormatError(f"{self.what}: varint longer than {MAX_VARINT_BYTES} bytes")

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` bytes as a uint8 array view (bounds-checked)."""
        self.need(n)
        out = self.raw[self.pos:self.pos + n]
        self.pos += n
        return out
