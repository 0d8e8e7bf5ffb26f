"""Tests of the canonical length-limited Huffman kernel (wcodec.kernels.huffman)."""

from __future__ import annotations

import heapq
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from wcodec.errors import ConfigError, FormatError, InputError, TruncatedError
from wcodec.kernels import huffman as hf
from wcodec.kernels.bitio import pack_fixed_msb, write_varint

# -------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------


def roundtrip(sym, **kw):
    sym = np.asarray(sym)
    buf = hf.encode(sym, **{k: v for k, v in kw.items() if k != "threads"})
    n = sym.size
    fast = hf.decode(buf, n, threads=kw.get("threads", 1))
    ref = hf.decode_reference(buf, n)
    assert fast.shape == (n,)
    np.testing.assert_array_equal(fast, sym)
    np.testing.assert_array_equal(ref, sym)
    assert fast.dtype == ref.dtype
    return buf


def huffman_cost(counts):
    """Cost sum(count*len) of an unconstrained Huffman code (heap reference)."""
    w = [int(c) for c in counts if c > 0]
    if len(w) <= 1:
        return sum(w)
    heapq.heapify(w)
    cost = 0
    while len(w) > 1:
        a = heapq.heappop(w)
        b = heapq.heappop(w)
        cost += a + b
        heapq.heappush(w, a + b)
    return cost


def brute_limited_cost(counts, max_len):
    """Exact optimum of sum(c*l) s.t. Kraft <= 1 and l <= max_len (tiny n)."""
    w = sorted((int(c) for c in counts if c > 0), reverse=True)
    best = None
    # optimal lengths are non-decreasing when weights are non-increasing
    for ls in itertools.combinations_with_replacement(range(1, max_len + 1), len(w)):
        if sum(2.0 ** -l for l in ls) <= 1.0 + 1e-12:
            cost = sum(a * b for a, b in zip(w, ls))
            best = cost if best is None else min(best, cost)
    return best


def is_format_error_or_array(buf, count):
    """Decoding hostile bytes must raise FormatError or return `count` symbols."""
    try:
        out = hf.decode(buf, count)
    except FormatError:
        return "error"
    assert isinstance(out, np.ndarray) and out.shape == (count,)
    return "ok"


def skewed(rng, n, scale=1.2, alphabet=256):
    return np.minimum(np.abs(np.round(rng.laplace(0, scale, n))), alphabet - 1).astype(np.int64)


# -------------------------------------------------------------------------
# strategies
# -------------------------------------------------------------------------

ALPHABETS = st.sampled_from([1, 2, 3, 5, 16, 255, 256, 257, 4096, 65536])


@st.composite
def symbol_arrays(draw):
    """Random alphabets, all-equal arrays, long runs and skewed weights."""
    alpha = draw(ALPHABETS)
    kind = draw(st.sampled_from(["uniform", "runs", "constant", "skewed", "few"]))
    n = draw(st.integers(0, 3000))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        s = rng.integers(0, alpha, n)
    elif kind == "constant":
        s = np.full(n, draw(st.integers(0, alpha - 1)))
    elif kind == "runs":
        k = draw(st.integers(1, 8))
        vals = rng.integers(0, alpha, k)
        lens = rng.integers(0, 2000, k)
        s = np.repeat(vals, lens)[:n] if n else np.repeat(vals, lens)
    elif kind == "few":
        vals = rng.choice(alpha, size=min(alpha, draw(st.integers(1, 4))), replace=False)
        s = rng.choice(vals, size=n)
    else:
        s = np.minimum(rng.geometric(draw(st.sampled_from([0.05, 0.3, 0.7, 0.95])), n) - 1,
                       alpha - 1)
    dt = np.uint8 if alpha <= 256 else np.uint16
    return np.asarray(s).astype(dt), alpha


