"""Vectorised MurmurHash3 (x86, 32-bit variant) over arrays of integer keys.

``murmur3_32(keys, seed)`` hashes every key's little-endian bytes -- 4 bytes
for a ``uint32`` key, 8 bytes for a ``uint64`` key -- and returns the same
numbers as the reference ``MurmurHash3_x86_32`` (and ``mmh3.hash(key_bytes,
seed, signed=False)``).

The arithmetic is done in place on ``uint32`` arrays (numpy wraps unsigned
array arithmetic modulo 2**32, which is exactly what MurmurHash3 wants), one
cache-sized chunk at a time so the temporaries stay in L1/L2.
"""

from __future__ import annotations

import sys

import numpy as np

from wcodec.errors import ConfigError

__all__ = ["murmur3_32", "CHUNK"]

#: Number of keys processed per chunk.  32 Ki uint32 temporaries = 128 KiB each;
#: a handful of them stays inside a 1 MiB L2 cache.
CHUNK = 32768

_C1 = np.uint32(0xCC9E2D51)
_C2 = np.uint32(0x1B873593)
_N = np.uint32(0xE6546B64)
_F1 = np.uint32(0x85EBCA6B)
_F2 = np.uint32(0xC2B2AE35)
_FIVE = np.uint32(5)
_U = {s: np.uint32(s) for s in (13, 15, 16, 17, 19)}

_LITTLE = sys.byteorder == "little"


def _check_seed(seed) -> np.uint32:
    try:
        s = int(seed)
    except (TypeError, ValueError):
        raise ConfigError(f"murmur3 seed must be an integer, got {seed!r}") from None
    if s != seed or not 0 <= s <= 0xFFFFFFFF:
        raise ConfigError(f"murmur3 seed must be in [0, 2**32), got {seed!r}")
    return np.uint32(s)


def _scramble(k: np.ndarray, src: np.ndarray, t: np.ndarray) -> None:
    """``k = rotl(src * c1, 15) * c2`` (``t`` is scratch)."""
    np.multiply(src, _C1, out=k)
    np.right_shift(k, _U[17], out=t)
    np.left_shift(k, _U[15], out=k)
    np.bitwise_or(k, t, out=k)
    np.multiply(k, _C2, out=k)


def _round_tail(h: np.ndarray, t: np.ndarray) -> None:
    """``h = rotl(h, 13) * 5 + n`` in place."""
    np.right_shift(h, _U[19], out=t)
    np.left_shift(h, _U[13], out=h)
    np.bitwise_or(h, t, out=h)
    np.multiply(h, _FIVE, out=h)
    np.add(h, _N, out=h)


def _fmix32(h: np.ndarray, t: np.ndarray) -> None:
    np.right_shift(h, _U[16], out=t)
    np.bitwise_xor(h, t, out=h)
    np.multiply(h, _F1, out=h)
    np.right_shift(h, _U[13], out=t)
    np.bitwise_xor(h, t, out=h)
    np.multiply(h, _F2, out=h)
    np.right_shift(h, _U[16], out=t)
    np.bitwise_xor(h, t, out=h)


def _hash_words(lo: np.ndarray, hi: np.ndarray | None, seed: np.uint32,
                out: np.ndarray, k: np.ndarray, t: np.ndarray) -> None:
    """Hash one chunk.  ``lo``/``hi`` are the low/high 32-bit words of each
    key (``hi`` is None for 4-byte keys); the result goes to ``out``."""
    # first block: h = rotl(seed ^ scramble(lo), 13) * 5 + n
    _scramble(k, lo, t)
    np.bitwise_xor(k, seed, out=out)
    _round_tail(out, t)
    if hi is None:
        length = np.uint32(4)
    else:
        length = np.uint32(8)
        if hi.any():
            _scramble(k, hi, t)
            np.bitwise_xor(out, k, out=out)
        # (a zero high word scrambles to 0 and leaves h unchanged)
        _round_tail(out, t)
    np.bitwise_xor(out, length, out=out)
    _fmix32(out, t)


def murmur3_32(keys, seed: int = 0) -> np.ndarray:
    """MurmurHash3_x86_32 of each key's little-endian bytes.

    ``keys`` must be an array of dtype uint32 (4 bytes hashed per key) or
    uint64 (8 bytes hashed per key), any shape and byte order.  Returns a
    ``uint32`` array of the same shape; ``result[i]`` equals
    ``mmh3.hash(int(keys[i]).to_bytes(width, "little"), seed, signed=False)``.
    """
    arr = np.asarray(keys)
    if arr.dtype.kind != "u" or arr.dtype.itemsize not in (4, 8):
        raise ConfigError(f"murmur3_32 keys must be uint32 or uint64, got {arr.dtype}")
    s = _check_seed(seed)
    shape = arr.shape
    wide = arr.dtype.itemsize == 8
    flat = np.ascontiguousarray(arr.reshape(-1), dtype=np.uint64 if wide else np.uint32)
    n = flat.size
    result = np.empty(n, dtype=np.uint32)
    if n == 0:
        return result.reshape(shape)
    c = min(CHUNK, n)
    k = np.empty(c, dtype=np.uint32)
    t = np.empty(c, dtype=np.uint32)
    if wide and _LITTLE:
        words = flat.view(np.uint32).reshape(-1, 2)
    for start in range(0, n, c):
        stop = min(start + c, n)
        m = stop - start
        kk, tt = k[:m], t[:m]
        if not wide:
            lo, hi = flat[start:stop], None
        elif _LITTLE:
            lo, hi = words[start:stop, 0], words[start:stop, 1]
        else:  # pragma: no cover - big-endian hosts
            part = flat[start:stop]
            lo = part.astype(np.uint32)
            hi = (part >> np.uint64(32)).astype(np.uint32)
        _hash_words(lo, hi, s, result[start:stop], kk, tt)
    return result.reshape(shape)
