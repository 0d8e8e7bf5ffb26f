"""The built-in codecs (raw, zstd, bytegroup, cast) through ``Pipeline``: round
trips, cast error bounds and rounding, configuration and pipeline validation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import (ALL_DTYPES, FLOAT_DTYPES, INT_DTYPES, any_view_arrays, arrays,
                      assert_bits_equal, encode_parts, storage_dtype)
from wcodec import ConfigError, FormatError, Pipeline, UnknownCodec, WcodecError, dtypes
from wcodec.codecs import (ARRAY_TO_ARRAY, ARRAY_TO_BYTES, BYTES_TO_BYTES, ArraySpec, Codec,
                           codec_class, codec_ids, get_codec)
from wcodec.codecs.cast import bfloat16_bits_to_float32, float32_to_bfloat16_bits

torch = pytest.importorskip("torch")

BUILTIN = ["raw", "zstd", "bytegroup", "cast"]

LOSSLESS_PIPELINES = {
    "raw": [{"id": "raw"}],
    "raw+zstd": [{"id": "raw"}, {"id": "zstd"}],
    "raw+zstd(1)": [{"id": "raw"}, {"id": "zstd", "level": 1}],
    "raw+zstd(-5)": [{"id": "raw"}, {"id": "zstd", "level": -5}],
    "raw+zstd+zstd": [{"id": "raw"}, {"id": "zstd"}, {"id": "zstd", "level": 1}],
    "bytegroup": [{"id": "bytegroup"}],
    "bytegroup(1)": [{"id": "bytegroup", "level": 1}],
    "bytegroup+zstd": [{"id": "bytegroup", "level": 3}, {"id": "zstd"}],
}


def roundtrip(pipeline: Pipeline, array: np.ndarray, dtype: str, *, as_view=True):
    """Encode then decode ``array`` (given as a wcodec ``dtype``) with ``pipeline``."""
    spec = ArraySpec(tuple(array.shape), dtype)
    data, side, stats = encode_parts(pipeline, array, spec)
    assert isinstance(data, bytes)
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in side.items())
    json.dumps(stats)  # stats are plain numbers
    # the container hands decoders read-only memoryviews into an mmap
    blob = memoryview(data) if as_view else data
    out = pipeline.decode(blob, {k: memoryview(v) for k, v in side.items()}, spec)
    assert isinstance(out, np.ndarray)
    assert out.shape == spec.shape and out.dtype == storage_dtype(dtype)
    return out, data


# ---------------------------------------------------------------------------
# lossless round trips
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(LOSSLESS_PIPELINES))
@given(case=any_view_arrays())
def test_lossless_roundtrip_bit_exact(name, case):
    view, dtype, canonical = case
    pipeline = Pipeline(LOSSLESS_PIPELINES[name])
    assert not pipeline.lossy
    out, _ = roundtrip(pipeline, view, dtype)
    assert_bits_equal(out, canonical, f"{name} {dtype}{canonical.shape}")


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("name", ["raw", "bytegroup", "bytegroup+zstd"])
def test_lossless_every_dtype_fixed_shapes(name, dtype, rng):
    """Deterministic sweep: each dtype x pipeline x awkward shape, random bits."""
    pipeline = Pipeline(LOSSLESS_PIPELINES[name])
    dt = storage_dtype(dtype)
    for shape in [(), (0,), (1,), (7,), (0, 3), (3, 5, 2), (257,)]:
        n = int(np.prod(shape, dtype=np.int64))
        raw = rng.integers(0, 256, n * dt.itemsize, dtype=np.uint8)
        array = (raw != 0).reshape(shape) if dtype == "bool" else raw.view(dt).reshape(shape)
        out, _ = roundtrip(pipeline, array, dtype)
        assert_bits_equal(out, array, f"{name} {dtype}{shape}")


def test_raw_is_the_little_endian_c_order_bytes():
    a = np.arange(12, dtype=">u4").reshape(3, 4).T  # big-endian, non-contiguous
    data, side, _ = encode_parts(Pipeline([{"id": "raw"}]), a, ArraySpec(a.shape, "uint32"))
    assert side == {}
    assert data == np.ascontiguousarray(a, dtype="<u4").tobytes()


def test_raw_bool_normalises_nonzero_bytes():
    spec = ArraySpec((4,), "bool")
    out = Pipeline([{"id": "raw"}]).decode(bytes([0, 1, 2, 255]), {}, spec)
    assert out.dtype == np.bool_ and out.tolist() == [False, True, True, True]
    assert out.view(np.uint8).tolist() == [0, 1, 1, 1]


def test_bytegroup_bool_normalises_nonzero_bytes():
    spec = ArraySpec((3,), "bool")
    # header: 1 plane, no transform, raw plane of 3 bytes
    stream = bytes([1, 0]) + bytes([0]) + (3).to_bytes(8, "little") + bytes([0, 7, 1])
    out = Pipeline([{"id": "bytegroup"}]).decode(stream, {}, spec)
    assert out.view(np.uint8).tolist() == [0, 1, 1]


def test_zstd_frame_records_content_size():
    payload = bytes(range(256)) * 9
    frame = get_codec({"id": "zstd", "level": 5}).encode(payload, ArraySpec((len(payload),), "uint8"), {})
    assert zstandard.get_frame_parameters(frame).content_size == len(payload)
    assert zstandard.ZstdDecompressor().decompress(frame) == payload


def test_bytegroup_compresses_weight_like_floats(rng):
    w = (rng.standard_normal(20000) * 0.02).astype(np.float32)
    out, data = roundtrip(Pipeline([{"id": "bytegroup"}]), w, "float32")
    assert_bits_equal(out, w)
    assert len(data) < 0.9 * w.nbytes  # the exponent plane shrinks a lot
    assert data[:2] == bytes([4, 1])     # 4 planes, rotate transform
    # ints: no rotation
    _, idata = roundtrip(Pipeline([{"id": "bytegroup"}]), np.arange(10, dtype=np.int16), "int16")
    assert idata[:2] == bytes([2, 0])


def test_bytegroup_random_data_is_not_expanded_much(rng):
    x = rng.integers(0, 2**32, 5000, dtype=np.uint64).astype(np.uint32)
    _, data = roundtrip(Pipeline([{"id": "bytegroup"}]), x, "uint32")
    assert len(data) <= x.nbytes + 2 + 4 * 9  # raw planes + header


@given(arrays())
def test_encoding_is_deterministic(case):
    array, dtype = case
    spec = ArraySpec(array.shape, dtype)
    for config in (LOSSLESS_PIPELINES["bytegroup"], LOSSLESS_PIPELINES["raw+zstd"]):
        p = Pipeline(config)
        assert encode_parts(p, array, spec)[0] == encode_parts(Pipeline(config), array.copy(), spec)[0]


# ---------------------------------------------------------------------------
# cast: widening is exact
# ---------------------------------------------------------------------------

WIDENING = [("float16", "float32"), ("float16", "float64"), ("float32", "float64"),
            ("bfloat16", "float32"), ("bfloat16", "float64"), ("float16", "float16"),
            ("float32", "float32"), ("bfloat16", "bfloat16")]


@pytest.mark.parametrize("src,dst", WIDENING)
@given(data=st.data())
def test_cast_widening_is_exact_for_non_nan(src, dst, data):
    array, _ = data.draw(arrays(dtype=src))
    pipeline = Pipeline([{"id": "cast", "dtype": dst}, {"id": "bytegroup", "level": 1}])
    assert pipeline.lossy
    out, _ = roundtrip(pipeline, array, src)
    values = bfloat16_bits_to_float32(array) if src == "bfloat16" else array
    got = bfloat16_bits_to_float32(out) if src == "bfloat16" else out
    nan = np.isnan(values)
    assert np.array_equal(np.isnan(got), nan)
    assert_bits_equal(out[~nan], array[~nan], f"{src}->{dst}->{src}")


# Regression (bug found by this suite, now fixed): cast.float32_to_bfloat16_bits returns a numpy
# scalar, not an ndarray, for 0-d input (0-d arithmetic yields scalars and
# np.uint16(...).reshape(()) stays a scalar), so decoding a 0-d tensor whose pipeline casts from
# bfloat16 raises FormatError('cast did not decode to an array'). Fix: compute on u.reshape(-1)
# and return out.reshape(x.shape), or wrap the result in np.asarray
@pytest.mark.parametrize("dst", ["float32", "float16", "float64"])
def test_cast_0d_bfloat16_tensor(dst):
    x = np.array(0x3FC0, dtype=np.uint16)  # bfloat16 1.5, 0-d
    out, _ = roundtrip(Pipeline([{"id": "cast", "dtype": dst}, {"id": "raw"}]), x, "bfloat16")
    assert_bits_equal(out, x)


# Regression (bug found by this suite, now fixed): float32_to_bfloat16_bits on a 0-d NaN:
# `out[nan] = ...` on a numpy scalar raises TypeError (not even a WcodecError) while encoding;
# same root cause as test_cast_0d_bfloat16_tensor
@pytest.mark.parametrize("src", ["float32", "float64", "float16"])
def test_cast_0d_nan_to_bfloat16(src):
    x = np.array(np.nan, dtype=storage_dtype(src))
    out, _ = roundtrip(Pipeline([{"id": "cast", "dtype": "bfloat16"}, {"id": "raw"}]), x, src)
    assert out.shape == () and np.isnan(out)


def test_cast_to_bfloat16_of_0d_float32_tensor():
    x = np.array(1.5, dtype=np.float32)
    out, _ = roundtrip(Pipeline([{"id": "cast", "dtype": "bfloat16"}, {"id": "raw"}]), x, "float32")
    assert_bits_equal(out, x)


# ---------------------------------------------------------------------------
# cast: narrowing error bounds and rounding
# ---------------------------------------------------------------------------

def _normal_range_floats(dtype: str, lo: float, hi: float):
    width = 32 if dtype == "float32" else 64
    magnitude = st.floats(lo, hi, width=width)
    return hnp.arrays(storage_dtype(dtype), hnp.array_shapes(min_dims=1, max_dims=2, max_side=20),
                      elements=st.builds(lambda m, s: -m if s else m, magnitude, st.booleans()))


@pytest.mark.parametrize("src", ["float32", "float64"])
@given(data=st.data())
def test_cast_float16_relative_error_bound(src, data):
    # normal float16 range; stay below 65504 + half an ulp so nothing overflows
    x = data.draw(_normal_range_floats(src, 2.0**-14, 65504.0))
    out, _ = roundtrip(Pipeline([{"id": "cast", "dtype": "float16"}, {"id": "raw"}]), x, src)
    assert out.dtype == x.dtype
    rel = np.abs(out.astype(np.float64) - x.astype(np.float64)) / np.abs(x.astype(np.float64))
    assert rel.max(initial=0.0) <= 2.0**-11
    # exactly numpy's IEEE round-to-nearest-even conversion
    assert_bits_equal(out, x.astype(np.float16).astype(x.dtype))


@pytest.mark.parametrize("src", ["float32", "float64"])
@given(data=st.data())
def test_cast_bfloat16_relative_error_bound(src, data):
    x = data.draw(_normal_range_floats(src, 2.0**-126, 2.0**127))
    out, _ = roundtrip(Pipeline([{"id": "cast", "dtype": "bfloat16"}, {"id": "raw"}]), x, src)
    rel = np.abs(out.astype(np.float64) - x.astype(np.float64)) / np.abs(x.astype(np.float64))
    assert rel.max(initial=0.0) <= 2.0**-8


def _torch_bf16_bits(x: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x)).to(torch.bfloat16)
    return t.view(torch.int16).numpy().view(np.uint16)


@pytest.mark.parametrize("src", ["float32", "float64", "float16"])
@given(data=st.data())
def test_cast_bfloat16_matches_torch_bit_for_bit(src, data):
    """Every bit pattern (subnormals, ties, overflow to inf): RNE like torch; NaN stays NaN."""
    dt = storage_dtype(src)
    x = data.draw(hnp.arrays(np.dtype(f"<u{dt.itemsize}"), st.integers(0, 300)).map(
        lambda a: a.view(dt)))
    # (torch, like wcodec, casts float64 -> float32 -> bfloat16: the same double rounding)
    spec = ArraySpec(x.shape, src)
    cast = get_codec({"id": "cast", "dtype": "bfloat16"})
    bits = cast.encode(x, spec, {})
    assert bits.dtype == np.uint16 and bits.shape == x.shape
    ref = _torch_bf16_bits(x)
    nan = np.isnan(x)
    assert np.array_equal(bits[~nan], ref[~nan])
    assert np.isnan(bfloat16_bits_to_float32(bits[nan])).all()


def test_cast_bfloat16_ties_round_to_even():
    # float32 words whose low 16 bits are exactly 0x8000 are halfway cases
    hi = np.array([0x3F80, 0x3F81, 0x3F82, 0xBF83, 0x7F7F, 0x0000, 0x0001], dtype=np.uint32)
    ties = ((hi << 16) | 0x8000).view(np.float32)
    bits = float32_to_bfloat16_bits(ties)
    expected = np.where(hi & 1, hi + 1, hi).astype(np.uint16)  # odd -> up, even -> stay
    assert bits.tolist() == expected.tolist()
    assert bits[4] == 0x7F80  # the largest finite value's upper tie rounds to +inf
    assert np.array_equal(bits, _torch_bf16_bits(ties))
    # just above / below a tie
    above = ((hi << 16) | 0x8001).view(np.float32)
    below = ((hi << 16) | 0x7FFF).view(np.float32)
    assert float32_to_bfloat16_bits(above).tolist() == (hi + 1).astype(np.uint16).tolist()
    assert float32_to_bfloat16_bits(below).tolist() == hi.astype(np.uint16).tolist()


def test_cast_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 70000.0, -1e-30, 1e-45],
                 dtype=np.float32)
    spec = ArraySpec(x.shape, "float32")
    for dst in ("float16", "bfloat16"):
        out, _ = roundtrip(Pipeline([{"id": "cast", "dtype": dst}, {"id": "raw"}]), x, "float32")
        assert out[0] == 0 and not np.signbit(out[0])
        assert out[1] == 0 and np.signbit(out[1])
        assert out[2] == np.inf and out[3] == -np.inf
        assert np.isnan(out[4]) and np.isnan(out[5])
    out16, _ = roundtrip(Pipeline([{"id": "cast", "dtype": "float16"}, {"id": "raw"}]), x, "float32")
    assert out16[6] == np.inf  # past 65504
    outbf, _ = roundtrip(Pipeline([{"id": "cast", "dtype": "bfloat16"}, {"id": "raw"}]), x, "float32")
    assert outbf[6] == 70144.0  # representable range, rounded
    assert spec.size == 9


@pytest.mark.parametrize("dst", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("src", INT_DTYPES + ["bool"])
def test_cast_refuses_non_float_tensors(src, dst):
    pipeline = Pipeline([{"id": "cast", "dtype": dst}, {"id": "raw"}])
    with pytest.raises(ConfigError, match="cast"):
        pipeline.specs(ArraySpec((3,), src))
    with pytest.raises(ConfigError):
        pipeline.encode(np.zeros(3, storage_dtype(src)), ArraySpec((3,), src))


def test_cast_resolve_changes_the_coder_spec():
    pipeline = Pipeline([{"id": "cast", "dtype": "bfloat16"}, {"id": "bytegroup"}])
    specs = pipeline.specs(ArraySpec((2, 3), "float64"))
    assert specs == [ArraySpec((2, 3), "float64"), ArraySpec((2, 3), "bfloat16")]
    data, _, _ = encode_parts(pipeline, np.ones((2, 3)), specs[0])
    assert data[:2] == bytes([2, 1])  # the coder saw 2-byte floats


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------

CONFIGS = st.one_of(
    st.just({"id": "raw"}),
    st.builds(lambda lv: {"id": "zstd", "level": lv}, st.integers(-131072, 22)),
    st.just({"id": "zstd"}),
    st.builds(lambda lv: {"id": "bytegroup", "level": lv}, st.integers(1, 22)),
    st.just({"id": "bytegroup"}),
    st.builds(lambda d: {"id": "cast", "dtype": d}, st.sampled_from(FLOAT_DTYPES)),
)


@given(CONFIGS)
def test_codec_config_roundtrip(config):
    codec = get_codec(config)
    got = codec.get_config()
    assert got["id"] == config["id"]
    assert config.items() <= got.items()
    assert json.loads(json.dumps(got)) == got
    again = get_codec(got)
    assert again == codec and again.get_config() == got
    assert type(again) is codec_class(config["id"])
    assert codec_class(config["id"]).from_config(got) == codec
    assert repr(codec).startswith(type(codec).__name__ + "(")


def test_defaults_appear_in_config():
    assert get_codec({"id": "zstd"}).get_config() == {"id": "zstd", "level": 3}
    assert get_codec({"id": "bytegroup"}).get_config() == {"id": "bytegroup", "level": 19}
    assert get_codec({"id": "raw"}).get_config() == {"id": "raw"}
    # an option given as None means "the default"
    assert get_codec({"id": "zstd", "level": None}).get_config() == {"id": "zstd", "level": 3}


@given(st.lists(st.sampled_from([
    {"id": "cast", "dtype": "float16"}, {"id": "cast", "dtype": "bfloat16"}]), max_size=2),
    st.sampled_from([{"id": "raw"}, {"id": "bytegroup", "level": 7}]),
    st.lists(st.builds(lambda lv: {"id": "zstd", "level": lv}, st.integers(1, 5)), max_size=3))
def test_pipeline_config_roundtrip(transforms, coder, stages):
    config = transforms + [coder] + stages
    p = Pipeline(config)
    assert p.get_config() == config
    q = Pipeline.from_config(json.loads(json.dumps(p.get_config())))
    assert q.get_config() == config
    assert q.describe() == "+".join(c["id"] for c in config)
    assert [c.kind for c in q.codecs] == ([ARRAY_TO_ARRAY] * len(transforms) + [ARRAY_TO_BYTES]
                                          + [BYTES_TO_BYTES] * len(stages))
    assert q.lossy == bool(transforms)
    # codec instances are accepted as well as dicts
    assert Pipeline(p.codecs).get_config() == config


def test_registry_has_the_builtins():
    ids = codec_ids()
    for cid in BUILTIN:
        assert cid in ids
        assert codec_class(cid).codec_id == cid
    assert ids == sorted(ids)


@pytest.mark.parametrize("config,needle", [
    ({"id": "raw", "level": 3}, "level"),
    ({"id": "zstd", "levle": 3}, "levle"),
    ({"id": "bytegroup", "dtype": "float16"}, "dtype"),
    ({"id": "cast", "dtype": "float16", "rounding": "rne"}, "rounding"),
])
def test_unknown_option_is_config_error(config, needle):
    with pytest.raises(ConfigError, match=needle):
        get_codec(config)
    with pytest.raises(ConfigError):
        Pipeline.from_config([config] if config["id"] != "cast" else [config, {"id": "raw"}])


@pytest.mark.parametrize("config", [
    {"id": "zstd", "level": "3"},
    {"id": "zstd", "level": 3.0},
    {"id": "zstd", "level": True},
    {"id": "zstd", "level": [3]},
    {"id": "bytegroup", "level": 19.5},
    {"id": "bytegroup", "level": False},
    {"id": "bytegroup", "level": np.int64(3)},
    {"id": "cast", "dtype": 16},
    {"id": "cast", "dtype": np.float16},
    {"id": "cast", "dtype": True},
])
def test_wrong_option_type_is_config_error(config):
    with pytest.raises(ConfigError, match=repr(config["id"])):
        get_codec(config)


@pytest.mark.parametrize("config", [
    {"id": "zstd", "level": 23},
    {"id": "zstd", "level": -131073},
    {"id": "zstd", "level": 10**30},
    {"id": "bytegroup", "level": 0},
    {"id": "bytegroup", "level": 23},
    {"id": "bytegroup", "level": -1},
    {"id": "cast", "dtype": "int8"},
    {"id": "cast", "dtype": "float8"},
    {"id": "cast", "dtype": "FLOAT16"},
    {"id": "cast", "dtype": ""},
])
def test_out_of_range_option_is_config_error(config):
    with pytest.raises(ConfigError, match="out of range"):
        get_codec(config)


def test_required_option_missing():
    with pytest.raises(ConfigError, match="required"):
        get_codec({"id": "cast"})
    with pytest.raises(ConfigError, match="required"):
        get_codec({"id": "cast", "dtype": None})


@pytest.mark.parametrize("cid", ["nope", "RAW", "zstd ", "", "huffman?"])
def test_unknown_codec_id_names_it(cid):
    with pytest.raises(UnknownCodec) as info:
        get_codec({"id": cid})
    assert repr(cid) in str(info.value)
    assert "raw" in str(info.value)  # lists what is known
    with pytest.raises(UnknownCodec, match="unknown codec"):
        Pipeline([{"id": "raw"}, {"id": cid}])
    with pytest.raises(UnknownCodec):
        codec_class(cid)
    assert isinstance(info.value, WcodecError)


@pytest.mark.parametrize("cid", [None, 3, ["raw"], {"id": "raw"}])
def test_non_string_codec_id_is_a_wcodec_error(cid):
    with pytest.raises((UnknownCodec, ConfigError)):
        get_codec({"id": cid})


@pytest.mark.parametrize("config", ["raw", None, 3, ["raw"], {"level": 3}, {}])
def test_codec_config_must_be_a_dict_with_id(config):
    with pytest.raises(ConfigError):
        get_codec(config)


# Regression (bug found by this suite, now fixed): Codec.__init__(self, **config) lets a config
# key named 'self' collide with the positional parameter: TypeError instead of ConfigError (fix:
# def __init__(self, /, **config) in codecs/base.py)
@pytest.mark.parametrize("cid", ["raw", "zstd", "bytegroup"])
def test_option_named_self_is_config_error(cid):
    with pytest.raises(ConfigError):
        get_codec({"id": cid, "self": 1})


# ---------------------------------------------------------------------------
# pipeline order validation
# ---------------------------------------------------------------------------

CAST16 = {"id": "cast", "dtype": "float16"}
RAW = {"id": "raw"}
BG = {"id": "bytegroup"}
ZSTD = {"id": "zstd"}


@pytest.mark.parametrize("config", [
    [],
    [ZSTD],
    [CAST16],
    [CAST16, ZSTD],
    [RAW, RAW],
    [RAW, BG],
    [ZSTD, RAW],
    [RAW, CAST16],
    [CAST16, ZSTD, RAW],
    [RAW, ZSTD, CAST16],
    [CAST16, RAW, CAST16],
    [RAW, ZSTD, BG],
    [RAW] + [ZSTD] * 16,
    [CAST16] * 16 + [RAW],
])
def test_pipeline_order_is_validated(config):
    with pytest.raises(ConfigError):
        Pipeline(config)
    with pytest.raises(ConfigError):
        Pipeline.from_config(config)


@pytest.mark.parametrize("config", [
    [RAW], [BG], [RAW, ZSTD], [CAST16, RAW], [CAST16, CAST16, BG, ZSTD],
    [CAST16] * 15 + [RAW], [RAW] + [ZSTD] * 15,
])
def test_valid_pipeline_orders(config):
    p = Pipeline(config)
    assert len(p.codecs) == len(config)
    assert p.coder.kind == ARRAY_TO_BYTES
    assert all(c.kind == ARRAY_TO_ARRAY for c in p.transforms)
    assert all(c.kind == BYTES_TO_BYTES for c in p.byte_stages)


@pytest.mark.parametrize("config", [{"id": "raw"}, "raw", None, ({"id": "raw"},), 3])
def test_pipeline_from_config_needs_a_list(config):
    with pytest.raises(ConfigError):
        Pipeline.from_config(config)


def test_pipeline_decode_checks_the_coder_output_shape():
    spec = ArraySpec((4,), "float32")
    with pytest.raises(FormatError):
        Pipeline([RAW]).decode(bytes(12), {}, spec)
    with pytest.raises(FormatError):
        Pipeline([RAW]).decode(bytes(20), {}, spec)


def test_codec_kinds_are_declared():
    for cid in BUILTIN:
        cls = codec_class(cid)
        assert issubclass(cls, Codec)
        assert cls.kind in (ARRAY_TO_ARRAY, ARRAY_TO_BYTES, BYTES_TO_BYTES)
    assert codec_class("cast").lossy
    assert not any(codec_class(c).lossy for c in ("raw", "zstd", "bytegroup"))


def test_all_dtypes_known():
    assert set(ALL_DTYPES) == set(dtypes.DTYPES)
