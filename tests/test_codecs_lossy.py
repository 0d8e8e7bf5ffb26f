"""The integer coders (bitpack, huffman, zerorun, sparse, auto) and the lossy
transforms (prune, cluster, quantize) through ``Pipeline`` and the container.

* every coder is exact on integer/bool arrays of every integer dtype (0-d,
  empty, constant, long zero runs, full uint16 alphabet, escaped values,
  non-contiguous / big-endian views);
* ``auto`` records the winning concrete coder and its size is the minimum;
* the transforms meet their error contracts (prune, cluster, uniform /
  ternary / step quantization) for every float dtype;
* zerorun beats Huffman on sparse streams, and Huffman/zerorun stay within a
  few percent of the order-0 entropy recorded in ``stats``;
* malformed streams (truncation, bit flips, hostile headers) raise a
  ``WcodecError`` subclass or decode to an array of the right shape/dtype.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import toc_of, INT_DTYPES, assert_bits_equal, shapes, storage_dtype, views
import wcodec
from wcodec import ChecksumError, ConfigError, FormatError, Pipeline, WcodecError
from wcodec.codecs import ArraySpec
from wcodec.codecs.cast import bfloat16_bits_to_float32, float32_to_bfloat16_bits
from wcodec.container import format as fmt
from wcodec.kernels.prune import prune_count

INT_AND_BOOL = INT_DTYPES + ["bool"]
FLOATS = ["float16", "bfloat16", "float32", "float64"]

CODERS = {
    "bitpack": [{"id": "bitpack"}],
    "huffman": [{"id": "huffman"}],
    "zerorun": [{"id": "zerorun"}],
    "linerice": [{"id": "linerice"}],
    "sparse": [{"id": "sparse"}],
    "sparse-4": [{"id": "sparse", "index_bits": 4}],
    "auto": [{"id": "auto"}],
    "auto+zstd": [{"id": "auto"}, {"id": "zstd", "level": 1}],
}
CANDIDATES = ["huffman", "zerorun", "sparse", "bitpack", "linerice"]

# the widest values every coder (bitpack included) takes in 64-bit tensors:
# zigzag symbols and escapes must fit 32 bits
CODABLE_64 = {"int64": (-(2 ** 31), 2 ** 31 - 1), "uint64": (0, 2 ** 32 - 1)}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def encode_decode(config, array, dtype, *, as_view=True):
    """Encode with ``config`` and decode with the pipeline the encoder reports
    (what a file records). Returns (decoded, Encoded)."""
    pipeline = config if isinstance(config, Pipeline) else Pipeline(config)
    spec = ArraySpec(tuple(np.shape(array)), dtype)
    enc = pipeline.encode(array, spec)
    assert isinstance(enc.data, bytes)
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in enc.streams.items())
    json.dumps(enc.stats, allow_nan=False)
    assert "auto" not in [c.codec_id for c in enc.pipeline.codecs]
    data = memoryview(enc.data) if as_view else enc.data
    streams = {k: memoryview(v) for k, v in enc.streams.items()} if as_view else enc.streams
    out = enc.pipeline.decode(data, streams, spec)
    assert isinstance(out, np.ndarray)
    assert out.shape == spec.shape and out.dtype == storage_dtype(dtype), (out.shape, out.dtype)
    return out, enc


def zigzag(values: np.ndarray) -> list[int]:
    """Independent reference of the signed -> symbol mapping, in Python ints."""
    if values.dtype == np.bool_ or values.dtype.kind == "u":
        return [int(v) for v in values.reshape(-1)]
    return [2 * int(v) if v >= 0 else -2 * int(v) - 1 for v in values.reshape(-1)]


def as_f64(array: np.ndarray, dtype: str) -> np.ndarray:
    """Values of a float tensor (bfloat16 given as uint16 bits) as float64."""
    if dtype == "bfloat16":
        return bfloat16_bits_to_float32(array).astype(np.float64)
    return np.asarray(array).astype(np.float64)


def to_dtype(x32: np.ndarray, dtype: str) -> np.ndarray:
    """float32 values in the carrier of ``dtype`` (bfloat16 -> uint16 bits)."""
    x32 = np.asarray(x32, dtype=np.float32)
    if dtype == "bfloat16":
        return float32_to_bfloat16_bits(x32)
    return x32.astype(storage_dtype(dtype))


def rel_ulp(dtype: str) -> float:
    """Relative rounding of the final conversion into ``dtype`` (float32 work)."""
    return {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}.get(dtype, 2.0 ** -23)


def unit_index(shape, granularity: str, axis: int, group_size: int | None) -> np.ndarray:
    """For every element (C order) the index of its quantization unit."""
    n = math.prod(shape)
    if granularity == "tensor" or (granularity == "channel" and len(shape) == 0):
        return np.zeros(shape, dtype=np.int64)
    if granularity == "group":
        return (np.arange(n) // group_size).reshape(shape)
    ax = axis % len(shape)
    idx = np.arange(shape[ax]).reshape([-1 if i == ax else 1 for i in range(len(shape))])
    return np.broadcast_to(idx, shape)


def f32_stream(enc, key: str) -> np.ndarray:
    return np.frombuffer(enc.streams[key], dtype="<f4")


@st.composite
def int_cases(draw, dtype=None, max_dims: int = 3):
    """(array maybe a non-contiguous/big-endian view, dtype, canonical copy)."""
    name = dtype or draw(st.sampled_from(INT_AND_BOOL))
    dt = storage_dtype(name)
    shape = draw(shapes(max_dims=max_dims))
    n = math.prod(shape)
    if name == "bool":
        lo, hi = 0, 1
    else:
        info = np.iinfo(dt)
        lo, hi = CODABLE_64.get(name, (int(info.min), int(info.max)))
    kind = draw(st.sampled_from(["full", "small", "runs", "extremes", "constant", "escape"]))
    if kind == "full":
        array = draw(hnp.arrays(dt, shape, elements=st.integers(lo, hi)))
    elif kind == "small":
        array = draw(hnp.arrays(dt, shape, elements=st.integers(max(lo, -3), min(hi, 3))))
    elif kind == "extremes":
        array = draw(hnp.arrays(dt, shape, elements=st.sampled_from(sorted({lo, hi, 0, min(hi, 1)}))))
    elif kind == "constant":
        array = np.full(shape, draw(st.integers(lo, hi)), dtype=dt)
    else:  # long zero runs ("runs") or rare escaped values ("escape"), from a seed
        seed = draw(st.integers(0, 2 ** 32 - 1))
        rng = np.random.default_rng(seed)
        density = draw(st.sampled_from([0.0, 0.001, 0.02, 0.2]))
        flat = np.zeros(n, dtype=np.int64 if name != "uint64" else np.uint64)
        hit = rng.random(n) < density
        if kind == "escape" and dt.itemsize >= 2 and name != "bool":
            big_lo, big_hi = max(lo, -(10 ** 9)), min(hi, 10 ** 9)
            flat[:] = rng.integers(max(lo, -2), min(hi, 2) + 1, n)
            flat[hit] = rng.integers(big_lo, big_hi + 1, int(hit.sum()))
        else:
            flat[hit] = rng.integers(lo, hi + 1, int(hit.sum()), dtype=np.int64
                                     if name != "uint64" else np.uint64)
        array = (flat != 0).reshape(shape) if name == "bool" else flat.astype(dt).reshape(shape)
    array = np.asarray(array, dtype=dt)
    return draw(views(array)), name, array


# ---------------------------------------------------------------------------
# integer coders: exact round trips
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("coder", list(CODERS))
@given(case=int_cases())
def test_coder_roundtrip_exact(coder, case):
    view, dtype, canonical = case
    pipeline = Pipeline(CODERS[coder])
    assert not pipeline.lossy
    out, enc = encode_decode(pipeline, view, dtype)
    assert_bits_equal(out, canonical, f"{coder} {dtype}{canonical.shape}")
    # the stats describe the symbols: fraction of zeros and distinct values
    n = canonical.size
    assert enc.stats["sparsity"] == pytest.approx(np.count_nonzero(canonical == 0) / n if n else 0.0)
    assert enc.stats["levels"] == (np.unique(canonical).size if n else 0)
    assert enc.stats["entropy_bits"] >= 0


@given(case=int_cases(), extra=st.integers(0, 8))
def test_bitpack_explicit_width_roundtrip_and_size(case, extra):
    """bitpack with ``bits``: no header, exactly ceil(n*bits/8) bytes; without:
    a 1-byte header and the minimum width (zigzag for signed dtypes)."""
    view, dtype, canonical = case
    symbols = zigzag(canonical)
    need = max(1, max(symbols, default=0).bit_length())
    bits = min(32, 8 * canonical.dtype.itemsize, need + extra)
    out, enc = encode_decode([{"id": "bitpack", "bits": bits}], view, dtype)
    assert_bits_equal(out, canonical, f"bitpack({bits}) {dtype}")
    assert len(enc.data) == (canonical.size * bits + 7) // 8
    _, enc_auto = encode_decode([{"id": "bitpack"}], view, dtype)
    assert enc_auto.data[0] == need
    assert len(enc_auto.data) == 1 + (canonical.size * need + 7) // 8


@pytest.mark.parametrize("dtype", INT_AND_BOOL)
def test_bitpack_width_wider_than_the_dtype_is_config_error(dtype):
    """Writers refuse a width past the dtype; readers accept it (spec/codecs/bitpack.md)."""
    width = 8 * storage_dtype(dtype).itemsize
    spec = ArraySpec((3,), dtype)
    values = np.zeros(3, storage_dtype(dtype))
    Pipeline([{"id": "bitpack", "bits": min(width, 32)}]).encode(values, spec)
    if width < 32:
        wide = Pipeline([{"id": "bitpack", "bits": width + 1}])
        wide.specs(spec)  # a file with it is valid
        with pytest.raises(ConfigError):
            wide.encode(values, spec)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_bitpack_width_too_small_is_config_error(dtype):
    a = np.array([0, 1, 100], dtype=storage_dtype(dtype))
    with pytest.raises(ConfigError):
        Pipeline([{"id": "bitpack", "bits": 3}]).encode(a, ArraySpec(a.shape, dtype))


def _special_arrays(dtype: str, rng) -> dict[str, np.ndarray]:
    dt = storage_dtype(dtype)
    if dtype == "bool":
        lo, hi = 0, 1
    else:
        lo, hi = CODABLE_64.get(dtype, (int(np.iinfo(dt).min), int(np.iinfo(dt).max)))
    runs = np.zeros(50_000, dtype=np.int64)
    runs[[0, 7, 8, 30_000, 49_999]] = [1, hi, lo or 1, 2, hi]
    out = {
        "0-d": np.array(hi, dtype=dt),
        "0-d zero": np.array(0, dtype=dt),
        "empty": np.zeros((0,), dtype=dt),
        "empty 2-d": np.zeros((3, 0), dtype=dt),
        "single": np.array([lo], dtype=dt),
        "all-equal": np.full((17, 3), hi, dtype=dt),
        "all-zero long": np.zeros(100_000, dtype=dt),
        "long zero runs": (runs != 0) if dtype == "bool" else runs.astype(dt),
        "extremes": np.array([lo, hi, 0, hi, lo] * 7, dtype=dt),
        "random": (rng.integers(0, 2, 3001).astype(bool) if dtype == "bool"
                   else rng.integers(lo, hi, 3001, endpoint=True, dtype=np.int64
                                     if dtype != "uint64" else np.uint64).astype(dt)),
    }
    if dtype not in ("bool", "int8", "uint8"):
        esc = rng.integers(-2, 3, 20_000) if lo < 0 else rng.integers(0, 3, 20_000)
        esc[::97] = rng.integers(max(lo, -(10 ** 9)), min(hi, 10 ** 9), esc[::97].size)
        esc[5] = hi
        esc[6] = lo
        out["escapes"] = esc.astype(dt)
    return out


@pytest.mark.parametrize("dtype", INT_AND_BOOL)
def test_coders_special_arrays(dtype):
    """Deterministic sweep of the awkward cases, every coder x dtype."""
    rng = np.random.default_rng(7)
    for case, array in _special_arrays(dtype, rng).items():
        for coder, config in CODERS.items():
            out, _ = encode_decode(config, array, dtype)
            assert_bits_equal(out, array, f"{coder} {dtype} {case}")


@pytest.mark.parametrize("coder", list(CODERS))
def test_uint16_full_alphabet(coder):
    """All 65536 uint16 symbols (max Huffman alphabet, all escaped above 4094)."""
    rng = np.random.default_rng(1)
    a = rng.permutation(np.repeat(np.arange(65536, dtype=np.uint16), 2)).reshape(256, 512)
    out, _ = encode_decode(CODERS[coder], a, "uint16")
    assert_bits_equal(out, a, coder)
    b = np.arange(65536, dtype=np.uint16)[::-1]  # a reversed (negative-stride) view
    out, _ = encode_decode(CODERS[coder], b, "uint16")
    assert_bits_equal(out, np.ascontiguousarray(b), coder)


@pytest.mark.parametrize("coder", ["huffman", "zerorun", "linerice", "sparse", "auto"])
@pytest.mark.parametrize("dtype", ["int32", "int64", "uint32"])
def test_escape_path_far_beyond_4095(coder, dtype):
    """Values far beyond the escape symbol 4095 (up to the int32/uint32 range)
    are exact, and a handful of them costs a few bytes each plus at most the
    one extra Huffman symbol (ESCAPE), not a table of 2^32 entries."""
    rng = np.random.default_rng(3)
    lo, hi = (0, 2 ** 32 - 1) if dtype == "uint32" else (-(2 ** 31), 2 ** 31 - 1)
    base = rng.integers(0 if lo == 0 else -3, 4, 100_000).astype(storage_dtype(dtype))
    _, plain = encode_decode(CODERS[coder], base, dtype)
    spiked = base.copy()
    spiked[[3, 500, 99_999]] = [hi, lo if lo else 4096, 123_456_789]
    spiked[[10, 11]] = 4095 if dtype == "uint32" else [4095, -4096]
    out, enc = encode_decode(CODERS[coder], spiked, dtype)
    assert_bits_equal(out, spiked, f"{coder} {dtype}")
    # (a new rare symbol can lengthen the codes of frequent ones: up to 1/4
    # bit per symbol on 4 equiprobable symbols, inherent to Huffman coding)
    assert len(enc.data) <= 1.15 * len(plain.data) + 5 * 8 + 64


# largest symbol the entropy coders take (spec/codecs/intcoding.md): 4095 plus a
# 32-bit escape value; zerorun codes a value v as the run symbol v + 1
MAX_SYMBOL = 2 ** 32 + 4094
LIMITS_64 = {  # coder -> dtype -> (smallest, largest) codable value
    "huffman": {"uint64": (0, MAX_SYMBOL), "int64": (-(2 ** 31) - 2047, 2 ** 31 + 2047)},
    "sparse": {"uint64": (0, MAX_SYMBOL), "int64": (-(2 ** 31) - 2047, 2 ** 31 + 2047)},
    "zerorun": {"uint64": (0, MAX_SYMBOL - 1), "int64": (-(2 ** 31) - 2047, 2 ** 31 + 2046)},
    # linerice codes a non-zero symbol v as v - 1
    "linerice": {"uint64": (0, MAX_SYMBOL + 1), "int64": (-(2 ** 31) - 2048, 2 ** 31 + 2047)},
}


@pytest.mark.parametrize("coder", list(LIMITS_64))
@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_entropy_coders_64_bit_limits(coder, dtype):
    """64-bit tensors: exact up to the documented symbol limit, a ConfigError
    on encode one past it (never a silently wrong stream)."""
    lo, hi = LIMITS_64[coder][dtype]
    dt = storage_dtype(dtype)
    spec = ArraySpec((60,), dtype)
    a = np.array([0, 1, lo, hi, 5, hi, 0, 0, lo, 3] * 6, dtype=dt)
    out, _ = encode_decode([{"id": coder}], a, dtype)
    assert_bits_equal(out, a, f"{coder} {dtype} at the limit")
    for beyond in ([hi + 1] if dtype == "uint64" else [hi + 1, lo - 1]) + [int(np.iinfo(dt).max)]:
        b = a.copy()
        b[7] = beyond
        with pytest.raises(ConfigError):
            Pipeline([{"id": coder}]).encode(b, spec)


def test_auto_skips_candidates_that_cannot_code_the_values():
    a = np.array([0, 2 ** 32 + 100, 3] * 100, dtype=np.uint64)
    spec = ArraySpec(a.shape, "uint64")
    sizes = {c: len(Pipeline([{"id": c}]).encode(a, spec).data)
             for c in ("huffman", "zerorun", "sparse", "linerice")}
    out, enc = encode_decode([{"id": "auto"}], a, "uint64")
    assert_bits_equal(out, a, "auto")
    assert len(enc.data) == min(sizes.values())


def test_auto_among_candidates_that_all_code_wide_values():
    a = np.array([0, 2 ** 32 + 100, 3] * 100, dtype=np.uint64)
    out, enc = encode_decode([{"id": "auto", "candidates": ["sparse", "huffman"]}], a, "uint64")
    assert_bits_equal(out, a, "auto")
    assert enc.pipeline.coder.codec_id == "huffman"


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_bitpack_refuses_values_wider_than_32_bits(dtype):
    """Documented in spec/codecs/bitpack.md: values needing > 32 bits are a
    ConfigError on encode (not a silent truncation)."""
    a = np.array([0, 2 ** 40], dtype=storage_dtype(dtype))
    with pytest.raises(ConfigError):
        Pipeline([{"id": "bitpack"}]).encode(a, ArraySpec(a.shape, dtype))


@pytest.mark.parametrize("coder", ["bitpack", "huffman", "zerorun", "linerice", "sparse", "auto"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_coders_refuse_float_tensors(coder, dtype):
    with pytest.raises(ConfigError):
        Pipeline([{"id": coder}]).specs(ArraySpec((4,), dtype))


# ---------------------------------------------------------------------------
# auto
# ---------------------------------------------------------------------------

@given(case=int_cases(), candidates=st.lists(st.sampled_from(CANDIDATES), min_size=1,
                                             max_size=4, unique=True),
       zstd=st.booleans())
def test_auto_picks_the_smallest_candidate(case, candidates, zstd):
    view, dtype, canonical = case
    tail = [{"id": "zstd", "level": 1}] if zstd else []
    auto = Pipeline([{"id": "auto", "candidates": candidates}] + tail)
    out, enc = encode_decode(auto, view, dtype)
    assert_bits_equal(out, canonical, f"auto{candidates} {dtype}")
    spec = ArraySpec(canonical.shape, dtype)
    sizes = {c: len(Pipeline([{"id": c}] + tail).encode(canonical, spec).data) for c in candidates}
    winner = enc.pipeline.coder.codec_id
    assert winner in candidates
    assert len(enc.data) == min(sizes.values()) == sizes[winner]
    # ties go to the first candidate in the configured order
    assert winner == next(c for c in candidates if sizes[c] == min(sizes.values()))
    assert enc.pipeline.get_config()[0] == {"id": winner}
    assert [c["id"] for c in enc.pipeline.get_config()][1:] == [t["id"] for t in tail]
    # the stats are those of the winner
    win = Pipeline([{"id": winner}] + tail).encode(canonical, spec)
    assert enc.stats == win.stats and enc.data == win.data


@given(case=int_cases(), coder=st.sampled_from(CANDIDATES))
def test_size_floor_never_exceeds_the_encoded_size(case, coder):
    """``auto`` skips a coder on its floor, so a floor above the real size
    would make auto miss the smallest coding."""
    view, dtype, canonical = case
    spec = ArraySpec(canonical.shape, dtype)
    codec = Pipeline([{"id": coder}]).coder
    try:
        size = len(Pipeline([{"id": coder}]).encode(canonical, spec).data)
    except ConfigError:
        return
    floor = codec.size_floor(view, spec)
    assert 0 <= floor <= size
    if coder == "bitpack":
        assert floor == size  # exact


@given(symbols=st.one_of(
    hnp.arrays(np.uint8, st.integers(0, 300), elements=st.integers(0, 3)),
    hnp.arrays(np.uint16, st.integers(0, 300), elements=st.integers(0, 65535)),
    hnp.arrays(np.uint64, st.integers(0, 300), elements=st.sampled_from([0, 1, 4094, 4095, 2 ** 30]))))
def test_symbol_stream_floor(symbols):
    from wcodec.codecs import intcoding
    size = len(intcoding.encode_symbols(symbols))
    assert intcoding.MIN_STREAM <= intcoding.stream_floor(symbols) <= size
    if symbols.size == 0:
        assert size == intcoding.MIN_STREAM


@pytest.mark.parametrize("density, skipped", [(1.0, True), (0.03, False)])
def test_auto_skips_a_coder_that_cannot_win(monkeypatch, density, skipped):
    """On a dense tensor linerice's floor (one unary bit per non-zero on top of
    the values' entropy) is above Huffman's size: it is not even encoded."""
    from wcodec.codecs.linerice import LineRice
    calls = []
    real = LineRice.encode
    monkeypatch.setattr(LineRice, "encode", lambda self, *a: calls.append(1) or real(self, *a))
    rng = np.random.default_rng(1)
    a = np.rint(rng.laplace(0, 4, (200, 300))).astype(np.int16)
    a[rng.random(a.shape) >= density] = 0
    spec = ArraySpec(a.shape, "int16")
    enc = Pipeline([{"id": "auto"}]).encode(a, spec)
    assert calls == ([] if skipped else [1])
    sizes = {c: len(Pipeline([{"id": c}]).encode(a, spec).data) for c in CANDIDATES}
    assert len(enc.data) == min(sizes.values())


def test_auto_itself_cannot_decode():
    a = np.arange(10, dtype=np.int16)
    spec = ArraySpec(a.shape, "int16")
    auto = Pipeline([{"id": "auto"}])
    enc = auto.encode(a, spec)
    assert enc.pipeline is not auto
    with pytest.raises(FormatError):
        auto.decode(enc.data, {}, spec)


@pytest.mark.parametrize("candidates", [[], ["auto"], ["cast"], ["zstd"], ["nope"], "huffman",
                                        ["huffman", 3]])
def test_auto_bad_candidates(candidates):
    with pytest.raises(WcodecError):
        Pipeline([{"id": "auto", "candidates": candidates}])


def test_auto_after_transforms_records_transforms_and_winner():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 96)).astype(np.float32)
    auto = Pipeline([{"id": "prune", "sparsity": 0.95}, {"id": "cluster", "bits": 3},
                     {"id": "auto"}])
    out, enc = encode_decode(auto, x, "float32")
    ids = [c["id"] for c in enc.pipeline.get_config()]
    assert ids[:2] == ["prune", "cluster"] and ids[2] in CANDIDATES
    # on a 95%-sparse index stream the plain coders lose
    assert ids[2] in ("zerorun", "sparse", "linerice")
    assert np.count_nonzero(out == 0) == prune_count(x.size, 0.95)


@pytest.mark.parametrize("kind", ["sparse", "dense", "wide"])
def test_auto_through_the_container(kind, tmp_path):
    """The file records the winning coder, never 'auto', with the same bytes."""
    rng = np.random.default_rng(5)
    if kind == "sparse":
        a = np.where(rng.random(20_000) < 0.97, 0, rng.integers(-5, 6, 20_000)).astype(np.int32)
    elif kind == "dense":
        a = np.rint(rng.laplace(0, 4, (100, 200))).astype(np.int16)
    else:
        a = rng.integers(0, 2 ** 16, 5000).astype(np.uint16)
    recipe = {"rules": [{"pipeline": [{"id": "auto"}]}]}
    path = str(tmp_path / "a.wcodec")
    wcodec.save_file({"t": a}, path, recipe=recipe)
    spec = ArraySpec(a.shape, a.dtype.name)
    sizes = {c: len(Pipeline([{"id": c}]).encode(a, spec).data) for c in CANDIDATES}
    with wcodec.open(path) as f:
        info = f.info("t")
        assert [c["id"] for c in info.pipeline] != ["auto"]
        winner = info.pipeline[0]["id"]
        assert winner in CANDIDATES
        data = [s for s in info.streams if s.name == "data"][0]
        assert data.length == min(sizes.values()) == sizes[winner]
        assert_bits_equal(f.get_tensor("t"), a, kind)
    if kind == "sparse":
        assert winner in ("zerorun", "sparse", "linerice")
    if kind == "wide":
        assert winner == "bitpack"


# ---------------------------------------------------------------------------
# transforms: error contracts
# ---------------------------------------------------------------------------

@st.composite
def float_cases(draw, dtypes_=FLOATS, min_dims: int = 0, max_dims: int = 3, zeros: bool = True):
    """(array in its carrier dtype, dtype name, float64 values): weight-like
    normals (some exact zeros and repeated values), any shape incl. 0-d/empty."""
    name = draw(st.sampled_from(dtypes_))
    shape = draw(st.one_of(
        hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=9),
        st.sampled_from([s for s in [(), (0,), (1,), (2, 0), (1, 1), (7, 13), (16, 40),
                                     (3, 5, 7), (130,), (65, 3)] if len(s) >= min_dims])))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    scale = draw(st.sampled_from([1e-3, 0.05, 1.0, 40.0]))
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.standard_normal(shape) * scale, dtype=np.float64)
    if zeros and draw(st.booleans()):
        x[np.asarray(rng.random(shape)) < 0.3] = 0.0
    if draw(st.booleans()) and x.size > 2:  # ties
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, flat.size // 3)] = flat[0]
    array = to_dtype(x.astype(np.float32), name) if name != "float64" else x
    array = np.asarray(array).reshape(shape)
    return array, name, as_f64(array, name)


def valid_axis(axis: int, ndim: int) -> int:
    """``axis`` if it names a dimension (negative ones too), else wrapped into range."""
    return axis if not ndim or -ndim <= axis < ndim else axis % ndim


@pytest.mark.parametrize("config", [
    {"id": "quantize", "bits": 8, "axis": 2},
    {"id": "quantize", "bits": 8, "axis": -3},
    {"id": "quantize", "mode": "ternary", "axis": 5},
    {"id": "quantize", "mode": "step", "step": 0.1, "axis": 2},
    {"id": "prune", "sparsity": 0.5, "structure": "channels", "axis": 2},
    {"id": "prune", "sparsity": 0.5, "structure": "channels", "axis": -3},
])
def test_channel_axis_out_of_range_is_config_error(config):
    with pytest.raises(ConfigError):
        Pipeline([config, {"id": "raw"} if config["id"] == "prune" else {"id": "huffman"}]).encode(
            np.ones((4, 5), np.float32), ArraySpec((4, 5), "float32"))
    # a 0-d tensor is one channel whatever the axis
    encode_decode([config, {"id": "raw"} if config["id"] == "prune" else {"id": "huffman"}],
                  np.array(1.5, np.float32), "float32")


def f32_magnitudes(values: np.ndarray) -> np.ndarray:
    """|values| after the codecs' float32 conversion."""
    return np.abs(values.astype(np.float32)).astype(np.float64)


