"""``bitpack``: fixed-width packing of integer symbols, the baseline every
entropy coder must beat. Signed values are zigzag-mapped first (see
``intcoding``). Bytes: ``spec/codecs/bitpack.md``."""
from __future__ import annotations

from ..kernels import bitpack
from . import intcoding
from .base import ARRAY_TO_BYTES, Codec, Param, register


@register
class BitPack(Codec):
    codec_id = "bitpack"
    kind = ARRAY_TO_BYTES
    params = {"bits": Param((int,), None, lambda v: 1 <= v <= 32,
                            "1..32; omitted: the minimum width, stored in a 1-byte header")}

    def resolve(self, spec):
        intcoding.check_integer(spec, "bitpack")
        return spec

    def encode(self, value, spec, side):
        symbols = intcoding.to_symbols(value, spec)
        intcoding.symbol_stats(symbols, side.stats)
        return bitpack.encode_stream(symbols, self.bits)

    def decode(self, value, spec, side):
        return intcoding.from_symbols(bitpack.decode_stream(value, spec.size, self.bits), spec)
