"""Canonical, length-limited Huffman coding with a vectorised multi-lane decoder.

Stream format: ``spec/codecs/huffman.md`` (normative).  In short::

    u8 version=1 | u8 mode | varint count | varint alphabet_size | ...
    mode 0 (empty), 1 (one distinct symbol, 0 bits/symbol) or
    2 (coded): u8 max_len | u8 table_kind | code table | varint lanes |
               varint base | u8 width | lane bit-length table | lane bitstreams

Symbol ``i`` belongs to lane ``i % lanes``.  Every lane is an independent
MSB-first bitstream of canonical Huffman codes; the lanes are concatenated
bit-contiguously (lane 0 first) and the per-lane bit lengths are stored in a
small fixed-width table.  The decoder keeps all lanes in lock step: one
numpy operation handles one symbol of every lane, so each step writes a
contiguous row of the output.  Each lane reads an unaligned 64-bit window
(a gather from an aligned copy of the payload in which entry ``p`` holds the
8 bytes starting at byte ``p``) and decodes ``floor(57 / max_len)`` symbols
from it with a ``2**max_len``-entry lookup table.

Public functions are pure: :func:`code_lengths`, :func:`canonical_codes`,
:func:`encode`, :func:`decode`, :func:`decode_reference`,
:func:`order0_entropy_bits`, :func:`parse_header`.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from wcodec.errors import (ConfigError, FormatError, InputError, LimitExceeded,
                           TruncatedError)
from wcodec.kernels.bitio import (Reader, pack_fixed_msb, unpack_fixed_msb,
                                  write_varint)

__all__ = [
    "VERSION",
    "MAX_ALPHABET",
    "MAX_CODE_LEN",
    "AUTO_TOLERANCE",
    "MAX_LANES",
    "MAX_COUNT",
    "code_lengths",
    "canonical_codes",
    "default_lanes",
    "encode",
    "decode",
    "decode_reference",
    "order0_entropy_bits",
    "parse_header",
    "HuffmanHeader",
]

VERSION = 1
MAX_ALPHABET = 1 << 16          # symbols are < 65536
MAX_CODE_LEN = 16               # format limit on code lengths
AUTO_TOLERANCE = 0.002          # default max_len may cost at most 0.2% in size
_SPEED_LIMITS = (8, 9, 11, 14)  # 7, 6, 5, 4 symbols per 64-bit window
MAX_LANES = 1 << 20
LANE_BITS = 3072                # default: one lane per this many payload bits
MAX_COUNT = 1 << 34             # decompression-bomb guard (0-bit streams)
MAX_LANE_WIDTH = 48             # bits per entry of the lane length table

MODE_EMPTY = 0
MODE_SINGLE = 1
MODE_CODED = 2

TABLE_SPARSE = 0                # counts per length + symbol list
TABLE_DENSE = 1                 # one bitlen(max_len)-bit length per alphabet symbol

_WINDOW_BITS = 57               # usable bits of a 64-bit window at bit offset <= 7


# --------------------------------------------------------------------------
# argument helpers
# --------------------------------------------------------------------------

def _int_arg(value, name: str, lo: int, hi: int, exc=ConfigError) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise exc(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if not lo <= v <= hi:
        raise exc(f"{name} must be in {lo}..{hi}, got {v}")
    return v


def _as_symbols(symbols) -> np.ndarray:
    arr = np.asarray(symbols)
    if arr.ndim != 1:
        raise InputError(f"symbols must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        if arr.dtype.kind not in "uifb":
            raise InputError(f"symbols must be integers, got dtype {arr.dtype}")
        return np.zeros(0, dtype=np.uint16)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "ui":
        raise InputError(f"symbols must be integers, got dtype {arr.dtype}")
    lo = int(arr.min())
    hi = int(arr.max())
    if lo < 0 or hi >= MAX_ALPHABET:
        raise InputError(f"symbols must be in 0..{MAX_ALPHABET - 1}, got {lo}..{hi}")
    if arr.dtype.itemsize == 1:
        return arr.view(np.uint8)
    return arr.astype(np.uint16, copy=False)


def _as_buffer(buf) -> np.ndarray:
    if isinstance(buf, np.ndarray):
        if buf.dtype != np.uint8:
            raise InputError(f"buf array must have dtype uint8, got {buf.dtype}")
        return np.ascontiguousarray(buf.reshape(-1))
    try:
        return np.frombuffer(buf, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise InputError(f"buf must be a contiguous bytes-like object, got "
                         f"{type(buf).__name__}") from exc


# --------------------------------------------------------------------------
# code construction
# --------------------------------------------------------------------------

def code_lengths(counts: np.ndarray, max_len: int) -> np.ndarray:
    """Optimal prefix-code lengths no longer than ``max_len`` (package-merge).

    ``counts`` is a 1-D array of non-negative integer frequencies.  Returns a
    uint8 array of the same length: 0 for symbols with count 0; a single used
    symbol gets length 1; otherwise the lengths minimise ``sum(counts*len)``
    subject to ``len <= max_len`` and satisfy Kraft's equality (the code is
    complete).  ConfigError if ``max_len`` is below ``ceil(log2(used))``.
    """
    c = np.asarray(counts)
    if c.ndim != 1 or (c.size and c.dtype.kind not in "ui"):
        raise InputError("counts must be a 1-D integer array")
    max_len = _int_arg(max_len, "max_len", 1, 64)
    c = c.astype(np.int64, copy=False)
    if c.size and int(c.min()) < 0:
        raise InputError("counts must be non-negative")
    out = np.zeros(c.size, dtype=np.uint8)
    nz = np.flatnonzero(c)
    n = nz.size
    if n == 0:
        return out
    if n == 1:
        out[nz] = 1
        return out
    need = (n - 1).bit_length()           # ceil(log2(n))
    if max_len < need:
        raise ConfigError(f"max_len={max_len} is too small for {n} symbols (needs >= {need})")
    order = nz[np.argsort(c[nz], kind="stable")]
    w = c[order]                          # ascending weights of the leaves
    levels = min(max_len, n - 1)
    # Package-merge: level `levels` (deepest) holds the leaves only; every
    # shallower level merges the leaves with the pairwise packages of the
    # level below.  Only the leaf/package pattern of each list is kept.
    leaf_masks = [None] * (levels + 1)
    leaf_masks[levels] = np.ones(n, dtype=bool)
    cur = w
    for lev in range(levels - 1, 0, -1):
        m = cur.size // 2
        pk = cur[0:2 * m:2] + cur[1:2 * m:2]
        ppos = np.arange(m) + np.searchsorted(w, pk, side="right")
        is_leaf = np.ones(n + m, dtype=bool)
        is_leaf[ppos] = False
        merged = np.empty(n + m, dtype=np.int64)
        merged[ppos] = pk
        merged[is_leaf] = w
        leaf_masks[lev] = is_leaf
        cur = merged
    # Select the 2n-2 cheapest items of level 1 and propagate downwards: a
    # leaf's code length is the number of levels whose selection holds it.
    lens = np.zeros(n, dtype=np.int64)
    take = 2 * n - 2
    for lev in range(1, levels + 1):
        mask = leaf_masks[lev]
        if take > mask.size:  # cannot happen for a valid package-merge run
            raise AssertionError("package-merge selection overflow")
        a = int(np.count_nonzero(mask[:take]))
        lens[:a] += 1
        take = 2 * (take - a)
    out[order] = lens
    return out


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code values (uint32) for per-symbol ``lengths`` (0 = unused).

    Used symbols are ordered by (length, symbol value); the code of the k-th
    one, read as a ``max_len``-bit left-aligned number, is the sum of
    ``2**(max_len - len)`` over the symbols before it.  Codes are returned
    right-aligned (the value of ``len`` bits, MSB first on the wire).
    """
    lens = np.asarray(lengths).astype(np.int64)
    codes = np.zeros(lens.size, dtype=np.uint32)
    used = np.flatnonzero(lens)
    if used.size == 0:
        return codes
    ul = lens[used]
    m = int(ul.max())
    order = used[np.lexsort((used, ul))]
    ol = lens[order]
    span = np.left_shift(np.int64(1), m - ol)
    start = np.cumsum(span) - span
    codes[order] = (start >> (m - ol)).astype(np.uint32)
    return codes