# -------------------------------------------------------------------------
# round trips
# -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(symbol_arrays(), st.one_of(st.none(), st.integers(1, 64)), st.data())
def test_roundtrip_hypothesis(arr_alpha, lanes, data):
    sym, alpha = arr_alpha
    distinct = np.unique(sym).size
    need = max(1, (max(distinct, 1) - 1).bit_length())
    max_len = data.draw(st.one_of(st.none(), st.integers(need, hf.MAX_CODE_LEN)))
    buf = roundtrip(sym, alphabet_size=alpha, lanes=lanes, max_len=max_len)
    h = hf.parse_header(buf, sym.size)
    assert h.alphabet_size == alpha
    if max_len is not None and h.mode == hf.MODE_CODED:
        assert h.max_len <= max_len


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 65535), max_size=400))
def test_roundtrip_plain_lists(values):
    roundtrip(np.array(values, dtype=np.int64))


def test_empty():
    for alpha in (None, 1, 256, 65536):
        buf = roundtrip(np.zeros(0, dtype=np.int64), alphabet_size=alpha)
        assert len(buf) <= 6
    assert hf.decode(hf.encode([]), 0).dtype == np.uint8
    assert hf.decode(hf.encode([], 300), 0).dtype == np.uint16


@pytest.mark.parametrize("n", [1, 2, 1000, 10**6])
def test_single_symbol_costs_only_a_header(n):
    buf = roundtrip(np.full(n, 77, dtype=np.uint8))
    assert len(buf) <= 2 + 3 + 1 + 1 + 3  # no payload at all
    assert hf.parse_header(buf, n).mode == hf.MODE_SINGLE
    out = hf.decode(buf, n)
    assert out.dtype == np.uint8 and (out == 77).all()


def test_max_alphabet_all_symbols():
    rng = np.random.default_rng(1)
    sym = np.concatenate([np.arange(65536), rng.integers(0, 65536, 50000)]).astype(np.uint16)
    rng.shuffle(sym)
    buf = roundtrip(sym)
    h = hf.parse_header(buf, sym.size)
    assert h.max_len == 16 and h.sorted_symbols.size == 65536
    assert hf.decode(buf, sym.size).dtype == np.uint16
    # the biggest alphabet with one symbol of each length pattern
    roundtrip(np.array([0, 65535, 65535], dtype=np.uint16))


def test_two_symbols_and_bool_input():
    roundtrip(np.array([0, 1]))
    roundtrip(np.array([True, False, True]))
    assert hf.decode(hf.encode(np.array([5, 9, 9])), 3).tolist() == [5, 9, 9]


def test_long_runs_and_lanes():
    rng = np.random.default_rng(2)
    sym = np.repeat(rng.integers(0, 40, 50), rng.integers(1, 5000, 50))
    for lanes in (None, 1, 3, 1000, sym.size, sym.size + 10):
        roundtrip(sym, lanes=lanes)


def test_threads_split_lanes():
    rng = np.random.default_rng(3)
    sym = skewed(rng, 300_001)
    buf = hf.encode(sym, lanes=2100)
    ref = hf.decode(buf, sym.size)
    np.testing.assert_array_equal(ref, sym)
    for t in (2, 3, 8):
        np.testing.assert_array_equal(hf.decode(buf, sym.size, threads=t), sym)


def test_buffer_types():
    sym = np.arange(1000) % 7
    buf = hf.encode(sym)
    for b in (buf, bytearray(buf), memoryview(buf), np.frombuffer(buf, np.uint8)):
        np.testing.assert_array_equal(hf.decode(b, sym.size), sym)
        np.testing.assert_array_equal(hf.decode_reference(b, sym.size), sym)


def test_large_stream_fast_equals_reference():
    rng = np.random.default_rng(4)
    sym = np.clip(np.round(rng.normal(128, 12, 200_003)), 0, 255).astype(np.uint8)
    buf = roundtrip(sym)
    h = hf.parse_header(buf, sym.size)
    assert h.lanes == hf.default_lanes(sym.size, h.total_bits)
    assert hf.default_lanes(0) == 1 and hf.default_lanes(5) == 2
    assert hf.default_lanes(10**9, 10**9) == 16384


