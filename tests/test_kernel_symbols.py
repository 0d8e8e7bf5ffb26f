"""Tests of the vectorised symbol-stream kernels: bitpack, zerorun, sparse."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from wcodec.errors import ConfigError, FormatError, InputError, TruncatedError
from wcodec.kernels import bitpack, sparse, zerorun

UINT_DTYPES = [np.uint8, np.uint16, np.uint32, np.uint64]

# -------------------------------------------------------------------------
# strategies
# -------------------------------------------------------------------------

# zero-run lengths: mostly short, sometimes long, sometimes beyond 2**20
RUN_LENGTHS = st.one_of(
    st.integers(0, 12),
    st.integers(0, 3000),
    st.sampled_from([2**20 - 1, 2**20, 2**20 + 1, 2**21 + 12345]),
)


@st.composite
def run_structured(draw, max_pieces=12, dtype=None):
    """Arrays made of (zero run, non-zero value) pieces plus a trailing run."""
    dt = np.dtype(draw(st.sampled_from(UINT_DTYPES)) if dtype is None else dtype)
    hi = int(np.iinfo(dt).max)
    pieces = draw(st.lists(
        st.tuples(RUN_LENGTHS, st.one_of(st.integers(1, 15), st.integers(1, hi),
                                         st.just(hi))),
        max_size=max_pieces))
    tail = draw(RUN_LENGTHS)
    lens = np.array([p[0] for p in pieces] + [tail], dtype=np.int64)
    vals = np.array([p[1] for p in pieces], dtype=dt)
    out = np.zeros(int(lens.sum()) + len(pieces), dtype=dt)
    out[np.cumsum(lens[:-1] + 1) - 1] = vals
    return out


def small_arrays():
    return st.one_of(
        hnp.arrays(st.sampled_from(UINT_DTYPES), st.integers(0, 200)),
        hnp.arrays(np.uint8, st.integers(0, 200), elements=st.sampled_from([0, 0, 0, 1, 7])),
        hnp.arrays(np.int32, st.integers(0, 50), elements=st.integers(0, 2**31 - 1)),
    )


symbol_arrays = st.one_of(small_arrays(), run_structured())


# -------------------------------------------------------------------------
# pure-Python oracles (per-symbol loops are fine in tests)
# -------------------------------------------------------------------------

def ref_pack(values, bits):
    acc = 0
    for i, v in enumerate(int(x) for x in values):
        acc |= v << (i * bits)
    return acc.to_bytes((len(values) * bits + 7) // 8, "little")


def ref_runs_decode(r):
    out = []
    digits = []

    def flush():
        length = sum((d + 1) << t for t, d in enumerate(digits))
        out.extend([0] * length)
        digits.clear()

    for s in (int(x) for x in r):
        if s < 2:
            digits.append(s)
        else:
            flush()
            out.append(s - 1)
    flush()
    return out


# -------------------------------------------------------------------------
# bitpack
# -------------------------------------------------------------------------

class TestBitpack:
    def test_known_vectors(self):
        assert bitpack.pack(np.array([1, 2, 3]), 2) == bytes([0b111001])
        # 5 = 101, 3 = 011 written LSB first: bits 1,0,1,1,1,0
        assert bitpack.pack([5, 3], 3) == bytes([0b011101])
        assert bitpack.pack([1, 0, 1, 1, 0, 0, 0, 0, 1], 1) == bytes([0b1101, 1])
        assert bitpack.pack([0x1234, 0xABCD], 16) == bytes([0x34, 0x12, 0xCD, 0xAB])
        assert bitpack.pack([0x1FFF], 13) == bytes([0xFF, 0x1F])
        assert bitpack.pack([], 7) == b""

    @pytest.mark.parametrize("bits", range(1, 33))
    def test_all_widths_against_reference(self, bits):
        rng = np.random.default_rng(bits)
        for n in (0, 1, 7, 8, 9, 63, 64, 65, 257):
            v = rng.integers(0, 1 << bits, n, dtype=np.uint64)
            if n:
                v[0] = (1 << bits) - 1  # max value
            buf = bitpack.pack(v, bits)
            assert buf == ref_pack(v, bits)
            assert len(buf) == bitpack.packed_size(n, bits)
            u = bitpack.unpack(buf, n, bits)
            assert u.dtype == bitpack.uint_dtype_for_bits(bits)
            np.testing.assert_array_equal(u, v)

    @settings(max_examples=150, deadline=None)
    @given(st.data())
    def test_roundtrip_property(self, data):
        bits = data.draw(st.integers(1, 32))
        n = data.draw(st.integers(0, 300))
        v = data.draw(hnp.arrays(np.uint64, n, elements=st.integers(0, (1 << bits) - 1)))
        buf = bitpack.pack(v, bits)
        np.testing.assert_array_equal(bitpack.unpack(buf, n, bits), v)
        # unpack accepts any bytes-like object
        np.testing.assert_array_equal(bitpack.unpack(bytearray(buf), n, bits), v)
        np.testing.assert_array_equal(bitpack.unpack(memoryview(buf), n, bits), v)

    def test_min_bits(self):
        assert [bitpack.min_bits(x) for x in (0, 1, 2, 3, 4, 255, 256, 2**32 - 1)] == \
            [1, 1, 2, 2, 3, 8, 9, 32]
        assert bitpack.min_bits(np.uint64(2**40)) == 41
        with pytest.raises(ConfigError):
            bitpack.min_bits(-1)

    def test_bad_parameters(self):
        for bits in (0, 33, -1, 2.0, True):
            with pytest.raises(ConfigError):
                bitpack.pack([1], bits)
            with pytest.raises(ConfigError):
                bitpack.unpack(b"\0", 1, bits)
        with pytest.raises(ConfigError):
            bitpack.pack([4], 2)
        with pytest.raises(ConfigError):
            bitpack.pack(np.array([2**32], dtype=np.uint64), 32)
        with pytest.raises(InputError):
            bitpack.pack([-1], 4)
        with pytest.raises(InputError):
            bitpack.pack([1.5], 4)
        with pytest.raises(InputError):
            bitpack.unpack(b"", -1, 4)

    @pytest.mark.parametrize("bits", [1, 2, 3, 4, 8, 12, 16, 32])
    def test_corrupt_length(self, bits):
        n = 37
        buf = bitpack.pack(np.ones(n, dtype=np.uint8), bits)
        with pytest.raises(TruncatedError):
            bitpack.unpack(buf[:-1], n, bits)
        with pytest.raises(TruncatedError):
            bitpack.unpack(b"", n, bits)
        with pytest.raises(FormatError):
            bitpack.unpack(buf + b"\0", n, bits)

    def test_nonzero_padding_rejected(self):
        buf = bitpack.pack([1, 1, 1], 3)  # 9 bits -> 2 bytes, 7 padding bits
        bad = buf[:-1] + bytes([buf[-1] | 0x80])
        with pytest.raises(FormatError):
            bitpack.unpack(bad, 3, 3)

    def test_stream_auto_width(self):
        v = np.array([0, 5, 17, 3], dtype=np.uint16)
        s = bitpack.encode_stream(v)
        assert s[0] == 5 and s[1:] == bitpack.pack(v, 5)
        np.testing.assert_array_equal(bitpack.decode_stream(s, 4), v)
        assert bitpack.encode_stream(v, 8) == bitpack.pack(v, 8)
        np.testing.assert_array_equal(bitpack.decode_stream(bitpack.encode_stream(v, 8), 4, 8), v)
        assert bitpack.encode_stream([]) == bytes([1])
        assert bitpack.encode_stream(np.zeros(10, np.uint8)) == bytes([1, 0, 0])
        np.testing.assert_array_equal(bitpack.decode_stream(bytes([1]), 0), [])
        with pytest.raises(TruncatedError):
            bitpack.decode_stream(b"", 0)
        for hdr in (0, 33, 255):
            with pytest.raises(FormatError):
                bitpack.decode_stream(bytes([hdr]) + s[1:], 4)
        with pytest.raises(ConfigError):
            bitpack.encode_stream(np.array([2**40], dtype=np.uint64))


# -------------------------------------------------------------------------
# zerorun
# -------------------------------------------------------------------------

class TestZerorun:
    def test_alphabet(self):
        assert zerorun.run_alphabet_size(1) == 2
        assert zerorun.run_alphabet_size(256) == 257
        for bad in (0, -3, 1.0):
            with pytest.raises(ConfigError):
                zerorun.run_alphabet_size(bad)

    def test_known_mapping(self):
        expect = {1: [0], 2: [1], 3: [0, 0], 4: [1, 0], 5: [0, 1], 6: [1, 1],
                  7: [0, 0, 0], 8: [1, 0, 0], 14: [1, 1, 1], 15: [0, 0, 0, 0]}
        for length, digits in expect.items():
            assert zerorun.to_runs(np.zeros(length, np.uint8)).tolist() == digits
        x = np.array([0, 0, 0, 4, 7, 0, 1, 0, 0], dtype=np.uint8)
        assert zerorun.to_runs(x).tolist() == [0, 0, 5, 8, 0, 2, 1]
        assert zerorun.to_runs([]).size == 0
        assert zerorun.to_runs([3, 1]).tolist() == [4, 2]

    def test_dtype_widening(self):
        x = np.array([255, 0, 1], dtype=np.uint8)
        r = zerorun.to_runs(x)
        assert r.dtype == np.uint16 and r.tolist() == [256, 0, 2]
        np.testing.assert_array_equal(zerorun.from_runs(r, 3), x)
        assert zerorun.from_runs(r, 3, alphabet_size=256).dtype == np.uint8
        with pytest.raises(ConfigError):
            zerorun.to_runs(np.array([2**64 - 1], dtype=np.uint64))

    @settings(max_examples=150, deadline=None)
    @given(symbol_arrays)
    def test_roundtrip(self, x):
        if x.size and int(x.max()) == 2**64 - 1:  # v + 1 has no code
            with pytest.raises(ConfigError):
                zerorun.to_runs(x)
            x = np.minimum(x, 2**64 - 2)
        r = zerorun.to_runs(x)
        assert r.size <= x.size
        back = zerorun.from_runs(r, x.size)
        np.testing.assert_array_equal(back, x.astype(np.uint64))
        if x.size <= 20000:
            assert ref_runs_decode(r) == x.tolist()
        if x.size:
            a = int(x.max()) + 1
            r2 = zerorun.to_runs(x, alphabet_size=a)
            np.testing.assert_array_equal(r2, r)
            assert int(r2.max()) < zerorun.run_alphabet_size(a)
            back2 = zerorun.from_runs(r2, x.size, alphabet_size=a)
            np.testing.assert_array_equal(back2, x.astype(np.uint64))

    @settings(max_examples=100, deadline=None)
    @given(run_structured(dtype=np.uint8))
    def test_run_symbol_counts(self, x):
        # each maximal run of L zeros costs exactly floor(log2(L+1)) symbols
        nz = np.flatnonzero(x)
        lens = np.diff(np.concatenate([[-1], nz, [x.size]])) - 1
        expect = nz.size + sum(int(L + 1).bit_length() - 1 for L in lens)
        assert zerorun.to_runs(x).size == expect

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.lists(st.integers(0, 1), max_size=12), st.integers(2, 9)),
                    max_size=8),
           st.lists(st.integers(0, 1), max_size=12))
    def test_every_run_stream_decodes_canonically(self, groups, tail):
        # the mapping is a bijection: any run-symbol array is a valid stream
        r = np.array([s for digits, v in groups for s in digits + [v]] + tail, dtype=np.uint8)
        x = ref_runs_decode(r)
        back = zerorun.from_runs(r, len(x))
        assert back.tolist() == x
        np.testing.assert_array_equal(zerorun.to_runs(back), r)

    def test_long_runs(self):
        for length in (2**20 + 1, 2**22 - 1, 2**22, 3 * 2**21 + 7):
            x = np.zeros(length + 2, dtype=np.uint8)
            x[0] = 3
            x[-1] = 9
            r = zerorun.to_runs(x)
            assert r.size == 2 + int(length + 1).bit_length() - 1
            np.testing.assert_array_equal(zerorun.from_runs(r, x.size), x)

    def test_sparse_stream_shrinks(self):
        rng = np.random.default_rng(0)
        n = 1_000_000
        x = ((rng.random(n) < 0.1) * rng.integers(1, 16, n)).astype(np.uint8)
        r = zerorun.to_runs(x, 16)
        # ~10% values + ~log2(9) digits per run; far below n
        assert r.size < 0.4 * n
        np.testing.assert_array_equal(zerorun.from_runs(r, n, 16), x)
        y = np.zeros(n, np.uint8)
        y[::1000] = 1  # 99.9% sparse
        assert zerorun.to_runs(y).size < 0.011 * n

    def test_corrupt_streams(self):
        x = np.array([0, 0, 0, 4, 7, 0, 1, 0, 0], dtype=np.uint8)
        r = zerorun.to_runs(x)
        with pytest.raises(FormatError):
            zerorun.from_runs(r, x.size - 1)  # runs overflow count
        with pytest.raises(TruncatedError):
            zerorun.from_runs(r, x.size + 1)  # runs end early
        with pytest.raises(FormatError):
            zerorun.from_runs(r, 2)  # more values than count
        with pytest.raises(FormatError):
            zerorun.from_runs(np.array([9], np.uint8), 1, alphabet_size=8)
        with pytest.raises(FormatError):
            zerorun.from_runs(np.array([-1, 2], np.int64), 1)
        with pytest.raises(FormatError):  # 2**63 zeros
            zerorun.from_runs(np.zeros(63, np.uint8), 10)
        with pytest.raises(FormatError):  # run much longer than count
            zerorun.from_runs(np.ones(40, np.uint8), 1000)
        with pytest.raises(FormatError):  # many runs whose sum wraps uint64
            zerorun.from_runs(np.tile(np.array([2] + [1] * 62, np.uint8), 8), 2**63 - 1)
        with pytest.raises(InputError):
            zerorun.from_runs(np.array([1.0]), 1)
        with pytest.raises(InputError):
            zerorun.to_runs(np.array([-1, 0]))
        with pytest.raises(ConfigError):
            zerorun.to_runs([5], alphabet_size=5)


# -------------------------------------------------------------------------
# sparse (relative index)
# -------------------------------------------------------------------------

def ref_relative(x, b):
    gaps, vals, last = [], [], -1
    for p in np.flatnonzero(x):
        g = int(p) - last - 1
        while g >= 1 << b:
            gaps.append((1 << b) - 1)
            vals.append(0)
            g -= 1 << b
        gaps.append(g)
        vals.append(int(x[p]))
        last = int(p)
    return gaps, vals


class TestSparse:
    def test_known_vector(self):
        x = np.zeros(46, np.uint8)
        x[[1, 12, 43]] = [3, 5, 7]
        gaps, vals = sparse.to_relative(x, 3)
        assert gaps.tolist() == [1, 7, 2, 7, 7, 7, 6]
        assert vals.tolist() == [3, 0, 5, 0, 0, 0, 7]
        assert gaps.dtype == np.uint8 and vals.dtype == np.uint8
        np.testing.assert_array_equal(sparse.from_relative(gaps, vals, 46, 3), x)
        # adjacent non-zeros have gap 0; the first is measured from -1
        g, v = sparse.to_relative([4, 5, 0, 6], 1)
        assert g.tolist() == [0, 0, 1] and v.tolist() == [4, 5, 6]

    @settings(max_examples=150, deadline=None)
    @given(symbol_arrays, st.integers(1, 32))
    def test_roundtrip(self, x, b):
        gaps, vals = sparse.to_relative(x, b)
        assert gaps.size == vals.size == sparse.relative_size(x, b)
        if gaps.size:
            assert int(gaps.max()) < 1 << b
            assert vals[-1] != 0
        assert np.all(gaps[vals == 0] == (1 << b) - 1)
        back = sparse.from_relative(gaps, vals, x.size, b)
        np.testing.assert_array_equal(back, x.astype(np.uint64))
        if x.size <= 5000:
            rg, rv = ref_relative(x, b)
            assert gaps.tolist() == rg and vals.tolist() == rv

    def test_filler_count(self):
        x = np.zeros(2**21 + 10, np.uint8)
        x[-1] = 1
        for b in (1, 4, 8, 16, 21, 22, 32):
            gaps, vals = sparse.to_relative(x, b)
            assert gaps.size == (x.size - 1) // 2**b + 1
            np.testing.assert_array_equal(sparse.from_relative(gaps, vals, x.size, b), x)

    def test_best_index_bits(self):
        rng = np.random.default_rng(5)
        for density in (0.5, 0.1, 0.01, 0.001):
            x = ((rng.random(20000) < density) * rng.integers(1, 32, 20000)).astype(np.uint8)
            vb = bitpack.min_bits(int(x.max()))
            costs = [sparse.relative_size(x, b) * (b + vb) for b in range(1, 33)]
            b = sparse.best_index_bits(x)
            assert costs[b - 1] == min(costs)
            assert b == 1 + int(np.argmin(costs))
        assert sparse.best_index_bits(np.zeros(100, np.uint8)) == 1
        assert sparse.best_index_bits([]) == 1
        assert sparse.best_index_bits([1, 1, 1]) == 1
        assert sparse.best_index_bits(np.eye(64, dtype=np.uint8).ravel(), max_index_bits=4) <= 4

    def test_corrupt_streams(self):
        x = np.zeros(46, np.uint8)
        x[[1, 12, 43]] = [3, 5, 7]
        gaps, vals = sparse.to_relative(x, 3)
        with pytest.raises(FormatError):
            sparse.from_relative(gaps[:-1], vals, 46, 3)  # length mismatch
        with pytest.raises(FormatError):
            sparse.from_relative(gaps, vals, 43, 3)  # past count
        bad = gaps.copy()
        bad[0] = 8
        with pytest.raises(FormatError):
            sparse.from_relative(bad, vals, 46, 3)  # gap does not fit
        bad = gaps.copy()
        bad[1] = 6
        with pytest.raises(FormatError):
            sparse.from_relative(bad, vals, 46, 3)  # non-canonical filler
        with pytest.raises(FormatError):  # trailing filler
            sparse.from_relative(np.append(gaps, 7), np.append(vals, 0), 100, 3)
        with pytest.raises(FormatError):
            sparse.from_relative(np.array([-1]), np.array([1]), 4, 3)
        with pytest.raises(FormatError):  # more entries than positions
            sparse.from_relative(np.zeros(5, np.uint8), np.ones(5, np.uint8), 4, 3)
        with pytest.raises(FormatError):  # huge gaps must not overflow
            sparse.from_relative(np.full(4, 2**32 - 1, np.uint32), np.ones(4, np.uint8),
                                 2**33, 32)
        with pytest.raises(ConfigError):
            sparse.to_relative(x, 0)
        with pytest.raises(ConfigError):
            sparse.from_relative(gaps, vals, 46, 33)
        with pytest.raises(InputError):
            sparse.from_relative(gaps, vals, -1, 3)
