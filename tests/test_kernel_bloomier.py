"""Tests of the Bloomier-filter kernel: murmur3_32 and the binary fuse table."""

from __future__ import annotations

import struct
import time

import mmh3
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wcodec.errors import ConfigError, FormatError, InputError, TruncatedError
from wcodec.kernels import fuse
from wcodec.kernels.murmur3 import murmur3_32

U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)


# --------------------------------------------------------------------------
# murmur3


def _ref_mm(keys, width, seed):
    return np.array([mmh3.hash(int(k).to_bytes(width, "little"), seed, signed=False)
                     for k in keys], dtype=np.uint32)


@settings(max_examples=150, deadline=None)
@given(st.lists(U32, max_size=50), U32)
def test_murmur3_u32_matches_mmh3(keys, seed):
    arr = np.array(keys, dtype=np.uint32)
    assert np.array_equal(murmur3_32(arr, seed), _ref_mm(keys, 4, seed))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(U64, st.integers(0, 2**32 - 1)), max_size=50), U32)
def test_murmur3_u64_matches_mmh3(keys, seed):
    # mixes keys with zero and nonzero high words (the zero-high-word fast path)
    arr = np.array(keys, dtype=np.uint64)
    assert np.array_equal(murmur3_32(arr, seed), _ref_mm(keys, 8, seed))


def test_murmur3_across_chunks_and_layouts():
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 2**64, size=70_001, dtype=np.uint64)
    keys[::3] &= np.uint64(0xFFFFFFFF)
    got = murmur3_32(keys, 99)
    sample = np.arange(0, keys.size, 97)
    assert np.array_equal(got[sample], _ref_mm(keys[sample], 8, 99))
    # byte order, strides and shape do not change the result
    assert np.array_equal(murmur3_32(keys.astype(">u8"), 99), got)
    assert np.array_equal(murmur3_32(keys[::2], 99), got[::2])
    assert murmur3_32(keys[:12].reshape(3, 4), 99).shape == (3, 4)
    assert murmur3_32(np.zeros(0, np.uint32), 5).shape == (0,)
    # known answer: murmur3_x86_32("\0\0\0\0", 0)
    assert int(murmur3_32(np.array([0], np.uint32), 0)[0]) == 0x2362F9DE


def test_murmur3_rejects_bad_arguments():
    with pytest.raises(ConfigError):
        murmur3_32(np.array([1], np.int64), 0)
    with pytest.raises(ConfigError):
        murmur3_32(np.array([1], np.uint16), 0)
    with pytest.raises(ConfigError):
        murmur3_32(np.array([1], np.uint32), -1)
    with pytest.raises(ConfigError):
        murmur3_32(np.array([1], np.uint32), 2**32)


# --------------------------------------------------------------------------
# reference decoder written from the spec with Python integers


def _fmix64(z):
    M = (1 << 64) - 1
    z ^= z >> 33
    z = (z * 0xFF51AFD7ED558CCD) & M
    z ^= z >> 33
    z = (z * 0xC4CEB9FE1A85EC53) & M
    z ^= z >> 33
    return z


def _ref_query(table, x):
    if table.segment_count == 0:
        return 0
    L = 1 << table.segment_length_log2
    m = mmh3.hash(int(x).to_bytes(8, "little"), table.seed, signed=False)
    h = _fmix64(int(x) ^ (m << 32))
    i0 = ((h >> 32) * (table.segment_count * L)) >> 32
    i1 = (i0 + L) ^ (h & (L - 1))
    i2 = (i0 + 2 * L) ^ ((h >> 18) & (L - 1))
    c = table.cells
    return (m ^ int(c[i0]) ^ int(c[i1]) ^ int(c[i2])) & ((1 << table.value_bits) - 1)


def _distinct_keys(rng, n, universe=None):
    if universe is None:
        keys = np.unique(rng.integers(0, 2**64, size=n + 16, dtype=np.uint64))
        keys = rng.permutation(keys)[:n]
        assert keys.size == n
        return keys
    return rng.choice(universe, size=n, replace=False).astype(np.uint64)


# --------------------------------------------------------------------------
# build / query


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.one_of(st.integers(0, 20), st.integers(0, 5000)),
       value_bits=st.integers(1, 32),
       rng_seed=st.integers(0, 2**32 - 1),
       seed=U32,
       dense=st.booleans())
