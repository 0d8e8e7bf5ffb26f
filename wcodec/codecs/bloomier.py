"""``bloomier``: Bloomier-filter coding of cluster indices (Weightless, Reagen
et al. 2018), with a lossy mode and an exact mode (array->bytes).

Input: a uint8 array of cluster indices as ``cluster`` (``keep_zero``) makes
them: 0 = zero weight, ``1 .. K-1`` = clusters. The nonzero entries form a
partial function *flat position -> index*; a binary fuse static function
(``wcodec/kernels/fuse.py``) stores it in about ``1.13 * t`` bits per nonzero
without storing the positions. Decoding queries every position; a position
that held a zero answers a uniform ``t``-bit value, which is a *false
positive* when it lands in ``1 .. K-1`` (probability ``(K-1) / 2**t``).

* ``mode="lossy"``: false positives stay (Weightless retrains around them);
  ``side.stats`` records ``false_positives``, ``false_positive_rate``
  (measured, per zero position) and ``fp_fraction`` (per weight).
* ``mode="exact"``: the sorted false-positive positions are stored too, as
  Rice-split gaps (Huffman-coded quotients + packed low bits), and cleared on
  decode, so decoding is bit-exact. ``t`` then defaults to the value that
  minimises table + exception list.

Stream: a 40-byte header (mode, compression, K, key count, exception count,
table length, body length), then the body -- the serialized fuse table and
the exception list -- raw or as one zstd frame. Bytes:
``spec/codecs/bloomier.md``.
"""
from __future__ import annotations

import math
import struct

import numpy as np

from ..errors import ConfigError, FormatError, TruncatedError
from ..kernels import bitpack, fuse
from . import intcoding
from . import zstd as zstd_codec
from .base import ARRAY_TO_BYTES, Codec, Param, as_bytes, register

VERSION = 1
_HEAD = struct.Struct("<BBBBHHQQQQ")
HEADER_SIZE = _HEAD.size  # 40
_EXC_HEAD = struct.Struct("<BQ")  # rice bits, byte length of the quotient stream
MODES = ("lossy", "exact")
COMPRESSIONS = ("none", "zstd")
DEFAULT_MAX_FP_RATE = 1 / 64
MAX_VALUE_BITS = fuse.MAX_VALUE_BITS  # 32
MAX_K = 256  # uint8 indices: values 0..255
#: decoder limit: a table may have at most this many cells per key (the
#: reference parameters need at most 8, reached at n = 3 keys)
MAX_CELLS_PER_KEY = 8
#: decoder limit on the exception part: EXC_SLACK + EXC_BYTES_PER * count bytes
EXC_SLACK = 1 << 16
EXC_BYTES_PER = 16
MAX_RICE_BITS = 32
ZSTD_LEVEL = 9
#: positions queried per decode step
DECODE_CHUNK = 1 << 18
_TABLE_HEAD = fuse.HEADER_SIZE  # 16
_TABLE = struct.Struct("<4sBBBBII")  # the kernel's table header


def _t_min(k: int) -> int:
    """Fewest value bits that hold every index ``0 .. k-1`` (at least 1)."""
    return max(1, (k - 1).bit_length())


def lossy_value_bits(k: int, max_fp_rate: float) -> int:
    """Smallest ``t >= ceil(log2 k)`` with ``(k-1) / 2**t <= max_fp_rate`` (32 at most)."""
    t = _t_min(k)
    while t < MAX_VALUE_BITS and (k - 1) > max_fp_rate * (1 << t):
        t += 1
    return t


def _h2(p: float) -> float:
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def _model_value_bits(n: int, zeros: int, size: int, k: int) -> int:
    """The ``t`` minimising a size model of the exact stream: ``N * t`` table
    bits + ``E(t) * max(1, H(p)/p)`` exception bits, with ``E(t) = zeros *
    (k-1) / 2**t`` expected false positives and ``p = E(t) / size``."""
    t0 = _t_min(k)
    if n == 0 or k <= 1 or zeros == 0:
        return t0
    g, s = fuse.table_parameters(n)
    cells = (s + 2) << g
    best_t, best = t0, math.inf
    for t in range(t0, MAX_VALUE_BITS + 1):
        m = zeros * (k - 1) / float(1 << t)
        p = m / size
        per = max(1.0, _h2(p) / p) if 0 < p < 1 else 1.0
        cost = cells * t + m * per
        if cost < best:
            best_t, best = t, cost
    return best_t


