"""Zero-run symbolisation (bzip2-style RUNA/RUNB) for pruned symbol streams.

Mapping (normative, see ``spec/codecs/zerorun.md``):

* every maximal run of ``L >= 1`` zeros becomes the ``k = floor(log2(L+1))``
  digits of ``L`` in *bijective base 2*, least significant digit first:
  ``L = sum_t (d_t + 1) * 2**t`` with ``d_t`` in {0, 1}.  Digit 0 is
  written as symbol 0 (RUNA, worth ``1 * 2**t``) and digit 1 as symbol 1
  (RUNB, worth ``2 * 2**t``).  Equivalently the digits are the bits of
  ``L + 1`` below its leading one, LSB first.
* every non-zero value ``v`` becomes the symbol ``v + 1``.

So 1 zero -> [0], 2 -> [1], 3 -> [0, 0], 4 -> [1, 0], 5 -> [0, 1],
6 -> [1, 1], 7 -> [0, 0, 0], ..., and a run of ``L`` zeros costs about
``log2(L)`` symbols.  Because two runs can never be adjacent in the output
(a run is maximal), every maximal group of consecutive digit symbols is one
run and every sequence of symbols decodes to exactly one input: the
mapping is a bijection between symbol arrays and run-symbol arrays.

A value alphabet ``0..A-1`` becomes the run alphabet ``0..A``
(:func:`run_alphabet_size`).

Both directions are vectorised: runs are found with ``np.flatnonzero`` and
``np.diff``, digits are emitted in one array pass per digit position (only
over the runs that still have a digit there, so the total work is the
number of digits) and decoding uses ``np.add.reduceat`` and ``np.cumsum``.
"""

from __future__ import annotations

import numpy as np

from wcodec.errors import ConfigError, FormatError, InputError, TruncatedError
from wcodec.kernels.bitpack import as_symbols, min_bits, uint_dtype_for_bits

__all__ = ["RUNA", "RUNB", "run_alphabet_size", "to_runs", "from_runs"]

RUNA = 0
RUNB = 1

# bit lengths are computed through float64, exact below 2**53
_MAX_COUNT = 1 << 52
# a digit group longer than this encodes a run of at least 2**62 zeros
_MAX_DIGITS = 62


def run_alphabet_size(value_alphabet_size: int) -> int:
    """Size of the run alphabet for values ``0..value_alphabet_size-1``.

    That is ``value_alphabet_size + 1``: RUNA, RUNB and ``v + 1`` for the
    non-zero values ``1..value_alphabet_size-1``.
    """
    a = _check_alphabet(value_alphabet_size)
    return a + 1