# -------------------------------------------------------------------------
# code construction
# -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=300))
def test_code_lengths_unconstrained_is_huffman(counts):
    c = np.array(counts, dtype=np.int64)
    lens = hf.code_lengths(c, 64)
    assert ((lens == 0) == (c == 0)).all()
    used = np.count_nonzero(c)
    if used >= 2:
        assert int((c * lens).sum()) == huffman_cost(c)
        assert sum(2.0 ** -int(l) for l in lens[lens > 0]) == 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=2, max_size=6), st.integers(1, 5))
def test_code_lengths_limited_is_optimal(counts, max_len):
    c = np.array(counts, dtype=np.int64)
    need = (len(counts) - 1).bit_length()
    if max_len < need:
        with pytest.raises(ConfigError):
            hf.code_lengths(c, max_len)
        return
    lens = hf.code_lengths(c, max_len)
    assert lens.max() <= max_len
    assert sum(2.0 ** -int(l) for l in lens) == 1.0
    assert int((c * lens).sum()) == brute_limited_cost(c, max_len)


def test_length_limit_respected_on_skewed_distribution():
    counts = np.array([2 ** k for k in range(40)], dtype=np.int64)  # Fibonacci-like skew
    free = hf.code_lengths(counts, 64)
    assert free.max() == 39
    for lim in (6, 8, 11, 16):
        lens = hf.code_lengths(counts, lim)
        assert lens.max() == lim
        assert sum(2.0 ** -int(l) for l in lens) == 1.0
    # the encoder honours max_len and the stream still round-trips
    sym = np.repeat(np.arange(20), [2 ** k for k in range(20)])
    for lim in (5, 7, 12):
        buf = roundtrip(sym, max_len=lim)
        assert hf.parse_header(buf, sym.size).max_len == lim
    # default limit never exceeds the format limit
    h = hf.parse_header(roundtrip(sym), sym.size)
    assert h.max_len <= hf.MAX_CODE_LEN


def test_code_lengths_edge_cases():
    assert hf.code_lengths(np.zeros(5, np.int64), 3).tolist() == [0] * 5
    assert hf.code_lengths(np.array([0, 9, 0]), 3).tolist() == [0, 1, 0]
    assert hf.code_lengths(np.array([], dtype=np.int64), 3).size == 0
    assert hf.code_lengths(np.ones(4, np.int64), 2).tolist() == [2, 2, 2, 2]
    with pytest.raises(ConfigError):
        hf.code_lengths(np.ones(5, np.int64), 2)
    with pytest.raises(InputError):
        hf.code_lengths(np.array([1, -1]), 3)


def test_canonical_codes_rule():
    lens = np.array([3, 0, 2, 3, 1, 0])
    codes = hf.canonical_codes(lens)
    # order by (len, symbol): 4 (len1) -> 0, 2 (len2) -> 10, 0 (len3) -> 110, 3 -> 111
    assert [format(int(codes[s]), f"0{int(lens[s])}b") for s in (4, 2, 0, 3)] == \
        ["0", "10", "110", "111"]


def test_encode_argument_errors():
    with pytest.raises(InputError):
        hf.encode(np.array([1, 2, 300]), alphabet_size=256)
    with pytest.raises(InputError):
        hf.encode(np.array([-1, 2]))
    with pytest.raises(InputError):
        hf.encode(np.array([70000]))
    with pytest.raises(InputError):
        hf.encode(np.zeros((2, 2), np.int64))
    with pytest.raises(InputError):
        hf.encode(np.array([0.5]))
    with pytest.raises(ConfigError):
        hf.encode(np.arange(100), max_len=6)      # 100 symbols need >= 7 bits
    with pytest.raises(ConfigError):
        hf.encode(np.arange(10), max_len=17)
    with pytest.raises(ConfigError):
        hf.encode(np.arange(10), lanes=0)
    with pytest.raises(ConfigError):
        hf.encode(np.arange(10), alphabet_size=65537)


# -------------------------------------------------------------------------
# table serialisation and size
# -------------------------------------------------------------------------


