"""Malformed and hostile input: every damaged or crafted file must raise a
``wcodec.WcodecError`` subclass (never IndexError, struct.error, ValueError,
MemoryError...), or, for damage that does not matter (a padding byte), decode
to exactly the original arrays.

* (a) truncation at many offsets, (b) single-bit flips, (c) hand-written
  hostile tables of contents with a valid trailer and crc, (d) zstd bombs,
  plus codec-level fuzzing of stream bytes that no checksum protects.
"""
from __future__ import annotations

import json
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

import wcodec
from conftest import toc_of, BUILTIN_RECIPES, arrays, bfloat16_tensor, bits_equal, encode_parts
from wcodec import (ChecksumError, FormatError, InputError, LimitExceeded, Pipeline,
                    TruncatedError, UnknownCodec, UnsupportedVersion, WcodecError, Writer)
from wcodec.codecs import ARRAY_TO_ARRAY, ArraySpec, Codec
from wcodec.codecs import base as codec_base
from wcodec.container import format as fmt

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def load_all(path, **kw) -> dict[str, np.ndarray]:
    """open + decode every tensor, the way a user would."""
    with wcodec.open(path, **kw) as reader:
        return {name: reader.get_tensor(name) for name in reader.keys()}


def same_arrays(got: dict, want: dict) -> bool:
    return list(got) == list(want) and all(bits_equal(got[k], want[k]) for k in want)


def outcome(path, expected) -> str:
    """'error' if a WcodecError was raised, 'exact' if everything decoded to
    ``expected``; anything else (another exception, wrong data) fails the test."""
    try:
        got = load_all(path)
    except WcodecError:
        return "error"
    assert same_arrays(got, expected), "a damaged file decoded to different arrays"
    return "exact"


def header(major=fmt.VERSION_MAJOR, minor=fmt.VERSION_MINOR, flags=0, reserved=bytes(48),
           magic=fmt.MAGIC) -> bytes:
    return fmt.HEADER.pack(magic, major, minor, flags, reserved)


def stream_area(blobs: list[bytes], align: int = fmt.ALIGN) -> tuple[bytes, list[tuple[int, int, int]]]:
    """Lay blobs out from offset 64, each ``align``-aligned; returns the area after
    the header and (offset, length, crc32) for each blob."""
    area = bytearray()
    where = []
    for blob in blobs:
        pad = (-(fmt.HEADER.size + len(area))) % align
        area += bytes(pad)
        where.append((fmt.HEADER.size + len(area), len(blob), zlib.crc32(blob)))
        area += blob
    return bytes(area), where


