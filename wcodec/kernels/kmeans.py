"""1-D k-means weight sharing (Deep Compression, Han et al. 2016).

:func:`kmeans_1d` clusters the scalar weights of one tensor into a small
float32 codebook and returns, for every weight, the index of its centroid;
:func:`decode` maps indices back to weights.

Algorithm: Lloyd iterations on sorted weighted points.  With the centroids
sorted, every cluster is a contiguous run of points bounded by the midpoints
between neighbouring centroids (found with ``searchsorted``) and cluster
means come from cumulative sums, so one iteration costs ``O(k log m)`` for
``m`` points.  The points are the distinct values (exact Lloyd) or, for more
than 2**20 weights, the bin means of a 2**18-bin histogram (Lloyd on a
summary that is finer than any cluster; falls back to the exact points when
the histogram is too coarse).  A final pass assigns every weight to its
nearest float32 centroid exactly, whichever summary was used.
"""

from __future__ import annotations

import numpy as np

from wcodec.errors import ConfigError, InputError
from wcodec.kernels.quantize import int_param

__all__ = ["kmeans_1d", "decode", "MAX_CLUSTERS", "INITS"]

#: Largest codebook: indices are stored as uint16.
MAX_CLUSTERS = 1 << 16
#: Centroid initialisations accepted by :func:`kmeans_1d`.
INITS = ("linear", "density", "random")

_F32_MAX = float(np.finfo(np.float32).max)
# Up to this many midpoints, assignment compares against each midpoint in
# turn (about 1 ms per million weights per pass); above it, a lookup table.
_COMPARE_PASSES = 16
_LUT_MIN_N = 1 << 14
_LUT_CELLS = 1 << 16
# Inputs larger than this are clustered on a histogram of this many bins.
_HIST_MIN_N = 1 << 20
_HIST_BINS = 1 << 18


def _floor_to(values: np.ndarray, dtype) -> np.ndarray:
    """Round float64 ``values`` *down* to ``dtype``, so that for any ``v`` of
    that dtype ``v > values`` iff ``v > result`` (and ``<=`` likewise)."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return values
    r = values.astype(dtype)
    high = r.astype(np.float64) > values
    if high.any():
        r[high] = np.nextafter(r[high], dtype.type(-np.inf))
    return r


def _cells(v: np.ndarray, lo: float, hi: float, n_cells: int) -> np.ndarray:
    """int32 cell of every value on a uniform grid of ``n_cells`` over
    ``[lo, hi]`` (``hi > lo``).  Monotone non-decreasing in ``v``."""
    scale = n_cells / (hi - lo)
    if v.dtype == np.float32 and hi - lo < _F32_MAX and scale < 1e30:
        t = v - np.float32(lo)
        t *= np.float32(scale)
    else:
        t = (v.astype(np.float64, copy=False) - lo) * scale
    g = t.astype(np.int32)
    np.minimum(g, n_cells - 1, out=g)
    return g


def _assign(v: np.ndarray, mids: np.ndarray, lo: float, hi: float, out_dtype) -> np.ndarray:
    """For every element of ``v``: how many of the sorted ``mids`` are < it,
    i.e. the index of its nearest centroid (the lowest index among equally
    near ones).  ``mids`` has ``v``'s dtype."""
    if mids.size <= _COMPARE_PASSES:
        acc = np.zeros(v.shape, dtype=out_dtype)
        for m in mids:  # one vectorised pass per midpoint, not per weight
            acc += v > m
        return acc
    if v.size <= _LUT_MIN_N or not hi > lo:
        return np.searchsorted(mids, v, side="left").astype(out_dtype)
    # Guess from a lookup table over a uniform grid, then check the guess
    # against its interval (mids[i-1], mids[i]] and binary-search the few
    # values where it is wrong (cells that contain a midpoint).
    g = _cells(v, lo, hi, _LUT_CELLS)
    cell_lo = lo + np.arange(_LUT_CELLS) * ((hi - lo) / _LUT_CELLS)
    lut = np.searchsorted(mids.astype(np.float64), cell_lo, side="left").astype(out_dtype)
    idx = lut[g]
    del g
    lower = np.concatenate([[-np.inf], mids]).astype(v.dtype)
    upper = np.concatenate([mids, [np.inf]]).astype(v.dtype)
    bad = v <= lower[idx]
    bad |= v > upper[idx]
    wrong = np.flatnonzero(bad)
    if wrong.size:
        idx[wrong] = np.searchsorted(mids, v[wrong], side="left")
    return idx