def test_table_is_compact():
    rng = np.random.default_rng(5)
    sym = np.clip(np.round(rng.normal(8, 1.9, 5000)), 0, 15).astype(np.uint8)
    buf = hf.encode(sym, lanes=1)
    h = hf.parse_header(buf, sym.size)
    header = len(buf) - h.payload.size
    assert h.table_kind == hf.TABLE_DENSE
    assert header <= 2 + 2 + 1 + 1 + 1 + 8 + 1 + 2 + 1 + 1   # 16 nibbles of lengths
    # a sparse alphabet stores only the used symbols
    sym = np.array([3, 60000, 60000, 12345] * 100, dtype=np.uint16)
    buf = hf.encode(sym, 65536, lanes=1)
    h = hf.parse_header(buf, sym.size)
    assert h.table_kind == hf.TABLE_SPARSE
    assert len(buf) - h.payload.size <= 2 + 2 + 3 + 2 + 3 + 6 + 4
    # a full byte alphabet costs half a byte per symbol
    sym = np.arange(256 * 40) % 256
    buf = hf.encode(sym, lanes=1)
    h = hf.parse_header(buf, sym.size)
    assert len(buf) - h.payload.size <= 128 + 16


def test_size_close_to_entropy_on_large_skewed_stream():
    rng = np.random.default_rng(6)
    for sym in (skewed(rng, 1_000_000, 1.5),                       # ~2.5 bits/symbol
                np.clip(np.round(rng.normal(8, 1.9, 1_000_000)), 0, 15).astype(np.int64)):
        buf = hf.encode(sym)
        bound = hf.order0_entropy_bits(sym)
        assert bound >= sym.size  # >= 1 bit per symbol
        h = hf.parse_header(buf, sym.size)
        header = len(buf) - h.payload.size
        assert h.payload.size * 8 <= 1.03 * bound
        assert len(buf) * 8 <= 1.03 * bound + 8 * header
        assert header <= 0.01 * len(buf)
        np.testing.assert_array_equal(hf.decode(buf, sym.size), sym)


def test_order0_entropy_bits():
    assert hf.order0_entropy_bits(np.array([], np.int64)) == 0.0
    assert hf.order0_entropy_bits(np.zeros(10, np.int64)) == 0.0
    assert hf.order0_entropy_bits(np.array([0, 1] * 8)) == pytest.approx(16.0)
    s = np.array([0] * 6 + [1] * 2)
    assert hf.order0_entropy_bits(s) == pytest.approx(6 * math.log2(8 / 6) + 2 * 2)


# -------------------------------------------------------------------------
# malformed input
# -------------------------------------------------------------------------


def _sample_stream(n=3000, seed=7, **kw):
    rng = np.random.default_rng(seed)
    sym = skewed(rng, n, 2.0, 64)
    return sym, hf.encode(sym, **kw)


def test_truncation_at_every_offset():
    for kw in ({}, {"lanes": 1}, {"lanes": 37}):
        sym, buf = _sample_stream(**kw)
        for cut in range(len(buf)):
            with pytest.raises(FormatError):
                hf.decode(buf[:cut], sym.size)
            with pytest.raises(FormatError):
                hf.decode_reference(buf[:cut], sym.size)
    for s in (np.zeros(0, np.int64), np.full(10, 3)):
        buf = hf.encode(s)
        for cut in range(len(buf)):
            with pytest.raises(FormatError):
                hf.decode(buf[:cut], s.size)


