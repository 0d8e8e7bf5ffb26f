"""``huffman``: canonical, length-limited Huffman coding of integer symbols in
many independent lanes decoded in lockstep (``wcodec.kernels.huffman``).
Signed values are zigzag-mapped; symbols >= 4095 are escaped (see
``intcoding``). Bytes: ``spec/codecs/huffman.md``."""
from __future__ import annotations

from . import intcoding
from .base import register


@register
class Huffman(intcoding.IntegerCoder):
    codec_id = "huffman"

    def encode(self, value, spec, side):
        symbols = intcoding.to_symbols(value, spec)
        intcoding.symbol_stats(symbols, side.stats)
        return intcoding.encode_symbols(symbols)

    def decode(self, value, spec, side):
        return intcoding.from_symbols(intcoding.decode_symbols(value, spec.size), spec)
