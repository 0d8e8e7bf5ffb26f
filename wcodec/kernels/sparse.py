"""Deep Compression relative-index sparse format.

Mapping (normative, see ``spec/codecs/sparse.md``), for a symbol array
``x`` of ``count`` entries and an index width ``b`` (1..32), ``M = 2**b - 1``:

* The stored entries are the non-zero positions of ``x`` plus *filler*
  entries, in increasing position order.  Entry ``e`` has a position
  ``p_e``, a gap ``gaps[e] = p_e - p_{e-1} - 1`` (with ``p_{-1} = -1``, so
  an entry at position 0, or right after the previous entry, has gap 0)
  and a value ``values[e] = x[p_e]``.
* Every gap must be ``<= M``.  Where the distance from the previous entry
  to the next non-zero needs a gap ``g > M``, ``g // 2**b`` fillers are
  inserted first, each with gap ``M`` (so each advances ``2**b``
  positions) and value 0; the non-zero entry then has gap ``g % 2**b``.
* Trailing zeros after the last non-zero are implied by ``count``: the
  last entry is always a non-zero value (no trailing fillers).

The decoder accepts only this canonical form: a zero value must have gap
``M`` (a filler), the last entry must be non-zero and every position must
be below ``count``.

Everything is vectorised: fillers are counted with a shift, laid out with
one ``np.cumsum`` and decoded with one ``np.cumsum``.
"""

from __future__ import annotations

import numpy as np

from wcodec.errors import ConfigError, FormatError, InputError
from wcodec.kernels.bitpack import as_symbols, min_bits, uint_dtype_for_bits

__all__ = ["MAX_INDEX_BITS", "to_relative", "from_relative", "relative_size",
           "best_index_bits"]

MAX_INDEX_BITS = 32


def _check_index_bits(b) -> int:
    if isinstance(b, (bool, np.bool_)) or not isinstance(b, (int, np.integer)):
        raise ConfigError(f"index_bits must be an integer, got {b!r}")
    b = int(b)
    if not 1 <= b <= MAX_INDEX_BITS:
        raise ConfigError(f"index_bits must be in 1..{MAX_INDEX_BITS}, got {b}")
    return b


def _gaps_of(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-zero positions and the zero gap before each (from position -1)."""
    nz = np.flatnonzero(v != 0)
    g = np.diff(nz, prepend=-1) - 1
    return nz, g


def to_relative(symbols, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``symbols`` into ``(gaps, values)`` with ``index_bits``-bit gaps.

    ``gaps`` has the smallest unsigned dtype that holds ``index_bits`` bits;
    ``values`` has the (unsigned) dtype of ``symbols``.
    """
    b = _check_index_bits(index_bits)
    v = as_symbols(symbols)
    nz, g = _gaps_of(v)
    fill = g >> b  # fillers before each non-zero
    # index of each non-zero entry in the entry list
    at = np.cumsum(fill + 1) - 1
    n_entries = int(at[-1]) + 1 if at.size else 0
    gdt = uint_dtype_for_bits(b)
    gaps = np.full(n_entries, (1 << b) - 1, dtype=gdt)
    gaps[at] = g & ((1 << b) - 1)
    values = np.zeros(n_entries, dtype=v.dtype)
    values[at] = v[nz]
    return gaps, values


def from_relative(gaps, values, count: int, index_bits: int, dtype=None) -> np.ndarray:
    """Exact inverse of :func:`to_relative`; ``count`` is the output length.

    Raises FormatError for arrays of different lengths, a gap that does not
    fit ``index_bits``, a non-canonical filler (zero value with gap below
    ``2**index_bits - 1``, or a trailing filler) or a position past
    ``count``.  The result has ``dtype`` if given, else the dtype of
    ``values``.
    """
    b = _check_index_bits(index_bits)
    if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)):
        raise InputError(f"count must be an integer, got {count!r}")
    count = int(count)
    if count < 0:
        raise InputError(f"count must be non-negative, got {count}")
    g = _stream_array(gaps, "gaps")
    val = _stream_array(values, "values")
    if g.size != val.size:
        raise FormatError(f"{g.size} gaps but {val.size} values")
    out_dtype = np.dtype(dtype) if dtype is not None else val.dtype
    e = g.size
    if e == 0:
        return np.zeros(count, dtype=out_dtype)
    if e > count:
        raise FormatError(f"{e} sparse entries for only {count} positions")
    full = (1 << b) - 1
    if int(g.max()) > full:
        raise FormatError(f"gap {int(g.max())} does not fit in {b} bits")
    zero = val == 0
    if zero[-1]:
        raise FormatError("sparse stream ends with a filler entry")
    if np.any(g[zero] != full):
        raise FormatError("filler entry with a gap below the maximum")
    if e * float(full + 1) >= 2.0 ** 62 and float(g.sum(dtype=np.float64)) + e > count + 1:
        raise FormatError(f"sparse positions run past count={count}")
    pos = np.cumsum(g.astype(np.int64) + 1) - 1
    if int(pos[-1]) >= count:
        raise FormatError(f"sparse position {int(pos[-1])} is past count={count}")
    if out_dtype.kind in "ui" and int(val.max()) > np.iinfo(out_dtype).max:
        raise FormatError(f"sparse value does not fit {out_dtype}")
    out = np.zeros(count, dtype=out_dtype)
    out[pos] = val
    return out


def _stream_array(a, name: str) -> np.ndarray:
    try:
        return as_symbols(a, name)
    except InputError:
        if np.asarray(a).dtype.kind == "i":
            raise FormatError(f"negative {name}") from None
        raise


def relative_size(symbols, index_bits: int) -> int:
    """Number of entries (non-zeros + fillers) at width ``index_bits``."""
    b = _check_index_bits(index_bits)
    _, g = _gaps_of(as_symbols(symbols))
    return int(g.size + (g >> b).sum())


def best_index_bits(symbols, value_bits: int | None = None,
                    max_index_bits: int = MAX_INDEX_BITS) -> int:
    """Index width minimising the estimated size ``entries(b) * (b + value_bits)``.

    ``entries(b)`` is the exact entry count (non-zeros + fillers) at width
    ``b``; ``value_bits`` defaults to ``min_bits(max(symbols))``, i.e. both
    streams are priced as if fixed-width coded.  Ties go to the smaller
    width; an input without non-zeros gives 1.  Only widths up to
    ``max_index_bits`` are considered.
    """
    top = _check_index_bits(max_index_bits)
    v = as_symbols(symbols)
    _, g = _gaps_of(v)
    if g.size == 0:
        return 1
    vb = min_bits(int(v.max())) if value_bits is None else int(value_bits)
    if vb < 0:
        raise ConfigError(f"value_bits must be non-negative, got {vb}")
    # widths beyond the largest gap's bit length add no fillers, only cost
    top = min(top, min_bits(int(g.max())))
    m = g.size
    best_b, best_cost = 1, None
    for b in range(1, top + 1):
        cost = (m + int((g >> b).sum())) * (b + vb)
        if best_cost is None or cost < best_cost:
            best_b, best_cost = b, cost
    return best_b