def test_every_key_returns_its_value(n, value_bits, rng_seed, seed, dense):
    rng = np.random.default_rng(rng_seed)
    keys = _distinct_keys(rng, n, universe=max(1, 3 * n) if dense else None)
    values = rng.integers(0, 2**value_bits, size=n, dtype=np.uint64)
    table = fuse.build(keys, values, value_bits, seed=seed)
    assert table.value_bits == value_bits
    got = fuse.query(table, keys)
    assert got.dtype == table.cells.dtype
    assert np.array_equal(got.astype(np.uint64), values)
    if table.cells.size:
        assert int(table.cells.max()) < 2**value_bits
    # survives serialisation
    again = fuse.deserialize(fuse.serialize(table))
    assert again == table
    assert np.array_equal(fuse.query(again, keys).astype(np.uint64), values)
    # the vectorised path agrees with the spec's reference decoder
    probe = np.concatenate([keys[:5], rng.integers(0, 2**64, size=5, dtype=np.uint64)])
    want = [_ref_query(table, x) for x in probe]
    assert fuse.query(table, probe).tolist() == want


def test_small_and_edge_sizes():
    empty = fuse.build(np.zeros(0, np.uint64), np.zeros(0, np.uint8), 5)
    assert empty.array_length == 0 and empty.cells.size == 0
    assert not fuse.query(empty, np.arange(1000, dtype=np.uint64)).any()
    one = fuse.build(np.array([12345], np.uint64), np.array([3]), 2)
    assert one.array_length == 3
    assert fuse.query(one, np.array([12345], np.uint64)).tolist() == [3]
    # the largest key and value widths
    keys = np.array([0, 2**64 - 1, 2**63], np.uint64)
    vals = np.array([2**32 - 1, 0, 7], np.uint64)
    t = fuse.build(keys, vals, 32)
    assert fuse.query(t, keys).tolist() == vals.tolist()
    # query keeps the positions' shape and accepts uint32 positions
    assert fuse.query(t, keys.reshape(3, 1)).shape == (3, 1)
    small = np.array([1, 2, 3], np.uint32)
    t2 = fuse.build(small, np.array([1, 2, 3]), 4)
    assert fuse.query(t2, small).tolist() == [1, 2, 3]
    assert fuse.query(t2, small.astype(np.uint64)).tolist() == [1, 2, 3]


def test_large_table_size_and_many_chunks():
    rng = np.random.default_rng(7)
    n = 200_000
    keys = _distinct_keys(rng, n, universe=4 * n)
    vals = rng.integers(1, 16, size=n, dtype=np.uint8)
    t = fuse.build(keys, vals, 4)
    assert np.array_equal(fuse.query(t, keys), vals)
    assert t.array_length / n < 1.2
    assert t.segment_length & (t.segment_length - 1) == 0
    # Graf & Lemire sizing: ~1.13 cells per key for large n
    log2_len, seg_count = fuse.table_parameters(1_000_000)
    assert ((seg_count + 2) << log2_len) / 1e6 < 1.135


@pytest.mark.parametrize("n", [64, 700, 3000, 15000])
def test_compact_tables_are_smaller_and_correct(n):
    """The encoder's search for smaller tables: candidates ascend in size and
    stay below the default sizing; the table it builds answers every key and
    is smaller than the default one; compact=False gives the default sizing."""
    cands = fuse.compact_parameters(n)
    log2_len, seg_count = fuse.table_parameters(n)
    default = (seg_count + 2) << log2_len
    sizes = [(c + 2) << g for g, c in cands]
    assert cands and sizes == sorted(sizes) and max(sizes) < default
    rng = np.random.default_rng(n)
    keys = _distinct_keys(rng, n)
    vals = rng.integers(0, 1024, size=n)
    small = fuse.build(keys, vals, 10)
    assert np.array_equal(fuse.query(small, keys), vals)
    assert small.array_length < default
    plain = fuse.build(keys, vals, 10, compact=False)
    assert (plain.segment_length_log2, plain.segment_count) == (log2_len, seg_count)
    assert np.array_equal(fuse.query(plain, keys), vals)
    assert fuse.compact_parameters(63) == [] == fuse.compact_parameters(fuse.COMPACT_MAX_KEYS + 1)


