#!/usr/bin/env python3
"""Write (or check) the golden test vectors under spec/vectors/.

    python tools/make_vectors.py            # regenerate every vector + MANIFEST.json
    python tools/make_vectors.py --check    # verify the committed vectors, print a report

Each vector is a small ``<name>.wcodec`` file written by the real writer, plus
``<name>.npz`` holding the arrays a conforming decoder must produce from it
(keys ``t0``, ``t1``... in table-of-contents order; bfloat16 as uint16 bit
patterns; no pickles). ``MANIFEST.json`` lists every vector with its
description, the codec ids its pipelines use, the expected metadata and
tensors, and the sha256 of the ``.wcodec`` file.

Adding a codec = adding one ``Vector(...)`` entry to ``VECTORS`` below (and
running this script). ``tests/test_vectors.py`` fails while a registered codec
id is not used by any vector (encoder-only ids such as ``auto`` excepted: they
never appear in a file).

Expected arrays of lossy transforms (``prune``, ``cluster``, ``quantize``) are
``expected=DECODED``: the vector *fixes the decoding* the current decoder
gives for the stored levels, indices, codebooks and scales (not the encoder's
choices, which may improve). Every such tensor is cross-checked here against an
independent numpy implementation of the decoding formulas of spec/codecs/
(:func:`independent_decode`: codebook lookup, dequantisation with explicit unit
indices, float conversions), and prune tensors also against an independent
magnitude-pruning mask of the input (:func:`pruned`).

Everything here is deterministic: the input data come from PCG64 raw bits
(stable across numpy versions) and plain IEEE arithmetic, the .npz files are
written with fixed zip timestamps. The .wcodec bytes can still change when an
encoder changes (a new zstd release may compress differently); ``--check``
reports that separately from decoding failures, which are always errors.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import struct
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import wcodec  # noqa: E402
from wcodec.codecs import codec_class, codec_ids  # noqa: E402
from wcodec.container import format as fmt  # noqa: E402

VECTOR_DIR = os.path.join(ROOT, "spec", "vectors")
MANIFEST = os.path.join(VECTOR_DIR, "MANIFEST.json")
FORMAT_MD = os.path.join(ROOT, "spec", "FORMAT.md")
EXAMPLE_VECTOR = "tiny"  # its hex dump and TOC are pasted into spec/FORMAT.md
EXAMPLE_BEGIN = "<!-- BEGIN GENERATED: tiny.wcodec (tools/make_vectors.py) -->"
EXAMPLE_END = "<!-- END GENERATED -->"


def file_codec_ids() -> list[str]:
    """Registered codec ids that can appear in a file: all but the encoder-only
    ones (``auto``), which the writer replaces before writing."""
    return [c for c in codec_ids() if not getattr(codec_class(c), "encoder_only", False)]


# ---------------------------------------------------------------------------
# vector definitions
# ---------------------------------------------------------------------------

@dataclass
class Tensor:
    """One tensor of a vector: what the writer is given, and what must come back."""

    name: str
    array: np.ndarray                      # writer input (bfloat16: uint16 bit patterns)
    pipeline: list[dict[str, Any]]
    dtype: str | None = None               # wcodec dtype; default: derived from array
    expected: Any = None                   # decoded result when lossy; default: array;
                                           # DECODED: what the decoder gives (cross-checked)
    check: Callable[[np.ndarray], np.ndarray] | None = None  # extra independent expectation

    def __post_init__(self):
        self.array = np.asarray(self.array)
        self.dtype = self.dtype or wcodec.dtypes.name_of(self.array)
        if self.expected is None:
            self.expected = self.array
        if not isinstance(self.expected, str):
            self.expected = np.array(self.expected, order="C")  # (ascontiguousarray makes 0-d 1-d)


@dataclass
class Vector:
    name: str
    description: str
    tensors: list[Tensor]
    metadata: dict[str, str] = field(default_factory=dict)
    # Crafted vectors: edit the written file's header bytes and/or its table of
    # contents (the TOC, its crc32 and the trailer are rewritten afterwards).
    patch: Callable[[bytearray, dict], None] | None = None
    # Crafted vectors: store the (patched) TOC with this trailer encoding (FORMAT.md 2.3)
    toc_encoding: int | None = None


# Tensor.expected for lossy transforms: the array the current decoder produces
# (checked against independent_decode, and Tensor.check when given).
DECODED = "decoded"

_MAIN_OPTION = {"cast": "dtype", "bitpack": "bits", "sparse": "index_bits", "cluster": "bits",
                "quantize": "bits", "prune": "sparsity"}


def T(name, array, *pipeline, dtype=None, expected=None, check=None) -> Tensor:
    """Shorthand: ``T("w", array, "cast:float16", "raw")``; a string stage is
    ``id`` or ``id:value`` for the codec's single main option (``level`` unless
    listed in ``_MAIN_OPTION``); a dict stage is a full codec config."""
    stages = []
    for stage in pipeline:
        if isinstance(stage, str):
            cid, _, value = stage.partition(":")
            stage = {"id": cid}
            if value:
                key = _MAIN_OPTION.get(cid, "level")
                stage[key] = value if key == "dtype" else (
                    float(value) if key == "sparsity" else int(value))
        stages.append(stage)
    return Tensor(name, array, stages, dtype, expected, check)


def Q(**options) -> dict[str, Any]:
    """A quantize stage config."""
    return {"id": "quantize", **options}


# -- deterministic data --------------------------------------------------

def uniform(seed: int, n: int) -> np.ndarray:
    """n floats in [0, 1), exact functions of PCG64's raw output."""
    raw = np.random.PCG64(seed).random_raw(n).astype(np.uint64)
    return (raw >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def weights(seed: int, shape, scale: float = 0.05, dtype=np.float32) -> np.ndarray:
    """Bell-shaped 'trained weights' (Irwin-Hall sum of 4 uniforms), no libm."""
    n = int(np.prod(shape, dtype=np.int64))
    u = uniform(seed, 4 * n).reshape(4, n)
    return ((u[0] + u[1] + u[2] + u[3] - 2.0) * scale).reshape(shape).astype(dtype)


def ints(seed: int, shape, dtype) -> np.ndarray:
    """Integers spread over the whole range of ``dtype``."""
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.random.PCG64(seed).random_raw(n).astype(np.uint64)
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return (raw & np.uint64(1)).astype(np.bool_).reshape(shape)
    little = raw.astype("<u8").view(np.uint8).reshape(n, 8)[:, :dt.itemsize].copy()
    return little.view(dt.newbyteorder("<")).astype(dt).reshape(shape)


def bits(values, dtype) -> np.ndarray:
    """An array with the given raw bit patterns (NaN payloads survive)."""
    carrier = {2: np.uint16, 4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize]
    return np.array(values, dtype=carrier).view(dtype)


def bf16(values) -> np.ndarray:
    """bfloat16 bit patterns, carried as uint16."""
    return np.array(values, dtype=np.uint16)


def bf16_round(x32_bits: int) -> int:
    """float32 bits -> bfloat16 bits, written out independently of the codec:
    round to nearest, ties to even; NaN keeps sign and top payload, quiet bit set."""
    if (x32_bits & 0x7F800000) == 0x7F800000 and x32_bits & 0x7FFFFF:
        return (x32_bits >> 16) | 0x40
    hi, lo = x32_bits >> 16, x32_bits & 0xFFFF
    if lo > 0x8000 or (lo == 0x8000 and hi & 1):
        hi += 1
    return hi


def truncate_bf16(x: np.ndarray) -> np.ndarray:
    """The top 16 bits of float32 values: bfloat16 test data."""
    return (x.astype(np.float32).view(np.uint32) >> np.uint32(16)).astype(np.uint16)


def f32_of_bits(values) -> np.ndarray:
    return np.array(values, dtype=np.uint32).view(np.float32)


def widen_f16(half_bits) -> np.ndarray:
    """float16 bit patterns -> float32 values (exact)."""
    return np.array(half_bits, dtype=np.uint16).view(np.float16).astype(np.float32)


def widen_bf16(bf_bits) -> np.ndarray:
    return (np.array(bf_bits, dtype=np.uint32) << np.uint32(16)).view(np.float32)


# Float specials. NaNs used through a *float conversion* are the canonical quiet
# NaN only: hardware and software float16 conversions treat other payloads
# differently and the format leaves NaN payloads through `cast` unspecified.
F32_SPECIAL = bits([0x00000000, 0x80000000, 0x3F800000, 0xBF800000, 0x7F800000, 0xFF800000,
                    0x7FC00000, 0xFFC00001, 0x7F800001, 0x7FBFFFFF,   # qNaN, -qNaN+payload, sNaNs
                    0x00000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x3EAAAAAB],
                   np.float32)
F64_SPECIAL = bits([0x0, 0x8000000000000000, 0x3FF0000000000000, 0x7FF0000000000000,
                    0xFFF0000000000000, 0x7FF8000000000000, 0x7FF0000000000001,
                    0xFFF8DEADBEEF0001, 0x0000000000000001, 0x000FFFFFFFFFFFFF,
                    0x7FEFFFFFFFFFFFFF, 0x3FD5555555555555], np.float64)
F16_SPECIAL = bits([0x0000, 0x8000, 0x3C00, 0xBC00, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE55,
                    0x0001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x3555], np.float16)
BF16_SPECIAL = bf16([0x0000, 0x8000, 0x3F80, 0xBF80, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFC1,
                     0x0001, 0x007F, 0x0080, 0x7F7F, 0xFF7F, 0x3EAB])


def int_extremes(dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    vals = sorted({info.min, info.min + 1, -1 if info.min < 0 else 2, 0, 1, info.max - 1, info.max})
    return np.array(vals, dtype=dtype)


INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]

# float32 -> float16 conversions (round to nearest even; overflow -> inf), as
# (input float32 bits, expected float16 bits).
CAST_F16_TABLE = [
    (0x3F800000, 0x3C00),  # 1.0
    (0x3DCCCCCD, 0x2E66),  # 0.1 -> 0.0999755859375
    (0x3F801000, 0x3C00),  # 1 + 2**-11: tie, rounds to even (down)
    (0x3F803000, 0x3C02),  # 1 + 3*2**-11: tie, rounds to even (up)
    (0x3F801001, 0x3C01),  # just above a tie: up
    (0x477FE000, 0x7BFF),  # 65504 = largest float16
    (0x477FEFFF, 0x7BFF),  # just below 65520: stays finite
    (0x477FF000, 0x7C00),  # 65520: tie between 65504 and 2**16, rounds to inf
    (0xC7800000, 0xFC00),  # -65536 -> -inf
    (0x33000000, 0x0000),  # 2**-25: tie between 0 and 2**-24, rounds to even 0
    (0x33000001, 0x0001),  # just above: smallest subnormal
    (0xB3800000, 0x8001),  # -2**-24
    (0x38800000, 0x0400),  # 2**-14, smallest normal
    (0x387FC000, 0x03FF),  # largest subnormal
    (0x80000000, 0x8000),  # -0
    (0x7F800000, 0x7C00),  # inf
    (0xFF800000, 0xFC00),  # -inf
    (0x7FC00000, 0x7E00),  # quiet NaN
]
# float32 -> bfloat16 (round to nearest even on the bit pattern; NaN stays NaN, quieted)
CAST_BF16_TABLE = [0x3F800000, 0x3F808000, 0x3F818000, 0x3F808001, 0x3F80FFFF, 0x7F7FFFFF,
                   0x7F7F7FFF, 0xFF7F8000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001,
                   0xFFA00000, 0x7FFFFFFF, 0x00000001, 0x00008000, 0x00018000, 0x80000000,
                   0x3DCCCCCD, 0xC0490FDB]


def _cast_f16_inputs():
    return f32_of_bits([a for a, _ in CAST_F16_TABLE]), widen_f16([b for _, b in CAST_F16_TABLE])


# -- independent reference decoding of the lossy transforms ------------------
# Written from spec/codecs/{prune,cluster,quantize,cast}.md, sharing no code with
# wcodec.codecs or wcodec.kernels (only the lossless coder and bytes stages of a
# pipeline are undone with the library, their own vectors check those).

F32_MAX = float(np.finfo(np.float32).max)


def to_float_dtype(v32: np.ndarray, dtype: str) -> np.ndarray:
    """float32 values -> the carrier of a float dtype (FORMAT/cast.md conv)."""
    v32 = np.asarray(v32, np.float32)
    if dtype == "float32":
        return v32
    if dtype == "float64":
        return v32.astype(np.float64)
    if dtype == "float16":
        with np.errstate(over="ignore"):
            return v32.astype(np.float16)
    if dtype == "bfloat16":
        return bf16([bf16_round(int(b)) for b in v32.reshape(-1).view(np.uint32)]
                    ).reshape(v32.shape)
    raise ValueError(dtype)


def from_float_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    """A float dtype's carrier -> float32 (exact except float64 -> float32)."""
    if dtype == "bfloat16":
        return widen_bf16(np.asarray(x).reshape(-1)).reshape(np.shape(x))
    return np.asarray(x).astype(np.float32)


def ref_resolve(cfg: dict, dtype: str) -> str:
    """Output dtype of an array->array stage (the codec pages' resolve rules)."""
    cid = cfg["id"]
    if cid == "prune":
        return dtype
    if cid == "cast":
        return cfg["dtype"]
    if cid == "cluster":
        return "uint8"
    if cid == "quantize":
        mode = cfg.get("mode", "uniform")
        if mode == "step":
            return "int32"
        return "uint8" if mode == "uniform" and cfg.get("scheme") == "affine" else "int8"
    raise ValueError(cid)


def ref_side_streams(cfg: dict) -> set[str]:
    """The side streams a stage writes, per its codec page."""
    if cfg["id"] == "cluster":
        return {"codebook"}
    if cfg["id"] == "quantize":
        mode = cfg.get("mode", "uniform")
        if mode == "step":
            return {"step"}
        if mode == "uniform" and cfg.get("scheme") == "affine":
            return {"scale", "zero_point"}
        return {"scale"}
    return set()


def unit_of_elements(cfg: dict, shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """quantize.md: the unit (row of scale/zero_point/step) of every element in
    C order, and the number of units."""
    n = int(np.prod(shape, dtype=np.int64))
    gran = cfg.get("granularity", "channel")
    if gran == "tensor":
        return np.zeros(n, np.intp), 1
    if gran == "group":
        g = cfg.get("group_size", 64)
        return np.arange(n) // g, -(-n // g)
    if not shape:
        return np.zeros(1, np.intp), 1
    axis = cfg.get("axis", 0)
    if not -len(shape) <= axis < len(shape):
        raise SystemExit(f"axis {axis} out of range for shape {shape}")
    axis %= len(shape)
    return np.indices(shape)[axis].reshape(-1), shape[axis]


def f32_stream(blob: bytes, count: int, what: str, dtype: str = "<f4") -> np.ndarray:
    """``count`` little-endian floats (``dtype`` <f4 or <f2) as float32."""
    if len(blob) != np.dtype(dtype).itemsize * count:
        raise SystemExit(f"{what}: {len(blob)} bytes, expected {np.dtype(dtype).itemsize * count}")
    return np.frombuffer(blob, dtype).astype(np.float32)


def ref_dequantize(cfg: dict, levels: np.ndarray, side: Callable[[str], bytes]) -> np.ndarray:
    """quantize.md, decoding: float32 values of the tensor's shape."""
    mode = cfg.get("mode", "uniform")
    unit, units = unit_of_elements(cfg, levels.shape)
    q = levels.reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        if mode == "uniform":
            scale = f32_stream(side("scale"), units, "scale")[unit]
            if cfg.get("scheme") == "affine":
                zp = np.frombuffer(side("zero_point"), np.uint8)
                assert zp.size == units
                qf = q.astype(np.float32) - zp[unit].astype(np.float32)   # exact
            else:
                qf = q.astype(np.float32)
            v = qf * scale                                   # one float32 rounding
            v = np.where(np.isinf(v), np.copysign(np.float32(F32_MAX), v), v)
        elif mode == "ternary":
            v = q.astype(np.float32) * f32_stream(side("scale"), units, "scale")[unit]
        else:
            p = q.astype(np.float64) * f32_stream(side("step"), units, "step")[unit].astype(
                np.float64)                                  # rounded to float64 ...
            v = np.clip(p, -F32_MAX, F32_MAX).astype(np.float32)  # ... then to float32
    return np.asarray(v, np.float32).reshape(levels.shape)


def independent_decode(reader, name: str) -> np.ndarray:
    """Decode tensor ``name`` with the library only for its lossless coder and
    bytes stages, and this file's own formulas for the array->array stages."""
    from wcodec.codecs import ARRAY_TO_BYTES, ArraySpec, codec_class
    info = reader.info(name)
    configs = info.pipeline
    a = [codec_class(c["id"]).kind for c in configs].index(ARRAY_TO_BYTES)
    dts = [info.dtype]
    for cfg in configs[:a]:
        dts.append(ref_resolve(cfg, dts[-1]))
    present = {s.name for s in info.streams}
    declared = {"data"} | {f"{j}.{n}" for j, cfg in enumerate(configs[:a])
                           for n in ref_side_streams(cfg)}
    if present != declared:
        raise SystemExit(f"tensor {name!r}: streams {sorted(present)}, the pages say "
                         f"{sorted(declared)}")
    shape = tuple(info.shape)
    coder = wcodec.Pipeline(configs[a:])
    x = coder.decode(reader.read_stream(name, "data"), {}, ArraySpec(shape, dts[a]))
    for j in range(a - 1, -1, -1):
        cfg = configs[j]

        def side(n, j=j):
            return bytes(reader.read_stream(name, f"{j}.{n}"))
        if cfg["id"] == "prune":
            continue                                   # the identity
        if cfg["id"] == "cast":
            x = to_float_dtype(from_float_dtype(x, cfg["dtype"]), dts[j])
        elif cfg["id"] == "cluster":
            k = 2 ** cfg.get("bits", 4)
            f16 = cfg.get("codebook_dtype", "float32") == "float16"  # cluster.md v1.1
            codebook = f32_stream(side("codebook"), k, "codebook", "<f2" if f16 else "<f4")
            assert x.dtype == np.uint8 and (x.size == 0 or int(x.max()) < k)
            x = to_float_dtype(codebook[x.astype(np.intp)], dts[j])
        elif cfg["id"] == "quantize":
            x = to_float_dtype(ref_dequantize(cfg, x, side), dts[j])
        else:
            raise SystemExit(f"no independent decoder for {cfg['id']!r}")
    return np.array(x, order="C").reshape(shape)


def pruned(x: np.ndarray, dtype: str | None = None, *, sparsity=None, threshold=None,
           structure="none", axis=0, norm="l1") -> np.ndarray:
    """Independent magnitude pruning (prune.md, encoder): ``x`` with the pruned
    weights set to +0 (bit pattern 0)."""
    dtype = dtype or wcodec.dtypes.name_of(x)
    mag = np.abs(from_float_dtype(x, dtype).astype(np.float64))
    if structure == "channels":
        axis %= x.ndim
        rows = np.moveaxis(mag, axis, 0).reshape(x.shape[axis], -1)
        score = rows.sum(axis=1) if norm == "l1" else np.square(rows).sum(axis=1)
        k = int(np.floor(sparsity * score.size + 1e-9))
        keep_rows = np.ones(score.size, bool)
        keep_rows[np.argsort(score, kind="stable")[:k]] = False
        shape = [1] * x.ndim
        shape[axis] = score.size
        keep = np.broadcast_to(keep_rows.reshape(shape), x.shape)
    elif threshold is not None:
        keep = mag > threshold
    else:
        flat = mag.reshape(-1)
        k = int(np.floor(sparsity * flat.size + 1e-9))
        keep = np.ones(flat.size, bool)
        keep[np.lexsort((np.arange(flat.size), flat))[:k]] = False  # ties: lower index first
        keep = keep.reshape(x.shape)
    return np.where(keep, x, np.zeros((), x.dtype))


def _retag(changes: dict[str, dict[str, Any]]) -> Callable[[bytearray, dict], None]:
    """A patch that rewrites tensor records (dtype, pipeline) of the TOC."""
    def patch(head: bytearray, toc: dict) -> None:
        for record in toc["tensors"]:
            record.update(changes.get(record["name"], {}))
    return patch


def _set_minor(minor: int) -> Callable[[bytearray, dict], None]:
    def patch(head: bytearray, toc: dict) -> None:
        struct.pack_into("<H", head, 10, minor)
    return patch


_w16 = weights(16, (16, 16))
_BF16_IN = f32_of_bits(CAST_BF16_TABLE)
_F16_IN, _F16_OUT = _cast_f16_inputs()


# -- data for the integer coders and the lossy transforms ----------------------

def sparse_ints(seed: int, shape, density: float, lo: int, hi: int, dtype) -> np.ndarray:
    """About ``density`` of the elements non-zero, drawn from ``lo..hi`` (never 0)."""
    n = int(np.prod(shape, dtype=np.int64))
    u = uniform(seed, 2 * n)
    vals = lo + np.floor(u[n:] * (hi - lo + 1))
    vals[vals == 0] = hi
    return np.where(u[:n] < density, vals, 0).astype(dtype).reshape(shape)


def _column_density(seed: int) -> np.ndarray:
    """int8 (24, 32): column j keeps each weight with probability ~j/40, rows 5
    and 17 and the first columns dead (a pruned layer's input structure)."""
    u = uniform(seed, 2 * 24 * 32).reshape(2, 24, 32)
    keep = u[0] < np.arange(32) / 40.0
    keep[[5, 17]] = False
    values = np.floor(u[1] * 16).astype(np.int64) - 8
    values[values >= 0] += 1                                   # -8..-1, 1..8
    return np.where(keep, values, 0).astype(np.int8)


def levels(seed: int, shape, spread: float, dtype=np.int8) -> np.ndarray:
    """Bell-shaped small integers around 0, like quantized weights."""
    return np.rint(weights(seed, shape, scale=spread, dtype=np.float64)).astype(dtype)


# zigzag symbol boundaries: int32 values whose symbols are 4093..4097 (4095 is
# the first escaped symbol, escaped with extra value 0), and the extremes
_ESC_I32 = np.array([2046, -2047, 2047, -2048, 2048, 0, 0, 1, -1, 0, 5, 2**31 - 1, -2**31,
                     123456789, -7, 0, 0, 3, 0, 0], np.int32)
_ESC_U16 = np.array([4094, 4095, 4096, 65535, 0, 1, 2, 0, 0, 4095, 7, 0, 1, 1, 60000, 0],
                    np.uint16)

_prune_w = weights(40, (16, 24))
_prune_w3 = weights(41, (4, 6, 5))
_prune_bf16 = truncate_bf16(weights(42, (8, 32)))
_prune_f16 = weights(43, (96,), dtype=np.float16)
_prune_ties = np.array([0.5, -0.25, 0.25, 0.0, -0.0, 0.25, -0.5, 1.0, -0.25, 0.125, 0.125,
                        2.0], np.float32)

_cl_w = weights(50, (16, 32))
_cl_pruned = np.where(uniform(51, 512).reshape(16, 32) < 0.6, 0, weights(52, (16, 32))
                      ).astype(np.float32)
_cl_few = np.tile(np.array([-0.5, 0.0, 0.25, 0.25, 1.5], np.float32), 8)

_q_w = weights(60, (8, 32))
_q_asym = (weights(61, (6, 20)) + np.linspace(0.0, 0.12, 6, dtype=np.float32)[:, None]
           ).astype(np.float32)
_q_w3 = weights(62, (4, 6, 5))
_q_zero_row = weights(63, (5, 12))
_q_zero_row[2] = 0.0
_q_outlier = weights(64, (4, 64))
_q_outlier[1, 7] = 40.0
_q_outlier[3, 0] = -25.0

VECTORS: list[Vector] = [
    Vector("tiny", "The worked example of spec/FORMAT.md: two small tensors (raw; raw+zstd) "
           "and one metadata item.",
           [T("a", np.array([1.0, -2.0, 0.5], np.float32), "raw"),
            T("b", np.array([[1, 2], [3, 4]], np.uint8), "raw", "zstd")],
           {"purpose": "FORMAT.md example"}),
    Vector("empty_file", "A file with no tensors and no metadata (header, empty stream area, "
           "TOC, trailer).", []),
    Vector("dtypes_raw", "Every dtype stored raw, with extreme values: integer min/max, float "
           "signed zeros, infinities, subnormals, quiet and signalling NaNs with payloads "
           "(raw must keep every bit), bfloat16 bit patterns, bool.",
           [T("float64", F64_SPECIAL, "raw"),
            T("float32", F32_SPECIAL, "raw"),
            T("float16", F16_SPECIAL, "raw"),
            T("bfloat16", BF16_SPECIAL, "raw", dtype="bfloat16")]
           + [T(np.dtype(d).name, int_extremes(d), "raw") for d in INT_DTYPES]
           + [T("bool", np.array([True, False, False, True, True]), "raw")]),
    Vector("shapes_raw", "Shapes: 0-d tensors, empty tensors (a zero-length stream), a size-1 "
           "8-d tensor, and a 2x3x4 arange that pins C (row-major) order.",
           [T("scalar_f32", np.array(3.25, np.float32), "raw"),
            T("scalar_bool", np.array(True), "raw"),
            T("scalar_bf16", bf16(0x4049), "raw", dtype="bfloat16"),
            T("empty_1d", np.zeros(0, np.float32), "raw"),
            T("empty_3d", np.zeros((2, 0, 3), np.int16), "raw"),
            T("ones_8d", np.full((1,) * 8, 7, np.int32), "raw"),
            T("c_order", np.arange(24, dtype=np.uint16).reshape(2, 3, 4), "raw")]),
    Vector("zstd", "zstd after raw: a compressible tensor at the default level, a negative "
           "and a high level, an empty tensor (zero-byte frame), a 0-d tensor, and two zstd "
           "stages in a row (decoded in reverse order).",
           [T("pattern", (np.arange(1024, dtype=np.int32) % 7) * 1000, "raw", "zstd"),
            T("fast", ints(1, (64,), np.uint8) & np.uint8(0x0F), "raw", "zstd:-5"),
            T("strong", weights(2, (8, 16)), "raw", "zstd:19"),
            T("empty", np.zeros((0, 4), np.float64), "raw", "zstd"),
            T("scalar", np.array(-7, np.int64), "raw", "zstd"),
            T("twice", np.repeat(np.arange(16, dtype=np.uint16), 8), "raw", "zstd:1", "zstd:3")]),
    Vector("cast_float16", "cast to float16 (lossy): round-to-nearest-even ties, overflow to "
           "inf, subnormals, signed zero, quiet NaN, from float32 and float64; expected arrays "
           "are the widened float16 values.",
           [T("table_f32", _F16_IN, "cast:float16", "raw", expected=_F16_OUT),
            T("table_f64", _F16_IN.astype(np.float64), "cast:float16", "raw",
              expected=_F16_OUT.astype(np.float64)),
            T("weights", weights(3, (4, 32)), "cast:float16", "raw",
              expected=weights(3, (4, 32)).astype(np.float16).astype(np.float32)),
            T("empty", np.zeros((3, 0), np.float32), "cast:float16", "raw",
              expected=np.zeros((3, 0), np.float32)),
            T("scalar", np.array(1 / 3, np.float64), "cast:float16", "raw",
              expected=np.array(np.float16(1 / 3), np.float64))]),
    Vector("cast_bfloat16", "cast to bfloat16 (lossy): ties to even on the bit pattern, overflow "
           "to inf, NaNs (signalling ones included) stay NaN, from float32 and float64; a "
           "bfloat16 tensor widened to float32 (lossless).",
           [T("table_f32", f32_of_bits(CAST_BF16_TABLE), "cast:bfloat16", "raw",
              expected=widen_bf16([bf16_round(b) for b in CAST_BF16_TABLE])),
            T("weights_f64", weights(4, (2, 24), dtype=np.float64), "cast:bfloat16", "raw",
              expected=widen_bf16([bf16_round(int(b)) for b in weights(
                  4, (2, 24), dtype=np.float64).astype(np.float32).view(np.uint32).ravel()]
                  ).astype(np.float64).reshape(2, 24)),
            # widening is exact; coming back, a signalling NaN (0x7F81) is quieted (0x7FC1)
            T("bf16_to_f32", BF16_SPECIAL, "cast:float32", "raw", dtype="bfloat16",
              expected=bf16([bf16_round(int(b) << 16) for b in BF16_SPECIAL]))]),
    Vector("cast_decode_narrowing", "Crafted (the reference encoder never writes these "
           "values): the stored arrays are wider than the tensor, so *decoding* the cast "
           "narrows: float32 -> float16 and float32 -> bfloat16 round to nearest even, "
           "float64 -> float32 too.",
           [T("to_f16", _F16_IN, "raw", expected=_F16_OUT.astype(np.float16)),
            T("to_bf16", _BF16_IN, "raw",
              expected=bf16([bf16_round(b) for b in CAST_BF16_TABLE])),
            T("to_f32", np.array([1 + 2.0 ** -24, 1 + 3 * 2.0 ** -24, 1e39, -1e-46, 0.1]), "raw",
              # 1.0, 1 + 2**-22 (both ties to even), inf, -0.0, float32(0.1)
              expected=bits([0x3F800000, 0x3F800002, 0x7F800000, 0x80000000, 0x3DCCCCCD],
                            np.float32))],
           patch=_retag({
               "to_f16": {"dtype": "float16", "pipeline": [{"id": "cast", "dtype": "float32"},
                                                           {"id": "raw"}]},
               "to_bf16": {"dtype": "bfloat16", "pipeline": [{"id": "cast", "dtype": "float32"},
                                                             {"id": "raw"}]},
               "to_f32": {"dtype": "float32", "pipeline": [{"id": "cast", "dtype": "float64"},
                                                           {"id": "raw"}]}})),
    Vector("bytegroup_float", "bytegroup on every float dtype (1-bit rotation, byte planes): "
           "weight-like data, so exponent planes are zstd-coded and mantissa planes stored raw; "
           "float specials with NaN payloads (bit-exact); a non-default level.",
           [T("w_f32", _w16, "bytegroup"),
            T("w_f16", weights(5, (256,), dtype=np.float16), "bytegroup"),
            T("w_bf16", truncate_bf16(weights(6, (8, 32))), "bytegroup", dtype="bfloat16"),
            T("w_f64", weights(7, (64,), dtype=np.float64), "bytegroup:3"),
            T("special_f32", F32_SPECIAL, "bytegroup"),
            T("special_f64", F64_SPECIAL, "bytegroup"),
            T("special_f16", F16_SPECIAL, "bytegroup"),
            T("special_bf16", BF16_SPECIAL, "bytegroup", dtype="bfloat16")]),
    Vector("bytegroup_int", "bytegroup on integer and bool dtypes (no rotation): small-range "
           "and full-range values, an empty tensor and a 0-d tensor.",
           [T(f"small_{np.dtype(d).name}", (ints(10 + i, (96,), d) % d(5)).astype(d), "bytegroup")
            for i, d in enumerate(INT_DTYPES)]
           + [T("full_int32", ints(20, (64,), np.int32), "bytegroup"),
              T("bool", ints(21, (100,), np.bool_), "bytegroup"),
              T("empty_uint16", np.zeros((0,), np.uint16), "bytegroup"),
              T("scalar_int64", np.array(-123456789012, np.int64), "bytegroup")]),
    Vector("pipelines", "Multi-stage pipelines as the built-in recipes build them: cast + "
           "bytegroup (fp16/bf16 recipes), cast + bytegroup + zstd, cast + raw + zstd, and "
           "bytegroup + zstd.",
           [T("fp16", _w16, "cast:float16", "bytegroup",
              expected=_w16.astype(np.float16).astype(np.float32)),
            T("bf16", _w16, "cast:bfloat16", "bytegroup", "zstd",
              expected=widen_bf16([bf16_round(int(b)) for b in _w16.view(np.uint32).ravel()]
                                  ).reshape(16, 16)),
            T("fp16_raw_zstd", weights(8, (40,), dtype=np.float64), "cast:float16", "raw", "zstd",
              expected=weights(8, (40,), dtype=np.float64).astype(np.float16).astype(np.float64)),
            T("int_zstd", ints(9, (128,), np.int16) % np.int16(3), "bytegroup", "zstd")]),
    Vector("unicode_metadata", "Non-ASCII tensor names (NFC and NFD forms of the same word are "
           "different names), JSON-escaped characters, unicode metadata, the reserved wcodec.* "
           "keys, an empty metadata value.",
           [T(name, np.array([i], np.uint8), "raw") for i, name in enumerate([
               "encoder.layer.0.attention.self.query.weight", "Gewichte/Größe", "重み.偏り",
               "emoji 🧠 weight", "quote\" back\\slash", "tab\tnew\nline",
               "caf\u00e9", "cafe\u0301"])],
           {"wcodec.recipe": "raw", "wcodec.source": "tools/make_vectors.py",
            "wcodec.aliases": json.dumps({"tied.weight": "emoji 🧠 weight"}, ensure_ascii=False),
            "説明": "テスト ✓", "empty": "", "json-in-a-string": '{"a": [1, 2]}'}),
    Vector("minor_version", "Crafted: the header says format version 1.9. A reader of major "
           "version 1 MUST accept any minor version.",
           [T("x", np.array([1, 2, 3], np.int8), "raw")], {"note": "minor 9"},
           patch=_set_minor(9)),
    Vector("toc_zstd", "Crafted: the table of contents stored as a zstd frame without the TOC "
           "dictionary (trailer encoding 1, what format 1.1 and 1.2 writers wrote); the "
           "reference writer now uses encoding 2 (see pipelines_lossy).",
           [T(f"layer{i}.weight", weights(30 + i, (4, 3)), "raw") for i in range(3)],
           {"note": "TOC encoding 1"}, toc_encoding=1),
    Vector("bitpack", "bitpack: explicit widths (3, 13, 32, 1, 5: the payload only) and the "
           "minimum width chosen by the encoder (a 1-byte width header); signed dtypes "
           "zigzag-mapped (int32 min/max give symbols 2^32-1, 2^32-2), unsigned and bool as "
           "they are; an all-zero, an empty and a 0-d tensor; bitpack + zstd.",
           [T("u8_bits3", (ints(70, (5, 7), np.uint8) & np.uint8(7)), "bitpack:3"),
            T("i16_auto", (ints(71, (40,), np.int16) % np.int16(601) - np.int16(300)
                           ).astype(np.int16), "bitpack"),
            T("i32_bits32", int_extremes(np.int32), "bitpack:32"),
            T("i8_auto", int_extremes(np.int8), "bitpack"),
            T("u64_auto", ints(72, (3, 5), np.uint64) >> np.uint64(44), "bitpack"),
            T("bool_bits1", ints(73, (19,), np.bool_), "bitpack:1"),
            T("bool_auto", ints(74, (2, 6), np.bool_), "bitpack"),
            T("zeros_auto", np.zeros((10,), np.int16), "bitpack"),
            T("empty_auto", np.zeros((0, 3), np.uint8), "bitpack"),
            T("scalar_bits5", np.array(-9, np.int8), "bitpack:5"),
            T("u16_bits13_zstd", ints(75, (200,), np.uint16) >> np.uint16(3), "bitpack:13",
              "zstd")]),
    Vector("huffman", "huffman (symbol stream = u64 length, canonical length-limited Huffman "
           "stream, optional escape list): bell-shaped int8 levels in many lanes (dense code "
           "table), a few symbols from a large alphabet (sparse code table), a single-symbol "
           "stream (mode 1, also 0-d), an empty stream (mode 0), symbols >= 4095 escaped from "
           "int32 and uint16 tensors (4095 itself, int32 min/max), bool, int64, huffman + zstd.",
           [T("i8_levels", levels(80, (64, 64), 3.0), "huffman"),
            T("u16_sparse_table", np.array([0, 1000, 3000, 4000, 0, 0, 1000, 0, 0, 0, 4000, 0],
                                           np.uint16), "huffman"),
            T("u8_single", np.full((3, 40), 5, np.uint8), "huffman"),
            T("scalar_single", np.array(-3, np.int16), "huffman"),
            T("empty", np.zeros((0,), np.int32), "huffman"),
            T("i32_escapes", _ESC_I32, "huffman"),
            T("u16_escapes", _ESC_U16, "huffman"),
            T("two_symbols", (ints(81, (50,), np.uint8) & np.uint8(1)), "huffman"),
            T("bool", ints(82, (100,), np.bool_), "huffman"),
            T("i64", levels(83, (3, 50), 20.0, np.int64), "huffman"),
            T("zstd", levels(84, (300,), 2.0), "huffman", "zstd")]),
    Vector("zerorun", "zerorun (u64 run-symbol count, then a symbol stream of RUNA/RUNB digits "
           "and value+1 symbols): a pruned int8 tensor with leading and trailing zero runs, a "
           "long run (1000 zeros = 9 digits), no zeros at all, a 0-d zero, an empty tensor, "
           "run symbols >= 4095 escaped (uint16), bool, zerorun + zstd.",
           [T("i8_pruned", sparse_ints(90, (32, 32), 0.1, -20, 20, np.int8), "zerorun"),
            T("all_zero", np.zeros((1000,), np.uint8), "zerorun"),
            T("no_zeros", (levels(91, (64,), 4.0, np.int16) * 2 + 1).astype(np.int16),
              "zerorun"),
            T("scalar_zero", np.array(0, np.uint8), "zerorun"),
            T("empty", np.zeros((0, 2), np.int8), "zerorun"),
            T("u16_escapes", np.concatenate([np.zeros(5, np.uint16), _ESC_U16,
                                             np.zeros(3, np.uint16)]), "zerorun"),
            T("bool", sparse_ints(92, (200,), 0.05, 1, 1, np.bool_), "zerorun"),
            T("i32_zstd", sparse_ints(93, (16, 40), 0.2, -1000, 1000, np.int32), "zerorun",
              "zstd")]),
    Vector("linerice", "linerice (u8 axis, u64 counts length, u64 unary length, live-position "
           "mask, per-line counts, Rice-coded gaps, non-zero symbols): the worked example of "
           "the codec page, a matrix whose columns differ in density with dead rows and columns "
           "(axis 1), a 3-D tensor whose rows differ (axis 0), long gaps (remainder blocks of "
           "several widths), all zeros, no zeros, escaped values (uint16), bool, 0-d, empty, "
           "linerice + zstd.",
           [T("example", np.array([[0, 3, 0, 0], [0, 0, 0, 0], [0, -1, 0, 2]], np.int8),
              "linerice"),
            T("i8_columns", _column_density(110), "linerice"),
            T("i16_rows", sparse_ints(111, (6, 4, 5), 0.1, -300, 300, np.int16)
              * (np.arange(6) % 3 == 0)[:, None, None].astype(np.int16), "linerice"),
            T("long_gaps", sparse_ints(112, (3, 3000), 0.004, -5, 5, np.int8), "linerice"),
            T("all_zero", np.zeros((7, 9), np.uint8), "linerice"),
            T("no_zeros", np.arange(1, 31, dtype=np.int8).reshape(5, 6), "linerice"),
            T("u16_escapes", np.concatenate([np.zeros(5, np.uint16), _ESC_U16,
                                             np.zeros(3, np.uint16)]), "linerice"),
            T("bool", sparse_ints(113, (20, 10), 0.1, 1, 1, np.bool_), "linerice"),
            T("scalar", np.array(-7, np.int8), "linerice"),
            T("scalar_zero", np.array(0, np.uint8), "linerice"),
            T("empty", np.zeros((0, 3), np.int8), "linerice"),
            T("i32_zstd", sparse_ints(114, (16, 40), 0.2, -1000, 1000, np.int32), "linerice",
              "zstd")]),
    Vector("sparse", "sparse (u8 index_bits, u64 entries, u64 gap-part length, gap symbol "
           "stream, value symbol stream): filler entries (index_bits 3), index_bits chosen by "
           "the encoder, an all-zero tensor (no entries), no zeros (all gaps 0), a gap >= 4095 "
           "escaped (index_bits 16) and an escaped value, bool, 0-d, empty.",
           [T("i8_bits3", sparse_ints(100, (24, 24), 0.08, -60, 60, np.int8), "sparse:3"),
            T("i16_auto", sparse_ints(101, (20, 30), 0.15, -500, 500, np.int16), "sparse"),
            T("all_zero", np.zeros((50,), np.uint8), "sparse"),
            T("no_zeros", np.arange(1, 31, dtype=np.int8).reshape(5, 6), "sparse:2"),
            T("escaped_gap", np.concatenate([np.array([255], np.uint8), np.zeros(5000, np.uint8),
                                             np.array([3, 0, 0, 7], np.uint8),
                                             np.zeros(20, np.uint8)]), "sparse:16"),
            T("i32_values", np.array([0, 0, 70000, 0, -2**31, 0, 0, 0, 9, 0, 0], np.int32),
              "sparse:4"),
            T("bool", sparse_ints(102, (300,), 0.1, 1, 1, np.bool_), "sparse:4"),
            T("scalar", np.array(7, np.int8), "sparse"),
            T("empty", np.zeros((0,), np.int16), "sparse")]),
    Vector("prune", "prune (array->array; decoding is the identity, the stored zeros are "
           "exact): unstructured by sparsity (exact count, ties pruned lowest index first) and "
           "by threshold, structured whole channels by L1 and L2 norm along axis 0 and -2, on "
           "float32, bfloat16 and float16; the expected arrays are what the decoder returns, "
           "checked against an independent pruning of the input.",
           [T("sparsity", _prune_w, "prune:0.75", "raw", expected=DECODED,
              check=lambda x: pruned(x, sparsity=0.75)),
            T("ties", _prune_ties, "prune:0.5", "raw", expected=DECODED,
              check=lambda x: pruned(x, sparsity=0.5)),
            T("threshold", _prune_w, {"id": "prune", "threshold": 0.04}, "bytegroup",
              expected=DECODED, check=lambda x: pruned(x, threshold=0.04)),
            T("channels_l1", _prune_w, {"id": "prune", "sparsity": 0.5, "structure": "channels",
                                        "norm": "l1", "axis": 0}, "raw", expected=DECODED,
              check=lambda x: pruned(x, sparsity=0.5, structure="channels", axis=0)),
            T("channels_l2_axis_m2", _prune_w3, {"id": "prune", "sparsity": 0.5,
                                                 "structure": "channels", "norm": "l2",
                                                 "axis": -2}, "raw", expected=DECODED,
              check=lambda x: pruned(x, sparsity=0.5, structure="channels", axis=-2,
                                     norm="l2")),
            T("bf16", _prune_bf16, "prune:0.5", "bytegroup", dtype="bfloat16",
              expected=DECODED, check=lambda x: pruned(x, "bfloat16", sparsity=0.5)),
            T("f16_zstd", _prune_f16, "prune:0.9", "raw", "zstd", expected=DECODED,
              check=lambda x: pruned(x, sparsity=0.9))]),
    Vector("cluster", "cluster (weight sharing; output uint8 indices, side stream codebook = "
           "2^bits float32): keep_zero (index 0 = 0.0, zeros exact) and not, 1 to 5 bits, "
           "linear and density initialisation, fewer distinct values than centroids "
           "(lossless), float32/bfloat16/float16/float64, a float16 codebook (codebook_dtype, "
           "2^bits binary16), an empty and a 0-d tensor, indices coded by huffman, bitpack, "
           "zerorun and raw. Expected arrays: codebook[index] as the "
           "decoder computes it (cross-checked with numpy).",
           [T("f32_bits4", _cl_w, "cluster:4", "huffman", expected=DECODED),
            T("pruned_keep_zero", _cl_pruned, "cluster:3", "zerorun", expected=DECODED),
            T("f16_codebook_bits4", _cl_pruned,
              {"id": "cluster", "bits": 4, "codebook_dtype": "float16"}, "zerorun",
              expected=DECODED),
            T("no_keep_zero_bits2", _cl_w, {"id": "cluster", "bits": 2, "keep_zero": False},
              "bitpack:2", expected=DECODED),
            T("bf16_bits3", truncate_bf16(weights(53, (8, 16))), "cluster:3", "raw",
              dtype="bfloat16", expected=DECODED),
            T("f16_bits1", weights(54, (40,), dtype=np.float16), "cluster:1", "raw",
              expected=DECODED),
            T("f64_density_bits5", weights(55, (6, 40), dtype=np.float64),
              {"id": "cluster", "bits": 5, "init": "density"}, "huffman", expected=DECODED),
            T("few_values", _cl_few, "cluster:4", "raw", expected=DECODED),
            T("empty", np.zeros((0, 4), np.float32), "cluster:2", "raw", expected=DECODED),
            T("scalar", np.array(-0.75, np.float32), "cluster:2", "raw", expected=DECODED)]),
    Vector("quantize_uniform", "quantize mode uniform: symmetric (int8 levels, side stream "
           "scale) and affine (uint8 levels, scale and zero_point) per tensor, per channel "
           "(axis 0, 1, -1 of a 3-d tensor) and per group (C-order groups, short last group); "
           "an all-zero channel (scale 1), a channel axis of length 0 (empty side streams), "
           "0-d; float16/bfloat16/float64 tensors (dequantized in float32, then converted); "
           "values at the float32 limit (the product saturates). Expected arrays: what the "
           "decoder computes (cross-checked with numpy).",
           [T("sym_tensor_b8", _q_w, Q(bits=8, granularity="tensor"), "huffman",
              expected=DECODED),
            T("sym_channel_b4", _q_w, Q(bits=4, granularity="channel", axis=0), "bitpack:4",
              expected=DECODED),
            T("sym_channel_axis1", _q_w3, Q(bits=6, granularity="channel", axis=1), "huffman",
              expected=DECODED),
            T("sym_channel_axis_m1", _q_w3, Q(bits=5, granularity="channel", axis=-1),
              "huffman", expected=DECODED),
            T("affine_channel_b8", _q_asym, Q(bits=8, scheme="affine", granularity="channel",
                                              axis=0), "raw", expected=DECODED),
            T("affine_group_b4", weights(65, (4, 25)) + np.float32(0.03),
              Q(bits=4, scheme="affine", granularity="group", group_size=32), "huffman",
              expected=DECODED),
            T("sym_group_b3", weights(66, (3, 7, 5)), Q(bits=3, granularity="group",
                                                       group_size=16),
              "bitpack", expected=DECODED),
            T("zero_channel", _q_zero_row, Q(bits=8, granularity="channel"), "huffman",
              expected=DECODED),
            T("f16_channel", weights(67, (4, 16), dtype=np.float16), Q(bits=8), "huffman",
              expected=DECODED),
            T("bf16_affine_tensor", truncate_bf16(weights(68, (4, 16))),
              Q(bits=5, scheme="affine", granularity="tensor"), "huffman", dtype="bfloat16",
              expected=DECODED),
            T("f64_group", weights(69, (50,), dtype=np.float64),
              Q(bits=8, granularity="group", group_size=8), "raw", expected=DECODED),
            T("empty_axis", np.zeros((0, 8), np.float32), Q(bits=8, scheme="affine"), "raw",
              expected=DECODED),
            T("scalar", np.array(0.37, np.float32), Q(bits=8), "huffman", expected=DECODED),
            T("f32_limit", np.array([F32_MAX, -F32_MAX, 1.0, 3e38], np.float32),
              Q(bits=8, granularity="tensor"), "raw", expected=DECODED)]),
    Vector("quantize_ternary_step", "quantize mode ternary (int8 levels -1/0/+1, side stream "
           "scale; per tensor and per channel; a channel with nothing kept has scale 0) and "
           "mode step (int32 levels, side stream step; absolute step per tensor, step_ratio "
           "per channel; outliers give levels whose symbols the coder escapes); float16 and "
           "bfloat16 tensors. Expected arrays: what the decoder computes (cross-checked with "
           "numpy).",
           [T("ternary_tensor", _q_w, Q(mode="ternary", granularity="tensor"), "huffman",
              expected=DECODED),
            T("ternary_channel_axis1", _q_w3,
              Q(mode="ternary", granularity="channel", axis=1, threshold_ratio=0.5), "zerorun",
              expected=DECODED),
            T("ternary_zero_channel", _q_zero_row, Q(mode="ternary"), "huffman",
              expected=DECODED),
            T("ternary_bf16", truncate_bf16(weights(70, (6, 10))), Q(mode="ternary"), "raw",
              dtype="bfloat16", expected=DECODED),
            T("step_tensor", _q_w, Q(mode="step", step=0.004, granularity="tensor"), "huffman",
              expected=DECODED),
            T("step_ratio_channel", _q_outlier,
              Q(mode="step", step_ratio=0.05, granularity="channel", axis=0), "huffman",
              expected=DECODED),
            T("step_channel_escapes", _q_outlier,
              Q(mode="step", step=0.005, granularity="channel", axis=0), "huffman",
              expected=DECODED),
            T("step_f16_axis_m1", weights(71, (3, 40), dtype=np.float16),
              Q(mode="step", step=0.01, granularity="channel", axis=-1), "zerorun", "zstd",
              expected=DECODED)]),
    Vector("pipelines_lossy", "Lossy pipelines as the recipes build them: Deep Compression "
           "(prune + cluster + zerorun + zstd, the codebook stream named 1.codebook), prune + "
           "quantize + sparse, int4 groups (quantize + bitpack), cast to float16 before "
           "quantize, step quantization + zerorun + zstd, and the encoder-only coder `auto` "
           "(the file records the coder that won, never `auto`).",
           [T("deep_compression", weights(80, (32, 32)), "prune:0.8", "cluster:4", "zerorun",
              "zstd", expected=DECODED),
            T("prune_quantize_sparse", weights(81, (16, 48)), "prune:0.9",
              Q(bits=8, granularity="channel"), "sparse", expected=DECODED),
            T("int4_group", weights(82, (8, 64)), Q(bits=4, granularity="group", group_size=32),
              "bitpack:4", expected=DECODED),
            T("cast_then_quantize", weights(83, (4, 32)), "cast:float16",
              Q(bits=8, scheme="affine", granularity="tensor"), "huffman", expected=DECODED),
            T("step_zerorun_zstd", weights(84, (16, 32)), "prune:0.5",
              Q(mode="step", step_ratio=0.1, granularity="channel"), "zerorun", "zstd",
              expected=DECODED),
            T("auto_resolved", weights(85, (16, 32)), "prune:0.7", "cluster:3", "auto",
              expected=DECODED),
            T("auto_candidates", sparse_ints(86, (600,), 0.02, -3, 3, np.int8),
              {"id": "auto", "candidates": ["bitpack", "sparse"]})]),
    Vector("bloomier", "bloomier (binary fuse static function over the positions of nonzero "
           "cluster indices): the spec page's worked example (exact, value_bits 2), exact mode "
           "with the false positives in the exception list (raw and zstd body), all-zero, 0-d "
           "and empty tensors, lossy mode (false positives kept: the expected array is what "
           "the decoder returns) and a float32 prune + cluster + bloomier pipeline.",
           [T("spec_example", np.array([0, 3, 0, 0, 1, 0, 0, 2], np.uint8),
              {"id": "bloomier", "mode": "exact", "value_bits": 2, "compress": "none"}),
            T("exact_raw", sparse_ints(110, (40, 50), 0.1, 1, 15, np.uint8),
              {"id": "bloomier", "mode": "exact", "compress": "none"}),
            T("exact_zstd", sparse_ints(111, (40, 50), 0.1, 1, 15, np.uint8),
              {"id": "bloomier", "mode": "exact", "compress": "zstd"}),
            T("all_zero", np.zeros((30,), np.uint8), {"id": "bloomier", "mode": "exact"}),
            T("scalar", np.array(5, np.uint8), {"id": "bloomier", "mode": "exact"}),
            T("empty", np.zeros((0, 3), np.uint8), {"id": "bloomier", "mode": "exact"}),
            T("lossy_bits6", sparse_ints(112, (30, 40), 0.05, 1, 7, np.uint8),
              {"id": "bloomier", "mode": "lossy", "value_bits": 6}, expected=DECODED),
            T("weightless", weights(113, (32, 64)), "prune:0.9", "cluster:4",
              {"id": "bloomier", "mode": "lossy"}, expected=DECODED)]),
]


# ---------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------

def pretty_json(value: Any, indent: int = 0, width: int = 96) -> str:
    """JSON for people: a value goes on one line when it fits in ``width``."""
    flat = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if len(flat) + indent <= width or not isinstance(value, (dict, list)) or not value:
        return flat
    pad = " " * (indent + 1)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: "
                 f"{pretty_json(v, indent + 1, width).lstrip()}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + pretty_json(v, indent + 1, width).lstrip() for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def dump_toc(toc: dict) -> bytes:
    """The writer's TOC serialisation."""
    return json.dumps(toc, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def read_toc(blob: bytes) -> tuple[int, dict]:
    offset, length, _, encoding, _ = fmt.TRAILER.unpack_from(blob, len(blob) - fmt.TRAILER.size)
    raw = blob[offset:offset + length]
    if encoding in (fmt.TOC_ZSTD, fmt.TOC_ZSTD_DICT):  # 2: with the spec's dictionary
        import zstandard
        dictionary = None
        if encoding == fmt.TOC_ZSTD_DICT:
            with open(os.path.join(ROOT, "spec", "toc-dictionary.txt"), "rb") as f:
                dictionary = zstandard.ZstdCompressionDict(
                    f.read(), dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        raw = zstandard.ZstdDecompressor(dict_data=dictionary).decompress(raw)
    return offset, json.loads(raw.decode("utf-8"))


def apply_patch(path: str, patch: Callable[[bytearray, dict], None] | None,
                encoding: int | None = None) -> None:
    """Rewrite a written file: ``patch(header and streams, toc)``, then the TOC
    stored plain (encoding 0) or as ``encoding`` 1 (zstd level 19, no dictionary)."""
    with open(path, "rb") as f:
        blob = f.read()
    toc_offset, toc = read_toc(blob)
    body = bytearray(blob[:toc_offset])
    if patch is not None:
        patch(body, toc)
    toc_bytes = dump_toc(toc)
    if encoding == fmt.TOC_ZSTD:
        import zstandard
        toc_bytes = zstandard.ZstdCompressor(level=19, write_content_size=True).compress(toc_bytes)
    elif encoding not in (None, fmt.TOC_JSON):
        raise SystemExit(f"apply_patch: TOC encoding {encoding} is not crafted here")
    with open(path, "wb") as f:
        f.write(bytes(body) + toc_bytes + fmt.TRAILER.pack(
            toc_offset, len(toc_bytes), zlib.crc32(toc_bytes), encoding or 0, fmt.MAGIC))


def codecs_of(vector: Vector, toc: dict | None = None) -> list[str]:
    records = toc["tensors"] if toc is not None else [{"pipeline": t.pipeline} for t in vector.tensors]
    return sorted({stage["id"] for r in records for stage in r["pipeline"]})


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """np.savez layout (one uncompressed KEY.npy per array), but byte-for-byte
    reproducible: fixed member timestamps. Read with np.load(allow_pickle=False)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.array(array, order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def build(vector: Vector, directory: str) -> dict[str, Any]:
    """Write one vector's .wcodec and .npz into ``directory``; returns its manifest entry."""
    unknown = {s["id"] for t in vector.tensors for s in t.pipeline} - set(codec_ids())
    if unknown:
        raise SystemExit(f"vector {vector.name}: codec ids {sorted(unknown)} are not registered")
    path = os.path.join(directory, vector.name + ".wcodec")
    with wcodec.Writer(path, vector.metadata) as writer, np.errstate(over="ignore"):
        for t in vector.tensors:  # (casts overflow to inf on purpose)
            writer.add_tensor(t.name, t.array, wcodec.Pipeline(t.pipeline), t.dtype)
    if vector.patch is not None or vector.toc_encoding is not None:
        apply_patch(path, vector.patch, vector.toc_encoding)
    with open(path, "rb") as f:
        blob = f.read()
    _, toc = read_toc(blob)
    expected = {f"t{i}": t.expected for i, t in enumerate(vector.tensors)}
    if any(isinstance(t.expected, str) or t.check for t in vector.tensors):
        with wcodec.open(path) as reader, np.errstate(over="ignore", invalid="ignore"):
            for i, t in enumerate(vector.tensors):
                if not (isinstance(t.expected, str) or t.check):
                    continue
                got = reader.get_tensor(t.name)
                wants = [("independent_decode", independent_decode(reader, t.name))]
                if t.check is not None:
                    wants.append(("check", t.check(t.array)))
                if not isinstance(t.expected, str):
                    wants.append(("expected", t.expected))
                for what, want in wants:
                    if not same_bits(got, want):
                        raise SystemExit(f"vector {vector.name}: {what} disagrees with the "
                                         "decoder:\n  " + "\n  ".join(describe_diff(
                                             t.name, got, want)))
                expected[f"t{i}"] = got
    leaked = [c for c in codecs_of(vector, toc) if c not in file_codec_ids()]
    if leaked:
        raise SystemExit(f"vector {vector.name}: the file records encoder-only codec ids {leaked}")
    entry = {
        "name": vector.name,
        "file": vector.name + ".wcodec",
        "expected": vector.name + ".npz",
        "description": vector.description,
        "codecs": codecs_of(vector, toc),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "size": len(blob),
        "metadata": vector.metadata,
        "tensors": [{"name": r["name"], "key": f"t{i}", "dtype": r["dtype"], "shape": r["shape"],
                     "pipeline": "+".join(s["id"] for s in r["pipeline"])}
                    for i, r in enumerate(toc["tensors"])],
    }
    # The real reader must give back exactly what the definition expects.
    problems = compare(path, entry, expected)
    if problems:
        raise SystemExit(f"vector {vector.name}: the library does not decode it as defined:\n  "
                         + "\n  ".join(problems))
    write_npz(os.path.join(directory, entry["expected"]), expected)
    return entry


# ---------------------------------------------------------------------------
# checking
# ---------------------------------------------------------------------------

def describe_diff(name: str, got: np.ndarray, want: np.ndarray) -> list[str]:
    if got.shape != want.shape or got.dtype != want.dtype:
        return [f"tensor {name!r}: got {got.dtype}{list(got.shape)}, "
                f"expected {want.dtype}{list(want.shape)}"]
    k = want.dtype.itemsize
    as_bits = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[k]
    g = got.reshape(-1).view(as_bits)
    w = want.reshape(-1).view(as_bits)
    bad = np.flatnonzero(g != w)
    lines = [f"tensor {name!r}: {bad.size} of {w.size} elements differ"]
    for i in bad[:8]:
        idx = np.unravel_index(i, want.shape) if want.ndim else ()
        lines.append(f"  [{', '.join(map(str, idx))}]  - expected {w[i]:0{2 * k}x} "
                     f"({want.reshape(-1)[i]!r})  + got {g[i]:0{2 * k}x} ({got.reshape(-1)[i]!r})")
    if bad.size > 8:
        lines.append(f"  ... {bad.size - 8} more")
    return lines


def compare(path: str, entry: dict, expected: dict[str, np.ndarray]) -> list[str]:
    """Decode ``path`` and compare with the manifest entry and expected arrays."""
    with np.errstate(over="ignore", invalid="ignore"):  # cast vectors overflow on purpose
        return _compare(path, entry, expected)


def _compare(path: str, entry: dict, expected: dict[str, np.ndarray]) -> list[str]:
    problems = []
    try:
        with wcodec.open(path) as reader:
            if reader.metadata() != entry["metadata"]:
                problems.append(f"metadata: got {reader.metadata()}, expected {entry['metadata']}")
            names = [t["name"] for t in entry["tensors"]]
            if reader.keys() != names:
                problems.append(f"tensor names: got {reader.keys()}, expected {names}")
            for t in entry["tensors"]:
                if t["name"] not in reader:
                    continue
                info = reader.info(t["name"])
                if info.dtype != t["dtype"] or list(info.shape) != t["shape"]:
                    problems.append(f"tensor {t['name']!r}: TOC says {info.dtype}{list(info.shape)}, "
                                    f"manifest {t['dtype']}{t['shape']}")
                got = reader.get_tensor(t["name"])
                if not same_bits(got, expected[t["key"]]):
                    problems += describe_diff(t["name"], got, expected[t["key"]])
            problems += [f"verify: {p}" for p in reader.verify()]
            used = sorted({s["id"] for i in reader.infos() for s in i.pipeline})
            if used != entry["codecs"]:
                problems.append(f"codecs: the file uses {used}, the manifest says {entry['codecs']}")
    except wcodec.WcodecError as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
    return problems


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def load_npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def check() -> int:
    """Verify the committed vectors; print a report; return the exit status."""
    failures = 0
    notes = 0
    try:
        with open(MANIFEST, encoding="utf-8") as f:
            manifest = json.load(f)
    except OSError:
        print(f"FAIL {os.path.relpath(MANIFEST, ROOT)} is missing: run tools/make_vectors.py")
        return 1
    entries = {e["name"]: e for e in manifest["vectors"]}
    with tempfile.TemporaryDirectory() as tmp:
        for entry in manifest["vectors"]:
            path = os.path.join(VECTOR_DIR, entry["file"])
            npz = os.path.join(VECTOR_DIR, entry["expected"])
            missing = [p for p in (path, npz) if not os.path.exists(p)]
            if missing:
                print(f"FAIL {entry['name']}: missing {', '.join(map(os.path.basename, missing))}")
                failures += 1
                continue
            digest = hashlib.sha256(read_bytes(path)).hexdigest()
            problems = []
            if digest != entry["sha256"]:
                problems.append(f"sha256 {digest} != manifest {entry['sha256']}")
            problems += compare(path, entry, load_npz(npz))
            if problems:
                failures += 1
                print(f"FAIL {entry['name']}")
                for p in problems:
                    print(f"     {p}")
                continue
            # Would the current encoders write the same bytes?
            vector = next((v for v in VECTORS if v.name == entry["name"]), None)
            if vector is None:
                print(f"ok   {entry['name']}  (no definition in VECTORS: stale manifest entry?)")
                notes += 1
                continue
            fresh = build(vector, tmp)
            if fresh["sha256"] != entry["sha256"]:
                notes += 1
                print(f"ok   {entry['name']}  (decodes; but regenerating gives different bytes: "
                      "an encoder changed its output; rerun tools/make_vectors.py if intended)")
            elif read_bytes(npz) != read_bytes(os.path.join(tmp, entry["expected"])):
                notes += 1
                print(f"ok   {entry['name']}  (decodes; the regenerated .npz differs)")
            else:
                print(f"ok   {entry['name']}")
    for vector in VECTORS:
        if vector.name not in entries:
            failures += 1
            print(f"FAIL {vector.name}: defined in VECTORS but not in the manifest "
                  "(run tools/make_vectors.py)")
    covered = {c for e in manifest["vectors"] for c in e["codecs"]}
    for cid in sorted(set(file_codec_ids()) - covered):
        failures += 1
        print(f"FAIL codec {cid!r} is registered but no vector uses it: add a Vector to "
              "tools/make_vectors.py and run it")
    example = os.path.join(VECTOR_DIR, EXAMPLE_VECTOR + ".wcodec")
    if os.path.exists(example) and os.path.exists(FORMAT_MD):
        with open(FORMAT_MD, encoding="utf-8") as f:
            if example_block(example) not in f.read():
                failures += 1
                print("FAIL spec/FORMAT.md: the worked example does not match "
                      f"{EXAMPLE_VECTOR}.wcodec (run tools/make_vectors.py)")
    print(f"{len(manifest['vectors'])} vectors, {failures} failed, {notes} notes")
    return 1 if failures else 0


# ---------------------------------------------------------------------------
# the worked example in spec/FORMAT.md
# ---------------------------------------------------------------------------

def hexdump(blob: bytes) -> str:
    """``hexdump -C`` layout, without collapsing repeated lines."""
    lines = []
    for off in range(0, len(blob), 16):
        chunk = blob[off:off + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk[:8]) + "  " + " ".join(
            f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{off:08x}  {hexes:<48}  |{text}|")
    lines.append(f"{len(blob):08x}")
    return "\n".join(lines)


def example_block(path: str) -> str:
    with open(path, "rb") as f:
        blob = f.read()
    toc_offset, toc = read_toc(blob)
    toc_length = len(blob) - fmt.TRAILER.size - toc_offset
    major, minor = struct.unpack_from("<HH", blob, 8)
    regions = [(0, fmt.HEADER.size, f"header: magic, version {major}.{minor}, flags 0, "
                                    "48 reserved zero bytes")]
    for record in toc["tensors"]:
        for s in record["streams"]:
            regions.append((s["offset"], s["length"], f"tensor `{record['name']}`, stream "
                            f"`{s['name']}` ({'+'.join(c['id'] for c in record['pipeline'])}), "
                            f"crc32 `0x{s['crc32']:08x}`"))
    offset, length, crc, encoding, _ = fmt.TRAILER.unpack_from(blob, len(blob) - fmt.TRAILER.size)
    regions.append((toc_offset, toc_length, "table of contents (UTF-8 JSON)" if encoding == 0
                    else "table of contents (zstd frame of UTF-8 JSON)"))
    regions.append((len(blob) - fmt.TRAILER.size, fmt.TRAILER.size,
                    f"trailer: TOC offset {offset}, TOC length {length}, TOC crc32 "
                    f"`0x{crc:08x}`, TOC encoding {encoding}, magic"))
    rows, pos = [], 0
    for start, size, what in sorted(regions):
        if start > pos:
            rows.append(f"| `{pos:#05x}`–`{start - 1:#05x}` | {start - pos} | zero padding |")
        rows.append(f"| `{start:#05x}`–`{start + size - 1:#05x}` | {size} | {what} |")
        pos = max(pos, start + size)
    return "\n".join([
        EXAMPLE_BEGIN,
        f"`spec/vectors/{EXAMPLE_VECTOR}.wcodec`, {len(blob)} bytes:",
        "",
        "```",
        hexdump(blob),
        "```",
        "",
        "| bytes | length | content |",
        "|-------|-------:|---------|",
        *rows,
        "",
        "Its table of contents, re-indented for reading (the file holds it on one line, "
        "with no spaces):",
        "",
        "```json",
        pretty_json(toc, width=100),
        "```",
        EXAMPLE_END,
    ])


def update_format_md(path: str) -> None:
    if not os.path.exists(FORMAT_MD):
        return
    with open(FORMAT_MD, encoding="utf-8") as f:
        text = f.read()
    pattern = re.compile(re.escape(EXAMPLE_BEGIN) + ".*?" + re.escape(EXAMPLE_END), re.S)
    if not pattern.search(text):
        print("note: spec/FORMAT.md has no generated-example markers; not updated")
        return
    new = pattern.sub(lambda m: example_block(path), text)
    if new != text:
        with open(FORMAT_MD, "w", encoding="utf-8") as f:
            f.write(new)
        print("updated the worked example in spec/FORMAT.md")


# ---------------------------------------------------------------------------

def generate() -> int:
    names = [v.name for v in VECTORS]
    if len(set(names)) != len(names):
        raise SystemExit("duplicate vector names in VECTORS")
    os.makedirs(VECTOR_DIR, exist_ok=True)
    entries = [build(v, VECTOR_DIR) for v in VECTORS]
    keep = {e["file"] for e in entries} | {e["expected"] for e in entries} | {"MANIFEST.json"}
    for stale in sorted(os.listdir(VECTOR_DIR)):
        if stale.endswith((".wcodec", ".npz")) and stale not in keep:
            os.unlink(os.path.join(VECTOR_DIR, stale))
            print(f"removed stale {stale}")
    manifest = {
        "format_version": f"{fmt.VERSION_MAJOR}.{fmt.VERSION_MINOR}",
        "generator": "tools/make_vectors.py",
        "note": "Expected arrays: <expected>.npz, key per tensor as listed; bfloat16 tensors "
                "as uint16 bit patterns. Compare bit-exactly (NaN payloads included).",
        "vectors": entries,
    }
    with open(MANIFEST, "w", encoding="utf-8") as f:
        f.write(pretty_json(manifest, width=100) + "\n")
    update_format_md(os.path.join(VECTOR_DIR, EXAMPLE_VECTOR + ".wcodec"))
    total = sum(os.path.getsize(os.path.join(VECTOR_DIR, n)) for n in os.listdir(VECTOR_DIR))
    covered = {c for e in entries for c in e["codecs"]}
    missing = sorted(set(file_codec_ids()) - covered)
    print(f"wrote {len(entries)} vectors to {os.path.relpath(VECTOR_DIR, ROOT)} ({total} bytes)")
    if missing:
        print(f"WARNING: registered codecs without a vector: {', '.join(missing)}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="verify the committed vectors instead of writing them")
    args = parser.parse_args(argv)
    return check() if args.check else generate()


if __name__ == "__main__":
    sys.exit(main())