def assemble(area: bytes, toc, *, head: bytes | None = None, toc_offset=None, toc_length=None,
             toc_crc=None, zero=0, end_magic=fmt.MAGIC) -> bytes:
    """A file: header, stream area, TOC (a JSON-able object, str or bytes) and a
    trailer that is valid unless told otherwise."""
    if isinstance(toc, (bytes, bytearray)):
        toc_bytes = bytes(toc)
    elif isinstance(toc, str):
        toc_bytes = toc.encode("utf-8")
    else:
        toc_bytes = json.dumps(toc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    head = header() if head is None else head
    offset = len(head) + len(area)
    trailer = fmt.TRAILER.pack(offset if toc_offset is None else toc_offset,
                               len(toc_bytes) if toc_length is None else toc_length,
                               zlib.crc32(toc_bytes) if toc_crc is None else toc_crc,
                               zero, end_magic)
    return head + area + toc_bytes + trailer


def zstd_frame(data: bytes, level: int = 3) -> bytes:
    return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(data)


def rle_zstd_frame(declared: int | None, total: int, byte: int = 0) -> bytes:
    """A valid zstd frame made of RLE blocks: ``total`` copies of ``byte`` in
    about 4 * total / 128 KiB bytes, declaring ``declared`` as its content size
    (None: no content size). A decompression bomb when total is large."""
    out = [struct.pack("<I", 0xFD2FB528)]
    window = bytes([0x38])  # window descriptor: 2^17 bytes, not single-segment
    if declared is None:
        out.append(bytes([0x00]) + window)
    else:
        out.append(bytes([0xC0]) + window + struct.pack("<Q", declared))
    block = 1 << 17
    left = total
    while True:
        size = min(block, left)
        left -= size
        last = int(left == 0)
        out.append(struct.pack("<I", last | (1 << 1) | (size << 3))[:3] + bytes([byte]))
        if last:
            return b"".join(out)


# The hand-built base file: three tensors, written without wcodec's writer.
A = np.array([1.0, -2.0, 0.5], dtype="<f4")
B = np.array([[1, 2], [3, 4]], dtype=np.uint8)
C = np.array([-3, 0, 7, 1000, -32768], dtype="<i2")


def _bytegroup_stream(words: np.ndarray) -> bytes:
    """bytegroup by hand: planes stored raw (method 0), no transform (ints)."""
    k = words.dtype.itemsize
    planes = words.reshape(-1).view(np.uint8).reshape(-1, k)
    head = bytes([k, 0]) + b"".join(struct.pack("<BQ", 0, planes.shape[0]) for _ in range(k))
    return head + b"".join(np.ascontiguousarray(planes[:, i]).tobytes() for i in range(k))


BASE_BLOBS = [A.tobytes(), zstd_frame(B.tobytes()), _bytegroup_stream(C)]
BASE_AREA, BASE_WHERE = stream_area(BASE_BLOBS)
BASE_EXPECTED = {"a": A, "b": B, "c": C}


def base_toc() -> dict:
    (oa, la, ca), (ob, lb, cb), (oc, lc, cc) = BASE_WHERE
    return {
        "metadata": {"purpose": "hostile-toc base"},
        "tensors": [
            {"name": "a", "dtype": "float32", "shape": [3], "pipeline": [{"id": "raw"}],
             "streams": [{"name": "data", "offset": oa, "length": la, "crc32": ca}]},
            {"name": "b", "dtype": "uint8", "shape": [2, 2],
             "pipeline": [{"id": "raw"}, {"id": "zstd", "level": 3}],
             "streams": [{"name": "data", "offset": ob, "length": lb, "crc32": cb}]},
            {"name": "c", "dtype": "int16", "shape": [5], "pipeline": [{"id": "bytegroup"}],
             "streams": [{"name": "data", "offset": oc, "length": lc, "crc32": cc}],
             "stats": {"ratio": 1.0}},
        ],
    }


TOC_OFFSET = fmt.HEADER.size + len(BASE_AREA)
END = TOC_OFFSET - TOC_OFFSET % fmt.ALIGN  # an aligned offset where empty streams may sit


def test_hand_built_base_file_is_valid(tmp_path):
    path = tmp_path / "base.wcodec"
    path.write_bytes(assemble(BASE_AREA, base_toc()))
    assert same_arrays(load_all(path), BASE_EXPECTED)
    with wcodec.open(path) as r:
        assert r.verify() == []
        assert r.metadata() == {"purpose": "hostile-toc base"}


# ---------------------------------------------------------------------------
# good files written by wcodec, one per recipe (for truncation and bit flips)
# ---------------------------------------------------------------------------

def _small_tensors():
    rng = np.random.default_rng(7)
    return {
        "w": (rng.standard_normal((6, 5)) * 0.05).astype(np.float32),
        "b": np.linspace(-1, 1, 7),                       # float64
        "h": rng.standard_normal(4).astype(np.float16),
        "bf": bfloat16_tensor(np.array([0x3F80, 0xC040, 0x0000, 0x7F80], np.uint16)),
        "i": rng.integers(-50, 50, 9).astype(np.int32),
        "m": np.array([[True, False, True]]),
        "s": np.int64(42),
        "e": np.zeros((0, 3), np.uint16),
    }


@pytest.fixture(scope="module")
def good_files(tmp_path_factory):
    """recipe -> (file bytes, expected decoded arrays, padding byte ranges)."""
    out = {}
    d = tmp_path_factory.mktemp("good")
    tensors = _small_tensors()
    for recipe in BUILTIN_RECIPES:
        path = d / f"{recipe}.wcodec"
        wcodec.save_file(tensors, path, recipe, metadata={"k": "v"})
        expected = load_all(path)
        blob = path.read_bytes()
        toc_offset, toc = toc_of(blob)
        spans = sorted((s["offset"], s["offset"] + s["length"])
                       for rec in toc["tensors"] for s in rec["streams"])
        padding = []
        covered = fmt.HEADER.size
        for start, end in spans + [(toc_offset, toc_offset)]:
            if start > covered:
                padding.append((covered, start))
            covered = max(covered, end)
        assert len(blob) < 4096  # keep the exhaustive loops cheap
        out[recipe] = (blob, expected, padding, toc_offset)
    return out


# ---------------------------------------------------------------------------
# (a) truncation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("recipe", BUILTIN_RECIPES)
def test_truncation_everywhere(recipe, good_files, tmp_path):
    blob, expected, _, _ = good_files[recipe]
    n = len(blob)
    cuts = set(range(min(128, n))) | set(range(max(0, n - 128), n)) | set(range(128, n - 128, 7))
    path = tmp_path / "t.wcodec"
    for cut in sorted(cuts):
        path.write_bytes(blob[:cut])
        with pytest.raises(WcodecError):
            load_all(path)
    # a cut inside the trailer or before it says "truncated"
    for cut in (0, 95, n - 1, n - 32, n // 2):
        path.write_bytes(blob[:cut])
        with pytest.raises(TruncatedError):
            wcodec.open(path)


@pytest.mark.parametrize("recipe", ["lossless", "raw"])
def test_appended_or_prepended_bytes(recipe, good_files, tmp_path):
    blob, _, _, _ = good_files[recipe]
    path = tmp_path / "x.wcodec"
    for variant in (blob + b"\x00", blob + blob[-32:] + b"junk", b"\x00" * 64 + blob,
                    blob[:-32] + bytes(7) + blob[-32:]):
        path.write_bytes(variant)
        with pytest.raises(WcodecError):
            load_all(path)


# ---------------------------------------------------------------------------
# (b) bit flips
# ---------------------------------------------------------------------------

def _must_decode_exactly(pos: int, padding) -> bool:
    """Bytes whose damage is harmless: padding, and the minor version number."""
    return any(a <= pos < b for a, b in padding) or pos in (10, 11)


@pytest.mark.parametrize("recipe", BUILTIN_RECIPES)
def test_random_bit_flips(recipe, good_files, tmp_path):
    blob, expected, padding, _ = good_files[recipe]
    rng = np.random.default_rng(sum(map(ord, recipe)))
    path = tmp_path / "f.wcodec"
    positions = list(rng.integers(0, len(blob), 300))
    # make sure some flips land in padding
    positions += [a for a, _ in padding[:3]] + [b - 1 for _, b in padding[-3:]]
    seen = {"error": 0, "exact": 0}
    for pos in positions:
        bit = int(rng.integers(0, 8))
        damaged = bytearray(blob)
        damaged[pos] ^= 1 << bit
        path.write_bytes(bytes(damaged))
        result = outcome(path, expected)
        seen[result] += 1
        want = "exact" if _must_decode_exactly(pos, padding) else "error"
        assert result == want, f"flip of bit {bit} at byte {pos}: {result}"
        if any(a <= pos < b for a, b in padding):
            with wcodec.open(path) as r:
                assert any("padding" in p for p in r.verify())
    assert seen["error"] and seen["exact"]


def test_every_bit_of_header_and_trailer(good_files, tmp_path):
    blob, expected, padding, _ = good_files["lossless"]
    path = tmp_path / "f.wcodec"
    for pos in list(range(64)) + list(range(len(blob) - 32, len(blob))):
        for bit in range(8):
            damaged = bytearray(blob)
            damaged[pos] ^= 1 << bit
            path.write_bytes(bytes(damaged))
            want = "exact" if pos in (10, 11) else "error"
            assert outcome(path, expected) == want, (pos, bit)


def test_flips_in_streams_are_checksum_errors(good_files, tmp_path):
    blob, expected, _, toc_offset = good_files["lossless"]
    path = tmp_path / "f.wcodec"
    toc = toc_of(blob)[1]
    for rec in toc["tensors"]:
        for s in rec["streams"]:
            for pos in {s["offset"], s["offset"] + s["length"] // 2,
                        s["offset"] + s["length"] - 1} if s["length"] else ():
                damaged = bytearray(blob)
                damaged[pos] ^= 0x80
                path.write_bytes(bytes(damaged))
                with wcodec.open(path) as r:  # the TOC is fine: it opens
                    others = [n for n in r.keys() if n != rec["name"]]
                    for other in others:
                        assert bits_equal(r.get_tensor(other), expected[other])
                    with pytest.raises(ChecksumError, match="checksum"):
                        r.get_tensor(rec["name"])
    # and a flip in the TOC is caught when opening
    damaged = bytearray(blob)
    damaged[toc_offset + 5] ^= 0x01
    path.write_bytes(bytes(damaged))
    with pytest.raises(ChecksumError):
        wcodec.open(path)


# ---------------------------------------------------------------------------
# (c) hostile tables of contents (valid trailer and crc)
# ---------------------------------------------------------------------------

def T(i):
    """Accessor helpers for mutations: tensor record i."""
    return lambda toc: toc["tensors"][i]


def S(i, j=0):
    return lambda toc: toc["tensors"][i]["streams"][j]


def setitem(get, key, value):
    def mutate(toc):
        get(toc)[key] = value
    return mutate


def delitem(get, key):
    def mutate(toc):
        del get(toc)[key]
    return mutate


def replace_toc(new):
    def mutate(toc):
        toc.clear()
        toc["__replace__"] = new
    return mutate


ROOT = lambda toc: toc  # noqa: E731


def _swap_streams(toc, i, j):
    """Give tensors i and j each other's (valid, checksummed) data streams."""
    si, sj = toc["tensors"][i]["streams"][0], toc["tensors"][j]["streams"][0]
    for key in ("offset", "length", "crc32"):
        si[key], sj[key] = sj[key], si[key]

# (case id, mutation, expected error, when: "open" | "load")
HOSTILE = [
    # top level
    ("toc-is-list", replace_toc([]), FormatError, "open"),
    ("toc-is-string", replace_toc("x"), FormatError, "open"),
    ("toc-is-null", replace_toc(None), FormatError, "open"),
    ("no-tensors", delitem(ROOT, "tensors"), FormatError, "open"),
    ("no-metadata", delitem(ROOT, "metadata"), FormatError, "open"),
    ("extra-top-key", setitem(ROOT, "version", 2), FormatError, "open"),
    ("metadata-list", setitem(ROOT, "metadata", []), FormatError, "open"),
    ("metadata-int-value", setitem(ROOT, "metadata", {"k": 1}), FormatError, "open"),
    ("metadata-null-value", setitem(ROOT, "metadata", {"k": None}), FormatError, "open"),
    ("metadata-nested", setitem(ROOT, "metadata", {"k": {"a": "b"}}), FormatError, "open"),
    ("tensors-object", setitem(ROOT, "tensors", {"a": {}}), FormatError, "open"),
    ("tensor-record-int", setitem(ROOT, "tensors", [1]), FormatError, "open"),
    ("tensor-record-null", setitem(ROOT, "tensors", [None]), FormatError, "open"),
    # tensor records
    ("unknown-field", setitem(T(0), "extra", 1), FormatError, "open"),
    ("no-name", delitem(T(0), "name"), FormatError, "open"),
    ("empty-name", setitem(T(0), "name", ""), FormatError, "open"),
    ("int-name", setitem(T(0), "name", 5), FormatError, "open"),
    ("list-name", setitem(T(0), "name", ["a"]), FormatError, "open"),
    ("huge-name", setitem(T(0), "name", "é" * 40000), FormatError, "open"),
    ("duplicate-name", setitem(T(1), "name", "a"), FormatError, "open"),
    ("no-dtype", delitem(T(0), "dtype"), FormatError, "open"),
    ("unknown-dtype", setitem(T(0), "dtype", "float8"), FormatError, "open"),
    ("dtype-case", setitem(T(0), "dtype", "Float32"), FormatError, "open"),
    ("int-dtype", setitem(T(0), "dtype", 4), FormatError, "open"),
    ("list-dtype", setitem(T(0), "dtype", ["float32"]), FormatError, "open"),
    ("object-dtype", setitem(T(0), "dtype", {"a": 1}), FormatError, "open"),
    # shapes
    ("no-shape", delitem(T(0), "shape"), FormatError, "open"),
    ("shape-int", setitem(T(0), "shape", 3), FormatError, "open"),
    ("shape-object", setitem(T(0), "shape", {"0": 3}), FormatError, "open"),
    ("shape-null", setitem(T(0), "shape", None), FormatError, "open"),
    ("shape-negative", setitem(T(0), "shape", [-3]), FormatError, "open"),
    ("shape-negative-pair", setitem(T(0), "shape", [-1, -3]), FormatError, "open"),
    ("shape-float", setitem(T(0), "shape", [3.0]), FormatError, "open"),
    ("shape-bool", setitem(T(0), "shape", [True, True, True]), FormatError, "open"),
    ("shape-string", setitem(T(0), "shape", ["3"]), FormatError, "open"),
    ("shape-null-dim", setitem(T(0), "shape", [None]), FormatError, "open"),
    ("shape-nested", setitem(T(0), "shape", [[3]]), FormatError, "open"),
    ("shape-33-dims", setitem(T(0), "shape", [1] * 33), FormatError, "open"),
    ("shape-dim-too-big", setitem(T(0), "shape", [2**62 + 1]), FormatError, "open"),
    ("shape-dim-2^64", setitem(T(0), "shape", [2**64]), FormatError, "open"),
    ("shape-huge", setitem(T(0), "shape", [2**31, 2**31]), LimitExceeded, "open"),
    ("shape-huge-2^62", setitem(T(0), "shape", [2**62]), LimitExceeded, "open"),
    ("shape-huge-32-dims", setitem(T(0), "shape", [2**62] * 32), LimitExceeded, "open"),
    ("shape-huge-bytegroup", setitem(T(2), "shape", [2**40]), LimitExceeded, "open"),
    ("shape-too-big-for-data", setitem(T(0), "shape", [4]), FormatError, "load"),
    ("shape-too-small-for-data", setitem(T(0), "shape", [2]), FormatError, "load"),
    ("shape-0d-for-3", setitem(T(0), "shape", []), FormatError, "load"),
    ("shape-empty-for-data", setitem(T(0), "shape", [0]), FormatError, "load"),
    ("shape-big-within-limit", setitem(T(2), "shape", [2**30]), WcodecError, "load"),
    ("shape-zstd-big-within-limit", setitem(T(1), "shape", [2**30]), FormatError, "load"),
    ("dtype-wrong-size", setitem(T(0), "dtype", "float64"), FormatError, "load"),
    ("dtype-wrong-bytegroup", setitem(T(2), "dtype", "int32"), FormatError, "load"),
    ("dtype-float-bytegroup", setitem(T(2), "dtype", "float16"), FormatError, "load"),
    # pipelines
    ("no-pipeline", delitem(T(0), "pipeline"), FormatError, "open"),
    ("pipeline-object", setitem(T(0), "pipeline", {"id": "raw"}), FormatError, "open"),
    ("pipeline-empty", setitem(T(0), "pipeline", []), FormatError, "open"),
    ("pipeline-17", setitem(T(0), "pipeline", [{"id": "raw"}] + [{"id": "zstd"}] * 16),
     FormatError, "open"),
    ("pipeline-string-entry", setitem(T(0), "pipeline", ["raw"]), FormatError, "open"),
    ("pipeline-no-id", setitem(T(0), "pipeline", [{"level": 3}]), FormatError, "open"),
    ("pipeline-int-id", setitem(T(0), "pipeline", [{"id": 5}]), FormatError, "open"),
    ("unknown-codec", setitem(T(0), "pipeline", [{"id": "quantum_v9"}]), UnknownCodec, "load"),
    ("unknown-byte-stage", setitem(T(1), "pipeline", [{"id": "raw"}, {"id": "brotli"}]),
     UnknownCodec, "load"),
    ("option-wrong-type", setitem(T(1), "pipeline", [{"id": "raw"}, {"id": "zstd", "level": "3"}]),
     FormatError, "load"),
    ("option-bool", setitem(T(2), "pipeline", [{"id": "bytegroup", "level": True}]),
     FormatError, "load"),
    ("option-out-of-range", setitem(T(2), "pipeline", [{"id": "bytegroup", "level": 0}]),
     FormatError, "load"),
    ("option-unknown", setitem(T(0), "pipeline", [{"id": "raw", "endian": "big"}]),
     FormatError, "load"),
    ("option-nested", setitem(T(2), "pipeline", [{"id": "bytegroup", "level": {"a": 1}}]),
     FormatError, "load"),
    ("order-zstd-first", setitem(T(1), "pipeline", [{"id": "zstd"}, {"id": "raw"}]),
     FormatError, "load"),
    ("two-coders", setitem(T(0), "pipeline", [{"id": "raw"}, {"id": "raw"}]), FormatError, "load"),
    ("no-coder", setitem(T(1), "pipeline", [{"id": "zstd"}]), FormatError, "load"),
    ("cast-on-int", setitem(T(2), "pipeline", [{"id": "cast", "dtype": "float16"},
                                               {"id": "bytegroup"}]), FormatError, "load"),
    ("cast-missing-dtype", setitem(T(0), "pipeline", [{"id": "cast"}, {"id": "raw"}]),
     FormatError, "load"),
    ("cast-to-int", setitem(T(0), "pipeline", [{"id": "cast", "dtype": "int16"}, {"id": "raw"}]),
     FormatError, "load"),
    ("cast-size-mismatch", setitem(T(0), "pipeline", [{"id": "cast", "dtype": "float16"},
                                                      {"id": "raw"}]), FormatError, "load"),
    ("wrong-coder-bytegroup", setitem(T(0), "pipeline", [{"id": "bytegroup"}]), FormatError, "load"),
    ("wrong-coder-raw-for-bytegroup", setitem(T(2), "pipeline", [{"id": "raw"}]),
     FormatError, "load"),
    ("missing-zstd-stage", setitem(T(1), "pipeline", [{"id": "raw"}]), FormatError, "load"),
    ("extra-zstd-stage", setitem(T(0), "pipeline", [{"id": "raw"}, {"id": "zstd"}]),
     FormatError, "load"),
    # streams
    ("no-streams", delitem(T(0), "streams"), FormatError, "open"),
    ("streams-empty", setitem(T(0), "streams", []), FormatError, "open"),
    ("streams-object", setitem(T(0), "streams", {"data": 64}), FormatError, "open"),
    ("streams-65", lambda toc: toc["tensors"][0].__setitem__(
        "streams", [dict(toc["tensors"][0]["streams"][0], name="data")] +
        [{"name": f"0.s{i}", "offset": END, "length": 0, "crc32": 0} for i in range(64)]),
     FormatError, "open"),
    ("stream-record-int", setitem(T(0), "streams", [5]), FormatError, "open"),
    ("stream-missing-key", delitem(S(0), "crc32"), FormatError, "open"),
    ("stream-extra-key", setitem(S(0), "codec", "raw"), FormatError, "open"),
    ("stream-name-upper", setitem(S(0), "name", "DATA"), FormatError, "open"),
    ("stream-name-path", setitem(S(0), "name", "../data"), FormatError, "open"),
    ("stream-name-bad-side", setitem(S(0), "name", "0.Aux"), FormatError, "open"),
    ("stream-name-stage-100", setitem(S(0), "name", "100.aux"), FormatError, "open"),
    ("stream-name-int", setitem(S(0), "name", 0), FormatError, "open"),
    ("stream-name-newline", setitem(S(0), "name", "data\n"), FormatError, "open"),
    ("no-data-stream", setitem(S(0), "name", "0.aux"), FormatError, "open"),
    ("duplicate-stream", lambda toc: toc["tensors"][0]["streams"].append(
        dict(toc["tensors"][0]["streams"][0])), FormatError, "open"),
    ("unexpected-side-stream", lambda toc: toc["tensors"][0]["streams"].append(
        {"name": "0.aux", "offset": END, "length": 0, "crc32": 0}), FormatError, "load"),
    ("offset-zero", setitem(S(0), "offset", 0), FormatError, "open"),
    ("offset-in-header", setitem(S(0), "offset", 32), FormatError, "open"),
    ("offset-misaligned", setitem(S(0), "offset", 65), FormatError, "open"),
    ("offset-misaligned-2", setitem(S(1), "offset", 130), FormatError, "open"),
    ("offset-past-toc", setitem(S(0), "offset", TOC_OFFSET + 64), FormatError, "open"),
    ("offset-past-file", setitem(S(0), "offset", 1 << 40), FormatError, "open"),
    ("offset-2^64", setitem(S(0), "offset", 1 << 64), FormatError, "open"),
    ("offset-negative", setitem(S(0), "offset", -64), FormatError, "open"),
    ("offset-float", setitem(S(0), "offset", 64.0), FormatError, "open"),
    ("offset-bool", setitem(S(0), "offset", True), FormatError, "open"),
    ("offset-string", setitem(S(0), "offset", "64"), FormatError, "open"),
    ("offset-null", setitem(S(0), "offset", None), FormatError, "open"),
    ("length-negative", setitem(S(0), "length", -1), FormatError, "open"),
    ("length-float", setitem(S(0), "length", 12.0), FormatError, "open"),
    ("length-bool", setitem(S(0), "length", True), FormatError, "open"),
    ("length-string", setitem(S(0), "length", "12"), FormatError, "open"),
    ("length-into-toc", setitem(S(2), "length", TOC_OFFSET - BASE_WHERE[2][0] + 1),
     FormatError, "open"),
    ("length-huge", setitem(S(0), "length", 1 << 62), FormatError, "open"),
    ("length-shorter", setitem(S(0), "length", 8), FormatError, "load"),  # crc or size
    ("crc-negative", setitem(S(0), "crc32", -1), FormatError, "open"),
    ("crc-2^32", setitem(S(0), "crc32", 1 << 32), FormatError, "open"),
    ("crc-bool", setitem(S(0), "crc32", False), FormatError, "open"),
    ("crc-float", setitem(S(0), "crc32", 1.0), FormatError, "open"),
    ("crc-wrong", setitem(S(0), "crc32", 12345), ChecksumError, "load"),
    ("overlap-same-offset", setitem(S(1), "offset", BASE_WHERE[0][0]), FormatError, "open"),
    ("overlap-partial", setitem(S(0), "length", BASE_WHERE[1][0] - BASE_WHERE[0][0] + 1),
     FormatError, "open"),
    ("overlap-within-tensor", lambda toc: toc["tensors"][0]["streams"].append(
        {"name": "0.aux", "offset": BASE_WHERE[0][0], "length": 4, "crc32": 0}),
     FormatError, "open"),
    ("stream-swap", lambda toc: _swap_streams(toc, 0, 2), FormatError, "load"),
    # stats
    ("stats-list", setitem(T(2), "stats", [1]), FormatError, "open"),
    ("stats-string-value", setitem(T(2), "stats", {"ratio": "1"}), FormatError, "open"),
    ("stats-bool-value", setitem(T(2), "stats", {"ratio": True}), FormatError, "open"),
    ("stats-null-value", setitem(T(2), "stats", {"ratio": None}), FormatError, "open"),
    ("stats-nested", setitem(T(2), "stats", {"ratio": {"a": 1}}), FormatError, "open"),
]


def _write_hostile(path, mutate) -> None:
    toc = base_toc()
    mutate(toc)
    if "__replace__" in toc:
        toc = toc["__replace__"]
    path.write_bytes(assemble(BASE_AREA, toc))


@pytest.mark.parametrize("case,mutate,error,when", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_toc(case, mutate, error, when, tmp_path):
    path = tmp_path / "h.wcodec"
    _write_hostile(path, mutate)
    if when == "open":
        with pytest.raises(error):
            wcodec.open(path)
    else:
        with wcodec.open(path) as r:  # the file opens; the damaged tensor fails
            bad = [n for n in r.keys() if n not in BASE_EXPECTED or
                   not _decodes_to(r, n, BASE_EXPECTED[n])]
            assert bad, f"{case}: every tensor still decoded"
            for name in bad:
                with pytest.raises(error):
                    r.get_tensor(name)
    with pytest.raises(WcodecError):
        load_all(path)


def _decodes_to(reader, name, want) -> bool:
    try:
        return bits_equal(reader.get_tensor(name), want)
    except WcodecError:
        return False


def test_unknown_codec_fails_only_its_tensor(tmp_path):
    path = tmp_path / "u.wcodec"
    _write_hostile(path, setitem(T(1), "pipeline", [{"id": "raw"}, {"id": "zstd_next_gen"}]))
    with wcodec.open(path) as r:
        assert r.keys() == ["a", "b", "c"]
        assert r.info("b").pipeline_text == "raw+zstd_next_gen"
        assert bits_equal(r.get_tensor("a"), A) and bits_equal(r.get_tensor("c"), C)
        with pytest.raises(UnknownCodec, match="zstd_next_gen") as info:
            r.get_tensor("b")
        assert "'b'" in str(info.value)
        problems = r.verify()
        assert len(problems) == 1 and "zstd_next_gen" in problems[0]


def test_null_option_means_default(tmp_path):
    path = tmp_path / "n.wcodec"
    _write_hostile(path, setitem(T(1), "pipeline", [{"id": "raw"}, {"id": "zstd", "level": None}]))
    assert same_arrays(load_all(path), BASE_EXPECTED)


def test_streams_in_any_order_and_zero_length_streams(tmp_path):
    # streams laid out in reverse order, plus an empty tensor whose empty stream
    # sits at the TOC offset: all valid (FORMAT.md 2.2, 3.3)
    area, where = stream_area([BASE_BLOBS[2], BASE_BLOBS[1], BASE_BLOBS[0]])
    toc = base_toc()
    for rec, (off, length, crc) in zip(toc["tensors"], reversed(where)):
        rec["streams"][0].update(offset=off, length=length, crc32=crc)
    toc_offset = fmt.HEADER.size + len(area)
    toc["tensors"].append({"name": "empty", "dtype": "float32", "shape": [0, 7],
                           "pipeline": [{"id": "raw"}],
                           "streams": [{"name": "data", "offset": toc_offset - toc_offset % 64,
                                        "length": 0, "crc32": 0}]})
    path = tmp_path / "o.wcodec"
    path.write_bytes(assemble(area, toc))
    got = load_all(path)
    assert same_arrays({k: got[k] for k in "abc"}, BASE_EXPECTED)
    assert got["empty"].shape == (0, 7)


# Regression (bug found by this suite, now fixed): reader only limits the decoded size, which is
# 0 when a dimension is 0, so shape [0, 2**62] passes and numpy then raises ValueError ('array
# is too big') in reshape/np.empty. Fix: in _parse_tensor also bound the product of the non-zero
# dimensions times itemsize (e.g. by max_tensor_bytes, or at least by 2**63-1) and raise
# LimitExceeded/FormatError
@pytest.mark.parametrize("pipeline", [[{"id": "raw"}], [{"id": "bytegroup"}],
                                      [{"id": "raw"}, {"id": "zstd"}]])
@pytest.mark.parametrize("shape", [[0, 2**62], [2**62, 2**62, 0], [0] + [2**40] * 4])
def test_zero_dim_with_huge_dims(shape, pipeline, tmp_path):
    blob = {"raw": b"", "bytegroup": _bytegroup_stream(np.zeros(0, "<i4")),
            "zstd": zstd_frame(b"")}[pipeline[-1]["id"]]
    area, [(off, length, crc)] = stream_area([blob])
    toc = {"metadata": {}, "tensors": [
        {"name": "z", "dtype": "int32", "shape": shape, "pipeline": pipeline,
         "streams": [{"name": "data", "offset": off, "length": length, "crc32": crc}]}]}
    path = tmp_path / "z.wcodec"
    path.write_bytes(assemble(area, toc))
    try:
        got = load_all(path)
    except WcodecError:
        return
    assert got["z"].size == 0 and list(got["z"].shape) == shape


# -- side streams --------------------------------------------------------------

class _SideCodec(Codec):
    """A test-only array->array identity that writes a 2-byte side stream."""

    codec_id = "test_side"
    kind = ARRAY_TO_ARRAY
    side_streams = ("aux",)

    def encode(self, value, spec, side):
        side["aux"] = b"\x01\x02"
        return value

    def decode(self, value, spec, side):
        if bytes(side["aux"]) != b"\x01\x02":
            raise FormatError("test_side: bad aux stream")
        return value


@pytest.fixture
def side_codec(monkeypatch):
    monkeypatch.setitem(codec_base._REGISTRY, _SideCodec.codec_id, _SideCodec)
    return _SideCodec


def _side_file(tmp_path) -> tuple[bytes, dict]:
    path = tmp_path / "side.wcodec"
    with Writer(path) as w:
        w.add_tensor("s", np.arange(6, dtype=np.int32), Pipeline([_SideCodec(), {"id": "raw"}]))
        w.add_tensor("t", np.arange(3, dtype=np.uint8), Pipeline([{"id": "raw"}]))
    blob = path.read_bytes()
    off, length, *_ = fmt.TRAILER.unpack_from(blob, len(blob) - 32)
    return blob[:off], json.loads(blob[off:off + length])


def test_side_stream_roundtrip(side_codec, tmp_path):
    area_and_head, toc = _side_file(tmp_path)
    assert [s["name"] for s in toc["tensors"][0]["streams"]] == ["data", "0.aux"]
    got = load_all(tmp_path / "side.wcodec")
    assert got["s"].tolist() == list(range(6))


@pytest.mark.parametrize("damage", ["missing", "renamed", "wrong-stage", "empty"])
def test_side_stream_missing(damage, side_codec, tmp_path):
    prefix, toc = _side_file(tmp_path)
    streams = toc["tensors"][0]["streams"]
    if damage == "missing":
        del streams[1]
    elif damage == "renamed":
        streams[1]["name"] = "0.other"
    elif damage == "wrong-stage":
        streams[1]["name"] = "1.aux"
    else:  # present but empty: the codec's own check
        streams[1].update(length=0, crc32=0)
    path = tmp_path / "side2.wcodec"
    path.write_bytes(assemble(prefix[64:], toc))
    with wcodec.open(path) as r:
        assert r.get_tensor("t").tolist() == [0, 1, 2]
        with pytest.raises(FormatError):
            r.get_tensor("s")


def test_side_stream_missing_without_the_codec(tmp_path, monkeypatch):
    """Once the test codec is unregistered, the same file fails with UnknownCodec."""
    monkeypatch.setitem(codec_base._REGISTRY, _SideCodec.codec_id, _SideCodec)
    _side_file(tmp_path)
    monkeypatch.delitem(codec_base._REGISTRY, _SideCodec.codec_id)
    with wcodec.open(tmp_path / "side.wcodec") as r:
        with pytest.raises(UnknownCodec, match="test_side"):
            r.get_tensor("s")
        assert r.get_tensor("t").tolist() == [0, 1, 2]


# -- JSON-level and trailer/header-level hostility ---------------------------------

TOC_TEXT = json.dumps(base_toc(), separators=(",", ":"))

RAW_TOCS = [
    ("not-json", b"{not json", FormatError),
    ("empty-toc", b"", FormatError),
    ("invalid-utf8", TOC_TEXT.encode()[:-2] + b"\xff\xfe]}", FormatError),
    ("utf8-bom", b"\xef\xbb\xbf" + TOC_TEXT.encode(), FormatError),
    ("utf16", TOC_TEXT.encode("utf-16"), FormatError),
    ("trailing-garbage", TOC_TEXT.encode() + b"xx", FormatError),
    ("two-documents", TOC_TEXT.encode() + b" {}", FormatError),
    ("nan-constant", TOC_TEXT.replace('"ratio":1.0', '"ratio":NaN').encode(), FormatError),
    ("infinity-constant", TOC_TEXT.replace('"ratio":1.0', '"ratio":-Infinity').encode(),
     FormatError),
    ("float-overflow-shape", TOC_TEXT.replace('"shape":[3]', '"shape":[1e400]').encode(),
     FormatError),
    ("exponent-int", TOC_TEXT.replace('"shape":[3]', '"shape":[3e0]').encode(), FormatError),
    ("huge-int-literal", TOC_TEXT.replace('"shape":[3]', '"shape":[' + "9" * 5000 + "]").encode(),
     FormatError),
    ("duplicate-key", TOC_TEXT.replace('"name":"a",', '"name":"a","name":"z",').encode(),
     FormatError),
    ("duplicate-top-key", TOC_TEXT.replace('{"metadata"', '{"tensors":[],"metadata"', 1).encode(),
     FormatError),
    ("deep-nesting", b"[" * 100000 + b"]" * 100000, FormatError),
    ("deep-nesting-in-metadata", TOC_TEXT.replace(
        '"metadata":{', '"metadata":{"x":' + "[" * 50000 + "]" * 50000 + ",", 1).encode(),
     FormatError),
    ("deep-nesting-unclosed", b'{"metadata":' + b"{" * 200000, FormatError),
    ("lone-surrogate-escape", TOC_TEXT.replace('"name":"a"', '"name":"\\ud800"').encode(), None),
]


@pytest.mark.parametrize("case,toc,error", RAW_TOCS, ids=[c[0] for c in RAW_TOCS])
def test_hostile_toc_text(case, toc, error, tmp_path):
    path = tmp_path / "j.wcodec"
    path.write_bytes(assemble(BASE_AREA, toc))
    if error is None:  # either rejected or readable: never a crash
        assert outcome(path, {"\ud800": A, "b": B, "c": C}) in ("error", "exact")
        return
    with pytest.raises(error):
        wcodec.open(path)


GOOD = assemble(BASE_AREA, base_toc())
TOC_LEN = len(GOOD) - TOC_OFFSET - 32

FRAMINGS = [
    ("toc-length-huge", dict(toc_length=1 << 40), LimitExceeded),
    ("toc-length-max", dict(toc_length=(1 << 64) - 1), LimitExceeded),
    ("toc-length-limit+1", dict(toc_length=fmt.MAX_TOC_BYTES + 1), LimitExceeded),
    ("toc-length-short", dict(toc_length=TOC_LEN - 1), FormatError),
    ("toc-length-long", dict(toc_length=TOC_LEN + 1), FormatError),
    ("toc-length-zero", dict(toc_length=0), FormatError),
    ("toc-offset-zero", dict(toc_offset=0), FormatError),
    ("toc-offset-in-header", dict(toc_offset=63), FormatError),
    ("toc-offset-early", dict(toc_offset=TOC_OFFSET - 1), FormatError),
    ("toc-offset-late", dict(toc_offset=TOC_OFFSET + 1), FormatError),
    ("toc-offset-huge", dict(toc_offset=(1 << 64) - 1), FormatError),
    ("toc-crc-wrong", dict(toc_crc=0), ChecksumError),
    # trailer TOC encoding (FORMAT.md 2.3): 1 = zstd, but these bytes are plain JSON
    ("trailer-toc-encoding-zstd-lie", dict(zero=1), FormatError),
    ("trailer-toc-encoding-unknown", dict(zero=3), FormatError),
    # 2 = zstd with the TOC dictionary, but these bytes are plain JSON
    ("trailer-toc-encoding-dict-lie", dict(zero=2), FormatError),
    ("trailer-magic", dict(end_magic=b"\x89WCODEX\n"), TruncatedError),
    ("header-magic", dict(head=header(magic=b"\x89PNG\r\n\x1a\n")), FormatError),
    ("major-2", dict(head=header(major=2)), UnsupportedVersion),
    ("major-0", dict(head=header(major=0)), UnsupportedVersion),
    ("major-max", dict(head=header(major=0xFFFF)), UnsupportedVersion),
    ("flags", dict(head=header(flags=1)), FormatError),
    ("flags-high", dict(head=header(flags=1 << 31)), FormatError),
    ("reserved-first", dict(head=header(reserved=b"\x01" + bytes(47))), FormatError),
    ("reserved-last", dict(head=header(reserved=bytes(47) + b"\x80")), FormatError),
]


@pytest.mark.parametrize("case,kw,error", FRAMINGS, ids=[c[0] for c in FRAMINGS])
def test_hostile_framing(case, kw, error, tmp_path):
    path = tmp_path / "f.wcodec"
    path.write_bytes(assemble(BASE_AREA, base_toc(), **kw))
    with pytest.raises(error):
        wcodec.open(path)
    with pytest.raises(WcodecError):
        load_all(path)


@pytest.mark.parametrize("minor", [1, 9, 0xFFFF])
def test_any_minor_version_is_read(minor, tmp_path):
    path = tmp_path / "m.wcodec"
    path.write_bytes(assemble(BASE_AREA, base_toc(), head=header(minor=minor)))
    with wcodec.open(path) as r:
        assert r.version == (1, minor)
    assert same_arrays(load_all(path), BASE_EXPECTED)


def test_format_1_1_layout_is_read(tmp_path):
    """1.1 put every stream at a multiple of 64; such files stay valid under 1.2."""
    area, where = stream_area(BASE_BLOBS, align=64)
    toc = base_toc()
    for rec, (offset, length, crc) in zip(toc["tensors"], where):
        assert offset % 64 == 0
        rec["streams"][0].update(offset=offset, length=length, crc32=crc)
    path = tmp_path / "v11.wcodec"
    path.write_bytes(assemble(area, toc, head=header(minor=1)))
    assert same_arrays(load_all(path), BASE_EXPECTED)
    with wcodec.open(path) as r:
        assert r.verify() == []


@pytest.mark.parametrize("size", [0, 1, 8, 63, 64, 95])
def test_too_short_files(size, tmp_path):
    path = tmp_path / "s.wcodec"
    path.write_bytes(GOOD[:size])
    with pytest.raises(TruncatedError):
        wcodec.open(path)


def test_not_a_wcodec_file(tmp_path):
    path = tmp_path / "n.wcodec"
    path.write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(FormatError):
        wcodec.open(path)
    path.write_bytes(GOOD[:64] + bytes(200))
    with pytest.raises(TruncatedError):
        wcodec.open(path)


def test_huge_shape_is_refused_before_allocating(tmp_path):
    path = tmp_path / "h.wcodec"
    _write_hostile(path, setitem(T(0), "shape", [2**20, 2**20, 2**20]))
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded):
            wcodec.open(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_max_tensor_bytes_applies_to_hostile_shapes(tmp_path):
    path = tmp_path / "h.wcodec"
    _write_hostile(path, setitem(T(2), "shape", [100_000]))
    with pytest.raises(LimitExceeded):
        wcodec.open(path, max_tensor_bytes=100_000)
    with wcodec.open(path, max_tensor_bytes=200_000) as r:
        with pytest.raises(FormatError):
            r.get_tensor("c")


# ---------------------------------------------------------------------------
# (d) zstd bombs
# ---------------------------------------------------------------------------

def _bomb_file(tmp_path, data: bytes, pipeline, dtype="float32", shape=(4,)) -> str:
    area, [(off, length, crc)] = stream_area([data])
    toc = {"metadata": {}, "tensors": [
        {"name": "bomb", "dtype": dtype, "shape": list(shape), "pipeline": pipeline,
         "streams": [{"name": "data", "offset": off, "length": length, "crc32": crc}]}]}
    path = tmp_path / "bomb.wcodec"
    path.write_bytes(assemble(area, toc))
    return str(path)


def _load_bounded(path, error):
    """Decode under tracemalloc: the error must come before inflating."""
    tracemalloc.start()
    try:
        with wcodec.open(path) as r:
            with pytest.raises(error) as info:
                r.get_tensor("bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak} bytes while refusing a bomb"
    return info.value


def test_rle_frame_helper_is_a_valid_zstd_frame():
    frame = rle_zstd_frame(300_000, 300_000, 7)
    assert zstandard.ZstdDecompressor().decompress(frame) == bytes([7]) * 300_000
    assert zstandard.get_frame_parameters(frame).content_size == 300_000


@pytest.mark.parametrize("declared", [2**31, 2**40, 2**62])
def test_zstd_bomb_raw_plus_zstd(declared, tmp_path):
    # 2 GiB of zeros in 64 KiB of RLE blocks (or just a header declaring more)
    frame = rle_zstd_frame(declared, min(declared, 2**31))
    assert len(frame) < 100_000
    path = _bomb_file(tmp_path, frame, [{"id": "raw"}, {"id": "zstd"}])
    exc = _load_bounded(path, LimitExceeded)
    assert str(declared) in str(exc)


def test_zstd_bomb_outer_stage_of_bytegroup(tmp_path):
    frame = rle_zstd_frame(2**31, 2**31)
    path = _bomb_file(tmp_path, frame, [{"id": "bytegroup"}, {"id": "zstd"}], "int16", (8,))
    _load_bounded(path, LimitExceeded)


def test_zstd_bomb_in_a_bytegroup_plane(tmp_path):
    frame = rle_zstd_frame(2**31, 2**31)
    stream = bytes([1, 0]) + struct.pack("<BQ", 1, len(frame)) + frame
    path = _bomb_file(tmp_path, stream, [{"id": "bytegroup"}], "uint8", (16,))
    _load_bounded(path, WcodecError)


def test_zstd_frame_lying_about_its_size(tmp_path):
    # declares 16 bytes (within every limit) but holds 256 MiB
    frame = rle_zstd_frame(16, 1 << 28)
    path = _bomb_file(tmp_path, frame, [{"id": "raw"}, {"id": "zstd"}], "uint8", (16,))
    _load_bounded(path, FormatError)
    stream = bytes([1, 0]) + struct.pack("<BQ", 1, len(frame)) + frame
    path = _bomb_file(tmp_path, stream, [{"id": "bytegroup"}], "uint8", (16,))
    _load_bounded(path, FormatError)


def test_zstd_frame_without_content_size(tmp_path):
    frame = rle_zstd_frame(None, 16)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(frame) == bytes(16)
    path = _bomb_file(tmp_path, frame, [{"id": "raw"}, {"id": "zstd"}], "uint8", (16,))
    _load_bounded(path, FormatError)


@pytest.mark.parametrize("damage", ["trailing-bytes", "two-frames", "truncated", "empty",
                                    "skippable-frame", "bad-magic"])
def test_zstd_stream_damage_with_valid_crc(damage, tmp_path):
    good = zstd_frame(bytes(range(16)))
    data = {"trailing-bytes": good + b"\x00",
            "two-frames": good + good,
            "truncated": good[:-2],
            "empty": b"",
            "skippable-frame": struct.pack("<II", 0x184D2A50, 4) + b"abcd" + good,
            "bad-magic": b"\x00" + good[1:]}[damage]
    path = _bomb_file(tmp_path, data, [{"id": "raw"}, {"id": "zstd"}], "uint8", (16,))
    with wcodec.open(path) as r:
        with pytest.raises(FormatError):
            r.get_tensor("bomb")


# ---------------------------------------------------------------------------
# codec-level fuzzing: stream bytes no checksum protects (a hostile writer
# computes valid crcs), straight into Pipeline.decode
# ---------------------------------------------------------------------------

FUZZ_PIPELINES = [
    [{"id": "raw"}],
    [{"id": "raw"}, {"id": "zstd"}],
    [{"id": "bytegroup"}],
    [{"id": "bytegroup"}, {"id": "zstd"}],
    [{"id": "cast", "dtype": "float16"}, {"id": "bytegroup"}],
    [{"id": "cast", "dtype": "bfloat16"}, {"id": "raw"}, {"id": "zstd"}],
]


def _decode_or_error(pipeline: Pipeline, data: bytes, spec: ArraySpec) -> None:
    try:
        out = pipeline.decode(memoryview(data), {}, spec)
    except WcodecError:
        return
    assert isinstance(out, np.ndarray)
    assert out.shape == spec.shape and out.dtype == np.dtype(wcodec.dtypes.get(spec.dtype).numpy)


@pytest.mark.parametrize("config", FUZZ_PIPELINES, ids=lambda c: "+".join(x["id"] for x in c))
@given(data=st.binary(max_size=300), dtype=st.sampled_from(["float32", "float16", "uint8",
                                                             "int64", "bool", "bfloat16"]),
       shape=st.sampled_from([(), (0,), (3,), (2, 5), (40,)]))
def test_random_bytes_into_decoders(config, data, dtype, shape):
    pipeline = Pipeline(config)
    spec = ArraySpec(shape, dtype)
    try:
        pipeline.specs(spec)
    except WcodecError:
        return
    _decode_or_error(pipeline, data, spec)


@pytest.mark.parametrize("config", FUZZ_PIPELINES, ids=lambda c: "+".join(x["id"] for x in c))
@given(case=arrays(dtype=st.sampled_from(["float32", "float64", "int16", "uint8", "bool"]),
                   allow_large=False),
       edits=st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "set"]),
                                st.integers(0, 10_000), st.integers(0, 255)),
                      min_size=1, max_size=3))