def test_build_is_deterministic_and_seeded():
    rng = np.random.default_rng(3)
    keys = _distinct_keys(rng, 3000)
    vals = rng.integers(0, 256, size=3000)
    a = fuse.serialize(fuse.build(keys, vals, 8, seed=11))
    b = fuse.serialize(fuse.build(keys.copy(), vals.copy(), 8, seed=11))
    assert a == b
    t = fuse.build(keys, vals, 8, seed=11)
    assert t.seed >= 11  # seed + tries
    c = fuse.serialize(fuse.build(keys, vals, 8, seed=t.seed + 1))
    assert c != a
    # the seed wraps around modulo 2**32 on retries
    t = fuse.build(keys, vals, 8, seed=2**32 - 1)
    assert 0 <= t.seed <= 2**32 - 1


def test_build_rejects_bad_input():
    k = np.arange(10, dtype=np.uint64)
    v = np.ones(10, np.uint8)
    with pytest.raises(ConfigError):
        fuse.build(k, v, 0)
    with pytest.raises(ConfigError):
        fuse.build(k, v, 33)
    with pytest.raises(ConfigError):
        fuse.build(k, v * 4, 2)  # 4 does not fit in 2 bits
    with pytest.raises(ConfigError):
        fuse.build(k, v[:5], 2)
    with pytest.raises(ConfigError):
        fuse.build(k, -v.astype(np.int8), 2)
    with pytest.raises(ConfigError):
        fuse.build(k.astype(np.float64), v, 2)
    with pytest.raises(ConfigError):
        fuse.build(np.array([5, 6, 5], np.uint64), np.array([1, 1, 1]), 2)
    with pytest.raises(ConfigError):
        fuse.build(k, v, 2, seed=-1)
    with pytest.raises(ConfigError):
        fuse.build(k, v, 2, max_tries=0)


# --------------------------------------------------------------------------
# false positives


def test_false_positive_rate_formula():
    assert fuse.false_positive_rate(4, 5) == 4 / 16
    assert fuse.false_positive_rate(8, 1) == 0.0
    assert fuse.false_positive_rate(1, 2) == 0.5
    for bad in [(0, 2), (33, 2), (4, 0), (4, 17)]:
        with pytest.raises(ConfigError):
            fuse.false_positive_rate(*bad)


@pytest.mark.parametrize("value_bits,n_values,constant", [
    (4, 5, False), (3, 8, False), (8, 16, False), (8, 2, True), (12, 40, False),
])
def test_false_positive_rate_empirical(value_bits, n_values, constant):
    rng = np.random.default_rng(value_bits * 100 + n_values)
    n, universe = 30_000, 400_000
    keys = np.sort(_distinct_keys(rng, n, universe=universe))
    if constant:  # all values equal: only the hash mask keeps outputs uniform
        vals = np.ones(n, np.uint32)
    else:
        vals = rng.integers(1, n_values, size=n)
    t = fuse.build(keys, vals, value_bits)
    is_key = np.zeros(universe, bool)
    is_key[keys] = True
    others = np.flatnonzero(~is_key).astype(np.uint64)
    out = fuse.query(t, others).astype(np.int64)
    fp = np.mean((out >= 1) & (out < n_values))
    p = fuse.false_positive_rate(value_bits, n_values)
    sigma = np.sqrt(p * (1 - p) / others.size)
    assert abs(fp - p) < 5 * sigma + 1e-12, (fp, p)
    if value_bits <= 8:  # the non-key outputs are uniform (chi-square)
        counts = np.bincount(out, minlength=2**value_bits)
        expected = others.size / 2**value_bits
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        dof = 2**value_bits - 1
        assert chi2 < dof + 6 * np.sqrt(2 * dof)


# --------------------------------------------------------------------------
# serialisation and hostile input


def _sample_table(value_bits=5, n=300, seed=0):
    rng = np.random.default_rng(seed)
    keys = _distinct_keys(rng, n)
    return fuse.build(keys, rng.integers(0, 2**value_bits, size=n), value_bits)