def _mask_table(table: fuse.FuseTable, t: int) -> fuse.FuseTable:
    """The table of the same keys at ``t <= table.value_bits`` bits: the
    decoding rule is bitwise, so it is the low ``t`` bits of every cell."""
    if t == table.value_bits:
        return table
    dtype = np.uint8 if t <= 8 else np.uint16 if t <= 16 else np.uint32
    cells = (table.cells & np.uint32((1 << t) - 1)).astype(dtype)
    return fuse.FuseTable(table.seed, t, table.segment_length_log2, table.segment_count, cells)


def _scan(table: fuse.FuseTable, x: np.ndarray, k: int, t_lo: int):
    """Zero positions of ``x`` whose query's low ``t_lo`` bits fall in
    ``1 .. k-1`` (false positives at ``t_lo`` bits), and the query bits above
    ``t_lo`` there (a position stays a false positive at ``t > t_lo`` bits
    iff its bits ``t_lo .. t-1`` are zero)."""
    size = x.size
    positions, high = [], []
    if size == 0 or table.segment_count == 0 or k <= 1:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    low_mask = (1 << t_lo) - 1
    for s in range(0, size, DECODE_CHUNK):
        e = min(size, s + DECODE_CHUNK)
        v = fuse.query(table, np.arange(s, e, dtype=np.uint64))
        low = v & v.dtype.type(low_mask)
        hit = low != 0
        if k <= low_mask:
            hit &= low < v.dtype.type(k)
        hit &= x[s:e] == 0
        idx = np.flatnonzero(hit)
        positions.append(idx.astype(np.uint64) + np.uint64(s))
        high.append(v[idx].astype(np.uint64) >> np.uint64(t_lo))
    return np.concatenate(positions), np.concatenate(high)


# --------------------------------------------------------------------------
# exception list: sorted positions as Rice-split gaps


def _rice_cost(gaps: np.ndarray, r: int) -> float:
    q = gaps >> np.uint64(r)
    qmax = int(q.max())
    if qmax < (1 << 20):
        counts = np.bincount(q.astype(np.int64))
    else:
        counts = np.unique(q, return_counts=True)[1]
    counts = counts[counts > 0]
    p = counts / gaps.size
    bits = max(1.0, float(-(p * np.log2(p)).sum())) * gaps.size  # Huffman: >= 1 bit/symbol
    escaped = int(np.count_nonzero(q >= intcoding.ESCAPE))
    return bits + r * gaps.size + 40 * escaped + 6 * counts.size


def encode_positions(positions: np.ndarray) -> bytes:
    """Sorted distinct positions -> ``u8 r | u64 L | quotients (L bytes) |
    low bits``: gap ``g_i = p_i - p_{i-1} - 1`` (``p_{-1} = -1``) is split
    into ``g >> r`` (``intcoding`` symbol stream) and its low ``r`` bits
    (bit-packed, ``ceil(m*r/8)`` bytes)."""
    pos = np.asarray(positions, dtype=np.uint64)
    gaps = np.diff(pos, prepend=np.uint64(0))
    if gaps.size:
        gaps[1:] -= np.uint64(1)
        gaps[0] = pos[0]
    if gaps.size:
        mean = float(gaps.mean())
        r0 = max(0, int(math.floor(math.log2(mean * math.log(2) + 1))))
        cands = range(max(0, r0 - 2), min(MAX_RICE_BITS, r0 + 2) + 1)
        r = min(cands, key=lambda c: _rice_cost(gaps, c))
    else:
        r = 0
    q = gaps >> np.uint64(r)
    qpart = intcoding.encode_symbols(q)
    low = bitpack.pack(gaps & np.uint64((1 << r) - 1), r) if r else b""
    return _EXC_HEAD.pack(r, len(qpart)) + qpart + low


