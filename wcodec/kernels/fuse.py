"""3-wise binary fuse static function (a Bloomier filter) in pure numpy.

A static function maps a fixed set of distinct 64-bit keys to ``t``-bit
values without storing the keys: every key is hashed to three cells of a
table of ``t``-bit entries, and the table is solved so that, for every key,

    value(key) = mask(key) XOR T[i0] XOR T[i1] XOR T[i2]

Any other input returns an essentially uniform ``t``-bit value (the
``mask`` term makes that true whatever the stored values are), which is what
the false-positive formula :func:`false_positive_rate` relies on.

The table uses the segmented "binary fuse" layout of Graf & Lemire (2022):
``segment_count + 2`` segments of ``L = 2**segment_length_log2`` cells; a key
picks a start segment ``s`` and one cell in each of segments ``s``, ``s+1``,
``s+2``.  For large key counts the table has about 1.13 cells per key.

Hash of a key ``x`` (a uint64) under a 32-bit ``seed`` -- see
``spec/codecs/bloomier.md`` for the normative text::

    m  = murmur3_x86_32(x as 8 little-endian bytes, seed)       # uint32
    h  = fmix64(x XOR (m << 32))                                # uint64
    i0 = ((h >> 32) * (segment_count * L)) >> 32                # [0, S*L)
    i1 = (i0 + L)     XOR ( h        & (L - 1))
    i2 = (i0 + 2 * L) XOR ((h >> 18) & (L - 1))
    mask = m & (2**t - 1)

The 32-bit murmur hash alone cannot address a million keys (two keys with
the same 32-bit hash get the same three cells and make the system unsolvable;
by the birthday bound that happens once ~77k keys are stored), so the key
itself is folded back in: ``x XOR (m << 32)`` differs for any two distinct
keys below 2**32 and fmix64 is a bijection, hence ``h`` never collides for
such keys.

Public API: :func:`build`, :func:`query`, :func:`serialize`,
:func:`deserialize`, :func:`false_positive_rate`, :class:`FuseTable`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from wcodec.errors import ConfigError, FormatError, InputError, TruncatedError
from wcodec.kernels import murmur3 as _mm

__all__ = [
    "FuseTable",
    "build",
    "query",
    "serialize",
    "deserialize",
    "false_positive_rate",
    "hash_indices",
    "table_parameters",
    "MAGIC",
    "VERSION",
    "HEADER_SIZE",
    "MAX_VALUE_BITS",
    "MAX_SEGMENT_LENGTH_LOG2",
]

MAGIC = b"WBFU"
VERSION = 1
_HEADER = struct.Struct("<4sBBBBII")
HEADER_SIZE = _HEADER.size  # 16
MAX_VALUE_BITS = 32
MAX_SEGMENT_LENGTH_LOG2 = 18
#: Cell indices must fit in 32 bits.
MAX_ARRAY_LENGTH = 1 << 32
#: Keys per query chunk: a few 8-byte temporaries of this length fit in L2.
QUERY_CHUNK = 32768

_U64_32 = np.uint64(32)
_U64_33 = np.uint64(33)
_U64_18 = np.uint64(18)
_FM1 = np.uint64(0xFF51AFD7ED558CCD)
_FM2 = np.uint64(0xC4CEB9FE1A85EC53)


# --------------------------------------------------------------------------
# table object


@dataclass(frozen=True, eq=False)
class FuseTable:
    """A solved binary fuse table.

    ``cells`` has ``(segment_count + 2) * 2**segment_length_log2`` entries
    (0 when ``segment_count == 0``, the empty table, which answers 0 to every
    query) of dtype uint8/uint16/uint32 -- the smallest holding
    ``value_bits`` bits -- and every entry is below ``2**value_bits``.
    """

    seed: int
    value_bits: int
    segment_length_log2: int
    segment_count: int
    cells: np.ndarray

    @property
    def segment_length(self) -> int:
        return 1 << self.segment_length_log2

    @property
    def array_length(self) -> int:
        if self.segment_count == 0:
            return 0
        return (self.segment_count + 2) << self.segment_length_log2

    def __eq__(self, other):
        if not isinstance(other, FuseTable):
            return NotImplemented
        return (
            self.seed == other.seed
            and self.value_bits == other.value_bits
            and self.segment_length_log2 == other.segment_length_log2
            and self.segment_count == other.segment_count
            and self.cells.dtype == other.cells.dtype
            and np.array_equal(self.cells, other.cells)
        )

    __hash__ = None


def _cell_dtype(value_bits: int) -> np.dtype:
    if value_bits <= 8:
        return np.dtype(np.uint8)
    if value_bits <= 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def _check_value_bits(value_bits) -> int:
    if isinstance(value_bits, bool) or not isinstance(value_bits, (int, np.integer)):
        raise ConfigError(f"value_bits must be an int, got {value_bits!r}")
    vb = int(value_bits)
    if not 1 <= vb <= MAX_VALUE_BITS:
        raise ConfigError(f"value_bits must be in [1, {MAX_VALUE_BITS}], got {vb}")
    return vb


def _check_table(table: FuseTable) -> None:
    if not isinstance(table, FuseTable):
        raise InputError(f"expected a FuseTable, got {type(table).__name__}")
    vb = _check_value_bits(table.value_bits)
    if not 0 <= table.seed <= 0xFFFFFFFF:
        raise ConfigError(f"table seed out of range: {table.seed}")
    if not 0 <= table.segment_length_log2 <= MAX_SEGMENT_LENGTH_LOG2:
        raise ConfigError(f"bad segment_length_log2 {table.segment_length_log2}")
    if table.segment_count < 0 or (table.segment_count == 0 and table.segment_length_log2 != 0):
        raise ConfigError(f"bad segment_count {table.segment_count}")
    if table.array_length > MAX_ARRAY_LENGTH:
        raise ConfigError("table too large")
    cells = table.cells
    if not isinstance(cells, np.ndarray) or cells.ndim != 1 or cells.dtype != _cell_dtype(vb):
        raise ConfigError("table cells must be a 1-D array of the cell dtype")
    if cells.size != table.array_length:
        raise ConfigError(f"table has {cells.size} cells, expected {table.array_length}")


# --------------------------------------------------------------------------
# parameters


def table_parameters(n: int) -> tuple[int, int]:
    """``(segment_length_log2, segment_count)`` used by :func:`build` for
    ``n`` keys.  Follows Graf & Lemire's choice for 3-wise binary fuse
    filters (segment length ``2**floor(ln n / ln 3.33 + 2.25)`` capped at
    2**18, ``n * max(1.125, 0.875 + 0.25 ln(1e6) / ln n)`` cells); tiny
    inputs get the smallest tables that still work.  This is an encoder
    choice: decoders read the parameters from the table header.
    """
    if n < 0:
        raise ConfigError("negative key count")
    if n == 0:
        return 0, 0  # empty table: answers 0 everywhere
    if n == 1:
        return 0, 1  # three cells, one key: always solvable
    log2_len = int(math.floor(math.log(n) / math.log(3.33) + 2.25))
    log2_len = max(0, min(MAX_SEGMENT_LENGTH_LOG2, log2_len))
    seg_len = 1 << log2_len
    size_factor = max(1.125, 0.875 + 0.25 * math.log(1e6) / math.log(n))
    capacity = int(round(n * size_factor))
    segment_count = max(1, -(-capacity // seg_len) - 2)
    if (segment_count + 2) * seg_len > MAX_ARRAY_LENGTH:
        raise ConfigError(f"too many keys for one table: {n}")
    return log2_len, segment_count


COMPACT_MAX_KEYS = 1 << 18
COMPACT_TRIES = 24


def compact_parameters(n: int) -> list[tuple[int, int]]:
    """Smaller ``(segment_length_log2, segment_count)`` choices than
    :func:`table_parameters` for ``n`` keys, smallest table first, which
    usually still peel: Graf & Lemire's sizing keeps construction failures
    rare, and for the tables of one weight matrix (up to ~10^5 keys) it is
    10-20% larger than needed.  Starts just under the measured peeling
    threshold (about ``0.945 + 2.345 / ln n`` cells per key with segments a
    quarter of the default length) and steps up 1.5% at a time; empty when
    ``n`` is outside ``[64, COMPACT_MAX_KEYS]``."""
    if not 64 <= n <= COMPACT_MAX_KEYS:
        return []
    base_log2, base_count = table_parameters(n)
    limit = (base_count + 2) << base_log2
    out = set()
    factor = 0.925 + 2.345 / math.log(n)
    while n * factor < limit:
        for log2_len in (base_log2 - 2, base_log2 - 1):
            if log2_len < 0:
                continue
            seg_len = 1 << log2_len
            count = max(1, -(-int(math.ceil(n * factor)) // seg_len) - 2)
            if (count + 2) * seg_len < limit:
                out.add((log2_len, count))
        factor += 0.015
    return sorted(out, key=lambda p: ((p[1] + 2) << p[0], -p[0]))


def false_positive_rate(value_bits: int, n_values: int) -> float:
    """Probability that a position which is not a key decodes as nonzero.

    Values ``1 .. n_values - 1`` are the nonzero clusters; every other
    ``value_bits``-bit value (0 and ``n_values .. 2**value_bits - 1``) decodes
    as a zero weight.  A non-key yields a uniform ``value_bits``-bit value,
    so the rate is ``(n_values - 1) / 2**value_bits``.
    """
    vb = _check_value_bits(value_bits)
    if isinstance(n_values, bool) or not isinstance(n_values, (int, np.integer)):
        raise ConfigError(f"n_values must be an int, got {n_values!r}")
    k = int(n_values)
    if not 1 <= k <= (1 << vb):
        raise ConfigError(f"n_values must be in [1, 2**{vb}], got {k}")
    return (k - 1) / float(1 << vb)


# --------------------------------------------------------------------------
# hashing


def _fmix64_inplace(z: np.ndarray, t: np.ndarray) -> None:
    np.right_shift(z, _U64_33, out=t)
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, _FM1, out=z)
    np.right_shift(z, _U64_33, out=t)
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, _FM2, out=z)
    np.right_shift(z, _U64_33, out=t)
    np.bitwise_xor(z, t, out=z)


class _Hasher:
    """Scratch buffers and the hash pipeline for one chunk length."""

    def __init__(self, chunk: int, seed: int, log2_len: int, segment_count: int):
        self.seed = np.uint32(seed)
        self.seg_len = np.uint64(1 << log2_len)
        self.two_len = np.uint64(2 << log2_len)
        self.mask = np.uint64((1 << log2_len) - 1)
        self.scl = np.uint64(segment_count << log2_len)
        self.m = np.empty(chunk, np.uint32)
        self.k = np.empty(chunk, np.uint32)
        self.t = np.empty(chunk, np.uint32)
        self.z = np.empty(chunk, np.uint64)
        self.w = np.empty(chunk, np.uint64)
        self.i0 = np.empty(chunk, np.uint64)
        self.i1 = np.empty(chunk, np.uint64)
        self.i2 = np.empty(chunk, np.uint64)

    def run(self, keys: np.ndarray, words: np.ndarray | None):
        """Hash ``keys`` (uint64, len <= chunk).  ``words`` is the
        ``(len, 2)`` uint32 view of ``keys`` on little-endian hosts.
        Returns views ``(m, i0, j1, j2)`` (uint64) where the cell indices
        are ``i0``, ``i1 = j1 + L`` and ``i2 = j2 + 2L``."""
        c = keys.shape[0]
        m, k, t = self.m[:c], self.k[:c], self.t[:c]
        z, w = self.z[:c], self.w[:c]
        i0, i1, i2 = self.i0[:c], self.i1[:c], self.i2[:c]
        if words is not None:
            lo, hi = words[:, 0], words[:, 1]
        else:  # pragma: no cover - big-endian hosts
            lo = keys.astype(np.uint32)
            hi = (keys >> _U64_32).astype(np.uint32)
        _mm._hash_words(lo, hi, self.seed, m, k, t)
        # h = fmix64(x ^ (m << 32))
        np.copyto(z, m)
        np.left_shift(z, _U64_32, out=z)
        np.bitwise_xor(z, keys, out=z)
        _fmix64_inplace(z, w)
        # i0 = ((h >> 32) * S*L) >> 32
        np.right_shift(z, _U64_32, out=i0)
        np.multiply(i0, self.scl, out=i0)
        np.right_shift(i0, _U64_32, out=i0)
        # i1 - L = i0 ^ (h & (L-1)) and i2 - 2L = i0 ^ ((h >> 18) & (L-1)):
        # adding a multiple of L does not touch the low g bits, so
        # (i0 + L) ^ x == (i0 ^ x) + L for x < L.  The query gathers from
        # cells[L:] and cells[2L:] instead of adding L and 2L.
        np.bitwise_and(z, self.mask, out=w)
        np.bitwise_xor(i0, w, out=i1)
        np.right_shift(z, _U64_18, out=w)
        np.bitwise_and(w, self.mask, out=w)
        np.bitwise_xor(i0, w, out=i2)
        return m, i0, i1, i2


def _as_keys(keys, what: str) -> np.ndarray:
    arr = np.asarray(keys)
    if arr.dtype.kind == "u" or (arr.size == 0 and arr.dtype.kind in "uif"):
        return np.ascontiguousarray(arr.reshape(-1), dtype=np.uint64)
    if arr.dtype.kind == "i":
        flat = arr.reshape(-1)
        if flat.size and flat.min() < 0:
            raise ConfigError(f"{what} must be non-negative")
        return np.ascontiguousarray(flat, dtype=np.uint64)
    raise ConfigError(f"{what} must be an unsigned integer array, got {arr.dtype}")


def hash_indices(keys, table_or_params) -> tuple[np.ndarray, np.ndarray]:
    """Reference helper (tests, spec vectors): the three cell indices
    (``(3, n)`` int64) and the mask (uint32, before ``& (2**t - 1)``) of each
    key.  ``table_or_params`` is a FuseTable or ``(seed, log2_len,
    segment_count)``."""
    if isinstance(table_or_params, FuseTable):
        p = (table_or_params.seed, table_or_params.segment_length_log2,
             table_or_params.segment_count)
    else:
        p = tuple(int(v) for v in table_or_params)
    seed, log2_len, segment_count = p
    if segment_count < 1:
        raise ConfigError("hash_indices needs segment_count >= 1")
    keys = _as_keys(keys, "keys")
    n = keys.size
    idx = np.empty((3, n), np.int64)
    masks = np.empty(n, np.uint32)
    if n == 0:
        return idx, masks
    chunk = min(QUERY_CHUNK, n)
    hasher = _Hasher(chunk, seed, log2_len, segment_count)
    words = keys.view(np.uint32).reshape(-1, 2) if _mm._LITTLE else None
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        m, i0, i1, i2 = hasher.run(keys[s:e], None if words is None else words[s:e])
        masks[s:e] = m
        idx[0, s:e] = i0
        np.add(i1, hasher.seg_len, out=idx[1, s:e], casting="unsafe")
        np.add(i2, hasher.two_len, out=idx[2, s:e], casting="unsafe")
    return idx, masks


# --------------------------------------------------------------------------
# construction


def _peel(idx: np.ndarray, array_length: int):
    """Peel the 3-uniform hypergraph whose edges are the columns of ``idx``.

    Returns ``(order, where, bounds)`` -- keys in peel order, the cell each
    was peeled from, and the round boundaries (``order[bounds[r]:bounds[r+1]]``
    are the keys of round r) -- or None if a 2-core remains.

    Every round takes *all* cells of degree 1 at once.  Each such cell holds
    exactly one remaining key (found as the sum of the key ids still in the
    cell).  A key can be alone in two or three cells at the same time, so the
    keys are deduplicated (keeping its first such cell) before removal.
    Removing a round's keys may make other cells degree 1; those are among
    the cells the removed keys touched, and form the next round.
    """
    n = idx.shape[1]
    flat = idx.reshape(-1)  # row-major: all i0, then all i1, then all i2
    deg = np.bincount(flat, minlength=array_length)
    # Sum of the ids of the keys in each cell (exact int64 arithmetic).
    ksum = np.zeros(array_length, dtype=np.int64)
    np.add.at(ksum, flat, np.tile(np.arange(n, dtype=np.int64), 3))
    ones = np.ones(3 * n, dtype=deg.dtype)
    q = np.flatnonzero(deg == 1)
    orders, wheres, sizes = [], [], []
    done = 0
    while q.size:
        ks = ksum[q]
        keys_r, first = np.unique(ks, return_index=True)
        orders.append(keys_r)
        wheres.append(q[first])
        r = keys_r.size
        sizes.append(r)
        done += r
        touched = idx[:, keys_r].reshape(-1)
        np.subtract.at(deg, touched, ones[: 3 * r])
        np.subtract.at(ksum, touched, np.tile(keys_r, 3))
        q = touched[deg[touched] == 1]
    if done != n:
        return None
    bounds = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    order = np.concatenate(orders) if orders else np.empty(0, np.int64)
    where = np.concatenate(wheres) if wheres else np.empty(0, np.int64)
    return order, where, bounds


def _assign(idx, targets, order, where, bounds, cells) -> None:
    """Back-substitution, one peel round at a time in reverse order.

    Key k of round r was peeled from cell p(k), which at the start of round r
    held k and no other remaining key.  Hence:

    * p(k) is not a cell of any key peeled in round r or later other than k
      (all of those were still present when p(k) had degree 1), and
    * in particular p(j) for j peeled earlier (assigned *after* k) is never
      one of k's cells, so once k is solved no later write changes any of
      k's three cells.

    Within one round the keys are therefore independent: each writes only its
    own p(k), and no p(k) of the round is read by another key of the round.
    So a whole round is solved with one vectorised gather / scatter (all
    gathers happen before the scatter, and the scattered indices are
    distinct).
    """
    i0 = idx[0, order]
    i1 = idx[1, order]
    i2 = idx[2, order]
    tg = targets[order]
    for r in range(len(bounds) - 2, -1, -1):
        a, b = bounds[r], bounds[r + 1]
        p = where[a:b]
        x = tg[a:b] ^ cells[i0[a:b]]
        x ^= cells[i1[a:b]]
        x ^= cells[i2[a:b]]
        # cells[p] currently takes part in the XOR above; flipping it by x
        # makes the three-cell XOR equal the target.
        cells[p] ^= x


def build(keys, values, value_bits: int, *, seed: int = 0, max_tries: int = 64,
          compact: bool = True) -> FuseTable:
    """Build a table mapping each ``keys[i]`` (distinct uint64) to
    ``values[i]`` (``< 2**value_bits``).

    With ``compact``, first tries the smaller tables of
    :func:`compact_parameters` (two seeds each, at most ``COMPACT_TRIES``
    peels in all).  Then tries ``seed``, ``seed + 1``, ... (mod 2**32) with
    :func:`table_parameters` until the hypergraph peels, at most
    ``max_tries`` times; raises :class:`ConfigError` if it never does (in
    practice only with duplicate keys).
    """
    vb = _check_value_bits(value_bits)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= 0xFFFFFFFF:
        raise ConfigError(f"seed must be an int in [0, 2**32), got {seed!r}")
    if isinstance(max_tries, bool) or not isinstance(max_tries, (int, np.integer)) or max_tries < 1:
        raise ConfigError(f"max_tries must be a positive int, got {max_tries!r}")
    keys = _as_keys(keys, "keys")
    vals = np.asarray(values)
    if vals.dtype.kind not in "ui" and not (vals.size == 0 and vals.dtype.kind == "f"):
        raise ConfigError(f"values must be an unsigned integer array, got {vals.dtype}")
    vals = vals.reshape(-1)
    if vals.size != keys.size:
        raise ConfigError(f"{keys.size} keys but {vals.size} values")
    n = keys.size
    dtype = _cell_dtype(vb)
    if n:
        if vals.dtype.kind == "i" and vals.min() < 0:
            raise ConfigError("values must be non-negative")
        if int(vals.max()) >= (1 << vb):
            raise ConfigError(f"a value does not fit in {vb} bits")
    vals = vals.astype(dtype)
    if n == 0:
        return FuseTable(int(seed), vb, 0, 0, np.zeros(0, dtype))
    vmask = dtype.type((1 << vb) - 1)

    def attempt(s: int, log2_len: int, seg_count: int) -> FuseTable | None:
        array_length = (seg_count + 2) << log2_len
        idx, masks = hash_indices(keys, (s, log2_len, seg_count))
        peeled = _peel(idx, array_length)
        if peeled is None:
            return None
        targets = vals ^ (masks.astype(dtype) & vmask)
        cells = np.zeros(array_length, dtype)
        _assign(idx, targets, *peeled, cells)
        return FuseTable(s, vb, log2_len, seg_count, cells)

    def check_distinct() -> None:  # only after a failure: sorting costs as much as a peel
        if tries == 1 and np.unique(keys).size != n:
            raise ConfigError("keys are not distinct")

    tries = 0
    for log2_len, seg_count in (compact_parameters(n) if compact else []):
        for s in (int(seed), (int(seed) + 1) & 0xFFFFFFFF):
            table = attempt(s, log2_len, seg_count)
            if table is not None:
                return table
            tries += 1
            check_distinct()
        if tries >= COMPACT_TRIES:
            break
    log2_len, seg_count = table_parameters(n)
    s = int(seed)
    for _ in range(int(max_tries)):
        table = attempt(s, log2_len, seg_count)
        if table is not None:
            return table
        tries += 1
        check_distinct()
        s = (s + 1) & 0xFFFFFFFF
    raise ConfigError(f"could not build a table for {n} keys in {max_tries} tries")


# --------------------------------------------------------------------------
# lookup


def query(table: FuseTable, positions) -> np.ndarray:
    """Value stored for every position (uint64 array, any shape).

    Keys get their value back exactly; other positions get an essentially
    uniform ``value_bits``-bit value.  Returns the table's cell dtype, same
    shape as ``positions``.
    """
    _check_table(table)
    pos = np.asarray(positions)
    shape = pos.shape
    pos = _as_keys(pos, "positions")
    n = pos.size
    cells = table.cells
    out = np.zeros(n, dtype=cells.dtype)
    if n == 0 or table.segment_count == 0:
        return out.reshape(shape)
    chunk = min(QUERY_CHUNK, n)
    hasher = _Hasher(chunk, table.seed, table.segment_length_log2, table.segment_count)
    vb = table.value_bits
    vmask = cells.dtype.type((1 << vb) - 1) if vb != 8 * cells.dtype.itemsize else None
    words = pos.view(np.uint32).reshape(-1, 2) if _mm._LITTLE else None
    g = np.empty(chunk, dtype=cells.dtype)
    seg_len = table.segment_length
    cells1, cells2 = cells[seg_len:], cells[2 * seg_len:]
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        m, i0, i1, i2 = hasher.run(pos[s:e], None if words is None else words[s:e])
        o = out[s:e]
        gg = g[: e - s]
        # indices are < 2**32, so viewing them as int64 is exact; i1/i2 are
        # relative to cells[L:] / cells[2L:] (see _Hasher.run)
        np.take(cells, i0.view(np.int64), out=o, mode="clip")
        np.take(cells1, i1.view(np.int64), out=gg, mode="clip")
        np.bitwise_xor(o, gg, out=o)
        np.take(cells2, i2.view(np.int64), out=gg, mode="clip")
        np.bitwise_xor(o, gg, out=o)
        np.bitwise_xor(o, m, out=o, casting="unsafe")
        if vmask is not None:
            np.bitwise_and(o, vmask, out=o)
    return out.reshape(shape)


# --------------------------------------------------------------------------
# serialisation


def _pack_cells(cells: np.ndarray, vb: int) -> bytes:
    """Cell i occupies bits [i*vb, (i+1)*vb) of the stream, LSB-first: stream
    bit j is bit (j % 8) of byte j // 8.  The last byte is zero-padded."""
    if vb in (8, 16, 32):
        return cells.astype(f"<u{vb // 8}", copy=False).tobytes()
    width = cells.dtype.itemsize
    le = cells.astype(f"<u{width}", copy=False)
    parts = []
    step = 1 << 16  # multiple of 8 cells, so every chunk ends on a byte
    for s in range(0, cells.size, step):
        c = le[s:s + step]
        bits = np.unpackbits(c.view(np.uint8).reshape(-1, width), axis=1, bitorder="little")
        parts.append(np.packbits(bits[:, :vb].reshape(-1), bitorder="little").tobytes())
    return b"".join(parts)