def test_serialized_layout():
    t = _sample_table(5)
    blob = fuse.serialize(t)
    magic, ver, vb, lg, res, seed, sc = struct.unpack_from("<4sBBBBII", blob)
    assert (magic, ver, vb, lg, res, seed, sc) == (
        b"WBFU", 1, 5, t.segment_length_log2, 0, t.seed, t.segment_count)
    assert len(blob) == 16 + (t.array_length * 5 + 7) // 8
    # LSB-first packing: cell i is bits [5i, 5i+5) of the payload
    bits = np.unpackbits(np.frombuffer(blob[16:], np.uint8), bitorder="little")
    for i in (0, 1, 7, t.array_length - 1):
        v = sum(int(bits[5 * i + j]) << j for j in range(5))
        assert v == int(t.cells[i])
    for vb in (1, 7, 8, 9, 16, 17, 24, 31, 32):
        tt = _sample_table(vb, n=100, seed=vb)
        assert fuse.deserialize(fuse.serialize(tt)) == tt
    empty = fuse.build(np.zeros(0, np.uint64), np.zeros(0), 3)
    assert len(fuse.serialize(empty)) == 16
    assert fuse.deserialize(fuse.serialize(empty)) == empty


def _header(magic=b"WBFU", ver=1, vb=4, lg=2, res=0, seed=0, sc=1):
    return struct.pack("<4sBBBBII", magic, ver, vb, lg, res, seed, sc)


def test_deserialize_rejects_malformed():
    good = fuse.serialize(_sample_table(5))
    for cut in range(len(good)):
        with pytest.raises(TruncatedError):
            fuse.deserialize(good[:cut])
    with pytest.raises(FormatError):
        fuse.deserialize(good + b"\0")
    cases = [
        _header(magic=b"WBFV") + bytes(12),
        _header(ver=2) + bytes(12),
        _header(vb=0) + bytes(12),
        _header(vb=33) + bytes(12),
        _header(lg=19) + bytes(12),
        _header(res=1) + bytes(12),
        _header(sc=0, lg=2),
        _header(sc=0, lg=0) + b"\0",
    ]
    for blob in cases:
        with pytest.raises(FormatError):
            fuse.deserialize(blob)
    # nonzero padding bits: 3 cells of 3 bits = 9 bits in 2 bytes
    with pytest.raises(FormatError):
        fuse.deserialize(_header(vb=3, lg=0, sc=1) + b"\0\x02")
    assert fuse.deserialize(_header(vb=3, lg=0, sc=1) + b"\xff\x01").cells.tolist() == [7, 7, 7]
    with pytest.raises(InputError):
        fuse.deserialize("not bytes")


def test_deserialize_hostile_sizes_fail_fast():
    start = time.perf_counter()
    for lg in (0, 10, 18):
        for sc in (1, 2**20, 2**31, 2**32 - 1):
            for vb in (1, 32):
                blob = _header(vb=vb, lg=lg, sc=sc) + bytes(64)
                with pytest.raises(FormatError):
                    fuse.deserialize(blob)
    assert time.perf_counter() - start < 1.0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 15))
def test_deserialize_never_raises_anything_else(tail, where):
    base = bytearray(fuse.serialize(_sample_table(3, n=10, seed=1)))
    blob = bytes(base[:where]) + tail  # valid prefix, arbitrary continuation
    try:
        t = fuse.deserialize(blob)
    except FormatError:
        return
    assert fuse.deserialize(fuse.serialize(t)) == t


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 255))
def test_mutated_bytes_decode_or_fail_cleanly(pos, byte):
    blob = bytearray(fuse.serialize(_sample_table(6, n=40, seed=2)))
    blob[pos % len(blob)] = byte
    try:
        t = fuse.deserialize(bytes(blob))
    except FormatError:
        return
    fuse.query(t, np.arange(50, dtype=np.uint64))


def test_spec_example_vector():
    # the worked example in spec/codecs/bloomier.md
    keys = np.array([3, 10, 42, 1000], np.uint64)
    t = fuse.build(keys, np.array([1, 2, 3, 1]), 2, seed=0)
    blob = fuse.serialize(t)
    assert blob.hex(" ") == "57 42 46 55 01 02 03 00 00 00 00 00 01 00 00 00 01 40 02 08 00 00"
    assert fuse.query(t, np.array([10, 7], np.uint64)).tolist() == [2, 3]
    idx, masks = fuse.hash_indices(np.array([10, 7], np.uint64), t)
    assert idx.T.tolist() == [[4, 8, 21], [3, 14, 20]]
    assert masks.tolist() == [0xEEB72D3C, 0xF7CC5443]
