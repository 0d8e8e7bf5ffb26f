"""Magnitude pruning kernels: boolean keep-masks computed from weight arrays.

Every function here is a pure numpy function.  A *mask* is a ``bool`` array of
the input's shape where ``True`` means *keep* and ``False`` means *prune*
(set to zero).  Pruning changes a kept weight by nothing and a pruned weight
by its own magnitude, so the error bound of any mask is
``|x - x * mask| <= max(|x[~mask]|)`` and, for a threshold mask,
``<= threshold``.

Counting convention shared by all sparsity targets: ``sparsity`` in [0, 1]
asks for ``prune_count(n, sparsity) == floor(sparsity * n)`` pruned items out
of ``n`` (see :func:`prune_count` for the float-rounding tolerance).
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np

from wcodec.errors import ConfigError, InputError

__all__ = [
    "prune_count",
    "magnitude_mask",
    "global_threshold",
    "global_magnitude_masks",
    "structured_mask",
]


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------

def _real_array(x, name: str = "x") -> np.ndarray:
    """``np.asarray(x)`` checked to hold real numbers (int or float) without NaN."""
    try:
        a = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic array-likes
        raise InputError(f"{name} cannot be converted to an array: {exc}") from exc
    if a.dtype.kind not in "iuf":
        raise InputError(f"{name} must hold real integers or floats, got dtype {a.dtype}")
    if a.dtype.kind == "f" and a.size and np.isnan(a).any():
        raise InputError(f"{name} contains NaN")
    return a


def _magnitudes(a: np.ndarray) -> np.ndarray:
    """``|a|`` as a fresh float array (integers go through float64 so that
    ``abs(int8(-128))`` does not wrap)."""
    if a.dtype.kind == "f":
        return np.abs(a)
    return np.abs(a.astype(np.float64))


def _check_sparsity(sparsity) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real):
        raise ConfigError(f"sparsity must be a real number in [0, 1], got {sparsity!r}")
    s = float(sparsity)
    if not (0.0 <= s <= 1.0):  # also rejects NaN
        raise ConfigError(f"sparsity must be in [0, 1], got {sparsity!r}")
    return s


def _check_axis(axis, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ConfigError(f"axis must be an integer, got {axis!r}")
    ax = int(axis)
    if not -ndim <= ax < ndim:
        raise ConfigError(f"axis {axis} is out of range for a {ndim}-d array")
    return ax % ndim


def _threshold_as(t: float, dtype):
    """``t`` rounded *down* into ``dtype``, so that ``m > result`` iff ``m > t``
    for every ``m`` of that dtype (a plain cast could round ``t`` up)."""
    dt = np.dtype(dtype)
    big = float(np.finfo(dt).max)
    if t > big:          # only infinite magnitudes are above t
        return dt.type(big)
    if t < -big:         # every magnitude is above t
        return dt.type(-np.inf)
    r = dt.type(t)
    if float(r) > t:
        r = np.nextafter(r, dt.type(-np.inf))
    return r


def prune_count(n: int, sparsity: float) -> int:
    """Number of items pruned out of ``n`` for a target ``sparsity``.

    ``floor(sparsity * n)``, except that a product within a few ulps below an
    integer counts as that integer (``0.29 * 100 == 28.999999999999996`` gives
    29), so decimal sparsities behave as written.  Result is in ``[0, n]``.
    """
    s = _check_sparsity(sparsity)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ConfigError(f"n must be a non-negative integer, got {n!r}")
    n = int(n)
    p = s * n
    k = math.floor(p + 8.0 * np.finfo(np.float64).eps * max(p, 1.0))
    return max(0, min(n, k))


# ---------------------------------------------------------------------------
# unstructured pruning
# ---------------------------------------------------------------------------

def _exact_count_mask(mag: np.ndarray, k: int) -> np.ndarray:
    """Flat keep-mask pruning exactly the ``k`` smallest of the flat ``mag``;
    among equal magnitudes the lowest flat indices are pruned first."""
    n = mag.size
    if k <= 0:
        return np.ones(n, dtype=bool)
    if k >= n:
        return np.zeros(n, dtype=bool)
    t = np.partition(mag, k - 1)[k - 1]          # k-th smallest magnitude
    keep = mag > t
    n_below = n - int(np.count_nonzero(keep)) - int(np.count_nonzero(mag == t))
    ties = np.flatnonzero(mag == t)
    need = k - n_below                            # ties to prune, 1 <= need <= len(ties)
    keep[ties[need:]] = True
    return keep


def magnitude_mask(x, *, sparsity: float | None = None,
                   threshold: float | None = None) -> np.ndarray:
    """Unstructured magnitude pruning mask of ``x`` (``True`` = keep).

    Give exactly one of:

    * ``sparsity`` in [0, 1]: exactly ``prune_count(x.size, sparsity)``
      weights (``floor(sparsity * n)``) are pruned, the smallest magnitudes
      first; among equal magnitudes the lowest C-order indices are pruned
      first, so the result is deterministic and the sparsity exact.
    * ``threshold`` (any non-NaN real): weights with ``|x| <= threshold`` are
      pruned, the rest kept (``threshold=0`` prunes exactly the zeros, a
      negative threshold keeps everything).

    Every kept magnitude is >= every pruned magnitude.  Error bound: a pruned
    weight's error is its magnitude, i.e. ``<= threshold`` or ``<=`` the
    largest pruned magnitude.  Returns a C-contiguous bool array of
    ``x.shape`` (0-d and empty inputs allowed).
    """
    a = _real_array(x)
    if (sparsity is None) == (threshold is None):
        raise ConfigError("give exactly one of sparsity= or threshold=")
    mag = _magnitudes(a).reshape(-1)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) \
                or math.isnan(float(threshold)):
            raise ConfigError(f"threshold must be a real number, got {threshold!r}")
        return (mag > _threshold_as(float(threshold), mag.dtype)).reshape(a.shape)
    k = prune_count(mag.size, sparsity)
    return _exact_count_mask(mag, k).reshape(a.shape)


# ---------------------------------------------------------------------------
# global pruning across tensors
# ---------------------------------------------------------------------------

def _array_list(arrays) -> list[np.ndarray]:
    if isinstance(arrays, np.ndarray) or not isinstance(arrays, Sequence):
        raise InputError("arrays must be a list (or tuple) of arrays")
    return [_real_array(a, f"arrays[{i}]") for i, a in enumerate(arrays)]


def _all_magnitudes(arrs: list[np.ndarray]) -> np.ndarray:
    """One flat array of all magnitudes, in a float dtype wide enough for all."""
    if not arrs:
        return np.zeros(0, dtype=np.float64)
    dt = np.result_type(*[a.dtype if a.dtype.kind == "f" else np.float64 for a in arrs])
    out = np.empty(sum(a.size for a in arrs), dtype=dt)
    pos = 0
    for a in arrs:  # loop over tensors, not weights
        src = a.reshape(-1)
        if src.dtype.kind != "f":
            src = src.astype(np.float64)
        np.abs(src, out=out[pos:pos + a.size])
        pos += a.size
    return out


def global_threshold(arrays: Sequence, sparsity: float) -> float:
    """One magnitude threshold across several tensors (global pruning).

    With ``n`` the total number of weights and ``k = prune_count(n, sparsity)``,
    returns the ``k``-th smallest magnitude over all tensors (``-inf`` when
    ``k == 0``).  Using it as ``magnitude_mask(a, threshold=t)`` on every
    tensor prunes at least ``k`` weights in total, more only when magnitudes
    tie with ``t``; use :func:`global_magnitude_masks` for an exact count.
    Memory: one flat magnitude buffer of ``n`` floats (no other copies).
    """
    arrs = _array_list(arrays)
    mag = _all_magnitudes(arrs)
    k = prune_count(mag.size, sparsity)
    if k == 0:
        return float("-inf")
    mag.partition(k - 1)  # in place: the buffer is ours
    return float(mag[k - 1])


def global_magnitude_masks(arrays: Sequence, sparsity: float) -> list[np.ndarray]:
    """Global pruning masks with an exact count.

    Prunes exactly ``prune_count(n, sparsity)`` weights in total (``n`` = total
    size), the smallest magnitudes across all tensors; ties are pruned in the
    order (tensor position, C-order index).  Returns one keep-mask per input,
    each of its tensor's shape.
    """
    arrs = _array_list(arrays)
    mag = _all_magnitudes(arrs)
    k = prune_count(mag.size, sparsity)
    flat = _exact_count_mask(mag, k)
    masks, pos = [], 0
    for a in arrs:
        masks.append(np.ascontiguousarray(flat[pos:pos + a.size]).reshape(a.shape))
        pos += a.size
    return masks


# ---------------------------------------------------------------------------
# structured pruning
# ---------------------------------------------------------------------------

_NORMS = ("l1", "l2")


def structured_mask(x, *, sparsity: float, axis: int = 0, norm: str = "l1") -> np.ndarray:
    """Structured pruning: remove whole slices of ``x`` along ``axis``.

    The ``C = x.shape[axis]`` slices (output channels / filters / rows for
    ``axis=0``) are ranked by their L1 (``norm="l1"``) or L2 (``"l2"``) norm
    over all other axes; exactly ``prune_count(C, sparsity)`` slices with the
    smallest norms are pruned, ties broken by lower slice index first.
    Returns a full-shape, C-contiguous bool mask (``True`` = keep) that is
    constant over each slice.  A 0-d ``x`` is a single slice (``axis`` is
    ignored).  Error bound: a pruned slice loses its whole content, so its
    error norm equals its norm, which is <= every kept slice's norm.
    """
    a = _real_array(x)
    if norm not in _NORMS:
        raise ConfigError(f"norm must be one of {_NORMS}, got {norm!r}")
    if a.ndim == 0:
        rows = a.reshape(1, 1)
        ax = 0
    else:
        ax = _check_axis(axis, a.ndim)
        inner = math.prod(a.shape[:ax] + a.shape[ax + 1:])
        rows = np.moveaxis(a, ax, 0).reshape(a.shape[ax], inner)
    rows = rows.astype(np.float64, copy=False)
    if norm == "l1":
        score = np.abs(rows).sum(axis=1)
    else:  # ranking by the squared norm is the same as by the norm
        score = np.square(rows).sum(axis=1)
    c = score.size
    k = prune_count(c, sparsity)
    keep = np.ones(c, dtype=bool)
    if k:
        order = np.argsort(score, kind="stable")  # C values only
        keep[order[:k]] = False
    if a.ndim == 0:
        return np.asarray(bool(keep[0]))
    bshape = [1] * a.ndim
    bshape[ax] = c
    return np.broadcast_to(keep.reshape(bshape), a.shape).copy()
