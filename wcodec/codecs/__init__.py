"""Codec registry: importing this package registers every built-in codec."""
from . import (auto, bitpack, bloomier, bytegroup, cast, cluster, huffman, prune,  # noqa: F401
               linerice, quantize, raw, sparse, zerorun, zstd)
from .base import (ARRAY_TO_ARRAY, ARRAY_TO_BYTES, BYTES_TO_BYTES, ArraySpec, Codec, codec_class,
                   codec_ids, get_codec, register)

__all__ = ["ARRAY_TO_ARRAY", "ARRAY_TO_BYTES", "BYTES_TO_BYTES", "ArraySpec", "Codec",
           "codec_class", "codec_ids", "get_codec", "register"]