def _summarise(v: np.ndarray, k: int):
    """Sorted weighted points ``(p, cnt, sums)`` standing for ``v`` and
    whether they are exact (one point per distinct value).

    Large inputs are summarised by a fine uniform histogram (point = mean of
    the values in a bin) when it resolves the data well enough: more
    non-empty bins than clusters and no bin holding more than
    ``1 / (8 k)`` of the values.  Otherwise the distinct values are used.
    """
    n = v.size
    if n > _HIST_MIN_N:
        lo, hi = float(v.min()), float(v.max())
        if hi > lo:
            g = _cells(v, lo, hi, _HIST_BINS)
            cnt = np.bincount(g, minlength=_HIST_BINS)
            nonempty = cnt > 0
            if int(cnt.max()) * 8 * k <= n and np.count_nonzero(nonempty) > k:
                sums = np.bincount(g, weights=v, minlength=_HIST_BINS)[nonempty]
                cnt = cnt[nonempty]
                p = np.maximum.accumulate(sums / cnt)  # bins are ordered; absorb rounding
                return p, cnt, sums, False
    s = np.sort(v)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    p = s[starts].astype(np.float64)
    cnt = np.diff(np.append(starts, n))
    return p, cnt, p * cnt, True


def _init_centroids(v, p, cnt, k: int, init: str, seed: int) -> np.ndarray:
    if init == "linear":
        c = np.linspace(float(v.min()), float(v.max()), k)
    elif init == "density":
        ccum = np.cumsum(cnt)
        target = (np.arange(k) + 0.5) * (v.size / k)
        pos = np.searchsorted(ccum, target, side="right")
        c = p[np.minimum(pos, p.size - 1)]
    else:  # random: the values at k distinct positions drawn with a seeded RNG
        rng = np.random.default_rng(seed)
        c = v[rng.choice(v.size, size=k, replace=False)].astype(np.float64)
    return np.sort(c)


def _lloyd(p, cnt, sums, c: np.ndarray, max_iter: int) -> np.ndarray:
    """Lloyd iterations on sorted weighted points from sorted float64 ``c``.

    Stops when the partition stops changing (a fixed point) or after
    ``max_iter`` updates.  Empty clusters keep their centroid.
    """
    m, k = p.size, c.size
    ccnt = np.concatenate([[0], np.cumsum(cnt)])
    # Prefix sums anchored at the first non-negative point, accumulating away
    # from zero: the sum of a cluster never passes through larger (outlier)
    # magnitudes beyond it, so differences do not cancel catastrophically.
    z = int(np.searchsorted(p, 0.0, side="left"))
    csum = np.zeros(m + 1)
    np.cumsum(sums[z:], out=csum[z + 1:])
    csum[:z] = -np.cumsum(sums[:z][::-1])[::-1]
    edges = np.empty(k + 1, dtype=np.int64)
    edges[0], edges[-1] = 0, m
    prev = None
    for _ in range(max_iter):
        b = np.searchsorted(p, (c[:-1] + c[1:]) * 0.5, side="right")
        if prev is not None and np.array_equal(b, prev):
            break
        prev = b
        edges[1:-1] = b  # cluster j = p[edges[j]:edges[j+1]]
        ne = edges[1:] > edges[:-1]
        lo, hi = edges[:-1][ne], edges[1:][ne]
        mean = (csum[hi] - csum[lo]) / (ccnt[hi] - ccnt[lo])
        c = c.copy()
        # clip absorbs cumulative-sum rounding: a mean lies within its cluster
        c[ne] = np.clip(mean, p[lo], p[hi - 1])
        c.sort()
    return c


def _fit(v: np.ndarray, k: int, init: str, seed: int, max_iter: int) -> np.ndarray:
    """Sorted (non-decreasing) float32 centroids for ``v``, exactly ``k``."""
    if v.size == 0:
        return np.zeros(k, dtype=np.float32)
    p, cnt, sums, exact = _summarise(v, k)
    if exact and p.size <= k:
        # no more distinct values than centroids: every value is a centroid;
        # spare entries repeat the largest value
        u = p.astype(np.float32)
        return np.concatenate([u, np.full(k - u.size, u[-1], dtype=np.float32)])
    c = _lloyd(p, cnt, sums, _init_centroids(v, p, cnt, k, init, seed), max_iter)
    return np.sort(c.astype(np.float32))


