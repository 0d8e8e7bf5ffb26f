"""Format 1.1: the table of contents may be stored as a zstd frame (trailer
field at offset 20, FORMAT.md 2.3)."""
import struct
import zlib

import numpy as np
import pytest
import zstandard

import wcodec
from wcodec import FormatError, LimitExceeded
from wcodec.container import format as fmt

from conftest import toc_of


def _trailer(blob: bytes):
    return fmt.TRAILER.unpack_from(blob, len(blob) - fmt.TRAILER.size)


def test_large_toc_is_compressed_and_reads_back(tmp_path):
    tensors = {f"layer{i}.weight": np.full((3, 4), i, np.float32) for i in range(40)}
    path = tmp_path / "many.wcodec"
    wcodec.save_file(tensors, path)
    blob = path.read_bytes()
    offset, length, crc, encoding, _ = _trailer(blob)
    assert encoding == fmt.TOC_ZSTD and crc == zlib.crc32(blob[offset:offset + length])
    assert length < len(zstandard.ZstdDecompressor().decompress(blob[offset:offset + length]))
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
    path = _with_toc(tmp_path, zstandard.ZstdCompressor().compress(toc), fmt.TOC_ZSTD)
    with wcodec.open(path) as f:
        assert f.metadata() == {"k": "v"} and f.keys() == []


@pytest.mark.parametrize("stored, error", [
    # a frame claiming more than the TOC limit: refused before inflating
    (bytes.fromhex("28b52ffd") + bytes([0xC0]) + struct.pack("<Q", fmt.MAX_TOC_BYTES + 1)
     + bytes.fromhex("010000"), LimitExceeded),
    (zstandard.ZstdCompressor(write_content_size=False).compress(b"{}"), FormatError),
    (zstandard.ZstdCompressor().compress(b'{"metadata":{},"tensors":[]}') + b"x", FormatError),
    (zstandard.ZstdCompressor().compress(b"\xff\xfe not json"), FormatError),
])
def test_bad_compressed_tocs(tmp_path, stored, error):
    with pytest.raises(error):
        wcodec.open(_with_toc(tmp_path, stored, fmt.TOC_ZSTD))
