"""linerice: per-line Rice coding of non-zero positions (spec/codecs/linerice.md).

The generic coder tests (round trips through every dtype, escapes, 64-bit
limits, bit flips, auto) run it through ``tests/test_codecs_lossy.py``; this
file checks what is particular to it: both orientations, the Rice parameter
rule, the gain on line-structured sparsity and hostile streams."""
from __future__ import annotations

import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from wcodec import FormatError, Pipeline, TruncatedError
from wcodec.codecs import ArraySpec, intcoding
from wcodec.codecs.linerice import COLUMNS, ROWS, decode_lines, encode_lines, matrix_shape
from wcodec.kernels import linerice

HEAD = struct.Struct("<BQQ")


def symbols_of(a: np.ndarray) -> np.ndarray:
    return intcoding.to_symbols(a, ArraySpec(a.shape, a.dtype.name))


@st.composite
def sparse_tensors(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12))
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 0.9, 1.0]))
    n = int(np.prod(shape, dtype=np.int64))
    keep = draw(hnp.arrays(np.float64, (n,), elements=st.floats(0, 1))) < density
    values = draw(hnp.arrays(np.int16, (n,), elements=st.integers(-5000, 5000)))
    return np.where(keep, values, 0).astype(np.int16).reshape(shape)


@settings(max_examples=150, deadline=None)
@given(a=sparse_tensors())
def test_both_axes_round_trip(a):
    x = symbols_of(a)
    for axis in (ROWS, COLUMNS):
        blob = encode_lines(x, a.shape, axis)
        assert blob[0] == axis
        assert np.array_equal(decode_lines(blob, a.shape, x.size), x)


@given(a=sparse_tensors())
def test_encoder_keeps_the_shorter_axis(a):
    x = symbols_of(a)
    sizes = [len(encode_lines(x, a.shape, axis)) for axis in (ROWS, COLUMNS)]
    enc = Pipeline([{"id": "linerice"}]).encode(a, ArraySpec(a.shape, "int16"))
    assert len(enc.data) == min(sizes)
    assert enc.data[0] == (ROWS if sizes[0] <= sizes[1] else COLUMNS)


def test_rice_parameter_is_the_smallest_that_satisfies_the_rule():
    """Brute force over the rule of the spec: smallest r >= 0 with k * 2^(r+1) >= z."""
    for alive in (1, 2, 3, 7, 64, 300, 1000, 4097):
        k = np.arange(0, alive + 1, dtype=np.int64)
        got = linerice.rice_parameters(k, alive)
        for kk, r in zip(k.tolist(), got.tolist()):
            z = alive - kk
            want = 0 if kk == 0 else next(r for r in range(40) if kk << (r + 1) >= z)
            assert r == want, (alive, kk)
    assert linerice.rice_parameters(np.array([1]), linerice.MAX_LINE).item() == 30


@pytest.mark.parametrize("shape", [(), (0,), (0, 4), (4, 0), (5,), (1, 1), (3, 4, 0)])
def test_degenerate_shapes(shape):
    a = np.full(shape, 3, np.int8)
    enc = Pipeline([{"id": "linerice"}]).encode(a, ArraySpec(shape, "int8"))
    assert np.array_equal(Pipeline([{"id": "linerice"}]).decode(enc.data, {},
                                                                 ArraySpec(shape, "int8")), a)
    assert matrix_shape(shape) == ((1, 1) if not shape else
                                   (shape[0], int(np.prod(shape[1:], dtype=np.int64))
                                    if shape[0] else 0))


