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
id is not used by any vector.

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
from wcodec.codecs import codec_ids  # noqa: E402
from wcodec.container import format as fmt  # noqa: E402

VECTOR_DIR = os.path.join(ROOT, "spec", "vectors")
MANIFEST = os.path.join(VECTOR_DIR, "MANIFEST.json")
FORMAT_MD = os.path.join(ROOT, "spec", "FORMAT.md")
EXAMPLE_VECTOR = "tiny"  # its hex dump and TOC are pasted into spec/FORMAT.md
EXAMPLE_BEGIN = "<!-- BEGIN GENERATED: tiny.wcodec (tools/make_vectors.py) -->"
EXAMPLE_END = "<!-- END GENERATED -->"


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
    expected: np.ndarray | None = None     # decoded result when lossy; default: array

    def __post_init__(self):
        self.array = np.asarray(self.array)
        self.dtype = self.dtype or wcodec.dtypes.name_of(self.array)
        if self.expected is None:
            self.expected = self.array
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


def T(name, array, *pipeline, dtype=None, expected=None) -> Tensor:
    """Shorthand: ``T("w", array, "cast:float16", "raw")``; a string stage is
    ``id`` or ``id:value`` for the codec's single main option."""
    stages = []
    for stage in pipeline:
        if isinstance(stage, str):
            cid, _, value = stage.partition(":")
            stage = {"id": cid}
            if value:
                key = {"cast": "dtype"}.get(cid, "level")
                stage[key] = value if key == "dtype" else int(value)
        stages.append(stage)
    return Tensor(name, array, stages, dtype, expected)


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
    offset, length, _, _, _ = fmt.TRAILER.unpack_from(blob, len(blob) - fmt.TRAILER.size)
    return offset, json.loads(blob[offset:offset + length].decode("utf-8"))


def apply_patch(path: str, patch: Callable[[bytearray, dict], None]) -> None:
    with open(path, "rb") as f:
        blob = f.read()
    toc_offset, toc = read_toc(blob)
    body = bytearray(blob[:toc_offset])
    patch(body, toc)
    toc_bytes = dump_toc(toc)
    with open(path, "wb") as f:
        f.write(bytes(body) + toc_bytes + fmt.TRAILER.pack(
            toc_offset, len(toc_bytes), zlib.crc32(toc_bytes), 0, fmt.MAGIC))


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
    if vector.patch is not None:
        apply_patch(path, vector.patch)
    with open(path, "rb") as f:
        blob = f.read()
    _, toc = read_toc(blob)
    expected = {f"t{i}": t.expected for i, t in enumerate(vector.tensors)}
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
    for cid in sorted(set(codec_ids()) - covered):
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
    regions.append((toc_offset, toc_length, "table of contents (UTF-8 JSON)"))
    offset, length, crc, _, _ = fmt.TRAILER.unpack_from(blob, len(blob) - fmt.TRAILER.size)
    regions.append((len(blob) - fmt.TRAILER.size, fmt.TRAILER.size,
                    f"trailer: TOC offset {offset}, TOC length {length}, TOC crc32 "
                    f"`0x{crc:08x}`, reserved 0, magic"))
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
    missing = sorted(set(codec_ids()) - covered)
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
