"""Fixed-width bit packing of unsigned symbols (1..32 bits each).

Bit order (normative, see ``spec/codecs/bitpack.md``): the packed stream is
a little-endian bit string.  Stream bit ``k`` is bit ``k % 8`` (value
``1 << (k % 8)``) of byte ``k // 8``.  Symbol ``i`` occupies stream bits
``i*bits .. i*bits + bits - 1``, least significant bit first.  This is the
layout of ``np.packbits(..., bitorder='little')`` applied to the symbols'
bits written LSB first.  The stream is exactly ``ceil(count * bits / 8)``
bytes long and the unused high bits of the final byte are zero.

Everything here is vectorised: there is no per-symbol Python loop.  Widths
8, 16 and 32 are plain little-endian integer arrays, width 1 is
``np.packbits``, widths 2 and 4 pack whole bytes with a reshape, and every
other width packs groups of 8 symbols (which fill exactly ``bits`` bytes)
into ``ceil(bits / 8)`` 64-bit words with at most 16 shift/or passes.

Errors: a width outside 1..32 or a symbol that does not fit the width is a
:class:`ConfigError`; a symbol array that is not made of non-negative
integers is an :class:`InputError`; a stream of the wrong length is a
:class:`TruncatedError` (too short) or :class:`FormatError` (too long, or
non-zero padding bits).
"""

from __future__ import annotations

import numpy as np

from wcodec.errors import ConfigError, FormatError, InputError, TruncatedError

__all__ = [
    "MAX_BITS",
    "as_symbols",
    "min_bits",
    "uint_dtype_for_bits",
    "packed_size",
    "pack",
    "unpack",
    "encode_stream",
    "decode_stream",
]

MAX_BITS = 32

_U64 = np.dtype("<u8")


# --------------------------------------------------------------------------
# helpers shared by the symbol kernels
# --------------------------------------------------------------------------

def as_symbols(symbols, name: str = "symbols") -> np.ndarray:
    """Return ``symbols`` as a flat array of an unsigned integer dtype.

    Unsigned arrays are returned flattened without a copy where possible;
    ``bool`` becomes ``uint8``; signed integer arrays are checked to be
    non-negative and then viewed as the unsigned type of the same size.
    Anything else (floats, objects, negative values) raises InputError.
    """
    arr = np.asarray(symbols)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    kind = arr.dtype.kind
    if arr.size == 0 and kind not in "ui":
        # e.g. np.asarray([]) is float64: accept an empty list as empty input
        return np.zeros(0, dtype=np.uint8)
    if kind == "u":
        return arr.reshape(-1)
    if kind == "i":
        arr = arr.reshape(-1)
        if arr.size and int(arr.min()) < 0:
            raise InputError(f"{name} must be non-negative integers")
        return arr.view(arr.dtype.str.replace("i", "u"))
    raise InputError(f"{name} must be an integer array, got dtype {arr.dtype}")


def uint_dtype_for_bits(bits: int) -> np.dtype:
    """Smallest numpy unsigned dtype holding ``bits``-bit values (<= 64)."""
    if bits <= 8:
        return np.dtype(np.uint8)
    if bits <= 16:
        return np.dtype(np.uint16)
    if bits <= 32:
        return np.dtype(np.uint32)
    return np.dtype(np.uint64)


def min_bits(max_value) -> int:
    """Fewest bits that represent every value in ``0..max_value`` (at least 1).

    ``min_bits(0) == 1``, ``min_bits(1) == 1``, ``min_bits(255) == 8``,
    ``min_bits(256) == 9``.  Negative values raise ConfigError.
    """
    v = int(max_value)
    if v < 0:
        raise ConfigError(f"max_value must be non-negative, got {v}")
    return max(1, v.bit_length())


def _check_bits(bits) -> int:
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)):
        raise ConfigError(f"bits must be an integer, got {bits!r}")
    b = int(bits)
    if not 1 <= b <= MAX_BITS:
        raise ConfigError(f"bits must be in 1..{MAX_BITS}, got {b}")
    return b


def _check_count(count) -> int:
    if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)):
        raise InputError(f"count must be an integer, got {count!r}")
    c = int(count)
    if c < 0:
        raise InputError(f"count must be non-negative, got {c}")
    return c


def packed_size(count: int, bits: int) -> int:
    """Byte length of ``count`` symbols packed at ``bits`` bits each."""
    return (_check_count(count) * _check_bits(bits) + 7) // 8


def _as_buffer(buf) -> np.ndarray:
    if isinstance(buf, np.ndarray):
        return buf.reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(buf, dtype=np.uint8)
    except TypeError as exc:
        raise InputError(f"buf must be a bytes-like object, got {type(buf).__name__}") from exc


# --------------------------------------------------------------------------
# pack / unpack
# --------------------------------------------------------------------------

