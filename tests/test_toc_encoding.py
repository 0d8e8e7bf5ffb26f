"""The table of contents may be stored as a zstd frame (format 1.1, trailer
encoding 1) or as one compressed with the format's TOC dictionary (1.3,
encoding 2; FORMAT.md 2.3)."""
import hashlib
import json
import pathlib
import re
import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest
import zstandard

import wcodec
from wcodec import FormatError, LimitExceeded
from wcodec.container import format as fmt

from conftest import spec_toc_dictionary, toc_of

SPEC = pathlib.Path(__file__).resolve().parent.parent / "spec"


def _trailer(blob: bytes):
    return fmt.TRAILER.unpack_from(blob, len(blob) - fmt.TRAILER.size)


def test_large_toc_is_compressed_and_reads_back(tmp_path):
    tensors = {f"layer{i}.weight": np.full((3, 4), i, np.float32) for i in range(40)}
    path = tmp_path / "many.wcodec"
    wcodec.save_file(tensors, path)
    blob = path.read_bytes()
    offset, length, crc, encoding, _ = _trailer(blob)
    assert encoding == fmt.TOC_ZSTD_DICT and crc == zlib.crc32(blob[offset:offset + length])
    stored = blob[offset:offset + length]
    toc = zstandard.ZstdDecompressor(dict_data=spec_toc_dictionary()).decompress(stored)
    assert length < len(zstandard.ZstdCompressor(level=19).compress(toc)) < len(toc)
    assert len(toc_of(blob)[1]["tensors"]) == 40
    got = wcodec.load_file(path)
    assert all((got[k] == v).all() for k, v in tensors.items())
    with wcodec.open(path) as f:
        assert f.verify() == []


def test_small_toc_stays_plain_json(tmp_path):
    path = tmp_path / "one.wcodec"
    wcodec.save_file({"w": np.ones(3, np.float32)}, path)
    assert _trailer(path.read_bytes())[3] == fmt.TOC_JSON


def _with_toc(tmp_path, stored: bytes, encoding: int):
    head = fmt.HEADER.pack(fmt.MAGIC, 1, 1, 0, bytes(48))
    blob = head + stored + fmt.TRAILER.pack(len(head), len(stored), zlib.crc32(stored),
                                            encoding, fmt.MAGIC)
    path = tmp_path / "t.wcodec"
    path.write_bytes(blob)
    return path


def test_hand_written_compressed_toc(tmp_path):
    toc = b'{"metadata":{"k":"v"},"tensors":[]}'
    for stored, encoding in [
            (zstandard.ZstdCompressor().compress(toc), fmt.TOC_ZSTD),
            (zstandard.ZstdCompressor(dict_data=spec_toc_dictionary()).compress(toc),
             fmt.TOC_ZSTD_DICT)]:
        with wcodec.open(_with_toc(tmp_path, stored, encoding)) as f:
            assert f.metadata() == {"k": "v"} and f.keys() == []


def test_toc_dictionary_is_the_spec_file():
    """The package's copy is byte-identical to spec/toc-dictionary.txt, whose
    size and SHA-256 FORMAT.md states."""
    spec_bytes = (SPEC / "toc-dictionary.txt").read_bytes()
    assert fmt.TOC_DICTIONARY == spec_bytes
    page = (SPEC / "FORMAT.md").read_text(encoding="utf-8")
    assert hashlib.sha256(spec_bytes).hexdigest() in page
    assert re.search(rf"\b{len(spec_bytes):,}\b".replace(",", "[ ,]?"), page)


def test_dictionary_frame_needs_the_dictionary(tmp_path):
    """A frame that refers back into the dictionary is garbage without it: a
    reader that ignores encoding 2's dictionary fails, and one given another
    dictionary cannot read it either."""
    toc = b'{"metadata":{},"tensors":[{"name":"fc1.weight","dtype":"float32","shape":[3],' \
          b'"pipeline":[{"id":"raw"}],"streams":[{"name":"data","offset":64,"length":0,' \
          b'"crc32":0}]}]}'
    stored = zstandard.ZstdCompressor(level=19, dict_data=spec_toc_dictionary()).compress(toc)
    assert len(stored) < len(zstandard.ZstdCompressor(level=19).compress(toc))
    with pytest.raises(FormatError):
        wcodec.open(_with_toc(tmp_path, stored, fmt.TOC_ZSTD))


@pytest.mark.parametrize("stored, error", [
    # a frame claiming more than the TOC limit: refused before inflating
    (bytes.fromhex("28b52ffd") + bytes([0xC0]) + struct.pack("<Q", fmt.MAX_TOC_BYTES + 1)
     + bytes.fromhex("010000"), LimitExceeded),
    (zstandard.ZstdCompressor(write_content_size=False).compress(b"{}"), FormatError),
    (zstandard.ZstdCompressor().compress(b'{"metadata":{},"tensors":[]}') + b"x", FormatError),
    (zstandard.ZstdCompressor().compress(b"\xff\xfe not json"), FormatError),
])
@pytest.mark.parametrize("encoding", [fmt.TOC_ZSTD, fmt.TOC_ZSTD_DICT])
def test_bad_compressed_tocs(tmp_path, stored, error, encoding):
    with pytest.raises(error):
        wcodec.open(_with_toc(tmp_path, stored, encoding))


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command-line tool")
def test_reference_zstd_tool_reads_a_dictionary_toc(tmp_path):
    """Differential check against the reference zstd implementation: its CLI,
    given spec/toc-dictionary.txt (FORMAT.md 2.4), inflates our encoding-2 TOC."""
    path = tmp_path / "many.wcodec"
    wcodec.save_file({f"layer{i}.weight": np.full((3, 4), i, np.float32) for i in range(40)}, path)
    blob = path.read_bytes()
    offset, length, _, encoding, _ = _trailer(blob)
    assert encoding == fmt.TOC_ZSTD_DICT
    frame = tmp_path / "toc.zst"
    frame.write_bytes(blob[offset:offset + length])
    out = subprocess.run(["zstd", "-q", "-d", "-c", "-D", str(SPEC / "toc-dictionary.txt"),
                          str(frame)], capture_output=True, check=True).stdout
    assert json.loads(out) == toc_of(blob)[1]
