"""Line-wise Rice coding of the positions of non-zero symbols (normative
layout: ``spec/codecs/linerice.md``).

A pruned weight matrix is not uniformly sparse: some input pixels or hidden
units keep many weights, others none. This kernel codes the matrix one *line*
(row or column) at a time. Per line it stores the number ``k`` of non-zero
symbols; the gaps between them are Rice-coded with a parameter derived from
``k`` and the line length, so each line gets the code that suits its own
density. Positions no line uses (a dead input or unit) are cut out first by a
1-bit mask. The non-zero symbols themselves are returned for the caller to
entropy-code.

Everything is vectorised: gaps come from ``np.nonzero`` and ``np.diff``, the
unary parts are one ``np.packbits`` and the remainders are bit-packed in one
block per Rice parameter, so decoding never loops over elements in Python.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from wcodec.errors import ConfigError, FormatError, TruncatedError
from wcodec.kernels import bitpack

__all__ = ["MAX_LINE", "rice_parameters", "Positions", "find_positions", "pack_gaps",
           "unpack_gaps", "positions_from_gaps"]

# lines must be shorter than 2^31 positions: every Rice parameter then fits
# 30 bits and no sum in the decoder can overflow int64
MAX_LINE = (1 << 31) - 1


def _bit_length(v: np.ndarray) -> np.ndarray:
    """``int.bit_length`` of each non-negative int64 (< 2^53)."""
    return np.frexp(v.astype(np.float64))[1].astype(np.int64)


def rice_parameters(counts: np.ndarray, alive: int) -> np.ndarray:
    """Rice parameter ``r`` of each line: for ``k = counts > 0`` non-zeros among
    ``alive`` positions (``z = alive - k`` zeros) the smallest ``r >= 0`` with
    ``k * 2^(r+1) >= z``; 0 for empty lines."""
    k = counts.astype(np.int64)
    z = alive - k
    ceil_ratio = np.where(k > 0, -(-z // np.maximum(k, 1)), 0)      # ceil(z / k)
    s = _bit_length(np.maximum(ceil_ratio - 1, 0))                  # smallest s: 2^s >= ceil(z/k)
    return np.maximum(s - 1, 0)


class Positions(NamedTuple):
    """The non-zero layout of a line matrix, non-zeros in line order."""
    alive: np.ndarray       # bool per position: non-zero in some line
    counts: np.ndarray      # int64 per line: its number of non-zeros
    lines: np.ndarray       # int64 per non-zero: its line
    slots: np.ndarray       # int64 per non-zero: its index among the alive positions


def find_positions(nonzero: np.ndarray) -> Positions:
    """``nonzero``: bool matrix (lines x line length)."""
    alive = nonzero.any(axis=0)
    lines, pos = np.nonzero(nonzero)
    slot_of = np.cumsum(alive, dtype=np.int64) - 1
    counts = np.bincount(lines, minlength=nonzero.shape[0]).astype(np.int64)
    return Positions(alive, counts, lines.astype(np.int64), slot_of[pos])


def _line_starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


def pack_gaps(p: Positions) -> tuple[bytes, bytes]:
    """Rice-code the gaps of every line: ``(unary part, remainder part)``."""
    counts, slots = p.counts, p.slots
    alive = int(np.count_nonzero(p.alive))
    if alive > MAX_LINE:
        raise ConfigError(f"linerice: lines of {alive} positions exceed {MAX_LINE}")
    prev = np.empty_like(slots)
    if slots.size:
        prev[1:] = slots[:-1]
        prev[_line_starts(counts)[counts > 0]] = -1
    gaps = slots - prev - 1
    r = np.repeat(rice_parameters(counts, alive), counts)
    q = gaps >> r
    ends = np.cumsum(q + 1) - 1
    bits = np.zeros(int(ends[-1]) + 1 if ends.size else 0, dtype=np.uint8)
    bits[ends] = 1
    unary = np.packbits(bits, bitorder="little").tobytes()
    rest = gaps & ((np.int64(1) << r) - 1)
    remainders = b"".join(bitpack.pack(rest[r == b].astype(np.uint32), int(b))
                          for b in range(1, int(r.max()) + 1 if r.size else 1))
    return unary, remainders


def unpack_gaps(counts: np.ndarray, alive: int, unary, buf, offset: int) -> tuple[np.ndarray, int]:
    """Inverse of :func:`pack_gaps`: the gaps, and the offset in ``buf`` after
    the remainder part that starts at ``offset``. Validates everything."""
    total = int(counts.sum())
    r = np.repeat(rice_parameters(counts, alive), counts)
    ones = np.flatnonzero(np.unpackbits(np.frombuffer(unary, dtype=np.uint8),
                                        bitorder="little"))
    if ones.size != total:
        raise FormatError(f"linerice: unary part ends {ones.size} gaps, expected {total}")
    if len(unary) != (int(ones[-1]) // 8 + 1 if total else 0):
        raise FormatError("linerice: unary part has trailing bytes")
    q = np.diff(ones, prepend=-1) - 1
    if total and bool((q > (alive >> r)).any()):
        raise FormatError("linerice: a gap runs past the end of its line")
    gaps = q << r
    for b in range(1, int(r.max()) + 1 if r.size else 1):
        sel = r == b
        n = int(np.count_nonzero(sel))
        size = bitpack.packed_size(n, b)
        if offset + size > len(buf):
            raise TruncatedError("linerice: remainder part runs past the end of the stream")
        gaps[sel] |= bitpack.unpack(buf[offset:offset + size], n, b).astype(np.int64)
        offset += size
    return gaps, offset


def positions_from_gaps(counts: np.ndarray, alive: int, gaps: np.ndarray) -> np.ndarray:
    """Slot (index among alive positions) of each non-zero, line order;
    FormatError if a line's gaps run past its end."""
    steps = gaps + 1
    starts = _line_starts(counts)
    used = counts > 0
    per_line = np.add.reduceat(steps, starts[used]) if steps.size else steps
    if bool((per_line > alive).any()):
        raise FormatError("linerice: a line's gaps run past its end")
    cumulative = np.cumsum(steps)
    before = np.repeat(cumulative[starts[used]] - steps[starts[used]], counts[used])
    return cumulative - before - 1