def pack(symbols, bits: int) -> bytes:
    """Pack unsigned ``symbols`` at ``bits`` bits each (LSB-first, see module doc)."""
    b = _check_bits(bits)
    v = as_symbols(symbols)
    n = v.size
    if n == 0:
        return b""
    vmax = int(v.max())
    if vmax >> b:
        raise ConfigError(f"symbol value {vmax} does not fit in {b} bits")

    if b == 8:
        return v.astype(np.uint8, copy=False).tobytes()
    if b == 16:
        return v.astype("<u2", copy=False).tobytes()
    if b == 32:
        return v.astype("<u4", copy=False).tobytes()
    if b == 1:
        return np.packbits(v.astype(np.uint8, copy=False), bitorder="little").tobytes()
    if b in (2, 4):
        per = 8 // b
        groups = -(-n // per)
        g = np.zeros(groups * per, dtype=np.uint8)
        g[:n] = v
        g = g.reshape(groups, per)
        out = g[:, 0].copy()
        for j in range(1, per):
            out |= g[:, j] << np.uint8(j * b)
        return out.tobytes()
    return _pack_generic(v, b)


def _pack_generic(v: np.ndarray, b: int) -> bytes:
    """Any width 1..32: 8 symbols fill exactly ``b`` bytes = ceil(b/8) u64 words."""
    n = v.size
    groups = -(-n // 8)
    nwords = -(-b // 8)
    padded = np.zeros(groups * 8, dtype=uint_dtype_for_bits(b))
    padded[:n] = v  # values were checked to fit
    padded = padded.reshape(groups, 8)
    words = np.zeros((nwords, groups), dtype=np.uint64)
    for j in range(8):
        w, s = divmod(j * b, 64)
        col = padded[:, j].astype(np.uint64)
        words[w] |= col << np.uint64(s)
        if s + b > 64:
            words[w + 1] |= col >> np.uint64(64 - s)
    stacked = np.ascontiguousarray(words.T).astype(_U64, copy=False)
    raw = stacked.view(np.uint8).reshape(groups, nwords * 8)[:, :b]
    return raw.reshape(-1)[: (n * b + 7) // 8].tobytes()


def unpack(buf, count: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``count`` symbols of ``bits`` bits from ``buf``.

    ``buf`` must be exactly ``ceil(count*bits/8)`` bytes (TruncatedError if
    shorter, FormatError if longer) with zero padding bits (FormatError
    otherwise).  The length is checked before any work is done.  The result
    has dtype uint8 for bits <= 8, uint16 for bits <= 16, else uint32.
    """
    b = _check_bits(bits)
    n = _check_count(count)
    raw = _as_buffer(buf)
    need = (n * b + 7) // 8
    if raw.size < need:
        raise TruncatedError(
            f"bitpack stream has {raw.size} bytes, {need} needed for {n} x {b}-bit symbols")
    if raw.size > need:
        raise FormatError(
            f"bitpack stream has {raw.size} bytes, expected exactly {need}")
    dtype = uint_dtype_for_bits(b)
    if n == 0:
        return np.zeros(0, dtype=dtype)
    tail = (n * b) % 8
    if tail and int(raw[-1]) >> tail:
        raise FormatError("bitpack stream has non-zero padding bits")

    if b == 8:
        return raw.copy()
    if b == 16:
        return raw.view("<u2").astype(np.uint16)
    if b == 32:
        return raw.view("<u4").astype(np.uint32)
    if b == 1:
        return np.unpackbits(raw, count=n, bitorder="little")
    if b in (2, 4):
        per = 8 // b
        mask = np.uint8((1 << b) - 1)
        out = np.empty(raw.size * per, dtype=np.uint8)
        for j in range(per):
            np.bitwise_and(raw >> np.uint8(j * b), mask, out=out[j::per])
        return out[:n]
    return _unpack_generic(raw, n, b, dtype)


def _unpack_generic(raw: np.ndarray, n: int, b: int, dtype) -> np.ndarray:
    groups = -(-n // 8)
    nwords = -(-b // 8)
    padded = np.zeros(groups * b, dtype=np.uint8)
    padded[: raw.size] = raw
    wbytes = np.zeros((groups, nwords * 8), dtype=np.uint8)
    wbytes[:, :b] = padded.reshape(groups, b)
    del padded
    wview = wbytes.view(_U64)  # (groups, nwords), little-endian
    words = [wview[:, w].astype(np.uint64) for w in range(nwords)]
    del wbytes, wview
    mask = np.uint64((1 << b) - 1)
    out = np.empty((8, groups), dtype=dtype)
    for j in range(8):
        off = j * b
        w, s = divmod(off, 64)
        x = words[w] >> np.uint64(s) if s else words[w].copy()
        if s + b > 64:
            x |= words[w + 1] << np.uint64(64 - s)
        x &= mask
        out[j] = x
    return out.T.reshape(-1)[:n]


# --------------------------------------------------------------------------
# the "bitpack" codec stream (spec/codecs/bitpack.md)
# --------------------------------------------------------------------------

def encode_stream(symbols, bits: int | None = None) -> bytes:
    """Codec stream for config ``{"id": "bitpack", "bits": bits}``.

    With an explicit ``bits`` the stream is just ``pack(symbols, bits)``.
    With ``bits=None`` the encoder uses ``min_bits(max(symbols))`` (1 for an
    empty or all-zero input) and writes it first as a single byte.
    """
    v = as_symbols(symbols)
    if bits is not None:
        return pack(v, bits)
    b = min_bits(int(v.max()) if v.size else 0)
    if b > MAX_BITS:
        raise ConfigError(f"symbol values need {b} bits, more than {MAX_BITS}")
    return bytes([b]) + pack(v, b)


def decode_stream(buf, count: int, bits: int | None = None) -> np.ndarray:
    """Inverse of :func:`encode_stream`; ``count`` comes from the container."""
    if bits is not None:
        return unpack(buf, count, bits)
    raw = _as_buffer(buf)
    if raw.size < 1:
        raise TruncatedError("bitpack stream is missing its 1-byte width header")
    b = int(raw[0])
    if not 1 <= b <= MAX_BITS:
        raise FormatError(f"bitpack width header {b} is outside 1..{MAX_BITS}")
    return unpack(raw[1:], count, b)