def _unpack_cells(payload: memoryview, count: int, vb: int) -> np.ndarray:
    dtype = _cell_dtype(vb)
    if vb in (8, 16, 32):
        return np.frombuffer(payload, dtype=f"<u{vb // 8}", count=count).astype(dtype)
    raw = np.frombuffer(payload, dtype=np.uint8)
    total_bits = count * vb
    tail = total_bits % 8
    if tail and raw[-1] >> tail:
        raise FormatError("nonzero padding bits after the last cell")
    width = dtype.itemsize
    out = np.empty(count, dtype=dtype)
    step = 1 << 16
    bytes_per_step = step * vb // 8
    for s in range(0, count, step):
        c = min(step, count - s)
        b0 = s * vb // 8
        bits = np.unpackbits(raw[b0:b0 + bytes_per_step], bitorder="little",
                             count=c * vb).reshape(c, vb)
        full = np.zeros((c, 8 * width), dtype=np.uint8)
        full[:, :vb] = bits
        out[s:s + c] = np.packbits(full, axis=1, bitorder="little").view(f"<u{width}").reshape(-1)
    return out


def serialize(table: FuseTable) -> bytes:
    """Header (16 bytes, little-endian) followed by the packed cells."""
    _check_table(table)
    vb = table.value_bits
    if table.cells.size and int(table.cells.max()) >> vb:
        raise ConfigError(f"a cell does not fit in {vb} bits")
    head = _HEADER.pack(MAGIC, VERSION, vb, table.segment_length_log2, 0,
                        table.seed, table.segment_count)
    return head + _pack_cells(table.cells, vb)


