"""Byte-level constants of the .wcodec container (see spec/FORMAT.md)."""
from __future__ import annotations

import os
import re
import struct

MAGIC = b"\x89WCODEC\n"
VERSION_MAJOR = 1
# 1.1: the TOC may be zstd-compressed; 1.2: streams 8-byte aligned; 1.3: TOC zstd with
# the format's dictionary
VERSION_MINOR = 3
ALIGN = 8             # every stream offset is a multiple of this (spec §2.2)
RAW_ALIGN = 64        # the writer puts large `raw` data streams on a cache-line boundary
RAW_ALIGN_FROM = 4096  # ... when they are at least this long

# header: magic, major, minor, flags, 48 reserved zero bytes -> 64 bytes
HEADER = struct.Struct("<8sHHI48s")
# trailer: toc offset, toc length, toc crc32, toc encoding, magic -> 32 bytes
TRAILER = struct.Struct("<QQII8s")
assert HEADER.size == 64 and TRAILER.size == 32

# How the table of contents is stored (trailer field at offset 20)
TOC_JSON = 0      # UTF-8 JSON as is
TOC_ZSTD = 1      # one zstd frame (content size recorded) holding the UTF-8 JSON
TOC_ZSTD_DICT = 2  # the same, compressed with TOC_DICTIONARY (raw-content dictionary)
TOC_ENCODINGS = (TOC_JSON, TOC_ZSTD, TOC_ZSTD_DICT)
TOC_COMPRESS_FROM = 1024  # writers compress TOCs of at least this many bytes if it helps

# Hard limits a reader enforces before allocating anything.
MAX_TOC_BYTES = 256 << 20
MAX_TENSORS = 1 << 20
MAX_NDIM = 32
MAX_NAME_BYTES = 1 << 16
MAX_STREAMS = 64
MAX_METADATA_ITEMS = 1 << 16
DEFAULT_MAX_TENSOR_BYTES = 1 << 34  # 16 GiB decoded per tensor; readers may raise it

# The TOC dictionary: fixed bytes (spec/toc-dictionary.txt; a copy ships in the package)
# that prime zstd with the TOC's usual keys, codec configs and tensor names. Changing a
# single byte would break every file written with encoding 2: a new dictionary needs a
# new encoding number.
with open(os.path.join(os.path.dirname(__file__), "toc-dictionary.txt"), "rb") as _f:
    TOC_DICTIONARY = _f.read()

STREAM_NAME = re.compile(r"^(data|[0-9]{1,2}\.[a-z0-9_]{1,32})$")


def align_up(n: int, align: int = ALIGN) -> int:
    return (n + align - 1) // align * align