@given(case=float_cases(), sparsity=st.one_of(st.sampled_from([0.0, 0.5, 0.9, 1.0]),
                                              st.floats(0, 1)))
def test_prune_exact_sparsity_and_kept_bits(case, sparsity):
    array, dtype, x = case
    out, enc = encode_decode([{"id": "prune", "sparsity": sparsity}, {"id": "raw"}], array, dtype)
    n = array.size
    k = prune_count(n, sparsity)
    # floor(sparsity * n), a product a few ulps below an integer counting as it
    p = sparsity * n
    assert k == math.floor(p) or (k == math.floor(p) + 1 and k - p <= 1e-12 * max(1.0, p))
    assert enc.stats["pruned"] == pytest.approx(k / n if n else 0.0)
    y = as_f64(out, dtype)
    same = bit_view(out) == bit_view(array)  # bit-exact, element by element
    assert np.all(same | (y == 0)), "a weight changed to something other than zero"
    changed = ~same
    assert np.count_nonzero(y == 0) >= k
    assert np.count_nonzero(changed) <= k
    if not np.any(x == 0):
        assert np.count_nonzero(y == 0) == k
    kept = same & (x != 0)
    if np.any(kept) and np.any(changed):
        mag = f32_magnitudes(x)
        assert mag[changed].max() <= mag[kept].min()