def test_mutated_encodings_into_decoders(config, case, edits):
    array, dtype = case
    spec = ArraySpec(array.shape, dtype)
    pipeline = Pipeline(config)
    try:
        pipeline.specs(spec)
    except WcodecError:
        return
    data = bytearray(encode_parts(pipeline, array, spec)[0])
    for op, pos, value in edits:
        pos = pos % (len(data) + 1)
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << (value % 8)
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = bytes([value])
        elif op == "set" and pos < len(data):
            data[pos] = value
    _decode_or_error(pipeline, bytes(data), spec)


@pytest.mark.parametrize("stream", [
    bytes([4, 1]),                                                 # header cut short
    bytes([4, 1]) + struct.pack("<BQ", 0, 3) * 4 + bytes(11),      # planes short by one byte
    bytes([4, 1]) + struct.pack("<BQ", 0, 3) * 4 + bytes(13),      # trailing byte
    bytes([4, 1]) + struct.pack("<BQ", 2, 3) * 4 + bytes(12),      # unknown plane method
    bytes([4, 0]) + struct.pack("<BQ", 0, 3) * 4 + bytes(12),      # wrong transform for floats
    bytes([2, 1]) + struct.pack("<BQ", 0, 3) * 2 + bytes(6),       # wrong plane count
    bytes([4, 1]) + struct.pack("<BQ", 0, 2**64 - 1) * 4,          # huge plane length
    bytes([4, 1]) + struct.pack("<BQ", 1, 5) * 4 + bytes(20),      # zstd planes of garbage
    bytes([4, 1]) + struct.pack("<BQ", 0, 2) * 4 + bytes(8),       # raw planes too short
])
def test_bytegroup_crafted_streams(stream):
    spec = ArraySpec((3,), "float32")
    with pytest.raises(FormatError):
        Pipeline([{"id": "bytegroup"}]).decode(memoryview(stream), {}, spec)