def decode_positions(buf, count: int, size: int) -> np.ndarray:
    """Invert :func:`encode_positions`; FormatError unless the result is
    ``count`` strictly increasing positions below ``size``."""
    buf = as_bytes(buf)
    if len(buf) < _EXC_HEAD.size:
        raise TruncatedError("bloomier: exception list shorter than its header")
    r, qlen = _EXC_HEAD.unpack_from(buf, 0)
    if r > MAX_RICE_BITS:
        raise FormatError(f"bloomier: exception list uses {r} low bits, at most {MAX_RICE_BITS}")
    if qlen > len(buf) - _EXC_HEAD.size:
        raise TruncatedError("bloomier: exception quotients run past the end of the stream")
    start = _EXC_HEAD.size + qlen
    need = (count * r + 7) // 8
    if len(buf) - start != need:
        raise FormatError(f"bloomier: exception low bits take {len(buf) - start} bytes, "
                          f"expected {need}")
    q = intcoding.decode_symbols(buf[_EXC_HEAD.size:start], count)
    if q.size != count:
        raise FormatError("bloomier: wrong number of exception quotients")
    q = q.astype(np.uint64)
    if count and int(q.max()) > (size >> r):
        raise FormatError("bloomier: an exception gap exceeds the tensor size")
    gaps = q << np.uint64(r)
    if r:
        gaps |= bitpack.unpack(buf[start:], count, r).astype(np.uint64)
    if count and int(gaps.max()) >= size:
        raise FormatError("bloomier: an exception gap exceeds the tensor size")
    gaps += np.uint64(1)
    pos = np.cumsum(gaps, dtype=np.uint64)  # < count * size: no wrap below 2**32 values
    pos -= np.uint64(1)
    if count and int(pos[-1]) >= size:
        raise FormatError("bloomier: an exception position lies past the end of the tensor")
    if size > 1 << 32 and count > 1 and not np.all(pos[1:] > pos[:-1]):
        raise FormatError("bloomier: exception positions overflow")
    return pos


# --------------------------------------------------------------------------
# the table


def read_table(buf, n_keys: int) -> fuse.FuseTable:
    """Parse a serialized fuse table (the kernel's format, checked as
    ``fuse.deserialize`` does) holding ``n_keys`` keys: its cell count must be
    0 iff ``n_keys`` is 0 and at most ``MAX_CELLS_PER_KEY * n_keys``, checked
    before the cells are allocated. Cells are unpacked by the ``bitpack``
    kernel (same LSB-first layout), which is much faster than the generic
    unpacking of ``fuse.deserialize`` for widths other than 8/16/32."""
    buf = as_bytes(buf)
    if len(buf) < _TABLE_HEAD:
        raise TruncatedError(f"bloomier: fuse table header needs {_TABLE_HEAD} bytes")
    magic, version, t, g, reserved, seed, s_count = _TABLE.unpack_from(buf, 0)
    if magic != fuse.MAGIC or version != fuse.VERSION or reserved:
        raise FormatError("bloomier: bad fuse table magic, version or reserved byte")
    if not 1 <= t <= MAX_VALUE_BITS or g > fuse.MAX_SEGMENT_LENGTH_LOG2 or (s_count == 0 and g):
        raise FormatError(f"bloomier: bad fuse table parameters t={t} g={g} S={s_count}")
    cells = (s_count + 2) << g if s_count else 0
    if (cells == 0) != (n_keys == 0) or cells > MAX_CELLS_PER_KEY * n_keys:
        raise FormatError(f"bloomier: a table of {cells} cells for {n_keys} keys")
    values = bitpack.unpack(buf[_TABLE_HEAD:], cells, t)  # exact length, zero padding
    return fuse.FuseTable(seed, t, g, s_count, values)


# --------------------------------------------------------------------------
# the codec