def deserialize(buf) -> FuseTable:
    """Parse :func:`serialize` output; every field is checked before any
    allocation, and any malformed input raises :class:`FormatError`
    (:class:`TruncatedError` when bytes are missing)."""
    try:
        mv = memoryview(buf).cast("B")
    except TypeError:
        raise InputError(f"expected a bytes-like object, got {type(buf).__name__}") from None
    if len(mv) < HEADER_SIZE:
        raise TruncatedError(f"fuse table header needs {HEADER_SIZE} bytes, got {len(mv)}")
    magic, version, vb, log2_len, reserved, seed, seg_count = _HEADER.unpack_from(mv, 0)
    if magic != MAGIC:
        raise FormatError("not a fuse table (bad magic)")
    if version != VERSION:
        raise FormatError(f"unsupported fuse table version {version}")
    if not 1 <= vb <= MAX_VALUE_BITS:
        raise FormatError(f"bad value_bits {vb}")
    if log2_len > MAX_SEGMENT_LENGTH_LOG2:
        raise FormatError(f"bad segment length 2**{log2_len}")
    if reserved != 0:
        raise FormatError("reserved header byte is not zero")
    if seg_count == 0:
        if log2_len != 0:
            raise FormatError("empty table with a nonzero segment length")
        count = 0
    else:
        count = (seg_count + 2) << log2_len
        if count > MAX_ARRAY_LENGTH:
            raise FormatError("fuse table too large")
    need = (count * vb + 7) // 8
    have = len(mv) - HEADER_SIZE
    if have < need:
        raise TruncatedError(f"fuse table needs {need} cell bytes, got {have}")
    if have > need:
        raise FormatError(f"{have - need} trailing bytes after the fuse table")
    cells = _unpack_cells(mv[HEADER_SIZE:], count, vb)
    return FuseTable(seed, vb, log2_len, seg_count, cells)