def bit_view(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(f"u{a.dtype.itemsize}").reshape(a.shape)


@given(case=float_cases(), threshold=st.sampled_from([0.0, 1e-3, 0.05, 1.0, 100.0]))
def test_prune_threshold(case, threshold):
    array, dtype, x = case
    out, enc = encode_decode([{"id": "prune", "threshold": threshold}, {"id": "raw"}], array, dtype)
    mag = f32_magnitudes(x)
    keep = mag > threshold
    assert np.all(as_f64(out, dtype)[~keep] == 0)
    assert_bits_equal(np.asarray(out)[keep], np.asarray(array)[keep], "kept")
    assert enc.stats["pruned"] == pytest.approx(np.count_nonzero(~keep) / x.size if x.size else 0)


@given(case=float_cases(min_dims=1, zeros=False), sparsity=st.sampled_from([0.25, 0.5, 0.75, 0.9]),
       axis=st.integers(-3, 2), norm=st.sampled_from(["l1", "l2"]))
def test_structured_prune_zeroes_whole_slices(case, sparsity, axis, norm):
    array, dtype, x = case
    axis = valid_axis(axis, x.ndim)
    ax = axis % x.ndim
    out, enc = encode_decode([{"id": "prune", "sparsity": sparsity, "structure": "channels",
                               "axis": axis, "norm": norm}, {"id": "raw"}], array, dtype)
    channels = x.shape[ax]
    inner = math.prod(x.shape[:ax] + x.shape[ax + 1:])

    def rows(a):
        return np.moveaxis(np.asarray(a), ax, 0).reshape(channels, inner)

    y, orig, got = rows(as_f64(out, dtype)), rows(array), rows(out)
    xs = rows(x.astype(np.float32).astype(np.float64))
    zero_rows = np.all(y == 0, axis=1) & np.any(xs != 0, axis=1)
    for c in range(channels):
        if not np.all(y[c] == 0):
            assert_bits_equal(got[c], orig[c], f"kept slice {c}")
    expect = prune_count(channels, sparsity)
    if xs.shape[1]:
        assert np.count_nonzero(np.all(y == 0, axis=1)) >= expect
        assert zero_rows.sum() <= expect
    norms = np.abs(xs).sum(axis=1) if norm == "l1" else np.sqrt((xs ** 2).sum(axis=1))
    kept = ~np.all(y == 0, axis=1)
    if zero_rows.any() and kept.any():
        assert norms[zero_rows].max() <= norms[kept].min() * (1 + 1e-6)


def test_structured_prune_rows_exactly():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 30)).astype(np.float32)
    w[[3, 9, 17, 22]] *= 1e-3  # the four weakest rows
    out, _ = encode_decode([{"id": "prune", "sparsity": 0.1, "structure": "channels"},
                            {"id": "raw"}], w, "float32")
    zero = np.flatnonzero(np.all(out == 0, axis=1))
    assert zero.tolist() == [3, 9, 17, 22]
    keep = np.setdiff1d(np.arange(40), zero)
    assert_bits_equal(out[keep], w[keep], "kept rows")
    out, _ = encode_decode([{"id": "prune", "sparsity": 0.5, "structure": "channels", "axis": 1},
                            {"id": "raw"}], w, "float32")
    assert np.count_nonzero(np.all(out == 0, axis=0)) == 15
    assert not np.any(np.all(out == 0, axis=1))