def _query_indices(table: fuse.FuseTable, k: int, size: int) -> np.ndarray:
    """Query positions ``0 .. size-1``; answers outside ``1 .. k-1`` become 0."""
    out = np.zeros(size, np.uint8)
    if size == 0 or table.segment_count == 0:
        return out
    t = table.value_bits
    chunk = min(DECODE_CHUNK, size)
    base = np.arange(chunk, dtype=np.uint64)
    pos = np.empty(chunk, np.uint64)
    full = k >= (1 << t)  # every t-bit answer is a valid index
    for s in range(0, size, chunk):
        e = min(size, s + chunk)
        p = pos[: e - s]
        np.add(base[: e - s], np.uint64(s), out=p)
        v = fuse.query(table, p)
        if not full:
            np.multiply(v, v < v.dtype.type(k), out=v)
        out[s:e] = v  # (a cast when t > 8: every value left is < k <= 256)
    return out


@register
class Bloomier(Codec):
    codec_id = "bloomier"
    kind = ARRAY_TO_BYTES
    lossy = True  # per instance: False with mode="exact"
    params = {
        "mode": Param((str,), "lossy", lambda v: v in MODES, "lossy|exact"),
        "value_bits": Param((int,), None, lambda v: 1 <= v <= MAX_VALUE_BITS,
                            f"1..{MAX_VALUE_BITS}; omitted: chosen per tensor"),
        "max_fp_rate": Param((float, int), DEFAULT_MAX_FP_RATE, lambda v: 0 < v <= 1,
                             "0 < rate <= 1: lossy mode picks the smallest t with "
                             "(K-1)/2^t <= rate"),
        "seed": Param((int,), 0, lambda v: 0 <= v < 2**32),
        "compress": Param((str,), "auto", lambda v: v in ("auto",) + COMPRESSIONS,
                          "auto|none|zstd"),
    }

    def __init__(self, **config):
        super().__init__(**config)
        self.lossy = self.mode == "lossy"

    def get_config(self):
        config = super().get_config()
        if self.mode == "exact" or self.value_bits is not None:
            config.pop("max_fp_rate", None)  # not used
        return config

    def resolve(self, spec):
        if spec.dtype != "uint8":
            raise ConfigError(f"bloomier codes uint8 cluster indices (put a cluster codec "
                              f"before it), not {spec.dtype}")
        return spec

    # -- encoding --------------------------------------------------------
    def encode(self, value, spec, side):
        x = np.ascontiguousarray(value, dtype=np.uint8).reshape(-1)
        size = x.size
        keys = np.flatnonzero(x).astype(np.uint64)
        n = keys.size
        zeros = size - n
        k = int(x.max()) + 1 if size else 1
        t0 = _t_min(k)
        if self.value_bits is not None:
            if self.value_bits < t0:
                raise ConfigError(f"bloomier: value_bits={self.value_bits} cannot hold "
                                  f"index {k - 1}")
            window = [self.value_bits]
        elif self.mode == "lossy":
            window = [lossy_value_bits(k, float(self.max_fp_rate))]
        else:
            best = _model_value_bits(n, zeros, size, k)
            window = list(range(max(t0, best - 2), min(MAX_VALUE_BITS, best + 2) + 1))
        t_hi, t_lo = max(window), min(window)
        big = fuse.build(keys, x[keys.astype(np.intp)], t_hi, seed=self.seed)
        fp_pos, fp_high = _scan(big, x, k, t_lo)

        best = None
        for t in window:
            keep = (fp_high & np.uint64((1 << (t - t_lo)) - 1)) == 0
            fps = fp_pos[keep]
            table_bytes = fuse.serialize(_mask_table(big, t))
            exc_bytes = encode_positions(fps) if (self.mode == "exact" and fps.size) else b""
            if best is None or len(table_bytes) + len(exc_bytes) < best[0]:
                best = (len(table_bytes) + len(exc_bytes), t, fps.size, table_bytes, exc_bytes)
        _, t, n_fp, table_bytes, exc_bytes = best
        n_exc = n_fp if self.mode == "exact" else 0
        body = table_bytes + exc_bytes
        compression = 0
        if self.compress != "none":
            packed = zstd_codec.compress(body, ZSTD_LEVEL)
            if self.compress == "zstd" or len(packed) < len(body):
                compression, payload = 1, packed
        if compression == 0:
            payload = body
        head = _HEAD.pack(VERSION, MODES.index(self.mode), compression, 0, k, 0, n, n_exc,
                          len(table_bytes), len(body))

        stats = side.stats
        stats["sparsity"] = zeros / size if size else 0.0
        stats["value_bits"] = float(t)
        if self.mode == "lossy":
            stats["false_positives"] = float(n_fp)
            stats["false_positive_rate"] = n_fp / zeros if zeros else 0.0
            stats["fp_fraction"] = n_fp / size if size else 0.0
        else:
            stats["exceptions"] = float(n_exc)
        return head + payload

    # -- decoding --------------------------------------------------------
    def decode(self, value, spec, side):
        buf = as_bytes(value)
        size = spec.size
        if len(buf) < HEADER_SIZE:
            raise TruncatedError(f"bloomier: stream shorter than its {HEADER_SIZE}-byte header")
        (version, mode, compression, reserved, k, reserved2, n_keys, n_exc, table_len,
         body_len) = _HEAD.unpack_from(buf, 0)
        if version != VERSION:
            raise FormatError(f"bloomier: unsupported stream version {version}")
        if mode >= len(MODES) or compression >= len(COMPRESSIONS) or reserved or reserved2:
            raise FormatError("bloomier: bad mode, compression or reserved header field")
        if MODES[mode] != self.mode:
            raise FormatError(f"bloomier: stream is {MODES[mode]} but the pipeline says "
                              f"{self.mode}")
        if not 1 <= k <= MAX_K:
            raise FormatError(f"bloomier: K={k} outside 1..{MAX_K}")
        if n_keys > size or n_exc > size - n_keys:
            raise FormatError(f"bloomier: {n_keys} keys and {n_exc} exceptions for {size} values")
        if (k == 1 or mode == 0 or n_keys == 0) and n_exc:
            raise FormatError("bloomier: exceptions in a stream that cannot have any")
        if k == 1 and n_keys:
            raise FormatError("bloomier: keys stored with K=1 (no nonzero index exists)")
        max_table = _TABLE_HEAD + (MAX_CELLS_PER_KEY * n_keys * MAX_VALUE_BITS + 7) // 8
        if not _TABLE_HEAD <= table_len <= max_table or table_len > body_len:
            raise FormatError(f"bloomier: table length {table_len} does not fit {n_keys} keys")
        exc_len = body_len - table_len
        if (exc_len == 0) != (n_exc == 0) or exc_len > EXC_SLACK + EXC_BYTES_PER * n_exc:
            raise FormatError(f"bloomier: exception list of {exc_len} bytes for {n_exc} entries")
        payload = buf[HEADER_SIZE:]
        if compression == 0:
            if len(payload) < body_len:
                raise TruncatedError(f"bloomier: body holds {len(payload)} bytes, "
                                     f"header says {body_len}")
            if len(payload) > body_len:
                raise FormatError("bloomier: trailing bytes after the body")
            body = payload
        else:
            body = as_bytes(zstd_codec.decompress(payload, body_len, "bloomier",
                                                  exact_size=body_len))
        table = read_table(body[:table_len], n_keys)
        t = table.value_bits
        if t < _t_min(k):
            raise FormatError(f"bloomier: {t}-bit values cannot hold index {k - 1}")
        out = _query_indices(table, k, size)
        if n_exc:
            pos = decode_positions(body[table_len:], n_exc, size).astype(np.intp)
            if not out[pos].all():
                raise FormatError("bloomier: an exception position is not a false positive")
            out[pos] = 0
        nnz = int(np.count_nonzero(out))
        if nnz < n_keys or (mode == 1 and nnz != n_keys):
            raise FormatError(f"bloomier: decoded {nnz} nonzero indices, header says "
                              f"{n_keys} keys")
        return out.reshape(spec.shape)