def test_beats_zerorun_when_lines_differ_in_density():
    """A layer whose inputs keep very different numbers of weights (and some
    none): coding each column with its own Rice parameter is clearly smaller
    than one run-length table for all of them."""
    rng = np.random.default_rng(0)
    density = np.where(rng.random(784) < 0.2, 0.0, rng.beta(0.6, 12, 784))
    keep = rng.random((300, 784)) < density
    keep[rng.random(300) < 0.15] = False                        # dead hidden units
    a = np.where(keep, rng.integers(1, 8, (300, 784)), 0).astype(np.uint8)
    spec = ArraySpec(a.shape, "uint8")
    lr = Pipeline([{"id": "linerice"}]).encode(a, spec)
    zr = Pipeline([{"id": "zerorun"}]).encode(a, spec)
    assert len(lr.data) < 0.93 * len(zr.data)
    assert lr.data[0] == COLUMNS
    auto = Pipeline([{"id": "auto"}]).encode(a, spec)
    assert auto.pipeline.coder.codec_id == "linerice"


# ---------------------------------------------------------------------------
# hostile streams: (1000,) int32 is a 1000 x 1 matrix; axis 1 = one line of 1000
# ---------------------------------------------------------------------------

N = 1000
SPEC = ArraySpec((N,), "int32")
LIVE = b"\xff" * (N // 8)                       # every position of the one line live


def stream(axis=1, counts=(1,), unary=b"\x01", remainders=b"", values=(0,), mask=LIVE,
           counts_len=None, unary_len=None):
    c = intcoding.encode_symbols(np.array(counts, np.uint64))
    head = HEAD.pack(axis, len(c) if counts_len is None else counts_len,
                     len(unary) if unary_len is None else unary_len)
    return head + mask + c + unary + remainders + intcoding.encode_symbols(
        np.array(values, np.uint64))


def test_hostile_stream_builder_is_valid():
    # one non-zero at slot 0: k = 1, z = 999 -> r = 9; 9 remainder bits
    out = decode_lines(stream(remainders=b"\0\0"), (N,), N)
    assert out[0] == 1 and np.count_nonzero(out) == 1


HOSTILE = {
    "short header": HEAD.pack(1, 0, 0)[:10],
    "axis 2": stream(axis=2, remainders=b"\0\0"),
    "counts length 2^64-1": stream(counts_len=(1 << 64) - 1),
    "unary length 2^64-1": stream(unary_len=(1 << 64) - 1),
    "mask padding bits": HEAD.pack(0, 0, 0) + b"\x02",      # 1000 lines of length 1
    "count above live positions": stream(counts=(N + 1,)),
    "count above live (dead mask)": stream(mask=b"\x01" + bytes(N // 8 - 1), counts=(2,),
                                           unary=b"\x03", values=(0, 0)),
    "extra 1 bits in unary": stream(unary=b"\x03", remainders=b"\0\0"),
    "unary trailing byte": stream(unary=b"\x01\x00", remainders=b"\0\0"),
    "gap past line end": stream(unary=b"\x04", remainders=b"\0\0"),     # q = 2 > 1000 >> 9
    "remainder past line end": stream(unary=b"\x02", remainders=b"\xff\x01"),  # 512 + 511
    "values short": stream(remainders=b"\0\0", values=()),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_streams_fail_fast(case):
    t0 = time.perf_counter()
    with pytest.raises(FormatError):
        Pipeline([{"id": "linerice"}]).decode(HOSTILE[case], {}, SPEC)
    assert time.perf_counter() - t0 < 1.0


def test_truncated_remainders():
    with pytest.raises(TruncatedError):
        decode_lines(stream(remainders=b"\0\0")[:-14], (N,), N)  # values gone, 1 of 2 remainder bytes


def test_line_longer_than_the_limit_is_refused():
    shape = (1, linerice.MAX_LINE + 1)
    with pytest.raises(FormatError):
        decode_lines(HEAD.pack(0, 0, 0), shape, linerice.MAX_LINE + 1)


def test_huge_declared_tensor_fails_before_allocating():
    spec = ArraySpec((1 << 40,), "int8")
    blob = HEAD.pack(0, 12, 0) + bytes(1) + bytes(12)
    t0 = time.perf_counter()
    with pytest.raises(FormatError):
        Pipeline([{"id": "linerice"}]).decode(blob, {}, spec)
    assert time.perf_counter() - t0 < 1.0