@given(case=float_cases(), bits=st.integers(1, 6), keep_zero=st.booleans(),
       init=st.sampled_from(["linear", "density", "random"]), prune=st.booleans(),
       codebook_dtype=st.sampled_from([None, "float32", "float16"]))
def test_cluster_contract(case, bits, keep_zero, init, prune, codebook_dtype):
    array, dtype, x = case
    head = [{"id": "prune", "sparsity": 0.5}] if prune else []
    stage_config = {"id": "cluster", "bits": bits, "keep_zero": keep_zero, "init": init}
    if codebook_dtype:
        stage_config["codebook_dtype"] = codebook_dtype
    f16 = codebook_dtype == "float16"
    stage = len(head)
    try:
        out, enc = encode_decode(head + [stage_config, {"id": "huffman"}], array, dtype)
    except WcodecError as exc:  # only when a float32 centroid rounds to float16 infinity
        assert f16 and "float16 range" in str(exc)
        _, enc32 = encode_decode(head + [{**stage_config, "codebook_dtype": "float32"},
                                         {"id": "huffman"}], array, dtype)
        assert np.abs(f32_stream(enc32, f"{stage}.codebook")).max() >= 65520
        return
    blob = enc.streams[f"{stage}.codebook"]
    codebook = np.frombuffer(blob, "<f2" if f16 else "<f4").astype(np.float32)
    assert len(blob) == (2 if f16 else 4) * 2 ** bits
    assert enc.stats["clusters"] == 2 ** bits
    y = as_f64(out, dtype)
    assert np.unique(y).size <= 2 ** bits
    # every output is a codebook entry (after conversion into the tensor dtype)
    entries = as_f64(to_dtype(codebook, dtype), dtype)
    assert np.all(np.isin(y, entries))
    if prune:  # what the cluster stage saw
        x = as_f64(encode_decode(head + [{"id": "raw"}], array, dtype)[0], dtype)
    if keep_zero:
        assert codebook[0] == 0.0
        assert np.all(y[x == 0] == 0)
        usable = codebook[1:].astype(np.float64)
        nz = x != 0
    else:
        usable = codebook.astype(np.float64)
        nz = np.ones(x.shape, bool)
    if dtype in ("float32", "float64") and nz.any():
        xv = x[nz]
        best = np.min(np.abs(xv.reshape(-1, 1) - usable.reshape(1, -1)), axis=1)
        err = np.abs(xv - y[nz])
        tol = 2.0 ** -22 * np.maximum(np.abs(xv), np.abs(usable).max())
        assert np.all(err <= best + tol)