def test_truncation_large_stream_raises_truncated():
    sym, buf = _sample_stream(200_000)
    for cut in np.linspace(len(buf) // 2, len(buf) - 1, 40).astype(int):
        with pytest.raises(TruncatedError):
            hf.decode(buf[:cut], sym.size)


def test_trailing_bytes_and_wrong_count():
    sym, buf = _sample_stream()
    with pytest.raises(FormatError):
        hf.decode(buf + b"\x00", sym.size)
    for c in (0, 1, sym.size - 1, sym.size + 1):
        with pytest.raises(FormatError):
            hf.decode(buf, c)
    with pytest.raises(FormatError):
        hf.decode(hf.encode(np.full(5, 2)) + b"\x01", 5)
    with pytest.raises(InputError):
        hf.decode(buf, -1)
    with pytest.raises(InputError):
        hf.decode(np.zeros(4, np.float32), 1)


def test_every_single_bit_flip():
    sym, buf = _sample_stream(800, lanes=5)
    outcomes = set()
    for i in range(len(buf) * 8):
        b = bytearray(buf)
        b[i // 8] ^= 1 << (i % 8)
        outcomes.add(is_format_error_or_array(bytes(b), sym.size))
    assert "error" in outcomes


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_corruption(data):
    sym, buf = _sample_stream(2000, lanes=data.draw(st.sampled_from([1, 9, 40])))
    b = bytearray(buf)
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(b) - 1))
        b[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        b = b[:data.draw(st.integers(0, len(b)))]
    is_format_error_or_array(bytes(b), sym.size)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 5000))
def test_random_garbage(blob, count):
    for prefix in (b"", bytes([hf.VERSION, hf.MODE_CODED]) + write_varint(count)):
        is_format_error_or_array(prefix + blob, count)


def _coded_header(count, alpha, m, table, lanes, base, width, lane_table=b"", payload=b""):
    return (bytes([hf.VERSION, hf.MODE_CODED]) + write_varint(count) + write_varint(alpha)
            + bytes([m]) + table + write_varint(lanes) + write_varint(base) + bytes([width])
            + lane_table + payload)


def test_hostile_headers():
    ok_table = bytes([hf.TABLE_SPARSE]) + write_varint(2) + bytes([0b01000000])  # symbols 0, 1
    good = _coded_header(8, 2, 1, ok_table, 1, 8, 0, b"", b"\x55")
    np.testing.assert_array_equal(hf.decode(good, 8), [0, 1] * 4)
    hostile = [
        bytes([9, 2]) + write_varint(8),                                   # bad version
        bytes([1, 7]) + write_varint(8),                                   # bad mode
        bytes([1, 0]) + write_varint(8) + write_varint(1),                 # empty with count
        bytes([1, 1]) + write_varint(8) + write_varint(2) + write_varint(5),  # symbol >= alpha
        bytes([1, 1]) + write_varint(8) + write_varint(0) + write_varint(0),  # alphabet 0
        bytes([1, 1]) + write_varint(8) + write_varint(1 << 40) + write_varint(0),
        bytes([1, 2]) + write_varint(8) + b"\xff" * 12,                     # endless varint
        _coded_header(8, 2, 17, ok_table, 1, 8, 0, b"", b"\x55"),          # max_len too big
        _coded_header(8, 2, 0, ok_table, 1, 8, 0, b"", b"\x55"),           # max_len 0
        _coded_header(8, 2, 1, bytes([7]) + ok_table[1:], 1, 8, 0, b"", b"\x55"),  # table kind
        _coded_header(8, 2, 1, bytes([0]) + write_varint(1) + b"\x00", 1, 8, 0, b"", b"\x55"),
        _coded_header(8, 2, 1, bytes([0]) + write_varint(3) + b"\x00", 1, 8, 0, b"", b"\x55"),
        _coded_header(8, 2, 1, bytes([0]) + write_varint(2) + b"\x80", 1, 8, 0, b"", b"\x55"),
        _coded_header(8, 2, 1, bytes([0]) + write_varint(2) + b"\x00", 1, 8, 0, b"", b"\x55"),
        _coded_header(8, 4, 2, bytes([0]) + write_varint(1) + write_varint(4) + b"\x00\x00",
                      1, 8, 0, b"", b"\x55"),                               # over-subscribed
        _coded_header(8, 2, 1, bytes([1]) + b"\x40", 1, 8, 0, b"", b"\x55"),  # dense incomplete
        _coded_header(8, 2, 1, ok_table, 0, 8, 0, b"", b"\x55"),           # zero lanes
        _coded_header(8, 2, 1, ok_table, 9, 8, 0, b"", b"\x55"),           # lanes > count
        _coded_header(8, 2, 1, ok_table, 1 << 50, 8, 0, b"", b"\x55"),     # absurd lanes
        _coded_header(8, 2, 1, ok_table, 1, 9, 0, b"", b"\x55"),           # lane too long
        _coded_header(8, 2, 1, ok_table, 1, 7, 0, b"", b"\x55"),           # lane too short
        _coded_header(8, 2, 1, ok_table, 1, 1 << 60, 0, b"", b"\x55"),     # absurd base
        _coded_header(8, 2, 1, ok_table, 1, 8, 60, b"", b"\x55"),          # absurd width
        _coded_header(8, 2, 1, ok_table, 2, 0, 40, b"", b"\x55"),          # table missing
        _coded_header(8, 2, 1, ok_table, 1, 8, 0, b"", b""),               # payload missing
        _coded_header(8, 2, 1, ok_table, 1, 8, 0, b"", b"\x55\x00"),       # trailing byte
    ]
    for i, h in enumerate(hostile):
        with pytest.raises(FormatError):
            hf.decode(h, 8)
        with pytest.raises(FormatError):
            hf.decode_reference(h, 8)