def _check_alphabet(a) -> int:
    if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
        raise ConfigError(f"alphabet size must be an integer, got {a!r}")
    a = int(a)
    if a < 1:
        raise ConfigError(f"alphabet size must be at least 1, got {a}")
    return a


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Bit length of positive integers below 2**53 (int64 result)."""
    return np.frexp(x.astype(np.float64))[1].astype(np.int64)


def to_runs(symbols, alphabet_size: int | None = None) -> np.ndarray:
    """Map unsigned ``symbols`` to the RUNA/RUNB run alphabet.

    If ``alphabet_size`` is given every symbol must be below it
    (ConfigError otherwise).  The result has the smallest unsigned dtype
    that holds the largest output symbol (``max(symbols) + 1``, or
    ``alphabet_size`` when given).
    """
    v = as_symbols(symbols)
    n = v.size
    if n >= _MAX_COUNT:
        raise InputError(f"too many symbols ({n})")
    vmax = int(v.max()) if n else 0
    if alphabet_size is not None:
        a = _check_alphabet(alphabet_size)
        if vmax >= a:
            raise ConfigError(f"symbol {vmax} is outside the alphabet 0..{a - 1}")
        top = a
    else:
        top = vmax + 1
    if top >= 1 << 64:
        raise ConfigError("symbol value 2**64-1 has no run-alphabet code")
    dtype = uint_dtype_for_bits(min_bits(top))

    nz = np.flatnonzero(v != 0)
    m = nz.size
    # zero-run lengths before each non-zero value, plus the trailing run
    bounds = np.empty(m + 2, dtype=np.int64)
    bounds[0] = -1
    bounds[1:-1] = nz
    bounds[-1] = n
    lp1 = np.diff(bounds)  # run length + 1, >= 1
    ndig = _bit_length(lp1) - 1  # digits per run (0 for an empty run)
    cum = np.cumsum(ndig)
    total = int(cum[-1]) + m

    out = np.empty(total, dtype=dtype)
    # value j lands after the digits of runs 0..j and the values 0..j-1
    out[cum[:m] + np.arange(m)] = v[nz].astype(dtype) + 1
    # digits of run j start at (digits of earlier runs) + j
    start = cum - ndig + np.arange(m + 1)
    idx = np.flatnonzero(ndig)
    t = 0
    while idx.size:
        out[start[idx] + t] = (lp1[idx] >> t) & 1
        t += 1
        idx = idx[ndig[idx] > t]
    return out


def from_runs(run_symbols, count: int, alphabet_size: int | None = None,
              dtype=None) -> np.ndarray:
    """Exact inverse of :func:`to_runs`; ``count`` is the number of symbols.

    Raises FormatError when a symbol is outside the run alphabet (only
    checked if ``alphabet_size`` is given) or is negative, when a run is
    absurdly long or the runs and values describe more than ``count``
    symbols, and TruncatedError when they describe fewer.  The result has
    ``dtype`` if given, else the smallest unsigned dtype holding
    ``alphabet_size - 1`` (or the largest decoded value).
    """
    if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)):
        raise InputError(f"count must be an integer, got {count!r}")
    count = int(count)
    if not 0 <= count < 1 << 63:
        raise InputError(f"count must be in 0..2**63-1, got {count}")
    try:
        r = as_symbols(run_symbols, "run symbols")
    except InputError:
        if np.asarray(run_symbols).dtype.kind == "i":
            raise FormatError("negative run symbol") from None
        raise
    rmax = int(r.max()) if r.size else 0
    if alphabet_size is not None:
        a = _check_alphabet(alphabet_size)
        if rmax > a:
            raise FormatError(f"run symbol {rmax} is outside the run alphabet 0..{a}")
        out_dtype = uint_dtype_for_bits(min_bits(a - 1))
    else:
        out_dtype = uint_dtype_for_bits(min_bits(max(rmax - 1, 0)))
    if dtype is not None:
        out_dtype = np.dtype(dtype)

    dig = r < 2
    q = np.flatnonzero(~dig)
    m = q.size
    if m > count:
        raise FormatError(f"run stream holds {m} values, more than count={count}")
    runs = np.zeros(m + 1, dtype=np.uint64)
    # maximal groups of consecutive digits: [gstart, gend) in r
    edges = np.diff(np.concatenate(([False], dig, [False])).view(np.int8))
    gstart = np.flatnonzero(edges == 1)
    if gstart.size:
        glen = np.flatnonzero(edges == -1) - gstart
        if int(glen.max()) > _MAX_DIGITS:
            raise FormatError("zero run is too long")
        # L = sum (d_t + 1) 2**t = (2**k - 1) + sum d_t 2**t, one pass per digit position
        lengths = ((np.int64(1) << glen) - 1) + r[gstart].astype(np.int64)
        idx = np.flatnonzero(glen > 1)
        t = 1
        while idx.size:
            lengths[idx] += r[gstart[idx] + t].astype(np.int64) << t
            t += 1
            idx = idx[glen[idx] > t]
        if int(lengths.max()) > count:
            raise FormatError(f"zero run of {int(lengths.max())} exceeds count={count}")
        # the run before value j has index j = number of values before it
        runs[gstart - (np.cumsum(glen) - glen)] = lengths
    # runs are each <= count < 2**63, so a uint64 wrap makes the sum drop
    csum = np.cumsum(runs)
    if m and np.any(csum[1:] < csum[:-1]):
        raise FormatError("zero runs overflow")
    total = int(csum[-1]) + m
    if total > count:
        raise FormatError(f"run stream describes {total} symbols, more than count={count}")
    if total < count:
        raise TruncatedError(f"run stream describes {total} symbols, fewer than count={count}")

    out = np.zeros(count, dtype=out_dtype)
    if m:
        vals = r[q] - 1
        if out_dtype.kind in "ui" and int(vals.max()) > np.iinfo(out_dtype).max:
            raise FormatError(f"decoded value does not fit {out_dtype}")
        out[csum[:m].astype(np.int64) + np.arange(m)] = vals
    return out