def test_cluster_float16_codebook_is_stored_in_2_bytes_and_written_only_when_asked(tmp_path):
    w = (np.random.default_rng(3).standard_normal((64, 32)) * 0.05).astype(np.float32)
    files = {}
    for dtype in (None, "float16"):
        stage = {"id": "cluster", "bits": 4, **({"codebook_dtype": dtype} if dtype else {})}
        out, enc = encode_decode([stage, {"id": "huffman"}], w, "float32")
        files[dtype] = (out, enc.streams["0.codebook"])
        path = tmp_path / f"{dtype}.wcodec"
        wcodec.save_file({"w": w}, path, recipe={"name": "t", "rules": [
            {"pipeline": [stage, {"id": "huffman"}]}]})
        written = toc_of(path.read_bytes())[1]["tensors"][0]["pipeline"][0]
        assert ("codebook_dtype" in written) == (dtype is not None)
    (out32, cb32), (out16, cb16) = files[None], files["float16"]
    assert len(cb32) == 64 and len(cb16) == 32
    c16 = np.frombuffer(cb16, "<f2")
    assert np.all(np.diff(c16[1:].astype(np.float32)) >= 0) and c16[0] == 0
    # every weight sits on its nearest float16 centroid; centroids moved by <= 2^-11 relative
    near = np.abs(w.reshape(-1, 1) - c16[1:].astype(np.float32)).min(1)
    assert np.allclose(np.abs(w - out16).ravel(), near, atol=1e-9)
    c32 = np.frombuffer(cb32, "<f4")
    assert np.all(np.abs(c16.astype(np.float32) - c32) <= 2.0 ** -11 * np.abs(c32) + 2.0 ** -25)


@given(dtype=st.sampled_from(FLOATS), bits=st.integers(1, 5), keep_zero=st.booleans(),
       data=st.data())
def test_cluster_few_distinct_values_are_exact(dtype, bits, keep_zero, data):
    """At most K-1 (keep_zero) or K distinct values: every value is its own
    centroid, so the tensor comes back bit-exact (-0.0 as +0.0). float64
    values are exact when float32 can hold them (the codebook is float32)."""
    k = 2 ** bits - (1 if keep_zero else 0)
    pool = data.draw(st.lists(st.floats(-1e4, 1e4, width=16 if dtype == "float16" else 32,
                                        allow_subnormal=False),
                              min_size=1, max_size=k, unique=True))
    pool32 = np.array(pool, dtype=np.float32)
    if dtype == "bfloat16":  # values a bfloat16 can hold
        pool32 = bfloat16_bits_to_float32(float32_to_bfloat16_bits(pool32))
    pool32 = np.unique(pool32[pool32 != 0] if keep_zero else pool32)
    if keep_zero and data.draw(st.booleans()):
        pool32 = np.concatenate([pool32, [0.0, -0.0]]).astype(np.float32)
    n = data.draw(st.integers(1, 300))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    x32 = pool32[rng.integers(0, pool32.size, n)] if pool32.size else np.zeros(n, np.float32)
    array = x32.astype(np.float64) if dtype == "float64" else to_dtype(x32, dtype)
    out, _ = encode_decode([{"id": "cluster", "bits": bits, "keep_zero": keep_zero},
                            {"id": "huffman"}], array, dtype)
    got, want = as_f64(out, dtype), as_f64(array, dtype)
    assert np.array_equal(got, want)
    if keep_zero:  # -0.0 comes back as +0.0
        assert not np.any(np.signbit(got[got == 0]))


@given(case=float_cases(), bits=st.integers(2, 8), scheme=st.sampled_from(["symmetric", "affine"]),
       granularity=st.sampled_from(["tensor", "channel", "group"]), axis=st.integers(-3, 2),
       group_size=st.sampled_from([1, 3, 7, 64, 100]), coder=st.sampled_from(["huffman", "bitpack",
                                                                             "auto"]))