def _split_coded(buf, count):
    """(prefix up to and including the code table, header) of a coded stream."""
    h = hf.parse_header(buf, count)
    base = int(h.lane_bits.min())
    width = int((h.lane_bits - base).max()).bit_length()
    tail = (len(write_varint(h.lanes)) + len(write_varint(base)) + 1
            + (h.lanes * width + 7) // 8 + h.payload.size)
    return bytes(buf[:len(buf) - tail]), h


def _forge(prefix, lane_bits, payload):
    lb = np.asarray(lane_bits, dtype=np.int64)
    base = int(lb.min())
    width = int((lb - base).max()).bit_length()
    return (prefix + write_varint(lb.size) + write_varint(base) + bytes([width])
            + pack_fixed_msb(lb - base, width) + bytes(payload))


def test_forge_helper_reproduces_stream():
    sym, buf = _sample_stream(500, lanes=6)
    prefix, h = _split_coded(buf, sym.size)
    assert _forge(prefix, h.lane_bits, h.payload) == buf


def test_lane_end_mismatch_detected():
    # lane 0 holds short codes, lane 1 long ones; swapping their recorded
    # lengths keeps every size plausible but the lanes no longer end there
    sym = np.array([0, 1, 0, 2, 0, 3] * 4, dtype=np.uint8)  # lane 0: all zeros
    buf = hf.encode(sym, lanes=2)
    prefix, h = _split_coded(buf, sym.size)
    assert h.lane_bits[0] != h.lane_bits[1]
    forged = _forge(prefix, h.lane_bits[::-1], h.payload)
    with pytest.raises(FormatError):
        hf.decode(forged, sym.size)
    with pytest.raises(FormatError):
        hf.decode_reference(forged, sym.size)
    # moving one bit from lane 1 to lane 0 keeps the total but breaks both lanes
    lb = h.lane_bits.copy()
    lb[0] += 1
    lb[1] -= 1
    with pytest.raises(FormatError):
        hf.decode(_forge(prefix, lb, h.payload), sym.size)


def test_spec_examples():
    s = np.array([0, 1, 0, 2, 0, 0, 3, 0, 1])
    buf = hf.encode(s, 4, lanes=2)
    assert buf == bytes.fromhex("01 02 09 04 03 01 6F 02 07 01 80 1E B0")
    np.testing.assert_array_equal(hf.decode(buf, 9), s)
    assert hf.encode(np.full(5, 7), 8) == bytes.fromhex("01 01 05 08 07")
    assert hf.encode(np.zeros(0, np.int64)) == bytes.fromhex("01 00 00 01")
    # the same stream with a sparse table decodes identically
    sparse = bytes.fromhex("01 02 09 04 03 00") + bytes([1, 1, 2]) + bytes([0b00011011]) \
        + bytes.fromhex("02 07 01 80 1E B0")
    np.testing.assert_array_equal(hf.decode(sparse, 9), s)
    np.testing.assert_array_equal(hf.decode_reference(sparse, 9), s)
