"""Tests of the lossy array->array kernels: pruning masks, 1-D k-means weight
sharing and scalar quantization (uniform, ternary, fixed-step)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from wcodec.errors import ConfigError, InputError
from wcodec.kernels import kmeans, quantize
from wcodec.kernels.kmeans import decode, kmeans_1d
from wcodec.kernels.prune import (global_magnitude_masks, global_threshold, magnitude_mask,
                                  prune_count, structured_mask)
from wcodec.kernels.quantize import (QuantResult, StepResult, TernaryResult, dequantize,
                                     quantize_step, quantize_ternary, quantize_uniform)

SETTINGS = settings(max_examples=80, deadline=None)

# -------------------------------------------------------------------------
# strategies
# -------------------------------------------------------------------------

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)
SPARSITY = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 0.1, 0.29, 0.5, 0.7, 1.0]))

# finite float32 values, sometimes from a tiny set so that ties are common
F32 = st.one_of(
    st.floats(-1e6, 1e6, width=32),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, -2.0, 3.0]),
)
F32_FULL = st.floats(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def real_arrays(draw, shape=SHAPES, elements=F32, dtypes=(np.float32, np.float64)):
    dt = draw(st.sampled_from(dtypes))
    return draw(hnp.arrays(dt, draw(shape) if not isinstance(shape, tuple) else shape,
                           elements=elements))


@st.composite
def array_and_axis(draw, min_dims=1, elements=F32):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=0, max_side=6))
    a = draw(hnp.arrays(np.float32, shape, elements=elements))
    axis = draw(st.integers(-a.ndim, a.ndim - 1)) if a.ndim else 0
    return a, axis


def _mag(a):
    return np.abs(np.asarray(a, dtype=np.float64))


# -------------------------------------------------------------------------
# prune
# -------------------------------------------------------------------------

@pytest.mark.parametrize("n,s,k", [(100, 0.29, 29), (10, 0.7, 7), (7, 0.5, 3), (0, 0.5, 0),
                                   (5, 1.0, 5), (5, 0.0, 0), (3, 0.999, 2)])
def test_prune_count_examples(n, s, k):
    assert prune_count(n, s) == k


@given(st.integers(0, 10**9), SPARSITY)
def test_prune_count_is_floor(n, s):
    k = prune_count(n, s)
    assert 0 <= k <= n
    assert k == math.floor(s * n) or (k == math.floor(s * n) + 1 and k - s * n < 1e-6)


@SETTINGS
@given(real_arrays(dtypes=(np.float32, np.float64, np.int8, np.int32),
                   elements=st.integers(-128, 127)) | real_arrays(), SPARSITY)
def test_magnitude_mask_exact_sparsity_keeps_largest(x, s):
    mask = magnitude_mask(x, sparsity=s)
    assert mask.dtype == bool and mask.shape == x.shape and mask.flags.c_contiguous
    n = x.size
    assert int(np.count_nonzero(~mask)) == prune_count(n, s)
    mag = _mag(x).reshape(-1)
    m = mask.reshape(-1)
    if m.any() and (~m).any():
        t = mag[~m].max()
        assert mag[m].min() >= t
        # ties at the cut are pruned in C order: no kept tie before a pruned one
        ties = np.flatnonzero(mag == t)
        kept_ties = m[ties]
        assert not np.any(kept_ties[:-1] & ~kept_ties[1:])
    assert np.array_equal(mask, magnitude_mask(x, sparsity=s))


@SETTINGS
@given(real_arrays(), st.one_of(st.floats(-1, 10), st.just(0.0)))
def test_magnitude_mask_threshold(x, t):
    mask = magnitude_mask(x, threshold=t)
    assert mask.shape == x.shape and mask.dtype == bool
    assert np.array_equal(mask, _mag(x) > t)
    # error bound: a pruned weight errs by its magnitude, <= threshold
    assert np.all(_mag(x * ~mask) <= max(t, 0))


def test_magnitude_mask_edges_and_errors():
    assert magnitude_mask(np.float32(3), sparsity=1.0).shape == ()
    assert not magnitude_mask(np.float32(3), sparsity=1.0)
    assert magnitude_mask(np.zeros((0, 4)), sparsity=0.5).shape == (0, 4)
    # abs(int8(-128)) must not wrap
    m = magnitude_mask(np.array([-128, 1, 2], dtype=np.int8), sparsity=1 / 3)
    assert m.tolist() == [True, False, True]
    # all ties: the first floor(s*n) in C order are pruned
    m = magnitude_mask(np.ones(10), sparsity=0.3)
    assert m.tolist() == [False] * 3 + [True] * 7
    with pytest.raises(ConfigError):
        magnitude_mask(np.ones(3))
    with pytest.raises(ConfigError):
        magnitude_mask(np.ones(3), sparsity=0.5, threshold=0.1)
    for bad in (-0.1, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ConfigError):
            magnitude_mask(np.ones(3), sparsity=bad)
    with pytest.raises(ConfigError):
        magnitude_mask(np.ones(3), threshold=float("nan"))
    with pytest.raises(InputError):
        magnitude_mask(np.array([1.0, np.nan]), sparsity=0.5)
    with pytest.raises(InputError):
        magnitude_mask(np.ones(3, dtype=complex), sparsity=0.5)
    with pytest.raises(InputError):
        magnitude_mask(np.ones(3, dtype=bool), sparsity=0.5)


@SETTINGS
@given(st.lists(real_arrays(), min_size=0, max_size=4), SPARSITY)
def test_global_threshold_and_masks(arrays, s):
    mags = np.concatenate([_mag(a).reshape(-1) for a in arrays] + [np.zeros(0)])
    n = mags.size
    k = prune_count(n, s)
    t = global_threshold(arrays, s)
    if k == 0:
        assert t == -np.inf
    else:
        assert t == np.sort(mags)[k - 1]
        pruned = sum(int(np.count_nonzero(~magnitude_mask(a, threshold=t))) for a in arrays)
        assert pruned >= k
    masks = global_magnitude_masks(arrays, s)
    assert [m.shape for m in masks] == [a.shape for a in arrays]
    flat = np.concatenate([m.reshape(-1) for m in masks] + [np.zeros(0, bool)])
    assert int(np.count_nonzero(~flat)) == k
    # same as pruning the concatenation in one go
    assert np.array_equal(flat, magnitude_mask(mags, sparsity=s))


def test_global_errors():
    with pytest.raises(InputError):
        global_threshold(np.ones(3), 0.5)
    with pytest.raises(InputError):
        global_threshold([np.ones(3), np.array([np.nan])], 0.5)
    assert global_threshold([], 0.5) == -np.inf
    # mixed dtypes, ints promoted without wrap
    t = global_threshold([np.array([-128], np.int8), np.array([0.5, 3.0], np.float32)], 0.7)
    assert t == 3.0


def _slice_norms(x, axis, norm):
    rows = np.moveaxis(np.asarray(x, np.float64), axis, 0).reshape(x.shape[axis], -1)
    return np.abs(rows).sum(1) if norm == "l1" else np.sqrt((rows ** 2).sum(1))


@SETTINGS
@given(array_and_axis(), SPARSITY, st.sampled_from(["l1", "l2"]))
def test_structured_mask(xa, s, norm):
    x, axis = xa
    mask = structured_mask(x, sparsity=s, axis=axis, norm=norm)
    assert mask.shape == x.shape and mask.dtype == bool and mask.flags.c_contiguous
    c = x.shape[axis]
    keep = np.ones(c, dtype=bool)
    if x.size:
        # constant over each slice
        rows = np.moveaxis(mask, axis, 0).reshape(c, -1)
        assert np.all(rows == rows[:, :1])
        keep = rows[:, 0]
        assert int(np.count_nonzero(~keep)) == prune_count(c, s)
        norms = _slice_norms(x, axis, norm)
        if keep.any() and (~keep).any():
            assert norms[keep].min() >= norms[~keep].max() * (1 - 1e-12)
    assert np.array_equal(mask, structured_mask(x, sparsity=s, axis=axis, norm=norm))


def test_structured_mask_examples_and_errors():
    w = np.array([[1, 1, 1, 1], [3, 0, 0, 0], [0.1, 0, 0, 0]], dtype=np.float32)
    # l1: row norms 4, 3, 0.1 ; l2: 2, 3, 0.1
    assert structured_mask(w, sparsity=0.5, norm="l1")[:, 0].tolist() == [True, True, False]
    assert structured_mask(w, sparsity=0.67, norm="l1")[:, 0].tolist() == [True, False, False]
    assert structured_mask(w, sparsity=0.67, norm="l2")[:, 0].tolist() == [False, True, False]
    # along columns, ties broken by lower index first
    m = structured_mask(w, sparsity=0.5, axis=1)
    assert m[0].tolist() == [True, False, False, True]
    assert structured_mask(np.float32(2), sparsity=1.0).shape == ()
    assert structured_mask(np.zeros((0, 3)), sparsity=0.5).shape == (0, 3)
    with pytest.raises(ConfigError):
        structured_mask(w, sparsity=0.5, norm="linf")
    with pytest.raises(ConfigError):
        structured_mask(w, sparsity=0.5, axis=2)
    with pytest.raises(ConfigError):
        structured_mask(w, sparsity=2)


# -------------------------------------------------------------------------
# kmeans
# -------------------------------------------------------------------------

def _check_nearest(values, codebook, idx, keep_zero):
    v = np.asarray(values, np.float64).reshape(-1)
    cb = codebook.astype(np.float64)
    i = idx.reshape(-1).astype(np.int64)
    usable = cb[1:] if keep_zero else cb
    off = 1 if keep_zero else 0
    if keep_zero:
        assert np.all((i == 0) == (v == 0))
    sel = (v != 0) if keep_zero else np.ones(v.size, bool)
    if usable.size and sel.any():
        d_best = np.abs(v[sel, None] - usable[None, :]).min(axis=1)
        d_got = np.abs(v[sel] - cb[i[sel]])
        assert np.all(d_got <= d_best)
        assert np.all(i[sel] >= off)


@SETTINGS
@given(real_arrays() | real_arrays(elements=F32_FULL)
       | real_arrays(elements=st.integers(-300, 300), dtypes=(np.int16,)),
       st.integers(1, 40), st.sampled_from(kmeans.INITS), st.booleans(), st.integers(0, 2**32))
def test_kmeans_contract(x, k, init, keep_zero, seed):
    k = max(k, 2) if keep_zero else k
    cb, idx = kmeans_1d(x, k, init=init, keep_zero=keep_zero, seed=seed)
    assert cb.dtype == np.float32 and cb.shape == (k,) and cb.flags.c_contiguous
    assert idx.dtype == np.uint8 and idx.shape == np.shape(x) and idx.flags.c_contiguous
    assert np.all(idx < k)
    free = cb[1:] if keep_zero else cb
    assert np.all(np.diff(free) >= 0)
    if keep_zero:
        assert cb[0] == 0.0 and not np.signbit(cb[0])
    _check_nearest(x, cb, idx, keep_zero)
    # lossless when there are no more distinct values than usable centroids
    vals = np.asarray(x, np.float32).reshape(-1)
    if keep_zero:
        vals = vals[vals != 0]
    if np.unique(vals).size <= free.size:
        assert np.array_equal(decode(cb, idx), np.asarray(x, np.float32))
    # deterministic for a seed
    cb2, idx2 = kmeans_1d(x, k, init=init, keep_zero=keep_zero, seed=seed)
    assert np.array_equal(cb, cb2) and np.array_equal(idx, idx2)


@pytest.mark.parametrize("init", kmeans.INITS)
def test_kmeans_converges_to_cluster_means(init):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(5000).astype(np.float32)
    x[rng.random(5000) < 0.3] = 0
    cb, idx = kmeans_1d(x, 9, init=init, max_iter=10_000)
    _check_nearest(x, cb, idx, True)
    for j in range(1, 9):
        members = x[idx == j].astype(np.float64)
        if members.size:
            assert abs(members.mean() - cb[j]) <= 1e-5 * max(1.0, abs(cb[j]))
    err = np.mean((decode(cb, idx) - x) ** 2)
    assert err < 0.03  # 8-level Lloyd-Max on N(0, 1) is ~0.035, times 0.7


def test_kmeans_random_init_depends_on_seed_only():
    x = np.random.default_rng(2).standard_normal(3000)
    a = kmeans_1d(x, 8, init="random", seed=5, max_iter=1)
    b = kmeans_1d(x, 8, init="random", seed=5, max_iter=1)
    c = kmeans_1d(x, 8, init="random", seed=6, max_iter=1)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_kmeans_init_positions():
    x = np.arange(1, 101, dtype=np.float32)
    cb, _ = kmeans_1d(x, 5, init="linear", max_iter=0, keep_zero=False)
    assert np.allclose(cb, np.linspace(1, 100, 5))
    cb, _ = kmeans_1d(x, 4, init="density", max_iter=0, keep_zero=False)
    assert cb.tolist() == [13.0, 38.0, 63.0, 88.0]


def test_kmeans_lookup_table_assignment():
    # > 16 midpoints and > 2**14 values: the lookup-table assignment path
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(40_000) * rng.choice([1, 10, 100], 40_000)).astype(np.float32)
    x[:100] = 0
    for k, keep_zero, dt in [(64, True, np.float32), (300, False, np.float32),
                             (40, True, np.float64)]:
        cb, idx = kmeans_1d(x.astype(dt), k, keep_zero=keep_zero, max_iter=20)
        assert idx.dtype == (np.uint8 if k <= 256 else np.uint16)
        _check_nearest(x, cb, idx, keep_zero)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kmeans_large_input_histogram_path(dtype):
    # > 2**20 values: Lloyd runs on a fine histogram; assignment stays exact
    rng = np.random.default_rng(4)
    x = rng.standard_normal(1_200_000).astype(dtype)
    x[rng.random(x.size) < 0.5] = 0
    cb, idx = kmeans_1d(x, 16)
    assert cb[0] == 0 and np.all(idx[x == 0] == 0) and np.all(idx[x != 0] > 0)
    # sorted usable codebook: nearest iff not worse than both neighbours
    v, i = x.astype(np.float64), idx.astype(np.int64)
    sel = x != 0
    v, i = v[sel], i[sel]
    c = cb.astype(np.float64)
    d = np.abs(v - c[i])
    assert np.all(d <= np.abs(v - c[np.minimum(i + 1, 15)]))
    assert np.all(d <= np.where(i > 1, np.abs(v - c[np.maximum(i - 1, 1)]), np.inf))
    # same quality as exact Lloyd on a subsample within a few percent
    sub = x[:200_000]
    cb_s, idx_s = kmeans_1d(sub, 16)
    mse_full = np.mean((decode(cb, idx)[:200_000] - sub) ** 2)
    mse_sub = np.mean((decode(cb_s, idx_s) - sub) ** 2)
    assert mse_full <= mse_sub * 1.05


def test_kmeans_large_input_extreme_range():
    # the histogram is far too coarse here: falls back to exact Lloyd
    x = np.random.default_rng(5).standard_normal(1_100_000).astype(np.float32)
    x[0], x[1] = 3e38, -3e38
    cb, idx = kmeans_1d(x, 20, init="density", max_iter=30)
    assert cb[1] == np.float32(-3e38) and cb[-1] == np.float32(3e38)
    assert idx[0] == 19 and idx[1] == 1
    # outliers cost the data nothing but their two centroids (about 0.0092
    # for 17 clusters on N(0, 1)): the prefix sums must not cancel
    assert np.mean((decode(cb, idx)[2:] - x[2:]) ** 2) < 0.012


def test_kmeans_edge_cases():
    cb, idx = kmeans_1d(np.zeros(0, np.float32), 4)
    assert cb.tolist() == [0, 0, 0, 0] and idx.shape == (0,)
    cb, idx = kmeans_1d(np.zeros((3, 2)), 4)
    assert np.all(cb == 0) and np.all(idx == 0) and idx.shape == (3, 2)
    cb, idx = kmeans_1d(np.full(7, 2.5), 4)
    assert cb.tolist() == [0, 2.5, 2.5, 2.5] and np.all(idx == 1)
    cb, idx = kmeans_1d(np.full(7, 2.5), 1, keep_zero=False)
    assert cb.tolist() == [2.5] and np.all(idx == 0)
    cb, idx = kmeans_1d(np.float32(-1.5), 3)
    assert idx.shape == () and cb[idx] == -1.5
    cb, idx = kmeans_1d(np.array([1, 0, -1, 0]), 2)  # one free centroid
    assert cb[0] == 0 and idx.tolist() == [1, 0, 1, 0] and cb[1] == 0.0
    cb, idx = kmeans_1d(np.linspace(-1, 1, 1000), 1001)
    assert idx.dtype == np.uint16 and np.array_equal(decode(cb, idx),
                                                     np.linspace(-1, 1, 1000, dtype=np.float32))
    cb, idx = kmeans_1d(np.arange(10.0), 3, keep_zero=False, max_iter=0)
    assert np.array_equal(cb, [0, 4.5, 9])


def test_kmeans_errors():
    x = np.ones(4)
    for k in (0, 1, 65537, 2.0, True):
        with pytest.raises(ConfigError):
            kmeans_1d(x, k)
    with pytest.raises(ConfigError):
        kmeans_1d(x, 4, init="kmeans++")
    with pytest.raises(ConfigError):
        kmeans_1d(x, 4, seed=-1)
    with pytest.raises(ConfigError):
        kmeans_1d(x, 4, max_iter=-1)
    for bad in (np.array([1.0, np.nan]), np.array([np.inf]), np.array([1e300]),
                np.array(["a"]), np.ones(2, complex)):
        with pytest.raises(InputError):
            kmeans_1d(bad, 4)


def test_decode():
    cb = np.array([0, 1.5, -2], np.float32)
    out = decode(cb, np.array([[2, 0], [1, 1]], np.uint8))
    assert out.dtype == np.float32 and out.tolist() == [[-2, 0], [1.5, 1.5]]
    assert decode(cb, np.zeros(0, np.uint16)).shape == (0,)
    with pytest.raises(InputError):
        decode(cb, np.array([3]))
    with pytest.raises(InputError):
        decode(cb, np.array([-1]))
    with pytest.raises(InputError):
        decode(cb, np.array([0.0]))
    with pytest.raises(InputError):
        decode(cb.reshape(3, 1), np.array([0]))


# -------------------------------------------------------------------------
# quantize
# -------------------------------------------------------------------------

def _per_element(param, shape, granularity, axis, group_size):
    """Expand a per-unit parameter to the full shape (test-side reference)."""
    param = np.asarray(param, np.float64)
    if granularity == "tensor" or len(shape) == 0:
        return np.broadcast_to(param[0] if param.size else 0.0, shape)
    if granularity == "channel":
        b = [1] * len(shape)
        b[axis] = shape[axis]
        return np.broadcast_to(param.reshape(b), shape)
    n = math.prod(shape)
    return np.repeat(param, group_size)[:n].reshape(shape)


def _rounding_slack(x):
    return np.abs(np.asarray(x, np.float64)) * 2.0 ** -23 + 1e-44


@SETTINGS
@given(array_and_axis(min_dims=0, elements=st.one_of(F32, F32_FULL)),
       st.integers(2, 8), st.sampled_from(quantize.SCHEMES),
       st.sampled_from(quantize.GRANULARITIES), st.integers(1, 10))
def test_quantize_uniform_contract(xa, bits, scheme, granularity, gs):
    x, axis = xa
    group_size = gs if granularity == "group" else None
    r = quantize_uniform(x, bits, scheme=scheme, granularity=granularity,
                         group_size=group_size, axis=axis)
    assert isinstance(r, QuantResult) and r.bits == bits and r.scheme == scheme
    q = r.q
    assert q.shape == x.shape and q.flags.c_contiguous
    if scheme == "symmetric":
        qmax = 2 ** (bits - 1) - 1
        assert q.dtype == np.int8 and r.zero_point is None
        assert np.all(np.abs(q.astype(int)) <= qmax)
    else:
        assert q.dtype == np.uint8 and r.zero_point.dtype == np.uint8
        assert np.all(q <= 2 ** bits - 1) and np.all(r.zero_point <= 2 ** bits - 1)
        assert r.zero_point.shape == r.scale.shape
    n_units = {"tensor": 1,
               "channel": x.shape[r.axis] if x.ndim else 1,
               "group": -(-x.size // gs)}[granularity]
    assert r.scale.dtype == np.float32 and r.scale.shape == (n_units,)
    assert np.all(r.scale > 0) and r.scale.flags.c_contiguous
    d = dequantize(r)
    assert d.dtype == np.float32 and d.shape == x.shape and d.flags.c_contiguous
    assert np.array_equal(d, r.dequantize())
    s = _per_element(r.scale, x.shape, granularity, r.axis, gs)
    err = np.abs(x.astype(np.float64) - d.astype(np.float64))
    assert np.all(err <= s / 2 + _rounding_slack(x))
    # zero stays exactly zero
    assert np.all(d[x == 0] == 0)


def test_quantize_uniform_values():
    x = np.array([[-1.0, 0.0, 0.25, 1.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    r = quantize_uniform(x, 8, granularity="channel")
    assert r.scale[1] == 1.0 and np.all(r.q[1] == 0)
    assert r.q[0].tolist() == [-127, 0, 32, 127]
    assert r.scale[0] >= np.float32(1 / 127) and r.scale[0] == np.float32(1 / 127) or \
        r.scale[0] == np.nextafter(np.float32(1 / 127), np.float32(1))  # rounded up
    r = quantize_uniform(x, 2, scheme="affine")
    assert r.zero_point.tolist() == [1] and r.q[0].tolist() == [0, 1, 1, 2]
    # an all-positive channel still represents zero exactly
    r = quantize_uniform(np.array([2.0, 3.0, 4.0]), 3, scheme="affine")
    assert r.zero_point[0] == 0 and np.allclose(r.dequantize(), [2, 3, 4], atol=r.scale[0] / 2)
    # 1-D per channel: one scale per element; 0-d: one channel
    assert quantize_uniform(np.arange(5.0), 4, granularity="channel").scale.shape == (5,)
    r = quantize_uniform(np.float64(-3.0), 4, granularity="channel", axis=3)
    assert r.q.shape == () and r.scale.shape == (1,) and r.dequantize() == -3.0
    # empty inputs
    assert quantize_uniform(np.zeros((0, 3)), 4, granularity="channel").scale.shape == (0,)
    r = quantize_uniform(np.zeros((3, 0)), 4, granularity="channel")
    assert r.scale.tolist() == [1, 1, 1] and r.dequantize().shape == (3, 0)
    assert quantize_uniform(np.zeros(0), 4, granularity="group", group_size=4).scale.shape == (0,)
    # groups follow C order, last one short
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    r = quantize_uniform(x, 8, granularity="group", group_size=4)
    assert r.scale.shape == (3,) and np.isclose(r.scale[2], 9 / 127, rtol=1e-6)


def test_quantize_uniform_errors():
    x = np.ones((2, 3))
    for bits in (1, 9, 4.0, True):
        with pytest.raises(ConfigError):
            quantize_uniform(x, bits)
    with pytest.raises(ConfigError):
        quantize_uniform(x, 4, scheme="asym")
    with pytest.raises(ConfigError):
        quantize_uniform(x, 4, granularity="row")
    with pytest.raises(ConfigError):
        quantize_uniform(x, 4, granularity="group")
    with pytest.raises(ConfigError):
        quantize_uniform(x, 4, granularity="group", group_size=0)
    with pytest.raises(ConfigError):
        quantize_uniform(x, 4, group_size=8)
    with pytest.raises(ConfigError):
        quantize_uniform(x, 4, granularity="channel", axis=2)
    for bad in (np.array([np.nan]), np.array([-np.inf]), np.array([1e39]), np.array(["x"])):
        with pytest.raises(InputError):
            quantize_uniform(bad, 4)
    with pytest.raises(InputError):
        dequantize("not a result")
    r = quantize_uniform(x, 4, scheme="affine", granularity="channel")
    for bad in (dict(scale=np.ones(3, np.float32)), dict(zero_point=np.zeros(1, np.uint8)),
                dict(q=r.q.astype(np.float32)), dict(granularity="row"), dict(axis=7)):
        broken = QuantResult(**{**r.__dict__, **bad})
        with pytest.raises(InputError):
            dequantize(broken)
    with pytest.raises(InputError):
        dequantize(StepResult(q=np.zeros((2, 2), np.int32), step=np.ones(1, np.float32)))


@SETTINGS
@given(array_and_axis(min_dims=0), st.sampled_from(["tensor", "channel"]),
       st.sampled_from([0.0, 0.5, 0.7, 1.0, 2.0]))
def test_quantize_ternary_contract(xa, granularity, ratio):
    x, axis = xa
    r = quantize_ternary(x, granularity=granularity, axis=axis, threshold_ratio=ratio)
    assert isinstance(r, TernaryResult)
    assert r.q.dtype == np.int8 and r.q.shape == x.shape and r.q.flags.c_contiguous
    assert set(np.unique(r.q).tolist()) <= {-1, 0, 1}
    assert r.scale.dtype == np.float32
    gran = "tensor" if x.ndim == 0 else granularity
    mag = _mag(x)
    if gran == "tensor":
        units = [np.ones(x.shape, bool)]
    else:
        units = []
        for c in range(x.shape[r.axis]):
            sel = np.zeros(x.shape, bool)
            sel[(slice(None),) * r.axis + (c,)] = True
            units.append(sel)
    assert r.scale.shape == (len(units),)
    for sel, s in zip(units, r.scale):
        m = mag[sel]
        thr = ratio * (m.mean() if m.size else 0.0)
        kept = m > thr
        assert np.array_equal(r.q[sel] != 0, kept)
        assert np.all(np.sign(x[sel][kept]) == r.q[sel][kept])
        expect = m[kept].mean() if kept.any() else 0.0
        assert np.isclose(s, expect, rtol=1e-5)
    d = dequantize(r)
    assert d.dtype == np.float32 and d.shape == x.shape
    assert np.allclose(d, r.q * _per_element(r.scale, x.shape, gran, r.axis, None), rtol=1e-6)


def test_quantize_ternary_examples_and_errors():
    r = quantize_ternary(np.array([1.0, -1.0, 0.1, 0.0]))  # mean|x| = .525, thr = .3675
    assert r.q.tolist() == [1, -1, 0, 0] and r.scale.tolist() == [1.0]
    r = quantize_ternary(np.zeros((2, 3)), granularity="channel")
    assert r.scale.tolist() == [0, 0] and np.all(r.dequantize() == 0)
    assert quantize_ternary(np.zeros((0, 3)), granularity="channel").scale.shape == (0,)
    with pytest.raises(ConfigError):
        quantize_ternary(np.ones(3), granularity="group")
    with pytest.raises(ConfigError):
        quantize_ternary(np.ones(3), threshold_ratio=-0.1)
    with pytest.raises(ConfigError):
        quantize_ternary(np.ones(3), threshold_ratio=float("inf"))


@SETTINGS
@given(array_and_axis(min_dims=0, elements=st.one_of(F32, F32_FULL)),
       st.booleans(), st.one_of(st.floats(0.01, 4.0), st.sampled_from([0.1, 1.0])))
def test_quantize_step_contract(xa, per_tensor, ratio):
    x, axis = xa
    ax = None if per_tensor else axis
    scale = float(np.abs(x).max()) if x.size else 1.0
    for kwargs in ({"step_ratio": ratio}, {"step": min(max(ratio * scale, 1e-3), 1e38)}):
        try:
            r = quantize_step(x, axis=ax, **kwargs)
        except ConfigError as exc:  # only legitimate when levels overflow int32
            assert "int32" in str(exc)
            continue
        assert isinstance(r, StepResult)
        assert r.q.dtype == np.int32 and r.q.shape == x.shape and r.q.flags.c_contiguous
        assert r.step.dtype == np.float32 and np.all(r.step > 0)
        n_units = 1 if (ax is None or x.ndim == 0) else x.shape[r.axis]
        assert r.step.shape == (n_units,)
        if "step" in kwargs:
            assert np.all(r.step == np.float32(kwargs["step"]))
        d = dequantize(r)
        assert d.dtype == np.float32 and d.shape == x.shape
        gran = "tensor" if ax is None else "channel"
        st_el = _per_element(r.step, x.shape, gran, r.axis or 0, None)
        err = np.abs(x.astype(np.float64) - d.astype(np.float64))
        assert np.all(err <= st_el / 2 + _rounding_slack(x))
        assert np.array_equal(r.q, np.rint(x / st_el).astype(np.int32))


def test_quantize_step_values_and_errors():
    x = np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0], [1.0, -1.0, 1.0]], np.float32)
    r = quantize_step(x, step_ratio=0.5)
    std = np.std([1.0, -1.0, 1.0])
    assert np.allclose(r.step, [1.0, 1.0, 0.5 * std])   # zero row: 1.0; constant row: |c|
    assert r.q[1].tolist() == [2, 2, 2]
    r = quantize_step(x, step=0.25, axis=None)
    assert r.step.tolist() == [0.25] and r.axis is None and r.q[1].tolist() == [8, 8, 8]
    r = quantize_step(np.float32(1.3), step=0.5)
    assert r.q.shape == () and r.q == 3 and r.step.shape == (1,)
    assert quantize_step(np.zeros((0, 4)), step_ratio=0.1).step.shape == (0,)
    r = quantize_step(np.zeros((2, 0)), step_ratio=0.1)
    assert r.step.tolist() == [1, 1] and r.dequantize().shape == (2, 0)
    # large levels are reconstructed exactly (float64 product)
    r = quantize_step(np.array([1e9], np.float64), step=1.0)
    assert r.q[0] == 10**9 and r.dequantize()[0] == np.float32(1e9)
    with pytest.raises(ConfigError):
        quantize_step(x)
    with pytest.raises(ConfigError):
        quantize_step(x, step=1.0, step_ratio=0.1)
    for bad in (0.0, -1.0, float("nan"), 1e-50, 1e40):
        with pytest.raises(ConfigError):
            quantize_step(x, step=bad)
    with pytest.raises(ConfigError):
        quantize_step(x, step_ratio=0.0)
    with pytest.raises(ConfigError):
        quantize_step(np.array([1e10]), step=1e-3)   # levels beyond int32
    with pytest.raises(ConfigError):
        quantize_step(x, step=1.0, axis=5)
    with pytest.raises(InputError):
        quantize_step(np.array([np.nan]), step=1.0)


def test_quantizers_are_deterministic_and_fast_enough():
    x = np.random.default_rng(7).standard_normal((256, 1024)).astype(np.float32)
    a = quantize_uniform(x, 4, scheme="affine", granularity="channel")
    b = quantize_uniform(x, 4, scheme="affine", granularity="channel")
    assert np.array_equal(a.q, b.q) and np.array_equal(a.scale, b.scale)
    r = quantize_step(x, step_ratio=0.05)
    assert np.abs(dequantize(r) - x).max() <= r.step.max() / 2 * (1 + 1e-6)


@SETTINGS
@given(real_arrays(), st.integers(1, 40), st.sampled_from(kmeans.INITS), st.booleans())
def test_kmeans_float16_codebook(x, k, init, keep_zero):
    """codebook_dtype=float16: the returned codebook holds float16 values (the
    zero entry included), each weight is on its nearest such centroid, and the
    centroids are the float32 ones rounded."""
    k = max(k, 2) if keep_zero else k
    try:
        cb, idx = kmeans_1d(x, k, init=init, keep_zero=keep_zero, codebook_dtype=np.float16)
    except InputError as exc:
        assert "float16 range" in str(exc)
        cb32, _ = kmeans_1d(x, k, init=init, keep_zero=keep_zero)
        assert np.abs(cb32).max() >= 65520
        return
    assert cb.dtype == np.float32 and cb.shape == (k,)
    assert np.array_equal(cb.astype(np.float16).astype(np.float32), cb)
    cb32, _ = kmeans_1d(x, k, init=init, keep_zero=keep_zero)
    assert np.array_equal(cb, cb32.astype(np.float16).astype(np.float32))
    _check_nearest(x, cb, idx, keep_zero)
