"""``sparse``: the Deep Compression relative-index format. Nonzero values are
stored with the gap to the previous stored entry in ``index_bits`` bits (filler
zero entries when a gap overflows); gaps and values are then Huffman-coded.

Stream: u8 index_bits, u64 number of entries, u64 byte length of the gap
part, the gap symbol stream, the value symbol stream (``intcoding`` format).
Bytes: ``spec/codecs/sparse.md``."""
from __future__ import annotations

import struct

from ..errors import FormatError
from ..kernels import sparse
from . import intcoding
from .base import Param, as_bytes, register

_HEAD = struct.Struct("<BQQ")


@register
class Sparse(intcoding.IntegerCoder):
    codec_id = "sparse"
    params = {"index_bits": Param((int,), None, lambda v: 1 <= v <= 32,
                                  "1..32; omitted: chosen per tensor to minimise size")}


    def encode(self, value, spec, side):
        symbols = intcoding.to_symbols(value, spec)
        bits = self.index_bits or sparse.best_index_bits(symbols)
        gaps, values = sparse.to_relative(symbols, bits)
        intcoding.symbol_stats(symbols, side.stats, coded=gaps, coded2=values)
        gap_part = intcoding.encode_symbols(gaps)
        return _HEAD.pack(bits, values.size, len(gap_part)) + gap_part + \
            intcoding.encode_symbols(values)

    def decode(self, value, spec, side):
        buf = as_bytes(value)
        if len(buf) < _HEAD.size:
            raise FormatError("sparse: stream shorter than its header")
        bits, entries, gap_len = _HEAD.unpack_from(buf, 0)
        if not 1 <= bits <= 32 or entries > spec.size or gap_len > len(buf) - _HEAD.size:
            raise FormatError("sparse: header does not fit the tensor or the stream")
        gaps = intcoding.decode_symbols(buf[_HEAD.size:_HEAD.size + gap_len], entries)
        values = intcoding.decode_symbols(buf[_HEAD.size + gap_len:], entries)
        return intcoding.from_symbols(sparse.from_relative(gaps, values, spec.size, bits), spec)