# Regression (bug found by this suite, now fixed): Codec.__init__(self, **config): a codec
# config with an option named 'self' in a file's TOC raises TypeError from get_tensor instead of
# FormatError (fix: def __init__(self, /, **config) in codecs/base.py)
def test_option_named_self_in_toc(tmp_path):
    path = tmp_path / "s.wcodec"
    _write_hostile(path, setitem(T(0), "pipeline", [{"id": "raw", "self": 1}]))
    with wcodec.open(path) as r:
        with pytest.raises(FormatError):
            r.get_tensor("a")


def test_file_truncated_while_open_raises_instead_of_sigbus(tmp_path):
    """Shortening an open file in place: the next read raises TruncatedError
    rather than touching mapped pages past the new end (SIGBUS)."""
    path = tmp_path / "t.wcodec"
    rng = np.random.default_rng(0)
    wcodec.save_file({"a": rng.standard_normal(50_000).astype(np.float32),
                      "b": rng.standard_normal(50_000).astype(np.float32)}, path, recipe="raw")
    with wcodec.open(path) as f:
        np.testing.assert_array_equal(f.get_tensor("a"), f.get_tensor("a"))
        with open(path, "r+b") as g:
            g.truncate(100_000)
        with pytest.raises(TruncatedError, match="truncated .* while open"):
            f.get_tensor("b")
        problems = f.verify()
        assert problems and all("while open" in p for p in problems)


def test_reading_a_closed_file_raises(tmp_path):
    path = tmp_path / "c.wcodec"
    wcodec.save_file({"a": np.arange(10, dtype=np.float32)}, path)
    f = wcodec.open(path)
    f.close()
    with pytest.raises(InputError, match="closed"):
        f.get_tensor("a")