def test_uniform_quantize_error_bound(case, bits, scheme, granularity, axis, group_size, coder):
    array, dtype, x = case
    axis = valid_axis(axis, x.ndim)
    q = {"id": "quantize", "bits": bits, "scheme": scheme, "granularity": granularity,
         "axis": axis, "group_size": group_size}
    out, enc = encode_decode([q, {"id": coder}], array, dtype)
    units = {"tensor": 1, "group": -(-x.size // group_size),
             "channel": x.shape[axis % x.ndim] if x.ndim else 1}[granularity]
    scale = f32_stream(enc, "0.scale").astype(np.float64)
    assert scale.size == units and np.all(scale > 0)
    if scheme == "affine":
        zp = np.frombuffer(enc.streams["0.zero_point"], np.uint8)
        assert zp.size == units and np.all(zp <= 2 ** bits - 1)
    else:
        assert "0.zero_point" not in enc.streams
    qmax = 2 ** bits - 1 if scheme == "affine" else 2 ** (bits - 1) - 1
    assert enc.stats["levels"] <= (qmax + 1 if scheme == "affine" else 2 * qmax + 1)
    if not x.size:
        return
    u = unit_index(x.shape, granularity, axis, group_size)
    s = scale[u]
    x32 = x.astype(np.float32).astype(np.float64)
    y = as_f64(out, dtype)
    allow = s / 2 * (1 + 2.0 ** -20) + rel_ulp(dtype) * (np.abs(x32) + s) + 1e-45
    if dtype == "float64":
        allow = allow + np.abs(x) * 2.0 ** -24
    err = np.abs(x - y)
    assert np.all(err <= allow), f"max excess {np.max(err - allow)}"
    assert np.all(y[x == 0] == 0), "zero must be exact"
    # at most 2^bits distinct values per unit
    for unit in np.unique(u)[:50]:
        assert np.unique(y[u == unit]).size <= qmax + 1 + (0 if scheme == "affine" else qmax)


def test_uniform_quantize_short_last_group():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(100).astype(np.float32)
    x[64:] *= 100  # the short last group has a different range
    out, enc = encode_decode([{"id": "quantize", "bits": 4, "granularity": "group",
                               "group_size": 64}, {"id": "bitpack", "bits": 4}], x, "float32")
    scale = f32_stream(enc, "0.scale")
    assert scale.size == 2
    assert scale[1] == pytest.approx(np.abs(x[64:]).max() / 7, rel=1e-6)
    assert scale[0] == pytest.approx(np.abs(x[:64]).max() / 7, rel=1e-6)
    assert np.all(np.abs(out[:64] - x[:64]) <= scale[0] / 2 * (1 + 1e-6))
    assert np.all(np.abs(out[64:] - x[64:]) <= scale[1] / 2 * (1 + 1e-6))
    assert len(enc.data) == 50  # 100 x 4 bits


@given(case=float_cases(), granularity=st.sampled_from(["tensor", "channel"]),
       axis=st.integers(-3, 2), ratio=st.sampled_from([0.0, 0.3, 0.7, 1.5]))
def test_ternary_three_levels_per_unit(case, granularity, axis, ratio):
    array, dtype, x = case
    axis = valid_axis(axis, x.ndim)
    out, enc = encode_decode([{"id": "quantize", "mode": "ternary", "granularity": granularity,
                               "axis": axis, "threshold_ratio": ratio}, {"id": "zerorun"}],
                             array, dtype)
    scale = f32_stream(enc, "0.scale")
    units = 1 if granularity == "tensor" or not x.ndim else x.shape[axis % x.ndim]
    assert scale.size == units and np.all(scale >= 0)
    assert enc.stats["levels"] <= 3
    if not x.size:
        return
    u = unit_index(x.shape, granularity, axis, None)
    y = as_f64(out, dtype)
    s = as_f64(to_dtype(scale, dtype), dtype)[u]
    assert np.all((y == 0) | (y == s) | (y == -s))
    assert np.all(np.sign(y) * np.sign(x) >= 0)  # a kept weight keeps its sign
    for unit in np.unique(u)[:50]:
        assert np.unique(y[u == unit]).size <= 3


@given(case=float_cases(), granularity=st.sampled_from(["tensor", "channel"]),
       axis=st.integers(-3, 2),
       step=st.one_of(st.builds(lambda r: ("step_ratio", r), st.sampled_from([0.05, 0.25, 1.0, 3.0])),
                      st.builds(lambda s: ("step", s), st.sampled_from([1e-3, 0.1, 2.0])))
       , coder=st.sampled_from(["huffman", "zerorun", "linerice", "sparse", "auto"]))
def test_step_quantize_error_bound(case, granularity, axis, step, coder):
    array, dtype, x = case
    axis = valid_axis(axis, x.ndim)
    key, value = step
    out, enc = encode_decode([{"id": "quantize", "mode": "step", key: value,
                               "granularity": granularity, "axis": axis}, {"id": coder}],
                             array, dtype)
    steps = f32_stream(enc, "0.step").astype(np.float64)
    units = 1 if granularity == "tensor" or not x.ndim else x.shape[axis % x.ndim]
    assert steps.size == units and np.all(steps > 0)
    if not x.size:
        return
    u = unit_index(x.shape, granularity, axis, None)
    x32 = x.astype(np.float32).astype(np.float64)
    if key == "step":
        assert np.all(steps == np.float32(value))
    else:  # step = ratio x std of the unit (max|w| for a constant unit, 1.0 if all zero)
        for unit in np.unique(u)[:20]:
            vals = x32[u == unit]
            sd = vals.std() if vals.std() > 0 else np.abs(vals).max()
            expect = value * sd if sd > 0 else 1.0
            assert steps[unit] == pytest.approx(max(expect, 2.0 ** -126), rel=1e-5)
    y = as_f64(out, dtype)
    s = steps[u]
    allow = s / 2 * (1 + 2.0 ** -20) + rel_ulp(dtype) * (np.abs(x32) + s) + 1e-45
    if dtype == "float64":
        allow = allow + np.abs(x) * 2.0 ** -24
    assert np.all(np.abs(x - y) <= allow)


TRANSFORMS = {
    "prune": [{"id": "prune", "sparsity": 0.7}, {"id": "bytegroup"}],
    "prune-channels": [{"id": "prune", "sparsity": 0.5, "structure": "channels"}, {"id": "raw"}],
    "prune+cluster": [{"id": "prune", "sparsity": 0.9}, {"id": "cluster", "bits": 4},
                      {"id": "zerorun"}],
    "cluster": [{"id": "cluster", "bits": 3, "keep_zero": False}, {"id": "bitpack", "bits": 3}],
    "int8-channel": [{"id": "quantize", "bits": 8}, {"id": "huffman"}],
    "int4-group": [{"id": "quantize", "bits": 4, "granularity": "group", "group_size": 32},
                   {"id": "bitpack", "bits": 4}],
    "affine-tensor": [{"id": "quantize", "bits": 5, "scheme": "affine", "granularity": "tensor"},
                      {"id": "sparse"}],
    "ternary": [{"id": "quantize", "mode": "ternary"}, {"id": "zerorun"}],
    "step": [{"id": "quantize", "mode": "step", "step_ratio": 0.2}, {"id": "auto"}],
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transforms_through_the_container(name, dtype, tmp_path):
    """A file holds exactly what the pipeline produced: same decoded bits, same
    side streams, the applied pipeline config; dtypes come back unchanged."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((48, 70)) * 0.1).astype(np.float32)
    array = x.astype(np.float64) if dtype == "float64" else to_dtype(x, dtype)
    expected, enc = encode_decode(TRANSFORMS[name], array, dtype)
    path = str(tmp_path / "t.wcodec")
    with wcodec.Writer(path) as w:
        w.add_tensor("w", array, Pipeline(TRANSFORMS[name]), dtype)
    with wcodec.open(path) as f:
        info = f.info("w")
        assert info.dtype == dtype
        assert info.pipeline == enc.pipeline.get_config()
        assert Pipeline.from_config(info.pipeline).lossy
        for key, blob in enc.streams.items():
            assert bytes(f.read_stream("w", key)) == blob
        assert bytes(f.read_stream("w", "data")) == enc.data
        assert info.stats == pytest.approx(enc.stats, rel=1e-5)  # written to 6 digits
        got = f.get_tensor("w")
    assert_bits_equal(got, expected, f"{name} {dtype}")
    assert got.dtype == storage_dtype(dtype)


# ---------------------------------------------------------------------------
# compression against the entropy bound
# ---------------------------------------------------------------------------

def sparse_symbols(n: int, rng, density: float = 0.1, alphabet: int = 16) -> np.ndarray:
    return np.where(rng.random(n) < density, rng.integers(1, alphabet, n), 0).astype(np.uint8)


@pytest.mark.parametrize("dtype", ["uint8", "int16"])
def test_zerorun_beats_huffman_on_sparse_streams(dtype):
    rng = np.random.default_rng(4)
    a = sparse_symbols(300_000, rng).astype(storage_dtype(dtype))
    if dtype == "int16":
        a = a.astype(np.int16) * np.where(rng.random(a.size) < 0.5, -1, 1).astype(np.int16)
    _, huff = encode_decode([{"id": "huffman"}], a, dtype)
    _, runs = encode_decode([{"id": "zerorun"}], a, dtype)
    assert len(runs.data) < 0.7 * len(huff.data), (len(runs.data), len(huff.data))
    # plain Huffman pays at least one bit per zero
    assert len(huff.data) * 8 >= np.count_nonzero(a == 0)


def test_zerorun_after_prune_and_cluster():
    rng = np.random.default_rng(8)
    w = rng.standard_normal((400, 500)).astype(np.float32)
    head = [{"id": "prune", "sparsity": 0.9}, {"id": "cluster", "bits": 4}]
    _, huff = encode_decode(head + [{"id": "huffman"}], w, "float32")
    _, runs = encode_decode(head + [{"id": "zerorun"}], w, "float32")
    assert len(runs.data) < 0.75 * len(huff.data)
    assert runs.stats["sparsity"] == pytest.approx(0.9)


def _entropy_bits(symbols) -> float:
    _, counts = np.unique(np.asarray(symbols).reshape(-1), return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


def _streams_for_entropy(rng, n=250_000):
    return {
        "laplace int8": (np.clip(np.rint(rng.laplace(0, 3, n)), -127, 127).astype(np.int8), "int8"),
        "geometric uint8": (np.minimum(rng.geometric(0.3, n) - 1, 255).astype(np.uint8), "uint8"),
        "step levels int32": (np.rint(rng.standard_normal(n) / 0.25).astype(np.int32), "int32"),
        "uniform 4000 uint16": (rng.integers(0, 4000, n).astype(np.uint16), "uint16"),
        "90% sparse uint8": (sparse_symbols(n, rng, 0.1, 32), "uint8"),
    }


@pytest.mark.parametrize("coder", ["huffman", "zerorun"])
def test_coded_size_near_entropy_bound(coder):
    """Large streams: coded bits within 3% of the order-0 entropy bound the
    codec records (plus a small allowance for the header and code table)."""
    rng = np.random.default_rng(9)
    for name, (a, dtype) in _streams_for_entropy(rng).items():
        if coder == "huffman" and name.startswith("90%"):
            continue  # Huffman cannot code a p=0.9 symbol in < 1 bit: zerorun's job
        _, enc = encode_decode([{"id": coder}], a, dtype)
        bound = enc.stats["entropy_bits"]
        assert 0 < bound <= 8 * len(enc.data), name  # a prefix code cannot beat it
        assert 8 * len(enc.data) <= 1.03 * bound + 8 * 600, (name, len(enc.data), bound / 8)
        if coder == "huffman":  # the bound is that of the symbols themselves
            assert bound == pytest.approx(_entropy_bits(zigzag_array(a)), rel=1e-9)


def zigzag_array(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "u":
        return a.astype(np.uint64)
    v = a.astype(np.int64)
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def test_sparse_coder_entropy_stats_cover_both_streams():
    rng = np.random.default_rng(10)
    a = sparse_symbols(200_000, rng, 0.05, 8)
    _, enc = encode_decode([{"id": "sparse"}], a, "uint8")
    assert enc.stats["entropy_bits"] <= 8 * len(enc.data)
    assert 8 * len(enc.data) <= 1.03 * enc.stats["entropy_bits"] + 8 * 600


# ---------------------------------------------------------------------------
# malformed data
# ---------------------------------------------------------------------------

def _samples():
    rng = np.random.default_rng(12)
    small = np.where(rng.random(3000) < 0.8, 0, rng.integers(-4, 5, 3000)).astype(np.int16)
    esc = rng.integers(-2, 3, 2000).astype(np.int32)
    esc[::40] = rng.integers(-10 ** 9, 10 ** 9, 50)
    wide = rng.integers(0, 65536, 1500).astype(np.uint16)
    return {"small": (small, "int16"), "escapes": (esc, "int32"), "wide": (wide, "uint16"),
            "bool": (rng.random(999) < 0.1, "bool"),
            "int8": (rng.integers(-4, 4, 1001).astype(np.int8), "int8")}


SAMPLES = _samples()
MALFORMED_CODERS = {
    "bitpack": [{"id": "bitpack"}],
    "bitpack-explicit": None,  # the dtype's width (4 bits for int8, 1 for bool)
    "huffman": [{"id": "huffman"}],
    "zerorun": [{"id": "zerorun"}],
    "linerice": [{"id": "linerice"}],
    "sparse": [{"id": "sparse"}],
    "sparse-3": [{"id": "sparse", "index_bits": 3}],
}
_ENCODED: dict = {}


def encoded(coder: str, sample: str):
    key = (coder, sample)
    if key not in _ENCODED:
        a, dtype = SAMPLES[sample]
        config = MALFORMED_CODERS[coder]
        if config is None:
            bits = {"int8": 4, "bool": 1}.get(dtype, 8 * storage_dtype(dtype).itemsize)
            config = [{"id": "bitpack", "bits": bits}]
        pipeline = Pipeline(config)
        spec = ArraySpec(a.shape, dtype)
        _ENCODED[key] = (pipeline, spec, pipeline.encode(a, spec))
    return _ENCODED[key]


def decode_or_error(pipeline, data, streams, spec):
    """Decoding damaged input: a WcodecError, or an array of the right kind."""
    try:
        out = pipeline.decode(data, streams, spec)
    except WcodecError:
        return None
    assert isinstance(out, np.ndarray)
    assert out.shape == spec.shape and out.dtype == storage_dtype(spec.dtype)
    return out


@pytest.mark.parametrize("sample", list(SAMPLES))
@pytest.mark.parametrize("coder", list(MALFORMED_CODERS))
def test_truncated_streams_raise(coder, sample):
    pipeline, spec, enc = encoded(coder, sample)
    data = enc.data
    cuts = set(range(min(len(data), 80))) | set(np.linspace(0, len(data) - 1, 120).astype(int))
    for cut in sorted(cuts):
        with pytest.raises(WcodecError):
            pipeline.decode(data[:cut], {}, spec)
    with pytest.raises(WcodecError):  # and trailing garbage
        pipeline.decode(data + b"\0", {}, spec)
    with pytest.raises(WcodecError):
        pipeline.decode(data + bytes(9), {}, spec)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("coder", list(MALFORMED_CODERS))
@given(sample=st.sampled_from(list(SAMPLES)),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)),
                      min_size=1, max_size=4),
       head=st.booleans())
def test_bit_flips_in_data_stream(coder, sample, flips, head):
    pipeline, spec, enc = encoded(coder, sample)
    data = bytearray(enc.data)
    for where, bit in flips:
        # half the time aim at the first 32 bytes (headers, code tables)
        pos = int(where * min(len(data), 32)) if head else int(where * len(data))
        data[pos] ^= 1 << bit
    decode_or_error(pipeline, bytes(data), {}, spec)


SIDE_PIPELINES = {
    "cluster": [{"id": "prune", "sparsity": 0.5}, {"id": "cluster", "bits": 3}, {"id": "huffman"}],
    "symmetric": [{"id": "quantize", "bits": 4, "granularity": "group", "group_size": 16},
                  {"id": "bitpack", "bits": 4}],
    "affine": [{"id": "quantize", "bits": 6, "scheme": "affine"}, {"id": "huffman"}],
    "ternary": [{"id": "quantize", "mode": "ternary"}, {"id": "zerorun"}],
    "step": [{"id": "quantize", "mode": "step", "step_ratio": 0.3}, {"id": "sparse"}],
}


def _side_encoded(name: str, dtype: str):
    key = ("side", name, dtype)
    if key not in _ENCODED:
        rng = np.random.default_rng(13)
        x = rng.standard_normal((24, 37)).astype(np.float32)
        array = x.astype(np.float64) if dtype == "float64" else to_dtype(x, dtype)
        pipeline = Pipeline(SIDE_PIPELINES[name])
        spec = ArraySpec(array.shape, dtype)
        _ENCODED[key] = (pipeline, spec, pipeline.encode(array, spec))
    return _ENCODED[key]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", list(SIDE_PIPELINES))
@given(dtype=st.sampled_from(FLOATS), data=st.data())
def test_damaged_side_streams(name, dtype, data):
    """Flipped codebook/scale/zero_point/step bytes decode to some array of the
    right kind; a truncated, extended or missing side stream is a FormatError."""
    pipeline, spec, enc = _side_encoded(name, dtype)
    key = data.draw(st.sampled_from(sorted(enc.streams) + ["data"]))
    blob = enc.data if key == "data" else enc.streams[key]

    def with_blob(b):
        streams = dict(enc.streams)
        if key == "data":
            return b, streams
        streams[key] = b
        return enc.data, streams

    flipped = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(flipped) - 1))
        flipped[pos] ^= 1 << data.draw(st.integers(0, 7))
    decode_or_error(pipeline, *with_blob(bytes(flipped)), spec)
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(WcodecError):
        pipeline.decode(*with_blob(blob[:cut]), spec)
    if key != "data":
        with pytest.raises(FormatError):
            pipeline.decode(*with_blob(blob + b"\0\0\0\0"), spec)
        streams = dict(enc.streams)
        del streams[key]
        with pytest.raises(FormatError):
            pipeline.decode(enc.data, streams, spec)


@pytest.mark.parametrize("name", list(SIDE_PIPELINES))
def test_unexpected_side_stream_is_format_error(name):
    pipeline, spec, enc = _side_encoded(name, "float32")
    for extra in ["0.extra", "9.scale", "data2", "1.codebook" if name != "cluster" else "0.scale"]:
        with pytest.raises(FormatError):
            pipeline.decode(enc.data, {**enc.streams, extra: b"\0" * 4}, spec)


def test_cluster_index_outside_codebook_is_format_error():
    """An index stream that decodes fine but points past the codebook."""
    x = np.linspace(-1, 1, 64, dtype=np.float32)
    pipeline = Pipeline([{"id": "cluster", "bits": 2}, {"id": "bitpack", "bits": 8}])
    spec = ArraySpec(x.shape, "float32")
    enc = pipeline.encode(x, spec)
    data = bytearray(enc.data)
    data[5] = 200
    with pytest.raises(FormatError):
        pipeline.decode(bytes(data), enc.streams, spec)


def _u64(v: int) -> bytes:
    return struct.pack("<Q", v)


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _huffman_header(count: int, mode: int = 2, alphabet: int = 4) -> bytes:
    return bytes([1, mode]) + _varint(count) + _varint(alphabet)


N = 1000
HUGE = (1 << 64) - 1
HOSTILE = {
    # bitpack: width header outside 1..32, wrong lengths
    ("bitpack", "width 0"): bytes([0]) + bytes(N),
    ("bitpack", "width 33"): bytes([33]) + bytes(33 * N // 8),
    ("bitpack", "width 255"): bytes([255]) + bytes(4 * N),
    ("bitpack", "only header"): bytes([32]),
    # huffman: u64 length of the Huffman part, then its own header
    ("huffman", "length 2^64-1"): _u64(HUGE) + bytes(16),
    ("huffman", "length past end"): _u64(1 << 40) + bytes(16),
    ("huffman", "count 2^62"): _u64(12) + _huffman_header(1 << 62) + bytes(4),
    ("huffman", "count 2^63-1 varint"): _u64(14) + _huffman_header((1 << 63) - 1) + bytes(2),
    ("huffman", "10-byte varint"): _u64(16) + bytes([1, 2]) + b"\xff" * 10 + bytes(4),
    ("huffman", "alphabet 2^40"): _u64(12) + _huffman_header(N, 2, 1 << 40) + bytes(4),
    ("huffman", "huge lanes"): _u64(20) + _huffman_header(N) + bytes([2, 0]) + _varint(1)
    + _varint(2) + bytes([0, 0x40]) + _varint(1 << 50) + bytes(2),
    ("huffman", "single symbol escape, no tail"): _u64(8) + _huffman_header(N, 1, 4096)
    + _varint(4095),
    ("huffman", "single symbol escape, huge tail width"): _u64(8) + _huffman_header(N, 1, 4096)
    + _varint(4095) + bytes([200]) + bytes(8),
    # zerorun: u64 number of run symbols, then the symbol stream
    ("zerorun", "runs 2^64-1"): _u64(HUGE) + _u64(4) + bytes(4),
    ("zerorun", "runs > count"): _u64(N + 1) + _u64(4) + _huffman_header(N + 1, 1, 2) + b"\0",
    ("zerorun", "one run of 2^62"): _u64(62) + _u64(7) + _huffman_header(62, 1, 2) + b"\1",
    ("zerorun", "short by one"): _u64(1) + _u64(6) + bytes([1, 1]) + _varint(1) + _varint(2)
    + _varint(0) + _varint(0),
    # sparse: u8 index_bits, u64 entries, u64 gap-part length
    ("sparse", "index_bits 0"): struct.pack("<BQQ", 0, 1, 0) + bytes(16),
    ("sparse", "index_bits 200"): struct.pack("<BQQ", 200, 1, 0) + bytes(16),
    ("sparse", "entries 2^64-1"): struct.pack("<BQQ", 8, HUGE, 0) + bytes(16),
    ("sparse", "gap length 2^64-1"): struct.pack("<BQQ", 8, 10, HUGE) + bytes(16),
    ("sparse", "entries > count"): struct.pack("<BQQ", 8, N + 1, 8) + _u64(0) + bytes(8),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=[f"{c}-{d}" for c, d in HOSTILE])
def test_hostile_headers_fail_fast(case):
    coder, _ = case
    spec = ArraySpec((N,), "int32")
    t0 = time.perf_counter()
    with pytest.raises(FormatError):
        Pipeline([{"id": coder}]).decode(HOSTILE[case], {}, spec)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("coder", ["huffman", "zerorun", "sparse"])
def test_hostile_header_huge_declared_tensor(coder):
    """A huge tensor whose tiny stream claims a huge count is refused before any
    allocation of that size (the stream cannot hold those symbols)."""
    spec = ArraySpec((1 << 40,), "int8")
    blob = {"huffman": _u64(12) + _huffman_header(1 << 40) + bytes(4),
            "zerorun": _u64(1 << 40) + _u64(12) + _huffman_header(1 << 40) + bytes(4),
            "sparse": struct.pack("<BQQ", 8, 1 << 40, 12) + _huffman_header(1 << 40)
            + bytes(8)}[coder]
    t0 = time.perf_counter()
    with pytest.raises(FormatError):
        Pipeline([{"id": coder}]).decode(blob, {}, spec)
    assert time.perf_counter() - t0 < 1.0


# ---------------------------------------------------------------------------
# malformed files
# ---------------------------------------------------------------------------

def _rewrite_toc(path: str, edit) -> None:
    """Apply ``edit(toc)`` to a file's table of contents and fix its checksum."""
    with open(path, "rb") as f:
        blob = f.read()
    toc_offset, toc = toc_of(blob)
    edit(toc)
    raw = json.dumps(toc, separators=(",", ":")).encode()
    with open(path, "wb") as f:
        f.write(blob[:toc_offset] + raw
                + fmt.TRAILER.pack(toc_offset, len(raw), zlib.crc32(raw), 0, fmt.MAGIC))


def _lossy_file(directory: str) -> tuple[str, dict]:
    rng = np.random.default_rng(14)
    tensors = {"c": rng.standard_normal((32, 40)).astype(np.float32),
               "q": rng.standard_normal((32, 40)).astype(np.float16),
               "s": rng.standard_normal((20, 30)).astype(np.float64)}
    recipe = {"rules": [
        {"match": ["c"], "pipeline": [{"id": "prune", "sparsity": 0.5},
                                      {"id": "cluster", "bits": 4}, {"id": "auto"}]},
        {"match": ["q"], "pipeline": [{"id": "quantize", "bits": 4, "granularity": "group",
                                       "group_size": 32}, {"id": "bitpack", "bits": 4}]},
        {"match": ["s"], "pipeline": [{"id": "quantize", "mode": "step", "step_ratio": 0.5},
                                      {"id": "zerorun"}]}]}
    path = os.path.join(directory, "lossy.wcodec")
    wcodec.save_file(tensors, path, recipe=recipe)
    return path, tensors


def test_bit_flips_in_lossy_file_are_checksum_errors(tmp_path):
    path, tensors = _lossy_file(str(tmp_path))
    with wcodec.open(path) as f:
        spans = {(n, s.name): (s.offset, s.length) for n in f.keys() for s in f.info(n).streams}
    blob = pathlib.Path(path).read_bytes()
    for (name, stream), (offset, length) in spans.items():
        if not length:
            continue
        damaged = bytearray(blob)
        damaged[offset + length // 2] ^= 0x10
        bad = str(tmp_path / "bad.wcodec")
        with open(bad, "wb") as f:
            f.write(damaged)
        with wcodec.open(bad) as f:
            with pytest.raises(ChecksumError):
                f.get_tensor(name)
            others = [n for n in tensors if n != name]
            for other in others:  # the other tensors are still readable
                assert f.get_tensor(other).shape == tensors[other].shape


TAMPER = {  # edit -> the tensor it breaks
    "cluster bits": "c", "quantize granularity": "q", "quantize bits": "q", "auto in file": "c",
    "step mode": "s", "drop transform": "c", "coder swapped": "s", "unknown option": "q",
}


@pytest.mark.parametrize("edit", list(TAMPER))
def test_tampered_pipeline_configs(edit, tmp_path):
    """A table of contents whose pipeline does not match the streams: a
    FormatError for that tensor, the others still decode."""
    path, tensors = _lossy_file(str(tmp_path))

    def change(toc):
        recs = {t["name"]: t for t in toc["tensors"]}
        c, q, s = recs["c"]["pipeline"], recs["q"]["pipeline"], recs["s"]["pipeline"]
        if edit == "cluster bits":
            c[1]["bits"] = 5
        elif edit == "quantize granularity":
            q[0]["granularity"] = "tensor"
            q[0].pop("group_size")
        elif edit == "quantize bits":
            q[0]["bits"] = 3
            q[1]["bits"] = 3
        elif edit == "auto in file":
            c[2] = {"id": "auto"}
        elif edit == "step mode":
            s[0]["mode"] = "ternary"
            s[0].pop("step_ratio")
        elif edit == "drop transform":
            del c[0:2]
        elif edit == "coder swapped":
            s[1] = {"id": "huffman"}
        elif edit == "unknown option":
            q[1]["width"] = 4

    _rewrite_toc(path, change)
    with wcodec.open(path) as f:
        for name in f.keys():
            if name == TAMPER[edit]:
                with pytest.raises(FormatError):
                    f.get_tensor(name)
            else:
                out = f.get_tensor(name)
                assert out.shape == tensors[name].shape and out.dtype == tensors[name].dtype