def order0_entropy_bits(symbols: np.ndarray) -> float:
    """Total bits of the order-0 empirical entropy: ``sum c * log2(N / c)``."""
    s = _as_symbols(symbols)
    if s.size == 0:
        return 0.0
    c = np.bincount(s)
    c = c[c > 0].astype(np.float64)
    n = float(s.size)
    return float(np.sum(c * (math.log2(n) - np.log2(c))))


def default_lanes(count: int, total_bits: int | None = None) -> int:
    """Number of lanes the encoder uses by default.

    ``count`` symbols coded in ``total_bits`` bits (default: 4 bits per
    symbol).  One lane per ``LANE_BITS`` (3072) payload bits, so the lane
    table (about 9-10 bits per lane) costs ~0.3% of the payload while each
    numpy step of the decoder still covers ~1000+ lanes on megasymbol
    streams; at least ``count // 2048`` lanes (bounds the lock-step rows on
    low-entropy data) and ``isqrt(count)`` (small inputs); at most 16384
    lanes and never more than ``count``.
    """
    if count <= 0:
        return 1
    if total_bits is None:
        total_bits = 4 * count
    lanes = max(int(total_bits) // LANE_BITS, count // 2048, math.isqrt(count))
    return int(max(1, min(16384, count, lanes)))


# --------------------------------------------------------------------------
# header
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class HuffmanHeader:
    """Parsed and validated stream header (see the spec for field meanings)."""
    mode: int
    count: int
    alphabet_size: int
    symbol: int                     # mode 1 only
    max_len: int                    # mode 2 only
    table_kind: int
    sorted_symbols: np.ndarray      # canonical order (mode 2)
    sorted_lengths: np.ndarray      # code length of each, non-decreasing
    lanes: int
    lane_bits: np.ndarray           # int64 bit length of every lane
    payload: np.ndarray             # uint8 view of the lane bitstreams
    total_bits: int

    @property
    def out_dtype(self):
        return np.dtype(np.uint8) if self.alphabet_size <= 256 else np.dtype(np.uint16)


def _check_kraft(len_counts: np.ndarray, m: int) -> None:
    # len_counts[l] = number of codes of length l (index 0 unused)
    kraft = 0
    for l in range(1, m + 1):
        kraft += int(len_counts[l]) << (m - l)
    if kraft != 1 << m:
        raise FormatError("huffman: code table is not a complete prefix code (Kraft sum != 1)")


def parse_header(buf, count: int) -> HuffmanHeader:
    """Parse and fully validate a stream header against ``count``.

    Checks every declared size against the buffer before allocating, that the
    code table is a complete canonical code, that each lane's bit length is
    possible for its symbol count, and that the payload length is exact.
    Raises FormatError / TruncatedError / LimitExceeded.
    """
    count = _int_arg(count, "count", 0, 1 << 62, exc=InputError)
    raw = _as_buffer(buf)
    rd = Reader(raw, "huffman")
    version = rd.u8()
    if version != VERSION:
        raise FormatError(f"huffman: unsupported version {version}")
    mode = rd.u8()
    if mode not in (MODE_EMPTY, MODE_SINGLE, MODE_CODED):
        raise FormatError(f"huffman: unknown mode {mode}")
    stored = rd.varint()
    if stored != count:
        raise FormatError(f"huffman: stream holds {stored} symbols, caller expects {count}")
    if count > MAX_COUNT:
        raise LimitExceeded(f"huffman: count {count} exceeds limit {MAX_COUNT}")
    alpha = rd.varint()
    if not 1 <= alpha <= MAX_ALPHABET:
        raise FormatError(f"huffman: alphabet size {alpha} outside 1..{MAX_ALPHABET}")
    empty_i = np.zeros(0, dtype=np.int64)
    empty_u8 = np.zeros(0, dtype=np.uint8)

    def simple(mode_, symbol):
        if rd.remaining:
            raise FormatError(f"huffman: {rd.remaining} trailing bytes")
        return HuffmanHeader(mode_, count, alpha, symbol, 0, 0, empty_i, empty_i,
                             0, empty_i, empty_u8, 0)

    if mode == MODE_EMPTY:
        if count != 0:
            raise FormatError("huffman: empty-mode stream with a non-zero count")
        return simple(mode, 0)
    if count == 0:
        raise FormatError("huffman: non-empty mode with count 0")
    if mode == MODE_SINGLE:
        sym = rd.varint()
        if sym >= alpha:
            raise FormatError(f"huffman: symbol {sym} outside alphabet {alpha}")
        return simple(mode, sym)

    # ---- mode 2: code table ------------------------------------------------
    m = rd.u8()
    if not 1 <= m <= MAX_CODE_LEN:
        raise FormatError(f"huffman: max_len {m} outside 1..{MAX_CODE_LEN}")
    kind = rd.u8()
    if kind == TABLE_SPARSE:
        len_counts = np.zeros(m + 1, dtype=np.int64)
        for l in range(1, m + 1):
            len_counts[l] = rd.varint(limit=1 << l)
        nsym = int(len_counts.sum())
        if len_counts[m] == 0:
            raise FormatError("huffman: no code has the declared max_len")
        if not 2 <= nsym <= alpha:
            raise FormatError(f"huffman: {nsym} coded symbols for alphabet {alpha}")
        _check_kraft(len_counts, m)
        sbits = max(1, (alpha - 1).bit_length())
        syms = unpack_fixed_msb(rd.take((nsym * sbits + 7) // 8), nsym, sbits)
        slens = np.repeat(np.arange(m + 1, dtype=np.int64), len_counts)
        if int(syms.max()) >= alpha:
            raise FormatError("huffman: table symbol outside the alphabet")
        # canonical order: ascending symbol value within each length
        if np.any((slens[1:] == slens[:-1]) & (syms[1:] <= syms[:-1])):
            raise FormatError("huffman: table symbols not in canonical order")
        if np.unique(syms).size != nsym:
            raise FormatError("huffman: a symbol appears twice in the code table")
    elif kind == TABLE_DENSE:
        lw = m.bit_length()
        per = unpack_fixed_msb(rd.take((alpha * lw + 7) // 8), alpha, lw)
        if int(per.max()) != m:
            raise FormatError("huffman: dense table does not reach the declared max_len")
        len_counts = np.bincount(per, minlength=m + 1)
        len_counts[0] = 0
        if int(len_counts.sum()) < 2:
            raise FormatError("huffman: dense table codes fewer than 2 symbols")
        _check_kraft(len_counts, m)
        used = np.flatnonzero(per)
        ulen = per[used]
        o = np.lexsort((used, ulen))
        syms = used[o].astype(np.int64)
        slens = ulen[o]
    else:
        raise FormatError(f"huffman: unknown table kind {kind}")

    # ---- lanes ---------------------------------------------------------------
    lanes = rd.varint()
    if not 1 <= lanes <= min(count, MAX_LANES):
        raise FormatError(f"huffman: {lanes} lanes for {count} symbols "
                          f"(allowed 1..{min(count, MAX_LANES)})")
    base = rd.varint(limit=count * m)
    width = rd.u8()
    if width > MAX_LANE_WIDTH:
        raise FormatError(f"huffman: lane table width {width} > {MAX_LANE_WIDTH}")
    tbytes = (lanes * width + 7) // 8
    rd.need(tbytes)
    lane_bits = unpack_fixed_msb(rd.take(tbytes), lanes, width) + base
    r0, rem = divmod(count, lanes)
    n_lane = np.full(lanes, r0, dtype=np.int64)
    n_lane[:rem] += 1
    min_len = int(slens[0])
    if np.any(lane_bits < n_lane * min_len) or np.any(lane_bits > n_lane * m):
        raise FormatError("huffman: a lane bit length is impossible for its symbol count")
    total = int(lane_bits.sum())
    nbytes = (total + 7) // 8
    if rd.remaining < nbytes:
        raise TruncatedError(f"huffman: payload needs {nbytes} bytes, {rd.remaining} left")
    if rd.remaining > nbytes:
        raise FormatError(f"huffman: {rd.remaining - nbytes} trailing bytes")
    payload = rd.take(nbytes)
    if total & 7 and int(payload[-1]) & (0xFF >> (total & 7)):
        raise FormatError("huffman: non-zero padding bits after the last lane")
    return HuffmanHeader(mode, count, alpha, 0, m, kind, syms, slens, lanes,
                         lane_bits, payload, total)


# --------------------------------------------------------------------------
# encoder
# --------------------------------------------------------------------------

_PACK_BLOCK = 1 << 16           # symbols per encoder block (keeps temporaries in cache)


def _pack_lanes(sym: np.ndarray, lens_sym: np.ndarray, vtab: np.ndarray,
                lanes: int, lane_start: np.ndarray, total: int) -> bytes:
    """Write every lane's codes MSB-first, lanes concatenated bit-contiguously.

    ``lens_sym[i]`` is the code length of ``sym[i]``; ``vtab[s]`` is the code
    of symbol ``s`` left-aligned in a uint64.  Symbol ``i`` is in lane
    ``i % lanes`` at row ``i // lanes``; its bit position is the start of its
    lane plus the lengths of the lane's earlier symbols.  Codes occupy
    disjoint bits, so adding their pieces into 64-bit words is an OR.
    """
    n = sym.size
    nwords = (total + 63) // 64 + 1
    acc = np.zeros(nwords, dtype=np.uint64)
    acc1 = acc[1:]
    carry = lane_start.astype(np.int64)

    def block(a: int, b: int, width: int) -> None:
        ln = lens_sym[a:b].reshape(-1, width)
        pos = ln.astype(np.int64)
        if width >= 256:
            # row-by-row prefix sums are much faster than an axis-0 cumsum
            for r in range(1, pos.shape[0]):
                np.add(pos[r - 1], pos[r], out=pos[r])
        else:
            np.cumsum(pos, axis=0, out=pos)
        pos -= ln
        pos += carry[:width]
        carry[:width] = pos[-1] + ln[-1]
        pos = pos.reshape(-1)
        v = vtab[sym[a:b]]
        t = (pos & 63).astype(np.uint64)
        word = pos >> 6
        np.add.at(acc, word, v >> t)
        np.subtract(np.uint64(64), t, out=t)
        np.add.at(acc1, word, v << t)

    full = (n // lanes) * lanes
    step = max(1, _PACK_BLOCK // lanes) * lanes
    for a in range(0, full, step):
        block(a, min(full, a + step), lanes)
    if full < n:
        block(full, n, n - full)
    return acc.astype(">u8").tobytes()[:(total + 7) // 8]


def encode(symbols: np.ndarray, alphabet_size: int | None = None, *,
           max_len: int | None = None, lanes: int | None = None) -> bytes:
    """Encode a 1-D array of symbols (ints in 0..65535) into a self-describing stream.

    ``alphabet_size`` defaults to ``max(symbols) + 1`` (1 for empty input);
    it fixes the decoded dtype (uint8 if <= 256 else uint16).  ``max_len``
    (1..16) limits code lengths; by default the encoder picks the shortest
    limit among 8, 9, 11, 14 (faster decoding) that costs at most 0.2% in
    size against the limit 16.  ``lanes``
    (default :func:`default_lanes`) is clipped to the symbol count.  Empty
    input and a single distinct symbol produce a header only.
    """
    sym = _as_symbols(symbols)
    n = int(sym.size)
    if alphabet_size is None:
        alpha = int(sym.max()) + 1 if n else 1
    else:
        alpha = _int_arg(alphabet_size, "alphabet_size", 1, MAX_ALPHABET)
        if n and int(sym.max()) >= alpha:
            raise InputError(f"symbol {int(sym.max())} outside alphabet_size {alpha}")
    if max_len is not None:
        max_len = _int_arg(max_len, "max_len", 1, MAX_CODE_LEN)
    if lanes is not None:
        lanes = _int_arg(lanes, "lanes", 1, MAX_LANES)
    head = bytearray([VERSION])
    if n == 0:
        head.append(MODE_EMPTY)
        head += write_varint(0) + write_varint(alpha)
        return bytes(head)
    counts = np.bincount(sym, minlength=alpha)
    used = np.flatnonzero(counts)
    if used.size == 1:
        head.append(MODE_SINGLE)
        head += write_varint(n) + write_varint(alpha) + write_varint(int(used[0]))
        return bytes(head)
    need = (int(used.size) - 1).bit_length()
    if max_len is None:
        lens_tab = _auto_lengths(counts, need)
    else:
        if max_len < need:
            raise ConfigError(f"max_len={max_len} too small for {used.size} distinct symbols "
                              f"(needs >= {need})")
        lens_tab = code_lengths(counts, max_len)
    m = int(lens_tab.max())
    codes_tab = canonical_codes(lens_tab)

    head.append(MODE_CODED)
    head += write_varint(n) + write_varint(alpha)
    head.append(m)
    head += _table_bytes(lens_tab, m, alpha)

    lens_sym = lens_tab[sym]
    if lanes is None:
        L = default_lanes(n, int(counts @ lens_tab.astype(np.int64)))
    else:
        L = min(lanes, n)
    full = (n // L) * L
    lane_bits = lens_sym[:full].reshape(-1, L).sum(axis=0, dtype=np.int64)
    lane_bits[:n - full] += lens_sym[full:]
    lane_start = np.cumsum(lane_bits) - lane_bits
    total = int(lane_bits.sum())
    vtab = np.zeros(alpha, dtype=np.uint64)
    usedl = lens_tab > 0
    vtab[usedl] = codes_tab[usedl].astype(np.uint64) << (64 - lens_tab[usedl]).astype(np.uint64)
    payload = _pack_lanes(sym, lens_sym, vtab, L, lane_start, total)

    base = int(lane_bits.min())
    delta = lane_bits - base
    width = int(delta.max()).bit_length()
    head += write_varint(L) + write_varint(base)
    head.append(width)
    head += pack_fixed_msb(delta, width)
    return bytes(head) + payload


def _auto_lengths(counts: np.ndarray, need: int) -> np.ndarray:
    """Default code lengths: the shortest length limit from ``_SPEED_LIMITS``
    whose coded size is within ``AUTO_TOLERANCE`` of the best code with
    ``MAX_CODE_LEN``; shorter limits decode more symbols per 64-bit window."""
    best = code_lengths(counts, MAX_CODE_LEN)
    if int(best.max()) <= _SPEED_LIMITS[0]:
        return best
    c = counts.astype(np.float64)
    best_cost = float(c @ best)
    for lim in _SPEED_LIMITS:
        if lim < need:
            continue
        if lim >= int(best.max()):
            break
        lens = code_lengths(counts, lim)
        if float(c @ lens) <= best_cost * (1.0 + AUTO_TOLERANCE):
            return lens
    return best


def _table_bytes(lens_tab: np.ndarray, m: int, alpha: int) -> bytes:
    """The smaller of the sparse and dense code-table encodings (with kind byte)."""
    used = np.flatnonzero(lens_tab)
    ul = lens_tab[used].astype(np.int64)
    order = used[np.lexsort((used, ul))]
    len_counts = np.bincount(ul, minlength=m + 1)
    sparse = bytearray([TABLE_SPARSE])
    for l in range(1, m + 1):
        sparse += write_varint(int(len_counts[l]))
    sbits = max(1, (alpha - 1).bit_length())
    sparse += pack_fixed_msb(order, sbits)
    dense = bytes([TABLE_DENSE]) + pack_fixed_msb(lens_tab, m.bit_length())
    if len(dense) <= len(sparse):
        return dense
    return bytes(sparse)


# --------------------------------------------------------------------------
# fast decoder
# --------------------------------------------------------------------------

def _lookup_tables(h: HuffmanHeader):
    """(symbol table, length table) with 2**max_len entries each."""
    m = h.max_len
    span = np.left_shift(np.int64(1), m - h.sorted_lengths)
    sym_dtype = h.out_dtype
    symtab = np.repeat(h.sorted_symbols.astype(sym_dtype), span)
    lentab = np.repeat(h.sorted_lengths.astype(np.uint64), span)
    assert symtab.size == 1 << m  # guaranteed by the Kraft check
    return symtab, lentab


def _window_table(payload: np.ndarray) -> np.ndarray:
    """Aligned uint64 array T with T[p] = big-endian 8 bytes at payload byte p."""
    nb = payload.size
    padded = np.zeros(nb + 8, dtype=np.uint8)
    padded[:nb] = payload
    view = np.ndarray(shape=(nb + 1,), dtype=">u8", buffer=padded, strides=(1,))
    return view.astype(np.uint64)


def _decode_lanes(T, pos, rows, K, m, symtab, lentab, out2, a, b):
    """Decode ``rows`` symbols of lanes a..b-1 in lock step (pos updated in place).

    Per group of up to K rows: gather each lane's 64-bit window at byte
    ``pos >> 3`` and left-align it (``<< (pos & 7)``); then per row: index =
    top ``m`` bits, look up the code length and shift the window.  The
    symbols of the whole group are looked up with one ``take`` straight into
    the output rows and ``pos`` advances by the summed lengths.  Bound
    methods, positional arguments and 0-d constants keep the per-call
    overhead low (it dominates when there are only ~1000 lanes).
    """
    n = b - a
    bi = np.empty(n, dtype=np.int64)
    biu = bi.view(np.uint64)
    IDX = np.empty((K, n), dtype=np.int64)
    IDXu = IDX.view(np.uint64)
    LN = np.empty((K, n), dtype=np.uint64)
    w = np.empty(n, dtype=np.uint64)
    sh = np.empty(n, dtype=np.uint64)
    adv = np.empty(n, dtype=np.uint64)
    c3 = np.array(3, dtype=np.uint64)
    c7 = np.array(7, dtype=np.uint64)
    cs = np.array(64 - m, dtype=np.uint64)
    t_take = T.take
    s_take = symtab.take
    l_take = lentab.take
    rshift = np.right_shift
    lshift = np.left_shift
    band = np.bitwise_and
    add = np.add
    add_reduce = np.add.reduce
    rows_idx = [(IDXu[k], IDX[k], LN[k]) for k in range(K)]
    full = a == 0 and b == out2.shape[1]
    for g in range(0, rows, K):
        kk = min(K, rows - g)
        rshift(pos, c3, biu)
        t_take(bi, None, w, "clip")
        band(pos, c7, sh)
        lshift(w, sh, w)
        for k in range(kk):
            iu, ii, lk = rows_idx[k]
            rshift(w, cs, iu)
            l_take(ii, None, lk, "clip")
            if k != kk - 1:
                lshift(w, lk, w)
        # one lookup for the group; with a lane subset (threads) the output
        # block is strided and numpy writes it back through a buffer
        s_take(IDX[:kk], None, out2[g:g + kk] if full else out2[g:g + kk, a:b], "clip")
        if kk > 1:
            add_reduce(LN[:kk], 0, None, adv)
            add(pos, adv, pos)
        else:
            add(pos, LN[0], pos)


def decode(buf, count: int, *, threads: int = 1) -> np.ndarray:
    """Decode ``count`` symbols from an :func:`encode` stream (fast path).

    ``buf`` may be bytes, bytearray, memoryview or a uint8 array.  Returns a
    uint8 array if the stream's alphabet has <= 256 symbols, else uint16.
    Corrupt, truncated or hostile input raises FormatError (or a subclass):
    all sizes are validated before allocation, gathers are clipped, and every
    lane must end exactly at its recorded bit length.  ``threads > 1``
    splits the lanes between worker threads.
    """
    threads = _int_arg(threads, "threads", 1, 1024)
    h = parse_header(buf, count)
    dt = h.out_dtype
    try:
        out = np.empty(count, dtype=dt)
    except MemoryError as exc:  # pragma: no cover - depends on the machine
        raise LimitExceeded(f"huffman: cannot allocate {count} symbols") from exc
    if h.mode == MODE_EMPTY:
        return out
    if h.mode == MODE_SINGLE:
        out.fill(h.symbol)
        return out
    m = h.max_len
    symtab, lentab = _lookup_tables(h)
    T = _window_table(h.payload)
    L = h.lanes
    r0, rem = divmod(count, L)
    ends = np.cumsum(h.lane_bits).astype(np.uint64)
    pos = ends - h.lane_bits.astype(np.uint64)
    K = max(1, _WINDOW_BITS // m)
    out2 = out[:r0 * L].reshape(r0, L)
    tail = out[r0 * L:].reshape(1, rem)

    def work(a, b):
        p = pos[a:b]
        if r0:
            _decode_lanes(T, p, r0, K, m, symtab, lentab, out2, a, b)
        if a < rem:
            e = min(b, rem)
            q = pos[a:e]
            _decode_lanes(T, q, 1, K, m, symtab, lentab, tail, a, e)
            pos[a:e] = q

    nthreads = min(threads, max(1, L // 512))
    if nthreads <= 1:
        work(0, L)
    else:
        cuts = [L * i // nthreads for i in range(nthreads + 1)]
        with ThreadPoolExecutor(nthreads) as ex:
            list(ex.map(work, cuts[:-1], cuts[1:]))
    if not np.array_equal(pos, ends):
        bad = int(np.flatnonzero(pos != ends)[0])
        raise FormatError(f"huffman: lane {bad} does not end at its recorded bit length")
    return out


# --------------------------------------------------------------------------
# reference decoder
# --------------------------------------------------------------------------

def decode_reference(buf, count: int) -> np.ndarray:
    """Slow, obviously-correct decoder used to cross-check :func:`decode`.

    Shares :func:`parse_header` but decodes each lane separately with
    ``bitarray``'s prefix-code decoder built from the canonical code table.
    """
    from bitarray import bitarray, decodetree

    h = parse_header(buf, count)
    out = np.empty(count, dtype=h.out_dtype)
    if h.mode == MODE_EMPTY:
        return out
    if h.mode == MODE_SINGLE:
        out[:] = h.symbol
        return out
    # canonical codes, assigned one by one in (length, symbol) order
    code_map = {}
    code = 0
    prev_len = int(h.sorted_lengths[0])
    for i, (s, l) in enumerate(zip(h.sorted_symbols.tolist(), h.sorted_lengths.tolist())):
        if i:
            code = (code + 1) << (l - prev_len)
        prev_len = l
        code_map[s] = bitarray(format(code, f"0{l}b"), endian="big")
    tree = decodetree(code_map)
    bits = bitarray(endian="big")
    bits.frombytes(h.payload.tobytes())
    L = h.lanes
    start = 0
    for j in range(L):
        stop = start + int(h.lane_bits[j])
        lane = bits[start:stop]
        try:
            vals = list(lane.decode(tree))
        except ValueError as exc:
            raise FormatError(f"huffman: lane {j} ends inside a code") from exc
        expect = len(range(j, count, L))
        if len(vals) != expect:
            raise FormatError(f"huffman: lane {j} holds {len(vals)} symbols, expected {expect}")
        out[j::L] = vals
        start = stop
    return out
