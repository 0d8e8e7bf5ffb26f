"""``bitpack``: fixed-width packing of integer symbols, the baseline every
entropy coder must beat. Signed values are zigzag-mapped first (see
``intcoding``). Bytes: ``spec/codecs/bitpack.md``."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .. import dtypes
from ..errors import ConfigError, FormatError, TruncatedError
from ..kernels import bitpack
from . import intcoding
from .base import ArraySpec, Param, as_bytes, register


@lru_cache(maxsize=None)
def _byte_table(bits: int, dtype: str) -> np.ndarray:
    """For widths 1/2/4 and one-byte dtypes: the decoded values of the 8/bits
    symbols in each possible byte, as one wide word per byte (a single gather
    then unpacks and un-zigzags a whole stream)."""
    per = 8 // bits
    codes = np.arange(256, dtype=np.uint8)
    symbols = np.stack([(codes >> (bits * i)) & ((1 << bits) - 1) for i in range(per)], axis=1)
    symbols = symbols.reshape(-1)
    if dtype == "int8":
        symbols = intcoding.from_symbols(symbols, ArraySpec(symbols.shape, dtype))
    return np.ascontiguousarray(symbols).view(f"<u{per}").reshape(256)


@lru_cache(maxsize=None)
def _pair_table(bits: int, dtype: str) -> np.ndarray:
    """``_byte_table`` for pairs of bytes (a little-endian uint16 index): half
    as many gathers, which is what the decode time is made of (widths 2 and 4)."""
    per = 8 // bits
    single = _byte_table(bits, dtype).view(np.uint8).reshape(256, per)
    pairs = np.concatenate([np.tile(single, (256, 1)), np.repeat(single, 256, axis=0)], axis=1)
    return np.ascontiguousarray(pairs).view(f"<u{2 * per}").reshape(65536)


@register
class BitPack(intcoding.IntegerCoder):
    codec_id = "bitpack"
    params = {"bits": Param((int,), None, lambda v: 1 <= v <= 32,
                            "1..32; omitted: the minimum width, stored in a 1-byte header")}


    def encode(self, value, spec, side):
        # a writer refuses widths past the dtype (files would exceed the size bound);
        # a reader accepts them, as the spec does, as long as every symbol fits
        if self.bits is not None and self.bits > 8 * dtypes.get(spec.dtype).itemsize:
            raise ConfigError(f"bitpack: {self.bits} bits is wider than a {spec.dtype} value")
        symbols = intcoding.to_symbols(value, spec)
        intcoding.symbol_stats(symbols, side.stats)
        return bitpack.encode_stream(symbols, self.bits)

    def size_floor(self, value, spec):
        """The exact size, from the width alone."""
        symbols = intcoding.to_symbols(value, spec)
        if self.bits is not None:
            return bitpack.packed_size(symbols.size, self.bits)
        width = bitpack.min_bits(int(symbols.max()) if symbols.size else 0)
        return 1 + bitpack.packed_size(symbols.size, width)  # 1-byte width header

    def decode(self, value, spec, side):
        buf = as_bytes(value)
        bits = self.bits
        if bits is None and len(buf):
            bits, buf = buf[0], buf[1:]
        if bits in (1, 2, 4) and dtypes.get(spec.dtype).itemsize == 1:
            return self._decode_bytes(np.frombuffer(buf, np.uint8), bits, spec)
        return intcoding.from_symbols(bitpack.decode_stream(value, spec.size, self.bits), spec)

    @staticmethod
    def _decode_bytes(raw: np.ndarray, bits: int, spec: ArraySpec) -> np.ndarray:
        n = spec.size
        if raw.size != -(-n * bits // 8):
            raise (TruncatedError if raw.size < -(-n * bits // 8) else FormatError)(
                f"bitpack: {raw.size} bytes for {n} symbols of {bits} bits")
        tail = n * bits % 8
        if tail and raw[-1] >> tail:
            raise FormatError("bitpack: non-zero padding bits")
        if bits == 1:
            out = _byte_table(bits, spec.dtype)[raw].view(np.uint8)
        else:
            even = raw.size & ~1
            out = _pair_table(bits, spec.dtype)[raw[:even].view("<u2")].view(np.uint8)
            if even != raw.size:
                out = np.concatenate([out, _byte_table(bits, spec.dtype)[raw[even:]].view(np.uint8)])
        out = out[:n]
        if spec.dtype == "bool":
            if out.size and out.max() > 1:
                raise FormatError("bool tensor decoded a symbol other than 0/1")
            return out.view(np.bool_).reshape(spec.shape)
        return out.view(dtypes.get(spec.dtype).numpy).reshape(spec.shape)