def kmeans_1d(values, n_clusters: int, *, init: str = "linear", seed: int = 0,
              max_iter: int = 300, keep_zero: bool = True, codebook_dtype=np.float32):
    """Cluster scalar weights into a shared codebook (weight sharing).

    Parameters
    ----------
    values : array of real numbers, any shape (0-d and empty allowed), finite
        and within float32 range.
    n_clusters : codebook size, 1..65536 (2..65536 with ``keep_zero``).
    init : ``"linear"`` (default; centroids evenly spaced between min and
        max), ``"density"`` (centroids at the ``(i + 0.5) / k`` quantiles of
        the empirical CDF) or ``"random"`` (distinct weights drawn with
        ``numpy.random.default_rng(seed)``).
    seed : used by ``init="random"`` only.  Output is a deterministic
        function of the inputs and the seed.
    max_iter : maximum Lloyd updates (stops earlier at a fixed point).
    keep_zero : if True, index 0 is reserved for the centroid ``0.0``
        (``codebook[0] == 0.0`` always, never moved); exactly the zero weights
        (``-0.0`` included) map to it, and every non-zero weight is clustered
        among ``codebook[1:]``.  If False all weights share all centroids.
    codebook_dtype : ``np.float32`` (default) or ``np.float16``: the centroids
        found are rounded to float16 (nearest even) before the weights are
        assigned, so the codebook can be stored in 2 bytes per entry.

    Returns
    -------
    codebook : float32 array of shape ``(n_clusters,)`` (values float16 can hold,
        with ``codebook_dtype=np.float16``).  ``codebook[1:]``
        (with ``keep_zero``) or all of it (without) is sorted non-decreasing.
        If there are at most as many distinct values as free centroids, each
        distinct value is a centroid (lossless) and spare entries repeat the
        largest; with no values to cluster spare entries are ``0.0``.
    indices : uint8 (``n_clusters <= 256``) or uint16 array of
        ``values.shape``, all ``< n_clusters``.

    Contract: every weight maps to a nearest centroid among those it may use
    (decided on the float32 codebook, midpoints in float64), so the error of
    ``decode(codebook, indices)`` is ``min_j |x - codebook[j]|`` per weight:
    at most half the largest gap between neighbouring usable centroids, or
    the distance from min/max of the data to the outermost centroid.  Zeros
    are exact with ``keep_zero``.  For up to 2**20 weights the centroids are
    the cluster means at an exact Lloyd fixed point (reached unless
    ``max_iter`` runs out); above, at a fixed point on the fine histogram.
    """
    a = np.asarray(values)
    if a.dtype.kind not in "iuf":
        raise InputError(f"values must hold real integers or floats, got dtype {a.dtype}")
    if keep_zero not in (True, False):
        raise ConfigError(f"keep_zero must be a bool, got {keep_zero!r}")
    keep_zero = bool(keep_zero)
    n_clusters = int_param(n_clusters, "n_clusters", 2 if keep_zero else 1, MAX_CLUSTERS)
    if init not in INITS:
        raise ConfigError(f"init must be one of {INITS}, got {init!r}")
    seed = int_param(seed, "seed", 0)
    max_iter = int_param(max_iter, "max_iter", 0)
    idx_dtype = np.uint8 if n_clusters <= 256 else np.uint16
    codebook_dtype = np.dtype(codebook_dtype)
    if codebook_dtype not in (np.float32, np.float16):
        raise ConfigError(f"codebook_dtype must be float32 or float16, got {codebook_dtype}")

    work = np.float32 if a.dtype in (np.float16, np.float32) else np.float64
    flat = a.reshape(-1).astype(work, copy=False)
    if flat.size:
        if not np.isfinite(flat).all():
            raise InputError("values must be finite (no NaN or inf)")
        if work == np.float64 and np.abs(flat).max() > _F32_MAX:
            raise InputError("values exceed the float32 range of the codebook")

    if keep_zero:
        nonzero = flat != 0
        free = flat if nonzero.all() else flat[nonzero]
        cents = _fit(free, n_clusters - 1, init, seed, max_iter)
    else:
        cents = _fit(flat, n_clusters, init, seed, max_iter)
    if codebook_dtype == np.float16:
        with np.errstate(over="ignore"):
            cents[...] = cents.astype(np.float16)  # nearest even; still sorted
        if not np.isfinite(cents).all():
            raise InputError("a centroid is outside the float16 range (|c| > 65504): "
                             "use a float32 codebook")
    codebook = np.concatenate([np.zeros(1, dtype=np.float32), cents]) if keep_zero else cents

    # exact nearest-centroid assignment against the float32 centroids:
    # v goes to centroid i where mids[i-1] < v <= mids[i]
    c64 = cents.astype(np.float64)
    mids = _floor_to((c64[:-1] + c64[1:]) * 0.5, work)
    lo, hi = (float(flat.min()), float(flat.max())) if flat.size else (0.0, 0.0)
    idx = _assign(flat, mids, lo, hi, idx_dtype)
    if keep_zero:
        idx += 1
        idx *= nonzero  # zeros -> index 0
    return codebook, idx.reshape(a.shape)


def decode(codebook, indices) -> np.ndarray:
    """``codebook[indices]`` as a C-contiguous float32 array of ``indices.shape``.

    Raises InputError if ``codebook`` is not 1-D or an index is out of range.
    """
    cb = np.asarray(codebook)
    if cb.ndim != 1 or cb.dtype.kind not in "iuf":
        raise InputError("codebook must be a 1-D array of real numbers")
    cb = cb.astype(np.float32, copy=False)
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise InputError(f"indices must be integers, got dtype {idx.dtype}")
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= cb.size):
        raise InputError(f"indices out of range for a codebook of {cb.size} entries")
    return np.take(cb, idx)
