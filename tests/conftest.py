"""Shared fixtures and hypothesis strategies of the wcodec test suite.

* A hypothesis profile ``ci`` (bounded example counts, no deadline) is loaded by
  default; pick another with ``HYPOTHESIS_PROFILE=dev|thorough``.
* Strategies build arrays of every wcodec dtype (bfloat16 carried as its uint16
  bit pattern, as everywhere in the numpy API), shapes including 0-d, empty and
  larger ones, non-contiguous / big-endian views, unicode tensor names and
  metadata dicts.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:  # let `pytest` work from a checkout without PYTHONPATH
    import wcodec  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, _ROOT)

from wcodec import dtypes  # noqa: E402

# ---------------------------------------------------------------------------
# hypothesis profiles
# ---------------------------------------------------------------------------

settings.register_profile(
    "ci", max_examples=50, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "dev", max_examples=10, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "thorough", max_examples=500, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# ---------------------------------------------------------------------------
# dtype tables
# ---------------------------------------------------------------------------

ALL_DTYPES = list(dtypes.DTYPES)                       # every wcodec dtype name
FLOAT_DTYPES = [n for n, d in dtypes.DTYPES.items() if d.is_float]
INT_DTYPES = [n for n, d in dtypes.DTYPES.items() if not d.is_float and n != "bool"]
NUMPY_FLOATS = ["float16", "float32", "float64"]      # floats numpy has natively
BUILTIN_RECIPES = ["lossless", "raw", "fp16", "bf16"]


def storage_dtype(name: str) -> np.dtype:
    """The numpy carrier dtype of a wcodec dtype name (uint16 for bfloat16)."""
    return dtypes.get(name).numpy


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape, same carrier dtype and the very same bytes (NaN payloads too)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype.newbyteorder("<") != b.dtype.newbyteorder("<"):
        return False
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    b = np.ascontiguousarray(b, dtype=b.dtype.newbyteorder("<"))
    return a.tobytes() == b.tobytes()


def assert_bits_equal(actual: np.ndarray, expected: np.ndarray, what: str = "") -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype.newbyteorder("<") == expected.dtype.newbyteorder("<"), \
        f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if not bits_equal(actual, expected):
        k = actual.dtype.itemsize
        a = np.ascontiguousarray(actual, dtype=actual.dtype.newbyteorder("<")).reshape(-1)
        e = np.ascontiguousarray(expected, dtype=actual.dtype.newbyteorder("<")).reshape(-1)
        diff = (a.view(np.uint8).reshape(-1, k) != e.view(np.uint8).reshape(-1, k)).any(axis=1)
        bad = np.nonzero(diff)[0]
        raise AssertionError(f"{what}: {len(bad)} elements differ, first at flat indices "
                             f"{bad[:5].tolist()}: {a[bad[:5]]!r} != {e[bad[:5]]!r}")


def encode_parts(pipeline, array, spec):
    """(data, side streams, stats) of ``pipeline.encode`` (an ``Encoded`` record)."""
    encoded = pipeline.encode(array, spec)
    if isinstance(encoded, tuple):  # older API
        return encoded
    return encoded.data, encoded.streams, encoded.stats


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------

def dtype_names(names=None) -> st.SearchStrategy[str]:
    return st.sampled_from(list(names or ALL_DTYPES))


def shapes(max_dims: int = 4, max_side: int = 9, allow_large: bool = True) -> st.SearchStrategy:
    """Shapes including 0-d, empty (a zero dimension) and a few larger ones."""
    small = hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side)
    special = st.sampled_from([(), (0,), (1,), (3, 0, 2), (1, 1, 1, 1), (2, 3, 4, 5)])
    options = [small, special]
    if allow_large:
        options.append(st.sampled_from([(1000,), (33, 65), (4, 8, 32), (2049,)]))
    return st.one_of(*options)


def _bit_patterns(dt: np.dtype, shape) -> st.SearchStrategy[np.ndarray]:
    """Arrays of arbitrary bit patterns (every NaN payload, inf, subnormal...)."""
    uint = np.dtype(f"<u{dt.itemsize}")
    return hnp.arrays(uint, shape).map(lambda a: a.view(dt))


def _weight_like(dt_name: str, shape) -> st.SearchStrategy[np.ndarray]:
    """Low-entropy 'trained weight' values: small normals from a seeded generator."""
    def build(args):
        seed, scale = args
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(shape) * scale
        if dt_name == "bfloat16":
            from wcodec.codecs.cast import float32_to_bfloat16_bits
            return float32_to_bfloat16_bits(x.astype(np.float32)).reshape(shape)
        return x.astype(storage_dtype(dt_name))
    return st.tuples(st.integers(0, 2**32 - 1),
                     st.sampled_from([1e-3, 0.02, 1.0, 300.0])).map(build)


def _special_floats(dt_name: str, shape) -> st.SearchStrategy[np.ndarray]:
    if dt_name == "bfloat16":
        specials = [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x7F81, 0x0001, 0x3F80,
                    0x7F7F, 0x807F]
        return hnp.arrays(np.uint16, shape, elements=st.sampled_from(specials))
    dt = storage_dtype(dt_name)
    return hnp.arrays(dt, shape, elements=st.floats(width=8 * dt.itemsize, allow_nan=True,
                                                    allow_infinity=True, allow_subnormal=True))


def _int_values(dt_name: str, shape) -> st.SearchStrategy[np.ndarray]:
    dt = storage_dtype(dt_name)
    if dt_name == "bool":
        return hnp.arrays(dt, shape)
    info = np.iinfo(dt)
    return st.one_of(
        hnp.arrays(dt, shape),  # full range
        hnp.arrays(dt, shape, elements=st.integers(max(info.min, -3), min(info.max, 3))),
        hnp.arrays(dt, shape, elements=st.sampled_from([info.min, info.max, 0])),
    )


@st.composite
def arrays(draw, dtype=None, shape=None, max_dims: int = 4, allow_large: bool = True):
    """(array, wcodec dtype name): any dtype, any shape, any values.

    bfloat16 arrays are uint16 bit patterns (as the numpy API carries them)."""
    name = draw(dtype_names()) if dtype is None else (
        draw(dtype) if isinstance(dtype, st.SearchStrategy) else dtype)
    shp = draw(shapes(max_dims=max_dims, allow_large=allow_large)) if shape is None else shape
    dt = storage_dtype(name)
    if dtypes.get(name).is_float:
        strat = st.one_of(_bit_patterns(dt, shp), _weight_like(name, shp),
                          _special_floats(name, shp))
    else:
        strat = _int_values(name, shp)
    return draw(strat), name


@st.composite
def views(draw, base: np.ndarray) -> np.ndarray:
    """``base`` itself or a non-contiguous / reversed / transposed / big-endian view
    of an array holding the same values."""
    kind = draw(st.sampled_from(["same", "strided", "reversed", "transposed", "fortran",
                                 "bigendian"]))
    if kind == "strided" and base.ndim:
        bigger = np.zeros(tuple(2 * d for d in base.shape), dtype=base.dtype)
        bigger[tuple(slice(None, None, 2) for _ in base.shape)] = base
        return bigger[tuple(slice(None, None, 2) for _ in base.shape)]
    if kind == "reversed" and base.ndim:
        return base[::-1].copy()[::-1]
    if kind == "transposed" and base.ndim >= 2:
        return np.ascontiguousarray(base.T).T
    if kind == "fortran" and base.ndim:  # (asfortranarray makes 0-d arrays 1-d)
        return np.asfortranarray(base)
    if kind == "bigendian" and base.dtype.itemsize > 1 and base.dtype.kind != "b":
        return base.astype(base.dtype.newbyteorder(">"))
    return base


@st.composite
def any_view_arrays(draw, dtype=None, **kw):
    """(array maybe non-contiguous, wcodec dtype, C-contiguous little-endian copy)."""
    array, name = draw(arrays(dtype=dtype, **kw))
    return draw(views(array)), name, array


# any code point but lone surrogates (which are not valid UTF-8; the writer refuses them)
UNICODE = st.characters(exclude_categories=("Cs",))


def tensor_names(max_size: int = 24) -> st.SearchStrategy[str]:
    """Non-empty names: ASCII paths and arbitrary unicode (no lone surrogates)."""
    return st.one_of(
        st.from_regex(r"[a-z_][a-z0-9_]{0,8}(\.[a-z0-9_]{1,8}){0,3}", fullmatch=True),
        st.text(UNICODE, min_size=1, max_size=max_size),
        st.text(st.characters(min_codepoint=0x80, exclude_categories=("Cs",)),
                min_size=1, max_size=8),
    )


def metadata_dicts(max_items: int = 5) -> st.SearchStrategy[dict]:
    return st.dictionaries(st.text(UNICODE, max_size=16), st.text(UNICODE, max_size=40),
                           max_size=max_items)


def bfloat16_tensor(bits: np.ndarray):
    """A torch.bfloat16 tensor holding the bfloat16 bit patterns ``bits`` (uint16)."""
    import torch

    bits = np.array(bits, dtype=np.uint16, order="C")  # (ascontiguousarray makes 0-d 1-d)
    return torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16)


@st.composite
def tensor_dicts(draw, max_tensors: int = 5, dtype=None, allow_large: bool = False,
                 allow_views: bool = True):
    """(tensors to save, their canonical C-contiguous little-endian copies, dtype names).

    numpy has no bfloat16, so bfloat16 tensors are given as torch.bfloat16
    tensors (sometimes a transposed, non-contiguous one); they load back as the
    uint16 bit patterns held in ``expected``."""
    names = draw(st.lists(tensor_names(), min_size=0, max_size=max_tensors, unique=True))
    given, expected, kinds = {}, {}, {}
    for name in names:
        array, dt_name = draw(arrays(dtype=dtype, max_dims=3, allow_large=allow_large))
        if dt_name == "bfloat16":
            value = bfloat16_tensor(array)
            if allow_views and array.ndim == 2 and draw(st.booleans()):
                value = bfloat16_tensor(np.ascontiguousarray(array.T)).t()
        else:
            value = draw(views(array)) if allow_views else array
        given[name] = value
        expected[name] = array
        kinds[name] = dt_name
    return given, expected, kinds


# ---------------------------------------------------------------------------
# fixtures / helpers
# ---------------------------------------------------------------------------

@contextlib.contextmanager
def fresh_dir():
    """A new empty directory (usable inside hypothesis examples, unlike tmp_path)."""
    d = tempfile.mkdtemp(prefix="wcodec-test-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def weights(rng):
    """A small dict of weight-like tensors of several dtypes."""
    return {
        "layer.0.weight": (rng.standard_normal((16, 24)) * 0.02).astype(np.float32),
        "layer.0.bias": (rng.standard_normal(24) * 0.01).astype(np.float32),
        "embed.weight": rng.standard_normal((10, 8)).astype(np.float64),
        "norm.scale": rng.standard_normal(8).astype(np.float16),
        "step": np.int64(1234),
        "mask": rng.integers(0, 2, (3, 5)).astype(bool),
        "ids": rng.integers(-100, 100, 33).astype(np.int32),
        "empty": np.zeros((0, 4), np.float32),
    }


def spec_toc_dictionary():
    """spec/toc-dictionary.txt as a zstd raw-content dictionary."""
    import zstandard

    path = Path(__file__).resolve().parent.parent / "spec" / "toc-dictionary.txt"
    return zstandard.ZstdCompressionDict(path.read_bytes(),
                                         dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def toc_of(blob: bytes) -> tuple[int, dict]:
    """(offset, parsed table of contents) of a wcodec file read by hand; a
    zstd-compressed TOC (trailer encoding 1 or 2, FORMAT.md 2.3) is inflated
    (encoding 2 with spec/toc-dictionary.txt, read from the spec, not the package)."""
    import json

    import zstandard

    from wcodec.container import format as fmt

    offset, length, _, encoding, _ = fmt.TRAILER.unpack_from(blob, len(blob) - fmt.TRAILER.size)
    raw = bytes(blob[offset:offset + length])
    if encoding == fmt.TOC_ZSTD:
        raw = zstandard.ZstdDecompressor().decompress(raw)
    elif encoding == fmt.TOC_ZSTD_DICT:
        raw = zstandard.ZstdDecompressor(dict_data=spec_toc_dictionary()).decompress(raw)
    return offset, json.loads(raw)
